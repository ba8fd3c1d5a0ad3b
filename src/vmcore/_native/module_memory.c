/* Memory for shared modules (see include/vmcore/module_memory.h). */
#define _GNU_SOURCE
#include "vmcore/module_memory.h"
#include "vmcore/vmctx.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif

/* What the pool keeps: a few memfds and no more memory than this (the
 * modules they held; a compile of 1 MB of guest code leaves ~7 MB). */
#define POOL_ENTRIES 4
#define POOL_BYTES (64ull << 20)
/* New memfds are sized in powers of two (sparse: only written pages cost
 * memory) so that programs of similar size fit each other's. */
#define CAPACITY_MIN (1ull << 20)

#define PAGE ((uint64_t)VM_HOST_PAGE_SIZE)

typedef struct pooled {
    vm_module_memory mm;
    uint64_t held; /* bytes of module it held */
} pooled;

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static pooled pool[POOL_ENTRIES]; /* oldest first */
static int pool_count;
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;

static void unmap_and_close(vm_module_memory *mm)
{
    if (mm->module)
        munmap((void *)mm->module, mm->size);
    if (mm->map)
        munmap(mm->map, mm->capacity);
    if (mm->fd >= 0)
        close(mm->fd);
    mm->module = NULL;
    mm->map = NULL;
    mm->fd = -1;
}

static void drop_entry(int k)
{
    unmap_and_close(&pool[k].mm);
    memmove(&pool[k], &pool[k + 1], (size_t)(pool_count - k - 1) * sizeof pool[0]);
    pool_count--;
}

/* fork: the child must not write memfds its parent's modules live in. */
static void fork_prepare(void) { pthread_mutex_lock(&pool_lock); }
static void fork_parent(void) { pthread_mutex_unlock(&pool_lock); }
static void fork_child(void)
{
    while (pool_count)
        drop_entry(pool_count - 1);
    pthread_mutex_unlock(&pool_lock);
}
static void register_fork(void) { pthread_atfork(fork_prepare, fork_parent, fork_child); }

static uint64_t capacity_for(uint64_t need)
{
    uint64_t c = CAPACITY_MIN;
    while (c < need)
        c <<= 1;
    return c;
}

int vm_module_memory_open(vm_module_memory *mm, int poolable, const char *name, uint64_t need)
{
    memset(mm, 0, sizeof *mm);
    mm->fd = -1;
    mm->poolable = poolable;
    mm->pid = (int)getpid();
    pthread_once(&fork_once, register_fork);
    if (poolable) {
        /* the most recently freed memfd that fits (most likely the same
         * program's, laid out the same) */
        pthread_mutex_lock(&pool_lock);
        for (int k = pool_count - 1; k >= 0; k--) {
            if (pool[k].mm.capacity >= need && pool[k].mm.pid == mm->pid) {
                *mm = pool[k].mm;
                memmove(&pool[k], &pool[k + 1], (size_t)(pool_count - k - 1) * sizeof pool[0]);
                pool_count--;
                break;
            }
        }
        pthread_mutex_unlock(&pool_lock);
        if (mm->map) {
            mm->reused = 1;
            return 0;
        }
    }
    mm->capacity = capacity_for(need);
    mm->fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (mm->fd < 0)
        return -1;
    if (ftruncate(mm->fd, (off_t)mm->capacity) != 0) {
        int saved = errno;
        unmap_and_close(mm);
        errno = saved;
        return -1;
    }
    void *w = mmap(NULL, mm->capacity, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, mm->fd, 0);
    if (w == MAP_FAILED) {
        int saved = errno;
        unmap_and_close(mm);
        errno = saved;
        return -1;
    }
    mm->map = w;
    return 0;
}

/* Give back the whole pages of [from, to) of a new memfd (a hole again). */
static void punch(vm_module_memory *mm, uint64_t from, uint64_t to)
{
    uint64_t first = (from + PAGE - 1) & ~(PAGE - 1), last = to & ~(PAGE - 1);
    if (first < last)
        fallocate(mm->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)first, (off_t)(last - first));
}

/* Zero what `old` covers outside `now` (both sorted and disjoint). */
static void zero_outside(uint8_t *map, const vm_extent *old, int old_count, const vm_extent *now, int count)
{
    for (int i = 0; i < old_count; i++) {
        uint64_t at = old[i].from;
        for (int k = 0; k < count && at < old[i].to; k++) {
            if (now[k].to <= at)
                continue;
            if (now[k].from >= old[i].to)
                break;
            if (now[k].from > at)
                memset(map + at, 0, now[k].from - at);
            at = now[k].to;
        }
        if (at < old[i].to)
            memset(map + at, 0, old[i].to - at);
    }
}

const uint8_t *vm_module_memory_publish(vm_module_memory *mm, uint64_t size, const vm_extent *written, int count)
{
    const int fixed = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL;
    for (int k = 0; k < count; k++) {
        if (k >= VM_MODULE_EXTENTS || written[k].from > written[k].to || written[k].to > size ||
            (k && written[k].from < written[k - 1].to)) {
            unmap_and_close(mm);
            errno = EINVAL;
            return NULL;
        }
    }
    if (mm->reused) {
        zero_outside(mm->map, mm->extents, mm->extent_count, written, count);
    } else {
        uint64_t at = 0;
        for (int k = 0; k < count; k++) {
            punch(mm, at, written[k].from);
            at = written[k].to;
        }
        punch(mm, at, mm->capacity);
    }
    memcpy(mm->extents, written, (size_t)count * sizeof *written);
    mm->extent_count = count;
    /* A reused memfd is sealed already.  Without F_SEAL_FUTURE_WRITE
     * (before Linux 5.1) the writable mapping has to go before sealing
     * against writes, and with it the reuse. */
    if (!mm->reused && fcntl(mm->fd, F_ADD_SEALS, F_SEAL_FUTURE_WRITE | fixed) != 0) {
        int why = errno;
        munmap(mm->map, mm->capacity);
        mm->map = NULL;
        if (why != EINVAL || ftruncate(mm->fd, (off_t)size) != 0 ||
            fcntl(mm->fd, F_ADD_SEALS, F_SEAL_WRITE | fixed) != 0) {
            why = errno;
            unmap_and_close(mm);
            errno = why;
            return NULL;
        }
    }
    void *r = mmap(NULL, size, PROT_READ, MAP_SHARED, mm->fd, 0);
    if (r == MAP_FAILED) {
        int why = errno;
        unmap_and_close(mm);
        errno = why;
        return NULL;
    }
    mm->module = r;
    mm->size = size;
    mm->reusable = mm->map != NULL;
    return mm->module;
}

void vm_module_memory_release(vm_module_memory *mm)
{
    uint64_t size = mm->module ? mm->size : 0;
    if (!mm->map && !mm->module && mm->fd < 0)
        return;
    if (!mm->reusable || !mm->poolable || !size || size > POOL_BYTES || mm->pid != (int)getpid()) {
        unmap_and_close(mm);
        return;
    }
    munmap((void *)mm->module, mm->size);
    mm->module = NULL;
    pthread_mutex_lock(&pool_lock);
    uint64_t bytes = size;
    for (int k = 0; k < pool_count; k++)
        bytes += pool[k].held;
    while (pool_count && (pool_count == POOL_ENTRIES || bytes > POOL_BYTES)) {
        bytes -= pool[0].held;
        drop_entry(0);
    }
    pool[pool_count++] = (pooled){*mm, size};
    pthread_mutex_unlock(&pool_lock);
    mm->map = NULL;
    mm->fd = -1;
}

int vm_module_memory_drain(void)
{
    pthread_mutex_lock(&pool_lock);
    int n = pool_count;
    while (pool_count)
        drop_entry(pool_count - 1);
    pthread_mutex_unlock(&pool_lock);
    return n;
}

void vm_module_memory_pooled(int *count, uint64_t *bytes)
{
    pthread_mutex_lock(&pool_lock);
    *count = pool_count;
    *bytes = 0;
    for (int k = 0; k < pool_count; k++)
        *bytes += pool[k].held;
    pthread_mutex_unlock(&pool_lock);
}
