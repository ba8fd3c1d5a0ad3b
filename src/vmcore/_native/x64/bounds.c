/* Capacity bounds: the worst-case native code, records and marks of a
 * program, before compiling it. */
#include "internal.h"

/* Set bits of the bitmask's first code_len bits.  With the POPCNT
 * instruction when the CPU has it (the host build may not assume it). */
#define COUNT_STARTS_BODY(count)                                                    \
    uint64_t n = 0;                                                                 \
    uint32_t full = code_len / 8, i = 0;                                            \
    for (; i + 8 <= full; i += 8)                                                   \
        n += count(vm_decode_le64(bitmask + i));                                          \
    for (; i < full; i++)                                                           \
        n += count(bitmask[i]);                                                     \
    if (code_len % 8)                                                               \
        n += count((uint64_t)(bitmask[full] & ((1u << (code_len % 8)) - 1u)));      \
    return (uint32_t)n;

#if defined(__x86_64__)
__attribute__((target("popcnt"))) static uint32_t count_starts_popcnt(const uint8_t *bitmask, uint32_t code_len)
{
    COUNT_STARTS_BODY(__builtin_popcountll)
}

static uint32_t count_starts_swar(const uint8_t *bitmask, uint32_t code_len)
{
    COUNT_STARTS_BODY(popcount64)
}

static uint32_t count_starts(const uint8_t *bitmask, uint32_t code_len)
{
    return __builtin_cpu_supports("popcnt") ? count_starts_popcnt(bitmask, code_len)
                                            : count_starts_swar(bitmask, code_len);
}
#else
/* Other hosts (e.g. aarch64) have a population count in the base ISA. */
static uint32_t count_starts(const uint8_t *bitmask, uint32_t code_len)
{
    COUNT_STARTS_BODY(__builtin_popcountll)
}
#endif

size_t vm_x64_instruction_bound(const uint8_t *bitmask, uint32_t code_len)
{
    /* every marked offset, plus implicit traps: one per gap of more than
     * VM_BITMASK_MAX bytes (each spans 25 code bytes), one at the start,
     * one at the end; plus the guard */
    return (size_t)(code_len ? count_starts(bitmask, code_len) : 0) + code_len / (VM_BITMASK_MAX + 1) + 4;
}

/* What the instructions of [0, code_len) may take, split or not: two
 * segments' bounds add up to at most 5 more than the whole's. */
static size_t capacity_bound(const uint8_t *bitmask, uint32_t code_len)
{
    return vm_x64_instruction_bound(bitmask, code_len) + 8;
}

/* Marks a segment of code_len guest bytes and code_capacity native bytes
 * may need: one per VM_X64_MARK_EVERY records, one after every pc step
 * past VM_X64_REC_PC_MAX (each skips that much code), one after every
 * native step past VM_X64_REC_ENTRY_MAX; rounding for two segments. */
size_t vm_x64_mark_bound(size_t records, uint32_t code_len, size_t code_capacity)
{
    return records / VM_X64_MARK_EVERY + code_len / VM_X64_REC_PC_MAX + code_capacity / VM_X64_REC_ENTRY_MAX + 16;
}

void vm_x64_bounds(const uint8_t *code, uint32_t code_len, const uint8_t *bitmask, const vm_x64_config *config,
                   vm_x64_capacity *capacity)
{
    (void)code;
    (void)config;
    size_t n = capacity_bound(bitmask, code_len);
    size_t per = INSN_BUDGET + STUBS_PER_INSN_BUDGET + INSN_SLACK;
    size_t need = ROUTINES_BUDGET + (n + 2) * per;
    /* past CODE_LIMIT the compile fails with VM_X64_ERR_TOO_BIG anyway */
    capacity->code = need < (size_t)CODE_LIMIT + 2 * per ? need : (size_t)CODE_LIMIT + 2 * per;
    capacity->records = n;
    capacity->marks = 2 * vm_x64_mark_bound(n, code_len, capacity->code);
}
