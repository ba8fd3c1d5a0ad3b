from typing import Dict, List, Optional, Sequence, Tuple

INFO_OP_MASK: int
INFO_BLOCK_START: int
INFO_ENTRY_OK: int
INFO_LOAD: int
INFO_STORE: int
INFO_SIZE_SHIFT: int
INFO_JUMP_TARGET: int
VMCTX_DISP: int
GUEST_REGS: Tuple[int, ...]
CPU_MISSING: Optional[str]

class CompileError(Exception): ...

def cpu_check() -> Optional[str]: ...
def require_cpu() -> None: ...
def decoder_selftest(isa: int, code: bytes, bitmask: bytes) -> Optional[int]: ...

class CompiledCode:
    gas_metering: bool
    step_tracing: bool
    seconds: float
    code: bytes
    jump_table: bytes
    map_bytes: bytes
    records_bytes: bytes
    marks_bytes: bytes
    info: Dict[str, object]
    def __init__(self, isa: int, code: bytes, bitmask: bytes, jump_table: Sequence[int], gas_metering: bool = ...,
                 step_tracing: bool = ..., interruptible: bool = ..., cost: Optional[Sequence[int]] = ...,
                 code_address: int = ..., parallel: bool = ..., split_hint: int = ..., gas_kind: int = ...,
                 memory_access_cost: int = ...) -> None: ...
    def block_costs(self) -> List[Tuple[int, int]]: ...
    def map_entries(self) -> List[Tuple[int, int, int, int]]: ...
    def enter(self, pc: int, gas: int) -> Tuple[int, int, int]: ...
    def find_pc(self, pc: int) -> int: ...
    def find_native(self, offset: int) -> int: ...

def forms() -> Dict[str, int]: ...
def assemble(instructions: Sequence[Tuple]) -> bytes: ...
