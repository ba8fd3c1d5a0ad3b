"""What ``Sandbox.run()`` returns: why the guest stopped."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Interrupt:
    pc: int


@dataclass(frozen=True)
class Finished(Interrupt):
    """The guest returned to the host (jumped to 0xffff0000)."""


@dataclass(frozen=True)
class Ecalli(Interrupt):
    """The guest called import ``number``; run() again to resume after it."""
    number: int
    name: str = ""


@dataclass(frozen=True)
class Trap(Interrupt):
    """The guest panicked."""


@dataclass(frozen=True)
class OutOfGas(Interrupt):
    """Not enough gas for the block at ``pc``; add gas and run() again."""


@dataclass(frozen=True)
class PageFault(Interrupt):
    """The guest touched the inaccessible page at ``address``."""
    address: int


@dataclass(frozen=True)
class Step(Interrupt):
    """Single-step mode: the guest is about to execute ``pc``."""


__all__ = ["Interrupt", "Finished", "Ecalli", "Trap", "OutOfGas", "PageFault", "Step"]
