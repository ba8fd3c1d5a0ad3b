/* Program containers: the .polkavm blob, the JAM code blob ("deblob") and
 * the JAM standard program format.  Parsing never copies: every section is
 * a span into the caller's bytes.  Host-side only (uses snprintf). */
#ifndef VMCORE_PROGRAM_H
#define VMCORE_PROGRAM_H

#include <stddef.h>
#include <stdint.h>

#include "vmcore/decoder.h"

#define VM_BLOB_MAGIC "PVM\0"
#define VM_BLOB_HEADER_SIZE 13 /* magic, version byte, u64 length */

#define VM_SECTION_MEMORY_CONFIG 1
#define VM_SECTION_RO_DATA 2
#define VM_SECTION_RW_DATA 3
#define VM_SECTION_IMPORTS 4
#define VM_SECTION_EXPORTS 5
#define VM_SECTION_CODE_AND_JUMP_TABLE 6
#define VM_SECTION_OPT_DEBUG_STRINGS 128
#define VM_SECTION_OPT_DEBUG_LINE_PROGRAMS 129
#define VM_SECTION_OPT_DEBUG_LINE_PROGRAM_RANGES 130
#define VM_SECTION_END_OF_FILE 0

/* Bytes [offset, offset + length) of the program blob. */
typedef struct vm_blob_span {
    uint32_t offset;
    uint32_t length;
} vm_blob_span;

typedef struct vm_error {
    uint32_t offset;   /* byte offset in the input the error refers to */
    char message[200];
} vm_error;

typedef struct vm_blob_parts {
    int isa;                  /* vm_isa */
    uint32_t ro_data_size;    /* declared sizes (memory config) */
    uint32_t rw_data_size;
    uint32_t stack_size;
    uint32_t heap_pages;      /* JAM standard format only */
    vm_blob_span ro_data;
    vm_blob_span rw_data;
    vm_blob_span imports;          /* the whole section payload after the count */
    uint32_t import_count;
    vm_blob_span import_offsets;   /* import_count little-endian u32 */
    vm_blob_span import_symbols;
    vm_blob_span exports;          /* section payload; vm_next_export walks it */
    vm_blob_span code;
    vm_blob_span bitmask;
    vm_blob_span jump_table;
    uint32_t jump_table_entry_size;
    uint32_t jump_table_count;
    vm_blob_span debug_strings;
    vm_blob_span debug_line_programs;
    vm_blob_span debug_line_program_ranges;
} vm_blob_parts;

/* PolkaVM's varint: returns bytes consumed (>= 1) or 0 when malformed. */
uint32_t vm_read_varint(const uint8_t *data, size_t length, size_t position, uint32_t *value);
uint32_t vm_write_varint(uint32_t value, uint8_t out[5]);

/* Each returns 0 on success, -1 with *err filled in. */
int vm_parse_polkavm_blob(const uint8_t *data, size_t length, vm_blob_parts *out, vm_error *err);
int vm_parse_code_blob(const uint8_t *data, size_t length, vm_blob_span within, vm_blob_parts *out, vm_error *err);
int vm_parse_jam_standard(const uint8_t *data, size_t length, vm_blob_parts *out, vm_error *err);

/* Walk the exports section: *position starts at 0 and is advanced; returns
 * 1 with an export, 0 at the end, -1 on malformed data. */
int vm_next_export(const uint8_t *data, size_t length, const vm_blob_parts *parts, uint32_t *position,
                   uint32_t *remaining, uint32_t *pc, vm_blob_span *symbol, vm_error *err);

/* Import `index`'s symbol span, or -1 when the offsets are inconsistent. */
int vm_import_symbol(const uint8_t *data, const vm_blob_parts *parts, uint32_t index, vm_blob_span *symbol,
                     vm_error *err);

/* Jump table entry `index` (a code offset). */
uint32_t vm_jump_table_entry(const uint8_t *data, const vm_blob_parts *parts, uint32_t index);

/* Walk the code the way the reference validates it (bounded, from offset
 * 0): returns -1 when every instruction is defined and the code does not
 * fall off its end, otherwise the offset of the first invalid one. */
int64_t vm_validate_code(vm_isa isa, const uint8_t *code, uint32_t code_len, const uint8_t *bitmask);

/* Counts instructions and basic blocks (for `info`). */
void vm_code_stats(vm_isa isa, const uint8_t *code, uint32_t code_len, const uint8_t *bitmask,
                   uint32_t *instructions, uint32_t *basic_blocks);

#endif
