"""The recompiler (pyperf): compile time, and the shared compute kernels
run as native code next to the interpreter.

    python perf/bench_compiler.py [pyperf options, e.g. --fast -o out.json]

* compile-1mb: vm_x64_compile on ~1 MB of compiled-code-shaped guest code
  (perf/_synthetic.py), warm (buffers reused by the allocator) -- reported
  per MB;
* compiler-sum / compiler-sieve: `sum` (n = 100,000,000) and `sieve`
  (n = 16,000,000) from the blobs in ../shared/programs, gas metering on,
  executed by tests/native/runner.c -- a stand-in for the sandbox process
  until the recompiler is wired into the zygote.  The time is the runner's
  own measurement around the guest run (no process start, no set-up);
* interpreter-sum / interpreter-sieve: the same calls on the inline
  interpreter, for the side-by-side table printed at the end.

Generated code never runs in this process: only in the runner child."""
from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path

import pyperf

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

from _programs import SIEVE_N, SIEVE_RESULT, SUM_N, SUM_RESULT, kernel, load  # noqa: E402
from _synthetic import synthetic_program  # noqa: E402

import x64_runner as XR  # noqa: E402  (the test-only runner harness)
from vmcore import _compiler, isa as ISA  # noqa: E402
from vmcore.heap import HeapPolicy  # noqa: E402
from vmcore.layout import initial_layout  # noqa: E402

GAS = 1 << 62
HALT = 0xFFFF0000
_SYNTH = {}


def _runner() -> XR.Runner:
    """The test runner, built once per source version into a cache dir."""
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in XR.RUNNER_SOURCES)).hexdigest()[:16]
    cache = Path(tempfile.gettempdir()) / f"vmcore-bench-runner-{digest}"
    binary = cache / "vmcore_x64_runner"
    if not binary.exists():
        cache.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=cache))
        built = XR.build_runner(tmp)
        os.replace(built, binary)
    return XR.Runner(binary)


def _synthetic():
    if "prog" not in _SYNTH:
        _SYNTH["prog"] = synthetic_program(1 << 20, seed=1, isa="jam_v1")
    return _SYNTH["prog"]


def bench_compile(loops: int) -> float:
    code, bitmask, table = _synthetic()
    isa = ISA.isa_index("jam_v1")
    total = 0.0
    for _ in range(loops):
        total += _compiler.CompiledCode(isa, code, bitmask, table).seconds
    return total * (1 << 20) / len(code)  # seconds per MB


def _kernel_case(name: str):
    program = load(name)
    mm = program.memory_map(4096)
    regions, heap = initial_layout(program, mm, HeapPolicy())
    perms = [(r.address, r.size, r.perm) for r in regions]
    chunks = [(r.address, r.data) for r in regions if r.data]
    regs = [0] * 13
    regs[0] = HALT
    regs[1] = mm.stack_address_high
    if name == "sum":
        regs[7], expected = SUM_N, SUM_RESULT
    else:
        regs[7], regs[8], expected = SIEVE_N, mm.rw_data_address, SIEVE_RESULT
    cc = _compiler.CompiledCode(program.isa_index, program.code, program.bitmask, program.jump_table, True)
    rc, gas, native = cc.enter(program.exports["main"], GAS)
    assert rc == 0
    case = XR.Case(cc, regs, gas, native, 4096, perms, chunks,
                   (heap.base, heap.base, heap.mapped_end, heap.max_top, heap.grow_pages), XR.GAS_METERING, 1)
    return case, expected


def bench_native(name: str):
    def timed(loops: int) -> float:
        runner = _runner()
        case, expected = _kernel_case(name)
        total = 0.0
        try:
            for _ in range(loops):
                result = runner.run(case)
                if result.last.status != "halt" or result.regs[7] != expected:
                    raise SystemExit(f"{name}: {result.last.status}, a0 = {result.regs[7]}, expected {expected}")
                total += result.nanoseconds / 1e9
        finally:
            runner.close()
        return total
    return timed


def bench_interpreter(name: str):
    def timed(loops: int) -> float:
        sb, args, expected = kernel(name, gas=GAS, backend="interpreter", isolation="inline")
        total = 0.0
        for _ in range(loops):
            sb.reset()
            t0 = time.perf_counter()
            result = sb.call("main", *args)
            total += time.perf_counter() - t0
            if result != expected:
                raise SystemExit(f"{name}: wrong result {result}, expected {expected}")
        return total
    return timed


def main() -> None:
    if _compiler.cpu_check() is not None:
        raise SystemExit(f"this CPU lacks {_compiler.cpu_check()}: the recompiler cannot run here")
    runner = pyperf.Runner(processes=3, values=2, warmups=1, loops=1)
    runner.metadata["description"] = "vmcore recompiler: compile time and the sum/sieve kernels (test runner)"
    results = {"compile-1mb": runner.bench_time_func("compile-1mb", bench_compile)}
    for name in ("sum", "sieve"):
        results[f"compiler-{name}"] = runner.bench_time_func(f"compiler-{name}", bench_native(name))
        results[f"interpreter-{name}"] = runner.bench_time_func(f"interpreter-{name}", bench_interpreter(name))
    if runner.args.worker:
        return
    if any(b is None for b in results.values()):
        return
    code, bitmask, table = _synthetic()
    cc = _compiler.CompiledCode(ISA.isa_index("jam_v1"), code, bitmask, table)
    print()
    print(f"compile: {results['compile-1mb'].mean() * 1e3:.2f} ms per MB of guest code "
          f"({cc.info['map_count']:,} instructions in {len(code):,} bytes -> {cc.info['code_size']:,} bytes)")
    print(f"{'kernel':<8} {'interpreter':>12} {'compiler':>10} {'speed-up':>9}")
    for name in ("sum", "sieve"):
        i, c = results[f"interpreter-{name}"].mean(), results[f"compiler-{name}"].mean()
        print(f"{name:<8} {i:>11.3f}s {c:>9.3f}s {i / c:>8.1f}x")


if __name__ == "__main__":
    main()
