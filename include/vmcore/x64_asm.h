/* A small x86-64 encoder: the instruction forms the recompiler emits.
 *
 * Every encoder is a X64_INLINE function writing at buf->p (the
 * recompiler emits a few million of them per megabyte of guest code, so no
 * call per instruction); the caller guarantees room (the recompiler reserves
 * a bound per guest instruction, X64_MAX_INSN bytes per native one).
 * Freestanding C11, no libc.
 *
 * Registers are numbered as the hardware does (0 rax .. 15 r15).  Sizes are
 * in bytes (1, 2, 4, 8).  Memory operands are [base + index*scale + disp32]
 * with base/index X64_NONE when absent, or base X64_RIP for rip-relative.
 * Condition codes are the hardware's (X64_CC_*), shared by jcc/setcc/cmovcc.
 *
 * vmcore/_native/x64_asm.c adds the out-of-line pieces: label patching and
 * a form-table entry point the tests drive against a disassembler.
 */
#ifndef VMCORE_X64_ASM_H
#define VMCORE_X64_ASM_H

#include <stddef.h>
#include <stdint.h>

enum {
    X64_RAX, X64_RCX, X64_RDX, X64_RBX, X64_RSP, X64_RBP, X64_RSI, X64_RDI,
    X64_R8, X64_R9, X64_R10, X64_R11, X64_R12, X64_R13, X64_R14, X64_R15,
};
#define X64_NONE (-1)
#define X64_RIP (-2)

/* Longest instruction any encoder here writes (prefixes + REX/VEX + opcode
 * + ModRM + SIB + disp32 + imm32, or movabs). */
#define X64_MAX_INSN 15

/* Every encoder is inlined: with constant operands most of the REX/ModRM
 * logic folds away. */
#define X64_INLINE static inline __attribute__((always_inline))

typedef enum x64_cc {
    X64_CC_O = 0, X64_CC_NO = 1, X64_CC_B = 2, X64_CC_AE = 3, X64_CC_E = 4, X64_CC_NE = 5, X64_CC_BE = 6,
    X64_CC_A = 7, X64_CC_S = 8, X64_CC_NS = 9, X64_CC_P = 10, X64_CC_NP = 11, X64_CC_L = 12, X64_CC_GE = 13,
    X64_CC_LE = 14, X64_CC_G = 15,
} x64_cc;

/* The classic ALU group (opcode = op * 8 + form; 0x80/0x81/0x83 /op). */
typedef enum x64_alu {
    X64_ADD = 0, X64_OR = 1, X64_ADC = 2, X64_SBB = 3, X64_AND = 4, X64_SUB = 5, X64_XOR = 6, X64_CMP = 7,
} x64_alu;

/* Group 2 shifts and rotates (0xC1/0xD3 /op). */
typedef enum x64_shift {
    X64_ROL = 0, X64_ROR = 1, X64_SHL = 4, X64_SHR = 5, X64_SAR = 7,
} x64_shift;

/* Group 3 unary ops (0xF7 /op). */
typedef enum x64_unary {
    X64_NOT = 2, X64_NEG = 3, X64_MUL = 4, X64_IMUL1 = 5, X64_DIV = 6, X64_IDIV = 7,
} x64_unary;

/* BMI shift-by-register forms (VEX 0F38 F7, the prefix selects the op). */
typedef enum x64_shiftx {
    X64_SHLX = 1, /* 66 */
    X64_SARX = 2, /* F3 */
    X64_SHRX = 3, /* F2 */
} x64_shiftx_op;

/* lzcnt/tzcnt/popcnt: F3 0F xx. */
typedef enum x64_bitcount {
    X64_POPCNT = 0xb8, X64_TZCNT = 0xbc, X64_LZCNT = 0xbd,
} x64_bitcount_op;

typedef struct x64_mem {
    int8_t base;   /* register, X64_NONE or X64_RIP */
    int8_t index;  /* register (not rsp) or X64_NONE */
    uint8_t scale; /* log2: 0..3 */
    int32_t disp;
} x64_mem;

typedef struct x64_buf {
    uint8_t *p;     /* next byte */
    uint8_t *start; /* offset 0 */
} x64_buf;

X64_INLINE x64_mem x64_base_disp(int base, int32_t disp)
{
    x64_mem m = {(int8_t)base, X64_NONE, 0, disp};
    return m;
}

X64_INLINE x64_mem x64_base_index(int base, int index, int scale, int32_t disp)
{
    x64_mem m = {(int8_t)base, (int8_t)index, (uint8_t)scale, disp};
    return m;
}

X64_INLINE size_t x64_offset(const x64_buf *b) { return (size_t)(b->p - b->start); }

X64_INLINE void x64_u8(x64_buf *b, unsigned v) { *b->p++ = (uint8_t)v; }

X64_INLINE void x64_u16(x64_buf *b, unsigned v)
{
    uint8_t *p = b->p;
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    b->p = p + 2;
}

X64_INLINE void x64_u32(x64_buf *b, uint32_t v)
{
    uint8_t *p = b->p;
    __builtin_memcpy(p, &v, 4); /* x86-64 is little endian */
    b->p = p + 4;
}

X64_INLINE void x64_u64(x64_buf *b, uint64_t v)
{
    uint8_t *p = b->p;
    __builtin_memcpy(p, &v, 8);
    b->p = p + 8;
}

X64_INLINE int x64_fits_i8(int64_t v) { return v >= -128 && v <= 127; }
X64_INLINE int x64_fits_i32(int64_t v) { return v >= INT32_MIN && v <= INT32_MAX; }

/* An immediate: 1 or 2 bytes, else 4 (an imm32, also for 8-byte operations). */
X64_INLINE void x64__imm(x64_buf *b, int bytes, int32_t imm)
{
    if (bytes == 1)
        x64_u8(b, (uint8_t)imm);
    else if (bytes == 2)
        x64_u16(b, (uint16_t)imm);
    else
        x64_u32(b, (uint32_t)imm);
}

/* ---- the generic encoder ----
 *
 * `size` selects the operand-size prefix/REX.W (1 and 4 need none; 2 gets
 * 0x66; 8 gets REX.W).  `prefix` is a mandatory prefix (0xF2/0xF3) or 0.
 * `op` holds 1..3 opcode bytes, most significant first (len in oplen).
 * `reg` is the ModRM reg field (a register or an opcode extension).  The
 * r/m operand is either a register (rm >= 0, mem NULL) or memory.
 * byte_regs: 1 when reg and/or rm name 8-bit registers (spl..dil need REX). */

/* The pieces write through a local cursor and hand it back (stores
 * through a uint8_t pointer could alias the buffer's own cursor, which
 * would force a reload after every byte). */
X64_INLINE uint8_t *x64__prefixes(uint8_t *p, int size, int prefix, int w, int r, int x, int bb, int force)
{
    if (size == 2)
        *p++ = 0x66;
    if (prefix)
        *p++ = (uint8_t)prefix;
    unsigned rex = 0x40u | (w ? 8u : 0u) | ((unsigned)(r >> 3) & 1u) << 2 | ((unsigned)(x >> 3) & 1u) << 1 |
                   ((unsigned)(bb >> 3) & 1u);
    if (rex != 0x40u || force)
        *p++ = (uint8_t)rex;
    return p;
}

X64_INLINE void x64__rex_prefix(x64_buf *b, int size, int prefix, int w, int r, int x, int bb, int force)
{
    b->p = x64__prefixes(b->p, size, prefix, w, r, x, bb, force);
}

X64_INLINE uint8_t *x64__opcode_bytes(uint8_t *p, uint32_t op, int oplen)
{
    if (oplen >= 3)
        *p++ = (uint8_t)(op >> 16);
    if (oplen >= 2)
        *p++ = (uint8_t)(op >> 8);
    *p++ = (uint8_t)op;
    return p;
}

X64_INLINE void x64__opcode(x64_buf *b, uint32_t op, int oplen) { b->p = x64__opcode_bytes(b->p, op, oplen); }

X64_INLINE uint8_t *x64__put32(uint8_t *p, uint32_t v)
{
    __builtin_memcpy(p, &v, 4);
    return p + 4;
}

/* ModRM (+ SIB + displacement) for a memory operand.  Rip-relative
 * displacements count from the end of the whole instruction (the caller
 * accounts for any immediate that follows). */
X64_INLINE uint8_t *x64__modrm_mem_bytes(uint8_t *p, int reg, x64_mem m)
{
    unsigned r = (unsigned)reg & 7u;
    if (m.base == X64_RIP) {
        *p++ = (uint8_t)(0x05u | r << 3);
        return x64__put32(p, (uint32_t)m.disp);
    }
    /* no index: SIB index 100 with scale 0 (the canonical form) */
    unsigned scale = m.index == X64_NONE ? 0u : (unsigned)m.scale;
    if (m.base == X64_NONE) {
        /* [index*scale + disp32] or [disp32] (SIB with no base) */
        unsigned index = m.index == X64_NONE ? 4u : ((unsigned)m.index & 7u);
        *p++ = (uint8_t)(0x04u | r << 3);
        *p++ = (uint8_t)(scale << 6 | index << 3 | 5u);
        return x64__put32(p, (uint32_t)m.disp);
    }
    unsigned base = (unsigned)m.base & 7u;
    unsigned mod;
    if (m.disp == 0 && base != 5u)
        mod = 0;
    else if (x64_fits_i8(m.disp))
        mod = 1;
    else
        mod = 2;
    if (m.index != X64_NONE || base == 4u) {
        unsigned index = m.index == X64_NONE ? 4u : ((unsigned)m.index & 7u);
        *p++ = (uint8_t)(mod << 6 | r << 3 | 4u);
        *p++ = (uint8_t)(scale << 6 | index << 3 | base);
    } else {
        *p++ = (uint8_t)(mod << 6 | r << 3 | base);
    }
    if (mod == 1)
        *p++ = (uint8_t)(int8_t)m.disp;
    else if (mod == 2)
        p = x64__put32(p, (uint32_t)m.disp);
    return p;
}

X64_INLINE void x64__modrm_mem(x64_buf *b, int reg, x64_mem m) { b->p = x64__modrm_mem_bytes(b->p, reg, m); }

X64_INLINE int x64__byte_needs_rex(int reg) { return reg >= 4 && reg <= 7; }

/* op reg, r/m(register) */
X64_INLINE void x64__rr(x64_buf *b, int size, int prefix, uint32_t op, int oplen, int reg, int rm, int byte_regs)
{
    int force = byte_regs && ((byte_regs & 1 && x64__byte_needs_rex(reg)) || (byte_regs & 2 && x64__byte_needs_rex(rm)));
    uint8_t *p = x64__prefixes(b->p, size, prefix, size == 8, reg, 0, rm, force);
    p = x64__opcode_bytes(p, op, oplen);
    *p++ = (uint8_t)(0xc0u | ((unsigned)reg & 7u) << 3 | ((unsigned)rm & 7u));
    b->p = p;
}

/* op reg, r/m(memory) */
X64_INLINE void x64__rm(x64_buf *b, int size, int prefix, uint32_t op, int oplen, int reg, x64_mem m, int byte_reg)
{
    int force = byte_reg && x64__byte_needs_rex(reg);
    int x = m.index == X64_NONE ? 0 : m.index;
    int bb = m.base < 0 ? 0 : m.base;
    uint8_t *p = x64__prefixes(b->p, size, prefix, size == 8, reg, x, bb, force);
    p = x64__opcode_bytes(p, op, oplen);
    b->p = x64__modrm_mem_bytes(p, reg, m);
}

/* VEX (3-byte) encoded op: reg, vvvv, r/m(register).  map: 2 = 0F38, 3 = 0F3A.
 * pp: 0 none, 1 66, 2 F3, 3 F2. */
X64_INLINE void x64__vex_rr(x64_buf *b, int w, int map, int pp, uint8_t op, int reg, int vvvv, int rm)
{
    uint8_t *p = b->p;
    p[0] = 0xc4;
    p[1] = (uint8_t)((unsigned)(((reg >> 3) & 1) ^ 1) << 7 | 1u << 6 | (unsigned)(((rm >> 3) & 1) ^ 1) << 5 |
                     (unsigned)map);
    p[2] = (uint8_t)((unsigned)(w ? 1 : 0) << 7 | ((~(unsigned)vvvv) & 15u) << 3 | (unsigned)pp);
    p[3] = op;
    p[4] = (uint8_t)(0xc0u | ((unsigned)reg & 7u) << 3 | ((unsigned)rm & 7u));
    b->p = p + 5;
}

/* ---- moves ---- */

/* mov dst, src (size 1, 2, 4 or 8; 4 zero-extends into the full register) */
X64_INLINE void x64_mov_rr(x64_buf *b, int size, int dst, int src)
{
    x64__rr(b, size, 0, size == 1 ? 0x88 : 0x89, 1, src, dst, size == 1 ? 3 : 0);
}

/* mov dst, [m] */
X64_INLINE void x64_load(x64_buf *b, int size, int dst, x64_mem m)
{
    x64__rm(b, size, 0, size == 1 ? 0x8a : 0x8b, 1, dst, m, size == 1);
}

/* mov [m], src */
X64_INLINE void x64_store(x64_buf *b, int size, x64_mem m, int src)
{
    x64__rm(b, size, 0, size == 1 ? 0x88 : 0x89, 1, src, m, size == 1);
}

/* mov [m], imm (size 8: imm32 sign-extended) */
X64_INLINE void x64_store_imm(x64_buf *b, int size, x64_mem m, int32_t imm)
{
    x64__rm(b, size, 0, size == 1 ? 0xc6 : 0xc7, 1, 0, m, 0);
    x64__imm(b, size, imm);
}

/* mov r32, imm32 (zero-extends) */
X64_INLINE void x64_mov_r32_imm(x64_buf *b, int dst, uint32_t imm)
{
    x64__rex_prefix(b, 4, 0, 0, 0, 0, dst, 0);
    x64_u8(b, 0xb8u + ((unsigned)dst & 7u));
    x64_u32(b, imm);
}

/* mov r64, simm32 (sign-extended; REX.W C7 /0) */
X64_INLINE void x64_mov_r64_simm32(x64_buf *b, int dst, int32_t imm)
{
    x64__rr(b, 8, 0, 0xc7, 1, 0, dst, 0);
    x64_u32(b, (uint32_t)imm);
}

/* movabs r64, imm64 */
X64_INLINE void x64_movabs(x64_buf *b, int dst, uint64_t imm)
{
    x64__rex_prefix(b, 8, 0, 1, 0, 0, dst, 0);
    x64_u8(b, 0xb8u + ((unsigned)dst & 7u));
    x64_u64(b, imm);
}

/* dst = imm (64-bit value), shortest form; may clobber flags (xor). */
X64_INLINE void x64_mov_imm64(x64_buf *b, int dst, uint64_t imm)
{
    if (imm == 0) {
        x64__rr(b, 4, 0, 0x31, 1, dst, dst, 0); /* xor r32, r32 */
    } else if (imm <= 0xffffffffull) {
        x64_mov_r32_imm(b, dst, (uint32_t)imm);
    } else if ((int64_t)imm >= INT32_MIN && (int64_t)imm < 0) {
        x64_mov_r64_simm32(b, dst, (int32_t)imm);
    } else {
        x64_movabs(b, dst, imm);
    }
}

/* dst = imm without touching flags */
X64_INLINE void x64_mov_imm64_keep_flags(x64_buf *b, int dst, uint64_t imm)
{
    if (imm <= 0xffffffffull)
        x64_mov_r32_imm(b, dst, (uint32_t)imm);
    else if ((int64_t)imm >= INT32_MIN && (int64_t)imm < 0)
        x64_mov_r64_simm32(b, dst, (int32_t)imm);
    else
        x64_movabs(b, dst, imm);
}

/* movzx dst, src (src_size 1 or 2; dst_size 4 or 8) */
X64_INLINE void x64_movzx_rr(x64_buf *b, int dst_size, int src_size, int dst, int src)
{
    x64__rr(b, dst_size, 0, src_size == 1 ? 0x0fb6 : 0x0fb7, 2, dst, src, src_size == 1 ? 2 : 0);
}

X64_INLINE void x64_movzx_rm(x64_buf *b, int dst_size, int src_size, int dst, x64_mem m)
{
    x64__rm(b, dst_size, 0, src_size == 1 ? 0x0fb6 : 0x0fb7, 2, dst, m, 0);
}

/* movsx dst, src (src_size 1, 2, or 4 = movsxd; dst_size 4 or 8) */
X64_INLINE void x64_movsx_rr(x64_buf *b, int dst_size, int src_size, int dst, int src)
{
    if (src_size == 4)
        x64__rr(b, dst_size, 0, 0x63, 1, dst, src, 0);
    else
        x64__rr(b, dst_size, 0, src_size == 1 ? 0x0fbe : 0x0fbf, 2, dst, src, src_size == 1 ? 2 : 0);
}

X64_INLINE void x64_movsx_rm(x64_buf *b, int dst_size, int src_size, int dst, x64_mem m)
{
    if (src_size == 4)
        x64__rm(b, dst_size, 0, 0x63, 1, dst, m, 0);
    else
        x64__rm(b, dst_size, 0, src_size == 1 ? 0x0fbe : 0x0fbf, 2, dst, m, 0);
}

/* movsxd r64, r32: the 32-bit result sign-extended in place */
X64_INLINE void x64_sext32(x64_buf *b, int dst, int src) { x64_movsx_rr(b, 8, 4, dst, src); }

/* lea dst, [m] */
X64_INLINE void x64_lea(x64_buf *b, int size, int dst, x64_mem m) { x64__rm(b, size, 0, 0x8d, 1, dst, m, 0); }

/* ---- ALU ---- */

/* op dst, src */
X64_INLINE void x64_alu_rr(x64_buf *b, x64_alu op, int size, int dst, int src)
{
    x64__rr(b, size, 0, (uint32_t)op * 8u + (size == 1 ? 0u : 1u), 1, src, dst, size == 1 ? 3 : 0);
}

/* op dst, [m] */
X64_INLINE void x64_alu_rm(x64_buf *b, x64_alu op, int size, int dst, x64_mem m)
{
    x64__rm(b, size, 0, (uint32_t)op * 8u + (size == 1 ? 2u : 3u), 1, dst, m, size == 1);
}

/* The ALU group's immediate form, shortest first: 0x80 (byte op, imm8),
 * 0x83 (imm8 sign-extended) or 0x81 (imm16/imm32). */
X64_INLINE uint32_t x64__alu_imm_opcode(int size, int32_t imm)
{
    return size == 1 ? 0x80u : x64_fits_i8(imm) ? 0x83u : 0x81u;
}

/* The immediate's width in that form. */
X64_INLINE int x64__alu_imm_bytes(uint32_t opcode, int size) { return opcode == 0x81u ? size : 1; }

/* op dst, imm (sign-extended to the operand size) */
X64_INLINE void x64_alu_ri(x64_buf *b, x64_alu op, int size, int dst, int32_t imm)
{
    uint32_t opcode = x64__alu_imm_opcode(size, imm);
    x64__rr(b, size, 0, opcode, 1, (int)op, dst, size == 1 ? 2 : 0);
    x64__imm(b, x64__alu_imm_bytes(opcode, size), imm);
}

/* op [m], imm */
X64_INLINE void x64_alu_mi(x64_buf *b, x64_alu op, int size, x64_mem m, int32_t imm)
{
    uint32_t opcode = x64__alu_imm_opcode(size, imm);
    x64__rm(b, size, 0, opcode, 1, (int)op, m, 0);
    x64__imm(b, x64__alu_imm_bytes(opcode, size), imm);
}

/* op [m], imm32 always in the 4-byte form (patchable; size 4 or 8) */
X64_INLINE void x64_alu_mi32(x64_buf *b, x64_alu op, int size, x64_mem m, int32_t imm)
{
    x64__rm(b, size, 0, 0x81, 1, (int)op, m, 0);
    x64_u32(b, (uint32_t)imm);
}

/* op [m], src */
X64_INLINE void x64_alu_mr(x64_buf *b, x64_alu op, int size, x64_mem m, int src)
{
    x64__rm(b, size, 0, (uint32_t)op * 8u + (size == 1 ? 0u : 1u), 1, src, m, size == 1);
}

/* test a, b */
X64_INLINE void x64_test_rr(x64_buf *b, int size, int a, int c)
{
    x64__rr(b, size, 0, size == 1 ? 0x84 : 0x85, 1, c, a, size == 1 ? 3 : 0);
}

/* test r, imm */
X64_INLINE void x64_test_ri(x64_buf *b, int size, int r, int32_t imm)
{
    x64__rr(b, size, 0, size == 1 ? 0xf6 : 0xf7, 1, 0, r, size == 1 ? 2 : 0);
    x64__imm(b, size, imm);
}

/* imul dst, src */
X64_INLINE void x64_imul_rr(x64_buf *b, int size, int dst, int src) { x64__rr(b, size, 0, 0x0faf, 2, dst, src, 0); }

/* imul dst, src, imm */
X64_INLINE void x64_imul_rri(x64_buf *b, int size, int dst, int src, int32_t imm)
{
    int short_imm = x64_fits_i8(imm);
    x64__rr(b, size, 0, short_imm ? 0x6b : 0x69, 1, dst, src, 0);
    x64__imm(b, short_imm ? 1 : size, imm);
}

/* not/neg/mul/imul/div/idiv r */
X64_INLINE void x64_unary_r(x64_buf *b, x64_unary op, int size, int r)
{
    x64__rr(b, size, 0, size == 1 ? 0xf6 : 0xf7, 1, (int)op, r, size == 1 ? 2 : 0);
}

/* not/neg/mul/imul/div/idiv [m] */
X64_INLINE void x64_unary_m(x64_buf *b, x64_unary op, int size, x64_mem m)
{
    x64__rm(b, size, 0, size == 1 ? 0xf6 : 0xf7, 1, (int)op, m, 0);
}

/* cdq (size 4) / cqo (size 8): sign-extend eax/rax into edx/rdx */
X64_INLINE void x64_cdq_cqo(x64_buf *b, int size)
{
    if (size == 8)
        x64_u8(b, 0x48);
    x64_u8(b, 0x99);
}

/* shift/rotate r by imm */
X64_INLINE void x64_shift_ri(x64_buf *b, x64_shift op, int size, int r, uint8_t imm)
{
    if (imm == 1) {
        x64__rr(b, size, 0, size == 1 ? 0xd0 : 0xd1, 1, (int)op, r, size == 1 ? 2 : 0);
    } else {
        x64__rr(b, size, 0, size == 1 ? 0xc0 : 0xc1, 1, (int)op, r, size == 1 ? 2 : 0);
        x64_u8(b, imm);
    }
}

/* shift/rotate r by cl */
X64_INLINE void x64_shift_rcl(x64_buf *b, x64_shift op, int size, int r)
{
    x64__rr(b, size, 0, size == 1 ? 0xd2 : 0xd3, 1, (int)op, r, size == 1 ? 2 : 0);
}

/* shlx/shrx/sarx dst, src, count (BMI2; size 4 or 8) */
X64_INLINE void x64_shiftx(x64_buf *b, x64_shiftx_op op, int size, int dst, int src, int count)
{
    x64__vex_rr(b, size == 8, 2, (int)op, 0xf7, dst, count, src);
}

/* rorx dst, src, imm (BMI2) */
X64_INLINE void x64_rorx(x64_buf *b, int size, int dst, int src, uint8_t imm)
{
    x64__vex_rr(b, size == 8, 3, 3, 0xf0, dst, 0, src);
    x64_u8(b, imm);
}

/* andn dst, a, c: dst = ~a & c (BMI1) */
X64_INLINE void x64_andn(x64_buf *b, int size, int dst, int a, int c)
{
    x64__vex_rr(b, size == 8, 2, 0, 0xf2, dst, a, c);
}

/* mulx hi, lo, src: hi:lo = rdx * src (BMI2) */
X64_INLINE void x64_mulx(x64_buf *b, int size, int hi, int lo, int src)
{
    x64__vex_rr(b, size == 8, 2, 3, 0xf6, hi, lo, src);
}

/* lzcnt/tzcnt/popcnt dst, src */
X64_INLINE void x64_bitcount(x64_buf *b, x64_bitcount_op op, int size, int dst, int src)
{
    x64__rr(b, size, 0xf3, 0x0f00u | (uint32_t)op, 2, dst, src, 0);
}

/* bswap r (size 4 or 8) */
X64_INLINE void x64_bswap(x64_buf *b, int size, int r)
{
    x64__rex_prefix(b, 4, 0, size == 8, 0, 0, r, 0);
    x64_u8(b, 0x0f);
    x64_u8(b, 0xc8u + ((unsigned)r & 7u));
}

/* bts r, imm8 */
X64_INLINE void x64_bts_ri(x64_buf *b, int size, int r, uint8_t imm)
{
    x64__rr(b, size, 0, 0x0fba, 2, 5, r, 0);
    x64_u8(b, imm);
}

/* cmovcc dst, src (size 4 or 8) */
X64_INLINE void x64_cmov(x64_buf *b, x64_cc cc, int size, int dst, int src)
{
    x64__rr(b, size, 0, 0x0f40u | (uint32_t)cc, 2, dst, src, 0);
}

/* setcc r8 */
X64_INLINE void x64_setcc(x64_buf *b, x64_cc cc, int r) { x64__rr(b, 1, 0, 0x0f90u | (uint32_t)cc, 2, 0, r, 2); }

/* ---- stack ---- */

X64_INLINE void x64_push(x64_buf *b, int r)
{
    if (r >= 8)
        x64_u8(b, 0x41);
    x64_u8(b, 0x50u + ((unsigned)r & 7u));
}

X64_INLINE void x64_pop(x64_buf *b, int r)
{
    if (r >= 8)
        x64_u8(b, 0x41);
    x64_u8(b, 0x58u + ((unsigned)r & 7u));
}

/* ---- control flow ----
 * Relative branches take the target as an offset in the same buffer; the
 * *_rel32 forms with target SIZE_MAX leave a zero displacement to patch
 * (x64_patch_rel32).  Each returns the offset of its displacement field. */

#define X64_NO_TARGET ((size_t)-1)

X64_INLINE int32_t x64__rel(const x64_buf *b, size_t target)
{
    return target == X64_NO_TARGET ? 0 : (int32_t)((int64_t)target - (int64_t)x64_offset(b));
}

/* The rel32 field that ends a branch (the opcode is written). */
X64_INLINE size_t x64__rel32_field(x64_buf *b, size_t target)
{
    size_t at = x64_offset(b);
    b->p += 4;
    int32_t rel = x64__rel(b, target);
    __builtin_memcpy(b->start + at, &rel, 4);
    return at;
}

X64_INLINE size_t x64_jmp_rel32(x64_buf *b, size_t target)
{
    x64_u8(b, 0xe9);
    return x64__rel32_field(b, target);
}

X64_INLINE size_t x64_jcc_rel32(x64_buf *b, x64_cc cc, size_t target)
{
    x64_u8(b, 0x0f);
    x64_u8(b, 0x80u | (unsigned)cc);
    return x64__rel32_field(b, target);
}

X64_INLINE size_t x64_call_rel32(x64_buf *b, size_t target)
{
    x64_u8(b, 0xe8);
    return x64__rel32_field(b, target);
}

/* Short forms: the target must be within reach (or X64_NO_TARGET: patch
 * with x64_patch_rel8).  Return the offset of the 1-byte displacement. */
X64_INLINE size_t x64__rel8_field(x64_buf *b, size_t target)
{
    size_t at = x64_offset(b);
    x64_u8(b, (uint8_t)(int8_t)(target == X64_NO_TARGET ? 0 : (int64_t)target - (int64_t)(at + 1)));
    return at;
}

X64_INLINE size_t x64_jmp_rel8(x64_buf *b, size_t target)
{
    x64_u8(b, 0xeb);
    return x64__rel8_field(b, target);
}

X64_INLINE size_t x64_jcc_rel8(x64_buf *b, x64_cc cc, size_t target)
{
    x64_u8(b, 0x70u | (unsigned)cc);
    return x64__rel8_field(b, target);
}

/* Point a rel32 field at `target` (both offsets in the buffer). */
X64_INLINE void x64_patch_rel32(uint8_t *start, size_t at, size_t target)
{
    int32_t rel = (int32_t)((int64_t)target - (int64_t)(at + 4));
    __builtin_memcpy(start + at, &rel, 4);
}

/* Point a rel8 field at `target`, which must be within reach. */
X64_INLINE void x64_patch_rel8(uint8_t *start, size_t at, size_t target)
{
    start[at] = (uint8_t)(int8_t)((int64_t)target - (int64_t)(at + 1));
}

/* jmp r / call r */
X64_INLINE void x64_jmp_r(x64_buf *b, int r) { x64__rr(b, 4, 0, 0xff, 1, 4, r, 0); }
X64_INLINE void x64_call_r(x64_buf *b, int r) { x64__rr(b, 4, 0, 0xff, 1, 2, r, 0); }

/* jmp [m] / call [m] */
X64_INLINE void x64_jmp_m(x64_buf *b, x64_mem m) { x64__rm(b, 4, 0, 0xff, 1, 4, m, 0); }
X64_INLINE void x64_call_m(x64_buf *b, x64_mem m) { x64__rm(b, 4, 0, 0xff, 1, 2, m, 0); }

X64_INLINE void x64_ret(x64_buf *b) { x64_u8(b, 0xc3); }
X64_INLINE void x64_ud2(x64_buf *b)
{
    x64_u8(b, 0x0f);
    x64_u8(b, 0x0b);
}
X64_INLINE void x64_int3(x64_buf *b) { x64_u8(b, 0xcc); }

/* `n` bytes of no-ops (recommended multi-byte nops, up to 9 bytes each). */
void x64_nops(x64_buf *b, size_t n);

/* ---- test entry point ----
 * Encodes one instruction given a form number and operands (see the
 * X64_FORMS table in x64_asm.c); returns its length, or 0 for an unknown
 * form or operands the form does not take.  out must hold 32 bytes. */
size_t x64_assemble_form(int form, const int64_t *ops, int nops, uint8_t *out);
/* Name of form `form` (NULL past the last), and its operand count. */
const char *x64_form_name(int form, int *nops);

#endif
