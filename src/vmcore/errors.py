"""The vmcore exception hierarchy: everything a guest, a program or a
sandbox can do wrong surfaces as a VmError subclass."""
from __future__ import annotations

import enum
import pickle
from typing import Any, Dict, Optional, Tuple


def _rebuild(cls: type, args: Tuple[Any, ...], state: Dict[str, Any]) -> "VmError":
    """Unpickle a VmError without calling its __init__ (subclasses take
    keyword-only fields): the same message, attributes and cause."""
    error = cls.__new__(cls)
    error.args = args
    cause = state.pop("__cause__", None)
    error.__dict__.update(state)
    if cause is not None:
        error.__cause__ = cause
    return error


class VmError(Exception):
    """Base of every vmcore error.  ``pc`` is the guest program counter
    where it happened, when that applies.  Every VmError pickles with its
    message, its fields (pc, address, ...) and its ``__cause__`` (replaced
    by a plain Exception with the same text when the cause itself does not
    pickle), so it crosses process and machine boundaries unchanged.

    ``guest_traceback``: for an error raised by a running guest (Trap,
    PageFault, OutOfGas, HostcallError, Timeout, ...), the source frames
    at ``pc`` (vmcore.debuginfo.SourceFrame, outermost first: the
    function, then any inlined into it), or just the pc when the program
    has no debug info there; empty for other errors."""

    guest_traceback: Tuple[Any, ...] = ()

    def __init__(self, message: str, *, pc: Optional[int] = None) -> None:
        super().__init__(message)
        self.pc = pc

    def __reduce__(self):
        state = dict(self.__dict__)
        cause = self.__cause__
        if cause is not None:
            try:
                pickle.dumps(cause)
            except Exception:
                cause = Exception(f"{type(cause).__name__}: {cause}")
            state["__cause__"] = cause
        return (_rebuild, (type(self), self.args, state))


class ProgramError(VmError):
    """A program blob is malformed or violates a limit.  ``offset`` is the
    byte offset in the input the problem was found at."""

    def __init__(self, message: str, *, offset: Optional[int] = None) -> None:
        where = f" (at byte offset {offset})" if offset is not None else ""
        super().__init__(message + where)
        self.offset = offset
        self.reason = message


class TrapReason(str, enum.Enum):
    """Why a guest panicked (``Trap.reason``, ``TrapInterrupt.reason``).
    Every backend reports the same reason for the same program; the values
    are plain strings, so ``err.reason == "invalid-jump"`` works too.  (The
    engines' codes are ``vmcore.abi.TRAP_*``.)"""
    #: the ``trap`` instruction (what ``unreachable`` / ``panic!`` compile to)
    TRAP = "trap"
    #: an undefined opcode, or no instruction start where the code needs one
    INVALID_INSTRUCTION = "invalid-instruction"
    #: a jump or branch to something that is not a basic block start, or a
    #: dynamic jump to an address that is 0, misaligned or not in the jump
    #: table (also: the host starting a call at such a pc)
    INVALID_JUMP = "invalid-jump"
    #: ran past the last instruction of the code
    END_OF_CODE = "end-of-code"
    #: a memory access that panics rather than faults: below the 64 KiB
    #: low zone (``abi.LOW_MEMORY_PANIC_LIMIT``), or reaching past
    #: 0xffffffff with the top page accessible
    MEMORY_ACCESS = "memory-access"

    def __str__(self) -> str:
        return self.value


class Trap(VmError):
    """The guest panicked; ``reason`` (a :class:`TrapReason`) says why: a
    trap instruction, an invalid instruction or jump target, running off
    the end of the code, or a memory access that panics (a page fault above
    the low zone is :class:`PageFault` instead)."""

    def __init__(self, message: str, *, pc: Optional[int] = None, reason: Optional[TrapReason] = None) -> None:
        super().__init__(message, pc=pc)
        self.reason = reason


class OutOfGas(VmError):
    """The guest ran out of gas at the start of a basic block."""


class PageFault(VmError):
    """The guest touched an inaccessible page; ``address`` is the page."""

    def __init__(self, message: str, *, pc: Optional[int] = None, address: Optional[int] = None) -> None:
        super().__init__(message, pc=pc)
        self.address = address


class HostcallError(VmError):
    """A hostcall raised (``__cause__`` is its exception) or the guest
    called an import with no hostcall registered."""

    def __init__(self, message: str, *, pc: Optional[int] = None, name: Optional[str] = None,
                 number: Optional[int] = None) -> None:
        super().__init__(message, pc=pc)
        self.name = name
        self.number = number


class MemoryAccessError(VmError):
    """A host-side read or write of guest memory touched inaccessible pages."""

    def __init__(self, message: str, *, address: Optional[int] = None, length: Optional[int] = None) -> None:
        super().__init__(message)
        self.address = address
        self.length = length


class SandboxError(VmError):
    """The sandbox process failed: it died, stopped answering or reported
    an internal error (``sandbox_message``)."""

    def __init__(self, message: str, *, pc: Optional[int] = None, sandbox_message: str = "") -> None:
        super().__init__(message + (f": {sandbox_message}" if sandbox_message else ""), pc=pc)
        self.sandbox_message = sandbox_message


class SandboxBusy(VmError):
    """The operation cannot be done now: the sandbox is running a call (in
    another thread, or this is one of its own hostcalls)."""


class Timeout(VmError):
    """A call passed its deadline (``call(..., timeout=)`` or
    ``run(timeout=)``, in seconds); the guest was stopped at ``pc``."""


class AsyncHostcallError(VmError):
    """An ``async def`` hostcall was reached from a blocking ``call()``
    while an event loop runs in the calling thread (waiting there for a
    coroutine on that loop would deadlock): use ``await
    sandbox.call_async(...)``.  The call raises HostcallError caused by it."""


class _LookupVmError(VmError, KeyError):
    """A VmError that is also a KeyError (``except KeyError`` keeps
    working); str() is the plain message, not KeyError's repr of it."""

    def __init__(self, message: str, *, name: str = "") -> None:
        super().__init__(message)
        self.name = name

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class ExportNotFound(_LookupVmError):
    """``call()`` / ``prepare_call()`` / ``Program.export_pc()`` named an
    export the program does not have; ``name`` is the name asked for."""


class ImportNotFound(_LookupVmError):
    """``register_hostcall()`` / ``hostcall()`` named an import the program
    does not have; ``name`` is the name asked for."""


__all__ = [
    "VmError", "ProgramError", "Trap", "TrapReason", "OutOfGas", "PageFault", "HostcallError",
    "MemoryAccessError", "SandboxError", "SandboxBusy", "Timeout", "ExportNotFound", "ImportNotFound",
    "AsyncHostcallError",
]
