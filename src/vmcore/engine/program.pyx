cdef array.array _U32_TEMPLATE = _array_module.array("I")


class ParseError(Exception):
    """Raised with (offset, message); vmcore.program turns it into ProgramError."""


cdef bytes _span(const uint8_t[:] data, vm_blob_span s):
    if s.length == 0:
        return b""
    return bytes(data[s.offset:s.offset + s.length])


cdef dict _parts_to_dict(const uint8_t[:] data, vm_blob_parts *p):
    cdef uint32_t i, pos = 0, remaining = 0, pc
    cdef vm_blob_span sym
    cdef vm_error err
    cdef int rc
    cdef const uint8_t *base = &data[0]
    imports = []
    for i in range(p.import_count):
        if vm_import_symbol(base, p, i, &sym, &err) != 0:
            raise ParseError(err.offset, err.message.decode(errors="replace"))
        imports.append((_span(data, sym), sym.offset))
    exports = []
    while True:
        rc = vm_next_export(base, <size_t>data.shape[0], p, &pos, &remaining, &pc, &sym, &err)
        if rc < 0:
            raise ParseError(err.offset, err.message.decode(errors="replace"))
        if rc == 0:
            break
        exports.append((_span(data, sym), pc, sym.offset))
    # 4 bytes per entry (a list of ints cost ~36: issue #15, host memory)
    cdef array.array jump_table = array.clone(_U32_TEMPLATE, p.jump_table_count, zero=False)
    for i in range(p.jump_table_count):
        jump_table.data.as_uints[i] = vm_jump_table_entry(base, p, i)
    return {
        "isa": p.isa,
        "ro_data_size": p.ro_data_size,
        "rw_data_size": p.rw_data_size,
        "stack_size": p.stack_size,
        "heap_pages": p.heap_pages,
        "ro_data": _span(data, p.ro_data),
        "rw_data": _span(data, p.rw_data),
        "imports": imports,
        "exports": exports,
        "code": _span(data, p.code),
        "bitmask": _span(data, p.bitmask),
        "jump_table": jump_table,
        "jump_table_entry_size": p.jump_table_entry_size,
        "code_offset": p.code.offset,
        # (offset in the input, payload): vmcore.debuginfo parses them on first use
        "debug_sections": ((p.debug_strings.offset, _span(data, p.debug_strings)),
                           (p.debug_line_programs.offset, _span(data, p.debug_line_programs)),
                           (p.debug_line_program_ranges.offset, _span(data, p.debug_line_program_ranges))),
    }


cdef dict _parsed(const uint8_t[:] data, int rc, vm_error *err, vm_blob_parts *parts):
    """A parser's result: its parts as a dict, or its error raised."""
    if rc != 0:
        raise ParseError(err.offset, err.message.decode(errors="replace"))
    return _parts_to_dict(data, parts)


ctypedef int (*whole_parser)(const uint8_t *data, size_t length, vm_blob_parts *out, vm_error *err) noexcept nogil


cdef dict _parse_whole(const uint8_t[:] data, whole_parser parse, str expected):
    """Parse a whole container with ``parse`` (one of the C parsers taking
    the bytes alone); ``expected`` says what empty input should have been."""
    cdef vm_blob_parts parts
    cdef vm_error err
    cdef int rc
    if data.shape[0] == 0:
        raise ParseError(0, f"empty input: expected {expected}")
    with nogil:
        rc = parse(&data[0], <size_t>data.shape[0], &parts, &err)
    return _parsed(data, rc, &err, &parts)


def parse_polkavm(const uint8_t[:] data):
    return _parse_whole(data, vm_parse_polkavm_blob, "a PolkaVM program starting with 'PVM\\0'")


def parse_code_blob(const uint8_t[:] data, int isa):
    cdef vm_blob_parts parts
    cdef vm_error err
    cdef vm_blob_span whole
    cdef int rc
    if data.shape[0] == 0:
        raise ParseError(0, "empty input: expected a code blob (jump table count, entry size, code length, ...)")
    whole.offset = 0
    whole.length = <uint32_t>data.shape[0]
    if <size_t>data.shape[0] > 0xffffffff:
        raise ParseError(0, "code blob larger than 4 GiB")
    parts.isa = isa
    parts.import_count = 0
    parts.exports.length = 0
    parts.ro_data.length = parts.rw_data.length = parts.debug_strings.length = 0
    parts.debug_line_programs.length = parts.debug_line_program_ranges.length = 0
    parts.ro_data_size = parts.rw_data_size = parts.stack_size = parts.heap_pages = 0
    with nogil:
        rc = vm_parse_code_blob(&data[0], <size_t>data.shape[0], whole, &parts, &err)
    return _parsed(data, rc, &err, &parts)


def parse_jam_standard(const uint8_t[:] data):
    return _parse_whole(data, vm_parse_jam_standard, "a JAM standard program")


def validate_code(int isa, const uint8_t[:] code, const uint8_t[:] bitmask):
    """-1 when the code is well formed, else the first invalid offset."""
    cdef int64_t r
    if code.shape[0] == 0:
        return 0  # empty code: offset 0 is already past the end (the reference rejects it)
    with nogil:
        r = vm_validate_code(isa, &code[0], <uint32_t>code.shape[0], &bitmask[0])
    return r


def code_stats(int isa, const uint8_t[:] code, const uint8_t[:] bitmask):
    cdef uint32_t n = 0, blocks = 0
    if code.shape[0]:
        vm_code_stats(isa, &code[0], <uint32_t>code.shape[0], &bitmask[0], &n, &blocks)
    return n, blocks


def write_varint(uint32_t value):
    cdef uint8_t buf[5]
    cdef uint32_t n = vm_write_varint(value, buf)
    return bytes(buf[:n])


def read_varint(const uint8_t[:] data, size_t position):
    """(value, length) or None when malformed."""
    cdef uint32_t value = 0
    cdef uint32_t n
    if position >= <size_t>data.shape[0]:
        return None
    n = vm_read_varint(&data[0], <size_t>data.shape[0], position, &value)
    return None if n == 0 else (value, n)
