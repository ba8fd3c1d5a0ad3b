from libc.stdint cimport uint32_t

cdef extern from "vmcore/sigint.h" nogil:
    int vm_sigint_arm(int *flag, uint32_t *wake)
    void vm_sigint_disarm()
    int vm_sigint_take()
