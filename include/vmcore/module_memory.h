/* Memory for shared modules (host side): one sealed memfd per module,
 * written through the builder's mapping here, and reused.
 *
 * A module's memfd is sealed against writes, new writable mappings and
 * resizing (F_SEAL_FUTURE_WRITE | SHRINK | GROW | SEAL) before any zygote
 * sees it; only the mapping made before sealing -- the builder's, here --
 * can still write.  When a module is freed, its memfd goes to a small pool
 * with its pages, and the next build that fits writes over them: the first
 * write to a fresh shared page costs about 0.8 ms per MB on the machines
 * measured (~5 ms for what 1 MB of guest code compiles to, half the CPU of
 * compiling it).  (PolkaVM gets the same from one shared-memory allocator
 * whose freed pages are reused.)
 *
 * Why reuse is safe: a module is freed only once no zygote maps it (each
 * Zygote holds the module it was sent until it is sent another, and a
 * zygote loads the newer one before it runs again); the builder says what
 * the new module wrote and the earlier module's bytes outside that are
 * zeroed (a sealed memfd cannot punch holes), so a sandbox never sees
 * them; and a child process after fork never writes a memfd its parent
 * built (entries and modules remember the pid that built them).
 *
 * Without F_SEAL_FUTURE_WRITE (kernels before 5.1) modules are trimmed,
 * sealed with F_SEAL_WRITE and mapped again read only; nothing is reused.
 */
#ifndef VMCORE_MODULE_MEMORY_H
#define VMCORE_MODULE_MEMORY_H

#include <stdint.h>

/* A byte range [from, to) of a memfd. */
typedef struct vm_extent {
    uint64_t from, to;
} vm_extent;

#define VM_MODULE_EXTENTS 8

/* A memfd being built or holding a published module. */
typedef struct vm_module_memory {
    int fd;
    uint8_t *map;      /* capacity bytes, writable: the builder's (kept for the next build) */
    const uint8_t *module; /* after publishing: [0, size) mapped again, read only (what the host reads) */
    uint64_t size;     /* of the published module */
    uint64_t capacity; /* the memfd's size (may exceed the module's) */
    int poolable;      /* goes back to the pool when released (native-code modules) */
    int pid;           /* the process that built it (only it may reuse it) */
    int reusable;      /* sealed with F_SEAL_FUTURE_WRITE, `map` kept: it can be written again */
    int reused;        /* this build writes over a pooled memfd */
    int extent_count;  /* where its bytes may be nonzero (everything else reads as zeros) */
    vm_extent extents[VM_MODULE_EXTENTS];
} vm_module_memory;

/* A memfd of at least `need` bytes mapped writable: with `poolable`, a
 * pooled one when one fits (reused = 1), else a new one named `name`.  0,
 * or -1 with errno set. */
int vm_module_memory_open(vm_module_memory *mm, int poolable, const char *name, uint64_t need);

/* What the build wrote (sorted, disjoint, at most VM_MODULE_EXTENTS; the
 * rest of the memfd must read as zeros): of a reused memfd, what the
 * earlier module wrote outside them is zeroed; of a new one, the pages
 * outside them (prefaulted ahead of the writes, never written) are given
 * back.  Then seals it and maps [0, size) again read only (size page
 * aligned; the writable mapping stays, unused, for the next build).
 * Returns the read-only mapping, or NULL with errno set (everything
 * released). */
const uint8_t *vm_module_memory_publish(vm_module_memory *mm, uint64_t size, const vm_extent *written, int count);

/* A published module is gone (or a build failed): its memfd back to the
 * pool, or closed. */
void vm_module_memory_release(vm_module_memory *mm);

/* Close every pooled memfd (their memory is freed); returns how many. */
int vm_module_memory_drain(void);

/* Pooled memfds and the bytes of module they hold. */
void vm_module_memory_pooled(int *count, uint64_t *bytes);

#endif
