/*
 * lock.c - see lock.h (room: server protocol).
 *
 * A lock is a record with a queue of claims: the head is the holder,
 * the rest wait in arrival order.  The head is always granted, so a
 * record with claims always has a holder, and a release grants the next
 * claim at once.  A record lives while it has claims; one whose holder
 * died with nobody waiting stays as a mark (no claims, `dead`) until the
 * next grant tells its taker that the owner died, since what the lock
 * guards may be half updated whoever takes it next.
 *
 * A session's claims are also on its own list, so that what it holds
 * and waits for is found without walking other sessions' queues: a
 * LOCK's -EDEADLK check, UNLOCK, detach and the session's end each walk
 * at most LOCK_MAX_PER_SESSION claims.
 */
#include "lock.h"

#include <errno.h>
#include <stdlib.h>

#include "handler.h"
#include "shared.h"

#define LOCK_BUCKETS_MIN 16u

struct lock {
	struct lock *hnext;             /* the table's hash chain */
	struct lock_table *t;
	struct region *rg;
	uint64_t offset;
	struct lock_claim *head, *tail; /* holder first, then waiters */
	bool dead;                      /* a mark: the last holder died */
};

/* One (session, token)'s hold on, or wait for, one lock. */
struct lock_claim {
	struct lock *lk;
	struct handler_session *s;
	uint64_t token;
	uint64_t req_id;                /* its LOCK's, for a deferred reply */
	struct lock_claim *qnext, *qprev; /* the lock's queue */
	struct lock_claim *snext, *sprev; /* the session's claims */
};

/* ---- the table ----------------------------------------------------------- */

static size_t bucket_of(uint64_t offset, size_t nbuckets)
{
	/* Fibonacci hashing of the word's index, as region.c does ids. */
	return (size_t)(((offset / DSM_LOCK_ALIGN) * 0x9e3779b97f4a7c15ULL) >>
			32) & (nbuckets - 1);
}

static struct lock *table_find(const struct lock_table *t, uint64_t offset)
{
	struct lock *lk;

	if (!t->nbuckets)
		return NULL;
	lk = t->bucket[bucket_of(offset, t->nbuckets)];
	while (lk && lk->offset != offset)
		lk = lk->hnext;
	return lk;
}

/* Growing is an optimisation: if it fails the chains just get longer. */
static void table_grow(struct lock_table *t)
{
	size_t n = t->nbuckets * 2;
	struct lock **nb;

	if (t->count <= t->nbuckets || !(nb = calloc(n, sizeof(*nb))))
		return;
	for (size_t b = 0; b < t->nbuckets; b++) {
		struct lock *lk = t->bucket[b], *next;

		for (; lk; lk = next) {
			size_t to = bucket_of(lk->offset, n);

			next = lk->hnext;
			lk->hnext = nb[to];
			nb[to] = lk;
		}
	}
	free(t->bucket);
	t->bucket = nb;
	t->nbuckets = n;
}

static struct lock *lock_new(struct lock_table *t, struct region *rg,
			     uint64_t offset)
{
	struct lock *lk;
	size_t b;

	if (!t->nbuckets) {
		t->bucket = calloc(LOCK_BUCKETS_MIN, sizeof(*t->bucket));
		if (!t->bucket)
			return NULL;
		t->nbuckets = LOCK_BUCKETS_MIN;
	}
	lk = calloc(1, sizeof(*lk));
	if (!lk)
		return NULL;
	*lk = (struct lock){ .t = t, .rg = rg, .offset = offset };
	b = bucket_of(offset, t->nbuckets);
	lk->hnext = t->bucket[b];
	t->bucket[b] = lk;
	t->count++;
	table_grow(t);
	return lk;
}

static void lock_free(struct lock *lk)
{
	struct lock_table *t = lk->t;
	struct lock **pp = &t->bucket[bucket_of(lk->offset, t->nbuckets)];

	while (*pp != lk)
		pp = &(*pp)->hnext;
	*pp = lk->hnext;
	t->count--;
	if (lk->dead)
		t->ndead--;
	free(lk);
}

/* ---- claims -------------------------------------------------------------- */

static struct lock_claim *claim_new(struct handler_session *s,
				    struct lock *lk, uint64_t token,
				    uint64_t req_id)
{
	struct lock_claim *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	*c = (struct lock_claim){ .lk = lk, .s = s, .token = token,
				  .req_id = req_id, .qprev = lk->tail,
				  .snext = s->claims };
	if (lk->tail)
		lk->tail->qnext = c;
	else
		lk->head = c;
	lk->tail = c;
	if (s->claims)
		s->claims->sprev = c;
	s->claims = c;
	s->nclaims++;
	return c;
}

/* Off its lock's queue and its session's list, and freed; the lock's
 * next holder, if it was the holder, is the caller's business. */
static void claim_free(struct lock_claim *c)
{
	struct lock *lk = c->lk;
	struct handler_session *s = c->s;

	if (c->qprev)
		c->qprev->qnext = c->qnext;
	else
		lk->head = c->qnext;
	if (c->qnext)
		c->qnext->qprev = c->qprev;
	else
		lk->tail = c->qprev;
	if (c->sprev)
		c->sprev->snext = c->snext;
	else
		s->claims = c->snext;
	if (c->snext)
		c->snext->sprev = c->sprev;
	s->nclaims--;
	free(c);
}

/* s's claim on the lock at (rg, offset) under token, or NULL. */
static struct lock_claim *claim_find(const struct handler_session *s,
				     const struct region *rg, uint64_t offset,
				     uint64_t token)
{
	struct lock_claim *c = s->claims;

	while (c && (c->lk->rg != rg || c->lk->offset != offset ||
		     c->token != token))
		c = c->snext;
	return c;
}

static bool holds(const struct lock_claim *c)
{
	return c->lk->head == c;
}

/* Does s hold a lock in rg? */
static bool holds_in(const struct handler_session *s, const struct region *rg)
{
	for (const struct lock_claim *c = s->claims; c; c = c->snext)
		if (c->lk->rg == rg && holds(c))
			return true;
	return false;
}

/* ---- replies ------------------------------------------------------------- */

/* A LOCK's reply, through the outbox: a grant (status 0, with flags) or
 * an error for a wait that ended without one. */
static void answer(struct handler *h, struct handler_session *to,
		   uint64_t req_id, int status, uint32_t flags)
{
	struct dsm_lock_reply a = { .flags = flags };
	struct reply r = { 0 };

	dsm_hdr_init(&r.hdr, DSM_MSG_LOCK, DSM_F_REPLY, 0, req_id);
	r.hdr.status = status;
	if (!status) {
		dsm_lock_reply_encode(&a, r.body);
		r.data = r.body;
		r.hdr.len = DSM_LOCK_REPLY_SIZE;
	} else {
		h->errors++;
	}
	handler_emit(h, to, &r);
}

/* The head of lk's queue has the lock now: tell it.  flags says whether
 * the holder before it died; a region whose marks overflowed says so on
 * every grant (lock.h). */
static void grant(struct handler *h, struct lock *lk, uint32_t flags)
{
	struct lock_claim *c = lk->head;

	if (lk->t->dead_overflow)
		flags |= DSM_LOCK_OWNER_DIED;
	h->lock_grants++;
	if (flags & DSM_LOCK_OWNER_DIED)
		h->lock_owner_died++;
	answer(h, c->s, c->req_id, 0, flags);
}

/* A lock left by a dead holder with nobody waiting keeps its mark for
 * the next taker, within the region's allowance. */
static void mark_dead(struct lock *lk)
{
	struct lock_table *t = lk->t;

	if (t->ndead >= LOCK_MAX_DEAD_PER_REGION) {
		t->dead_overflow = true;
		lock_free(lk);
		return;
	}
	lk->dead = true;
	t->ndead++;
}

/* The flag the next grant of lk carries for a mark, which it clears. */
static uint32_t take_mark(struct lock *lk)
{
	if (!lk->dead)
		return 0;
	lk->dead = false;
	lk->t->ndead--;
	return DSM_LOCK_OWNER_DIED;
}

static bool table_in_use(const struct lock_table *t)
{
	return t->count > t->ndead;
}

/* c goes.  If it held the lock, the next claim is granted (saying so if
 * c died holding it); a lock nobody claims any more is freed, or kept as
 * a mark.  The region's last lock in use gone, a seal waiting for that
 * may go (shared.c). */
static void release(struct handler *h, struct lock_claim *c, bool died)
{
	struct lock *lk = c->lk;
	struct region *rg = lk->rg;
	struct lock_table *t = lk->t;
	bool held = holds(c);

	claim_free(c);
	if (!held)
		return;
	if (lk->head)
		grant(h, lk, died ? DSM_LOCK_OWNER_DIED : 0);
	else if (died)
		mark_dead(lk);
	else
		lock_free(lk);
	if (!table_in_use(t))
		shared_locks_idle(h, rg);
}

void lock_refuse_waiters(struct handler *h, struct lock_table *t, int status)
{
	for (size_t b = 0; b < t->nbuckets; b++)
		for (struct lock *lk = t->bucket[b]; lk; lk = lk->hnext)
			while (lk->head && lk->head->qnext) {
				struct lock_claim *c = lk->head->qnext;

				answer(h, c->s, c->req_id, status, 0);
				claim_free(c);
			}
}

bool lock_table_in_use(const struct lock_table *t)
{
	return table_in_use(t);
}

/* ---- requests ------------------------------------------------------------ */

/* The shared region s holds that m names, with m's word inside it. */
static int target(struct handler_session *s, const struct dsm_lock_req *m,
		  struct region **rg)
{
	*rg = shared_held(s, m->region_id);
	if (!*rg)
		return -ENOENT;
	return m->offset < (*rg)->size ? 0 : -EINVAL;
}

static struct lock *lock_get(struct region *rg, uint64_t offset)
{
	struct lock_table *t = shared_locks(rg);
	struct lock *lk = table_find(t, offset);

	return lk ? lk : lock_new(t, rg, offset);
}

/* A lock held at a home that was lost, taken again at the standby that
 * replaces it before the standby grants anything (shared.c): granted at
 * once, or -EBUSY if another claim got there first (two holders of one
 * lock: the home's table said otherwise, or someone else's reclaim). */
static int reclaim(struct handler_session *s, uint64_t req_id,
		   struct region *rg, const struct dsm_lock_req *m)
{
	struct lock_claim *c;
	struct lock *lk;

	if (!shared_reclaimable(rg))
		return -EINVAL;
	if (s->nclaims >= LOCK_MAX_PER_SESSION)
		return -ENOLCK;
	lk = lock_get(rg, m->offset);
	if (!lk)
		return -ENOMEM;
	if (lk->head)
		return -EBUSY;
	c = claim_new(s, lk, m->token, req_id);
	if (!c) {
		if (!lk->dead)
			lock_free(lk);
		return -ENOMEM;
	}
	grant(s->h, lk, take_mark(lk));
	return 0;
}

int lock_request(struct handler_session *s, uint64_t req_id,
		 const struct dsm_lock_req *m)
{
	struct lock_claim *c;
	struct region *rg;
	struct lock *lk;
	int err = target(s, m, &rg);

	if (err)
		return err;
	/* Its own holder or waiter would wait for itself for ever. */
	if (claim_find(s, rg, m->offset, m->token))
		return -EDEADLK;
	if (m->flags & DSM_LOCK_RECLAIM)
		return reclaim(s, req_id, rg, m);
	err = shared_lockable(rg, holds_in(s, rg));
	if (err)
		return err;
	if (s->nclaims >= LOCK_MAX_PER_SESSION)
		return -ENOLCK;
	lk = lock_get(rg, m->offset);
	if (!lk)
		return -ENOMEM;
	c = claim_new(s, lk, m->token, req_id);
	if (!c) {
		if (!lk->head && !lk->dead)
			lock_free(lk);
		return -ENOMEM;
	}
	if (holds(c))
		grant(s->h, lk, take_mark(lk));
	else
		s->h->lock_waits++;
	return 0;
}

int lock_unlock(struct handler_session *s, const struct dsm_lock_req *m)
{
	struct lock_claim *c;
	struct region *rg;
	int err = target(s, m, &rg);

	if (err)
		return err;
	c = claim_find(s, rg, m->offset, m->token);
	if (!c)
		return -EPERM;
	/* A waiter taken back: its LOCK is answered before this UNLOCK. */
	if (!holds(c))
		answer(s->h, s, c->req_id, -ECANCELED, 0);
	release(s->h, c, false);
	return 0;
}

/*
 * s's claims in rg (every region: rg NULL) go: first its waits, each
 * answered `status` (0: unanswered, the session is gone), then its holds,
 * as a death.  In that order because releasing a hold grants the next
 * waiter, which must never be one of s's own that is about to go.
 */
static void drop_claims(struct handler_session *s, const struct region *rg,
			int status)
{
	struct lock_claim *c, *next;

	for (c = s->claims; c; c = next) {
		next = c->snext;
		if ((rg && c->lk->rg != rg) || holds(c))
			continue;
		if (status)
			answer(s->h, s, c->req_id, status, 0);
		release(s->h, c, false);
	}
	for (c = s->claims; c; c = next) {
		next = c->snext;
		if (!rg || c->lk->rg == rg)
			release(s->h, c, true);
	}
}

void lock_detach(struct handler_session *s, struct region *rg)
{
	drop_claims(s, rg, -ENOENT);
}

void lock_session_end(struct handler_session *s)
{
	drop_claims(s, NULL, 0);
}

void lock_table_destroy(struct lock_table *t)
{
	for (size_t b = 0; b < t->nbuckets; b++) {
		struct lock *lk = t->bucket[b], *next;

		for (; lk; lk = next) {
			next = lk->hnext;
			while (lk->head)
				claim_free(lk->head);
			free(lk);
		}
	}
	free(t->bucket);
	*t = (struct lock_table){ 0 };
}
