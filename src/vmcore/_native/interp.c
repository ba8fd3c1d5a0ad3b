/* The interpreter.  Freestanding C11 (+ GNU computed goto).
 *
 * vm_module_build() walks the code once, the way the reference's unbounded
 * instruction iterator does, and lays every instruction out in a flat array
 * of 24-byte vm_insn records with operands decoded and branch targets
 * resolved to array indices.  Every basic block starts with a CHARGE record
 * carrying the block's gas cost, so the dispatch loop never re-parses code
 * and never checks code bounds.  Guest registers live in state->regs; index
 * VM_REG_COUNT is a constant zero so absolute loads/stores share the indirect paths.
 *
 * Semantics follow PolkaVM's interpreter (crates/polkavm/src/interpreter.rs)
 * and the Gray Paper appendix A; where the two differ the reference wins,
 * except the low-memory panic zone (VM_LOW_MEMORY_PANIC_LIMIT).
 */
#include "vmcore/interp.h"

#include <stdatomic.h>

#include "vmcore/vmctx.h"
#include "interp_handlers.h"
#include "interp_ops.h"

/* ---- guest memory ---- */

/* Every access is decided by vm_access_check (vmcore/memory.h), as in the
 * recompiler's runtime; the host-side range checks are in memory.c. */

uint32_t vm_heap_sbrk(vm_state *state, const vm_memory *memory, uint32_t size)
{
    vm_heap *h = &state->heap;
    uint64_t new_top = (uint64_t)h->top + size;
    if (new_top > h->max_top)
        return 0;
    h->top = (uint32_t)new_top;
    if (new_top > h->mapped_end) {
        uint64_t step = (uint64_t)memory->page_size * (h->grow_pages ? h->grow_pages : 1);
        uint64_t want = (new_top + memory->page_size - 1) & ~(uint64_t)(memory->page_size - 1);
        uint64_t grown = h->mapped_end + step;
        uint64_t new_end = want > grown ? want : grown;
        uint64_t limit = ((uint64_t)h->max_top + memory->page_size - 1) & ~(uint64_t)(memory->page_size - 1);
        if (new_end > limit)
            new_end = limit;
        vm_memory_set_perms(memory, h->mapped_end, new_end - h->mapped_end, VM_PERM_WRITE);
        h->mapped_end = (uint32_t)new_end;
    }
    return h->top;
}
/* ---- the dispatch loop ---- */

vm_exit vm_run(const vm_module *module, vm_state *state, const vm_memory *memory)
{
    static const void *const labels[H_COUNT] = {
#define H_LABEL(name) &&L_##name,
#define H_FLABEL(first, second) &&L_##first##__##second,
        HANDLERS(H_LABEL)
        FUSED(H_FLABEL, H_FLABEL)
#undef H_LABEL
#undef H_FLABEL
    };

    const vm_insn *const insns = module->insns;
    const vm_insn *ip = insns + state->resume;
    uint64_t *const r = state->regs;
    uint8_t *const mem = memory->base;
    /* A copy the compiler can keep in registers: through `memory` every
     * register store might have changed it. */
    const vm_memory view = *memory;
    int64_t gas = state->gas;
    /* Counted down at every block start; 0 means no limit (it would take
     * centuries to count down from 2^64). */
    uint64_t fuel = state->fuel ? state->fuel : ~(uint64_t)0;
    uint32_t fault;
    uint32_t trap_reason;
    vm_exit exit_reason;
    int access;

#define DISPATCH() goto *labels[ip->op]
#define NEXT() do { ip++; DISPATCH(); } while (0)
#define JUMP_TO(index) do { ip = insns + (index); DISPATCH(); } while (0)
/* Into the block whose first record is at `index`: its CHECK / CHARGE
 * record's work is done here, as that record would do it, and the record
 * skipped (one dispatch less per block).  A target of any other kind (a
 * STEP record under tracing) runs through its records. */
#define ENTER(index)                                                      \
    do {                                                                  \
        const vm_insn *t_ = insns + (index);                              \
        if (__builtin_expect(t_->op == H_CHECK, 1)) {                     \
            BLOCK_START_CHECKS_AT(t_);                                    \
            ip = t_ + 1;                                                  \
            DISPATCH();                                                   \
        }                                                                 \
        if (t_->op == H_CHARGE) {                                         \
            BLOCK_START_CHECKS_AT(t_);                                    \
            if (__builtin_expect(gas < (int64_t)t_->x, 0)) {              \
                ip = t_;                                                  \
                goto out_of_gas;                                          \
            }                                                             \
            gas -= t_->x;                                                 \
            ip = t_ + 1;                                                  \
            DISPATCH();                                                   \
        }                                                                 \
        ip = t_;                                                          \
        DISPATCH();                                                       \
    } while (0)

    r[ZERO_REG] = 0;
    DISPATCH();

/* What every block start checks first: an interrupt, then the fuel (a
 * stop leaves ip at the block's CHECK / CHARGE record `at`). */
#define BLOCK_START_CHECKS_AT(at)                                                             \
    do {                                                                                      \
        if (__builtin_expect(atomic_load_explicit(&state->interrupt, memory_order_relaxed), 0)) { \
            ip = (at);                                                                        \
            goto interrupted;                                                                 \
        }                                                                                     \
        if (__builtin_expect(--fuel == 0, 0)) {                                               \
            ip = (at);                                                                        \
            goto yield;                                                                       \
        }                                                                                     \
    } while (0)
#define BLOCK_START_CHECKS() BLOCK_START_CHECKS_AT(ip)

L_CHECK:
    BLOCK_START_CHECKS();
    NEXT();
L_CHARGE:
    BLOCK_START_CHECKS();
    if (__builtin_expect(gas < (int64_t)ip->x, 0)) /* no overflow near INT64_MIN */
        goto out_of_gas;
    gas -= ip->x;
    NEXT();
out_of_gas: /* at a block's CHARGE record, before its charge */
    state->pc = ip->pc;
    state->resume = (uint32_t)(ip - insns);
    exit_reason = VM_EXIT_OUT_OF_GAS;
    goto out;
L_STEP:
    state->pc = ip->pc;
    state->resume = (uint32_t)(ip - insns) + 1;
    exit_reason = VM_EXIT_STEP;
    goto out;
L_TRAP:
    trap_reason = ip->x; /* the builder's vm_trap_reason */
panic:
    state->pc = ip->pc;
    state->resume = (uint32_t)(ip - insns);
    state->arg = trap_reason;
    exit_reason = VM_EXIT_TRAP;
    goto out;
L_END:
    goto L_TRAP;
L_JUMP:
    ENTER(ip->y);

    /* Dynamic jumps: the jump table is 1-based in units of the code
     * address alignment; 0xffff0000 returns to the host. */
#define DYNAMIC_JUMP(address)                                                          \
    do {                                                                               \
        uint32_t addr_ = (address);                                                    \
        if (addr_ == VM_ADDR_RETURN_TO_HOST) {                                         \
            state->pc = ip->pc;                                                        \
            exit_reason = VM_EXIT_FINISHED;                                            \
            goto out;                                                                  \
        }                                                                              \
        uint32_t slot_ = addr_ / VM_CODE_ADDRESS_ALIGNMENT;                            \
        if (addr_ == 0 || (addr_ & (VM_CODE_ADDRESS_ALIGNMENT - 1)) ||                 \
            slot_ - 1 >= module->jump_table_count || module->jump_table[slot_ - 1] == VM_INDEX_NONE) { \
            trap_reason = VM_TRAP_INVALID_JUMP;                                        \
            goto panic;                                                                \
        }                                                                              \
        ENTER(module->jump_table[slot_ - 1]);                                          \
    } while (0)

L_JUMP_IND:
    DYNAMIC_JUMP((uint32_t)(RB + X_IMM));
L_LI_JUMP:
    RA = X_IMM;
    if (ip->y == VM_INDEX_NONE) {
        trap_reason = VM_TRAP_INVALID_JUMP;
        goto panic;
    }
    ENTER(ip->y);
L_LI_JUMP_IND: {
    uint32_t target = (uint32_t)(RB + (uint64_t)sext32(ip->y));
    RA = X_IMM;
    DYNAMIC_JUMP(target);
}
L_ECALLI:
    state->pc = ip->pc;
    state->next_pc = ip->y;
    state->arg = ip->x;
    state->resume = (uint32_t)(ip - insns) + 1;
    exit_reason = VM_EXIT_ECALLI;
    goto out;
L_SBRK: {
    uint64_t size = RB;
    uint32_t request;
    if (module->is_64_bit)
        request = size > 0xffffffffull ? 0u : (uint32_t)size;
    else
        request = (uint32_t)size;
    uint32_t result = vm_heap_sbrk(state, memory, request);
    RA = sext32(result);
    NEXT();
}
L_MEMSET: {
    uint64_t a0 = r[VM_REG_A0];
    uint32_t dst = (uint32_t)a0;
    uint8_t value = (uint8_t)r[VM_REG_A1];
    uint64_t count = (uint32_t)r[VM_REG_A2];
    int stopped = 0;
    while (count > 0) {
        if (module->config.gas_metering && gas == 0) {
            exit_reason = VM_EXIT_OUT_OF_GAS;
            stopped = 1;
            break;
        }
        access = vm_access_check(&view, dst, 1, VM_PERM_WRITE, &fault);
        if (access != VM_ACCESS_OK) {
            exit_reason = access == VM_ACCESS_PANIC ? VM_EXIT_TRAP : VM_EXIT_PAGEFAULT;
            stopped = 1;
            break;
        }
        mem[dst] = value;
        if (module->config.gas_metering)
            gas -= 1;
        dst += 1;
        count -= 1;
    }
    r[VM_REG_A0] = a0 + (uint64_t)(uint32_t)(dst - (uint32_t)a0);
    r[VM_REG_A2] = count;
    if (!stopped)
        NEXT();
    state->pc = ip->pc;
    state->resume = (uint32_t)(ip - insns);
    if (exit_reason == VM_EXIT_PAGEFAULT)
        state->arg = fault;
    else if (exit_reason == VM_EXIT_TRAP)
        state->arg = VM_TRAP_MEMORY_ACCESS;
    goto out;
}

#define BRANCH(cond) do { if (cond) ENTER(ip->y); ENTER(ip->z); } while (0)
#define H_SIMPLE(name) L_##name: DO_##name; NEXT();
#define H_BRANCH(name) L_##name: BRANCH(COND_##name);
    SIMPLE_OPS(H_SIMPLE)
    BRANCH_OPS(H_BRANCH)
    /* Fused pairs: the first record's work, then the second's (ip moves
     * on first, so a stop in the second reports the second). */
#define H_FUSED_DO(x, y) L_##x##__##y: DO_##x; ip++; DO_##y; NEXT();
#define H_FUSED_BR(x, y) L_##x##__##y: DO_##x; ip++; BRANCH(COND_##y);
    FUSED(H_FUSED_DO, H_FUSED_BR)

L_NOP: NEXT();

interrupted:
    state->pc = ip->pc;
    state->resume = (uint32_t)(ip - insns);
    exit_reason = VM_EXIT_INTERRUPTED;
    goto out;
yield:
    /* before the block is charged: resuming re-runs this record */
    state->pc = ip->pc;
    state->resume = (uint32_t)(ip - insns);
    exit_reason = VM_EXIT_YIELD;
    goto out;
memory_stop:
    state->pc = ip->pc;
    state->resume = (uint32_t)(ip - insns);
    if (access == VM_ACCESS_PANIC) {
        state->arg = VM_TRAP_MEMORY_ACCESS;
        exit_reason = VM_EXIT_TRAP;
    } else {
        state->arg = fault;
        exit_reason = VM_EXIT_PAGEFAULT;
    }
out:
    r[ZERO_REG] = 0;
    state->gas = gas;
    return exit_reason;
}
