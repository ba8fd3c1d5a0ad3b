# Included by vmcore/_engine.pyx.  SandboxCore.call is Sandbox.call: the
# whole call from Python down to C and back (export lookup, arguments into
# registers, the fused hostcall loop), and on anything but a clean return
# the general path (deadline, stepping, the exit as a typed exception),
# all calling downward: vmcore.watchdog for deadlines, vmcore.exits for
# the exception.  vmcore.sandbox.Sandbox subclasses it with the policy.


from cpython.object cimport PyObject_Call


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


# Imported on first use: these modules import this one.
cdef object _Caller = None  # vmcore.caller.Caller
cdef object _Program = None  # vmcore.program.Program
cdef object _HostFunctions = None  # vmcore.host_functions.HostFunctions


cdef int _import_api() except -1:
    global _Caller, _Program, _HostFunctions
    from vmcore.caller import Caller
    from vmcore.program import Program
    from vmcore.host_functions import HostFunctions
    _Program, _HostFunctions, _Caller = Program, HostFunctions, Caller
    return 0


#: How many closed inline backends are kept per Program and set of options
#: (Prepared.free), reset to new, for the next Sandbox to revive.
BACKEND_POOL_LIMIT = 4


def pool_inline(backend, Instance guest):
    """Close the inline ``backend`` into its options' pool (prepared.free)
    with ``guest`` scrubbed to a new instance's state (as Backend.scrub;
    _revive installs the layout).  False, nothing done, when the pool is
    full, a call still owns the guest or it cannot be scrubbed (BufferError
    while memory.view() buffers are alive: it must never be reused)."""
    prepared = backend.prepared
    if prepared is None or backend.guest is not guest:  # pooled already, or gone
        return False
    cdef list free = prepared.free
    if len(free) >= BACKEND_POOL_LIMIT or guest.in_call or guest.running or guest.abandoned:
        return False
    try:
        if guest.module is not prepared.module:
            guest.set_module(prepared.module)  # step tracing was on
        guest.scrub(guest.touched(prepared.spans, backend.memory_map.rw_data_address))
    except Exception:
        return False
    # While pooled it holds neither the Program nor the Prepared: no
    # reference cycle through the Program's recipe cache.
    backend.closed = True
    backend.program = backend.prepared = None
    free.append(backend)
    return True


cdef object _revive(backend, program, prepared, initial_gas):
    """A pooled inline backend (pool_inline) for a new Sandbox of
    ``program`` and the options of ``prepared``: the layout installed
    (as Backend.install), only the gas differs."""
    backend.program = program
    backend.prepared = prepared
    backend.initial_gas = initial_gas
    (<Guest>backend.guest).install(prepared.image, prepared.heap_args, initial_gas)
    backend.closed = False
    return backend


cdef class SandboxCore:
    """The state a call needs, set by Sandbox.__init__: the guest (None
    once closed), the program, its exports, the stack top, the hostcall
    table, the Caller and the register mask; and the hot part of
    Sandbox's construction and close."""

    def __init__(self, program, *, backend="auto", isolation="auto", gas=None, page_size=None, heap=None,
                 hostcalls=None, strict=False, auto_restart=False, pool=None, memory_limit=None, gas_model=None,
                 functions=None):
        """Sandbox(program, **options) (documented on vmcore.Sandbox): check
        the options, resolve them (self._make_recipe, once per Program and
        options), then revive a pooled backend of the same options
        (pool_inline) or make a new one, and register ``hostcalls``."""
        if _Caller is None:
            _import_api()
        if not isinstance(program, _Program):
            raise TypeError(f"Sandbox needs a vmcore.Program, got {type(program).__name__}")
        if gas is not None and type(gas) is not int and (not isinstance(gas, int) or isinstance(gas, bool)):
            raise TypeError(f"gas must be an int or None, got {type(gas).__name__}")
        if functions is None and pool is not None:
            functions = getattr(pool, "functions", None)
        if functions is not None and not isinstance(functions, _HostFunctions):
            raise TypeError(f"functions must be a vmcore.HostFunctions, got {type(functions).__name__}")
        # What follows from the options alone is worked out once per Program
        # and options (a warm constructor is one dict lookup).  The types of
        # the numbers are in the key so that 4096.0 or True never reuse the
        # recipe of 4096 or 1; a pool is never kept alive by the cache.
        key = (backend, isolation, gas is None, page_size, type(page_size), heap, strict, auto_restart,
               memory_limit, type(memory_limit), gas_model)
        recipes = program._cache.recipes
        recipe = None
        if pool is None:
            try:
                recipe = recipes.get(key)
            except TypeError:  # an unhashable option: the slow path says what is wrong with it
                key = None
        if recipe is None:
            recipe = self._make_recipe(program, backend, isolation, gas is not None, page_size, heap, strict,
                                       auto_restart, pool, memory_limit, gas_model)
            if pool is None and key is not None:
                recipes[key] = recipe
        self._start(program, recipe, gas, memory_limit, functions)
        if hostcalls:
            for name, fn in hostcalls.items():
                self.register_hostcall(name, fn)

    cdef _start(self, program, tuple recipe, gas, memory_limit, functions):
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
            _revive(backend, program, prepared, initial_gas)
        else:
            # PyObject_Call, not factory(..., **options): a call with keywords
            # here made the C compiler give up specialising the hostcall
            # loop's argument-less Python calls (+14 Ir per hostcall)
            backend = PyObject_Call(factory, (program, self.memory_map, self.heap_policy, self._gas_metering,
                                              initial_gas, model, prepared), options)
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
        caller = _Caller.__new__(_Caller)
        caller.sandbox = self
        self._caller = caller
        self._stepping = False

    def close(self):
        """Stop the guest and give its memory (and sandbox process) back;
        idempotent.  A call in progress (another thread, or the hostcall
        that closes its own sandbox) raises SandboxError."""
        backend = self._backend
        guest = self._guest
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
        if type(guest) is Instance and pool_inline(backend, <Instance>guest):
            return  # the hot path of InlineInterpreter.close
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
