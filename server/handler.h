/*
 * handler.h - what the server does with a request, without any I/O (room:
 * server protocol).
 *
 * The session layer (session.c) owns the socket and the bytes; it hands a
 * buffer to handler_next(), which frames one message, checks it, acts on
 * the pool and region table, and describes the reply.  Keeping sockets
 * out of here lets the fuzzer (tests/fuzz_proto.c) drive the whole request
 * path with nothing but a byte array.
 */
#ifndef DSM_SERVER_HANDLER_H
#define DSM_SERVER_HANDLER_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth.h"
#include "barrier.h"
#include "pool.h"
#include "proto.h"
#include "region.h"

/*
 * Before a connection has completed its handshake (HELLO, and AUTH when
 * the server has a secret) the only messages it may send are HELLO and
 * AUTH, so no body may be larger than theirs: a header announcing more
 * is refused and the connection closed before the server buffers a byte
 * of it.  A later protocol with a larger handshake raises this.
 */
#define HANDLER_HANDSHAKE_BODY_MAX \
	(DSM_HELLO_SIZE > DSM_AUTH_MSG_SIZE ? DSM_HELLO_SIZE : DSM_AUTH_MSG_SIZE)

/*
 * Requests are counted by type and outcome, and timed by type, for
 * dsm-server --metrics.  A type's slot is its number for a request type
 * (1 to SHARE_PROMOTE), 0 for whatever is not one (a header that could
 * not be framed); handler_type_slot() says which.  A status's slot is the
 * errno of the error reply, 0 for success, the last slot for an errno
 * beyond EHWPOISON (Linux's largest).
 */
#define HANDLER_TYPE_SLOTS (DSM_MSG_SHARE_PROMOTE + 1)
#define HANDLER_STATUS_OTHER (EHWPOISON + 1)
#define HANDLER_STATUS_SLOTS (HANDLER_STATUS_OTHER + 1)

/* Service times: the upper bounds of the histogram's buckets, 1 µs to
 * 100 ms in steps of 1, 2.5, 5.  Most requests take about a microsecond
 * and a WRITE's copy of up to 1 MiB some tens; beyond 100 ms the loop
 * itself stalled. */
#define HANDLER_TIME_BUCKETS 16
extern const uint64_t handler_time_bounds_ns[HANDLER_TIME_BUCKETS];

/* One type's service times: bucket[i] counts the requests that took at
 * most bounds[i] and more than bounds[i - 1] (not cumulative); the last
 * bucket those beyond every bound. */
struct handler_times {
	uint64_t bucket[HANDLER_TIME_BUCKETS + 1];
	uint64_t sum_ns, count;
};

/* What one client may hold (dsm-server --max-regions,
 * --max-client-sessions); 0 means no limit. */
struct handler_limits {
	uint64_t regions_per_session;    /* live regions of one connection */
	uint64_t sessions_per_client;    /* connections with one LEASE id */
};

struct barrier_arrival;
struct handler_session;
struct lock_claim;
struct reply;
struct share_hold;
struct shared;

/*
 * Messages that are not the reply to the request being handled: a
 * deferred reply (ACQUIRE, LOCK, BARRIER), an INVALIDATE or RECALL to
 * another session, and the close of a holder that never acknowledged
 * (shared.c).  The session
 * layer implements them (session.c); without them (the fuzzer) nothing
 * is sent.
 */
struct handler_out {
	/* Queue r for session to (r is copied or sent before this returns;
	 * a failure closes that session). */
	void (*send)(void *ctx, struct handler_session *to,
		     const struct reply *r);
	/* End session to: no request of it is handled after this. */
	void (*close)(void *ctx, struct handler_session *to, const char *why);
};

/* State shared by every connection of one server.  Its counters belong,
 * like everything else here, to the thread running the server's loop:
 * the handler, the sessions and the metrics endpoint all run on it, so
 * none of them is locked. */
struct handler {
	struct pool pool;
	struct region_table regions;
	uint32_t server_id;
	const struct dsm_auth_key *key; /* NULL: no secret, no AUTH step */
	uint64_t start_ns;
	bool draining;                   /* dsmctl drain: no new ALLOC */
	uint64_t sessions;               /* connected now */
	uint64_t reads, writes;          /* successful requests */
	uint64_t pages_read, pages_written;
	uint64_t pages_discarded;        /* given back by DISCARD */
	uint64_t bytes_in, bytes_out;    /* whole messages */
	uint64_t requests;               /* messages handled, of any kind */
	uint64_t errors;                 /* error replies sent */
	uint64_t auth_refused;           /* connections that failed AUTH */
	/* Connections refused or closed before their handshake completed:
	 * over --max-connections or --max-handshakes, past the handshake
	 * timeout, or announcing a body larger than a handshake's. */
	uint64_t conn_refused;
	/* Requests refused for a client's limits (handler_limits). */
	uint64_t over_limit;
	/* Requests by type and status slot (above), and how long each type
	 * took to serve (handler_note_time). */
	uint64_t requests_by[HANDLER_TYPE_SLOTS][HANDLER_STATUS_SLOTS];
	struct handler_times times[HANDLER_TYPE_SLOTS];
	struct handler_limits limits;
	struct handler_session *all;     /* every session, for the limits */
	const struct handler_out *out;   /* NULL: nothing but replies */
	void *out_ctx;
	/* Shared regions (shared.c): every one of them, the timeout of an
	 * INVALIDATE or RECALL (--inval-timeout-ms), their ids. */
	struct shared *shared_head;
	uint64_t shared_regions, shared_bytes; /* of the region table, pool */
	uint64_t inval_timeout_ms;
	uint64_t next_inval_id;
	uint64_t acquires;               /* ACQUIREs granted */
	uint64_t invalidations;          /* INVALIDATEs and RECALLs sent */
	uint64_t shared_moves;           /* shared regions moved away */
	uint64_t shared_failovers;       /* standbys promoted to homes */
	uint64_t inval_timeouts;         /* holders closed for not acking */
	/* Locks (lock.c) and barriers (barrier.c). */
	struct barrier_table barriers;
	uint64_t lock_grants;            /* LOCKs granted */
	uint64_t lock_waits;             /* LOCKs that had to wait */
	uint64_t lock_owner_died;        /* grants that said OWNER_DIED */
	uint64_t barriers_released;      /* barrier rounds completed */
};

/*
 * What a session whose client reaches its regions one-sidedly (RDMA)
 * does when a region is made and before it goes: the handler calls these
 * and does no I/O of its own, so the fuzzer can drive it with a fake.
 */
struct region_hooks {
	/* [base, base + size) of the pool was just given to this session:
	 * a region it allocated, or a shared region it now holds.  Make
	 * exactly those bytes reachable by this session's peer alone, say
	 * how the peer reaches them (*addr, *rkey: the ALLOC or SHARE
	 * reply's), and hand back what removed() takes (*reg).  0, or
	 * -errno: the request fails and what it got goes back. */
	int (*added)(void *ctx, uint8_t *base, uint64_t size, void **reg,
		     uint64_t *addr, uint32_t *rkey);
	/* The session lets go of reg's bytes (freed, or detached from a
	 * shared region others keep): once this returns, its peer cannot
	 * reach them one-sidedly any more. */
	void (*removed)(void *ctx, void *reg);
};

/* The protocol state of one connection. */
struct handler_session {
	struct handler *h;
	/* NULL: READ and WRITE travel as messages (TCP).  Set: the peer
	 * reads and writes one-sidedly, and READ or WRITE as a message is
	 * a protocol error. */
	const struct region_hooks *hooks;
	void *hooks_ctx;
	struct region_owner regions;
	bool hello_done;
	bool authed;                     /* AUTH done, or no secret */
	uint64_t client_id;              /* LEASE: registry id, 0 if none */
	uint64_t leases;                 /* LEASEs received: the client sends
	                                  * one every heartbeat while alive */
	/* membership.c's, on the monotonic clock (ms): when it last saw
	 * leases grow, and since when the lease has been seen missing */
	uint64_t leases_seen, heard_ms, missing_since_ms;
	bool lease_missing;
	/* Shared regions held (shared.c), and ACQUIREs of this session
	 * waiting or in progress. */
	struct share_hold *holds;
	uint64_t nholds;
	unsigned deferred;
	/* Locks held or waited for (lock.c), barrier arrivals waiting
	 * (barrier.c): each answered, or dropped at the session's end. */
	struct lock_claim *claims;
	unsigned nclaims;
	struct barrier_arrival *arrivals;
	unsigned narrivals;
	uint64_t client_nonce;
	uint8_t server_nonce[DSM_AUTH_NONCE_SIZE];
	struct handler_session *next, *prev; /* on h->all */
};

/*
 * One message for the peer: hdr, then hdr.len bytes at data.  data points
 * into body or into the pool, so it is only valid until the handler runs
 * again; the caller copies it out before that.
 */
struct reply {
	struct dsm_hdr hdr;
	const uint8_t *data;
	uint8_t body[DSM_SERVER_STATS_SIZE]; /* the largest small reply */
	bool close;   /* send this, then close: the peer cannot go on */
	bool none;    /* nothing to send now: an INVAL_ACK, or an ACQUIRE,
	               * LOCK or BARRIER whose reply goes through the
	               * outbox */
	uint8_t slot; /* the request's type slot: what it was counted as,
	               * and what its time is counted as */
};

/* The pool on the pages asked for (pool.h); why as pool_init's.  0 or
 * -errno. */
int handler_init(struct handler *h, uint64_t capacity, enum pool_pages pages,
		 uint32_t server_id, char *why, size_t whylen);
/* After every session has ended. */
void handler_destroy(struct handler *h);

void handler_session_init(struct handler_session *s, struct handler *h);
/* Make s a one-sided session (before its first message). */
void handler_session_hooks(struct handler_session *s,
			   const struct region_hooks *hooks, void *ctx);
/* The connection is gone: free every region it owns, detach it from
 * every shared region. */
void handler_session_end(struct handler_session *s);

/*
 * Handle the message at the front of buf[0..len).  Returns the bytes it
 * consumed (> 0) with *r filled in, or 0 if buf does not yet hold a whole
 * message; then *need is the size that message will have (header alone
 * while the header is incomplete).  After a reply with close set, the
 * rest of the stream must be ignored.
 */
size_t handler_next(struct handler_session *s, const uint8_t *buf, size_t len,
		    struct reply *r, size_t *need);

/* Send r to session `to` through h's outbox (a deferred reply or a
 * server message), counting its bytes; without an outbox (the fuzzer
 * may have none) it goes nowhere. */
void handler_emit(struct handler *h, struct handler_session *to,
		  const struct reply *r);

/* A server-initiated GOODBYE. */
void handler_goodbye(struct reply *r, uint64_t id, int32_t reason);
/* A DRAINING message (proto.h) saying whether this server drains. */
void handler_draining(struct reply *r, uint64_t id, bool on);

void handler_stats(const struct handler *h, struct dsm_server_stats *st);

/* The slot of a message type in requests_by and times. */
unsigned handler_type_slot(uint8_t type);
/* A request of that slot (struct reply's) took ns to serve: the session
 * layer measures it around handler_next and the queuing of its reply,
 * since the handler does no I/O. */
void handler_note_time(struct handler *h, unsigned slot, uint64_t ns);

/* Timers: close holders that kept an ACQUIRE waiting too long. */
void handler_tick(struct handler *h);

#endif /* DSM_SERVER_HANDLER_H */
