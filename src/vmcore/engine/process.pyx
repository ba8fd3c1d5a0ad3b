FLAG_TEST_FORBIDDEN_SYSCALL = VM_INIT_FLAG_TEST_FORBIDDEN_SYSCALL
FLAG_NO_SECCOMP = VM_INIT_FLAG_NO_SECCOMP

ISOLATION_FEATURES = (
    ("user_namespace", VM_ISO_NS_USER),
    ("pid_namespace", VM_ISO_NS_PID),
    ("mount_namespace", VM_ISO_NS_MOUNT),
    ("network_namespace", VM_ISO_NS_NET),
    ("ipc_namespace", VM_ISO_NS_IPC),
    ("uts_namespace", VM_ISO_NS_UTS),
    ("cgroup_namespace", VM_ISO_NS_CGROUP),
    ("uid_gid_map", VM_ISO_UID_MAP),
    ("empty_root", VM_ISO_PIVOT_ROOT),
    ("capabilities_dropped", VM_ISO_CAPS_DROPPED),
    ("no_new_privs", VM_ISO_NO_NEW_PRIVS),
    ("rlimits", VM_ISO_RLIMITS),
    ("rlimit_address_space", VM_ISO_RLIMIT_AS),
    ("parent_death_signal", VM_ISO_PDEATHSIG),
    ("lifetime_pipe", VM_ISO_LIFETIME_PIPE),
    ("seccomp", VM_ISO_SECCOMP),
    ("close_range", VM_ISO_CLOSE_RANGE),
    ("sealed_memfd_exec", VM_ISO_SEALED_EXEC),
    ("death_notification", VM_ISO_ROBUST_FUTEX),
)

# Spin budgets in pause instructions (about 30 ns each on current x86):
# the host spins holding the GIL (a hostcall round trip or a short call
# finishes well inside it), then releases the GIL and sleeps; the zygote
# spins after every answer so the next request finds it awake.  With one
# usable CPU spinning only delays the other side: both wait at once.
cdef uint32_t _host_spin = 0
cdef uint32_t _sandbox_spin = 0
cdef int _cpus = vm_host_cpu_count()
if _cpus >= 2:
    _host_spin = 1000
    _sandbox_spin = 4000


def cpu_count():
    return _cpus


def cpu_load(int cpu):
    """How many zygotes of this process are placed on ``cpu`` now."""
    return vm_host_cpu_load(cpu)


cdef const uint64_t *_cpu_set(cpus, uint64_t *words) except? NULL:
    """``cpus`` (None: every CPU) as VM_HOST_CPU_WORDS words of bits."""
    cdef int i
    if cpus is None:
        return NULL
    for i in range(VM_HOST_CPU_WORDS):
        words[i] = 0
    for cpu in cpus:
        if not 0 <= cpu < VM_HOST_CPU_WORDS * 64:
            raise ValueError(f"CPU {cpu} out of range")
        words[cpu // 64] |= (<uint64_t>1) << (cpu % 64)
    return words


def spin_settings():
    """``(host, sandbox)`` spin budgets in pause iterations."""
    return _host_spin, _sandbox_spin


def configure_spin(host=None, sandbox=None):
    """Tune the spin budgets (pause iterations); 0 waits at once.  The
    sandbox budget applies to zygotes started (or recycled) afterwards."""
    global _host_spin, _sandbox_spin
    if host is not None:
        _host_spin = host
    if sandbox is not None:
        _sandbox_spin = sandbox


cdef int _image_fd = -1
cdef int _my_pid = os.getpid()


def _after_fork_in_child():
    """Zygotes started before a fork belong to the parent: refuse to use them."""
    global _my_pid
    _my_pid = os.getpid()


os.register_at_fork(after_in_child=_after_fork_in_child)


def set_image(bytes elf):
    """Load the zygote executable into a sealed memfd (once per process)."""
    global _image_fd
    cdef char error[VM_HOST_ERROR_SIZE]
    if _image_fd >= 0:
        return
    fd = vm_host_image_create(<const char *>elf, len(elf), error)
    if fd < 0:
        raise SandboxError(error.decode(errors="replace"))
    _image_fd = fd


def have_image():
    return _image_fd >= 0


def test_image(bytes elf):
    """Tests only (vmcore.fuzz_hostile): another zygote executable in its
    own sealed memfd, for Zygote.start(image_fd=); never the default."""
    cdef char error[VM_HOST_ERROR_SIZE]
    fd = vm_host_image_create(<const char *>elf, len(elf), error)
    if fd < 0:
        raise SandboxError(error.decode(errors="replace"))
    return fd


def module_memory_pool():
    """(memfds, bytes of module) kept from freed native modules for the
    next compile to write over (module_memory.h)."""
    cdef int count
    cdef uint64_t size
    vm_module_memory_pooled(&count, &size)
    return count, size


def drain_module_memory():
    """Free the memory kept from freed native modules; how many memfds."""
    return vm_module_memory_drain()


cdef class SharedModule:
    """One program and configuration compiled by the host into a sealed
    memfd that sandboxes map read only (immutable): threaded code for the
    interpreter, or native x86-64 code (``native=True``) from the
    recompiler."""

    def __cinit__(self, int isa, const uint8_t[:] code, const uint8_t[:] bitmask, jump_table, bint gas_metering,
                  bint step_tracing=False, bint native=False, int gas_kind=VM_GAS_NAIVE,
                  int memory_access_cost=VM_GAS_CACHE_L2_HIT):
        cdef vm_module_config config
        cdef vm_x64_config x64_config
        cdef int x64_error = 0
        cdef uint32_t n = <uint32_t>code.shape[0]
        cdef uint32_t jt_count = len(jump_table)
        cdef uint32_t *targets
        cdef uint32_t i
        cdef const uint8_t *code_ptr = NULL
        cdef const uint8_t *bitmask_ptr = NULL
        cdef char error[VM_HOST_ERROR_SIZE]
        cdef int rc
        self.m.memory.fd = -1
        self.m.base = NULL
        self.gas_metering = gas_metering
        self.step_tracing = step_tracing
        self.native = native
        self.code_len = n
        self.is_64_bit = vm_isa_is_64_bit(isa)
        config.isa = isa
        config.gas_metering = gas_metering
        config.step_tracing = step_tracing
        set_gas_model(&config.gas, gas_kind, memory_access_cost, None, NULL)
        self.gas_kind = gas_kind
        self.memory_access_cost = memory_access_cost
        targets = jump_targets(jump_table)
        if n:
            code_ptr = &code[0]
            bitmask_ptr = &bitmask[0]
        t0 = time.perf_counter()
        if native:
            memset(&x64_config, 0, sizeof(x64_config))
            x64_config.isa = isa
            x64_config.gas_metering = gas_metering
            x64_config.step_tracing = step_tracing
            x64_config.interruptible = True  # deadlines work without metering too
            x64_config.gas = config.gas
            with nogil:
                rc = vm_host_x64_build(&self.m, &x64_config, code_ptr, n, bitmask_ptr, targets, jt_count,
                                       &x64_error, error)
        else:
            with nogil:
                rc = vm_host_module_build(&self.m, &config, code_ptr, n, bitmask_ptr, targets, jt_count, error)
        self.compile_seconds = time.perf_counter() - t0
        free(targets)
        if rc != 0:
            if x64_error:
                raise SandboxError(f"the recompiler failed: {COMPILE_ERRORS.get(x64_error, x64_error)}")
            raise SandboxError(error.decode(errors="replace"))

    def __dealloc__(self):
        vm_host_module_free(&self.m)

    cdef const uint8_t *native_code_view(self):
        """The generated code as mapped here (NULL for an interpreter module)."""
        if not self.native or self.m.base == NULL:
            return NULL
        cdef const vm_shm_module *h = <const vm_shm_module *>self.m.base
        return <const uint8_t *>self.m.base + h.native_offset

    @property
    def size(self):
        return self.m.size

    def block_costs(self):
        """[(pc, cost)] of every block's gas charge in the module as the
        sandbox maps it (threaded code records, or read back from the
        native code); [] without metering."""
        return block_cost_list(self, _shared_block_costs)

    @property
    def instruction_records(self):
        return self.m.x64.map_count if self.native else self.m.module.insn_count

    @property
    def memfd(self):
        """The module's memfd (for inspection: its first ``size`` bytes are
        the module; do not close it), or -1."""
        return self.m.memory.fd

    @property
    def memory_bytes(self):
        """Memory the module's pages take (the memfd's allocated blocks;
        holes such as the gap between two halves cost nothing)."""
        import os
        return os.fstat(self.m.memory.fd).st_blocks * 512 if self.m.memory.fd >= 0 else 0

    @property
    def native_code_size(self):
        return self.m.x64.code_size if self.native else 0

    @property
    def native_code(self):
        """The generated code as the sandbox maps it (bytes; b"" for an
        interpreter module; the gap between two halves as zeros)."""
        if not self.native:
            return b""
        cdef const vm_shm_module *h = <const vm_shm_module *>self.m.base
        cdef const char *code = <const char *>self.m.base + h.native_offset
        cdef uint32_t gap = self.m.x64.gap_start, gap_end = self.m.x64.gap_end
        # the gap between two halves reads as zeros without touching it (a
        # read would give the memfd pages there)
        return (PyBytes_FromStringAndSize(code, gap) + bytes(gap_end - gap) +
                PyBytes_FromStringAndSize(code + gap_end, self.m.x64.code_size - gap_end))


cdef uint32_t _shared_block_costs(object module, uint32_t *pcs, uint32_t *costs, uint32_t capacity):
    cdef SharedModule m = <SharedModule>module
    if m.native:
        return vm_x64_block_costs(m.m.x64, &m.m.map, m.native_code_view(), pcs, costs, capacity)
    return vm_module_block_costs(&m.m.module, pcs, costs, capacity)


cdef class Zygote:
    """One started, confined sandbox process with its VmCtx and guest
    memory mapped here.  Program-agnostic: pools keep these."""

    def __cinit__(self):
        self.z.pid = -1
        self.z.pidfd = -1
        self.z.ctx = NULL
        self.z.reaped = 1
        self.started = False

    def start(self, uint32_t flags=0, bint namespaces=True, double timeout=10.0, int avoid_cpu=-2, int image_fd=-1):
        """Spawn and wait until it is confined and idle (SandboxError if it
        cannot start).  It is placed as :meth:`place` does (the
        least-loaded CPU, preferring one other than ``avoid_cpu``, default
        the calling thread's) when there are two or more."""
        cdef vm_host_spawn_options o
        cdef char error[VM_HOST_ERROR_SIZE]
        cdef int rc
        if self.started:
            raise RuntimeError("already started")
        if _image_fd < 0 and image_fd < 0:
            raise SandboxError("the zygote image is not loaded")
        if avoid_cpu == -2:
            avoid_cpu = vm_host_current_cpu()
        o.image_fd = image_fd if image_fd >= 0 else _image_fd
        o.flags = flags
        o.spin_iterations = _sandbox_spin
        o.cpu = vm_host_cpu_reserve(NULL, avoid_cpu)
        o.namespaces = namespaces
        o.start_timeout = timeout
        self.flags = flags
        with nogil:
            rc = vm_host_spawn(&self.z, &o, error)  # owns o.cpu's reservation from here
        if rc != 0:
            raise SandboxError(error.decode(errors="replace"))
        self.started = True

    def place(self, cpus=None, int avoid_cpu=-2):
        """Pin it to the CPU (of ``cpus``, default: every CPU this process
        may use) with the fewest placed zygotes, preferring one other than
        ``avoid_cpu`` (default: the calling thread's); the CPU, or -1 when
        every CPU is allowed and there is only one (left unpinned)."""
        cdef uint64_t allowed[VM_HOST_CPU_WORDS]
        cdef int rc
        if avoid_cpu == -2:
            avoid_cpu = vm_host_current_cpu()
        rc = vm_host_place(&self.z, _cpu_set(cpus, allowed), avoid_cpu)
        if rc < 0 and (cpus is not None or vm_host_cpu_count() >= 2):
            raise SandboxError("cannot pin the sandbox process (sched_setaffinity)")
        return rc

    def unpin(self, cpus=None):
        """No pinning: free to run on every CPU of ``cpus`` (default: all)."""
        cdef uint64_t allowed[VM_HOST_CPU_WORDS]
        if vm_host_unpin(&self.z, _cpu_set(cpus, allowed)) != 0:
            raise SandboxError("cannot unpin the sandbox process (sched_setaffinity)")

    def unplace(self):
        """Off its CPU's count (idle in a pool): keeps its affinity."""
        vm_host_unplace(&self.z)

    def release(self):
        """Kill, reap and unmap (idempotent)."""
        if self.z.ctx != NULL or self.z.pidfd >= 0:
            with nogil:
                vm_host_release(&self.z)
        self.module = None

    def forget(self):
        """Drop this process's view without touching the zygote (after fork)."""
        vm_host_forget(&self.z)
        self.module = None

    def __dealloc__(self):
        if self.z.ctx != NULL or self.z.pidfd >= 0:
            vm_host_release(&self.z)

    @property
    def pid(self):
        return self.z.pid if self.z.ctx != NULL else None

    @property
    def owned(self):
        """Started by this process (False in a forked child)."""
        return self.z.owner_pid == _my_pid

    @property
    def cpu(self):
        return self.z.cpu

    @property
    def isolation(self):
        """VM_ISO_* as the process reported them at start-up, before any
        guest code ran (the live word is the sandbox's to write)."""
        return self.z.isolation if self.z.ctx != NULL else 0

    def alive(self):
        return self.z.ctx != NULL and vm_host_alive(&self.z) != 0

    def idle(self):
        """Alive and waiting for work (safe to hand to a new sandbox)."""
        if self.z.ctx == NULL:
            return False
        return (vm_host_futex(self.z.ctx) & VMCTX_FUTEX_IDLE) != 0 and vm_host_alive(&self.z) != 0

    def kill(self, int sig=9):
        """Send a signal (tests: SIGKILL during a call)."""
        return vm_host_signal(&self.z, sig)

    def refresh(self):
        """Pick up the current spin budget."""
        if self.z.ctx != NULL:
            vm_host_set_spin_iterations(self.z.ctx, _sandbox_spin)


cdef int _punch(void *z, uint64_t offset, uint64_t length) noexcept nogil:
    return vm_host_punch(<vm_host_zygote *>z, offset, length)


cdef class Process(Guest):
    """One sandbox's guest in a zygote: a Guest over the shared VmCtx and
    guest memory.  When the zygote dies the instance raises SandboxError
    (or, with a restart hook, gets a fresh zygote).  Whether the guest can
    be resumed (a pc was set and it has not finished or trapped since) is
    kept here, not as VM_INDEX_NONE in the VmCtx: every host store to the
    handshake line costs a cache-line transfer while the zygote spins on
    it.  The heap as configured / last validated and the highest gas the
    guest can have now (metered gas only goes down) are what the host
    knows independently of the VmCtx (the sandbox can write every word)."""
    def __cinit__(self, Zygote zygote, SharedModule module, uint32_t page_size):
        self.page_size_ = page_size
        self.page_shift = 0
        while (1u << self.page_shift) < page_size:
            self.page_shift += 1
        self.module = module
        self.attach(zygote)

    def attach(self, Zygote zygote):
        """Take over a started zygote (fresh or recycled)."""
        self.zy = zygote
        self.ctx = zygote.z.ctx
        self.discard_fn = _punch
        self.discard_context = &zygote.z
        self.mem.base = zygote.z.window
        self.mem.perms = zygote.z.perms
        self.mem.page_shift = self.page_shift
        self.mem.page_size = self.page_size_
        # A recycled process starts as a new one: nothing of the last
        # tenant's (or of what the sandbox wrote) in the context or counters.
        vm_ctx_fresh(self.ctx)
        zygote.z.wait_loop_start = zygote.z.futex_wait = zygote.z.repin = 0
        self.ctx.page_size = self.page_size_
        self.resumable = False
        memset(&self.heap_, 0, sizeof(self.heap_))
        self.gas_ceiling = 0
        vm_host_set_interrupt(self.ctx, 0)
        vm_host_set_spin_iterations(self.ctx, _sandbox_spin)
        self.death = None
        self.hostcall_error = None

    def detach(self):
        """Give the zygote back (None if it is gone); the instance is closed."""
        z, self.zy = self.zy, None
        self.ctx = NULL
        self.mem.base = NULL
        self.mem.perms = NULL
        self.closed = True
        return z

    @property
    def zygote(self):
        return self.zy

    def ctx_address(self):
        """Tests only: where the VmCtx is mapped here (0 when detached)."""
        return <size_t>self.ctx

    # -- liveness ---------------------------------------------------------
    cdef int _ensure(self) except -1:
        if self.zy is not None:
            if not vm_host_dead(self.ctx):
                if self.zy.z.owner_pid != _my_pid:
                    raise SandboxError("this sandbox's process belongs to the parent process (the sandbox was "
                                       "created before a fork); create a new Sandbox in this process")
                return 0
            self._bury(VMCTX_FUTEX_BUSY)  # died while idle
        if self.closed:
            raise SandboxError("the sandbox is closed")
        if self.restart is not None and not self.in_call:  # never under a running call
            self.restart()
            if self.zy is not None:
                return 0
        raise SandboxError(f"{self.death}; the sandbox is closed (create a new one, or pass auto_restart=True "
                           "to replace a dead sandbox process automatically)")

    cdef object _bury(self, uint32_t state):
        """The zygote died (or reported a fatal signal): reap it, release
        its resources, keep why; returns (description, sandbox message)."""
        cdef Zygote z = self.zy
        cdef char how[128]
        cdef uint32_t n = self.ctx.message_length
        if n > VMCTX_MESSAGE_BUFFER_SIZE:
            n = VMCTX_MESSAGE_BUFFER_SIZE
        message = self.ctx.message_buffer[:n].decode("utf-8", "replace")
        pid = z.z.pid
        # Kill before reaping, always: whatever the context says (the
        # robust-futex word, the futex state) is the sandbox's to write; a
        # live process that claims to be dead must not block the reap.
        vm_host_signal(&z.z, 9)
        with nogil:
            vm_host_reap(&z.z)
        vm_host_describe_exit(&z.z, how, sizeof(how))
        description = f"the sandbox process (pid {pid}) {how.decode()}"
        self.death = description + (f": {message}" if message else "")
        self.running = False
        z.release()
        self.zy = None
        self.ctx = NULL
        self.mem.base = NULL
        self.mem.perms = NULL
        return description, message

    cdef int _died(self, uint32_t state, int why=VM_HOST_WAIT_DIED) except -1:
        description, message = self._bury(state)
        if self.closed:
            raise SandboxError("the sandbox was closed during the call")
        if why == VM_HOST_WAIT_UNRESPONSIVE:
            description = (f"the sandbox process did not stop within {VM_HOST_INTERRUPT_GRACE * 1e3:g} ms of being "
                           f"interrupted and was killed ({description})")
        elif why == VM_HOST_WAIT_STOPPED:
            description = f"the sandbox process was stopped (SIGSTOP?) and stopped answering; it was killed ({description})"
        raise SandboxError(description, pc=None, sandbox_message=message)

    cdef int _anomaly(self, what) except -1:
        """The sandbox handed back a value it cannot legitimately produce:
        it is treated as compromised, killed and never reused."""
        if self.zy is None:
            raise SandboxError("the sandbox is closed")
        description, message = self._bury(VMCTX_FUTEX_BUSY)
        self.death = f"{description} after sending back {what} (treated as compromised)"
        raise SandboxError(f"the sandbox process sent back {what}; it was killed and will not be reused "
                           f"({description})", sandbox_message=message)

    cdef int _check_answer(self, uint32_t v) except -1:
        """Range checks on what an answer carries on the handshake line
        (one cache line, already here)."""
        cdef uint32_t pc = vm_host_pc(self.ctx)
        if pc > self.module.code_len:
            self._anomaly(f"a program counter past the code ({pc})")
        if v == VMCTX_FUTEX_GUEST_ECALLI:
            if vm_host_next_pc(self.ctx) > self.module.code_len:
                self._anomaly(f"a next program counter past the code ({vm_host_next_pc(self.ctx)})")
        elif v == VMCTX_FUTEX_GUEST_PAGEFAULT:
            if vm_host_arg(self.ctx) & (self.page_size_ - 1):
                self._anomaly(f"a page-fault address that is not a page ({vm_host_arg(self.ctx):#x})")
        elif v != VMCTX_FUTEX_GUEST_TRAP and v != VMCTX_FUTEX_GUEST_STEP and \
                v != VMCTX_FUTEX_GUEST_NOT_ENOUGH_GAS and v != VMCTX_FUTEX_IDLE:
            self._anomaly(f"an unknown futex state ({v:#x})")
        return 0

    cdef int64_t _gas(self) except? -1:
        """vmctx.gas, checked: with metering it can only have gone down
        since the host last set or read it."""
        cdef int64_t g = vm_host_get_gas(self.ctx)
        if self.module.gas_metering:
            if g > self.gas_ceiling:
                self._anomaly(f"more gas than it was given ({g} > {self.gas_ceiling})")
            self.gas_ceiling = g
        return g

    cdef int _heap_load(self, vm_state *s) except -1:
        """The registers and heap from the context; the heap's base,
        maximum and growth step are the host's own, its top and mapped end
        are checked against them (they only grow, up to the maximum)."""
        cdef uint64_t limit
        vm_host_state_load(self.ctx, s)
        s.heap.base = self.heap_.base
        s.heap.max_top = self.heap_.max_top
        s.heap.grow_pages = self.heap_.grow_pages
        limit = (<uint64_t>self.heap_.max_top + self.page_size_ - 1) & ~(<uint64_t>self.page_size_ - 1)
        if limit < self.heap_.mapped_end:
            limit = self.heap_.mapped_end
        if not (self.heap_.top <= s.heap.top <= self.heap_.max_top and s.heap.top <= s.heap.mapped_end
                and self.heap_.mapped_end <= s.heap.mapped_end <= limit):
            self._anomaly(f"an impossible heap (top {s.heap.top:#x}, mapped to {s.heap.mapped_end:#x}; the host "
                          f"knows top {self.heap_.top:#x}, mapped {self.heap_.mapped_end:#x}, max {self.heap_.max_top:#x})")
        self.heap_.top = s.heap.top
        self.heap_.mapped_end = s.heap.mapped_end
        return 0

    def abort(self):
        """Close while a call is in progress (another thread, or a hostcall):
        kill the process; the calling thread notices, releases the zygote's
        resources and raises SandboxError."""
        self.closed = True
        self.restart = None
        if self.zy is not None:
            vm_host_signal(&self.zy.z, 9)

    @property
    def alive(self):
        return self.zy is not None and self.zy.alive()

    @property
    def pid(self):
        return self.zy.pid if self.zy is not None else None

    @property
    def isolation(self):
        return self.zy.isolation if self.zy is not None else 0

    def counters(self):
        if self.zy is None or self.ctx == NULL:
            return {}
        return {
            "syscall_wait_loop_start": vm_host_counter_wait_loop_start(self.ctx),
            "syscall_futex_wait": vm_host_counter_futex_wait(self.ctx),
            "host_wait_loop_start": self.zy.z.wait_loop_start,
            "host_futex_wait": self.zy.z.futex_wait,
            "host_repin": self.zy.z.repin,
        }

    # -- execution ------------------------------------------------------
    def set_module(self, SharedModule module):
        if self.in_call:
            raise SandboxBusy("cannot switch the sandbox's code while a call is in progress")
        self.module = module
        self.resumable = False

    cdef int _set_pc(self, uint32_t pc) except? -3:
        cdef vm_state s
        cdef int rc
        cdef uint64_t native = 0
        cdef int64_t gas
        # The host validates the entry and charges its gas on its own copy
        # of the module; where the code resumes (native address, threaded
        # code index) the sandbox computes itself from the pc and the module
        # it has mapped: the request says only "enter at program_counter"
        # (vmctx.enter 1, written by _start next to the futex so that both
        # stores take the handshake line once / jump_into VM_INDEX_NONE).
        if self.module.native:
            gas = self._gas()
            rc = vm_x64_enter(self.module.m.x64, &self.module.m.map, self.module.native_code_view(), pc, &gas,
                              &native)
            vm_host_set_pc(self.ctx, pc)
            if rc == VM_ENTRY_OK:
                vm_host_set_gas(self.ctx, gas)
                self.gas_ceiling = gas
                self.entering = True
                self.resumable = True
            return rc
        s.gas = self._gas()
        rc = vm_state_set_pc(&s, &self.module.m.module, pc)
        vm_host_set_pc(self.ctx, pc)
        if rc == VM_ENTRY_OK:
            vm_host_set_gas(self.ctx, s.gas)
            self.gas_ceiling = s.gas
            vm_host_set_resume_index(self.ctx, VM_INDEX_NONE)
            self.resumable = True
        return rc

    cdef bint _gone(self):
        return self.ctx == NULL

    cdef bint _resumable(self):
        return self.ctx != NULL and self.resumable

    cdef int _step(self) except -1:
        """One handshake: hand the context over, wait for the answer."""
        self._start()
        return self._exit_code(self._wait())

    cdef bint _is64(self):
        return self.module is None or self.module.is_64_bit

    cdef uint64_t _get_reg(self, int i):
        return vm_host_get_reg(self.ctx, i)

    cdef void _set_reg(self, int i, uint64_t v):
        vm_host_set_reg(self.ctx, i, v)

    cdef uint32_t _hostcall_number(self):
        return vm_host_arg(self.ctx)

    cdef int _charge(self, int64_t cost) except -1:
        cdef int64_t left = self._gas()  # the gas line: only functions with a cost pay for it
        if left < cost:
            return 0
        vm_host_set_gas(self.ctx, left - cost)
        self.gas_ceiling = left - cost
        return 1

    cdef int _start(self) except -1:
        """Hand the context to the zygote, after making sure it has our
        module and runs on another CPU than this thread (checked at every
        hand-over: the scheduler may move this thread at any time, and
        sched_getcpu() is a read of the rseq area)."""
        cdef Zygote z = self.zy
        cdef int cpu
        if z.module is not self.module:
            if vm_host_send_module(&z.z, &self.module.m) != 0:
                raise SandboxError("cannot pass the module to the sandbox process")
            z.module = self.module
        if z.z.placed:
            cpu = vm_host_current_cpu()
            if cpu == z.z.cpu:
                # Both on one core: spinning would only burn each other's
                # time slices.  Move the zygote, unless that would stack it
                # on another sandbox's CPU.
                vm_host_move_off(&z.z, cpu)
        self.running = True
        if self.module.native:  # each hand-over says whether it enters or resumes
            vm_host_set_enter(self.ctx, self.entering)
            self.entering = False
        vm_host_resume(self.ctx)
        return 0

    cdef uint32_t _wait(self) except 0xffffffff:
        """Wait for the zygote to hand the context back; its futex state."""
        cdef uint32_t v
        cdef int rc = 0
        cdef vm_host_zygote *zp = &self.zy.z
        zp.wait_loop_start += 1
        v = vm_host_spin(self.ctx, _host_spin)
        if v == VMCTX_FUTEX_BUSY:
            if _in_main_thread():
                rc = self._wait_interruptible(&v)
            else:
                with nogil:
                    rc = vm_host_wait(zp, 0, &v)
        if rc != 0:
            self._died(VMCTX_FUTEX_BUSY, rc)
        if v == VMCTX_FUTEX_GUEST_SIGNAL:
            self._died(v)
        self.running = False
        self._check_answer(v)
        return v

    # -- Ctrl-C (vmcore/sigint.h) -------------------------------------------
    cdef int _wait_interruptible(self, uint32_t *v) except? -5:
        """vm_host_wait in the main thread: on a SIGINT run Python's
        handlers; if they raise (KeyboardInterrupt), stop the guest, wait
        for its answer (a sandbox that does not answer within the grace is
        killed and the sandbox closed) and re-raise; else wait on."""
        cdef int rc, armed
        cdef vm_host_zygote *zp = &self.zy.z
        while True:
            armed = vm_sigint_arm(NULL, &self.ctx.futex)
            with nogil:
                rc = vm_host_wait(zp, 0, v)
            if armed:
                vm_sigint_disarm()
            vm_sigint_take()
            if rc != VM_HOST_WAIT_SIGINT:
                return rc
            try:
                PyErr_CheckSignals()
            except BaseException:
                self._stop_after_signal()
                raise

    cdef int _stop_after_signal(self) except -1:
        """Stop the running guest and take its answer, keeping the
        exception being raised (a dead sandbox is closed, not reported)."""
        cdef int rc
        cdef uint32_t v = VMCTX_FUTEX_BUSY
        cdef vm_host_zygote *zp = &self.zy.z
        self.interrupt()
        with nogil:
            rc = vm_host_wait(zp, 0, &v)
        try:
            if rc != 0 or v == VMCTX_FUTEX_GUEST_SIGNAL:
                self._died(v if rc == 0 else VMCTX_FUTEX_BUSY, rc if rc != 0 else VM_HOST_WAIT_DIED)
            self.running = False
            self._check_answer(v)
            self._exit_code(v)
        except SandboxError:
            pass
        if self.ctx != NULL:
            vm_host_set_interrupt(self.ctx, 0)
        self.running = False
        return 0

    cdef int _exit_code(self, uint32_t v) except? -1:
        if v == VMCTX_FUTEX_GUEST_ECALLI:
            return VM_EXIT_ECALLI
        self._gas()  # off the hostcall path: the gas line costs a transfer
        if v == VMCTX_FUTEX_GUEST_TRAP:
            self.resumable = False
            why = vm_host_arg(self.ctx)
            if not VM_TRAP_INSTRUCTION <= why < VM_TRAP_REASON_LIMIT:
                self._anomaly(f"a trap reason out of range ({why})")
            return VM_EXIT_TRAP
        if v == VMCTX_FUTEX_GUEST_NOT_ENOUGH_GAS:
            return VM_EXIT_OUT_OF_GAS
        if v == VMCTX_FUTEX_GUEST_PAGEFAULT:
            return VM_EXIT_PAGEFAULT
        if v == VMCTX_FUTEX_GUEST_STEP:
            return VM_EXIT_STEP
        v = vm_host_exit_reason(self.ctx)
        if v == VM_EXIT_FINISHED:
            self.resumable = False
        elif v != VM_EXIT_INTERRUPTED:
            # Not an answer the zygote gives with IDLE: its context is not
            # to be trusted any more.
            self.resumable = False
            vm_host_signal(&self.zy.z, 9)
            self._died(VMCTX_FUTEX_BUSY)
        return <int>v

    def interrupt(self):
        """Ask a running guest to stop at its next block (any thread)."""
        if self.zy is not None:
            vm_host_set_interrupt(self.ctx, 1)
            vm_host_signal(&self.zy.z, 10)  # SIGUSR1: the zygote re-reads the flag
            # Wake the calling thread's wait too: it then watches for the
            # answer and kills a sandbox that does not give one.
            vm_host_wake(self.ctx)

    def clear_interrupt(self):
        if self.ctx != NULL:
            vm_host_set_interrupt(self.ctx, 0)

    cdef uint32_t _position(self, int which) except? 0xffffffff:
        self._ensure()
        return vm_host_pc(self.ctx) if which == 0 else vm_host_next_pc(self.ctx) if which == 1 else vm_host_arg(self.ctx)

    @property
    def gas(self):
        self._ensure()
        if self.running:
            raise SandboxBusy("the gas cannot be read while the guest is running")
        return self._gas()

    @gas.setter
    def gas(self, int64_t value):
        self._ensure()
        if self.running:
            raise SandboxBusy("the gas cannot be set while the guest is running")
        vm_host_set_gas(self.ctx, value)
        self.gas_ceiling = value

    # -- heap -----------------------------------------------------------
    def configure_heap(self, uint32_t base, uint32_t top, uint32_t mapped_end, uint32_t max_top,
                       uint32_t grow_pages):
        cdef vm_state s
        self._ensure()
        if self.in_call:
            raise SandboxBusy("the heap cannot be reconfigured while a call is in progress")
        vm_host_state_load(self.ctx, &s)
        s.heap.base = base
        s.heap.top = top
        s.heap.mapped_end = mapped_end
        s.heap.max_top = max_top
        s.heap.grow_pages = grow_pages
        self.heap_ = s.heap
        vm_host_state_store(self.ctx, &s)

    def heap_state(self):
        cdef vm_state s
        self._ensure()
        if self.running:
            raise SandboxBusy("the heap cannot be read while the guest is running")
        self._heap_load(&s)
        return (s.heap.base, s.heap.top, s.heap.mapped_end, s.heap.max_top)

    def sbrk(self, uint32_t size):
        cdef vm_state s
        cdef uint32_t r, first
        self._ensure()
        if self.running:
            raise SandboxBusy("the heap cannot be changed while the guest is running")
        self._heap_load(&s)
        first = s.heap.mapped_end >> self.page_shift
        r = vm_heap_sbrk(&s, &self.mem, size)
        self.heap_ = s.heap
        vm_host_perms_changed(self.ctx, first, s.heap.mapped_end >> self.page_shift)
        vm_host_state_store(self.ctx, &s)
        return r

    def restore_position(self, uint32_t pc, uint32_t next_pc, uint32_t arg, resume_index):
        """Where a snapshot's guest stopped (between calls: nothing to
        resume; a sandbox process resumes only where the host set the pc)."""
        self._ensure()
        if self.in_call:
            raise SandboxBusy("cannot move the program counter while a call is in progress")
        vm_host_set_pc(self.ctx, pc)
        self.resumable = False

    # -- memory ---------------------------------------------------------
    def set_perms(self, uint32_t address, uint64_t length, uint8_t perm):
        cdef uint64_t start, end
        self._ensure()
        if length == 0:
            return
        if self.exports:
            raise BufferError(_EXPORTED)
        vm_memory_set_perms(&self.mem, address, length, perm)
        self._note_granted(address, length, perm)
        vm_page_span(&self.mem, address, length, &start, &end)
        vm_host_perms_changed(self.ctx, <uint32_t>(start >> self.page_shift), <uint32_t>(end >> self.page_shift))

    def scrub(self, spans):
        """Recycle: zero and make inaccessible every (address, length) span
        (vmcore/scrub.h, the implementation the inline engine uses too;
        large spans are punched out of the memfd), the state back to a new
        instance's and the VmCtx back to a new process's (vm_ctx_fresh).
        Never under a running call."""
        cdef uint32_t lo, hi
        cdef vm_state st
        cdef int rc
        if self.exports:
            raise BufferError(_EXPORTED)
        rc = self._scrub_spans(spans, &lo, &hi)
        vm_host_perms_changed(self.ctx, lo, hi)
        vm_state_fresh(&st)
        vm_host_state_store(self.ctx, &st)
        vm_ctx_fresh(self.ctx)
        self.zy.z.wait_loop_start = self.zy.z.futex_wait = self.zy.z.repin = 0
        memset(&self.heap_, 0, sizeof(self.heap_))
        self.gas_ceiling = 0
        self.resumable = False
        if rc != 0:
            raise SandboxError("a span to scrub lies outside the address space")
