/* The interpreter's builder: vm_module_build() walks the code once and
 * lays it out as vm_insn records (see interp.c), plus the entry rules
 * (vm_state_set_pc) and the block costs read back from the records. */
#include "vmcore/branches.h"
#include "interp_handlers.h"

#include "vmcore/block_walk.h"
#include "vmcore/vmctx.h"

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

/* A panic record; x holds the vm_trap_reason L_TRAP reports. */
static void emit_trap(builder *b, uint32_t pc, int reason)
{
    emit(b, H_TRAP, pc)->x = (uint32_t)reason;
}

static void make_trap(vm_insn *i, int reason)
{
    i->op = H_TRAP;
    i->x = (uint32_t)reason;
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
#define BRANCH_REG(name, cond) case VM_OP_##name: return H_B##cond;
#define BRANCH_IMM(name, cond) case VM_OP_##name: return H_B##cond##I;
    VM_BRANCHES_REG(BRANCH_REG)
    VM_BRANCHES_IMM(BRANCH_IMM)
#undef BRANCH_REG
#undef BRANCH_IMM
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
        emit_trap(b, pc, vm_trap_reason_of(op, pc, b->code_len));
        return;
    case VM_OP_fallthrough:
        /* Into the next block.  Past the end of the code PolkaVM 0.35
         * panics at the fallthrough itself and charges nothing more (the
         * v0.4 vector inst_fallthrough expected the implicit trap past the
         * end to run as a block of its own: superseded). */
        if (ins->next >= b->code_len) {
            emit_trap(b, pc, VM_TRAP_END_OF_CODE);
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
    if (h == H_TRAP) /* an op without a handler (none today): the recompiler's fallback too */
        i->x = (uint32_t)vm_trap_reason_of(op, pc, b->code_len);
}

static int is_branch(uint16_t h) { return h >= H_BEQ && h <= H_BGTSI; }

/* What the module's jump targets all are (vm_targets): every static
 * target and every jump-table entry a block's CHECK record (or every one a
 * CHARGE record), else MIXED.  Before fusing (plain ops only). */
static int targets_kind(const vm_module_config *config, const vm_insn *insns, uint32_t count,
                        const uint32_t *jump_table, uint32_t jump_table_count)
{
    if (config->step_tracing)
        return VM_TARGETS_MIXED;
    uint16_t want = config->gas_metering ? H_CHARGE : H_CHECK;
    for (uint32_t k = 0; k < count; k++) {
        const vm_insn *i = &insns[k];
        int ok = 1;
        if (i->op == H_JUMP || (i->op == H_LI_JUMP && i->y != VM_INDEX_NONE))
            ok = insns[i->y].op == want;
        else if (is_branch(i->op))
            ok = insns[i->y].op == want && insns[i->z].op == want;
        if (!ok)
            return VM_TARGETS_MIXED;
    }
    for (uint32_t k = 0; k < jump_table_count; k++)
        if (jump_table[k] != VM_INDEX_NONE && insns[jump_table[k]].op != want)
            return VM_TARGETS_MIXED;
    return config->gas_metering ? VM_TARGETS_CHARGE : VM_TARGETS_CHECK;
}

/* The fused op for two plain ops in a row (interp_handlers.h), as an
 * offset from H_PLAIN_COUNT plus one; 0: none. */
static const uint8_t fuse_table[H_PLAIN_COUNT][H_PLAIN_COUNT] = {
#define FUSE_ENTRY(first, second) [H_##first][H_##second] = H_##first##__##second - H_PLAIN_COUNT + 1,
    FUSED(FUSE_ENTRY, FUSE_ENTRY)
#undef FUSE_ENTRY
};
_Static_assert(H_COUNT - H_PLAIN_COUNT < 256, "fused ops must fit fuse_table's entries");

static const uint16_t fuse_triples[][4] = {
#define FUSE_TRIPLE(first, second, third) {H_##first, H_##second, H_##third, H_##first##__##second##__##third},
    FUSED3(FUSE_TRIPLE)
#undef FUSE_TRIPLE
};

/* Pass 3: fuse the triples FUSED3 and the pairs FUSED list, left to
 * right.  Not under step tracing (a STEP record stands between any two
 * instructions there). */
static void fuse_pairs(vm_insn *insns, uint32_t count)
{
    for (uint32_t k = 0; k + 1 < count; k++) {
        uint16_t first = insns[k].op, second = insns[k + 1].op;
        if (first >= H_PLAIN_COUNT || second >= H_PLAIN_COUNT || !fuse_table[first][second])
            continue; /* (every triple starts with a fused pair) */
        if (k + 2 < count) {
            uint32_t t = 0, n = sizeof fuse_triples / sizeof fuse_triples[0];
            while (t < n && !(fuse_triples[t][0] == first && fuse_triples[t][1] == second &&
                              fuse_triples[t][2] == insns[k + 2].op))
                t++;
            if (t < n) {
                insns[k].op = fuse_triples[t][3];
                k += 2;
                continue;
            }
        }
        insns[k].op = (uint16_t)(H_PLAIN_COUNT - 1 + fuse_table[first][second]);
        k++; /* the second is done by the first: the next pair starts after it */
    }
}

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

    /* Pass 1: lay out instructions and blocks (the walk both engines share). */
    int block_open = 0;
    vm_instruction ins;
    vm_block_walk w;
    vm_block_walk_start(&w, bitmask, code_len, 0);
    for (;;) {
        int step = vm_block_walk_next(&w, code_len, &ins);
        if (step == VM_WALK_DONE)
            break;
        if (step == VM_WALK_DECODE)
            vm_decode((vm_isa)config->isa, code, code_len, bitmask, w.offset, &ins);

        b.entry_flag = vm_block_walk_entry(&w, block_open) ? ENTRY_OK : 0;
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

        int ends_block = vm_op_flags((vm_op)ins.op) & VM_F_ENDS_BLOCK;
        if (ends_block) {
            block_open = 0;
            if (config->gas_metering)
                b.insns[b.charge_index].x = vm_gas_take(&b.gas);
        }
        vm_block_walk_advance(&w, &ins, ends_block);
    }
    if (block_open && config->gas_metering) /* (every walk ends a block; just in case) */
        b.insns[b.charge_index].x = vm_gas_take(&b.gas);
    /* A guard record: running past the last record traps. */
    emit_trap(&b, code_len, VM_TRAP_END_OF_CODE);

    /* Pass 2: resolve static targets to indices. */
    for (uint32_t k = 0; k < b.count; k++) {
        vm_insn *i = &insns[k];
        if (i->op == H_JUMP) {
            uint32_t target = i->y;
            int ok = i->z ? 1 : valid_target(&b, target);
            if (ok && pc_to_index[target] != VM_INDEX_NONE) {
                i->y = pc_to_index[target];
            } else {
                make_trap(i, VM_TRAP_INVALID_JUMP);
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
                make_trap(i, VM_TRAP_INVALID_JUMP);
            }
        }
    }
    for (uint32_t k = 0; k < jump_table_count; k++) {
        uint32_t target = jump_table_targets[k];
        jump_table[k] = (target < code_len && valid_target(&b, target)) ? pc_to_index[target] : VM_INDEX_NONE;
    }

    module->targets = targets_kind(config, insns, b.count, jump_table, jump_table_count);
    if (!config->step_tracing)
        fuse_pairs(insns, b.count);

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

uint32_t vm_module_fused_records(const vm_module *module)
{
    uint32_t count = 0;
    for (uint32_t k = 0; k < module->insn_count; k++)
        count += module->insns[k].op >= H_PLAIN_COUNT;
    return count;
}
