"""Ctrl-C: a SIGINT while a guest runs in the main thread raises
KeyboardInterrupt at once (the guest is stopped through its interrupt flag,
vmcore/sigint.h) in every mode, and the sandbox stays usable.  Timing
belongs in perf/; these assert generous bounds only."""
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

import vmcore

from conftest import DATA_DIR, PROBE_EXPORTS, ROOT, program

GUEST = program(f"""
%isa = latest64
%stack_size = 4096
%import note
{PROBE_EXPORTS}pub @hloop:
@again:
    ecalli 0
    jump @again
""")

BOUND = 3.0  # seconds; a stopped guest answers in milliseconds


def sigint_after(seconds):
    """Send this process a SIGINT from a timer thread; returns when it was sent."""
    sent = []

    def fire():
        sent.append(time.monotonic())
        os.kill(os.getpid(), signal.SIGINT)
    timer = threading.Timer(seconds, fire)
    timer.start()
    return timer, sent


@contextlib.contextmanager
def sigint_handler(handler):
    """Python's SIGINT handler is ``handler`` inside the block."""
    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def assert_runs_to_its_deadline(sb, timeout):
    """A SIGINT 50 ms into a `spin` call that Python's handler does not turn
    into an exception: the guest runs on until the deadline."""
    timer, _ = sigint_after(0.05)
    with pytest.raises(vmcore.Timeout):
        sb.call("spin", timeout=timeout)
    timer.join()


@pytest.mark.parametrize("export", ["spin", "hloop"])
def test_sigint_interrupts_a_running_guest_and_the_sandbox_stays_usable(mode, export):
    with mode.sandbox(GUEST, hostcalls={"note": lambda caller: None}) as sb:
        timer, sent = sigint_after(0.1)
        try:
            with pytest.raises(KeyboardInterrupt):
                sb.call(export, timeout=30.0)
            assert time.monotonic() - sent[0] < BOUND
        finally:
            timer.cancel()
        assert not sb.closed
        assert sb.call("quick") == 7


def test_signal_raise_signal_in_a_hostcall_free_loop(mode):
    """signal.raise_signal from another thread, twice: each call stops."""
    with mode.sandbox(GUEST) as sb:
        for _ in range(2):
            timer = threading.Timer(0.05, signal.raise_signal, (signal.SIGINT,))
            timer.start()
            with pytest.raises(KeyboardInterrupt):
                sb.call("spin", timeout=30.0)
            timer.join()
            assert sb.call("quick") == 7


def test_a_handler_that_does_not_raise_lets_the_guest_go_on(mode):
    """Only an exception from Python's handler stops the call: a handler
    that just counts leaves the guest running (here until its deadline)."""
    seen = []
    with sigint_handler(lambda *_: seen.append(True)), mode.sandbox(GUEST) as sb:
        assert_runs_to_its_deadline(sb, 0.5)
        assert seen == [True]
        assert sb.call("quick") == 7


def test_python_handler_is_back_after_the_call(mode):
    """The chained handler is only in place during a call."""
    with mode.sandbox(GUEST) as sb:
        timer, _ = sigint_after(0.05)
        with pytest.raises(KeyboardInterrupt):
            sb.call("spin", timeout=30.0)
        timer.join()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    with pytest.raises(KeyboardInterrupt):
        signal.raise_signal(signal.SIGINT)


def test_ignored_sigint_stays_ignored(mode):
    with sigint_handler(signal.SIG_IGN), mode.sandbox(GUEST) as sb:
        assert_runs_to_its_deadline(sb, 0.4)


CHILD = """
import sys
sys.path.insert(0, {tests!r})
import vmcore
from conftest import program
guest = program('''
%isa = latest64
%stack_size = 4096
pub @spin:
@spin_loop:
    jump @spin_loop
''')
sb = vmcore.Sandbox(guest, backend={backend!r}, isolation={isolation!r})
print("ready", flush=True)
sb.call("spin")
"""


def _wait_for_engine(child, timeout=60.0):
    """Until the child has mapped vmcore's engine (its imports are done)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end and child.poll() is None:
        try:
            with open(f"/proc/{child.pid}/maps") as maps:
                if "_engine" in maps.read():
                    return
        except OSError:
            return
        time.sleep(0.02)


def interrupt_child(argv):
    """Start argv, wait for its "ready" line (or a moment), SIGINT it; (returncode, stderr, seconds)."""
    child = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        if argv[1] == "-c":
            assert child.stdout.readline().strip() == "ready"
        else:
            _wait_for_engine(child)  # the CLI prints nothing first: wait out its imports (slow when busy)
        time.sleep(0.3)  # well inside the call
        assert child.poll() is None
        sent = time.monotonic()
        child.send_signal(signal.SIGINT)
        _, stderr = child.communicate(timeout=30)
        return child.returncode, stderr, time.monotonic() - sent
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_a_script_running_an_infinite_guest_loop_dies_of_keyboardinterrupt(mode):
    code = CHILD.format(tests=str(ROOT / "tests"), backend=mode.backend, isolation=mode.isolation)
    rc, stderr, seconds = interrupt_child([sys.executable, "-c", code])
    assert "KeyboardInterrupt" in stderr
    assert rc != 0
    assert seconds < BOUND


def test_cli_run_stops_on_ctrl_c(mode):
    argv = [sys.executable, "-m", "vmcore", "run", "--backend", mode.backend, "--isolation", mode.isolation,
            str(DATA_DIR / "sum.polkavm"), "main", "--", "-1"]
    rc, stderr, seconds = interrupt_child(argv)
    assert rc == 130, stderr
    assert "interrupted" in stderr
    assert seconds < BOUND
