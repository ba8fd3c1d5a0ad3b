/* Out-of-line stubs: the rarely taken paths (out of gas, traps, a big
 * gas charge, division's special cases) written after the code that
 * branches to them. */
#include "internal.h"

/* ---- out-of-line stubs ---- */

/* The stubs with code of their own (the others are `call routine; .long
 * pc`, written by vm_x64_flush_stubs). */
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
        c->error = VM_X64_ERR_CONFIG; /* vm_x64_flush_stubs writes the others */
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
                result32(c, a, bb);
            else if (a != bb)
                x64_mov_rr(b, 8, a, bb);
        } else if (c->is64) {
            x64_mov_r64_simm32(b, a, -1);
        } else {
            x64_mov_r32_imm(b, a, 0xffffffffu);
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
                    result32(c, a, S);
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

void vm_x64_flush_stubs(compiler *c)
{
    uint8_t *start = c->out.start;
    for (uint32_t i = 0; i < c->pend_count; i++) {
        const pending *p = &c->pend[i];
        uint32_t routine = p->kind == STUB_OOG    ? c->oog_routine
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
void vm_x64_flush_stubs_inline(compiler *c)
{
    size_t over = x64_jmp_rel32(&c->out, X64_NO_TARGET);
    vm_x64_flush_stubs(c);
    x64_patch_rel32(c->out.start, over, here(c));
}
