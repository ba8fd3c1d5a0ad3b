cdef extern from "vmcore/abi_table.h":
    ctypedef struct vm_abi_field:
        const char *name
        size_t offset
        size_t size
    ctypedef struct vm_abi_const:
        const char *name
        uint64_t value
    const vm_abi_field vm_abi_fields[]
    const vm_abi_const vm_abi_futex_states[]
    const vm_abi_const vm_abi_addresses[]
    const size_t vm_abi_field_count
    const size_t vm_abi_futex_state_count
    const size_t vm_abi_address_count
    const size_t vm_abi_vmctx_size
    ctypedef struct vm_abi_int:
        const char *name
        int64_t value
    const vm_abi_int vm_abi_constants[]
    const size_t vm_abi_constant_count
    const char *const vm_abi_arg_names[]
    const size_t vm_abi_arg_reg_count
    const vm_abi_int vm_abi_compile_errors[]
    const size_t vm_abi_compile_error_count


def vmctx_layout():
    """Return ``{field_name: (offset, size)}`` for every public VmCtx field.

    Nested fields appear both as their aggregate (``"heap_info"``) and
    dotted (``"heap_info.heap_top"``)."""
    cdef size_t i
    return {vm_abi_fields[i].name.decode(): (vm_abi_fields[i].offset, vm_abi_fields[i].size)
            for i in range(vm_abi_field_count)}


cdef dict _consts(const vm_abi_const *table, size_t n):
    cdef size_t i
    return {table[i].name.decode(): int(table[i].value) for i in range(n)}


VMCTX_SIZE = vm_abi_vmctx_size
FUTEX_STATES = _consts(vm_abi_futex_states, vm_abi_futex_state_count)
ADDRESSES = _consts(vm_abi_addresses, vm_abi_address_count)

globals().update({"FUTEX_" + name: value for name, value in FUTEX_STATES.items()})
globals().update(ADDRESSES)


cdef dict _ints(const vm_abi_int *table, size_t n):
    cdef size_t i
    return {table[i].name.decode(): int(table[i].value) for i in range(n)}


#: Every scalar of include/vmcore/abi.h (also module attributes: REG_COUNT,
#: EXIT_*, ENTRY_*, PERM_*, MIN/MAX/DEFAULT_PAGE_SIZE, RETURN_TO_HOST, ...).
CONSTANTS = _ints(vm_abi_constants, vm_abi_constant_count)
globals().update(CONSTANTS)
#: Call argument registers in the calling convention's order (a0-a5, t0-t2)
#: and their names.
ARG_REGS = tuple(int(vm_abi_arg_regs[i]) for i in range(vm_abi_arg_reg_count))
ARG_NAMES = tuple(vm_abi_arg_names[i].decode() for i in range(vm_abi_arg_reg_count))
#: The recompiler's error codes: {code: what went wrong}.
COMPILE_ERRORS = {code: message for message, code in _ints(vm_abi_compile_errors,
                                                           vm_abi_compile_error_count).items()}
