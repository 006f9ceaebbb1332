/*
 * metrics.c - see metrics.h (room: metrics).
 *
 * Life of a connection: accepted (its deadline armed) -> reading its
 * request -> answered (the reply written, then a FIN) -> closed when the
 * peer closes too, or at the deadline.  After the answer whatever the
 * peer still sends is read and dropped: closing a socket with unread
 * bytes makes the kernel send a reset, which can destroy the answer (a
 * 400 for an oversized header, say) before the peer reads it.
 */
#include "metrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "prom.h"
#include "util.h"

/* After accept fails for want of descriptors, how long the endpoint
 * stays closed (libuv would otherwise retry at once, in a loop). */
#define METRICS_PAUSE_MS 500
#define METRICS_HEAD_MAX 256 /* status line and headers of an answer */

struct metrics_conn {
	uv_tcp_t tcp;
	uv_timer_t deadline;
	struct metrics *m;
	struct metrics_conn *next, *prev;
	int open_handles;         /* tcp and deadline, until both closed */
	bool closing;
	bool answered;            /* from here on, what arrives is dropped */
	bool shut;                /* the answer and our FIN are sent */
	bool eof;                 /* the peer will send nothing more */
	uv_write_t write;
	uv_shutdown_t shutdown;
	char head[METRICS_HEAD_MAX];
	struct prom_buf body;     /* the answer's, until written */
	size_t len;               /* request bytes in req */
	char req[METRICS_REQUEST_MAX];
};

/* ---- the exposition --------------------------------------------------- */

/* Counters of struct handler, in the order they are shown. */
static const struct counter {
	const char *name, *help;
	size_t off;
} counters[] = {
	{ "dsm_server_pages_read_total",
	  "Pages sent to clients in READ replies (one-sided RDMA reads are "
	  "not seen by the server)", offsetof(struct handler, pages_read) },
	{ "dsm_server_pages_written_total",
	  "Pages received from clients in WRITEs (one-sided RDMA writes are "
	  "not seen by the server)", offsetof(struct handler, pages_written) },
	{ "dsm_server_pages_discarded_total",
	  "Pages given back to the OS by DISCARD",
	  offsetof(struct handler, pages_discarded) },
	{ "dsm_server_received_bytes_total",
	  "Bytes of whole messages received from clients",
	  offsetof(struct handler, bytes_in) },
	{ "dsm_server_sent_bytes_total",
	  "Bytes of messages sent to clients",
	  offsetof(struct handler, bytes_out) },
	{ "dsm_server_auth_refused_total",
	  "Handshakes refused: the peer did not prove it knows the cluster "
	  "secret", offsetof(struct handler, auth_refused) },
	{ "dsm_server_connections_refused_total",
	  "Connections refused or closed before their handshake completed: "
	  "over --max-connections or --max-handshakes, too slow, or too large",
	  offsetof(struct handler, conn_refused) },
	{ "dsm_server_over_limit_total",
	  "Requests refused for a client's limits (--max-regions, "
	  "--max-client-sessions)", offsetof(struct handler, over_limit) },
	{ "dsm_server_lock_grants_total", "LOCKs granted",
	  offsetof(struct handler, lock_grants) },
	{ "dsm_server_lock_waits_total", "LOCKs that had to wait",
	  offsetof(struct handler, lock_waits) },
	{ "dsm_server_barriers_released_total", "Barrier rounds completed",
	  offsetof(struct handler, barriers_released) },
	{ "dsm_server_acquires_total", "ACQUIREs of shared pages granted",
	  offsetof(struct handler, acquires) },
	{ "dsm_server_invalidations_total", "INVALIDATEs and RECALLs sent",
	  offsetof(struct handler, invalidations) },
	{ "dsm_server_inval_timeouts_total",
	  "Holders of shared regions closed for not answering an INVALIDATE "
	  "or RECALL in time", offsetof(struct handler, inval_timeouts) },
};

static uint64_t field(const struct handler *h, size_t off)
{
	return *(const uint64_t *)((const char *)h + off);
}

static void gauge(struct prom_buf *b, const char *name, const char *help,
		  uint64_t v)
{
	prom_family(b, name, "gauge", help);
	prom_u64(b, name, "", v);
}

static void render_gauges(struct prom_buf *b, const struct metrics *m)
{
	const struct handler *h = m->h;
	char labels[64] = "", id[16];

	snprintf(id, sizeof(id), "%u", h->server_id);
	prom_label(labels, sizeof(labels), "server_id", id);
	prom_family(b, "dsm_server_info", "gauge",
		    "Always 1; its label is the server's id in the registry "
		    "(0 without one)");
	prom_u64(b, "dsm_server_info", labels, 1);
	gauge(b, "dsm_server_capacity_bytes", "Memory the server offers",
	      h->pool.capacity);
	gauge(b, "dsm_server_used_bytes", "Memory held by regions",
	      h->pool.used);
	gauge(b, "dsm_server_regions", "Regions held, shared ones included",
	      h->regions.count);
	gauge(b, "dsm_server_shared_regions", "Shared regions held",
	      h->shared_regions);
	gauge(b, "dsm_server_sessions",
	      "Client connections, TCP and RDMA, handshakes included",
	      h->sessions);
	gauge(b, "dsm_server_draining",
	      "1 while the server is being drained (takes no new regions)",
	      h->draining);
	prom_family(b, "dsm_server_start_time_seconds", "gauge",
		    "When the server started, in seconds since the epoch");
	prom_fixed(b, "dsm_server_start_time_seconds", "", m->start_ms, 3);
}

static void render_counters(struct prom_buf *b, const struct metrics *m)
{
	for (size_t i = 0; i < sizeof(counters) / sizeof(counters[0]); i++) {
		prom_family(b, counters[i].name, "counter", counters[i].help);
		prom_u64(b, counters[i].name, "", field(m->h, counters[i].off));
	}
	prom_family(b, "dsm_server_metrics_connections_refused_total",
		    "counter", "Connections to this endpoint closed unanswered: over its "
		    "cap of connections");
	prom_u64(b, "dsm_server_metrics_connections_refused_total", "",
		 m->refused);
}

#define DURATION "dsm_server_request_duration_seconds"

/* The type label of a type slot: the message's name in lower case. */
static void type_name(unsigned slot, char *out, size_t len)
{
	const char *name = slot ? dsm_msg_name(slot) : "unknown";
	size_t i;

	for (i = 0; name[i] && i + 1 < len; i++)
		out[i] = name[i] >= 'A' && name[i] <= 'Z' ? name[i] + 32 : name[i];
	out[i] = 0;
}

static const char *status_name(unsigned slot, char *buf, size_t len)
{
	const char *name;

	if (slot == 0)
		return "ok";
	if (slot == HANDLER_STATUS_OTHER)
		return "other";
	name = strerrorname_np(slot);
	if (name)
		return name;
	snprintf(buf, len, "E%u", slot);
	return buf;
}

static void render_requests(struct prom_buf *b, const struct handler *h)
{
	static const char name[] = "dsm_server_requests_total";
	char type[32], st[16], labels[96];

	prom_family(b, name, "counter",
		    "Requests handled, by type and outcome: ok, or the errno "
		    "of the error reply");
	for (unsigned t = 0; t < HANDLER_TYPE_SLOTS; t++) {
		type_name(t, type, sizeof(type));
		for (unsigned s = 0; s < HANDLER_STATUS_SLOTS; s++) {
			if (!h->requests_by[t][s])
				continue;
			labels[0] = 0;
			prom_label(labels, sizeof(labels), "type", type);
			prom_label(labels, sizeof(labels), "status",
				   status_name(s, st, sizeof(st)));
			prom_u64(b, name, labels, h->requests_by[t][s]);
		}
	}
}

/* One type's histogram: cumulative buckets, +Inf, sum, count. */
static void render_times(struct prom_buf *b, const struct handler_times *t,
			 const char *type)
{
	char labels[64] = "", le[32], bucket[96];
	uint64_t below = 0;

	prom_label(labels, sizeof(labels), "type", type);
	for (unsigned i = 0; i <= HANDLER_TIME_BUCKETS; i++) {
		below += t->bucket[i];
		if (i < HANDLER_TIME_BUCKETS)
			snprintf(le, sizeof(le), "%g",
				 handler_time_bounds_ns[i] / 1e9);
		else
			snprintf(le, sizeof(le), "+Inf");
		snprintf(bucket, sizeof(bucket), "%s", labels);
		prom_label(bucket, sizeof(bucket), "le", le);
		prom_u64(b, DURATION "_bucket", bucket, below);
	}
	prom_fixed(b, DURATION "_sum", labels, t->sum_ns, 9);
	prom_u64(b, DURATION "_count", labels, t->count);
}

static void render_durations(struct prom_buf *b, const struct handler *h)
{
	char type[32];

	prom_family(b, DURATION, "histogram",
		    "Time the server spent on a request, by type: handling "
		    "it and queuing its reply (not the kernel's send of a "
		    "READ's pages, nor a deferred reply's wait)");
	for (unsigned t = 0; t < HANDLER_TYPE_SLOTS; t++) {
		if (!h->times[t].count)
			continue;
		type_name(t, type, sizeof(type));
		render_times(b, &h->times[t], type);
	}
}

static void render(struct prom_buf *b, const struct metrics *m)
{
	render_gauges(b, m);
	render_counters(b, m);
	render_requests(b, m->h);
	render_durations(b, m->h);
}

/* ---- a connection ------------------------------------------------------ */

static void on_conn_closed(uv_handle_t *handle)
{
	struct metrics_conn *c = handle->data;
	struct metrics *m = c->m;

	if (--c->open_handles)
		return;
	if (c->prev)
		c->prev->next = c->next;
	else
		m->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	m->nconns--;
	prom_free(&c->body);
	free(c);
}

static void conn_close(struct metrics_conn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
	uv_close((uv_handle_t *)&c->deadline, on_conn_closed);
}

static void on_deadline(uv_timer_t *t)
{
	struct metrics_conn *c = t->data;

	dsm_debug("metrics: closing a connection still open after %llu ms",
		  (unsigned long long)c->m->timeout_ms);
	conn_close(c);
}

static void on_written(uv_write_t *req, int status)
{
	struct metrics_conn *c = req->data;

	prom_free(&c->body);
	if (status < 0)
		conn_close(c);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
	struct metrics_conn *c = req->data;

	c->shut = true;
	if (status < 0 || c->eof)
		conn_close(c);
}

static const char *reason(int code)
{
	switch (code) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	}
	return "Internal Server Error";
}

/* Send the answer: code, the head, and c->body unless head_only; then
 * our FIN.  Whatever fails, the connection closes. */
static void answer(struct metrics_conn *c, int code, bool head_only)
{
	const char *type = code == 200 ? PROM_CONTENT_TYPE
				       : "text/plain; charset=utf-8";
	uv_buf_t bufs[2];
	int n, err;

	c->answered = true;
	if (c->body.failed) { /* no half a page passed off as whole */
		prom_free(&c->body);
		code = 500;
		prom_printf(&c->body, "out of memory\n");
	}
	n = snprintf(c->head, sizeof(c->head),
		     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
		     "Content-Length: %zu\r\n%sConnection: close\r\n\r\n",
		     code, reason(code), type, c->body.len,
		     code == 405 ? "Allow: GET, HEAD\r\n" : "");
	bufs[0] = uv_buf_init(c->head, n);
	bufs[1] = uv_buf_init(c->body.text, c->body.len);
	c->write.data = c;
	c->shutdown.data = c;
	err = uv_write(&c->write, (uv_stream_t *)&c->tcp, bufs,
		       head_only || !c->body.len ? 1 : 2, on_written);
	if (!err)
		err = uv_shutdown(&c->shutdown, (uv_stream_t *)&c->tcp,
				  on_shutdown);
	if (err)
		conn_close(c);
}

/* A small answer for an error. */
static void refuse_request(struct metrics_conn *c, int code, const char *why)
{
	prom_printf(&c->body, "%s\n", why);
	answer(c, code, false);
}

/* Where the request line and headers end in req[0..len): the offset
 * past the empty line, or 0 if they have not all arrived.  A bare LF
 * ends a line too, as HTTP/1.1 (RFC 9112, 2.2) lets a server accept. */
static size_t header_end(const char *req, size_t len)
{
	for (size_t i = 0; i + 1 < len; i++) {
		if (req[i] != '\n')
			continue;
		if (req[i + 1] == '\n')
			return i + 2;
		if (req[i + 1] == '\r' && i + 2 < len && req[i + 2] == '\n')
			return i + 3;
	}
	return 0;
}

static bool is_token(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] <= ' ' || s[i] >= 0x7f)
			return false;
	return n > 0;
}

/* A request line's parts, pointing into the request. */
struct request_line {
	const char *method, *path;
	size_t mlen, plen;     /* the path without its query */
};

/* "METHOD SP TARGET SP HTTP/1.0|1.1", ending at the first LF of
 * req[0..end): 0, or -1 if it is not one. */
static int parse_line(const char *req, size_t end, struct request_line *rl)
{
	const char *eol = memchr(req, '\n', end), *sp1, *sp2, *query;

	if (eol > req && eol[-1] == '\r')
		eol--;
	sp1 = memchr(req, ' ', eol - req);
	sp2 = sp1 ? memchr(sp1 + 1, ' ', eol - sp1 - 1) : NULL;
	if (!sp2 || eol - sp2 - 1 != 8 || strncmp(sp2 + 1, "HTTP/1.", 7) ||
	    (sp2[8] != '0' && sp2[8] != '1') || !is_token(req, sp1 - req) ||
	    !is_token(sp1 + 1, sp2 - sp1 - 1))
		return -1;
	rl->method = req;
	rl->mlen = sp1 - req;
	rl->path = sp1 + 1;
	query = memchr(rl->path, '?', sp2 - rl->path);
	rl->plen = (query ? query : sp2) - rl->path;
	return 0;
}

static bool is(const char *s, size_t n, const char *word)
{
	return n == strlen(word) && !strncmp(s, word, n);
}

/* The request line decides the answer; the headers are not looked at,
 * and a body, if any, is dropped with whatever follows.  A target's
 * query is ignored, as a scrape configuration may add one. */
static void route(struct metrics_conn *c, size_t end)
{
	struct request_line rl;
	bool head;

	if (parse_line(c->req, end, &rl)) {
		refuse_request(c, 400, "malformed request line");
		return;
	}
	head = is(rl.method, rl.mlen, "HEAD");
	if (!head && !is(rl.method, rl.mlen, "GET")) {
		refuse_request(c, 405, "only GET and HEAD are served");
		return;
	}
	if (!is(rl.path, rl.plen, "/metrics")) {
		refuse_request(c, 404, "not found: the metrics are at /metrics");
		return;
	}
	render(&c->body, c->m);
	answer(c, 200, head);
}

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
	struct metrics_conn *c = handle->data;

	if (c->answered) /* dropped: any room will do */
		*buf = uv_buf_init(c->req, sizeof(c->req));
	else
		*buf = uv_buf_init(c->req + c->len, sizeof(c->req) - c->len);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
	struct metrics_conn *c = stream->data;
	size_t end;

	if (nread == 0 || c->closing)
		return;
	if (nread < 0) {
		c->eof = true;
		/* an answer still being written closes in on_shutdown */
		if (nread != UV_EOF || !c->answered || c->shut)
			conn_close(c);
		return;
	}
	if (c->answered)
		return;
	c->len += nread;
	end = header_end(c->req, c->len);
	if (end)
		route(c, end);
	else if (c->len == sizeof(c->req))
		refuse_request(c, 400, "request header too large");
}

/* ---- the listener ------------------------------------------------------ */

static void on_refused_closed(uv_handle_t *handle)
{
	free(handle);
}

/* Over the cap: off the backlog and closed, unanswered. */
/* Accepted and closed at once, unanswered.  0, or an error with the
 * connection still waiting in the listener. */
static int refuse_conn(struct metrics *m, uv_stream_t *listener)
{
	uv_tcp_t *t = malloc(sizeof(*t));
	int err;

	if (!t)
		return UV_ENOMEM;
	err = uv_tcp_init(m->loop, t);
	if (err) {
		free(t);
		return err;
	}
	err = uv_accept(listener, (uv_stream_t *)t);
	uv_close((uv_handle_t *)t, on_refused_closed);
	if (!err)
		m->refused++;
	return err;
}

static int accept_conn(struct metrics *m, uv_stream_t *listener)
{
	struct metrics_conn *c = calloc(1, sizeof(*c));
	int err;

	if (!c)
		return UV_ENOMEM;
	c->m = m;
	uv_tcp_init(m->loop, &c->tcp);
	uv_timer_init(m->loop, &c->deadline);
	c->tcp.data = c->deadline.data = c;
	c->open_handles = 2;
	c->next = m->conns;
	if (m->conns)
		m->conns->prev = c;
	m->conns = c;
	m->nconns++;
	/* from here on c is freed only through on_conn_closed */
	err = uv_accept(listener, (uv_stream_t *)&c->tcp);
	if (!err)
		err = uv_timer_start(&c->deadline, on_deadline, m->timeout_ms, 0);
	if (!err)
		err = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
	if (err)
		conn_close(c);
	return err;
}

static int listen_now(struct metrics *m);

static void on_pause_timer(uv_timer_t *t)
{
	struct metrics *m = t->data;
	int err;

	if (m->stopped)
		return;
	err = listen_now(m);
	if (err) {
		dsm_warn("metrics: cannot listen again: %s; trying in %d ms",
			 uv_strerror(err), METRICS_PAUSE_MS);
		uv_timer_start(&m->pause_timer, on_pause_timer,
			       METRICS_PAUSE_MS, 0);
	}
}

static void on_listener_closed(uv_handle_t *handle)
{
	struct metrics *m = handle->data;

	if (!m->stopped)
		uv_timer_start(&m->pause_timer, on_pause_timer,
			       METRICS_PAUSE_MS, 0);
}

/*
 * Not taking connections for a while.  libuv holds an accepted descriptor
 * until uv_accept takes it and reads the listener no further meanwhile,
 * and when accept itself finds no descriptor (EMFILE) it calls back again
 * at once, for ever; either way the listener would be stuck.  So close
 * it, dropping what waits in its backlog, and listen again after a pause
 * (as main.c does for the pages' listener).
 */
static void pause_listening(struct metrics *m, int err)
{
	dsm_warn("metrics: accept: %s: not taking connections for %d ms",
		 uv_strerror(err), METRICS_PAUSE_MS);
	m->listening = false;
	uv_close((uv_handle_t *)&m->listener, on_listener_closed);
}

static void on_connection(uv_stream_t *listener, int status)
{
	struct metrics *m = listener->data;
	int err = status;

	if (!err && m->nconns >= METRICS_MAX_CONNS)
		err = refuse_conn(m, listener);
	else if (!err)
		err = accept_conn(m, listener);
	if (err == UV_EMFILE || err == UV_ENFILE || err == UV_ENOMEM)
		pause_listening(m, err);
	else if (err)
		dsm_warn("metrics: accept: %s", uv_strerror(err));
}

static int listen_now(struct metrics *m)
{
	int err;

	uv_tcp_init(m->loop, &m->listener);
	m->listener.data = m;
	err = uv_tcp_bind(&m->listener, (const struct sockaddr *)&m->addr, 0);
	if (!err)
		err = uv_listen((uv_stream_t *)&m->listener, SOMAXCONN,
				on_connection);
	if (err) {
		uv_close((uv_handle_t *)&m->listener, NULL);
		return err;
	}
	m->listening = true;
	return 0;
}

/* The address bound (its port, if 0 was asked for), kept for listening
 * again, and named in the log. */
static void note_bound(struct metrics *m)
{
	struct sockaddr_storage ss;
	int len = sizeof(ss);
	char host[64] = "?";
	uint16_t port;

	if (uv_tcp_getsockname(&m->listener, (struct sockaddr *)&ss, &len))
		return;
	m->addr = ss;
	if (ss.ss_family == AF_INET6) {
		uv_ip6_name((struct sockaddr_in6 *)&ss, host, sizeof(host));
		port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
		dsm_info("metrics on http://[%s]:%u/metrics", host, port);
	} else {
		uv_ip4_name((struct sockaddr_in *)&ss, host, sizeof(host));
		port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
		dsm_info("metrics on http://%s:%u/metrics", host, port);
	}
}

/* The wall clock when h started: its start is kept on the monotonic
 * clock, which says nothing of dates. */
static uint64_t start_wall_ms(const struct handler *h)
{
	struct timespec ts;
	uint64_t now_ms, up_ms = (dsm_now_ns() - h->start_ns) / 1000000;

	clock_gettime(CLOCK_REALTIME, &ts);
	now_ms = (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	return now_ms > up_ms ? now_ms - up_ms : 0;
}

static uint64_t timeout_from_env(void)
{
	const char *v = getenv(METRICS_TIMEOUT_ENV);
	uint64_t ms;

	if (v && !dsm_parse_uint(v, METRICS_TIMEOUT_MS, &ms) && ms)
		return ms;
	return METRICS_TIMEOUT_MS;
}

int metrics_parse_addr(const char *s, char *host, size_t hostlen,
		       uint16_t *port)
{
	uint64_t p;

	if (dsm_parse_uint(s, UINT16_MAX, &p) == 0) {
		snprintf(host, hostlen, "%s", METRICS_DEFAULT_HOST);
		*port = p;
		return 0;
	}
	return dsm_parse_hostport(s, host, hostlen, port);
}

int metrics_start(struct metrics *m, uv_loop_t *loop,
		  const struct sockaddr_storage *addr, const struct handler *h)
{
	int err;

	memset(m, 0, sizeof(*m));
	m->loop = loop;
	m->h = h;
	m->addr = *addr;
	m->timeout_ms = timeout_from_env();
	m->start_ms = start_wall_ms(h);
	uv_timer_init(loop, &m->pause_timer);
	m->pause_timer.data = m;
	err = listen_now(m);
	if (err) {
		m->stopped = true;
		uv_close((uv_handle_t *)&m->pause_timer, NULL);
		return err;
	}
	note_bound(m);
	return 0;
}

void metrics_stop(struct metrics *m)
{
	struct metrics_conn *c;

	if (!m->loop || m->stopped)
		return;
	m->stopped = true;
	if (m->listening)
		uv_close((uv_handle_t *)&m->listener, NULL);
	m->listening = false;
	uv_close((uv_handle_t *)&m->pause_timer, NULL);
	for (c = m->conns; c; c = c->next)
		conn_close(c);
}
