/* Instruction decoding: bitmask, skip, operands.  Freestanding C11. */
#include "vmcore/abi.h"
#include "vmcore/decoder.h"
#include "vmcore/decoder_inline.h"

#include <stddef.h>

static const char *const isa_names[VM_ISA_COUNT] = {
#define VM_ISA_NAME(id, name, is64) name,
    VM_ISAS(VM_ISA_NAME)
#undef VM_ISA_NAME
};

static const uint8_t isa_is64[VM_ISA_COUNT] = {
#define VM_ISA_IS64(id, name, is64) is64,
    VM_ISAS(VM_ISA_IS64)
#undef VM_ISA_IS64
};

static const char *const op_names[VM_OP_COUNT + 1] = {
#define VM_OP_NAME(name, fmt, a, b, c, d, flags) #name,
    VM_OPCODES(VM_OP_NAME)
#undef VM_OP_NAME
    "invalid",
};

static const uint8_t op_formats[VM_OP_COUNT + 1] = {
#define VM_OP_FMT(name, fmt, a, b, c, d, flags) VM_FMT_##fmt,
    VM_OPCODES(VM_OP_FMT)
#undef VM_OP_FMT
    VM_FMT_ARGLESS,
};

static const uint8_t op_flags[VM_OP_COUNT + 1] = {
#define VM_OP_FLAGS(name, fmt, a, b, c, d, flags) flags,
    VM_OPCODES(VM_OP_FLAGS)
#undef VM_OP_FLAGS
    VM_F_TERMINATOR,
};

static const int16_t op_bytes[VM_OP_COUNT][VM_ISA_COUNT] = {
#define VM_OP_BYTES(name, fmt, a, b, c, d, flags) {a, b, c, d},
    VM_OPCODES(VM_OP_BYTES)
#undef VM_OP_BYTES
};

/* Inverse of op_bytes, built once by vm_decoder_init() before any thread
 * decodes (module import in Python, start-up in the zygote). */
static uint8_t decode_table[VM_ISA_COUNT][256];

void vm_decoder_init(void)
{
    for (int isa = 0; isa < VM_ISA_COUNT; isa++) {
        for (int b = 0; b < 256; b++)
            decode_table[isa][b] = (uint8_t)VM_OP_INVALID;
        for (int op = 0; op < VM_OP_COUNT; op++) {
            int byte = op_bytes[op][isa];
            if (byte >= 0)
                decode_table[isa][byte] = (uint8_t)op;
        }
    }
}

_Static_assert(VM_OP_COUNT < 255, "vm_op must fit in a byte for the decode table");

vm_op vm_isa_decode_opcode(vm_isa isa, uint8_t byte)
{
    if ((unsigned)isa >= VM_ISA_COUNT)
        return VM_OP_INVALID;
    return (vm_op)decode_table[isa][byte];
}

int vm_isa_encode_opcode(vm_isa isa, vm_op op)
{
    if ((unsigned)isa >= VM_ISA_COUNT || (unsigned)op >= VM_OP_COUNT)
        return -1;
    return op_bytes[op][isa];
}

int vm_isa_is_64_bit(vm_isa isa) { return (unsigned)isa < VM_ISA_COUNT ? isa_is64[isa] : 0; }
const char *vm_isa_name(vm_isa isa) { return (unsigned)isa < VM_ISA_COUNT ? isa_names[isa] : "?"; }
const char *vm_op_name(vm_op op) { return (unsigned)op <= VM_OP_COUNT ? op_names[op] : "?"; }
vm_format vm_op_format(vm_op op) { return (unsigned)op <= VM_OP_COUNT ? (vm_format)op_formats[op] : VM_FMT_ARGLESS; }
int vm_op_flags(vm_op op) { return (unsigned)op <= VM_OP_COUNT ? op_flags[op] : VM_F_TERMINATOR; }

int vm_trap_reason_of(vm_op op, uint32_t pc, uint32_t code_len)
{
    if (op == VM_OP_trap)
        return VM_TRAP_INSTRUCTION;
    if (pc >= code_len || op == VM_OP_fallthrough) /* a fallthrough panics only into the end */
        return VM_TRAP_END_OF_CODE;
    if ((unsigned)op >= VM_OP_COUNT)
        return VM_TRAP_INVALID_INSTRUCTION;
    /* the rest that end a block are jumps and branches: their target was bad */
    return (op_flags[op] & VM_F_ENDS_BLOCK) ? VM_TRAP_INVALID_JUMP : VM_TRAP_MEMORY_ACCESS;
}

int vm_bitmask_bit(const uint8_t *bitmask, uint32_t code_len, uint32_t offset)
{
    if (offset >= code_len)
        return 0;
    return (bitmask[offset >> 3] >> (offset & 7)) & 1;
}

/* Distance to the next instruction start after `offset`, capped at
 * VM_BITMASK_MAX and at the end of the code; *invalid is set when the next
 * instruction is the implicit trap (end of code or a gap past the cap). */
static uint32_t parse_skip_slow(const uint8_t *bitmask, uint32_t code_len, uint32_t offset, int *invalid)
{
    uint32_t origin = offset + 1;
    for (uint32_t next = origin; next < code_len && next - origin <= VM_BITMASK_MAX; next++) {
        if ((bitmask[next >> 3] >> (next & 7)) & 1) {
            *invalid = 0;
            return next - origin;
        }
    }
    *invalid = 1;
    uint32_t remaining = code_len > origin ? code_len - origin : 0;
    return remaining < VM_BITMASK_MAX ? remaining : VM_BITMASK_MAX;
}

static inline uint32_t parse_skip(const uint8_t *bitmask, uint32_t code_len, uint32_t offset, int *invalid)
{
    /* Fast path: one 64-bit window of the bitmask covers the 25 candidate
     * positions; only the last few bytes of the code take the slow loop. */
    uint32_t origin = offset + 1;
    uint32_t byte = origin >> 3;
    if ((uint64_t)byte + 8 <= ((uint64_t)code_len + 7) / 8) {
        uint64_t w = vm_decode_next_window(bitmask, offset);
        if (w) {
            uint32_t d = (uint32_t)__builtin_ctzll(w);
            if ((uint64_t)origin + d < code_len) {
                *invalid = 0;
                return d;
            }
        } else if ((uint64_t)origin + VM_BITMASK_MAX < code_len) {
            *invalid = 1;
            return VM_BITMASK_MAX;
        }
    }
    return parse_skip_slow(bitmask, code_len, offset, invalid);
}

int64_t vm_validate_code(vm_isa isa, const uint8_t *code, uint32_t code_len, const uint8_t *bitmask)
{
    /* Empty code, or no instruction at offset 0: the first instruction is
     * the implicit trap (the reference rejects both). */
    if ((unsigned)isa >= VM_ISA_COUNT || code_len == 0 || !vm_bitmask_bit(bitmask, code_len, 0))
        return 0;
    /* Instruction starts are the set bits; walk them a 64-bit word at a
     * time.  Each must hold a defined opcode, and the next start must lie
     * within VM_BITMASK_MAX + 1 bytes, else the reference's bounded walk
     * ends there: fine after a terminator, an error after anything that
     * falls through into the implicit trap. */
    const uint8_t *table = decode_table[isa];
    uint32_t words = (code_len + 63) / 64;
    uint32_t bitmask_len = (code_len + 7) / 8;
    uint32_t prev = 0;
    int have_prev = 0;
    for (uint32_t w = 0; w < words; w++) {
        uint64_t bits = 0;
        uint32_t base = w * 8;
        uint32_t n = bitmask_len - base < 8 ? bitmask_len - base : 8;
        for (uint32_t i = 0; i < n; i++)
            bits |= (uint64_t)bitmask[base + i] << (8 * i);
        while (bits) {
            uint32_t offset = w * 64 + (uint32_t)__builtin_ctzll(bits);
            bits &= bits - 1;
            if (offset >= code_len)
                break;
            if (have_prev && offset - prev - 1 > VM_BITMASK_MAX)
                return (op_flags[table[code[prev]]] & VM_F_TERMINATOR) == VM_F_TERMINATOR ? -1
                                                                                       : (int64_t)prev + 1 + VM_BITMASK_MAX;
            if (table[code[offset]] == VM_OP_INVALID)
                return offset;
            prev = offset;
            have_prev = 1;
        }
    }
    /* After the last instruction comes the end of the code (or a gap). */
    if ((op_flags[table[code[prev]]] & VM_F_TERMINATOR) == VM_F_TERMINATOR)
        return -1;
    uint64_t next = (uint64_t)prev + 1 + VM_BITMASK_MAX;
    return next < code_len ? (int64_t)next : (int64_t)code_len;
}

/* vm_decode near the end of the code (or for any offset: the self-test). */
static void decode_checked(vm_isa isa, const uint8_t *code, uint32_t code_len, const uint8_t *bitmask,
                           uint32_t offset, vm_instruction *out)
{
    out->offset = offset;
    out->reg[0] = out->reg[1] = out->reg[2] = 0;
    out->imm1 = out->imm2 = 0;
    out->imm64 = 0;
    out->next_is_invalid = 0;

    if (offset >= code_len) {
        out->op = VM_OP_INVALID;
        out->format = VM_FMT_ARGLESS;
        out->next = offset + 1;
        return;
    }

    int invalid = 0;
    uint32_t skip = parse_skip(bitmask, code_len, offset, &invalid);
    vm_op op = vm_isa_decode_opcode(isa, code[offset]);

    /* The operand bytes: the 16 bytes after the opcode, zero past the end
     * of the code.  Operands may read past `skip`; the reference does too. */
    uint8_t c[16] = {0};
    uint32_t avail = code_len - offset - 1;
    if (avail > 16)
        avail = 16;
    for (uint32_t i = 0; i < avail; i++)
        c[i] = code[offset + 1 + i];

    /* Past the last instruction a fallthrough hits the implicit trap;
     * instructions that cannot fall through do not need it. */
    if (invalid && offset + skip + 1 >= code_len && (vm_op_flags(op) & VM_F_TERMINATOR) == VM_F_TERMINATOR)
        invalid = 0;

    out->op = (uint16_t)op;
    out->format = (uint8_t)vm_op_format(op);
    out->next = offset + skip + 1;
    out->next_is_invalid = (uint8_t)invalid;

    vm_decode_operands(c, skip, offset, out->format, out);
}

void vm_decode(vm_isa isa, const uint8_t *code, uint32_t code_len, const uint8_t *bitmask,
               uint32_t offset, vm_instruction *out)
{
    if ((unsigned)isa < VM_ISA_COUNT && (uint64_t)offset + VM_DECODE_MARGIN <= code_len) {
        /* inside the code: the path the recompiler inlines */
        uint32_t skip = vm_decode_head_unchecked(decode_table[isa], op_formats, code, bitmask, offset, out);
        vm_decode_operands(code + offset + 1, skip, offset, out->format, out);
        return;
    }
    decode_checked(isa, code, code_len, bitmask, offset, out);
}

/* vm_is_basic_block_start byte by byte (near the ends of the code, and
 * the self-test). */
static int block_start_checked(vm_isa isa, const uint8_t *code, uint32_t code_len, const uint8_t *bitmask,
                               uint32_t offset)
{
    if (!vm_bitmask_bit(bitmask, code_len, offset))
        return 0;
    if (offset == 0)
        return 1;
    /* The nearest earlier instruction start within the bitmask's reach.  The
     * reference looks for it in the 32 bitmask bits that end with `offset`'s
     * byte, so it sees 24 + (offset % 8) bytes back, and a skip over
     * VM_BITMASK_MAX is out of range: the reach is 25 bytes, but only 24 when
     * `offset` is a multiple of 8. */
    uint32_t reach = VM_BITMASK_MAX + ((offset & 7) ? 1u : 0u);
    uint32_t lowest = offset > reach ? offset - reach : 0;
    for (uint32_t prev = offset; prev-- > lowest;) {
        if ((bitmask[prev >> 3] >> (prev & 7)) & 1) {
            vm_op op = vm_isa_decode_opcode(isa, code[prev]);
            return op != VM_OP_INVALID && (vm_op_flags(op) & VM_F_ENDS_BLOCK);
        }
    }
    return 0;
}

int vm_is_basic_block_start(vm_isa isa, const uint8_t *code, uint32_t code_len,
                            const uint8_t *bitmask, uint32_t offset)
{
    if ((unsigned)isa < VM_ISA_COUNT && offset >= 64 && (uint64_t)offset + 64 <= code_len)
        return vm_block_start_unchecked(decode_table[isa], op_flags, code, bitmask, offset);
    return block_start_checked(isa, code, code_len, bitmask, offset);
}

static int same_instruction(const vm_instruction *a, const vm_instruction *b)
{
    return a->offset == b->offset && a->next == b->next && a->op == b->op && a->format == b->format &&
           a->reg[0] == b->reg[0] && a->reg[1] == b->reg[1] && a->reg[2] == b->reg[2] && a->imm1 == b->imm1 &&
           a->imm2 == b->imm2 && a->imm64 == b->imm64 && a->next_is_invalid == b->next_is_invalid;
}

int64_t vm_x64_decoder_selftest(int isa, const uint8_t *code, uint32_t code_len, const uint8_t *bitmask)
{
    if ((unsigned)isa >= VM_ISA_COUNT)
        return -2;
    vm_instruction a, b;
    for (uint32_t offset = 0; offset + VM_DECODE_MARGIN <= code_len; offset++) {
        vm_decode((vm_isa)isa, code, code_len, bitmask, offset, &a);
        decode_checked((vm_isa)isa, code, code_len, bitmask, offset, &b);
        if (!same_instruction(&a, &b))
            return offset;
    }
    for (uint32_t t = 0; t <= code_len + 2; t++)
        if (vm_is_basic_block_start((vm_isa)isa, code, code_len, bitmask, t) !=
            block_start_checked((vm_isa)isa, code, code_len, bitmask, t))
            return t;
    return -1;
}
