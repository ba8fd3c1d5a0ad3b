"""vmcore side by side with wasmtime and pywasm3 (pyperf), and with PolkaVM.

    python perf/run.py [--quick] [--json OUT] [--md OUT] [--plot OUT.png]
                       [--only NAME[,NAME...]] [--reference REFHARNESS]
                       [--doom PATH] [--wad PATH] [--tiny] [pyperf options]

Benchmarks, for every vmcore configuration in vmcore.backends.BACKENDS and for
wasmtime (Cranelift) and pywasm3 (wasm3 interpreter), on equivalent guest code
(vmcore/data/*.polkavm and perf/wasm/*.wat):

* hostcall       guest loop calling a trivial Python host function, per round trip
* call           host-to-guest call of an export that returns at once, per call
* instantiate    new instance of an already-loaded/compiled program, create + drop
* compute-sum    `sum`,   n = 100,000,000 (result checked on every run)
* compute-sieve  `sieve`, n = 16,000,000  (result checked on every run)
* memory-read    1 MiB of guest memory copied out to a Python bytes-like object
* compile        load + compile + instantiate + one call of main in a generated
                 program: main calls 25,000 functions of 8 ALU ops each once
                 (PolkaVM: ~1.2 MB blob, 1.0 MB of code; wasm: ~1.9 MB), so
                 lazily-compiling wasm3 compiles everything too

Then, in the parent, the side-by-side table (perf/_reference.py, plain
timing): DOOM ms per frame (compiler without and with gas, interpreter),
sum, sieve, hostcall, call, instantiate and oneshot, each next to PolkaVM
0.35's figure and the ratio when --reference gives the shared harness
(`--only side-by-side` runs only that table; `--tiny` shrinks its sizes to
test the plumbing).  DOOM reads ../shared/programs/real/doom.polkavm and
the freedoom WAD unless --doom/--wad or $VMCORE_DOOM/$VMCORE_DOOM_WAD say
otherwise, and is skipped with the reason when they are missing.

Everything runs in one process tree: pyperf's Runner spawns one worker process
per value batch (re-running this script with --worker), the parent collects
the values, then writes the JSON/Markdown/PNG reports.

--only takes benchmark names (hostcall, call, ...), runtime names (vmcore,
wasmtime, pywasm3) or fnmatch patterns on the full pyperf name, e.g.
`--only 'hostcall[vmcore*'`; a benchmark runs if any given name matches.

This file is the driver; the benchmark bodies are in _workloads.py, the
counters in _counters.py, the reports in _report.py.
"""
from __future__ import annotations

import argparse
import datetime
import fnmatch
import importlib
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _counters import collect_counters  # noqa: E402
from _report import load_note, loadavg, machine_info, write_markdown, write_plot  # noqa: E402
from _workloads import (BENCHMARKS, HOSTCALL_ITERATIONS, RUNTIME_CLASSES, RUNTIMES, UNITS,  # noqa: E402
                        IMPORT_NAMES, large_program, lazy)
import _reference  # noqa: E402

from vmcore.backends import BACKENDS  # noqa: E402

SIDE_BY_SIDE = "side-by-side"  # perf/_reference.py's table, for --only

# pyperf settings per kind of benchmark: (processes, values, warmups, loops (0 = calibrate), min_time).
SETTINGS = {
    "full": {
        "latency": (20, 3, 1, 0, 0.1),
        "compute": (5, 3, 1, 1, 0.1),
        "compile": (5, 3, 1, 0, 0.2),
    },
    "quick": {
        "latency": (3, 3, 1, 0, 0.05),
        "compute": (1, 2, 0, 1, 0.1),
        "compile": (1, 2, 1, 0, 0.1),
    },
}
WORKER_TIMEOUT = 900  # seconds per worker process unless --timeout is given
KIND = {"compute-sum": "compute", "compute-sieve": "compute", "compile": "compile"}


# ---------------------------------------------------------------------------
# The plan: which (benchmark, runtime, config) run, identical in the parent
# and every worker (pyperf identifies a worker's task by its index).


def available_runtimes(skipped: dict) -> list:
    """[(runtime, config or None)] for this machine; why others are skipped
    goes into `skipped`."""
    plan = [("vmcore", config) for config in BACKENDS]
    for runtime in ("wasmtime", "pywasm3"):
        try:
            importlib.import_module(IMPORT_NAMES[runtime])
        except Exception as exc:  # not installed, or fails to import/build
            skipped[runtime] = f"{type(exc).__name__}: {exc}"
            continue
        plan.append((runtime, None))
    return plan


def full_name(bench, runtime, config):
    if runtime == "vmcore":
        return f"{bench}[vmcore:{'/'.join(config)}]"
    return f"{bench}[{runtime}]"


def config_text(runtime, config):
    return "/".join(config) if runtime == "vmcore" else RUNTIME_CLASSES[runtime].config


def selected(only, bench, runtime, config) -> bool:
    if not only:
        return True
    name = full_name(bench, runtime, config)
    for item in only:
        if item in (bench, runtime, name) or fnmatch.fnmatchcase(name, item):
            return True
    return False


def parse_runtimes(text):
    plan = []
    for item in filter(None, text.split(",")):
        runtime, _, config = item.partition(":")
        plan.append((runtime, tuple(config.split("/")) if config else None))
    return plan


def format_runtimes(plan):
    return ",".join(f"{r}:{'/'.join(c)}" if c else r for r, c in plan)


# ---------------------------------------------------------------------------


def main():
    def add_arguments(parser):
        group = parser.add_argument_group("perf/run.py")
        group.add_argument("--quick", action="store_true", help="fewer processes and values (< 5 minutes)")
        group.add_argument("--json", metavar="OUT", help="write results as JSON")
        group.add_argument("--md", metavar="OUT", help="write a Markdown table")
        group.add_argument("--plot", metavar="OUT.png", help="write a bar chart (PNG)")
        group.add_argument("--only", action="append", default=[], metavar="NAME",
                           help="benchmark or runtime names, or fnmatch patterns on the full benchmark name "
                                "(e.g. 'hostcall[vmcore*'); comma-separated, repeatable")
        group.add_argument("--from-json", metavar="IN",
                           help="run nothing: write --md/--plot from the JSON of an earlier run")
        group.add_argument("--reference", metavar="REFHARNESS",
                           help="the shared PolkaVM harness: adds PolkaVM's figures to the side-by-side table")
        group.add_argument("--doom", metavar="PATH", help="doom.polkavm (default ../shared/programs/real/)")
        group.add_argument("--wad", metavar="PATH", help="the DOOM WAD (default Debian's freedoom1.wad)")
        group.add_argument("--tiny", action="store_true", help="side-by-side table with tiny sizes (plumbing test)")
        group.add_argument("--runtimes", help=argparse.SUPPRESS)  # the parent's plan, for workers

    extra = argparse.ArgumentParser(add_help=False)
    add_arguments(extra)
    ours, rest = extra.parse_known_args()
    only = [x for item in ours.only for x in item.split(",") if x]
    names = BENCHMARKS + RUNTIMES + (SIDE_BY_SIDE,)
    unknown = [x for x in only if not any(ch in x for ch in "*?[") and x not in names]
    if unknown:
        sys.exit(f"--only: unknown name(s) {', '.join(unknown)}; expected {', '.join(names)} "
                 "or a pattern on the full name, e.g. 'hostcall[vmcore*'")
    with_side = not only or SIDE_BY_SIDE in only
    if only == [SIDE_BY_SIDE] and "--worker" not in rest:
        return side_by_side_only(ours)

    if ours.from_json:
        data = json.loads(Path(ours.from_json).read_text())
        if ours.md:
            write_markdown(ours.md, data)
        if ours.plot:
            write_plot(ours.plot, data)
        return

    def add_cmdline_args(cmd, args):
        if ours.quick:
            cmd.append("--quick")
        for item in only:
            cmd.extend(("--only", item))
        cmd.extend(("--runtimes", plan_text))

    import pyperf  # here: the side-by-side table alone needs no pyperf
    runner = pyperf.Runner(add_cmdline_args=add_cmdline_args, program_args=(str(Path(__file__).resolve()),))
    runner.argparser.description = __doc__.split("\n\n")[0]
    add_arguments(runner.argparser)  # for --help; parsed above
    args = runner.parse_args()
    worker = args.worker
    skipped: dict = {}
    if ours.runtimes is not None:
        plan = parse_runtimes(ours.runtimes)
    else:
        plan = available_runtimes(skipped)
    plan_text = format_runtimes(plan)
    settings = SETTINGS["quick" if ours.quick else "full"]
    if not worker and not args.timeout:
        args.timeout = WORKER_TIMEOUT  # a hung worker fails its benchmark, not the suite
    if not worker and os.environ.get("PYTHONPATH"):
        # Measure the vmcore the parent imports (e.g. a build elsewhere on PYTHONPATH).
        args.inherit_environ = sorted(set(args.inherit_environ or []) | {"PYTHONPATH"})
    user_set = {opt for opt in ("processes", "values", "warmups", "loops", "min_time", "fast", "rigorous")
                if any(a == f"--{opt.replace('_', '-')}" or a.startswith(f"--{opt.replace('_', '-')}=") for a in rest)}
    for short, opt in (("-p", "processes"), ("-n", "values"), ("-w", "warmups"), ("-l", "loops")):
        if any(a.startswith(short) and not a.startswith("--") for a in rest):
            user_set.add(opt)

    if not worker:
        started = datetime.datetime.now(datetime.timezone.utc)
        t_start = time.monotonic()
        load_start = loadavg()
        for runtime, why in skipped.items():
            print(f"skipping {runtime}: {why}", file=sys.stderr)
        if any(selected(only, "compile", r, c) for r, c in plan):
            large_program("polkavm")
            if any(r != "vmcore" for r, _ in plan):
                large_program("wasm")

    results, errors = [], []
    for bench in BENCHMARKS:
        for runtime, config in plan:
            if not selected(only, bench, runtime, config):
                continue
            name = full_name(bench, runtime, config)
            if not worker:
                processes, values, warmups, loops, min_time = settings[KIND.get(bench, "latency")]
                if not ({"fast", "rigorous"} & user_set):
                    for opt, value in (("processes", processes), ("values", values), ("warmups", warmups),
                                       ("loops", loops), ("min_time", min_time)):
                        if opt not in user_set:
                            setattr(runner.args, opt, value)
            inner = HOSTCALL_ITERATIONS if bench == "hostcall" else None
            try:
                result = runner.bench_time_func(name, lazy(runtime, config, bench), inner_loops=inner,
                                                metadata={"description": UNITS[bench][2]})
            except (RuntimeError, ValueError, SystemExit) as exc:
                if worker or (isinstance(exc, SystemExit) and exc.code != 124):
                    raise
                if isinstance(exc, SystemExit):
                    exc = f"timed out after {runner.args.timeout} s"
                # pyperf did not count this task: keep the task indices in
                # step with the workers'.
                runner._worker_task += 1
                print(f"ERROR {name}: {exc}", file=sys.stderr)
                errors.append({"benchmark": bench, "runtime": runtime, "config": config_text(runtime, config),
                               "error": f"{exc} (the worker's traceback is in the run's output)"})
                continue
            if result is None or worker:
                continue
            values_ = result.get_values()
            results.append({
                "benchmark": bench,
                "runtime": runtime,
                "config": config_text(runtime, config),
                "median_ns": result.median() * 1e9,
                "stdev_ns": (statistics.stdev(values_) if len(values_) > 1 else 0.0) * 1e9,
                "n": len(values_),
                "unit": UNITS[bench][0],
                "what": UNITS[bench][2],
            })
    if worker:
        return

    # Counters for vmcore configurations that expose them.
    for runtime, config in plan:
        if runtime != "vmcore" or not any(r["runtime"] == "vmcore" and r["config"] == "/".join(config)
                                          for r in results):
            continue
        try:
            counters = collect_counters(config, {r["benchmark"] for r in results
                                                 if r["runtime"] == "vmcore" and r["config"] == "/".join(config)})
        except Exception as exc:
            print(f"counters for {'/'.join(config)}: {type(exc).__name__}: {exc}", file=sys.stderr)
            continue
        for r in results:
            if r["runtime"] == "vmcore" and r["config"] == "/".join(config) and r["benchmark"] in counters:
                r["counters"] = counters[r["benchmark"]]

    side = side_by_side(ours) if with_side else None
    duration = time.monotonic() - t_start
    data = {"machine": machine_info(ours.quick, started, duration, load_start, settings), "results": results}
    if side:
        data["side_by_side"] = side
    if errors:
        data["errors"] = errors
    if skipped:
        data["skipped"] = skipped
    for r in results:
        if not math.isfinite(r["median_ns"]):
            raise SystemExit(f"non-finite result {r}")
    if not results:
        raise SystemExit("no benchmark ran" + (f" ({len(errors)} failed)" if errors else ""))
    if ours.json:
        Path(ours.json).write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    if ours.md:
        write_markdown(ours.md, data)
    if ours.plot:
        write_plot(ours.plot, data)
    print(f"\n{len(results)} benchmarks in {duration:.0f} s"
          + (f", {len(errors)} failed" if errors else "") + (f", skipped: {', '.join(skipped)}" if skipped else ""))
    if errors:
        sys.exit(1)


def side_by_side(ours) -> dict:
    mode = "tiny" if ours.tiny else "quick" if ours.quick else "full"
    return _reference.measure(mode, ours.reference or os.environ.get("VMCORE_REFHARNESS"), ours.doom, ours.wad,
                              log=lambda text: print(text, file=sys.stderr))


def side_by_side_only(ours) -> None:
    """--only side-by-side: that table alone, no pyperf benchmarks."""
    started = datetime.datetime.now(datetime.timezone.utc)
    t_start, load_start = time.monotonic(), loadavg()
    side = side_by_side(ours)
    m = machine_info(ours.quick, started, time.monotonic() - t_start, load_start,
                     SETTINGS["quick" if ours.quick else "full"], with_compile=False)
    data = {"machine": m, "results": [], "side_by_side": side}
    if ours.json:
        Path(ours.json).write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    if ours.md:
        Path(ours.md).write_text("\n".join([f"Measured {m['date']} on {m['cpu']} ({m['cpus']} cores), Python "
                                            f"{m['python']}, {m['duration_s']:.0f} s." + load_note(m), ""]
                                           + _reference.markdown(side)) + "\n")
    failed = [r["row"] for r in side["rows"] if "error" in r]
    print(f"\n{len(side['rows'])} side-by-side rows" + (f", failed: {', '.join(failed)}" if failed else ""))
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
