# What every module constructor shares (threaded code in interp.pyx, the
# recompiler's code in compiler.pyx, shared modules in process.pyx, and the
# gas tables in decoder.pyx): the gas model, checked once, and reading back
# every block's charge, the configuration fields both engines have.

ctypedef uint32_t (*block_cost_reader)(object module, uint32_t *pcs, uint32_t *costs, uint32_t capacity)


cdef int set_gas_model(vm_gas_model *gas, int kind, int memory_access_cost, cost, uint32_t **table) except -1:
    """``*gas`` <- the model.  ``cost`` (None, or VM_OP_COUNT + 1 costs by
    opcode) is copied into a new ``*table`` that the module frees."""
    cdef uint32_t i
    gas.kind = kind
    gas.memory_access_cost = memory_access_cost
    gas.cost = NULL
    if cost is not None:
        if len(cost) != VM_OP_COUNT + 1:
            raise ValueError(f"cost model needs {VM_OP_COUNT + 1} entries")
        table[0] = <uint32_t *>malloc((VM_OP_COUNT + 1) * sizeof(uint32_t))
        if table[0] == NULL:
            raise MemoryError()
        for i in range(VM_OP_COUNT + 1):
            table[0][i] = cost[i]
        gas.cost = table[0]
    if vm_gas_model_check(gas) != 0:
        raise ValueError(f"bad gas model: kind {kind}, memory access cost {memory_access_cost}"
                         + (" (a cost table needs the naive kind)" if cost is not None else ""))
    return 0


ctypedef fused module_config:
    vm_module_config
    vm_x64_config


cdef int configure_module(module_config *config, int isa, bint gas_metering, bint step_tracing, int gas_kind,
                          int memory_access_cost, cost, uint32_t **table) except -1:
    """What the interpreter's and the recompiler's configurations share:
    zeroed, then the isa, metering, tracing and the gas model (set_gas_model)."""
    memset(config, 0, sizeof(config[0]))
    config.isa = isa
    config.gas_metering = gas_metering
    config.step_tracing = step_tracing
    return set_gas_model(&config.gas, gas_kind, memory_access_cost, cost, table)


cdef int code_pointers(const uint8_t[:] code, const uint8_t[:] bitmask, const uint8_t **code_ptr,
                       const uint8_t **bitmask_ptr) except -1:
    """The code and its bitmask as C pointers (NULL when there is no code),
    refusing a bitmask without a bit per code byte."""
    cdef size_t n = <size_t>code.shape[0]
    if n and <size_t>bitmask.shape[0] < (n + 7) // 8:
        raise ValueError("bitmask shorter than the code")
    code_ptr[0] = &code[0] if n else NULL
    bitmask_ptr[0] = &bitmask[0] if n else NULL
    return 0


cdef uint32_t *jump_targets(jump_table) except NULL:
    """The jump table as a C array (one spare entry: never empty), for the
    module's builder; the caller frees it."""
    cdef uint32_t count = len(jump_table), i
    cdef uint32_t *targets = <uint32_t *>malloc((<size_t>count + 1) * sizeof(uint32_t))
    if targets == NULL:
        raise MemoryError()
    try:
        for i in range(count):
            targets[i] = jump_table[i]
    except BaseException:
        free(targets)
        raise
    return targets


cdef list block_cost_list(object module, block_cost_reader read):
    """[(pc, cost)] of every block's gas charge ([] without metering):
    ``read`` is asked for the count first (no buffers), then fills them."""
    cdef uint32_t n = read(module, NULL, NULL, 0), i
    if n == 0:
        return []
    cdef uint32_t *pcs = <uint32_t *>malloc(n * sizeof(uint32_t))
    cdef uint32_t *costs = <uint32_t *>malloc(n * sizeof(uint32_t))
    try:
        if pcs == NULL or costs == NULL:
            raise MemoryError()
        n = read(module, pcs, costs, n)
        return [(pcs[i], costs[i]) for i in range(n)]
    finally:
        free(pcs)
        free(costs)
