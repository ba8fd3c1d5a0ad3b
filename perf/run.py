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
"""
from __future__ import annotations

import argparse
import datetime
import fnmatch
import hashlib
import importlib
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _programs import SIEVE_N, SIEVE_RESULT, SUM_N, SUM_RESULT, load  # noqa: E402
import _reference  # noqa: E402

import vmcore  # noqa: E402
from vmcore.backends import BACKENDS  # noqa: E402

WASM_DIR = HERE / "wasm"

BENCHMARKS = ("hostcall", "call", "instantiate", "compute-sum", "compute-sieve", "memory-read", "compile")
# How each benchmark is shown: unit name, ns per unit, what one value is.
UNITS = {
    "hostcall": ("ns", 1, "per guest->host->guest round trip"),
    "call": ("ns", 1, "per host->guest call of a no-op export"),
    "instantiate": ("µs", 1e3, "new instance of a loaded program, create + drop"),
    "compute-sum": ("s", 1e9, f"sum, n = {SUM_N:,}"),
    "compute-sieve": ("s", 1e9, f"sieve, n = {SIEVE_N:,}"),
    "memory-read": ("µs", 1e3, "1 MiB of guest memory into a Python bytes-like object"),
    "compile": ("ms", 1e6, "load + compile + instantiate + one call of a 25,000-function program"),
}
RUNTIMES = ("vmcore", "wasmtime", "pywasm3")
SIDE_BY_SIDE = "side-by-side"  # perf/_reference.py's table, for --only
SNAPSHOT = "snapshot"  # perf/_snapshot.py's DOOM snapshot/restore/fork/view table, for --only
PLOT_LABELS = {
    "hostcall": "per round trip",
    "call": "per no-op call",
    "instantiate": "per new instance",
    "compute-sum": "n = 10^8",
    "compute-sieve": "n = 1.6 x 10^7",
    "memory-read": "1 MiB to bytes",
    "compile": "25k-function program",
}

HOSTCALL_ITERATIONS = 10_000
MEMORY_BYTES = 1 << 20
COMPILE_FUNCTIONS = 25_000

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
# Guest code for the wasm runtimes and the generated large program


def wat(name: str) -> str:
    return (WASM_DIR / f"{name}.wat").read_text()


_WASM_CACHE: dict = {}


def wasm_bytes(name: str) -> bytes:
    """perf/wasm/NAME.wat as a wasm binary (wasmtime's wat2wasm; pywasm3 has
    no text parser)."""
    blob = _WASM_CACHE.get(name)
    if blob is None:
        import wasmtime
        blob = _WASM_CACHE[name] = bytes(wasmtime.wat2wasm(wat(name)))
    return blob


# The compile benchmark's program, as PolkaVM assembler and as WAT: main(x)
# calls each of COMPILE_FUNCTIONS functions once, chaining a0 = f_k(a0, 7, 11);
# every f_k is the same 8 ALU operations on three 64-bit values.  Running main
# once makes lazily-compiling runtimes (wasm3) compile every function, and its
# result (checked against a Python model) shows each runtime ran the same code.
_PVM_FUNCTION = """\
    a0 = a0 + a1
    a1 = a1 * a0
    a2 = a2 ^ a1
    a0 = a0 + 12345
    a1 = a1 >> 3
    a2 = a2 - a1
    a0 = a0 ^ a2
    a1 = a1 | a0
    ret
"""
_PVM_CALL = """\
    a1 = 7
    a2 = 11
    ra = @r{k}
    jump @f{k}
@r{k}:
"""
_WAT_FUNCTION = """ (func (param i64 i64 i64) (result i64)
  local.get 0 local.get 1 i64.add local.set 0
  local.get 1 local.get 0 i64.mul local.set 1
  local.get 2 local.get 1 i64.xor local.set 2
  local.get 0 i64.const 12345 i64.add local.set 0
  local.get 1 i64.const 3 i64.shr_u local.set 1
  local.get 2 local.get 1 i64.sub local.set 2
  local.get 0 local.get 2 i64.xor local.set 0
  local.get 1 local.get 0 i64.or local.set 1
  local.get 0)
"""
_WAT_CALL = "  local.get 0 i64.const 7 i64.const 11 call {f} local.set 0\n"
COMPILE_ARG = 5


def compile_expected(a0: int = COMPILE_ARG) -> int:
    """What the compile benchmark's main(a0) returns (Python model)."""
    m = (1 << 64) - 1
    for _ in range(COMPILE_FUNCTIONS):
        a1, a2 = 7, 11
        a0 = (a0 + a1) & m
        a1 = (a1 * a0) & m
        a2 ^= a1
        a0 = (a0 + 12345) & m
        a1 >>= 3
        a2 = (a2 - a1) & m
        a0 ^= a2
        a1 |= a0
    return a0


def _cache_path(kind: str) -> Path:
    key = hashlib.sha256("|".join((kind, str(COMPILE_FUNCTIONS), _PVM_FUNCTION, _PVM_CALL, _WAT_FUNCTION, _WAT_CALL,
                                   vmcore.__version__)).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"vmcore-perf-large-{key}.{kind}"


def large_program(kind: str) -> bytes:
    """The compile benchmark's program ("polkavm" or "wasm"), generated once
    and cached in the temp directory (assembling takes a few seconds, and
    every worker process needs it)."""
    path = _cache_path(kind)
    if path.exists():
        return path.read_bytes()
    n = COMPILE_FUNCTIONS
    if kind == "polkavm":
        from vmcore.asm import assemble
        src = ("%isa = jam_v1\npub @main:\n    s0 = ra\n"
               + "".join(_PVM_CALL.format(k=k) for k in range(n)) + "    ra = s0\n    ret\n"
               + "".join(f"@f{k}:\n{_PVM_FUNCTION}" for k in range(n)))
        blob = assemble(src)
    else:
        import wasmtime
        src = ('(module\n (func (export "main") (param i64) (result i64)\n'
               + "".join(_WAT_CALL.format(f=k + 1) for k in range(n)) + "  local.get 0)\n"
               + _WAT_FUNCTION * n + ")\n")
        blob = bytes(wasmtime.wat2wasm(src))
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_bytes(blob)
    os.replace(tmp, path)
    return blob


# ---------------------------------------------------------------------------
# Benchmark bodies: factory(config) -> time_func(loops) -> seconds.  Set-up
# happens inside time_func (workers run only their own task), results are
# checked there too, and a failed check raises (the worker exits non-zero and
# the parent records the error).


class Mismatch(RuntimeError):
    pass


def check(what: str, got, expected) -> None:
    if got != expected:
        raise Mismatch(f"{what}: got {got!r}, expected {expected!r}")


def memory_program() -> vmcore.Program:
    from vmcore.asm import assemble
    return vmcore.Program.from_bytes(assemble(
        f"%isa = jam_v1\n%rw_data_size = {MEMORY_BYTES}\npub @main:\n    ret\n"))


class ComputeKernels:
    """compute-sum and compute-sieve for every runtime: its _compute(name,
    n, expected) times main(n[, buffer]) of that kernel."""

    def compute_sum(self):
        return self._compute("sum", SUM_N, SUM_RESULT)

    def compute_sieve(self):
        return self._compute("sieve", SIEVE_N, SIEVE_RESULT)


class VmcoreBench(ComputeKernels):
    runtime = "vmcore"

    def __init__(self, config):
        self.backend, self.isolation = config
        self.config = f"{self.backend}/{self.isolation}"

    def sandbox(self, program, **kw):
        return vmcore.Sandbox(program, backend=self.backend, isolation=self.isolation, **kw)

    def hostcall(self):
        program = load("hostcall")
        calls = [0]

        def counting(caller):
            calls[0] += 1

        sb = self.sandbox(program, hostcalls={"inc": counting})
        try:
            sb.call("main", 1000)
            check("hostcall count", calls[0], 1000)
        finally:
            sb.close()

        def timed(loops):
            sb = self.sandbox(program, hostcalls={"inc": lambda caller: None})
            try:
                call = sb.call
                t0 = time.perf_counter()
                for _ in range(loops):
                    call("main", HOSTCALL_ITERATIONS)
                return time.perf_counter() - t0
            finally:
                sb.close()
        return timed

    def call(self):
        program = load("noop")

        def timed(loops):
            sb = self.sandbox(program)
            try:
                call = sb.call
                call("noop")
                t0 = time.perf_counter()
                for _ in range(loops):
                    call("noop")
                return time.perf_counter() - t0
            finally:
                sb.close()
        return timed

    def instantiate(self):
        program = load("noop")
        self.sandbox(program).close()  # compile once
        sandbox = self.sandbox

        def timed(loops):
            t0 = time.perf_counter()
            for _ in range(loops):
                sandbox(program).close()
            return time.perf_counter() - t0
        return timed

    def _compute(self, name, n, expected):
        program = load(name)

        def timed(loops):
            sb = self.sandbox(program)
            try:
                args = (n,) if name == "sum" else (n, sb.memory_map.rw_data_address)
                total = 0.0
                for _ in range(loops):
                    sb.reset()
                    t0 = time.perf_counter()
                    result = sb.call("main", *args)
                    total += time.perf_counter() - t0
                    check(f"{name}({n})", result, expected)
                return total
            finally:
                sb.close()
        return timed

    def memory_read(self):
        program = memory_program()

        def timed(loops):
            sb = self.sandbox(program)
            try:
                address = sb.memory_map.rw_data_address
                read = sb.memory.read
                check("memory-read length", len(read(address, MEMORY_BYTES)), MEMORY_BYTES)
                t0 = time.perf_counter()
                for _ in range(loops):
                    read(address, MEMORY_BYTES)
                return time.perf_counter() - t0
            finally:
                sb.close()
        return timed

    def compile(self):
        blob = large_program("polkavm")
        sandbox = self.sandbox
        expected = compile_expected()

        def timed(loops):
            t0 = time.perf_counter()
            for _ in range(loops):
                sb = sandbox(vmcore.Program.from_bytes(blob))
                result = sb.call("main", COMPILE_ARG)
                sb.close()
            dt = time.perf_counter() - t0
            check("compile: main()", result, expected)
            return dt
        return timed


class WasmtimeBench(ComputeKernels):
    """wasmtime-py, default Engine (Cranelift, parallel compilation on).
    One Store per instance, as a sandbox per guest would have."""
    runtime = "wasmtime"
    config = "cranelift"

    def __init__(self, config=None):
        import wasmtime
        self.wt = wasmtime
        self.engine = wasmtime.Engine()

    def module(self, name):
        return self.wt.Module(self.engine, wasm_bytes(name))

    def instance(self, module, imports=()):
        store = self.wt.Store(self.engine)
        instance = self.wt.Instance(store, module, [imp(store) for imp in imports])
        return store, instance.exports(store)

    def hostcall(self):
        wt = self.wt
        module = self.module("hostcall")
        calls = [0]

        def counting():
            calls[0] += 1

        functype = wt.FuncType([], [])
        store, exports = self.instance(module, [lambda store: wt.Func(store, functype, counting)])
        exports["main"](store, 1000)
        check("hostcall count", calls[0], 1000)

        def timed(loops):
            store, exports = self.instance(module, [lambda store: wt.Func(store, functype, lambda: None)])
            main = exports["main"]
            t0 = time.perf_counter()
            for _ in range(loops):
                main(store, HOSTCALL_ITERATIONS)
            return time.perf_counter() - t0
        return timed

    def call(self):
        module = self.module("noop")

        def timed(loops):
            store, exports = self.instance(module)
            noop = exports["noop"]
            noop(store)
            t0 = time.perf_counter()
            for _ in range(loops):
                noop(store)
            return time.perf_counter() - t0
        return timed

    def instantiate(self):
        wt = self.wt
        module = self.module("noop")
        engine = self.engine

        def timed(loops):
            Store, Instance = wt.Store, wt.Instance
            t0 = time.perf_counter()
            for _ in range(loops):
                Instance(Store(engine), module, [])
            return time.perf_counter() - t0
        return timed

    def _compute(self, name, n, expected):
        module = self.module(name)
        args = (n,) if name == "sum" else (n, 0)  # the sieve's buffer at address 0

        def timed(loops):
            total = 0.0
            for _ in range(loops):
                store, exports = self.instance(module)  # fresh, zeroed memory
                main = exports["main"]
                t0 = time.perf_counter()
                result = main(store, *args)
                total += time.perf_counter() - t0
                check(f"{name}{args}", result, expected)
            return total
        return timed

    def memory_read(self):
        module = self.module("memory")

        def timed(loops):
            store, exports = self.instance(module)
            memory = exports["memory"]
            check("memory-read length", len(memory.read(store, 0, MEMORY_BYTES)), MEMORY_BYTES)
            t0 = time.perf_counter()
            for _ in range(loops):
                memory.read(store, 0, MEMORY_BYTES)
            return time.perf_counter() - t0
        return timed

    def compile(self):
        wt = self.wt
        blob = large_program("wasm")
        engine = self.engine
        expected = compile_expected()

        def timed(loops):
            Store, Instance, Module = wt.Store, wt.Instance, wt.Module
            t0 = time.perf_counter()
            for _ in range(loops):
                store = Store(engine)
                result = Instance(store, Module(engine, blob), []).exports(store)["main"](store, COMPILE_ARG)
            dt = time.perf_counter() - t0
            check("compile: main()", result & 0xFFFFFFFFFFFFFFFF, expected)
            return dt
        return timed


class Wasm3Bench(ComputeKernels):
    """pywasm3: a Module can be loaded into one Runtime only, so a new
    instance is new_runtime + parse_module + load.  wasm3 compiles a function
    when it is first looked up or called."""
    runtime = "pywasm3"
    config = "interpreter"
    STACK = 64 * 1024

    def __init__(self, config=None):
        import wasm3
        self.env = wasm3.Environment()

    def instance(self, name, imports=()):
        rt = self.env.new_runtime(self.STACK)
        mod = self.env.parse_module(wasm_bytes(name))
        rt.load(mod)
        for module_name, field, signature, fn in imports:
            mod.link_function(module_name, field, signature, fn)
        return rt

    def hostcall(self):
        calls = [0]

        def counting():
            calls[0] += 1

        rt = self.instance("hostcall", [("env", "inc", "v()", counting)])
        rt.find_function("main")(1000)
        check("hostcall count", calls[0], 1000)

        def timed(loops):
            rt = self.instance("hostcall", [("env", "inc", "v()", lambda: None)])
            main = rt.find_function("main")
            t0 = time.perf_counter()
            for _ in range(loops):
                main(HOSTCALL_ITERATIONS)
            return time.perf_counter() - t0
        return timed

    def call(self):
        def timed(loops):
            rt = self.instance("noop")
            noop = rt.find_function("noop")
            noop()
            t0 = time.perf_counter()
            for _ in range(loops):
                noop()
            return time.perf_counter() - t0
        return timed

    def instantiate(self):
        env, blob, stack = self.env, wasm_bytes("noop"), self.STACK

        def timed(loops):
            t0 = time.perf_counter()
            for _ in range(loops):
                rt = env.new_runtime(stack)
                rt.load(env.parse_module(blob))
            return time.perf_counter() - t0
        return timed

    def _compute(self, name, n, expected):
        args = (n,) if name == "sum" else (n, 0)  # the sieve's buffer at address 0

        def timed(loops):
            total = 0.0
            for _ in range(loops):
                main = self.instance(name).find_function("main")  # fresh, zeroed memory
                t0 = time.perf_counter()
                result = main(*args)
                total += time.perf_counter() - t0
                check(f"{name}{args}", result, expected)
            return total
        return timed

    def memory_read(self):
        def timed(loops):
            rt = self.instance("memory")
            check("memory-read length", len(bytes(rt.get_memory(0)[0:MEMORY_BYTES])), MEMORY_BYTES)
            get_memory = rt.get_memory
            t0 = time.perf_counter()
            for _ in range(loops):
                bytes(get_memory(0)[0:MEMORY_BYTES])
            return time.perf_counter() - t0
        return timed

    def compile(self):
        blob = large_program("wasm")
        env, stack = self.env, self.STACK
        expected = compile_expected()

        def timed(loops):
            t0 = time.perf_counter()
            for _ in range(loops):
                rt = env.new_runtime(stack)
                rt.load(env.parse_module(blob))
                result = rt.find_function("main")(COMPILE_ARG)
            dt = time.perf_counter() - t0
            check("compile: main()", result & 0xFFFFFFFFFFFFFFFF, expected)
            return dt
        return timed


RUNTIME_CLASSES = {"vmcore": VmcoreBench, "wasmtime": WasmtimeBench, "pywasm3": Wasm3Bench}
IMPORT_NAMES = {"wasmtime": "wasmtime", "pywasm3": "wasm3"}


def lazy(runtime, config, bench):
    """time_func that builds the runtime and the benchmark on first use (so a
    worker sets up only its own task)."""
    state = {}

    def timed(loops):
        fn = state.get("fn")
        if fn is None:
            fn = state["fn"] = getattr(RUNTIME_CLASSES[runtime](config), bench.replace("-", "_"))()
        return fn(loops)
    return timed


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
# Counters: a vmcore sandbox with a `counters` attribute (the process
# backend's VmCtx spin/futex counts) gets one extra untimed pass per benchmark
# in the parent; the deltas go into the JSON next to the timings.


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


# ---------------------------------------------------------------------------
# Reports


def machine_info(quick, started, duration, loadavg_start, with_compile=True):
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
                       for kind, s in SETTINGS["quick" if quick else "full"].items()},
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
    names = BENCHMARKS + RUNTIMES + (SIDE_BY_SIDE, SNAPSHOT)
    unknown = [x for x in only if not any(ch in x for ch in "*?[") and x not in names]
    if unknown:
        sys.exit(f"--only: unknown name(s) {', '.join(unknown)}; expected {', '.join(names)} "
                 "or a pattern on the full name, e.g. 'hostcall[vmcore*'")
    with_side = not only or SIDE_BY_SIDE in only
    if only == [SIDE_BY_SIDE] and "--worker" not in rest:
        return side_by_side_only(ours)
    if only == [SNAPSHOT]:
        return importlib.import_module("_snapshot").main([], ours.doom, ours.wad)

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
    data = {"machine": machine_info(ours.quick, started, duration, load_start), "results": results}
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
    m = machine_info(ours.quick, started, time.monotonic() - t_start, load_start, with_compile=False)
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
