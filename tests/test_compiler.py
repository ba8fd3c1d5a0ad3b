"""The recompiler (vmcore/_native/x64/) against the interpreter.

Generated code runs only inside tests/native/runner.c (a stand-in for the
zygote, built here with the system C compiler and driven over pipes), never
in this process.  Checked:

* every JSON vector (official and vmcore's own, all instruction sets) gives
  exactly the vector's expected outcome;
* seeded random programs -- straight-line ALU code, memory traffic with
  faults and straddling accesses, loops / jump tables / dynamic jumps /
  hostcalls, random bytes with random bitmasks, sbrk and memset, entries in
  the middle of blocks, gas running out anywhere -- give bit-identical
  results to the interpreter: status, pc, gas, registers, fault address,
  heap and every accessible byte of memory;
* the address-overflow rule, the low panic zone, other page sizes, step
  tracing, metering off, cost models, the interrupt mechanism;
* the compile time of a 1 MB program is printed (not asserted).
"""
from __future__ import annotations

import os
import platform
import random
import shutil
import time
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import pytest

import gen_vectors as gen
import oracle
import x64_runner as XR
from oracle import canonical, reported
from random_programs import RANDOM_VALUES, alu_ops, assemble, emit_alu, memory_program, rand_imm, rand_value
from vmcore import _engine, abi, isa as ISA, vectors
from vmcore.program import Program

HERE = Path(__file__).resolve().parent
ISAS = gen.ISAS
import sys  # noqa: E402

sys.path.insert(0, str(HERE.parent / "perf"))
HALT = oracle.RETURN_TO_HOST
PAGE = abi.DEFAULT_PAGE_SIZE
RW, RO = 0x20000, 0x21000  # RW page, then a RO page, then nothing
M64 = (1 << 64) - 1

if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
    pytest.skip("the recompiler targets x86-64 Linux", allow_module_level=True)
if _engine.cpu_check() is not None:
    pytest.skip(f"this CPU lacks {_engine.cpu_check()}", allow_module_level=True)
if not (os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc")):
    pytest.skip("no C compiler for the test runner", allow_module_level=True)


@pytest.fixture(scope="module")
def runner(tmp_path_factory):
    r = XR.Runner.start(tmp_path_factory.mktemp("x64runner"))
    yield r
    r.close()


# ------------------------------------------------------------------ vectors
def _vector_files(kind: str) -> List[Path]:
    return sorted((HERE / "vectors" / kind).glob("*.json"))


@pytest.mark.parametrize("split", [False, True], ids=["one-thread", "split"])
@pytest.mark.parametrize("kind", ["official", "own"])
@pytest.mark.slow
def test_vectors(runner, kind, split):
    files = _vector_files(kind)
    if not files:
        pytest.skip(f"no {kind} vectors")
    failures = []
    for path in files:
        vector = vectors.load_vector(str(path))
        diffs = vectors.compare(vector, XR.run_vector(runner, vector, split))
        if diffs:
            failures.append(f"{path.name}: {diffs[:5]}")
    assert not failures, f"{len(failures)} of {len(files)} failed:\n" + "\n".join(failures[:20])


# ------------------------------------------------------------------ the differential harness
class Setup:
    """One initial state for both backends."""

    def __init__(self, isa, code, bitmask, table=(), *, regs, gas=10_000, pc=0, page_size=PAGE, perms=(), chunks=(),
                 heap=(0, 0, 0, 0, 0), metering=True, tracing=False, continue_ecalli=False, max_exits=1,
                 cost=None, refill=0, map_on_fault=False):
        self.isa, self.code, self.bitmask, self.table = isa, bytes(code), bytes(bitmask), list(table)
        # as the engines keep them (the runner takes them raw)
        self.regs = [canonical(r, ISA.is_64_bit(isa)) for r in regs]
        self.gas, self.pc, self.page_size = gas, pc, page_size
        self.perms, self.chunks, self.heap = list(perms), list(chunks), tuple(heap)
        self.metering, self.tracing, self.continue_ecalli, self.max_exits = metering, tracing, continue_ecalli, max_exits
        self.cost = cost
        self.refill, self.map_on_fault = refill, map_on_fault  # resume after out-of-gas / page faults

    def describe(self):
        return f"isa={self.isa} code={self.code.hex()} bitmask={self.bitmask.hex()} table={self.table} pc={self.pc} " \
               f"gas={self.gas} regs={[hex(r) for r in self.regs]}"


def run_interpreter(s: Setup):
    module = _engine.CompiledModule(ISA.isa_index(s.isa), s.code, s.bitmask, s.table, s.metering, s.tracing, s.cost)
    inst = _engine.Instance(module, s.page_size)
    for address, length, perm in s.perms:
        inst.set_perms(address, length, perm)
    for address, data in s.chunks:
        inst.write(address, data)
    inst.set_regs(s.regs)
    inst.gas = s.gas
    inst.configure_heap(*s.heap)
    exits = []
    mapped = 0
    rc = inst.set_pc(s.pc)
    if rc != abi.ENTRY_OK:
        return ("not-entered", rc), exits, inst
    while True:
        reason = inst.run()
        status = XR.INTERP_STATUS.get(reason, reason)
        exits.append((status, inst.pc, inst.arg if status in ("page-fault", "host") else None,
                      inst.next_pc if status == "host" else None, inst.gas))
        if len(exits) >= s.max_exits:
            break
        if status == "host" and s.continue_ecalli:
            continue
        if status == "step" and s.tracing:
            continue
        if status == "out-of-gas" and s.refill:
            inst.gas = inst.gas + s.refill
            continue
        if status == "page-fault" and s.map_on_fault and mapped < XR.MAX_MAPPED_ON_FAULT:
            inst.set_perms(inst.arg, s.page_size, _engine.PERM_WRITE)
            mapped += 1
            continue
        break
    return None, exits, inst


def run_compiled(runner, s: Setup, split_hint=0):
    cc = _engine.CompiledCode(ISA.isa_index(s.isa), s.code, s.bitmask, s.table, s.metering, s.tracing,
                                cost=s.cost, split_hint=split_hint)
    rc, gas, native = cc.enter(s.pc, s.gas)
    if rc != abi.ENTRY_OK:
        return ("not-entered", rc), [], None
    flags = (XR.GAS_METERING if s.metering else 0) | XR.DUMP_MEMORY
    if s.continue_ecalli:
        flags |= XR.CONTINUE_ECALLI
    if s.tracing:
        flags |= XR.CONTINUE_STEP
    if s.refill:
        flags |= XR.CONTINUE_OOG
    if s.map_on_fault:
        flags |= XR.CONTINUE_PAGEFAULT
    result = runner.run(XR.Case(cc, s.regs, gas, native, s.page_size, s.perms, s.chunks, s.heap, flags, s.max_exits,
                                refill=s.refill))
    exits = []
    for e in result.exits:
        status = e.status
        exits.append((status, e.pc, e.arg if status in ("page-fault", "host") else None,
                      e.next_pc if status == "host" else None, e.gas))
    return None, exits, result


def differ(runner, s: Setup, what=""):
    """Run both backends (the recompiler both in one thread and split in
    two halves at a pseudo-random offset); assert identical outcomes."""
    last = _differ(runner, s, what, 0)
    hint = XR.split_hint_for(s.code)
    if hint:
        _differ(runner, s, f"{what} split at {hint}", hint)
    return last


def _differ(runner, s: Setup, what, split_hint):
    early_i, exits_i, inst = run_interpreter(s)
    early_c, exits_c, result = run_compiled(runner, s, split_hint)
    ctx = f"{what} {s.describe()}"
    assert early_i == early_c, ctx
    if early_i:
        return early_i
    assert result.signal == 0, f"runner caught signal {result.signal} at native offset {result.signal_rip:#x}: {ctx}"
    assert exits_c == exits_i, f"\n compiled    {exits_c[-3:]}\n interpreter {exits_i[-3:]}\n{ctx}"
    # as programs see them (PolkaVM too keeps some 32-bit results zero-extended inside, e.g. load_u32's)
    regs_i = inst.get_regs()
    regs_c = [reported(r, ISA.is_64_bit(s.isa)) for r in result.regs]
    assert regs_c == regs_i, f"\n compiled    {[hex(r) for r in regs_c]}\n interpreter " \
                                  f"{[hex(r) for r in regs_i]}\n{ctx}"
    heap_i = inst.heap_state()
    assert (result.heap_top, result.heap_mapped_end) == (heap_i[1], heap_i[2]), ctx
    for address, (perm, data) in result.pages.items():
        assert inst.perm(address) == perm, (hex(address), ctx)
        want = inst.read(address, s.page_size)
        if data != want:
            i = next(k for k in range(len(data)) if data[k] != want[k])
            raise AssertionError(f"memory differs at {address + i:#x}: compiled {data[i]:#x}, interpreter "
                                 f"{want[i]:#x}: {ctx}")
    return exits_i[-1]


# ------------------------------------------------------------------ random programs
def rand_regs(rng, isa, keep=None):
    is64 = ISA.is_64_bit(isa)
    regs = [canonical(rand_value(rng), is64) for _ in range(13)]
    for k, v in (keep or {}).items():
        regs[k] = canonical(v, is64)
    return regs


def standard_memory(rng):
    fill_rw = bytes(rng.getrandbits(8) for _ in range(64))
    fill_ro = bytes(rng.getrandbits(8) for _ in range(64))
    perms = [(RW, PAGE, _engine.PERM_WRITE), (RO, PAGE, _engine.PERM_READ)]
    chunks = [(RW + PAGE - 64, fill_rw), (RO, fill_ro), (RW, fill_ro[:16])]
    return perms, chunks


@pytest.mark.parametrize("isa", ISAS)
def test_random_alu(runner, isa):
    """Straight-line code over every ALU instruction, all register aliasings."""
    rng = random.Random(f"x64-alu-{isa}")
    ops = alu_ops(isa)
    for n in range(500):
        asm = gen.Asm(isa)
        for _ in range(rng.randrange(1, 30)):
            emit_alu(asm, rng.choice(ops), rng)
        asm.op("trap")
        code, bitmask, _ = assemble(asm)
        gas = rng.choice((10_000, 10_000, rng.randrange(0, 32)))
        differ(runner, Setup(isa, code, bitmask, regs=rand_regs(rng, isa), gas=gas), f"alu #{n}")


@pytest.mark.parametrize("isa", ISAS)
def test_every_alu_op_with_edge_operands(runner, isa):
    """Each ALU instruction over the edge values in every operand slot,
    batched: one program per op, many instances with distinct registers."""
    rng = random.Random(f"x64-edge-{isa}")
    for op in alu_ops(isa):
        for round_ in range(6):
            asm = gen.Asm(isa)
            for _ in range(12):
                emit_alu(asm, op, rng)
            asm.op("trap")
            code, bitmask, _ = assemble(asm)
            regs = [canonical(rng.choice(RANDOM_VALUES), ISA.is_64_bit(isa)) for _ in range(13)]
            differ(runner, Setup(isa, code, bitmask, regs=regs), f"{op.name} #{round_}")


@pytest.mark.parametrize("isa", ISAS)
def test_random_memory(runner, isa):
    rng = random.Random(f"x64-mem-{isa}")
    for n in range(300):
        code, bitmask = memory_program(isa, rng, RW)
        perms, chunks = standard_memory(rng)
        gas = rng.choice((10_000, 10_000, rng.randrange(0, 40)))
        differ(runner, Setup(isa, code, bitmask, regs=rand_regs(rng, isa, {12: RW}), gas=gas, perms=perms,
                             chunks=chunks), f"memory #{n}")


def control_program(isa, rng):
    """Blocks with loops, static and dynamic jumps (valid and invalid jump
    table entries, odd / zero / past-the-table addresses, return to host),
    hostcalls, sbrk and memset.  r11 counts loops down, r12 is the RW base,
    r0 holds the return-to-host address."""
    asm = gen.Asm(isa)
    nblocks = rng.randrange(2, 9)
    labels = [f"b{i}" for i in range(nblocks)]
    has_heap_ops = ISA.BY_NAME["sbrk"].byte_for(isa) is not None
    alu = alu_ops(isa)
    table_labels = [rng.choice(labels) for _ in range(rng.randrange(0, 6))]
    asm.op("load_imm", 11, rng.randrange(1, 6))
    for i, label in enumerate(labels):
        asm.label(label)
        for _ in range(rng.randrange(0, 6)):
            x = rng.random()
            if x < 0.55:
                emit_alu(asm, rng.choice(alu), rng, regs=range(1, 11))
            elif x < 0.75:
                name = rng.choice(["load_indirect_u8", "load_indirect_i32", "store_indirect_u16",
                                   "store_imm_indirect_u32"])
                if name.startswith("store_imm"):
                    asm.op(name, 12, rng.randrange(0, PAGE), rand_imm(rng))
                else:
                    asm.op(name, rng.randrange(1, 11), 12, rng.randrange(-4, PAGE + 4))
            elif x < 0.85:
                asm.op("ecalli", rng.randrange(0, 1 << rng.choice((2, 8, 20))))
            elif has_heap_ops and x < 0.92:
                asm.op("sbrk", rng.randrange(1, 11), rng.randrange(1, 11))
            elif has_heap_ops:
                asm.op("memset")
            elif ISA.BY_NAME["unlikely"].byte_for(isa) is not None:
                asm.op("unlikely")
        t = rng.random()
        target = rng.choice(labels)
        if t < 0.15:
            asm.op("fallthrough")
        elif t < 0.4:
            asm.op("add_imm_64" if ISA.is_64_bit(isa) else "add_imm_32", 11, 11, -1)
            asm.op(rng.choice(["branch_not_eq_imm", "branch_greater_signed_imm", "branch_less_signed_imm"]), 11,
                   rng.choice((0, 1, -1)), target)
        elif t < 0.5:
            asm.op("branch_less_unsigned", rng.randrange(13), rng.randrange(13), target)
        elif t < 0.6:
            asm.op("jump", target)
        elif t < 0.8:
            k = rng.randrange(-1, len(table_labels) + 2)
            address = rng.choice([(k + 1) * 2, (k + 1) * 2 + 1, 0, HALT, rng.getrandbits(32)])
            if rng.random() < 0.5:
                asm.op("load_imm", 10, oracle.sx(address, 32)).op("jump_indirect", 10, 0)
            else:
                asm.op("load_imm", 9, oracle.sx(address - 6, 32))
                asm.op("load_imm_and_jump_indirect", rng.choice((9, 10)), 9, rand_imm(rng), 6)
        elif t < 0.85:
            asm.op("load_imm_and_jump", rng.randrange(1, 11), rand_imm(rng), target)
        elif t < 0.9:
            asm.op("trap")
        else:
            asm.op("jump_indirect", 0, 0)
    asm.op("jump_indirect", 0, 0)
    code, bitmask, where = assemble(asm)
    table = [where[label] for label in table_labels]
    # a few entries that are not jump targets
    table += [rng.randrange(0, len(code) + 3) for _ in range(rng.randrange(0, 3))]
    return code, bitmask, table


def control_case(isa, rng):
    """A random control-flow program with the standard memory, a random heap
    and random registers (r0 the halt address, r12 the RW base): (code,
    bitmask, table, perms, chunks, heap, heap_perms, regs)."""
    code, bitmask, table = control_program(isa, rng)
    perms, chunks = standard_memory(rng)
    heap, heap_perms = heap_setup(rng)
    return code, bitmask, table, perms, chunks, heap, heap_perms, rand_regs(rng, isa, {0: HALT, 12: RW})


def heap_setup(rng, page_size=PAGE):
    base = 0x40000 + rng.randrange(0, 64)
    top = base + rng.randrange(0, 3 * page_size)
    mapped_end = (top + page_size - 1) // page_size * page_size
    max_top = top + rng.choice((0, 100, page_size, 5 * page_size, 1 << 20))
    grow = rng.choice((0, 1, 2, 4))
    perm = [(base & ~(page_size - 1), mapped_end - (base & ~(page_size - 1)), _engine.PERM_WRITE)] \
        if mapped_end > base else []
    return (base, top, mapped_end, max_top, grow), perm


@pytest.mark.parametrize("isa", ISAS)
def test_random_control_flow(runner, isa):
    rng = random.Random(f"x64-cf-{isa}")
    for n in range(300):
        code, bitmask, table, perms, chunks, heap, heap_perms, regs = control_case(isa, rng)
        regs[7] = canonical(rng.choice((RW + rng.randrange(0, 64), heap[1], 0x3FF0, RO + 8, 0xFFFFFFF0)), True)
        regs[8] = rand_value(rng)
        regs[9] = canonical(rng.choice((0, 1, 16, 300, PAGE + 5, rng.getrandbits(33))), ISA.is_64_bit(isa))
        gas = rng.choice((100_000, rng.randrange(0, 300), rng.randrange(0, 5000)))
        differ(runner, Setup(isa, code, bitmask, table, regs=regs, gas=gas, perms=perms + heap_perms, chunks=chunks,
                             heap=heap, continue_ecalli=True, max_exits=50), f"control #{n}")


@pytest.mark.parametrize("isa", ISAS)
def test_random_bytes(runner, isa):
    """Arbitrary code bytes and bitmasks: invalid opcodes, gaps, implicit
    traps, truncated operands, every entry point."""
    rng = random.Random(f"x64-bytes-{isa}")
    table_size = lambda: rng.randrange(0, 6)
    for n in range(400):
        length = rng.randrange(0, 48)
        code = bytes(rng.getrandbits(8) for _ in range(length))
        density = rng.choice((0.1, 0.3, 0.6, 1.0))
        starts = [i for i in range(length) if rng.random() < density or (i == 0 and rng.random() < 0.9)]
        bitmask = gen.bitmask_bytes(length, starts)
        if rng.random() < 0.3 and bitmask:
            bitmask = bytes(rng.getrandbits(8) for _ in range(len(bitmask)))
        table = [rng.randrange(0, length + 3) for _ in range(table_size())]
        perms, chunks = standard_memory(rng)
        regs = rand_regs(rng, isa, {12: RW})
        for pc in {0, rng.randrange(0, length + 2)}:
            gas = rng.choice((200, rng.randrange(0, 20)))
            differ(runner, Setup(isa, code, bitmask, table, regs=regs, gas=gas, pc=pc, perms=perms, chunks=chunks,
                                 continue_ecalli=True, max_exits=20), f"bytes #{n}")


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.slow
def test_entry_points(runner, isa):
    """Host entries at every pc of structured programs: block starts,
    mid-block (charged up front), not enterable, not enough gas."""
    rng = random.Random(f"x64-entry-{isa}")
    for n in range(40):
        code, bitmask, table = control_program(isa, rng)
        perms, chunks = standard_memory(rng)
        regs = rand_regs(rng, isa, {0: HALT, 12: RW})
        for pc in range(len(code) + 1):
            differ(runner, Setup(isa, code, bitmask, table, regs=regs, gas=rng.choice((3, 50, 5000)), pc=pc,
                                 perms=perms, chunks=chunks, continue_ecalli=True, max_exits=10), f"entry #{n}")


# ------------------------------------------------------------------ memory rules
@pytest.mark.parametrize("page_size", [0x1000, 0x4000, 0x10000])
@pytest.mark.slow
def test_overflow_rule_and_low_zone(runner, page_size):
    """Accesses at the top of the address space (the checked_add wrap rule,
    with the top page mapped read-only, writable or not at all), around the
    < 0x10000 panic zone (mapped or not) and across page boundaries, for
    every access size, absolute and indirect."""
    rng = random.Random(f"x64-edges-{page_size}")
    top = (1 << 32) - page_size
    cases = 0
    for isa in ("latest64", "latest32"):
        sizes = [("u8", 1), ("u16", 2), ("u32", 4), ("u64", 8)] if isa == "latest64" else \
            [("u8", 1), ("u16", 2), ("u32", 4)]
        for top_perm in (None, _engine.PERM_READ, _engine.PERM_WRITE):
            for low_perm in (None, _engine.PERM_WRITE):
                perms = [(RW, page_size, _engine.PERM_WRITE), (RW + page_size, page_size, _engine.PERM_READ)]
                if top_perm:
                    perms.append((top, page_size, top_perm))
                if low_perm:
                    perms.append((0, page_size, low_perm))
                for suffix, size in sizes:
                    high = [0xFFFFFFFF - k for k in range(0, 9)] + [top - k for k in (0, 1, 3, 7)]
                    low = [0, 1, 0xFFFF - 3, 0x10000 - 8, page_size - 2]
                    middle = [RW + page_size - 3, RW + 2 * page_size - 5, RW - 2]
                    # each permission variant with the addresses it affects
                    addresses = (high if low_perm is None else []) + (low if top_perm is None else []) + \
                        (middle if top_perm is None and low_perm is None else [])
                    for address in addresses:
                        for kind in ("load", "store", "store_imm", "load_indirect", "store_indirect",
                                     "store_imm_indirect"):
                            name = f"{kind}_{suffix}"
                            if ISA.BY_NAME[name].byte_for(isa) is None:
                                name = name.replace("_u", "_i")  # latest32 has only the sign-extending 32-bit load
                            asm = gen.Asm(isa)
                            if kind == "load":
                                asm.op(name, 1, oracle.sx(address, 32))
                            elif kind == "store":
                                asm.op(name, 2, oracle.sx(address, 32))
                            elif kind == "store_imm":
                                asm.op(name, oracle.sx(address, 32), -2)
                            else:
                                delta = rng.choice((0, 1, -1, 0x7FFFFFFF, -0x80000000))
                                base = (address - delta) & 0xFFFFFFFF
                                if kind == "load_indirect":
                                    asm.op(name, 1, 3, delta)
                                elif kind == "store_indirect":
                                    asm.op(name, 2, 3, delta)
                                else:
                                    asm.op(name, 3, delta, 0x5A)
                            asm.op("trap")
                            code, bitmask, _ = assemble(asm)
                            regs = rand_regs(rng, isa)
                            if kind.endswith("indirect"):
                                hi = rng.choice((0, 0xFFFFFFFF00000000, 0x1234500000000)) if isa == "latest64" else 0
                                regs[3] = canonical(hi | base, isa == "latest64") if isa == "latest32" else hi | base
                            differ(runner, Setup(isa, code, bitmask, regs=regs, page_size=page_size, perms=perms,
                                                 chunks=[(RW, b"\x11" * 16)]), f"edge {name} {address:#x}")
                            cases += 1
    assert cases > 500


def test_page_sizes_random_memory(runner):
    rng = random.Random("x64-pages")
    for page_size in (0x2000, 0x10000):
        for n in range(60):
            isa = rng.choice(ISAS)
            code, bitmask = memory_program(isa, rng, RW)
            perms = [(RW, PAGE, _engine.PERM_WRITE), (RO, PAGE, _engine.PERM_READ)]
            differ(runner, Setup(isa, code, bitmask, regs=rand_regs(rng, isa, {12: RW}), page_size=page_size,
                                 perms=perms, chunks=[(RW + 100, b"abcdef")]), f"page {page_size:#x} #{n}")


@pytest.mark.parametrize("isa", ["latest32", "latest64"])
def test_memset_and_sbrk(runner, isa):
    """memset (per-byte gas, faults part way, the top of the address space,
    read-only pages, page sizes) and sbrk (growth policy, limits, 64-bit
    sizes)."""
    rng = random.Random(f"x64-heap-{isa}")
    for n in range(300):
        page_size = rng.choice((PAGE, PAGE, 0x4000))
        heap, heap_perms = heap_setup(rng, page_size)
        asm = gen.Asm(isa)
        for _ in range(rng.randrange(1, 5)):
            if rng.random() < 0.5:
                asm.op("sbrk", rng.randrange(1, 7), rng.randrange(1, 13))
            else:
                asm.op("memset")
        asm.op("trap")
        code, bitmask, _ = assemble(asm)
        regs = rand_regs(rng, isa)
        regs[7] = canonical(rng.choice((RW + rng.randrange(-8, PAGE), heap[1] - rng.randrange(0, 8), 0xFFFFFFF0,
                                        (1 << 32) - page_size - 3, 0xFFF0, rng.getrandbits(64))), isa == "latest64")
        regs[8] = rand_value(rng)
        regs[9] = canonical(rng.choice((0, 1, 7, 100, page_size, 3 * page_size + 5, rng.getrandbits(32),
                                        0xFFFFFFFF)), isa == "latest64")
        for k in (1, 2, 3, 4, 5, 6, 10, 11, 12):
            if rng.random() < 0.5:
                regs[k] = canonical(rng.choice((0, 1, 100, page_size, 1 << 20, 0xFFFFFFFF, 1 << 33)),
                                    isa == "latest64")
        perms = [(RW, page_size, _engine.PERM_WRITE), (RW + page_size, page_size, _engine.PERM_READ)] + heap_perms
        if rng.random() < 0.3:
            perms.append(((1 << 32) - page_size, page_size, rng.choice((_engine.PERM_READ, _engine.PERM_WRITE))))
        gas = rng.choice((1_000_000, rng.randrange(0, 50), rng.randrange(0, 5000)))
        metering = rng.random() < 0.85
        differ(runner, Setup(isa, code, bitmask, regs=regs, gas=gas, page_size=page_size, perms=perms, heap=heap,
                             metering=metering), f"heap #{n}")


@pytest.mark.parametrize("isa", ISAS)
def test_resuming_after_out_of_gas_and_page_faults(runner, isa):
    """What the host does after these exits: add gas and resume (the block
    is charged again), map the faulting page and resume (the access is
    retried; memset continues where it stopped), many times per run."""
    rng = random.Random(f"x64-resume-{isa}")
    for n in range(120):
        if n % 2:
            code, bitmask, table = control_program(isa, rng)
        else:
            code, bitmask = memory_program(isa, rng, RW)
            table = []
        perms, chunks = standard_memory(rng)
        perms = [p for p in perms if rng.random() < 0.7]  # sometimes nothing mapped at all
        heap, heap_perms = heap_setup(rng)
        regs = rand_regs(rng, isa, {0: HALT, 12: RW})
        regs[7] = canonical(rng.choice((RW + rng.randrange(0, 64), RW + 2 * PAGE - 3, 0x50000)), True)
        regs[9] = canonical(rng.choice((5, 300, PAGE + 5)), ISA.is_64_bit(isa))
        differ(runner, Setup(isa, code, bitmask, table, regs=regs, gas=rng.randrange(0, 30), perms=perms + heap_perms,
                             chunks=chunks, heap=heap, continue_ecalli=True, max_exits=120,
                             refill=rng.choice((1, 3, 17, 1000)), map_on_fault=True,
                             tracing=rng.random() < 0.2), f"resume #{n}")


# ------------------------------------------------------------------ modes
@pytest.mark.parametrize("isa", ISAS)
def test_step_tracing(runner, isa):
    """Single stepping: the same sequence of stops (pc and gas at each)."""
    rng = random.Random(f"x64-step-{isa}")
    for n in range(40):
        code, bitmask, table, perms, chunks, heap, heap_perms, regs = control_case(isa, rng)
        differ(runner, Setup(isa, code, bitmask, table, regs=regs, gas=rng.choice((40, 400)), perms=perms + heap_perms,
                             chunks=chunks, heap=heap, tracing=True, continue_ecalli=True, max_exits=300),
               f"step #{n}")


@pytest.mark.parametrize("isa", ISAS)
def test_gas_metering_off(runner, isa):
    rng = random.Random(f"x64-nogas-{isa}")
    for n in range(60):
        code, bitmask, table = control_program(isa, rng)
        # no loops that never end: keep the counter-based branches only
        perms, chunks = standard_memory(rng)
        regs = rand_regs(rng, isa, {0: HALT, 12: RW})
        s = Setup(isa, code, bitmask, table, regs=regs, gas=123, perms=perms, chunks=chunks, metering=False,
                  continue_ecalli=True, max_exits=50)
        # guard against an endless loop: only compare programs the interpreter finishes quickly with gas
        probe = Setup(isa, code, bitmask, table, regs=regs, gas=20_000, perms=perms, chunks=chunks,
                      continue_ecalli=True, max_exits=50)
        _, exits, _ = run_interpreter(probe)
        if exits and exits[-1][0] == "out-of-gas":
            continue
        differ(runner, s, f"no gas #{n}")


def test_cost_models(runner):
    """Per-op costs, including blocks whose cost does not fit a signed
    32-bit immediate (charged out of line) and wraps past 2^32 as the
    interpreter's 32-bit block cost does."""
    rng = random.Random("x64-cost")
    nops = len(ISA.OPCODES) + 1
    for n in range(120):
        isa = rng.choice(ISAS)
        choice = rng.random()
        if choice < 0.3:
            cost = [rng.randrange(1, 4) for _ in range(nops)]  # never 0: loops must run out of gas
        elif choice < 0.6:
            cost = [rng.choice((0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0x40000000, 3)) for _ in range(nops)]
        else:
            cost = [rng.randrange(1, 1 << 32) for _ in range(nops)]
        code, bitmask, table = control_program(isa, rng)
        perms, chunks = standard_memory(rng)
        regs = rand_regs(rng, isa, {0: HALT, 12: RW})
        # bounded work: at most ~20,000 instructions however the loops go
        gas = rng.randrange(0, min(cost) * 20_000)
        for pc in (0, rng.randrange(0, len(code) + 1)):
            differ(runner, Setup(isa, code, bitmask, table, regs=regs, gas=gas, pc=pc, perms=perms, chunks=chunks,
                                 continue_ecalli=True, max_exits=30, cost=cost), f"cost #{n}")


def test_interrupt_stops_at_a_block_start(runner):
    """The deadline mechanism: the runner's timer signal biases the gas
    word; the guest leaves at a block start with its state consistent (the
    gas it reports is exactly what it used), and resuming continues."""
    asm = gen.Asm("latest64")
    asm.label("loop").op("add_imm_64", 1, 1, 1).op("branch_not_eq_imm", 1, 0, "loop")
    asm.op("trap")
    code, bitmask, _ = assemble(asm)
    for metering in (True, False):
        cc = _engine.CompiledCode(ISA.isa_index("latest64"), code, bitmask, [], metering, False,
                                    interruptible=True)
        gas = 1 << 50
        rc, gas_after, native = cc.enter(0, gas)
        assert rc == abi.ENTRY_OK
        flags = XR.GAS_METERING if metering else 0
        result = runner.run(XR.Case(cc, [0] * 13, gas_after, native, flags=flags, interrupt_us=20_000))
        last = result.last
        assert last.kind == XR.INTERRUPTED, result.exits
        assert last.pc == 0  # the loop's block
        iterations = result.regs[1]
        assert iterations > 1000
        if metering:
            assert gas - last.gas == 2 * iterations  # two instructions per iteration, nothing lost
        else:
            assert last.gas == gas


# ------------------------------------------------------------------ real programs
def _kernel_case(name, n):
    program = Program.load(HERE.parent / "src" / "vmcore" / "data" / f"{name}.polkavm")
    mm = program.memory_map(PAGE)
    from vmcore.heap import HeapPolicy
    from vmcore.layout import initial_layout
    regions, heap = initial_layout(program, mm, HeapPolicy())
    perms = [(r.address, r.size, r.perm) for r in regions]
    chunks = [(r.address, r.data) for r in regions if r.data]
    regs = [0] * 13
    regs[0] = HALT
    regs[1] = mm.stack_address_high
    regs[7] = n
    regs[8] = mm.rw_data_address
    return program, perms, chunks, regs, heap


@pytest.mark.parametrize("name,n", [("sum", 100_000), ("sieve", 200_000)])
def test_kernels_match_the_interpreter(runner, name, n):
    program, perms, chunks, regs, heap = _kernel_case(name, n)
    s = Setup(program.isa, program.code, program.bitmask, program.jump_table, regs=regs, gas=1 << 40,
              pc=program.exports["main"], perms=perms, chunks=chunks,
              heap=(heap.base, heap.base, heap.mapped_end, heap.max_top, heap.grow_pages))
    last = differ(runner, s, name)
    assert last[0] == "halt"


@pytest.mark.slow
def test_compile_one_megabyte():
    """Compile time of 1 MB of compiled-code-shaped guest code (printed,
    not asserted; perf/bench_compiler.py measures it properly), and the
    pass stays linear: 4x the code takes well under 16x the time."""
    from _synthetic import synthetic_program
    code, bitmask, table = synthetic_program(1 << 20, seed=1, isa="jam_v1")
    idx = ISA.isa_index("jam_v1")
    _engine.CompiledCode(idx, code[:4096], bitmask[:512], [])  # warm up
    best = min(_engine.CompiledCode(idx, code, bitmask, table).seconds for _ in range(5))
    cc = _engine.CompiledCode(idx, code, bitmask, table)
    q = len(code) // 32 * 8
    quarter = min(_engine.CompiledCode(idx, code[:q], bitmask[:q // 8], [t for t in table if t < q]).seconds
                  for _ in range(5))
    mb = len(code) / (1 << 20)
    print(f"\ncompile: {len(code):,} bytes of guest code, {cc.info['map_count']:,} instructions -> "
          f"{cc.info['code_size']:,} bytes of x86-64 in {best * 1e3:.2f} ms ({best * 1e3 / mb:.2f} ms/MB; "
          f"a quarter of it: {quarter * 1e3:.2f} ms)")
    assert best < 16 * quarter + 0.01


@pytest.mark.parametrize("isa", ISAS)
def test_inlined_decoder_matches_vm_decode(isa):
    """The recompiler decodes with an inlined copy of vm_decode (and of
    vm_is_basic_block_start): they must agree at every offset."""
    rng = random.Random(f"x64-decode-{isa}")
    idx = ISA.isa_index(isa)
    for n in range(150):
        length = rng.randrange(0, 600)
        code = bytes(rng.getrandbits(8) for _ in range(length))
        density = rng.choice((0.05, 0.2, 0.4, 0.8, 1.0))
        bitmask = bytearray((length + 7) // 8)
        for i in range(length):
            if rng.random() < density:
                bitmask[i >> 3] |= 1 << (i & 7)
        if rng.random() < 0.2 and bitmask:
            bitmask[-1] |= 0xFF  # bits past the end of the code
        assert _engine.decoder_selftest(idx, code, bytes(bitmask)) is None, (n, code.hex(), bytes(bitmask).hex())
    code, bitmask, _ = __import__("_synthetic").synthetic_program(1 << 14, seed=3, isa=isa if isa != "latest32" else
                                                                   "latest64")
    assert _engine.decoder_selftest(idx, code, bitmask) is None


@pytest.mark.parametrize("isa", ISAS)
def test_map_records(isa):
    """The pc map: one record per instruction the interpreter lays out (the
    implicit traps included), sorted by pc and by native offset, the jump
    target flag exactly vm_is_basic_block_start, lookups both ways."""
    rng = random.Random(f"x64-map-{isa}")
    idx = ISA.isa_index(isa)
    for n in range(60):
        if n % 2:
            code, bitmask, table = control_program(isa, rng)
        else:
            length = rng.randrange(0, 200)
            code = bytes(rng.getrandbits(8) for _ in range(length))
            bitmask = bytes(rng.getrandbits(8) & rng.getrandbits(8) for _ in range((length + 7) // 8))
            table = [rng.randrange(0, length + 2) for _ in range(5)]
        split = XR.split_hint_for(code) if n % 3 == 0 else 0
        cc = _engine.CompiledCode(idx, code, bitmask, table, split_hint=split)
        entries = cc.map_entries()
        if split:  # the same records as one thread makes, at other native offsets
            one = _engine.CompiledCode(idx, code, bitmask, table).map_entries()
            assert [(e[0], e[3]) for e in entries] == [(e[0], e[3]) for e in one]
        pcs = [e[0] for e in entries]
        assert pcs == sorted(set(pcs))
        assert [e[1] for e in entries] == sorted(e[1] for e in entries)
        for pc, entry, body, info in entries:
            assert entry <= body
            want = pc < len(code) and _engine.is_basic_block_start(idx, code, bitmask, pc)
            assert bool(info & _engine.INFO_JUMP_TARGET) == want, (n, pc)
            assert cc.find_pc(pc) == pcs.index(pc)
            k = cc.find_native(body)  # the last record starting at or before body (empty ones share offsets)
            assert entries[k][1] <= body and (k + 1 == len(entries) or entries[k + 1][1] > body)
            if k + 1 < len(entries) and entries[k + 1][1] > body:
                assert entries[k][1] == entry or entries[k][0] > pc
        jt = cc.jump_table
        for k, target in enumerate(table):
            address = int.from_bytes(jt[8 * k:8 * k + 8], "little")
            valid = target < len(code) and _engine.is_basic_block_start(idx, code, bitmask, target)
            assert (address != 0) == valid
            if valid:
                assert address == cc.info["code_address"] + entries[cc.find_pc(target)][1]


def test_split_compile_leaves_a_hole_between_halves():
    """Compiled by two threads, the second half's code starts where the
    first half's worst case ends."""
    import vmcore
    program = vmcore.Program.load(HERE.parent / "src" / "vmcore" / "data" / "sieve.polkavm")
    one = _engine.CompiledCode(program.isa_index, program.code, program.bitmask, program.jump_table)
    two = _engine.CompiledCode(program.isa_index, program.code, program.bitmask, program.jump_table,
                                 split_hint=len(program.code) // 2)
    assert two.info["code_size"] > one.info["code_size"]
    entries = two.map_entries()
    second = next(k for k, e in enumerate(entries) if e[0] >= len(program.code) // 2)
    gap = entries[second][1] - entries[second - 1][1]
    assert gap > 1000


def test_compile_errors_and_cpu_check():
    assert _engine.cpu_check() is None  # (the module is skipped otherwise)
    with pytest.raises(ValueError):
        _engine.CompiledCode(0, b"\x00" * 16, b"", [])
    with pytest.raises(_engine.CompileError):
        _engine.CompiledCode(99, b"\x00", b"\x01", [])
    cc = _engine.CompiledCode(ISA.isa_index("latest64"), b"", b"", [5])
    assert cc.enter(0, 10)[0] == abi.ENTRY_NOT_AN_INSTRUCTION
    assert cc.jump_table == bytes(8)  # an entry that is not a jump target is 0


# ------------------------------------------------------------------ code shape
def _block_code(isa, asm, *, metering, interruptible=False):
    if os.environ.get("VMCORE_UNDER_ASAN"):
        # capstone's C library aborts when loaded under the ASan preload (see test_x64_asm.py)
        pytest.skip("capstone cannot be loaded under the ASan preload (make test-asan)")
    capstone = pytest.importorskip("capstone")
    code, bitmask, _ = assemble(asm)
    cc = _engine.CompiledCode(ISA.isa_index(isa), code, bitmask, [], metering, interruptible=interruptible)
    entry = cc.map_entries()[0][1]
    md = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
    out = []
    for i in md.disasm(cc.code[entry:], entry):
        out.append(f"{i.mnemonic} {i.op_str}")
        if i.mnemonic == "call":  # the trap ending the program
            break
    return out


def test_32_bit_programs_skip_sign_extension():
    """A 32-bit program keeps only the low halves of its registers in
    generated code (no movsxd after 32-bit arithmetic); a 64-bit program
    extends every 32-bit result."""
    for isa, want in (("latest32", 0), ("latest64", 3)):
        asm = gen.Asm(isa).op("add_imm_32", 1, 2, 5).op("add_32", 3, 1, 2).op("shift_logical_left_imm_32", 3, 3, 4)
        code = _block_code(isa, asm.op("trap"), metering=False)
        assert sum(line.startswith("movsxd") for line in code) == want, (isa, code)


def test_32_bit_upper_halves_never_leak(runner):
    """32-bit results whose upper halves generated code leaves unextended
    (sums crossing 2**31 and 2**32), then every instruction that would see
    an upper half if it read 64 bits: compares, branches, cmov, min/max,
    the high product, division, and the registers reported at the end."""
    isa = "latest32"
    consumers = [("set_less_than_signed", 4, 1, 2), ("set_less_than_unsigned", 5, 2, 1),
                 ("set_less_than_signed_imm", 6, 1, 0), ("set_greater_than_unsigned_imm", 7, 2, 0x10),
                 ("cmov_if_zero", 8, 1, 3), ("cmov_if_not_zero_imm", 9, 3, 7), ("maximum", 10, 1, 2),
                 ("minimum_unsigned", 11, 1, 2), ("mul_upper_signed_signed", 12, 1, 2),
                 ("mul_upper_unsigned_unsigned", 4, 1, 2), ("div_signed_32", 5, 1, 2), ("rem_unsigned_32", 6, 1, 2)]
    for a, b in ((0x7FFFFFFF, 1), (-1, 1), (0x7FFFFFF0, 0x7FFFFFF0), (-0x80000000, -1), (5, -6)):
        asm = gen.Asm(isa)
        asm.op("load_imm", 1, oracle.sx(a & 0xFFFFFFFF, 32)).op("load_imm", 2, oracle.sx(b & 0xFFFFFFFF, 32))
        asm.op("add_imm_32", 1, 1, 1).op("add_32", 2, 2, 1).op("add_imm_32", 3, 1, -1)
        for op in consumers:
            asm.op(*op)
        asm.op("branch_less_signed_imm", 1, 0, "neg").op("load_imm", 0, 1).op("trap")
        asm.label("neg").op("branch_less_unsigned", 2, 1, "below").op("load_imm", 0, 2).op("trap")
        asm.label("below").op("load_imm", 0, 3).op("trap")
        code, bitmask, _ = assemble(asm)
        for metering in (True, False):
            differ(runner, Setup(isa, code, bitmask, regs=[0] * 13, metering=metering), f"upper halves {a} {b}")


def test_check_without_metering_only_loads():
    """Interruptible without metering: the block check reads the gas
    counter (cmp) instead of charging 0 to it (a read-modify-write)."""
    asm = gen.Asm("latest64").op("add_imm_64", 1, 1, 1).op("trap")
    assert _block_code("latest64", asm, metering=False, interruptible=True)[0].startswith("cmp qword ptr [r15 - ")
    assert _block_code("latest64", asm, metering=True)[0].startswith("sub qword ptr [r15 - ")


def test_forward_jumps_pass_the_interrupt_check():
    """Interruptible without metering, a forward jump enters its target
    past the block's interrupt check, and a backward one (the loop) lands
    on it; with metering every jump lands on the charge."""
    if os.environ.get("VMCORE_UNDER_ASAN"):
        pytest.skip("capstone cannot be loaded under the ASan preload (make test-asan)")
    capstone = pytest.importorskip("capstone")
    md = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
    asm = gen.Asm("latest64").op("jump", "fwd").op("trap").label("fwd")
    asm.op("add_imm_64", 1, 1, 1).op("branch_not_eq_imm", 1, 0, "fwd").op("trap")
    code, bitmask, _ = assemble(asm)
    for metering, interruptible in ((False, True), (True, False)):
        cc = _engine.CompiledCode(ISA.isa_index("latest64"), code, bitmask, [], metering, interruptible=interruptible)
        entries = cc.map_entries()
        _, fwd_entry, fwd_body, _ = entries[2]
        assert fwd_body - fwd_entry == 17  # the check / charge

        def jump_target(start, mnemonic):
            for i in md.disasm(cc.code[start:], start):
                if i.mnemonic == mnemonic:
                    return int(i.op_str, 16)
            raise AssertionError(mnemonic)

        assert jump_target(entries[0][2], "jmp") == (fwd_body if not metering else fwd_entry), metering
        assert jump_target(fwd_body, "jne") == fwd_entry, metering
