"""perf/run.py's reports: the machine description in the JSON, the
Markdown table and the bar chart (PNG)."""
from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

from _programs import SIEVE_N, SUM_N
from _workloads import BENCHMARKS, COMPILE_FUNCTIONS, HOSTCALL_ITERATIONS, MEMORY_BYTES, RUNTIMES, UNITS, large_program
import _reference

import vmcore
from vmcore.backends import BACKENDS

PLOT_LABELS = {
    "hostcall": "per round trip",
    "call": "per no-op call",
    "instantiate": "per new instance",
    "compute-sum": "n = 10^8",
    "compute-sieve": "n = 1.6 x 10^7",
    "memory-read": "1 MiB to bytes",
    "compile": "25k-function program",
}


def machine_info(quick, started, duration, loadavg_start, settings, with_compile=True):
    """The run's machine, versions, load and parameters (``settings``: the
    pyperf settings per kind of benchmark that were used)."""
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass

    def version(mod):
        try:
            from importlib.metadata import version as v
            return v(mod)
        except Exception:
            return None

    return {
        "date": started.isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "memory_gib": mem,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "versions": {name: version(name) for name in ("vmcore", "wasmtime", "pywasm3", "pyperf")},
        "vmcore_configs": ["/".join(c) for c in BACKENDS],
        "vmcore_source": vmcore_source(),
        "loadavg_start": loadavg_start,
        "loadavg_end": loadavg(),
        "argv": sys.argv[1:],
        "mode": "quick" if quick else "full",
        "duration_s": round(duration, 1),
        "python_noop_call_ns": python_noop_call_ns(),
        "parameters": {
            "hostcall_iterations_per_call": HOSTCALL_ITERATIONS,
            "sum_n": SUM_N, "sieve_n": SIEVE_N, "memory_read_bytes": MEMORY_BYTES,
            "compile_functions": COMPILE_FUNCTIONS,
            "compile_polkavm_bytes": len(large_program("polkavm")) if with_compile else None,
            "compile_wasm_bytes": len(large_program("wasm")) if with_compile else None,
            "pyperf": {kind: dict(zip(("processes", "values", "warmups", "loops", "min_time"), s))
                       for kind, s in settings.items()},
        },
    }


def vmcore_source():
    """Where the measured vmcore comes from, and its git commit if any."""
    import subprocess
    where = Path(vmcore.__file__).resolve().parent.parent
    info = {"path": str(where)}
    try:
        commit = subprocess.run(["git", "-C", str(where), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10)
        if commit.returncode == 0:
            info["commit"] = commit.stdout.strip()
            status = subprocess.run(["git", "-C", str(where), "status", "--porcelain", "--untracked-files=no"],
                                    capture_output=True, text=True, timeout=10)
            info["modified_files"] = len(status.stdout.splitlines())
    except (OSError, subprocess.SubprocessError):
        pass
    return info


def loadavg():
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None


def python_noop_call_ns():
    """A plain Python no-op call on this machine, for orientation."""
    import timeit

    def f():
        pass
    n = 1_000_000
    return round(min(timeit.repeat(f, number=n, repeat=5)) / n * 1e9, 1)


def fmt(ns, bench):
    unit, scale, _ = UNITS[bench]
    v = ns / scale
    if v >= 100:
        text = f"{v:,.0f}"
    elif v >= 10:
        text = f"{v:.1f}"
    else:
        text = f"{v:#.3g}" if v < 1 else f"{v:.2f}"
    return f"{text} {unit}"


def human(ns):
    """A time with the unit that suits it (for the plot's labels)."""
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            v = ns / scale
            break
    else:
        unit, v = "ns", ns
    return f"{v:.3g} {unit}" if v < 100 else f"{v:.0f} {unit}"


def columns(results):
    cols = []
    for r in results:
        key = (r["runtime"], r["config"])
        if key not in cols:
            cols.append(key)
    order = {name: i for i, name in enumerate(RUNTIMES)}
    return sorted(cols, key=lambda c: order[c[0]])


def column_label(col):
    return f"vmcore {col[1]}" if col[0] == "vmcore" else f"{col[0]} ({col[1]})"


def load_note(m):
    parts = []
    src = m.get("vmcore_source") or {}
    if src.get("commit"):
        dirty = src.get("modified_files")
        parts.append(f" vmcore measured at commit {src['commit'][:10]}"
                     + (f" plus {dirty} modified file(s) of work in progress" if dirty else "") + ".")
    start, end = m.get("loadavg_start"), m.get("loadavg_end")
    if start and end:
        parts.append(f" Load average {start[0]:.1f} at the start and {end[0]:.1f} at the end on "
                     f"{m['cpus']} cores" + (": other work shared the machine, so expect noise."
                                             if max(start[0], end[0]) > 0.5 * (m['cpus'] or 1) else "."))
    return "".join(parts)


def write_markdown(path, data):
    results = data["results"]
    m = data["machine"]
    cols = columns(results)
    by = {(r["benchmark"], r["runtime"], r["config"]): r for r in results}
    lines = [
        f"Measured {m['date']} on {m['cpu']} ({m['cpus']} cores, {m['memory_gib']} GiB), "
        f"{m['platform']}, Python {m['python']}; vmcore {m['versions']['vmcore']}, "
        f"wasmtime {m['versions']['wasmtime']}, pywasm3 {m['versions']['pywasm3']}, "
        f"pyperf {m['versions']['pyperf']}. {m['mode']} run, {m['duration_s']:.0f} s." + load_note(m),
        "",
        "Median of all values, ± their standard deviation relative to the median; in brackets the ratio "
        "to the fastest peer (wasmtime or pywasm3) on that benchmark: below 1.00x is faster than both peers.",
        "",
        "| benchmark | " + " | ".join(column_label(c) for c in cols) + " |",
        "|---|" + "---:|" * len(cols),
    ]
    for bench in BENCHMARKS:
        row = [by.get((bench, c[0], c[1])) for c in cols]
        if not any(row):
            continue
        peers = [r["median_ns"] for r in row if r and r["runtime"] != "vmcore"]
        best = min(peers) if peers else None
        cells = []
        for r in row:
            if r is None:
                cells.append("–")
                continue
            text = fmt(r["median_ns"], bench)
            if r["median_ns"] > 0 and r["n"] > 1:
                text += f" ±{100 * r['stdev_ns'] / r['median_ns']:.0f}%"
            if best:
                text += f" ({r['median_ns'] / best:.2f}x)"
            cells.append(text)
        lines.append(f"| {bench} | " + " | ".join(cells) + " |")
    lines += ["", "What one value is:", ""]
    for bench in BENCHMARKS:
        if any(r["benchmark"] == bench for r in results):
            lines.append(f"- **{bench}** ({UNITS[bench][0]}): {UNITS[bench][2]}.")
    lines += [
        "",
        f"A plain Python no-op function call costs {m['python_noop_call_ns']} ns here.",
    ]
    counted = [r for r in results if r.get("counters")]
    if counted:
        lines += ["", "Counters (vmcore sandboxes exposing `counters`; per operation, one untimed pass):", "",
                  "| benchmark | config | counters per op |", "|---|---|---|"]
        for r in counted:
            c = r["counters"]
            if "error" in c:
                text = c["error"]
            else:
                text = ", ".join(f"{k} {v:.3g}" for k, v in sorted(c.get("per_op", {}).items())) or "–"
            lines.append(f"| {r['benchmark']} | {r['config']} | {text} |")
    if data.get("side_by_side"):
        lines += [""] + _reference.markdown(data["side_by_side"])
    if data.get("errors") or data.get("skipped"):
        lines += ["", "Not measured:", ""]
        for runtime, why in data.get("skipped", {}).items():
            lines.append(f"- {runtime}: skipped ({why})")
        for e in data.get("errors", []):
            lines.append(f"- {e['benchmark']} {e['runtime']} {e['config']}: {e['error']}")
    Path(path).write_text("\n".join(lines) + "\n")


def write_plot(path, data):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker  # noqa: F401

    results = data["results"]
    cols = columns(results)
    by = {(r["benchmark"], r["runtime"], r["config"]): r for r in results}
    benches = [b for b in BENCHMARKS if any(r["benchmark"] == b for r in results)]
    vm_colors = ["#1f4e9c", "#3f86d6", "#8fc1f0", "#0b2a5b"]
    colors, vm_i = [], 0
    for c in cols:
        if c[0] == "vmcore":
            colors.append(vm_colors[vm_i % len(vm_colors)])
            vm_i += 1
        else:
            colors.append({"wasmtime": "#e8862a", "pywasm3": "#8c5bb5"}[c[0]])
    fig, ax = plt.subplots(figsize=(max(8, 1.7 * len(benches) + 2), 7), dpi=110)
    width = 0.8 / max(1, len(cols))
    for i, (col, color) in enumerate(zip(cols, colors)):
        xs, ys, labels = [], [], []
        for j, bench in enumerate(benches):
            r = by.get((bench, col[0], col[1]))
            if r is None:
                continue
            xs.append(j - 0.4 + width * (i + 0.5))
            ys.append(r["median_ns"] / 1e9)
            labels.append(human(r["median_ns"]))
        bars = ax.bar(xs, ys, width * 0.92, color=color, label=column_label(col))
        for bar, label in zip(bars, labels):
            ax.annotate(label, (bar.get_x() + bar.get_width() / 2, bar.get_height()), xytext=(0, 2),
                        textcoords="offset points", ha="center", va="bottom", rotation=90, fontsize=7)
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(matplotlib.ticker.LogLocator(base=10, numticks=20))
    ax.set_xticks(range(len(benches)))
    ax.set_xticklabels([f"{b}\n{PLOT_LABELS[b]}" for b in benches], fontsize=8)
    ax.set_ylabel("time per operation, seconds (log scale) — lower is better")
    lo = min(r["median_ns"] for r in results) / 1e9
    hi = max(r["median_ns"] for r in results) / 1e9
    ax.set_ylim(lo / 3, hi * 60)
    ax.grid(axis="y", which="major", alpha=0.3)
    m = data["machine"]
    ax.set_title(f"vmcore vs wasmtime vs pywasm3 — {m['cpu']}, {m['cpus']} cores, Python {m['python']}, "
                 f"{m['date'][:10]}", fontsize=10)
    ax.legend(loc="upper left", fontsize=8, ncol=len(cols))
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
