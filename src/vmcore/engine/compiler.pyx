INFO_OP_MASK = VM_X64_INFO_OP_MASK
INFO_BLOCK_START = VM_X64_INFO_BLOCK_START
INFO_ENTRY_OK = VM_X64_INFO_ENTRY_OK
INFO_LOAD = VM_X64_INFO_LOAD
INFO_STORE = VM_X64_INFO_STORE
INFO_SIZE_SHIFT = VM_X64_INFO_SIZE_SHIFT
INFO_JUMP_TARGET = VM_X64_INFO_JUMP_TARGET
VMCTX_DISP = VM_X64_VMCTX_DISP
GUEST_REGS = tuple(vm_x64_guest_regs[i] for i in range(VM_REG_COUNT))



class CompileError(Exception):
    pass


cdef _cpu_missing():
    cdef const char *missing = NULL
    if vm_x64_cpu_check(&missing):
        return missing.decode()
    return None


# CPUID is asked once, at import.
CPU_MISSING = _cpu_missing()


def cpu_check():
    """None when this CPU can run generated code (x86-64 with BMI1, BMI2,
    LZCNT, POPCNT), else the name of the first missing feature (callers
    fall back to the interpreter with that as the reason)."""
    return CPU_MISSING


def decoder_selftest(int isa, const uint8_t[:] code, const uint8_t[:] bitmask):
    """The recompiler's inlined decoder against vm_decode at every offset
    it is used at: None when they agree, else the first offset that
    differs (tests)."""
    cdef uint32_t n = <uint32_t>code.shape[0]
    if n == 0:
        return None
    if bitmask.shape[0] < (n + 7) // 8:
        raise ValueError("bitmask shorter than the code")
    cdef int64_t r = vm_x64_decoder_selftest(isa, &code[0], n, &bitmask[0])
    if r == -2:
        raise ValueError("bad isa")
    return None if r == -1 else r


def require_cpu():
    """Raise RuntimeError with a clear reason when this CPU cannot run
    generated code."""
    if CPU_MISSING is not None:
        raise RuntimeError(f"the recompiler needs x86-64 with BMI1, BMI2, LZCNT and POPCNT; this CPU lacks "
                           f"{CPU_MISSING} (use backend='interpreter')")


cdef class CompiledCode:
    """Native code, native jump table and pc map for one program and
    configuration (immutable)."""
    cdef vm_x64_module module
    cdef uint8_t *code_buf
    cdef uint32_t *records
    cdef vm_x64_mark *marks
    cdef vm_x64_map map
    cdef uint64_t *table
    cdef uint32_t *cost
    cdef readonly bint gas_metering
    cdef readonly bint step_tracing
    cdef readonly double seconds

    def __cinit__(self, int isa, const uint8_t[:] code, const uint8_t[:] bitmask, jump_table,
                  bint gas_metering=True, bint step_tracing=False, bint interruptible=False, cost=None,
                  uint64_t code_address=VM_ADDR_NATIVE_CODE, bint parallel=False, uint32_t split_hint=0,
                  int gas_kind=VM_GAS_NAIVE, int memory_access_cost=VM_GAS_CACHE_L2_HIT):
        cdef vm_x64_config config
        cdef vm_x64_capacity cap
        cdef uint32_t n = <uint32_t>code.shape[0]
        cdef uint32_t jt_count = len(jump_table)
        cdef uint32_t *targets = NULL
        cdef const uint8_t *code_ptr = NULL
        cdef const uint8_t *bitmask_ptr = NULL
        cdef uint32_t i
        cdef int rc
        import time
        code_pointers(code, bitmask, &code_ptr, &bitmask_ptr)
        self.gas_metering = gas_metering
        self.step_tracing = step_tracing
        configure_module(&config, isa, gas_metering, step_tracing, gas_kind, memory_access_cost, cost, &self.cost)
        config.interruptible = interruptible
        config.code_address = code_address
        config.parallel = parallel
        config.split_hint = split_hint
        vm_x64_bounds(code_ptr, n, bitmask_ptr, &config, &cap)
        self.code_buf = <uint8_t *>malloc(cap.code)
        self.records = <uint32_t *>malloc(cap.records * sizeof(uint32_t))
        self.marks = <vm_x64_mark *>malloc(cap.marks * sizeof(vm_x64_mark))
        self.table = <uint64_t *>malloc((<size_t>jt_count + 1) * sizeof(uint64_t))
        if self.code_buf == NULL or self.records == NULL or self.marks == NULL or self.table == NULL:
            raise MemoryError()
        targets = jump_targets(jump_table)
        t0 = time.perf_counter()
        with nogil:
            rc = vm_x64_compile(&config, code_ptr, n, bitmask_ptr, targets, jt_count, &cap, self.code_buf,
                                self.table, self.records, self.marks, &self.module)
        self.seconds = time.perf_counter() - t0
        free(targets)
        if rc != VM_X64_OK:
            raise CompileError(COMPILE_ERRORS.get(rc, f"error {rc}"))
        self.map.records = self.records
        self.map.marks = self.marks
        self.map.count = self.module.map_count
        self.map.mark_count = self.module.mark_count

    def __dealloc__(self):
        free(self.code_buf)
        free(self.records)
        free(self.marks)
        free(self.table)
        free(self.cost)

    @property
    def code(self):
        return PyBytes_FromStringAndSize(<char *>self.code_buf, self.module.code_size)

    @property
    def jump_table(self):
        """The native jump table: little-endian u64 absolute addresses."""
        return PyBytes_FromStringAndSize(<char *>self.table, <Py_ssize_t>self.module.jump_table_count * 8)

    @property
    def records_bytes(self):
        """The pc map's records: little-endian u32 (compiler.h)."""
        return PyBytes_FromStringAndSize(<char *>self.records, <Py_ssize_t>self.module.map_count * sizeof(uint32_t))

    @property
    def marks_bytes(self):
        """The pc map's marks: (index, pc, entry) u32 triples."""
        return PyBytes_FromStringAndSize(<char *>self.marks,
                                         <Py_ssize_t>self.module.mark_count * sizeof(vm_x64_mark))

    def map_entries(self):
        """Every record, expanded: [(pc, entry, body, info)]."""
        cdef uint32_t n = self.module.map_count
        cdef vm_x64_map_entry *out = <vm_x64_map_entry *>malloc((<size_t>n + 1) * sizeof(vm_x64_map_entry))
        if out == NULL:
            raise MemoryError()
        try:
            if vm_x64_map_read(&self.module, &self.map, 0, n, out) != 0:
                raise CompileError("the pc map does not read back")
            return [(out[i].pc, out[i].entry, out[i].body, out[i].info) for i in range(n)]
        finally:
            free(out)

    @property
    def info(self):
        m = self.module
        return {
            "code_address": m.code_address, "code_size": m.code_size, "first_insn": m.first_insn,
            "gap_start": m.gap_start, "gap_end": m.gap_end,
            "entry_trampoline": m.entry_trampoline, "overflow_probe": m.overflow_probe, "map_count": m.map_count,
            "mark_count": m.mark_count,
            "jump_table_count": m.jump_table_count, "code_len": m.code_len, "isa": m.isa,
            "is_64_bit": bool(m.is_64_bit), "gas_metering": bool(m.gas_metering),
            "step_tracing": bool(m.step_tracing), "charges": bool(m.charges),
        }

    def enter(self, uint32_t pc, int64_t gas):
        """Start a call at pc: (0, gas after any mid-block charge, absolute
        native address), or (-1, gas, 0) / (-2, gas, 0) as
        vm_state_set_pc's -1 (cannot enter) / -2 (not enough gas)."""
        cdef uint64_t native = 0
        cdef int64_t g = gas
        cdef int rc = vm_x64_enter(&self.module, &self.map, self.code_buf, pc, &g, &native)
        if rc != 0:
            return rc, gas, 0
        return 0, g, native

    def block_costs(self):
        """[(pc, cost)] of every block's gas charge, read back from the code."""
        return block_cost_list(self, _native_block_costs)

    def find_pc(self, uint32_t pc):
        """The index of guest pc's record, or -1."""
        cdef vm_x64_map_entry e
        return vm_x64_find_pc(&self.module, &self.map, pc, &e)

    def find_native(self, uint64_t offset):
        """The index of the last record whose code starts at or before
        native offset, or -1."""
        cdef vm_x64_map_entry e
        return vm_x64_find_native(&self.module, &self.map, offset, &e)


cdef uint32_t _native_block_costs(object code, uint32_t *pcs, uint32_t *costs, uint32_t capacity):
    cdef CompiledCode c = <CompiledCode>code
    return vm_x64_block_costs(&c.module, &c.map, c.code_buf, pcs, costs, capacity)


_TWO63 = 2 ** 63
_TWO64 = 2 ** 64


def forms():
    """{form name: operand count} of the encoder's test entry point."""
    cdef int i = 0, n = 0
    cdef const char *name
    out = {}
    while True:
        name = x64_form_name(i, &n)
        if name == NULL:
            return out
        out[name.decode()] = n
        i += 1


def assemble(instructions):
    """Encode [(form, *operands), ...] and return the bytes (tests: the
    encoder against a disassembler)."""
    cdef uint8_t buf[32]
    cdef int64_t ops[16]
    cdef size_t length
    cdef int form, k
    index = {name: i for i, name in enumerate(forms())}
    out = bytearray()
    for item in instructions:
        name, operands = item[0], item[1:]
        if name not in index:
            raise ValueError(f"unknown form {name!r}")
        if len(operands) > 16:
            raise ValueError("too many operands")
        for k in range(len(operands)):
            v = operands[k]
            if v >= _TWO63:
                v = v - _TWO64  # u64 immediates as their bit pattern
            ops[k] = v
        form = index[name]
        length = x64_assemble_form(form, ops, len(operands), buf)
        if length == 0:
            raise ValueError(f"form {name} does not take operands {operands!r}")
        out += PyBytes_FromStringAndSize(<char *>buf, length)
    return bytes(out)
