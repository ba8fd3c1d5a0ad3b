"""Interpreter throughput on the shared compute kernels (pyperf).

    python perf/bench_interpreter.py [pyperf options, e.g. --fast -o out.json]

Runs `sum` (n = 100,000,000) and `sieve` (n = 16,000,000) from the exact
blobs in ../shared/programs (bundled in vmcore/data) and prints seconds per
run plus guest instructions per second (gas used with the default cost
model of 1 per instruction)."""
import sys

import pyperf

sys.path.insert(0, __import__("os").path.dirname(__file__))
from _programs import kernel, timed_kernel  # noqa: E402

GAS = 1 << 62


def bench(name: str):
    return timed_kernel(name, GAS, backend="interpreter", isolation="inline")


def instructions(name: str) -> int:
    sb, args, _ = kernel(name, gas=GAS)
    sb.call("main", *args)
    return GAS - sb.gas


def main() -> None:
    runner = pyperf.Runner(processes=3, values=2, warmups=0, loops=1)
    runner.metadata["description"] = "vmcore interpreter on the shared sum/sieve kernels"
    results = {}
    for name in ("sum", "sieve"):
        results[name] = runner.bench_time_func(f"interpreter-{name}", bench(name))
    if not runner.args.worker:
        for name, b in results.items():
            if b is None:
                continue
            n = instructions(name)
            mean = b.mean()
            print(f"{name}: {mean:.3f} s, {n:,} instructions, {n / mean / 1e6:.0f} M instructions/s")


if __name__ == "__main__":
    main()
