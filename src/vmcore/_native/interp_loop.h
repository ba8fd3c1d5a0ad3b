/* The interpreter's dispatch loop, included by interp.c once per kind of
 * loop: LOOP_NAME is the function, LOOP_KIND one of
 *
 *   LOOP_GENERIC  any module, fuel counted; a jump looks at its target
 *                 record to see which block start checks to do there;
 *   LOOP_CHECKS   modules whose every jump target is a CHECK record (no
 *                 gas metering, no tracing), run without a fuel limit;
 *   LOOP_CHARGES  the same with CHARGE records (gas metering).
 *
 * Semantics are the same in all three (the test suite runs all of them:
 * tracing and fuel pick the generic loop). */
static vm_exit LOOP_NAME(const vm_module *module, vm_state *state, const vm_memory *memory)
{
    static const void *const labels[H_COUNT] = {
#define H_LABEL(name) &&L_##name,
#define H_FLABEL(first, second) &&L_##first##__##second,
        HANDLERS(H_LABEL)
        FUSED(H_FLABEL, H_FLABEL)
#define H_TLABEL(first, second, third) &&L_##first##__##second##__##third,
        FUSED3(H_TLABEL)
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
#if LOOP_KIND == LOOP_GENERIC
    /* Counted down at every block start; 0 means no limit (it would take
     * centuries to count down from 2^64). */
    uint64_t fuel = state->fuel ? state->fuel : ~(uint64_t)0;
#endif
    uint32_t fault;
    uint32_t trap_reason;
    vm_exit exit_reason;
    int access;

#define DISPATCH() goto *labels[ip->op]
#define NEXT() do { ip++; DISPATCH(); } while (0)
#define JUMP_TO(index) do { ip = insns + (index); DISPATCH(); } while (0)
/* Into the block whose first record is at `index`: its CHECK / CHARGE
 * record's work is done here, as that record would do it, and the record
 * skipped (one dispatch less per block). */
#if LOOP_KIND == LOOP_GENERIC
/* A target of any other kind (a STEP record under tracing) runs through
 * its records. */
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
            CHARGE_AT(t_);                                                \
            ip = t_ + 1;                                                  \
            DISPATCH();                                                   \
        }                                                                 \
        ip = t_;                                                          \
        DISPATCH();                                                       \
    } while (0)
#else
/* Every target is a CHECK record (LOOP_CHECKS) or every one a CHARGE
 * record (LOOP_CHARGES): the builder made sure (vm_module.targets). */
#define ENTER(index)                                                      \
    do {                                                                  \
        const vm_insn *t_ = insns + (index);                              \
        BLOCK_START_CHECKS_AT(t_);                                        \
        if (LOOP_KIND == LOOP_CHARGES)                                    \
            CHARGE_AT(t_);                                                \
        ip = t_ + 1;                                                      \
        DISPATCH();                                                       \
    } while (0)
#endif
/* The gas check and charge of the CHARGE record `at` (a stop leaves ip there). */
#define CHARGE_AT(at)                                                     \
    do {                                                                  \
        if (__builtin_expect(gas < (int64_t)(at)->x, 0)) {                \
            ip = (at);                                                    \
            goto out_of_gas;                                              \
        }                                                                 \
        gas -= (at)->x;                                                   \
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
        FUEL_CHECK_AT(at);                                                                    \
    } while (0)
#if LOOP_KIND == LOOP_GENERIC
#define FUEL_CHECK_AT(at)                                                                     \
    do {                                                                                      \
        if (__builtin_expect(--fuel == 0, 0)) {                                               \
            ip = (at);                                                                        \
            goto yield;                                                                       \
        }                                                                                     \
    } while (0)
#else
#define FUEL_CHECK_AT(at) do { } while (0) /* these loops run without a fuel limit */
#endif
#define BLOCK_START_CHECKS() BLOCK_START_CHECKS_AT(ip)

L_CHECK:
    BLOCK_START_CHECKS();
    NEXT();
L_CHARGE:
    BLOCK_START_CHECKS();
    CHARGE_AT(ip); /* (gas < cost: no overflow near INT64_MIN) */
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
#define H_FUSED3(x, y, z) L_##x##__##y##__##z: DO_##x; ip++; DO_##y; ip++; BRANCH(COND_##z);
    FUSED3(H_FUSED3)

L_NOP: NEXT();

interrupted:
    state->pc = ip->pc;
    state->resume = (uint32_t)(ip - insns);
    exit_reason = VM_EXIT_INTERRUPTED;
    goto out;
#if LOOP_KIND == LOOP_GENERIC
yield:
    /* before the block is charged: resuming re-runs this record */
    state->pc = ip->pc;
    state->resume = (uint32_t)(ip - insns);
    exit_reason = VM_EXIT_YIELD;
    goto out;
#endif
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
#undef DISPATCH
#undef NEXT
#undef JUMP_TO
#undef ENTER
#undef CHARGE_AT
#undef BLOCK_START_CHECKS_AT
#undef BLOCK_START_CHECKS
#undef FUEL_CHECK_AT
#undef DYNAMIC_JUMP
#undef BRANCH
#undef H_SIMPLE
#undef H_BRANCH
#undef H_FUSED_DO
#undef H_FUSED_BR
#undef H_LABEL
#undef H_FLABEL
#undef H_TLABEL
#undef H_FUSED3
