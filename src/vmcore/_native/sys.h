/* Raw Linux x86-64 system calls for the freestanding zygote (no libc).
 * Numbers and structures are the kernel's ABI, spelled out here because
 * the zygote may not include libc headers. */
#ifndef VMCORE_SYS_H
#define VMCORE_SYS_H

#include <stddef.h>
#include <stdint.h>

#if !defined(__x86_64__)
#error "the zygote is x86-64 only"
#endif

static inline long sys0(long n)
{
    long r;
    __asm__ volatile("syscall" : "=a"(r) : "a"(n) : "rcx", "r11", "memory");
    return r;
}
static inline long sys1(long n, long a)
{
    long r;
    __asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a) : "rcx", "r11", "memory");
    return r;
}
static inline long sys2(long n, long a, long b)
{
    long r;
    __asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b) : "rcx", "r11", "memory");
    return r;
}
static inline long sys3(long n, long a, long b, long c)
{
    long r;
    __asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
    return r;
}
static inline long sys4(long n, long a, long b, long c, long d)
{
    long r;
    register long r10 __asm__("r10") = d;
    __asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10) : "rcx", "r11", "memory");
    return r;
}
static inline long sys5(long n, long a, long b, long c, long d, long e)
{
    long r;
    register long r10 __asm__("r10") = d;
    register long r8 __asm__("r8") = e;
    __asm__ volatile("syscall"
                     : "=a"(r)
                     : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8)
                     : "rcx", "r11", "memory");
    return r;
}
static inline long sys6(long n, long a, long b, long c, long d, long e, long f)
{
    long r;
    register long r10 __asm__("r10") = d;
    register long r8 __asm__("r8") = e;
    register long r9 __asm__("r9") = f;
    __asm__ volatile("syscall"
                     : "=a"(r)
                     : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    return r;
}

/* System call numbers (x86-64). */
#define SYS_read 0
#define SYS_write 1
#define SYS_open 2
#define SYS_close 3
#define SYS_mmap 9
#define SYS_mprotect 10
#define SYS_munmap 11
#define SYS_rt_sigaction 13
#define SYS_rt_sigprocmask 14
#define SYS_rt_sigreturn 15
#define SYS_sigaltstack 131
#define SYS_sched_yield 24
#define SYS_getpid 39
#define SYS_recvmsg 47
#define SYS_exit 60
#define SYS_chdir 80
#define SYS_mkdir 83
#define SYS_rmdir 84
#define SYS_setrlimit 160
#define SYS_capget 125
#define SYS_capset 126
#define SYS_prctl 157
#define SYS_pivot_root 155
#define SYS_mount 165
#define SYS_umount2 166
#define SYS_sethostname 170
#define SYS_gettid 186
#define SYS_restart_syscall 219
#define SYS_futex 202
#define SYS_sched_setaffinity 203
#define SYS_exit_group 231
#define SYS_openat 257
#define SYS_ppoll 271
#define SYS_set_robust_list 273
#define SYS_seccomp 317

/* Constants. */
#define O_RDONLY 0
#define O_WRONLY 1
#define O_RDWR 2
#define O_CLOEXEC 02000000
#define AT_FDCWD (-100)
#define PROT_NONE 0
#define PROT_READ 1
#define PROT_WRITE 2
#define PROT_EXEC 4
#define MAP_SHARED 0x01
#define MAP_PRIVATE 0x02
#define MAP_FIXED 0x10
#define MAP_FIXED_NOREPLACE 0x100000
#define MAP_FAILED_MAX ((unsigned long)-4096)
#define FUTEX_WAIT 0
#define FUTEX_WAKE 1
#define FUTEX_PRIVATE_FLAG 128
#define FUTEX_WAITERS 0x80000000u
#define EINTR 4
#define EAGAIN 11
#define ETIMEDOUT 110
#define POLLIN 0x001
#define POLLERR 0x008
#define POLLHUP 0x010
#define MS_RDONLY 1
#define MS_NOSUID 2
#define MS_NODEV 4
#define MS_NOEXEC 8
#define MS_REC 16384
#define MS_PRIVATE (1 << 18)
#define MNT_DETACH 2
#define PR_SET_PDEATHSIG 1
#define PR_SET_DUMPABLE 4
#define PR_CAPBSET_DROP 24
#define PR_SET_NO_NEW_PRIVS 38
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#define RLIMIT_FSIZE 1
#define RLIMIT_CORE 4
#define RLIMIT_NPROC 6
#define RLIMIT_NOFILE 7
#define RLIMIT_MEMLOCK 8
#define RLIMIT_AS 9
#define RLIMIT_LOCKS 10
#define RLIMIT_MSGQUEUE 12
#define SIGKILL 9
#define SIGUSR1 10
#define SIGILL 4
#define SIGTRAP 5
#define SIGBUS 7
#define SIGFPE 8
#define SIGSEGV 11
#define SA_SIGINFO 4
#define SA_RESTORER 0x04000000
#define SA_ONSTACK 0x08000000
#define SIG_BLOCK 0
#define SIG_UNBLOCK 1
#define SIG_SETMASK 2
#define MSG_CMSG_CLOEXEC 0x40000000
#define SOL_SOCKET 1
#define SCM_RIGHTS 1
#define SECCOMP_SET_MODE_FILTER 1
#define SECCOMP_FILTER_FLAG_TSYNC 1
#define _LINUX_CAPABILITY_VERSION_3 0x20080522

struct k_timespec {
    long tv_sec;
    long tv_nsec;
};
struct k_rlimit {
    unsigned long cur, max;
};
struct k_pollfd {
    int fd;
    short events, revents;
};
struct k_iovec {
    void *base;
    size_t len;
};
struct k_msghdr {
    void *name;
    int namelen;
    struct k_iovec *iov;
    size_t iovlen;
    void *control;
    size_t controllen;
    unsigned flags;
};
struct k_cmsghdr {
    size_t len;
    int level;
    int type;
};
struct k_stack {
    void *sp;
    int flags;
    size_t size;
};
struct k_sigaction {
    void (*handler)(int, void *, void *);
    unsigned long flags;
    void (*restorer)(void);
    uint64_t mask;
};
struct k_cap_header {
    uint32_t version;
    int pid;
};
struct k_cap_data {
    uint32_t effective, permitted, inheritable;
};
struct k_robust_list {
    struct k_robust_list *next;
};
struct k_robust_list_head {
    struct k_robust_list list;
    long futex_offset;
    struct k_robust_list *list_op_pending;
};
struct k_sock_filter {
    uint16_t code;
    uint8_t jt, jf;
    uint32_t k;
};
struct k_sock_fprog {
    uint16_t len;
    struct k_sock_filter *filter;
};

#endif
