cdef class CompiledModule:
    """Threaded code for one program and configuration (immutable)."""

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
        code_pointers(code, bitmask, &code_ptr, &bitmask_ptr)
        self.gas_metering = gas_metering
        self.step_tracing = step_tracing
        configure_module(&config, isa, gas_metering, step_tracing, gas_kind, memory_access_cost, cost, &self.cost)
        vm_module_sizes(n, jt_count, &config, &capacity)
        self.insns = <vm_insn *>malloc(capacity * sizeof(vm_insn))
        self.pc_to_index = <uint32_t *>malloc((<size_t>n + 1) * sizeof(uint32_t))
        self.jump_table = <uint32_t *>malloc((<size_t>jt_count + 1) * sizeof(uint32_t))
        if self.insns == NULL or self.pc_to_index == NULL or self.jump_table == NULL:
            raise MemoryError()
        targets = jump_targets(jump_table)
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

    @property
    def targets(self):
        """What every jump target record is (vm_targets: 0 mixed, 1 CHECK, 2 CHARGE)."""
        return self.module.targets

    @property
    def fused_records(self):
        """How many records run a fused pair (superinstructions)."""
        return vm_module_fused_records(&self.module)

    def block_costs(self):
        """[(pc, cost)] of every block's gas charge as laid out ([] without metering)."""
        return block_cost_list(self, _threaded_block_costs)


cdef uint32_t _threaded_block_costs(object module, uint32_t *pcs, uint32_t *costs, uint32_t capacity):
    return vm_module_block_costs(&(<CompiledModule>module).module, pcs, costs, capacity)


cdef int _discard(void *memory, uint64_t offset, uint64_t length) noexcept nogil:
    vm_guest_memory_discard(<vm_memory *>memory, <uint32_t>offset, length)
    return 0


# Blocks a guest may run while we still hold the GIL (a microsecond or so):
# short calls and hostcall round trips then skip the GIL hand-off; anything
# longer yields and continues with the GIL released.
DEF GIL_HOLD_BLOCKS = 256
cdef uint64_t _gil_hold_blocks = GIL_HOLD_BLOCKS


def set_gil_hold_blocks(uint64_t blocks):
    """Test hook: how many blocks a run holds the GIL for (the fuel of its
    first vm_run; 0: none, the whole run in one vm_run, which then takes
    the specialised loops of interp.c).  Returns the previous value."""
    global _gil_hold_blocks
    old = _gil_hold_blocks
    _gil_hold_blocks = blocks
    return old


cdef class Instance(Guest):
    """Interpreter state + inline guest memory for one sandbox."""

    def __cinit__(self, CompiledModule module, uint32_t page_size):
        memset(&self.state, 0, sizeof(vm_state))
        memset(&self.mem, 0, sizeof(vm_memory))
        self.module = module
        if vm_guest_memory_init(&self.mem, page_size) != 0:
            raise MemoryError(f"cannot reserve guest memory (errno {errno})")
        self.state.resume = VM_INDEX_NONE
        self.discard_fn = _discard
        self.discard_context = &self.mem

    def __dealloc__(self):
        vm_guest_memory_free(&self.mem)

    # -- the engine step (see engine/guest.pyx) ---------------------------
    cdef int _ensure(self) except -1:
        return 0

    cdef bint _gone(self):
        return False

    cdef bint _resumable(self):
        return self.state.resume != VM_INDEX_NONE

    cdef int _set_pc(self, uint32_t pc) except? -3:
        return vm_state_set_pc(&self.state, &self.module.module, pc)

    cdef int _step(self) except -1:
        cdef vm_exit reason
        if self.state.resume == VM_INDEX_NONE:
            # nothing to resume (cannot happen through the API: the engine
            # refuses to change its code or state under a call)
            raise SandboxError("the sandbox lost its resume point during a hostcall")
        self.running = True
        self.state.fuel = _gil_hold_blocks
        reason = vm_run(&self.module.module, &self.state, &self.mem)
        if reason == VM_EXIT_YIELD:
            self.state.fuel = 0
            if _in_main_thread():
                reason = self._run_interruptible()
            else:
                with nogil:
                    reason = vm_run(&self.module.module, &self.state, &self.mem)
        self.running = False
        if reason == VM_EXIT_FINISHED or reason == VM_EXIT_TRAP:
            self.state.resume = VM_INDEX_NONE
        return reason

    # -- Ctrl-C (vmcore/sigint.h) -------------------------------------------
    cdef int _run_interruptible(self) except -1:
        """The GIL-free run in the main thread: a SIGINT stops the guest;
        KeyboardInterrupt (whatever Python's handler raises) propagates
        with the guest stopped, else the guest resumes."""
        cdef int reason, armed
        while True:
            armed = vm_sigint_arm(&self.state.interrupt, NULL)
            with nogil:
                reason = vm_run(&self.module.module, &self.state, &self.mem)
            if armed:
                vm_sigint_disarm()
            if not vm_sigint_take() or reason != VM_EXIT_INTERRUPTED:
                return reason
            try:
                PyErr_CheckSignals()
            except BaseException:
                self.state.interrupt = 0
                self.running = False
                raise
            if self.abandoned:
                return reason  # closed meanwhile: that stop stands
            self.state.interrupt = 0  # the handler did not raise: go on

    cdef bint _is64(self):
        return self.module.module.is_64_bit

    cdef uint64_t _get_reg(self, int i):
        return self.state.regs[i]

    cdef void _set_reg(self, int i, uint64_t v):
        self.state.regs[i] = v

    cdef uint32_t _hostcall_number(self):
        return self.state.arg

    cdef int _charge(self, int64_t cost) except -1:
        if self.state.gas < cost:
            return 0
        self.state.gas -= cost
        return 1

    # -- execution ------------------------------------------------------
    def set_module(self, CompiledModule module):
        """Switch to other threaded code for the same program (e.g. tracing);
        the guest's pc is preserved by the caller through set_pc.  Never
        under a running call (its hostcall loop resumes in the old code)."""
        if self.in_call:
            raise SandboxBusy("cannot switch the sandbox's code while a call is in progress")
        self.module = module
        self.state.resume = VM_INDEX_NONE

    def interrupt(self):
        """Ask a running guest to stop at its next block (any thread)."""
        self.state.interrupt = 1

    def clear_interrupt(self):
        self.state.interrupt = 0

    cdef uint32_t _position(self, int which) except? 0xffffffff:
        return self.state.pc if which == 0 else self.state.next_pc if which == 1 else self.state.arg

    @property
    def gas(self):
        return self.state.gas

    @gas.setter
    def gas(self, int64_t value):
        self.state.gas = value

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
        return vm_heap_sbrk(&self.state, &self.mem, size)

    # -- memory ---------------------------------------------------------
    def set_perms(self, uint32_t address, uint64_t length, uint8_t perm):
        if self.exports:
            raise BufferError(_EXPORTED)
        vm_memory_set_perms(&self.mem, address, length, perm)
        self._note_granted(address, length, perm)

    def discard(self, uint32_t address, uint64_t length):
        self._cow_drop()
        vm_guest_memory_discard(&self.mem, address, length)

    def reset_memory(self):
        self._cow_drop()
        vm_guest_memory_reset(&self.mem)

    # -- snapshots (engine/snapshot.pyx) ----------------------------------
    cdef int _cow_switch(self, object snapshot) except -1:
        """Make the window's snapshot spans read as ``snapshot``: drop the
        private copies if they are already mapped from it, else map them."""
        cdef SnapshotMemory s = <SnapshotMemory>snapshot
        if self.cow is s:
            _cow_apply(&self.mem, s.fd, s.spans, 1)
            return 0
        self._cow_drop()
        _cow_apply(&self.mem, s.fd, s.spans, 0)
        self.cow = s
        return 0

    cdef int _cow_drop(self) except -1:
        """Back to anonymous memory (zeros) where a snapshot was mapped:
        a discard there would bring the snapshot's bytes back, not zeros."""
        if self.cow is not None:
            _cow_apply(&self.mem, -1, (<SnapshotMemory>self.cow).spans, 2)
            self.cow = None
        return 0

    @property
    def resume_index(self):
        """Where run() continues in the compiled code (None: nothing to resume)."""
        return None if self.state.resume == VM_INDEX_NONE else self.state.resume

    def restore_position(self, uint32_t pc, uint32_t next_pc, uint32_t arg, resume_index):
        """Where the guest stopped and where it resumes, as a snapshot had
        them (resume_index into this instance's current module; None:
        nothing to resume)."""
        if self.in_call:
            raise SandboxBusy("cannot move the program counter while a call is in progress")
        self.state.pc = pc
        self.state.next_pc = next_pc
        self.state.arg = arg
        self.state.resume = VM_INDEX_NONE if resume_index is None else <uint32_t>resume_index
        self.state.interrupt = 0

    def scrub(self, spans):
        """Recycle: zero and make inaccessible every (address, length) span
        (vmcore/scrub.h, shared with the process engine), and the state
        back to a new instance's (registers, gas, pc, next_pc, arg, heap,
        nothing to resume).  Never under a running call."""
        cdef uint32_t lo, hi
        cdef int rc
        if self.exports:
            raise BufferError(_EXPORTED)
        self._cow_drop()
        rc = self._scrub_spans(spans, &lo, &hi)
        vm_state_fresh(&self.state)
        if rc != 0:
            raise SandboxError("a span to scrub lies outside the address space")
