/* The host's half of the handshake with a zygote: wake it, wait for its
 * answer (spinning, then on the futex), notice when it died or stopped
 * answering.  host.c starts and stops zygotes. */
#define _GNU_SOURCE
#include "vmcore/host.h"
#include "host_clock.h"
#include "vmcore/sigint.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_futex_waitv
#define SYS_futex_waitv 449
#endif
#ifndef FUTEX2_SIZE_U32
#define FUTEX2_SIZE_U32 0x02
#endif
#ifndef FUTEX_OWNER_DIED
#define FUTEX_OWNER_DIED 0x40000000
#endif

/* ---- the handshake ---- */

void vm_host_wake(vmctx *ctx) { syscall(SYS_futex, &ctx->futex, FUTEX_WAKE, 1, NULL, NULL, 0); }

struct vm_futex_waitv {
    uint64_t val;
    uint64_t uaddr;
    uint32_t flags;
    uint32_t reserved;
};

static int have_waitv = 1;

/* 1 when /proc says the process is stopped (SIGSTOP, a tracer), else 0. */
static int process_stopped(int pid)
{
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = 0;
    const char *paren = strrchr(buf, ')'); /* "pid (comm) S ..." */
    return paren && paren[1] == ' ' && (paren[2] == 'T' || paren[2] == 't');
}

int vm_host_wait(vm_host_zygote *z, uint32_t spin, uint32_t *state)
{
    vmctx *c = z->ctx;
    uint32_t v = vm_host_spin(c, spin);
    if (v != VMCTX_FUTEX_BUSY) {
        *state = v;
        return 0;
    }
    int robust = (z->isolation & VM_ISO_ROBUST_FUTEX) != 0;
    double interrupt_since = 0;
    int stopped_checks = 0;
    for (;;) {
        atomic_store_explicit(&c->host_sleeping, 1, memory_order_seq_cst);
        v = atomic_load_explicit(&c->futex, memory_order_seq_cst);
        if (v != VMCTX_FUTEX_BUSY)
            break;
        /* Ctrl-C: back to the caller, which decides (EINTR or the
         * handler's wake got us here). */
        if (vm_sigint_pending_for(&c->futex)) {
            atomic_store_explicit(&c->host_sleeping, 0, memory_order_relaxed);
            return VM_HOST_WAIT_SIGINT;
        }
        uint32_t death = atomic_load_explicit(&c->death_futex, memory_order_acquire);
        if (death & FUTEX_OWNER_DIED) {
            atomic_store_explicit(&c->host_sleeping, 0, memory_order_relaxed);
            return VM_HOST_WAIT_DIED;
        }
        /* Asked to stop: a healthy sandbox answers within a block; poke it
         * again every millisecond (a SIGUSR1 can land where it cannot act
         * at once), and kill it if it has not answered after the grace. */
        int interrupting = atomic_load_explicit(&c->interrupt, memory_order_relaxed) != 0;
        long timeout_ns = interrupting ? 1000000L : 100 * 1000000L;
        if (interrupting) {
            double now = vm_host_now_seconds();
            if (interrupt_since == 0)
                interrupt_since = now;
            else if (now - interrupt_since > VM_HOST_INTERRUPT_GRACE) {
                vm_host_signal(z, SIGKILL);
                atomic_store_explicit(&c->host_sleeping, 0, memory_order_relaxed);
                return VM_HOST_WAIT_UNRESPONSIVE;
            } else
                vm_host_signal(z, SIGUSR1);
        }
        z->futex_wait++;
        long r;
        if (robust && have_waitv) {
            /* Wake on the handshake word or on the kernel's robust-futex
             * wake-up when the zygote dies, whichever comes first. */
            struct vm_futex_waitv w[2];
            memset(w, 0, sizeof w);
            w[0].val = VMCTX_FUTEX_BUSY;
            w[0].uaddr = (uint64_t)(uintptr_t)&c->futex;
            w[0].flags = FUTEX2_SIZE_U32;
            w[1].val = death;
            w[1].uaddr = (uint64_t)(uintptr_t)&c->death_futex;
            w[1].flags = FUTEX2_SIZE_U32;
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            ts.tv_nsec += timeout_ns;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            r = syscall(SYS_futex_waitv, w, 2, 0, &ts, CLOCK_MONOTONIC);
            if (r < 0 && errno == ENOSYS) {
                have_waitv = 0;
                continue;
            }
        } else {
            struct timespec ts = {0, interrupting ? timeout_ns : 2 * 1000000L};
            r = syscall(SYS_futex, &c->futex, FUTEX_WAIT, VMCTX_FUTEX_BUSY, &ts, NULL, 0);
        }
        if (r < 0 && errno == ETIMEDOUT) {
            if (!vm_host_alive(z)) {
                if (atomic_load_explicit(&c->futex, memory_order_acquire) != VMCTX_FUTEX_BUSY)
                    continue; /* it answered, then exited: take the answer */
                atomic_store_explicit(&c->host_sleeping, 0, memory_order_relaxed);
                return VM_HOST_WAIT_DIED;
            }
            /* A stopped sandbox never answers: after a few checks in a row
             * (~0.3 s) it is killed and the call fails instead of hanging. */
            if (!interrupting && robust) {
                stopped_checks = process_stopped(z->pid) ? stopped_checks + 1 : 0;
                if (stopped_checks >= 3) {
                    vm_host_signal(z, SIGKILL);
                    atomic_store_explicit(&c->host_sleeping, 0, memory_order_relaxed);
                    return VM_HOST_WAIT_STOPPED;
                }
            }
        }
    }
    atomic_store_explicit(&c->host_sleeping, 0, memory_order_relaxed);
    *state = v;
    return 0;
}

void vm_host_state_load(const vmctx *cc, vm_state *s)
{
    vmctx *c = (vmctx *)cc;
    for (int i = 0; i < VM_REG_COUNT; i++)
        s->regs[i] = atomic_load_explicit(&c->regs[i], memory_order_relaxed);
    s->regs[VM_REG_COUNT] = 0; /* the interpreter's constant zero */
    s->gas = atomic_load_explicit(&c->gas, memory_order_relaxed);
    s->resume = (uint32_t)atomic_load_explicit(&c->jump_into, memory_order_relaxed);
    s->pc = atomic_load_explicit(&c->program_counter, memory_order_relaxed);
    s->next_pc = atomic_load_explicit(&c->next_program_counter, memory_order_relaxed);
    s->arg = atomic_load_explicit(&c->arg, memory_order_relaxed);
    s->heap.base = c->heap_base;
    s->heap.top = (uint32_t)atomic_load_explicit(&c->heap_info.heap_top, memory_order_relaxed);
    s->heap.mapped_end = (uint32_t)atomic_load_explicit(&c->heap_info.heap_threshold, memory_order_relaxed);
    s->heap.max_top = c->heap_base + c->heap_max_size;
    s->heap.grow_pages = c->heap_grow_pages;
    s->interrupt = 0;
}

void vm_host_state_store(vmctx *c, const vm_state *s)
{
    for (int i = 0; i < VM_REG_COUNT; i++)
        atomic_store_explicit(&c->regs[i], s->regs[i], memory_order_relaxed);
    atomic_store_explicit(&c->gas, s->gas, memory_order_relaxed);
    atomic_store_explicit(&c->jump_into, s->resume, memory_order_relaxed);
    atomic_store_explicit(&c->program_counter, s->pc, memory_order_relaxed);
    atomic_store_explicit(&c->next_program_counter, s->next_pc, memory_order_relaxed);
    atomic_store_explicit(&c->arg, s->arg, memory_order_relaxed);
    c->heap_base = s->heap.base;
    atomic_store_explicit(&c->heap_info.heap_top, s->heap.top, memory_order_relaxed);
    atomic_store_explicit(&c->heap_info.heap_threshold, s->heap.mapped_end, memory_order_relaxed);
    c->heap_max_size = s->heap.max_top - s->heap.base;
    c->heap_grow_pages = s->heap.grow_pages;
}
