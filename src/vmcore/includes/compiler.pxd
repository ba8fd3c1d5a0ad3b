# C declarations for include/vmcore/compiler.h and x64_asm.h (the recompiler).
from libc.stdint cimport uint8_t, uint32_t, uint64_t, int64_t
from vmcore.includes.abi cimport VM_REG_COUNT
from vmcore.includes.gas cimport vm_gas_model

cdef extern from "vmcore/compiler.h":
    ctypedef struct vm_x64_config:
        int isa
        int gas_metering
        int step_tracing
        int interruptible
        vm_gas_model gas
        uint64_t code_address
        bint parallel
        uint32_t split_hint
        bint populate

    ctypedef struct vm_x64_map_entry:
        uint32_t pc
        uint32_t entry
        uint32_t body
        uint32_t info

    ctypedef struct vm_x64_mark:
        uint32_t index
        uint32_t pc
        uint32_t entry

    ctypedef struct vm_x64_map:
        const uint32_t *records
        const vm_x64_mark *marks
        uint32_t count
        uint32_t mark_count

    ctypedef struct vm_x64_capacity:
        size_t code
        size_t records
        size_t marks

    ctypedef struct vm_x64_module:
        uint64_t code_address
        uint32_t code_size
        uint32_t gap_start
        uint32_t gap_end
        uint32_t first_insn
        uint32_t entry_trampoline
        uint32_t overflow_probe
        uint32_t map_count
        uint32_t mark_count
        uint32_t jump_table_count
        uint32_t code_len
        int isa
        int is_64_bit
        int gas_metering
        int step_tracing
        int charges

    enum:
        VM_X64_OK
        VM_X64_ERR_CONFIG
        VM_X64_ERR_SPACE
        VM_X64_ERR_NOMEM
        VM_X64_ERR_TOO_BIG
        VM_X64_INFO_OP_MASK
        VM_X64_INFO_BLOCK_START
        VM_X64_INFO_ENTRY_OK
        VM_X64_INFO_LOAD
        VM_X64_INFO_STORE
        VM_X64_INFO_SIZE_SHIFT
        VM_X64_INFO_JUMP_TARGET
        VM_X64_VMCTX_DISP

    const uint8_t vm_x64_guest_regs[VM_REG_COUNT]

    void vm_x64_bounds(const uint8_t *code, uint32_t code_len, const uint8_t *bitmask, const vm_x64_config *config,
                       vm_x64_capacity *capacity) nogil
    int vm_x64_compile(const vm_x64_config *config, const uint8_t *code, uint32_t code_len, const uint8_t *bitmask,
                       const uint32_t *jump_table_targets, uint32_t jump_table_count,
                       const vm_x64_capacity *capacity, uint8_t *code_out, uint64_t *jump_table_out,
                       uint32_t *records_out, vm_x64_mark *marks_out, vm_x64_module *module) nogil
    int64_t vm_x64_find_pc(const vm_x64_module *module, const vm_x64_map *map, uint32_t pc, vm_x64_map_entry *out)
    int64_t vm_x64_find_native(const vm_x64_module *module, const vm_x64_map *map, uint64_t offset,
                               vm_x64_map_entry *out)
    int vm_x64_map_read(const vm_x64_module *module, const vm_x64_map *map, uint32_t first, uint32_t count,
                        vm_x64_map_entry *out)
    int vm_x64_enter(const vm_x64_module *module, const vm_x64_map *map, const uint8_t *native_code, uint32_t pc,
                     int64_t *gas, uint64_t *native_address)
    uint32_t vm_x64_block_costs(const vm_x64_module *module, const vm_x64_map *map, const uint8_t *native_code,
                                uint32_t *pcs, uint32_t *costs, uint32_t capacity)
    int vm_x64_cpu_check(const char **missing)
    int64_t vm_x64_decoder_selftest(int isa, const uint8_t *code, uint32_t code_len, const uint8_t *bitmask)

cdef extern from "vmcore/x64_asm.h":
    size_t x64_assemble_form(int form, const int64_t *ops, int nops, uint8_t *out)
    const char *x64_form_name(int form, int *nops)
