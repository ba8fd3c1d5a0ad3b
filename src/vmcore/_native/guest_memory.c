/* Guest memory for the inline backend (host only, uses mmap). */
#define _GNU_SOURCE
#include "vmcore/guest_memory.h"
#include "vmcore/vmctx.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

/* Past 4 GiB: room for the widest access starting at 0xffffffff. */
#define WINDOW_SIZE ((size_t)1 << 32)
#define WINDOW_SLACK ((size_t)1 << 16)

static size_t perms_size(const vm_memory *m) { return WINDOW_SIZE >> m->page_shift; }

int vm_guest_memory_init(vm_memory *memory, uint32_t page_size)
{
    uint32_t shift = 0;
    while ((1u << shift) < page_size)
        shift++;
    if ((1u << shift) != page_size || page_size < VM_MIN_PAGE_SIZE || page_size > VM_MAX_PAGE_SIZE) {
        errno = EINVAL;
        return -1;
    }
    memory->page_shift = shift;
    memory->page_size = page_size;
    void *base = mmap(NULL, WINDOW_SIZE + WINDOW_SLACK, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (base == MAP_FAILED)
        return -1;
    void *perms = mmap(NULL, perms_size(memory), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                       -1, 0);
    if (perms == MAP_FAILED) {
        int saved = errno;
        munmap(base, WINDOW_SIZE + WINDOW_SLACK);
        errno = saved;
        return -1;
    }
    memory->base = base;
    memory->perms = perms;
    return 0;
}

void vm_guest_memory_free(vm_memory *memory)
{
    if (memory->base)
        munmap(memory->base, WINDOW_SIZE + WINDOW_SLACK);
    if (memory->perms)
        munmap(memory->perms, perms_size(memory));
    memory->base = NULL;
    memory->perms = NULL;
}

void vm_guest_memory_discard(vm_memory *memory, uint32_t address, uint64_t length)
{
    uint64_t start = address & ~(uint64_t)(memory->page_size - 1);
    uint64_t end = (uint64_t)address + length;
    if (end > WINDOW_SIZE)
        end = WINDOW_SIZE;
    if (end <= start)
        return;
    end = (end + memory->page_size - 1) & ~(uint64_t)(memory->page_size - 1);
    madvise(memory->base + start, end - start, MADV_DONTNEED);
    vm_memory_set_perms(memory, (uint32_t)start, end - start, VM_PERM_NONE);
}

void vm_guest_memory_reset(vm_memory *memory)
{
    madvise(memory->base, WINDOW_SIZE + WINDOW_SLACK, MADV_DONTNEED);
    madvise(memory->perms, perms_size(memory), MADV_DONTNEED);
}
