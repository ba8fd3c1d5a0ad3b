/* The walk over a program's code that both engines lay their output out
 * by: the interpreter's builder (interp_build.c) and the recompiler's
 * instruction selection (x64/select.c).  It visits every instruction the
 * reference's unbounded instruction iterator does, in program order:
 *
 *   - each instruction start, decoded by the caller (the walk says where);
 *   - an implicit trap where the bitmask leaves a gap longer than
 *     VM_BITMASK_MAX, or where offset 0 is not an instruction start; the
 *     walk then continues at the next marked instruction;
 *
 * and keeps what the engines derive from that order: whether a call may
 * enter the current block (blocks reached from offset 0 or right after a
 * block-ending instruction, never an implicit trap or a block after a
 * gap), and whether an instruction is a basic block start (the reference's
 * jump-target rule, vm_is_basic_block_start, without re-reading the
 * bitmask).  Freestanding.
 *
 * Use:
 *     vm_block_walk w;
 *     vm_block_walk_start(&w, bitmask, code_len, lo);
 *     for (;;) {
 *         int step = vm_block_walk_next(&w, end, &ins);
 *         if (step == VM_WALK_DONE) break;
 *         if (step == VM_WALK_DECODE) decode the instruction at w.offset into ins;
 *         entry = vm_block_walk_entry(&w, block_open);
 *         ... emit ins ...
 *         vm_block_walk_advance(&w, &ins, ends_block);
 *     }
 */
#ifndef VMCORE_BLOCK_WALK_H
#define VMCORE_BLOCK_WALK_H

#include <stdint.h>

#include "vmcore/decoder.h"

typedef struct vm_block_walk {
    const uint8_t *bitmask;
    uint32_t code_len;
    uint32_t offset;      /* the next instruction start to decode */
    uint32_t invalid_at;  /* with pending_invalid: where the implicit trap stands */
    int pending_invalid;  /* the next instruction is an implicit trap */
    int next_enterable;   /* a block starting at the next instruction may be entered */
    int entry;            /* the current instruction's block may be entered */
    int prev_ends_block;  /* the previous instruction was real and ended a block */
    uint32_t prev_offset; /* ... and started here */
} vm_block_walk;

enum { VM_WALK_DONE = 0, VM_WALK_DECODE = 1, VM_WALK_IMPLICIT_TRAP = 2 };

/* Start at `lo`: 0, or a basic block start whose previous instruction
 * (within the bitmask's reach) ended a block and did not end the code (a
 * segment boundary of the recompiler's parallel walk). */
static inline void vm_block_walk_start(vm_block_walk *w, const uint8_t *bitmask, uint32_t code_len, uint32_t lo)
{
    w->bitmask = bitmask;
    w->code_len = code_len;
    w->offset = lo;
    w->invalid_at = 0;
    w->pending_invalid = 0;
    w->entry = 0;
    if (lo == 0) {
        w->next_enterable = code_len > 0 && vm_bitmask_bit(bitmask, code_len, 0);
        w->prev_ends_block = 0;
        w->prev_offset = 0;
        if (code_len > 0 && !vm_bitmask_bit(bitmask, code_len, 0))
            w->pending_invalid = 1; /* invalid_at = 0 */
    } else {
        w->next_enterable = 1;
        w->prev_ends_block = 1;
        w->prev_offset = lo - 1;
    }
}

/* What comes next: VM_WALK_IMPLICIT_TRAP (`ins` filled in as an argless
 * VM_OP_INVALID of length 1), VM_WALK_DECODE (the caller decodes the
 * instruction at w->offset into `ins`), or VM_WALK_DONE (no instruction
 * start below `end`). */
static inline int vm_block_walk_next(const vm_block_walk *w, uint32_t end, vm_instruction *ins)
{
    if (w->pending_invalid) {
        ins->offset = w->invalid_at;
        ins->next = w->invalid_at + 1;
        ins->op = VM_OP_INVALID;
        ins->format = VM_FMT_ARGLESS;
        ins->next_is_invalid = 0;
        ins->reg[0] = ins->reg[1] = ins->reg[2] = 0;
        ins->imm1 = ins->imm2 = 0;
        ins->imm64 = 0;
        return VM_WALK_IMPLICIT_TRAP;
    }
    return w->offset < end ? VM_WALK_DECODE : VM_WALK_DONE;
}

/* Whether a call may enter the block holding the current instruction
 * (block_open: the instruction continues the previous one's block). */
static inline int vm_block_walk_entry(vm_block_walk *w, int block_open)
{
    w->entry = !w->pending_invalid && (block_open ? w->entry : w->next_enterable);
    return w->entry;
}

/* Whether the current instruction, at pc, is a basic block start: offset 0
 * or an instruction start whose previous instruction (the nearest earlier
 * start, when within the bitmask's reach) ends a block. */
static inline int vm_block_walk_is_block_start(const vm_block_walk *w, uint32_t pc)
{
    uint32_t reach = VM_BITMASK_MAX + ((pc & 7) ? 1u : 0u);
    return !w->pending_invalid && (pc == 0 || (w->prev_ends_block && pc - w->prev_offset <= reach));
}

/* Past the current instruction `ins` (ends_block: its op ends a basic
 * block, VM_F_ENDS_BLOCK). */
static inline void vm_block_walk_advance(vm_block_walk *w, const vm_instruction *ins, int ends_block)
{
    w->next_enterable = !w->pending_invalid && !ins->next_is_invalid;
    w->prev_ends_block = !w->pending_invalid && ins->op != VM_OP_INVALID && ends_block;
    w->prev_offset = ins->offset;
    if (w->pending_invalid) {
        /* continue at the next marked instruction */
        uint32_t offset = w->invalid_at + 1;
        w->pending_invalid = 0;
        while (offset < w->code_len && !vm_bitmask_bit(w->bitmask, w->code_len, offset))
            offset++;
        w->offset = w->invalid_at >= w->code_len ? w->code_len : offset;
        return;
    }
    w->offset = ins->next;
    if (ins->next_is_invalid) {
        w->pending_invalid = 1;
        w->invalid_at = ins->next;
    }
}

#endif
