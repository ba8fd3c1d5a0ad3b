"""vmcore.Sandbox: run a Program from Python with hostcalls, calls, guest
memory access, heap policy, gas metering and typed errors.

The Sandbox holds policy (calling convention, the hostcall registry, how an
exit becomes an exception); the engine guest (vmcore._engine.Instance or
Process) holds the registers and memory and runs, and the backend
(vmcore.backends) its lifecycle: install, reset, close, restart."""
from __future__ import annotations

import functools
import inspect
from typing import TYPE_CHECKING, Any, Callable, Dict, Literal, Optional, Union

from vmcore import _engine, abi, debuginfo, exits, gas as _gas, interrupts
from vmcore.backends import IsolationReport, select
from vmcore.caller import Registers
from vmcore.errors import ImportNotFound, SandboxBusy, SandboxError, Timeout, VmError
from vmcore.heap import HeapPolicy
from vmcore.host_functions import Hostcall, HostFunctions, check_gas, hostcall_entry
from vmcore.memory import GuestMemory
from vmcore.memory_map import check_page_size
from vmcore.program import DEFAULT_PAGE_SIZE, Program
from vmcore.snapshot import Snapshot
from vmcore.watchdog import deadline

if TYPE_CHECKING:
    from vmcore.pool import SandboxPool

#: What ``Sandbox(backend=)`` accepts and what ``Sandbox.backend`` reports
#: ("auto" is resolved at construction, never reported).
Backend = Literal["auto", "interpreter", "compiler"]
#: What ``Sandbox(isolation=)`` accepts and what ``Sandbox.isolation`` reports.
Isolation = Literal["auto", "inline", "process"]

RETURN_TO_HOST = abi.RETURN_TO_HOST
# Argument registers in the reference calling convention's order (abi.h).
ARG_REGS = abi.ARG_REGS
_ARG_NAMES = abi.ARG_NAMES
RA, SP, A0, A1 = abi.REG_RA, abi.REG_SP, abi.REG_A0, abi.REG_A1


_DEFAULT_HEAP = HeapPolicy()


def _limit_heap(heap: HeapPolicy, memory_map, memory_limit: Optional[int]) -> HeapPolicy:
    """The heap policy under a cap on the guest memory that may ever be
    accessible (read-only data, read-write data, stack, aux data and the
    heap at its largest)."""
    if memory_limit is None:
        return heap
    if not isinstance(memory_limit, int) or isinstance(memory_limit, bool) or memory_limit < 0:
        raise ValueError(f"memory_limit must be a number of bytes or None, got {memory_limit!r}")
    m = memory_map
    fixed = m.ro_data_size + m.rw_data_size + m.stack_size + m.aux_data_size
    if fixed > memory_limit:
        raise SandboxError(
            f"the program needs {fixed:,} bytes of guest memory before any heap (read-only data "
            f"{m.ro_data_size:,}, read-write data {m.rw_data_size:,}, stack {m.stack_size:,}, aux data "
            f"{m.aux_data_size:,}) but memory_limit is {memory_limit:,}")
    cap = min(memory_limit - fixed, 0xFFFFFFFF)
    if heap.initial_size > cap:
        raise SandboxError(f"the heap policy's initial_size ({heap.initial_size:,} bytes) does not fit in "
                           f"memory_limit: {cap:,} bytes are left for the heap")
    max_size = cap if heap.max_size is None else min(heap.max_size, cap)
    return HeapPolicy(initial_size=heap.initial_size, max_size=max_size, grow_by_pages=heap.grow_by_pages,
                      enabled=heap.enabled)


def _recipe(program: Program, backend: str, isolation: str, gas_metering: bool, page_size: Optional[int],
            heap: Optional[HeapPolicy], strict: bool, auto_restart: bool, pool: Optional["SandboxPool"],
            memory_limit: Optional[int], gas_model: Optional[str]) -> tuple:
    """What a Sandbox's options resolve to, checked: (backend factory, why
    'auto' fell back, memory map, heap policy, gas model, what the backend
    prepared for them, backend options, register mask).  Raises what
    Sandbox() documents for bad options."""
    if heap is not None and not isinstance(heap, HeapPolicy):
        raise TypeError(f"heap must be a vmcore.HeapPolicy, got {type(heap).__name__}")
    model = _gas.resolve(gas_model, program.isa)
    page_size = DEFAULT_PAGE_SIZE if page_size is None else check_page_size(page_size)
    if strict and isolation == "auto":
        isolation = "process"  # strict isolation only exists in a sandbox process
    factory, fallback = select(backend, isolation)
    memory_map = program.memory_map(page_size)
    heap_policy = _limit_heap(heap or _DEFAULT_HEAP, memory_map, memory_limit)
    # Options only a sandbox process has; the inline backend refuses strict.
    options: Dict[str, Any] = {k: v for k, v in (("strict", strict), ("auto_restart", auto_restart)) if v}
    if pool is not None:
        options["pool"] = pool
    mask = 0xFFFFFFFFFFFFFFFF if program.is_64_bit else 0xFFFFFFFF
    prepared = factory.prepare(program, memory_map, heap_policy, gas_metering, model)
    return factory, fallback, memory_map, heap_policy, model, prepared, options, mask


class Sandbox(_engine.SandboxCore):
    """One guest instance of a :class:`~vmcore.Program`.

    >>> sb = Sandbox(program, gas=10_000_000)
    >>> @sb.hostcall("get_third_number")
    ... def get_third_number(caller) -> int:
    ...     return 100
    >>> sb.call("add_numbers", 1, 10)

    Args:
        program: the parsed guest (:class:`vmcore.Program`); one Program may
            back any number of sandboxes, its compiled code is shared.
        backend: ``"interpreter"`` (the C interpreter), ``"compiler"``
            (native x86-64 code from the recompiler; implies
            ``isolation="process"``) or ``"auto"``: the interpreter inline,
            or with ``isolation="process"`` the compiler where the CPU can
            run it.  ``SandboxError`` if the combination cannot run here.
        isolation: ``"inline"`` (the guest runs in this process, no extra
            process), ``"process"`` (a confined sandbox process per sandbox,
            taken from ``pool``) or ``"auto"`` (inline, unless ``strict`` or
            ``backend="compiler"`` asks for a process).
        gas: the gas the guest starts with (and gets back on :meth:`reset`);
            ``None`` turns metering off (``gas`` then reads ``None``).
        page_size: guest page size in bytes, a power of two from 4 KiB to
            64 KiB (default 4 KiB); it shapes the memory map.
        heap: a :class:`vmcore.HeapPolicy` (initial heap, maximum, growth
            step); default: an empty heap that may grow up to the stack.
        hostcalls: ``{import name: function}`` registered at once, as with
            :meth:`register_hostcall`.
        functions: a :class:`vmcore.HostFunctions` shared with other
            sandboxes (default: the pool's ``functions``, if any); this
            sandbox's ``hostcalls`` and :meth:`register_hostcall` override
            it for the same import.
        strict: refuse to start unless every protection of the sandbox
            process is active (see :meth:`isolation_report`); implies
            ``isolation="process"``.
        auto_restart: (process isolation) replace a sandbox process that
            died with a fresh one at the next call instead of staying
            closed; the guest starts over from its initial state.
        pool: (process isolation) the :class:`vmcore.SandboxPool` to take
            the sandbox process from and give it back to on close; default
            ``SandboxPool.default()``.
        memory_limit: cap in bytes on all guest memory that can ever be
            accessible (data, stack, aux data, the heap at its largest);
            ``SandboxError`` if the program needs more before any heap.
            ``None``: no cap beyond the memory map.
        gas_model: the cost model gas is metered with (:mod:`vmcore.gas`):
            ``"naive"`` (1 per instruction), ``"full"`` (the Gray Paper 0.8
            pipeline model with L2-hit loads, PolkaVM's Full(L2Hit)),
            ``"full-l1"`` or ``"full-l3"``; ``None`` (the default) is
            ``"full"`` for jam_v1 programs and ``"naive"`` for the others.

    Raises:
        TypeError: ``program``, ``gas``, ``heap``, ``pool`` or
            ``functions`` of the wrong type.
        ValueError: an unknown ``backend``/``isolation`` or a bad
            ``page_size``/``memory_limit``.
        SandboxError: the backend cannot run here, ``strict`` cannot be
            met, or ``memory_limit`` is too small.
    """

    # Sandbox(), call and close are SandboxCore's (vmcore/engine/sandbox_core.pyx).
    _make_recipe = staticmethod(_recipe)  # what SandboxCore.__init__ calls for options it has not seen

    def __init__(self, program: Program, *, backend: Backend = "auto", isolation: Isolation = "auto",
                 gas: Optional[int] = None, page_size: Optional[int] = None, heap: Optional[HeapPolicy] = None,
                 hostcalls: Optional[Dict[str, Hostcall]] = None, strict: bool = False,
                 auto_restart: bool = False, pool: Optional["SandboxPool"] = None,
                 memory_limit: Optional[int] = None,
                 gas_model: Optional[str] = None, functions: Optional[HostFunctions] = None) -> None:
        """Sandbox()'s signature and types, for inspect and type checkers:
        deleted below, the constructor is SandboxCore.__init__."""

    # Made on first use: most short-lived sandboxes never look at them.
    @functools.cached_property
    def regs(self) -> Registers:
        """The guest's 13 registers (by number or name; see Registers)."""
        return Registers(self)

    @functools.cached_property
    def memory(self) -> GuestMemory:
        """The guest's memory (read, write, views; see GuestMemory)."""
        return GuestMemory(self)

    # -- configuration ----------------------------------------------------
    @property
    def backend(self) -> Literal["interpreter", "compiler"]:
        """The backend running the guest: ``"interpreter"`` or ``"compiler"``."""
        return self._lifecycle().backend

    @property
    def isolation(self) -> Literal["inline", "process"]:
        """Where the guest runs: ``"inline"`` or ``"process"``."""
        return self._lifecycle().isolation

    @property
    def gas_model(self) -> str:
        """The cost model's name ("naive", "full", "full-l1", "full-l3")."""
        return self._gas_model.name

    @property
    def pid(self) -> Optional[int]:
        """The sandbox process's pid (None for inline isolation)."""
        return self._backend.pid

    def isolation_report(self) -> IsolationReport:
        """Which protections the sandbox process has in place (name ->
        active); empty for inline isolation.  Sandbox(..., strict=True)
        refuses to start unless every one is active.  ``.fallback`` says
        why backend="auto" fell back from its first choice (e.g. the
        recompiler is unavailable on this CPU), None when it did not."""
        return IsolationReport(self._lifecycle().isolation_report(), self._fallback)

    @property
    def counters(self) -> Dict[str, int]:
        """Handshake counters of a sandbox process: how often each side
        started waiting (``*_wait_loop_start``) and how often it had to
        sleep in futex_wait (``*_futex_wait``), how often the sandbox was
        moved off the calling thread's CPU (``host_repin``); empty for
        inline."""
        return dict(self._lifecycle().counters)

    def register_hostcall(self, name: str, fn: Hostcall, *, gas: int = 0) -> None:
        """Serve the import ``name`` with ``fn(caller, *args)`` (overriding
        the sandbox's ``functions`` for it), charging ``gas`` before each
        call when the sandbox is metered (as ``HostFunctions.define``
        does: OutOfGas, and ``fn`` does not run, when less is left);
        raises ImportNotFound (a KeyError) if the program has no such
        import."""
        if name not in self.program.imports:
            known = ", ".join(self.program.imports) or "none"
            raise ImportNotFound(f"the program has no import named {name!r} (imports: {known})", name=name)
        check_gas(gas)  # refused even where it would not be charged
        entry = hostcall_entry(fn, name, gas if self._gas_metering else 0)
        for i, imported in enumerate(self.program.imports):
            if imported == name:
                self._handlers[i] = entry

    def hostcall(self, name: str, *, gas: int = 0) -> Callable[[Hostcall], Hostcall]:
        """Decorator form of :meth:`register_hostcall`."""
        def register(fn: Hostcall) -> Hostcall:
            self.register_hostcall(name, fn, gas=gas)
            return fn
        return register

    # -- state --------------------------------------------------------------
    def _live(self) -> _engine.Guest:
        """The engine guest (registers, memory, runs): what GuestMemory,
        Registers and Caller work on."""
        guest = self._guest
        if guest is None:
            raise SandboxError("the sandbox is closed")
        return guest

    def _lifecycle(self):
        """The backend (install, reset, close, restart, introspection)."""
        if self._backend is None:
            raise SandboxError("the sandbox is closed")
        return self._backend

    @property
    def gas(self) -> Optional[int]:
        """Remaining gas (None when metering is off)."""
        return self._live().gas if self._gas_metering else None

    @gas.setter
    def gas(self, value: int) -> None:
        if not self._gas_metering:
            raise ValueError("gas metering is off for this sandbox (created with gas=None)")
        if not isinstance(value, int) or not -(1 << 63) <= value < 1 << 63:
            raise ValueError(f"gas must be a signed 64-bit int, got {value!r}")
        self._live().gas = value

    @property
    def pc(self) -> int:
        return self._live().pc

    @property
    def next_pc(self) -> int:
        return self._live().next_pc

    @property
    def heap_size(self) -> int:
        """Bytes of heap allocated: ``HeapPolicy.initial_size`` plus what
        sbrk added since (PolkaVM's ``heap_size()``; 0 with the default
        policy, as in PolkaVM)."""
        base, top, _, _ = self._live().heap_state()
        return top - base

    def sbrk(self, size: int) -> int:
        """Grow the heap by ``size`` bytes; returns the new heap end, 0 if it cannot grow."""
        if not isinstance(size, int) or not 0 <= size <= 0xFFFFFFFF:
            raise ValueError(f"sbrk size must be 0..2**32-1, got {size!r}")
        return self._live().sbrk(size)

    # -- running ------------------------------------------------------------
    def _idle(self):
        """The guest, if no call is in progress (SandboxBusy otherwise:
        what follows would pull the state out from under the call)."""
        b = self._live()
        if b.in_call:
            raise SandboxBusy("this sandbox is running a call (another thread, or one of its own hostcalls); "
                              "this can only be done between calls")
        return b

    def prepare_call(self, export: Union[str, int], *args: int) -> None:
        """Set up registers and pc for a call, for hosts driving :meth:`run`."""
        b = self._idle()
        if isinstance(export, str):
            pc = self.program.export_pc(export)
        elif isinstance(export, int) and 0 <= export <= 0xFFFFFFFF:
            pc = export
        else:
            raise TypeError(f"export must be a name or a program counter, got {export!r}")
        if len(args) > len(ARG_REGS):
            raise TypeError(f"at most {len(ARG_REGS)} arguments can be passed in registers, got {len(args)}")
        for i, (reg, value) in enumerate(zip(ARG_REGS, args)):
            if not isinstance(value, int):
                raise TypeError(f"call argument {i + 1} ({_ARG_NAMES[i]}) must be an int, got "
                                f"{type(value).__name__}: {value!r:.40}")
            b.set_reg(reg, value & 0xFFFFFFFFFFFFFFFF)
        b.set_reg(RA, RETURN_TO_HOST)
        b.set_reg(SP, self.memory_map.stack_address_high)
        exits.check_entry(b.set_pc(pc), pc)

    def _error_for(self, reason: int) -> VmError:
        """The exception for the guest's last exit ``reason``."""
        g = self._guest
        return debuginfo.attach_traceback(
            exits.error_for(reason, g.pc, g.arg, g.gas, self.program.imports, g.take_hostcall_error()), self.program)

    def run(self, timeout: Optional[float] = None, *, serve_hostcalls: bool = False) -> interrupts.Interrupt:
        """Run until the guest stops and say why, without raising for guest
        faults (the low-level interface): returns Finished, Ecalli,
        TrapInterrupt, OutOfGasInterrupt, PageFaultInterrupt or Step
        (vmcore.interrupts).  Hostcalls are not served (an ecalli returns
        Ecalli) unless ``serve_hostcalls``: then an ecalli of an import with
        a registered hostcall runs it, as :meth:`call` does, and the guest
        goes on (Ecalli only for imports without one; a hostcall that
        raises raises HostcallError, the guest stopped at its ecalli).
        Past ``timeout`` seconds (None / math.inf: no deadline) the guest
        is stopped and Timeout raised; run() again resumes it."""
        b = self._live()
        with deadline(b, timeout):
            reason = b.serve_hostcalls(self._handlers, self._caller, self._mask) if serve_hostcalls else b.run()
        if reason == _engine.EXIT_INTERRUPTED:
            raise debuginfo.attach_traceback(Timeout(
                f"run() passed its {timeout:g} s deadline; the guest was stopped at pc {b.pc}", pc=b.pc), self.program)
        if reason in (_engine.EXIT_BUSY, _engine.EXIT_HOSTCALL_ERROR, _engine.EXIT_HOSTCALL_OUT_OF_GAS):
            raise self._error_for(reason)
        pc = b.pc
        if reason == _engine.EXIT_FINISHED:
            return interrupts.Finished(pc)
        if reason == _engine.EXIT_ECALLI:
            n = b.arg
            name = self.program.imports[n] if n < len(self.program.imports) else ""
            return interrupts.Ecalli(pc, n, name)
        if reason == _engine.EXIT_TRAP:
            return interrupts.TrapInterrupt(pc, exits.trap_reason(b.arg))
        if reason == _engine.EXIT_OUT_OF_GAS:
            return interrupts.OutOfGasInterrupt(pc)
        if reason == _engine.EXIT_PAGEFAULT:
            return interrupts.PageFaultInterrupt(pc, b.arg)
        if reason == _engine.EXIT_STEP:
            return interrupts.Step(pc)
        raise SandboxError(f"unexpected exit {reason}", pc=pc)

    # -- asyncio (vmcore.aio) ------------------------------------------------
    async def call_async(self, export: Union[str, int], *args: int, timeout: Optional[float] = None) -> int:
        """:meth:`call` for asyncio: ``await sb.call_async("main", 1, 2)``.
        The guest runs in a worker thread while the loop goes on; ``async
        def`` hostcalls are awaited on this loop.  Cancelling the task
        (``asyncio.wait_for``, ``task.cancel()``) stops the guest, and
        CancelledError arrives only after it has stopped: the sandbox is
        idle and usable at once.  ``timeout`` as in :meth:`call`."""
        from vmcore import aio  # asyncio is imported only by those who use it
        return await aio.call_async(self, export, *args, timeout=timeout)

    def set_step_tracing(self, enabled: bool) -> None:
        """Stop before every instruction (run() returns Step).  Between
        calls only (SandboxBusy from a hostcall or while another thread's
        call runs); a prepared or stopped guest continues at its pc."""
        b = self._idle()
        resume = b.can_resume()
        pc = b.pc
        self._lifecycle().set_step_tracing(enabled)
        self._stepping = enabled
        if resume:
            b.set_pc(pc)

    # -- public entry points for tools and embedders (vectors, JAM, crosscheck) --
    # Everything vmcore's own tools need beyond call(): vectors and vectors_v05
    # (jump, block_gas_costs), crosscheck (run(serve_hostcalls=True),
    # memory.accessible_spans()).
    def jump(self, pc: int) -> None:
        """Make the guest continue at ``pc`` with its registers, gas and
        memory as they are (for hosts driving :meth:`run`; :meth:`prepare_call`
        also sets up the arguments, return address and stack).  Raises Trap
        if ``pc`` is not an instruction (``vmcore.abi.ENTRY_NOT_AN_INSTRUCTION``)
        and OutOfGas if the gas does not cover the block it starts
        (``vmcore.abi.ENTRY_OUT_OF_GAS``); between calls only."""
        if not isinstance(pc, int) or isinstance(pc, bool) or not 0 <= pc <= 0xFFFFFFFF:
            raise TypeError(f"pc must be an int 0..2**32-1, got {pc!r}")
        exits.check_entry(self._idle().set_pc(pc), pc)

    def block_gas_costs(self) -> Dict[int, int]:
        """The gas the engine running this sandbox charges on entering each
        basic block, read back from its compiled code (threaded code, or
        the recompiler's native code): ``{block start pc: cost}``.  The
        same as ``program.block_gas_costs(sandbox.gas_model)`` unless an
        engine is wrong, which is what the v0.5 test vectors check."""
        self._live()
        return dict(self._guest.module.block_costs())

    # -- lifecycle ----------------------------------------------------------
    def reset(self) -> None:
        """Restore registers, gas and memory to the freshly-instantiated
        state.  Between calls only (SandboxBusy during one)."""
        self._idle()
        self._lifecycle().reset()

    # -- snapshots (vmcore.snapshot) -----------------------------------------
    def snapshot(self) -> Snapshot:
        """Capture registers, gas, pc, heap, page permissions and guest
        memory (copy-on-write inline).  Between calls, or inline also where
        run() stopped inside one (an ecalli, a step, a timeout): restoring
        such a snapshot resumes there.  SandboxBusy during a call,
        SnapshotError for a sandbox process stopped inside a call."""
        return Snapshot(self)

    def restore(self, snapshot: Snapshot) -> None:
        """Put the sandbox back to ``snapshot`` (taken from this sandbox
        or any other of the same program, page size, heap policy and gas
        metering, in any mode).  Inline it costs only what the guest
        touched since; a sandbox process copies the snapshot's memory back.
        Hostcalls stay as registered.  SnapshotError when the snapshot
        does not fit, SandboxBusy during a call, BufferError while
        memory.view() buffers are alive, SandboxError once closed."""
        if not isinstance(snapshot, Snapshot):
            raise TypeError(f"restore needs a vmcore Snapshot, got {type(snapshot).__name__}")
        snapshot.restore_into(self)

    @classmethod
    def from_snapshot(cls, snapshot: Snapshot, **options: Any) -> "Sandbox":
        """A new sandbox in the state of ``snapshot``: its program, page
        size, heap policy, memory limit and gas model, with ``options`` as
        for Sandbox() (backend, isolation, hostcalls, pool, strict, ...;
        hostcalls are not part of a snapshot).  Inline, a fork shares the
        snapshot's pages until it writes them."""
        if not isinstance(snapshot, Snapshot):
            raise TypeError(f"from_snapshot needs a vmcore Snapshot, got {type(snapshot).__name__}")
        for fixed in ("page_size", "heap", "memory_limit", "gas", "gas_model"):
            if fixed in options:
                raise TypeError(f"from_snapshot takes {fixed} from the snapshot")
        sb = cls(snapshot.program, page_size=snapshot.page_size, heap=snapshot.heap_policy,
                 memory_limit=snapshot.memory_limit, gas=0 if snapshot.gas_metering else None,
                 gas_model=snapshot.gas_model, **options)
        try:
            sb.restore(snapshot)
        except BaseException:
            sb.close()
            raise
        return sb

    # Sandbox.close is SandboxCore.close (vmcore/engine/sandbox_core.pyx).

    @property
    def closed(self) -> bool:
        """True after close(), and once the sandbox process died (without
        ``auto_restart``, such a sandbox can never run again)."""
        guest = self._guest
        if guest is None:
            return True
        if not isinstance(guest, _engine.Process):
            return False
        return guest.closed or (guest.restart is None and not guest.alive)

    def __enter__(self) -> "Sandbox":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._backend is None else f"{self.backend}/{self.isolation}"
        return f"<Sandbox {state} {self.program!r}>"


# Sandbox() runs the compiled SandboxCore.__init__ (vmcore/engine/sandbox_core.pyx);
# the Python __init__ above only gave its signature.
Sandbox.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
    list(inspect.signature(Sandbox.__init__).parameters.values())[1:])
del Sandbox.__init__
