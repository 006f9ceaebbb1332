/*
 * huge.h - regions on 2 MiB pages (room: fault engine).  Their faults are
 * in huge.c, their eviction and write-back in evict.c; region.h says what
 * a group is.
 */
#ifndef DSM_HUGE_H
#define DSM_HUGE_H

#include <stdbool.h>
#include <stdint.h>

struct dsm_outbox;
struct dsm_region;

/* Under the lock: a fault at page idx of r, a region on huge pages: wp
 * for a write to a write-protected page, else a missing page (write:
 * raised by a store). */
void dsm_huge_fault(struct dsm_region *r, uint64_t idx, bool wp, bool write,
		    uint64_t t0, struct dsm_outbox *ob);
/* Under the lock: r is being freed: its parked groups' buffers go. */
void dsm_huge_forget(struct dsm_region *r);
/* A new region on huge pages, not yet shared with the engine: no streams
 * but a reader from its first group's. */
void dsm_huge_init(struct dsm_region *r);
/* Under the lock: the parked groups among pages [first, end) of r are
 * mapped, clean (their data is needed: outbox.c). */
void dsm_huge_unpark(struct dsm_region *r, uint64_t first, uint64_t end);
/* Without the lock: can a region of bytes on huge pages be had?  0, or
 * -errno after logging why (-EOPNOTSUPP: the kernel cannot write-protect
 * hugetlb memory; -EINVAL: the local budget is below one huge page;
 * -ENOMEM: fewer huge pages are free than the region or the budget,
 * whichever is less, would hold). */
int dsm_huge_check(uint64_t bytes);

#endif /* DSM_HUGE_H */
