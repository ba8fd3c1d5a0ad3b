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
#define ALU_FREE (7u << ALU_AT) /* the free ALU count's bits */
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
static inline uint32_t ctz32(uint32_t v) { return (uint32_t)__builtin_ctz(v); }

#define WHEEL_MASK (VM_GAS_WHEEL - 1u)
#define NOT_STARTED 0xffffffffu
/* Sequence numbers restart (with a full reset) before they could wrap. */
#define SEQ_RESTART (1u << 30)
_Static_assert(VM_GAS_WHEEL == 128 && VM_GAS_MAX_MEMORY_COST < VM_GAS_WHEEL, "two words of wheel_used");

/* Cycles from `now` to the next cycle a result is due (VM_GAS_WHEEL: none). */
static inline uint32_t next_used(const vm_gas_sim *s, uint32_t now)
{
    uint32_t p = now & WHEEL_MASK;
    uint64_t lo = s->wheel_used[0], hi = s->wheel_used[1];
    /* the 128 bits rotated right by p: bit d = cycle now + d */
    if (p >= 64) {
        uint64_t t = lo;
        lo = hi;
        hi = t;
        p -= 64;
    }
    uint64_t r0 = p ? (lo >> p) | (hi << (64 - p)) : lo;
    if (r0)
        return (uint32_t)__builtin_ctzll(r0);
    uint64_t r1 = p ? (hi >> p) | (lo << (64 - p)) : hi;
    if (r1)
        return 64u + (uint32_t)__builtin_ctzll(r1);
    return VM_GAS_WHEEL;
}

/* The fast path's clock restarts (ready cycles cleared) past this: long
 * before it could wrap, and often enough that tests see it happen. */
#define FAST_CLOCK_RESTART (1u << 20)

/* The fast path's next block starts at cycle `base`: after every result
 * so far, so a register ready at or before it is ready at once, and the
 * ready cycles need no clearing. */
static void clear_fast(vm_gas_sim *s, uint32_t base)
{
    if (base >= FAST_CLOCK_RESTART) {
        for (uint32_t r = 0; r < 16; r++)
            s->ready[r] = 0;
        base = 0;
    }
    s->fast = 1;
    s->tokens = s->started = 0;
    s->base = s->fast_cycle = s->fast_last_due = base;
    s->fast_decode_left = DECODE_PER_CYCLE;
}

/* An empty pipeline at cycle 0.  After a drain it is empty already, so
 * only the decode slots restart; anything else (a block that never
 * drained, sequence numbers running high) resets it all. */
static void clear_sim(vm_gas_sim *s)
{
    s->simulated = 0;
    s->decode_left = DECODE_PER_CYCLE;
    if (s->executing || s->decoding || s->waiting || s->tail >= SEQ_RESTART || s->resources != UNITS_ALL) {
        for (uint32_t k = 0; k < VM_GAS_WHEEL; k++) {
            s->wheel_count[k] = 0;
            s->wheel_units[k] = 0;
        }
        for (uint32_t k = 0; k < VM_GAS_WHEEL / 64; k++)
            s->wheel_used[k] = 0;
        for (uint32_t r = 0; r < 16; r++)
            s->producer[r] = 0;
        s->executing = 0;
        s->decoding = s->waiting = 0;
        s->alu_users = 0;
        s->resources = UNITS_ALL;
        s->tail = 1;
    }
    s->head = s->tail; /* every producer so far is older: retired */
}

/* Start what is ready at `now` (its producers' results are due by now),
 * oldest first, while units last, at most MAX_STARTS_PER_CYCLE.  Returns
 * whether that limit left candidates waiting. */
static inline __attribute__((always_inline)) int start_ready(vm_gas_sim *s, uint32_t now)
{
    uint32_t waiting = s->waiting;
    if (!waiting)
        return 0;
    uint32_t head = s->head, base = head & ROB_MASK;
    uint32_t order = rotr32(waiting, base), started = 0;
    /* Without a free ALU the instructions that need one cannot start (and
     * units are only taken here): not visited. */
    uint32_t alu_users = rotr32(s->alu_users, base);
    uint32_t visit = s->resources & ALU_FREE ? order : order & ~alu_users;
    int starts = 0, limited = 0;
    while (visit) {
        uint32_t pos = ctz32(visit), slot = (pos + base) & ROB_MASK;
        visit &= visit - 1;
        uint32_t a = s->dep[slot][0], b = s->dep[slot][1];
        if ((a >= head && s->due[a & ROB_MASK] > now) || (b >= head && s->due[b & ROB_MASK] > now))
            continue;
        uint32_t units = s->required[slot], left = s->resources - units;
        if ((left & UNITS_GUARD) != UNITS_GUARD)
            continue;
        s->resources = left;
        if (!(left & ALU_FREE))
            visit &= ~alu_users;
        started |= 1u << slot;
        uint32_t due = now + s->latency[slot], at = due & WHEEL_MASK;
        s->due[slot] = due;
        s->wheel_count[at]++;
        s->wheel_units[at] += units;
        s->wheel_used[at >> 6] |= 1ull << (at & 63);
        s->executing++;
        if (++starts == MAX_STARTS_PER_CYCLE) {
            /* (any waiting candidate after this one counts, visited or not) */
            limited = (order & ~((2u << pos) - 1u)) != 0;
            break;
        }
    }
    s->waiting = waiting & ~started;
    return limited;
}

/* The results due at `now` are done (executed: they retire from the next
 * cycle on).  Returns whether there were any. */
static inline int done_at(vm_gas_sim *s, uint32_t now)
{
    uint32_t at = now & WHEEL_MASK;
    uint32_t n = s->wheel_count[at];
    if (!n)
        return 0;
    s->executing = (uint8_t)(s->executing - n);
    s->wheel_count[at] = 0;
    s->wheel_used[at >> 6] &= ~(1ull << (at & 63));
    return 1;
}

/* The cycle before `due`: the results due then release their units (and
 * their dependents may start at `due`: start_ready compares due cycles). */
static inline void release(vm_gas_sim *s, uint32_t due)
{
    uint32_t at = due & WHEEL_MASK;
    s->resources += s->wheel_units[at];
    s->wheel_units[at] = 0;
}

/* One cycle while decoding: retire the executed run at the head, start,
 * execute, and (`decoded`) the decoded instructions become waiting and
 * the decode slots refill.  The clock jumps to the next due result when
 * nothing was decoded and nothing retired. */
static void tick(vm_gas_sim *s, int decoded)
{
    uint32_t now = s->cycles, head = s->head;
    while (head != s->tail && s->due[head & ROB_MASK] < now)
        head++;
    int retired = head != s->head;
    s->head = head;
    start_ready(s, now);
    uint32_t step = 1;
    if (!decoded && !retired && s->executing) {
        uint32_t ahead = next_used(s, now);
        if (ahead > 0)
            step = ahead;
    }
    done_at(s, now);
    release(s, now + step);
    if (decoded) {
        s->waiting |= s->decoding;
        s->decoding = 0;
        s->decode_left = DECODE_PER_CYCLE;
    }
    s->cycles = now + step;
}

/* A block-ending instruction was decoded: run until every instruction has
 * retired.  Retirement only decides when that is (the cycle after the
 * last result is done), so it is not tracked here; the clock visits only
 * the cycles where something can start or finish. */
static void drain(vm_gas_sim *s)
{
    s->finished = 1;
    uint32_t now = s->cycles;
    /* the cycle that makes the decoded instructions waiting */
    start_ready(s, now);
    done_at(s, now);
    release(s, now + 1);
    s->waiting |= s->decoding;
    s->decoding = 0;
    s->decode_left = DECODE_PER_CYCLE;
    now++;
    for (;;) {
        int limited = start_ready(s, now);
        uint32_t step = 1;
        if (done_at(s, now)) {
            if (!s->executing) {
                if (!s->waiting)
                    break;
            } else if (!limited && !s->wheel_count[(now + 1) & WHEEL_MASK]) {
                /* the next cycle could start nothing: skip it too */
                step = next_used(s, now);
            }
        } else if (s->executing) {
            step = next_used(s, now);
        }
        release(s, now + step);
        now += step;
    }
    /* the next cycle retires the rest */
    s->cycles = now + 2;
    s->head = s->tail;
}

static inline void make_room(vm_gas_sim *s, uint32_t slots)
{
    if (s->decode_left < slots || s->tail - s->head == VM_GAS_ROB_SIZE) {
        tick(s, 1);
        while (s->tail - s->head == VM_GAS_ROB_SIZE)
            tick(s, 0);
    }
}

static inline __attribute__((always_inline)) void dispatch(vm_gas_sim *s, int dst, int src1, int src2, uint32_t latency, uint32_t slots, uint32_t units)
{
    make_room(s, slots);
    uint32_t seq = s->tail++, slot = seq & ROB_MASK;
    s->latency[slot] = (uint8_t)latency;
    s->required[slot] = (uint16_t)units;
    s->due[slot] = NOT_STARTED;
    s->dep[slot][0] = src1 >= 0 ? s->producer[src1] : 0u;
    s->dep[slot][1] = src2 >= 0 ? s->producer[src2] : 0u;
    if (dst >= 0)
        s->producer[dst] = seq;
    s->decoding |= 1u << slot;
    if (units & ALU_FREE)
        s->alu_users |= 1u << slot;
    else
        s->alu_users &= ~(1u << slot);
    s->decode_left -= slots;
}

/* `move_reg` only renames: the destination takes the source's producer. */
static inline __attribute__((always_inline)) void move_reg(vm_gas_sim *s, int dst, int src)
{
    make_room(s, 1);
    s->producer[dst] = s->producer[src];
    s->decode_left -= 1;
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
static uint32_t branch_latency(const vm_gas_sim *s, const vm_instruction *ins)
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
    s->memory_access_cost = (uint8_t)(mem >= 1 && mem <= VM_GAS_MAX_MEMORY_COST ? mem : VM_GAS_CACHE_L2_HIT);
    for (uint32_t k = 0; k < VM_GAS_ROB_SIZE; k++) {
        s->dep[k][0] = s->dep[k][1] = 0;
        s->due[k] = 0;
        s->required[k] = 0;
        s->latency[k] = 0;
    }
    for (uint32_t r = 0; r < 16; r++)
        s->ready[r] = 0;
    s->cycles = 0;
    s->finished = 0;
    s->executing = 1; /* (forces clear_sim's full reset) */
    clear_sim(s);
    clear_fast(s, 0);
}

/* One instruction into the pipeline simulation. */
static void simulate(vm_gas_sim *s, const vm_gas_token *t)
{
    switch (t->kind) {
    case K_MOVE:
        move_reg(s, t->dst, t->src1);
        break;
    case K_BRANCH:
    case K_END:
        dispatch(s, t->dst, t->src1, t->src2, t->latency, t->slots, t->units);
        drain(s);
        break;
    default:
        dispatch(s, t->dst, t->src1, t->src2, t->latency, t->slots, t->units);
        break;
    }
}

/* Whether the fast path's schedule respects the pipeline's limits: at
 * every cycle an instruction starts, the units held (by those started and
 * not yet due) fit, and at most MAX_STARTS_PER_CYCLE start.  Then the
 * simulation would start each at the same cycle (nothing ever waits for a
 * unit or a start slot, and the clock visits every such cycle). */
static int fast_schedule_fits(const vm_gas_sim *s)
{
    uint32_t n = s->started, free = UNITS_ALL;
    if (n <= MAX_STARTS_PER_CYCLE) {
        /* all of them at once fit: any subset does */
        for (uint32_t i = 0; i < n; i++) {
            free -= s->units_of[i];
            if ((free & UNITS_GUARD) != UNITS_GUARD)
                goto exact;
        }
        return 1;
    }
exact:
    for (uint32_t j = 0; j < n; j++) {
        uint32_t at = s->start_at[j], starts = 0;
        if (j && at == s->start_at[j - 1])
            continue; /* (checked just now) */
        free = UNITS_ALL;
        for (uint32_t i = 0; i < n; i++) {
            if (s->start_at[i] <= at && at < s->due_at[i]) {
                free -= s->units_of[i];
                if ((free & UNITS_GUARD) != UNITS_GUARD)
                    return 0;
                starts += s->start_at[i] == at;
            }
        }
        if (starts > MAX_STARTS_PER_CYCLE)
            return 0;
    }
    return 1;
}

/* Leave the fast path: the buffered instructions go through the pipeline. */
static void replay(vm_gas_sim *s)
{
    s->fast = 0;
    s->simulated = 1;
    for (uint32_t k = 0; k < s->tokens; k++)
        simulate(s, &s->token[k]);
}

/* One instruction on the fast path; at the block's end, its cost. */
static void fast_feed(vm_gas_sim *s, const vm_gas_token *t)
{
    s->token[s->tokens++] = *t;
    if (s->fast_decode_left < t->slots) {
        s->fast_cycle++;
        s->fast_decode_left = DECODE_PER_CYCLE;
    }
    s->fast_decode_left -= t->slots;
    if (t->kind == K_MOVE) {
        s->ready[t->dst] = s->ready[t->src1];
        return;
    }
    /* waiting from the cycle after its decode cycle, then its inputs */
    uint32_t start = s->fast_cycle + 1;
    if (t->src1 >= 0 && s->ready[t->src1] > start)
        start = s->ready[t->src1];
    if (t->src2 >= 0 && s->ready[t->src2] > start)
        start = s->ready[t->src2];
    uint32_t due = start + t->latency, k = s->started++;
    if (t->dst >= 0)
        s->ready[t->dst] = due;
    s->start_at[k] = start;
    s->due_at[k] = due;
    s->units_of[k] = t->units;
    if (due > s->fast_last_due)
        s->fast_last_due = due;
    if (t->kind == K_END || t->kind == K_BRANCH) {
        if (fast_schedule_fits(s)) {
            /* the last result is done at fast_last_due, all retire a cycle later */
            s->fast = 0;
            s->finished = 1;
            s->cycles = s->fast_last_due + 2 - s->base;
        } else {
            replay(s);
        }
    }
}

/* vm_gas_feed under the full model (apart, so that the naive model's
 * path sets up no stack frame for it). */
static __attribute__((noinline)) void feed_full(vm_gas_sim *s, const vm_instruction *ins)
{
    uint32_t op = ins->op <= VM_OP_COUNT ? ins->op : VM_OP_INVALID;
    const op_cost *c = &op_costs[op];
    int w = s->is_64_bit;
    /* operand roles index the registers; NO_REG picks "none" */
    int8_t reg[4] = {(int8_t)ins->reg[0], (int8_t)ins->reg[1], (int8_t)ins->reg[2], -1};
    vm_gas_token t;
    t.dst = reg[c->dst];
    t.src1 = reg[c->src1];
    t.src2 = reg[c->src2];
    uint32_t slots = c->slots[w];
    if (c->rule == R_3OP)
        slots += (uint32_t)(t.dst != t.src1 && t.dst != t.src2);
    else if (c->rule == R_2OP)
        slots += (uint32_t)(t.dst != t.src1);
    t.slots = (uint8_t)slots;
    t.kind = c->kind;
    t.units = c->units;
    t.latency = (uint8_t)c->latency[w];
    if (c->kind == K_LOAD)
        t.latency = s->memory_access_cost;
    else if (c->kind == K_BRANCH)
        t.latency = (uint8_t)branch_latency(s, ins);
    if (s->fast) {
        if (s->tokens < VM_GAS_FAST_MAX) {
            fast_feed(s, &t);
            return;
        }
        replay(s);
    }
    simulate(s, &t);
}

void vm_gas_feed(vm_gas_sim *s, const vm_instruction *ins)
{
    if (s->kind == VM_GAS_NAIVE)
        s->cycles += s->op_cost ? s->op_cost[ins->op <= VM_OP_COUNT ? ins->op : VM_OP_INVALID] : 1u;
    else
        feed_full(s, ins);
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
    s->cycles = 0;
    s->finished = 0;
    if (s->simulated)
        clear_sim(s);
    clear_fast(s, s->fast_last_due);
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
