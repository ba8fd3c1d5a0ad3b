"""A small plugin host: untrusted guest "filters" transform records that the
host hands them, through a tiny host API.

Each filter is a guest program exporting `filter(ptr, len) -> new_len`: the
host writes a record into the guest's heap, calls the filter, and reads the
(possibly shortened) record back.  Filters may call two host functions:

* `emit_metric(value)`: report a number to the host (e.g. a count);
* `is_blocked(byte) -> 0/1`: ask the host's policy about a byte.

Each filter runs in its own Sandbox with a gas budget per record, so a
misbehaving filter (an infinite loop, a wild pointer) fails that record with
a typed error and the host carries on with the next one."""
from __future__ import annotations

import sys
from typing import Dict, List

import vmcore
from vmcore.asm import assemble

# Upper-cases ASCII letters in place.
UPPERCASE = """
%isa = jam_v1
%import emit_metric
pub @filter:
    // a0 = ptr, a1 = len
    s0 = a0
    s1 = a0 + a1
    a2 = 0
    jump @done if a1 == 0
@loop:
    a3 = u8 [s0]
    a4 = a3 - 97
    jump @next if a4 >=u 26
    a3 = a3 - 32
    u8 [s0] = a3
    a2 = a2 + 1
@next:
    s0 = s0 + 1
    jump @loop if s0 <u s1
@done:
    a0 = a2
    ecalli 0
    a0 = a1
    ret
"""

# Removes the bytes the host's policy blocks, compacting the record.
CENSOR = """
%isa = jam_v1
%stack_size = 4096
%import is_blocked
pub @filter:
    s0 = a0
    s1 = a0 + a1
    a5 = a0
    u64 [sp - 8] = a0
    jump @done if a1 == 0
@loop:
    a0 = u8 [s0]
    t0 = a0
    ecalli 0
    jump @skip if a0 != 0
    u8 [a5] = t0
    a5 = a5 + 1
@skip:
    s0 = s0 + 1
    jump @loop if s0 <u s1
@done:
    a0 = u64 [sp - 8]
    a0 = a5 - a0
    ret
"""

# A broken filter: loops forever.  Gas metering stops it.
RUNAWAY = """
%isa = jam_v1
pub @filter:
@spin:
    jump @spin
"""


class FilterHost:
    def __init__(self, blocked: bytes = b"") -> None:
        self.blocked = set(blocked)
        self.metrics: List[int] = []
        self.filters: Dict[str, vmcore.Sandbox] = {}
        self.gas_per_record: Dict[str, int] = {}

    def load(self, name: str, source: str, *, gas_per_record: int = 100_000) -> None:
        program = vmcore.Program.from_bytes(assemble(source))
        sb = vmcore.Sandbox(program, gas=gas_per_record, heap=vmcore.HeapPolicy(max_size=1 << 20))
        if "emit_metric" in program.imports:
            sb.register_hostcall("emit_metric", lambda caller, value: self.metrics.append(value))
        if "is_blocked" in program.imports:
            sb.register_hostcall("is_blocked", lambda caller, byte: int(byte in self.blocked))
        self.gas_per_record[name] = gas_per_record
        self.filters[name] = sb

    def run(self, name: str, record: bytes) -> bytes:
        sb = self.filters[name]
        sb.gas = self.gas_per_record[name]
        base = sb.memory_map.heap_base
        if sb.heap_size < len(record):
            sb.sbrk(len(record) - sb.heap_size)
        sb.memory.write(base, record)
        new_len = sb.call("filter", base, len(record))
        if new_len > len(record):
            raise vmcore.VmError(f"filter {name!r} returned length {new_len} > {len(record)}")
        return sb.memory.read(base, new_len)

    def pipeline(self, record: bytes, names: List[str]) -> bytes:
        for name in names:
            record = self.run(name, record)
        return record

    def close(self) -> None:
        for sb in self.filters.values():
            sb.close()


def main() -> int:
    host = FilterHost(blocked=b"!?")
    host.load("upper", UPPERCASE)
    host.load("censor", CENSOR)
    host.load("runaway", RUNAWAY, gas_per_record=10_000)
    records = [b"hello, world!", b"what?! no way", b""]
    out = []
    for record in records:
        result = host.pipeline(record, ["censor", "upper"])
        out.append(result)
        print(f"{record!r:20} -> {result!r}")
    assert out == [b"HELLO, WORLD", b"WHAT NO WAY", b""]
    assert host.metrics == [10, 9, 0], host.metrics
    try:
        host.run("runaway", b"anything")
    except vmcore.OutOfGas as e:
        print(f"runaway filter stopped: {type(e).__name__}: {e}")
    else:
        raise AssertionError("the runaway filter should have run out of gas")
    # The host and the other filters carry on.
    assert host.pipeline(b"still ok?", ["censor", "upper"]) == b"STILL OK"
    host.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
