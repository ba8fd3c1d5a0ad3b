"""perf/run.py's counters: a vmcore sandbox with a `counters` attribute (the
process backend's VmCtx spin/futex counts) gets one extra untimed pass per
benchmark in the parent; the deltas go into the JSON next to the timings."""
from __future__ import annotations

from _programs import SIEVE_N, SUM_N, load
from _workloads import HOSTCALL_ITERATIONS, MEMORY_BYTES, memory_program

import vmcore


def _numeric(d):
    return {k: v for k, v in d.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def snapshot(sb):
    counters = getattr(sb, "counters", None)
    if counters is None:
        # Until Sandbox forwards them, the process backend has them itself.
        counters = getattr(getattr(sb, "_backend", None), "counters", None)
    if counters is None:
        return None
    if callable(counters):
        counters = counters()
    return _flatten(dict(counters))


def _flatten(d, prefix=""):
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def delta(before, after):
    if after is None:
        return None
    if before is None:
        return after
    out = {}
    for k, v in after.items():
        b = before.get(k)
        out[k] = v - b if isinstance(v, (int, float)) and isinstance(b, (int, float)) else v
    return out


def collect_counters(config, benches):
    """{benchmark: {"ops": n, "counters": {...}, "per_op": {...}}} for one
    vmcore configuration, or {} if its sandboxes have no counters."""
    backend, isolation = config

    def sandbox(program, **kw):
        return vmcore.Sandbox(program, backend=backend, isolation=isolation, **kw)

    probe = sandbox(load("noop"))
    try:
        if snapshot(probe) is None:
            return {}
    finally:
        probe.close()
    out = {}

    def record(name, ops, sb, run):
        before = snapshot(sb)
        run()
        d = delta(before, snapshot(sb))
        out[name] = {"ops": ops, "counters": d,
                     "per_op": {k: v / ops for k, v in _numeric(d or {}).items()}}

    jobs = [
        ("hostcall", HOSTCALL_ITERATIONS, lambda: sandbox(load("hostcall"), hostcalls={"inc": lambda caller: None}),
         lambda sb: sb.call("main", HOSTCALL_ITERATIONS)),
        ("call", 10_000, lambda: sandbox(load("noop")),
         lambda sb: [sb.call("noop") for _ in range(10_000)]),
        ("memory-read", 100, lambda: sandbox(memory_program()),
         lambda sb: [sb.memory.read(sb.memory_map.rw_data_address, MEMORY_BYTES) for _ in range(100)]),
        ("compute-sum", 1, lambda: sandbox(load("sum")), lambda sb: sb.call("main", SUM_N)),
        ("compute-sieve", 1, lambda: sandbox(load("sieve")),
         lambda sb: sb.call("main", SIEVE_N, sb.memory_map.rw_data_address)),
    ]
    for name, ops, make, run in jobs:
        if name not in benches:
            continue
        try:
            sb = make()
        except Exception as exc:
            out[name] = {"error": f"{type(exc).__name__}: {exc}"}
            continue
        try:
            record(name, ops, sb, lambda: run(sb))
        except Exception as exc:
            out[name] = {"error": f"{type(exc).__name__}: {exc}"}
        finally:
            sb.close()
    return out

