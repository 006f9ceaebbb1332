/*
 * uffd.c - opening the userfaultfd and running its ioctls (room: fault
 * engine).
 *
 * How a userfaultfd is obtained decides whether faults raised inside the
 * kernel (read(2) into far memory, write(2) out of it) reach us.  We try,
 * in order:
 *   1. /dev/userfaultfd (Linux 6.1+): needs only permission on the device
 *      node, and sees kernel-mode faults;
 *   2. the userfaultfd(2) syscall: sees kernel-mode faults if the caller has
 *      CAP_SYS_PTRACE or vm.unprivileged_userfaultfd=1;
 *   3. the syscall with UFFD_USER_MODE_ONLY: works for anyone, but a system
 *      call touching a non-resident page fails with EFAULT - we say so.
 *
 * UFFDIO_API may be called once per descriptor, so features are probed on
 * a throwaway descriptor and the real one asks for exactly what we use.
 */
#include "uffd.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "log.h"
#include "page.h"
#include "uffd_compat.h"

#define UFFD_FLAGS (O_CLOEXEC | O_NONBLOCK)

static int open_devnode(void)
{
	int dev, fd;

	dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
	if (dev < 0)
		return -errno;
	fd = ioctl(dev, USERFAULTFD_IOC_NEW, UFFD_FLAGS);
	if (fd < 0)
		fd = -errno;
	close(dev);
	return fd;
}

static int open_syscall(int extra)
{
	int fd = syscall(SYS_userfaultfd, UFFD_FLAGS | extra);

	return fd < 0 ? -errno : fd;
}

/* Returns an fd and sets *kernel_faults, or -errno of the most telling
 * failure. */
static int open_any(bool *kernel_faults)
{
	int fd, err;

	*kernel_faults = true;
	fd = open_devnode();
	if (fd >= 0)
		return fd;
	fd = open_syscall(0);
	if (fd >= 0)
		return fd;
	err = fd;
	if (err == -ENOSYS)
		return err;
	fd = open_syscall(UFFD_USER_MODE_ONLY);
	if (fd >= 0) {
		*kernel_faults = false;
		return fd;
	}
	return err;
}

static int api(int fd, uint64_t want, uint64_t *got)
{
	struct uffdio_api a = { .api = UFFD_API, .features = want };

	if (ioctl(fd, UFFDIO_API, &a))
		return -errno;
	*got = a.features;
	return 0;
}

static void explain_open_failure(int err)
{
	if (err == -ENOSYS)
		dsm_err("userfaultfd is not available: this kernel was built "
			"without CONFIG_USERFAULTFD; dsm needs it");
	else if (err == -EPERM || err == -EACCES)
		dsm_err("userfaultfd not permitted: give this user access to "
			"/dev/userfaultfd (e.g. a 'userfaultfd' group with "
			"mode 0660), or set vm.unprivileged_userfaultfd=1, or "
			"grant CAP_SYS_PTRACE");
	else
		dsm_err("userfaultfd: %s", strerror(-err));
}

static int negotiate(struct dsm_uffd *u)
{
	uint64_t avail = 0, want;
	int probe, err;

	/* A dup would share the context, so probe on a fresh descriptor. */
	probe = u->kernel_faults ? open_any(&(bool){ 0 }) :
				   open_syscall(UFFD_USER_MODE_ONLY);
	if (probe < 0)
		return probe;
	err = api(probe, 0, &avail);
	close(probe);
	if (err)
		return err;
	if (!(avail & UFFD_FEATURE_PAGEFAULT_FLAG_WP)) {
		dsm_err("userfaultfd lacks write-protect support for anonymous "
			"memory (UFFD_FEATURE_PAGEFAULT_FLAG_WP, Linux 5.7+): "
			"dsm cannot track dirty pages on this kernel");
		return -EOPNOTSUPP;
	}
	want = UFFD_FEATURE_PAGEFAULT_FLAG_WP;
	want |= avail & (UFFD_FEATURE_THREAD_ID | UFFD_FEATURE_POISON |
			 UFFD_FEATURE_WP_HUGETLBFS_SHMEM);
	/* tests: the way lost pages raise SIGBUS on kernels before 6.6 */
	if (getenv("DSM_TEST_NO_POISON"))
		want &= ~(uint64_t)UFFD_FEATURE_POISON;
	err = api(u->fd, want, &u->features);
	if (err)
		return err;
	u->can_poison = u->features & UFFD_FEATURE_POISON;
	u->thread_id = u->features & UFFD_FEATURE_THREAD_ID;
	u->wp_huge = u->features & UFFD_FEATURE_WP_HUGETLBFS_SHMEM;
	if (!u->can_poison)
		dsm_debug("UFFDIO_POISON unavailable (Linux < 6.6): lost pages "
			  "raise SIGBUS through an empty memfd mapped over "
			  "them");
	return 0;
}

int dsm_uffd_open(struct dsm_uffd *u)
{
	int err;

	memset(u, 0, sizeof(*u));
	u->lost_fd = -1;
	u->fd = open_any(&u->kernel_faults);
	if (u->fd < 0) {
		err = u->fd;
		explain_open_failure(err);
		return err;
	}
	if (!u->kernel_faults)
		dsm_warn("userfaultfd is limited to user-mode faults: system "
			 "calls such as read(2) into non-resident far memory "
			 "will fail with EFAULT. To lift this, give access to "
			 "/dev/userfaultfd or set vm.unprivileged_userfaultfd=1");
	err = negotiate(u);
	if (err) {
		if (err != -EOPNOTSUPP)
			explain_open_failure(err);
		close(u->fd);
		u->fd = -1;
	}
	return err;
}

void dsm_uffd_close(struct dsm_uffd *u)
{
	if (u->fd >= 0)
		close(u->fd);
	if (u->lost_fd >= 0)
		close(u->lost_fd);
	u->fd = u->lost_fd = -1;
}

int dsm_uffd_register(struct dsm_uffd *u, void *addr, size_t len)
{
	struct uffdio_register r = {
		.range = { (uintptr_t)addr, len },
		.mode = UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP,
	};
	const uint64_t need = (1ULL << _UFFDIO_COPY) |
			      (1ULL << _UFFDIO_WRITEPROTECT) |
			      (1ULL << _UFFDIO_WAKE);

	if (ioctl(u->fd, UFFDIO_REGISTER, &r)) {
		int err = -errno;

		/* ENOMEM here is the per-process map count, not RAM. */
		dsm_err("UFFDIO_REGISTER of %zu bytes failed: %s", len,
			strerror(-err));
		return err;
	}
	if ((r.ioctls & need) != need) {
		dsm_err("UFFDIO_REGISTER: range lacks COPY/WRITEPROTECT/WAKE");
		dsm_uffd_unregister(u, addr, len);
		return -EOPNOTSUPP;
	}
	return 0;
}

int dsm_uffd_unregister(struct dsm_uffd *u, void *addr, size_t len)
{
	struct uffdio_range r = { (uintptr_t)addr, len };

	return ioctl(u->fd, UFFDIO_UNREGISTER, &r) ? -errno : 0;
}

/*
 * Ranges over more than one mapping.  A region is one mapping until the
 * program mprotects part of it (the preload shim lets it), which splits
 * it into VMAs.  UFFDIO_COPY and UFFDIO_POISON work within one VMA and
 * fail with ENOENT otherwise, before touching anything; so does
 * UFFDIO_WRITEPROTECT on older kernels.  ENOENT on a range of more
 * than one page is therefore retried in halves, down to single pages,
 * each of which lies in one VMA: a few extra ioctls per boundary crossed.
 * ENOENT on one page means the mapping is really gone, and stops the walk.
 */
typedef int (*range_op)(struct dsm_uffd *u, uint64_t addr, const void *src,
			size_t len, bool flag, unsigned *skipped);

static int split_range(range_op op, struct dsm_uffd *u, uint64_t addr,
		       const void *src, size_t len, bool flag, unsigned *skipped)
{
	size_t half = (len / 2) & ~(size_t)(DSM_PAGE_SIZE - 1);
	int err = op(u, addr, src, len, flag, skipped);

	if (err != -ENOENT || len <= DSM_PAGE_SIZE)
		return err;
	err = split_range(op, u, addr, src, half, flag, skipped);
	if (!err)
		err = split_range(op, u, addr + half,
				  src ? (const uint8_t *)src + half : NULL,
				  len - half, flag, skipped);
	return err;
}

/*
 * UFFDIO_COPY's outcomes, as the kernel documents them:
 *   0         all copied, waiters woken;
 *   EAGAIN    copy.copy > 0: that many bytes done, resume after them;
 *             otherwise the address space was changing: retry;
 *   EEXIST    a page at dst+copy.copy is already present (another path
 *             installed it): the normal race, not an error - skip that
 *             page, wake its waiters, continue;
 *   ENOENT    the range is not inside one registered VMA (see above);
 *   ESRCH     the process is exiting (older kernels: ENOSPC).
 * A page lands with the protection of its VMA: into a PROT_NONE range it
 * is installed but stays inaccessible, into a read-only one it is not
 * writable whatever the mode.
 */
static int copy_once(struct dsm_uffd *u, uint64_t dst, const void *src,
		     size_t len, bool wp, unsigned *skipped)
{
	size_t done = 0;

	while (done < len) {
		struct uffdio_copy c = {
			.dst = dst + done,
			.src = (uintptr_t)src + done,
			.len = len - done,
			.mode = wp ? UFFDIO_COPY_MODE_WP : 0,
		};
		int err;

		if (ioctl(u->fd, UFFDIO_COPY, &c) == 0)
			return 0;
		err = errno;
		if (c.copy > 0)
			done += c.copy;
		if (err == EAGAIN)
			continue;
		if (err == EEXIST) {
			dsm_uffd_wake(u, dst + done, DSM_PAGE_SIZE);
			done += DSM_PAGE_SIZE;
			(*skipped)++;
			continue;
		}
		if (err == ENOSPC)
			err = ESRCH;
		/* the rest crossed a VMA boundary made since the first
		 * call (the program's mprotect): split only the rest, so
		 * pages already copied are not counted as skipped */
		if (err == ENOENT && done)
			return split_range(copy_once, u, dst + done,
					   (const uint8_t *)src + done,
					   len - done, wp, skipped);
		return -err;
	}
	return 0;
}

int dsm_uffd_copy(struct dsm_uffd *u, uint64_t dst, const void *src,
		  size_t len, bool wp, unsigned *skipped)
{
	*skipped = 0;
	return split_range(copy_once, u, dst, src, len, wp, skipped);
}

static int wp_once(struct dsm_uffd *u, uint64_t addr, const void *src,
		   size_t len, bool wp, unsigned *skipped)
{
	struct uffdio_writeprotect w = {
		.range = { addr, len },
		.mode = wp ? UFFDIO_WRITEPROTECT_MODE_WP : 0,
	};

	(void)src;
	(void)skipped;
	for (;;) {
		if (ioctl(u->fd, UFFDIO_WRITEPROTECT, &w) == 0)
			return 0;
		if (errno != EAGAIN)
			return -errno;
	}
}

int dsm_uffd_wp(struct dsm_uffd *u, uint64_t addr, size_t len, bool wp)
{
	return split_range(wp_once, u, addr, NULL, len, wp, NULL);
}

int dsm_uffd_wake(struct dsm_uffd *u, uint64_t addr, size_t len)
{
	struct uffdio_range r = { addr, len };

	return ioctl(u->fd, UFFDIO_WAKE, &r) ? -errno : 0;
}

/* Poisoning a page twice finds it present (EEXIST) and skips it, so a
 * range split after part of it was done is simply redone. */
static int poison_once(struct dsm_uffd *u, uint64_t addr, const void *src,
		       size_t len, bool flag, unsigned *skipped)
{
	struct uffdio_poison p = { .range = { addr, len } };

	(void)src;
	(void)flag;
	(void)skipped;
	for (;;) {
		if (ioctl(u->fd, UFFDIO_POISON, &p) == 0)
			return 0;
		int err = errno;
		uint64_t step = p.updated > 0 ? (uint64_t)p.updated : 0;

		/* A page found present keeps its (valid) data: skip it. */
		if (err == EEXIST)
			step += DSM_PAGE_SIZE;
		else if (err != EAGAIN)
			return -err;
		if (step >= p.range.len)
			return 0;
		p.range.start += step;
		p.range.len -= step;
		p.updated = 0;
	}
}

/*
 * Without UFFDIO_POISON: an empty file mapped shared over the range.  A
 * thread touching it gets SIGBUS from the kernel (an access past the
 * file's end), in that thread, as POISON would give it; the threads
 * already waiting on the range are woken to retry into it.  The range
 * leaves the region's anonymous, registered mapping until
 * dsm_uffd_unpoison puts it back; copies into a range spanning it are
 * done a VMA at a time (split_range) and skip it.
 */
static int bus_map(struct dsm_uffd *u, uint64_t addr, size_t len)
{
	void *m;

	if (u->lost_fd < 0 &&
	    (u->lost_fd = memfd_create("dsm-lost-pages", MFD_CLOEXEC)) < 0)
		return -errno;
	/* the file offset is the address: neighbouring lost pages then
	 * merge into one mapping instead of costing one each (the map
	 * count is limited); any offset of an empty file is past its end */
	m = mmap((void *)(uintptr_t)addr, len, PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_FIXED, u->lost_fd, (off_t)addr);
	if (m == MAP_FAILED)
		return -errno;
	madvise(m, len, MADV_DONTFORK); /* like the region around it */
	return dsm_uffd_wake(u, addr, len);
}

int dsm_uffd_poison(struct dsm_uffd *u, uint64_t addr, size_t len)
{
	if (!u->can_poison)
		return bus_map(u, addr, len);
	return split_range(poison_once, u, addr, NULL, len, false, NULL);
}

/* POISON's markers go with MADV_DONTNEED; the memfd's mapping must be
 * replaced by a fresh anonymous one, set up as dsm_alloc set up the
 * region's, and registered again. */
int dsm_uffd_unpoison(struct dsm_uffd *u, uint64_t addr, size_t len)
{
	void *m;

	if (u->can_poison)
		return madvise((void *)(uintptr_t)addr, len, MADV_DONTNEED) ?
			       -errno : 0;
	m = mmap((void *)(uintptr_t)addr, len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
	if (m == MAP_FAILED)
		return -errno;
	madvise(m, len, MADV_NOHUGEPAGE);
	madvise(m, len, MADV_DONTFORK);
	return dsm_uffd_register(u, m, len);
}
