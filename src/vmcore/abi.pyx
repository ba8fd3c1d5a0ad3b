"""The VmCtx ABI as compiled: field offsets and sizes, futex states and
fixed sandbox addresses, all read from include/vmcore/vmctx.h through the C
compiler (offsetof/sizeof), never re-typed."""
from libc.stdint cimport uint64_t

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
