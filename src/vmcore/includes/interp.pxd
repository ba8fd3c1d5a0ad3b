# C declarations for include/vmcore/memory.h, interp.h and guest_memory.h.
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int64_t
from vmcore.includes.abi cimport VM_REG_COUNT
from vmcore.includes.gas cimport vm_gas_model

cdef extern from "vmcore/memory.h":
    ctypedef struct vm_memory:
        uint8_t *base
        uint8_t *perms
        uint32_t page_shift
        uint32_t page_size
    int vm_memory_is_accessible(const vm_memory *memory, uint32_t address, uint32_t length, int writable)
    int vm_memory_first_inaccessible(const vm_memory *memory, uint32_t address, uint32_t length, int writable,
                                     uint32_t *page)
    void vm_memory_set_perms(const vm_memory *memory, uint32_t address, uint64_t length, uint8_t perm)
    void vm_page_span(const vm_memory *m, uint32_t address, uint64_t length, uint64_t *start, uint64_t *end)

cdef extern from "vmcore/interp.h":
    ctypedef int vm_exit
    enum:
        VM_EXIT_FINISHED
        VM_EXIT_TRAP
        VM_EXIT_ECALLI
        VM_EXIT_OUT_OF_GAS
        VM_EXIT_PAGEFAULT
        VM_EXIT_STEP
        VM_EXIT_INTERRUPTED
        VM_EXIT_YIELD
        VM_PERM_NONE
        VM_PERM_READ
        VM_PERM_WRITE
        VM_INDEX_NONE
        VM_LOW_MEMORY_PANIC_LIMIT

    ctypedef struct vm_insn:
        uint16_t op
        uint32_t pc

    ctypedef struct vm_module_config:
        int isa
        int gas_metering
        int step_tracing
        vm_gas_model gas

    ctypedef struct vm_module:
        vm_module_config config
        int is_64_bit
        uint32_t code_len
        uint32_t insn_count
        int targets

    ctypedef struct vm_heap:
        uint32_t base
        uint32_t top
        uint32_t mapped_end
        uint32_t max_top
        uint32_t grow_pages

    ctypedef struct vm_state:
        uint64_t regs[VM_REG_COUNT + 1]  # the guest registers + a constant zero (interp.h)
        int64_t gas
        uint32_t resume
        uint32_t pc
        uint32_t next_pc
        uint32_t arg
        vm_heap heap
        int interrupt
        uint64_t fuel

    void vm_module_sizes(uint32_t code_len, uint32_t jump_table_count, const vm_module_config *config,
                         size_t *insn_capacity)
    void vm_module_build(vm_module *module, const vm_module_config *config, const uint8_t *code, uint32_t code_len,
                         const uint8_t *bitmask, const uint32_t *jump_table_targets, uint32_t jump_table_count,
                         vm_insn *insns, uint32_t *pc_to_index, uint32_t *jump_table) nogil
    uint64_t vm_reg_from_host(int is_64_bit, uint64_t value)
    uint64_t vm_reg_to_host(int is_64_bit, uint64_t value)
    uint32_t vm_module_fused_records(const vm_module *module)
    uint32_t vm_module_block_costs(const vm_module *module, uint32_t *pcs, uint32_t *costs, uint32_t capacity)
    int vm_state_set_pc(vm_state *state, const vm_module *module, uint32_t pc)
    vm_exit vm_run(const vm_module *module, vm_state *state, const vm_memory *memory) nogil
    uint32_t vm_heap_sbrk(vm_state *state, const vm_memory *memory, uint32_t size)

cdef extern from "vmcore/guest_memory.h":
    int vm_guest_memory_init(vm_memory *memory, uint32_t page_size)
    void vm_guest_memory_free(vm_memory *memory)
    void vm_guest_memory_discard(vm_memory *memory, uint32_t address, uint64_t length) nogil
    void vm_guest_memory_reset(vm_memory *memory)
