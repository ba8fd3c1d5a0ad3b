# Included by vmcore/_engine.pyx.  SandboxCore.call is Sandbox.call: the
# whole call from Python down to C and back (export lookup, arguments into
# registers, the fused hostcall loop), and on anything but a clean return
# the general path (deadline, stepping, the exit as a typed exception),
# all calling downward: vmcore.watchdog for deadlines, vmcore.exits for
# the exception.  vmcore.sandbox.Sandbox subclasses it with the policy.


cdef extern from "<sched.h>":
    int sched_yield() nogil

# A traced guest stops at every instruction and _finish steps it on with
# the GIL held; every this many steps it lets other threads (the watchdog
# that enforces the deadline, threads being started) and signals in.
DEF STEP_GIL_YIELD = 256


cdef object _guest_call(Guest g, uint32_t pc, tuple args, uint64_t sp, list handlers, object caller,
                        uint64_t mask):
    if type(g) is Instance:
        return _call(<Instance>g, pc, args, sp, handlers, caller, mask)
    return _call(<Process>g, pc, args, sp, handlers, caller, mask)


cdef object _Caller = None  # vmcore.caller.Caller, imported on first use (it imports this module)


cdef class SandboxCore:
    """The state a call needs, set by Sandbox.__init__: the guest (None
    once closed), the program, its exports, the stack top, the hostcall
    table, the Caller and the register mask; and the hot part of
    Sandbox's construction and close."""

    def _open(self, program, tuple recipe, gas, memory_limit, functions):
        """Sandbox.__init__ once the options are resolved (``recipe``:
        vmcore.sandbox._recipe's): a pooled backend of the same options
        revived (InlineInterpreter.revive), else a new one."""
        global _Caller
        cdef object backend = None
        cdef list free
        factory, self._fallback, self.memory_map, self.heap_policy, model, prepared, options, self._mask = recipe
        self.program = program
        self.memory_limit = memory_limit
        self._gas_metering = gas is not None
        self._gas_model = model
        initial_gas = gas if gas is not None else 0
        free = prepared.free
        if free:
            try:
                backend = free.pop()  # another thread may have taken the last one
            except IndexError:
                pass
        if backend is not None:
            backend.revive(program, prepared, initial_gas)
        else:
            backend = factory(program, self.memory_map, self.heap_policy, self._gas_metering, initial_gas, model,
                              prepared, **options)
        self._backend = backend
        self._guest = backend.guest
        # The hostcall loop's table per import: (function, register
        # arguments[, gas]), None where nothing serves it.
        imports = program.imports
        self._handlers = (functions.resolve(imports, gas is not None) if functions is not None
                          else [None] * len(imports))
        self.functions = functions
        self._exports = program.exports
        self._stack_top = self.memory_map.stack_address_high
        if _Caller is None:
            from vmcore.caller import Caller
            _Caller = Caller
        caller = _Caller.__new__(_Caller)
        caller.sandbox = self
        self._caller = caller
        self._stepping = False

    def close(self):
        """Stop the guest and give its memory (and sandbox process) back;
        idempotent.  A call in progress (another thread, or the hostcall
        that closes its own sandbox) raises SandboxError."""
        backend = self._backend
        if backend is None:
            return
        # Unreachable first: a call starting now finds the sandbox closed,
        # never a guest on its way to a pool.  Dropping the Caller (and the
        # views cached on the Sandbox) breaks their cycles through it, so a
        # closed sandbox is freed without the cycle collector.
        self._guest = None
        self._backend = None
        self._caller = None
        views = getattr(self, "__dict__", None)
        if views:
            views.pop("regs", None)
            views.pop("memory", None)
        backend.close()

    def call(self, export, *args, timeout=None):
        """Call an export with integer arguments (a0..a5, then t0..t2); runs
        through any number of hostcalls and returns a0 (masked to the
        register width).

        ``export`` is an export name (ExportNotFound, a KeyError, if the
        program has none such) or a pc.  Arguments must be ``int`` (bools
        count as 0/1); each is taken modulo 2**64 and then masked to the
        register width, so negative numbers pass as two's complement.
        Anything else raises TypeError naming the argument.

        ``timeout`` is a deadline in seconds (``None`` or ``math.inf``: no
        deadline); past it the guest is stopped and Timeout raised.  Zero,
        negative or NaN raise ValueError.

        Guest faults raise Trap, OutOfGas, PageFault or HostcallError; the
        sandbox stays usable afterwards.  A hostcall that closes its own
        sandbox makes the call raise SandboxError ("closed during the
        call") in every backend, as closing from another thread does."""
        cdef Guest g = self._guest
        if g is None:
            raise SandboxError("the sandbox is closed")
        if timeout is None and type(export) is str:
            pc = self._exports.get(export)
            if pc is not None:
                result = _guest_call(g, pc, args, self._stack_top, self._handlers, self._caller, self._mask)
                if result is not None:
                    return result
                return self._finish(g, pc, None)
        with deadline(g, timeout):  # checks timeout before anything runs
            pc = self._entry_pc(export)
            result = _guest_call(g, pc, args, self._stack_top, self._handlers, self._caller, self._mask)
            if result is not None:
                return result
            return self._finish(g, pc, timeout)

    cdef object _entry_pc(self, export):
        if isinstance(export, str):
            return self.program.export_pc(export)  # ExportNotFound
        if isinstance(export, int) and 0 <= export <= 0xFFFFFFFF:
            return export
        raise TypeError(f"export must be a name or a program counter, got {export!r}")

    cdef object _finish(self, Guest g, object pc, object timeout):
        """After a call that did not return cleanly: keep stepping a traced
        guest, then raise for the exit (inside the caller's deadline)."""
        cdef int reason = g.last_exit
        cdef unsigned int steps = 0
        while reason == VM_EXIT_STEP and self._guest is not None:
            steps += 1
            if steps % STEP_GIL_YIELD == 0:
                with nogil:
                    sched_yield()
                PyErr_CheckSignals()
            reason = g.serve_hostcalls(self._handlers, self._caller, self._mask)
            if reason == VM_EXIT_FINISHED:
                return g.get_reg(VM_REG_A0) & self._mask
        if self._guest is None:
            raise SandboxError("the sandbox was closed during the call", pc=(<object>g).pc)
        # here, not at import: vmcore.exits reads vmcore.abi, which reads this module
        from vmcore import debuginfo, exits
        if reason == VM_EXIT_INTERRUPTED and timeout is not None:
            raise debuginfo.attach_traceback(Timeout(
                f"the call passed its {timeout:g} s deadline; the guest was stopped at pc {(<object>g).pc}",
                pc=(<object>g).pc), self.program)
        if reason < 0:
            exits.check_entry(reason, pc)
        raise debuginfo.attach_traceback(exits.error_for(reason, (<object>g).pc, (<object>g).arg, (<object>g).gas,
                                                         self.program.imports, g.take_hostcall_error()), self.program)
