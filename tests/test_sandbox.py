"""The public Sandbox API end to end: calls, hostcalls, memory, heap, gas,
errors, threads, lifecycle.  Every test runs once per execution mode: the
interpreter inline, the interpreter in a sandbox process, and native code
from the recompiler in a sandbox process."""
import threading
import time

import pytest

import vmcore
from vmcore.interrupts import Ecalli, Finished, OutOfGasInterrupt, PageFaultInterrupt, Step, TrapInterrupt

from conftest import load_example, program

DATA = __import__("pathlib").Path(vmcore.__file__).parent / "data"


# every test runs in every mode (conftest's mode fixture)
pytestmark = pytest.mark.usefixtures("mode")


ADD = program(load_example("quickstart").GUEST)  # the README example's guest

MEMORY = program("""
%isa = latest64
%rw_data_size = 8192
%stack_size = 4096
// store a1 at [a0], return the u32 at [a0]
pub @store:
    u32 [a0] = a1
    a0 = u32 [a0]
    ret
pub @load:
    a0 = u64 [a0]
    ret
pub @trap:
    trap
pub @spin:
@again:
    jump @again
pub @grow:
    a0 = sbrk a0
    ret
pub @push:
    sp = sp - 8
    u64 [sp] = a0
    a0 = u64 [sp]
    sp = sp + 8
    ret
""")


@pytest.fixture
def add_sandbox(mode):
    sb = mode.sandbox(ADD, gas=1_000_000)

    @sb.hostcall("get_third_number")
    def get_third_number(caller) -> int:
        return 100

    yield sb
    sb.close()


def test_readme_example(add_sandbox):
    assert add_sandbox.call("add_numbers", 1, 10) == 111


def test_hostcall_arguments_and_returns(mode):
    seen = []

    def third(caller, a0, a1):
        seen.append((a0, a1))
        return (a0 * 2, 7)  # writes a0 and a1

    sb = mode.sandbox(ADD, hostcalls={"get_third_number": third})
    assert sb.call("add_numbers", 3, 4) == 6 + 7
    assert seen == [(3, 4)]


def test_hostcall_return_masked_to_register_width(mode):
    sb = mode.sandbox(ADD, hostcalls={"get_third_number": lambda c: -1})
    assert sb.call("add_numbers", 0, 1) == 0  # -1 + 1 wraps to 0


def test_hostcall_none_leaves_registers(add_sandbox):
    add_sandbox.register_hostcall("get_third_number", lambda caller: None)
    assert add_sandbox.call("add_numbers", 5, 6) == 5 + 11


def test_hostcall_sees_registers_memory_and_gas(mode):
    sb = mode.sandbox(MEMORY, gas=10_000)
    calls = []
    sb2 = mode.sandbox(ADD, gas=10_000)

    @sb2.hostcall("get_third_number")
    def inspect(caller):
        calls.append((caller.regs["a0"], caller.regs[8], caller.gas, caller.sandbox is sb2))
        caller.regs["a0"] = 1000
        return None

    assert sb2.call("add_numbers", 1, 2) == 1003
    a0, a1, gas, same = calls[0]
    assert (a0, a1, same) == (1, 2, True)
    assert 0 < gas < 10_000
    sb.close()


def test_hostcall_error_wraps_cause_and_sandbox_stays_usable(add_sandbox):
    def boom(caller):
        raise ValueError("boom")

    add_sandbox.register_hostcall("get_third_number", boom)
    with pytest.raises(vmcore.HostcallError) as info:
        add_sandbox.call("add_numbers", 1, 2)
    assert isinstance(info.value.__cause__, ValueError)
    assert info.value.name == "get_third_number" and info.value.number == 0
    assert info.value.pc is not None
    add_sandbox.register_hostcall("get_third_number", lambda c: 1)
    assert add_sandbox.call("add_numbers", 1, 2) == 4


def test_hostcall_bad_return_type(add_sandbox):
    add_sandbox.register_hostcall("get_third_number", lambda c: "nope")
    with pytest.raises(vmcore.HostcallError) as info:
        add_sandbox.call("add_numbers", 1, 2)
    assert isinstance(info.value.__cause__, TypeError)


def test_missing_hostcall_names_the_import(mode):
    sb = mode.sandbox(ADD)
    with pytest.raises(vmcore.HostcallError, match="get_third_number"):
        sb.call("add_numbers", 1, 2)


def test_register_unknown_import_and_bad_signature(mode):
    sb = mode.sandbox(ADD)
    with pytest.raises(KeyError, match="no import named"):
        sb.register_hostcall("nope", lambda c: 0)
    with pytest.raises(TypeError):
        sb.register_hostcall("get_third_number", lambda: 0)
    with pytest.raises(TypeError):
        sb.register_hostcall("get_third_number", lambda c, a, b, d, e, f, g, h: 0)


def test_unknown_export(mode):
    sb = mode.sandbox(ADD)
    with pytest.raises(KeyError, match="add_numbers"):
        sb.call("missing")


def test_bad_combinations_raise_value_error(mode):
    with pytest.raises(ValueError):
        mode.sandbox(ADD, backend="jit")
    with pytest.raises(ValueError):
        mode.sandbox(ADD, isolation="vm")
    with pytest.raises(ValueError):
        mode.sandbox(ADD, page_size=3000)
    with pytest.raises(TypeError):
        mode.sandbox(b"not a program")


def test_memory_roundtrip_and_typed_access(mode):
    sb = mode.sandbox(MEMORY)
    rw = sb.memory_map.rw_data_address
    assert sb.call("store", rw + 16, 0xDEADBEEF) == 0xDEADBEEF
    assert sb.memory.read_u32(rw + 16) == 0xDEADBEEF
    sb.memory.write_u64(rw + 32, 0x1122334455667788)
    assert sb.call("load", rw + 32) == 0x1122334455667788
    sb.memory.write(rw, b"hello")
    assert sb.memory.read(rw, 5) == b"hello"
    buf = bytearray(5)
    sb.memory.read_into(rw, buf)
    assert bytes(buf) == b"hello"
    sb.memory.zero(rw, 5)
    assert sb.memory.read(rw, 5) == b"\0" * 5
    for width in (8, 16, 32, 64):
        getattr(sb.memory, f"write_u{width}")(rw + 100, (1 << width) - 2)
        assert getattr(sb.memory, f"read_u{width}")(rw + 100) == (1 << width) - 2


def test_memory_access_errors_never_corrupt(mode):
    sb = mode.sandbox(MEMORY)
    rw = sb.memory_map.rw_data_address
    with pytest.raises(vmcore.MemoryAccessError):
        sb.memory.read(0, 4)
    with pytest.raises(vmcore.MemoryAccessError):
        sb.memory.write(rw + 8192 - 2, b"1234")  # straddles into an unmapped page
    assert sb.memory.read(rw + 8192 - 2, 2) == b"\0\0"
    with pytest.raises(vmcore.MemoryAccessError):
        sb.memory.read(0xFFFFFFFF, 2)
    with pytest.raises(vmcore.MemoryAccessError):
        sb.memory.read(-1, 1)
    assert sb.memory.is_accessible(rw, 8192)
    assert not sb.memory.is_accessible(rw, 8193)
    assert sb.memory.is_accessible(rw, 4, writable=True)


def test_guest_faults_raise_typed_errors_and_sandbox_recovers(mode):
    sb = mode.sandbox(MEMORY, gas=100_000)
    with pytest.raises(vmcore.Trap) as t:
        sb.call("trap")
    assert t.value.pc == MEMORY.exports["trap"]
    with pytest.raises(vmcore.PageFault) as pf:
        sb.call("store", 0x7000_0000, 1)
    assert pf.value.address == 0x7000_0000 and pf.value.pc == MEMORY.exports["store"]
    with pytest.raises(vmcore.Trap):
        sb.call("store", 0x100, 1)  # low zone panics
    with pytest.raises(vmcore.OutOfGas):
        sb.call("spin")
    assert sb.gas == 0
    sb.gas = 1000
    rw = sb.memory_map.rw_data_address
    assert sb.call("store", rw, 5) == 5


def test_read_only_data_is_read_only(mode):
    prog = program("""
%isa = jam_v1
%ro_data_size = 4
%ro_data = 01020304
pub @write:
    u8 [a0] = 9
    ret
pub @read:
    a0 = u32 [a0]
    ret
""")
    sb = mode.sandbox(prog)
    ro = sb.memory_map.ro_data_address
    assert sb.call("read", ro) == 0x04030201
    with pytest.raises(vmcore.PageFault) as e:
        sb.call("write", ro)
    assert e.value.address == ro
    assert not sb.memory.is_accessible(ro, 1, writable=True)


def test_stack_pointer_set_by_call(mode):
    sb = mode.sandbox(MEMORY)
    assert sb.call("push", 0xABCDEF) == 0xABCDEF
    assert sb.regs["sp"] == sb.memory_map.stack_address_high


def test_gas_accounting_and_metering_off(mode):
    program = vmcore.Program.load(DATA / "sum.polkavm")
    sb = mode.sandbox(program, gas=10_000, gas_model="naive")
    assert sb.gas_model == "naive"
    sb.call("main", 10)
    used = 10_000 - sb.gas
    assert used == 5 * 10 + 6
    # jam_v1 defaults to the full model: the loop block's full cost per iteration
    full = mode.sandbox(program, gas=100_000)
    assert full.gas_model == "full"
    spent = []
    for n in (0, 1, 10):
        full.gas = 100_000
        full.call("main", n)
        spent.append(100_000 - full.gas)
    per_iteration = spent[1] - spent[0]
    assert per_iteration in program.block_gas_costs("full").values() and per_iteration > 5
    assert spent[2] == spent[0] + 10 * per_iteration
    off = mode.sandbox(vmcore.Program.load(DATA / "sum.polkavm"))
    assert off.gas is None
    assert off.call("main", 10) == sum(i * i for i in range(10))
    with pytest.raises(ValueError):
        off.gas = 5


def test_heap_policy_and_sbrk(mode):
    sb = mode.sandbox(MEMORY, heap=vmcore.HeapPolicy(max_size=3 * 4096, grow_by_pages=2))
    base = sb.memory_map.heap_base
    assert sb.heap_size == 0
    top = sb.call("grow", 100)
    assert top == base + 100 and sb.heap_size == 100
    assert sb.memory.is_accessible(base, 100, writable=True)
    assert sb.call("grow", 3 * 4096) == 0  # past the maximum: 0 to the guest
    assert sb.sbrk(10) == base + 110
    assert sb.sbrk(3 * 4096) == 0
    with pytest.raises(ValueError):
        vmcore.HeapPolicy(initial_size=10, max_size=5)


def test_heap_initial_size_maps_pages(mode):
    sb = mode.sandbox(MEMORY, heap=vmcore.HeapPolicy(initial_size=5 * 4096))
    base = sb.memory_map.heap_base
    assert sb.memory.is_accessible(base, 4 * 4096, writable=True)


def test_reset_restores_fresh_state(mode):
    prog = program("""
%isa = jam_v1
%rw_data = 2a
%rw_data_size = 4096
pub @bump:
    a1 = u8 [a0]
    a1 = a1 + 1
    u8 [a0] = a1
    a0 = a1
    ret
""")
    sb = mode.sandbox(prog, gas=1000)
    rw = sb.memory_map.rw_data_address
    assert sb.call("bump", rw) == 43
    assert sb.call("bump", rw) == 44
    sb.sbrk(5000)
    sb.reset()
    assert sb.gas == 1000
    assert sb.heap_size == 0
    assert sb.memory.read(rw, 1) == b"\x2a"
    assert sb.call("bump", rw) == 43


def test_low_level_run_loop(mode):
    sb = mode.sandbox(ADD, gas=1000)
    sb.prepare_call("add_numbers", 2, 3)
    first = sb.run()
    assert isinstance(first, Ecalli) and first.number == 0 and first.name == "get_third_number"
    assert sb.next_pc > first.pc
    sb.regs["a0"] = 40
    done = sb.run()
    assert isinstance(done, Finished)
    assert sb.regs["a0"] == 45


def test_run_reports_faults_without_raising(mode):
    sb = mode.sandbox(MEMORY, gas=50)
    sb.prepare_call("trap")
    assert isinstance(sb.run(), TrapInterrupt)
    sb.prepare_call("store", 0x7000_0000, 1)
    fault = sb.run()
    assert isinstance(fault, PageFaultInterrupt) and fault.address == 0x7000_0000
    sb.prepare_call("spin")
    assert isinstance(sb.run(), OutOfGasInterrupt)


def test_single_step(mode):
    sb = mode.sandbox(vmcore.Program.load(DATA / "sum.polkavm"), gas=1000)
    sb.prepare_call("main", 2)
    sb.set_step_tracing(True)
    pcs = []
    while True:
        r = sb.run()
        if not isinstance(r, Step):
            break
        pcs.append(r.pc)
    assert isinstance(r, Finished)
    assert pcs[0] == 0 and len(pcs) == 4 + 5 * 2 + 2
    assert sb.regs["a0"] == 1


def test_registers_view(mode):
    sb = mode.sandbox(ADD)
    sb.regs["t0"] = 5
    assert sb.regs[2] == 5 and sb.regs["r2"] == 5
    sb.regs[12] = -1
    assert sb.regs["a5"] == 0xFFFFFFFFFFFFFFFF
    assert len(list(sb.regs)) == 13
    with pytest.raises(KeyError):
        sb.regs["x9"]
    with pytest.raises(IndexError):
        sb.regs[13]


def test_context_manager_and_closed_errors(mode):
    with mode.sandbox(ADD) as sb:
        assert sb.isolation == mode.isolation
        assert (sb.pid is None) == (mode.isolation == "inline")
    assert sb.closed
    with pytest.raises(vmcore.SandboxError):
        sb.call("add_numbers", 1, 2)
    with pytest.raises(vmcore.SandboxError):
        sb.memory.read(0x20000, 1)


def test_parallel_sandboxes_in_threads(mode):
    prog = vmcore.Program.load(DATA / "sum.polkavm")
    results = {}

    def work(i):
        sb = mode.sandbox(prog)
        results[i] = sb.call("main", 200_000 + i)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(4):
        n = 200_000 + i
        assert results[i] == sum((k * k) % 1000000007 for k in range(n)) % (1 << 64)


def test_same_sandbox_from_two_threads_is_refused(mode):
    prog = vmcore.Program.load(DATA / "sum.polkavm")
    sb = mode.sandbox(prog)
    errors = []
    started = threading.Event()

    def long_call():
        started.set()
        sb.call("main", 30_000_000)

    t = threading.Thread(target=long_call)
    t.start()
    started.wait()
    time.sleep(0.02)
    try:
        sb.call("main", 10)
    except vmcore.SandboxBusy as e:
        errors.append(e)
    t.join()
    assert errors, "a concurrent call on one sandbox must raise SandboxBusy"
    assert sb.call("main", 10) == 285


def test_reentrant_call_from_hostcall_is_refused(mode):
    sb = mode.sandbox(ADD)

    def reenter(caller):
        caller.sandbox.call("add_numbers", 1, 2)

    sb.register_hostcall("get_third_number", reenter)
    with pytest.raises(vmcore.HostcallError) as e:
        sb.call("add_numbers", 1, 2)
    assert isinstance(e.value.__cause__, vmcore.SandboxBusy)


def test_bundled_programs_run(mode):
    sieve = vmcore.Program.load(DATA / "sieve.polkavm")
    sb = mode.sandbox(sieve)
    assert sb.call("main", 100_000, sb.memory_map.rw_data_address) == 9592
    hc = vmcore.Program.load(DATA / "hostcall.polkavm")
    n = []
    sb = mode.sandbox(hc, hostcalls={"inc": lambda c: n.append(1)})
    sb.call("main", 1000)
    assert len(n) == 1000


def test_latest32_registers_are_32_bit(mode):
    prog = program("""
%isa = latest32
%import echo
pub @main:
    ecalli 0
    a0 = a0 + a1
    ret
""")
    got = []

    def echo(caller, a0, a1):
        got.append((a0, a1))
        return (a0, 0x80000000)

    sb = mode.sandbox(prog, hostcalls={"echo": echo})
    assert sb.call("main", 0xFFFFFFFF, 5) == (0xFFFFFFFF + 0x80000000) & 0xFFFFFFFF
    assert got == [(0xFFFFFFFF, 5)]
    sb.regs["a0"] = 0x80000000
    assert sb.regs["a0"] == 0x80000000
    assert sb.call("main", -1, 0) == 0x7FFFFFFF


SPIN = program("""
%isa = jam_v1
%import tick
pub @spin:
@l:
    jump @l
pub @spin_with_hostcalls:
@m:
    ecalli 0
    jump @m
pub @quick:
    a0 = 7
    ret
""")


@pytest.mark.parametrize("gas", [None, 10**15])
def test_timeout_stops_a_runaway_guest(gas, mode):
    sb = mode.sandbox(SPIN, gas=gas, hostcalls={"tick": lambda c: None})
    for export in ("spin", "spin_with_hostcalls"):
        start = time.perf_counter()
        with pytest.raises(vmcore.Timeout) as e:
            sb.call(export, timeout=0.05)
        elapsed = time.perf_counter() - start
        assert 0.05 <= elapsed < 2.0  # loose: the precision is measured in perf/, not asserted
        assert e.value.pc is not None
    assert sb.call("quick", timeout=1.0) == 7
    assert sb.call("quick") == 7  # no stale deadline


def test_run_timeout_is_resumable(mode):
    sb = mode.sandbox(SPIN, gas=10**15)
    sb.prepare_call("spin")
    with pytest.raises(vmcore.Timeout):
        sb.run(timeout=0.02)
    gas = sb.gas
    with pytest.raises(vmcore.Timeout):
        sb.run(timeout=0.02)
    assert sb.gas < gas  # it resumed and kept spinning


def test_bad_timeout_values(mode):
    sb = mode.sandbox(SPIN)
    for bad in (0, -1, "1"):
        with pytest.raises(ValueError):
            sb.call("quick", timeout=bad)


def test_gil_is_released_while_the_guest_runs(mode):
    sb = mode.sandbox(vmcore.Program.load(DATA / "sum.polkavm"))
    done = threading.Event()
    ticks = 0

    def guest():
        sb.call("main", 50_000_000)
        done.set()

    t = threading.Thread(target=guest)
    t.start()
    while not done.is_set():
        ticks += 1
    t.join()
    # Python code kept running in this thread while the guest computed.
    assert ticks > 10_000


LIMITED = program("""
%isa = jam_v1
%stack_size = 8192
%rw_data_size = 4096
pub @f:
    ret
""")


def test_memory_limit_caps_all_guest_memory(mode):
    m = LIMITED.memory_map(4096)
    fixed = m.ro_data_size + m.rw_data_size + m.stack_size + m.aux_data_size
    assert fixed == 3 * 4096
    with mode.sandbox(LIMITED, memory_limit=fixed + 3 * 4096) as sb:
        assert sb.heap_policy.max_size == 3 * 4096
        assert sb.sbrk(2 * 4096) != 0
        assert sb.sbrk(4096) != 0
        assert sb.sbrk(1) == 0  # past the cap: as for the guest's sbrk, 0
        assert sb.heap_size == 3 * 4096
    with mode.sandbox(LIMITED, memory_limit=fixed, heap=vmcore.HeapPolicy(max_size=1 << 20)) as sb:
        assert sb.sbrk(1) == 0
    with pytest.raises(vmcore.SandboxError, match="needs .* bytes of guest memory .* memory_limit"):
        mode.sandbox(LIMITED, memory_limit=fixed - 1)
    with pytest.raises(vmcore.SandboxError, match="initial_size"):
        mode.sandbox(LIMITED, memory_limit=fixed + 4096, heap=vmcore.HeapPolicy(initial_size=8192))
    with pytest.raises(ValueError):
        mode.sandbox(LIMITED, memory_limit=-1)


def _observable(sb):
    """Everything a guest (or its host) could see of a sandbox's state."""
    m = sb.memory_map
    rw_end = m.rw_data_address + 3 * 4096  # the data, and the heap pages a grown heap would add
    pages = range(m.rw_data_address, rw_end, 4096)
    return {"regs": list(sb.regs), "gas": sb.gas, "pc": sb.pc, "heap_size": sb.heap_size,
            "access": [sb.memory.access(p) for p in pages] + [sb.memory.access(0x10000)],
            "rw": [sb.memory.read(p, 4096) for p in pages if sb.memory.access(p) != "none"],
            "stack": sb.memory.read(m.stack_address_low, m.stack_size)}


def test_reused_guest_is_indistinguishable_from_a_new_one(mode):
    """A closed sandbox's guest (inline: its engine instance; process: its
    sandbox process) goes back to a pool; the next sandbox must see none of
    the previous run: registers, memory, permissions, heap top, gas, pc."""
    pool = vmcore.SandboxPool(2) if mode.isolation == "process" else None
    options = {"pool": pool} if pool is not None else {}
    first = mode.sandbox(MEMORY, gas=10_000, **options)
    fresh = _observable(first)
    rw = first.memory_map.rw_data_address
    assert first.call("store", rw + 16, 0xDEADBEEF) == 0xDEADBEEF
    assert first.call("push", 0x1234_5678_9ABC) == 0x1234_5678_9ABC
    assert first.call("grow", 8192) != 0
    first.memory.write(rw + 4096, b"\xff" * 64)
    first.memory.protect(0x10000, 4096, "write")
    first.memory.write(0x10000, b"left over")
    for i in range(len(first.regs)):
        first.regs[i] = 0x0101_0101 * (i + 1)
    first.gas = 7
    first.prepare_call("load", rw + 16)
    assert _observable(first) != fresh
    guest = first._guest
    first.close()
    second = mode.sandbox(MEMORY, gas=10_000, **options)
    if pool is None:
        assert second._guest is guest  # really the recycled instance
    else:
        assert pool.reused == 1  # really the recycled sandbox process
    assert _observable(second) == fresh
    assert second.call("load", rw + 16) == 0
    second.close()
    if pool is not None:
        pool.close()
