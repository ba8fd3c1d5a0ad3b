"""perf/run.py's side-by-side table (perf/_reference.py) end to end with
tiny sizes: every row measured, PolkaVM's figure and the ratio next to
vmcore's when the refharness binary is there ($VMCORE_REFHARNESS, or
$VMCORE_SHARED/tools/refharness), the DOOM rows when doom.polkavm and the
WAD are ($VMCORE_DOOM or $VMCORE_SHARED/programs/real/, $VMCORE_DOOM_WAD
or Debian's freedoom1.wad), and a clear reason in the report when not.
Tests the plumbing only: the figures are not asserted (perf/ measures)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import ROOT

sys.path.insert(0, str(ROOT / "perf"))
from _doom import doom_paths  # noqa: E402
from _reference import ROWS  # noqa: E402

DOOM_ROWS = {"doom-compiler", "doom-compiler-gas", "doom-interpreter"}


def _refharness():
    path = os.environ.get("VMCORE_REFHARNESS")
    if not path and os.environ.get("VMCORE_SHARED"):
        path = str(Path(os.environ["VMCORE_SHARED"]) / "tools" / "refharness")
    return path if path and os.access(path, os.X_OK) else None


def run_side_by_side(tmp_path, *extra):
    out = tmp_path / "side.json"
    md = tmp_path / "side.md"
    program, wad, _ = doom_paths()
    # Never a path outside the repository unless the environment names it.
    doom = ["--doom", str(program), "--wad", str(wad)] if program else ["--doom", str(tmp_path / "no-doom.polkavm")]
    proc = subprocess.run([sys.executable, str(ROOT / "perf" / "run.py"), "--only", "side-by-side", "--tiny",
                           "--json", str(out), "--md", str(md), *doom, *extra],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(out.read_text())["side_by_side"], md.read_text(), bool(program)


def test_every_row_is_measured_next_to_polkavm_when_the_harness_is_there(tmp_path):
    harness = _refharness()
    side, md, with_doom = run_side_by_side(tmp_path, *(["--reference", harness] if harness else []))
    rows = {r["row"]: r for r in side["rows"]}
    expected = set(ROWS) if with_doom else set(ROWS) - DOOM_ROWS
    assert set(rows) == expected
    for r in rows.values():
        assert "error" not in r, r
        assert r["vmcore_ns"] > 0
        if harness:
            assert r["polkavm_ns"] > 0 and r["ratio"] == r["vmcore_ns"] / r["polkavm_ns"]
        else:
            assert "polkavm_ns" not in r
    assert ("polkavm" in side["skipped"]) == (harness is None)
    if not with_doom:
        assert "no DOOM program at" in side["skipped"]["doom"] and "no DOOM program at" in md
    assert "| workload | vmcore | PolkaVM 0.35 | ratio |" in md
    for r in rows.values():
        assert r["what"] in md


def test_a_bad_reference_path_is_refused(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "perf" / "run.py"), "--only", "side-by-side", "--tiny",
                           "--reference", str(tmp_path / "missing")], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "not an executable refharness binary" in proc.stderr
