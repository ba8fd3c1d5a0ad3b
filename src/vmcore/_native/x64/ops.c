/* Instruction selection for the instructions that need fixed registers or
 * out-of-line stubs (division, the high half of a product, rotations,
 * min/max, dynamic jumps). */
#include "internal.h"

/* div/rem; the rare cases (divisor 0, signed divisor -1) out of line. */
void vm_x64_emit_division(compiler *c, vm_op op, int w, int ga, int gb, int gc)
{
    x64_buf *h = &c->out;
    int a = R(ga), b = R(gb), d = R(gc);
    int is_signed = op == VM_OP_div_signed_32 || op == VM_OP_div_signed_64 || op == VM_OP_rem_signed_32 ||
                    op == VM_OP_rem_signed_64;
    int is_rem = op == VM_OP_rem_unsigned_32 || op == VM_OP_rem_unsigned_64 || op == VM_OP_rem_signed_32 ||
                 op == VM_OP_rem_signed_64;

    x64_test_rr(h, w, d, d);
    size_t jz = x64_jcc_rel32(h, X64_CC_E, X64_NO_TARGET);
    size_t jm1 = 0;
    if (is_signed) {
        x64_alu_ri(h, X64_CMP, w, d, -1);
        jm1 = x64_jcc_rel32(h, X64_CC_E, X64_NO_TARGET);
    }
    x64_push(h, X64_RDX);
    x64_mov_rr(h, w, S, b);
    if (is_signed)
        x64_cdq_cqo(h, w);
    else
        x64_alu_rr(h, X64_XOR, 4, X64_RDX, X64_RDX);
    if (d == X64_RDX)
        x64_unary_m(h, is_signed ? X64_IDIV : X64_DIV, w, x64_base_disp(X64_RSP, 0));
    else
        x64_unary_r(h, is_signed ? X64_IDIV : X64_DIV, w, d);
    if (is_rem)
        x64_mov_rr(h, 8, S, X64_RDX);
    x64_pop(h, X64_RDX);
    if (w == 4)
        result32(c, a, S);
    else
        x64_mov_rr(h, 8, a, S);
    pending *p = add_pending(c, STUB_DIV, jz, c->current_pc);
    p->at2 = (uint32_t)jm1;
    p->x = (uint32_t)a | (uint32_t)b << 4 | (w == 8 ? 1u << 8 : 0u) | (is_rem ? 1u << 9 : 0u) |
           (is_signed ? 1u << 10 : 0u);
    p->y = here(c);
}
/* The high half of a product. */
void vm_x64_emit_mul_upper(compiler *c, vm_op op, int ga, int gb, int gc)
{
    x64_buf *h = &c->out;
    int a = R(ga), b = R(gb), d = R(gc);
    if (!c->is64) {
        /* 32-bit: the exact 64-bit product of the extended operands, built
         * in a itself (b is in rax by then); its high half, zero-extended
         * (sext_result). */
        if (op == VM_OP_mul_upper_unsigned_unsigned)
            x64_mov_rr(h, 4, S, b);
        else
            x64_sext32(h, S, b);
        if (op == VM_OP_mul_upper_signed_signed)
            x64_sext32(h, a, d);
        else
            x64_mov_rr(h, 4, a, d);
        x64_imul_rr(h, 8, a, S);
        x64_shift_ri(h, X64_SHR, 8, a, 32);
        return;
    }
    x64_push(h, X64_RDX);
    x64_mov_rr(h, 8, S, b);
    x64_unary op1 = op == VM_OP_mul_upper_signed_signed ? X64_IMUL1 : X64_MUL;
    if (d == X64_RDX)
        x64_unary_m(h, op1, 8, x64_base_disp(X64_RSP, 0));
    else
        x64_unary_r(h, op1, 8, d);
    x64_mov_rr(h, 8, S, X64_RDX);
    x64_pop(h, X64_RDX);
    if (op == VM_OP_mul_upper_signed_unsigned) {
        /* signed x unsigned: the unsigned high word, minus c when b < 0 */
        x64_test_rr(h, 8, b, b);
        size_t skip = x64_jcc_rel8(h, X64_CC_NS, X64_NO_TARGET);
        x64_alu_rr(h, X64_SUB, 8, S, d);
        x64_patch_rel8(h->start, skip, x64_offset(h));
    }
    x64_mov_rr(h, 8, a, S);
}

/* rotate b by c (left or right), result in a */
void vm_x64_emit_rotate(compiler *c, int left, int w, int a, int b, int d)
{
    x64_buf *h = &c->out;
    /* (b >> n) | (b << -n), shifts masking their count as rotations do */
    x64_mov_rr(h, w, S, d);
    x64_unary_r(h, X64_NEG, w, S);
    x64_shiftx(h, left ? X64_SHRX : X64_SHLX, w, S, b, S);
    x64_shiftx(h, left ? X64_SHLX : X64_SHRX, w, a, b, d);
    x64_alu_rr(h, X64_OR, w, a, S);
    if (w == 4)
        sext_result(c, a);
}

/* max/min: a = (b cc c) ? c : b, through rax */
void vm_x64_emit_minmax(compiler *c, x64_cc take_c, int w, int a, int b, int d)
{
    x64_buf *h = &c->out;
    x64_mov_rr(h, w, S, b);
    x64_alu_rr(h, X64_CMP, w, S, d);
    x64_cmov(h, take_c, w, S, d);
    if (w == 4)
        result32(c, a, S);
    else
        x64_mov_rr(h, 8, a, S);
}

/* Dynamic jump to the guest address in eax. */
void vm_x64_emit_dynamic_jump(compiler *c, uint32_t pc, uint32_t table_count)
{
    x64_buf *h = &c->out;
    c->falls_through = 0;
    x64_alu_ri(h, X64_CMP, 4, S, (int32_t)VM_ADDR_RETURN_TO_HOST);
    branch_to_stub(c, X64_CC_E, STUB_FINISHED, pc);
    if (table_count == 0) {
        branch_to_stub(c, -1, STUB_TRAP, pc);
        return;
    }
    /* index = address / 2 - 1; odd addresses (rotated into bit 31) and 0
     * (wrapping to 0xffffffff) land past any table */
    x64_shift_ri(h, X64_ROR, 4, S, 1);
    x64_alu_ri(h, X64_SUB, 4, S, 1);
    x64_alu_ri(h, X64_CMP, 4, S, (int32_t)table_count);
    pending *trap = branch_to_stub(c, X64_CC_AE, STUB_TRAP, pc);
    x64_bts_ri(h, 8, S, 32); /* (index | 1 << 32) * 8 = VM_ADDR_JUMP_TABLE + index * 8 */
    x64_load(h, 8, S, x64_base_index(X64_NONE, S, 3, 0));
    x64_test_rr(h, 8, S, S);
    trap->at2 = (uint32_t)x64_jcc_rel32(h, X64_CC_E, X64_NO_TARGET);
    x64_jmp_r(h, S);
}
