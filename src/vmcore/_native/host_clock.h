/* The host's monotonic clock in seconds (host.c's spawn deadlines and
 * host_handshake.c's waits). */
#ifndef VMCORE_HOST_CLOCK_H
#define VMCORE_HOST_CLOCK_H

#include <time.h>

static inline double vm_host_now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

#endif
