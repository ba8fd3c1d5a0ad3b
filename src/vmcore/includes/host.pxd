# C declarations for include/vmcore/host.h (the process sandbox, host side).
from libc.stdint cimport uint8_t, uint32_t, uint64_t, int64_t
from vmcore.includes.interp cimport vm_module, vm_module_config, vm_state
from vmcore.includes.compiler cimport vm_x64_config, vm_x64_module, vm_x64_map

cdef extern from "vmcore/vmctx.h":
    enum:
        VMCTX_FUTEX_BUSY
        VMCTX_FUTEX_IDLE
        VMCTX_FUTEX_GUEST_ECALLI
        VMCTX_FUTEX_GUEST_TRAP
        VMCTX_FUTEX_GUEST_SIGNAL
        VMCTX_FUTEX_GUEST_STEP
        VMCTX_FUTEX_GUEST_NOT_ENOUGH_GAS
        VMCTX_FUTEX_GUEST_PAGEFAULT
        VMCTX_FUTEX_LONGJUMP
        VMCTX_MESSAGE_BUFFER_SIZE
        VM_GUEST_MEMORY_SIZE
        VM_GUEST_MEMORY_SLACK
        VM_GUEST_PERMS_SIZE
        VM_INIT_FLAG_TEST_FORBIDDEN_SYSCALL
        VM_INIT_FLAG_NO_SECCOMP
        VM_ISO_NS_USER
        VM_ISO_NS_PID
        VM_ISO_NS_MOUNT
        VM_ISO_NS_NET
        VM_ISO_NS_IPC
        VM_ISO_NS_UTS
        VM_ISO_NS_CGROUP
        VM_ISO_UID_MAP
        VM_ISO_PIVOT_ROOT
        VM_ISO_CAPS_DROPPED
        VM_ISO_NO_NEW_PRIVS
        VM_ISO_RLIMITS
        VM_ISO_RLIMIT_AS
        VM_ISO_PDEATHSIG
        VM_ISO_LIFETIME_PIPE
        VM_ISO_SECCOMP
        VM_ISO_CLOSE_RANGE
        VM_ISO_SEALED_EXEC
        VM_ISO_ROBUST_FUTEX

    # Only the plain (non-atomic) fields; the atomic ones are read and
    # written through the vm_host_* accessors with explicit ordering.
    ctypedef struct vmctx:
        uint32_t heap_base
        uint32_t heap_max_size
        uint32_t heap_grow_pages
        uint32_t page_size
        uint32_t message_length
        char message_buffer[512]
        int sandbox_cpu

cdef extern from "vmcore/shared_module.h":
    ctypedef struct vm_shm_module:
        uint64_t native_offset
    enum:
        VM_SHM_KIND_INTERP
        VM_SHM_KIND_X64

cdef extern from "vmcore/module_memory.h":
    int vm_module_memory_drain()
    void vm_module_memory_pooled(int *count, uint64_t *bytes)


cdef extern from "vmcore/host.h":
    enum:
        VM_HOST_ERROR_SIZE
        VM_HOST_CPU_WORDS
        VM_HOST_WAIT_DIED
        VM_HOST_WAIT_UNRESPONSIVE
        VM_HOST_WAIT_STOPPED
        VM_HOST_WAIT_SIGINT
    double VM_HOST_INTERRUPT_GRACE

    ctypedef struct vm_module_memory:
        int fd

    ctypedef struct vm_host_module:
        uint32_t kind
        vm_module module
        const vm_x64_module *x64
        vm_x64_map map
        vm_module_memory memory
        const uint8_t *base
        uint64_t size

    ctypedef struct vm_host_spawn_options:
        int image_fd
        uint32_t flags
        uint32_t spin_iterations
        int cpu
        int namespaces
        double start_timeout

    ctypedef struct vm_host_zygote:
        int pid
        int pidfd
        int memory_fd
        vmctx *ctx
        uint8_t *window
        uint8_t *perms
        int cpu
        int placed
        int owner_pid
        int reaped
        uint64_t module_generation
        uint64_t wait_loop_start
        uint64_t futex_wait
        uint64_t repin
        uint32_t isolation

    int vm_host_image_create(const void *elf, size_t length, char *error)
    int vm_host_module_build(vm_host_module *m, const vm_module_config *config, const uint8_t *code,
                             uint32_t code_len, const uint8_t *bitmask, const uint32_t *jump_table_targets,
                             uint32_t jump_table_count, char *error) nogil
    int vm_host_x64_build(vm_host_module *m, const vm_x64_config *config, const uint8_t *code, uint32_t code_len,
                          const uint8_t *bitmask, const uint32_t *jump_table_targets, uint32_t jump_table_count,
                          int *x64_error, char *error) nogil
    void vm_host_module_free(vm_host_module *m)
    int vm_host_spawn(vm_host_zygote *z, const vm_host_spawn_options *options, char *error) nogil
    void vm_host_release(vm_host_zygote *z) nogil
    void vm_host_forget(vm_host_zygote *z)
    int vm_host_alive(vm_host_zygote *z)
    int vm_host_signal(vm_host_zygote *z, int sig)
    int vm_host_reap(vm_host_zygote *z) nogil
    void vm_host_describe_exit(vm_host_zygote *z, char *out, size_t size)
    int vm_host_send_module(vm_host_zygote *z, const vm_host_module *m)
    int vm_host_cpu_count()
    int vm_host_current_cpu()
    int vm_host_cpu_reserve(const uint64_t *allowed, int avoid)
    void vm_host_cpu_unreserve(int cpu)
    int vm_host_cpu_load(int cpu)
    int vm_host_place(vm_host_zygote *z, const uint64_t *allowed, int avoid)
    int vm_host_unpin(vm_host_zygote *z, const uint64_t *allowed)
    void vm_host_unplace(vm_host_zygote *z)
    int vm_host_move_off(vm_host_zygote *z, int current)
    int vm_host_punch(vm_host_zygote *z, uint64_t offset, uint64_t length) nogil

    void vm_host_resume(vmctx *ctx)
    void vm_host_wake(vmctx *ctx)
    uint32_t vm_host_spin(vmctx *ctx, uint32_t iterations)
    int vm_host_wait(vm_host_zygote *z, uint32_t spin, uint32_t *state) nogil

    uint64_t vm_host_get_reg(const vmctx *c, int i)
    void vm_host_set_reg(vmctx *c, int i, uint64_t v)
    int64_t vm_host_get_gas(const vmctx *c)
    void vm_host_set_gas(vmctx *c, int64_t v)
    uint32_t vm_host_futex(const vmctx *c)
    uint32_t vm_host_exit_reason(const vmctx *c)
    uint32_t vm_host_arg(const vmctx *c)
    uint32_t vm_host_pc(const vmctx *c)
    uint32_t vm_host_next_pc(const vmctx *c)
    uint32_t vm_host_resume_index(const vmctx *c)
    void vm_host_set_resume_index(vmctx *c, uint32_t index)
    void vm_host_set_pc(vmctx *c, uint32_t pc)
    void vm_host_set_native_pc(vmctx *c, uint64_t address)
    void vm_host_set_enter(vmctx *c, uint32_t enter)
    void vm_host_perms_changed(vmctx *c, uint32_t first, uint32_t end)
    uint32_t vm_host_interrupt(const vmctx *c)
    void vm_host_set_interrupt(vmctx *c, uint32_t v)
    uint32_t vm_host_isolation(const vmctx *c)
    int vm_host_dead(const vmctx *c)
    uint32_t vm_host_spin_iterations(const vmctx *c)
    void vm_host_set_spin_iterations(vmctx *c, uint32_t n)
    uint64_t vm_host_counter_wait_loop_start(const vmctx *c)
    uint64_t vm_host_counter_futex_wait(const vmctx *c)
    void vm_host_state_load(const vmctx *c, vm_state *s)
    void vm_host_state_store(vmctx *c, const vm_state *s)
