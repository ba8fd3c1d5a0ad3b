"""Guest memory layout, computed exactly as PolkaVM's MemoryMapBuilder does:
read-only data at 0x10000, read-write data one 64 KiB guard zone after it,
the heap right after the initialised part of read-write data, the stack
below the top guard zone and aux data at the very top."""
from __future__ import annotations

from dataclasses import dataclass

from vmcore import abi
from vmcore.errors import ProgramError

MIN_PAGE_SIZE: int = abi.VM_MIN_PAGE_SIZE
MAX_PAGE_SIZE: int = abi.VM_MAX_PAGE_SIZE
ADDRESS_SPACE_SIZE = 1 << 32
_BOTTOM = MAX_PAGE_SIZE
_TOP = ADDRESS_SPACE_SIZE - MAX_PAGE_SIZE


def _align(value: int, alignment: int) -> int:
    return (value + alignment - 1) // alignment * alignment


def check_page_size(page_size: int) -> int:
    if not isinstance(page_size, int) or isinstance(page_size, bool):
        raise ValueError(f"page size must be an int, got {type(page_size).__name__}")
    if page_size < MIN_PAGE_SIZE or page_size > MAX_PAGE_SIZE or page_size & (page_size - 1):
        raise ValueError(f"invalid page size {page_size:#x}: expected a power of two from {MIN_PAGE_SIZE:#x} "
                         f"to {MAX_PAGE_SIZE:#x}")
    return page_size


@dataclass(frozen=True)
class MemoryMap:
    page_size: int
    ro_data_address: int
    ro_data_size: int
    rw_data_address: int
    rw_data_size: int
    heap_base: int
    max_heap_size: int
    stack_address_low: int
    stack_address_high: int
    stack_size: int
    aux_data_address: int
    aux_data_size: int

    @classmethod
    def build(cls, *, page_size: int, ro_data_size: int, rw_data_size: int, stack_size: int,
              aux_data_size: int = 0) -> "MemoryMap":
        check_page_size(page_size)
        for what, v in (("read-only data", ro_data_size), ("read-write data", rw_data_size),
                        ("stack", stack_size), ("aux data", aux_data_size)):
            if v < 0 or v > 0xFFFFFFFF:
                raise ProgramError(f"the size of the {what} is out of range: {v}")
            if _align(v, page_size) > 0xFFFFFFFF:
                raise ProgramError(f"the size of the {what} is too big: {v}")
        ro_space = _align(ro_data_size, MAX_PAGE_SIZE)
        rw_space = _align(rw_data_size, MAX_PAGE_SIZE)
        stack_space = _align(stack_size, MAX_PAGE_SIZE)
        aux_space = _align(aux_data_size, MAX_PAGE_SIZE)

        low = _BOTTOM + ro_space + MAX_PAGE_SIZE
        rw_data_address = low
        heap_base = low + rw_data_size
        low += rw_space
        heap_slack = low - heap_base
        low += MAX_PAGE_SIZE

        high = _TOP - aux_space
        aux_data_address = high
        high -= MAX_PAGE_SIZE
        stack_high = high
        high -= stack_space
        if low > high:
            raise ProgramError("maximum memory size exceeded: the program's data, stack and aux sizes do not fit "
                               "in the 32-bit address space")
        aligned_stack = _align(stack_size, page_size)
        return cls(
            page_size=page_size,
            ro_data_address=_BOTTOM,
            ro_data_size=_align(ro_data_size, page_size),
            rw_data_address=rw_data_address,
            rw_data_size=_align(rw_data_size, page_size),
            heap_base=heap_base,
            max_heap_size=high - low + heap_slack,
            stack_address_low=stack_high - aligned_stack,
            stack_address_high=stack_high,
            stack_size=aligned_stack,
            aux_data_address=aux_data_address,
            aux_data_size=_align(aux_data_size, page_size),
        )

    def describe(self) -> str:
        rows = [
            ("ro data", self.ro_data_address, self.ro_data_size),
            ("rw data", self.rw_data_address, self.rw_data_size),
            ("heap base", self.heap_base, self.max_heap_size),
            ("stack", self.stack_address_low, self.stack_size),
            ("aux data", self.aux_data_address, self.aux_data_size),
        ]
        return "\n".join(f"  {name:<10} {addr:#010x}  {size:#x} bytes" for name, addr, size in rows)
