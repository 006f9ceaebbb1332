/*
 * lat_uffd.c - (a) the local userfaultfd round trip (room: benchmarks):
 * fault, handler thread sees it, UFFDIO_COPY of one 4 KiB page, faulting
 * thread resumes.  No network: this is the floor under every remote fault.
 * Pages are touched and dropped before, like evicted far pages, and both
 * threads run on one CPU: on a VM, a handler on another CPU wakes the
 * faulting thread's halted vCPU on every fault (~15 us instead of ~6 us
 * here, depending on where the scheduler happens to put the two threads),
 * and a floor is the cheapest round trip the machine can do.  The handler
 * waits for faults exactly as libdsm's engine thread does (dsm_poll_busy,
 * same window), so the floor is not inflated by wake-ups the library
 * avoids.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "bench_util.h"
#include "lat.h"
#include "util.h"

#define FILL_BYTE 0xa5

struct handler {
	int uffd, stopfd;
	uint8_t *src;    /* the page every fault is resolved with */
	int err;         /* first error, for the report */
};

static int uffd_open(void)
{
	struct uffdio_api api = { .api = UFFD_API };
	int fd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);

	if (fd < 0) {
		fprintf(stderr, "dsm-bench-latency: userfaultfd: %s\n",
			strerror(errno));
		return -1;
	}
	if (ioctl(fd, UFFDIO_API, &api)) {
		fprintf(stderr, "dsm-bench-latency: UFFDIO_API: %s\n",
			strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

static int uffd_register(int fd, void *addr, size_t len)
{
	struct uffdio_register reg = {
		.range = { (uintptr_t)addr, len },
		.mode = UFFDIO_REGISTER_MODE_MISSING,
	};

	if (ioctl(fd, UFFDIO_REGISTER, &reg)) {
		fprintf(stderr, "dsm-bench-latency: UFFDIO_REGISTER: %s\n",
			strerror(errno));
		return -1;
	}
	return 0;
}

/* One message: a page fault, answered with a copy of src.  EEXIST cannot
 * happen with one faulting thread but is harmless if it does.  If the copy
 * fails, a zero page still wakes the faulting thread (which then sees the
 * wrong byte and reports it) instead of leaving it blocked forever. */
static void resolve(struct handler *h)
{
	struct uffd_msg msg;
	struct uffdio_copy cp = { .src = (uintptr_t)h->src, .len = BENCH_PAGE };
	struct uffdio_zeropage zero = { .range.len = BENCH_PAGE };

	if (read(h->uffd, &msg, sizeof(msg)) != sizeof(msg))
		return; /* EAGAIN: a spurious wakeup */
	if (msg.event != UFFD_EVENT_PAGEFAULT)
		return;
	cp.dst = msg.arg.pagefault.address & ~(uint64_t)(BENCH_PAGE - 1);
	if (!ioctl(h->uffd, UFFDIO_COPY, &cp) || errno == EEXIST)
		return;
	if (!h->err)
		h->err = errno;
	zero.range.start = cp.dst;
	ioctl(h->uffd, UFFDIO_ZEROPAGE, &zero);
}

static void *handler_main(void *p)
{
	struct handler *h = p;
	struct pollfd fds[2] = { { h->uffd, POLLIN, 0 },
				 { h->stopfd, POLLIN, 0 } };
	uint64_t window = bench_poll_window_ns(), busy_until = 0;

	for (;;) {
		int ready = dsm_poll_busy(fds, 2, &busy_until, window);

		if (ready < 0 && errno != EINTR)
			break;
		if (ready <= 0)
			continue;
		if (fds[1].revents)
			break;
		if (fds[0].revents & POLLIN)
			resolve(h);
	}
	return NULL;
}

/* Touch the n pages of region in a random order, timing each first touch
 * from the faulting thread; 0, or -1 if a page read back wrong. */
static int touch_all(const uint8_t *region, uint64_t n, uint64_t seed,
		     uint64_t *ns)
{
	uint32_t *order = malloc(n * sizeof(*order));
	struct bench_rng r;
	int rc = 0;

	if (!order)
		return -1;
	bench_rng_seed(&r, seed);
	bench_shuffle_u32(order, n, &r);
	for (uint64_t i = 0; i < n; i++) {
		const volatile uint8_t *p = region + (uint64_t)order[i] * BENCH_PAGE;
		uint64_t t0 = dsm_now_ns();
		uint8_t v = *p;

		ns[i] = dsm_now_ns() - t0;
		if (v != FILL_BYTE)
			rc = -1;
	}
	free(order);
	return rc;
}

/* Pin thread t to the CPU the caller runs on; its old mask into *old. */
static int pin_to_this_cpu(pthread_t t, cpu_set_t *old)
{
	cpu_set_t one;
	int cpu = sched_getcpu();

	if (old && pthread_getaffinity_np(t, sizeof(*old), old))
		return -1;
	CPU_ZERO(&one);
	CPU_SET(cpu < 0 ? 0 : cpu, &one);
	return pthread_setaffinity_np(t, sizeof(one), &one) ? -1 : 0;
}

int lat_uffd_local(uint64_t n, uint64_t seed, struct lat *out)
{
	struct handler h = { .uffd = -1, .stopfd = -1 };
	uint64_t *ns = calloc(n, sizeof(*ns));
	size_t len = n * BENCH_PAGE;
	uint8_t *region = MAP_FAILED;
	pthread_t tid;
	cpu_set_t saved;
	bool started = false, pinned = false;
	int rc = -1;

	h.src = aligned_alloc(BENCH_PAGE, BENCH_PAGE);
	if (!ns || !h.src)
		goto out;
	memset(h.src, FILL_BYTE, BENCH_PAGE);
	region = mmap(NULL, len, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	/* Touch and drop every page first, as an evicted far page has been:
	 * memory this VM never touched costs the hypervisor several µs more
	 * on first use, which the remote faults we compare with do not pay. */
	if (region != MAP_FAILED) {
		memset(region, 0, len);
		madvise(region, len, MADV_DONTNEED);
	}
	h.uffd = uffd_open();
	h.stopfd = eventfd(0, EFD_CLOEXEC);
	if (region == MAP_FAILED || h.uffd < 0 || h.stopfd < 0 ||
	    uffd_register(h.uffd, region, len))
		goto out;
	if (pin_to_this_cpu(pthread_self(), &saved))
		goto out;
	pinned = true;
	if (pthread_create(&tid, NULL, handler_main, &h))
		goto out;
	started = true;
	pin_to_this_cpu(tid, NULL);
	if (touch_all(region, n, seed, ns)) {
		fprintf(stderr, "dsm-bench-latency: uffd page read back wrong\n");
		goto out;
	}
	lat_summarise(out, ns, n);
	rc = 0;
out:
	if (started) {
		eventfd_write(h.stopfd, 1);
		pthread_join(tid, NULL);
	}
	if (pinned)
		pthread_setaffinity_np(pthread_self(), sizeof(saved), &saved);
	if (h.err) {
		fprintf(stderr, "dsm-bench-latency: UFFDIO_COPY: %s\n",
			strerror(h.err));
		rc = -1;
	}
	if (region != MAP_FAILED)
		munmap(region, len);
	if (h.uffd >= 0)
		close(h.uffd);
	if (h.stopfd >= 0)
		close(h.stopfd);
	free(h.src);
	free(ns);
	return rc;
}
