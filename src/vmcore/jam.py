"""vmcore.jam: vmcore as the PVM of a JAM implementation (Gray Paper 0.8).

What the Gray Paper 0.8 defines on top of the bare PVM, for an embedder that
brings its own host functions:

* appendix A.7 "Standard Program Initialization": the standard program blob
  ``E3(|o|) E3(|w|) E2(z) E3(s) o w E4(|c|) c``, the memory layout (major
  zones of Z_Z = 2^16, the argument zone of Z_I = 2^24, pages of Z_P = 2^12)
  and the initial registers -- :class:`StandardProgram`, :class:`Layout`,
  :func:`initialize` (the function Y);
* the plain PVM invocation Psi (stops at host calls), Psi_H (host calls
  served by a dispatch function) -- :class:`Machine`;
* appendix A.8 "Argument Invocation Definition": Psi_M -- :func:`invoke`;
* section B.8 "General Functions": the host-call numbering
  (:class:`HostCall`), the result constants (``WHAT``, ``NONE``, ...), the
  generic charge of 10 gas per host call, and the two host calls that
  belong to the PVM layer itself, ``gas`` (0) and ``grow_heap`` (1).  In GP
  0.8 ``sbrk`` is no longer an instruction (jam_v1 has no sbrk opcode); the
  heap grows through the ``grow_heap`` host call, implemented here.

Every other host call (fetch, lookup, read, write, info, ...) needs chain
state, so the embedder supplies it through :class:`HostCalls`.
"""
from __future__ import annotations

import enum
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Optional, Tuple, TypeVar, Union

from vmcore import abi, interrupts
from vmcore.errors import HostcallError, MemoryAccessError, OutOfGas, ProgramError, Trap, TrapReason, VmError
from vmcore.program import Program
from vmcore.sandbox import Sandbox

BytesLike = Union[bytes, bytearray, memoryview]

# GP 0.8 constants (Gray Paper definitions, not vmcore ABI values).
ZONE_SIZE = 1 << 16        # Z_Z: one major zone
INPUT_SIZE = 1 << 24       # Z_I: the argument zone
PAGE_SIZE = abi.MIN_PAGE_SIZE  # Z_P: the PVM page (4 KiB)
HOSTCALL_GAS = 10          # the generic charge of a host call (g = 10)
GROW_HEAP_BASE_GAS = 100   # grow_heap's constant charge
GROW_HEAP_PAGE_GAS = 10    # ... plus this per page made writable
RA, SP, A0, A1 = abi.REG_RA, abi.REG_SP, abi.REG_A0, abi.REG_A1
HALT_ADDRESS = abi.VM_ADDR_RETURN_TO_HOST  # 2^32 - 2^16: jumping here halts
# Entry pcs as Psi_I, Psi_R and Psi_A pass them to Psi_M (B.2-B.4):
# Is-Authorized and Refine start at 0, Accumulate at 5.
IS_AUTHORIZED_PC = REFINE_PC = 0
ACCUMULATE_PC = 5
assert PAGE_SIZE == abi.VM_MIN_PAGE_SIZE and ZONE_SIZE == abi.VM_MAX_PAGE_SIZE

# Host-call result constants (B.1), as register values.
_U64 = 1 << 64
NONE = _U64 - 1
WHAT = _U64 - 2
OOB = _U64 - 3
WHO = _U64 - 4
FULL = _U64 - 5
CORE = _U64 - 6
CASH = _U64 - 7
LOW = _U64 - 8
HUH = _U64 - 9
OK = 0

_SANDBOX_PARAMETERS = inspect.signature(Sandbox).parameters
#: Whether this build's Sandbox takes ``gas_model=``; without it every run
#: uses the naive model (1 gas per instruction) whatever is asked for.
GAS_MODEL_SUPPORTED = "gas_model" in _SANDBOX_PARAMETERS
GAS_MODELS = ("naive", "full")



class Status(enum.IntEnum):
    """Why an invocation stopped; the values are GP 0.8's inner-PVM result
    codes (B.1: HALT 0, PANIC 1, FAULT 2, HOST 3, OOG 4)."""
    HALT = 0
    PANIC = 1
    FAULT = 2
    HOST = 3
    OOG = 4


class HostCall(enum.IntEnum):
    """GP 0.8 host-call identifiers (B.8 general functions, then the
    refine and accumulate functions): the ``ecalli`` immediate."""
    GAS = 0
    GROW_HEAP = 1
    FETCH = 2
    LOOKUP = 3
    READ = 4
    WRITE = 5
    INFO = 6
    HISTORICAL_LOOKUP = 7
    EXPORT = 8
    MACHINE = 9
    PEEK = 10
    POKE = 11
    PAGES = 12
    INVOKE = 13
    EXPUNGE = 14
    BLESS = 15
    ASSIGN = 16
    DESIGNATE = 17
    CHECKPOINT = 18
    NEW = 19
    UPGRADE = 20
    TRANSFER = 21
    EJECT = 22
    QUERY = 23
    SOLICIT = 24
    FORGET = 25
    YIELD = 26
    PROVIDE = 27


HOSTCALL_NAMES: Dict[int, str] = {int(h): h.name.lower() for h in HostCall}


class ArgumentsTooLarge(VmError):
    """The argument data is longer than the argument zone (Z_I = 2^24 bytes)."""


class Panic(Exception):
    """Raise from a host function to make the invocation panic (what the
    GP's host functions do when, say, a buffer is not accessible)."""


def _page(x: int) -> int:   # P(x): round up to a page
    return -(-x // PAGE_SIZE) * PAGE_SIZE


def _zone(x: int) -> int:   # Q(x): round up to a major zone
    return -(-x // ZONE_SIZE) * ZONE_SIZE


@dataclass(frozen=True)
class Layout:
    """The standard memory layout (GP 0.8 eq. memlayout) for one program and
    argument length.  Ranges are [start, end); everything else is
    inaccessible."""
    ro_data_address: int   # Z_Z; readable up to ro_data_end
    ro_data_end: int       # Z_Z + P(|o|)
    rw_data_address: int   # 2 Z_Z + Q(|o|); writable up to rw_data_end
    rw_data_end: int       # ... + P(|w|) + z Z_P
    heap_limit: int        # grow_heap may make pages writable up to here (b Z_P)
    stack_address_low: int   # 2^32 - 2 Z_Z - Z_I - P(s)
    stack_address_high: int  # 2^32 - 2 Z_Z - Z_I (the initial sp)
    args_address: int      # 2^32 - Z_Z - Z_I (a0)
    args_end: int          # args_address + P(|a|)

    def initial_registers(self, args_length: int) -> Tuple[int, ...]:
        """GP 0.8 eq. registers: ra = halt address, sp, a0 = the arguments'
        address, a1 = their length, everything else 0."""
        regs = [0] * abi.REG_COUNT
        regs[RA], regs[SP], regs[A0], regs[A1] = HALT_ADDRESS, self.stack_address_high, self.args_address, args_length
        return tuple(regs)


class StandardProgram:
    """A parsed GP 0.8 standard program blob.  Parse once and invoke many
    times: the vmcore Program inside keeps its compiled code."""

    def __init__(self, program: Program) -> None:
        if program.format != "jam-standard":
            raise ProgramError(f"not a JAM standard program (format {program.format!r}); use "
                               "Program.from_jam_standard or StandardProgram.parse")
        self.program = program

    @classmethod
    def parse(cls, blob: BytesLike) -> "StandardProgram":
        """Decode a standard program blob; a malformed blob, code that does
        not validate, or sections that do not fit in 2^32 bytes
        (5 Z_Z + Q(|o|) + Q(|w| + z Z_P) + Q(s) + Z_I <= 2^32) raise
        ProgramError."""
        return cls(Program.from_jam_standard(blob))

    ro_data = property(lambda self: self.program.ro_data, doc="o, the read-only data")
    rw_data = property(lambda self: self.program.rw_data, doc="w, the read-write data")
    heap_pages = property(lambda self: self.program.heap_pages, doc="z, extra writable pages after w")
    stack_size = property(lambda self: self.program.stack_size, doc="s, the stack size in bytes")

    def layout(self, args_length: int = 0) -> Layout:
        """The memory layout for arguments of ``args_length`` bytes."""
        _check_args_length(args_length)
        o, w, z, s = len(self.ro_data), len(self.rw_data), self.heap_pages, self.stack_size
        rw = 2 * ZONE_SIZE + _zone(o)
        top = (1 << 32) - 2 * ZONE_SIZE - INPUT_SIZE
        args = (1 << 32) - ZONE_SIZE - INPUT_SIZE
        return Layout(ro_data_address=ZONE_SIZE, ro_data_end=ZONE_SIZE + _page(o), rw_data_address=rw,
                      rw_data_end=rw + _page(w) + z * PAGE_SIZE,
                      heap_limit=(1 << 32) - 3 * ZONE_SIZE - INPUT_SIZE - _page(s),
                      stack_address_low=top - _page(s), stack_address_high=top, args_address=args,
                      args_end=args + _page(args_length))

    def __repr__(self) -> str:
        return (f"<StandardProgram ro={len(self.ro_data)}B rw={len(self.rw_data)}B heap_pages={self.heap_pages} "
                f"stack={self.stack_size} code={len(self.program.code)}B>")


def _check_args_length(n: int) -> None:
    if n > INPUT_SIZE:
        raise ArgumentsTooLarge(f"the arguments are {n:,} bytes; the argument zone holds at most {INPUT_SIZE:,}")


def _as_standard(program: Union[StandardProgram, Program, BytesLike]) -> StandardProgram:
    if isinstance(program, StandardProgram):
        return program
    if isinstance(program, Program):
        return StandardProgram(program)
    if isinstance(program, (bytes, bytearray, memoryview)):
        return StandardProgram.parse(program)
    raise TypeError(f"expected a standard program blob, StandardProgram or Program, got {type(program).__name__}")


@dataclass(frozen=True)
class Exit:
    """How Psi / Psi_H stopped.  ``pc`` follows the GP: 0 after a halt or
    panic of the PVM, else the instruction that caused the exit (the
    ``ecalli`` for HOST and for a host function's own halt/panic/OOG).
    ``gas`` is signed: a host call's charge can take it below zero."""
    status: Status
    pc: int
    gas: int
    registers: Tuple[int, ...]
    host_call: Optional[int] = None       # HOST: the ecalli immediate
    fault_address: Optional[int] = None   # FAULT: the inaccessible page
    stop_pc: Optional[int] = None         # where vmcore stopped (for debugging)


class HostCallState:
    """What a host function sees: registers, gas (already charged the base
    cost), GP-checked memory and the invocation context."""

    __slots__ = ("machine", "number", "context")

    def __init__(self, machine: "Machine", number: int, context: Any) -> None:
        self.machine = machine
        self.number = number
        self.context = context  # assign to replace the context (the GP's x')

    @property
    def name(self) -> str:
        return HOSTCALL_NAMES.get(self.number, f"#{self.number}")

    @property
    def regs(self):
        """The 13 registers (by number or name), read/write."""
        return self.machine.sandbox.regs

    @property
    def gas(self) -> int:
        return self.machine.sandbox.gas

    @gas.setter
    def gas(self, value: int) -> None:
        self.machine.sandbox.gas = value

    def readable(self, address: int, length: int) -> bool:
        return self.machine.readable(address, length)

    def writable(self, address: int, length: int) -> bool:
        return self.machine.writable(address, length)

    def read(self, address: int, length: int) -> bytes:
        """Guest memory the guest could read; otherwise raises Panic."""
        if not self.readable(address, length):
            raise Panic(f"{self.name}: {length} bytes at {address:#x} are not readable")
        return self.machine.sandbox.memory.read(address, length) if length else b""

    def write(self, address: int, data: BytesLike) -> None:
        """Write where the guest could write; otherwise raises Panic (the
        host may not write read-only pages in a GP host call)."""
        if not self.writable(address, len(data)):
            raise Panic(f"{self.name}: {len(data)} bytes at {address:#x} are not writable")
        if len(data):
            self.machine.sandbox.memory.write(address, data)

    def reply(self, value: Optional[BytesLike], out: int, offset: int, length: int) -> None:
        """The GP's common result pattern (fetch, lookup, read, info):
        f = min(offset, |v|), l = min(length, |v| - f); panic if
        [out, out + l) is not writable; else a0 = NONE when ``value`` is
        None, otherwise write v[f:f+l] at ``out`` and a0 = |v|."""
        size = 0 if value is None else len(value)
        f = min(offset, size)
        n = min(length, size - f)
        if not self.writable(out, n):
            raise Panic(f"{self.name}: {n} bytes at {out:#x} are not writable")
        if value is None:
            self.regs[A0] = NONE
            return
        if n:
            self.machine.sandbox.memory.write(out, bytes(value[f:f + n]))
        self.regs[A0] = size


HostFunction = Callable[[HostCallState], Optional[Status]]
_F = TypeVar("_F", bound=HostFunction)


class HostCalls:
    """A host-call dispatch table keyed by GP 0.8 identifier.

    A host function takes a :class:`HostCallState` and returns None to
    continue after the ``ecalli``, or ``Status.HALT``, ``Status.PANIC`` or
    ``Status.OOG`` to end the invocation.  Before it runs, ``gas`` (default
    10, the GP's g) is charged; if less than that is left the call ends in
    OOG without running it (registers unchanged, gas = remaining - g).
    Raising :class:`Panic` or ``MemoryAccessError`` panics; any other
    exception stops the invocation with HostcallError.  A number with no
    function gets the GP's default: gas - 10, a0 = WHAT (OOG if that leaves
    less than zero).  ``gas`` and ``grow_heap`` are built in (``builtins=False``
    leaves them out).
    """

    def __init__(self, functions: Optional[Dict[Union[int, str], HostFunction]] = None, *,
                 builtins: bool = True) -> None:
        self._table: Dict[int, Tuple[HostFunction, int]] = {}
        if builtins:
            self._table[HostCall.GAS] = (_gas, HOSTCALL_GAS)
            self._table[HostCall.GROW_HEAP] = (_grow_heap, 0)  # charges itself
        for key, fn in (functions or {}).items():
            self.register(key, fn)

    @staticmethod
    def number(key: Union[int, str]) -> int:
        if isinstance(key, str):
            try:
                return int(HostCall[key.upper()])
            except KeyError:
                raise KeyError(f"unknown GP 0.8 host call {key!r}") from None
        if isinstance(key, int) and not isinstance(key, bool) and 0 <= key < _U64:
            return int(key)
        raise TypeError(f"a host call is a GP name or a number, got {key!r}")

    def register(self, key: Union[int, str], fn: HostFunction, *, gas: int = HOSTCALL_GAS) -> None:
        """Serve host call ``key`` (name such as ``"fetch"`` or number) with
        ``fn``, charging ``gas`` first."""
        if not callable(fn):
            raise TypeError(f"host function must be callable, got {type(fn).__name__}")
        if not isinstance(gas, int) or gas < 0:
            raise ValueError(f"gas must be a non-negative int, got {gas!r}")
        self._table[self.number(key)] = (fn, gas)

    def function(self, key: Union[int, str], *, gas: int = HOSTCALL_GAS) -> Callable[[_F], _F]:
        """Decorator form of :meth:`register`."""
        def decorate(fn: _F) -> _F:
            self.register(key, fn, gas=gas)
            return fn
        return decorate

    def unregister(self, key: Union[int, str]) -> None:
        self._table.pop(self.number(key), None)

    def get(self, number: int) -> Optional[Tuple[HostFunction, int]]:
        return self._table.get(number)

    def __contains__(self, key) -> bool:
        return self.number(key) in self._table


def _gas(call: HostCallState) -> None:
    """Omega_G: a0 = the gas left after this call's charge."""
    call.regs[A0] = call.gas


def _grow_heap(call: HostCallState) -> Optional[Status]:
    """Omega_grow_heap (GP 0.8): a0 asks for the read-write region to end
    at page a0 (absolute page index); returns in a0 the page index where
    the writable region now ends.  Costs 100 + 10 per new page; asking for
    more than fits or than the gas pays for only costs the 100."""
    m = call.machine
    gas = call.gas
    if gas < GROW_HEAP_BASE_GAS:
        return Status.OOG  # gas untouched, as the GP says for this call
    a = m.layout.rw_data_address // PAGE_SIZE
    b = m.layout.heap_limit // PAGE_SIZE
    top = m.sandbox.memory_map.heap_base + m.sandbox.heap_size
    c = -(-top // PAGE_SIZE) - a
    want = call.regs[A0]
    cost = GROW_HEAP_BASE_GAS + max(0, want - a - c) * GROW_HEAP_PAGE_GAS
    h = max(a, want)
    if h <= b and gas >= cost and (h * PAGE_SIZE <= top or m.sandbox.sbrk(h * PAGE_SIZE - top)):
        call.gas = gas - cost
        call.regs[A0] = max(a + c, h)
    else:
        call.gas = gas - GROW_HEAP_BASE_GAS
        call.regs[A0] = a + c
    return None


def _check_gas(gas: int) -> int:
    if not isinstance(gas, int) or isinstance(gas, bool):
        raise TypeError(f"gas must be an int, got {type(gas).__name__}")
    if not 0 <= gas < 1 << 63:
        raise ValueError(f"gas must be 0..2**63-1, got {gas}")
    return gas


def _sandbox_gas_model(gas_model: str) -> Dict[str, str]:
    if gas_model not in GAS_MODELS:
        raise ValueError(f"gas_model must be one of {GAS_MODELS}, got {gas_model!r}")
    return {"gas_model": gas_model} if GAS_MODEL_SUPPORTED else {}


class Machine:
    """A PVM instance set up by the standard initialisation Y (see
    :func:`initialize`).  :meth:`run` is the GP's Psi (stops at host
    calls), :meth:`run_host` is Psi_H.  Close it (or use ``with``) when
    done."""

    def __init__(self, program: StandardProgram, pc: int, gas: int, args: bytes, *, backend: str, isolation: str,
                 gas_model: str, sandbox_options: Dict[str, Any]) -> None:
        self.program = program
        self.layout = program.layout(len(args))
        self.gas_model = gas_model if GAS_MODEL_SUPPORTED else "naive"
        self.sandbox = Sandbox(program.program, backend=backend, isolation=isolation, gas=_check_gas(gas),
                               page_size=PAGE_SIZE, **_sandbox_gas_model(gas_model), **sandbox_options)
        try:
            self._check_map()
            self._bad_entry: Optional[Status] = None
            self._setup(pc, bytes(args))
        except BaseException:
            self.sandbox.close()
            raise

    def _check_map(self) -> None:
        """The sandbox's map (Program.memory_map) must be the GP layout."""
        m, lay = self.sandbox.memory_map, self.layout
        got = (m.ro_data_address, m.rw_data_address, m.rw_data_address + m.rw_data_size,
               m.heap_base + m.max_heap_size, m.stack_address_low, m.stack_address_high, m.aux_data_address)
        want = (lay.ro_data_address, lay.rw_data_address, lay.rw_data_end, lay.heap_limit, lay.stack_address_low,
                lay.stack_address_high, lay.args_address)
        if got != want:
            raise VmError(f"internal: the sandbox's memory map {got} is not the GP 0.8 layout {want}")

    def _setup(self, pc: int, args: bytes) -> None:
        sb, lay = self.sandbox, self.layout
        # The sandbox maps the whole argument zone readable; the GP only
        # P(|a|) of it.
        rest = lay.args_address + INPUT_SIZE - lay.args_end
        if rest:
            sb.memory.protect(lay.args_end, rest, "none")
        if args:
            sb.memory.write(lay.args_address, args)
        if not isinstance(pc, int) or isinstance(pc, bool) or pc < 0:
            raise TypeError(f"pc must be a non-negative int, got {pc!r}")
        try:
            if pc >= 1 << 32:
                raise Trap("pc outside the code", pc=pc, reason=TrapReason.INVALID_JUMP)
            sb.prepare_call(pc)
        except Trap:
            self._bad_entry = Status.PANIC  # deblob(p, pc) fails: Psi panics
        except OutOfGas:
            self._bad_entry = Status.OOG
        for i, value in enumerate(lay.initial_registers(len(args))):
            sb.regs[i] = value

    # -- state ----------------------------------------------------------------
    @property
    def registers(self) -> Tuple[int, ...]:
        return tuple(self.sandbox.regs)

    @property
    def gas(self) -> int:
        return self.sandbox.gas

    @property
    def memory(self):
        """The sandbox's GuestMemory (host access; see readable/writable for
        what the guest may touch)."""
        return self.sandbox.memory

    def readable(self, address: int, length: int) -> bool:
        """Whether [address, address + length) is readable by the guest (an
        empty range always is)."""
        if length == 0:
            return True
        return 0 <= address and address + length <= 1 << 32 and self.sandbox.memory.is_accessible(address, length)

    def writable(self, address: int, length: int) -> bool:
        if length == 0:
            return True
        return (0 <= address and address + length <= 1 << 32
                and self.sandbox.memory.is_accessible(address, length, writable=True))

    def _exit(self, status: Status, pc: int, **extra) -> Exit:
        return Exit(status=status, pc=pc, gas=self.sandbox.gas, registers=self.registers, **extra)

    # -- running --------------------------------------------------------------
    def run(self) -> Exit:
        """Psi: run until halt, panic, out of gas, page fault or host call.
        After HOST, serve the call and run() again to continue after the
        ``ecalli``."""
        if self._bad_entry is not None:
            status = self._bad_entry
            return self._exit(status, 0 if status is Status.PANIC else self.sandbox.pc, stop_pc=self.sandbox.pc)
        stop = self.sandbox.run()
        pc = stop.pc
        if isinstance(stop, interrupts.Finished):
            return self._exit(Status.HALT, 0, stop_pc=pc)
        if isinstance(stop, interrupts.Ecalli):
            return self._exit(Status.HOST, pc, host_call=stop.number, stop_pc=pc)
        if isinstance(stop, interrupts.OutOfGasInterrupt):
            return self._exit(Status.OOG, pc, stop_pc=pc)
        if isinstance(stop, interrupts.PageFaultInterrupt):
            if stop.address < ZONE_SIZE:  # GP 0.8: below 2^16 always panics
                return self._exit(Status.PANIC, 0, stop_pc=pc)
            return self._exit(Status.FAULT, pc, fault_address=stop.address, stop_pc=pc)
        if isinstance(stop, interrupts.TrapInterrupt):
            return self._exit(Status.PANIC, 0, stop_pc=pc)
        raise VmError(f"unexpected stop {stop!r}", pc=pc)

    def run_host(self, host: Optional[HostCalls] = None, context: Any = None) -> Tuple[Exit, Any]:
        """Psi_H: run, serving every host call through ``host`` (default: a
        table with only the built-ins), until halt, panic, OOG or page
        fault.  Returns the exit and the final context."""
        host = host if host is not None else HostCalls()
        while True:
            exit_ = self.run()
            if exit_.status is not Status.HOST:
                return exit_, context
            state = HostCallState(self, exit_.host_call, context)
            outcome = self._dispatch(host, state)
            context = state.context
            if outcome is not None:
                return self._exit(outcome, exit_.pc, stop_pc=exit_.pc), context

    def _dispatch(self, host: HostCalls, state: HostCallState) -> Optional[Status]:
        sb = self.sandbox
        gas = sb.gas
        entry = host.get(state.number)
        if entry is None:  # unknown: g = 10, a0 = WHAT
            sb.regs[A0] = WHAT
            sb.gas = gas - HOSTCALL_GAS
            return Status.OOG if gas < HOSTCALL_GAS else None
        fn, cost = entry
        sb.gas = gas - cost
        if gas < cost:
            return Status.OOG
        try:
            outcome = fn(state)
        except (Panic, MemoryAccessError):
            return Status.PANIC
        except VmError:
            raise
        except Exception as e:
            raise HostcallError(f"host function {state.name!r} (#{state.number}) raised "
                                f"{type(e).__name__}: {e}", pc=sb.pc, name=state.name, number=state.number) from e
        if outcome is None:
            return Status.OOG if sb.gas < 0 else None
        if outcome in (Status.HALT, Status.PANIC, Status.OOG):
            return Status(outcome)
        raise HostcallError(f"host function {state.name!r} returned {outcome!r}; expected None, Status.HALT, "
                            "Status.PANIC or Status.OOG", pc=sb.pc, name=state.name, number=state.number)

    def close(self) -> None:
        self.sandbox.close()

    def __enter__(self) -> "Machine":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def initialize(program: Union[StandardProgram, Program, BytesLike], args: BytesLike = b"", *, pc: int = 0,
               gas: int, backend: str = "auto", isolation: str = "auto", gas_model: str = "full",
               **sandbox_options: Any) -> Machine:
    """Y (GP 0.8 A.7) plus a PVM to run it: lay out memory for ``program``
    with ``args`` in the argument zone, set the initial registers and the
    entry ``pc``.  Raises ProgramError for a malformed blob and
    ArgumentsTooLarge for more than Z_I bytes of arguments.  ``gas_model``
    is passed to Sandbox when it takes one (see GAS_MODEL_SUPPORTED);
    other keywords go to Sandbox as they are."""
    args = bytes(args)
    _check_args_length(len(args))
    return Machine(_as_standard(program), pc, gas, args, backend=backend, isolation=isolation,
                   gas_model=gas_model, sandbox_options=sandbox_options)


@dataclass(frozen=True)
class InvocationResult:
    """The result of Psi_M.  ``status`` is HALT, PANIC or OOG (a page fault
    ends as PANIC, as R maps it); ``output`` is the halt output (memory at
    a0 of length a1 if readable, else empty) and None otherwise;
    ``gas_used`` is the GP's u = gas - max(gas', 0), never more than given;
    ``exit`` is how Psi_H stopped (None if Y failed); ``error`` the
    ProgramError when the blob did not decode (then PANIC with 0 gas
    used)."""
    status: Status
    output: Optional[bytes]
    gas_used: int
    gas_left: int
    context: Any = None
    exit: Optional[Exit] = None
    error: Optional[ProgramError] = None
    gas_model: str = field(default="naive")

    @property
    def registers(self) -> Optional[Tuple[int, ...]]:
        return None if self.exit is None else self.exit.registers


def invoke(program: Union[StandardProgram, Program, BytesLike], pc: int, gas: int, args: BytesLike = b"",
           host: Optional[HostCalls] = None, context: Any = None, *, backend: str = "auto",
           isolation: str = "auto", gas_model: str = "full", **sandbox_options: Any) -> InvocationResult:
    """Psi_M (GP 0.8 A.8): initialise ``program`` with ``args`` (Y), run it
    from ``pc`` with ``gas`` serving host calls through ``host`` (Psi_H),
    and marshal the result.  A blob that does not decode gives PANIC with
    0 gas used, as the GP says (``result.error`` says why); arguments
    longer than Z_I raise ArgumentsTooLarge.  Is-Authorized and Refine
    start at pc 0, Accumulate at pc 5."""
    args = bytes(args)
    _check_args_length(len(args))
    _check_gas(gas)
    effective = gas_model if GAS_MODEL_SUPPORTED else "naive"
    try:
        standard = _as_standard(program)
    except ProgramError as e:
        return InvocationResult(Status.PANIC, None, 0, gas, context, None, e, effective)
    with initialize(standard, args, pc=pc, gas=gas, backend=backend, isolation=isolation, gas_model=gas_model,
                    **sandbox_options) as machine:
        exit_, context = machine.run_host(host, context)
        output = None
        if exit_.status is Status.HALT:
            out, n = exit_.registers[A0], exit_.registers[A1]
            output = machine.memory.read(out, n) if n and machine.readable(out, n) else b""
    status = exit_.status if exit_.status in (Status.HALT, Status.OOG) else Status.PANIC
    left = max(exit_.gas, 0)
    return InvocationResult(status, output, gas - left, left, context, exit_, None, machine.gas_model)


def encode_code_blob(program: Program) -> bytes:
    """The GP's PVM program blob (deblob's input) of a vmcore Program:
    E(|j|) E1(z) E(|c|) E_z(j) c k."""
    jt = program.jump_table
    z = max(1, max((t.bit_length() + 7) // 8 for t in jt)) if jt else 0
    table = b"".join(t.to_bytes(z, "little") for t in jt)
    return _natural(len(jt)) + bytes([z]) + _natural(len(program.code)) + table + program.code + program.bitmask


def encode_standard_program(code_blob: BytesLike, *, ro_data: BytesLike = b"", rw_data: BytesLike = b"",
                            heap_pages: int = 0, stack_size: int = 0) -> bytes:
    """A standard program blob: E3(|o|) E3(|w|) E2(z) E3(s) o w E4(|c|) c."""
    ro, rw, code = bytes(ro_data), bytes(rw_data), bytes(code_blob)
    for what, v, width in (("read-only data", len(ro), 3), ("read-write data", len(rw), 3),
                           ("heap pages", heap_pages, 2), ("stack size", stack_size, 3), ("code", len(code), 4)):
        if not 0 <= v < 1 << (8 * width):
            raise ValueError(f"{what} ({v}) does not fit in {width} bytes")
    return (len(ro).to_bytes(3, "little") + len(rw).to_bytes(3, "little") + heap_pages.to_bytes(2, "little")
            + stack_size.to_bytes(3, "little") + ro + rw + len(code).to_bytes(4, "little") + code)


def split_code_preimage(preimage: BytesLike) -> Tuple[bytes, bytes]:
    """A service's code preimage E(var m) ++ c (GP 0.8 section 9, the
    account's metadata m and code c) -> (m, c); ProgramError if malformed."""
    data = bytes(preimage)
    length, at = _decode_natural(data, 0)
    if at + length > len(data):
        raise ProgramError(f"the code metadata is {length} bytes but only {len(data) - at} follow", offset=at)
    return data[at:at + length], data[at + length:]


def _decode_natural(data: bytes, at: int) -> Tuple[int, int]:
    """GP natural-number decoding at ``at`` -> (value, next offset)."""
    if at >= len(data):
        raise ProgramError("expected a natural number, found the end of the data", offset=at)
    first = data[at]
    n = 8 - (~first & 0xFF).bit_length()  # leading one bits: how many bytes follow
    if at + 1 + n > len(data):
        raise ProgramError(f"a natural number needs {n} more bytes", offset=at)
    low = int.from_bytes(data[at + 1:at + 1 + n], "little")
    high = 0 if n == 8 else first & ((1 << (7 - n)) - 1)
    return (high << (8 * n)) + low, at + 1 + n


def _natural(x: int) -> bytes:
    """GP natural-number encoding E(x), x < 2^64."""
    for n in range(8):
        if x < 1 << (7 * (n + 1)):
            return bytes([(256 - (1 << (8 - n))) + (x >> (8 * n))]) + (x % (1 << (8 * n))).to_bytes(n, "little")
    return b"\xff" + x.to_bytes(8, "little")


__all__ = [
    "ZONE_SIZE", "INPUT_SIZE", "PAGE_SIZE", "HOSTCALL_GAS", "HALT_ADDRESS", "GAS_MODEL_SUPPORTED",
    "NONE", "WHAT", "OOB", "WHO", "FULL", "CORE", "CASH", "LOW", "HUH", "OK",
    "Status", "HostCall", "HOSTCALL_NAMES", "ArgumentsTooLarge", "Panic", "Layout", "StandardProgram", "Exit",
    "HostCallState", "HostCalls", "Machine", "initialize", "InvocationResult", "invoke",
    "encode_code_blob", "encode_standard_program", "split_code_preimage", "IS_AUTHORIZED_PC", "REFINE_PC",
    "ACCUMULATE_PC",
]
