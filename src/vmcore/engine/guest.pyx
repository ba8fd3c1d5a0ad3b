# Included by vmcore/_engine.pyx.  What every engine's guest shares, written
# once: calls (arguments into registers per the calling convention), the
# hostcall loop, registers, bounds-checked guest memory access and scrub.
# The engine-specific step (run the interpreter; one futex handshake with
# the zygote) is a cdef method of Instance / Process, reached through the
# AnyGuest fused type: both classes are final, so those are direct C calls.

# Spans up to this size are zeroed in place when recycling (no syscalls, no
# page faults on reuse); larger ones are handed back to the kernel.
DEF SCRUB_MEMSET_LIMIT = 256 * 1024

cdef object _NONE = None


cdef vm_guest_span *_spans(spans, size_t *count) except NULL:
    """A malloc'd vm_guest_span array of ``spans`` ((address, length) pairs)."""
    cdef size_t i = 0, n = len(spans)
    cdef vm_guest_span *v = <vm_guest_span *>malloc((n + 1) * sizeof(vm_guest_span))
    if v == NULL:
        raise MemoryError()
    for address, length in spans:
        v[i].address = address
        v[i].length = length
        i += 1
    count[0] = n
    return v


cdef inline uint64_t _to_reg(object value, uint64_t mask) except? 0:
    """A Python int as a register value (mask: the program's register width;
    see vm_reg_from_host)."""
    return vm_reg_from_host(mask != 0xffffffff, <uint64_t>(value & mask))


cdef int _bad_arg(Py_ssize_t i, object value) except -1:
    """A call argument that is not an int: say which one (bools are ints)."""
    raise TypeError(f"call argument {i + 1} ({ARG_NAMES[i]}) must be an int, got {type(value).__name__}: "
                    f"{value!r:.40}")


cdef inline object _hostcall(AnyGuest g, object fn, int nargs, object caller, uint64_t mask):
    """fn(caller, a0, ..., a<nargs-1>), the arguments masked to the register width."""
    if nargs == 0:
        return fn(caller)
    if nargs == 1:
        return fn(caller, g._get_reg(vm_abi_arg_regs[0]) & mask)
    if nargs == 2:
        return fn(caller, g._get_reg(vm_abi_arg_regs[0]) & mask, g._get_reg(vm_abi_arg_regs[1]) & mask)
    if nargs == 3:
        return fn(caller, g._get_reg(vm_abi_arg_regs[0]) & mask, g._get_reg(vm_abi_arg_regs[1]) & mask,
                  g._get_reg(vm_abi_arg_regs[2]) & mask)
    if nargs == 4:
        return fn(caller, g._get_reg(vm_abi_arg_regs[0]) & mask, g._get_reg(vm_abi_arg_regs[1]) & mask,
                  g._get_reg(vm_abi_arg_regs[2]) & mask, g._get_reg(vm_abi_arg_regs[3]) & mask)
    if nargs == 5:
        return fn(caller, g._get_reg(vm_abi_arg_regs[0]) & mask, g._get_reg(vm_abi_arg_regs[1]) & mask,
                  g._get_reg(vm_abi_arg_regs[2]) & mask, g._get_reg(vm_abi_arg_regs[3]) & mask,
                  g._get_reg(vm_abi_arg_regs[4]) & mask)
    return fn(caller, g._get_reg(vm_abi_arg_regs[0]) & mask, g._get_reg(vm_abi_arg_regs[1]) & mask,
              g._get_reg(vm_abi_arg_regs[2]) & mask, g._get_reg(vm_abi_arg_regs[3]) & mask,
              g._get_reg(vm_abi_arg_regs[4]) & mask, g._get_reg(vm_abi_arg_regs[5]) & mask)


cdef int _set_results(AnyGuest g, object result, uint64_t mask) except -1:
    """A hostcall's return value into a0, a1, ...: None (registers
    untouched), an int, or a tuple of up to VM_HOSTCALL_RETURN_COUNT ints."""
    cdef Py_ssize_t n, i
    if isinstance(result, tuple):
        n = len(<tuple>result)
        if 0 < n <= VM_HOSTCALL_RETURN_COUNT:
            for i in range(n):
                if not isinstance((<tuple>result)[i], int):
                    break
            else:
                for i in range(n):
                    g._set_reg(vm_abi_arg_regs[i], _to_reg((<tuple>result)[i], mask))
                return 0
    raise TypeError(f"a hostcall must return None, an int or a tuple of 1 to {VM_HOSTCALL_RETURN_COUNT} ints "
                    f"(a0, a1, ...), got {result!r:.80}")


cdef int _serve(AnyGuest g, list handlers, object caller, uint64_t mask) except -1:
    """Run, answering each ecalli from ``handlers[number] = (fn, nargs)``
    or ``(fn, nargs, gas)`` without leaving Cython between guest and hostcall.  Returns the
    exit code when the guest stops for another reason, EXIT_ECALLI when it
    calls an import with no handler, EXIT_HOSTCALL_ERROR when a hostcall
    raised (the exception is kept on the guest), EXIT_HOSTCALL_OUT_OF_GAS
    when its gas cost (charged first) is more than is left."""
    cdef int reason
    cdef uint32_t n
    cdef Py_ssize_t count = len(handlers)
    cdef int nargs
    while True:
        reason = g._step()
        if reason != VM_EXIT_ECALLI:
            return reason
        n = g._hostcall_number()
        if n >= count:
            return reason
        entry = handlers[n]
        if entry is _NONE:
            return reason
        # (fn, nargs), or (fn, nargs, gas) for a function that costs gas:
        # the free ones pay nothing for the feature
        if len(<tuple>entry) == 2:
            fn, nargs = <tuple>entry
        else:
            fn, nargs, cost = <tuple>entry
            if not g._charge(cost):
                return VM_EXIT_HOSTCALL_OUT_OF_GAS
        try:
            result = _hostcall(g, fn, nargs, caller, mask)
            if g._gone():
                # the sandbox died (or was closed and cleaned up) under the hostcall
                g._ensure()
                raise SandboxError("the sandbox is gone")
            if result is _NONE:
                continue
            if isinstance(result, int):
                g._set_reg(VM_REG_A0, _to_reg(result, mask))
            else:
                _set_results(g, result, mask)
        except BaseException as e:
            if isinstance(e, (KeyboardInterrupt, SystemExit)) or g._gone():
                raise
            g.hostcall_error = e
            return VM_EXIT_HOSTCALL_ERROR


cdef object _resume(AnyGuest g, list handlers, object caller, uint64_t mask, bint serve):
    """Resume a prepared guest: one run (serve False) or serving hostcalls."""
    if g.in_call:
        return VM_EXIT_BUSY
    g._ensure()
    if not g._resumable():
        raise SandboxError("no program counter set: prepare a call first")
    g.in_call = True
    try:
        if serve:
            return _serve(g, handlers, caller, mask)
        return g._step()
    finally:
        g.in_call = False
        g.running = False


cdef object _call(AnyGuest g, uint32_t pc, tuple args, uint64_t sp, list handlers, object caller,
                  uint64_t mask):
    """The whole host-to-guest call in one step: registers per the calling
    convention, entry, hostcalls.  Returns a0 & mask when the guest returned,
    else None with the exit code in g.last_exit (negative: bad entry)."""
    cdef Py_ssize_t nargs = len(args)
    cdef Py_ssize_t i
    cdef int rc
    cdef int reason
    if g.in_call:
        g.last_exit = VM_EXIT_BUSY
        return None
    if nargs > VM_ARG_REG_COUNT:
        raise TypeError(f"at most {VM_ARG_REG_COUNT} arguments fit in registers, got {nargs}")
    g._ensure()
    for i in range(nargs):
        if not isinstance(args[i], int):
            _bad_arg(i, args[i])
        g._set_reg(vm_abi_arg_regs[i], _to_reg(args[i], mask))
    g._set_reg(VM_REG_RA, VM_ADDR_RETURN_TO_HOST)
    g._set_reg(VM_REG_SP, sp)
    rc = g._set_pc(pc)
    if rc != 0:
        g.last_exit = rc
        return None
    g.in_call = True
    try:
        reason = _serve(g, handlers, caller, mask)
    finally:
        g.in_call = False
        g.running = False
    if reason == VM_EXIT_FINISHED and g.abandoned:
        reason = VM_EXIT_INTERRUPTED
    g.last_exit = reason
    if reason == VM_EXIT_FINISHED:
        return g._get_reg(VM_REG_A0) & mask
    return None


cdef class Guest:
    """A guest program's registers, memory and call state; Instance (the
    inline interpreter) and Process (a zygote) are the engines.  No policy:
    vmcore.sandbox decides what to map, when to stop and how to report it."""

    def __cinit__(self, *args, **kwargs):
        if type(self) is Guest:
            raise TypeError("Guest is the engines' common base: create an Instance or a Process")

    # -- the engine-specific part (Instance and Process override all of it)
    cdef int _ensure(self) except -1:
        return 0

    cdef bint _gone(self):
        return False

    cdef bint _resumable(self):
        return False

    cdef int _set_pc(self, uint32_t pc) except? -3:
        return VM_ENTRY_NOT_AN_INSTRUCTION

    cdef int _step(self) except -1:
        return VM_EXIT_TRAP

    cdef bint _is64(self):
        return True

    cdef uint64_t _get_reg(self, int i):
        return 0

    cdef void _set_reg(self, int i, uint64_t v):
        pass

    cdef uint32_t _hostcall_number(self):
        return 0

    cdef int _charge(self, int64_t cost) except -1:
        """Take a hostcall's cost from the gas: 1, or 0 (gas unchanged)
        when less is left."""
        return 0

    cdef uint32_t _position(self, int which) except? 0xffffffff:
        """Where the guest stopped: 0 its pc, 1 the pc it resumes at, 2 the
        last exit's argument (hostcall number, fault address, trap reason)."""
        return 0

    # (one line each: the three differ only in which word they read)
    @property
    def pc(self): return self._position(0)
    @property
    def next_pc(self): return self._position(1)
    @property
    def arg(self): return self._position(2)

    # -- calls ----------------------------------------------------------
    def call(self, uint32_t pc, tuple args, uint64_t sp, list handlers, object caller, uint64_t mask):
        """Registers per the calling convention, enter at pc, serve
        hostcalls: a0 & mask when the guest returned, else None with the
        exit code in last_exit (negative: the entry was refused)."""
        if type(self) is Instance:
            return _call(<Instance>self, pc, args, sp, handlers, caller, mask)
        return _call(<Process>self, pc, args, sp, handlers, caller, mask)

    def serve_hostcalls(self, list handlers, object caller, uint64_t mask):
        """Resume the guest, serving hostcalls; returns the exit code."""
        if type(self) is Instance:
            return _resume(<Instance>self, handlers, caller, mask, True)
        return _resume(<Process>self, handlers, caller, mask, True)

    def run(self):
        """Run until the guest stops (hostcalls not served); the exit code."""
        if type(self) is Instance:
            return _resume(<Instance>self, None, None, 0, False)
        return _resume(<Process>self, None, None, 0, False)

    def set_pc(self, uint32_t pc):
        """0 ok; -1 not an instruction; -2 not enough gas to enter mid-block."""
        self._ensure()
        if self.in_call:
            raise SandboxBusy("cannot move the program counter while a call is in progress")
        return self._set_pc(pc)

    def can_resume(self):
        return self._resumable()

    # -- lifecycle (vmcore.backends): the install and reset of every backend
    def install(self, tuple image, tuple heap, int64_t gas):
        """The initial memory layout into the guest: every (address, size,
        perm, data) region of ``image`` (data b"" for zeros), the heap
        (base, top, mapped_end, max_top, grow_pages) and the gas."""
        for address, size, perm, data in image:
            self.set_perms(address, size, perm)
            if data:
                self.write(address, data)
        self.configure_heap(*heap)
        self.gas = gas

    def touched(self, frozenset spans, uint32_t rw):
        """``spans`` (the layout's) and the heap from ``rw`` (the read-write
        data's start) as far as it is mapped: every span the guest could
        have written since the last scrub (scrub adds what set_perms made
        accessible)."""
        cdef uint64_t mapped_end
        if type(self) is Instance:
            mapped_end = (<Instance>self).state.heap.mapped_end
        else:
            mapped_end = self.heap_state()[2]
        return spans | {(rw, mapped_end - rw if mapped_end > rw else 0)}

    def recycle(self, spans, tuple image, tuple heap, int64_t gas):
        """Back to a new guest's state: scrub ``spans`` (and whatever
        set_perms granted) to zero and inaccessible, then install."""
        self.scrub(spans)
        self.install(image, heap, gas)

    def take_hostcall_error(self):
        e, self.hostcall_error = self.hostcall_error, None
        return e

    @property
    def running(self):
        return self.running

    @property
    def in_call(self):
        """A call or run is in progress (another thread, or a hostcall)."""
        return self.in_call

    # -- registers, as the program sees them: 32-bit programs' values are
    # 32-bit (vm_reg_from_host / vm_reg_to_host in interp.h)
    def get_reg(self, unsigned int index):
        if index >= VM_REG_COUNT:
            raise IndexError(f"register index out of range (0..{VM_REG_COUNT - 1})")
        self._ensure()
        return vm_reg_to_host(self._is64(), self._get_reg(index))

    def set_reg(self, unsigned int index, uint64_t value):
        if index >= VM_REG_COUNT:
            raise IndexError(f"register index out of range (0..{VM_REG_COUNT - 1})")
        self._ensure()
        self._set_reg(index, vm_reg_from_host(self._is64(), value))

    def get_regs(self):
        self._ensure()
        return [vm_reg_to_host(self._is64(), self._get_reg(i)) for i in range(VM_REG_COUNT)]

    def set_regs(self, values):
        cdef int i
        if len(values) != VM_REG_COUNT:
            raise ValueError(f"expected {VM_REG_COUNT} register values")
        self._ensure()
        for i in range(VM_REG_COUNT):
            self._set_reg(i, vm_reg_from_host(self._is64(), values[i]))

    # -- memory ---------------------------------------------------------
    @property
    def page_size(self):
        return self.mem.page_size

    def first_inaccessible(self, uint32_t address, uint32_t length, bint writable):
        """The first page in the range the guest could not access, or None."""
        cdef uint32_t page
        self._ensure()
        if vm_memory_first_inaccessible(&self.mem, address, length, writable, &page):
            return page
        return None

    def perm(self, uint32_t address):
        self._ensure()
        return self.mem.perms[address >> self.mem.page_shift]

    cdef int _check(self, uint64_t address, uint64_t length) except -1:
        self._ensure()
        if address + length > (<uint64_t>1 << 32):
            raise ValueError(f"range {address:#x}+{length:#x} is outside the 32-bit address space")
        if self.running:
            raise SandboxBusy("guest memory cannot be accessed while the guest is running")
        return 0

    def read(self, uint64_t address, uint64_t length):
        """Raw read (no permission check; the caller checks)."""
        self._check(address, length)
        return PyBytes_FromStringAndSize(<char *>self.mem.base + address, length)

    def read_into(self, uint64_t address, unsigned char[:] buffer):
        cdef uint64_t n = buffer.shape[0]
        self._check(address, n)
        if n:
            memcpy(&buffer[0], self.mem.base + address, n)

    def write(self, uint64_t address, const uint8_t[:] data):
        """Raw write (no permission check; the caller checks)."""
        cdef uint64_t n = data.shape[0]
        self._check(address, n)
        if n:
            memcpy(self.mem.base + address, &data[0], n)

    def zero(self, uint64_t address, uint64_t length):
        self._check(address, length)
        memset(self.mem.base + address, 0, length)

    cdef int _scrub_spans(self, spans, uint32_t *lo, uint32_t *hi) except -1:
        """Zero and make inaccessible every (address, length) span, and
        whatever set_perms made accessible since (vmcore/scrub.h; large
        spans go to self.discard_fn).  Never under a running call."""
        cdef vm_guest_span *v
        cdef size_t n
        cdef int rc
        self._ensure()
        if self.in_call or self.running:
            raise SandboxBusy("cannot reset the sandbox while a call is in progress")
        if self.granted:
            spans = set(spans) | self.granted
            self.granted = None
        v = _spans(spans, &n)
        rc = vm_scrub_spans(&self.mem, v, n, SCRUB_MEMSET_LIMIT, self.discard_fn, self.discard_context, lo, hi)
        free(v)
        self.hostcall_error = None
        self.last_exit = 0
        return rc

    cdef int _note_granted(self, uint32_t address, uint64_t length, unsigned char perm) except -1:
        """Record a set_perms span for the next scrub, as the whole pages the
        permission applies to (vm_memory_set_perms sets every page the range
        overlaps, so that is what the scrub must wipe)."""
        cdef uint64_t start, end
        if perm and length:
            vm_page_span(&self.mem, address, length, &start, &end)
            if self.granted is None:
                self.granted = set()
            self.granted.add((start, end - start))
        return 0

