"""Execution backends.  A backend owns one guest instance (registers, gas,
memory) and knows how to run it; the Sandbox on top owns the policy.  New
backends/isolation modes register in BACKENDS."""
from __future__ import annotations

from typing import Callable, Dict, Tuple

from vmcore import _interp
from vmcore.errors import SandboxError
from vmcore.layout import initial_layout


def _compiled(program, gas_metering: bool, step_tracing: bool) -> "_interp.CompiledModule":
    """Threaded code is cached per Program and configuration."""
    key = ("interpreter", gas_metering, step_tracing)
    module = program._cache.get(key)
    if module is None:
        module = _interp.CompiledModule(program.isa_index, program.code, program.bitmask, program.jump_table,
                                        gas_metering, step_tracing)
        program._cache[key] = module
    return module


def _widen(value: int, mask: int) -> int:
    value &= mask
    if mask == 0xFFFFFFFF and value & 0x80000000:
        value |= 0xFFFFFFFF00000000
    return value


# Closed sandboxes' guest memory, scrubbed and ready for reuse: creating a
# sandbox from here costs no mmap and no page faults.  Keyed by page size.
_POOL: Dict[int, list] = {}
POOL_LIMIT = 16


class InlineInterpreter:
    """The C interpreter running in this process, on inline guest memory."""

    backend = "interpreter"
    isolation = "inline"
    pid = None

    def __init__(self, program, memory_map, heap, gas_metering: bool, **options) -> None:
        if options.get("strict"):
            raise SandboxError("strict isolation needs isolation='process' (the inline backend runs the guest "
                               "in this process)")
        self.program = program
        self.memory_map = memory_map
        self.heap_policy = heap
        self.gas_metering = gas_metering
        self.mask = 0xFFFFFFFFFFFFFFFF if program.is_64_bit else 0xFFFFFFFF
        module = _compiled(program, gas_metering, False)
        pool = _POOL.get(memory_map.page_size)
        if pool:
            self.inst = pool.pop()
            self.inst.set_module(module)
        else:
            self.inst = _interp.Instance(module, memory_map.page_size)
        self.closed = False
        self._install()

    def _layout(self):
        key = ("layout", self.memory_map.page_size, self.heap_policy)
        layout = self.program._cache.get(key)
        if layout is None:
            layout = self.program._cache[key] = initial_layout(self.program, self.memory_map, self.heap_policy)
        return layout

    def _touched(self):
        """Every span the guest could have written: the layout's regions and
        the heap as far as it was mapped."""
        return self._touched_of(self.inst)

    def _install(self) -> None:
        regions, heap = self._layout()
        inst = self.inst
        for region in regions:
            inst.set_perms(region.address, region.size, region.perm)
            if region.data:
                inst.write(region.address, region.data)
        inst.configure_heap(heap.base, heap.base, heap.mapped_end, heap.max_top, heap.grow_pages)
        self.regions = regions

    def reset(self) -> None:
        """Back to the freshly-instantiated state: registers, gas, memory
        (only the spans the guest could have touched are scrubbed)."""
        self.inst.scrub(self._touched())
        self._install()

    def set_step_tracing(self, enabled: bool) -> None:
        self.inst.set_module(_compiled(self.program, self.gas_metering, enabled))

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        inst, self.inst = self.inst, None
        pool = _POOL.setdefault(self.memory_map.page_size, [])
        if len(pool) < POOL_LIMIT and not inst.running:
            try:
                inst.scrub(self._touched_of(inst))
            except Exception:
                return
            pool.append(inst)

    def _touched_of(self, inst):
        _, _, mapped_end, _ = inst.heap_state()
        rw = self.memory_map.rw_data_address
        return [(r.address, r.size) for r in self.regions] + [(rw, max(0, mapped_end - rw))]

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    # State access: thin forwards kept explicit for readability.
    # Registers as the program sees them: 32-bit programs keep them
    # sign-extended internally but read and write 32-bit values.
    def get_reg(self, i): return self.inst.get_reg(i) & self.mask
    def set_reg(self, i, v): self.inst.set_reg(i, _widen(v, self.mask))
    def get_regs(self): return [v & self.mask for v in self.inst.get_regs()]
    def set_regs(self, values): self.inst.set_regs([_widen(v, self.mask) for v in values])
    def first_inaccessible(self, a, n, w): return self.inst.first_inaccessible(a, n, w)
    def read(self, a, n): return self.inst.read(a, n)
    def read_into(self, a, buf): self.inst.read_into(a, buf)
    def write(self, a, data): self.inst.write(a, data)
    def zero(self, a, n): self.inst.zero(a, n)
    def sbrk(self, n): return self.inst.sbrk(n)
    def set_pc(self, pc): return self.inst.set_pc(pc)
    def run(self): return self.inst.run()
    def serve(self, handlers, caller, mask): return _interp.serve_hostcalls(self.inst, handlers, caller, mask)
    def call(self, pc, args, sp, handlers, caller, mask):
        return _interp.call(self.inst, pc, args, sp, handlers, caller, mask)
    def call_gate(self, exports, sp, handlers, caller, mask, slow, doc):
        return _interp.CallGate(self.inst, exports, sp, handlers, caller, mask, slow, doc)
    @property
    def last_exit(self): return self.inst.last_exit
    def take_hostcall_error(self): return self.inst.take_hostcall_error()
    def interrupt(self): self.inst.interrupt()
    def clear_interrupt(self): self.inst.clear_interrupt()

    @property
    def gas(self): return self.inst.gas
    @gas.setter
    def gas(self, v): self.inst.gas = v
    @property
    def pc(self): return self.inst.pc
    @property
    def next_pc(self): return self.inst.next_pc
    @property
    def arg(self): return self.inst.arg
    @property
    def heap_top(self): return self.inst.heap_state()[1]
    @property
    def heap_base(self): return self.inst.heap_state()[0]


BACKENDS: Dict[Tuple[str, str], Callable] = {
    ("interpreter", "inline"): InlineInterpreter,
}

from vmcore.process_backend import ProcessCompiler, ProcessInterpreter, cpu_supports_native  # noqa: E402

BACKENDS[("interpreter", "process")] = ProcessInterpreter
BACKENDS[("compiler", "process")] = ProcessCompiler

# What backend="auto" picks, first match wins: inline stays the default
# (no process per sandbox); asking for a sandbox process gets native code
# where the CPU can run it.
_AUTO_ORDER = [("interpreter", "inline"), ("compiler", "process"), ("interpreter", "process")]


_SELECTED: Dict[Tuple[str, str], Callable] = {}


def select(backend: str, isolation: str) -> Callable:
    """Resolve 'auto' and check the combination exists."""
    factory = _SELECTED.get((backend, isolation))
    if factory is None:
        factory = _SELECTED[(backend, isolation)] = _resolve(backend, isolation)
    return factory


def _resolve(backend: str, isolation: str) -> Callable:
    if backend not in ("auto", "interpreter", "compiler"):
        raise ValueError(f"unknown backend {backend!r}; expected 'auto', 'interpreter' or 'compiler'")
    if isolation not in ("auto", "inline", "process"):
        raise ValueError(f"unknown isolation {isolation!r}; expected 'auto', 'inline' or 'process'")
    order = _AUTO_ORDER + [key for key in BACKENDS if key not in _AUTO_ORDER]
    candidates = [(b, i) for (b, i) in order
                  if (b, i) in BACKENDS and backend in ("auto", b) and isolation in ("auto", i)
                  and not (backend == "auto" and b == "compiler" and cpu_supports_native() is not None)]
    if not candidates:
        available = ", ".join(f"{b}/{i}" for b, i in BACKENDS)
        raise ValueError(f"backend={backend!r} with isolation={isolation!r} is not available in this build "
                         f"(available: {available})")
    return BACKENDS[candidates[0]]


__all__ = ["BACKENDS", "select", "InlineInterpreter", "ProcessInterpreter", "ProcessCompiler", "SandboxError"]
