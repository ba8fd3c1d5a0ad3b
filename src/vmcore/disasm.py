"""Disassembler: a Program -> text in the syntax ``vmcore.asm`` accepts.

Instructions print as PolkaVM's instruction formatter prints them (its
``InstructionFormatter``), except where that text is ambiguous or does not
assemble: ``i64`` marks a load_imm64 whose value would also fit load_imm,
32-bit rotates keep their ``>>r``, and jump targets are labels.  Feeding the
output back to ``vmcore.asm.assemble`` reproduces the code byte for byte
for any program the assembler made (and for any canonically encoded one):

* every jump target / jump-table entry at a basic-block start gets a label
  (an export name if there is one, else ``@L<pc>``); other targets stay
  numeric (absolute code offsets);
* exports in the middle of a block use ``%no_fallthrough``; exports that
  are not instruction starts become ``%export @name = <pc>``;
* the jump table is listed with ``%jump_table``;
* an undefined opcode prints as ``invalid <its raw bytes>``, the implicit
  trap (end of code, bitmask gaps) as a ``// invalid`` comment.

Decoding is done in C (``vmcore._engine.instructions``); this module only
formats, so a 1 MB program disassembles in about a second.
"""
from __future__ import annotations

import os
import sys
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

from vmcore import _engine
from vmcore import isa as _isa
from vmcore.asm import (BRANCH_RI, BRANCH_RR, MINMAX_OPS, RIR_OPS, RRI_OPS, RRR_OPS, RRR_UNSIZED, UNARY_OPS,
                        label_text)
from vmcore.asm_debug import loc_text
from vmcore.cli_args import OneLineParser, cannot_write, parse
from vmcore.errors import ProgramError
from vmcore.program import DEFAULT_RAW_ISA, Program

__all__ = ["disassemble", "lines", "format_instruction", "main"]

M32 = 0xFFFFFFFF
_INVALID = _isa.OP_INVALID
_R = _isa.REGISTER_NAMES

# How many jump-table entries per %jump_table line.
_JUMP_TABLE_PER_LINE = 16

Formatter = Callable[[int, int, int, int, int, int, str], str]


def _signed(v: int) -> int:
    return v - (1 << 32) if v & 0x80000000 else v


def _imm_formatter(is64: bool) -> Callable[[int], str]:
    """The reference's immediate style: 0, else hex of the value as the
    machine sees it (sign-extended to 64 bits on 64-bit instruction sets)."""
    if is64:
        def imm(v: int) -> str:
            if v == 0:
                return "0"
            return "0x%x" % (v | 0xFFFFFFFF00000000 if v & 0x80000000 else v)
    else:
        def imm(v: int) -> str:
            return "0" if v == 0 else "0x%x" % v
    return imm


def _build(is64: bool) -> Dict[str, Formatter]:
    """op name -> f(r0, r1, r2, imm1, imm2, imm64, target_text)."""
    imm = _imm_formatter(is64)
    p32 = "i32 " if is64 else ""
    f: Dict[str, Formatter] = {}

    def sized(base: str) -> List[tuple]:
        return [(base + "_32", p32), (base + "_64", "")]

    for name in ("trap", "fallthrough", "unlikely"):
        f[name] = (lambda n: lambda a, b, c, i, j, k, t: n)(name)
    f["memset"] = lambda a, b, c, i, j, k, t: "[a0..a0 + a2] = u8 a1"

    def jump_indirect(a, b, c, i, j, k, t):
        if i == 0:
            return "ret" if a == 0 else f"jump [{_R[a]}]"
        return f"jump [{_R[a]} + {imm(i)}]"
    f["jump_indirect"] = jump_indirect
    f["load_imm"] = lambda a, b, c, i, j, k, t: f"{_R[a]} = {imm(i)}"
    for kind in ("u8", "i8", "u16", "i16", "u32", "i32", "u64"):
        f["load_" + kind] = (lambda kind: lambda a, b, c, i, j, k, t: f"{_R[a]} = {kind} [{imm(i)}]")(kind)
        f["load_indirect_" + kind] = (lambda kind: lambda a, b, c, i, j, k, t: (
            f"{_R[a]} = {kind} [{_R[b]} + {imm(i)}]" if i else f"{_R[a]} = {kind} [{_R[b]}]"))(kind)
    for kind in ("u8", "u16", "u32", "u64"):
        f["store_" + kind] = (lambda kind: lambda a, b, c, i, j, k, t: f"{kind} [{imm(i)}] = {_R[a]}")(kind)
        f["store_indirect_" + kind] = (lambda kind: lambda a, b, c, i, j, k, t: (
            f"{kind} [{_R[b]} + {imm(i)}] = {_R[a]}" if i else f"{kind} [{_R[b]}] = {_R[a]}"))(kind)
        f["store_imm_" + kind] = (lambda kind: lambda a, b, c, i, j, k, t: f"{kind} [{imm(i)}] = {imm(j)}")(kind)
        # the reference prints this offset in decimal, always with '+'
        f["store_imm_indirect_" + kind] = (lambda kind: lambda a, b, c, i, j, k, t: (
            f"{kind} [{_R[a]} + {_signed(i)}] = {imm(j)}"))(kind)

    f["load_imm_and_jump"] = lambda a, b, c, i, j, k, t: f"{_R[a]} = {_signed(i)}, jump {t}"
    for cond, name in BRANCH_RI.items():
        f[name] = (lambda cond: lambda a, b, c, i, j, k, t: f"jump {t} if {_R[a]} {cond} {_signed(i)}")(cond)
    for cond in ("==", "!=", "<u", "<s", ">=u", ">=s"):  # the unswapped register forms
        name = BRANCH_RR[cond][0]
        f[name] = (lambda cond: lambda a, b, c, i, j, k, t: f"jump {t} if {_R[a]} {cond} {_R[b]}")(cond)
    f["jump"] = lambda a, b, c, i, j, k, t: f"jump {t}"

    def load_imm_and_jump_indirect(a, b, c, i, j, k, t):
        if a != b:
            return (f"{_R[a]} = {_signed(i)}, jump [{_R[b]}]" if j == 0
                    else f"{_R[a]} = {_signed(i)}, jump [{_R[b]} + {imm(j)}]")
        if j == 0:
            return f"tmp = {_R[b]}, {_R[a]} = {_signed(i)}, jump [tmp]"
        return f"tmp = {_R[b]}, {_R[a]} = {_signed(i)}, jump [tmp + {imm(j)}]"
    f["load_imm_and_jump_indirect"] = load_imm_and_jump_indirect

    # three registers: d = s1 OP s2
    for op, base in RRR_OPS.items():
        for name, prefix in sized(base):
            f[name] = (lambda op, prefix: lambda a, b, c, i, j, k, t: (
                f"{prefix}{_R[a]} = {_R[b]} {op} {_R[c]}"))(op, prefix)
    for op, name in RRR_UNSIZED.items():
        sep = " %s" % op.replace("~", " ~") if op.endswith("~") else " %s " % op  # "a1 & ~a2"
        f[name] = (lambda sep: lambda a, b, c, i, j, k, t: f"{_R[a]} = {_R[b]}{sep}{_R[c]}")(sep)
    f["xnor"] = lambda a, b, c, i, j, k, t: f"{_R[a]} = ~({_R[b]} ^ {_R[c]})"
    for fn, name in MINMAX_OPS.items():
        f[name] = (lambda fn: lambda a, b, c, i, j, k, t: f"{_R[a]} = {fn}({_R[b]}, {_R[c]})")(fn)
    f["cmov_if_zero"] = lambda a, b, c, i, j, k, t: f"{_R[a]} = {_R[b]} if {_R[c]} == 0"
    f["cmov_if_not_zero"] = lambda a, b, c, i, j, k, t: f"{_R[a]} = {_R[b]} if {_R[c]} != 0"
    f["cmov_if_zero_imm"] = lambda a, b, c, i, j, k, t: f"{_R[a]} = {imm(i)} if {_R[b]} == 0"
    f["cmov_if_not_zero_imm"] = lambda a, b, c, i, j, k, t: f"{_R[a]} = {imm(i)} if {_R[b]} != 0"

    # register and immediate: d = s OP imm, d = imm OP s
    for op, (base, is_sized) in RRI_OPS.items():
        if op == "-":
            continue  # add_imm prints small negatives as subtraction (below)
        for name, prefix in (sized(base) if is_sized else [(base, "")]):
            f[name] = (lambda op, prefix: lambda a, b, c, i, j, k, t: (
                f"{prefix}{_R[a]} = {_R[b]} {op} {imm(i)}"))(op, prefix)
    for name, prefix in sized("add_imm"):
        f[name] = (lambda prefix: lambda a, b, c, i, j, k, t: (
            f"{prefix}{_R[a]} = {_R[b]} - {-_signed(i)}" if -4096 < _signed(i) < 0
            else f"{prefix}{_R[a]} = {_R[b]} + {imm(i)}"))(prefix)
    for op, (base, is_sized) in RIR_OPS.items():
        if not base.endswith("_alt"):
            continue  # the rest are the commutative forms above
        for name, prefix in sized(base):
            f[name] = (lambda op, prefix: lambda a, b, c, i, j, k, t: (
                f"{prefix}{_R[a]} = {imm(i)} {op} {_R[b]}"))(op, prefix)
    for name, prefix in sized("negate_and_add_imm"):
        f[name] = (lambda prefix: lambda a, b, c, i, j, k, t: (
            f"{prefix}{_R[a]} = -{_R[b]}" if i == 0 else f"{prefix}{_R[a]} = {imm(i)} - {_R[b]}"))(prefix)

    # two registers
    f["move_reg"] = lambda a, b, c, i, j, k, t: f"{_R[a]} = {_R[b]}"
    for word, (base, is_sized) in UNARY_OPS.items():
        for name, prefix in (sized(base) if is_sized else [(base, "")]):
            f[name] = (lambda word, prefix: lambda a, b, c, i, j, k, t: (
                f"{prefix}{_R[a]} = {word} {_R[b]}"))(word, prefix)

    f["ecalli"] = lambda a, b, c, i, j, k, t: f"ecalli {i}"

    def load_imm64(a, b, c, i, j, k, t):
        fits = k <= 0x7FFFFFFF or k >= 0xFFFFFFFF80000000
        return f"{_R[a]} = i64 0x{k:x}" if fits else f"{_R[a]} = 0x{k:x}"
    f["load_imm64"] = load_imm64

    missing = set(_isa.BY_NAME) - set(f)
    assert not missing, f"no formatter for {sorted(missing)}"
    return f


_FORMATTERS = {is64: _build(is64) for is64 in (False, True)}
_BY_ID = {is64: [_FORMATTERS[is64][o.name] for o in _isa.OPCODES] for is64 in (False, True)}
# Where the absolute jump target sits in a _engine.instructions row (6: imm1,
# 7: imm2, 0: no target).
_TARGET_SLOT = [{"reg_imm_offset": 7, "reg_reg_offset": 6, "offset": 6}.get(o.format, 0) for o in _isa.OPCODES]
_ENDS_BLOCK = [o.ends_block for o in _isa.OPCODES] + [True]


def format_instruction(isa: str, op: str, regs: Sequence[int] = (), imm1: int = 0, imm2: int = 0, imm64: int = 0,
                       target: Optional[str] = None) -> str:
    """One instruction as text (operands as ``vmcore._engine`` reports
    them); ``target`` replaces the numeric jump target, e.g. '@loop'."""
    opcode = _isa.BY_NAME[op]
    r = tuple(regs) + (0, 0, 0)
    if target is None:
        slot = _TARGET_SLOT[opcode.id]
        target = str((imm2 if slot == 7 else imm1) & M32) if slot else ""
    return _FORMATTERS[_isa.is_64_bit(isa)][op](r[0], r[1], r[2], imm1 & M32, imm2 & M32, imm64, target)


def _name(name: str) -> str:
    return "@" + label_text(name)


def lines(program: Program, *, pcs: bool = True, source: bool = False) -> Iterator[str]:
    """The disassembly, one line at a time (no trailing newlines).  With
    ``pcs`` each instruction line starts with its program counter.  With
    ``source``, a ``%loc`` line (function, file:line:column, inlined
    frames; vmcore.asm_debug) precedes each instruction whose source
    location differs from the one before, from the blob's debug info;
    reassembling the text writes them back as debug info."""
    if isinstance(program, (bytes, bytearray, memoryview)):
        program = Program.from_bytes(program)
    is64 = program.is_64_bit
    code = program.code
    decoded = _engine.instructions(program.isa_index, code, program.bitmask) if code else []

    # Instruction starts and basic-block starts, as the assembler will see them.
    starts = set()
    block_starts = set()
    targets = set()
    prev_ends = True
    ends = _ENDS_BLOCK
    tslot = _TARGET_SLOT
    for ins in decoded:
        off, nxt, op = ins[0], ins[1], ins[2]
        if op == _INVALID:
            if nxt == off:
                continue
            starts.add(off)
            if prev_ends:
                block_starts.add(off)
            prev_ends = True
            continue
        starts.add(off)
        if prev_ends:
            block_starts.add(off)
        prev_ends = ends[op]
        slot = tslot[op]
        if slot:
            targets.add(ins[slot])

    exports_at: Dict[int, List[str]] = {}
    loose_exports = []
    for name in sorted(program.exports, key=lambda n: n.encode("utf-8")):
        pc = program.exports[name]
        if pc in starts:
            exports_at.setdefault(pc, []).append(name)
        else:
            loose_exports.append((name, pc))

    taken = set(program.exports)
    labels: Dict[int, str] = {}
    for pc in sorted(targets.union(program.jump_table)):
        if pc not in block_starts:
            continue
        if pc in exports_at:
            labels[pc] = exports_at[pc][0]
        else:
            name = f"L{pc}"
            while name in taken:
                name = "_" + name
            labels[pc] = name
    label_ref = {pc: _name(name) for pc, name in labels.items()}

    # Header: everything the blob carries besides the code.
    yield f"%isa = {program.isa}"
    for key in ("ro_data_size", "rw_data_size", "stack_size"):
        value = getattr(program, key)
        if value:
            yield f"%{key} = {value}"
    for name in ("ro_data", "rw_data"):
        data = getattr(program, name)
        for i in range(0, len(data), DATA_BYTES_PER_LINE):  # repeated lines concatenate in the assembler
            yield f"%{name} = {data[i:i + DATA_BYTES_PER_LINE].hex()}"
    for i, name in enumerate(program.imports):
        yield f"%import {label_text(name)}  // ecalli {i}"
    table = program.jump_table
    for i in range(0, len(table), _JUMP_TABLE_PER_LINE):
        chunk = table[i:i + _JUMP_TABLE_PER_LINE]
        yield "%jump_table = " + ", ".join(label_ref.get(t) or str(t) for t in chunk)
    for name, pc in loose_exports:
        yield f"%export {_name(name)} = {pc}"

    fmts = _BY_ID[is64]
    pc_fmt = "%8d: %s" if pcs else "    %.0s%s"  # %.0s swallows the pc
    where = _SourceLines(program) if source else None
    for off, nxt, op, r0, r1, r2, i1, i2, i64 in decoded:
        if where is not None and nxt != off:
            yield from where.at(off)
        if op == _INVALID:
            if nxt == off:
                yield pc_fmt % (off, "// invalid (implicit trap)")
                continue
            text = "invalid " + code[off:nxt].hex(" ")
        else:
            slot = tslot[op]
            if slot:
                t = i2 if slot == 7 else i1
                target = label_ref.get(t) or str(t)
            else:
                target = ""
            text = fmts[op](r0, r1, r2, i1, i2, i64, target)
        names = exports_at.get(off)
        if names is not None:
            suffix = "" if off in block_starts else " %no_fallthrough"
            for name in names:
                yield f"pub {_name(name)}:{suffix}"
        elif off in labels and off not in exports_at:
            yield f"{label_ref[off]}:"
        if where is not None and where.pending:
            yield where.pending
            where.pending = ""
        yield pc_fmt % (off, text)


class _SourceLines:
    """The %loc lines of ``disasm --source``: one where the location
    changes.  Debug info that is malformed for some pcs gives one comment
    per distinct problem and no location there."""

    def __init__(self, program: Program) -> None:
        self.info = program.debug_info
        self.current: tuple = ()
        self.pending = ""  # written after the labels, just before the instruction
        self.problems: set = set()
        self.start = self.end = 0  # the code bytes of the last location found

    def at(self, pc: int) -> Iterator[str]:
        if self.start <= pc < self.end:
            return  # the same region as the instruction before: the same location
        try:
            found = self.info.location(pc) if self.info else None
        except ProgramError as e:
            found = None
            if str(e) not in self.problems:
                self.problems.add(str(e))
                yield f"// debug info: {e}"
        self.start, self.end = (found.start, found.end) if found else (0, 0)
        frames = tuple((f.function, f.path, f.line, f.column) for f in found.frames) if found else ()
        if frames != self.current:
            self.current = frames
            self.pending = loc_text(frames)


def disassemble(program: Union[Program, bytes], *, pcs: bool = True, source: bool = False) -> str:
    """The whole disassembly as one string (``source``: as :func:`lines`)."""
    return "\n".join(lines(program, pcs=pcs, source=source)) + "\n"


# --------------------------------------------------------------------------
# Command line: python -m vmcore disasm FILE [--raw] [--isa NAME]

DATA_BYTES_PER_LINE = 32
# Sections with an id from 128 up are optional in the .polkavm format (the
# debug-info sections); the disassembly has no syntax for them.
_OPTIONAL_SECTION_MIN = 128


def optional_sections(data: bytes) -> List[Tuple[int, int]]:
    """(section id, payload size) of the optional (debug) sections of a
    .polkavm blob, which the disassembly leaves out."""
    found = []
    pos = 4 + 1 + 8  # magic, version, blob length
    while pos < len(data):
        sid = data[pos]
        if sid == 0:
            break
        got = _engine.read_varint(data, pos + 1)
        if got is None:
            break
        size, pos = got[0], pos + 1 + got[1]  # (value, bytes read)
        if sid >= _OPTIONAL_SECTION_MIN:
            found.append((sid, size))
        pos += size
    return found


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = OneLineParser(prog="vmcore disasm",
                           description="Disassemble a .polkavm blob (or a raw JAM code blob).")
    parser.add_argument("input", help="program file ('-' for stdin)")
    parser.add_argument("--raw", action="store_true", help="the input is a raw JAM code blob (jump table, code, bitmask)")
    parser.add_argument("--isa", choices=_isa.ISA_NAMES, default=None,
                        help=f"instruction set of a --raw blob (default {DEFAULT_RAW_ISA})")
    parser.add_argument("-o", "--output", help="write the text here instead of stdout")
    parser.add_argument("--no-pcs", action="store_true", help="leave out the program-counter column")
    parser.add_argument("--source", action="store_true",
                        help="interleave source locations from the debug info (%%loc function file:line:column lines)")
    args = parse(parser, argv)
    if isinstance(args, int):
        return args
    if args.isa and not args.raw:
        print("vmcore: error: --isa only applies to --raw blobs (a .polkavm blob names its own)",
              file=sys.stderr)
        return 2
    try:
        if args.input == "-":
            data = sys.stdin.buffer.read()
        else:
            with open(args.input, "rb") as f:
                data = f.read()
    except OSError as e:
        print(f"vmcore: error: cannot read {args.input}: {e.strerror or e}", file=sys.stderr)
        return 2
    try:
        if args.raw:
            program = Program.from_raw_code(data, isa=args.isa or DEFAULT_RAW_ISA)
        else:
            program = Program.from_bytes(data)
    except ProgramError as e:
        print(f"vmcore: error: {args.input}: {e}", file=sys.stderr)
        return 2
    dropped = [] if args.raw else optional_sections(data)
    if args.source and not program.has_debug_info:
        print(f"vmcore: note: {args.input}: no debug info (no line programs): --source has nothing to add",
              file=sys.stderr)
    elif dropped and not args.source:
        total = sum(size for _, size in dropped)
        ids = ", ".join(str(sid) for sid, _ in dropped)
        print(f"vmcore: note: {args.input}: left out {len(dropped)} debug section(s) (id {ids}, {total} bytes); "
              "without --source the disassembly leaves debug info out, so a reassembled blob will not have it",
              file=sys.stderr)
    try:
        if args.output and args.output != "-":
            with open(args.output, "w", encoding="utf-8") as f:
                for line in lines(program, pcs=not args.no_pcs, source=args.source):
                    f.write(line + "\n")
        else:
            out = sys.stdout
            for line in lines(program, pcs=not args.no_pcs, source=args.source):
                out.write(line + "\n")
            out.flush()
    except BrokenPipeError:
        # the reader went away (| head): not an error; keep Python's exit quiet
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except OSError:
            pass
        return 0
    except OSError as e:
        return cannot_write(args.output, e)
    return 0


if __name__ == "__main__":
    sys.exit(main())
