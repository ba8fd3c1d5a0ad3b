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
 * Where the time goes (DOOM): dispatches, then each record's operand loads
 * and register-file round trips, then memory checks.  So a jump does its
 * target block's CHECK / CHARGE work itself (that record is skipped), hot
 * pairs and triples run as one record (FUSED in interp_handlers.h), and
 * long runs take a loop specialised to the module's kind of block start
 * without fuel counting (interp_loop.h).
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
/* ---- the dispatch loops ---- */

#define LOOP_GENERIC 0
#define LOOP_CHECKS 1
#define LOOP_CHARGES 2

#define LOOP_NAME run_generic
#define LOOP_KIND LOOP_GENERIC
#include "interp_loop.h"
#undef LOOP_NAME
#undef LOOP_KIND

#define LOOP_NAME run_checks
#define LOOP_KIND LOOP_CHECKS
#include "interp_loop.h"
#undef LOOP_NAME
#undef LOOP_KIND

#define LOOP_NAME run_charges
#define LOOP_KIND LOOP_CHARGES
#include "interp_loop.h"
#undef LOOP_NAME
#undef LOOP_KIND

vm_exit vm_run(const vm_module *module, vm_state *state, const vm_memory *memory)
{
    /* The specialised loops: without a fuel limit, on a module whose jump
     * targets are all of one kind (a module attached in the zygote leaves
     * vm_module.targets at 0 and takes the generic loop). */
    if (state->fuel == 0 && module->targets == VM_TARGETS_CHECK)
        return run_checks(module, state, memory);
    if (state->fuel == 0 && module->targets == VM_TARGETS_CHARGE)
        return run_charges(module, state, memory);
    return run_generic(module, state, memory);
}
