"""The README's promises: its commands, the examples, the CLI's behaviour on
good and bad input."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

import vmcore

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


@pytest.mark.slow
def test_info_run_vectors():
    out = run("-m", "vmcore", "info", str(DATA / "sieve.polkavm")).stdout
    assert "jam_v1" in out and "main @ 0" in out and "rw data" in out
    out = run("-m", "vmcore", "run", str(DATA / "sum.polkavm"), "main", "1000", "--gas", "100000",
              "--gas-model", "naive").stdout
    assert "result:  332833500" in out and "gas:     5006 used" in out
    # the default for jam_v1 is the full model: the loop's block costs what block_gas_costs says
    costs = vmcore.Program.load(DATA / "sum.polkavm").block_gas_costs("full")
    used = []
    for n in (1000, 1001):
        out = run("-m", "vmcore", "run", str(DATA / "sum.polkavm"), "main", str(n), "--gas", "1000000").stdout
        assert "result:  " in out and "(full model)" in out
        used.append(int(out.split("gas:")[1].split()[0]))
    assert used[1] - used[0] in costs.values()
    out = run("-m", "vmcore", "info", str(DATA / "sum.polkavm"), "--gas").stdout
    assert "block gas costs (full model" in out
    assert all(f"{pc:>8}: {cost}" in out for pc, cost in costs.items())
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
    ("run", "src/vmcore/data/sum.polkavm", "nope"),
    ("run", "src/vmcore/data/sum.polkavm", "main", "--timeout", "-1"),
    ("run", "src/vmcore/data/hostcall.polkavm", "main", "--hostcall", "inc"),
    ("run", "src/vmcore/data/hostcall.polkavm", "main", "--hostcall", "nope=1"),
    ("run", "src/vmcore/data/hostcall.polkavm", "main", "--hostcall", "inc=x"),
    ("vectors", "README.md"),
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
    assert proc.stderr.startswith("vmcore: error: "), proc.stderr
    assert "_parse" not in proc.stderr and "invalid" not in proc.stderr.split(":")[2], proc.stderr


@pytest.mark.parametrize("args, what", [
    (("run", "src/vmcore/data/hostcall.polkavm", "main", "3"), "HostcallError"),
    (("run", "src/vmcore/data/sum.polkavm", "main", "100000", "--gas", "100"), "OutOfGas"),
])
def test_runtime_errors_are_one_line_and_exit_1(args, what):
    proc = run("-m", "vmcore", *args, check=False)
    assert proc.returncode == 1, proc
    assert proc.stderr.startswith(f"vmcore: error: {what}: ") and proc.stderr.count("\n") == 1, proc.stderr


def test_version():
    import vmcore
    out = run("-m", "vmcore", "--version").stdout
    assert out.strip() == f"vmcore {vmcore.__version__}"
    script = Path(sys.executable).parent / "vmcore"  # the console script pip installs
    if script.exists():
        proc = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0 and proc.stdout.strip() == f"vmcore {vmcore.__version__}"
        proc = subprocess.run([str(script), "run", "README.md", "main"], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2 and proc.stderr.startswith("vmcore: error: ")


def test_run_with_hostcall_stub_json_and_timeout():
    import json
    out = run("-m", "vmcore", "run", str(DATA / "hostcall.polkavm"), "main", "3", "--hostcall", "inc=5",
              "--gas", "1000", "--json", "--timeout", "30").stdout
    lines = out.strip().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["status"] == "finished" and isinstance(record["result"], int)
    assert record["gas_used"] + record["gas_left"] == 1000 and record["error"] is None
    assert {"pc", "seconds", "backend", "isolation"} <= set(record)
    proc = run("-m", "vmcore", "run", str(DATA / "sum.polkavm"), "main", "100000", "--gas", "100", "--json",
               check=False)
    assert proc.returncode == 1
    record = json.loads(proc.stdout)
    assert record["status"] == "out-of-gas" and record["result"] is None and isinstance(record["pc"], int)
    out = run("-m", "vmcore", "run", str(DATA / "sum.polkavm"), "main", "10", "--timeout", "inf").stdout
    assert "result:  285" in out


def test_run_timeout_stops_a_spinning_guest(tmp_path):
    src = tmp_path / "spin.asm"
    src.write_text("%isa = latest64\npub @main:\n@loop:\n    jump @loop\n")
    blob = tmp_path / "spin.polkavm"
    run("-m", "vmcore", "asm", str(src), "-o", str(blob))
    proc = run("-m", "vmcore", "run", str(blob), "main", "--timeout", "0.2", "--json", check=False)
    assert proc.returncode == 1 and '"status": "timeout"' in proc.stdout
    assert proc.stderr.startswith("vmcore: error: Timeout: ")


def test_vectors_on_a_non_json_file_is_a_usage_error(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("not json {")
    proc = run("-m", "vmcore", "vectors", str(bad), check=False)
    assert proc.returncode == 2 and proc.stderr.startswith("vmcore: error: ") and "not a JSON" in proc.stderr
    assert "failed" not in proc.stdout


@pytest.mark.slow
def test_jam_standard_files_are_recognised_by_content(tmp_path):
    from conftest import code_blob, jam_standard
    blob = jam_standard(b"", b"", 0, 4096, code_blob(bytes([0]), [0]))  # one trap instruction
    for name in ("prog.bin", "prog.jam", "noextension"):
        path = tmp_path / name
        path.write_bytes(blob)
        out = run("-m", "vmcore", "info", str(path)).stdout
        assert "format:        jam-standard" in out, out
        out = run("-m", "vmcore", "info", str(path), "--format", "jam").stdout
        assert "jam-standard" in out
    proc = run("-m", "vmcore", "info", str(tmp_path / "prog.bin"), "--format", "polkavm", check=False)
    assert proc.returncode == 2 and proc.stderr.startswith("vmcore: error: ProgramError")
    proc = run("-m", "vmcore", "info", "README.md", check=False)
    assert proc.returncode == 2 and "--format" in proc.stderr


def test_disasm_notes_dropped_debug_sections_and_wraps_data(tmp_path):
    from conftest import polkavm, varint
    from vmcore import asm
    import vmcore
    source = "%isa = latest64\n%ro_data_size = 4096\n%ro_data = " + "ab" * 100 + "\npub @main:\n    ret\n"
    blob = asm.assemble(source)
    # append a debug-strings section (id 128) before the end-of-file byte
    assert blob[-1] == 0
    with_debug = blob[:-1] + bytes([128]) + varint(5) + b"hello" + b"\0"
    import struct
    with_debug = with_debug[:5] + struct.pack("<Q", len(with_debug)) + with_debug[13:]
    path = tmp_path / "dbg.polkavm"
    path.write_bytes(with_debug)
    vmcore.Program.from_bytes(with_debug)  # still a valid program
    proc = run("-m", "vmcore", "disasm", str(path))
    assert "left out 1 debug section(s) (id 128, 5 bytes)" in proc.stderr
    assert proc.stderr.startswith("vmcore: note: ")
    assert max(len(line) for line in proc.stdout.splitlines()) <= 100
    assert proc.stdout.count("%ro_data = ") == 4  # 100 bytes, 32 per line
    again = asm.assemble(proc.stdout)
    assert again == blob  # the wrapped lines concatenate back
    plain = tmp_path / "plain.polkavm"
    plain.write_bytes(blob)
    assert run("-m", "vmcore", "disasm", str(plain)).stderr == ""


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
