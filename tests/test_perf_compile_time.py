"""perf/_compile_time.py (DOOM build time, naive vs full gas model): the
plumbing only, on a small program standing in for DOOM, and the report
when the program is missing.  The figures are not asserted (perf/ measures)."""
from __future__ import annotations

import json
import subprocess
import sys

from conftest import ROOT

sys.path.insert(0, str(ROOT / "perf"))
import _compile_time  # noqa: E402

SMALL = ROOT / "src" / "vmcore" / "data" / "sieve.polkavm"


def test_measures_both_builds_under_both_models():
    data = _compile_time.measure(str(SMALL), repeat=1)
    assert [r["target"] for r in data["rows"]] == list(_compile_time.TARGETS)
    for row in data["rows"]:
        assert row["naive_ms"] > 0 and row["full_ms"] > 0 and row["ratio_ms"] > 0
    text = "\n".join(_compile_time.markdown(data))
    assert "| interpreter |" in text and "| compiler |" in text


def test_missing_program_is_reported(tmp_path):
    data = _compile_time.measure(str(tmp_path / "nothing.polkavm"))
    assert "error" in data and "--doom" in data["error"]
    assert "skipped" in _compile_time.markdown(data)[0]


def test_run_py_hook(tmp_path):
    out = tmp_path / "ct.json"
    p = subprocess.run([sys.executable, str(ROOT / "perf" / "run.py"), "--only", "compile-time", "--doom", str(SMALL),
                        "--json", str(out), "--repeat", "1"], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert len(json.loads(out.read_text())["rows"]) == 2
