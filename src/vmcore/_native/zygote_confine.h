/* The zygote's confinement (zygote_confine.c). */
#ifndef VMCORE_ZYGOTE_CONFINE_H
#define VMCORE_ZYGOTE_CONFINE_H

#include <stdint.h>

/* 0 on success. */
int zy_empty_root(void);
int zy_drop_capabilities(void);
/* the VM_ISO_* bits of the limits that were applied */
uint32_t zy_apply_rlimits(void);
int zy_install_seccomp(void);

#endif
