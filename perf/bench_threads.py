"""Throughput of N threads, each driving its own process sandbox (plain
timing, not pyperf: the threads must run at once in one process).

    python perf/bench_threads.py [--threads 1,2] [--seconds 3] [--n 20000000]
                                 [--backend compiler] [--pinning default|spread|none|CPU,...]

Every thread calls `sum` main(n) (a compute call: the host thread sleeps on
the futex while its sandbox process runs) in a loop for --seconds; the
figure is calls per second over all threads, and the scaling is that over
the 1-thread figure (ideal: N).  All sandboxes come from one SandboxPool
with the given pinning, created in the main thread (the case that used to
stack them on one CPU), and the CPUs they were pinned to are printed.
"""
from __future__ import annotations

import argparse
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _programs import load  # noqa: E402

import vmcore  # noqa: E402
from vmcore.pool import SandboxPool  # noqa: E402


def sum_expected(n: int) -> int:
    sb = vmcore.Sandbox(load("sum"), isolation="inline")
    try:
        return sb.call("main", n)
    finally:
        sb.close()


def throughput(threads: int, seconds: float, n: int, backend: str, pinning) -> tuple:
    """(calls per second over all threads, [CPU sets of the sandboxes])."""
    # "default": the pool's own policy (also for builds before pinning=)
    pool = SandboxPool(threads) if pinning == "default" else SandboxPool(threads, pinning=pinning)
    program = load("sum")
    sandboxes = [vmcore.Sandbox(program, backend=backend, isolation="process", pool=pool) for _ in range(threads)]
    expected = sum_expected(n)
    counts = [0] * threads
    start = threading.Barrier(threads + 1)
    stop = time.perf_counter() + 1e9
    errors: list = []

    def drive(i: int) -> None:
        sb = sandboxes[i]
        try:
            sb.call("main", n)  # warm: module handed over, pages touched
            start.wait()
            while time.perf_counter() < stop:
                if sb.call("main", n) != expected:
                    raise AssertionError("wrong sum")
                counts[i] += 1
        except Exception as exc:  # reported by the main thread
            errors.append(exc)

    workers = [threading.Thread(target=drive, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    start.wait()
    t0 = time.perf_counter()
    stop = t0 + seconds
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - t0
    cpus = [sorted(os.sched_getaffinity(sb.pid)) for sb in sandboxes]
    for sb in sandboxes:
        sb.close()
    pool.close()
    if errors:
        raise errors[0]
    return sum(counts) / elapsed, cpus


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts (default 1,2)")
    parser.add_argument("--seconds", type=float, default=3.0, help="timed seconds per thread count")
    parser.add_argument("--n", type=int, default=20_000_000, help="sum's n per call (default 2e7: ~40 ms)")
    parser.add_argument("--backend", default="compiler", choices=("compiler", "interpreter"))
    parser.add_argument("--pinning", default="default",
                        help="spread, none, comma-separated CPUs, or default (the pool's default)")
    args = parser.parse_args()
    pinning = args.pinning if args.pinning in ("spread", "none", "default") else [int(c) for c in args.pinning.split(",")]
    print(f"# {os.cpu_count()} CPUs, usable {sorted(os.sched_getaffinity(0))}, load average "
          f"{os.getloadavg()[0]:.2f}; backend {args.backend}, pinning {args.pinning}, n {args.n:,}")
    base = None
    for threads in (int(t) for t in args.threads.split(",")):
        rate, cpus = throughput(threads, args.seconds, args.n, args.backend, pinning)
        base = base or rate
        print(f"threads={threads} calls_per_s={rate:.2f} scaling={rate / base:.2f} sandbox_cpus={cpus}")


if __name__ == "__main__":
    main()
