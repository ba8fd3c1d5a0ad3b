"""Shared by the reliability suites (issue #8): the guest, hang guards,
signal helpers, leak snapshots and the measured-figures report.

Every scenario must end in a typed vmcore exception (or a normal result),
never a hang or a host crash; the host keeps working, later sandboxes work,
and nothing leaks (descriptors, mappings, child processes, threads, memory).

- test_reliability_kill.py: 1. sandbox processes killed (SIGKILL, fatal
  signals, SIGSTOP) mid-guest, mid-hostcall, from inside a hostcall, while
  idle; a kill storm that counts the outcomes;
- test_reliability_pool.py: 2. pool exhaustion; 3. closing from other threads;
- test_reliability_hostcalls.py: 4. hostcalls that raise or return nonsense;
- test_reliability_escape.py: 5. guest loads/stores/jumps at hostile
  addresses; the sandbox process's confinement whatever way it was
  obtained (fresh, recycled, restarted, pre-started, ...);
- test_reliability_limits.py: 6. create/call/close cycles (and the kill
  storm) leak nothing; 7. heap caps (HeapPolicy) bound what a guest can make
  the host allocate; 8. deadline precision of call(timeout=).

Modes: "inline" (interpreter in this process), "process" (interpreter in a
sandbox process) and "compiler" (native code in a sandbox process, when the
CPU supports it).  Every call that could hang runs under a guard: a hang
fails the test (after unblocking the call by SIGKILLing the sandbox
process) instead of blocking CI.  Signals go through pidfds, so a recycled
pid is never hit.  Measured figures (deadline overshoot, kill-storm
outcomes, leak deltas) are printed at the end of each module
(``pytest -s tests/test_reliability_*.py``).
"""
import collections
import gc
import os
import select
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import vmcore
from vmcore import abi
from vmcore import pool as pool_module
from vmcore.pool import SandboxPool

import modes
from conftest import PROBE_EXPORTS, ROOT, child_processes, program

INLINE, PROCESS, COMPILER = (modes.BY_NAME[name] for name in ("inline", "process", "compiler"))

PAGE = abi.DEFAULT_PAGE_SIZE
RW_SIZE = 8192
M64 = (1 << 64) - 1
FIGURES = collections.OrderedDict()  # measured numbers, printed at the end


GUEST = program(f"""
%isa = latest64
%ro_data_size = 4096
%ro_data = 0102030405060708
%rw_data_size = {RW_SIZE}
%stack_size = 8192
%import note
{PROBE_EXPORTS}// a hostcall per iteration, forever
pub @hloop:
@hloop_again:
    ecalli 0
    jump @hloop_again
// one hostcall; returns what it left in a0
pub @hcall:
    ecalli 0
    ret
// a finite loop: a0 iterations
pub @count:
@count_again:
    a0 = a0 - 1
    jump @count_again if a0 != 0
    ret
pub @load8:
    a0 = u8 [a0]
    ret
pub @load64:
    a0 = u64 [a0]
    ret
pub @store8:
    u8 [a0] = a1
    ret
pub @store64:
    u64 [a0] = a1
    ret
pub @jump_to:
    jump [a0]
pub @memset:
    [a0..a0 + a2] = u8 a1
    ret
// sbrk(a0) until it returns 0; returns how many succeeded
pub @sbrk_until_full:
    a1 = 0
    jump @grow
// the same, writing the last byte of every new step (touching the pages)
pub @grow_touch:
    a1 = 1
@grow:
    s0 = 0
    s1 = a0
@grow_again:
    a0 = sbrk s1
    jump @full if a0 == 0
    jump @counted if a1 == 0
    a2 = a0 - 1
    u8 [a2] = 1
@counted:
    s0 = s0 + 1
    jump @grow_again
@full:
    a0 = s0
    ret
// write a1 to every a2-th byte of [a0, a0 + a3)
pub @fill:
    a3 = a0 + a3
@fill_again:
    jump @filled if a0 >=u a3
    u8 [a0] = a1
    a0 = a0 + a2
    jump @fill_again
@filled:
    a0 = 0
    ret
""")

SPIN_PC = GUEST.exports["spin"]
HLOOP_PCS = range(GUEST.exports["hloop"], GUEST.exports["hcall"])  # where a deadline can stop hloop


# -- helpers ---------------------------------------------------------------

def new_sandbox(mode: modes.Mode, **kw) -> vmcore.Sandbox:
    return mode.sandbox(GUEST, **kw)


def hostcall_returning(value):
    """A hostcall taking a0 and returning ``value`` (a lambda with a default
    argument would take a1 too: a hostcall's signature says how many
    registers it is passed)."""
    def note(caller, a0):
        return value
    return note


def increment(caller, a0):
    return a0 + 1


def nothing(caller):
    return None


class Target:
    """One sandbox process addressed through a pidfd: never signals a
    recycled pid, can wait for the process to be gone."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.fd = os.pidfd_open(pid)

    def signal(self, sig: int) -> bool:
        try:
            signal.pidfd_send_signal(self.fd, sig)
            return True
        except (ProcessLookupError, OSError):
            return False

    def wait_exited(self, timeout: float = 2.0) -> bool:
        return bool(select.select([self.fd], [], [], timeout)[0])

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def signal_current(sb: vmcore.Sandbox, sig: int):
    """Signal whatever process the sandbox has now; (time, pid) or None."""
    try:
        pid = sb.pid
    except Exception:
        return None
    if pid is None:
        return None
    try:
        fd = os.pidfd_open(pid)
    except OSError:
        return None
    try:
        if sb.pid != pid:  # reaped meanwhile: the pidfd may name another process
            return None
        signal.pidfd_send_signal(fd, sig)
        return time.monotonic(), pid
    except (ProcessLookupError, OSError, AttributeError):
        return None
    finally:
        os.close(fd)


class Killer:
    """From another thread, after ``delay`` s: each (signal, gap) of
    ``steps``, then ``final`` at the sandbox's current process, again
    whenever that process changes, until stop().  (With auto_restart a
    process killed before the call began is replaced, and the call must not
    then spin forever on the new one.)"""

    def __init__(self, sb, delay: float, final: int, steps=()) -> None:
        self.sb, self.delay, self.final, self.steps = sb, delay, final, steps
        self.sent = []  # (time, pid) of every `final` signal sent
        self.targets = {}  # pid -> Target of every process signalled
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="killer", daemon=True)

    def start(self) -> "Killer":
        self._thread.start()
        return self

    def _run(self) -> None:
        if self._done.wait(self.delay):
            return
        for sig, gap in self.steps:
            self._signal(sig)
            if self._done.wait(gap):
                return
        last = None
        while not self._done.is_set():
            try:
                pid = self.sb.pid
            except Exception:
                return
            if pid is not None and pid != last:
                sent = self._signal(self.final)
                if sent is not None:
                    self.sent.append(sent)
                    last = pid
            self._done.wait(0.0005)

    def _signal(self, sig):
        try:
            pid = self.sb.pid
            target = self.targets.get(pid) or Target(pid)
        except Exception:
            return None
        self.targets[pid] = target
        try:
            if self.sb.pid != pid:  # reaped meanwhile: the pidfd may name another process
                return None
        except Exception:
            return None
        return (time.monotonic(), pid) if target.signal(sig) else None

    def settle(self) -> None:
        """After stop(): wait until every process killed is gone (a process
        that finished its call before the signal landed must not be
        recycled to the next sandbox), continue stopped ones, close."""
        for target in self.targets.values():
            if self.final == signal.SIGSTOP:
                target.signal(signal.SIGCONT)
            else:
                assert target.wait_exited(2.0), f"pid {target.pid} outlived {signal.Signals(self.final).name}"
            target.close()

    def stop(self) -> None:
        self._done.set()
        self._thread.join()

    @property
    def first_sent(self):
        return self.sent[0][0] if self.sent else None


def guarded(fn, limit: float, rescue=None, what: str = "the call"):
    """Run ``fn()`` in a thread; returns (result, exception, seconds).  If it
    is still running after ``limit`` seconds, ``rescue()`` is called (it must
    unblock fn, e.g. SIGKILL the sandbox process) and the test fails."""
    box = {}

    def target():
        start = time.monotonic()
        try:
            box["result"] = fn()
        except BaseException as e:  # noqa: B902 - handed to the test
            box["error"] = e
        box["seconds"] = time.monotonic() - start

    t = threading.Thread(target=target, name="guarded-call", daemon=True)
    t.start()
    t.join(limit)
    if t.is_alive():
        if rescue is not None:
            rescue()
        t.join(5.0)
        pytest.fail(f"{what} did not return within {limit} s (hang)" +
                    ("; it is STILL running" if t.is_alive() else ""))
    return box.get("result"), box.get("error"), box["seconds"]


def kill_rescue(sb):
    return lambda: signal_current(sb, signal.SIGKILL)


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def open_fds() -> dict:
    out = {}
    for fd in os.listdir("/proc/self/fd"):
        try:
            out[int(fd)] = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            pass
    return out


def map_count() -> int:
    with open("/proc/self/maps") as f:
        return sum(1 for _ in f)


def status_kib(field: str, pid="self") -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def rss_mib() -> float:
    return status_kib("VmRSS") / 1024


def children():
    """{pid: state} of this process's children (zombies are 'Z')."""
    return child_processes()


def zombies():
    return [pid for pid, state in children().items() if state == "Z"]


def pooled_pids():
    """Pids of idle processes held by any pool (the default pool's too)."""
    pids = set()
    for pool in list(pool_module._POOLS):
        for zy in list(pool._idle):
            if zy.pid is not None:
                pids.add(zy.pid)
    return pids


def close_pool(pool: SandboxPool) -> None:
    """Close a pool and wait for its refill thread.  (Works around the
    refill-after-close bug, see test_closing_a_pool_with_min_idle_keeps_no_process,
    so the other tests measure what they are about.)"""
    pool.close()
    if pool._refiller is not None:
        pool._refiller.join(5.0)
    pool.drain()


def warm_thread_stacks(n: int = 10) -> None:
    """glibc caches exited threads' stacks (each a mapping): run n threads
    at once so later threads reuse cached stacks and map counts compare."""
    barrier = threading.Barrier(n)
    threads = [threading.Thread(target=barrier.wait) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


_warmed = []


def warm_caches() -> None:
    """One-time state that is not a leak: the zygote image memfd and, per
    program and configuration, the compiled module's memfd."""
    if _warmed:
        return
    pool = SandboxPool(0)
    for mode in modes.available():
        for gas in (None, 10**6):
            kw = {"pool": pool} if mode.isolation != "inline" else {}
            with new_sandbox(mode, gas=gas, **kw) as sb:
                sb.call("quick", timeout=1.0)  # (the watchdog thread starts once)
    pool.close()
    _warmed.append(True)


class Snapshot:
    """Process-wide resources, compared before and after a workload."""

    def __init__(self) -> None:
        warm_caches()
        warm_thread_stacks()
        gc.collect()
        # closed inline sandboxes' instances are kept on purpose (not a
        # leak); earlier tests' ones move in and out of that pool as their
        # Programs die, each with its own mappings: both sides start empty
        pool_module._INSTANCES.clear()
        gc.collect()
        default = SandboxPool._default
        if default is not None and default._refiller is not None and default._refill.is_set():
            time.sleep(0.05)  # let the default pool's refill finish
        self.open_fds = open_fds()
        self.fds = len(self.open_fds)
        self.maps = map_count()
        self.children = set(children()) - pooled_pids()
        self.threads = threading.active_count()
        self.rss = rss_mib()

    def assert_nothing_leaked(self, name: str, *, rss_slack_mib: float = 50.0, map_slack: int = 8) -> dict:
        after = Snapshot()
        leaked_children = after.children - self.children
        figures = {"fds": after.fds - self.fds, "maps": after.maps - self.maps, "children": len(leaked_children),
                   "threads": after.threads - self.threads, "rss MiB": round(after.rss - self.rss, 1)}
        FIGURES[f"leaks: {name}"] = figures
        assert not zombies(), f"zombie sandbox processes after {name}: {zombies()}"
        assert not leaked_children, f"sandbox processes left behind by {name}: {leaked_children}"
        new_fds = {fd: what for fd, what in after.open_fds.items() if self.open_fds.get(fd) != what}
        assert after.fds <= self.fds, f"{after.fds - self.fds} file descriptors leaked by {name}: {new_fds}"
        # a leak of one mapping per sandbox would show as hundreds; ASan's
        # allocator maps its own regions as it goes (make test-asan)
        if os.environ.get("VMCORE_UNDER_ASAN"):
            map_slack = max(map_slack, 64)
        assert after.maps <= self.maps + map_slack, f"{after.maps - self.maps} mappings leaked by {name}"
        assert after.threads <= self.threads, f"{after.threads - self.threads} threads leaked by {name}"
        assert after.rss - self.rss < rss_slack_mib, f"RSS grew by {after.rss - self.rss:.1f} MiB over {name}"
        return figures


def assert_fresh_sandbox_works(mode: modes.Mode = PROCESS, **kw) -> None:
    private = None
    # (the default pool would keep processes: not a leak, but noise)
    if mode.isolation != "inline" and "pool" not in kw:
        private = kw["pool"] = SandboxPool(0)
    with new_sandbox(mode, hostcalls={"note": increment}, **kw) as sb:
        assert sb.call("quick") == 7
        assert sb.call("hcall", 41) == 42
    if private is not None:
        private.close()


def run_child(code: str, timeout: float = 20.0):
    """Run a Python snippet in a child interpreter (for scenarios that may
    crash or hang the process running them): (returncode, output);
    returncode None when it had to be killed."""
    script = f"import sys\nsys.path.insert(0, {str(ROOT / 'src')!r})\n" + textwrap.dedent(code)
    try:
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=timeout,
                              cwd=str(ROOT))
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"") + (e.stderr or b"")
        return None, out.decode(errors="replace") if isinstance(out, bytes) else out
    return done.returncode, done.stdout + done.stderr


def record_max(key: str, value: float) -> None:
    FIGURES[key] = max(FIGURES.get(key, 0.0), round(value, 2))


@pytest.fixture(scope="module", autouse=True)
def report_figures(request):
    """Imported by every reliability module: prints (and forgets) the
    figures that module measured."""
    yield
    if FIGURES:
        print(f"\n--- {request.module.__name__}: measured figures ---")
        for key, value in FIGURES.items():
            print(f"{key}: {value}")
        FIGURES.clear()


# -- hostcalls that raise (section 4, and the leak cycles) --------------------

class CustomError(Exception):
    pass


def raising(exc):
    def note(caller, a0):
        raise exc
    return note
