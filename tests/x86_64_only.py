"""Off x86-64 (Linux aarch64: `make test-aarch64-python`), a test that
starts the sandbox process or the recompiler is skipped with the reason
vmcore gives (its SandboxError) instead of failing: the zygote and the
generated code are x86-64 only, and vmcore refuses them there by design.
On x86-64 this plugin does nothing.  Loaded by conftest.py (pytest_plugins).
"""
import errno
import platform

import pytest

from vmcore import SandboxError

X86_64 = platform.machine() in ("x86_64", "AMD64")
# The two refusals (vmcore/backends.py) that mean "not on this CPU".
REFUSALS = ("isolation='process' needs Linux x86-64", "the recompiler targets Linux x86-64")


def _skip_refusal(error: BaseException) -> None:
    """Off x86-64: vmcore's own "not on this CPU" refusal, or a subprocess
    of this interpreter that cannot start (qemu-user without binfmt: the
    child is an aarch64 executable the kernel cannot run), becomes a skip."""
    if X86_64:
        return
    if isinstance(error, SandboxError) and str(error).startswith(REFUSALS):
        pytest.skip(f"x86-64 only: {error}")
    if isinstance(error, OSError) and error.errno == errno.ENOEXEC:
        pytest.skip(f"cannot start a subprocess under emulation: {error}")


def _skipping_refusals(item):
    try:
        return (yield)
    except (SandboxError, OSError) as error:
        _skip_refusal(error)
        raise


# Fixtures (setup) and test bodies (call) both start sandboxes.
pytest_runtest_setup = pytest.hookimpl(wrapper=True)(_skipping_refusals)
pytest_runtest_call = pytest.hookimpl(wrapper=True)(_skipping_refusals)
