/* Ctrl-C while a guest runs in Python's main thread (host only, libc).
 *
 * Python's SIGINT handler only sets a flag that the eval loop checks; a
 * guest running in C never gets back there.  While armed, a handler chained
 * in front of Python's also stops the guest: it sets the inline
 * interpreter's interrupt flag and/or wakes the host's futex wait on a
 * sandbox process, then calls Python's handler.  The caller (main thread,
 * with the GIL) then runs PyErr_CheckSignals(): on KeyboardInterrupt it
 * leaves the guest stopped, else it clears the flag and resumes. */
#ifndef VMCORE_SIGINT_H
#define VMCORE_SIGINT_H

#include <stdatomic.h>
#include <stdint.h>

/* Chain the handler in front of the current SIGINT handler, with `flag`
 * (may be NULL) set and `wake` (a futex word, may be NULL) woken on a
 * SIGINT.  1 if armed; 0 if SIGINT is not caught by a handler function
 * (SIG_DFL kills, SIG_IGN ignores: nothing to chain) or already armed.
 * Not reentrant: the main thread arms around one wait at a time. */
int vm_sigint_arm(_Atomic int *flag, _Atomic uint32_t *wake);
/* Put the previous handler back (after a 1 from vm_sigint_arm). */
void vm_sigint_disarm(void);
/* 1 once if a SIGINT arrived while armed since the last call, else 0. */
int vm_sigint_take(void);
/* 1 if a SIGINT arrived while armed for the futex word `wake` (not
 * consumed): the host wait returns VM_HOST_WAIT_SIGINT. */
int vm_sigint_pending_for(const _Atomic uint32_t *wake);

#endif
