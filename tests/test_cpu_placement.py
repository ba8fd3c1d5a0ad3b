"""Where sandbox processes run: SandboxPool(pinning=) spreads them over the
CPUs (never stacking two while a CPU has fewer), leaves them to the
scheduler ("none"), or spreads them over a given list.  What the kernel
says about each sandbox process (sched_getaffinity of its pid) is the
evidence; placement is counted per host process (vmcore._engine.cpu_load)."""
from __future__ import annotations

import os
import threading
from collections import Counter

import pytest

import vmcore
from vmcore import _engine
from vmcore.pool import SandboxPool

import modes
from conftest import program

pytestmark = pytest.mark.skipif(modes.NO_PROCESS is not None, reason=str(modes.NO_PROCESS))

CPUS = sorted(os.sched_getaffinity(0))
needs_two = pytest.mark.skipif(len(CPUS) < 2, reason="needs two usable CPUs")

PROG = program("""
%isa = latest64
pub @quick:
    a0 = 7
    ret
""")


def affinity(sb: vmcore.Sandbox) -> set:
    return os.sched_getaffinity(sb.pid)


def loads() -> dict:
    return {cpu: _engine.cpu_load(cpu) for cpu in CPUS}


def open_sandboxes(pool: SandboxPool, count: int) -> list:
    """`count` sandboxes, each checked to land on a CPU that had the fewest
    (sandboxes other tests left open count too)."""
    sandboxes = []
    for _ in range(count):
        before = loads()
        sb = vmcore.Sandbox(PROG, isolation="process", pool=pool)
        sandboxes.append(sb)
        if pool.pinning != "none":
            (cpu,) = affinity(sb)
            assert before[cpu] == min(before[c] for c in before if pool.pinning == "spread" or c in pool.pinning)
    return sandboxes


def balanced() -> bool:
    return max(loads().values()) == min(loads().values())


def close_all(sandboxes) -> None:
    for sb in sandboxes:
        sb.close()


@needs_two
@pytest.mark.parametrize("recycled", [False, True], ids=["fresh", "recycled"])
def test_spread_puts_sandboxes_of_one_thread_on_different_cpus(recycled):
    pool = SandboxPool(8)
    if recycled:
        pool.prestart(len(CPUS))
    was_balanced = balanced()
    sandboxes = open_sandboxes(pool, len(CPUS))
    try:
        for sb in sandboxes:
            assert sb.call("quick") == 7  # a call may move one off the caller's CPU: never onto another's
        pinned = [affinity(sb) for sb in sandboxes]
        assert all(len(cpus) == 1 for cpus in pinned), pinned
        if was_balanced:
            assert sorted(cpu for cpus in pinned for cpu in cpus) == CPUS
    finally:
        close_all(sandboxes)
        pool.close()


@needs_two
def test_spread_balances_twice_as_many_sandboxes_as_cpus():
    pool = SandboxPool(0)
    was_balanced, before = balanced(), loads()
    sandboxes = open_sandboxes(pool, 2 * len(CPUS))
    try:
        per_cpu = Counter(cpu for sb in sandboxes for cpu in affinity(sb))
        assert all(loads()[cpu] == before[cpu] + per_cpu[cpu] for cpu in CPUS)
        if was_balanced:
            assert set(per_cpu.values()) == {2}, per_cpu
    finally:
        close_all(sandboxes)
        pool.close()
    assert loads() == before  # closed sandboxes leave the count


@needs_two
def test_sandboxes_of_two_threads_spread():
    pool = SandboxPool(0)
    was_balanced = balanced()
    sandboxes: list = []
    lock = threading.Lock()

    def drive():
        sb = vmcore.Sandbox(PROG, isolation="process", pool=pool)
        for _ in range(200):
            sb.call("quick")
        with lock:
            sandboxes.append(sb)

    threads = [threading.Thread(target=drive) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert all(len(affinity(sb)) == 1 for sb in sandboxes)
        if was_balanced:
            assert affinity(sandboxes[0]) != affinity(sandboxes[1])
    finally:
        close_all(sandboxes)


def test_pinning_none_leaves_sandboxes_to_the_scheduler():
    pool = SandboxPool(2, pinning="none")
    sandboxes = open_sandboxes(pool, 2)
    try:
        for sb in sandboxes:
            assert sb.call("quick") == 7
            assert affinity(sb) == set(CPUS)
    finally:
        close_all(sandboxes)
        pool.close()
    assert pool.pinning == "none"


def test_pinning_to_a_cpu_list():
    pool = SandboxPool(2, pinning=[CPUS[-1]])
    sandboxes = open_sandboxes(pool, 2)
    try:
        for sb in sandboxes:
            assert sb.call("quick") == 7
            assert affinity(sb) == {CPUS[-1]}
    finally:
        close_all(sandboxes)
        pool.close()
    assert pool.pinning == (CPUS[-1],)


@pytest.mark.parametrize("bad", ["everywhere", [], [len(os.sched_getaffinity(0)) + 4096], ["x"]])
def test_bad_pinning_is_refused(bad):
    with pytest.raises(ValueError, match="pinning"):
        SandboxPool(1, pinning=bad)
