"""perf/run.py's side-by-side table: vmcore next to PolkaVM 0.35.

Each row times one workload on vmcore (plain wall-clock timing in this
process) and, when the shared harness is given (`--reference PATH`, a
`refharness` binary), the same workload on PolkaVM right after it, so the
two figures of a row are measured back to back and the ratio is
vmcore / PolkaVM (below 1.00x: vmcore is faster).  Rows:

* DOOM ms per frame (one ext_tick draws one frame, perf/_doom.py):
  compiler without gas, compiler with gas metering, interpreter;
* sum and sieve, compiler and interpreter (seconds per call, median);
* hostcall round trip and host-to-guest call, sandbox process (compiler);
* instantiate: new Sandbox + no-op call + close, inline interpreter and
  compiler/process (PolkaVM: instantiate on its interpreter / recompiler);
* oneshot: blob bytes -> Program -> Sandbox -> call -> close of `noop`
  (PolkaVM: its warm compile of the blob plus an instance, interpreter).

DOOM needs doom.polkavm (GPL: never in this repository) and a WAD; without
them the DOOM rows are skipped with the reason.
"""
from __future__ import annotations

import os
import re
import statistics
import subprocess
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from _doom import DEFAULT_WAD, GAS_BUDGET, run_doom
from _programs import SIEVE_N, SIEVE_RESULT, SUM_N, SUM_RESULT, DATA, load, time_noop_calls

import vmcore

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"

# Workload sizes per mode: DOOM frames (compiler, interpreter), compute
# (sum n, sieve n, repeats), latency loop counts (hostcall, call, instances).
SIZES = {
    "full": {"doom": 1000, "doom_interp": 200, "sum": SUM_N, "sieve": SIEVE_N, "repeat": 5,
             "hostcall": 1_000_000, "call": 200_000, "instances": 2000},
    "quick": {"doom": 300, "doom_interp": 60, "sum": SUM_N, "sieve": SIEVE_N, "repeat": 3,
              "hostcall": 200_000, "call": 50_000, "instances": 500},
    "tiny": {"doom": 2, "doom_interp": 2, "sum": 1000, "sieve": 1000, "repeat": 1,
             "hostcall": 100, "call": 100, "instances": 5},
}
# the units rows are shown in, in ns
NS_PER_UNIT = {"ms/frame": 1e6, "s": 1e9, "ns": 1, "µs": 1e3}
# name: (what, unit)
ROWS = {
    "doom-compiler": ("DOOM, compiler, no gas", "ms/frame"),
    "doom-compiler-gas": ("DOOM, compiler, gas metered", "ms/frame"),
    "doom-interpreter": ("DOOM, interpreter", "ms/frame"),
    "sum-compiler": ("sum, compiler", "s"),
    "sieve-compiler": ("sieve, compiler", "s"),
    "sum-interpreter": ("sum, interpreter", "s"),
    "sieve-interpreter": ("sieve, interpreter", "s"),
    "hostcall": ("hostcall round trip, sandbox process (compiler)", "ns"),
    "call": ("host-to-guest call, sandbox process (compiler)", "ns"),
    "instantiate-inline": ("new Sandbox + call + close, inline interpreter", "µs"),
    "instantiate-process": ("new Sandbox + call + close, compiler/process", "µs"),
    "oneshot": ("oneshot: blob -> Program -> Sandbox -> call -> close, inline interpreter", "µs"),
}


def find_doom(program: Optional[str] = None, wad: Optional[str] = None) -> Tuple[Optional[Path], Optional[Path], str]:
    """(program, wad, "") or (None, None, why not): flags, then
    $VMCORE_DOOM / $VMCORE_DOOM_WAD, then ../shared/programs/real/ beside
    the checkout and Debian's freedoom1.wad."""
    shared = Path(os.environ["VMCORE_SHARED"]) if os.environ.get("VMCORE_SHARED") else SHARED
    program = program or os.environ.get("VMCORE_DOOM") or str(shared / "programs" / "real" / "doom.polkavm")
    wad = wad or os.environ.get("VMCORE_DOOM_WAD") or DEFAULT_WAD
    if not Path(program).is_file():
        return None, None, f"no DOOM program at {program} (--doom PATH or $VMCORE_DOOM)"
    if not Path(wad).is_file():
        return None, None, f"no WAD at {wad} (apt-get install freedoom, --wad PATH or $VMCORE_DOOM_WAD)"
    return Path(program), Path(wad), ""


class Harness:
    """The refharness binary: one subcommand, its key=value results."""

    def __init__(self, path: str) -> None:
        if not os.access(path, os.X_OK):
            raise SystemExit(f"--reference: {path} is not an executable refharness binary")
        self.path = path

    def run(self, *args: str) -> Dict[str, str]:
        out = subprocess.run([self.path, *args], capture_output=True, text=True, timeout=1800)
        if out.returncode != 0:
            raise RuntimeError(f"refharness {' '.join(args)}: {out.stderr.strip()[-300:]}")
        return dict(re.findall(r"(\w+)=(\S+)", out.stdout))


def _median_call(sb, args, expected, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        sb.reset()
        t0 = time.perf_counter()
        result = sb.call("main", *args)
        times.append(time.perf_counter() - t0)
        if result != expected:
            raise RuntimeError(f"wrong result {result}, expected {expected}")
    return statistics.median(times)


def _expected(name: str, n: int) -> int:
    if n == (SUM_N if name == "sum" else SIEVE_N):
        return SUM_RESULT if name == "sum" else SIEVE_RESULT
    sb = vmcore.Sandbox(load(name), isolation="inline")  # small n (tiny mode): the interpreter's answer
    try:
        return sb.call("main", *((n,) if name == "sum" else (n, sb.memory_map.rw_data_address)))
    finally:
        sb.close()


def _compute(name: str, backend: str, n: int, repeat: int) -> float:
    isolation = "process" if backend == "compiler" else "inline"
    sb = vmcore.Sandbox(load(name), backend=backend, isolation=isolation)
    try:
        args = (n,) if name == "sum" else (n, sb.memory_map.rw_data_address)
        return _median_call(sb, args, _expected(name, n), repeat) * 1e9
    finally:
        sb.close()


def _hostcall(n: int) -> float:
    sb = vmcore.Sandbox(load("hostcall"), backend="compiler", hostcalls={"inc": lambda caller: None})
    try:
        sb.call("main", 10)
        t0 = time.perf_counter()
        sb.call("main", n)
        return (time.perf_counter() - t0) / n * 1e9
    finally:
        sb.close()


def _call(n: int) -> float:
    sb = vmcore.Sandbox(load("noop"), backend="compiler")
    try:
        return time_noop_calls(sb, n) / n * 1e9
    finally:
        sb.close()


def _instantiate(backend: str, n: int) -> float:
    program = load("noop")
    isolation = "process" if backend == "compiler" else "inline"
    Sandbox = vmcore.Sandbox
    Sandbox(program, backend=backend, isolation=isolation).close()  # compiled once, pool warm
    t0 = time.perf_counter()
    for _ in range(n):
        sb = Sandbox(program, backend=backend, isolation=isolation)
        sb.call("noop")
        sb.close()
    return (time.perf_counter() - t0) / n * 1e9


def _oneshot(n: int) -> float:
    blob = (DATA / "noop.polkavm").read_bytes()
    Program, Sandbox = vmcore.Program, vmcore.Sandbox
    t0 = time.perf_counter()
    for _ in range(n):
        sb = Sandbox(Program.from_bytes(blob), isolation="inline")
        sb.call("noop")
        sb.close()
    return (time.perf_counter() - t0) / n * 1e9


def _program(name: str) -> str:
    return str(DATA / f"{name}.polkavm")


def measure(mode: str, harness_path: Optional[str], doom: Optional[str] = None, wad: Optional[str] = None,
            log=print) -> dict:
    """{"rows": [...], "skipped": {...}, "sizes": {...}}: every row with
    vmcore's figure (ns) and, with a harness, PolkaVM's and the ratio."""
    sizes = SIZES[mode]
    harness = Harness(harness_path) if harness_path else None
    program, wad_path, why_not = find_doom(doom, wad)
    frames, frames_interp, repeat = sizes["doom"], sizes["doom_interp"], sizes["repeat"]

    def doom_vm(backend, gas, count):
        isolation = "process" if backend == "compiler" else "inline"
        return run_doom(program, wad_path, count, backend=backend, isolation=isolation,
                        gas_model=gas, every=max(count, 1)).ms_per_tick * 1e6

    def doom_ref(backend, gas, count):
        extra = ["--gas", str(GAS_BUDGET)] if gas else []
        return float(harness.run("doom", "--program", str(program), "--wad", str(wad_path), "--frames", str(count),
                                 "--backend", backend, *extra)["mean_ms_per_frame"]) * 1e6

    def compute_ref(name, backend, n):
        return float(harness.run("compute", "--program", _program(name), "--n", str(n), "--repeat", str(repeat),
                                 "--backend", backend)["median_s"]) * 1e9

    plan = []
    if program is not None:
        # gas: vmcore's default model for this ISA ("naive" for latest32, as PolkaVM's --gas).
        plan += [
            ("doom-compiler", lambda: doom_vm("compiler", None, frames), lambda: doom_ref("compiler", False, frames)),
            ("doom-compiler-gas", lambda: doom_vm("compiler", "naive", frames),
             lambda: doom_ref("compiler", True, frames)),
            ("doom-interpreter", lambda: doom_vm("interpreter", None, frames_interp),
             lambda: doom_ref("interpreter", False, frames_interp)),
        ]
    for name in ("sum", "sieve"):
        for backend in ("compiler", "interpreter"):
            plan.append((f"{name}-{backend}", lambda name=name, backend=backend: _compute(name, backend, sizes[name], repeat),
                         lambda name=name, backend=backend: compute_ref(name, backend, sizes[name])))
    inst = str(sizes["instances"])
    plan += [
        ("hostcall", lambda: _hostcall(sizes["hostcall"]),
         lambda: float(harness.run("hostcall", "--n", str(sizes["hostcall"]), "--program", _program("hostcall"))
                       ["ns_per_hostcall"])),
        ("call", lambda: _call(sizes["call"]),
         lambda: float(harness.run("call", "--n", str(sizes["call"]), "--program", _program("noop"))["ns_per_call"])),
        ("instantiate-inline", lambda: _instantiate("interpreter", sizes["instances"]),
         lambda: float(harness.run("instantiate", "--backend", "interpreter", "--program", _program("noop"),
                                   "--n", inst)["us_per_instance"]) * 1e3),
        ("instantiate-process", lambda: _instantiate("compiler", sizes["instances"]),
         lambda: float(harness.run("instantiate", "--program", _program("noop"), "--n", inst)["us_per_instance"]) * 1e3),
        ("oneshot", lambda: _oneshot(sizes["instances"]), lambda: _ref_oneshot(harness, inst)),
    ]
    rows, skipped = [], {}
    if program is None:
        skipped["doom"] = why_not
        log(f"side-by-side: skipping the DOOM rows: {why_not}")
    if harness is None:
        skipped["polkavm"] = "no --reference PATH (the refharness binary): vmcore figures only"
    for name, ours, theirs in plan:
        row = {"row": name, "what": ROWS[name][0], "unit": ROWS[name][1]}
        try:
            row["vmcore_ns"] = ours()
            if harness is not None:
                row["polkavm_ns"] = theirs()
                row["ratio"] = row["vmcore_ns"] / row["polkavm_ns"] if row["polkavm_ns"] > 0 else None
        except Exception as exc:  # one failed row does not stop the table
            row["error"] = f"{type(exc).__name__}: {exc}"
        log(f"side-by-side {name}: " + (row.get("error") or format_row_values(row)))
        rows.append(row)
    return {"rows": rows, "skipped": skipped, "sizes": sizes, "mode": mode,
            "doom": {"program": str(program), "wad": str(wad_path)} if program else None,
            "reference": harness_path}


def _ref_oneshot(harness: Harness, inst: str) -> float:
    """PolkaVM's nearest figure: a warm compile of the blob (Module) plus
    one instance, both on its interpreter."""
    compile_ms = float(harness.run("compile", "--backend", "interpreter", "--program", _program("noop"),
                                   "--repeat", "5")["warm_median_ms"])
    instance_us = float(harness.run("instantiate", "--backend", "interpreter", "--program", _program("noop"),
                                    "--n", inst)["us_per_instance"])
    return compile_ms * 1e6 + instance_us * 1e3


def fmt_value(ns: float, unit: str) -> str:
    scale = NS_PER_UNIT[unit]
    v = ns / scale
    return f"{v:.3g} {unit}" if v < 100 else f"{v:,.0f} {unit}"


def format_row_values(row: dict) -> str:
    text = fmt_value(row["vmcore_ns"], row["unit"])
    if "polkavm_ns" in row:
        text += f" vs PolkaVM {fmt_value(row['polkavm_ns'], row['unit'])}"
        if row.get("ratio"):
            text += f" ({row['ratio']:.2f}x)"
    return text


def markdown(side: dict) -> List[str]:
    """The side-by-side table as Markdown lines."""
    with_ref = any("polkavm_ns" in r for r in side["rows"])
    lines = ["## vmcore and PolkaVM 0.35 side by side", "",
             f"Plain timing ({side['mode']} sizes: {side['sizes']}); each row's vmcore and PolkaVM figures "
             "measured back to back" + ("; ratio = vmcore / PolkaVM, below 1.00x is faster." if with_ref else "."),
             "", "| workload | vmcore | PolkaVM 0.35 | ratio |", "|---|---:|---:|---:|"]
    for r in side["rows"]:
        if "error" in r:
            lines.append(f"| {r['what']} | {r['error']} | | |")
            continue
        theirs = fmt_value(r["polkavm_ns"], r["unit"]) if "polkavm_ns" in r else "–"
        ratio = f"{r['ratio']:.2f}x" if r.get("ratio") else "–"
        lines.append(f"| {r['what']} | {fmt_value(r['vmcore_ns'], r['unit'])} | {theirs} | {ratio} |")
    for what, why in side["skipped"].items():
        lines.append(f"\n- {what}: skipped ({why})")
    return lines
