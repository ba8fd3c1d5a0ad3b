"""The assembler's debug info: the ``%loc`` directive's text (read by
vmcore.asm, written by ``disasm --source``) and the encoder of PolkaVM's
three debug sections (the format vmcore.debuginfo decodes).

``%loc FUNCTION PATH[:LINE[:COLUMN]] [-> FUNCTION PATH[:LINE[:COLUMN]]]...``
gives the instructions that follow their source location: the function
the code belongs to, then each function inlined into it, innermost last.
A name or path with spaces, quotes, ``->`` or a trailing ``:<digits>`` is
written as a JSON string; ``?`` stands for an unknown function or path.
A bare ``%loc`` ends the location (the following code has none)."""
from __future__ import annotations

import json
import re
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from vmcore import _engine, debuginfo as _di

# (function, path, line, column): one source frame as the assembler knows it.
Frame = Tuple[Optional[str], Optional[str], Optional[int], Optional[int]]

_QUOTED = r'"(?:[^"\\]|\\.)*"'
_FRAME_RE = re.compile(rf"({_QUOTED}|[^\s\"]+)\s+({_QUOTED}|[^\s\"]+?)(?::(\d+)(?::(\d+))?)?\Z")
_PIECE_RE = re.compile(rf'{_QUOTED}|\s+->\s+|[^"]|"')
_PLAIN_RE = re.compile(r"[^\s\"?]+\Z")
_U32 = 0xFFFFFFFF


def _token(text: str) -> Optional[str]:
    if text == "?":
        return None
    if text.startswith('"'):
        try:
            value = json.loads(text)
        except ValueError:
            value = None
        if not isinstance(value, str):
            raise ValueError(f"malformed quoted string {text}")
        return value
    return text


def parse_loc(text: str) -> Tuple[Frame, ...]:
    """The frames of a ``%loc`` argument (empty: no location); ValueError
    with what is wrong."""
    text = text.strip()
    if not text:
        return ()
    # split on ' -> ' outside quoted strings
    parts: List[str] = []
    current: List[str] = []
    for m in _PIECE_RE.finditer(text):
        piece = m.group()
        if piece[0] != '"' and piece.strip() == "->":
            parts.append("".join(current))
            current = []
        else:
            current.append(piece)
    parts.append("".join(current))
    frames = []
    for part in parts:
        fm = _FRAME_RE.match(part.strip())
        if not fm:
            raise ValueError(f"expected 'FUNCTION PATH[:LINE[:COLUMN]]', found '{part.strip()}'")
        line, column = (int(g) if g is not None else None for g in fm.group(3, 4))
        for value in (line, column):
            if value is not None and not 0 < value <= _U32:
                raise ValueError(f"line and column numbers must be 1..2**32-1, got {value}")
        path = _token(fm.group(2))
        if path is None and line is not None:
            raise ValueError("a line number needs a path")
        frames.append((_token(fm.group(1)), path, line, column))
    if 2 * len(frames) > _di.MAX_FRAMES:
        raise ValueError(f"{len(frames)} frames; the debug info holds at most {_di.MAX_FRAMES // 2}")
    return tuple(frames)


def _quote(value: Optional[str], path: bool) -> str:
    if value is None:
        return "?"
    if _PLAIN_RE.match(value) and value != "->" and not (path and re.search(r":\d+\Z", value)):
        return value
    return json.dumps(value, ensure_ascii=False)


def loc_text(frames: Iterable) -> str:
    """The ``%loc`` line for frames (SourceFrame objects or Frame tuples)."""
    parts = []
    for f in frames:
        function, path, line, column = (f.function, f.path, f.line, f.column) if hasattr(f, "path") else f
        text = f"{_quote(function, False)} {_quote(path, True)}"
        if line is not None:
            text += f":{line}" + (f":{column}" if column is not None else "")
        parts.append(text)
    return "%loc " + " -> ".join(parts) if parts else "%loc"


# --------------------------------------------------------------------------
# The sections

_varint = _engine.write_varint  # the container's varint, defined once (in C)


class _Strings:
    """The debug strings section: each distinct string once; offset 0 is ''."""

    def __init__(self) -> None:
        self.data = bytearray(_varint(0))
        self.offsets: Dict[str, int] = {"": 0}

    def add(self, text: Optional[str]) -> int:
        text = text or ""
        offset = self.offsets.get(text)
        if offset is None:
            raw = text.encode("utf-8")
            offset = self.offsets[text] = len(self.data)
            self.data += _varint(len(raw)) + raw
        return offset


def _split_name(name: Optional[str]) -> Tuple[Optional[str], Optional[str]]:
    # PolkaVM stores a path prefix as the namespace; debuginfo joins them with '::'.
    if name and "::" in name and not re.search(r"[<>\s(]", name):
        namespace, _, last = name.rpartition("::")
        if namespace and last:
            return namespace, last
    return None, name


def encode_sections(regions: Sequence[Tuple[int, int, Tuple[Frame, ...]]]) -> Tuple[bytes, bytes, bytes]:
    """Debug strings, line programs and line program ranges for
    ``regions``: (first pc, end pc, frames outermost first), in pc order,
    not overlapping.  Consecutive regions of one function (and file) share
    a range and its line program; all three are empty without regions."""
    if not any(frames for _, _, frames in regions):
        return b"", b"", b""
    strings = _Strings()
    programs = bytearray((_di.LINE_PROGRAM_VERSION,))
    ranges = bytearray()
    groups: List[List[Tuple[int, int, Tuple[Frame, ...]]]] = []
    for region in regions:
        start, _, frames = region
        if not frames:
            continue
        last = groups[-1][-1] if groups else None
        if last is not None and last[1] == start and last[2][0][:2] == frames[0][:2]:
            groups[-1].append(region)
        else:
            groups.append([region])
    for group in groups:
        ranges += _di.RANGE_ENTRY.pack(group[0][0], group[-1][1], len(programs))
        _encode_group([(start, end, entries_of(frames)) for start, end, frames in group], strings, programs)
    return bytes(strings.data), bytes(programs), bytes(ranges)


def entries_of(frames: Sequence[Frame]) -> Tuple[_di.Entry, ...]:
    """PolkaVM's records for source frames (what vmcore.debuginfo.frames_of
    reads back): per function an "enter" (its declaration is not known
    here: the path only), then a "call" of the next function from this
    one's line, or, for the innermost, the "line"."""
    entries: List[_di.Entry] = []
    for i, (function, path, line, column) in enumerate(frames):
        entries.append(("enter", function, path, None, None))
        callee = frames[i + 1][0] if i + 1 < len(frames) else None
        entries.append(("call", callee, path, line, column) if i + 1 < len(frames)
                       else ("line", function, path, line, column))
    return tuple(entries)


def _encode_group(group, strings: _Strings, out: bytearray) -> None:
    """One line program: per region, the frame fields that changed, then
    a finish opcode (folding a +-1 change of the next region's depth)."""
    state: List[list] = []  # per depth: [kind, namespace, name, path, line, column]
    depth = mutating = 0
    for i, (start, end, frames) in enumerate(group):
        if depth != len(frames):
            out.append(_di.OP_SET_STACK_DEPTH)
            out += _varint(len(frames))
            depth = len(frames)
        while len(state) < depth:
            state.append(["line", 0, 0, 0, 0, 0])
        for d, (kind, function, path, line, column) in enumerate(frames):
            namespace, name = _split_name(function)
            want = [kind, strings.add(namespace), strings.add(name), strings.add(path), line or 0, column or 0]
            have = state[d]
            if want == have:
                continue
            if mutating != d:
                out.append(_di.OP_SET_MUTATION_DEPTH)
                out += _varint(d)
                mutating = d
            if want[0] != have[0]:
                out.append({"enter": _di.OP_SET_KIND_ENTER, "call": _di.OP_SET_KIND_CALL,
                            "line": _di.OP_SET_KIND_LINE}[want[0]])
            for field, op in ((1, _di.OP_SET_NAMESPACE), (2, _di.OP_SET_FUNCTION_NAME), (3, _di.OP_SET_PATH)):
                if want[field] != have[field]:
                    out.append(op)
                    out += _varint(want[field])
            old, new = have[4], want[4]
            if new != old:
                if old and new == old + 1:
                    out.append(_di.OP_INCREMENT_LINE)
                elif old and new and new > old:
                    out.append(_di.OP_ADD_LINE)
                    out += _varint(new - old)
                elif old and new:
                    out.append(_di.OP_SUB_LINE)
                    out += _varint(old - new)
                else:
                    out.append(_di.OP_SET_LINE)
                    out += _varint(new)
            if want[5] != have[5]:
                out.append(_di.OP_SET_COLUMN)
                out += _varint(want[5])
            state[d] = want
        following = len(group[i + 1][2]) if i + 1 < len(group) else depth
        count = end - start
        step = following - depth if abs(following - depth) == 1 else 0
        single, multiple = {0: (_di.OP_FINISH_INSTRUCTION, _di.OP_FINISH_MULTIPLE),
                            1: (_di.OP_FINISH_INSTRUCTION_AND_PUSH, _di.OP_FINISH_MULTIPLE_AND_PUSH),
                            -1: (_di.OP_FINISH_INSTRUCTION_AND_POP, _di.OP_FINISH_MULTIPLE_AND_POP)}[step]
        if count == 1:
            out.append(single)
        else:
            out.append(multiple)
            out += _varint(count)
        depth += step
    out.append(_di.OP_FINISH_PROGRAM)
