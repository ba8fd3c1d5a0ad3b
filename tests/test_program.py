"""Program loading: the shipped .polkavm files, hand-built blobs covering
every section and every error path, raw code blobs (the JAM test vectors),
the JAM standard program format and jam_v1 code validation."""
import os
import struct
from pathlib import Path
import time

import pytest

import vmcore
from conftest import DATA_DIR, WRITER as W, load_vector_programs
from vmcore import ProgramError, _engine, isa
from vmcore.program import Program

TRAP = bytes([0])
CODE = W.code_blob(TRAP, [0])  # jt count 0, entry size 4, code length 1, trap, bitmask
ISAS = list(isa.ISA_NAMES)


def op(isa_name, name):
    return isa.BY_NAME[name].byte_for(isa_name)


def expect_error(fn, offset, *words):
    with pytest.raises(ProgramError) as info:
        fn()
    err = info.value
    assert err.offset == offset, f"offset {err.offset} != {offset}: {err}"
    message = str(err).lower()
    for w in words:
        assert w.lower() in message, f"{w!r} not in {str(err)!r}"
    return err


# ------------------------------------------------------------ shipped programs
SHARED = {
    # name: (exports, imports, code length, rw_data_size)
    "hostcall": ({"main": 0}, ["inc"], 12, 0),
    "noop": ({"noop": 0}, [], 2, 0),
    "sieve": ({"main": 0}, [], 47, 16 * 1024 * 1024),
    "sum": ({"main": 0}, [], 32, 0),
}


def test_all_shipped_programs_are_covered():
    assert sorted(p.stem for p in DATA_DIR.glob("*.polkavm")) == sorted(SHARED)


@pytest.mark.parametrize("name", sorted(SHARED))
def test_shipped_program(name):
    exports, imports, code_len, rw_size = SHARED[name]
    path = DATA_DIR / f"{name}.polkavm"
    p = Program.load(path)
    assert p.isa == "jam_v1" and p.is_64_bit and p.format == "polkavm"
    assert p.exports == exports
    assert p.imports == imports
    assert len(p.code) == code_len
    assert len(p.bitmask) == (code_len + 7) // 8
    assert (p.ro_data_size, p.rw_data_size, p.stack_size) == (0, rw_size, 0)
    assert p.ro_data == b"" and p.rw_data == b""
    assert p.warnings == []
    assert p.is_jump_target(0)
    assert 0 < p.basic_block_count() <= p.instruction_count() <= code_len
    # the code section is really inside the file
    data = path.read_bytes()
    assert data.find(p.code) > 13
    assert Program.from_bytes(bytearray(data)).code == p.code
    assert Program.from_bytes(memoryview(data)).exports == exports

    m = p.memory_map()
    assert m.page_size == 0x1000
    assert m.ro_data_address == 0x10000 and m.ro_data_size == 0
    assert m.rw_data_address == 0x20000
    assert m.rw_data_size == rw_size
    assert m.heap_base == 0x20000 + rw_size
    assert m.stack_address_high == 0xFFFE0000 and m.stack_size == 0
    top_of_heap_area = 0xFFFE0000  # stack is empty
    rw_end = 0x20000 + -(-rw_size // 0x10000) * 0x10000
    assert m.max_heap_size == top_of_heap_area - (rw_end + 0x10000) + (rw_end - m.heap_base)


def test_shipped_programs_match_shared_copies():
    # The team's shared/programs lives outside this repository: name it with
    # VMCORE_SHARED (the shared/ folder); the shipped copies are in-repo.
    if not os.environ.get("VMCORE_SHARED"):
        pytest.skip("set VMCORE_SHARED to the shared/ folder to compare the shipped programs with it")
    shared = Path(os.environ["VMCORE_SHARED"]) / "programs"
    if not shared.exists():
        pytest.skip(f"no programs directory in VMCORE_SHARED ({shared})")
    for name in SHARED:
        assert (shared / f"{name}.polkavm").read_bytes() == (DATA_DIR / f"{name}.polkavm").read_bytes()


def test_from_bytes_type_errors():
    with pytest.raises(TypeError):
        Program.from_bytes("PVM")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Program.from_raw_code(None)  # type: ignore[arg-type]


# ------------------------------------------------------------------ varints
VARINT_VALUES = [0, 1, 0x7F, 0x80, 0x3FFF, 0x4000, 0x1FFFFF, 0x200000, 0xFFFFFFF, 0x10000000, 0xFFFFFFFF, 12345678]


@pytest.mark.parametrize("value", VARINT_VALUES)
def test_varint_roundtrip(value):
    encoded = W.varint(value)
    assert _engine.write_varint(value) == encoded
    assert _engine.read_varint(encoded, 0) == (value, len(encoded))
    assert _engine.read_varint(b"\xAA" + encoded + b"\xBB", 1) == (value, len(encoded))
    # one byte short is malformed
    assert _engine.read_varint(encoded[:-1], 0) is None or len(encoded) == 1


def test_varint_edge_cases():
    # with four extra bytes the first byte's low bits land in the low bits
    # (the reference shifts them by 32, which wraps to 0)
    assert _engine.read_varint(b"\xf5\x00\x00\x00\x00", 0) == (5, 5)
    assert _engine.read_varint(b"\xf0\x78\x56\x34\x12", 0) == (0x12345678, 5)
    for first in range(0xF8, 0x100):  # five or more extra bytes: malformed
        assert _engine.read_varint(bytes([first]) + bytes(8), 0) is None
    assert _engine.read_varint(b"", 0) is None
    assert _engine.read_varint(b"\x05", 1) is None


# --------------------------------------------------------- hand-built blobs
def full_sections(entry_size=2):
    code = bytes([0, 1, 0])  # trap; fallthrough; trap
    return [
        (1, W.memory_config(0x2000, 0x100, 0x1000)),
        (2, b"hello"),
        (3, b"\x01\x02"),
        (4, W.imports([b"foo", b"bar_baz"])),
        (5, W.exports([(0, b"main"), (2, b"other")])),
        (6, W.code_blob(code, [0, 1, 2], jump_table=[1, 2], entry_size=entry_size)),
        (128, b"debug strings"),
        (129, b"\x01line programs"),
        (130, bytes(12)),
        (0x85, b"an unknown optional section"),
        (0xFF, b""),
    ]


@pytest.mark.parametrize("version", range(4))
@pytest.mark.parametrize("entry_size", [1, 2, 3, 4])
def test_every_section(version, entry_size):
    blob, _ = W.polkavm(full_sections(entry_size), version=version)
    p = Program.from_bytes(blob)
    assert p.isa == ISAS[version]
    assert (p.ro_data_size, p.rw_data_size, p.stack_size) == (0x2000, 0x100, 0x1000)
    assert p.ro_data == b"hello" and p.rw_data == b"\x01\x02"
    assert p.imports == ["foo", "bar_baz"]
    assert p.exports == {"main": 0, "other": 2}
    assert p.code == bytes([0, 1, 0]) and p.bitmask == b"\x07"
    assert p.jump_table == [1, 2] and p.jump_table_entry_size == entry_size
    assert p.is_jump_target(2) and not p.is_jump_target(3)
    m = p.memory_map(0x1000)
    assert m.ro_data_size == 0x2000 and m.rw_data_size == 0x1000 and m.stack_size == 0x1000


def test_only_a_code_section():
    blob, _ = W.polkavm([(6, CODE)])
    p = Program.from_bytes(blob)
    assert p.exports == {} and p.imports == [] and p.jump_table == []
    assert (p.ro_data_size, p.rw_data_size, p.stack_size) == (0, 0, 0)


def test_entry_size_zero_means_no_jump_table():
    code = W.varint(3) + b"\x00" + W.varint(1) + TRAP + b"\x01"
    blob, _ = W.polkavm([(6, code)])
    assert Program.from_bytes(blob).jump_table == []


def test_jump_table_entry_widths():
    for size, value in ((1, 0xAB), (2, 0xABCD), (3, 0xABCDEF), (4, 0x89ABCDEF)):
        blob, _ = W.polkavm([(6, W.code_blob(TRAP, [0], jump_table=[value, 0], entry_size=size))], version=2)
        p = Program.from_bytes(blob)
        assert p.jump_table == [value, 0]
        assert len(p.warnings) == 1 and "jump table entry #0" in p.warnings[0]
        with pytest.raises(ProgramError, match="jump table entry #0"):
            Program.from_bytes(blob, strict=True)


def test_export_past_code_is_a_warning():
    blob, _ = W.polkavm([(5, W.exports([(7, b"far")])), (6, CODE)])
    p = Program.from_bytes(blob)
    assert p.exports == {"far": 7} and "far" in p.warnings[0]
    with pytest.raises(ProgramError):
        Program.from_bytes(blob, strict=True)


def test_exactly_1024_imports_load():
    names = [f"i{n}".encode() for n in range(1024)]
    blob, _ = W.polkavm([(4, W.imports(names)), (6, CODE)])
    assert Program.from_bytes(blob).imports == [n.decode() for n in names]


def test_empty_import_names_and_utf8():
    blob, _ = W.polkavm([(4, W.imports([b"", "héllo".encode()])), (5, W.exports([(0, "ünï".encode())])), (6, CODE)])
    p = Program.from_bytes(blob)
    assert p.imports == ["", "héllo"] and p.exports == {"ünï": 0}


def test_trailing_bytes_after_end_of_file_are_ignored():
    # The reference stops at section 0; the header length still covers them.
    blob, _ = W.polkavm([(6, CODE)])
    body = blob[13:] + b"garbage"
    assert Program.from_bytes(W.raw(body)).code == TRAP


# -------------------------------------------------------------- error paths
def test_bad_magic():
    blob, _ = W.polkavm([(6, CODE)], magic=b"PVX\0")
    expect_error(lambda: Program.from_bytes(blob), 0, "magic", "PVM")
    expect_error(lambda: Program.from_bytes(b"PV"), 0, "magic")
    expect_error(lambda: Program.from_bytes(b""), 0, "PVM")
    expect_error(lambda: Program.from_bytes(b"\x7fELF" + bytes(40)), 0, "magic")


@pytest.mark.parametrize("version", [4, 5, 0x7F, 0xFF])
def test_unknown_version(version):
    blob, _ = W.polkavm([(6, CODE)], version=version)
    err = expect_error(lambda: Program.from_bytes(blob), 4, "version", str(version), "expected", "jam_v1")
    assert "latest64" in str(err)


@pytest.mark.parametrize("delta", [-1, 1, 1 << 32, -13])
def test_length_mismatch(delta):
    blob, _ = W.polkavm([(6, CODE)], length_delta=delta)
    expect_error(lambda: Program.from_bytes(blob), 5, str(len(blob)))


def test_truncated_header():
    expect_error(lambda: Program.from_bytes(b"PVM\0"), 4, "version")
    expect_error(lambda: Program.from_bytes(b"PVM\0\x03\x10\x00"), 5, "8 bytes", "length")


def test_truncated_varints():
    # a section length that needs more bytes than exist / is malformed
    expect_error(lambda: Program.from_bytes(W.raw(b"\x02\xe0\x01")), 14, "varint", "read-only")
    expect_error(lambda: Program.from_bytes(W.raw(b"\x02\xff")), 14, "varint")
    # inside the memory config: the stack size is cut short
    expect_error(lambda: Program.from_bytes(W.raw(b"\x01\x03\x00\x00\xc0")), 17, "varint", "stack")
    # the jump table count inside the code section (bounded by the section)
    blob, where = W.polkavm([(6, b"\xc0")])
    expect_error(lambda: Program.from_bytes(blob), where[0][1], "varint", "jump table")
    # the code length
    blob, where = W.polkavm([(6, b"\x00\x04\xe0\x01")])
    expect_error(lambda: Program.from_bytes(blob), where[0][1] + 2, "varint", "code length")
    # the export count and an export's name length
    blob, where = W.polkavm([(5, b"\xc0"), (6, CODE)])
    expect_error(lambda: Program.from_bytes(blob), where[0][1], "varint", "export count")
    blob, where = W.polkavm([(5, b"\x01\x00\xff"), (6, CODE)])
    expect_error(lambda: Program.from_bytes(blob), where[0][1] + 2, "varint", "name")
    # the import count
    # (the import count is read from the blob, like the reference does, not
    # bounded by the section: cut the blob right after it)
    expect_error(lambda: Program.from_bytes(W.raw(b"\x04\x01\xc0")), 15, "varint", "import count")


def test_missing_end_of_file():
    blob, _ = W.polkavm([(6, CODE)], eof=False)
    expect_error(lambda: Program.from_bytes(blob), len(blob), "section id")


def test_section_longer_than_the_blob():
    body = b"\x02\x10abc"
    expect_error(lambda: Program.from_bytes(W.raw(body)), 15, "16 bytes", "read-only")


@pytest.mark.parametrize("order", [
    [(3, b"rw"), (2, b"ro"), (6, CODE)],
    [(6, CODE), (5, W.exports([]))],
    [(2, b"a"), (2, b"b"), (6, CODE)],
    [(5, W.exports([])), (4, W.imports([])), (6, CODE)],
    [(6, CODE), (1, W.memory_config(0, 0, 0))],
    [(128, b""), (6, CODE)],
])
def test_section_out_of_order(order):
    blob, where = W.polkavm(order)
    bad = next(i for i in range(1, len(order)) if order[i][0] != 0 and (
        order[i][0] <= order[i - 1][0] or order[i - 1][0] >= 128))
    with pytest.raises(ProgramError) as info:
        Program.from_bytes(blob)
    err = info.value
    assert err.offset == where[bad][0], str(err)
    assert f"section id {order[bad][0]}" in str(err) and "order" in str(err)


@pytest.mark.parametrize("sid", [7, 8, 0x42, 0x7F])
def test_non_optional_unknown_section(sid):
    blob, where = W.polkavm([(sid, b"xx"), (6, CODE)])
    expect_error(lambda: Program.from_bytes(blob), where[0][0], f"section id {sid}")
    blob, where = W.polkavm([(6, CODE), (sid, b"xx")])
    expect_error(lambda: Program.from_bytes(blob), where[1][0], f"section id {sid}")


def test_unknown_optional_sections_are_skipped():
    blob, _ = W.polkavm([(6, CODE), (0x80 | 5, b"?" * 300), (0xC0, b""), (0x81, b"x")])
    assert Program.from_bytes(blob).code == TRAP
    # but they are bounds-checked
    body = b"\x06" + W.varint(len(CODE)) + CODE + b"\x99\x20abc"
    expect_error(lambda: Program.from_bytes(W.raw(body)), 13 + 2 + len(CODE) + 2, "optional section")


@pytest.mark.parametrize("sid,what", [(2, "read-only"), (3, "read-write")])
def test_data_payload_bigger_than_declared(sid, what):
    blob, where = W.polkavm([(1, W.memory_config(4, 4, 0)), (sid, b"12345"), (6, CODE)])
    expect_error(lambda: Program.from_bytes(blob), where[1][1], what, "5 bytes", "declared size 4")
    # no memory config: the declared size is 0
    blob, where = W.polkavm([(sid, b"1"), (6, CODE)])
    expect_error(lambda: Program.from_bytes(blob), where[0][1], what, "declared size 0")
    # exactly the declared size is fine
    blob, _ = W.polkavm([(1, W.memory_config(5, 5, 0)), (sid, b"12345"), (6, CODE)])
    Program.from_bytes(blob)


def test_memory_config_length_mismatch():
    blob, where = W.polkavm([(1, W.memory_config(1, 2, 3) + b"\x00"), (6, CODE)])
    expect_error(lambda: Program.from_bytes(blob), where[0][1], "memory config", "4 bytes", "3")


def test_too_many_imports():
    payload = W.varint(1025) + bytes(4 * 1025)
    blob, where = W.polkavm([(4, payload), (6, CODE)])
    expect_error(lambda: Program.from_bytes(blob), where[0][1], "1025 imports", "maximum of 1024")
    payload = W.varint(0xFFFFFFFF)
    blob, where = W.polkavm([(4, payload), (6, CODE)])
    expect_error(lambda: Program.from_bytes(blob), where[0][1], "imports", "1024")


def test_import_offsets_out_of_range():
    blob, where = W.polkavm([(4, W.imports([b"foo"], offsets=[5])), (6, CODE)])
    expect_error(lambda: Program.from_bytes(blob), where[0][1] + 1, "import #0", "5..3", "3 bytes")
    # decreasing offsets: #0 would end before it starts
    blob, where = W.polkavm([(4, W.imports([b"foobar"], offsets=[3, 1])), (6, CODE)])
    expect_error(lambda: Program.from_bytes(blob), where[0][1] + 1, "import #0", "3..1")
    # the second one is past the names
    blob, where = W.polkavm([(4, W.imports([b"foobar"], offsets=[0, 7])), (6, CODE)])
    expect_error(lambda: Program.from_bytes(blob), where[0][1] + 1, "import #0")
    blob, where = W.polkavm([(4, W.imports([b"foobar"], offsets=[0, 3, 0xFFFFFFFF])), (6, CODE)])
    expect_error(lambda: Program.from_bytes(blob), where[0][1] + 1 + 4, "import #1")


def test_imports_section_too_short_for_its_offsets():
    payload = W.varint(2) + struct.pack("<I", 0)  # two imports, one offset
    blob, where = W.polkavm([(4, payload), (6, CODE)])
    expect_error(lambda: Program.from_bytes(blob), where[0][1], "imports section", "too short")
    body = b"\x04\x40\x00"  # claims 64 bytes, has 1 (then the end)
    expect_error(lambda: Program.from_bytes(W.raw(body)), 15, "imports section", "64 bytes")


@pytest.mark.parametrize("name", [b"\xff\xfe", b"ok\x80", b"\xc3", b"\xed\xa0\x80"])
def test_export_name_not_utf8(name):
    blob, where = W.polkavm([(5, W.exports([(0, b"good"), (0, name)])), (6, CODE)])
    name_at = where[0][1] + 1 + (1 + 1 + 4) + 1 + 1
    expect_error(lambda: Program.from_bytes(blob), name_at, "export", "UTF-8")


def test_import_name_not_utf8():
    blob, where = W.polkavm([(4, W.imports([b"ok", b"\xff"])), (6, CODE)])
    expect_error(lambda: Program.from_bytes(blob), where[0][1] + 1 + 8 + 2, "import", "UTF-8")


def test_duplicate_export():
    blob, where = W.polkavm([(5, W.exports([(0, b"main"), (0, b"main")])), (6, CODE)])
    expect_error(lambda: Program.from_bytes(blob), where[0][1] + 1 + 6 + 2, "duplicate", "main")


@pytest.mark.parametrize("entry_size", [5, 8, 0xFF])
def test_jump_table_entry_size(entry_size):
    blob, where = W.polkavm([(6, W.varint(0) + bytes([entry_size]) + W.varint(1) + TRAP + b"\x01")])
    expect_error(lambda: Program.from_bytes(blob), where[0][1] + 1, "entry size", str(entry_size), "0 to 4")


def test_jump_table_too_long():
    payload = W.varint(16 * 1024 * 1024 + 1) + b"\x01" + W.varint(1) + TRAP + b"\x01"
    blob, where = W.polkavm([(6, payload)])
    expect_error(lambda: Program.from_bytes(blob), where[0][1], "jump table", str(16 * 1024 * 1024))
    # a count that fits but whose entries are not there
    payload = W.varint(100) + b"\x04" + W.varint(1) + TRAP + b"\x01"
    blob, where = W.polkavm([(6, payload)])
    expect_error(lambda: Program.from_bytes(blob), where[0][1] + 3, "400 bytes", "jump table")


@pytest.mark.parametrize("code_len,bitmask", [(3, b"\x01\x00"), (9, b"\x01"), (8, b""), (1, b"")])
def test_bitmask_length_mismatch(code_len, bitmask):
    code = bytes(code_len)
    payload = W.code_blob(code, [], bitmask=bitmask)
    blob, where = W.polkavm([(6, payload)])
    bitmask_at = where[0][1] + 3 + code_len
    expect_error(lambda: Program.from_bytes(blob), bitmask_at, "bitmask", f"{len(bitmask)} bytes",
                 f"need {(code_len + 7) // 8}")


@pytest.mark.parametrize("code_len,last", [(3, 0b00001001), (1, 0b10000001), (7, 0b11000001)])
def test_nonzero_bitmask_padding(code_len, last):
    payload = W.code_blob(bytes(code_len), [], bitmask=bytes([last]))
    blob, where = W.polkavm([(6, payload)])
    expect_error(lambda: Program.from_bytes(blob), where[0][1] + 3 + code_len, "bitmask", "padd")
    # a full last byte has no padding
    payload = W.code_blob(bytes(8), [], bitmask=b"\xff")
    Program.from_bytes(W.polkavm([(6, payload)], version=2)[0])


def test_code_larger_than_32_mib():
    limit = 32 * 1024 * 1024
    payload = W.varint(0) + b"\x00" + W.varint(limit + 1)
    blob, where = W.polkavm([(6, payload)])
    expect_error(lambda: Program.from_bytes(blob), where[0][1] + 2, "code", str(limit + 1), f"maximum of {limit}")
    # exactly the limit is only "not enough data" here
    payload = W.varint(0) + b"\x00" + W.varint(limit)
    blob, where = W.polkavm([(6, payload)])
    expect_error(lambda: Program.from_bytes(blob), where[0][1] + 2 + len(W.varint(limit)), f"{limit} bytes of the code")


def test_empty_or_missing_code_section():
    blob, where = W.polkavm([(6, b"")])
    expect_error(lambda: Program.from_bytes(blob), where[0][0], "no code")
    blob, where = W.polkavm([(5, W.exports([]))])
    expect_error(lambda: Program.from_bytes(blob), len(blob) - 1, "no code")
    blob, where = W.polkavm([(6, CODE)])
    Program.from_bytes(blob)


def test_memory_layout_overflow_is_a_program_error():
    blob, _ = W.polkavm([(1, W.memory_config(0xFFFFFFFF, 0, 0)), (6, CODE)])
    with pytest.raises(ProgramError, match="too big|exceeded"):
        Program.from_bytes(blob)
    blob, _ = W.polkavm([(1, W.memory_config(0x80000000, 0x80000000, 0)), (6, CODE)])
    with pytest.raises(ProgramError, match="maximum memory size"):
        Program.from_bytes(blob)


def test_program_error_is_a_vm_error():
    with pytest.raises(vmcore.VmError):
        Program.from_bytes(b"nope")


# --------------------------------------------------------- raw code blobs
def test_all_vector_programs_load():
    programs = load_vector_programs()
    if not programs:
        pytest.skip("no JAM test vectors")
    assert len(programs) == 307
    for name, blob in programs:
        p = Program.from_raw_code(blob)
        assert p.format == "raw" and p.isa == "latest64", name
        assert len(p.bitmask) == (len(p.code) + 7) // 8
        assert p.exports == {} and p.imports == []
        # the code is the tail of the blob before the bitmask
        assert blob.endswith(p.code + p.bitmask), name


def test_raw_code_fields_and_isas():
    blob = W.code_blob(bytes([0, 1, 0]), [0, 1, 2], jump_table=[2, 1, 0], entry_size=1)
    for name in ISAS:
        p = Program.from_raw_code(blob, isa=name)
        assert p.isa == name and p.jump_table == [2, 1, 0] and p.code == bytes([0, 1, 0])
    with pytest.raises(ValueError, match="unknown instruction set"):
        Program.from_raw_code(blob, isa="risc-v")


def test_raw_code_errors():
    expect_error(lambda: Program.from_raw_code(b""), 0, "empty")
    expect_error(lambda: Program.from_raw_code(b"\x00"), 1, "entry size")
    expect_error(lambda: Program.from_raw_code(b"\x00\x00"), 2, "code length")
    expect_error(lambda: Program.from_raw_code(b"\x00\x06\x01\x00\x01"), 1, "entry size 6")
    expect_error(lambda: Program.from_raw_code(b"\x00\x00\x02\x00"), 3, "2 bytes of the code")
    expect_error(lambda: Program.from_raw_code(b"\x00\x00\x01\x00\x01\x00"), 4, "bitmask is 2 bytes")
    expect_error(lambda: Program.from_raw_code(b"\x00\x00\x01\x00\x03"), 4, "padd")
    expect_error(lambda: Program.from_raw_code(b"\x02\x02\x01\x00\x00\x00"), 3, "4 bytes of the jump table")


# ------------------------------------------------- the JAM standard format
def jam_code():
    li, ret = op("jam_v1", "load_imm"), op("jam_v1", "jump_indirect")
    code = bytes([li, 7, 0x2A, ret, 0])
    return W.code_blob(code, [0, 3], jump_table=[3], entry_size=1)


def test_jam_standard():
    blob = W.jam_standard(b"RO", b"RWDATA", 3, 0x2000, jam_code())
    p = Program.from_jam_standard(blob)
    assert p.format == "jam-standard" and p.isa == "jam_v1"
    assert p.ro_data == b"RO" and p.rw_data == b"RWDATA"
    assert (p.ro_data_size, p.rw_data_size, p.heap_pages, p.stack_size) == (2, 6, 3, 0x2000)
    assert p.jump_table == [3] and len(p.code) == 5
    assert p.exports == {} and p.imports == []
    m = p.memory_map(0x1000)
    assert m.aux_data_size == 1 << 24
    assert m.rw_data_size == 0x1000 * 4  # rw data plus three heap pages, page aligned
    assert m.stack_size == 0x2000


def test_jam_standard_empty_sections():
    p = Program.from_jam_standard(W.jam_standard(b"", b"", 0, 0, jam_code()))
    assert p.ro_data == b"" and p.rw_data == b"" and p.heap_pages == 0


def test_jam_standard_errors():
    good = W.jam_standard(b"RO", b"RW", 1, 16, jam_code())
    expect_error(lambda: Program.from_jam_standard(b""), 0, "empty")
    expect_error(lambda: Program.from_jam_standard(good[:2]), 0, "read-only data length")
    expect_error(lambda: Program.from_jam_standard(good[:5]), 3, "read-write data length")
    expect_error(lambda: Program.from_jam_standard(good[:7]), 6, "heap page")
    expect_error(lambda: Program.from_jam_standard(good[:10]), 8, "stack")
    expect_error(lambda: Program.from_jam_standard(good[:12]), 11, "2 bytes of the read-only data")
    expect_error(lambda: Program.from_jam_standard(good[:14]), 13, "read-write data")
    expect_error(lambda: Program.from_jam_standard(good[:17]), 15, "code blob length")
    expect_error(lambda: Program.from_jam_standard(good[:-1]), 19, "bytes of the code blob")
    expect_error(lambda: Program.from_jam_standard(good + b"\0"), len(good), "trailing")
    # errors inside the code blob name offsets in the whole input
    bad = W.jam_standard(b"RO", b"RW", 1, 16, b"\x00\x07\x01\x00\x01")
    expect_error(lambda: Program.from_jam_standard(bad), 19 + 1, "entry size 7")
    # a huge ro length claim
    expect_error(lambda: Program.from_jam_standard(b"\xff\xff\xff" + bytes(20)), 11, "16777215 bytes")


def test_jam_standard_code_is_validated_as_jam_v1():
    bad = W.code_blob(bytes([op("jam_v1", "load_imm"), 0, 0]), [0])  # falls off the end
    with pytest.raises(ProgramError, match="code offset 3"):
        Program.from_jam_standard(W.jam_standard(b"", b"", 0, 0, bad))


# ------------------------------------------------------ jam_v1 validation
def _blob_with_code(code, starts, version):
    return W.polkavm([(6, W.code_blob(code, starts))], version=version)


def _jam_cases():
    li, ret, ft = op("jam_v1", "load_imm"), op("jam_v1", "jump_indirect"), op("jam_v1", "fallthrough")
    load_imm = bytes([li, 7, 0x78, 0x56, 0x34, 0x12])
    return {
        # name: (code, starts, first bad pc or None)
        "ok": (load_imm + bytes([ret, 0]), [0, 6], None),
        "invalid_opcode": (bytes([255]) + load_imm[1:] + bytes([ret, 0]), [0, 6], 0),
        "undefined_in_jam_v1": (load_imm + bytes([3]) + bytes([ret, 0]), [0, 6, 7], 6),  # 3: unlikely in latest64
        "falls_off_the_end": (load_imm + bytes([ft]), [0, 6], 7),
        "non_terminator_last": (load_imm, [0], 6),
        "no_start_at_zero": (bytes([0, 0]), [1], 0),
        "empty": (b"", [], 0),
        "gap_after_terminator": (bytes([0]) + bytes(30) + bytes([0]), [0, 31], None),
        "gap_after_fallthrough": (bytes([ft]) + bytes(30) + bytes([0]), [0, 31], 25),
        "jump_last": (bytes([op("jam_v1", "jump"), 0]), [0], None),
    }


@pytest.mark.parametrize("case", sorted(_jam_cases()))
def test_jam_v1_validation(case):
    code, starts, bad = _jam_cases()[case]
    blob, where = _blob_with_code(code, starts, version=3)
    code_at = where[0][1] + 3
    if bad is None:
        Program.from_bytes(blob)
        Program.from_raw_code(W.code_blob(code, starts), isa="jam_v1")
    else:
        err = expect_error(lambda: Program.from_bytes(blob), code_at + bad, f"code offset {bad}", "jam_v1")
        assert err.pc == bad
        with pytest.raises(ProgramError, match=f"code offset {bad}"):
            Program.from_raw_code(W.code_blob(code, starts), isa="jam_v1")
    # other instruction sets load whatever the code holds
    for version in (0, 1, 2):
        Program.from_bytes(_blob_with_code(code, starts, version)[0])
        Program.from_raw_code(W.code_blob(code, starts), isa=ISAS[version])


def test_jam_v1_branch_target_bytes_do_not_matter():
    """The reference's jam_validate_invalid_branch: a branch whose offset
    points into the middle of an instruction still validates (jumps are
    checked at run time)."""
    beq = op("jam_v1", "branch_eq_imm")
    li = op("jam_v1", "load_imm")
    code = bytes([beq, 0x17, 33, 1, li, 1, 1, 0])  # branch a0 == 33 -> +1 (not a start)
    Program.from_raw_code(W.code_blob(code, [0, 4, 7]), isa="jam_v1")


# -------------------------------------------------------------- 1 MB program
def make_big_program(code_size=1 << 20):
    add = op("jam_v1", "add_64")
    n = (code_size - 1) // 3
    code = bytes([add, 0x21, 0x03]) * n + TRAP
    bitmask = bytearray((len(code) + 7) // 8)
    for i in range(0, len(code), 3):
        bitmask[i >> 3] |= 1 << (i & 7)
    bitmask = bytes(bitmask)
    blob, _ = W.polkavm([(5, W.exports([(0, b"main")])), (6, W.code_blob(code, [], bitmask=bitmask))], version=3)
    return blob, n + 1


def test_one_megabyte_program_loads():
    blob, instructions = make_big_program()
    start = time.perf_counter()
    p = Program.from_bytes(blob)
    elapsed = time.perf_counter() - start
    print(f"\n1 MB program ({len(blob)} bytes): Program.from_bytes took {elapsed * 1e3:.2f} ms")
    assert len(p.code) == 3 * (instructions - 1) + 1
    assert p.instruction_count() == instructions
    assert p.basic_block_count() == 1
    assert p.exports == {"main": 0}
