"""Deadlines for running guests: one daemon thread wakes up at the earliest
deadline and calls its callback (which asks the guest to stop).  The guest
runs without the GIL, so the thread gets to run while a guest spins."""
from __future__ import annotations

import contextlib
import heapq
import itertools
import math
import threading
import time
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple


class Watchdog:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: List[Tuple[float, int]] = []
        self._callbacks: Dict[int, Callable[[], None]] = {}
        self._ids = itertools.count()
        self._thread = None

    def arm(self, seconds: float, callback: Callable[[], None]) -> int:
        """Call ``callback`` after ``seconds`` unless disarmed first."""
        deadline = time.monotonic() + seconds
        with self._cond:
            handle = next(self._ids)
            self._callbacks[handle] = callback
            heapq.heappush(self._heap, (deadline, handle))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="vmcore-watchdog", daemon=True)
                self._thread.start()
            self._cond.notify()
        return handle

    def disarm(self, handle: int) -> None:
        """After this returns the callback will not run (it may have run)."""
        with self._cond:
            self._callbacks.pop(handle, None)

    def _loop(self) -> None:
        with self._cond:
            while True:
                while self._heap and self._heap[0][1] not in self._callbacks:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._cond.wait()
                    continue
                deadline, handle = self._heap[0]
                delay = deadline - time.monotonic()
                if delay > 0:
                    # capped: Condition.wait() overflows on huge or infinite delays
                    self._cond.wait(min(delay, 3600.0))
                    continue
                heapq.heappop(self._heap)
                callback = self._callbacks.pop(handle, None)
                if callback is not None:
                    try:
                        callback()  # under the lock: disarm() waits for it
                    except Exception:
                        pass


WATCHDOG = Watchdog()


@contextlib.contextmanager
def deadline(guest: Any, timeout: Optional[float]) -> Iterator[None]:
    """Stop ``guest`` (its interrupt(): EXIT_INTERRUPTED) if the block runs
    past ``timeout`` seconds; None or infinity: no deadline.  ValueError
    for zero, negative or NaN."""
    if timeout is None:
        yield
        return
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:  # also NaN
        raise ValueError(f"timeout must be a positive number of seconds (or None / math.inf for no "
                         f"deadline), got {timeout!r}")
    if math.isinf(timeout):
        yield
        return
    guest.clear_interrupt()
    handle = WATCHDOG.arm(timeout, guest.interrupt)
    try:
        yield
    finally:
        WATCHDOG.disarm(handle)
        guest.clear_interrupt()  # a deadline that fired after the guest stopped must not linger
