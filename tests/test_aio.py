"""asyncio: Sandbox.call_async, its cancellation (the guest stops before
CancelledError arrives) and async def hostcalls, on real event loops in
every mode."""
import asyncio
import threading
import time

import pytest

import vmcore

from conftest import PROBE_EXPORTS, program

GUEST = program(f"""
%isa = latest64
%stack_size = 4096
%import fetch
%import note
{PROBE_EXPORTS}// fetch(a0) + 1
pub @fetch_plus_one:
    ecalli 0
    a0 = a0 + 1
    ret
// fetch(a0) forever (a hostcall per iteration)
pub @fetch_forever:
@again:
    ecalli 0
    jump @again
pub @note_then_quick:
    ecalli 1
    a0 = 7
    ret
""")


def run(coro, timeout=20.0):
    """Run ``coro`` on a new loop, failing the test instead of hanging."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


def test_call_async_returns_the_result(mode):
    with mode.sandbox(GUEST) as sb:
        assert run(sb.call_async("quick")) == 7
        assert run(sb.call_async("quick", timeout=5.0)) == 7


def test_cancelling_stops_the_guest_and_the_sandbox_is_usable_at_once(mode):
    with mode.sandbox(GUEST) as sb:
        async def main():
            started = time.monotonic()
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(sb.call_async("spin"), 0.1)
            elapsed = time.monotonic() - started
            assert not sb._guest.in_call  # stopped before CancelledError arrived
            assert sb.call("quick") == 7  # no SandboxBusy
            return elapsed
        assert run(main()) < 5.0


def test_task_cancel_stops_a_spinning_guest(mode):
    with mode.sandbox(GUEST) as sb:
        async def main():
            task = asyncio.ensure_future(sb.call_async("spin"))
            await asyncio.sleep(0.05)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            return await sb.call_async("quick")
        assert run(main()) == 7


def test_the_loop_keeps_running_while_the_guest_does(mode):
    """No busy-waiting and no blocking: other tasks run meanwhile."""
    with mode.sandbox(GUEST) as sb:
        async def main():
            ticks = 0

            async def ticker():
                nonlocal ticks
                while True:
                    await asyncio.sleep(0.005)
                    ticks += 1
            t = asyncio.ensure_future(ticker())
            with pytest.raises(vmcore.Timeout):
                await sb.call_async("spin", timeout=0.3)
            t.cancel()
            return ticks
        assert run(main()) >= 5


def test_timeout_raises_timeout_and_leaves_the_sandbox_usable(mode):
    with mode.sandbox(GUEST) as sb:
        with pytest.raises(vmcore.Timeout) as info:
            run(sb.call_async("spin", timeout=0.05))
        assert info.value.pc is not None
        assert sb.call("quick") == 7
    with pytest.raises(ValueError):
        run(sb.call_async("quick", timeout=0))


def test_async_hostcall_is_awaited_on_the_calling_loop(mode):
    with mode.sandbox(GUEST) as sb:
        seen = {}

        @sb.hostcall("fetch")
        async def fetch(caller, key):
            seen["loop"] = asyncio.get_running_loop()
            seen["thread"] = threading.get_ident()
            await asyncio.sleep(0.01)
            return key * 10

        async def main():
            seen["caller loop"] = asyncio.get_running_loop()
            return await sb.call_async("fetch_plus_one", 4)
        assert run(main()) == 41
        assert seen["loop"] is seen["caller loop"]
        assert seen["thread"] == threading.get_ident()


def test_sync_hostcalls_still_work_from_call_async(mode):
    with mode.sandbox(GUEST, hostcalls={"fetch": lambda caller, key: key + 100}) as sb:
        assert run(sb.call_async("fetch_plus_one", 1)) == 102


def test_cancelling_during_an_async_hostcall(mode):
    with mode.sandbox(GUEST) as sb:
        cancelled = []

        @sb.hostcall("fetch")
        async def fetch(caller, key):
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                cancelled.append(True)
                raise
            return 0

        async def main():
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(sb.call_async("fetch_forever", 1), 0.1)
            assert not sb._guest.in_call
            return await sb.call_async("quick")
        assert run(main()) == 7
        assert cancelled == [True]


def test_async_hostcall_from_a_blocking_call_without_a_loop_runs_it(mode):
    with mode.sandbox(GUEST) as sb:
        @sb.hostcall("fetch")
        async def fetch(caller, key):
            await asyncio.sleep(0)
            return key + 1
        assert sb.call("fetch_plus_one", 5) == 7


def test_async_hostcall_from_a_blocking_call_inside_a_loop_is_a_typed_error(mode):
    with mode.sandbox(GUEST) as sb:
        @sb.hostcall("fetch")
        async def fetch(caller, key):
            return key

        async def main():
            with pytest.raises(vmcore.HostcallError) as info:
                sb.call("fetch_plus_one", 5)
            assert isinstance(info.value.__cause__, vmcore.AsyncHostcallError)
        run(main())
        assert sb.call("quick") == 7


def test_many_concurrent_calls_on_one_loop(mode):
    sandboxes = [mode.sandbox(GUEST) for _ in range(3)]
    try:
        for sb in sandboxes:
            @sb.hostcall("fetch")
            async def fetch(caller, key):
                await asyncio.sleep(0.01)
                return key

        async def main():
            return await asyncio.gather(*(sb.call_async("fetch_plus_one", i) for i, sb in enumerate(sandboxes)))
        assert run(main()) == [1, 2, 3]
    finally:
        for sb in sandboxes:
            sb.close()


def test_call_async_on_a_closed_sandbox():
    sb = vmcore.Sandbox(GUEST)
    sb.close()
    with pytest.raises(vmcore.SandboxError):
        run(sb.call_async("quick"))
