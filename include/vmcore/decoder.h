/* Instruction decoding shared by every backend and by Python tools.
 *
 * Freestanding: no libc, so the zygote can embed it.  All functions are
 * total: any code offset of any byte string decodes to something (possibly
 * the `invalid` pseudo-instruction), never reads out of bounds.
 */
#ifndef VMCORE_DECODER_H
#define VMCORE_DECODER_H

#include <stdint.h>

#include "vmcore/opcodes.h"

typedef enum vm_isa {
#define VM_ISA_ENUM(id, name, is64) VM_ISA_##id,
    VM_ISAS(VM_ISA_ENUM)
#undef VM_ISA_ENUM
    VM_ISA_COUNT
} vm_isa;

typedef enum vm_format {
#define VM_FORMAT_ENUM(id) VM_FMT_##id,
    VM_FORMATS(VM_FORMAT_ENUM)
#undef VM_FORMAT_ENUM
    VM_FMT_COUNT
} vm_format;

typedef enum vm_op {
#define VM_OP_ENUM(name, fmt, a, b, c, d, flags) VM_OP_##name,
    VM_OPCODES(VM_OP_ENUM)
#undef VM_OP_ENUM
    VM_OP_COUNT,
    /* Not an opcode: an undefined byte, or the implicit trap past the end
     * of the code / after a too-long gap in the bitmask. */
    VM_OP_INVALID = VM_OP_COUNT
} vm_op;

/* The maximum distance between two instruction starts the bitmask can
 * express; a longer gap means the next instruction is invalid. */
#define VM_BITMASK_MAX 24u

typedef struct vm_instruction {
    uint32_t offset;   /* program counter of this instruction */
    uint32_t next;     /* offset of the next instruction (offset + 1 + skip) */
    uint16_t op;       /* vm_op */
    uint8_t format;    /* vm_format */
    uint8_t reg[3];    /* register operands, in the order the assembler writes them */
    uint32_t imm1;     /* first immediate, sign-extended to 32 bits; offsets are absolute */
    uint32_t imm2;     /* second immediate, likewise */
    uint64_t imm64;    /* load_imm64 only */
    uint8_t next_is_invalid; /* an implicit trap follows at `next` */
} vm_instruction;

/* Builds the lookup tables; call once before decoding (not thread-safe). */
void vm_decoder_init(void);

/* opcode byte -> vm_op for an ISA (VM_OP_INVALID when undefined). */
vm_op vm_isa_decode_opcode(vm_isa isa, uint8_t byte);
/* vm_op -> opcode byte for an ISA, or -1 when the ISA lacks it. */
int vm_isa_encode_opcode(vm_isa isa, vm_op op);
int vm_isa_is_64_bit(vm_isa isa);
const char *vm_isa_name(vm_isa isa);
const char *vm_op_name(vm_op op);
vm_format vm_op_format(vm_op op);
int vm_op_flags(vm_op op);

/* Why the instruction `op` at `pc` panicked (vm_trap_reason): the one
 * rule every engine that knows only where it stopped classifies by.  Only
 * a few instructions can panic, each for one reason: `trap`, an invalid or
 * implicit instruction (END_OF_CODE at or past code_len), a fallthrough
 * off the end, a jump or branch (its target), a memory access. */
int vm_trap_reason_of(vm_op op, uint32_t pc, uint32_t code_len);

/* Whether `offset` is marked as an instruction start. */
int vm_bitmask_bit(const uint8_t *bitmask, uint32_t code_len, uint32_t offset);

/* Decode the instruction at `offset` (which need not be an instruction
 * start: the caller decides what that means).  offset >= code_len decodes
 * as VM_OP_INVALID with length 1. */
void vm_decode(vm_isa isa, const uint8_t *code, uint32_t code_len, const uint8_t *bitmask,
               uint32_t offset, vm_instruction *out);

/* The reference's jump-target rule: an instruction start that is offset 0
 * or directly follows an instruction that ends a basic block. */
int vm_is_basic_block_start(vm_isa isa, const uint8_t *code, uint32_t code_len,
                            const uint8_t *bitmask, uint32_t offset);

/* Test hook: vm_decode's two paths (the unchecked one inside the code,
 * which the recompiler inlines, and the bounds-checked one) and
 * vm_is_basic_block_start's two, at every offset the fast ones take; -1
 * when they agree, else the first offset that differs (-2: bad isa).
 * (Named for its first home, the recompiler: the Cython layer calls it.) */
int64_t vm_x64_decoder_selftest(int isa, const uint8_t *code, uint32_t code_len, const uint8_t *bitmask);

#endif
