"""``python -m vmcore demo``: assemble the bundled guest, show what vmcore
sees in it, then call it with a Python hostcall and report the result, the
gas used and the timings."""
from __future__ import annotations

import time
from importlib import resources


def _bundled(name: str) -> str:
    return resources.files("vmcore.data").joinpath(name).read_text()


def main(args) -> int:
    from vmcore import asm, disasm
    from vmcore.__main__ import describe
    from vmcore.program import Program
    from vmcore.sandbox import Sandbox

    n = args.iterations
    if n < 0:
        raise ValueError("--iterations must be >= 0")
    source = _bundled("demo.asm")
    t0 = time.perf_counter()
    blob = asm.assemble(source)
    t1 = time.perf_counter()
    program = Program.from_bytes(blob)
    t2 = time.perf_counter()
    print("== the guest program (vmcore/data/demo.asm) ==")
    print(describe(program))
    print("disassembly:")
    for line in list(disasm.lines(program))[:20]:
        print("   ", line)
    print(f"assembled in {(t1 - t0) * 1e3:.2f} ms, loaded in {(t2 - t1) * 1e6:.1f} us ({len(blob)} bytes)")

    def scale(caller, i: int) -> int:
        return (i * i) % 1000

    gas = 1000 * n + 10_000  # ample under any cost model
    t3 = time.perf_counter()
    sb = Sandbox(program, gas=gas, hostcalls={"scale": scale})
    t4 = time.perf_counter()
    result = sb.call("main", n)
    t5 = time.perf_counter()
    expected = sum((i * i) % 1000 for i in range(n)) & 0xFFFFFFFFFFFFFFFF
    print()
    print(f"== call main({n}) with a Python hostcall 'scale' ({sb.backend}/{sb.isolation}) ==")
    print(f"result:        {result} ({'matches' if result == expected else 'DOES NOT MATCH'} the Python computation)")
    print(f"gas used:      {gas - sb.gas} of {gas} ({sb.gas_model} model)")
    print(f"instantiate:   {(t4 - t3) * 1e6:.1f} us")
    print(f"call:          {(t5 - t4) * 1e3:.3f} ms, {n} hostcalls"
          + (f", {(t5 - t4) / n * 1e9:.0f} ns per guest->host->guest round trip" if n else ""))
    sb.close()
    return 0 if result == expected else 1
