/* The shared routines at the start of the native code: exits to the
 * sandbox, the entry trampoline, the helper calls (sbrk, memset). */
#include "internal.h"

/* ---- shared routines (start of the buffer) ---- */

/* A 32-bit program's registers leave sign-extended (sext_result) */
static void save_regs(const compiler *c, x64_buf *b)
{
    for (int i = 0; i < VM_REG_COUNT; i++) {
        if (!c->is64)
            x64_sext32(b, R(i), R(i));
        x64_store(b, 8, CTX_REG(i), R(i));
    }
}

/* A 32-bit program's registers enter zero-extended (sext_result): the
 * low halves, whatever the host left above them. */
static void load_regs(const compiler *c, x64_buf *b)
{
    for (int i = 0; i < VM_REG_COUNT; i++)
        x64_load(b, c->is64 ? 8 : 4, R(i), CTX_REG(i));
}

/* rbx <- rsp; align; call [stub]; rsp <- rbx (rbx is callee saved and the
 * guest's rbx is in vmctx.regs by now). */
static void call_helper(x64_buf *b, int stub)
{
    x64_mov_rr(b, 8, X64_RBX, X64_RSP);
    x64_alu_ri(b, X64_AND, 8, X64_RSP, -16);
    x64_call_m(b, CTX_STUB(stub));
    x64_mov_rr(b, 8, X64_RSP, X64_RBX);
}

/* rcx = the 32-bit word at [rax + k] stored to a 32-bit VmCtx field */
static void copy_data_word(x64_buf *b, int k, size_t field_offset)
{
    x64_load(b, 4, X64_RCX, x64_base_disp(X64_RAX, k));
    x64_store(b, 4, ctx_at(field_offset), X64_RCX);
}

void vm_x64_emit_routines(compiler *c)
{
    x64_buf *b = &c->out;
    static const int exits[] = {VMCTX_STUB_FINISHED, VMCTX_STUB_TRAP, VMCTX_STUB_ECALLI,
                                VMCTX_STUB_NOT_ENOUGH_GAS, VMCTX_STUB_PAGEFAULT, VMCTX_STUB_STEP};
    for (size_t k = 0; k < sizeof exits / sizeof exits[0]; k++) {
        c->exit_routine[exits[k]] = here(c);
        save_regs(c, b);
        x64_jmp_m(b, CTX_STUB(exits[k]));
    }

    /* Entry: r15, guest registers, then wherever the host points. */
    c->entry_routine = here(c);
    x64_movabs(b, MB, VM_ADDR_GUEST_MEMORY);
    load_regs(c, b);
    x64_jmp_m(b, CTX(next_native_program_counter));

    /* sbrk: request in eax, result in eax. */
    c->sbrk_routine = here(c);
    save_regs(c, b);
    x64_mov_rr(b, 4, X64_RDI, X64_RAX);
    call_helper(b, VMCTX_STUB_SBRK);
    load_regs(c, b);
    x64_ret(b);

    /* memset: the caller stored program_counter / next_native_program_counter. */
    c->memset_routine = here(c);
    save_regs(c, b);
    x64_mov_r32_imm(b, X64_RDI, c->config->gas_metering ? 1u : 0u);
    call_helper(b, VMCTX_STUB_MEMSET);
    x64_test_rr(b, 4, X64_RAX, X64_RAX);
    size_t stop = x64_jcc_rel8(b, X64_CC_NE, X64_NO_TARGET);
    load_regs(c, b);
    x64_ret(b);
    x64_patch_rel8(b->start, stop, x64_offset(b));
    x64_alu_ri(b, X64_ADD, 8, X64_RSP, 8); /* drop the return address */
    x64_mov_rr(b, 4, X64_RAX, X64_RAX);    /* zero-extend the stub index */
    x64_jmp_m(b, x64_base_index(MB, X64_RAX, 3, VM_X64_VMCTX_DISP + (int32_t)offsetof(vmctx, exit_stubs)));

    /* call trap_routine / finished_routine; .long pc (only rax is touched
     * before the registers are saved) */
    c->trap_routine = here(c);
    x64_pop(b, X64_RAX);
    x64_load(b, 4, X64_RAX, x64_base_disp(X64_RAX, 0));
    x64_store(b, 4, CTX(program_counter), X64_RAX);
    x64_jmp_rel32(b, c->exit_routine[VMCTX_STUB_TRAP]);
    c->finished_routine = here(c);
    x64_pop(b, X64_RAX);
    x64_load(b, 4, X64_RAX, x64_base_disp(X64_RAX, 0));
    x64_store(b, 4, CTX(program_counter), X64_RAX);
    x64_jmp_rel32(b, c->exit_routine[VMCTX_STUB_FINISHED]);

    /* An access whose last byte would be at or past 0xffffffff (the
     * interpreter's overflow rule): a panic when the top page is mapped,
     * else a page fault there.  Probe it with every guest register intact:
     * if the read faults, the SIGSEGV handler recognises this instruction
     * (module.overflow_probe) and takes the pc from the VmCtx. */
    c->overflow_routine = here(c);
    x64_pop(b, X64_RAX);
    x64_load(b, 4, X64_RAX, x64_base_disp(X64_RAX, 0));
    x64_store(b, 4, CTX(program_counter), X64_RAX);
    x64_mov_r32_imm(b, S, 0xffffffffu);
    c->overflow_probe = here(c);
    x64_movzx_rm(b, 4, 1, S, x64_base_index(MB, S, 0, 0));
    x64_jmp_rel32(b, c->exit_routine[VMCTX_STUB_TRAP]);

    /* Out of gas: call; .long pc, from the block's stub.  The sandbox
     * undoes the charge and points next_native_program_counter at it
     * (vm_x64_out_of_gas: the cost is read back from the charge), so the
     * stub needs nothing but the pc. */
    c->oog_routine = here(c);
    save_regs(c, b);
    x64_pop(b, X64_RAX);
    copy_data_word(b, 0, offsetof(vmctx, program_counter));
    x64_store_imm(b, 8, CTX(next_native_program_counter), 0); /* 0: a charge to undo (memset's exit sets it) */
    x64_jmp_m(b, CTX_STUB(VMCTX_STUB_NOT_ENOUGH_GAS));

    /* ecalli: call; .long pc, next pc, number; resume after the data */
    c->ecalli_routine = here(c);
    save_regs(c, b);
    x64_pop(b, X64_RAX);
    copy_data_word(b, 0, offsetof(vmctx, program_counter));
    copy_data_word(b, 4, offsetof(vmctx, next_program_counter));
    copy_data_word(b, 8, offsetof(vmctx, arg));
    x64_lea(b, 8, X64_RAX, x64_base_disp(X64_RAX, 12));
    x64_store(b, 8, CTX(next_native_program_counter), X64_RAX);
    x64_jmp_m(b, CTX_STUB(VMCTX_STUB_ECALLI));

    /* step: call; .long pc; resume after the data */
    c->step_routine = here(c);
    save_regs(c, b);
    x64_pop(b, X64_RAX);
    copy_data_word(b, 0, offsetof(vmctx, program_counter));
    x64_lea(b, 8, X64_RAX, x64_base_disp(X64_RAX, 4));
    x64_store(b, 8, CTX(next_native_program_counter), X64_RAX);
    x64_jmp_m(b, CTX_STUB(VMCTX_STUB_STEP));
}
