/* The shared-module format: what the host and the zygote (the sandbox
 * process) agree on besides the VmCtx, the layout of a compiled module in
 * shared memory, of either kind:
 *
 *   VM_SHM_KIND_INTERP  threaded code for the interpreter (vm_module_build);
 *   VM_SHM_KIND_X64     native code from the recompiler (vm_x64_compile):
 *                       header, pc map (records, marks), then the jump table and the code at
 *                       page-aligned offsets, so the zygote can map those two
 *                       parts a second time at VM_ADDR_JUMP_TABLE (read) and
 *                       VM_ADDR_NATIVE_CODE (read + execute).
 *
 * The host compiles straight into a memfd laid out as below, seals it (no
 * writes, no resizing) and hands the descriptor to any number of zygotes,
 * which map it read only at VM_ADDR_INTERP_MODULE: the host compiles, the
 * sandbox only executes.  Offsets, not pointers, so every process can map
 * it anywhere.  Freestanding (the zygote includes it).
 */
#ifndef VMCORE_SHARED_MODULE_H
#define VMCORE_SHARED_MODULE_H

#include <stdint.h>

#include "vmcore/compiler.h"
#include "vmcore/interp.h"

#define VM_SHM_MODULE_MAGIC 0x4d534d56u /* "VMSM" */
#define VM_SHM_MODULE_VERSION 3u
#define VM_SHM_KIND_INTERP 0u
#define VM_SHM_KIND_X64 1u
#define VM_SHM_MODULE_HEADER_SIZE VM_HOST_PAGE_SIZE

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
    uint32_t kind;                /* VM_SHM_KIND_* */
    uint64_t pc_to_index_offset;  /* INTERP: code_len + 1 uint32 entries */
    uint64_t jump_table_offset;   /* INTERP: uint32 entries; X64: page aligned, uint64 absolute addresses */
    uint64_t insns_offset;        /* INTERP: insn_count + 1 vm_insn records (last) */
    uint64_t size;                /* bytes of the module (its memfd may be larger) */
    /* VM_SHM_KIND_X64 */
    uint64_t map_offset;          /* map_count uint32 records (compiler.h) */
    uint64_t marks_offset;        /* mark_count vm_x64_mark entries */
    uint64_t native_offset;       /* page aligned; native_size bytes of code (the tail of the memfd) */
    uint64_t native_size;         /* page aligned */
    vm_x64_module x64;            /* code_address is VM_ADDR_NATIVE_CODE */
} vm_shm_module;

_Static_assert(sizeof(vm_shm_module) <= VM_SHM_MODULE_HEADER_SIZE, "module header fits its page");

/* The kind of a mapped module, or -1 when the header is not one. */
static inline int vm_shm_module_kind(const uint8_t *base, uint64_t mapped_size)
{
    const vm_shm_module *h = (const vm_shm_module *)base;
    if (mapped_size < VM_SHM_MODULE_HEADER_SIZE || h->magic != VM_SHM_MODULE_MAGIC ||
        h->version != VM_SHM_MODULE_VERSION || h->size > mapped_size || h->size < VM_SHM_MODULE_HEADER_SIZE ||
        (h->kind != VM_SHM_KIND_INTERP && h->kind != VM_SHM_KIND_X64))
        return -1;
    return (int)h->kind;
}

/* Checks a mapped VM_SHM_KIND_X64 module: its vm_x64_module (in the
 * header) and pc map; 0 or -1. */
static inline int vm_shm_x64_attach(const vm_x64_module **module, vm_x64_map *map, const uint8_t *base,
                                    uint64_t mapped_size)
{
    const vm_shm_module *h = (const vm_shm_module *)base;
    if (vm_shm_module_kind(base, mapped_size) != (int)VM_SHM_KIND_X64)
        return -1;
    const vm_x64_module *m = &h->x64;
    uint64_t map_end = h->map_offset + (uint64_t)m->map_count * sizeof(uint32_t);
    uint64_t marks_end = h->marks_offset + (uint64_t)m->mark_count * sizeof(vm_x64_mark);
    uint64_t jt_end = h->jump_table_offset + (uint64_t)m->jump_table_count * 8u;
    if (h->map_offset < VM_SHM_MODULE_HEADER_SIZE || h->map_offset % 4 || map_end > h->size ||
        h->marks_offset < VM_SHM_MODULE_HEADER_SIZE || h->marks_offset % 4 || marks_end > h->size ||
        (m->map_count && !m->mark_count) ||
        h->jump_table_offset % VM_HOST_PAGE_SIZE || jt_end > h->size || h->native_offset % VM_HOST_PAGE_SIZE ||
        h->native_size % VM_HOST_PAGE_SIZE ||
        h->native_offset + h->native_size != h->size || m->code_size > h->native_size ||
        m->entry_trampoline >= m->code_size || m->code_address != VM_ADDR_NATIVE_CODE)
        return -1;
    *module = m;
    map->records = (const uint32_t *)(uintptr_t)(base + h->map_offset);
    map->marks = (const vm_x64_mark *)(uintptr_t)(base + h->marks_offset);
    map->count = m->map_count;
    map->mark_count = m->mark_count;
    return 0;
}

/* Checks a mapped VM_SHM_KIND_INTERP module and fills a vm_module
 * pointing into it; 0 or -1. */
static inline int vm_shm_module_attach(vm_module *module, const uint8_t *base, uint64_t mapped_size)
{
    const vm_shm_module *h = (const vm_shm_module *)base;
    if (vm_shm_module_kind(base, mapped_size) != (int)VM_SHM_KIND_INTERP)
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
    module->config.gas = (vm_gas_model){0, 0, 0}; /* only the builder reads it */
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
