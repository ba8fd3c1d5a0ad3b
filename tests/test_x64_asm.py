"""The recompiler's x86-64 encoder (include/vmcore/x64_asm.h) against an
independent disassembler (capstone, from PyPI): every instruction form the
recompiler uses, over every register (REX and the rsp/rbp/r12/r13
addressing special cases included), operand size, memory-operand shape and
immediate width.  Each encoding must decode as exactly one instruction of
its full length, with the expected mnemonic and operands."""
from __future__ import annotations

import os
import random

import pytest

if os.environ.get("VMCORE_UNDER_ASAN"):
    # capstone's C library aborts when loaded under the preloaded ASan
    # runtime; the encoder is still exercised by the compiler tests.
    pytest.skip("capstone cannot be loaded under the ASan preload (make test-asan)", allow_module_level=True)
capstone = pytest.importorskip("capstone")
from capstone import x86_const as X  # noqa: E402

from vmcore import _engine  # noqa: E402

REG64 = ["rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi"] + [f"r{i}" for i in range(8, 16)]
REG32 = ["eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi"] + [f"r{i}d" for i in range(8, 16)]
REG16 = ["ax", "cx", "dx", "bx", "sp", "bp", "si", "di"] + [f"r{i}w" for i in range(8, 16)]
REG8 = ["al", "cl", "dl", "bl", "spl", "bpl", "sil", "dil"] + [f"r{i}b" for i in range(8, 16)]
NAMES = {8: REG64, 4: REG32, 2: REG16, 1: REG8}
ALU = ["add", "or", "adc", "sbb", "and", "sub", "xor", "cmp"]
SHIFT = {0: "rol", 1: "ror", 4: "shl", 5: "shr", 7: "sar"}
UNARY = {2: "not", 3: "neg", 4: "mul", 5: "imul", 6: "div", 7: "idiv"}
SHIFTX = {1: "shlx", 2: "sarx", 3: "shrx"}
BITCOUNT = {0xB8: "popcnt", 0xBC: "tzcnt", 0xBD: "lzcnt"}
CC = ["o", "no", "b", "ae", "e", "ne", "be", "a", "s", "ns", "p", "np", "l", "ge", "le", "g"]
NONE, RIP = -1, -2
SIZES = (1, 2, 4, 8)
DISPS = (0, 1, -1, 0x7F, 0x80, -0x80, -0x81, 0x1234, -0x1000, 0x7FFFFFFF, -0x80000000)
IMMS = (0, 1, -1, 2, 0x7F, 0x80, -0x80, -0x81, 0xFF, 0x1234, 0x7FFF, -0x8000, 0x12345678, 0x7FFFFFFF, -0x80000000)

MD = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
MD.detail = True


def reg(size, r):
    return ("reg", NAMES[size][r])


def imm(value, bits):
    return ("imm", value & ((1 << bits) - 1), bits)


def mem(size, base, index, scale, disp):
    return ("mem", size, base, index, scale, disp)


def decode_one(code: bytes):
    insns = list(MD.disasm(code, 0))
    assert len(insns) == 1 and insns[0].size == len(code), (code.hex(), [(i.mnemonic, i.op_str) for i in insns])
    return insns[0]


def operand_view(insn, op, want):
    """Render a capstone operand in the shape of the expectation `want`."""
    if op.type == X.X86_OP_REG:
        return ("reg", insn.reg_name(op.reg))
    if op.type == X.X86_OP_IMM:
        bits = want[2] if want[0] == "imm" else 64
        return ("imm", op.imm & ((1 << bits) - 1), bits)
    if op.type == X.X86_OP_MEM:
        m = op.mem
        base = NONE if m.base == 0 else (RIP if insn.reg_name(m.base) == "rip" else REG64.index(insn.reg_name(m.base)))
        index = NONE if m.index == 0 else REG64.index(insn.reg_name(m.index))
        scale = {1: 0, 2: 1, 4: 2, 8: 3}[m.scale]
        disp = m.disp  # rip-relative: from the end of the instruction, as the encoder takes it
        if index == NONE and want[0] == "mem" and want[3] == NONE:
            scale = want[4]  # the scale of an absent index is meaningless
        return ("mem", op.size, base, index, scale, disp)
    raise AssertionError(op.type)


def check(form, operands, mnemonic, expected):
    code = _engine.assemble([(form, *operands)])
    insn = decode_one(code)
    assert insn.mnemonic == mnemonic, (form, operands, code.hex(), insn.mnemonic, insn.op_str)
    got = [operand_view(insn, op, w) for op, w in zip(insn.operands, expected)]
    assert len(insn.operands) == len(expected) and got == list(expected), (form, operands, code.hex(), insn.op_str)
    return code


def rng_for(name):
    return random.Random(f"x64-{name}")


def mem_operands(rng, n):
    """Edge shapes (every base, rsp/rbp/r12/r13 special cases, no base, rip)
    then random ones."""
    out = []
    for base in range(16):
        for disp in (0, 1, 0x80, -0x1000):
            out.append((base, NONE, 0, disp))
        out.append((base, 0, 3, 0))
        out.append((base, 13, 2, 0))
        out.append((base, 12, 0, 0x7F))
    for index in [i for i in range(16) if i != 4]:
        out.append((NONE, index, 3, 0))
        out.append((NONE, index, 0, -0x1000))
    out.append((NONE, NONE, 0, 0x1000))
    out.append((RIP, NONE, 0, 0x100))
    out.append((RIP, NONE, 0, -7))
    for _ in range(n):
        base = rng.choice([NONE] + list(range(16)))
        index = rng.choice([NONE] + [i for i in range(16) if i != 4])
        out.append((base, index, rng.randrange(4), rng.choice(DISPS)))
    return out


def mem_expect(size, m):
    base, index, scale, disp = m
    return mem(size, base, index, scale, disp)


# ------------------------------------------------------------------ moves
def test_mov_rr():
    for size in SIZES:
        for d in range(16):
            for s in range(16):
                check("mov_rr", (size, d, s), "mov", [reg(size, d), reg(size, s)])


def test_load_store():
    rng = rng_for("ldst")
    for size in SIZES:
        for m in mem_operands(rng, 60):
            r = rng.randrange(16)
            check("load", (size, r, *m), "mov", [reg(size, r), mem_expect(size, m)])
            check("store", (size, *m, r), "mov", [mem_expect(size, m), reg(size, r)])
            v = rng.choice(IMMS)
            if size == 1:
                v = v & 0xFF
            elif size == 2:
                v = v & 0xFFFF
            check("store_imm", (size, *m, v), "mov", [mem_expect(size, m), imm(v, 8 * size)])


def test_mov_immediates():
    for r in range(16):
        for v in (0, 1, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF):
            check("mov_r32_imm", (r, v), "mov", [reg(4, r), imm(v, 32)])
        for v in (0, -1, 0x7FFFFFFF, -0x80000000):
            check("mov_r64_simm32", (r, v), "mov", [reg(8, r), imm(v, 64)])
        for v in (0, 1 << 63, 0x123456789ABCDEF0, 0xF23456789ABCDEF0, -1):
            check("movabs", (r, v), "movabs", [reg(8, r), imm(v, 64)])
        # the shortest form for each value range
        check("mov_imm64", (r, 0), "xor", [reg(4, r), reg(4, r)])
        check("mov_imm64", (r, 0xFFFFFFFF), "mov", [reg(4, r), imm(0xFFFFFFFF, 32)])
        check("mov_imm64", (r, -5), "mov", [reg(8, r), imm(-5, 64)])
        check("mov_imm64", (r, 1 << 40), "movabs", [reg(8, r), imm(1 << 40, 64)])
        check("mov_imm64_keep_flags", (r, 0), "mov", [reg(4, r), imm(0, 32)])


def test_movzx_movsx():
    rng = rng_for("ext")
    for dsz in (4, 8):
        for ssz in (1, 2, 4):
            for d in range(16):
                for s in range(16):
                    if ssz != 4:
                        check("movzx_rr", (dsz, ssz, d, s), "movzx", [reg(dsz, d), reg(ssz, s)])
                    if ssz == 4 and dsz == 4:
                        continue
                    check("movsx_rr", (dsz, ssz, d, s), "movsxd" if ssz == 4 else "movsx", [reg(dsz, d), reg(ssz, s)])
            for m in mem_operands(rng, 20):
                d = rng.randrange(16)
                if ssz != 4:
                    check("movzx_rm", (dsz, ssz, d, *m), "movzx", [reg(dsz, d), mem_expect(ssz, m)])
                if not (ssz == 4 and dsz == 4):
                    check("movsx_rm", (dsz, ssz, d, *m), "movsxd" if ssz == 4 else "movsx",
                          [reg(dsz, d), mem_expect(ssz, m)])


def test_lea():
    rng = rng_for("lea")
    for size in (4, 8):
        for m in mem_operands(rng, 100):
            d = rng.randrange(16)
            check("lea", (size, d, *m), "lea", [reg(size, d), mem_expect(size, m)])


# ------------------------------------------------------------------ ALU
def test_alu():
    rng = rng_for("alu")
    for op, name in enumerate(ALU):
        for size in SIZES:
            for d in range(16):
                for s in range(16):
                    check("alu_rr", (op, size, d, s), name, [reg(size, d), reg(size, s)])
                for v in IMMS:
                    if size == 1:
                        v = ((v & 0xFF) ^ 0x80) - 0x80
                    elif size == 2:
                        v = ((v & 0xFFFF) ^ 0x8000) - 0x8000
                    check("alu_ri", (op, size, d, v), name, [reg(size, d), imm(v, 8 * size)])
            for m in mem_operands(rng, 8):
                r = rng.randrange(16)
                v = rng.choice(IMMS)
                if size == 1:
                    v = ((v & 0xFF) ^ 0x80) - 0x80
                elif size == 2:
                    v = ((v & 0xFFFF) ^ 0x8000) - 0x8000
                check("alu_rm", (op, size, r, *m), name, [reg(size, r), mem_expect(size, m)])
                check("alu_mr", (op, size, *m, r), name, [mem_expect(size, m), reg(size, r)])
                check("alu_mi", (op, size, *m, v), name, [mem_expect(size, m), imm(v, 8 * size)])
                if size >= 4:
                    code = check("alu_mi32", (op, size, *m, v), name, [mem_expect(size, m), imm(v, 8 * size)])
                    assert code[-4:] == (v & 0xFFFFFFFF).to_bytes(4, "little"), "the imm32 must be last (patched)"


def test_test_imul_unary():
    rng = rng_for("misc")
    for size in SIZES:
        for a in range(16):
            for b in range(16):
                check("test_rr", (size, a, b), "test", [reg(size, a), reg(size, b)])
                if size >= 2:
                    check("imul_rr", (size, a, b), "imul", [reg(size, a), reg(size, b)])
                if size >= 4:
                    v = rng.choice(IMMS)
                    check("imul_rri", (size, a, b, v), "imul", [reg(size, a), reg(size, b), imm(v, 8 * size)])
            v = rng.choice(IMMS)
            if size < 4:
                v &= (1 << (8 * size)) - 1
            check("test_ri", (size, a, v), "test", [reg(size, a), imm(v, 8 * size)])
            for op, name in UNARY.items():
                check("unary_r", (op, size, a), name, [reg(size, a)])
        for op, name in UNARY.items():
            for m in mem_operands(rng, 4):
                check("unary_m", (op, size, *m), name, [mem_expect(size, m)])
    check("cdq_cqo", (4,), "cdq", [])
    check("cdq_cqo", (8,), "cqo", [])


def test_shifts():
    for size in SIZES:
        for r in range(16):
            for op, name in SHIFT.items():
                for n in (1, 2, 31, 63):
                    check("shift_ri", (op, size, r, n), name, [reg(size, r), imm(n, 8)])
                check("shift_rcl", (op, size, r), name, [reg(size, r), ("reg", "cl")])


def test_bmi():
    for size in (4, 8):
        for d in range(16):
            for s in range(16):
                for c in (0, 1, 4, 7, 8, 12, 15, s):
                    for op, name in SHIFTX.items():
                        check("shiftx", (op, size, d, s, c), name, [reg(size, d), reg(size, s), reg(size, c)])
                    check("andn", (size, d, s, c), "andn", [reg(size, d), reg(size, s), reg(size, c)])
                    check("mulx", (size, d, s, c), "mulx", [reg(size, d), reg(size, s), reg(size, c)])
                for n in (0, 1, 13, 31, 63):
                    check("rorx", (size, d, s, n), "rorx", [reg(size, d), reg(size, s), imm(n, 8)])


def test_bit_ops():
    for size in (2, 4, 8):
        for d in range(16):
            for s in range(16):
                for op, name in BITCOUNT.items():
                    check("bitcount", (op, size, d, s), name, [reg(size, d), reg(size, s)])
                for cc in range(16):
                    check("cmov", (cc, size, d, s), "cmov" + CC[cc], [reg(size, d), reg(size, s)])
            check("bts_ri", (size, d, 5), "bts", [reg(size, d), imm(5, 8)])
    for r in range(16):
        for size in (4, 8):
            check("bswap", (size, r), "bswap", [reg(size, r)])
        for cc in range(16):
            check("setcc", (cc, r), "set" + CC[cc], [reg(1, r)])


# ------------------------------------------------------------------ control flow
def test_stack_and_branches():
    rng = rng_for("br")
    for r in range(16):
        check("push", (r,), "push", [reg(8, r)])
        check("pop", (r,), "pop", [reg(8, r)])
        check("jmp_r", (r,), "jmp", [reg(8, r)])
        check("call_r", (r,), "call", [reg(8, r)])
    for target in (0, 5, -100, 0x12345678, -0x12345678):
        check("jmp_rel32", (target,), "jmp", [imm(target, 64)])
        check("call_rel32", (target,), "call", [imm(target, 64)])
        for cc in range(16):
            check("jcc_rel32", (cc, target), "j" + CC[cc], [imm(target, 64)])
    for target in (0, 2, -126, 129):
        check("jmp_rel8", (target,), "jmp", [imm(target, 64)])
        for cc in range(16):
            check("jcc_rel8", (cc, target), "j" + CC[cc], [imm(target, 64)])
    for m in mem_operands(rng, 30):
        check("jmp_m", m, "jmp", [mem_expect(8, m)])
        check("call_m", m, "call", [mem_expect(8, m)])
    check("ret", (), "ret", [])
    check("ud2", (), "ud2", [])
    check("int3", (), "int3", [])
    for n in range(1, 10):
        code = _engine.assemble([("nops", n)])
        assert len(code) == n
        assert [i.mnemonic for i in MD.disasm(code, 0)] == ["nop"], code.hex()


def test_every_form_is_covered():
    """A new encoder form without a test here fails this."""
    tested = {"mov_rr", "load", "store", "store_imm", "mov_r32_imm", "mov_r64_simm32", "movabs", "mov_imm64",
              "mov_imm64_keep_flags", "movzx_rr", "movzx_rm", "movsx_rr", "movsx_rm", "lea", "alu_rr", "alu_rm",
              "alu_ri", "alu_mi", "alu_mi32", "alu_mr", "test_rr", "test_ri", "imul_rr", "imul_rri", "unary_r",
              "unary_m", "cdq_cqo", "shift_ri", "shift_rcl", "shiftx", "rorx", "andn", "mulx", "bitcount", "bswap",
              "bts_ri", "cmov", "setcc", "push", "pop", "jmp_rel32", "jcc_rel32", "call_rel32", "jmp_rel8",
              "jcc_rel8", "jmp_r", "call_r", "jmp_m", "call_m", "ret", "ud2", "int3", "nops"}
    assert set(_engine.forms()) == tested


def test_bad_operands_are_refused():
    for bad in [("mov_rr", 3, 0, 0), ("mov_rr", 8, 16, 0), ("load", 8, 0, 0, 4, 0, 0), ("lea", 8, 0, RIP, 1, 0, 0),
                ("shift_ri", 2, 8, 0, 1), ("nope",)]:
        with pytest.raises(ValueError):
            _engine.assemble([bad])


def test_rip_relative_displacement_is_from_the_end():
    code = _engine.assemble([("lea", 8, 0, RIP, NONE, 0, 0x10)])
    insn = decode_one(code)
    assert insn.op_str == "rax, [rip + 0x10]"
