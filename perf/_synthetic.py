"""A synthetic guest program shaped like compiled code, of any size: for
measuring the recompiler's compile time on ~1 MB of code.

Functions with a prologue (stack frame, saved registers), bodies of ALU
operations, loads and stores relative to sp / a pointer, load_imm, short
forward branches and loops, calls (load_imm_and_jump with the return
address through the jump table) and an epilogue returning through ra --
roughly the instruction mix of Rust/C compiled for PolkaVM.  Deterministic
for a seed.  Encoded here byte by byte (the PolkaVM formats)."""
from __future__ import annotations

import random
from typing import List, Tuple

from vmcore import abi, isa as ISA

RA, SP, T0, T1, T2, S0, S1 = abi.REG_RA, abi.REG_SP, abi.REG_T0, abi.REG_T1, abi.REG_T2, abi.REG_S0, abi.REG_S1
A0, A1, A2, A3, A4, A5 = abi.REG_A0, abi.REG_A1, abi.REG_A2, abi.REG_A3, abi.REG_A4, abi.REG_A5


def _imm(value: int) -> bytes:
    v = ((value + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)
    if v == 0:
        return b""
    for n in range(1, 5):
        if -(1 << (8 * n - 1)) <= v < (1 << (8 * n - 1)):
            return (v & ((1 << (8 * n)) - 1)).to_bytes(n, "little")
    raise AssertionError(value)


class _Writer:
    def __init__(self, isa: str):
        self.isa = isa
        self.code = bytearray()
        self.starts: List[int] = []
        self.fixups: List[Tuple[int, str, int, bytes]] = []  # (pc, kind, ...) for jumps to later labels

    def pc(self) -> int:
        return len(self.code)

    def op(self, name: str, payload: bytes = b"") -> None:
        self.starts.append(len(self.code))
        self.code += bytes([ISA.BY_NAME[name].byte_for(self.isa)]) + payload

    def rri(self, name, a, b, imm):
        self.op(name, bytes([a | b << 4]) + _imm(imm))

    def rrr(self, name, d, s1, s2):
        self.op(name, bytes([s1 | s2 << 4, d]))

    def ri(self, name, a, imm):
        self.op(name, bytes([a]) + _imm(imm))

    def rr(self, name, d, s):
        self.op(name, bytes([d | s << 4]))

    def branch_ri(self, name, a, imm, target):
        i1 = _imm(imm)
        self.op(name, bytes([a | len(i1) << 4]) + i1 + (target - self.pc()).to_bytes(4, "little", signed=True))

    def branch_rr(self, name, a, b, target):
        self.op(name, bytes([a | b << 4]) + (target - self.pc()).to_bytes(4, "little", signed=True))

    def li_jump(self, reg, value, target):
        i1 = _imm(value)
        self.op("load_imm_and_jump", bytes([reg | len(i1) << 4]) + i1 +
                (target - self.pc()).to_bytes(4, "little", signed=True))


ALU_RRI = ["add_imm_64", "and_imm", "xor_imm", "or_imm", "shift_logical_left_imm_64", "shift_logical_right_imm_64",
           "shift_arithmetic_right_imm_64", "add_imm_32", "set_less_than_unsigned_imm", "mul_imm_64"]
ALU_RRR = ["add_64", "sub_64", "and", "or", "xor", "add_32", "sub_32", "mul_64", "set_less_than_unsigned",
           "shift_logical_left_64", "shift_logical_right_64"]
LOADS = ["load_indirect_u64", "load_indirect_u32", "load_indirect_u8", "load_indirect_i32", "load_indirect_u16"]
STORES = ["store_indirect_u64", "store_indirect_u32", "store_indirect_u8", "store_indirect_u16"]
BRANCH_RI = ["branch_eq_imm", "branch_not_eq_imm", "branch_less_unsigned_imm", "branch_greater_or_equal_signed_imm"]
BRANCH_RR = ["branch_eq", "branch_not_eq", "branch_less_unsigned", "branch_less_signed"]


def synthetic_program(size: int, seed: int = 1, isa: str = "jam_v1"):
    """(code, bitmask, jump_table) of about `size` bytes of code."""
    rng = random.Random(seed)
    w = _Writer(isa)
    table: List[int] = []
    functions: List[int] = []
    work = [T0, T1, T2, A0, A1, A2, A3, A4, A5, S0, S1]

    def body(n):
        k = 0
        while k < n:
            x = rng.random()
            if x < 0.30:
                w.rri(rng.choice(ALU_RRI), rng.choice(work), rng.choice(work), rng.choice((1, 4, 8, -1, 0xFF, 32, 3)))
            elif x < 0.45:
                w.rrr(rng.choice(ALU_RRR), rng.choice(work), rng.choice(work), rng.choice(work))
            elif x < 0.60:
                w.rri(rng.choice(LOADS), rng.choice(work), rng.choice((SP, A0, A1, S0)), rng.randrange(0, 256, 4))
            elif x < 0.70:
                w.rri(rng.choice(STORES), rng.choice(work), rng.choice((SP, A0, A1, S0)), rng.randrange(0, 256, 4))
            elif x < 0.78:
                w.ri("load_imm", rng.choice(work), rng.choice((0, 1, rng.randrange(1 << 16), -1, 0x12345)))
            elif x < 0.83:
                w.rr("move_reg", rng.choice(work), rng.choice(work))
            elif x < 0.93:
                # a short forward branch over a few instructions, or a small loop back
                if rng.random() < 0.7:
                    at = w.pc()
                    name = rng.choice(BRANCH_RI)
                    w.branch_ri(name, rng.choice(work), rng.randrange(0, 16), at)  # patched below
                    skip_start = len(w.code)
                    for _ in range(rng.randrange(1, 4)):
                        w.rri("add_imm_64", rng.choice(work), rng.choice(work), 1)
                    # the target must start a block: a fallthrough right before it
                    w.op("fallthrough")
                    target = w.pc()
                    # point the branch at it (its last 4 bytes are the offset)
                    w.code[skip_start - 4:skip_start] = (target - at).to_bytes(4, "little", signed=True)
                    k += 3
                else:
                    w.op("fallthrough")
                    top = w.pc()
                    w.rri("add_imm_64", T0, T0, -1)
                    w.rrr("add_64", A0, A0, T1)
                    w.branch_ri("branch_not_eq_imm", T0, 0, top)
                    k += 3
            elif functions:
                # a call: ra = return address (a jump-table address), then the callee
                ret_index = len(table)
                w.li_jump(RA, (ret_index + 1) * 2, rng.choice(functions))
                table.append(w.pc())
                k += 1
            k += 1

    while len(w.code) < size:
        functions.append(w.pc())
        frame = rng.choice((16, 32, 48, 64, 128))
        w.rri("add_imm_64", SP, SP, -frame)
        w.rri("store_indirect_u64", RA, SP, frame - 8)
        w.rri("store_indirect_u64", S0, SP, frame - 16)
        w.rri("store_indirect_u64", S1, SP, frame - 24)
        body(rng.randrange(10, 120))
        w.rri("load_indirect_u64", RA, SP, frame - 8)
        w.rri("load_indirect_u64", S0, SP, frame - 16)
        w.rri("load_indirect_u64", S1, SP, frame - 24)
        w.rri("add_imm_64", SP, SP, frame)
        w.ri("jump_indirect", RA, 0)
    code = bytes(w.code)
    mask = bytearray((len(code) + 7) // 8)
    for s in w.starts:
        mask[s >> 3] |= 1 << (s & 7)
    return code, bytes(mask), table
