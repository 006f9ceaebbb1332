/*
 * metrics.h - dsm-server's metrics endpoint: the handler's counters in
 * the Prometheus text format, served over HTTP/1.x on the server's own
 * loop (room: metrics).
 *
 * `dsm-server --metrics HOST:PORT` starts it.  GET (or HEAD) /metrics is
 * answered 200 with the metrics; another path 404, another method 405, a
 * request that is malformed or whose header passes METRICS_REQUEST_MAX
 * bytes 400.  Every answer ends its connection (Connection: close).  A
 * peer costs a bounded amount whatever it does: at most METRICS_MAX_CONNS
 * connections at once (one past it is closed unanswered at once), a
 * request buffer of METRICS_REQUEST_MAX bytes each, and METRICS_TIMEOUT_MS
 * from accept to close, however slowly it sends or reads.  There is no
 * authentication: the endpoint tells counters, never pages, but bind it
 * to an address only the monitoring network reaches.
 *
 * Everything here runs on the loop thread, which owns the counters it
 * reads (handler.h), so a scrape needs no lock and sees one instant.
 */
#ifndef DSM_SERVER_METRICS_H
#define DSM_SERVER_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "handler.h"

#define METRICS_MAX_CONNS 16
#define METRICS_REQUEST_MAX 8192       /* request line and headers */
#define METRICS_TIMEOUT_MS 5000        /* a connection's whole life */
/* --metrics PORT alone: loopback, as a scrape from elsewhere must be
 * asked for by naming the address. */
#define METRICS_DEFAULT_HOST "127.0.0.1"
/* Tests shorten the timeout with this (milliseconds). */
#define METRICS_TIMEOUT_ENV "DSM_TEST_METRICS_TIMEOUT_MS"

struct metrics_conn;

struct metrics {
	uv_loop_t *loop;
	const struct handler *h;
	uv_tcp_t listener;
	bool listening;
	struct sockaddr_storage addr; /* bound, to listen again after a pause */
	uv_timer_t pause_timer;       /* listens again after EMFILE */
	bool stopped;
	struct metrics_conn *conns;   /* open or closing, newest first */
	size_t nconns;
	uint64_t timeout_ms;
	uint64_t start_ms;            /* the server's start, wall clock */
	uint64_t refused;             /* connections past the cap */
};

/* "HOST:PORT", or "PORT" for METRICS_DEFAULT_HOST:PORT, into host and
 * port.  0 or -EINVAL. */
int metrics_parse_addr(const char *s, char *host, size_t hostlen,
		       uint16_t *port);

/* Serve h's counters on addr (port 0: a free one, which the log names).
 * 0, or -errno after logging why. */
int metrics_start(struct metrics *m, uv_loop_t *loop,
		  const struct sockaddr_storage *addr, const struct handler *h);

/* Stop listening and close every connection; the loop finishes closing
 * them.  Harmless on a zeroed m, and twice. */
void metrics_stop(struct metrics *m);

#endif /* DSM_SERVER_METRICS_H */
