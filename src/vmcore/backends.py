"""The lifecycle of one sandbox's guest, written once for every backend:
install of the program image, the spans the guest may have touched,
scrub/reset, close, restart after a dead sandbox process, and which
backend ``backend="auto"`` picks (with its :class:`IsolationReport`).

A backend owns one engine guest (``_engine.Instance`` inline,
``_engine.Process`` in a sandbox process; both are ``_engine.Guest``).
Registers, memory and runs go to that guest directly (Sandbox, GuestMemory
and Caller hold it); only lifecycle goes through the backend.  What is
pooled and cached across sandboxes is vmcore/pool.py."""
from __future__ import annotations

import logging
import weakref
from typing import Callable, Dict, NamedTuple, Optional, Tuple

from vmcore import _engine, pool as _pool
from vmcore.errors import SandboxError
from vmcore.layout import initial_layout
from vmcore.pool import SandboxPool, cpu_supports_native, isolation_report_of

log = logging.getLogger("vmcore.process")


class Prepared(NamedTuple):
    """Backend.prepare's result: what the sandboxes of one Program and set
    of options share."""
    regions: tuple
    heap: object
    spans: frozenset
    image: tuple  # the regions as Guest.install takes them: (address, size, perm, data)
    heap_args: tuple  # the heap as Guest.install takes it: (base, top, mapped_end, max_top, grow_pages)
    module: object  # the engine's compiled code (no step tracing): threaded code, or a SharedModule
    free: list  # closed inline backends of these options, their guests scrubbed, for the next Sandbox
    watch: object  # inline: a weakref to the Program that hands free's guests to pool.py when it dies


class Backend:
    """One guest's lifecycle; subclasses create and give back the guest."""

    backend: str
    isolation: str
    pid: Optional[int] = None
    pooled = False  # closed ones are kept per Program and options (Prepared.free)

    def __init__(self, program, memory_map, heap_policy, gas_metering: bool, initial_gas: int, gas_model,
                 prepared: "Prepared") -> None:
        self.program = program
        self.memory_map = memory_map
        self.heap_policy = heap_policy
        self.gas_metering = gas_metering
        self.initial_gas = initial_gas  # what install (new, reset, restarted) gives the guest
        self.gas_model = gas_model
        self.prepared = prepared
        self.closed = False
        self.guest = None

    @classmethod
    def prepare(cls, program, memory_map, heap_policy, gas_metering: bool, gas_model) -> "Prepared":
        """What every sandbox of one Program and set of options shares,
        worked out once (Sandbox keeps it with its options): the initial
        memory layout (regions, heap, the regions' spans) and the
        engine's compiled code (compiled once per set of options, not per
        sandbox)."""
        def build():
            regions, heap = initial_layout(program, memory_map, heap_policy)
            return regions, heap, frozenset((r.address, r.size) for r in regions)
        regions, heap, spans = program._cache.layout(memory_map.page_size, heap_policy, build)
        module = cls._build_module(program, gas_metering, False, gas_model)
        image = tuple((r.address, r.size, r.perm, r.data) for r in regions)
        heap_args = (heap.base, heap.top, heap.mapped_end, heap.max_top, heap.grow_pages)
        free: list = []
        watch = _pool.watch_program(program, free) if cls.pooled else None
        return Prepared(regions, heap, spans, image, heap_args, module, free, watch)

    @staticmethod
    def _build_module(program, gas_metering: bool, step_tracing: bool, gas_model):
        return None

    def install(self) -> None:
        """The initial memory layout, heap and gas into the guest (new, reset
        or restarted): the one install path of every backend."""
        prepared = self.prepared
        self.guest.install(prepared.image, prepared.heap_args, self.initial_gas)

    @property
    def regions(self) -> tuple:
        """The initial layout's regions (what install maps)."""
        return self.prepared.regions

    def touched(self):
        """Every span the guest could have written since the last scrub:
        the layout's regions and the heap as far as it was mapped (the
        engine adds whatever set_perms made accessible)."""
        return self.guest.touched(self.prepared.spans, self.memory_map.rw_data_address)

    def scrub(self) -> None:
        """Wipe for reuse (reset, or a closed sandbox's guest going back to
        a pool): the engine zeroes the spans and puts its state (and a
        sandbox process's VmCtx) back to a new one's (vmcore/scrub.h)."""
        self.guest.scrub(self.touched())

    def reset(self) -> None:
        """Back to the freshly-instantiated state: registers, gas, memory
        (only the spans the guest could have touched are scrubbed)."""
        prepared = self.prepared
        self.guest.recycle(self.touched(), prepared.image, prepared.heap_args, self.initial_gas)

    def set_step_tracing(self, enabled: bool) -> None:
        self.guest.set_module(self._module(enabled))

    def _module(self, step_tracing: bool):
        raise NotImplementedError

    def close(self) -> None:
        """Give the guest back (scrubbed, to its pool) or end it; idempotent.
        During a call (another thread, or a hostcall closing its own
        sandbox) the call is stopped and cleans up after itself."""
        if self.closed:
            return
        self.closed = True
        guest = self.guest
        if guest is None:
            return
        kept = False
        try:
            if guest.in_call:
                self._abandon(guest)
            else:
                kept = self._give_back(guest)
        finally:
            if not kept:
                self.guest = None

    def _abandon(self, guest) -> None:
        raise NotImplementedError

    def _give_back(self, guest) -> bool:
        """Recycle or end the guest; True when this backend keeps it (the
        backend itself went to a pool, to be revived)."""
        raise NotImplementedError

    def isolation_report(self) -> Dict[str, bool]:
        return {}

    @property
    def counters(self) -> Dict[str, int]:
        return {}

    def __del__(self) -> None:
        if getattr(self, "closed", True):  # closed, or __init__ refused before it began
            return
        try:
            self.close()
        except Exception:
            pass


BACKEND_POOL_LIMIT = _engine.BACKEND_POOL_LIMIT  # closed inline backends kept per Program and options


class InlineInterpreter(Backend):
    """The C interpreter running in this process, on inline guest memory.

    A closed one whose guest could be scrubbed goes to ``prepared.free``
    (up to BACKEND_POOL_LIMIT; _engine.pool_inline); the next Sandbox with
    the same Program and options revives it (SandboxCore.__init__: the
    layout installed again) instead of building a backend.  When the
    Program dies, the pooled guests go to pool.py's instance pool."""

    backend = "interpreter"
    isolation = "inline"
    pooled = True

    def __init__(self, program, memory_map, heap, gas_metering: bool, initial_gas: int, gas_model,
                 prepared: Prepared, *, strict: bool = False) -> None:
        if strict:
            raise SandboxError("strict isolation needs isolation='process' (the inline backend runs the guest "
                               "in this process)")
        super().__init__(program, memory_map, heap, gas_metering, initial_gas, gas_model, prepared)
        self.guest = _pool.take_instance(prepared.module, memory_map.page_size)
        self.install()

    @staticmethod
    def _build_module(program, gas_metering: bool, step_tracing: bool, gas_model):
        return _pool._compiled(program, gas_metering, step_tracing, gas_model)

    def _module(self, step_tracing: bool):
        return self._build_module(self.program, self.gas_metering, step_tracing, self.gas_model)

    def _abandon(self, guest) -> None:
        # Stop the guest at its next block; the instance stays with that call
        # and is dropped, never pooled, after it.  That call raises
        # SandboxError even if the guest finishes.
        guest.abandoned = True
        guest.interrupt()

    def _give_back(self, guest) -> bool:
        if _engine.pool_inline(self, guest):
            return True
        if not guest.abandoned and len(self.prepared.free) >= BACKEND_POOL_LIMIT:
            _pool.give_instance(guest, self.scrub)  # the options' pool is full: the instance may serve others
        return False


class ProcessInterpreter(Backend):
    """The C interpreter in a confined sandbox process."""

    backend = "interpreter"
    isolation = "process"
    native = False

    def __init__(self, program, memory_map, heap, gas_metering: bool, initial_gas: int, gas_model,
                 prepared: Prepared, *, strict: bool = False, auto_restart: bool = False,
                 pool: Optional[SandboxPool] = None) -> None:
        if pool is not None and not isinstance(pool, SandboxPool):
            raise TypeError(f"pool must be a vmcore.SandboxPool, got {type(pool).__name__}")
        _pool.require_process()
        super().__init__(program, memory_map, heap, gas_metering, initial_gas, gas_model, prepared)
        self.strict = strict
        self.pool = pool if pool is not None else SandboxPool.default()
        module = self._module(False)
        self.guest = _engine.Process(self._acquire(), module, memory_map.page_size)
        if auto_restart:
            ref = weakref.ref(self)

            def restart() -> None:
                backend = ref()
                if backend is not None:
                    backend._restart()
            self.guest.restart = restart
        self.install()

    @classmethod
    def _build_module(cls, program, gas_metering: bool, step_tracing: bool, gas_model):
        if _pool.process_unavailable() or (cls.native and cpu_supports_native()):
            return None  # the constructor says why it cannot run
        return _pool._shared_module(program, gas_metering, step_tracing, cls.native, gas_model)

    def _module(self, step_tracing: bool):
        if not step_tracing and self.prepared.module is not None:
            return self.prepared.module
        return _pool._shared_module(self.program, self.gas_metering, step_tracing, self.native, self.gas_model)

    def _acquire(self) -> "_engine.Zygote":
        zy = self.pool.acquire()
        if self.strict:
            missing = [name for name, on in isolation_report_of(zy.isolation).items() if not on]
            if missing:
                self.pool.release(zy)
                raise SandboxError("strict isolation: the sandbox process lacks " + ", ".join(missing))
        return zy

    def _restart(self) -> None:
        """A fresh zygote for a sandbox whose process died (auto_restart)."""
        log.info("restarting a dead sandbox process (auto_restart): %s", self.guest.death)
        self.guest.attach(self._acquire())
        self.install()

    def _abandon(self, guest) -> None:
        log.debug("killing sandbox process pid %s: closed during a call", guest.pid)
        guest.abort()

    def _give_back(self, guest) -> bool:
        zygote = guest.zygote
        if zygote is not None and not zygote.owned:
            guest.detach()  # created before a fork: the parent's process, not ours to wipe or end
            zygote.forget()
            return False
        reusable = False
        if zygote is not None:
            try:
                self.scrub()
                reusable = True
            except Exception:
                reusable = False
        zy = guest.detach()
        if zy is not None:
            self.pool.release(zy, reusable)
        return False

    # -- isolation and introspection ---------------------------------------
    @property
    def pid(self) -> Optional[int]:  # type: ignore[override]
        return self.guest.pid

    def isolation_report(self) -> Dict[str, bool]:
        return isolation_report_of(self.guest.isolation)

    @property
    def counters(self) -> Dict[str, int]:
        return self.guest.counters()


class ProcessCompiler(ProcessInterpreter):
    """Native code from the recompiler, in a confined sandbox process."""

    backend = "compiler"
    native = True

    def __init__(self, *args, **options) -> None:
        reason = cpu_supports_native()
        if reason is not None:
            raise SandboxError(f"{reason}; use backend='interpreter'")
        super().__init__(*args, **options)


BACKENDS: Dict[Tuple[str, str], Callable] = {
    ("interpreter", "inline"): InlineInterpreter,
    ("interpreter", "process"): ProcessInterpreter,
    ("compiler", "process"): ProcessCompiler,
}

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


def unavailable(backend: str, isolation: str) -> Optional[str]:
    """None when ``backend`` with ``isolation`` (no 'auto') can run on this
    machine, else why not: what a Sandbox in that configuration would be
    refused with (the sandbox process and the recompiler are Linux x86-64
    only; the recompiler also needs BMI1/BMI2/LZCNT/POPCNT)."""
    if (backend, isolation) not in BACKENDS:
        return f"backend={backend!r} with isolation={isolation!r} is not a configuration"
    # The order a Sandbox checks them in: the recompiler's CPU, then the process.
    reason = cpu_supports_native() if backend == "compiler" else None
    return reason or (_pool.process_unavailable() if isolation == "process" else None)


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


__all__ = ["BACKENDS", "IsolationReport", "select", "unavailable", "Backend", "InlineInterpreter", "ProcessInterpreter", "ProcessCompiler"]
