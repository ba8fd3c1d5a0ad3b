"""A DOOM host on vmcore's public API, for benchmarks and the frame test.

PolkaVM's DOOM port (a latest32 guest, GPL-2.0: never part of this
repository) and a WAD are found through paths:

* the program: $VMCORE_DOOM, else $VMCORE_SHARED/programs/real/doom.polkavm;
* the WAD: $VMCORE_DOOM_WAD, else /usr/share/games/doom/freedoom1.wad
  (Debian's `freedoom` package).

`doom_paths()` gives both, or the reason they are not there; `run_doom()`
runs ext_initialize and then N ext_tick calls (one tick draws one frame)
on a backend / isolation / gas setting and returns the frame hashes every
`every` frames (sha256 of the RGBA framebuffer, as `refharness doom`
prints them) with the milliseconds per tick.  The protocol is the one in
docs/cookbook/doom.md.
"""
from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import vmcore

PAGE_SIZE = 0x4000
DEFAULT_WAD = "/usr/share/games/doom/freedoom1.wad"
GAS_BUDGET = 1 << 62  # gas metering on, never running out


def doom_paths() -> Tuple[Optional[Path], Optional[Path], str]:
    """(program, wad, "") or (None, None, why not)."""
    program = os.environ.get("VMCORE_DOOM")
    if not program and os.environ.get("VMCORE_SHARED"):
        program = str(Path(os.environ["VMCORE_SHARED"]) / "programs" / "real" / "doom.polkavm")
    if not program:
        return None, None, "set VMCORE_DOOM (or VMCORE_SHARED) to find doom.polkavm"
    if not Path(program).is_file():
        return None, None, f"no DOOM program at {program}"
    wad = os.environ.get("VMCORE_DOOM_WAD", DEFAULT_WAD)
    if not Path(wad).is_file():
        return None, None, f"no WAD at {wad} (apt-get install freedoom, or set VMCORE_DOOM_WAD)"
    return Path(program), Path(wad), ""


@dataclass
class DoomRun:
    hashes: Dict[int, str] = field(default_factory=dict)  # frame number -> sha256 of its framebuffer
    init_ms: float = 0.0        # ext_initialize
    ms_per_tick: float = 0.0    # mean over the ext_tick calls
    frames_output: int = 0      # ext_output_video calls (ext_initialize draws one too)
    width: int = 0
    height: int = 0
    stdout: List[str] = field(default_factory=list)


def run_doom(program_path: Path, wad_path: Path, frames: int, *, backend: str = "auto", isolation: str = "auto",
             gas_model: Optional[str] = None, every: int = 100) -> DoomRun:
    """Run DOOM for `frames` ticks; gas_model None: no metering, else the
    model's name (vmcore.gas: "naive", "full", ...) with a budget that
    never runs out."""
    rom = wad_path.read_bytes()
    program = vmcore.Program.load(str(program_path))
    gas = None if gas_model is None else GAS_BUDGET
    sb = vmcore.Sandbox(program, page_size=PAGE_SIZE, backend=backend, isolation=isolation, gas=gas,
                        gas_model=gas_model)
    run = DoomRun()
    last: List[bytes] = [b""]

    @sb.hostcall("ext_rom_size")
    def rom_size(caller):
        return len(rom)

    @sb.hostcall("ext_rom_read")
    def rom_read(caller, pointer, offset, length):
        caller.memory.write(pointer, rom[offset:offset + length])

    @sb.hostcall("ext_output_video")
    def output_video(caller, address, width, height):
        run.frames_output += 1
        run.width, run.height = width, height
        last[0] = caller.memory.read(address, width * height * 4)

    @sb.hostcall("ext_output_audio")
    def output_audio(caller, address, samples):
        pass

    @sb.hostcall("ext_stdout")
    def stdout(caller, buffer, length):
        run.stdout.append(caller.memory.read(buffer, length).decode(errors="replace"))
        return length

    try:
        start = time.perf_counter()
        sb.call("ext_initialize")
        run.init_ms = (time.perf_counter() - start) * 1e3
        start = time.perf_counter()
        for frame in range(1, frames + 1):
            sb.call("ext_tick")
            if frame % every == 0:
                run.hashes[frame] = hashlib.sha256(last[0]).hexdigest()
        run.ms_per_tick = (time.perf_counter() - start) * 1e3 / max(frames, 1)
    finally:
        sb.close()
    return run
