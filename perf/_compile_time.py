"""Compile / pre-decode time of DOOM under the naive and the full gas model.

    python perf/_compile_time.py [--doom PATH] [--repeat N] [--callgrind] [--json OUT] [--md OUT]
    python perf/run.py --only compile-time [--doom PATH] [--json OUT] [--md OUT]

Issue #16's criterion: with the full model (vmcore.gas "full", the Gray
Paper 0.8 pipeline simulation) building the interpreter's threaded code
and compiling native code should cost at most 1.3x what it costs with the
naive model (1 gas per instruction), on a ~1 MB program.  Each row builds
DOOM's engine artefact directly (``_engine.CompiledModule`` /
``_engine.SharedModule(native=True)``, no cache), with gas metering on.

* wall clock: the best of --repeat builds (plain timing: noisy on a loaded
  machine, so the ratio of bests is the figure to read);
* --callgrind: also the instructions executed (Ir) of one build under
  ``valgrind --tool=callgrind``, collecting only inside the C builder
  (vm_module_build; vm_host_x64_build, its bounds pass and vm_x64_compile
  included, and the compiler's helper thread): repeatable whatever the
  load; and of those, the Ir inside the gas module's calls (vm_gas_feed and
  vm_gas_take with what they call, via callgrind_annotate --inclusive):
  what the cost model itself takes.  Needs valgrind on PATH.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

HERE = Path(__file__).resolve().parent
ROW = "compile-time"
TARGETS = ("interpreter", "compiler")
MODELS = ("naive", "full")
# callgrind: the C functions a build runs in: the interpreter's builder; the
# recompiler's whole host-side build (its bounds pass, the memfd, the compile)
# and its second thread, which starts in helper_main
COLLECT = {"interpreter": ("vm_module_build",), "compiler": ("vm_host_x64_build", "helper_main")}
# the gas module's entry points the builders call per instruction and per block
GAS_CALLS = ("vm_gas_feed", "vm_gas_take")


def default_doom() -> Optional[Path]:
    env = os.environ.get("VMCORE_DOOM")
    if env:
        return Path(env)
    path = HERE.parent.parent / "shared" / "programs" / "real" / "doom.polkavm"
    return path if path.exists() else None


def build(program, target: str, model: str) -> float:
    """One build of `target` under gas model `model`; seconds."""
    from vmcore import _engine, gas

    m = gas.resolve(model, program.isa)
    args = (program.isa_index, program.code, program.bitmask, program.jump_table, True, False)
    start = time.perf_counter()
    if target == "interpreter":
        _engine.CompiledModule(*args, gas_kind=m.kind, memory_access_cost=m.memory_access_cost)
    else:
        _engine.SharedModule(*args, True, gas_kind=m.kind, memory_access_cost=m.memory_access_cost)
    return time.perf_counter() - start


def callgrind_ir(doom: Path, target: str, model: str) -> Tuple[int, Optional[int]]:
    """Ir of one build, counted inside the C builder only, and of that the Ir
    inside the gas module's calls (None when callgrind_annotate is missing)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        toggles = [f"--toggle-collect={name}" for name in COLLECT[target]]
        cmd = ["valgrind", "--tool=callgrind", "--collect-atstart=no", *toggles, f"--callgrind-out-file={out}",
               sys.executable, str(Path(__file__).resolve()), "--one", target, model, "--doom", str(doom)]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        total = None
        for line in out.read_text().splitlines():
            if line.startswith(("summary:", "totals:")):
                total = int(line.split()[1])
                break
        if total is None:
            raise RuntimeError(f"no totals in the callgrind output of {target}/{model}")
        return total, gas_ir(out)


def gas_ir(out: Path) -> Optional[int]:
    """The inclusive Ir of GAS_CALLS in a callgrind output (the few feeds
    vm_gas_take makes itself, for a block left open, count twice)."""
    if not shutil.which("callgrind_annotate"):
        return None
    text = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100", str(out)], check=True,
                          capture_output=True, text=True).stdout
    found = {}
    for line in text.splitlines():
        match = re.match(r"\s*([\d,]+)\s.*:(\w+) \[", line)
        if match and match.group(2) in GAS_CALLS:
            found[match.group(2)] = int(match.group(1).replace(",", ""))
    return sum(found.values()) if found else 0


def measure(doom: Optional[str] = None, repeat: int = 5, callgrind: bool = False,
            log=lambda text: None) -> Dict[str, object]:
    """{"program", "code_bytes", "rows": [{target, naive_ms, full_ms, ratio_ms,
    [naive_ir, full_ir, ratio_ir, naive_gas_ir, full_gas_ir]}]} or {"error": ...} when DOOM is missing."""
    from vmcore.program import Program

    path = Path(doom) if doom else default_doom()
    if path is None or not path.exists():
        return {"row": ROW, "error": f"no DOOM program at {path or '../shared/programs/real/doom.polkavm'}"
                                     " (--doom PATH or $VMCORE_DOOM)"}
    program = Program.load(path)
    rows: List[dict] = []
    for target in TARGETS:
        row: Dict[str, object] = {"target": target}
        for model in MODELS:
            build(program, target, model)  # warm: page cache, lazy imports
            row[f"{model}_ms"] = min(build(program, target, model) for _ in range(max(1, repeat))) * 1e3
            if callgrind:
                row[f"{model}_ir"], gas = callgrind_ir(path, target, model)
                if gas is not None:
                    row[f"{model}_gas_ir"] = gas
        row["ratio_ms"] = row["full_ms"] / row["naive_ms"]
        if callgrind:
            row["ratio_ir"] = row["full_ir"] / row["naive_ir"]
        log(f"{ROW}: {target}: " + ", ".join(f"{k} {v:.4g}" for k, v in row.items() if k != "target"))
        rows.append(row)
    return {"row": ROW, "program": str(path), "code_bytes": len(program.code), "repeat": repeat, "rows": rows}


def markdown(data: dict) -> List[str]:
    if "error" in data:
        return [f"Compile time, naive vs full gas model: skipped ({data['error']})."]
    has_ir = any("ratio_ir" in r for r in data["rows"])
    has_gas = any("full_gas_ir" in r for r in data["rows"])
    lines = [f"Compile / pre-decode time of {Path(data['program']).name} ({data['code_bytes']:,} bytes of code), "
             f"gas metering on, naive vs full (GP 0.8) model; wall clock = best of {data['repeat']} (noisy)"
             + ("; Ir = callgrind, C builder only (repeatable)" if has_ir else "")
             + ("; gas Ir = of that, inside the gas module's calls" if has_gas else "") + ".", "",
             "| build | naive ms | full ms | full / naive (ms) |" + (" naive Ir | full Ir | full / naive (Ir) |"
                                                                    if has_ir else "")
             + (" naive gas Ir | full gas Ir |" if has_gas else ""),
             "|---|---:|---:|---:|" + ("---:|---:|---:|" if has_ir else "") + ("---:|---:|" if has_gas else "")]
    for r in data["rows"]:
        line = f"| {r['target']} | {r['naive_ms']:.1f} | {r['full_ms']:.1f} | {r['ratio_ms']:.2f}x |"
        if has_ir:
            line += f" {r['naive_ir']:,} | {r['full_ir']:,} | {r['ratio_ir']:.2f}x |"
        if has_gas:
            line += f" {r.get('naive_gas_ir', 0):,} | {r.get('full_gas_ir', 0):,} |"
        lines.append(line)
    return lines


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--doom", metavar="PATH", help="doom.polkavm (default ../shared/programs/real/, $VMCORE_DOOM)")
    parser.add_argument("--repeat", type=int, default=5, help="wall-clock builds per figure (the best counts)")
    parser.add_argument("--callgrind", action="store_true", help="also count Ir under valgrind (repeatable)")
    parser.add_argument("--json", metavar="OUT", help="write the figures as JSON")
    parser.add_argument("--md", metavar="OUT", help="write a Markdown table")
    parser.add_argument("--one", nargs=2, metavar=("TARGET", "MODEL"), help=argparse.SUPPRESS)  # under callgrind
    args = parser.parse_args(argv)
    if args.one:
        from vmcore.program import Program
        build(Program.load(args.doom), *args.one)
        return 0
    if args.callgrind and not shutil.which("valgrind"):
        parser.error("--callgrind needs valgrind on PATH")
    data = measure(args.doom, args.repeat, args.callgrind, log=lambda text: print(text, file=sys.stderr))
    if args.json:
        Path(args.json).write_text(json.dumps(data, indent=2) + "\n")
    text = "\n".join(markdown(data)) + "\n"
    if args.md:
        Path(args.md).write_text(text)
    print(text)
    return 1 if "error" in data else 0


if __name__ == "__main__":
    sys.exit(main())
