/* The interpreter's record format, shared by its builder (interp_build.c)
 * and its dispatch loop (interp.c): the handler numbers a vm_insn carries. */
#ifndef VMCORE_INTERP_HANDLERS_H
#define VMCORE_INTERP_HANDLERS_H

#include "vmcore/interp.h"

#define ZERO_REG VM_REG_COUNT /* state->regs[VM_REG_COUNT]: a constant zero */

/* Interpreter handlers.  Arguments: a/b/c registers, x/y/z immediates or
 * compiled indices (see the builder for each). */
#define HANDLERS(X) \
    X(CHARGE) X(CHECK) X(STEP) X(TRAP) X(JUMP) X(JUMP_IND) X(LI_JUMP) X(LI_JUMP_IND) X(ECALLI) X(SBRK) X(MEMSET) \
    X(BEQ) X(BNE) X(BLTU) X(BLTS) X(BGEU) X(BGES) \
    X(BEQI) X(BNEI) X(BLTUI) X(BLTSI) X(BGEUI) X(BGESI) X(BLEUI) X(BLESI) X(BGTUI) X(BGTSI) \
    X(LD_U8) X(LD_I8) X(LD_U16) X(LD_I16) X(LD_U32) X(LD_I32) X(LD_U64) \
    X(ST_U8) X(ST_U16) X(ST_U32) X(ST_U64) X(STI_U8) X(STI_U16) X(STI_U32) X(STI_U64) \
    X(ADD32) X(ADD64) X(SUB32) X(SUB64) X(AND) X(XOR) X(OR) X(MUL32) X(MUL64) \
    X(MULHSS32) X(MULHSS64) X(MULHUU32) X(MULHUU64) X(MULHSU32) X(MULHSU64) X(SLTU) X(SLTS) \
    X(SHL32) X(SHL64) X(SHR32) X(SHR64) X(SAR32) X(SAR64) \
    X(DIVU32) X(DIVU64) X(DIVS32) X(DIVS64) X(REMU32) X(REMU64) X(REMS32) X(REMS64) \
    X(CMOVZ) X(CMOVNZ) X(ANDN32) X(ANDN64) X(ORN32) X(ORN64) X(XNOR32) X(XNOR64) \
    X(MAX32) X(MAX64) X(MAXU32) X(MAXU64) X(MIN32) X(MIN64) X(MINU32) X(MINU64) \
    X(ROL32) X(ROL64) X(ROR32) X(ROR64) \
    X(ADDI32) X(ADDI64) X(ANDI) X(XORI) X(ORI) X(MULI32) X(MULI64) X(SLTUI) X(SLTSI) \
    X(SHLI32) X(SHLI64) X(SHRI32) X(SHRI64) X(SARI32) X(SARI64) X(NEGADDI32) X(NEGADDI64) \
    X(SGTUI) X(SGTSI) X(SHRI_ALT32) X(SHRI_ALT64) X(SARI_ALT32) X(SARI_ALT64) X(SHLI_ALT32) X(SHLI_ALT64) \
    X(CMOVZI) X(CMOVNZI) X(RORI32) X(RORI_ALT32) X(RORI64) X(RORI_ALT64) \
    X(MOV) X(CLZ32) X(CLZ64) X(CTZ32) X(CTZ64) X(POPCNT32) X(POPCNT64) \
    X(SEXT8_32) X(SEXT8_64) X(SEXT16_32) X(SEXT16_64) X(ZEXT16_32) X(ZEXT16_64) X(REV32) X(REV64) \
    X(LI) X(LI64) X(NOP) X(END)

/* Fused pairs: a record whose op is H_<first>__<second> does its own work
 * and then the next record's (which keeps its plain op, so a jump or an
 * entry straight to it still works), then goes on after both: one
 * dispatch less.  The builder fuses these where they occur (not under step
 * tracing); the pairs are the ones hot in real programs (DOOM's pixel and
 * sound loops, plus their 64-bit twins).  F: the second is a plain op,
 * B: the second is a branch. */
#define FUSED(F, B) \
    F(ADDI32, ADDI32) F(ST_U8, ADDI32) F(SHR32, ST_U8) F(SHLI32, SHRI32) F(ADD32, SHRI32) F(LD_I32, ADDI32) \
    F(SHRI32, LD_I32) F(LI, ADD32) F(SHR32, LD_I32) F(LD_I32, SHR32) F(SHL32, OR) F(LD_I32, SHL32) \
    F(LD_I32, ADD32) F(ADD32, LD_I32) F(SHLI32, LD_I32) F(OR, SHLI32) F(LD_U8, SHLI32) F(LD_I32, LI) \
    F(LI, SHLI32) F(SHR32, ANDI) F(OR, LI) F(ANDI, SHR32) F(LD_I32, LD_I32) F(ST_U32, ST_U32) \
    F(LD_U8, ADDI32) F(ADDI32, ST_U8) F(ADDI32, ST_U32) F(ADD32, ST_U32) F(ST_U32, ADDI32) F(LD_U8, ST_U8) \
    F(ADDI64, ADDI64) F(LD_U64, ADDI64) F(ADDI64, LD_U64) F(LD_U64, LD_U64) F(ST_U64, ST_U64) \
    F(ADDI64, ST_U64) F(ST_U64, ADDI64) F(SHLI64, ADD64) F(ADD64, LD_U64) F(LD_U8, ADDI64) \
    B(ADDI32, BNE) B(SHRI32, BNEI) B(SHRI32, BLTS) B(ADDI32, BLESI) B(ADDI32, BLTS) B(ADDI32, BEQI) \
    B(LD_I32, BEQI) B(LD_I32, BNEI) B(LD_U8, BEQ) B(LD_U8, BNEI) B(LD_U8, BEQI) B(ANDI, BEQI) \
    B(ADDI32, BLTU) B(ADDI32, BGES) B(ADD32, BLTS) \
    B(ADDI64, BNE) B(ADDI64, BLTU) B(ADDI64, BEQI) B(ADDI64, BNEI) B(LD_U64, BEQI) B(LD_U64, BNEI) \
    B(ANDI, BNEI)

/* Fused triples ending in a branch, the same way (the loop tails hot in
 * DOOM); tried before the pairs. */
#define FUSED3(T) \
    T(ADDI32, ADDI32, BNE) T(ADD32, SHRI32, BNEI) T(SHLI32, SHRI32, BLTS) T(LD_I32, ADDI32, BLTS) \
    T(ADDI64, ADDI64, BNE) T(LD_U64, ADDI64, BLTU)

enum {
#define H_ENUM(name) H_##name,
#define H_FENUM(first, second) H_##first##__##second,
    HANDLERS(H_ENUM)
    FUSED(H_FENUM, H_FENUM)
#define H_TENUM(first, second, third) H_##first##__##second##__##third,
    FUSED3(H_TENUM)
#undef H_ENUM
#undef H_FENUM
#undef H_TENUM
    H_COUNT
};
#define H_PLAIN_COUNT H_ADDI32__ADDI32 /* the first fused op */

#endif
