"""The interpreter's fused pairs (superinstructions, FUSED in
src/vmcore/_native/interp_handlers.h) and its specialised loops
(interp_loop.h): every pair, in random programs with the pair's two
instructions back to back, ends as the oracle says (status, pc, gas,
registers) in each loop, faults in either half report that half, and a
fault in the second half resumes without redoing the first.

A run's first vm_run holds the GIL for a few blocks with fuel (the generic
loop); set_gil_hold_blocks(0) runs the whole call without fuel, in the
CHECK / CHARGE loops, and 1 switches loops after the first block."""
from __future__ import annotations

import itertools
import random
import re
from pathlib import Path

import pytest

import gen_vectors as gen
import oracle
from oracle import canonical
from random_programs import PAGE, assemble, rand_imm, rand_value
from vmcore import _engine, abi, isa as ISA

HANDLERS_H = Path(__file__).resolve().parent.parent / "src" / "vmcore" / "_native" / "interp_handlers.h"
RW = gen.RW

# interpreter handler -> the instructions that compile to it
OPS = {
    "ADDI32": ["add_imm_32"], "ADDI64": ["add_imm_64"], "ADD32": ["add_32"], "ADD64": ["add_64"],
    "SHR32": ["shift_logical_right_32"], "SHRI32": ["shift_logical_right_imm_32"],
    "SHL32": ["shift_logical_left_32"], "SHLI32": ["shift_logical_left_imm_32"],
    "SHLI64": ["shift_logical_left_imm_64"], "OR": ["or"], "ANDI": ["and_imm"], "LI": ["load_imm"],
    "LD_I32": ["load_indirect_i32", "load_i32"], "LD_U8": ["load_indirect_u8", "load_u8"],
    "LD_U64": ["load_indirect_u64", "load_u64"],
    "ST_U8": ["store_indirect_u8", "store_u8"], "ST_U32": ["store_indirect_u32", "store_u32"],
    "ST_U64": ["store_indirect_u64", "store_u64"],
    "BEQ": ["branch_eq"], "BNE": ["branch_not_eq"], "BLTU": ["branch_less_unsigned"],
    "BLTS": ["branch_less_signed"], "BGES": ["branch_greater_or_equal_signed"], "BEQI": ["branch_eq_imm"],
    "BNEI": ["branch_not_eq_imm"], "BLESI": ["branch_less_or_equal_signed_imm"],
}


def fused_pairs():
    text = HANDLERS_H.read_text()
    body = text[text.index("#define FUSED(F, B)"):text.index("enum {")]
    return re.findall(r"\b[FB]\((\w+), (\w+)\)", body)


PAIRS = fused_pairs()


def fused_triples():
    text = HANDLERS_H.read_text()
    body = text[text.index("#define FUSED3(T)"):text.index("enum {")]
    return re.findall(r"\bT\((\w+), (\w+), (\w+)\)", body)


TRIPLES = fused_triples()


def test_pairs_listed_and_known():
    assert len(PAIRS) >= 40 and len(set(PAIRS)) == len(PAIRS)
    assert len(TRIPLES) >= 4 and all(name in OPS for triple in TRIPLES for name in triple)
    # the builder only looks for a triple where a pair starts
    assert all(triple[:2] in PAIRS for triple in TRIPLES)
    for first, second in PAIRS:
        assert first in OPS and second in OPS, (first, second)
        assert all(name in ISA.BY_NAME for name in OPS[first] + OPS[second]), (first, second)


def emit(asm: gen.Asm, name: str, rng: random.Random, label: str) -> None:
    """One instruction on registers 0..3 (dependencies between the pair's
    halves are likely), memory at r12 = RW near page edges."""
    r = lambda: rng.randrange(4)
    fmt = ISA.BY_NAME[name].format.upper()
    near_edge = lambda: rng.choice((rng.randrange(0, 64), rng.randrange(PAGE - 8, PAGE + 4),
                                    rng.randrange(2 * PAGE - 8, 2 * PAGE + 8)))
    if name.startswith(("load_indirect", "store_indirect")):
        asm.op(name, r(), 12, near_edge())
    elif name.startswith(("load_", "store_")) and fmt == "REG_IMM" and name != "load_imm":
        asm.op(name, r(), RW + near_edge())
    elif fmt == "REG_REG_OFFSET":
        asm.op(name, r(), r(), label)
    elif fmt == "REG_IMM_OFFSET":
        asm.op(name, r(), rng.choice((0, 1, -1, rand_imm(rng))), label)
    elif fmt == "REG_REG_REG":
        asm.op(name, r(), r(), r())
    elif fmt == "REG_REG_IMM":
        asm.op(name, r(), r(), rng.choice((1, 8, 16, 24, rand_imm(rng))))
    elif fmt == "REG_IMM":
        asm.op(name, r(), rand_imm(rng))
    else:
        raise AssertionError((name, fmt))


@pytest.fixture(params=[0, 1, 256], ids=["nofuel", "fuel1", "fuel256"])
def hold(request):
    old = _engine.set_gil_hold_blocks(request.param)
    yield request.param
    _engine.set_gil_hold_blocks(old)


def run_both(isa, code, bitmask, regs, gas, metering=True):
    module = _engine.CompiledModule(ISA.isa_index(isa), code, bitmask, [], metering)
    inst = _engine.Instance(module, PAGE)
    inst.set_perms(RW, PAGE, _engine.PERM_WRITE)
    inst.set_perms(RW + PAGE, PAGE, _engine.PERM_READ)
    inst.set_regs(regs)
    inst.gas = gas
    assert inst.set_pc(0) == abi.ENTRY_OK
    reason = inst.run()
    model = oracle.Machine(oracle.Code(isa, code, bitmask, []), regs, gas)
    model.map(RW, PAGE, True)
    model.map(RW + PAGE, PAGE, False)
    want = model.run()
    if not metering:
        return module, (oracle_status(reason), inst.pc, inst.get_regs()), (want.status, want.pc, want.regs)
    got = (oracle_status(reason), inst.pc, inst.gas, inst.get_regs())
    return module, got, (want.status, want.pc, want.gas, want.regs)


def oracle_status(reason):
    from vmcore import vectors
    return vectors.STATUS[reason]


@pytest.mark.parametrize("metering", [True, False], ids=["gas", "nogas"])
@pytest.mark.parametrize("isa", ["latest32", "latest64"])
def test_every_pair_matches_the_oracle(isa, metering, hold):
    rng = random.Random(f"fused-{isa}")
    tried = 0
    exists = lambda name: ISA.BY_NAME[name].byte_for(isa) is not None
    for group in PAIRS + TRIPLES:
        names = [c for c in itertools.product(*(OPS[h] for h in group)) if all(map(exists, c))]
        for n in range(12):
            if not names:
                break
            chosen = rng.choice(names)
            asm = gen.Asm(isa)
            for k in range(rng.randrange(1, 4)):
                for name in chosen:
                    emit(asm, name, rng, f"l{k}")
                asm.op("load_imm", rng.randrange(4), k).op("fallthrough").label(f"l{k}")
            asm.op("trap")
            code, bitmask, _ = assemble(asm)
            regs = [canonical(rng.choice((0, 1, 7, 24, rand_value(rng))), ISA.is_64_bit(isa)) for _ in range(12)]
            regs.append(RW)
            gas = rng.choice((10_000, rng.randrange(12))) if metering else 10_000_000
            module, got, want = run_both(isa, code, bitmask, regs, gas, metering)
            assert module.fused_records > 0, (group, chosen)
            assert module.targets == (2 if metering else 1)
            assert got == want, (group, n, code.hex())
            tried += 1
    assert tried > len(PAIRS) * 4


def _module(isa, asm):
    code, starts, _ = asm.assemble()
    module = _engine.CompiledModule(ISA.isa_index(isa), code, gen.bitmask_bytes(len(code), starts), [], True)
    return module, starts


def test_fault_in_the_second_half_resumes_there():
    # add_imm_32 then store_indirect_u8: a fused ADDI32__ST_U8
    isa = "latest32"
    asm = gen.Asm(isa).op("add_imm_32", 1, 1, 1).op("store_indirect_u8", 1, 2, 0).halt()
    module, starts = _module(isa, asm)
    assert module.fused_records == 1
    inst = _engine.Instance(module, PAGE)
    inst.set_regs(gen.regs13({1: 41, 2: RW + PAGE, 12: oracle.RETURN_TO_HOST}, isa))
    inst.set_perms(RW, PAGE, _engine.PERM_WRITE)
    inst.gas = 100
    inst.set_pc(0)
    assert inst.run() == _engine.EXIT_PAGEFAULT
    assert (inst.arg, inst.pc, inst.gas, inst.get_reg(1)) == (RW + PAGE, starts[1], 97, 42)
    inst.set_perms(RW + PAGE, PAGE, _engine.PERM_WRITE)
    assert inst.run() == _engine.EXIT_FINISHED
    assert (inst.gas, inst.get_reg(1), inst.read(RW + PAGE, 1)) == (97, 42, b"\x2a")


def test_fault_in_the_first_half_redoes_only_the_pair():
    # load_indirect_i32 then add_imm_32: a fused LD_I32__ADDI32
    isa = "latest32"
    asm = gen.Asm(isa).op("load_indirect_i32", 1, 2, 0).op("add_imm_32", 1, 1, 5).halt()
    module, starts = _module(isa, asm)
    assert module.fused_records == 1
    inst = _engine.Instance(module, PAGE)
    inst.set_regs(gen.regs13({1: 3, 2: RW + PAGE - 2, 12: oracle.RETURN_TO_HOST}, isa))
    inst.set_perms(RW, PAGE, _engine.PERM_WRITE)
    inst.write(RW + PAGE - 2, b"\x01\x00")
    inst.gas = 100
    inst.set_pc(0)
    assert inst.run() == _engine.EXIT_PAGEFAULT
    assert (inst.arg, inst.pc, inst.gas, inst.get_reg(1)) == (RW + PAGE, starts[0], 97, 3)
    inst.set_perms(RW + PAGE, PAGE, _engine.PERM_WRITE)
    assert inst.run() == _engine.EXIT_FINISHED
    assert (inst.gas, inst.get_reg(1)) == (97, 6)


@pytest.mark.parametrize("blocks", [0, 1])
def test_vectors_in_every_loop(blocks):
    """The own vectors (every instruction of every ISA) with the whole run
    in a CHARGE loop (0) or after one block of the generic loop (1)."""
    from vmcore import vectors
    paths = sorted((Path(__file__).resolve().parent / "vectors" / "own").glob("*.json"))
    assert len(paths) > 1000
    old = _engine.set_gil_hold_blocks(blocks)
    try:
        for path in paths:
            vector = vectors.load_vector(str(path))
            assert vectors.compare(vector, vectors.run_vector(vector)) == [], path.stem
    finally:
        _engine.set_gil_hold_blocks(old)


def test_targets_kind():
    isa = "latest32"
    asm = gen.Asm(isa).op("load_imm", 1, 0).label("top").op("add_imm_32", 1, 1, 1) \
        .op("branch_not_eq_imm", 1, 3, "top").halt()
    code, starts, _ = asm.assemble()
    bitmask = gen.bitmask_bytes(len(code), starts)
    build = lambda **kw: _engine.CompiledModule(ISA.isa_index(isa), code, bitmask, [], **kw)
    assert build(gas_metering=False).targets == 1
    assert build(gas_metering=True).targets == 2
    assert build(gas_metering=True, step_tracing=True).targets == 0


def test_step_tracing_does_not_fuse():
    isa = "latest32"
    asm = gen.Asm(isa).op("add_imm_32", 1, 1, 1).op("add_imm_32", 2, 2, 1).halt()
    code, starts, _ = asm.assemble()
    bitmask = gen.bitmask_bytes(len(code), starts)
    assert _engine.CompiledModule(ISA.isa_index(isa), code, bitmask, [], True).fused_records == 1
    traced = _engine.CompiledModule(ISA.isa_index(isa), code, bitmask, [], True, step_tracing=True)
    assert traced.fused_records == 0
