"""``python -m vmcore fuzz``: a built-in, deterministic fuzzing campaign.

Two targets:

* ``loader``: program blobs -- the bundled ``vmcore/data/*.polkavm``,
  containers generated here for every instruction set (``.polkavm`` with
  every section, JAM code blobs, JAM standard programs), random bytes --
  mutated (bit and byte flips, truncation, insertion, deletion, splicing,
  varint and length-field corruption) and fed to every loader.  A loader
  must return a :class:`~vmcore.program.Program` or raise
  :class:`~vmcore.errors.ProgramError`; what loads is walked (decoder,
  statistics, threaded-code build) too.
* ``diff``: random valid programs (every opcode of every instruction set,
  random registers with edge values, random pages, contents and
  permissions, gas small enough to run out, jump tables, branches, dynamic
  jumps, ``ecalli``) run on every available configuration -- each entry of
  :data:`vmcore.backends.BACKENDS`, plus the inline interpreter
  single-stepped and without gas metering -- which must agree on the
  status, pc, gas, registers, page-fault address, hostcall number and every
  accessible byte of memory (``--oracle PATH`` adds a Python model of the
  semantics, e.g. a source checkout's tests/oracle.py, as the reference).

This module is the campaign driver (worker processes, crash and hang
detection, reproducers, the command line); the cases and program
generation are vmcore.fuzz_cases, the targets vmcore.fuzz_loader,
vmcore.fuzz_diff, vmcore.fuzz_reference (against PolkaVM) and
vmcore.fuzz_hostile (the threat model).

Cases run in a child process, so a crash (a segfault in C) or a hang is
reported as a failure of the case that caused it, with a reproducer, and
the campaign carries on.  Case ``i`` of a target draws its randomness from
``(seed, target, i)`` only: ``--replay I`` re-runs exactly that case.

Reproducers go to ``--out`` (default ``./fuzz-out``): the raw blob (plus a
``.txt`` note) for a loader failure, a JSON vector in the JAM schema for a
diff failure, runnable with ``python -m vmcore vectors FILE``.
"""
from __future__ import annotations

import json
import multiprocessing
import os
import re
import signal
import sys
import time
import traceback
from dataclasses import dataclass, field
from multiprocessing.connection import wait as _wait
from typing import Callable, Dict, List, Optional, Sequence, Tuple

# The targets (and what they are made of, for vmcore.fuzz's callers: tests,
# vmcore.ray_fuzz): program generation in fuzz_cases, one module per target.
from vmcore.fuzz_cases import Failure, case_rng, code_blob, generate_vector  # noqa: F401
from vmcore.fuzz_diff import Config, DiffTarget, default_configs, run_inline, with_expected  # noqa: F401
from vmcore.fuzz_loader import LoaderTarget  # noqa: F401

TARGETS = ("loader", "diff")
HOSTILE_TARGETS = ("hostile-sandbox", "hostile-api")  # not in "all": run by name
DEFAULT_OUT = "fuzz-out"
HANG_SECONDS = 30.0  # no progress on one case for this long: a hang

# =====================================================================
# The campaign: workers in child processes, crash and hang detection
# =====================================================================

def _make_target(name: str, seed: int, options: dict):
    if name == "loader":
        return LoaderTarget(seed)
    if name in HOSTILE_TARGETS:  # vmcore.fuzz_hostile (threat model)
        from vmcore.fuzz_hostile import TARGETS as hostile
        return hostile[name](seed)
    if name == "reference":  # against PolkaVM: vmcore/fuzz_reference.py
        from vmcore.fuzz_reference import ReferenceTarget
        return ReferenceTarget(seed, **options)
    return DiffTarget(seed, **options)


def _worker(name: str, seed: int, options: dict, start: int, limit: Optional[int], conn, current, done, stop) -> None:
    """The child: runs cases start, start+1, ... until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    target = _make_target(name, seed, options)
    try:
        conn.send(("info", target.setup()))
    except Exception as e:
        conn.send(("setup-error", f"{type(e).__name__}: {e}"))
        conn.close()
        return
    last_stats = time.monotonic()
    index = start
    while not stop.value and (limit is None or index < limit):
        current.value = index
        try:
            failure = target.run_case(index)
        except Exception as e:  # the harness itself broke; still a finding
            failure = Failure(name, index, "exception", f"harness: {type(e).__name__}: {e}", traceback.format_exc(),
                              None, seed)
        if failure is not None:
            conn.send(("fail", failure))
        index += 1
        done.value = index
        if time.monotonic() - last_stats > 0.5:
            conn.send(("stats", target.stats()))
            last_stats = time.monotonic()
    conn.send(("stats", target.stats()))
    conn.send(("end", index))
    conn.close()


def _mp_context():
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


class _Run:
    """One target's campaign: a worker process, restarted after a crash."""

    def __init__(self, name: str, seed: int, options: dict, limit: Optional[int], hang_seconds: float) -> None:
        self.name, self.seed, self.options, self.limit = name, seed, options, limit
        self.hang_seconds = hang_seconds
        self.ctx = _mp_context()
        self.failures: List[Failure] = []
        self.infos: List[str] = []
        self.stats: Dict[str, int] = {}
        self.stats_base: Dict[str, int] = {}
        self.next_index = 0
        self.finished = False
        self.proc = None
        self.setup_error: Optional[str] = None
        self.stopping = False
        self.started = time.monotonic()
        self.done_total = 0  # cases completed by earlier workers
        self._start(0)

    def _start(self, index: int) -> None:
        self.next_index = index
        if self.limit is not None and index >= self.limit:
            self.finished = True
            self.proc = None
            return
        parent, child = self.ctx.Pipe(duplex=False)
        self.current = self.ctx.Value("q", index, lock=False)
        self.done = self.ctx.Value("q", index, lock=False)
        self.stop = self.ctx.Value("b", 0, lock=False)
        self.conn = parent
        self.proc = self.ctx.Process(target=_worker, args=(self.name, self.seed, self.options, index, self.limit,
                                                           child, self.current, self.done, self.stop), daemon=True)
        self.proc.start()
        child.close()
        self.last_done = index
        self.last_progress = time.monotonic()
        self.ended = False

    @property
    def cases(self) -> int:
        return self.done.value if self.proc is not None else self.next_index

    def request_stop(self) -> None:
        self.stopping = True
        if self.proc is not None:
            self.stop.value = 1

    def _drain(self) -> None:
        try:
            while self.conn.poll():
                kind, payload = self.conn.recv()
                if kind == "info":
                    self.infos.extend(m for m in payload if m not in self.infos)
                elif kind == "fail":
                    self.failures.append(payload)
                elif kind == "stats":
                    self.stats = {k: self.stats_base.get(k, 0) + v for k, v in payload.items()}
                    for k, v in self.stats_base.items():
                        self.stats.setdefault(k, v)
                elif kind == "end":
                    self.ended = True
                elif kind == "setup-error":
                    self.setup_error = payload
        except (EOFError, OSError):
            pass

    def poll(self) -> None:
        """Collect messages; notice a dead or stuck worker."""
        if self.proc is None:
            return
        self._drain()
        now = time.monotonic()
        if self.done.value != self.last_done:
            self.last_done, self.last_progress = self.done.value, now
        if not self.proc.is_alive():
            self.proc.join()
            self._drain()
            if self.setup_error is not None:
                self.finished = True
                self.next_index = self.done.value
                self.proc = None
                return
            if self.ended:
                self.finished = True
                self.next_index = self.done.value
                self.proc = None
                return
            code = self.proc.exitcode
            how = f"killed by {signal.Signals(-code).name}" if code is not None and code < 0 else f"exit {code}"
            self._crash(f"crash: the worker process died ({how})")
        elif now - self.last_progress > self.hang_seconds:
            self.proc.kill()
            self.proc.join()
            self._drain()
            self._crash(f"hang: no progress for {self.hang_seconds:.0f} s")

    def _crash(self, what: str) -> None:
        index = self.current.value
        target = _make_target(self.name, self.seed, self.options)
        try:
            artifact = target.crash_artifact(index)
        except Exception as e:  # pragma: no cover - generation itself is plain Python
            artifact = None
            what += f" (regenerating the input failed: {e})"
        self.failures.append(Failure(self.name, index, what.split(":")[0], f"{what} in case {index}",
                                     f"replay: python -m vmcore fuzz --target {self.name} --seed {self.seed} "
                                     f"--replay {index}", artifact, self.seed))
        self.stats_base = dict(self.stats)
        if self.stopping:  # out of time: do not start another worker
            self.finished = True
            self.next_index = index + 1
            self.proc = None
            return
        self._start(index + 1)

    def wait_handles(self) -> list:
        return [self.conn, self.proc.sentinel] if self.proc is not None else []

    def kill(self) -> None:
        if self.proc is not None and self.proc.is_alive():
            self.proc.kill()
            self.proc.join()


def write_reproducer(failure: Failure, out_dir: str) -> Optional[str]:
    """Write the failure's reproducer into out_dir; returns its path."""
    if failure.artifact is None:
        return None
    os.makedirs(out_dir, exist_ok=True)
    stem = os.path.join(out_dir, f"{failure.target}-s{failure.seed}-{failure.case}")
    note = (f"{failure.target} case {failure.case}: {failure.summary}\n\n{failure.details}\n")
    if isinstance(failure.artifact, (bytes, bytearray)):
        path = stem + ".bin"
        with open(path, "wb") as f:
            f.write(failure.artifact)
        with open(stem + ".txt", "w") as f:
            f.write(note)
    else:
        path = stem + ".json"
        with open(path, "w") as f:
            json.dump(failure.artifact, f, indent=1)
            f.write("\n")
    failure.path = path
    return path


@dataclass
class Summary:
    passed: int = 0
    failed: int = 0
    failures: List[Failure] = field(default_factory=list)
    per_target: Dict[str, dict] = field(default_factory=dict)


def campaign(*, seconds: Optional[float] = 60.0, cases: Optional[int] = None, seed: int = 0,
             targets: Sequence[str] = TARGETS, out_dir: str = DEFAULT_OUT, options: Optional[dict] = None,
             hang_seconds: float = HANG_SECONDS, progress: Optional[Callable[[str], None]] = None) -> Summary:
    """Run the targets side by side (each in its own worker process) for
    `seconds` or `cases` cases each, whichever comes first."""
    options = options or {}
    runs = [_Run(t, seed, options.get(t, {}), cases, hang_seconds) for t in targets]
    start = time.monotonic()
    last_report = start
    stopping = False
    try:
        while True:
            for run in runs:
                run.poll()
            if all(run.finished for run in runs):
                break
            now = time.monotonic()
            if seconds is not None and now - start >= seconds and not stopping:
                stopping = True
                for run in runs:
                    run.request_stop()
            if progress and now - last_report >= 2.0:
                last_report = now
                progress(_progress_line(runs, now - start))
            handles = [h for run in runs for h in run.wait_handles()]
            if handles:
                _wait(handles, timeout=0.25)
    finally:
        for run in runs:
            run.kill()
    elapsed = time.monotonic() - start
    summary = Summary()
    for run in runs:
        if run.setup_error is not None:
            run.failures.append(Failure(run.name, -1, "setup", f"setting up the {run.name} target failed: "
                                        f"{run.setup_error}", seed=seed))
        n = run.cases
        failed_cases = {f.case for f in run.failures}
        for f in run.failures:
            write_reproducer(f, out_dir)
        summary.failures.extend(run.failures)
        summary.failed += len(failed_cases)
        summary.passed += n - len({c for c in failed_cases if c >= 0})  # case -1: the set-up failed
        summary.per_target[run.name] = {"cases": n, "failed": len(failed_cases), "seconds": elapsed,
                                        "per_second": n / elapsed if elapsed > 0 else 0.0, "stats": run.stats,
                                        "infos": run.infos}
    return summary


def _progress_line(runs, elapsed: float) -> str:
    parts = []
    for run in runs:
        n = run.cases
        parts.append(f"{run.name}: {n} cases ({n / elapsed:.0f}/s), {len({f.case for f in run.failures})} failed")
    return f"[{elapsed:5.0f}s] " + " | ".join(parts)


def replay(name: str, seed: int, index: int, out_dir: str, options: dict) -> Tuple[bool, str]:
    """Run one case in this process; (ok, report)."""
    target = _make_target(name, seed, options)
    lines = [f"{name} case {index} (seed {seed}): {target.describe(index)}"]
    lines += [f"  {m}" for m in target.setup()]
    failure = target.run_case(index)
    if failure is None:
        if name == "diff":
            vector = target.generate(index)
            for config in target.configs:
                try:
                    o = config.run(vector)
                    lines.append(f"  {config.name}: {o.status} pc={o.pc} gas={o.gas}"
                                 + (f" fault={o.page_fault_address:#x}" if o.page_fault_address is not None else "")
                                 + (f" hostcall={o.hostcall}" if o.hostcall is not None else ""))
                except Exception as e:  # pragma: no cover - run_case would have failed
                    lines.append(f"  {config.name}: {type(e).__name__}: {e}")
        lines.append("PASS")
        return True, "\n".join(lines)
    path = write_reproducer(failure, out_dir)
    lines.append(f"FAIL {failure.summary}")
    lines.extend("    " + line for line in failure.details.splitlines())
    if path:
        lines.append(f"reproducer: {path}")
    return False, "\n".join(lines)


# =====================================================================
# Command line
# =====================================================================

def main(args) -> int:
    """``python -m vmcore fuzz`` (arguments parsed in vmcore.__main__)."""
    if args.seconds is not None and not args.seconds > 0:
        print("vmcore: error: --seconds must be positive", file=sys.stderr)
        return 2
    if args.cases is not None and args.cases < 0:
        print("vmcore: error: --cases must not be negative", file=sys.stderr)
        return 2
    if args.replay is not None and args.replay < 0:
        print("vmcore: error: --replay must not be negative", file=sys.stderr)
        return 2
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        print(f"vmcore: error: --out {args.out} exists and is not a directory", file=sys.stderr)
        return 2
    targets = list(TARGETS) if args.target == "all" else [args.target]
    if args.target in HOSTILE_TARGETS:
        from vmcore.fuzz_hostile import target_unavailable
        why_not = target_unavailable(args.target)
        if why_not is not None:  # refused on this machine: a skip, not a failure
            print(f"{args.target}: skipped: {why_not}")
            return 0
    options: Dict[str, dict] = {}
    if args.oracle is not None:
        if not os.path.isfile(args.oracle):
            print(f"vmcore: error: no oracle at {args.oracle} (--oracle PATH: e.g. a source checkout's "
                  "tests/oracle.py)", file=sys.stderr)
            return 2
        options["diff"] = {"oracle": args.oracle}
    if args.target == "reference":
        from vmcore.fuzz_reference import ENV, find_reference
        wanted = getattr(args, "reference", None)
        binary = find_reference(wanted)
        if binary is None:
            print(f"vmcore: error: no reference binary at {wanted or '$' + ENV + ' or ../shared/tools/refharness'}"
                  " (--reference PATH: PolkaVM's refharness)", file=sys.stderr)
            return 2
        options["reference"] = {"binary": binary, "gas_model": getattr(args, "gas_model", "naive")}

    if args.replay is not None:
        ok = True
        for t in targets:
            good, report = replay(t, args.seed, args.replay, args.out, options.get(t, {}))
            print(report)
            ok = ok and good
        return 0 if ok else 1

    if getattr(args, "ray", None) is not None:  # --ray [ADDRESS]: split across a Ray cluster
        from vmcore.ray_fuzz import main as ray_main
        return ray_main(args, targets, options)

    tty = sys.stderr.isatty()
    last = [0.0]

    def progress(line: str) -> None:
        if tty:
            print("\r" + line, end="", file=sys.stderr, flush=True)
        elif time.monotonic() - last[0] >= 10:
            last[0] = time.monotonic()
            print(line, file=sys.stderr, flush=True)

    print(f"fuzzing {', '.join(targets)} for "
          + (f"{args.seconds:g} s" if args.cases is None else f"{args.cases} cases (at most {args.seconds:g} s)")
          + f", seed {args.seed}", flush=True)
    try:
        summary = campaign(seconds=args.seconds, cases=args.cases, seed=args.seed, targets=targets,
                           out_dir=args.out, options=options, progress=progress)
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
    if tty:
        print(file=sys.stderr)
    for name, info in summary.per_target.items():
        for m in info["infos"]:
            print(f"{name}: {m}")
        stats = ", ".join(f"{k} {v}" for k, v in sorted(info["stats"].items()))
        print(f"{name}: {info['cases']} cases in {info['seconds']:.1f} s ({info['per_second']:.0f}/s)"
              + (f"; {stats}" if stats else "") + f"; {info['failed']} failed")
    for f in summary.failures:
        print(f"FAIL {f.target} case {f.case}: {f.summary}" + (f" -> {f.path}" if f.path else ""))
    print(f"{summary.passed} passed, {summary.failed} failed")
    return 0 if summary.failed == 0 else 1
