#!/usr/bin/env python3
"""Writes tests/vectors/reference/: one v0.4 vector (with "isa") per class
of divergence from PolkaVM 0.35 found and fixed, its expectations filled in
by PolkaVM's interpreter (refharness oracle; the 64 KiB panic zone
normalised as vmcore.fuzz_reference documents).

    python tests/gen_reference_vectors.py [--reference PATH]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

from vmcore import asm, fuzz_reference  # noqa: E402
from vmcore.fuzz_cases import code_blob  # noqa: E402
from vmcore.program import Program  # noqa: E402

OUT_DIR = HERE / "vectors" / "reference"
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1


def case(name, isa, body, divergence, *, regs=None, gas=10_000, pages=(), memory=()):
    program = Program.from_bytes(asm.assemble(f"%isa = {isa}\npub @main:\n{body}"))
    return {
        "name": name, "isa": isa, "divergence": divergence,
        "initial-regs": list(regs or [0] * 13), "initial-pc": 0,
        "initial-page-map": [{"address": a, "length": n, "is-writable": w} for a, n, w in pages],
        "initial-memory": [{"address": a, "contents": list(d)} for a, d in memory],
        "initial-gas": gas,
        "program": list(code_blob(program.code, program.bitmask, program.jump_table)),
    }


def cases():
    regs32 = [0xFFFFFFFF, 0x80000000, 0x7FFFFFFF, 0xFFFF0000, 5, 0, 0, 0, 0, 0, 0, 0, 0]
    out = []
    for isa in ("latest32",):
        out.append(case(f"{isa}-regs-reported-as-32-bit", isa, "    a0 = a0 + ra\n    a1 = t0 - sp\n    trap\n",
                        "32-bit programs' registers are reported as their low 32 bits (were sign-extended)",
                        regs=regs32[:7] + [0xFFFFFFFE, 3] + regs32[9:]))
        out.append(case(f"{isa}-regs-in-sign-extended", isa,
                        "    a0 = ra <s t2\n    a1 = sp <u t2\n    jump @neg if ra <s 0\n    trap\n@neg:\n    a2 = 1\n"
                        "    trap\n",
                        "a 32-bit value from the host is sign-extended inside (0xffffffff < 0 signed)",
                        regs=regs32))
    for isa in ("latest32", "latest64", "revive_v1"):  # jam_v1 refuses code that ends so
        out.append(case(f"{isa}-fallthrough-at-end", isa, "    a0 = 1\n    fallthrough\n",
                        "a fallthrough as the last instruction panics at the fallthrough, nothing more charged "
                        "(was: pc = code length, one more gas)"))
    out.append(case("latest64-fallthrough-at-end-last-gas", "latest64", "    a0 = 1\n    fallthrough\n",
                    "the same with exactly the block's gas: a panic, not out of gas past the end", gas=2))
    for gas in (INT64_MIN, INT64_MIN + 1, -1, INT64_MAX):
        out.append(case(f"latest64-gas-{'min' if gas == INT64_MIN else 'min-plus-1' if gas == INT64_MIN + 1 else gas}",
                        "latest64", "    a0 = 1\n    a1 = 2\n    trap\n",
                        "gas at the ends of int64: negative gas is out of gas at once (the interpreter's gas - cost "
                        "overflowed at INT64_MIN and ran with ~2^63)", gas=gas))
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reference", default=None)
    args = p.parse_args()
    binary = fuzz_reference.find_reference(args.reference)
    if binary is None:
        print("no refharness binary", file=sys.stderr)
        return 2
    inputs = cases()
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    for vector, (filled, error) in zip(inputs, fuzz_reference.run_oracle(binary, inputs)):
        if filled is None:
            print(f"{vector['name']}: {error}", file=sys.stderr)
            return 1
        filled, _ = fuzz_reference.normalise(filled)
        with open(OUT_DIR / f"{vector['name']}.json", "w") as f:
            json.dump(filled, f, indent=1)
            f.write("\n")
    print(f"{len(inputs)} vectors in {OUT_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
