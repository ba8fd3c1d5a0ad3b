/* The host side of the process sandbox: the zygote image, shared modules,
 * spawning and confining zygotes, shared memory, and the spin-then-wait
 * half of the VmCtx handshake.  Uses libc (host only). */
#ifndef VMCORE_HOST_H
#define VMCORE_HOST_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "vmcore/interp.h"
#include "vmcore/module_memory.h"
#include "vmcore/vmctx.h"
#include "vmcore/shared_module.h"

#define VM_HOST_ERROR_SIZE 256

/* A close-on-exec memfd of `size` bytes that can be sealed (exec: one the
 * kernel lets be mapped executable); the fd, or -1 with errno set. */
int vm_host_memfd(const char *name, uint64_t size, int exec);

/* The zygote executable in a sealed memfd (once per process). */
int vm_host_image_create(const void *elf, size_t length, char *error);

/* A module (either kind, shared_module.h) in a sealed memfd, mapped read only
 * here. */
typedef struct vm_host_module {
    uint32_t kind;                 /* VM_SHM_KIND_* */
    vm_module module;              /* INTERP: pointers into base */
    const vm_x64_module *x64;      /* X64: in base */
    vm_x64_map map;                /* X64: in base */
    vm_module_memory memory;       /* its memfd (module_memory.h) */
    const uint8_t *base;           /* the module, size bytes (NULL: none) */
    uint64_t size;
} vm_host_module;

int vm_host_module_build(vm_host_module *m, const vm_module_config *config, const uint8_t *code, uint32_t code_len,
                         const uint8_t *bitmask, const uint32_t *jump_table_targets, uint32_t jump_table_count,
                         char *error);
/* Recompile for the sandbox (config->code_address is set here to
 * VM_ADDR_NATIVE_CODE); the compile runs straight into the memfd.  0, or
 * -1 with a message (the VM_X64_ERR_* in *x64_error when it was the
 * compiler's). */
int vm_host_x64_build(vm_host_module *m, const vm_x64_config *config, const uint8_t *code, uint32_t code_len,
                      const uint8_t *bitmask, const uint32_t *jump_table_targets, uint32_t jump_table_count,
                      int *x64_error, char *error);
/* Its memfd goes back to the pool (module_memory.h) or is closed. */
void vm_host_module_free(vm_host_module *m);

typedef struct vm_host_spawn_options {
    int image_fd;
    uint32_t flags;           /* VM_INIT_FLAG_* */
    uint32_t spin_iterations; /* the zygote's spin budget */
    int cpu;                  /* pin the zygote here (-1: no pinning) */
    int namespaces;           /* 0: none (debugging), 1: as many as the kernel allows */
    double start_timeout;     /* seconds */
} vm_host_spawn_options;

#define VM_HOST_CPU_WORDS 16 /* CPU sets: 1024 bits */

/* One sandbox process and its shared memory. */
typedef struct vm_host_zygote {
    int pid;
    int pidfd;
    int ctx_fd, memory_fd, socket_fd, lifetime_fd;
    vmctx *ctx;
    uint8_t *window; /* guest address 0 .. 4 GiB + slack */
    uint8_t *perms;  /* VM_GUEST_PERMS_SIZE bytes */
    int cpu;         /* pinned to (-1: not pinned) */
    int placed;      /* counted on `cpu` by the placement (host_cpu.c) */
    uint64_t allowed[VM_HOST_CPU_WORDS]; /* the CPUs it may be placed on (all zero: every CPU) */
    int owner_pid;   /* the host process that started it (fork safety) */
    int reaped;
    int status_code; /* after reaping: CLD_* */
    int status;      /* exit status or signal */
    uint64_t module_generation;
    uint64_t wait_loop_start, futex_wait; /* host-side counters */
    uint64_t repin;                       /* times the zygote was moved off the caller's CPU */
    uint32_t isolation;                   /* VM_ISO_* as reported at start-up, before any guest code ran */
} vm_host_zygote;

/* Start a zygote and wait until it is confined and idle.  0, or -1 with a
 * message in error (VM_HOST_ERROR_SIZE bytes). */
int vm_host_spawn(vm_host_zygote *z, const vm_host_spawn_options *options, char *error);
/* Kill (if alive), reap, unmap and close everything; safe to call twice. */
void vm_host_release(vm_host_zygote *z);
/* Release only this process's view (after fork: the zygote is not ours). */
void vm_host_forget(vm_host_zygote *z);
/* 1 alive, 0 exited (not reaped yet or reaped). */
int vm_host_alive(vm_host_zygote *z);
int vm_host_signal(vm_host_zygote *z, int sig);
/* Reap (blocking) and record the status; 0 or -1. */
int vm_host_reap(vm_host_zygote *z);
/* Describe how the zygote ended ("killed by signal 9 (SIGKILL)"). */
void vm_host_describe_exit(vm_host_zygote *z, char *out, size_t size);
/* Hand a module memfd to the zygote (taken at its next run). */
int vm_host_send_module(vm_host_zygote *z, const vm_host_module *m);
/* ---- CPU placement (host_cpu.c) ----
 * Sandbox processes spread over the CPUs this process may use: each CPU
 * counts the zygotes placed on it, and a zygote goes to the least-loaded CPU
 * of its allowed set (VM_HOST_CPU_WORDS words of bits; NULL or all zero:
 * every CPU), preferring one other than `avoid` (the calling thread's, so a
 * lone sandbox and its host spin on different cores). */
int vm_host_cpu_count(void);
int vm_host_current_cpu(void);
/* Count one zygote on the least-loaded allowed CPU and return it; -1 (not
 * counted: leave it to the scheduler) with every CPU allowed and only one. */
int vm_host_cpu_reserve(const uint64_t *allowed, int avoid);
void vm_host_cpu_unreserve(int cpu);
int vm_host_cpu_load(int cpu); /* zygotes placed on `cpu` now */
/* Re-place a started zygote by the rule above and pin it: its CPU or -1. */
int vm_host_place(vm_host_zygote *z, const uint64_t *allowed, int avoid);
/* No pinning: off the count, free to run on every allowed CPU.  0 or -1. */
int vm_host_unpin(vm_host_zygote *z, const uint64_t *allowed);
/* Off the count, affinity kept (idle in a pool, released, forgotten). */
void vm_host_unplace(vm_host_zygote *z);
/* The caller runs on the zygote's CPU `current`: move the zygote to an
 * allowed CPU with fewer zygotes, if there is one (never stacks two).
 * 1 moved, 0 not, -1 error. */
int vm_host_move_off(vm_host_zygote *z, int current);

/* Zero [offset, offset + length) of the guest memory memfd, giving the
 * pages back (used for large spans when recycling). */
int vm_host_punch(vm_host_zygote *z, uint64_t offset, uint64_t length);

/* ---- the handshake, host side ---- */

/* Give the context to the sandbox: BUSY (seq_cst, pairs with the zygote's
 * sleeping flag), then futex_wake only if it said it sleeps. */
void vm_host_wake(vmctx *ctx);
static inline void vm_host_resume(vmctx *ctx)
{
    atomic_store_explicit(&ctx->futex, VMCTX_FUTEX_BUSY, memory_order_seq_cst);
    if (atomic_load_explicit(&ctx->sandbox_sleeping, memory_order_seq_cst))
        vm_host_wake(ctx);
}

/* The spin-wait hint: `pause` on x86-64, `yield` on aarch64. */
static inline void vm_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield" ::: "memory");
#else
    atomic_signal_fence(memory_order_seq_cst);
#endif
}

/* Spin (holding whatever lock the caller holds, e.g. the GIL) for up to
 * `iterations` pauses; returns the futex value (BUSY if still running). */
static inline uint32_t vm_host_spin(vmctx *ctx, uint32_t iterations)
{
    uint32_t v = atomic_load_explicit(&ctx->futex, memory_order_acquire);
    for (uint32_t i = 0; v == VMCTX_FUTEX_BUSY && i < iterations; i++) {
        vm_cpu_relax();
        v = atomic_load_explicit(&ctx->futex, memory_order_acquire);
    }
    return v;
}

/* Spin, then futex_wait with liveness checks, until the sandbox hands the
 * context back: 0 with *state set, or a VM_HOST_WAIT_* failure (the
 * sandbox is dead, or killed here because it would never answer).  While
 * vmctx.interrupt is set the sandbox is re-signalled every millisecond and
 * killed if it has not answered within VM_HOST_INTERRUPT_GRACE seconds.
 * Call without the GIL.  The caller counts the wait (z->wait_loop_start);
 * this counts the sleeps (z->futex_wait). */
#define VM_HOST_WAIT_DIED (-1)
#define VM_HOST_WAIT_UNRESPONSIVE (-2) /* ignored an interrupt past the grace: killed */
#define VM_HOST_WAIT_STOPPED (-3)      /* stopped (SIGSTOP) for ~0.3 s: killed */
/* Ctrl-C (vmcore/sigint.h): a SIGINT arrived while armed for this wait;
 * the sandbox still runs (the caller decides whether to stop it). */
#define VM_HOST_WAIT_SIGINT (-4)
/* Long enough for a runnable sandbox on a loaded machine to be scheduled
 * (50 ms killed healthy sandboxes at load 12 on 2 cores). */
#define VM_HOST_INTERRUPT_GRACE 0.5
int vm_host_wait(vm_host_zygote *z, uint32_t spin, uint32_t *state);

/* Relaxed accessors for Cython (the futex's acquire/release orders them). */
static inline uint64_t vm_host_get_reg(const vmctx *c, int i)
{
    return atomic_load_explicit(&((vmctx *)c)->regs[i], memory_order_relaxed);
}
/* Stores skip unchanged values: a store takes the line from the sandbox. */
static inline void vm_host_set_reg(vmctx *c, int i, uint64_t v)
{
    if (atomic_load_explicit(&c->regs[i], memory_order_relaxed) != v)
        atomic_store_explicit(&c->regs[i], v, memory_order_relaxed);
}
static inline int64_t vm_host_get_gas(const vmctx *c)
{
    return atomic_load_explicit(&((vmctx *)c)->gas, memory_order_relaxed);
}
static inline void vm_host_set_gas(vmctx *c, int64_t v)
{
    if (atomic_load_explicit(&c->gas, memory_order_relaxed) != v)
        atomic_store_explicit(&c->gas, v, memory_order_relaxed);
}
#define VM_HOST_LOAD(field) atomic_load_explicit(&((vmctx *)c)->field, memory_order_relaxed)
#define VM_HOST_STORE(field, v) atomic_store_explicit(&c->field, v, memory_order_relaxed)
static inline uint32_t vm_host_futex(const vmctx *c)
{
    return atomic_load_explicit(&((vmctx *)c)->futex, memory_order_acquire);
}
static inline uint32_t vm_host_exit_reason(const vmctx *c) { return VM_HOST_LOAD(arg2); }
static inline uint32_t vm_host_arg(const vmctx *c) { return VM_HOST_LOAD(arg); }
static inline uint32_t vm_host_pc(const vmctx *c) { return VM_HOST_LOAD(program_counter); }
static inline uint32_t vm_host_next_pc(const vmctx *c) { return VM_HOST_LOAD(next_program_counter); }
static inline uint32_t vm_host_resume_index(const vmctx *c) { return (uint32_t)VM_HOST_LOAD(jump_into); }
static inline void vm_host_set_resume_index(vmctx *c, uint32_t index)
{
    if (VM_HOST_LOAD(jump_into) != index)
        VM_HOST_STORE(jump_into, index);
}
static inline void vm_host_set_native_pc(vmctx *c, uint64_t address)
{
    if (VM_HOST_LOAD(next_native_program_counter) != address)
        VM_HOST_STORE(next_native_program_counter, address);
}
static inline void vm_host_set_enter(vmctx *c, uint32_t enter)
{
    if (VM_HOST_LOAD(enter) != enter)
        VM_HOST_STORE(enter, enter);
}
static inline void vm_host_set_pc(vmctx *c, uint32_t pc)
{
    if (VM_HOST_LOAD(program_counter) != pc)
        VM_HOST_STORE(program_counter, pc);
}
static inline uint32_t vm_host_interrupt(const vmctx *c) { return VM_HOST_LOAD(interrupt); }
static inline void vm_host_set_interrupt(vmctx *c, uint32_t v)
{
    if (VM_HOST_LOAD(interrupt) != v)
        VM_HOST_STORE(interrupt, v);
}
static inline uint32_t vm_host_isolation(const vmctx *c) { return VM_HOST_LOAD(isolation); }
/* The kernel marks the robust-futex word when the zygote dies (one load). */
static inline int vm_host_dead(const vmctx *c) { return (VM_HOST_LOAD(death_futex) & 0x40000000u) != 0; }
static inline uint32_t vm_host_spin_iterations(const vmctx *c) { return VM_HOST_LOAD(init.spin_iterations); }
static inline void vm_host_set_spin_iterations(vmctx *c, uint32_t n) { VM_HOST_STORE(init.spin_iterations, n); }
static inline uint64_t vm_host_counter_wait_loop_start(const vmctx *c)
{
    return VM_HOST_LOAD(counters.syscall_wait_loop_start);
}
static inline uint64_t vm_host_counter_futex_wait(const vmctx *c) { return VM_HOST_LOAD(counters.syscall_futex_wait); }
#undef VM_HOST_LOAD
#undef VM_HOST_STORE

/* The host changed the permissions of guest pages [first, end) (page
 * indices): native code needs the zygote to mirror them. */
static inline void vm_host_perms_changed(vmctx *c, uint32_t first, uint32_t end)
{
    if (first >= end)
        return;
    if (c->perms_dirty_first >= c->perms_dirty_end) {
        c->perms_dirty_first = first;
        c->perms_dirty_end = end;
        return;
    }
    if (first < c->perms_dirty_first)
        c->perms_dirty_first = first;
    if (end > c->perms_dirty_end)
        c->perms_dirty_end = end;
}

/* The sandbox state the interpreter API works on, to and from the VmCtx
 * (host side of the register/gas/heap synchronisation). */
void vm_host_state_load(const vmctx *c, vm_state *s);
void vm_host_state_store(vmctx *c, const vm_state *s);

#endif
