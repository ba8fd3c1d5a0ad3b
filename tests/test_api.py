"""Issue #17, the API half: the pitfalls a newcomer meets in the first hour
(error types, interrupt names, closed state, timeouts, argument types, the
initial heap, pickling, logging).  Every test runs in every execution mode
where the behaviour is mode-specific."""
import copy
import logging
import math
import pickle
import re
import warnings

import pytest

import vmcore
from vmcore import abi, interrupts

from conftest import BASIC_GUEST_SOURCE, program

PROG = program(BASIC_GUEST_SOURCE)

PAGE = abi.DEFAULT_PAGE_SIZE


# -- errors and types ----------------------------------------------------------

def test_unknown_export_is_a_vm_error_and_a_key_error(mode):
    with mode.sandbox(PROG) as sb:
        for attempt in (lambda: sb.call("missing"), lambda: sb.prepare_call("missing"),
                        lambda: sb.call("missing", timeout=5)):
            with pytest.raises(vmcore.ExportNotFound) as e:
                attempt()
            assert isinstance(e.value, vmcore.VmError) and isinstance(e.value, KeyError)
            assert e.value.name == "missing"
            assert str(e.value).startswith("no export named 'missing'")  # not KeyError's quoted repr
    with pytest.raises(vmcore.ExportNotFound):
        PROG.export_pc("missing")


def test_unknown_import_is_a_vm_error_and_a_key_error():
    sb = vmcore.Sandbox(PROG)
    with pytest.raises(vmcore.ImportNotFound) as e:
        sb.register_hostcall("nope", lambda caller: 0)
    assert isinstance(e.value, vmcore.VmError) and isinstance(e.value, KeyError) and e.value.name == "nope"
    with pytest.raises(vmcore.ImportNotFound):
        sb.hostcall("nope")(lambda caller: 0)
    with pytest.raises(vmcore.ImportNotFound):
        vmcore.Sandbox(PROG, hostcalls={"nope": lambda caller: 0})


def test_interrupts_cannot_be_confused_with_exceptions():
    names = {"TrapInterrupt": "Trap", "OutOfGasInterrupt": "OutOfGas", "PageFaultInterrupt": "PageFault"}
    for new_name, error_name in names.items():
        cls = getattr(interrupts, new_name)
        assert getattr(vmcore, new_name) is cls
        assert issubclass(cls, interrupts.Interrupt) and not issubclass(cls, BaseException)
        assert issubclass(getattr(vmcore, error_name), vmcore.VmError)
        with pytest.warns(DeprecationWarning, match=new_name):
            assert getattr(interrupts, error_name) is cls  # the old name still works, deprecated
    assert "Trap" not in interrupts.__all__
    sb = vmcore.Sandbox(PROG, gas=1000)
    sb.prepare_call("trap")
    result = sb.run()
    assert type(result) is vmcore.TrapInterrupt and not isinstance(result, vmcore.Trap)
    with pytest.raises(AttributeError):
        interrupts.Nope


def test_closed_after_the_sandbox_process_died():
    from vmcore import _engine
    from vmcore.pool import SandboxPool
    pool = SandboxPool(0, _flags=_engine.FLAG_TEST_FORBIDDEN_SYSCALL)
    sb = vmcore.Sandbox(PROG, isolation="process", backend="interpreter", pool=pool)
    assert not sb.closed
    with pytest.raises(vmcore.SandboxError):
        sb.call("add", 1, 2)
    assert sb.closed
    sb.close()
    assert sb.closed
    pool.close()


def test_closed_after_kill_while_idle():
    import os
    import signal
    import time
    sb = vmcore.Sandbox(PROG, isolation="process", backend="interpreter")
    assert sb.call("add", 1, 2) == 3 and not sb.closed
    os.kill(sb.pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while not sb.closed and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sb.closed
    sb.close()
    restarting = vmcore.Sandbox(PROG, isolation="process", backend="interpreter", auto_restart=True)
    os.kill(restarting.pid, signal.SIGKILL)
    time.sleep(0.05)
    assert not restarting.closed  # it comes back at the next call
    assert restarting.call("add", 2, 3) == 5
    restarting.close()
    assert restarting.closed


def test_hostcall_closing_its_own_sandbox_raises_in_every_mode(mode):
    sb = mode.sandbox(PROG)
    sb.register_hostcall("note", lambda caller: caller.sandbox.close())
    with pytest.raises(vmcore.SandboxError, match="closed"):
        sb.call("note_then_return")
    assert sb.closed
    with pytest.raises(vmcore.SandboxError, match="closed"):
        sb.call("add", 1, 2)
    # the same through the general path (a deadline) and a fresh sandbox
    sb = mode.sandbox(PROG)
    sb.register_hostcall("note", lambda caller: caller.sandbox.close())
    with pytest.raises(vmcore.SandboxError, match="closed"):
        sb.call("note_then_return", timeout=10)
    # a hostcall that does not close leaves the normal result
    with mode.sandbox(PROG) as sb:
        sb.register_hostcall("note", lambda caller: None)
        assert sb.call("note_then_return") == 42


def test_infinite_timeout_means_no_deadline(mode):
    with mode.sandbox(PROG) as sb:
        assert sb.call("add", 1, 2, timeout=math.inf) == 3
        assert sb.call("add", 1, 2, timeout=None) == 3
        sb.prepare_call("add", 3, 4)
        assert isinstance(sb.run(timeout=float("inf")), vmcore.Finished)
        with pytest.raises(vmcore.Timeout):
            sb.call("spin", timeout=0.05)
        assert sb.call("add", 5, 6, timeout=1e9) == 11  # huge but finite
        for bad in (-1, 0, -math.inf, math.nan):
            with pytest.raises(ValueError, match="timeout"):
                sb.call("add", 1, 2, timeout=bad)
            with pytest.raises(ValueError, match="timeout"):
                sb.run(timeout=bad)
        for bad in ("1", True, [1]):
            with pytest.raises(ValueError, match="timeout"):
                sb.call("add", 1, 2, timeout=bad)
        assert sb.call("add", 1, 2) == 3  # nothing lingers
    from vmcore.watchdog import WATCHDOG
    assert WATCHDOG._thread is None or WATCHDOG._thread.is_alive()


def test_watchdog_survives_an_infinite_deadline():
    import threading
    import time
    from vmcore.watchdog import WATCHDOG
    handle = WATCHDOG.arm(math.inf, lambda: None)
    time.sleep(0.05)
    assert WATCHDOG._thread.is_alive()
    WATCHDOG.disarm(handle)
    fired = threading.Event()
    WATCHDOG.arm(0.01, fired.set)
    assert fired.wait(5), "the watchdog thread died"


def test_call_arguments_must_be_ints(mode):
    with mode.sandbox(PROG) as sb:
        for args, position, name in [((1.5,), 1, "a0"), ((1, "2"), 2, "a1"), ((1, 2, 3, None), 4, "a3")]:
            for attempt in (lambda: sb.call("add", *args), lambda: sb.call("add", *args, timeout=5),
                            lambda: sb.prepare_call("add", *args)):
                with pytest.raises(TypeError, match=rf"call argument {position} \({name}\) must be an int"):
                    attempt()
        assert sb.call("add", -1, 0) == 0xFFFFFFFFFFFFFFFF  # two's complement
        assert sb.call("add", -5, 7) == 2
        assert sb.call("add", True, True) == 2  # bools are ints
        assert sb.call("add", 1 << 64, 3) == 3  # taken modulo 2**64


def test_initial_heap_counts_as_allocated(mode):
    heap = vmcore.HeapPolicy(initial_size=10000, max_size=16 * PAGE)
    with mode.sandbox(PROG, heap=heap) as sb:
        base = sb.memory_map.heap_base
        assert sb.heap_size == 10000
        assert sb.memory.is_accessible(base, 10000, writable=True)
        assert sb.sbrk(0) == base + 10000  # sbrk grows from the initial heap's end
        assert sb.sbrk(100) == base + 10100 and sb.heap_size == 10100
        assert sb.sbrk(16 * PAGE) == 0  # the maximum includes the initial part
        sb.reset()
        assert sb.heap_size == 10000
    with mode.sandbox(PROG) as sb:
        assert sb.heap_size == 0  # PolkaVM's default: an empty heap


def test_used_program_pickles_and_deep_copies(mode):
    p = program("""
%isa = latest64
pub @add:
    a0 = a0 + a1
    ret
""")
    with vmcore.Sandbox(p, backend=mode.backend, isolation=mode.isolation) as sb:
        assert sb.call("add", 2, 3) == 5
    assert p._cache  # compiled code is cached on it
    for clone in (pickle.loads(pickle.dumps(p)), copy.deepcopy(p), copy.copy(p)):
        assert clone is not p and not clone._cache and clone._cache is not p._cache
        assert clone.exports == p.exports and clone.code == p.code and clone.isa == p.isa
        with vmcore.Sandbox(clone, backend=mode.backend, isolation=mode.isolation) as sb:
            assert sb.call("add", 4, 5) == 9
    assert p._cache  # the original keeps its cache


def test_backend_and_isolation_report_resolved_values(mode):
    with mode.sandbox(PROG) as sb:
        assert (sb.backend, sb.isolation) == mode.config
    with pytest.raises(vmcore.SandboxError, match="closed"):
        sb.backend


def _check_backend_auto() -> None:
    """backend="auto" on this machine, as vmcore.backends.unavailable sees
    it: a working sandbox, and isolation_report().fallback saying why
    whenever it did not get its first choice."""
    from vmcore.backends import unavailable
    no_process = unavailable("interpreter", "process")
    no_native = unavailable("compiler", "process")
    # Isolation left to "auto": the inline interpreter, its first choice, is
    # there on every machine.
    with vmcore.Sandbox(PROG) as sb:
        assert (sb.backend, sb.isolation) == ("interpreter", "inline")
        assert sb.call("add", 2, 3) == 5
        report = sb.isolation_report()
        assert isinstance(report, vmcore.IsolationReport) and dict(report) == {} and report.fallback is None
    if no_native is not None:
        with pytest.raises(vmcore.SandboxError, match=re.escape(no_native)):
            vmcore.Sandbox(PROG, backend="compiler")
    if no_process is not None:
        # An explicit sandbox process is never weakened to inline: refused,
        # with the reason and what to use instead.
        refused = re.escape(f"{no_process}; use isolation='inline'")
        with pytest.raises(vmcore.SandboxError, match=refused):
            vmcore.Sandbox(PROG, isolation="process")
        with pytest.raises(vmcore.SandboxError, match=refused):
            vmcore.SandboxPool(2)
        return
    # A sandbox process: native code first, else the interpreter, saying why.
    with vmcore.Sandbox(PROG, isolation="process") as sb:
        assert sb.call("add", 2, 3) == 5 and sb.pid is not None
        report = sb.isolation_report()
        assert set(report) == set(vmcore.pool.ISOLATION_FEATURES)
        if no_native is None:
            assert sb.backend == "compiler" and report.fallback is None
        else:
            assert sb.backend == "interpreter"
            assert report.fallback == f"backend='auto' runs the interpreter instead of the compiler: {no_native}"


def test_backend_auto_on_this_machine(monkeypatch):
    """Meaningful on x86-64 and on aarch64 (`make test-aarch64-python`)."""
    from vmcore import backends
    monkeypatch.setattr(backends, "_SELECTED", {})
    _check_backend_auto()


@pytest.mark.parametrize("missing", ["recompiler", "sandbox process"])
def test_backend_auto_when_a_feature_is_missing(monkeypatch, missing):
    """The other machines, simulated through the availability probes."""
    from vmcore import backends, pool
    monkeypatch.setattr(backends, "_SELECTED", {})
    monkeypatch.setattr(PROG._cache, "recipes", {})  # Sandbox() keeps what its options resolved to
    monkeypatch.setattr(backends, "cpu_supports_native", lambda: "this CPU lacks BMI2 (simulated)")
    if missing == "sandbox process":
        monkeypatch.setattr(pool, "process_unavailable", lambda: "no sandbox process here (simulated)")
    assert backends.unavailable("compiler", "process") is not None
    _check_backend_auto()


# -- logging -------------------------------------------------------------------

def test_logging_of_process_pool_and_compiles(caplog, monkeypatch):
    from vmcore import pool
    from vmcore.pool import SandboxPool
    monkeypatch.setattr(pool, "SLOW_COMPILE_SECONDS", 0.0)  # every compile is "slow"
    caplog.set_level(logging.DEBUG, logger="vmcore")
    fresh = program("""
%isa = latest64
%import note
pub @note_then_return:
    ecalli 0
    a0 = 42
    ret
""")
    pool = SandboxPool(1)
    sb = vmcore.Sandbox(fresh, isolation="process", backend="interpreter", pool=pool)
    sb.close()
    sb = vmcore.Sandbox(fresh, isolation="process", backend="interpreter", pool=pool)
    messages = [(r.name, r.levelno, r.getMessage()) for r in caplog.records]
    assert any(n == "vmcore.process" and "started sandbox process pid" in m for n, _, m in messages)
    assert any(n == "vmcore.pool" and "recycled sandbox process" in m for n, _, m in messages)
    assert any(n == "vmcore.pool" and "reusing idle sandbox process" in m for n, _, m in messages)
    assert any(n == "vmcore.compile" and lvl == logging.INFO and "compiled" in m for n, lvl, m in messages)
    # the hot path logs nothing
    sb.register_hostcall("note", lambda caller: None)
    caplog.clear()
    for _ in range(100):
        assert sb.call("note_then_return") == 42
    assert caplog.records == []
    sb.close()
    pool.close()
    assert any("ending 1 idle sandbox process" in r.getMessage() for r in caplog.records)


def test_logging_of_restarts(caplog):
    import os
    import signal
    import time
    caplog.set_level(logging.INFO, logger="vmcore")
    sb = vmcore.Sandbox(PROG, isolation="process", backend="interpreter", auto_restart=True)
    os.kill(sb.pid, signal.SIGKILL)
    time.sleep(0.05)
    assert sb.call("add", 1, 1) == 2
    assert any(r.name == "vmcore.process" and "restarting" in r.getMessage() for r in caplog.records)
    sb.close()


def test_slow_compile_threshold_keeps_fast_compiles_at_debug(caplog):
    caplog.set_level(logging.INFO, logger="vmcore")
    p = program("""
%isa = latest64
pub @f:
    ret
""")
    vmcore.Sandbox(p).close()
    assert not [r for r in caplog.records if r.name == "vmcore.compile"]


# -- docs ------------------------------------------------------------------------

def test_every_sandbox_parameter_is_documented():
    import inspect
    doc = vmcore.Sandbox.__doc__
    for name in inspect.signature(vmcore.Sandbox).parameters:  # its __signature__ (the constructor is compiled)
        if name != "self":
            assert f"\n        {name}:" in doc, f"Sandbox docstring does not document {name!r}"


def test_readme_lists_every_error():
    from pathlib import Path
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    api = readme[readme.index("### API"):]
    for name in vmcore.errors.__all__:
        assert f"`{name}`" in api, f"README's API section does not mention {name}"
    assert "timeout=" in api
    for name in ("TrapInterrupt", "OutOfGasInterrupt", "PageFaultInterrupt"):
        assert name in api
