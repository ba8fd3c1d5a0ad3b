"""What debug info costs (plain wall-clock timing, best of --repeat; noisy
on a loaded machine: compare figures from one run only).

    python perf/bench_debuginfo.py PROGRAM.polkavm [--repeat 5]

PROGRAM should carry debug info (PolkaVM's examples/quake/code/
quake.polkavm does; a synthetic one is assembled when none is given).
Prints: load time (debug info is not decoded at load), the first
``source_location`` (decodes the range table and one line program), one
more lookup in an already decoded range, every instruction's location,
a Trap's guest_traceback, and ``disasm --source``.
"""
from __future__ import annotations

import argparse
import io
import sys
import time
from contextlib import redirect_stdout

import vmcore
from vmcore import _engine, debuginfo
from vmcore.asm import assemble
from vmcore.disasm import lines


def _synthetic() -> bytes:
    body = []
    for i in range(5000):
        body.append(f"%loc f{i // 50} src/f{i // 50}.c:{i % 50 + 1}:3 -> inner src/inner.h:{i % 7 + 1}")
        body.append("    a0 = a0 + a1")
    return assemble("pub @main:\n" + "\n".join(body) + "\n    trap\n")


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("program", nargs="?")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    blob = open(args.program, "rb").read() if args.program else _synthetic()
    program = vmcore.Program.from_bytes(blob)
    if not program.has_debug_info:
        print("the program has no debug info", file=sys.stderr)
        return 2
    pcs = [ins[0] for ins in _engine.instructions(program.isa_index, program.code, program.bitmask)]
    middle = pcs[len(pcs) // 2]

    def first():
        vmcore.Program.from_bytes(blob).source_location(middle)

    def every():
        p = vmcore.Program.from_bytes(blob)
        for pc in pcs:
            p.source_location(pc)

    def traceback():
        debuginfo.attach_traceback(vmcore.Trap("t", pc=middle), program)

    def disasm():
        with redirect_stdout(io.StringIO()):
            for _ in lines(program, source=True):
                pass

    program.source_location(middle)
    load = best(lambda: vmcore.Program.from_bytes(blob), args.repeat)
    print(f"program: {len(program.code):,} code bytes, {len(pcs):,} instructions, debug sections "
          f"{sum(len(b) for _, b in program._debug_sections):,} bytes")
    print(f"load:                       {load * 1e3:9.3f} ms")
    print(f"first source_location:      {(best(first, args.repeat) - load) * 1e3:9.3f} ms (after load)")
    print(f"cached source_location:     {best(lambda: program.source_location(middle), 1000) * 1e6:9.3f} us")
    print(f"guest_traceback (cached):   {best(traceback, 1000) * 1e6:9.3f} us")
    print(f"every instruction:          {(best(every, args.repeat) - load) * 1e3:9.3f} ms "
          f"({len(pcs):,} lookups, fresh program)")
    print(f"disasm --source:            {best(disasm, args.repeat) * 1e3:9.3f} ms "
          f"(plain: {best(lambda: sum(1 for _ in lines(program)), args.repeat) * 1e3:.3f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
