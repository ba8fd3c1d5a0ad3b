"""The one execution-mode matrix of the test suite: every configuration a
guest can run in, with why a configuration cannot run here (those tests
skip with the reason instead of disappearing).  conftest.py exposes it as
the ``mode`` and ``process_mode`` fixtures; ``params()`` is for tests that
parametrise directly."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pytest

import vmcore
import vmcore.pool


@dataclass(frozen=True)
class Mode:
    """One configuration: ``name`` is the test id."""
    name: str
    backend: str
    isolation: str

    @property
    def config(self) -> tuple:
        return (self.backend, self.isolation)

    @property
    def kwargs(self) -> dict:
        """backend= and isolation= for the APIs that take them."""
        return {"backend": self.backend, "isolation": self.isolation}

    def sandbox(self, program: vmcore.Program, **kwargs) -> vmcore.Sandbox:
        """A Sandbox in this mode (an explicit backend/isolation wins)."""
        kwargs.setdefault("backend", self.backend)
        kwargs.setdefault("isolation", self.isolation)
        return vmcore.Sandbox(program, **kwargs)

    def __str__(self) -> str:
        return self.name


MODES = (Mode("inline", "interpreter", "inline"), Mode("process", "interpreter", "process"),
         Mode("compiler", "compiler", "process"))
BY_NAME = {m.name: m for m in MODES}


def unavailable(mode: Mode) -> Optional[str]:
    """None when ``mode`` can run here, else why not (vmcore's own reason)."""
    from vmcore.backends import unavailable as why_not
    return why_not(mode.backend, mode.isolation)


NO_PROCESS = unavailable(BY_NAME["process"])
NO_NATIVE_CODE = vmcore.pool.cpu_supports_native()  # this CPU cannot run generated code


def select(*, process_only: bool = False) -> tuple:
    return tuple(m for m in MODES if m.isolation == "process" or not process_only)


def skip_marks(mode: Mode) -> list:
    """The marks of a pytest.param that needs ``mode``: a skip with the reason when it cannot run."""
    return [pytest.mark.skip(reason=unavailable(mode))] if unavailable(mode) else []


def params(*, process_only: bool = False) -> list:
    """pytest.param per mode (id: the mode's name), unavailable ones skipped with the reason."""
    return [pytest.param(m, id=m.name, marks=skip_marks(m)) for m in select(process_only=process_only)]


def available(*, process_only: bool = False) -> tuple:
    """The modes that run here (for tests that loop over modes themselves)."""
    return tuple(m for m in select(process_only=process_only) if unavailable(m) is None)

