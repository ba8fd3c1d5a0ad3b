"""The fuzzer's ``diff`` target: random valid programs
(:func:`vmcore.fuzz_cases.generate_vector`) run on every configuration
(every backend, single-stepped, unmetered; the Python model of the
semantics with ``--oracle PATH``), which must agree (vmcore.outcome: the
one comparison)."""
from __future__ import annotations

import os
import re
import sys
import traceback
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from vmcore import abi
from vmcore.program import Program
from vmcore.outcome import Outcome, differences, expectations_of, memory_chunks, trap_reason_differences
from vmcore.vectors import PAGE_SIZE, run_vector
from vmcore.fuzz_cases import Failure, code_blob, generate_vector

# =====================================================================
# Diff target
# =====================================================================

Runner = Callable[[dict], Outcome]


def run_inline(vector: dict, *, gas_metering: bool = True, step: bool = False) -> Outcome:
    """Run a vector on the inline interpreter, optionally without gas
    metering and/or single-stepped (vectors.run_vector: the one runner)."""
    return run_vector(vector, gas_metering=gas_metering, step=step)


@dataclass
class Config:
    """One way of running a vector.  ``metered=False`` configurations are
    compared only when the reference did not run out of gas, and report
    no gas (None: metering is off)."""
    name: str
    run: Runner
    metered: bool = True


def default_configs() -> Tuple[List[Config], List[str]]:
    """Every entry of BACKENDS (through vectors.run_vector), then the inline
    interpreter single-stepped and unmetered; plus notes on what was
    skipped.  Probed in the process that will run them."""
    from vmcore.backends import BACKENDS, unavailable
    configs, notes = [], []
    probe = {"name": "probe", "isa": "latest64", "program": list(code_blob(bytes([0]), b"\x01", [])),
             "initial-regs": [0] * abi.REG_COUNT, "initial-pc": 0, "initial-page-map": [], "initial-memory": [],
             "initial-gas": 10}
    for backend, isolation in BACKENDS:
        why_not = unavailable(backend, isolation)  # refused on this machine: skipped, not a failure
        if why_not is not None:
            notes.append(f"skipping {backend}/{isolation}: {why_not}")
            continue
        run = (lambda v, b=backend, i=isolation: run_vector(v, backend=b, isolation=i))
        try:
            run(probe)
        except (ValueError, NotImplementedError) as e:
            notes.append(f"skipping {backend}/{isolation}: {e}")
            continue
        configs.append(Config(f"{backend}/{isolation}", run))
    if any(c.name == "compiler/process" for c in configs):
        configs.append(Config("compiler/process+step",
                              lambda v: run_vector(v, backend="compiler", isolation="process", step=True)))
        configs.append(Config("compiler/process+unmetered",
                              lambda v: run_vector(v, backend="compiler", isolation="process", gas_metering=False),
                              False))
    configs.append(Config("interpreter/inline+step", lambda v: run_inline(v, step=True)))
    configs.append(Config("interpreter/inline+unmetered", lambda v: run_inline(v, gas_metering=False), False))
    configs.append(Config("interpreter/inline+step+unmetered",
                          lambda v: run_inline(v, gas_metering=False, step=True), False))
    return configs, notes


def oracle_config(path: str) -> Config:
    """A Python model of the semantics as a configuration (and the
    reference when present): the module at ``path`` (a source checkout's
    tests/oracle.py; it is a test model, so it is loaded only when asked
    for, never found implicitly) with ``Code(isa, code, bitmask,
    jump_table)`` and ``Machine(code, regs, gas, page_size=)``."""
    import importlib.util
    if not path or not os.path.isfile(path):
        raise FileNotFoundError(f"no oracle at {path!r} (--oracle PATH: e.g. a source checkout's tests/oracle.py)")
    oracle = sys.modules.get("vmcore_fuzz_oracle")
    if oracle is None or getattr(oracle, "__file__", None) != path:
        spec = importlib.util.spec_from_file_location("vmcore_fuzz_oracle", path)
        oracle = importlib.util.module_from_spec(spec)
        sys.modules["vmcore_fuzz_oracle"] = oracle  # its dataclasses look themselves up there
        spec.loader.exec_module(oracle)

    def run(vector: dict) -> Outcome:
        program = Program.from_raw_code(bytes(vector["program"]), isa=vector.get("isa", "latest64"))
        code = oracle.Code(program.isa, program.code, program.bitmask, list(program.jump_table))
        machine = oracle.Machine(code, [int(v) for v in vector["initial-regs"]], int(vector["initial-gas"]),
                                 page_size=PAGE_SIZE)
        pages = []
        for e in vector["initial-page-map"]:
            machine.map(e["address"], e["length"], e["is-writable"])
            start = e["address"] - e["address"] % PAGE_SIZE
            pages.extend(range(start, e["address"] + e["length"], PAGE_SIZE))
        for chunk in vector["initial-memory"]:
            machine.poke(chunk["address"], bytes(chunk["contents"]))
        result = machine.start(int(vector["initial-pc"])) or machine.run()
        memory = {p: bytes(machine.pages[p].data) for p in sorted(set(pages)) if p in machine.pages}
        return Outcome(result.status, result.pc, result.gas, list(result.regs), memory, result.fault, result.hostcall)

    return Config("oracle", run)


def compare_outcomes(want: Outcome, got: Outcome, *, check_gas: bool = True) -> List[str]:
    """How ``got`` differs from ``want`` (vmcore.outcome: the one comparison)."""
    return differences(expectations_of(want, check_gas=check_gas), got)


def with_expected(vector: dict, outcome: Outcome) -> dict:
    """The vector with expected-* fields from an outcome (the JAM schema)."""
    out = dict(vector)
    out.update({
        "expected-status": outcome.status,
        "expected-regs": list(outcome.regs),
        "expected-pc": outcome.pc,
        "expected-memory": memory_chunks(outcome.memory),
        "expected-gas": outcome.gas,
    })
    if outcome.status == "page-fault":
        out["expected-page-fault-address"] = outcome.page_fault_address
    if outcome.status == "host":
        out["expected-hostcall"] = outcome.hostcall
    return out


class DiffTarget:
    name = "diff"

    def __init__(self, seed: int, *, oracle: Optional[str] = None, extra_configs: Sequence[Config] = ()) -> None:
        self.seed = seed
        self.oracle = oracle
        self.extra_configs = list(extra_configs)
        self.configs: List[Config] = []
        self.statuses: Dict[str, int] = {}

    def setup(self) -> List[str]:
        configs, notes = default_configs()
        if self.oracle is not None:
            configs.insert(0, oracle_config(self.oracle))
        self.configs = configs + self.extra_configs
        return notes + ["configurations: " + ", ".join(c.name for c in self.configs)]

    def generate(self, index: int) -> dict:
        return generate_vector(self.seed, index, self.name)

    def run_case(self, index: int) -> Optional[Failure]:
        if not self.configs:
            self.setup()
        vector = self.generate(index)
        outcomes: Dict[str, Outcome] = {}
        problems: List[str] = []
        for phase in (True, False):  # metered configurations first
            if not phase:
                first = next(iter(outcomes.values()), None)
                if first is None or first.status == "out-of-gas" or any(
                        (o.status, o.pc) != (first.status, first.pc) for o in outcomes.values()):
                    break  # unmetered runs would go past where the metered ones stopped (or loop forever)
            for config in self.configs:
                if config.metered != phase:
                    continue
                try:
                    outcomes[config.name] = config.run(vector)
                except Exception as e:
                    problems.append(f"{config.name} raised {type(e).__name__}: {e}\n{traceback.format_exc()}")
        reference_name = next(iter(outcomes), None)
        if reference_name is None:
            return Failure(self.name, index, "exception", problems[0].splitlines()[0], "\n".join(problems),
                           vector, self.seed)
        reference = outcomes[reference_name]
        self.statuses[reference.status] = self.statuses.get(reference.status, 0) + 1
        by_name = {c.name: c for c in self.configs}
        for name, outcome in outcomes.items():
            if name == reference_name:
                continue
            if by_name[name].metered:
                diffs = compare_outcomes(reference, outcome)
            else:
                diffs = compare_outcomes(reference, outcome, check_gas=False)
                if outcome.gas is not None:
                    diffs.append(f"gas {outcome.gas} reported without metering (Sandbox.gas is None then)")
            if diffs:
                problems.append(f"{name} vs {reference_name}: " + "; ".join(diffs[:12]))
        problems += trap_reason_differences(outcomes)
        if not problems:
            return None
        artifact = with_expected(vector, reference)
        artifact["fuzz"] = {"seed": self.seed, "case": index, "reference": reference_name, "problems": problems,
                            "replay": f"python -m vmcore fuzz --target diff --seed {self.seed} --replay {index}"}
        kind = "mismatch" if all(" vs " in p.splitlines()[0] for p in problems) else "exception"
        return Failure(self.name, index, kind, problems[0].splitlines()[0], "\n".join(problems), artifact,
                       self.seed)

    def stats(self) -> Dict[str, int]:
        return dict(self.statuses)

    def crash_artifact(self, index: int) -> dict:
        """The case's vector for a crash or hang: there is no outcome to
        expect, so the expected status is "crash" (running it with
        ``python -m vmcore vectors`` crashes, hangs or reports FAIL)."""
        vector = self.generate(index)
        vector.update({"expected-status": "crash", "expected-regs": list(vector["initial-regs"]),
                       "expected-pc": vector["initial-pc"], "expected-memory": [],
                       "expected-gas": vector["initial-gas"]})
        vector["fuzz"] = {"seed": self.seed, "case": index, "problems": ["crashed or hung: no expected outcome"],
                          "replay": f"python -m vmcore fuzz --target diff --seed {self.seed} --replay {index}"}
        return vector

    def describe(self, index: int) -> str:
        v = self.generate(index)
        program = Program.from_raw_code(bytes(v["program"]), isa=v["isa"])
        return (f"{v['isa']}: {len(program.code)} bytes of code, {program.instruction_count()} instructions, "
                f"{len(program.jump_table)} jump table entries, {len(v['initial-page-map'])} page ranges, "
                f"gas {v['initial-gas']}, pc {v['initial-pc']}")
