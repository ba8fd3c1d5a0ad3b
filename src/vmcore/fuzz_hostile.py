"""Fuzz targets for the threat model (docs/threat-model.md, issue #15).

* ``hostile-sandbox``: sandboxes run on a *hostile zygote*, the real zygote
  compiled with ``-DVMCORE_HOSTILE_ZYGOTE`` (zygote_hostile.c) into a
  separate executable that is never installed: at every hand-over it writes
  random values into the VmCtx fields (pc, gas, heap, futex state, exit
  code, the robust-futex death word, counters, message, ...).  Every call,
  state read and close must end in a result or a typed ``vmcore.VmError``
  (never an untyped exception, a hang or a host crash), and a fresh
  sandbox on the normal zygote must work afterwards.
* ``hostile-api``: random sequences of public API calls (Sandbox, Caller,
  GuestMemory) from hostcalls and from other threads while calls run, in
  every backend and isolation; the same rule.

``python -m vmcore fuzz --target hostile-sandbox`` / ``--target
hostile-api`` run them (vmcore.fuzz hooks them up).  The hostile build
needs the source tree (an editable install or a checkout) and a C compiler.
"""
from __future__ import annotations

import hashlib
import os
import random
import shlex
import subprocess
import sysconfig
import tempfile
import threading
import time
import traceback
from pathlib import Path
from typing import Dict, List, Optional

import vmcore
from vmcore import abi, asm
from vmcore.fuzz_cases import Failure, case_rng

M64 = (1 << 64) - 1

# The two exports every sandbox-level guest here and in the test suite
# starts with: `quick` returns 7 at once, `spin` never returns.
PROBE_EXPORTS = """\
pub @quick:
    a0 = 7
    ret
pub @spin:
@spin_loop:
    jump @spin_loop
"""

GUEST_SOURCE = f"""
%isa = latest64
%rw_data_size = 8192
%stack_size = 8192
%import note
{PROBE_EXPORTS}pub @hcall:
    ecalli 0
    a0 = a0 + 1
    ret
pub @hloop:
    s0 = a0
@hloop_again:
    ecalli 0
    s0 = s0 - 1
    jump @hloop_again if s0 != 0
    ret
pub @grow:
    a0 = sbrk a0
    ret
pub @touch:
    u64 [a0] = a1
    a0 = u64 [a0]
    ret
pub @memset:
    [a0..a0 + a2] = u8 a1
    ret
"""
_GUEST: Optional[vmcore.Program] = None


def guest() -> vmcore.Program:
    global _GUEST
    if _GUEST is None:
        _GUEST = vmcore.Program.from_bytes(asm.assemble(GUEST_SOURCE))
    return _GUEST


_MODES = {"inline": ("interpreter", "inline"), "process": ("interpreter", "process"),
          "compiler": ("compiler", "process")}


def modes() -> Dict[str, tuple]:
    """The modes this machine runs (see skipped_modes for the others)."""
    from vmcore.backends import unavailable
    return {m: config for m, config in _MODES.items() if unavailable(*config) is None}


def skipped_modes() -> List[str]:
    """"skipping MODE: why" for each mode refused on this machine."""
    from vmcore.backends import unavailable
    return [f"skipping {m}: {unavailable(*config)}" for m, config in _MODES.items()
            if unavailable(*config) is not None]


def target_unavailable(name: str) -> Optional[str]:
    """Why the target ``name`` cannot run here at all (None: it can):
    hostile-sandbox attacks sandbox processes, which may be refused."""
    if name != HostileSandboxTarget.name:
        return None
    from vmcore.backends import unavailable
    return unavailable(*_MODES["process"])


# -- the hostile zygote build --------------------------------------------------

# setup.py's ZYGOTE_FLAGS (freestanding, static) plus the hostile switch
_ZYGOTE_FLAGS = [
    "-std=c11", "-Wall", "-Wextra", "-Werror", "-fno-strict-aliasing", "-O2", "-ffreestanding", "-nostdlib",
    "-static", "-fno-pie", "-no-pie", "-fno-stack-protector", "-fno-asynchronous-unwind-tables",
    "-fno-unwind-tables", "-fcf-protection=none", "-ffunction-sections", "-fdata-sections", "-Wl,--gc-sections",
    "-Wl,-z,noexecstack", "-Wl,--build-id=none", "-DVMCORE_HOSTILE_ZYGOTE",
]
_ZYGOTE_SOURCES = ["zygote.c", "zygote_confine.c", "zygote_libc.c", "zygote_hostile.c", "interp.c", "interp_build.c", "memory.c", "decoder.c", "x64_runtime.c"]


def _source_dirs():
    native = Path(vmcore.__file__).resolve().parent / "_native"
    include = native.parent.parent.parent / "include"
    if not (native / "zygote_hostile.c").is_file() or not (include / "vmcore" / "vmctx.h").is_file():
        raise vmcore.SandboxError("the hostile zygote is built from the source tree (src/vmcore/_native, "
                                  "include/); this installation has none")
    return native, include


def build_hostile_zygote(out_dir: Optional[str] = None) -> str:
    """Compile the hostile zygote (cached by a hash of its sources); its
    path.  Test-only: nothing in vmcore loads it unless given its fd."""
    native, include = _source_dirs()
    h = hashlib.sha256()
    for name in _ZYGOTE_SOURCES:
        h.update((native / name).read_bytes())
    for header in sorted((include / "vmcore").glob("*.h")) + sorted(native.glob("*.h")):
        h.update(header.read_bytes())
    h.update(" ".join(_ZYGOTE_FLAGS).encode())
    out_dir = out_dir or os.path.join(tempfile.gettempdir(), f"vmcore-hostile-{os.getuid()}")
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, f"zygote-hostile-{h.hexdigest()[:16]}")
    if not os.path.exists(path):
        cc = shlex.split(os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc")
        tmp = f"{path}.{os.getpid()}.tmp"
        subprocess.run([*cc, *_ZYGOTE_FLAGS, f"-I{include}", *[str(native / n) for n in _ZYGOTE_SOURCES], "-lgcc",
                        "-o", tmp], check=True, capture_output=True)
        os.replace(tmp, path)
    return path


def hostile_pool(size: int = 2, recycle: bool = True):
    """A SandboxPool whose processes run the hostile zygote."""
    from vmcore import _engine
    from vmcore.pool import SandboxPool
    with open(build_hostile_zygote(), "rb") as f:
        fd = _engine.test_image(f.read())
    return SandboxPool(size, recycle=recycle, _image_fd=fd)


# -- shared: one attempt, classified --------------------------------------------

class Untyped(Exception):
    pass


def attempt(fn, *args):
    """fn(*args) -> ("ok", value) / ("typed", error); raises Untyped for
    anything that is not a VmError."""
    try:
        return "ok", fn(*args)
    except vmcore.VmError as e:
        return "typed", e
    except Exception as e:
        raise Untyped(f"{type(e).__name__}: {e}\n{traceback.format_exc()}") from e


def _in_thread(fn, limit: float):
    """Run fn in a thread; (result, error, finished)."""
    box: dict = {}

    def run():
        try:
            box["result"] = fn()
        except BaseException as e:  # noqa: B902 - reported by the caller
            box["error"] = e
    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(limit)
    if t.is_alive():  # where it is stuck, for the report
        import sys
        frame = sys._current_frames().get(t.ident)
        box["stack"] = "".join(traceback.format_stack(frame)) if frame is not None else ""
        _LAST_STACK[0] = box["stack"]
    return box.get("result"), box.get("error"), not t.is_alive()


_LAST_STACK = [""]


# -- hostile-sandbox -------------------------------------------------------------

def _sandbox_step(rng: random.Random, sb) -> None:
    """One random public operation on a sandbox whose process is hostile."""
    rw = sb.memory_map.rw_data_address
    ops = [
        lambda: sb.call("quick", timeout=2.0),
        lambda: sb.call("hcall", timeout=0.5),
        lambda: sb.call("hloop", rng.randrange(1, 50), timeout=0.5),
        lambda: sb.call("grow", rng.choice((0, 1, 4096, 1 << 20)), timeout=2.0),
        lambda: sb.call("touch", rw + 8 * rng.randrange(0, 64), rng.getrandbits(64), timeout=2.0),
        lambda: sb.call("memset", rw, rng.randrange(256), rng.randrange(0, 9000), timeout=0.5),
        lambda: sb.call("spin", timeout=0.05),
        lambda: sb.gas, lambda: sb.pc, lambda: sb.next_pc, lambda: sb.heap_size, lambda: sb.counters,
        lambda: sb.sbrk(rng.choice((0, 16, 4096))), lambda: sb.regs.to_dict(),
        lambda: sb.memory.read(rw, rng.randrange(0, 64)), lambda: sb.memory.write(rw, b"x" * 8),
        lambda: sb.reset(), lambda: sb.isolation_report(),
        lambda: sb.set_step_tracing(rng.random() < 0.5),
        lambda: (sb.prepare_call("hcall"), sb.run(timeout=0.5)),
    ]
    attempt(rng.choice(ops))


class _ThreatTarget:
    """What both threat-model targets share: no artifact to replay a crash
    from (a case is a random walk over live API calls), counters as stats."""

    counts: Dict[str, int]

    def crash_artifact(self, index: int):
        return None

    def stats(self) -> Dict[str, int]:
        return dict(self.counts)


class HostileSandboxTarget(_ThreatTarget):
    name = "hostile-sandbox"

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.pool = None
        self.counts = {"steps": 0, "typed": 0, "killed": 0}

    def setup(self) -> List[str]:
        path = build_hostile_zygote()
        self.pool = hostile_pool()
        return [f"hostile zygote {os.path.basename(path)}; modes "
                + ", ".join(m for m, (_, iso) in modes().items() if iso == "process")] + skipped_modes()

    def describe(self, index: int) -> str:
        return "random API steps on a sandbox process that scribbles over its VmCtx at every hand-over"

    def run_case(self, index: int):
        if self.pool is None:
            self.setup()
        rng = case_rng(self.seed, self.name, index)
        process_modes = [v for v in modes().values() if v[1] == "process"]
        backend, isolation = rng.choice(process_modes)

        def case():
            sb = None
            try:
                kind, sb = attempt(lambda: vmcore.Sandbox(guest(), backend=backend, isolation=isolation,
                                                          gas=rng.choice((None, 10**9)), pool=self.pool))
                if kind != "ok":
                    self.counts["typed"] += 1
                    return
                sb.register_hostcall("note", lambda caller: rng.getrandbits(64))
                for _ in range(rng.randrange(1, 12)):
                    self.counts["steps"] += 1
                    try:
                        _sandbox_step(rng, sb)
                    finally:
                        if sb.pid is None and sb.isolation == "process":
                            self.counts["killed"] += 1
            finally:
                if sb is not None:
                    attempt(sb.close)
        _, error, finished = _in_thread(case, 60.0)
        if not finished:
            return Failure(self.name, index, "hang", f"{backend}: a case did not finish in 60 s", _LAST_STACK[0],
                           None, self.seed)
        if error is not None:
            return Failure(self.name, index, "exception", str(error).splitlines()[0], str(error), None, self.seed)
        # the host keeps working with the normal zygote
        with vmcore.Sandbox(guest(), backend=backend, isolation=isolation) as fresh:
            if fresh.call("quick") != 7:
                return Failure(self.name, index, "mismatch", "a fresh sandbox misbehaves", "", None, self.seed)
        return None


# -- hostile-api -------------------------------------------------------------------

def api_actions(rng: random.Random) -> list:
    """(name, fn(sandbox)) for every public method, with random arguments."""
    def rw(sb):
        return sb.memory_map.rw_data_address
    return [
        ("call", lambda sb: sb.call("quick")),
        ("call-hcall", lambda sb: sb.call("hcall", timeout=0.5)),
        ("prepare_call", lambda sb: sb.prepare_call(rng.choice(("quick", "hcall", "spin")))),
        ("run", lambda sb: sb.run(timeout=0.2)),
        ("set_step_tracing", lambda sb: sb.set_step_tracing(rng.random() < 0.5)),
        ("reset", lambda sb: sb.reset()),
        ("gas", lambda sb: sb.gas),
        # (gas= on an unmetered sandbox is a documented ValueError: metered only)
        ("gas=", lambda sb: setattr(sb, "gas", rng.choice((0, 1, 10**6, (1 << 63) - 1))) if sb._gas_metering
         else None),
        ("pc", lambda sb: sb.pc), ("next_pc", lambda sb: sb.next_pc), ("heap_size", lambda sb: sb.heap_size),
        ("sbrk", lambda sb: sb.sbrk(rng.choice((0, 1, 4096, 1 << 20, 0xFFFFFFFF)))),
        ("regs", lambda sb: sb.regs[rng.randrange(abi.REG_COUNT)]),
        ("regs=", lambda sb: sb.regs.__setitem__(rng.randrange(abi.REG_COUNT), rng.getrandbits(64))),
        ("memory.read", lambda sb: sb.memory.read(rng.choice((0, rw(sb), 0xFFFFFFFF)), rng.choice((0, 1, 64, 1 << 32)))),
        ("memory.write", lambda sb: sb.memory.write(rw(sb) + rng.randrange(0, 8192), b"z" * rng.randrange(0, 64))),
        ("memory.zero", lambda sb: sb.memory.zero(rw(sb), rng.randrange(0, 9000))),
        ("memory.is_accessible", lambda sb: sb.memory.is_accessible(rng.getrandbits(33), rng.getrandbits(33))),
        ("memory.read_u64", lambda sb: sb.memory.read_u64(rw(sb))),
        ("register_hostcall", lambda sb: sb.register_hostcall("note", lambda caller: None)),
        ("counters", lambda sb: sb.counters), ("isolation_report", lambda sb: sb.isolation_report()),
        ("caller.sbrk", lambda sb: vmcore.Caller(sb).sbrk(16)),
        ("caller.gas", lambda sb: vmcore.Caller(sb).gas),
        ("close", lambda sb: sb.close() if rng.random() < 0.1 else None),
    ]


class HostileApiTarget(_ThreatTarget):
    name = "hostile-api"

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.counts = {"actions": 0, "typed": 0}

    def setup(self) -> List[str]:
        return ["modes " + ", ".join(modes())] + skipped_modes()

    def describe(self, index: int) -> str:
        return "random public API calls from hostcalls and threads while calls run"

    def run_case(self, index: int):
        rng = case_rng(self.seed, self.name, index)
        name, (backend, isolation) = rng.choice(sorted(modes().items()))
        problems: List[str] = []

        def act(sb, where):
            actions = api_actions(rng)
            for _ in range(rng.randrange(1, 4)):
                what, fn = rng.choice(actions)
                self.counts["actions"] += 1
                try:
                    kind, _ = attempt(fn, sb)
                    self.counts["typed"] += kind == "typed"
                except Untyped as e:
                    problems.append(f"{what} from {where} ({name}): {e}")

        def case():
            sb = vmcore.Sandbox(guest(), backend=backend, isolation=isolation, gas=rng.choice((None, 10**9)))
            try:
                sb.register_hostcall("note", lambda caller: act(caller.sandbox, "a hostcall"))
                for _ in range(rng.randrange(1, 5)):
                    export = rng.choice(("hcall", "hloop", "spin", "quick"))
                    args = (rng.randrange(1, 20),) if export == "hloop" else ()
                    t = threading.Thread(target=lambda: attempt(lambda: sb.call(export, *args, timeout=0.2)),
                                         daemon=True)
                    t.start()
                    time.sleep(rng.random() * 0.01)
                    act(sb, "another thread")
                    t.join(20)
                    if t.is_alive():
                        problems.append(f"a call of {export} ({name}) hangs")
                        return
            finally:
                try:
                    attempt(sb.close)
                except Untyped as e:
                    problems.append(f"close ({name}): {e}")
        _, error, finished = _in_thread(case, 60.0)
        if not finished:
            return Failure(self.name, index, "hang", f"{name}: a case did not finish in 60 s", _LAST_STACK[0], None,
                           self.seed)
        if error is not None:
            problems.append(f"harness ({name}): {type(error).__name__}: {error}")
        if problems:
            return Failure(self.name, index, "exception", problems[0].splitlines()[0], "\n".join(problems), None,
                           self.seed)
        return None


TARGETS = {"hostile-sandbox": HostileSandboxTarget, "hostile-api": HostileApiTarget}
