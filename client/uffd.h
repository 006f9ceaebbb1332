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
	bool thread_id;       /* messages carry the faulting thread's tid */
};

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

/* Make a range (over several VMAs if need be) raise SIGBUS when touched.
 * -EOPNOTSUPP if the kernel cannot. */
int dsm_uffd_poison(struct dsm_uffd *u, uint64_t addr, size_t len);

#endif /* DSM_UFFD_H */
