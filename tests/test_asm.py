"""vmcore.asm: byte-identical output for the shared programs, instruction
selection for every syntax form, error reporting and the CLI entry point."""
import random
from importlib import resources

import pytest

from vmcore import Program, ProgramError, _engine, isa
from vmcore.asm import AsmError, assemble, encode_instruction, main, varint
from vmcore.errors import VmError

R = {name: i for i, name in enumerate(isa.REGISTER_NAMES)}
M32 = 0xFFFFFFFF
SHARED = ["hostcall", "noop", "sieve", "sum"]


def data_file(name: str) -> bytes:
    return resources.files("vmcore.data").joinpath(name).read_bytes()


@pytest.mark.parametrize("name", SHARED)
def test_shared_programs_are_byte_identical(name):
    source = data_file(f"{name}.asm").decode()
    assert assemble(source) == data_file(f"{name}.polkavm")


def test_hostcall_import_and_ecalli():
    program = Program.from_bytes(assemble(data_file("hostcall.asm").decode()))
    assert program.imports == ["inc"]
    assert program.exports == {"main": 0}
    assert program.isa == "jam_v1"


def decoded(blob: bytes):
    """[(op name, regs, imm1, imm2, imm64)] of a blob's code, implicit traps left out."""
    program = Program.from_bytes(blob)
    out = []
    for off, nxt, op, r0, r1, r2, i1, i2, i64 in _engine.instructions(program.isa_index, program.code,
                                                                      program.bitmask):
        if op != isa.OP_INVALID:
            out.append((isa.OPCODES[op].name, (r0, r1, r2), i1, i2, i64))
    return out


def one(text: str, isa_name: str = "latest64"):
    """The single instruction a line assembles to (operands as the decoder reports them)."""
    # a trailing trap keeps jam_v1's "ends with a terminator" rule happy
    ops = decoded(assemble(f"%isa = {isa_name}\n{text}\ntrap"))
    assert len(ops) == 2 and ops[1][0] == "trap", ops
    return ops[0]


def ins(name, r=(0, 0, 0), i1=0, i2=0, i64=0):
    r = tuple(R[x] if isinstance(x, str) else x for x in r) + (0,) * (3 - len(r))
    return (name, r, i1 & M32, i2 & M32, i64)


# (source line, instruction set, expected instruction) -- the selection rules.
SELECTION = [
    ("a0 = a1 + a2", "latest64", ins("add_64", ("a0", "a1", "a2"))),
    ("i32 a0 = a1 + a2", "latest64", ins("add_32", ("a0", "a1", "a2"))),
    ("a0 = a1 + a2", "latest32", ins("add_32", ("a0", "a1", "a2"))),
    ("r7 = r8 - r9", "jam_v1", ins("sub_64", ("a0", "a1", "a2"))),
    ("a0 = a1 - 5", "latest64", ins("add_imm_64", ("a0", "a1"), -5)),
    ("a0 = a1 + -5", "latest64", ins("add_imm_64", ("a0", "a1"), -5)),
    ("a0 = 5 + a1", "latest64", ins("add_imm_64", ("a0", "a1"), 5)),
    ("a0 = 5 - a1", "latest64", ins("negate_and_add_imm_64", ("a0", "a1"), 5)),
    ("a0 = -a1", "latest64", ins("negate_and_add_imm_64", ("a0", "a1"), 0)),
    ("i32 a0 = -a1", "latest64", ins("negate_and_add_imm_32", ("a0", "a1"), 0)),
    ("a0 = a1 * 0x10", "jam_v1", ins("mul_imm_64", ("a0", "a1"), 16)),
    ("t0 = t0 %u a3", "jam_v1", ins("rem_unsigned_64", ("t0", "t0", "a3"))),
    ("i32 t0 = t0 /s a3", "jam_v1", ins("div_signed_32", ("t0", "t0", "a3"))),
    ("a0 = a1 >u a2", "latest64", ins("set_less_than_unsigned", ("a0", "a2", "a1"))),
    ("a0 = a1 >s a2", "latest64", ins("set_less_than_signed", ("a0", "a2", "a1"))),
    ("a0 = a1 <u 7", "latest64", ins("set_less_than_unsigned_imm", ("a0", "a1"), 7)),
    ("a0 = 7 <u a1", "latest64", ins("set_greater_than_unsigned_imm", ("a0", "a1"), 7)),
    ("a0 = 7 >s a1", "latest64", ins("set_less_than_signed_imm", ("a0", "a1"), 7)),
    ("a0 = a1 >>a 3", "latest64", ins("shift_arithmetic_right_imm_64", ("a0", "a1"), 3)),
    ("a0 = a1 >> a2", "latest64", ins("shift_logical_right_64", ("a0", "a1", "a2"))),
    ("a0 = a1 >>a a2", "latest64", ins("shift_arithmetic_right_64", ("a0", "a1", "a2"))),
    ("i32 a0 = 3 << a1", "latest64", ins("shift_logical_left_imm_alt_32", ("a0", "a1"), 3)),
    ("a0 = a1 >>r 3", "latest32", ins("rotate_right_imm_32", ("a0", "a1"), 3)),
    ("a0 = a1 <<r a2", "latest64", ins("rotate_left_64", ("a0", "a1", "a2"))),
    ("a0 = a1 & ~a2", "latest64", ins("and_inverted", ("a0", "a1", "a2"))),
    ("a0 = a1 | ~a2", "latest64", ins("or_inverted", ("a0", "a1", "a2"))),
    ("a0 = ~(a1 ^ a2)", "latest64", ins("xnor", ("a0", "a1", "a2"))),
    ("a0 = a1 mulhsu a2", "latest64", ins("mul_upper_signed_unsigned", ("a0", "a1", "a2"))),
    ("a0 = maxu(a1, a2)", "latest64", ins("maximum_unsigned", ("a0", "a1", "a2"))),
    ("a0 = mins(a1, a2)", "latest64", ins("minimum", ("a0", "a1", "a2"))),
    ("a0 = a1 if a2 == 0", "latest64", ins("cmov_if_zero", ("a0", "a1", "a2"))),
    ("a0 = a1 if a2 != 0", "latest64", ins("cmov_if_not_zero", ("a0", "a1", "a2"))),
    ("a0 = 9 if a2 != 0", "latest64", ins("cmov_if_not_zero_imm", ("a0", "a2"), 9)),
    ("a0 = cpop a1", "latest64", ins("count_set_bits_64", ("a0", "a1"))),
    ("i32 a0 = clz a1", "jam_v1", ins("count_leading_zero_bits_32", ("a0", "a1"))),
    ("a0 = ctz a1", "latest32", ins("count_trailing_zero_bits_32", ("a0", "a1"))),
    ("a0 = sext8 a1", "latest64", ins("sign_extend_8", ("a0", "a1"))),
    ("a0 = reverse a1", "latest64", ins("reverse_byte", ("a0", "a1"))),
    ("a0 = sbrk a1", "latest64", ins("sbrk", ("a0", "a1"))),
    ("a0 = a1", "latest64", ins("move_reg", ("a0", "a1"))),
    ("nop", "latest64", ins("move_reg", ("ra", "ra"))),
    ("a0 = 5", "latest64", ins("load_imm", ("a0",), 5)),
    ("a0 = -1", "latest64", ins("load_imm", ("a0",), -1)),
    ("a0 = 0xffffffffffffffff", "latest64", ins("load_imm", ("a0",), -1)),
    ("a0 = 0xffffffff", "latest32", ins("load_imm", ("a0",), -1)),
    ("a0 = 0xffffffff", "latest64", ins("load_imm64", ("a0",), i64=0xFFFFFFFF)),
    ("a0 = 0x1234567890", "jam_v1", ins("load_imm64", ("a0",), i64=0x1234567890)),
    ("a0 = i64 5", "latest64", ins("load_imm64", ("a0",), i64=5)),
    ("a4 = u8 [a3]", "jam_v1", ins("load_indirect_u8", ("a4", "a3"))),
    ("a4 = i16 [a3 + 0x10]", "jam_v1", ins("load_indirect_i16", ("a4", "a3"), 16)),
    ("a4 = u32 [a3 - 4]", "jam_v1", ins("load_indirect_u32", ("a4", "a3"), -4)),
    ("a4 = u64 [0x20000]", "jam_v1", ins("load_u64", ("a4",), 0x20000)),
    ("a4 = i32 [0x80000000]", "latest64", ins("load_i32", ("a4",), 0x80000000)),
    ("u8 [a3] = 1", "jam_v1", ins("store_imm_indirect_u8", ("a3",), 0, 1)),
    ("u16 [a3 + -2] = 0x1234", "jam_v1", ins("store_imm_indirect_u16", ("a3",), -2, 0x1234)),
    ("u32 [a3 + 8] = a0", "jam_v1", ins("store_indirect_u32", ("a0", "a3"), 8)),
    ("u32 [0x20000] = a0", "jam_v1", ins("store_u32", ("a0",), 0x20000)),
    ("u16 [0x20000] = 5", "jam_v1", ins("store_imm_u16", (), 0x20000, 5)),
    ("u32 [0x20000] = 0xffffffff", "latest64", ins("store_imm_u32", (), 0x20000, -1)),
    ("u64 [a0] = -1", "latest64", ins("store_imm_indirect_u64", ("a0",), 0, -1)),
    ("ret", "jam_v1", ins("jump_indirect", ("ra",))),
    ("jump [a0]", "jam_v1", ins("jump_indirect", ("a0",))),
    ("jump [a0 + 8]", "jam_v1", ins("jump_indirect", ("a0",), 8)),
    ("a0 = 5, jump [a1 + 2]", "jam_v1", ins("load_imm_and_jump_indirect", ("a0", "a1"), 5, 2)),
    ("tmp = a1, a1 = 5, jump [tmp]", "jam_v1", ins("load_imm_and_jump_indirect", ("a1", "a1"), 5, 0)),
    ("tmp = a1, a1 = -5, jump [tmp + 0x10]", "jam_v1", ins("load_imm_and_jump_indirect", ("a1", "a1"), -5, 16)),
    ("ecalli 7", "jam_v1", ins("ecalli", (), 7)),
    ("ecalli 4294967295", "jam_v1", ins("ecalli", (), M32)),
    ("trap", "jam_v1", ins("trap")),
    ("unlikely", "jam_v1", ins("unlikely")),
    ("memset", "latest64", ins("memset")),
    ("[a0..a0 + a2] = u8 a1", "latest32", ins("memset")),
    ("   12: a0 = a1 // a pc column and a comment", "latest64", ins("move_reg", ("a0", "a1"))),
]


@pytest.mark.parametrize("text,isa_name,expected", SELECTION, ids=[s[0] for s in SELECTION])
def test_instruction_selection(text, isa_name, expected):
    assert one(text, isa_name) == expected


BRANCHES = [
    ("a0 == a1", ins("branch_eq", ("a0", "a1"))),
    ("a0 != a1", ins("branch_not_eq", ("a0", "a1"))),
    ("a0 <u a1", ins("branch_less_unsigned", ("a0", "a1"))),
    ("a0 <s a1", ins("branch_less_signed", ("a0", "a1"))),
    ("a0 >=u a1", ins("branch_greater_or_equal_unsigned", ("a0", "a1"))),
    ("a0 >=s a1", ins("branch_greater_or_equal_signed", ("a0", "a1"))),
    ("a0 <=u a1", ins("branch_greater_or_equal_unsigned", ("a1", "a0"))),
    ("a0 <=s a1", ins("branch_greater_or_equal_signed", ("a1", "a0"))),
    ("a0 >u a1", ins("branch_less_unsigned", ("a1", "a0"))),
    ("a0 >s a1", ins("branch_less_signed", ("a1", "a0"))),
    ("a0 == 5", ins("branch_eq_imm", ("a0",), 5)),
    ("a0 <=u 5", ins("branch_less_or_equal_unsigned_imm", ("a0",), 5)),
    ("a0 >s -5", ins("branch_greater_signed_imm", ("a0",), -5)),
    ("5 <u a0", ins("branch_greater_unsigned_imm", ("a0",), 5)),
    ("5 >=s a0", ins("branch_less_or_equal_signed_imm", ("a0",), 5)),
]


@pytest.mark.parametrize("cond,expected", BRANCHES, ids=[b[0] for b in BRANCHES])
def test_branch_selection(cond, expected):
    # The branch targets the block after it: offset 0 + its own length.
    blob = assemble(f"%isa = latest64\njump @next if {cond}\n@next:\ntrap")
    name, regs, i1, i2, _ = decoded(blob)[0]
    fmt = isa.BY_NAME[name].format
    length = len(Program.from_bytes(blob).code) - 1
    target = i2 if fmt == "reg_imm_offset" else i1
    assert target == length
    got = (name, regs, i1 if fmt == "reg_imm_offset" else 0, 0, 0)
    assert got == expected


def test_labels_fallthrough_and_exports():
    blob = assemble("""
        %isa = latest64
        pub @entry:
            a0 = 1
        @loop:              // not at a block start: a fallthrough is inserted
            a0 = a0 + 1
            jump @loop if a0 <u 10
        pub @second:
            ret
        pub @mid: %no_fallthrough
            trap
    """)
    program = Program.from_bytes(blob)
    names = [op[0] for op in decoded(blob)]
    assert names == ["load_imm", "fallthrough", "add_imm_64", "branch_less_unsigned_imm", "jump_indirect",
                     "trap"]
    assert program.exports == {"entry": 0, "second": 11, "mid": 13}
    branch = _engine.instructions(program.isa_index, program.code, program.bitmask)[3]
    assert branch[7] == 4  # the fallthrough ends the block; @loop starts at offset 4


def test_label_address_goes_to_jump_table():
    blob = assemble("""
        %isa = jam_v1
        %jump_table = @b
            a0 = @a
            a1 = @b
            jump [a0]
        @a:
            trap
        @b:
            ret
    """)
    program = Program.from_bytes(blob)
    ops = decoded(blob)
    # the %jump_table entry comes first; each `= @label` adds one, address (index + 1) * 2
    assert program.jump_table == [9, 8, 9]
    assert ops[0] == ins("load_imm", ("a0",), 4)
    assert ops[1] == ins("load_imm", ("a1",), 6)


def test_isa_default_and_directives():
    program = Program.from_bytes(assemble("ret"))
    assert program.isa == "latest64"
    assert Program.from_bytes(assemble("ret", isa="jam_v1")).isa == "jam_v1"
    program = Program.from_bytes(assemble("""
        ret
        %isa = revive_v1
        %rw_data_size = 0x2000
        %stack_size = 65536
        %ro_data = 01 02 03
        %rw_data = ff00
        %ro_data_size = 4096
        %import "first"
        %import second
    """))
    assert program.isa == "revive_v1"
    assert (program.ro_data_size, program.rw_data_size, program.stack_size) == (4096, 0x2000, 65536)
    assert (program.ro_data, program.rw_data) == (b"\1\2\3", b"\xff\0")
    assert program.imports == ["first", "second"]


def test_quoted_labels_and_loose_exports():
    blob = assemble('%isa = latest64\npub @"a b":\n jump @"a b"\n%export @"x:y" = 77\n')
    program = Program.from_bytes(blob)
    assert program.exports == {"a b": 0, "x:y": 77}


def test_raw_invalid_bytes_are_one_instruction():
    blob = assemble("%isa = latest64\ninvalid ff 01 02\ntrap")
    program = Program.from_bytes(blob)
    assert program.code == b"\xff\x01\x02\x00"
    assert program.bitmask == bytes([0b1001])


def test_varint_matches_the_loader():
    rng = random.Random(9)
    values = [0, 1, 0x7F, 0x80, 0x3FFF, 0x4000, 0x1FFFFF, 0x200000, 0xFFFFFFF, 0x10000000, M32]
    for value in values + [rng.getrandbits(rng.randrange(1, 33)) for _ in range(2000)]:
        encoded = varint(value)
        assert _engine.read_varint(encoded + b"\0" * 4, 0) == (value, len(encoded))


def test_encode_instruction_matches_decoder():
    rng = random.Random(5)
    edges = [0, 1, -1, 0x7F, 0x80, -0x80, -0x81, 0xFF, 0x7FFF, 0x8000, 0xFFFF, -0x8000, 0x7FFFFF, 0x800000,
             0x7FFFFFFF, -0x80000000, 0x12345678]
    for isa_name in isa.ISA_NAMES:
        for op in isa.OPCODES:
            if op.byte_for(isa_name) is None:
                continue
            for _ in range(20):
                regs = [rng.randrange(13) for _ in range(3)]
                i1, i2 = (rng.choice(edges) & M32 for _ in range(2))
                i64 = rng.getrandbits(64)
                data = encode_instruction(isa_name, op.name, regs, i1, i2, i64, position=0)
                bitmask = bytearray(len(data) // 8 + 1)
                bitmask[0] |= 1
                bitmask[len(data) >> 3] |= 1 << (len(data) & 7)
                got = _engine.decode(isa.isa_index(isa_name), data + b"\0", bytes(bitmask), 0)
                assert got[0] == op.id and got[1] == len(data), (isa_name, op.name)
                used = {"argless": 0, "reg_imm": 1, "reg_imm_offset": 1, "reg_imm_imm": 1, "reg_reg_imm": 2,
                        "reg_reg_offset": 2, "reg_reg_reg": 3, "offset": 0, "imm": 0, "imm_imm": 0, "reg_reg": 2,
                        "reg_reg_imm_imm": 2, "reg_imm64": 1}[op.format]
                assert got[2][:used] == tuple(regs[:used])
                n_imm = {"reg_imm": 1, "reg_imm_offset": 2, "reg_imm_imm": 2, "reg_reg_imm": 1,
                         "reg_reg_offset": 1, "offset": 1, "imm": 1, "imm_imm": 2, "reg_reg_imm_imm": 2}.get(
                    op.format, 0)
                assert (got[3], got[4])[:n_imm] == (i1, i2)[:n_imm]
                if op.format == "reg_imm64":
                    assert got[5] == i64


# ---------------------------------------------------------------- errors

ERRORS = [
    ("ret\nfrobnicate a0", 2, "unknown instruction"),
    ("a0 = a1 + q7", 1, "expected a register"),
    ("x9 = a1", 1, "destination register"),
    ("\n\njump @nowhere", 3, "not defined"),
    ("%isa = jam_v1\na0 = sbrk a1", 2, "not available in the 'jam_v1'"),
    ("%isa = jam_v1\nmemset", 2, "not available"),
    ("%isa = latest32\nu64 [a0] = a1", 2, "not available in the 'latest32'"),
    ("%isa = latest32\na0 = a1 + a2\na0 = 0x123456789", 3, "does not fit"),
    ("a0 = a1 + 0x100000000", 1, "does not fit"),
    ("a0 = a1 + 0xffffffff", 1, "does not fit"),
    ("%isa = nonsense", 1, "unknown instruction set"),
    ("@a:\nret\n@a:", 3, "duplicate label"),
    ("i32 a0 = a1 & a2", 1, "i32"),
    ("a0 = 5 + 6", 1, "both operands"),
    ("a0 = a1 /u 5", 1, "does not take an immediate"),
    ("jump @x if 1 == 2\n@x:", 1, "both sides"),
    ("jump @x if a0 ?? a1", 1, "condition"),
    ("ecalli -1", 1, "ecalli"),
    ("u8 [a0 = 1", 1, "memory operand"),
    ("a0 = 5, jump [a0]", 1, "same register"),
    ("a0 = 1 if a1 == 2", 1, "with 0"),
    ("invalid", 1, "raw bytes"),
    ("%ro_data = 123", 1, "hex"),
    ("%stack_size = -1", 1, "stack_size"),
    ("%rw_data_size = 1\n%rw_data = 0102", 2, "more than %rw_data_size"),
    ("%bogus 1", 1, "unknown directive"),
    ("a0 =", 1, "right-hand side"),
    ("jump 12 if a0", 1, "condition"),
]


@pytest.mark.parametrize("source,line,words", ERRORS, ids=[e[0] for e in ERRORS])
def test_errors_name_the_line(source, line, words):
    with pytest.raises(ProgramError) as info:
        assemble(source)
    assert isinstance(info.value, AsmError)
    assert info.value.line == line
    assert f"line {line}:" in str(info.value)
    assert words in str(info.value)


def test_garbage_only_raises_program_error():
    """Mangled versions of valid lines either assemble or raise AsmError."""
    rng = random.Random(11)
    seeds = [s[0] for s in SELECTION] + ["jump @l if a0 <u a1", "pub @l:", "%ro_data = 0102", "a0 = @l",
                                         "tmp = a1, a1 = 5, jump [tmp + 1]", "%jump_table = @l, 3",
                                         "%export @e = 1", "invalid 00", '@"q":']
    alphabet = "a0[]+-=@%,:~()^<>|&*/\"\\ ui32x9"
    for _ in range(4000):
        line = list(rng.choice(seeds))
        for _ in range(rng.randrange(1, 4)):
            pos = rng.randrange(len(line) + 1)
            action = rng.random()
            if action < 0.4 and line:
                del line[min(pos, len(line) - 1)]
            elif action < 0.8:
                line.insert(pos, rng.choice(alphabet))
            else:
                line[pos:pos + 2] = []
        source = "@l:\n" + "".join(line) + "\nret"
        try:
            assemble(source)
        except AsmError:
            pass
        except VmError as e:  # pragma: no cover - would be a bug
            pytest.fail(f"{source!r}: {type(e).__name__}: {e}")


# ------------------------------------------------------------------- CLI

def test_main_assembles_a_file(tmp_path):
    src = tmp_path / "sum.asm"
    src.write_bytes(data_file("sum.asm"))
    out = tmp_path / "out.polkavm"
    assert main([str(src), "-o", str(out)]) == 0
    assert out.read_bytes() == data_file("sum.polkavm")
    assert main([str(src)]) == 0  # default output name
    assert (tmp_path / "sum.polkavm").read_bytes() == data_file("sum.polkavm")


@pytest.mark.parametrize("content,args", [
    ("ret\n  bogus instruction\n", []),
    (None, []),                 # missing file
    ("ret\n", ["--isa", "x"]),  # bad option value
    ("ret\n", ["--nope"]),
])
def test_main_bad_input_is_one_line_and_exit_2(tmp_path, capsys, content, args):
    src = tmp_path / "prog.asm"
    if content is not None:
        src.write_text(content)
    assert main([str(src), "-o", str(tmp_path / "o.polkavm")] + args) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert len(captured.err.strip().splitlines()) == 1
    assert "Traceback" not in captured.err
    if content and not args:
        assert "line 2:" in captured.err
