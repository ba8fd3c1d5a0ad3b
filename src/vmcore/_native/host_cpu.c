/* Where sandbox processes run: CPU placement (see include/vmcore/host.h).
 *
 * Every CPU counts the zygotes this process has placed on it; a zygote goes
 * to the least-loaded CPU of its allowed set, so sandboxes driven from one
 * thread (or from a pool refilled by one thread) spread over the cores
 * instead of stacking on "a CPU other than the creator's". */
#define _GNU_SOURCE
#include "vmcore/host.h"

#include <pthread.h>
#include <sched.h>
#include <string.h>

static pthread_once_t cpus_once = PTHREAD_ONCE_INIT;
static int cpu_list[CPU_SETSIZE]; /* the CPUs this process may use */
static int cpu_total;
static pthread_mutex_t load_lock = PTHREAD_MUTEX_INITIALIZER;
static int cpu_load[CPU_SETSIZE]; /* zygotes placed per CPU (under load_lock) */
static unsigned cpu_next;         /* where ties start: round robin (under load_lock) */

static void cpus_init(void)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) != 0) {
        cpu_total = 1;
        cpu_list[0] = 0;
        return;
    }
    for (int i = 0; i < CPU_SETSIZE; i++)
        if (CPU_ISSET(i, &set))
            cpu_list[cpu_total++] = i;
    if (!cpu_total) {
        cpu_total = 1;
        cpu_list[0] = 0;
    }
}

int vm_host_cpu_count(void)
{
    pthread_once(&cpus_once, cpus_init);
    return cpu_total;
}

int vm_host_current_cpu(void) { return sched_getcpu(); }

static int in_set(const uint64_t *allowed, int cpu)
{
    return !allowed || (allowed[cpu / 64] >> (cpu % 64)) & 1u;
}

static int set_is_empty(const uint64_t *allowed)
{
    for (int i = 0; i < VM_HOST_CPU_WORDS; i++)
        if (allowed[i])
            return 0;
    return 1;
}

/* The least-loaded CPU of `allowed` (ties: not `avoid`, then round robin),
 * or -1; under load_lock. */
static int least_loaded(const uint64_t *allowed, int avoid)
{
    int best = -1;
    unsigned start = cpu_next++;
    for (int k = 0; k < cpu_total; k++) {
        int cpu = cpu_list[(start + (unsigned)k) % (unsigned)cpu_total];
        if (!in_set(allowed, cpu))
            continue;
        if (best < 0 || cpu_load[cpu] < cpu_load[best] ||
            (cpu_load[cpu] == cpu_load[best] && best == avoid && cpu != avoid))
            best = cpu;
    }
    return best;
}

int vm_host_cpu_reserve(const uint64_t *allowed, int avoid)
{
    vm_host_cpu_count();
    if (allowed && set_is_empty(allowed))
        allowed = NULL;
    if (!allowed && cpu_total < 2)
        return -1; /* nothing to spread over: leave it to the scheduler */
    pthread_mutex_lock(&load_lock);
    int cpu = least_loaded(allowed, avoid);
    if (cpu >= 0)
        cpu_load[cpu]++;
    pthread_mutex_unlock(&load_lock);
    return cpu;
}

void vm_host_cpu_unreserve(int cpu)
{
    if (cpu < 0 || cpu >= CPU_SETSIZE)
        return;
    pthread_mutex_lock(&load_lock);
    if (cpu_load[cpu] > 0)
        cpu_load[cpu]--;
    pthread_mutex_unlock(&load_lock);
}

int vm_host_cpu_load(int cpu)
{
    if (cpu < 0 || cpu >= CPU_SETSIZE)
        return 0;
    pthread_mutex_lock(&load_lock);
    int n = cpu_load[cpu];
    pthread_mutex_unlock(&load_lock);
    return n;
}

static int set_affinity(vm_host_zygote *z, const uint64_t *allowed, int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    for (int k = 0; k < vm_host_cpu_count(); k++)
        if (cpu >= 0 ? cpu_list[k] == cpu : in_set(allowed, cpu_list[k]))
            CPU_SET(cpu_list[k], &set);
    if (CPU_COUNT(&set) == 0)
        return -1;
    return sched_setaffinity(z->pid, sizeof set, &set);
}

void vm_host_unplace(vm_host_zygote *z)
{
    if (z->placed) {
        vm_host_cpu_unreserve(z->cpu);
        z->placed = 0;
    }
}

static void set_allowed(vm_host_zygote *z, const uint64_t *allowed)
{
    if (allowed)
        memcpy(z->allowed, allowed, sizeof z->allowed);
    else
        memset(z->allowed, 0, sizeof z->allowed);
}

static void record_cpu(vm_host_zygote *z, int cpu)
{
    z->cpu = cpu;
    if (z->ctx)
        z->ctx->sandbox_cpu = cpu;
}

int vm_host_place(vm_host_zygote *z, const uint64_t *allowed, int avoid)
{
    vm_host_unplace(z);
    set_allowed(z, allowed);
    int cpu = vm_host_cpu_reserve(allowed, avoid);
    if (cpu < 0)
        return -1;
    if (cpu != z->cpu && set_affinity(z, NULL, cpu) != 0) {
        vm_host_cpu_unreserve(cpu);
        return -1;
    }
    record_cpu(z, cpu);
    z->placed = 1;
    return cpu;
}

int vm_host_unpin(vm_host_zygote *z, const uint64_t *allowed)
{
    vm_host_unplace(z);
    set_allowed(z, allowed);
    if (allowed && set_is_empty(allowed))
        allowed = NULL;
    if (set_affinity(z, allowed, -1) != 0)
        return -1;
    record_cpu(z, -1);
    return 0;
}

int vm_host_move_off(vm_host_zygote *z, int current)
{
    if (!z->placed || z->cpu != current)
        return 0;
    const uint64_t *allowed = set_is_empty(z->allowed) ? NULL : z->allowed;
    pthread_mutex_lock(&load_lock);
    int to = least_loaded(allowed, current);
    /* Only to a CPU with fewer zygotes: moving must never stack two. */
    int move = to >= 0 && to != current && cpu_load[to] < cpu_load[current];
    if (move) {
        cpu_load[current]--;
        cpu_load[to]++;
    }
    pthread_mutex_unlock(&load_lock);
    if (!move)
        return 0;
    if (set_affinity(z, NULL, to) != 0) {
        vm_host_cpu_unreserve(to);
        z->placed = 0;
        return -1;
    }
    record_cpu(z, to);
    z->repin++;
    return 1;
}
