"""Host-side access to a sandbox's guest memory.  Every access is checked
against the guest's page permissions first, so a bad address raises
MemoryAccessError and never touches anything."""
from __future__ import annotations

import struct
from typing import List, Tuple, Union

from vmcore import abi
from vmcore.errors import MemoryAccessError

Buffer = Union[bytes, bytearray, memoryview]
_U16, _U32, _U64 = struct.Struct("<H"), struct.Struct("<I"), struct.Struct("<Q")
#: Page access names (what protect() takes and access() returns) -> vmcore.abi permission.
ACCESS = {"none": abi.PERM_NONE, "read": abi.PERM_READ, "write": abi.PERM_WRITE}
_ACCESS_NAMES = {perm: name for name, perm in ACCESS.items()}


class GuestMemory:
    """``sandbox.memory``: read and write the guest's 32-bit address space."""

    __slots__ = ("_owner",)

    def __init__(self, owner) -> None:
        self._owner = owner  # anything with _live() -> its engine guest

    @property
    def _guest(self):
        return self._owner._live()

    def _check(self, address: int, length: int, writable: bool) -> None:
        if not isinstance(address, int) or not isinstance(length, int):
            raise TypeError("address and length must be ints")
        if address < 0 or length < 0 or address + length > 1 << 32 or address >= 1 << 32 or length >= 1 << 32:
            raise MemoryAccessError(f"range {address:#x}..{address + length:#x} is outside the 32-bit address space",
                                    address=address, length=length)
        page = self._guest.first_inaccessible(address, length, False)
        if page is not None:
            raise MemoryAccessError(f"cannot access {length} bytes at {address:#x}: page {page:#x} is not "
                                    "accessible to the guest", address=address, length=length)

    def is_accessible(self, address: int, length: int, writable: bool = False) -> bool:
        """Whether the guest could read (or, with writable=True, write) the range."""
        if not isinstance(address, int) or not isinstance(length, int):
            raise TypeError("address and length must be ints")
        if address < 0 or length < 0 or address + length > 1 << 32 or address >= 1 << 32 or length >= 1 << 32:
            return False
        return self._guest.first_inaccessible(address, length, writable) is None

    def read(self, address: int, length: int) -> bytes:
        self._check(address, length, False)
        return self._guest.read(address, length)

    def read_into(self, address: int, buffer: Buffer) -> None:
        view = memoryview(buffer).cast("B")
        self._check(address, len(view), False)
        self._guest.read_into(address, view)

    def write(self, address: int, data: Buffer) -> None:
        data = memoryview(data).cast("B")
        self._check(address, len(data), True)
        self._guest.write(address, data)

    def zero(self, address: int, length: int) -> None:
        self._check(address, length, True)
        self._guest.zero(address, length)

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

    def protect(self, address: int, length: int, access: Union[str, int]) -> None:
        """Set the guest's access to every page overlapping the range:
        ``"none"``, ``"read"`` or ``"write"`` (read and write), or the
        ``vmcore.abi.PERM_*`` number.  Pages keep their bytes.  Between
        calls only, as every host access."""
        if not isinstance(address, int) or not isinstance(length, int):
            raise TypeError("address and length must be ints")
        perm = ACCESS.get(access) if isinstance(access, str) else access
        if perm not in _ACCESS_NAMES or isinstance(perm, bool):
            raise ValueError(f"access must be one of {', '.join(ACCESS)} or a vmcore.abi.PERM_* value, got {access!r}")
        if address < 0 or length < 0 or address + length > 1 << 32:
            raise MemoryAccessError(f"range {address:#x}..{address + length:#x} is outside the 32-bit address space",
                                    address=address, length=length)
        # The engine applies it to every page the range overlaps and records
        # those pages for the scrub of a closed sandbox.
        self._guest.set_perms(address, length, perm)

    def access(self, address: int) -> str:
        """The guest's access to the page holding ``address``: ``"none"``,
        ``"read"`` or ``"write"``."""
        if not isinstance(address, int):
            raise TypeError("address must be an int")
        if not 0 <= address < 1 << 32:
            raise MemoryAccessError(f"address {address:#x} is outside the 32-bit address space", address=address,
                                    length=0)
        return _ACCESS_NAMES[self._guest.perm(address)]

    def accessible_spans(self) -> List[Tuple[int, int]]:
        """Where the memory map gives the guest memory, as sorted
        ``(address, length)`` spans: read-only data, read-write data with
        the heap as far as it is mapped now, stack, aux data (pages opened
        with :meth:`protect` are not listed).  What to read to snapshot or
        compare a guest's memory."""
        self._guest  # SandboxError once closed
        return sorted(span for span in self._owner._backend.touched() if span[1])
