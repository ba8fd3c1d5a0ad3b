"""``python -m vmcore fuzz --ray [ADDRESS]``: the fuzzing campaign of
vmcore.fuzz split across a Ray cluster.

The work unit is a chunk: cases ``start..stop-1`` of one target for one
seed.  Case ``i`` draws its randomness from ``(seed, target, i)`` only
(vmcore.fuzz.case_rng), so a chunk gives the same verdicts on whichever
node runs it, and ``--replay I`` reproduces any finding locally.  Each
NodeWorker runs its chunk as vmcore.fuzz does locally -- in a forked worker
process, so a crash or a hang is one case's failure -- and sends back the
failures (with their reproducer artifacts), statistics and how far it got;
the driver writes the reproducers (``--out``) and the summary.

With ``--cases N`` every target runs exactly cases 0..N-1; with only
``--seconds`` chunks are handed out until the time is up and a chunk still
running at the deadline stops after its current case (the report says
which case ranges ran).
"""
from __future__ import annotations

import itertools
import sys
import time
from multiprocessing.connection import wait as _wait
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

from vmcore import fuzz as _fuzz

DEFAULT_CHUNK = 200


class _ChunkRun(_fuzz._Run):
    """vmcore.fuzz's per-target runner, starting at ``start`` instead of 0."""

    def __init__(self, name: str, seed: int, options: dict, start: int, stop: int, hang_seconds: float) -> None:
        self._first: Optional[int] = start
        super().__init__(name, seed, options, stop, hang_seconds)

    def _start(self, index: int) -> None:
        if self._first is not None:
            index, self._first = self._first, None
        super()._start(index)


class PlantedBug:
    """Test-only: a configuration that runs ``backend``/``isolation`` but
    reports a wrong register for one case of one seed (how the tests check
    that a divergence found on some node reaches the driver)."""

    def __init__(self, seed: int, case: int, backend: str = "interpreter", isolation: str = "inline") -> None:
        self.seed, self.case, self.backend, self.isolation = seed, case, backend, isolation

    def __call__(self, vector: dict):
        from vmcore.vectors import run_vector
        outcome = run_vector(vector, backend=self.backend, isolation=self.isolation)
        if vector.get("name") == f"fuzz-diff-s{self.seed}-{self.case}":
            outcome.regs[7] ^= 1
        return outcome


def _planted_config(plant: dict) -> "_fuzz.Config":
    bug = PlantedBug(int(plant["seed"]), int(plant["case"]), plant.get("backend", "interpreter"),
                     plant.get("isolation", "inline"))
    return _fuzz.Config(f"{bug.backend}/{bug.isolation}(planted)", bug)


def run_chunk(target: str, seed: int, start: int, stop: int, budget: Optional[float], options: dict,
              plant: Optional[dict] = None, hang_seconds: float = _fuzz.HANG_SECONDS) -> dict:
    """Run cases start..stop-1 of ``target`` here (in a NodeWorker), for at
    most ``budget`` seconds; returns what vmcore.fuzz's runner saw."""
    if target not in _fuzz.TARGETS:
        raise ValueError(f"unknown fuzz target {target!r}")
    options = dict(options)
    if plant and target == "diff":
        options["extra_configs"] = list(options.get("extra_configs", ())) + [_planted_config(plant)]
    began = time.monotonic()
    run = _ChunkRun(target, seed, options, start, stop, hang_seconds)
    try:
        while not run.finished:
            run.poll()
            if run.finished:
                break
            if budget is not None and time.monotonic() - began >= budget and not run.stopping:
                run.request_stop()
            handles = run.wait_handles()
            if handles:
                _wait(handles, timeout=0.25)
    finally:
        run.kill()
    return {"target": target, "seed": seed, "start": start, "stop": stop, "reached": run.cases,
            "failures": run.failures, "stats": run.stats, "infos": run.infos, "setup_error": run.setup_error,
            "seconds": time.monotonic() - began}


def _chunks(targets: Sequence[str], seeds: Sequence[int], cases: Optional[int], chunk: int,
            deadline: Optional[float]) -> Iterator[Tuple[str, int, int, int]]:
    """(target, seed, start, stop) in round-robin order; endless without
    ``cases`` (stops at the deadline)."""
    starts = range(0, cases, chunk) if cases is not None else itertools.count(0, chunk)
    for start in starts:
        for seed in seeds:
            for target in targets:
                if deadline is not None and time.monotonic() >= deadline:
                    return
                stop = start + chunk if cases is None else min(start + chunk, cases)
                yield target, seed, start, stop


def _ranges(spans: List[Tuple[int, int]]) -> str:
    spans = sorted(s for s in spans if s[1] > s[0])
    merged: List[List[int]] = []
    for a, b in spans:
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    return ", ".join(f"{a}..{b - 1}" for a, b in merged) or "none"


def campaign(cluster: Any, *, seconds: Optional[float] = 60.0, cases: Optional[int] = None, seed: int = 0,
             seeds: Optional[Sequence[int]] = None, targets: Sequence[str] = _fuzz.TARGETS,
             out_dir: str = _fuzz.DEFAULT_OUT, options: Optional[dict] = None, chunk: int = DEFAULT_CHUNK,
             plant: Optional[dict] = None, progress: Any = False) -> "_fuzz.Summary":
    """vmcore.fuzz.campaign on a vmcore.ray.Cluster: chunks of ``chunk``
    cases per (target, seed) spread over the actors; reproducers written
    to ``out_dir`` here.  ``seeds`` (default ``[seed]``) runs several
    seeds' case streams.  ``plant`` (test only): ``{"seed", "case"}`` makes
    one configuration wrong for that case."""
    if seconds is None and cases is None:
        raise ValueError("a campaign needs seconds= or cases=")
    if seconds is not None and not seconds > 0:
        raise ValueError("seconds must be positive")
    if cases is not None and cases < 0:
        raise ValueError("cases must not be negative")
    if not isinstance(chunk, int) or chunk < 1:
        raise ValueError("chunk must be an int >= 1")
    for t in targets:
        if t not in _fuzz.TARGETS:
            raise ValueError(f"unknown fuzz target {t!r} (one of {', '.join(_fuzz.TARGETS)})")
    seeds = list(seeds) if seeds is not None else [seed]
    options = options or {}
    start = time.monotonic()
    deadline = None if seconds is None else start + seconds
    units = list(_chunks(targets, seeds, cases, chunk, None)) if cases is not None else None
    source = iter(units) if units is not None else _chunks(targets, seeds, None, chunk, deadline)
    sent: List[Tuple[str, int, int, int]] = []

    def calls() -> Iterator[tuple]:
        for target, s, a, b in source:
            if deadline is not None and time.monotonic() >= deadline:
                return
            sent.append((target, s, a, b))
            budget = None if deadline is None else max(deadline - time.monotonic(), 0.001)
            yield (target, s, a, b, budget, options.get(target, {}), plant)

    per: Dict[str, dict] = {t: {"cases": 0, "failures": [], "stats": {}, "infos": [], "spans": [], "setup": None}
                            for t in targets}
    results = 0
    for position, value, error in cluster.run_tasks("run_fuzz_chunk", calls(), progress=progress,
                                                    total=len(units) if units is not None else None):
        results += 1
        target, s, a, b = sent[position]
        info = per[target]
        if error is not None:
            info["failures"].append(_fuzz.Failure(target, a, "lost", f"chunk {a}..{b - 1} (seed {s}) failed on "
                                                  f"the cluster: {type(error).__name__}: {error}", seed=s))
            continue
        if value["setup_error"] is not None and info["setup"] is None:
            info["setup"] = value["setup_error"]
        info["cases"] += value["reached"] - a
        info.setdefault("workers", set()).add(value.get("worker"))
        info["spans"].append((a, value["reached"]))
        info["failures"].extend(value["failures"])
        for k, v in value["stats"].items():
            info["stats"][k] = info["stats"].get(k, 0) + v
        info["infos"].extend(m for m in value["infos"] if m not in info["infos"])
    if results != len(sent):  # pragma: no cover - run_tasks yields one result per call
        raise RuntimeError(f"{len(sent)} chunks sent but {results} came back")
    elapsed = time.monotonic() - start
    summary = _fuzz.Summary()
    for target, info in per.items():
        if info["setup"] is not None:
            info["failures"].append(_fuzz.Failure(target, -1, "setup", f"setting up the {target} target failed: "
                                                  f"{info['setup']}", seed=seeds[0]))
        failed = {(f.seed, f.case, f.kind == "lost") for f in info["failures"]}
        for f in info["failures"]:
            _fuzz.write_reproducer(f, out_dir)
        summary.failures.extend(info["failures"])
        summary.failed += len(failed)
        # lost chunks' cases did not run (not in "cases"); case -1: the set-up failed
        summary.passed += info["cases"] - len({k for k in failed if k[1] >= 0 and not k[2]})
        n = info["cases"]
        summary.per_target[target] = {"cases": n, "failed": len(failed), "seconds": elapsed,
                                      "per_second": n / elapsed if elapsed > 0 else 0.0, "stats": info["stats"],
                                      "infos": info["infos"], "ranges": _ranges(info["spans"]),
                                      "chunks": sum(1 for u in sent if u[0] == target),
                                      "workers": sorted(info.get("workers", ()), key=str)}
    return summary


def main(args: Any, targets: Sequence[str], options: Dict[str, dict]) -> int:
    """``python -m vmcore fuzz --ray [ADDRESS]`` (from vmcore.fuzz.main)."""
    for flag, value in (("--ray-actors", getattr(args, "ray_actors", None)),
                        ("--ray-chunk", getattr(args, "ray_chunk", None))):
        if value is not None and value < 1:
            print(f"vmcore: error: {flag} must be at least 1", file=sys.stderr)
            return 2
    try:
        from vmcore.ray import Cluster
        cluster = Cluster(address=args.ray or None, actors=getattr(args, "ray_actors", None), isolation="inline")
    except ImportError as e:
        print(f"vmcore: error: {e}", file=sys.stderr)
        return 2
    chunk = getattr(args, "ray_chunk", None) or DEFAULT_CHUNK
    print(f"fuzzing {', '.join(targets)} on Ray ({len(cluster.actors)} actors, chunks of {chunk} cases) for "
          + (f"{args.seconds:g} s" if args.cases is None else f"{args.cases} cases (at most {args.seconds:g} s)")
          + f", seed {args.seed}", flush=True)
    try:
        summary = campaign(cluster, seconds=args.seconds, cases=args.cases, seed=args.seed, targets=targets,
                           out_dir=args.out, options=options, chunk=chunk, progress=sys.stderr.isatty())
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
    finally:
        cluster.close()
    for name, info in summary.per_target.items():
        for m in info["infos"]:
            print(f"{name}: {m}")
        stats = ", ".join(f"{k} {v}" for k, v in sorted(info["stats"].items()))
        print(f"{name}: {info['cases']} cases in {info['seconds']:.1f} s ({info['per_second']:.0f}/s), "
              f"{info['chunks']} chunks, cases {info['ranges']}" + (f"; {stats}" if stats else "")
              + f"; {info['failed']} failed")
    for f in summary.failures:
        print(f"FAIL {f.target} case {f.case}: {f.summary}" + (f" -> {f.path}" if f.path else ""))
    print(f"{summary.passed} passed, {summary.failed} failed")
    return 0 if summary.failed == 0 else 1
