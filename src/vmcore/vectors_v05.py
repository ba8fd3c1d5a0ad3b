"""JAM PVM test vectors v0.5 (Gray Paper 0.8; PolkaVM's spectool format,
``pvm-vectors-v0.5/schema.asn``): ``name, initial-pc, initial-gas,
program, steps, block-gas-costs``.

The program is a jam_v1 code blob, metered with the full cost model
(L2-hit loads) unless the vector says otherwise.  Steps run in order on one
instance with 4 KiB pages: ``map`` (make pages accessible and zero them),
``write``,
``set-reg``, ``run`` (the first starts at initial-pc, the next ones resume
where the guest stopped: after an ecalli, retrying a page fault or an
out-of-gas block) and ``assert`` (status, pc, gas, registers,
page-fault address, hostcall, and every mapped page's bytes).
``block-gas-costs`` is checked against the costs the engine itself charges
(read back from its threaded code or native code)."""
from __future__ import annotations

from typing import List, Optional, Tuple

from vmcore import gas as _gas
from vmcore.outcome import differences
from vmcore.program import Program

STATUS = {"halt": "halt", "panic": "panic", "host": "ecalli", "out-of-gas": "out-of-gas", "page-fault": "page-fault"}


def is_v05(vector: dict) -> bool:
    return "steps" in vector and "initial-regs" not in vector


def run_vector_v05(vector: dict, *, backend: str = "interpreter", isolation: str = "inline",
                   gas_model: Optional[str] = None) -> List[str]:
    """Run a v0.5 vector; the differences from its expectations ([] = pass)."""
    from vmcore import vectors
    vectors.check_configuration(backend, isolation)
    program = Program.from_raw_code(bytes(vector["program"]), isa=vector.get("isa", "jam_v1"))
    model = _gas.resolve(gas_model or vector.get("gas-model") or "full", program.isa)
    pages: List[int] = []
    diffs: List[str] = []
    with vectors.open_sandbox(program, backend=backend, isolation=isolation, gas=int(vector["initial-gas"]),
                              gas_model=model) as sb:
        if "block-gas-costs" in vector:
            diffs += _check_block_costs(vector, program, sb.block_gas_costs(), model)
        started = False
        last: Optional[Tuple[str, Optional[int], Optional[int]]] = None
        for n, step in enumerate(vector["steps"]):
            (kind, arg), = step.items()
            if kind == "map":
                # mapping (again) gives fresh zeroed pages, as PolkaVM's zero_memory does
                sb.memory.protect(arg["address"], arg["length"], "write")
                sb.memory.zero(arg["address"], arg["length"])
                sb.memory.protect(arg["address"], arg["length"], "write" if arg["is-writable"] else "read")
                pages.extend(vectors.pages_of(arg["address"], arg["length"]))
            elif kind == "write":
                sb.memory.write(arg["address"], bytes(arg["contents"]))
            elif kind == "set-reg":
                sb.regs[int(arg["reg"])] = int(arg["value"])
            elif kind == "run":
                if not started:
                    started = True
                    last = vectors.enter(sb, int(vector["initial-pc"]))
                    if last is not None:
                        continue
                last = vectors.run_to_stop(sb, STATUS)
            elif kind == "assert":
                got = vectors.outcome_of(sb, last or vectors.Stop(), pages)
                want = dict(arg)
                if "memory" not in want:
                    got.memory = {}
                diffs += [f"step {n}: {d}" for d in differences(want, got)]
            else:
                diffs.append(f"step {n}: unknown step {kind!r}")
    return diffs


def _check_block_costs(vector: dict, program: Program, charged: dict, model: _gas.GasModel) -> List[str]:
    """``block-gas-costs`` against what the engine charges and against the
    gas module's listing (every block from offset 0 up to the first gap,
    as spectool lists them)."""
    diffs = []
    for entry in vector["block-gas-costs"]:
        pc, want = int(entry["pc"]), int(entry["cost"])
        got = charged.get(pc)
        if got != want:
            diffs.append(f"block-gas-costs[{pc}]: expected {want}, engine charges {got}")
    listed = list(program.block_gas_costs(model.name, stop_at_gap=True).items())
    want_list = [(int(e["pc"]), int(e["cost"])) for e in vector["block-gas-costs"]]
    if listed != want_list:
        diffs.append(f"block-gas-costs: expected {want_list}, the gas module lists {listed}")
    return diffs


__all__ = ["is_v05", "run_vector_v05"]
