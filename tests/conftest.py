"""Shared test fixtures: the execution-mode matrix (``mode``,
``process_mode``: see modes.py), where the sample programs and the optional
tools outside the repository live, and a tiny, independent writer for the
program containers (written from the format description, not from vmcore's
C parser)."""
import json
import os
import struct
from pathlib import Path
from types import SimpleNamespace

import pytest

import modes

# Tests of the x86-64-only sandbox process / recompiler skip elsewhere.
pytest_plugins = ["x86_64_only"]

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = ROOT / "src" / "vmcore" / "data"
VECTORS_DIR = ROOT / "tests" / "vectors" / "official"
# The reference's opcode tables: excerpts committed under tests/data/polkavm
# (MIT / Apache-2.0, see its LICENSE-MIT), or a PolkaVM checkout named by
# VMCORE_POLKAVM_SRC to check against another version.
REFERENCE_PROGRAM_RS = (Path(os.environ["VMCORE_POLKAVM_SRC"]) / "crates/polkavm-common/src/program.rs"
                        if os.environ.get("VMCORE_POLKAVM_SRC")
                        else ROOT / "tests" / "data" / "polkavm" / "program_rs_excerpt.rs")


def shared_dir():
    """The team's shared/ folder (programs, tools) from $VMCORE_SHARED: never
    a path guessed outside the repository; None when unset."""
    value = os.environ.get("VMCORE_SHARED")
    return Path(value) if value else None


def refharness_path():
    """PolkaVM's refharness binary: $VMCORE_REFHARNESS, else
    $VMCORE_SHARED/tools/refharness; None when neither names an executable."""
    candidates = [os.environ.get("VMCORE_REFHARNESS")]
    if shared_dir() is not None:
        candidates.append(str(shared_dir() / "tools" / "refharness"))
    return next((c for c in candidates if c and os.path.isfile(c) and os.access(c, os.X_OK)), None)


REFHARNESS = refharness_path()
NO_REFHARNESS = "no refharness binary (set VMCORE_REFHARNESS, or VMCORE_SHARED to the shared/ folder)"
needs_refharness = pytest.mark.skipif(REFHARNESS is None, reason=NO_REFHARNESS)


@pytest.fixture(params=modes.params())
def mode(request) -> modes.Mode:
    """Every execution mode (inline, process, compiler); unavailable ones skip."""
    return request.param


@pytest.fixture(params=modes.params(process_only=True))
def process_mode(request) -> modes.Mode:
    """The modes running in a sandbox process (process, compiler)."""
    return request.param


# The `quick` (returns 7) and `spin` (never returns) exports the sandbox-level
# test guests start with: one copy, shared with the hostile fuzz targets.
from vmcore.fuzz_hostile import GUEST_SOURCE, PROBE_EXPORTS  # noqa: E402


def program(source: str):
    """A Program from vmcore.asm source text."""
    import vmcore
    from vmcore import asm
    return vmcore.Program.from_bytes(asm.assemble(source))


# The guest the API and sandbox-process suites share: the hostile fuzz
# target's (quick, spin, hcall, hloop, grow, touch, memset) and a few more.
BASIC_GUEST_SOURCE = GUEST_SOURCE + """\
pub @add:
    a0 = a0 + a1
    ret
pub @note_then_return:
    ecalli 0
    a0 = 42
    ret
pub @trap:
    trap
pub @store:
    u32 [a0] = a1
    a0 = u32 [a0]
    ret
pub @store_then_note:
    u32 [a0] = a1
    ecalli 0
    ret
"""


def load_example(name: str):
    """examples/<name>.py as a module (its main() is not run)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(f"example_{name}", ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def child_processes() -> dict:
    """{pid: state} of this process's children, from /proc (zombies: 'Z')."""
    import os
    me = str(os.getpid())
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[1] == me:
            out[int(entry)] = fields[0]
    return out


def varint(value: int) -> bytes:
    """PolkaVM varint: the number of leading one bits of the first byte says
    how many little-endian bytes follow; the first byte's remaining bits are
    the value's most significant bits (no bits from it with four extra)."""
    assert 0 <= value < 1 << 32
    for extra in range(4):
        if value < 1 << (7 * (extra + 1)):
            prefix = (0xFF << (8 - extra)) & 0xFF
            return bytes([prefix | (value >> (8 * extra))]) + value.to_bytes(8, "little")[:extra]
    return b"\xf0" + value.to_bytes(4, "little")


def bitmask_bytes(code_len: int, starts) -> bytes:
    mask = bytearray((code_len + 7) // 8)
    for s in starts:
        mask[s >> 3] |= 1 << (s & 7)
    return bytes(mask)


def code_blob(code: bytes, starts, jump_table=(), entry_size: int = 4, *, bitmask=None) -> bytes:
    """A JAM code blob: jump table count, entry size, code length, table, code, bitmask."""
    if bitmask is None:
        bitmask = bitmask_bytes(len(code), starts)
    table = b"".join(t.to_bytes(entry_size, "little") for t in jump_table)
    return varint(len(jump_table)) + bytes([entry_size]) + varint(len(code)) + table + code + bitmask


def memory_config(ro: int, rw: int, stack: int) -> bytes:
    return varint(ro) + varint(rw) + varint(stack)


def imports_payload(names, offsets=None) -> bytes:
    symbols = b"".join(names)
    if offsets is None:
        offsets, pos = [], 0
        for n in names:
            offsets.append(pos)
            pos += len(n)
    return varint(len(offsets)) + b"".join(struct.pack("<I", o) for o in offsets) + symbols


def exports_payload(exports) -> bytes:
    out = varint(len(exports))
    for pc, name in exports:
        out += varint(pc) + varint(len(name)) + name
    return out


def polkavm(sections, *, version: int = 3, length_delta: int = 0, eof: bool = True, magic: bytes = b"PVM\0"):
    """Build a .polkavm blob from [(section id, payload)]; returns (blob,
    [(id byte offset, payload offset)] per section)."""
    body, where = b"", []
    header = 4 + 1 + 8
    for sid, payload in sections:
        id_at = header + len(body)
        body += bytes([sid]) + varint(len(payload))
        where.append((id_at, header + len(body)))
        body += payload
    if eof:
        body += b"\0"
    total = header + len(body)
    return magic + bytes([version]) + struct.pack("<Q", total + length_delta) + body, where


def raw_blob(body: bytes, *, version: int = 3) -> bytes:
    """A .polkavm header with the right length around arbitrary section bytes."""
    return b"PVM\0" + bytes([version]) + struct.pack("<Q", 13 + len(body)) + body


def jam_standard(ro: bytes, rw: bytes, heap_pages: int, stack: int, code: bytes) -> bytes:
    """The JAM standard program: E3(|ro|) E3(|rw|) E2(heap pages) E3(stack) ro rw E4(|code|) code."""
    return (len(ro).to_bytes(3, "little") + len(rw).to_bytes(3, "little") + heap_pages.to_bytes(2, "little")
            + stack.to_bytes(3, "little") + ro + rw + len(code).to_bytes(4, "little") + code)


WRITER = SimpleNamespace(varint=varint, bitmask=bitmask_bytes, code_blob=code_blob, memory_config=memory_config,
                         imports=imports_payload, exports=exports_payload, polkavm=polkavm, raw=raw_blob,
                         jam_standard=jam_standard)


def load_shared_programs():
    return {p.stem: p.read_bytes() for p in sorted(DATA_DIR.glob("*.polkavm"))}


def load_vector_programs():
    out = []
    for p in sorted(VECTORS_DIR.glob("*.json")):
        with open(p) as f:
            out.append((p.stem, bytes(json.load(f)["program"])))
    return out


@pytest.fixture(scope="session")
def writer():
    return WRITER


@pytest.fixture(scope="session")
def shared_programs():
    return load_shared_programs()


@pytest.fixture(scope="session")
def vector_programs():
    programs = load_vector_programs()
    if not programs:
        pytest.skip(f"no test vectors at {VECTORS_DIR}")
    return programs
