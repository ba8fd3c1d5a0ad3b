"""What every backend shares: a backend owns one engine guest (an
``_engine.Instance`` inline, a ``_engine.Process`` in a sandbox process)
and forwards state access to it; the hostcall loop and call are the
Guest's (vmcore/engine/guest.pyx), Sandbox.call is SandboxCore's
(vmcore/engine/sandbox_core.pyx)."""
from __future__ import annotations


class InstanceBackend:
    """Forwards to ``self.inst``; subclasses set ``program``,
    ``memory_map``, ``heap_policy``, ``mask`` and ``inst``."""

    def _layout(self):
        """The initial memory layout, computed once per Program and policy."""
        from vmcore.layout import initial_layout
        return self.program._cache.layout(self.memory_map.page_size, self.heap_policy,
                                          lambda: initial_layout(self.program, self.memory_map, self.heap_policy))

    def _install(self) -> None:
        """The initial memory layout and heap into the guest (new, reset
        or restarted): the one install path of every backend."""
        regions, heap = self._layout()
        inst = self.inst
        for region in regions:
            inst.set_perms(region.address, region.size, region.perm)
            if region.data:
                inst.write(region.address, region.data)
        inst.configure_heap(heap.base, heap.top, heap.mapped_end, heap.max_top, heap.grow_pages)
        self.regions = regions

    # Registers as the program sees them: the engines convert at their
    # accessors (vm_reg_from_host / vm_reg_to_host in include/vmcore/interp.h).
    def get_reg(self, i): return self.inst.get_reg(i)
    def set_reg(self, i, v): self.inst.set_reg(i, v)
    def get_regs(self): return self.inst.get_regs()
    def set_regs(self, values): self.inst.set_regs(values)
    def first_inaccessible(self, a, n, w): return self.inst.first_inaccessible(a, n, w)
    def read(self, a, n): return self.inst.read(a, n)
    def read_into(self, a, buf): self.inst.read_into(a, buf)
    def write(self, a, data): self.inst.write(a, data)
    def zero(self, a, n): self.inst.zero(a, n)
    def set_perms(self, a, n, perm): self.inst.set_perms(a, n, perm)
    def perm(self, a): return self.inst.perm(a)
    def sbrk(self, n): return self.inst.sbrk(n)
    def set_pc(self, pc): return self.inst.set_pc(pc)
    def run(self): return self.inst.run()
    def serve(self, handlers, caller, mask): return self.inst.serve_hostcalls(handlers, caller, mask)
    def call(self, pc, args, sp, handlers, caller, mask):
        return self.inst.call(pc, args, sp, handlers, caller, mask)
    @property
    def last_exit(self): return self.inst.last_exit
    def take_hostcall_error(self): return self.inst.take_hostcall_error()
    def interrupt(self): self.inst.interrupt()
    def can_resume(self): return self.inst.can_resume()

    @property
    def in_call(self): return self.inst.in_call

    def _touched(self):
        """Every span the guest could have written since the last scrub:
        the layout's regions and the heap as far as it was mapped (the
        engine adds whatever set_perms made accessible)."""
        _, _, mapped_end, _ = self.inst.heap_state()
        rw = self.memory_map.rw_data_address
        spans = {(r.address, r.size) for r in self.regions}
        spans.add((rw, max(0, mapped_end - rw)))
        return spans

    def scrub(self) -> None:
        """Wipe for reuse (reset, or a closed sandbox's instance going back
        to a pool): the one recycling path of every backend; the engine
        zeroes the spans and puts its state (and a sandbox process's VmCtx)
        back to a new one's (vmcore/scrub.h)."""
        self.inst.scrub(self._touched())

    def reset(self) -> None:
        """Back to the freshly-instantiated state: registers, gas, memory
        (only the spans the guest could have touched are scrubbed)."""
        self.scrub()
        self._install()
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
