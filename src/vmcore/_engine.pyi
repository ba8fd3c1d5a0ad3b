"""vmcore's engine, one extension (vmcore/_engine.pyx including
vmcore/engine/*.pyx): the ABI, decoder, program parser, Guest with its two
engines Instance (inline interpreter) and Process (process sandbox), and
the recompiler."""
from typing import Any, Callable, Dict, FrozenSet, Iterable, List, Optional, Sequence, Set, Tuple, Union

from vmcore.errors import SandboxBusy as SandboxBusy, SandboxError as SandboxError

# -- the ABI (engine/abi.pyx; public as vmcore.abi) ---------------------------
VMCTX_SIZE: int
FUTEX_STATES: Dict[str, int]
ADDRESSES: Dict[str, int]
FUTEX_BUSY: int
FUTEX_IDLE: int
FUTEX_ECALLI: int
FUTEX_TRAP: int
FUTEX_SIGNAL: int
FUTEX_STEP: int
FUTEX_NOT_ENOUGH_GAS: int
FUTEX_PAGEFAULT: int
FUTEX_LONGJUMP: int
VM_ADDR_RETURN_TO_HOST: int
VM_MIN_PAGE_SIZE: int
VM_MAX_PAGE_SIZE: int
VM_CODE_ADDRESS_ALIGNMENT: int
VM_MAXIMUM_CODE_SIZE: int
VM_MAXIMUM_JUMP_TABLE_ENTRIES: int
VM_MAXIMUM_IMPORT_COUNT: int
VM_ADDR_NATIVE_CODE: int
VM_ADDR_VMCTX: int
VM_ADDR_SIGSTACK: int
VM_ADDR_NATIVE_STACK_LOW: int
VM_ADDR_NATIVE_STACK_HIGH: int
VM_ADDR_SHARED_MEMORY: int
VM_ADDR_JUMP_TABLE: int
VM_ADDR_GUEST_MEMORY: int
VM_ADDR_GUEST_PERMS: int
VM_ADDR_INTERP_MODULE: int
VM_ADDR_VMCTX_ALIAS: int
VM_GUEST_MEMORY_SIZE: int
VM_GUEST_MEMORY_SLACK: int
VM_GUEST_PERMS_SIZE: int
REG_COUNT: int
REG_RA: int
REG_SP: int
REG_T0: int
REG_T1: int
REG_T2: int
REG_S0: int
REG_S1: int
REG_A0: int
REG_A1: int
REG_A2: int
REG_A3: int
REG_A4: int
REG_A5: int
ARG_REG_COUNT: int
HOSTCALL_ARG_COUNT: int
HOSTCALL_RETURN_COUNT: int
RETURN_TO_HOST: int
EXIT_FINISHED: int
EXIT_TRAP: int
EXIT_ECALLI: int
EXIT_OUT_OF_GAS: int
EXIT_PAGEFAULT: int
EXIT_STEP: int
EXIT_INTERRUPTED: int
EXIT_YIELD: int
EXIT_HOSTCALL_ERROR: int
EXIT_BUSY: int
EXIT_HOSTCALL_OUT_OF_GAS: int
TRAP_INSTRUCTION: int
TRAP_INVALID_INSTRUCTION: int
TRAP_INVALID_JUMP: int
TRAP_END_OF_CODE: int
TRAP_MEMORY_ACCESS: int
TRAP_REASON_LIMIT: int
ENTRY_OK: int
ENTRY_NOT_AN_INSTRUCTION: int
ENTRY_OUT_OF_GAS: int
PERM_NONE: int
PERM_READ: int
PERM_WRITE: int
MIN_PAGE_SIZE: int
MAX_PAGE_SIZE: int
DEFAULT_PAGE_SIZE: int
LOW_MEMORY_PANIC_LIMIT: int
CONSTANTS: Dict[str, int]
ARG_REGS: Tuple[int, ...]
ARG_NAMES: Tuple[str, ...]
COMPILE_ERRORS: Dict[int, str]

def vmctx_layout() -> Dict[str, Tuple[int, int]]: ...

# -- decoder (engine/decoder.pyx) -----------------------------------------------
OP_INVALID: int
FLAG_ENDS_BLOCK: int
FLAG_TERMINATOR: int
GAS_NAIVE: int
GAS_FULL: int
GAS_CACHE_L1_HIT: int
GAS_CACHE_L2_HIT: int
GAS_CACHE_L3_HIT: int
GAS_MAX_MEMORY_COST: int

def isa_names() -> List[str]: ...
def isa_is_64_bit(isa: int) -> bool: ...
def format_names() -> List[str]: ...
def opcode_rows() -> List[Tuple[int, str, str, int, Tuple[Optional[int], ...]]]: ...
def decode(isa: int, code: bytes, bitmask: bytes, offset: int) -> Tuple[int, int, Tuple[int, int, int], int, int, int, bool]: ...
def instructions(isa: int, code: bytes, bitmask: bytes) -> List[Tuple[int, int, int, int, int, int, int, int, int]]: ...
def is_basic_block_start(isa: int, code: bytes, bitmask: bytes, offset: int) -> bool: ...
def block_gas_costs(isa: int, code: bytes, bitmask: bytes, kind: int, memory_access_cost: int = ...,
                    bounded: bool = ...) -> List[Tuple[int, int]]: ...
def block_gas_cost_at(isa: int, code: bytes, bitmask: bytes, pc: int, kind: int,
                      memory_access_cost: int = ...) -> int: ...

# -- programs (engine/program.pyx) ----------------------------------------------
class ParseError(Exception): ...

def parse_polkavm(data: bytes) -> Dict[str, Any]: ...
def parse_code_blob(data: bytes, isa: int) -> Dict[str, Any]: ...
def parse_jam_standard(data: bytes) -> Dict[str, Any]: ...
def validate_code(isa: int, code: bytes, bitmask: bytes) -> int: ...
def code_stats(isa: int, code: bytes, bitmask: bytes) -> Tuple[int, int]: ...
def write_varint(value: int) -> bytes: ...
def read_varint(data: bytes, position: int) -> Optional[Tuple[int, int]]: ...

# -- guests (engine/guest.pyx, interp.pyx, process.pyx) -------------------------
class Guest:
    pc: int
    next_pc: int
    arg: int
    last_exit: int
    abandoned: bool
    running: bool
    in_call: bool
    page_size: int
    def call(self, pc: int, args: tuple, sp: int, handlers: list, caller: Any, mask: int) -> Optional[int]: ...
    def serve_hostcalls(self, handlers: list, caller: Any, mask: int) -> int: ...
    def run(self) -> int: ...
    def set_pc(self, pc: int) -> int: ...
    def can_resume(self) -> bool: ...
    def take_hostcall_error(self) -> Optional[BaseException]: ...
    def install(self, image: Tuple[Tuple[int, int, int, bytes], ...], heap: Tuple[int, int, int, int, int],
                gas: int) -> None: ...
    def touched(self, spans: FrozenSet[Tuple[int, int]], rw: int) -> FrozenSet[Tuple[int, int]]: ...
    def recycle(self, spans: Iterable[Tuple[int, int]], image: Tuple[Tuple[int, int, int, bytes], ...],
                heap: Tuple[int, int, int, int, int], gas: int) -> None: ...
    def get_reg(self, index: int) -> int: ...
    def set_reg(self, index: int, value: int) -> None: ...
    def get_regs(self) -> List[int]: ...
    def set_regs(self, values: Sequence[int]) -> None: ...
    def first_inaccessible(self, address: int, length: int, writable: bool) -> Optional[int]: ...
    def perm(self, address: int) -> int: ...
    def read(self, address: int, length: int) -> bytes: ...
    def read_into(self, address: int, buffer: Any) -> None: ...
    def write(self, address: int, data: Any) -> None: ...
    def zero(self, address: int, length: int) -> None: ...
    exports: int

class _GuestBackend(Guest):
    """Stub only: what Instance and Process each implement over their own
    state (not on Guest at runtime), declared once here."""
    gas: int
    def interrupt(self) -> None: ...
    def clear_interrupt(self) -> None: ...
    def configure_heap(self, base: int, top: int, mapped_end: int, max_top: int, grow_pages: int) -> None: ...
    def heap_state(self) -> Tuple[int, int, int, int]: ...
    def sbrk(self, size: int) -> int: ...
    def set_perms(self, address: int, length: int, perm: int) -> None: ...

BACKEND_POOL_LIMIT: int
def pool_inline(backend: Any, guest: Instance) -> bool: ...

class SandboxCore:
    program: Any
    memory_map: Any
    heap_policy: Any
    memory_limit: Optional[int]
    functions: Any
    def call(self, export: Union[str, int], *args: int, timeout: Optional[float] = ...) -> int: ...
    def close(self) -> None: ...
    def __init__(self, program: Any, *, backend: str = ..., isolation: str = ..., gas: Optional[int] = ...,
                 page_size: Optional[int] = ..., heap: Any = ..., hostcalls: Optional[Dict[str, Any]] = ...,
                 strict: bool = ..., auto_restart: bool = ..., pool: Any = ..., memory_limit: Optional[int] = ...,
                 gas_model: Optional[str] = ..., functions: Any = ...) -> None: ...

class CompiledModule:
    gas_metering: bool
    step_tracing: bool
    instruction_records: int
    fused_records: int
    targets: int
    def __init__(self, isa: int, code: bytes, bitmask: bytes, jump_table: Sequence[int], gas_metering: bool,
                 step_tracing: bool = ..., cost: Optional[Sequence[int]] = ..., gas_kind: int = ...,
                 memory_access_cost: int = ...) -> None: ...
    def block_costs(self) -> List[Tuple[int, int]]: ...

def set_gil_hold_blocks(blocks: int) -> int: ...

class Instance(_GuestBackend):
    module: CompiledModule
    def __init__(self, module: CompiledModule, page_size: int) -> None: ...
    def set_module(self, module: CompiledModule) -> None: ...
    def discard(self, address: int, length: int) -> None: ...
    def reset_memory(self) -> None: ...
    def scrub(self, spans: Iterable[Tuple[int, int]]) -> None: ...
    resume_index: Optional[int]
    def restore_position(self, pc: int, next_pc: int, arg: int, resume_index: Optional[int]) -> None: ...

# -- the recompiler (engine/compiler.pyx) ---------------------------------------
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

# -- the process sandbox (engine/process.pyx) -----------------------------------
FLAG_NO_SECCOMP: int
FLAG_TEST_FORBIDDEN_SYSCALL: int
ISOLATION_FEATURES: Tuple[Tuple[str, int], ...]

def cpu_count() -> int: ...
def cpu_load(cpu: int) -> int: ...
def test_image(elf: bytes) -> int: ...
def spin_settings() -> Tuple[int, int]: ...
def configure_spin(host: Optional[int] = ..., sandbox: Optional[int] = ...) -> None: ...
def module_memory_pool() -> Tuple[int, int]: ...
def drain_module_memory() -> int: ...
def have_image() -> bool: ...
def set_image(elf: bytes) -> None: ...

class SharedModule:
    size: int
    instruction_records: int
    memfd: int
    memory_bytes: int
    native_code_size: int
    native_code: bytes
    gas_metering: bool
    step_tracing: bool
    native: bool
    is_64_bit: bool
    compile_seconds: float
    code_len: int
    gas_kind: int
    memory_access_cost: int
    def __init__(self, isa: int, code: bytes, bitmask: bytes, jump_table: Sequence[int], gas_metering: bool,
                 step_tracing: bool = ..., native: bool = ..., gas_kind: int = ...,
                 memory_access_cost: int = ...) -> None: ...
    def block_costs(self) -> List[Tuple[int, int]]: ...

class Zygote:
    pid: int
    owned: bool
    cpu: int
    isolation: int
    started: bool
    flags: int
    def start(self, flags: int = ..., namespaces: bool = ..., timeout: float = ..., avoid_cpu: int = ...,
              image_fd: int = ...) -> None: ...
    def place(self, cpus: Optional[Iterable[int]] = ..., avoid_cpu: int = ...) -> int: ...
    def unpin(self, cpus: Optional[Iterable[int]] = ...) -> None: ...
    def unplace(self) -> None: ...
    def release(self) -> None: ...
    def forget(self) -> None: ...
    def alive(self) -> bool: ...
    def idle(self) -> bool: ...
    def kill(self, sig: int = ...) -> int: ...
    def refresh(self) -> None: ...

class Process(_GuestBackend):
    module: SharedModule
    restart: Optional[Callable[[], None]]
    death: Optional[str]
    closed: bool
    zygote: Optional[Zygote]
    alive: bool
    pid: Optional[int]
    isolation: int
    def __init__(self, zygote: Zygote, module: SharedModule, page_size: int) -> None: ...
    def attach(self, zygote: Zygote) -> None: ...
    def detach(self) -> Optional[Zygote]: ...
    def ctx_address(self) -> int: ...
    def abort(self) -> None: ...
    def counters(self) -> Dict[str, int]: ...
    def set_module(self, module: SharedModule) -> None: ...
    def scrub(self, spans: Sequence[Tuple[int, int]]) -> None: ...
    def restore_position(self, pc: int, next_pc: int, arg: int, resume_index: Optional[int]) -> None: ...

# -- snapshots and views (engine/snapshot.pyx) ----------------------------------
class SnapshotMemory:
    spans: Tuple[Tuple[int, int], ...]
    perms: bytes
    page_size: int
    stored_bytes: int

def snapshot_memory(g: Guest, spans: Iterable[Tuple[int, int]]) -> SnapshotMemory: ...
def restore_memory(g: Guest, s: SnapshotMemory, extra: Iterable[Tuple[int, int]],
                   granted: Iterable[Tuple[int, int]]) -> int: ...
def granted_spans(g: Guest) -> Set[Tuple[int, int]]: ...

class GuestBuffer:
    address: int
    length: int
    writable: bool
    def __init__(self, g: Guest, address: int, length: int, writable: bool) -> None: ...
