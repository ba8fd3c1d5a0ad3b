#!/usr/bin/env python3
"""(Re)generate the seed corpus for fuzz/atheris_loader.py in fuzz/corpus/.

Seeds: the programs of tests/vectors/official (raw JAM code blobs), the
bundled vmcore/data/*.polkavm, JAM standard programs wrapped around the
vector programs jam_v1 accepts, and containers of every kind and ISA from
vmcore.fuzz's generator.  Files are named by content hash, so running it
again adds nothing new.  The corpus is not committed (see .gitignore).

    python fuzz/make_corpus.py [--out fuzz/corpus] [--generated 200]
"""
import argparse
import hashlib
import json
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vmcore import fuzz  # noqa: E402
from vmcore.errors import ProgramError  # noqa: E402
from vmcore.program import Program  # noqa: E402


def jam_standard(rng: random.Random, code_blob: bytes) -> bytes:
    ro, rw = rng.randbytes(rng.randrange(0, 32)), rng.randbytes(rng.randrange(0, 32))
    return (len(ro).to_bytes(3, "little") + len(rw).to_bytes(3, "little") + rng.randrange(0, 4).to_bytes(2, "little")
            + rng.choice([0, 0x1000, 0x10000]).to_bytes(3, "little") + ro + rw
            + len(code_blob).to_bytes(4, "little") + code_blob)


def seeds(generated: int):
    rng = random.Random(1)
    for path in sorted((ROOT / "tests" / "vectors" / "official").glob("*.json")):
        blob = bytes(json.loads(path.read_text())["program"])
        yield blob
        try:
            Program.from_raw_code(blob, isa="jam_v1")
        except ProgramError:
            continue
        yield jam_standard(rng, blob)
    for path in sorted((ROOT / "src" / "vmcore" / "data").glob("*.polkavm")):
        yield path.read_bytes()
    for _ in range(generated):
        yield fuzz.generate_container(rng)[1]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(ROOT / "fuzz" / "corpus"))
    p.add_argument("--generated", type=int, default=200, help="generated containers to add (default 200)")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    written = total = 0
    for blob in seeds(args.generated):
        total += 1
        path = out / hashlib.sha1(blob).hexdigest()
        if not path.exists():
            path.write_bytes(blob)
            written += 1
    print(f"{total} seeds, {written} new files in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
