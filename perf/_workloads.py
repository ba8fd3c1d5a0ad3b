"""perf/run.py's workloads: the guest code for the wasm runtimes, the
generated large program of the compile benchmark, and one benchmark class
per runtime (vmcore, wasmtime, pywasm3) whose methods are the benchmarks.

Benchmark bodies: factory(config) -> time_func(loops) -> seconds.  Set-up
happens inside time_func (workers run only their own task), results are
checked there too, and a failed check raises (the worker exits non-zero and
the parent records the error)."""
from __future__ import annotations

import hashlib
import os
import tempfile
import time
from pathlib import Path

from _programs import SIEVE_N, SIEVE_RESULT, SUM_N, SUM_RESULT, load, time_noop_calls

import vmcore

WASM_DIR = Path(__file__).resolve().parent / "wasm"

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

HOSTCALL_ITERATIONS = 10_000
MEMORY_BYTES = 1 << 20
COMPILE_FUNCTIONS = 25_000


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
                return time_noop_calls(sb, loops)
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
