/* The one instruction decoder, as static inlines: vm_decode (decoder.c)
 * is built from these, and the recompiler inlines the same functions into
 * its per-opcode copies (with a constant format the operand switch folds
 * away).  Freestanding: no libc.
 *
 * The unchecked head reads a 64-bit bitmask window and the operands read
 * up to 16 bytes past the opcode: callers use it only where
 * offset + VM_DECODE_MARGIN <= code_len; vm_decode takes a bounds-checked
 * path for the rest of the code.
 */
#ifndef VMCORE_DECODER_INLINE_H
#define VMCORE_DECODER_INLINE_H

#include <stdint.h>

#include "vmcore/decoder.h"

/* Forced inlining lets every per-opcode copy fold its own case; without
 * optimisation it would only multiply the code. */
#ifdef __OPTIMIZE__
#define VM_DECODE_INLINE static inline __attribute__((always_inline))
#else
#define VM_DECODE_INLINE static inline
#endif

/* origin + 64 bits of bitmask and 16 operand bytes stay inside the code */
#define VM_DECODE_MARGIN 72u

static inline uint32_t vm_decode_le32(const uint8_t *p)
{
    uint32_t v;
    __builtin_memcpy(&v, p, 4);
    return v;
}

static inline uint64_t vm_decode_le64(const uint8_t *p)
{
    uint64_t v;
    __builtin_memcpy(&v, p, 8);
    return v;
}

/* length (0..4) little-endian bytes, sign-extended to 32 bits; p has 4
 * readable bytes */
static inline uint32_t vm_decode_imm(const uint8_t *p, uint32_t length)
{
    if (length == 0)
        return 0;
    uint32_t value = vm_decode_le32(p), shift = 32 - 8 * length;
    uint32_t sign = 1u << (31 - shift);
    value = (value << shift) >> shift; /* the low `length` bytes */
    return (value ^ sign) - sign;
}

static inline uint32_t vm_decode_clamp4(int32_t v) { return v < 0 ? 0u : (v > 4 ? 4u : (uint32_t)v); }
static inline uint8_t vm_decode_reg(uint32_t nibble) { nibble &= 15; return (uint8_t)(nibble > 12 ? 12 : nibble); }

/* The 25 bitmask bits after `offset` (bit k: offset + 1 + k starts an
 * instruction); 8 bitmask bytes from (offset + 1) / 8 are readable. */
static inline uint64_t vm_decode_next_window(const uint8_t *bitmask, uint32_t offset)
{
    uint32_t origin = offset + 1;
    return (vm_decode_le64(bitmask + (origin >> 3)) >> (origin & 7)) & ((1ull << (VM_BITMASK_MAX + 1)) - 1);
}

/* Two immediates from c + at: the first's length is `l1` (from a nibble,
 * capped at 4), the second takes what is left of the skip (at most 4). */
VM_DECODE_INLINE void vm_decode_two_imms(const uint8_t *c, uint32_t at, uint32_t l1, int32_t skip,
                                         vm_instruction *out)
{
    if (l1 > 4)
        l1 = 4;
    uint32_t l2 = vm_decode_clamp4(skip - (int32_t)l1 - (int32_t)at);
    out->imm1 = vm_decode_imm(c + at, l1);
    out->imm2 = vm_decode_imm(c + at + l1, l2);
}

/* The operands of an instruction of `format` whose operand bytes start at
 * c (skip of them before the next start; 16 readable bytes: operands may
 * read past `skip`, the reference's do too). */
VM_DECODE_INLINE void vm_decode_operands(const uint8_t *c, uint32_t skip, uint32_t offset, uint32_t format,
                                         vm_instruction *out)
{
    int32_t s = (int32_t)skip;
    switch ((vm_format)format) {
    case VM_FMT_ARGLESS:
        break;
    case VM_FMT_IMM:
        out->imm1 = vm_decode_imm(c, skip < 4 ? skip : 4);
        break;
    case VM_FMT_OFFSET:
        out->imm1 = offset + vm_decode_imm(c, skip < 4 ? skip : 4);
        break;
    case VM_FMT_IMM_IMM:
        vm_decode_two_imms(c, 1, c[0] & 7u, s, out);
        break;
    case VM_FMT_REG_IMM:
        out->reg[0] = vm_decode_reg(c[0]);
        out->imm1 = vm_decode_imm(c + 1, vm_decode_clamp4(s - 1));
        break;
    case VM_FMT_REG_IMM_IMM:
    case VM_FMT_REG_IMM_OFFSET:
        out->reg[0] = vm_decode_reg(c[0]);
        vm_decode_two_imms(c, 1, (c[0] >> 4) & 7u, s, out);
        if (format == VM_FMT_REG_IMM_OFFSET)
            out->imm2 += offset;
        break;
    case VM_FMT_REG_REG_IMM_IMM:
        out->reg[0] = vm_decode_reg(c[0]);
        out->reg[1] = vm_decode_reg((uint32_t)c[0] >> 4);
        vm_decode_two_imms(c, 2, c[1] & 7u, s, out);
        break;
    case VM_FMT_REG_REG_IMM:
    case VM_FMT_REG_REG_OFFSET:
        out->reg[0] = vm_decode_reg(c[0]);
        out->reg[1] = vm_decode_reg((uint32_t)c[0] >> 4);
        out->imm1 = vm_decode_imm(c + 1, vm_decode_clamp4(s - 1));
        if (format == VM_FMT_REG_REG_OFFSET)
            out->imm1 += offset;
        break;
    case VM_FMT_REG_REG_REG:
        /* dst is in the second byte, the sources in the first */
        out->reg[0] = vm_decode_reg(c[1]);
        out->reg[1] = vm_decode_reg(c[0]);
        out->reg[2] = vm_decode_reg((uint32_t)c[0] >> 4);
        break;
    case VM_FMT_REG_REG:
        out->reg[0] = vm_decode_reg(c[0]);
        out->reg[1] = vm_decode_reg((uint32_t)c[0] >> 4);
        break;
    case VM_FMT_REG_IMM64:
        out->reg[0] = vm_decode_reg(c[0]);
        out->imm64 = vm_decode_le64(c + 1);
        break;
    default:
        break;
    }
}

/* What every instruction needs (op, format, length, next start; operands
 * cleared), without bounds checks: offset + VM_DECODE_MARGIN <= code_len,
 * so the next instruction start or the implicit-trap cap lies inside the
 * code.  op_of: the ISA's opcode byte -> vm_op; format_of: vm_op ->
 * vm_format.  Returns the skip. */
VM_DECODE_INLINE uint32_t vm_decode_head_unchecked(const uint8_t *op_of, const uint8_t *format_of,
                                                   const uint8_t *code, const uint8_t *bitmask, uint32_t offset,
                                                   vm_instruction *out)
{
    uint64_t w = vm_decode_next_window(bitmask, offset);
    /* w == 0: the next start is past the cap, an implicit trap follows */
    uint32_t skip = w ? (uint32_t)__builtin_ctzll(w) : VM_BITMASK_MAX;
    uint32_t op = op_of[code[offset]];
    out->offset = offset;
    out->next = offset + skip + 1;
    out->op = (uint16_t)op;
    out->format = format_of[op];
    out->next_is_invalid = (uint8_t)(w == 0);
    out->reg[0] = out->reg[1] = out->reg[2] = 0;
    out->imm1 = out->imm2 = 0;
    out->imm64 = 0;
    return skip;
}

/* vm_is_basic_block_start with one bitmask load, for 64 <= t and
 * t + 64 <= code_len: an instruction start whose nearest earlier start
 * within the bitmask's reach (24 bytes back, 25 unless t is a multiple of
 * 8: the reference looks in the 32 bits ending with t's byte) is an
 * instruction that ends a basic block.  flags_of: vm_op -> VM_F_* flags. */
static inline int vm_block_start_unchecked(const uint8_t *op_of, const uint8_t *flags_of, const uint8_t *code,
                                           const uint8_t *bitmask, uint32_t t)
{
    if (!((bitmask[t >> 3] >> (t & 7)) & 1))
        return 0;
    uint32_t reach = VM_BITMASK_MAX + ((t & 7) ? 1u : 0u);
    uint32_t lo = t - reach;
    uint64_t w = (vm_decode_le64(bitmask + (lo >> 3)) >> (lo & 7)) & ((1ull << reach) - 1);
    if (!w)
        return 0;
    uint32_t prev = lo + 63u - (uint32_t)__builtin_clzll(w);
    uint32_t op = op_of[code[prev]];
    return op != VM_OP_INVALID && (flags_of[op] & VM_F_ENDS_BLOCK);
}

#endif
