/* See include/vmcore/snapshot.h. */
#define _GNU_SOURCE
#include "vmcore/snapshot.h"

#include "vmcore/host.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define SPACE ((uint64_t)1 << 32)
/* pread/pwrite move at most this much per call (Linux caps at 2 GiB - 4 KiB). */
#define IO_CHUNK ((uint64_t)1 << 30)

static int span_ok(const vm_memory *m, const vm_guest_span *s)
{
    uint64_t mask = (uint64_t)m->page_size - 1;
    if ((s->address & mask) || (s->length & mask) || s->address > SPACE || s->length > SPACE - s->address) {
        errno = EINVAL;
        return 0;
    }
    return 1;
}

int vm_snapshot_create(void)
{
    return vm_host_memfd("vmcore-snapshot", SPACE, 0);
}

static int page_is_zero(const uint8_t *p, size_t n)
{
    const uint64_t *w = (const uint64_t *)(const void *)p;
    for (size_t i = 0; i < n / 8; i++)
        if (w[i])
            return 0;
    return 1;
}

/* pwrite (writing) or pread all of [p, p + length) at offset. */
static int transfer(int fd, uint8_t *p, uint64_t length, uint64_t offset, int writing)
{
    while (length) {
        size_t n = length > IO_CHUNK ? IO_CHUNK : length;
        ssize_t done = writing ? pwrite(fd, p, n, (off_t)offset) : pread(fd, p, n, (off_t)offset);
        if (done < 0 && errno == EINTR)
            continue;
        if (done <= 0)
            return -1;
        p += done;
        offset += (uint64_t)done;
        length -= (uint64_t)done;
    }
    return 0;
}

int vm_snapshot_capture(int fd, const vm_memory *memory, const vm_guest_span *spans, size_t count)
{
    const uint64_t page = memory->page_size;
    for (size_t i = 0; i < count; i++) {
        if (!span_ok(memory, &spans[i]))
            return -1;
        /* runs of non-zero pages, one write each */
        uint64_t at = spans[i].address, end = at + spans[i].length;
        while (at < end) {
            while (at < end && page_is_zero(memory->base + at, page))
                at += page;
            uint64_t run = at;
            while (run < end && !page_is_zero(memory->base + run, page))
                run += page;
            if (run > at && transfer(fd, memory->base + at, run - at, at, 1) != 0)
                return -1;
            at = run;
        }
    }
    return fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL);
}

int vm_snapshot_load(int fd, const vm_memory *memory, const vm_guest_span *spans, size_t count,
                     vm_discard_fn discard, void *ctx)
{
    for (size_t i = 0; i < count; i++) {
        if (!span_ok(memory, &spans[i]))
            return -1;
        uint64_t at = spans[i].address, end = at + spans[i].length;
        while (at < end) {
            off_t data = lseek(fd, (off_t)at, SEEK_DATA);
            uint64_t data_at = (data < 0 || (uint64_t)data > end) ? end : (uint64_t)data;
            if (data_at > at && discard(ctx, at, data_at - at) != 0)
                memset(memory->base + at, 0, (size_t)(data_at - at));
            if (data_at >= end)
                break;
            off_t hole = lseek(fd, (off_t)data_at, SEEK_HOLE);
            uint64_t hole_at = (hole < 0 || (uint64_t)hole > end) ? end : (uint64_t)hole;
            if (transfer(fd, memory->base + data_at, hole_at - data_at, data_at, 0) != 0)
                return -1;
            at = hole_at;
        }
    }
    return 0;
}

int vm_cow_map(const vm_memory *memory, int fd, const vm_guest_span *spans, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        if (!span_ok(memory, &spans[i]))
            return -1;
        if (spans[i].length && mmap(memory->base + spans[i].address, spans[i].length, PROT_READ | PROT_WRITE,
                                    MAP_PRIVATE | MAP_FIXED | MAP_NORESERVE, fd, (off_t)spans[i].address)
                                   == MAP_FAILED)
            return -1;
    }
    return 0;
}

/* /proc/self/pagemap of this process (reopened after a fork: the fd
 * would otherwise describe the parent), or -1 where it cannot be read. */
static int pagemap_fd = -1;
static pid_t pagemap_pid;

static int pagemap(void)
{
    pid_t pid = getpid();
    if (pagemap_fd >= 0 && pagemap_pid == pid)
        return pagemap_fd;
    if (pagemap_fd >= 0)
        close(pagemap_fd);
    pagemap_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    pagemap_pid = pid;
    return pagemap_fd;
}

/* A pagemap entry of a page the guest made private: present and not a
 * page of the file (a copy-on-write copy), or swapped out. */
#define PM_PRESENT ((uint64_t)1 << 63)
#define PM_SWAP ((uint64_t)1 << 62)
#define PM_FILE ((uint64_t)1 << 61)
#define PM_BATCH 2048

static int drop(uint8_t *start, uint64_t length)
{
    return length ? madvise(start, length, MADV_DONTNEED) : 0;
}

/* The snapshot's bytes copied over a run of private pages: cheaper than
 * dropping them, which costs a page fault and a copy each when the guest
 * touches them again (most of what it changed it changes again). */
static int copy_back(int fd, uint8_t *window, uint8_t *start, uint64_t length)
{
    return length ? transfer(fd, start, length, (uint64_t)(start - window), 0) : 0;
}

/* Only the private copies in [start, start + length) get the snapshot's
 * bytes back: pages still mapped from the snapshot read them already, and
 * leaving them saves the unmap now and the fault later.  Without pagemap,
 * the whole span is dropped. */
static int revert_span(int snapshot_fd, uint8_t *window, uint8_t *start, uint64_t length)
{
    const uint64_t host_page = (uint64_t)sysconf(_SC_PAGESIZE);
    uint64_t entries[PM_BATCH];
    int fd = pagemap();
    if (fd < 0)
        return drop(start, length);
    uint64_t pages = length / host_page, first = (uint64_t)(uintptr_t)start / host_page;
    uint64_t run_start = 0, run_length = 0;
    for (uint64_t done = 0; done < pages;) {
        uint64_t n = pages - done < PM_BATCH ? pages - done : PM_BATCH;
        ssize_t got = pread(fd, entries, n * sizeof(uint64_t), (off_t)((first + done) * sizeof(uint64_t)));
        if (got != (ssize_t)(n * sizeof(uint64_t)))
            return drop(start, length);
        for (uint64_t i = 0; i < n; i++) {
            uint64_t e = entries[i];
            if (((e & PM_PRESENT) && !(e & PM_FILE)) || (e & PM_SWAP)) {
                if (!run_length)
                    run_start = done + i;
                run_length++;
            } else if (run_length) {
                if (copy_back(snapshot_fd, window, start + run_start * host_page, run_length * host_page) != 0)
                    return -1;
                run_length = 0;
            }
        }
        done += n;
    }
    return copy_back(snapshot_fd, window, start + run_start * host_page, run_length * host_page);
}

int vm_cow_revert(const vm_memory *memory, int fd, const vm_guest_span *spans, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        if (!span_ok(memory, &spans[i]))
            return -1;
        if (revert_span(fd, memory->base, memory->base + spans[i].address, spans[i].length) != 0)
            return -1;
    }
    return 0;
}

int vm_cow_unmap(const vm_memory *memory, const vm_guest_span *spans, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        if (!span_ok(memory, &spans[i]))
            return -1;
        if (spans[i].length && mmap(memory->base + spans[i].address, spans[i].length, PROT_READ | PROT_WRITE,
                                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0) == MAP_FAILED)
            return -1;
    }
    return 0;
}
