/* libFuzzer harness for vmcore's C loader and decoder (no Python): the
 * same walk as fuzz/atheris_loader.py at native speed.
 *
 *   make fuzz-libfuzzer            # builds build/fuzz/libfuzzer_loader, runs it
 *
 * Every input is parsed as a .polkavm blob, a JAM standard program and a raw
 * code blob of each ISA; on success the parts are walked the way the Cython
 * layer does (imports, exports, jump table), then the code: validation,
 * statistics, decoding at every offset, the threaded-code builder.  The
 * input is also decoded directly as code (bitmask from its reversed bytes).
 * Built with ASan + UBSan, so any out-of-bounds access is a finding. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vmcore/decoder.h"
#include "vmcore/interp.h"
#include "vmcore/program.h"

#define MAX_WALK 4096u

static void build_module(int isa, const uint8_t *code, uint32_t n, const uint8_t *bitmask, const uint32_t *targets,
                         uint32_t jt_count, int metering, int tracing)
{
    vm_module_config config = {isa, metering, tracing, NULL};
    size_t capacity;
    vm_module_sizes(n, jt_count, &config, &capacity);
    vm_insn *insns = malloc(capacity * sizeof *insns);
    uint32_t *pc_to_index = malloc(((size_t)n + 1) * sizeof *pc_to_index);
    uint32_t *jump_table = malloc(((size_t)jt_count + 1) * sizeof *jump_table);
    if (insns && pc_to_index && jump_table) {
        vm_module module;
        vm_module_build(&module, &config, code, n, bitmask, targets, jt_count, insns, pc_to_index, jump_table);
        /* entry at the first pcs and a spread of others (not every pc:
         * entering mid-block walks back to the block's start) */
        uint32_t step = n / 32 + 1;
        for (uint32_t pc = 0; pc <= n + 1; pc += pc < 32 ? 1 : step) {
            vm_state state;
            memset(&state, 0, sizeof state);
            state.gas = 100;
            vm_state_set_pc(&state, &module, pc);
        }
    }
    free(insns);
    free(pc_to_index);
    free(jump_table);
}

static void walk_code(int isa, const uint8_t *code, uint32_t n, const uint8_t *bitmask, const uint32_t *targets,
                      uint32_t jt_count)
{
    vm_instruction ins;
    if (n == 0)
        return;
    (void)vm_validate_code((vm_isa)isa, code, n, bitmask);
    uint32_t count, blocks;
    vm_code_stats((vm_isa)isa, code, n, bitmask, &count, &blocks);
    if (n > MAX_WALK)
        return;
    /* every offset of small code; of larger code the first 512 and a spread */
    for (uint32_t offset = 0; offset <= n + 1; offset += offset < 512 ? 1 : 7) {
        vm_decode((vm_isa)isa, code, n, bitmask, offset, &ins);
        (void)vm_is_basic_block_start((vm_isa)isa, code, n, bitmask, offset);
    }
    vm_decode((vm_isa)isa, code, n, bitmask, n - 1, &ins);
    build_module(isa, code, n, bitmask, targets, jt_count, 1, 0);
    build_module(isa, code, n, bitmask, targets, jt_count, 0, 1);
}

static void walk_parts(const uint8_t *data, size_t size, vm_blob_parts *p)
{
    vm_error err;
    vm_blob_span sym;
    for (uint32_t i = 0; i < p->import_count; i++)
        if (vm_import_symbol(data, p, i, &sym, &err) != 0)
            return;
    uint32_t pos = 0, remaining = 0, pc;
    while (vm_next_export(data, size, p, &pos, &remaining, &pc, &sym, &err) == 1)
        ;
    uint32_t *targets = malloc(((size_t)p->jump_table_count + 1) * sizeof *targets);
    if (!targets)
        return;
    for (uint32_t i = 0; i < p->jump_table_count; i++)
        targets[i] = vm_jump_table_entry(data, p, i);
    walk_code(p->isa, data + p->code.offset, p->code.length, data + p->bitmask.offset, targets,
              p->jump_table_count);
    free(targets);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int initialized;
    vm_blob_parts parts;
    vm_error err;
    if (!initialized) {
        vm_decoder_init();
        initialized = 1;
    }
    if (size == 0)
        return 0;
    /* A private copy, exactly `size` bytes, so ASan sees reads past the end. */
    uint8_t *copy = malloc(size);
    if (!copy)
        return 0;
    memcpy(copy, data, size);

    if (vm_parse_polkavm_blob(copy, size, &parts, &err) == 0)
        walk_parts(copy, size, &parts);
    if (vm_parse_jam_standard(copy, size, &parts, &err) == 0)
        walk_parts(copy, size, &parts);
    if (size <= 0xffffffffu) {
        for (int isa = 0; isa < VM_ISA_COUNT; isa++) {
            vm_blob_span whole = {0, (uint32_t)size};
            memset(&parts, 0, sizeof parts);
            parts.isa = isa;
            if (vm_parse_code_blob(copy, size, whole, &parts, &err) == 0)
                walk_parts(copy, size, &parts);
        }
    }
    if (size <= MAX_WALK) {
        uint32_t n = (uint32_t)size, mask_len = (n + 7) / 8;
        uint8_t *mask = malloc(mask_len);
        if (mask) {
            for (uint32_t i = 0; i < mask_len; i++)
                mask[i] = copy[size - 1 - i];
            if (n % 8)
                mask[mask_len - 1] &= (uint8_t)((1u << (n % 8)) - 1);
            mask[0] |= 1;
            uint32_t targets[4] = {0, 1, n / 2, n};
            for (int isa = 0; isa < VM_ISA_COUNT; isa++)
                walk_code(isa, copy, n, mask, targets, 4);
            free(mask);
        }
    }
    free(copy);
    return 0;
}
