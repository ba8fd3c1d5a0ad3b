/* The gas charge of a basic block, the one place it is emitted: opening a
 * block writes `sub qword [gas], cost; jl oog_stub`, closing it patches
 * the block's cost in (select.c; the out-of-line halves are stubs.c's). */
#ifndef VMCORE_X64_GAS_CHARGE_H
#define VMCORE_X64_GAS_CHARGE_H

#include "internal.h"

HOT_INLINE void open_block(compiler *c, uint32_t pc)
{
    c->block_open = 1;
    c->block_pc = pc;
    if (!c->charges)
        return;
    /* sub qword [gas], cost (patched by close_block); jl oog stub.
     * Without metering (only interruptible) the cost is always 0, and a
     * cmp of the same length and layout (imm32 at CHARGE_COST_AT, read
     * back as 0) sees the interrupt's bias just the same: it only loads,
     * where the sub's read-modify-write chained every block to the last
     * through memory (a store-forwarding latency per block). */
    x64_buf *b = &c->out;
    c->charge_at = x64_offset(b);
    x64_alu_mi32(b, c->config->gas_metering ? X64_SUB : X64_CMP, 8, CTX(gas), 0);
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

#endif
