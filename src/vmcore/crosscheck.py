"""Differential execution: the interpreter (inline) and the recompiler's
native code (in a sandbox process) run the same call side by side and are
compared after every instruction (lock-step, through single-step mode) or
at every exit; the first difference raises :class:`Divergence` with both
states.

    >>> from vmcore.crosscheck import crosscheck
    >>> crosscheck(program, "main", 10, gas=10_000)   # a0, or the guest's error

Hostcalls are served on both sides by the same functions (they must be
deterministic: each runs twice, once per side)."""
from __future__ import annotations

from typing import Any, Dict, Iterator, List, Optional, Tuple

from vmcore import abi
from vmcore.errors import VmError
from vmcore.sandbox import Sandbox

A0 = abi.ARG_REGS[0]
_EXIT_NAMES = {
    abi.EXIT_FINISHED: "finished", abi.EXIT_TRAP: "trap", abi.EXIT_OUT_OF_GAS: "out-of-gas",
    abi.EXIT_PAGEFAULT: "page-fault", abi.EXIT_ECALLI: "ecalli", abi.EXIT_STEP: "step",
    abi.EXIT_HOSTCALL_ERROR: "hostcall-error",
}


class Divergence(VmError):
    """The two backends disagree.  ``step`` counts instructions (lock-step)
    or exits; ``interpreter`` / ``compiler`` are the two states (dicts)."""

    def __init__(self, message: str, *, step: int, interpreter: Dict[str, Any], compiler: Dict[str, Any]) -> None:
        super().__init__(message, pc=interpreter.get("pc"))
        self.step = step
        self.interpreter = interpreter
        self.compiler = compiler


def _state(sb: Sandbox, reason: int) -> Dict[str, Any]:
    b = sb._backend
    state = {"exit": _EXIT_NAMES.get(reason, reason), "pc": b.pc, "gas": b.gas,
             "regs": [b.get_reg(i) for i in range(abi.REG_COUNT)], "heap_top": b.heap_top}
    if reason in (abi.EXIT_PAGEFAULT, abi.EXIT_ECALLI):
        state["arg"] = b.arg
    return state


def _spans(sb: Sandbox) -> Iterator[Tuple[int, int]]:
    """Every span the guest could have written (layout regions and heap)."""
    return iter(sb._backend._touched())


def _memory_difference(a: Sandbox, b: Sandbox) -> Optional[str]:
    for address, length in _spans(a):
        if length == 0:
            continue
        x, y = a._backend.read(address, length), b._backend.read(address, length)
        if x != y:
            at = next(i for i in range(length) if x[i] != y[i])
            return (f"memory differs at {address + at:#x}: interpreter {x[at]:#04x}, "
                    f"compiler {y[at]:#04x}")
    return None


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
            reasons = [sb._backend.serve(sb._handlers, sb._caller, sb._mask) for sb in sides]
            states = [_state(sb, r) for sb, r in zip(sides, reasons)]
            if states[0] != states[1]:
                fields = [k for k in states[0] if states[0].get(k) != states[1].get(k)]
                raise Divergence(f"interpreter and compiler differ at step {step} in {', '.join(fields)}: "
                                 f"interpreter {states[0]}, compiler {states[1]}",
                                 step=step, interpreter=states[0], compiler=states[1])
            if reasons[0] != abi.EXIT_STEP or step % 4096 == 0:
                difference = _memory_difference(a, b)
                if difference:
                    raise Divergence(f"{difference} (step {step})", step=step, interpreter=states[0],
                                     compiler=states[1])
            if reasons[0] != abi.EXIT_STEP:
                break
            step += 1
            if step > max_steps:
                raise VmError(f"crosscheck stopped after {max_steps} steps (raise max_steps)")
        if reasons[0] == abi.EXIT_FINISHED:
            return a._backend.get_reg(A0) & a._mask
        b._backend.take_hostcall_error()
        raise a._error_for(reasons[0])


__all__ = ["crosscheck", "Divergence"]
