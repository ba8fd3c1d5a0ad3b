/* The host side of the process sandbox (see include/vmcore/host.h). */
#define _GNU_SOURCE
#include "vmcore/host.h"
#include "host_clock.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif
#ifndef SYS_close_range
#define SYS_close_range 436
#endif
#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif
#ifndef P_PIDFD
#define P_PIDFD 3
#endif
#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif
#ifndef MFD_EXEC
#define MFD_EXEC 0x0010u
#endif

#define WINDOW_BYTES (VM_GUEST_MEMORY_SIZE + VM_GUEST_MEMORY_SLACK)
#define MEMORY_FD_BYTES (WINDOW_BYTES + VM_GUEST_PERMS_SIZE)
#define SPAWN_STACK_SIZE (64 * 1024)

static void set_error(char *error, const char *what, int err)
{
    if (!error)
        return;
    if (err)
        snprintf(error, VM_HOST_ERROR_SIZE, "%s: %s", what, strerror(err));
    else
        snprintf(error, VM_HOST_ERROR_SIZE, "%s", what);
}

int vm_host_memfd(const char *name, uint64_t size, int exec)
{
    unsigned flags = MFD_CLOEXEC | MFD_ALLOW_SEALING;
    int fd = memfd_create(name, flags | (exec ? MFD_EXEC : 0));
    if (fd < 0 && exec && errno == EINVAL)
        fd = memfd_create(name, flags); /* kernels before MFD_EXEC */
    if (fd < 0)
        return -1;
    if (ftruncate(fd, (off_t)size) != 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

/* ---- the zygote image ---- */

int vm_host_image_create(const void *elf, size_t length, char *error)
{
    int fd = vm_host_memfd("vmcore-zygote", 0, 1);
    if (fd < 0) {
        set_error(error, "memfd_create for the zygote image", errno);
        return -1;
    }
    const char *p = elf;
    size_t left = length;
    while (left) {
        ssize_t n = write(fd, p, left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            set_error(error, "writing the zygote image", n < 0 ? errno : EIO);
            close(fd);
            return -1;
        }
        p += n;
        left -= (size_t)n;
    }
    /* Sealed: nobody (not even a process that gets hold of the descriptor)
     * can change what zygotes execute. */
    if (fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
        set_error(error, "sealing the zygote image", errno);
        close(fd);
        return -1;
    }
    return fd;
}

/* ---- shared modules ---- */

/* Seal a built module (the zygotes of many sandboxes share it, so none of
 * them may change it; module_memory.h) given what the build wrote, keep
 * [0, size) mapped read only here and check it as a zygote will.
 * Releases the memory on failure. */
static int publish_module(vm_host_module *m, uint64_t size, const vm_extent *written, int count, uint32_t kind,
                          char *error)
{
    const uint8_t *r = vm_module_memory_publish(&m->memory, size, written, count);
    if (!r) {
        set_error(error, "sealing a module", errno);
        return -1;
    }
    int bad = kind == VM_SHM_KIND_X64 ? vm_shm_x64_attach(&m->x64, &m->map, r, size)
                                      : vm_shm_module_attach(&m->module, r, size);
    if (bad) {
        set_error(error, "the built module does not validate", 0);
        vm_module_memory_release(&m->memory);
        return -1;
    }
    m->kind = kind;
    m->base = r;
    m->size = size;
    return 0;
}

static uint64_t page_round(uint64_t v) { return (v + VM_HOST_PAGE_SIZE - 1) & ~(uint64_t)(VM_HOST_PAGE_SIZE - 1); }

/* A builder's memfd: sized for the worst case (sparse: what is never
 * written costs nothing), mapped writable, its header page zeroed; NULL
 * with *error set on failure. */
static uint8_t *open_build(vm_host_module *m, int poolable, const char *name, uint64_t max_size, char *error)
{
    memset(m, 0, sizeof *m);
    m->memory.fd = -1;
    if (vm_module_memory_open(&m->memory, poolable, name, max_size) != 0) {
        set_error(error, "creating a memfd for a module", errno);
        return NULL;
    }
    memset(m->memory.map, 0, VM_SHM_MODULE_HEADER_SIZE);
    return m->memory.map;
}

/* The header fields both kinds share. */
static void header_common(vm_shm_module *h, uint32_t kind, int isa, int gas_metering, int step_tracing, int is_64_bit,
                          uint32_t code_len, uint32_t records, uint32_t jump_table_count, uint64_t size)
{
    h->magic = VM_SHM_MODULE_MAGIC;
    h->version = VM_SHM_MODULE_VERSION;
    h->kind = kind;
    h->isa = isa;
    h->gas_metering = gas_metering;
    h->step_tracing = step_tracing;
    h->is_64_bit = is_64_bit;
    h->code_len = code_len;
    h->insn_count = records;
    h->jump_table_count = jump_table_count;
    h->size = size;
}

int vm_host_module_build(vm_host_module *m, const vm_module_config *config, const uint8_t *code, uint32_t code_len,
                         const uint8_t *bitmask, const uint32_t *jump_table_targets, uint32_t jump_table_count,
                         char *error)
{
    size_t capacity;
    vm_module_sizes(code_len, jump_table_count, config, &capacity);
    uint64_t p2i = VM_SHM_MODULE_HEADER_SIZE;
    uint64_t jt = p2i + (((uint64_t)code_len + 1) * 4 + 7) / 8 * 8;
    uint64_t insns = jt + ((uint64_t)jump_table_count * 4 + 7) / 8 * 8;
    uint64_t max_size = insns + (uint64_t)capacity * sizeof(vm_insn);
    /* not pooled: threaded code is built once per program and small */
    uint8_t *w = open_build(m, 0, "vmcore-module", max_size, error);
    if (!w)
        return -1;
    vm_module built;
    vm_module_build(&built, config, code, code_len, bitmask, jump_table_targets, jump_table_count,
                    (vm_insn *)(w + insns), (uint32_t *)(w + p2i), (uint32_t *)(w + jt));
    uint64_t size = page_round(insns + ((uint64_t)built.insn_count + 1) * sizeof(vm_insn));
    vm_shm_module *h = (vm_shm_module *)w;
    header_common(h, VM_SHM_KIND_INTERP, config->isa, config->gas_metering, config->step_tracing, built.is_64_bit,
                  code_len, built.insn_count, jump_table_count, size);
    h->pc_to_index_offset = p2i;
    h->jump_table_offset = jt;
    h->insns_offset = insns;
    const vm_extent all = {0, size};
    return publish_module(m, size, &all, 1, VM_SHM_KIND_INTERP, error);
}


/* The recompiler writes straight into the memfd's pages (no copy), a
 * pooled memfd's when one fits (module_memory.h: its pages are in place
 * already).  A fresh page's first write costs a fault that allocates it
 * (about 1 ms per MB on the machines measured, as much as compiling), so
 * from VM_X64_PARALLEL_MIN bytes of guest code on, two threads compile a
 * half each and prefault their output in batches.  The memfd is sized for
 * the worst case; what the module does not use is cleared after. */
int vm_host_x64_build(vm_host_module *m, const vm_x64_config *config_in, const uint8_t *code, uint32_t code_len,
                      const uint8_t *bitmask, const uint32_t *jump_table_targets, uint32_t jump_table_count,
                      int *x64_error, char *error)
{
    *x64_error = 0;
    vm_x64_config config = *config_in;
    config.code_address = VM_ADDR_NATIVE_CODE;
    config.parallel = code_len >= VM_X64_PARALLEL_MIN;
    vm_x64_capacity cap;
    vm_x64_bounds(code, code_len, bitmask, &config, &cap);
    /* The module's layout in the memfd. */
    uint64_t map_off = VM_SHM_MODULE_HEADER_SIZE;
    uint64_t map_bytes = (uint64_t)cap.records * sizeof(uint32_t);
    uint64_t marks_off = page_round(map_off + map_bytes);
    uint64_t jt_off = page_round(marks_off + (uint64_t)cap.marks * sizeof(vm_x64_mark));
    uint64_t native_off = page_round(jt_off + (uint64_t)jump_table_count * 8u);
    uint64_t max_size = native_off + page_round(cap.code);
    uint8_t *w = open_build(m, 1, "vmcore-native", max_size, error);
    if (!w)
        return -1;
    config.populate = config.parallel && !m->memory.reused; /* a reused memfd's pages are in place */
    vm_shm_module *h = (vm_shm_module *)w;
    int rc = vm_x64_compile(&config, code, code_len, bitmask, jump_table_targets, jump_table_count, &cap,
                            w + native_off, (uint64_t *)(w + jt_off), (uint32_t *)(w + map_off),
                            (vm_x64_mark *)(w + marks_off), &h->x64);
    if (rc != VM_X64_OK) {
        *x64_error = rc;
        set_error(error, "the recompiler failed", 0);
        vm_module_memory_release(&m->memory);
        return -1;
    }
    uint64_t native_size = page_round(h->x64.code_size ? h->x64.code_size : 1);
    uint64_t size = native_off + native_size;
    header_common(h, VM_SHM_KIND_X64, config.isa, config.gas_metering, config.step_tracing, h->x64.is_64_bit, code_len,
                  h->x64.map_count, jump_table_count, size);
    h->jump_table_offset = jt_off;
    h->map_offset = map_off;
    h->marks_offset = marks_off;
    h->native_offset = native_off;
    h->native_size = native_size;
    /* What it wrote: header and records, marks, jump table, the code's
     * halves (not the gap between them, nor the tails of the worst-case
     * spaces: what was prefaulted there is given back). */
    const vm_x64_module *x = &h->x64;
    const vm_extent parts[] = {
        {0, map_off + (uint64_t)x->map_count * sizeof(uint32_t)},
        {marks_off, marks_off + (uint64_t)x->mark_count * sizeof(vm_x64_mark)},
        {jt_off, jt_off + (uint64_t)jump_table_count * 8u},
        {native_off, native_off + x->gap_start},
        {native_off + x->gap_end, native_off + x->code_size},
    };
    vm_extent written[5];
    int count = 0;
    for (int k = 0; k < 5; k++)
        if (parts[k].from < parts[k].to)
            written[count++] = parts[k];
    return publish_module(m, size, written, count, VM_SHM_KIND_X64, error);
}

void vm_host_module_free(vm_host_module *m)
{
    vm_module_memory_release(&m->memory);
    m->base = NULL;
}

/* ---- spawning ----
 *
 * Every zygote is cloned by one long-lived helper thread: the parent-death
 * signal fires when the *thread* that created a process exits, so zygotes
 * started directly from short-lived Python threads would die with them.
 * The helper lives as long as the process (and is re-created after fork). */

typedef struct spawn_request {
    /* in */
    int image_fd;
    int fds[4]; /* for VM_FD_VMCTX, VM_FD_GUEST_MEMORY, VM_FD_LIFETIME, VM_FD_SOCKET */
    int clone_flags;
    uint32_t uid, gid;
    /* written by the child (shared memory: CLONE_VM) */
    volatile int child_errno;
    volatile int child_step;
    volatile int close_range_ok;
    volatile int id_maps_ok;
    /* out */
    int pid;
    int pidfd;
    int clone_errno;
} spawn_request;

static char spawn_stack[SPAWN_STACK_SIZE] __attribute__((aligned(64)));

/* The vfork child runs on spawn_stack in the parent's address space until
 * the exec: keep sanitizers' bookkeeping out of it. */
#if defined(__SANITIZE_ADDRESS__)
#define CHILD_CODE __attribute__((no_sanitize_address, noinline))
#else
#define CHILD_CODE __attribute__((noinline))
#endif

CHILD_CODE static int child_write(const char *path, const char *text, size_t length)
{
    int fd = (int)syscall(SYS_openat, AT_FDCWD, path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    long n = syscall(SYS_write, fd, text, length);
    syscall(SYS_close, fd);
    return n == (long)length ? 0 : -1;
}

CHILD_CODE static size_t format_id_map(char *out, uint32_t outside)
{
    /* "0 <outside> 1\n" without stdio */
    char digits[12];
    int n = 0;
    size_t k = 0;
    do {
        digits[n++] = (char)('0' + outside % 10);
        outside /= 10;
    } while (outside);
    out[k++] = '0';
    out[k++] = ' ';
    while (n)
        out[k++] = digits[--n];
    out[k++] = ' ';
    out[k++] = '1';
    out[k++] = '\n';
    return k;
}

/* Runs in the vfork child (memory shared with the helper thread, which is
 * suspended until the exec): system calls only. */
CHILD_CODE static int spawn_child(void *arg)
{
    spawn_request *r = arg;
    if (r->clone_flags & CLONE_NEWUSER) {
        /* Map the host's uid/gid to root of the new user namespace before
         * the exec, so the zygote keeps its capabilities *inside* that
         * namespace (to mount its empty root) and then drops them. */
        char line[32];
        size_t n;
        child_write("/proc/self/setgroups", "deny", 4);
        n = format_id_map(line, r->uid);
        if (child_write("/proc/self/uid_map", line, n) == 0) {
            n = format_id_map(line, r->gid);
            if (child_write("/proc/self/gid_map", line, n) == 0)
                r->id_maps_ok = 1;
        }
    }
    static const int targets[4] = {VM_FD_VMCTX, VM_FD_GUEST_MEMORY, VM_FD_LIFETIME, VM_FD_SOCKET};
    int tmp[4], image;
    r->child_step = 1;
    /* Lift every source above the fixed numbers first so none is
     * overwritten before it is moved. */
    for (int i = 0; i < 4; i++) {
        tmp[i] = (int)syscall(SYS_fcntl, r->fds[i], F_DUPFD, 16);
        if (tmp[i] < 0)
            goto fail;
    }
    image = (int)syscall(SYS_fcntl, r->image_fd, F_DUPFD, 16);
    if (image < 0)
        goto fail;
    r->child_step = 2;
    for (int i = 0; i < 4; i++)
        if (syscall(SYS_dup3, tmp[i], targets[i], 0) < 0)
            goto fail;
    if (syscall(SYS_dup3, image, VM_FD_LAST + 1, O_CLOEXEC) < 0)
        goto fail;
    r->child_step = 3;
    /* Everything else goes: stdin/out/err and whatever the host had open. */
    if (syscall(SYS_close_range, 0, 2, 0) == 0 && syscall(SYS_close_range, VM_FD_LAST + 2, ~0u, 0) == 0) {
        r->close_range_ok = 1;
    } else {
        for (int fd = 0; fd < 3; fd++)
            syscall(SYS_close, fd);
        long max = sysconf(_SC_OPEN_MAX);
        if (max < 0 || max > 65536)
            max = 65536;
        for (long fd = VM_FD_LAST + 2; fd < max; fd++)
            syscall(SYS_close, fd);
    }
    r->child_step = 4;
    static char *const argv[] = {"vmcore-zygote", NULL};
    static char *const envp[] = {NULL};
    syscall(SYS_execveat, VM_FD_LAST + 1, "", argv, envp, AT_EMPTY_PATH);
fail:
    r->child_errno = errno ? errno : EIO;
    syscall(SYS_exit_group, 127);
    return 127;
}

static void spawn_now(spawn_request *r)
{
    r->child_errno = 0;
    r->child_step = 0;
    r->close_range_ok = 0;
    r->id_maps_ok = 0;
    r->pidfd = -1;
    int pidfd = -1;
    /* exit_signal 0: a "clone child", invisible to wait(-1)/os.wait() in
     * the host application, reaped through its pidfd with __WALL. */
    int pid = clone(spawn_child, spawn_stack + SPAWN_STACK_SIZE, r->clone_flags | CLONE_VM | CLONE_VFORK | CLONE_PIDFD,
                    r, &pidfd);
    r->clone_errno = pid < 0 ? errno : 0;
    r->pid = pid;
    r->pidfd = pidfd;
}

static pthread_mutex_t spawner_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t spawner_cond = PTHREAD_COND_INITIALIZER;
static spawn_request *spawner_request; /* pending request, NULL when idle */
static int spawner_running;
static int spawner_busy;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void *spawner_main(void *unused)
{
    (void)unused;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL); /* the vfork child must never run a handler */
    pthread_mutex_lock(&spawner_lock);
    for (;;) {
        while (!spawner_request)
            pthread_cond_wait(&spawner_cond, &spawner_lock);
        spawn_request *r = spawner_request;
        pthread_mutex_unlock(&spawner_lock);
        spawn_now(r);
        pthread_mutex_lock(&spawner_lock);
        spawner_request = NULL;
        pthread_cond_broadcast(&spawner_cond);
    }
    return NULL;
}

static void spawner_after_fork(void)
{
    /* The helper thread does not exist in a forked child. */
    pthread_mutex_init(&spawner_lock, NULL);
    pthread_cond_init(&spawner_cond, NULL);
    spawner_request = NULL;
    spawner_running = 0;
    spawner_busy = 0;
}

static void atfork_init(void) { pthread_atfork(NULL, NULL, spawner_after_fork); }

static int spawn_in_helper(spawn_request *r)
{
    pthread_once(&atfork_once, atfork_init);
    pthread_mutex_lock(&spawner_lock);
    if (!spawner_running) {
        pthread_attr_t attr;
        pthread_t thread;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&attr, 256 * 1024);
        int rc = pthread_create(&thread, &attr, spawner_main, NULL);
        pthread_attr_destroy(&attr);
        if (rc != 0) {
            pthread_mutex_unlock(&spawner_lock);
            /* no helper thread: spawn from this thread */
            spawn_now(r);
            return 0;
        }
        spawner_running = 1;
    }
    while (spawner_busy)
        pthread_cond_wait(&spawner_cond, &spawner_lock);
    spawner_busy = 1;
    spawner_request = r;
    pthread_cond_broadcast(&spawner_cond);
    while (spawner_request == r)
        pthread_cond_wait(&spawner_cond, &spawner_lock);
    spawner_busy = 0;
    pthread_cond_broadcast(&spawner_cond);
    pthread_mutex_unlock(&spawner_lock);
    return 0;
}

static void zygote_init(vm_host_zygote *z)
{
    memset(z, 0, sizeof *z);
    z->pid = -1;
    z->pidfd = z->ctx_fd = z->memory_fd = z->socket_fd = z->lifetime_fd = -1;
    z->cpu = -1;
    z->reaped = 1;
}

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

static void unmap_all(vm_host_zygote *z)
{
    if (z->ctx)
        munmap(z->ctx, VM_HOST_PAGE_SIZE);
    if (z->window)
        munmap(z->window, WINDOW_BYTES);
    if (z->perms)
        munmap(z->perms, VM_GUEST_PERMS_SIZE);
    z->ctx = NULL;
    z->window = NULL;
    z->perms = NULL;
    close_fd(&z->ctx_fd);
    close_fd(&z->memory_fd);
    close_fd(&z->socket_fd);
    close_fd(&z->lifetime_fd);
}

/* Kill and reap the process unless it is reaped (or forgotten), then drop
 * everything the zygote holds here. */
static void end_zygote(vm_host_zygote *z)
{
    if (z->pid > 0 && !z->reaped) {
        vm_host_signal(z, SIGKILL);
        vm_host_reap(z);
    }
    close_fd(&z->pidfd);
    unmap_all(z);
    z->pid = -1;
    vm_host_unplace(z);
}

static const uint32_t NS_BITS[][2] = {
    {CLONE_NEWUSER, VM_ISO_NS_USER}, {CLONE_NEWPID, VM_ISO_NS_PID}, {CLONE_NEWNS, VM_ISO_NS_MOUNT},
    {CLONE_NEWNET, VM_ISO_NS_NET},   {CLONE_NEWIPC, VM_ISO_NS_IPC}, {CLONE_NEWUTS, VM_ISO_NS_UTS},
    {CLONE_NEWCGROUP, VM_ISO_NS_CGROUP},
};

static uint32_t ns_bits(int flags)
{
    uint32_t bits = 0;
    for (size_t i = 0; i < sizeof NS_BITS / sizeof NS_BITS[0]; i++)
        if (flags & (int)NS_BITS[i][0])
            bits |= NS_BITS[i][1];
    return bits;
}

int vm_host_spawn(vm_host_zygote *z, const vm_host_spawn_options *o, char *error)
{
    zygote_init(z);
    z->cpu = o->cpu; /* the zygote owns o->cpu's reservation (host_cpu.c) */
    z->placed = o->cpu >= 0;
    int socks[2] = {-1, -1}, pipe_fds[2] = {-1, -1};
    z->ctx_fd = vm_host_memfd("vmcore-vmctx", VM_HOST_PAGE_SIZE, 0);
    if (z->ctx_fd < 0) {
        set_error(error, "memfd_create for the VmCtx", errno);
        goto fail;
    }
    z->memory_fd = vm_host_memfd("vmcore-guest-memory", MEMORY_FD_BYTES, 0);
    if (z->memory_fd < 0) {
        set_error(error, "memfd_create for guest memory", errno);
        goto fail;
    }
    /* The sandbox cannot resize them (seccomp forbids it anyway): a shrunk
     * memfd would make the host's accesses fault. */
    fcntl(z->ctx_fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
    fcntl(z->memory_fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
    z->ctx = mmap(NULL, VM_HOST_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, z->ctx_fd, 0);
    if (z->ctx == MAP_FAILED) {
        z->ctx = NULL;
        set_error(error, "mapping the VmCtx", errno);
        goto fail;
    }
    z->window = mmap(NULL, WINDOW_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, z->memory_fd, 0);
    if (z->window == MAP_FAILED) {
        z->window = NULL;
        set_error(error, "mapping guest memory", errno);
        goto fail;
    }
    z->perms = mmap(NULL, VM_GUEST_PERMS_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, z->memory_fd,
                    WINDOW_BYTES);
    if (z->perms == MAP_FAILED) {
        z->perms = NULL;
        set_error(error, "mapping the guest permission map", errno);
        goto fail;
    }
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, socks) != 0) {
        set_error(error, "socketpair", errno);
        goto fail;
    }
    if (pipe2(pipe_fds, O_CLOEXEC) != 0) {
        set_error(error, "pipe2", errno);
        goto fail;
    }
    z->socket_fd = socks[0];
    z->lifetime_fd = pipe_fds[1];

    vmctx *c = z->ctx;
    atomic_store(&c->futex, VMCTX_FUTEX_BUSY); /* the zygote owns it until it says it is ready */
    c->init.flags = o->flags;
    c->init.spin_iterations = o->spin_iterations;
    c->sandbox_cpu = o->cpu;
    c->host_uid = (uint32_t)geteuid();
    c->host_gid = (uint32_t)getegid();
    c->jump_into = VM_INDEX_NONE;
    c->page_size = VM_MIN_PAGE_SIZE;

    static const int attempts[] = {
        CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWCGROUP,
        CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS,
        CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS, /* no user namespaces, but root */
        CLONE_NEWUSER,
        0,
    };
    spawn_request r;
    memset(&r, 0, sizeof r);
    r.image_fd = o->image_fd;
    r.fds[0] = z->ctx_fd;
    r.fds[1] = z->memory_fd;
    r.fds[2] = pipe_fds[0];
    r.fds[3] = socks[1];
    r.uid = (uint32_t)geteuid();
    r.gid = (uint32_t)getegid();
    size_t first = o->namespaces ? 0 : sizeof attempts / sizeof attempts[0] - 1;
    for (size_t i = first; i < sizeof attempts / sizeof attempts[0]; i++) {
        r.clone_flags = attempts[i];
        atomic_store(&c->isolation, ns_bits(attempts[i]) | VM_ISO_SEALED_EXEC);
        spawn_in_helper(&r);
        if (r.pid >= 0 || (r.clone_errno != EPERM && r.clone_errno != EINVAL && r.clone_errno != ENOSPC &&
                           r.clone_errno != EUSERS && r.clone_errno != ENOSYS))
            break;
    }
    close_fd(&pipe_fds[0]);
    close_fd(&socks[1]);
    if (r.pid < 0) {
        set_error(error, "cannot start the sandbox process (clone)", r.clone_errno);
        goto fail;
    }
    z->pid = r.pid;
    z->pidfd = r.pidfd;
    z->reaped = 0;
    z->owner_pid = getpid();
    if (r.close_range_ok)
        atomic_fetch_or(&c->isolation, VM_ISO_CLOSE_RANGE);
    if (r.id_maps_ok)
        atomic_fetch_or(&c->isolation, VM_ISO_UID_MAP);
    if (r.child_errno) {
        vm_host_reap(z);
        snprintf(error, VM_HOST_ERROR_SIZE, "cannot start the sandbox process (step %d): %s", r.child_step,
                 strerror(r.child_errno));
        goto fail;
    }
    /* Wait for "ready" (IDLE) or death. */
    double deadline = vm_host_now_seconds() + (o->start_timeout > 0 ? o->start_timeout : 10.0);
    for (;;) {
        uint32_t v = atomic_load_explicit(&c->futex, memory_order_acquire);
        if (v != VMCTX_FUTEX_BUSY)
            break;
        struct timespec ts = {0, 1000000};
        syscall(SYS_futex, &c->futex, FUTEX_WAIT, VMCTX_FUTEX_BUSY, &ts, NULL, 0);
        if (!vm_host_alive(z)) {
            vm_host_reap(z);
            char how[96];
            vm_host_describe_exit(z, how, sizeof how);
            uint32_t n = c->message_length < VMCTX_MESSAGE_BUFFER_SIZE ? c->message_length : VMCTX_MESSAGE_BUFFER_SIZE;
            snprintf(error, VM_HOST_ERROR_SIZE, "the sandbox process died while starting (%s)%s%.*s", how,
                     n ? ": " : "", (int)n, c->message_buffer);
            goto fail;
        }
        if (vm_host_now_seconds() > deadline) {
            set_error(error, "the sandbox process did not become ready in time", 0);
            goto fail;
        }
    }
    z->isolation = atomic_load(&c->isolation); /* before any guest code: later values are the sandbox's word */
    return 0;
fail:
    close_fd(&pipe_fds[0]);
    close_fd(&socks[1]);
    end_zygote(z);
    return -1;
}

int vm_host_signal(vm_host_zygote *z, int sig)
{
    if (z->pidfd < 0 || z->reaped)
        return -1;
    return (int)syscall(SYS_pidfd_send_signal, z->pidfd, sig, NULL, 0);
}

int vm_host_alive(vm_host_zygote *z)
{
    if (z->pidfd < 0 || z->reaped)
        return 0;
    struct pollfd p = {z->pidfd, POLLIN, 0};
    int r = poll(&p, 1, 0);
    return !(r > 0 && (p.revents & (POLLIN | POLLHUP)));
}

int vm_host_reap(vm_host_zygote *z)
{
    if (z->reaped || z->pidfd < 0)
        return 0;
    siginfo_t info;
    memset(&info, 0, sizeof info);
    for (;;) {
        int r = waitid((idtype_t)P_PIDFD, (id_t)z->pidfd, &info, WEXITED | __WALL);
        if (r == 0)
            break;
        if (errno == EINTR)
            continue;
        /* ECHILD: somebody else reaped it (SIGCHLD ignored, ...) */
        z->reaped = 1;
        z->status_code = 0;
        z->status = -1;
        close_fd(&z->pidfd);
        return -1;
    }
    z->reaped = 1;
    z->status_code = info.si_code;
    z->status = info.si_status;
    close_fd(&z->pidfd);
    return 0;
}

void vm_host_describe_exit(vm_host_zygote *z, char *out, size_t size)
{
    if (!z->reaped) {
        snprintf(out, size, "still running");
    } else if (z->status_code == CLD_EXITED) {
        snprintf(out, size, "exited with status %d", z->status);
    } else if (z->status_code == CLD_KILLED || z->status_code == CLD_DUMPED) {
        const char *name = sigabbrev_np(z->status);
        snprintf(out, size, "killed by signal %d (SIG%s)%s", z->status, name ? name : "?",
                 z->status == SIGSYS ? ", a system call the seccomp filter forbids" : "");
    } else {
        snprintf(out, size, "ended, status unknown");
    }
}

void vm_host_release(vm_host_zygote *z)
{
    if (z->owner_pid && z->owner_pid != getpid()) {
        vm_host_forget(z);
        return;
    }
    end_zygote(z);
}

void vm_host_forget(vm_host_zygote *z)
{
    z->reaped = 1; /* another process's child: not ours to kill */
    end_zygote(z);
}

int vm_host_send_module(vm_host_zygote *z, const vm_host_module *m)
{
    uint64_t payload[2] = {m->size, z->module_generation + 1};
    struct iovec iov = {payload, sizeof payload};
    union {
        struct cmsghdr h;
        char space[CMSG_SPACE(sizeof(int))];
    } control;
    memset(&control, 0, sizeof control);
    struct msghdr msg;
    memset(&msg, 0, sizeof msg);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.space;
    msg.msg_controllen = sizeof control.space;
    struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &m->memory.fd, sizeof(int));
    ssize_t n;
    do
        n = sendmsg(z->socket_fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    if (n != (ssize_t)sizeof payload)
        return -1;
    z->module_generation++;
    atomic_store_explicit(&z->ctx->module_generation, z->module_generation, memory_order_relaxed);
    return 0;
}

int vm_host_punch(vm_host_zygote *z, uint64_t offset, uint64_t length)
{
    return fallocate(z->memory_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)offset, (off_t)length);
}
