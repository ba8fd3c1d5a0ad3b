"""backend="compiler" end to end: native code from the recompiler running
inside the sandbox process, against the interpreter (vectors, the shared
kernels, lock-step crosschecks, seeded random programs) and through the
public API (backend selection, caching, errors)."""
import os
import random

import pytest

import vmcore
from vmcore import asm, backends, fuzz
from vmcore.crosscheck import Divergence, crosscheck
from vmcore.pool import _shared_module
from vmcore.vectors import run_paths

import modes
from conftest import ROOT

NO_COMPILER = modes.unavailable(modes.BY_NAME["compiler"])
pytestmark = pytest.mark.skipif(NO_COMPILER is not None, reason=str(NO_COMPILER))

DATA = ROOT / "src" / "vmcore" / "data"


def load(name):
    return vmcore.Program.load(DATA / f"{name}.polkavm")


@pytest.mark.slow
def test_every_vector_passes_as_native_code():
    results = run_paths([str(ROOT / "tests" / "vectors")], backend="compiler", isolation="process")
    failed = [(r.path, r.diffs) for r in results if r.diffs]
    assert len(results) > 4000
    assert not failed, failed[:3]


@pytest.mark.parametrize("name,args", [("sum", (5000,)), ("sieve", (3000, None))])
@pytest.mark.slow
def test_kernels_in_lockstep(name, args):
    program = load(name)
    if args[-1] is None:
        args = (args[0], program.memory_map(4096).rw_data_address)
    expected = vmcore.Sandbox(program, backend="interpreter", gas=10**9).call("main", *args)
    assert crosscheck(program, "main", *args, gas=10**9) == expected


def test_kernels_full_size_match_the_interpreter_and_gas():
    program = load("sum")
    results = []
    for backend in ("interpreter", "compiler"):
        with vmcore.Sandbox(program, backend=backend, isolation="process", gas=10**12) as sb:
            results.append((sb.call("main", 3_000_000), sb.gas))
    assert results[0] == results[1]


HOSTCALLS = asm.assemble("""
%isa = jam_v1
%import next
%import put
pub @main:
    s0 = 0
    s1 = a0
@loop:
    ecalli 0
    s0 = s0 + a0
    a0 = s0
    ecalli 1
    s1 = s1 - 1
    jump @loop if s1 != 0
    a0 = s0
    ret
""")


def test_hostcall_traffic_in_lockstep():
    program = vmcore.Program.from_bytes(HOSTCALLS)
    counter = {"n": 0}
    seen = []

    def next_(caller):
        counter["n"] += 1
        return (counter["n"] + 1) // 2  # each side sees 1, 2, 3, ...

    def put(caller, value):
        seen.append(value)

    result = crosscheck(program, "main", 50, gas=10**6, hostcalls={"next": next_, "put": put})
    assert result == sum(range(1, 51))
    assert seen[::2] == seen[1::2]  # both sides reported the same running sums


def test_crosscheck_reports_a_divergence_with_both_states():
    program = vmcore.Program.from_bytes(HOSTCALLS)
    calls = {"n": 0}

    def next_(caller):
        calls["n"] += 1
        return calls["n"]  # the two sides get different answers

    with pytest.raises(Divergence) as info:
        crosscheck(program, "main", 3, gas=10**6, hostcalls={"next": next_, "put": lambda caller, v: None})
    e = info.value
    assert e.interpreter["regs"] != e.compiler["regs"]
    assert "differ" in str(e) and e.step >= 0


def test_guest_errors_are_the_same_on_both_sides():
    with pytest.raises(vmcore.OutOfGas):
        crosscheck(load("sum"), "main", 1000, gas=500)
    with pytest.raises(vmcore.OutOfGas):
        crosscheck(load("sum"), "main", 1000, gas=500, lockstep=False)


@pytest.mark.slow
def test_seeded_random_programs_agree(tmp_path):
    """The fuzzer's differential target (random valid programs of every
    ISA, random registers, pages and gas) with the compiler among the
    configurations."""
    configs, _ = fuzz.default_configs()
    assert "compiler/process" in [c.name for c in configs]
    summary = fuzz.campaign(seconds=120, cases=400, seed=11, targets=["diff"], out_dir=str(tmp_path))
    assert summary.failed == 0 and summary.passed >= 400


def test_backend_selection(monkeypatch):
    program = load("sum")
    with vmcore.Sandbox(program, isolation="process") as sb:
        assert (sb.backend, sb.isolation) == ("compiler", "process")
    with vmcore.Sandbox(program, backend="compiler") as sb:
        assert sb.isolation == "process" and sb.pid is not None
    with vmcore.Sandbox(program) as sb:
        assert (sb.backend, sb.isolation) == ("interpreter", "inline")
    with pytest.raises(ValueError, match="not available"):
        vmcore.Sandbox(program, backend="compiler", isolation="inline")


def test_cpu_without_bmi2_falls_back(monkeypatch):
    program = load("sum")
    monkeypatch.setattr(backends, "_SELECTED", {})
    monkeypatch.setattr(backends, "cpu_supports_native", lambda: "this CPU lacks BMI2")
    with vmcore.Sandbox(program, isolation="process") as sb:
        assert sb.backend == "interpreter"
        report = sb.isolation_report()
        assert isinstance(report, vmcore.IsolationReport) and report["seccomp"] in (True, False)
        assert report.fallback == "backend='auto' runs the interpreter instead of the compiler: this CPU lacks BMI2"
    with vmcore.Sandbox(program, isolation="process", backend="interpreter") as sb:
        assert sb.isolation_report().fallback is None  # asked for, not a fallback
    with pytest.raises(vmcore.SandboxError, match="lacks BMI2.*backend='interpreter'"):
        vmcore.Sandbox(program, backend="compiler")


def test_native_code_is_cached_per_program():
    program = load("sieve")
    a = _shared_module(program, True, False, True)
    assert _shared_module(program, True, False, True) is a
    assert a.native and a.native_code_size > 0
    assert _shared_module(program, True, False, False) is not a


@pytest.mark.parametrize("size", [1 << 12, 1 << 18])
def test_shared_module_holds_the_compiled_code(size):
    """What the sandbox maps is exactly what the recompiler emits: from
    64 KiB of code on, the host compiles two halves on two threads,
    prefaulting the memfd as they go (the gap between them a hole)."""
    import sys
    sys.path.insert(0, str(ROOT / "perf"))
    from _synthetic import synthetic_program
    from vmcore import _engine, isa as ISA
    code, bitmask, table = synthetic_program(size, seed=5, isa="jam_v1")
    idx = ISA.isa_index("jam_v1")
    shared = _engine.SharedModule(idx, code, bitmask, table, True, False, True)
    compiled = _engine.CompiledCode(idx, code, bitmask, table, gas_metering=True, interruptible=True,
                                      parallel=True)
    info = compiled.info
    assert (info["gap_start"] < info["gap_end"]) == (len(code) >= 64 * 1024)
    native = shared.native_code
    assert native[:info["gap_start"]] == compiled.code[:info["gap_start"]]
    assert native[info["gap_end"]:] == compiled.code[info["gap_end"]:]
    assert set(native[info["gap_start"]:info["gap_end"]]) <= {0}
    # the gap and what was prefaulted past the ends hold no pages
    written = info["code_size"] - (info["gap_end"] - info["gap_start"]) + 4 * info["map_count"] + \
        12 * info["mark_count"] + 8 * len(table)
    assert shared.memory_bytes <= written + 8 * 4096 + 4096, (shared.memory_bytes, written)
    assert shared.instruction_records == compiled.info["map_count"]


def _synthetic_module(size, seed):
    import sys
    sys.path.insert(0, str(ROOT / "perf"))
    from _synthetic import synthetic_program
    from vmcore import _engine, isa as ISA
    code, bitmask, table = synthetic_program(size, seed=seed, isa="jam_v1")
    return lambda: _engine.SharedModule(ISA.isa_index("jam_v1"), code, bitmask, table, True, False, True)


def _module_bytes(module):
    return os.pread(module.memfd, module.size, 0)


def test_freed_module_memory_is_reused_and_cleared():
    """A freed native module's memfd is written over by the next compile
    that fits, and the new module is byte for byte what a new memfd would
    hold: nothing of the earlier (bigger) module is left in it."""
    from vmcore import _engine
    big, small = _synthetic_module(1 << 18, 11), _synthetic_module(1 << 17, 12)
    _engine.drain_module_memory()
    fresh = small()
    expected = _module_bytes(fresh)
    del fresh
    _engine.drain_module_memory()
    first = big()
    inode = os.fstat(first.memfd).st_ino
    del first
    assert _engine.module_memory_pool()[0] == 1
    reused = small()
    assert os.fstat(reused.memfd).st_ino == inode and _engine.module_memory_pool()[0] == 0
    assert _module_bytes(reused) == expected
    del reused
    # the pool is bounded
    keep = [small() for _ in range(6)]
    del keep
    count, held = _engine.module_memory_pool()
    assert 1 <= count <= 4 and held <= 64 << 20
    assert vmcore.drain_module_memory() == count and _engine.module_memory_pool() == (0, 0)


def test_a_forked_child_never_writes_its_parents_modules():
    from vmcore import _engine
    make = _synthetic_module(1 << 17, 13)
    _engine.drain_module_memory()
    live = make()
    before = _module_bytes(live)
    pooled = make()
    del pooled  # one memfd in the pool
    assert _engine.module_memory_pool()[0] == 1
    pid = os.fork()
    if pid == 0:  # child: its pool starts empty, and what it frees is not pooled
        ok = _engine.module_memory_pool() == (0, 0)
        inode = os.fstat(live.memfd).st_ino
        del live
        ok = ok and _engine.module_memory_pool() == (0, 0)
        child = make()
        ok = ok and os.fstat(child.memfd).st_ino != inode
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert _module_bytes(live) == before
    assert _engine.module_memory_pool()[0] == 1


def test_step_tracing_and_resume_after_faults():
    program = vmcore.Program.from_bytes(asm.assemble("""
%isa = jam_v1
pub @main:
    a1 = 0x20000
    u32 [a1] = a0
    a0 = u32 [a1]
    a0 = a0 + 1
    ret
"""))
    with vmcore.Sandbox(program, backend="compiler", gas=1000) as sb:
        sb.prepare_call("main", 41)
        fault = sb.run()
        assert isinstance(fault, vmcore.interrupts.PageFaultInterrupt) and fault.address == 0x20000
        sb._guest.set_perms(0x20000, 4096, 2)  # the host maps the page (no public API yet)
        sb.set_step_tracing(True)
        kinds = []
        while True:
            r = sb.run()
            kinds.append(type(r).__name__)
            if not isinstance(r, vmcore.Step):
                break
        assert kinds[-1] == "Finished" and kinds.count("Step") >= 3
        assert sb.regs[7] == 42
        assert sb.memory.read_u32(0x20000) == 41


def test_random_deadlines_leave_the_sandbox_usable():
    program = load("sum")
    rng = random.Random(3)
    with vmcore.Sandbox(program, backend="compiler", gas=10**15) as sb:
        for _ in range(5):
            with pytest.raises(vmcore.Timeout):
                sb.call("main", 10**12, timeout=rng.uniform(0.005, 0.03))
        assert sb.call("main", 1000) == vmcore.Sandbox(program, gas=10**6).call("main", 1000)
