/* The fast decoder (internal.h) against vm_decode. */
#include "internal.h"

static inline int same_instruction(const vm_instruction *a, const vm_instruction *b)
{
    return a->offset == b->offset && a->next == b->next && a->op == b->op && a->format == b->format &&
           a->reg[0] == b->reg[0] && a->reg[1] == b->reg[1] && a->reg[2] == b->reg[2] && a->imm1 == b->imm1 &&
           a->imm2 == b->imm2 && a->imm64 == b->imm64 && a->next_is_invalid == b->next_is_invalid;
}

int64_t vm_x64_decoder_selftest(int isa, const uint8_t *code, uint32_t code_len, const uint8_t *bitmask)
{
    if ((unsigned)isa >= VM_ISA_COUNT)
        return -2;
    fast_decoder d;
    fast_decoder_init(&d, (vm_isa)isa);
    vm_instruction a, b;
    for (uint32_t offset = 0; offset + FAST_DECODE_MARGIN <= code_len; offset++) {
        memset(&a, 0, sizeof a);
        memset(&b, 0, sizeof b);
        fast_decode(&d, code, bitmask, offset, &a);
        vm_decode((vm_isa)isa, code, code_len, bitmask, offset, &b);
        if (!same_instruction(&a, &b))
            return offset;
    }
    for (uint32_t t = 0; t <= code_len + 2; t++) {
        int fast = fast_block_start(&d, code, code_len, bitmask, t);
        if (fast >= 0 && fast != vm_is_basic_block_start((vm_isa)isa, code, code_len, bitmask, t))
            return t;
    }
    return -1;
}
