"""Off x86-64 (Linux aarch64: `make test-aarch64-python`), a test that
starts the sandbox process or the recompiler is skipped with the reason
vmcore gives (its SandboxError) instead of failing: the zygote and the
generated code are x86-64 only, and vmcore refuses them there by design.
On x86-64 this plugin does nothing.  Loaded by conftest.py (pytest_plugins).
"""
import platform

import pytest

from vmcore import SandboxError

X86_64 = platform.machine() in ("x86_64", "AMD64")
# The two refusals (vmcore/process_backend.py) that mean "not on this CPU".
REFUSALS = ("isolation='process' needs Linux x86-64", "the recompiler targets Linux x86-64")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    try:
        return (yield)
    except SandboxError as error:
        if X86_64 or not str(error).startswith(REFUSALS):
            raise
        pytest.skip(f"x86-64 only: {error}")
