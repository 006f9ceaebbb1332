/*
 * capture.c - see capture.h (room: eviction).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <unistd.h>

#include "capture.h"
#include "log.h"
#include "page.h"
#include "util.h"

int dsm_capture_open(struct dsm_capture *c, uint32_t pages)
{
	int fds[2], size;

	*c = DSM_CAPTURE_NONE;
	if (pipe2(fds, O_CLOEXEC | O_NONBLOCK))
		return -errno;
	/* above /proc/sys/fs/pipe-max-size only with CAP_SYS_RESOURCE: then
	 * the pipe keeps its default size, and a batch is taken in part */
	size = fcntl(fds[1], F_SETPIPE_SZ, (int)(pages * DSM_PAGE_SIZE));
	if (size < 0)
		size = fcntl(fds[1], F_GETPIPE_SZ);
	if (size < (int)DSM_PAGE_SIZE) {
		int err = size < 0 ? -errno : -ENOSPC;

		close(fds[0]);
		close(fds[1]);
		return err;
	}
	c->rd = fds[0];
	c->wr = fds[1];
	c->pages = size / DSM_PAGE_SIZE;
	if (c->pages < pages)
		dsm_debug("capture pipe holds %u pages of %u: the rest of a "
			  "batch is write-protected", c->pages, pages);
	return 0;
}

void dsm_capture_close(struct dsm_capture *c)
{
	if (c->rd >= 0) {
		close(c->rd);
		close(c->wr);
	}
	*c = DSM_CAPTURE_NONE;
}

uint32_t dsm_capture_take(struct dsm_capture *c, const struct iovec *iov,
			  uint32_t n)
{
	ssize_t got;

	if (c->rd < 0 || !n)
		return 0;
	if (n > c->pages)
		n = c->pages;
	if (n > IOV_MAX)
		n = IOV_MAX;
	/* never blocks: the engine thread is the pipe's only reader */
	got = vmsplice(c->wr, iov, n, SPLICE_F_NONBLOCK);
	if (got <= 0)
		return 0;
	c->partial = got % DSM_PAGE_SIZE;
	return got / DSM_PAGE_SIZE;
}

/* Fill v[0..n) from the pipe, all of it (v is consumed). */
static int read_all(int fd, struct iovec *v, int n)
{
	while (n) {
		ssize_t got = readv(fd, v, n > IOV_MAX ? IOV_MAX : n);

		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			return got < 0 ? -errno : -EIO;
		dsm_iov_advance(&v, &n, got);
	}
	return 0;
}

int dsm_capture_read(struct dsm_capture *c, struct iovec *dst, uint32_t n)
{
	int err = read_all(c->rd, dst, n);

	while (!err && c->partial) { /* a page taken in part: not used */
		uint8_t junk[256];
		struct iovec v = { junk, c->partial < sizeof(junk) ?
					 c->partial : sizeof(junk) };

		c->partial -= v.iov_len;
		err = read_all(c->rd, &v, 1);
	}
	c->partial = 0;
	return err;
}
