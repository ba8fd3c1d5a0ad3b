"""vmcore: run untrusted PolkaVM / JAM PVM guest programs inside a Python
host application — fast, metered, isolated."""
import importlib.util as _util

# An unbuilt checkout (e.g. PYTHONPATH=src) says so in one line instead of a
# circular-import traceback from the first module that needs the C core.
if _util.find_spec("vmcore._engine") is None:
    raise ImportError("vmcore's compiled extensions are not built: run `pip install .` (or, for development, "
                      "`pip install -e \".[test]\"`) from the repository root", name="vmcore")
del _util

from vmcore._version import __version__
from vmcore.errors import (AsyncHostcallError, ExportNotFound, HostcallError, ImportNotFound, MemoryAccessError, OutOfGas, PageFault,
                           ProgramError, SandboxError, Timeout, Trap, TrapReason, VmError)
from vmcore.caller import Caller, Registers
from vmcore.heap import HeapPolicy
from vmcore.host_functions import HostFunctions
from vmcore.interrupts import (Ecalli, Finished, Interrupt, OutOfGasInterrupt, PageFaultInterrupt, Step,
                               TrapInterrupt)
from vmcore.memory import GuestMemory
from vmcore.memory_map import MemoryMap
from vmcore.program import Program
from vmcore.sandbox import Backend, Isolation, Sandbox, SandboxBusy
from vmcore.snapshot import Snapshot, SnapshotError
from vmcore.pool import SandboxPool, drain_module_memory
from vmcore.backends import IsolationReport
from vmcore._engine import configure_spin, spin_settings
from vmcore import interrupts

__all__ = [
    "__version__", "Program", "MemoryMap", "Sandbox", "SandboxBusy", "HeapPolicy", "Caller", "Registers", "HostFunctions",
    "SandboxPool", "drain_module_memory", "IsolationReport", "configure_spin", "spin_settings", "GuestMemory", "interrupts", "Interrupt", "Finished", "Ecalli", "Step",
    "TrapInterrupt", "OutOfGasInterrupt", "PageFaultInterrupt", "Backend", "Isolation",
    "VmError", "ProgramError", "Trap", "TrapReason", "OutOfGas", "PageFault", "HostcallError", "MemoryAccessError",
    "SandboxError", "Timeout", "ExportNotFound", "ImportNotFound", "AsyncHostcallError",
    "Snapshot", "SnapshotError",
]
