"""The ABI as compiled, never re-typed: the guest ABI of
include/vmcore/abi.h (register count, argument registers, exit and entry
codes, permissions, page sizes), the VmCtx of include/vmcore/vmctx.h (field
offsets and sizes, futex states, fixed sandbox addresses, through the C
compiler's offsetof/sizeof) and the recompiler's error codes.  Compiled in
vmcore._engine (engine/abi.pyx); this is its public name."""
from vmcore import _engine

VMCTX_SIZE = _engine.VMCTX_SIZE
FUTEX_STATES = _engine.FUTEX_STATES
ADDRESSES = _engine.ADDRESSES
#: Every scalar of include/vmcore/abi.h (also module attributes: REG_COUNT,
#: EXIT_*, ENTRY_*, PERM_*, MIN/MAX/DEFAULT_PAGE_SIZE, RETURN_TO_HOST, ...).
CONSTANTS = _engine.CONSTANTS
#: Call argument registers in the calling convention's order (a0-a5, t0-t2)
#: and their names.
ARG_REGS = _engine.ARG_REGS
ARG_NAMES = _engine.ARG_NAMES
#: The recompiler's error codes: {code: what went wrong}.
COMPILE_ERRORS = _engine.COMPILE_ERRORS
vmctx_layout = _engine.vmctx_layout

globals().update({"FUTEX_" + name: value for name, value in FUTEX_STATES.items()})
globals().update(ADDRESSES)
globals().update(CONSTANTS)
