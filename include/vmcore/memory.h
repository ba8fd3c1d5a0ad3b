/* The guest memory model every engine shares: a 32-bit address space in
 * pages, one permission byte per page (VM_PERM_* in vmcore/abi.h), and the
 * verdict on an access.  The interpreter (interp.c), the recompiler's
 * sandbox side (x64_runtime.c, whose fault handler and memset stand in for
 * generated code) and the zygote all decide through vm_access_verdict(),
 * so an access ends the same way on every backend:
 *
 *   - the lowest faulting page of an access that straddles two pages;
 *   - for a write, a missing page before a read-only one;
 *   - an access whose end passes 0xffffffff (address + length wraps, even
 *     when its last byte is 0xffffffff) panics if the top page is mapped,
 *     else faults at the top page;
 *   - a fault below VM_LOW_MEMORY_PANIC_LIMIT is a panic instead.
 *
 * Freestanding (no libc): the zygote includes it.
 */
#ifndef VMCORE_MEMORY_H
#define VMCORE_MEMORY_H

#include <stdint.h>

#include "vmcore/abi.h"

/* Bytes in the guest address space (addresses are 32 bits). */
#define VM_ADDRESS_SPACE_SIZE 0x100000000ull

/* Guest memory: a 4 GiB window plus one permission byte per page. */
typedef struct vm_memory {
    uint8_t *base;       /* guest address 0; 4 GiB + 8 bytes addressable */
    uint8_t *perms;      /* 2^32 >> page_shift entries */
    uint32_t page_shift; /* log2(page size) */
    uint32_t page_size;
} vm_memory;

/* How an access ends. */
typedef enum vm_access {
    VM_ACCESS_OK = 0,
    VM_ACCESS_FAULT = 1, /* a page fault at *fault (resumable) */
    VM_ACCESS_PANIC = 2, /* a trap: the low zone, or a wrap past a mapped top page */
} vm_access;

static inline uint32_t vm_page_of(const vm_memory *m, uint32_t address)
{
    return address & ~(m->page_size - 1);
}

static inline uint8_t vm_perm_at(const vm_memory *m, uint32_t address)
{
    return m->perms[address >> m->page_shift];
}

/* A page with permission `perm` allows an access needing `need`
 * (VM_PERM_READ or VM_PERM_WRITE; write implies read). */
static inline int vm_perm_allows(uint8_t perm, uint8_t need)
{
    return perm >= need;
}

/* The verdict on [address, address + length) (1 <= length <= 8) needing
 * `need`, by the rules above; *fault is the faulting page for
 * VM_ACCESS_FAULT (and set, not meaningful, for a panic).  The
 * complete rule: callers on a hot path try vm_access_check() first. */
static inline vm_access vm_access_verdict(const vm_memory *m, uint32_t address, uint32_t length, uint8_t need,
                                          uint32_t *fault)
{
    uint32_t last = address + length - 1;
    vm_access result;
    if ((uint64_t)address + length > 0xffffffffull) {
        uint32_t top = vm_page_of(m, 0xffffffffu);
        *fault = top; /* (set on every path that is not VM_ACCESS_OK) */
        if (vm_perm_at(m, top) != VM_PERM_NONE)
            return VM_ACCESS_PANIC;
        result = VM_ACCESS_FAULT;
    } else {
        uint32_t lo = vm_page_of(m, address), hi = vm_page_of(m, last);
        uint8_t plo = vm_perm_at(m, lo), phi = vm_perm_at(m, hi);
        if (plo == VM_PERM_NONE)
            *fault = lo;
        else if (phi == VM_PERM_NONE)
            *fault = hi;
        else if (!vm_perm_allows(plo, need))
            *fault = lo;
        else if (!vm_perm_allows(phi, need))
            *fault = hi;
        else
            return VM_ACCESS_OK;
        result = VM_ACCESS_FAULT;
    }
    return *fault < VM_LOW_MEMORY_PANIC_LIMIT ? VM_ACCESS_PANIC : result;
}

/* vm_access_verdict() with the common case (no wrap, both ends allowed)
 * decided by two permission loads. */
static inline vm_access vm_access_check(const vm_memory *m, uint32_t address, uint32_t length, uint8_t need,
                                        uint32_t *fault)
{
    uint32_t last = address + length - 1;
    if (__builtin_expect(address < 0u - length && vm_perm_allows(vm_perm_at(m, address), need) &&
                             vm_perm_allows(vm_perm_at(m, last), need),
                         1))
        return VM_ACCESS_OK;
    return vm_access_verdict(m, address, length, need, fault);
}

/* The whole pages [address, address + length) overlaps, as the byte range
 * [*start, *end), clipped to the address space (start == end: none).  The
 * one page rounding of a permission change: vm_memory_set_perms applies
 * it, and whoever records what a change touched should ask it too. */
static inline void vm_page_span(const vm_memory *m, uint32_t address, uint64_t length, uint64_t *start,
                                uint64_t *end)
{
    uint64_t mask = (uint64_t)m->page_size - 1;
    uint64_t last = (uint64_t)address + length;
    *start = address & ~mask;
    *end = length == 0 ? *start : ((last > VM_ADDRESS_SPACE_SIZE ? VM_ADDRESS_SPACE_SIZE : last) + mask) & ~mask;
}

/* Host-side accessibility check for a range. */
int vm_memory_is_accessible(const vm_memory *memory, uint32_t address, uint32_t length, int writable);
/* First inaccessible page in a range (for error messages); returns 1 if one exists. */
int vm_memory_first_inaccessible(const vm_memory *memory, uint32_t address, uint32_t length, int writable,
                                 uint32_t *page);
/* Set permissions for [address, address + length) rounded out to pages. */
void vm_memory_set_perms(const vm_memory *memory, uint32_t address, uint64_t length, uint8_t perm);

#endif
