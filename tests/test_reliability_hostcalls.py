"""Reliability: hostcalls that raise or return nonsense end in typed errors
and leave the sandbox usable.
Shared guest and helpers: tests/reliability.py."""

import pytest

import vmcore
from vmcore import abi

import modes
from reliability import GUEST, M64, hostcall_returning, increment, new_sandbox, raising, CustomError
from reliability import report_figures  # noqa: F401 (autouse: prints the figures measured here)


# == 4. hostcalls that raise or return nonsense ==============================

def bad_memory_read(caller, a0):
    caller.memory.read(0xFFFF_F000, 16)  # MemoryAccessError


RAISING = [
    (raising(ValueError("boom")), ValueError),
    (raising(CustomError("mine")), CustomError),
    (raising(MemoryError()), MemoryError),
    (raising(RecursionError()), RecursionError),
    (raising(StopIteration()), StopIteration),
    (raising(GeneratorExit()), GeneratorExit),
    (bad_memory_read, vmcore.MemoryAccessError),
]


@pytest.mark.parametrize("mode", modes.params())
def test_raising_hostcalls_are_wrapped(mode):
    sb = new_sandbox(mode, gas=10**9)
    for fn, cause in RAISING:
        sb.register_hostcall("note", fn)
        with pytest.raises(vmcore.HostcallError) as info:
            sb.call("hcall", 1)
        e = info.value
        assert type(e.__cause__) is cause
        assert e.__cause__.__traceback__ is not None  # the hostcall's frames are kept
        assert e.name == "note" and e.number == 0
        assert e.pc == GUEST.exports["hcall"]
        assert cause.__name__ in str(e)
        # still usable, with and without a deadline
        sb.register_hostcall("note", increment)
        assert sb.call("hcall", 1) == 2, cause
        assert sb.call("quick", timeout=1.0) == 7
        sb.register_hostcall("note", fn)
        with pytest.raises(vmcore.HostcallError):
            sb.call("hloop", timeout=1.0)
    # raising inside a long hostcall loop, after many good round trips
    calls = []

    def nth(caller):
        calls.append(1)
        if len(calls) == 500:
            raise CustomError("500th")

    sb.register_hostcall("note", nth)
    with pytest.raises(vmcore.HostcallError) as info:
        sb.call("hloop")
    assert isinstance(info.value.__cause__, CustomError) and len(calls) == 500
    sb.register_hostcall("note", increment)
    assert sb.call("hcall", 3) == 4
    sb.close()


@pytest.mark.parametrize("mode", modes.params())
@pytest.mark.parametrize("exc", [KeyboardInterrupt, SystemExit])
def test_keyboard_interrupt_and_system_exit_pass_through(mode, exc):
    """Deliberately not wrapped (Ctrl-C must reach the application); the
    sandbox stays usable."""
    sb = new_sandbox(mode, hostcalls={"note": raising(exc())})
    with pytest.raises(exc):
        sb.call("hcall", 1)
    sb.register_hostcall("note", increment)
    assert sb.call("hcall", 1) == 2
    assert sb.call("quick") == 7
    sb.close()


WRAPPED = [  # returned value -> (a0, a1) as the guest sees them: ints wrap modulo 2**64
    (-1, (M64, None)),
    (-(1 << 63), (1 << 63, None)),
    (1 << 64, (0, None)),
    ((1 << 64) + 5, (5, None)),
    ((1 << 200) + 3, (3, None)),
    (-(1 << 200), (0, None)),
    (True, (1, None)),
    (None, (123, None)),  # registers untouched
    ((-1, 1 << 70), (M64, 0)),
    ((1, -2), (1, M64 - 1)),
    ((9,), (9, None)),  # a tuple fills a0, a1, ... as far as it goes (abi.HOSTCALL_RETURN_COUNT)
    ((1, 2, 3), (1, 2)),
    (tuple(range(1, abi.HOSTCALL_RETURN_COUNT + 1)), (1, 2)),
]
NOT_INTS = [1.5, "7", b"7", [1, 2], (), tuple(range(abi.HOSTCALL_RETURN_COUNT + 1)), (1.0, 2), (1, None),
            (1, 2, "3"), object(), {}, 1j]


@pytest.mark.parametrize("mode", modes.params())
def test_hostcall_return_values(mode):
    sb = new_sandbox(mode)
    for value, (a0, a1) in WRAPPED:
        sb.regs["a1"] = 77
        sb.register_hostcall("note", hostcall_returning(value))
        assert sb.call("hcall", 123) == a0, value
        assert sb.regs["a1"] == (77 if a1 is None else a1), value
    for value in NOT_INTS:
        sb.regs["a1"] = 77
        sb.register_hostcall("note", hostcall_returning(value))
        with pytest.raises(vmcore.HostcallError) as info:
            sb.call("hcall", 123)
        assert isinstance(info.value.__cause__, TypeError), value
        assert sb.regs["a1"] == 77, value  # nothing half-written
        assert sb.call("quick") == 7
    sb.close()
