/* The compile driver: arguments and capacity checks, the split into two
 * segments, the link (cross-segment fixups, jump table, records). */
#include "threads.h"
#include <pthread.h>
#include <signal.h>

/* Where a second thread can take over: the first basic block start at or
 * after `hint` (0: the middle of the code), or 0 for none. */
static uint32_t split_point(const decode_tables *d, vm_isa isa, const uint8_t *code, uint32_t code_len,
                            const uint8_t *bitmask, uint32_t hint)
{
    uint32_t t = hint ? hint : code_len / 2;
    for (uint32_t stop = code_len - t > (1u << 20) ? t + (1u << 20) : code_len; t > 0 && t < stop; t++) {
        int b = tables_block_start(d, code, code_len, bitmask, t);
        if (b < 0)
            b = vm_is_basic_block_start(isa, code, code_len, bitmask, t);
        if (b)
            return t;
    }
    return 0;
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
    c->checks_only = c->charges && !config->gas_metering && !config->step_tracing;
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
    vm_x64_emit_routines(c);
    uint32_t first_insn = here(c);
    decode_tables fd;
    decode_tables_init(&fd, c->isa);
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
        size_t n0 = vm_x64_instruction_bound(bitmask, split);
        size_t per = INSN_BUDGET + STUBS_PER_INSN_BUDGET + INSN_SLACK;
        *d = *c;
        size_t m0 = vm_x64_mark_bound(n0, split, ROUTINES_BUDGET + (n0 + 2) * per);
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
            d->prefault_from = (uint8_t *)(((uintptr_t)(records_out + low) + VM_HOST_PAGE_SIZE - 1) & ~(uintptr_t)(VM_HOST_PAGE_SIZE - 1));
            d->prefault_to = (uint8_t *)((uintptr_t)(records_out + map_capacity) & ~(uintptr_t)(VM_HOST_PAGE_SIZE - 1));
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
        int threaded = vm_x64_start_helper(&thread, &start, d) == 0;
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        vm_x64_segment_thread(c);
        if (threaded)
            pthread_join(thread, NULL);
        else
            vm_x64_segment_thread(d);
    } else {
        vm_x64_segment_thread(c);
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
            for (size_t i = 0; i < s->fixup_count; i++)
                patch_fixup(code_out, owner_of(segments, count, s->fixups[i].target_pc), s->fixups[i]);
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
        vm_x64_scratch_give_back(&segments[k]);
    return rc;
}
