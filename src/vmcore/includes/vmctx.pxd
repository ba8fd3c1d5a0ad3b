# C declarations for include/vmcore/vmctx.h (the shared context).
from libc.stdint cimport uint32_t, uint64_t, int64_t

cdef extern from "vmcore/vmctx.h":
    enum:
        VMCTX_REG_COUNT
        VMCTX_MESSAGE_BUFFER_SIZE

    ctypedef struct vmctx_heap_info:
        uint64_t heap_top
        uint64_t heap_threshold

    ctypedef struct vmctx_counters:
        uint64_t syscall_wait_loop_start
        uint64_t syscall_futex_wait

    ctypedef struct vmctx:
        uint32_t futex
        uint32_t program_counter
        uint64_t jump_into
        uint64_t next_native_program_counter
        uint32_t next_program_counter
        uint32_t arg
        uint32_t arg2
        int64_t gas
        uint64_t regs[VMCTX_REG_COUNT]
        vmctx_heap_info heap_info
        uint32_t heap_base
        uint32_t heap_initial_threshold
        uint32_t heap_max_size
        uint32_t page_size
        vmctx_counters counters
        uint32_t message_length
        char message_buffer[512]
