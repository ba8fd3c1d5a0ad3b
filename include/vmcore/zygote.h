/* What the host and the zygote (the sandbox process) agree on besides the
 * VmCtx: the layout of a compiled interpreter module in shared memory.
 *
 * The host compiles (vm_module_build) straight into a memfd laid out as
 * below, seals it (no writes, no resizing) and hands the descriptor to any
 * number of zygotes, which map it read only at VM_ADDR_INTERP_MODULE: the
 * host compiles, the sandbox only executes.  Offsets, not pointers, so
 * every process can map it anywhere.  Freestanding (the zygote includes it).
 */
#ifndef VMCORE_ZYGOTE_H
#define VMCORE_ZYGOTE_H

#include <stdint.h>

#include "vmcore/interp.h"

#define VM_SHM_MODULE_MAGIC 0x4d534d56u /* "VMSM" */
#define VM_SHM_MODULE_VERSION 1u
#define VM_SHM_MODULE_HEADER_SIZE 4096u

typedef struct vm_shm_module {
    uint32_t magic;
    uint32_t version;
    int32_t isa;
    int32_t gas_metering;
    int32_t step_tracing;
    int32_t is_64_bit;
    uint32_t code_len;
    uint32_t insn_count;          /* records, not counting the end guard */
    uint32_t jump_table_count;
    uint32_t reserved;
    uint64_t pc_to_index_offset;  /* code_len + 1 uint32 entries */
    uint64_t jump_table_offset;   /* jump_table_count uint32 entries */
    uint64_t insns_offset;        /* insn_count + 1 vm_insn records (last) */
    uint64_t size;                /* total bytes of the memfd */
} vm_shm_module;

_Static_assert(sizeof(vm_shm_module) <= VM_SHM_MODULE_HEADER_SIZE, "module header fits its page");

/* Checks a mapped module and fills a vm_module pointing into it; 0 or -1. */
static inline int vm_shm_module_attach(vm_module *module, const uint8_t *base, uint64_t mapped_size)
{
    const vm_shm_module *h = (const vm_shm_module *)base;
    if (mapped_size < VM_SHM_MODULE_HEADER_SIZE || h->magic != VM_SHM_MODULE_MAGIC ||
        h->version != VM_SHM_MODULE_VERSION || h->size > mapped_size)
        return -1;
    uint64_t p2i_end = h->pc_to_index_offset + ((uint64_t)h->code_len + 1) * sizeof(uint32_t);
    uint64_t jt_end = h->jump_table_offset + (uint64_t)h->jump_table_count * sizeof(uint32_t);
    uint64_t insns_end = h->insns_offset + ((uint64_t)h->insn_count + 1) * sizeof(vm_insn);
    if (h->pc_to_index_offset < VM_SHM_MODULE_HEADER_SIZE || p2i_end > h->size || jt_end > h->size ||
        insns_end > h->size || h->pc_to_index_offset % 4 || h->jump_table_offset % 4 || h->insns_offset % 8)
        return -1;
    module->config.isa = h->isa;
    module->config.gas_metering = h->gas_metering;
    module->config.step_tracing = h->step_tracing;
    module->config.cost = 0; /* only the builder reads it */
    module->is_64_bit = h->is_64_bit;
    module->code_len = h->code_len;
    module->insns = (vm_insn *)(uintptr_t)(base + h->insns_offset);
    module->insn_count = h->insn_count;
    module->pc_to_index = (uint32_t *)(uintptr_t)(base + h->pc_to_index_offset);
    module->jump_table = (uint32_t *)(uintptr_t)(base + h->jump_table_offset);
    module->jump_table_count = h->jump_table_count;
    return 0;
}

#endif
