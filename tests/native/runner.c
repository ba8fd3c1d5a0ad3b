/* Test-only stand-in for the zygote: runs recompiled guest code.
 *
 * NOT shipped in the package.  tests/test_compiler.py builds it with the
 * system compiler into a temporary directory and talks to it over pipes,
 * so generated code never runs in the pytest process.  It provides what
 * include/vmcore/compiler.h says the sandbox must provide: the code at
 * VM_ADDR_NATIVE_CODE, the native jump table at VM_ADDR_JUMP_TABLE, the 4
 * GiB guest window at VM_ADDR_GUEST_MEMORY with page protections from the
 * permission map, the VmCtx page at VM_ADDR_VMCTX and VM_ADDR_VMCTX_ALIAS,
 * exit stubs and helpers in vmctx.exit_stubs, and a SIGSEGV handler on an
 * alternate stack that resolves faults with vm_x64_resolve_fault().
 *
 * Protocol (stdin -> stdout, little endian, any number of cases until EOF):
 *
 *   case:   u32 magic "VMRC", u32 flags (RUN_*), u32 page_size, u32 max_exits,
 *           u64 code_size, code bytes, u64 jump_table_count, u64 entries,
 *           u64 map_count, map records (u32), u64 mark_count, marks (3 x u32),
 *           u32 entry_trampoline, overflow_probe, first_insn, code_len, step_tracing, charges,
 *           u64 native entry (absolute), i64 gas, u64 regs[13],
 *           u32 heap base, top, mapped_end, max_top, grow_pages,
 *           u32 n, n x (u32 address, u64 length, u32 perm),
 *           u32 n, n x (u32 address, u32 length, bytes),
 *           u64 interrupt_after_us (0: none), i64 refill (RUN_CONTINUE_OOG)
 *   result: u32 magic "VMRO", u32 exit count, per exit (u32 kind, u32 pc,
 *           u32 arg, u32 next_pc, i64 gas), then u64 regs[13],
 *           u32 heap top, u32 heap mapped_end, u64 run nanoseconds,
 *           u32 signal, u64 signal rip offset,
 *           u32 page count, per page (u32 address, u32 perm, page bytes)
 *
 * Exit kinds: VMCTX_STUB_* (0..5), RUN_INTERRUPTED (6), RUN_CRASH (100).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "vmcore/compiler.h"
#include "vmcore/interp.h"
#include "vmcore/vmctx.h"

#define RUN_GAS_METERING 1u
#define RUN_CONTINUE_ECALLI 2u
#define RUN_CONTINUE_STEP 4u
#define RUN_DUMP_MEMORY 8u
#define RUN_CONTINUE_OOG 16u       /* add `refill` gas and resume */
#define RUN_CONTINUE_PAGEFAULT 32u /* make the page writable and resume (retry) */
#define MAX_MAPPED_ON_FAULT 64u
#define RUN_INTERRUPTED 6u
#define RUN_CRASH 100u
#define MAX_RECORDED_EXITS 100000u

static vmctx *ctx;
static uint8_t *const guest = (uint8_t *)VM_ADDR_GUEST_MEMORY;
static vm_memory memory;
static vm_state heap_state; /* only .heap is used (vm_heap_sbrk) */
static vm_x64_module module;
static uint32_t *records;
static vm_x64_mark *marks;
static vm_x64_map map;
static uint64_t code_base = VM_ADDR_NATIVE_CODE;
static size_t code_mapped, table_mapped;
static uint32_t gas_metering;

static volatile sig_atomic_t crash_signal;
static volatile uint64_t crash_rip;
static volatile sig_atomic_t interrupt_applied;
static volatile sig_atomic_t interrupt_wanted;

static void die(const char *what)
{
    fprintf(stderr, "runner: %s (errno %d: %s)\n", what, errno, strerror(errno));
    exit(2);
}

/* ---- the way into generated code and back ---- */

uint32_t runner_enter(uint64_t target);
void runner_exit_0(void);
void runner_exit_1(void);
void runner_exit_2(void);
void runner_exit_3(void);
void runner_exit_4(void);
void runner_exit_5(void);
void runner_exit_crash(void);

__asm__(".text\n"
        ".globl runner_enter\n"
        "runner_enter:\n"
        "  push %rbx\n  push %rbp\n  push %r12\n  push %r13\n  push %r14\n  push %r15\n"
        "  mov %rsp, runner_saved_rsp(%rip)\n"
        "  jmp *%rdi\n"
        "runner_exit_common:\n"
        "  mov runner_saved_rsp(%rip), %rsp\n"
        "  pop %r15\n  pop %r14\n  pop %r13\n  pop %r12\n  pop %rbp\n  pop %rbx\n"
        "  ret\n"
        ".globl runner_exit_0\nrunner_exit_0: mov $0, %eax\n jmp runner_exit_common\n"
        ".globl runner_exit_1\nrunner_exit_1: mov $1, %eax\n jmp runner_exit_common\n"
        ".globl runner_exit_2\nrunner_exit_2: mov $2, %eax\n jmp runner_exit_common\n"
        ".globl runner_exit_3\nrunner_exit_3: mov $3, %eax\n jmp runner_exit_common\n"
        ".globl runner_exit_4\nrunner_exit_4: mov $4, %eax\n jmp runner_exit_common\n"
        ".globl runner_exit_5\nrunner_exit_5: mov $5, %eax\n jmp runner_exit_common\n"
        ".globl runner_exit_crash\nrunner_exit_crash: mov $100, %eax\n jmp runner_exit_common\n"
        ".data\n.balign 8\nrunner_saved_rsp: .quad 0\n.text\n");

static void (*const exits[6])(void) = {runner_exit_0, runner_exit_1, runner_exit_2,
                                       runner_exit_3, runner_exit_4, runner_exit_5};

/* ---- helpers called by generated code ---- */

static int prot_of(uint8_t perm)
{
    return perm == VM_PERM_WRITE ? PROT_READ | PROT_WRITE : perm == VM_PERM_READ ? PROT_READ : PROT_NONE;
}

/* The guard page (compiler.h): PROT_NONE while native code runs, opened
 * around what the runner does there for the guest. */
static void guard(int prot)
{
    if (mprotect(guest + VM_X64_GUARD_PAGE, VM_X64_GUARD_BYTES, prot) != 0)
        die("mprotect (guard page)");
}

static uint32_t helper_sbrk(uint32_t size)
{
    uint32_t old_end = heap_state.heap.mapped_end;
    uint32_t result = vm_heap_sbrk(&heap_state, &memory, size);
    uint32_t new_end = heap_state.heap.mapped_end;
    if (new_end > old_end && mprotect(guest + old_end, new_end - old_end, PROT_READ | PROT_WRITE) != 0)
        die("mprotect (sbrk)");
    if (new_end > VM_X64_GUARD_PAGE)
        guard(PROT_NONE);
    return result;
}

static uint32_t helper_memset(uint32_t metering)
{
    uint32_t fault = 0;
    int64_t gas = atomic_load(&ctx->gas);
    if (interrupt_applied) /* as the zygote: memset counts the real gas down */
        gas = vm_x64_gas_unbias(gas);
    uint64_t dst = (uint32_t)atomic_load(&ctx->regs[VM_REG_A0]);
    int open = dst + (uint32_t)atomic_load(&ctx->regs[VM_REG_A2]) > VM_X64_GUARD_PAGE &&
               vm_perm_allows(vm_perm_at(&memory, VM_X64_GUARD_PAGE), VM_PERM_WRITE);
    if (open)
        guard(PROT_READ | PROT_WRITE);
    uint32_t r = vm_x64_memset((uint64_t *)ctx->regs, &gas, (int)metering, &memory, &fault);
    if (open)
        guard(PROT_NONE);
    atomic_store(&ctx->gas, interrupt_applied ? vm_x64_gas_bias(gas) : gas);
    if (r == VMCTX_STUB_PAGEFAULT)
        atomic_store(&ctx->arg, fault);
    return r;
}

/* ---- signals ---- */

static int greg_of(int hw)
{
    static const int table[16] = {REG_RAX, REG_RCX, REG_RDX, REG_RBX, REG_RSP, REG_RBP, REG_RSI, REG_RDI,
                                  REG_R8,  REG_R9,  REG_R10, REG_R11, REG_R12, REG_R13, REG_R14, REG_R15};
    return table[hw];
}

static int in_code(uint64_t rip) { return rip >= code_base && rip < code_base + module.code_size; }

static void on_fault(int sig, siginfo_t *si, void *uc_)
{
    (void)si;
    ucontext_t *uc = uc_;
    greg_t *g = uc->uc_mcontext.gregs;
    uint64_t rip = (uint64_t)g[REG_RIP];
    if (sig == SIGSEGV && in_code(rip)) {
        vm_x64_fault f;
        uint64_t hw[16];
        for (int i = 0; i < 16; i++)
            hw[i] = (uint64_t)g[greg_of(i)];
        vm_x64_resolve_fault(&module, &map, &memory, rip - code_base, hw, atomic_load(&ctx->program_counter), &f);
        if (f.stub == VM_X64_FAULT_EMULATE) {
            guard(PROT_READ | PROT_WRITE);
            uint32_t n = vm_x64_emulate_access((const uint8_t *)(uintptr_t)rip, hw, guest + f.arg);
            guard(PROT_NONE);
            if (n) {
                for (int i = 0; i < 16; i++)
                    g[greg_of(i)] = (greg_t)hw[i];
                g[REG_RIP] = (greg_t)(rip + n);
                return;
            }
        }
        if (f.stub >= 0) {
            for (int i = 0; i < VM_REG_COUNT; i++)
                atomic_store(&ctx->regs[i], vm_x64_guest_reg(&module, (uint64_t)g[greg_of(vm_x64_guest_regs[i])]));
            atomic_store(&ctx->program_counter, f.pc);
            atomic_store(&ctx->arg, f.arg);
            atomic_store(&ctx->next_native_program_counter, code_base + f.resume);
            g[REG_RIP] = (greg_t)(uintptr_t)exits[f.stub];
            return;
        }
    }
    crash_signal = sig;
    crash_rip = in_code(rip) ? rip - code_base : rip;
    if (in_code(rip))
        for (int i = 0; i < VM_REG_COUNT; i++)
            atomic_store(&ctx->regs[i], vm_x64_guest_reg(&module, (uint64_t)g[greg_of(vm_x64_guest_regs[i])]));
    g[REG_RIP] = (greg_t)(uintptr_t)runner_exit_crash;
}

static void arm_timer(uint64_t us)
{
    struct itimerval t;
    memset(&t, 0, sizeof t);
    t.it_value.tv_sec = (time_t)(us / 1000000u);
    t.it_value.tv_usec = (suseconds_t)(us % 1000000u);
    setitimer(ITIMER_REAL, &t, 0);
}

static void on_alarm(int sig, siginfo_t *si, void *uc_)
{
    (void)sig, (void)si;
    ucontext_t *uc = uc_;
    uint64_t rip = (uint64_t)uc->uc_mcontext.gregs[REG_RIP];
    if (!interrupt_wanted || interrupt_applied)
        return;
    if (in_code(rip)) {
        /* one read-modify-write between two guest instructions */
        atomic_fetch_sub(&ctx->gas, VM_X64_INTERRUPT_GAS_BIAS);
        interrupt_applied = 1;
    } else {
        arm_timer(50); /* in a helper or the runner: try again shortly */
    }
}

static void install(int sig, void (*fn)(int, siginfo_t *, void *))
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = fn;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigfillset(&sa.sa_mask);
    if (sigaction(sig, &sa, 0) != 0)
        die("sigaction");
}

/* ---- I/O ---- */

static int read_exact(void *p, size_t n)
{
    size_t got = fread(p, 1, n, stdin);
    if (got == n)
        return 1;
    if (got == 0 && feof(stdin))
        return 0;
    die("short read");
    return 0;
}

#define READ(x) do { if (!read_exact(&(x), sizeof(x))) die("truncated case"); } while (0)

static void put(const void *p, size_t n)
{
    if (fwrite(p, 1, n, stdout) != n)
        die("write");
}

#define PUT(x) put(&(x), sizeof(x))

static void *map_fixed(uint64_t address, size_t size, int prot)
{
    void *p = mmap((void *)(uintptr_t)address, size, prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE,
                   -1, 0);
    if (p == MAP_FAILED)
        die("mmap");
    return p;
}

static size_t round_up(size_t v, size_t to) { return (v + to - 1) / to * to; }

typedef struct exit_record {
    uint32_t kind, pc, arg, next_pc;
    int64_t gas;
} exit_record;

static exit_record *recorded;

typedef struct page_range {
    size_t first, end; /* page indices, end exclusive */
} page_range;

static page_range *ranges;
static size_t range_count;

static int run_case(void)
{
    uint32_t magic;
    if (!read_exact(&magic, 4))
        return 0;
    if (magic != 0x43524d56u)
        die("bad magic");
    uint32_t flags, page_size, max_exits;
    READ(flags);
    READ(page_size);
    READ(max_exits);
    gas_metering = flags & RUN_GAS_METERING;

    /* code */
    uint64_t code_size;
    READ(code_size);
    if (code_mapped)
        munmap((void *)(uintptr_t)code_base, code_mapped);
    code_mapped = round_up(code_size ? code_size : 1, 4096);
    uint8_t *code = map_fixed(code_base, code_mapped, PROT_READ | PROT_WRITE);
    if (code_size && !read_exact(code, code_size))
        die("truncated code");
    if (mprotect(code, code_mapped, PROT_READ | PROT_EXEC) != 0)
        die("mprotect code");

    /* jump table */
    uint64_t jt_count;
    READ(jt_count);
    if (table_mapped)
        munmap((void *)(uintptr_t)VM_ADDR_JUMP_TABLE, table_mapped);
    table_mapped = round_up(jt_count ? jt_count * 8 : 8, 4096);
    uint8_t *table = map_fixed(VM_ADDR_JUMP_TABLE, table_mapped, PROT_READ | PROT_WRITE);
    if (jt_count && !read_exact(table, jt_count * 8))
        die("truncated jump table");
    mprotect(table, table_mapped, PROT_READ);

    /* map and module */
    uint64_t map_count, mark_count;
    READ(map_count);
    free(records);
    records = malloc((map_count ? map_count : 1) * sizeof *records);
    if (!records || (map_count && !read_exact(records, map_count * sizeof *records)))
        die("map records");
    READ(mark_count);
    free(marks);
    marks = malloc((mark_count ? mark_count : 1) * sizeof *marks);
    if (!marks || (mark_count && !read_exact(marks, mark_count * sizeof *marks)))
        die("map marks");
    memset(&module, 0, sizeof module);
    module.code_address = code_base;
    module.code_size = (uint32_t)code_size;
    module.map_count = (uint32_t)map_count;
    module.mark_count = (uint32_t)mark_count;
    READ(module.entry_trampoline);
    READ(module.overflow_probe);
    READ(module.first_insn);
    READ(module.code_len);
    READ(module.step_tracing);
    READ(module.charges);
    READ(module.is_64_bit);
    map.records = records;
    map.marks = marks;
    map.count = module.map_count;
    map.mark_count = module.mark_count;

    uint64_t entry, regs[VM_REG_COUNT];
    int64_t gas;
    READ(entry);
    READ(gas);
    READ(regs);
    READ(heap_state.heap.base);
    READ(heap_state.heap.top);
    READ(heap_state.heap.mapped_end);
    READ(heap_state.heap.max_top);
    READ(heap_state.heap.grow_pages);

    /* guest memory: a fresh PROT_NONE window, permissions, contents */
    /* the window and its slack (compiler.h, Faults) */
    map_fixed(VM_ADDR_GUEST_MEMORY, VM_GUEST_MEMORY_SIZE + VM_GUEST_MEMORY_SLACK, PROT_NONE);
    memory.base = guest;
    memory.page_size = page_size;
    memory.page_shift = (uint32_t)__builtin_ctz(page_size);
    free(memory.perms);
    memory.perms = calloc((size_t)(VM_GUEST_MEMORY_SIZE >> memory.page_shift), 1);
    if (!memory.perms)
        die("perms");
    uint32_t n;
    READ(n);
    free(ranges);
    ranges = malloc((n + 2 + MAX_MAPPED_ON_FAULT) * sizeof *ranges);
    if (!ranges)
        die("malloc");
    range_count = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t address, perm;
        uint64_t length;
        READ(address);
        READ(length);
        READ(perm);
        vm_memory_set_perms(&memory, address, length, (uint8_t)perm);
        if (length)
            ranges[range_count++] = (page_range){address >> memory.page_shift,
                                                 (size_t)(((uint64_t)address + length - 1) >> memory.page_shift) + 1};
    }
    /* contents go in with write access (raw, as the host writes) */
    size_t npages = (size_t)(VM_GUEST_MEMORY_SIZE >> memory.page_shift);
    READ(n);
    for (uint32_t i = 0; i < n; i++) {
        uint32_t address, length;
        READ(address);
        READ(length);
        if ((uint64_t)address + length > VM_GUEST_MEMORY_SIZE)
            die("chunk outside the address space");
        if (length) {
            uint64_t lo = address & ~(uint64_t)(page_size - 1);
            uint64_t hi = round_up((uint64_t)address + length, page_size);
            mprotect(guest + lo, hi - lo, PROT_READ | PROT_WRITE);
            if (!read_exact(guest + address, length))
                die("truncated chunk");
            mprotect(guest + lo, hi - lo, PROT_NONE);
        }
    }
    for (size_t r = 0; r < range_count; r++) {
        size_t end = ranges[r].end < npages ? ranges[r].end : npages;
        for (size_t p = ranges[r].first; p < end;) {
            uint8_t perm = memory.perms[p];
            size_t q = p + 1;
            while (q < end && memory.perms[q] == perm)
                q++;
            if (perm != VM_PERM_NONE &&
                mprotect(guest + (p << memory.page_shift), (q - p) << memory.page_shift, prot_of(perm)) != 0)
                die("mprotect");
            p = q;
        }
    }
    guard(PROT_NONE);
    uint32_t heap_initial_end = heap_state.heap.mapped_end;
    uint64_t interrupt_us;
    int64_t refill;
    READ(interrupt_us);
    READ(refill);
    uint32_t mapped_on_fault = 0;

    /* the VmCtx */
    for (int i = 0; i < VM_REG_COUNT; i++)
        atomic_store(&ctx->regs[i], regs[i]);
    atomic_store(&ctx->gas, gas);
    atomic_store(&ctx->next_native_program_counter, entry);
    atomic_store(&ctx->program_counter, 0);
    atomic_store(&ctx->arg, 0);
    atomic_store(&ctx->next_program_counter, 0);
    for (int i = 0; i < 6; i++)
        atomic_store(&ctx->exit_stubs[i], (uint64_t)(uintptr_t)exits[i]);
    atomic_store(&ctx->exit_stubs[VMCTX_STUB_SBRK], (uint64_t)(uintptr_t)helper_sbrk);
    atomic_store(&ctx->exit_stubs[VMCTX_STUB_MEMSET], (uint64_t)(uintptr_t)helper_memset);

    crash_signal = 0;
    crash_rip = 0;
    interrupt_applied = 0;
    interrupt_wanted = interrupt_us != 0;
    uint32_t count = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (interrupt_us)
        arm_timer(interrupt_us);
    for (;;) {
        uint32_t kind = runner_enter(code_base + module.entry_trampoline);
        if (kind == VMCTX_STUB_NOT_ENOUGH_GAS) { /* as the zygote does */
            int64_t gas = atomic_load(&ctx->gas);
            uint64_t resume;
            if (vm_x64_out_of_gas(&module, &map, atomic_load(&ctx->program_counter),
                                  atomic_load(&ctx->next_native_program_counter), &gas, &resume))
                die("out of gas at an unknown block");
            atomic_store(&ctx->gas, gas);
            atomic_store(&ctx->next_native_program_counter, resume);
        }
        int64_t g = atomic_load(&ctx->gas);
        if (kind == VMCTX_STUB_NOT_ENOUGH_GAS && interrupt_applied) {
            g = vm_x64_gas_unbias(g);
            atomic_store(&ctx->gas, g);
            kind = RUN_INTERRUPTED;
        }
        if (count < MAX_RECORDED_EXITS)
            recorded[count++] = (exit_record){kind, atomic_load(&ctx->program_counter), atomic_load(&ctx->arg),
                                              atomic_load(&ctx->next_program_counter), g};
        if (count >= max_exits)
            break;
        if (kind == VMCTX_STUB_ECALLI && (flags & RUN_CONTINUE_ECALLI))
            continue;
        if (kind == VMCTX_STUB_STEP && (flags & RUN_CONTINUE_STEP))
            continue;
        if (kind == VMCTX_STUB_NOT_ENOUGH_GAS && (flags & RUN_CONTINUE_OOG)) {
            atomic_store(&ctx->gas, g + refill);
            continue;
        }
        if (kind == VMCTX_STUB_PAGEFAULT && (flags & RUN_CONTINUE_PAGEFAULT) &&
            mapped_on_fault < MAX_MAPPED_ON_FAULT) {
            uint32_t page = atomic_load(&ctx->arg);
            vm_memory_set_perms(&memory, page, page_size, VM_PERM_WRITE);
            if (mprotect(guest + page, page_size, PROT_READ | PROT_WRITE) != 0)
                die("mprotect (fault)");
            guard(PROT_NONE);
            ranges[range_count++] = (page_range){page >> memory.page_shift, (page >> memory.page_shift) + 1};
            mapped_on_fault++;
            continue;
        }
        break;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    interrupt_wanted = 0;
    arm_timer(0);
    uint64_t ns = (uint64_t)(t1.tv_sec - t0.tv_sec) * 1000000000u + (uint64_t)t1.tv_nsec - (uint64_t)t0.tv_nsec;

    uint32_t out_magic = 0x4f524d56u;
    PUT(out_magic);
    PUT(count);
    put(recorded, count * sizeof *recorded);
    for (int i = 0; i < VM_REG_COUNT; i++) {
        uint64_t v = atomic_load(&ctx->regs[i]);
        PUT(v);
    }
    PUT(heap_state.heap.top);
    PUT(heap_state.heap.mapped_end);
    PUT(ns);
    uint32_t sig = (uint32_t)crash_signal;
    uint64_t rip = crash_rip;
    PUT(sig);
    PUT(rip);
    /* accessible pages: the listed ranges and what sbrk added */
    if (heap_state.heap.mapped_end > heap_initial_end)
        ranges[range_count++] = (page_range){heap_initial_end >> memory.page_shift,
                                             (size_t)(((uint64_t)heap_state.heap.mapped_end - 1) >> memory.page_shift) + 1};
    guard(prot_of(vm_perm_at(&memory, VM_X64_GUARD_PAGE))); /* as the guest may see it */
    uint32_t dumped = 0;
    uint8_t *seen = calloc(npages, 1);
    if (!seen)
        die("calloc");
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1)
            PUT(dumped);
        for (size_t r = 0; (flags & RUN_DUMP_MEMORY) && r < range_count; r++) {
            size_t end = ranges[r].end < npages ? ranges[r].end : npages;
            for (size_t p = ranges[r].first; p < end; p++) {
                if (memory.perms[p] == VM_PERM_NONE || seen[p] == pass + 1)
                    continue;
                seen[p] = (uint8_t)(pass + 1);
                if (pass == 0) {
                    dumped++;
                    continue;
                }
                uint32_t address = (uint32_t)(p << memory.page_shift), perm = memory.perms[p];
                PUT(address);
                PUT(perm);
                put(guest + address, page_size);
            }
        }
    }
    free(seen);
    fflush(stdout);
    return 1;
}

int main(void)
{
    vm_decoder_init();
    /* the VmCtx: one shared page, mapped twice */
    int fd = memfd_create("vmctx", MFD_CLOEXEC);
    if (fd < 0 || ftruncate(fd, 4096) != 0)
        die("memfd");
    ctx = mmap((void *)(uintptr_t)VM_ADDR_VMCTX, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED_NOREPLACE, fd, 0);
    if (ctx == MAP_FAILED)
        die("mmap vmctx");
    if (mmap((void *)(uintptr_t)VM_ADDR_VMCTX_ALIAS, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED_NOREPLACE,
             fd, 0) == MAP_FAILED)
        die("mmap vmctx alias");
    close(fd);

    stack_t ss;
    ss.ss_size = 1 << 16;
    ss.ss_sp = malloc(ss.ss_size);
    ss.ss_flags = 0;
    if (!ss.ss_sp || sigaltstack(&ss, 0) != 0)
        die("sigaltstack");
    install(SIGSEGV, on_fault);
    install(SIGBUS, on_fault);
    install(SIGILL, on_fault);
    install(SIGFPE, on_fault);
    install(SIGTRAP, on_fault);
    install(SIGALRM, on_alarm);

    recorded = malloc(MAX_RECORDED_EXITS * sizeof *recorded);
    if (!recorded)
        die("malloc");
    static char outbuf[1 << 16];
    setvbuf(stdout, outbuf, _IOFBF, sizeof outbuf);
    while (run_case())
        ;
    return 0;
}
