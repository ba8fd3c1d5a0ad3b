/* The interpreter: a pre-decoded, threaded-code engine over guest memory.
 *
 * Freestanding (no libc): the zygote embeds the same source.  Building a
 * module needs memory for its tables, which the caller provides through
 * vm_module_sizes()/vm_module_build(); running needs only the module, an
 * instance state and a guest memory view.
 */
#ifndef VMCORE_INTERP_H
#define VMCORE_INTERP_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "vmcore/abi.h"
#include "vmcore/decoder.h"
#include "vmcore/gas.h"
#include "vmcore/memory.h" /* vm_memory: the guest memory model */

/* One pre-decoded instruction (24 bytes). */
typedef struct vm_insn {
    uint16_t op;     /* interpreter handler (internal) */
    uint8_t a, b, c; /* registers; 13 is a constant zero */
    uint8_t pad;
    uint16_t pad2;
    uint32_t pc;     /* guest program counter */
    uint32_t x, y, z;/* immediates / targets (compiled indices) */
} vm_insn;

#define VM_INDEX_NONE 0xffffffffu

typedef struct vm_module_config {
    int isa;                 /* vm_isa */
    int gas_metering;        /* charge gas per basic block */
    int step_tracing;        /* stop before every instruction */
    vm_gas_model gas;        /* the cost model (gas.h); all-zero = naive */
} vm_module_config;

typedef struct vm_module {
    vm_module_config config;
    int is_64_bit;
    uint32_t code_len;
    vm_insn *insns;            /* insn_count entries, then a final guard entry */
    uint32_t insn_count;
    uint32_t *pc_to_index;     /* code_len + 1 entries; VM_INDEX_NONE when not an instruction */
    uint32_t *jump_table;      /* compiled index per jump table entry, VM_INDEX_NONE if invalid */
    uint32_t jump_table_count;
    int targets;               /* vm_targets: what every jump target record is (picks vm_run's loop) */
} vm_module;

/* vm_module.targets.  MIXED (0) is always safe: a module filled in by hand
 * (the zygote's) runs the generic loop. */
typedef enum vm_targets {
    VM_TARGETS_MIXED = 0,  /* any records (step tracing, or unusual code) */
    VM_TARGETS_CHECK = 1,  /* every static and jump-table target is a CHECK record */
    VM_TARGETS_CHARGE = 2, /* ... a CHARGE record */
} vm_targets;

/* Upper bounds for the tables vm_module_build fills (in entries). */
void vm_module_sizes(uint32_t code_len, uint32_t jump_table_count, const vm_module_config *config,
                     size_t *insn_capacity);

/* Builds the threaded code.  `insns` has insn_capacity entries,
 * `pc_to_index` code_len + 1, `jump_table` jump_table_count. */
void vm_module_build(vm_module *module, const vm_module_config *config, const uint8_t *code, uint32_t code_len,
                     const uint8_t *bitmask, const uint32_t *jump_table_targets, uint32_t jump_table_count,
                     vm_insn *insns, uint32_t *pc_to_index, uint32_t *jump_table);

/* Heap state, shared with the sbrk instruction. */
typedef struct vm_heap {
    uint32_t base;      /* first heap byte */
    uint32_t top;       /* current end (base + size) */
    uint32_t mapped_end;/* accessible up to here (page aligned) */
    uint32_t max_top;   /* sbrk fails past this */
    uint32_t grow_pages;/* minimum pages to map at a time (policy) */
} vm_heap;

typedef struct vm_state {
    uint64_t regs[VM_REG_COUNT + 1]; /* the guest registers + a constant zero */
    int64_t gas;
    uint32_t resume;        /* compiled index run() continues at */
    uint32_t pc;            /* where the guest stopped */
    uint32_t next_pc;       /* for ECALLI: the instruction after it */
    uint32_t arg;           /* hostcall number / page-fault address / vm_trap_reason */
    vm_heap heap;
    _Atomic int interrupt;  /* set from another thread: stop at the next block start */
    uint64_t fuel;          /* stop with VM_EXIT_YIELD after this many blocks; 0 = no limit */
} vm_state;

/* Register values at the host boundary.
 *
 * A 32-bit program's registers hold 32-bit values.  Inside every engine
 * (interpreter, zygote, recompiled code) they are 64 bits wide and kept as
 * PolkaVM 0.35 keeps them: a value from the host is truncated to 32 bits
 * and sign-extended (InterpretedInstance::set_reg), 32-bit instructions
 * write sign-extended results, and the few that PolkaVM writes as 64-bit
 * values (load_u32 zero-extends, memset's a0/a2 updates) are written the
 * same way here.  Registers are reported as their low 32 bits,
 * zero-extended (InterpretedInstance::reg), as the JAM vectors and
 * PolkaVM's oracle give them.  Everything that hands a register value to an engine
 * goes through vm_reg_from_host() and everything that reads one through
 * vm_reg_to_host(); 64-bit programs' values pass unchanged.  These two are
 * the only definition of the rule (the Cython register accessors and the
 * hostcall argument/return paths call them). */
static inline uint64_t vm_reg_from_host(int is_64_bit, uint64_t value)
{
    return is_64_bit ? value : (uint64_t)(int64_t)(int32_t)(uint32_t)value;
}

static inline uint64_t vm_reg_to_host(int is_64_bit, uint64_t value)
{
    return is_64_bit ? value : (uint64_t)(uint32_t)value;
}

/* Point the state at a program counter as the host does to start a call:
 * returns VM_ENTRY_OK, or (with state->pc set) VM_ENTRY_NOT_AN_INSTRUCTION
 * when pc cannot be entered / VM_ENTRY_OUT_OF_GAS when the mid-block
 * charge does not fit (vmcore/abi.h). */
int vm_state_set_pc(vm_state *state, const vm_module *module, uint32_t pc);

/* The gas charge of every basic block, as laid out (program order): up to
 * `capacity` (pc, cost) pairs; returns how many there are (0 without
 * gas metering). */
uint32_t vm_module_block_costs(const vm_module *module, uint32_t *pcs, uint32_t *costs, uint32_t capacity);

/* How many records run a fused pair (the builder's superinstructions; for
 * tests and profiles). */
uint32_t vm_module_fused_records(const vm_module *module);

/* Run until the guest stops; returns the reason. */
vm_exit vm_run(const vm_module *module, vm_state *state, const vm_memory *memory);

/* sbrk as the instruction does it (also used by the host API): returns the
 * new heap top, or 0 when the request does not fit. */
uint32_t vm_heap_sbrk(vm_state *state, const vm_memory *memory, uint32_t size);

#endif
