"""What sandboxes share and recycle across their lifetimes: started
sandbox processes (:class:`SandboxPool`, with fork handling), closed inline
sandboxes' engine instances (scrubbed to fresh, reused by the next inline
sandbox), and the compiled modules (threaded code, sealed shared memfds,
native code) cached per Program and configuration.  The lifecycle of one
sandbox's guest is vmcore/backends.py."""
from __future__ import annotations

import functools
import logging
import os
import platform
import threading
import time
import weakref
from typing import Callable, Dict, Iterable, List, Optional, Tuple, Union

from vmcore import _engine, gas as _gas
from vmcore.errors import SandboxError
from vmcore.host_functions import HostFunctions

ZYGOTE_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_zygote")
ISOLATION_FEATURES = tuple(name for name, _ in _engine.ISOLATION_FEATURES)

_image_lock = threading.Lock()
# Never logged from on the call/hostcall path: only process and pool
# life-cycle events and compiles.
log = logging.getLogger("vmcore.process")
pool_log = logging.getLogger("vmcore.pool")
#: Compiles taking at least this long are logged at INFO on "vmcore.compile"
#: (quicker ones at DEBUG).
SLOW_COMPILE_SECONDS = 0.1
compile_log = logging.getLogger("vmcore.compile")


def _load_image() -> None:
    if _engine.have_image():
        return
    with _image_lock:
        if _engine.have_image():
            return
        require_process()
        try:
            with open(ZYGOTE_PATH, "rb") as f:
                elf = f.read()
        except OSError as e:
            raise SandboxError(f"the zygote executable is missing ({ZYGOTE_PATH}: {e.strerror}); "
                               "rebuild vmcore (pip install .)") from None
        _engine.set_image(elf)


def isolation_report_of(bits: int) -> Dict[str, bool]:
    return {name: bool(bits & bit) for name, bit in _engine.ISOLATION_FEATURES}


class SandboxPool:
    """Started, idle zygotes ready for new sandboxes.

    ``size`` bounds how many idle zygotes are kept (closed sandboxes return
    theirs here when there is room); ``min_idle`` zygotes are kept ready by
    a background thread (0: start on demand only); ``recycle=False`` never
    reuses a zygote that ran someone else's guest (each sandbox gets a
    fresh process).  :meth:`prestart` fills the pool now.

    ``pinning`` says where the pool's sandbox processes run while a sandbox
    holds them: ``"spread"`` (the default) pins each to the CPU with the
    fewest sandbox processes of this Python process, preferring one other
    than the calling thread's (a lone sandbox then spins on another core
    than its host) and moving it off the caller's CPU only to a CPU with
    fewer, so N sandboxes on N cores never stack; ``"none"`` leaves them
    unpinned, to the kernel's scheduler; a list of CPU numbers spreads them
    over those CPUs only.

    ``functions`` (a :class:`vmcore.HostFunctions`) is what sandboxes taken
    from the pool get unless they pass their own ``functions=``.

    ``vmcore.SandboxPool.default()`` is the pool sandboxes use unless given
    ``pool=``."""

    _default: Optional["SandboxPool"] = None
    _default_lock = threading.Lock()

    def __init__(self, size: int = 8, *, min_idle: int = 0, recycle: bool = True,
                 pinning: Union[str, Iterable[int]] = "spread", functions: Optional[HostFunctions] = None,
                 _flags: int = 0, _namespaces: bool = True, _image_fd: int = -1) -> None:
        if size < 0 or min_idle < 0:
            raise ValueError("size and min_idle must be >= 0")
        require_process()  # refused up front where there is no sandbox process
        if functions is not None and not isinstance(functions, HostFunctions):
            raise TypeError(f"functions must be a vmcore.HostFunctions, got {type(functions).__name__}")
        self.functions = functions
        self.pinning, self._pin_cpus = _pinning(pinning)
        self.size = size
        self.min_idle = min(min_idle, size)
        self.recycle = recycle
        self._flags = _flags
        self._namespaces = _namespaces
        self._image_fd = _image_fd  # tests only: another zygote build (vmcore.fuzz_hostile)
        self._idle: List[_engine.Zygote] = []
        self._lock = threading.Lock()
        self._refill = threading.Event()
        self._refiller: Optional[threading.Thread] = None
        self._closed = False
        self.started = 0   # zygotes spawned by this pool
        self.reused = 0    # acquisitions served from the pool
        _POOLS.add(self)

    @classmethod
    def default(cls) -> "SandboxPool":
        pool = cls._default
        if pool is None:
            with cls._default_lock:
                if cls._default is None:
                    cls._default = cls(8, min_idle=1)
                pool = cls._default
        return pool

    def __len__(self) -> int:
        return len(self._idle)

    def _start(self, avoid_cpu: int = -2) -> "_engine.Zygote":
        _load_image()
        zy = _engine.Zygote()
        zy.start(self._flags, self._namespaces, 10.0, avoid_cpu, self._image_fd)
        self.started += 1
        log.debug("started sandbox process pid %s (pool %#x, %d started)", zy.pid, id(self), self.started)
        return zy

    def acquire(self) -> "_engine.Zygote":
        """An idle zygote: from the pool, or started now."""
        while True:
            with self._lock:
                zy = self._idle.pop() if self._idle else None
                low = len(self._idle) < self.min_idle
            if low:
                self._kick()
            if zy is None:
                pool_log.debug("pool %#x has no idle sandbox process: starting one", id(self))
                return self._place(self._start())
            if zy.idle():
                self.reused += 1
                zy.refresh()
                pool_log.debug("reusing idle sandbox process pid %s (pool %#x)", zy.pid, id(self))
                return self._place(zy)
            pool_log.info("idle sandbox process pid %s died in pool %#x; discarding it", zy.pid, id(self))
            zy.release()  # died while pooled

    def _place(self, zy: "_engine.Zygote") -> "_engine.Zygote":
        """Pin a zygote that a sandbox takes by the pool's policy."""
        try:
            if self.pinning == "none":
                zy.unpin()
            else:
                zy.place(self._pin_cpus)
        except BaseException:
            zy.release()
            raise
        return zy

    def release(self, zy: "_engine.Zygote", reusable: bool = True) -> None:
        """Take a zygote back (already wiped by its sandbox), or end it."""
        if not zy.owned:
            zy.forget()
            return
        if reusable and self.recycle and not self._closed and zy.idle():
            with self._lock:
                if len(self._idle) < self.size:
                    zy.unplace()  # idle: no longer counted on its CPU
                    self._idle.append(zy)
                    pool_log.debug("recycled sandbox process pid %s into pool %#x (%d idle)", zy.pid, id(self),
                                   len(self._idle))
                    return
        pool_log.debug("ending sandbox process pid %s (pool %#x)", zy.pid, id(self))
        zy.release()

    def prestart(self, count: Optional[int] = None) -> None:
        """Start zygotes until ``count`` (default: ``size``) are idle."""
        target = self.size if count is None else min(count, self.size)
        while len(self._idle) < target and not self._closed:
            zy = self._start(-1)
            zy.unplace()  # placed when a sandbox takes it
            with self._lock:
                if len(self._idle) < self.size and not self._closed:
                    self._idle.append(zy)
                    continue
            zy.release()
            break

    def _kick(self) -> None:
        if self._closed or not self.min_idle:
            return
        if self._refiller is None or not self._refiller.is_alive():
            self._refiller = threading.Thread(target=self._refill_loop, name="vmcore-zygote-pool", daemon=True)
            self._refiller.start()
        self._refill.set()

    def _refill_loop(self) -> None:
        while not self._closed:
            self._refill.wait()
            self._refill.clear()
            try:
                self.prestart(self.min_idle)
            except Exception:
                return  # acquire() starts on demand and reports the error

    def drain(self) -> None:
        """End every idle zygote (the pool stays usable)."""
        with self._lock:
            idle, self._idle = self._idle, []
        if idle:
            pool_log.debug("ending %d idle sandbox process(es) of pool %#x", len(idle), id(self))
        for zy in idle:
            zy.release()

    def close(self) -> None:
        self._closed = True
        self._refill.set()
        self.drain()

    def _forget(self) -> None:
        """In a forked child: the zygotes belong to the parent."""
        for zy in self._idle:
            zy.forget()
        self._idle = []
        self._lock = threading.Lock()
        self._refill = threading.Event()
        self._refiller = None


def _pinning(pinning) -> Tuple[str, Optional[Tuple[int, ...]]]:
    """(``pinning`` as the pool keeps it, its CPUs or None for all)."""
    if isinstance(pinning, str):
        if pinning not in ("spread", "none"):
            raise ValueError(f"pinning must be 'spread', 'none' or a list of CPUs, got {pinning!r}")
        return pinning, None
    try:
        cpus = tuple(sorted(set(int(cpu) for cpu in pinning)))
    except (TypeError, ValueError):
        raise ValueError(f"pinning must be 'spread', 'none' or a list of CPUs, got {pinning!r}") from None
    usable = os.sched_getaffinity(0)
    if not cpus or not set(cpus) <= usable:
        raise ValueError(f"pinning: CPUs {list(cpus)} are not a non-empty subset of this process's CPUs "
                         f"{sorted(usable)}")
    return cpus, cpus


_POOLS: "weakref.WeakSet[SandboxPool]" = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for pool in list(_POOLS):
        pool._forget()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _shared_module(program, gas_metering: bool, step_tracing: bool, native: bool = False,
                   gas_model=None) -> "_engine.SharedModule":
    """Compiled once per Program and configuration into a sealed memfd
    (threaded code, or native code from the recompiler; gas_model: a
    vmcore.gas name or model, None = the program's default)."""
    model = _gas.resolve(gas_model, program.isa) if gas_metering else _gas.NAIVE

    def build() -> "_engine.SharedModule":
        start = time.perf_counter()
        module = _engine.SharedModule(program.isa_index, program.code, program.bitmask, program.jump_table,
                                      gas_metering, step_tracing, native, gas_kind=model.kind,
                                      memory_access_cost=model.memory_access_cost)
        _log_compile("native code" if native else "threaded code (shared)", program, time.perf_counter() - start)
        return module

    cache = program._cache.native_module if native else program._cache.shared_module
    return cache(gas_metering, step_tracing, model, build)


def _compiled(program, gas_metering: bool, step_tracing: bool, gas_model=None) -> "_engine.CompiledModule":
    """Threaded code for the inline interpreter, cached per Program and
    configuration (gas_model as for _shared_module)."""
    model = _gas.resolve(gas_model, program.isa) if gas_metering else _gas.NAIVE

    def build() -> "_engine.CompiledModule":
        start = time.perf_counter()
        module = _engine.CompiledModule(program.isa_index, program.code, program.bitmask, program.jump_table,
                                        gas_metering, step_tracing, gas_kind=model.kind,
                                        memory_access_cost=model.memory_access_cost)
        _log_compile("threaded code", program, time.perf_counter() - start)
        return module

    return program._cache.threaded_code(gas_metering, step_tracing, model, build)


#: How many closed inline sandboxes' instances are kept per page size.
INSTANCE_POOL_LIMIT = 16
# Closed inline sandboxes' engine instances, scrubbed to fresh (vmcore/scrub.h):
# a sandbox created from one costs no mmap and no page faults.  Keyed by
# page size; the newest is reused first (its pages are the warmest).
_INSTANCES: Dict[int, List["_engine.Instance"]] = {}


def take_instance(module: "_engine.CompiledModule", page_size: int) -> "_engine.Instance":
    """A scrubbed instance of a closed sandbox running ``module``, or a new one."""
    free = _INSTANCES.get(page_size)
    if free:
        inst = free.pop()
        if inst.module is not module:
            inst.set_module(module)
        return inst
    return _engine.Instance(module, page_size)


def give_instance(inst: "_engine.Instance", scrub: Callable[[], None]) -> None:
    """Take back a closed sandbox's instance: ``scrub()`` wipes it to a new
    one's state; kept if there is room and the wipe worked, else dropped."""
    free = _INSTANCES.setdefault(inst.page_size, [])
    if len(free) >= INSTANCE_POOL_LIMIT or inst.running:
        return
    try:
        scrub()
    except Exception:
        return
    free.append(inst)


def watch_program(program, free: List) -> "weakref.ref":
    """A weakref to ``program`` that, when it dies, gives the scrubbed
    guests of its closed inline backends (``free``, Prepared.free) to the
    instance pool above: the next Program's sandboxes reuse their memory
    instead of mapping new."""
    def spill(_ref) -> None:
        while free:
            inst = free.pop().guest
            pooled = _INSTANCES.setdefault(inst.page_size, [])
            if len(pooled) < INSTANCE_POOL_LIMIT:
                pooled.append(inst)
    return weakref.ref(program, spill)


def _log_compile(what: str, program, seconds: float) -> None:
    level = logging.INFO if seconds >= SLOW_COMPILE_SECONDS else logging.DEBUG
    compile_log.log(level, "compiled %s for %d bytes of %s code in %.1f ms", what, len(program.code),
                            program.isa, seconds * 1e3)


def drain_module_memory() -> int:
    """Free the memory kept from freed native-code modules.

    When a compiled Program is freed, the memfd its native code lived in
    is kept with its pages (at most 4 of them and 64 MiB) for the next
    compile to write over: a compile into pages already in place costs
    about half as much.  Returns how many memfds were freed."""
    return _engine.drain_module_memory()


@functools.lru_cache(maxsize=None)  # asked per process sandbox; the answer cannot change
def process_unavailable() -> Optional[str]:
    """None when isolation='process' can run here, else why not: the
    sandbox process (the zygote) is a Linux x86-64 executable, built only
    for that target."""
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        return (f"isolation='process' needs Linux x86-64: the sandbox process is x86-64 only "
                f"(this is {platform.system()} {platform.machine()})")
    if not os.path.isfile(ZYGOTE_PATH):
        return f"the zygote executable is missing ({ZYGOTE_PATH}); rebuild vmcore (pip install .)"
    return None


def require_process() -> None:
    """Raise SandboxError (why, and what to use instead) unless
    isolation='process' can run here."""
    reason = process_unavailable()
    if reason is not None:
        raise SandboxError(f"{reason}; use isolation='inline'")


def cpu_supports_native() -> Optional[str]:
    """None when generated code can run here, else why not."""
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        return f"the recompiler targets Linux x86-64 (this is {platform.system()} {platform.machine()})"
    missing = _engine.cpu_check()
    if missing is not None:
        return f"the recompiler needs x86-64 with BMI1, BMI2, LZCNT and POPCNT; this CPU lacks {missing}"
    return None




__all__ = ["SandboxPool", "ISOLATION_FEATURES", "cpu_supports_native", "process_unavailable", "drain_module_memory", "SLOW_COMPILE_SECONDS"]
