/* The interpreter.  Freestanding C11 (+ GNU computed goto).
 *
 * vm_module_build() walks the code once, the way the reference's unbounded
 * instruction iterator does, and lays every instruction out in a flat array
 * of 24-byte vm_insn records with operands decoded and branch targets
 * resolved to array indices.  Every basic block starts with a CHARGE record
 * carrying the block's gas cost, so the dispatch loop never re-parses code
 * and never checks code bounds.  Guest registers live in state->regs; index
 * VM_REG_COUNT is a constant zero so absolute loads/stores share the indirect paths.
 *
 * Semantics follow PolkaVM's interpreter (crates/polkavm/src/interpreter.rs)
 * and the Gray Paper appendix A; where the two differ the reference wins,
 * except the low-memory panic zone (VM_LOW_MEMORY_PANIC_LIMIT).
 */
#include "vmcore/interp.h"

#include <stdatomic.h>

#include "vmcore/vmctx.h"
#include "interp_handlers.h"

/* ---- arithmetic helpers (no UB: unsigned arithmetic, explicit casts) ---- */

static inline uint64_t sext32(uint32_t v) { return (uint64_t)(int64_t)(int32_t)v; }
static inline int64_t s64(uint64_t v) { return (int64_t)v; }
static inline int32_t s32(uint32_t v) { return (int32_t)v; }

static inline uint32_t rotl32(uint32_t v, uint32_t n) { n &= 31; return n ? (v << n) | (v >> (32 - n)) : v; }
static inline uint32_t rotr32(uint32_t v, uint32_t n) { n &= 31; return n ? (v >> n) | (v << (32 - n)) : v; }
static inline uint64_t rotl64(uint64_t v, uint64_t n) { n &= 63; return n ? (v << n) | (v >> (64 - n)) : v; }
static inline uint64_t rotr64(uint64_t v, uint64_t n) { n &= 63; return n ? (v >> n) | (v << (64 - n)) : v; }

static inline uint32_t divu32(uint32_t a, uint32_t b) { return b ? a / b : 0xffffffffu; }
static inline uint64_t divu64(uint64_t a, uint64_t b) { return b ? a / b : ~(uint64_t)0; }
static inline uint32_t remu32(uint32_t a, uint32_t b) { return b ? a % b : a; }
static inline uint64_t remu64(uint64_t a, uint64_t b) { return b ? a % b : a; }
static inline uint32_t divs32(uint32_t a, uint32_t b)
{
    if (b == 0) return 0xffffffffu;
    if (a == 0x80000000u && b == 0xffffffffu) return a;
    return (uint32_t)(s32(a) / s32(b));
}
static inline uint64_t divs64(uint64_t a, uint64_t b)
{
    if (b == 0) return ~(uint64_t)0;
    if (a == 0x8000000000000000ull && b == ~(uint64_t)0) return a;
    return (uint64_t)(s64(a) / s64(b));
}
static inline uint32_t rems32(uint32_t a, uint32_t b)
{
    if (b == 0) return a;
    if (a == 0x80000000u && b == 0xffffffffu) return 0;
    return (uint32_t)(s32(a) % s32(b));
}
static inline uint64_t rems64(uint64_t a, uint64_t b)
{
    if (b == 0) return a;
    if (a == 0x8000000000000000ull && b == ~(uint64_t)0) return 0;
    return (uint64_t)(s64(a) % s64(b));
}
static inline uint32_t mulh_ss32(uint32_t a, uint32_t b) { return (uint32_t)((uint64_t)((int64_t)s32(a) * (int64_t)s32(b)) >> 32); }
static inline uint32_t mulh_uu32(uint32_t a, uint32_t b) { return (uint32_t)(((uint64_t)a * (uint64_t)b) >> 32); }
static inline uint32_t mulh_su32(uint32_t a, uint32_t b) { return (uint32_t)((uint64_t)((int64_t)s32(a) * (int64_t)(uint64_t)b) >> 32); }
static inline uint64_t mulh_ss64(uint64_t a, uint64_t b) { return (uint64_t)((unsigned __int128)((__int128)s64(a) * (__int128)s64(b)) >> 64); }
static inline uint64_t mulh_uu64(uint64_t a, uint64_t b) { return (uint64_t)(((unsigned __int128)a * (unsigned __int128)b) >> 64); }
static inline uint64_t mulh_su64(uint64_t a, uint64_t b)
{
    /* signed x unsigned: the high word of the unsigned product, minus b when a < 0 */
    uint64_t hi = (uint64_t)(((unsigned __int128)a * (unsigned __int128)b) >> 64);
    return s64(a) < 0 ? hi - b : hi;
}
static inline uint32_t clz32(uint32_t v) { return v ? (uint32_t)__builtin_clz(v) : 32; }
static inline uint64_t clz64(uint64_t v) { return v ? (uint64_t)__builtin_clzll(v) : 64; }
static inline uint32_t ctz32(uint32_t v) { return v ? (uint32_t)__builtin_ctz(v) : 32; }
static inline uint64_t ctz64(uint64_t v) { return v ? (uint64_t)__builtin_ctzll(v) : 64; }

/* ---- guest memory ---- */

static inline void copy_bytes(void *dst, const void *src, uint32_t n) { __builtin_memcpy(dst, src, n); }

/* Every access is decided by vm_access_check (vmcore/memory.h), as in the
 * recompiler's runtime; the host-side range checks are in memory.c. */

uint32_t vm_heap_sbrk(vm_state *state, const vm_memory *memory, uint32_t size)
{
    vm_heap *h = &state->heap;
    uint64_t new_top = (uint64_t)h->top + size;
    if (new_top > h->max_top)
        return 0;
    h->top = (uint32_t)new_top;
    if (new_top > h->mapped_end) {
        uint64_t step = (uint64_t)memory->page_size * (h->grow_pages ? h->grow_pages : 1);
        uint64_t want = (new_top + memory->page_size - 1) & ~(uint64_t)(memory->page_size - 1);
        uint64_t grown = h->mapped_end + step;
        uint64_t new_end = want > grown ? want : grown;
        uint64_t limit = ((uint64_t)h->max_top + memory->page_size - 1) & ~(uint64_t)(memory->page_size - 1);
        if (new_end > limit)
            new_end = limit;
        vm_memory_set_perms(memory, h->mapped_end, new_end - h->mapped_end, VM_PERM_WRITE);
        h->mapped_end = (uint32_t)new_end;
    }
    return h->top;
}
/* ---- the dispatch loop ---- */

vm_exit vm_run(const vm_module *module, vm_state *state, const vm_memory *memory)
{
    static const void *const labels[H_COUNT] = {
#define H_LABEL(name) &&L_##name,
        HANDLERS(H_LABEL)
#undef H_LABEL
    };

    const vm_insn *const insns = module->insns;
    const vm_insn *ip = insns + state->resume;
    uint64_t *const r = state->regs;
    uint8_t *const mem = memory->base;
    /* A copy the compiler can keep in registers: through `memory` every
     * register store might have changed it. */
    const vm_memory view = *memory;
    int64_t gas = state->gas;
    /* Counted down at every block start; 0 means no limit (it would take
     * centuries to count down from 2^64). */
    uint64_t fuel = state->fuel ? state->fuel : ~(uint64_t)0;
    uint32_t fault;
    uint32_t trap_reason;
    vm_exit exit_reason;
    int access;

#define DISPATCH() goto *labels[ip->op]
#define NEXT() do { ip++; DISPATCH(); } while (0)
#define JUMP_TO(index) do { ip = insns + (index); DISPATCH(); } while (0)
/* Into the block whose first record is at `index`: its CHECK / CHARGE
 * record's work is done here, as that record would do it, and the record
 * skipped (one dispatch less per block).  A target of any other kind (a
 * STEP record under tracing) runs through its records. */
#define ENTER(index)                                                      \
    do {                                                                  \
        const vm_insn *t_ = insns + (index);                              \
        if (__builtin_expect(t_->op == H_CHECK, 1)) {                     \
            BLOCK_START_CHECKS_AT(t_);                                    \
            ip = t_ + 1;                                                  \
            DISPATCH();                                                   \
        }                                                                 \
        if (t_->op == H_CHARGE) {                                         \
            BLOCK_START_CHECKS_AT(t_);                                    \
            if (__builtin_expect(gas < (int64_t)t_->x, 0)) {              \
                ip = t_;                                                  \
                goto out_of_gas;                                          \
            }                                                             \
            gas -= t_->x;                                                 \
            ip = t_ + 1;                                                  \
            DISPATCH();                                                   \
        }                                                                 \
        ip = t_;                                                          \
        DISPATCH();                                                       \
    } while (0)
#define X_IMM ((uint64_t)sext32(ip->x))
#define RA r[ip->a]
#define RB r[ip->b]
#define RC r[ip->c]
#define LO(v) ((uint32_t)(v))
#define SET32(v) (RA = sext32((uint32_t)(v)))
#define ADDR() ((uint32_t)(RB + X_IMM))

    r[ZERO_REG] = 0;
    DISPATCH();

/* What every block start checks first: an interrupt, then the fuel (a
 * stop leaves ip at the block's CHECK / CHARGE record `at`). */
#define BLOCK_START_CHECKS_AT(at)                                                             \
    do {                                                                                      \
        if (__builtin_expect(atomic_load_explicit(&state->interrupt, memory_order_relaxed), 0)) { \
            ip = (at);                                                                        \
            goto interrupted;                                                                 \
        }                                                                                     \
        if (__builtin_expect(--fuel == 0, 0)) {                                               \
            ip = (at);                                                                        \
            goto yield;                                                                       \
        }                                                                                     \
    } while (0)
#define BLOCK_START_CHECKS() BLOCK_START_CHECKS_AT(ip)

L_CHECK:
    BLOCK_START_CHECKS();
    NEXT();
L_CHARGE:
    BLOCK_START_CHECKS();
    if (__builtin_expect(gas < (int64_t)ip->x, 0)) /* no overflow near INT64_MIN */
        goto out_of_gas;
    gas -= ip->x;
    NEXT();
out_of_gas: /* at a block's CHARGE record, before its charge */
    state->pc = ip->pc;
    state->resume = (uint32_t)(ip - insns);
    exit_reason = VM_EXIT_OUT_OF_GAS;
    goto out;
L_STEP:
    state->pc = ip->pc;
    state->resume = (uint32_t)(ip - insns) + 1;
    exit_reason = VM_EXIT_STEP;
    goto out;
L_TRAP:
    trap_reason = ip->x; /* the builder's vm_trap_reason */
panic:
    state->pc = ip->pc;
    state->resume = (uint32_t)(ip - insns);
    state->arg = trap_reason;
    exit_reason = VM_EXIT_TRAP;
    goto out;
L_END:
    goto L_TRAP;
L_JUMP:
    ENTER(ip->y);

    /* Dynamic jumps: the jump table is 1-based in units of the code
     * address alignment; 0xffff0000 returns to the host. */
#define DYNAMIC_JUMP(address)                                                          \
    do {                                                                               \
        uint32_t addr_ = (address);                                                    \
        if (addr_ == VM_ADDR_RETURN_TO_HOST) {                                         \
            state->pc = ip->pc;                                                        \
            exit_reason = VM_EXIT_FINISHED;                                            \
            goto out;                                                                  \
        }                                                                              \
        uint32_t slot_ = addr_ / VM_CODE_ADDRESS_ALIGNMENT;                            \
        if (addr_ == 0 || (addr_ & (VM_CODE_ADDRESS_ALIGNMENT - 1)) ||                 \
            slot_ - 1 >= module->jump_table_count || module->jump_table[slot_ - 1] == VM_INDEX_NONE) { \
            trap_reason = VM_TRAP_INVALID_JUMP;                                        \
            goto panic;                                                                \
        }                                                                              \
        ENTER(module->jump_table[slot_ - 1]);                                          \
    } while (0)

L_JUMP_IND:
    DYNAMIC_JUMP((uint32_t)(RB + X_IMM));
L_LI_JUMP:
    RA = X_IMM;
    if (ip->y == VM_INDEX_NONE) {
        trap_reason = VM_TRAP_INVALID_JUMP;
        goto panic;
    }
    ENTER(ip->y);
L_LI_JUMP_IND: {
    uint32_t target = (uint32_t)(RB + (uint64_t)sext32(ip->y));
    RA = X_IMM;
    DYNAMIC_JUMP(target);
}
L_ECALLI:
    state->pc = ip->pc;
    state->next_pc = ip->y;
    state->arg = ip->x;
    state->resume = (uint32_t)(ip - insns) + 1;
    exit_reason = VM_EXIT_ECALLI;
    goto out;
L_SBRK: {
    uint64_t size = RB;
    uint32_t request;
    if (module->is_64_bit)
        request = size > 0xffffffffull ? 0u : (uint32_t)size;
    else
        request = (uint32_t)size;
    uint32_t result = vm_heap_sbrk(state, memory, request);
    RA = sext32(result);
    NEXT();
}
L_MEMSET: {
    uint64_t a0 = r[VM_REG_A0];
    uint32_t dst = (uint32_t)a0;
    uint8_t value = (uint8_t)r[VM_REG_A1];
    uint64_t count = (uint32_t)r[VM_REG_A2];
    int stopped = 0;
    while (count > 0) {
        if (module->config.gas_metering && gas == 0) {
            exit_reason = VM_EXIT_OUT_OF_GAS;
            stopped = 1;
            break;
        }
        access = vm_access_check(&view, dst, 1, VM_PERM_WRITE, &fault);
        if (access != VM_ACCESS_OK) {
            exit_reason = access == VM_ACCESS_PANIC ? VM_EXIT_TRAP : VM_EXIT_PAGEFAULT;
            stopped = 1;
            break;
        }
        mem[dst] = value;
        if (module->config.gas_metering)
            gas -= 1;
        dst += 1;
        count -= 1;
    }
    r[VM_REG_A0] = a0 + (uint64_t)(uint32_t)(dst - (uint32_t)a0);
    r[VM_REG_A2] = count;
    if (!stopped)
        NEXT();
    state->pc = ip->pc;
    state->resume = (uint32_t)(ip - insns);
    if (exit_reason == VM_EXIT_PAGEFAULT)
        state->arg = fault;
    else if (exit_reason == VM_EXIT_TRAP)
        state->arg = VM_TRAP_MEMORY_ACCESS;
    goto out;
}

#define BRANCH(cond) do { if (cond) ENTER(ip->y); ENTER(ip->z); } while (0)
L_BEQ: BRANCH(RA == RB);
L_BNE: BRANCH(RA != RB);
L_BLTU: BRANCH(RA < RB);
L_BLTS: BRANCH(s64(RA) < s64(RB));
L_BGEU: BRANCH(RA >= RB);
L_BGES: BRANCH(s64(RA) >= s64(RB));
L_BEQI: BRANCH(RA == X_IMM);
L_BNEI: BRANCH(RA != X_IMM);
L_BLTUI: BRANCH(RA < X_IMM);
L_BLTSI: BRANCH(s64(RA) < s64(X_IMM));
L_BGEUI: BRANCH(RA >= X_IMM);
L_BGESI: BRANCH(s64(RA) >= s64(X_IMM));
L_BLEUI: BRANCH(RA <= X_IMM);
L_BLESI: BRANCH(s64(RA) <= s64(X_IMM));
L_BGTUI: BRANCH(RA > X_IMM);
L_BGTSI: BRANCH(s64(RA) > s64(X_IMM));

#define ACCESS_OR_STOP(address, size, need)                                           \
    do {                                                                               \
        access = vm_access_check(&view, (address), (size), (need), &fault);             \
        if (__builtin_expect(access != VM_ACCESS_OK, 0))                                 \
            goto memory_stop;                                                          \
    } while (0)

#define LOAD(T, convert)                                   \
    do {                                                   \
        uint32_t address = ADDR();                         \
        T v;                                               \
        ACCESS_OR_STOP(address, sizeof(T), VM_PERM_READ);  \
        copy_bytes(&v, mem + address, sizeof(T));          \
        RA = (convert);                                    \
        NEXT();                                            \
    } while (0)
L_LD_U8: LOAD(uint8_t, (uint64_t)v);
L_LD_I8: LOAD(int8_t, (uint64_t)(int64_t)v);
L_LD_U16: LOAD(uint16_t, (uint64_t)v);
L_LD_I16: LOAD(int16_t, (uint64_t)(int64_t)v);
L_LD_U32: LOAD(uint32_t, (uint64_t)v);
L_LD_I32: LOAD(uint32_t, sext32(v));
L_LD_U64: LOAD(uint64_t, v);

#define STORE(T, value)                                    \
    do {                                                   \
        uint32_t address = ADDR();                         \
        T v = (T)(value);                                  \
        ACCESS_OR_STOP(address, sizeof(T), VM_PERM_WRITE); \
        copy_bytes(mem + address, &v, sizeof(T));          \
        NEXT();                                            \
    } while (0)
L_ST_U8: STORE(uint8_t, RA);
L_ST_U16: STORE(uint16_t, RA);
L_ST_U32: STORE(uint32_t, RA);
L_ST_U64: STORE(uint64_t, RA);
L_STI_U8: STORE(uint8_t, ip->y);
L_STI_U16: STORE(uint16_t, ip->y);
L_STI_U32: STORE(uint32_t, ip->y);
L_STI_U64: STORE(uint64_t, sext32(ip->y));

L_ADD32: SET32(LO(RB) + LO(RC)); NEXT();
L_ADD64: RA = RB + RC; NEXT();
L_SUB32: SET32(LO(RB) - LO(RC)); NEXT();
L_SUB64: RA = RB - RC; NEXT();
L_AND: RA = RB & RC; NEXT();
L_XOR: RA = RB ^ RC; NEXT();
L_OR: RA = RB | RC; NEXT();
L_MUL32: SET32(LO(RB) * LO(RC)); NEXT();
L_MUL64: RA = RB * RC; NEXT();
L_MULHSS32: SET32(mulh_ss32(LO(RB), LO(RC))); NEXT();
L_MULHSS64: RA = mulh_ss64(RB, RC); NEXT();
L_MULHUU32: SET32(mulh_uu32(LO(RB), LO(RC))); NEXT();
L_MULHUU64: RA = mulh_uu64(RB, RC); NEXT();
L_MULHSU32: SET32(mulh_su32(LO(RB), LO(RC))); NEXT();
L_MULHSU64: RA = mulh_su64(RB, RC); NEXT();
L_SLTU: RA = RB < RC; NEXT();
L_SLTS: RA = s64(RB) < s64(RC); NEXT();
L_SHL32: SET32(LO(RB) << (LO(RC) & 31)); NEXT();
L_SHL64: RA = RB << (RC & 63); NEXT();
L_SHR32: SET32(LO(RB) >> (LO(RC) & 31)); NEXT();
L_SHR64: RA = RB >> (RC & 63); NEXT();
L_SAR32: SET32((uint32_t)(s32(LO(RB)) >> (LO(RC) & 31))); NEXT();
L_SAR64: RA = (uint64_t)(s64(RB) >> (RC & 63)); NEXT();
L_DIVU32: SET32(divu32(LO(RB), LO(RC))); NEXT();
L_DIVU64: RA = divu64(RB, RC); NEXT();
L_DIVS32: SET32(divs32(LO(RB), LO(RC))); NEXT();
L_DIVS64: RA = divs64(RB, RC); NEXT();
L_REMU32: SET32(remu32(LO(RB), LO(RC))); NEXT();
L_REMU64: RA = remu64(RB, RC); NEXT();
L_REMS32: SET32(rems32(LO(RB), LO(RC))); NEXT();
L_REMS64: RA = rems64(RB, RC); NEXT();
L_CMOVZ: if (RC == 0) RA = RB; NEXT();
L_CMOVNZ: if (RC != 0) RA = RB; NEXT();
L_ANDN32: SET32(LO(RB) & ~LO(RC)); NEXT();
L_ANDN64: RA = RB & ~RC; NEXT();
L_ORN32: SET32(LO(RB) | ~LO(RC)); NEXT();
L_ORN64: RA = RB | ~RC; NEXT();
L_XNOR32: SET32(~(LO(RB) ^ LO(RC))); NEXT();
L_XNOR64: RA = ~(RB ^ RC); NEXT();
L_MAX32: SET32(s32(LO(RB)) > s32(LO(RC)) ? LO(RB) : LO(RC)); NEXT();
L_MAX64: RA = s64(RB) > s64(RC) ? RB : RC; NEXT();
L_MAXU32: SET32(LO(RB) > LO(RC) ? LO(RB) : LO(RC)); NEXT();
L_MAXU64: RA = RB > RC ? RB : RC; NEXT();
L_MIN32: SET32(s32(LO(RB)) < s32(LO(RC)) ? LO(RB) : LO(RC)); NEXT();
L_MIN64: RA = s64(RB) < s64(RC) ? RB : RC; NEXT();
L_MINU32: SET32(LO(RB) < LO(RC) ? LO(RB) : LO(RC)); NEXT();
L_MINU64: RA = RB < RC ? RB : RC; NEXT();
L_ROL32: SET32(rotl32(LO(RB), LO(RC))); NEXT();
L_ROL64: RA = rotl64(RB, RC); NEXT();
L_ROR32: SET32(rotr32(LO(RB), LO(RC))); NEXT();
L_ROR64: RA = rotr64(RB, RC); NEXT();

L_ADDI32: SET32(LO(RB) + ip->x); NEXT();
L_ADDI64: RA = RB + X_IMM; NEXT();
L_ANDI: RA = RB & X_IMM; NEXT();
L_XORI: RA = RB ^ X_IMM; NEXT();
L_ORI: RA = RB | X_IMM; NEXT();
L_MULI32: SET32(LO(RB) * ip->x); NEXT();
L_MULI64: RA = RB * X_IMM; NEXT();
L_SLTUI: RA = RB < X_IMM; NEXT();
L_SLTSI: RA = s64(RB) < s64(X_IMM); NEXT();
L_SHLI32: SET32(LO(RB) << (ip->x & 31)); NEXT();
L_SHLI64: RA = RB << (ip->x & 63); NEXT();
L_SHRI32: SET32(LO(RB) >> (ip->x & 31)); NEXT();
L_SHRI64: RA = RB >> (ip->x & 63); NEXT();
L_SARI32: SET32((uint32_t)(s32(LO(RB)) >> (ip->x & 31))); NEXT();
L_SARI64: RA = (uint64_t)(s64(RB) >> (ip->x & 63)); NEXT();
L_NEGADDI32: SET32(ip->x - LO(RB)); NEXT();
L_NEGADDI64: RA = X_IMM - RB; NEXT();
L_SGTUI: RA = RB > X_IMM; NEXT();
L_SGTSI: RA = s64(RB) > s64(X_IMM); NEXT();
L_SHRI_ALT32: SET32(ip->x >> (LO(RB) & 31)); NEXT();
L_SHRI_ALT64: RA = X_IMM >> (RB & 63); NEXT();
L_SARI_ALT32: SET32((uint32_t)(s32(ip->x) >> (LO(RB) & 31))); NEXT();
L_SARI_ALT64: RA = (uint64_t)(s64(X_IMM) >> (RB & 63)); NEXT();
L_SHLI_ALT32: SET32(ip->x << (LO(RB) & 31)); NEXT();
L_SHLI_ALT64: RA = X_IMM << (RB & 63); NEXT();
L_CMOVZI: if (RB == 0) RA = X_IMM; NEXT();
L_CMOVNZI: if (RB != 0) RA = X_IMM; NEXT();
L_RORI32: SET32(rotr32(LO(RB), ip->x)); NEXT();
L_RORI_ALT32: SET32(rotr32(ip->x, LO(RB))); NEXT();
L_RORI64: RA = rotr64(RB, ip->x); NEXT();
L_RORI_ALT64: RA = rotr64(X_IMM, RB); NEXT();

L_MOV: RA = RB; NEXT();
L_CLZ32: SET32(clz32(LO(RB))); NEXT();
L_CLZ64: RA = clz64(RB); NEXT();
L_CTZ32: SET32(ctz32(LO(RB))); NEXT();
L_CTZ64: RA = ctz64(RB); NEXT();
L_POPCNT32: SET32((uint32_t)__builtin_popcount(LO(RB))); NEXT();
L_POPCNT64: RA = (uint64_t)__builtin_popcountll(RB); NEXT();
L_SEXT8_32: SET32((uint32_t)(int32_t)(int8_t)(uint8_t)RB); NEXT();
L_SEXT8_64: RA = (uint64_t)(int64_t)(int8_t)(uint8_t)RB; NEXT();
L_SEXT16_32: SET32((uint32_t)(int32_t)(int16_t)(uint16_t)RB); NEXT();
L_SEXT16_64: RA = (uint64_t)(int64_t)(int16_t)(uint16_t)RB; NEXT();
L_ZEXT16_32: SET32((uint16_t)RB); NEXT();
L_ZEXT16_64: RA = (uint16_t)RB; NEXT();
L_REV32: SET32(__builtin_bswap32(LO(RB))); NEXT();
L_REV64: RA = __builtin_bswap64(RB); NEXT();
L_LI: RA = X_IMM; NEXT();
L_LI64: RA = (uint64_t)ip->x | ((uint64_t)ip->y << 32); NEXT();
L_NOP: NEXT();

interrupted:
    state->pc = ip->pc;
    state->resume = (uint32_t)(ip - insns);
    exit_reason = VM_EXIT_INTERRUPTED;
    goto out;
yield:
    /* before the block is charged: resuming re-runs this record */
    state->pc = ip->pc;
    state->resume = (uint32_t)(ip - insns);
    exit_reason = VM_EXIT_YIELD;
    goto out;
memory_stop:
    state->pc = ip->pc;
    state->resume = (uint32_t)(ip - insns);
    if (access == VM_ACCESS_PANIC) {
        state->arg = VM_TRAP_MEMORY_ACCESS;
        exit_reason = VM_EXIT_TRAP;
    } else {
        state->arg = fault;
        exit_reason = VM_EXIT_PAGEFAULT;
    }
out:
    r[ZERO_REG] = 0;
    state->gas = gas;
    return exit_reason;
}
