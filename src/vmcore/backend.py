"""Execution backends.  A backend owns one guest instance (registers, gas,
memory) and knows how to run it; the Sandbox on top owns the policy.  New
backends/isolation modes register in BACKENDS."""
from __future__ import annotations

import logging
import time
from typing import Callable, Dict, Optional, Tuple

from vmcore import _engine, gas as _gas
from vmcore.backend_base import InstanceBackend
from vmcore.errors import SandboxError


#: Compiles taking at least this long are logged at INFO on "vmcore.compile"
#: (quicker ones at DEBUG).
SLOW_COMPILE_SECONDS = 0.1
compile_log = logging.getLogger("vmcore.compile")


#: Compiles taking at least this long are logged at INFO on "vmcore.compile"
#: (quicker ones at DEBUG).
SLOW_COMPILE_SECONDS = 0.1
compile_log = logging.getLogger("vmcore.compile")


def _compiled(program, gas_metering: bool, step_tracing: bool, gas_model=None) -> "_engine.CompiledModule":
    """Threaded code is cached per Program and configuration (gas_model:
    a vmcore.gas name or model, None = the program's default)."""
    model = _gas.resolve(gas_model, program.isa) if gas_metering else _gas.NAIVE

    def build() -> "_engine.CompiledModule":
        start = time.perf_counter()
        module = _engine.CompiledModule(program.isa_index, program.code, program.bitmask, program.jump_table,
                                        gas_metering, step_tracing, gas_kind=model.kind,
                                        memory_access_cost=model.memory_access_cost)
        seconds = time.perf_counter() - start
        compile_log.log(logging.INFO if seconds >= SLOW_COMPILE_SECONDS else logging.DEBUG,
                        "compiled threaded code for %d bytes of %s code in %.1f ms", len(program.code), program.isa,
                        seconds * 1e3)
        return module

    return program._cache.threaded_code(gas_metering, step_tracing, model, build)


# Closed sandboxes' guest memory, scrubbed and ready for reuse: creating a
# sandbox from here costs no mmap and no page faults.  Keyed by page size.
_POOL: Dict[int, list] = {}
POOL_LIMIT = 16


class InlineInterpreter(InstanceBackend):
    """The C interpreter running in this process, on inline guest memory."""

    backend = "interpreter"
    isolation = "inline"
    pid = None

    def __init__(self, program, memory_map, heap, gas_metering: bool, **options) -> None:
        if options.get("strict"):
            raise SandboxError("strict isolation needs isolation='process' (the inline backend runs the guest "
                               "in this process)")
        self.program = program
        self.memory_map = memory_map
        self.heap_policy = heap
        self.gas_metering = gas_metering
        self.gas_model = _gas.resolve(options.get("gas_model"), program.isa)
        self.mask = 0xFFFFFFFFFFFFFFFF if program.is_64_bit else 0xFFFFFFFF
        module = _compiled(program, gas_metering, False, self.gas_model)
        pool = _POOL.get(memory_map.page_size)
        if pool:
            self.inst = pool.pop()
            self.inst.set_module(module)
        else:
            self.inst = _engine.Instance(module, memory_map.page_size)
        self.closed = False
        self._install()

    def set_step_tracing(self, enabled: bool) -> None:
        self.inst.set_module(_compiled(self.program, self.gas_metering, enabled, self.gas_model))

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.inst.in_call:
            # A call is running (another thread, or a hostcall closing its
            # own sandbox): stop the guest at its next block; the instance
            # stays with that call and is dropped, never pooled, after it.
            # That call raises SandboxError even if the guest finishes.
            self.inst.abandoned = True
            self.inst.interrupt()
            return
        pool = _POOL.setdefault(self.memory_map.page_size, [])
        reusable = len(pool) < POOL_LIMIT and not self.inst.running
        if reusable:
            try:
                self.scrub()
            except Exception:
                reusable = False
        inst, self.inst = self.inst, None
        if reusable:
            pool.append(inst)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


BACKENDS: Dict[Tuple[str, str], Callable] = {
    ("interpreter", "inline"): InlineInterpreter,
}

from vmcore.process_backend import ProcessCompiler, ProcessInterpreter, cpu_supports_native  # noqa: E402

BACKENDS[("interpreter", "process")] = ProcessInterpreter
BACKENDS[("compiler", "process")] = ProcessCompiler

# What backend="auto" picks, first match wins: inline stays the default
# (no process per sandbox); asking for a sandbox process gets native code
# where the CPU can run it.
_AUTO_ORDER = [("interpreter", "inline"), ("compiler", "process"), ("interpreter", "process")]


_SELECTED: Dict[Tuple[str, str], Tuple[Callable, Optional[str]]] = {}


class IsolationReport(dict):
    """What ``Sandbox.isolation_report()`` returns: {protection: active}
    for a sandbox process (empty inline), and ``fallback``: why
    ``backend="auto"`` did not get its first choice (None when nothing
    fell back)."""

    def __init__(self, protections: Optional[Dict[str, bool]] = None, fallback: Optional[str] = None) -> None:
        super().__init__(protections or {})
        self.fallback = fallback


def select(backend: str, isolation: str) -> Tuple[Callable, Optional[str]]:
    """Resolve 'auto' and check the combination exists: (factory, why
    'auto' fell back from its first choice, or None)."""
    selected = _SELECTED.get((backend, isolation))
    if selected is None:
        selected = _SELECTED[(backend, isolation)] = _resolve(backend, isolation)
    return selected


def _resolve(backend: str, isolation: str) -> Tuple[Callable, Optional[str]]:
    if backend not in ("auto", "interpreter", "compiler"):
        raise ValueError(f"unknown backend {backend!r}; expected 'auto', 'interpreter' or 'compiler'")
    if isolation not in ("auto", "inline", "process"):
        raise ValueError(f"unknown isolation {isolation!r}; expected 'auto', 'inline' or 'process'")
    order = _AUTO_ORDER + [key for key in BACKENDS if key not in _AUTO_ORDER]
    wanted = [(b, i) for (b, i) in order
              if (b, i) in BACKENDS and backend in ("auto", b) and isolation in ("auto", i)]
    native_missing = cpu_supports_native() if backend == "auto" else None
    candidates = [(b, i) for (b, i) in wanted if not (native_missing is not None and b == "compiler")]
    if not candidates:
        available = ", ".join(f"{b}/{i}" for b, i in BACKENDS)
        raise ValueError(f"backend={backend!r} with isolation={isolation!r} is not available in this build "
                         f"(available: {available})")
    fallback = None
    if candidates[0] != wanted[0]:
        fallback = (f"backend='auto' runs the {candidates[0][0]} instead of the {wanted[0][0]}: "
                    f"{native_missing}")
    return BACKENDS[candidates[0]], fallback


__all__ = ["BACKENDS", "IsolationReport", "select", "InlineInterpreter", "ProcessInterpreter", "ProcessCompiler", "SandboxError"]
