/*
 * session_tcp.c - see session_tcp.h (room: server protocol).
 *
 * Life of a TCP session: accepted -> reading and answering -> closing.  A
 * session closes in one of two ways: at once (the peer is gone, or libuv
 * failed), or after sending what is queued (EOF from the peer, a reply
 * that ends the connection, GOODBYE).  The second goes through
 * uv_shutdown, which completes only once every queued write has, so the
 * last reply reaches the peer before the FIN.  Either way the memory is
 * released in on_closed, after libuv has completed every write.
 */
#include "session_tcp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

#define RBUF_MIN (64u << 10)
#define RBUF_MAX (DSM_HDR_SIZE + DSM_MAX_PAYLOAD)
/* Until the handshake completes a message is at most a HELLO or an AUTH
 * (the handler refuses any header announcing more), so a connection
 * that has proved nothing holds this much, not RBUF_MIN. */
#define RBUF_HANDSHAKE 256u
_Static_assert(DSM_HDR_SIZE + HANDLER_HANDSHAKE_BODY_MAX <= RBUF_HANDSHAKE,
	       "a whole handshake message fits the first buffer");

struct session_tcp {
	struct session s;       /* first: the ops get a struct session */
	uv_tcp_t tcp;
	uv_shutdown_t shutdown;
	uint8_t *rbuf;          /* bytes received and not yet handled */
	size_t rlen, rcap;
	size_t rneed;           /* size of the message at the front of rbuf */
	size_t wqueued;         /* reply bytes given to libuv, not yet sent */
	bool paused;            /* reading stopped until wqueued drains */
	bool eof;               /* the peer will send nothing more */
};

/* A reply on its way out: libuv's request and the bytes it sends. */
struct wreq {
	uv_write_t req;
	struct session_tcp *t;
	size_t len;
	uint8_t data[];
};

/*
 * The cork: replies to a burst of requests, held while process() answers
 * it and sent with one writev at its end, so that a burst of write-backs
 * costs one system call and one wake-up of the client, not one each.
 * Headers and small bodies are copied into it; a READ's body is a pointer
 * into the pool, so the cork is sent before any request that is not a
 * READ is handled (it could change those pages).  Owned by the loop
 * thread: at most one session is processing at a time, and the cork is
 * empty whenever none is.
 */
#define CORK_BUFS 64
#define CORK_STASH 4096
static struct {
	struct session_tcp *owner; /* the session in process(), or NULL */
	unsigned n;
	size_t bytes, stashed;
	bool pool;                 /* some body points into the pool */
	uv_buf_t bufs[CORK_BUFS];
	uint8_t stash[CORK_STASH];
} cork;

/* Forget what the cork holds (its session is closing at once). */
static void cork_drop(void)
{
	cork.n = 0;
	cork.bytes = cork.stashed = 0;
	cork.pool = false;
}

static void process(struct session_tcp *t);
static int cork_flush(void);
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);

static struct session_tcp *tcp_of(struct session *s)
{
	return (struct session_tcp *)s;
}

static void on_closed(uv_handle_t *h)
{
	struct session_tcp *t = h->data;

	session_unlink(&t->s);
	free(t->rbuf);
	free(t);
}

static void tcp_close(struct session *s)
{
	struct session_tcp *t = tcp_of(s);

	s->closing = true;
	if (cork.owner == t) /* what it holds goes with the rest */
		cork_drop();
	if (!uv_is_closing((uv_handle_t *)&t->tcp))
		uv_close((uv_handle_t *)&t->tcp, on_closed);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
	session_close(req->data);
}

/* Stop handling requests, let the queued replies go out, then close. */
static void tcp_close_after_send(struct session *s)
{
	struct session_tcp *t = tcp_of(s);

	if (t->shutdown.data || uv_is_closing((uv_handle_t *)&t->tcp))
		return; /* already on its way */
	if (cork.owner == t && cork_flush()) {
		tcp_close(s);
		return;
	}
	s->closing = true;
	uv_read_stop((uv_stream_t *)&t->tcp);
	t->shutdown.data = s;
	if (uv_shutdown(&t->shutdown, (uv_stream_t *)&t->tcp, on_shutdown))
		session_close(s);
}

static void resume(struct session_tcp *t)
{
	t->paused = false;
	process(t); /* what arrived before the pause comes first */
	if (t->paused || t->s.closing || t->eof)
		return;
	if (uv_read_start((uv_stream_t *)&t->tcp, on_alloc, on_read) < 0)
		session_close(&t->s);
}

static void on_written(uv_write_t *req, int status)
{
	struct wreq *w = (struct wreq *)req;
	struct session_tcp *t = w->t;

	t->wqueued -= w->len;
	free(w);
	if (status < 0) {
		if (status != UV_ECANCELED) {
			dsm_debug("client %s: write: %s", t->s.peer,
				  uv_strerror(status));
			session_close(&t->s);
		}
		return;
	}
	if (t->paused && !t->s.closing && t->wqueued < SESSION_WQ_LOW)
		resume(t);
}

/* Queue for libuv the bytes of bufs[0..n) after the first skip: copied,
 * since a reply's body may point into the pool (see tcp_send). */
static int queue_bufs(struct session_tcp *t, const uv_buf_t *bufs,
		      unsigned n, size_t skip)
{
	size_t len = 0;
	struct wreq *w;
	uv_buf_t buf;
	uint8_t *p;
	int err;

	for (unsigned i = 0; i < n; i++)
		len += bufs[i].len;
	len -= skip;
	w = malloc(sizeof(*w) + len);
	if (!w)
		return -ENOMEM;
	p = w->data;
	for (unsigned i = 0; i < n; i++) {
		size_t from = skip < bufs[i].len ? skip : bufs[i].len;

		memcpy(p, bufs[i].base + from, bufs[i].len - from);
		p += bufs[i].len - from;
		skip -= from;
	}
	w->t = t;
	w->len = len;
	buf = uv_buf_init((char *)w->data, len);
	err = uv_write(&w->req, (uv_stream_t *)&t->tcp, &buf, 1, on_written);
	if (err) {
		free(w);
		return err;
	}
	t->wqueued += len;
	return 0;
}

/* Send bufs[0..n) (total bytes): straight to the kernel when nothing is
 * queued before them, the rest copied and queued. */
static int send_bufs(struct session_tcp *t, const uv_buf_t *bufs, unsigned n,
		     size_t total)
{
	size_t sent = 0;

	if (t->wqueued == 0) { /* never overtake queued replies */
		int k = uv_try_write((uv_stream_t *)&t->tcp, bufs, n);

		/* on failure uv_write below reports it, or queues the lot */
		if (k > 0)
			sent = k;
		if (sent == total)
			return 0;
	}
	return queue_bufs(t, bufs, n, sent);
}

static int cork_flush(void)
{
	int err = 0;

	if (cork.n)
		err = send_bufs(cork.owner, cork.bufs, cork.n, cork.bytes);
	cork_drop();
	return err;
}

static uint8_t *stash(const void *p, size_t len)
{
	uint8_t *at = cork.stash + cork.stashed;

	memcpy(at, p, len);
	cork.stashed += len;
	return at;
}

static int cork_add(const uint8_t *hdr, const struct reply *r)
{
	bool small = r->data >= r->body && r->data < r->body + sizeof(r->body);
	size_t need = DSM_HDR_SIZE + (small ? r->hdr.len : 0);
	int err;

	if (cork.n + 2 > CORK_BUFS || cork.stashed + need > CORK_STASH) {
		err = cork_flush();
		if (err)
			return err;
	}
	cork.bufs[cork.n++] = uv_buf_init((char *)stash(hdr, DSM_HDR_SIZE),
					  DSM_HDR_SIZE);
	if (r->hdr.len) {
		const uint8_t *body = small ? stash(r->data, r->hdr.len) : r->data;

		cork.bufs[cork.n++] = uv_buf_init((char *)body, r->hdr.len);
		cork.pool |= !small;
	}
	cork.bytes += DSM_HDR_SIZE + r->hdr.len;
	return 0;
}

/* Before handling the message at rbuf + pos: must the cork go first? */
static bool cork_must_go(const struct session_tcp *t, size_t pos)
{
	struct dsm_hdr h;

	if (!cork.pool || t->rlen - pos < DSM_HDR_SIZE)
		return false;
	return dsm_hdr_decode(t->rbuf + pos, &h) || h.type != DSM_MSG_READ;
}

/*
 * A reply's body may point into the pool.  uv_try_write hands bytes to
 * the kernel before it returns, so sending straight from the pool is safe
 * and saves copying a READ's megabyte.  Whatever the socket does not take
 * is copied: libuv would send it later, and by then a following WRITE or
 * FREE on this connection could have changed those pages.
 */
static int tcp_send(struct session *s, const struct reply *r)
{
	struct session_tcp *t = tcp_of(s);
	uint8_t hdr[DSM_HDR_SIZE];
	uv_buf_t bufs[2];

	dsm_hdr_encode(&r->hdr, hdr);
	if (cork.owner == t)
		return cork_add(hdr, r);
	bufs[0] = uv_buf_init((char *)hdr, DSM_HDR_SIZE);
	bufs[1] = uv_buf_init((char *)r->data, r->hdr.len);
	return send_bufs(t, bufs, r->hdr.len ? 2 : 1, DSM_HDR_SIZE + r->hdr.len);
}

/* Handle every whole message in rbuf, in order, until one ends the
 * connection or the reply queue is full. */
static void process(struct session_tcp *t)
{
	size_t pos = 0, used;

	cork.owner = t;
	while (!t->s.closing && !t->paused) {
		if (cork_must_go(t, pos) && cork_flush()) {
			session_close(&t->s);
			break;
		}
		used = session_request(&t->s, t->rbuf + pos, t->rlen - pos,
				       &t->rneed);
		if (!used)
			break;
		pos += used;
		if (!t->s.closing && t->wqueued >= SESSION_WQ_HIGH) {
			t->paused = true;
			uv_read_stop((uv_stream_t *)&t->tcp);
		}
	}
	if (cork.owner == t && cork_flush())
		session_close(&t->s);
	cork.owner = NULL;
	if (pos) {
		memmove(t->rbuf, t->rbuf + pos, t->rlen - pos);
		t->rlen -= pos;
	}
	/* A message cut short by EOF can never be completed. */
	if (t->eof && !t->paused)
		tcp_close_after_send(&t->s);
}

/* The buffer grows to hold the message at its front, never beyond the
 * largest message the protocol allows (the header check saw to that). */
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct session_tcp *t = h->data;
	size_t least = t->s.hs.authed ? RBUF_MIN : RBUF_HANDSHAKE;
	size_t want = t->rneed > least ? t->rneed : least;

	*buf = uv_buf_init(NULL, 0);
	if (want > RBUF_MAX)
		return;
	if (t->rcap < want) {
		uint8_t *nb = realloc(t->rbuf, want);

		if (!nb)
			return; /* on_read gets UV_ENOBUFS */
		t->rbuf = nb;
		t->rcap = want;
	}
	if (t->rcap > t->rlen)
		*buf = uv_buf_init((char *)t->rbuf + t->rlen,
				   t->rcap - t->rlen);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
	struct session_tcp *t = stream->data;

	if (nread == 0 || t->s.closing)
		return;
	if (nread > 0) {
		t->rlen += nread;
		process(t);
		return;
	}
	if (nread != UV_EOF) {
		dsm_debug("client %s: read: %s", t->s.peer, uv_strerror(nread));
		session_close(&t->s);
		return;
	}
	t->eof = true;
	process(t);
}

static void name_peer(struct session_tcp *t)
{
	struct sockaddr_storage ss;
	int len = sizeof(ss);
	char host[48] = "?";
	uint16_t port = 0;

	if (uv_tcp_getpeername(&t->tcp, (struct sockaddr *)&ss, &len) == 0) {
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
	snprintf(t->s.peer, sizeof(t->s.peer), "%s:%u", host, port);
}

static const struct session_ops tcp_ops = {
	.name = "tcp",
	.send = tcp_send,
	.close_after_send = tcp_close_after_send,
	.close = tcp_close,
};

static void on_refused_closed(uv_handle_t *h)
{
	free(h);
}

/* Over the caps: take the connection off the backlog and close it, so
 * the client learns at once instead of waiting out its timeout (and the
 * listener does not stay readable for nothing). */
static int refuse(uv_stream_t *listener)
{
	uv_tcp_t *c = malloc(sizeof(*c));
	int err;

	if (!c)
		return -ENOMEM;
	err = uv_tcp_init(listener->loop, c);
	if (err) {
		free(c);
		return err;
	}
	err = uv_accept(listener, (uv_stream_t *)c);
	uv_close((uv_handle_t *)c, on_refused_closed);
	return err;
}

int session_tcp_accept(uv_stream_t *listener, struct handler *h,
		       struct session_list *all)
{
	struct session_tcp *t;
	int err = -ENOMEM;
	uv_os_fd_t fd;

	if (session_admit(all) < 0) {
		dsm_debug("refused a connection: %zu clients, the most "
			  "--max-connections allows", all->count);
		return refuse(listener);
	}
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->rbuf = malloc(RBUF_HANDSHAKE);
	if (t->rbuf)
		err = uv_tcp_init(listener->loop, &t->tcp);
	if (err) {
		free(t->rbuf);
		free(t);
		return err;
	}
	t->rcap = RBUF_HANDSHAKE;
	/* From here on the session is torn down only through on_closed. */
	t->tcp.data = t;
	t->rneed = DSM_HDR_SIZE;
	session_link(&t->s, &tcp_ops, h, all);

	err = uv_accept(listener, (uv_stream_t *)&t->tcp);
	if (!err)
		err = uv_read_start((uv_stream_t *)&t->tcp, on_alloc, on_read);
	if (err) {
		session_close(&t->s);
		return err;
	}
	/* Requests are small and latency-bound: never wait to coalesce. */
	uv_tcp_nodelay(&t->tcp, 1);
	name_peer(t);
	/* A client whose machine vanished is found, its session ended and
	 * its regions freed, as if it had closed, after --tcp-timeout-ms: the
	 * time its machine may leave our replies unacknowledged (the kernel
	 * counts a closed receive window too) or be silent to keepalive
	 * probes. */
	if (uv_fileno((uv_handle_t *)&t->tcp, &fd) == 0 &&
	    (err = dsm_tcp_set_timeouts(fd, all->lim.tcp_timeout_ms)))
		dsm_warn("client %s: cannot set TCP keepalive: %s", t->s.peer,
			 strerror(-err));
	dsm_debug("client %s connected over TCP", t->s.peer);
	return 0;
}
