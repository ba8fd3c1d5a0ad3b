"""The public entry points vmcore's tools run on (vectors, vectors_v05,
crosscheck), on every backend: Sandbox.run(serve_hostcalls=True),
Sandbox.block_gas_costs(), GuestMemory.accessible_spans(),
HeapPolicy(enabled=False), memory.protect on partial pages, and
vectors.run_vector's gas_model."""
import pytest

import vmcore
from conftest import program
from vmcore import interrupts, vectors
from vmcore.errors import HostcallError

HOSTCALLS = program("""
%isa = latest64
%rw_data_size = 4096
%stack_size = 4096
%import double
%import missing
pub @twice:
    ecalli 0
    ecalli 0
    ret
pub @other:
    ecalli 1
    ret
pub @grow:
    a0 = sbrk a0
    ret
""")


def test_run_serving_hostcalls_goes_on_after_registered_ones(mode):
    calls = []

    def double(caller, a0):
        calls.append(a0)
        return a0 * 2

    with mode.sandbox(HOSTCALLS, gas=1000, hostcalls={"double": double}) as sb:
        sb.prepare_call("twice", 3)
        assert isinstance(sb.run(serve_hostcalls=True), interrupts.Finished)
        assert (calls, sb.regs["a0"]) == ([3, 6], 12)
        sb.prepare_call("twice", 3)
        stop = sb.run()  # without serving: the first ecalli comes back
        assert isinstance(stop, interrupts.Ecalli) and stop.number == 0 and calls == [3, 6]


def test_run_serving_hostcalls_stops_at_imports_without_one_and_raises_a_hostcalls_error(mode):
    def double(caller, a0):
        raise RuntimeError("boom")

    with mode.sandbox(HOSTCALLS, gas=1000, hostcalls={"double": double}) as sb:
        sb.prepare_call("other")
        stop = sb.run(serve_hostcalls=True)
        assert isinstance(stop, interrupts.Ecalli) and stop.name == "missing"
        sb.prepare_call("twice", 1)
        with pytest.raises(HostcallError) as error:
            sb.run(serve_hostcalls=True)
        assert error.value.name == "double" and isinstance(error.value.__cause__, RuntimeError)
        sb.prepare_call("twice", 1)  # the sandbox is usable after it
        assert isinstance(sb.run(), interrupts.Ecalli)


def test_block_gas_costs_are_what_the_engine_charges(mode):
    for model in ("naive", "full"):
        with mode.sandbox(HOSTCALLS, gas=1000, gas_model=model) as sb:
            costs = sb.block_gas_costs()
            assert costs == HOSTCALLS.block_gas_costs(model)
            assert len(costs) == HOSTCALLS.basic_block_count()


def test_accessible_spans_are_the_layout_and_follow_the_heap(mode):
    with mode.sandbox(HOSTCALLS, gas=1000) as sb:
        m = sb.memory_map
        spans = sb.memory.accessible_spans()
        assert spans == sorted(spans)
        assert (m.rw_data_address, m.rw_data_size) in spans
        assert (m.stack_address_low, m.stack_size) in spans
        sb.call("grow", 3 * m.page_size)
        grown = dict(sb.memory.accessible_spans())
        assert grown[m.rw_data_address] >= m.rw_data_size + 3 * m.page_size
        for address, length in grown.items():
            assert sb.memory.is_accessible(address, length)


def test_a_disabled_heap_gives_sbrk_nothing(mode):
    with mode.sandbox(HOSTCALLS, gas=1000, heap=vmcore.HeapPolicy(enabled=False)) as sb:
        assert sb.call("grow", 0) == 0
        assert sb.call("grow", 4096) == 0
        assert sb.heap_size == 0
    with pytest.raises(ValueError):
        vmcore.HeapPolicy(enabled=False, initial_size=1)


def test_protect_of_part_of_a_page_is_wiped_for_the_next_sandbox(mode):
    """protect() covers whole pages, so the bytes a closed sandbox left
    anywhere on them must not reach the next sandbox that gets its
    (pooled) memory back."""
    raw = vmcore.Program.from_raw_code(bytes([0, 0, 1, 1, 1]), isa="latest64")
    address = 0x8000_0000
    for _ in range(3):  # pools hand the same memory back
        with mode.sandbox(raw) as sb:
            sb.memory.protect(address, 100, "write")
            assert sb.memory.read(address, 4096) == bytes(4096)
            sb.memory.write(address + 0xD28, b"\xe4" * 8)


def _jam_vector(**extra):
    from vmcore.fuzz_cases import code_blob
    source = program("""
%isa = jam_v1
pub @main:
    a0 = 1
    fallthrough
    a1 = u32 [a0]
    trap
""")
    blob = code_blob(source.code, source.bitmask, source.jump_table)
    vector = {"name": "gas-model", "isa": "jam_v1", "program": list(blob), "initial-regs": [0] * 13,
              "initial-pc": 0, "initial-page-map": [], "initial-memory": [], "initial-gas": 1000}
    vector.update(extra)
    return vector


def test_run_vector_gas_model(mode):
    vector = _jam_vector()
    naive = vectors.run_vector(vector, **mode.kwargs)
    full = vectors.run_vector(vector, gas_model="full", **mode.kwargs)
    keyed = vectors.run_vector(_jam_vector(**{"gas-model": "full"}), **mode.kwargs)
    program = vmcore.Program.from_raw_code(bytes(vector["program"]), isa="jam_v1")
    assert naive.status == full.status == "panic"
    assert 1000 - naive.gas == sum(program.block_gas_costs("naive").values())
    assert 1000 - full.gas == sum(program.block_gas_costs("full").values()) != 1000 - naive.gas
    assert keyed == full
