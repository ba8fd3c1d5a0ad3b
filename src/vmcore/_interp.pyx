"""Thin Cython layer over the C interpreter (interp.c) and inline guest
memory (guest_memory.c).  No policy: vmcore.sandbox decides what to map,
when to stop and how to report it."""
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING
from libc.stdint cimport uint8_t, uint32_t, uint64_t, int64_t, int32_t
from libc.stdlib cimport malloc, calloc, free
from libc.string cimport memcpy, memset
from libc.errno cimport errno

cdef extern from "vmcore/vmctx.h":
    enum:
        VM_ADDR_RETURN_TO_HOST
from vmcore.includes.gas cimport *
from vmcore.includes.decoder cimport vm_decoder_init, VM_OP_COUNT
from vmcore.includes.interp cimport *
from vmcore.includes.scrub cimport vm_span, vm_scrub_spans, vm_state_fresh

from vmcore.errors import SandboxBusy, SandboxError

vm_decoder_init()

# Spans up to this size are zeroed in place when recycling (no syscalls, no
# page faults on reuse); larger ones are handed back to the kernel.
DEF SCRUB_MEMSET_LIMIT = 256 * 1024

EXIT_FINISHED = VM_EXIT_FINISHED
EXIT_TRAP = VM_EXIT_TRAP
EXIT_ECALLI = VM_EXIT_ECALLI
EXIT_OUT_OF_GAS = VM_EXIT_OUT_OF_GAS
EXIT_PAGEFAULT = VM_EXIT_PAGEFAULT
EXIT_STEP = VM_EXIT_STEP
EXIT_INTERRUPTED = VM_EXIT_INTERRUPTED  # the host's deadline stopped the guest
PERM_NONE = VM_PERM_NONE
PERM_READ = VM_PERM_READ
PERM_WRITE = VM_PERM_WRITE
# Accesses to pages below this panic instead of faulting (the Gray Paper's 64 KiB)
LOW_MEMORY_PANIC_LIMIT = VM_LOW_MEMORY_PANIC_LIMIT


cdef class CompiledModule:
    """Threaded code for one program and configuration (immutable)."""
    cdef vm_module module
    cdef vm_insn *insns
    cdef uint32_t *pc_to_index
    cdef uint32_t *jump_table
    cdef uint32_t *cost
    cdef readonly bint gas_metering
    cdef readonly bint step_tracing

    def __cinit__(self, int isa, const uint8_t[:] code, const uint8_t[:] bitmask, jump_table, bint gas_metering,
                  bint step_tracing=False, cost=None, int gas_kind=VM_GAS_NAIVE,
                  int memory_access_cost=VM_GAS_CACHE_L2_HIT):
        cdef vm_module_config config
        cdef size_t capacity
        cdef uint32_t n = <uint32_t>code.shape[0]
        cdef uint32_t jt_count = len(jump_table)
        cdef uint32_t *targets = NULL
        cdef uint32_t i
        cdef const uint8_t *code_ptr = NULL
        cdef const uint8_t *bitmask_ptr = NULL
        self.gas_metering = gas_metering
        self.step_tracing = step_tracing
        config.isa = isa
        config.gas_metering = gas_metering
        config.step_tracing = step_tracing
        config.gas.kind = gas_kind
        config.gas.memory_access_cost = memory_access_cost
        config.gas.cost = NULL
        if cost is not None:
            if len(cost) != VM_OP_COUNT + 1:
                raise ValueError(f"cost model needs {VM_OP_COUNT + 1} entries")
            self.cost = <uint32_t *>malloc((VM_OP_COUNT + 1) * sizeof(uint32_t))
            if self.cost == NULL:
                raise MemoryError()
            for i in range(VM_OP_COUNT + 1):
                self.cost[i] = cost[i]
            config.gas.cost = self.cost
        if vm_gas_model_check(&config.gas) != 0:
            raise ValueError(f"bad gas model: kind {gas_kind}, memory access cost {memory_access_cost}"
                             + (" (a cost table needs the naive kind)" if cost is not None else ""))
        vm_module_sizes(n, jt_count, &config, &capacity)
        self.insns = <vm_insn *>malloc(capacity * sizeof(vm_insn))
        self.pc_to_index = <uint32_t *>malloc((<size_t>n + 1) * sizeof(uint32_t))
        self.jump_table = <uint32_t *>malloc((<size_t>jt_count + 1) * sizeof(uint32_t))
        targets = <uint32_t *>malloc((<size_t>jt_count + 1) * sizeof(uint32_t))
        if self.insns == NULL or self.pc_to_index == NULL or self.jump_table == NULL or targets == NULL:
            free(targets)
            raise MemoryError()
        for i in range(jt_count):
            targets[i] = jump_table[i]
        if n:
            code_ptr = &code[0]
            bitmask_ptr = &bitmask[0]
        with nogil:
            vm_module_build(&self.module, &config, code_ptr, n, bitmask_ptr, targets, jt_count,
                            self.insns, self.pc_to_index, self.jump_table)
        free(targets)

    def __dealloc__(self):
        free(self.insns)
        free(self.pc_to_index)
        free(self.jump_table)
        free(self.cost)

    @property
    def instruction_records(self):
        return self.module.insn_count

    def block_costs(self):
        """[(pc, cost)] of every block's gas charge as laid out ([] without metering)."""
        cdef uint32_t n = vm_module_block_costs(&self.module, NULL, NULL, 0), i
        if n == 0:
            return []
        cdef uint32_t *pcs = <uint32_t *>malloc(n * sizeof(uint32_t))
        cdef uint32_t *costs = <uint32_t *>malloc(n * sizeof(uint32_t))
        try:
            if pcs == NULL or costs == NULL:
                raise MemoryError()
            n = vm_module_block_costs(&self.module, pcs, costs, n)
            return [(pcs[i], costs[i]) for i in range(n)]
        finally:
            free(pcs)
            free(costs)


cdef class Instance:
    """Interpreter state + inline guest memory for one sandbox."""
    cdef vm_state state
    cdef vm_memory memory
    cdef readonly CompiledModule module
    cdef bint running
    cdef bint in_call
    cdef public bint abandoned  # closed during a call: the call must not report success
    cdef public int last_exit
    cdef object hostcall_error
    cdef set granted  # (address, length) made accessible since the last scrub

    def __cinit__(self, CompiledModule module, uint32_t page_size):
        memset(&self.state, 0, sizeof(vm_state))
        memset(&self.memory, 0, sizeof(vm_memory))
        self.module = module
        if vm_guest_memory_init(&self.memory, page_size) != 0:
            raise MemoryError(f"cannot reserve guest memory (errno {errno})")
        self.state.resume = VM_INDEX_NONE

    def __dealloc__(self):
        vm_guest_memory_free(&self.memory)

    # -- execution ------------------------------------------------------
    def set_module(self, CompiledModule module):
        """Switch to other threaded code for the same program (e.g. tracing);
        the guest's pc is preserved by the caller through set_pc.  Never
        under a running call (its hostcall loop resumes in the old code)."""
        if self.in_call:
            raise SandboxBusy("cannot switch the sandbox's code while a call is in progress")
        self.module = module
        self.state.resume = VM_INDEX_NONE

    def set_pc(self, uint32_t pc):
        """0 ok; -1 not an instruction; -2 not enough gas to enter mid-block."""
        if self.in_call:
            raise SandboxBusy("cannot move the program counter while a call is in progress")
        return vm_state_set_pc(&self.state, &self.module.module, pc)

    def can_resume(self):
        return self.state.resume != VM_INDEX_NONE

    def run(self):
        """Run until the guest stops; returns the vm_exit code."""
        cdef vm_exit reason
        if self.in_call:
            return EXIT_BUSY
        if self.state.resume == VM_INDEX_NONE:
            raise SandboxError("no program counter set: prepare a call first")
        self.in_call = True
        try:
            reason = _run_guest(self)
        finally:
            self.running = self.in_call = False
        if reason == VM_EXIT_FINISHED or reason == VM_EXIT_TRAP:
            self.state.resume = VM_INDEX_NONE
        return reason

    def take_hostcall_error(self):
        e, self.hostcall_error = self.hostcall_error, None
        return e

    def interrupt(self):
        """Ask a running guest to stop at its next block (any thread)."""
        self.state.interrupt = 1

    @property
    def in_call(self):
        """A call or run is in progress (another thread, or a hostcall)."""
        return self.in_call

    def clear_interrupt(self):
        self.state.interrupt = 0

    @property
    def running(self):
        return self.running

    @property
    def pc(self):
        return self.state.pc

    @property
    def next_pc(self):
        return self.state.next_pc

    @property
    def arg(self):
        return self.state.arg

    @property
    def gas(self):
        return self.state.gas

    @gas.setter
    def gas(self, int64_t value):
        self.state.gas = value

    # Registers as the program sees them: 32-bit programs' values are
    # 32-bit (vm_reg_from_host / vm_reg_to_host in interp.h).
    def get_reg(self, unsigned int index):
        if index >= 13:
            raise IndexError("register index out of range (0..12)")
        return vm_reg_to_host(self.module.module.is_64_bit, self.state.regs[index])

    def set_reg(self, unsigned int index, uint64_t value):
        if index >= 13:
            raise IndexError("register index out of range (0..12)")
        self.state.regs[index] = vm_reg_from_host(self.module.module.is_64_bit, value)

    def get_regs(self):
        cdef int is64 = self.module.module.is_64_bit
        return [vm_reg_to_host(is64, self.state.regs[i]) for i in range(13)]

    def set_regs(self, values):
        cdef int i
        cdef int is64 = self.module.module.is_64_bit
        if len(values) != 13:
            raise ValueError("expected 13 register values")
        for i in range(13):
            self.state.regs[i] = vm_reg_from_host(is64, values[i])

    # -- heap -----------------------------------------------------------
    def configure_heap(self, uint32_t base, uint32_t top, uint32_t mapped_end, uint32_t max_top,
                       uint32_t grow_pages):
        self.state.heap.base = base
        self.state.heap.top = top
        self.state.heap.mapped_end = mapped_end
        self.state.heap.max_top = max_top
        self.state.heap.grow_pages = grow_pages

    def heap_state(self):
        h = self.state.heap
        return (h.base, h.top, h.mapped_end, h.max_top)

    def sbrk(self, uint32_t size):
        if self.running:
            raise SandboxBusy("the heap cannot be changed while the guest is running")
        return vm_heap_sbrk(&self.state, &self.memory, size)

    # -- memory ---------------------------------------------------------
    @property
    def page_size(self):
        return self.memory.page_size

    def set_perms(self, uint32_t address, uint64_t length, uint8_t perm):
        vm_memory_set_perms(&self.memory, address, length, perm)
        if perm and length:
            if self.granted is None:
                self.granted = set()
            self.granted.add((address, length))

    def discard(self, uint32_t address, uint64_t length):
        vm_guest_memory_discard(&self.memory, address, length)

    def reset_memory(self):
        vm_guest_memory_reset(&self.memory)

    def scrub(self, spans):
        """Recycle: zero and make inaccessible every (address, length) span
        (vmcore/scrub.h, shared with the process engine), and the state
        back to a new instance's (registers, gas, pc, next_pc, arg, heap,
        nothing to resume).  Never under a running call."""
        cdef uint32_t lo, hi
        cdef vm_span *v
        cdef size_t n = len(spans), i = 0
        cdef int rc
        if self.in_call or self.running:
            raise SandboxBusy("cannot reset the sandbox while a call is in progress")
        if self.granted:
            # also whatever set_perms made accessible outside ``spans``
            spans = set(spans) | self.granted
            self.granted = None
            n = len(spans)
        v = <vm_span *>malloc((n + 1) * sizeof(vm_span))
        if v == NULL:
            raise MemoryError()
        for address, length in spans:
            v[i].address = address
            v[i].length = length
            i += 1
        rc = vm_scrub_spans(&self.memory, v, n, SCRUB_MEMSET_LIMIT, _discard, &self.memory, &lo, &hi)
        free(v)
        vm_state_fresh(&self.state)
        self.hostcall_error = None
        self.last_exit = 0
        if rc != 0:
            raise SandboxError("a span to scrub lies outside the address space")

    def first_inaccessible(self, uint32_t address, uint32_t length, bint writable):
        """The first page in the range the guest could not access, or None."""
        cdef uint32_t page
        if vm_memory_first_inaccessible(&self.memory, address, length, writable, &page):
            return page
        return None

    def perm(self, uint32_t address):
        return self.memory.perms[address >> self.memory.page_shift]

    cdef int _check(self, uint64_t address, uint64_t length) except -1:
        if address + length > (<uint64_t>1 << 32):
            raise ValueError(f"range {address:#x}+{length:#x} is outside the 32-bit address space")
        if self.running:
            raise SandboxBusy("guest memory cannot be accessed while the guest is running")
        return 0

    def read(self, uint64_t address, uint64_t length):
        """Raw read (no permission check; the caller checks)."""
        self._check(address, length)
        return PyBytes_FromStringAndSize(<char *>self.memory.base + address, length)

    def read_into(self, uint64_t address, unsigned char[:] buffer):
        cdef uint64_t n = buffer.shape[0]
        self._check(address, n)
        if n:
            memcpy(&buffer[0], self.memory.base + address, n)

    def write(self, uint64_t address, const uint8_t[:] data):
        """Raw write (no permission check; the caller checks)."""
        cdef uint64_t n = data.shape[0]
        self._check(address, n)
        if n:
            memcpy(self.memory.base + address, &data[0], n)

    def zero(self, uint64_t address, uint64_t length):
        self._check(address, length)
        memset(self.memory.base + address, 0, length)



cdef object _NONE = None


cdef int _discard(void *memory, uint64_t offset, uint64_t length) noexcept nogil:
    vm_guest_memory_discard(<vm_memory *>memory, <uint32_t>offset, length)
    return 0


cdef inline uint64_t _to_reg(object value, uint64_t mask) except? 0:
    """A Python int as a register value (mask: the program's register width;
    see vm_reg_from_host)."""
    return vm_reg_from_host(mask != 0xffffffff, <uint64_t>(value & mask))
cdef int[9] _ARG_REGS = [7, 8, 9, 10, 11, 12, 2, 3, 4]  # a0-a5, t0-t2: the reference's order
EXIT_HOSTCALL_ERROR = 100   # a hostcall raised; see Instance.take_hostcall_error()
EXIT_BUSY = 101             # the instance is already in a call


cdef tuple _ARG_NAMES = ("a0", "a1", "a2", "a3", "a4", "a5", "t0", "t1", "t2")


cdef int _bad_arg(Py_ssize_t i, object value) except -1:
    """A call argument that is not an int: say which one (bools are ints)."""
    raise TypeError(f"call argument {i + 1} ({_ARG_NAMES[i]}) must be an int, got {type(value).__name__}: "
                    f"{value!r:.40}")


# Blocks a guest may run while we still hold the GIL (a microsecond or so):
# short calls and hostcall round trips then skip the GIL hand-off; anything
# longer yields and continues with the GIL released.
DEF GIL_HOLD_BLOCKS = 256


cdef inline vm_exit _run_guest(Instance inst):
    cdef vm_exit reason
    inst.running = True
    inst.state.fuel = GIL_HOLD_BLOCKS
    reason = vm_run(&inst.module.module, &inst.state, &inst.memory)
    if reason == VM_EXIT_YIELD:
        inst.state.fuel = 0
        with nogil:
            reason = vm_run(&inst.module.module, &inst.state, &inst.memory)
    inst.running = False
    return reason


cdef int _serve(Instance inst, list handlers, object caller, uint64_t mask) except -1:
    """Run, answering each ecalli from ``handlers[number] = (fn, nargs)``
    without leaving Cython between guest and hostcall.  Returns the exit
    code when the guest stops for another reason, EXIT_ECALLI when it calls
    an import with no handler, EXIT_HOSTCALL_ERROR when a hostcall raised
    (the exception is kept on the instance)."""
    cdef vm_exit reason
    cdef uint32_t n
    cdef Py_ssize_t count = len(handlers)
    cdef uint64_t *regs = inst.state.regs
    cdef int nargs
    while True:
        if inst.state.resume == VM_INDEX_NONE:
            # nothing to resume (cannot happen through the API: the engine
            # refuses to change its code or state under a call)
            raise SandboxError("the sandbox lost its resume point during a hostcall")
        reason = _run_guest(inst)
        if reason != VM_EXIT_ECALLI:
            if reason == VM_EXIT_FINISHED or reason == VM_EXIT_TRAP:
                inst.state.resume = VM_INDEX_NONE
            return reason
        n = inst.state.arg
        if n >= count:
            return reason
        entry = handlers[n]
        if entry is _NONE:
            return reason
        fn, nargs = <tuple>entry
        try:
            if nargs == 0:
                result = fn(caller)
            elif nargs == 1:
                result = fn(caller, regs[7] & mask)
            elif nargs == 2:
                result = fn(caller, regs[7] & mask, regs[8] & mask)
            elif nargs == 3:
                result = fn(caller, regs[7] & mask, regs[8] & mask, regs[9] & mask)
            elif nargs == 4:
                result = fn(caller, regs[7] & mask, regs[8] & mask, regs[9] & mask, regs[10] & mask)
            elif nargs == 5:
                result = fn(caller, regs[7] & mask, regs[8] & mask, regs[9] & mask, regs[10] & mask,
                            regs[11] & mask)
            else:
                result = fn(caller, regs[7] & mask, regs[8] & mask, regs[9] & mask, regs[10] & mask,
                            regs[11] & mask, regs[12] & mask)
            if result is _NONE:
                continue
            if isinstance(result, int):
                regs[7] = _to_reg(result, mask)
            elif isinstance(result, tuple) and len(<tuple>result) == 2 and isinstance((<tuple>result)[0], int) \
                    and isinstance((<tuple>result)[1], int):
                regs[7] = _to_reg((<tuple>result)[0], mask)
                regs[8] = _to_reg((<tuple>result)[1], mask)
            else:
                raise TypeError(f"a hostcall must return None, an int or a 2-tuple of ints, got {result!r:.80}")
        except BaseException as e:
            if isinstance(e, (KeyboardInterrupt, SystemExit)):
                raise
            inst.hostcall_error = e
            return EXIT_HOSTCALL_ERROR


def serve_hostcalls(Instance inst, list handlers, object caller, uint64_t mask):
    """Resume the guest, serving hostcalls; returns the exit code."""
    if inst.in_call:
        return EXIT_BUSY
    if inst.state.resume == VM_INDEX_NONE:
        raise SandboxError("no program counter set: prepare a call first")
    inst.in_call = True
    try:
        return _serve(inst, handlers, caller, mask)
    finally:
        inst.in_call = False


def call(Instance inst, uint32_t pc, tuple args, uint64_t sp, list handlers, object caller, uint64_t mask):
    """See _call."""
    return _call(inst, pc, args, sp, handlers, caller, mask)


cdef object _call(Instance inst, uint32_t pc, tuple args, uint64_t sp, list handlers, object caller,
                  uint64_t mask):
    """The whole host-to-guest call in one step: registers per the calling
    convention, entry, hostcalls.  Returns a0 & mask when the guest returned,
    else None with the exit code in inst.last_exit (negative: bad entry)."""
    cdef Py_ssize_t nargs = len(args)
    cdef Py_ssize_t i
    cdef uint64_t *regs = inst.state.regs
    cdef int rc
    cdef int reason
    if inst.in_call:
        inst.last_exit = EXIT_BUSY
        return None
    if nargs > 9:
        raise TypeError(f"at most 9 arguments fit in registers, got {nargs}")
    for i in range(nargs):
        if not isinstance(args[i], int):
            _bad_arg(i, args[i])
        regs[_ARG_REGS[i]] = _to_reg(args[i], mask)
    regs[0] = VM_ADDR_RETURN_TO_HOST
    regs[1] = sp
    rc = vm_state_set_pc(&inst.state, &inst.module.module, pc)
    if rc != 0:
        inst.last_exit = rc
        return None
    inst.in_call = True
    try:
        reason = _serve(inst, handlers, caller, mask)
    finally:
        inst.in_call = False
    if reason == VM_EXIT_FINISHED and inst.abandoned:
        reason = VM_EXIT_INTERRUPTED
    inst.last_exit = reason
    if reason == VM_EXIT_FINISHED:
        return regs[7] & mask
    return None



cdef class CallGate:
    """``sandbox.call`` for the inline backend with the fast path in Cython:
    export lookup, argument registers, run and hostcalls in one C call.
    Anything unusual (timeouts, numeric entry points, errors) goes to
    ``slow(export, args, timeout, pc)``."""
    cdef Instance inst
    cdef dict exports
    cdef uint64_t sp
    cdef list handlers
    cdef object caller
    cdef uint64_t mask
    cdef object slow
    cdef public object __doc__

    def __init__(self, Instance inst, dict exports, uint64_t sp, list handlers, object caller, uint64_t mask,
                 slow, doc=None):
        self.inst = inst
        self.exports = exports
        self.sp = sp
        self.handlers = handlers
        self.caller = caller
        self.mask = mask
        self.slow = slow
        self.__doc__ = doc

    def __call__(self, export, *args, timeout=None):
        if timeout is None and type(export) is str:
            pc = self.exports.get(export)
            if pc is not None:
                result = _call(self.inst, pc, args, self.sp, self.handlers, self.caller, self.mask)
                if result is not None:
                    return result
                return self.slow(export, args, timeout, pc)
        return self.slow(export, args, timeout, None)
