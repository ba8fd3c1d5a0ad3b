"""The fuzzer's cases: each case's random stream (a function of the seed,
the target and the case number only), what a failing case reports
(:class:`Failure`), and random valid programs of every instruction set
with their initial state (:func:`generate_vector`, a JAM-schema vector
without the expected-* fields), used by the ``diff`` and ``reference``
targets.  Independent of tests/."""
from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

from vmcore import abi, isa as _isa
from vmcore.asm import encode_instruction, varint
from vmcore.errors import ProgramError
from vmcore.program import Program

M32, M64 = 0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF
HALT = abi.RETURN_TO_HOST
PAGE = abi.MIN_PAGE_SIZE


def case_rng(seed: int, target: str, index: int) -> random.Random:
    """The random stream of one case: a function of (seed, target, index) only."""
    digest = hashlib.sha256(f"vmcore-fuzz:{seed}:{target}:{index}".encode()).digest()
    return random.Random(int.from_bytes(digest[:16], "little"))


@dataclass
class Failure:
    target: str
    case: int
    kind: str                 # "exception", "mismatch", "crash", "hang"
    summary: str              # one line
    details: str = ""
    artifact: Any = None      # bytes (loader) or a vector dict (diff)
    seed: int = 0
    path: Optional[str] = None


# =====================================================================
# Program generation (independent of tests/): instructions of any ISA
# =====================================================================

_TARGET_SLOT = {"reg_imm_offset": 2, "reg_reg_offset": 1, "offset": 1}
EDGE64 = [0, 1, 2, 7, 31, 32, 33, 63, 64, 65, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF, 0x7FFFFFFF, 0x80000000,
          0xFFFFFFFF, 0x100000000, 0x100000005, 0x7FFFFFFFFFFFFFFF, 0x8000000000000000, 0xFFFFFFFF80000000,
          M64, M64 - 6, 0x123456789ABCDEF0, 0x180000000, 0xFFFFFFFF7FFFFFFF]
EDGE_IMM = [0, 1, -1, 2, -2, 7, -7, 31, 32, 33, 63, 64, 65, 0x7F, 0x80, -0x80, -0x81, 0x7FFF, 0x8000, -0x8000,
            0x123456, 0x7FFFFFFF, -0x80000000, 0x12345678, -0x10000]
PAGE_CANDIDATES = [0x10000, 0x11000, 0x12000, 0x20000, 0x21000, 0x7FFFF000, 0x80000000, 0xFFFEF000, 0xFFFFF000,
                   0xF000, 0x0]


def _canonical(value: int, is64: bool) -> int:
    """A register value as programs (and vectors) see it: 32 bits for a
    32-bit ISA (the engines keep it sign-extended inside; see
    vm_reg_from_host in include/vmcore/interp.h)."""
    return value & (M64 if is64 else M32)


class _Ctx:
    """What one program's random operands are drawn from: edge values, the
    mapped pages (so memory accesses often succeed), jump-table addresses.
    A few "base" registers start out holding mapped addresses and are
    rarely overwritten, so indirect accesses through them reach memory."""

    def __init__(self, rng: random.Random, isa: str, pages: Sequence[Tuple[int, int, bool]]):
        self.rng = rng
        self.isa = isa
        self.is64 = _isa.is_64_bit(isa)
        self.ops = [o for o in _isa.OPCODES if o.byte_for(isa) is not None]
        self.plain = [o for o in self.ops if not o.ends_block]
        self.enders = [o for o in self.ops if o.ends_block]
        self.pages = list(pages)
        self.wild = [0x100, 0xFFFF, 0x10000 - 4, M32, M32 - 3, M32 - 7, 0x30000, 0x80000123, HALT]
        self.jump_slots = 4
        self.base_regs = rng.sample(range(abi.REG_COUNT), 2)
        # "tame" programs avoid most ways of stopping early, so they run
        # longer (loops until the gas runs out)
        self.tame = bool(self.pages) and rng.random() < 0.4
        self.tame_enders = [o for o in self.enders
                            if o.name not in ("trap", "jump_indirect", "load_imm_and_jump_indirect")]

    def address(self, write: bool = False) -> int:
        rng = self.rng
        if self.pages and (self.tame or rng.random() < 0.92):
            pages = [p for p in self.pages if p[2]] if write and (self.tame or rng.random() < 0.9) else []
            address, length, _ = rng.choice(pages or self.pages)
            r = rng.random()
            if r < 0.7 or self.tame:
                delta = rng.randrange(0, max(1, length - 8))
            else:
                delta = rng.choice([0, length - 1, length - 2, length - 4, length - 8, length, -1, -4])
            return (address + delta) & M32
        return rng.choice(self.wild)

    def imm(self) -> int:
        rng = self.rng
        r = rng.random()
        if r < 0.3:
            return rng.choice(EDGE_IMM)
        if r < 0.55:
            return rng.randrange(-16, 64)
        if r < 0.8:
            return self.address()
        return rng.getrandbits(32)

    def reg_value(self, index: int = -1) -> int:
        rng = self.rng
        r = rng.random()
        if index in self.base_regs and r < 0.9:
            v = self.address(write=True) - rng.randrange(0, 8)
        elif r < 0.3:
            v = rng.choice(EDGE64)
        elif r < 0.5:
            v = self.address()
        elif r < 0.58:
            v = HALT
        elif r < 0.66:
            v = 2 * rng.randrange(0, self.jump_slots + 2)
        elif r < 0.85:
            v = rng.randrange(0, 100)
        else:
            v = rng.getrandbits(64)
        return _canonical(v, self.is64)

    def reg(self) -> int:
        # now and then a nibble above 12 (the decoder clamps it to 12)
        return self.rng.randrange(16) if self.rng.random() < 0.03 else self.rng.randrange(abi.REG_COUNT)

    def dest(self) -> int:
        r = self.reg()
        while r in self.base_regs and (self.tame or self.rng.random() < 0.85):
            r = self.reg()
        return r


_INDIRECT = ("load_indirect", "store_indirect", "store_imm_indirect", "jump_indirect", "load_imm_and_jump_indirect")


def _instruction(ctx: _Ctx, op, nblocks: int) -> tuple:
    """("insn", name, regs, imm1, imm2, imm64, target) with random operands;
    target is ("block", k), ("abs", pc) or None."""
    rng = ctx.rng
    name, fmt = op.name, op.format
    regs = [ctx.reg(), ctx.reg(), ctx.reg()]
    if not name.startswith(("store", "branch")):
        regs[0] = ctx.dest()
    imm1, imm2 = ctx.imm(), ctx.imm()
    if name == "ecalli":
        imm1 = rng.randrange(0, 8) if rng.random() < 0.8 else rng.getrandbits(32)
    if name.startswith(_INDIRECT) and (ctx.tame or rng.random() < 0.9):
        # through a base register, most often with a small offset
        base = 0 if fmt in ("reg_imm_imm", "reg_imm") else 1
        regs[base] = rng.choice(ctx.base_regs)
        if name.startswith(("load_indirect", "store_indirect", "store_imm_indirect")):
            if ctx.tame:
                imm1 = rng.randrange(0, 8)
            elif rng.random() < 0.8:
                imm1 = rng.randrange(-8, 16)
    elif name.startswith(("load_", "store_")) and fmt in ("reg_imm", "imm_imm") and (ctx.tame or rng.random() < 0.9):
        imm1 = ctx.address(write=name.startswith("store"))
    imm64 = rng.choice(EDGE64) if rng.random() < 0.5 else rng.getrandbits(64)
    target = None
    if fmt in _TARGET_SLOT:
        if ctx.tame:
            target = ("block", rng.randrange(nblocks))
        elif rng.random() < 0.92:
            target = ("block", rng.randrange(nblocks + 1))
        else:
            target = ("abs", rng.randrange(0, 64))
    return ("insn", name, tuple(regs), imm1 & M32, imm2 & M32, imm64, target)


def _assemble(isa: str, items: List[tuple]) -> Tuple[bytes, List[int], Dict[int, int]]:
    """Encode items (instructions, raw bytes, labels), iterating until the
    labels stop moving; returns code, instruction starts and labels."""
    labels: Dict[int, int] = {}
    code, starts = b"", []
    for _ in range(16):
        pos, out, starts, new = 0, bytearray(), [], {}
        for item in items:
            if item[0] == "label":
                new[item[1]] = pos
                continue
            if item[0] == "raw":
                starts.append(pos)
                out += item[1]
                pos += len(item[1])
                continue
            _, name, regs, imm1, imm2, imm64, target = item
            if target is not None:
                t = labels.get(target[1], 0) if target[0] == "block" else target[1]
                if _TARGET_SLOT[_isa.BY_NAME[name].format] == 1:
                    imm1 = t
                else:
                    imm2 = t
            data = encode_instruction(isa, name, regs, imm1, imm2, imm64, position=pos)
            starts.append(pos)
            out += data
            pos += len(data)
        code = bytes(out)
        if new == labels:
            break
        labels = new
    return code, starts, labels


def _bitmask(code_len: int, starts: Sequence[int]) -> bytearray:
    mask = bytearray((code_len + 7) // 8)
    for s in starts:
        if 0 <= s < code_len:
            mask[s >> 3] |= 1 << (s & 7)
    return mask


def code_blob(code: bytes, bitmask: bytes, jump_table: Sequence[int], entry_size: Optional[int] = None) -> bytes:
    """A JAM code blob: E(|jump table|) entry size E(|code|) table code bitmask."""
    if entry_size is None:
        entry_size = max(((t.bit_length() + 7) // 8 for t in jump_table), default=0)
        if jump_table:
            entry_size = max(entry_size, 1)
    table = b"".join((t & ((1 << (8 * entry_size)) - 1)).to_bytes(entry_size, "little") for t in jump_table)
    return varint(len(jump_table)) + bytes([entry_size]) + varint(len(code)) + table + bytes(code) + bytes(bitmask)


def random_code(rng: random.Random, isa: str, ctx: Optional[_Ctx] = None, *, garbage: float = 0.1
                ) -> Tuple[bytes, bytes, List[int]]:
    """A random program of basic blocks: (code, bitmask, jump table)."""
    ctx = ctx or _Ctx(rng, isa, [(0x20000, PAGE, True)])
    nblocks = rng.randint(1, 10)
    items: List[tuple] = []
    for b in range(nblocks):
        items.append(("label", b))
        for _ in range(rng.randrange(0, 8)):
            r = rng.random()
            if r < garbage * 0.3 and not ctx.tame:
                # an arbitrary byte string where an instruction starts
                items.append(("raw", bytes([rng.randrange(256)]) + rng.randbytes(rng.randrange(0, 6))))
            else:
                op = rng.choice(ctx.plain)
                while ctx.tame and op.name == "ecalli" and rng.random() < 0.9:
                    op = rng.choice(ctx.plain)
                items.append(_instruction(ctx, op, nblocks))
        r = rng.random()
        reg = ctx.dest()
        if ctx.tame:
            if b == nblocks - 1 and r < 0.5:
                items.append(_load_imm(reg, HALT))
                items.append(("insn", "jump_indirect", (reg,), 0, 0, 0, None))
            elif r < 0.95:
                items.append(_instruction(ctx, rng.choice(ctx.tame_enders), nblocks))
        elif r < 0.12:  # halt: jump to the return-to-host address
            items.append(_load_imm(reg, HALT))
            items.append(("insn", "jump_indirect", (reg,), 0, 0, 0, None))
        elif r < 0.22:  # a dynamic jump through the jump table
            items.append(_load_imm(reg, 2 * rng.randrange(1, ctx.jump_slots + 2)))
            items.append(("insn", "jump_indirect", (reg,), 0, 0, 0, None))
        elif r < 0.88:
            items.append(_instruction(ctx, rng.choice(ctx.enders), nblocks))
        # else: no terminator; the next "block" continues this one
    items.append(("label", nblocks))
    if rng.random() < 0.3:
        items.insert(len(items) - 1, ("insn", "trap", (), 0, 0, 0, None))
    code, starts, labels = _assemble(isa, items)
    mask = _bitmask(len(code), starts)
    if code and rng.random() < garbage and not ctx.tame:
        # flip a bitmask bit: instruction boundaries the assembler did not write
        pos = rng.randrange(len(code))
        mask[pos >> 3] ^= 1 << (pos & 7)
        if pos == 0 or rng.random() < 0.5:
            mask[0] |= 1
    table = []
    for _ in range(rng.choice([0, 0, 1, 2, ctx.jump_slots, ctx.jump_slots + 2])):
        if rng.random() < 0.9:
            table.append(labels[rng.randrange(nblocks + 1)])
        else:
            table.append(rng.randrange(0, len(code) + 4))
    return code, bytes(mask), table


def _load_imm(reg: int, value: int) -> tuple:
    return ("insn", "load_imm", (reg,), value & M32, 0, 0, None)


def generate_vector(seed: int, index: int, name: str = "diff") -> dict:
    """Case `index`'s program and initial state as a JAM-schema vector
    (without the expected-* fields)."""
    rng = case_rng(seed, name, index)
    isa = rng.choice(_isa.ISA_NAMES)
    pages = []
    for address in rng.sample(PAGE_CANDIDATES, rng.choice([0, 1, 1, 2, 2, 2, 3, 4])):
        length = rng.choice([PAGE, PAGE, 2 * PAGE, rng.randrange(1, 2 * PAGE)])
        length = min(length, (1 << 32) - address)
        pages.append((address, length, rng.random() < 0.75))
    pages.sort()
    ctx = _Ctx(rng, isa, pages)
    trap = bytes([_isa.BY_NAME["trap"].byte_for(isa)])
    for attempt in range(8):
        code, mask, table = random_code(rng, isa, ctx, garbage=0.15 if attempt < 4 else 0.0)
        blob = code_blob(code, mask, table)
        if _loads(blob, isa):
            break
        # jam_v1 wants code that decodes cleanly and ends with a terminator
        fixed_mask = _bitmask(len(code) + 1, [i for i in range(len(code)) if mask[i >> 3] >> (i & 7) & 1]
                              + [len(code)])
        blob = code_blob(code + trap, fixed_mask, table)
        if _loads(blob, isa):
            break
    else:  # refused every time: a lone trap
        blob = code_blob(trap, b"\x01", [])
    memory = []
    seen = set()
    for address, length, _ in pages:
        base = address - address % PAGE
        for page in range(base, address + length, PAGE):
            if page in seen:
                continue
            seen.add(page)
            r = rng.random()
            if r < 0.3:
                memory.append({"address": page, "contents": list(rng.randbytes(PAGE))})
            elif r < 0.7:
                for _ in range(rng.randint(1, 3)):
                    at = rng.randrange(PAGE - 8)
                    memory.append({"address": page + at, "contents": list(rng.randbytes(rng.randint(1, 8)))})
    r = rng.random()
    if r < 0.25:
        gas = rng.randrange(0, 20)
    elif r < 0.75:
        gas = rng.randrange(20, 2000)
    else:
        gas = rng.randrange(2000, 20000)
    pc = 0
    if rng.random() < 0.1 and code:
        pc = rng.randrange(len(code) + 1)
    return {
        "name": f"fuzz-{name}-s{seed}-{index}",
        "isa": isa,
        "initial-regs": [ctx.reg_value(k) for k in range(abi.REG_COUNT)],
        "initial-pc": pc,
        "initial-page-map": [{"address": a, "length": n, "is-writable": w} for a, n, w in pages],
        "initial-memory": memory,
        "initial-gas": gas,
        "program": list(blob),
    }


def _loads(blob: bytes, isa: str) -> bool:
    try:
        Program.from_raw_code(blob, isa=isa)
        return True
    except ProgramError:
        return False
