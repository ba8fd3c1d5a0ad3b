"""vmcore.MemoryMap against PolkaVM's MemoryMapBuilder: the reference's own
test_memory_map values, its invariants (the kani proof's assertions) over
random sizes and every page size, and the error cases."""
import random

import pytest

from vmcore import MemoryMap, ProgramError
from vmcore.memory_map import check_page_size

ADDRESS_SPACE = 1 << 32
MAX_PAGE = 0x10000
TOP = ADDRESS_SPACE - MAX_PAGE
MAX_SIZE = ADDRESS_SPACE - 5 * MAX_PAGE  # [guard] ro [guard] rw [guard] stack [guard] aux [guard]
PAGE_SIZES = [0x1000, 0x2000, 0x4000, 0x8000, 0x10000]


def build(page_size=0x4000, ro=0, rw=0, stack=0, aux=0):
    return MemoryMap.build(page_size=page_size, ro_data_size=ro, rw_data_size=rw, stack_size=stack,
                           aux_data_size=aux)


def align(v, a):
    return -(-v // a) * a


def test_reference_small_sizes():
    m = build(0x4000, ro=1, rw=1, stack=1)
    assert m.ro_data_address == 0x10000
    assert m.ro_data_size == 0x4000
    assert m.rw_data_address == 0x30000
    assert m.rw_data_size == 0x4000
    assert m.stack_size == 0x4000
    assert m.stack_address_high == 0xFFFE0000
    assert m.stack_address_low == 0xFFFDC000
    assert m.heap_base == 0x30001
    assert m.max_heap_size == ADDRESS_SPACE - MAX_PAGE * 4 - m.heap_base
    assert m.aux_data_address == TOP and m.aux_data_size == 0


def test_reference_ro_data_takes_everything():
    m = build(0x4000, ro=MAX_SIZE)
    assert m.ro_data_address == 0x10000
    assert m.ro_data_size == MAX_SIZE
    assert m.rw_data_address == m.ro_data_address + MAX_PAGE + MAX_SIZE
    assert m.rw_data_size == 0
    assert m.stack_address_high == TOP - MAX_PAGE
    assert m.stack_address_low == TOP - MAX_PAGE
    assert m.stack_size == 0
    assert m.heap_base == m.rw_data_address
    assert m.max_heap_size == 0


def test_reference_rw_data_takes_everything():
    m = build(0x4000, rw=MAX_SIZE)
    assert m.ro_data_address == MAX_PAGE and m.ro_data_size == 0
    assert m.rw_data_address == MAX_PAGE * 2 and m.rw_data_size == MAX_SIZE
    assert m.stack_address_high == TOP - MAX_PAGE and m.stack_address_low == TOP - MAX_PAGE
    assert m.heap_base == m.rw_data_address + m.rw_data_size
    assert m.max_heap_size == 0


def test_reference_stack_takes_everything():
    m = build(0x4000, stack=MAX_SIZE)
    assert m.ro_data_size == 0 and m.rw_data_address == MAX_PAGE * 2 and m.rw_data_size == 0
    assert m.stack_address_high == TOP - MAX_PAGE
    assert m.stack_address_low == TOP - MAX_PAGE - MAX_SIZE
    assert m.stack_size == MAX_SIZE
    assert m.heap_base == m.rw_data_address
    assert m.max_heap_size == 0


@pytest.mark.parametrize("sizes", [
    dict(ro=MAX_SIZE + 1),
    dict(ro=MAX_SIZE, rw=1),
    dict(ro=MAX_SIZE, stack=1),
    dict(ro=MAX_SIZE, aux=1),
    dict(rw=MAX_SIZE, stack=1),
    dict(ro=0xFFFFFFFF),
    dict(rw=0xFFFFFFFF),
    dict(stack=0xFFFFFFFF),
    dict(aux=0xFFFFFFFF),
    dict(ro=0x80000000, rw=0x80000000),
    dict(ro=1 << 32),
    dict(stack=-1),
])
def test_too_big_is_a_program_error(sizes):
    with pytest.raises(ProgramError):
        build(0x4000, **sizes)


def test_aux_data_at_the_top():
    m = build(0x1000, aux=1)
    assert m.aux_data_address == TOP - MAX_PAGE
    assert m.aux_data_size == 0x1000
    assert m.stack_address_high == m.aux_data_address - MAX_PAGE
    m = build(0x1000, aux=1 << 24)  # the JAM argument zone
    assert m.aux_data_address == TOP - (1 << 24)


@pytest.mark.parametrize("page_size", PAGE_SIZES)
def test_page_sizes(page_size):
    m = build(page_size, ro=1, rw=page_size + 1, stack=3)
    assert m.page_size == page_size
    assert m.ro_data_size == page_size
    assert m.rw_data_size == 2 * page_size
    assert m.stack_size == page_size
    assert m.rw_data_address == 0x30000
    assert m.heap_base == 0x30000 + page_size + 1


@pytest.mark.parametrize("page_size", [0, 1, 0x800, 0xFFF, 0x1001, 0x3000, 0x6000, 0x20000, 1 << 32, -0x1000])
def test_invalid_page_size(page_size):
    with pytest.raises(ValueError, match="page size"):
        build(page_size)
    with pytest.raises(ValueError):
        check_page_size(page_size)


@pytest.mark.parametrize("page_size", [True, 4096.0, "4096", None])
def test_page_size_must_be_an_int(page_size):
    with pytest.raises(ValueError):
        build(page_size)


def test_invariants_over_random_sizes():
    """The reference's kani proof, sampled: a map exists exactly when the
    64 KiB-aligned sizes fit, and then everything is aligned, ordered and
    separated by guard zones."""
    rng = random.Random(7)
    interesting = [0, 1, 0xFFF, 0x1000, 0xFFFF, 0x10000, 0x10001, MAX_SIZE // 2, MAX_SIZE // 4, MAX_SIZE - 1,
                   MAX_SIZE, 0xFFFFFFFF]
    checked = ok = 0
    for _ in range(4000):
        page_size = rng.choice(PAGE_SIZES)

        def pick():
            r = rng.random()
            if r < 0.3:
                return rng.choice(interesting)
            if r < 0.6:
                return rng.randrange(0, 1 << 20)
            return rng.randrange(0, 1 << 32)

        ro, rw, stack, aux = pick(), pick(), pick(), pick()
        total = sum(align(v, MAX_PAGE) for v in (ro, rw, stack, aux))
        try:
            m = build(page_size, ro=ro, rw=rw, stack=stack, aux=aux)
        except ProgramError:
            assert total > MAX_SIZE, (page_size, ro, rw, stack, aux)
            checked += 1
            continue
        assert total <= MAX_SIZE, (page_size, ro, rw, stack, aux)
        checked += 1
        ok += 1
        for addr in (m.ro_data_address, m.rw_data_address, m.stack_address_high, m.aux_data_address):
            assert addr % MAX_PAGE == 0
        ro_end = m.ro_data_address + m.ro_data_size
        rw_end = m.rw_data_address + m.rw_data_size
        for v in (m.ro_data_address, ro_end, m.rw_data_address, rw_end, m.stack_address_low,
                  m.stack_address_high, m.aux_data_address, m.aux_data_address + m.aux_data_size):
            assert v % page_size == 0
        assert m.ro_data_address < m.rw_data_address < m.stack_address_low + 1
        assert m.stack_address_low <= m.stack_address_high < m.aux_data_address
        assert m.rw_data_address - ro_end >= MAX_PAGE
        assert m.stack_address_low - rw_end >= MAX_PAGE
        assert m.aux_data_address - m.stack_address_high >= MAX_PAGE
        assert (m.ro_data_size, m.rw_data_size, m.stack_size, m.aux_data_size) == (
            align(ro, page_size), align(rw, page_size), align(stack, page_size), align(aux, page_size))
        assert m.heap_base == m.rw_data_address + rw
        # the heap may grow up to the guard zone below the stack
        assert m.heap_base + m.max_heap_size == m.stack_address_high - align(stack, MAX_PAGE) - MAX_PAGE
        assert m.aux_data_address + align(aux, MAX_PAGE) == TOP
        assert 0 <= m.max_heap_size < ADDRESS_SPACE
    assert checked == 4000 and 100 < ok < 4000


def test_describe_mentions_every_region():
    text = build(0x1000, ro=1, rw=1, stack=1).describe()
    for word in ("ro data", "rw data", "heap", "stack", "aux"):
        assert word in text
