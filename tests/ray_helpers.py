"""Hostcalls for tests/test_ray.py: module-level, so Ray actors import
them by name (the tests put this directory on the workers' PYTHONPATH)."""
import os
import signal


def inc(caller, a0):
    return a0 + 1


def boom(caller):
    raise ValueError("boom from the host")


def die(caller):
    os._exit(17)  # takes the actor process down with it


def kill_sandbox(caller):
    os.kill(caller.sandbox.pid, signal.SIGKILL)
    return 0
