/* The guest ABI: the one definition of what every engine (interpreter,
 * recompiler, zygote) and the Python layer (vmcore.abi) agree on about a
 * guest — register file, calling convention, why a run stopped, what an
 * entry refusal means, page permissions and page sizes.
 *
 * Freestanding (no libc): the zygote includes it.  Python never re-types
 * these numbers: VM_ABI_CONSTANTS below is exported to vmcore.abi through
 * include/vmcore/abi_table.h.
 */
#ifndef VMCORE_ABI_H
#define VMCORE_ABI_H

#include <stdint.h>

/* The register file: ra, sp, t0-t2, s0-s1, a0-a5 (PolkaVM's order). */
#define VM_REG_COUNT 13
#define VM_REG_RA 0
#define VM_REG_SP 1
#define VM_REG_T0 2
#define VM_REG_T1 3
#define VM_REG_T2 4
#define VM_REG_S0 5
#define VM_REG_S1 6
#define VM_REG_A0 7
#define VM_REG_A1 8
#define VM_REG_A2 9
#define VM_REG_A3 10
#define VM_REG_A4 11
#define VM_REG_A5 12

/* Call arguments in the reference calling convention's order: a0-a5, then
 * t0-t2 (X(position, register, name)). */
#define VM_ARG_REGS(X) \
    X(0, VM_REG_A0, "a0") X(1, VM_REG_A1, "a1") X(2, VM_REG_A2, "a2") X(3, VM_REG_A3, "a3") \
    X(4, VM_REG_A4, "a4") X(5, VM_REG_A5, "a5") X(6, VM_REG_T0, "t0") X(7, VM_REG_T1, "t1") X(8, VM_REG_T2, "t2")
#define VM_ARG_REG_COUNT 9
/* Registers a hostcall receives as arguments (a0-a5) and may return
 * values in: a0, a1, ... in that order (a0-a5: the argument registers,
 * caller-saved, so a guest's code never relies on them across an ecalli). */
#define VM_HOSTCALL_ARG_COUNT 6
#define VM_HOSTCALL_RETURN_COUNT 6

/* A guest that jumps here returns to the host (ra of a host-made call). */
#define VM_ADDR_RETURN_TO_HOST 0xffff0000u

/* Why a run stopped.  0-7 come from the engines; the last two are the
 * hostcall loop's (the engine's Cython layer): a hostcall raised, or the
 * instance is already in a call. */
typedef enum vm_exit {
    VM_EXIT_FINISHED = 0,  /* jumped to VM_ADDR_RETURN_TO_HOST */
    VM_EXIT_TRAP = 1,      /* panic: trap, invalid instruction or jump, end of code */
    VM_EXIT_ECALLI = 2,    /* hostcall; arg = number, next_pc = where to resume */
    VM_EXIT_OUT_OF_GAS = 3,/* at a block start; gas unchanged, pc = the block */
    VM_EXIT_PAGEFAULT = 4, /* arg = page address; resumable (retries the access) */
    VM_EXIT_STEP = 5,      /* single-step: about to execute pc */
    VM_EXIT_INTERRUPTED = 6, /* the host asked the guest to stop (deadline) */
    VM_EXIT_YIELD = 7,     /* ran `fuel` blocks; resumable (lets the host drop the GIL) */
    VM_EXIT_HOSTCALL_ERROR = 100, /* a hostcall raised (the error is kept by the engine) */
    VM_EXIT_BUSY = 101,    /* the instance is already running a call */
    VM_EXIT_HOSTCALL_OUT_OF_GAS = 102, /* a hostcall's gas= cost exceeds the gas left; it did not run */
} vm_exit;

/* Why a guest panicked: the arg of a VM_EXIT_TRAP (vmctx.arg across the
 * process boundary).  Every engine reports the same reason for the same
 * program; none of them changes the exit code or the gas charged. */
typedef enum vm_trap_reason {
    VM_TRAP_INSTRUCTION = 1,         /* the `trap` instruction */
    VM_TRAP_INVALID_INSTRUCTION = 2, /* an undefined opcode, or no instruction start where one must be */
    VM_TRAP_INVALID_JUMP = 3,        /* a jump/branch target that is not a basic block start, or a dynamic
                                      * jump to an address that is 0, misaligned or not in the jump table */
    VM_TRAP_END_OF_CODE = 4,         /* ran off the end of the code */
    VM_TRAP_MEMORY_ACCESS = 5,       /* an access panics rather than faults (VM_LOW_MEMORY_PANIC_LIMIT,
                                      * or reaching past 0xffffffff with the top page accessible) */
    VM_TRAP_REASON_LIMIT = 6,        /* one past the last valid reason */
} vm_trap_reason;

/* What setting the pc (entering a guest) can refuse with. */
#define VM_ENTRY_OK 0
#define VM_ENTRY_NOT_AN_INSTRUCTION (-1) /* pc is not the start of an instruction one may enter at */
#define VM_ENTRY_OUT_OF_GAS (-2)         /* not enough gas to enter the block containing pc */

/* Page permissions (one byte per guest page). */
#define VM_PERM_NONE 0
#define VM_PERM_READ 1
#define VM_PERM_WRITE 2 /* implies read */

/* Guest page sizes: a power of two in [MIN, MAX]; DEFAULT unless asked. */
#define VM_MIN_PAGE_SIZE 0x1000u
#define VM_MAX_PAGE_SIZE 0x10000u
#define VM_DEFAULT_PAGE_SIZE 0x1000u

/* Pages whose address is below this stop the guest with a panic instead
 * of a page fault (the Gray Paper's inaccessible low zone, 64 KiB).
 * PolkaVM 0.35's interpreter reports a page fault for some of these
 * accesses (its guard there is 16 KiB); vmcore follows the Gray Paper, and
 * the reference fuzzer normalises such results (vmcore/fuzz_reference.py). */
#define VM_LOW_MEMORY_PANIC_LIMIT 0x10000u

/* Every scalar above, for vmcore.abi (X(python name, value)). */
#define VM_ABI_CONSTANTS(X) \
    X("REG_COUNT", VM_REG_COUNT) X("REG_RA", VM_REG_RA) X("REG_SP", VM_REG_SP) \
    X("REG_T0", VM_REG_T0) X("REG_T1", VM_REG_T1) X("REG_T2", VM_REG_T2) X("REG_S0", VM_REG_S0) \
    X("REG_S1", VM_REG_S1) X("REG_A0", VM_REG_A0) X("REG_A1", VM_REG_A1) X("REG_A2", VM_REG_A2) \
    X("REG_A3", VM_REG_A3) X("REG_A4", VM_REG_A4) X("REG_A5", VM_REG_A5) \
    X("ARG_REG_COUNT", VM_ARG_REG_COUNT) X("HOSTCALL_ARG_COUNT", VM_HOSTCALL_ARG_COUNT) \
    X("HOSTCALL_RETURN_COUNT", VM_HOSTCALL_RETURN_COUNT) \
    X("RETURN_TO_HOST", VM_ADDR_RETURN_TO_HOST) \
    X("EXIT_FINISHED", VM_EXIT_FINISHED) X("EXIT_TRAP", VM_EXIT_TRAP) X("EXIT_ECALLI", VM_EXIT_ECALLI) \
    X("EXIT_OUT_OF_GAS", VM_EXIT_OUT_OF_GAS) X("EXIT_PAGEFAULT", VM_EXIT_PAGEFAULT) \
    X("EXIT_STEP", VM_EXIT_STEP) X("EXIT_INTERRUPTED", VM_EXIT_INTERRUPTED) X("EXIT_YIELD", VM_EXIT_YIELD) \
    X("EXIT_HOSTCALL_ERROR", VM_EXIT_HOSTCALL_ERROR) X("EXIT_BUSY", VM_EXIT_BUSY) \
    X("EXIT_HOSTCALL_OUT_OF_GAS", VM_EXIT_HOSTCALL_OUT_OF_GAS) \
    X("TRAP_INSTRUCTION", VM_TRAP_INSTRUCTION) X("TRAP_INVALID_INSTRUCTION", VM_TRAP_INVALID_INSTRUCTION) \
    X("TRAP_INVALID_JUMP", VM_TRAP_INVALID_JUMP) X("TRAP_END_OF_CODE", VM_TRAP_END_OF_CODE) \
    X("TRAP_MEMORY_ACCESS", VM_TRAP_MEMORY_ACCESS) X("TRAP_REASON_LIMIT", VM_TRAP_REASON_LIMIT) \
    X("ENTRY_OK", VM_ENTRY_OK) X("ENTRY_NOT_AN_INSTRUCTION", VM_ENTRY_NOT_AN_INSTRUCTION) \
    X("ENTRY_OUT_OF_GAS", VM_ENTRY_OUT_OF_GAS) \
    X("PERM_NONE", VM_PERM_NONE) X("PERM_READ", VM_PERM_READ) X("PERM_WRITE", VM_PERM_WRITE) \
    X("MIN_PAGE_SIZE", VM_MIN_PAGE_SIZE) X("MAX_PAGE_SIZE", VM_MAX_PAGE_SIZE) \
    X("DEFAULT_PAGE_SIZE", VM_DEFAULT_PAGE_SIZE) X("LOW_MEMORY_PANIC_LIMIT", VM_LOW_MEMORY_PANIC_LIMIT)

#endif
