"""tests/native/vectors_runner.c (the C interpreter with no Python, what
`make test-aarch64` cross-builds and runs under qemu-user) passes the
official vectors natively, so the aarch64 run tests the runner's port,
not the runner."""
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None, reason="no C compiler")
@pytest.mark.slow
def test_vectors_runner_passes_the_official_vectors():
    proc = subprocess.run([sys.executable, "tests/native/vectors.py", "tests/vectors/official"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert re.fullmatch(r"\d+ passed, 0 failed", proc.stdout.strip().splitlines()[-1])
