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


cdef class SandboxCore:
    """The state a call needs, set by Sandbox.__init__: the guest (None
    once closed), the program, its exports, the stack top, the hostcall
    table, the Caller and the register mask."""

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
