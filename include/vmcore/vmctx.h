/* The VmCtx: the one page of memory shared by the host and the sandbox.
 *
 * This header is the single definition of the context, the futex states and
 * the fixed sandbox addresses.  Python reads the layout from the compiled
 * code (vmcore.abi), the zygote and the recompiler include this file; nothing
 * re-types these numbers.
 *
 * Fields written by different sides in the hot path sit on different cache
 * lines: the handshake words (futex, program counters, jump target, args) on
 * the first, gas on the second (generated code decrements it on every basic
 * block), registers and heap state after that.
 */
#ifndef VMCORE_VMCTX_H
#define VMCORE_VMCTX_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "vmcore/abi.h"

#define VMCTX_CACHE_LINE 64
#define VMCTX_REG_COUNT VM_REG_COUNT
#define VMCTX_MESSAGE_BUFFER_SIZE 512

/* Futex states.  The futex word is the single source of truth for who owns
 * the context: BUSY means the sandbox is running, anything with the IDLE bit
 * means the host owns it, the upper bits saying why the guest stopped. */
#define VMCTX_FUTEX_BUSY 0u
#define VMCTX_FUTEX_IDLE 1u
#define VMCTX_FUTEX_GUEST_ECALLI (VMCTX_FUTEX_IDLE | (1u << 1))
#define VMCTX_FUTEX_GUEST_TRAP (VMCTX_FUTEX_IDLE | (2u << 1))
#define VMCTX_FUTEX_GUEST_SIGNAL (VMCTX_FUTEX_IDLE | (3u << 1))
#define VMCTX_FUTEX_GUEST_STEP (VMCTX_FUTEX_IDLE | (4u << 1))
#define VMCTX_FUTEX_GUEST_NOT_ENOUGH_GAS (VMCTX_FUTEX_IDLE | (5u << 1))
#define VMCTX_FUTEX_GUEST_PAGEFAULT (VMCTX_FUTEX_IDLE | (6u << 1))
#define VMCTX_FUTEX_LONGJUMP 0xffffffffu

/* vmctx.exit_stubs: native addresses the sandbox provides to generated
 * (recompiled) code.  The first six are exits, entered with `jmp` after the
 * guest registers were stored to `regs` and program_counter (and, where it
 * applies, next_program_counter, arg and next_native_program_counter) were
 * set; the last two are helpers, entered with `call` (SysV ABI, stack
 * aligned, guest registers stored to `regs` and reloaded afterwards).  See
 * include/vmcore/compiler.h for the full contract. */
#define VMCTX_STUB_FINISHED 0       /* dynamic jump to VM_ADDR_RETURN_TO_HOST */
#define VMCTX_STUB_TRAP 1           /* panic */
#define VMCTX_STUB_ECALLI 2         /* hostcall: arg = number, next_program_counter */
#define VMCTX_STUB_NOT_ENOUGH_GAS 3 /* at a block start, gas unchanged */
#define VMCTX_STUB_PAGEFAULT 4      /* arg = page (memset only; other faults arrive as SIGSEGV) */
#define VMCTX_STUB_STEP 5           /* single step: about to execute program_counter */
#define VMCTX_STUB_SBRK 6           /* uint32_t sbrk(uint32_t size): new heap top or 0 */
#define VMCTX_STUB_MEMSET 7         /* uint32_t memset(uint32_t gas_metering): 0 or an exit stub index */
#define VMCTX_STUB_COUNT 8

/* Guest address space (the program ABI, shared by every backend). */
/* (page sizes and VM_ADDR_RETURN_TO_HOST: vmcore/abi.h) */
#define VM_CODE_ADDRESS_ALIGNMENT 2u
#define VM_MAXIMUM_CODE_SIZE (32u * 1024u * 1024u)
#define VM_MAXIMUM_JUMP_TABLE_ENTRIES (16u * 1024u * 1024u)
#define VM_MAXIMUM_IMPORT_COUNT 1024u

/* Fixed addresses inside the sandbox process (native side). */
#define VM_ADDR_NATIVE_CODE 0x100000000ull
#define VM_ADDR_VMCTX 0x400000000ull
#define VM_ADDR_SIGSTACK 0x500000000ull
#define VM_ADDR_NATIVE_STACK_LOW 0x600000000ull
#define VM_ADDR_NATIVE_STACK_SIZE 0x4000ull
#define VM_ADDR_NATIVE_STACK_HIGH (VM_ADDR_NATIVE_STACK_LOW + VM_ADDR_NATIVE_STACK_SIZE)
#define VM_ADDR_SHARED_MEMORY 0x700000000ull
#define VM_ADDR_JUMP_TABLE 0x800000000ull
#define VM_ADDR_GUEST_MEMORY 0x1000000000ull
/* The recompiler's view of the VmCtx: the same page mapped a second time
 * right below guest memory, so generated code reaches every field from its
 * guest-memory base register with a 32-bit displacement (VM_ADDR_VMCTX is
 * out of reach of one).  Guest addresses are zero-extended 32-bit offsets
 * from VM_ADDR_GUEST_MEMORY, so the guest can never touch it. */
#define VM_ADDR_VMCTX_ALIAS (VM_ADDR_GUEST_MEMORY - 0x1000ull)
#define VM_GUEST_MEMORY_SIZE 0x100000000ull
/* The interpreter sandbox: past the 4 GiB window a little slack (the widest
 * access starting at 0xffffffff), then one permission byte per page (sized
 * for the smallest page), then the host-built threaded code (read only). */
#define VM_GUEST_MEMORY_SLACK 0x10000ull
#define VM_GUEST_PERMS_SIZE (VM_GUEST_MEMORY_SIZE / VM_MIN_PAGE_SIZE)
#define VM_ADDR_GUEST_PERMS 0x1800000000ull
#define VM_ADDR_INTERP_MODULE 0x2000000000ull

/* Descriptor numbers the zygote finds its resources at. */
#define VM_FD_VMCTX 3
#define VM_FD_GUEST_MEMORY 4
#define VM_FD_LIFETIME 5
#define VM_FD_SOCKET 6 /* unix socket: the host passes module memfds (SCM_RIGHTS) */
#define VM_FD_LAST VM_FD_SOCKET
/* A module memfd received over VM_FD_SOCKET lands here (0..2 are closed, so
 * the kernel hands out the lowest free number); the zygote maps it and
 * closes it at once. */
#define VM_FD_RECEIVED 0

/* vmctx.init.flags: start-up options from the host (never guest-reachable). */
#define VM_INIT_FLAG_TEST_FORBIDDEN_SYSCALL (1u << 0) /* test hook: die by seccomp on the first run */
#define VM_INIT_FLAG_NO_SECCOMP (1u << 1)             /* skip seccomp (debugging; isolation_report shows it) */

/* vmctx.isolation: what the zygote put in place (bits). */
#define VM_ISO_NS_USER (1u << 0)
#define VM_ISO_NS_PID (1u << 1)
#define VM_ISO_NS_MOUNT (1u << 2)
#define VM_ISO_NS_NET (1u << 3)
#define VM_ISO_NS_IPC (1u << 4)
#define VM_ISO_NS_UTS (1u << 5)
#define VM_ISO_NS_CGROUP (1u << 6)
#define VM_ISO_UID_MAP (1u << 7)
#define VM_ISO_PIVOT_ROOT (1u << 8)
#define VM_ISO_CAPS_DROPPED (1u << 9)
#define VM_ISO_NO_NEW_PRIVS (1u << 10)
#define VM_ISO_RLIMITS (1u << 11)
#define VM_ISO_PDEATHSIG (1u << 12)
#define VM_ISO_LIFETIME_PIPE (1u << 13)
#define VM_ISO_SECCOMP (1u << 14)
#define VM_ISO_CLOSE_RANGE (1u << 15)
#define VM_ISO_SEALED_EXEC (1u << 16)
#define VM_ISO_ROBUST_FUTEX (1u << 17)
#define VM_ISO_RLIMIT_AS (1u << 18)

typedef struct vmctx_heap_info {
    _Atomic uint64_t heap_top;
    _Atomic uint64_t heap_threshold;
} vmctx_heap_info;

typedef struct vmctx_counters {
    _Atomic uint64_t syscall_wait_loop_start;
    _Atomic uint64_t syscall_futex_wait;
} vmctx_counters;

/* One-time start-up arguments handed to the zygote. */
typedef struct vmctx_init {
    _Atomic uint64_t stack_address;
    _Atomic uint64_t stack_length;
    _Atomic uint64_t vdso_address;
    _Atomic uint64_t vdso_length;
    _Atomic uint32_t flags;
    _Atomic uint32_t spin_iterations;
} vmctx_init;

typedef struct vmctx {
    /* Cache line 0: the handshake. */
    _Alignas(VMCTX_CACHE_LINE) _Atomic uint32_t futex;
    _Atomic uint32_t program_counter;
    _Atomic uint64_t jump_into;
    _Atomic uint64_t next_native_program_counter;
    _Atomic uint32_t next_program_counter;
    _Atomic uint32_t arg;  /* ecalli: the number; page fault: the page; trap: the vm_trap_reason */
    _Atomic uint32_t arg2;
    /* Process sandbox: a side about to futex_wait says so first (seq_cst),
     * so the other side only pays for futex_wake when someone sleeps. */
    _Atomic uint32_t sandbox_sleeping;
    _Atomic uint32_t host_sleeping;
    /* Host asks a running guest to stop at its next block (kept until
     * cleared; the zygote is poked with SIGUSR1 to look at it). */
    _Atomic uint32_t interrupt;
    /* Native code: 1 "enter at program_counter", 0 "resume where the last
     * exit left off".  Only the host writes it, and only when it changes:
     * repeated calls and a run of hostcalls leave the line untouched. */
    _Atomic uint32_t enter;

    /* Cache line 1: gas, decremented by generated code at every block. */
    _Alignas(VMCTX_CACHE_LINE) _Atomic int64_t gas;

    /* Cache line 2 on: guest-visible state synchronised at exits. */
    _Alignas(VMCTX_CACHE_LINE) _Atomic uint64_t regs[VMCTX_REG_COUNT];
    vmctx_heap_info heap_info;

    _Atomic uint64_t shm_memory_map_offset;
    _Atomic uint64_t shm_memory_map_count;
    _Atomic uint64_t shm_code_offset;
    _Atomic uint64_t shm_code_length;
    _Atomic uint64_t shm_jump_table_offset;
    _Atomic uint64_t shm_jump_table_length;
    _Atomic uint64_t sysreturn_address;

    _Atomic uint32_t uffd_enabled;
    uint32_t heap_base;
    uint32_t heap_initial_threshold;
    uint32_t heap_max_size;
    uint32_t page_size;

    _Alignas(VMCTX_CACHE_LINE) vmctx_counters counters;

    vmctx_init init;

    uint32_t message_length;
    char message_buffer[VMCTX_MESSAGE_BUFFER_SIZE];

    /* Process sandbox (interpreter) additions. */
    _Atomic uint64_t module_generation; /* bumped by the host for each module fd it sends */
    _Atomic uint32_t death_futex;       /* robust-futex word: the kernel wakes it when the zygote dies */
    _Atomic uint32_t isolation;         /* VM_ISO_* the zygote put in place */
    uint32_t heap_grow_pages;
    int32_t sandbox_cpu;                /* the core the zygote pins itself to (-1: none) */
    uint32_t host_uid;                  /* for the sandbox's uid/gid maps */
    uint32_t host_gid;

    /* Recompiler (x86-64) additions: VMCTX_STUB_* entry points generated
     * code jumps to (exits) or calls (helpers). */
    _Alignas(8) _Atomic uint64_t exit_stubs[VMCTX_STUB_COUNT];
    /* Guest pages whose permissions changed since the zygote last mirrored
     * them into page protections for native code (page indices, end
     * exclusive; first >= end: none).  Written by whichever side holds the
     * context. */
    uint32_t perms_dirty_first;
    uint32_t perms_dirty_end;
} vmctx;

/* Offsets generated code bakes in; changing them is an ABI break. */
#define VMCTX_OFFSET_FUTEX 0
#define VMCTX_OFFSET_GAS 0x40
#define VMCTX_OFFSET_REGS 0x80

/* The host's page (x86-64 Linux): the VmCtx is one such shared page, and
 * a shared module's parts are aligned to it. */
#define VM_HOST_PAGE_SIZE 4096u

_Static_assert(sizeof(vmctx) <= VM_HOST_PAGE_SIZE, "the VmCtx must fit in one page");
_Static_assert(offsetof(vmctx, futex) == VMCTX_OFFSET_FUTEX, "futex offset");
_Static_assert(offsetof(vmctx, gas) == VMCTX_OFFSET_GAS, "gas offset");
_Static_assert(offsetof(vmctx, regs) == VMCTX_OFFSET_REGS, "regs offset");
_Static_assert(offsetof(vmctx, counters) % VMCTX_CACHE_LINE == 0, "counters are cache aligned");
_Static_assert(offsetof(vmctx, enter) < VMCTX_OFFSET_GAS, "the handshake words share the first cache line");
_Static_assert(sizeof(_Atomic uint32_t) == 4 && sizeof(_Atomic uint64_t) == 8,
               "atomics must have the plain type's size to be shared between processes");
_Static_assert(ATOMIC_INT_LOCK_FREE == 2 && ATOMIC_LLONG_LOCK_FREE == 2,
               "shared atomics must be lock-free");

/* Every public field, for introspection: VMCTX_FIELD(name, member-expression). */
#define VMCTX_FIELDS(X)                                        \
    X("futex", futex)                                          \
    X("program_counter", program_counter)                      \
    X("jump_into", jump_into)                                  \
    X("next_native_program_counter", next_native_program_counter) \
    X("next_program_counter", next_program_counter)            \
    X("arg", arg)                                              \
    X("arg2", arg2)                                            \
    X("gas", gas)                                              \
    X("regs", regs)                                            \
    X("heap_info", heap_info)                                  \
    X("heap_info.heap_top", heap_info.heap_top)                \
    X("heap_info.heap_threshold", heap_info.heap_threshold)    \
    X("shm_memory_map_offset", shm_memory_map_offset)          \
    X("shm_memory_map_count", shm_memory_map_count)            \
    X("shm_code_offset", shm_code_offset)                      \
    X("shm_code_length", shm_code_length)                      \
    X("shm_jump_table_offset", shm_jump_table_offset)          \
    X("shm_jump_table_length", shm_jump_table_length)          \
    X("sysreturn_address", sysreturn_address)                  \
    X("uffd_enabled", uffd_enabled)                            \
    X("heap_base", heap_base)                                  \
    X("heap_initial_threshold", heap_initial_threshold)        \
    X("heap_max_size", heap_max_size)                          \
    X("page_size", page_size)                                  \
    X("counters", counters)                                    \
    X("counters.syscall_wait_loop_start", counters.syscall_wait_loop_start) \
    X("counters.syscall_futex_wait", counters.syscall_futex_wait) \
    X("init", init)                                            \
    X("message_length", message_length)                        \
    X("message_buffer", message_buffer)                        \
    X("sandbox_sleeping", sandbox_sleeping)                    \
    X("host_sleeping", host_sleeping)                          \
    X("interrupt", interrupt)                                  \
    X("enter", enter)                                          \
    X("module_generation", module_generation)                  \
    X("death_futex", death_futex)                              \
    X("isolation", isolation)                                  \
    X("heap_grow_pages", heap_grow_pages)                      \
    X("sandbox_cpu", sandbox_cpu)                              \
    X("host_uid", host_uid)                                    \
    X("host_gid", host_gid)                              \
    X("exit_stubs", exit_stubs)                                \
    X("perms_dirty_first", perms_dirty_first)                  \
    X("perms_dirty_end", perms_dirty_end)

#define VMCTX_FUTEX_STATES(X)                         \
    X("BUSY", VMCTX_FUTEX_BUSY)                       \
    X("IDLE", VMCTX_FUTEX_IDLE)                       \
    X("ECALLI", VMCTX_FUTEX_GUEST_ECALLI)             \
    X("TRAP", VMCTX_FUTEX_GUEST_TRAP)                 \
    X("SIGNAL", VMCTX_FUTEX_GUEST_SIGNAL)             \
    X("STEP", VMCTX_FUTEX_GUEST_STEP)                 \
    X("NOT_ENOUGH_GAS", VMCTX_FUTEX_GUEST_NOT_ENOUGH_GAS) \
    X("PAGEFAULT", VMCTX_FUTEX_GUEST_PAGEFAULT)       \
    X("LONGJUMP", VMCTX_FUTEX_LONGJUMP)

#define VMCTX_ADDRESSES(X)                                   \
    X("VM_ADDR_RETURN_TO_HOST", VM_ADDR_RETURN_TO_HOST)      \
    X("VM_MIN_PAGE_SIZE", VM_MIN_PAGE_SIZE)                  \
    X("VM_MAX_PAGE_SIZE", VM_MAX_PAGE_SIZE)                  \
    X("VM_CODE_ADDRESS_ALIGNMENT", VM_CODE_ADDRESS_ALIGNMENT) \
    X("VM_MAXIMUM_CODE_SIZE", VM_MAXIMUM_CODE_SIZE)          \
    X("VM_MAXIMUM_JUMP_TABLE_ENTRIES", VM_MAXIMUM_JUMP_TABLE_ENTRIES) \
    X("VM_MAXIMUM_IMPORT_COUNT", VM_MAXIMUM_IMPORT_COUNT)    \
    X("VM_ADDR_NATIVE_CODE", VM_ADDR_NATIVE_CODE)            \
    X("VM_ADDR_VMCTX", VM_ADDR_VMCTX)                        \
    X("VM_ADDR_SIGSTACK", VM_ADDR_SIGSTACK)                  \
    X("VM_ADDR_NATIVE_STACK_LOW", VM_ADDR_NATIVE_STACK_LOW)  \
    X("VM_ADDR_NATIVE_STACK_HIGH", VM_ADDR_NATIVE_STACK_HIGH) \
    X("VM_ADDR_SHARED_MEMORY", VM_ADDR_SHARED_MEMORY)        \
    X("VM_ADDR_JUMP_TABLE", VM_ADDR_JUMP_TABLE)              \
    X("VM_ADDR_GUEST_MEMORY", VM_ADDR_GUEST_MEMORY)          \
    X("VM_ADDR_VMCTX_ALIAS", VM_ADDR_VMCTX_ALIAS)            \
    X("VM_GUEST_MEMORY_SIZE", VM_GUEST_MEMORY_SIZE)          \
    X("VM_GUEST_MEMORY_SLACK", VM_GUEST_MEMORY_SLACK)        \
    X("VM_GUEST_PERMS_SIZE", VM_GUEST_PERMS_SIZE)            \
    X("VM_ADDR_GUEST_PERMS", VM_ADDR_GUEST_PERMS)            \
    X("VM_ADDR_INTERP_MODULE", VM_ADDR_INTERP_MODULE)

#endif
