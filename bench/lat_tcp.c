/*
 * lat_tcp.c - (b) the network floor (room: benchmarks): one 1-page READ
 * request and its 4 KiB reply over a plain TCP socket, with no library, no
 * receive thread and no userfaultfd in the way.  The reply is awaited as
 * libdsm's engine thread awaits one (dsm_poll_busy, same window), so the
 * floor is not inflated by a wake-up the library avoids.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench_util.h"
#include "lat.h"
#include "proto.h"
#include "util.h"

#define MAX_BODY 32 /* the largest request body sent here (READ: 24) */

struct conn {
	int fd;
	uint64_t next_id;
	uint64_t window, busy_until;  /* busy-poll, as libdsm does */
};

static int tcp_connect(const char *addr)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC,
				  .ai_socktype = SOCK_STREAM }, *ai, *p;
	char host[256], port[8];
	uint16_t portnum;
	int fd = -1, one = 1;

	if (dsm_parse_hostport(addr, host, sizeof(host), &portnum)) {
		fprintf(stderr, "dsm-bench-latency: --server %s: expected "
			"host:port\n", addr);
		return -1;
	}
	snprintf(port, sizeof(port), "%u", portnum);
	if (getaddrinfo(host, port, &hints, &ai)) {
		fprintf(stderr, "dsm-bench-latency: cannot resolve %s\n", addr);
		return -1;
	}
	for (p = ai; p && fd < 0; p = p->ai_next) {
		fd = socket(p->ai_family, p->ai_socktype | SOCK_CLOEXEC, 0);
		if (fd >= 0 && connect(fd, p->ai_addr, p->ai_addrlen)) {
			close(fd);
			fd = -1;
		}
	}
	freeaddrinfo(ai);
	if (fd < 0) {
		fprintf(stderr, "dsm-bench-latency: connect %s: %s\n", addr,
			strerror(errno));
		return -1;
	}
	/* Without it Nagle would hold each small request for an ACK. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

static int send_all(int fd, const uint8_t *buf, size_t len)
{
	while (len) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		buf += n;
		len -= n;
	}
	return 0;
}

static int recv_all(struct conn *c, uint8_t *buf, size_t len)
{
	struct pollfd pfd = { c->fd, POLLIN, 0 };

	while (len) {
		int ready = dsm_poll_busy(&pfd, 1, &c->busy_until, c->window);
		ssize_t n;

		if (ready == 0 || (ready < 0 && errno == EINTR))
			continue;
		n = recv(c->fd, buf, len, MSG_DONTWAIT);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			return -1;
		buf += n;
		len -= n;
	}
	return 0;
}

/* Send one request and read its reply; the payload (at most cap bytes)
 * goes to rep.  0, or -1 after saying what went wrong. */
static int call(struct conn *c, uint8_t type, const uint8_t *body,
		uint32_t len, uint8_t *rep, uint32_t cap)
{
	uint8_t msg[DSM_HDR_SIZE + MAX_BODY];
	struct dsm_hdr h;
	uint64_t id = ++c->next_id;

	dsm_hdr_init(&h, type, 0, len, id);
	dsm_hdr_encode(&h, msg);
	memcpy(msg + DSM_HDR_SIZE, body, len);
	if (send_all(c->fd, msg, DSM_HDR_SIZE + len))
		goto broken;
	c->busy_until = dsm_now_ns() + c->window; /* a reply is due */
	if (recv_all(c, msg, DSM_HDR_SIZE))
		goto broken;
	if (dsm_hdr_decode(msg, &h) || !(h.flags & DSM_F_REPLY) ||
	    h.id != id || h.type != type || h.len > cap)
		goto bad_reply;
	if (recv_all(c, rep, h.len))
		goto broken;
	if (h.status) {
		fprintf(stderr, "dsm-bench-latency: server answered %s with "
			"%s\n", dsm_msg_name(type), strerror(-h.status));
		return -1;
	}
	return 0;
broken:
	fprintf(stderr, "dsm-bench-latency: connection to the server lost\n");
	return -1;
bad_reply:
	fprintf(stderr, "dsm-bench-latency: unexpected reply to %s\n",
		dsm_msg_name(type));
	return -1;
}

static int hello(struct conn *c)
{
	struct dsm_hello m = { DSM_PROTO_VERSION, DSM_PROTO_VERSION,
			       DSM_PAGE_SIZE, 0 };
	uint8_t body[DSM_HELLO_SIZE], rep[DSM_HELLO_REPLY_SIZE];

	dsm_hello_encode(&m, body);
	return call(c, DSM_MSG_HELLO, body, sizeof(body), rep, sizeof(rep));
}

static int alloc_region(struct conn *c, uint64_t size,
			struct dsm_alloc_reply *r)
{
	struct dsm_alloc_req m = { size };
	uint8_t body[DSM_ALLOC_REQ_SIZE], rep[DSM_ALLOC_REPLY_SIZE];

	dsm_alloc_req_encode(&m, body);
	if (call(c, DSM_MSG_ALLOC, body, sizeof(body), rep, sizeof(rep)))
		return -1;
	return dsm_alloc_reply_decode(rep, sizeof(rep), r) ? -1 : 0;
}

/* n READs of one page each, at random pages of the region, timed. */
static int time_reads(struct conn *c, const struct dsm_alloc_reply *r,
		      uint64_t n, uint64_t seed, uint64_t *ns)
{
	uint8_t body[DSM_RW_REQ_SIZE], page[DSM_PAGE_SIZE];
	uint64_t npages = r->size / DSM_PAGE_SIZE;
	struct bench_rng rng;

	bench_rng_seed(&rng, seed);
	for (uint64_t i = 0; i < n; i++) {
		struct dsm_rw_req m = {
			.region_id = r->region_id,
			.pool_off = r->pool_off +
				    bench_rng_below(&rng, npages) * DSM_PAGE_SIZE,
			.npages = 1,
		};
		uint64_t t0 = dsm_now_ns();

		dsm_rw_req_encode(&m, body);
		if (call(c, DSM_MSG_READ, body, sizeof(body), page, sizeof(page)))
			return -1;
		ns[i] = dsm_now_ns() - t0;
	}
	return 0;
}

int lat_tcp_rtt(const char *addr, uint64_t n, uint64_t seed, struct lat *out)
{
	struct conn c = { .fd = tcp_connect(addr),
			  .window = bench_poll_window_ns() };
	uint64_t *ns = calloc(n, sizeof(*ns));
	struct dsm_alloc_reply r;
	int rc = -1;

	if (c.fd < 0 || !ns)
		goto out;
	/* The server frees the region when this connection closes. */
	if (hello(&c) || alloc_region(&c, n * DSM_PAGE_SIZE, &r) ||
	    time_reads(&c, &r, n, seed, ns))
		goto out;
	lat_summarise(out, ns, n);
	rc = 0;
out:
	if (c.fd >= 0)
		close(c.fd);
	free(ns);
	return rc;
}
