"""Source locations from a ``.polkavm`` blob's debug sections.

PolkaVM's linker writes three optional sections: debug strings (each a
varint length and UTF-8 bytes, referred to by offset; offset 0 is the
empty string), line programs (a version byte, then one byte-code program
per range) and line program ranges (12-byte entries: first pc, end pc and
the offset of the range's line program, sorted by pc).  A line program is
a small state machine over a stack of records; each "finish" opcode
closes a region of N code bytes described by the current stack.  The
records (kind, function, path, line, column) read, outermost first:
"enter" the function the code was compiled into (its declaration), then
per level of inlining a "call" (the line calling the inlined function)
and an "enter" of that function, and last the "line" being executed;
:func:`frames_of` folds them into one source frame per function.

Nothing here runs at load: a Program hands its three sections over as
they are and :class:`DebugInfo` decodes the range table on first use and
each line program the first time a pc in its range is asked for.
Malformed debug info never affects loading or running a program: asking
for a location in it raises ProgramError (with the blob offset), and
:func:`guest_traceback` falls back to the bare pc.

What this cannot tell: the callers of a non-inlined function.  A PVM
return address lives in a register (``ra``) or wherever the guest spilled
it, and nothing in the blob says which, so a traceback lists the faulting
pc and the functions inlined at it, never the real call stack.
"""
from __future__ import annotations

import bisect
import dataclasses
import struct
from typing import Any, Dict, List, Optional, Sequence, Tuple

from vmcore import _engine
from vmcore.errors import ProgramError, VmError

__all__ = ["SourceFrame", "SourceLocation", "Entry", "DebugInfo", "frames_of", "guest_traceback",
           "attach_traceback", "format_guest_traceback", "LINE_PROGRAM_VERSION", "MAX_FRAMES"]

#: The only line-program format PolkaVM 0.35 writes (the first byte of the section).
LINE_PROGRAM_VERSION = 1
#: Records a region can hold (as PolkaVM); opcodes addressing deeper ones are ignored.
MAX_FRAMES = 16
RANGE_ENTRY = struct.Struct("<III")

# Line program opcodes (PolkaVM 0.35 numbering); vmcore.asm_debug writes them.
OP_FINISH_PROGRAM = 0
OP_SET_MUTATION_DEPTH = 1
OP_SET_KIND_ENTER = 2
OP_SET_KIND_CALL = 3
OP_SET_KIND_LINE = 4
OP_SET_NAMESPACE = 5
OP_SET_FUNCTION_NAME = 6
OP_SET_PATH = 7
OP_SET_LINE = 8
OP_SET_COLUMN = 9
OP_SET_STACK_DEPTH = 10
OP_INCREMENT_LINE = 11
OP_ADD_LINE = 12
OP_SUB_LINE = 13
OP_FINISH_INSTRUCTION = 14
OP_FINISH_MULTIPLE = 15
OP_FINISH_INSTRUCTION_AND_PUSH = 16
OP_FINISH_MULTIPLE_AND_PUSH = 17
OP_FINISH_INSTRUCTION_AND_POP = 18
OP_FINISH_MULTIPLE_AND_POP = 19

KINDS = {OP_SET_KIND_ENTER: "enter", OP_SET_KIND_CALL: "call", OP_SET_KIND_LINE: "line"}
# finish opcode -> (reads a byte count, stack depth change after the region)
_FINISH = {OP_FINISH_INSTRUCTION: (False, 0), OP_FINISH_MULTIPLE: (True, 0),
           OP_FINISH_INSTRUCTION_AND_PUSH: (False, 1), OP_FINISH_MULTIPLE_AND_PUSH: (True, 1),
           OP_FINISH_INSTRUCTION_AND_POP: (False, -1), OP_FINISH_MULTIPLE_AND_POP: (True, -1)}
# opcode -> index of the frame field it sets from a varint
_SETTERS = {OP_SET_NAMESPACE: 1, OP_SET_FUNCTION_NAME: 2, OP_SET_PATH: 3, OP_SET_LINE: 4, OP_SET_COLUMN: 5}
_U32 = 0xFFFFFFFF


@dataclasses.dataclass(frozen=True)
class SourceFrame:
    """One source-level frame at ``pc``: the function (``namespace::name``
    as the compiler spelled it), and where in it ``pc`` is: file path,
    line and column, each None when the debug info leaves it out (the
    function's declaration when only that is known).  ``inlined``: this
    function's code was inlined into the frame before it."""

    pc: int
    function: Optional[str] = None
    path: Optional[str] = None
    line: Optional[int] = None
    column: Optional[int] = None
    inlined: bool = False

    @property
    def location(self) -> str:
        """``path:line:column`` (as much of it as is known; ``?`` for nothing)."""
        if self.path is None:
            return "?"
        return ":".join([self.path] + [str(v) for v in (self.line, self.column) if v is not None][:2])

    def __str__(self) -> str:
        where = f"pc {self.pc}"
        if self.function is None and self.path is None:
            return where
        text = f"{where} in {self.function or '??'} at {self.location}"
        return text + " (inlined)" if self.inlined else text


#: One of PolkaVM's raw frame records: (kind, function, path, line,
#: column), kind "enter" (a function: its declaration), "call" (a call of
#: the named, inlined function from the line given) or "line" (the line
#: being executed).
Entry = Tuple[str, Optional[str], Optional[str], Optional[int], Optional[int]]


@dataclasses.dataclass(frozen=True)
class SourceLocation:
    """Where a pc comes from: the innermost source frame's ``function``,
    ``path``, ``line`` and ``column`` (None where unknown), and ``frames``,
    every source frame from the function the code was compiled into
    (first) to the innermost inlined one (last, the same as the fields
    above): more than one frame means inlined code.  ``start``/``end``:
    the code bytes sharing this location; ``entries``: the debug info's
    records as stored (vmcore.debuginfo.Entry)."""

    pc: int
    function: Optional[str]
    path: Optional[str]
    line: Optional[int]
    column: Optional[int]
    frames: Tuple[SourceFrame, ...]
    start: int
    end: int
    entries: Tuple[Entry, ...] = ()

    @property
    def location(self) -> str:
        return self.frames[-1].location

    def __str__(self) -> str:
        return f"{self.function or '??'} at {self.location}"


def frames_of(pc: int, entries: Sequence[Entry]) -> Tuple[SourceFrame, ...]:
    """Source frames from PolkaVM's records: each "enter" starts a frame
    (at the function's declaration), a "call" or "line" record moves the
    current frame to the line it gives."""
    frames: List[list] = []
    for kind, function, path, line, column in entries:
        if kind == "enter" or not frames:
            frames.append([function, path, line, column])
        elif path is not None:
            frames[-1][1:] = [path, line, column]
        if kind == "line" and frames[-1][0] is None:
            frames[-1][0] = function
    return tuple(SourceFrame(pc, f[0], f[1], f[2], f[3], inlined=i > 0) for i, f in enumerate(frames))


# A decoded region: (first pc, end pc, frames as raw
# (kind, namespace, name, path, line, column) tuples, string offsets unresolved).
_Region = Tuple[int, int, Tuple[Tuple[Any, ...], ...]]


class DebugInfo:
    """A program's debug sections, decoded on demand and cached.  Built by
    Program (``program.debug_info``); ``sections`` is three (blob offset,
    payload) pairs: strings, line programs, line program ranges."""

    def __init__(self, sections: Sequence[Tuple[int, bytes]]) -> None:
        (self._strings_at, self._strings), (self._programs_at, self._programs), \
            (self._ranges_at, self._ranges) = sections
        self._table: Optional[Tuple[List[int], List[int], List[int]]] = None
        self._decoded: Dict[int, Tuple[List[_Region], Optional[ProgramError]]] = {}
        self._names: Dict[int, Optional[str]] = {}

    def __bool__(self) -> bool:
        """Whether the program carries line programs at all."""
        return bool(self._ranges) and bool(self._programs)

    # -- the range table ------------------------------------------------
    def _range_table(self) -> Tuple[List[int], List[int], List[int]]:
        if self._table is None:
            if len(self._ranges) % RANGE_ENTRY.size:
                raise ProgramError(f"the debug line program ranges section is {len(self._ranges)} bytes, not a "
                                   f"multiple of {RANGE_ENTRY.size}", offset=self._ranges_at)
            if self._programs[0] != LINE_PROGRAM_VERSION:
                raise ProgramError(f"the debug line programs have version {self._programs[0]}; only version "
                                   f"{LINE_PROGRAM_VERSION} is known", offset=self._programs_at)
            entries = list(RANGE_ENTRY.iter_unpack(self._ranges))
            self._table = ([e[0] for e in entries], [e[1] for e in entries], [e[2] for e in entries])
        return self._table

    def _entry_for(self, pc: int) -> int:
        """The index of the first range holding ``pc``, -1 if none."""
        begins, ends, _ = self._range_table()
        i = bisect.bisect_right(begins, pc) - 1
        if i < 0 or pc >= ends[i]:
            return -1
        while i > 0 and begins[i - 1] <= pc < ends[i - 1]:
            i -= 1
        return i

    # -- line programs --------------------------------------------------
    def _varint(self, pos: int) -> Tuple[int, int]:
        got = _engine.read_varint(self._programs, pos)
        if got is None:
            raise ProgramError("malformed varint in a debug line program", offset=self._programs_at + pos)
        return got[0], pos + got[1]

    def _run(self, start: int, end: int, offset: int) -> Tuple[List[_Region], Optional[ProgramError]]:
        """The regions of the line program at ``offset`` for code
        ``start..end``, and the error that stopped decoding, if any (the
        regions before it stay usable, as in PolkaVM)."""
        data = self._programs
        regions: List[_Region] = []
        stack: List[List[Any]] = [["line", 0, 0, 0, 0, 0] for _ in range(MAX_FRAMES)]
        depth = mutating = 0
        pc = start
        pos = offset
        try:
            while pc < end:
                if pos >= len(data):
                    raise ProgramError("a debug line program runs past the end of its section",
                                       offset=self._programs_at + min(pos, len(data)))
                op = data[pos]
                pos += 1
                frame = stack[mutating] if mutating < MAX_FRAMES else None
                if op == OP_FINISH_PROGRAM:
                    break
                if op in _FINISH:
                    counted, step = _FINISH[op]
                    count = 1
                    if counted:
                        count, pos = self._varint(pos)
                    if pc + count > _U32:
                        raise ProgramError("a debug line program region runs past pc 2**32",
                                           offset=self._programs_at + pos - 1)
                    n = min(depth, MAX_FRAMES)
                    regions.append((pc, pc + count, tuple(tuple(f) for f in stack[:n])))
                    pc += count
                    depth = max(0, min(_U32, depth + step))
                elif op in _SETTERS:
                    value, pos = self._varint(pos)
                    if frame is not None:
                        frame[_SETTERS[op]] = value
                elif op in KINDS:
                    if frame is not None:
                        frame[0] = KINDS[op]
                elif op == OP_INCREMENT_LINE or op == OP_ADD_LINE or op == OP_SUB_LINE:
                    delta = 1
                    if op != OP_INCREMENT_LINE:
                        delta, pos = self._varint(pos)
                    if frame is not None:
                        frame[4] = (frame[4] + (-delta if op == OP_SUB_LINE else delta)) & _U32
                elif op == OP_SET_MUTATION_DEPTH:
                    mutating, pos = self._varint(pos)
                elif op == OP_SET_STACK_DEPTH:
                    depth, pos = self._varint(pos)
                else:
                    raise ProgramError(f"unknown debug line program opcode {op}", offset=self._programs_at + pos - 1)
        except ProgramError as e:
            return regions, e
        return regions, None

    def _string(self, offset: int) -> Optional[str]:
        """The debug string at ``offset``; None for the empty string."""
        if offset in self._names:
            return self._names[offset]
        data = self._strings
        got = _engine.read_varint(data, offset) if offset < len(data) else None
        if got is None or offset + got[1] + got[0] > len(data):
            raise ProgramError(f"debug string offset {offset} is not a string in the {len(data)}-byte debug "
                               "strings section", offset=self._strings_at + min(offset, len(data)))
        begin = offset + got[1]
        try:
            text: Optional[str] = data[begin:begin + got[0]].decode("utf-8")
        except UnicodeDecodeError:
            raise ProgramError(f"debug string at offset {offset} is not valid UTF-8",
                               offset=self._strings_at + offset) from None
        self._names[offset] = text = text or None
        return text

    def _entries(self, raw) -> Tuple[Entry, ...]:
        entries = []
        for kind, namespace, name, path, line, column in raw:
            prefix, suffix = self._string(namespace), self._string(name)
            function = f"{prefix}::{suffix}" if prefix and suffix else (suffix or prefix)
            entries.append((kind, function, self._string(path), line or None, column or None))
        return tuple(entries)

    def location(self, pc: int) -> Optional[SourceLocation]:
        """The source location of code offset ``pc``: None when the debug
        info does not cover it (or there is none); ProgramError when the
        part that would cover it is malformed."""
        if not isinstance(pc, int) or isinstance(pc, bool):
            raise TypeError(f"pc must be an int, got {type(pc).__name__}: {pc!r:.40}")
        if not self or not 0 <= pc <= _U32:
            return None
        i = self._entry_for(pc)
        if i < 0:
            return None
        begins, ends, offsets = self._range_table()
        offset = offsets[i]
        key = (begins[i], ends[i], offset)
        decoded = self._decoded.get(i)
        if decoded is None:
            decoded = self._decoded[i] = self._run(*key)
        regions, error = decoded
        j = bisect.bisect_right(regions, (pc, _U32 + 1)) - 1
        if j >= 0 and regions[j][0] <= pc < regions[j][1]:
            start, end, raw = regions[j]
            if not raw:
                return None
            entries = self._entries(raw)
            frames = frames_of(pc, entries)
            inner = frames[-1]
            return SourceLocation(pc, inner.function, inner.path, inner.line, inner.column, frames, start, end,
                                  entries)
        if error is not None:
            raise error
        return None


def guest_traceback(debug_info: Optional[DebugInfo], pc: Optional[int]) -> Tuple[SourceFrame, ...]:
    """The frames at a guest's stopping pc, outermost first (as a Python
    traceback): the function and the functions inlined at ``pc`` where the
    debug info says, else just the pc.  Never raises for bad debug info."""
    if pc is None:
        return ()
    try:
        found = debug_info.location(pc) if debug_info else None
    except ProgramError:
        found = None
    return found.frames if found is not None else (SourceFrame(pc),)


def attach_traceback(error: VmError, program) -> VmError:
    """Give a guest's error its ``guest_traceback`` (at ``error.pc``, from
    ``program``'s debug info); returns the error."""
    if error.pc is not None:
        error.guest_traceback = guest_traceback(program.debug_info, error.pc)
    return error


def format_guest_traceback(error: VmError) -> str:
    """A VmError's ``guest_traceback`` as text, one frame a line (most
    recent last, like Python's); empty when it has none."""
    frames = getattr(error, "guest_traceback", ())
    if not frames:
        return ""
    return "Guest traceback (most recent frame last):\n" + "".join(f"  {frame}\n" for frame in frames)
