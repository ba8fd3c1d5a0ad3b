/* Prefaulting a shared mapping ahead of a writer, on another core.
 *
 * The host builds modules straight into a memfd mapping (the sandbox maps
 * the same pages), so the first write to each 4 KiB page costs a page
 * fault that allocates a shmem page: on the machines measured this is
 * ~0.3 ms per MB, a third of the recompiler's own time.  A helper thread
 * populates each region (MADV_POPULATE_WRITE) a window ahead of what the
 * writer has published in `written`, so the writer mostly finds its pages
 * present; how far ahead it goes is bounded, so a writer that stops early
 * leaves at most `window` bytes populated past its end.
 *
 * Purely a speed-up: when the kernel lacks MADV_POPULATE_WRITE (before
 * 5.14), there is only one usable CPU or the thread cannot start, nothing
 * is prefaulted and the writer takes its own faults.  Host only.
 */
#ifndef VMCORE_PREFAULT_H
#define VMCORE_PREFAULT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define VM_PREFAULT_MAX_REGIONS 4

typedef struct vm_prefault_region {
    uint8_t *start;                 /* page aligned, inside a MAP_SHARED writable mapping */
    size_t length;                  /* the most the writer may write */
    const _Atomic uint64_t *written;/* bytes the writer has reached (published as it goes) */
    size_t window;                  /* populate up to written + window */
} vm_prefault_region;

typedef struct vm_prefault vm_prefault;

/* Starts the helper thread; NULL when prefaulting is not worth it or not
 * possible (then just write).  `regions` is copied. */
vm_prefault *vm_prefault_start(const vm_prefault_region *regions, int count);

/* Stops and joins the helper (NULL is fine).  After it returns nothing
 * touches the regions any more. */
void vm_prefault_stop(vm_prefault *p);

#endif
