"""Instructions (callgrind Ir) per Sandbox lifetime: new + no-op call + close.

Wall-clock instantiation timings (perf/run.py's instantiate rows) need a
quiet machine; instruction counts are repeatable.  Each configuration runs
in a fresh interpreter under callgrind twice, with K=1 and K=5 cycles of
``Sandbox(program, ...)``, ``sb.call("noop")``, ``sb.close()`` after a warm
up (the Program compiled, the pools filled), and reports
(Ir(K=5) - Ir(K=1)) / 4: what one cycle costs in this process, start-up
and warm-up cancelled out (PYTHONHASHSEED=0 keeps the two runs alike).

    python perf/bench_instantiate_ir.py            # every configuration
    python perf/bench_instantiate_ir.py inline     # one of them

Configurations: ``inline`` (the inline interpreter, as the
instantiate-inline row), ``inline-gas`` (the same, metered) and
``oneshot`` (blob bytes -> Program -> Sandbox -> call -> close, inline).
The sandbox process cannot be started under valgrind (the zygote's exec
fails there), so isolation="process" is not measured.  Needs valgrind.
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_hostcall_ir import callgrind_total  # noqa: E402

SMALL, LARGE = 1, 5
WARMUP = 8
CONFIGS = ("inline", "inline-gas", "oneshot")

_CHILD = r"""
import sys
import vmcore
from pathlib import Path
config, k, warmup = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
path = Path(vmcore.__file__).parent / "data" / "noop.polkavm"
blob = path.read_bytes()
program = vmcore.Program.from_bytes(blob)
options = dict(isolation="inline", gas=10 ** 9 if config == "inline-gas" else None)
Sandbox, Program = vmcore.Sandbox, vmcore.Program

def cycle():
    sb = Sandbox(Program.from_bytes(blob) if config == "oneshot" else program, **options)
    sb.call("noop")
    sb.close()

for _ in range(warmup):
    cycle()
for _ in range(k):
    cycle()
"""


def instructions(config: str, k: int) -> int:
    """Total Ir of one child run."""
    return callgrind_total([_CHILD, config, str(k), str(WARMUP)])


def per_cycle(config: str) -> float:
    return (instructions(config, LARGE) - instructions(config, SMALL)) / (LARGE - SMALL)


def main(argv) -> int:
    for config in argv or CONFIGS:
        if config not in CONFIGS:
            print(f"unknown configuration {config!r}; expected one of {', '.join(CONFIGS)}", file=sys.stderr)
            return 2
        print(f"{config:12s} {per_cycle(config):12,.0f} Ir per new + call + close", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
