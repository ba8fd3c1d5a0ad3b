"""What a test-vector run ended with, and the one comparison of such an
outcome with expectations, shared by the v0.4 runner (vmcore.vectors), the
v0.5 runner (vmcore.vectors_v05), the fuzzers (vmcore.fuzz_diff,
vmcore.fuzz_reference) and tests/native/vectors.py.

Standard library only: tests/native/vectors.py loads this file by path
without importing vmcore (it drives a C runner with no Python extension).

Expectations are a dict in the v0.5 ``assert`` step's words, every key
optional (a missing key is not checked): ``status``, ``pc``, ``gas``,
``regs``, ``page-fault-address``, ``hostcall``, ``memory`` (chunks
``{"address", "contents"}``; every other byte of an accessible page is 0)
and ``accessible-pages`` (the exact set of accessible pages, for comparing
two outcomes)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional

MAX_DIFFS = 40  # past this many memory differences the list ends with "..."


@dataclass
class Outcome:
    """``status`` in the vector format's words (v0.4: halt, panic, host,
    out-of-gas, page-fault; v0.5 says ecalli for host); ``gas`` is None
    when the run was not metered; ``memory``: page address -> bytes of
    every accessible page the vector lists; ``trap_reason``: for a panic
    the engine reports, the :class:`vmcore.TrapReason`'s value (the vector
    formats have no such field: the fuzzers compare it between backends)."""
    status: str
    pc: int
    gas: Optional[int]
    regs: List[int]
    memory: dict
    page_fault_address: Optional[int] = None
    hostcall: Optional[int] = None
    trap_reason: Optional[str] = None


def memory_chunks(pages: Dict[int, bytes]) -> List[dict]:
    """The non-zero runs of bytes of whole pages as vector chunks."""
    chunks = []
    for page in sorted(pages):
        for run in re.finditer(rb"[^\x00]+", bytes(pages[page])):
            chunks.append({"address": page + run.start(), "contents": list(run.group())})
    return chunks


def expectations_of_v04(vector: dict) -> dict:
    """A v0.4 vector's ``expected-*`` fields as expectations (the
    page-fault address and hostcall only where the status has them)."""
    status = vector["expected-status"]
    want = {"status": status, "pc": vector["expected-pc"], "gas": vector["expected-gas"],
            "regs": vector["expected-regs"], "memory": vector.get("expected-memory", [])}
    if status == "page-fault" and "expected-page-fault-address" in vector:
        want["page-fault-address"] = vector["expected-page-fault-address"]
    if status == "host" and "expected-hostcall" in vector:
        want["hostcall"] = vector["expected-hostcall"]
    return want


def expectations_of(outcome: Outcome, *, check_gas: bool = True) -> dict:
    """Another outcome as expectations: everything, the set of accessible
    pages included (the gas unless ``check_gas`` is False)."""
    want = {"status": outcome.status, "pc": outcome.pc, "regs": list(outcome.regs),
            "page-fault-address": outcome.page_fault_address, "hostcall": outcome.hostcall,
            "memory": memory_chunks(outcome.memory), "accessible-pages": sorted(outcome.memory)}
    if check_gas:
        want["gas"] = outcome.gas
    return want


def _hex(value: Optional[int]) -> str:
    return "none" if value is None else hex(value)


def differences(want: dict, got: Outcome) -> List[str]:
    """Every way ``got`` differs from the expectations ``want`` ([] = none)."""
    diffs = []
    for key in ("status", "pc", "gas"):
        if key in want and getattr(got, key) != want[key]:
            diffs.append(f"{key}: expected {want[key]}, got {getattr(got, key)}")
    if "regs" in want:
        for i, (expected, value) in enumerate(zip(want["regs"], got.regs)):
            if int(expected) != value:
                diffs.append(f"r{i}: expected {int(expected):#x}, got {value:#x}")
        if len(want["regs"]) != len(got.regs):
            diffs.append(f"registers: expected {len(want['regs'])}, got {len(got.regs)}")
    if "page-fault-address" in want and got.page_fault_address != want["page-fault-address"]:
        diffs.append(f"page-fault address: expected {_hex(want['page-fault-address'])}, "
                     f"got {_hex(got.page_fault_address)}")
    if "hostcall" in want and got.hostcall != want["hostcall"]:
        diffs.append(f"hostcall: expected {want['hostcall']}, got {got.hostcall}")
    if "accessible-pages" in want and sorted(want["accessible-pages"]) != sorted(got.memory):
        diffs.append(f"accessible pages: expected {[hex(p) for p in sorted(want['accessible-pages'])]}, "
                     f"got {[hex(p) for p in sorted(got.memory)]}")
    if "memory" in want:
        diffs += _memory_differences(want["memory"], got.memory, MAX_DIFFS - len(diffs))
    return diffs


def trap_reason_differences(outcomes: Dict[str, Outcome]) -> List[str]:
    """No vector format has trap reasons: every run (by configuration name)
    that reports one must report the same ([] when they agree)."""
    reasons = {name: o.trap_reason for name, o in outcomes.items() if o.trap_reason is not None}
    if len(set(reasons.values())) < 2:
        return []
    (first, reason), *rest = reasons.items()
    return [f"trap reason: {first} {reason} vs " + ", ".join(f"{n} {r}" for n, r in rest if r != reason)]


def _memory_differences(chunks: Iterable[dict], pages: Dict[int, bytes], room: int) -> List[str]:
    expected = {}
    for chunk in chunks:
        for i, byte in enumerate(chunk["contents"]):
            expected[chunk["address"] + i] = byte
    diffs: List[str] = []
    for page in sorted(pages):
        for i, byte in enumerate(pages[page]):
            want = expected.pop(page + i, 0)
            if byte != want:
                diffs.append(f"memory[{page + i:#x}]: expected {want:#04x}, got {byte:#04x}")
                if len(diffs) > room:
                    return diffs + ["..."]
    for address, byte in sorted(expected.items()):
        if byte:
            diffs.append(f"memory[{address:#x}]: expected {byte:#04x}, but the page is not accessible")
            break
    return diffs


__all__ = ["Outcome", "differences", "expectations_of", "expectations_of_v04", "memory_chunks",
           "trap_reason_differences"]
