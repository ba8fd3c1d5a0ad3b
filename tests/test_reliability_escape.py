"""Reliability: guest loads/stores/jumps at hostile addresses, hostile host
memory ranges, nothing crossing between sandboxes, and the sandbox
process's confinement whatever way it was obtained.
Shared guest and helpers: tests/reliability.py."""
import os
import signal
import tempfile
import time

import pytest

import vmcore
from vmcore.pool import SandboxPool

import modes
from reliability import COMPILER, GUEST, M64, PAGE, PROCESS, RW_SIZE, close_pool, new_sandbox, Target
from reliability import report_figures  # noqa: F401 (autouse: prints the figures measured here)


# == 5. escape attempts =======================================================

HOSTILE = [
    0, 8, 0xFFFF, 1 << 32,                      # the low zone (also after truncation to 32 bits)
    "ro+PAGE", "rw_end-4", "rw_end-1", "rw_end", "heap",  # just past mapped regions, straddling their ends
    "stack_low-1", "stack_high-4", "stack_high",
    0xFFFF0000,                                 # the return-to-host address
    0xFFFFFFF8, 0xFFFFFFFC, 0xFFFFFFFF,         # wrapping past 4 GiB
    M64 - 7, 0x7FFF_FFFF_F000, 0xDEAD_0000_0000_1234,  # 64-bit values, host-looking pointers: truncated
    "rw+4GiB", "ro+4GiB",                       # truncate into mapped regions
]


def _resolve(address, m):
    if isinstance(address, int):
        return address
    rw_end = m.rw_data_address + m.rw_data_size
    return {"ro+PAGE": m.ro_data_address + PAGE, "rw_end-4": rw_end - 4, "rw_end-1": rw_end - 1, "rw_end": rw_end,
            "heap": m.heap_base, "stack_low-1": m.stack_address_low - 1, "stack_high-4": m.stack_address_high - 4,
            "stack_high": m.stack_address_high, "rw+4GiB": (1 << 32) + m.rw_data_address,
            "ro+4GiB": (1 << 32) + m.ro_data_address}[address]


def _expected(address: int, size: int, write: bool, m):
    """What the guest must see: "ok", "trap" or ("fault", page) -- the
    reference semantics for this guest's memory map (nothing but ro data,
    rw data and the stack is mapped)."""
    a = address & 0xFFFFFFFF
    if a + size > 0xFFFFFFFF:  # checked_add overflows: the (unmapped) top page faults
        return ("fault", 0xFFFFF000)
    mapped = [(m.ro_data_address, m.ro_data_address + m.ro_data_size, False),
              (m.rw_data_address, m.rw_data_address + m.rw_data_size, True),
              (m.stack_address_low, m.stack_address_high, True)]
    for page in sorted({a & ~(PAGE - 1), (a + size - 1) & ~(PAGE - 1)}):
        if not any(lo <= page < hi and (writable or not write) for lo, hi, writable in mapped):
            return "trap" if page < 0x10000 else ("fault", page)
    return "ok"


@pytest.mark.parametrize("mode", modes.params())
def test_guest_accesses_at_hostile_addresses(mode):
    sb = new_sandbox(mode, gas=10**12)
    m = sb.memory_map
    rw = m.rw_data_address
    sb.memory.write_u64(rw, 0x0123456789ABCDEF)
    checked = 0
    for name in HOSTILE + [id(sb), id(sb) + 4096 * 7]:  # real host pointers too
        address = _resolve(name, m)
        for export, size, write in (("load64", 8, False), ("store64", 8, True), ("load8", 1, False),
                                    ("store8", 1, True)):
            want = _expected(address, size, write, m)
            before = sb.memory.read(address & 0xFFFFFFFF, size) if want == "ok" else None
            try:
                result = sb.call(export, address, 0x5A5A5A5A5A5A5A5A)
                got = "ok"
            except (vmcore.Trap, vmcore.PageFault) as e:
                got = "trap" if isinstance(e, vmcore.Trap) else ("fault", e.address)
                assert e.pc == GUEST.exports[export]
            assert got == want, (export, hex(address), got, want)
            if got == "ok" and not write:  # guest memory at address & 0xffffffff, never host memory
                assert result == int.from_bytes(before, "little")
            if got == "ok" and write:
                assert sb.memory.read(address & 0xFFFFFFFF, size) == b"\x5a" * size
            checked += 1
    assert checked == 4 * (len(HOSTILE) + 2)
    # dynamic jumps anywhere are traps; to the return address, a normal return
    for address in (0, 2, 0xFFFFFFFF, M64, 0x7FFF_FFFF_F000, 1 << 32, id(sb)):
        with pytest.raises(vmcore.Trap):
            sb.call("jump_to", address)
    assert sb.call("jump_to", 0xFFFF0000) == 0xFFFF0000
    # memset: the count is 32-bit; huge ones write up to the first unmapped page and fault there
    sb.memory.write_u64(rw, 0x0123456789ABCDEF)
    assert sb.call("memset", rw, 0x11, 1 << 40) == rw  # count & 0xffffffff == 0: nothing written
    assert sb.memory.read(rw, 8) == bytes.fromhex("efcdab8967452301")
    with pytest.raises(vmcore.PageFault) as e:
        sb.call("memset", rw, 0x22, M64)
    assert e.value.address == rw + RW_SIZE
    assert sb.memory.read(rw, RW_SIZE) == b"\x22" * RW_SIZE
    with pytest.raises(vmcore.PageFault) as e:
        sb.call("memset", 0xFFFFFFF0, 1, 0x20)
    assert e.value.address == 0xFFFFF000
    with pytest.raises(vmcore.Trap):
        sb.call("memset", 0, 1, 5)
    with pytest.raises(vmcore.PageFault) as e:
        sb.call("memset", m.ro_data_address, 1, 1)
    assert e.value.address == m.ro_data_address
    assert sb.call("load8", m.ro_data_address) == 1
    assert sb.call("quick") == 7  # after all that the sandbox works
    sb.close()


@pytest.mark.parametrize("mode", modes.params())
def test_host_memory_api_rejects_hostile_ranges(mode):
    sb = new_sandbox(mode)
    rw = sb.memory_map.rw_data_address
    for address, length in [(-1, 1), (0, 1), (rw, RW_SIZE + 1), (0xFFFFFFFF, 2), (1 << 32, 1), (rw, 1 << 40),
                            (0xFFFFFFF8, 8), (rw - 1, 2), (1 << 64, 1), (rw, -1)]:
        with pytest.raises(vmcore.MemoryAccessError):
            sb.memory.read(address, length)
        with pytest.raises(vmcore.MemoryAccessError):
            sb.memory.zero(address, length)
        if 0 < length <= RW_SIZE + 1:
            with pytest.raises(vmcore.MemoryAccessError):
                sb.memory.write(address, b"x" * length)
    with pytest.raises(TypeError):
        sb.memory.read(1.5, 1)
    assert sb.memory.read(rw, RW_SIZE) == bytes(RW_SIZE)  # nothing was touched
    sb.close()


def _stray_pages(sb) -> list:
    """Pages the guest could access outside its own layout and heap (a
    whole-address-space scan of the permission map; test-only access)."""
    inst = sb._guest
    heap = sb.memory_map.heap_base, sb.memory_map.heap_base + sb.heap_size
    spans = [(r.address, r.address + r.size) for r in sb._backend.regions] + [heap]
    return [hex(a) for a in range(0, 1 << 32, PAGE)
            if inst.perm(a) and not any(lo <= a < hi for lo, hi in spans)]


@pytest.mark.parametrize("mode", modes.params())
def test_nothing_crosses_between_sandboxes(mode):
    """Recycled instances / processes start wiped: a new sandbox's guest sees
    none of its predecessor's rw data, heap or stack."""
    pool = SandboxPool(1) if mode.isolation != "inline" else None
    kw = {"pool": pool} if pool else {}
    capped = vmcore.HeapPolicy(max_size=8 * PAGE)
    a = new_sandbox(mode, heap=capped, **kw)
    m = a.memory_map
    assert a.call("grow_touch", PAGE) == 8
    assert a.call("fill", m.rw_data_address, 0xAB, 1, RW_SIZE) == 0
    a.memory.write(m.stack_address_low, b"\xCD" * PAGE)
    pid = a.pid
    a.close()
    b = new_sandbox(mode, heap=capped, **kw)
    if pool is not None:
        assert b.pid == pid  # the same process, recycled
    assert _stray_pages(b) == []
    for address in range(m.rw_data_address, m.rw_data_address + RW_SIZE, 512):
        assert b.call("load64", address) == 0
    assert b.call("load64", m.stack_address_low) == 0
    with pytest.raises(vmcore.PageFault):
        b.call("load8", m.heap_base)  # the old heap is gone
    assert b.heap_size == 0
    assert b.call("grow_touch", PAGE) == 8
    assert b.call("load64", m.heap_base) == 0  # and a new one starts zeroed
    b.close()
    if pool is not None:
        close_pool(pool)


def _zygote_facts(pid: int) -> dict:
    status = dict(line.split(":\t", 1) for line in open(f"/proc/{pid}/status").read().splitlines() if ":\t" in line)
    try:
        root = os.listdir(f"/proc/{pid}/root/")
    except OSError:
        root = []  # inaccessible is as good as empty
    try:
        fds = {int(fd): os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
    except OSError:
        fds = None
    return {"status": status, "root": root, "fds": fds,
            "ns": {ns: os.readlink(f"/proc/{pid}/ns/{ns}") for ns in ("user", "pid", "mnt", "net", "ipc", "uts")}}


def _assert_confined(pid: int, host_file: str) -> None:
    facts = _zygote_facts(pid)
    for ns, link in facts["ns"].items():
        assert link != os.readlink(f"/proc/self/ns/{ns}"), f"shares the host's {ns} namespace"
    status = facts["status"]
    assert status["Seccomp"].strip() == "2"
    assert status["NoNewPrivs"].strip() == "1"
    for cap in ("CapEff", "CapPrm", "CapBnd", "CapAmb", "CapInh"):
        assert int(status[cap], 16) == 0, cap
    assert status["NSpid"].split()[-1] == "1"  # pid 1 of its own pid namespace
    assert facts["root"] == []
    if facts["fds"] is not None:
        assert len(facts["fds"]) <= 5, facts["fds"]
        assert all(fd > 2 for fd in facts["fds"]), facts["fds"]  # not even the host's stdin/out/err
        assert not [t for t in facts["fds"].values() if host_file in t], "inherited a host descriptor"


@pytest.mark.parametrize("origin", ["fresh", "recycled", "auto_restart replacement", "pre-started", "default pool",
                                    "after guest faults", "compiler"])
def test_every_sandbox_process_is_confined(origin):
    if origin == "compiler" and modes.unavailable(COMPILER):
        pytest.skip(modes.unavailable(COMPILER))
    mode = COMPILER if origin == "compiler" else PROCESS
    # an inheritable host descriptor that must not reach the sandbox
    with tempfile.NamedTemporaryFile(prefix="vmcore-host-secret-") as secret:
        fd = os.open(secret.name, os.O_RDONLY)
        os.set_inheritable(fd, True)
        pool = SandboxPool(2, min_idle=2 if origin == "pre-started" else 0)
        try:
            kw = {} if origin == "default pool" else {"pool": pool}
            sb = new_sandbox(mode, **kw)
            if origin == "recycled":
                pid = sb.pid
                sb.close()
                sb = new_sandbox(mode, **kw)
                assert sb.pid == pid
            elif origin == "auto_restart replacement":
                sb.close()
                sb = new_sandbox(mode, auto_restart=True, **kw)
                old = Target(sb.pid)
                old.signal(signal.SIGKILL)
                assert old.wait_exited(2.0)
                assert sb.call("quick") == 7
                assert sb.pid != old.pid
                old.close()
            elif origin == "pre-started":
                deadline = time.monotonic() + 5
                while len(pool) < 1 and time.monotonic() < deadline:
                    time.sleep(0.005)
                sb.close()
                sb = new_sandbox(mode, **kw)  # one the refill thread started
            elif origin in ("after guest faults", "compiler"):
                with pytest.raises(vmcore.PageFault):
                    sb.call("store64", 0xFFFFFFF8, 1)
                with pytest.raises(vmcore.Trap):
                    sb.call("jump_to", 12345)
                with pytest.raises(vmcore.Timeout):
                    sb.call("spin", timeout=0.01)
            assert sb.call("quick") == 7
            _assert_confined(sb.pid, secret.name)
            assert all(sb.isolation_report().values()), sb.isolation_report()
            sb.close()
        finally:
            close_pool(pool)
            os.close(fd)
