"""Loader robustness: truncations, byte mutations, random bytes and random
insertions/deletions of real blobs (deterministic, seeded).  Every loader
must return a Program or raise ProgramError: never crash, hang or raise
anything else.  What loads is also walked (instruction stats, jump targets,
the decoder over every offset) to shake out reads past the buffers."""
import random

import pytest

from conftest import WRITER as W, load_shared_programs, load_vector_programs
from vmcore import ProgramError, _engine
from vmcore.program import Program

LOADERS = {
    "polkavm": lambda data: Program.from_bytes(data),
    "raw": lambda data: Program.from_raw_code(data),
    "raw-jam": lambda data: Program.from_raw_code(data, isa="jam_v1"),
    "jam-standard": lambda data: Program.from_jam_standard(data),
}


def exercise(program):
    program.instruction_count()
    program.basic_block_count()
    isa_index, code, bitmask = program.isa_index, program.code, program.bitmask
    n = len(code)
    for offset in (0, 1, 2, 7, 8, 24, 25, 31, 32, n // 2, n - 1, n, n + 1):
        if offset >= 0:
            _engine.is_basic_block_start(isa_index, code, bitmask, offset)
            _engine.decode(isa_index, code, bitmask, offset)
    if n <= 1024:
        _engine.instructions(isa_index, code, bitmask)
    try:
        program.memory_map(0x10000)  # loading checked 4 KiB pages; 64 KiB ones may not fit
    except ProgramError:
        pass


class Stats:
    def __init__(self):
        self.loaded = self.rejected = 0

    def __repr__(self):
        return f"{self.loaded} loaded, {self.rejected} rejected"


def attempt(kind, data, stats):
    try:
        program = LOADERS[kind](data)
    except ProgramError as e:
        assert isinstance(e.reason, str) and e.reason
        assert e.offset is None or 0 <= e.offset <= len(data), (e.offset, len(data), str(e))
        stats.rejected += 1
        return None
    except Exception as e:  # pragma: no cover - the failure we are looking for
        pytest.fail(f"{kind} loader raised {type(e).__name__}: {e} on input {bytes(data[:64]).hex()}...")
    assert isinstance(program, Program)
    exercise(program)
    stats.loaded += 1
    return program


def jam_standard_from_vector(blob, rng):
    ro = rng.randbytes(rng.randrange(0, 16))
    rw = rng.randbytes(rng.randrange(0, 16))
    return W.jam_standard(ro, rw, rng.randrange(0, 4), rng.randrange(0, 0x3000), blob)


@pytest.fixture(scope="module")
def seeds():
    rng = random.Random(99)
    shared = list(load_shared_programs().values())
    vectors = [blob for _, blob in load_vector_programs()]
    # a few hand-built blobs that touch every section
    full, _ = W.polkavm([
        (1, W.memory_config(0x2000, 0x100, 0x1000)), (2, b"hello"), (3, b"\x01\x02"),
        (4, W.imports([b"foo", b"bar"])), (5, W.exports([(0, b"main"), (2, b"other")])),
        (6, W.code_blob(bytes([0, 1, 0]), [0, 1, 2], jump_table=[1, 2], entry_size=2)),
        (128, b"dbg"), (129, b"\x01"), (130, bytes(12)), (0x90, b"?"),
    ], version=2)
    # JAM standard programs around the vectors' code that jam_v1 accepts
    # (many vectors rely on the implicit trap at the end, which jam_v1 refuses)
    jam = []
    for v in vectors:
        try:
            Program.from_raw_code(v, isa="jam_v1")
        except ProgramError:
            continue
        jam.append(jam_standard_from_vector(v, rng))
    return {"polkavm": shared + [full], "raw": vectors, "jam-standard": jam[:30]}


def _positions(data, rng, limit):
    if len(data) <= limit:
        return range(len(data))
    return sorted(rng.sample(range(len(data)), limit))


def test_every_truncation(seeds):
    """Every prefix of the shipped programs, of a hand-built blob with every
    section, of the JAM standard seeds and of the small vectors; sampled
    prefixes of the bigger vectors."""
    rng = random.Random(0)
    stats = Stats()
    for data in seeds["polkavm"]:
        for end in range(len(data)):
            attempt("polkavm", data[:end], stats)
        assert attempt("polkavm", data, stats) is not None
    for data in seeds["raw"]:
        for end in _positions(data, rng, 256):
            attempt("raw", data[:end], stats)
            attempt("raw-jam", data[:end], stats)
        assert attempt("raw", data, stats) is not None
    for data in seeds["jam-standard"]:
        for end in range(len(data)):
            attempt("jam-standard", data[:end], stats)
        assert attempt("jam-standard", data, stats) is not None
    print(stats)
    assert stats.rejected > 5000


@pytest.mark.slow
def test_single_byte_mutations(seeds):
    """Every byte of the shipped programs and the hand-built blob with five
    values each; sampled bytes of the vectors and JAM standard seeds."""
    rng = random.Random(1)
    stats = Stats()
    for kind, blobs in seeds.items():
        limit = {"polkavm": 1 << 30, "raw": 48, "jam-standard": 80}[kind]
        for data in blobs:
            for pos in _positions(data, rng, limit):
                values = {0, 0xFF, data[pos] ^ 1, data[pos] ^ 0x80, rng.getrandbits(8)}
                if kind != "polkavm":
                    values = set(rng.sample(sorted(values), 3))
                for v in values:
                    mutated = bytearray(data)
                    mutated[pos] = v
                    attempt(kind, bytes(mutated), stats)
                    if kind == "raw":
                        attempt("raw-jam", bytes(mutated), stats)
    print(stats)
    assert stats.loaded > 1000 and stats.rejected > 1000


def test_random_bytes():
    rng = random.Random(2)
    stats = Stats()
    for i in range(20000):
        n = rng.randrange(0, 200)
        data = rng.randbytes(n)
        if i % 3 == 0:
            data = b"PVM\0" + bytes([rng.randrange(0, 5)]) + (13 + n).to_bytes(8, "little") + data
        for kind in ("polkavm", "raw", "jam-standard"):
            attempt(kind, data, stats)
    print(stats)
    assert stats.rejected > 50000


def test_random_code_blobs():
    """Structurally valid code blobs with random code, bitmasks and jump
    tables: these mostly load, so the walkers see hostile code."""
    rng = random.Random(3)
    stats = Stats()
    for _ in range(4000):
        n = rng.randrange(0, 100)
        code = rng.randbytes(n)
        starts = [i for i in range(n) if rng.random() < rng.choice([0.05, 0.3, 0.9])]
        table = [rng.randrange(0, 2 * n + 2) for _ in range(rng.randrange(0, 5))]
        blob = W.code_blob(code, starts, jump_table=table, entry_size=rng.randrange(0, 5) or 1)
        for isa_name in ("revive_v1", "latest32", "latest64", "jam_v1"):
            try:
                p = Program.from_raw_code(blob, isa=isa_name)
            except ProgramError:
                stats.rejected += 1
                continue
            exercise(p)
            stats.loaded += 1
    print(stats)
    assert stats.loaded > 8000


def test_random_insertions_and_deletions(seeds):
    rng = random.Random(4)
    stats = Stats()
    pool = [(kind, data) for kind, blobs in seeds.items() for data in blobs]
    for _ in range(20000):
        kind, data = rng.choice(pool)
        data = bytearray(data)
        for _ in range(rng.randrange(1, 4)):
            pos = rng.randrange(0, len(data) + 1)
            r = rng.random()
            if r < 0.4 and data:
                del data[pos:pos + rng.randrange(1, 8)]
            elif r < 0.8:
                data[pos:pos] = rng.randbytes(rng.randrange(1, 8))
            else:
                data[pos:pos] = bytes([rng.choice([0, 0x80, 0xC0, 0xE0, 0xF0, 0xFF])])
        if kind == "polkavm" and rng.random() < 0.5 and len(data) >= 13:
            data[5:13] = len(data).to_bytes(8, "little")  # keep the header length right
        attempt(kind, bytes(data), stats)
        if kind == "raw":
            attempt("raw-jam", bytes(data), stats)
    print(stats)
    assert stats.loaded > 100 and stats.rejected > 1000
