"""Issue #18: why a guest panicked.  Every backend and isolation reports the
same TrapReason for the same program, in the exception (``Trap.reason``)
and in run()'s TrapInterrupt, with and without gas metering, without
changing the exit or the gas; a sandbox process that sends back a reason
no engine gives is treated as compromised (SandboxError)."""
import pickle

import pytest

import vmcore
from vmcore import TrapReason, abi, exits

import modes
from conftest import program

R = TrapReason

# name -> (source, the reason, the pc it stops at)
CASES = {
    "trap": ("pub @main:\n    trap\n", R.TRAP, 0),
    "undefined-opcode": ("pub @main:\n    a0 = 1\n    invalid ff\n", R.INVALID_INSTRUCTION, 3),
    "dynamic-misaligned": ("pub @main:\n    a0 = 3\n    jump [a0]\n", R.INVALID_JUMP, 3),
    "dynamic-zero": ("pub @main:\n    a0 = 0\n    jump [a0]\n", R.INVALID_JUMP, 2),
    "dynamic-past-table": ("pub @main:\n    a0 = 64\n    jump [a0]\n", R.INVALID_JUMP, 3),
    "dynamic-into-block": ("%jump_table = 3\npub @main:\n    a0 = 2\n    a1 = 1\n    jump [a0]\n",
                           R.INVALID_JUMP, 6),
    "static-not-a-block": ("pub @main:\n    a0 = 1\n    jump 1\n", R.INVALID_JUMP, 3),
    "branch-not-a-block": ("pub @main:\n    a0 = 1\n    jump 1 if a0 == 1\n    ret\n", R.INVALID_JUMP, 3),
    "load-imm-jump-not-a-block": ("pub @main:\n    a0 = 1\n    a1 = 5, jump 1\n", R.INVALID_JUMP, 3),
    "off-the-end": ("pub @main:\n    a0 = 1\n", R.END_OF_CODE, 3),
    "fallthrough-off-the-end": ("pub @main:\n    a0 = 1\n    fallthrough\n", R.END_OF_CODE, 3),
    "load-low-zone": ("pub @main:\n    a0 = u32 [0x100]\n    ret\n", R.MEMORY_ACCESS, 0),
    "store-low-zone": ("pub @main:\n    a1 = 0x2000\n    u64 [a1 + 8] = a0\n    ret\n", R.MEMORY_ACCESS, 4),
    "memset-low-zone": ("%isa = latest64\npub @main:\n    a0 = 0x100\n    a1 = 7\n    a2 = 16\n"
                        "    [a0..a0 + a2] = u8 a1\n    ret\n", R.MEMORY_ACCESS, 10),
}


@pytest.mark.parametrize("gas", [None, 10_000], ids=["unmetered", "metered"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_each_reason_in_every_mode(mode, case, gas):
    source, reason, pc = CASES[case]
    prog = program(source)
    sb = mode.sandbox(prog, gas=gas)
    try:
        with pytest.raises(vmcore.Trap) as info:
            sb.call("main")
        err = info.value
        assert err.reason is reason and err.pc == pc
        assert f"({reason.value})" in str(err) and f"pc {pc}" in str(err)
        gas_after_call = sb.gas
        sb.reset()
        sb.prepare_call("main")
        stop = sb.run()
        assert stop == vmcore.TrapInterrupt(pc, reason)
        assert sb.gas == gas_after_call  # the reason changes neither the exit nor the gas
    finally:
        sb.close()


def test_the_same_reason_and_gas_on_every_backend():
    """One program per reason, each run in every available mode: the whole
    outcome (reason, pc, gas left) is identical."""
    for case, (source, reason, pc) in CASES.items():
        prog = program(source)
        outcomes = set()
        for mode in modes.available():
            sb = mode.sandbox(prog, gas=500)
            try:
                sb.call("main")
            except vmcore.Trap as e:
                outcomes.add((e.reason, e.pc, sb.gas))
            finally:
                sb.close()
        assert len(outcomes) == 1, (case, outcomes)
        assert next(iter(outcomes))[:2] == (reason, pc), (case, outcomes)


def test_reason_is_a_str_enum_and_pickles():
    err = exits.error_for(abi.EXIT_TRAP, 12, abi.TRAP_INVALID_JUMP, 0, ())
    assert isinstance(err, vmcore.Trap) and err.reason == "invalid-jump" and str(err.reason) == "invalid-jump"
    back = pickle.loads(pickle.dumps(err))
    assert back.reason is R.INVALID_JUMP and back.pc == 12 and str(back) == str(err)
    stop = vmcore.TrapInterrupt(3, R.TRAP)
    assert pickle.loads(pickle.dumps(stop)) == stop


def test_every_engine_code_has_a_reason():
    codes = {v for k, v in abi.CONSTANTS.items() if k.startswith("TRAP_") and k != "TRAP_REASON_LIMIT"}
    assert codes == set(exits.TRAP_REASONS) == set(range(abi.TRAP_INSTRUCTION, abi.TRAP_REASON_LIMIT))
    assert set(exits.TRAP_REASONS.values()) == set(TrapReason)
    with pytest.raises(vmcore.SandboxError, match="unknown trap reason"):
        exits.trap_reason(abi.TRAP_REASON_LIMIT)


def test_refused_entry_is_an_invalid_jump(mode):
    sb = mode.sandbox(program("pub @main:\n    a0 = 1\n    ret\n"))
    try:
        with pytest.raises(vmcore.Trap) as info:
            sb.call(1)
        assert info.value.reason is R.INVALID_JUMP
    finally:
        sb.close()


def test_a_lying_sandbox_reason_is_a_sandbox_error():
    """The hostile zygote (tests only) now and then answers a trap with a
    reason code out of range: the host kills it with SandboxError, never
    crashes or reports a made-up reason."""
    from vmcore import fuzz_hostile
    if modes.NO_PROCESS:
        pytest.skip(modes.NO_PROCESS)
    try:
        pool = fuzz_hostile.hostile_pool(2)
    except Exception as e:  # noqa: BLE001 - no compiler here
        pytest.skip(f"cannot build the hostile zygote: {e}")
    prog = program("pub @main:\n    trap\n")
    seen = {"lie": 0}
    try:
        for _ in range(150):
            try:
                sb = vmcore.Sandbox(prog, isolation="process", backend="interpreter", pool=pool)
            except vmcore.VmError:
                continue
            try:
                sb.call("main")
            except vmcore.Trap as e:
                assert e.reason in set(TrapReason)
            except vmcore.SandboxError as e:
                if "trap reason out of range" in str(e):
                    seen["lie"] += 1
                    if seen["lie"] >= 2:
                        break
            except vmcore.VmError:
                pass
            finally:
                sb.close()
    finally:
        pool.close()
    assert seen["lie"], "the hostile zygote never sent an out-of-range trap reason"


@pytest.mark.skipif(modes.unavailable(modes.BY_NAME["compiler"]) is not None,
                    reason=str(modes.unavailable(modes.BY_NAME["compiler"])))
@pytest.mark.parametrize("lockstep", [True, False])
def test_crosscheck_compares_and_reports_the_reason(lockstep):
    from vmcore.crosscheck import crosscheck
    for case, (source, reason, pc) in CASES.items():
        with pytest.raises(vmcore.Trap) as info:
            crosscheck(program(source), "main", gas=1000, lockstep=lockstep)
        assert (info.value.reason, info.value.pc) == (reason, pc), case


@pytest.mark.parametrize("case", ["trap", "dynamic-zero", "off-the-end", "load-low-zone"])
def test_vector_runs_carry_the_reason(case):
    """The vector runner's Outcome (what the fuzzers compare) carries the
    reason, also for an entry the engine refuses."""
    from vmcore import vectors
    from vmcore.fuzz_cases import code_blob
    source, reason, pc = CASES[case]
    prog = program(source)
    blob = code_blob(prog.code, prog.bitmask, list(prog.jump_table))
    vector = {"name": case, "isa": prog.isa, "program": list(blob), "initial-regs": [0] * abi.REG_COUNT,
              "initial-pc": prog.export_pc("main"), "initial-page-map": [], "initial-memory": [],
              "initial-gas": 10_000}
    for backend, isolation in [(m.backend, m.isolation) for m in modes.available()]:
        got = vectors.run_vector(vector, backend=backend, isolation=isolation)
        assert (got.status, got.pc, got.trap_reason) == ("panic", pc, reason.value)
    vector["initial-pc"] = 1  # not an instruction start: refused at entry
    assert vectors.run_vector(vector).trap_reason == R.INVALID_JUMP.value


def test_disagreeing_reasons_are_a_difference():
    from vmcore.outcome import Outcome, trap_reason_differences
    same = {n: Outcome("panic", 3, 7, [0] * 13, {}, trap_reason="trap") for n in ("a", "b")}
    assert trap_reason_differences(same) == []
    assert trap_reason_differences({**same, "oracle": Outcome("panic", 3, 7, [0] * 13, {})}) == []
    differ = {**same, "c": Outcome("panic", 3, 7, [0] * 13, {}, trap_reason="invalid-jump")}
    assert trap_reason_differences(differ) == ["trap reason: a trap vs c invalid-jump"]
