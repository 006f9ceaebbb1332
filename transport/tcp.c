/*
 * tcp.c - the TCP transport (room: transport).
 *
 * One non-blocking socket and no thread: the owner polls fd() and calls
 * progress(), which reads whatever has arrived into rxbuf and completes
 * every whole message in it.  Pending requests live in a fixed table of
 * slots; a request id is (generation << 16 | slot), so a reply finds its
 * slot in O(1) and a stale or forged id (wrong generation) is dropped.
 *
 * Requests are queued, not sent, until flush(): the engine thread decides
 * a batch of them (fetches, write-backs) at once, and one writev for the
 * batch costs a system call where one per request cost hundreds.  A page
 * of a WRITE is not copied: the iovec points at it, which the transport
 * contract allows (the pages stay put until the completion).
 *
 * A send that finds the socket full waits for room, and keeps reading
 * while it waits: the server may be waiting for us to read its replies
 * before it reads our requests.  A full slot table is handled the same
 * way - replies free slots - which bounds what a slow server can make us
 * hold.
 *
 * When the stream ends or breaks, lost() is reported once, then every
 * pending request is completed with the error; requests after that fail
 * at once with the same error.
 */
#include "transport.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

#define TCP_SLOTS 1024u /* requests in flight per connection */
#define RXBUF_SIZE (DSM_HDR_SIZE + DSM_MAX_PAYLOAD)
#define TX_IOV 1024u    /* iovecs in one writev (IOV_MAX) */
#define TX_BYTES 16384u /* headers and bodies of the queued requests */

struct pending {
	dsm_done_fn done;
	void *arg;
	uint32_t gen;
	bool busy;
};

struct dsm_transport {
	int fd;
	char addr[128];
	struct dsm_transport_events ev;

	struct pending slots[TCP_SLOTS];
	uint32_t free_list[TCP_SLOTS];
	uint32_t nfree;
	int dead;         /* 0, or the error that ended the stream */
	bool closing;     /* close() in progress: no lost() report */

	uint8_t *rxbuf;   /* holds at least one whole message */
	size_t rxlen;     /* bytes in rxbuf */

	/* Requests queued since the last flush: iovecs over txbuf (headers,
	 * bodies) and over WRITEs' pages. */
	struct iovec tx[TX_IOV];
	uint32_t ntx;
	uint8_t txbuf[TX_BYTES];
	uint32_t txlen;
};

/* ---- pending requests ------------------------------------------------ */

static uint64_t slot_get(struct dsm_transport *t, dsm_done_fn done, void *arg)
{
	uint32_t s = t->free_list[--t->nfree];
	struct pending *p = &t->slots[s];

	p->busy = true;
	p->done = done;
	p->arg = arg;
	p->gen++;
	return (uint64_t)p->gen << 16 | s;
}

static bool slot_take(struct dsm_transport *t, uint64_t id, struct pending *out)
{
	uint32_t s = id & 0xffff;

	if (s >= TCP_SLOTS || !t->slots[s].busy ||
	    t->slots[s].gen != (uint32_t)(id >> 16))
		return false;
	*out = t->slots[s];
	t->slots[s].busy = false;
	t->free_list[t->nfree++] = s;
	return true;
}

/* The stream is over: report it, then complete everything pending with
 * err, once.  Reported first so that the owner knows the server is gone
 * when the failed completions run (and its log says so before them). */
static int fail_all(struct dsm_transport *t, int err)
{
	struct pending p;

	if (t->dead)
		return t->dead;
	t->dead = err;
	if (!t->closing && t->ev.lost)
		t->ev.lost(t->ev.ctx, err);
	for (uint32_t s = 0; s < TCP_SLOTS; s++)
		if (slot_take(t, (uint64_t)t->slots[s].gen << 16 | s, &p))
			p.done(p.arg, err, NULL, 0);
	return err;
}

/* ---- receiving ------------------------------------------------------- */

static void dispatch(struct dsm_transport *t, const struct dsm_hdr *h,
		     const uint8_t *payload)
{
	struct pending p;

	if (h->flags & DSM_F_SERVER) {
		if (t->ev.server_msg)
			t->ev.server_msg(t->ev.ctx, h, payload);
		return;
	}
	if (!(h->flags & DSM_F_REPLY) || !slot_take(t, h->id, &p)) {
		dsm_warn("%s: dropping unexpected %s message id %llu", t->addr,
			 dsm_msg_name(h->type), (unsigned long long)h->id);
		return;
	}
	p.done(p.arg, h->status, h->status ? NULL : payload, h->len);
}

/* Complete every whole message at the start of rxbuf; keep the rest. */
static int parse(struct dsm_transport *t)
{
	size_t off = 0;
	int err = 0;

	while (!t->dead && t->rxlen - off >= DSM_HDR_SIZE) {
		struct dsm_hdr h;

		err = dsm_hdr_decode(t->rxbuf + off, &h);
		if (err == -EPROTONOSUPPORT && h.magic == DSM_PROTO_MAGIC) {
			dsm_err("%s: server speaks protocol %u, we speak %u",
				t->addr, h.version, DSM_PROTO_VERSION);
			break;
		}
		if (err) {
			dsm_err("%s: malformed message from server: %s",
				t->addr, strerror(-err));
			break;
		}
		if (t->rxlen - off < DSM_HDR_SIZE + h.len)
			break;
		dispatch(t, &h, t->rxbuf + off + DSM_HDR_SIZE);
		off += DSM_HDR_SIZE + h.len;
	}
	if (off) {
		memmove(t->rxbuf, t->rxbuf + off, t->rxlen - off);
		t->rxlen -= off;
	}
	return err;
}

/* Read and complete what has arrived.  A read that did not fill the
 * space it was given emptied the socket: the next poll says when more
 * comes, so asking again now would only cost a system call (EAGAIN). */
static int tcp_progress(struct dsm_transport *t)
{
	for (;;) {
		size_t room = RXBUF_SIZE - t->rxlen;
		ssize_t n;
		int err;

		if (t->dead)
			return t->dead;
		n = read(t->fd, t->rxbuf + t->rxlen, room);
		if (n == 0)
			return fail_all(t, -ECONNRESET);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return 0;
			return fail_all(t, -errno);
		}
		t->rxlen += n;
		err = parse(t);
		if (err)
			return fail_all(t, err);
		if ((size_t)n < room)
			return t->dead;
	}
}

static int tcp_fd(struct dsm_transport *t)
{
	return t->fd;
}

/* Wait until the socket takes more (events POLLOUT) or, with events 0,
 * until a reply frees a slot; keep receiving meanwhile. */
static int wait_room(struct dsm_transport *t, short events)
{
	struct pollfd p = { t->fd, events | POLLIN, 0 };

	if (poll(&p, 1, -1) < 0 && errno != EINTR)
		return -errno;
	if (p.revents & (POLLIN | POLLERR | POLLHUP))
		return tcp_progress(t);
	return 0;
}

/* ---- sending --------------------------------------------------------- */

static int full_writev(struct dsm_transport *t, struct iovec *iov, int cnt)
{
	while (cnt) {
		/* sendmsg, not writev: a server gone mid-write is EPIPE
		 * here, reported as lost, not a SIGPIPE that kills the
		 * program */
		struct msghdr m = { .msg_iov = iov, .msg_iovlen = cnt };
		ssize_t n = sendmsg(t->fd, &m, MSG_NOSIGNAL);
		int err;

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				return -errno;
			err = wait_room(t, POLLOUT);
			if (err)
				return err;
			continue;
		}
		dsm_iov_advance(&iov, &cnt, n);
	}
	return 0;
}

/* Send everything queued.  A failure fails the stream: every request
 * queued or in flight is completed with the error. */
static int tcp_flush(struct dsm_transport *t)
{
	int err = 0;

	if (t->ntx && !t->dead)
		err = full_writev(t, t->tx, t->ntx);
	t->ntx = 0;
	t->txlen = 0;
	if (err && !t->dead) {
		dsm_warn("%s: send failed: %s", t->addr, strerror(-err));
		fail_all(t, err);
	}
	return t->dead;
}

/* Queue one request: header and body (copied), then npages pages (by
 * reference).  Sends what is queued first when there is no room for it,
 * or no free slot (the replies that free one would never come while our
 * requests sit here unsent). */
static int tcp_send(struct dsm_transport *t, uint8_t type, const void *body,
		    uint32_t blen, uint8_t *const *pages, uint32_t npages,
		    dsm_done_fn done, void *arg)
{
	struct dsm_hdr h;
	uint8_t *at;
	int err;

	if (t->ntx + 1 + npages > TX_IOV || t->txlen + DSM_HDR_SIZE + blen >
	    TX_BYTES || t->nfree == 0)
		tcp_flush(t);
	while (!t->dead && !t->closing && t->nfree == 0) {
		err = wait_room(t, 0);
		if (err)
			return err;
	}
	if (t->dead || t->closing)
		return t->dead ? t->dead : -ECANCELED;
	dsm_hdr_init(&h, type, 0, blen + npages * DSM_PAGE_SIZE,
		     slot_get(t, done, arg));
	at = t->txbuf + t->txlen;
	dsm_hdr_encode(&h, at);
	if (blen)
		memcpy(at + DSM_HDR_SIZE, body, blen);
	t->txlen += DSM_HDR_SIZE + blen;
	t->tx[t->ntx++] = (struct iovec){ at, DSM_HDR_SIZE + blen };
	for (uint32_t i = 0; i < npages; i++)
		t->tx[t->ntx++] = (struct iovec){ pages[i], DSM_PAGE_SIZE };
	return 0;
}

static int tcp_read_pages(struct dsm_transport *t, uint64_t region_id,
			  uint64_t pool_off, uint32_t npages, dsm_done_fn done,
			  void *arg)
{
	struct dsm_rw_req r = { region_id, pool_off, npages, 0 };
	uint8_t body[DSM_RW_REQ_SIZE];

	dsm_rw_req_encode(&r, body);
	return tcp_send(t, DSM_MSG_READ, body, sizeof(body), NULL, 0, done,
			arg);
}

static int tcp_write_pages(struct dsm_transport *t, uint64_t region_id,
			   uint64_t pool_off, uint32_t npages,
			   uint8_t *const *pages, dsm_done_fn done, void *arg)
{
	struct dsm_rw_req r = { region_id, pool_off, npages, 0 };
	uint8_t body[DSM_RW_REQ_SIZE];

	dsm_rw_req_encode(&r, body);
	return tcp_send(t, DSM_MSG_WRITE, body, sizeof(body), pages, npages,
			done, arg);
}

static int tcp_call(struct dsm_transport *t, uint8_t type, const void *body,
		    uint32_t len, dsm_done_fn done, void *arg)
{
	if (len > TX_BYTES - DSM_HDR_SIZE)
		return -EMSGSIZE;
	return tcp_send(t, type, body, len, NULL, 0, done, arg);
}

/* ---- connection ------------------------------------------------------ */

/* Connect fd to ai within dsm_connect_ms(): a host that drops SYNs would
 * otherwise hold dsm_init for the kernel's two minutes of retries.
 * Leaves fd non-blocking.  0 or -errno (-ETIMEDOUT). */
static int connect_bounded(int fd, const struct addrinfo *ai)
{
	struct pollfd p = { fd, POLLOUT, 0 };
	socklen_t len = sizeof(int);
	int n, soerr = 0;

	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
		return 0;
	if (errno != EINPROGRESS)
		return -errno;
	do
		n = poll(&p, 1, (int)dsm_connect_ms());
	while (n < 0 && errno == EINTR);
	if (n == 0)
		return -ETIMEDOUT;
	if (n < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
		return -errno;
	return -soerr;
}

static int tcp_dial(const char *addr)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res, *ai;
	char host[100], port[8];
	uint16_t p;
	int fd = -1, err, one = 1;

	if (dsm_parse_hostport(addr, host, sizeof(host), &p))
		return -EINVAL;
	snprintf(port, sizeof(port), "%u", p);
	err = getaddrinfo(host, port, &hints, &res);
	if (err)
		return -EHOSTUNREACH;
	err = -ECONNREFUSED;
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			err = -errno;
			continue;
		}
		err = connect_bounded(fd, ai);
		if (!err)
			break;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0)
		return err;
	/* Page requests are small and latency-bound: never let Nagle hold
	 * one back waiting for more bytes. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	/* A powered-off server would otherwise hang every fault, write-back
	 * and dsm_sync on it: with these its loss is found and reported. */
	err = dsm_tcp_set_timeouts(fd, dsm_tcp_timeout_ms());
	if (err)
		dsm_warn("%s: cannot set TCP keepalive and user timeout (%s): "
			 "a vanished server will not be noticed", addr,
			 strerror(-err));
	return fd;
}

static int tcp_connect(const char *addr, const struct dsm_transport_events *ev,
		       struct dsm_transport **out)
{
	struct dsm_transport *t;
	int err;

	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->rxbuf = malloc(RXBUF_SIZE);
	if (!t->rxbuf) {
		err = -ENOMEM;
		goto out_free;
	}
	snprintf(t->addr, sizeof(t->addr), "%s", addr);
	if (ev)
		t->ev = *ev;
	for (uint32_t s = 0; s < TCP_SLOTS; s++)
		t->free_list[t->nfree++] = TCP_SLOTS - 1 - s;
	t->fd = tcp_dial(addr);
	if (t->fd < 0) {
		err = t->fd;
		goto out_free;
	}
	*out = t;
	return 0;

out_free:
	free(t->rxbuf);
	free(t);
	return err;
}

static void tcp_close(struct dsm_transport *t)
{
	if (!t)
		return;
	t->closing = true;
	fail_all(t, -ECANCELED);
	close(t->fd);
	free(t->rxbuf);
	free(t);
}

const struct dsm_transport_ops dsm_tcp_transport = {
	.name = "tcp",
	.connect = tcp_connect,
	.fd = tcp_fd,
	.progress = tcp_progress,
	.read_pages = tcp_read_pages,
	.write_pages = tcp_write_pages,
	.call = tcp_call,
	.flush = tcp_flush,
	.close = tcp_close,
};
