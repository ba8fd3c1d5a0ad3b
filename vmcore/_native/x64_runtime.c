/* The recompiler's sandbox side: what the sandbox process's signal handler
 * and helpers need to finish what generated code started.  Freestanding C11
 * (no libc): the zygote embeds it, as does the test runner.
 *
 * The memory rules are the interpreter's (interp.c access_slow), restated
 * here so generated code and the interpreter reach the same verdicts:
 * the lowest faulting page of a straddling access, missing pages before
 * read-only ones, the address-overflow rule (an access reaching
 * 0xffffffff panics when the top page is mapped, else faults there) and
 * the < 0x10000 panic zone. */
#include "vmcore/compiler.h"

/* Guest register -> host register.  rax (scratch) and r15 (guest memory
 * base) are not guest registers; rdx holds the rarely used a5 because
 * division and the wide multiplies need rdx for themselves. */
const uint8_t vm_x64_guest_regs[VMCTX_REG_COUNT] = {
    X64_RBX, /* ra */
    X64_RSI, /* sp */
    X64_RDI, /* t0 */
    X64_RBP, /* t1 */
    X64_RCX, /* t2 */
    X64_R8,  /* s0 */
    X64_R9,  /* s1 */
    X64_R10, /* a0 */
    X64_R11, /* a1 */
    X64_R12, /* a2 */
    X64_R13, /* a3 */
    X64_R14, /* a4 */
    X64_RDX, /* a5 */
};
int64_t vm_x64_find_pc(const vm_x64_map_entry *map, uint32_t count, uint32_t pc)
{
    uint32_t lo = 0, hi = count;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (map[mid].pc < pc)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < count && map[lo].pc == pc ? (int64_t)lo : -1;
}

int64_t vm_x64_find_native(const vm_x64_map_entry *map, uint32_t count, uint64_t offset)
{
    /* the last record whose code starts at or before offset */
    uint32_t lo = 0, hi = count;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (map[mid].entry <= offset)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo == 0 ? -1 : (int64_t)lo - 1;
}

enum { ACCESS_OK = 0, ACCESS_FAULT = 1, ACCESS_PANIC = 2 };

static inline uint32_t page_of(const vm_memory *m, uint32_t address) { return address & ~(m->page_size - 1); }
static inline uint8_t perm_at(const vm_memory *m, uint32_t address) { return m->perms[address >> m->page_shift]; }

static int access_slow(const vm_memory *m, uint32_t address, uint32_t length, uint8_t need, uint32_t *fault)
{
    uint32_t last = address + length - 1;
    int result;
    if ((uint64_t)address + length > 0xffffffffull) {
        uint32_t top = page_of(m, 0xffffffffu);
        if (perm_at(m, top) != VM_PERM_NONE)
            return ACCESS_PANIC;
        *fault = top;
        result = ACCESS_FAULT;
    } else {
        uint32_t lo = page_of(m, address), hi = page_of(m, last);
        uint8_t plo = perm_at(m, lo), phi = perm_at(m, hi);
        if (plo == VM_PERM_NONE)
            *fault = lo;
        else if (phi == VM_PERM_NONE)
            *fault = hi;
        else if (plo < need)
            *fault = lo;
        else if (phi < need)
            *fault = hi;
        else
            return ACCESS_OK;
        result = ACCESS_FAULT;
    }
    return *fault < VM_LOW_MEMORY_PANIC_LIMIT ? ACCESS_PANIC : result;
}

void vm_x64_resolve_fault(const vm_x64_module *module, const vm_x64_map_entry *map, const vm_memory *memory,
                          uint64_t rip_offset, uint64_t rax, uint32_t program_counter, vm_x64_fault *out)
{
    out->stub = -1;
    out->pc = 0;
    out->arg = 0;
    out->resume = 0;
    if (rip_offset == module->overflow_probe) {
        /* An access reaching 0xffffffff, and the top page is not mapped
         * (else the probe would have read it and trapped). */
        int64_t k = vm_x64_find_pc(map, module->map_count, program_counter);
        if (k < 0)
            return;
        out->pc = program_counter;
        out->arg = page_of(memory, 0xffffffffu);
        out->stub = out->arg < VM_LOW_MEMORY_PANIC_LIMIT ? VMCTX_STUB_TRAP : VMCTX_STUB_PAGEFAULT;
        out->resume = map[k].body;
        return;
    }
    if (rip_offset < module->first_insn || rip_offset >= module->code_size)
        return;
    int64_t k = vm_x64_find_native(map, module->map_count, rip_offset);
    if (k < 0 || rip_offset < map[k].body)
        return;
    uint32_t info = map[k].info;
    if (!(info & (VM_X64_INFO_LOAD | VM_X64_INFO_STORE)))
        return;
    uint32_t size = 1u << ((info >> VM_X64_INFO_SIZE_SHIFT) & 3u);
    uint8_t need = (info & VM_X64_INFO_STORE) ? VM_PERM_WRITE : VM_PERM_READ;
    uint32_t fault = 0;
    int access = access_slow(memory, (uint32_t)rax, size, need, &fault);
    if (access == ACCESS_OK)
        return; /* the protections disagree with the permission map: a real crash */
    out->pc = map[k].pc;
    if (access == ACCESS_PANIC) {
        out->stub = VMCTX_STUB_TRAP;
    } else {
        out->stub = VMCTX_STUB_PAGEFAULT;
        out->arg = fault;
        out->resume = map[k].body;
    }
}

uint32_t vm_x64_memset(uint64_t *regs, int64_t *gas_io, int gas_metering, const vm_memory *memory, uint32_t *fault)
{
    uint64_t a0 = regs[7];
    uint32_t dst = (uint32_t)a0;
    uint8_t value = (uint8_t)regs[8];
    uint64_t count = (uint32_t)regs[9];
    int64_t gas = *gas_io;
    uint32_t result = 0;
    /* The interpreter's per-byte loop (gas first, then the access), done a
     * page at a time. */
    while (count > 0) {
        if (gas_metering && gas == 0) {
            result = VMCTX_STUB_NOT_ENOUGH_GAS;
            break;
        }
        if (dst != 0xffffffffu && perm_at(memory, dst) >= VM_PERM_WRITE) {
            uint64_t n = memory->page_size - (dst & (memory->page_size - 1));
            if (n > count)
                n = count;
            if (gas_metering && gas > 0 && (uint64_t)gas < n)
                n = (uint64_t)gas;
            if ((uint64_t)dst + n > 0xffffffffull) /* never the last byte of the address space */
                n = 0xffffffffull - dst;
            __builtin_memset(memory->base + dst, value, (size_t)n);
            dst += (uint32_t)n;
            count -= n;
            if (gas_metering)
                gas -= (int64_t)n;
            continue;
        }
        int access = access_slow(memory, dst, 1, VM_PERM_WRITE, fault);
        result = access == ACCESS_PANIC ? VMCTX_STUB_TRAP : VMCTX_STUB_PAGEFAULT;
        break;
    }
    regs[7] = a0 + (uint64_t)(uint32_t)(dst - (uint32_t)a0);
    regs[9] = count;
    *gas_io = gas;
    return result;
}
