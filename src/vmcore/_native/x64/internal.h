/* The recompiler's internals, shared by its parts (the files in x64/): the
 * per-segment compiler state, the primitives every emitter uses (jumps to
 * guest pcs, out-of-line stubs, the jump-target rank structure) and the
 * fast operand decoder.  The contract with the sandbox is
 * vmcore/compiler.h.
 *
 * How the pass works: guest code -> x86-64, one pass, O(n).  The walk is
 * exactly the interpreter builder's (vm_module_build): the same
 * instruction sequence (implicit traps included), the same basic blocks,
 * the same gas per block, the same jump-target rules.  Each guest
 * instruction becomes a short fixed sequence of native code, in program
 * order.  What only runs on the way out (the out-of-gas path, traps of
 * dynamic jumps, the rare halves of division)
 * goes to small out-of-line stubs, collected while a stretch of code is
 * emitted and written after the next instruction that never falls through
 * (so no extra jump is needed and the straight-line code stays dense).
 * Everything is in one buffer, so every reference is final when written
 * except forward branches to guest pcs, patched from the pc -> native
 * table at the end.
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
 *                    (no metering: cmp qword [gas], 0, see open_block;
 *                    forward jumps enter past it, see jump_pc)
 *   body             the instruction
 *
 * Exits that need data pass it after a `call` (the routine pops the
 * address of the data: the pc, the hostcall number, ...); ecalli and step
 * resume right after their data.  The out-of-gas stub carries only the
 * block's pc: the sandbox reads the cost back from the charge.
 */
#ifndef VMCORE_X64_INTERNAL_H
#define VMCORE_X64_INTERNAL_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* pthread_sigmask, madvise, CPU affinity */
#endif
#include "vmcore/compiler.h"
#include "vmcore/decoder_inline.h"

/* Forced inlining lets every per-opcode copy of the emitter fold to its
 * own case; without optimisation (debug and sanitizer builds) nothing
 * folds and forcing it only multiplies the code (tens of GB of compiler
 * memory), so there it is a plain hint. */
#ifdef __OPTIMIZE__
#define HOT_INLINE static inline __attribute__((always_inline))
#else
#define HOT_INLINE static inline
#endif

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
/* A 32-bit program's [r15 + reg + disp] (disp < VM_GUEST_MEMORY_SLACK,
 * emit_access) reaches at most the end of the slack after the window
 * (plus an access's size, which starts inside it) or, with an absolute
 * disp32 < 2^31, the window itself. */
_Static_assert(VM_ADDR_GUEST_PERMS >= VM_ADDR_GUEST_MEMORY + VM_GUEST_MEMORY_SIZE + 2 * VM_GUEST_MEMORY_SLACK &&
                   VM_ADDR_INTERP_MODULE > VM_ADDR_GUEST_PERMS,
               "nothing may be mapped right after the guest window and its slack");

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
    uint32_t at;        /* offset of a rel32 field (| FIXUP_PAST_CHECK) */
    uint32_t target_pc; /* guest pc whose entry it jumps to */
} fixup;

/* A forward jump without metering goes past its target block's interrupt
 * check (see jump_pc); offsets stay below CODE_LIMIT, so the flag fits. */
#define FIXUP_PAST_CHECK 0x80000000u

enum { STUB_OOG, STUB_BIG_CHARGE, STUB_TRAP, STUB_FINISHED, STUB_DIV };
static const uint8_t stub_max[] = {
    [STUB_OOG] = 9, [STUB_BIG_CHARGE] = 17, [STUB_TRAP] = 9, [STUB_FINISHED] = 9,
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

typedef struct decode_tables decode_tables;

/* Cache-line aligned (so sized too): two segments compile side by side
 * from an array of these, and sharing a line between them costs 15%. */
typedef struct compiler {
    _Alignas(64) const vm_x64_config *config;
    const decode_tables *decoder;
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
    uint32_t lo, hi;    /* the segment of guest code this compiler walks (see vm_x64_compile_segment) */
    uint32_t lo_offset; /* where its native code starts */
    int falls_through;  /* the last instruction's code can run into the next */
    int checks_only;    /* block starts check for an interrupt, charging nothing (see jump_pc) */

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


/* add_fixup with a full table (select.c) */
void vm_x64_grow_fixups(compiler *c, size_t at, uint32_t target_pc);

HOT_INLINE void add_fixup(compiler *c, size_t at, uint32_t target_pc)
{
    if (__builtin_expect(c->fixup_count == c->fixup_cap, 0)) {
        vm_x64_grow_fixups(c, at, target_pc);
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

/* Patch a fixup, `owner` being the segment that emitted its target. */
static inline void patch_fixup(uint8_t *code, const compiler *owner, fixup f)
{
    uint32_t past = f.at & FIXUP_PAST_CHECK ? VM_X64_CHARGE_BYTES : 0u;
    x64_patch_rel32(code, f.at & ~FIXUP_PAST_CHECK, target_entry_of(owner, f.target_pc) + past);
}

/* A jump (cc < 0: unconditional) to a guest pc's entry: backward targets
 * are known (short form when in reach), forward ones are patched later.
 * Without metering, block starts only check for an interrupt, and a
 * forward jump goes past that check (every jump target is a block start):
 * a guest can only run forever through a backward or dynamic jump, which
 * still lands on it. */
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
    add_fixup(c, at | (c->checks_only && target_pc > c->current_pc ? FIXUP_PAST_CHECK : 0u), target_pc);
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


static inline void mov64(x64_buf *h, int dst, int src)
{
    if (dst != src)
        x64_mov_rr(h, 8, dst, src);
}

/* The result of a 32-bit operation.  A 64-bit program sees all of every
 * register, so it is sign-extended here.  In a 32-bit program only the
 * low halves mean anything to the guest, and generated code keeps the
 * upper halves zero (x86 32-bit operations clear them): an address
 * register then indexes guest memory as it is ([r15 + reg + disp], see
 * emit_access), with no copy to a scratch register.  Every instruction
 * keeps that form (32-bit operations, 32-bit sign extensions, immediates
 * zero-extended), load_regs restores it on every entry, and what hands
 * registers out (save_regs in the routines, vm_x64_guest_reg in the fault
 * handlers) sign-extends them to the interpreter's form.  A register out
 * of that form would index outside the window: it is what keeps guest
 * accesses inside it. */
static inline void sext_result(compiler *c, int a)
{
    if (c->is64)
        x64_sext32(&c->out, a, a);
}

/* dst = the 32-bit result in src's low half (src's upper half zero, as
 * after any 32-bit operation on it, or src a guest register in a 32-bit
 * program). */
static inline void result32(compiler *c, int dst, int src)
{
    if (c->is64)
        x64_sext32(&c->out, dst, src);
    else if (dst != src)
        x64_mov_rr(&c->out, 4, dst, src);
}

/* A 32-bit immediate as a register value: sign-extended in a 64-bit
 * program, zero-extended in a 32-bit one (see sext_result). */
static inline uint64_t imm_value(const compiler *c, uint32_t imm) { return c->is64 ? sext32(imm) : imm; }

/* ---- decoding ----
 * The decoder is vm_decode's own (vmcore/decoder_inline.h), inlined where
 * every byte it reads is inside the code (all but the last
 * VM_DECODE_MARGIN bytes); vm_decode itself elsewhere.  These are its
 * lookup tables for one ISA. */

struct decode_tables {
    uint8_t op_of[256];                 /* opcode byte -> vm_op for the ISA */
    uint8_t format_of[VM_OP_COUNT + 1];
    uint8_t flags_of[VM_OP_COUNT + 1];
};

static inline void decode_tables_init(decode_tables *d, vm_isa isa)
{
    for (int k = 0; k < 256; k++)
        d->op_of[k] = (uint8_t)vm_isa_decode_opcode(isa, (uint8_t)k);
    for (int op = 0; op <= VM_OP_COUNT; op++) {
        d->format_of[op] = (uint8_t)vm_op_format((vm_op)op);
        d->flags_of[op] = (uint8_t)vm_op_flags((vm_op)op);
    }
}

/* vm_is_basic_block_start, with the tables where it can (-1: not here) */
static inline int tables_block_start(const decode_tables *d, const uint8_t *code, uint32_t code_len,
                                   const uint8_t *bitmask, uint32_t t)
{
    if (t < 64 || (uint64_t)t + 64 > code_len)
        return -1;
    return vm_block_start_unchecked(d->op_of, d->flags_of, code, bitmask, t);
}

HOT_INLINE int valid_target(const compiler *c, uint32_t target)
{
    /* known for everything this segment emitted so far (the walk is in
     * pc order) */
    if (target <= c->current_pc && target >= c->lo)
        return is_emitted_target(c, target);
    int fast = tables_block_start(c->decoder, c->code, c->code_len, c->bitmask, target);
    return fast >= 0 ? fast : vm_is_basic_block_start(c->isa, c->code, c->code_len, c->bitmask, target);
}


/* ---- the parts (one file each) ---- */

/* routines.c: the shared routines at the start of the buffer. */
void vm_x64_emit_routines(compiler *c);
/* stubs.c: write the waiting out-of-line stubs here (after code that does
 * not fall through), or jumping over them. */
void vm_x64_flush_stubs(compiler *c);
void vm_x64_flush_stubs_inline(compiler *c);
/* ops.c: the instructions that need fixed registers or stubs. */
void vm_x64_emit_division(compiler *c, vm_op op, int w, int ga, int gb, int gc);
void vm_x64_emit_mul_upper(compiler *c, vm_op op, int ga, int gb, int gc);
void vm_x64_emit_rotate(compiler *c, int left, int w, int a, int b, int d);
void vm_x64_emit_minmax(compiler *c, x64_cc take_c, int w, int a, int b, int d);
void vm_x64_emit_dynamic_jump(compiler *c, uint32_t pc, uint32_t table_count);
/* select.c: the walk over one segment, instruction selection. */
void vm_x64_compile_segment(compiler *c);
/* bounds.c: worst-case instruction records and marks of a stretch of code. */
size_t vm_x64_instruction_bound(const uint8_t *bitmask, uint32_t code_len);
size_t vm_x64_mark_bound(size_t records, uint32_t code_len, size_t code_capacity);
/* prefault.c: config.populate, the next stretch of output. */
void vm_x64_populate_ahead(compiler *c);
/* threads.c: a segment's compile; the second segment's thread. */
void *vm_x64_segment_thread(void *arg);
/* scratch.c: a segment's scratch arrays, kept between compiles (0: out of
 * memory). */
int vm_x64_scratch_take(compiler *c, size_t map_capacity);
void vm_x64_scratch_give_back(compiler *c);

#endif
