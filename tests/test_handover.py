"""The sandbox-process hand-over (issue #20): what each hand-over asks of
the zygote.  Native code is told "enter at program_counter" or "resume"
by vmctx.enter, which only the host writes and only when it changes, so
a run of hostcalls and repeated calls leave the handshake line alone."""
import ctypes
from pathlib import Path

import pytest

import vmcore
from vmcore import abi

import modes

DATA = Path(vmcore.__file__).parent / "data"
COMPILER = [p for p in modes.params(process_only=True) if p.values[0].backend == "compiler"]


def _ctx_u32(sb, name):
    return ctypes.c_uint32.from_address(sb._guest.ctx_address() + abi.vmctx_layout()[name][0])


@pytest.fixture(scope="module")
def hostcall_program():
    return vmcore.Program.load(DATA / "hostcall.polkavm")


def test_enter_is_on_the_handshake_line():
    layout = abi.vmctx_layout()
    assert layout["enter"][0] // 64 == layout["futex"][0] // 64


@pytest.mark.parametrize("mode", COMPILER)
def test_enter_says_enter_then_resume(hostcall_program, mode):
    """The first hand-over of a call enters (1), the ones after its
    hostcalls resume (0); the next call enters again."""
    seen = []
    sb = mode.sandbox(hostcall_program, hostcalls={"inc": lambda caller: seen.append(_ctx_u32(caller.sandbox,
                                                                                              "enter").value)})
    try:
        sb.call("main", 3)
        sb.call("main", 2)
        assert seen == [1, 0, 0, 1, 0]
    finally:
        sb.close()


@pytest.mark.parametrize("mode", COMPILER)
def test_a_forged_enter_is_put_right(hostcall_program, mode):
    """The sandbox can write the word too: the host compares before it
    skips the store, so a forged "enter" during a hostcall does not make
    the guest start over (it would loop on its first ecalli)."""
    count = []

    def inc(caller):
        count.append(1)
        _ctx_u32(caller.sandbox, "enter").value = 1
    sb = mode.sandbox(hostcall_program, hostcalls={"inc": inc})
    try:
        sb.call("main", 5)
        assert len(count) == 5
        assert sb.call("main", 1) is not None and len(count) == 6
    finally:
        sb.close()


@pytest.mark.parametrize("mode", COMPILER)
def test_a_forged_resume_on_entry_is_put_right(hostcall_program, mode):
    """...and a forged "resume" left for the next call's entry is rewritten
    (the zygote would resume inside the last call)."""
    count = []

    def inc(caller):
        count.append(1)
    sb = mode.sandbox(hostcall_program, hostcalls={"inc": inc})
    try:
        sb.call("main", 2)
        _ctx_u32(sb, "enter").value = 0
        sb.call("main", 3)
        assert len(count) == 5
    finally:
        sb.close()
