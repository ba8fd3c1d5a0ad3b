# Included by vmcore/_engine.pyx.  Guest memory snapshots (vmcore/snapshot.h)
# and zero-copy views of guest memory (GuestBuffer), for every engine.  The
# policy (which spans, what a snapshot must match, what the public objects
# look like) is vmcore/snapshot.py's and vmcore/memory.py's.
from cpython.buffer cimport PyBUF_WRITABLE
from posix.unistd cimport close as _close_fd
from posix.mman cimport mmap as _mmap, munmap as _munmap, PROT_READ, PROT_WRITE, MAP_SHARED, MAP_FAILED


cdef int _cow_apply(vm_memory *mem, int fd, spans, int how) except -1:
    """vm_cow_map (0), vm_cow_revert (1) or vm_cow_unmap (2) over spans."""
    cdef size_t n
    cdef vm_guest_span *v = _spans(spans, &n)
    cdef int rc
    if how == 0:
        rc = vm_cow_map(mem, fd, v, n)
    elif how == 1:
        rc = vm_cow_revert(mem, fd, v, n)
    else:
        rc = vm_cow_unmap(mem, v, n)
    free(v)
    if rc != 0:
        raise OSError(errno, f"cannot remap guest memory for a snapshot: {os.strerror(errno)}")
    return 0


cdef class SnapshotMemory:
    """A copy of a guest's memory (a sealed memfd, offset = guest address,
    zero pages left as holes) and the page permissions of its spans.
    Immutable; shared by every sandbox restored from it."""
    cdef int fd
    cdef readonly tuple spans      # ((address, length), ...): page aligned, sorted, disjoint
    cdef readonly bytes perms      # one byte per page of the spans, in order
    cdef readonly uint32_t page_size

    def __cinit__(self):
        self.fd = -1

    def __dealloc__(self):
        if self.fd >= 0:
            _close_fd(self.fd)

    @property
    def stored_bytes(self):
        """Memory the snapshot's pages take (the memfd's allocated blocks)."""
        return os.fstat(self.fd).st_blocks * 512

    def __reduce__(self):
        raise TypeError("guest memory snapshots cannot be pickled (they are a memfd of this process)")


def snapshot_memory(Guest g, spans):
    """Capture ``spans`` (page aligned, sorted, disjoint) of the guest's
    memory and their permissions.  An inline guest's spans are then mapped
    copy-on-write from the snapshot (same bytes), so restoring it into the
    same guest costs only what the guest touches afterwards."""
    cdef SnapshotMemory s = SnapshotMemory()
    cdef size_t n
    cdef vm_guest_span *v
    cdef int rc
    cdef uint32_t shift
    cdef uint64_t address, length
    g._ensure()
    if g.in_call or g.running:
        raise SandboxBusy("a snapshot can only be taken between calls")
    s.page_size = g.mem.page_size
    s.spans = tuple(spans)
    shift = g.mem.page_shift
    parts = []
    for span in s.spans:
        address, length = span
        parts.append(PyBytes_FromStringAndSize(<char *>g.mem.perms + (address >> shift), length >> shift))
    s.perms = b"".join(parts)
    s.fd = vm_snapshot_create()
    if s.fd < 0:
        raise OSError(errno, f"cannot create a snapshot memfd: {os.strerror(errno)}")
    v = _spans(s.spans, &n)
    with nogil:
        rc = vm_snapshot_capture(s.fd, &g.mem, v, n)
    free(v)
    if rc != 0:
        raise OSError(errno, f"cannot write the snapshot: {os.strerror(errno)}")
    if type(g) is Instance:
        (<Instance>g)._cow_switch(s)
    return s


def restore_memory(Guest g, SnapshotMemory s, extra, granted):
    """Put the snapshot's memory and permissions back; ``extra`` are the
    spans accessible now outside the snapshot's (page aligned): zeroed and
    made inaccessible; ``granted``: the spans set_perms had opened when the
    snapshot was taken.  BufferError while views of the memory exist."""
    cdef size_t n
    cdef vm_guest_span *v
    cdef int rc = 0
    cdef uint32_t shift, lo = 0xffffffff, hi = 0
    cdef uint64_t first, count, address, length
    cdef const unsigned char *perms = s.perms
    cdef Process p
    g._ensure()
    if g.in_call or g.running:
        raise SandboxBusy("a snapshot can only be restored between calls")
    if g.exports:
        raise BufferError(_EXPORTED)
    if s.page_size != g.mem.page_size:
        raise SandboxError(f"the snapshot has {s.page_size}-byte pages, this sandbox {g.mem.page_size}")
    shift = g.mem.page_shift
    for span in extra:
        address, length = span
        g.discard_fn(g.discard_context, address, length)
        memset(g.mem.perms + (address >> shift), VM_PERM_NONE, length >> shift)
        lo = min(lo, address >> shift)
        hi = max(hi, (address + length) >> shift)
    if type(g) is Instance:
        (<Instance>g)._cow_switch(s)
    else:
        p = <Process>g
        v = _spans(s.spans, &n)
        with nogil:
            rc = vm_snapshot_load(s.fd, &g.mem, v, n, _punch, &p.zy.z)
        free(v)
        if rc != 0:
            raise OSError(errno, f"cannot restore the snapshot: {os.strerror(errno)}")
    first = 0
    for span in s.spans:
        address, length = span
        count = length >> shift
        memcpy(g.mem.perms + (address >> shift), perms + first, count)
        first += count
        lo = min(lo, address >> shift)
        hi = max(hi, (address + length) >> shift)
    if type(g) is Process and lo < hi:
        vm_host_perms_changed((<Process>g).ctx, lo, hi)
    g.granted = set(granted) if granted else None  # with the layout: what a later scrub must wipe
    return 0


_EXPORTED = ("views of this sandbox's guest memory are still in use (memory.view()); release them first "
             "(memoryview.release(), or a with-block) -- the memory cannot change under them")


cdef class GuestBuffer:
    """The buffer behind ``GuestMemory.view()``: ``length`` bytes of guest
    memory at ``address``, read only unless ``writable``.  While a buffer is
    exported the guest refuses what would change the mapping under it
    (scrub, restore, protect: BufferError), and its memory stays mapped
    even if the sandbox is closed or its process dies: an inline guest
    is kept alive (and never recycled) by this object; a sandbox process's
    range is mapped here a second time from its memfd."""
    cdef Guest guest
    cdef char *data
    cdef void *mapping
    cdef size_t mapping_length
    cdef readonly uint32_t address
    cdef readonly uint32_t length
    cdef readonly bint writable

    def __cinit__(self, Guest g, uint32_t address, uint32_t length, bint writable):
        cdef uint64_t start, end
        cdef int prot
        cdef Process p
        g._check(address, length)
        self.guest = g
        self.address = address
        self.length = length
        self.writable = writable
        self.mapping = NULL
        if type(g) is Instance:
            self.data = <char *>g.mem.base + address
            return
        p = <Process>g
        vm_page_span(&g.mem, address, length, &start, &end)
        if end == start:  # an empty view still maps a page, so data points into a mapping
            end = start + g.mem.page_size
        prot = PROT_READ | (PROT_WRITE if writable else 0)
        self.mapping = _mmap(NULL, end - start, prot, MAP_SHARED, p.zy.z.memory_fd, start)
        if self.mapping == MAP_FAILED:
            self.mapping = NULL
            raise OSError(errno, f"cannot map guest memory: {os.strerror(errno)}")
        self.mapping_length = end - start
        self.data = <char *>self.mapping + (address - start)

    def __dealloc__(self):
        if self.mapping != NULL:
            _munmap(self.mapping, self.mapping_length)

    def __getbuffer__(self, Py_buffer *buffer, int flags):
        if (flags & PyBUF_WRITABLE) and not self.writable:
            raise BufferError("this view of guest memory is read only (the guest cannot write those pages)")
        buffer.buf = self.data
        buffer.obj = self
        buffer.len = self.length
        buffer.readonly = not self.writable
        buffer.itemsize = 1
        buffer.format = "B"
        buffer.ndim = 1
        buffer.shape = &buffer.len
        buffer.strides = &buffer.itemsize
        buffer.suboffsets = NULL
        buffer.internal = NULL
        self.guest.exports += 1

    def __releasebuffer__(self, Py_buffer *buffer):
        self.guest.exports -= 1


def granted_spans(Guest g):
    """The spans set_perms made accessible since the last scrub."""
    return set(g.granted) if g.granted else set()
