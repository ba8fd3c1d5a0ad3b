/* Test-only hostile zygote (issue #15): compiled with
 * -DVMCORE_HOSTILE_ZYGOTE into a separate executable (never the packaged
 * vmcore/_zygote; see vmcore/fuzz_hostile.py), it writes random values
 * into the VmCtx fields at every hand-over to the host -- what a sandbox
 * process whose guest took it over could do -- so tests can check that the
 * host survives anything the sandbox writes, with typed errors only.  In
 * the normal build the hook is empty. */
#ifndef VMCORE_ZYGOTE_HOSTILE_H
#define VMCORE_ZYGOTE_HOSTILE_H

#include <stdint.h>

#include "vmcore/vmctx.h"

#ifdef VMCORE_HOSTILE_ZYGOTE
/* Scribble over *ctx and perhaps replace the answer about to be published. */
void vm_zygote_hostile_scribble(vmctx *ctx, uint32_t *answer);
#define ZY_HOSTILE_SCRIBBLE(ctx, answer) vm_zygote_hostile_scribble((ctx), (answer))
#else
#define ZY_HOSTILE_SCRIBBLE(ctx, answer) ((void)0)
#endif

#endif
