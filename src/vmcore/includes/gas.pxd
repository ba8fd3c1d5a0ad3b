# C declarations for include/vmcore/gas.h.
from libc.stdint cimport uint8_t, uint32_t

cdef extern from "vmcore/gas.h":
    enum:
        VM_GAS_NAIVE
        VM_GAS_FULL
        VM_GAS_CACHE_L1_HIT
        VM_GAS_CACHE_L2_HIT
        VM_GAS_CACHE_L3_HIT
        VM_GAS_MAX_MEMORY_COST

    ctypedef struct vm_gas_model:
        int kind
        int memory_access_cost
        const uint32_t *cost

    int vm_gas_model_check(const vm_gas_model *model)
    uint32_t vm_gas_block_cost_at(const vm_gas_model *model, int isa, const uint8_t *code, uint32_t code_len,
                                  const uint8_t *bitmask, uint32_t pc) nogil
    uint32_t vm_gas_blocks(const vm_gas_model *model, int isa, const uint8_t *code, uint32_t code_len,
                           const uint8_t *bitmask, int bounded, uint32_t *pcs, uint32_t *costs,
                           uint32_t capacity) nogil
