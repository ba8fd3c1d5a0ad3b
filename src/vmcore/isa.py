"""The instruction sets as Python sees them, read from the C table
(include/vmcore/opcodes.h) through vmcore._engine; nothing re-typed."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from vmcore import _engine

ISA_NAMES: List[str] = _engine.isa_names()
"""Instruction-set names in blob-version order: the byte after ``PVM\\0``."""

REGISTER_NAMES: Tuple[str, ...] = ("ra", "sp", "t0", "t1", "t2", "s0", "s1", "a0", "a1", "a2", "a3", "a4", "a5")
OP_INVALID: int = _engine.OP_INVALID


@dataclass(frozen=True)
class Opcode:
    id: int
    name: str
    format: str
    ends_block: bool
    terminator: bool
    bytes: Tuple[Optional[int], ...]  # opcode byte per ISA (ISA_NAMES order)

    def byte_for(self, isa: str) -> Optional[int]:
        return self.bytes[ISA_NAMES.index(isa)]


OPCODES: List[Opcode] = [
    Opcode(op, name, fmt,
           bool(flags & _engine.FLAG_ENDS_BLOCK),
           (flags & _engine.FLAG_TERMINATOR) == _engine.FLAG_TERMINATOR,
           tuple(bytes_))
    for op, name, fmt, flags, bytes_ in _engine.opcode_rows()
]
BY_NAME: Dict[str, Opcode] = {o.name: o for o in OPCODES}


def isa_index(isa: str) -> int:
    try:
        return ISA_NAMES.index(isa)
    except ValueError:
        raise ValueError(f"unknown instruction set {isa!r}; expected one of {', '.join(ISA_NAMES)}") from None


def is_64_bit(isa: str) -> bool:
    return _engine.isa_is_64_bit(isa_index(isa))


def opcode_table(isa: str) -> Dict[int, Opcode]:
    """opcode byte -> Opcode for one instruction set."""
    i = isa_index(isa)
    return {o.bytes[i]: o for o in OPCODES if o.bytes[i] is not None}
