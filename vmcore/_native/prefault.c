/* Prefaulting ahead of a writer (see include/vmcore/prefault.h). */
#define _GNU_SOURCE
#include "vmcore/prefault.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

/* One madvise call's worth: small enough that a stop request waits little,
 * big enough that the call overhead does not matter. */
#define CHUNK (256u * 1024u)

struct vm_prefault {
    pthread_t thread;
    _Atomic int stop;
    int count;
    vm_prefault_region regions[VM_PREFAULT_MAX_REGIONS];
    size_t populated[VM_PREFAULT_MAX_REGIONS];
};

static size_t page_up(size_t v) { return (v + 4095) & ~(size_t)4095; }

static void *prefault_main(void *arg)
{
    vm_prefault *p = arg;
    while (!atomic_load_explicit(&p->stop, memory_order_relaxed)) {
        int busy = 0;
        for (int k = 0; k < p->count; k++) {
            const vm_prefault_region *r = &p->regions[k];
            uint64_t written = atomic_load_explicit(r->written, memory_order_relaxed);
            size_t goal = written + r->window < r->length ? page_up((size_t)written + r->window) : r->length;
            if (goal > r->length)
                goal = r->length;
            if (p->populated[k] >= goal)
                continue;
            size_t n = goal - p->populated[k] < CHUNK ? goal - p->populated[k] : CHUNK;
            if (madvise(r->start + p->populated[k], n, MADV_POPULATE_WRITE) != 0 && errno != EINTR &&
                errno != EAGAIN)
                return NULL; /* unsupported or out of memory: the writer faults for itself */
            p->populated[k] += n;
            busy = 1;
        }
        if (!busy) {
            struct timespec pause = {0, 20000};
            nanosleep(&pause, NULL);
        }
    }
    return NULL;
}

vm_prefault *vm_prefault_start(const vm_prefault_region *regions, int count)
{
    if (count <= 0 || count > VM_PREFAULT_MAX_REGIONS)
        return NULL;
    cpu_set_t cpus;
    if (sched_getaffinity(0, sizeof cpus, &cpus) != 0 || CPU_COUNT(&cpus) < 2)
        return NULL; /* the helper would only take turns with the writer */
    vm_prefault *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->count = count;
    memcpy(p->regions, regions, (size_t)count * sizeof *regions);
    pthread_attr_t attr;
    if (pthread_attr_init(&attr) != 0) {
        free(p);
        return NULL;
    }
    pthread_attr_setstacksize(&attr, 64 * 1024);
    /* Signals stay with the application's threads. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int ok = pthread_create(&p->thread, &attr, prefault_main, p) == 0;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    if (!ok) {
        free(p);
        return NULL;
    }
    return p;
}

void vm_prefault_stop(vm_prefault *p)
{
    if (!p)
        return;
    atomic_store_explicit(&p->stop, 1, memory_order_relaxed);
    pthread_join(p->thread, NULL);
    free(p);
}
