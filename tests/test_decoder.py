"""The C decoder (vmcore._engine) against an independent pure-Python model
written from the reference's simple operand formulas (PolkaVM program.rs,
the `simple_read_args_*` definitions), its bitmask rules and its jump-target
rule, plus the opcode tables against the reference's."""
import random
import re

import pytest

from conftest import REFERENCE_PROGRAM_RS
from vmcore import _engine, isa

ISAS = list(isa.ISA_NAMES)
M32 = 0xFFFFFFFF
INVALID = isa.OP_INVALID

# From the reference (Opcode::can_fallthrough / starts_new_basic_block),
# typed here on purpose: the C flags are checked against these.
NO_FALLTHROUGH = {"trap", "jump", "jump_indirect", "load_imm_and_jump", "load_imm_and_jump_indirect"}
BRANCHES = {
    "branch_eq", "branch_not_eq", "branch_less_unsigned", "branch_less_signed", "branch_greater_or_equal_unsigned",
    "branch_greater_or_equal_signed", "branch_eq_imm", "branch_not_eq_imm", "branch_less_unsigned_imm",
    "branch_less_signed_imm", "branch_greater_or_equal_unsigned_imm", "branch_greater_or_equal_signed_imm",
    "branch_less_or_equal_signed_imm", "branch_less_or_equal_unsigned_imm", "branch_greater_signed_imm",
    "branch_greater_unsigned_imm",
}
STARTS_BLOCK = NO_FALLTHROUGH | BRANCHES | {"fallthrough"}

TABLES = {name: isa.opcode_table(name) for name in ISAS}


# ---------------------------------------------------------------- the model
def _bits(bitmask: bytes, code_len: int) -> int:
    return int.from_bytes(bitmask, "little") & ((1 << code_len) - 1)


def _sext(value: int, length: int) -> int:
    if length == 0:
        return 0
    width = 8 * length
    value &= (1 << width) - 1
    if value >> (width - 1):
        value -= 1 << width
    return value & M32


def _imm(c: bytes, at: int, length: int) -> int:
    return _sext(int.from_bytes(c[at:at + length], "little"), length)


def _clamp4(v: int) -> int:
    return max(0, min(4, v))


def _reg(nibble: int) -> int:
    return min(12, nibble & 15)


def model_skip(bits: int, code_len: int, offset: int):
    """(skip, next_is_invalid): distance to the next instruction start if
    one is marked within 25 bytes, else the distance to the end of the code,
    both capped at 24."""
    window = (bits >> (offset + 1)) & ((1 << 25) - 1)
    if window:
        return (window & -window).bit_length() - 1, False
    return min(max(code_len - offset - 1, 0), 24), True


def model_decode(isa_name: str, code: bytes, bitmask: bytes, offset: int):
    n = len(code)
    if offset >= n:
        return (INVALID, offset + 1, (0, 0, 0), 0, 0, 0, False)
    skip, invalid = model_skip(_bits(bitmask, n), n, offset)
    opcode = TABLES[isa_name].get(code[offset])
    nxt = offset + skip + 1
    if invalid and nxt >= n and (opcode is None or opcode.name in NO_FALLTHROUGH):
        invalid = False  # the last instruction cannot fall through: no implicit trap needed
    if opcode is None:
        return (INVALID, nxt, (0, 0, 0), 0, 0, 0, invalid)
    c = bytes(code[offset + 1:offset + 17]).ljust(16, b"\0")  # may read past skip
    fmt = opcode.format
    r = [0, 0, 0]
    imm1 = imm2 = imm64 = 0
    if fmt == "argless":
        pass
    elif fmt in ("imm", "offset"):
        length = min(4, skip)
        imm1 = _imm(c, 0, length)
        if fmt == "offset":
            imm1 = (offset + imm1) & M32
    elif fmt == "imm_imm":
        l1 = min(4, c[0] & 7)
        l2 = _clamp4(skip - l1 - 1)
        imm1, imm2 = _imm(c, 1, l1), _imm(c, 1 + l1, l2)
    elif fmt == "reg_imm":
        r[0] = _reg(c[0])
        imm1 = _imm(c, 1, _clamp4(skip - 1))
    elif fmt in ("reg_imm_imm", "reg_imm_offset"):
        r[0] = _reg(c[0])
        l1 = min(4, (c[0] >> 4) & 7)
        l2 = _clamp4(skip - l1 - 1)
        imm1, imm2 = _imm(c, 1, l1), _imm(c, 1 + l1, l2)
        if fmt == "reg_imm_offset":
            imm2 = (offset + imm2) & M32
    elif fmt == "reg_reg_imm_imm":
        r[0], r[1] = _reg(c[0]), _reg(c[0] >> 4)
        l1 = min(4, c[1] & 7)
        l2 = _clamp4(skip - l1 - 2)
        imm1, imm2 = _imm(c, 2, l1), _imm(c, 2 + l1, l2)
    elif fmt in ("reg_reg_imm", "reg_reg_offset"):
        r[0], r[1] = _reg(c[0]), _reg(c[0] >> 4)
        imm1 = _imm(c, 1, _clamp4(skip - 1))
        if fmt == "reg_reg_offset":
            imm1 = (offset + imm1) & M32
    elif fmt == "reg_reg_reg":
        r[0], r[1], r[2] = _reg(c[1]), _reg(c[0]), _reg(c[0] >> 4)  # dst is in the second byte
    elif fmt == "reg_reg":
        r[0], r[1] = _reg(c[0]), _reg(c[0] >> 4)
    elif fmt == "reg_imm64":
        r[0] = _reg(c[0])
        imm64 = int.from_bytes(c[1:9], "little")  # always 8 bytes, whatever the skip
    else:  # pragma: no cover
        raise AssertionError(f"unknown format {fmt}")
    return (opcode.id, nxt, tuple(r), imm1, imm2, imm64, invalid)


def model_is_block_start(isa_name: str, code: bytes, bitmask: bytes, offset: int) -> bool:
    """The reference's jump-target rule: a marked instruction start that is
    offset 0, or whose previous instruction start is in reach and is an
    opcode that ends a basic block (an undefined opcode does not).  The
    reference finds the previous start in a 32-bit window of the bitmask
    ending just below `offset`'s bit; that window reaches back
    24 + (offset % 8) bytes, and a skip over 24 is out of range: so the reach
    is 25 bytes, except 24 when `offset` is a multiple of 8."""
    n = len(code)
    bits = _bits(bitmask, n)
    if offset >= n or not (bits >> offset) & 1:
        return False
    if offset == 0:
        return True
    reach = min(25, 24 + (offset & 7), offset)
    for k in range(1, reach + 1):
        if (bits >> (offset - k)) & 1:
            opcode = TABLES[isa_name].get(code[offset - k])
            return opcode is not None and opcode.name in STARTS_BLOCK
    return False


def c_decode(isa_name, code, bitmask, offset):
    return _engine.decode(isa.isa_index(isa_name), bytes(code), bytes(bitmask), offset)


def c_is_block_start(isa_name, code, bitmask, offset):
    return _engine.is_basic_block_start(isa.isa_index(isa_name), bytes(code), bytes(bitmask), offset)


def mask(code_len, starts):
    m = bytearray((code_len + 7) // 8)
    for s in starts:
        if s < code_len:
            m[s >> 3] |= 1 << (s & 7)
    return bytes(m)


def op_byte(isa_name, name):
    return isa.BY_NAME[name].byte_for(isa_name)


# ------------------------------------------------------- differential tests
@pytest.mark.parametrize("isa_name", ISAS)
def test_every_opcode_every_skip(isa_name):
    """Every opcode byte (defined or not) at every skip 0..24, with random
    operand bytes, at a random position, with and without a following
    instruction start."""
    rng = random.Random(0x5EED + ISAS.index(isa_name))
    cases = 0
    for byte in range(256):
        for skip in range(25):
            for ends_at_next in (False, True):
                prefix = rng.randrange(0, 40) if rng.random() < 0.7 else rng.randrange(0, 5000)
                tail = 0 if ends_at_next else rng.randrange(1, 20)
                n = prefix + 1 + skip + tail
                code = bytearray(rng.randbytes(n))
                code[prefix] = byte
                starts = {prefix}
                starts.update(rng.randrange(0, prefix) for _ in range(min(prefix, 8)))
                if not ends_at_next:
                    starts.add(prefix + 1 + skip)
                    starts.update(rng.randrange(prefix + 1 + skip, n) for _ in range(3))
                bm = mask(n, starts)
                got = c_decode(isa_name, code, bm, prefix)
                want = model_decode(isa_name, code, bm, prefix)
                assert got == want, (isa_name, byte, skip, prefix, bytes(code[prefix:prefix + 26]).hex())
                cases += 1
    assert cases == 256 * 25 * 2


@pytest.mark.parametrize("isa_name", ISAS)
def test_random_code_every_offset(isa_name):
    """Random code and bitmasks (including long gaps and undefined opcodes),
    decoded at every offset including past the end; jump-target rule at
    every offset."""
    rng = random.Random(1234 + ISAS.index(isa_name))
    defined = sorted(TABLES[isa_name])
    for _ in range(300):
        n = rng.randrange(1, 80)
        code = bytearray(rng.choice(defined) if rng.random() < 0.8 else rng.getrandbits(8) for _ in range(n))
        density = rng.choice([0.02, 0.1, 0.3, 0.7, 1.0])
        bm = mask(n, [i for i in range(n) if rng.random() < density])
        for offset in range(n + 3):
            assert c_decode(isa_name, code, bm, offset) == model_decode(isa_name, code, bm, offset), \
                (isa_name, bytes(code).hex(), bm.hex(), offset)
            assert c_is_block_start(isa_name, code, bm, offset) == model_is_block_start(isa_name, code, bm, offset), \
                (isa_name, bytes(code).hex(), bm.hex(), offset)


def test_block_start_reach_across_byte_boundaries():
    """A previous instruction start exactly 25 bytes back, for every
    alignment of the target: reachable unless the target is a multiple of 8."""
    for target in range(25, 25 + 16):
        n = target + 1
        code = bytes(n)  # all `trap`, which ends a block
        bm = mask(n, [target - 25, target])
        for name in ISAS:
            expected = target % 8 != 0
            assert c_is_block_start(name, code, bm, target) is expected, (name, target)
            assert model_is_block_start(name, code, bm, target) is expected
        bm24 = mask(n, [target - 24, target])
        assert c_is_block_start("latest64", code, bm24, target) is True
        bm26 = mask(n + 1, [target - 26, target])
        assert c_is_block_start("latest64", code + b"\0", bm26, target) is False


# ------------------------------------------------------------ explicit cases
def test_reference_jump_target_cases():
    """The reference's own is_jump_target_valid cases (code of `trap`s)."""
    def check(code_len, starts, offset, expected):
        code = bytes([op_byte("latest32", "trap")]) * code_len
        assert c_is_block_start("latest32", code, mask(code_len, starts), offset) is expected, (code_len, starts, offset)

    check(1, [0], 0, True)
    check(1, [], 0, False)
    check(2, [0, 1], 1, True)
    check(2, [1], 1, False)
    check(8, [0, 7], 7, True)
    check(9, [0, 8], 8, True)
    check(25, [0, 24], 24, True)
    check(26, [0, 25], 25, True)
    check(27, [0, 26], 26, False)
    load_imm, trap = op_byte("latest32", "load_imm"), op_byte("latest32", "trap")
    assert c_is_block_start("latest32", bytes([load_imm]), b"\x01", 0)
    assert not c_is_block_start("latest32", bytes([load_imm, load_imm]), b"\x03", 1)
    assert c_is_block_start("latest32", bytes([trap, load_imm]), b"\x03", 1)


@pytest.mark.parametrize("isa_name", ISAS)
def test_block_start_after_each_opcode(isa_name):
    """Offset 1 after every opcode byte: a block start iff that opcode ends a
    block; after an undefined byte never."""
    for byte in range(256):
        code = bytes([byte, op_byte(isa_name, "trap")])
        opcode = TABLES[isa_name].get(byte)
        expected = opcode is not None and opcode.name in STARTS_BLOCK
        assert c_is_block_start(isa_name, code, b"\x03", 1) is expected, (isa_name, byte)
    # not an instruction start / out of range / empty code
    assert not c_is_block_start(isa_name, b"\0\0", b"\x01", 1)
    assert not c_is_block_start(isa_name, b"\0\0", b"\x03", 2)
    assert not c_is_block_start(isa_name, b"", b"", 0)


def test_short_immediates_sign_extend():
    li = op_byte("latest64", "load_imm")
    # load_imm a0, <1 byte 0x80> -> -128
    op, nxt, regs, imm1, *_ = c_decode("latest64", bytes([li, 7, 0x80]), mask(3, [0]), 0)
    assert (isa.OPCODES[op].name, nxt, regs[0], imm1) == ("load_imm", 3, 7, 0xFFFFFF80)
    # 2 bytes 0x7fff -> positive
    assert c_decode("latest64", bytes([li, 7, 0xFF, 0x7F]), mask(4, [0]), 0)[3] == 0x7FFF
    # 3 bytes 0x800000 -> negative
    assert c_decode("latest64", bytes([li, 7, 0, 0, 0x80]), mask(5, [0]), 0)[3] == 0xFF800000
    # no immediate bytes at all -> 0
    assert c_decode("latest64", bytes([li, 7]), mask(2, [0]), 0)[3] == 0
    # ecalli with 2 bytes
    ec = op_byte("latest64", "ecalli")
    assert c_decode("latest64", bytes([ec, 0x34, 0x92]), mask(3, [0]), 0)[3] == 0xFFFF9234


def test_oversized_skip_reads_at_most_four_bytes():
    li = op_byte("latest64", "load_imm")
    code = bytes([li, 1, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77]) + bytes(20)
    got = c_decode("latest64", code, mask(len(code), [0, 24]), 0)
    assert got[1] == 24 and got[3] == 0x44332211 and got[6] is False


def test_operands_read_past_skip():
    """imm1's length comes from the operand byte and is read even when the
    instruction is shorter; the bytes belong to the next instruction."""
    name = "store_imm_indirect_u32"  # reg_imm_imm
    b = op_byte("latest64", name)
    code = bytes([b, 0x40 | 3, 0xAA, 0xBB, 0xCC, 0xDD, 0, 0])
    got = c_decode("latest64", code, mask(len(code), [0, 2]), 0)  # skip = 1
    assert got[1] == 2
    assert got[3] == 0xDDCCBBAA  # four bytes read although skip is 1
    assert got[4] == 0           # clamp(0, 1 - 4 - 1) = 0 bytes


def test_reg_imm64_reads_eight_bytes_regardless_of_skip():
    b = op_byte("latest64", "load_imm64")
    code = bytes([b, 0x0F, 1, 2, 3, 4, 5, 6, 7, 8])
    got = c_decode("latest64", code, mask(len(code), [0, 3]), 0)
    assert got[1] == 3 and got[2][0] == 12 and got[5] == 0x0807060504030201
    # past the end of the code the window is zero
    got = c_decode("latest64", code[:4], mask(4, [0]), 0)
    assert got[5] == 0x0201


def test_register_nibbles_clamp_to_12():
    b = op_byte("jam_v1", "add_64")
    got = c_decode("jam_v1", bytes([b, 0xFD, 0x0E]), mask(3, [0]), 0)
    assert got[2] == (12, 12, 12)
    got = c_decode("jam_v1", bytes([b, 0x21, 0xF3]), mask(3, [0]), 0)
    assert got[2] == (3, 1, 2)


def test_offsets_are_pc_relative_and_wrap():
    j = op_byte("jam_v1", "jump")
    code = bytes([0, j, 0xF6])  # trap; jump -10 from pc 1
    got = c_decode("jam_v1", code, mask(3, [0, 1]), 1)
    assert got[3] == (1 - 10) & M32
    beq = op_byte("jam_v1", "branch_eq")
    code = bytes([beq, 0x21, 0x10, 0x00])
    assert c_decode("jam_v1", code, mask(4, [0]), 0)[3] == 0x10
    bimm = op_byte("jam_v1", "branch_eq_imm")
    code = bytes([0, 0, bimm, 0x17, 5, 0xFE])  # r7, imm1 = 5, offset -2 from pc 2
    got = c_decode("jam_v1", code, mask(6, [0, 1, 2]), 2)
    assert got[2][0] == 7 and got[3] == 5 and got[4] == 0


def test_missing_bitmask_bits():
    """No start marked after an instruction within 24 bytes: skip capped at
    24 and the next instruction is the implicit trap."""
    li = op_byte("latest64", "load_imm")
    code = bytes([li, 0]) + bytes(60)
    got = c_decode("latest64", code, mask(len(code), [0, 40]), 0)
    assert got[1] == 25 and got[6] is True
    # exactly 24 bytes of operands: still fine
    got = c_decode("latest64", code, mask(len(code), [0, 25]), 0)
    assert got[1] == 25 and got[6] is False
    # offset 0 not marked: decode still decodes (the caller decides)
    got = c_decode("latest64", code, mask(len(code), [5]), 0)
    assert got[1] == 5


def test_code_ending_mid_instruction():
    li = op_byte("latest64", "load_imm")
    code = bytes([li, 0x01, 0x11])  # load_imm r1 with a truncated immediate
    got = c_decode("latest64", code, mask(3, [0]), 0)
    assert got[1] == 3 and got[3] == 0x11 and got[6] is True
    # past the end: the implicit trap, length 1
    assert c_decode("latest64", code, mask(3, [0]), 3) == (INVALID, 4, (0, 0, 0), 0, 0, 0, False)
    assert c_decode("latest64", code, mask(3, [0]), 1000) == (INVALID, 1001, (0, 0, 0), 0, 0, 0, False)


@pytest.mark.parametrize("isa_name", ISAS)
def test_implicit_trap_after_last_instruction(isa_name):
    """The last instruction is followed by an implicit trap exactly when it
    can fall through (reference Instructions iterator)."""
    for opcode in TABLES[isa_name].values():
        code = bytes([opcode.byte_for(isa_name)]) + bytes(9 if opcode.format == "reg_imm64" else 4)
        got = c_decode(isa_name, code, mask(len(code), [0]), 0)
        assert got[1] == len(code)
        assert got[6] is (opcode.name not in NO_FALLTHROUGH), (isa_name, opcode.name)
    # an undefined opcode at the end needs no trap either (it is one)
    undefined = next(b for b in range(256) if b not in TABLES[isa_name])
    assert c_decode(isa_name, bytes([undefined]), b"\x01", 0) == (INVALID, 1, (0, 0, 0), 0, 0, 0, False)


def test_reference_iterator_examples():
    ft = op_byte("latest64", "fallthrough")
    assert c_decode("latest64", bytes([ft]), b"\x01", 0)[1:] == (1, (0, 0, 0), 0, 0, 0, True)
    assert c_decode("latest64", bytes([0]), b"\x01", 0)[6] is False
    # a very long gap: the next start is 25, an implicit trap is there
    code = bytes([ft]) + bytes(63)
    bm = bytes([1, 0, 0, 0, 0, 0, 0, 0x80])
    assert c_decode("latest64", code, bm, 0)[1:2] == (25,)
    assert c_decode("latest64", code, bm, 0)[6] is True
    # a trap followed by a gap: the trap is reported with a following
    # invalid instruction (whether to emit it is the walker's business)
    code = bytes(32)
    bm = bytes([1, 0, 0, 4])
    assert c_decode("latest64", code, bm, 0)[1] == 25


def test_short_bitmask_is_rejected_not_read_past():
    for fn in (_engine.decode, _engine.is_basic_block_start, _engine.instructions):
        args = (0, b"\0" * 9, b"\x01") + ((8,) if fn is not _engine.instructions else ())
        with pytest.raises(ValueError, match="bitmask"):
            fn(*args)
    with pytest.raises(ValueError):
        _engine.is_basic_block_start(2, bytes(1000), bytearray(b"\x01"), 40)


# ---------------------------------------------------------- the opcode table
def test_opcode_table_known_values():
    assert isa.ISA_NAMES == ["revive_v1", "latest32", "latest64", "jam_v1"]
    assert op_byte("jam_v1", "count_set_bits_64") == 101
    assert op_byte("latest64", "sbrk") == 101
    assert op_byte("latest32", "load_imm64") is None
    for name in ("memset", "unlikely", "sbrk"):
        assert op_byte("revive_v1", name) is None, name
    assert op_byte("jam_v1", "sbrk") is None
    assert op_byte("jam_v1", "memset") is None
    assert op_byte("latest64", "unlikely") == 3
    assert op_byte("jam_v1", "unlikely") == 2
    assert op_byte("latest64", "memset") == 2
    assert TABLES["latest64"][3].name == "unlikely"
    assert 3 not in TABLES["revive_v1"]
    assert isa.BY_NAME["load_imm64"].format == "reg_imm64"
    assert isa.BY_NAME["add_64"].format == "reg_reg_reg"
    assert isa.is_64_bit("latest64") and isa.is_64_bit("jam_v1") and isa.is_64_bit("revive_v1")
    assert not isa.is_64_bit("latest32")
    for name in ISAS:
        # opcode bytes are unique within an ISA
        assert len(TABLES[name]) == sum(1 for o in isa.OPCODES if o.byte_for(name) is not None)


def test_opcode_flags_match_reference_lists():
    for opcode in isa.OPCODES:
        assert opcode.terminator is (opcode.name in NO_FALLTHROUGH), opcode.name
        assert opcode.ends_block is (opcode.name in STARTS_BLOCK), opcode.name


def test_decode_reports_op_ids_from_the_table():
    for name in ISAS:
        for byte, opcode in TABLES[name].items():
            code = bytes([byte]) + bytes(10)
            assert c_decode(name, code, mask(len(code), [0]), 0)[0] == opcode.id


REF_ISA_NAMES = {"ISA_ReviveV1": "revive_v1", "ISA_Latest32": "latest32", "ISA_Latest64": "latest64",
                 "ISA_JamV1": "jam_v1"}


def _reference_text():
    if not REFERENCE_PROGRAM_RS.exists():
        pytest.skip(f"reference source not present at {REFERENCE_PROGRAM_RS}")
    return REFERENCE_PROGRAM_RS.read_text()


def test_opcode_tables_match_reference_source():
    text = _reference_text()
    formats = _engine.format_names()
    blocks = list(re.finditer(r"define_instruction_set!\s*\{\s*\(\$\)\s*(ISA_\w+),\s*\w+,(.*?)\n\}", text, re.S))
    assert sorted(m.group(1) for m in blocks) == sorted(REF_ISA_NAMES)
    for m in blocks:
        name = REF_ISA_NAMES[m.group(1)]
        groups = re.findall(r"\[(.*?)\]", m.group(2), re.S)
        assert len(groups) == len(formats), name
        reference = {}
        for fmt, group in zip(formats, groups):
            for op, value in re.findall(r"(\w+)\s*=\s*(\d+)", group):
                reference[op] = (int(value), fmt)
        ours = {o.name: (o.byte_for(name), o.format) for o in isa.OPCODES if o.byte_for(name) is not None}
        assert ours == reference, (name, set(ours.items()) ^ set(reference.items()))


def test_opcode_flags_match_reference_source():
    text = _reference_text()

    def matches_list(fn):
        m = re.search(r"pub fn " + fn + r"\(self\) -> bool \{(.*?)\n    \}", text, re.S)
        assert m, fn
        return set(re.findall(r"Self::(\w+)", m.group(1)))

    assert matches_list("can_fallthrough") == NO_FALLTHROUGH
    assert matches_list("starts_new_basic_block") == STARTS_BLOCK
