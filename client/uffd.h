/*
 * uffd.h - the process's userfaultfd and the ioctls on it (room: fault
 * engine).  Every ioctl error is interpreted here, in one place, so the
 * engine only sees: done, "the page was already there", or a real error.
 */
#ifndef DSM_UFFD_H
#define DSM_UFFD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct dsm_uffd {
	int fd;
	uint64_t features;    /* granted by UFFDIO_API */
	bool kernel_faults;   /* faults raised inside syscalls reach us */
	bool can_poison;      /* UFFDIO_POISON: lost pages raise SIGBUS */
	int lost_fd;          /* without it: the empty memfd mapped over lost
	                       * pages (dsm_uffd_poison), or -1 */
	bool thread_id;       /* messages carry the faulting thread's tid */
	bool wp_huge;         /* write protection on hugetlb memory (Linux
	                       * 5.19+): regions on 2 MiB pages (huge.c) */
};

/* A dsm_uffd with nothing open: what dsm_uffd_close may be given.  Not
 * a zeroed struct, whose descriptors would be the program's stdin. */
#define DSM_UFFD_NONE ((struct dsm_uffd){ .fd = -1, .lost_fd = -1 })

/* Open and negotiate.  0, or -errno after logging why and what to do:
 * -ENOSYS (no userfaultfd in this kernel), -EPERM (not allowed),
 * -EOPNOTSUPP (no write-protect support). */
int dsm_uffd_open(struct dsm_uffd *u);
void dsm_uffd_close(struct dsm_uffd *u);

/* Register [addr, addr+len) for MISSING and WP faults. 0 or -errno. */
int dsm_uffd_register(struct dsm_uffd *u, void *addr, size_t len);
int dsm_uffd_unregister(struct dsm_uffd *u, void *addr, size_t len);

/* Install len bytes from src at dst (page-aligned), write-protected if wp.
 * Pages already present (EEXIST) are skipped and their waiters woken; a
 * partial copy (EAGAIN) is resumed; a range over several VMAs (part of a
 * region mprotected) is done a VMA at a time.  Returns 0, or
 * -ENOENT/-ESRCH when the range or the process is gone, or another
 * -errno. *skipped counts pages found already present. */
int dsm_uffd_copy(struct dsm_uffd *u, uint64_t dst, const void *src,
		  size_t len, bool wp, unsigned *skipped);

/* Set (wp = true) or clear write protection on a range (over several
 * VMAs if need be); clearing wakes the threads blocked on it. */
int dsm_uffd_wp(struct dsm_uffd *u, uint64_t addr, size_t len, bool wp);

/* Wake threads blocked on a range without changing it (they retry). */
int dsm_uffd_wake(struct dsm_uffd *u, uint64_t addr, size_t len);

/* Make a range of pages that are not present (over several VMAs if need
 * be) raise SIGBUS when touched, and wake the threads waiting on it:
 * with UFFDIO_POISON, or without it (Linux < 6.6) by mapping an empty
 * memfd over the range.  0 or -errno. */
int dsm_uffd_poison(struct dsm_uffd *u, uint64_t addr, size_t len);
/* A poisoned range is handed out again (the preload shim reuses it):
 * make it ordinary registered memory that reads as zeros at its next
 * touch, whichever way it was poisoned.  0 or -errno. */
int dsm_uffd_unpoison(struct dsm_uffd *u, uint64_t addr, size_t len);

#endif /* DSM_UFFD_H */
