# C declarations for include/vmcore/snapshot.h (guest memory snapshots).
from vmcore.includes.interp cimport vm_memory
from vmcore.includes.scrub cimport vm_guest_span, vm_discard_fn

cdef extern from "vmcore/snapshot.h":
    int vm_snapshot_create() nogil
    int vm_snapshot_capture(int fd, const vm_memory *memory, const vm_guest_span *spans, size_t count) nogil
    int vm_snapshot_load(int fd, const vm_memory *memory, const vm_guest_span *spans, size_t count,
                         vm_discard_fn discard, void *ctx) nogil
    int vm_cow_map(const vm_memory *memory, int fd, const vm_guest_span *spans, size_t count) nogil
    int vm_cow_revert(const vm_memory *memory, int fd, const vm_guest_span *spans, size_t count) nogil
    int vm_cow_unmap(const vm_memory *memory, const vm_guest_span *spans, size_t count) nogil
