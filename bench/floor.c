/*
 * floor.c - dsm-bench-floor (room: benchmarks): the two streaming floors
 * under a sequential read of far memory, measured with no dsm code at
 * all, so the benchmark can say how close dsm gets to what the machine
 * allows on that day:
 *
 *   tcp     SIZE bytes over loopback TCP in 1 MiB writes from one reused
 *           (warm) buffer, read by a second thread into another: the
 *           network's share of a fetch, without the server's pool;
 *   copy    UFFDIO_COPY of 256-page runs (one dsm READ's worth) from a
 *           warm buffer into SIZE bytes of registered memory never
 *           touched before: the client's share, installing pages;
 *   install UFFDIO_COPY of the same runs into a window of SIZE/8 that is
 *           dropped (MADV_DONTNEED) and refilled, as a budget of 1/8
 *           does, with a read of each page after its copy: what one
 *           thread pays to install a page and touch it first.  On a
 *           machine where a first touch of a newly mapped page is dear
 *           (a hypervisor filling its own page tables), every 4 KiB
 *           design pays this, kernel swap too; the copy floor alone
 *           does not show it;
 *   drop    install without the reads: what dropping and refilling the
 *           window costs, so that install - drop is the first reads;
 *   huge    install on 2 MiB hugetlb pages (MAP_HUGETLB, one UFFDIO_COPY
 *           and one MADV_DONTNEED per huge page), where huge pages are
 *           reserved (vm.nr_hugepages): what a design that maps 2 MiB at
 *           a time would pay for the same bytes.  null when none are;
 *   random  µs per page to install one page at a random place in SIZE,
 *           read it, and drop it again later under a budget of SIZE/8
 *           (FIFO, 256 pages a process_madvise, as libdsm's eviction
 *           does): what a uniform random miss pays in page tables and
 *           first touches with no fault and no network.  random_small
 *           is the same in dsm-bench-latency's remote-fault probe's
 *           shape (64 MiB, 4 MiB budget); the difference is what a
 *           larger working set costs each miss on the machine that day.
 *
 * Prints one JSON line: {"tcp_gbps":..,"copy_gbps":..,"install_gbps":..,
 * "drop_gbps":..,"huge_gbps":..,"random_us":..,"random_small_us":..}.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "bench_util.h"
#include "util.h"

#define CHUNK (1u << 20)   /* one write / one UFFDIO_COPY: 256 pages */
#define HUGE (2u << 20)    /* one hugetlb page */

struct reader {
	int fd;
	uint64_t want;
	int err;
};

static void *read_all(void *arg)
{
	struct reader *r = arg;
	uint8_t *buf = malloc(CHUNK);
	uint64_t got = 0;

	if (!buf) {
		r->err = ENOMEM;
		return NULL;
	}
	memset(buf, 0, CHUNK);
	while (got < r->want) {
		ssize_t n = read(r->fd, buf, CHUNK);

		if (n <= 0) {
			r->err = n < 0 ? errno : EPIPE;
			break;
		}
		got += n;
	}
	free(buf);
	return NULL;
}

/* A connected pair of loopback TCP sockets, as dsm's would be. */
static int tcp_pair(int fd[2])
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int l = socket(AF_INET, SOCK_STREAM, 0), one = 1;

	if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) ||
	    listen(l, 1) || getsockname(l, (struct sockaddr *)&a, &len))
		return -errno;
	fd[0] = socket(AF_INET, SOCK_STREAM, 0);
	if (fd[0] < 0 || connect(fd[0], (struct sockaddr *)&a, sizeof(a)))
		return -errno;
	fd[1] = accept(l, NULL, NULL);
	close(l);
	if (fd[1] < 0)
		return -errno;
	setsockopt(fd[0], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return 0;
}

static double tcp_floor(uint64_t size)
{
	struct reader r = { .want = size };
	uint8_t *buf = malloc(CHUNK);
	pthread_t th;
	uint64_t t0, sent = 0;
	int fd[2] = { -1, -1 };

	if (!buf || tcp_pair(fd))
		bench_die("tcp floor: cannot set up loopback sockets: %s",
			  strerror(errno));
	memset(buf, 0x5a, CHUNK);
	r.fd = fd[1];
	pthread_create(&th, NULL, read_all, &r);
	t0 = dsm_now_ns();
	while (sent < size) {
		ssize_t n = write(fd[0], buf, CHUNK);

		if (n < 0)
			bench_die("tcp floor: write: %s", strerror(errno));
		sent += n;
	}
	pthread_join(th, NULL);
	t0 = dsm_now_ns() - t0;
	if (r.err)
		bench_die("tcp floor: read: %s", strerror(r.err));
	close(fd[0]);
	close(fd[1]);
	free(buf);
	return (double)size / t0;
}

/* Registered anonymous memory for UFFDIO_COPY, on hugetlb pages if huge;
 * *u gets the userfaultfd.  NULL when huge and none are reserved. */
static uint8_t *uffd_area(uint64_t size, int *u, bool huge, const char *what)
{
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg = { .mode = UFFDIO_REGISTER_MODE_MISSING };
	int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;
	uint8_t *dst;

	if (huge)
		flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB;
	dst = mmap(NULL, size, PROT_READ | PROT_WRITE, flags, -1, 0);
	if (dst == MAP_FAILED && huge)
		return NULL;
	*u = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (*u < 0 || dst == MAP_FAILED || ioctl(*u, UFFDIO_API, &api))
		bench_die("%s floor: userfaultfd: %s", what, strerror(errno));
	reg.range = (struct uffdio_range){ (uintptr_t)dst, size };
	if (ioctl(*u, UFFDIO_REGISTER, &reg))
		bench_die("%s floor: UFFDIO_REGISTER: %s", what,
			  strerror(errno));
	return dst;
}

/* One run of len bytes from src installed at dst. */
static void copy_chunk(int u, uint8_t *dst, const uint8_t *src, uint64_t len,
		       const char *what)
{
	struct uffdio_copy c = { .dst = (uintptr_t)dst,
				 .src = (uintptr_t)src, .len = len };

	if (ioctl(u, UFFDIO_COPY, &c))
		bench_die("%s floor: UFFDIO_COPY: %s", what, strerror(errno));
}

static double copy_floor(uint64_t size)
{
	uint8_t *src = malloc(CHUNK), *dst;
	uint64_t t0;
	int u;

	dst = uffd_area(size, &u, false, "copy");
	if (!src)
		bench_die("copy floor: out of memory");
	memset(src, 0x5a, CHUNK);
	t0 = dsm_now_ns();
	for (uint64_t off = 0; off < size; off += CHUNK)
		copy_chunk(u, dst + off, src, CHUNK, "copy");
	t0 = dsm_now_ns() - t0;
	munmap(dst, size);
	close(u);
	free(src);
	return (double)size / t0;
}

/*
 * size bytes through a window of size/8, CHUNK (4 KiB pages) or HUGE
 * (hugetlb) at a time, each dropped before it is filled again, each page
 * read after its copy unless !read.  Returns GB/s, or 0 when huge and no
 * huge pages are reserved.
 */
static double install_floor(uint64_t size, bool read, bool huge)
{
	uint64_t chunk = huge ? HUGE : CHUNK, t0, sum = 0;
	uint64_t window = size / 8 / chunk * chunk;
	const char *what = huge ? "huge" : read ? "install" : "drop";
	uint8_t *src = aligned_alloc(HUGE, HUGE), *dst;
	int u;

	if (window < chunk)
		window = chunk;
	if (!src)
		bench_die("%s floor: out of memory", what);
	dst = uffd_area(window, &u, huge, what);
	if (!dst) {
		free(src);
		return 0;
	}
	memset(src, 0x5a, HUGE);
	t0 = dsm_now_ns();
	for (uint64_t off = 0; off < size; off += chunk) {
		uint64_t at = off % window;

		if (off >= window && madvise(dst + at, chunk, MADV_DONTNEED))
			bench_die("%s floor: madvise: %s", what,
				  strerror(errno));
		copy_chunk(u, dst + at, src, chunk, what);
		for (uint64_t p = 0; read && p < chunk; p += 4096)
			sum += ((volatile uint8_t *)dst)[at + p];
	}
	t0 = dsm_now_ns() - t0;
	if (read && sum != (size / 4096) * 0x5a)
		bench_die("%s floor: read back wrong bytes", what);
	munmap(dst, window);
	close(u);
	free(src);
	return (double)size / t0;
}

#define DROP_BATCH 256

static void drop_batch(int pidfd, struct iovec *iov, unsigned n)
{
	if (syscall(SYS_process_madvise, pidfd, iov, n, MADV_DONTNEED, 0) < 0)
		for (unsigned i = 0; i < n; i++)
			if (madvise(iov[i].iov_base, 4096, MADV_DONTNEED))
				bench_die("random floor: madvise: %s",
					  strerror(errno));
}

/*
 * Pages of an area of size bytes installed in a random order, each read
 * once, the oldest dropped DROP_BATCH at a time once budget bytes are
 * resident; twice the budget's pages, timed.  µs per page.
 */
static double random_floor(uint64_t size, uint64_t budget)
{
	uint32_t npages = size / 4096, keep = budget / 4096, n = 2 * keep;
	uint32_t *order = malloc(npages * sizeof(*order)), head = 0;
	int pidfd = syscall(SYS_pidfd_open, getpid(), 0), u;
	uint8_t *src = malloc(4096), *dst = uffd_area(size, &u, false, "random");
	struct iovec iov[DROP_BATCH];
	struct bench_rng r;
	uint64_t t0, sum = 0;

	if (!order || !src || n > npages)
		bench_die("random floor: out of memory or size too small");
	memset(src, 0x5a, 4096);
	bench_rng_seed(&r, 42);
	bench_shuffle_u32(order, npages, &r);
	t0 = dsm_now_ns();
	for (uint32_t i = 0; i < n; i++) {
		uint8_t *pg = dst + (uint64_t)order[i] * 4096;

		if (i - head >= keep) {
			for (unsigned k = 0; k < DROP_BATCH; k++)
				iov[k] = (struct iovec){
					dst + (uint64_t)order[head + k] * 4096,
					4096 };
			drop_batch(pidfd, iov, DROP_BATCH);
			head += DROP_BATCH;
		}
		copy_chunk(u, pg, src, 4096, "random");
		sum += *(volatile uint8_t *)pg;
	}
	t0 = dsm_now_ns() - t0;
	if (sum != (uint64_t)n * 0x5a)
		bench_die("random floor: read back wrong bytes");
	munmap(dst, size);
	close(u);
	if (pidfd >= 0)
		close(pidfd);
	free(src);
	free(order);
	return t0 / 1e3 / n;
}

int main(int argc, char **argv)
{
	uint64_t size = 1ULL << 30;
	double huge;

	if (argc == 3 && !strcmp(argv[1], "--size"))
		size = bench_arg_size("--size", argv[2]);
	else if (argc != 1)
		bench_die("usage: dsm-bench-floor [--size SIZE]");
	size = (size + HUGE - 1) / HUGE * HUGE;
	printf("{\"tcp_gbps\":%.3f,", tcp_floor(size));
	printf("\"copy_gbps\":%.3f,", copy_floor(size));
	printf("\"install_gbps\":%.3f,", install_floor(size, true, false));
	printf("\"drop_gbps\":%.3f,", install_floor(size, false, false));
	huge = install_floor(size, true, true);
	if (huge > 0)
		printf("\"huge_gbps\":%.3f,", huge);
	else
		printf("\"huge_gbps\":null,");
	printf("\"random_us\":%.2f,", random_floor(size, size / 8));
	printf("\"random_small_us\":%.2f}\n",
	       random_floor(64u << 20, 4u << 20));
	return 0;
}
