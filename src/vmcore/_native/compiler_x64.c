/* The recompiler: guest code -> x86-64, one pass, O(n).  See compiler.h
 * for the contract with the sandbox.
 *
 * The pass walks the code exactly as the interpreter's builder does
 * (vm_module_build): the same instruction sequence (implicit traps
 * included), the same basic blocks, the same gas per block, the same
 * jump-target rules.  Each guest instruction becomes a short fixed sequence
 * of native code, in program order.  What only runs on the way out (the
 * out-of-gas path, traps of dynamic jumps, the address-overflow path, the
 * rare halves of division) goes to small out-of-line stubs, collected while
 * a stretch of code is emitted and written after the next instruction that
 * never falls through (so no extra jump is needed and the straight-line
 * code stays dense).  Everything is in one buffer, so every reference is
 * final when written except forward branches to guest pcs, patched from
 * the pc -> native table at the end.
 *
 * Big programs are compiled as two segments on two threads
 * (config.parallel): the second starts at a basic block start near the
 * middle, where the walk's state is known, and writes its code from the
 * first segment's worst-case bound on (a gap nobody writes); branches and
 * jump-table entries that cross segments are fixups like any other.  The
 * pc map (compiler.h) is written as 4-byte records as the walk goes.
 *
 * Buffer layout: shared routines first (exits, entry, helpers), then the
 * instructions.  One guest instruction:
 *
 *   [step exit]      (step tracing) call step_routine; .long pc
 *   [gas charge]     (block start) sub qword [gas], cost; jl oog_stub
 *   body             the instruction
 *
 * Exits that need data pass it after a `call` (the routine pops the
 * address of the data: the pc, the hostcall number, ...); ecalli and step
 * resume right after their data.  The out-of-gas stub carries only the
 * block's pc: the sandbox reads the cost back from the charge.
 */
#define _GNU_SOURCE /* pthread_sigmask, madvise, CPU affinity */
#include "vmcore/compiler.h"

/* Forced inlining lets every per-opcode copy of the emitter fold to its
 * own case; without optimisation (debug and sanitizer builds) nothing
 * folds and forcing it only multiplies the code (tens of GB of compiler
 * memory), so there it is a plain hint. */
#ifdef __OPTIMIZE__
#define HOT_INLINE static inline __attribute__((always_inline))
#else
#define HOT_INLINE static inline
#endif

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

/* Guest register -> host register: vm_x64_guest_regs (x64_runtime.c). */

#define S X64_RAX
#define MB X64_R15

_Static_assert(VM_ADDR_JUMP_TABLE == (1ull << 35), "dynamic jumps form the table address with bts rax, 32 (<<3)");
_Static_assert(VM_MAXIMUM_JUMP_TABLE_ENTRIES <= 0x7fffffffu, "odd addresses must land past the table after ror");
_Static_assert(VM_ADDR_GUEST_MEMORY > VM_ADDR_VMCTX_ALIAS && VM_ADDR_GUEST_MEMORY - VM_ADDR_VMCTX_ALIAS <= 0x10000,
               "the VmCtx alias must be reachable from r15 with a small displacement");

/* Space budgets (bytes), checked as we go: one instruction's own code (step
 * exit 9 + gas charge 17 + at most 71 for load_imm_and_jump_indirect), the
 * stubs one instruction can add (a block's out-of-gas and big-charge stubs
 * plus a division's), the shared routines.  Native code stays below 1 GiB
 * (rel32 reach with room to spare; offsets carry flags above that). */
#define INSN_BUDGET 112u
#define STUBS_PER_INSN_BUDGET 72u
#define INSN_SLACK 8u /* a forced flush's jump */
#define ROUTINES_BUDGET 4096u
#define PENDING_MAX 64u
#define CODE_LIMIT 0x3fff0000u

/* The charge sequence (open_block): sub qword [r15 + disp32], imm32 (11
 * bytes, the cost at +7: VM_X64_CHARGE_COST_AT); jl rel32 (6). */
#define CHARGE_SUB_BYTES 11u
#define CHARGE_COST_AT VM_X64_CHARGE_COST_AT
_Static_assert(CHARGE_SUB_BYTES + 6 == VM_X64_CHARGE_BYTES, "the charge sequence's length");

static inline x64_mem ctx_at(size_t offset) { return x64_base_disp(MB, VM_X64_VMCTX_DISP + (int32_t)offset); }
#define CTX(field) ctx_at(offsetof(vmctx, field))
#define CTX_REG(i) ctx_at(offsetof(vmctx, regs) + 8u * (size_t)(i))
#define CTX_STUB(i) ctx_at(offsetof(vmctx, exit_stubs) + 8u * (size_t)(i))

typedef struct fixup {
    uint32_t at;        /* offset of a rel32 field */
    uint32_t target_pc; /* guest pc whose entry it jumps to */
} fixup;

enum { STUB_OOG, STUB_BIG_CHARGE, STUB_TRAP, STUB_FINISHED, STUB_OVERFLOW, STUB_DIV };
static const uint8_t stub_max[] = {
    [STUB_OOG] = 9, [STUB_BIG_CHARGE] = 17, [STUB_TRAP] = 9, [STUB_FINISHED] = 9, [STUB_OVERFLOW] = 9,
    [STUB_DIV] = 32,
};

/* An out-of-line stub waiting to be written; `at`/`at2` are rel32 fields
 * (0: none) to point at it. */
typedef struct pending {
    uint8_t kind;
    uint32_t at, at2;
    uint32_t pc;
    uint32_t x, y; /* OOG: cost, charge offset; BIG: cost, jl offset; DIV: packed regs/flags, resume offset */
} pending;

typedef struct fast_decoder fast_decoder;

/* Cache-line aligned (so sized too): two segments compile side by side
 * from an array of these, and sharing a line between them costs 15%. */
typedef struct compiler {
    _Alignas(64) const vm_x64_config *config;
    const fast_decoder *decoder;
    vm_isa isa;
    int is64;
    const uint8_t *code;
    const uint8_t *bitmask;
    uint32_t code_len;
    int charges;
    int error;

    x64_buf out;
    uint8_t *limit;

    /* Jump targets emitted so far, in pc order: a bit per code byte, the
     * count of targets before each 64-byte word, and their native entry
     * offsets (a rank structure: ~0.4 bytes per code byte). */
    uint64_t *target_bits;
    uint32_t *target_prefix;
    uint32_t *target_entry;
    uint32_t target_count;
    uint32_t prefix_filled; /* target_prefix is final below this word */
    uint32_t current_pc;
    uint32_t jump_table_count;
    uint32_t lo, hi;    /* the segment of guest code this compiler walks (see compile_segment) */
    uint32_t lo_offset; /* where its native code starts */
    int falls_through;  /* the last instruction's code can run into the next */

    fixup *fixups;
    size_t fixup_count, fixup_cap;
    size_t bits_cap, prefix_cap, entry_cap; /* entries allocated (scratch kept between compiles) */
    /* A later segment writes its map to scratch (the link copies it into
     * place); with config.populate it prefaults where that will be. */
    uint32_t *own_records;
    vm_x64_mark *own_marks;
    size_t own_records_cap, own_marks_cap;
    uint8_t *prefault_from, *prefault_to;

    pending pend[PENDING_MAX];
    uint32_t pend_count;
    uint32_t pend_bytes; /* what the waiting stubs may take */

    /* The pc map (compiler.h): records and marks. */
    uint32_t *records;
    size_t map_count, map_cap;
    vm_x64_mark *marks;
    size_t mark_count, mark_cap;
    uint32_t last_pc, last_entry; /* the previous record's */
    uint8_t *populated_code;      /* config.populate: output prefaulted up to here */
    uint8_t *populated_records;
    int populate_failed;

    /* Shared routines. */
    uint32_t exit_routine[VMCTX_STUB_COUNT];
    uint32_t entry_routine;
    uint32_t sbrk_routine;
    uint32_t memset_routine;
    uint32_t trap_routine;     /* call; .long pc */
    uint32_t finished_routine; /* call; .long pc */
    uint32_t overflow_routine; /* call; .long pc */
    uint32_t overflow_probe;
    uint32_t oog_routine;      /* call; .long pc (the block's) */
    uint32_t ecalli_routine;   /* call; .long pc, next pc, number; resumes after */
    uint32_t step_routine;     /* call; .long pc; resumes after */

    /* The open basic block. */
    int block_open;
    uint32_t block_pc;
    vm_gas_sim gas;      /* its cost so far (gas metering only) */
    size_t charge_at;    /* offset of the gas charge */
} compiler;

static inline int R(int guest) { return vm_x64_guest_regs[guest]; }

static inline uint64_t sext32(uint32_t v) { return (uint64_t)(int64_t)(int32_t)v; }

static inline uint32_t here(const compiler *c) { return (uint32_t)x64_offset(&c->out); }

static void grow_fixups(compiler *c, size_t at, uint32_t target_pc)
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

HOT_INLINE void add_fixup(compiler *c, size_t at, uint32_t target_pc)
{
    if (__builtin_expect(c->fixup_count == c->fixup_cap, 0)) {
        grow_fixups(c, at, target_pc);
        return;
    }
    c->fixups[c->fixup_count++] = (fixup){(uint32_t)at, target_pc};
}

static inline uint64_t popcount64(uint64_t v)
{
    /* SWAR: no dependence on the POPCNT instruction in the host build */
    v = v - ((v >> 1) & 0x5555555555555555ull);
    v = (v & 0x3333333333333333ull) + ((v >> 2) & 0x3333333333333333ull);
    v = (v + (v >> 4)) & 0x0f0f0f0f0f0f0f0full;
    return (v * 0x0101010101010101ull) >> 56;
}

/* Every emitted instruction, in pc order (targets recorded with their
 * native entry). */
static inline void note_instruction(compiler *c, uint32_t pc, int jump_target, uint32_t entry)
{
    uint32_t w = pc >> 6;
    while (c->prefix_filled <= w)
        c->target_prefix[c->prefix_filled++] = c->target_count;
    if (jump_target) {
        c->target_bits[w] |= 1ull << (pc & 63);
        c->target_entry[c->target_count++] = entry;
    }
}

/* For pcs already emitted. */
static inline int is_emitted_target(const compiler *c, uint32_t pc)
{
    return (int)((c->target_bits[pc >> 6] >> (pc & 63)) & 1u);
}

static inline uint32_t target_entry_of(const compiler *c, uint32_t pc)
{
    uint32_t w = pc >> 6;
    uint64_t below = c->target_bits[w] & ((1ull << (pc & 63)) - 1u);
    return c->target_entry[c->target_prefix[w] + (uint32_t)popcount64(below)];
}

/* A jump (cc < 0: unconditional) to a guest pc's entry: backward targets
 * are known (short form when in reach), forward ones are patched later. */
HOT_INLINE void jump_pc(compiler *c, int cc, uint32_t target_pc)
{
    x64_buf *b = &c->out;
    if (target_pc <= c->current_pc && target_pc >= c->lo) {
        size_t target = target_entry_of(c, target_pc);
        int64_t rel8 = (int64_t)target - (int64_t)(x64_offset(b) + 2);
        if (rel8 >= -128) {
            if (cc < 0)
                x64_jmp_rel8(b, target);
            else
                x64_jcc_rel8(b, (x64_cc)cc, target);
        } else if (cc < 0) {
            x64_jmp_rel32(b, target);
        } else {
            x64_jcc_rel32(b, (x64_cc)cc, target);
        }
        return;
    }
    size_t at = cc < 0 ? x64_jmp_rel32(b, X64_NO_TARGET) : x64_jcc_rel32(b, (x64_cc)cc, X64_NO_TARGET);
    add_fixup(c, at, target_pc);
}

HOT_INLINE pending *add_pending(compiler *c, int kind, size_t at, uint32_t pc)
{
    pending *p = &c->pend[c->pend_count++];
    c->pend_bytes += stub_max[kind];
    p->kind = (uint8_t)kind;
    p->at = (uint32_t)at;
    p->at2 = 0;
    p->pc = pc;
    p->x = p->y = 0;
    return p;
}

/* jcc (or jmp when cc < 0) to an out-of-line stub calling `kind`'s routine
 * with pc; returns the pending entry (a second branch may join it). */
HOT_INLINE pending *branch_to_stub(compiler *c, int cc, int kind, uint32_t pc)
{
    size_t at = cc < 0 ? x64_jmp_rel32(&c->out, X64_NO_TARGET) : x64_jcc_rel32(&c->out, (x64_cc)cc, X64_NO_TARGET);
    return add_pending(c, kind, at, pc);
}

/* call routine; .long data... */
HOT_INLINE void call_with_data(x64_buf *b, uint32_t routine, const uint32_t *data, int n)
{
    x64_call_rel32(b, routine);
    for (int i = 0; i < n; i++)
        x64_u32(b, data[i]);
}

/* ---- shared routines (start of the buffer) ---- */

static void save_regs(x64_buf *b)
{
    for (int i = 0; i < VMCTX_REG_COUNT; i++)
        x64_store(b, 8, CTX_REG(i), R(i));
}

static void load_regs(x64_buf *b)
{
    for (int i = 0; i < VMCTX_REG_COUNT; i++)
        x64_load(b, 8, R(i), CTX_REG(i));
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

static void emit_routines(compiler *c)
{
    x64_buf *b = &c->out;
    static const int exits[] = {VMCTX_STUB_FINISHED, VMCTX_STUB_TRAP, VMCTX_STUB_ECALLI,
                                VMCTX_STUB_NOT_ENOUGH_GAS, VMCTX_STUB_PAGEFAULT, VMCTX_STUB_STEP};
    for (size_t k = 0; k < sizeof exits / sizeof exits[0]; k++) {
        c->exit_routine[exits[k]] = here(c);
        save_regs(b);
        x64_jmp_m(b, CTX_STUB(exits[k]));
    }

    /* Entry: r15, guest registers, then wherever the host points. */
    c->entry_routine = here(c);
    x64_movabs(b, MB, VM_ADDR_GUEST_MEMORY);
    load_regs(b);
    x64_jmp_m(b, CTX(next_native_program_counter));

    /* sbrk: request in eax, result in eax. */
    c->sbrk_routine = here(c);
    save_regs(b);
    x64_mov_rr(b, 4, X64_RDI, X64_RAX);
    call_helper(b, VMCTX_STUB_SBRK);
    load_regs(b);
    x64_ret(b);

    /* memset: the caller stored program_counter / next_native_program_counter. */
    c->memset_routine = here(c);
    save_regs(b);
    x64_mov_r32_imm(b, X64_RDI, c->config->gas_metering ? 1u : 0u);
    call_helper(b, VMCTX_STUB_MEMSET);
    x64_test_rr(b, 4, X64_RAX, X64_RAX);
    size_t stop = x64_jcc_rel8(b, X64_CC_NE, X64_NO_TARGET);
    load_regs(b);
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
    save_regs(b);
    x64_pop(b, X64_RAX);
    copy_data_word(b, 0, offsetof(vmctx, program_counter));
    x64_store_imm(b, 8, CTX(next_native_program_counter), 0); /* 0: a charge to undo (memset's exit sets it) */
    x64_jmp_m(b, CTX_STUB(VMCTX_STUB_NOT_ENOUGH_GAS));

    /* ecalli: call; .long pc, next pc, number; resume after the data */
    c->ecalli_routine = here(c);
    save_regs(b);
    x64_pop(b, X64_RAX);
    copy_data_word(b, 0, offsetof(vmctx, program_counter));
    copy_data_word(b, 4, offsetof(vmctx, next_program_counter));
    copy_data_word(b, 8, offsetof(vmctx, arg));
    x64_lea(b, 8, X64_RAX, x64_base_disp(X64_RAX, 12));
    x64_store(b, 8, CTX(next_native_program_counter), X64_RAX);
    x64_jmp_m(b, CTX_STUB(VMCTX_STUB_ECALLI));

    /* step: call; .long pc; resume after the data */
    c->step_routine = here(c);
    save_regs(b);
    x64_pop(b, X64_RAX);
    copy_data_word(b, 0, offsetof(vmctx, program_counter));
    x64_lea(b, 8, X64_RAX, x64_base_disp(X64_RAX, 4));
    x64_store(b, 8, CTX(next_native_program_counter), X64_RAX);
    x64_jmp_m(b, CTX_STUB(VMCTX_STUB_STEP));
}

/* ---- out-of-line stubs ---- */

/* The stubs with code of their own (the others are `call routine; .long
 * pc`, written by flush_stubs). */
static void write_stub(compiler *c, const pending *p)
{
    x64_buf *b = &c->out;
    uint32_t at = here(c);
    if (p->at)
        x64_patch_rel32(b->start, p->at, at);
    if (p->at2)
        x64_patch_rel32(b->start, p->at2, at);
    switch (p->kind) {
    default:
        c->error = VM_X64_ERR_CONFIG; /* flush_stubs writes the others */
        return;
    case STUB_BIG_CHARGE:
        /* a cost too big for a sign-extended imm32: charge here and go
         * back to the jl */
        x64_mov_r32_imm(b, S, p->x);
        x64_alu_mr(b, X64_SUB, 8, CTX(gas), S);
        x64_jmp_rel32(b, p->y);
        break;
    case STUB_DIV: {
        /* x: a | b << 4 | wide << 8 | rem << 9 | signed << 10; at: divisor
         * zero; at2: (signed) divisor -1; y: where to go back */
        int a = (int)(p->x & 15), bb = (int)((p->x >> 4) & 15), w = (p->x >> 8) & 1 ? 8 : 4;
        int is_rem = (p->x >> 9) & 1;
        /* divisor 0: div -> all ones, rem -> the dividend */
        if (is_rem) {
            if (w == 4)
                x64_sext32(b, a, bb);
            else if (a != bb)
                x64_mov_rr(b, 8, a, bb);
        } else {
            x64_mov_r64_simm32(b, a, -1);
        }
        x64_jmp_rel32(b, p->y);
        if (p->at2) {
            /* divisor -1: div -> negation (INT_MIN stays), rem -> 0 */
            x64_patch_rel32(b->start, p->at2, here(c));
            if (is_rem) {
                x64_alu_rr(b, X64_XOR, 4, a, a);
            } else {
                x64_mov_rr(b, w, S, bb);
                x64_unary_r(b, X64_NEG, w, S);
                if (w == 4)
                    x64_sext32(b, a, S);
                else
                    x64_mov_rr(b, 8, a, S);
            }
            x64_jmp_rel32(b, p->y);
        }
        break;
    }
    }
    if (here(c) - at > stub_max[p->kind])
        c->error = VM_X64_ERR_SPACE; /* a budget above is wrong: fail loudly */
}

static void flush_stubs(compiler *c)
{
    uint8_t *start = c->out.start;
    for (uint32_t i = 0; i < c->pend_count; i++) {
        const pending *p = &c->pend[i];
        uint32_t routine = p->kind == STUB_OVERFLOW ? c->overflow_routine
                           : p->kind == STUB_OOG    ? c->oog_routine
                           : p->kind == STUB_TRAP   ? c->trap_routine
                           : p->kind == STUB_FINISHED ? c->finished_routine
                                                      : 0;
        if (!routine) {
            write_stub(c, p);
            continue;
        }
        /* call routine; .long pc */
        uint8_t *o = c->out.p;
        uint32_t at = (uint32_t)(o - start);
        if (p->at)
            x64_patch_rel32(start, p->at, at);
        if (p->at2)
            x64_patch_rel32(start, p->at2, at);
        int32_t rel = (int32_t)((int64_t)routine - (int64_t)(at + 5));
        o[0] = 0xe8;
        memcpy(o + 1, &rel, 4);
        memcpy(o + 5, &p->pc, 4);
        c->out.p = o + 9;
    }
    c->pend_count = 0;
    c->pend_bytes = 0;
}

/* Too many stubs waiting (a long stretch without an unconditional jump):
 * write them here, jumping over them. */
static void flush_stubs_inline(compiler *c)
{
    size_t over = x64_jmp_rel32(&c->out, X64_NO_TARGET);
    flush_stubs(c);
    x64_patch_rel32(c->out.start, over, here(c));
}

/* ---- blocks and gas ---- */

HOT_INLINE void open_block(compiler *c, uint32_t pc)
{
    c->block_open = 1;
    c->block_pc = pc;
    if (!c->charges)
        return;
    /* sub qword [gas], cost (patched by close_block); jl oog stub */
    x64_buf *b = &c->out;
    c->charge_at = x64_offset(b);
    x64_alu_mi32(b, X64_SUB, 8, CTX(gas), 0);
    size_t jl = x64_jcc_rel32(b, X64_CC_L, X64_NO_TARGET);
    add_pending(c, STUB_OOG, jl, pc);
}

HOT_INLINE void close_block(compiler *c)
{
    c->block_open = 0;
    if (!c->charges)
        return;
    uint32_t cost = c->config->gas_metering ? vm_gas_take(&c->gas) : 0u;
    uint8_t *site = c->out.start + c->charge_at;
    if (cost > 0x7fffffffu) {
        /* too big for the sub's sign-extended imm32: jmp to a stub that
         * charges and comes back to the jl; the cost stays where the
         * imm32 was, for vm_x64_out_of_gas */
        x64_buf patch = {site, c->out.start};
        size_t at = x64_jmp_rel32(&patch, X64_NO_TARGET);
        x64_nops(&patch, CHARGE_COST_AT - 5);
        pending *p = add_pending(c, STUB_BIG_CHARGE, at, c->block_pc);
        p->x = cost;
        p->y = (uint32_t)c->charge_at + CHARGE_SUB_BYTES;
    }
    memcpy(site + CHARGE_COST_AT, &cost, 4);
}

/* ---- instruction helpers ---- */

static inline int valid_target(const compiler *c, uint32_t target);

HOT_INLINE void emit_trap(compiler *c, uint32_t pc)
{
    call_with_data(&c->out, c->trap_routine, &pc, 1);
    c->falls_through = 0;
}

static inline void mov64(x64_buf *h, int dst, int src)
{
    if (dst != src)
        x64_mov_rr(h, 8, dst, src);
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

static inline void sext_result(x64_buf *h, int a) { x64_sext32(h, a, a); }


/* div/rem; the rare cases (divisor 0, signed divisor -1) out of line. */
static void emit_division(compiler *c, vm_op op, int w, int ga, int gb, int gc)
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
        x64_sext32(h, a, S);
    else
        x64_mov_rr(h, 8, a, S);
    pending *p = add_pending(c, STUB_DIV, jz, c->current_pc);
    p->at2 = (uint32_t)jm1;
    p->x = (uint32_t)a | (uint32_t)b << 4 | (w == 8 ? 1u << 8 : 0u) | (is_rem ? 1u << 9 : 0u) |
           (is_signed ? 1u << 10 : 0u);
    p->y = here(c);
}
/* The high half of a product. */
static void emit_mul_upper(compiler *c, vm_op op, int ga, int gb, int gc)
{
    x64_buf *h = &c->out;
    int a = R(ga), b = R(gb), d = R(gc);
    if (!c->is64) {
        /* 32-bit: the exact 64-bit product of the extended operands. */
        x64_push(h, X64_RDX);
        if (op == VM_OP_mul_upper_unsigned_unsigned)
            x64_mov_rr(h, 4, S, b);
        else
            x64_sext32(h, S, b);
        if (op == VM_OP_mul_upper_signed_signed)
            x64_sext32(h, X64_RDX, d);
        else
            x64_mov_rr(h, 4, X64_RDX, d);
        x64_imul_rr(h, 8, S, X64_RDX);
        x64_shift_ri(h, X64_SHR, 8, S, 32);
        x64_pop(h, X64_RDX);
        x64_sext32(h, a, S);
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
static void emit_rotate(compiler *c, int left, int w, int a, int b, int d)
{
    x64_buf *h = &c->out;
    /* (b >> n) | (b << -n), shifts masking their count as rotations do */
    x64_mov_rr(h, w, S, d);
    x64_unary_r(h, X64_NEG, w, S);
    x64_shiftx(h, left ? X64_SHRX : X64_SHLX, w, S, b, S);
    x64_shiftx(h, left ? X64_SHLX : X64_SHRX, w, a, b, d);
    x64_alu_rr(h, X64_OR, w, a, S);
    if (w == 4)
        sext_result(h, a);
}

/* max/min: a = (b cc c) ? c : b, through rax */
static void emit_minmax(compiler *c, x64_cc take_c, int w, int a, int b, int d)
{
    x64_buf *h = &c->out;
    x64_mov_rr(h, w, S, b);
    x64_alu_rr(h, X64_CMP, w, S, d);
    x64_cmov(h, take_c, w, S, d);
    if (w == 4)
        x64_sext32(h, a, S);
    else
        x64_mov_rr(h, 8, a, S);
}

HOT_INLINE void emit_set_cc(compiler *c, x64_cc cc, int a)
{
    x64_setcc(&c->out, cc, S);
    x64_movzx_rr(&c->out, 4, 1, a, S);
}

/* Memory access at guest address (base register + offset) or absolute. */

/* Memory access at guest address (base register + offset) or absolute. */
enum { ACC_LOAD_U, ACC_LOAD_S, ACC_STORE, ACC_STORE_IMM };

HOT_INLINE void emit_access(compiler *c, uint32_t *rec, uint32_t pc, int kind, int size, int reg, int base_guest,
                        uint32_t offset, uint32_t imm)
{
    x64_buf *h = &c->out;
    if (base_guest < 0) {
        if ((uint64_t)offset + (uint64_t)size > 0xffffffffull) {
            call_with_data(h, c->overflow_routine, &pc, 1);
            c->falls_through = 0;
            return;
        }
        x64_mov_r32_imm(h, S, offset);
    } else {
        /* an access reaching 0xffffffff goes to overflow_routine (out of
         * line: the hot path stays a not-taken branch) */
        int b = R(base_guest);
        if (offset == 0)
            x64_mov_rr(h, 4, S, b);
        else
            x64_lea(h, 4, S, x64_base_disp(b, (int32_t)offset));
        x64_alu_ri(h, X64_CMP, 4, S, -size);
        branch_to_stub(c, X64_CC_AE, STUB_OVERFLOW, pc);
    }
    x64_mem m = x64_base_index(MB, S, 0, 0);
    int log2 = size == 1 ? 0 : size == 2 ? 1 : size == 4 ? 2 : 3;
    switch (kind) {
    case ACC_LOAD_U:
        if (size <= 2)
            x64_movzx_rm(h, 4, size, reg, m);
        else
            x64_load(h, size, reg, m); /* 4: zero-extends */
        break;
    case ACC_LOAD_S:
        x64_movsx_rm(h, 8, size, reg, m);
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

/* Dynamic jump to the guest address in eax. */
static void emit_dynamic_jump(compiler *c, uint32_t pc, uint32_t table_count)
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

static x64_cc branch_cc(vm_op op)
{
    switch (op) {
    case VM_OP_branch_eq: case VM_OP_branch_eq_imm: return X64_CC_E;
    case VM_OP_branch_not_eq: case VM_OP_branch_not_eq_imm: return X64_CC_NE;
    case VM_OP_branch_less_unsigned: case VM_OP_branch_less_unsigned_imm: return X64_CC_B;
    case VM_OP_branch_less_signed: case VM_OP_branch_less_signed_imm: return X64_CC_L;
    case VM_OP_branch_greater_or_equal_unsigned: case VM_OP_branch_greater_or_equal_unsigned_imm: return X64_CC_AE;
    case VM_OP_branch_greater_or_equal_signed: case VM_OP_branch_greater_or_equal_signed_imm: return X64_CC_GE;
    case VM_OP_branch_less_or_equal_unsigned_imm: return X64_CC_BE;
    case VM_OP_branch_less_or_equal_signed_imm: return X64_CC_LE;
    case VM_OP_branch_greater_unsigned_imm: return X64_CC_A;
    case VM_OP_branch_greater_signed_imm: return X64_CC_G;
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
        if (!valid_target(c, ins->imm1)) {
            emit_trap(c, pc);
        } else if (ins->imm1 != ins->next) {
            jump_pc(c, -1, ins->imm1);
            c->falls_through = 0;
        }
        return;
    case VM_OP_load_imm_and_jump:
        x64_mov_imm64(h, a, sext32(ins->imm1));
        if (!valid_target(c, ins->imm2)) {
            emit_trap(c, pc);
        } else if (ins->imm2 != ins->next) {
            jump_pc(c, -1, ins->imm2);
            c->falls_through = 0;
        }
        return;
    case VM_OP_jump_indirect:
        if (ins->imm1 == 0)
            x64_mov_rr(h, 4, S, a);
        else
            x64_lea(h, 4, S, x64_base_disp(a, (int32_t)ins->imm1));
        emit_dynamic_jump(c, pc, table_count);
        return;
    case VM_OP_load_imm_and_jump_indirect:
        if (ins->imm2 == 0)
            x64_mov_rr(h, 4, S, b);
        else
            x64_lea(h, 4, S, x64_base_disp(b, (int32_t)ins->imm2));
        x64_mov_imm64_keep_flags(h, a, sext32(ins->imm1));
        emit_dynamic_jump(c, pc, table_count);
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
        x64_sext32(h, a, S);
        return;
    case VM_OP_memset:
        x64_lea(h, 8, S, x64_base_disp(X64_RIP, (int32_t)body - (int32_t)(here(c) + 7)));
        x64_store(h, 8, CTX(next_native_program_counter), S);
        x64_store_imm(h, 4, CTX(program_counter), (int32_t)pc);
        x64_call_rel32(h, c->memset_routine);
        return;
    case VM_OP_load_imm:
        x64_mov_imm64(h, a, simm);
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
        x64_alu_rr(h, X64_CMP, 8, a, b);
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
        if (imm == 0 && (op == VM_OP_branch_eq_imm || op == VM_OP_branch_not_eq_imm))
            x64_test_rr(h, 8, a, a);
        else
            x64_alu_ri(h, X64_CMP, 8, a, (int32_t)imm);
        jump_pc(c, (int)branch_cc(op), ins->imm2);
        return;

    /* ---- three registers: a = b op d ---- */
    case VM_OP_add_32:
        x64_lea(h, 4, a, x64_base_index(b, d, 0, 0));
        sext_result(h, a);
        return;
    case VM_OP_add_64:
        x64_lea(h, 8, a, x64_base_index(b, d, 0, 0));
        return;
    case VM_OP_sub_32:
        sub_rrr(h, 4, a, b, d);
        sext_result(h, a);
        return;
    case VM_OP_sub_64:
        sub_rrr(h, 8, a, b, d);
        return;
    case VM_OP_and: binop_comm(h, X64_AND, 8, a, b, d); return;
    case VM_OP_xor: binop_comm(h, X64_XOR, 8, a, b, d); return;
    case VM_OP_or: binop_comm(h, X64_OR, 8, a, b, d); return;
    case VM_OP_mul_32:
        if (a == b) {
            x64_imul_rr(h, 4, a, d);
        } else if (a == d) {
            x64_imul_rr(h, 4, a, b);
        } else {
            x64_mov_rr(h, 4, a, b);
            x64_imul_rr(h, 4, a, d);
        }
        sext_result(h, a);
        return;
    case VM_OP_mul_64:
        if (a == b) {
            x64_imul_rr(h, 8, a, d);
        } else if (a == d) {
            x64_imul_rr(h, 8, a, b);
        } else {
            x64_mov_rr(h, 8, a, b);
            x64_imul_rr(h, 8, a, d);
        }
        return;
    case VM_OP_mul_upper_signed_signed:
    case VM_OP_mul_upper_unsigned_unsigned:
    case VM_OP_mul_upper_signed_unsigned:
        emit_mul_upper(c, op, ins->reg[0], ins->reg[1], ins->reg[2]);
        return;
    case VM_OP_set_less_than_unsigned:
        x64_alu_rr(h, X64_CMP, 8, b, d);
        emit_set_cc(c, X64_CC_B, a);
        return;
    case VM_OP_set_less_than_signed:
        x64_alu_rr(h, X64_CMP, 8, b, d);
        emit_set_cc(c, X64_CC_L, a);
        return;
    case VM_OP_shift_logical_left_32: x64_shiftx(h, X64_SHLX, 4, a, b, d); sext_result(h, a); return;
    case VM_OP_shift_logical_left_64: x64_shiftx(h, X64_SHLX, 8, a, b, d); return;
    case VM_OP_shift_logical_right_32: x64_shiftx(h, X64_SHRX, 4, a, b, d); sext_result(h, a); return;
    case VM_OP_shift_logical_right_64: x64_shiftx(h, X64_SHRX, 8, a, b, d); return;
    case VM_OP_shift_arithmetic_right_32: x64_shiftx(h, X64_SARX, 4, a, b, d); sext_result(h, a); return;
    case VM_OP_shift_arithmetic_right_64: x64_shiftx(h, X64_SARX, 8, a, b, d); return;
    case VM_OP_div_unsigned_32: case VM_OP_div_signed_32: case VM_OP_rem_unsigned_32: case VM_OP_rem_signed_32:
        emit_division(c, op, 4, ins->reg[0], ins->reg[1], ins->reg[2]);
        return;
    case VM_OP_div_unsigned_64: case VM_OP_div_signed_64: case VM_OP_rem_unsigned_64: case VM_OP_rem_signed_64:
        emit_division(c, op, 8, ins->reg[0], ins->reg[1], ins->reg[2]);
        return;
    case VM_OP_cmov_if_zero:
        x64_test_rr(h, 8, d, d);
        x64_cmov(h, X64_CC_E, 8, a, b);
        return;
    case VM_OP_cmov_if_not_zero:
        x64_test_rr(h, 8, d, d);
        x64_cmov(h, X64_CC_NE, 8, a, b);
        return;
    case VM_OP_and_inverted:
        x64_andn(h, w, a, d, b);
        if (w == 4)
            sext_result(h, a);
        return;
    case VM_OP_or_inverted:
        x64_mov_rr(h, w, S, d);
        x64_unary_r(h, X64_NOT, w, S);
        x64_alu_rr(h, X64_OR, w, S, b);
        if (w == 4)
            x64_sext32(h, a, S);
        else
            x64_mov_rr(h, 8, a, S);
        return;
    case VM_OP_xnor:
        x64_mov_rr(h, w, S, b);
        x64_alu_rr(h, X64_XOR, w, S, d);
        x64_unary_r(h, X64_NOT, w, S);
        if (w == 4)
            x64_sext32(h, a, S);
        else
            x64_mov_rr(h, 8, a, S);
        return;
    case VM_OP_maximum: emit_minmax(c, X64_CC_L, w, a, b, d); return;
    case VM_OP_maximum_unsigned: emit_minmax(c, X64_CC_B, w, a, b, d); return;
    case VM_OP_minimum: emit_minmax(c, X64_CC_G, w, a, b, d); return;
    case VM_OP_minimum_unsigned: emit_minmax(c, X64_CC_A, w, a, b, d); return;
    case VM_OP_rotate_left_32: emit_rotate(c, 1, 4, a, b, d); return;
    case VM_OP_rotate_left_64: emit_rotate(c, 1, 8, a, b, d); return;
    case VM_OP_rotate_right_32: emit_rotate(c, 0, 4, a, b, d); return;
    case VM_OP_rotate_right_64: emit_rotate(c, 0, 8, a, b, d); return;

    /* ---- two registers and an immediate: a = b op imm ---- */
    case VM_OP_add_imm_32:
        x64_lea(h, 4, a, x64_base_disp(b, (int32_t)imm));
        sext_result(h, a);
        return;
    case VM_OP_add_imm_64:
        x64_lea(h, 8, a, x64_base_disp(b, (int32_t)imm));
        return;
    case VM_OP_and_imm:
    case VM_OP_xor_imm:
    case VM_OP_or_imm:
        mov64(h, a, b);
        x64_alu_ri(h, op == VM_OP_and_imm ? X64_AND : op == VM_OP_xor_imm ? X64_XOR : X64_OR, 8, a, (int32_t)imm);
        return;
    case VM_OP_mul_imm_32:
        x64_imul_rri(h, 4, a, b, (int32_t)imm);
        sext_result(h, a);
        return;
    case VM_OP_mul_imm_64:
        x64_imul_rri(h, 8, a, b, (int32_t)imm);
        return;
    case VM_OP_set_less_than_unsigned_imm:
        x64_alu_ri(h, X64_CMP, 8, b, (int32_t)imm);
        emit_set_cc(c, X64_CC_B, a);
        return;
    case VM_OP_set_less_than_signed_imm:
        x64_alu_ri(h, X64_CMP, 8, b, (int32_t)imm);
        emit_set_cc(c, X64_CC_L, a);
        return;
    case VM_OP_set_greater_than_unsigned_imm:
        x64_alu_ri(h, X64_CMP, 8, b, (int32_t)imm);
        emit_set_cc(c, X64_CC_A, a);
        return;
    case VM_OP_set_greater_than_signed_imm:
        x64_alu_ri(h, X64_CMP, 8, b, (int32_t)imm);
        emit_set_cc(c, X64_CC_G, a);
        return;
    case VM_OP_shift_logical_left_imm_32:
    case VM_OP_shift_logical_right_imm_32: {
        uint8_t n = (uint8_t)(imm & 31);
        if (n == 0) {
            x64_sext32(h, a, b);
            return;
        }
        x64_mov_rr(h, 4, a, b);
        x64_shift_ri(h, op == VM_OP_shift_logical_left_imm_32 ? X64_SHL : X64_SHR, 4, a, n);
        sext_result(h, a);
        return;
    }
    case VM_OP_shift_arithmetic_right_imm_32: {
        uint8_t n = (uint8_t)(imm & 31);
        x64_sext32(h, a, b);
        if (n)
            x64_shift_ri(h, X64_SAR, 8, a, n);
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
        x64_mov_r32_imm(h, S, imm);
        x64_alu_rr(h, X64_SUB, 4, S, b);
        x64_sext32(h, a, S);
        return;
    case VM_OP_negate_and_add_imm_64:
        x64_mov_imm64(h, S, simm);
        x64_alu_rr(h, X64_SUB, 8, S, b);
        x64_mov_rr(h, 8, a, S);
        return;
    case VM_OP_shift_logical_right_imm_alt_32:
    case VM_OP_shift_arithmetic_right_imm_alt_32:
    case VM_OP_shift_logical_left_imm_alt_32:
        x64_mov_r32_imm(h, S, imm);
        x64_shiftx(h, op == VM_OP_shift_logical_right_imm_alt_32 ? X64_SHRX
                      : op == VM_OP_shift_arithmetic_right_imm_alt_32 ? X64_SARX : X64_SHLX, 4, a, S, b);
        sext_result(h, a);
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
        x64_mov_imm64(h, S, simm);
        x64_test_rr(h, 8, b, b);
        x64_cmov(h, op == VM_OP_cmov_if_zero_imm ? X64_CC_E : X64_CC_NE, 8, a, S);
        return;
    case VM_OP_rotate_right_imm_32:
        x64_rorx(h, 4, a, b, (uint8_t)(imm & 31));
        sext_result(h, a);
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
            x64_sext32(h, a, S);
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
    case VM_OP_sign_extend_8: x64_movsx_rr(h, 8, 1, a, b); return;
    case VM_OP_sign_extend_16: x64_movsx_rr(h, 8, 2, a, b); return;
    case VM_OP_zero_extend_16: x64_movzx_rr(h, 4, 2, a, b); return;
    case VM_OP_reverse_byte:
        if (c->is64) {
            mov64(h, a, b);
            x64_bswap(h, 8, a);
        } else {
            x64_mov_rr(h, 4, a, b);
            x64_bswap(h, 4, a);
            sext_result(h, a);
        }
        return;
    default:
        /* every op of every ISA is handled above; keep the interpreter's
         * fallback (a trap) for anything else */
        emit_trap(c, pc);
        return;
    }
}

/* ---- decoding ----
 * vm_decode (decoder.c) is the definition.  The pass uses this inlined copy
 * of it where every byte it reads is inside the code (all but the last 72
 * bytes), and vm_decode itself elsewhere; vm_x64_decoder_selftest() checks
 * the two agree at every offset of any code. */

struct fast_decoder {
    uint8_t op_of[256];                 /* opcode byte -> vm_op for the ISA */
    uint8_t format_of[VM_OP_COUNT + 1];
    uint8_t flags_of[VM_OP_COUNT + 1];
};

static void fast_decoder_init(fast_decoder *d, vm_isa isa)
{
    for (int k = 0; k < 256; k++)
        d->op_of[k] = (uint8_t)vm_isa_decode_opcode(isa, (uint8_t)k);
    for (int op = 0; op <= VM_OP_COUNT; op++) {
        d->format_of[op] = (uint8_t)vm_op_format((vm_op)op);
        d->flags_of[op] = (uint8_t)vm_op_flags((vm_op)op);
    }
}

static inline uint32_t load_u32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static inline uint64_t load_u64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* length (0..4) little-endian bytes, sign-extended to 32 bits; p has 4
 * readable bytes */
static inline uint32_t fast_imm(const uint8_t *p, uint32_t length)
{
    if (length == 0)
        return 0;
    uint32_t shift = 32 - 8 * length;
    return (uint32_t)((int32_t)(load_u32(p) << shift) >> shift);
}

static inline uint32_t fast_clamp4(int32_t v) { return v < 0 ? 0u : (v > 4 ? 4u : (uint32_t)v); }
static inline uint8_t fast_reg(uint32_t nibble) { nibble &= 15; return (uint8_t)(nibble > 12 ? 12 : nibble); }

/* The operands of an instruction of `format` whose operand bytes start at
 * c (skip of them before the next start); with a constant format the
 * switch folds away. */
HOT_INLINE void fast_operands(const uint8_t *c, uint32_t skip, uint32_t offset,
                                                                uint32_t format, vm_instruction *out)
{
    int32_t s = (int32_t)skip;
    uint32_t l1, l2;
    switch ((vm_format)format) {
    case VM_FMT_ARGLESS:
        break;
    case VM_FMT_IMM:
        out->imm1 = fast_imm(c, skip < 4 ? skip : 4);
        break;
    case VM_FMT_OFFSET:
        out->imm1 = offset + fast_imm(c, skip < 4 ? skip : 4);
        break;
    case VM_FMT_IMM_IMM:
        l1 = c[0] & 7u;
        if (l1 > 4)
            l1 = 4;
        l2 = fast_clamp4(s - (int32_t)l1 - 1);
        out->imm1 = fast_imm(c + 1, l1);
        out->imm2 = fast_imm(c + 1 + l1, l2);
        break;
    case VM_FMT_REG_IMM:
        out->reg[0] = fast_reg(c[0]);
        out->imm1 = fast_imm(c + 1, fast_clamp4(s - 1));
        break;
    case VM_FMT_REG_IMM_IMM:
    case VM_FMT_REG_IMM_OFFSET:
        out->reg[0] = fast_reg(c[0]);
        l1 = (c[0] >> 4) & 7u;
        if (l1 > 4)
            l1 = 4;
        l2 = fast_clamp4(s - (int32_t)l1 - 1);
        out->imm1 = fast_imm(c + 1, l1);
        out->imm2 = fast_imm(c + 1 + l1, l2);
        if (format == VM_FMT_REG_IMM_OFFSET)
            out->imm2 += offset;
        break;
    case VM_FMT_REG_REG_IMM_IMM:
        out->reg[0] = fast_reg(c[0]);
        out->reg[1] = fast_reg((uint32_t)c[0] >> 4);
        l1 = c[1] & 7u;
        if (l1 > 4)
            l1 = 4;
        l2 = fast_clamp4(s - (int32_t)l1 - 2);
        out->imm1 = fast_imm(c + 2, l1);
        out->imm2 = fast_imm(c + 2 + l1, l2);
        break;
    case VM_FMT_REG_REG_IMM:
    case VM_FMT_REG_REG_OFFSET:
        out->reg[0] = fast_reg(c[0]);
        out->reg[1] = fast_reg((uint32_t)c[0] >> 4);
        out->imm1 = fast_imm(c + 1, fast_clamp4(s - 1));
        if (format == VM_FMT_REG_REG_OFFSET)
            out->imm1 += offset;
        break;
    case VM_FMT_REG_REG_REG:
        out->reg[0] = fast_reg(c[1]);
        out->reg[1] = fast_reg(c[0]);
        out->reg[2] = fast_reg((uint32_t)c[0] >> 4);
        break;
    case VM_FMT_REG_REG:
        out->reg[0] = fast_reg(c[0]);
        out->reg[1] = fast_reg((uint32_t)c[0] >> 4);
        break;
    case VM_FMT_REG_IMM64:
        out->reg[0] = fast_reg(c[0]);
        out->imm64 = load_u64(c + 1);
        break;
    default:
        break;
    }
}

/* What every instruction needs: op, length, next start.  Needs offset +
 * FAST_DECODE_MARGIN <= code_len: then the 8-byte bitmask window and the
 * operand bytes are all in range, and the next instruction start or the
 * implicit-trap cap lies inside the code. */
HOT_INLINE uint32_t fast_head(const fast_decoder *d, const uint8_t *code,
                                                                const uint8_t *bitmask, uint32_t offset,
                                                                vm_instruction *out)
{
    uint32_t origin = offset + 1;
    uint64_t w = (load_u64(bitmask + (origin >> 3)) >> (origin & 7)) & ((1ull << (VM_BITMASK_MAX + 1)) - 1);
    /* w == 0: the next start is past the cap, an implicit trap follows */
    uint32_t skip = w ? (uint32_t)__builtin_ctzll(w) : VM_BITMASK_MAX;
    uint32_t op = d->op_of[code[offset]];
    out->offset = offset;
    out->next = offset + skip + 1;
    out->op = (uint16_t)op;
    out->format = d->format_of[op];
    out->next_is_invalid = (uint8_t)(w == 0);
    out->reg[0] = out->reg[1] = out->reg[2] = 0;
    out->imm1 = out->imm2 = 0;
    out->imm64 = 0;
    return skip;
}

HOT_INLINE void fast_decode(const fast_decoder *d, const uint8_t *code,
                                                              const uint8_t *bitmask, uint32_t offset,
                                                              vm_instruction *out)
{
    uint32_t skip = fast_head(d, code, bitmask, offset, out);
    fast_operands(code + offset + 1, skip, offset, out->format, out);
}

/* origin + 64 bits of bitmask and 16 operand bytes stay inside the code */
#define FAST_DECODE_MARGIN 72u

/* vm_is_basic_block_start (decoder.c) with one bitmask load: an
 * instruction start whose nearest earlier start within the bitmask's reach
 * ends a basic block. */
static inline int fast_block_start(const fast_decoder *d, const uint8_t *code, uint32_t code_len,
                                   const uint8_t *bitmask, uint32_t t)
{
    if (t < 64 || (uint64_t)t + 64 > code_len)
        return -1; /* not here: ask vm_is_basic_block_start */
    if (!((bitmask[t >> 3] >> (t & 7)) & 1))
        return 0;
    uint32_t reach = VM_BITMASK_MAX + ((t & 7) ? 1u : 0u);
    uint32_t lo = t - reach;
    uint64_t w = (load_u64(bitmask + (lo >> 3)) >> (lo & 7)) & ((1ull << reach) - 1);
    if (!w)
        return 0;
    uint32_t prev = lo + 63u - (uint32_t)__builtin_clzll(w);
    uint32_t op = d->op_of[code[prev]];
    return op != VM_OP_INVALID && (d->flags_of[op] & VM_F_ENDS_BLOCK);
}

static inline int same_instruction(const vm_instruction *a, const vm_instruction *b)
{
    return a->offset == b->offset && a->next == b->next && a->op == b->op && a->format == b->format &&
           a->reg[0] == b->reg[0] && a->reg[1] == b->reg[1] && a->reg[2] == b->reg[2] && a->imm1 == b->imm1 &&
           a->imm2 == b->imm2 && a->imm64 == b->imm64 && a->next_is_invalid == b->next_is_invalid;
}

HOT_INLINE int valid_target(const compiler *c, uint32_t target)
{
    /* known for everything this segment emitted so far (the walk is in
     * pc order) */
    if (target <= c->current_pc && target >= c->lo)
        return is_emitted_target(c, target);
    int fast = fast_block_start(c->decoder, c->code, c->code_len, c->bitmask, target);
    return fast >= 0 ? fast : vm_is_basic_block_start(c->isa, c->code, c->code_len, c->bitmask, target);
}

int64_t vm_x64_decoder_selftest(int isa, const uint8_t *code, uint32_t code_len, const uint8_t *bitmask)
{
    if ((unsigned)isa >= VM_ISA_COUNT)
        return -2;
    fast_decoder d;
    fast_decoder_init(&d, (vm_isa)isa);
    vm_instruction a, b;
    for (uint32_t offset = 0; offset + FAST_DECODE_MARGIN <= code_len; offset++) {
        memset(&a, 0, sizeof a);
        memset(&b, 0, sizeof b);
        fast_decode(&d, code, bitmask, offset, &a);
        vm_decode((vm_isa)isa, code, code_len, bitmask, offset, &b);
        if (!same_instruction(&a, &b))
            return offset;
    }
    for (uint32_t t = 0; t <= code_len + 2; t++) {
        int fast = fast_block_start(&d, code, code_len, bitmask, t);
        if (fast >= 0 && fast != vm_is_basic_block_start((vm_isa)isa, code, code_len, bitmask, t))
            return t;
    }
    return -1;
}

/* ---- the pass ---- */

/* ---- the pass ---- */

/* Set bits of the bitmask's first code_len bits.  With the POPCNT
 * instruction when the CPU has it (the host build may not assume it). */
#define COUNT_STARTS_BODY(count)                                                    \
    uint64_t n = 0;                                                                 \
    uint32_t full = code_len / 8, i = 0;                                            \
    for (; i + 8 <= full; i += 8)                                                   \
        n += count(load_u64(bitmask + i));                                          \
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

static size_t instruction_bound(const uint8_t *bitmask, uint32_t code_len)
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
    return instruction_bound(bitmask, code_len) + 8;
}

/* Marks a segment of code_len guest bytes and code_capacity native bytes
 * may need: one per VM_X64_MARK_EVERY records, one after every pc step
 * past VM_X64_REC_PC_MAX (each skips that much code), one after every
 * native step past VM_X64_REC_ENTRY_MAX; rounding for two segments. */
static size_t mark_bound(size_t records, uint32_t code_len, size_t code_capacity)
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
    capacity->marks = 2 * mark_bound(n, code_len, capacity->code);
}

/* config.populate: prefault the next stretch of this segment's output in
 * one call (MADV_POPULATE_WRITE) before the writes reach it; cheaper than
 * a fault per page for shared memory.  Best effort: on failure (an old
 * kernel) it stops trying and the writes fault as usual. */
#define POPULATE_CODE (64u * 1024u)
#define POPULATE_RECORDS (64u * 1024u)

static void populate_range(uint8_t **done, uint8_t *upto, uint8_t *limit, size_t chunk, int *failed)
{
    uint8_t *from = (uint8_t *)((uintptr_t)*done & ~(uintptr_t)4095);
    if (from < *done)
        from += 4096;
    if (*failed || upto + chunk / 2 < *done)
        return;
    uint8_t *to = *done + chunk < limit ? *done + chunk : limit;
    to = (uint8_t *)((uintptr_t)to & ~(uintptr_t)4095);
    if (to > from && madvise(from, (size_t)(to - from), MADV_POPULATE_WRITE) != 0)
        *failed = 1;
    *done = to > *done ? to : *done;
}

static void populate_ahead(compiler *c)
{
    populate_range(&c->populated_code, c->out.p, c->limit, POPULATE_CODE, &c->populate_failed);
    if (c->lo == 0) /* a later segment's records are scratch */
        populate_range(&c->populated_records, (uint8_t *)(c->records + c->map_count),
                       (uint8_t *)(c->records + c->map_cap), POPULATE_RECORDS, &c->populate_failed);
}

/* The walk over one segment [c->lo, c->hi) of the code: the builder's
 * walk (interp.c, vm_module_build pass 1).  A segment after the first
 * starts at a basic block start (split_point), where the serial walk's
 * state is known: no block open, the previous instruction (within the
 * bitmask's reach) ended a block and did not end the code.  The last
 * segment ends with the guard; an earlier one with a jump to the next
 * segment's first instruction when its code falls through. */
static void compile_segment(compiler *c)
{
    const vm_x64_config *config = c->config;
    const fast_decoder *fd = c->decoder;
    const uint8_t *code = c->code;
    const uint8_t *bitmask = c->bitmask;
    const uint32_t code_len = c->code_len;
    const uint32_t jump_table_count = c->jump_table_count;
    const int step_tracing = config->step_tracing;
    const int metering = config->gas_metering;
    uint32_t entry_flag = 0;
    uint32_t offset = c->lo;
    vm_instruction ins;
    int pending_invalid = 0;
    uint32_t invalid_at = 0;
    int next_enterable, prev_real;
    uint32_t prev_offset, prev_op;
    c->populated_code = c->out.p;
    c->populated_records = (uint8_t *)c->records;
    if (c->lo == 0) {
        next_enterable = code_len > 0 && vm_bitmask_bit(bitmask, code_len, 0);
        prev_real = 0;
        prev_offset = 0;
        prev_op = VM_OP_INVALID;
        if (code_len > 0 && !vm_bitmask_bit(bitmask, code_len, 0)) {
            pending_invalid = 1;
            invalid_at = 0;
        }
    } else {
        next_enterable = 1;
        prev_real = 1;
        prev_offset = c->lo - 1;
        prev_op = VM_OP_trap; /* any op that ends a block */
    }
    for (;;) {
        int fast = 0;
        uint32_t fast_skip = 0;
        if (pending_invalid) {
            ins.offset = invalid_at;
            ins.next = invalid_at + 1;
            ins.op = VM_OP_INVALID;
            ins.format = VM_FMT_ARGLESS;
            ins.next_is_invalid = 0;
            ins.reg[0] = ins.reg[1] = ins.reg[2] = 0;
            ins.imm1 = ins.imm2 = 0;
            ins.imm64 = 0;
        } else if (offset >= c->hi) {
            break;
        } else if (offset + FAST_DECODE_MARGIN <= code_len) {
            fast_skip = fast_head(fd, code, bitmask, offset, &ins);
            fast = 1;
        } else if (offset < code_len) {
            vm_decode(c->isa, code, code_len, bitmask, offset, &ins);
        } else {
            break;
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

        entry_flag = (!pending_invalid && (c->block_open ? entry_flag : (uint32_t)next_enterable)) ? 1u : 0u;
        uint32_t pc = ins.offset;
        c->current_pc = pc;
        c->falls_through = 1;
        /* vm_is_basic_block_start(pc), from the walk: an instruction start
         * whose previous instruction (the nearest earlier start, when within
         * the bitmask's reach) ends a block */
        uint32_t reach = VM_BITMASK_MAX + ((pc & 7) ? 1u : 0u);
        int jump_target = !pending_invalid &&
                          (pc == 0 || (prev_real && pc - prev_offset <= reach && prev_op != VM_OP_INVALID &&
                                       (fd->flags_of[prev_op] & VM_F_ENDS_BLOCK)));
        if ((c->map_count & 255u) == 0 && config->populate)
            populate_ahead(c);
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
        fast_operands(code + pc + 1, fast_skip, pc, VM_FMT_##fmt, &fi);                           \
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
        if (fd->flags_of[ins.op] & VM_F_ENDS_BLOCK)
            close_block(c);
        if ((size_t)(c->out.p - before) > INSN_BUDGET || c->pend_bytes - stub_bytes_before > STUBS_PER_INSN_BUDGET) {
            c->error = VM_X64_ERR_SPACE; /* a budget above is wrong: fail loudly, never overrun */
            break;
        }
        if (c->pend_count) {
            if (!c->falls_through)
                flush_stubs(c);
            else if (c->pend_count > PENDING_MAX - 8)
                flush_stubs_inline(c);
        }

        next_enterable = !pending_invalid && !ins.next_is_invalid;
        prev_real = !pending_invalid;
        prev_offset = pc;
        prev_op = ins.op;
        if (pending_invalid) {
            pending_invalid = 0;
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
    flush_stubs(c);
    /* Forward jumps within the segment can be patched now, in parallel
     * with the other segment; those to another segment wait for the link. */
    size_t kept = 0;
    for (size_t i = 0; i < c->fixup_count; i++) {
        fixup f = c->fixups[i];
        if (f.target_pc >= c->lo && f.target_pc < c->hi)
            x64_patch_rel32(c->out.start, f.at, target_entry_of(c, f.target_pc));
        else
            c->fixups[kept++] = f;
    }
    c->fixup_count = kept;
}

static int alloc_targets(compiler *c, size_t map_capacity);

/* A segment's compile, scratch included (the second segment's is set up
 * on its own thread). */
static void *segment_thread(void *arg)
{
    compiler *c = arg;
    if (c->prefault_to > c->prefault_from)
        madvise(c->prefault_from, (size_t)(c->prefault_to - c->prefault_from), MADV_POPULATE_WRITE);
    if (!alloc_targets(c, c->map_cap))
        c->error = VM_X64_ERR_NOMEM;
    else
        compile_segment(c);
    return NULL;
}

/* The second segment's thread.  A new thread starts on its creator's CPU
 * and waits there until the load balancer moves it: on an otherwise idle
 * 2-vCPU machine that took 2.8 ms on average (up to 5 ms; half of 1 MB
 * compiles in 5).  So it is created on another CPU the process may use,
 * and then allowed everywhere again. */
typedef struct helper_start {
    compiler *c;
    cpu_set_t allowed;
    int restore;
} helper_start;

static void *helper_main(void *arg)
{
    helper_start *h = arg;
    if (h->restore)
        sched_setaffinity(0, sizeof h->allowed, &h->allowed);
    return segment_thread(h->c);
}

static int start_helper(pthread_t *thread, helper_start *h, compiler *c)
{
    h->c = c;
    h->restore = 0;
    pthread_attr_t attr;
    if (pthread_attr_init(&attr) != 0)
        return -1;
    int me = sched_getcpu();
    cpu_set_t others;
    CPU_ZERO(&others);
    if (me >= 0 && sched_getaffinity(0, sizeof h->allowed, &h->allowed) == 0) {
        for (int k = 0; k < CPU_SETSIZE; k++)
            if (k != me && CPU_ISSET(k, &h->allowed))
                CPU_SET(k, &others);
        if (CPU_COUNT(&others) > 0 && pthread_attr_setaffinity_np(&attr, sizeof others, &others) == 0)
            h->restore = 1;
    }
    int rc = pthread_create(thread, &attr, helper_main, h);
    pthread_attr_destroy(&attr);
    return rc;
}

/* Where a second thread can take over: the first basic block start at or
 * after `hint` (0: the middle of the code), or 0 for none. */
static uint32_t split_point(const fast_decoder *d, vm_isa isa, const uint8_t *code, uint32_t code_len,
                            const uint8_t *bitmask, uint32_t hint)
{
    uint32_t t = hint ? hint : code_len / 2;
    for (uint32_t stop = code_len - t > (1u << 20) ? t + (1u << 20) : code_len; t > 0 && t < stop; t++) {
        int b = fast_block_start(d, code, code_len, bitmask, t);
        if (b < 0)
            b = vm_is_basic_block_start(isa, code, code_len, bitmask, t);
        if (b)
            return t;
    }
    return 0;
}

/* A segment compiler's scratch arrays are kept for the next compile (a
 * process compiles program after program; fresh allocations would fault
 * their pages in every time).  Never waits for the lock: without it,
 * allocate (so a child forked while it was held still works). */
typedef struct scratch {
    uint64_t *target_bits;
    uint32_t *target_prefix;
    uint32_t *target_entry;
    fixup *fixups;
    uint32_t *records;
    vm_x64_mark *marks;
    size_t bits_cap, prefix_cap, entry_cap, fixup_cap, records_cap, marks_cap;
} scratch;

#define SCRATCH_KEPT 2
#define SCRATCH_KEPT_BYTES (64u << 20) /* each; bigger ones are freed */

static pthread_mutex_t scratch_lock = PTHREAD_MUTEX_INITIALIZER;
static scratch scratch_kept[SCRATCH_KEPT]; /* one per segment (first, later): each keeps its shape */
static int scratch_held[SCRATCH_KEPT];

/* At least `need` items of `item` bytes (contents not kept); NULL when
 * out of memory (the old block is then freed and *cap 0). */
static void *reserve(void *p, size_t *cap, size_t need, size_t item)
{
    if (p && *cap >= need)
        return p;
    free(p);
    need += need / 4; /* room for the next program's to differ a little */
    p = malloc(need * item);
    *cap = p ? need : 0;
    return p;
}

static int alloc_targets(compiler *c, size_t map_capacity)
{
    scratch s;
    memset(&s, 0, sizeof s);
    int slot = c->lo > 0;
    if (pthread_mutex_trylock(&scratch_lock) == 0) {
        if (scratch_held[slot]) {
            s = scratch_kept[slot];
            scratch_held[slot] = 0;
        }
        pthread_mutex_unlock(&scratch_lock);
    }
    size_t words = ((size_t)c->code_len + 64) / 64 + 1;
    c->target_bits = reserve(s.target_bits, &s.bits_cap, words, sizeof(uint64_t));
    c->target_prefix = reserve(s.target_prefix, &s.prefix_cap, words, sizeof(uint32_t));
    c->target_entry = reserve(s.target_entry, &s.entry_cap, map_capacity, sizeof(uint32_t));
    c->bits_cap = s.bits_cap;
    c->prefix_cap = s.prefix_cap;
    c->entry_cap = s.entry_cap;
    c->fixups = s.fixups;
    c->fixup_cap = s.fixup_cap;
    c->fixup_count = 0;
    c->own_records = s.records;
    c->own_marks = s.marks;
    c->own_records_cap = s.records_cap;
    c->own_marks_cap = s.marks_cap;
    if (c->lo > 0) {
        c->own_records = reserve(c->own_records, &c->own_records_cap, c->map_cap, sizeof(uint32_t));
        c->own_marks = reserve(c->own_marks, &c->own_marks_cap, c->mark_cap, sizeof(vm_x64_mark));
        if (!c->own_records || !c->own_marks)
            return 0;
        c->records = c->own_records;
        c->marks = c->own_marks;
    }
    if (!c->target_bits || !c->target_prefix || !c->target_entry)
        return 0;
    memset(c->target_bits, 0, words * sizeof(uint64_t));
    return 1;
}

static void free_compiler(compiler *c)
{
    scratch s = {c->target_bits, c->target_prefix, c->target_entry, c->fixups, c->own_records, c->own_marks,
                 c->bits_cap,    c->prefix_cap,    c->entry_cap,    c->fixup_cap, c->own_records_cap,
                 c->own_marks_cap};
    size_t bytes = s.bits_cap * 8 + s.prefix_cap * 4 + s.entry_cap * 4 + s.fixup_cap * sizeof(fixup) +
                   s.records_cap * 4 + s.marks_cap * sizeof(vm_x64_mark);
    int slot = c->lo > 0;
    if (bytes <= SCRATCH_KEPT_BYTES && pthread_mutex_trylock(&scratch_lock) == 0) {
        int kept = !scratch_held[slot];
        if (kept) {
            scratch_kept[slot] = s;
            scratch_held[slot] = 1;
        }
        pthread_mutex_unlock(&scratch_lock);
        if (kept)
            return;
    }
    free(s.target_bits);
    free(s.target_prefix);
    free(s.target_entry);
    free(s.fixups);
    free(s.records);
    free(s.marks);
}

/* The segment compiler that emitted guest pc `pc`. */
static inline const compiler *owner_of(const compiler *segments, int count, uint32_t pc)
{
    return count > 1 && pc >= segments[1].lo ? &segments[1] : &segments[0];
}

int vm_x64_compile(const vm_x64_config *config, const uint8_t *code, uint32_t code_len, const uint8_t *bitmask,
                   const uint32_t *jump_table_targets, uint32_t jump_table_count, const vm_x64_capacity *capacity,
                   uint8_t *code_out, uint64_t *jump_table_out, uint32_t *records_out, vm_x64_mark *marks_out,
                   vm_x64_module *module)
{
    if (!config || (unsigned)config->isa >= VM_ISA_COUNT ||
        (config->gas_metering && vm_gas_model_check(&config->gas) != 0) || !module || !capacity || (!code && code_len) ||
        (!bitmask && code_len) || (!jump_table_targets && jump_table_count) || (!jump_table_out && jump_table_count))
        return VM_X64_ERR_CONFIG;
    if (code_len > VM_MAXIMUM_CODE_SIZE || jump_table_count > VM_MAXIMUM_JUMP_TABLE_ENTRIES)
        return VM_X64_ERR_TOO_BIG;
    vm_x64_capacity need;
    vm_x64_bounds(code, code_len, bitmask, config, &need);
    if (capacity->code < need.code || capacity->records < need.records || capacity->marks < need.marks)
        return VM_X64_ERR_SPACE;
    size_t code_capacity = capacity->code, map_capacity = capacity->records;

    compiler segments[2];
    compiler *c = &segments[0];
    memset(segments, 0, sizeof segments);
    c->config = config;
    c->isa = (vm_isa)config->isa;
    c->is64 = vm_isa_is_64_bit(c->isa);
    c->code = code;
    c->bitmask = bitmask;
    c->code_len = code_len;
    c->jump_table_count = jump_table_count;
    c->charges = config->gas_metering || config->interruptible;
    if (config->gas_metering)
        vm_gas_init(&c->gas, &config->gas, c->isa, code, code_len);
    c->out.start = c->out.p = code_out;
    c->limit = code_out + code_capacity;
    c->records = records_out;
    c->map_cap = map_capacity;
    c->marks = marks_out;
    c->mark_cap = capacity->marks;
    c->lo = 0;
    c->hi = code_len;
    emit_routines(c);
    uint32_t first_insn = here(c);
    fast_decoder fd;
    fast_decoder_init(&fd, c->isa);
    c->decoder = &fd;

    /* Two threads, each compiling about half the code into its own part of
     * the buffers (the second part starts where the first one's bound
     * ends: a hole in between that is never touched). */
    int count = 1;
    uint32_t split = 0;
    if ((config->split_hint || (config->parallel && code_len >= VM_X64_PARALLEL_MIN)) && code_capacity < CODE_LIMIT)
        split = split_point(&fd, c->isa, code, code_len, bitmask, config->split_hint);
    if (split) {
        compiler *d = &segments[1];
        size_t n0 = instruction_bound(bitmask, split);
        size_t per = INSN_BUDGET + STUBS_PER_INSN_BUDGET + INSN_SLACK;
        *d = *c;
        size_t m0 = mark_bound(n0, split, ROUTINES_BUDGET + (n0 + 2) * per);
        c->hi = split;
        c->limit = code_out + ROUTINES_BUDGET + (n0 + 2) * per;
        c->map_cap = n0;
        c->mark_cap = m0;
        d->lo = split;
        d->out.p = c->limit;
        d->lo_offset = (uint32_t)(c->limit - code_out);
        d->map_cap = map_capacity - n0;
        d->mark_cap = capacity->marks - m0;
        if (config->populate) {
            /* its records land after the first segment's (at most n0),
             * at least n0 - (implicit traps the bound allowed for) */
            size_t low = n0 > split / (VM_BITMASK_MAX + 1) + 8 ? n0 - split / (VM_BITMASK_MAX + 1) - 8 : 0;
            d->prefault_from = (uint8_t *)(((uintptr_t)(records_out + low) + 4095) & ~(uintptr_t)4095);
            d->prefault_to = (uint8_t *)((uintptr_t)(records_out + map_capacity) & ~(uintptr_t)4095);
        }
        d->target_bits = NULL;
        d->target_prefix = NULL;
        d->target_entry = NULL;
        d->fixups = NULL;
        d->fixup_count = d->fixup_cap = d->bits_cap = d->prefix_cap = d->entry_cap = 0;
        d->own_records = NULL;
        d->own_marks = NULL;
        d->own_records_cap = d->own_marks_cap = 0;
        count = 2;
        /* Signals stay with the application's threads. */
        pthread_t thread;
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        helper_start start;
        int threaded = start_helper(&thread, &start, d) == 0;
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        segment_thread(c);
        if (threaded)
            pthread_join(thread, NULL);
        else
            segment_thread(d);
    } else {
        segment_thread(c);
    }

    int rc = c->error ? c->error : segments[1].error;
    if (!rc) {
        size_t map_count = c->map_count, mark_count = c->mark_count;
        if (count > 1) {
            const compiler *d = &segments[1];
            memcpy(records_out + map_count, d->records, d->map_count * sizeof *records_out);
            for (size_t k = 0; k < d->mark_count; k++) {
                vm_x64_mark m = d->marks[k];
                m.index += (uint32_t)map_count;
                marks_out[mark_count + k] = m;
            }
            map_count += d->map_count;
            mark_count += d->mark_count;
        }
        for (int k = 0; k < count; k++) {
            const compiler *s = &segments[k];
            for (size_t i = 0; i < s->fixup_count; i++) {
                uint32_t target = s->fixups[i].target_pc;
                x64_patch_rel32(code_out, s->fixups[i].at, target_entry_of(owner_of(segments, count, target), target));
            }
        }
        for (uint32_t k = 0; k < jump_table_count; k++) {
            uint32_t target = jump_table_targets[k];
            const compiler *s = owner_of(segments, count, target);
            jump_table_out[k] = target < code_len && is_emitted_target(s, target)
                                    ? config->code_address + target_entry_of(s, target)
                                    : 0;
        }
        module->code_address = config->code_address;
        module->code_size = here(&segments[count - 1]);
        module->gap_start = count > 1 ? here(c) : module->code_size;
        module->gap_end = count > 1 ? segments[1].lo_offset : module->code_size;
        module->first_insn = first_insn;
        module->entry_trampoline = c->entry_routine;
        module->overflow_probe = c->overflow_probe;
        module->map_count = (uint32_t)map_count;
        module->mark_count = (uint32_t)mark_count;
        module->jump_table_count = jump_table_count;
        module->code_len = code_len;
        module->isa = config->isa;
        module->is_64_bit = c->is64;
        module->gas_metering = config->gas_metering;
        module->step_tracing = config->step_tracing;
        module->charges = c->charges;
    }
    for (int k = 0; k < count; k++)
        free_compiler(&segments[k]);
    return rc;
}

/* ---- host side: entering a call ---- */

int vm_x64_enter(const vm_x64_module *module, const vm_x64_map *map, const uint8_t *native_code, uint32_t pc,
                 int64_t *gas, uint64_t *native_address)
{
    if (pc > module->code_len)
        return -1;
    vm_x64_map_entry e;
    int64_t k = vm_x64_find_pc(module, map, pc, &e);
    if (k < 0 || !(e.info & VM_X64_INFO_ENTRY_OK))
        return -1;
    if (module->gas_metering && !(e.info & VM_X64_INFO_BLOCK_START)) {
        /* entering mid-block charges the whole block up front (the
         * interpreter's charge-on-entry): the cost its charge holds */
        const uint32_t *r = map->records;
        int64_t start = k;
        while (start > 0 && !(r[start] & VM_X64_INFO_BLOCK_START))
            start--;
        vm_x64_map_entry first;
        if (!native_code || !module->charges || vm_x64_map_read(module, map, (uint32_t)start, 1, &first) != 0)
            return -1;
        uint32_t block;
        memcpy(&block, native_code + first.entry + (module->step_tracing ? VM_X64_STEP_BYTES : 0u) +
                           VM_X64_CHARGE_COST_AT, 4);
        if ((int64_t)block > *gas)
            return -2;
        *gas -= (int64_t)block;
    }
    *native_address = module->code_address + e.entry;
    return 0;
}

/* ---- CPU support ---- */

int vm_x64_cpu_check(const char **missing)
{
#if !defined(__x86_64__)
    /* Compiling x86-64 code is plain data transformation and works on any
     * host; running it needs an x86-64 CPU. */
    if (missing)
        *missing = "an x86-64 CPU";
    return 1;
#else
    uint32_t a, b, c, d;
    const char *what = 0;
    __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(0u), "c"(0u));
    uint32_t max_leaf = a;
    __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(1u), "c"(0u));
    int popcnt = (c >> 23) & 1;
    int bmi1 = 0, bmi2 = 0;
    if (max_leaf >= 7) {
        __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(7u), "c"(0u));
        bmi1 = (b >> 3) & 1;
        bmi2 = (b >> 8) & 1;
    }
    __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(0x80000000u), "c"(0u));
    int lzcnt = 0;
    if (a >= 0x80000001u) {
        __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(0x80000001u), "c"(0u));
        lzcnt = (c >> 5) & 1;
    }
    if (!bmi2)
        what = "BMI2";
    else if (!bmi1)
        what = "BMI1";
    else if (!lzcnt)
        what = "LZCNT";
    else if (!popcnt)
        what = "POPCNT";
    if (missing)
        *missing = what;
    return what != 0;
#endif
}
