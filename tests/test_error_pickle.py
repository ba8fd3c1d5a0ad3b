"""Every vmcore error pickles with its message, fields and cause (what
vmcore.ray relies on to hand the local API's typed errors back from a
cluster)."""
import copy
import pickle

import pytest

import vmcore
from vmcore import debuginfo, errors
from vmcore.asm import assemble
from vmcore.asm import AsmError
from vmcore.crosscheck import Divergence
from vmcore.sandbox import SandboxBusy

SAMPLES = [
    errors.VmError("base", pc=3),
    errors.ProgramError("bad magic", offset=5),
    errors.ProgramError("no offset"),
    errors.Trap("the guest panicked at pc 7", pc=7),
    debuginfo.attach_traceback(errors.Trap("the guest panicked at pc 1", pc=1), vmcore.Program.from_bytes(
        assemble("%loc main src/main.c:3:1 -> helper src/h.h:7\npub @main:\n    trap\n    trap\n    trap\n"))),
    errors.OutOfGas("out of gas at pc 9 (gas left: -1)", pc=9),
    errors.PageFault("page fault", pc=11, address=0x10000),
    errors.HostcallError("hostcall 'x' raised", pc=2, name="x", number=1),
    errors.MemoryAccessError("read outside", address=0x1000, length=16),
    errors.SandboxError("the sandbox process died", pc=4, sandbox_message="killed by SIGKILL"),
    errors.Timeout("passed its 0.1 s deadline", pc=12),
    SandboxBusy("busy"),
    AsmError("unknown instruction", line=3),
    Divergence("r7 differs", step=4, interpreter={"pc": 1, "regs": [0] * 13}, compiler={"pc": 2}),
]


def _all_classes(cls):
    out = {cls}
    for sub in cls.__subclasses__():
        out |= _all_classes(sub)
    return out


def test_samples_cover_every_error_class():
    # A new VmError subclass in vmcore gets a sample here (it pickles
    # anyway: VmError.__reduce__ does not call __init__).
    known = {type(e) for e in SAMPLES}
    missing = {c for c in _all_classes(vmcore.VmError) if c.__module__.startswith("vmcore")} - known
    for cls in missing:
        e = cls.__new__(cls)
        e.args = ("sample",)
        e.pc = 1
        back = pickle.loads(pickle.dumps(e))
        assert type(back) is cls and back.args == e.args and back.__dict__ == e.__dict__


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
@pytest.mark.parametrize("error", SAMPLES, ids=lambda e: type(e).__name__)
def test_round_trip(error, protocol):
    back = pickle.loads(pickle.dumps(error, protocol=protocol))
    assert type(back) is type(error)
    assert str(back) == str(error)
    assert back.args == error.args
    assert back.__dict__ == error.__dict__
    assert back.pc == error.pc
    assert copy.deepcopy(error).__dict__ == error.__dict__


def test_fields_survive():
    pf = pickle.loads(pickle.dumps(errors.PageFault("pf", pc=1, address=0x20000)))
    assert (pf.pc, pf.address) == (1, 0x20000)
    sb = pickle.loads(pickle.dumps(errors.SandboxError("died", sandbox_message="seccomp")))
    assert sb.sandbox_message == "seccomp" and str(sb) == "died: seccomp"
    pe = pickle.loads(pickle.dumps(errors.ProgramError("short", offset=9)))
    assert (pe.offset, pe.reason, str(pe)) == (9, "short", "short (at byte offset 9)")


def test_cause_pickles():
    e = errors.HostcallError("hostcall 'f' raised ValueError: nope", pc=1, name="f", number=0)
    e.__cause__ = ValueError("nope")
    back = pickle.loads(pickle.dumps(e))
    assert isinstance(back.__cause__, ValueError) and str(back.__cause__) == "nope"


class _Unpicklable(Exception):
    def __init__(self):
        super().__init__("local")
        self.lock = __import__("threading").Lock()


def test_unpicklable_cause_becomes_text():
    e = errors.HostcallError("raised", name="f", number=0)
    e.__cause__ = _Unpicklable()
    back = pickle.loads(pickle.dumps(e))
    assert type(back.__cause__) is Exception and "_Unpicklable: local" in str(back.__cause__)


def test_real_sandbox_error_round_trips():
    program = vmcore.Program.load(vmcore.__path__[0] + "/data/sum.polkavm")
    sb = vmcore.Sandbox(program, gas=10)
    with pytest.raises(vmcore.OutOfGas) as info:
        sb.call("main", 1000)
    back = pickle.loads(pickle.dumps(info.value))
    assert type(back) is vmcore.OutOfGas and back.pc == info.value.pc and str(back) == str(info.value)
