# The engine's cdef classes (vmcore/_engine.pyx): threaded code and the
# inline Instance, shared modules, zygotes and the out-of-process Process.
# Instance and Process are both a Guest: the hostcall loop, calls,
# registers and guest memory access are written once on Guest
# (engine/guest.pyx) and specialised per engine through the AnyGuest fused
# type, so the hot path stays direct C calls.
cimport cython
from libc.stdint cimport uint32_t, uint64_t, int64_t
from vmcore.includes.interp cimport vm_module, vm_insn, vm_state, vm_memory, vm_heap
from vmcore.includes.host cimport vm_host_module, vm_host_zygote
from vmcore.includes.vmctx cimport vmctx
from vmcore.includes.scrub cimport vm_discard_fn


cdef class CompiledModule:
    cdef vm_module module
    cdef vm_insn *insns
    cdef uint32_t *pc_to_index
    cdef uint32_t *jump_table
    cdef uint32_t *cost
    cdef readonly bint gas_metering
    cdef readonly bint step_tracing


cdef class SharedModule:
    cdef vm_host_module m
    cdef readonly bint gas_metering
    cdef readonly bint step_tracing
    cdef readonly bint native
    cdef readonly bint is_64_bit
    cdef readonly double compile_seconds
    cdef readonly uint32_t code_len
    cdef readonly int gas_kind
    cdef readonly int memory_access_cost
    cdef const unsigned char *native_code_view(self)


cdef class Zygote:
    cdef vm_host_zygote z
    cdef readonly bint started
    cdef readonly uint32_t flags
    cdef SharedModule module  # what the zygote has mapped (None: nothing)


cdef class Guest:
    """What every engine's guest has: guest memory, call state."""
    cdef vm_memory mem
    cdef bint running
    cdef bint in_call
    cdef public bint abandoned  # closed during a call: the call must not report success
    cdef public int last_exit
    cdef object hostcall_error
    cdef set granted  # (address, length) made accessible since the last scrub
    cdef vm_discard_fn discard_fn   # how scrub hands large spans back
    cdef void *discard_context
    cdef readonly int exports  # buffers of memory.view() alive: the mapping must not change
    cdef int _ensure(self) except -1
    cdef bint _gone(self)
    cdef bint _resumable(self)
    cdef int _set_pc(self, uint32_t pc) except? -3
    cdef int _step(self) except -1
    cdef bint _is64(self)
    cdef uint64_t _get_reg(self, int i)
    cdef void _set_reg(self, int i, uint64_t v)
    cdef uint32_t _hostcall_number(self)
    cdef int _charge(self, int64_t cost) except -1
    cdef uint32_t _position(self, int which) except? 0xffffffff
    cdef int _check(self, uint64_t address, uint64_t length) except -1
    cdef int _scrub_spans(self, spans, uint32_t *lo, uint32_t *hi) except -1
    cdef int _note_granted(self, uint32_t address, uint64_t length, unsigned char perm) except -1


cdef class Instance(Guest):
    # Overrides Guest's engine-specific cdef methods (declared once, there).
    cdef vm_state state
    cdef readonly CompiledModule module
    cdef object cow  # the SnapshotMemory the window's spans are mapped copy-on-write from, or None
    cdef int _cow_switch(self, object snapshot) except -1
    cdef int _cow_drop(self) except -1
    cdef int _run_interruptible(self) except -1


cdef class Process(Guest):
    # Overrides Guest's engine-specific cdef methods too.
    cdef Zygote zy
    cdef vmctx *ctx
    cdef readonly SharedModule module
    cdef public object restart   # callable() -> None, or None
    cdef readonly object death   # why the zygote died (str) or None
    cdef readonly bint closed
    cdef uint32_t page_shift
    cdef uint32_t page_size_
    cdef bint resumable
    cdef bint entering       # native: the next hand-over enters at the pc (Process._start)
    cdef vm_heap heap_
    cdef int64_t gas_ceiling
    cdef object _bury(self, uint32_t state)
    cdef int _died(self, uint32_t state, int why=*) except -1
    cdef int _anomaly(self, what) except -1
    cdef int _check_answer(self, uint32_t v) except -1
    cdef int64_t _gas(self) except? -1
    cdef int _heap_load(self, vm_state *s) except -1
    cdef int _start(self) except -1
    cdef uint32_t _wait(self) except 0xffffffff
    cdef int _wait_interruptible(self, uint32_t *v) except? -5
    cdef int _stop_after_signal(self) except -1
    cdef int _exit_code(self, uint32_t v) except? -1


cdef class SandboxCore:
    """What Sandbox.call needs (vmcore/engine/sandbox_core.pyx)."""
    cdef public Guest _guest      # None once closed
    cdef public object program
    cdef public dict _exports
    cdef public uint64_t _stack_top
    cdef public list _handlers
    cdef public object _caller
    cdef public uint64_t _mask
    # the rest of what Sandbox.__init__ sets (SandboxCore.__init__: slots, not a __dict__)
    cdef public object _backend   # the lifecycle (vmcore.backends), None once closed
    cdef public object memory_map
    cdef public object heap_policy
    cdef public object memory_limit
    cdef public object functions
    cdef public object _fallback
    cdef public object _gas_model
    cdef public bint _gas_metering
    cdef public bint _stepping
    cdef object _entry_pc(self, export)
    cdef object _finish(self, Guest g, object pc, object timeout)
    cdef _start(self, program, tuple recipe, gas, memory_limit, functions)


ctypedef fused AnyGuest:
    Instance
    Process
