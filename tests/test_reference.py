"""vmcore against PolkaVM 0.35 (the reference):

* tests/vectors/reference: one v0.4 vector per class of divergence found
  and fixed, expectations filled in by PolkaVM's interpreter (refharness
  oracle), run on every backend;
* a short ``fuzz --target reference`` campaign (skipped without the
  refharness binary: $VMCORE_REFHARNESS, else $VMCORE_SHARED/tools/refharness);
* gas from INT64_MIN to INT64_MAX: the same outcome on every backend (and
  PolkaVM's, when the binary is there), and deadlines raise Timeout
  whatever the gas.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

import vmcore
from vmcore import asm, fuzz, fuzz_reference, vectors
from vmcore.fuzz_cases import code_blob

import modes
from conftest import REFHARNESS as BINARY, needs_refharness as needs_binary

HERE = Path(__file__).resolve().parent
REFERENCE_DIR = HERE / "vectors" / "reference"
REFERENCE_VECTORS = sorted(REFERENCE_DIR.glob("*.json"))
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1


# ------------------------------------------------------------------ vectors
def test_reference_vectors_present():
    assert REFERENCE_VECTORS, f"no vectors in {REFERENCE_DIR}"
    for path in REFERENCE_VECTORS:
        vector = json.loads(path.read_text())
        assert vector.get("isa") in ("latest32", "latest64", "revive_v1", "jam_v1"), path.name
        assert "divergence" in vector, f"{path.name}: says which divergence class it pins down"


@pytest.mark.parametrize("path", REFERENCE_VECTORS, ids=[p.stem for p in REFERENCE_VECTORS])
def test_reference_vector(path, mode):
    vector = vectors.load_vector(str(path))
    assert vectors.compare(vector, vectors.run_vector(vector, **mode.kwargs)) == []


@needs_binary
def test_reference_vectors_are_what_polkavm_says(tmp_path):
    """The committed expectations are PolkaVM's (normalised only for the
    documented 64 KiB panic zone)."""
    cases = [json.loads(p.read_text()) for p in REFERENCE_VECTORS]
    inputs = [{k: v for k, v in c.items() if not k.startswith("expected-")} for c in cases]
    for case, (filled, error) in zip(cases, fuzz_reference.run_oracle(BINARY, inputs)):
        assert filled is not None, error
        want, _ = fuzz_reference.normalise(filled)
        for key in ("expected-status", "expected-pc", "expected-gas", "expected-regs",
                    "expected-page-fault-address", "expected-hostcall"):
            assert case.get(key) == want.get(key), (case["name"], key)


# ----------------------------------------------------------------- campaign
@needs_binary
@pytest.mark.slow
def test_short_reference_campaign(tmp_path):
    summary = fuzz.campaign(seconds=60, cases=150, seed=7, targets=["reference"], out_dir=str(tmp_path),
                            options={"reference": {"binary": BINARY}})
    info = summary.per_target["reference"]
    assert info["cases"] == 150, info
    assert summary.failed == 0, [f.summary for f in summary.failures]
    assert sum(v for k, v in info["stats"].items() if ":" in k) > 100  # compared, not skipped


def test_reference_cases_are_deterministic_and_adapted():
    a, b = fuzz_reference.generate(3, 11), fuzz_reference.generate(3, 11)
    assert a == b
    for i in range(60):
        v = fuzz_reference.generate(5, i)
        assert all(e["address"] >= 0x10000 and e["length"] % 4096 == 0 for e in v["initial-page-map"])


def test_reference_target_without_binary_is_a_clean_error(tmp_path, monkeypatch):
    monkeypatch.setenv(fuzz_reference.ENV, str(tmp_path / "missing"))
    target = fuzz_reference.ReferenceTarget(1, binary=str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError):
        target.setup()


# --------------------------------------------------------------- gas extremes
GAS_EXTREMES = [INT64_MIN, INT64_MIN + 1, INT64_MIN + 2, INT64_MIN + 5, -(1 << 62), -5, -1, 0, 1, 2, 3, 4, 5,
                (1 << 62) - 1, 1 << 62, (1 << 62) + 1, (1 << 62) + 3, INT64_MAX - 3, INT64_MAX - 1, INT64_MAX]


def _loop_vector(isa: str, gas: int) -> dict:
    """Two blocks: a0 = 3; then a loop counting a0 down; then halt."""
    source = f"""
%isa = {isa}
pub @main:
    a0 = 3
    a1 = 0xffff0000
@again:
    a0 = a0 - 1
    jump @again if a0 != 0
    jump [a1]
"""
    program = vmcore.Program.from_bytes(asm.assemble(source))
    blob = code_blob(program.code, program.bitmask, program.jump_table)
    return {"name": f"gas-{gas}", "isa": isa, "initial-regs": [0] * 13, "initial-pc": 0, "initial-page-map": [],
            "initial-memory": [], "initial-gas": gas, "program": list(blob)}


@pytest.mark.parametrize("isa", ["latest64", "latest32"])
def test_gas_extremes_agree_on_every_backend(isa):
    reference = None
    if BINARY is not None:
        reference = fuzz_reference.run_oracle(BINARY, [_loop_vector(isa, g) for g in GAS_EXTREMES])
    used = vectors.run_vector(_loop_vector(isa, 1000)).gas
    used = 1000 - used
    for k, gas in enumerate(GAS_EXTREMES):
        vector = _loop_vector(isa, gas)
        outcomes = {m.name: vectors.run_vector(vector, **m.kwargs) for m in modes.available()}
        first = next(iter(outcomes.values()))
        for name, outcome in outcomes.items():
            assert (outcome.status, outcome.pc, outcome.gas, outcome.regs) == \
                (first.status, first.pc, first.gas, first.regs), (gas, name)
        # the rule: out of gas, unchanged, whenever the block costs more than what is left
        if gas <= 1:
            assert (first.status, first.pc, first.gas) == ("out-of-gas", 0, gas), gas
        if gas >= 1 << 62:
            assert (first.status, gas - first.gas) == ("halt", used), gas
        if reference is not None:
            filled, error = reference[k]
            assert filled is not None, error
            assert vectors.compare(filled, first) == [], gas


SPIN = vmcore.Program.from_bytes(asm.assemble("""
%isa = latest64
%stack_size = 4096
pub @spin:
@loop:
    jump @loop
"""))


@pytest.mark.parametrize("gas", [0, 1 << 40, (1 << 62) + 1, INT64_MAX - 1, INT64_MAX, None])
def test_deadline_is_a_timeout_whatever_the_gas(mode, gas):
    with mode.sandbox(SPIN, gas=gas) as sb:
        with pytest.raises((vmcore.Timeout, vmcore.OutOfGas)) as info:
            sb.call("spin", timeout=0.05)
        if gas == 0:
            assert isinstance(info.value, vmcore.OutOfGas)
        else:
            assert isinstance(info.value, vmcore.Timeout), repr(info.value)
            # the gas the guest used is gone, nothing else
            if gas is not None:
                assert 0 < gas - sb.gas and sb.gas > 0


# ------------------------------------------------------- 32-bit registers
ECHO32 = vmcore.Program.from_bytes(asm.assemble("""
%isa = latest32
%stack_size = 4096
%import back
pub @echo:
    a1 = a0 <s 0
    ecalli 0
    ret
"""))


def test_32_bit_registers_are_32_bit_on_every_path(mode):
    seen = []

    def back(caller, a0, a1):
        seen.append((a0, a1, caller.regs["a0"]))
        caller.regs["a2"] = 0xFFFFFFFFFFFF0000  # truncated to 32 bits, as PolkaVM's set_reg does
        return 0xFFFFFFFE

    with mode.sandbox(ECHO32) as sb:
        sb.register_hostcall("back", back)
        assert sb.call("echo", 0xFFFFFFFF) == 0xFFFFFFFE
        assert seen == [(0xFFFFFFFF, 1, 0xFFFFFFFF)]  # the argument is sign-extended inside: negative
        assert sb.regs["a2"] == 0xFFFF0000 and max(sb.regs) <= 0xFFFFFFFF
        sb.regs["a3"] = -1 & 0xFFFFFFFFFFFFFFFF
        assert sb.regs["a3"] == 0xFFFFFFFF
