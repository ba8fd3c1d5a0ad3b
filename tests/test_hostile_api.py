"""Issue #15: the public API used against a running call.

A generated matrix: every public Sandbox / Caller / GuestMemory method
(``ACTIONS``) x the context it is called from (``CONTEXTS``: a hostcall of
the same sandbox; another thread while the guest runs; another thread while
the call sits in a hostcall) x every backend and isolation (tests/modes.py).
Each case must either do what the docs say or raise a typed
``vmcore.VmError`` (``SandboxBusy`` where it cannot be done now): never a
crash, a hang or an untyped exception.  Afterwards the call has ended
(result or typed error), and the sandbox either works or is closed, and a
new sandbox works.

Plus the specific reproducers of the issue: reset / step tracing from a
hostcall (host segfault inline), the JIT-spray pattern of turning tracing
off under a traced call (compiler), stale state in recycled instances and
processes, and typed errors for oversized memory ranges.
"""
import threading
import time

import pytest

import vmcore
from vmcore import asm
from vmcore.fuzz_hostile import GUEST_SOURCE
from vmcore.pool import SandboxPool

import modes

GUEST = vmcore.Program.from_bytes(asm.assemble(GUEST_SOURCE))  # the hostile-api fuzz target's guest
RW = GUEST.memory_map(4096).rw_data_address


def _read(sb):
    return sb.memory.read(RW, 16)


# name -> fn(sandbox); each is one public method with valid arguments
ACTIONS = {
    "call": lambda sb: sb.call("quick"),
    "prepare_call": lambda sb: sb.prepare_call("quick"),
    "run": lambda sb: sb.run(),
    "set_step_tracing(True)": lambda sb: sb.set_step_tracing(True),
    "set_step_tracing(False)": lambda sb: sb.set_step_tracing(False),
    "reset": lambda sb: sb.reset(),
    "gas": lambda sb: sb.gas,
    "gas=": lambda sb: setattr(sb, "gas", 1_000_000),
    "pc": lambda sb: sb.pc,
    "next_pc": lambda sb: sb.next_pc,
    "heap_size": lambda sb: sb.heap_size,
    "sbrk(0)": lambda sb: sb.sbrk(0),
    "sbrk(4096)": lambda sb: sb.sbrk(4096),
    "regs[a0]": lambda sb: sb.regs["a0"],
    "regs[a0]=": lambda sb: sb.regs.__setitem__("a0", 5),
    "regs.to_dict": lambda sb: sb.regs.to_dict(),
    "memory.read": _read,
    "memory.read(0, 2**32)": lambda sb: sb.memory.read(0, 1 << 32),
    "memory.read_into": lambda sb: sb.memory.read_into(RW, bytearray(8)),
    "memory.write": lambda sb: sb.memory.write(RW, b"abc"),
    "memory.zero": lambda sb: sb.memory.zero(RW, 64),
    "memory.is_accessible": lambda sb: sb.memory.is_accessible(RW, 8),
    "memory.is_accessible(0, 2**32)": lambda sb: sb.memory.is_accessible(0, 1 << 32),
    "memory.read_u64": lambda sb: sb.memory.read_u64(RW),
    "memory.write_u32": lambda sb: sb.memory.write_u32(RW, 9),
    "register_hostcall": lambda sb: sb.register_hostcall("note", lambda caller: None),
    "counters": lambda sb: sb.counters,
    "isolation_report": lambda sb: sb.isolation_report(),
    "pid": lambda sb: sb.pid,
    "closed": lambda sb: sb.closed,
    "caller.regs": lambda sb: vmcore.Caller(sb).regs["a1"],
    "caller.gas": lambda sb: vmcore.Caller(sb).gas,
    "caller.sbrk": lambda sb: vmcore.Caller(sb).sbrk(16),
    "caller.memory.read": lambda sb: vmcore.Caller(sb).memory.read(RW, 4),
    "close": lambda sb: sb.close(),
}
CONTEXTS = ["own-hostcall", "thread-while-guest-runs", "thread-while-in-hostcall"]
LIMIT = 20.0  # seconds: anything longer is a hang


def _attempt(fn, sb, box):
    try:
        box["result"] = fn(sb)
    except vmcore.VmError as e:
        box["error"] = e
    except BaseException as e:  # noqa: B902 - the test reports it
        box["untyped"] = e


def _finish(sb, mode):
    """The sandbox afterwards: works, or raises typed errors; a new one works."""
    try:
        if not sb.closed:
            if sb.gas is not None:
                sb.gas = 1_000_000
            assert sb.call("quick") == 7
    except vmcore.VmError:
        pass
    finally:
        sb.close()
    with mode.sandbox(GUEST, gas=1_000_000) as fresh:
        assert fresh.call("quick") == 7


def _run_call(sb, export, box, **kw):
    try:
        box["call"] = sb.call(export, **kw)
    except vmcore.VmError as e:
        box["call_error"] = e
    except BaseException as e:  # noqa: B902
        box["call_untyped"] = e


@pytest.mark.parametrize("mode", modes.params())
@pytest.mark.parametrize("context", CONTEXTS)
@pytest.mark.parametrize("action", list(ACTIONS))
def test_api_matrix(action, context, mode):
    sb = mode.sandbox(GUEST, gas=10**12)
    fn = ACTIONS[action]
    box, call = {}, {}
    if context == "own-hostcall":
        sb.register_hostcall("note", lambda caller: _attempt(fn, caller.sandbox, box))
        t = threading.Thread(target=_run_call, args=(sb, "hcall", call), daemon=True)
        t.start()
        t.join(LIMIT)
    elif context == "thread-while-guest-runs":
        t = threading.Thread(target=_run_call, args=(sb, "spin", call), kwargs={"timeout": 0.3}, daemon=True)
        t.start()
        time.sleep(0.05)
        _attempt(fn, sb, box)
        t.join(LIMIT)
    else:
        entered, release = threading.Event(), threading.Event()

        def note(caller):
            entered.set()
            release.wait(LIMIT)
        sb.register_hostcall("note", note)
        t = threading.Thread(target=_run_call, args=(sb, "hcall", call), daemon=True)
        t.start()
        assert entered.wait(LIMIT)
        _attempt(fn, sb, box)
        release.set()
        t.join(LIMIT)
    assert not t.is_alive(), f"{action} from {context} ({mode}): the call hangs"
    assert "untyped" not in box, f"{action} from {context} ({mode}) raised {box['untyped']!r}"
    assert "call_untyped" not in call, f"the call after {action} from {context} ({mode}) raised " \
                                       f"{call['call_untyped']!r}"
    assert box, "the action did not run"
    if action in ("reset", "set_step_tracing(True)", "set_step_tracing(False)", "prepare_call", "call", "run") \
            and action != "close":
        assert isinstance(box.get("error"), vmcore.SandboxBusy), (action, context, mode, box)
    if action.startswith("memory.read(0"):
        assert isinstance(box.get("error"), (vmcore.MemoryAccessError, vmcore.SandboxBusy)), box
    _finish(sb, mode)


def test_matrix_size():
    """The matrix is what the issue asks for: every method x context x mode."""
    assert len(ACTIONS) * len(CONTEXTS) * len(modes.MODES) >= 35 * 3 * 3


# -- the reproducers ---------------------------------------------------

TRACED = vmcore.Program.from_bytes(asm.assemble("""
%isa = latest64
%stack_size = 4096
%import off
pub @main:
    ecalli 0
    a0 = 0x9090909090909090
    a1 = 0x9090909090909090
    a2 = 0x9090909090909090
    a3 = 0x9090909090909090
    a0 = 42
    ret
"""))


@pytest.mark.parametrize("mode", modes.params())
@pytest.mark.parametrize("what", ["reset", "tracing-off", "tracing-on"])
def test_state_changes_from_own_hostcall_are_refused(mode, what):
    """Inline this segfaulted the host; in a process it ended in RuntimeError
    or a dead sandbox; on the compiler it resumed mid-instruction in the
    other variant (guest immediates run as code).  Now: SandboxBusy inside
    the hostcall, and the call completes correctly."""
    sb = mode.sandbox(TRACED, gas=10**6)
    if what == "tracing-off":
        sb.set_step_tracing(True)
    seen = []

    def off(caller):
        try:
            if what == "reset":
                caller.sandbox.reset()
            else:
                caller.sandbox.set_step_tracing(what == "tracing-on")
        except vmcore.SandboxBusy as e:
            seen.append(e)
    sb.register_hostcall("off", off)
    assert sb.call("main") == 42
    assert len(seen) == 1
    sb.close()


@pytest.mark.parametrize("mode", modes.params(process_only=True))
def test_recycled_process_starts_clean(mode):
    pool = SandboxPool(1)
    try:
        sb = mode.sandbox(GUEST, pool=pool, gas=1000)
        sb.register_hostcall("note", lambda caller: None)
        for _ in range(20):
            sb.call("hcall")
        pid = sb.pid
        before = sb.counters
        assert before["host_wait_loop_start"] >= 20
        sb.close()
        sb2 = mode.sandbox(GUEST, pool=pool, gas=1000)
        assert sb2.pid == pid, "the test needs the process to be recycled"
        c = sb2.counters
        assert c["host_wait_loop_start"] == 0 and c["syscall_wait_loop_start"] == 0, c
        assert (sb2.pc, sb2.next_pc) == (0, 0)
        assert sb2.gas == 1000
        sb2.set_step_tracing(True)  # nothing prepared: must not enter anywhere or charge gas
        assert sb2.gas == 1000
        sb2.close()
    finally:
        pool.close()


def test_recycled_inline_instance_starts_clean():
    sb = vmcore.Sandbox(GUEST, gas=1000)
    sb.register_hostcall("note", lambda caller: None)
    sb.prepare_call("hcall")
    assert sb.run().__class__.__name__ == "Ecalli"
    sb.close()
    sb2 = vmcore.Sandbox(GUEST, gas=1000)
    assert (sb2.pc, sb2.next_pc) == (0, 0)
    sb2.set_step_tracing(True)
    assert sb2.gas == 1000
    with pytest.raises(vmcore.SandboxError):
        sb2.run()  # nothing prepared: a typed error, not a stale resume
    sb2.close()


@pytest.mark.parametrize("mode", modes.params())
def test_oversized_memory_ranges_are_typed(mode):
    with mode.sandbox(GUEST) as sb:
        for address, length in ((0, 1 << 32), (RW, 1 << 32), ((1 << 32) - 1, 2), (1 << 32, 0)):
            with pytest.raises(vmcore.MemoryAccessError):
                sb.memory.read(address, length)
            assert not sb.memory.is_accessible(address, length)
