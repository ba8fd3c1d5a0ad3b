"""Fingerprints of the block costs the gas module gives, to show that a
change to how they are computed (gas.c) leaves every cost the same.

    python perf/gas_costs_hash.py [--doom PATH] [--save FILE | --compare FILE]

For DOOM, the shared programs (../shared/programs/*.polkavm) and every
test vector's program, under each full-model cache variant: a SHA-256 of
``Program.block_gas_costs(model)`` (the whole code, and up to the first
gap as spectool lists a vector's blocks).  For DOOM and the shared
programs also what the engines charge (``Sandbox.block_gas_costs()``:
costs read back from the interpreter's threaded code and from the
recompiler's native code), which the builders compute with the gas module
while they walk the code.  --save writes the fingerprints, --compare
checks them against a saved file (exit status 1 on any difference).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Tuple

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MODELS = ("full", "full-l1", "full-l3")
ENGINES = (("interpreter", "inline"), ("compiler", "process"))


def programs(doom: Optional[Path]) -> Iterable[Tuple[str, object, bool]]:
    """(name, Program, whether to read the engines' costs back too)."""
    from vmcore.program import Program

    shared = ROOT.parent / "shared" / "programs"
    if doom is None:
        doom = shared / "real" / "doom.polkavm"
    if doom.exists():
        yield "doom", Program.load(doom), True
    for path in sorted(shared.glob("*.polkavm")):
        yield f"shared/{path.name}", Program.load(path), True
    for path in sorted((ROOT / "tests" / "vectors").rglob("*.json")):
        try:
            vector = json.loads(path.read_text())
        except ValueError:
            continue
        if not isinstance(vector, dict) or "program" not in vector:
            continue
        isa = vector.get("isa") or ("jam_v1" if "steps" in vector and "initial-regs" not in vector else "latest64")
        try:
            program = Program.from_raw_code(bytes(vector["program"]), isa=isa)
        except Exception:  # a vector whose program does not load has no block costs
            continue
        yield str(path.relative_to(ROOT / "tests" / "vectors")), program, False


def digest(costs: Dict[int, int]) -> str:
    return hashlib.sha256(json.dumps(sorted(costs.items())).encode()).hexdigest()


def fingerprints(doom: Optional[Path]) -> Dict[str, str]:
    from vmcore import vectors

    out: Dict[str, str] = {}
    for name, program, engines in programs(doom):
        for model in MODELS:
            out[f"{name} {model}"] = digest(program.block_gas_costs(model))
            out[f"{name} {model} stop_at_gap"] = digest(program.block_gas_costs(model, stop_at_gap=True))
            if engines:
                for backend, isolation in ENGINES:
                    with vectors.open_sandbox(program, backend=backend, isolation=isolation, gas=10**9,
                                              gas_model=model) as sb:
                        out[f"{name} {model} {backend}"] = digest(sb.block_gas_costs())
    return out


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--doom", metavar="PATH", type=Path, help="doom.polkavm (default ../shared/programs/real/)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--save", metavar="FILE", type=Path, help="write the fingerprints")
    group.add_argument("--compare", metavar="FILE", type=Path, help="compare with saved fingerprints")
    args = parser.parse_args(argv)
    got = fingerprints(args.doom)
    total = hashlib.sha256(json.dumps(sorted(got.items())).encode()).hexdigest()
    print(f"{len(got)} fingerprints ({sum(1 for k in got if k.startswith('doom '))} of DOOM), combined {total}")
    if args.save:
        args.save.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
    if args.compare:
        want = json.loads(args.compare.read_text())
        diffs = sorted(k for k in set(want) | set(got) if want.get(k) != got.get(k))
        for key in diffs[:50]:
            print(f"differs: {key}")
        print(f"{len(diffs)} of {len(set(want) | set(got))} differ")
        return 1 if diffs else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
