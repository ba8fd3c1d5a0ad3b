/* The recompiler's sandbox side: what the sandbox process's signal handler
 * and helpers need to finish what generated code started.  Freestanding C11
 * (no libc): the zygote embeds it, as does the test runner.
 *
 * Faults are decided by vm_access_verdict (vmcore/memory.h), the rule the
 * interpreter uses, so generated code and the interpreter stop the same
 * way. */
#include "vmcore/compiler.h"

/* Guest register -> host register.  rax (scratch) and r15 (guest memory
 * base) are not guest registers; rdx holds the rarely used a5 because
 * division and the wide multiplies need rdx for themselves. */
const uint8_t vm_x64_guest_regs[VMCTX_REG_COUNT] = {
    X64_RBX, /* ra */
    X64_RSI, /* sp */
    X64_RDI, /* t0 */
    X64_RBP, /* t1 */
    X64_RCX, /* t2 */
    X64_R8,  /* s0 */
    X64_R9,  /* s1 */
    X64_R10, /* a0 */
    X64_R11, /* a1 */
    X64_R12, /* a2 */
    X64_R13, /* a3 */
    X64_R14, /* a4 */
    X64_RDX, /* a5 */
};

/* ---- the pc map (compiler.h: records and marks) ---- */

static void expand(const vm_x64_module *module, uint32_t record, uint32_t pc, uint32_t entry, vm_x64_map_entry *out)
{
    uint32_t info = record & VM_X64_INFO_MASK;
    out->pc = pc;
    out->entry = entry;
    out->body = entry + (module->step_tracing ? VM_X64_STEP_BYTES : 0u) +
                ((info & VM_X64_INFO_BLOCK_START) && module->charges ? VM_X64_CHARGE_BYTES : 0u);
    out->info = info;
}

static inline uint32_t rec_pc(uint32_t r) { return (r >> VM_X64_REC_PC_SHIFT) & VM_X64_REC_PC_MAX; }
static inline uint32_t rec_entry(uint32_t r) { return r >> VM_X64_REC_ENTRY_SHIFT; }

/* The records mark k covers: [marks[k].index, end). */
static uint32_t group_end(const vm_x64_map *map, uint32_t k)
{
    uint32_t end = k + 1 < map->mark_count ? map->marks[k + 1].index : map->count;
    return end <= map->count ? end : map->count;
}

/* The last mark whose pc (by_entry: native entry) is at or before v, or
 * -1. */
static int64_t last_mark(const vm_x64_map *map, uint64_t v, int by_entry)
{
    uint32_t lo = 0, hi = map->mark_count;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        uint64_t key = by_entry ? map->marks[mid].entry : map->marks[mid].pc;
        if (key <= v)
            lo = mid + 1;
        else
            hi = mid;
    }
    return (int64_t)lo - 1;
}

int64_t vm_x64_find_pc(const vm_x64_module *module, const vm_x64_map *map, uint32_t pc, vm_x64_map_entry *out)
{
    int64_t k = last_mark(map, pc, 0);
    if (k < 0)
        return -1;
    const vm_x64_mark *m = &map->marks[k];
    uint32_t at = m->pc, entry = m->entry;
    for (uint32_t i = m->index, end = group_end(map, (uint32_t)k); i < end; i++) {
        uint32_t r = map->records[i];
        if (i > m->index) {
            at += rec_pc(r);
            entry += rec_entry(r);
        }
        if (at == pc) {
            expand(module, r, at, entry, out);
            return i;
        }
        if (at > pc)
            break;
    }
    return -1;
}

int64_t vm_x64_find_native(const vm_x64_module *module, const vm_x64_map *map, uint64_t offset,
                           vm_x64_map_entry *out)
{
    int64_t k = last_mark(map, offset, 1);
    if (k < 0)
        return -1;
    const vm_x64_mark *m = &map->marks[k];
    uint32_t at = m->pc, entry = m->entry;
    int64_t found = -1;
    for (uint32_t i = m->index, end = group_end(map, (uint32_t)k); i < end; i++) {
        uint32_t r = map->records[i];
        if (i > m->index) {
            at += rec_pc(r);
            entry += rec_entry(r);
        }
        if (entry > offset)
            break;
        expand(module, r, at, entry, out);
        found = i;
    }
    return found;
}

int vm_x64_map_read(const vm_x64_module *module, const vm_x64_map *map, uint32_t first, uint32_t count,
                    vm_x64_map_entry *out)
{
    if (first > map->count || count > map->count - first)
        return -1;
    if (!count)
        return 0;
    /* the last mark at or before record `first` */
    uint32_t lo = 0, hi = map->mark_count;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (map->marks[mid].index <= first)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0)
        return -1;
    uint32_t k = lo - 1;
    uint32_t at = 0, entry = 0;
    for (uint32_t i = map->marks[k].index; i < first + count; i++) {
        uint32_t r = map->records[i];
        if (k < map->mark_count && map->marks[k].index == i) {
            at = map->marks[k].pc;
            entry = map->marks[k].entry;
            k++;
        } else {
            at += rec_pc(r);
            entry += rec_entry(r);
        }
        if (i >= first)
            expand(module, r, at, entry, &out[i - first]);
    }
    return 0;
}

int vm_x64_out_of_gas(const vm_x64_module *module, const vm_x64_map *map, uint32_t pc, uint64_t next_native,
                      int64_t *gas, uint64_t *resume)
{
    if (next_native) {
        *resume = next_native; /* memset: nothing charged to undo */
        return 0;
    }
    vm_x64_map_entry e;
    if (vm_x64_find_pc(module, map, pc, &e) < 0 || !(e.info & VM_X64_INFO_BLOCK_START) || !module->charges)
        return -1;
    uint32_t site = e.entry + (module->step_tracing ? VM_X64_STEP_BYTES : 0u);
    uint32_t cost;
    __builtin_memcpy(&cost, (const uint8_t *)(uintptr_t)module->code_address + site + VM_X64_CHARGE_COST_AT, 4);
    *gas = (int64_t)((uint64_t)*gas + cost); /* the charge wrapped when gas was near INT64_MIN */
    *resume = module->code_address + site;
    return 0;
}

uint32_t vm_x64_block_costs(const vm_x64_module *module, const vm_x64_map *map, const uint8_t *native_code,
                            uint32_t *pcs, uint32_t *costs, uint32_t capacity)
{
    if (!module->gas_metering || !module->charges || !native_code)
        return 0;
    uint32_t count = 0;
    for (uint32_t k = 0; k < map->count; k++) {
        if (!(map->records[k] & VM_X64_INFO_BLOCK_START))
            continue;
        if (count < capacity) {
            vm_x64_map_entry e;
            if (vm_x64_map_read(module, map, k, 1, &e) != 0)
                return count;
            uint32_t site = e.entry + (module->step_tracing ? VM_X64_STEP_BYTES : 0u);
            uint32_t cost;
            __builtin_memcpy(&cost, native_code + site + VM_X64_CHARGE_COST_AT, 4);
            pcs[count] = e.pc;
            costs[count] = cost;
        }
        count++;
    }
    return count;
}

/* The memory operand of an access generated code writes: [66] REX
 * [0F] op ModRM [SIB] [disp8/32] [imm], the operand r15-based, either
 * [r15 + index + disp] (SIB, scale 1) or [r15 + disp].  *offset is the
 * native address minus r15 (with the index register's value from hw, the
 * 16 hardware registers by number); 0 when it is no such form. */
typedef struct access_form {
    int operand16, w, reg;
    uint32_t op;
    uint64_t offset;
    const uint8_t *rest; /* past the operand: the immediate, if any */
} access_form;

static int decode_access(const uint8_t *insn, const uint64_t *hw, access_form *f)
{
    const uint8_t *p = insn;
    f->operand16 = *p == 0x66;
    p += f->operand16;
    uint8_t rex = *p++;
    if ((rex & 0xf0u) != 0x40u || !(rex & 1u)) /* REX.B: the base is r15 */
        return 0;
    f->w = (rex & 8u) != 0;
    uint32_t op = *p++;
    if (op == 0x0fu)
        op = 0x0f00u | *p++;
    f->op = op;
    uint8_t modrm = *p++;
    unsigned mod = modrm >> 6, rm = modrm & 7u;
    f->reg = ((modrm >> 3) & 7) | (rex & 4u ? 8 : 0);
    uint64_t index = 0;
    if (mod == 3)
        return 0;
    if (rm == 4) {
        uint8_t sib = *p++;
        unsigned idx = ((sib >> 3) & 7u) | (rex & 2u ? 8u : 0u);
        if ((sib & 7u) != 7u || (sib >> 6) != 0)
            return 0;
        if (idx != 4u) /* 4 (no REX.X): no index */
            index = hw[idx];
    } else if (rm != 7u) {
        return 0;
    }
    int32_t disp = 0;
    if (mod == 1) {
        disp = (int8_t)*p++;
    } else if (mod == 2) {
        uint32_t d;
        __builtin_memcpy(&d, p, 4);
        disp = (int32_t)d;
        p += 4;
    }
    f->offset = index + (uint64_t)(int64_t)disp;
    f->rest = p;
    return 1;
}

void vm_x64_resolve_fault(const vm_x64_module *module, const vm_x64_map *map, const vm_memory *memory,
                          uint64_t rip_offset, const uint64_t *hw, uint32_t program_counter, vm_x64_fault *out)
{
    out->stub = -1;
    out->pc = 0;
    out->arg = 0;
    out->resume = 0;
    if (rip_offset == module->overflow_probe) {
        /* An access reaching 0xffffffff, and the top page is not mapped
         * (else the probe would have read it and trapped). */
        vm_x64_map_entry e;
        if (vm_x64_find_pc(module, map, program_counter, &e) < 0)
            return;
        uint32_t top = 0;
        out->pc = program_counter;
        out->arg = vm_page_of(memory, 0xffffffffu);
        out->stub = vm_access_verdict(memory, 0xffffffffu, 1, VM_PERM_READ, &top) == VM_ACCESS_PANIC
                        ? VMCTX_STUB_TRAP
                        : VMCTX_STUB_PAGEFAULT;
        out->resume = e.body;
        return;
    }
    if (rip_offset < module->first_insn || rip_offset >= module->code_size)
        return;
    vm_x64_map_entry e;
    if (vm_x64_find_native(module, map, rip_offset, &e) < 0 || rip_offset < e.body)
        return;
    uint32_t info = e.info;
    if (!(info & (VM_X64_INFO_LOAD | VM_X64_INFO_STORE)))
        return;
    access_form f;
    if (!decode_access((const uint8_t *)(uintptr_t)(module->code_address + rip_offset), hw, &f))
        return;
    /* Generated code indexes the window with a zero-extended address (at
     * most 2^32 - 1 + a displacement below the slack's size): anything
     * else is not a guest access but a crash. */
    if (f.offset >= VM_ADDRESS_SPACE_SIZE + VM_GUEST_MEMORY_SLACK)
        return;
    uint32_t address = (uint32_t)f.offset; /* the guest's: wrapped */
    uint32_t size = 1u << ((info >> VM_X64_INFO_SIZE_SHIFT) & 3u);
    uint8_t need = (info & VM_X64_INFO_STORE) ? VM_PERM_WRITE : VM_PERM_READ;
    uint32_t fault = 0;
    vm_access access = vm_access_verdict(memory, address, size, need, &fault);
    out->pc = e.pc;
    if (access == VM_ACCESS_OK) {
        /* allowed: in the guard page, or past the window where the guest
         * address wraps; else the protections disagree with the
         * permission map -- a real crash */
        if (f.offset + size - 1 >= VM_X64_GUARD_PAGE) {
            out->stub = VM_X64_FAULT_EMULATE;
            out->arg = address;
        }
        return;
    }
    if (access == VM_ACCESS_PANIC) {
        out->stub = VMCTX_STUB_TRAP;
    } else {
        out->stub = VMCTX_STUB_PAGEFAULT;
        out->arg = fault;
        out->resume = e.body;
    }
}

/* The forms emit_access (x64/select.c) writes (decode_access). */
uint32_t vm_x64_emulate_access(const uint8_t *insn, uint64_t *regs, uint8_t *at)
{
    access_form f;
    if (!decode_access(insn, regs, &f))
        return 0;
    const uint8_t *p = f.rest;
    int w = f.w, operand16 = f.operand16, reg = f.reg;
    uint64_t *r = &regs[reg];
    uint8_t b1;
    uint16_t b2;
    uint32_t b4;
    uint64_t b8;
    switch (f.op) {
    case 0x8bu: /* mov r32 (zero-extends) / r64, [m] */
        if (w) {
            __builtin_memcpy(&b8, at, 8);
            *r = b8;
        } else {
            __builtin_memcpy(&b4, at, 4);
            *r = b4;
        }
        break;
    case 0x0fb6u: /* movzx */
        *r = at[0];
        break;
    case 0x0fb7u:
        __builtin_memcpy(&b2, at, 2);
        *r = b2;
        break;
    case 0x0fbeu: /* movsx r64 / r32 (zero-extended above) */
        b8 = (uint64_t)(int64_t)(int8_t)at[0];
        *r = w ? b8 : (uint32_t)b8;
        break;
    case 0x0fbfu:
        __builtin_memcpy(&b2, at, 2);
        b8 = (uint64_t)(int64_t)(int16_t)b2;
        *r = w ? b8 : (uint32_t)b8;
        break;
    case 0x63u: /* movsxd r64 */
        if (!w)
            return 0;
        __builtin_memcpy(&b4, at, 4);
        *r = (uint64_t)(int64_t)(int32_t)b4;
        break;
    case 0x88u: /* mov [m], r8 (REX: the register's low byte) */
        at[0] = (uint8_t)*r;
        break;
    case 0x89u:
        if (w) {
            b8 = *r;
            __builtin_memcpy(at, &b8, 8);
        } else if (operand16) {
            b2 = (uint16_t)*r;
            __builtin_memcpy(at, &b2, 2);
        } else {
            b4 = (uint32_t)*r;
            __builtin_memcpy(at, &b4, 4);
        }
        break;
    case 0xc6u: /* mov [m], imm8 */
        if (reg & 7)
            return 0;
        b1 = *p++;
        at[0] = b1;
        break;
    case 0xc7u: /* mov [m], imm16 / imm32 / imm32 sign-extended */
        if (reg & 7)
            return 0;
        if (operand16) {
            __builtin_memcpy(at, p, 2);
            p += 2;
        } else {
            __builtin_memcpy(&b4, p, 4);
            p += 4;
            if (w) {
                b8 = (uint64_t)(int64_t)(int32_t)b4;
                __builtin_memcpy(at, &b8, 8);
            } else {
                __builtin_memcpy(at, &b4, 4);
            }
        }
        break;
    default:
        return 0;
    }
    return (uint32_t)(p - insn);
}

uint32_t vm_x64_memset(uint64_t *regs, int64_t *gas_io, int gas_metering, const vm_memory *memory, uint32_t *fault)
{
    uint64_t a0 = regs[VM_REG_A0];
    uint32_t dst = (uint32_t)a0;
    uint8_t value = (uint8_t)regs[VM_REG_A1];
    uint64_t count = (uint32_t)regs[VM_REG_A2];
    int64_t gas = *gas_io;
    uint32_t result = 0;
    /* The interpreter's per-byte loop (gas first, then the access), done a
     * page at a time. */
    while (count > 0) {
        if (gas_metering && gas == 0) {
            result = VMCTX_STUB_NOT_ENOUGH_GAS;
            break;
        }
        if (dst != 0xffffffffu && vm_perm_allows(vm_perm_at(memory, dst), VM_PERM_WRITE)) {
            uint64_t n = memory->page_size - (dst & (memory->page_size - 1));
            if (n > count)
                n = count;
            if (gas_metering && gas > 0 && (uint64_t)gas < n)
                n = (uint64_t)gas;
            if ((uint64_t)dst + n > 0xffffffffull) /* never the last byte of the address space */
                n = 0xffffffffull - dst;
            __builtin_memset(memory->base + dst, value, (size_t)n);
            dst += (uint32_t)n;
            count -= n;
            if (gas_metering)
                gas -= (int64_t)n;
            continue;
        }
        vm_access access = vm_access_verdict(memory, dst, 1, VM_PERM_WRITE, fault);
        result = access == VM_ACCESS_PANIC ? VMCTX_STUB_TRAP : VMCTX_STUB_PAGEFAULT;
        break;
    }
    regs[VM_REG_A0] = a0 + (uint64_t)(uint32_t)(dst - (uint32_t)a0);
    regs[VM_REG_A2] = count;
    *gas_io = gas;
    return result;
}
