# C declarations for include/vmcore/scrub.h (recycling, shared by every engine).
from libc.stdint cimport uint32_t, uint64_t
from vmcore.includes.interp cimport vm_memory, vm_state

cdef extern from "vmcore/scrub.h":
    ctypedef struct vm_guest_span:
        uint64_t address
        uint64_t length
    ctypedef int (*vm_discard_fn)(void *ctx, uint64_t offset, uint64_t length) noexcept nogil
    int vm_scrub_spans(const vm_memory *memory, const vm_guest_span *spans, size_t count, uint64_t memset_limit,
                       vm_discard_fn discard, void *ctx, uint32_t *dirty_first, uint32_t *dirty_end) nogil
    void vm_state_fresh(vm_state *state) nogil

from vmcore.includes.vmctx cimport vmctx

cdef extern from "vmcore/scrub.h":
    void vm_ctx_fresh(vmctx *ctx) nogil
