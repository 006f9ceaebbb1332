/*
 * lock.h - locks at words of shared regions, kept by the region's home
 * server (room: server protocol).
 *
 * A lock is named by (shared region, byte offset) and taken by a
 * (session, token) pair: the token names the client's thread, since one
 * session carries every thread of a process.  Waiters queue first come,
 * first served and are answered through the handler's outbox when their
 * turn comes, so nothing spins and no page moves while they wait.  A
 * holder whose session ends, or who detaches the region, releases its
 * locks with DSM_LOCK_OWNER_DIED for whoever is granted next.
 * docs/design.md, "Locks and barriers", has the protocol and its bounds.
 *
 * Like handler.c and shared.c this does no I/O.
 */
#ifndef DSM_SERVER_LOCK_H
#define DSM_SERVER_LOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"

struct handler;
struct handler_session;
struct region;
struct lock;

/* Locks one session holds or waits for, over every region: more get
 * -ENOLCK.  A process holds a few at a time; 256 leaves room for one
 * that nests many, and bounds what a session makes the server keep. */
#define LOCK_MAX_PER_SESSION 256u
/* Locks of one region left marked "owner died" with nobody holding or
 * waiting (the mark waits for the next grant).  Past this the region is
 * marked as a whole: every later grant in it says OWNER_DIED, a false
 * alarm rather than a lost one.  One session's whole allowance fits. */
#define LOCK_MAX_DEAD_PER_REGION LOCK_MAX_PER_SESSION

/* The locks of one shared region, embedded in it (shared.c): a chained
 * hash by offset, allocated at the first LOCK, doubled as it fills. */
struct lock_table {
	struct lock **bucket;
	size_t nbuckets;                /* 0 or a power of two */
	size_t count;                   /* records, marks included */
	unsigned ndead;                 /* records that are only a mark */
	bool dead_overflow;             /* marks dropped: every grant says so */
};

/* LOCK: 0 (the reply goes through the outbox, now or once granted) or
 * -errno for an error reply now. */
int lock_request(struct handler_session *s, uint64_t req_id,
		 const struct dsm_lock_req *m);
/* UNLOCK: 0 (released, or a waiting LOCK taken back and answered
 * -ECANCELED first) or -errno. */
int lock_unlock(struct handler_session *s, const struct dsm_lock_req *m);
/* s lets go of rg (FREE) while its session goes on: its waiting LOCKs
 * there are answered -ENOENT, its locks there released as its death. */
void lock_detach(struct handler_session *s, struct region *rg);
/* The session is gone: its waits dropped unanswered, its locks released
 * as its death. */
void lock_session_end(struct handler_session *s);
/* Does a lock of t have a holder (marks left by dead holders aside)? */
bool lock_table_in_use(const struct lock_table *t);
/* Every LOCK waiting in t is answered status and forgotten; holders keep
 * their locks (a seal waits for them: shared.c). */
void lock_refuse_waiters(struct handler *h, struct lock_table *t, int status);
/* The region is freed: whatever its table still keeps goes. */
void lock_table_destroy(struct lock_table *t);

#endif /* DSM_SERVER_LOCK_H */
