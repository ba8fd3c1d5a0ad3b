"""``python -m vmcore fuzz --target reference``: vmcore against PolkaVM.

Random programs of every instruction set (the ``diff`` target's generator,
:func:`vmcore.fuzz_cases.generate_vector`) run on PolkaVM 0.35's interpreter
through the ``refharness oracle`` binary (see ``shared/tools/README.md``),
which fills in what PolkaVM did, and on every vmcore backend
(:data:`vmcore.vectors.CONFIGURATIONS`), with either gas model
(``--gas-model naive|full``: PolkaVM's ``--cost-model``, vmcore's
``vectors.run_vector(gas_model=)``).  Every field must agree: status,
pc, gas, registers, page-fault address, hostcall number, memory.  A
divergence is reported with a reproducer: the oracle-filled v0.4 vector
(``"isa"`` and ``"gas-model"`` keys included), runnable with ``python -m vmcore vectors FILE``.

The binary: ``--reference PATH``, else ``$VMCORE_REFHARNESS``, else
``<repository root>/../shared/tools/refharness``.  Case ``i`` depends only
on ``(seed, i)``; the oracle runs on batches of consecutive cases.

What the generated cases avoid, and why (differences of the harness, not
of the semantics):

* ``sbrk``: PolkaVM's interpreter does not implement it with dynamic
  paging (the oracle process aborts); every ``sbrk`` opcode byte at an
  instruction start becomes ``trap``.
* Pages below 0x10000: the oracle refuses to map them.  Their page-map
  entries are dropped, and initial memory outside the remaining pages too.
* Partial pages: the oracle reports expected memory only inside each
  entry's length, vmcore whole pages; lengths are rounded up to pages.

And one documented difference of the semantics: PolkaVM's interpreter
reports a page fault for an access that first fails on a page between its
16 KiB guard and 64 KiB, where vmcore follows the Gray Paper and panics
below 64 KiB (``vmcore._engine.LOW_MEMORY_PANIC_LIMIT``).  Such results are
normalised to a panic (same pc, gas, registers and memory) before
comparing; the case counts as ``low-memory`` in the statistics.
"""
from __future__ import annotations

import json
import os
import subprocess
import tempfile
import traceback
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from vmcore import _engine, abi, isa as _isa
from vmcore.backends import unavailable
from vmcore.fuzz_cases import Failure, code_blob, generate_vector
from vmcore.outcome import trap_reason_differences
from vmcore.program import Program
from vmcore.vectors import CONFIGURATIONS, compare, run_vector

NAME = "reference"
ENV = "VMCORE_REFHARNESS"
GAS_MODELS = ("naive", "full")
BATCH = 64
ORACLE_TIMEOUT = 300.0  # seconds for one batch
PAGE = abi.MIN_PAGE_SIZE


def find_reference(path: Optional[str] = None) -> Optional[str]:
    """The refharness binary: path, else $VMCORE_REFHARNESS, else
    <repository root>/../shared/tools/refharness; None when not there."""
    candidates = [path] if path else []
    if not path:
        if os.environ.get(ENV):
            candidates.append(os.environ[ENV])
        candidates.append(str(Path(__file__).resolve().parents[2].parent / "shared" / "tools" / "refharness"))
    for c in candidates:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    return None


# =====================================================================
# Cases
# =====================================================================

def adapt_for_reference(vector: dict) -> dict:
    """The vector with what the oracle cannot take replaced (see the module
    docstring): sbrk -> trap, no pages below 0x10000, whole pages."""
    out = dict(vector)
    isa = vector.get("isa", "latest64")
    program = Program.from_raw_code(bytes(vector["program"]), isa=isa)
    sbrk, trap = _isa.BY_NAME["sbrk"].byte_for(isa), _isa.BY_NAME["trap"].byte_for(isa)
    code = bytearray(program.code)
    changed = False
    for k, byte in enumerate(code):
        if byte == sbrk and program.bitmask[k >> 3] >> (k & 7) & 1:
            code[k] = trap
            changed = True
    if changed:
        out["program"] = list(code_blob(bytes(code), program.bitmask, program.jump_table,
                                        program.jump_table_entry_size))
    low = _engine.LOW_MEMORY_PANIC_LIMIT
    pages = []
    for e in vector["initial-page-map"]:
        if e["address"] < low:
            continue
        length = -(-e["length"] // PAGE) * PAGE
        pages.append({"address": e["address"], "length": min(length, (1 << 32) - e["address"]),
                      "is-writable": e["is-writable"]})
    out["initial-page-map"] = pages

    def inside(chunk: dict) -> bool:
        a, n = chunk["address"], len(chunk["contents"])
        return any(p["address"] <= a and a + n <= p["address"] + p["length"] for p in pages)

    out["initial-memory"] = [c for c in vector["initial-memory"] if inside(c)]
    return out


def generate(seed: int, index: int) -> dict:
    """Case `index`: a diff-target program and state, adapted for the oracle."""
    vector = adapt_for_reference(generate_vector(seed, index, NAME))
    vector["name"] = f"fuzz-{NAME}-s{seed}-{index}"
    return vector


def normalise(filled: dict) -> Tuple[dict, bool]:
    """PolkaVM's expectations with the documented low-memory difference
    applied (a page fault below LOW_MEMORY_PANIC_LIMIT is a panic); returns
    (vector, whether it applied)."""
    address = filled.get("expected-page-fault-address")
    if filled.get("expected-status") != "page-fault" or address is None or address >= _engine.LOW_MEMORY_PANIC_LIMIT:
        return filled, False
    out = dict(filled)
    out["expected-status"] = "panic"
    del out["expected-page-fault-address"]
    out["reference-normalised"] = (f"PolkaVM reported a page fault at {address:#x}; below "
                                   f"{_engine.LOW_MEMORY_PANIC_LIMIT:#x} the Gray Paper (and vmcore) panic")
    return out, True


class OracleError(RuntimeError):
    pass


def run_oracle(binary: str, cases: Sequence[dict], gas_model: str = "naive",
               timeout: float = ORACLE_TIMEOUT) -> List[Tuple[Optional[dict], str]]:
    """Run cases through ``refharness oracle`` in one batch (again for the
    rest after an input that makes it abort); per case (filled vector or
    None, the oracle's error message)."""
    if gas_model not in GAS_MODELS:
        raise ValueError(f"unknown gas model {gas_model!r}; expected one of {', '.join(GAS_MODELS)}")
    results: List[Tuple[Optional[dict], str]] = [(None, "not run")] * len(cases)
    with tempfile.TemporaryDirectory(prefix="vmcore-ref-") as tmp:
        names = []
        for k, case in enumerate(cases):
            name = f"case{k:05d}.json"
            with open(os.path.join(tmp, name), "w") as f:
                json.dump(case, f)
            names.append(name)
        out_dir = os.path.join(tmp, "out")
        os.mkdir(out_dir)
        todo = list(range(len(cases)))
        while todo:
            argv = [binary, "oracle", "--cost-model", gas_model, "--out-dir", out_dir, "--in",
                    *[os.path.join(tmp, names[k]) for k in todo]]
            try:
                p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
            except subprocess.TimeoutExpired:
                raise OracleError(f"the reference took over {timeout:g} s on {len(todo)} cases") from None
            except OSError as e:
                raise OracleError(f"cannot run the reference {binary}: {e}") from None
            errors = {}
            for line in p.stderr.splitlines():
                if line.startswith("error: "):
                    path, _, message = line[len("error: "):].partition(": ")
                    errors[os.path.basename(path)] = message
            rest = []
            for k in todo:
                path = os.path.join(out_dir, names[k])
                if os.path.exists(path):
                    with open(path) as f:
                        results[k] = (json.load(f), "")
                elif names[k] in errors:
                    results[k] = (None, errors[names[k]])
                else:
                    rest.append(k)
            if not rest:
                break
            if p.returncode in (0, 2):
                raise OracleError(f"the reference gave no answer for {len(rest)} cases (exit {p.returncode}): "
                                  f"{p.stderr.strip()[:300]}")
            # it aborted at the first case without an answer (inputs run in
            # order): blame that one, go on with the others
            tail = " ".join(p.stderr.strip().splitlines()[:3])[:300]
            results[rest[0]] = (None, f"the reference aborted (exit {p.returncode}): {tail}")
            todo = rest[1:]
    return results


# =====================================================================
# The campaign target
# =====================================================================

class ReferenceTarget:
    """A fuzz.campaign target (see vmcore.fuzz: setup, run_case, stats,
    crash_artifact, describe)."""

    name = NAME

    def __init__(self, seed: int, *, binary: Optional[str] = None, gas_model: str = "naive",
                 batch: int = BATCH) -> None:
        self.seed = seed
        self.binary = binary
        self.gas_model = gas_model
        self.batch = max(1, batch)
        self.cache: Dict[int, Tuple[dict, Optional[dict], str]] = {}
        self.configs: List[Tuple[str, str]] = []
        self.statuses: Dict[str, int] = {}

    def setup(self) -> List[str]:
        binary = find_reference(self.binary)
        if binary is None:
            where = self.binary or f"${ENV} or ../shared/tools/refharness"
            raise FileNotFoundError(f"no reference binary at {where}")
        self.binary = binary
        if self.gas_model not in GAS_MODELS:
            raise ValueError(f"unknown gas model {self.gas_model!r}; expected one of {', '.join(GAS_MODELS)}")
        notes = []
        probe = generate(self.seed, 0)
        self.configs = []
        for backend, isolation in CONFIGURATIONS:
            why_not = unavailable(backend, isolation)  # refused on this machine: skipped, not a failure
            if why_not is not None:
                notes.append(f"skipping {backend}/{isolation}: {why_not}")
                continue
            try:
                self._run(probe, backend, isolation)
            except (ValueError, NotImplementedError) as e:
                notes.append(f"skipping {backend}/{isolation}: {e}")
                continue
            self.configs.append((backend, isolation))
        return notes + [f"reference: {binary} (PolkaVM interpreter, {self.gas_model} gas)",
                        "configurations: " + ", ".join(f"{b}/{i}" for b, i in self.configs)]

    def _run(self, vector: dict, backend: str, isolation: str):
        return run_vector(vector, backend=backend, isolation=isolation, gas_model=self.gas_model)

    def generate(self, index: int) -> dict:
        return generate(self.seed, index)

    def _fill(self, index: int) -> None:
        indices = list(range(index, index + self.batch))
        cases = [self.generate(i) for i in indices]
        for i, case, (filled, error) in zip(indices, cases, run_oracle(self.binary, cases, self.gas_model)):
            self.cache[i] = (case, filled, error)

    def expected(self, index: int) -> Tuple[dict, Optional[dict], str]:
        """(case, PolkaVM's filled vector or None, the oracle's error)."""
        if index not in self.cache:
            self.cache = {k: v for k, v in self.cache.items() if k > index - self.batch}
            self._fill(index)
        return self.cache[index]

    def run_case(self, index: int):
        if not self.configs:
            self.setup()
        case, filled, error = self.expected(index)
        if filled is None:
            # nothing to compare with (the oracle refused the case)
            self._count("reference-error")
            return None
        want, normalised = normalise(filled)
        self._count(f"{case['isa']}:{want['expected-status']}")
        if normalised:
            self._count("low-memory")
        problems = []
        outcomes = {}
        for backend, isolation in self.configs:
            try:
                got = outcomes[f"{backend}/{isolation}"] = self._run(want, backend, isolation)
                diffs = compare(want, got)
            except Exception as e:
                problems.append(f"{backend}/{isolation} raised {type(e).__name__}: {e}\n{traceback.format_exc()}")
                continue
            if diffs:
                problems.append(f"{backend}/{isolation} vs PolkaVM: " + "; ".join(diffs[:12]))
        problems += trap_reason_differences(outcomes)  # PolkaVM reports none: ours must agree
        if not problems:
            return None
        artifact = dict(want)
        artifact["gas-model"] = self.gas_model  # what `python -m vmcore vectors FILE` replays it with
        artifact["fuzz"] = {"seed": self.seed, "case": index, "reference": "PolkaVM 0.35 interpreter (refharness)",
                            "gas-model": self.gas_model, "problems": problems,
                            "replay": f"python -m vmcore fuzz --target {NAME} --seed {self.seed} --replay {index}"}
        kind = "mismatch" if all(" vs " in p.splitlines()[0] for p in problems) else "exception"
        return Failure(NAME, index, kind, problems[0].splitlines()[0], "\n".join(problems), artifact, self.seed)

    def _count(self, key: str) -> None:
        self.statuses[key] = self.statuses.get(key, 0) + 1

    def stats(self) -> Dict[str, int]:
        return dict(self.statuses)

    def crash_artifact(self, index: int) -> dict:
        vector = dict(self.generate(index))
        vector["expected-status"] = "crash"
        vector["fuzz"] = {"seed": self.seed, "case": index,
                          "replay": f"python -m vmcore fuzz --target {NAME} --seed {self.seed} --replay {index}"}
        return vector

    def describe(self, index: int) -> str:
        v = self.generate(index)
        return (f"{v['isa']} program of {len(v['program'])} bytes, {len(v['initial-page-map'])} page ranges, "
                f"gas {v['initial-gas']}, pc {v['initial-pc']}")
