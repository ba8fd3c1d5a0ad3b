"""Conformance runner for JSON test vectors in the JAM PVM schema
(``pvm-vectors/schema.asn``), with vmcore's extensions:

* ``"isa"``: the instruction set of ``program`` (default latest64, the
  numbering the official vectors use);
* ``"expected-status"`` may also be ``"out-of-gas"``, or ``"host"`` with
  ``"expected-hostcall"`` (the guest stopped at an ``ecalli``; the expected
  pc is the ecalli's).

Each vector runs on a fresh instance with the memory pages it lists; the
result is compared field by field (status, registers, pc, gas, page-fault
address, every accessible byte).  These v0.4 vectors are metered with the
naive cost model (1 gas per instruction).

The v0.5 format (``steps``, ``block-gas-costs``; Gray Paper 0.8, the full
cost model) is run by vmcore.vectors_v05; run_paths and the CLI take
both."""
from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from typing import Iterable, List, Optional

from vmcore.program import Program
from vmcore import _engine, abi, vectors_v05

STATUS = {
    abi.EXIT_FINISHED: "halt",
    abi.EXIT_TRAP: "panic",
    abi.EXIT_ECALLI: "host",
    abi.EXIT_OUT_OF_GAS: "out-of-gas",
    abi.EXIT_PAGEFAULT: "page-fault",
}
PAGE_SIZE = abi.MIN_PAGE_SIZE  # the vectors' pages are 4 KiB


@dataclass
class Outcome:
    status: str
    pc: int
    gas: int
    regs: List[int]
    memory: dict  # page address -> bytes for every accessible page
    page_fault_address: Optional[int] = None
    hostcall: Optional[int] = None


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


def run_vector(vector: dict, *, backend: str = "interpreter", isolation: str = "inline", gas_metering: bool = True,
               step: bool = False) -> Outcome:
    """Execute one vector and return what happened (optionally without gas
    metering, or single-stepped: run again after every step exit)."""
    check_configuration(backend, isolation)
    program = Program.from_raw_code(bytes(vector["program"]), isa=vector.get("isa", "latest64"))
    if isolation == "process":
        return _run_vector_in_process(vector, program, backend == "compiler", gas_metering, step)
    module = _engine.CompiledModule(program.isa_index, program.code, program.bitmask, program.jump_table,
                                    gas_metering, step)
    inst = _engine.Instance(module, PAGE_SIZE)
    return _run_on(inst, vector, [], step)


def _run_vector_in_process(vector: dict, program: Program, native: bool, gas_metering: bool, step: bool) -> Outcome:
    """The same run in a (pooled) sandbox process, interpreted or as
    native code."""
    from vmcore.pool import SandboxPool, _shared_module
    pool = SandboxPool.default()
    inst = _engine.Process(pool.acquire(), _shared_module(program, gas_metering, step, native, "naive"),
                            PAGE_SIZE)
    pages: List[int] = []
    try:
        return _run_on(inst, vector, pages, step)
    finally:
        reusable = inst.zygote is not None
        if reusable:
            inst.scrub([(p, PAGE_SIZE) for p in sorted(set(pages))])
        zygote = inst.detach()
        if zygote is not None:
            pool.release(zygote, reusable)


def _run_on(inst, vector: dict, pages: List[int], step: bool = False, step_limit: int = 2_000_000) -> Outcome:
    """Run a vector on an interpreter instance (inline or in a process);
    ``pages`` collects the pages it maps."""
    for entry in vector["initial-page-map"]:
        perm = abi.PERM_WRITE if entry["is-writable"] else abi.PERM_READ
        inst.set_perms(entry["address"], entry["length"], perm)
        start = entry["address"] - entry["address"] % PAGE_SIZE
        pages.extend(range(start, entry["address"] + entry["length"], PAGE_SIZE))
    for chunk in vector["initial-memory"]:
        inst.write(chunk["address"], bytes(chunk["contents"]))
    inst.set_regs([int(v) for v in vector["initial-regs"]])
    inst.gas = int(vector["initial-gas"])
    rc = inst.set_pc(int(vector["initial-pc"]))
    if rc == abi.ENTRY_NOT_AN_INSTRUCTION:
        status, fault, hostcall = "panic", None, None
    elif rc == abi.ENTRY_OUT_OF_GAS:
        status, fault, hostcall = "out-of-gas", None, None
    else:
        reason = inst.run()
        steps = 0
        while step and reason == abi.EXIT_STEP:
            steps += 1
            if steps > step_limit:
                raise RuntimeError(f"still stepping after {step_limit} steps (pc {inst.pc})")
            reason = inst.run()
        status = STATUS.get(reason, f"unexpected exit {reason}")
        fault = inst.arg if reason == abi.EXIT_PAGEFAULT else None
        hostcall = inst.arg if reason == abi.EXIT_ECALLI else None
    memory = {p: inst.read(p, PAGE_SIZE) for p in sorted(set(pages)) if inst.perm(p) != abi.PERM_NONE}
    return Outcome(status, inst.pc, inst.gas, inst.get_regs(), memory, fault, hostcall)


def compare(vector: dict, outcome: Outcome) -> List[str]:
    """Differences between a vector's expectations and an outcome."""
    diffs = []
    expected_status = vector["expected-status"]
    if outcome.status != expected_status:
        diffs.append(f"status: expected {expected_status}, got {outcome.status}")
    if outcome.pc != vector["expected-pc"]:
        diffs.append(f"pc: expected {vector['expected-pc']}, got {outcome.pc}")
    if outcome.gas != vector["expected-gas"]:
        diffs.append(f"gas: expected {vector['expected-gas']}, got {outcome.gas}")
    for i, (want, got) in enumerate(zip(vector["expected-regs"], outcome.regs)):
        if int(want) != got:
            diffs.append(f"r{i}: expected {int(want):#x}, got {got:#x}")
    if expected_status == "page-fault" and "expected-page-fault-address" in vector:
        want = vector["expected-page-fault-address"]
        if outcome.page_fault_address != want:
            got = "none" if outcome.page_fault_address is None else hex(outcome.page_fault_address)
            diffs.append(f"page-fault address: expected {want:#x}, got {got}")
    if expected_status == "host" and "expected-hostcall" in vector:
        if outcome.hostcall != vector["expected-hostcall"]:
            diffs.append(f"hostcall: expected {vector['expected-hostcall']}, got {outcome.hostcall}")
    expected = {}
    for chunk in vector.get("expected-memory", []):
        for i, byte in enumerate(chunk["contents"]):
            expected[chunk["address"] + i] = byte
    for page, data in outcome.memory.items():
        for i, byte in enumerate(data):
            want = expected.pop(page + i, 0)
            if byte != want:
                diffs.append(f"memory[{page + i:#x}]: expected {want:#04x}, got {byte:#04x}")
                if len(diffs) > 40:
                    return diffs + ["..."]
    for address, byte in sorted(expected.items()):
        if byte:
            diffs.append(f"memory[{address:#x}]: expected {byte:#04x}, but the page is not accessible")
            break
    return diffs


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
