"""vmcore.disasm: disassemble -> assemble reproduces the code byte for byte
(every instruction of every instruction set, edge immediates, labels,
exports, jump tables, raw blobs), plus the CLI entry point."""
import random
from importlib import resources

import pytest

from vmcore import Program, _engine, isa
from vmcore.asm import assemble, encode_instruction, varint
from vmcore.disasm import disassemble, format_instruction, lines, main

M32 = 0xFFFFFFFF
EDGE_IMMS = [0, 1, -1, 2, 0x7F, 0x80, -0x80, -0x81, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFF, -0x8000, -0x8001,
             0x7FFFFF, 0x800000, -0x800000, 0x7FFFFFFF, -0x80000000, -4095, -4096, -4097, 0x12345678, 0x20000]
EDGE_IMM64 = [0, 1, M32, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF80000000, 0xFFFFFFFFFFFFFFFF, 0x8000000000000000,
              0x1234567890]
TARGET_SLOT = {"reg_imm_offset": 2, "reg_reg_offset": 1, "offset": 1}
REGS_USED = {"argless": 0, "reg_imm": 1, "reg_imm_offset": 1, "reg_imm_imm": 1, "reg_reg_imm": 2,
             "reg_reg_offset": 2, "reg_reg_reg": 3, "offset": 0, "imm": 0, "imm_imm": 0, "reg_reg": 2,
             "reg_reg_imm_imm": 2, "reg_imm64": 1}
IMMS_USED = {"reg_imm": 1, "reg_imm_offset": 2, "reg_imm_imm": 2, "reg_reg_imm": 1, "reg_reg_offset": 1,
             "offset": 1, "imm": 1, "imm_imm": 2, "reg_reg_imm_imm": 2}
SHARED = ["hostcall", "noop", "sieve", "sum"]


def data_file(name: str) -> bytes:
    return resources.files("vmcore.data").joinpath(name).read_bytes()


def raw_blob(code: bytes, starts, jump_table=(), entry_size=4) -> bytes:
    bitmask = bytearray((len(code) + 7) // 8)
    for s in starts:
        bitmask[s >> 3] |= 1 << (s & 7)
    w = varint
    return (w(len(jump_table)) + bytes([entry_size if jump_table else 0]) + w(len(code))
            + b"".join(t.to_bytes(entry_size, "little") for t in jump_table) + code + bytes(bitmask))


def ops_of(isa_name):
    return [o for o in isa.OPCODES if o.byte_for(isa_name) is not None]


def random_operands(rng, op):
    regs = [rng.randrange(13) for _ in range(3)]
    i1 = rng.choice(EDGE_IMMS) & M32 if rng.random() < 0.8 else rng.getrandbits(32)
    i2 = rng.choice(EDGE_IMMS) & M32 if rng.random() < 0.8 else rng.getrandbits(32)
    i64 = rng.choice(EDGE_IMM64) if rng.random() < 0.6 else rng.getrandbits(64)
    return regs, i1, i2, i64


def strip_pcs(text: str):
    return [line.split(": ", 1)[1] if line[:1] == " " else line for line in text.splitlines()]


@pytest.mark.parametrize("name", SHARED)
def test_shared_programs_round_trip(name):
    blob = data_file(f"{name}.polkavm")
    text = disassemble(Program.from_bytes(blob))
    assert text.startswith("%isa = jam_v1\n")
    assert assemble(text) == blob


def test_shared_program_text():
    text = disassemble(Program.from_bytes(data_file("hostcall.polkavm")), pcs=False)
    assert text.splitlines() == [
        "%isa = jam_v1", "%import inc  // ecalli 0", "pub @main:", "    s0 = a0", "    fallthrough", "@L3:",
        "    ecalli 0", "    s0 = s0 - 1", "    jump @L3 if s0 != 0", "    ret"]
    text = disassemble(Program.from_bytes(data_file("sieve.polkavm")))
    assert "%rw_data_size = 16777216" in text
    assert "      11: a4 = u8 [a3]" in text


@pytest.mark.parametrize("isa_name", isa.ISA_NAMES)
def test_every_instruction_round_trips(isa_name):
    """Each instruction with edge operands: its disassembly assembles to the
    same bytes, and disassembling those gives the same text."""
    rng = random.Random(isa_name)
    trap = bytes([isa.BY_NAME["trap"].byte_for(isa_name)])
    seen = set()
    for op in ops_of(isa_name):
        for trial in range(30):
            regs, i1, i2, i64 = random_operands(rng, op)
            slot = TARGET_SLOT.get(op.format)
            data = encode_instruction(isa_name, op.name, regs, i1, i2, i64)
            if slot:  # jump to itself or to the trap after it (both block starts)
                target = rng.choice([0, len(data)])
                if slot == 1:
                    i1 = target
                else:
                    i2 = target
                data = encode_instruction(isa_name, op.name, regs, i1, i2, i64)
            code = data + trap
            program = Program.from_raw_code(raw_blob(code, [0, len(data)]), isa=isa_name)
            text = disassemble(program)
            again = Program.from_bytes(assemble(text))
            assert again.code == code, (op.name, text)
            assert disassemble(again) == text, (op.name, text)
            # the operands survive exactly, as the decoder reports them
            got = _engine.instructions(program.isa_index, again.code, again.bitmask)[0]
            assert got[2] == op.id
            assert list(got[3:3 + REGS_USED[op.format]]) == regs[:REGS_USED[op.format]]
            n = IMMS_USED.get(op.format, 0)
            assert list(got[6:6 + n]) == [i1, i2][:n]
            if op.format == "reg_imm64":
                assert got[8] == i64
            seen.add(op.name)
    assert seen == {o.name for o in ops_of(isa_name)}


@pytest.mark.parametrize("isa_name", isa.ISA_NAMES)
def test_instruction_text_is_a_fixed_point(isa_name):
    """format_instruction -> assemble -> disassemble gives the same line."""
    rng = random.Random(7)
    for op in ops_of(isa_name):
        for _ in range(10):
            regs, i1, i2, i64 = random_operands(rng, op)
            target = "@here" if op.format in TARGET_SLOT else None
            text = format_instruction(isa_name, op.name, regs, i1, i2, i64, target=target)
            program = Program.from_bytes(assemble(f"%isa = {isa_name}\n@here:\n{text}\ntrap"))
            body = [line for line in strip_pcs(disassemble(program)) if not line.startswith(("%", "@", "pub"))]
            expected = text.replace("@here", "@L0")
            assert body[0] == expected, (op.name, text, body)


def random_program(rng, isa_name, n):
    """Random assembler text with labels, exports, imports, data and jump-table
    loads; returns (text, expected instructions, label -> expected index)."""
    ops = ops_of(isa_name)
    labels = [f"l{i}" for i in range(max(4, n // 25))]
    where = dict(zip(sorted(rng.sample(range(n), len(labels))), labels))
    out = [f"%isa = {isa_name}", "%rw_data_size = 8192", "%stack_size = 4096", "%ro_data_size = 3",
           "%ro_data = 00ff10",
           "%rw_data = 0102", "%import alpha", '%import "b e t a"', f"%jump_table = @{labels[0]}, @{labels[3]}, 7"]
    expected = []   # (op name, regs, imms, target label)
    label_index = {}
    loads = []      # (index in expected, label) for `reg = @label`
    at_block_start = True
    exports = 0
    for i in range(n):
        if i in where:
            if not at_block_start:
                expected.append(("fallthrough", [], [], None))
                at_block_start = True
            label_index[where[i]] = len(expected)
            out.append(f"{'pub ' if rng.random() < 0.2 else ''}@{where[i]}:")
        elif rng.random() < 0.005:
            exports += 1
            out.append(f'pub @"mid {exports}": %no_fallthrough')
        if rng.random() < 0.01:
            label = rng.choice(labels)
            reg = rng.randrange(13)
            loads.append((len(expected), label))
            expected.append(("load_imm", [reg], None, None))
            out.append(f"{isa.REGISTER_NAMES[reg]} = @{label}  // a jump-table address")
            at_block_start = False
            continue
        op = rng.choice(ops)
        regs, i1, i2, i64 = random_operands(rng, op)
        label = rng.choice(labels) if op.format in TARGET_SLOT else None
        out.append(format_instruction(isa_name, op.name, regs, i1, i2, i64,
                                      target=f"@{label}" if label else None))
        imms = [i1, i2][:IMMS_USED.get(op.format, 0)]
        if label:
            imms[TARGET_SLOT[op.format] - 1] = None
        if op.format == "reg_imm64":
            imms = [i64]
        expected.append((op.name, regs[:REGS_USED[op.format]], imms, label))
        at_block_start = op.ends_block
    out.append("trap")
    expected.append(("trap", [], [], None))
    return "\n".join(out) + "\n", expected, label_index, loads


@pytest.mark.parametrize("isa_name", isa.ISA_NAMES)
def test_random_program_round_trip(isa_name):
    rng = random.Random(f"program-{isa_name}")
    n = 10_000 if isa_name == "jam_v1" else 3_000
    text, expected, label_index, loads = random_program(rng, isa_name, n)
    blob = assemble(text)
    program = Program.from_bytes(blob)

    # The assembler picked exactly the instructions the text describes.
    decoded = [d for d in _engine.instructions(program.isa_index, program.code, program.bitmask)
               if d[2] != isa.OP_INVALID]
    assert len(decoded) == len(expected)
    offsets = [d[0] for d in decoded]
    for d, (name, regs, imms, label) in zip(decoded, expected):
        op = isa.OPCODES[d[2]]
        assert op.name == name
        assert list(d[3:3 + len(regs)]) == regs
        if op.format == "reg_imm64":
            assert d[8] == imms[0]
        elif imms is not None:
            for got, want in zip(d[6:8], imms):
                if want is not None:
                    assert got == want, (name, d, imms)
        if label is not None:
            assert d[5 + TARGET_SLOT[op.format]] == offsets[label_index[label]]
    labels_at = [offsets[label_index[label]] for _, label in loads]
    table_labels = [offsets[label_index["l0"]], offsets[label_index["l3"]], 7]
    assert program.jump_table == table_labels + labels_at
    for k, (index, _) in enumerate(loads):
        assert decoded[index][6] == (len(table_labels) + k + 1) * 2
    assert program.imports == ["alpha", "b e t a"]

    # Disassembly reassembles to the identical blob, and is a fixed point.
    text2 = disassemble(program)
    assert assemble(text2) == blob
    assert disassemble(Program.from_bytes(assemble(text2))) == text2


def test_raw_code_blob_round_trip():
    blob = assemble(data_file("sieve.asm").decode() + "\n@extra:\n a0 = @extra\n jump [a0]\n")
    program = Program.from_bytes(blob)
    raw = raw_blob(program.code, [d[0] for d in _engine.instructions(program.isa_index, program.code,
                                                                       program.bitmask)
                                  if d[2] != isa.OP_INVALID], program.jump_table)
    raw_program = Program.from_raw_code(raw, isa="jam_v1")
    text = disassemble(raw_program)
    assert "%jump_table = @L" in text
    again = Program.from_bytes(assemble(text))
    assert again.code == program.code and again.bitmask == program.bitmask
    assert again.jump_table == program.jump_table


def test_invalid_opcodes_and_implicit_traps():
    # latest64: 0xff is not an opcode; the code ends without a terminator.
    code = bytes([0xFF, 0x01, 0x02]) + encode_instruction("latest64", "load_imm", [7], 5)
    program = Program.from_raw_code(raw_blob(code, [0, 3]), isa="latest64")
    out = strip_pcs(disassemble(program))
    assert out[1:] == ["invalid ff 01 02", "a0 = 0x5", "// invalid (implicit trap)"]
    assert Program.from_bytes(assemble(disassemble(program))).code == code
    # a missing bit at offset 0
    program = Program.from_raw_code(raw_blob(b"\x00\x00", [1]), isa="latest64")
    assert strip_pcs(disassemble(program))[1:] == ["// invalid (implicit trap)", "trap"]


def test_targets_that_are_not_block_starts_stay_numeric():
    # jump into the middle of a block (offset 3) and past the end of the code
    isa_name = "latest64"
    code = (encode_instruction(isa_name, "jump", imm1=3) + encode_instruction(isa_name, "load_imm", [7], 1)
            + encode_instruction(isa_name, "load_imm", [8], 2) + encode_instruction(isa_name, "jump", imm1=100,
                                                                                      position=8))
    starts = [0, 2, 5, 8]
    assert len(code) == 10
    program = Program.from_raw_code(raw_blob(code, starts), isa=isa_name)
    text = disassemble(program)
    assert "jump 3" in text and "jump 100" in text
    assert Program.from_bytes(assemble(text)).code == code


def test_exports_mid_block_loose_and_quoted():
    source = """
        %isa = latest32
        pub @"entry point":
            a0 = 1
        pub @inner: %no_fallthrough
            a1 = 2
            jump @"entry point"
        %export @far = 4096
    """
    blob = assemble(source)
    program = Program.from_bytes(blob)
    assert program.exports == {"entry point": 0, "inner": 3, "far": 4096}
    text = disassemble(program)
    assert 'pub @"entry point":' in text and "pub @inner: %no_fallthrough" in text
    assert "%export @far = 4096" in text
    assert 'jump @"entry point"' in text
    assert assemble(text) == blob


def test_lines_iterator_and_pc_column():
    program = Program.from_bytes(data_file("sum.polkavm"))
    got = list(lines(program))
    assert got[0] == "%isa = jam_v1"
    assert "       2: a3 = 0x3b9aca07" in got
    assert all(not line.endswith("\n") for line in got)
    no_pcs = list(lines(program, pcs=False))
    assert "    a3 = 0x3b9aca07" in no_pcs
    assert assemble("\n".join(no_pcs)) == data_file("sum.polkavm")


@pytest.mark.slow
def test_megabyte_program():
    """A ~1 MB program disassembles (in C-decoded bulk) and keeps every instruction."""
    rng = random.Random(3)
    isa_name = "jam_v1"
    ops = [o for o in ops_of(isa_name) if o.format not in TARGET_SLOT and not o.ends_block]
    chunk, starts = bytearray(), []
    for _ in range(3000):
        op = rng.choice(ops)
        regs, i1, i2, i64 = random_operands(rng, op)
        starts.append(len(chunk))
        chunk += encode_instruction(isa_name, op.name, regs, i1, i2, i64)
    repeat = 1_000_000 // len(chunk) + 1
    code = bytes(chunk) * repeat + b"\0"
    all_starts = [k * len(chunk) + s for k in range(repeat) for s in starts] + [len(code) - 1]
    program = Program.from_raw_code(raw_blob(code, all_starts), isa=isa_name)
    text = disassemble(program)
    body = text.splitlines()[1:]
    assert len(body) == len(all_starts)
    assert body[-1].endswith(": trap")


# ------------------------------------------------------------------- CLI

def test_main_prints_disassembly(tmp_path, capsys):
    path = tmp_path / "sum.polkavm"
    path.write_bytes(data_file("sum.polkavm"))
    assert main([str(path)]) == 0
    out = capsys.readouterr().out
    assert assemble(out) == data_file("sum.polkavm")

    program = Program.from_bytes(data_file("sum.polkavm"))
    raw = tmp_path / "sum.bin"
    raw.write_bytes(raw_blob(program.code, [d[0] for d in _engine.instructions(program.isa_index, program.code,
                                                                                 program.bitmask)]))
    out_file = tmp_path / "sum.txt"
    assert main([str(raw), "--raw", "--isa", "jam_v1", "-o", str(out_file), "--no-pcs"]) == 0
    assert Program.from_bytes(assemble(out_file.read_text())).code == program.code


@pytest.mark.parametrize("content,args", [
    (b"not a program", []),
    (None, []),                                # missing file
    (b"\x00\x00\x01\x00", ["--raw"]),          # truncated code blob
    (b"PVM\0\3", ["--isa", "jam_v1"]),         # --isa without --raw
    (b"", ["--isa", "nonsense", "--raw"]),
    (b"", ["--bogus"]),
])
def test_main_bad_input_is_one_line_and_exit_2(tmp_path, capsys, content, args):
    path = tmp_path / "prog.polkavm"
    if content is not None:
        path.write_bytes(content)
    assert main([str(path)] + args) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert len(captured.err.strip().splitlines()) == 1
    assert "Traceback" not in captured.err
