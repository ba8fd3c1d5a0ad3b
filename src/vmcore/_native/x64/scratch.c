/* The scratch pool: each segment compiler's work arrays, kept for the
 * next compile. */
#include "internal.h"
#include <pthread.h>

/* A segment compiler's scratch arrays are kept for the next compile (a
 * process compiles program after program; fresh allocations would fault
 * their pages in every time).  Never waits for the lock: without it,
 * allocate (so a child forked while it was held still works). */
typedef struct scratch {
    uint64_t *target_bits;
    uint32_t *target_prefix;
    uint32_t *target_entry;
    fixup *fixups;
    uint32_t *records;
    vm_x64_mark *marks;
    size_t bits_cap, prefix_cap, entry_cap, fixup_cap, records_cap, marks_cap;
} scratch;

#define SCRATCH_KEPT 2
#define SCRATCH_KEPT_BYTES (64u << 20) /* each; bigger ones are freed */

static pthread_mutex_t scratch_lock = PTHREAD_MUTEX_INITIALIZER;
static scratch scratch_kept[SCRATCH_KEPT]; /* one per segment (first, later): each keeps its shape */
static int scratch_held[SCRATCH_KEPT];

/* At least `need` items of `item` bytes (contents not kept); NULL when
 * out of memory (the old block is then freed and *cap 0). */
static void *reserve(void *p, size_t *cap, size_t need, size_t item)
{
    if (p && *cap >= need)
        return p;
    free(p);
    need += need / 4; /* room for the next program's to differ a little */
    p = malloc(need * item);
    *cap = p ? need : 0;
    return p;
}

int vm_x64_scratch_take(compiler *c, size_t map_capacity)
{
    scratch s;
    memset(&s, 0, sizeof s);
    int slot = c->lo > 0;
    if (pthread_mutex_trylock(&scratch_lock) == 0) {
        if (scratch_held[slot]) {
            s = scratch_kept[slot];
            scratch_held[slot] = 0;
        }
        pthread_mutex_unlock(&scratch_lock);
    }
    size_t words = ((size_t)c->code_len + 64) / 64 + 1;
    c->target_bits = reserve(s.target_bits, &s.bits_cap, words, sizeof(uint64_t));
    c->target_prefix = reserve(s.target_prefix, &s.prefix_cap, words, sizeof(uint32_t));
    c->target_entry = reserve(s.target_entry, &s.entry_cap, map_capacity, sizeof(uint32_t));
    c->bits_cap = s.bits_cap;
    c->prefix_cap = s.prefix_cap;
    c->entry_cap = s.entry_cap;
    c->fixups = s.fixups;
    c->fixup_cap = s.fixup_cap;
    c->fixup_count = 0;
    c->own_records = s.records;
    c->own_marks = s.marks;
    c->own_records_cap = s.records_cap;
    c->own_marks_cap = s.marks_cap;
    if (c->lo > 0) {
        c->own_records = reserve(c->own_records, &c->own_records_cap, c->map_cap, sizeof(uint32_t));
        c->own_marks = reserve(c->own_marks, &c->own_marks_cap, c->mark_cap, sizeof(vm_x64_mark));
        if (!c->own_records || !c->own_marks)
            return 0;
        c->records = c->own_records;
        c->marks = c->own_marks;
    }
    if (!c->target_bits || !c->target_prefix || !c->target_entry)
        return 0;
    memset(c->target_bits, 0, words * sizeof(uint64_t));
    return 1;
}

void vm_x64_scratch_give_back(compiler *c)
{
    scratch s = {c->target_bits, c->target_prefix, c->target_entry, c->fixups, c->own_records, c->own_marks,
                 c->bits_cap,    c->prefix_cap,    c->entry_cap,    c->fixup_cap, c->own_records_cap,
                 c->own_marks_cap};
    size_t bytes = s.bits_cap * 8 + s.prefix_cap * 4 + s.entry_cap * 4 + s.fixup_cap * sizeof(fixup) +
                   s.records_cap * 4 + s.marks_cap * sizeof(vm_x64_mark);
    int slot = c->lo > 0;
    if (bytes <= SCRATCH_KEPT_BYTES && pthread_mutex_trylock(&scratch_lock) == 0) {
        int kept = !scratch_held[slot];
        if (kept) {
            scratch_kept[slot] = s;
            scratch_held[slot] = 1;
        }
        pthread_mutex_unlock(&scratch_lock);
        if (kept)
            return;
    }
    free(s.target_bits);
    free(s.target_prefix);
    free(s.target_entry);
    free(s.fixups);
    free(s.records);
    free(s.marks);
}
