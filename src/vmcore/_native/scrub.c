/* See include/vmcore/scrub.h. */
#include "vmcore/scrub.h"

#include <string.h>

int vm_scrub_spans(const vm_memory *memory, const vm_guest_span *spans, size_t count, uint64_t memset_limit,
                   vm_discard_fn discard, void *ctx, uint32_t *dirty_first, uint32_t *dirty_end)
{
    const uint64_t space = (uint64_t)1 << 32;
    const uint32_t shift = memory->page_shift;
    const uint64_t page = (uint64_t)1 << shift;
    uint32_t lo = UINT32_MAX, hi = 0;
    int rc = 0;
    for (size_t i = 0; i < count; i++) {
        uint64_t address = spans[i].address, length = spans[i].length;
        if (length == 0)
            continue;
        if (address >= space || length > space - address) {
            rc = -1;
            break;
        }
        uint64_t first = address >> shift;
        uint64_t end = (address + length + page - 1) >> shift;
        if (length <= memset_limit) {
            memset(memory->base + address, 0, (size_t)length);
        } else if (discard(ctx, first << shift, (end - first) << shift) != 0) {
            memset(memory->base + (first << shift), 0, (size_t)((end - first) << shift));
        }
        memset(memory->perms + first, VM_PERM_NONE, (size_t)(end - first));
        if ((uint32_t)first < lo)
            lo = (uint32_t)first;
        if ((uint32_t)end > hi)
            hi = (uint32_t)end;
    }
    *dirty_first = lo <= hi ? lo : 0;
    *dirty_end = lo <= hi ? hi : 0;
    return rc;
}

void vm_state_fresh(vm_state *state)
{
    memset(state->regs, 0, sizeof state->regs);
    state->gas = 0;
    state->resume = VM_INDEX_NONE;
    state->pc = 0;
    state->next_pc = 0;
    state->arg = 0;
    memset(&state->heap, 0, sizeof state->heap);
    atomic_store_explicit(&state->interrupt, 0, memory_order_relaxed);
    state->fuel = 0;
}

void vm_ctx_fresh(vmctx *c)
{
    const memory_order r = memory_order_relaxed;
    atomic_store_explicit(&c->program_counter, 0, r);
    atomic_store_explicit(&c->jump_into, VM_INDEX_NONE, r);
    atomic_store_explicit(&c->next_native_program_counter, 0, r);
    atomic_store_explicit(&c->next_program_counter, 0, r);
    atomic_store_explicit(&c->arg, 0, r);
    atomic_store_explicit(&c->arg2, VM_EXIT_FINISHED, r); /* what a new process reports */
    atomic_store_explicit(&c->interrupt, 0, r);
    atomic_store_explicit(&c->gas, 0, r);
    for (int i = 0; i < VMCTX_REG_COUNT; i++)
        atomic_store_explicit(&c->regs[i], 0, r);
    atomic_store_explicit(&c->heap_info.heap_top, 0, r);
    atomic_store_explicit(&c->heap_info.heap_threshold, 0, r);
    atomic_store_explicit(&c->shm_memory_map_offset, 0, r);
    atomic_store_explicit(&c->shm_memory_map_count, 0, r);
    atomic_store_explicit(&c->shm_code_offset, 0, r);
    atomic_store_explicit(&c->shm_code_length, 0, r);
    atomic_store_explicit(&c->shm_jump_table_offset, 0, r);
    atomic_store_explicit(&c->shm_jump_table_length, 0, r);
    atomic_store_explicit(&c->sysreturn_address, 0, r);
    atomic_store_explicit(&c->uffd_enabled, 0, r);
    c->heap_base = c->heap_initial_threshold = c->heap_max_size = 0;
    c->heap_grow_pages = 0;
    atomic_store_explicit(&c->counters.syscall_wait_loop_start, 0, r);
    atomic_store_explicit(&c->counters.syscall_futex_wait, 0, r);
    c->message_length = 0;
    memset(c->message_buffer, 0, sizeof c->message_buffer);
    for (int i = 0; i < VMCTX_STUB_COUNT; i++)
        atomic_store_explicit(&c->exit_stubs[i], 0, r);
}
