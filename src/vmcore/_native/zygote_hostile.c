/* See zygote_hostile.h.  Freestanding (part of the zygote). */
#include "zygote_hostile.h"

#ifdef VMCORE_HOSTILE_ZYGOTE

#include <stddef.h>

static uint64_t rng_state;

static uint64_t next_random(void)
{
    if (!rng_state) {
        uint32_t lo, hi;
        __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
        rng_state = ((uint64_t)hi << 32 | lo) | 1;
    }
    uint64_t x = rng_state; /* xorshift64* */
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng_state = x;
    return x * 0x2545f4914f6cdd1dull;
}

/* A value biased towards the edges a range check must catch. */
static uint64_t hostile_value(void)
{
    static const uint64_t edges[] = {0, 1, 0x7fffffffull, 0x80000000ull, 0xffffffffull, 0x100000000ull,
                                     0x8000000000000000ull, 0x7fffffffffffffffull, ~0ull, 0x40000000ull,
                                     VM_ADDR_RETURN_TO_HOST, VM_MIN_PAGE_SIZE};
    uint64_t r = next_random();
    if ((r & 3) == 0)
        return edges[(r >> 8) % (sizeof edges / sizeof edges[0])];
    return next_random();
}

typedef struct field {
    size_t offset, size;
} field;

#define FIELD(name, member) {offsetof(vmctx, member), sizeof(((vmctx *)0)->member)},
static const field fields[] = {VMCTX_FIELDS(FIELD)};
#undef FIELD

static void scribble_field(vmctx *ctx, const field *f)
{
    unsigned char *p = (unsigned char *)ctx + f->offset;
    /* the futex word is published right after; the rest takes anything */
    if (f->offset == offsetof(vmctx, futex))
        return;
    for (size_t i = 0; i < f->size; i += 8) {
        uint64_t v = hostile_value();
        size_t n = f->size - i < 8 ? f->size - i : 8;
        __builtin_memcpy(p + i, &v, n);
    }
}

void vm_zygote_hostile_scribble(vmctx *ctx, uint32_t *answer)
{
    static int handovers;
    if (handovers++ == 0)
        return; /* "ready": no guest code has run yet */
    uint64_t r = next_random();
    size_t count = sizeof fields / sizeof fields[0];
    if (*answer == VMCTX_FUTEX_GUEST_TRAP && (r >> 40) % 4 == 0) {
        /* a trap with a reason no engine gives (0, the limit, anything past) */
        uint32_t lie = (r >> 42) & 1 ? 0u : VM_TRAP_REASON_LIMIT + (uint32_t)(hostile_value() % 0x7fffffffu);
        atomic_store_explicit(&ctx->arg, lie, memory_order_relaxed);
        return;
    }
    switch (r % 8) {
    case 0: case 1: case 2: /* an honest answer now and then: runs get somewhere */
        break;
    case 3: case 4: /* one field */
        scribble_field(ctx, &fields[(r >> 8) % count]);
        break;
    case 5: /* every field */
        for (size_t i = 0; i < count; i++)
            scribble_field(ctx, &fields[i]);
        break;
    case 6: /* a lie about the outcome (always with the IDLE bit: a BUSY answer is a guest that loops) */
        *answer = (uint32_t)hostile_value() | VMCTX_FUTEX_IDLE;
        break;
    default: /* claim to be dead while alive */
        atomic_store_explicit(&ctx->death_futex, (uint32_t)hostile_value() | 0x40000000u, memory_order_relaxed);
        break;
    }
}

#endif
