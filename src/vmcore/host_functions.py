"""vmcore.HostFunctions: host functions defined once and shared, like a
linker, by any number of sandboxes and pools.

A definition is prepared when it is made (its arity read from the
signature, an ``async def`` wrapped for the event loop), so a sandbox built
with ``functions=`` only looks its imports up: nothing per sandbox is
inspected again, and the hostcall loop runs exactly the same code as for
``Sandbox.register_hostcall``."""
from __future__ import annotations

import inspect
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union, overload

from vmcore import abi

Hostcall = Callable[..., Any]
#: What the hostcall loop finds per import: (function, register arguments),
#: or (function, register arguments, gas) for one that costs gas.
Entry = Union[Tuple[Hostcall, int], Tuple[Hostcall, int, int]]


def hostcall_arity(fn: Hostcall, name: str) -> int:
    """How many register arguments a hostcall takes after the Caller."""
    if not callable(fn):
        raise TypeError(f"hostcall {name!r} must be callable, got {type(fn).__name__}")
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return 0  # builtins without a signature get the Caller only
    params = list(sig.parameters.values())
    most = abi.HOSTCALL_ARG_COUNT
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return most
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if not positional:
        raise TypeError(f"hostcall {name!r} must accept the Caller as its first argument")
    n = len(positional) - 1
    if n > most:
        raise TypeError(f"hostcall {name!r} takes {n} register arguments; at most {most} (a0..a5) are passed")
    return n


def check_gas(gas: object) -> int:
    """``gas`` as a per-call hostcall charge, or ValueError."""
    if not isinstance(gas, int) or isinstance(gas, bool) or not 0 <= gas < 1 << 63:
        raise ValueError(f"gas must be an int from 0 to 2**63-1, got {gas!r}")
    return gas


def hostcall_entry(fn: Hostcall, name: str, gas: int = 0) -> Entry:
    """The hostcall loop's entry for ``fn`` costing ``gas`` per call (an
    ``async def`` is bridged to the loop that awaits the call; asyncio is
    imported only then)."""
    check_gas(gas)
    nargs = hostcall_arity(fn, name)
    if inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(getattr(fn, "__call__", None)):
        from vmcore import aio
        fn = aio.bridge(fn)
    return (fn, nargs, gas) if gas else (fn, nargs)


class HostFunctions:
    """Host functions by import name, built once and given to many
    sandboxes (``Sandbox(program, functions=fns)``) and pools
    (``SandboxPool(functions=fns)``: the default of the sandboxes taken
    from it).

    >>> fns = vmcore.HostFunctions()
    >>> @fns.define("get_third_number", gas=10)
    ... def get_third_number(caller) -> int:
    ...     return 100
    >>> fns.define("divmod", lambda caller, a, b: (a // b, a % b))
    >>> Sandbox(program, functions=fns, gas=1000).call("add_numbers", 1, 10)

    A function is called as ``fn(caller, a0, ..., a5)`` (as many register
    arguments as it declares after the Caller) and returns None (registers
    untouched), an int (a0) or a tuple of ints (a0, a1, ..., at most
    ``vmcore.abi.HOSTCALL_RETURN_COUNT``).  ``gas=`` is charged before each
    call in metered sandboxes; when less is left the function does not run
    and the call raises :class:`vmcore.OutOfGas`, as a guest running out
    does.  A function that raises makes the call raise HostcallError with
    the exception as ``__cause__``; ``async def`` functions work as with
    ``Sandbox.register_hostcall`` (awaited on the loop of ``call_async``).

    Sandboxes resolve their imports when they are created: a definition
    made later applies to sandboxes created after it.  Precedence: a
    sandbox's own ``hostcalls=`` and ``register_hostcall()`` override
    ``functions=`` for the same import; ``Sandbox(functions=)`` replaces
    (is not merged with) the pool's.  Names the program does not import
    are ignored; an import with no function anywhere raises HostcallError
    when the guest calls it."""

    def __init__(self, functions: Optional[Mapping[str, Hostcall]] = None) -> None:
        self._entries: Dict[str, Entry] = {}
        for name, fn in (functions or {}).items():
            self.define(name, fn)

    @overload
    def define(self, name: str, fn: None = None, *, gas: int = 0,
               replace: bool = False) -> Callable[[Hostcall], Hostcall]: ...

    @overload
    def define(self, name: str, fn: Hostcall, *, gas: int = 0, replace: bool = False) -> Hostcall: ...

    def define(self, name: str, fn: Optional[Hostcall] = None, *, gas: int = 0,
               replace: bool = False) -> Union[Hostcall, Callable[[Hostcall], Hostcall]]:
        """Define the import ``name`` as ``fn`` costing ``gas`` per call;
        without ``fn``, a decorator.  Defining a name twice raises
        ValueError unless ``replace=True``."""
        if not isinstance(name, str) or not name:
            raise TypeError(f"a host function's name must be a non-empty str, got {name!r}")
        check_gas(gas)
        if fn is None:
            def decorate(f: Hostcall) -> Hostcall:
                self.define(name, f, gas=gas, replace=replace)
                return f
            return decorate
        if name in self._entries and not replace:
            raise ValueError(f"host function {name!r} is already defined (pass replace=True to redefine it)")
        self._entries[name] = hostcall_entry(fn, name, gas)
        return fn

    def gas(self, name: str) -> int:
        """The gas ``name`` costs per call (KeyError if undefined)."""
        entry = self._entries[name]
        return entry[2] if len(entry) > 2 else 0

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"HostFunctions({', '.join(sorted(self._entries))})"

    def resolve(self, imports: Sequence[str], metered: bool = True) -> List[Optional[Entry]]:
        """The hostcall loop's table for a program's ``imports``: the entry
        per import index, None where undefined (no gas when not ``metered``)."""
        entries = self._entries
        table: List[Optional[Entry]] = []
        for name in imports:
            entry = entries.get(name)
            if entry is not None and not metered:
                entry = entry[:2]
            table.append(entry)
        return table


__all__ = ["HostFunctions"]
