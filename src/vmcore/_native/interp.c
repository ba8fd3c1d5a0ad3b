/* The interpreter.  Freestanding C11 (+ GNU computed goto).
 *
 * vm_module_build() walks the code once, the way the reference's unbounded
 * instruction iterator does, and lays every instruction out in a flat array
 * of 24-byte vm_insn records with operands decoded and branch targets
 * resolved to array indices.  Every basic block starts with a CHARGE record
 * carrying the block's gas cost, so the dispatch loop never re-parses code
 * and never checks code bounds.  Guest registers live in state->regs; index
 * 13 is a constant zero so absolute loads/stores share the indirect paths.
 *
 * Semantics follow PolkaVM's interpreter (crates/polkavm/src/interpreter.rs)
 * and the Gray Paper appendix A; where the two differ the reference wins,
 * except the low-memory panic zone (VM_LOW_MEMORY_PANIC_LIMIT).
 */
#include "vmcore/interp.h"

#include <stdatomic.h>

#include "vmcore/vmctx.h"

#define ZERO_REG 13

/* Interpreter handlers.  Arguments: a/b/c registers, x/y/z immediates or
 * compiled indices (see the builder for each). */
#define HANDLERS(X) \
    X(CHARGE) X(CHECK) X(STEP) X(TRAP) X(JUMP) X(JUMP_IND) X(LI_JUMP) X(LI_JUMP_IND) X(ECALLI) X(SBRK) X(MEMSET) \
    X(BEQ) X(BNE) X(BLTU) X(BLTS) X(BGEU) X(BGES) \
    X(BEQI) X(BNEI) X(BLTUI) X(BLTSI) X(BGEUI) X(BGESI) X(BLEUI) X(BLESI) X(BGTUI) X(BGTSI) \
    X(LD_U8) X(LD_I8) X(LD_U16) X(LD_I16) X(LD_U32) X(LD_I32) X(LD_U64) \
    X(ST_U8) X(ST_U16) X(ST_U32) X(ST_U64) X(STI_U8) X(STI_U16) X(STI_U32) X(STI_U64) \
    X(ADD32) X(ADD64) X(SUB32) X(SUB64) X(AND) X(XOR) X(OR) X(MUL32) X(MUL64) \
    X(MULHSS32) X(MULHSS64) X(MULHUU32) X(MULHUU64) X(MULHSU32) X(MULHSU64) X(SLTU) X(SLTS) \
    X(SHL32) X(SHL64) X(SHR32) X(SHR64) X(SAR32) X(SAR64) \
    X(DIVU32) X(DIVU64) X(DIVS32) X(DIVS64) X(REMU32) X(REMU64) X(REMS32) X(REMS64) \
    X(CMOVZ) X(CMOVNZ) X(ANDN32) X(ANDN64) X(ORN32) X(ORN64) X(XNOR32) X(XNOR64) \
    X(MAX32) X(MAX64) X(MAXU32) X(MAXU64) X(MIN32) X(MIN64) X(MINU32) X(MINU64) \
    X(ROL32) X(ROL64) X(ROR32) X(ROR64) \
    X(ADDI32) X(ADDI64) X(ANDI) X(XORI) X(ORI) X(MULI32) X(MULI64) X(SLTUI) X(SLTSI) \
    X(SHLI32) X(SHLI64) X(SHRI32) X(SHRI64) X(SARI32) X(SARI64) X(NEGADDI32) X(NEGADDI64) \
    X(SGTUI) X(SGTSI) X(SHRI_ALT32) X(SHRI_ALT64) X(SARI_ALT32) X(SARI_ALT64) X(SHLI_ALT32) X(SHLI_ALT64) \
    X(CMOVZI) X(CMOVNZI) X(RORI32) X(RORI_ALT32) X(RORI64) X(RORI_ALT64) \
    X(MOV) X(CLZ32) X(CLZ64) X(CTZ32) X(CTZ64) X(POPCNT32) X(POPCNT64) \
    X(SEXT8_32) X(SEXT8_64) X(SEXT16_32) X(SEXT16_64) X(ZEXT16_32) X(ZEXT16_64) X(REV32) X(REV64) \
    X(LI) X(LI64) X(NOP) X(END)

enum {
#define H_ENUM(name) H_##name,
    HANDLERS(H_ENUM)
#undef H_ENUM
    H_COUNT
};

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

enum { ACCESS_OK = 0, ACCESS_FAULT = 1, ACCESS_PANIC = 2 };

static inline uint32_t page_of(const vm_memory *m, uint32_t address)
{
    return address & ~(m->page_size - 1);
}

static inline uint8_t perm_at(const vm_memory *m, uint32_t address)
{
    return m->perms[address >> m->page_shift];
}

/* Slow path: which page faults, following the reference's order (low page
 * first; for writes, missing pages before read-only ones). */
static int access_slow(const vm_memory *m, uint32_t address, uint32_t length, uint8_t need, uint32_t *fault)
{
    uint32_t last = address + length - 1;
    int result;
    if ((uint64_t)address + length > 0xffffffffull) {
        /* address + length overflows 32 bits (even when the last byte is
         * 0xffffffff): the reference's checked_add treats it as a wrap */
        uint32_t top = page_of(m, 0xffffffffu);
        if (perm_at(m, top) != VM_PERM_NONE)
            return ACCESS_PANIC;
        *fault = top;
        result = ACCESS_FAULT;
    } else {
        uint32_t lo = page_of(m, address), hi = page_of(m, last);
        uint8_t plo = perm_at(m, lo), phi = perm_at(m, hi);
        if (plo == VM_PERM_NONE) {
            *fault = lo;
        } else if (phi == VM_PERM_NONE) {
            *fault = hi;
        } else if (plo < need) {
            *fault = lo;
        } else if (phi < need) {
            *fault = hi;
        } else {
            return ACCESS_OK;
        }
        result = ACCESS_FAULT;
    }
    return *fault < VM_LOW_MEMORY_PANIC_LIMIT ? ACCESS_PANIC : result;
}

static inline int access_check(const vm_memory *m, uint32_t address, uint32_t length, uint8_t need, uint32_t *fault)
{
    uint32_t last = address + length - 1;
    if (__builtin_expect(address < 0u - length && perm_at(m, address) >= need && perm_at(m, last) >= need, 1))
        return ACCESS_OK;
    return access_slow(m, address, length, need, fault);
}

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
    if (end > 0x100000000ull) {
        *page = 0xffffffffu & ~(memory->page_size - 1);
        return 1;
    }
    for (uint64_t p = page_of(memory, address); p < end; p += memory->page_size) {
        if (perm_at(memory, (uint32_t)p) < need) {
            *page = (uint32_t)p;
            return 1;
        }
    }
    return 0;
}

void vm_memory_set_perms(const vm_memory *memory, uint32_t address, uint64_t length, uint8_t perm)
{
    if (length == 0)
        return;
    uint64_t start = page_of(memory, address);
    uint64_t end = (uint64_t)address + length;
    if (end > 0x100000000ull)
        end = 0x100000000ull;
    for (uint64_t p = start; p < end; p += memory->page_size)
        memory->perms[p >> memory->page_shift] = perm;
}

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

/* ---- module building ---- */

void vm_module_sizes(uint32_t code_len, uint32_t jump_table_count, const vm_module_config *config,
                     size_t *insn_capacity)
{
    (void)jump_table_count;
    /* Per code byte at most: one instruction, one implicit trap, one charge
     * and (tracing) one step each; plus the end guard. */
    size_t per = 3u;
    if (config->step_tracing)
        per *= 2u;
    *insn_capacity = ((size_t)code_len + 1u) * per + 2u;
}

typedef struct builder {
    const vm_module_config *config;
    int is64;
    const uint8_t *code;
    const uint8_t *bitmask;
    uint32_t code_len;
    vm_insn *insns;
    uint32_t count;
    uint32_t *pc_to_index;
    uint32_t charge_index; /* open block's CHARGE record, or NONE */
    uint8_t entry_flag;    /* ENTRY_OK while emitting a block the host may enter */
    vm_gas_sim gas;        /* the open block's cost so far (gas metering only) */
} builder;

/* vm_insn.pad: the host may start execution at this record's pc (the
 * reference's find_start_of_basic_block succeeds there). */
#define ENTRY_OK 1

static vm_insn *emit(builder *b, uint16_t h, uint32_t pc)
{
    vm_insn *i = &b->insns[b->count++];
    i->op = h;
    i->a = i->b = i->c = ZERO_REG;
    i->pad = b->entry_flag;
    i->pad2 = 0;
    i->pc = pc;
    i->x = i->y = i->z = 0;
    return i;
}

static int valid_target(const builder *b, uint32_t target)
{
    return vm_is_basic_block_start((vm_isa)b->config->isa, b->code, b->code_len, b->bitmask, target);
}

/* Handler for an instruction; width-dependent choices made here once. */
static uint16_t handler_for(vm_op op, int is64)
{
#define W(h32, h64) (is64 ? H_##h64 : H_##h32)
    switch (op) {
    case VM_OP_add_32: return H_ADD32;
    case VM_OP_add_64: return H_ADD64;
    case VM_OP_sub_32: return H_SUB32;
    case VM_OP_sub_64: return H_SUB64;
    case VM_OP_and: return H_AND;
    case VM_OP_xor: return H_XOR;
    case VM_OP_or: return H_OR;
    case VM_OP_mul_32: return H_MUL32;
    case VM_OP_mul_64: return H_MUL64;
    case VM_OP_mul_upper_signed_signed: return W(MULHSS32, MULHSS64);
    case VM_OP_mul_upper_unsigned_unsigned: return W(MULHUU32, MULHUU64);
    case VM_OP_mul_upper_signed_unsigned: return W(MULHSU32, MULHSU64);
    case VM_OP_set_less_than_unsigned: return H_SLTU;
    case VM_OP_set_less_than_signed: return H_SLTS;
    case VM_OP_shift_logical_left_32: return H_SHL32;
    case VM_OP_shift_logical_left_64: return H_SHL64;
    case VM_OP_shift_logical_right_32: return H_SHR32;
    case VM_OP_shift_logical_right_64: return H_SHR64;
    case VM_OP_shift_arithmetic_right_32: return H_SAR32;
    case VM_OP_shift_arithmetic_right_64: return H_SAR64;
    case VM_OP_div_unsigned_32: return H_DIVU32;
    case VM_OP_div_unsigned_64: return H_DIVU64;
    case VM_OP_div_signed_32: return H_DIVS32;
    case VM_OP_div_signed_64: return H_DIVS64;
    case VM_OP_rem_unsigned_32: return H_REMU32;
    case VM_OP_rem_unsigned_64: return H_REMU64;
    case VM_OP_rem_signed_32: return H_REMS32;
    case VM_OP_rem_signed_64: return H_REMS64;
    case VM_OP_cmov_if_zero: return H_CMOVZ;
    case VM_OP_cmov_if_not_zero: return H_CMOVNZ;
    case VM_OP_and_inverted: return W(ANDN32, ANDN64);
    case VM_OP_or_inverted: return W(ORN32, ORN64);
    case VM_OP_xnor: return W(XNOR32, XNOR64);
    case VM_OP_maximum: return W(MAX32, MAX64);
    case VM_OP_maximum_unsigned: return W(MAXU32, MAXU64);
    case VM_OP_minimum: return W(MIN32, MIN64);
    case VM_OP_minimum_unsigned: return W(MINU32, MINU64);
    case VM_OP_rotate_left_32: return H_ROL32;
    case VM_OP_rotate_left_64: return H_ROL64;
    case VM_OP_rotate_right_32: return H_ROR32;
    case VM_OP_rotate_right_64: return H_ROR64;
    case VM_OP_add_imm_32: return H_ADDI32;
    case VM_OP_add_imm_64: return H_ADDI64;
    case VM_OP_and_imm: return H_ANDI;
    case VM_OP_xor_imm: return H_XORI;
    case VM_OP_or_imm: return H_ORI;
    case VM_OP_mul_imm_32: return H_MULI32;
    case VM_OP_mul_imm_64: return H_MULI64;
    case VM_OP_set_less_than_unsigned_imm: return H_SLTUI;
    case VM_OP_set_less_than_signed_imm: return H_SLTSI;
    case VM_OP_shift_logical_left_imm_32: return H_SHLI32;
    case VM_OP_shift_logical_left_imm_64: return H_SHLI64;
    case VM_OP_shift_logical_right_imm_32: return H_SHRI32;
    case VM_OP_shift_logical_right_imm_64: return H_SHRI64;
    case VM_OP_shift_arithmetic_right_imm_32: return H_SARI32;
    case VM_OP_shift_arithmetic_right_imm_64: return H_SARI64;
    case VM_OP_negate_and_add_imm_32: return H_NEGADDI32;
    case VM_OP_negate_and_add_imm_64: return H_NEGADDI64;
    case VM_OP_set_greater_than_unsigned_imm: return H_SGTUI;
    case VM_OP_set_greater_than_signed_imm: return H_SGTSI;
    case VM_OP_shift_logical_right_imm_alt_32: return H_SHRI_ALT32;
    case VM_OP_shift_logical_right_imm_alt_64: return H_SHRI_ALT64;
    case VM_OP_shift_arithmetic_right_imm_alt_32: return H_SARI_ALT32;
    case VM_OP_shift_arithmetic_right_imm_alt_64: return H_SARI_ALT64;
    case VM_OP_shift_logical_left_imm_alt_32: return H_SHLI_ALT32;
    case VM_OP_shift_logical_left_imm_alt_64: return H_SHLI_ALT64;
    case VM_OP_cmov_if_zero_imm: return H_CMOVZI;
    case VM_OP_cmov_if_not_zero_imm: return H_CMOVNZI;
    case VM_OP_rotate_right_imm_32: return H_RORI32;
    case VM_OP_rotate_right_imm_alt_32: return H_RORI_ALT32;
    case VM_OP_rotate_right_imm_64: return H_RORI64;
    case VM_OP_rotate_right_imm_alt_64: return H_RORI_ALT64;
    case VM_OP_move_reg: return H_MOV;
    case VM_OP_count_leading_zero_bits_32: return H_CLZ32;
    case VM_OP_count_leading_zero_bits_64: return H_CLZ64;
    case VM_OP_count_trailing_zero_bits_32: return H_CTZ32;
    case VM_OP_count_trailing_zero_bits_64: return H_CTZ64;
    case VM_OP_count_set_bits_32: return H_POPCNT32;
    case VM_OP_count_set_bits_64: return H_POPCNT64;
    case VM_OP_sign_extend_8: return W(SEXT8_32, SEXT8_64);
    case VM_OP_sign_extend_16: return W(SEXT16_32, SEXT16_64);
    case VM_OP_zero_extend_16: return W(ZEXT16_32, ZEXT16_64);
    case VM_OP_reverse_byte: return W(REV32, REV64);
    case VM_OP_load_u8: case VM_OP_load_indirect_u8: return H_LD_U8;
    case VM_OP_load_i8: case VM_OP_load_indirect_i8: return H_LD_I8;
    case VM_OP_load_u16: case VM_OP_load_indirect_u16: return H_LD_U16;
    case VM_OP_load_i16: case VM_OP_load_indirect_i16: return H_LD_I16;
    case VM_OP_load_u32: case VM_OP_load_indirect_u32: return H_LD_U32;
    case VM_OP_load_i32: case VM_OP_load_indirect_i32: return H_LD_I32;
    case VM_OP_load_u64: case VM_OP_load_indirect_u64: return H_LD_U64;
    case VM_OP_store_u8: case VM_OP_store_indirect_u8: return H_ST_U8;
    case VM_OP_store_u16: case VM_OP_store_indirect_u16: return H_ST_U16;
    case VM_OP_store_u32: case VM_OP_store_indirect_u32: return H_ST_U32;
    case VM_OP_store_u64: case VM_OP_store_indirect_u64: return H_ST_U64;
    case VM_OP_store_imm_u8: case VM_OP_store_imm_indirect_u8: return H_STI_U8;
    case VM_OP_store_imm_u16: case VM_OP_store_imm_indirect_u16: return H_STI_U16;
    case VM_OP_store_imm_u32: case VM_OP_store_imm_indirect_u32: return H_STI_U32;
    case VM_OP_store_imm_u64: case VM_OP_store_imm_indirect_u64: return H_STI_U64;
    case VM_OP_branch_eq: return H_BEQ;
    case VM_OP_branch_not_eq: return H_BNE;
    case VM_OP_branch_less_unsigned: return H_BLTU;
    case VM_OP_branch_less_signed: return H_BLTS;
    case VM_OP_branch_greater_or_equal_unsigned: return H_BGEU;
    case VM_OP_branch_greater_or_equal_signed: return H_BGES;
    case VM_OP_branch_eq_imm: return H_BEQI;
    case VM_OP_branch_not_eq_imm: return H_BNEI;
    case VM_OP_branch_less_unsigned_imm: return H_BLTUI;
    case VM_OP_branch_less_signed_imm: return H_BLTSI;
    case VM_OP_branch_greater_or_equal_unsigned_imm: return H_BGEUI;
    case VM_OP_branch_greater_or_equal_signed_imm: return H_BGESI;
    case VM_OP_branch_less_or_equal_unsigned_imm: return H_BLEUI;
    case VM_OP_branch_less_or_equal_signed_imm: return H_BLESI;
    case VM_OP_branch_greater_unsigned_imm: return H_BGTUI;
    case VM_OP_branch_greater_signed_imm: return H_BGTSI;
    case VM_OP_load_imm: return H_LI;
    case VM_OP_load_imm64: return H_LI64;
    default: return H_TRAP;
    }
#undef W
}

/* Emits one decoded instruction; targets are patched in a second pass
 * (stored as guest pcs in y/z until then). */
static void emit_instruction(builder *b, const vm_instruction *ins)
{
    vm_op op = (vm_op)ins->op;
    uint32_t pc = ins->offset;
    vm_insn *i;
    switch (op) {
    case VM_OP_unlikely:
        emit(b, H_NOP, pc); /* a hint: costs gas, executes nothing */
        return;
    case VM_OP_trap:
    case VM_OP_INVALID:
        emit(b, H_TRAP, pc);
        return;
    case VM_OP_fallthrough:
        /* Into the next block.  Past the end of the code PolkaVM 0.35
         * panics at the fallthrough itself and charges nothing more (the
         * v0.4 vector inst_fallthrough expected the implicit trap past the
         * end to run as a block of its own: superseded). */
        if (ins->next >= b->code_len) {
            emit(b, H_TRAP, pc);
            return;
        }
        i = emit(b, H_JUMP, pc);
        i->y = ins->next;
        i->z = 1; /* target needs no jump-target check */
        return;
    case VM_OP_jump:
        i = emit(b, H_JUMP, pc);
        i->y = ins->imm1;
        return;
    case VM_OP_jump_indirect:
        i = emit(b, H_JUMP_IND, pc);
        i->b = ins->reg[0];
        i->x = ins->imm1;
        return;
    case VM_OP_load_imm_and_jump:
        i = emit(b, H_LI_JUMP, pc);
        i->a = ins->reg[0];
        i->x = ins->imm1;
        i->y = ins->imm2;
        return;
    case VM_OP_load_imm_and_jump_indirect:
        i = emit(b, H_LI_JUMP_IND, pc);
        i->a = ins->reg[0];
        i->b = ins->reg[1];
        i->x = ins->imm1;
        i->y = ins->imm2;
        return;
    case VM_OP_ecalli:
        i = emit(b, H_ECALLI, pc);
        i->x = ins->imm1;
        i->y = ins->next;
        return;
    case VM_OP_sbrk:
        i = emit(b, H_SBRK, pc);
        i->a = ins->reg[0];
        i->b = ins->reg[1];
        return;
    case VM_OP_memset:
        emit(b, H_MEMSET, pc);
        return;
    case VM_OP_load_imm64:
        i = emit(b, H_LI64, pc);
        i->a = ins->reg[0];
        i->x = (uint32_t)ins->imm64;
        i->y = (uint32_t)(ins->imm64 >> 32);
        return;
    default:
        break;
    }

    uint16_t h = handler_for(op, b->is64);
    i = emit(b, h, pc);
    switch ((vm_format)ins->format) {
    case VM_FMT_REG_REG_REG:
        i->a = ins->reg[0];
        i->b = ins->reg[1];
        i->c = ins->reg[2];
        break;
    case VM_FMT_REG_REG_IMM:
        /* loads: dst, base; stores: value, base; ALU: dst, src */
        i->a = ins->reg[0];
        i->b = ins->reg[1];
        i->x = ins->imm1;
        break;
    case VM_FMT_REG_REG:
        i->a = ins->reg[0];
        i->b = ins->reg[1];
        break;
    case VM_FMT_REG_IMM:
        /* load_imm, absolute loads (dst, address), stores (value, address) */
        i->a = ins->reg[0];
        i->x = ins->imm1;
        break;
    case VM_FMT_IMM_IMM:
        /* store_imm_*: address, value */
        i->x = ins->imm1;
        i->y = ins->imm2;
        break;
    case VM_FMT_REG_IMM_IMM:
        /* store_imm_indirect_*: base, offset, value */
        i->b = ins->reg[0];
        i->x = ins->imm1;
        i->y = ins->imm2;
        break;
    case VM_FMT_REG_IMM_OFFSET:
        /* branch_*_imm: reg, imm, target */
        i->a = ins->reg[0];
        i->x = ins->imm1;
        i->y = ins->imm2;
        i->z = ins->next;
        break;
    case VM_FMT_REG_REG_OFFSET:
        i->a = ins->reg[0];
        i->b = ins->reg[1];
        i->y = ins->imm1;
        i->z = ins->next;
        break;
    default:
        break;
    }
}

static int is_branch(uint16_t h) { return h >= H_BEQ && h <= H_BGTSI; }

void vm_module_build(vm_module *module, const vm_module_config *config, const uint8_t *code, uint32_t code_len,
                     const uint8_t *bitmask, const uint32_t *jump_table_targets, uint32_t jump_table_count,
                     vm_insn *insns, uint32_t *pc_to_index, uint32_t *jump_table)
{
    builder b = {config, vm_isa_is_64_bit((vm_isa)config->isa), code, bitmask, code_len, insns, 0, pc_to_index,
                 VM_INDEX_NONE, 0, {0}};
    if (config->gas_metering)
        vm_gas_init(&b.gas, &config->gas, (vm_isa)config->isa, code, code_len);
    for (uint32_t pc = 0; pc <= code_len; pc++)
        pc_to_index[pc] = VM_INDEX_NONE;

    /* Pass 1: lay out instructions and blocks. */
    int block_open = 0;
    int next_enterable = code_len > 0 && vm_bitmask_bit(bitmask, code_len, 0);
    uint32_t offset = 0;
    vm_instruction ins;
    int pending_invalid = 0;
    uint32_t invalid_at = 0;
    if (code_len > 0 && !vm_bitmask_bit(bitmask, code_len, 0)) {
        pending_invalid = 1;
        invalid_at = 0;
    }
    for (;;) {
        int have;
        if (pending_invalid) {
            ins.offset = invalid_at;
            ins.next = invalid_at + 1;
            ins.op = VM_OP_INVALID;
            ins.format = VM_FMT_ARGLESS;
            ins.next_is_invalid = 0;
            have = 1;
        } else if (offset < code_len) {
            vm_decode((vm_isa)config->isa, code, code_len, bitmask, offset, &ins);
            have = 1;
        } else {
            have = 0;
        }
        if (!have)
            break;

        /* Entry is allowed in blocks reached from offset 0 or right after
         * a block-ending instruction, never at an implicit trap or in a
         * block that follows a gap in the bitmask. */
        b.entry_flag = (!pending_invalid && (block_open ? b.entry_flag : next_enterable)) ? ENTRY_OK : 0;
        if (!block_open) {
            block_open = 1;
            if (config->step_tracing)
                emit(&b, H_STEP, ins.offset);
            /* Every block starts with a CHARGE record (gas and the
             * interrupt flag) or, without metering, a CHECK (the flag). */
            b.charge_index = b.count;
            emit(&b, config->gas_metering ? H_CHARGE : H_CHECK, ins.offset);
            if (pc_to_index[ins.offset] == VM_INDEX_NONE)
                pc_to_index[ins.offset] = b.count - 1u - (config->step_tracing ? 1u : 0u);
        } else {
            if (config->step_tracing)
                emit(&b, H_STEP, ins.offset);
            if (pc_to_index[ins.offset] == VM_INDEX_NONE)
                pc_to_index[ins.offset] = b.count - (config->step_tracing ? 1u : 0u);
        }
        if (config->gas_metering)
            vm_gas_feed(&b.gas, &ins);
        emit_instruction(&b, &ins);

        if (vm_op_flags((vm_op)ins.op) & VM_F_ENDS_BLOCK) {
            block_open = 0;
            if (config->gas_metering)
                b.insns[b.charge_index].x = vm_gas_take(&b.gas);
        }

        next_enterable = !pending_invalid && !ins.next_is_invalid;
        if (pending_invalid) {
            pending_invalid = 0;
            /* continue at the next marked instruction */
            offset = invalid_at + 1;
            while (offset < code_len && !vm_bitmask_bit(bitmask, code_len, offset))
                offset++;
            if (invalid_at >= code_len)
                offset = code_len;
            continue;
        }
        offset = ins.next;
        if (ins.next_is_invalid) {
            pending_invalid = 1;
            invalid_at = ins.next;
        }
    }
    if (block_open && config->gas_metering) /* (every walk ends a block; just in case) */
        b.insns[b.charge_index].x = vm_gas_take(&b.gas);
    /* A guard record: running past the last record traps. */
    emit(&b, H_TRAP, code_len);

    /* Pass 2: resolve static targets to indices. */
    for (uint32_t k = 0; k < b.count; k++) {
        vm_insn *i = &insns[k];
        if (i->op == H_JUMP) {
            uint32_t target = i->y;
            int ok = i->z ? 1 : valid_target(&b, target);
            if (ok && pc_to_index[target] != VM_INDEX_NONE) {
                i->y = pc_to_index[target];
            } else {
                i->op = H_TRAP;
            }
            i->z = 0;
        } else if (i->op == H_LI_JUMP) {
            uint32_t target = i->y;
            i->y = (valid_target(&b, target) && pc_to_index[target] != VM_INDEX_NONE) ? pc_to_index[target] : VM_INDEX_NONE;
        } else if (is_branch(i->op)) {
            /* Both destinations must be jump targets, else the branch
             * always traps (as the reference does). */
            uint32_t t = i->y, f = i->z;
            if (valid_target(&b, t) && valid_target(&b, f) && pc_to_index[t] != VM_INDEX_NONE &&
                pc_to_index[f] != VM_INDEX_NONE) {
                i->y = pc_to_index[t];
                i->z = pc_to_index[f];
            } else {
                i->op = H_TRAP;
            }
        }
    }
    for (uint32_t k = 0; k < jump_table_count; k++) {
        uint32_t target = jump_table_targets[k];
        jump_table[k] = (target < code_len && valid_target(&b, target)) ? pc_to_index[target] : VM_INDEX_NONE;
    }

    module->config = *config;
    module->is_64_bit = b.is64;
    module->code_len = code_len;
    module->insns = insns;
    module->insn_count = b.count;
    module->pc_to_index = pc_to_index;
    module->jump_table = jump_table;
    module->jump_table_count = jump_table_count;
}

int vm_state_set_pc(vm_state *state, const vm_module *module, uint32_t pc)
{
    state->pc = pc;
    if (pc > module->code_len || module->pc_to_index[pc] == VM_INDEX_NONE)
        return VM_ENTRY_NOT_AN_INSTRUCTION;
    uint32_t index = module->pc_to_index[pc];
    if (!(module->insns[index].pad & ENTRY_OK))
        return VM_ENTRY_NOT_AN_INSTRUCTION;
    /* Entering mid-block charges the whole block up front (the reference's
     * charge-on-entry); a block start charges through its CHARGE record. */
    const vm_insn *first = &module->insns[index];
    if (first->op == H_STEP)
        first++;
    if (module->config.gas_metering && first->op != H_CHARGE && first->op != H_CHECK) {
        uint32_t k = index;
        while (k > 0 && module->insns[k].op != H_CHARGE)
            k--;
        int64_t cost = module->insns[k].x;
        if (cost > state->gas)
            return VM_ENTRY_OUT_OF_GAS;
        state->gas -= cost;
    }
    state->resume = index;
    return VM_ENTRY_OK;
}

uint32_t vm_module_block_costs(const vm_module *module, uint32_t *pcs, uint32_t *costs, uint32_t capacity)
{
    uint32_t count = 0;
    if (!module->config.gas_metering)
        return 0;
    for (uint32_t k = 0; k < module->insn_count; k++) {
        const vm_insn *i = &module->insns[k];
        if (i->op != H_CHARGE)
            continue;
        if (count < capacity) {
            pcs[count] = i->pc;
            costs[count] = i->x;
        }
        count++;
    }
    return count;
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
    int64_t gas = state->gas;
    /* Counted down at every block start; 0 means no limit (it would take
     * centuries to count down from 2^64). */
    uint64_t fuel = state->fuel ? state->fuel : ~(uint64_t)0;
    uint32_t fault;
    vm_exit exit_reason;
    int access;

#define DISPATCH() goto *labels[ip->op]
#define NEXT() do { ip++; DISPATCH(); } while (0)
#define JUMP_TO(index) do { ip = insns + (index); DISPATCH(); } while (0)
#define X_IMM ((uint64_t)sext32(ip->x))
#define RA r[ip->a]
#define RB r[ip->b]
#define RC r[ip->c]
#define LO(v) ((uint32_t)(v))
#define SET32(v) (RA = sext32((uint32_t)(v)))
#define ADDR() ((uint32_t)(RB + X_IMM))

    r[ZERO_REG] = 0;
    DISPATCH();

L_CHECK:
    if (__builtin_expect(atomic_load_explicit(&state->interrupt, memory_order_relaxed), 0))
        goto interrupted;
    if (__builtin_expect(--fuel == 0, 0))
        goto yield;
    NEXT();
L_CHARGE:
    if (__builtin_expect(atomic_load_explicit(&state->interrupt, memory_order_relaxed), 0))
        goto interrupted;
    if (__builtin_expect(--fuel == 0, 0))
        goto yield;
    if (__builtin_expect(gas < (int64_t)ip->x, 0)) { /* no overflow near INT64_MIN */
        state->pc = ip->pc;
        state->resume = (uint32_t)(ip - insns);
        exit_reason = VM_EXIT_OUT_OF_GAS;
        goto out;
    }
    gas -= ip->x;
    NEXT();
L_STEP:
    state->pc = ip->pc;
    state->resume = (uint32_t)(ip - insns) + 1;
    exit_reason = VM_EXIT_STEP;
    goto out;
L_TRAP:
    state->pc = ip->pc;
    state->resume = (uint32_t)(ip - insns);
    exit_reason = VM_EXIT_TRAP;
    goto out;
L_END:
    goto L_TRAP;
L_JUMP:
    JUMP_TO(ip->y);

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
            slot_ - 1 >= module->jump_table_count || module->jump_table[slot_ - 1] == VM_INDEX_NONE) \
            goto L_TRAP;                                                               \
        JUMP_TO(module->jump_table[slot_ - 1]);                                        \
    } while (0)

L_JUMP_IND:
    DYNAMIC_JUMP((uint32_t)(RB + X_IMM));
L_LI_JUMP:
    RA = X_IMM;
    if (ip->y == VM_INDEX_NONE)
        goto L_TRAP;
    JUMP_TO(ip->y);
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
    uint64_t a0 = r[7];
    uint32_t dst = (uint32_t)a0;
    uint8_t value = (uint8_t)r[8];
    uint64_t count = (uint32_t)r[9];
    int stopped = 0;
    while (count > 0) {
        if (module->config.gas_metering && gas == 0) {
            exit_reason = VM_EXIT_OUT_OF_GAS;
            stopped = 1;
            break;
        }
        access = access_check(memory, dst, 1, VM_PERM_WRITE, &fault);
        if (access != ACCESS_OK) {
            exit_reason = access == ACCESS_PANIC ? VM_EXIT_TRAP : VM_EXIT_PAGEFAULT;
            stopped = 1;
            break;
        }
        mem[dst] = value;
        if (module->config.gas_metering)
            gas -= 1;
        dst += 1;
        count -= 1;
    }
    r[7] = a0 + (uint64_t)(uint32_t)(dst - (uint32_t)a0);
    r[9] = count;
    if (!stopped)
        NEXT();
    state->pc = ip->pc;
    state->resume = (uint32_t)(ip - insns);
    if (exit_reason == VM_EXIT_PAGEFAULT)
        state->arg = fault;
    goto out;
}

#define BRANCH(cond) do { if (cond) JUMP_TO(ip->y); JUMP_TO(ip->z); } while (0)
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
        access = access_check(memory, (address), (size), (need), &fault);             \
        if (__builtin_expect(access != ACCESS_OK, 0))                                 \
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
    if (access == ACCESS_PANIC) {
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
