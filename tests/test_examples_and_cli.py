"""The README's promises: its commands, the examples, the CLI's behaviour on
good and bad input."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "src" / "vmcore" / "data"


def run(*args, check=True):
    proc = subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} exited {proc.returncode}: {proc.stderr}")
    return proc


def test_ci_runs_the_readme_quick_start_verbatim():
    """.ci/run executes the README's quick-start block line by line (read
    by .ci/project.py): the README cannot drift from what CI runs."""
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"## Quick start\s+```sh\n(.*?)```", readme, re.S).group(1).strip().splitlines()
    assert block == ['pip install . && python -m vmcore demo', 'pip install -e ".[test]" && python -m pytest -q']
    extracted = run(".ci/project.py", "quickstart").stdout.strip().splitlines()
    assert extracted == block
    ci = (ROOT / ".ci" / "run").read_text()
    assert "python .ci/project.py quickstart" in ci
    assert re.search(r'^step "README quick start, verbatim" readme_quickstart$', ci, re.M)


@pytest.mark.parametrize("example", sorted(p.name for p in (ROOT / "examples").glob("*.py")))
def test_examples_run(example):
    run(f"examples/{example}")


def test_demo():
    out = run("-m", "vmcore", "demo", "--iterations", "1000").stdout
    assert "matches the Python computation" in out
    assert "exports:       main @ 0" in out and "#0 scale" in out
    assert "ecalli 0" in out and "gas used:" in out


def test_info_run_vectors():
    out = run("-m", "vmcore", "info", str(DATA / "sieve.polkavm")).stdout
    assert "jam_v1" in out and "main @ 0" in out and "rw data" in out
    out = run("-m", "vmcore", "run", str(DATA / "sum.polkavm"), "main", "1000", "--gas", "100000").stdout
    assert "result:  332833500" in out and "gas:     5006 used" in out
    out = run("-m", "vmcore", "vectors", "tests/vectors/official/inst_add_32.json").stdout
    assert out.strip().endswith("1 passed, 0 failed")


def test_asm_disasm_roundtrip(tmp_path):
    out = tmp_path / "sieve.polkavm"
    run("-m", "vmcore", "asm", str(DATA / "sieve.asm"), "-o", str(out))
    assert out.read_bytes() == (DATA / "sieve.polkavm").read_bytes()
    text = run("-m", "vmcore", "disasm", str(out)).stdout
    assert "pub @main:" in text


@pytest.mark.parametrize("args", [
    ("info", "/nonexistent.polkavm"),
    ("info", "README.md"),
    ("run", "src/vmcore/data/hostcall.polkavm", "main", "3"),
    ("run", "src/vmcore/data/sum.polkavm", "nope"),
    ("run", "src/vmcore/data/sum.polkavm", "main", "notanumber"),
    ("run", "src/vmcore/data/sum.polkavm", "main", "10", "--isolation", "vm"),
    ("vectors", "/nonexistent-dir"),
    ("asm", "/nonexistent.asm"),
    ("disasm", "README.md"),
    ("bogus",),
])
def test_bad_input_is_one_line_and_exit_2(args):
    proc = run("-m", "vmcore", *args, check=False)
    assert proc.returncode == 2, proc
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_run_names_the_missing_import():
    proc = run("-m", "vmcore", "run", "src/vmcore/data/hostcall.polkavm", "main", "3", check=False)
    assert "'inc'" in proc.stderr


def test_failing_vector_exits_nonzero(tmp_path):
    import json
    vector = json.loads((ROOT / "tests/vectors/official/inst_add_32.json").read_text())
    vector["expected-gas"] += 1
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(vector))
    proc = run("-m", "vmcore", "vectors", str(path), check=False)
    assert proc.returncode == 1
    assert "gas: expected" in proc.stdout and proc.stdout.strip().endswith("0 passed, 1 failed")


def test_cli_vectors_on_the_compiler():
    official = str(ROOT / "tests" / "vectors" / "official")
    r = subprocess.run([sys.executable, "-m", "vmcore", "vectors", official, "--backend", "compiler"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.strip().endswith("307 passed, 0 failed"), r.stdout[-500:] + r.stderr
    r = subprocess.run([sys.executable, "-m", "vmcore", "vectors", official, "--backend", "compiler",
                        "--isolation", "inline"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "sandbox process" in r.stderr
