/* Guest memory snapshots (host side).
 *
 * A snapshot's memory is a sealed memfd laid out as the guest address
 * space (offset = guest address), holding only the pages that were not
 * zero (the rest are holes).  Inline guest memory restores copy-on-write:
 * the snapshot's spans of the window are mapped MAP_PRIVATE from the
 * memfd, and a restore copies the snapshot's bytes over just the private
 * copies the guest made since (found in /proc/self/pagemap), keeping
 * them: its cost is proportional to the pages changed, not to the spans,
 * and the guest does not fault on them again.  A sandbox process's guest memory is a
 * shared memfd both processes map: there the snapshot's data extents are
 * copied back and its holes punched (vm_snapshot_load).
 *
 * Spans are page aligned and inside the 32-bit address space (checked:
 * -1 with errno EINVAL otherwise). */
#ifndef VMCORE_SNAPSHOT_H
#define VMCORE_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

#include "vmcore/interp.h"
#include "vmcore/scrub.h"

/* A new snapshot memfd (4 GiB, all holes); fd or -1. */
int vm_snapshot_create(void);
/* Write the non-zero pages of each span of `memory` into the memfd,
 * then seal it against any change; 0 or -1. */
int vm_snapshot_capture(int fd, const vm_memory *memory, const vm_guest_span *spans, size_t count);
/* Copy the snapshot's spans back into `memory`: data extents are read,
 * holes handed to `discard` (which must leave zeros); 0 or -1. */
int vm_snapshot_load(int fd, const vm_memory *memory, const vm_guest_span *spans, size_t count,
                     vm_discard_fn discard, void *ctx);

/* Inline memory: map the spans of the window copy-on-write from the
 * snapshot memfd (the window then reads as the snapshot); 0 or -1. */
int vm_cow_map(const vm_memory *memory, int fd, const vm_guest_span *spans, size_t count);
/* Back to the snapshot in the spans mapped by vm_cow_map from `fd`: the
 * private copies the guest made get the snapshot's bytes (where pagemap
 * cannot be read, every page of the spans is dropped); 0 or -1. */
int vm_cow_revert(const vm_memory *memory, int fd, const vm_guest_span *spans, size_t count);
/* Replace the spans with fresh anonymous memory (zeros), detaching them
 * from the snapshot (before a scrub, whose discard would otherwise bring
 * the snapshot's bytes back); 0 or -1. */
int vm_cow_unmap(const vm_memory *memory, const vm_guest_span *spans, size_t count);

#endif
