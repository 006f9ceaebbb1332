/*
 * session.c - see session.h (room: server protocol).
 *
 * Life of a session: accepted -> reading and answering -> closing.  A
 * session closes in one of two ways: at once (the peer is gone, or libuv
 * failed), or after sending what is queued (EOF from the peer, a reply
 * that ends the connection, GOODBYE).  The second goes through
 * uv_shutdown, which completes only once every queued write has, so the
 * last reply reaches the peer before the FIN.  Either way the memory is
 * released in on_closed, after libuv has completed every write.
 */
#include "session.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define RBUF_MIN (64u << 10)
#define RBUF_MAX (DSM_HDR_SIZE + DSM_MAX_PAYLOAD)

/* A reply on its way out: libuv's request and the bytes it sends. */
struct wreq {
	uv_write_t req;
	struct session *s;
	size_t len;
	uint8_t data[];
};

static void process(struct session *s);
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);

static void on_closed(uv_handle_t *h)
{
	struct session *s = h->data;
	struct session_list *l = s->list;

	dsm_debug("client %s gone, freeing %llu regions", s->peer,
		  (unsigned long long)s->hs.regions.count);
	handler_session_end(&s->hs);
	if (s->prev)
		s->prev->next = s->next;
	else
		l->head = s->next;
	if (s->next)
		s->next->prev = s->prev;
	l->count--;
	free(s->rbuf);
	free(s);
}

void session_close(struct session *s)
{
	s->closing = true;
	if (!uv_is_closing((uv_handle_t *)&s->tcp))
		uv_close((uv_handle_t *)&s->tcp, on_closed);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
	session_close(req->data);
}

/* Stop handling requests, let the queued replies go out, then close. */
static void close_after_send(struct session *s)
{
	if (s->closing)
		return;
	s->closing = true;
	uv_read_stop((uv_stream_t *)&s->tcp);
	s->shutdown.data = s;
	if (uv_shutdown(&s->shutdown, (uv_stream_t *)&s->tcp, on_shutdown))
		session_close(s);
}

static void resume(struct session *s)
{
	s->paused = false;
	process(s); /* what arrived before the pause comes first */
	if (s->paused || s->closing || s->eof)
		return;
	if (uv_read_start((uv_stream_t *)&s->tcp, on_alloc, on_read) < 0)
		session_close(s);
}

static void on_written(uv_write_t *req, int status)
{
	struct wreq *w = (struct wreq *)req;
	struct session *s = w->s;

	s->wqueued -= w->len;
	free(w);
	if (status < 0) {
		if (status != UV_ECANCELED) {
			dsm_debug("client %s: write: %s", s->peer,
				  uv_strerror(status));
			session_close(s);
		}
		return;
	}
	if (s->paused && !s->closing && s->wqueued < SESSION_WQ_LOW)
		resume(s);
}

/* Queue bytes [sent, end) of the reply (header, then body) for libuv. */
static int queue_rest(struct session *s, const uint8_t *hdr,
		      const struct reply *r, size_t sent)
{
	size_t len = DSM_HDR_SIZE + r->hdr.len - sent, skip;
	struct wreq *w = malloc(sizeof(*w) + len);
	uint8_t *p;
	uv_buf_t buf;
	int err;

	if (!w)
		return -ENOMEM;
	p = w->data;
	if (sent < DSM_HDR_SIZE) {
		memcpy(p, hdr + sent, DSM_HDR_SIZE - sent);
		p += DSM_HDR_SIZE - sent;
	}
	skip = sent > DSM_HDR_SIZE ? sent - DSM_HDR_SIZE : 0;
	if (r->hdr.len > skip)
		memcpy(p, r->data + skip, r->hdr.len - skip);
	w->s = s;
	w->len = len;
	buf = uv_buf_init((char *)w->data, len);
	err = uv_write(&w->req, (uv_stream_t *)&s->tcp, &buf, 1, on_written);
	if (err) {
		free(w);
		return err;
	}
	s->wqueued += len;
	return 0;
}

/*
 * A reply's body may point into the pool.  uv_try_write hands bytes to
 * the kernel before it returns, so sending straight from the pool is safe
 * and saves copying a READ's megabyte.  Whatever the socket does not take
 * is copied: libuv would send it later, and by then a following WRITE or
 * FREE on this connection could have changed those pages.
 */
static int send_reply(struct session *s, const struct reply *r)
{
	uint8_t hdr[DSM_HDR_SIZE];
	size_t sent = 0;

	dsm_hdr_encode(&r->hdr, hdr);
	if (s->wqueued == 0) { /* never overtake queued replies */
		uv_buf_t bufs[2] = {
			uv_buf_init((char *)hdr, DSM_HDR_SIZE),
			uv_buf_init((char *)r->data, r->hdr.len),
		};
		int n = uv_try_write((uv_stream_t *)&s->tcp, bufs,
				     r->hdr.len ? 2 : 1);

		/* on failure uv_write below reports it, or queues the lot */
		if (n > 0)
			sent = n;
		if (sent == DSM_HDR_SIZE + r->hdr.len)
			return 0;
	}
	return queue_rest(s, hdr, r, sent);
}

/* Handle every whole message in rbuf, in order, until one ends the
 * connection or the reply queue is full. */
static void process(struct session *s)
{
	size_t pos = 0, used;
	struct reply r;

	while (!s->closing && !s->paused) {
		used = handler_next(&s->hs, s->rbuf + pos, s->rlen - pos, &r,
				    &s->rneed);
		if (!used)
			break;
		pos += used;
		if (send_reply(s, &r) < 0) {
			dsm_warn("client %s: cannot queue a reply, closing",
				 s->peer);
			session_close(s);
		} else if (r.close) {
			close_after_send(s);
		} else if (s->wqueued >= SESSION_WQ_HIGH) {
			s->paused = true;
			uv_read_stop((uv_stream_t *)&s->tcp);
		}
	}
	if (pos) {
		memmove(s->rbuf, s->rbuf + pos, s->rlen - pos);
		s->rlen -= pos;
	}
	/* A message cut short by EOF can never be completed. */
	if (s->eof && !s->paused)
		close_after_send(s);
}

/* The buffer grows to hold the message at its front, never beyond the
 * largest message the protocol allows (the header check saw to that). */
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct session *s = h->data;
	size_t want = s->rneed > RBUF_MIN ? s->rneed : RBUF_MIN;

	*buf = uv_buf_init(NULL, 0);
	if (want > RBUF_MAX)
		return;
	if (s->rcap < want) {
		uint8_t *nb = realloc(s->rbuf, want);

		if (!nb)
			return; /* on_read gets UV_ENOBUFS */
		s->rbuf = nb;
		s->rcap = want;
	}
	if (s->rcap > s->rlen)
		*buf = uv_buf_init((char *)s->rbuf + s->rlen,
				   s->rcap - s->rlen);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
	struct session *s = stream->data;

	if (nread == 0 || s->closing)
		return;
	if (nread > 0) {
		s->rlen += nread;
		process(s);
		return;
	}
	if (nread != UV_EOF) {
		dsm_debug("client %s: read: %s", s->peer, uv_strerror(nread));
		session_close(s);
		return;
	}
	s->eof = true;
	process(s);
}

static void name_peer(struct session *s)
{
	struct sockaddr_storage ss;
	int len = sizeof(ss);
	char host[48] = "?";
	uint16_t port = 0;

	if (uv_tcp_getpeername(&s->tcp, (struct sockaddr *)&ss, &len) == 0) {
		if (ss.ss_family == AF_INET6) {
			struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;

			uv_ip6_name(a, host, sizeof(host));
			port = ntohs(a->sin6_port);
		} else {
			struct sockaddr_in *a = (struct sockaddr_in *)&ss;

			uv_ip4_name(a, host, sizeof(host));
			port = ntohs(a->sin_port);
		}
	}
	snprintf(s->peer, sizeof(s->peer), "%s:%u", host, port);
}

int session_accept(uv_stream_t *listener, struct handler *h,
		   struct session_list *all)
{
	struct session *s = calloc(1, sizeof(*s));
	int err = -ENOMEM;

	if (!s)
		return -ENOMEM;
	s->rbuf = malloc(RBUF_MIN);
	if (s->rbuf)
		err = uv_tcp_init(listener->loop, &s->tcp);
	if (err) {
		free(s->rbuf);
		free(s);
		return err;
	}
	s->rcap = RBUF_MIN;
	/* From here on the session is torn down only through on_closed. */
	s->tcp.data = s;
	s->rneed = DSM_HDR_SIZE;
	handler_session_init(&s->hs, h);
	s->list = all;
	s->next = all->head;
	if (all->head)
		all->head->prev = s;
	all->head = s;
	all->count++;

	err = uv_accept(listener, (uv_stream_t *)&s->tcp);
	if (!err)
		err = uv_read_start((uv_stream_t *)&s->tcp, on_alloc, on_read);
	if (err) {
		session_close(s);
		return err;
	}
	/* Requests are small and latency-bound: never wait to coalesce. */
	uv_tcp_nodelay(&s->tcp, 1);
	name_peer(s);
	dsm_debug("client %s connected", s->peer);
	return 0;
}

void session_draining(struct session *s, uint64_t id, bool on)
{
	struct reply r;

	/* Before AUTH a connection is told nothing; it learns it from the
	 * HELLO reply anyway. */
	if (s->closing || !s->hs.authed)
		return;
	handler_draining(&r, id, on);
	if (send_reply(s, &r) < 0)
		session_close(s);
}

void session_goodbye(struct session *s, uint64_t id)
{
	struct reply r;

	if (s->closing)
		return;
	handler_goodbye(&r, id, -ESHUTDOWN);
	if (send_reply(s, &r) < 0) {
		session_close(s);
		return;
	}
	close_after_send(s);
}
