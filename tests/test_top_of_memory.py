"""Accesses at the top of the address space (0xfffffxxx, ending at or
wrapping past 0xffffffff), loads and stores of every size, with the top
page writable, read only and not mapped: every backend ends each of them
as the interpreter does (status, pc, gas, registers, memory), and as
PolkaVM does when the refharness binary is there.

The recompiler does not bounds-check an access through a register: the
window's top host page stays PROT_NONE in native code and its fault
handler decides, emulating the accesses the guest may make there
(include/vmcore/compiler.h, Faults)."""
from __future__ import annotations

import pytest

import vmcore
from vmcore import asm, fuzz_reference, vectors
from vmcore.fuzz_cases import code_blob

import modes
from conftest import REFHARNESS

TOP = 1 << 32
HALT = 0xFFFF0000
PAGE = 0x1000
FILL = [(0x91 + 7 * k) & 0xFF for k in range(2 * PAGE)]

LOADS = {1: ["u8", "i8"], 2: ["u16", "i16"], 4: ["u32", "i32"], 8: ["u64"]}
STORES = {1: "u8", 2: "u16", 4: "u32", 8: "u64"}

# the two top pages: both writable; the top one read only; the top one not mapped
PAGE_MAPS = {
    "top-writable": [(TOP - 2 * PAGE, 2 * PAGE, True)],
    "top-read-only": [(TOP - 2 * PAGE, PAGE, True), (TOP - PAGE, PAGE, False)],
    "top-unmapped": [(TOP - 2 * PAGE, PAGE, True)],
}


def addresses(size: int) -> list:
    """(base register, offset): across the guard page's lower edge, inside
    it, the last access that ends below 0xffffffff, those ending at and past
    it, and a base + offset that wraps."""
    out = [(TOP - PAGE - size // 2 - 1, 0), (TOP - PAGE, 0), (TOP - 0x800, 0x10), (TOP - 1 - size, 0),
           (TOP - size, 0), (TOP - 2, 0), (TOP - 1, 0), (TOP - 0x100, 0x100 - size + 1)]
    return out


def cases():
    for size in (1, 2, 4, 8):
        for base, offset in addresses(size):
            for kind in LOADS[size]:
                yield f"load-{kind}-{base + offset:#x}", f"a0 = {kind} [a1 + {offset}]", base
            yield f"store-u{8 * size}-{base + offset:#x}", f"{STORES[size]} [a1 + {offset}] = a2", base
            yield f"store-imm-u{8 * size}-{base + offset:#x}", f"{STORES[size]} [a1 + {offset}] = 0x7edcba98", base


def vector(name: str, line: str, base: int, page_map: list) -> dict:
    source = f"%isa = latest64\npub @main:\n    a3 = {HALT:#x}\n    {line}\n    jump [a3]\n"
    program = vmcore.Program.from_bytes(asm.assemble(source))
    regs = [0] * 13
    regs[7] = 0x5555555555555555  # a0: a load's destination
    regs[8] = base  # a1
    regs[9] = 0x0123456789ABCDEF  # a2: a store's source
    return {"name": name, "isa": "latest64", "initial-regs": regs, "initial-pc": 0,
            "initial-page-map": [{"address": a, "length": n, "is-writable": w} for a, n, w in page_map],
            "initial-memory": [{"address": a, "contents": FILL[a - (TOP - 2 * PAGE):][:n]} for a, n, _ in page_map],
            "initial-gas": 1000, "program": list(code_blob(program.code, program.bitmask, program.jump_table))}


def all_vectors(map_name: str) -> list:
    return [vector(f"{map_name}-{name}", line, base, PAGE_MAPS[map_name]) for name, line, base in cases()]


def key(outcome) -> tuple:
    return (outcome.status, outcome.pc, outcome.gas, tuple(outcome.regs), repr(outcome.memory),
            outcome.page_fault_address, outcome.trap_reason)


@pytest.mark.parametrize("map_name", sorted(PAGE_MAPS))
def test_top_of_memory_as_the_interpreter(mode, map_name):
    for v in all_vectors(map_name):
        want = vectors.run_vector(v)
        got = vectors.run_vector(v, **mode.kwargs)
        assert key(got) == key(want), v["name"]


@pytest.mark.parametrize("map_name", sorted(PAGE_MAPS))
def test_top_of_memory_as_polkavm(map_name):
    if REFHARNESS is None:
        pytest.skip("no refharness binary (VMCORE_REFHARNESS / VMCORE_SHARED)")
    vs = all_vectors(map_name)
    filled = fuzz_reference.run_oracle(REFHARNESS, vs)
    for v, (expected, error) in zip(vs, filled):
        assert expected is not None, (v["name"], error)
        for m in modes.available():
            assert vectors.compare(expected, vectors.run_vector(v, **m.kwargs)) == [], (v["name"], m.name)


def test_the_cases_reach_every_ending():
    """The cases are not vacuous: with the top page writable some accesses
    there succeed, some wrap and trap; unmapped, some fault at the top page."""
    seen = {}
    for map_name in PAGE_MAPS:
        for v in all_vectors(map_name):
            o = vectors.run_vector(v)
            seen.setdefault(map_name, set()).add(o.status)
    assert {"halt", "panic"} <= seen["top-writable"]
    assert {"halt", "page-fault"} <= seen["top-unmapped"]
    assert {"halt", "page-fault", "panic"} <= seen["top-read-only"]
