"""Issue #17, the packaging and CI half: what a newcomer's first hour
depends on and no other test would notice coming back (an unbuilt checkout's
error, the test extras, end-user builds that only warn, the missing-compiler
sentence, the sdist's contents, the wheel configuration, the CI steps)."""
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CI = (ROOT / ".ci" / "run").read_text()


def project(*args) -> list:
    out = subprocess.run([sys.executable, ".ci/project.py", *args], cwd=ROOT, capture_output=True, text=True,
                         check=True, timeout=60).stdout
    return out.split()


def test_unbuilt_checkout_explains_itself_in_one_line(tmp_path):
    # The package's Python modules without the compiled ones: what
    # PYTHONPATH=src sees in a fresh clone.  (No ./vmcore folder at the root
    # either: the layout is src/, nothing shadows the installed package.)
    assert not (ROOT / "vmcore").exists()
    shutil.copytree(ROOT / "src" / "vmcore", tmp_path / "vmcore",
                    ignore=shutil.ignore_patterns("*.so", "_zygote", "__pycache__", "_native", "engine"))
    proc = subprocess.run([sys.executable, "-c", "import vmcore"], cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(tmp_path)}, timeout=60)
    assert proc.returncode == 1
    assert "partially initialized" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        "ImportError: vmcore's compiled extensions are not built: run `pip install .` (or, for development, "
        "`pip install -e \".[test]\"`) from the repository root")


def test_test_extras_hold_what_the_suite_imports():
    extras = {re.split(r"[<>=!~ ;\[]", r, 1)[0].lower() for r in project("extra", "test")}
    assert {"pytest", "hypothesis", "capstone", "mypy"} <= extras


def test_warnings_are_errors_only_in_development_builds():
    setup = (ROOT / "setup.py").read_text()
    assert setup.count('"-Werror"') == 1
    assert 'WERROR = ["-Werror"] if os.environ.get("VMCORE_WERROR") == "1" else []' in setup
    assert "export VMCORE_WERROR=1" in CI


def _needs_build_requirements():
    """These tests run setup.py itself, which needs pyproject.toml's build
    requirements (pip installs them only in its isolated build); `make
    build-deps` provides them (CI's ASan step does)."""
    pytest.importorskip("Cython", reason="setup.py needs the build requirements: make build-deps")


def test_no_c_compiler_is_one_sentence(tmp_path):
    _needs_build_requirements()
    proc = subprocess.run([sys.executable, "setup.py", "-q", "build_clib", "--build-temp", str(tmp_path),
                           "--build-clib", str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "CC": "/nonexistent/cc"}, timeout=300)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        "error: building vmcore from source needs a C compiler, and '/nonexistent/cc' was not found "
        "(install one, e.g. `apt-get install gcc`, or set CC; prebuilt wheels need none).")


@pytest.mark.slow
def test_sdist_ships_what_the_readme_refers_to(tmp_path):
    _needs_build_requirements()
    subprocess.run([sys.executable, "setup.py", "-q", "sdist", "-d", str(tmp_path)], cwd=ROOT, check=True,
                   capture_output=True, timeout=300)
    (sdist,) = tmp_path.glob("vmcore-*.tar.gz")
    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    for folder in ("examples/", "fuzz/", "perf/", "docs/", "tests/", ".ci/", "include/vmcore/", "src/vmcore/_native/"):
        assert any(n.startswith(folder) for n in names), folder
    assert {"README.md", "Makefile", "mkdocs.yml", "setup.py", "pyproject.toml", ".ci/aarch64_python.sh"} <= names
    assert not any(n.startswith("build/") or n.endswith(".so") for n in names)


def test_wheels_are_configured_for_x86_64_and_aarch64():
    pyproject = (ROOT / "pyproject.toml").read_text()
    section = pyproject.split("[tool.cibuildwheel]", 1)[1]
    assert re.search(r'^build = "cp39-\* cp310-\* cp311-\* cp312-\* cp313-\*"$', section, re.M)
    assert re.search(r'^archs = \["x86_64", "aarch64"\]$', section, re.M)
    assert re.search(r"^test-command = .*vmcore demo", section, re.M)


@pytest.mark.parametrize("step", [
    'step "wheel: no compiler, outside the repository" wheel_check',
    'step "docs (mkdocs build --strict)" make docs-deps docs',
    'step "aarch64 (cross-built, qemu-user)" make test-aarch64-deps test-aarch64',
    'step "aarch64 CPython: interpreter suites (qemu-user)" make test-aarch64-python',
])
def test_ci_runs_the_step(step):
    assert re.search(f"^{re.escape(step)}$", CI, re.M), step


def test_ci_wheel_check_installs_without_a_compiler_and_runs_the_demo():
    body = CI.split("wheel_check() {", 1)[1].split("\n}\n", 1)[0]
    assert "CC=false" in body and "--no-index" in body and "vmcore demo" in body
    assert "check-wheel" in body


def test_aarch64_suites_exist():
    # .ci/aarch64_python.sh names the suites it runs: a renamed file must
    # not silently shrink the emulated run.
    script = (ROOT / ".ci" / "aarch64_python.sh").read_text()
    listed = re.search(r"DEFAULT_TESTS=\((.*?)\)", script, re.S).group(1).split()
    assert "tests/test_api.py" in listed and "tests/test_interpreter.py" in listed
    assert [t for t in listed if not (ROOT / t).is_file()] == []


def test_tests_name_no_path_outside_the_repository():
    # The shared programs and PolkaVM's refharness come from VMCORE_SHARED /
    # VMCORE_REFHARNESS (conftest.py), never from a path guessed here.
    pattern = re.compile(r"""["'](?:/work|/home|/root|/tmp|/scratch)/|\.\./shared""")
    found = [f"{p.name}:{n}" for p in sorted((ROOT / "tests").glob("*.py")) if p.name != "test_packaging.py"
             for n, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert found == []
