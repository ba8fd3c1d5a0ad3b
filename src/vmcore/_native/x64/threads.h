/* The recompiler's second thread, started on another CPU (threads.c). */
#ifndef VMCORE_X64_THREADS_H
#define VMCORE_X64_THREADS_H

#include "internal.h"

#include <pthread.h>
#include <sched.h>

/* The second segment's thread.  A new thread starts on its creator's CPU
 * and waits there until the load balancer moves it: on an otherwise idle
 * 2-vCPU machine that took 2.8 ms on average (up to 5 ms; half of 1 MB
 * compiles in 5).  So it is created on another CPU the process may use,
 * and then allowed everywhere again. */
typedef struct helper_start {
    compiler *c;
    cpu_set_t allowed;
    int restore;
} helper_start;

int vm_x64_start_helper(pthread_t *thread, helper_start *h, compiler *c);

#endif
