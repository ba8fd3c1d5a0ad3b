/* Test-only: runs JAM PVM test vectors on the C interpreter with no Python.
 *
 * NOT shipped in the package.  tests/native/vectors.py turns the JSON
 * vectors into the binary cases below, runs this program (natively, or
 * cross-built for aarch64 under qemu-user: `make test-aarch64`) and
 * compares the results with the vectors' expectations, the way
 * vmcore.vectors does for the Python API.  Plain C11 + POSIX (mmap); built
 * with the decoder, the program loader, the interpreter and the inline
 * guest memory only, so it runs wherever the C core builds.
 *
 * Protocol (stdin -> stdout, little endian, any number of cases until EOF):
 *
 *   case:   u32 magic "VMVC", u32 isa (vm_isa), u32 blob length, blob (a JAM
 *           code blob), u32 n, n x (u32 address, u32 length, u32 writable),
 *           u32 n, n x (u32 address, u32 length, bytes), u64 regs[13],
 *           i64 gas, u32 pc, u32 n, n x u32 page address to report
 *   result: u32 magic "VMVR", u32 status, u32 pc, i64 gas, u64 regs[13],
 *           u32 arg, then per reported page u32 perm (+ 4096 bytes if not 0)
 *
 * status: a vm_exit (0..4), or LOAD_ERROR (100: the blob does not parse or
 * jam_v1 code does not validate), NOT_AN_INSTRUCTION (101: the initial pc),
 * NOT_ENOUGH_GAS (102: to enter the initial pc's block).
 */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmcore/decoder.h"
#include "vmcore/guest_memory.h"
#include "vmcore/interp.h"
#include "vmcore/program.h"

#define PAGE_SIZE VM_DEFAULT_PAGE_SIZE
#define MAGIC_CASE 0x43564d56u   /* "VMVC" */
#define MAGIC_RESULT 0x52564d56u /* "VMVR" */
#define LOAD_ERROR 100u
#define NOT_AN_INSTRUCTION 101u
#define NOT_ENOUGH_GAS 102u
#define MAX_ITEMS 65536u
#define MAX_BLOB (64u << 20)

static void die(const char *what)
{
    fprintf(stderr, "vectors_runner: %s\n", what);
    exit(2);
}

static int read_exact(void *buffer, size_t length)
{
    return length == 0 || fread(buffer, 1, length, stdin) == length;
}

static uint32_t read_u32(void)
{
    uint8_t b[4];
    if (!read_exact(b, sizeof b))
        die("truncated case");
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static uint64_t read_u64(void)
{
    uint64_t lo = read_u32();
    return lo | (uint64_t)read_u32() << 32;
}

static void write_u32(uint32_t v)
{
    uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    fwrite(b, 1, sizeof b, stdout);
}

static void write_u64(uint64_t v)
{
    write_u32((uint32_t)v);
    write_u32((uint32_t)(v >> 32));
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        die("out of memory");
    return p;
}

typedef struct loaded {
    vm_module module;
    vm_insn *insns;
    uint32_t *pc_to_index;
    uint32_t *jump_table;
} loaded;

/* Parse the code blob and build the threaded code (gas metered, as the
 * vectors are); 0 or -1 when the blob is refused. */
static int load(loaded *out, vm_isa isa, const uint8_t *blob, uint32_t length)
{
    vm_blob_parts parts;
    vm_error err;
    memset(&parts, 0, sizeof parts);
    memset(out, 0, sizeof *out);
    parts.isa = (int)isa;
    vm_blob_span whole = {0, length};
    if (length == 0 || vm_parse_code_blob(blob, length, whole, &parts, &err) != 0)
        return -1;
    const uint8_t *code = blob + parts.code.offset;
    const uint8_t *bitmask = blob + parts.bitmask.offset;
    uint32_t code_len = parts.code.length;
    if (isa == VM_ISA_JAM_V1 && (code_len == 0 || vm_validate_code(isa, code, code_len, bitmask) >= 0))
        return -1;
    uint32_t jt_count = parts.jump_table_count;
    uint32_t *targets = xmalloc(((size_t)jt_count + 1) * sizeof *targets);
    for (uint32_t i = 0; i < jt_count; i++)
        targets[i] = vm_jump_table_entry(blob, &parts, i);
    vm_module_config config = {.isa = (int)isa, .gas_metering = 1, .step_tracing = 0,
                               .gas = {.kind = VM_GAS_NAIVE}};
    size_t capacity;
    vm_module_sizes(code_len, jt_count, &config, &capacity);
    out->insns = xmalloc(capacity * sizeof *out->insns);
    out->pc_to_index = xmalloc(((size_t)code_len + 1) * sizeof *out->pc_to_index);
    out->jump_table = xmalloc(((size_t)jt_count + 1) * sizeof *out->jump_table);
    vm_module_build(&out->module, &config, code_len ? code : NULL, code_len, code_len ? bitmask : NULL, targets,
                    jt_count, out->insns, out->pc_to_index, out->jump_table);
    free(targets);
    return 0;
}

static void unload(loaded *l)
{
    free(l->insns);
    free(l->pc_to_index);
    free(l->jump_table);
}

typedef struct span32 {
    uint32_t address, length;
} span32;

/* Back to all zeros and inaccessible where the case could have written:
 * its pages and its initial chunks (a fresh 4 GiB window per case is slow
 * under qemu-user, which may also ignore MADV_DONTNEED). */
static void scrub(vm_memory *memory, const span32 *spans, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        uint64_t start = spans[i].address & ~(uint64_t)(PAGE_SIZE - 1u);
        uint64_t end = ((uint64_t)spans[i].address + spans[i].length + PAGE_SIZE - 1u) & ~(uint64_t)(PAGE_SIZE - 1u);
        if (end > ((uint64_t)1 << 32))
            end = (uint64_t)1 << 32;
        if (end > start) {
            memset(memory->base + start, 0, (size_t)(end - start));
            vm_memory_set_perms(memory, (uint32_t)start, end - start, VM_PERM_NONE);
        }
    }
}

static int run_case(vm_memory *memory)
{
    uint8_t magic[4];
    if (fread(magic, 1, 1, stdin) != 1)
        return 0; /* EOF between cases */
    if (!read_exact(magic + 1, 3))
        die("truncated case");
    uint32_t m = (uint32_t)magic[0] | (uint32_t)magic[1] << 8 | (uint32_t)magic[2] << 16 | (uint32_t)magic[3] << 24;
    if (m != MAGIC_CASE)
        die("bad case magic");
    uint32_t isa = read_u32();
    if (isa >= VM_ISA_COUNT)
        die("unknown instruction set");
    uint32_t blob_len = read_u32();
    if (blob_len > MAX_BLOB)
        die("blob too large");
    uint8_t *blob = xmalloc(blob_len);
    if (!read_exact(blob, blob_len))
        die("truncated blob");

    uint32_t n = read_u32();
    if (n > MAX_ITEMS)
        die("too many page-map entries");
    uint32_t n_touched = n;
    span32 *touched = xmalloc(((size_t)n + MAX_ITEMS) * sizeof *touched);
    for (uint32_t i = 0; i < n; i++) {
        uint32_t address = read_u32(), length = read_u32(), writable = read_u32();
        vm_memory_set_perms(memory, address, length, writable ? VM_PERM_WRITE : VM_PERM_READ);
        touched[i] = (span32){address, length};
    }
    n = read_u32();
    if (n > MAX_ITEMS)
        die("too many memory chunks");
    for (uint32_t i = 0; i < n; i++) {
        uint32_t address = read_u32(), length = read_u32();
        touched[n_touched++] = (span32){address, length};
        if ((uint64_t)address + length > ((uint64_t)1 << 32))
            die("memory chunk past 4 GiB");
        if (!read_exact(memory->base + address, length))
            die("truncated memory chunk");
    }
    vm_state state;
    memset(&state, 0, sizeof state);
    state.resume = VM_INDEX_NONE;
    int wide = vm_isa_is_64_bit((vm_isa)isa); /* the register rule of interp.h */
    for (int r = 0; r < 13; r++)
        state.regs[r] = vm_reg_from_host(wide, read_u64());
    state.gas = (int64_t)read_u64();
    uint32_t pc = read_u32();
    n = read_u32();
    if (n > MAX_ITEMS)
        die("too many pages to report");
    uint32_t *pages = xmalloc((size_t)n * sizeof *pages);
    for (uint32_t i = 0; i < n; i++)
        pages[i] = read_u32();

    loaded l;
    uint32_t status;
    if (load(&l, (vm_isa)isa, blob, blob_len) != 0) {
        status = LOAD_ERROR;
        state.pc = pc;
    } else {
        int rc = vm_state_set_pc(&state, &l.module, pc);
        if (rc == -1)
            status = NOT_AN_INSTRUCTION;
        else if (rc == -2)
            status = NOT_ENOUGH_GAS;
        else
            status = (uint32_t)vm_run(&l.module, &state, memory);
        unload(&l);
    }
    free(blob);

    write_u32(MAGIC_RESULT);
    write_u32(status);
    write_u32(state.pc);
    write_u64((uint64_t)state.gas);
    for (int r = 0; r < 13; r++)
        write_u64(vm_reg_to_host(wide, state.regs[r]));
    write_u32(state.arg);
    for (uint32_t i = 0; i < n; i++) {
        uint8_t perm = memory->perms[pages[i] >> memory->page_shift];
        write_u32(perm);
        if (perm != VM_PERM_NONE)
            fwrite(memory->base + (pages[i] & ~(PAGE_SIZE - 1u)), 1, PAGE_SIZE, stdout);
    }
    free(pages);
    scrub(memory, touched, n_touched);
    free(touched);
    fflush(stdout);
    return 1;
}

int main(void)
{
    vm_decoder_init();
    vm_memory memory;
    memset(&memory, 0, sizeof memory);
    if (vm_guest_memory_init(&memory, PAGE_SIZE) != 0)
        die("cannot reserve guest memory");
    while (run_case(&memory))
        ;
    vm_guest_memory_free(&memory);
    return 0;
}
