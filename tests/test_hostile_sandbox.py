"""Issue #15 item 3: the host against a sandbox process it cannot trust.

* A test-only hostile zygote (the real one built with
  -DVMCORE_HOSTILE_ZYGOTE, vmcore.fuzz_hostile) scribbles random values
  over the VmCtx at every hand-over: every operation ends in a result or a
  typed VmError, nothing hangs, and the host keeps working.
* A sandbox that claims to be dead while alive (the robust-futex owner-died
  bit) is killed and reaped, not waited for forever.
* Values read back are range-checked: a bad one kills that sandbox with
  SandboxError and its process is never recycled.
"""
import os
import threading

import pytest

import vmcore
from vmcore import _engine, fuzz_hostile
from vmcore.pool import SandboxPool

import modes

GUEST = fuzz_hostile.guest()


@pytest.fixture(scope="module")
def hostile():
    try:
        pool = fuzz_hostile.hostile_pool(2)
    except (vmcore.SandboxError, OSError) as e:  # no source tree / compiler
        pytest.skip(f"cannot build the hostile zygote: {e}")
    yield pool
    pool.close()


@pytest.mark.parametrize("mode", modes.params(process_only=True))
def test_hostile_zygote_gets_typed_errors_only(hostile, mode):
    target = fuzz_hostile.HostileSandboxTarget(seed=7 + len(mode.name))
    target.pool = hostile
    failures = []
    for i in range(25):
        f = target.run_case(i)
        if f is not None:
            failures.append(f)
    assert not failures, "\n\n".join(f"{f.summary}\n{f.details}" for f in failures[:3])
    assert target.counts["steps"] > 25


def _write_ctx_u32(sb, name, value):
    """Write one VmCtx field through the host's mapping, as the sandbox could."""
    import ctypes
    from vmcore import abi
    offset = abi.vmctx_layout()[name][0]
    base = sb._guest.ctx_address()
    ctypes.c_uint32.from_address(base + offset).value = value


@pytest.mark.parametrize("mode", modes.params(process_only=True))
def test_claiming_death_while_alive_does_not_block_the_host(mode):
    pool = SandboxPool(1)
    try:
        sb = mode.sandbox(GUEST, pool=pool)
        pid = sb.pid

        def note(caller):
            # the compromised sandbox sets the owner-died bit and stays alive
            _write_ctx_u32(caller.sandbox, "death_futex", 0x40000000 | 12345)
        sb.register_hostcall("note", note)
        done = []
        t = threading.Thread(target=lambda: done.append(fuzz_hostile.attempt(lambda: (sb.call("hcall"),
                                                                                       sb.call("quick")))))
        t.start()
        t.join(10)
        assert not t.is_alive(), "the host blocked on a live sandbox that claimed to be dead"
        kind, value = done[0]
        assert kind == "typed" and isinstance(value, vmcore.SandboxError), value
        assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/status").read().find("zombie") < 0
        sb.close()
        sb2 = mode.sandbox(GUEST, pool=pool)
        assert sb2.pid != pid and sb2.call("quick") == 7
        sb2.close()
    finally:
        pool.close()


@pytest.mark.parametrize("field,value", [("heap_info.heap_top", 0), ("heap_info.heap_threshold", 0xFFFFF000),
                                         ("gas", 0x7FFFFFFF)])
@pytest.mark.parametrize("mode", modes.params(process_only=True))
def test_bad_values_read_back_kill_the_sandbox(mode, field, value):
    pool = SandboxPool(1)
    try:
        sb = mode.sandbox(GUEST, pool=pool, gas=1000, heap=vmcore.HeapPolicy(initial_size=8192))
        pid = sb.pid
        assert sb.call("quick") == 7

        def note(caller):
            _write_ctx_u32(caller.sandbox, field, value)
        sb.register_hostcall("note", note)
        # the hostcall writes as the sandbox would; the values are read back
        # at the next exit / use
        with pytest.raises(vmcore.SandboxError, match="sent back"):
            sb.call("hcall")
            sb.heap_size
            sb.gas
            sb.call("hcall")
        sb.close()
        sb2 = mode.sandbox(GUEST, pool=pool)
        assert sb2.pid != pid, "a process that sent back a bad value was recycled"
        sb2.close()
    finally:
        pool.close()
