/* Prefaulting (config.populate): the output's pages faulted in ahead of
 * the writes, one call per stretch. */
#include "internal.h"

/* config.populate: prefault the next stretch of this segment's output in
 * one call (MADV_POPULATE_WRITE) before the writes reach it; cheaper than
 * a fault per page for shared memory.  Best effort: on failure (an old
 * kernel) it stops trying and the writes fault as usual. */
#define POPULATE_CODE (64u * 1024u)
#define POPULATE_RECORDS (64u * 1024u)

static void populate_range(uint8_t **done, uint8_t *upto, uint8_t *limit, size_t chunk, int *failed)
{
    uint8_t *from = (uint8_t *)((uintptr_t)*done & ~(uintptr_t)(VM_HOST_PAGE_SIZE - 1));
    if (from < *done)
        from += VM_HOST_PAGE_SIZE;
    if (*failed || upto + chunk / 2 < *done)
        return;
    uint8_t *to = *done + chunk < limit ? *done + chunk : limit;
    to = (uint8_t *)((uintptr_t)to & ~(uintptr_t)(VM_HOST_PAGE_SIZE - 1));
    if (to > from && madvise(from, (size_t)(to - from), MADV_POPULATE_WRITE) != 0)
        *failed = 1;
    *done = to > *done ? to : *done;
}

void vm_x64_populate_ahead(compiler *c)
{
    populate_range(&c->populated_code, c->out.p, c->limit, POPULATE_CODE, &c->populate_failed);
    if (c->lo == 0) /* a later segment's records are scratch */
        populate_range(&c->populated_records, (uint8_t *)(c->records + c->map_count),
                       (uint8_t *)(c->records + c->map_cap), POPULATE_RECORDS, &c->populate_failed);
}
