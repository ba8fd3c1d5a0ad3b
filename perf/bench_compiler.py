"""The recompiler (pyperf): compile time, and the shared compute kernels
run as native code in the sandbox process next to the interpreter.

    python perf/bench_compiler.py [pyperf options, e.g. --fast -o out.json]

* compile-1mb: recompiling ~1 MB of compiled-code-shaped guest code
  (perf/_synthetic.py) into the sealed memfd a sandbox maps (what
  Sandbox(..., backend="compiler") pays once per Program), warm (the
  memory of the module compiled before is reused), per MB;
* compile-1mb-cold: the same, as the first compile of a new process (one
  child process per value);
* compile-1mb-full: compile-1mb with the Gray Paper 0.8 (full) gas model
  instead of the naive one (every block's cost from the pipeline
  simulation, computed while compiling); predecode-1mb / predecode-1mb-full:
  the interpreter's threaded-code build of the same program, naive / full;
  the full/naive ratios are printed at the end;
* compiler-sum / compiler-sieve: `sum` (n = 100,000,000) and `sieve`
  (n = 16,000,000) from the blobs in ../shared/programs, gas metering on,
  `sb.call` on backend="compiler" (native code in the sandbox process);
* interpreter-sum / interpreter-sieve: the same calls on the inline
  interpreter, for the side-by-side table printed at the end.

Reference (PolkaVM's recompiler, this machine kind): sum 0.46 s, sieve
0.27 s, compile of 1 MB 14 ms in a fresh process and 6 ms warm."""
from __future__ import annotations

import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import pyperf

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _programs import timed_kernel  # noqa: E402
from _synthetic import synthetic_program  # noqa: E402

from vmcore import _engine, isa as ISA  # noqa: E402
from vmcore.pool import cpu_supports_native  # noqa: E402

GAS = 1 << 62
REFERENCE = {"sum": 0.46, "sieve": 0.27, "compile-1mb-cold": 0.014, "compile-1mb": 0.006}
_SYNTH = {}


def _synthetic():
    if "prog" not in _SYNTH:
        _SYNTH["prog"] = synthetic_program(1 << 20, seed=1, isa="jam_v1")
    return _SYNTH["prog"]


def _compile_once(native: bool = True, gas_kind: int = _engine.GAS_NAIVE) -> float:
    code, bitmask, table = _synthetic()
    module = _engine.SharedModule(ISA.isa_index("jam_v1"), code, bitmask, table, True, False, native,
                                   gas_kind=gas_kind)
    return module.compile_seconds * (1 << 20) / len(code)  # seconds per MB


def bench_compile(loops: int) -> float:
    return sum(_compile_once() for _ in range(loops))


def bench_compile_full(loops: int) -> float:
    return sum(_compile_once(True, _engine.GAS_FULL) for _ in range(loops))


def bench_predecode(loops: int) -> float:
    return sum(_compile_once(False) for _ in range(loops))


def bench_predecode_full(loops: int) -> float:
    return sum(_compile_once(False, _engine.GAS_FULL) for _ in range(loops))


_COLD_CHILD = """
import struct, sys
from vmcore import _engine, isa as ISA
code, bitmask, table = (open(path, "rb").read() for path in sys.argv[1:4])
table = struct.unpack(f"<{len(table) // 4}I", table)
module = _engine.SharedModule(ISA.isa_index("jam_v1"), code, bitmask, table, True, False, True)
print(module.compile_seconds)
"""


def _program_files():
    if "files" not in _SYNTH:
        code, bitmask, table = _synthetic()
        folder = tempfile.mkdtemp(prefix="vmcore-bench-")
        paths = []
        for name, data in (("code", bytes(code)), ("bitmask", bytes(bitmask)),
                           ("table", struct.pack(f"<{len(table)}I", *table))):
            paths.append(str(Path(folder) / name))
            Path(paths[-1]).write_bytes(data)
        _SYNTH["files"] = paths
    return _SYNTH["files"]


def bench_compile_cold(loops: int) -> float:
    # The first compile of a process: each in a child of its own (pyperf's
    # workers compile more than once, and later compiles are warm).
    code, _, _ = _synthetic()
    total = 0.0
    for _ in range(loops):
        out = subprocess.run([sys.executable, "-c", _COLD_CHILD, *_program_files()], check=True,
                             capture_output=True, text=True).stdout
        total += float(out) * (1 << 20) / len(code)
    return total


def bench_kernel(name: str, backend: str, isolation: str):
    return timed_kernel(name, GAS, backend=backend, isolation=isolation)


def main() -> None:
    reason = cpu_supports_native()
    if reason is not None:
        raise SystemExit(reason)
    runner = pyperf.Runner(processes=3, values=2, warmups=1, loops=1)
    runner.metadata["description"] = "vmcore recompiler: compile time and the sum/sieve kernels"
    results = {"compile-1mb": runner.bench_time_func("compile-1mb", bench_compile),
               "compile-1mb-cold": runner.bench_time_func("compile-1mb-cold", bench_compile_cold),
               "compile-1mb-full": runner.bench_time_func("compile-1mb-full", bench_compile_full),
               "predecode-1mb": runner.bench_time_func("predecode-1mb", bench_predecode),
               "predecode-1mb-full": runner.bench_time_func("predecode-1mb-full", bench_predecode_full)}
    for name in ("sum", "sieve"):
        results[f"compiler-{name}"] = runner.bench_time_func(f"compiler-{name}",
                                                             bench_kernel(name, "compiler", "process"))
        results[f"interpreter-{name}"] = runner.bench_time_func(f"interpreter-{name}",
                                                                bench_kernel(name, "interpreter", "inline"))
    if runner.args.worker or any(b is None for b in results.values()):
        return
    code, _, _ = _synthetic()
    print()
    for key in ("compile-1mb", "compile-1mb-cold"):
        mean = results[key].mean()
        print(f"{key}: {mean * 1e3:.2f} ms per MB of guest code ({len(code):,} bytes); reference "
              f"{REFERENCE[key] * 1e3:.0f} ms = {mean / REFERENCE[key]:.2f}x")
    for key in ("compile-1mb", "predecode-1mb"):
        naive, full = results[key].mean(), results[key + "-full"].mean()
        print(f"{key}: naive gas {naive * 1e3:.2f} ms, full gas {full * 1e3:.2f} ms per MB = {full / naive:.2f}x")
    print(f"{'kernel':<8} {'interpreter':>12} {'compiler':>10} {'speed-up':>9} {'reference':>10} {'vs ref':>7}")
    for name in ("sum", "sieve"):
        i, c = results[f"interpreter-{name}"].mean(), results[f"compiler-{name}"].mean()
        print(f"{name:<8} {i:>11.3f}s {c:>9.3f}s {i / c:>8.1f}x {REFERENCE[name]:>9.2f}s "
              f"{c / REFERENCE[name]:>6.2f}x")


if __name__ == "__main__":
    main()
