/*
 * fuzz_locks.c - see fuzz_locks.h (room: tests).
 *
 * Linear searches throughout: a fuzz input of 16 KiB makes a few hundred
 * locks at most, and plain arrays keep the model obviously right.
 */
#include "fuzz_locks.h"

#include <errno.h>
#include <string.h>

void lm_init(struct lock_model *m)
{
	m->nwaits = m->nlocks = m->nregions = 0;
	m->due = 0;
	memset(&m->step, 0, sizeof(m->step));
}

/* ---- lookups ------------------------------------------------------------- */

static struct lm_region *region_get(struct lock_model *m, uint64_t id)
{
	for (size_t i = 0; i < m->nregions; i++)
		if (m->regions[i].id == id)
			return &m->regions[i];
	FUZZ_CHECK(m->nregions < LM_REGIONS);
	m->regions[m->nregions] = (struct lm_region){ .id = id };
	return &m->regions[m->nregions++];
}

static struct lm_lock *lock_find(struct lock_model *m, uint64_t region,
				 uint64_t offset)
{
	for (size_t i = 0; i < m->nlocks; i++)
		if (m->locks[i].region == region && m->locks[i].offset == offset)
			return &m->locks[i];
	return NULL;
}

static struct lm_lock *lock_get(struct lock_model *m, uint64_t region,
				uint64_t offset)
{
	struct lm_lock *l = lock_find(m, region, offset);

	if (l)
		return l;
	region_get(m, region);
	FUZZ_CHECK(m->nlocks < LM_LOCKS);
	m->locks[m->nlocks] = (struct lm_lock){ .region = region,
						.offset = offset };
	return &m->locks[m->nlocks++];
}

static void lock_del(struct lock_model *m, struct lm_lock *l)
{
	if (l->due)
		m->due--;
	*l = m->locks[--m->nlocks];
}

static bool same_lock(const struct lm_wait *w, const struct lm_lock *l)
{
	return w->type == DSM_MSG_LOCK && w->region == l->region &&
	       w->offset == l->offset;
}

/* The first wait for l still to be granted, or -1. */
static long first_waiter(const struct lock_model *m, const struct lm_lock *l)
{
	for (size_t i = 0; i < m->nwaits; i++)
		if (same_lock(&m->waits[i], l) && !m->waits[i].dropping)
			return (long)i;
	return -1;
}

static long wait_find(const struct lock_model *m, int conn, uint8_t type,
		      uint64_t id)
{
	for (size_t i = 0; i < m->nwaits; i++)
		if (m->waits[i].conn == conn && m->waits[i].type == type &&
		    m->waits[i].id == id)
			return (long)i;
	return -1;
}

/* conn's waiting LOCK for (region, offset) under token, or -1. */
static long wait_of(const struct lock_model *m, int conn, uint64_t region,
		    uint64_t offset, uint64_t token)
{
	for (size_t i = 0; i < m->nwaits; i++) {
		const struct lm_wait *w = &m->waits[i];

		if (w->conn == conn && w->type == DSM_MSG_LOCK &&
		    w->region == region && w->offset == offset &&
		    w->token == token)
			return (long)i;
	}
	return -1;
}

/* Arrival order is what is checked, so waits keep theirs. */
static void wait_del(struct lock_model *m, long i)
{
	memmove(&m->waits[i], &m->waits[i + 1],
		(m->nwaits - i - 1) * sizeof(m->waits[0]));
	m->nwaits--;
}

static struct lm_wait *wait_add(struct lock_model *m, int conn, uint8_t type,
				uint64_t id)
{
	FUZZ_CHECK(m->nwaits < LM_WAITS);
	m->waits[m->nwaits] = (struct lm_wait){ .conn = conn, .type = type,
						.id = id };
	return &m->waits[m->nwaits++];
}

static unsigned claims_of(const struct lock_model *m, int conn)
{
	unsigned n = 0;

	for (size_t i = 0; i < m->nwaits; i++)
		n += m->waits[i].conn == conn &&
		     m->waits[i].type == DSM_MSG_LOCK;
	for (size_t i = 0; i < m->nlocks; i++)
		n += m->locks[i].held && m->locks[i].conn == conn;
	return n;
}

static bool holds(const struct lm_lock *l, int conn, uint64_t token)
{
	return l && l->held && l->conn == conn && l->token == token;
}

static void set_due(struct lock_model *m, struct lm_lock *l)
{
	if (!l->due)
		m->due++;
	l->due = true;
}

/* ---- what a request does --------------------------------------------------- */

/* l's holder is gone without releasing it: the next grant says so, or,
 * with nobody waiting, a mark does, within the region's allowance. */
static void die(struct lock_model *m, struct lm_lock *l)
{
	struct lm_region *r = region_get(m, l->region);

	l->held = false;
	l->died = true;
	if (first_waiter(m, l) >= 0) {
		set_due(m, l);
		return;
	}
	if (r->ndead >= LM_MAX_DEAD) {
		r->overflow = true;
		lock_del(m, l);
		return;
	}
	l->mark = true;
	r->ndead++;
}

static void on_lock(struct lock_model *m, int conn, const struct dsm_hdr *q,
		    const struct dsm_lock_req *lr, int status)
{
	struct lm_lock *l = lock_find(m, lr->region_id, lr->offset);
	bool mine = holds(l, conn, lr->token) ||
		    wait_of(m, conn, lr->region_id, lr->offset,
			    lr->token) >= 0;
	struct lm_wait *w;

	if (status == -EDEADLK)
		FUZZ_CHECK(mine);
	if (status == -ENOLCK)
		FUZZ_CHECK(!mine && claims_of(m, conn) == LM_MAX_CLAIMS);
	if (status)
		return;
	FUZZ_CHECK(!mine && claims_of(m, conn) < LM_MAX_CLAIMS);
	w = wait_add(m, conn, DSM_MSG_LOCK, q->id);
	w->region = lr->region_id;
	w->offset = lr->offset;
	w->token = lr->token;
	l = lock_get(m, lr->region_id, lr->offset);
	if (!l->held)
		set_due(m, l);   /* free, or only a mark: granted at once */
}

static void on_unlock(struct lock_model *m, int conn,
		      const struct dsm_lock_req *lr, int status)
{
	struct lm_lock *l = lock_find(m, lr->region_id, lr->offset);
	long w = wait_of(m, conn, lr->region_id, lr->offset, lr->token);

	if (status == -EPERM)
		FUZZ_CHECK(!holds(l, conn, lr->token) && w < 0);
	if (status)
		return;
	if (!holds(l, conn, lr->token)) {
		FUZZ_CHECK(w >= 0);
		m->step.cancel_id = m->waits[w].id;
		return;
	}
	l->held = false;
	if (first_waiter(m, l) >= 0)
		set_due(m, l);
	else
		lock_del(m, l);
}

/* conn's arrival waiting at key under token, or -1. */
static long arrival_of(const struct lock_model *m, int conn,
		       const uint8_t *key, uint64_t token)
{
	for (size_t i = 0; i < m->nwaits; i++) {
		const struct lm_wait *w = &m->waits[i];

		if (w->conn == conn && w->type == DSM_MSG_BARRIER &&
		    w->token == token &&
		    !memcmp(w->key, key, DSM_BARRIER_KEY_SIZE))
			return (long)i;
	}
	return -1;
}

static unsigned arrivals_of(const struct lock_model *m, int conn)
{
	unsigned n = 0;

	for (size_t i = 0; i < m->nwaits; i++)
		n += m->waits[i].conn == conn &&
		     m->waits[i].type == DSM_MSG_BARRIER;
	return n;
}

/* Arrivals waiting at key, and their count in *count. */
static unsigned waiting_at(const struct lock_model *m, const uint8_t *key,
			   uint32_t *count)
{
	unsigned n = 0;

	for (size_t i = 0; i < m->nwaits; i++) {
		const struct lm_wait *w = &m->waits[i];

		if (w->type == DSM_MSG_BARRIER &&
		    !memcmp(w->key, key, DSM_BARRIER_KEY_SIZE)) {
			*count = w->count;
			n++;
		}
	}
	return n;
}

/* Barriers with arrivals waiting: keys, each counted at its first. */
static unsigned barriers(const struct lock_model *m)
{
	unsigned n = 0;

	for (size_t i = 0; i < m->nwaits; i++) {
		const struct lm_wait *w = &m->waits[i];
		bool first = w->type == DSM_MSG_BARRIER;

		for (size_t j = 0; first && j < i; j++)
			first = m->waits[j].type != DSM_MSG_BARRIER ||
				memcmp(m->waits[j].key, w->key,
				       DSM_BARRIER_KEY_SIZE);
		n += first;
	}
	return n;
}

/* A thread waits once at a key: its arrival while its first waits is
 * -EDEADLK (after a count mismatch's -EINVAL, before any bound). */
static void on_barrier(struct lock_model *m, int conn, const struct dsm_hdr *q,
		       const struct dsm_barrier_req *br, int status)
{
	uint32_t count = 0;
	unsigned n = waiting_at(m, br->key, &count);
	bool mine = arrival_of(m, conn, br->key, br->token) >= 0;
	struct lm_wait *w;

	if (status == -EINVAL && !q->flags)
		FUZZ_CHECK(n && count != br->count);
	if (status == -EDEADLK)
		FUZZ_CHECK(mine && count == br->count);
	if (status == -EAGAIN)
		FUZZ_CHECK(!mine && (arrivals_of(m, conn) >= LM_MAX_ARRIVALS ||
				     (!n && barriers(m) >= LM_MAX_BARRIERS)));
	if (status)
		return;
	FUZZ_CHECK(!n || count == br->count);
	FUZZ_CHECK(!mine);
	m->step.releases = n + 1 == br->count;
	memcpy(m->step.key, br->key, sizeof(m->step.key));
	m->step.count = br->count;
	if (!m->step.releases)
		FUZZ_CHECK(arrivals_of(m, conn) < LM_MAX_ARRIVALS);
	w = wait_add(m, conn, DSM_MSG_BARRIER, q->id);
	memcpy(w->key, br->key, sizeof(w->key));
	w->count = br->count;
	w->token = br->token;
}

/* WITHDRAW: (conn, token)'s waiting arrival at the key, whatever the
 * count, is due -ECANCELED within the step; with none, -ENOENT. */
static void on_withdraw(struct lock_model *m, int conn,
			const struct dsm_hdr *q,
			const struct dsm_barrier_req *br, int status)
{
	long i = arrival_of(m, conn, br->key, br->token);

	m->step.withdraw = true;
	if (status == -EINVAL)
		FUZZ_CHECK(q->flags);
	if (status == -ENOENT)
		FUZZ_CHECK(i < 0);
	if (status)
		return;
	FUZZ_CHECK(i >= 0);
	m->step.cancel_id = m->waits[i].id;
}

void lm_request(struct lock_model *m, int conn,
		const struct dsm_hdr *q, const uint8_t *body, int status,
		bool none)
{
	struct dsm_barrier_req br;
	struct dsm_lock_req lr;
	bool answered_now;

	m->step = (struct lm_step){ .conn = conn, .type = q->type,
				    .id = q->id };
	if (q->type != DSM_MSG_LOCK && q->type != DSM_MSG_UNLOCK &&
	    q->type != DSM_MSG_BARRIER)
		return;
	if (q->type == DSM_MSG_BARRIER ?
		    dsm_barrier_req_decode(body, q->len, &br) :
		    dsm_lock_req_decode(body, q->len, &lr)) {
		FUZZ_CHECK(status);
		return;
	}
	/* what decoded is well formed, checked here too so that a seed
	 * replayed catches a decoder that lets a bad one through */
	if (q->type == DSM_MSG_BARRIER)
		FUZZ_CHECK(br.token && !(br.flags & ~DSM_BARRIER_WITHDRAW) &&
			   br.count && br.count <= DSM_BARRIER_MAX_COUNT);
	/* UNLOCK and WITHDRAW are answered at once; LOCK and an arrival
	 * through the outbox */
	answered_now = q->type == DSM_MSG_UNLOCK ||
		       (q->type == DSM_MSG_BARRIER &&
			(br.flags & DSM_BARRIER_WITHDRAW));
	/* the same over either transport */
	if (!status)
		FUZZ_CHECK(none == !answered_now);
	if (q->type == DSM_MSG_BARRIER && (br.flags & DSM_BARRIER_WITHDRAW)) {
		on_withdraw(m, conn, q, &br, status);
		return;
	}
	if (q->type == DSM_MSG_BARRIER) {
		on_barrier(m, conn, q, &br, status);
		return;
	}
	if (q->type == DSM_MSG_LOCK)
		on_lock(m, conn, q, &lr, status);
	else
		on_unlock(m, conn, &lr, status);
}

/* Its waits in the region are answered -ENOENT first; then its locks
 * there are released as its death. */
void lm_detach(struct lock_model *m, int conn, uint64_t region)
{
	m->step.region = region;
	for (size_t i = 0; i < m->nwaits; i++)
		if (m->waits[i].conn == conn &&
		    m->waits[i].type == DSM_MSG_LOCK &&
		    m->waits[i].region == region)
			m->waits[i].dropping = true;
	for (size_t i = 0; i < m->nlocks;) {
		struct lm_lock *l = &m->locks[i];
		size_t before = m->nlocks;

		if (l->held && l->conn == conn && l->region == region)
			die(m, l);
		if (m->nlocks == before) /* else another lock moved to i */
			i++;
	}
}

/* Its waits go unanswered; then its locks are released as its death. */
void lm_session_end(struct lock_model *m, int conn)
{
	m->step = (struct lm_step){ .conn = conn };
	for (size_t i = 0; i < m->nwaits;)
		if (m->waits[i].conn == conn)
			wait_del(m, (long)i);
		else
			i++;
	for (size_t i = 0; i < m->nlocks;) {
		struct lm_lock *l = &m->locks[i];
		size_t before = m->nlocks;

		if (l->held && l->conn == conn)
			die(m, l);
		if (m->nlocks == before)
			i++;
	}
}

/* ---- what the outbox carries ----------------------------------------------- */

/* Wait i is granted: first in line, its lock free, flags as the model
 * says (a death before it, or the region's marks overflowed). */
static void granted(struct lock_model *m, long i, const uint8_t *body,
		    uint32_t len)
{
	struct lm_wait *w = &m->waits[i];
	struct lm_lock *l = lock_find(m, w->region, w->offset);
	struct lm_region *r = region_get(m, w->region);
	struct dsm_lock_reply a;
	uint32_t want;

	FUZZ_CHECK(l && !l->held && first_waiter(m, l) == i);
	FUZZ_CHECK(dsm_lock_reply_decode(body, len, &a) == 0);
	want = l->died || r->overflow ? DSM_LOCK_OWNER_DIED : 0;
	FUZZ_CHECK(a.flags == want);
	if (l->mark)
		r->ndead--;
	if (l->due)
		m->due--;
	*l = (struct lm_lock){ .region = w->region, .offset = w->offset,
			       .token = w->token, .conn = w->conn,
			       .held = true };
}

static void lock_reply(struct lock_model *m, int to, const struct dsm_hdr *h,
		       const uint8_t *body)
{
	struct lm_step *st = &m->step;
	long i = wait_find(m, to, DSM_MSG_LOCK, h->id);

	FUZZ_CHECK(i >= 0);
	if (!h->status) {
		granted(m, i, body, h->len);
	} else if (h->status == -ECANCELED) {
		FUZZ_CHECK(st->type == DSM_MSG_UNLOCK && st->conn == to &&
			   st->cancel_id == h->id && !st->cancelled);
		st->cancelled = true;
	} else if (h->status == -EAGAIN) {
		/* a seal waits for the locks held: the waiters are refused */
		FUZZ_CHECK(st->type == DSM_MSG_SHARE_MOVE);
	} else {
		FUZZ_CHECK(h->status == -ENOENT && m->waits[i].dropping);
		FUZZ_CHECK(st->type == DSM_MSG_FREE && st->conn == to);
	}
	wait_del(m, i);
}

/* Released in arrival order, the arrival that completed it last; or
 * taken back by the step's WITHDRAW, once. */
static void barrier_reply(struct lock_model *m, int to,
			  const struct dsm_hdr *h)
{
	struct lm_step *st = &m->step;
	long i = wait_find(m, to, DSM_MSG_BARRIER, h->id);
	uint32_t count;

	FUZZ_CHECK(i >= 0 && !h->len);
	if (h->status) {
		FUZZ_CHECK(h->status == -ECANCELED);
		FUZZ_CHECK(st->type == DSM_MSG_BARRIER && st->withdraw &&
			   st->conn == to && st->cancel_id == h->id &&
			   !st->cancelled);
		st->cancelled = true;
		wait_del(m, i);
		return;
	}
	FUZZ_CHECK(st->type == DSM_MSG_BARRIER && st->releases);
	FUZZ_CHECK(!memcmp(m->waits[i].key, st->key, DSM_BARRIER_KEY_SIZE));
	for (long j = 0; j < i; j++)
		FUZZ_CHECK(m->waits[j].type != DSM_MSG_BARRIER ||
			   memcmp(m->waits[j].key, st->key,
				  DSM_BARRIER_KEY_SIZE));
	FUZZ_CHECK(waiting_at(m, st->key, &count) > 1 ||
		   (to == st->conn && h->id == st->id));
	st->released++;
	wait_del(m, i);
}

void lm_sent(struct lock_model *m, int to, const struct dsm_hdr *h,
	     const uint8_t *body)
{
	/* nothing is answered to a session while it ends */
	if (h->type == DSM_MSG_LOCK || h->type == DSM_MSG_BARRIER)
		FUZZ_CHECK(m->step.type || to != m->step.conn);
	switch (h->type) {
	case DSM_MSG_LOCK:
		FUZZ_CHECK(h->flags == DSM_F_REPLY);
		lock_reply(m, to, h, body);
		return;
	case DSM_MSG_BARRIER:
		FUZZ_CHECK(h->flags == DSM_F_REPLY);
		barrier_reply(m, to, h);
		return;
	case DSM_MSG_ACQUIRE:   /* shared.c's: not modelled here */
	case DSM_MSG_SHARE_MOVE:
	case DSM_MSG_INVALIDATE:
	case DSM_MSG_RECALL:
		return;
	}
	FUZZ_CHECK(!"the outbox carried a message nobody sends that way");
}

void lm_step_done(struct lock_model *m)
{
	struct lm_step *st = &m->step;
	uint32_t count;

	/* a free lock with waiters was granted within the step */
	FUZZ_CHECK(m->due == 0);
	FUZZ_CHECK(!st->cancel_id || st->cancelled);
	for (size_t i = 0; i < m->nwaits; i++)
		FUZZ_CHECK(!m->waits[i].dropping);
	if (st->type == DSM_MSG_BARRIER && st->releases)
		FUZZ_CHECK(st->released == st->count &&
			   !waiting_at(m, st->key, &count));
	else
		FUZZ_CHECK(st->released == 0);
	*st = (struct lm_step){ 0 };
}

void lm_region_gone(struct lock_model *m, uint64_t id)
{
	for (size_t i = 0; i < m->nwaits; i++)
		FUZZ_CHECK(m->waits[i].type != DSM_MSG_LOCK ||
			   m->waits[i].region != id);
	for (size_t i = 0; i < m->nlocks;)
		if (m->locks[i].region == id) {
			FUZZ_CHECK(!m->locks[i].held);
			lock_del(m, &m->locks[i]);
		} else {
			i++;
		}
	for (size_t i = 0; i < m->nregions; i++)
		if (m->regions[i].id == id) {
			m->regions[i] = m->regions[--m->nregions];
			return;
		}
}

size_t lm_nregions(const struct lock_model *m)
{
	return m->nregions;
}

uint64_t lm_region_id(const struct lock_model *m, size_t i)
{
	return m->regions[i].id;
}

void lm_check_idle(const struct lock_model *m)
{
	FUZZ_CHECK(m->nwaits == 0 && m->due == 0);
	for (size_t i = 0; i < m->nlocks; i++)
		FUZZ_CHECK(!m->locks[i].held);
}
