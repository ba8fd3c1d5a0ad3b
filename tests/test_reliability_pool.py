"""Reliability: pool exhaustion, and closing a sandbox from other threads
(and from its own hostcall) during a call.
Shared guest and helpers: tests/reliability.py."""
import collections
import signal
import sys
import threading
import time

import pytest

import vmcore
from vmcore.pool import SandboxPool

import modes
from reliability import (FIGURES, INLINE, PROCESS, assert_fresh_sandbox_works, children, close_pool, guarded,
                         hostcall_returning, new_sandbox, nothing, pooled_pids, run_child, zombies, Snapshot,
                         Target)
from reliability import report_figures  # noqa: F401 (autouse: prints the figures measured here)


# == 2. pool exhaustion =======================================================

def test_more_sandboxes_than_the_pool_holds():
    """A pool bounds idle processes, not sandboxes: acquiring past its size
    starts extra processes; closing returns at most ``size`` to the pool and
    ends the rest."""
    before = Snapshot()
    pool = SandboxPool(2)
    pool.prestart()
    assert len(pool) == 2
    sandboxes, _, _ = guarded(lambda: [new_sandbox(PROCESS, pool=pool) for _ in range(7)], 10.0,
                              what="creating 7 sandboxes on a pool of 2")
    assert len(pool) == 0
    assert pool.started == 7 and pool.reused == 2
    pids = {sb.pid for sb in sandboxes}
    assert len(pids) == 7
    results = {}

    def work(i, sb):
        sb.register_hostcall("note", hostcall_returning(2 * i))
        results[i] = [sb.call("hcall", i) for _ in range(50)]

    threads = [threading.Thread(target=work, args=(i, sb)) for i, sb in enumerate(sandboxes)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert results == {i: [2 * i] * 50 for i in range(7)}
    for sb in sandboxes:
        sb.close()
    assert len(pool) == 2  # the rest were ended
    live = set(children())
    assert pids & live == pooled_pids() & pids and len(pids & live) == 2
    close_pool(pool)
    assert len(pool) == 0
    before.assert_nothing_leaked("pool exhaustion", rss_slack_mib=20)


def test_many_threads_share_a_tiny_pool():
    before = Snapshot()
    pool = SandboxPool(1, min_idle=1)
    errors = []
    done = collections.Counter()
    process_modes = modes.available(process_only=True)

    def worker(n):
        try:
            for i in range(15):
                with new_sandbox(process_modes[i % len(process_modes)], pool=pool, gas=10_000) as sb:
                    sb.register_hostcall("note", hostcall_returning(i + n))
                    assert sb.call("hcall", i) == i + n
                    done[n] += 1
        except BaseException as e:  # noqa: B902
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert not any(t.is_alive() for t in threads), "pool acquisition hung"
    assert not errors, errors[:3]
    assert sum(done.values()) == 6 * 15
    assert len(pool) <= 1
    FIGURES["6 threads x 15 sandboxes on SandboxPool(1, min_idle=1)"] = {
        "seconds": round(time.monotonic() - start, 2), "started": pool.started, "reused": pool.reused}
    close_pool(pool)
    before.assert_nothing_leaked("6 threads on a tiny pool", rss_slack_mib=20)


def test_closed_pool_and_zero_size_pool():
    before = Snapshot()
    zero = SandboxPool(0)
    pids = []
    for _ in range(3):
        with new_sandbox(PROCESS, pool=zero) as sb:
            pids.append(sb.pid)
            assert sb.call("quick") == 7
    assert len(set(pids)) == 3 and len(zero) == 0 and zero.started == 3
    assert not set(pids) & set(children())
    pool = SandboxPool(2)
    out = new_sandbox(PROCESS, pool=pool)
    pool.close()
    assert out.call("quick") == 7  # sandboxes outlive their pool
    pid = out.pid
    out.close()
    assert len(pool) == 0 and pid not in children()  # not kept by a closed pool
    # a closed pool still hands out working (unpooled) processes
    with new_sandbox(PROCESS, pool=pool) as sb:
        assert sb.call("quick") == 7
    assert len(pool) == 0
    before.assert_nothing_leaked("zero-size and closed pools", rss_slack_mib=20)


def test_closing_a_pool_with_min_idle_keeps_no_process():
    pool = SandboxPool(1, min_idle=1)
    new_sandbox(PROCESS, pool=pool).close()  # starts the refill thread
    pool.close()
    if pool._refiller is not None:
        pool._refiller.join(5.0)
    try:
        assert len(pool) == 0, "a closed pool holds a live sandbox process"
    finally:
        pool.drain()


# == 3. closing from another thread ==========================================

def start_closers(sb, count, delay=0.0):
    """`count` started threads that close `sb` at once (after `delay`);
    returns them and the list their exceptions go to."""
    barrier = threading.Barrier(count)
    errors = []

    def closer():
        barrier.wait()
        if delay:
            time.sleep(delay)
        try:
            sb.close()
        except BaseException as e:  # noqa: B902
            errors.append(e)

    threads = [threading.Thread(target=closer) for _ in range(count)]
    for t in threads:
        t.start()
    return threads, errors


@pytest.mark.parametrize("mode", modes.params(process_only=True))
@pytest.mark.parametrize("export", ["spin", "hloop"])
def test_close_from_other_threads_during_a_process_call(export, mode):
    pool = SandboxPool(0)  # a closed sandbox's process always ends (whichever of call and close came first)
    for i in range(10):
        sb = new_sandbox(mode, hostcalls={"note": nothing}, pool=pool)
        target = Target(sb.pid)
        closers, close_errors = start_closers(sb, 3, delay=0.002 + 0.001 * i)
        _, error, _ = guarded(lambda: sb.call(export), 3.0, rescue=lambda: target.signal(signal.SIGKILL))
        for t in closers:
            t.join()
        assert not close_errors, close_errors
        assert isinstance(error, vmcore.SandboxError) and "closed" in str(error), repr(error)
        assert sb.closed
        sb.close()
        with pytest.raises(vmcore.SandboxError, match="closed"):
            sb.call("quick")
        assert target.wait_exited(2.0)
        target.close()
    assert not zombies()
    assert_fresh_sandbox_works(mode)


def test_close_from_another_thread_during_a_finite_inline_call():
    """Inline, without hostcalls: the call completes (the running guest keeps
    its instance) or raises a typed error; the closed instance is not
    recycled under the running call."""
    for i in range(10):
        sb = new_sandbox(INLINE)
        timer = threading.Timer(0.001 * i, sb.close)
        timer.start()
        result, error, _ = guarded(lambda: sb.call("count", 3_000_000), 10.0)
        timer.join()
        assert error is None or isinstance(error, vmcore.SandboxError), repr(error)
        if error is None:
            assert result == 0
        assert sb.closed
        sb.close()
        # recycled inline instances are clean and not shared
        a, b = new_sandbox(INLINE), new_sandbox(INLINE)
        rw = a.memory_map.rw_data_address
        a.call("store8", rw, 1)
        assert b.call("load8", rw) == 0
        a.close()
        b.close()


INLINE_CLOSE_SCENARIO = """
    import threading, time, vmcore
    from vmcore import asm
    p = vmcore.Program.from_bytes(asm.assemble('''
    %isa = latest64
    %rw_data_size = 4096
    %import note
    pub @spin:
    @l:
        jump @l
    pub @hloop:
    @h:
        ecalli 0
        jump @h
    '''))
    scenario = {scenario!r}
    def close_own(caller):
        caller.sandbox.close()
    def nothing(caller):
        pass
    if scenario == "own hostcall":
        sb = vmcore.Sandbox(p, isolation="inline", hostcalls={{"note": close_own}})
        export = "hloop"
    else:
        sb = vmcore.Sandbox(p, isolation="inline", hostcalls={{"note": nothing}})
        export = "spin" if scenario == "other thread, guest loop" else "hloop"
        threading.Timer(0.05, sb.close).start()
    inst = sb._guest
    box = []
    def run():
        try:
            sb.call(export)
            box.append("completed")
        except Exception as e:
            box.append(type(e).__name__ + ": " + str(e))
    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(2.0)
    if t.is_alive():
        inst.interrupt()  # unblock the guest so this interpreter can exit
        print("HANG: the call was still running 2 s after close()", flush=True)
        raise SystemExit(3)
    print("OUTCOME", box[0], flush=True)
    with vmcore.Sandbox(p, isolation="inline") as again:  # the host survives, more sandboxes work
        pass
    print("DONE", flush=True)
"""


@pytest.mark.parametrize("scenario", ["other thread, guest loop", "other thread, hostcall loop", "own hostcall"])
def test_closing_an_inline_sandbox_during_a_call(scenario):
    """In a child interpreter: today this hangs (guest loop) or crashes the
    host with SIGSEGV (a hostcall in progress)."""
    rc, out = run_child(INLINE_CLOSE_SCENARIO.format(scenario=scenario), timeout=20)
    assert rc == 0, f"child exit {rc}: {out[-800:]}"
    assert "OUTCOME SandboxError" in out and "DONE" in out, out[-800:]


@pytest.mark.parametrize("mode", modes.params())
def test_concurrent_close_is_idempotent(mode):
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        for _ in range(30):
            sb = new_sandbox(mode)
            sb.call("quick")
            threads, errors = start_closers(sb, 4)
            for t in threads:
                t.join()
            assert not errors, errors
            assert sb.closed
    finally:
        sys.setswitchinterval(switch)
    # the recycled instances / processes are not shared between sandboxes
    a, b = new_sandbox(mode), new_sandbox(mode)
    rw = a.memory_map.rw_data_address
    a.call("store8", rw, 5)
    assert b.call("load8", rw) == 0 and a.call("load8", rw) == 5
    a.close()
    b.close()
