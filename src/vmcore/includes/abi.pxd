# C declarations for include/vmcore/abi.h (the guest ABI's scalars).
from libc.stdint cimport uint8_t

cdef extern from "vmcore/abi.h":
    enum:
        VM_REG_COUNT
        VM_REG_RA
        VM_REG_SP
        VM_REG_A0
        VM_REG_A1
        VM_ARG_REG_COUNT
        VM_HOSTCALL_ARG_COUNT
        VM_ADDR_RETURN_TO_HOST
        VM_EXIT_HOSTCALL_ERROR
        VM_EXIT_BUSY
        VM_EXIT_HOSTCALL_OUT_OF_GAS
        VM_HOSTCALL_RETURN_COUNT
        VM_TRAP_INSTRUCTION
        VM_TRAP_REASON_LIMIT
        VM_ENTRY_OK
        VM_ENTRY_NOT_AN_INSTRUCTION
        VM_ENTRY_OUT_OF_GAS

cdef extern from "vmcore/abi_table.h":
    const uint8_t vm_abi_arg_regs[]
