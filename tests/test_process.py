"""isolation="process": the sandbox process (zygote) itself — confinement,
death and recovery, shared memory, pooling, leaks, conformance.  The whole
Sandbox API suite also runs in a sandbox process (tests/test_sandbox.py is
parametrised over both isolation modes)."""
import gc
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

import vmcore
from vmcore import _engine
from vmcore.pool import ISOLATION_FEATURES, SandboxPool
from vmcore.vectors import run_paths

import modes
from conftest import BASIC_GUEST_SOURCE, ROOT, child_processes, program

pytestmark = pytest.mark.skipif(modes.NO_PROCESS is not None, reason=str(modes.NO_PROCESS))

DATA = ROOT / "src" / "vmcore" / "data"


PROG = program(BASIC_GUEST_SOURCE)


def sandbox(**kw) -> vmcore.Sandbox:
    return vmcore.Sandbox(PROG, isolation="process", **kw)


def children_states():
    """(pid, state) of this process's children (zombies show as Z)."""
    return list(child_processes().items())


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def map_count() -> int:
    with open("/proc/self/maps") as f:
        return sum(1 for _ in f)


# -- confinement -----------------------------------------------------------

def test_own_namespaces_seccomp_and_no_privileges():
    with sandbox() as sb:
        assert sb.call("quick") == 7
        pid = sb.pid
        assert isinstance(pid, int) and pid != os.getpid()
        for ns in ("user", "pid", "mnt", "net", "ipc", "uts", "cgroup"):
            assert os.readlink(f"/proc/{pid}/ns/{ns}") != os.readlink(f"/proc/self/ns/{ns}"), ns
        status = dict(line.split(":\t", 1) for line in open(f"/proc/{pid}/status").read().splitlines()
                      if ":\t" in line)
        assert status["Seccomp"].strip() == "2"
        assert status["NoNewPrivs"].strip() == "1"
        for cap in ("CapEff", "CapPrm", "CapBnd", "CapAmb", "CapInh"):
            assert int(status[cap], 16) == 0, cap
        assert status["NSpid"].split()[-1] == "1"  # pid 1 of its own pid namespace
        # started from a sealed memfd, only its own descriptors, an empty root
        assert os.readlink(f"/proc/{pid}/exe").startswith("/memfd:vmcore-zygote")
        assert sorted(int(fd) for fd in os.listdir(f"/proc/{pid}/fd")) == [3, 4, 5, 6]
        assert os.listdir(f"/proc/{pid}/root/") == []
        limits = open(f"/proc/{pid}/limits").read()
        assert "Max processes             0" in limits
        assert "Max core file size        0" in limits


def test_isolation_report_and_strict():
    with sandbox() as sb:
        report = sb.isolation_report()
        assert set(report) == set(ISOLATION_FEATURES)
        # this machine (root, kernel 6.x) offers every protection
        assert all(report.values()), [k for k, v in report.items() if not v]
    with sandbox(strict=True) as sb:
        assert sb.call("quick") == 7
    with vmcore.Sandbox(PROG, strict=True) as sb:  # strict picks a sandbox process
        assert sb.isolation == "process"
    with pytest.raises(vmcore.SandboxError, match="strict"):
        vmcore.Sandbox(PROG, isolation="inline", strict=True)
    report = vmcore.Sandbox(PROG, isolation="inline").isolation_report()
    assert report == {} and report.fallback is None


def test_strict_refuses_a_sandbox_without_seccomp():
    pool = SandboxPool(0, _flags=_engine.FLAG_NO_SECCOMP)
    with sandbox(pool=pool) as sb:  # not strict: runs, and says what is missing
        assert sb.isolation_report()["seccomp"] is False
        assert sb.call("quick") == 7
    with pytest.raises(vmcore.SandboxError, match="seccomp"):
        sandbox(pool=pool, strict=True)
    assert not [s for s in children_states() if s[1] == "Z"]


def test_forbidden_syscall_kills_the_sandbox():
    # Test hook (host start-up flag only): the zygote attempts openat() on
    # its first run; the seccomp filter kills the whole process.
    pool = SandboxPool(0, _flags=_engine.FLAG_TEST_FORBIDDEN_SYSCALL)
    sb = sandbox(pool=pool)
    pid = sb.pid
    with pytest.raises(vmcore.SandboxError, match="SIGSYS") as e:
        sb.call("quick")
    assert str(pid) in str(e.value)
    # it stays closed, with a clear error
    with pytest.raises(vmcore.SandboxError, match="closed"):
        sb.call("quick")
    with pytest.raises(vmcore.SandboxError):
        sb.memory.read(sb.memory_map.rw_data_address, 4)
    sb.close()
    assert pid not in [p for p, _ in children_states()]


@pytest.mark.slow
def test_sandbox_dies_with_the_host():
    script = f"""
import sys, time
sys.path.insert(0, {str(ROOT / 'src')!r})
import vmcore
from vmcore import asm
p = vmcore.Program.from_bytes(asm.assemble("%isa = jam_v1\\npub @f:\\n    ret\\n"))
sb = vmcore.Sandbox(p, isolation="process")
print(sb.pid, flush=True)
time.sleep(60)
"""
    host = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        pid = int(host.stdout.readline())
        assert os.path.exists(f"/proc/{pid}")
        host.kill()
        host.wait()
        deadline = time.monotonic() + 5
        while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not os.path.exists(f"/proc/{pid}"), "the sandbox outlived its host"
    finally:
        host.kill()
        host.wait()


# -- death and recovery ----------------------------------------------------

def test_sigkill_during_a_call_raises_within_milliseconds():
    sb = sandbox()
    pid = sb.pid
    killed_at = []

    def kill():
        time.sleep(0.05)
        killed_at.append(time.monotonic())
        os.kill(pid, signal.SIGKILL)

    threading.Thread(target=kill).start()
    with pytest.raises(vmcore.SandboxError, match="SIGKILL"):
        sb.call("spin")
    latency = time.monotonic() - killed_at[0]
    assert latency < 0.5, f"took {latency * 1e3:.1f} ms to notice"
    with pytest.raises(vmcore.SandboxError, match="auto_restart"):
        sb.call("quick")
    sb.close()
    # the next sandbox works
    with sandbox() as again:
        assert again.call("quick") == 7
    assert not [s for s in children_states() if s[1] == "Z"]


def test_sandbox_killed_while_idle():
    sb = sandbox()
    assert sb.call("quick") == 7
    os.kill(sb.pid, signal.SIGKILL)
    time.sleep(0.05)
    with pytest.raises(vmcore.SandboxError, match="SIGKILL"):
        sb.call("quick")
    sb.close()


def test_auto_restart_replaces_a_dead_sandbox():
    sb = sandbox(auto_restart=True, gas=10**15)
    rw = sb.memory_map.rw_data_address
    assert sb.call("store", rw, 5) == 5
    first = sb.pid
    os.kill(first, signal.SIGKILL)
    time.sleep(0.05)
    assert sb.call("quick") == 7  # transparently on a fresh process
    assert sb.pid != first
    assert sb.memory.read_u32(rw) == 0  # a fresh instance: memory as at the start
    assert 10**15 - 10 < sb.gas < 10**15  # the initial gas, minus the call
    # dying during a call still raises for that call, then recovers
    pid = sb.pid
    threading.Timer(0.05, os.kill, (pid, signal.SIGKILL)).start()
    with pytest.raises(vmcore.SandboxError):
        sb.call("spin")
    assert sb.call("quick") == 7
    sb.close()


# -- shared memory ---------------------------------------------------------

def test_host_reads_guest_writes_directly():
    with sandbox() as sb:
        rw = sb.memory_map.rw_data_address
        seen = []

        def note(caller):
            # mid-call, while the guest waits in its process
            seen.append(caller.memory.read_u32(rw + 64))
            caller.memory.write_u32(rw + 68, 0xABCD)

        sb.register_hostcall("note", note)
        sb.call("store_then_note", rw + 64, 0x12345678)
        assert seen == [0x12345678]
        assert sb.call("store", rw + 68, 0xABCD) == 0xABCD
        assert sb.memory.read(rw + 64, 8) == bytes.fromhex("78563412cdab0000")
        # heap growth inside the sandbox is visible to the host's checks
        base = sb.memory_map.heap_base
        assert sb.call("grow", 3 * 4096) == base + 3 * 4096
        assert sb.memory.is_accessible(base, 3 * 4096, writable=True)
        sb.memory.write(base + 4096, b"host")
        assert sb.memory.read(base + 4096, 4) == b"host"


def test_counters():
    with sandbox() as sb:
        sb.call("quick")
        before = sb.counters
        for _ in range(10):
            sb.call("quick")
        after = sb.counters
        assert set(after) == {"syscall_wait_loop_start", "syscall_futex_wait", "host_wait_loop_start",
                              "host_futex_wait", "host_repin"}
        assert after["syscall_wait_loop_start"] - before["syscall_wait_loop_start"] == 10
        assert after["host_wait_loop_start"] - before["host_wait_loop_start"] == 10
    assert vmcore.Sandbox(PROG, isolation="inline").counters == {}


def test_spin_settings_can_be_tuned():
    host, sbx = _engine.spin_settings()
    try:
        _engine.configure_spin(host=0, sandbox=0)  # wait at once: futex every time
        with sandbox() as sb:
            before = sb.counters
            # one futex sleep is enough; a loaded machine can let a few
            # answers arrive before the host even looks (no wait at all)
            for _ in range(200):
                assert sb.call("quick") == 7
            after = sb.counters
            assert after["host_futex_wait"] > before["host_futex_wait"]
    finally:
        _engine.configure_spin(host=host, sandbox=sbx)


# -- pooling ---------------------------------------------------------------

def test_recycled_sandboxes_are_wiped():
    pool = SandboxPool(1)
    sb = sandbox(pool=pool, gas=100)
    rw = sb.memory_map.rw_data_address
    sb.call("store", rw + 8, 0xFEEDFACE)
    base = sb.memory_map.heap_base
    sb.call("grow", 4096)
    sb.memory.write(base, b"secret")
    sb.regs["s0"] = 42
    pid = sb.pid
    sb.close()
    assert len(pool) == 1
    other = vmcore.Sandbox(program("%isa = latest64\n%rw_data_size = 4096\npub @f:\n    ret\n"),
                           isolation="process", pool=pool, gas=50)
    assert other.pid == pid  # the same process, reused
    assert other.memory.read(rw, 4096) == bytes(4096)
    assert not other.memory.is_accessible(base, 1)  # the old heap is gone
    assert other.regs["s0"] == 0 and other.gas == 50 and other.heap_size == 0
    other.close()
    pool.close()
    assert len(pool) == 0


def test_pool_prestart_and_no_recycling():
    pool = SandboxPool(2, recycle=False)
    pool.prestart()
    assert len(pool) == 2
    started = pool.started
    sb = sandbox(pool=pool)
    assert pool.started == started and len(pool) == 1  # from the pool: no process start-up
    pid = sb.pid
    sb.close()
    assert len(pool) == 1 and pid not in [p for p, _ in children_states()]  # not reused
    pool.close()


def test_switching_programs_on_one_zygote():
    pool = SandboxPool(1)
    other = program("%isa = jam_v1\npub @f:\n    a0 = 99\n    ret\n")
    for _ in range(3):
        with sandbox(pool=pool) as sb:
            assert sb.call("quick") == 7
        with vmcore.Sandbox(other, isolation="process", pool=pool) as sb:
            assert sb.call("f") == 99
    assert pool.started == 1
    pool.close()


@pytest.mark.slow
def test_thousands_of_create_close_cycles_leak_nothing():
    pool = SandboxPool(2)
    for _ in range(20):  # warm up (module, pool)
        sandbox(pool=pool).close()
    assert pool.started == 1  # closed sandboxes' processes are recycled
    gc.collect()
    pool.drain()  # compare without idle pooled processes (the pool keeps up to 2)
    fds, maps = fd_count(), map_count()
    for i in range(2000):
        sb = sandbox(pool=pool, gas=10_000)
        if i % 10 == 0:
            sb.call("quick")
        if i % 2:
            sb.close()
        else:
            del sb  # the __del__ safety net
    gc.collect()
    pool.drain()
    assert fd_count() == fds
    assert map_count() == maps
    pool.close()
    # and fresh processes each time: no zombies, nothing left behind
    fresh = SandboxPool(0)
    for _ in range(100):
        with sandbox(pool=fresh) as sb:
            sb.call("quick")
    gc.collect()
    assert not [s for s in children_states() if s[1] == "Z"]
    pool.close()
    fresh.close()
    gc.collect()
    assert fd_count() <= fds and map_count() <= maps


# -- conformance -----------------------------------------------------------

@pytest.mark.slow
def test_all_vectors_pass_in_a_sandbox_process():
    results = run_paths([str(ROOT / "tests" / "vectors")], isolation="process")
    assert len(results) > 300
    failed = [(r.name, r.diffs[:3]) for r in results if not r.ok]
    assert not failed, failed[:5]


def test_bundled_programs_agree_with_inline():
    sieve = vmcore.Program.load(DATA / "sieve.polkavm")
    results = []
    for isolation in ("inline", "process"):
        sb = vmcore.Sandbox(sieve, isolation=isolation, gas=10**9)
        results.append((sb.call("main", 50_000, sb.memory_map.rw_data_address), sb.gas,
                        sb.memory.read(sb.memory_map.rw_data_address, 4096)))
        sb.close()
    assert results[0] == results[1]


# -- threads and fork --------------------------------------------------------

def test_close_from_another_thread_during_a_call():
    sb = sandbox()
    threading.Timer(0.05, sb.close).start()
    with pytest.raises(vmcore.SandboxError, match="closed"):
        sb.call("spin")
    assert sb.closed
    assert not [s for s in children_states() if s[1] == "Z"]


def test_hostcall_closing_its_own_sandbox():
    sb = sandbox()
    sb.register_hostcall("note", lambda caller: caller.sandbox.close())
    with pytest.raises(vmcore.SandboxError, match="closed"):
        sb.call("store_then_note", sb.memory_map.rw_data_address, 1)
    with pytest.raises(vmcore.SandboxError):
        sb.call("quick")


def test_fork_child_cannot_drive_the_parents_sandbox():
    sb = sandbox()
    rw = sb.memory_map.rw_data_address
    assert sb.call("store", rw, 0x5A5A) == 0x5A5A
    pid = os.fork()
    if pid == 0:  # child
        code = 0
        try:
            try:
                sb.call("quick")
                code = 1
            except vmcore.SandboxError:
                pass
            with sandbox() as mine:  # its own sandboxes work
                if mine.call("quick") != 7:
                    code = 2
            sb.close()  # forgets the parent's process, does not kill it
        except BaseException:
            code = 3
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert sb.call("quick") == 7  # the parent's sandbox is unharmed
    assert sb.memory.read_u32(rw) == 0x5A5A
    sb.close()


def test_stop_and_continue_is_survived():
    # A stopped-then-continued futex wait resumes through restart_syscall,
    # which the seccomp filter must allow.
    with sandbox() as sb:
        assert sb.call("quick") == 7
        time.sleep(0.05)  # let the zygote fall asleep in futex_wait
        os.kill(sb.pid, signal.SIGSTOP)
        time.sleep(0.02)
        os.kill(sb.pid, signal.SIGCONT)
        time.sleep(0.02)
        assert sb.call("quick") == 7
        assert sb.isolation_report()["seccomp"]


def test_sandbox_dying_under_a_hostcall():
    for auto_restart in (False, True):
        sb = sandbox(auto_restart=auto_restart)
        rw = sb.memory_map.rw_data_address

        def note(caller):
            os.kill(caller.sandbox.pid, signal.SIGKILL)
            time.sleep(0.05)
            try:
                caller.memory.read(rw, 4)  # notices the death; never restarts mid-call
            except vmcore.SandboxError:
                pass
            return 1

        sb.register_hostcall("note", note)
        with pytest.raises(vmcore.SandboxError, match="SIGKILL"):
            sb.call("store_then_note", rw, 1)
        if auto_restart:
            assert sb.call("quick") == 7
        else:
            with pytest.raises(vmcore.SandboxError):
                sb.call("quick")
        sb.close()


@pytest.mark.parametrize("backend", ["interpreter", "compiler"])
def test_stopped_sandbox_fails_the_call_instead_of_hanging(backend):
    """SIGSTOP: without a deadline the host notices the stopped process
    (~0.3 s) and kills it; with one it stops waiting shortly after the
    deadline plus the interrupt grace.  Either way SandboxError, and the
    next sandbox works."""
    for timeout in (None, 0.05):
        sb = vmcore.Sandbox(PROG, backend=backend, isolation="process")
        os.kill(sb.pid, signal.SIGSTOP)
        t0 = time.monotonic()
        with pytest.raises(vmcore.SandboxError, match="stopped|did not stop"):
            sb.call("quick", timeout=timeout)
        assert time.monotonic() - t0 < 3.0
        sb.close()
    with vmcore.Sandbox(PROG, backend=backend, isolation="process") as sb:
        assert sb.call("quick") == 7


@pytest.mark.parametrize("backend", ["interpreter", "compiler"])
def test_deadline_in_process_mode(backend):
    with vmcore.Sandbox(PROG, backend=backend, isolation="process") as sb:
        for _ in range(3):
            t0 = time.monotonic()
            with pytest.raises(vmcore.Timeout) as info:
                sb.call("spin", timeout=0.02)
            elapsed = time.monotonic() - t0
            assert 0.02 <= elapsed < 0.02 + 0.2  # typically < 1 ms late; slack for a loaded CI machine
            assert info.value.pc is not None
        assert sb.call("quick") == 7


@pytest.mark.parametrize("backend", ["interpreter", "compiler"])
def test_recycled_sandbox_forgets_pages_mapped_outside_the_layout(backend):
    """Pages the host made accessible beyond the program's layout (and what
    was written there) do not survive into the next sandbox of the pool."""
    pool = SandboxPool(1)
    try:
        page = 0x40000000  # far from the program's layout
        with vmcore.Sandbox(PROG, backend=backend, isolation="process", pool=pool) as sb:
            pid = sb.pid
            sb._guest.set_perms(page, 4096, 2)
            sb.memory.write(page, b"\x29" * 16)
        with vmcore.Sandbox(PROG, backend=backend, isolation="process", pool=pool) as sb:
            assert sb.pid == pid  # the same process, recycled
            assert not sb.memory.is_accessible(page, 1)
            assert sb._guest.read(page, 16) == bytes(16)
    finally:
        pool.close()


def test_inline_instance_scrub_covers_granted_pages():
    from vmcore import _engine
    prog = program("%isa = jam_v1\npub @f:\n    ret\n")
    module = _engine.CompiledModule(prog.isa_index, prog.code, prog.bitmask, prog.jump_table, True)
    inst = _engine.Instance(module, 4096)
    inst.set_perms(0x30000, 4096, 2)
    inst.write(0x30000, b"secret")
    inst.scrub([])
    assert inst.perm(0x30000) == 0 and inst.read(0x30000, 6) == bytes(6)


@pytest.mark.parametrize("native", [False, True])
def test_shared_modules_are_sealed(native):
    """A module's memfd can be neither written nor mapped writable (by the
    host or by a sandbox that got hold of it), nor resized."""
    import mmap
    if native and modes.NO_NATIVE_CODE is not None:
        pytest.skip(modes.NO_NATIVE_CODE)
    program = vmcore.Program.load(DATA / "sieve.polkavm")
    name = "vmcore-native" if native else "vmcore-module"

    def memfds():
        found = set()
        for fd in os.listdir("/proc/self/fd"):
            try:
                if name in os.readlink(f"/proc/self/fd/{fd}"):
                    found.add(int(fd))
            except FileNotFoundError:  # the listing's own descriptor
                pass
        return found

    _engine.drain_module_memory()  # a new memfd, not a pooled one
    before = memfds()
    module = _engine.SharedModule(program.isa_index, program.code, program.bitmask, program.jump_table, True,
                                   False, native)
    fds = sorted(memfds() - before)
    assert len(fds) == 1, fds
    fd = fds[0]
    size = os.fstat(fd).st_size  # the memfd's capacity: the module is its first module.size bytes
    assert size >= module.size
    with pytest.raises(PermissionError):
        os.pwrite(fd, b"\xcc", 4096)
    with pytest.raises(PermissionError):
        mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
    with pytest.raises(PermissionError):
        os.ftruncate(fd, size + 4096)
    ro = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ)
    assert ro[:4] == b"VMSM"
    ro.close()
    del module
