"""Snapshot / restore / fork and zero-copy view figures on DOOM (plain
wall-clock timing: medians, noisy on a loaded machine).

    python perf/_snapshot.py [--doom PATH] [--wad PATH] [--ticks N] [--repeat N]
    python perf/run.py --only snapshot          (the same, through run.py)

For every mode (interpreter inline, interpreter in a sandbox process,
compiler in a sandbox process): ext_initialize once, snapshot, then
`repeat` times: N ext_tick calls and sb.restore(snapshot), timing the
restore (its cost follows what the ticks changed, not DOOM's 17 MB of
data).  Then the memory one extra fork (Sandbox.from_snapshot) costs,
right after creation and after N ticks: this process's Private_Dirty
(+ shmem) from /proc/self/smaps_rollup for an inline fork; a sandbox
process's fork gets the snapshot's pages copied into its own memory
(`stored` column).  Last, one DOOM frame (640x400 RGBA, 1 MB) read via
memory.read() (a new bytes) vs read_into() into a reused bytearray vs
memory.view() (creating the view, one byte read, release).
"""
from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _doom import PAGE_SIZE, doom_paths  # noqa: E402

import vmcore  # noqa: E402
from vmcore.pool import cpu_supports_native  # noqa: E402

MODES = (("interpreter", "inline"), ("interpreter", "process"), ("compiler", "process"))


def _hosts(rom: bytes, frame: Dict[str, tuple]) -> dict:
    def video(caller, address, width, height):
        frame["fb"] = (address, width * height * 4)
    return {"ext_rom_size": lambda c: len(rom),
            "ext_rom_read": lambda c, p, o, n: c.memory.write(p, rom[o:o + n]),
            "ext_output_video": video, "ext_output_audio": lambda c, a, s: None,
            "ext_stdout": lambda c, b, n: n}


def _private_kib() -> int:
    """This process's private dirty + shared-memory pages (KiB)."""
    fields = {}
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines()[1:]:
        name, value = line.split(":", 1)
        fields[name] = int(value.split()[0])
    return fields.get("Private_Dirty", 0) + fields.get("Pss_Shmem", 0)


def _median_us(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e6)
    return statistics.median(times)


def measure(program_path: Path, wad_path: Path, ticks: int = 1, repeat: int = 20) -> List[dict]:
    rom = wad_path.read_bytes()
    program = vmcore.Program.load(str(program_path))
    rows = []
    for backend, isolation in MODES:
        row: dict = {"mode": f"{backend}/{isolation}"}
        why = cpu_supports_native() if backend == "compiler" else None
        if why:
            row["skipped"] = why
            rows.append(row)
            continue
        frame: Dict[str, tuple] = {}
        sb = vmcore.Sandbox(program, page_size=PAGE_SIZE, backend=backend, isolation=isolation,
                            hostcalls=_hosts(rom, frame))
        sb.call("ext_initialize")
        start = time.perf_counter()
        snap = sb.snapshot()
        row["snapshot_ms"] = (time.perf_counter() - start) * 1e3
        row["stored_mb"] = snap.stored_bytes / 2**20
        row["clean_restore_us"] = _median_us(lambda: sb.restore(snap), repeat)
        restores, games = [], []
        for _ in range(repeat):
            start = time.perf_counter()
            for _ in range(ticks):
                sb.call("ext_tick")
            middle = time.perf_counter()
            sb.restore(snap)
            end = time.perf_counter()
            restores.append((end - middle) * 1e6)
            games.append((end - start) * 1e3)
        row["restore_us"] = statistics.median(restores)
        row["game_ms"] = statistics.median(games)  # the ticks from the snapshot + the restore
        # one frame read three ways
        sb.call("ext_tick")
        address, length = frame["fb"]
        into = bytearray(length)
        row["read_us"] = _median_us(lambda: sb.memory.read(address, length), repeat)
        row["read_into_us"] = _median_us(lambda: sb.memory.read_into(address, into), repeat)

        def via_view():
            with sb.memory.view(address, length) as view:
                view[length - 1]
        row["view_us"] = _median_us(via_view, repeat)
        sb.restore(snap)
        before = _private_kib()
        fork = vmcore.Sandbox.from_snapshot(snap, backend=backend, isolation=isolation,
                                            hostcalls=_hosts(rom, frame))
        row["fork_kib"] = _private_kib() - before
        for _ in range(ticks):
            fork.call("ext_tick")
        row["fork_after_ticks_kib"] = _private_kib() - before
        fork.close()
        sb.close()
        rows.append(row)
    return rows


def markdown(rows: List[dict], ticks: int) -> str:
    head = ("| mode | snapshot ms | stored MB | restore, nothing changed (us) | restore after "
            f"{ticks} tick(s) (us) | {ticks} tick(s) + restore (ms) | fork KiB (new / after {ticks} tick(s)) | frame read() us | read_into us | "
            "view() us |\n|---|---|---|---|---|---|---|---|---|---|")
    lines = [head]
    for r in rows:
        if "skipped" in r:
            lines.append(f"| {r['mode']} | skipped: {r['skipped']} |")
            continue
        lines.append(f"| {r['mode']} | {r['snapshot_ms']:.1f} | {r['stored_mb']:.1f} | {r['clean_restore_us']:.0f} "
                     f"| {r['restore_us']:.0f} | {r['game_ms']:.2f} | {r['fork_kib']:,} / {r['fork_after_ticks_kib']:,} "
                     f"| {r['read_us']:.0f} | {r['read_into_us']:.0f} | {r['view_us']:.1f} |")
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None, doom: Optional[str] = None, wad: Optional[str] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--doom")
    parser.add_argument("--wad")
    parser.add_argument("--ticks", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args(argv)
    import os
    if args.doom or doom:
        os.environ["VMCORE_DOOM"] = args.doom or doom
    if args.wad or wad:
        os.environ["VMCORE_DOOM_WAD"] = args.wad or wad
    program, wad_path, missing = doom_paths()
    if missing:
        print(f"snapshot benchmark skipped: {missing}")
        return 0
    print(markdown(measure(program, wad_path, args.ticks, args.repeat), args.ticks))
    return 0


if __name__ == "__main__":
    sys.exit(main())
