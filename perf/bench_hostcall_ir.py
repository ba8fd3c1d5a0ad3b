"""Instructions (callgrind Ir) per 1,000 inline hostcall round trips.

Wall-clock hostcall timings are noisy on a loaded machine; instruction
counts are repeatable.  Each configuration runs the bundled ``hostcall``
program (``main(n)``: n ecallis of import ``inc``) in a fresh interpreter
under callgrind twice, with SMALL and LARGE iterations, counting only
inside the engine's hostcall loop (``_serve``: the guest, the dispatch and
the Python function; Python's start-up varies by far more than what is
measured), and reports (Ir(LARGE) - Ir(SMALL)) / (LARGE - SMALL) * 1000.

    python perf/bench_hostcall_ir.py            # every configuration
    python perf/bench_hostcall_ir.py register   # one of them

Configurations: ``register`` (``hostcalls={"inc": fn}``, as bench_api's
hostcall), ``functions`` (the same function from a shared
``vmcore.HostFunctions``), ``functions-gas`` (the same with ``gas=1`` in a
metered sandbox) and ``register-gas`` (a metered sandbox without gas on the
function).  Needs valgrind.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile

SMALL, LARGE = 1_000, 11_000
CONFIGS = ("register", "functions", "register-gas", "functions-gas")

_CHILD = r"""
import sys
import vmcore
from pathlib import Path
config, n = sys.argv[1], int(sys.argv[2])
program = vmcore.Program.load(Path(vmcore.__file__).parent / "data" / "hostcall.polkavm")
inc = lambda caller: None
gas = 10 ** 15 if config.endswith("-gas") else None
if config.startswith("functions"):
    fns = vmcore.HostFunctions()
    fns.define("inc", inc, gas=1 if gas else 0)
    sb = vmcore.Sandbox(program, isolation="inline", functions=fns, gas=gas)
else:
    sb = vmcore.Sandbox(program, isolation="inline", hostcalls={"inc": inc}, gas=gas)
sb.call("main", 10)
sb.call("main", n)
"""


def _has_functions() -> bool:
    import vmcore
    return hasattr(vmcore, "HostFunctions")


def callgrind_total(child_args, valgrind_args=()) -> int:
    """Total Ir of ``python -c *child_args`` under callgrind
    (PYTHONHASHSEED=0; perf/bench_instantiate_ir.py uses it too)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "cg.out")
        subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *valgrind_args,
                        sys.executable, "-c", *child_args],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       env={**os.environ, "PYTHONHASHSEED": "0"})
        with open(out) as f:
            text = f.read()
    m = re.search(r"^summary:\s+(\d+)", text, re.M) or re.search(r"^totals:\s+(\d+)", text, re.M)
    if not m:
        raise RuntimeError("no totals in the callgrind output")
    return int(m.group(1))


def instructions(config: str, n: int) -> int:
    """Ir of one child run inside the hostcall loop."""
    return callgrind_total([_CHILD, config, str(n)], ["--collect-atstart=no", "--toggle-collect=*_engine__serve*"])


def per_thousand(config: str) -> float:
    return (instructions(config, LARGE) - instructions(config, SMALL)) / (LARGE - SMALL) * 1000


def main(argv) -> int:
    configs = argv or [c for c in CONFIGS if _has_functions() or not c.startswith("functions")]
    for config in configs:
        print(f"{config:14s} {per_thousand(config):12,.0f} Ir per 1,000 hostcalls", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
