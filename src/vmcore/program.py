"""vmcore.Program: a parsed, validated guest program of any container
format.  Parsing and validation run in C (vmcore._engine); this module
turns the parts into a Python object and C parse errors into ProgramError."""
from __future__ import annotations

import array
import dataclasses
import os
from typing import Dict, List, Optional, Union

from vmcore import _engine, abi as _abi, debuginfo as _debuginfo, gas as _gas, isa as _isa
from vmcore.errors import ExportNotFound, ProgramError
from vmcore.memory_map import MAX_PAGE_SIZE, MemoryMap

BytesLike = Union[bytes, bytearray, memoryview]

DEFAULT_PAGE_SIZE = _abi.DEFAULT_PAGE_SIZE


class ModuleCache:
    """What a Program builds once per process and configuration: memory
    maps, initial layouts, block gas costs, threaded code and modules in
    shared memory (interpreter or native).  Per process: a pickled or
    copied Program starts with an empty one.  Each getter takes the key's
    parts and ``build()``, called on a miss.  ``recipes`` is the Sandbox
    constructor's own table (its options -> what they resolve to), read
    directly on its hot path."""

    __slots__ = ("_maps", "_layouts", "_block_gas", "_threaded", "_shared", "_native", "_debug", "recipes")

    def __init__(self) -> None:
        for name in self.__slots__:
            setattr(self, name, {})

    def __bool__(self) -> bool:
        return any(getattr(self, name) for name in self.__slots__)

    @staticmethod
    def _get(table: dict, key, build):
        value = table.get(key)
        if value is None:
            value = table[key] = build()
        return value

    def memory_map(self, page_size: int, build):
        return self._get(self._maps, page_size, build)

    def layout(self, page_size: int, heap_policy, build):
        return self._get(self._layouts, (page_size, heap_policy), build)

    def block_gas_costs(self, model, stop_at_gap: bool, build):
        return self._get(self._block_gas, (model, stop_at_gap), build)

    def threaded_code(self, gas_metering: bool, step_tracing: bool, model, build):
        return self._get(self._threaded, (gas_metering, step_tracing, model), build)

    def shared_module(self, gas_metering: bool, step_tracing: bool, model, build):
        return self._get(self._shared, (gas_metering, step_tracing, model), build)

    def native_module(self, gas_metering: bool, step_tracing: bool, model, build):
        return self._get(self._native, (gas_metering, step_tracing, model), build)

    def debug_info(self, build):
        return self._get(self._debug, None, build)
# Vectors and raw code blobs default to latest64's numbering (what the JAM
# test vectors use).
DEFAULT_RAW_ISA = "latest64"


# Host memory per program (issue #15): loading, and each engine a
# sandbox uses, costs up to ~30 bytes of host memory per byte of guest code
# (the interpreter's threaded code is a 24-byte record per instruction plus
# a 4-byte pc index per code byte; native code ~5 bytes plus its pc map),
# before any guest code runs and outside memory_limit=.  So the blob size
# is capped before anything is parsed or compiled: 16 MiB by default (at
# most ~0.5 GB per engine), per call with max_size=, or for the process
# with vmcore.program.MAX_PROGRAM_SIZE.
MAX_PROGRAM_SIZE = 16 << 20


def _as_bytes(data: object, what: str, max_size: Optional[int] = None) -> bytes:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"{what} must be bytes-like, got {type(data).__name__}")
    _check_size(memoryview(data).nbytes, what, max_size)
    return bytes(data)


def _check_size(size: int, what: str, max_size: Optional[int]) -> None:
    limit = MAX_PROGRAM_SIZE if max_size is None else max_size
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
        raise ValueError(f"max_size must be a number of bytes, got {limit!r}")
    if size > limit:
        raise ProgramError(f"the {what} is {size:,} bytes, more than the {limit:,} allowed (max_size=, default "
                           f"vmcore.program.MAX_PROGRAM_SIZE): loading it could cost ~30x that in host memory")


def _parse(fn, *args) -> dict:
    try:
        return fn(*args)
    except _engine.ParseError as e:
        offset, message = e.args
        raise ProgramError(message, offset=offset) from None


class JumpTable(array.array):
    """The jump table's targets: a compact array of uint32 (4 bytes per
    entry, not a list's ~36) that compares equal to a list of the same
    ints."""

    def __new__(cls, values=()):
        table = super().__new__(cls, "I")
        if isinstance(values, array.array):
            table.frombytes(memoryview(values).cast("B"))
        else:
            table.extend(values)
        return table

    def __eq__(self, other):
        if isinstance(other, (list, tuple)):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other))
        return super().__eq__(other)

    def __ne__(self, other):
        return not self == other

    __hash__ = None

    def __repr__(self) -> str:
        return repr(self.tolist())


class Program:
    """A guest program: code, bitmask, jump table, data sections, imports
    and exports.  Build one with :meth:`load`, :meth:`from_bytes`,
    :meth:`from_raw_code` or :meth:`from_jam_standard`."""

    isa: str
    exports: Dict[str, int]
    imports: List[str]
    code: bytes
    bitmask: bytes
    jump_table: List[int]
    ro_data: bytes
    rw_data: bytes
    ro_data_size: int
    rw_data_size: int
    stack_size: int
    heap_pages: int
    format: str

    def __init__(self, parts: dict, *, format: str, strict: bool = False) -> None:
        self.format = format
        self.isa = _isa.ISA_NAMES[parts["isa"]]
        self._isa_index = parts["isa"]
        self._is_64_bit = _isa.is_64_bit(self.isa)
        self.code = parts["code"]
        self.bitmask = parts["bitmask"]
        self.jump_table = JumpTable(parts["jump_table"])
        self.jump_table_entry_size = parts["jump_table_entry_size"]
        self.ro_data = parts["ro_data"]
        self.rw_data = parts["rw_data"]
        self.ro_data_size = parts["ro_data_size"]
        self.rw_data_size = parts["rw_data_size"]
        self.stack_size = parts["stack_size"]
        self.heap_pages = parts["heap_pages"]
        self._code_offset: int = parts["code_offset"]
        self._debug_sections = parts["debug_sections"]
        self._cache = ModuleCache()

        self.imports = []
        for raw, offset in parts["imports"]:
            self.imports.append(self._symbol(raw, offset, "import"))
        self.exports = {}
        for raw, pc, offset in parts["exports"]:
            name = self._symbol(raw, offset, "export")
            if name in self.exports:
                raise ProgramError(f"duplicate export {name!r}", offset=offset)
            self.exports[name] = pc

        self.warnings: List[str] = self._check(strict)

    @staticmethod
    def _symbol(raw: bytes, offset: int, what: str) -> str:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ProgramError(f"{what} name is not valid UTF-8: {raw[:32]!r}", offset=offset) from None

    def _check(self, strict: bool) -> List[str]:
        """What the reference checks at load (and, with strict=True, what
        its strict mode also refuses); returns the non-fatal findings."""
        code_len = len(self.code)
        if self.isa == "jam_v1":
            bad = _engine.validate_code(_isa.isa_index(self.isa), self.code, self.bitmask)
            if bad >= 0:
                error = ProgramError(f"invalid instruction at code offset {bad}: jam_v1 code must decode cleanly "
                                     "and end with a terminator", offset=self._code_offset + bad)
                error.pc = bad
                raise error
        warnings = []
        for i, target in enumerate(self.jump_table):
            if target >= code_len:
                warnings.append(f"jump table entry #{i} points to {target}, past the {code_len}-byte code")
        for name, pc in self.exports.items():
            if pc >= code_len:
                warnings.append(f"export {name!r} points to {pc}, past the {code_len}-byte code")
        if strict and warnings:
            raise ProgramError("; ".join(warnings))
        # The memory layout must fit at the smallest page size.
        self.memory_map(DEFAULT_PAGE_SIZE)
        return warnings

    # -- construction -------------------------------------------------
    @classmethod
    def from_bytes(cls, data: BytesLike, *, strict: bool = False, max_size: Optional[int] = None) -> "Program":
        """Parse a ``.polkavm`` blob (any instruction set); at most
        ``max_size`` bytes (default MAX_PROGRAM_SIZE, 16 MiB)."""
        data = _as_bytes(data, "program data", max_size)
        return cls(_parse(_engine.parse_polkavm, data), format="polkavm", strict=strict)

    @classmethod
    def load(cls, path: Union[str, os.PathLike], *, strict: bool = False, max_size: Optional[int] = None) -> "Program":
        """Read and parse a ``.polkavm`` file (size checked before reading)."""
        with open(path, "rb") as f:
            _check_size(os.fstat(f.fileno()).st_size, "program file", max_size)
            return cls.from_bytes(f.read(), strict=strict, max_size=max_size)

    @classmethod
    def from_raw_code(cls, blob: BytesLike, *, isa: str = DEFAULT_RAW_ISA, strict: bool = False,
                      max_size: Optional[int] = None) -> "Program":
        """Parse a JAM code blob ("deblob": jump table, code, bitmask)."""
        blob = _as_bytes(blob, "code blob", max_size)
        return cls(_parse(_engine.parse_code_blob, blob, _isa.isa_index(isa)), format="raw", strict=strict)

    @classmethod
    def from_jam_standard(cls, blob: BytesLike, *, strict: bool = False,
                          max_size: Optional[int] = None) -> "Program":
        """Parse a JAM standard program (ro/rw data, heap pages, stack, code blob)."""
        blob = _as_bytes(blob, "JAM standard program", max_size)
        return cls(_parse(_engine.parse_jam_standard, blob), format="jam-standard", strict=strict)

    # -- derived ------------------------------------------------------
    @property
    def is_64_bit(self) -> bool:
        return self._is_64_bit

    @property
    def isa_index(self) -> int:
        return self._isa_index

    def memory_map(self, page_size: int = DEFAULT_PAGE_SIZE) -> MemoryMap:
        """The guest memory layout for a page size (4 KiB..64 KiB)."""
        return self._cache.memory_map(page_size, lambda: self._build_memory_map(page_size))

    def _build_memory_map(self, page_size: int) -> MemoryMap:
        rw = self.rw_data_size + self.heap_pages * page_size
        m = MemoryMap.build(page_size=page_size, ro_data_size=self.ro_data_size, rw_data_size=rw,
                            stack_size=self.stack_size, aux_data_size=self._aux_size())
        if self.format == "jam-standard":
            # GP 0.8 (grow_heap's b): the heap may reach one major zone
            # below the page-rounded stack, not the zone-rounded one.
            limit = m.stack_address_low - MAX_PAGE_SIZE
            m = dataclasses.replace(m, max_heap_size=limit - m.heap_base)
        return m

    def _aux_size(self) -> int:
        # The JAM standard layout reserves the argument zone (Z_I) at the top.
        return 1 << 24 if self.format == "jam-standard" else 0

    # -- pickling and copying: the parts, never the caches ---------------
    def __getstate__(self) -> dict:
        """Everything but ``_cache`` (compiled modules, shared memfds and
        layouts are per process and rebuilt on demand)."""
        state = self.__dict__.copy()
        state["_cache"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._cache = ModuleCache()

    def export_pc(self, name: str) -> int:
        """The pc of export ``name``; ExportNotFound (a KeyError) if none."""
        try:
            return self.exports[name]
        except KeyError:
            known = ", ".join(sorted(self.exports)) or "none"
            raise ExportNotFound(f"no export named {name!r} (exports: {known})", name=name) from None

    def instruction_count(self) -> int:
        return _engine.code_stats(self.isa_index, self.code, self.bitmask)[0]

    def basic_block_count(self) -> int:
        return _engine.code_stats(self.isa_index, self.code, self.bitmask)[1]

    def is_jump_target(self, offset: int) -> bool:
        return _engine.is_basic_block_start(self.isa_index, self.code, self.bitmask, offset)

    @property
    def default_gas_model(self) -> str:
        """The gas model a Sandbox of this program uses unless told
        otherwise: ``"full"`` for jam_v1, ``"naive"`` otherwise (vmcore.gas)."""
        return _gas.default_for(self.isa).name

    def block_gas_costs(self, model: Optional[str] = "full", *, stop_at_gap: bool = False) -> Dict[int, int]:
        """The gas each basic block costs under a cost model (see
        vmcore.gas: "naive", "full", "full-l1", "full-l3"; None: this
        program's default), as the engines charge it on entering the block:
        ``{block start pc: cost}`` in program order, every block of the
        code (the implicit trap at the end included).  ``stop_at_gap``:
        only the blocks from offset 0 up to the first gap in the bitmask,
        as PolkaVM's spectool lists a test vector's blocks."""
        m = _gas.resolve(model, self.isa)
        return dict(self._cache.block_gas_costs(m, stop_at_gap, lambda: dict(_engine.block_gas_costs(
            self.isa_index, self.code, self.bitmask, m.kind, m.memory_access_cost, stop_at_gap))))

    # -- debug info (vmcore.debuginfo) ---------------------------------
    @property
    def debug_info(self) -> _debuginfo.DebugInfo:
        """The debug sections, decoded on first use (false when there are
        none: raw code blobs, JAM standard programs, stripped blobs)."""
        return self._cache.debug_info(lambda: _debuginfo.DebugInfo(self._debug_sections))

    @property
    def has_debug_info(self) -> bool:
        """Whether the blob carries line programs (source locations)."""
        return bool(self._debug_sections[1][1]) and bool(self._debug_sections[2][1])

    def source_location(self, pc: int) -> Optional[_debuginfo.SourceLocation]:
        """Where code offset ``pc`` comes from (function, file, line,
        column, inlined frames), from the blob's debug info: None when it
        has none for ``pc``; ProgramError (with the blob offset) when the
        debug info covering ``pc`` is malformed.  Loading never looks at
        debug info, so a program with bad debug info still loads and runs."""
        return self.debug_info.location(pc)

    def __repr__(self) -> str:
        return (f"<Program {self.isa} code={len(self.code)}B exports={list(self.exports)} "
                f"imports={self.imports}>")
