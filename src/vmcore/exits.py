"""How a guest's exit becomes a typed exception: plain functions of the
facts (exit code, pc, the exit's argument, gas, the program's imports, the
hostcall's exception).  The engine's SandboxCore.call and Sandbox.run call
down into these; nothing here knows a Sandbox."""
from __future__ import annotations

from typing import Optional, Sequence

from vmcore import abi
from vmcore.errors import HostcallError, OutOfGas, PageFault, SandboxBusy, SandboxError, Trap, TrapReason, VmError

#: The engines' trap reason codes (include/vmcore/abi.h) as TrapReason.
TRAP_REASONS = {abi.TRAP_INSTRUCTION: TrapReason.TRAP, abi.TRAP_INVALID_INSTRUCTION: TrapReason.INVALID_INSTRUCTION,
                abi.TRAP_INVALID_JUMP: TrapReason.INVALID_JUMP, abi.TRAP_END_OF_CODE: TrapReason.END_OF_CODE,
                abi.TRAP_MEMORY_ACCESS: TrapReason.MEMORY_ACCESS}
#: TrapReason -> the engines' code (what an exit's arg carries).
TRAP_CODES = {reason: code for code, reason in TRAP_REASONS.items()}
_TRAP_WHAT = {TrapReason.TRAP: "a trap instruction", TrapReason.INVALID_INSTRUCTION: "an invalid instruction",
              TrapReason.INVALID_JUMP: "an invalid jump target", TrapReason.END_OF_CODE: "ran off the end of the code",
              TrapReason.MEMORY_ACCESS: f"a memory access below {abi.LOW_MEMORY_PANIC_LIMIT:#x} or reaching past 0xffffffff"}


def trap_reason(code: int) -> TrapReason:
    """The TrapReason for an engine's code (SandboxError for one no engine
    gives: the process sandboxes check theirs before this)."""
    reason = TRAP_REASONS.get(code)
    if reason is None:
        raise SandboxError(f"the engine reported an unknown trap reason ({code})")
    return reason


def trap(code: int, pc: int) -> Trap:
    """The Trap for an engine's trap reason ``code`` at ``pc``."""
    reason = trap_reason(code)
    return Trap(f"the guest panicked at pc {pc} ({reason.value}): {_TRAP_WHAT[reason]}", pc=pc, reason=reason)


def check_entry(rc: int, pc: int) -> None:
    """Raise for a refused entry (set_pc's negative codes); 0 passes."""
    if rc == abi.ENTRY_NOT_AN_INSTRUCTION:
        raise Trap(f"cannot start at pc {pc}: not an instruction of this program ({TrapReason.INVALID_JUMP.value})",
                   pc=pc, reason=TrapReason.INVALID_JUMP)
    if rc == abi.ENTRY_OUT_OF_GAS:
        raise OutOfGas(f"not enough gas to enter the block containing pc {pc}", pc=pc)


def hostcall_failed(error: Optional[BaseException], pc: int, number: int, imports: Sequence[str]) -> HostcallError:
    """A hostcall raised ``error``: a HostcallError naming the import, caused by it."""
    name = imports[number] if number < len(imports) else f"#{number}"
    e = HostcallError(f"hostcall {name!r} (import #{number}) raised {type(error).__name__}: {error}",
                      pc=pc, name=name, number=number)
    e.__cause__ = error
    return e


def error_for(reason: int, pc: int, arg: int, gas: Optional[int], imports: Sequence[str],
              hostcall_error: Optional[BaseException] = None) -> VmError:
    """The exception for a guest that stopped with exit code ``reason`` at
    ``pc`` (``arg``: the page of a fault, the number of an ecalli, the
    trap reason code of a panic)."""
    if reason == abi.EXIT_HOSTCALL_ERROR:
        return hostcall_failed(hostcall_error, pc, arg, imports)
    if reason == abi.EXIT_BUSY:
        return SandboxBusy("this sandbox is already running a call (another thread, or a hostcall "
                           "calling back into its own sandbox)")
    if reason == abi.EXIT_TRAP:
        return trap(arg, pc)
    if reason == abi.EXIT_HOSTCALL_OUT_OF_GAS:
        name = imports[arg] if arg < len(imports) else f"#{arg}"
        return OutOfGas(f"out of gas at pc {pc}: hostcall {name!r} costs more gas than the {gas} left "
                        f"(it did not run)", pc=pc)
    if reason == abi.EXIT_OUT_OF_GAS:
        return OutOfGas(f"out of gas at pc {pc} (gas left: {gas})", pc=pc)
    if reason == abi.EXIT_PAGEFAULT:
        return PageFault(f"page fault at pc {pc}: page {arg:#x} is not accessible", pc=pc, address=arg)
    if reason == abi.EXIT_ECALLI:
        if arg < len(imports):
            name = imports[arg]
            return HostcallError(f"the guest called import {name!r} (#{arg}) but no hostcall is registered "
                                 f"for it; register one with sandbox.hostcall({name!r}) or define it in the sandbox's "
                                 f"HostFunctions", pc=pc, name=name,
                                 number=arg)
        return HostcallError(f"the guest called hostcall #{arg}, which is not one of the program's "
                             f"{len(imports)} imports", pc=pc, number=arg)
    return SandboxError(f"the guest stopped unexpectedly (exit {reason}) at pc {pc}", pc=pc)
