#!/usr/bin/env python3
"""Coverage-guided fuzzing of vmcore's program loaders and decoder (atheris).

Every input is tried as a ``.polkavm`` blob, a JAM standard program and a
raw JAM code blob of each instruction set; whatever loads is walked (the
decoder at many offsets and over the whole code, code validation and
statistics, the threaded-code builder).  The input is also decoded directly
as code, with a bitmask taken from its own bytes.  Anything but a Program or
a ProgramError -- another exception, a crash, a sanitizer report -- is a
finding, saved by libFuzzer as ``crash-<sha1>`` (see -artifact_prefix).

Run it on an instrumented build (``make fuzz-build``; see fuzz/README.md)
for coverage of the C code; on an ordinary build atheris sees only the
Python code's coverage.  Typical use::

    make fuzz-build fuzz-corpus
    PYTHONPATH=build/fuzz/lib python fuzz/atheris_loader.py \\
        -max_total_time=600 -artifact_prefix=fuzz/crashes/ fuzz/work fuzz/corpus
"""
from __future__ import annotations

import os
import sys

import atheris


def _import_vmcore() -> None:
    """Imported after atheris.Setup(): Setup loads atheris' libFuzzer into
    the global symbol namespace, where an instrumented vmcore's coverage
    callbacks (__sanitizer_cov_*) resolve when its modules load."""
    global _engine, ISA, ProgramError, Program, ISA_NAMES
    with atheris.instrument_imports(include=["vmcore"]):
        from vmcore import _engine, isa as ISA
        from vmcore.errors import ProgramError
        from vmcore.program import Program
    ISA_NAMES = list(ISA.ISA_NAMES)


MAX_WALK = 4096  # bytes of code walked instruction by instruction


def _walk(isa_index: int, code: bytes, bitmask: bytes, jump_table) -> None:
    n = len(code)
    for offset in (0, 1, 2, 7, 8, 24, 25, n // 2, max(0, n - 1), n, n + 1):
        _engine.decode(isa_index, code, bitmask, offset)
        _engine.is_basic_block_start(isa_index, code, bitmask, offset)
    if n <= MAX_WALK:
        _engine.instructions(isa_index, code, bitmask)
        _engine.validate_code(isa_index, code, bitmask)
        _engine.code_stats(isa_index, code, bitmask)
        _engine.CompiledModule(isa_index, code, bitmask, jump_table, True, False)
        _engine.CompiledModule(isa_index, code, bitmask, jump_table, False, True)


def _exercise(program: Program) -> None:
    program.instruction_count()
    program.basic_block_count()
    _walk(program.isa_index, program.code, program.bitmask, program.jump_table)
    try:
        program.memory_map(0x10000)
    except ProgramError:
        pass


def _try(load, data: bytes) -> None:
    try:
        program = load(data)
    except ProgramError as e:
        if not e.reason:
            raise AssertionError(f"ProgramError without a reason: {e!r}")
        if e.offset is not None and not 0 <= e.offset <= len(data):
            raise AssertionError(f"ProgramError offset {e.offset} outside the {len(data)}-byte input: {e}")
        return
    if not isinstance(program, Program):
        raise AssertionError(f"loader returned {type(program).__name__}")
    _exercise(program)


def TestOneInput(data: bytes) -> None:
    _try(Program.from_bytes, data)
    _try(Program.from_jam_standard, data)
    for name in ISA_NAMES:
        _try(lambda d, name=name: Program.from_raw_code(d, isa=name), data)
    # the decoder straight on the input: code = the input, bitmask from its
    # reversed bytes (padding bits cleared), every instruction set
    if 0 < len(data) <= MAX_WALK:
        n = len(data)
        mask = bytearray(data[::-1][: (n + 7) // 8].ljust((n + 7) // 8, b"\x01"))
        if n % 8:
            mask[-1] &= (1 << (n % 8)) - 1
        mask[0] |= 1
        for isa_index in range(len(ISA_NAMES)):
            _walk(isa_index, data, bytes(mask), [0, 1, n // 2, n])


def main() -> None:
    atheris.Setup(sys.argv, TestOneInput)
    _import_vmcore()
    with open(_engine.__file__, "rb") as f:
        instrumented = b"__sanitizer_cov_8bit_counters_init" in f.read()
    print(f"atheris_loader: vmcore from {os.path.dirname(sys.modules['vmcore'].__file__)}; "
          + ("C code instrumented for coverage" if instrumented else
             "WARNING: C code NOT instrumented (Python coverage only; see fuzz/README.md)"), file=sys.stderr)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
