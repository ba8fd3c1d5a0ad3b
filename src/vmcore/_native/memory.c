/* The host-side range checks and permission writes of the guest memory
 * model (include/vmcore/memory.h).  Freestanding C11: the zygote links it
 * too. */
#include "vmcore/memory.h"

int vm_memory_is_accessible(const vm_memory *memory, uint32_t address, uint32_t length, int writable)
{
    uint32_t page;
    return !vm_memory_first_inaccessible(memory, address, length, writable, &page);
}

int vm_memory_first_inaccessible(const vm_memory *memory, uint32_t address, uint32_t length, int writable,
                                 uint32_t *page)
{
    if (length == 0)
        return 0;
    uint8_t need = writable ? VM_PERM_WRITE : VM_PERM_READ;
    uint64_t end = (uint64_t)address + length;
    if (end > VM_ADDRESS_SPACE_SIZE) {
        *page = vm_page_of(memory, 0xffffffffu);
        return 1;
    }
    for (uint64_t p = vm_page_of(memory, address); p < end; p += memory->page_size) {
        if (!vm_perm_allows(vm_perm_at(memory, (uint32_t)p), need)) {
            *page = (uint32_t)p;
            return 1;
        }
    }
    return 0;
}

void vm_memory_set_perms(const vm_memory *memory, uint32_t address, uint64_t length, uint8_t perm)
{
    uint64_t start, end;
    vm_page_span(memory, address, length, &start, &end);
    for (uint64_t p = start; p < end; p += memory->page_size)
        memory->perms[p >> memory->page_shift] = perm;
}
