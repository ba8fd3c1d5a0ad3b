"""Assembler: PolkaVM assembler text -> ``.polkavm`` blob.

The syntax and the instruction selection are PolkaVM's (polkavm-common
``assembler.rs``); the blob layout, the block-index jump encoding and the
fixed-point sizing of jump offsets follow its ``writer.rs``, so the shared
benchmark programs assemble to byte-identical blobs.  On top of that it
accepts everything ``vmcore.disasm`` prints, so every encodable instruction
of every instruction set round-trips:

* ``%import NAME`` declares the next import (``ecalli N`` calls import N);
* ``%loc FUNCTION PATH[:LINE[:COLUMN]] [-> ...]`` gives the following
  instructions a source location (written into PolkaVM's debug sections;
  syntax in vmcore.asm_debug), a bare ``%loc`` ends it;
* ``%jump_table = @a, @b, 1234`` adds jump-table entries ahead of the ones
  ``reg = @label`` creates; ``%export @name = 1234`` exports a raw offset;
* ``reg = -reg``, ``mulh``/``mulhu``/``mulhsu``, ``reg = sbrk reg``, the
  memset form ``[a0..a0 + a2] = u8 a1``, ``invalid <hex bytes>`` (raw bytes
  as one instruction), numeric jump targets (absolute code offsets), a
  leading ``<pc>:`` column, trailing ``//`` comments and quoted labels
  (``@"any name"``).

Where the reference assembler is wrong or ambiguous this one is not:
``x = y if c != 0`` selects cmov_if_not_zero, 32-bit instruction sets pick
the 32-bit instruction variants, and jump-table entries are sized to hold
every offset.

This module is the front end (the text, line by line, into instructions,
labels, data and directives); vmcore.asm_writer encodes the instructions
and writes the container.
"""
from __future__ import annotations

import json
import os
import re
import sys
from typing import Dict, List, Optional, Sequence, Tuple

from vmcore import isa as _isa
from vmcore.asm_debug import parse_loc
from vmcore.asm_writer import M32, M64, AsmError, ContainerWriter, _Ins, encode_instruction, varint  # noqa: F401
from vmcore.cli_args import OneLineParser, cannot_write, parse
from vmcore.errors import ProgramError

__all__ = ["AsmError", "assemble", "encode_instruction", "varint", "main", "DEFAULT_ISA"]

# What polkatool assembles to when the source declares no %isa.
DEFAULT_ISA = "latest64"
REGISTERS: Dict[str, int] = {name: i for i, name in enumerate(_isa.REGISTER_NAMES)}
REGISTERS.update({f"r{i}": i for i in range(len(_isa.REGISTER_NAMES))})


class _Bad(Exception):
    """A problem on the current line; the line loop adds the line number."""


# --------------------------------------------------------------------------
# Lexical helpers

_NUM_RE = re.compile(r"-?(?:0[xX][0-9a-fA-F]+|0[bB][01]+|[0-9]+)\Z")
_LABEL_REF = r'@(?:"(?:[^"\\]|\\.)*"|[^\s,\[\]"]+)'
_TARGET_RE = re.compile(rf"(?:{_LABEL_REF}|-?\w+)\Z")


def _int(text: str) -> Optional[int]:
    text = text.strip()
    if not _NUM_RE.match(text):
        return None
    neg = text.startswith("-")
    body = text[1:] if neg else text
    prefix = body[:2].lower()
    if prefix == "0x":
        value = int(body[2:], 16)
    elif prefix == "0b":
        value = int(body[2:], 2)
    else:
        value = int(body, 10)
    return -value if neg else value


def _reg(text: str) -> Optional[int]:
    return REGISTERS.get(text.strip())


def _need_reg(text: str) -> int:
    r = _reg(text)
    if r is None:
        raise _Bad(f"expected a register, found '{text.strip()}'")
    return r


def _imm(value: int, wide: bool) -> int:
    """A 32-bit immediate as its bit pattern.  Sign-extended 64-bit spellings
    (0xffff...ffff) are always fine; 0x80000000..0xffffffff only where the
    instruction works on 32 bits (``wide``), else they would change meaning."""
    if -0x80000000 <= value <= 0x7FFFFFFF or M64 - 0x7FFFFFFF <= value <= M64:
        return value & M32
    if wide and 0 <= value <= M32:
        return value
    raise _Bad(f"immediate {_show(value)} does not fit in a sign-extended 32-bit immediate")


def _show(value: int) -> str:
    return str(value) if -0x10000 < value < 0x10000 else hex(value)


def _need_imm(text: str, wide: bool) -> int:
    value = _int(text)
    if value is None:
        raise _Bad(f"expected an immediate, found '{text.strip()}'")
    return _imm(value, wide)


def _operand(text: str, wide: bool):
    """('r', reg) or ('i', u32 pattern)."""
    r = _reg(text)
    if r is not None:
        return ("r", r)
    value = _int(text)
    if value is None:
        raise _Bad(f"expected a register or an immediate, found '{text.strip()}'")
    return ("i", _imm(value, wide))


def _label_name(text: str) -> str:
    """The name in a label reference or definition (after the '@')."""
    if text.startswith('"'):
        try:
            name = json.loads(text)
        except ValueError:
            raise _Bad(f"malformed quoted label {text}") from None
        if not isinstance(name, str):
            raise _Bad(f"malformed quoted label {text}")
    else:
        name = text
        if not name:
            raise _Bad("empty label name")
    return name


_PLAIN_LABEL_RE = re.compile(r"[A-Za-z0-9_.$]+\Z")


def label_text(name: str) -> str:
    """How a label name is written after '@' (quoted when it has to be)."""
    return name if _PLAIN_LABEL_RE.match(name) else json.dumps(name, ensure_ascii=False)


def _strip_comment(line: str) -> str:
    if '"' not in line:
        i = line.find("//")
        return line if i < 0 else line[:i]
    quoted = False
    i = 0
    while i < len(line):
        c = line[i]
        if c == "\\" and quoted:
            i += 2
            continue
        if c == '"':
            quoted = not quoted
        elif not quoted and line.startswith("//", i):
            return line[:i]
        i += 1
    return line


def _hex_bytes(text: str) -> bytes:
    text = re.sub(r"\s+", "", text)
    if len(text) % 2 or not re.fullmatch(r"[0-9a-fA-F]*", text):
        raise _Bad("expected hex bytes (pairs of hex digits)")
    return bytes.fromhex(text)


def _u32(text: str, what: str) -> int:
    value = _int(text)
    if value is None or not 0 <= value <= M32:
        raise _Bad(f"{what} must be an integer from 0 to 0xffffffff, found '{text.strip()}'")
    return value


# --------------------------------------------------------------------------
# Instruction selection tables (shared with vmcore.disasm)

# reg = reg OP reg.  A size-suffixed base gets _32/_64 by the i32 marker and
# the instruction set; `swap` means the operands are written reversed.
RRR_OPS = {
    "+": "add", "-": "sub", "*": "mul", "/u": "div_unsigned", "/s": "div_signed", "%u": "rem_unsigned",
    "%s": "rem_signed", "<<": "shift_logical_left", ">>": "shift_logical_right", ">>a": "shift_arithmetic_right",
    "<<r": "rotate_left", ">>r": "rotate_right",
}
RRR_UNSIZED = {
    "&": "and", "|": "or", "^": "xor", "<u": "set_less_than_unsigned", "<s": "set_less_than_signed",
    "&~": "and_inverted", "|~": "or_inverted", "mulh": "mul_upper_signed_signed",
    "mulhu": "mul_upper_unsigned_unsigned", "mulhsu": "mul_upper_signed_unsigned",
}
RRR_SWAPPED = {">u": "set_less_than_unsigned", ">s": "set_less_than_signed"}
# reg = reg OP imm (True: size-suffixed)
RRI_OPS = {
    "+": ("add_imm", True), "-": ("add_imm", True), "*": ("mul_imm", True), "&": ("and_imm", False),
    "|": ("or_imm", False), "^": ("xor_imm", False), "<u": ("set_less_than_unsigned_imm", False),
    "<s": ("set_less_than_signed_imm", False), ">u": ("set_greater_than_unsigned_imm", False),
    ">s": ("set_greater_than_signed_imm", False), "<<": ("shift_logical_left_imm", True),
    ">>": ("shift_logical_right_imm", True), ">>a": ("shift_arithmetic_right_imm", True),
    ">>r": ("rotate_right_imm", True),
}
# reg = imm OP reg: a commutative op is reg OP imm, a comparison the mirrored
# one, a shift or rotate its _alt form (the immediate is the shifted value)
_MIRRORED = {"<u": ">u", "<s": ">s", ">u": "<u", ">s": "<s"}
RIR_OPS = {
    **{op: RRI_OPS[op] for op in ("+", "*", "&", "|", "^")},
    "-": ("negate_and_add_imm", True),
    **{op: RRI_OPS[mirror] for op, mirror in _MIRRORED.items()},
    **{op: (RRI_OPS[op][0] + "_alt", True) for op in ("<<", ">>", ">>a", ">>r")},
}
UNARY_OPS = {
    "cpop": ("count_set_bits", True), "clz": ("count_leading_zero_bits", True),
    "ctz": ("count_trailing_zero_bits", True), "sext8": ("sign_extend_8", False),
    "sext16": ("sign_extend_16", False), "zext16": ("zero_extend_16", False), "reverse": ("reverse_byte", False),
    "sbrk": ("sbrk", False),
}
MINMAX_OPS = {"maxs": "maximum", "maxu": "maximum_unsigned", "mins": "minimum", "minu": "minimum_unsigned"}
LOAD_KINDS = {"u8": "u8", "i8": "i8", "u16": "u16", "i16": "i16", "u32": "u32", "i32": "i32", "u64": "u64"}
STORE_KINDS = ("u8", "u16", "u32", "u64")
# jump @target if lhs CMP rhs
BRANCH_RR = {
    "==": ("branch_eq", False), "!=": ("branch_not_eq", False), "<u": ("branch_less_unsigned", False),
    "<s": ("branch_less_signed", False), ">=u": ("branch_greater_or_equal_unsigned", False),
    ">=s": ("branch_greater_or_equal_signed", False), "<=u": ("branch_greater_or_equal_unsigned", True),
    "<=s": ("branch_greater_or_equal_signed", True), ">u": ("branch_less_unsigned", True),
    ">s": ("branch_less_signed", True),
}
BRANCH_RI = {
    "==": "branch_eq_imm", "!=": "branch_not_eq_imm", "<u": "branch_less_unsigned_imm",
    "<s": "branch_less_signed_imm", ">=u": "branch_greater_or_equal_unsigned_imm",
    ">=s": "branch_greater_or_equal_signed_imm", "<=u": "branch_less_or_equal_unsigned_imm",
    "<=s": "branch_less_or_equal_signed_imm", ">u": "branch_greater_unsigned_imm",
    ">s": "branch_greater_signed_imm",
}
_FLIP = {"==": "==", "!=": "!=", "<u": ">u", "<s": ">s", ">u": "<u", ">s": "<s", "<=u": ">=u", "<=s": ">=s",
         ">=u": "<=u", ">=s": "<=s"}

# Operators with a letter suffix must not swallow the start of a register
# name ("a1 >>a2" is not "a1 >>a 2").
_BINOP_RE = re.compile(
    r"(\S+?)\s*(>>a(?![\w])|>>r(?![\w])|<<r(?![\w])|<<|>>|<u(?![\w])|<s(?![\w])|>u(?![\w])|>s(?![\w])|"
    r"&\s*~|\|\s*~|/u(?![\w])|/s(?![\w])|%u(?![\w])|%s(?![\w])|\s(?:mulhsu|mulhu|mulh)\s|[-+&|^*])\s*(\S+)\Z")
_COND_RE = re.compile(r"(\S+?)\s*(<=u|<=s|>=u|>=s|<u|<s|>u|>s|==|!=)\s*(\S+)\Z")
_MEM_RE = re.compile(r"\[\s*([^\]+\-\s]+|-?\s*[0-9][^\]\s]*)\s*(?:([+-])\s*([^\]\s]+))?\s*\]\Z")
_MEMSET_RE = re.compile(r"\[\s*a0\s*\.\.\s*a0\s*\+\s*a2\s*\]\s*=\s*u8\s+a1\Z")
_LABEL_DEF_RE = re.compile(r"(pub\s+)?@(\"(?:[^\"\\]|\\.)*\"|.+?)\s*:\s*(%no_fallthrough)?\Z")
_DIRECTIVE_RE = re.compile(r"%(\w+)\s*(?:=\s*)?(.*)\Z")
_PC_PREFIX_RE = re.compile(r"\d+\s*:\s*")
_LIST_ITEM_RE = re.compile(rf"{_LABEL_REF}|[^\s,]+")
_LOAD_JUMP_RE = re.compile(r"(\S+?)\s*,\s*jump\b\s*(.*)\Z")
_CMOV_RE = re.compile(r"(\S+)\s+if\s+(\S+?)\s*(==|!=)\s*(\S+)\Z")
_UNARY_RE = re.compile(r"([a-z0-9]+)\s+(\S+)\Z")
_XNOR_RE = re.compile(r"~\(\s*(\S+?)\s*\^\s*(\S+?)\s*\)\Z")
_CALL_RE = re.compile(r"(\w+)\s*\(\s*(\S+?)\s*,\s*(\S+?)\s*\)\Z")
_NEG_RE = re.compile(r"-\s*([a-z]\w*)\Z")
_LOAD_RE = re.compile(r"(u8|i8|u16|i16|u32|i32|u64)\s*(\[.*)\Z")
_TMP_JUMP_RE = re.compile(r"tmp\s*=\s*(\S+?)\s*,\s*(\S+?)\s*=\s*(\S+?)\s*,\s*jump\s*\[\s*tmp\s*(?:\+\s*(\S+?))?\s*\]\Z")
_JUMP_RE = re.compile(rf"({_LABEL_REF}|\S+)(?:\s+if\s+(.*))?\Z")


# --------------------------------------------------------------------------
# The assembler proper
class _Assembler(ContainerWriter):
    def __init__(self, isa: str) -> None:
        self.isa = isa
        self.isa_index = _isa.isa_index(isa)
        self.is64 = _isa.is_64_bit(isa)
        self.code: List[_Ins] = []
        self.labels: Dict[str, int] = {}          # name -> basic block index
        self.exports: List[Tuple[str, str, int, int]] = []  # (name, kind, value, line)
        self.export_names: set = set()
        self.jump_table: List[Tuple[str, object, int]] = []  # ('label', name, line) | ('abs', offset, line)
        self.imports: List[bytes] = []
        self.ro_data = b""
        self.rw_data = b""
        self.ro_data_size = 0
        self.rw_data_size = 0
        self.stack_size = 0
        self.data_lines: Dict[str, int] = {}
        self.at_block_start = True
        self.block = 0
        self.line = 0
        self.loc: tuple = ()  # the current %loc frames

    # -- emitting -------------------------------------------------------
    def emit(self, name: str, r=(0, 0, 0), imm1=0, imm2=0, imm64=0) -> _Ins:
        op = _isa.BY_NAME[name]
        byte = op.bytes[self.isa_index]
        if byte is None:
            raise _Bad(f"the instruction '{name}' is not available in the '{self.isa}' instruction set")
        ins = _Ins(op, byte, r, imm1, imm2, imm64, self.line)
        self._push(ins)
        return ins

    def _push(self, ins: _Ins) -> None:
        ins.loc = self.loc
        self.code.append(ins)
        self.at_block_start = ins.ends_block
        if ins.ends_block:
            self.block += 1

    def sized(self, base: str, i32: bool) -> str:
        return base + ("_32" if i32 or not self.is64 else "_64")

    def wide(self, i32: bool) -> bool:
        return i32 or not self.is64

    def target(self, ins: _Ins, text: str) -> None:
        text = text.strip()
        if text.startswith("@"):
            ins.label = _label_name(text[1:])
        else:
            value = _u32(text, "a jump target")
            if ins.tslot == 1:
                ins.imm1 = value
            else:
                ins.imm2 = value

    # -- lines ----------------------------------------------------------
    def line_text(self, text: str) -> None:
        if text.startswith("%"):
            return self.directive(text)
        if text.startswith("@") or text.startswith("pub"):
            m = _LABEL_DEF_RE.match(text)
            if m:
                return self.label_def(_label_name(m.group(2)), bool(m.group(1)), bool(m.group(3)))
        self.statement(text)

    def label_def(self, name: str, public: bool, no_fallthrough: bool) -> None:
        if not self.at_block_start and not no_fallthrough:
            self.emit("fallthrough")
        if name in self.labels:
            raise _Bad(f"duplicate label '{name}'")
        self.labels[name] = self.block
        if public:
            if self.at_block_start:
                self.add_export(name, "block", self.block)
            else:
                self.add_export(name, "insn", len(self.code))

    def add_export(self, name: str, kind: str, value: int) -> None:
        if name in self.export_names:
            raise _Bad(f"duplicate export '{name}'")
        self.export_names.add(name)
        self.exports.append((name, kind, value, self.line))

    def directive(self, text: str) -> None:
        m = _DIRECTIVE_RE.match(text)
        if not m:
            raise _Bad(f"cannot parse directive '{text}'")
        name, arg = m.group(1), m.group(2).strip()
        if name == "isa":
            return  # read before the first pass
        if name in ("ro_data_size", "rw_data_size", "stack_size"):
            setattr(self, name, _u32(arg, f"%{name}"))
        elif name in ("ro_data", "rw_data"):
            # Repeated lines concatenate (the disassembler wraps long data).
            setattr(self, name, getattr(self, name) + _hex_bytes(arg))
            self.data_lines.setdefault(name, self.line)
        elif name == "import":
            if not arg:
                raise _Bad("%import needs a name")
            self.imports.append((_label_name(arg) if arg.startswith('"') else arg).encode("utf-8"))
        elif name == "jump_table":
            items = _LIST_ITEM_RE.findall(arg)
            if ",".join(items) != re.sub(r"\s*,\s*", ",", arg):
                raise _Bad("expected '%jump_table = <@label or offset>, ...'")
            for item in items:
                if item.startswith("@"):
                    self.jump_table.append(("label", _label_name(item[1:]), self.line))
                else:
                    self.jump_table.append(("abs", _u32(item, "a jump table entry"), self.line))
        elif name == "loc":
            try:
                self.loc = parse_loc(arg)
            except ValueError as e:
                raise _Bad(f"%loc: {e}") from None
        elif name == "export":
            m = re.match(rf"({_LABEL_REF})\s*=\s*(\S+)\Z", arg)
            if not m:
                raise _Bad("expected '%export @name = <code offset>'")
            self.add_export(_label_name(m.group(1)[1:]), "abs", _u32(m.group(2), "an export offset"))
        else:
            raise _Bad(f"unknown directive '%{name}'")

    def statement(self, text: str) -> None:
        if text in ("trap", "fallthrough", "unlikely", "memset"):
            self.emit(text)
        elif text == "ret":
            self.emit("jump_indirect", (REGISTERS["ra"], 0, 0), 0)
        elif text == "nop":
            self.emit("move_reg", (REGISTERS["ra"], REGISTERS["ra"], 0))
        elif _MEMSET_RE.match(text):
            self.emit("memset")
        elif text == "invalid" or text.startswith("invalid "):
            data = _hex_bytes(text[7:])
            if not data:
                raise _Bad("'invalid' needs the raw bytes of the instruction, e.g. 'invalid ff 01'")
            ins = _Ins(None, None, line=self.line)
            ins.raw = data
            self._push(ins)
        elif text.startswith("ecalli ") or text.startswith("ecalli\t"):
            self.emit("ecalli", imm1=_u32(text[7:], "the ecalli index"))
        elif text.startswith("jump ") or text.startswith("jump\t") or text.startswith("jump["):
            self.jump(text[4:].strip())
        elif text.startswith("tmp ") or text.startswith("tmp="):
            self.tmp_jump(text)
        elif "=" in text:
            self.assignment(text)
        else:
            raise _Bad(f"unknown instruction '{text}'")

    def jump(self, rest: str) -> None:
        if rest.startswith("["):
            base, offset = self.memory(rest, reg_only=True)
            self.emit("jump_indirect", (base, 0, 0), offset)
            return
        m = _JUMP_RE.match(rest)
        if not m or not _TARGET_RE.match(m.group(1)):
            raise _Bad(f"cannot parse jump '{rest}'")
        target, cond = m.group(1), m.group(2)
        if cond is None:
            self.target(self.emit("jump"), target)
            return
        c = _COND_RE.match(cond.strip())
        if not c:
            raise _Bad(f"invalid condition '{cond.strip()}'")
        kind = c.group(2)
        lhs = _operand(c.group(1), not self.is64)
        rhs = _operand(c.group(3), not self.is64)
        if lhs[0] == "i" and rhs[0] == "i":
            raise _Bad("both sides of a condition cannot be immediates")
        if lhs[0] == "r" and rhs[0] == "r":
            name, swap = BRANCH_RR[kind]
            a, b = (rhs[1], lhs[1]) if swap else (lhs[1], rhs[1])
            ins = self.emit(name, (a, b, 0))
        else:
            if lhs[0] == "i":
                lhs, rhs, kind = rhs, lhs, _FLIP[kind]
            ins = self.emit(BRANCH_RI[kind], (lhs[1], 0, 0), rhs[1])
        self.target(ins, target)

    def memory(self, text: str, reg_only: bool = False):
        """'[reg]', '[reg + imm]', '[reg - imm]' -> (reg, offset); '[imm]' -> (None, address)."""
        m = _MEM_RE.match(text.strip())
        if not m:
            raise _Bad(f"cannot parse memory operand '{text.strip()}'")
        base_text, sign, off_text = m.groups()
        base = _reg(base_text)
        if base is None:
            if reg_only or sign:
                raise _Bad(f"expected a register, found '{base_text}'")
            return None, _need_imm(base_text, True)
        offset = 0
        if sign:
            value = _int(off_text)
            if value is None:
                raise _Bad(f"expected an immediate offset, found '{off_text}'")
            offset = _imm(-value if sign == "-" else value, True)
        return base, offset

    def tmp_jump(self, text: str) -> None:
        m = _TMP_JUMP_RE.match(text)
        if not m:
            raise _Bad(f"cannot parse '{text}'; expected 'tmp = <base>, <reg> = <imm>, jump [tmp + <imm>]'")
        base, dst = _need_reg(m.group(1)), _need_reg(m.group(2))
        value = _need_imm(m.group(3), not self.is64)
        offset = _need_imm(m.group(4), True) if m.group(4) else 0
        self.emit("load_imm_and_jump_indirect", (dst, base, 0), value, offset)

    def assignment(self, text: str) -> None:
        lhs, rhs = text.split("=", 1)
        lhs, rhs = lhs.strip(), rhs.strip()
        kind = lhs.split("[", 1)[0].strip()
        if kind in STORE_KINDS and "[" in lhs:
            return self.store(kind, lhs[len(kind):].strip(), rhs)
        i32 = False
        if lhs.startswith("i32 ") or lhs.startswith("i32\t"):
            i32, lhs = True, lhs[4:].strip()
        dst = _reg(lhs)
        if dst is None:
            raise _Bad(f"expected a destination register, found '{lhs}'")
        if not rhs:
            raise _Bad("missing right-hand side")
        self.assign(dst, rhs, i32)

    def store(self, kind: str, where: str, value_text: str) -> None:
        base, offset = self.memory(where)
        value = _reg(value_text)
        if value is not None:
            if base is None:
                self.emit(f"store_{kind}", (value, 0, 0), offset)
            else:
                self.emit(f"store_indirect_{kind}", (value, base, 0), offset)
            return
        imm = _need_imm(value_text, kind != "u64" or not self.is64)
        if base is None:
            self.emit(f"store_imm_{kind}", imm1=offset, imm2=imm)
        else:
            self.emit(f"store_imm_indirect_{kind}", (base, 0, 0), offset, imm)

    def assign(self, dst: int, rhs: str, i32: bool) -> None:
        wide = self.wide(i32)
        # dst = value, jump target | jump [base + offset]
        m = _LOAD_JUMP_RE.match(rhs) if "," in rhs else None
        if m:
            value = _need_imm(m.group(1), wide)
            where = m.group(2).strip()
            if where.startswith("["):
                base, offset = self.memory(where, reg_only=True)
                if base == dst:
                    raise _Bad("the jump base and the destination are the same register; write it as "
                               f"'tmp = {_isa.REGISTER_NAMES[base]}, {_isa.REGISTER_NAMES[dst]} = <imm>, "
                               "jump [tmp + <imm>]'")
                self.emit("load_imm_and_jump_indirect", (dst, base, 0), value, offset)
            else:
                if not _TARGET_RE.match(where):
                    raise _Bad(f"cannot parse jump target '{where}'")
                self.target(self.emit("load_imm_and_jump", (dst, 0, 0), value), where)
            return
        # conditional move
        m = _CMOV_RE.match(rhs) if " if " in rhs else None
        if m:
            src = _operand(m.group(1), wide)
            cond = _need_reg(m.group(2))
            if _int(m.group(4)) != 0:
                raise _Bad("a conditional move compares a register with 0")
            zero = m.group(3) == "=="
            if src[0] == "r":
                self.emit("cmov_if_zero" if zero else "cmov_if_not_zero", (dst, src[1], cond))
            else:
                self.emit("cmov_if_zero_imm" if zero else "cmov_if_not_zero_imm", (dst, cond, 0), src[1])
            return
        m = _UNARY_RE.match(rhs)
        if m and m.group(1) in UNARY_OPS:
            base, sized = UNARY_OPS[m.group(1)]
            self.emit(self.sized(base, i32) if sized else base, (dst, _need_reg(m.group(2)), 0))
            return
        src = _reg(rhs)
        if src is not None:
            self.emit("move_reg", (dst, src, 0))
            return
        if rhs.startswith("i64 ") or rhs.startswith("i64\t"):
            value = _int(rhs[4:])
            if value is None or not -(1 << 63) <= value <= M64:
                raise _Bad(f"expected a 64-bit immediate, found '{rhs[4:].strip()}'")
            self.emit("load_imm64", (dst, 0, 0), imm64=value & M64)
            return
        value = _int(rhs)
        if value is not None:
            return self.load_imm(dst, value)
        if rhs.startswith("@"):
            if not re.fullmatch(_LABEL_REF, rhs):
                raise _Bad(f"cannot parse label reference '{rhs}'")
            ins = self.emit("load_imm", (dst, 0, 0))
            ins.jt_label = _label_name(rhs[1:])
            return
        m = _XNOR_RE.match(rhs) if rhs[0] == "~" else None
        if m:
            self.emit("xnor", (dst, _need_reg(m.group(1)), _need_reg(m.group(2))))
            return
        m = _CALL_RE.match(rhs) if "(" in rhs else None
        if m and m.group(1) in MINMAX_OPS:
            self.emit(MINMAX_OPS[m.group(1)], (dst, _need_reg(m.group(2)), _need_reg(m.group(3))))
            return
        m = _NEG_RE.match(rhs) if rhs[0] == "-" else None
        if m:
            self.emit(self.sized("negate_and_add_imm", i32), (dst, _need_reg(m.group(1)), 0), 0)
            return
        m = _LOAD_RE.match(rhs) if "[" in rhs else None
        if m:
            base, offset = self.memory(m.group(2))
            kind = m.group(1)
            if base is None:
                self.emit(f"load_{kind}", (dst, 0, 0), offset)
            else:
                self.emit(f"load_indirect_{kind}", (dst, base, 0), offset)
            return
        m = _BINOP_RE.match(rhs)
        if m:
            return self.binop(dst, m.group(1), re.sub(r"\s+", "", m.group(2)), m.group(3), i32)
        raise _Bad(f"cannot parse '{rhs}'")

    def load_imm(self, dst: int, value: int) -> None:
        if -0x80000000 <= value <= 0x7FFFFFFF or M64 - 0x7FFFFFFF <= value <= M64:
            self.emit("load_imm", (dst, 0, 0), value & M32)
        elif not self.is64:
            self.emit("load_imm", (dst, 0, 0), _imm(value, True))
        elif -(1 << 63) <= value <= M64:
            self.emit("load_imm64", (dst, 0, 0), imm64=value & M64)
        else:
            raise _Bad(f"immediate {_show(value)} does not fit in 64 bits")

    def binop(self, dst: int, x: str, op: str, y: str, i32: bool) -> None:
        wide = self.wide(i32)
        a, b = _operand(x, wide), _operand(y, wide)

        def no_i32():
            if i32:
                raise _Bad(f"'i32' is not supported for the '{op}' operation")

        if a[0] == "r" and b[0] == "r":
            if op in RRR_OPS:
                return self.emit(self.sized(RRR_OPS[op], i32), (dst, a[1], b[1]))
            no_i32()
            if op in RRR_SWAPPED:
                return self.emit(RRR_SWAPPED[op], (dst, b[1], a[1]))
            return self.emit(RRR_UNSIZED[op], (dst, a[1], b[1]))
        if a[0] == "i" and b[0] == "i":
            raise _Bad("both operands cannot be immediates")
        table, reg, imm = (RRI_OPS, a[1], b[1]) if a[0] == "r" else (RIR_OPS, b[1], a[1])
        if op not in table:
            raise _Bad(f"the '{op}' operation does not take an immediate operand")
        base, sized = table[op]
        if not sized:
            no_i32()
        if op == "-" and a[0] == "r":
            negated = -(imm - (1 << 32) if imm & 0x80000000 else imm)
            imm = _imm(negated, wide)
        self.emit(self.sized(base, i32) if sized else base, (dst, reg, 0), imm)


def _find_isa(lines: List[str], default: str) -> str:
    isa = default
    for number, raw in enumerate(lines, 1):
        if "%isa" not in raw:
            continue
        text = _strip_comment(raw).strip()
        m = re.match(r"%isa\b\s*=?\s*(\S*)\s*\Z", text)
        if m:
            if m.group(1) not in _isa.ISA_NAMES:
                raise AsmError(f"unknown instruction set '{m.group(1)}'; expected one of "
                               f"{', '.join(_isa.ISA_NAMES)}", line=number)
            isa = m.group(1)
    return isa


def assemble(text: str, *, isa: Optional[str] = None) -> bytes:
    """Assemble source text into a ``.polkavm`` blob.  ``isa`` is the
    instruction set when the text has no ``%isa`` line (default latest64,
    as polkatool)."""
    if isa is not None and isa not in _isa.ISA_NAMES:
        raise AsmError(f"unknown instruction set '{isa}'; expected one of {', '.join(_isa.ISA_NAMES)}")
    lines = text.splitlines()
    asm = _Assembler(_find_isa(lines, isa or DEFAULT_ISA))
    for number, raw in enumerate(lines, 1):
        asm.line = number
        line = _strip_comment(raw).strip()
        if line[:1].isdigit():
            m = _PC_PREFIX_RE.match(line)
            if m:
                line = line[m.end():]
        if not line:
            continue
        try:
            asm.line_text(line)
        except _Bad as e:
            raise AsmError(str(e), line=number) from None
        except AsmError:
            raise
    try:
        return asm.finish()
    except _Bad as e:
        raise AsmError(str(e)) from None


# --------------------------------------------------------------------------
# Command line: python -m vmcore asm FILE.asm -o OUT.polkavm

def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = OneLineParser(prog="vmcore asm", description="Assemble PolkaVM assembler text into a .polkavm blob.")
    parser.add_argument("input", help="assembler source file ('-' for stdin)")
    parser.add_argument("-o", "--output", help="output .polkavm file (default: the input with a .polkavm suffix)")
    parser.add_argument("--isa", choices=_isa.ISA_NAMES, default=None,
                        help=f"instruction set when the source has no %%isa line (default {DEFAULT_ISA})")
    args = parse(parser, argv)
    if isinstance(args, int):
        return args
    try:
        if args.input == "-":
            text = sys.stdin.read()
        else:
            with open(args.input, "r", encoding="utf-8") as f:
                text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        print(f"vmcore: error: cannot read {args.input}: {getattr(e, 'strerror', None) or e}", file=sys.stderr)
        return 2
    try:
        blob = assemble(text, isa=args.isa)
    except ProgramError as e:
        print(f"vmcore: error: {args.input}: {e}", file=sys.stderr)
        return 2
    output = args.output
    if output is None:
        if args.input == "-":
            print("vmcore: error: -o is required when reading stdin", file=sys.stderr)
            return 2
        output = os.path.splitext(args.input)[0] + ".polkavm"
    try:
        if output == "-":
            sys.stdout.buffer.write(blob)
            sys.stdout.buffer.flush()
        else:
            with open(output, "wb") as f:
                f.write(blob)
    except OSError as e:
        return cannot_write(output, e)
    return 0


if __name__ == "__main__":
    sys.exit(main())
