"""vmcore.ray: run sandboxes on a Ray cluster (the optional ``vmcore[ray]``
extra).

>>> import vmcore, vmcore.ray
>>> with vmcore.ray.Cluster() as cluster:            # ray.init() unless Ray is up
...     cluster.call(program, "main", 10, gas=1_000_000)
...     for value in cluster.map(program, "main", range(1000), gas=1_000_000):
...         ...

* One :class:`NodeWorker` actor per node (default) or ``actors=N`` of them
  holds the compiled Programs keyed by content hash (sha256) and a warm
  :class:`vmcore.SandboxPool`; each job runs in a reused, reset Sandbox.
* A program is put in Ray's object store once (:meth:`Cluster.program`);
  jobs carry only its hash and a reference, and an actor fetches the blob
  the first time it sees the hash (``NodeWorker.stats()["shipped"]``).
* Hostcalls are importable functions (module-level, pickled by reference
  as ``"module:qualname"``): a per-cluster registry given to every actor
  (``Cluster(hostcalls=...)``) and per-job overrides.
* A job's guest fault comes back as the typed error the local API raises
  (Trap, OutOfGas, PageFault, Timeout, SandboxError, HostcallError, ...).
  An actor that dies is replaced and its in-flight jobs are retried up to
  ``max_retries`` times, then fail with :class:`WorkerLost`.  Every job
  submitted gets exactly one result (checked).
* Back-pressure: at most ``max_in_flight`` batches per actor; map()
  consumes its input lazily.  ``progress=True`` shows a tqdm bar.

Ray is imported lazily: ``import vmcore`` and ``import vmcore.ray`` work
without it; creating a Cluster raises ImportError naming the extra.
"""
from __future__ import annotations

import collections
import hashlib
import importlib
import os
import pickle
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Deque, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

from vmcore.errors import SandboxError, Timeout, VmError
from vmcore.program import Program

INSTALL_HINT = 'vmcore.ray needs Ray, which is not installed: pip install "vmcore[ray]"'
MAX_ARGS = 9  # a0..a5, t0..t2 (vmcore.sandbox.ARG_REGS)
KINDS = ("polkavm", "raw", "jam-standard", "pickle")


def _ray():
    """The ray module, or ImportError naming the extra."""
    try:
        import ray
    except ImportError as e:
        raise ImportError(INSTALL_HINT) from e
    return ray


class WorkerLost(SandboxError):
    """The actor running a job died ``attempts`` times (the job was
    retried on a replacement each time); the job did not complete."""

    def __init__(self, message: str, *, attempts: int = 0) -> None:
        super().__init__(message)
        self.attempts = attempts


# =====================================================================
# Programs and hostcalls on the wire
# =====================================================================

def _load_program(kind: str, isa: Optional[str], blob: bytes) -> Program:
    if kind == "polkavm":
        return Program.from_bytes(blob)
    if kind == "raw":
        return Program.from_raw_code(blob, isa=isa) if isa else Program.from_raw_code(blob)
    if kind == "jam-standard":
        return Program.from_jam_standard(blob)
    if kind == "pickle":
        program = pickle.loads(blob)
        if not isinstance(program, Program):
            raise TypeError(f"the shipped blob is a {type(program).__name__}, not a vmcore.Program")
        return program
    raise ValueError(f"unknown program kind {kind!r} (one of {', '.join(KINDS)})")


def _program_blob(program: Program) -> bytes:
    """A Program object as bytes: its pickle without the per-page-size
    caches (the same content gives the same bytes, hence the same hash)."""
    clone = Program.__new__(Program)
    clone.__dict__.update(program.__dict__)
    clone.__dict__["_cache"] = None
    return pickle.dumps(clone, protocol=4)


def hostcall_spec(fn: Union[str, Callable[..., Any]]) -> str:
    """``"module:qualname"`` for an importable hostcall (a module-level
    function, or such a string, checked).  Lambdas, closures and functions
    of ``__main__`` are refused with TypeError: actors import hostcalls by
    name."""
    if isinstance(fn, str):
        module, sep, qualname = fn.partition(":")
        if not sep or not module or not qualname:
            raise TypeError(f"hostcall spec {fn!r} must be 'module:function'")
        return fn
    if not callable(fn):
        raise TypeError(f"a hostcall must be a module-level function or 'module:function', got {type(fn).__name__}")
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", None)
    if not module or not qualname or "<" in qualname or module == "__main__":
        raise TypeError(f"hostcall {fn!r} is not importable by name (lambda, closure or __main__ function); "
                        "define it at module level in an importable module")
    try:
        found = _resolve(f"{module}:{qualname}")
    except Exception:
        found = None
    if found is not fn:
        raise TypeError(f"hostcall {fn!r} is not reachable as {module}:{qualname}")
    return f"{module}:{qualname}"


def _resolve(spec: str) -> Callable[..., Any]:
    module, _, qualname = spec.partition(":")
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def _hostcall_specs(hostcalls: Optional[Mapping[str, Any]]) -> Tuple[Tuple[str, str], ...]:
    if not hostcalls:
        return ()
    if not isinstance(hostcalls, Mapping):
        raise TypeError(f"hostcalls must be a mapping of import name -> function, got {type(hostcalls).__name__}")
    out = []
    for name, fn in hostcalls.items():
        if not isinstance(name, str):
            raise TypeError(f"hostcall names must be strings, got {name!r}")
        out.append((name, hostcall_spec(fn)))
    return tuple(sorted(out))


class RemoteProgram:
    """A program put in the cluster's object store once.  ``sha256`` is
    the content hash of ``blob`` (for a ``.polkavm`` file: the file's
    sha256); ``program`` is the driver's parsed copy (exports are checked
    here before a job is sent)."""

    def __init__(self, program: Program, blob: bytes, kind: str, isa: Optional[str], ref: Any) -> None:
        self.program = program
        self.kind = kind
        self.isa = isa
        self.size = len(blob)
        self.sha256 = hashlib.sha256(blob).hexdigest()
        self.ref = ref

    def __repr__(self) -> str:
        return f"<RemoteProgram {self.kind} {self.sha256[:12]} {self.size}B exports={list(self.program.exports)}>"


def _as_program(source: Any, kind: Optional[str], isa: Optional[str]) -> Tuple[Program, bytes, str]:
    """(parsed program, blob, kind) from a Program, bytes or a path; bad
    blobs raise ProgramError here, on the driver."""
    if isinstance(source, Program):
        if kind not in (None, "pickle"):
            raise ValueError("kind= applies to bytes or a path, not to a vmcore.Program")
        return source, _program_blob(source), "pickle"
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as f:
            source = f.read()
    if isinstance(source, (bytes, bytearray, memoryview)):
        blob = bytes(source)
        kind = kind or "polkavm"
        if kind not in KINDS or kind == "pickle":
            raise ValueError(f"kind must be one of polkavm, raw, jam-standard, got {kind!r}")
        return _load_program(kind, isa, blob), blob, kind
    raise TypeError(f"a program must be a vmcore.Program, bytes or a path, got {type(source).__name__}")


# =====================================================================
# The actor
# =====================================================================

@dataclass
class JobResult:
    """One job's outcome: ``value`` (a0) or ``error`` (the typed vmcore
    error, or the exception the local API would raise); ``gas`` is the gas
    left (None without metering); ``attempts`` counts tries (> 1 after a
    lost actor); ``worker`` is the actor's slot."""
    index: int
    value: Optional[int] = None
    error: Optional[BaseException] = None
    gas: Optional[int] = None
    seconds: float = 0.0
    attempts: int = 1
    worker: int = -1

    @property
    def ok(self) -> bool:
        return self.error is None

    def result(self) -> int:
        """The value, or raise the job's error."""
        if self.error is not None:
            raise self.error
        return self.value  # type: ignore[return-value]


def _portable(error: BaseException) -> BaseException:
    """error, or a same-typed stand-in when it does not pickle."""
    try:
        pickle.dumps(error)
        return error
    except Exception:
        return SandboxError(f"{type(error).__name__}: {error} (the original error does not pickle)")


class NodeWorker:
    """The per-node (or per-CPU) actor: Programs by hash, a warm
    SandboxPool, reused Sandboxes per (program, metering, hostcalls).
    Created by :class:`Cluster` through ``ray.remote``; a plain object
    too (the tests and the benchmark drive it directly)."""

    def __init__(self, sandbox_options: Optional[dict] = None, hostcalls: Sequence[Tuple[str, str]] = (),
                 pool_size: int = 4, slot: int = -1) -> None:
        import vmcore
        self.options = dict(sandbox_options or {})
        self.registry = dict(hostcalls)
        self.slot = slot
        self.programs: Dict[str, Program] = {}
        self.shipped: Dict[str, int] = {}
        self._free: Dict[tuple, List[Any]] = {}
        self._resolved: Dict[str, Callable[..., Any]] = {}
        self._lock = threading.Lock()
        self.jobs = 0
        self.errors = 0
        if self.options.get("isolation", "auto") == "inline":
            self._pool = None
        else:
            self._pool = vmcore.SandboxPool(pool_size, min_idle=min(1, pool_size))
        self.started = time.time()

    # -- programs -----------------------------------------------------
    def ensure_program(self, digest: str, blob: Any, kind: str = "polkavm", isa: Optional[str] = None) -> bool:
        """Make the program with content hash ``digest`` available; ``blob``
        is its bytes or an ObjectRef to them (fetched only if unknown).
        True if it was loaded now."""
        if digest in self.programs:
            return False
        if not isinstance(blob, (bytes, bytearray, memoryview)):
            blob = _ray().get(blob)
        blob = bytes(blob)
        if hashlib.sha256(blob).hexdigest() != digest:
            raise ValueError(f"program blob does not match its hash {digest[:12]}")
        program = _load_program(kind, isa, blob)
        with self._lock:
            if digest not in self.programs:
                self.programs[digest] = program
                self.shipped[digest] = self.shipped.get(digest, 0) + 1
        return True

    def _hostcall(self, spec: str) -> Callable[..., Any]:
        fn = self._resolved.get(spec)
        if fn is None:
            fn = self._resolved[spec] = _resolve(spec)
        return fn

    def _sandbox(self, digest: str, metered: bool, specs: Tuple[Tuple[str, str], ...]):
        import vmcore
        key = (digest, metered, specs)
        with self._lock:
            free = self._free.get(key)
            if free:
                return key, free.pop()
        names = dict(self.registry)
        names.update(specs)
        program = self.programs[digest]
        hostcalls = {n: self._hostcall(s) for n, s in names.items() if n in program.imports}
        options = dict(self.options)
        if self._pool is not None and options.get("isolation", "auto") != "inline":
            options.setdefault("pool", self._pool)
        sb = vmcore.Sandbox(program, gas=0 if metered else None, hostcalls=hostcalls, **options)
        return key, sb

    def _give_back(self, key: tuple, sb: Any, error: Optional[BaseException]) -> None:
        if sb.closed or isinstance(error, (SandboxError, Timeout)):
            sb.close()  # a dead or interrupted process is not reused
            return
        with self._lock:
            free = self._free.setdefault(key, [])
            if len(free) < 4:
                free.append(sb)
                return
        sb.close()

    # -- jobs ---------------------------------------------------------
    def run_one(self, job: tuple) -> tuple:
        """One job ``(index, digest, [ref], kind, isa, export, args, gas,
        timeout, hostcall specs)`` -> ``(index, value, error, gas, seconds)``."""
        index, digest, box, kind, isa, export, args, gas, timeout, specs = job
        t0 = time.perf_counter()
        try:
            if digest not in self.programs:
                self.ensure_program(digest, box[0], kind, isa)
            key, sb = self._sandbox(digest, gas is not None, specs)
        except BaseException as e:  # bad program or hostcall: the job's error
            self.errors += 1
            return index, None, _portable(e), None, time.perf_counter() - t0
        error = None
        value = left = None
        try:
            sb.reset()
            if gas is not None:
                sb.gas = gas
            value = sb.call(export, *args, timeout=timeout)
        except BaseException as e:
            error = e
        if error is None or not isinstance(error, SandboxError):
            try:
                left = sb.gas
            except VmError:
                left = None
        self._give_back(key, sb, error)
        with self._lock:
            self.jobs += 1
            self.errors += error is not None
        return index, value, None if error is None else _portable(error), left, time.perf_counter() - t0

    def run_batch(self, jobs: Sequence[tuple]) -> List[tuple]:
        """run_one for each job, in order."""
        return [self.run_one(job) for job in jobs]

    def run_fuzz_chunk(self, target: str, seed: int, start: int, stop: int, budget: Optional[float],
                       options: Optional[dict] = None, plant: Optional[dict] = None) -> dict:
        """Cases start..stop-1 of a fuzz target (vmcore.ray_fuzz.run_chunk)."""
        from vmcore.ray_fuzz import run_chunk
        out = run_chunk(target, seed, start, stop, budget, options or {}, plant)
        out["worker"] = (self.slot, os.getpid())
        return out

    def stats(self) -> dict:
        """What this actor did: jobs, errors, programs held, blobs fetched
        per hash, its pid and node."""
        node = None
        try:
            node = _ray().get_runtime_context().get_node_id()
        except Exception:
            pass
        return {"slot": self.slot, "pid": os.getpid(), "node": node, "jobs": self.jobs, "errors": self.errors,
                "programs": len(self.programs), "shipped": dict(self.shipped),
                "pool_started": getattr(self._pool, "started", 0), "uptime": time.time() - self.started}

    def ping(self) -> int:
        return os.getpid()

    def close(self) -> None:
        with self._lock:
            free, self._free = self._free, {}
        for sandboxes in free.values():
            for sb in sandboxes:
                sb.close()
        if self._pool is not None:
            self._pool.close()


# =====================================================================
# The client
# =====================================================================

class _Task:
    """One actor call in flight (a batch of jobs or a fuzz chunk)."""
    __slots__ = ("method", "args", "done", "lost", "attempts", "slot", "generation", "size")

    def __init__(self, method: str, args: tuple, done: Callable[[Any, "_Task"], None],
                 lost: Callable[[BaseException, "_Task"], None], size: int = 1) -> None:
        self.method, self.args, self.done, self.lost = method, args, done, lost
        self.attempts = 0
        self.slot = -1
        self.generation = -1
        self.size = size


class JobFuture:
    """The pending result of :meth:`Cluster.submit`."""

    def __init__(self, cluster: "Cluster", index: int) -> None:
        self._cluster = cluster
        self.index = index
        self._result: Optional[JobResult] = None

    def done(self) -> bool:
        return self._result is not None

    def job_result(self, timeout: Optional[float] = None) -> JobResult:
        """The JobResult (waits; TimeoutError past ``timeout`` seconds)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._result is None:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise TimeoutError(f"job {self.index} is not finished after {timeout} s")
            self._cluster._step(left)
        return self._result

    def result(self, timeout: Optional[float] = None) -> int:
        """a0, or raise the job's typed error."""
        return self.job_result(timeout).result()


class Cluster:
    """Sandboxes on a Ray cluster.

    ``address``: passed to ``ray.init`` when Ray is not initialized yet
    (None starts a local cluster or joins ``RAY_ADDRESS``; ``"auto"``
    joins a running one); ``init`` extra ``ray.init`` arguments (e.g.
    ``{"num_cpus": 2}``).  A cluster started here is shut down by close().

    ``actors``: how many NodeWorker actors (default: one per alive node;
    ``per="cpu"``: one per CPU); ``threads`` calls run concurrently in each
    actor (the GIL is released while guests run).  ``max_in_flight``
    batches are queued per actor at most; ``batch_size`` jobs go in one
    actor call in map() (default 32).  ``max_retries``: how often a job whose
    actor died is retried on the replacement before it fails with
    WorkerLost.

    ``backend``, ``isolation``, ``memory_limit``, ``strict``, ``page_size``,
    ``heap``: as for vmcore.Sandbox, for every sandbox; ``hostcalls``: a
    registry (import name -> module-level function or "module:function")
    every actor serves; ``pool_size``: idle sandbox processes per actor.
    """

    def __init__(self, address: Optional[str] = None, *, actors: Optional[int] = None, per: str = "node",
                 threads: int = 1, max_in_flight: int = 2, batch_size: int = 32, max_retries: int = 2,
                 backend: str = "auto", isolation: str = "auto", memory_limit: Optional[int] = None,
                 strict: bool = False, page_size: Optional[int] = None, heap: Any = None,
                 hostcalls: Optional[Mapping[str, Any]] = None, pool_size: int = 4, num_cpus: float = 1,
                 init: Optional[dict] = None) -> None:
        ray = _ray()
        for name, value, low in (("threads", threads, 1), ("max_in_flight", max_in_flight, 1),
                                 ("batch_size", batch_size, 1), ("max_retries", max_retries, 0),
                                 ("pool_size", pool_size, 0)):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
        if per not in ("node", "cpu"):
            raise ValueError(f"per must be 'node' or 'cpu', got {per!r}")
        if actors is not None and (not isinstance(actors, int) or isinstance(actors, bool) or actors < 1):
            raise ValueError(f"actors must be an int >= 1 or None, got {actors!r}")
        options: Dict[str, Any] = {"backend": backend, "isolation": isolation}
        for key, value in (("memory_limit", memory_limit), ("page_size", page_size), ("heap", heap)):
            if value is not None:
                options[key] = value
        if strict:
            options["strict"] = True
        self._options = options
        self._registry = _hostcall_specs(hostcalls)
        self._owns_ray = False
        if not ray.is_initialized():
            ray.init(address=address, **dict(init or {}))
            self._owns_ray = True
        self.max_in_flight = max_in_flight
        self.batch_size = batch_size
        self.max_retries = max_retries
        self._threads = threads
        self._pool_size = pool_size
        self._num_cpus = num_cpus
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        if actors is None:
            if per == "node":
                actors = max(1, len(nodes))
            else:
                actors = max(1, int(sum(n.get("Resources", {}).get("CPU", 0) for n in nodes) // max(num_cpus, 1e-9)))
        self._node_ids = [n["NodeID"] for n in nodes] if per == "node" else []
        self._remote_cls = ray.remote(NodeWorker)
        self.actors: List[Any] = []
        self._generation: List[int] = []
        for slot in range(actors):
            self.actors.append(self._new_actor(slot))
            self._generation.append(0)
        self._inflight: Dict[Any, _Task] = {}
        self._per_slot = [0] * actors
        self._programs: Dict[str, RemoteProgram] = {}
        self._lock = threading.RLock()
        self.counters = collections.Counter()  # submitted, completed, retried, lost, replaced
        self._closed = False

    # -- actors -------------------------------------------------------
    def _new_actor(self, slot: int):
        opts: Dict[str, Any] = {"num_cpus": self._num_cpus, "max_restarts": 0, "max_task_retries": 0}
        if self._threads > 1:
            opts["max_concurrency"] = self._threads
        if self._node_ids:
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
            opts["scheduling_strategy"] = NodeAffinitySchedulingStrategy(
                self._node_ids[slot % len(self._node_ids)], soft=True)
        elif len(self.actors) > 0 or slot > 0:
            opts["scheduling_strategy"] = "SPREAD"
        return self._remote_cls.options(**opts).remote(self._options, self._registry, self._pool_size, slot)

    def _replace(self, slot: int, generation: int) -> None:
        if self._generation[slot] != generation:
            return  # already replaced after an earlier loss
        try:
            _ray().kill(self.actors[slot], no_restart=True)
        except Exception:
            pass
        self.actors[slot] = self._new_actor(slot)
        self._generation[slot] += 1
        self.counters["replaced"] += 1

    # -- dispatch -----------------------------------------------------
    def _capacity(self) -> int:
        return len(self.actors) * self.max_in_flight - len(self._inflight)

    def _send(self, task: _Task) -> None:
        """Send to the least busy actor, waiting for room first."""
        while self._capacity() <= 0:
            self._step(None)
        slot = min(range(len(self.actors)), key=lambda s: self._per_slot[s])
        task.slot, task.generation = slot, self._generation[slot]
        task.attempts += 1
        ref = getattr(self.actors[slot], task.method).remote(*task.args)
        self._inflight[ref] = task
        self._per_slot[slot] += 1

    def _step(self, timeout: Optional[float]) -> int:
        """Wait for at least one actor call (up to ``timeout``), process
        what finished; returns how many calls finished."""
        ray = _ray()
        with self._lock:
            if not self._inflight:
                return 0
            ready, _ = ray.wait(list(self._inflight), num_returns=1, timeout=timeout)
            if ready:  # collect everything else already done too
                more, _ = ray.wait([r for r in self._inflight if r not in ready],
                                   num_returns=len(self._inflight) - len(ready), timeout=0)
                ready = ready + more
            for ref in ready:
                task = self._inflight.pop(ref)
                self._per_slot[task.slot] -= 1
                try:
                    value = ray.get(ref)
                except (ray.exceptions.RayActorError, ray.exceptions.ObjectLostError) as e:  # actor/node gone
                    self._replace(task.slot, task.generation)
                    if task.attempts <= self.max_retries:
                        self.counters["retried"] += task.size
                        self._send(task)
                    else:
                        self.counters["lost"] += task.size
                        task.lost(WorkerLost(f"the actor running this job died {task.attempts} times "
                                             f"({type(e).__name__}); not retried again",
                                             attempts=task.attempts), task)
                    continue
                except ray.exceptions.RayTaskError as e:  # the actor method itself raised
                    cause = getattr(e, "cause", None) or e
                    task.lost(_portable(cause), task)
                    continue
                task.done(value, task)
            return len(ready)

    # -- programs -----------------------------------------------------
    def program(self, source: Any, *, kind: Optional[str] = None, isa: Optional[str] = None) -> RemoteProgram:
        """Put a program (vmcore.Program, bytes or a path; ``kind`` polkavm
        (default), raw or jam-standard for bytes) in the object store once;
        the same content returns the same RemoteProgram."""
        if isinstance(source, RemoteProgram):
            return source
        program, blob, kind = _as_program(source, kind, isa)
        digest = hashlib.sha256(blob).hexdigest()
        remote = self._programs.get(digest)
        if remote is None:
            remote = self._programs[digest] = RemoteProgram(program, blob, kind, isa, _ray().put(blob))
        return remote

    def preload(self, source: Any, **kwargs: Any) -> RemoteProgram:
        """Ship a program to every actor now (otherwise each fetches it at
        its first job)."""
        remote = self.program(source, **kwargs)
        _ray().get([a.ensure_program.remote(remote.sha256, remote.ref, remote.kind, remote.isa)
                    for a in self.actors])
        return remote

    # -- jobs ---------------------------------------------------------
    @staticmethod
    def _job(index: int, remote: RemoteProgram, export: Union[str, int], args: Any, gas: Optional[int],
             timeout: Optional[float], specs: Tuple[Tuple[str, str], ...]) -> tuple:
        """The wire form of a job; ``index`` routes its result back (the
        input's position in map())."""
        if isinstance(args, int) and not isinstance(args, bool):
            args = (args,)
        elif isinstance(args, (tuple, list)):
            args = tuple(args)
        else:
            raise TypeError(f"job arguments must be an int or a tuple of ints, got {type(args).__name__}")
        if len(args) > MAX_ARGS:
            raise TypeError(f"at most {MAX_ARGS} arguments can be passed in registers, got {len(args)}")
        for value in args:
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"call arguments must be ints, got {type(value).__name__}")
        return (index, remote.sha256, [remote.ref], remote.kind, remote.isa, export, args, gas, timeout, specs)

    @staticmethod
    def _check(remote: RemoteProgram, export: Union[str, int], gas: Optional[int], timeout: Optional[float]) -> None:
        if isinstance(export, str):
            remote.program.export_pc(export)  # the local API's error for an unknown export
        elif not isinstance(export, int) or isinstance(export, bool) or not 0 <= export <= 0xFFFFFFFF:
            raise TypeError(f"export must be a name or a program counter, got {export!r}")
        if gas is not None and (not isinstance(gas, int) or isinstance(gas, bool)):
            raise TypeError(f"gas must be an int or None, got {type(gas).__name__}")
        if gas is not None and not -(1 << 63) <= gas < 1 << 63:
            raise ValueError(f"gas must be a signed 64-bit int, got {gas!r}")
        if timeout is not None and (not isinstance(timeout, (int, float)) or isinstance(timeout, bool)
                                    or not timeout > 0):
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")

    def _batch_task(self, jobs: List[tuple], sink: Callable[[JobResult], None]) -> _Task:
        def done(rows: List[tuple], task: _Task) -> None:
            for index, value, error, gas, seconds in rows:
                self.counters["completed"] += 1
                sink(JobResult(index, value, error, gas, seconds, task.attempts, task.slot))

        def lost(error: BaseException, task: _Task) -> None:
            for job in jobs:
                self.counters["completed"] += 1
                sink(JobResult(job[0], None, error, None, 0.0, task.attempts, task.slot))

        self.counters["submitted"] += len(jobs)
        return _Task("run_batch", (jobs,), done, lost, len(jobs))

    def submit(self, program: Any, export: Union[str, int], *args: int, gas: Optional[int] = None,
               timeout: Optional[float] = None, hostcalls: Optional[Mapping[str, Any]] = None) -> JobFuture:
        """Queue one call; returns a JobFuture (result() gives a0 or raises
        the typed error).  Blocks while every actor has max_in_flight
        calls queued."""
        self._open()
        remote = self.program(program)
        self._check(remote, export, gas, timeout)
        job = self._job(0, remote, export, args, gas, timeout, _hostcall_specs(hostcalls))
        future = JobFuture(self, 0)

        def sink(result: JobResult) -> None:
            future._result = result
        with self._lock:
            self._send(self._batch_task([job], sink))
        return future

    def call(self, program: Any, export: Union[str, int], *args: int, gas: Optional[int] = None,
             timeout: Optional[float] = None, hostcalls: Optional[Mapping[str, Any]] = None) -> int:
        """Run one call on the cluster and return a0 (or raise its error)."""
        return self.submit(program, export, *args, gas=gas, timeout=timeout, hostcalls=hostcalls).result()

    def results(self, program: Any, export: Union[str, int], inputs: Iterable[Any], *, gas: Optional[int] = None,
                timeout: Optional[float] = None, hostcalls: Optional[Mapping[str, Any]] = None,
                ordered: bool = True, batch_size: Optional[int] = None, progress: Any = False
                ) -> Iterator[JobResult]:
        """A JobResult per input (an int or a tuple of ints: the call's
        arguments), in input order (``ordered=True``) or as completed;
        ``JobResult.index`` is the input's position.  Inputs are read
        lazily, as in-flight room frees up.  ``progress=True`` (or a string
        label) shows a tqdm bar.  In order, at most max(64, 4 x actors x
        max_in_flight x batch_size) results are held ahead of the one
        being waited for."""
        self._open()
        remote = self.program(program)
        self._check(remote, export, gas, timeout)
        specs = _hostcall_specs(hostcalls)
        batch_size = batch_size or self.batch_size
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
        total = len(inputs) if hasattr(inputs, "__len__") else None  # type: ignore[arg-type]
        bar = _progress_bar(progress, total, "jobs")
        source = iter(inputs)
        done: Dict[int, JobResult] = {}
        finished: Deque[JobResult] = collections.deque()
        sent = yielded = 0
        exhausted = False
        next_out = 0
        window = max(4 * len(self.actors) * self.max_in_flight * batch_size, 64)

        def sink(result: JobResult) -> None:
            if ordered:
                done[result.index] = result
            else:
                finished.append(result)

        try:
            while True:
                with self._lock:
                    while not exhausted and self._capacity() > 0 and (sent - yielded) < window:
                        jobs = []
                        for item in source:
                            jobs.append(self._job(sent + len(jobs), remote, export, item, gas, timeout, specs))
                            if len(jobs) >= batch_size:
                                break
                        else:
                            exhausted = True
                        if jobs:
                            sent += len(jobs)
                            self._send(self._batch_task(jobs, sink))
                if ordered:
                    while next_out in done:
                        result = done.pop(next_out)
                        next_out += 1
                        yielded += 1
                        bar.update(1)
                        yield result
                else:
                    while finished:
                        yielded += 1
                        bar.update(1)
                        yield finished.popleft()
                if exhausted and yielded == sent:
                    break
                if self._step(None) == 0 and exhausted and yielded < sent and not done and not finished:
                    raise RuntimeError(f"vmcore.ray lost track of {sent - yielded} jobs")  # pragma: no cover
        finally:
            bar.close()
        if yielded != sent:  # pragma: no cover - the loop only ends when they match
            raise RuntimeError(f"{sent} jobs submitted but {yielded} results")

    def map(self, program: Any, export: Union[str, int], inputs: Iterable[Any], *, gas: Optional[int] = None,
            timeout: Optional[float] = None, hostcalls: Optional[Mapping[str, Any]] = None,
            return_exceptions: bool = False, batch_size: Optional[int] = None, progress: Any = False
            ) -> Iterator[Any]:
        """a0 of each call, in input order; a failed job raises its typed
        error when reached (``return_exceptions=True``: yields it instead)."""
        for r in self.results(program, export, inputs, gas=gas, timeout=timeout, hostcalls=hostcalls,
                              ordered=True, batch_size=batch_size, progress=progress):
            if r.error is not None and not return_exceptions:
                raise r.error
            yield r.value if r.error is None else r.error

    def run_tasks(self, method: str, calls: Iterable[tuple], *, progress: Any = False, total: Optional[int] = None,
                  size: Callable[[tuple], int] = lambda args: 1) -> Iterator[Tuple[int, Any, Optional[BaseException]]]:
        """Run ``NodeWorker.<method>(*args)`` for each args, as completed,
        with the same back-pressure and retries as jobs: yields
        ``(position, value, error)`` (vmcore.ray_fuzz uses this)."""
        self._open()
        out: Deque[Tuple[int, Any, Optional[BaseException]]] = collections.deque()
        bar = _progress_bar(progress, total, "chunks")
        sent = yielded = 0
        source = iter(enumerate(calls))
        exhausted = False
        try:
            while True:
                with self._lock:
                    while not exhausted and self._capacity() > 0:
                        item = next(source, None)
                        if item is None:
                            exhausted = True
                            break
                        position, args = item
                        task = _Task(method, tuple(args),
                                     lambda v, t, p=position: out.append((p, v, None)),
                                     lambda e, t, p=position: out.append((p, None, e)), size(args))
                        sent += 1
                        self._send(task)
                while out:
                    yielded += 1
                    bar.update(1)
                    yield out.popleft()
                if exhausted and yielded == sent:
                    break
                self._step(None)
        finally:
            bar.close()

    # -- lifecycle ----------------------------------------------------
    def stats(self) -> List[dict]:
        """Each actor's NodeWorker.stats()."""
        return _ray().get([a.stats.remote() for a in self.actors])

    def _open(self) -> None:
        if self._closed:
            raise SandboxError("the vmcore.ray Cluster is closed")

    def close(self) -> None:
        """Wait for nothing: end the actors (and Ray, if started here)."""
        if self._closed:
            return
        self._closed = True
        ray = _ray()
        for actor in self.actors:
            try:
                ray.kill(actor, no_restart=True)
            except Exception:
                pass
        self._inflight.clear()
        if self._owns_ray:
            ray.shutdown()

    def __enter__(self) -> "Cluster":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<vmcore.ray.Cluster {len(self.actors)} actors, {len(self._inflight)} calls in flight>"


class _NoProgressBar:
    """What the loops update when no bar is asked for."""

    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress_bar(progress: Any, total: Optional[int], unit: str):
    if not progress:
        return _NoProgressBar()
    try:
        from tqdm import tqdm
    except ImportError:
        raise ImportError('progress bars need tqdm: pip install "vmcore[ray]"') from None
    return tqdm(total=total, unit=unit, desc=progress if isinstance(progress, str) else None, leave=False)


__all__ = ["Cluster", "NodeWorker", "RemoteProgram", "JobResult", "JobFuture", "WorkerLost", "hostcall_spec",
           "INSTALL_HINT"]
