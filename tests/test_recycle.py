"""Issue #20: closed inline sandboxes' backends are revived by the next
Sandbox of the same Program and options (InlineInterpreter.revive).  A
revived one must be indistinguishable from a new one, never reachable from
the sandbox that closed it, and never reused while a memory.view() of it
is alive.  Plus: close leaves no reference cycle, process backends compile
once per set of options, and a traced guest does not starve other threads
of the GIL (the hostile-api fuzz hang)."""
import gc
import subprocess
import sys
import textwrap
import weakref

import pytest

import vmcore
from vmcore import asm
from vmcore.fuzz_hostile import GUEST_SOURCE

import modes

SOURCE = GUEST_SOURCE
PAGE = 4096


def _program():
    return vmcore.Program.from_bytes(asm.assemble(SOURCE))


def _state(sb):
    """Everything a new sandbox's guest is observably made of."""
    spans = sb.memory.accessible_spans()
    return {
        "regs": list(sb.regs), "pc": sb.pc, "next_pc": sb.next_pc, "gas": sb.gas, "heap_size": sb.heap_size,
        "spans": spans, "access": [(a, sb.memory.access(a)) for a, n in spans for a in range(a, a + n, PAGE)],
        "memory": [sb.memory.read(a, n) for a, n in spans],
        "far": sb.memory.access(0x7000_0000),
    }


def _dirty(sb):
    """Change every part of the state a new guest must not inherit."""
    rw = sb.memory_map.rw_data_address
    sb.memory.write(rw, b"\xAA" * 64)
    sb.sbrk(3 * PAGE)
    sb.memory.protect(0x7000_0000, PAGE, "write")  # a page no layout maps
    sb.memory.write(0x7000_0000, b"secret")
    for i in range(len(sb.regs)):
        sb.regs[i] = 0x1234_5678_9ABC_DEF0 + i
    if sb.gas is not None:
        sb.gas = 17


@pytest.mark.parametrize("gas", [None, 10**6])
def test_revived_backend_is_a_new_one(gas):
    program = _program()
    fresh = _state(vmcore.Sandbox(_program(), isolation="inline", gas=gas))  # another Program: no pool
    sb = vmcore.Sandbox(program, isolation="inline", gas=gas)
    backend = sb._backend
    _dirty(sb)
    snap = sb.snapshot()
    sb.prepare_call("quick")
    sb.set_step_tracing(True)
    sb.close()
    again = vmcore.Sandbox(program, isolation="inline", gas=gas)
    assert again._backend is backend  # revived, not rebuilt: else this test proves nothing
    assert _state(again) == fresh
    assert again.call("quick") == 7
    again.restore(snap)  # a snapshot of the previous tenant still restores into it
    assert again.memory.read(0x7000_0000, 6) == b"secret"
    again.close()


def test_revived_backend_takes_the_new_gas():
    program = _program()
    vmcore.Sandbox(program, isolation="inline", gas=100).close()
    sb = vmcore.Sandbox(program, isolation="inline", gas=5000)
    assert sb.gas == 5000
    sb.close()


def test_closed_sandbox_cannot_reach_the_revived_guest():
    program = _program()
    sb = vmcore.Sandbox(program, isolation="inline", gas=10)
    regs, memory, caller = sb.regs, sb.memory, vmcore.Caller(sb)
    sb.close()
    other = vmcore.Sandbox(program, isolation="inline", gas=10)
    assert other._backend is not None
    for use in (lambda: regs[0], lambda: memory.read(program.memory_map(PAGE).rw_data_address, 1),
                lambda: caller.gas, lambda: sb.call("quick"), lambda: sb.reset()):
        with pytest.raises(vmcore.SandboxError, match="closed"):
            use()
    assert other.call("quick") == 7
    other.close()


def test_outstanding_view_is_never_recycled():
    program = _program()
    rw = program.memory_map(PAGE).rw_data_address
    sb = vmcore.Sandbox(program, isolation="inline")
    backend = sb._backend
    sb.memory.write(rw, b"first")
    view = sb.memory.view(rw, 5)
    sb.close()
    other = vmcore.Sandbox(program, isolation="inline")
    assert other._backend is not backend and other._guest is not backend.guest
    other.memory.write(rw, b"other")
    assert bytes(view) == b"first"  # the old guest's memory, not the new one's
    view.release()
    other.close()


def test_pool_is_bounded():
    from vmcore.backends import BACKEND_POOL_LIMIT
    program = _program()
    sbs = [vmcore.Sandbox(program, isolation="inline") for _ in range(BACKEND_POOL_LIMIT + 3)]
    backends = {sb._backend for sb in sbs}
    for sb in sbs:
        sb.close()
    sb = vmcore.Sandbox(program, isolation="inline")
    free = sb._lifecycle().prepared.free
    assert len(free) == BACKEND_POOL_LIMIT - 1 and sb._backend in backends
    sb.close()
    assert len(free) == BACKEND_POOL_LIMIT


def test_close_leaves_no_cycle():
    program = _program()
    vmcore.Sandbox(program, isolation="inline").close()
    gc.disable()
    try:
        sb = vmcore.Sandbox(program, isolation="inline", hostcalls={"note": lambda caller: None})
        sb.call("quick")
        sb.regs[0], sb.memory  # noqa: B018 - the cached views of the sandbox
        sb.close()
        ref = weakref.ref(sb)
        del sb
        assert ref() is None  # freed by reference counting alone
    finally:
        gc.enable()


@pytest.mark.parametrize("mode", modes.select(process_only=True), ids=str)
def test_process_backends_compile_once_per_options(mode):
    if modes.unavailable(mode):
        pytest.skip(modes.unavailable(mode))
    program = _program()
    a, b = mode.sandbox(program), mode.sandbox(program)
    try:
        assert a._guest.module is b._guest.module is a._backend.prepared.module
    finally:
        a.close()
        b.close()


def test_traced_guest_lets_other_threads_run():
    """A traced guest stepping inline held the GIL for ever: its timeout's
    watchdog and a thread being started waited on it (fuzz hostile-api case
    76).  In a child process, so that a regression fails instead of hanging."""
    child = textwrap.dedent(f"""
        import threading, vmcore
        from vmcore import asm
        from vmcore.fuzz_hostile import GUEST_SOURCE
        sb = vmcore.Sandbox(vmcore.Program.from_bytes(asm.assemble(GUEST_SOURCE)), isolation="inline")
        sb.set_step_tracing(True)
        box = []
        def spin():
            try:
                sb.call("spin", timeout=0.3)
            except vmcore.Timeout as e:
                box.append(e)
        t = threading.Thread(target=spin)
        t.start()
        threading.Thread(target=lambda: None).start()
        t.join()
        assert box, "no Timeout"
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
