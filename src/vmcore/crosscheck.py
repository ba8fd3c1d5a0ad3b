"""Differential execution: the interpreter (inline) and the recompiler's
native code (in a sandbox process) run the same call side by side and are
compared after every instruction (lock-step, through single-step mode) or
at every exit; the first difference raises :class:`Divergence` with both
states.

    >>> from vmcore.crosscheck import crosscheck
    >>> crosscheck(program, "main", 10, gas=10_000)   # a0, or the guest's error

Hostcalls are served on both sides by the same functions (they must be
deterministic: each runs twice, once per side).  Only the public Sandbox
API is used: ``run(serve_hostcalls=True)``, ``regs``, ``memory``."""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from vmcore import abi, exits, interrupts
from vmcore.errors import HostcallError, VmError
from vmcore.sandbox import Sandbox

A0 = abi.ARG_REGS[0]
# Interrupt -> (the state's exit name, the exit code vmcore.exits knows it by)
_EXITS = {
    interrupts.Finished: ("finished", abi.EXIT_FINISHED), interrupts.TrapInterrupt: ("trap", abi.EXIT_TRAP),
    interrupts.OutOfGasInterrupt: ("out-of-gas", abi.EXIT_OUT_OF_GAS),
    interrupts.PageFaultInterrupt: ("page-fault", abi.EXIT_PAGEFAULT), interrupts.Ecalli: ("ecalli", abi.EXIT_ECALLI),
    interrupts.Step: ("step", abi.EXIT_STEP),
}
Stop = Tuple[Optional[interrupts.Interrupt], Optional[HostcallError]]


class Divergence(VmError):
    """The two backends disagree.  ``step`` counts instructions (lock-step)
    or exits; ``interpreter`` / ``compiler`` are the two states (dicts)."""

    def __init__(self, message: str, *, step: int, interpreter: Dict[str, Any], compiler: Dict[str, Any]) -> None:
        super().__init__(message, pc=interpreter.get("pc"))
        self.step = step
        self.interpreter = interpreter
        self.compiler = compiler


def _advance(sb: Sandbox) -> Stop:
    """Run to the next stop, hostcalls served: (interrupt, None), or
    (None, the HostcallError a hostcall raised)."""
    try:
        return sb.run(serve_hostcalls=True), None
    except HostcallError as e:
        return None, e


def _state(sb: Sandbox, stop: Stop) -> Dict[str, Any]:
    interrupt, error = stop
    name = "hostcall-error" if interrupt is None else _EXITS[type(interrupt)][0]
    state = {"exit": name, "pc": sb.pc, "gas": sb.gas, "regs": list(sb.regs), "heap_size": sb.heap_size}
    if isinstance(interrupt, interrupts.PageFaultInterrupt):
        state["arg"] = interrupt.address
    elif isinstance(interrupt, interrupts.Ecalli):
        state["arg"] = interrupt.number
    elif isinstance(interrupt, interrupts.TrapInterrupt):
        state["reason"] = interrupt.reason.value
    return state


def _memory_difference(a: Sandbox, b: Sandbox) -> Optional[str]:
    for address, length in a.memory.accessible_spans():
        x, y = a.memory.read(address, length), b.memory.read(address, length)
        if x != y:
            at = next(i for i in range(length) if x[i] != y[i])
            return (f"memory differs at {address + at:#x}: interpreter {x[at]:#04x}, "
                    f"compiler {y[at]:#04x}")
    return None


def _error(sb: Sandbox, stop: Stop) -> VmError:
    """The exception call() would have raised for this stop."""
    interrupt, error = stop
    if error is not None:
        return error
    assert interrupt is not None
    if isinstance(interrupt, interrupts.TrapInterrupt):
        arg = exits.TRAP_CODES[interrupt.reason]
    else:
        arg = getattr(interrupt, "address", getattr(interrupt, "number", 0))
    return exits.error_for(_EXITS[type(interrupt)][1], interrupt.pc, arg, sb.gas, sb.program.imports)


def crosscheck(program, export, *args: int, gas: Optional[int] = None, hostcalls: Optional[dict] = None,
               page_size: Optional[int] = None, heap=None, lockstep: bool = True,
               max_steps: int = 10_000_000) -> int:
    """Call ``export(*args)`` on both backends and compare them; returns a0
    like :meth:`Sandbox.call` or raises the guest error both reported.
    ``lockstep`` compares after every instruction (registers, pc, gas,
    heap; memory at every exit), otherwise only at exits (hostcalls,
    faults, the end)."""
    options = dict(gas=gas, hostcalls=hostcalls, page_size=page_size, heap=heap)
    with Sandbox(program, backend="interpreter", isolation="inline", **options) as a, \
            Sandbox(program, backend="compiler", isolation="process", **options) as b:
        sides: List[Sandbox] = [a, b]
        for sb in sides:
            sb.prepare_call(export, *args)
            if lockstep:
                sb.set_step_tracing(True)
        step = 0
        while True:
            stops = [_advance(sb) for sb in sides]
            states = [_state(sb, stop) for sb, stop in zip(sides, stops)]
            if states[0] != states[1]:
                fields = [k for k in states[0] if states[0].get(k) != states[1].get(k)]
                raise Divergence(f"interpreter and compiler differ at step {step} in {', '.join(fields)}: "
                                 f"interpreter {states[0]}, compiler {states[1]}",
                                 step=step, interpreter=states[0], compiler=states[1])
            stepped = isinstance(stops[0][0], interrupts.Step)
            if not stepped or step % 4096 == 0:
                difference = _memory_difference(a, b)
                if difference:
                    raise Divergence(f"{difference} (step {step})", step=step, interpreter=states[0],
                                     compiler=states[1])
            if not stepped:
                break
            step += 1
            if step > max_steps:
                raise VmError(f"crosscheck stopped after {max_steps} steps (raise max_steps)")
        if isinstance(stops[0][0], interrupts.Finished):
            return a.regs[A0]
        raise _error(a, stops[0])


__all__ = ["crosscheck", "Divergence"]
