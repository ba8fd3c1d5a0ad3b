"""Shared set-up for the benchmarks: the bundled guest programs (the same
bytes as ../shared/programs) and ready-to-call sandboxes."""
from __future__ import annotations

from pathlib import Path

import vmcore

DATA = Path(vmcore.__file__).parent / "data"

SUM_N = 100_000_000
SUM_RESULT = 49991862417943034
SIEVE_N = 16_000_000
SIEVE_RESULT = 1031130


def load(name: str) -> vmcore.Program:
    return vmcore.Program.load(DATA / f"{name}.polkavm")


def kernel(name: str, **sandbox_options):
    """(sandbox, args, expected result) for sum or sieve."""
    program = load(name)
    sb = vmcore.Sandbox(program, **sandbox_options)
    if name == "sum":
        return sb, (SUM_N,), SUM_RESULT
    return sb, (SIEVE_N, sb.memory_map.rw_data_address), SIEVE_RESULT


def timed_kernel(name: str, gas: int, **sandbox_options):
    """A pyperf time function: `loops` calls of kernel `name` (reset
    before each, only the call timed, the result checked)."""
    import time

    def timed(loops: int) -> float:
        sb, args, expected = kernel(name, gas=gas, **sandbox_options)
        total = 0.0
        try:
            for _ in range(loops):
                sb.reset()
                t0 = time.perf_counter()
                result = sb.call("main", *args)
                total += time.perf_counter() - t0
                if result != expected:
                    raise SystemExit(f"{name}: wrong result {result}, expected {expected}")
        finally:
            sb.close()
        return total
    return timed


def time_noop_calls(sb, loops: int) -> float:
    """Seconds for ``loops`` host-to-guest calls of the `noop` export on
    ``sb`` (after one untimed call)."""
    import time
    call = sb.call
    call("noop")
    t0 = time.perf_counter()
    for _ in range(loops):
        call("noop")
    return time.perf_counter() - t0
