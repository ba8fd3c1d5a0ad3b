/* x86-64 encoder: out-of-line pieces (the encoders themselves are static
 * inline in include/vmcore/x64_asm.h).  Freestanding C11. */
#include "vmcore/x64_asm.h"

void x64_nops(x64_buf *b, size_t n)
{
    /* The recommended multi-byte NOP sequences (Intel SDM, table 4-12). */
    static const uint8_t nops[9][9] = {
        {0x90},
        {0x66, 0x90},
        {0x0f, 0x1f, 0x00},
        {0x0f, 0x1f, 0x40, 0x00},
        {0x0f, 0x1f, 0x44, 0x00, 0x00},
        {0x66, 0x0f, 0x1f, 0x44, 0x00, 0x00},
        {0x0f, 0x1f, 0x80, 0x00, 0x00, 0x00, 0x00},
        {0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00},
        {0x66, 0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00},
    };
    while (n > 0) {
        size_t k = n > 9 ? 9 : n;
        for (size_t i = 0; i < k; i++)
            x64_u8(b, nops[k - 1][i]);
        n -= k;
    }
}

/* ---- the form table (tests) ----
 * Memory operands are four operands: base, index, scale, disp (base -1 none,
 * -2 rip; index -1 none).  Branch targets are offsets from the start of the
 * instruction (the buffer starts at 0). */
#define X64_FORMS(X)            \
    X(mov_rr, 3)                \
    X(load, 6)                  \
    X(store, 6)                 \
    X(store_imm, 6)             \
    X(mov_r32_imm, 2)           \
    X(mov_r64_simm32, 2)        \
    X(movabs, 2)                \
    X(mov_imm64, 2)             \
    X(mov_imm64_keep_flags, 2)  \
    X(movzx_rr, 4)              \
    X(movzx_rm, 7)              \
    X(movsx_rr, 4)              \
    X(movsx_rm, 7)              \
    X(lea, 6)                   \
    X(alu_rr, 4)                \
    X(alu_rm, 7)                \
    X(alu_ri, 4)                \
    X(alu_mi, 7)                \
    X(alu_mi32, 7)              \
    X(alu_mr, 7)                \
    X(test_rr, 3)               \
    X(test_ri, 3)               \
    X(imul_rr, 3)               \
    X(imul_rri, 4)              \
    X(unary_r, 3)               \
    X(unary_m, 6)               \
    X(cdq_cqo, 1)               \
    X(shift_ri, 4)              \
    X(shift_rcl, 3)             \
    X(shiftx, 5)                \
    X(rorx, 4)                  \
    X(andn, 4)                  \
    X(mulx, 4)                  \
    X(bitcount, 4)              \
    X(bswap, 2)                 \
    X(bts_ri, 3)                \
    X(cmov, 4)                  \
    X(setcc, 2)                 \
    X(push, 1)                  \
    X(pop, 1)                   \
    X(jmp_rel32, 1)             \
    X(jcc_rel32, 2)             \
    X(call_rel32, 1)            \
    X(jmp_rel8, 1)              \
    X(jcc_rel8, 2)              \
    X(jmp_r, 1)                 \
    X(call_r, 1)                \
    X(jmp_m, 4)                 \
    X(call_m, 4)                \
    X(ret, 0)                   \
    X(ud2, 0)                   \
    X(int3, 0)                  \
    X(nops, 1)

enum {
#define X64_FORM_ENUM(name, n) X64_FORM_##name,
    X64_FORMS(X64_FORM_ENUM)
#undef X64_FORM_ENUM
    X64_FORM_COUNT
};

static const char *const form_names[X64_FORM_COUNT] = {
#define X64_FORM_NAME(name, n) #name,
    X64_FORMS(X64_FORM_NAME)
#undef X64_FORM_NAME
};

static const int form_nops[X64_FORM_COUNT] = {
#define X64_FORM_NOPS(name, n) n,
    X64_FORMS(X64_FORM_NOPS)
#undef X64_FORM_NOPS
};

const char *x64_form_name(int form, int *nops)
{
    if (form < 0 || form >= X64_FORM_COUNT)
        return 0;
    if (nops)
        *nops = form_nops[form];
    return form_names[form];
}

static int valid_reg(int64_t r) { return r >= 0 && r <= 15; }
static int valid_size(int64_t s) { return s == 1 || s == 2 || s == 4 || s == 8; }
static int valid_wide(int64_t s) { return s == 4 || s == 8; }
static int valid_16_or_wide(int64_t s) { return s == 2 || valid_wide(s); }
static int valid_alu(int64_t op) { return op >= X64_ADD && op <= X64_CMP; }
static int valid_unary(int64_t op) { return op >= X64_NOT && op <= X64_IDIV; }
static int valid_shift(int64_t op)
{
    return op == X64_ROL || op == X64_ROR || op == X64_SHL || op == X64_SHR || op == X64_SAR;
}
static int valid_cc(int64_t cc) { return cc >= X64_CC_O && cc <= X64_CC_G; }
static int valid_u8(int64_t v) { return v >= 0 && v <= 255; }

static int mem_at(const int64_t *ops, x64_mem *m)
{
    int64_t base = ops[0], index = ops[1], scale = ops[2], disp = ops[3];
    if (!(base == X64_NONE || base == X64_RIP || valid_reg(base)))
        return 0;
    if (!(index == X64_NONE || (valid_reg(index) && index != X64_RSP)))
        return 0;
    if (base == X64_RIP && index != X64_NONE)
        return 0;
    if (scale < 0 || scale > 3 || !x64_fits_i32(disp))
        return 0;
    *m = x64_base_index((int)base, (int)index, (int)scale, (int32_t)disp);
    return 1;
}

size_t x64_assemble_form(int form, const int64_t *ops, int nops, uint8_t *out)
{
    x64_buf buf = {out, out};
    x64_buf *b = &buf;
    x64_mem m;
    if (form < 0 || form >= X64_FORM_COUNT || nops != form_nops[form])
        return 0;
#define REG(i) (valid_reg(ops[i]) ? (int)ops[i] : -1)
#define NEED(cond) do { if (!(cond)) return 0; } while (0)
    switch (form) {
    case X64_FORM_mov_rr:
        NEED(valid_size(ops[0]) && REG(1) >= 0 && REG(2) >= 0);
        x64_mov_rr(b, (int)ops[0], REG(1), REG(2));
        break;
    case X64_FORM_load:
        NEED(valid_size(ops[0]) && REG(1) >= 0 && mem_at(ops + 2, &m));
        x64_load(b, (int)ops[0], REG(1), m);
        break;
    case X64_FORM_store:
        NEED(valid_size(ops[0]) && mem_at(ops + 1, &m) && REG(5) >= 0);
        x64_store(b, (int)ops[0], m, REG(5));
        break;
    case X64_FORM_store_imm:
        NEED(valid_size(ops[0]) && mem_at(ops + 1, &m) && x64_fits_i32(ops[5]));
        x64_store_imm(b, (int)ops[0], m, (int32_t)ops[5]);
        break;
    case X64_FORM_mov_r32_imm:
        NEED(REG(0) >= 0);
        x64_mov_r32_imm(b, REG(0), (uint32_t)ops[1]);
        break;
    case X64_FORM_mov_r64_simm32:
        NEED(REG(0) >= 0 && x64_fits_i32(ops[1]));
        x64_mov_r64_simm32(b, REG(0), (int32_t)ops[1]);
        break;
    case X64_FORM_movabs:
        NEED(REG(0) >= 0);
        x64_movabs(b, REG(0), (uint64_t)ops[1]);
        break;
    case X64_FORM_mov_imm64:
        NEED(REG(0) >= 0);
        x64_mov_imm64(b, REG(0), (uint64_t)ops[1]);
        break;
    case X64_FORM_mov_imm64_keep_flags:
        NEED(REG(0) >= 0);
        x64_mov_imm64_keep_flags(b, REG(0), (uint64_t)ops[1]);
        break;
    case X64_FORM_movzx_rr:
    case X64_FORM_movsx_rr:
        NEED(valid_wide(ops[0]) && REG(2) >= 0 && REG(3) >= 0);
        if (form == X64_FORM_movzx_rr) {
            NEED(ops[1] == 1 || ops[1] == 2);
            x64_movzx_rr(b, (int)ops[0], (int)ops[1], REG(2), REG(3));
        } else {
            NEED(ops[1] == 1 || ops[1] == 2 || (ops[1] == 4 && ops[0] == 8));
            x64_movsx_rr(b, (int)ops[0], (int)ops[1], REG(2), REG(3));
        }
        break;
    case X64_FORM_movzx_rm:
    case X64_FORM_movsx_rm:
        NEED(valid_wide(ops[0]) && REG(2) >= 0 && mem_at(ops + 3, &m));
        if (form == X64_FORM_movzx_rm) {
            NEED(ops[1] == 1 || ops[1] == 2);
            x64_movzx_rm(b, (int)ops[0], (int)ops[1], REG(2), m);
        } else {
            NEED(ops[1] == 1 || ops[1] == 2 || (ops[1] == 4 && ops[0] == 8));
            x64_movsx_rm(b, (int)ops[0], (int)ops[1], REG(2), m);
        }
        break;
    case X64_FORM_lea:
        NEED(valid_16_or_wide(ops[0]) && REG(1) >= 0 && mem_at(ops + 2, &m));
        x64_lea(b, (int)ops[0], REG(1), m);
        break;
    case X64_FORM_alu_rr:
        NEED(valid_alu(ops[0]) && valid_size(ops[1]) && REG(2) >= 0 && REG(3) >= 0);
        x64_alu_rr(b, (x64_alu)ops[0], (int)ops[1], REG(2), REG(3));
        break;
    case X64_FORM_alu_rm:
        NEED(valid_alu(ops[0]) && valid_size(ops[1]) && REG(2) >= 0 && mem_at(ops + 3, &m));
        x64_alu_rm(b, (x64_alu)ops[0], (int)ops[1], REG(2), m);
        break;
    case X64_FORM_alu_ri:
        NEED(valid_alu(ops[0]) && valid_size(ops[1]) && REG(2) >= 0 && x64_fits_i32(ops[3]));
        x64_alu_ri(b, (x64_alu)ops[0], (int)ops[1], REG(2), (int32_t)ops[3]);
        break;
    case X64_FORM_alu_mi:
        NEED(valid_alu(ops[0]) && valid_size(ops[1]) && mem_at(ops + 2, &m) && x64_fits_i32(ops[6]));
        x64_alu_mi(b, (x64_alu)ops[0], (int)ops[1], m, (int32_t)ops[6]);
        break;
    case X64_FORM_alu_mi32:
        NEED(valid_alu(ops[0]) && valid_wide(ops[1]) && mem_at(ops + 2, &m) && x64_fits_i32(ops[6]));
        x64_alu_mi32(b, (x64_alu)ops[0], (int)ops[1], m, (int32_t)ops[6]);
        break;
    case X64_FORM_alu_mr:
        NEED(valid_alu(ops[0]) && valid_size(ops[1]) && mem_at(ops + 2, &m) && REG(6) >= 0);
        x64_alu_mr(b, (x64_alu)ops[0], (int)ops[1], m, REG(6));
        break;
    case X64_FORM_test_rr:
        NEED(valid_size(ops[0]) && REG(1) >= 0 && REG(2) >= 0);
        x64_test_rr(b, (int)ops[0], REG(1), REG(2));
        break;
    case X64_FORM_test_ri:
        NEED(valid_size(ops[0]) && REG(1) >= 0 && x64_fits_i32(ops[2]));
        x64_test_ri(b, (int)ops[0], REG(1), (int32_t)ops[2]);
        break;
    case X64_FORM_imul_rr:
        NEED(valid_16_or_wide(ops[0]) && REG(1) >= 0 && REG(2) >= 0);
        x64_imul_rr(b, (int)ops[0], REG(1), REG(2));
        break;
    case X64_FORM_imul_rri:
        NEED(valid_wide(ops[0]) && REG(1) >= 0 && REG(2) >= 0 && x64_fits_i32(ops[3]));
        x64_imul_rri(b, (int)ops[0], REG(1), REG(2), (int32_t)ops[3]);
        break;
    case X64_FORM_unary_r:
        NEED(valid_unary(ops[0]) && valid_size(ops[1]) && REG(2) >= 0);
        x64_unary_r(b, (x64_unary)ops[0], (int)ops[1], REG(2));
        break;
    case X64_FORM_unary_m:
        NEED(valid_unary(ops[0]) && valid_size(ops[1]) && mem_at(ops + 2, &m));
        x64_unary_m(b, (x64_unary)ops[0], (int)ops[1], m);
        break;
    case X64_FORM_cdq_cqo:
        NEED(valid_wide(ops[0]));
        x64_cdq_cqo(b, (int)ops[0]);
        break;
    case X64_FORM_shift_ri:
        NEED(valid_shift(ops[0]) && valid_size(ops[1]) && REG(2) >= 0 && valid_u8(ops[3]));
        x64_shift_ri(b, (x64_shift)ops[0], (int)ops[1], REG(2), (uint8_t)ops[3]);
        break;
    case X64_FORM_shift_rcl:
        NEED(valid_shift(ops[0]) && valid_size(ops[1]) && REG(2) >= 0);
        x64_shift_rcl(b, (x64_shift)ops[0], (int)ops[1], REG(2));
        break;
    case X64_FORM_shiftx:
        NEED(ops[0] >= 1 && ops[0] <= 3 && valid_wide(ops[1]) && REG(2) >= 0 && REG(3) >= 0 && REG(4) >= 0);
        x64_shiftx(b, (x64_shiftx_op)ops[0], (int)ops[1], REG(2), REG(3), REG(4));
        break;
    case X64_FORM_rorx:
        NEED(valid_wide(ops[0]) && REG(1) >= 0 && REG(2) >= 0 && valid_u8(ops[3]));
        x64_rorx(b, (int)ops[0], REG(1), REG(2), (uint8_t)ops[3]);
        break;
    case X64_FORM_andn:
        NEED(valid_wide(ops[0]) && REG(1) >= 0 && REG(2) >= 0 && REG(3) >= 0);
        x64_andn(b, (int)ops[0], REG(1), REG(2), REG(3));
        break;
    case X64_FORM_mulx:
        NEED(valid_wide(ops[0]) && REG(1) >= 0 && REG(2) >= 0 && REG(3) >= 0);
        x64_mulx(b, (int)ops[0], REG(1), REG(2), REG(3));
        break;
    case X64_FORM_bitcount:
        NEED((ops[0] == X64_POPCNT || ops[0] == X64_TZCNT || ops[0] == X64_LZCNT) &&
             valid_16_or_wide(ops[1]) && REG(2) >= 0 && REG(3) >= 0);
        x64_bitcount(b, (x64_bitcount_op)ops[0], (int)ops[1], REG(2), REG(3));
        break;
    case X64_FORM_bswap:
        NEED(valid_wide(ops[0]) && REG(1) >= 0);
        x64_bswap(b, (int)ops[0], REG(1));
        break;
    case X64_FORM_bts_ri:
        NEED(valid_16_or_wide(ops[0]) && REG(1) >= 0 && valid_u8(ops[2]));
        x64_bts_ri(b, (int)ops[0], REG(1), (uint8_t)ops[2]);
        break;
    case X64_FORM_cmov:
        NEED(valid_cc(ops[0]) && valid_16_or_wide(ops[1]) && REG(2) >= 0 && REG(3) >= 0);
        x64_cmov(b, (x64_cc)ops[0], (int)ops[1], REG(2), REG(3));
        break;
    case X64_FORM_setcc:
        NEED(valid_cc(ops[0]) && REG(1) >= 0);
        x64_setcc(b, (x64_cc)ops[0], REG(1));
        break;
    case X64_FORM_push:
        NEED(REG(0) >= 0);
        x64_push(b, REG(0));
        break;
    case X64_FORM_pop:
        NEED(REG(0) >= 0);
        x64_pop(b, REG(0));
        break;
    case X64_FORM_jmp_rel32:
    case X64_FORM_call_rel32:
        NEED(x64_fits_i32(ops[0]));
        if (form == X64_FORM_jmp_rel32)
            x64_jmp_rel32(b, X64_NO_TARGET);
        else
            x64_call_rel32(b, X64_NO_TARGET);
        x64_patch_rel32(out, 1, (size_t)ops[0]);
        break;
    case X64_FORM_jcc_rel32:
        NEED(valid_cc(ops[0]) && x64_fits_i32(ops[1]));
        x64_jcc_rel32(b, (x64_cc)ops[0], X64_NO_TARGET);
        x64_patch_rel32(out, 2, (size_t)ops[1]);
        break;
    case X64_FORM_jmp_rel8:
        NEED(ops[0] >= -126 && ops[0] <= 129);
        x64_jmp_rel8(b, X64_NO_TARGET);
        x64_patch_rel8(out, 1, (size_t)ops[0]);
        break;
    case X64_FORM_jcc_rel8:
        NEED(valid_cc(ops[0]) && ops[1] >= -126 && ops[1] <= 129);
        x64_jcc_rel8(b, (x64_cc)ops[0], X64_NO_TARGET);
        x64_patch_rel8(out, 1, (size_t)ops[1]);
        break;
    case X64_FORM_jmp_r:
        NEED(REG(0) >= 0);
        x64_jmp_r(b, REG(0));
        break;
    case X64_FORM_call_r:
        NEED(REG(0) >= 0);
        x64_call_r(b, REG(0));
        break;
    case X64_FORM_jmp_m:
        NEED(mem_at(ops, &m));
        x64_jmp_m(b, m);
        break;
    case X64_FORM_call_m:
        NEED(mem_at(ops, &m));
        x64_call_m(b, m);
        break;
    case X64_FORM_ret:
        x64_ret(b);
        break;
    case X64_FORM_ud2:
        x64_ud2(b);
        break;
    case X64_FORM_int3:
        x64_int3(b);
        break;
    case X64_FORM_nops:
        NEED(ops[0] >= 1 && ops[0] <= 9);
        x64_nops(b, (size_t)ops[0]);
        break;
    default:
        return 0;
    }
#undef REG
#undef NEED
    return x64_offset(b);
}
