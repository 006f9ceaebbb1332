/*
 * barrier.h - barriers by name, kept by one server for every client
 * (room: server protocol).
 *
 * A barrier is named by a key (a digest of its name the client chose)
 * and released by its count-th arrival: every arrival's BARRIER is
 * answered then, through the handler's outbox, and the barrier is
 * forgotten, so the next round under the same key starts afresh.
 * Arrivals are requests, not sessions: each thread of a process arrives
 * on its own, under its token, and may take its arrival back while it
 * waits (a client whose wait timed out).  docs/design.md, "Locks and
 * barriers", has the bounds.
 *
 * Like handler.c this does no I/O.
 */
#ifndef DSM_SERVER_BARRIER_H
#define DSM_SERVER_BARRIER_H

#include <stdint.h>

#include "proto.h"

struct handler_session;
struct barrier;

/* Barriers with arrivals waiting, per server: a new one past this gets
 * -EAGAIN. */
#define BARRIER_MAX_RECORDS 1024u
/* Arrivals one session has waiting, over every barrier: more get
 * -EAGAIN (a process has one per thread in a barrier at most). */
#define BARRIER_MAX_PER_SESSION 64u
#define BARRIER_BUCKETS 64u

/* Every barrier with arrivals waiting, embedded in the handler (starts
 * zeroed): a chained hash by key. */
struct barrier_table {
	struct barrier *bucket[BARRIER_BUCKETS];
	unsigned count;
};

/* BARRIER: 0 (answered through the outbox, now or on release) or -errno
 * for an error reply now: -EDEADLK if (s, m->token) already waits at
 * the key. */
int barrier_arrive(struct handler_session *s, uint64_t req_id,
		   const struct dsm_barrier_req *m);
/* BARRIER with DSM_BARRIER_WITHDRAW: (s, m->token)'s waiting arrival at
 * the key is answered -ECANCELED through the outbox and no longer
 * counts; then 0, for the withdraw's own reply.  -ENOENT if there is
 * none (it was released, or never came). */
int barrier_withdraw(struct handler_session *s,
		     const struct dsm_barrier_req *m);
/* The session is gone: its arrivals are withdrawn, unanswered. */
void barrier_session_end(struct handler_session *s);

#endif /* DSM_SERVER_BARRIER_H */
