/* The zygote: the sandbox process of isolation="process".
 *
 * A freestanding static executable (no libc; raw system calls from sys.h)
 * that embeds the same interpreter core as the inline backend (interp.c,
 * decoder.c).  The host starts it from a sealed memfd with four descriptors
 * at fixed numbers (vmctx.h: VM_FD_*) and everything else closed, inside
 * new namespaces (clone flags).  Here it:
 *
 *   1. maps the VmCtx page and the guest memory (4 GiB window + permission
 *      map) from the host's memfds at fixed addresses;
 *   2. registers a robust futex in the VmCtx so the kernel wakes the host
 *      the instant this process dies, however it dies;
 *   3. confines itself (its uid/gid maps were written before the exec, so
 *      it starts as root of its own user namespace): an empty read-only
 *      tmpfs root (pivot_root), no capabilities, no_new_privs, rlimits,
 *      parent-death signal plus a lifetime pipe check, CPU pinning, then a
 *      seccomp allow-list that kills the process on anything else;
 *   4. serves runs: wait for BUSY (spin, then futex_wait), take the module
 *      the host compiled (a sealed memfd passed over VM_FD_SOCKET, mapped
 *      read only), copy registers/gas/heap in from the VmCtx, vm_run(), copy
 *      them out, publish the stop reason in the futex word.
 *
 * Nothing guest code does can reach any of this: the guest only ever runs
 * inside vm_run(), whose memory accesses are confined to the guest window.
 */
#include <stdatomic.h>

#include "sys.h"
#include "vmcore/compiler.h"
#include "vmcore/interp.h"
#include "vmcore/vmctx.h"
#include "vmcore/shared_module.h"

/* memcpy, memmove, memset, memcmp: zygote_libc.c; the hostile test build
 * (VMCORE_HOSTILE_ZYGOTE): zygote_hostile.c. */
#include "zygote_confine.h"
#include "zygote_hostile.h"

void *memcpy(void *dst, const void *src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);

/* The entry point: the kernel's initial stack holds argc/argv/envp, which
 * the zygote does not need. */
__asm__(".text\n"
        ".global _start\n"
        "_start:\n"
        "    xor %ebp, %ebp\n"
        "    and $-16, %rsp\n"
        "    call zygote_main\n"
        "    hlt\n");

/* Signal return trampoline (SA_RESTORER). */
void vm_zygote_restorer(void);
__asm__(".text\n"
        ".global vm_zygote_restorer\n"
        "vm_zygote_restorer:\n"
        "    mov $15, %eax\n"
        "    syscall\n"
        "    hlt\n");

#define CTX ((vmctx *)VM_ADDR_VMCTX)
#define RELAXED memory_order_relaxed

static vm_module module;
static vm_state state;
static vm_memory memory;
static uint64_t module_generation;
static uint64_t module_size;
static uint32_t init_flags;
static struct k_robust_list death_entry;
static struct k_robust_list_head death_head;

/* Native code (compiler.h's contract): the module when the loaded one is
 * VM_SHM_KIND_X64, and what its signal handlers need to know. */
static const vm_x64_module *x64;
static vm_x64_map x64_map;
static uint64_t x64_code_mapped, x64_table_mapped;
static volatile int serving;          /* holds the context (BUSY): answers go through the VmCtx */
static volatile int x64_running;      /* between entering generated code and its exit */
static volatile int x64_interrupt;    /* the host asked to stop */
static volatile int x64_bias_applied; /* VM_X64_INTERRUPT_GAS_BIAS taken from vmctx.gas */
/* Where the guest resumes is this process's own record, never a value
 * from the VmCtx: the host only asks "enter at program_counter" (native:
 * vmctx.enter 1; interpreter: jump_into VM_INDEX_NONE),
 * which is looked up in the module mapped here, or "resume", which
 * continues where the last exit of this module left off. */
static uint64_t resume_native; /* native: absolute address */
static int resumable;          /* the last exit of the loaded module can be resumed */
/* Page shift the guest window's protections mirror the permission map at
 * (0: they do not; the window is read + write, as the interpreter wants). */
static uint32_t protections_shift;
static uint8_t signal_stack[1u << 16] __attribute__((aligned(16)));

/* ---- messages (into the VmCtx; the host puts them in SandboxError) ---- */

static size_t str_len(const char *s)
{
    size_t n = 0;
    while (s[n])
        n++;
    return n;
}

static void message_append(const char *s)
{
    uint32_t at = CTX->message_length;
    if (at >= VMCTX_MESSAGE_BUFFER_SIZE)
        return;
    size_t n = str_len(s);
    if (n > VMCTX_MESSAGE_BUFFER_SIZE - at)
        n = VMCTX_MESSAGE_BUFFER_SIZE - at;
    memcpy(CTX->message_buffer + at, s, n);
    CTX->message_length = at + (uint32_t)n;
}

static void message_number(const char *prefix, long value)
{
    char buf[24];
    int i = (int)sizeof buf - 1;
    unsigned long v = value < 0 ? (unsigned long)-value : (unsigned long)value;
    buf[i] = 0;
    do {
        buf[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v && i > 1);
    if (value < 0)
        buf[--i] = '-';
    message_append(prefix);
    message_append(buf + i);
}

static void message_hex(const char *prefix, uint64_t value)
{
    char buf[20];
    int i = (int)sizeof buf - 1;
    buf[i] = 0;
    do {
        buf[--i] = "0123456789abcdef"[value & 15];
        value >>= 4;
    } while (value && i > 2);
    buf[--i] = 'x';
    buf[--i] = '0';
    message_append(prefix);
    message_append(buf + i);
}

/* A fatal internal error: say why and die (the host sees the death through
 * the robust futex and reports the message). */
__attribute__((noreturn)) static void fatal(const char *what, long err)
{
    CTX->message_length = 0;
    message_append(what);
    if (err)
        message_number(" (errno ", -err), message_append(")");
    sys1(SYS_exit_group, 111);
    __builtin_unreachable();
}

/* Before the VmCtx is mapped there is nowhere to write: exit codes only. */
__attribute__((noreturn)) static void early_exit(int code)
{
    sys1(SYS_exit_group, code);
    __builtin_unreachable();
}

/* ---- the handshake ---- */

static inline void cpu_relax(void) { __builtin_ia32_pause(); }

static void futex_wake(_Atomic uint32_t *word) { sys3(SYS_futex, (long)word, FUTEX_WAKE, 1); }

static void publish(uint32_t value)
{
    atomic_store_explicit(&CTX->futex, value, memory_order_seq_cst);
    if (atomic_load_explicit(&CTX->host_sleeping, memory_order_seq_cst))
        futex_wake(&CTX->futex);
}

/* The host holds the only write end of the lifetime pipe: when it is gone
 * the read end reports a hang-up.  Returns 0 if the check works. */
static int lifetime_check(void)
{
    struct k_pollfd p = {VM_FD_LIFETIME, POLLIN, 0};
    struct k_timespec zero = {0, 0};
    long r = sys4(SYS_ppoll, (long)&p, 1, (long)&zero, 0);
    if (r > 0 && (p.revents & (POLLHUP | POLLERR)))
        early_exit(112); /* the host is gone */
    return r < 0 || (p.revents & 0x20 /* POLLNVAL */) ? -1 : 0;
}

/* Hand the context back and count the wait that follows.  Counted before
 * the release so a host that sees the answer also sees the count. */
static void answer(uint32_t value)
{
    vmctx_counters *c = &CTX->counters;
    ZY_HOSTILE_SCRIBBLE(CTX, &value);
    atomic_store_explicit(&c->syscall_wait_loop_start,
                          atomic_load_explicit(&c->syscall_wait_loop_start, RELAXED) + 1, RELAXED);
    publish(value);
}

/* Wait until the host hands over the context (BUSY) or asks to abandon
 * (LONGJUMP).  Spin first: the host usually answers faster than a sleep. */
__attribute__((noinline)) /* its own symbol: profiles tell waiting from working */
static uint32_t wait_for_host(void)
{
    vmctx_counters *c = &CTX->counters;
    uint32_t spin = atomic_load_explicit(&CTX->init.spin_iterations, RELAXED);
    uint32_t v;
    for (uint32_t i = 0; i < spin; i++) {
        v = atomic_load_explicit(&CTX->futex, memory_order_acquire);
        if (!(v & VMCTX_FUTEX_IDLE) || v == VMCTX_FUTEX_LONGJUMP)
            return v;
        cpu_relax();
    }
    for (;;) {
        atomic_store_explicit(&CTX->sandbox_sleeping, 1, memory_order_seq_cst);
        v = atomic_load_explicit(&CTX->futex, memory_order_seq_cst);
        if (!(v & VMCTX_FUTEX_IDLE) || v == VMCTX_FUTEX_LONGJUMP)
            break;
        atomic_store_explicit(&c->syscall_futex_wait, atomic_load_explicit(&c->syscall_futex_wait, RELAXED) + 1,
                              RELAXED);
        struct k_timespec timeout = {1, 0};
        long r = sys4(SYS_futex, (long)&CTX->futex, FUTEX_WAIT, v, (long)&timeout);
        if (r == -ETIMEDOUT)
            lifetime_check();
    }
    atomic_store_explicit(&CTX->sandbox_sleeping, 0, RELAXED);
    return v;
}

/* ---- signals ---- */

/* The interrupted context (ucontext_t on x86-64: gregs at offset 40, in
 * the kernel's order). */
#define UC_GREGS 40
enum { G_R8, G_R9, G_R10, G_R11, G_R12, G_R13, G_R14, G_R15, G_RDI, G_RSI, G_RBP, G_RBX, G_RDX, G_RAX, G_RCX,
       G_RSP, G_RIP };
static const uint8_t greg_of_hw[16] = {G_RAX, G_RCX, G_RDX, G_RBX, G_RSP, G_RBP, G_RSI, G_RDI,
                                       G_R8,  G_R9,  G_R10, G_R11, G_R12, G_R13, G_R14, G_R15};

static inline uint64_t *gregs_of(void *uctx) { return (uint64_t *)(void *)((char *)uctx + UC_GREGS); }

static inline int in_native_code(uint64_t rip)
{
    return x64 && rip >= VM_ADDR_NATIVE_CODE && rip < VM_ADDR_NATIVE_CODE + x64->code_size;
}

/* Stop native code at its next block start: one read-modify-write of the
 * gas word, only between guest instructions (compiler.h, Deadlines). */
static inline void apply_interrupt_bias(void)
{
    if (x64_interrupt && !x64_bias_applied) {
        atomic_fetch_sub_explicit(&CTX->gas, VM_X64_INTERRUPT_GAS_BIAS, RELAXED);
        x64_bias_applied = 1;
    }
}

static void on_interrupt(int sig, void *info, void *uctx)
{
    (void)sig, (void)info;
    state.interrupt = (int)atomic_load_explicit(&CTX->interrupt, RELAXED);
    x64_interrupt = state.interrupt;
    /* In a helper or in the zygote the bias waits for the helper's end (the
     * host signals again if it has to). */
    if (x64_running && in_native_code(gregs_of(uctx)[G_RIP]))
        apply_interrupt_bias();
}

uint32_t zy_enter(uint64_t target);
void zy_exit_0(void);
void zy_exit_1(void);
void zy_exit_2(void);
void zy_exit_3(void);
void zy_exit_4(void);
void zy_exit_5(void);

/* Into generated code and back: zy_enter keeps the callee-saved registers
 * and the stack pointer and jumps; each exit stub (VMCTX_STUB_FINISHED ..
 * STEP) restores them and returns its index. */
__asm__(".text\n"
        ".globl zy_enter\n"
        "zy_enter:\n"
        "  push %rbx\n  push %rbp\n  push %r12\n  push %r13\n  push %r14\n  push %r15\n"
        "  mov %rsp, zy_saved_rsp(%rip)\n"
        "  jmp *%rdi\n"
        "zy_exit_common:\n"
        "  mov zy_saved_rsp(%rip), %rsp\n"
        "  pop %r15\n  pop %r14\n  pop %r13\n  pop %r12\n  pop %rbp\n  pop %rbx\n"
        "  ret\n"
        ".globl zy_exit_0\nzy_exit_0: mov $0, %eax\n jmp zy_exit_common\n"
        ".globl zy_exit_1\nzy_exit_1: mov $1, %eax\n jmp zy_exit_common\n"
        ".globl zy_exit_2\nzy_exit_2: mov $2, %eax\n jmp zy_exit_common\n"
        ".globl zy_exit_3\nzy_exit_3: mov $3, %eax\n jmp zy_exit_common\n"
        ".globl zy_exit_4\nzy_exit_4: mov $4, %eax\n jmp zy_exit_common\n"
        ".globl zy_exit_5\nzy_exit_5: mov $5, %eax\n jmp zy_exit_common\n"
        ".data\n.balign 8\nzy_saved_rsp: .quad 0\n.text\n");

static void (*const exit_stub[6])(void) = {zy_exit_0, zy_exit_1, zy_exit_2, zy_exit_3, zy_exit_4, zy_exit_5};
_Static_assert(VMCTX_STUB_FINISHED == 0 && VMCTX_STUB_STEP == 5, "exit stubs are numbered 0..5");

/* The guard page and the slack after the window (compiler.h): PROT_NONE
 * while native code runs, opened only around what the sandbox itself does
 * there for the guest. */
static void guard(int prot)
{
    long r = sys3(SYS_mprotect, (long)(VM_ADDR_GUEST_MEMORY + VM_X64_GUARD_PAGE), (long)VM_X64_GUARD_BYTES, prot);
    if (r < 0)
        fatal("cannot protect the guard page", r);
}

/* An allowed access to the guard page or one that wraps past the window,
 * done here; 0: not an access. */
static int emulate_access(uint64_t *g, uint64_t *hw, uint64_t rip, uint32_t address)
{
    guard(PROT_READ | PROT_WRITE);
    uint32_t n = vm_x64_emulate_access((const uint8_t *)(uintptr_t)rip, hw, memory.base + address);
    guard(PROT_NONE);
    if (!n)
        return 0;
    for (int i = 0; i < 16; i++)
        g[greg_of_hw[i]] = hw[i];
    g[G_RIP] = rip + n;
    return 1;
}

static void on_fault(int sig, void *info, void *uctx)
{
    uint64_t *g = gregs_of(uctx);
    uint64_t rip = g[G_RIP];
    /* siginfo_t: si_signo, si_errno, si_code; si_code > 0 means the kernel
     * raised it for this instruction (a kill() from outside is <= 0). */
    int code = *(int *)((char *)info + 8);
    if (sig == SIGSEGV && code > 0 && x64_running && in_native_code(rip)) {
        /* A guest access to a protected page (or past the jump table):
         * decide what the interpreter would have done. */
        vm_x64_fault f;
        uint64_t hw[16];
        for (int i = 0; i < 16; i++)
            hw[i] = g[greg_of_hw[i]];
        vm_x64_resolve_fault(x64, &x64_map, &memory, rip - VM_ADDR_NATIVE_CODE, hw,
                             atomic_load_explicit(&CTX->program_counter, RELAXED), &f);
        if (f.stub == VM_X64_FAULT_EMULATE && emulate_access(g, hw, rip, f.arg))
            return;
        if (f.stub >= 0 && f.stub <= VMCTX_STUB_STEP) {
            for (int i = 0; i < VM_REG_COUNT; i++)
                atomic_store_explicit(&CTX->regs[i], vm_x64_guest_reg(x64, g[greg_of_hw[vm_x64_guest_regs[i]]]),
                                      RELAXED);
            atomic_store_explicit(&CTX->program_counter, f.pc, RELAXED);
            atomic_store_explicit(&CTX->arg, f.arg, RELAXED);
            atomic_store_explicit(&CTX->next_native_program_counter, VM_ADDR_NATIVE_CODE + f.resume, RELAXED);
            g[G_RIP] = (uint64_t)(uintptr_t)exit_stub[f.stub];
            return;
        }
    }
    /* si_addr at offset 16 */
    uint64_t addr = *(uint64_t *)((char *)info + 16);
    CTX->message_length = 0;
    message_number("the sandbox process got signal ", sig);
    message_hex(" at address ", addr);
    if (in_native_code(rip))
        message_hex(" in native code at offset ", rip - VM_ADDR_NATIVE_CODE);
    else
        message_hex(" at rip ", rip);
    if (sig == SIGBUS)
        message_append(" (shared guest memory could not be backed: out of memory?)");
    if (!serving)
        /* Idle: the handshake word and the answer fields are the host's
         * (it may be reading our last answer); just die -- the host sees it
         * through the robust futex and reads the message then. */
        sys1(SYS_exit_group, 128 + sig);
    atomic_store_explicit(&CTX->arg2, 0xffffffffu, RELAXED);
    publish(VMCTX_FUTEX_GUEST_SIGNAL);
    sys1(SYS_exit_group, 128 + sig);
}

static int set_handler(int sig, void (*fn)(int, void *, void *))
{
    struct k_sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.handler = fn;
    sa.flags = SA_SIGINFO | SA_RESTORER | SA_ONSTACK;
    sa.restorer = vm_zygote_restorer;
    sa.mask = ~(uint64_t)0; /* nothing nests */
    return (int)sys4(SYS_rt_sigaction, sig, (long)&sa, 0, 8);
}

/* ---- running ---- */

/* ---- guest page protections (native code only) ---- */

static int prot_of(uint8_t perm)
{
    /* the protection allows what the permission map does (vmcore/memory.h) */
    return vm_perm_allows(perm, VM_PERM_WRITE) ? PROT_READ | PROT_WRITE
           : vm_perm_allows(perm, VM_PERM_READ) ? PROT_READ
                                                 : PROT_NONE;
}

/* Mirror the permission map into page protections for pages [first, end),
 * one mprotect per run of equal permissions. */
static void protect_pages(uint32_t first, uint32_t end)
{
    const uint8_t *perms = memory.perms;
    uint32_t shift = memory.page_shift;
    uint32_t p = first;
    while (p < end) {
        uint8_t perm = perms[p];
        uint64_t pattern = perm * 0x0101010101010101ull;
        uint32_t q = p + 1;
        while (q < end && (q & 7))
            if (perms[q] == perm)
                q++;
            else
                goto run_done;
        for (uint64_t word; q + 8 <= end; q += 8) {
            __builtin_memcpy(&word, perms + q, 8);
            if (word != pattern)
                break;
        }
        while (q < end && perms[q] == perm)
            q++;
    run_done:;
        long r = sys3(SYS_mprotect, (long)(VM_ADDR_GUEST_MEMORY + ((uint64_t)p << shift)),
                      (long)((uint64_t)(q - p) << shift), prot_of(perm));
        if (r < 0)
            fatal("cannot set guest page protections", r);
        p = q;
    }
}

/* Before native code runs: protections as the permission map says (all
 * of it the first time or after a page-size change, else what the host
 * marked dirty). */
static void sync_protections(void)
{
    vmctx *c = CTX;
    uint32_t pages = (uint32_t)(VM_GUEST_MEMORY_SIZE >> memory.page_shift);
    uint32_t first = c->perms_dirty_first, end = c->perms_dirty_end;
    if (protections_shift != memory.page_shift) {
        first = 0;
        end = pages;
        protections_shift = memory.page_shift;
    }
    if (first < end) {
        protect_pages(first, end < pages ? end : pages);
        if (end >= pages)
            guard(PROT_NONE);
    }
    if (first || end) /* no store (no cache line taken) when nothing changed */
        c->perms_dirty_first = c->perms_dirty_end = 0;
}

/* Back to a plain read + write window (the interpreter's). */
static void unprotect_window(void)
{
    if (!protections_shift)
        return;
    long r = sys3(SYS_mprotect, (long)VM_ADDR_GUEST_MEMORY, (long)(VM_GUEST_MEMORY_SIZE + VM_GUEST_MEMORY_SLACK),
                  PROT_READ | PROT_WRITE);
    if (r < 0)
        fatal("cannot unprotect guest memory", r);
    protections_shift = 0;
}

static void map_module_part(int fd, uint64_t address, uint64_t length, uint64_t offset, int prot, const char *what)
{
    long r = sys6(SYS_mmap, (long)address, (long)length, prot, MAP_SHARED | MAP_FIXED, fd, (long)offset);
    if (r != (long)address)
        fatal(what, (unsigned long)r >= MAP_FAILED_MAX ? r : 0);
}

static void unload_module(void)
{
    if (module_size)
        sys2(SYS_munmap, (long)VM_ADDR_INTERP_MODULE, (long)module_size);
    if (x64_code_mapped)
        sys2(SYS_munmap, (long)VM_ADDR_NATIVE_CODE, (long)x64_code_mapped);
    if (x64_table_mapped)
        sys2(SYS_munmap, (long)VM_ADDR_JUMP_TABLE, (long)x64_table_mapped);
    module_size = x64_code_mapped = x64_table_mapped = 0;
    x64 = 0;
    memset(&x64_map, 0, sizeof x64_map);
}

/* Take the module(s) the host sent until the one of `generation`. */
static void load_module(uint64_t generation)
{
    for (;;) {
        uint64_t payload[2] = {0, 0}; /* size, generation */
        struct k_iovec iov = {payload, sizeof payload};
        union {
            struct k_cmsghdr h;
            char space[64];
        } control;
        struct k_msghdr msg;
        memset(&msg, 0, sizeof msg);
        memset(&control, 0, sizeof control);
        msg.iov = &iov;
        msg.iovlen = 1;
        msg.control = &control;
        msg.controllen = sizeof(struct k_cmsghdr) + sizeof(int) + 4; /* CMSG_SPACE(sizeof(int)) */
        long n = sys3(SYS_recvmsg, VM_FD_SOCKET, (long)&msg, MSG_CMSG_CLOEXEC);
        if (n < 0)
            fatal("cannot receive the module from the host", n);
        if (n != (long)sizeof payload || control.h.level != SOL_SOCKET || control.h.type != SCM_RIGHTS)
            fatal("malformed module message from the host", 0);
        int fd = *(int *)(control.space + sizeof(struct k_cmsghdr));
        if (fd != VM_FD_RECEIVED)
            fatal("the module descriptor did not land on the expected number", 0);
        if (payload[1] != generation) {
            sys1(SYS_close, fd); /* a stale module: skip it */
            continue;
        }
        unload_module();
        long base = sys6(SYS_mmap, (long)VM_ADDR_INTERP_MODULE, (long)payload[0], PROT_READ, MAP_SHARED | MAP_FIXED,
                         fd, 0);
        if ((unsigned long)base >= MAP_FAILED_MAX)
            fatal("cannot map the module", base);
        module_size = payload[0];
        int kind = vm_shm_module_kind((const uint8_t *)base, module_size);
        if (kind == (int)VM_SHM_KIND_X64) {
            const vm_shm_module *h = (const vm_shm_module *)base;
            if (vm_shm_x64_attach(&x64, &x64_map, (const uint8_t *)base, module_size) != 0)
                fatal("the native code from the host is malformed", 0);
            map_module_part(fd, VM_ADDR_NATIVE_CODE, h->native_size, h->native_offset, PROT_READ | PROT_EXEC,
                            "cannot map the native code");
            x64_code_mapped = h->native_size;
            x64_table_mapped = (x64->jump_table_count * 8ull + VM_HOST_PAGE_SIZE - 1) & ~(uint64_t)(VM_HOST_PAGE_SIZE - 1);
            if (x64_table_mapped)
                map_module_part(fd, VM_ADDR_JUMP_TABLE, x64_table_mapped, h->jump_table_offset, PROT_READ,
                                "cannot map the native jump table");
        } else {
            if (vm_shm_module_attach(&module, (const uint8_t *)base, module_size) != 0)
                fatal("the module from the host is malformed", 0);
            unprotect_window(); /* the interpreter checks permissions itself */
        }
        sys1(SYS_close, fd);
        module_generation = generation;
        resumable = 0;
        return;
    }
}

static uint32_t futex_state_for(vm_exit reason)
{
    switch (reason) {
    case VM_EXIT_ECALLI: return VMCTX_FUTEX_GUEST_ECALLI;
    case VM_EXIT_TRAP: return VMCTX_FUTEX_GUEST_TRAP;
    case VM_EXIT_OUT_OF_GAS: return VMCTX_FUTEX_GUEST_NOT_ENOUGH_GAS;
    case VM_EXIT_PAGEFAULT: return VMCTX_FUTEX_GUEST_PAGEFAULT;
    case VM_EXIT_STEP: return VMCTX_FUTEX_GUEST_STEP;
    default: return VMCTX_FUTEX_IDLE; /* finished, interrupted */
    }
}

#define STORE_IF_CHANGED(field, value)                                          \
    do {                                                                        \
        if (atomic_load_explicit(&c->field, RELAXED) != (value))                \
            atomic_store_explicit(&c->field, (value), RELAXED);                 \
    } while (0)

/* ---- native code: helpers it calls, and one run ---- */

/* VMCTX_STUB_SBRK: the interpreter's sbrk, then the new pages' protection. */
static uint32_t helper_sbrk(uint32_t size)
{
    uint32_t old_end = state.heap.mapped_end;
    uint32_t result = vm_heap_sbrk(&state, &memory, size);
    uint32_t new_end = state.heap.mapped_end;
    if (new_end > old_end) {
        long r = sys3(SYS_mprotect, (long)(VM_ADDR_GUEST_MEMORY + old_end), (long)(new_end - old_end),
                      PROT_READ | PROT_WRITE);
        if (r < 0)
            fatal("cannot make new heap pages accessible", r);
        if (new_end > VM_X64_GUARD_PAGE)
            guard(PROT_NONE);
    }
    apply_interrupt_bias();
    return result;
}

/* VMCTX_STUB_MEMSET: the interpreter's memset on vmctx.regs / vmctx.gas. */
static uint32_t helper_memset(uint32_t metering)
{
    uint32_t fault = 0;
    int64_t gas = atomic_load_explicit(&CTX->gas, RELAXED);
    if (x64_bias_applied) /* memset counts the real gas down (the bias cannot change in a helper) */
        gas = vm_x64_gas_unbias(gas);
    /* the guard page open when the guest may write it and the range reaches it */
    uint64_t dst = (uint32_t)atomic_load_explicit(&CTX->regs[VM_REG_A0], RELAXED);
    int open = dst + (uint32_t)atomic_load_explicit(&CTX->regs[VM_REG_A2], RELAXED) > VM_X64_GUARD_PAGE &&
               vm_perm_allows(vm_perm_at(&memory, VM_X64_GUARD_PAGE), VM_PERM_WRITE);
    if (open)
        guard(PROT_READ | PROT_WRITE);
    uint32_t r = vm_x64_memset((uint64_t *)(uintptr_t)CTX->regs, &gas, (int)metering, &memory, &fault);
    if (open)
        guard(PROT_NONE);
    atomic_store_explicit(&CTX->gas, x64_bias_applied ? vm_x64_gas_bias(gas) : gas, RELAXED);
    if (r == VMCTX_STUB_PAGEFAULT)
        atomic_store_explicit(&CTX->arg, fault, RELAXED);
    apply_interrupt_bias();
    return r;
}

/* Why native code panicked at pc: every panic exit (the trap routine, a
 * memory access's fault, memset, a dynamic jump's stub) sets only the pc,
 * and the pc map keeps each instruction's op. */
static uint32_t native_trap_reason(uint32_t pc)
{
    vm_x64_map_entry e;
    if (pc >= x64->code_len)
        return VM_TRAP_END_OF_CODE; /* the guard past the last instruction */
    if (vm_x64_find_pc(x64, &x64_map, pc, &e) < 0)
        fatal("native code panicked at a pc that is not an instruction", pc);
    return (uint32_t)vm_trap_reason_of((vm_op)(e.info & VM_X64_INFO_OP_MASK), pc, x64->code_len);
}

static uint32_t run_native(void)
{
    vmctx *c = CTX;
    sync_protections();
    for (int i = 0; i < 6; i++)
        STORE_IF_CHANGED(exit_stubs[i], (uint64_t)(uintptr_t)exit_stub[i]);
    STORE_IF_CHANGED(exit_stubs[VMCTX_STUB_SBRK], (uint64_t)(uintptr_t)helper_sbrk);
    STORE_IF_CHANGED(exit_stubs[VMCTX_STUB_MEMSET], (uint64_t)(uintptr_t)helper_memset);

    uint64_t target;
    if (atomic_load_explicit(&c->enter, RELAXED)) {
        uint32_t pc = atomic_load_explicit(&c->program_counter, RELAXED);
        vm_x64_map_entry e;
        if (pc > x64->code_len || vm_x64_find_pc(x64, &x64_map, pc, &e) < 0 || !(e.info & VM_X64_INFO_ENTRY_OK))
            fatal("the host asked to enter the native code at a pc that is not an entry point", pc);
        target = VM_ADDR_NATIVE_CODE + e.entry;
    } else if (resumable) {
        target = resume_native;
    } else {
        fatal("the host asked to resume native code that has nothing to resume", 0);
    }
    if (target < VM_ADDR_NATIVE_CODE + x64->first_insn || target >= VM_ADDR_NATIVE_CODE + x64->code_size)
        fatal("bad native resume address", 0);
    /* The trampoline reads it.  A hostcall's resume finds it set already
     * (the ecalli routine's), so does a call of the same entry point as the
     * last: no store, so the handshake line the host polls is not taken
     * away on entry. */
    STORE_IF_CHANGED(next_native_program_counter, target);
    int metering = x64->gas_metering;
    /* Without metering the gas word only carries interrupts (compiled
     * interruptible: blocks charge 0 and test the sign). */
    int64_t gas_kept = 0;
    int gas_swapped = 0;
    if (!metering) {
        gas_kept = atomic_load_explicit(&c->gas, RELAXED);
        if (gas_kept < 0) { /* only the sign is tested; a store costs the host a cache line */
            atomic_store_explicit(&c->gas, 0, RELAXED);
            gas_swapped = 1;
        }
    }
    uint32_t top_in = state.heap.top, mapped_in = state.heap.mapped_end;
    x64_bias_applied = 0;
    x64_interrupt = state.interrupt;
    apply_interrupt_bias();

    /* The design's resume fields: jump_into is where control enters (the
     * trampoline, which continues at next_native_program_counter);
     * sysreturn_address is where a hostcall's return lands (the same). */
    uint64_t trampoline = VM_ADDR_NATIVE_CODE + x64->entry_trampoline;
    STORE_IF_CHANGED(jump_into, trampoline);
    STORE_IF_CHANGED(sysreturn_address, trampoline);
    x64_running = 1;
    uint32_t stub = zy_enter(trampoline);
    x64_running = 0;
    if (stub == VMCTX_STUB_NOT_ENOUGH_GAS) {
        /* undo the block's charge, resume at it (before the interrupt bias
         * comes off: the two commute) */
        int64_t gas = atomic_load_explicit(&c->gas, RELAXED);
        uint64_t resume;
        if (vm_x64_out_of_gas(x64, &x64_map, atomic_load_explicit(&c->program_counter, RELAXED),
                              atomic_load_explicit(&c->next_native_program_counter, RELAXED), &gas, &resume))
            fatal("native code ran out of gas at an unknown block", 0);
        atomic_store_explicit(&c->gas, gas, RELAXED);
        atomic_store_explicit(&c->next_native_program_counter, resume, RELAXED);
    }

    int interrupted = x64_bias_applied;
    if (interrupted)
        atomic_fetch_add_explicit(&c->gas, VM_X64_INTERRUPT_GAS_BIAS, RELAXED);
    x64_bias_applied = 0;
    if (gas_swapped)
        atomic_store_explicit(&c->gas, gas_kept, RELAXED);
    if (state.heap.top != top_in)
        atomic_store_explicit(&c->heap_info.heap_top, state.heap.top, RELAXED);
    if (state.heap.mapped_end != mapped_in)
        atomic_store_explicit(&c->heap_info.heap_threshold, state.heap.mapped_end, RELAXED);

    vm_exit reason;
    switch (stub) {
    case VMCTX_STUB_FINISHED: reason = VM_EXIT_FINISHED; break;
    case VMCTX_STUB_TRAP: reason = VM_EXIT_TRAP; break;
    case VMCTX_STUB_ECALLI: reason = VM_EXIT_ECALLI; break;
    /* An interrupt shows as running out of gas at a block start (charge
     * undone, so resuming runs that block). */
    case VMCTX_STUB_NOT_ENOUGH_GAS: reason = interrupted ? VM_EXIT_INTERRUPTED : VM_EXIT_OUT_OF_GAS; break;
    case VMCTX_STUB_PAGEFAULT: reason = VM_EXIT_PAGEFAULT; break;
    case VMCTX_STUB_STEP: reason = VM_EXIT_STEP; break;
    default: fatal("native code left by an unknown exit", 0);
    }
    resumable = reason != VM_EXIT_FINISHED && reason != VM_EXIT_TRAP;
    if (reason == VM_EXIT_TRAP) /* native code says only where: the instruction there says why */
        STORE_IF_CHANGED(arg, native_trap_reason(atomic_load_explicit(&c->program_counter, RELAXED)));
    /* Only when there is something to resume: after a return to the host
     * nothing stored the word just now, and a load of the line the host
     * polls waits for the transfer (a hostcall's exit stored it: the load
     * is served from the store buffer). */
    if (resumable)
        resume_native = atomic_load_explicit(&c->next_native_program_counter, RELAXED);
    /* Stored, not compared first: the handshake line is about to be taken
     * for the answer anyway, and a load of it while the host polls it can
     * stall on the transfer where a store just waits in the buffer. */
    atomic_store_explicit(&c->arg2, (uint32_t)reason, RELAXED);
    return futex_state_for(reason);
}

static uint32_t run_once(void)
{
    vmctx *c = CTX;
    uint64_t generation = atomic_load_explicit(&c->module_generation, RELAXED);
    if (generation != module_generation)
        load_module(generation);
    if (!module_size)
        fatal("no module loaded", 0);

    uint32_t page_size = c->page_size, shift = 12;
    while (shift < 16 && (1u << shift) != page_size)
        shift++;
    if ((1u << shift) != page_size)
        fatal("bad page size", 0);
    memory.base = (uint8_t *)VM_ADDR_GUEST_MEMORY;
    memory.perms = (uint8_t *)VM_ADDR_GUEST_PERMS;
    memory.page_shift = shift;
    memory.page_size = page_size;

    state.heap.base = c->heap_base;
    state.heap.top = (uint32_t)atomic_load_explicit(&c->heap_info.heap_top, RELAXED);
    state.heap.mapped_end = (uint32_t)atomic_load_explicit(&c->heap_info.heap_threshold, RELAXED);
    state.heap.max_top = c->heap_base + c->heap_max_size;
    state.heap.grow_pages = c->heap_grow_pages;
    state.interrupt = (int)atomic_load_explicit(&c->interrupt, RELAXED);
    /* A SIGUSR1 between that load and the store would be overwritten:
     * look again (the host sets the flag before it signals). */
    if (atomic_load_explicit(&c->interrupt, RELAXED))
        state.interrupt = 1;

    if (init_flags & VM_INIT_FLAG_TEST_FORBIDDEN_SYSCALL) {
        /* Test hook (host start-up flag only): try to open a file, which
         * the seccomp filter answers by killing the process. */
        sys4(SYS_openat, AT_FDCWD, (long)"/etc/passwd", O_RDONLY, 0);
        fatal("the forbidden system call was allowed", 0);
    }
    if (x64)
        return run_native();

    for (int i = 0; i < VM_REG_COUNT; i++)
        state.regs[i] = atomic_load_explicit(&c->regs[i], RELAXED);
    state.gas = atomic_load_explicit(&c->gas, RELAXED);
    state.pc = atomic_load_explicit(&c->program_counter, RELAXED);
    if (atomic_load_explicit(&c->jump_into, RELAXED) == VM_INDEX_NONE) {
        vm_state entry = state;
        entry.gas = INT64_MAX; /* the host charged the entry already */
        if (vm_state_set_pc(&entry, &module, state.pc) != 0)
            fatal("the host asked to enter at a pc that is not an entry point", state.pc);
        state.resume = entry.resume;
    } else if (!resumable) {
        fatal("the host asked to resume a guest that has nothing to resume", 0);
    } /* else state.resume is where the last run of this module stopped */
    if (state.resume > module.insn_count)
        fatal("bad resume index", 0);

    uint64_t regs_in[VM_REG_COUNT];
    memcpy(regs_in, state.regs, sizeof regs_in);
    int64_t gas_in = state.gas;
    uint32_t top_in = state.heap.top, mapped_in = state.heap.mapped_end;

    vm_exit reason = vm_run(&module, &state, &memory);
    resumable = reason != VM_EXIT_FINISHED && reason != VM_EXIT_TRAP;

    /* Write back only what changed: every store takes the cache line away
     * from the host, which then pays for the transfer. */
    for (int i = 0; i < VM_REG_COUNT; i++)
        if (state.regs[i] != regs_in[i])
            atomic_store_explicit(&c->regs[i], state.regs[i], RELAXED);
    if (state.gas != gas_in)
        atomic_store_explicit(&c->gas, state.gas, RELAXED);
    if (state.heap.top != top_in)
        atomic_store_explicit(&c->heap_info.heap_top, state.heap.top, RELAXED);
    if (state.heap.mapped_end != mapped_in)
        atomic_store_explicit(&c->heap_info.heap_threshold, state.heap.mapped_end, RELAXED);
    /* The handshake line too: the host polls it, so each store there may
     * have to take the line back first. */
    STORE_IF_CHANGED(jump_into, (uint64_t)state.resume);
    STORE_IF_CHANGED(program_counter, state.pc);
    STORE_IF_CHANGED(next_program_counter, state.next_pc);
    STORE_IF_CHANGED(arg, state.arg);
    STORE_IF_CHANGED(arg2, (uint32_t)reason); /* the vm_exit code */
    return futex_state_for(reason);
}

/* ---- start-up ---- */

static void map_fixed(uint64_t address, uint64_t length, int fd, uint64_t offset, const char *what)
{
    long r = sys6(SYS_mmap, (long)address, (long)length, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED_NOREPLACE,
                  fd, (long)offset);
    if (r != (long)address) {
        if ((unsigned long)r < MAP_FAILED_MAX)
            sys2(SYS_munmap, r, (long)length);
        fatal(what, (unsigned long)r >= MAP_FAILED_MAX ? r : 0);
    }
}

__attribute__((used, noreturn)) void zygote_main(void);
__attribute__((used, noreturn)) void zygote_main(void)
{
    vmctx *c = CTX;
    long r = sys6(SYS_mmap, (long)VM_ADDR_VMCTX, VM_HOST_PAGE_SIZE, PROT_READ | PROT_WRITE,
                  MAP_SHARED | MAP_FIXED_NOREPLACE, VM_FD_VMCTX, 0);
    if (r != (long)VM_ADDR_VMCTX)
        early_exit(110);

    uint32_t bits = 0;
    /* The kernel wakes the host through this word whenever we die. */
    uint32_t tid = (uint32_t)sys0(SYS_gettid);
    atomic_store_explicit(&c->death_futex, FUTEX_WAITERS | tid, memory_order_seq_cst);
    death_entry.next = &death_head.list;
    death_head.list.next = &death_entry;
    death_head.futex_offset = (long)((char *)&c->death_futex - (char *)&death_entry);
    death_head.list_op_pending = 0;
    if (sys2(SYS_set_robust_list, (long)&death_head, sizeof death_head) == 0)
        bits |= VM_ISO_ROBUST_FUTEX;

    map_fixed(VM_ADDR_GUEST_MEMORY, VM_GUEST_MEMORY_SIZE + VM_GUEST_MEMORY_SLACK, VM_FD_GUEST_MEMORY, 0,
              "cannot map guest memory");
    map_fixed(VM_ADDR_GUEST_PERMS, VM_GUEST_PERMS_SIZE, VM_FD_GUEST_MEMORY,
              VM_GUEST_MEMORY_SIZE + VM_GUEST_MEMORY_SLACK, "cannot map the guest permission map");

    /* Native code reaches the VmCtx relative to the guest-memory base. */
    map_fixed(VM_ADDR_VMCTX_ALIAS, VM_HOST_PAGE_SIZE, VM_FD_VMCTX, 0, "cannot map the VmCtx alias");
    /* Fault handlers run on their own stack. */
    struct k_stack ss = {signal_stack, 0, sizeof signal_stack};
    if (sys2(SYS_sigaltstack, (long)&ss, 0) < 0)
        fatal("cannot set the signal stack", 0);

    init_flags = atomic_load_explicit(&c->init.flags, RELAXED);
    uint32_t host_bits = atomic_load_explicit(&c->isolation, RELAXED);

    /* Signals: SIGUSR1 asks a running guest to stop; faults are reported. */
    if (set_handler(SIGUSR1, on_interrupt) < 0 || set_handler(SIGSEGV, on_fault) < 0 ||
        set_handler(SIGBUS, on_fault) < 0 || set_handler(SIGILL, on_fault) < 0 || set_handler(SIGFPE, on_fault) < 0 ||
        set_handler(SIGTRAP, on_fault) < 0)
        fatal("cannot install signal handlers", 0);
    uint64_t none = 0;
    sys4(SYS_rt_sigprocmask, SIG_SETMASK, (long)&none, 0, 8);

    /* Die with the host: the parent-death signal, then the lifetime pipe
     * (closes the race with a host that died before the prctl). */
    if (sys5(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) == 0)
        bits |= VM_ISO_PDEATHSIG;
    if (lifetime_check() == 0)
        bits |= VM_ISO_LIFETIME_PIPE;

    if ((host_bits & VM_ISO_NS_MOUNT) && zy_empty_root() == 0)
        bits |= VM_ISO_PIVOT_ROOT;
    if (host_bits & VM_ISO_NS_UTS)
        sys2(SYS_sethostname, (long)"vmcore", 6);
    if (c->sandbox_cpu >= 0 && c->sandbox_cpu < 1024) {
        uint64_t mask[16];
        memset(mask, 0, sizeof mask);
        mask[c->sandbox_cpu / 64] = 1ull << (c->sandbox_cpu % 64);
        sys3(SYS_sched_setaffinity, 0, sizeof mask, (long)mask);
    }
    bits |= zy_apply_rlimits();
    if (zy_drop_capabilities())
        bits |= VM_ISO_CAPS_DROPPED;
    if (sys5(SYS_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0)
        bits |= VM_ISO_NO_NEW_PRIVS;
    if (!(init_flags & VM_INIT_FLAG_NO_SECCOMP) && zy_install_seccomp())
        bits |= VM_ISO_SECCOMP;

    atomic_fetch_or_explicit(&c->isolation, bits, memory_order_relaxed);
    atomic_store_explicit(&c->arg2, VM_EXIT_FINISHED, RELAXED);
    answer(VMCTX_FUTEX_IDLE); /* ready */

    for (;;) {
        uint32_t v = wait_for_host();
        if (v == VMCTX_FUTEX_LONGJUMP) {
            /* the host abandons whatever was in progress: nothing to undo
             * (all state is in the VmCtx); acknowledge */
            atomic_store_explicit(&c->arg2, VM_EXIT_INTERRUPTED, RELAXED);
            answer(VMCTX_FUTEX_IDLE);
            continue;
        }
        serving = 1;
        uint32_t result = run_once();
        serving = 0;
        answer(result);
    }
}
