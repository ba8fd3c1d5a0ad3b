# C declarations for include/vmcore/program.h.
from libc.stdint cimport uint8_t, uint32_t, int64_t
from vmcore.includes.decoder cimport vm_isa

cdef extern from "vmcore/program.h":
    ctypedef struct vm_blob_span:
        uint32_t offset
        uint32_t length

    ctypedef struct vm_error:
        uint32_t offset
        char message[200]

    ctypedef struct vm_blob_parts:
        int isa
        uint32_t ro_data_size
        uint32_t rw_data_size
        uint32_t stack_size
        uint32_t heap_pages
        vm_blob_span ro_data
        vm_blob_span rw_data
        uint32_t import_count
        vm_blob_span import_offsets
        vm_blob_span import_symbols
        vm_blob_span exports
        vm_blob_span code
        vm_blob_span bitmask
        vm_blob_span jump_table
        uint32_t jump_table_entry_size
        uint32_t jump_table_count
        vm_blob_span debug_strings
        vm_blob_span debug_line_programs
        vm_blob_span debug_line_program_ranges

    uint32_t vm_read_varint(const uint8_t *data, size_t length, size_t position, uint32_t *value)
    uint32_t vm_write_varint(uint32_t value, uint8_t *out)
    int vm_parse_polkavm_blob(const uint8_t *data, size_t length, vm_blob_parts *out, vm_error *err) nogil
    int vm_parse_code_blob(const uint8_t *data, size_t length, vm_blob_span within, vm_blob_parts *out, vm_error *err) nogil
    int vm_parse_jam_standard(const uint8_t *data, size_t length, vm_blob_parts *out, vm_error *err) nogil
    int vm_next_export(const uint8_t *data, size_t length, const vm_blob_parts *parts, uint32_t *position,
                       uint32_t *remaining, uint32_t *pc, vm_blob_span *symbol, vm_error *err)
    int vm_import_symbol(const uint8_t *data, const vm_blob_parts *parts, uint32_t index, vm_blob_span *symbol, vm_error *err)
    uint32_t vm_jump_table_entry(const uint8_t *data, const vm_blob_parts *parts, uint32_t index)
    int64_t vm_validate_code(vm_isa isa, const uint8_t *code, uint32_t code_len, const uint8_t *bitmask) nogil
    void vm_code_stats(vm_isa isa, const uint8_t *code, uint32_t code_len, const uint8_t *bitmask,
                       uint32_t *instructions, uint32_t *basic_blocks)
