"""Native instructions per DOOM frame on the inline interpreter, counted by
callgrind (steady on a loaded machine, unlike wall time; no hardware
counters needed):

    python perf/interp_instructions.py [--frames A B]

Runs DOOM (perf/_doom.py finds it) under `valgrind --tool=callgrind` twice,
for A and B ext_tick calls, collecting only inside vm_run, and prints
(Ir(B) - Ir(A)) / (B - A): the instructions of one frame without
ext_initialize.  About a minute of callgrind for the defaults."""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent

CHILD = """
import sys
sys.path.insert(0, {here!r})
from _doom import doom_paths, run_doom
program, wad, why = doom_paths()
if program is None:
    sys.exit("skipped: " + why)
run = run_doom(program, wad, {frames}, backend="interpreter", isolation="inline", every={frames})
print("hash", run.hashes[{frames}])
"""


def count(frames: int, workdir: str) -> int:
    out = os.path.join(workdir, f"cg.{frames}")
    script = os.path.join(workdir, f"doom{frames}.py")
    Path(script).write_text(CHILD.format(here=str(HERE), frames=frames))
    done = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", "--toggle-collect=vm_run",
                           sys.executable, script], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(done.stdout + done.stderr[-2000:])
    match = re.search(r"^summary: (\d+)", Path(out).read_text(), re.M)
    return int(match.group(1))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, nargs=2, default=(10, 40), metavar=("A", "B"))
    args = ap.parse_args()
    a, b = args.frames
    if not shutil.which("valgrind"):
        print("skipped: no valgrind")
        return 0
    with tempfile.TemporaryDirectory() as workdir:
        ir_a, ir_b = count(a, workdir), count(b, workdir)
    print(f"vm_run instructions: {a} frames {ir_a:,}, {b} frames {ir_b:,}; "
          f"per frame {(ir_b - ir_a) / (b - a) / 1e6:.1f} M")
    return 0


if __name__ == "__main__":
    sys.exit(main())
