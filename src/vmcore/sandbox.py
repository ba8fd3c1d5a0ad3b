"""vmcore.Sandbox: run a Program from Python with hostcalls, calls, guest
memory access, heap policy, gas metering and typed errors.

The Sandbox holds policy (calling convention, the hostcall registry, how an
exit becomes an exception); a backend (vmcore.backend) holds the guest and
runs it."""
from __future__ import annotations

import contextlib
import inspect
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

from vmcore import _interp, abi, interrupts
from vmcore.backend import select
from vmcore.caller import Caller, Registers
from vmcore.errors import HostcallError, OutOfGas, PageFault, SandboxBusy, SandboxError, Timeout, Trap, VmError
from vmcore.heap import HeapPolicy
from vmcore.memory import GuestMemory
from vmcore.memory_map import check_page_size
from vmcore.program import DEFAULT_PAGE_SIZE, Program
from vmcore.watchdog import WATCHDOG

Hostcall = Callable[..., Any]

RETURN_TO_HOST = abi.VM_ADDR_RETURN_TO_HOST
# Argument registers in the reference calling convention's order.
ARG_REGS = (7, 8, 9, 10, 11, 12, 2, 3, 4)  # a0-a5, t0-t2
RA, SP, A0, A1 = 0, 1, 7, 8


_DEFAULT_HEAP = HeapPolicy()


def _hostcall_arity(fn: Hostcall, name: str) -> int:
    """How many register arguments a hostcall takes after the Caller."""
    if not callable(fn):
        raise TypeError(f"hostcall {name!r} must be callable, got {type(fn).__name__}")
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return 0  # builtins without a signature get the Caller only
    params = list(sig.parameters.values())
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return 6
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if not positional:
        raise TypeError(f"hostcall {name!r} must accept the Caller as its first argument")
    n = len(positional) - 1
    if n > 6:
        raise TypeError(f"hostcall {name!r} takes {n} register arguments; at most 6 (a0..a5) are passed")
    return n


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
    return HeapPolicy(initial_size=heap.initial_size, max_size=max_size, grow_by_pages=heap.grow_by_pages)


class Sandbox:
    """One guest instance.

    >>> sb = Sandbox(program, gas=10_000_000)
    >>> @sb.hostcall("get_third_number")
    ... def get_third_number(caller) -> int:
    ...     return 100
    >>> sb.call("add_numbers", 1, 10)
    """

    def __init__(self, program: Program, *, backend: str = "auto", isolation: str = "auto",
                 gas: Optional[int] = None, page_size: Optional[int] = None, heap: Optional[HeapPolicy] = None,
                 hostcalls: Optional[Dict[str, Hostcall]] = None, strict: bool = False,
                 auto_restart: bool = False, pool: Any = None, memory_limit: Optional[int] = None) -> None:
        if not isinstance(program, Program):
            raise TypeError(f"Sandbox needs a vmcore.Program, got {type(program).__name__}")
        if gas is not None and (not isinstance(gas, int) or isinstance(gas, bool)):
            raise TypeError(f"gas must be an int or None, got {type(gas).__name__}")
        if heap is not None and not isinstance(heap, HeapPolicy):
            raise TypeError(f"heap must be a vmcore.HeapPolicy, got {type(heap).__name__}")
        page_size = DEFAULT_PAGE_SIZE if page_size is None else check_page_size(page_size)
        if strict and isolation == "auto":
            isolation = "process"  # strict isolation only exists in a sandbox process
        factory = select(backend, isolation)
        self.program = program
        self.memory_map = program.memory_map(page_size)
        self.heap_policy = _limit_heap(heap or _DEFAULT_HEAP, self.memory_map, memory_limit)
        self.memory_limit = memory_limit
        self._gas_metering = gas is not None
        # Options only a sandbox process has; the inline backend refuses strict.
        options = {k: v for k, v in (("strict", strict), ("auto_restart", auto_restart)) if v}
        if pool is not None:
            options["pool"] = pool
        self._backend = factory(program, self.memory_map, self.heap_policy, self._gas_metering, **options)
        self._mask = 0xFFFFFFFFFFFFFFFF if program.is_64_bit else 0xFFFFFFFF
        self._initial_gas = gas if gas is not None else 0
        self._backend.gas = self._initial_gas
        self._handlers: List[Optional[Tuple[Hostcall, int]]] = [None] * len(program.imports)
        self._exports = program.exports
        self._stack_top = self.memory_map.stack_address_high
        self._caller = Caller(self)
        self.regs = Registers(self)
        self.memory = GuestMemory(self)
        self._stepping = False
        for name, fn in (hostcalls or {}).items():
            self.register_hostcall(name, fn)
        gate = getattr(self._backend, "call_gate", None)
        if gate is not None:
            # The backend's fast path shadows call() on this instance.
            self.call = gate(self._exports, self._stack_top, self._handlers, self._caller, self._mask,
                             self._call_slow, Sandbox.call.__doc__)

    # -- configuration ----------------------------------------------------
    @property
    def backend(self) -> str:
        return self._backend.backend

    @property
    def isolation(self) -> str:
        return self._backend.isolation

    @property
    def pid(self) -> Optional[int]:
        """The sandbox process's pid (None for inline isolation)."""
        return self._backend.pid

    def isolation_report(self) -> Dict[str, bool]:
        """Which protections the sandbox process has in place (name ->
        active); empty for inline isolation.  Sandbox(..., strict=True)
        refuses to start unless every one is active."""
        report = getattr(self._live(), "isolation_report", None)
        return report() if report is not None else {}

    @property
    def counters(self) -> Dict[str, int]:
        """Handshake counters of a sandbox process: how often each side
        started waiting (``*_wait_loop_start``) and how often it had to
        sleep in futex_wait (``*_futex_wait``), how often the sandbox was
        moved off the calling thread's CPU (``host_repin``); empty for
        inline."""
        return dict(getattr(self._live(), "counters", {}))

    def register_hostcall(self, name: str, fn: Hostcall) -> None:
        """Serve the import ``name`` with ``fn(caller, *args)``."""
        if name not in self.program.imports:
            known = ", ".join(self.program.imports) or "none"
            raise KeyError(f"the program has no import named {name!r} (imports: {known})")
        entry = (fn, _hostcall_arity(fn, name))
        for i, imported in enumerate(self.program.imports):
            if imported == name:
                self._handlers[i] = entry

    def hostcall(self, name: str) -> Callable[[Hostcall], Hostcall]:
        """Decorator form of :meth:`register_hostcall`."""
        def register(fn: Hostcall) -> Hostcall:
            self.register_hostcall(name, fn)
            return fn
        return register

    # -- state --------------------------------------------------------------
    def _live(self):
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
        b = self._live()
        return b.heap_top - b.heap_base

    def sbrk(self, size: int) -> int:
        """Grow the heap by ``size`` bytes; returns the new heap end, 0 if it cannot grow."""
        if not isinstance(size, int) or not 0 <= size <= 0xFFFFFFFF:
            raise ValueError(f"sbrk size must be 0..2**32-1, got {size!r}")
        return self._live().sbrk(size)

    # -- running ------------------------------------------------------------
    def _entry_pc(self, export: Union[str, int]) -> int:
        if isinstance(export, str):
            return self.program.export_pc(export)
        if isinstance(export, int) and 0 <= export <= 0xFFFFFFFF:
            return export
        raise TypeError(f"export must be a name or a program counter, got {export!r}")

    def _idle(self):
        """The backend, if no call is in progress (SandboxBusy otherwise:
        what follows would pull the state out from under the call)."""
        b = self._live()
        if b.in_call:
            raise SandboxBusy("this sandbox is running a call (another thread, or one of its own hostcalls); "
                              "this can only be done between calls")
        return b

    def prepare_call(self, export: Union[str, int], *args: int) -> None:
        """Set up registers and pc for a call, for hosts driving :meth:`run`."""
        b = self._idle()
        pc = self._entry_pc(export)
        if len(args) > len(ARG_REGS):
            raise TypeError(f"at most {len(ARG_REGS)} arguments can be passed in registers, got {len(args)}")
        for reg, value in zip(ARG_REGS, args):
            if not isinstance(value, int):
                raise TypeError(f"call arguments must be ints, got {type(value).__name__}")
            b.set_reg(reg, value & 0xFFFFFFFFFFFFFFFF)
        b.set_reg(RA, RETURN_TO_HOST)
        b.set_reg(SP, self.memory_map.stack_address_high)
        self._check_entry(b.set_pc(pc), pc)

    @staticmethod
    def _check_entry(rc: int, pc: int) -> None:
        if rc == -1:
            raise Trap(f"cannot start at pc {pc}: not an instruction of this program", pc=pc)
        if rc == -2:
            raise OutOfGas(f"not enough gas to enter the block containing pc {pc}", pc=pc)

    def call(self, export: Union[str, int], *args: int, timeout: Optional[float] = None) -> int:
        """Call an export with integer arguments (a0..a5, then t0..t2); runs
        through any number of hostcalls and returns a0 (masked to the
        register width).  Guest faults raise Trap, OutOfGas, PageFault or
        HostcallError; the sandbox stays usable afterwards."""
        return self._call_slow(export, args, timeout, None)

    def _call_slow(self, export, args: tuple, timeout: Optional[float], pc: Optional[int]) -> int:
        """The general path of call(); also where the fast gate lands after
        anything but a clean return (then ``pc`` is set and the call ran)."""
        b = self._live()
        with self._deadline(timeout):  # the stepping loop too: a traced runaway guest stops at the deadline
            if pc is None:
                pc = self._entry_pc(export)
                result = b.call(pc, args, self._stack_top, self._handlers, self._caller, self._mask)
                if result is not None:
                    return result
            reason = b.last_exit
            while reason == _interp.EXIT_STEP and self._backend is not None:  # stepping: keep going
                reason = b.serve(self._handlers, self._caller, self._mask)
                if reason == _interp.EXIT_FINISHED:
                    return b.get_reg(A0) & self._mask
        if self._backend is None:
            raise SandboxError("the sandbox was closed during the call", pc=b.pc)
        if reason == _interp.EXIT_INTERRUPTED and timeout is not None:
            raise Timeout(f"the call passed its {timeout:g} s deadline; the guest was stopped at pc {b.pc}",
                          pc=b.pc)
        if reason < 0:
            self._check_entry(reason, pc)
        raise self._error_for(reason)

    def _hostcall_failed(self, error: BaseException) -> HostcallError:
        b = self._backend
        n = b.arg
        name = self.program.imports[n] if n < len(self.program.imports) else f"#{n}"
        e = HostcallError(f"hostcall {name!r} (import #{n}) raised {type(error).__name__}: {error}",
                          pc=b.pc, name=name, number=n)
        e.__cause__ = error
        return e

    def _error_for(self, reason: int) -> VmError:
        b = self._backend
        pc = b.pc
        if reason == _interp.EXIT_HOSTCALL_ERROR:
            return self._hostcall_failed(b.take_hostcall_error())
        if reason == _interp.EXIT_BUSY:
            return SandboxBusy("this sandbox is already running a call (another thread, or a hostcall "
                               "calling back into its own sandbox)")
        if reason == _interp.EXIT_TRAP:
            return Trap(f"the guest panicked at pc {pc}", pc=pc)
        if reason == _interp.EXIT_OUT_OF_GAS:
            return OutOfGas(f"out of gas at pc {pc} (gas left: {b.gas})", pc=pc)
        if reason == _interp.EXIT_PAGEFAULT:
            return PageFault(f"page fault at pc {pc}: page {b.arg:#x} is not accessible", pc=pc, address=b.arg)
        if reason == _interp.EXIT_ECALLI:
            n = b.arg
            if n < len(self.program.imports):
                name = self.program.imports[n]
                return HostcallError(f"the guest called import {name!r} (#{n}) but no hostcall is registered "
                                     f"for it; register one with sandbox.hostcall({name!r})", pc=pc, name=name,
                                     number=n)
            return HostcallError(f"the guest called hostcall #{n}, which is not one of the program's "
                                 f"{len(self.program.imports)} imports", pc=pc, number=n)
        return SandboxError(f"the guest stopped unexpectedly (exit {reason}) at pc {pc}", pc=pc)

    @contextlib.contextmanager
    def _deadline(self, timeout: Optional[float]):
        """Stop the guest (EXIT_INTERRUPTED) if it runs past ``timeout`` seconds."""
        if timeout is None:
            yield
            return
        if not isinstance(timeout, (int, float)) or not timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        b = self._backend
        b.clear_interrupt()
        handle = WATCHDOG.arm(timeout, b.interrupt)
        try:
            yield
        finally:
            WATCHDOG.disarm(handle)
            b.clear_interrupt()  # a deadline that fired after the guest stopped must not linger

    def run(self, timeout: Optional[float] = None) -> interrupts.Interrupt:
        """Run until the guest stops and say why, without serving hostcalls
        or raising for guest faults (the low-level interface).  Past
        ``timeout`` seconds the guest is stopped and Timeout raised; run()
        again resumes it."""
        b = self._live()
        with self._deadline(timeout):
            reason = b.run()
        if reason == _interp.EXIT_INTERRUPTED:
            raise Timeout(f"run() passed its {timeout:g} s deadline; the guest was stopped at pc {b.pc}", pc=b.pc)
        if reason == _interp.EXIT_BUSY:
            raise self._error_for(reason)
        pc = b.pc
        if reason == _interp.EXIT_FINISHED:
            return interrupts.Finished(pc)
        if reason == _interp.EXIT_ECALLI:
            n = b.arg
            name = self.program.imports[n] if n < len(self.program.imports) else ""
            return interrupts.Ecalli(pc, n, name)
        if reason == _interp.EXIT_TRAP:
            return interrupts.Trap(pc)
        if reason == _interp.EXIT_OUT_OF_GAS:
            return interrupts.OutOfGas(pc)
        if reason == _interp.EXIT_PAGEFAULT:
            return interrupts.PageFault(pc, b.arg)
        if reason == _interp.EXIT_STEP:
            return interrupts.Step(pc)
        raise SandboxError(f"unexpected exit {reason}", pc=pc)

    def set_step_tracing(self, enabled: bool) -> None:
        """Stop before every instruction (run() returns Step).  Between
        calls only (SandboxBusy from a hostcall or while another thread's
        call runs); a prepared or stopped guest continues at its pc."""
        b = self._idle()
        resume = b.can_resume()
        pc = b.pc
        b.set_step_tracing(enabled)
        self._stepping = enabled
        if resume:
            b.set_pc(pc)

    # -- lifecycle ----------------------------------------------------------
    def reset(self) -> None:
        """Restore registers, gas and memory to the freshly-instantiated
        state.  Between calls only (SandboxBusy during one)."""
        b = self._idle()
        b.reset()
        if self._gas_metering:
            b.gas = self._initial_gas

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()
            self._backend = None
            self.__dict__.pop("call", None)

    @property
    def closed(self) -> bool:
        return self._backend is None

    def __enter__(self) -> "Sandbox":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._backend is None else f"{self.backend}/{self.isolation}"
        return f"<Sandbox {state} {self.program!r}>"
