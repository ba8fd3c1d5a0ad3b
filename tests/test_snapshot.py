"""Sandbox.snapshot / restore / from_snapshot and memory.view in every
mode (the mode matrix), and DOOM: initialised once, many games from the
snapshot, frames identical to a fresh initialisation."""
from __future__ import annotations

import array
import hashlib
import pickle
import sys
import time
from pathlib import Path

import pytest

import vmcore
from conftest import program

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "perf"))
from _doom import PAGE_SIZE, doom_paths  # noqa: E402

COUNTER = program("""
%isa = latest64
%rw_data_size = 262144
%stack_size = 4096
%import note
// a0 = address: add a1 to the u64 there, return the new value
pub @bump:
    a2 = u64 [a0]
    a2 = a2 + a1
    u64 [a0] = a2
    a0 = a2
    ret
// fill a1 bytes at a0 with a2
pub @fill:
    jump @filled if a1 == 0
@again:
    u8 [a0] = a2
    a0 = a0 + 1
    a1 = a1 - 1
    jump @again if a1 != 0
@filled:
    ret
pub @grow:
    a0 = sbrk a0
    ret
// bump, tell the host, bump again
pub @bump_note:
    a2 = u64 [a0]
    a2 = a2 + 1
    u64 [a0] = a2
    ecalli 0
    a2 = u64 [a0]
    a2 = a2 + 100
    u64 [a0] = a2
    a0 = a2
    ret
""")
OTHER = program("""
%isa = latest64
pub @main:
    ret
""")


def _rw(sb):
    return sb.memory_map.rw_data_address


def test_restore_brings_back_registers_gas_memory_heap(mode):
    sb = mode.sandbox(COUNTER, gas=1_000_000, hostcalls={"note": lambda c: None})
    rw = _rw(sb)
    assert sb.call("bump", rw, 5) == 5
    sb.memory.write(rw + 100_000, b"snapshot")
    snap = sb.snapshot()
    gas, heap = sb.gas, sb.heap_size
    assert snap.gas == gas and not snap.resumable
    assert sb.call("bump", rw, 1) == 6
    sb.call("fill", rw + 4096, 200_000, 0xAB)
    assert sb.sbrk(1 << 20) != 0
    sb.regs["a3"] = 77
    sb.restore(snap)
    assert sb.gas == gas and sb.heap_size == heap and sb.regs["a3"] != 77
    assert sb.memory.read_u64(rw) == 5
    assert sb.memory.read(rw + 4096, 16) == bytes(16)
    assert sb.memory.read(rw + 100_000, 8) == b"snapshot"
    assert sb.call("bump", rw, 1) == 6
    for _ in range(3):  # again and again: each restore drops what the last run changed
        sb.call("fill", rw, 64, 0xCD)
        sb.restore(snap)
        assert sb.memory.read_u64(rw) == 5 and sb.memory.read(rw + 8, 8) == bytes(8)


def test_heap_grown_after_the_snapshot_is_gone(mode):
    sb = mode.sandbox(COUNTER, gas=1_000_000)
    snap = sb.snapshot()
    top = sb.call("grow", 3 * 65536)
    assert top and sb.memory.is_accessible(top - 8, 8)
    sb.memory.write(top - 8, b"x" * 8)
    sb.restore(snap)
    assert sb.heap_size == 0 and not sb.memory.is_accessible(top - 8, 8)
    assert sb.call("grow", 3 * 65536) == top
    assert sb.memory.read(top - 8, 8) == bytes(8)  # zero, not the old bytes


def test_protect_is_part_of_the_snapshot(mode):
    sb = mode.sandbox(COUNTER)
    page = sb.memory_map.page_size
    extra = 0x4000_0000
    sb.memory.protect(extra, page, "write")
    sb.memory.write(extra, b"granted")
    rw = _rw(sb)
    sb.memory.protect(rw, page, "read")
    snap = sb.snapshot()
    sb.memory.protect(extra, page, "none")
    sb.memory.protect(rw, page, "write")
    other = 0x5000_0000
    sb.memory.protect(other, page, "write")
    sb.memory.write(other, b"later")
    sb.restore(snap)
    assert sb.memory.read(extra, 7) == b"granted" and sb.memory.access(extra) == "write"
    assert sb.memory.access(rw) == "read"
    assert sb.memory.access(other) == "none"
    sb.memory.protect(other, page, "write")
    assert sb.memory.read(other, 5) == bytes(5)


def test_from_snapshot_forks_share_nothing(mode):
    sb = mode.sandbox(COUNTER, gas=500_000)
    rw = _rw(sb)
    sb.call("bump", rw, 40)
    snap = sb.snapshot()
    forks = [vmcore.Sandbox.from_snapshot(snap, **mode.kwargs) for _ in range(3)]
    for i, fork in enumerate(forks):
        assert fork.gas == snap.gas and fork.backend == mode.backend and fork.isolation == mode.isolation
        assert fork.call("bump", rw, i + 1) == 41 + i
    assert [f.memory.read_u64(rw) for f in forks] == [41, 42, 43]
    assert sb.memory.read_u64(rw) == 40
    for fork in forks:
        fork.close()


def test_snapshot_survives_its_sandbox_and_crosses_modes(mode):
    sb = vmcore.Sandbox(COUNTER, gas=None)
    rw = _rw(sb)
    sb.call("bump", rw, 9)
    snap = sb.snapshot()
    sb.close()
    fork = vmcore.Sandbox.from_snapshot(snap, **mode.kwargs)
    assert fork.gas is None and fork.call("bump", rw, 1) == 10
    fork.restore(snap)
    assert fork.memory.read_u64(rw) == 9
    fork.close()
    with pytest.raises(vmcore.SandboxError, match="closed"):
        fork.restore(snap)


def test_resumable_snapshot_inline_and_refused_in_a_process(mode):
    notes = []
    sb = mode.sandbox(COUNTER, gas=100_000, hostcalls={"note": lambda c: notes.append(1)})
    rw = _rw(sb)
    sb.prepare_call("bump_note", rw)
    stop = sb.run()
    assert isinstance(stop, vmcore.Ecalli)
    if mode.isolation == "process":
        with pytest.raises(vmcore.SnapshotError, match="between calls"):
            sb.snapshot()
        return
    snap = sb.snapshot()
    assert snap.resumable
    assert isinstance(sb.run(), vmcore.Finished) and sb.regs["a0"] == 101
    sb.restore(snap)
    assert sb.memory.read_u64(rw) == 1
    assert isinstance(sb.run(), vmcore.Finished) and sb.regs["a0"] == 101
    with pytest.raises(vmcore.SnapshotError, match="inside a call"):
        vmcore.Sandbox.from_snapshot(snap, backend="interpreter", isolation="process")


def test_mismatched_snapshots_are_refused(mode):
    sb = mode.sandbox(COUNTER, gas=1000)
    snap = sb.snapshot()
    for other, match in ((mode.sandbox(OTHER, gas=1000), "another program"),
                         (mode.sandbox(COUNTER, gas=1000, page_size=16384), "page size"),
                         (mode.sandbox(COUNTER, gas=None), "gas metering"),
                         (mode.sandbox(COUNTER, gas=1000, heap=vmcore.HeapPolicy(initial_size=8192)), "heap policy")):
        with pytest.raises(vmcore.SnapshotError, match=match):
            other.restore(snap)
        other.close()
    same = mode.sandbox(vmcore.Program.from_bytes(COUNTER_BYTES), gas=1000)  # equal content, another object
    same.restore(snap)
    with pytest.raises(TypeError):
        sb.restore("not a snapshot")
    with pytest.raises(TypeError, match="from the snapshot"):
        vmcore.Sandbox.from_snapshot(snap, page_size=4096)


def test_snapshots_do_not_pickle(mode):
    snap = mode.sandbox(COUNTER).snapshot()
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(snap)


def test_hostile_sequences_raise_typed_errors(mode):
    sb = mode.sandbox(COUNTER, gas=100_000)
    rw = _rw(sb)
    snap = sb.snapshot()
    seen = []

    def note(caller):
        for action in (sb.snapshot, lambda: sb.restore(snap)):
            try:
                action()
            except vmcore.SandboxBusy as e:
                seen.append(type(e))
    sb.register_hostcall("note", note)
    sb.call("bump_note", rw)
    assert seen == [vmcore.SandboxBusy, vmcore.SandboxBusy]
    if mode.isolation == "process":
        guest = sb._guest
        guest.zygote.kill()
        for _ in range(500):  # the kill lands asynchronously
            if not guest.alive:
                break
            time.sleep(0.01)
        with pytest.raises(vmcore.SandboxError):
            sb.restore(snap)
        with pytest.raises(vmcore.SandboxError):
            sb.snapshot()
    sb.close()
    with pytest.raises(vmcore.SandboxError, match="closed"):
        sb.snapshot()
    fork = vmcore.Sandbox.from_snapshot(snap, **mode.kwargs)  # the snapshot outlives both
    assert fork.call("bump", rw, 2) == 2


COUNTER_BYTES = __import__("vmcore.asm", fromlist=["assemble"]).assemble(
    __import__("inspect").getsource(sys.modules[__name__]).split('COUNTER = program("""', 1)[1].split('""")', 1)[0])


# -- memory.view --------------------------------------------------------------
def test_view_is_zero_copy_and_permission_checked(mode):
    sb = mode.sandbox(COUNTER)
    rw = _rw(sb)
    view = sb.memory.view(rw, 64)
    assert not view.readonly and len(view) == 64
    view[0:5] = b"hello"
    assert sb.memory.read(rw, 5) == b"hello"
    sb.call("bump", rw + 8, 3)
    assert bytes(view[8:16]) == (3).to_bytes(8, "little")  # live
    view.release()
    sb.memory.protect(rw, 4096, "read")
    ro = sb.memory.view(rw, 16)
    assert ro.readonly and bytes(ro[:5]) == b"hello"
    with pytest.raises(TypeError):
        ro[0] = 1
    ro.release()
    with pytest.raises(vmcore.MemoryAccessError):
        sb.memory.view(0x4000_0000, 16)
    with pytest.raises(vmcore.MemoryAccessError):
        sb.memory.view(rw + sb.memory_map.rw_data_size - 8, 4096 * 16)


def test_view_blocks_remapping_and_never_dangles(mode):
    sb = mode.sandbox(COUNTER)
    rw = _rw(sb)
    snap = sb.snapshot()
    view = sb.memory.view(rw, 4096)
    for action in (sb.reset, lambda: sb.restore(snap), lambda: sb.memory.protect(rw, 4096, "read")):
        with pytest.raises(BufferError, match="release them first"):
            action()
    view[0] = 7
    with view as again:
        assert again[0] == 7
    sb.reset()  # released: fine now
    view = sb.memory.view(rw, 4096)
    view[1] = 9
    sb.close()  # closing never fails, and the view still reads the memory it had
    assert view[1] == 9
    view.release()
    # the memory was not recycled into a new sandbox while the view was alive
    fresh = mode.sandbox(COUNTER)
    assert fresh.memory.read(rw, 4) == bytes(4)


def test_read_into_and_view_with_numpy_and_array(mode):
    sb = mode.sandbox(COUNTER)
    rw = _rw(sb)
    sb.call("fill", rw, 256, 3)
    buf = array.array("I", bytes(64))
    sb.memory.read_into(rw, buf)
    assert set(buf) == {0x03030303}
    np = pytest.importorskip("numpy")
    out = np.zeros(32, dtype=np.uint32)
    sb.memory.read_into(rw, out)
    assert (out == 0x03030303).all()
    with sb.memory.view(rw, 256) as view:
        arr = np.frombuffer(view, dtype=np.uint8)
        assert arr.sum() == 3 * 256
        del arr


# -- DOOM: one init, many games -------------------------------------------------
DOOM, WAD, MISSING = doom_paths()


def _doom_hosts(rom, frames):
    def video(caller, address, width, height):
        frames.append(hashlib.sha256(caller.memory.read(address, width * height * 4)).hexdigest())
    return {"ext_rom_size": lambda c: len(rom),
            "ext_rom_read": lambda c, p, o, n: c.memory.write(p, rom[o:o + n]),
            "ext_output_video": video, "ext_output_audio": lambda c, a, s: None,
            "ext_stdout": lambda c, b, n: n}


@pytest.mark.skipif(bool(MISSING), reason=MISSING)
def test_doom_many_games_from_one_init(mode):
    rom = WAD.read_bytes()
    doom = vmcore.Program.load(str(DOOM))
    ticks = 5
    fresh_frames: list = []
    fresh = mode.sandbox(doom, page_size=PAGE_SIZE, gas=1 << 62, hostcalls=_doom_hosts(rom, fresh_frames))
    fresh.call("ext_initialize")
    for _ in range(ticks):
        fresh.call("ext_tick")
    expected = fresh_frames[1:]
    fresh.close()

    frames: list = []
    sb = mode.sandbox(doom, page_size=PAGE_SIZE, gas=1 << 62, hostcalls=_doom_hosts(rom, frames))
    sb.call("ext_initialize")
    snap = sb.snapshot()
    for game in range(3):
        del frames[:]
        for _ in range(ticks):
            sb.call("ext_tick")
        assert frames == expected, game
        sb.restore(snap)
    sb.close()
    fork_frames: list = []
    fork = vmcore.Sandbox.from_snapshot(snap, hostcalls=_doom_hosts(rom, fork_frames), **mode.kwargs)
    for _ in range(ticks):
        fork.call("ext_tick")
    assert fork_frames == expected
    fork.close()
