"""What ``Sandbox.run()`` returns: why the guest stopped.

These are values, not exceptions.  The three that share a concept with an
exception of :mod:`vmcore.errors` carry an ``Interrupt`` suffix so the two
cannot be confused: ``run()`` *returns* :class:`TrapInterrupt`, while
``call()`` *raises* :class:`vmcore.Trap` (likewise ``OutOfGasInterrupt`` /
``vmcore.OutOfGas`` and ``PageFaultInterrupt`` / ``vmcore.PageFault``).
The old names ``interrupts.Trap``, ``.OutOfGas`` and ``.PageFault`` still
resolve, with a DeprecationWarning."""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

from vmcore.errors import TrapReason


@dataclass(frozen=True)
class Interrupt:
    """Base of every ``run()`` result; ``pc`` is where the guest stopped."""
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
class TrapInterrupt(Interrupt):
    """The guest panicked; ``reason`` (a :class:`vmcore.TrapReason`) says
    why (``call()`` raises :class:`vmcore.Trap` with the same reason)."""
    reason: TrapReason


@dataclass(frozen=True)
class OutOfGasInterrupt(Interrupt):
    """Not enough gas for the block at ``pc``; add gas and run() again
    (``call()`` raises :class:`vmcore.OutOfGas` for this)."""


@dataclass(frozen=True)
class PageFaultInterrupt(Interrupt):
    """The guest touched the inaccessible page at ``address`` (``call()``
    raises :class:`vmcore.PageFault` for this)."""
    address: int


@dataclass(frozen=True)
class Step(Interrupt):
    """Single-step mode: the guest is about to execute ``pc``."""


_DEPRECATED = {"Trap": TrapInterrupt, "OutOfGas": OutOfGasInterrupt, "PageFault": PageFaultInterrupt}


def __getattr__(name: str) -> Any:
    cls = _DEPRECATED.get(name)
    if cls is None:
        raise AttributeError(f"module 'vmcore.interrupts' has no attribute {name!r}")
    warnings.warn(f"vmcore.interrupts.{name} is deprecated; use vmcore.interrupts.{cls.__name__} (vmcore.{name} "
                  "is the exception call() raises)", DeprecationWarning, stacklevel=2)
    return cls


__all__ = ["Interrupt", "Finished", "Ecalli", "TrapInterrupt", "OutOfGasInterrupt", "PageFaultInterrupt", "Step"]
