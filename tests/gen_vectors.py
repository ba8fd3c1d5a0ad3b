#!/usr/bin/env python3
"""Generates vmcore's own JSON test vectors into tests/vectors/own/.

Every vector is a JAM-schema test case (pvm-vectors/schema.asn) plus vmcore's
extensions ("isa"; "expected-status" "out-of-gas" / "host" with
"expected-hostcall").  The programs are encoded here, byte by byte, and the
expected outcome comes from tests/oracle.py -- an independent Python model of
the reference interpreter -- never from vmcore's C.

Deterministic: run it again and the files come out identical.

    python tests/gen_vectors.py            # (re)write tests/vectors/own
    python tests/gen_vectors.py --check    # exit 1 if the files are stale
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))

import oracle  # noqa: E402
from oracle import M32, M64, canonical  # noqa: E402
from vmcore import abi, isa as ISA  # noqa: E402
from vmcore.outcome import memory_chunks  # noqa: E402

OUT_DIR = HERE / "vectors" / "own"
ISAS = ["revive_v1", "latest32", "latest64", "jam_v1"]
PAGE = abi.MIN_PAGE_SIZE
HALT = abi.RETURN_TO_HOST
DEFAULT_GAS = 10_000

I32_MIN, I32_MAX = 0x80000000, 0x7FFFFFFF
I64_MIN, I64_MAX = 0x8000000000000000, 0x7FFFFFFFFFFFFFFF
NEG1 = M64


def neg(v: int) -> int:
    return (-v) & M64


# ------------------------------------------------------------------ encoding
def has(isa: str, name: str) -> bool:
    return ISA.BY_NAME[name].byte_for(isa) is not None


def opbyte(isa: str, name: str) -> int:
    b = ISA.BY_NAME[name].byte_for(isa)
    assert b is not None, f"{name} does not exist in {isa}"
    return b


def imm_bytes(value: int) -> bytes:
    """The shortest little-endian bytes that sign-extend back to value (as i32)."""
    v = oracle.sx(value, 32)
    if v == 0:
        return b""
    for n in range(1, 5):
        if -(1 << (8 * n - 1)) <= v < (1 << (8 * n - 1)):
            return (v & ((1 << (8 * n)) - 1)).to_bytes(n, "little")
    raise AssertionError


def varint(value: int) -> bytes:
    """PolkaVM / Gray Paper variable-length natural number."""
    assert 0 <= value <= M32
    bits = value.bit_length()
    x = bits >> 3
    length = ((x + bits) ^ x) >> 3
    if length == 0:
        return bytes([value])
    if length == 4:
        return b"\xf0" + value.to_bytes(4, "little")
    prefix = (0xFF << (8 - length)) & 0xFF
    return bytes([prefix | (value >> (8 * length))]) + value.to_bytes(4, "little")[:length]


def bitmask_bytes(code_len: int, starts: Iterable[int]) -> bytes:
    mask = bytearray((code_len + 7) // 8)
    for s in starts:
        assert 0 <= s < code_len, s
        mask[s >> 3] |= 1 << (s & 7)
    return bytes(mask)


def code_blob(code: bytes, bitmask: bytes, jump_table: Sequence[int], entry_size: Optional[int] = None) -> bytes:
    if entry_size is None:
        top = max(jump_table, default=0)
        entry_size = 0 if not jump_table else max(1, (top.bit_length() + 7) // 8)
    table = b"".join(t.to_bytes(entry_size, "little") for t in jump_table)
    return varint(len(jump_table)) + bytes([entry_size]) + varint(len(code)) + table + code + bitmask


class Asm:
    """A tiny assembler.  Operands go in the order of the reference's
    InstructionVisitor methods:

        reg_imm (reg, imm)            reg_imm_offset (reg, imm, target)
        reg_imm_imm (reg, imm, imm)   reg_reg_imm (reg1, reg2, imm)
        reg_reg_offset (r1, r2, tgt)  reg_reg_reg (d, s1, s2)
        offset (target)  imm (imm)    imm_imm (imm1, imm2)
        reg_reg (d, s)                reg_reg_imm_imm (ra, base, value, offset)
        reg_imm64 (reg, imm64)

    Targets may be label names or absolute pcs; immediates are encoded in the
    fewest bytes that sign-extend back; `pad` appends bytes to an instruction
    (a longer skip); `raw` inserts bytes with explicit instruction starts."""

    def __init__(self, isa: str):
        self.isa = isa
        self.items: List[tuple] = []

    def label(self, name: str) -> "Asm":
        self.items.append(("label", name))
        return self

    def op(self, name: str, *ops, pad: bytes = b"") -> "Asm":
        self.items.append(("insn", name, ops, bytes(pad)))
        return self

    def raw(self, data: bytes, starts: Sequence[int] = (0,)) -> "Asm":
        self.items.append(("raw", bytes(data), tuple(starts)))
        return self

    def halt(self, reg: int = 12) -> "Asm":
        """jump_indirect to 0xffff0000 through `reg` (which must hold it)."""
        return self.op("jump_indirect", reg, 0)

    def _encode(self, name: str, ops: tuple, pc: int, labels: Dict[str, int]) -> bytes:
        fmt = ISA.BY_NAME[name].format.upper()
        t = lambda x: labels.get(x, 0) if isinstance(x, str) else x
        rel = lambda x: imm_bytes((t(x) - pc) & M32)
        head = bytes([opbyte(self.isa, name)])
        if fmt == "ARGLESS":
            return head
        if fmt == "REG_IMM":
            return head + bytes([ops[0]]) + imm_bytes(ops[1])
        if fmt == "REG_IMM_OFFSET":
            i1 = imm_bytes(ops[1])
            return head + bytes([ops[0] | len(i1) << 4]) + i1 + rel(ops[2])
        if fmt == "REG_IMM_IMM":
            i1 = imm_bytes(ops[1])
            return head + bytes([ops[0] | len(i1) << 4]) + i1 + imm_bytes(ops[2])
        if fmt == "REG_REG_IMM":
            return head + bytes([ops[0] | ops[1] << 4]) + imm_bytes(ops[2])
        if fmt == "REG_REG_OFFSET":
            return head + bytes([ops[0] | ops[1] << 4]) + rel(ops[2])
        if fmt == "REG_REG_REG":
            d, s1, s2 = ops
            return head + bytes([s1 | s2 << 4, d])
        if fmt == "OFFSET":
            return head + rel(ops[0])
        if fmt == "IMM":
            return head + imm_bytes(ops[0])
        if fmt == "IMM_IMM":
            i1 = imm_bytes(ops[0])
            return head + bytes([len(i1)]) + i1 + imm_bytes(ops[1])
        if fmt == "REG_REG":
            return head + bytes([ops[0] | ops[1] << 4])
        if fmt == "REG_REG_IMM_IMM":
            i1 = imm_bytes(ops[2])
            return head + bytes([ops[0] | ops[1] << 4, len(i1)]) + i1 + imm_bytes(ops[3])
        if fmt == "REG_IMM64":
            return head + bytes([ops[0]]) + (ops[1] & M64).to_bytes(8, "little")
        raise AssertionError(fmt)

    def assemble(self) -> Tuple[bytes, List[int], Dict[str, int]]:
        labels: Dict[str, int] = {}
        for _ in range(32):
            pc, code, starts, new = 0, bytearray(), [], {}
            for item in self.items:
                if item[0] == "label":
                    new[item[1]] = pc
                elif item[0] == "raw":
                    starts += [pc + s for s in item[2]]
                    code += item[1]
                    pc += len(item[1])
                else:
                    _, name, ops, pad = item
                    enc = self._encode(name, ops, pc, labels) + pad
                    starts.append(pc)
                    code += enc
                    pc += len(enc)
            if new == labels:
                return bytes(code), starts, labels
            labels = new
        raise AssertionError("labels did not converge")


# ------------------------------------------------------------------- vectors
VECTORS: Dict[str, dict] = {}
# jam_v1 programs that do not decode cleanly are rejected when loaded (the
# reference validates jam_v1 code); `emit` appends a `trap` when that makes
# one valid and otherwise leaves the vector out, recording it here.
JAM_REJECTED: List[str] = []


def regs13(values: Dict[int, int], isa: str, fill: int = 0) -> List[int]:
    is64 = ISA.is_64_bit(isa)
    out = [fill] * abi.REG_COUNT
    for k, v in values.items():
        out[k] = v
    return [canonical(v, is64) for v in out]


def emit(name: str, isa: str, program, *, regs: Optional[Sequence[int]] = None, gas: int = DEFAULT_GAS, pc: int = 0,
         pages: Sequence[Tuple[int, int, bool]] = (), memory: Sequence[Tuple[int, bytes]] = (),
         jump_table: Sequence[int] = (), entry_size: Optional[int] = None, starts=None, bitmask: Optional[bytes] = None):
    """Runs the oracle on a program and records the vector.  `program` is an
    Asm or raw code bytes (then `starts` or `bitmask` says where
    instructions begin)."""
    full = f"{isa}-{name}"
    assert full not in VECTORS, full
    if isinstance(program, Asm):
        code, starts, labels = program.assemble()
        jump_table = [labels[t] if isinstance(t, str) else t for t in jump_table]
        if isinstance(pc, str):
            pc = labels[pc]
    else:
        code = bytes(program)
    if bitmask is None:
        bitmask = bitmask_bytes(len(code), starts)
    if isa == "jam_v1" and oracle.Code(isa, code, bitmask, []).validate() is not None:
        fixed = code + bytes([opbyte(isa, "trap")])
        fixed_mask = bitmask_bytes(len(fixed), [s for s in range(len(code)) if (bitmask[s >> 3] >> (s & 7)) & 1]
                                   + [len(code)])
        if oracle.Code(isa, fixed, fixed_mask, []).validate() is not None:
            JAM_REJECTED.append(full)
            return None
        code, bitmask = fixed, fixed_mask
    regs = regs13({}, isa) if regs is None else [canonical(v, ISA.is_64_bit(isa)) for v in regs]
    assert len(regs) == abi.REG_COUNT
    model = oracle.Machine(oracle.Code(isa, code, bitmask, list(jump_table)), list(regs), gas, page_size=PAGE)
    for address, length, writable in pages:
        model.map(address, length, writable)
    for address, data in memory:
        model.poke(address, data)
    result = model.start(pc) or model.run()

    expected_memory = memory_chunks({page: model.pages[page].data for page in model.pages})
    vector = {
        "name": full,
        "isa": isa,
        "initial-regs": [oracle.reported(v, ISA.is_64_bit(isa)) for v in regs],
        "initial-pc": pc,
        "initial-page-map": [{"address": a, "length": n, "is-writable": w} for a, n, w in pages],
        "initial-memory": [{"address": a, "contents": list(d)} for a, d in memory if any(d)],
        "initial-gas": gas,
        "program": list(code_blob(code, bitmask, jump_table, entry_size)),
        "expected-status": result.status,
        "expected-regs": result.regs,
        "expected-pc": result.pc,
        "expected-memory": expected_memory,
        "expected-gas": result.gas,
    }
    if result.status == "page-fault":
        vector["expected-page-fault-address"] = result.fault
    if result.status == "host":
        vector["expected-hostcall"] = result.hostcall
    VECTORS[full] = vector
    return result


# --------------------------------------------------------------- operand sets
EDGE = [
    0, 1, 2, 7, 31, 32, 33, 63, 64, 65, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF,
    I32_MAX, I32_MIN, M32, 0x100000000, 0x100000005, I64_MAX, I64_MIN, 0xFFFFFFFF80000000,
    NEG1, neg(7), 0x123456789ABCDEF0, 0x180000000, 0xFFFFFFFF7FFFFFFF,
]
IMMS = [0, 1, -1, 2, -2, 7, -7, 31, 32, 63, 64, 0x7F, 0x80, -0x80, -0x81, 0x7FFF, 0x8000, -0x8000,
        0x123456, -0x123456, 0x7FFFFFFF, -0x80000000, 0x12345678]

GENERIC_PAIRS = [
    (0, 0), (1, 1), (NEG1, 1), (1, NEG1), (NEG1, NEG1), (I32_MAX, 1), (I32_MIN, M32), (I32_MIN, NEG1),
    (I64_MIN, NEG1), (I64_MAX, 1), (I64_MIN, I64_MAX), (0xFFFFFFFF80000000, I32_MIN),
    (0x123456789ABCDEF0, 0xFEDCBA9876543210), (neg(7), 2), (7, neg(2)), (neg(7), neg(2)),
    (5, 0), (0, 5), (0x100000005, 0x200000003), (M32, M32), (I32_MIN, I32_MIN), (0x7FFFFFFF00000000, 3),
]
SHIFT_VALUES = [1, I32_MIN, NEG1, I64_MIN | 0x12345678, 0xF0F0F0F0F0F0F0F0]
SHIFT_AMOUNTS = [0, 1, 31, 32, 33, 63, 64, 65, NEG1, neg(31), 0x100000001]
SHIFTS_RRR = {n for n in ISA.BY_NAME if n.startswith(("shift_", "rotate_")) and ISA.BY_NAME[n].format.upper() == "REG_REG_REG"}
DIVS = {n for n in ISA.BY_NAME if n.startswith(("div_", "rem_"))}
DIV_PAIRS = [
    (7, 0), (0, 0), (NEG1, 0), (I32_MIN, NEG1), (I32_MIN, M32), (I64_MIN, NEG1), (I64_MIN, 1), (neg(7), 2),
    (7, neg(2)), (neg(7), neg(2)), (100, 7), (M32, 2), (NEG1, 2), (0xFFFFFFFF80000000, 0xFFFFFFFF), (I64_MAX, I64_MIN),
    (0x100000007, 0x100000002), (I32_MIN, 0x100000000), (5, 0x100000000),
]


def chunks(seq: Sequence, n: int):
    for i in range(0, len(seq), n):
        yield seq[i:i + n]


def dedupe(items):
    seen, out = set(), []
    for x in items:
        if x not in seen:
            seen.add(x)
            out.append(x)
    return out


def sentinel(k: int) -> int:
    return 0xA5A5A5A5_00000000 | (0x1111 * (k + 1))


# ----------------------------------------------------------------- ALU groups
def pack_pairs(pairs, pool_size: int = 6, per: int = 6):
    """Groups operand pairs into [(pool of values, [(i, j) indices into it])]."""
    out, i = [], 0
    while i < len(pairs):
        pool, ops = [], []
        while i < len(pairs) and len(ops) < per:
            need = dedupe(v for v in pairs[i] if v not in pool)
            if len(pool) + len(need) > pool_size:
                break
            pool += need
            ops.append((pool.index(pairs[i][0]), pool.index(pairs[i][1])))
            i += 1
        out.append((pool, ops))
    return out


# latest64 and latest32 get every case; revive_v1 and jam_v1 share latest64's
# semantics (only the opcode numbering differs), so they get fewer.
FULL_ISAS = {"latest64", "latest32"}


def gen_alu(isa: str, rng: random.Random):
    is64 = ISA.is_64_bit(isa)
    limit = None if isa in FULL_ISAS else 2
    c = lambda v: canonical(v, is64)
    for op in ISA.OPCODES:
        name = op.name
        if not has(isa, name) or name not in oracle.ALU:
            continue
        fmt = op.format.upper()
        if fmt == "REG_REG_REG":
            if name in SHIFTS_RRR:
                pairs = [(v, s) for v in SHIFT_VALUES for s in SHIFT_AMOUNTS]
            elif name in DIVS:
                pairs = DIV_PAIRS + [(rng.choice(EDGE), rng.choice(EDGE)) for _ in range(6)]
            else:
                pairs = GENERIC_PAIRS + [(rng.choice(EDGE), rng.choice(EDGE)) for _ in range(6)]
            pairs = dedupe((c(a), c(b)) for a, b in pairs)
            # up to six operations per vector: sources from a pool in r0..r5, results in r6..r11
            for n, (pool, ops) in enumerate(pack_pairs(pairs)[:limit]):
                values = {12: sentinel(12)}
                values.update({k: v for k, v in enumerate(pool)})
                asm = Asm(isa)
                for k, (i, j) in enumerate(ops):
                    values[6 + k] = sentinel(6 + k)
                    asm.op(name, 6 + k, i, j)
                emit(f"alu-{name}-{n:02d}", isa, asm, regs=regs13(values, isa))
            # aliasing: d == s1, d == s2, s1 == s2, all three
            a, b = c(0x123456789ABCDEF0 if is64 else 0x9ABCDEF0), c(0x0F0F0F0F0F0F0F07 if is64 else 0x0F0F0F07)
            if name in DIVS:
                b = c(7)
            asm = Asm(isa).op(name, 0, 0, 1).op(name, 3, 2, 3).op(name, 4, 5, 5).op(name, 6, 6, 6)
            emit(f"alu-{name}-alias", isa, asm, regs=regs13({0: a, 1: b, 2: a, 3: b, 4: 9, 5: b, 6: a}, isa))
        elif fmt == "REG_REG_IMM":
            if "shift" in name or "rotate" in name:
                if "alt" in name:
                    pairs = [(s, imm) for imm in (1, -1, -0x80000000, 0x12345678, -0x2000) for s in SHIFT_AMOUNTS[:9]]
                else:
                    pairs = [(v, s) for v in SHIFT_VALUES for s in (0, 1, 31, 32, 33, 63, 64, 65, -1)]
            elif name.startswith("cmov"):
                pairs = [(v, imm) for v in (0, 1, NEG1, 0x100000000, I64_MIN) for imm in (0, 5, -1, -0x80000000)]
            else:
                pairs = [(rng.choice(EDGE), rng.choice(IMMS)) for _ in range(14)]
                pairs += [(0, 0), (NEG1, -1), (M32, 1), (I32_MAX, 1), (I32_MIN, -1), (I64_MAX, 1), (I64_MIN, -1),
                          (0x100000000, -1), (5, 0x7FFFFFFF), (5, -0x80000000)]
            pairs = dedupe((c(v), oracle.sx(imm, 32)) for v, imm in pairs)
            for n, group in enumerate(list(chunks(pairs, 6))[:limit]):
                values, asm = {12: sentinel(12)}, Asm(isa)
                for k, (v, imm) in enumerate(group):
                    s, d = 2 * k, 2 * k + 1
                    values.update({s: v, d: sentinel(d)})
                    asm.op(name, d, s, imm)
                emit(f"alu-{name}-{n:02d}", isa, asm, regs=regs13(values, isa))
            asm = Asm(isa).op(name, 0, 0, -5).op(name, 1, 1, 3)
            emit(f"alu-{name}-alias", isa, asm, regs=regs13({0: c(0x1234567890), 1: 0}, isa))
        elif fmt == "REG_REG":
            values_list = dedupe(c(v) for v in EDGE + [0x00FF00FF00FF00FF, 0x8000000000000001, 0x00000000FFFF8080])
            for n, group in enumerate(list(chunks(values_list, 6))[:limit]):
                values, asm = {12: sentinel(12)}, Asm(isa)
                for k, v in enumerate(group):
                    s, d = 2 * k, 2 * k + 1
                    values.update({s: v, d: sentinel(d)})
                    asm.op(name, d, s)
                emit(f"alu-{name}-{n:02d}", isa, asm, regs=regs13(values, isa))
            asm = Asm(isa).op(name, 3, 3)
            emit(f"alu-{name}-alias", isa, asm, regs=regs13({3: c(0x80000000000000F1)}, isa))
        elif fmt == "REG_IMM":  # load_imm
            imms = dedupe(oracle.sx(v, 32) for v in IMMS)
            for n, group in enumerate(chunks(imms, 12)):
                asm = Asm(isa)
                for k, imm in enumerate(group):
                    asm.op(name, k, imm)
                emit(f"alu-{name}-{n:02d}", isa, asm, regs=regs13({k: sentinel(k) for k in range(abi.REG_COUNT)}, isa))
        elif fmt == "REG_IMM64":
            imms = EDGE[:12] + [0x0123456789ABCDEF, 0xFEDCBA9876543210, I64_MIN, NEG1, 0x80000000, 0x7FFFFFFFFFFFFFFF]
            for n, group in enumerate(chunks(imms, 12)):
                asm = Asm(isa)
                for k, imm in enumerate(group):
                    asm.op(name, k, imm)
                emit(f"alu-{name}-{n:02d}", isa, asm, regs=regs13({k: sentinel(k) for k in range(abi.REG_COUNT)}, isa))


# -------------------------------------------------------------------- memory
RW, RO, RW2 = 0x20000, 0x21000, 0x22000
TOP = 0xFFFFF000
PATTERN = bytes(range(0x81, 0x81 + 48))  # high bits set, so sign extension shows


LIGHT_MEMORY_CASES = {"aligned", "unaligned", "straddle-missing-second", "straddle-rw-ro", "readonly", "low-address",
                      "top-end-exact", "wrap-unmapped"}


def _loads(isa):
    for width in ("u8", "i8", "u16", "i16", "u32", "i32", "u64"):
        for form in ("load", "load_indirect"):
            name = f"{form}_{width}"
            if has(isa, name):
                yield name, form, oracle.LOADS[width][0]


def _stores(isa):
    for width in ("u8", "u16", "u32", "u64"):
        for form in ("store", "store_indirect", "store_imm", "store_imm_indirect"):
            name = f"{form}_{width}"
            if has(isa, name):
                yield name, form, oracle.LOADS[width][0]


def gen_memory(isa: str):
    is64 = ISA.is_64_bit(isa)
    hi_bits = 0xABCD000000000000 if is64 else 0  # ignored by address computation

    def load_prog(name, form, address):
        """Program: load r1 <- [address] (indirect: r2 = address - 16, offset 16); halt."""
        asm = Asm(isa)
        regs = {1: sentinel(1), 12: HALT, 0: 0x77}
        if form == "load":
            asm.op(name, 1, oracle.sx(address, 32))
        else:
            base = (address - 0x10) & M32
            regs[2] = base | hi_bits
            asm.op(name, 1, 2, 0x10)
        asm.halt()
        return asm, regs13(regs, isa)

    for name, form, size in _loads(isa):
        mem = [(RW, PATTERN), (RO, PATTERN), (RO - 24, PATTERN[:24]), (TOP, PATTERN[:16]), (M32 - 15, PATTERN[:16])]
        pages_std = [(RW, PAGE, True), (RO, PAGE, False)]
        cases = [
            ("aligned", RW + 8, pages_std),
            ("unaligned", RW + 3, pages_std),
            ("readonly-page", RO + 5, pages_std),
            ("straddle-ok", RO - (size + 1) // 2, pages_std) if size > 1 else None,
            ("straddle-missing-second", RO - 1, [(RW, PAGE, True)]) if size > 1 else None,
            ("straddle-missing-first", RW - 1, [(RW, PAGE, True)]) if size > 1 else None,
            ("unmapped", 0x30000, pages_std),
            ("unmapped-high", 0x80000123, pages_std),
            ("low-address", 0x100, pages_std),
            ("low-straddle", 0x10000 - 1, pages_std + [(0x10000, PAGE, True)]) if size > 1 else None,
            ("low-page-mapped", 0xF800, pages_std + [(0xF000, PAGE, True)]),
            ("top-page", TOP + 16, pages_std + [(TOP, PAGE, True)]),
            ("top-end-exact", (1 << 32) - size, pages_std + [(TOP, PAGE, True)]),
            ("top-end-exact-unmapped", (1 << 32) - size, pages_std),
            ("wrap-mapped", M32 - (size // 2) + 1, pages_std + [(TOP, PAGE, True), (0, PAGE, True)]) if size > 1 else None,
            ("wrap-unmapped", M32, pages_std + [(0x0, PAGE, True)]) if size > 1 else None,
        ]
        for case in cases:
            if case is None or (isa not in FULL_ISAS and case[0] not in LIGHT_MEMORY_CASES):
                continue
            tag, address, pages = case
            mem_here = [(a, d) for a, d in mem if any(p <= a < p + n for p, n, _ in pages)]
            asm, regs = load_prog(name, form, address & M32)
            emit(f"mem-{name}-{tag}", isa, asm, regs=regs, pages=pages, memory=mem_here)
        if form == "load_indirect":
            # the base register's upper bits and a wrapping 32-bit sum
            asm = Asm(isa).op(name, 1, 2, RW + 0x1000).halt()
            emit(f"mem-{name}-base-wraps", isa, asm, regs=regs13({2: 0xFFFFF000, 12: HALT}, isa),
                 pages=[(RW, PAGE, True)], memory=[(RW, PATTERN)])
            asm = Asm(isa).op(name, 2, 2, 8).halt()  # dst == base
            emit(f"mem-{name}-dst-is-base", isa, asm, regs=regs13({2: RW, 12: HALT}, isa), pages=[(RW, PAGE, True)],
                 memory=[(RW, PATTERN)])
        # a fault in the middle of a block: earlier effects stay, whole block charged
        asm = Asm(isa).op("load_imm", 3, 42).op(name, 1, 0x30000) if form == "load" else \
            Asm(isa).op("load_imm", 3, 42).op(name, 1, 2, 0x10)
        asm.op("load_imm", 4, 43).halt()
        emit(f"mem-{name}-fault-mid-block", isa, asm, regs=regs13({2: 0x40000, 12: HALT}, isa),
             pages=[(RW, PAGE, True)])

    for name, form, size in _stores(isa):
        value_reg = 0x1122334455667788 if is64 else canonical(0x8899AABB, False)
        imm_value = -0x3456789A if size >= 4 else -2

        def store_prog(address):
            asm = Asm(isa)
            regs = {1: value_reg, 12: HALT}
            base = (address - 0x20) & M32
            if form == "store":
                asm.op(name, 1, oracle.sx(address, 32))
            elif form == "store_indirect":
                regs[2] = base | hi_bits
                asm.op(name, 1, 2, oracle.sx((address - base) & M32, 32))
            elif form == "store_imm":
                asm.op(name, oracle.sx(address, 32), imm_value)
            else:
                regs[2] = base | hi_bits
                asm.op(name, 2, oracle.sx((address - base) & M32, 32), imm_value)
            asm.halt()
            return asm, regs13(regs, isa)

        two_rw = [(RW, PAGE, True), (RO, PAGE, True)]
        cases = [
            ("aligned", RW + 16, [(RW, PAGE, True)]),
            ("unaligned", RW + 5, [(RW, PAGE, True)]),
            ("straddle-ok", RO - 1, two_rw) if size > 1 else None,
            ("readonly", RO + 8, [(RW, PAGE, True), (RO, PAGE, False)]),
            ("straddle-rw-ro", RO - 1, [(RW, PAGE, True), (RO, PAGE, False)]) if size > 1 else None,
            ("straddle-ro-rw", RO - 1, [(RW, PAGE, False), (RO, PAGE, True)]) if size > 1 else None,
            ("straddle-rw-missing", RO - 1, [(RW, PAGE, True)]) if size > 1 else None,
            ("straddle-missing-rw", RW - 1, [(RW, PAGE, True)]) if size > 1 else None,
            ("straddle-ro-missing", RO - 1, [(RW, PAGE, False)]) if size > 1 else None,
            ("unmapped", 0x50000, [(RW, PAGE, True)]),
            ("low-address", 0x8, [(RW, PAGE, True)]),
            ("low-readonly-page", 0xF010, [(RW, PAGE, True), (0xF000, PAGE, False)]),
            ("low-straddle", 0x10000 - 1, [(0x10000, PAGE, True)]) if size > 1 else None,
            ("top-page", TOP + 8, [(TOP, PAGE, True)]),
            ("top-end-exact", (1 << 32) - size, [(TOP, PAGE, True)]),
            ("top-end-exact-readonly", (1 << 32) - size, [(TOP, PAGE, False)]),
            ("wrap-mapped", M32, [(TOP, PAGE, True), (0, PAGE, True)]) if size > 1 else None,
            ("wrap-unmapped", M32, [(0, PAGE, True)]) if size > 1 else None,
        ]
        for case in cases:
            if case is None or (isa not in FULL_ISAS and case[0] not in LIGHT_MEMORY_CASES):
                continue
            tag, address, pages = case
            asm, regs = store_prog(address & M32)
            emit(f"mem-{name}-{tag}", isa, asm, regs=regs, pages=pages)
        asm, regs = store_prog(RW + 0x40)
        asm.items.insert(0, ("insn", "load_imm", (5, -9), b""))
        emit(f"mem-{name}-then-more", isa, asm, regs=regs, pages=[(RW, PAGE, True)])

    # store then load back through every width, little-endian and overlapping
    asm = Asm(isa)
    asm.op("store_indirect_u32", 1, 2, 0).op("store_indirect_u16", 3, 2, 3).op("store_imm_indirect_u8", 2, 1, -1)
    asm.op("load_indirect_u8", 4, 2, 0).op("load_indirect_i16", 5, 2, 1).op("load_indirect_i32", 6, 2, 2)
    if has(isa, "load_indirect_u64"):
        asm.op("load_indirect_u64", 7, 2, 0).op("store_indirect_u64", 7, 2, 9)
    asm.halt()
    emit("mem-roundtrip", isa, asm, regs=regs13({1: 0x80C0E0F0, 2: RW + 0x100, 3: 0xFEED, 12: HALT}, isa),
         pages=[(RW, PAGE, True)])
    # every page-map entry length rounds out to whole pages
    asm = Asm(isa).op("load_indirect_u8", 1, 2, 0).op("store_indirect_u8", 1, 2, 1).halt()
    emit("mem-partial-page-map", isa, asm, regs=regs13({2: RW + 0x7F0, 12: HALT}, isa),
         pages=[(RW + 0x7F0, 4, True)], memory=[(RW + 0x7F0, b"\x99")])


# -------------------------------------------------------------- control flow
BRANCH_CASES_RR = [(1, 2), (2, 1), (5, 5), (NEG1, 1), (1, NEG1), (I64_MIN, I64_MAX), (I32_MIN, I32_MAX), (0, NEG1)]
BRANCH_CASES_RI = [(1, 2), (2, 1), (5, 5), (NEG1, -1), (M32, -1), (0, -1), (I64_MIN, 0x7FFFFFFF), (I32_MIN, -0x80000000),
                   (0x7FFFFFFF, -0x80000000), (0x100000000, 0)]


def branch_operands(name: str, want: bool):
    signed, cmp = oracle.BRANCHES[name]
    for a, b in ((0, 0), (1, 2), (2, 1)):
        if cmp(a, b) == want:
            return a, b
    raise AssertionError(name)


def gen_control(isa: str):
    is64 = ISA.is_64_bit(isa)
    c = lambda v: canonical(v, is64)
    for name in oracle.BRANCHES:
        fmt = ISA.BY_NAME[name].format.upper()
        cases = BRANCH_CASES_RR if fmt == "REG_REG_OFFSET" else BRANCH_CASES_RI
        if isa not in FULL_ISAS:
            cases = cases[:5]
        for n, (a, b) in enumerate(cases):
            asm = Asm(isa)
            if fmt == "REG_REG_OFFSET":
                asm.op(name, 0, 1, "taken")
                regs = {0: c(a), 1: c(b)}
            else:
                asm.op(name, 0, b, "taken")
                regs = {0: c(a)}
            regs[12] = HALT
            asm.op("load_imm", 2, 1).halt().label("taken").op("load_imm", 2, 2).halt()
            emit(f"branch-{name}-{n:02d}", isa, asm, regs=regs13(regs, isa))
        # backward branch (a loop) and a branch to itself
        asm = Asm(isa).op("load_imm", 0, 3).op("fallthrough").label("loop").op("add_imm_32", 0, 0, -1)
        asm.op("load_imm", 1, 0) if fmt == "REG_REG_OFFSET" else None
        asm.op(name, 0, 1, "loop") if fmt == "REG_REG_OFFSET" else asm.op(name, 0, 0, "loop")
        asm.halt()
        emit(f"branch-{name}-loop", isa, asm, regs=regs13({12: HALT}, isa), gas=300)
        # target is not a basic-block start: traps whether or not the branch is taken
        for taken in (True, False):
            a, b = branch_operands(name, taken)
            asm = Asm(isa)
            if fmt == "REG_REG_OFFSET":
                asm.op(name, 0, 1, "mid")
            else:
                asm.op(name, 0, b, "mid")
            asm.op("load_imm", 5, 1).op("fallthrough").op("load_imm", 3, 4).label("mid").op("load_imm", 3, 5).halt()
            emit(f"branch-{name}-bad-target-{'taken' if taken else 'not-taken'}", isa, asm,
                 regs=regs13({0: c(a), 1: c(b), 12: HALT}, isa))
        # the fall-through is not a valid target (the branch is the last instruction)
        asm = Asm(isa).op("fallthrough").label("t").op(name, 0, 0, "t")
        emit(f"branch-{name}-last-instruction", isa, asm, regs=regs13({0: 0}, isa))
        # target past the end of the code
        asm = Asm(isa).op(name, 0, 0, 0x1000).op("trap")
        emit(f"branch-{name}-target-out-of-code", isa, asm)

    # jump
    asm = Asm(isa).op("jump", "t").op("load_imm", 1, 1).op("trap").label("t").op("load_imm", 2, 2).halt()
    emit("jump-forward", isa, asm, regs=regs13({12: HALT}, isa))
    asm = Asm(isa).op("jump", "t").label("back").op("load_imm", 3, 3).halt().label("t").op("jump", "back")
    emit("jump-backward", isa, asm, regs=regs13({12: HALT}, isa))
    asm = Asm(isa).op("load_imm", 1, 1).op("fallthrough").op("jump", "m").op("load_imm", 1, 2).label("m").op("trap")
    emit("jump-mid-block", isa, asm)
    asm = Asm(isa).op("load_imm", 1, 1).op("jump", 0x100)
    emit("jump-out-of-code", isa, asm)
    asm = Asm(isa).op("load_imm", 1, 1).op("jump", "end").label("end")
    emit("jump-to-code-end", isa, asm)
    asm = Asm(isa).op("jump", 0)
    emit("jump-to-self", isa, asm, gas=25)
    asm = Asm(isa).op("jump", "t").raw(bytes([0xFF]), (0,)).label("t").op("load_imm", 1, 1).halt()
    emit("jump-after-invalid-opcode", isa, asm, regs=regs13({12: HALT}, isa))

    # jump_indirect / load_imm_and_jump_indirect through the jump table
    def table_prog(jump):
        asm = Asm(isa)
        jump(asm)
        asm.label("t0").op("load_imm", 5, 100).halt()
        asm.label("t1").op("load_imm", 5, 101).op("load_imm", 6, 7).label("t1mid").op("load_imm", 5, 102).halt()
        asm.label("t2").op("load_imm", 5, 103).halt()
        return asm

    table = ["t0", "t1mid", "t2", 0x1000, "t1"]
    addresses = {
        "entry0": 2, "entry2": 6, "entry4": 10, "misaligned": 3, "zero": 0, "invalid-target": 4,
        "out-of-code-target": 8, "past-table": 12, "far-past-table": 0x1000, "halt": HALT, "near-halt": HALT + 2,
        "high-bits": 0x100000002 if is64 else 2, "minus": M32,
    }
    for tag, address in addresses.items():
        asm = table_prog(lambda a: a.op("jump_indirect", 0, 0))
        emit(f"jump_indirect-{tag}", isa, asm, regs=regs13({0: c(address), 12: HALT}, isa), jump_table=table)
    # base + offset wraps modulo 2**32
    asm = table_prog(lambda a: a.op("jump_indirect", 0, 7))
    emit("jump_indirect-wrapping-sum", isa, asm, regs=regs13({0: c(M32 - 4), 12: HALT}, isa), jump_table=table)
    asm = table_prog(lambda a: a.op("jump_indirect", 0, -0x10000))
    emit("jump_indirect-offset-to-halt", isa, asm, regs=regs13({0: c(HALT + 0x10000), 12: HALT}, isa),
         jump_table=table)
    for size in (1, 2, 3, 4):
        asm = table_prog(lambda a: a.op("jump_indirect", 0, 0))
        emit(f"jump_indirect-entry-size-{size}", isa, asm, regs=regs13({0: 6, 12: HALT}, isa),
             jump_table=["t0", "t1mid", "t2"], entry_size=size)
    for tag, address in (("entry2", 6), ("invalid-target", 4), ("halt", HALT), ("misaligned", 5), ("zero", 0)):
        asm = table_prog(lambda a: a.op("load_imm_and_jump_indirect", 1, 0, -77, 0))
        emit(f"load_imm_and_jump_indirect-{tag}", isa, asm, regs=regs13({0: c(address), 12: HALT}, isa),
             jump_table=table)
        # ra == base: the address is computed before ra is written
        asm = table_prog(lambda a: a.op("load_imm_and_jump_indirect", 0, 0, 0x1234, 0))
        emit(f"load_imm_and_jump_indirect-ra-is-base-{tag}", isa, asm, regs=regs13({0: c(address), 12: HALT}, isa),
             jump_table=table)
    asm = table_prog(lambda a: a.op("load_imm_and_jump_indirect", 1, 0, 5, 2))
    emit("load_imm_and_jump_indirect-offset", isa, asm, regs=regs13({0: 4, 12: HALT}, isa), jump_table=table)
    # load_imm_and_jump
    for tag, target in (("valid", "t0"), ("mid-block", "t1mid"), ("out-of-code", 0x1000), ("self", 0)):
        asm = table_prog(lambda a: a.op("load_imm_and_jump", 3, -5, target))
        emit(f"load_imm_and_jump-{tag}", isa, asm, regs=regs13({12: HALT}, isa), jump_table=table, gas=50)
    # an empty jump table
    asm = Asm(isa).op("jump_indirect", 0, 0).op("trap")
    emit("jump_indirect-no-table", isa, asm, regs=regs13({0: 2}, isa))


# ----------------------------------------------------------------------- gas
def gen_gas(isa: str):
    def straight(n):
        asm = Asm(isa)
        for k in range(n):
            asm.op("load_imm", k % 12, k + 1)
        return asm.halt()

    cost = 5 + 1
    for tag, gas in (("exact", cost), ("one-short", cost - 1), ("zero", 0), ("negative", -5),
                     ("plenty", 1 << 62), ("max", (1 << 63) - 1)):
        emit(f"gas-single-block-{tag}", isa, straight(5), regs=regs13({12: HALT}, isa), gas=gas)
    # two blocks: enough for the first only
    def two_blocks():
        return Asm(isa).op("load_imm", 0, 1).op("load_imm", 1, 2).op("fallthrough") \
            .op("load_imm", 2, 3).op("load_imm", 3, 4).halt()
    for tag, gas in (("exact", 6), ("second-short", 5), ("first-only", 3), ("first-short", 2)):
        emit(f"gas-two-blocks-{tag}", isa, two_blocks(), regs=regs13({12: HALT}, isa), gas=gas)
    # a loop: gas runs out at the loop head after some iterations
    def loop(n):
        return Asm(isa).op("load_imm", 0, n).op("fallthrough").label("l").op("add_imm_32", 0, 0, -1) \
            .op("branch_not_eq_imm", 0, 0, "l").halt()
    for tag, gas in (("exact", 2 + 2 * 10 + 1), ("short", 2 + 2 * 10), ("mid-loop", 9)):
        emit(f"gas-loop-{tag}", isa, loop(10), regs=regs13({12: HALT}, isa), gas=gas)
    # implicit trap at the end costs one
    emit("gas-implicit-trap", isa, Asm(isa).op("load_imm", 0, 1), gas=2)
    emit("gas-implicit-trap-short", isa, Asm(isa).op("load_imm", 0, 1), gas=1)
    emit("gas-trap", isa, Asm(isa).op("trap"), gas=1)
    emit("gas-trap-short", isa, Asm(isa).op("trap"), gas=0)
    # entering at a pc the host chose
    prog = lambda: Asm(isa).op("load_imm", 0, 1).op("fallthrough").label("b").op("load_imm", 1, 2) \
        .label("m").op("load_imm", 2, 3).op("load_imm", 3, 4).halt()
    emit("entry-block-start", isa, prog(), regs=regs13({12: HALT}, isa), pc="b")
    emit("entry-mid-block", isa, prog(), regs=regs13({12: HALT}, isa), pc="m")
    emit("entry-mid-block-short", isa, prog(), regs=regs13({12: HALT}, isa), pc="m", gas=3)
    emit("entry-mid-block-exact", isa, prog(), regs=regs13({12: HALT}, isa), pc="m", gas=4)
    code, starts, labels = prog().assemble()
    emit("entry-not-an-instruction", isa, prog(), regs=regs13({12: HALT}, isa), pc=labels["m"] + 1)
    emit("entry-past-code", isa, prog(), regs=regs13({12: HALT}, isa), pc=len(code) + 5)


# ------------------------------------------------------------- misc / encoding
def gen_misc(isa: str, rng: random.Random):
    is64 = ISA.is_64_bit(isa)
    c = lambda v: canonical(v, is64)
    H = {12: HALT}
    emit("trap", isa, Asm(isa).op("load_imm", 0, 9).op("trap").op("load_imm", 0, 10))
    emit("trap-only", isa, Asm(isa).op("trap"))
    emit("fallthrough-chain", isa, Asm(isa).op("fallthrough").op("fallthrough").op("load_imm", 1, 1).halt(),
         regs=regs13(H, isa))
    emit("fallthrough-at-end", isa, Asm(isa).op("load_imm", 1, 1).op("fallthrough"))
    emit("fallthrough-only", isa, Asm(isa).op("fallthrough"))
    if has(isa, "unlikely"):
        emit("unlikely", isa, Asm(isa).op("unlikely").op("load_imm", 1, 1).op("unlikely").halt(), regs=regs13(H, isa))
        emit("unlikely-gas-short", isa, Asm(isa).op("unlikely").op("load_imm", 1, 1).halt(), regs=regs13(H, isa), gas=2)
        asm = Asm(isa).op("jump", "t").label("t").op("unlikely").op("load_imm", 2, 2).halt()
        emit("unlikely-as-target", isa, asm, regs=regs13(H, isa))
    emit("empty-code", isa, b"", starts=[])
    emit("run-off-end", isa, Asm(isa).op("load_imm", 0, 1).op("load_imm", 1, 2))

    # ecalli
    for n, imm in enumerate((0, 1, 0x7F, 0x80, -1, 0x7FFFFFFF, -0x80000000, 0x123456)):
        asm = Asm(isa).op("load_imm", 0, 7).op("ecalli", imm).op("load_imm", 0, 8).halt()
        emit(f"ecalli-{n:02d}", isa, asm, regs=regs13(H, isa))
    emit("ecalli-last", isa, Asm(isa).op("ecalli", 3))
    emit("ecalli-gas-whole-block", isa, Asm(isa).op("ecalli", 3).op("load_imm", 1, 1).op("load_imm", 1, 2).halt(),
         regs=regs13(H, isa), gas=4)
    emit("ecalli-gas-short", isa, Asm(isa).op("ecalli", 3).op("load_imm", 1, 1).halt(), regs=regs13(H, isa), gas=2)

    # invalid opcodes: bytes this ISA does not define
    defined = ISA.opcode_table(isa)
    others = sorted({o.byte_for(i) for o in ISA.OPCODES for i in ISAS if o.byte_for(i) is not None} - set(defined))
    undefined = [b for b in range(256) if b not in defined]
    picks = dedupe(others[:6] + others[-3:] + [undefined[0], undefined[len(undefined) // 2], 255])
    for b in picks:
        if b in defined:
            continue
        asm = Asm(isa).op("load_imm", 0, 1).raw(bytes([b, 0x11, 0x22])).op("load_imm", 0, 2).halt()
        emit(f"invalid-opcode-{b:03d}", isa, asm, regs=regs13(H, isa))
    emit("invalid-opcode-first", isa, Asm(isa).raw(bytes([255])).op("load_imm", 0, 2).halt(), regs=regs13(H, isa))

    # odd encodings -----------------------------------------------------
    li = opbyte(isa, "load_imm")
    # immediates of every length, with sign extension from each
    for n, imm in enumerate([b"", b"\x7f", b"\x80", b"\xff\x7f", b"\x00\x80", b"\xff\xff\x7f", b"\x00\x00\x80",
                             b"\xff\xff\xff\x7f", b"\x00\x00\x00\x80", b"\x78\x56\x34\x12\xaa\xbb"]):
        emit(f"enc-load_imm-len-{n:02d}", isa, bytes([li, 0x03]) + imm, starts=[0], regs=regs13({3: sentinel(3)}, isa))
    # skip up to 24: trailing bytes of a long instruction are ignored
    for skip in (5, 9, 16, 24):
        body = bytes([li, 0x04, 0x01, 0x80, 0xFF, 0x7F]) + bytes([0x99]) * (skip - 5)
        emit(f"enc-load_imm-skip-{skip}", isa, body + bytes([li, 0x05, 0x01]), starts=[0, skip + 1])
    # a gap over 24 bytes: the next instruction is the implicit trap at +25
    for gap in (24, 25, 30):
        body = bytes([li, 0x04, 0x07]) + bytes([0x99]) * (gap - 2) + bytes([li, 0x05, 0x08])
        emit(f"enc-gap-{gap}", isa, body, starts=[0, gap + 1])
    # a fallthrough whose next instruction is past a long gap: the implicit trap is a block of its own
    body = bytes([opbyte(isa, "fallthrough")]) + bytes([0x99]) * 27 + bytes([li, 0x05, 0x08])
    emit("enc-fallthrough-gap", isa, body, starts=[0, 28])
    # a jump target right after a long gap: no previous instruction in reach
    asm = Asm(isa).op("jump", "t").raw(bytes([li, 0x01, 0x01]) + bytes(26), (0,)).label("t").op("load_imm", 2, 2)
    emit("enc-jump-after-gap", isa, asm)
    code = bytes([li, 0x01, 0x01]) + bytes(26) + bytes([li, 0x02, 0x02])
    emit("entry-after-gap", isa, code, starts=[0, 29], pc=29)
    # the first byte is not an instruction start
    emit("entry-first-not-marked", isa, bytes([li, 0x01, 0x01, li, 0x02, 0x02]), starts=[3], pc=0)
    emit("entry-first-not-marked-second", isa, bytes([li, 0x01, 0x01, li, 0x02, 0x02]), starts=[3], pc=3)
    # register nibbles 13..15 are register 12; the high nibble of a REG_REG_REG destination byte is ignored
    add = opbyte(isa, "add_32")
    for n, (b1, b2) in enumerate([(0xDE, 0x0F), (0xF1, 0x2D), (0x10, 0xE3), (0xFF, 0xFF)]):
        emit(f"enc-reg-nibble-{n}", isa, bytes([add, b1, b2]), starts=[0],
             regs=regs13({k: 0x1000 * (k + 1) + k for k in range(abi.REG_COUNT)}, isa))
    emit("enc-load_imm-reg-15", isa, bytes([li, 0xFF, 0x05]), starts=[0])
    # REG_IMM_IMM with the first immediate longer than the instruction: it
    # reads the following bytes, and the second immediate is empty
    sii = opbyte(isa, "store_imm_indirect_u32")
    for n, first in enumerate((0x42, 0x72, 0x32, 0x12, 0xF2)):
        code = bytes([sii, first, 0x10, li, 0x03, 0x01])
        emit(f"enc-imm-longer-than-skip-{n}", isa, code, starts=[0, 3], regs=regs13({2: RW}, isa),
             pages=[(RW, 2 * PAGE, True)])
    si = opbyte(isa, "store_imm_u16")
    for n, first in enumerate((0x03, 0x07, 0xFB, 0x02)):
        code = bytes([si, first, 0x00, 0x00, 0x02, 0x34, 0x12, 0x99])
        emit(f"enc-imm_imm-lengths-{n}", isa, code, starts=[0], pages=[(RW, PAGE, True)])
    lij = opbyte(isa, "load_imm_and_jump_indirect")
    for n, aux in enumerate((0x01, 0x09, 0x05)):
        code = bytes([lij, 0x10, aux, 0x05, 0x02, 0x00])
        emit(f"enc-regs2_imm2-lengths-{n}", isa, code + bytes([opbyte(isa, "trap")]), starts=[0, 6],
             regs=regs13({1: 0, 12: HALT}, isa), jump_table=[6])
    # offsets of every length (a jump with no offset bytes jumps to itself)
    jmp = opbyte(isa, "jump")
    emit("enc-jump-empty-offset", isa, bytes([jmp]), starts=[0], gas=7)
    beq = opbyte(isa, "branch_eq_imm")
    emit("enc-branch-to-self", isa, bytes([beq, 0x00]), starts=[0], gas=9)
    if has(isa, "load_imm64"):
        l64 = opbyte(isa, "load_imm64")
        # the 8 immediate bytes are read past a short instruction (into the next one, then zeros)
        emit("enc-load_imm64-short", isa, bytes([l64, 0x01, li, 0x02, 0x7F]), starts=[0, 2])
        emit("enc-load_imm64-short-end", isa, bytes([l64, 0x01, 0xAA, 0xBB]), starts=[0])
        emit("enc-load_imm64-long", isa, bytes([l64, 0x01]) + bytes(range(1, 12)), starts=[0])
    emit("enc-ecalli-long", isa, bytes([opbyte(isa, "ecalli"), 0x01, 0x02, 0x03, 0x84, 0x55, 0x66]), starts=[0])

    # memset
    if has(isa, "memset"):
        ms = lambda: Asm(isa).op("memset").halt()
        base = {7: RW + 0x10, 8: 0x1AB, 9: 20, 12: HALT}
        emit("memset-basic", isa, ms(), regs=regs13(base, isa), pages=[(RW, PAGE, True)])
        emit("memset-zero-count", isa, ms(), regs=regs13({**base, 9: 0}, isa), pages=[(RW, PAGE, True)], gas=2)
        emit("memset-exact-gas", isa, ms(), regs=regs13(base, isa), pages=[(RW, PAGE, True)], gas=22)
        emit("memset-gas-short", isa, ms(), regs=regs13(base, isa), pages=[(RW, PAGE, True)], gas=7)
        emit("memset-gas-none-left", isa, ms(), regs=regs13(base, isa), pages=[(RW, PAGE, True)], gas=2)
        emit("memset-block-short", isa, ms(), regs=regs13(base, isa), pages=[(RW, PAGE, True)], gas=1)
        emit("memset-page-fault", isa, ms(), regs=regs13({**base, 7: RO - 8, 9: 16}, isa), pages=[(RW, PAGE, True)])
        emit("memset-readonly", isa, ms(), regs=regs13({**base, 7: RO - 4, 9: 16}, isa),
             pages=[(RW, PAGE, True), (RO, PAGE, False)])
        emit("memset-low", isa, ms(), regs=regs13({**base, 7: 0x10, 9: 16}, isa), pages=[(RW, PAGE, True)])
        emit("memset-two-pages", isa, ms(), regs=regs13({**base, 7: RO - 8, 9: 16}, isa),
             pages=[(RW, 2 * PAGE, True)])
        emit("memset-top", isa, ms(), regs=regs13({**base, 7: c(M32 - 3), 9: 4}, isa), pages=[(TOP, PAGE, True)])
        emit("memset-top-unmapped", isa, ms(), regs=regs13({**base, 7: c(M32 - 3), 9: 4}, isa),
             pages=[(RW, PAGE, True)])
        if is64:
            emit("memset-high-bits", isa, ms(), regs=regs13({**base, 7: 0x0000000500020010, 9: 8}, isa),
                 pages=[(RW, PAGE, True)])
            emit("memset-count-high-bits", isa, ms(), regs=regs13({**base, 9: 0xF00000003}, isa),
                 pages=[(RW, PAGE, True)])
        else:
            emit("memset-count-sign", isa, ms(), regs=regs13({**base, 9: c(0x80000003)}, isa),
                 pages=[(RW, PAGE, True)], gas=30)
        asm = Asm(isa).op("load_imm", 0, 5).op("memset").op("load_imm", 0, 6).halt()
        emit("memset-mid-block-gas", isa, asm, regs=regs13(base, isa), pages=[(RW, PAGE, True)], gas=10)

    # sbrk (no heap is configured by the vector runner: every request fails
    # except sbrk(0), which reports the heap top, 0)
    if has(isa, "sbrk"):
        for n, size in enumerate((0, 1, 4096, M32, NEG1, 0x100000000)):
            asm = Asm(isa).op("sbrk", 1, 2).op("sbrk", 3, 3).halt()
            emit(f"sbrk-{n}", isa, asm, regs=regs13({1: sentinel(1), 2: c(size), 3: c(size), 12: HALT}, isa))


# --------------------------------------------------------------------- main
def coverage(vectors: Dict[str, dict]) -> Dict[str, set]:
    """Instruction names each ISA's vectors execute or decode (from 0)."""
    seen: Dict[str, set] = {isa: set() for isa in ISAS}
    for v in vectors.values():
        blob = bytes(v["program"])
        pos = 0

        def rd():
            nonlocal pos
            first = blob[pos]
            n = 0
            while n < 4 and first & (0x80 >> n):
                n += 1
            value = (first & (0xFF >> (n + 1) if n < 4 else 0)) << (8 * n) if n < 4 else 0
            value |= int.from_bytes(blob[pos + 1:pos + 1 + n], "little")
            pos += 1 + n
            return value

        count = rd()
        size = blob[pos]
        pos += 1
        length = rd()
        pos += count * size
        code, mask = blob[pos:pos + length], blob[pos + length:]
        c = oracle.Code(v["isa"], code, mask, [])
        for pc in range(length):
            if c.bit(pc):
                seen[v["isa"]].add(c.decode(pc).name)
    return seen


def generate() -> Dict[str, dict]:
    VECTORS.clear()
    JAM_REJECTED.clear()
    for isa in ISAS:
        rng = random.Random(f"vmcore-vectors-{isa}")
        gen_alu(isa, rng)
        gen_memory(isa)
        gen_control(isa)
        gen_gas(isa)
        gen_misc(isa, rng)
    seen = coverage(VECTORS)
    for isa in ISAS:
        missing = sorted(o.name for o in ISA.OPCODES if has(isa, o.name) and o.name not in seen[isa])
        assert not missing, f"{isa}: no vector uses {missing}"
    return dict(VECTORS)


def render(vector: dict) -> str:
    lines = [f"  {json.dumps(k)}: {json.dumps(v, separators=(', ', ': '))}" for k, v in vector.items()]
    return "{\n" + ",\n".join(lines) + "\n}\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="do not write; exit 1 if tests/vectors/own is stale")
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    args = parser.parse_args(argv)
    vectors = generate()
    wanted = {f"{name}.json": render(v) for name, v in vectors.items()}
    existing = {p.name for p in args.out.glob("*.json")} if args.out.exists() else set()
    if args.check:
        stale = [n for n, text in wanted.items() if not (args.out / n).exists() or (args.out / n).read_text() != text]
        extra = sorted(existing - set(wanted))
        for n in stale[:20] + extra[:20]:
            print(f"stale: {n}")
        return 1 if stale or extra else 0
    args.out.mkdir(parents=True, exist_ok=True)
    for n in existing - set(wanted):
        os.remove(args.out / n)
    for n, text in wanted.items():
        path = args.out / n
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
    counts: Dict[str, int] = {}
    for v in vectors.values():
        counts[v["isa"]] = counts.get(v["isa"], 0) + 1
    print(f"{len(vectors)} vectors in {args.out}: " + ", ".join(f"{k} {n}" for k, n in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
