"""Conformance runner for JSON test vectors in the JAM PVM schema
(``pvm-vectors/schema.asn``), with vmcore's extensions:

* ``"isa"``: the instruction set of ``program`` (default latest64, the
  numbering the official vectors use);
* ``"expected-status"`` may also be ``"out-of-gas"``, or ``"host"`` with
  ``"expected-hostcall"`` (the guest stopped at an ``ecalli``; the expected
  pc is the ecalli's).

Each vector runs on a fresh instance with the memory pages it lists; the
result is compared field by field (status, registers, pc, gas, page-fault
address, every accessible byte; vmcore.outcome).  These v0.4 vectors are
metered with the naive cost model (1 gas per instruction) unless the vector
has a ``"gas-model"`` key (vmcore.gas names; the reference fuzzer's
reproducers of full-model cases have one) or the caller names a model.
Every run goes through the public API: a :class:`vmcore.Sandbox` with
``memory.protect``, ``regs``, ``jump`` and ``run``.

The v0.5 format (``steps``, ``block-gas-costs``; Gray Paper 0.8, the full
cost model) is run by vmcore.vectors_v05; run_paths and the CLI take
both."""
from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from typing import Iterable, List, NamedTuple, Optional, Tuple, Union

from vmcore import abi, gas as _gas, interrupts, vectors_v05
from vmcore.errors import OutOfGas, Trap
from vmcore.heap import HeapPolicy
from vmcore.outcome import Outcome, differences, expectations_of_v04
from vmcore.program import Program
from vmcore.sandbox import Sandbox

STATUS = {
    abi.EXIT_FINISHED: "halt",
    abi.EXIT_TRAP: "panic",
    abi.EXIT_ECALLI: "host",
    abi.EXIT_OUT_OF_GAS: "out-of-gas",
    abi.EXIT_PAGEFAULT: "page-fault",
}
PAGE_SIZE = abi.MIN_PAGE_SIZE  # the vectors' pages are 4 KiB
# The vectors' guests have no heap (sbrk returns 0), as tests/oracle.py models them.
NO_HEAP = HeapPolicy(enabled=False)


@dataclass
class Result:
    name: str
    path: str
    ok: bool
    diffs: List[str] = field(default_factory=list)


# Expectations of the shared v0.4 vectors (Gray Paper 0.5.4) that PolkaVM
# 0.35, the reference, no longer meets.  Kept here, not deleted from the
# files: name -> (the program the entry is for, why, the expected-* fields
# PolkaVM 0.35 gives instead).  load_vector() applies them and keeps the old
# values under "superseded".
SUPERSEDED = {
    "inst_fallthrough": (
        [0, 0, 1, 1, 1],
        "a fallthrough as the last instruction: PolkaVM 0.35 panics at the fallthrough itself (pc 0) and charges "
        "nothing more (gas 9999); GP 0.5.4 ran the implicit trap past the end of the code as a block of its own "
        "(pc 1, gas 9998)",
        {"expected-pc": 0, "expected-gas": 9999},
    ),
}


def current_expectations(vector: dict) -> dict:
    """The vector with any SUPERSEDED expectations replaced (a copy when
    one applies); the replaced values go under "superseded"."""
    entry = SUPERSEDED.get(vector.get("name", ""))
    if entry is None or list(vector.get("program", ())) != entry[0] or "superseded" in vector:
        return vector
    program, reason, fields = entry
    out = dict(vector)
    out["superseded"] = {"reason": reason, **{k: vector.get(k) for k in fields}}
    out.update(fields)
    return out


def load_vector(path: str) -> dict:
    with open(path) as f:
        return current_expectations(json.load(f))


CONFIGURATIONS = (("interpreter", "inline"), ("interpreter", "process"), ("compiler", "process"))


def check_configuration(backend: str, isolation: str) -> None:
    if (backend, isolation) not in CONFIGURATIONS:
        raise ValueError(f"backend {backend!r} with isolation {isolation!r} is not available (the compiler runs "
                         "only in a sandbox process: --backend compiler --isolation process)")


def open_sandbox(program: Program, *, backend: str, isolation: str, gas: Optional[int],
                 gas_model: Union[None, str, _gas.GasModel] = None) -> Sandbox:
    """A sandbox as the vectors want it: 4 KiB pages, no heap, nothing
    accessible until the vector maps it (raw code has no data sections);
    ``gas`` None runs unmetered."""
    return Sandbox(program, backend=backend, isolation=isolation, gas=gas, page_size=PAGE_SIZE, heap=NO_HEAP,
                   gas_model=gas_model)


class Stop(NamedTuple):
    """How a run stopped, in a vector format's words (``trap_reason``: the
    TrapReason's value of a panic)."""
    status: Optional[str] = None
    fault: Optional[int] = None
    hostcall: Optional[int] = None
    trap_reason: Optional[str] = None


def enter(sb: Sandbox, pc: int) -> Optional[Stop]:
    """Start the guest at ``pc``: None, or how the entry was refused
    ("panic": not an instruction, "out-of-gas": the first block's gas is
    not there)."""
    try:
        sb.jump(pc)
    except Trap as e:
        return Stop("panic", trap_reason=e.reason.value if e.reason is not None else None)
    except OutOfGas:
        return Stop("out-of-gas")
    return None


def run_to_stop(sb: Sandbox, statuses: dict, step_limit: Optional[int] = None) -> Stop:
    """Run until the guest stops (with ``step_limit``: through up to that
    many single steps)."""
    stop = sb.run()
    steps = 0
    while step_limit is not None and isinstance(stop, interrupts.Step):
        steps += 1
        if steps > step_limit:
            raise RuntimeError(f"still stepping after {step_limit} steps (pc {stop.pc})")
        stop = sb.run()
    if isinstance(stop, interrupts.PageFaultInterrupt):
        return Stop(statuses["page-fault"], fault=stop.address)
    if isinstance(stop, interrupts.Ecalli):
        return Stop(statuses["host"], hostcall=stop.number)
    if isinstance(stop, interrupts.TrapInterrupt):
        return Stop(statuses["panic"], trap_reason=stop.reason.value)
    kind = {interrupts.Finished: "halt", interrupts.OutOfGasInterrupt: "out-of-gas"}.get(type(stop))
    return Stop(statuses[kind] if kind else f"unexpected exit {stop!r}")


def pages_of(address: int, length: int) -> range:
    """The 4 KiB pages overlapping a range."""
    return range(address - address % PAGE_SIZE, address + length, PAGE_SIZE)


def outcome_of(sb: Sandbox, stop: Stop, pages: Iterable[int]) -> Outcome:
    """The guest's state as an Outcome (memory: the accessible ones of ``pages``)."""
    memory = {p: sb.memory.read(p, PAGE_SIZE) for p in sorted(set(pages)) if sb.memory.access(p) != "none"}
    return Outcome(stop.status, sb.pc, sb.gas, list(sb.regs), memory, stop.fault, stop.hostcall, stop.trap_reason)


def vector_gas_model(vector: dict, gas_model: Union[None, str, _gas.GasModel] = None) -> _gas.GasModel:
    """The cost model a v0.4 vector runs with: ``gas_model``, else the
    vector's ``"gas-model"`` key, else naive (what the JAM v0.4 vectors
    use, whatever their instruction set)."""
    return _gas.resolve(gas_model or vector.get("gas-model") or "naive")


V04_STATUS = {s: s for s in ("halt", "panic", "host", "out-of-gas", "page-fault")}


def run_vector(vector: dict, *, backend: str = "interpreter", isolation: str = "inline", gas_metering: bool = True,
               step: bool = False, gas_model: Union[None, str, _gas.GasModel] = None,
               step_limit: int = 2_000_000) -> Outcome:
    """Execute one v0.4 vector and return what happened (optionally without
    gas metering, or single-stepped: run again after every step exit).
    ``gas_model``: see :func:`vector_gas_model`."""
    check_configuration(backend, isolation)
    program = Program.from_raw_code(bytes(vector["program"]), isa=vector.get("isa", "latest64"))
    gas = int(vector["initial-gas"]) if gas_metering else None
    pages: List[int] = []
    with open_sandbox(program, backend=backend, isolation=isolation, gas=gas,
                      gas_model=vector_gas_model(vector, gas_model)) as sb:
        for entry in vector["initial-page-map"]:
            sb.memory.protect(entry["address"], entry["length"], "write" if entry["is-writable"] else "read")
            pages.extend(pages_of(entry["address"], entry["length"]))
        for chunk in vector["initial-memory"]:
            sb.memory.write(chunk["address"], bytes(chunk["contents"]))
        for i, value in enumerate(vector["initial-regs"]):
            sb.regs[i] = int(value)
        if step:
            sb.set_step_tracing(True)
        stop = enter(sb, int(vector["initial-pc"])) or run_to_stop(sb, V04_STATUS, step_limit if step else None)
        return outcome_of(sb, stop, pages)


def compare(vector: dict, outcome: Outcome) -> List[str]:
    """Differences between a v0.4 vector's expectations and an outcome."""
    return differences(expectations_of_v04(vector), outcome)


def collect(paths: Iterable[str]) -> List[str]:
    files = []
    for path in paths:
        if os.path.isdir(path):
            for root, _, names in os.walk(path):
                # (schema.json: the format's JSON Schema, shipped next to the v0.5 vectors)
                files.extend(os.path.join(root, n) for n in names if n.endswith(".json") and n != "schema.json")
        else:
            files.append(path)
    return sorted(files)


def run_paths(paths: Iterable[str], *, backend: str = "interpreter", isolation: str = "inline") -> List[Result]:
    results = []
    for path in collect(paths):
        try:
            vector = load_vector(path)
            name = vector.get("name", os.path.basename(path))
            if vectors_v05.is_v05(vector):
                diffs = vectors_v05.run_vector_v05(vector, backend=backend, isolation=isolation)
            else:
                diffs = compare(vector, run_vector(vector, backend=backend, isolation=isolation))
        except (OSError, ValueError, KeyError, TypeError) as e:
            name, diffs = os.path.basename(path), [f"cannot run: {type(e).__name__}: {e}"]
        except Exception as e:  # a vmcore error is a failure of this vector, not of the runner
            name, diffs = os.path.basename(path), [f"error: {type(e).__name__}: {e}"]
        results.append(Result(name, path, not diffs, diffs))
    return results


def main_vectors(paths: List[str], *, backend: str, isolation: str, verbose: bool) -> int:
    missing = [p for p in paths if not os.path.exists(p)]
    if missing:
        print(f"error: no such file or directory: {missing[0]}", file=sys.stderr)
        return 2
    try:
        check_configuration(backend, isolation)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    files = collect(paths)
    if not files:
        print("error: no vector files found", file=sys.stderr)
        return 2
    tty = sys.stderr.isatty()
    passed = failed = 0
    for n, path in enumerate(files, 1):
        (result,) = run_paths([path], backend=backend, isolation=isolation)
        if result.ok:
            passed += 1
            if verbose:
                print(f"PASS {result.name}")
        else:
            failed += 1
            print(f"FAIL {result.name} ({result.path})")
            for d in result.diffs:
                print(f"    {d}")
        if tty:
            print(f"\r[{n}/{len(files)}] {passed} passed, {failed} failed", end="", file=sys.stderr, flush=True)
    if tty:
        print(file=sys.stderr)
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1
