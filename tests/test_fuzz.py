"""The built-in fuzzing campaign (vmcore/fuzz.py, ``python -m vmcore fuzz``):
a short deterministic campaign passes; planted failures -- a loader raising
the wrong exception, a segfault, a hang, a configuration that disagrees --
are caught with a reproducer; cases replay; bad arguments exit 2."""
import ctypes
import os
import faulthandler
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vmcore import _engine, fuzz, isa as ISA
from vmcore.program import Program
from vmcore.vectors import main_vectors

from conftest import REFHARNESS, needs_refharness

ROOT = Path(__file__).resolve().parent.parent


def cli(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "vmcore", "fuzz", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=timeout)


# ------------------------------------------------------------- the campaign
@pytest.mark.slow
def test_short_campaign_passes(tmp_path):
    proc = cli("--seconds", "4", "--seed", "1", "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    last = proc.stdout.strip().splitlines()[-1]
    passed, failed = (int(x) for x in re.fullmatch(r"(\d+) passed, (\d+) failed", last).groups())
    assert failed == 0 and passed > 200, proc.stdout
    assert "loader:" in proc.stdout and "diff:" in proc.stdout
    assert "interpreter/inline+step" in proc.stdout
    assert not (tmp_path / "out").exists()  # nothing failed, nothing written


@pytest.mark.slow
def test_fixed_case_count_is_deterministic(tmp_path):
    a = fuzz.campaign(seconds=60, cases=60, seed=5, out_dir=str(tmp_path))
    b = fuzz.campaign(seconds=60, cases=60, seed=5, out_dir=str(tmp_path))
    assert (a.passed, a.failed) == (b.passed, b.failed) == (120, 0)
    assert a.per_target["loader"]["stats"] == b.per_target["loader"]["stats"]
    assert a.per_target["diff"]["stats"] == b.per_target["diff"]["stats"]


def test_cases_depend_only_on_seed_and_index():
    loader = fuzz.LoaderTarget(3)
    assert loader.generate(17) == fuzz.LoaderTarget(3).generate(17)
    assert loader.generate(17) != fuzz.LoaderTarget(4).generate(17)
    assert fuzz.generate_vector(3, 9) == fuzz.generate_vector(3, 9)
    assert fuzz.generate_vector(3, 9) != fuzz.generate_vector(3, 10)


def test_generated_programs_cover_every_opcode_of_every_isa():
    seen = {name: set() for name in ISA.ISA_NAMES}
    for i in range(600):
        vector = fuzz.generate_vector(11, i)
        program = Program.from_raw_code(bytes(vector["program"]), isa=vector["isa"])
        for entry in _engine.instructions(program.isa_index, program.code, program.bitmask):
            seen[vector["isa"]].add(entry[2])
    for name in ISA.ISA_NAMES:
        want = {o.id for o in ISA.OPCODES if o.byte_for(name) is not None}
        assert want <= seen[name], (name, sorted(ISA.OPCODES[i].name for i in want - seen[name]))


def test_generated_cases_reach_every_outcome():
    statuses = set()
    for i in range(300):
        statuses.add(fuzz.run_inline(fuzz.generate_vector(2, i)).status)
    assert statuses == {"halt", "panic", "page-fault", "out-of-gas", "host"}


def test_generated_blobs_load_and_fail_to_load():
    target = fuzz.LoaderTarget(1)
    for i in range(300):
        assert target.check(target.generate(i)) == []
    assert target.loaded > 40 and target.rejected > 1000


# -------------------------------------------------------- planted failures
def _plant_loader(monkeypatch, victim: bytes, action):
    original = Program.from_bytes.__func__

    def from_bytes(cls, data, **kw):
        if bytes(data) == victim:
            action()
        return original(cls, data, **kw)

    monkeypatch.setattr(Program, "from_bytes", classmethod(from_bytes))


def _raise_key_error():
    raise KeyError("planted")


def test_planted_loader_exception_is_reported_with_the_blob(monkeypatch, tmp_path):
    victim = fuzz.LoaderTarget(9).generate(7)
    _plant_loader(monkeypatch, victim, _raise_key_error)
    summary = fuzz.campaign(seconds=60, cases=20, seed=9, targets=["loader"], out_dir=str(tmp_path))
    assert (summary.passed, summary.failed) == (19, 1)
    (failure,) = summary.failures
    assert failure.case == 7 and "from_bytes raised KeyError" in failure.summary
    assert Path(failure.path).read_bytes() == victim
    assert "KeyError" in (tmp_path / "loader-s9-7.txt").read_text()

    ok, report = fuzz.replay("loader", 9, 7, str(tmp_path / "replayed"), {})
    assert not ok and "KeyError" in report
    assert (tmp_path / "replayed" / "loader-s9-7.bin").read_bytes() == victim
    assert fuzz.replay("loader", 9, 6, str(tmp_path / "replayed"), {})[0]


def test_planted_segfault_is_survived_and_reported(monkeypatch, tmp_path):
    victim = fuzz.LoaderTarget(9).generate(4)
    _plant_loader(monkeypatch, victim, lambda: ctypes.string_at(0))
    enabled = faulthandler.is_enabled()
    faulthandler.disable()  # the worker inherits it; the planted crash needs no stack dump
    try:
        summary = fuzz.campaign(seconds=60, cases=12, seed=9, targets=["loader"], out_dir=str(tmp_path))
    finally:
        if enabled:
            faulthandler.enable()
    assert (summary.passed, summary.failed) == (11, 1)
    (failure,) = summary.failures
    # under make test-asan, ASan's own SIGSEGV handler aborts the worker
    signal_name = "SIGABRT" if os.environ.get("VMCORE_UNDER_ASAN") else "SIGSEGV"
    assert failure.case == 4 and failure.kind == "crash" and signal_name in failure.summary
    assert Path(failure.path).read_bytes() == victim


def test_planted_hang_is_reported(monkeypatch, tmp_path):
    victim = fuzz.LoaderTarget(9).generate(2)
    _plant_loader(monkeypatch, victim, lambda: time.sleep(3600))
    summary = fuzz.campaign(seconds=60, cases=5, seed=9, targets=["loader"], out_dir=str(tmp_path),
                            hang_seconds=1.0)
    assert (summary.passed, summary.failed) == (4, 1)
    assert summary.failures[0].case == 2 and summary.failures[0].kind == "hang"


def test_planted_disagreeing_configuration_is_reported_with_a_vector(tmp_path):
    def fake(vector):
        outcome = fuzz.run_inline(vector)
        if vector["name"].endswith("-3"):
            outcome.regs = list(outcome.regs)
            outcome.regs[5] ^= 1
        return outcome

    options = {"diff": {"extra_configs": [fuzz.Config("fake", fake)]}}
    summary = fuzz.campaign(seconds=60, cases=6, seed=4, targets=["diff"], out_dir=str(tmp_path), options=options)
    assert (summary.passed, summary.failed) == (5, 1)
    (failure,) = summary.failures
    assert failure.case == 3 and failure.kind == "mismatch"
    assert failure.summary.startswith("fake vs interpreter/inline: r5: ")
    vector = json.loads(Path(failure.path).read_text())
    assert vector["fuzz"]["case"] == 3 and "replay" in vector["fuzz"]
    # the reproducer is a vector of the JAM schema: the reference passes it
    assert main_vectors([failure.path], backend="interpreter", isolation="inline", verbose=False) == 0


def test_a_target_that_cannot_start_is_a_failure(tmp_path):
    broken = tmp_path / "oracle.py"
    broken.write_text("raise RuntimeError('broken oracle')\n")
    summary = fuzz.campaign(seconds=60, cases=5, seed=1, targets=["diff"], out_dir=str(tmp_path),
                            options={"diff": {"oracle": str(broken)}})
    assert (summary.passed, summary.failed) == (0, 1)
    assert summary.failures[0].kind == "setup" and "broken oracle" in summary.failures[0].summary


def test_reproducer_vector_runs_from_the_cli(tmp_path):
    vector = fuzz.with_expected(fuzz.generate_vector(1, 0), fuzz.run_inline(fuzz.generate_vector(1, 0)))
    path = tmp_path / "v.json"
    path.write_text(json.dumps(vector))
    proc = subprocess.run([sys.executable, "-m", "vmcore", "vectors", str(path)], capture_output=True, text=True,
                          cwd=ROOT, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("1 passed, 0 failed"), proc.stdout


def test_oracle_agrees():
    oracle_path = ROOT / "tests" / "oracle.py"
    target = fuzz.DiffTarget(6, oracle=str(oracle_path))
    assert "oracle" in target.setup()[-1]
    for i in range(40):
        assert target.run_case(i) is None


@pytest.fixture
def no_process_no_recompiler(monkeypatch):
    """This machine seen as Linux aarch64 is: the availability probes say
    no to the sandbox process and the recompiler."""
    from vmcore import backends, pool
    reasons = {"process": "no sandbox process here (simulated)", "compiler": "this CPU lacks BMI2 (simulated)"}
    monkeypatch.setattr(backends, "_SELECTED", {})
    monkeypatch.setattr(pool, "process_unavailable", lambda: reasons["process"])
    monkeypatch.setattr(backends, "cpu_supports_native", lambda: reasons["compiler"])
    return reasons


def test_refused_configurations_are_skipped_with_the_reason(no_process_no_recompiler, tmp_path):
    reasons = no_process_no_recompiler
    target = fuzz.DiffTarget(3)
    notes = target.setup()
    assert f"skipping interpreter/process: {reasons['process']}" in notes
    assert f"skipping compiler/process: {reasons['compiler']}" in notes
    assert {c.name.split("+")[0] for c in target.configs} == {"interpreter/inline"}
    for i in range(5):
        assert target.run_case(i) is None
    from vmcore import fuzz_hostile
    assert list(fuzz_hostile.modes()) == ["inline"]
    assert fuzz_hostile.skipped_modes() == [f"skipping process: {reasons['process']}",
                                            f"skipping compiler: {reasons['compiler']}"]
    assert fuzz_hostile.target_unavailable("hostile-api") is None
    assert fuzz_hostile.target_unavailable("hostile-sandbox") == reasons["process"]


def test_hostile_sandbox_target_is_skipped_where_refused(no_process_no_recompiler, capsys):
    from vmcore.__main__ import main
    assert main(["fuzz", "--target", "hostile-sandbox", "--seconds", "1"]) == 0
    out = capsys.readouterr().out
    assert out == f"hostile-sandbox: skipped: {no_process_no_recompiler['process']}\n"


@needs_refharness
def test_reference_target_skips_refused_configurations(no_process_no_recompiler):
    from vmcore.fuzz_reference import ReferenceTarget
    target = ReferenceTarget(1, binary=REFHARNESS)
    notes = target.setup()
    assert f"skipping interpreter/process: {no_process_no_recompiler['process']}" in notes
    assert target.configs == [("interpreter", "inline")]
    assert target.run_case(0) is None


# ---------------------------------------------------------------- the CLI
def test_replay_cli():
    proc = cli("--replay", "3", "--seed", "1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "loader case 3 (seed 1)" in proc.stdout and "diff case 3 (seed 1)" in proc.stdout
    assert proc.stdout.count("PASS") == 2


@pytest.mark.parametrize("args", [
    ("--seconds", "0"),
    ("--seconds", "abc"),
    ("--seed", "x"),
    ("--target", "bogus"),
    ("--replay", "-1"),
    ("--cases", "-5"),
    ("--out", "README.md"),
    ("--oracle", "/nonexistent/oracle.py"),
    ("--bogus",),
])
def test_bad_arguments_exit_2(args):
    proc = cli(*args)
    assert proc.returncode == 2, proc
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
