"""Program loading speed: Program.from_bytes on a generated program with
1 MiB of code (jam_v1, so the loader also validates every instruction), and
Program.from_raw_code on the same code blob.

    python perf/bench_loader.py                 # pyperf, several processes
    python perf/bench_loader.py --fast -o out.json
"""
import functools
import struct

import pyperf

from vmcore import isa
from vmcore.program import Program

CODE_SIZE = 1 << 20


def varint(value: int) -> bytes:
    for extra in range(4):
        if value < 1 << (7 * (extra + 1)):
            prefix = (0xFF << (8 - extra)) & 0xFF
            return bytes([prefix | (value >> (8 * extra))]) + value.to_bytes(8, "little")[:extra]
    return b"\xf0" + value.to_bytes(4, "little")


def make_code_blob(code_size: int = CODE_SIZE) -> bytes:
    """`add_64 t0, t1, a0` repeated, then `trap`: code_size bytes of code."""
    add = isa.BY_NAME["add_64"].byte_for("jam_v1")
    trap = isa.BY_NAME["trap"].byte_for("jam_v1")
    n = (code_size - 1) // 3
    code = bytes([add, 0x43, 0x07]) * n + bytes([trap])
    bitmask = bytearray((len(code) + 7) // 8)
    for i in range(0, len(code), 3):
        bitmask[i >> 3] |= 1 << (i & 7)
    return varint(0) + b"\x04" + varint(len(code)) + code + bytes(bitmask)


def make_polkavm(code_blob: bytes) -> bytes:
    exports = varint(1) + varint(0) + varint(4) + b"main"
    body = b"\x05" + varint(len(exports)) + exports + b"\x06" + varint(len(code_blob)) + code_blob + b"\x00"
    return b"PVM\0" + bytes([isa.ISA_NAMES.index("jam_v1")]) + struct.pack("<Q", 13 + len(body)) + body


def main() -> None:
    runner = pyperf.Runner()
    runner.metadata["description"] = "vmcore program loader on 1 MiB of code"
    code_blob = make_code_blob()
    blob = make_polkavm(code_blob)
    runner.metadata["blob_bytes"] = str(len(blob))
    program = Program.from_bytes(blob)
    assert len(program.code) == CODE_SIZE and program.exports == {"main": 0}
    runner.bench_func("load_polkavm_1mib_code", Program.from_bytes, blob)
    runner.bench_func("load_raw_code_1mib_jam_v1", functools.partial(Program.from_raw_code, isa="jam_v1"), code_blob)


if __name__ == "__main__":
    main()
