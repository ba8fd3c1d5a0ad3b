"""asyncio support: ``await sandbox.call_async(...)`` and ``async def``
hostcalls.

The call runs in a worker thread (the guest runs without the GIL, so the
event loop keeps running).  Cancelling the awaiting task stops the guest
through the interrupt path (as a deadline does) and the task gets
CancelledError only once the guest has stopped: the sandbox is idle and
usable again when the ``await`` ends.  An ``async def`` hostcall reached
from that worker runs on the loop that awaited ``call_async`` (the worker
waits for it); reached from a plain ``call()`` it runs under
``asyncio.run`` when no event loop runs in the calling thread, and fails
with :class:`vmcore.errors.AsyncHostcallError` when one does (blocking that
loop's thread to wait for a coroutine on it would deadlock)."""
from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import inspect
import threading
from typing import TYPE_CHECKING, Any, Callable, Optional, Union

from vmcore.errors import AsyncHostcallError, Timeout
from vmcore.watchdog import WATCHDOG

if TYPE_CHECKING:
    from vmcore.sandbox import Sandbox

# The call_async running in this (worker) thread, if any: where its async
# hostcalls are sent.
_current = threading.local()


class _AsyncCall:
    """One call_async: the loop it came from and what cancelling it must stop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, guest: Any) -> None:
        self.loop = loop
        self.guest = guest
        self.lock = threading.Lock()
        self.cancelled = False
        self.started = False
        self.finished = False
        self.timed_out = False
        self.pending: Optional[concurrent.futures.Future] = None  # an async hostcall awaited on the loop

    def stop(self) -> None:
        """Cancel: stop the guest (or keep it from starting) and any
        async hostcall it waits for.  Any thread."""
        with self.lock:
            self.cancelled = True
            if self.started and not self.finished:
                self.guest.interrupt()
            if self.pending is not None:
                self.pending.cancel()

    def expire(self) -> None:
        """The deadline passed (watchdog thread)."""
        with self.lock:
            if self.started and not self.finished:
                self.timed_out = True
                self.guest.interrupt()


def is_async_hostcall(fn: Any) -> bool:
    """An ``async def`` function (or an object whose __call__ is one)."""
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(getattr(fn, "__call__", None))


def bridge(fn: Callable[..., Any]) -> Callable[..., Any]:
    """A plain hostcall that runs the coroutine function ``fn`` where it
    belongs (see the module docstring); same signature as ``fn``."""
    @functools.wraps(fn)
    def run_coroutine(caller, *args):
        call = getattr(_current, "call", None)
        if call is None:
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                return asyncio.run(fn(caller, *args))
            raise AsyncHostcallError(
                f"async hostcall {getattr(fn, '__qualname__', fn)!r} reached from a blocking call() inside a "
                "running event loop: use `await sandbox.call_async(...)`")
        future = asyncio.run_coroutine_threadsafe(fn(caller, *args), call.loop)
        with call.lock:
            call.pending = future
            if call.cancelled:
                future.cancel()
        try:
            return future.result()
        finally:
            with call.lock:
                call.pending = None
    return run_coroutine


def _run(sandbox: "Sandbox", call: _AsyncCall, export: Union[str, int], args: tuple,
         timeout: Optional[float]) -> int:
    """The worker thread's part: the call, unless cancelled before it began."""
    with call.lock:
        if call.cancelled:
            raise asyncio.CancelledError()
        call.guest.clear_interrupt()
        call.started = True
    handle = WATCHDOG.arm(timeout, call.expire) if timeout is not None else None
    _current.call = call
    try:
        return sandbox.call(export, *args)
    except Exception:
        if call.timed_out:
            pc = sandbox.pc if not sandbox.closed else None
            raise Timeout(f"the call passed its {timeout:g} s deadline; the guest was stopped at pc {pc}",
                          pc=pc) from None
        raise
    finally:
        _current.call = None
        if handle is not None:
            WATCHDOG.disarm(handle)
        with call.lock:
            call.finished = True
            if sandbox._guest is not None:
                sandbox._guest.clear_interrupt()  # a stop that came after the end must not linger


async def call_async(sandbox: "Sandbox", export: Union[str, int], *args: int,
                     timeout: Optional[float] = None) -> int:
    """:meth:`vmcore.Sandbox.call` for asyncio (see the module docstring)."""
    if timeout is not None:
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds (or None / math.inf for no "
                             f"deadline), got {timeout!r}")
        if timeout == float("inf"):
            timeout = None
    sandbox._live()  # SandboxError if closed
    guest = sandbox._guest
    loop = asyncio.get_running_loop()
    call = _AsyncCall(loop, guest)
    worker = loop.run_in_executor(None, _run, sandbox, call, export, args, timeout)
    try:
        return await asyncio.shield(worker)
    except asyncio.CancelledError:
        if worker.done() and not worker.cancelled():
            raise
        call.stop()
        # Wait (without blocking the loop) until the guest has stopped; a
        # second cancel while waiting does not abandon a running guest.
        while not worker.done():
            try:
                await asyncio.shield(worker)
            except BaseException:
                pass
        raise
