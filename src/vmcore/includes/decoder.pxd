# C declarations for include/vmcore/decoder.h.
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t

cdef extern from "vmcore/decoder.h":
    ctypedef int vm_isa
    ctypedef int vm_op
    ctypedef int vm_format

    enum:
        VM_ISA_COUNT
        VM_OP_COUNT
        VM_OP_INVALID
        VM_FMT_COUNT
        VM_F_ENDS_BLOCK
        VM_F_TERMINATOR

    ctypedef struct vm_instruction:
        uint32_t offset
        uint32_t next
        uint16_t op
        uint8_t format
        uint8_t reg[3]
        uint32_t imm1
        uint32_t imm2
        uint64_t imm64
        uint8_t next_is_invalid

    void vm_decoder_init()
    vm_op vm_isa_decode_opcode(vm_isa isa, uint8_t byte)
    int vm_isa_encode_opcode(vm_isa isa, vm_op op)
    int vm_isa_is_64_bit(vm_isa isa)
    const char *vm_isa_name(vm_isa isa)
    const char *vm_op_name(vm_op op)
    vm_format vm_op_format(vm_op op)
    int vm_op_flags(vm_op op)
    int vm_bitmask_bit(const uint8_t *bitmask, uint32_t code_len, uint32_t offset)
    void vm_decode(vm_isa isa, const uint8_t *code, uint32_t code_len, const uint8_t *bitmask,
                   uint32_t offset, vm_instruction *out) nogil
    int vm_is_basic_block_start(vm_isa isa, const uint8_t *code, uint32_t code_len,
                                const uint8_t *bitmask, uint32_t offset)
