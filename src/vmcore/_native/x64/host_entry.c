/* Host side of a compiled module: where a call enters (vm_x64_enter) and
 * whether this CPU can run the code (vm_x64_cpu_check). */
#include "internal.h"

/* ---- host side: entering a call ---- */

int vm_x64_enter(const vm_x64_module *module, const vm_x64_map *map, const uint8_t *native_code, uint32_t pc,
                 int64_t *gas, uint64_t *native_address)
{
    if (pc > module->code_len)
        return VM_ENTRY_NOT_AN_INSTRUCTION;
    vm_x64_map_entry e;
    int64_t k = vm_x64_find_pc(module, map, pc, &e);
    if (k < 0 || !(e.info & VM_X64_INFO_ENTRY_OK))
        return VM_ENTRY_NOT_AN_INSTRUCTION;
    if (module->gas_metering && !(e.info & VM_X64_INFO_BLOCK_START)) {
        /* entering mid-block charges the whole block up front (the
         * interpreter's charge-on-entry): the cost its charge holds */
        const uint32_t *r = map->records;
        int64_t start = k;
        while (start > 0 && !(r[start] & VM_X64_INFO_BLOCK_START))
            start--;
        vm_x64_map_entry first;
        if (!native_code || !module->charges || vm_x64_map_read(module, map, (uint32_t)start, 1, &first) != 0)
            return VM_ENTRY_NOT_AN_INSTRUCTION;
        uint32_t block;
        memcpy(&block, native_code + first.entry + (module->step_tracing ? VM_X64_STEP_BYTES : 0u) +
                           VM_X64_CHARGE_COST_AT, 4);
        if ((int64_t)block > *gas)
            return VM_ENTRY_OUT_OF_GAS;
        *gas -= (int64_t)block;
    }
    *native_address = module->code_address + e.entry;
    return VM_ENTRY_OK;
}

/* ---- CPU support ---- */

int vm_x64_cpu_check(const char **missing)
{
#if !defined(__x86_64__)
    /* Compiling x86-64 code is plain data transformation and works on any
     * host; running it needs an x86-64 CPU. */
    if (missing)
        *missing = "an x86-64 CPU";
    return 1;
#else
    uint32_t a, b, c, d;
    const char *what = 0;
    __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(0u), "c"(0u));
    uint32_t max_leaf = a;
    __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(1u), "c"(0u));
    int popcnt = (c >> 23) & 1;
    int bmi1 = 0, bmi2 = 0;
    if (max_leaf >= 7) {
        __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(7u), "c"(0u));
        bmi1 = (b >> 3) & 1;
        bmi2 = (b >> 8) & 1;
    }
    __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(0x80000000u), "c"(0u));
    int lzcnt = 0;
    if (a >= 0x80000001u) {
        __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(0x80000001u), "c"(0u));
        lzcnt = (c >> 5) & 1;
    }
    if (!bmi2)
        what = "BMI2";
    else if (!bmi1)
        what = "BMI1";
    else if (!lzcnt)
        what = "LZCNT";
    else if (!popcnt)
        what = "POPCNT";
    if (missing)
        *missing = what;
    return what != 0;
#endif
}
