"""The assembler's back end: instruction encoding (``encode_instruction``,
the container's ``varint``) and the ``.polkavm`` container writer (jump
offsets sized to a fixed point as PolkaVM's ``writer.rs`` does, jump
table, sections); vmcore.asm parses the text into it."""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

from vmcore import asm_debug as _asm_debug, isa as _isa
from vmcore.errors import ProgramError

# `reg = @label` loads (jump table index + 1) * this.
CODE_ADDRESS_ALIGNMENT = 2

M32 = 0xFFFFFFFF
M64 = 0xFFFFFFFFFFFFFFFF

_BLOB_MAGIC = b"PVM\0"
_SECTION_MEMORY_CONFIG = 1
_SECTION_RO_DATA = 2
_SECTION_RW_DATA = 3
_SECTION_IMPORTS = 4
_SECTION_EXPORTS = 5
_SECTION_CODE_AND_JUMP_TABLE = 6
_SECTION_OPT_DEBUG = (128, 129, 130)  # strings, line programs, line program ranges
_SECTION_END_OF_FILE = 0


class AsmError(ProgramError):
    """Assembler input is malformed; ``line`` is the 1-based source line
    (None for whole-program problems)."""

    def __init__(self, message: str, *, line: Optional[int] = None) -> None:
        super().__init__(f"line {line}: {message}" if line is not None else message)
        self.line = line
        self.reason = message


def varint(value: int) -> bytes:
    """The container's varint: the count of leading one bits in the first
    byte is the number of little-endian bytes that follow; the rest of the
    first byte holds the value's top bits."""
    for extra in range(4):
        if value < 1 << (7 * (extra + 1)):
            return bytes((((0xFF << (8 - extra)) & 0xFF) | (value >> (8 * extra)),)) + \
                value.to_bytes(4, "little")[:extra]
    return b"\xf0" + value.to_bytes(4, "little")


# --------------------------------------------------------------------------
# Encoding

def _imm_bytes(value: int) -> bytes:
    """Shortest little-endian prefix that sign-extends back to the value."""
    value &= M32
    s = value - (1 << 32) if value & 0x80000000 else value
    if s == 0:
        return b""
    if -0x80 <= s < 0x80:
        n = 1
    elif -0x8000 <= s < 0x8000:
        n = 2
    elif -0x800000 <= s < 0x800000:
        n = 3
    else:
        n = 4
    return value.to_bytes(4, "little")[:n]


def _enc_argless(b, r0, r1, r2, i1, i2, i64, pos):
    return bytes((b,))


def _enc_reg_imm(b, r0, r1, r2, i1, i2, i64, pos):
    return bytes((b, r0)) + _imm_bytes(i1)


def _enc_reg_imm_imm(b, r0, r1, r2, i1, i2, i64, pos):
    a = _imm_bytes(i1)
    return bytes((b, r0 | len(a) << 4)) + a + _imm_bytes(i2)


def _enc_reg_imm_offset(b, r0, r1, r2, i1, i2, i64, pos):
    return _enc_reg_imm_imm(b, r0, r1, r2, i1, i2 - pos, i64, pos)


def _enc_reg_reg_imm(b, r0, r1, r2, i1, i2, i64, pos):
    return bytes((b, r0 | r1 << 4)) + _imm_bytes(i1)


def _enc_reg_reg_offset(b, r0, r1, r2, i1, i2, i64, pos):
    return bytes((b, r0 | r1 << 4)) + _imm_bytes(i1 - pos)


def _enc_reg_reg_reg(b, r0, r1, r2, i1, i2, i64, pos):
    # the destination travels in the third byte
    return bytes((b, r1 | r2 << 4, r0))


def _enc_offset(b, r0, r1, r2, i1, i2, i64, pos):
    return bytes((b,)) + _imm_bytes(i1 - pos)


def _enc_imm(b, r0, r1, r2, i1, i2, i64, pos):
    return bytes((b,)) + _imm_bytes(i1)


def _enc_imm_imm(b, r0, r1, r2, i1, i2, i64, pos):
    a = _imm_bytes(i1)
    return bytes((b, len(a))) + a + _imm_bytes(i2)


def _enc_reg_reg(b, r0, r1, r2, i1, i2, i64, pos):
    return bytes((b, r0 | r1 << 4))


def _enc_reg_reg_imm_imm(b, r0, r1, r2, i1, i2, i64, pos):
    a = _imm_bytes(i1)
    return bytes((b, r0 | r1 << 4, len(a))) + a + _imm_bytes(i2)


def _enc_reg_imm64(b, r0, r1, r2, i1, i2, i64, pos):
    return bytes((b, r0)) + (i64 & M64).to_bytes(8, "little")


_ENCODERS = {
    "argless": _enc_argless, "reg_imm": _enc_reg_imm, "reg_imm_offset": _enc_reg_imm_offset,
    "reg_imm_imm": _enc_reg_imm_imm, "reg_reg_imm": _enc_reg_reg_imm, "reg_reg_offset": _enc_reg_reg_offset,
    "reg_reg_reg": _enc_reg_reg_reg, "offset": _enc_offset, "imm": _enc_imm, "imm_imm": _enc_imm_imm,
    "reg_reg": _enc_reg_reg, "reg_reg_imm_imm": _enc_reg_reg_imm_imm, "reg_imm64": _enc_reg_imm64,
}
# Which immediate slot holds the (absolute) jump target, per format.
_TARGET_SLOT = {"reg_imm_offset": 2, "reg_reg_offset": 1, "offset": 1}


def encode_instruction(isa: str, op: str, regs: Sequence[int] = (), imm1: int = 0, imm2: int = 0, imm64: int = 0,
                       position: int = 0) -> bytes:
    """Encode one instruction.  Operands use the decoder's convention
    (``vmcore._engine.instructions``): registers in the order the
    assembler writes them (destination first for three-register forms),
    immediates as 32-bit patterns, jump targets absolute."""
    opcode = _isa.BY_NAME[op]
    byte = opcode.byte_for(isa)
    if byte is None:
        raise AsmError(f"the instruction '{op}' is not available in the '{isa}' instruction set")
    r = tuple(regs) + (0, 0, 0)
    return _ENCODERS[opcode.format](byte, r[0], r[1], r[2], imm1 & M32, imm2 & M32, imm64, position)


class _Ins:
    """One emitted instruction (or a run of raw bytes)."""
    __slots__ = ("op", "byte", "fmt", "r0", "r1", "r2", "imm1", "imm2", "imm64", "label", "tslot", "jt_label",
                 "raw", "ends_block", "line", "pos", "tn", "data", "loc")

    def __init__(self, op, byte, r=(0, 0, 0), imm1=0, imm2=0, imm64=0, line=0):
        self.op = op
        self.byte = byte
        self.fmt = op.format if op is not None else None
        self.r0, self.r1, self.r2 = r
        self.imm1 = imm1
        self.imm2 = imm2
        self.imm64 = imm64
        self.label = None      # jump target label, resolved at layout
        self.tslot = _TARGET_SLOT.get(self.fmt, 0)
        self.jt_label = None   # `reg = @label`: value is a jump-table address
        self.raw = None
        self.ends_block = op.ends_block if op is not None else True
        self.line = line
        self.pos = 0
        self.tn = None
        self.data = b""
        self.loc = ()          # source frames (%loc) for the debug sections


class ContainerWriter:
    """Lays out and writes what a front end collected: ``isa``, ``code``
    (_Ins records), ``labels`` (name -> basic block), ``exports``,
    ``jump_table``, ``imports``, ``ro_data``/``rw_data`` with their sizes,
    ``stack_size`` and ``data_lines`` (where each data directive was)."""

    isa: str
    code: List[_Ins]
    labels: Dict[str, int]
    exports: List[Tuple[str, str, int, int]]
    jump_table: List[Tuple[str, object, int]]
    imports: List[bytes]
    ro_data: bytes
    rw_data: bytes
    ro_data_size: int
    rw_data_size: int
    stack_size: int
    data_lines: Dict[str, int]

    def finish(self) -> bytes:
        # loaders (the reference's and ours) refuse data longer than its section
        for name in ("ro_data", "rw_data"):
            data, size = getattr(self, name), getattr(self, name + "_size")
            if len(data) > size:
                raise AsmError(f"%{name} is {len(data)} bytes, more than %{name}_size = {size}",
                               line=self.data_lines[name])
        # `reg = @label` entries follow the %jump_table ones, in code order.
        for ins in self.code:
            if ins.jt_label is not None:
                self.jump_table.append(("label", ins.jt_label, ins.line))
                ins.imm1 = (len(self.jump_table) * CODE_ADDRESS_ALIGNMENT) & M32
        self.layout()
        return self.blob()

    def block_of(self, name: str, line: int) -> int:
        try:
            return self.labels[name]
        except KeyError:
            raise AsmError(f"label is not defined: '{name}'", line=line) from None

    def layout(self) -> None:
        """Place the instructions and size the jump offsets.  Mirrors the
        reference: first guess each target's offset as if every instruction
        took one byte, then re-encode until no position or target moves (the
        result depends on the guess, hence the same guess)."""
        code = self.code
        n = len(code)
        block_start = [0]
        for i, ins in enumerate(code):
            if ins.ends_block:
                block_start.append(i + 1)
        pos = 0
        for i, ins in enumerate(code):
            if ins.label is not None:
                tn = block_start[self.block_of(ins.label, ins.line)]
                ins.tn = tn
                self.set_target(ins, (pos + tn - i) & M32)
            ins.pos = pos
            ins.data = self.encode(ins)
            pos += len(ins.data)
        while True:
            changed = False
            pos = 0
            for ins in code:
                moved = ins.pos != pos
                ins.pos = pos
                if ins.tn is not None:
                    new = code[ins.tn].pos if ins.tn < n else self.end_guess(code)
                    if self.get_target(ins) != new:
                        self.set_target(ins, new)
                        moved = True
                    if moved:
                        ins.data = self.encode(ins)
                pos += len(ins.data)
                changed |= moved
            if not changed:
                break
        self.code_len = pos
        self.block_start = block_start

    @staticmethod
    def end_guess(code: List[_Ins]) -> int:
        # a label after the last instruction points at the end of the code
        last = code[-1]
        return last.pos + len(last.data)

    @staticmethod
    def get_target(ins: _Ins) -> int:
        return ins.imm1 if ins.tslot == 1 else ins.imm2

    @staticmethod
    def set_target(ins: _Ins, value: int) -> None:
        if ins.tslot == 1:
            ins.imm1 = value
        else:
            ins.imm2 = value

    @staticmethod
    def encode(ins: _Ins) -> bytes:
        if ins.raw is not None:
            return ins.raw
        return _ENCODERS[ins.fmt](ins.byte, ins.r0, ins.r1, ins.r2, ins.imm1, ins.imm2, ins.imm64, ins.pos)

    def offset_of_block(self, block: int) -> int:
        i = self.block_start[block]
        return self.code[i].pos if i < len(self.code) else self.code_len

    def debug_regions(self) -> List[Tuple[int, int, tuple]]:
        """(first pc, end pc, %loc frames) of the code, adjacent equal
        locations merged."""
        regions: List[Tuple[int, int, tuple]] = []
        for ins in self.code:
            end = ins.pos + len(ins.data)
            if regions and regions[-1][2] == ins.loc and regions[-1][1] == ins.pos:
                regions[-1] = (regions[-1][0], end, ins.loc)
            elif end > ins.pos:
                regions.append((ins.pos, end, ins.loc))
        return regions

    def blob(self) -> bytes:
        code = b"".join(ins.data for ins in self.code)
        bits = bytearray((len(code) + 7) // 8)
        for ins in self.code:
            bits[ins.pos >> 3] |= 1 << (ins.pos & 7)

        table = []
        for kind, value, line in self.jump_table:
            table.append(self.offset_of_block(self.block_of(value, line)) if kind == "label" else value)
        entry_size = max((((t.bit_length() + 7) // 8) for t in table), default=0)

        exports = []
        for name, kind, value, line in self.exports:
            if kind == "block":
                pc = self.offset_of_block(value)
            elif kind == "insn":
                pc = self.code[value].pos if value < len(self.code) else self.code_len
            else:
                pc = value
            exports.append((name.encode("utf-8"), pc))
        exports.sort()

        out = bytearray(_BLOB_MAGIC)
        out.append(_isa.ISA_NAMES.index(self.isa))
        out += bytes(8)

        def section(sid: int, payload: bytes) -> None:
            if payload:
                out.append(sid)
                out.extend(varint(len(payload)))
                out.extend(payload)

        if self.ro_data_size or self.rw_data_size or self.stack_size:
            section(_SECTION_MEMORY_CONFIG,
                    varint(self.ro_data_size) + varint(self.rw_data_size) + varint(self.stack_size))
        section(_SECTION_RO_DATA, self.ro_data)
        section(_SECTION_RW_DATA, self.rw_data)
        if self.imports:
            offsets, symbols = bytearray(), bytearray()
            for name in self.imports:
                offsets += len(symbols).to_bytes(4, "little")
                symbols += name
            section(_SECTION_IMPORTS, varint(len(self.imports)) + bytes(offsets) + bytes(symbols))
        if exports:
            payload = bytearray(varint(len(exports)))
            for name, pc in exports:
                payload += varint(pc) + varint(len(name)) + name
            section(_SECTION_EXPORTS, bytes(payload))
        section(_SECTION_CODE_AND_JUMP_TABLE,
                varint(len(table)) + bytes((entry_size,)) + varint(len(code))
                + b"".join(t.to_bytes(entry_size, "little") for t in table) + code + bytes(bits))
        for sid, payload in zip(_SECTION_OPT_DEBUG, _asm_debug.encode_sections(self.debug_regions())):
            section(sid, payload)
        out.append(_SECTION_END_OF_FILE)
        out[5:13] = len(out).to_bytes(8, "little")
        return bytes(out)
