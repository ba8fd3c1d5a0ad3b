"""Where DOOM's time goes in the recompiler's code: a profile of the sandbox
process (perf record, cpu-clock samples) mapped back to guest basic blocks,
with the native code of the hottest blocks disassembled (capstone).

    python perf/profile_doom.py [--frames N] [--gas] [--top K] [--perf PATH]

Needs `perf` (software cpu-clock events are enough: no hardware counters
on this VM), capstone (the test extras) and DOOM (perf/_doom.py says where
it is looked for).  It prints the sandbox process's CPU time per frame
(user + system, from /proc: steadier than wall-clock on a loaded machine),
the share of samples in generated code, and per hot block: samples, guest
instructions, native instructions.  The code is recompiled here with the
sandbox's settings (same compiler, same layout) to read it."""
from __future__ import annotations

import argparse
import collections
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import vmcore  # noqa: E402
from vmcore import _engine  # noqa: E402
from _doom import doom_paths, GAS_BUDGET, PAGE_SIZE  # noqa: E402

NATIVE_CODE = 0x100000000


def gas_args(gas_model, isa):
    if gas_model is None:
        return {}
    model = vmcore.gas.resolve(gas_model, isa)
    return {"gas_kind": model.kind, "memory_access_cost": model.memory_access_cost}


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--gas", action="store_true", help="gas metering on (the naive model, as perf/run.py's row)")
    ap.add_argument("--top", type=int, default=12, help="hot blocks to disassemble")
    ap.add_argument("--perf", default="perf", help="the perf binary ('' to only time)")
    args = ap.parse_args()
    program_path, wad_path, why = doom_paths()
    if program_path is None:
        print(f"skipped: {why}")
        return 0
    rom = wad_path.read_bytes()
    program = vmcore.Program.load(str(program_path))
    gas_model = "naive" if args.gas else None
    sb = vmcore.Sandbox(program, page_size=PAGE_SIZE, backend="compiler", isolation="process",
                        gas=GAS_BUDGET if args.gas else None, gas_model=gas_model)
    sb.hostcall("ext_rom_size")(lambda caller: len(rom))
    sb.hostcall("ext_rom_read")(lambda caller, p, o, n: caller.memory.write(p, rom[o:o + n]))
    sb.hostcall("ext_output_video")(lambda caller, a, w, h: None)
    sb.hostcall("ext_output_audio")(lambda caller, a, n: None)
    sb.hostcall("ext_stdout")(lambda caller, b, n: n)
    data = tempfile.mkdtemp(prefix="vmcore-profile-")
    record = None
    try:
        sb.call("ext_initialize")
        pid = sb.pid
        if args.perf:
            record = subprocess.Popen([args.perf, "record", "-q", "-e", "cpu-clock", "-F", "4000", "-p", str(pid),
                                       "-o", f"{data}/perf.data"], stderr=subprocess.DEVNULL)
            time.sleep(0.5)
        cpu0, t0 = cpu_seconds(pid), time.perf_counter()
        for _ in range(args.frames):
            sb.call("ext_tick")
        cpu1, t1 = cpu_seconds(pid), time.perf_counter()
    finally:
        if record is not None:
            record.send_signal(signal.SIGINT)
            record.wait()
        sb.close()
    print(f"{'gas metered' if args.gas else 'no gas'}: {args.frames} frames, sandbox CPU "
          f"{(cpu1 - cpu0) * 1e3 / args.frames:.3f} ms/frame, wall {(t1 - t0) * 1e3 / args.frames:.3f} ms/frame, "
          f"load {os.getloadavg()[0]:.2f}")
    if record is None:
        return 0
    script = subprocess.run([args.perf, "script", "-i", f"{data}/perf.data", "-F", "ip"], capture_output=True,
                            text=True).stdout.split()
    ips = [int(x, 16) for x in script]
    compiled = _engine.CompiledCode(program.isa_index, program.code, program.bitmask, list(program.jump_table),
                                    gas_metering=args.gas, interruptible=True,
                                    parallel=len(program.code) >= 64 * 1024,
                                    **gas_args(gas_model, program.isa))
    code = compiled.code
    entries = compiled.map_entries()  # (pc, entry, body, info)
    starts = [e for e in entries if e[3] & _engine.INFO_BLOCK_START]
    block_native = [e[1] for e in starts]
    import bisect
    inside = [ip - NATIVE_CODE for ip in ips if NATIVE_CODE <= ip < NATIVE_CODE + len(code)]
    print(f"samples {len(ips)}, in generated code {len(inside)} ({100 * len(inside) / max(len(ips), 1):.1f}%)")
    per_block = collections.Counter()
    per_offset = collections.Counter(inside)
    for off in inside:
        k = bisect.bisect_right(block_native, off) - 1
        if k >= 0:
            per_block[k] += 1
    import capstone
    md = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)

    def block_code(k):
        """The block's native instructions and its guest instructions (the
        stubs written after an unconditional jmp left out)."""
        lo = block_native[k]
        hi = block_native[k + 1] if k + 1 < len(block_native) else len(code)
        guests = [e for e in entries if lo <= e[1] < hi]
        insns = []
        for i in md.disasm(code[lo:hi], NATIVE_CODE + lo):
            insns.append(i)
            if i.mnemonic == "jmp" and i.address - NATIVE_CODE >= guests[-1][1]:
                break
        return guests, insns

    guest_total = native_total = 0
    weighted = collections.Counter()
    for k, n in per_block.items():
        guests, insns = block_code(k)
        guest_total += n * len(guests)
        native_total += n * len(insns)
        for i in insns:
            weighted[i.mnemonic] += n
    print(f"sample-weighted native instructions per guest instruction: {native_total / max(guest_total, 1):.2f}")
    print("sample-weighted mnemonic mix:", ", ".join(f"{m} {100 * c / max(native_total, 1):.1f}%"
                                              for m, c in weighted.most_common(16)))
    for k, n in per_block.most_common(args.top):
        guests, insns = block_code(k)
        print(f"\n== block pc {starts[k][0]}: {n} samples ({100 * n / max(len(inside), 1):.1f}%), "
              f"{len(guests)} guest -> {len(insns)} native instructions")
        names = {e[1]: e[0] for e in guests}
        for i in insns:
            mark = f"pc {names[i.address - NATIVE_CODE]:>7}" if i.address - NATIVE_CODE in names else " " * 10
            print(f"  {mark} {per_offset.get(i.address - NATIVE_CODE, 0):5d}  {i.address:#x}  {i.mnemonic} {i.op_str}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
