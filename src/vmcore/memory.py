"""Host-side access to a sandbox's guest memory.  Every access is checked
against the guest's page permissions first, so a bad address raises
MemoryAccessError and never touches anything."""
from __future__ import annotations

import struct
from typing import Union

from vmcore.errors import MemoryAccessError

Buffer = Union[bytes, bytearray, memoryview]
_U16, _U32, _U64 = struct.Struct("<H"), struct.Struct("<I"), struct.Struct("<Q")


class GuestMemory:
    """``sandbox.memory``: read and write the guest's 32-bit address space."""

    __slots__ = ("_owner",)

    def __init__(self, owner) -> None:
        self._owner = owner  # anything with _live() -> backend

    @property
    def _backend(self):
        return self._owner._live()

    def _check(self, address: int, length: int, writable: bool) -> None:
        if not isinstance(address, int) or not isinstance(length, int):
            raise TypeError("address and length must be ints")
        if address < 0 or length < 0 or address + length > 1 << 32 or address >= 1 << 32 or length >= 1 << 32:
            raise MemoryAccessError(f"range {address:#x}..{address + length:#x} is outside the 32-bit address space",
                                    address=address, length=length)
        page = self._backend.first_inaccessible(address, length, False)
        if page is not None:
            raise MemoryAccessError(f"cannot access {length} bytes at {address:#x}: page {page:#x} is not "
                                    "accessible to the guest", address=address, length=length)

    def is_accessible(self, address: int, length: int, writable: bool = False) -> bool:
        """Whether the guest could read (or, with writable=True, write) the range."""
        if not isinstance(address, int) or not isinstance(length, int):
            raise TypeError("address and length must be ints")
        if address < 0 or length < 0 or address + length > 1 << 32 or address >= 1 << 32 or length >= 1 << 32:
            return False
        return self._backend.first_inaccessible(address, length, writable) is None

    def read(self, address: int, length: int) -> bytes:
        self._check(address, length, False)
        return self._backend.read(address, length)

    def read_into(self, address: int, buffer: Buffer) -> None:
        view = memoryview(buffer).cast("B")
        self._check(address, len(view), False)
        self._backend.read_into(address, view)

    def write(self, address: int, data: Buffer) -> None:
        data = memoryview(data).cast("B")
        self._check(address, len(data), True)
        self._backend.write(address, data)

    def zero(self, address: int, length: int) -> None:
        self._check(address, length, True)
        self._backend.zero(address, length)

    def read_u8(self, address: int) -> int:
        return self.read(address, 1)[0]

    def read_u16(self, address: int) -> int:
        return _U16.unpack(self.read(address, 2))[0]

    def read_u32(self, address: int) -> int:
        return _U32.unpack(self.read(address, 4))[0]

    def read_u64(self, address: int) -> int:
        return _U64.unpack(self.read(address, 8))[0]

    def write_u8(self, address: int, value: int) -> None:
        self.write(address, bytes((value & 0xFF,)))

    def write_u16(self, address: int, value: int) -> None:
        self.write(address, _U16.pack(value & 0xFFFF))

    def write_u32(self, address: int, value: int) -> None:
        self.write(address, _U32.pack(value & 0xFFFFFFFF))

    def write_u64(self, address: int, value: int) -> None:
        self.write(address, _U64.pack(value & 0xFFFFFFFFFFFFFFFF))
