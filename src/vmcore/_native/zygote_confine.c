/* The zygote's confinement, applied once at start-up: an empty root,
 * no capabilities, resource limits, the seccomp filter.  Freestanding
 * (raw system calls). */
#include "zygote_confine.h"

#include "sys.h"
#include "vmcore/vmctx.h"
#include "vmcore/shared_module.h"

void *memset(void *dst, int c, size_t n);

/* An empty, read-only tmpfs as the root; the old root is detached. */
int zy_empty_root(void)
{
    if (sys5(SYS_mount, 0, (long)"/", 0, MS_REC | MS_PRIVATE, 0) < 0)
        return -1; /* never mount anything that could propagate to the host */
    static const char *const where[] = {"/tmp", "/mnt", "/dev", "/proc", 0};
    int mounted = 0;
    for (int i = 0; where[i] && !mounted; i++) {
        if (sys5(SYS_mount, (long)"vmcore", (long)where[i], (long)"tmpfs",
                 MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, (long)"size=4k,mode=0555") == 0 &&
            sys1(SYS_chdir, (long)where[i]) == 0)
            mounted = 1;
    }
    if (!mounted)
        return -1;
    /* pivot_root(".", ".") stacks the old root on top of the new one;
     * detaching "." then leaves only the tmpfs. */
    if (sys2(SYS_pivot_root, (long)".", (long)".") < 0)
        return -1;
    if (sys2(SYS_umount2, (long)".", MNT_DETACH) < 0)
        return -1;
    return sys1(SYS_chdir, (long)"/") < 0 ? -1 : 0;
}

int zy_drop_capabilities(void)
{
    int ok = 1;
    if (sys5(SYS_prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0)
        ok = 0;
    for (long cap = 0; cap < 64; cap++)
        if (sys5(SYS_prctl, PR_CAPBSET_DROP, cap, 0, 0, 0) < 0)
            break; /* EINVAL past the last capability the kernel knows */
    struct k_cap_header h = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct k_cap_data d[2];
    memset(d, 0, sizeof d);
    if (sys2(SYS_capset, (long)&h, (long)d) < 0)
        ok = 0;
    h.pid = 0;
    d[0].effective = d[0].permitted = d[0].inheritable = 0xffffffffu;
    if (sys2(SYS_capget, (long)&h, (long)d) < 0)
        return 0;
    for (int i = 0; i < 2; i++)
        if (d[i].effective || d[i].permitted || d[i].inheritable)
            return 0;
    return ok;
}

static int set_limit(int resource, unsigned long value)
{
    struct k_rlimit r = {value, value};
    return sys2(SYS_setrlimit, resource, (long)&r) == 0;
}

/* The largest module memfd the host can build (vm_module_sizes' bound at
 * VM_MAXIMUM_CODE_SIZE with gas metering and step tracing). */
#define MODULE_SIZE_MAX                                                                        \
    ((uint64_t)VM_SHM_MODULE_HEADER_SIZE + ((uint64_t)VM_MAXIMUM_CODE_SIZE + 1) * 4 +           \
     (uint64_t)VM_MAXIMUM_JUMP_TABLE_ENTRIES * 4 + (((uint64_t)VM_MAXIMUM_CODE_SIZE + 1) * 6 + 3) * 24 + \
     (1ull << 20))

uint32_t zy_apply_rlimits(void)
{
    uint32_t bits = 0;
    int ok = set_limit(RLIMIT_NPROC, 0) /* no new processes (clone is not allowed either) */
             & set_limit(RLIMIT_NOFILE, VM_FD_LAST + 1) /* its own descriptors, and one received */
             & set_limit(RLIMIT_CORE, 0) & set_limit(RLIMIT_FSIZE, 0) & set_limit(RLIMIT_MEMLOCK, 0) &
             set_limit(RLIMIT_LOCKS, 0) & set_limit(RLIMIT_MSGQUEUE, 0);
    if (ok)
        bits |= VM_ISO_RLIMITS;
    /* The fixed mappings: guest window + slack, permissions, the largest
     * module (native code maps parts of its module twice), the VmCtx and
     * its alias; 256 MiB for the executable, stack and vDSO. */
    uint64_t as = VM_GUEST_MEMORY_SIZE + VM_GUEST_MEMORY_SLACK + VM_GUEST_PERMS_SIZE + 2 * MODULE_SIZE_MAX +
                  2ull * VM_HOST_PAGE_SIZE + (256ull << 20);
    if (set_limit(RLIMIT_AS, as))
        bits |= VM_ISO_RLIMIT_AS;
    return bits;
}

/* seccomp-BPF (classic BPF over struct seccomp_data: nr at 0, arch at 4,
 * instruction pointer at 8, args[i] at 16 + 8 i, little endian). */
#define BPF_LD_W_ABS 0x20
#define BPF_JEQ_K 0x15
#define BPF_JGE_K 0x35
#define BPF_JSET_K 0x45
#define BPF_RET_K 0x06
#define BPF_ALU_AND_K 0x54
#define SECCOMP_RET_KILL_PROCESS 0x80000000u
#define SECCOMP_RET_ALLOW 0x7fff0000u
#define AUDIT_ARCH_X86_64 0xc000003eu
#define X32_SYSCALL_BIT 0x40000000u
#define ARG_LO(i) (16 + 8 * (i))
#define ARG_HI(i) (20 + 8 * (i))

#define STMT(code, k) ((struct k_sock_filter){(uint16_t)(code), 0, 0, (uint32_t)(k)})
#define JUMP(code, k, jt, jf) ((struct k_sock_filter){(uint16_t)(code), (uint8_t)(jt), (uint8_t)(jf), (uint32_t)(k)})

typedef struct filter {
    struct k_sock_filter insns[192];
    int n;
} filter;

static void emit(filter *f, struct k_sock_filter insn) { f->insns[f->n++] = insn; }

/* Allow syscall `nr` when every (offset, value) check holds; a mismatch
 * kills.  Layout: ld nr; jeq nr ? next : past the block; per check
 * "ld half; jeq value ? skip the kill : kill"; allow. */
static void allow_if(filter *f, long nr, int checks, const uint32_t (*check)[2])
{
    emit(f, STMT(BPF_LD_W_ABS, 0));
    emit(f, JUMP(BPF_JEQ_K, nr, 0, checks * 3 + 1));
    for (int i = 0; i < checks; i++) {
        emit(f, STMT(BPF_LD_W_ABS, check[i][0]));
        emit(f, JUMP(BPF_JEQ_K, check[i][1], 1, 0));
        emit(f, STMT(BPF_RET_K, SECCOMP_RET_KILL_PROCESS));
    }
    emit(f, STMT(BPF_RET_K, SECCOMP_RET_ALLOW));
}

/* Allow syscall `nr` when every (offset, value) check holds; a mismatch
 * falls through to the next rule (several allowed forms of one call).
 * Layout: ld nr; jeq nr ? next : past the block; per check "ld half; jeq
 * value ? next : past the block"; allow. */
static void allow_if_any(filter *f, long nr, int checks, const uint32_t (*check)[2])
{
    int block = checks * 2 + 1; /* instructions after the nr test */
    emit(f, STMT(BPF_LD_W_ABS, 0));
    emit(f, JUMP(BPF_JEQ_K, nr, 0, block));
    for (int i = 0; i < checks; i++) {
        emit(f, STMT(BPF_LD_W_ABS, check[i][0]));
        emit(f, JUMP(BPF_JEQ_K, check[i][1], 0, (checks - i - 1) * 2 + 1));
    }
    emit(f, STMT(BPF_RET_K, SECCOMP_RET_ALLOW));
}

int zy_install_seccomp(void)
{
    filter f;
    f.n = 0;
    /* The architecture must be x86-64 (no i386 int 0x80 numbering) and the
     * number must not carry the x32 bit. */
    emit(&f, STMT(BPF_LD_W_ABS, 4));
    emit(&f, JUMP(BPF_JEQ_K, AUDIT_ARCH_X86_64, 1, 0));
    emit(&f, STMT(BPF_RET_K, SECCOMP_RET_KILL_PROCESS));
    emit(&f, STMT(BPF_LD_W_ABS, 0));
    emit(&f, JUMP(BPF_JGE_K, X32_SYSCALL_BIT, 0, 1));
    emit(&f, STMT(BPF_RET_K, SECCOMP_RET_KILL_PROCESS));

    /* futex: the handshake (wait for the host, wake the host).  Only on
     * the VmCtx's futex word, only FUTEX_WAIT or FUTEX_WAKE (shared: the
     * word lives in a memfd both processes map). */
    const uint64_t futex_addr = VM_ADDR_VMCTX + VMCTX_OFFSET_FUTEX;
    emit(&f, STMT(BPF_LD_W_ABS, 0));
    emit(&f, JUMP(BPF_JEQ_K, SYS_futex, 0, 11));
    emit(&f, STMT(BPF_LD_W_ABS, ARG_LO(0)));
    emit(&f, JUMP(BPF_JEQ_K, (uint32_t)futex_addr, 1, 0));
    emit(&f, STMT(BPF_RET_K, SECCOMP_RET_KILL_PROCESS));
    emit(&f, STMT(BPF_LD_W_ABS, ARG_HI(0)));
    emit(&f, JUMP(BPF_JEQ_K, (uint32_t)(futex_addr >> 32), 1, 0));
    emit(&f, STMT(BPF_RET_K, SECCOMP_RET_KILL_PROCESS));
    emit(&f, STMT(BPF_LD_W_ABS, ARG_LO(1)));
    emit(&f, JUMP(BPF_JEQ_K, FUTEX_WAIT, 2, 0));
    emit(&f, JUMP(BPF_JEQ_K, FUTEX_WAKE, 1, 0));
    emit(&f, STMT(BPF_RET_K, SECCOMP_RET_KILL_PROCESS));
    emit(&f, STMT(BPF_RET_K, SECCOMP_RET_ALLOW));

    /* recvmsg: receive a module memfd from the host, only on the socket. */
    const uint32_t recv[][2] = {{ARG_LO(0), VM_FD_SOCKET}, {ARG_HI(0), 0}};
    allow_if(&f, SYS_recvmsg, 2, recv);
    /* mmap: map a received module from the received descriptor's number,
     * shared, at its fixed addresses only: the whole module read only;
     * for native code also its jump table (read only) and its code (read +
     * execute: the only executable mapping the process ever makes). */
    const uint64_t where[3] = {VM_ADDR_INTERP_MODULE, VM_ADDR_JUMP_TABLE, VM_ADDR_NATIVE_CODE};
    const uint32_t prot[3] = {PROT_READ, PROT_READ, PROT_READ | PROT_EXEC};
    for (int i = 0; i < 3; i++) {
        const uint32_t map[][2] = {{ARG_LO(0), (uint32_t)where[i]}, {ARG_HI(0), (uint32_t)(where[i] >> 32)},
                                   {ARG_LO(2), prot[i]},            {ARG_HI(2), 0},
                                   {ARG_LO(3), MAP_SHARED | MAP_FIXED}, {ARG_HI(3), 0},
                                   {ARG_LO(4), VM_FD_RECEIVED},     {ARG_HI(4), 0}};
        allow_if_any(&f, SYS_mmap, 8, map);
    }
    /* munmap: drop the previous module's mappings, nothing else. */
    for (int i = 0; i < 3; i++) {
        const uint32_t unmap[][2] = {{ARG_LO(0), (uint32_t)where[i]}, {ARG_HI(0), (uint32_t)(where[i] >> 32)}};
        allow_if_any(&f, SYS_munmap, 2, unmap);
    }
    /* mprotect: mirror guest page permissions for native code -- inside
     * the guest window only (its addresses all share the upper word), never
     * executable (PROT_NONE, PROT_READ or PROT_READ | PROT_WRITE). */
    emit(&f, STMT(BPF_LD_W_ABS, 0));
    emit(&f, JUMP(BPF_JEQ_K, SYS_mprotect, 0, 10));
    emit(&f, STMT(BPF_LD_W_ABS, ARG_HI(0)));
    emit(&f, JUMP(BPF_JEQ_K, (uint32_t)(VM_ADDR_GUEST_MEMORY >> 32), 1, 0));
    emit(&f, STMT(BPF_RET_K, SECCOMP_RET_KILL_PROCESS));
    emit(&f, STMT(BPF_LD_W_ABS, ARG_HI(2)));
    emit(&f, JUMP(BPF_JEQ_K, 0, 1, 0));
    emit(&f, STMT(BPF_RET_K, SECCOMP_RET_KILL_PROCESS));
    emit(&f, STMT(BPF_LD_W_ABS, ARG_LO(2)));
    emit(&f, JUMP(BPF_JGE_K, (PROT_READ | PROT_WRITE) + 1, 0, 1));
    emit(&f, STMT(BPF_RET_K, SECCOMP_RET_KILL_PROCESS));
    emit(&f, STMT(BPF_RET_K, SECCOMP_RET_ALLOW));
    /* close: the received module descriptor once it is mapped. */
    const uint32_t close_[][2] = {{ARG_LO(0), VM_FD_RECEIVED}, {ARG_HI(0), 0}};
    allow_if(&f, SYS_close, 2, close_);
    /* ppoll: the lifetime pipe check while idle (ppoll can only report on
     * descriptors the process holds, all of which are ours). */
    allow_if(&f, SYS_ppoll, 0, 0);
    /* rt_sigreturn: returning from the SIGUSR1 interrupt handler. */
    allow_if(&f, SYS_rt_sigreturn, 0, 0);
    /* restart_syscall: the kernel's own continuation of an allowed futex
     * wait interrupted by a stop/continue (it only resumes that call). */
    allow_if(&f, SYS_restart_syscall, 0, 0);
    /* exit_group / exit: fatal errors, and the fault handler. */
    allow_if(&f, SYS_exit_group, 0, 0);
    allow_if(&f, SYS_exit, 0, 0);
    emit(&f, STMT(BPF_RET_K, SECCOMP_RET_KILL_PROCESS));

    struct k_sock_fprog prog = {(uint16_t)f.n, f.insns};
    return sys3(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, (long)&prog) == 0;
}
