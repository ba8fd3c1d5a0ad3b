/* Gas cost models: what a basic block costs.
 *
 * Two models, chosen per module:
 *   naive  1 per instruction (the implicit trap included), what the JAM
 *          v0.4 vectors and PolkaVM's default cost model use;
 *   full   the Gray Paper 0.8 model (PolkaVM 0.35's CostModelKind::Full):
 *          a block costs the cycles a simulation of an out-of-order
 *          pipeline takes to run it (4 decode slots per cycle, a 32-entry
 *          reorder buffer, ALU / load / store / mul / div units, register
 *          dependencies, per-instruction latencies, branch prediction from
 *          whether a branch's fall-through or target is `trap`/`unlikely`),
 *          minus a slack of 3, at least 1.  Loads take the cache model's
 *          memory access cost (L1 hit 4, L2 hit 25 as the JAM vectors use,
 *          L3 hit 37 cycles).
 *
 * Block costs are computed once per module, while the interpreter lays its
 * code out or the recompiler compiles (both walk the code with the shared
 * decoder and feed each block's instructions here), never per execution.
 *
 * Freestanding C11 (no libc): the zygote links it.
 */
#ifndef VMCORE_GAS_H
#define VMCORE_GAS_H

#include <stdint.h>

#include "vmcore/decoder.h"

/* vm_gas_model.kind */
#define VM_GAS_NAIVE 0
#define VM_GAS_FULL 1

/* Memory access costs of the full model's cache models (PolkaVM's
 * CacheModel::{L1Hit, L2Hit, L3Hit}); any value in 1..VM_GAS_MAX_MEMORY_COST
 * is accepted. */
#define VM_GAS_CACHE_L1_HIT 4
#define VM_GAS_CACHE_L2_HIT 25
#define VM_GAS_CACHE_L3_HIT 37
#define VM_GAS_MAX_MEMORY_COST 127

typedef struct vm_gas_model {
    int kind;               /* VM_GAS_NAIVE / VM_GAS_FULL */
    int memory_access_cost; /* full model: cycles of a load */
    /* naive model only: a cost per vm_op instead of 1 (VM_OP_COUNT + 1
     * entries, the last for the implicit trap; PolkaVM's "simple" cost
     * models), NULL = 1 each.  Block sums wrap at 2^32. */
    const uint32_t *cost;
} vm_gas_model;

/* 0 when the model is usable, -1 otherwise (unknown kind, memory access
 * cost out of range). */
int vm_gas_model_check(const vm_gas_model *model);

/* The reorder buffer size of the full model's pipeline (a power of two). */
#define VM_GAS_ROB_SIZE 32
/* Cycles the simulator schedules ahead (a power of two above every latency). */
#define VM_GAS_WHEEL 128

/* The fast path's capacity: instructions of a block it buffers (below
 * VM_GAS_ROB_SIZE, so its reorder buffer never fills). */
#define VM_GAS_FAST_MAX 16

/* A buffered instruction of the fast path, replayed into the pipeline
 * when the fast path cannot decide. */
typedef struct vm_gas_token {
    int8_t dst, src1, src2;  /* registers, -1: none */
    uint8_t kind;
    uint8_t latency;
    uint8_t slots;
    uint16_t units;
} vm_gas_token;

/* A block-cost calculator.  Feed it a block's instructions in order; after
 * the block's last one (an instruction that ends a basic block, or the
 * implicit trap) vm_gas_take() gives the cost and starts the next block.
 * Plain data: copy or discard freely, no cleanup.
 *
 * The full model's reorder buffer is kept by instruction sequence number
 * (slot = seq % VM_GAS_ROB_SIZE; in flight = [head, tail)): a register's
 * producer is a sequence number, and one older than `head` has retired,
 * so nothing needs clearing when a result is ready or a block ends.
 *
 * A block first takes the fast path: the schedule of a pipeline that never
 * runs short of execution units or start slots, computed per instruction
 * as it arrives (each starts once decoded and its inputs are ready).  At
 * the block's end that schedule is checked against the unit and start
 * limits; only a block that breaks them (or is longer than the buffer) is
 * replayed through the cycle simulation. */
typedef struct vm_gas_sim {
    /* configuration */
    const uint8_t *code;
    const uint32_t *op_cost;
    uint32_t code_len;
    uint8_t kind;
    uint8_t is_64_bit;
    uint8_t opcode_trap;     /* raw opcode bytes the branch rule looks for */
    uint8_t opcode_unlikely;
    uint8_t memory_access_cost;
    /* full model state */
    uint8_t finished;        /* the block's last instruction drained the pipeline */
    uint8_t executing;       /* started slots whose result is not done yet */
    uint8_t simulated;       /* this block went through the cycle simulation */
    /* naive: instructions so far; full: cycles so far */
    uint32_t cycles;
    uint32_t decode_left;    /* decode slots left this cycle */
    uint32_t resources;      /* free execution units, packed, with guard bits */
    uint32_t head, tail;     /* sequence numbers (0: none; the first is 1) */
    uint32_t decoding, waiting; /* reorder buffer slots by state */
    uint32_t alu_users;         /* slots whose instruction needs an ALU */
    uint32_t dep[VM_GAS_ROB_SIZE][2];  /* the producers (sequence numbers) each slot reads */
    uint32_t due[VM_GAS_ROB_SIZE];     /* the cycle each slot's result is ready (not started: ~0) */
    uint16_t required[VM_GAS_ROB_SIZE];/* units each slot holds while executing */
    uint8_t latency[VM_GAS_ROB_SIZE];  /* each slot's latency (cycles of execution) */
    /* By the cycle results are due (mod VM_GAS_WHEEL: latencies are
     * below it): how many, the units they release, which entries are used. */
    uint8_t wheel_count[VM_GAS_WHEEL];
    uint32_t wheel_units[VM_GAS_WHEEL];
    uint64_t wheel_used[VM_GAS_WHEEL / 64];
    uint32_t producer[16];   /* sequence number producing each register */
    /* fast path state (this block so far; `fast` = 0: in the pipeline) */
    uint8_t fast;
    uint8_t tokens;          /* buffered instructions */
    uint8_t started;         /* ... of which go through the reorder buffer */
    uint32_t base;           /* the cycle the block started at (fast-path cycles count on across blocks) */
    uint32_t fast_cycle;     /* the decode cycle */
    uint32_t fast_decode_left;
    uint32_t fast_last_due;  /* the latest result (at least `base`) */
    uint32_t ready[16];      /* the cycle each register's value is ready */
    uint32_t start_at[VM_GAS_FAST_MAX], due_at[VM_GAS_FAST_MAX];
    uint16_t units_of[VM_GAS_FAST_MAX];
    vm_gas_token token[VM_GAS_FAST_MAX];
} vm_gas_sim;

/* Set up for `isa` over the whole code (the branch rule looks at the
 * opcode bytes after a branch and at its target).  `model` must pass
 * vm_gas_model_check. */
void vm_gas_init(vm_gas_sim *sim, const vm_gas_model *model, vm_isa isa, const uint8_t *code, uint32_t code_len);

/* One instruction of the current block (as vm_decode gives it). */
void vm_gas_feed(vm_gas_sim *sim, const vm_instruction *ins);

/* The implicit trap (VM_OP_INVALID) that ends a block at `offset`. */
void vm_gas_feed_invalid(vm_gas_sim *sim);

/* The cost of the block fed since the last take (call it right after the
 * block's last instruction); resets for the next block. */
uint32_t vm_gas_take(vm_gas_sim *sim);

/* The cost of the basic block starting at `pc`, as the engines charge it:
 * the instructions from `pc` up to and including the first one that ends a
 * block (or the implicit trap); a pc that is not an instruction start
 * costs what a lone trap does, as does a pc at or past the end. */
uint32_t vm_gas_block_cost_at(const vm_gas_model *model, vm_isa isa, const uint8_t *code, uint32_t code_len,
                              const uint8_t *bitmask, uint32_t pc);

/* Every basic block of the code with its cost, in program order, as the
 * engines lay the code out (the walk from offset 0 that continues past
 * gaps in the bitmask; `bounded`: stop at the first such gap, as
 * PolkaVM's spectool lists a vector's blocks).  Writes up to `capacity`
 * entries (code_len + 1 always suffice); returns how many blocks there are. */
uint32_t vm_gas_blocks(const vm_gas_model *model, vm_isa isa, const uint8_t *code, uint32_t code_len,
                       const uint8_t *bitmask, int bounded, uint32_t *pcs, uint32_t *costs, uint32_t capacity);

#endif
