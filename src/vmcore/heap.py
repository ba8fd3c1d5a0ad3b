"""Heap policy: how much heap a sandbox starts with, how far sbrk may grow
it and in what steps pages are made accessible."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class HeapPolicy:
    """``initial_size``: bytes of heap the sandbox starts with, already
    allocated: ``Sandbox.heap_size`` reports it, the guest's sbrk grows the
    heap from its end and the pages under it are accessible (rounded up to
    whole pages).  PolkaVM's heap starts empty (``heap_size()`` 0, grown
    only by sbrk), which is the default 0.  ``max_size``: the heap (initial
    part included) may not grow past this many bytes (None: as far as the
    memory map allows; past it sbrk returns 0 to the guest);
    ``grow_by_pages``: make at least this many pages accessible each time
    the heap grows past what is mapped (fewer, larger growths);
    ``enabled=False``: the guest has no heap at all (sbrk returns 0 for
    every request, ``sbrk(0)`` included, and ``heap_size`` stays 0), as a
    bare engine instance, what the JAM test vectors' guests are."""

    initial_size: int = 0
    max_size: Optional[int] = None
    grow_by_pages: int = 1
    enabled: bool = True

    def __post_init__(self) -> None:
        if self.initial_size < 0 or self.initial_size > 0xFFFFFFFF:
            raise ValueError(f"initial_size must be 0..2**32-1, got {self.initial_size}")
        if self.max_size is not None and (self.max_size < 0 or self.max_size > 0xFFFFFFFF):
            raise ValueError(f"max_size must be 0..2**32-1 or None, got {self.max_size}")
        if self.max_size is not None and self.initial_size > self.max_size:
            raise ValueError(f"initial_size ({self.initial_size}) exceeds max_size ({self.max_size})")
        if not self.enabled and self.initial_size:
            raise ValueError(f"a disabled heap has no initial size, got initial_size={self.initial_size}")
        if not 1 <= self.grow_by_pages <= 0xFFFF:
            raise ValueError(f"grow_by_pages must be 1..65535, got {self.grow_by_pages}")
