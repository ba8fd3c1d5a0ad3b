"""``python -m vmcore fuzz``: a built-in, deterministic fuzzing campaign.

Two targets:

* ``loader``: program blobs -- the bundled ``vmcore/data/*.polkavm``,
  containers generated here for every instruction set (``.polkavm`` with
  every section, JAM code blobs, JAM standard programs), random bytes --
  mutated (bit and byte flips, truncation, insertion, deletion, splicing,
  varint and length-field corruption) and fed to every loader.  A loader
  must return a :class:`~vmcore.program.Program` or raise
  :class:`~vmcore.errors.ProgramError`; what loads is walked (decoder,
  statistics, threaded-code build) too.
* ``diff``: random valid programs (every opcode of every instruction set,
  random registers with edge values, random pages, contents and
  permissions, gas small enough to run out, jump tables, branches, dynamic
  jumps, ``ecalli``) run on every available configuration -- each entry of
  :data:`vmcore.backend.BACKENDS`, plus the inline interpreter
  single-stepped and without gas metering -- which must agree on the
  status, pc, gas, registers, page-fault address, hostcall number and every
  accessible byte of memory.

Cases run in a child process, so a crash (a segfault in C) or a hang is
reported as a failure of the case that caused it, with a reproducer, and
the campaign carries on.  Case ``i`` of a target draws its randomness from
``(seed, target, i)`` only: ``--replay I`` re-runs exactly that case.

Reproducers go to ``--out`` (default ``./fuzz-out``): the raw blob (plus a
``.txt`` note) for a loader failure, a JSON vector in the JAM schema for a
diff failure, runnable with ``python -m vmcore vectors FILE``.
"""
from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import random
import re
import signal
import sys
import time
import traceback
from dataclasses import dataclass, field
from multiprocessing.connection import wait as _wait
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from vmcore import _engine, isa as _isa
from vmcore.asm import encode_instruction, varint
from vmcore.errors import ProgramError
from vmcore.program import Program
from vmcore.outcome import Outcome, differences, expectations_of, memory_chunks
from vmcore.vectors import PAGE_SIZE, run_vector

TARGETS = ("loader", "diff")
HOSTILE_TARGETS = ("hostile-sandbox", "hostile-api")  # not in "all": run by name
DEFAULT_OUT = "fuzz-out"
HANG_SECONDS = 30.0  # no progress on one case for this long: a hang
M32, M64 = 0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF
HALT = 0xFFFF0000
PAGE = 4096


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
        self.wild = [0x100, 0xFFFF, 0x10000 - 4, M32, M32 - 3, M32 - 7, 0x30000, 0x80000123, 0xFFFF0000]
        self.jump_slots = 4
        self.base_regs = rng.sample(range(13), 2)
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
        return self.rng.randrange(16) if self.rng.random() < 0.03 else self.rng.randrange(13)

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


# =====================================================================
# Loader target
# =====================================================================

def _le(value: int, n: int) -> bytes:
    return (value & ((1 << (8 * n)) - 1)).to_bytes(n, "little")


def _size(rng: random.Random) -> int:
    return rng.choice([0, 0, 1, 7, 0x100, 0x1000, 0x1001, 0x10000, rng.randrange(0, 0x20000), 0xFFFFFF,
                       0x7FFFFFFF, M32, rng.getrandbits(32)])


def _name(rng: random.Random) -> bytes:
    r = rng.random()
    if r < 0.7:
        return rng.choice([b"main", b"a", b"", b"call", b"get_value", b"\xc3\xa9t\xc3\xa9"]) + \
            str(rng.randrange(10)).encode() * rng.randrange(0, 2)
    if r < 0.85:
        return rng.randbytes(rng.randrange(0, 6))  # often invalid UTF-8
    return b"x" * rng.randrange(0, 300)


def _corrupt_varint_length(rng: random.Random, length: int) -> int:
    if rng.random() < 0.5:
        return max(0, length + rng.choice([-2, -1, 1, 2, 8]))
    return rng.choice([0, M32, 0xFFFFFF, length * 2 + 1])


def generate_container(rng: random.Random) -> Tuple[str, bytes]:
    """A random, usually well-formed program container; sometimes with one
    of its fields lying.  Returns (kind, blob)."""
    kind = rng.choice(["polkavm", "polkavm", "raw", "jam-standard"])
    isa = "jam_v1" if kind == "jam-standard" else rng.choice(_isa.ISA_NAMES)
    if rng.random() < 0.85:
        code, mask, table = random_code(rng, isa, garbage=0.2)
    else:
        code = rng.randbytes(rng.randrange(0, 40))
        mask = bytes(_bitmask(len(code), [i for i in range(len(code)) if rng.random() < 0.4]))
        table = [rng.randrange(0, 2 * len(code) + 2) for _ in range(rng.randrange(0, 4))]
    lie = rng.random() < 0.25
    entry_size = max(((t.bit_length() + 7) // 8 for t in table), default=0) or (1 if table else 0)
    if lie and rng.random() < 0.3:
        entry_size = rng.choice([0, 1, 2, 3, 4, 5, 255])
    width = min(entry_size, 8)
    table_bytes = b"".join(_le(t, width) for t in table)
    table_count, code_len = len(table), len(code)
    mask = bytearray(mask)
    if lie and rng.random() < 0.25:
        r = rng.random()
        if r < 0.3:    # the code length field lies
            code_len = _corrupt_varint_length(rng, code_len) & M32
        elif r < 0.5:  # the jump table count lies
            table_count = rng.choice([len(table) + 1, 0x7FFFFFFF, 1 << 20, 1 << 24])
        elif r < 0.7 and mask and len(code) % 8:  # non-zero bitmask padding
            mask[-1] |= 0x80
        elif rng.random() < 0.5:  # the bitmask too long or too short
            mask.append(0)
        elif mask:
            mask.pop()
    blob = varint(table_count) + bytes([entry_size]) + varint(code_len) + table_bytes + bytes(code) + bytes(mask)
    if kind == "raw":
        return kind, blob
    if kind == "jam-standard":
        ro, rw = rng.randbytes(rng.randrange(0, 24)), rng.randbytes(rng.randrange(0, 24))
        lens = [len(ro), len(rw)]
        if lie and rng.random() < 0.3:
            lens[rng.randrange(2)] = _corrupt_varint_length(rng, lens[0]) & 0xFFFFFF
        code_len = len(blob)
        if lie and rng.random() < 0.3:
            code_len = _corrupt_varint_length(rng, code_len)
        heap = rng.choice([0, 1, 16, 0xFFFF, rng.randrange(0x10000)])
        stack = rng.choice([0, 0x1000, 0x10000, 0xFFFFFF, rng.randrange(0x1000000)])
        out = _le(lens[0], 3) + _le(lens[1], 3) + _le(heap, 2) + _le(stack, 3) + ro + rw + _le(code_len, 4) + blob
        if lie and rng.random() < 0.2:
            out += rng.randbytes(rng.randrange(1, 4))
        return kind, out
    # .polkavm: the sections in order, each optional
    sections: List[Tuple[int, bytes]] = []
    ro = rng.randbytes(rng.randrange(0, 16)) if rng.random() < 0.5 else b""
    rw = rng.randbytes(rng.randrange(0, 16)) if rng.random() < 0.5 else b""
    if rng.random() < 0.7:
        sizes = [len(ro) + rng.choice([0, 0, 1, PAGE]), len(rw) + rng.choice([0, 0, 1, PAGE]),
                 rng.choice([0, PAGE, 0x10000, 1])]
        if lie and rng.random() < 0.4:
            sizes[rng.randrange(3)] = _size(rng)
        sections.append((1, b"".join(varint(s) for s in sizes)))
    if ro:
        sections.append((2, ro))
    if rw:
        sections.append((3, rw))
    if rng.random() < 0.4:
        names = [_name(rng) for _ in range(rng.randrange(0, 4))]
        offsets, pos = [], 0
        for n in names:
            offsets.append(pos)
            pos += len(n)
        if lie and rng.random() < 0.4 and offsets:
            offsets[rng.randrange(len(offsets))] = rng.choice([pos + 1, M32, rng.randrange(0, pos + 2)])
        count = len(names)
        if lie and rng.random() < 0.2:
            count = rng.choice([count + 1, M32, 0x10000])
        sections.append((4, varint(count & M32) + b"".join(_le(o, 4) for o in offsets) + b"".join(names)))
    if rng.random() < 0.6:
        exports = [(rng.randrange(0, len(code) + 2), _name(rng)) for _ in range(rng.randrange(0, 4))]
        count = len(exports)
        if lie and rng.random() < 0.2:
            count = rng.choice([count + 1, M32])
        payload = varint(count & M32)
        for pc, name in exports:
            payload += varint(pc) + varint(len(name)) + name
        sections.append((5, payload))
    if not (lie and rng.random() < 0.1):
        sections.append((6, blob))
    for sid in (128, 129, 130):
        if rng.random() < 0.15:
            sections.append((sid, rng.randbytes(rng.randrange(0, 8))))
    if rng.random() < 0.1:
        sections.append((rng.randrange(131, 256), rng.randbytes(rng.randrange(0, 8))))
    if lie and rng.random() < 0.2 and sections:
        # out of order or repeated
        if rng.random() < 0.5:
            rng.shuffle(sections)
        else:
            sections.insert(rng.randrange(len(sections) + 1), rng.choice(sections))
    body = bytearray()
    for sid, payload in sections:
        length = len(payload)
        if lie and rng.random() < 0.1:
            length = _corrupt_varint_length(rng, length)
        body += bytes([sid]) + varint(length & M32) + payload
    if not (lie and rng.random() < 0.1):
        body.append(0)
    version = _isa.ISA_NAMES.index(isa)
    if lie and rng.random() < 0.1:
        version = rng.randrange(256)
    total = 13 + len(body)
    if lie and rng.random() < 0.1:
        total = rng.choice([total - 1, total + 1, 0, M64])
    return kind, b"PVM\0" + bytes([version]) + _le(total, 8) + bytes(body)


def _fix_header(data: bytearray) -> None:
    if len(data) >= 13 and data[:4] == b"PVM\0":
        data[5:13] = len(data).to_bytes(8, "little")


_INTERESTING_BYTES = [0x00, 0x01, 0x7F, 0x80, 0xC0, 0xE0, 0xF0, 0xFE, 0xFF]


def mutate(rng: random.Random, data: bytes, pool: Sequence[bytes]) -> bytes:
    """One to four random mutations."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(10)
        n = len(out)
        pos = rng.randrange(n + 1)
        if op == 0 and n:      # bit flips
            for _ in range(rng.randint(1, 4)):
                p = rng.randrange(n)
                out[p] ^= 1 << rng.randrange(8)
        elif op == 1 and n:    # bytes set to interesting or random values
            for _ in range(rng.randint(1, 3)):
                out[rng.randrange(n)] = rng.choice(_INTERESTING_BYTES) if rng.random() < 0.6 else rng.randrange(256)
        elif op == 2:          # truncation
            del out[rng.randrange(n + 1):]
        elif op == 3:          # insertion
            out[pos:pos] = rng.randbytes(rng.randint(1, 8)) if rng.random() < 0.7 else out[pos:pos + rng.randint(1, 16)]
        elif op == 4 and n:    # deletion
            del out[pos:pos + rng.randint(1, 8)]
        elif op == 5:          # splice with another blob
            other = rng.choice(pool)
            cut = rng.randrange(len(other) + 1)
            out = out[:pos] + bytearray(other[cut:cut + rng.randint(1, 64)] if rng.random() < 0.5 else other[cut:])
        elif op == 6 and n:    # a varint overwritten: long prefixes, maximal values, overlong encodings
            p = rng.randrange(n)
            out[p:p + 1] = rng.choice([b"\x80", b"\xc0", b"\xe0", b"\xf0", b"\xf8", b"\xff", b"\xf0\xff\xff\xff\xff",
                                       b"\xef\xff\xff\xff", b"\x80\x00", b"\xc0\x00\x00", varint(rng.getrandbits(32))])
        elif op == 7 and n >= 4:  # a little-endian length field (JAM standard, headers) perturbed
            p = rng.randrange(n - 3)
            width = rng.choice([2, 3, 4])
            value = int.from_bytes(out[p:p + width], "little")
            value = rng.choice([value + 1, value - 1, 0, (1 << (8 * width)) - 1, value * 2]) % (1 << (8 * width))
            out[p:p + width] = value.to_bytes(width, "little")
        elif op == 8:          # duplicate a chunk
            chunk = out[pos:pos + rng.randint(1, 32)]
            out[pos:pos] = chunk
        elif op == 9:          # junk appended
            out += rng.randbytes(rng.randint(1, 8))
    if rng.random() < 0.6:
        _fix_header(out)  # past the header's length check more often
    return bytes(out)


def _exercise(program: Program) -> None:
    """Walk what loaded: statistics, the decoder at many offsets, the
    threaded-code builder, the memory map at the largest page size."""
    program.instruction_count()
    program.basic_block_count()
    isa_index, code, bitmask = program.isa_index, program.code, program.bitmask
    n = len(code)
    for offset in {0, 1, 2, 7, 8, 24, 25, 31, 32, n // 2, max(0, n - 1), n, n + 1, n + 100}:
        _engine.is_basic_block_start(isa_index, code, bitmask, offset)
        _engine.decode(isa_index, code, bitmask, offset)
    if n <= 4096:
        _engine.instructions(isa_index, code, bitmask)
        _engine.validate_code(isa_index, code, bitmask)
        table = program.jump_table
        _engine.CompiledModule(isa_index, code, bitmask, table, True, False)
        _engine.CompiledModule(isa_index, code, bitmask, table, False, True)
    try:
        program.memory_map(0x10000)
    except ProgramError:
        pass


def _loaders() -> Dict[str, Callable[[bytes], Program]]:
    # looked up at call time so tests can monkeypatch Program's methods
    loaders: Dict[str, Callable[[bytes], Program]] = {
        "from_bytes": lambda d: Program.from_bytes(d),
        "from_jam_standard": lambda d: Program.from_jam_standard(d),
    }
    for name in _isa.ISA_NAMES:
        loaders[f"from_raw_code(isa={name})"] = lambda d, name=name: Program.from_raw_code(d, isa=name)
    return loaders


class LoaderTarget:
    name = "loader"

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.loaded = self.rejected = 0
        self._pool: Optional[List[bytes]] = None

    @property
    def pool(self) -> List[bytes]:
        """The seed blobs: the bundled programs and generated containers of
        every kind and ISA (a fixed set, independent of --seed)."""
        if self._pool is None:
            pool = [p.read_bytes() for p in sorted((Path(__file__).parent / "data").glob("*.polkavm"))]
            rng = random.Random(0x5EED)
            for _ in range(48):
                pool.append(generate_container(rng)[1])
            self._pool = pool
        return self._pool

    def setup(self) -> List[str]:
        return [f"{len(self.pool)} seed blobs, {len(_loaders())} loaders"]

    def generate(self, index: int) -> bytes:
        rng = case_rng(self.seed, self.name, index)
        r = rng.random()
        if r < 0.4:
            data = mutate(rng, rng.choice(self.pool), self.pool)
        elif r < 0.9:
            data = generate_container(rng)[1]
            if rng.random() < 0.5:
                data = mutate(rng, data, self.pool)
        else:
            data = rng.randbytes(rng.randrange(0, 96))
            if rng.random() < 0.5:
                data = b"PVM\0" + bytes([rng.randrange(5)]) + _le(13 + len(data), 8) + data
        return data

    def check(self, data: bytes) -> List[str]:
        """Problems found running every loader on data (empty: fine)."""
        problems = []
        for name, load in _loaders().items():
            try:
                program = load(data)
            except ProgramError as e:
                self.rejected += 1
                if not (isinstance(e.reason, str) and e.reason):
                    problems.append(f"{name}: ProgramError without a reason: {e!r}")
                elif e.offset is not None and not (0 <= e.offset <= len(data)):
                    problems.append(f"{name}: ProgramError offset {e.offset} outside the {len(data)}-byte input: {e}")
                continue
            except Exception as e:
                problems.append(f"{name} raised {type(e).__name__}: {e}\n{traceback.format_exc()}")
                continue
            if not isinstance(program, Program):
                problems.append(f"{name} returned {type(program).__name__}, not a Program")
                continue
            self.loaded += 1
            try:
                _exercise(program)
            except Exception as e:
                problems.append(f"{name}: walking the loaded program raised {type(e).__name__}: {e}\n"
                                f"{traceback.format_exc()}")
        return problems

    def run_case(self, index: int) -> Optional[Failure]:
        data = self.generate(index)
        problems = self.check(data)
        if not problems:
            return None
        return Failure(self.name, index, "exception", problems[0].splitlines()[0], "\n".join(problems), data,
                       self.seed)

    def stats(self) -> Dict[str, int]:
        return {"loaded": self.loaded, "rejected": self.rejected}

    def crash_artifact(self, index: int) -> bytes:
        return self.generate(index)

    def describe(self, index: int) -> str:
        data = self.generate(index)
        return f"{len(data)} bytes: {data[:96].hex()}{'...' if len(data) > 96 else ''}"


# =====================================================================
# Diff target
# =====================================================================

Runner = Callable[[dict], Outcome]


def run_inline(vector: dict, *, gas_metering: bool = True, step: bool = False) -> Outcome:
    """Run a vector on the inline interpreter, optionally without gas
    metering and/or single-stepped (vectors.run_vector: the one runner)."""
    return run_vector(vector, gas_metering=gas_metering, step=step)


@dataclass
class Config:
    """One way of running a vector.  ``metered=False`` configurations are
    compared only when the reference did not run out of gas, and report
    no gas (None: metering is off)."""
    name: str
    run: Runner
    metered: bool = True


def default_configs() -> Tuple[List[Config], List[str]]:
    """Every entry of BACKENDS (through vectors.run_vector), then the inline
    interpreter single-stepped and unmetered; plus notes on what was
    skipped.  Probed in the process that will run them."""
    from vmcore.backend import BACKENDS
    configs, notes = [], []
    probe = {"name": "probe", "isa": "latest64", "program": list(code_blob(bytes([0]), b"\x01", [])),
             "initial-regs": [0] * 13, "initial-pc": 0, "initial-page-map": [], "initial-memory": [],
             "initial-gas": 10}
    for backend, isolation in BACKENDS:
        run = (lambda v, b=backend, i=isolation: run_vector(v, backend=b, isolation=i))
        try:
            run(probe)
        except (ValueError, NotImplementedError) as e:
            notes.append(f"skipping {backend}/{isolation}: {e}")
            continue
        configs.append(Config(f"{backend}/{isolation}", run))
    if any(c.name == "compiler/process" for c in configs):
        configs.append(Config("compiler/process+step",
                              lambda v: run_vector(v, backend="compiler", isolation="process", step=True)))
        configs.append(Config("compiler/process+unmetered",
                              lambda v: run_vector(v, backend="compiler", isolation="process", gas_metering=False),
                              False))
    configs.append(Config("interpreter/inline+step", lambda v: run_inline(v, step=True)))
    configs.append(Config("interpreter/inline+unmetered", lambda v: run_inline(v, gas_metering=False), False))
    configs.append(Config("interpreter/inline+step+unmetered",
                          lambda v: run_inline(v, gas_metering=False, step=True), False))
    return configs, notes


def oracle_config(path: Optional[str] = None) -> Config:
    """The pure-Python model of the semantics in a source checkout's
    tests/oracle.py, as a configuration (and the reference when present)."""
    import importlib.util
    path = path or str(Path(__file__).resolve().parent.parent / "tests" / "oracle.py")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no oracle at {path} (tests/oracle.py exists only in a source checkout)")
    oracle = sys.modules.get("vmcore_fuzz_oracle")
    if oracle is None or getattr(oracle, "__file__", None) != path:
        spec = importlib.util.spec_from_file_location("vmcore_fuzz_oracle", path)
        oracle = importlib.util.module_from_spec(spec)
        sys.modules["vmcore_fuzz_oracle"] = oracle  # its dataclasses look themselves up there
        spec.loader.exec_module(oracle)

    def run(vector: dict) -> Outcome:
        program = Program.from_raw_code(bytes(vector["program"]), isa=vector.get("isa", "latest64"))
        code = oracle.Code(program.isa, program.code, program.bitmask, list(program.jump_table))
        machine = oracle.Machine(code, [int(v) for v in vector["initial-regs"]], int(vector["initial-gas"]),
                                 page_size=PAGE_SIZE)
        pages = []
        for e in vector["initial-page-map"]:
            machine.map(e["address"], e["length"], e["is-writable"])
            start = e["address"] - e["address"] % PAGE_SIZE
            pages.extend(range(start, e["address"] + e["length"], PAGE_SIZE))
        for chunk in vector["initial-memory"]:
            machine.poke(chunk["address"], bytes(chunk["contents"]))
        result = machine.start(int(vector["initial-pc"])) or machine.run()
        memory = {p: bytes(machine.pages[p].data) for p in sorted(set(pages)) if p in machine.pages}
        return Outcome(result.status, result.pc, result.gas, list(result.regs), memory, result.fault, result.hostcall)

    return Config("oracle", run)


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
        "initial-regs": [ctx.reg_value(k) for k in range(13)],
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


def compare_outcomes(want: Outcome, got: Outcome, *, check_gas: bool = True) -> List[str]:
    """How ``got`` differs from ``want`` (vmcore.outcome: the one comparison)."""
    return differences(expectations_of(want, check_gas=check_gas), got)


def with_expected(vector: dict, outcome: Outcome) -> dict:
    """The vector with expected-* fields from an outcome (the JAM schema)."""
    out = dict(vector)
    out.update({
        "expected-status": outcome.status,
        "expected-regs": list(outcome.regs),
        "expected-pc": outcome.pc,
        "expected-memory": memory_chunks(outcome.memory),
        "expected-gas": outcome.gas,
    })
    if outcome.status == "page-fault":
        out["expected-page-fault-address"] = outcome.page_fault_address
    if outcome.status == "host":
        out["expected-hostcall"] = outcome.hostcall
    return out


class DiffTarget:
    name = "diff"

    def __init__(self, seed: int, *, oracle: Optional[str] = None, extra_configs: Sequence[Config] = ()) -> None:
        self.seed = seed
        self.oracle = oracle
        self.extra_configs = list(extra_configs)
        self.configs: List[Config] = []
        self.statuses: Dict[str, int] = {}

    def setup(self) -> List[str]:
        configs, notes = default_configs()
        if self.oracle is not None:
            configs.insert(0, oracle_config(self.oracle or None))
        self.configs = configs + self.extra_configs
        return notes + ["configurations: " + ", ".join(c.name for c in self.configs)]

    def generate(self, index: int) -> dict:
        return generate_vector(self.seed, index, self.name)

    def run_case(self, index: int) -> Optional[Failure]:
        if not self.configs:
            self.setup()
        vector = self.generate(index)
        outcomes: Dict[str, Outcome] = {}
        problems: List[str] = []
        for phase in (True, False):  # metered configurations first
            if not phase:
                first = next(iter(outcomes.values()), None)
                if first is None or first.status == "out-of-gas" or any(
                        (o.status, o.pc) != (first.status, first.pc) for o in outcomes.values()):
                    break  # unmetered runs would go past where the metered ones stopped (or loop forever)
            for config in self.configs:
                if config.metered != phase:
                    continue
                try:
                    outcomes[config.name] = config.run(vector)
                except Exception as e:
                    problems.append(f"{config.name} raised {type(e).__name__}: {e}\n{traceback.format_exc()}")
        reference_name = next(iter(outcomes), None)
        if reference_name is None:
            return Failure(self.name, index, "exception", problems[0].splitlines()[0], "\n".join(problems),
                           vector, self.seed)
        reference = outcomes[reference_name]
        self.statuses[reference.status] = self.statuses.get(reference.status, 0) + 1
        by_name = {c.name: c for c in self.configs}
        for name, outcome in outcomes.items():
            if name == reference_name:
                continue
            if by_name[name].metered:
                diffs = compare_outcomes(reference, outcome)
            else:
                diffs = compare_outcomes(reference, outcome, check_gas=False)
                if outcome.gas is not None:
                    diffs.append(f"gas {outcome.gas} reported without metering (Sandbox.gas is None then)")
            if diffs:
                problems.append(f"{name} vs {reference_name}: " + "; ".join(diffs[:12]))
        if not problems:
            return None
        artifact = with_expected(vector, reference)
        artifact["fuzz"] = {"seed": self.seed, "case": index, "reference": reference_name, "problems": problems,
                            "replay": f"python -m vmcore fuzz --target diff --seed {self.seed} --replay {index}"}
        kind = "mismatch" if all(" vs " in p.splitlines()[0] for p in problems) else "exception"
        return Failure(self.name, index, kind, problems[0].splitlines()[0], "\n".join(problems), artifact,
                       self.seed)

    def stats(self) -> Dict[str, int]:
        return dict(self.statuses)

    def crash_artifact(self, index: int) -> dict:
        """The case's vector for a crash or hang: there is no outcome to
        expect, so the expected status is "crash" (running it with
        ``python -m vmcore vectors`` crashes, hangs or reports FAIL)."""
        vector = self.generate(index)
        vector.update({"expected-status": "crash", "expected-regs": list(vector["initial-regs"]),
                       "expected-pc": vector["initial-pc"], "expected-memory": [],
                       "expected-gas": vector["initial-gas"]})
        vector["fuzz"] = {"seed": self.seed, "case": index, "problems": ["crashed or hung: no expected outcome"],
                          "replay": f"python -m vmcore fuzz --target diff --seed {self.seed} --replay {index}"}
        return vector

    def describe(self, index: int) -> str:
        v = self.generate(index)
        program = Program.from_raw_code(bytes(v["program"]), isa=v["isa"])
        return (f"{v['isa']}: {len(program.code)} bytes of code, {program.instruction_count()} instructions, "
                f"{len(program.jump_table)} jump table entries, {len(v['initial-page-map'])} page ranges, "
                f"gas {v['initial-gas']}, pc {v['initial-pc']}")


# =====================================================================
# The campaign: workers in child processes, crash and hang detection
# =====================================================================

def _make_target(name: str, seed: int, options: dict):
    if name == "loader":
        return LoaderTarget(seed)
    if name in HOSTILE_TARGETS:  # vmcore.fuzz_hostile (threat model)
        from vmcore.fuzz_hostile import TARGETS as hostile
        return hostile[name](seed)
    if name == "reference":  # against PolkaVM: vmcore/fuzz_reference.py
        from vmcore.fuzz_reference import ReferenceTarget
        return ReferenceTarget(seed, **options)
    return DiffTarget(seed, **options)


def _worker(name: str, seed: int, options: dict, start: int, limit: Optional[int], conn, current, done, stop) -> None:
    """The child: runs cases start, start+1, ... until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    target = _make_target(name, seed, options)
    try:
        conn.send(("info", target.setup()))
    except Exception as e:
        conn.send(("setup-error", f"{type(e).__name__}: {e}"))
        conn.close()
        return
    last_stats = time.monotonic()
    index = start
    while not stop.value and (limit is None or index < limit):
        current.value = index
        try:
            failure = target.run_case(index)
        except Exception as e:  # the harness itself broke; still a finding
            failure = Failure(name, index, "exception", f"harness: {type(e).__name__}: {e}", traceback.format_exc(),
                              None, seed)
        if failure is not None:
            conn.send(("fail", failure))
        index += 1
        done.value = index
        if time.monotonic() - last_stats > 0.5:
            conn.send(("stats", target.stats()))
            last_stats = time.monotonic()
    conn.send(("stats", target.stats()))
    conn.send(("end", index))
    conn.close()


def _mp_context():
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


class _Run:
    """One target's campaign: a worker process, restarted after a crash."""

    def __init__(self, name: str, seed: int, options: dict, limit: Optional[int], hang_seconds: float) -> None:
        self.name, self.seed, self.options, self.limit = name, seed, options, limit
        self.hang_seconds = hang_seconds
        self.ctx = _mp_context()
        self.failures: List[Failure] = []
        self.infos: List[str] = []
        self.stats: Dict[str, int] = {}
        self.stats_base: Dict[str, int] = {}
        self.next_index = 0
        self.finished = False
        self.proc = None
        self.setup_error: Optional[str] = None
        self.stopping = False
        self.started = time.monotonic()
        self.done_total = 0  # cases completed by earlier workers
        self._start(0)

    def _start(self, index: int) -> None:
        self.next_index = index
        if self.limit is not None and index >= self.limit:
            self.finished = True
            self.proc = None
            return
        parent, child = self.ctx.Pipe(duplex=False)
        self.current = self.ctx.Value("q", index, lock=False)
        self.done = self.ctx.Value("q", index, lock=False)
        self.stop = self.ctx.Value("b", 0, lock=False)
        self.conn = parent
        self.proc = self.ctx.Process(target=_worker, args=(self.name, self.seed, self.options, index, self.limit,
                                                           child, self.current, self.done, self.stop), daemon=True)
        self.proc.start()
        child.close()
        self.last_done = index
        self.last_progress = time.monotonic()
        self.ended = False

    @property
    def cases(self) -> int:
        return self.done.value if self.proc is not None else self.next_index

    def request_stop(self) -> None:
        self.stopping = True
        if self.proc is not None:
            self.stop.value = 1

    def _drain(self) -> None:
        try:
            while self.conn.poll():
                kind, payload = self.conn.recv()
                if kind == "info":
                    self.infos.extend(m for m in payload if m not in self.infos)
                elif kind == "fail":
                    self.failures.append(payload)
                elif kind == "stats":
                    self.stats = {k: self.stats_base.get(k, 0) + v for k, v in payload.items()}
                    for k, v in self.stats_base.items():
                        self.stats.setdefault(k, v)
                elif kind == "end":
                    self.ended = True
                elif kind == "setup-error":
                    self.setup_error = payload
        except (EOFError, OSError):
            pass

    def poll(self) -> None:
        """Collect messages; notice a dead or stuck worker."""
        if self.proc is None:
            return
        self._drain()
        now = time.monotonic()
        if self.done.value != self.last_done:
            self.last_done, self.last_progress = self.done.value, now
        if not self.proc.is_alive():
            self.proc.join()
            self._drain()
            if self.setup_error is not None:
                self.finished = True
                self.next_index = self.done.value
                self.proc = None
                return
            if self.ended:
                self.finished = True
                self.next_index = self.done.value
                self.proc = None
                return
            code = self.proc.exitcode
            how = f"killed by {signal.Signals(-code).name}" if code is not None and code < 0 else f"exit {code}"
            self._crash(f"crash: the worker process died ({how})")
        elif now - self.last_progress > self.hang_seconds:
            self.proc.kill()
            self.proc.join()
            self._drain()
            self._crash(f"hang: no progress for {self.hang_seconds:.0f} s")

    def _crash(self, what: str) -> None:
        index = self.current.value
        target = _make_target(self.name, self.seed, self.options)
        try:
            artifact = target.crash_artifact(index)
        except Exception as e:  # pragma: no cover - generation itself is plain Python
            artifact = None
            what += f" (regenerating the input failed: {e})"
        self.failures.append(Failure(self.name, index, what.split(":")[0], f"{what} in case {index}",
                                     f"replay: python -m vmcore fuzz --target {self.name} --seed {self.seed} "
                                     f"--replay {index}", artifact, self.seed))
        self.stats_base = dict(self.stats)
        if self.stopping:  # out of time: do not start another worker
            self.finished = True
            self.next_index = index + 1
            self.proc = None
            return
        self._start(index + 1)

    def wait_handles(self) -> list:
        return [self.conn, self.proc.sentinel] if self.proc is not None else []

    def kill(self) -> None:
        if self.proc is not None and self.proc.is_alive():
            self.proc.kill()
            self.proc.join()


def write_reproducer(failure: Failure, out_dir: str) -> Optional[str]:
    """Write the failure's reproducer into out_dir; returns its path."""
    if failure.artifact is None:
        return None
    os.makedirs(out_dir, exist_ok=True)
    stem = os.path.join(out_dir, f"{failure.target}-s{failure.seed}-{failure.case}")
    note = (f"{failure.target} case {failure.case}: {failure.summary}\n\n{failure.details}\n")
    if isinstance(failure.artifact, (bytes, bytearray)):
        path = stem + ".bin"
        with open(path, "wb") as f:
            f.write(failure.artifact)
        with open(stem + ".txt", "w") as f:
            f.write(note)
    else:
        path = stem + ".json"
        with open(path, "w") as f:
            json.dump(failure.artifact, f, indent=1)
            f.write("\n")
    failure.path = path
    return path


@dataclass
class Summary:
    passed: int = 0
    failed: int = 0
    failures: List[Failure] = field(default_factory=list)
    per_target: Dict[str, dict] = field(default_factory=dict)


def campaign(*, seconds: Optional[float] = 60.0, cases: Optional[int] = None, seed: int = 0,
             targets: Sequence[str] = TARGETS, out_dir: str = DEFAULT_OUT, options: Optional[dict] = None,
             hang_seconds: float = HANG_SECONDS, progress: Optional[Callable[[str], None]] = None) -> Summary:
    """Run the targets side by side (each in its own worker process) for
    `seconds` or `cases` cases each, whichever comes first."""
    options = options or {}
    runs = [_Run(t, seed, options.get(t, {}), cases, hang_seconds) for t in targets]
    start = time.monotonic()
    last_report = start
    stopping = False
    try:
        while True:
            for run in runs:
                run.poll()
            if all(run.finished for run in runs):
                break
            now = time.monotonic()
            if seconds is not None and now - start >= seconds and not stopping:
                stopping = True
                for run in runs:
                    run.request_stop()
            if progress and now - last_report >= 2.0:
                last_report = now
                progress(_progress_line(runs, now - start))
            handles = [h for run in runs for h in run.wait_handles()]
            if handles:
                _wait(handles, timeout=0.25)
    finally:
        for run in runs:
            run.kill()
    elapsed = time.monotonic() - start
    summary = Summary()
    for run in runs:
        if run.setup_error is not None:
            run.failures.append(Failure(run.name, -1, "setup", f"setting up the {run.name} target failed: "
                                        f"{run.setup_error}", seed=seed))
        n = run.cases
        failed_cases = {f.case for f in run.failures}
        for f in run.failures:
            write_reproducer(f, out_dir)
        summary.failures.extend(run.failures)
        summary.failed += len(failed_cases)
        summary.passed += n - len({c for c in failed_cases if c >= 0})  # case -1: the set-up failed
        summary.per_target[run.name] = {"cases": n, "failed": len(failed_cases), "seconds": elapsed,
                                        "per_second": n / elapsed if elapsed > 0 else 0.0, "stats": run.stats,
                                        "infos": run.infos}
    return summary


def _progress_line(runs, elapsed: float) -> str:
    parts = []
    for run in runs:
        n = run.cases
        parts.append(f"{run.name}: {n} cases ({n / elapsed:.0f}/s), {len({f.case for f in run.failures})} failed")
    return f"[{elapsed:5.0f}s] " + " | ".join(parts)


def replay(name: str, seed: int, index: int, out_dir: str, options: dict) -> Tuple[bool, str]:
    """Run one case in this process; (ok, report)."""
    target = _make_target(name, seed, options)
    lines = [f"{name} case {index} (seed {seed}): {target.describe(index)}"]
    lines += [f"  {m}" for m in target.setup()]
    failure = target.run_case(index)
    if failure is None:
        if name == "diff":
            vector = target.generate(index)
            for config in target.configs:
                try:
                    o = config.run(vector)
                    lines.append(f"  {config.name}: {o.status} pc={o.pc} gas={o.gas}"
                                 + (f" fault={o.page_fault_address:#x}" if o.page_fault_address is not None else "")
                                 + (f" hostcall={o.hostcall}" if o.hostcall is not None else ""))
                except Exception as e:  # pragma: no cover - run_case would have failed
                    lines.append(f"  {config.name}: {type(e).__name__}: {e}")
        lines.append("PASS")
        return True, "\n".join(lines)
    path = write_reproducer(failure, out_dir)
    lines.append(f"FAIL {failure.summary}")
    lines.extend("    " + line for line in failure.details.splitlines())
    if path:
        lines.append(f"reproducer: {path}")
    return False, "\n".join(lines)


# =====================================================================
# Command line
# =====================================================================

def main(args) -> int:
    """``python -m vmcore fuzz`` (arguments parsed in vmcore.__main__)."""
    if args.seconds is not None and not args.seconds > 0:
        print("vmcore: error: --seconds must be positive", file=sys.stderr)
        return 2
    if args.cases is not None and args.cases < 0:
        print("vmcore: error: --cases must not be negative", file=sys.stderr)
        return 2
    if args.replay is not None and args.replay < 0:
        print("vmcore: error: --replay must not be negative", file=sys.stderr)
        return 2
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        print(f"vmcore: error: --out {args.out} exists and is not a directory", file=sys.stderr)
        return 2
    targets = list(TARGETS) if args.target == "all" else [args.target]
    options: Dict[str, dict] = {}
    if args.oracle is not None:
        path = args.oracle or str(Path(__file__).resolve().parent.parent / "tests" / "oracle.py")
        if not os.path.isfile(path):
            print(f"vmcore: error: no oracle at {path} (tests/oracle.py exists only in a source checkout)",
                  file=sys.stderr)
            return 2
        options["diff"] = {"oracle": path}
    if args.target == "reference":
        from vmcore.fuzz_reference import ENV, find_reference
        wanted = getattr(args, "reference", None)
        binary = find_reference(wanted)
        if binary is None:
            print(f"vmcore: error: no reference binary at {wanted or '$' + ENV + ' or ../shared/tools/refharness'}"
                  " (--reference PATH: PolkaVM's refharness)", file=sys.stderr)
            return 2
        options["reference"] = {"binary": binary, "gas_model": getattr(args, "gas_model", "naive")}

    if args.replay is not None:
        ok = True
        for t in targets:
            good, report = replay(t, args.seed, args.replay, args.out, options.get(t, {}))
            print(report)
            ok = ok and good
        return 0 if ok else 1

    if getattr(args, "ray", None) is not None:  # --ray [ADDRESS]: split across a Ray cluster
        from vmcore.ray_fuzz import main as ray_main
        return ray_main(args, targets, options)

    tty = sys.stderr.isatty()
    last = [0.0]

    def progress(line: str) -> None:
        if tty:
            print("\r" + line, end="", file=sys.stderr, flush=True)
        elif time.monotonic() - last[0] >= 10:
            last[0] = time.monotonic()
            print(line, file=sys.stderr, flush=True)

    print(f"fuzzing {', '.join(targets)} for "
          + (f"{args.seconds:g} s" if args.cases is None else f"{args.cases} cases (at most {args.seconds:g} s)")
          + f", seed {args.seed}", flush=True)
    try:
        summary = campaign(seconds=args.seconds, cases=args.cases, seed=args.seed, targets=targets,
                           out_dir=args.out, options=options, progress=progress)
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
    if tty:
        print(file=sys.stderr)
    for name, info in summary.per_target.items():
        for m in info["infos"]:
            print(f"{name}: {m}")
        stats = ", ".join(f"{k} {v}" for k, v in sorted(info["stats"].items()))
        print(f"{name}: {info['cases']} cases in {info['seconds']:.1f} s ({info['per_second']:.0f}/s)"
              + (f"; {stats}" if stats else "") + f"; {info['failed']} failed")
    for f in summary.failures:
        print(f"FAIL {f.target} case {f.case}: {f.summary}" + (f" -> {f.path}" if f.path else ""))
    print(f"{summary.passed} passed, {summary.failed} failed")
    return 0 if summary.failed == 0 else 1
