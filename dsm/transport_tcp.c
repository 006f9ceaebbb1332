/*
 * transport_tcp.c - the TCP transport (room: transport).
 *
 * One socket, one receive thread.  Senders write whole messages under
 * send_lock, so requests from many threads never interleave on the wire.
 * Pending requests live in a fixed table of slots; a request id is
 * (generation << 16 | slot), so a reply finds its slot in O(1) and a stale
 * or forged id (wrong generation) is recognised and dropped.
 *
 * When the table is full, senders wait for a slot: that is the only
 * back-pressure, and it bounds what a slow server can make us buffer.
 *
 * Lifetime: the receive thread owns the read side; when the stream ends or
 * breaks it marks the transport dead under pend_lock, fails every pending
 * request, and reports the loss once.  Requests submitted after that fail
 * at once with the same error.
 */
#include "transport.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
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

struct pending {
	dsm_done_fn done;
	void *arg;
	uint32_t gen;
	bool busy;
};

struct dsm_transport {
	int fd;
	char addr[128];
	pthread_t rx_thread;
	struct dsm_transport_events ev;

	pthread_mutex_t send_lock; /* whole messages onto the socket */

	pthread_mutex_t pend_lock; /* slots, free list, dead, closing */
	pthread_cond_t slot_free;
	struct pending slots[TCP_SLOTS];
	uint32_t free_list[TCP_SLOTS];
	uint32_t nfree;
	int dead;                  /* 0, or the error that ended the stream */
	bool closing;

	uint8_t *rxbuf;            /* DSM_MAX_PAYLOAD: one message body */
};

static int full_read(int fd, void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n = read(fd, p, len);

		if (n == 0)
			return -ECONNRESET;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= n;
	}
	return 0;
}

static int full_writev(int fd, struct iovec *iov, int cnt)
{
	while (cnt) {
		ssize_t n = writev(fd, iov, cnt);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		while (cnt && (size_t)n >= iov->iov_len) {
			n -= iov->iov_len;
			iov++;
			cnt--;
		}
		if (cnt) {
			iov->iov_base = (uint8_t *)iov->iov_base + n;
			iov->iov_len -= n;
		}
	}
	return 0;
}

/* Take a slot for a new request; waits while all are in flight. */
static int slot_get(struct dsm_transport *t, dsm_done_fn done, void *arg,
		    uint64_t *id)
{
	struct pending *p;
	uint32_t s;
	int ret = 0;

	pthread_mutex_lock(&t->pend_lock);
	while (!t->dead && !t->closing && t->nfree == 0)
		pthread_cond_wait(&t->slot_free, &t->pend_lock);
	if (t->dead || t->closing) {
		ret = t->dead ? t->dead : -ECANCELED;
		goto out;
	}
	s = t->free_list[--t->nfree];
	p = &t->slots[s];
	p->busy = true;
	p->done = done;
	p->arg = arg;
	p->gen++;
	*id = (uint64_t)p->gen << 16 | s;
out:
	pthread_mutex_unlock(&t->pend_lock);
	return ret;
}

/* Remove the request with this id; false if no such request is pending. */
static bool slot_take(struct dsm_transport *t, uint64_t id,
		      struct pending *out)
{
	uint32_t s = id & 0xffff;
	bool found = false;

	pthread_mutex_lock(&t->pend_lock);
	if (s < TCP_SLOTS && t->slots[s].busy &&
	    t->slots[s].gen == (uint32_t)(id >> 16)) {
		*out = t->slots[s];
		t->slots[s].busy = false;
		t->free_list[t->nfree++] = s;
		pthread_cond_signal(&t->slot_free);
		found = true;
	}
	pthread_mutex_unlock(&t->pend_lock);
	return found;
}

/* Mark the stream dead and complete everything pending with err.  The
 * slots are emptied under the lock and completed outside it, because a
 * completion may take the caller's own locks. */
static void fail_all(struct dsm_transport *t, int err)
{
	struct pending *failed;
	uint32_t n = 0;

	failed = malloc(sizeof(*failed) * TCP_SLOTS);
	pthread_mutex_lock(&t->pend_lock);
	if (!t->dead)
		t->dead = err;
	for (uint32_t s = 0; s < TCP_SLOTS && failed; s++) {
		if (!t->slots[s].busy)
			continue;
		failed[n++] = t->slots[s];
		t->slots[s].busy = false;
		t->free_list[t->nfree++] = s;
	}
	pthread_cond_broadcast(&t->slot_free);
	pthread_mutex_unlock(&t->pend_lock);

	if (!failed) {
		/* Out of memory while tearing down: better to abort loudly
		 * than to leave faulting threads blocked forever. */
		dsm_err("%s: out of memory failing pending requests", t->addr);
		abort();
	}
	for (uint32_t i = 0; i < n; i++)
		failed[i].done(failed[i].arg, err, NULL, 0);
	free(failed);
}

static void dispatch(struct dsm_transport *t, const struct dsm_hdr *h)
{
	struct pending p;

	if (h->flags & DSM_F_SERVER) {
		if (t->ev.server_msg)
			t->ev.server_msg(t->ev.ctx, h, t->rxbuf);
		return;
	}
	if (!(h->flags & DSM_F_REPLY) || !slot_take(t, h->id, &p)) {
		dsm_warn("%s: dropping unexpected %s message id %llu", t->addr,
			 dsm_msg_name(h->type), (unsigned long long)h->id);
		return;
	}
	p.done(p.arg, h->status, h->status ? NULL : t->rxbuf, h->len);
}

static void *rx_main(void *arg)
{
	struct dsm_transport *t = arg;
	uint8_t raw[DSM_HDR_SIZE];
	struct dsm_hdr h;
	int err;

	for (;;) {
		err = full_read(t->fd, raw, sizeof(raw));
		if (err)
			break;
		err = dsm_hdr_decode(raw, &h);
		if (err) {
			dsm_err("%s: malformed message from server: %s",
				t->addr, strerror(-err));
			break;
		}
		err = full_read(t->fd, t->rxbuf, h.len);
		if (err)
			break;
		dispatch(t, &h);
	}

	pthread_mutex_lock(&t->pend_lock);
	bool closing = t->closing;
	pthread_mutex_unlock(&t->pend_lock);
	fail_all(t, closing ? -ECANCELED : err);
	if (!closing && t->ev.lost)
		t->ev.lost(t->ev.ctx, err);
	return NULL;
}

static int tcp_send(struct dsm_transport *t, uint8_t type, const void *body,
		    uint32_t blen, const void *data, uint32_t dlen,
		    dsm_done_fn done, void *arg)
{
	uint8_t raw[DSM_HDR_SIZE];
	struct dsm_hdr h;
	struct iovec iov[3];
	uint64_t id;
	int err, cnt = 1;

	err = slot_get(t, done, arg, &id);
	if (err)
		return err;
	dsm_hdr_init(&h, type, 0, blen + dlen, id);
	dsm_hdr_encode(&h, raw);
	iov[0] = (struct iovec){ raw, sizeof(raw) };
	if (blen)
		iov[cnt++] = (struct iovec){ (void *)body, blen };
	if (dlen)
		iov[cnt++] = (struct iovec){ (void *)data, dlen };

	pthread_mutex_lock(&t->send_lock);
	err = full_writev(t->fd, iov, cnt);
	pthread_mutex_unlock(&t->send_lock);
	if (err) {
		/* The request is registered, so the receive thread will fail
		 * it; waking it with shutdown makes that happen now. */
		dsm_warn("%s: send failed: %s", t->addr, strerror(-err));
		shutdown(t->fd, SHUT_RDWR);
	}
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
			   uint64_t pool_off, uint32_t npages, const void *src,
			   dsm_done_fn done, void *arg)
{
	struct dsm_rw_req r = { region_id, pool_off, npages, 0 };
	uint8_t body[DSM_RW_REQ_SIZE];

	dsm_rw_req_encode(&r, body);
	return tcp_send(t, DSM_MSG_WRITE, body, sizeof(body), src,
			npages * DSM_PAGE_SIZE, done, arg);
}

static int tcp_call(struct dsm_transport *t, uint8_t type, const void *body,
		    uint32_t len, dsm_done_fn done, void *arg)
{
	return tcp_send(t, type, body, len, NULL, 0, done, arg);
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
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		err = -errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0)
		return err;
	/* Page requests are small and latency-bound: never let Nagle hold
	 * one back waiting for more bytes. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
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
	t->rxbuf = malloc(DSM_MAX_PAYLOAD);
	if (!t->rxbuf) {
		err = -ENOMEM;
		goto out_free;
	}
	snprintf(t->addr, sizeof(t->addr), "%s", addr);
	if (ev)
		t->ev = *ev;
	pthread_mutex_init(&t->send_lock, NULL);
	pthread_mutex_init(&t->pend_lock, NULL);
	pthread_cond_init(&t->slot_free, NULL);
	for (uint32_t s = 0; s < TCP_SLOTS; s++)
		t->free_list[t->nfree++] = TCP_SLOTS - 1 - s;

	t->fd = tcp_dial(addr);
	if (t->fd < 0) {
		err = t->fd;
		goto out_free;
	}
	err = -pthread_create(&t->rx_thread, NULL, rx_main, t);
	if (err)
		goto out_close;
	*out = t;
	return 0;

out_close:
	close(t->fd);
out_free:
	free(t->rxbuf);
	free(t);
	return err;
}

static void tcp_close(struct dsm_transport *t)
{
	if (!t)
		return;
	pthread_mutex_lock(&t->pend_lock);
	t->closing = true;
	pthread_cond_broadcast(&t->slot_free);
	pthread_mutex_unlock(&t->pend_lock);
	shutdown(t->fd, SHUT_RDWR);
	pthread_join(t->rx_thread, NULL);
	close(t->fd);
	pthread_mutex_destroy(&t->send_lock);
	pthread_mutex_destroy(&t->pend_lock);
	pthread_cond_destroy(&t->slot_free);
	free(t->rxbuf);
	free(t);
}

const struct dsm_transport_ops dsm_tcp_transport = {
	.name = "tcp",
	.connect = tcp_connect,
	.read_pages = tcp_read_pages,
	.write_pages = tcp_write_pages,
	.call = tcp_call,
	.close = tcp_close,
};
