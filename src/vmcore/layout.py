"""What a fresh instance's memory looks like: which regions are accessible,
with what rights and contents, and where the heap starts.  Shared by every
backend so they all start from the same state."""
from __future__ import annotations

from dataclasses import dataclass
from typing import List

from vmcore.heap import HeapPolicy
from vmcore.memory_map import MemoryMap

READ, WRITE = 1, 2  # vm_memory permission values (interp.h)


@dataclass(frozen=True)
class Region:
    address: int
    size: int
    perm: int
    data: bytes = b""


@dataclass(frozen=True)
class HeapLayout:
    base: int        # first heap byte
    top: int         # the heap's initial end: base + HeapPolicy.initial_size
    mapped_end: int  # accessible up to here initially
    max_top: int     # sbrk fails past this
    grow_pages: int


def _align(value: int, page: int) -> int:
    return (value + page - 1) // page * page


def initial_layout(program, memory_map: MemoryMap, heap: HeapPolicy):
    page = memory_map.page_size
    regions: List[Region] = []
    if memory_map.ro_data_size:
        regions.append(Region(memory_map.ro_data_address, memory_map.ro_data_size, READ, program.ro_data))
    rw_end = memory_map.rw_data_address + memory_map.rw_data_size
    if not heap.enabled:
        heap_max = 0
    elif heap.max_size is None:
        heap_max = memory_map.max_heap_size
    else:
        heap_max = min(heap.max_size, memory_map.max_heap_size)
    max_top = memory_map.heap_base + heap_max
    mapped_end = max(rw_end, min(_align(memory_map.heap_base + heap.initial_size, page), _align(max_top, page)))
    if mapped_end > memory_map.rw_data_address:
        regions.append(Region(memory_map.rw_data_address, mapped_end - memory_map.rw_data_address, WRITE,
                              program.rw_data))
    if memory_map.stack_size:
        regions.append(Region(memory_map.stack_address_low, memory_map.stack_size, WRITE))
    if memory_map.aux_data_size:
        regions.append(Region(memory_map.aux_data_address, memory_map.aux_data_size, READ))
    # The initial heap counts as allocated (heap_size == initial_size, the
    # guest's sbrk grows from its end); PolkaVM's heap starts empty, which is
    # the default initial_size=0.
    top = min(memory_map.heap_base + heap.initial_size, max_top)
    if not heap.enabled:
        # no heap at all: every sbrk (sbrk(0) too) finds top = max_top = 0 and returns 0
        return regions, HeapLayout(0, 0, 0, 0, heap.grow_by_pages)
    return regions, HeapLayout(memory_map.heap_base, top, mapped_end, max_top, heap.grow_by_pages)
