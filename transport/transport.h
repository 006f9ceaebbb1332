/*
 * transport.h - how the client talks to one memory server (room: transport).
 *
 * A transport is one connection to one server.  Requests are asynchronous:
 * each takes a completion that runs exactly once, with the reply or with
 * the error that ended the request (then payload is NULL).  Many requests
 * may be in flight (for the order of completions, see below).
 *
 * A transport has no thread of its own.  Its owner polls fd() and calls
 * progress() when it is readable; completions and server messages run
 * inside progress(), and inside a send that has to wait for room (a send
 * keeps receiving while it waits, so two peers can never block each other
 * with full buffers).  One thread at a time may use a transport: the
 * client's engine thread, or whoever calls dsm_transport_call_sync before
 * that thread exists.
 *
 * Two implementations: TCP (tcp.c), and RDMA (rdma.c), where read_pages
 * is a one-sided RDMA READ of the region the server registered for this
 * connection, write_pages an RDMA WRITE, and calls and server messages
 * go over SEND/RECV; its fd() wakes on completions and on a disconnect,
 * and progress() polls the completion queue.  Over TCP completions come
 * in the order the server answers; over RDMA, READs and WRITEs complete
 * in the order they were posted and calls in the order the server
 * answers, and the two interleave.  What the engine relies on is the
 * order in which the server executes requests, which is submission order
 * on both (docs/design.md, "Ordering over RDMA").
 */
#ifndef DSM_TRANSPORT_H
#define DSM_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"

struct dsm_transport;

/* status: 0 or -errno (the server's reply status, or a local error such as
 * -ECONNRESET).  payload/len: the reply body, valid only during the call. */
typedef void (*dsm_done_fn)(void *arg, int status, const uint8_t *payload,
			    uint32_t len);

struct dsm_transport_events {
	/* A server-initiated message (GOODBYE, INVALIDATE, ...). */
	void (*server_msg)(void *ctx, const struct dsm_hdr *h,
			   const uint8_t *payload);
	/* The connection is gone (err < 0).  Called once, inside progress(),
	 * a send or a flush, and before the requests still pending are
	 * completed with err: their completions can tell the server is lost,
	 * and the loss is reported before anything it causes (a thread's
	 * SIGBUS on a page only that server held).  Not called after
	 * close(). */
	void (*lost)(void *ctx, int err);
	void *ctx;
};

/* Traffic the server never sees: one-sided READs and WRITEs, counted by
 * the transport that made them, for the operator's view (dsmctl stats).
 * Successful requests and the pages they moved. */
struct dsm_one_sided {
	uint64_t reads, writes, pages_read, pages_written;
};

struct dsm_transport_ops {
	const char *name;
	/* progress() finds completions even when fd() is not readable (it
	 * polls a completion queue): a busy-polling owner calls it on every
	 * round, not only when fd() is readable. */
	bool poll_progress;
	/* addr is "host:port".  0 or -errno; on success *out is connected. */
	int (*connect)(const char *addr, const struct dsm_transport_events *ev,
		       struct dsm_transport **out);
	/* The descriptor to poll for readability. */
	int (*fd)(struct dsm_transport *t);
	/* Read what has arrived, without blocking, and run its completions.
	 * 0, or the error that ended the connection (lost() has run). */
	int (*progress)(struct dsm_transport *t);
	/* Read npages pages at pool_off of region_id; the completion gets
	 * npages * DSM_PAGE_SIZE bytes. */
	int (*read_pages)(struct dsm_transport *t, uint64_t region_id,
			  uint64_t pool_off, uint32_t npages, dsm_done_fn done,
			  void *arg);
	/* Write npages pages to pool_off of region_id; page i's data is at
	 * pages[i].  The pages (and the array) must stay valid and unchanged
	 * until done runs: a transport may read them as late as that. */
	int (*write_pages)(struct dsm_transport *t, uint64_t region_id,
			   uint64_t pool_off, uint32_t npages,
			   uint8_t *const *pages, dsm_done_fn done, void *arg);
	/* A control request (HELLO, AUTH, ALLOC, FREE, STATS, PING, LEASE,
	 * DISCARD: any type but READ and WRITE) with an encoded body.
	 * Returns 0 (done will run) or -errno (done will not run). */
	int (*call)(struct dsm_transport *t, uint8_t type, const void *body,
		    uint32_t len, dsm_done_fn done, void *arg);
	/* Send every request made since the last flush.  A transport may hold
	 * requests until then (to send a batch in one system call), so the
	 * owner flushes whenever it is done submitting for now.  0, or the
	 * error that ended the connection (lost() has run). */
	int (*flush)(struct dsm_transport *t);
	/* Fail what is pending with -ECANCELED, close the connection, free.
	 * No event runs after it. */
	void (*close)(struct dsm_transport *t);
	/* The one-sided traffic so far; NULL where the server sees it all
	 * (TCP).  Any thread may call it while t is open. */
	void (*one_sided)(struct dsm_transport *t, struct dsm_one_sided *out);
};

extern const struct dsm_transport_ops dsm_tcp_transport;
extern const struct dsm_transport_ops dsm_rdma_transport;

/* Whether this machine has an RDMA device the RDMA transport could use. */
int dsm_rdma_available(void);

/*
 * Memory the owner may pass to write_pages (its staging pool), announced
 * once per chunk so that a transport that must register what it sends
 * (RDMA) registers each chunk once, the first time it sends from it,
 * instead of on every WRITE.  Pages elsewhere still work (copied).  del
 * only once no transport may still send from the chunk (they are all
 * closed).  Any thread; the table has its own lock.
 */
int dsm_transport_mem_add(void *base, size_t len);
void dsm_transport_mem_del(void *base, size_t len);
/* The announced chunk holding p: 0 with *base and *len, or -ENOENT. */
int dsm_transport_mem_find(const void *p, void **base, size_t *len);

/* Blocking control call on top of ops->call, driving progress() itself:
 * only for a transport nobody else is driving (the handshake).  Copies
 * at most cap reply bytes into reply and the reply length into *rlen.
 * 0 or -errno; -ETIMEDOUT after DSM_CALL_SYNC_MS without a reply (the
 * caller then closes the transport). */
#define DSM_CALL_SYNC_MS 10000
/* How long a transport's connect may take, every step of it (TCP
 * connect; RDMA address and route resolution and connect): 5 s, or
 * DSM_CONNECT_TIMEOUT_MS (1..600000; dsm_init refuses other values).
 * Emulated guests under load need longer than hardware. */
#define DSM_CONNECT_MS 5000
#define DSM_CONNECT_MS_MAX 600000
unsigned dsm_connect_ms(void);
/* How long a server's machine may leave our data unacknowledged, or be
 * silent to keepalive probes, before the TCP connection fails and the
 * server is lost (dsm_tcp_set_timeouts, util.h): 20 s, or
 * DSM_TCP_TIMEOUT_MS (1000..3600000; dsm_init refuses other values).
 * The RDMA transport has its own (retries of a work request). */
#define DSM_TCP_TIMEOUT_MS 20000
#define DSM_TCP_TIMEOUT_MS_MIN 1000
#define DSM_TCP_TIMEOUT_MS_MAX 3600000
unsigned dsm_tcp_timeout_ms(void);
int dsm_transport_call_sync(const struct dsm_transport_ops *ops,
			    struct dsm_transport *t, uint8_t type,
			    const void *body, uint32_t len, void *reply,
			    uint32_t cap, uint32_t *rlen);

#endif /* DSM_TRANSPORT_H */
