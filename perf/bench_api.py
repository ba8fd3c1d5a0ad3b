"""Latency of the Sandbox API (pyperf), per backend/isolation available:

* hostcall: guest `ecalli` -> trivial Python function -> guest resumes
  (shared `hostcall` program), ns per round trip;
* call: `sb.call` of an export that returns at once (`noop`), ns;
* instantiate: `Sandbox(program)` of an already-loaded program, us
  (create + close, so pooled memory is reused as in steady state);
* memory-read: 1 MiB of guest memory into bytes, us.

    python perf/bench_api.py [pyperf options, e.g. --fast -o out.json]
"""
import os
import sys
import time

import pyperf

sys.path.insert(0, os.path.dirname(__file__))
from _programs import load  # noqa: E402

import vmcore  # noqa: E402
from vmcore.backends import BACKENDS  # noqa: E402

HOSTCALL_ITERATIONS = 10_000


def _timed_calls(config, program, export, *args, **sandbox_kw):
    """timed(loops): ``loops`` calls of export(*args) on one sandbox."""
    def timed(loops):
        sb = vmcore.Sandbox(program, backend=config[0], isolation=config[1], **sandbox_kw)
        call = sb.call
        t0 = time.perf_counter()
        for _ in range(loops):
            call(export, *args)
        dt = time.perf_counter() - t0
        sb.close()
        return dt
    return timed


def bench_hostcall(config):
    return _timed_calls(config, load("hostcall"), "main", HOSTCALL_ITERATIONS, hostcalls={"inc": lambda caller: None})


def bench_call(config):
    return _timed_calls(config, load("noop"), "noop")


def bench_instantiate(config):
    program = load("noop")
    vmcore.Sandbox(program, backend=config[0], isolation=config[1]).close()  # compile once

    def timed(loops):
        t0 = time.perf_counter()
        for _ in range(loops):
            vmcore.Sandbox(program, backend=config[0], isolation=config[1]).close()
        return time.perf_counter() - t0
    return timed


def bench_memory_read(config):
    program = vmcore.Program.from_bytes(__import__("vmcore.asm").asm.assemble(
        "%isa = jam_v1\n%rw_data_size = 1048576\npub @main:\n    ret\n"))

    def timed(loops):
        sb = vmcore.Sandbox(program, backend=config[0], isolation=config[1])
        address = sb.memory_map.rw_data_address
        read = sb.memory.read
        t0 = time.perf_counter()
        for _ in range(loops):
            read(address, 1 << 20)
        dt = time.perf_counter() - t0
        sb.close()
        return dt
    return timed


def main():
    runner = pyperf.Runner()
    for config in BACKENDS:
        tag = "/".join(config)
        runner.bench_time_func(f"hostcall[{tag}]", bench_hostcall(config), inner_loops=HOSTCALL_ITERATIONS)
        runner.bench_time_func(f"call[{tag}]", bench_call(config))
        runner.bench_time_func(f"instantiate[{tag}]", bench_instantiate(config))
        runner.bench_time_func(f"memory-read-1MiB[{tag}]", bench_memory_read(config))


if __name__ == "__main__":
    main()
