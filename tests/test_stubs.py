"""The type information vmcore ships: every compiled module has a .pyi
whose names and signatures match the runtime (mypy.stubtest), the package
is typed (py.typed) and visible to mypy from outside the source tree, and
the examples pass ``mypy --strict``."""
import importlib.machinery
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import vmcore

mypy = pytest.importorskip("mypy", reason="mypy is in the test extras (pip install -e '.[test]')")

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = Path(vmcore.__file__).resolve().parent


def compiled_modules():
    names = set()
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        for path in PACKAGE.glob("*" + suffix):
            names.add(path.name.split(".")[0])
    return sorted(names)


def mypy_run(*args, cwd):
    return subprocess.run([sys.executable, "-m", "mypy", "--no-incremental", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=600)


def test_every_compiled_module_has_a_stub():
    modules = compiled_modules()
    assert modules == ["_engine"], modules  # one extension: the C core linked once
    missing = [m for m in [*modules, "abi"] if not (PACKAGE / f"{m}.pyi").exists()]
    assert not missing, f"compiled modules without a .pyi: {missing}"
    assert (PACKAGE / "py.typed").exists()


@pytest.mark.slow
def test_stubs_match_the_runtime():
    """mypy.stubtest works on Cython modules; its allowlist holds only
    Cython artifacts (tests/stubtest_allowlist.txt)."""
    help_text = subprocess.run([sys.executable, "-m", "mypy.stubtest", "--help"], capture_output=True,
                               text=True).stdout
    extra = ["--ignore-disjoint-bases"] if "--ignore-disjoint-bases" in help_text else []
    proc = subprocess.run([sys.executable, "-m", "mypy.stubtest", *(f"vmcore.{m}" for m in compiled_modules()), "vmcore.abi",
                           "--concise", "--allowlist", str(ROOT / "tests" / "stubtest_allowlist.txt"), *extra],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr


REVEAL = '''
import vmcore

def hostcall(caller: vmcore.Caller) -> int:
    reveal_type(caller.memory)
    reveal_type(caller.gas)
    reveal_type(caller.sandbox)
    return 0

sb = vmcore.Sandbox(vmcore.Program.from_bytes(b""), backend="interpreter", isolation="inline")
reveal_type(sb.backend)
reveal_type(sb.isolation)
reveal_type(sb.run())
reveal_type(vmcore.configure_spin)
vmcore.Sandbox(vmcore.Program.from_bytes(b""), backend="jit")
'''


@pytest.mark.slow
def test_mypy_sees_the_installed_package_from_outside_the_tree(tmp_path):
    """Run where the source tree is not on the path: mypy must find vmcore
    through the installation (editable or not), typed, stubs included."""
    (tmp_path / "reveal.py").write_text(REVEAL)
    proc = mypy_run("--strict", "reveal.py", cwd=tmp_path)
    out = proc.stdout
    assert "py.typed" not in out and "import-not-found" not in out and "import-untyped" not in out, out
    assert 'Revealed type is "vmcore.memory.GuestMemory"' in out, out
    assert 'Revealed type is "builtins.int | None"' in out or 'Revealed type is "int | None"' in out, out
    assert 'Revealed type is "vmcore.sandbox.Sandbox"' in out, out
    assert "Literal['interpreter'] | Literal['compiler']" in out and "Literal['inline'] | Literal['process']" in out
    assert 'Revealed type is "vmcore.interrupts.Interrupt"' in out, out
    assert "def (host: builtins.int | None =" in out or "def (host: int | None =" in out, out
    assert "'jit'" in out and "arg-type" in out, out  # the Literal type catches a bad backend
    assert out.count("error:") == 1, out


@pytest.mark.slow
def test_examples_pass_mypy_strict(tmp_path):
    for example in (ROOT / "examples").glob("*.py"):
        shutil.copy(example, tmp_path / example.name)
    proc = mypy_run("--strict", *sorted(p.name for p in tmp_path.glob("*.py")), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
