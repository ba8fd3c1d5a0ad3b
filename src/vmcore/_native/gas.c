/* Gas cost models (see gas.h).  Freestanding C11.
 *
 * The full model follows PolkaVM 0.35's pipeline simulator
 * (crates/polkavm-common/src/simulator.rs) rule for rule, as plain scalar
 * code over bitmasks of reorder-buffer slots instead of its SIMD lanes:
 *
 * Each instruction of a block is decoded into the reorder buffer (its
 * decode slots out of 4 per cycle; a full buffer or too few slots left
 * first advances the clock).  Every cycle, in this order:
 *   1. retire: the run of executed instructions at the head leaves;
 *   2. start: waiting instructions whose inputs are ready start executing,
 *      oldest first, while execution units are free, at most 5;
 *   3. execute: executing instructions count their latency down; at 0 the
 *      result is ready (dependents, registers and units are released), one
 *      cycle later the instruction is executed.  When nothing was decoded
 *      this cycle and nothing retired (or the block is complete), the clock
 *      jumps ahead by the smallest remaining latency at once;
 *   4. decoded instructions become waiting; the decode slots refill.
 * A block-ending instruction drains the pipeline; the block costs the
 * cycles taken minus 3, at least 1.  `move_reg` only renames: the
 * destination takes the source's pending value and nothing executes.
 */
#include "vmcore/gas.h"

/* ---- execution units, packed into one word ----
 * Each unit count has a guard bit above it: subtracting a request borrows
 * from the guard exactly when the request does not fit. */
#define ALU_AT 0
#define LOAD_AT 4
#define STORE_AT 8
#define MUL_AT 12
#define DIV_AT 14
#define UNITS_GUARD ((1u << 3) | (1u << 7) | (1u << 11) | (1u << 13) | (1u << 15))
#define UNITS_ALL ((4u << ALU_AT) | (4u << LOAD_AT) | (4u << STORE_AT) | (1u << MUL_AT) | (1u << DIV_AT) | UNITS_GUARD)
#define U_ALU1 (1u << ALU_AT)
#define U_ALU2 (2u << ALU_AT)
#define U_LOAD1 (1u << LOAD_AT)
#define U_STORE1 (1u << STORE_AT)
#define U_MUL1 (1u << MUL_AT)
#define U_DIV1 (1u << DIV_AT)

#define DECODE_PER_CYCLE 4u
#define MAX_STARTS_PER_CYCLE 5
#define GAS_SLACK 3u
#define STORE_LATENCY 25
#define BRANCH_HIT 1
#define BRANCH_MISS 20
#define ROB_MASK (VM_GAS_ROB_SIZE - 1u)
#define OPCODE_UNUSED 255 /* what the reference compares against for an opcode the ISA lacks */

_Static_assert((VM_GAS_ROB_SIZE & ROB_MASK) == 0 && VM_GAS_ROB_SIZE == 32, "the slot masks are 32-bit words");

/* ---- per-instruction costs ---- */

enum { K_GENERIC = 1, K_LOAD, K_MOVE, K_END, K_BRANCH };
/* extra decode slot when the destination differs from the sources */
enum { R_NONE = 0, R_3OP, R_2OP };
#define NO_REG 3 /* role not used; else an index into vm_instruction.reg */

typedef struct op_cost {
    uint8_t kind;
    int8_t latency[2];  /* 32-bit ISA, 64-bit ISA */
    uint8_t slots[2];
    uint8_t rule;
    uint16_t units;
    uint8_t dst, src1, src2;
} op_cost;

/* Latency and decode slots independent of the ISA width ... */
#define C(op, kind, lat, slots, rule, units, d, s1, s2) \
    [VM_OP_##op] = {kind, {lat, lat}, {slots, slots}, rule, units, d, s1, s2},
/* ... or one more of each on a 64-bit ISA (32-bit operations there) */
#define W(op, kind, lat, slots, rule, units, d, s1, s2) \
    [VM_OP_##op] = {kind, {lat, (lat) + 1}, {slots, (slots) + 1}, rule, units, d, s1, s2},

#define ALU3(op) C(op, K_GENERIC, 1, 1, R_3OP, U_ALU1, 0, 1, 2)
#define ALU3W(op) W(op, K_GENERIC, 1, 1, R_3OP, U_ALU1, 0, 1, 2)
#define ALU2(op) C(op, K_GENERIC, 1, 1, R_2OP, U_ALU1, 0, 1, NO_REG)
#define ALU2W(op) W(op, K_GENERIC, 1, 1, R_2OP, U_ALU1, 0, 1, NO_REG)
#define UN1(op) C(op, K_GENERIC, 1, 1, R_NONE, U_ALU1, 0, 1, NO_REG)
#define UN2(op) C(op, K_GENERIC, 2, 1, R_NONE, U_ALU2, 0, 1, NO_REG)
#define SHIFT(op) C(op, K_GENERIC, 1, 2, R_2OP, U_ALU1, 0, 1, 2)
#define SHIFTW(op) W(op, K_GENERIC, 1, 2, R_2OP, U_ALU1, 0, 1, 2)
#define SHIFT_ALT(op) C(op, K_GENERIC, 1, 3, R_NONE, U_ALU1, 0, 1, NO_REG)
#define SHIFT_ALT32(op) C(op, K_GENERIC, 2, 4, R_NONE, U_ALU1, 0, 1, NO_REG)
#define CMP3(op) C(op, K_GENERIC, 3, 3, R_NONE, U_ALU1, 0, 1, 2)
#define CMP2(op) C(op, K_GENERIC, 3, 3, R_NONE, U_ALU1, 0, 1, NO_REG)
#define MINMAX(op) C(op, K_GENERIC, 3, 2, R_3OP, U_ALU1, 0, 1, 2)
#define DIV(op) C(op, K_GENERIC, 60, 4, R_NONE, U_ALU1 | U_DIV1, 0, 1, 2)
#define LD_IND(op) C(op, K_LOAD, 0, 1, R_NONE, U_ALU1 | U_LOAD1, 0, 1, NO_REG)
#define LD(op) C(op, K_LOAD, 0, 1, R_NONE, U_ALU1 | U_LOAD1, 0, NO_REG, NO_REG)
#define ST(op) C(op, K_GENERIC, STORE_LATENCY, 1, R_NONE, U_ALU1 | U_STORE1, NO_REG, 0, NO_REG)
#define ST_IMM(op) C(op, K_GENERIC, STORE_LATENCY, 1, R_NONE, U_ALU1 | U_STORE1, NO_REG, NO_REG, NO_REG)
#define ST_IND(op) C(op, K_GENERIC, STORE_LATENCY, 1, R_NONE, U_ALU1 | U_STORE1, NO_REG, 0, 1)
#define ST_IMM_IND(op) C(op, K_GENERIC, STORE_LATENCY, 1, R_NONE, U_ALU1 | U_STORE1, NO_REG, 0, NO_REG)
#define BR2(op) C(op, K_BRANCH, 0, 1, R_NONE, U_ALU1, NO_REG, 0, 1)
#define BR1(op) C(op, K_BRANCH, 0, 1, R_NONE, U_ALU1, NO_REG, 0, NO_REG)

static const op_cost op_costs[VM_OP_COUNT + 1] = {
    ALU3(add_64) ALU3(sub_64) ALU3(and) ALU3(xor) ALU3(or)
    ALU3W(add_32) ALU3W(sub_32)
    ALU2(xor_imm) ALU2(and_imm) ALU2(or_imm) ALU2(add_imm_64) ALU2(reverse_byte)
    ALU2(shift_logical_right_imm_64) ALU2(shift_arithmetic_right_imm_64) ALU2(shift_logical_left_imm_64)
    ALU2(rotate_right_imm_64)
    ALU2W(add_imm_32) ALU2W(shift_logical_right_imm_32) ALU2W(shift_arithmetic_right_imm_32)
    ALU2W(shift_logical_left_imm_32) ALU2W(rotate_right_imm_32)
    UN1(count_leading_zero_bits_32) UN1(count_leading_zero_bits_64) UN1(count_set_bits_32)
    UN1(count_set_bits_64) UN1(sign_extend_8) UN1(sign_extend_16) UN1(zero_extend_16)
    UN2(count_trailing_zero_bits_32) UN2(count_trailing_zero_bits_64)
    SHIFT(shift_logical_right_64) SHIFT(shift_arithmetic_right_64) SHIFT(shift_logical_left_64)
    SHIFT(rotate_left_64) SHIFT(rotate_right_64)
    SHIFTW(shift_logical_right_32) SHIFTW(shift_arithmetic_right_32) SHIFTW(shift_logical_left_32)
    SHIFTW(rotate_left_32) SHIFTW(rotate_right_32)
    SHIFT_ALT(shift_logical_right_imm_alt_64) SHIFT_ALT(shift_arithmetic_right_imm_alt_64)
    SHIFT_ALT(shift_logical_left_imm_alt_64) SHIFT_ALT(rotate_right_imm_alt_64)
    SHIFT_ALT32(shift_logical_right_imm_alt_32) SHIFT_ALT32(shift_arithmetic_right_imm_alt_32)
    SHIFT_ALT32(shift_logical_left_imm_alt_32) SHIFT_ALT32(rotate_right_imm_alt_32)
    CMP3(set_less_than_unsigned) CMP3(set_less_than_signed)
    CMP2(set_less_than_unsigned_imm) CMP2(set_less_than_signed_imm)
    CMP2(set_greater_than_unsigned_imm) CMP2(set_greater_than_signed_imm)
    C(cmov_if_zero, K_GENERIC, 2, 2, R_NONE, U_ALU1, 0, 1, 2)
    C(cmov_if_not_zero, K_GENERIC, 2, 2, R_NONE, U_ALU1, 0, 1, 2)
    C(cmov_if_zero_imm, K_GENERIC, 2, 3, R_NONE, U_ALU1, 0, 1, NO_REG)
    C(cmov_if_not_zero_imm, K_GENERIC, 2, 3, R_NONE, U_ALU1, 0, 1, NO_REG)
    MINMAX(maximum) MINMAX(maximum_unsigned) MINMAX(minimum) MINMAX(minimum_unsigned)
    DIV(div_unsigned_32) DIV(div_signed_32) DIV(rem_unsigned_32) DIV(rem_signed_32)
    DIV(div_unsigned_64) DIV(div_signed_64) DIV(rem_unsigned_64) DIV(rem_signed_64)
    LD_IND(load_indirect_u8) LD_IND(load_indirect_i8) LD_IND(load_indirect_u16) LD_IND(load_indirect_i16)
    LD_IND(load_indirect_u32) LD_IND(load_indirect_i32) LD_IND(load_indirect_u64)
    LD(load_u8) LD(load_i8) LD(load_u16) LD(load_i16) LD(load_u32) LD(load_i32) LD(load_u64)
    ST(store_u8) ST(store_u16) ST(store_u32) ST(store_u64)
    ST_IMM(store_imm_u8) ST_IMM(store_imm_u16) ST_IMM(store_imm_u32) ST_IMM(store_imm_u64)
    ST_IND(store_indirect_u8) ST_IND(store_indirect_u16) ST_IND(store_indirect_u32) ST_IND(store_indirect_u64)
    ST_IMM_IND(store_imm_indirect_u8) ST_IMM_IND(store_imm_indirect_u16) ST_IMM_IND(store_imm_indirect_u32)
    ST_IMM_IND(store_imm_indirect_u64)
    BR2(branch_eq) BR2(branch_not_eq) BR2(branch_less_unsigned) BR2(branch_less_signed)
    BR2(branch_greater_or_equal_unsigned) BR2(branch_greater_or_equal_signed)
    BR1(branch_eq_imm) BR1(branch_not_eq_imm) BR1(branch_less_unsigned_imm) BR1(branch_less_signed_imm)
    BR1(branch_greater_or_equal_unsigned_imm) BR1(branch_greater_or_equal_signed_imm)
    BR1(branch_less_or_equal_unsigned_imm) BR1(branch_less_or_equal_signed_imm)
    BR1(branch_greater_unsigned_imm) BR1(branch_greater_signed_imm)
    C(and_inverted, K_GENERIC, 2, 3, R_NONE, U_ALU1, 0, 1, 2)
    C(or_inverted, K_GENERIC, 2, 3, R_NONE, U_ALU1, 0, 1, 2)
    C(xnor, K_GENERIC, 2, 2, R_3OP, U_ALU1, 0, 1, 2)
    C(negate_and_add_imm_64, K_GENERIC, 2, 3, R_NONE, U_ALU1, 0, 1, NO_REG)
    C(negate_and_add_imm_32, K_GENERIC, 3, 4, R_NONE, U_ALU1, 0, 1, NO_REG)
    C(move_reg, K_MOVE, 0, 1, R_NONE, 0, 0, 1, NO_REG)
    C(load_imm, K_GENERIC, 1, 1, R_NONE, 0, 0, NO_REG, NO_REG)
    C(load_imm64, K_GENERIC, 1, 2, R_NONE, 0, 0, NO_REG, NO_REG)
    C(mul_32, K_GENERIC, 4, 2, R_3OP, U_ALU1 | U_MUL1, 0, 1, 2)
    C(mul_64, K_GENERIC, 3, 1, R_3OP, U_ALU1 | U_MUL1, 0, 1, 2)
    C(mul_imm_32, K_GENERIC, 4, 2, R_2OP, U_ALU1 | U_MUL1, 0, 1, NO_REG)
    C(mul_imm_64, K_GENERIC, 3, 1, R_2OP, U_ALU1 | U_MUL1, 0, 1, NO_REG)
    C(mul_upper_signed_signed, K_GENERIC, 4, 4, R_NONE, U_ALU1 | U_MUL1, 0, 1, 2)
    C(mul_upper_unsigned_unsigned, K_GENERIC, 4, 4, R_NONE, U_ALU1 | U_MUL1, 0, 1, 2)
    C(mul_upper_signed_unsigned, K_GENERIC, 6, 4, R_NONE, U_ALU1 | U_MUL1, 0, 1, 2)
    C(trap, K_END, 2, 1, R_NONE, 0, NO_REG, NO_REG, NO_REG)
    C(fallthrough, K_END, 2, 1, R_NONE, 0, NO_REG, NO_REG, NO_REG)
    [VM_OP_INVALID] = {K_END, {2, 2}, {1, 1}, R_NONE, 0, NO_REG, NO_REG, NO_REG},
    C(unlikely, K_GENERIC, 40, 1, R_NONE, 0, NO_REG, NO_REG, NO_REG)
    C(jump, K_END, 15, 1, R_NONE, 0, NO_REG, NO_REG, NO_REG)
    C(load_imm_and_jump, K_END, 15, 1, R_NONE, 0, NO_REG, NO_REG, NO_REG)
    C(jump_indirect, K_END, 22, 1, R_NONE, 0, NO_REG, 0, NO_REG)
    C(load_imm_and_jump_indirect, K_END, 22, 1, R_NONE, 0, NO_REG, 1, NO_REG)
    C(ecalli, K_GENERIC, 100, 4, R_NONE, U_ALU1, NO_REG, NO_REG, NO_REG)
    C(sbrk, K_GENERIC, 100, 4, R_NONE, U_ALU1, 0, 1, NO_REG)
    C(memset, K_GENERIC, 100, 4, R_NONE, U_ALU1, NO_REG, NO_REG, NO_REG)
};

/* ---- the pipeline ---- */

static inline uint32_t rotr32(uint32_t v, uint32_t n) { n &= 31u; return n ? (v >> n) | (v << (32u - n)) : v; }
static inline uint32_t rotl32(uint32_t v, uint32_t n) { n &= 31u; return n ? (v << n) | (v >> (32u - n)) : v; }
static inline uint32_t ctz32(uint32_t v) { return (uint32_t)__builtin_ctz(v); }

#define WHEEL_MASK (VM_GAS_WHEEL - 1u)
_Static_assert(VM_GAS_WHEEL == 128 && VM_GAS_MAX_MEMORY_COST < VM_GAS_WHEEL, "two words of wheel_used");

/* Cycles from `now` to the next cycle a result is due (VM_GAS_WHEEL: none). */
static inline uint32_t next_used(const vm_gas_sim *s, uint32_t now)
{
    uint32_t p = now & WHEEL_MASK;
    uint64_t lo = s->wheel_used[0], hi = s->wheel_used[1];
    /* the 128 bits rotated right by p: bit d = cycle now + d */
    uint64_t r0, r1;
    if (p == 0) {
        r0 = lo;
        r1 = hi;
    } else if (p < 64) {
        r0 = (lo >> p) | (hi << (64 - p));
        r1 = (hi >> p) | (lo << (64 - p));
    } else if (p == 64) {
        r0 = hi;
        r1 = lo;
    } else {
        uint32_t q = p - 64;
        r0 = (hi >> q) | (lo << (64 - q));
        r1 = (lo >> q) | (hi << (64 - q));
    }
    if (r0)
        return (uint32_t)__builtin_ctzll(r0);
    if (r1)
        return 64u + (uint32_t)__builtin_ctzll(r1);
    return VM_GAS_WHEEL;
}

static void clear(vm_gas_sim *s)
{
    /* (a drained pipeline leaves the wheel empty) */
    for (uint32_t w = 0; w < VM_GAS_WHEEL / 64; w++) {
        if (s->wheel_used[w]) {
            for (uint32_t k = 0; k < 64; k++)
                s->wheel[w * 64 + k] = 0;
            s->wheel_used[w] = 0;
        }
    }
    s->cycles = 0;
    s->finished = 0;
    s->head = s->tail = 0;
    s->in_flight = 0;
    s->decode_left = DECODE_PER_CYCLE;
    s->resources = UNITS_ALL;
    s->decoding = s->waiting = s->executing = s->executed = 0;
    s->blocked = 0;
    for (int r = 0; r < 16; r++)
        s->producer[r] = -1;
    /* the per-slot arrays are written when a slot is taken (or, for
     * dependents and writes, are all-zero again once their slot's result
     * is ready, which it is before the slot is free again) */
}

/* A result is ready: wake its dependents, release its registers and units. */
static inline void result_ready(vm_gas_sim *s, uint32_t slot)
{
    uint32_t bit = 1u << slot;
    uint32_t d = s->dependents[slot];
    s->dependents[slot] = 0;
    while (d) {
        uint32_t k = ctz32(d);
        d &= d - 1;
        s->deps[k] &= ~bit;
        if (!s->deps[k])
            s->blocked &= ~(1u << k);
    }
    uint32_t w = s->writes[slot];
    s->writes[slot] = 0;
    while (w) {
        uint32_t r = ctz32(w);
        w &= w - 1;
        s->producer[r] = -1;
    }
    s->resources += s->required[slot];
    s->required[slot] = 0;
}

static inline __attribute__((always_inline)) void tick(vm_gas_sim *s, int finishing, int decoded_pending)
{
    /* 1. retire the executed run at the head */
    uint32_t head = s->head;
    uint32_t run = rotr32(s->executed, head);
    uint32_t retired = run == 0xffffffffu ? 32u : ctz32(~run);
    if (retired) {
        uint32_t mask = retired == 32u ? 0xffffffffu : rotl32((1u << retired) - 1u, head);
        s->executed &= ~mask;
        s->in_flight = (uint8_t)(s->in_flight - retired);
        head = (head + retired) & ROB_MASK;
        s->head = (uint8_t)head;
    }

    /* 2. start what is ready, oldest first, while units last */
    uint32_t ready = s->waiting & ~s->blocked;
    if (ready) {
        uint32_t order = rotr32(ready, head), started = 0;
        int starts = 0;
        while (order && starts < MAX_STARTS_PER_CYCLE) {
            uint32_t slot = (ctz32(order) + head) & ROB_MASK;
            order &= order - 1;
            uint32_t left = s->resources - s->required[slot];
            if ((left & UNITS_GUARD) == UNITS_GUARD) {
                s->resources = left;
                started |= 1u << slot;
                starts++;
                uint32_t due = (s->cycles + s->latency[slot]) & WHEEL_MASK;
                s->wheel[due] |= 1u << slot;
                s->wheel_used[due >> 6] |= 1ull << (due & 63);
            }
        }
        s->waiting &= ~started;
        s->executing |= started;
    }

    /* 3. execute: an executing slot's result is ready at the cycle the
     * wheel files it under (its start + latency), and it is executed one
     * cycle later.  Jumping ahead: to the next ready result. */
    uint32_t now = s->cycles;
    uint32_t step = 1;
    if (!decoded_pending && (finishing || !retired) && s->executing) {
        uint32_t ahead = next_used(s, now);
        if (ahead > 0 && ahead < VM_GAS_WHEEL)
            step = ahead;
    }
    uint32_t at = now & WHEEL_MASK;
    uint32_t done = s->wheel[at];
    if (done) {
        /* ready since the last cycle: executed now (the jump was 1) */
        s->executing &= ~done;
        s->executed |= done;
        s->wheel[at] = 0;
        s->wheel_used[at >> 6] &= ~(1ull << (at & 63));
    }
    uint32_t later = (now + step) & WHEEL_MASK;
    uint32_t results = s->wheel[later];
    while (results) {
        uint32_t k = ctz32(results);
        results &= results - 1;
        result_ready(s, k);
    }

    /* 4. decoded -> waiting */
    if (decoded_pending) {
        s->waiting |= s->decoding;
        s->decoding = 0;
        s->decode_left = DECODE_PER_CYCLE;
    }
    s->cycles += step;
}

static __attribute__((noinline)) void tick_loop(vm_gas_sim *s, int finishing)
{
    tick(s, finishing, 1);
    uint32_t target = finishing ? 0u : VM_GAS_ROB_SIZE - 1u;
    while (s->in_flight > target)
        tick(s, finishing, 0);
}

static inline void make_room(vm_gas_sim *s, uint32_t slots)
{
    if (s->decode_left < slots || s->in_flight == VM_GAS_ROB_SIZE)
        tick_loop(s, 0);
}

static inline __attribute__((always_inline)) void dispatch(vm_gas_sim *s, int dst, int src1, int src2, int8_t latency, uint32_t slots, uint32_t units)
{
    make_room(s, slots);
    uint32_t slot = s->tail;
    uint32_t bit = 1u << slot;
    s->tail = (uint8_t)((slot + 1u) & ROB_MASK);
    s->latency[slot] = (uint8_t)latency;
    s->required[slot] = (uint16_t)units;
    uint32_t deps = 0;
    if (src1 >= 0 && s->producer[src1] >= 0)
        deps |= 1u << s->producer[src1];
    if (src2 >= 0 && s->producer[src2] >= 0)
        deps |= 1u << s->producer[src2];
    s->deps[slot] = deps;
    if (deps) {
        s->blocked |= bit;
        uint32_t d = deps;
        while (d) {
            uint32_t k = ctz32(d);
            d &= d - 1;
            s->dependents[k] |= bit;
        }
    } else {
        s->blocked &= ~bit;
    }
    if (dst >= 0) {
        int old = s->producer[dst];
        if (old >= 0)
            s->writes[old] = (uint16_t)(s->writes[old] & ~(1u << dst));
        s->writes[slot] = (uint16_t)(s->writes[slot] | (1u << dst));
        s->producer[dst] = (int8_t)slot;
    }
    s->decoding |= bit;
    s->in_flight++;
    s->decode_left -= slots;
}

static inline __attribute__((always_inline)) void move_reg(vm_gas_sim *s, int dst, int src)
{
    make_room(s, 1);
    int old = s->producer[dst];
    if (old >= 0)
        s->writes[old] = (uint16_t)(s->writes[old] & ~(1u << dst));
    int now = s->producer[src];
    if (now >= 0)
        s->writes[now] = (uint16_t)(s->writes[now] | (1u << dst));
    s->producer[dst] = (int8_t)now;
    s->decode_left -= 1;
}

static void drain(vm_gas_sim *s)
{
    s->finished = 1;
    tick_loop(s, 1);
}

static inline int is_hint_opcode(const vm_gas_sim *s, uint32_t at)
{
    if (at >= s->code_len)
        return 1;
    uint8_t byte = s->code[at];
    return byte == s->opcode_unlikely || byte == s->opcode_trap;
}

/* A branch is cheap (predicted) when its fall-through or its target is a
 * trap or `unlikely` (or lies past the code). */
static int8_t branch_latency(const vm_gas_sim *s, const vm_instruction *ins)
{
    uint32_t target = ins->format == VM_FMT_REG_REG_OFFSET ? ins->imm1 : ins->imm2;
    return (is_hint_opcode(s, ins->next) || is_hint_opcode(s, target)) ? BRANCH_HIT : BRANCH_MISS;
}

/* ---- the API ---- */

int vm_gas_model_check(const vm_gas_model *model)
{
    if (!model)
        return -1;
    if (model->kind == VM_GAS_NAIVE)
        return 0;
    if (model->kind == VM_GAS_FULL && !model->cost && model->memory_access_cost >= 1 &&
        model->memory_access_cost <= VM_GAS_MAX_MEMORY_COST)
        return 0;
    return -1;
}

void vm_gas_init(vm_gas_sim *s, const vm_gas_model *model, vm_isa isa, const uint8_t *code, uint32_t code_len)
{
    s->code = code;
    s->code_len = code_len;
    s->op_cost = model && model->kind == VM_GAS_NAIVE ? model->cost : 0;
    s->kind = (uint8_t)(model && model->kind == VM_GAS_FULL ? VM_GAS_FULL : VM_GAS_NAIVE);
    s->is_64_bit = (uint8_t)(vm_isa_is_64_bit(isa) ? 1 : 0);
    int trap = vm_isa_encode_opcode(isa, VM_OP_trap);
    int unlikely = vm_isa_encode_opcode(isa, VM_OP_unlikely);
    s->opcode_trap = (uint8_t)(trap >= 0 ? trap : OPCODE_UNUSED);
    s->opcode_unlikely = (uint8_t)(unlikely >= 0 ? unlikely : OPCODE_UNUSED);
    int mem = model ? model->memory_access_cost : VM_GAS_CACHE_L2_HIT;
    s->memory_access_cost = (int8_t)(mem >= 1 && mem <= VM_GAS_MAX_MEMORY_COST ? mem : VM_GAS_CACHE_L2_HIT);
    for (uint32_t k = 0; k < VM_GAS_ROB_SIZE; k++) {
        s->deps[k] = s->dependents[k] = 0;
        s->required[k] = s->writes[k] = 0;
        s->latency[k] = 0;
    }
    for (uint32_t k = 0; k < VM_GAS_WHEEL; k++)
        s->wheel[k] = 0;
    for (uint32_t k = 0; k < VM_GAS_WHEEL / 64; k++) {
        s->wheel_used[k] = 0;
    }
    clear(s);
}

void vm_gas_feed(vm_gas_sim *s, const vm_instruction *ins)
{
    if (s->kind == VM_GAS_NAIVE) {
        s->cycles += s->op_cost ? s->op_cost[ins->op <= VM_OP_COUNT ? ins->op : VM_OP_INVALID] : 1u;
        return;
    }
    uint32_t op = ins->op <= VM_OP_COUNT ? ins->op : VM_OP_INVALID;
    const op_cost *c = &op_costs[op];
    int w = s->is_64_bit;
    int d = c->dst != NO_REG ? ins->reg[c->dst] : -1;
    int s1 = c->src1 != NO_REG ? ins->reg[c->src1] : -1;
    int s2 = c->src2 != NO_REG ? ins->reg[c->src2] : -1;
    uint32_t slots = c->slots[w];
    if (c->rule == R_3OP)
        slots += (uint32_t)(d != s1 && d != s2);
    else if (c->rule == R_2OP)
        slots += (uint32_t)(d != s1);
    switch (c->kind) {
    case K_MOVE:
        move_reg(s, d, s1);
        break;
    case K_LOAD:
        dispatch(s, d, s1, s2, s->memory_access_cost, slots, c->units);
        break;
    case K_BRANCH:
        dispatch(s, d, s1, s2, branch_latency(s, ins), slots, c->units);
        drain(s);
        break;
    case K_END:
        dispatch(s, d, s1, s2, c->latency[w], slots, c->units);
        drain(s);
        break;
    default:
        dispatch(s, d, s1, s2, c->latency[w], slots, c->units);
        break;
    }
}

/* The implicit trap at `offset` as an instruction. */
static void implicit_trap(vm_instruction *ins, uint32_t offset)
{
    ins->offset = offset;
    ins->next = offset + 1u;
    ins->op = VM_OP_INVALID;
    ins->format = VM_FMT_ARGLESS;
    ins->reg[0] = ins->reg[1] = ins->reg[2] = 0;
    ins->imm1 = ins->imm2 = 0;
    ins->imm64 = 0;
    ins->next_is_invalid = 0;
}

void vm_gas_feed_invalid(vm_gas_sim *s)
{
    vm_instruction ins;
    implicit_trap(&ins, 0); /* (the cost does not depend on where it is) */
    vm_gas_feed(s, &ins);
}

uint32_t vm_gas_take(vm_gas_sim *s)
{
    uint32_t cycles = s->cycles;
    if (s->kind == VM_GAS_NAIVE) {
        s->cycles = 0;
        return cycles;
    }
    if (!s->finished) {
        /* the block did not end: the reference assumes a trap follows */
        vm_gas_feed_invalid(s);
        cycles = s->cycles;
    }
    clear(s);
    return cycles > GAS_SLACK + 1u ? cycles - GAS_SLACK : 1u;
}

uint32_t vm_gas_block_cost_at(const vm_gas_model *model, vm_isa isa, const uint8_t *code, uint32_t code_len,
                              const uint8_t *bitmask, uint32_t pc)
{
    vm_gas_sim sim;
    vm_gas_init(&sim, model, isa, code, code_len);
    if (pc >= code_len || !vm_bitmask_bit(bitmask, code_len, pc)) {
        vm_gas_feed_invalid(&sim);
        return vm_gas_take(&sim);
    }
    uint32_t offset = pc;
    for (;;) {
        vm_instruction ins;
        vm_decode(isa, code, code_len, bitmask, offset, &ins);
        vm_gas_feed(&sim, &ins);
        if (vm_op_flags((vm_op)ins.op) & VM_F_ENDS_BLOCK)
            break;
        if (ins.next_is_invalid || ins.next >= code_len) {
            vm_gas_feed_invalid(&sim);
            break;
        }
        offset = ins.next;
    }
    return vm_gas_take(&sim);
}

uint32_t vm_gas_blocks(const vm_gas_model *model, vm_isa isa, const uint8_t *code, uint32_t code_len,
                       const uint8_t *bitmask, int bounded, uint32_t *pcs, uint32_t *costs, uint32_t capacity)
{
    /* the same walk as the interpreter's builder (interp.c) */
    vm_gas_sim sim;
    vm_gas_init(&sim, model, isa, code, code_len);
    uint32_t count = 0, offset = 0, invalid_at = 0;
    int block_open = 0, pending_invalid = code_len > 0 && !vm_bitmask_bit(bitmask, code_len, 0);
    vm_instruction ins;
    for (;;) {
        if (pending_invalid) {
            implicit_trap(&ins, invalid_at);
        } else if (offset < code_len) {
            vm_decode(isa, code, code_len, bitmask, offset, &ins);
        } else {
            break;
        }
        if (!block_open) {
            block_open = 1;
            if (count < capacity)
                pcs[count] = ins.offset;
        }
        vm_gas_feed(&sim, &ins);
        if (vm_op_flags((vm_op)ins.op) & VM_F_ENDS_BLOCK) {
            uint32_t cost = vm_gas_take(&sim);
            if (count < capacity)
                costs[count] = cost;
            count++;
            block_open = 0;
        }
        if (pending_invalid) {
            pending_invalid = 0;
            if (bounded || invalid_at >= code_len)
                break;
            offset = invalid_at + 1;
            while (offset < code_len && !vm_bitmask_bit(bitmask, code_len, offset))
                offset++;
            continue;
        }
        offset = ins.next;
        if (ins.next_is_invalid) {
            pending_invalid = 1;
            invalid_at = ins.next;
        }
    }
    return count;
}
