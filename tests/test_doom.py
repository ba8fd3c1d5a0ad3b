"""DOOM frames on every backend, bit-identical to PolkaVM's.

vmcore runs PolkaVM's DOOM port (perf/_doom.py) for a few hundred ticks
and compares the framebuffer hash every 100 ticks with what
`refharness doom` prints for the same ticks (one ext_tick draws one
frame; frame N is the framebuffer after the N-th tick).  The title screen
holds until the demo starts at about tick 400, so the default 400 ticks
end on a frame of the demo ($VMCORE_DOOM_FRAMES changes it; 100 under the
sanitizers).

Needs the program ($VMCORE_DOOM, or $VMCORE_SHARED/programs/real/), a WAD
($VMCORE_DOOM_WAD, default Debian's freedoom1.wad) and the refharness
binary ($VMCORE_REFHARNESS, else $VMCORE_SHARED/tools/refharness); skips
when one is missing.  Gas metering never changes the frames while the gas
lasts: PolkaVM's `--gas` (its default, naive, cost model) gives the
metered reference, which the naive and the full model must both match.
PolkaVM's recompiler computes the reference (its frames equal its
interpreter's, at 1/20th of the time).
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from vmcore.pool import cpu_supports_native

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "perf"))
from _doom import GAS_BUDGET, doom_paths, run_doom  # noqa: E402

# Under ASan/UBSan the inline interpreter runs ~10x slower: 100 ticks
# still compare one frame on every setup.
FRAMES = int(os.environ.get("VMCORE_DOOM_FRAMES", "100" if os.environ.get("VMCORE_UNDER_ASAN") else "400"))
PROGRAM, WAD, MISSING = doom_paths()


def _refharness():
    path = os.environ.get("VMCORE_REFHARNESS")
    if not path and os.environ.get("VMCORE_SHARED"):
        path = str(Path(os.environ["VMCORE_SHARED"]) / "tools" / "refharness")
    return path if path and os.access(path, os.X_OK) else None


pytestmark = pytest.mark.skipif(bool(MISSING), reason=MISSING)


@pytest.fixture(scope="module")
def reference():
    """{metered: {frame: sha256}} from PolkaVM."""
    harness = _refharness()
    if not harness:
        pytest.skip("no refharness binary (set VMCORE_REFHARNESS or VMCORE_SHARED)")
    hashes = {}
    for metered in (False, True):
        cmd = [harness, "doom", "--program", str(PROGRAM), "--wad", str(WAD), "--frames", str(FRAMES),
               "--backend", "compiler"] + (["--gas", str(GAS_BUDGET)] if metered else [])
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=600).stdout
        hashes[metered] = {int(n): h for n, h in re.findall(r"^frame=(\d+) sha256=([0-9a-f]{64})$", out, re.M)}
        assert len(hashes[metered]) == FRAMES // 100, out
    return hashes


SETUPS = [("interpreter", "inline"), ("interpreter", "process"), ("compiler", "process")]


@pytest.mark.parametrize("gas_model", [None, "naive", "full"], ids=["no-gas", "naive-gas", "full-gas"])
@pytest.mark.parametrize("backend,isolation", SETUPS, ids=[f"{b}-{i}" for b, i in SETUPS])
def test_doom_frames_match_polkavm(reference, backend, isolation, gas_model):
    why_not = cpu_supports_native() if backend == "compiler" else None
    if why_not:
        pytest.skip(why_not)
    run = run_doom(PROGRAM, WAD, FRAMES, backend=backend, isolation=isolation, gas_model=gas_model)
    assert (run.width, run.height) == (640, 400)
    assert run.hashes == reference[gas_model is not None]
