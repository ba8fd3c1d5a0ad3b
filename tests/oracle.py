"""An independent, pure-Python model of PVM instruction semantics.

Written from PolkaVM's interpreter (crates/polkavm/src/interpreter.rs: the
`define_interpreter!` handlers, the `Compiler` visitor that picks the 32- or
64-bit variant of an instruction, `emit_branch`, `jump_indirect_impl`,
memset/sbrk/ecalli and the dynamic-memory `load_impl`/`store_impl`),
crates/polkavm-common/src/operation.rs (div/rem/mulh) and program.rs (operand
decoding, `parse_bitmask_slow`, `is_jump_target_valid`,
`find_start_of_basic_block`, the bounded instruction iterator) -- and NOT from
vmcore's C.  Only the opcode-byte tables come from vmcore.isa (they are data,
checked against the reference by tests/test_decoder.py).

vmcore's deliberate choices (see the brief / DESIGN.md) are modelled too:
  * a faulting page below 0x10000 is a panic, not a page fault;
  * halting (a dynamic jump to 0xffff0000) reports the pc of the jump;
  * gas is charged per basic block on entry, one unit per instruction,
    including the implicit trap at the end of the code; out-of-gas leaves the
    gas unchanged and reports the block's pc;
  * `fallthrough` into the end of the code panics at the `fallthrough`,
    charging nothing more (PolkaVM 0.35; the v0.4 vector `inst_fallthrough`
    expected the implicit trap past the end to run as a block of its own).

Register values are Python ints in [0, 2**64).  In the 32-bit instruction set
registers always hold 32-bit values sign-extended to 64 bits (the reference's
internal representation; its `set_reg` canonicalises on input); results report
them as the reference's `reg` does, as their low 32 bits (see `reported`).

Layout of this module:
  * integer helpers;
  * ALU: one function per instruction.  Every function takes the same
    arguments: ``(a, b, is64, old)`` where ``a``/``b`` are the operands in the
    reference's order (register values, or an immediate already
    sign-extended to 64 bits), and ``old`` the destination's previous value
    (only cmov looks at it).  ``ALU[name]`` maps names to them, and
    ``alu_operands`` says which decoded operands feed ``a`` and ``b``;
  * a decoder for code + bitmask;
  * ``Machine``: a small interpreter using the above, with gas, guest memory
    pages, the jump table, ecalli, sbrk and memset.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

M8, M16, M32, M64 = 0xFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF
RETURN_TO_HOST = 0xFFFF0000
CODE_ADDRESS_ALIGNMENT = 2
BITMASK_MAX = 24
LOW_MEMORY_PANIC_LIMIT = 0x10000

# Two reference behaviours vmcore's C currently differs from (reported; the
# vectors follow the reference while these are True):
#  * interpreter.rs load_impl/store_impl test `address.checked_add(size)`, so
#    an access whose last byte is 0xffffffff counts as wrapping: a trap when
#    the top page is mapped, else a fault there;
#  * resolve_arbitrary_jump traps, without charging gas, when the host enters
#    at a pc find_start_of_basic_block cannot place in a block.
REFERENCE_CHECKED_ADD_WRAP = True
REFERENCE_ENTRY_NEEDS_BLOCK_START = True


# ------------------------------------------------------------ integer helpers
def sx(value: int, bits: int) -> int:
    """The low `bits` bits of value as a signed Python int."""
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def i32(v: int) -> int:
    return sx(v, 32)


def i64(v: int) -> int:
    return sx(v, 64)


def u32(v: int) -> int:
    return v & M32


def u64(v: int) -> int:
    return v & M64


def r32(v: int) -> int:
    """The reference's set_i32/set_u32: keep 32 bits, sign-extend to 64."""
    return sx(v, 32) & M64


def tdiv(a: int, b: int) -> int:
    """Rust's `/` on signed ints: truncates toward zero."""
    q = abs(a) // abs(b)
    return q if (a < 0) == (b < 0) else -q


def trem(a: int, b: int) -> int:
    return a - b * tdiv(a, b)


def rotr(v: int, n: int, bits: int) -> int:
    n %= bits
    mask = (1 << bits) - 1
    v &= mask
    return ((v >> n) | (v << (bits - n))) & mask


def rotl(v: int, n: int, bits: int) -> int:
    return rotr(v, bits - (n % bits), bits)


def clz(v: int, bits: int) -> int:
    return bits - v.bit_length()


def ctz(v: int, bits: int) -> int:
    if v == 0:
        return bits
    return (v & -v).bit_length() - 1


def bswap(v: int, nbytes: int) -> int:
    return int.from_bytes(v.to_bytes(nbytes, "little"), "big")


# ------------------------------------------------------------------------ ALU
# operation.rs
def _divu(a, b, m):
    return m if b == 0 else a // b


def _remu(a, b):
    return a if b == 0 else a % b


def _div(a, b, bits):
    if b == 0:
        return -1
    if a == -(1 << (bits - 1)) and b == -1:
        return a
    return tdiv(a, b)


def _rem(a, b, bits):
    if b == 0:
        return a
    if a == -(1 << (bits - 1)) and b == -1:
        return 0
    return trem(a, b)


ALU: Dict[str, Callable[[int, int, bool, int], int]] = {
    # ---- three registers: (s1, s2) ----
    "add_32": lambda a, b, w, o: r32(a + b),
    "add_64": lambda a, b, w, o: u64(a + b),
    "sub_32": lambda a, b, w, o: r32(a - b),
    "sub_64": lambda a, b, w, o: u64(a - b),
    "and": lambda a, b, w, o: a & b,
    "xor": lambda a, b, w, o: a ^ b,
    "or": lambda a, b, w, o: a | b,
    "mul_32": lambda a, b, w, o: r32(u32(a) * u32(b)),
    "mul_64": lambda a, b, w, o: u64(a * b),
    "mul_upper_signed_signed": lambda a, b, w, o: u64((i64(a) * i64(b)) >> 64) if w else r32((i32(a) * i32(b)) >> 32),
    "mul_upper_unsigned_unsigned": lambda a, b, w, o: u64((a * b) >> 64) if w else r32((u32(a) * u32(b)) >> 32),
    "mul_upper_signed_unsigned": lambda a, b, w, o: u64((i64(a) * b) >> 64) if w else r32((i32(a) * u32(b)) >> 32),
    "set_less_than_unsigned": lambda a, b, w, o: int(a < b),
    "set_less_than_signed": lambda a, b, w, o: int(i64(a) < i64(b)),
    "shift_logical_left_32": lambda a, b, w, o: r32(u32(a) << (b & 31)),
    "shift_logical_left_64": lambda a, b, w, o: u64(a << (b & 63)),
    "shift_logical_right_32": lambda a, b, w, o: r32(u32(a) >> (b & 31)),
    "shift_logical_right_64": lambda a, b, w, o: a >> (b & 63),
    "shift_arithmetic_right_32": lambda a, b, w, o: r32(i32(a) >> (b & 31)),
    "shift_arithmetic_right_64": lambda a, b, w, o: u64(i64(a) >> (b & 63)),
    "div_unsigned_32": lambda a, b, w, o: r32(_divu(u32(a), u32(b), M32)),
    "div_unsigned_64": lambda a, b, w, o: _divu(a, b, M64),
    "div_signed_32": lambda a, b, w, o: r32(_div(i32(a), i32(b), 32)),
    "div_signed_64": lambda a, b, w, o: u64(_div(i64(a), i64(b), 64)),
    "rem_unsigned_32": lambda a, b, w, o: r32(_remu(u32(a), u32(b))),
    "rem_unsigned_64": lambda a, b, w, o: _remu(a, b),
    "rem_signed_32": lambda a, b, w, o: r32(_rem(i32(a), i32(b), 32)),
    "rem_signed_64": lambda a, b, w, o: u64(_rem(i64(a), i64(b), 64)),
    "cmov_if_zero": lambda a, b, w, o: a if b == 0 else o,          # (s, c)
    "cmov_if_not_zero": lambda a, b, w, o: a if b != 0 else o,      # (s, c)
    "and_inverted": lambda a, b, w, o: u64(a & ~b) if w else r32(u32(a) & ~u32(b)),
    "or_inverted": lambda a, b, w, o: u64(a | ~b) if w else r32(u32(a) | (~u32(b) & M32)),
    "xnor": lambda a, b, w, o: u64(~(a ^ b)) if w else r32(~(u32(a) ^ u32(b))),
    "maximum": lambda a, b, w, o: u64(max(i64(a), i64(b))) if w else r32(max(i32(a), i32(b))),
    "maximum_unsigned": lambda a, b, w, o: max(a, b) if w else r32(max(u32(a), u32(b))),
    "minimum": lambda a, b, w, o: u64(min(i64(a), i64(b))) if w else r32(min(i32(a), i32(b))),
    "minimum_unsigned": lambda a, b, w, o: min(a, b) if w else r32(min(u32(a), u32(b))),
    "rotate_left_32": lambda a, b, w, o: r32(rotl(u32(a), u32(b), 32)),
    "rotate_left_64": lambda a, b, w, o: rotl(a, u32(b), 64),
    "rotate_right_32": lambda a, b, w, o: r32(rotr(u32(a), u32(b), 32)),
    "rotate_right_64": lambda a, b, w, o: rotr(a, u32(b), 64),
    # ---- two registers and an immediate: (register, imm) ----
    "set_greater_than_unsigned_imm": lambda a, b, w, o: int(a > b),
    "set_greater_than_signed_imm": lambda a, b, w, o: int(i64(a) > i64(b)),
    "negate_and_add_imm_32": lambda a, b, w, o: r32(b - a),
    "negate_and_add_imm_64": lambda a, b, w, o: u64(b - a),
    # the _alt forms shift/rotate the immediate by the register: (register, imm) still
    "shift_logical_right_imm_alt_32": lambda a, b, w, o: r32(u32(b) >> (a & 31)),
    "shift_logical_right_imm_alt_64": lambda a, b, w, o: b >> (a & 63),
    "shift_arithmetic_right_imm_alt_32": lambda a, b, w, o: r32(i32(b) >> (a & 31)),
    "shift_arithmetic_right_imm_alt_64": lambda a, b, w, o: u64(i64(b) >> (a & 63)),
    "shift_logical_left_imm_alt_32": lambda a, b, w, o: r32(u32(b) << (a & 31)),
    "shift_logical_left_imm_alt_64": lambda a, b, w, o: u64(b << (a & 63)),
    "cmov_if_zero_imm": lambda a, b, w, o: b if a == 0 else o,      # (c, imm)
    "cmov_if_not_zero_imm": lambda a, b, w, o: b if a != 0 else o,  # (c, imm)
    "rotate_right_imm_alt_32": lambda a, b, w, o: r32(rotr(u32(b), u32(a), 32)),
    "rotate_right_imm_alt_64": lambda a, b, w, o: rotr(b, u32(a), 64),
    # ---- two registers: (s, unused) ----
    "move_reg": lambda a, b, w, o: a,
    "count_leading_zero_bits_32": lambda a, b, w, o: r32(clz(u32(a), 32)),
    "count_leading_zero_bits_64": lambda a, b, w, o: clz(a, 64),
    "count_trailing_zero_bits_32": lambda a, b, w, o: r32(ctz(u32(a), 32)),
    "count_trailing_zero_bits_64": lambda a, b, w, o: ctz(a, 64),
    "count_set_bits_32": lambda a, b, w, o: r32(bin(u32(a)).count("1")),
    "count_set_bits_64": lambda a, b, w, o: bin(a).count("1"),
    "sign_extend_8": lambda a, b, w, o: u64(sx(a, 8)) if w else r32(sx(a, 8)),
    "sign_extend_16": lambda a, b, w, o: u64(sx(a, 16)) if w else r32(sx(a, 16)),
    "zero_extend_16": lambda a, b, w, o: a & M16 if w else r32(a & M16),
    "reverse_byte": lambda a, b, w, o: bswap(a, 8) if w else r32(bswap(u32(a), 4)),
    # ---- one register and an immediate ----
    "load_imm": lambda a, b, w, o: b,
    "load_imm64": lambda a, b, w, o: b,
}
# The immediate forms computing what the register form does, on (register, imm).
ALU.update({imm: ALU[reg] for imm, reg in (
    ("add_imm_32", "add_32"), ("add_imm_64", "add_64"), ("and_imm", "and"), ("xor_imm", "xor"), ("or_imm", "or"),
    ("mul_imm_32", "mul_32"), ("mul_imm_64", "mul_64"), ("set_less_than_unsigned_imm", "set_less_than_unsigned"),
    ("set_less_than_signed_imm", "set_less_than_signed"), ("shift_logical_left_imm_32", "shift_logical_left_32"),
    ("shift_logical_left_imm_64", "shift_logical_left_64"),
    ("shift_logical_right_imm_32", "shift_logical_right_32"),
    ("shift_logical_right_imm_64", "shift_logical_right_64"),
    ("shift_arithmetic_right_imm_32", "shift_arithmetic_right_32"),
    ("shift_arithmetic_right_imm_64", "shift_arithmetic_right_64"), ("rotate_right_imm_32", "rotate_right_32"),
    ("rotate_right_imm_64", "rotate_right_64"),
)})


# ------------------------------------------------------------- instructions
# Typed from the reference (Opcode::starts_new_basic_block / can_fallthrough).
NO_FALLTHROUGH = frozenset({"trap", "jump", "jump_indirect", "load_imm_and_jump", "load_imm_and_jump_indirect"})
_COMPARISONS = {  # condition: (signed?, comparison)
    "eq": (False, operator.eq), "not_eq": (False, operator.ne),
    "less_unsigned": (False, operator.lt), "less_signed": (True, operator.lt),
    "greater_or_equal_unsigned": (False, operator.ge), "greater_or_equal_signed": (True, operator.ge),
    "less_or_equal_unsigned": (False, operator.le), "less_or_equal_signed": (True, operator.le),
    "greater_unsigned": (False, operator.gt), "greater_signed": (True, operator.gt),
}
# name: (signed?, comparison); register-register branches exist for the
# first six conditions only (the others are the same with swapped operands)
BRANCHES = {
    **{f"branch_{c}": _COMPARISONS[c] for c in list(_COMPARISONS)[:6]},
    **{f"branch_{c}_imm": v for c, v in _COMPARISONS.items()},
}
STARTS_BLOCK = NO_FALLTHROUGH | frozenset(BRANCHES) | {"fallthrough", "invalid"}

# loads/stores: name -> (bytes, signed load?)
LOADS = {
    "u8": (1, False), "i8": (1, True), "u16": (2, False), "i16": (2, True),
    "u32": (4, False), "i32": (4, True), "u64": (8, False),
}


def can_fallthrough(name: str) -> bool:
    return name not in NO_FALLTHROUGH and name != "invalid"


def ends_block(name: str) -> bool:
    return name in STARTS_BLOCK


@dataclass
class Insn:
    name: str          # "invalid" for undefined bytes and implicit traps
    fmt: str
    pc: int
    next: int          # pc + 1 + skip
    ops: Tuple[int, ...] = ()   # operands in the reference's order; immediates as signed ints
    next_invalid: bool = False


def _reg(nibble: int) -> int:
    nibble &= 15
    return 12 if nibble > 12 else nibble


def _simm(data: bytes, offset: int, length: int) -> int:
    """`length` little-endian bytes at data[offset:], sign-extended (0 bytes = 0)."""
    if length == 0:
        return 0
    return sx(int.from_bytes(data[offset:offset + length], "little"), 8 * length)


class Code:
    """Code + bitmask + jump table for one instruction set."""

    _tables: Dict[str, Tuple[bool, Dict[int, Tuple[str, str]]]] = {}

    def __init__(self, isa: str, code: bytes, bitmask: bytes, jump_table: List[int]):
        if isa not in Code._tables:
            from vmcore import isa as _isa  # opcode byte tables only

            Code._tables[isa] = (_isa.is_64_bit(isa),
                                 {b: (o.name, o.format.upper()) for b, o in _isa.opcode_table(isa).items()})
        self.isa = isa
        self.is64, self.table = Code._tables[isa]
        self.code = bytes(code)
        self.bitmask = bytes(bitmask)
        self.jump_table = list(jump_table)
        self._decoded: Dict[int, Insn] = {}
        self._blocks: Dict[int, int] = {}

    # program.rs: get_bit_for_offset
    def bit(self, offset: int) -> bool:
        if offset < 0 or offset >= len(self.code):
            return False
        return bool((self.bitmask[offset >> 3] >> (offset & 7)) & 1)

    def opcode_name(self, offset: int) -> str:
        entry = self.table.get(self.code[offset])
        return entry[0] if entry else "invalid"

    # program.rs: parse_bitmask_slow
    def skip(self, offset: int) -> Tuple[int, bool]:
        n = len(self.code)
        for nxt in range(offset + 1, min(n, offset + 2 + BITMASK_MAX)):
            if self.bit(nxt):
                return nxt - offset - 1, False
        return min(n - offset - 1, BITMASK_MAX), True

    def decode(self, pc: int) -> Insn:
        """The instruction the reference's bounded iterator yields at `pc`."""
        ins = self._decoded.get(pc)
        if ins is None:
            ins = self._decoded[pc] = self._decode(pc)
        return ins

    def _decode(self, pc: int) -> Insn:
        if not self.bit(pc):
            return Insn("invalid", "ARGLESS", pc, pc + 1)
        skip, next_invalid = self.skip(pc)
        byte = self.code[pc]
        name, fmt = self.table.get(byte, ("invalid", "ARGLESS"))
        if next_invalid and pc + skip + 1 >= len(self.code) and not can_fallthrough(name):
            next_invalid = False
        c = self.code[pc + 1:pc + 17].ljust(16, b"\0")
        ops: Tuple[int, ...] = ()
        clamp = lambda v: max(0, min(4, v))
        if fmt == "REG_IMM":
            ops = (_reg(c[0]), _simm(c, 1, clamp(skip - 1)))
        elif fmt in ("REG_IMM_OFFSET", "REG_IMM_IMM"):
            l1 = min(4, (c[0] >> 4) & 7)
            l2 = clamp(skip - l1 - 1)
            imm2 = _simm(c, 1 + l1, l2)
            if fmt == "REG_IMM_OFFSET":
                imm2 = (pc + imm2) & M32
            ops = (_reg(c[0]), _simm(c, 1, l1), imm2)
        elif fmt in ("REG_REG_IMM", "REG_REG_OFFSET"):
            imm = _simm(c, 1, clamp(skip - 1))
            if fmt == "REG_REG_OFFSET":
                imm = (pc + imm) & M32
            ops = (_reg(c[0]), _reg(c[0] >> 4), imm)
        elif fmt == "REG_REG_REG":
            ops = (_reg(c[1]), _reg(c[0]), _reg(c[0] >> 4))
        elif fmt == "OFFSET":
            ops = ((pc + _simm(c, 0, min(4, skip))) & M32,)
        elif fmt == "IMM":
            ops = (_simm(c, 0, min(4, skip)),)
        elif fmt == "IMM_IMM":
            l1 = min(4, c[0] & 7)
            ops = (_simm(c, 1, l1), _simm(c, 1 + l1, clamp(skip - l1 - 1)))
        elif fmt == "REG_REG":
            ops = (_reg(c[0]), _reg(c[0] >> 4))
        elif fmt == "REG_REG_IMM_IMM":
            l1 = min(4, c[1] & 7)
            ops = (_reg(c[0]), _reg(c[0] >> 4), _simm(c, 2, l1), _simm(c, 2 + l1, clamp(skip - l1 - 2)))
        elif fmt == "REG_IMM64":
            ops = (_reg(c[0]), int.from_bytes(c[1:9], "little"))
        return Insn(name, fmt, pc, pc + skip + 1, ops, next_invalid)

    # program.rs: get_previous_instruction_skip + is_jump_target_valid
    def previous_start(self, offset: int) -> Optional[int]:
        reach = BITMASK_MAX + (1 if offset & 7 else 0)
        for k in range(1, reach + 1):
            if offset - k < 0:
                return None
            if (self.bitmask[(offset - k) >> 3] >> ((offset - k) & 7)) & 1:
                return offset - k
        return None

    def is_jump_target_valid(self, offset: int) -> bool:
        if not self.bit(offset):
            return False
        if offset == 0:
            return True
        prev = self.previous_start(offset)
        if prev is None:
            return False
        name = self.opcode_name(prev)
        return name != "invalid" and ends_block(name)

    # program.rs: find_start_of_basic_block
    def find_start_of_basic_block(self, offset: int) -> Optional[int]:
        if not self.bit(offset):
            return None
        while offset != 0:
            prev = self.previous_start(offset)
            if prev is None:
                return None
            name = self.opcode_name(prev)
            if name == "invalid" or ends_block(name):
                return offset
            offset = prev
        return 0

    def validate(self) -> Optional[int]:
        """Where `validate_code_with_isa` (program.rs; the reference requires
        it of jam_v1 code) finds the first `invalid` of the bounded
        instruction stream from 0, or None when the code is clean."""
        if not self.bit(0):
            return 0
        pc = 0
        while pc < len(self.code):
            ins = self.decode(pc)
            if ins.name == "invalid":
                return pc
            if ins.next_invalid:
                return ins.next if can_fallthrough(ins.name) else None
            pc = ins.next
        return None

    def block_cost(self, start: int) -> int:
        cost = self._blocks.get(start)
        if cost is None:
            cost = self._blocks[start] = len(self.block(start))
        return cost

    def block(self, start: int) -> List[Insn]:
        """The instructions of the basic block entered at `start`."""
        out = []
        pc = start
        while True:
            ins = self.decode(pc)
            out.append(ins)
            if ends_block(ins.name):
                return out
            pc = ins.next


# ------------------------------------------------------------------- machine
@dataclass
class Page:
    writable: bool
    data: bytearray


@dataclass
class Heap:
    top: int = 0
    max_top: int = 0


@dataclass
class Result:
    status: str                     # halt panic page-fault out-of-gas host
    pc: int
    gas: int
    regs: List[int]
    fault: Optional[int] = None
    hostcall: Optional[int] = None


class _Stop(Exception):
    def __init__(self, status, pc, fault=None, hostcall=None):
        self.status, self.pc, self.fault, self.hostcall = status, pc, fault, hostcall


class Machine:
    """Runs a program the way the reference does (plus vmcore's choices)."""

    def __init__(self, code: Code, regs: List[int], gas: int, *, page_size: int = 4096,
                 pages: Optional[Dict[int, Page]] = None, heap: Optional[Heap] = None, gas_metering: bool = True):
        self.code = code
        self.is64 = code.is64
        self.regs = [canonical(v, self.is64) for v in regs]
        self.gas = gas
        self.page_size = page_size
        self.pages: Dict[int, Page] = pages if pages is not None else {}
        self.heap = heap or Heap()
        self.metering = gas_metering
        self.pc = 0
        self._resume: Optional[int] = None  # continue here without charging (after ecalli)
        self.steps = 0
        self.trace: Optional[List[int]] = None  # set to a list to record each instruction's pc

    # ---- memory (interpreter.rs: DynamicMemory::load_impl / store_impl) ----
    def map(self, address: int, length: int, writable: bool):
        if length == 0:
            return
        p = address - address % self.page_size
        while p < address + length and p < 1 << 32:
            self.pages[p] = Page(writable, bytearray(self.page_size))
            p += self.page_size

    def poke(self, address: int, data: bytes):
        for i, b in enumerate(data):
            a = address + i
            self.pages[a - a % self.page_size].data[a % self.page_size] = b

    def _page(self, address: int) -> int:
        return address - address % self.page_size

    def _check(self, address: int, length: int, write: bool):
        """None when the access is allowed, else raises _Stop."""
        if address + length > (M32 if REFERENCE_CHECKED_ADD_WRAP else M32 + 1):
            # checked_add overflowed: the top page decides trap vs fault
            top = self._page(M32)
            if top in self.pages:
                raise _Stop("panic", self.pc)
            fault = top
        else:
            lo, hi = self._page(address), self._page(address + length - 1)
            plo, phi = self.pages.get(lo), self.pages.get(hi)
            if plo is None:
                fault = lo
            elif phi is None:
                fault = hi
            elif write and not plo.writable:
                fault = lo
            elif write and not phi.writable:
                fault = hi
            else:
                return
        if fault < LOW_MEMORY_PANIC_LIMIT:
            raise _Stop("panic", self.pc)
        raise _Stop("page-fault", self.pc, fault=fault)

    def load(self, address: int, length: int) -> bytes:
        self._check(address, length, False)
        return bytes(self.pages[self._page(a)].data[a % self.page_size] for a in range(address, address + length))

    def store(self, address: int, data: bytes):
        self._check(address, len(data), True)
        self.poke(address, data)

    # ---- helpers ----
    def _set(self, reg: int, value: int):
        self.regs[reg] = value & M64
        assert self.is64 or self.regs[reg] == r32(value), "32-bit register invariant"

    def _imm(self, v: int) -> int:
        return v & M64  # an i32 immediate sign-extended to 64 bits

    def _charge(self, start: int):
        if not self.metering:
            return
        cost = self.code.block_cost(start)
        if self.gas - cost < 0:
            raise _Stop("out-of-gas", start)
        self.gas -= cost

    def _dynamic_jump(self, address: int) -> int:
        """jump_indirect_impl: the target pc, or raises."""
        address &= M32
        if address == RETURN_TO_HOST:
            raise _Stop("halt", self.pc)
        if address == 0 or address % CODE_ADDRESS_ALIGNMENT:
            raise _Stop("panic", self.pc)
        index = address // CODE_ADDRESS_ALIGNMENT - 1
        if index >= len(self.code.jump_table):
            raise _Stop("panic", self.pc)
        target = self.code.jump_table[index]
        if not self.code.is_jump_target_valid(target):
            raise _Stop("panic", self.pc)
        return target

    # ---- running ----
    def start(self, pc: int) -> Optional[Result]:
        """Enter at `pc` as the host does (resolve_arbitrary_jump); returns a
        Result when the entry itself fails."""
        self.pc = pc
        start = self.code.find_start_of_basic_block(pc)
        if start is None and not REFERENCE_ENTRY_NEEDS_BLOCK_START and pc < len(self.code.code):
            start = self._block_of(pc)
        if start is None:
            return self._result(_Stop("panic", pc))
        if start != pc and self.metering:
            cost = self.code.block_cost(start)
            if cost > self.gas:
                return self._result(_Stop("out-of-gas", pc))
            self.gas -= cost
            self._resume = pc
        else:
            self._resume = None
        return None

    def _block_of(self, pc: int) -> Optional[int]:
        """vmcore's alternative entry rule: the block that a linear walk from
        0 (implicit traps included, resuming at the next marked byte after
        each) puts `pc` in."""
        code, n = self.code, len(self.code.code)
        nxt_marked = lambda p: next((q for q in range(p, n) if code.bit(q)), n)
        pending = None if code.bit(0) else 0
        at, block_start, open_ = 0, 0, False
        while pending is not None or at < n:
            cur = pending if pending is not None else at
            ins = code.decode(cur)  # an unmarked pc decodes as `invalid`
            if not open_:
                block_start, open_ = cur, True
            if cur == pc:
                return block_start
            if ends_block(ins.name):
                open_ = False
            if pending is not None:
                pending, at = None, nxt_marked(cur + 1)
                continue
            at = ins.next
            if ins.next_invalid:
                pending = ins.next
        return None

    def run(self, max_steps: int = 1_000_000) -> Result:
        pc = self.pc
        charged = self._resume is not None
        self._resume = None
        try:
            while True:
                self.pc = pc
                if self.trace is not None:
                    self.trace.append(pc)
                if not charged:
                    self._charge(pc)
                    charged = True
                ins = self.code.decode(pc)
                self.steps += 1
                if self.steps > max_steps:
                    raise RuntimeError("oracle: step limit")
                nxt = self._execute(ins)
                if ends_block(ins.name):
                    charged = False
                pc = nxt
        except _Stop as stop:
            return self._result(stop)

    def _result(self, stop: _Stop) -> Result:
        self.pc = stop.pc
        return Result(stop.status, stop.pc, self.gas, [reported(v, self.is64) for v in self.regs], stop.fault,
                      stop.hostcall)

    def resume_after_host(self, next_pc: int) -> Result:
        self.pc = next_pc
        self._resume = next_pc
        return self.run()

    def _execute(self, ins: Insn) -> int:
        """Executes one instruction; returns the next pc."""
        name, ops, regs = ins.name, ins.ops, self.regs
        code = self.code
        if name in ("invalid", "trap"):
            raise _Stop("panic", ins.pc)
        if name == "fallthrough":
            if ins.next >= len(code.code):  # PolkaVM 0.35: a panic at the fallthrough, nothing more charged
                raise _Stop("panic", ins.pc)
            return ins.next
        if name == "unlikely":
            return ins.next
        if name == "jump":
            if not code.is_jump_target_valid(ops[0]):
                raise _Stop("panic", ins.pc)
            return ops[0]
        if name == "jump_indirect":
            return self._dynamic_jump(regs[ops[0]] + ops[1])
        if name == "load_imm_and_jump":
            self._set(ops[0], self._imm(ops[1]))
            if not code.is_jump_target_valid(ops[2]):
                raise _Stop("panic", ins.pc)
            return ops[2]
        if name == "load_imm_and_jump_indirect":
            ra, base, value, offset = ops
            address = regs[base] + offset  # read before ra is written
            self._set(ra, self._imm(value))
            return self._dynamic_jump(address)
        if name in BRANCHES:
            signed, cmp = BRANCHES[name]
            target = ops[2]
            if not (code.is_jump_target_valid(target) and code.is_jump_target_valid(ins.next)):
                raise _Stop("panic", ins.pc)
            a = regs[ops[0]]
            b = regs[ops[1]] if ins.fmt == "REG_REG_OFFSET" else self._imm(ops[1])
            if signed:
                a, b = i64(a), i64(b)
            return target if cmp(a, b) else ins.next
        if name == "ecalli":
            raise _Stop("host", ins.pc, hostcall=ops[0] & M32)
        if name == "sbrk":
            self._sbrk(ops[0], regs[ops[1]])
            return ins.next
        if name == "memset":
            self._memset(ins)
            return ins.next
        # loads and stores
        kind, _, width = name.rpartition("_")
        if kind in ("load", "load_indirect") and width in LOADS:
            size, signed = LOADS[width]
            address = (regs[ops[1]] + ops[2]) if kind == "load_indirect" else ops[1]
            data = self.load(address & M32, size)
            value = int.from_bytes(data, "little")
            self._set(ops[0], sx(value, 8 * size) if signed else value)
            return ins.next
        if kind in ("store", "store_indirect", "store_imm", "store_imm_indirect") and width in LOADS:
            size = LOADS[width][0]
            if kind == "store":
                value, address = regs[ops[0]], ops[1]
            elif kind == "store_indirect":
                value, address = regs[ops[0]], regs[ops[1]] + ops[2]
            elif kind == "store_imm":
                address, value = ops
            else:
                address, value = regs[ops[0]] + ops[1], ops[2]
            self.store(address & M32, (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little"))
            return ins.next
        # ALU
        d, a, b = alu_operands(ins, regs)
        self._set(d, ALU[name](a, b, self.is64, regs[d]))
        return ins.next

    def _sbrk(self, dst: int, size_value: int):
        """interpreter.rs `sbrk`: the size is the register's u32 value (in
        64-bit mode, 0 when it does not fit); the result is the new heap top
        or 0 when it would pass the maximum."""
        if self.is64:
            size = size_value if size_value <= M32 else 0
        else:
            size = size_value & M32
        new_top = self.heap.top + size
        if new_top > self.heap.max_top:
            result = 0
        else:
            self.heap.top = new_top
            result = new_top
        self._set(dst, r32(result))

    def _memset(self, ins: Insn):
        """interpreter.rs `memset`: a0 = destination, a1 = byte, a2 = count;
        one gas per byte; stops (resumably) on out-of-gas or a fault with
        a0/a2 describing the progress."""
        a0 = self.regs[7]
        value = self.regs[8] & M8
        dst = a0 & M32
        count = self.regs[9] & M32
        stop = None
        while count > 0:
            if self.metering and self.gas == 0:
                stop = _Stop("out-of-gas", ins.pc)
                break
            try:
                self.store(dst, bytes([value]))
            except _Stop as s:
                stop = s
                break
            if self.metering:
                self.gas -= 1
            dst = (dst + 1) & M32
            count -= 1
        self.regs[7] = u64(a0 + ((dst - a0) & M32))
        self.regs[9] = count
        if stop is not None:
            raise stop


def alu_operands(ins: Insn, regs: List[int]) -> Tuple[int, int, int]:
    """(destination register, a, b) of an ALU instruction."""
    fmt, ops = ins.fmt, ins.ops
    if fmt == "REG_REG_REG":
        d, s1, s2 = ops
        return d, regs[s1], regs[s2]
    if fmt == "REG_REG_IMM":
        d, s, imm = ops
        return d, regs[s], imm & M64
    if fmt == "REG_REG":
        d, s = ops
        return d, regs[s], 0
    if fmt == "REG_IMM":
        d, imm = ops
        return d, 0, imm & M64
    if fmt == "REG_IMM64":
        d, imm = ops
        return d, 0, imm
    raise ValueError(f"not an ALU instruction: {ins.name}")


def canonical(value: int, is64: bool) -> int:
    """A register value as the reference stores it (set_reg)."""
    return value & M64 if is64 else r32(value)


def reported(value: int, is64: bool) -> int:
    """A register value as the reference reports it (reg): a 32-bit
    program's as its low 32 bits (vm_reg_to_host)."""
    return value & M64 if is64 else value & M32


def apply(name: str, a: int, b: int, is64: bool, old: int = 0) -> int:
    """One ALU instruction on operand values (see ALU)."""
    return ALU[name](a & M64, b & M64, is64, old & M64)
