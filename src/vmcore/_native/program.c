/* Program containers: parse and bounds-check, never copy. */
#include "vmcore/program.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "vmcore/vmctx.h"

static int fail(vm_error *err, size_t offset, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    err->offset = (uint32_t)offset;
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return -1;
}

uint32_t vm_read_varint(const uint8_t *data, size_t length, size_t position, uint32_t *value)
{
    if (position >= length)
        return 0;
    uint8_t first = data[position];
    uint32_t extra = 0;
    while (extra < 8 && (first & (0x80u >> extra)))
        extra++;
    if (extra > 4 || length - position - 1 < extra)
        return 0;
    uint32_t low = 0;
    for (uint32_t i = 0; i < extra; i++)
        low |= (uint32_t)data[position + 1 + i] << (8 * i);
    uint32_t upper = first & (0xffu >> extra);
    /* With four extra bytes the reference's shift by 32 wraps to 0, so the
     * first byte's low nibble is ORed into the low bits; keep that. */
    *value = extra == 4 ? (low | upper) : (low | (upper << (8 * extra)));
    return extra + 1;
}

uint32_t vm_write_varint(uint32_t value, uint8_t out[5])
{
    uint32_t extra = value < (1u << 7) ? 0 : value < (1u << 14) ? 1 : value < (1u << 21) ? 2 : value < (1u << 28) ? 3 : 4;
    if (extra == 4) {
        out[0] = 0xf0;
    } else {
        uint32_t prefix = (0xff00u >> extra) & 0xffu;
        out[0] = (uint8_t)(prefix | (value >> (8 * extra)));
    }
    for (uint32_t i = 0; i < extra; i++)
        out[1 + i] = (uint8_t)(value >> (8 * i));
    return extra + 1;
}

typedef struct reader {
    const uint8_t *data;
    size_t length;
    size_t position;
    vm_error *err;
} reader;

static int read_byte(reader *r, uint8_t *out, const char *what)
{
    if (r->position >= r->length)
        return fail(r->err, r->position, "unexpected end of data: expected %s", what);
    *out = r->data[r->position++];
    return 0;
}

static int read_varint(reader *r, uint32_t *out, const char *what)
{
    uint32_t n = vm_read_varint(r->data, r->length, r->position, out);
    if (n == 0)
        return fail(r->err, r->position, "malformed or truncated varint: expected %s", what);
    r->position += n;
    return 0;
}

/* A varint no larger than `max`; `too_big` formats the value and max. */
static int read_varint_at_most(reader *r, uint32_t *out, uint32_t max, const char *what, const char *too_big)
{
    size_t at = r->position;
    if (read_varint(r, out, what))
        return -1;
    if (*out > max)
        return fail(r->err, at, too_big, *out, max);
    return 0;
}

static int read_span(reader *r, size_t count, vm_blob_span *out, const char *what)
{
    if (r->length - r->position < count)
        return fail(r->err, r->position, "unexpected end of data: expected %zu bytes of %s, found %zu", count, what,
                    r->length - r->position);
    out->offset = (uint32_t)r->position;
    out->length = (uint32_t)count;
    r->position += count;
    return 0;
}

static int read_le(reader *r, uint32_t bytes, uint32_t *out, const char *what)
{
    vm_blob_span s = {0, 0};
    if (read_span(r, bytes, &s, what))
        return -1;
    uint32_t v = 0;
    for (uint32_t i = 0; i < bytes; i++)
        v |= (uint32_t)r->data[s.offset + i] << (8 * i);
    *out = v;
    return 0;
}

/* A length-prefixed section, if `*section` is `expected`; reads the id of
 * the next section afterwards. */
static int read_section(reader *r, uint8_t *section, uint8_t expected, vm_blob_span *out, const char *what)
{
    if (*section != expected)
        return 0;
    uint32_t length;
    if (read_varint(r, &length, what) || read_span(r, length, out, what))
        return -1;
    return read_byte(r, section, "a section id");
}

int vm_parse_code_blob(const uint8_t *data, size_t length, vm_blob_span within, vm_blob_parts *out, vm_error *err)
{
    if ((size_t)within.offset + within.length > length)
        return fail(err, within.offset, "the code blob extends past the end of the data");
    reader r = {data, (size_t)within.offset + within.length, within.offset, err};
    uint32_t jt_count = 0, code_len = 0;
    uint8_t entry_size = 0;
    if (read_varint_at_most(&r, &jt_count, VM_MAXIMUM_JUMP_TABLE_ENTRIES, "the jump table entry count",
                            "the jump table has %u entries, more than the maximum of %u"))
        return -1;
    size_t entry_size_at = r.position;
    if (read_byte(&r, &entry_size, "the jump table entry size"))
        return -1;
    if (read_varint_at_most(&r, &code_len, VM_MAXIMUM_CODE_SIZE, "the code length",
                            "the code is %u bytes, more than the maximum of %u"))
        return -1;
    if (entry_size > 4)
        return fail(err, entry_size_at, "invalid jump table entry size %u: expected 0 to 4", entry_size);
    if (read_span(&r, (size_t)jt_count * entry_size, &out->jump_table, "the jump table"))
        return -1;
    if (read_span(&r, code_len, &out->code, "the code"))
        return -1;
    size_t bitmask_len = (code_len + 7u) / 8u;
    size_t remaining = r.length - r.position;
    if (remaining != bitmask_len)
        return fail(err, r.position, "the bitmask is %zu bytes but %u bytes of code need %zu", remaining, code_len,
                    bitmask_len);
    if (read_span(&r, bitmask_len, &out->bitmask, "the bitmask"))
        return -1;
    if (code_len % 8) {
        uint8_t last = data[out->bitmask.offset + bitmask_len - 1];
        uint8_t padding = (uint8_t)(0xffu << (code_len % 8));
        if (last & padding)
            return fail(err, out->bitmask.offset + bitmask_len - 1, "the bitmask is padded with non-zero bits");
    }
    out->jump_table_entry_size = entry_size;
    out->jump_table_count = entry_size ? jt_count : 0;
    return 0;
}

int vm_parse_polkavm_blob(const uint8_t *data, size_t length, vm_blob_parts *out, vm_error *err)
{
    memset(out, 0, sizeof *out);
    reader r = {data, length, 0, err};
    if (length < 4 || memcmp(data, VM_BLOB_MAGIC, 4) != 0)
        return fail(err, 0, "not a PolkaVM program: expected the magic bytes 'PVM\\0'");
    r.position = 4;
    uint8_t version = 0;
    if (read_byte(&r, &version, "the version byte"))
        return -1;
    if (version >= VM_ISA_COUNT)
        return fail(err, 4, "unsupported program version %u: expected 0 (revive_v1), 1 (latest32), 2 (latest64) or 3 (jam_v1)",
                    version);
    out->isa = version;
    vm_blob_span len_span;
    if (read_span(&r, 8, &len_span, "the blob length"))
        return -1;
    uint64_t declared = 0;
    for (int i = 0; i < 8; i++)
        declared |= (uint64_t)data[5 + i] << (8 * i);
    if (declared != (uint64_t)length)
        return fail(err, 5, "the header says the blob is %llu bytes but it is %zu bytes (truncated or padded?)",
                    (unsigned long long)declared, length);

    uint8_t section = 0;
    if (read_byte(&r, &section, "a section id"))
        return -1;
    if (section == VM_SECTION_MEMORY_CONFIG) {
        uint32_t section_len;
        if (read_varint(&r, &section_len, "the memory config length"))
            return -1;
        size_t start = r.position;
        if (read_varint(&r, &out->ro_data_size, "the read-only data size") ||
            read_varint(&r, &out->rw_data_size, "the read-write data size") ||
            read_varint(&r, &out->stack_size, "the stack size"))
            return -1;
        if (start + section_len != r.position)
            return fail(err, start, "the memory config section is %u bytes but its three sizes take %zu", section_len,
                        r.position - start);
        if (read_byte(&r, &section, "a section id"))
            return -1;
    }
    if (read_section(&r, &section, VM_SECTION_RO_DATA, &out->ro_data, "the read-only data section") ||
        read_section(&r, &section, VM_SECTION_RW_DATA, &out->rw_data, "the read-write data section"))
        return -1;
    if (section == VM_SECTION_IMPORTS) {
        uint32_t section_len, count;
        if (read_varint(&r, &section_len, "the imports section length"))
            return -1;
        size_t start = r.position;
        if (section_len > length - start)
            return fail(err, start, "the imports section claims %u bytes but only %zu remain", section_len, length - start);
        if (read_varint(&r, &count, "the import count"))
            return -1;
        if (count > VM_MAXIMUM_IMPORT_COUNT)
            return fail(err, start, "%u imports, more than the maximum of %u", count, VM_MAXIMUM_IMPORT_COUNT);
        if (read_span(&r, (size_t)count * 4, &out->import_offsets, "the import offsets"))
            return -1;
        if (r.position - start > section_len)
            return fail(err, start, "the imports section is %u bytes, too short for %u import offsets", section_len, count);
        if (read_span(&r, section_len - (r.position - start), &out->import_symbols, "the import names"))
            return -1;
        out->import_count = count;
        for (uint32_t i = 0; i < count; i++) {
            vm_blob_span sym;
            if (vm_import_symbol(data, out, i, &sym, err))
                return -1;
        }
        if (read_byte(&r, &section, "a section id"))
            return -1;
    }
    if (read_section(&r, &section, VM_SECTION_EXPORTS, &out->exports, "the exports section"))
        return -1;
    vm_blob_span code_and_jt = {0, 0};
    size_t code_section_at = r.position - 1; /* the id byte of the section found where the code belongs */
    if (read_section(&r, &section, VM_SECTION_CODE_AND_JUMP_TABLE, &code_and_jt, "the code section") ||
        read_section(&r, &section, VM_SECTION_OPT_DEBUG_STRINGS, &out->debug_strings, "the debug strings") ||
        read_section(&r, &section, VM_SECTION_OPT_DEBUG_LINE_PROGRAMS, &out->debug_line_programs, "the debug line programs") ||
        read_section(&r, &section, VM_SECTION_OPT_DEBUG_LINE_PROGRAM_RANGES, &out->debug_line_program_ranges,
                     "the debug line program ranges"))
        return -1;
    while (section & 0x80) {
        /* An optional section we do not know: skip it, bounds-checked. */
        vm_blob_span skipped;
        if (read_section(&r, &section, section, &skipped, "an optional section"))
            return -1;
    }
    if (section != VM_SECTION_END_OF_FILE)
        return fail(err, r.position - 1, "unexpected section id %u (sections must appear in order, then 0 to end the blob)",
                    section);

    if (out->ro_data.length > out->ro_data_size)
        return fail(err, out->ro_data.offset, "the read-only data is %u bytes, more than its declared size %u",
                    out->ro_data.length, out->ro_data_size);
    if (out->rw_data.length > out->rw_data_size)
        return fail(err, out->rw_data.offset, "the read-write data is %u bytes, more than its declared size %u",
                    out->rw_data.length, out->rw_data_size);
    if (code_and_jt.length == 0)
        return fail(err, code_section_at, "the program has no code section");

    /* Walk the exports once so later readers can trust them. */
    uint32_t pos = 0, remaining = 0, pc;
    vm_blob_span sym;
    int rc;
    while ((rc = vm_next_export(data, length, out, &pos, &remaining, &pc, &sym, err)) == 1)
        ;
    if (rc < 0)
        return -1;
    return vm_parse_code_blob(data, length, code_and_jt, out, err);
}

int vm_parse_jam_standard(const uint8_t *data, size_t length, vm_blob_parts *out, vm_error *err)
{
    memset(out, 0, sizeof *out);
    reader r = {data, length, 0, err};
    uint32_t ro_len, rw_len, heap_pages, stack, code_len;
    if (read_le(&r, 3, &ro_len, "the read-only data length (3 bytes)") ||
        read_le(&r, 3, &rw_len, "the read-write data length (3 bytes)") ||
        read_le(&r, 2, &heap_pages, "the heap page count (2 bytes)") ||
        read_le(&r, 3, &stack, "the stack size (3 bytes)") ||
        read_span(&r, ro_len, &out->ro_data, "the read-only data") ||
        read_span(&r, rw_len, &out->rw_data, "the read-write data") ||
        read_le(&r, 4, &code_len, "the code blob length (4 bytes)"))
        return -1;
    vm_blob_span code_blob;
    if (read_span(&r, code_len, &code_blob, "the code blob"))
        return -1;
    if (r.position != length)
        return fail(err, r.position, "%zu bytes of trailing data after the code blob", length - r.position);
    out->isa = VM_ISA_JAM_V1;
    out->ro_data_size = ro_len;
    out->rw_data_size = rw_len;
    out->heap_pages = heap_pages;
    out->stack_size = stack;
    return vm_parse_code_blob(data, length, code_blob, out, err);
}

int vm_next_export(const uint8_t *data, size_t length, const vm_blob_parts *parts, uint32_t *position,
                   uint32_t *remaining, uint32_t *pc, vm_blob_span *symbol, vm_error *err)
{
    (void)length;
    if (parts->exports.length == 0)
        return 0;
    reader r = {data, (size_t)parts->exports.offset + parts->exports.length, parts->exports.offset + *position, err};
    if (*position == 0) {
        if (read_varint(&r, remaining, "the export count"))
            return -1;
    }
    if (*remaining == 0)
        return 0;
    uint32_t name_len;
    if (read_varint(&r, pc, "an export's code offset") || read_varint(&r, &name_len, "an export name's length") ||
        read_span(&r, name_len, symbol, "an export name"))
        return -1;
    *remaining -= 1;
    *position = (uint32_t)(r.position - parts->exports.offset);
    return 1;
}

static uint32_t le32(const uint8_t *p) { return p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }

int vm_import_symbol(const uint8_t *data, const vm_blob_parts *parts, uint32_t index, vm_blob_span *symbol,
                     vm_error *err)
{
    const uint8_t *offsets = data + parts->import_offsets.offset;
    uint32_t start = le32(offsets + 4 * index);
    uint32_t end = index + 1 < parts->import_count ? le32(offsets + 4 * (index + 1)) : parts->import_symbols.length;
    if (start > end || end > parts->import_symbols.length)
        return fail(err, parts->import_offsets.offset + 4 * index,
                    "import #%u's name spans bytes %u..%u, outside the %u bytes of import names", index, start, end,
                    parts->import_symbols.length);
    symbol->offset = parts->import_symbols.offset + start;
    symbol->length = end - start;
    return 0;
}

uint32_t vm_jump_table_entry(const uint8_t *data, const vm_blob_parts *parts, uint32_t index)
{
    const uint8_t *p = data + parts->jump_table.offset + (size_t)index * parts->jump_table_entry_size;
    uint32_t v = 0;
    for (uint32_t i = 0; i < parts->jump_table_entry_size; i++)
        v |= (uint32_t)p[i] << (8 * i);
    return v;
}

void vm_code_stats(vm_isa isa, const uint8_t *code, uint32_t code_len, const uint8_t *bitmask,
                   uint32_t *instructions, uint32_t *basic_blocks)
{
    uint32_t n = 0, blocks = 0;
    int block_open = 0;
    for (uint32_t offset = 0; offset < code_len; offset++) {
        if (!vm_bitmask_bit(bitmask, code_len, offset))
            continue;
        vm_op op = vm_isa_decode_opcode(isa, code[offset]);
        n++;
        if (!block_open) {
            blocks++;
            block_open = 1;
        }
        if (op == VM_OP_INVALID || (vm_op_flags(op) & VM_F_ENDS_BLOCK))
            block_open = 0;
    }
    *instructions = n;
    *basic_blocks = blocks;
}
