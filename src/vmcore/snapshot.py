"""Snapshots of a sandbox: ``snap = sb.snapshot()``, ``sb.restore(snap)``,
``Sandbox.from_snapshot(snap)``.

A :class:`Snapshot` holds the guest's registers, gas, program counter,
heap, page permissions and memory.  The memory lives in a sealed memfd of
this process (zero pages are holes), shared by every sandbox restored
from it:

* inline sandboxes map the snapshot's spans copy-on-write
  (``MAP_PRIVATE``), so a restore drops just the pages the guest touched
  since and a fork costs only the pages it writes;
* a sandbox process's memory is a shared memfd that both processes map,
  which cannot be remapped behind the zygote's back: a restore copies the
  snapshot's data back (holes are punched), in time proportional to the
  snapshot's non-zero memory.

A snapshot survives the sandbox it came from being closed; it can be
restored into any sandbox of the same program with the same page size,
heap policy and gas metering, in any mode, when taken between calls.  A
snapshot of an inline guest stopped inside a call (``run()`` returned at
an ecalli, a step or a timeout) resumes there, in inline sandboxes
running the same compiled code.  Snapshots cannot be pickled: their
memory is a file descriptor of this process."""
from __future__ import annotations

from typing import TYPE_CHECKING, Iterable, List, Optional, Tuple

from vmcore import _engine
from vmcore.errors import SandboxError
from vmcore.heap import HeapPolicy

if TYPE_CHECKING:
    from vmcore.program import Program

Span = Tuple[int, int]


class SnapshotError(SandboxError):
    """A snapshot cannot be taken here, or does not fit the sandbox it is
    restored into (another program, page size, heap policy, gas metering,
    or a guest stopped inside a call that this sandbox cannot resume)."""


def page_spans(spans: Iterable[Span], page_size: int) -> List[Span]:
    """Whole pages covering ``spans``, sorted and merged."""
    out: List[List[int]] = []
    for address, length in sorted(spans):
        if not length:
            continue
        start = address - address % page_size
        end = min(-(-(address + length) // page_size) * page_size, 1 << 32)
        if out and start <= out[-1][1]:
            out[-1][1] = max(out[-1][1], end)
        else:
            out.append([start, end])
    return [(start, end - start) for start, end in out]


def subtract(spans: List[Span], minus: List[Span]) -> List[Span]:
    """The parts of ``spans`` outside ``minus`` (both sorted and disjoint)."""
    out: List[Span] = []
    for address, length in spans:
        start, end = address, address + length
        for m_address, m_length in minus:
            m_end = m_address + m_length
            if m_end <= start or m_address >= end:
                continue
            if m_address > start:
                out.append((start, m_address - start))
            start = max(start, m_end)
            if start >= end:
                break
        if start < end:
            out.append((start, end - start))
    return out


def same_program(a: "Program", b: "Program") -> bool:
    """The same guest: one Program, or two parsed from identical code and data."""
    return a is b or (a.isa == b.isa and a.code == b.code and a.bitmask == b.bitmask
                      and list(a.jump_table) == list(b.jump_table) and a.ro_data == b.ro_data
                      and a.rw_data == b.rw_data and a.ro_data_size == b.ro_data_size
                      and a.rw_data_size == b.rw_data_size and a.stack_size == b.stack_size
                      and a.imports == b.imports and a.exports == b.exports)


class Snapshot:
    """A sandbox's state at one moment (see vmcore.snapshot).  Read-only
    attributes: ``program``, ``page_size``, ``heap_policy``,
    ``memory_limit``, ``gas`` (None without metering), ``pc``,
    ``resumable`` (taken inside a call, resumes there), ``spans`` (the
    guest memory it holds, page aligned) and ``stored_bytes`` (memory its
    pages take: the non-zero pages)."""

    __slots__ = ("program", "page_size", "heap_policy", "memory_limit", "gas_metering", "gas_model", "_memory",
                 "_regs", "_gas", "pc", "_next_pc", "_arg", "_heap", "_resume", "_granted")

    def __init__(self, sandbox) -> None:
        b = sandbox._idle()
        backend = sandbox._lifecycle()
        resume = None
        if b.can_resume():
            if not isinstance(b, _engine.Instance):
                raise SnapshotError(
                    f"the guest is stopped inside a call (at pc {b.pc}); a sandbox process can be snapshotted only "
                    "between calls: let the call finish (or reset) first, or snapshot an inline sandbox")
            resume = (b.module, b.resume_index)
        self._granted = frozenset(_engine.granted_spans(b))
        spans = page_spans(backend.touched() | self._granted, backend.memory_map.page_size)
        self.program = sandbox.program
        self.page_size = backend.memory_map.page_size
        self.heap_policy: HeapPolicy = sandbox.heap_policy
        self.memory_limit: Optional[int] = sandbox.memory_limit
        self.gas_metering: bool = sandbox._gas_metering
        self.gas_model: str = sandbox.gas_model
        self._regs = b.get_regs()
        self._gas = b.gas
        self.pc: int = b.pc
        self._next_pc = b.next_pc
        self._arg = b.arg
        self._heap = b.heap_state()
        self._resume = resume
        self._memory = _engine.snapshot_memory(b, spans)

    @property
    def gas(self) -> Optional[int]:
        return self._gas if self.gas_metering else None

    @property
    def resumable(self) -> bool:
        return self._resume is not None

    @property
    def spans(self) -> List[Span]:
        return list(self._memory.spans)

    @property
    def stored_bytes(self) -> int:
        return self._memory.stored_bytes

    def restore_into(self, sandbox) -> None:
        """Sandbox.restore's work: check the fit, then memory, state."""
        b = sandbox._idle()
        backend = sandbox._lifecycle()
        if not same_program(self.program, sandbox.program):
            raise SnapshotError(f"the snapshot is of another program ({self.program!r}); this sandbox runs "
                                f"{sandbox.program!r}")
        for what, mine, theirs in (("page size", self.page_size, backend.memory_map.page_size),
                                   ("heap policy", self.heap_policy, sandbox.heap_policy),
                                   ("gas metering", self.gas_metering, sandbox._gas_metering)):
            if mine != theirs:
                raise SnapshotError(f"the snapshot was taken with {what} {mine!r}, this sandbox has {theirs!r}; "
                                    "use Sandbox.from_snapshot(snapshot) for a sandbox that fits")
        if self._resume is not None and getattr(b, "module", None) is not self._resume[0]:
            raise SnapshotError(f"the snapshot's guest is stopped inside a call (at pc {self.pc}); it resumes only "
                                "in an inline sandbox running the same compiled code (same gas model and step "
                                "tracing)")
        base, top, mapped_end, max_top = self._heap
        granted = _engine.granted_spans(b)
        if granted <= self._granted and b.heap_state()[2] <= mapped_end:
            extra = []  # the same layout, the heap mapped no further, nothing else opened: all inside the snapshot
        else:
            now = page_spans(backend.touched() | granted, self.page_size)
            extra = subtract(now, list(self._memory.spans))
        _engine.restore_memory(b, self._memory, extra, self._granted)
        heap = backend.prepared.heap
        b.configure_heap(base, top, mapped_end, max_top, heap.grow_pages)
        b.set_regs(self._regs)
        b.gas = self._gas
        b.take_hostcall_error()
        resume = self._resume[1] if self._resume is not None else None
        b.restore_position(self.pc, self._next_pc, self._arg, resume)

    def __reduce__(self):
        raise TypeError("a vmcore Snapshot cannot be pickled: its memory is a memfd of this process "
                        "(restore it here, or save what you need with sandbox.memory.read)")

    def __repr__(self) -> str:
        where = "inside a call" if self._resume is not None else "between calls"
        return (f"<Snapshot of {self.program!r} at pc {self.pc} ({where}), {len(self._memory.spans)} spans, "
                f"{self.stored_bytes:,} bytes stored>")


__all__ = ["Snapshot", "SnapshotError"]
