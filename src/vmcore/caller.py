"""What a hostcall sees: the guest's registers, memory and gas."""
from __future__ import annotations

from typing import TYPE_CHECKING, Dict, Iterator, Optional, Union

from vmcore.abi import REG_COUNT
from vmcore.isa import REGISTER_NAMES

if TYPE_CHECKING:
    from vmcore.memory import GuestMemory
    from vmcore.sandbox import Sandbox

_INDEX = {name: i for i, name in enumerate(REGISTER_NAMES)}
_INDEX.update({f"r{i}": i for i in range(REG_COUNT)})


def register_index(key: Union[int, str]) -> int:
    if isinstance(key, str):
        try:
            return _INDEX[key.lower()]
        except KeyError:
            raise KeyError(f"unknown register {key!r}; expected one of {', '.join(REGISTER_NAMES)}") from None
    if isinstance(key, int) and 0 <= key < REG_COUNT:
        return key
    raise IndexError(f"register index must be 0..{REG_COUNT - 1} or a name, got {key!r}")


class Registers:
    """The 13 guest registers, indexable by number or name (ra, sp, t0-t2,
    s0, s1, a0-a5).  Writes are masked to 64 bits."""

    __slots__ = ("_owner",)

    def __init__(self, owner) -> None:
        self._owner = owner  # anything with _live() -> its engine guest

    def __getitem__(self, key: Union[int, str]) -> int:
        return self._owner._live().get_reg(register_index(key))

    def __setitem__(self, key: Union[int, str], value: int) -> None:
        self._owner._live().set_reg(register_index(key), int(value) & 0xFFFFFFFFFFFFFFFF)

    def __len__(self) -> int:
        return REG_COUNT

    def __iter__(self) -> Iterator[int]:
        return iter(self._owner._live().get_regs())

    def __repr__(self) -> str:
        return "Registers(" + ", ".join(f"{n}={v:#x}" for n, v in zip(REGISTER_NAMES, self)) + ")"

    def to_dict(self) -> Dict[str, int]:
        return dict(zip(REGISTER_NAMES, self))


class Caller:
    """Passed as the first argument to every hostcall: the calling guest's
    registers, memory and gas, and its sandbox."""

    __slots__ = ("sandbox",)
    sandbox: "Sandbox"

    def __init__(self, sandbox: "Sandbox") -> None:
        self.sandbox = sandbox

    @property
    def regs(self) -> Registers:
        """The guest's registers (a0..a5 hold the hostcall's arguments)."""
        return self.sandbox.regs

    @property
    def memory(self) -> "GuestMemory":
        """The guest's memory (``sandbox.memory``)."""
        return self.sandbox.memory

    @property
    def gas(self) -> Optional[int]:
        """Gas left (None when metering is off); settable to charge the guest."""
        return self.sandbox.gas

    @gas.setter
    def gas(self, value: int) -> None:
        self.sandbox.gas = value

    def sbrk(self, size: int) -> int:
        """Grow the guest's heap by ``size`` bytes; the new heap end, or 0."""
        return self.sandbox.sbrk(size)
