/* The pass over one segment of guest code and the instruction selection
 * it inlines into one specialised copy per opcode. */
#include "gas_charge.h"
#include "vmcore/block_walk.h"
#include "vmcore/branches.h"

void vm_x64_grow_fixups(compiler *c, size_t at, uint32_t target_pc)
{
    {
        size_t cap = c->fixup_cap ? c->fixup_cap * 2 : 4096;
        fixup *f = realloc(c->fixups, cap * sizeof *f);
        if (!f) {
            c->error = VM_X64_ERR_NOMEM;
            return;
        }
        c->fixups = f;
        c->fixup_cap = cap;
    }
    c->fixups[c->fixup_count++] = (fixup){(uint32_t)at, target_pc};
}

/* ---- instruction helpers ---- */

HOT_INLINE void emit_trap(compiler *c, uint32_t pc)
{
    call_with_data(&c->out, c->trap_routine, &pc, 1);
    c->falls_through = 0;
}


/* A static jump: a trap when the target is not a jump target, nothing
 * when it is the next instruction. */
HOT_INLINE void emit_static_jump(compiler *c, uint32_t pc, uint32_t target, uint32_t next)
{
    if (!valid_target(c, target)) {
        emit_trap(c, pc);
    } else if (target != next) {
        jump_pc(c, -1, target);
        c->falls_through = 0;
    }
}

/* dst = a OP b for a commutative op (64-bit) */
HOT_INLINE void binop_comm(x64_buf *h, x64_alu op, int size, int a, int b, int c_)
{
    if (a == b) {
        x64_alu_rr(h, op, size, a, c_);
    } else if (a == c_) {
        x64_alu_rr(h, op, size, a, b);
    } else {
        x64_mov_rr(h, size == 8 ? 8 : 4, a, b);
        x64_alu_rr(h, op, size, a, c_);
    }
}

/* a = b - c */
HOT_INLINE void sub_rrr(x64_buf *h, int size, int a, int b, int c_)
{
    if (a == b) {
        x64_alu_rr(h, X64_SUB, size, a, c_);
    } else if (a == c_) {
        x64_unary_r(h, X64_NEG, size, a);
        x64_alu_rr(h, X64_ADD, size, a, b);
    } else {
        x64_mov_rr(h, size, a, b);
        x64_alu_rr(h, X64_SUB, size, a, c_);
    }
}


/* a = b * c (imul is commutative: no copy when a is either operand) */
HOT_INLINE void mul_rrr(x64_buf *h, int size, int a, int b, int c_)
{
    if (a == b) {
        x64_imul_rr(h, size, a, c_);
    } else if (a == c_) {
        x64_imul_rr(h, size, a, b);
    } else {
        x64_mov_rr(h, size, a, b);
        x64_imul_rr(h, size, a, c_);
    }
}


HOT_INLINE void emit_set_cc(compiler *c, x64_cc cc, int a)
{
    x64_setcc(&c->out, cc, S);
    x64_movzx_rr(&c->out, 4, 1, a, S);
}

/* Memory access at guest address (base register + offset) or absolute. */

enum { ACC_LOAD_U, ACC_LOAD_S, ACC_STORE, ACC_STORE_IMM };

HOT_INLINE void emit_access(compiler *c, uint32_t *rec, uint32_t pc, int kind, int size, int reg, int base_guest,
                        uint32_t offset, uint32_t imm)
{
    x64_buf *h = &c->out;
    x64_mem m = x64_base_index(MB, S, 0, 0);
    if (base_guest < 0) {
        if ((uint64_t)offset + (uint64_t)size > 0xffffffffull) {
            call_with_data(h, c->overflow_routine, &pc, 1);
            c->falls_through = 0;
            return;
        }
        if (offset < 0x80000000u) /* a positive disp32 */
            m = x64_base_disp(MB, (int32_t)offset);
        else
            x64_mov_r32_imm(h, S, offset);
    } else if (!c->is64 && offset < VM_GUEST_MEMORY_SLACK && (kind < ACC_STORE || !c->config->gas_metering)) {
        /* The register is zero-extended (sext_result): the native address
         * is base + offset.  One that should wrap lands in the slack after
         * the window, which is protected with the guard page while native
         * code runs: it faults and the handler finishes it at the wrapped
         * address (vm_x64_resolve_fault), which is below 0x10000, where
         * programs keep nothing.  A larger offset is often a table's
         * address indexed by a negative register: that wraps in lea,
         * without a fault per access.  Gas metered, stores keep the lea:
         * a store through the register next to the gas counter's
         * read-modify-write ran DOOM's pixel loops ~20% slower. */
        m = x64_base_index(MB, R(base_guest), 0, (int32_t)offset);
    } else {
        /* no bounds check: an access reaching 0xffffffff starts in the
         * guard page and faults (compiler.h, Faults) */
        int b = R(base_guest);
        if (offset == 0)
            x64_mov_rr(h, 4, S, b);
        else
            x64_lea(h, 4, S, x64_base_disp(b, (int32_t)offset));
    }
    int log2 = size == 1 ? 0 : size == 2 ? 1 : size == 4 ? 2 : 3;
    switch (kind) {
    case ACC_LOAD_U:
        if (size <= 2)
            x64_movzx_rm(h, 4, size, reg, m);
        else
            x64_load(h, size, reg, m); /* 4: zero-extends */
        break;
    case ACC_LOAD_S:
        if (c->is64)
            x64_movsx_rm(h, 8, size, reg, m);
        else if (size == 4)
            x64_load(h, 4, reg, m);
        else
            x64_movsx_rm(h, 4, size, reg, m); /* sign-extends to 32 bits, zeroes the upper half */
        break;
    case ACC_STORE:
        x64_store(h, size, m, reg);
        break;
    default:
        x64_store_imm(h, size, m, (int32_t)imm);
        break;
    }
    *rec |= (kind >= ACC_STORE ? VM_X64_INFO_STORE : VM_X64_INFO_LOAD) | (uint32_t)log2 << VM_X64_INFO_SIZE_SHIFT;
}


/* vmcore/branches.h's conditions as x86 condition codes */
enum {
    CC_EQ = X64_CC_E, CC_NE = X64_CC_NE, CC_LTU = X64_CC_B, CC_LTS = X64_CC_L, CC_GEU = X64_CC_AE,
    CC_GES = X64_CC_GE, CC_LEU = X64_CC_BE, CC_LES = X64_CC_LE, CC_GTU = X64_CC_A, CC_GTS = X64_CC_G,
};

static x64_cc branch_cc(vm_op op)
{
    switch (op) {
#define BRANCH_CC(name, cond) case VM_OP_##name: return (x64_cc)CC_##cond;
    VM_BRANCHES_REG(BRANCH_CC)
    VM_BRANCHES_IMM(BRANCH_CC)
#undef BRANCH_CC
    default: return X64_CC_E;
    }
}

/* ---- one instruction ---- */

HOT_INLINE void emit_instruction(compiler *c, vm_op op, const vm_instruction *ins,
                                 uint32_t *rec, uint32_t body, uint32_t table_count)
{
    x64_buf *h = &c->out;
    uint32_t pc = ins->offset;
    int a = R(ins->reg[0]), b = R(ins->reg[1]), d = R(ins->reg[2]);
    uint32_t imm = ins->imm1;
    uint64_t simm = sext32(imm);
    int w = c->is64 ? 8 : 4;

    switch (op) {
    case VM_OP_trap:
    case VM_OP_INVALID:
        emit_trap(c, pc);
        return;
    case VM_OP_unlikely:
        return; /* a hint: costs gas, executes nothing */
    case VM_OP_fallthrough: /* the next instruction's code follows; past the end of the code, a panic here */
        if (ins->next >= c->code_len) emit_trap(c, pc);
        return;
    case VM_OP_jump:
        emit_static_jump(c, pc, ins->imm1, ins->next);
        return;
    case VM_OP_load_imm_and_jump:
        x64_mov_imm64(h, a, imm_value(c, ins->imm1));
        emit_static_jump(c, pc, ins->imm2, ins->next);
        return;
    case VM_OP_jump_indirect:
        if (ins->imm1 == 0)
            x64_mov_rr(h, 4, S, a);
        else
            x64_lea(h, 4, S, x64_base_disp(a, (int32_t)ins->imm1));
        vm_x64_emit_dynamic_jump(c, pc, table_count);
        return;
    case VM_OP_load_imm_and_jump_indirect:
        if (ins->imm2 == 0)
            x64_mov_rr(h, 4, S, b);
        else
            x64_lea(h, 4, S, x64_base_disp(b, (int32_t)ins->imm2));
        x64_mov_imm64_keep_flags(h, a, imm_value(c, ins->imm1));
        vm_x64_emit_dynamic_jump(c, pc, table_count);
        return;
    case VM_OP_ecalli: {
        uint32_t data[3] = {pc, ins->next, ins->imm1};
        call_with_data(h, c->ecalli_routine, data, 3);
        return;
    }
    case VM_OP_sbrk:
        /* 64-bit: sizes that do not fit 32 bits ask for 0 */
        x64_mov_rr(h, 4, S, b);
        if (c->is64) {
            x64_alu_rr(h, X64_CMP, 8, S, b);
            size_t ok = x64_jcc_rel8(h, X64_CC_E, X64_NO_TARGET);
            x64_alu_rr(h, X64_XOR, 4, S, S);
            x64_patch_rel8(h->start, ok, x64_offset(h));
        }
        x64_call_rel32(h, c->sbrk_routine);
        result32(c, a, S);
        return;
    case VM_OP_memset:
        x64_lea(h, 8, S, x64_base_disp(X64_RIP, (int32_t)body - (int32_t)(here(c) + 7)));
        x64_store(h, 8, CTX(next_native_program_counter), S);
        x64_store_imm(h, 4, CTX(program_counter), (int32_t)pc);
        x64_call_rel32(h, c->memset_routine);
        return;
    case VM_OP_load_imm:
        x64_mov_imm64(h, a, imm_value(c, imm));
        return;
    case VM_OP_load_imm64:
        x64_mov_imm64(h, a, ins->imm64);
        return;

    /* ---- memory ---- */
    case VM_OP_load_u8: emit_access(c, rec, pc, ACC_LOAD_U, 1, a, -1, imm, 0); return;
    case VM_OP_load_i8: emit_access(c, rec, pc, ACC_LOAD_S, 1, a, -1, imm, 0); return;
    case VM_OP_load_u16: emit_access(c, rec, pc, ACC_LOAD_U, 2, a, -1, imm, 0); return;
    case VM_OP_load_i16: emit_access(c, rec, pc, ACC_LOAD_S, 2, a, -1, imm, 0); return;
    case VM_OP_load_u32: emit_access(c, rec, pc, ACC_LOAD_U, 4, a, -1, imm, 0); return;
    case VM_OP_load_i32: emit_access(c, rec, pc, ACC_LOAD_S, 4, a, -1, imm, 0); return;
    case VM_OP_load_u64: emit_access(c, rec, pc, ACC_LOAD_U, 8, a, -1, imm, 0); return;
    case VM_OP_store_u8: emit_access(c, rec, pc, ACC_STORE, 1, a, -1, imm, 0); return;
    case VM_OP_store_u16: emit_access(c, rec, pc, ACC_STORE, 2, a, -1, imm, 0); return;
    case VM_OP_store_u32: emit_access(c, rec, pc, ACC_STORE, 4, a, -1, imm, 0); return;
    case VM_OP_store_u64: emit_access(c, rec, pc, ACC_STORE, 8, a, -1, imm, 0); return;
    case VM_OP_store_imm_u8: emit_access(c, rec, pc, ACC_STORE_IMM, 1, 0, -1, imm, ins->imm2); return;
    case VM_OP_store_imm_u16: emit_access(c, rec, pc, ACC_STORE_IMM, 2, 0, -1, imm, ins->imm2); return;
    case VM_OP_store_imm_u32: emit_access(c, rec, pc, ACC_STORE_IMM, 4, 0, -1, imm, ins->imm2); return;
    case VM_OP_store_imm_u64: emit_access(c, rec, pc, ACC_STORE_IMM, 8, 0, -1, imm, ins->imm2); return;
    case VM_OP_store_imm_indirect_u8: emit_access(c, rec, pc, ACC_STORE_IMM, 1, 0, ins->reg[0], imm, ins->imm2); return;
    case VM_OP_store_imm_indirect_u16: emit_access(c, rec, pc, ACC_STORE_IMM, 2, 0, ins->reg[0], imm, ins->imm2); return;
    case VM_OP_store_imm_indirect_u32: emit_access(c, rec, pc, ACC_STORE_IMM, 4, 0, ins->reg[0], imm, ins->imm2); return;
    case VM_OP_store_imm_indirect_u64: emit_access(c, rec, pc, ACC_STORE_IMM, 8, 0, ins->reg[0], imm, ins->imm2); return;
    case VM_OP_store_indirect_u8: emit_access(c, rec, pc, ACC_STORE, 1, a, ins->reg[1], imm, 0); return;
    case VM_OP_store_indirect_u16: emit_access(c, rec, pc, ACC_STORE, 2, a, ins->reg[1], imm, 0); return;
    case VM_OP_store_indirect_u32: emit_access(c, rec, pc, ACC_STORE, 4, a, ins->reg[1], imm, 0); return;
    case VM_OP_store_indirect_u64: emit_access(c, rec, pc, ACC_STORE, 8, a, ins->reg[1], imm, 0); return;
    case VM_OP_load_indirect_u8: emit_access(c, rec, pc, ACC_LOAD_U, 1, a, ins->reg[1], imm, 0); return;
    case VM_OP_load_indirect_i8: emit_access(c, rec, pc, ACC_LOAD_S, 1, a, ins->reg[1], imm, 0); return;
    case VM_OP_load_indirect_u16: emit_access(c, rec, pc, ACC_LOAD_U, 2, a, ins->reg[1], imm, 0); return;
    case VM_OP_load_indirect_i16: emit_access(c, rec, pc, ACC_LOAD_S, 2, a, ins->reg[1], imm, 0); return;
    case VM_OP_load_indirect_u32: emit_access(c, rec, pc, ACC_LOAD_U, 4, a, ins->reg[1], imm, 0); return;
    case VM_OP_load_indirect_i32: emit_access(c, rec, pc, ACC_LOAD_S, 4, a, ins->reg[1], imm, 0); return;
    case VM_OP_load_indirect_u64: emit_access(c, rec, pc, ACC_LOAD_U, 8, a, ins->reg[1], imm, 0); return;

    /* ---- branches ---- */
    case VM_OP_branch_eq: case VM_OP_branch_not_eq: case VM_OP_branch_less_unsigned:
    case VM_OP_branch_less_signed: case VM_OP_branch_greater_or_equal_unsigned:
    case VM_OP_branch_greater_or_equal_signed:
        /* both destinations must be jump targets, else the branch traps */
        if (!valid_target(c, ins->imm1) || !valid_target(c, ins->next)) {
            emit_trap(c, pc);
            return;
        }
        x64_alu_rr(h, X64_CMP, w, a, b);
        jump_pc(c, (int)branch_cc(op), ins->imm1);
        return;
    case VM_OP_branch_eq_imm: case VM_OP_branch_not_eq_imm: case VM_OP_branch_less_unsigned_imm:
    case VM_OP_branch_less_signed_imm: case VM_OP_branch_greater_or_equal_unsigned_imm:
    case VM_OP_branch_greater_or_equal_signed_imm: case VM_OP_branch_less_or_equal_signed_imm:
    case VM_OP_branch_less_or_equal_unsigned_imm: case VM_OP_branch_greater_signed_imm:
    case VM_OP_branch_greater_unsigned_imm:
        if (!valid_target(c, ins->imm2) || !valid_target(c, ins->next)) {
            emit_trap(c, pc);
            return;
        }
        if (imm == 0) /* the flags every condition reads, as cmp a, 0 sets them (CF = OF = 0) */
            x64_test_rr(h, w, a, a);
        else
            x64_alu_ri(h, X64_CMP, w, a, (int32_t)imm);
        jump_pc(c, (int)branch_cc(op), ins->imm2);
        return;

    /* ---- three registers: a = b op d ---- */
    case VM_OP_add_32:
        x64_lea(h, 4, a, x64_base_index(b, d, 0, 0));
        sext_result(c, a);
        return;
    case VM_OP_add_64:
        x64_lea(h, 8, a, x64_base_index(b, d, 0, 0));
        return;
    case VM_OP_sub_32:
        sub_rrr(h, 4, a, b, d);
        sext_result(c, a);
        return;
    case VM_OP_sub_64:
        sub_rrr(h, 8, a, b, d);
        return;
    case VM_OP_and: binop_comm(h, X64_AND, 8, a, b, d); return;
    case VM_OP_xor: binop_comm(h, X64_XOR, 8, a, b, d); return;
    case VM_OP_or: binop_comm(h, X64_OR, 8, a, b, d); return;
    case VM_OP_mul_32:
        mul_rrr(h, 4, a, b, d);
        sext_result(c, a);
        return;
    case VM_OP_mul_64:
        mul_rrr(h, 8, a, b, d);
        return;
    case VM_OP_mul_upper_signed_signed:
    case VM_OP_mul_upper_unsigned_unsigned:
    case VM_OP_mul_upper_signed_unsigned:
        vm_x64_emit_mul_upper(c, op, ins->reg[0], ins->reg[1], ins->reg[2]);
        return;
    case VM_OP_set_less_than_unsigned:
    case VM_OP_set_less_than_signed:
        x64_alu_rr(h, X64_CMP, w, b, d);
        emit_set_cc(c, op == VM_OP_set_less_than_unsigned ? X64_CC_B : X64_CC_L, a);
        return;
    case VM_OP_shift_logical_left_32: x64_shiftx(h, X64_SHLX, 4, a, b, d); sext_result(c, a); return;
    case VM_OP_shift_logical_left_64: x64_shiftx(h, X64_SHLX, 8, a, b, d); return;
    case VM_OP_shift_logical_right_32: x64_shiftx(h, X64_SHRX, 4, a, b, d); sext_result(c, a); return;
    case VM_OP_shift_logical_right_64: x64_shiftx(h, X64_SHRX, 8, a, b, d); return;
    case VM_OP_shift_arithmetic_right_32: x64_shiftx(h, X64_SARX, 4, a, b, d); sext_result(c, a); return;
    case VM_OP_shift_arithmetic_right_64: x64_shiftx(h, X64_SARX, 8, a, b, d); return;
    case VM_OP_div_unsigned_32: case VM_OP_div_signed_32: case VM_OP_rem_unsigned_32: case VM_OP_rem_signed_32:
        vm_x64_emit_division(c, op, 4, ins->reg[0], ins->reg[1], ins->reg[2]);
        return;
    case VM_OP_div_unsigned_64: case VM_OP_div_signed_64: case VM_OP_rem_unsigned_64: case VM_OP_rem_signed_64:
        vm_x64_emit_division(c, op, 8, ins->reg[0], ins->reg[1], ins->reg[2]);
        return;
    case VM_OP_cmov_if_zero:
        x64_test_rr(h, w, d, d);
        x64_cmov(h, X64_CC_E, 8, a, b);
        return;
    case VM_OP_cmov_if_not_zero:
        x64_test_rr(h, w, d, d);
        x64_cmov(h, X64_CC_NE, 8, a, b);
        return;
    case VM_OP_and_inverted:
        x64_andn(h, w, a, d, b);
        if (w == 4)
            sext_result(c, a);
        return;
    case VM_OP_or_inverted:
        x64_mov_rr(h, w, S, d);
        x64_unary_r(h, X64_NOT, w, S);
        x64_alu_rr(h, X64_OR, w, S, b);
        if (w == 4)
            result32(c, a, S);
        else
            x64_mov_rr(h, 8, a, S);
        return;
    case VM_OP_xnor:
        x64_mov_rr(h, w, S, b);
        x64_alu_rr(h, X64_XOR, w, S, d);
        x64_unary_r(h, X64_NOT, w, S);
        if (w == 4)
            result32(c, a, S);
        else
            x64_mov_rr(h, 8, a, S);
        return;
    case VM_OP_maximum: vm_x64_emit_minmax(c, X64_CC_L, w, a, b, d); return;
    case VM_OP_maximum_unsigned: vm_x64_emit_minmax(c, X64_CC_B, w, a, b, d); return;
    case VM_OP_minimum: vm_x64_emit_minmax(c, X64_CC_G, w, a, b, d); return;
    case VM_OP_minimum_unsigned: vm_x64_emit_minmax(c, X64_CC_A, w, a, b, d); return;
    case VM_OP_rotate_left_32: vm_x64_emit_rotate(c, 1, 4, a, b, d); return;
    case VM_OP_rotate_left_64: vm_x64_emit_rotate(c, 1, 8, a, b, d); return;
    case VM_OP_rotate_right_32: vm_x64_emit_rotate(c, 0, 4, a, b, d); return;
    case VM_OP_rotate_right_64: vm_x64_emit_rotate(c, 0, 8, a, b, d); return;

    /* ---- two registers and an immediate: a = b op imm ---- */
    case VM_OP_add_imm_32:
        x64_lea(h, 4, a, x64_base_disp(b, (int32_t)imm));
        sext_result(c, a);
        return;
    case VM_OP_add_imm_64:
        x64_lea(h, 8, a, x64_base_disp(b, (int32_t)imm));
        return;
    case VM_OP_and_imm:
        if (imm == 0xff || imm == 0xffff) { /* a zero extension: one instruction, no copy */
            x64_movzx_rr(h, 4, imm == 0xff ? 1 : 2, a, b);
            return;
        }
        /* fall through */
    case VM_OP_xor_imm:
    case VM_OP_or_imm:
        /* 32-bit program: at 32 bits, or the sign-extended immediate would
         * set the upper half */
        mov64(h, a, b);
        x64_alu_ri(h, op == VM_OP_and_imm ? X64_AND : op == VM_OP_xor_imm ? X64_XOR : X64_OR, w, a, (int32_t)imm);
        return;
    case VM_OP_mul_imm_32:
        x64_imul_rri(h, 4, a, b, (int32_t)imm);
        sext_result(c, a);
        return;
    case VM_OP_mul_imm_64:
        x64_imul_rri(h, 8, a, b, (int32_t)imm);
        return;
    case VM_OP_set_less_than_unsigned_imm: case VM_OP_set_less_than_signed_imm:
    case VM_OP_set_greater_than_unsigned_imm: case VM_OP_set_greater_than_signed_imm:
        x64_alu_ri(h, X64_CMP, w, b, (int32_t)imm);
        emit_set_cc(c, op == VM_OP_set_less_than_unsigned_imm ? X64_CC_B
                       : op == VM_OP_set_less_than_signed_imm ? X64_CC_L
                       : op == VM_OP_set_greater_than_unsigned_imm ? X64_CC_A : X64_CC_G, a);
        return;
    case VM_OP_shift_logical_left_imm_32:
    case VM_OP_shift_logical_right_imm_32: {
        uint8_t n = (uint8_t)(imm & 31);
        if (n == 0) {
            result32(c, a, b);
            return;
        }
        if (a != b) /* the 32-bit shift clears the upper half itself */
            x64_mov_rr(h, 4, a, b);
        x64_shift_ri(h, op == VM_OP_shift_logical_left_imm_32 ? X64_SHL : X64_SHR, 4, a, n);
        if (op == VM_OP_shift_logical_left_imm_32)
            sext_result(c, a); /* a right shift by 1..31 leaves bit 31 clear: already sign-extended */
        return;
    }
    case VM_OP_shift_arithmetic_right_imm_32: {
        uint8_t n = (uint8_t)(imm & 31);
        if (c->is64) {
            x64_sext32(h, a, b);
            if (n)
                x64_shift_ri(h, X64_SAR, 8, a, n);
        } else {
            result32(c, a, b);
            if (n)
                x64_shift_ri(h, X64_SAR, 4, a, n);
        }
        return;
    }
    case VM_OP_shift_logical_left_imm_64:
    case VM_OP_shift_logical_right_imm_64:
    case VM_OP_shift_arithmetic_right_imm_64: {
        uint8_t n = (uint8_t)(imm & 63);
        mov64(h, a, b);
        if (n)
            x64_shift_ri(h, op == VM_OP_shift_logical_left_imm_64 ? X64_SHL
                            : op == VM_OP_shift_logical_right_imm_64 ? X64_SHR : X64_SAR, 8, a, n);
        return;
    }
    case VM_OP_negate_and_add_imm_32:
    case VM_OP_negate_and_add_imm_64: {
        /* a = imm - b: in a itself (a == b: -a + imm) */
        int sz = op == VM_OP_negate_and_add_imm_64 ? 8 : 4;
        if (a == b) {
            x64_unary_r(h, X64_NEG, sz, a);
            x64_alu_ri(h, X64_ADD, sz, a, (int32_t)imm);
        } else {
            x64_mov_imm64(h, a, sz == 8 ? simm : imm);
            x64_alu_rr(h, X64_SUB, sz, a, b);
        }
        if (sz == 4)
            sext_result(c, a);
        return;
    }
    case VM_OP_shift_logical_right_imm_alt_32:
    case VM_OP_shift_arithmetic_right_imm_alt_32:
    case VM_OP_shift_logical_left_imm_alt_32:
        x64_mov_r32_imm(h, S, imm);
        x64_shiftx(h, op == VM_OP_shift_logical_right_imm_alt_32 ? X64_SHRX
                      : op == VM_OP_shift_arithmetic_right_imm_alt_32 ? X64_SARX : X64_SHLX, 4, a, S, b);
        sext_result(c, a);
        return;
    case VM_OP_shift_logical_right_imm_alt_64:
    case VM_OP_shift_arithmetic_right_imm_alt_64:
    case VM_OP_shift_logical_left_imm_alt_64:
        x64_mov_imm64(h, S, simm);
        x64_shiftx(h, op == VM_OP_shift_logical_right_imm_alt_64 ? X64_SHRX
                      : op == VM_OP_shift_arithmetic_right_imm_alt_64 ? X64_SARX : X64_SHLX, 8, a, S, b);
        return;
    case VM_OP_cmov_if_zero_imm:
    case VM_OP_cmov_if_not_zero_imm:
        x64_mov_imm64(h, S, imm_value(c, imm));
        x64_test_rr(h, w, b, b);
        x64_cmov(h, op == VM_OP_cmov_if_zero_imm ? X64_CC_E : X64_CC_NE, 8, a, S);
        return;
    case VM_OP_rotate_right_imm_32:
        x64_rorx(h, 4, a, b, (uint8_t)(imm & 31));
        sext_result(c, a);
        return;
    case VM_OP_rotate_right_imm_64:
        x64_rorx(h, 8, a, b, (uint8_t)(imm & 63));
        return;
    case VM_OP_rotate_right_imm_alt_32:
    case VM_OP_rotate_right_imm_alt_64:
        /* rotate the immediate by a register: needs cl */
        x64_push(h, X64_RCX);
        x64_mov_rr(h, 8, X64_RCX, b);
        if (op == VM_OP_rotate_right_imm_alt_32) {
            x64_mov_r32_imm(h, S, imm);
            x64_shift_rcl(h, X64_ROR, 4, S);
        } else {
            x64_mov_imm64(h, S, simm);
            x64_shift_rcl(h, X64_ROR, 8, S);
        }
        x64_pop(h, X64_RCX);
        if (op == VM_OP_rotate_right_imm_alt_32)
            result32(c, a, S);
        else
            x64_mov_rr(h, 8, a, S);
        return;

    /* ---- two registers ---- */
    case VM_OP_move_reg: mov64(h, a, b); return;
    case VM_OP_count_leading_zero_bits_32: x64_bitcount(h, X64_LZCNT, 4, a, b); return;
    case VM_OP_count_leading_zero_bits_64: x64_bitcount(h, X64_LZCNT, 8, a, b); return;
    case VM_OP_count_trailing_zero_bits_32: x64_bitcount(h, X64_TZCNT, 4, a, b); return;
    case VM_OP_count_trailing_zero_bits_64: x64_bitcount(h, X64_TZCNT, 8, a, b); return;
    case VM_OP_count_set_bits_32: x64_bitcount(h, X64_POPCNT, 4, a, b); return;
    case VM_OP_count_set_bits_64: x64_bitcount(h, X64_POPCNT, 8, a, b); return;
    case VM_OP_sign_extend_8: x64_movsx_rr(h, w, 1, a, b); return;
    case VM_OP_sign_extend_16: x64_movsx_rr(h, w, 2, a, b); return;
    case VM_OP_zero_extend_16: x64_movzx_rr(h, 4, 2, a, b); return;
    case VM_OP_reverse_byte:
        if (c->is64) {
            mov64(h, a, b);
            x64_bswap(h, 8, a);
        } else {
            x64_mov_rr(h, 4, a, b);
            x64_bswap(h, 4, a);
            sext_result(c, a);
        }
        return;
    default:
        /* every op of every ISA is handled above; keep the interpreter's
         * fallback (a trap) for anything else */
        emit_trap(c, pc);
        return;
    }
}


/* The walk over one segment [c->lo, c->hi) of the code: the interpreter
 * builder's walk (vmcore/block_walk.h).  A segment after the first
 * starts at a basic block start (split_point), where the serial walk's
 * state is known: no block open, the previous instruction (within the
 * bitmask's reach) ended a block and did not end the code.  The last
 * segment ends with the guard; an earlier one with a jump to the next
 * segment's first instruction when its code falls through. */
void vm_x64_compile_segment(compiler *c)
{
    const vm_x64_config *config = c->config;
    const decode_tables *fd = c->decoder;
    const uint8_t *code = c->code;
    const uint8_t *bitmask = c->bitmask;
    const uint32_t code_len = c->code_len;
    const uint32_t jump_table_count = c->jump_table_count;
    const int step_tracing = config->step_tracing;
    const int metering = config->gas_metering;
    vm_instruction ins;
    vm_block_walk w;
    c->populated_code = c->out.p;
    c->populated_records = (uint8_t *)c->records;
    vm_block_walk_start(&w, bitmask, code_len, c->lo);
    for (;;) {
        int fast = 0;
        uint32_t fast_skip = 0;
        int step = vm_block_walk_next(&w, c->hi, &ins);
        if (step == VM_WALK_DONE) {
            break;
        } else if (step == VM_WALK_DECODE && w.offset + VM_DECODE_MARGIN <= code_len) {
            fast_skip = vm_decode_head_unchecked(fd->op_of, fd->format_of, code, bitmask, w.offset, &ins);
            fast = 1;
        } else if (step == VM_WALK_DECODE) {
            vm_decode(c->isa, code, code_len, bitmask, w.offset, &ins);
        }
        if ((size_t)(c->limit - c->out.p) < INSN_BUDGET + STUBS_PER_INSN_BUDGET + INSN_SLACK + c->pend_bytes ||
            c->map_count >= c->map_cap) {
            c->error = VM_X64_ERR_SPACE;
            break;
        }
        if (here(c) > CODE_LIMIT) {
            c->error = VM_X64_ERR_TOO_BIG;
            break;
        }
        uint8_t *before = c->out.p;
        uint32_t stub_bytes_before = c->pend_bytes;

        uint32_t entry_flag = vm_block_walk_entry(&w, c->block_open) ? 1u : 0u;
        uint32_t pc = ins.offset;
        c->current_pc = pc;
        c->falls_through = 1;
        int jump_target = vm_block_walk_is_block_start(&w, pc);
        if ((c->map_count & 255u) == 0 && config->populate)
            vm_x64_populate_ahead(c);
        uint32_t entry = here(c);
        uint32_t index = (uint32_t)c->map_count++;
        uint32_t dpc = pc - c->last_pc, dentry = entry - c->last_entry;
        if ((index & (VM_X64_MARK_EVERY - 1)) == 0 || dpc > VM_X64_REC_PC_MAX || dentry > VM_X64_REC_ENTRY_MAX) {
            if (c->mark_count >= c->mark_cap) {
                c->error = VM_X64_ERR_SPACE;
                break;
            }
            c->marks[c->mark_count++] = (vm_x64_mark){index, pc, entry};
            dpc = dentry = 0;
        }
        c->last_pc = pc;
        c->last_entry = entry;
        int block_start = !c->block_open;
        uint32_t *rec = &c->records[index];
        *rec = (uint32_t)ins.op | (entry_flag ? VM_X64_INFO_ENTRY_OK : 0u) |
               (block_start ? VM_X64_INFO_BLOCK_START : 0u) | (jump_target ? VM_X64_INFO_JUMP_TARGET : 0u) |
               dpc << VM_X64_REC_PC_SHIFT | dentry << VM_X64_REC_ENTRY_SHIFT;
        note_instruction(c, pc, jump_target, entry);
        if (step_tracing)
            call_with_data(&c->out, c->step_routine, &pc, 1);
        if (block_start)
            open_block(c, pc);
        uint32_t body = here(c);
        if (body - entry != (step_tracing ? VM_X64_STEP_BYTES : 0u) +
                               (block_start && c->charges ? VM_X64_CHARGE_BYTES : 0u)) {
            c->error = VM_X64_ERR_SPACE; /* the map derives the body from these lengths */
            break;
        }
        if (fast) {
            /* One dispatch per instruction: the operands are decoded and
             * the code emitted by a copy specialised for the op. */
            switch (ins.op) {
#define EMIT_CASE(name, fmt, ...)                                                                 \
    case VM_OP_##name: {                                                                          \
        vm_instruction fi = ins;                                                                  \
        vm_decode_operands(code + pc + 1, fast_skip, pc, VM_FMT_##fmt, &fi);                           \
        if (metering)                                                                             \
            vm_gas_feed(&c->gas, &fi);                                                            \
        emit_instruction(c, VM_OP_##name, &fi, rec, body, jump_table_count);                               \
        break;                                                                                    \
    }
                VM_OPCODES(EMIT_CASE)
#undef EMIT_CASE
            default:
                if (metering)
                    vm_gas_feed(&c->gas, &ins);
                emit_instruction(c, (vm_op)ins.op, &ins, rec, body, jump_table_count);
                break;
            }
        } else {
            if (metering)
                vm_gas_feed(&c->gas, &ins);
            emit_instruction(c, (vm_op)ins.op, &ins, rec, body, jump_table_count);
        }
        int ends_block = fd->flags_of[ins.op] & VM_F_ENDS_BLOCK;
        if (ends_block)
            close_block(c);
        if ((size_t)(c->out.p - before) > INSN_BUDGET || c->pend_bytes - stub_bytes_before > STUBS_PER_INSN_BUDGET) {
            c->error = VM_X64_ERR_SPACE; /* a budget above is wrong: fail loudly, never overrun */
            break;
        }
        if (c->pend_count) {
            if (!c->falls_through)
                vm_x64_flush_stubs(c);
            else if (c->pend_count > PENDING_MAX - 8)
                vm_x64_flush_stubs_inline(c);
        }

        vm_block_walk_advance(&w, &ins, ends_block);
    }
    if (c->error)
        return;
    if (c->block_open)
        close_block(c);
    if (c->hi == code_len) {
        /* The guard: running past the last instruction traps. */
        c->current_pc = code_len;
        emit_trap(c, code_len);
    } else if (c->falls_through) {
        jump_pc(c, -1, c->hi);
    }
    vm_x64_flush_stubs(c);
    /* Forward jumps within the segment can be patched now, in parallel
     * with the other segment; those to another segment wait for the link. */
    size_t kept = 0;
    for (size_t i = 0; i < c->fixup_count; i++) {
        fixup f = c->fixups[i];
        if (f.target_pc >= c->lo && f.target_pc < c->hi)
            patch_fixup(c->out.start, c, f);
        else
            c->fixups[kept++] = f;
    }
    c->fixup_count = kept;
}
