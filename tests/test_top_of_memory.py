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


# ---- 32-bit programs ----
# The recompiler keeps a 32-bit program's registers zero-extended and
# addresses memory as [base register + offset] in the window itself when
# the offset is below 64 KiB, so an access that should wrap goes into the
# slack after the 4 GiB window and the fault handler finishes it at the
# wrapped address; larger offsets wrap in a 32-bit lea; an absolute
# address below 2^31 is a displacement.

LOW = 0x20000  # a writable page in low memory, where wrapping accesses land
LOADS32 = {1: ["u8", "i8"], 2: ["u16", "i16"], 4: ["i32"]}
STORES32 = {1: "u8", 2: "u16", 4: "u32"}


def addresses32(size: int) -> list:
    """(base, offset): the top-of-memory cases, then base + offset wrapping
    into the low page (a large offset), into the panic zone (through the
    slack), straddling the low page's end, landing unmapped, offsets of
    2^31 or more, and the largest offset the slack covers."""
    return addresses(size) + [
        (TOP - 8, LOW + 8), (TOP - 4, 8), (TOP - 0x100, 0x100 + LOW + PAGE - size // 2 - 1), (TOP - 1, LOW + PAGE + 1),
        (TOP - 1, 0x7FFFFFFF), (LOW + 0x10, 0xFFFFFFF0), (LOW + PAGE, 0x80000000), (0, LOW + 4),
        (TOP - 0xF000, 0xFFFF), (TOP - 0xFFFF + 0x10, 0xFFFF), (TOP - 0x10000 + 0x20, 0x10000)]


def cases32():
    for size in (1, 2, 4):
        for base, offset in addresses32(size):
            where = f"{(base + offset) % TOP:#x}-{base:#x}"
            for kind in LOADS32[size]:
                yield f"load-{kind}-{where}", f"a0 = {kind} [a1 + {offset}]", base
            yield f"store-u{8 * size}-{where}", f"{STORES32[size]} [a1 + {offset}] = a2", base
            yield f"store-imm-u{8 * size}-{where}", f"{STORES32[size]} [a1 + {offset}] = 0x7edcba98", base
        for address in (LOW + 4, TOP - PAGE, 0x7FFFF000, TOP - 2 * PAGE + 8):
            yield f"load-abs-u{8 * size}-{address:#x}", f"a0 = {LOADS32[size][-1]} [{address:#x}]", 0
            yield f"store-abs-u{8 * size}-{address:#x}", f"{STORES32[size]} [{address:#x}] = a2", 0


# Every way a 32-bit program makes a register, then that register as an
# address: a value the recompiler left sign-extended above 32 bits would
# index below the window (the VmCtx alias is right there) or far past it.
# t0 = 0x80000000, t1 = 0xfffff000, t2 = 0x10, s0 = 1, s1 = 0xfff,
# a4 = 0xf080, a5 = 0, ra = 0xffffffff.
PRODUCERS = [
    "a1 = 0xfffff000", "a1 = t1", "a1 = sext8 a4", "a1 = sext16 a4", "a1 = t0 >>a 19", "a1 = t1 >>a 0",
    "a1 = t1 << 0", "a1 = t1 >> 0", "a1 = t2 | 0xfffff000", "a1 = t2 ^ 0xfffff000", "a1 = t2 & 0xfffff000",
    "a1 = 0xfffff010 if a5 == 0", "a1 = 0xfffff010 if s0 != 0", "a1 = t1 if a5 == 0", "a1 = 0xfffff010 - t2",
    "a1 = ~(s1 ^ a5)", "a1 = a5 |~ s1", "a1 = t1 &~ a5", "a1 = maxu(t1, t2)", "a1 = mins(t1, t2)",
    "a1 = maxs(t1, ra)", "a1 = minu(t1, ra)", "a1 = t1 /s s0", "a1 = t1 %u a5", "a1 = t1 /u a5",
    "a1 = t0 /s ra", "a1 = t1 %s ra", "a1 = t1 /u s0", "a1 = t1 mulh s1", "a1 = t1 mulhsu s1",
    "a1 = t1 mulhu s0", "a1 = i8 [0x20000]", "a1 = i16 [0x20000]", "a1 = i32 [0x20000]", "a1 = u8 [0x20000]",
    "a1 = t1 << a5", "a1 = t1 >>a a5", "a1 = t1 >>r 0", "a1 = 0xfffff000 >>r a5", "a1 = 0xfffff000 >>a a5",
    "a1 = 0xfffff000 << a5", "a1 = t1 + a5", "a1 = t1 + 0", "a1 = t1 - a5", "a1 = t1 * s0", "a1 = t1 * 1",
    "a1 = reverse a4", "a1 = t1 <<r a5", "a1 = t1 | a5", "a1 = t1 ^ a5", "a1 = t1 & ra",
    "a1 = t1 >>r a5", "a1 = t1 >> a5", "a1 = t1 %s s0", "a1 = t1 + t2", "a1 = t1 - t2",
    "a1 = cpop t1", "a1 = clz a5", "a1 = ctz t1", "a1 = t1 <u t2",
]


def vector32(name: str, lines: list, base: int, page_map: list) -> dict:
    body = "".join(f"    {line}\n" for line in lines)
    source = f"%isa = latest32\npub @main:\n    a3 = {HALT:#x}\n{body}    jump [a3]\n"
    program = vmcore.Program.from_bytes(asm.assemble(source))
    regs = [0xFFFFFFFF, 0, 0x80000000, 0xFFFFF000, 0x10, 1, 0xFFF, 0x55555555, base, 0x89ABCDEF, 0, 0xF080, 0]
    fill = {a: FILL[a - (TOP - 2 * PAGE):][:n] for a, n, _ in page_map}
    fill[LOW] = FILL[:PAGE]
    return {"name": name, "isa": "latest32", "initial-regs": regs, "initial-pc": 0,
            "initial-page-map": [{"address": a, "length": n, "is-writable": w}
                                 for a, n, w in page_map + [(LOW, PAGE, True)]],
            "initial-memory": [{"address": a, "contents": c} for a, c in fill.items()],
            "initial-gas": 1000, "program": list(code_blob(program.code, program.bitmask, program.jump_table))}


def all_vectors32(map_name: str) -> list:
    page_map = PAGE_MAPS[map_name]
    out = [vector32(f"{map_name}-32-{name}", [line], base, page_map) for name, line, base in cases32()]
    out += [vector32(f"{map_name}-32-made-by-{line}", [line, "u8 [a1 + 0x10] = a2", "a0 = u8 [a1 + 0x20]"], 0,
                     page_map) for line in PRODUCERS]
    return out


@pytest.mark.parametrize("map_name", sorted(PAGE_MAPS))
def test_top_of_memory_32_bit_as_the_interpreter(mode, map_name):
    for v in all_vectors32(map_name):
        want = vectors.run_vector(v)
        got = vectors.run_vector(v, **mode.kwargs)
        assert key(got) == key(want), v["name"]


@pytest.mark.parametrize("map_name", sorted(PAGE_MAPS))
def test_top_of_memory_32_bit_as_polkavm(map_name):
    if REFHARNESS is None:
        pytest.skip("no refharness binary (VMCORE_REFHARNESS / VMCORE_SHARED)")
    vs = all_vectors32(map_name)
    filled = fuzz_reference.run_oracle(REFHARNESS, vs)
    for v, (expected, error) in zip(vs, filled):
        assert expected is not None, (v["name"], error)
        for m in modes.available():
            assert vectors.compare(expected, vectors.run_vector(v, **m.kwargs)) == [], (v["name"], m.name)


def test_the_32_bit_cases_reach_every_ending():
    """Wrapping accesses succeed in the low page, trap in the panic zone and
    fault past the low page; the producers' addresses reach the top page
    (halt when it is writable, a fault when not) and the low half's
    unmapped pages."""
    seen = {}
    for map_name in PAGE_MAPS:
        for v in all_vectors32(map_name):
            o = vectors.run_vector(v)
            seen.setdefault((map_name, v["name"].split("-32-")[1].split("-")[0]), set()).add(
                (o.status, o.page_fault_address))
    for map_name in PAGE_MAPS:
        assert {"halt", "panic", "page-fault"} <= {s for s, _ in seen[(map_name, "load")]}, map_name
        assert ("page-fault", LOW + PAGE) in seen[(map_name, "store")], map_name
    assert ("halt", None) in seen[("top-writable", "made")]
    assert ("page-fault", TOP - PAGE) in seen[("top-unmapped", "made")]
    assert ("page-fault", 0x80000000) in seen[("top-unmapped", "made")]


def test_wrapping_through_every_register(mode):
    """The fault handler reads the index register off the instruction: a
    wrapping load and store through each guest register (r12 and r13, whose
    low bits alias the no-index and rip-relative encodings, among them)."""
    from vmcore import isa as _isa
    for i, reg in enumerate(_isa.REGISTER_NAMES):
        if reg == "a3":
            continue
        lines = [f"a3 = {HALT:#x}", f"{reg} = {TOP - 8:#x}", f"u16 [{reg} + {LOW + 0x18:#x}] = 0x1234",
                 f"{'a0' if reg != 'a0' else 'a1'} = u16 [{reg} + {LOW + 0x17:#x}]"]
        v = vector32(f"through-{reg}", lines, 0, PAGE_MAPS["top-unmapped"])
        want = vectors.run_vector(v)
        assert want.status == "halt", reg
        assert key(vectors.run_vector(v, **mode.kwargs)) == key(want), reg
