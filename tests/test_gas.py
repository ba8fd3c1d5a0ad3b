"""Gas cost models (include/vmcore/gas.h, vmcore.gas):

* every JAM v0.5 vector (tests/vectors/v0.5, Gray Paper 0.8, the full cost
  model) on every backend and isolation, block-gas-costs included (read
  back from what each engine charges);
* the pipeline simulator against timelines from PolkaVM's own tests;
* both engines and the gas module agree on every block's cost;
* the API: Sandbox(gas_model=...), Program.block_gas_costs;
* a small differential run against PolkaVM 0.35 (refharness gen-random),
  skipped when the reference binary is absent.
"""
from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

import vmcore
from vmcore import _engine, abi, gas, isa as ISA
from vmcore.vectors_v05 import run_vector_v05

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
V05_DIR = HERE / "vectors" / "v0.5" / "programs"
V05 = sorted(V05_DIR.glob("*.json"))
sys.path.insert(0, str(ROOT / "perf"))
sys.path.insert(0, str(HERE))

import gen_vectors as gen  # noqa: E402
import modes  # noqa: E402
from conftest import REFHARNESS, needs_refharness  # noqa: E402

NATIVE = modes.NO_NATIVE_CODE


# ------------------------------------------------------------------ v0.5 vectors
def test_v05_vectors_are_all_here():
    assert len(V05) == 257
    names = {p.stem.split("_")[0] for p in V05}
    assert names == {"gas", "inst", "multistep"}


@pytest.mark.parametrize("path", V05, ids=[p.stem for p in V05])
def test_v05_vector(path, mode):
    vector = json.loads(path.read_text())
    assert run_vector_v05(vector, **mode.kwargs) == []


def test_v05_runner_can_fail():
    """A wrong expectation (gas, block cost) is reported, not ignored."""
    vector = json.loads((V05_DIR / "gas_complex_1.json").read_text())
    vector["block-gas-costs"][0]["cost"] += 1
    assert any("block-gas-costs" in d for d in run_vector_v05(vector))
    vector = json.loads((V05_DIR / "gas_complex_1.json").read_text())
    for step in vector["steps"]:
        if "assert" in step:
            step["assert"]["gas"] -= 1
    assert any("gas: expected" in d for d in run_vector_v05(vector))
    # naive costs are not the vectors' costs
    assert run_vector_v05(json.loads((V05_DIR / "gas_complex_1.json").read_text()), gas_model="naive") != []


def test_cli_runs_both_formats():
    for path in ("tests/vectors/v0.5", "tests/vectors/official/inst_add_32.json"):
        out = subprocess.run([sys.executable, "-m", "vmcore", "vectors", path], cwd=ROOT, capture_output=True,
                             text=True)
        assert out.returncode == 0, out.stdout[-2000:]
        assert out.stdout.strip().endswith(" 0 failed")


# ------------------------------------------------------------------ the simulator
def _costs(asm: "gen.Asm", model="full"):
    code, starts, _ = asm.assemble()
    bitmask = gen.bitmask_bytes(len(code), starts)
    m = gas.resolve(model)
    return _engine.block_gas_costs(ISA.isa_index(asm.isa), code, bitmask, m.kind, m.memory_access_cost)


def test_timelines_from_the_reference():
    """PolkaVM's simulator tests (latest64, L1 hit): the cycles of the
    timeline minus 3."""
    a = gen.Asm("latest64").op("add_64", 7, 8, 9).op("add_64", 8, 8, 9).op("trap")
    assert _costs(a, "full-l1") == [(0, 2)]  # DeER. / DeER. / DeeER
    a = gen.Asm("latest64").op("add_64", 7, 8, 9).op("add_64", 8, 7, 9).op("trap")
    assert _costs(a, "full-l1") == [(0, 3)]  # the second waits for the first
    a = gen.Asm("latest64")
    for reg in (7, 8, 9, 10):
        a.op("load_imm64", reg, 0x12345678AABBCCDD)
    a.op("trap")
    assert _costs(a, "full-l1") == [(0, 4)]  # two decode slots each: two per cycle


def test_trap_alone_and_branch_prediction():
    assert _costs(gen.Asm("jam_v1").op("trap")) == [(0, 2)]
    # a branch whose fall-through is a trap is predicted (1 cycle), else a miss (20)
    cheap = gen.Asm("jam_v1").op("branch_eq_imm", 7, 0, "t").op("trap").label("t").op("trap")
    dear = gen.Asm("jam_v1").op("branch_eq_imm", 7, 0, "t").op("fallthrough").label("t").op("fallthrough")
    assert _costs(cheap)[0][1] < _costs(dear)[0][1]


def _pipeline_limit_blocks():
    """Blocks that run into the pipeline's limits (gas.c's fast path hands
    them to the cycle simulation), with PolkaVM 0.35's costs for them
    (refharness oracle, full model, L2 hit)."""
    blocks = {}
    a = gen.Asm("jam_v1")
    for k in range(6):  # stores hold an ALU for 25 cycles: the fifth waits
        a.op("store_u64", 7 + k % 3, 0x20000 + 8 * k)
    blocks["stores_wait_for_alus"] = (a.op("trap"), 50)
    a = gen.Asm("jam_v1").op("load_u64", 7, 0x20000)
    for r in (8, 9, 10, 11, 12):  # all ready when the load is: 4 ALUs
        a.op("add_64", r, 7, 7)
    blocks["many_ready_at_once"] = (a.op("load_imm", 1, 5).op("load_imm", 2, 6).op("trap"), 27)
    a = gen.Asm("jam_v1").op("load_u64", 7, 0x20000)
    for r in range(9):
        a.op("load_imm", r % 6, r)
    for r in (8, 9, 10, 11):  # at most 5 starts per cycle
        a.op("add_64", r, 7, 7)
    blocks["start_limit"] = (a.op("trap"), 26)
    a = gen.Asm("jam_v1")
    for k in range(40):  # more than the 32-entry reorder buffer
        a.op("add_64", 7 + k % 5, 7 + (k + 1) % 5, 7 + (k + 2) % 5)
    blocks["reorder_buffer_full"] = (a.op("trap"), 22)
    a = gen.Asm("jam_v1")
    for k in range(30):
        if k % 3 == 1:
            a.op("load_u32", 7 + k % 4, 0x20000 + 4 * k)
        else:
            a.op("div_unsigned_64" if k % 3 == 0 else "mul_64", 7 + k % 4, 8 + k % 3, 7 + k % 2)
    blocks["long_mixed"] = (a.op("trap"), 606)
    # The start loop passes over what needs an ALU while none is free:
    # instructions without units still start, up to the start limit ...
    a = gen.Asm("jam_v1")
    for k in range(4):
        a.op("store_u64", 7 + k % 3, 0x20000 + 8 * k)
    a.op("load_u64", 8, 0x20000)
    for r in range(7):
        a.op("load_imm", r % 6, r)
    for r in (9, 10, 11, 12):
        a.op("add_64", r, r % 6, 1)
    blocks["no_alu_start_limit"] = (a.op("trap"), 50)
    # ... including after a start took the last ALU in the same cycle
    a = gen.Asm("jam_v1")
    for k in range(3):
        a.op("store_u64", 7, 0x20000 + 8 * k)
    a.op("add_64", 8, 9, 10)
    for r in range(6):
        a.op("load_imm", r, r)
    a.op("add_64", 11, 0, 1).op("load_imm", 12, 3).op("add_64", 10, 12, 12)
    blocks["last_alu_taken"] = (a.op("trap"), 25)
    a = gen.Asm("jam_v1")
    for k in range(5):
        a.op("load_u64", 7 + k % 4, 0x20000 + 8 * k)
    for r in range(6):
        a.op("load_imm", r, r)
    a.op("mul_64", 11, 0, 1).op("count_trailing_zero_bits_64", 12, 2)
    blocks["loads_then_immediates"] = (a.op("trap"), 50)
    # ... and while one is left after a start, the next ALU user still starts
    for loads, cost in ((2, 27), (4, 50)):
        a = gen.Asm("jam_v1").op("store_u64", 7, 0x20000).op("store_u64", 7, 0x20008)
        a.op("add_64", 8, 9, 10).op("add_64", 11, 9, 10)
        for k in range(loads):
            a.op("load_u64", 1 + k, 0x20100 + 8 * k)
        blocks[f"one_alu_left_{loads}_loads"] = (a.op("add_64", 0, 8, 11).op("trap"), cost)
    return blocks


@pytest.mark.parametrize("name", sorted(_pipeline_limit_blocks()))
def test_blocks_at_the_pipeline_limits(name):
    asm, cost = _pipeline_limit_blocks()[name]
    assert _costs(asm) == [(0, cost)]
    # the same after other blocks: nothing of a block's pipeline leaks into the next
    a = gen.Asm("jam_v1").op("add_64", 7, 8, 9).op("fallthrough").op("load_u64", 7, 0x20000).op("fallthrough")
    a.items.extend(asm.items)
    assert _costs(a)[-1][1] == cost


def test_costs_do_not_depend_on_the_blocks_before():
    """A long run of two blocks, one the fast path schedules (a chain of
    divisions, ~900 cycles) and one it hands to the cycle simulation
    (stores competing for the ALUs): each costs what it costs alone.  The
    fast path's clock counts on across blocks and restarts past
    FAST_CLOCK_RESTART (gas.c, 2^20 cycles): ~2.8M cycles cross that twice."""
    divs = gen.Asm("jam_v1")
    for _ in range(15):
        divs.op("div_unsigned_64", 7, 7, 8)
    divs.op("fallthrough")
    stores = gen.Asm("jam_v1")
    for k in range(8):
        stores.op("store_indirect_u64", 9, 10, 8 * k)
    stores.op("fallthrough")
    lone = [_costs(a)[0][1] for a in (divs, stores)]  # (then the trap past the code's end)
    assert lone[0] >= 15 * 60
    code, starts = bytearray(), []
    for _ in range(3000):
        for a in (divs, stores):
            piece, offsets, _ = a.assemble()
            starts += [len(code) + o for o in offsets]
            code += piece
    m = gas.resolve("full")
    costs = _engine.block_gas_costs(ISA.isa_index("jam_v1"), bytes(code), gen.bitmask_bytes(len(code), starts),
                                    m.kind, m.memory_access_cost)
    assert [c for _, c in costs[:-1]] == lone * 3000


def test_cache_models_order():
    a = gen.Asm("jam_v1").op("load_u64", 7, 0x20000).op("add_64", 8, 7, 7).op("trap")
    costs = [_costs(a, m)[0][1] for m in ("full-l1", "full", "full-l3")]
    assert costs[0] < costs[1] < costs[2]
    assert _costs(a, "naive") == [(0, 3)]


def test_naive_is_one_per_instruction():
    rng = random.Random("naive")
    for _ in range(20):
        program = _random_program(rng)
        blocks = program.block_gas_costs("naive")
        insns = _engine.instructions(program.isa_index, program.code, program.bitmask)
        assert sum(blocks.values()) == len(insns)


def _random_program(rng, size=4000, isa="jam_v1"):
    from _synthetic import synthetic_program
    code, bitmask, table = synthetic_program(size, seed=rng.randrange(1 << 30), isa=isa)
    return _from_parts(code, bitmask, table, isa)


def _from_parts(code, bitmask, table, isa):
    """A raw code blob (deblob) from parts."""
    def varint(v):
        # the Gray Paper's natural-number encoding
        for n in range(8):
            if v < 1 << (7 * (n + 1)):
                return bytes([256 - (1 << (8 - n)) + (v >> (8 * n))]) + (v & ((1 << (8 * n)) - 1)).to_bytes(n, "little")
        return b"\xff" + v.to_bytes(8, "little")
    entry = 4
    bitmask = bytes(bitmask)[:(len(code) + 7) // 8]
    blob = varint(len(table)) + bytes([entry]) + varint(len(code))
    blob += b"".join(t.to_bytes(entry, "little") for t in table) + bytes(code) + bytes(bitmask)
    return vmcore.Program.from_raw_code(blob, isa=isa)


# ------------------------------------------------------------------ engines agree
@pytest.mark.parametrize("model", ["full", "full-l1", "full-l3", "naive"])
def test_engines_charge_the_gas_modules_costs(model):
    m = gas.resolve(model)
    rng = random.Random(f"engines-{model}")
    for _ in range(6):
        program = _random_program(rng, size=rng.choice((2000, 20000)))
        want = list(program.block_gas_costs(m).items())
        args = (program.isa_index, program.code, program.bitmask, program.jump_table)
        interp = _engine.CompiledModule(*args, True, gas_kind=m.kind, memory_access_cost=m.memory_access_cost)
        assert interp.block_costs() == want
        shared = _engine.SharedModule(*args, True, False, False, gas_kind=m.kind,
                                       memory_access_cost=m.memory_access_cost)
        assert shared.block_costs() == want
        if NATIVE is None:
            for split in (0, len(program.code) // 2):
                cc = _engine.CompiledCode(*args, True, split_hint=split, gas_kind=m.kind,
                                            memory_access_cost=m.memory_access_cost)
                assert cc.block_costs() == want
            native = _engine.SharedModule(*args, True, False, True, gas_kind=m.kind,
                                           memory_access_cost=m.memory_access_cost)
            assert native.block_costs() == want


def test_mid_block_entry_charges_the_whole_block():
    program = vmcore.Program.load(ROOT / "src" / "vmcore" / "data" / "sum.polkavm")
    costs = program.block_gas_costs("full")
    insns = _engine.instructions(program.isa_index, program.code, program.bitmask)
    starts = set(costs)
    inside = [i[0] for i in insns if i[0] not in starts]
    assert inside
    args = (program.isa_index, program.code, program.bitmask, program.jump_table)
    m = gas.FULL
    module = _engine.CompiledModule(*args, True, gas_kind=m.kind, memory_access_cost=m.memory_access_cost)
    cc = _engine.CompiledCode(*args, True, gas_kind=m.kind) if NATIVE is None else None
    for pc in inside:
        block = max(s for s in starts if s < pc)
        inst = _engine.Instance(module, 4096)
        inst.gas = 10_000
        rc = inst.set_pc(pc)
        if rc == abi.ENTRY_NOT_AN_INSTRUCTION:
            continue  # not enterable there
        assert rc == abi.ENTRY_OK and inst.gas == 10_000 - costs[block]
        if cc is not None:
            rc2, after, _ = cc.enter(pc, 10_000)
            assert rc2 == abi.ENTRY_OK and after == 10_000 - costs[block]


def test_bad_models_are_refused():
    program = vmcore.Program.load(ROOT / "src" / "vmcore" / "data" / "sum.polkavm")
    with pytest.raises(ValueError):
        vmcore.Sandbox(program, gas=10, gas_model="full-l9")
    with pytest.raises(TypeError):
        vmcore.Sandbox(program, gas=10, gas_model=3)
    with pytest.raises(ValueError):
        program.block_gas_costs("bogus")
    args = (program.isa_index, program.code, program.bitmask, program.jump_table, True)
    with pytest.raises(ValueError):
        _engine.CompiledModule(*args, gas_kind=_engine.GAS_FULL, memory_access_cost=0)
    with pytest.raises(ValueError):
        _engine.CompiledModule(*args, gas_kind=7)
    with pytest.raises(ValueError):
        _engine.SharedModule(*args, gas_kind=_engine.GAS_FULL, memory_access_cost=200)


def test_defaults_and_names():
    assert gas.default_for("jam_v1") is gas.FULL and gas.default_for("latest64") is gas.NAIVE
    assert gas.resolve("full-l2-hit") is gas.FULL and gas.resolve("FULL-L1") is gas.FULL_L1
    program = vmcore.Program.load(ROOT / "src" / "vmcore" / "data" / "sum.polkavm")
    assert program.default_gas_model == "full"
    for model in ("naive", "full", "full-l1", "full-l3"):
        sb = vmcore.Sandbox(program, gas=10**6, gas_model=model, backend="interpreter", isolation="inline")
        assert sb.gas_model == model
        sb.call("main", 3)
        used = 10**6 - sb.gas
        assert used > 0
    blocks = program.block_gas_costs(None)
    assert blocks == program.block_gas_costs("full") and blocks != program.block_gas_costs("naive")


def test_block_gas_costs_can_stop_at_the_first_gap():
    """A trap, 30 bytes no bitmask bit covers past the longest skip, a trap:
    the engines lay out an implicit trap at the gap and go on to the next
    instruction; stop_at_gap lists only what comes before (spectool's
    listing of a vector's blocks)."""
    code = bytes(32)
    bitmask = (1 | 1 << 31).to_bytes(4, "little")
    program = vmcore.Program.from_raw_code(bytes([0, 0, len(code)]) + code + bitmask, isa="jam_v1")
    every = program.block_gas_costs("full")
    first = program.block_gas_costs("full", stop_at_gap=True)
    assert list(every) == [0, 25, 31]
    assert first == {pc: every[pc] for pc in (0, 25)}
    assert program.block_gas_costs("full") == every  # cached apart


def test_sandbox_gas_same_on_every_backend(mode):
    program = vmcore.Program.load(ROOT / "src" / "vmcore" / "data" / "sum.polkavm")
    got = []
    for model in ("full", "full-l3", "naive"):
        with vmcore.Sandbox(program, gas=10**6, gas_model=model, **mode.kwargs) as sb:
            assert sb.call("main", 100) == sum(i * i for i in range(100))
            got.append(10**6 - sb.gas)
    with vmcore.Sandbox(program, gas=10**6, backend="interpreter", isolation="inline", gas_model="full") as ref:
        ref.call("main", 100)
        assert got[0] == 10**6 - ref.gas
    assert got[2] == 5 * 100 + 6 and got[0] != got[2]


# ------------------------------------------------------------------ the reference
@needs_refharness
@pytest.mark.slow
def test_random_programs_against_polkavm(tmp_path_factory, mode):
    """Random jam_v1 programs run by PolkaVM 0.35's interpreter (full cost
    model): vmcore's block costs and every step's result agree."""
    out = tmp_path_factory.getbasetemp() / "refharness-random"
    if not out.exists():
        out.mkdir()
        subprocess.run([REFHARNESS, "gen-random", "--out", str(out), "--count", "60", "--seed", "20261201"],
                       check=True, capture_output=True, timeout=300)
    files = sorted(out.glob("*.json"))
    assert len(files) >= 30
    failures = []
    for path in files:
        diffs = run_vector_v05(json.loads(path.read_text()), **mode.kwargs)
        if diffs:
            failures.append((path.name, diffs[:3]))
    assert not failures, failures[:5]
