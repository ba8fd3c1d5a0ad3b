/* The interpreter's instruction bodies, shared by its plain handlers and
 * its fused pairs (interp.c): DO_<handler> does one record's work without
 * dispatching, COND_<branch> is a branch's condition.  They are expanded
 * inside vm_run() and use its locals: ip (the record), r (the registers),
 * mem / view (guest memory), and access / fault with the memory_stop label
 * for an access that does not go through (ip still at that record). */
#ifndef VMCORE_INTERP_OPS_H
#define VMCORE_INTERP_OPS_H

#include <stdint.h>

#include "vmcore/memory.h"

/* ---- arithmetic helpers (no UB: unsigned arithmetic, explicit casts) ---- */

static inline uint64_t sext32(uint32_t v) { return (uint64_t)(int64_t)(int32_t)v; }
static inline int64_t s64(uint64_t v) { return (int64_t)v; }
static inline int32_t s32(uint32_t v) { return (int32_t)v; }

static inline uint32_t rotl32(uint32_t v, uint32_t n) { n &= 31; return n ? (v << n) | (v >> (32 - n)) : v; }
static inline uint32_t rotr32(uint32_t v, uint32_t n) { n &= 31; return n ? (v >> n) | (v << (32 - n)) : v; }
static inline uint64_t rotl64(uint64_t v, uint64_t n) { n &= 63; return n ? (v << n) | (v >> (64 - n)) : v; }
static inline uint64_t rotr64(uint64_t v, uint64_t n) { n &= 63; return n ? (v >> n) | (v << (64 - n)) : v; }

static inline uint32_t divu32(uint32_t a, uint32_t b) { return b ? a / b : 0xffffffffu; }
static inline uint64_t divu64(uint64_t a, uint64_t b) { return b ? a / b : ~(uint64_t)0; }
static inline uint32_t remu32(uint32_t a, uint32_t b) { return b ? a % b : a; }
static inline uint64_t remu64(uint64_t a, uint64_t b) { return b ? a % b : a; }
static inline uint32_t divs32(uint32_t a, uint32_t b)
{
    if (b == 0) return 0xffffffffu;
    if (a == 0x80000000u && b == 0xffffffffu) return a;
    return (uint32_t)(s32(a) / s32(b));
}
static inline uint64_t divs64(uint64_t a, uint64_t b)
{
    if (b == 0) return ~(uint64_t)0;
    if (a == 0x8000000000000000ull && b == ~(uint64_t)0) return a;
    return (uint64_t)(s64(a) / s64(b));
}
static inline uint32_t rems32(uint32_t a, uint32_t b)
{
    if (b == 0) return a;
    if (a == 0x80000000u && b == 0xffffffffu) return 0;
    return (uint32_t)(s32(a) % s32(b));
}
static inline uint64_t rems64(uint64_t a, uint64_t b)
{
    if (b == 0) return a;
    if (a == 0x8000000000000000ull && b == ~(uint64_t)0) return 0;
    return (uint64_t)(s64(a) % s64(b));
}
static inline uint32_t mulh_ss32(uint32_t a, uint32_t b) { return (uint32_t)((uint64_t)((int64_t)s32(a) * (int64_t)s32(b)) >> 32); }
static inline uint32_t mulh_uu32(uint32_t a, uint32_t b) { return (uint32_t)(((uint64_t)a * (uint64_t)b) >> 32); }
static inline uint32_t mulh_su32(uint32_t a, uint32_t b) { return (uint32_t)((uint64_t)((int64_t)s32(a) * (int64_t)(uint64_t)b) >> 32); }
static inline uint64_t mulh_ss64(uint64_t a, uint64_t b) { return (uint64_t)((unsigned __int128)((__int128)s64(a) * (__int128)s64(b)) >> 64); }
static inline uint64_t mulh_uu64(uint64_t a, uint64_t b) { return (uint64_t)(((unsigned __int128)a * (unsigned __int128)b) >> 64); }
static inline uint64_t mulh_su64(uint64_t a, uint64_t b)
{
    /* signed x unsigned: the high word of the unsigned product, minus b when a < 0 */
    uint64_t hi = (uint64_t)(((unsigned __int128)a * (unsigned __int128)b) >> 64);
    return s64(a) < 0 ? hi - b : hi;
}
static inline uint32_t clz32(uint32_t v) { return v ? (uint32_t)__builtin_clz(v) : 32; }
static inline uint64_t clz64(uint64_t v) { return v ? (uint64_t)__builtin_clzll(v) : 64; }
static inline uint32_t ctz32(uint32_t v) { return v ? (uint32_t)__builtin_ctz(v) : 32; }
static inline uint64_t ctz64(uint64_t v) { return v ? (uint64_t)__builtin_ctzll(v) : 64; }

static inline void copy_bytes(void *dst, const void *src, uint32_t n) { __builtin_memcpy(dst, src, n); }

/* ---- operands of the record at ip ---- */

#define X_IMM ((uint64_t)sext32(ip->x))
#define RA r[ip->a]
#define RB r[ip->b]
#define RC r[ip->c]
#define LO(v) ((uint32_t)(v))
#define SET32(v) (RA = sext32((uint32_t)(v)))
#define ADDR() ((uint32_t)(RB + X_IMM))

/* ---- memory ---- */

#define ACCESS_OR_STOP(address, size, need)                                           \
    do {                                                                               \
        access = vm_access_check(&view, (address), (size), (need), &fault);             \
        if (__builtin_expect(access != VM_ACCESS_OK, 0))                                 \
            goto memory_stop;                                                          \
    } while (0)

#define LOAD_DO(T, convert)                                   \
    do {                                                   \
        uint32_t address = ADDR();                         \
        T v;                                               \
        ACCESS_OR_STOP(address, sizeof(T), VM_PERM_READ);  \
        copy_bytes(&v, mem + address, sizeof(T));          \
        RA = (convert);                                    \
    } while (0)

#define STORE_DO(T, value)                                    \
    do {                                                   \
        uint32_t address = ADDR();                         \
        T v = (T)(value);                                  \
        ACCESS_OR_STOP(address, sizeof(T), VM_PERM_WRITE); \
        copy_bytes(mem + address, &v, sizeof(T));          \
    } while (0)

/* ---- bodies ---- */

#define COND_BEQ (RA == RB)
#define COND_BNE (RA != RB)
#define COND_BLTU (RA < RB)
#define COND_BLTS (s64(RA) < s64(RB))
#define COND_BGEU (RA >= RB)
#define COND_BGES (s64(RA) >= s64(RB))
#define COND_BEQI (RA == X_IMM)
#define COND_BNEI (RA != X_IMM)
#define COND_BLTUI (RA < X_IMM)
#define COND_BLTSI (s64(RA) < s64(X_IMM))
#define COND_BGEUI (RA >= X_IMM)
#define COND_BGESI (s64(RA) >= s64(X_IMM))
#define COND_BLEUI (RA <= X_IMM)
#define COND_BLESI (s64(RA) <= s64(X_IMM))
#define COND_BGTUI (RA > X_IMM)
#define COND_BGTSI (s64(RA) > s64(X_IMM))
#define DO_LD_U8 LOAD_DO(uint8_t, (uint64_t)v)
#define DO_LD_I8 LOAD_DO(int8_t, (uint64_t)(int64_t)v)
#define DO_LD_U16 LOAD_DO(uint16_t, (uint64_t)v)
#define DO_LD_I16 LOAD_DO(int16_t, (uint64_t)(int64_t)v)
#define DO_LD_U32 LOAD_DO(uint32_t, (uint64_t)v)
#define DO_LD_I32 LOAD_DO(uint32_t, sext32(v))
#define DO_LD_U64 LOAD_DO(uint64_t, v)
#define DO_ST_U8 STORE_DO(uint8_t, RA)
#define DO_ST_U16 STORE_DO(uint16_t, RA)
#define DO_ST_U32 STORE_DO(uint32_t, RA)
#define DO_ST_U64 STORE_DO(uint64_t, RA)
#define DO_STI_U8 STORE_DO(uint8_t, ip->y)
#define DO_STI_U16 STORE_DO(uint16_t, ip->y)
#define DO_STI_U32 STORE_DO(uint32_t, ip->y)
#define DO_STI_U64 STORE_DO(uint64_t, sext32(ip->y))
#define DO_ADD32 do { SET32(LO(RB) + LO(RC)); } while (0)
#define DO_ADD64 do { RA = RB + RC; } while (0)
#define DO_SUB32 do { SET32(LO(RB) - LO(RC)); } while (0)
#define DO_SUB64 do { RA = RB - RC; } while (0)
#define DO_AND do { RA = RB & RC; } while (0)
#define DO_XOR do { RA = RB ^ RC; } while (0)
#define DO_OR do { RA = RB | RC; } while (0)
#define DO_MUL32 do { SET32(LO(RB) * LO(RC)); } while (0)
#define DO_MUL64 do { RA = RB * RC; } while (0)
#define DO_MULHSS32 do { SET32(mulh_ss32(LO(RB), LO(RC))); } while (0)
#define DO_MULHSS64 do { RA = mulh_ss64(RB, RC); } while (0)
#define DO_MULHUU32 do { SET32(mulh_uu32(LO(RB), LO(RC))); } while (0)
#define DO_MULHUU64 do { RA = mulh_uu64(RB, RC); } while (0)
#define DO_MULHSU32 do { SET32(mulh_su32(LO(RB), LO(RC))); } while (0)
#define DO_MULHSU64 do { RA = mulh_su64(RB, RC); } while (0)
#define DO_SLTU do { RA = RB < RC; } while (0)
#define DO_SLTS do { RA = s64(RB) < s64(RC); } while (0)
#define DO_SHL32 do { SET32(LO(RB) << (LO(RC) & 31)); } while (0)
#define DO_SHL64 do { RA = RB << (RC & 63); } while (0)
#define DO_SHR32 do { SET32(LO(RB) >> (LO(RC) & 31)); } while (0)
#define DO_SHR64 do { RA = RB >> (RC & 63); } while (0)
#define DO_SAR32 do { SET32((uint32_t)(s32(LO(RB)) >> (LO(RC) & 31))); } while (0)
#define DO_SAR64 do { RA = (uint64_t)(s64(RB) >> (RC & 63)); } while (0)
#define DO_DIVU32 do { SET32(divu32(LO(RB), LO(RC))); } while (0)
#define DO_DIVU64 do { RA = divu64(RB, RC); } while (0)
#define DO_DIVS32 do { SET32(divs32(LO(RB), LO(RC))); } while (0)
#define DO_DIVS64 do { RA = divs64(RB, RC); } while (0)
#define DO_REMU32 do { SET32(remu32(LO(RB), LO(RC))); } while (0)
#define DO_REMU64 do { RA = remu64(RB, RC); } while (0)
#define DO_REMS32 do { SET32(rems32(LO(RB), LO(RC))); } while (0)
#define DO_REMS64 do { RA = rems64(RB, RC); } while (0)
#define DO_CMOVZ do { if (RC == 0) RA = RB; } while (0)
#define DO_CMOVNZ do { if (RC != 0) RA = RB; } while (0)
#define DO_ANDN32 do { SET32(LO(RB) & ~LO(RC)); } while (0)
#define DO_ANDN64 do { RA = RB & ~RC; } while (0)
#define DO_ORN32 do { SET32(LO(RB) | ~LO(RC)); } while (0)
#define DO_ORN64 do { RA = RB | ~RC; } while (0)
#define DO_XNOR32 do { SET32(~(LO(RB) ^ LO(RC))); } while (0)
#define DO_XNOR64 do { RA = ~(RB ^ RC); } while (0)
#define DO_MAX32 do { SET32(s32(LO(RB)) > s32(LO(RC)) ? LO(RB) : LO(RC)); } while (0)
#define DO_MAX64 do { RA = s64(RB) > s64(RC) ? RB : RC; } while (0)
#define DO_MAXU32 do { SET32(LO(RB) > LO(RC) ? LO(RB) : LO(RC)); } while (0)
#define DO_MAXU64 do { RA = RB > RC ? RB : RC; } while (0)
#define DO_MIN32 do { SET32(s32(LO(RB)) < s32(LO(RC)) ? LO(RB) : LO(RC)); } while (0)
#define DO_MIN64 do { RA = s64(RB) < s64(RC) ? RB : RC; } while (0)
#define DO_MINU32 do { SET32(LO(RB) < LO(RC) ? LO(RB) : LO(RC)); } while (0)
#define DO_MINU64 do { RA = RB < RC ? RB : RC; } while (0)
#define DO_ROL32 do { SET32(rotl32(LO(RB), LO(RC))); } while (0)
#define DO_ROL64 do { RA = rotl64(RB, RC); } while (0)
#define DO_ROR32 do { SET32(rotr32(LO(RB), LO(RC))); } while (0)
#define DO_ROR64 do { RA = rotr64(RB, RC); } while (0)
#define DO_ADDI32 do { SET32(LO(RB) + ip->x); } while (0)
#define DO_ADDI64 do { RA = RB + X_IMM; } while (0)
#define DO_ANDI do { RA = RB & X_IMM; } while (0)
#define DO_XORI do { RA = RB ^ X_IMM; } while (0)
#define DO_ORI do { RA = RB | X_IMM; } while (0)
#define DO_MULI32 do { SET32(LO(RB) * ip->x); } while (0)
#define DO_MULI64 do { RA = RB * X_IMM; } while (0)
#define DO_SLTUI do { RA = RB < X_IMM; } while (0)
#define DO_SLTSI do { RA = s64(RB) < s64(X_IMM); } while (0)
#define DO_SHLI32 do { SET32(LO(RB) << (ip->x & 31)); } while (0)
#define DO_SHLI64 do { RA = RB << (ip->x & 63); } while (0)
#define DO_SHRI32 do { SET32(LO(RB) >> (ip->x & 31)); } while (0)
#define DO_SHRI64 do { RA = RB >> (ip->x & 63); } while (0)
#define DO_SARI32 do { SET32((uint32_t)(s32(LO(RB)) >> (ip->x & 31))); } while (0)
#define DO_SARI64 do { RA = (uint64_t)(s64(RB) >> (ip->x & 63)); } while (0)
#define DO_NEGADDI32 do { SET32(ip->x - LO(RB)); } while (0)
#define DO_NEGADDI64 do { RA = X_IMM - RB; } while (0)
#define DO_SGTUI do { RA = RB > X_IMM; } while (0)
#define DO_SGTSI do { RA = s64(RB) > s64(X_IMM); } while (0)
#define DO_SHRI_ALT32 do { SET32(ip->x >> (LO(RB) & 31)); } while (0)
#define DO_SHRI_ALT64 do { RA = X_IMM >> (RB & 63); } while (0)
#define DO_SARI_ALT32 do { SET32((uint32_t)(s32(ip->x) >> (LO(RB) & 31))); } while (0)
#define DO_SARI_ALT64 do { RA = (uint64_t)(s64(X_IMM) >> (RB & 63)); } while (0)
#define DO_SHLI_ALT32 do { SET32(ip->x << (LO(RB) & 31)); } while (0)
#define DO_SHLI_ALT64 do { RA = X_IMM << (RB & 63); } while (0)
#define DO_CMOVZI do { if (RB == 0) RA = X_IMM; } while (0)
#define DO_CMOVNZI do { if (RB != 0) RA = X_IMM; } while (0)
#define DO_RORI32 do { SET32(rotr32(LO(RB), ip->x)); } while (0)
#define DO_RORI_ALT32 do { SET32(rotr32(ip->x, LO(RB))); } while (0)
#define DO_RORI64 do { RA = rotr64(RB, ip->x); } while (0)
#define DO_RORI_ALT64 do { RA = rotr64(X_IMM, RB); } while (0)
#define DO_MOV do { RA = RB; } while (0)
#define DO_CLZ32 do { SET32(clz32(LO(RB))); } while (0)
#define DO_CLZ64 do { RA = clz64(RB); } while (0)
#define DO_CTZ32 do { SET32(ctz32(LO(RB))); } while (0)
#define DO_CTZ64 do { RA = ctz64(RB); } while (0)
#define DO_POPCNT32 do { SET32((uint32_t)__builtin_popcount(LO(RB))); } while (0)
#define DO_POPCNT64 do { RA = (uint64_t)__builtin_popcountll(RB); } while (0)
#define DO_SEXT8_32 do { SET32((uint32_t)(int32_t)(int8_t)(uint8_t)RB); } while (0)
#define DO_SEXT8_64 do { RA = (uint64_t)(int64_t)(int8_t)(uint8_t)RB; } while (0)
#define DO_SEXT16_32 do { SET32((uint32_t)(int32_t)(int16_t)(uint16_t)RB); } while (0)
#define DO_SEXT16_64 do { RA = (uint64_t)(int64_t)(int16_t)(uint16_t)RB; } while (0)
#define DO_ZEXT16_32 do { SET32((uint16_t)RB); } while (0)
#define DO_ZEXT16_64 do { RA = (uint16_t)RB; } while (0)
#define DO_REV32 do { SET32(__builtin_bswap32(LO(RB))); } while (0)
#define DO_REV64 do { RA = __builtin_bswap64(RB); } while (0)
#define DO_LI do { RA = X_IMM; } while (0)
#define DO_LI64 do { RA = (uint64_t)ip->x | ((uint64_t)ip->y << 32); } while (0)

/* The handlers made of one DO_ body and the branches made of one COND_. */
#define SIMPLE_OPS(X) \
    X(LD_U8) X(LD_I8) X(LD_U16) X(LD_I16) X(LD_U32) X(LD_I32) X(LD_U64) X(ST_U8) \
    X(ST_U16) X(ST_U32) X(ST_U64) X(STI_U8) X(STI_U16) X(STI_U32) X(STI_U64) X(ADD32) \
    X(ADD64) X(SUB32) X(SUB64) X(AND) X(XOR) X(OR) X(MUL32) X(MUL64) \
    X(MULHSS32) X(MULHSS64) X(MULHUU32) X(MULHUU64) X(MULHSU32) X(MULHSU64) X(SLTU) X(SLTS) \
    X(SHL32) X(SHL64) X(SHR32) X(SHR64) X(SAR32) X(SAR64) X(DIVU32) X(DIVU64) \
    X(DIVS32) X(DIVS64) X(REMU32) X(REMU64) X(REMS32) X(REMS64) X(CMOVZ) X(CMOVNZ) \
    X(ANDN32) X(ANDN64) X(ORN32) X(ORN64) X(XNOR32) X(XNOR64) X(MAX32) X(MAX64) \
    X(MAXU32) X(MAXU64) X(MIN32) X(MIN64) X(MINU32) X(MINU64) X(ROL32) X(ROL64) \
    X(ROR32) X(ROR64) X(ADDI32) X(ADDI64) X(ANDI) X(XORI) X(ORI) X(MULI32) \
    X(MULI64) X(SLTUI) X(SLTSI) X(SHLI32) X(SHLI64) X(SHRI32) X(SHRI64) X(SARI32) \
    X(SARI64) X(NEGADDI32) X(NEGADDI64) X(SGTUI) X(SGTSI) X(SHRI_ALT32) X(SHRI_ALT64) X(SARI_ALT32) \
    X(SARI_ALT64) X(SHLI_ALT32) X(SHLI_ALT64) X(CMOVZI) X(CMOVNZI) X(RORI32) X(RORI_ALT32) X(RORI64) \
    X(RORI_ALT64) X(MOV) X(CLZ32) X(CLZ64) X(CTZ32) X(CTZ64) X(POPCNT32) X(POPCNT64) \
    X(SEXT8_32) X(SEXT8_64) X(SEXT16_32) X(SEXT16_64) X(ZEXT16_32) X(ZEXT16_64) X(REV32) X(REV64) \
    X(LI) X(LI64)
#define BRANCH_OPS(X) \
    X(BEQ) X(BNE) X(BLTU) X(BLTS) X(BGEU) X(BGES) X(BEQI) X(BNEI) \
    X(BLTUI) X(BLTSI) X(BGEUI) X(BGESI) X(BLEUI) X(BLESI) X(BGTUI) X(BGTSI)

#endif
