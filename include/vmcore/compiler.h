/* The recompiler: guest code -> x86-64 machine code, in one O(n) pass.
 *
 * Runs in the host (generated code is only data there); the sandbox maps
 * the result executable and jumps into it.  Results are bit-identical to
 * the interpreter (interp.c): registers, memory, gas, pc, exit reason and
 * page-fault address, for every program.
 *
 * ---------------------------------------------------------------- contract
 * What generated code expects of the sandbox process that runs it:
 *
 *   VM_ADDR_NATIVE_CODE   the code (read + execute), at exactly
 *                         vm_x64_config.code_address (the jump table holds
 *                         absolute addresses; everything else is relative);
 *   VM_ADDR_JUMP_TABLE    the native jump table (read only): one 8-byte
 *                         absolute address per guest jump-table slot, 0 for
 *                         a slot that is not a valid jump target;
 *   VM_ADDR_GUEST_MEMORY  the 4 GiB guest window: PROT_NONE except the
 *                         guest's accessible pages, whose protections mirror
 *                         the permission map (VM_PERM_READ -> PROT_READ,
 *                         VM_PERM_WRITE -> PROT_READ | PROT_WRITE) at all
 *                         times (host-side permission changes and sbrk
 *                         included); then its slack, inaccessible
 *                         (see Faults);
 *   VM_ADDR_VMCTX_ALIAS   the VmCtx page mapped a second time (the same
 *                         shared page as at VM_ADDR_VMCTX), read + write;
 *   vmctx.exit_stubs[]    VMCTX_STUB_* addresses (vmctx.h);
 *   a native stack        rsp valid (any alignment) with 256 bytes free;
 *                         the helpers run on it.
 *
 * Register use: guest register i lives in vm_x64_guest_regs[i] for the
 * whole run; rax is scratch (it holds the guest address of some memory
 * accesses: the fault handler reads which off the instruction); r15 holds VM_ADDR_GUEST_MEMORY; rsp is the
 * native stack.  The VmCtx is reached as [r15 + VM_X64_VMCTX_DISP +
 * offsetof(vmctx, field)].
 *
 * Entering: set vmctx.regs, vmctx.gas and vmctx.next_native_program_counter
 * (an absolute address: from vm_x64_enter() to start a call, or as the last
 * exit left it to resume), then jump to code_address + entry_trampoline
 * (what vmctx.jump_into / sysreturn_address should hold) with any rsp.  The
 * trampoline loads r15 and the guest registers and jumps on.
 *
 * Exits: generated code stores the guest registers to vmctx.regs, sets
 * vmctx.program_counter and, per exit, next_program_counter / arg /
 * next_native_program_counter (absolute: where to resume), then jumps to
 * vmctx.exit_stubs[VMCTX_STUB_*] with rsp as it was at entry:
 *   FINISHED        pc = the dynamic jump to VM_ADDR_RETURN_TO_HOST
 *   TRAP            pc = the instruction (not resumable)
 *   ECALLI          pc, next_program_counter, arg = hostcall number;
 *                   resuming continues after the ecalli
 *   NOT_ENOUGH_GAS  pc = the block start, the charge still applied and
 *                   next_native_program_counter 0 (or memset's, from its
 *                   helper): the sandbox calls vm_x64_out_of_gas() to undo
 *                   the charge and set where to resume; resuming re-charges
 *   PAGEFAULT       (memset only) arg = page; resuming retries
 *   STEP            (step tracing) pc = the next instruction; resuming runs it
 * Helpers, entered with `call` (SysV ABI, stack aligned) with the guest
 * registers stored in vmctx.regs (they may change them: generated code
 * reloads them after):
 *   SBRK    uint32_t sbrk(uint32_t size): vm_heap_sbrk() on the sandbox's
 *           heap state, then mprotect what it made accessible; returns the
 *           new heap top or 0
 *   MEMSET  uint32_t memset(uint32_t gas_metering): vm_x64_memset() on
 *           vmctx.regs / vmctx.gas (and vmctx.arg = the fault address on
 *           a page fault); returns 0 to continue, else the VMCTX_STUB_*
 *           exit to leave by (program_counter / next_native_program_counter
 *           already point at the memset)
 *
 * Faults: an access to a PROT_NONE / read-only page raises SIGSEGV inside
 * the generated code.  The handler (on its own signal stack), when rip is
 * in [code_address, code_address + code_size), calls vm_x64_resolve_fault()
 * with rip - code_address, the context's registers and
 * vmctx.program_counter.  It
 * names the guest pc and whether the interpreter would report a PAGEFAULT
 * (arg = the lowest faulting page; resumable at code_address + resume) or
 * a TRAP (the < 0x10000 panic zone, the address-overflow rule), or -1 for a
 * real crash.  For a guest fault the handler stores the guest registers
 * from the signal context (vm_x64_guest_regs says where each is) to
 * vmctx.regs, sets program_counter / arg / next_native_program_counter and
 * returns into exit_stubs[stub] (like an exit; rsp may be left as is).
 * An access through a register is not bounds-checked: its guest address
 * (in rax, or -- in a 32-bit program, whose registers generated code keeps
 * zero-extended -- the register itself plus a displacement below
 * VM_GUEST_MEMORY_SLACK) indexes the window.  One whose end reaches or
 * passes 0xffffffff starts in the window's top host page
 * (VM_X64_GUARD_PAGE), one that should wrap starts in the slack after the
 * window: the sandbox keeps both (VM_X64_GUARD_BYTES from the top page)
 * PROT_NONE while native code runs whatever the guest may do there.  So
 * every such access faults and
 * the handler (which reads the address off the instruction) decides: the
 * overflow rule, or -- for an access the guest may make at the wrapped
 * address or in the top page -- VM_X64_FAULT_EMULATE: the sandbox makes the
 * guard accessible, runs vm_x64_emulate_access() on the faulting
 * instruction, protects the guard again and resumes after it.  (memset, in the sandbox's helper, needs
 * the page accessible too when the guest may write it.)  An absolute
 * address that reaches 0xffffffff never touches memory: it goes to a probe
 * of the top page (module.overflow_probe), which either exits with a TRAP
 * or faults there with the registers intact.
 *
 * Deadlines: with gas metering on (or vm_x64_config.interruptible), every
 * block starts with `sub qword [gas], cost; jl out_of_gas` (interruptible
 * without metering: `cmp qword [gas], 0; jl ...`, same length).  To stop a
 * running guest, the sandbox's signal handler (SIGUSR1), when rip is inside
 * the generated code, subtracts VM_X64_INTERRUPT_GAS_BIAS from vmctx.gas
 * (generated code updates gas with single read-modify-write instructions,
 * so it cannot be lost; outside generated code -- in a helper -- it should
 * try again shortly): the next block start exits through NOT_ENOUGH_GAS at
 * that block with the charge undone; the sandbox adds the bias back and
 * reports INTERRUPTED (tests/native/runner.c does exactly this).  With
 * `interruptible` and no metering the charge is 0: keep vmctx.gas >= 0
 * (say 0) or the first block exits; and there a forward jump enters its
 * target past the check (a guest can only run forever through backward
 * and dynamic jumps, which land on it).  Without metering and without
 * `interruptible`, nothing is emitted at block starts and a runaway guest
 * can only be killed.
 */
#ifndef VMCORE_COMPILER_H
#define VMCORE_COMPILER_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "vmcore/decoder.h"
#include "vmcore/gas.h"
#include "vmcore/interp.h"
#include "vmcore/vmctx.h"
#include "vmcore/x64_asm.h"

/* Where each guest register lives (hardware register numbers). */
extern const uint8_t vm_x64_guest_regs[VM_REG_COUNT];
#define VM_X64_SCRATCH X64_RAX
#define VM_X64_MEMBASE X64_R15
/* The VmCtx alias relative to the guest-memory base register. */
#define VM_X64_VMCTX_DISP ((int32_t)((int64_t)VM_ADDR_VMCTX_ALIAS - (int64_t)VM_ADDR_GUEST_MEMORY))
/* 2^63, applied with wrapping arithmetic (signed atomics wrap, C11
 * 7.17.7.5; the helpers below use unsigned arithmetic): every gas value a
 * running guest can have (0..INT64_MAX) becomes negative, so the next block
 * start exits whatever the gas, and comes back exactly. */
#define VM_X64_INTERRUPT_GAS_BIAS (-0x7fffffffffffffffll - 1)
static inline int64_t vm_x64_gas_bias(int64_t gas)
{
    return (int64_t)((uint64_t)gas - (uint64_t)VM_X64_INTERRUPT_GAS_BIAS);
}
static inline int64_t vm_x64_gas_unbias(int64_t gas)
{
    return (int64_t)((uint64_t)gas + (uint64_t)VM_X64_INTERRUPT_GAS_BIAS);
}

typedef struct vm_x64_config {
    int isa;              /* vm_isa */
    int gas_metering;     /* charge gas per basic block */
    int step_tracing;     /* exit before every instruction (VMCTX_STUB_STEP) */
    int interruptible;    /* without metering: still check the gas word at block starts (see above) */
    vm_gas_model gas;     /* the cost model (gas.h); all-zero = naive */
    uint64_t code_address;/* where the code will run (VM_ADDR_NATIVE_CODE) */
    int parallel;         /* code of VM_X64_PARALLEL_MIN bytes or more: two threads, each compiling half */
    uint32_t split_hint;  /* tests: always split, at the first block start at or after this offset */
    int populate;         /* prefault the output a stretch ahead, a batch at a time (MADV_POPULATE_WRITE) */
} vm_x64_config;

/* Below this much guest code a second thread costs more than it saves.
 * With a split, the second half's code starts where the first half's
 * worst-case bound ends: code_size then spans an untouched hole. */
#define VM_X64_PARALLEL_MIN (64u * 1024u)

/* What the pc map says about one guest instruction (the implicit traps
 * included); records are in program order, sorted by pc and by native
 * offset alike. */
typedef struct vm_x64_map_entry {
    uint32_t pc;
    uint32_t entry; /* native offset where running this pc begins (step exit, gas charge, body) */
    uint32_t body;  /* native offset of the instruction's own code (a fault retries from here) */
    uint32_t info;  /* VM_X64_INFO_*: the vm_op, and flags */
} vm_x64_map_entry;

#define VM_X64_INFO_OP_MASK 0xffu          /* vm_op (VM_OP_INVALID for an implicit trap) */
#define VM_X64_INFO_BLOCK_START (1u << 8)  /* first instruction of a basic block */
#define VM_X64_INFO_ENTRY_OK (1u << 9)     /* the host may start a call here */
#define VM_X64_INFO_LOAD (1u << 10)        /* the body reads guest memory at [r15 + rax] */
#define VM_X64_INFO_STORE (1u << 11)       /* the body writes guest memory at [r15 + rax] */
#define VM_X64_INFO_SIZE_SHIFT 12          /* log2 of the access size (2 bits) */
#define VM_X64_INFO_JUMP_TARGET (1u << 14) /* a valid jump target (vm_is_basic_block_start) */
#define VM_X64_INFO_MASK 0x7fffu

/* The map as stored: 4 bytes per instruction.  A record is the info bits
 * plus how far its pc and native entry are past the previous record's;
 * every VM_X64_MARK_EVERY records, and wherever a distance does not fit,
 * a mark holds the absolute pc and entry instead (the record's distances
 * are then 0).  Lookups binary-search the marks and walk at most one
 * group.  The body follows from the entry: the step exit and the gas
 * charge have fixed lengths. */
#define VM_X64_REC_PC_SHIFT 15
#define VM_X64_REC_PC_MAX 31u
#define VM_X64_REC_ENTRY_SHIFT 20
#define VM_X64_REC_ENTRY_MAX 4095u
#define VM_X64_MARK_EVERY 64u
#define VM_X64_STEP_BYTES 9u   /* call step_routine; .long pc */
#define VM_X64_CHARGE_BYTES 17u /* sub (or cmp) qword [gas], imm32; jl oog_stub */
#define VM_X64_CHARGE_COST_AT 7u /* the cost (u32) in it; also after the jmp of a charge > 2^31 */

typedef struct vm_x64_mark {
    uint32_t index; /* the record it marks */
    uint32_t pc;
    uint32_t entry;
} vm_x64_mark;

typedef struct vm_x64_map {
    const uint32_t *records;
    const vm_x64_mark *marks;
    uint32_t count;      /* records */
    uint32_t mark_count;
} vm_x64_map;

typedef struct vm_x64_module {
    uint64_t code_address;
    uint32_t code_size;        /* bytes of code written (the gap included) */
    uint32_t gap_start;        /* [gap_start, gap_end): between two halves' code, never written */
    uint32_t gap_end;
    uint32_t first_insn;       /* offset of the first instruction's code (shared routines before it) */
    uint32_t entry_trampoline; /* offset: load registers, jump to next_native_program_counter */
    uint32_t overflow_probe;   /* offset of the instruction that probes the top page (see resolve_fault) */
    uint32_t map_count;        /* records */
    uint32_t mark_count;
    uint32_t jump_table_count;
    uint32_t code_len;         /* guest code bytes */
    int isa;
    int is_64_bit;
    int gas_metering;
    int step_tracing;
    int charges;               /* blocks start with a gas check (metering or interruptible) */
} vm_x64_module;

/* Why a compile failed (X(name, code, message); vmcore.abi.COMPILE_ERRORS):
 * bad isa / arguments; an output buffer smaller than vm_x64_bounds() said;
 * scratch allocation failed; code past VM_MAXIMUM_CODE_SIZE or native code
 * past 2 GiB. */
#define VM_X64_ERRORS(X) \
    X(VM_X64_ERR_CONFIG, -1, "bad configuration") \
    X(VM_X64_ERR_SPACE, -2, "output buffer too small (internal budget exceeded)") \
    X(VM_X64_ERR_NOMEM, -3, "out of memory") \
    X(VM_X64_ERR_TOO_BIG, -4, "program too big")

enum {
    VM_X64_OK = 0,
#define VM_X64_ERROR_ENUM(name, code, message) name = code,
    VM_X64_ERRORS(VM_X64_ERROR_ENUM)
#undef VM_X64_ERROR_ENUM
};

/* Capacities vm_x64_compile needs: code bytes, map records and marks. */
typedef struct vm_x64_capacity {
    size_t code;
    size_t records;
    size_t marks;
} vm_x64_capacity;
void vm_x64_bounds(const uint8_t *code, uint32_t code_len, const uint8_t *bitmask, const vm_x64_config *config,
                   vm_x64_capacity *capacity);

/* Compile.  `code_out`, `records_out` and `marks_out` have the capacities
 * vm_x64_bounds gave, `jump_table_out` jump_table_count entries.  Returns
 * VM_X64_OK or a VM_X64_ERR_*.  Thread-safe; needs vm_decoder_init() done
 * once.  Of the outputs it writes exactly the module: code [0, gap_start)
 * and [gap_end, code_size), map_count records, mark_count marks and the
 * jump table, so memory that was zeros elsewhere still is. */
int vm_x64_compile(const vm_x64_config *config, const uint8_t *code, uint32_t code_len, const uint8_t *bitmask,
                   const uint32_t *jump_table_targets, uint32_t jump_table_count, const vm_x64_capacity *capacity,
                   uint8_t *code_out, uint64_t *jump_table_out, uint32_t *records_out, vm_x64_mark *marks_out,
                   vm_x64_module *module);

/* Map lookups: the record for guest `pc`, or the last record whose code
 * starts at or before native `offset`; its index (and *out), or -1 when
 * there is none.  vm_x64_map_read fills out[0..count) from record `first`
 * on; 0, or -1 when the range is past the map. */
int64_t vm_x64_find_pc(const vm_x64_module *module, const vm_x64_map *map, uint32_t pc, vm_x64_map_entry *out);
int64_t vm_x64_find_native(const vm_x64_module *module, const vm_x64_map *map, uint64_t offset,
                           vm_x64_map_entry *out);
int vm_x64_map_read(const vm_x64_module *module, const vm_x64_map *map, uint32_t first, uint32_t count,
                    vm_x64_map_entry *out);

/* Host side of starting a call at `pc`, as vm_state_set_pc does for the
 * interpreter: VM_ENTRY_OK with *native_address set (and *gas charged for
 * the whole block when entering mid-block), VM_ENTRY_NOT_AN_INSTRUCTION
 * when pc cannot be entered, VM_ENTRY_OUT_OF_GAS when there is not enough
 * gas (vmcore/abi.h).  `native_code`: the generated code as the host
 * sees it (the mid-block charge is the cost in the block's gas charge). */
int vm_x64_enter(const vm_x64_module *module, const vm_x64_map *map, const uint8_t *native_code, uint32_t pc,
                 int64_t *gas, uint64_t *native_address);

/* The gas charge of every basic block (program order), read back from the
 * generated code (`native_code` as in vm_x64_enter): up to `capacity`
 * (pc, cost) pairs; returns how many there are (0 without gas metering). */
uint32_t vm_x64_block_costs(const vm_x64_module *module, const vm_x64_map *map, const uint8_t *native_code,
                            uint32_t *pcs, uint32_t *costs, uint32_t capacity);

/* CPU support: 0 when BMI1, BMI2, LZCNT and POPCNT are all present; else
 * nonzero with *missing naming the first absent feature. */
int vm_x64_cpu_check(const char **missing);

/* ---- sandbox side (freestanding; what the zygote's handlers call) ---- */

/* The top host page of the guest window: PROT_NONE while native code runs
 * (see Faults above). */
#define VM_X64_GUARD_PAGE ((uint32_t)(VM_ADDRESS_SPACE_SIZE - VM_HOST_PAGE_SIZE))
/* What the sandbox protects from VM_X64_GUARD_PAGE on: the top page and
 * the slack mapped after the window (vmctx.h), which an access that should
 * wrap reaches first. */
#define VM_X64_GUARD_BYTES (VM_HOST_PAGE_SIZE + VM_GUEST_MEMORY_SLACK)
#define VM_X64_FAULT_EMULATE (-2)

typedef struct vm_x64_fault {
    int stub;          /* VMCTX_STUB_PAGEFAULT or VMCTX_STUB_TRAP; VM_X64_FAULT_EMULATE; -1: a real crash */
    uint32_t pc;       /* the guest instruction */
    uint32_t arg;      /* PAGEFAULT: the page address; EMULATE: the guest address */
    uint64_t resume;   /* PAGEFAULT: native offset to resume at (retries the instruction) */
} vm_x64_fault;

/* A SIGSEGV at native code offset `rip_offset` (the code at
 * module->code_address) with the 16 hardware registers `hw` by number
 * (program_counter: vmctx.program_counter, read for the overflow probe).
 * Decides what the interpreter would have done with that access. */
/* A guest register's value as the interpreter holds it, from the host
 * register generated code keeps it in (a 32-bit program's: sign-extended
 * from the low half, the only part generated code maintains).  For fault
 * handlers storing registers from a signal context. */
static inline uint64_t vm_x64_guest_reg(const vm_x64_module *module, uint64_t raw)
{
    return module->is_64_bit ? raw : (uint64_t)(int64_t)(int32_t)(uint32_t)raw;
}

void vm_x64_resolve_fault(const vm_x64_module *module, const vm_x64_map *map, const vm_memory *memory,
                          uint64_t rip_offset, const uint64_t *hw, uint32_t program_counter, vm_x64_fault *out);

/* VM_X64_FAULT_EMULATE: do what the faulting access instruction at `insn`
 * does, on `regs` (the 16 hardware registers by number) and the guest
 * bytes at `at` (accessible for it); returns the instruction's length (to
 * resume after it), or 0 when it is not one generated code writes. */
uint32_t vm_x64_emulate_access(const uint8_t *insn, uint64_t *regs, uint8_t *at);

/* After a NOT_ENOUGH_GAS exit: `pc` and `next_native` as the exit left
 * vmctx.program_counter / next_native_program_counter.  An out-of-gas
 * block start leaves next_native 0: undo its charge on *gas (the cost is
 * read back from the charge in the code at module->code_address) and
 * resume at the charge; memset running dry leaves where to resume.
 * Sets *resume (absolute); 0, or -1 when pc is not a block start. */
int vm_x64_out_of_gas(const vm_x64_module *module, const vm_x64_map *map, uint32_t pc, uint64_t next_native,
                      int64_t *gas, uint64_t *resume);

/* The memset instruction (a0 = destination, a1 = byte, a2 = count), exactly
 * as the interpreter does it, on `regs` (vmctx.regs) and `gas`: returns 0
 * when done, else VMCTX_STUB_NOT_ENOUGH_GAS / PAGEFAULT (with *fault set) /
 * TRAP having made the partial progress.  memory->base must be writable for
 * every page the permission map allows (the sandbox's guest window). */
uint32_t vm_x64_memset(uint64_t *regs, int64_t *gas, int gas_metering, const vm_memory *memory, uint32_t *fault);

#endif
