"""vmcore: run untrusted PolkaVM / JAM PVM guest programs inside a Python
host application — fast, metered, isolated."""
from vmcore._version import __version__
from vmcore.errors import (HostcallError, MemoryAccessError, OutOfGas, PageFault, ProgramError, SandboxError,
                           Timeout, Trap, VmError)
from vmcore.memory_map import MemoryMap
from vmcore.program import Program

__all__ = [
    "__version__", "Program", "MemoryMap",
    "VmError", "ProgramError", "Trap", "OutOfGas", "PageFault", "HostcallError", "MemoryAccessError",
    "SandboxError", "Timeout",
]
