/* Threads and CPU pinning: a segment's compile and the helper thread that
 * runs the second one. */
#include "threads.h"
/* A segment's compile, scratch included (the second segment's is set up
 * on its own thread). */
void *vm_x64_segment_thread(void *arg)
{
    compiler *c = arg;
    if (c->prefault_to > c->prefault_from)
        madvise(c->prefault_from, (size_t)(c->prefault_to - c->prefault_from), MADV_POPULATE_WRITE);
    if (!vm_x64_scratch_take(c, c->map_cap))
        c->error = VM_X64_ERR_NOMEM;
    else
        vm_x64_compile_segment(c);
    return NULL;
}


static void *helper_main(void *arg)
{
    helper_start *h = arg;
    if (h->restore)
        sched_setaffinity(0, sizeof h->allowed, &h->allowed);
    return vm_x64_segment_thread(h->c);
}

int vm_x64_start_helper(pthread_t *thread, helper_start *h, compiler *c)
{
    h->c = c;
    h->restore = 0;
    pthread_attr_t attr;
    if (pthread_attr_init(&attr) != 0)
        return -1;
    int me = sched_getcpu();
    cpu_set_t others;
    CPU_ZERO(&others);
    if (me >= 0 && sched_getaffinity(0, sizeof h->allowed, &h->allowed) == 0) {
        for (int k = 0; k < CPU_SETSIZE; k++)
            if (k != me && CPU_ISSET(k, &h->allowed))
                CPU_SET(k, &others);
        if (CPU_COUNT(&others) > 0 && pthread_attr_setaffinity_np(&attr, sizeof others, &others) == 0)
            h->restore = 1;
    }
    int rc = pthread_create(thread, &attr, helper_main, h);
    pthread_attr_destroy(&attr);
    return rc;
}
