/* Host-side allocation of guest memory for the inline interpreter: one
 * reserved 4 GiB window (MAP_NORESERVE, so untouched pages cost nothing)
 * and a lazily-zeroed permission map. */
#ifndef VMCORE_GUEST_MEMORY_H
#define VMCORE_GUEST_MEMORY_H

#include <stdint.h>

#include "vmcore/memory.h"

/* 0 on success, -1 with errno set. */
int vm_guest_memory_init(vm_memory *memory, uint32_t page_size);
void vm_guest_memory_free(vm_memory *memory);
/* Give [address, address + length) back to the kernel (reads as zero
 * afterwards) and make it inaccessible. */
void vm_guest_memory_discard(vm_memory *memory, uint32_t address, uint64_t length);
/* Make every page inaccessible and release all memory. */
void vm_guest_memory_reset(vm_memory *memory);

#endif
