"""The Sandbox constructor's per-options recipe (vmcore/sandbox.py _recipe):
a warm constructor reuses what its options resolve to, and never lets a
cached recipe stand in for options that differ or would be refused."""
from __future__ import annotations

import gc
import weakref

import pytest

import modes
import vmcore
from conftest import DATA_DIR
from vmcore import HeapPolicy, Sandbox


@pytest.fixture
def prog():
    return vmcore.Program.load(DATA_DIR / "sum.polkavm")


def test_a_warm_constructor_reuses_the_recipe(prog):
    Sandbox(prog, backend="interpreter").close()
    assert len(prog._cache.recipes) == 1
    for _ in range(3):
        with Sandbox(prog, backend="interpreter") as sb:
            assert sb.call("main", 10) == 285
    assert len(prog._cache.recipes) == 1


@pytest.mark.parametrize("good,bad,error", [
    ({"page_size": 4096}, {"page_size": 4096.0}, (TypeError, ValueError)),
    ({"memory_limit": 1 << 30}, {"memory_limit": float(1 << 30)}, (TypeError, ValueError)),
    ({"memory_limit": 1}, {"memory_limit": True}, (ValueError, vmcore.SandboxError)),
    ({"gas": 1}, {"gas": True}, TypeError),
    ({"gas": 1}, {"gas": 1.0}, TypeError),
    ({}, {"heap": {"initial_size": 0}}, TypeError),
    ({}, {"gas_model": ["naive"]}, TypeError),
    ({"backend": "interpreter"}, {"backend": "Interpreter"}, ValueError),
])
def test_refused_options_stay_refused_after_a_similar_recipe_is_cached(prog, good, bad, error):
    try:
        Sandbox(prog, **good).close()
    except vmcore.SandboxError:
        pass  # e.g. memory_limit=1 is too small: refused either way
    with pytest.raises(error):
        Sandbox(prog, **bad)


def test_options_that_differ_get_their_own_recipe(prog):
    small = HeapPolicy(initial_size=4096)
    with Sandbox(prog, backend="interpreter") as a, Sandbox(prog, backend="interpreter", heap=small) as b:
        assert a.heap_size == 0 and b.heap_size == 4096
    with Sandbox(prog, backend="interpreter", gas=100) as metered, Sandbox(prog, backend="interpreter") as free:
        assert metered.gas == 100 and free.gas is None
    with Sandbox(prog, backend="interpreter", heap=HeapPolicy(initial_size=4096)) as c:
        assert c.heap_size == 4096  # an equal policy, another object: the same recipe is right


@pytest.mark.skipif(modes.NO_PROCESS is not None, reason=str(modes.NO_PROCESS))
def test_a_pool_is_not_kept_alive_by_the_recipe_cache(prog):
    pool = vmcore.SandboxPool(size=1)
    ref = weakref.ref(pool)
    with Sandbox(prog, backend="interpreter", isolation="process", pool=pool) as sb:
        assert sb.call("main", 10) == 285
    pool.close()
    del pool, sb
    gc.collect()
    assert ref() is None
