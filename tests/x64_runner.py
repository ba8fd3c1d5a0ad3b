"""Test harness for the recompiler: builds tests/native/runner.c (a stand-in
for the zygote) with the system C compiler and drives it over pipes.

Generated code only ever runs inside that child process, never in the
process running the tests.  Compiling (vmcore._engine) happens here: it is
pure data transformation.

    runner = Runner.start(tmp_dir)
    result = runner.run(Case(compiled, regs=..., gas=..., entry=...))

`run_vector` / `run_program` give results in the shape vmcore.vectors and
the interpreter tests use, so the two backends compare field by field."""
from __future__ import annotations

import os
import select
import shutil
import struct
import zlib
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from oracle import canonical, reported
from vmcore import _engine, abi, vectors
from vmcore.outcome import Outcome
from vmcore.program import Program

ROOT = Path(__file__).resolve().parent.parent
RUNNER_SOURCES = [
    ROOT / "tests" / "native" / "runner.c",
    ROOT / "src" / "vmcore" / "_native" / "x64_runtime.c",
    ROOT / "src" / "vmcore" / "_native" / "interp.c",
    ROOT / "src" / "vmcore" / "_native" / "interp_build.c",
    ROOT / "src" / "vmcore" / "_native" / "memory.c",
    ROOT / "src" / "vmcore" / "_native" / "decoder.c",
    ROOT / "src" / "vmcore" / "_native" / "gas.c",
]

# runner flags
GAS_METERING, CONTINUE_ECALLI, CONTINUE_STEP, DUMP_MEMORY, CONTINUE_OOG, CONTINUE_PAGEFAULT = 1, 2, 4, 8, 16, 32
MAX_MAPPED_ON_FAULT = 64
# exit kinds (VMCTX_STUB_* and the runner's own)
FINISHED, TRAP, ECALLI, NOT_ENOUGH_GAS, PAGEFAULT, STEP, INTERRUPTED, CRASH = 0, 1, 2, 3, 4, 5, 6, 100
STATUS = {FINISHED: "halt", TRAP: "panic", ECALLI: "host", NOT_ENOUGH_GAS: "out-of-gas", PAGEFAULT: "page-fault",
          STEP: "step", INTERRUPTED: "interrupted", CRASH: "crash"}
# the interpreter's exit codes in the same words
INTERP_STATUS = dict(vectors.STATUS)
INTERP_STATUS[_engine.EXIT_STEP] = "step"
INTERP_STATUS[_engine.EXIT_INTERRUPTED] = "interrupted"


def build_runner(out_dir: Path) -> Path:
    cc = os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc")
    if not cc:
        raise RuntimeError("no C compiler to build the test runner")
    out = Path(out_dir) / "vmcore_x64_runner"
    cmd = [cc, "-std=gnu11", "-O2", "-Wall", "-Wextra", "-Werror", f"-I{ROOT / 'include'}", "-o", str(out),
           *map(str, RUNNER_SOURCES)]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return out


@dataclass
class Case:
    compiled: "_engine.CompiledCode"
    regs: Sequence[int]
    gas: int
    entry: int                      # absolute native address (CompiledCode.enter)
    page_size: int = 4096
    perms: Sequence[Tuple[int, int, int]] = ()   # (address, length, perm)
    chunks: Sequence[Tuple[int, bytes]] = ()      # (address, data)
    heap: Tuple[int, int, int, int, int] = (0, 0, 0, 0, 0)  # base, top, mapped_end, max_top, grow_pages
    flags: int = GAS_METERING | DUMP_MEMORY
    max_exits: int = 1
    interrupt_us: int = 0
    refill: int = 0                 # gas added after out-of-gas (CONTINUE_OOG)


@dataclass
class Exit:
    kind: int
    pc: int
    arg: int
    next_pc: int
    gas: int

    @property
    def status(self) -> str:
        return STATUS.get(self.kind, f"exit {self.kind}")


@dataclass
class Result:
    exits: List[Exit]
    regs: List[int]
    heap_top: int
    heap_mapped_end: int
    nanoseconds: int
    signal: int
    signal_rip: int
    pages: Dict[int, Tuple[int, bytes]] = field(default_factory=dict)  # address -> (perm, data)

    @property
    def last(self) -> Exit:
        return self.exits[-1]


class RunnerCrashed(RuntimeError):
    pass


class Runner:
    def __init__(self, path: Path, timeout: float = 60.0):
        self.path = path
        self.timeout = timeout
        self.proc: Optional[subprocess.Popen] = None
        self._spawn()

    @classmethod
    def start(cls, out_dir: Path) -> "Runner":
        return cls(build_runner(out_dir))

    def _spawn(self):
        # Not under a preloaded sanitizer runtime (make test-asan): its
        # shadow memory overlaps the fixed addresses generated code uses.
        env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
        self.proc = subprocess.Popen([str(self.path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, bufsize=0, env=env)

    def close(self):
        if self.proc:
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=10)
            except Exception:
                self.proc.kill()
            self.proc = None

    @staticmethod
    def encode(case: Case) -> bytes:
        cc = case.compiled
        info = cc.info
        code = cc.code
        table = cc.jump_table
        records, marks = cc.records_bytes, cc.marks_bytes
        out = [struct.pack("<4sIII", b"VMRC", case.flags, case.page_size, case.max_exits),
               struct.pack("<Q", len(code)), code,
               struct.pack("<Q", len(table) // 8), table,
               struct.pack("<Q", len(records) // 4), records,
               struct.pack("<Q", len(marks) // 12), marks,
               struct.pack("<IIIIiii", info["entry_trampoline"], info["overflow_probe"], info["first_insn"],
                           info["code_len"], info["step_tracing"], info["charges"], info["is_64_bit"]),
               struct.pack("<Qq", case.entry, case.gas),
               struct.pack("<13Q", *[r & 0xFFFFFFFFFFFFFFFF for r in case.regs]),
               struct.pack("<5I", *case.heap),
               struct.pack("<I", len(case.perms))]
        for address, length, perm in case.perms:
            out.append(struct.pack("<IQI", address, length, perm))
        out.append(struct.pack("<I", len(case.chunks)))
        for address, data in case.chunks:
            out.append(struct.pack("<II", address, len(data)))
            out.append(bytes(data))
        out.append(struct.pack("<Qq", case.interrupt_us, case.refill))
        return b"".join(out)

    def _read(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            ready, _, _ = select.select([self.proc.stdout], [], [], self.timeout)
            if not ready:
                self.proc.kill()
                self.proc.wait()
                self._spawn()
                raise RunnerCrashed(f"no answer from the runner within {self.timeout} s (endless guest loop?)")
            chunk = self.proc.stdout.read(n - len(data))
            if not chunk:
                err = self.proc.stderr.read().decode(errors="replace")
                code = self.proc.wait()
                self._spawn()
                raise RunnerCrashed(f"runner died (exit {code}): {err.strip()}")
            data += chunk
        return data

    def run(self, case: Case) -> Result:
        self.proc.stdin.write(self.encode(case))
        magic, count = struct.unpack("<4sI", self._read(8))
        assert magic == b"VMRO", magic
        exits = [Exit(*struct.unpack("<IIIIq", self._read(24))) for _ in range(count)]
        regs = list(struct.unpack("<13Q", self._read(104)))
        top, end, ns, sig, rip, npages = struct.unpack("<IIQIQI", self._read(32))
        pages = {}
        for _ in range(npages):
            address, perm = struct.unpack("<II", self._read(8))
            pages[address] = (perm, self._read(case.page_size))
        return Result(exits, regs, top, end, ns, sig, rip, pages)


# ------------------------------------------------------------------ helpers
_MODULES: Dict[tuple, "_engine.CompiledCode"] = {}


def compile_program(program: Program, gas_metering: bool = True, step_tracing: bool = False, **kw):
    return _engine.CompiledCode(program.isa_index, program.code, program.bitmask, program.jump_table,
                                  gas_metering, step_tracing, **kw)


def run_compiled(runner: Runner, cc, *, regs, gas, pc=0, page_size=4096, perms=(), chunks=(), heap=(0, 0, 0, 0, 0),
                 gas_metering=True, flags_extra=0, max_exits=1, pages_of_interest=None) -> Tuple[Outcome, Optional[Result]]:
    """Enter at pc as the host would and run to the first exit (or more,
    with flags_extra/max_exits)."""
    rc, gas_after, native = cc.enter(pc, gas)
    if rc != abi.ENTRY_OK:
        status = "panic" if rc == abi.ENTRY_NOT_AN_INSTRUCTION else "out-of-gas"
        memory = {}
        return Outcome(status, pc, gas, list(regs), memory), None
    flags = (GAS_METERING if gas_metering else 0) | DUMP_MEMORY | flags_extra
    result = runner.run(Case(cc, list(regs), gas_after, native, page_size, list(perms), list(chunks), tuple(heap),
                             flags, max_exits))
    last = result.last
    fault = last.arg if last.kind == PAGEFAULT else None
    hostcall = last.arg if last.kind == ECALLI else None
    memory = {a: data for a, (perm, data) in result.pages.items()}
    if pages_of_interest is not None:
        memory = {a: d for a, d in memory.items() if a in pages_of_interest}
    return Outcome(last.status, last.pc, last.gas, result.regs, memory, fault, hostcall), result


def split_hint_for(code: bytes) -> int:
    """A deterministic pseudo-random offset to split the compile at (the
    two-thread path, forced for small programs in the tests)."""
    return 1 + zlib.crc32(code) % (len(code) - 1) if len(code) > 1 else 0


def run_vector(runner: Runner, vector: dict, split: bool = False) -> Outcome:
    """One JSON vector through the recompiler (the runner); the result in
    vmcore.vectors' shape, ready for vectors.compare.  split: compile the
    code as two halves on two threads (split_hint_for)."""
    program = Program.from_raw_code(bytes(vector["program"]), isa=vector.get("isa", "latest64"))
    cc = compile_program(program, split_hint=split_hint_for(program.code) if split else 0)
    page = vectors.PAGE_SIZE
    perms, pages = [], []
    for entry in vector["initial-page-map"]:
        perm = _engine.PERM_WRITE if entry["is-writable"] else _engine.PERM_READ
        perms.append((entry["address"], entry["length"], perm))
        start = entry["address"] - entry["address"] % page
        pages.extend(range(start, entry["address"] + entry["length"], page))
    chunks = [(c["address"], bytes(c["contents"])) for c in vector["initial-memory"]]
    # The runner takes and gives registers as the engines keep them; vectors
    # hold them as programs see them (vm_reg_from_host / vm_reg_to_host).
    regs = [canonical(int(v), program.is_64_bit) for v in vector["initial-regs"]]
    out, _ = run_compiled(runner, cc, regs=regs, gas=int(vector["initial-gas"]), pc=int(vector["initial-pc"]),
                          page_size=page, perms=perms, chunks=chunks, pages_of_interest=set(pages))
    if out.status in ("panic", "out-of-gas") and _ is None:
        # not entered: memory as initialised
        mem = {}
        for p in sorted(set(pages)):
            data = bytearray(page)
            for address, chunk in chunks:
                for i, byte in enumerate(chunk):
                    if p <= address + i < p + page:
                        data[address + i - p] = byte
            if any(p <= a < p + page or a <= p < a + ln for a, ln, _perm in perms):
                mem[p] = bytes(data)
        out.memory = mem
    out.regs = [reported(r, program.is_64_bit) for r in out.regs]
    return out
