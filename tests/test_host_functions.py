"""Issue #18: vmcore.HostFunctions, host functions defined once and shared
by many sandboxes and pools, with per-call gas and several return
registers, in every backend and isolation."""
import asyncio

import pytest

import vmcore
from vmcore import abi

import modes
from conftest import program

GUEST = program("""
%isa = latest64
%stack_size = 4096
%import get
%import six
%import nothing
%import missing
pub @get:
    ecalli 0
    ret
pub @get_twice:
    ecalli 0
    a1 = a0
    ecalli 0
    a0 = a0 + a1
    ret
pub @six:
    a0 = 1
    a1 = 2
    ecalli 1
    a0 = a0 + a1
    a0 = a0 + a2
    a0 = a0 + a3
    a0 = a0 + a4
    a0 = a0 + a5
    ret
pub @nothing:
    a0 = 77
    ecalli 2
    ret
pub @missing:
    ecalli 3
    ret
""")


def shared_functions(calls=None):
    fns = vmcore.HostFunctions()

    @fns.define("get", gas=10)
    def get(caller):
        if calls is not None:
            calls.append("get")
        return 40

    # (a0, ..., a5): as many values as there are return registers
    fns.define("six", lambda caller, a, b: tuple(range(a + b, a + b + abi.HOSTCALL_RETURN_COUNT)))
    fns.define("nothing", lambda caller: None)
    return fns


def test_one_definition_serves_sandboxes_in_every_mode():
    fns = shared_functions()
    sandboxes = [m.sandbox(GUEST, functions=fns, gas=1000) for m in modes.available() for _ in range(2)]
    try:
        for sb in sandboxes:
            assert sb.call("get") == 40
            assert sb.call("six") == sum(range(3, 3 + abi.HOSTCALL_RETURN_COUNT))
            assert sb.call("nothing") == 77
            assert sb.functions is fns
    finally:
        for sb in sandboxes:
            sb.close()


def test_out_of_gas_before_the_call(mode):
    calls = []
    sb = mode.sandbox(GUEST, functions=shared_functions(calls), gas=1000)
    try:
        assert sb.call("get") == 40 and calls == ["get"]
        sb.gas = 5  # enough for the guest's block, not for the function's 10
        with pytest.raises(vmcore.OutOfGas, match="hostcall 'get' costs more gas") as info:
            sb.call("get")
        assert calls == ["get"]  # the call that could not be paid did not run
        assert info.value.pc == GUEST.export_pc("get")  # stopped at its ecalli
        assert 0 <= sb.gas <= 5
        sb.gas = 1000
        assert sb.call("get") == 40  # usable afterwards
    finally:
        sb.close()


def test_the_cost_is_the_definition_s(mode):
    cheap, dear = vmcore.HostFunctions(), vmcore.HostFunctions()
    cheap.define("get", lambda caller: 1)
    dear.define("get", lambda caller: 1, gas=123)
    spent = []
    for fns in (cheap, dear):
        sb = mode.sandbox(GUEST, functions=fns, gas=10_000)
        try:
            sb.call("get")
            spent.append(10_000 - sb.gas)
        finally:
            sb.close()
    assert spent[1] - spent[0] == 123


def test_unmetered_sandboxes_are_not_charged(mode):
    sb = mode.sandbox(GUEST, functions=shared_functions(), gas=None)
    try:
        assert sb.call("get_twice") == 80 and sb.gas is None
    finally:
        sb.close()


def test_run_serving_hostcalls_raises_out_of_gas(mode):
    sb = mode.sandbox(GUEST, functions=shared_functions(), gas=1000)
    try:
        sb.prepare_call("get")
        sb.gas = 3
        with pytest.raises(vmcore.OutOfGas):
            sb.run(serve_hostcalls=True)
    finally:
        sb.close()


def test_precedence_sandbox_registration_wins(mode):
    fns = shared_functions()
    sb = mode.sandbox(GUEST, functions=fns, hostcalls={"nothing": lambda caller: 5}, gas=1000)
    try:
        assert sb.call("nothing") == 5  # hostcalls= over functions=
        sb.register_hostcall("get", lambda caller: 7)
        before = sb.gas
        assert sb.call("get") == 7  # register_hostcall over functions=, and its gas is gone with it
        assert before - sb.gas < 10
        assert sb.call("six") == sum(range(3, 3 + abi.HOSTCALL_RETURN_COUNT))  # the rest still shared
    finally:
        sb.close()
    other = mode.sandbox(GUEST, functions=fns, gas=1000)
    try:
        assert other.call("get") == 40  # registering on one sandbox changes nothing shared
    finally:
        other.close()


def test_resolved_when_the_sandbox_is_created():
    fns = vmcore.HostFunctions()
    early = vmcore.Sandbox(GUEST, functions=fns)
    fns.define("get", lambda caller: 1)
    late = vmcore.Sandbox(GUEST, functions=fns)
    with pytest.raises(vmcore.HostcallError):
        early.call("get")
    assert late.call("get") == 1


def test_pool_functions_are_the_default(process_mode):
    fns = shared_functions()
    own = vmcore.HostFunctions({"get": lambda caller: 9})
    pool = vmcore.SandboxPool(2, functions=fns)
    try:
        sb = process_mode.sandbox(GUEST, pool=pool, gas=1000)
        mine = process_mode.sandbox(GUEST, pool=pool, functions=own, gas=1000)
        try:
            assert sb.call("get") == 40 and pool.functions is fns
            assert mine.call("get") == 9  # Sandbox(functions=) replaces the pool's
            with pytest.raises(vmcore.HostcallError, match="'six'"):
                mine.call("six")
        finally:
            sb.close()
            mine.close()
    finally:
        pool.close()


def test_undefined_import_and_raising_function(mode):
    fns = shared_functions()
    boom = ValueError("boom")

    def fail(caller):
        raise boom
    fns.define("nothing", fail, replace=True)
    sb = mode.sandbox(GUEST, functions=fns)
    try:
        with pytest.raises(vmcore.HostcallError) as info:
            sb.call("missing")
        assert info.value.name == "missing" and "HostFunctions" in str(info.value)
        with pytest.raises(vmcore.HostcallError) as info:
            sb.call("nothing")
        assert info.value.__cause__ is boom and info.value.name == "nothing"
        assert sb.call("get") == 40
    finally:
        sb.close()


def test_bad_return_values_are_hostcall_errors(mode):
    fns = vmcore.HostFunctions()
    fns.define("get", lambda caller: (1,) * (abi.HOSTCALL_RETURN_COUNT + 1))
    fns.define("six", lambda caller: (1, "2"))
    fns.define("nothing", lambda caller: ())
    sb = mode.sandbox(GUEST, functions=fns)
    try:
        for export in ("get", "six", "nothing"):
            with pytest.raises(vmcore.HostcallError) as info:
                sb.call(export)
            assert isinstance(info.value.__cause__, TypeError)
            assert "tuple of 1 to" in str(info.value.__cause__)
    finally:
        sb.close()


def test_async_functions_with_call_async(mode):
    fns = vmcore.HostFunctions()

    @fns.define("get", gas=1)
    async def get(caller):
        await asyncio.sleep(0)
        return 41

    async def main():
        sb = mode.sandbox(GUEST, functions=fns, gas=1000)
        try:
            return await sb.call_async("get"), await sb.call_async("get_twice")
        finally:
            sb.close()
    assert asyncio.run(main()) == (41, 82)


def test_definition_errors():
    fns = vmcore.HostFunctions()
    fns.define("get", lambda caller: 1)
    with pytest.raises(ValueError, match="already defined"):
        fns.define("get", lambda caller: 2)
    fns.define("get", lambda caller: 2, gas=4, replace=True)
    assert fns.gas("get") == 4 and "get" in fns and list(fns) == ["get"] and len(fns) == 1
    for gas in (-1, 1.5, True, 1 << 63):
        with pytest.raises(ValueError, match="gas"):
            fns.define("x", lambda caller: 1, gas=gas)
    with pytest.raises(TypeError, match="name"):
        fns.define("", lambda caller: 1)
    with pytest.raises(TypeError, match="callable"):
        fns.define("x", 5)
    with pytest.raises(TypeError, match="Caller"):
        fns.define("x", lambda: 1)
    with pytest.raises(TypeError, match="at most 6"):
        fns.define("x", lambda caller, a, b, c, d, e, f, g: 1)
    with pytest.raises(TypeError, match="HostFunctions"):
        vmcore.Sandbox(GUEST, functions={"get": lambda caller: 1})
    with pytest.raises(TypeError, match="HostFunctions"):
        vmcore.SandboxPool(1, functions=object())


def test_register_hostcall_charges_its_gas(mode):
    """Sandbox.register_hostcall / @sb.hostcall take the same per-call gas=
    as HostFunctions.define, and refuse what define refuses."""
    spent = []
    for gas in (0, 77):
        sb = mode.sandbox(GUEST, gas=10_000)
        try:
            sb.register_hostcall("get", lambda caller: 1, gas=gas)
            assert sb.call("get") == 1
            spent.append(10_000 - sb.gas)
        finally:
            sb.close()
    assert spent[1] - spent[0] == 77
    sb = mode.sandbox(GUEST, gas=1000)
    try:
        ran = []

        @sb.hostcall("get", gas=50)
        def get(caller):
            ran.append(1)
            return 2

        sb.gas = 20  # the guest's block fits, the hostcall's 50 does not
        with pytest.raises(vmcore.OutOfGas, match="hostcall 'get' costs more gas"):
            sb.call("get")
        assert ran == []
        for bad in (-1, 1 << 63, 1.5, True):
            with pytest.raises(ValueError, match="gas must be an int"):
                sb.register_hostcall("get", get, gas=bad)
    finally:
        sb.close()
    unmetered = mode.sandbox(GUEST, gas=None)
    try:
        unmetered.register_hostcall("get", lambda caller: 3, gas=1 << 40)
        assert unmetered.call("get") == 3
    finally:
        unmetered.close()
