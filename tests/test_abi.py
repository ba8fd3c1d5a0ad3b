"""The VmCtx ABI as compiled (vmcore.abi) against the design and against the
header text it is generated from."""
import re

import pytest

from conftest import ROOT
from vmcore import abi

VMCTX_H = ROOT / "include" / "vmcore" / "vmctx.h"
CACHE_LINE = 64

# Every field the design names (DESIGN.md, "The VmCtx").
DESIGN_FIELDS = [
    "gas", "futex", "jump_into", "program_counter", "next_program_counter", "arg", "arg2", "regs",
    "next_native_program_counter", "heap_info", "heap_info.heap_top", "heap_info.heap_threshold",
    "shm_memory_map_offset", "shm_memory_map_count", "shm_code_offset", "shm_code_length",
    "shm_jump_table_offset", "shm_jump_table_length", "sysreturn_address", "uffd_enabled", "heap_base",
    "heap_initial_threshold", "heap_max_size", "page_size", "counters", "counters.syscall_wait_loop_start",
    "counters.syscall_futex_wait", "init", "message_length", "message_buffer",
]

DESIGN_FUTEX = {
    "BUSY": 0, "IDLE": 1, "ECALLI": 3, "TRAP": 5, "SIGNAL": 7, "STEP": 9, "NOT_ENOUGH_GAS": 11,
    "PAGEFAULT": 13, "LONGJUMP": 0xFFFFFFFF,
}


@pytest.fixture(scope="module")
def layout():
    return abi.vmctx_layout()


@pytest.fixture(scope="module")
def header():
    return VMCTX_H.read_text()


def _macro_body(text, name):
    """The body of a multi-line `#define NAME(X) ...` (continuation lines)."""
    m = re.search(r"#define\s+" + name + r"\(X\)((?:.*\\\n)*.*)", text)
    assert m, f"{name} not found in vmctx.h"
    return m.group(1)


def _struct_members(text, name):
    """Member names of `typedef struct name { ... } name;` (arrays and nested
    struct types included, comments stripped)."""
    m = re.search(r"typedef struct " + name + r"\s*\{(.*?)\}\s*" + name + ";", text, re.S)
    assert m, f"struct {name} not found"
    body = re.sub(r"/\*.*?\*/", "", m.group(1), flags=re.S)
    members = []
    for decl in body.split(";"):
        decl = decl.strip()
        if not decl:
            continue
        ident = re.search(r"(\w+)\s*(\[[^\]]*\])?\s*$", decl)
        assert ident, decl
        type_m = re.match(r"(?:_Alignas\([^)]*\)\s*)?(?:_Atomic\s+)?(\w+)", decl)
        members.append((ident.group(1), type_m.group(1)))
    return members


def test_every_design_field_is_reported(layout):
    missing = [f for f in DESIGN_FIELDS if f not in layout]
    assert not missing, f"vmctx_layout() lacks {missing}"


def test_field_sizes(layout):
    assert layout["gas"][1] == 8
    assert layout["futex"][1] == 4
    assert layout["regs"][1] == 13 * 8
    assert layout["message_buffer"][1] == 512
    assert layout["heap_info"][1] == 16
    assert layout["heap_info.heap_top"][1] == 8
    assert layout["heap_info.heap_threshold"][1] == 8
    assert layout["counters.syscall_wait_loop_start"][1] == 8
    assert layout["counters.syscall_futex_wait"][1] == 8
    for name in ("program_counter", "next_program_counter", "arg", "arg2", "heap_base", "heap_initial_threshold",
                 "heap_max_size", "page_size", "message_length"):
        assert layout[name][1] == 4, name
    for name in ("jump_into", "next_native_program_counter", "shm_memory_map_offset", "shm_memory_map_count",
                 "shm_code_offset", "shm_code_length", "shm_jump_table_offset", "shm_jump_table_length",
                 "sysreturn_address"):
        assert layout[name][1] == 8, name


def test_size_fits_a_page(layout):
    assert 0 < abi.VMCTX_SIZE <= 4096
    for name, (offset, size) in layout.items():
        assert offset + size <= abi.VMCTX_SIZE, name


def test_alignment(layout):
    assert layout["counters"][0] % CACHE_LINE == 0
    for name, (offset, size) in layout.items():
        if size in (2, 4, 8):
            assert offset % size == 0, f"{name} at {offset} is not naturally aligned"
    assert layout["regs"][0] % 8 == 0


def test_hot_fields_on_separate_cache_lines(layout):
    line = {name: offset // CACHE_LINE for name, (offset, _) in layout.items()}
    assert line["gas"] != line["futex"]
    # gas is written by generated code every block: nothing the host writes
    # in the handshake may share its line.
    for other in ("futex", "program_counter", "next_program_counter", "jump_into", "arg", "arg2", "regs"):
        assert line[other] != line["gas"], other
    # the whole gas word sits on one line
    assert (layout["gas"][0] + 7) // CACHE_LINE == line["gas"]


def test_offsets_baked_into_generated_code(layout, header):
    for field, macro in (("futex", "VMCTX_OFFSET_FUTEX"), ("gas", "VMCTX_OFFSET_GAS"), ("regs", "VMCTX_OFFSET_REGS")):
        m = re.search(r"#define\s+" + macro + r"\s+(\w+)", header)
        assert m, macro
        assert layout[field][0] == int(m.group(1), 0), field


def test_no_overlapping_fields(layout):
    def parent(name):
        return name.rsplit(".", 1)[0] if "." in name else None

    names = sorted(layout)
    for name in names:
        p = parent(name)
        if p is not None:
            po, ps = layout[p]
            o, s = layout[name]
            assert po <= o and o + s <= po + ps, f"{name} escapes {p}"
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            if a.startswith(b + ".") or b.startswith(a + "."):
                continue  # a member inside its aggregate
            (ao, asz), (bo, bsz) = layout[a], layout[b]
            assert ao + asz <= bo or bo + bsz <= ao, f"{a} {layout[a]} overlaps {b} {layout[b]}"


def test_futex_states_match_design():
    assert abi.FUTEX_STATES == DESIGN_FUTEX
    for name, value in DESIGN_FUTEX.items():
        assert getattr(abi, "FUTEX_" + name) == value
    # Every stop reason has the IDLE bit; BUSY and LONGJUMP are distinct from all.
    for name, value in DESIGN_FUTEX.items():
        if name not in ("BUSY", "LONGJUMP"):
            assert value & 1, name
    assert len(set(DESIGN_FUTEX.values())) == len(DESIGN_FUTEX)


def test_futex_states_header_table_is_complete(header):
    body = _macro_body(header, "VMCTX_FUTEX_STATES")
    names = re.findall(r'X\("(\w+)"', body)
    assert sorted(names) == sorted(abi.FUTEX_STATES)


def test_addresses():
    a = abi.ADDRESSES
    assert a["VM_ADDR_RETURN_TO_HOST"] == 0xFFFF0000
    assert a["VM_MIN_PAGE_SIZE"] == 0x1000
    assert a["VM_MAX_PAGE_SIZE"] == 0x10000
    assert a["VM_MAXIMUM_CODE_SIZE"] == 32 * 1024 * 1024
    assert a["VM_MAXIMUM_JUMP_TABLE_ENTRIES"] == 16 * 1024 * 1024
    assert a["VM_MAXIMUM_IMPORT_COUNT"] == 1024
    assert a["VM_CODE_ADDRESS_ALIGNMENT"] == 2
    assert a["VM_ADDR_NATIVE_STACK_HIGH"] > a["VM_ADDR_NATIVE_STACK_LOW"]
    for name, value in a.items():
        assert getattr(abi, name) == value


def test_header_field_table_matches_layout(layout, header):
    """The X-macro is what vmcore.abi is generated from: its names must be
    exactly the layout's keys."""
    body = _macro_body(header, "VMCTX_FIELDS")
    entries = re.findall(r'X\("([\w.]+)",\s*([\w.]+)\)', body)
    assert entries, "no VMCTX_FIELDS entries parsed"
    for name, member in entries:
        assert name == member, f"introspection name {name!r} does not match member {member!r}"
    assert sorted(n for n, _ in entries) == sorted(layout)
    assert len(entries) == len(layout), "duplicate VMCTX_FIELDS entries"


def test_every_struct_member_is_introspected(layout, header):
    """A field added to `struct vmctx` (or to its nested heap_info/counters)
    without a VMCTX_FIELDS entry is invisible to Python: catch that."""
    members = _struct_members(header, "vmctx")
    nested = {"vmctx_heap_info", "vmctx_counters"}
    expected = set()
    for name, type_name in members:
        expected.add(name)
        if type_name in nested:
            expected.update(f"{name}.{sub}" for sub, _ in _struct_members(header, type_name))
    assert {"gas", "futex", "regs", "message_buffer", "heap_info.heap_top"} <= expected, "header parse broke"
    assert expected - set(layout) == set(), f"struct members without introspection: {expected - set(layout)}"
    assert set(layout) - expected == set(), f"introspected names not in the struct: {set(layout) - expected}"


def test_guest_abi_constants_come_from_abi_h():
    """include/vmcore/abi.h is the one definition: the calling convention,
    register count, exit/entry codes, permissions and page sizes."""
    text = (ROOT / "include" / "vmcore" / "abi.h").read_text()
    assert abi.ARG_REGS == (7, 8, 9, 10, 11, 12, 2, 3, 4)
    assert abi.ARG_NAMES == ("a0", "a1", "a2", "a3", "a4", "a5", "t0", "t1", "t2")
    assert abi.REG_COUNT == 13 and abi.vmctx_layout()["regs"][1] == 13 * 8
    assert abi.RETURN_TO_HOST == abi.VM_ADDR_RETURN_TO_HOST == 0xFFFF0000
    assert (abi.ENTRY_NOT_AN_INSTRUCTION, abi.ENTRY_OUT_OF_GAS) == (-1, -2)
    assert (abi.PERM_NONE, abi.PERM_READ, abi.PERM_WRITE) == (0, 1, 2)
    assert (abi.MIN_PAGE_SIZE, abi.DEFAULT_PAGE_SIZE, abi.MAX_PAGE_SIZE) == (4096, 4096, 65536)
    exits = {k: v for k, v in abi.CONSTANTS.items() if k.startswith("EXIT_")}
    assert len(set(exits.values())) == len(exits) == 11
    for name in abi.CONSTANTS:
        assert f'X("{name}",' in text, name
    assert abi.COMPILE_ERRORS[-4] == "program too big" and set(abi.COMPILE_ERRORS) == {-1, -2, -3, -4}
