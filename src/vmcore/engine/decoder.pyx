OP_INVALID = VM_OP_INVALID
GAS_NAIVE = VM_GAS_NAIVE
GAS_FULL = VM_GAS_FULL
GAS_CACHE_L1_HIT = VM_GAS_CACHE_L1_HIT
GAS_CACHE_L2_HIT = VM_GAS_CACHE_L2_HIT
GAS_CACHE_L3_HIT = VM_GAS_CACHE_L3_HIT
GAS_MAX_MEMORY_COST = VM_GAS_MAX_MEMORY_COST
FLAG_ENDS_BLOCK = VM_F_ENDS_BLOCK
FLAG_TERMINATOR = VM_F_TERMINATOR

cdef extern from "vmcore/opcodes.h":
    pass

# Format names in the order of vm_format.
cdef extern from *:
    """
    #define VM_FORMAT_NAME(id) #id,
    static const char *const vm_format_names[] = {VM_FORMATS(VM_FORMAT_NAME)};
    #undef VM_FORMAT_NAME
    """
    const char *const vm_format_names[]


def isa_names():
    """The instruction sets in blob-version order."""
    return [vm_isa_name(i).decode() for i in range(VM_ISA_COUNT)]


def isa_is_64_bit(int isa):
    return bool(vm_isa_is_64_bit(isa))


def format_names():
    return [vm_format_names[i].decode().lower() for i in range(VM_FMT_COUNT)]


def opcode_rows():
    """One row per instruction: (op id, name, format name, flags,
    (opcode byte or None for each ISA))."""
    rows = []
    cdef int op, isa, byte
    for op in range(VM_OP_COUNT):
        bytes_ = []
        for isa in range(VM_ISA_COUNT):
            byte = vm_isa_encode_opcode(isa, op)
            bytes_.append(None if byte < 0 else byte)
        rows.append((op, vm_op_name(op).decode(), vm_format_names[vm_op_format(op)].decode().lower(),
                     vm_op_flags(op), tuple(bytes_)))
    return rows


def decode(int isa, const uint8_t[:] code, const uint8_t[:] bitmask, uint32_t offset):
    """Decode one instruction: (op, next, (r0, r1, r2), imm1, imm2, imm64, next_is_invalid)."""
    cdef vm_instruction ins
    if <size_t>bitmask.shape[0] < (<size_t>code.shape[0] + 7) // 8:
        raise ValueError("bitmask too short for the code")
    if code.shape[0] == 0:
        vm_decode(isa, NULL, 0, NULL, offset, &ins)
    else:
        vm_decode(isa, &code[0], <uint32_t>code.shape[0], &bitmask[0], offset, &ins)
    return (ins.op, ins.next, (ins.reg[0], ins.reg[1], ins.reg[2]), ins.imm1, ins.imm2, ins.imm64,
            bool(ins.next_is_invalid))


def instructions(int isa, const uint8_t[:] code, const uint8_t[:] bitmask):
    """Every instruction in order, the way a disassembler walks the code:
    a list of (offset, next, op, r0, r1, r2, imm1, imm2, imm64).  Implicit
    traps (end of code, too-long gaps, a missing bit at offset 0) appear as
    op == OP_INVALID entries."""
    cdef uint32_t n = <uint32_t>code.shape[0]
    cdef uint32_t offset = 0
    cdef vm_instruction ins
    out = []
    if n == 0:
        return out
    if <size_t>bitmask.shape[0] < (<size_t>n + 7) // 8:
        raise ValueError("bitmask too short for the code")
    cdef const uint8_t *c = &code[0]
    cdef const uint8_t *b = &bitmask[0]
    if not vm_bitmask_bit(b, n, 0):
        out.append((0, 0, VM_OP_INVALID, 0, 0, 0, 0, 0, 0))
        while offset < n and not vm_bitmask_bit(b, n, offset):
            offset += 1
    while offset < n:
        vm_decode(isa, c, n, b, offset, &ins)
        out.append((ins.offset, ins.next, ins.op, ins.reg[0], ins.reg[1], ins.reg[2], ins.imm1, ins.imm2, ins.imm64))
        offset = ins.next
        if ins.next_is_invalid:
            out.append((offset, offset, VM_OP_INVALID, 0, 0, 0, 0, 0, 0))
            while offset < n and not vm_bitmask_bit(b, n, offset):
                offset += 1
    return out


def is_basic_block_start(int isa, const uint8_t[:] code, const uint8_t[:] bitmask, uint32_t offset):
    if code.shape[0] == 0:
        return False
    if <size_t>bitmask.shape[0] < (<size_t>code.shape[0] + 7) // 8:
        raise ValueError("bitmask too short for the code")
    return bool(vm_is_basic_block_start(isa, &code[0], <uint32_t>code.shape[0], &bitmask[0], offset))


cdef int _check_code(int isa, const uint8_t[:] code, const uint8_t[:] bitmask) except -1:
    """Refuse an unknown isa, or a bitmask without a bit per code byte."""
    if not 0 <= isa < VM_ISA_COUNT:
        raise ValueError(f"bad isa {isa}")
    if <size_t>bitmask.shape[0] < (<size_t>code.shape[0] + 7) // 8:
        raise ValueError("bitmask too short for the code")
    return 0


def block_gas_costs(int isa, const uint8_t[:] code, const uint8_t[:] bitmask, int kind,
                    int memory_access_cost=VM_GAS_CACHE_L2_HIT, bint bounded=False):
    """Every basic block's cost under a gas model (gas.h): a list of
    (pc, cost) in program order, as the engines charge them."""
    cdef vm_gas_model model
    set_gas_model(&model, kind, memory_access_cost, None, NULL)
    _check_code(isa, code, bitmask)
    cdef uint32_t n = <uint32_t>code.shape[0]
    if n == 0:
        return []
    cdef uint32_t capacity = n + 1, count, i
    cdef uint32_t *pcs = <uint32_t *>malloc(capacity * sizeof(uint32_t))
    cdef uint32_t *costs = <uint32_t *>malloc(capacity * sizeof(uint32_t))
    try:
        if pcs == NULL or costs == NULL:
            raise MemoryError()
        with nogil:
            count = vm_gas_blocks(&model, isa, &code[0], n, &bitmask[0], bounded, pcs, costs, capacity)
        return [(pcs[i], costs[i]) for i in range(min(count, capacity))]
    finally:
        free(pcs)
        free(costs)


def block_gas_cost_at(int isa, const uint8_t[:] code, const uint8_t[:] bitmask, uint32_t pc, int kind,
                      int memory_access_cost=VM_GAS_CACHE_L2_HIT):
    """The cost of the block that starts at `pc` (gas.h: vm_gas_block_cost_at)."""
    cdef vm_gas_model model
    set_gas_model(&model, kind, memory_access_cost, None, NULL)
    _check_code(isa, code, bitmask)
    cdef uint32_t n = <uint32_t>code.shape[0]
    if n == 0:
        return vm_gas_block_cost_at(&model, isa, NULL, 0, NULL, pc)
    return vm_gas_block_cost_at(&model, isa, &code[0], n, &bitmask[0], pc)
