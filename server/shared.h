/*
 * shared.h - shared regions and their page directory (room: server
 * protocol).
 *
 * A shared region outlives the session that created it: sessions that
 * present its id and key become its holders, and it is freed when the
 * last holder detaches (FREE) or ends.  Per page the home server keeps
 * who holds a copy - nobody, sharers (read-only), or one owner
 * (writable) - and an ACQUIRE that conflicts with other copies is
 * answered only once their holders have acknowledged an INVALIDATE or a
 * RECALL (a deferred reply), while every other request goes on being
 * served.  docs/design.md, "Shared regions", has the protocol and its
 * races.
 *
 * Like handler.c this does no I/O: messages for other sessions, deferred
 * replies, and closing a holder that never acknowledged go through the
 * handler's outbox (struct handler_out), which the session layer
 * implements and the fuzzer fakes.
 */
#ifndef DSM_SERVER_SHARED_H
#define DSM_SERVER_SHARED_H

#include <stdbool.h>
#include <stdint.h>

#include "handler.h"

struct lock_table;

/* Holders of one shared region: one bit each in a page's copies. */
#define SHARED_MAX_HOLDERS 64u
/* ACQUIREs of one session waiting or in progress, over every region:
 * more get -EAGAIN (a client has at most this many faults waiting on
 * ownership per server). */
#define SHARED_MAX_DEFERRED 16u
/* ACQUIREs waiting or in progress on one region: every holder's whole
 * allowance, so that a client within its own is never refused for
 * others' (ops pile up while a region is sealed for a move); it bounds
 * the region's memory (about 80 bytes each) all the same. */
#define SHARED_MAX_QUEUED (SHARED_MAX_DEFERRED * SHARED_MAX_HOLDERS)

/* One session's holding of one shared region. */
struct share_hold {
	struct region *rg;
	struct handler_session *s;
	unsigned slot;                      /* its bit in the copies */
	uint32_t standby_seen;              /* the region's standby_gen it
	                                     * holds the standby of */
	void *remote;                       /* the session's registration of
	                                     * the region (region_hooks), or
	                                     * NULL */
	struct share_hold *snext, *sprev;   /* the session's holdings */
};

/* SHARE_CREATE and SHARE_ATTACH: the region the caller now holds. */
int shared_create(struct handler_session *s, const struct dsm_share_req *m,
		  struct region **out);
int shared_attach(struct handler_session *s, const struct dsm_share_req *m,
		  struct region **out);
/* A one-sided session's registration of rg, which it holds: given back
 * through its region hooks when it lets go. */
void shared_set_remote(struct handler_session *s, struct region *rg,
		       void *remote);
/* FREE of a shared region: rg if s holds it, else NULL. */
struct region *shared_held(const struct handler_session *s, uint64_t id);
/* The locks at rg's words (lock.c's); they go with the region. */
struct lock_table *shared_locks(struct region *rg);
/* s lets go of rg: its locks there are released (lock_detach), its
 * copies forfeit, its ACQUIREs dropped; the last holder frees rg. */
void shared_detach(struct handler_session *s, struct region *rg);
/* The session is gone: its copies are forfeit, its holdings detached,
 * its ACQUIREs dropped, and it counts as having acknowledged. */
void shared_session_end(struct handler_session *s);

/* ACQUIRE: 0 (the reply comes through the outbox, now or later) or
 * -errno for an error reply now. */
int shared_acquire(struct handler_session *s, uint64_t req_id,
		   const struct dsm_acquire *m);
/* SHARE_MOVE from a holder of m's region.  SEAL: 0 with *later (the
 * reply comes once no lock is held there and every copy is gone; LOCKs
 * waiting are answered -EAGAIN), or -EBUSY (another holder moves it) or
 * -ESTALE (it moved).  UNSEAL and MOVED, only from the holder that
 * sealed: 0 (reply now) or -EPERM; UNSEAL from one whose SEAL still
 * waits cancels it (answered -ECANCELED first).  After MOVED every
 * ACQUIRE, LOCK and SHARE_ATTACH of the region is -ESTALE.
 * SHARE_CREATE with DSM_SHARE_CREATE_SEALED makes the creator its
 * sealer at once. */
/* SHARE_PROMOTE: 0 (answered now) or -errno. */
int shared_promote(struct handler_session *s, const struct dsm_share_req *m);
/* May a LOCK with DSM_LOCK_RECLAIM be granted in rg (a standby)? */
bool shared_reclaimable(const struct region *rg);
int shared_move(struct handler_session *s, uint64_t req_id,
		const struct dsm_share_move *m, bool *later);
/* The last lock in use in rg was released: a seal waiting for that
 * goes now (lock.c calls it). */
void shared_locks_idle(struct handler *h, struct region *rg);
/* May a LOCK be taken in rg?  A lock would not survive a move: -EAGAIN
 * while it is sealing or sealed (try again), or while a seal waits for
 * the locks held unless the session holds one there (holds_one: it may
 * need more to reach its unlocks); -ESTALE once moved. */
int shared_lockable(const struct region *rg, bool holds_one);
/* INVAL_ACK from s for the INVALIDATE or RECALL with this id.  An id
 * nobody waits for (an ACQUIRE dropped meanwhile) is ignored. */
void shared_ack(struct handler_session *s, uint64_t inval_id);
/* May s write pages [first, first + n) of shared region rg?  Only their
 * owner may: a copy invalidated or forfeit writes nothing back.  And the
 * holder that sealed it, until it has moved: a mover seals the region it
 * creates at the new home, fills it, and unseals it once moved. */
int shared_may_write(const struct handler_session *s, const struct region *rg,
		     uint64_t first, uint64_t n);
/* Close every holder that has kept an ACQUIRE waiting past
 * h->inval_timeout_ms (now_ns on the monotonic clock). */
void shared_tick(struct handler *h, uint64_t now_ns);

#endif /* DSM_SERVER_SHARED_H */
