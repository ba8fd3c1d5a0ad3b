/* Recycling an instance for the next tenant: the ONE implementation both
 * the inline interpreter and the process sandbox use (issue #15 item 4).
 *
 * vm_scrub_spans() zeroes every span and makes its pages inaccessible
 * (page counts computed one way for everybody); spans up to memset_limit
 * bytes are zeroed in place (their pages stay resident), larger ones are
 * handed to `discard` (madvise for inline memory, a hole punched in the
 * memfd for a sandbox process), which must leave the bytes zero.
 * vm_state_fresh() is what a new instance's state is: zero registers,
 * gas, pc, next_pc, arg and heap, nothing to resume. */
#ifndef VMCORE_SCRUB_H
#define VMCORE_SCRUB_H

#include <stddef.h>
#include <stdint.h>

#include "vmcore/interp.h"
#include "vmcore/vmctx.h"

/* Guest memory [address, address + length). */
typedef struct vm_guest_span {
    uint64_t address;
    uint64_t length;
} vm_guest_span;

/* discard(ctx, first byte, byte count), page aligned; 0 or -1. */
typedef int (*vm_discard_fn)(void *ctx, uint64_t offset, uint64_t length);

/* 0, or -1 when a span lies outside the 32-bit address space (nothing
 * after it is scrubbed; the caller must not recycle the instance) or a
 * discard failed.  *dirty_first / *dirty_end (page indices, end
 * exclusive) cover every page whose permission was cleared. */
int vm_scrub_spans(const vm_memory *memory, const vm_guest_span *spans, size_t count, uint64_t memset_limit,
                   vm_discard_fn discard, void *ctx, uint32_t *dirty_first, uint32_t *dirty_end);

void vm_state_fresh(vm_state *state);

/* A recycled sandbox process's VmCtx as a new process's (host side, while
 * the host owns the context): every field the sandbox or the last tenant
 * could have left something in -- handshake words, registers, gas, heap
 * info, counters, message buffer, exit stubs -- is cleared.  What the
 * host set up for the process itself (init, isolation, death word, module
 * generation, CPU, uid/gid) stays. */
struct vmctx;
void vm_ctx_fresh(struct vmctx *ctx);

#endif
