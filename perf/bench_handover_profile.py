"""CPU time per hostcall round trip (or per call) on each side of the
sandbox-process hand-over, from `perf record` samples (issue #20).

Wall-clock latency on a shared 2-core machine varies by 2-3x with the
other load; CPU time spent at each place is steadier.  The workload (the
side-by-side table's hostcall or call row) runs under ``perf record -e
cpu-clock`` (following the zygote, a child process); samples are split by
side (host = the Python process, sandbox = the zygote) and by where they
land; a second run with a fifth of the round trips is subtracted (start-up).  Waiting is the host's ``Process._wait`` spin and the zygote's
``wait_for_host``; everything else is work, including the stalls on the
cache-line transfers (a store that takes the handshake line, the
``xchg`` that hands it over); kernel samples (preemption on a loaded
machine) are counted apart.  Lower work on a side is a shorter hand-over.

    python perf/bench_handover_profile.py            # hostcall and call
    python perf/bench_handover_profile.py hostcall --top 12

Needs `perf` (software events only: works in VMs without PMU access).
"""
from __future__ import annotations

import argparse
import bisect
import os
import re
import subprocess
import sys
import tempfile

FREQ = 10_000  # samples per second
SIZES = {"hostcall": 1_000_000, "call": 300_000}

_CHILD = r"""
import sys
sys.path.insert(0, sys.argv[3])
import vmcore
from _programs import load, time_noop_calls
what, n = sys.argv[1], int(sys.argv[2])
if what == "hostcall":
    sb = vmcore.Sandbox(load("hostcall"), backend="compiler", hostcalls={"inc": lambda caller: None})
    sb.call("main", 10)
    sb.call("main", n)
else:
    sb = vmcore.Sandbox(load("noop"), backend="compiler")
    time_noop_calls(sb, n)
sb.close()
"""

WAIT = ("__pyx_f_6vmcore_7_engine_7Process__wait", "wait_for_host")


def _zygote_symbols(path):
    out = subprocess.run(["nm", "-n", path], capture_output=True, text=True, check=True).stdout
    syms = sorted((int(a, 16), name) for a, _, name in (l.split() for l in out.splitlines() if len(l.split()) == 3))
    return [a for a, _ in syms], [n for _, n in syms]


def profile(what: str, n: int):
    """{(side, place): samples} for one run of ``n`` round trips."""
    import vmcore
    zygote = os.path.join(os.path.dirname(vmcore.__file__), "_zygote")
    addrs, names = _zygote_symbols(zygote)
    here = os.path.dirname(os.path.abspath(__file__))
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "perf.data")
        subprocess.run(["perf", "record", "-q", "-e", "cpu-clock", "-F", str(FREQ), "-o", data, "--",
                        sys.executable, "-c", _CHILD, what, str(n), here],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        report = subprocess.run(["perf", "report", "-i", data, "--stdio", "--sort", "comm,dso,sym",
                                 "-F", "sample,comm,dso,sym"], capture_output=True, text=True, check=True).stdout
    counts = {}
    for line in report.splitlines():
        parts = line.split(None, 3)
        if len(parts) < 4 or not parts[0].isdigit():
            continue
        samples, comm, rest = int(parts[0]), parts[1], parts[3]
        sym = rest.split("] ", 1)[-1].strip()
        if "[k]" in rest:
            sym = "(kernel)"  # preemption, timer ticks: the machine's load, not the hand-over
        if "vmcore-zygote" in line:
            m = re.match(r"0x([0-9a-f]+)", sym)
            if m:  # the zygote is static at 0x400000; perf gives file offsets
                a = 0x400000 + int(m.group(1), 16)
                sym = names[bisect.bisect_right(addrs, a) - 1]
            key = ("sandbox", sym)
        elif "vmcore-native" in line:
            key = ("sandbox", "(generated code)")
        elif comm.startswith("memfd") or comm.startswith("vmcore"):
            key = ("sandbox", sym)
        elif comm == "python":
            key = ("host", sym)
        else:
            continue  # perf's and the shell's own
        counts[key] = counts.get(key, 0) + samples
    return counts


def report(what: str, top: int) -> None:
    """Two runs, n and n/5 round trips: the difference leaves out start-up."""
    n, small = SIZES[what], SIZES[what] // 5
    big, base = profile(what, n), profile(what, small)
    counts = {k: max(0, c - base.get(k, 0)) for k, c in big.items()}
    ns = 1e9 / FREQ / (n - small)
    print(f"{what}: CPU ns per round trip ({n} - {small} round trips, perf cpu-clock at {FREQ} Hz)")
    for side in ("host", "sandbox"):
        mine = {place: c for (s, place), c in counts.items() if s == side}
        wait = sum(c for place, c in mine.items() if place in WAIT)
        kernel = mine.get("(kernel)", 0)
        work = sum(mine.values()) - wait - kernel
        print(f"  {side:8s} waiting {wait * ns:6.0f}  working {work * ns:6.0f}  (kernel {kernel * ns:.0f})")
        for place, c in sorted(mine.items(), key=lambda kv: -kv[1])[:top]:
            print(f"      {c * ns:6.1f}  {place}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("rows", nargs="*", choices=[[], *SIZES], default=[])
    parser.add_argument("--top", type=int, default=6, help="places listed per side")
    args = parser.parse_args(argv)
    for what in args.rows or list(SIZES):
        report(what, args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
