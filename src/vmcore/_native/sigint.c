/* The chained SIGINT handler of vmcore/sigint.h.  Only async-signal-safe
 * work in the handler: lock-free atomic stores, futex(2), the chained
 * handler (Python's, itself async-signal-safe). */
#define _GNU_SOURCE
#include "vmcore/sigint.h"

#include <errno.h>
#include <linux/futex.h>
#include <signal.h>
#include <stddef.h>
#include <sys/syscall.h>
#include <unistd.h>

static _Atomic(_Atomic int *) armed_flag;
static _Atomic(_Atomic uint32_t *) armed_wake;
static atomic_int hit;
static atomic_int armed;
static struct sigaction previous; /* written before ours is installed, read by it */

static void on_sigint(int sig, siginfo_t *info, void *context)
{
    int saved_errno = errno;
    atomic_store(&hit, 1);
    _Atomic int *flag = atomic_load(&armed_flag);
    if (flag != NULL)
        atomic_store_explicit(flag, 1, memory_order_relaxed);
    _Atomic uint32_t *wake = atomic_load(&armed_wake);
    if (wake != NULL)
        syscall(SYS_futex, wake, FUTEX_WAKE, 1, NULL, NULL, 0);
    if (previous.sa_flags & SA_SIGINFO)
        previous.sa_sigaction(sig, info, context);
    else if (previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN)
        previous.sa_handler(sig);
    errno = saved_errno;
}

int vm_sigint_arm(_Atomic int *flag, _Atomic uint32_t *wake)
{
    struct sigaction current, ours;
    if (atomic_load(&armed) || sigaction(SIGINT, NULL, &current) != 0)
        return 0;
    if (!(current.sa_flags & SA_SIGINFO) && (current.sa_handler == SIG_DFL || current.sa_handler == SIG_IGN))
        return 0;
    previous = current;
    atomic_store(&hit, 0);
    atomic_store(&armed_flag, flag);
    atomic_store(&armed_wake, wake);
    ours = current;
    ours.sa_flags = current.sa_flags | SA_SIGINFO; /* no SA_RESTART: as Python's, waits see EINTR */
    ours.sa_sigaction = on_sigint;
    if (sigaction(SIGINT, &ours, NULL) != 0)
        return 0;
    atomic_store(&armed, 1);
    return 1;
}

void vm_sigint_disarm(void)
{
    sigaction(SIGINT, &previous, NULL);
    atomic_store(&armed_flag, NULL);
    atomic_store(&armed_wake, NULL);
    atomic_store(&armed, 0);
}

int vm_sigint_take(void) { return atomic_exchange(&hit, 0); }

int vm_sigint_pending_for(const _Atomic uint32_t *wake)
{
    return atomic_load(&hit) && wake != NULL && atomic_load(&armed_wake) == wake;
}
