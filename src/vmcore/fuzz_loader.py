"""The fuzzer's ``loader`` target: program blobs (the bundled
``vmcore/data/*.polkavm``, generated containers of every instruction set
and format, random bytes), mutated and fed to every loader, which must
return a Program or raise ProgramError; what loads is walked too."""
from __future__ import annotations

import random
import re
import traceback
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from vmcore import _engine, isa as _isa
from vmcore.asm import varint
from vmcore.errors import ProgramError
from vmcore.program import Program
from vmcore.fuzz_cases import M32, M64, PAGE, Failure, _bitmask, case_rng, random_code

# =====================================================================
# Loader target
# =====================================================================

def _le(value: int, n: int) -> bytes:
    return (value & ((1 << (8 * n)) - 1)).to_bytes(n, "little")


def _size(rng: random.Random) -> int:
    return rng.choice([0, 0, 1, 7, 0x100, 0x1000, 0x1001, 0x10000, rng.randrange(0, 0x20000), 0xFFFFFF,
                       0x7FFFFFFF, M32, rng.getrandbits(32)])


def _name(rng: random.Random) -> bytes:
    r = rng.random()
    if r < 0.7:
        return rng.choice([b"main", b"a", b"", b"call", b"get_value", b"\xc3\xa9t\xc3\xa9"]) + \
            str(rng.randrange(10)).encode() * rng.randrange(0, 2)
    if r < 0.85:
        return rng.randbytes(rng.randrange(0, 6))  # often invalid UTF-8
    return b"x" * rng.randrange(0, 300)


def _corrupt_varint_length(rng: random.Random, length: int) -> int:
    if rng.random() < 0.5:
        return max(0, length + rng.choice([-2, -1, 1, 2, 8]))
    return rng.choice([0, M32, 0xFFFFFF, length * 2 + 1])


def generate_container(rng: random.Random) -> Tuple[str, bytes]:
    """A random, usually well-formed program container; sometimes with one
    of its fields lying.  Returns (kind, blob)."""
    kind = rng.choice(["polkavm", "polkavm", "raw", "jam-standard"])
    isa = "jam_v1" if kind == "jam-standard" else rng.choice(_isa.ISA_NAMES)
    if rng.random() < 0.85:
        code, mask, table = random_code(rng, isa, garbage=0.2)
    else:
        code = rng.randbytes(rng.randrange(0, 40))
        mask = bytes(_bitmask(len(code), [i for i in range(len(code)) if rng.random() < 0.4]))
        table = [rng.randrange(0, 2 * len(code) + 2) for _ in range(rng.randrange(0, 4))]
    lie = rng.random() < 0.25
    entry_size = max(((t.bit_length() + 7) // 8 for t in table), default=0) or (1 if table else 0)
    if lie and rng.random() < 0.3:
        entry_size = rng.choice([0, 1, 2, 3, 4, 5, 255])
    width = min(entry_size, 8)
    table_bytes = b"".join(_le(t, width) for t in table)
    table_count, code_len = len(table), len(code)
    mask = bytearray(mask)
    if lie and rng.random() < 0.25:
        r = rng.random()
        if r < 0.3:    # the code length field lies
            code_len = _corrupt_varint_length(rng, code_len) & M32
        elif r < 0.5:  # the jump table count lies
            table_count = rng.choice([len(table) + 1, 0x7FFFFFFF, 1 << 20, 1 << 24])
        elif r < 0.7 and mask and len(code) % 8:  # non-zero bitmask padding
            mask[-1] |= 0x80
        elif rng.random() < 0.5:  # the bitmask too long or too short
            mask.append(0)
        elif mask:
            mask.pop()
    blob = varint(table_count) + bytes([entry_size]) + varint(code_len) + table_bytes + bytes(code) + bytes(mask)
    if kind == "raw":
        return kind, blob
    if kind == "jam-standard":
        ro, rw = rng.randbytes(rng.randrange(0, 24)), rng.randbytes(rng.randrange(0, 24))
        lens = [len(ro), len(rw)]
        if lie and rng.random() < 0.3:
            lens[rng.randrange(2)] = _corrupt_varint_length(rng, lens[0]) & 0xFFFFFF
        code_len = len(blob)
        if lie and rng.random() < 0.3:
            code_len = _corrupt_varint_length(rng, code_len)
        heap = rng.choice([0, 1, 16, 0xFFFF, rng.randrange(0x10000)])
        stack = rng.choice([0, 0x1000, 0x10000, 0xFFFFFF, rng.randrange(0x1000000)])
        out = _le(lens[0], 3) + _le(lens[1], 3) + _le(heap, 2) + _le(stack, 3) + ro + rw + _le(code_len, 4) + blob
        if lie and rng.random() < 0.2:
            out += rng.randbytes(rng.randrange(1, 4))
        return kind, out
    # .polkavm: the sections in order, each optional
    sections: List[Tuple[int, bytes]] = []
    ro = rng.randbytes(rng.randrange(0, 16)) if rng.random() < 0.5 else b""
    rw = rng.randbytes(rng.randrange(0, 16)) if rng.random() < 0.5 else b""
    if rng.random() < 0.7:
        sizes = [len(ro) + rng.choice([0, 0, 1, PAGE]), len(rw) + rng.choice([0, 0, 1, PAGE]),
                 rng.choice([0, PAGE, 0x10000, 1])]
        if lie and rng.random() < 0.4:
            sizes[rng.randrange(3)] = _size(rng)
        sections.append((1, b"".join(varint(s) for s in sizes)))
    if ro:
        sections.append((2, ro))
    if rw:
        sections.append((3, rw))
    if rng.random() < 0.4:
        names = [_name(rng) for _ in range(rng.randrange(0, 4))]
        offsets, pos = [], 0
        for n in names:
            offsets.append(pos)
            pos += len(n)
        if lie and rng.random() < 0.4 and offsets:
            offsets[rng.randrange(len(offsets))] = rng.choice([pos + 1, M32, rng.randrange(0, pos + 2)])
        count = len(names)
        if lie and rng.random() < 0.2:
            count = rng.choice([count + 1, M32, 0x10000])
        sections.append((4, varint(count & M32) + b"".join(_le(o, 4) for o in offsets) + b"".join(names)))
    if rng.random() < 0.6:
        exports = [(rng.randrange(0, len(code) + 2), _name(rng)) for _ in range(rng.randrange(0, 4))]
        count = len(exports)
        if lie and rng.random() < 0.2:
            count = rng.choice([count + 1, M32])
        payload = varint(count & M32)
        for pc, name in exports:
            payload += varint(pc) + varint(len(name)) + name
        sections.append((5, payload))
    if not (lie and rng.random() < 0.1):
        sections.append((6, blob))
    for sid in (128, 129, 130):
        if rng.random() < 0.15:
            sections.append((sid, rng.randbytes(rng.randrange(0, 8))))
    if rng.random() < 0.1:
        sections.append((rng.randrange(131, 256), rng.randbytes(rng.randrange(0, 8))))
    if lie and rng.random() < 0.2 and sections:
        # out of order or repeated
        if rng.random() < 0.5:
            rng.shuffle(sections)
        else:
            sections.insert(rng.randrange(len(sections) + 1), rng.choice(sections))
    body = bytearray()
    for sid, payload in sections:
        length = len(payload)
        if lie and rng.random() < 0.1:
            length = _corrupt_varint_length(rng, length)
        body += bytes([sid]) + varint(length & M32) + payload
    if not (lie and rng.random() < 0.1):
        body.append(0)
    version = _isa.ISA_NAMES.index(isa)
    if lie and rng.random() < 0.1:
        version = rng.randrange(256)
    total = 13 + len(body)
    if lie and rng.random() < 0.1:
        total = rng.choice([total - 1, total + 1, 0, M64])
    return kind, b"PVM\0" + bytes([version]) + _le(total, 8) + bytes(body)


_HEADER_SIZE = 4 + 1 + 8  # magic, version, blob length


def _fix_header(data: bytearray) -> None:
    if len(data) >= _HEADER_SIZE and data[:4] == b"PVM\0":
        data[5:_HEADER_SIZE] = len(data).to_bytes(8, "little")


_INTERESTING_BYTES = [0x00, 0x01, 0x7F, 0x80, 0xC0, 0xE0, 0xF0, 0xFE, 0xFF]


def mutate(rng: random.Random, data: bytes, pool: Sequence[bytes]) -> bytes:
    """One to four random mutations."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(10)
        n = len(out)
        pos = rng.randrange(n + 1)
        if op == 0 and n:      # bit flips
            for _ in range(rng.randint(1, 4)):
                p = rng.randrange(n)
                out[p] ^= 1 << rng.randrange(8)
        elif op == 1 and n:    # bytes set to interesting or random values
            for _ in range(rng.randint(1, 3)):
                out[rng.randrange(n)] = rng.choice(_INTERESTING_BYTES) if rng.random() < 0.6 else rng.randrange(256)
        elif op == 2:          # truncation
            del out[rng.randrange(n + 1):]
        elif op == 3:          # insertion
            out[pos:pos] = rng.randbytes(rng.randint(1, 8)) if rng.random() < 0.7 else out[pos:pos + rng.randint(1, 16)]
        elif op == 4 and n:    # deletion
            del out[pos:pos + rng.randint(1, 8)]
        elif op == 5:          # splice with another blob
            other = rng.choice(pool)
            cut = rng.randrange(len(other) + 1)
            out = out[:pos] + bytearray(other[cut:cut + rng.randint(1, 64)] if rng.random() < 0.5 else other[cut:])
        elif op == 6 and n:    # a varint overwritten: long prefixes, maximal values, overlong encodings
            p = rng.randrange(n)
            out[p:p + 1] = rng.choice([b"\x80", b"\xc0", b"\xe0", b"\xf0", b"\xf8", b"\xff", b"\xf0\xff\xff\xff\xff",
                                       b"\xef\xff\xff\xff", b"\x80\x00", b"\xc0\x00\x00", varint(rng.getrandbits(32))])
        elif op == 7 and n >= 4:  # a little-endian length field (JAM standard, headers) perturbed
            p = rng.randrange(n - 3)
            width = rng.choice([2, 3, 4])
            value = int.from_bytes(out[p:p + width], "little")
            value = rng.choice([value + 1, value - 1, 0, (1 << (8 * width)) - 1, value * 2]) % (1 << (8 * width))
            out[p:p + width] = value.to_bytes(width, "little")
        elif op == 8:          # duplicate a chunk
            chunk = out[pos:pos + rng.randint(1, 32)]
            out[pos:pos] = chunk
        elif op == 9:          # junk appended
            out += rng.randbytes(rng.randint(1, 8))
    if rng.random() < 0.6:
        _fix_header(out)  # past the header's length check more often
    return bytes(out)


def _exercise(program: Program) -> None:
    """Walk what loaded: statistics, the decoder at many offsets, the
    threaded-code builder, the memory map at the largest page size."""
    program.instruction_count()
    program.basic_block_count()
    isa_index, code, bitmask = program.isa_index, program.code, program.bitmask
    n = len(code)
    for offset in {0, 1, 2, 7, 8, 24, 25, 31, 32, n // 2, max(0, n - 1), n, n + 1, n + 100}:
        _engine.is_basic_block_start(isa_index, code, bitmask, offset)
        _engine.decode(isa_index, code, bitmask, offset)
    if n <= 4096:
        _engine.instructions(isa_index, code, bitmask)
        _engine.validate_code(isa_index, code, bitmask)
        table = program.jump_table
        _engine.CompiledModule(isa_index, code, bitmask, table, True, False)
        _engine.CompiledModule(isa_index, code, bitmask, table, False, True)
    try:
        program.memory_map(0x10000)
    except ProgramError:
        pass


def _loaders() -> Dict[str, Callable[[bytes], Program]]:
    # looked up at call time so tests can monkeypatch Program's methods
    loaders: Dict[str, Callable[[bytes], Program]] = {
        "from_bytes": lambda d: Program.from_bytes(d),
        "from_jam_standard": lambda d: Program.from_jam_standard(d),
    }
    for name in _isa.ISA_NAMES:
        loaders[f"from_raw_code(isa={name})"] = lambda d, name=name: Program.from_raw_code(d, isa=name)
    return loaders


class LoaderTarget:
    name = "loader"

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.loaded = self.rejected = 0
        self._pool: Optional[List[bytes]] = None

    @property
    def pool(self) -> List[bytes]:
        """The seed blobs: the bundled programs and generated containers of
        every kind and ISA (a fixed set, independent of --seed)."""
        if self._pool is None:
            pool = [p.read_bytes() for p in sorted((Path(__file__).parent / "data").glob("*.polkavm"))]
            rng = random.Random(0x5EED)
            for _ in range(48):
                pool.append(generate_container(rng)[1])
            self._pool = pool
        return self._pool

    def setup(self) -> List[str]:
        return [f"{len(self.pool)} seed blobs, {len(_loaders())} loaders"]

    def generate(self, index: int) -> bytes:
        rng = case_rng(self.seed, self.name, index)
        r = rng.random()
        if r < 0.4:
            data = mutate(rng, rng.choice(self.pool), self.pool)
        elif r < 0.9:
            data = generate_container(rng)[1]
            if rng.random() < 0.5:
                data = mutate(rng, data, self.pool)
        else:
            data = rng.randbytes(rng.randrange(0, 96))
            if rng.random() < 0.5:
                data = b"PVM\0" + bytes([rng.randrange(5)]) + _le(13 + len(data), 8) + data
        return data

    def check(self, data: bytes) -> List[str]:
        """Problems found running every loader on data (empty: fine)."""
        problems = []
        for name, load in _loaders().items():
            try:
                program = load(data)
            except ProgramError as e:
                self.rejected += 1
                if not (isinstance(e.reason, str) and e.reason):
                    problems.append(f"{name}: ProgramError without a reason: {e!r}")
                elif e.offset is not None and not (0 <= e.offset <= len(data)):
                    problems.append(f"{name}: ProgramError offset {e.offset} outside the {len(data)}-byte input: {e}")
                continue
            except Exception as e:
                problems.append(f"{name} raised {type(e).__name__}: {e}\n{traceback.format_exc()}")
                continue
            if not isinstance(program, Program):
                problems.append(f"{name} returned {type(program).__name__}, not a Program")
                continue
            self.loaded += 1
            try:
                _exercise(program)
            except Exception as e:
                problems.append(f"{name}: walking the loaded program raised {type(e).__name__}: {e}\n"
                                f"{traceback.format_exc()}")
        return problems

    def run_case(self, index: int) -> Optional[Failure]:
        data = self.generate(index)
        problems = self.check(data)
        if not problems:
            return None
        return Failure(self.name, index, "exception", problems[0].splitlines()[0], "\n".join(problems), data,
                       self.seed)

    def stats(self) -> Dict[str, int]:
        return {"loaded": self.loaded, "rejected": self.rejected}

    def crash_artifact(self, index: int) -> bytes:
        return self.generate(index)

    def describe(self, index: int) -> str:
        data = self.generate(index)
        return f"{len(data)} bytes: {data[:96].hex()}{'...' if len(data) > 96 else ''}"
