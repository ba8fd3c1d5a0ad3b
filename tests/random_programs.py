"""Random guest code for the differential tests (the interpreter against the
oracle in test_interpreter.py, generated code against the interpreter in
test_compiler.py): random register values and immediates, ALU instructions,
and programs of loads, stores, ALU ops and forward branches around a data
page."""
from __future__ import annotations

import random
from typing import List, Tuple

import gen_vectors as gen
import oracle
from vmcore import abi, isa as ISA

PAGE = abi.MIN_PAGE_SIZE
RANDOM_VALUES = gen.EDGE + [0x5555555555555555, 0xAAAAAAAAAAAAAAAA, 0x00000000DEADBEEF, 0xFFFFFFFF, 0x80000000,
                            0x7FFFFFFF, 0xFFFFFFFF80000000]


def rand_value(rng: random.Random) -> int:
    return rng.choice(RANDOM_VALUES) if rng.random() < 0.6 else rng.getrandbits(rng.choice((8, 16, 32, 33, 64)))


def rand_imm(rng: random.Random) -> int:
    if rng.random() < 0.5:
        return oracle.sx(rng.choice(gen.IMMS), 32)
    return oracle.sx(rng.getrandbits(rng.choice((4, 8, 16, 24, 32))), 32)


def alu_ops(isa: str) -> List[ISA.Opcode]:
    return [o for o in ISA.OPCODES if o.byte_for(isa) is not None and o.name in oracle.ALU]


def emit_alu(asm: gen.Asm, op: ISA.Opcode, rng: random.Random, regs=range(abi.REG_COUNT)) -> None:
    r = lambda: rng.choice(regs)
    fmt = op.format.upper()
    if fmt == "REG_REG_REG":
        asm.op(op.name, r(), r(), r())
    elif fmt == "REG_REG_IMM":
        asm.op(op.name, r(), r(), rand_imm(rng))
    elif fmt == "REG_REG":
        asm.op(op.name, r(), r())
    elif fmt == "REG_IMM":
        asm.op(op.name, r(), rand_imm(rng))
    elif fmt == "REG_IMM64":
        asm.op(op.name, r(), rand_value(rng))
    else:
        raise AssertionError(fmt)


def assemble(asm: gen.Asm):
    """(code, bitmask, labels)."""
    code, starts, labels = asm.assemble()
    return code, gen.bitmask_bytes(len(code), starts), labels


def memory_program(isa: str, rng: random.Random, rw: int) -> Tuple[bytes, bytes]:
    """Loads and stores of every kind around the data at ``rw`` and the
    page edges after it (r12 is the base and is never written), with ALU ops
    and forward branches; ends with a trap.  Returns (code, bitmask)."""
    loads = [n for n, _, _ in gen._loads(isa)]
    stores = [n for n, _, _ in gen._stores(isa)]
    alu = alu_ops(isa)
    asm = gen.Asm(isa)
    addr = lambda: oracle.sx(rw + rng.randrange(-16, 0x2010), 32)
    offset = lambda: rng.choice((rng.randrange(-16, 0x2010), rng.randrange(PAGE - 8, PAGE + 8),
                                 rng.randrange(2 * PAGE - 8, 2 * PAGE + 8)))
    labels = 0
    for k in range(rng.randrange(2, 18)):
        kind = rng.random()
        if kind < 0.3:
            name = rng.choice(loads)
            if name.startswith("load_indirect"):
                asm.op(name, rng.randrange(12), 12, offset())
            else:
                asm.op(name, rng.randrange(12), addr())
        elif kind < 0.6:
            name = rng.choice(stores)
            if name.startswith("store_imm_indirect"):
                asm.op(name, 12, offset(), rand_imm(rng))
            elif name.startswith("store_imm"):
                asm.op(name, addr(), rand_imm(rng))
            elif name.startswith("store_indirect"):
                asm.op(name, rng.randrange(abi.REG_COUNT), 12, offset())
            else:
                asm.op(name, rng.randrange(abi.REG_COUNT), addr())
        elif kind < 0.72:
            name = rng.choice(list(oracle.BRANCHES))
            target = f"l{labels}"
            if ISA.BY_NAME[name].format.upper() == "REG_REG_OFFSET":
                asm.op(name, rng.randrange(12), rng.randrange(12), target)
            else:
                asm.op(name, rng.randrange(12), rand_imm(rng), target)
            asm.op("load_imm", rng.randrange(12), k).op("fallthrough").label(target)
            labels += 1
        else:
            emit_alu(asm, rng.choice(alu), rng, regs=range(12))
    asm.op("trap")
    return assemble(asm)[:2]
