/*
 * shared.c - see shared.h (room: server protocol).
 *
 * The directory is per page, not per group of pages: a write fault is a
 * fault on one page (userfaultfd write protection is per page), and a
 * group would invalidate the neighbours of every page written, which is
 * false sharing the application cannot see.  Per page it costs 10 bytes
 * for a 4096-byte page.
 *
 * An ACQUIRE becomes an op on its region's list, in arrival order.  An
 * op starts when none of its pages is busy (under another op in
 * progress) and no earlier op still waiting overlaps it, so each page
 * serves its ACQUIREs first come, first served, and two writers of one
 * page are granted in turn.  Starting marks the pages busy, sends an
 * INVALIDATE (write) or RECALL (read of an owned page) to every other
 * holder of a conflicting copy and waits for their INVAL_ACKs; the last
 * one grants.  An op never waits while holding anything another op
 * waits for except its own pages, which it takes all at once, so ops
 * never deadlock; a holder that never acknowledges is closed after
 * h->inval_timeout_ms, and a closed holder counts as having acknowledged.
 */
#include "shared.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lock.h"
#include "log.h"
#include "util.h"

_Static_assert(DSM_SHARE_KEY_SIZE == DSM_AUTH_MAC_SIZE,
	       "a key is compared as a MAC is");

/* An op's mode besides enum dsm_acquire_mode: SHARE_MOVE's seal, which
 * takes every copy, the requester's too. */
#define OP_SEAL 0xff

struct share_op {
	struct share_op *next;      /* the region's ops, oldest first */
	struct share_hold *req;     /* who asked */
	uint64_t req_id;            /* the request's id, for its reply */
	uint8_t type;               /* ACQUIRE or SHARE_MOVE: the reply's */
	uint64_t first, npages;     /* pages of the region */
	uint8_t mode, flags;        /* enum dsm_acquire_mode or OP_SEAL */
	bool active;                /* started: its pages are busy */
	uint64_t inval_id;          /* its INVALIDATEs' or RECALLs' id */
	uint64_t waiting;           /* holder slots yet to acknowledge */
	uint64_t deadline_ns;
};

struct shared {
	struct region *rg;
	uint8_t key[DSM_SHARE_KEY_SIZE];
	struct share_hold *slot[SHARED_MAX_HOLDERS];
	unsigned nholders;
	uint64_t npages;
	uint64_t *copies;           /* per page: holder slots with a copy */
	uint8_t *owned;             /* per page: its one copy is writable */
	uint8_t *busy;              /* per page: under an op in progress */
	struct share_op *ops;
	unsigned nops;
	struct lock_table locks;    /* lock.c's; zeroed by shared_new */
	struct share_hold *sealer;  /* sealed by this holder: nothing is
	                             * granted until it unseals or moves */
	struct share_hold *seal_wanted; /* a seal waiting for the region's
	                             * locks to be released */
	uint64_t seal_req_id;       /* its SHARE_MOVE's id */
	bool moved;                 /* its home is elsewhere now: ACQUIRE
	                             * and LOCK get -ESTALE */
	bool standby;               /* a replicated region's second copy:
	                             * nothing granted until promoted */
	uint32_t standby_gen;       /* new standbys made for this region
	                             * (STANDBY_SET): a holder is granted
	                             * only once it holds the latest */
	uint64_t rejoined;          /* holder slots that sent PROMOTE */
	uint64_t promote_deadline_ns; /* since the first PROMOTE; 0: none */
	struct shared *next, *prev; /* h->shared_head */
};

static uint64_t bit(unsigned slot)
{
	return 1ull << slot;
}

/* ---- lifetime ------------------------------------------------------------ */

static struct shared *shared_new(struct handler *h, struct region *rg,
				 const uint8_t *key)
{
	struct shared *sh = calloc(1, sizeof(*sh));

	if (!sh)
		return NULL;
	sh->npages = rg->size / DSM_PAGE_SIZE;
	sh->copies = calloc(sh->npages, sizeof(*sh->copies));
	sh->owned = calloc(sh->npages, 1);
	sh->busy = calloc(sh->npages, 1);
	if (!sh->copies || !sh->owned || !sh->busy) {
		free(sh->copies);
		free(sh->owned);
		free(sh->busy);
		free(sh);
		return NULL;
	}
	memcpy(sh->key, key, DSM_SHARE_KEY_SIZE);
	sh->rg = rg;
	rg->shared = sh;
	sh->next = h->shared_head;
	if (sh->next)
		sh->next->prev = sh;
	h->shared_head = sh;
	h->shared_regions++;
	h->shared_bytes += rg->size;
	return sh;
}

/* The last holder is gone: nothing refers to the region any more. */
static void shared_free(struct handler *h, struct shared *sh)
{
	struct region *rg = sh->rg;

	if (sh->prev)
		sh->prev->next = sh->next;
	else
		h->shared_head = sh->next;
	if (sh->next)
		sh->next->prev = sh->prev;
	h->shared_regions--;
	h->shared_bytes -= rg->size;
	pool_free(&h->pool, rg->pool_off, rg->size);
	region_del(&h->regions, rg);
	lock_table_destroy(&sh->locks);
	free(sh->copies);
	free(sh->owned);
	free(sh->busy);
	free(sh);
}

/* What the session may hold counts owned and shared regions alike. */
static int room_for_one(struct handler_session *s)
{
	struct handler *h = s->h;

	if (h->limits.regions_per_session &&
	    s->regions.count + s->nholds >= h->limits.regions_per_session) {
		h->over_limit++;
		return -EDQUOT;
	}
	return 0;
}

static int hold(struct handler_session *s, struct shared *sh)
{
	struct share_hold *hd;
	unsigned slot = 0;

	while (slot < SHARED_MAX_HOLDERS && sh->slot[slot])
		slot++;
	if (slot == SHARED_MAX_HOLDERS)
		return -EUSERS;
	hd = calloc(1, sizeof(*hd));
	if (!hd)
		return -ENOMEM;
	*hd = (struct share_hold){ .rg = sh->rg, .s = s, .slot = slot,
				   .snext = s->holds };
	if (s->holds)
		s->holds->sprev = hd;
	s->holds = hd;
	s->nholds++;
	sh->slot[slot] = hd;
	sh->nholders++;
	return 0;
}

/* The shared region with this key.  Every region's key is compared, in
 * constant time, so how long a lookup takes says nothing about which
 * bytes of a guess were right. */
static struct shared *by_key(const struct handler *h, const uint8_t *key)
{
	struct shared *found = NULL;

	for (struct shared *sh = h->shared_head; sh; sh = sh->next)
		if (!dsm_auth_verify(sh->key, key))
			found = sh;
	return found;
}

int shared_create(struct handler_session *s, const struct dsm_share_req *m,
		  struct region **out)
{
	struct handler *h = s->h;
	struct region *rg = NULL;
	uint64_t off;
	int err = room_for_one(s);

	if (err)
		return err;
	if (by_key(h, m->key))
		return -EEXIST;
	err = pool_alloc(&h->pool, m->size, &off);
	if (err)
		return err;
	err = -ENOMEM;
	rg = region_add(&h->regions, NULL, off, m->size);
	if (!rg)
		goto out_pool;
	if (!shared_new(h, rg, m->key))
		goto out_region;
	err = hold(s, rg->shared);
	if (err) {
		shared_free(h, rg->shared);
		return err;
	}
	if (m->region_id & DSM_SHARE_CREATE_SEALED)
		rg->shared->sealer = rg->shared->slot[0];
	rg->shared->standby = m->region_id & DSM_SHARE_CREATE_STANDBY;
	*out = rg;
	return 0;

out_region:
	region_del(&h->regions, rg);
out_pool:
	pool_free(&h->pool, off, m->size);
	return err;
}

static struct share_hold *hold_of(const struct shared *sh,
				  const struct handler_session *s)
{
	for (unsigned i = 0; i < SHARED_MAX_HOLDERS; i++)
		if (sh->slot[i] && sh->slot[i]->s == s)
			return sh->slot[i];
	return NULL;
}

/* A wrong key looks exactly like a missing region: the key is the only
 * proof a member has that the region is its business.  Compared in
 * constant time, as the cluster secret's MACs are.  Region id 0: the
 * region is found by its key (a name's digest, dsm_map_shared). */
int shared_attach(struct handler_session *s, const struct dsm_share_req *m,
		  struct region **out)
{
	struct region *rg = region_find(&s->h->regions, m->region_id);
	struct shared *sh;
	int err;

	if (!m->region_id) {
		sh = by_key(s->h, m->key);
		rg = sh ? sh->rg : NULL;
	}
	if (!rg || !rg->shared || dsm_auth_verify(rg->shared->key, m->key))
		return -ENOENT;
	/* its holders are leaving, and the name lives elsewhere now */
	if (rg->shared->moved)
		return -ESTALE;
	/* a standby being filled: holding it half filled would promote
	 * what it lacks */
	if (rg->shared->standby && rg->shared->sealer)
		return -EAGAIN;
	if (rg->size != m->size)
		return -EINVAL;
	if (hold_of(rg->shared, s))
		return -EEXIST;
	err = room_for_one(s);
	if (!err)
		err = hold(s, rg->shared);
	if (err)
		return err;
	/* found by the name while being promoted: it has no copy to write
	 * back, so the promotion does not wait for it */
	if (rg->shared->standby && rg->shared->promote_deadline_ns)
		rg->shared->rejoined |= bit(hold_of(rg->shared, s)->slot);
	*out = rg;
	return 0;
}

void shared_set_remote(struct handler_session *s, struct region *rg,
		       void *remote)
{
	hold_of(rg->shared, s)->remote = remote;
}

struct region *shared_held(const struct handler_session *s, uint64_t id)
{
	struct region *rg = region_find(&s->h->regions, id);

	return rg && rg->shared && hold_of(rg->shared, s) ? rg : NULL;
}

struct lock_table *shared_locks(struct region *rg)
{
	return &rg->shared->locks;
}

/* ---- ops ----------------------------------------------------------------- */

static void op_unlink(struct shared *sh, struct share_op *op)
{
	struct share_op **pp = &sh->ops;

	while (*pp != op)
		pp = &(*pp)->next;
	*pp = op->next;
	sh->nops--;
	if (op->mode != OP_SEAL)
		op->req->s->deferred--;
	if (op->active)
		memset(sh->busy + op->first, 0, op->npages);
	free(op);
}

static uint64_t op_pool_off(const struct shared *sh, const struct share_op *op)
{
	return sh->rg->pool_off + op->first * DSM_PAGE_SIZE;
}

/* The directory changes hands, then the reply goes: with the pages'
 * contents as they are now, after every write-back that came before its
 * holder's INVAL_ACK on that holder's connection. */
static void grant(struct handler *h, struct shared *sh, struct share_op *op)
{
	uint64_t me = bit(op->req->slot);
	struct reply r = { 0 };

	if (op->mode == OP_SEAL)
		sh->sealer = op->req; /* every copy is gone (conflicts) */
	for (uint64_t p = op->first; p < op->first + op->npages; p++) {
		if (op->mode == OP_SEAL) {
			sh->copies[p] = 0;
			sh->owned[p] = 0;
			continue;
		}
		if (op->mode == DSM_ACQ_WRITE) {
			sh->copies[p] = me;
			sh->owned[p] = 1;
			continue;
		}
		if (sh->owned[p] && sh->copies[p] != me)
			sh->owned[p] = 0; /* the recalled owner kept a copy */
		sh->copies[p] |= me;
	}
	dsm_hdr_init(&r.hdr, op->type, DSM_F_REPLY, 0, op->req_id);
	if (op->flags & DSM_ACQ_DATA) {
		r.data = pool_at(&h->pool, op_pool_off(sh, op));
		r.hdr.len = op->npages * DSM_PAGE_SIZE;
	}
	if (op->type == DSM_MSG_ACQUIRE)
		h->acquires++;
	handler_emit(h, op->req->s, &r);
	op_unlink(sh, op);
}

/* op will never be granted (the region moved): answered with err. */
static void op_fail(struct handler *h, struct shared *sh, struct share_op *op,
		    int err)
{
	struct reply r = { 0 };

	dsm_hdr_init(&r.hdr, op->type, DSM_F_REPLY, 0, op->req_id);
	r.hdr.status = err;
	h->errors++;
	handler_emit(h, op->req->s, &r);
	op_unlink(sh, op);
}

/* Holders other than the requester whose copies conflict with op. */
static uint64_t conflicts(const struct shared *sh, const struct share_op *op)
{
	uint64_t me = bit(op->req->slot), who = 0;

	for (uint64_t p = op->first; p < op->first + op->npages; p++) {
		if (op->mode == OP_SEAL)
			who |= sh->copies[p];
		else if (op->mode == DSM_ACQ_WRITE)
			who |= sh->copies[p] & ~me;
		else if (sh->owned[p] && sh->copies[p] != me)
			who |= sh->copies[p];
	}
	return who;
}

static void send_inval(struct handler *h, struct shared *sh,
		       const struct share_op *op, struct share_hold *to)
{
	struct dsm_rw_req run = { .region_id = sh->rg->id,
				  .pool_off = op_pool_off(sh, op),
				  .npages = op->npages };
	uint8_t type = op->mode == DSM_ACQ_READ ? DSM_MSG_RECALL :
						  DSM_MSG_INVALIDATE;
	struct reply r = { 0 };

	dsm_hdr_init(&r.hdr, type, DSM_F_SERVER, DSM_RW_REQ_SIZE, op->inval_id);
	dsm_rw_req_encode(&run, r.body);
	r.data = r.body;
	h->invalidations++;
	handler_emit(h, to->s, &r);
}

/* Take op's pages; grant at once if nobody else holds a conflicting
 * copy.  True if it was granted (and freed). */
static bool op_start(struct handler *h, struct shared *sh, struct share_op *op)
{
	op->waiting = conflicts(sh, op);
	op->active = true;
	memset(sh->busy + op->first, 1, op->npages);
	if (!op->waiting) {
		grant(h, sh, op);
		return true;
	}
	op->inval_id = h->next_inval_id++;
	op->deadline_ns = dsm_now_ns() + h->inval_timeout_ms * 1000000;
	for (unsigned i = 0; i < SHARED_MAX_HOLDERS; i++)
		if (op->waiting & bit(i))
			send_inval(h, sh, op, sh->slot[i]);
	return false;
}

static bool overlap(const struct share_op *a, const struct share_op *b)
{
	return a->first < b->first + b->npages &&
	       b->first < a->first + a->npages;
}

/* Per page first come, first served: an op waits while its pages are
 * busy or an earlier waiting op wants one of them. */
static bool op_may_start(const struct shared *sh, const struct share_op *op)
{
	if (sh->sealer || sh->standby)
		return false;
	if (memchr(sh->busy + op->first, 1, op->npages))
		return false;
	for (const struct share_op *e = sh->ops; e != op; e = e->next)
		if (!e->active && overlap(e, op))
			return false;
	return true;
}

/* Start what can start.  A grant frees pages an op already passed over
 * may want, so after one the walk begins again; each walk that grants
 * removes an op, so this ends. */
static void pump(struct handler *h, struct shared *sh)
{
	bool again = true;

	while (again) {
		again = false;
		for (struct share_op *op = sh->ops, *next; op; op = next) {
			next = op->next;
			if (op->active || !op_may_start(sh, op))
				continue;
			if (op_start(h, sh, op)) {
				again = true;
				break;
			}
		}
	}
}

/* Run [first, first + n) of rg, from a pool offset the peer sent:
 * checked without sums that could wrap. */
static int run_of(const struct region *rg, uint64_t pool_off, uint64_t n,
		  uint64_t *first)
{
	uint64_t rel;

	if (pool_off < rg->pool_off)
		return -ERANGE;
	rel = (pool_off - rg->pool_off) / DSM_PAGE_SIZE;
	if (rel > rg->size / DSM_PAGE_SIZE ||
	    n > rg->size / DSM_PAGE_SIZE - rel)
		return -ERANGE;
	*first = rel;
	return 0;
}

/* A copy of o joins sh's ops, last, and whatever can start does.  0 (the
 * reply comes later, or came) or -errno. */
static int op_queue(struct handler_session *s, struct shared *sh,
		    const struct share_op *o)
{
	struct share_op *op, **tail;

	/* a seal is one per region, beside a holder's ACQUIREs */
	if (o->mode != OP_SEAL && (s->deferred >= SHARED_MAX_DEFERRED ||
				   sh->nops >= SHARED_MAX_QUEUED))
		return -EAGAIN;
	op = malloc(sizeof(*op));
	if (!op)
		return -ENOMEM;
	*op = *o;
	op->next = NULL;
	for (tail = &sh->ops; *tail; tail = &(*tail)->next)
		;
	*tail = op;
	sh->nops++;
	if (op->mode != OP_SEAL)
		s->deferred++;
	pump(s->h, sh);
	return 0;
}

int shared_acquire(struct handler_session *s, uint64_t req_id,
		   const struct dsm_acquire *m)
{
	struct region *rg = shared_held(s, m->region_id);
	struct shared *sh;
	uint64_t first;
	int err;

	if (!rg)
		return -ENOENT;
	sh = rg->shared;
	err = run_of(rg, m->pool_off, m->npages, &first);
	if (err)
		return err;
	/* Over RDMA the pages are read one-sidedly: a reply holds 128
	 * bytes. */
	if ((m->flags & DSM_ACQ_DATA) && s->hooks)
		return -EINVAL;
	if (sh->moved)
		return -ESTALE;
	/* its write-backs would miss the standby made since it attached */
	if (hold_of(sh, s)->standby_seen != sh->standby_gen)
		return -ENOLINK;
	return op_queue(s, sh, &(struct share_op){
		.req = hold_of(sh, s), .req_id = req_id,
		.type = DSM_MSG_ACQUIRE, .first = first, .npages = m->npages,
		.mode = m->mode, .flags = m->flags });
}

/* ---- moving -------------------------------------------------------------- */

/* Is a seal waiting for its acknowledgements? */
static bool sealing(const struct shared *sh)
{
	for (const struct share_op *op = sh->ops; op; op = op->next)
		if (op->mode == OP_SEAL)
			return true;
	return false;
}

/* A lock would not survive the move: none is taken while a region is
 * sealing, sealed or moved, except by a session that holds one there
 * while the seal waits for the locks to go (it may need more to reach
 * its unlocks). */
int shared_lockable(const struct region *rg, bool holds_one)
{
	const struct shared *sh = rg->shared;

	if (sh->moved)
		return -ESTALE;
	if (sh->sealer || sh->standby || sealing(sh))
		return -EAGAIN;
	return sh->seal_wanted && !holds_one ? -EAGAIN : 0;
}

static int seal_queue(struct handler_session *s, struct shared *sh,
		      uint64_t req_id)
{
	return op_queue(s, sh, &(struct share_op){
		.req = hold_of(sh, s), .req_id = req_id,
		.type = DSM_MSG_SHARE_MOVE, .first = 0, .npages = sh->npages,
		.mode = OP_SEAL });
}

/*
 * A lock held across the move would be lost with it, so a seal waits
 * until none is: LOCKs waiting are answered -EAGAIN (the client asks
 * again, and is refused the same way until the move is over or given
 * up), holders finish, and the last release queues the seal
 * (shared_locks_idle).  Meanwhile ACQUIREs are served as ever: a holder
 * may need a page to reach its unlock.
 */
static int seal(struct handler_session *s, struct shared *sh, uint64_t req_id)
{
	if (sh->moved)
		return -ESTALE;
	if (sh->sealer || sh->seal_wanted || sealing(sh))
		return -EBUSY;
	if (!lock_table_in_use(&sh->locks))
		return seal_queue(s, sh, req_id);
	sh->seal_wanted = hold_of(sh, s);
	sh->seal_req_id = req_id;
	lock_refuse_waiters(s->h, &sh->locks, -EAGAIN);
	return 0;
}

void shared_locks_idle(struct handler *h, struct region *rg)
{
	struct shared *sh = rg->shared;
	struct share_hold *hd = sh->seal_wanted;
	struct reply r = { 0 };
	int err;

	if (!hd)
		return;
	sh->seal_wanted = NULL;
	err = seal_queue(hd->s, sh, sh->seal_req_id);
	if (!err)
		return;
	dsm_hdr_init(&r.hdr, DSM_MSG_SHARE_MOVE, DSM_F_REPLY, 0,
		     sh->seal_req_id);
	r.hdr.status = err;
	h->errors++;
	handler_emit(h, hd->s, &r);
}

/* The region's pages are at its new home: nothing waiting here will be
 * granted, and each holder finds the region there on its -ESTALE. */
static void moved(struct handler *h, struct shared *sh)
{
	sh->moved = true;
	while (sh->ops)
		op_fail(h, sh, sh->ops, -ESTALE);
	h->shared_moves++;
}

/* The sealer has filled a new standby: every holder must hold it before
 * it is granted anything (its ACQUIREs waiting now are answered
 * -ENOLINK; it asks again once it has). */
static void standby_set(struct handler *h, struct shared *sh)
{
	struct share_op *op, *next;

	sh->standby_gen++;
	sh->sealer->standby_seen = sh->standby_gen;
	for (op = sh->ops; op; op = next) {
		next = op->next;
		if (op->mode != OP_SEAL)
			op_fail(h, sh, op, -ENOLINK);
	}
}

/* hd gives up a seal it asked for that has not been answered (waiting
 * for locks, or for acknowledgements): its SEAL is answered -ECANCELED.
 * False if it has none. */
static bool cancel_seal(struct handler *h, struct shared *sh,
			const struct share_hold *hd)
{
	struct reply r = { 0 };

	if (sh->seal_wanted == hd) {
		sh->seal_wanted = NULL;
		dsm_hdr_init(&r.hdr, DSM_MSG_SHARE_MOVE, DSM_F_REPLY, 0,
			     sh->seal_req_id);
		r.hdr.status = -ECANCELED;
		h->errors++;
		handler_emit(h, hd->s, &r);
		return true;
	}
	for (struct share_op *op = sh->ops; op; op = op->next)
		if (op->mode == OP_SEAL && op->req == hd) {
			op_fail(h, sh, op, -ECANCELED);
			pump(h, sh);
			return true;
		}
	return false;
}

int shared_move(struct handler_session *s, uint64_t req_id,
		const struct dsm_share_move *m, bool *later)
{
	struct region *rg = shared_held(s, m->region_id);
	struct shared *sh;

	*later = false;
	if (!rg)
		return -ENOENT;
	sh = rg->shared;
	if (m->step == DSM_MOVE_SEAL) {
		*later = true;
		return seal(s, sh, req_id);
	}
	if (m->step == DSM_MOVE_STANDBY_SEEN) {
		hold_of(sh, s)->standby_seen = sh->standby_gen;
		return 0;
	}
	if (m->step == DSM_MOVE_UNSEAL && cancel_seal(s->h, sh, hold_of(sh, s)))
		return 0;
	if (sh->sealer != hold_of(sh, s))
		return sh->moved ? -ESTALE : -EPERM;
	if (m->step == DSM_MOVE_MOVED)
		moved(s->h, sh);
	else if (m->step == DSM_MOVE_STANDBY_SET)
		standby_set(s->h, sh);
	else {
		sh->sealer = NULL;
		pump(s->h, sh);
	}
	return 0;
}

/* ---- failing over -------------------------------------------------------- */

/* Every holder of a standby being promoted has sent PROMOTE (having
 * written back what it owned and dropped its copies), or left: the
 * pool is as current as it can be, and the standby is the home. */
static void promote_check(struct handler *h, struct shared *sh)
{
	uint64_t present = 0;

	if (!sh->standby || !sh->promote_deadline_ns)
		return;
	for (unsigned i = 0; i < SHARED_MAX_HOLDERS; i++)
		if (sh->slot[i])
			present |= bit(i);
	if ((sh->rejoined & present) != present)
		return;
	sh->standby = false;
	sh->promote_deadline_ns = 0;
	h->shared_failovers++;
	pump(h, sh);
}

/*
 * PROMOTE from a holder of a standby whose home was lost.  The standby
 * takes the name's key, so that SHARE_ATTACH by key finds it, and grants
 * nothing until every holder has sent PROMOTE or left: until then a
 * holder that owned a page may not have written it back yet.  Asked
 * again (a reply lost), or after the promotion, it changes nothing.
 */
int shared_promote(struct handler_session *s, const struct dsm_share_req *m)
{
	struct region *rg = shared_held(s, m->region_id);
	struct shared *sh, *other;

	if (!rg)
		return -ENOENT;
	sh = rg->shared;
	if (rg->size != m->size)
		return -EINVAL;
	if (!sh->standby && !sh->rejoined)
		return -EINVAL; /* never a standby */
	if (sh->rejoined && dsm_auth_verify(sh->key, m->key))
		return -EINVAL; /* promoted under another name */
	other = by_key(s->h, m->key);
	if (other && other != sh)
		return -EEXIST;
	if (!sh->standby)
		return 0;
	memcpy(sh->key, m->key, DSM_SHARE_KEY_SIZE);
	sh->rejoined |= bit(hold_of(sh, s)->slot);
	if (!sh->promote_deadline_ns)
		sh->promote_deadline_ns = dsm_now_ns() +
					  s->h->inval_timeout_ms * 1000000;
	promote_check(s->h, sh);
	return 0;
}

bool shared_reclaimable(const struct region *rg)
{
	return rg->shared->standby;
}

/* hd has acknowledged op: whatever it owned in op's run it has written
 * back and may no longer write, even while other holders have yet to
 * acknowledge (a WRITE after its ack would reach the next owner's
 * grant).  Should op be dropped, hd is left a sharer of those pages. */
static void disown(struct shared *sh, const struct share_op *op,
		   const struct share_hold *hd)
{
	for (uint64_t p = op->first; p < op->first + op->npages; p++)
		if (sh->owned[p] && sh->copies[p] == bit(hd->slot))
			sh->owned[p] = 0;
}

void shared_ack(struct handler_session *s, uint64_t inval_id)
{
	for (struct share_hold *hd = s->holds; hd; hd = hd->snext) {
		struct shared *sh = hd->rg->shared;

		for (struct share_op *op = sh->ops; op; op = op->next) {
			if (!op->active || op->inval_id != inval_id ||
			    !(op->waiting & bit(hd->slot)))
				continue;
			op->waiting &= ~bit(hd->slot);
			disown(sh, op, hd);
			if (!op->waiting) {
				grant(s->h, sh, op);
				pump(s->h, sh);
			}
			return;
		}
	}
	dsm_debug("INVAL_ACK %llu answers nothing waiting: ignored",
		  (unsigned long long)inval_id);
}

int shared_may_write(const struct handler_session *s, const struct region *rg,
		     uint64_t first, uint64_t n)
{
	const struct shared *sh = rg->shared;
	const struct share_hold *hd = hold_of(sh, s);

	/* the sealer fills a region it moves here, whose copies are gone;
	 * every holder writes back to a standby what it writes back home */
	if (hd && ((sh->sealer == hd && !sh->moved) || sh->standby))
		return 0;
	for (uint64_t p = first; p < first + n; p++)
		if (!hd || !sh->owned[p] || sh->copies[p] != bit(hd->slot))
			return -EPERM;
	return 0;
}

/* ---- leaving ------------------------------------------------------------- */

/* hd's copies are forfeit (an owned page keeps what was last written
 * back), its own ops are dropped, and it no longer holds up anyone's. */
static void forget_holder(struct handler *h, struct shared *sh,
			  struct share_hold *hd)
{
	uint64_t me = bit(hd->slot);
	struct share_op *op, *next;

	for (uint64_t p = 0; p < sh->npages; p++) {
		if (sh->copies[p] & me)
			sh->owned[p] = 0;
		sh->copies[p] &= ~me;
	}
	if (sh->sealer == hd) /* a move given up: the region serves again */
		sh->sealer = NULL;
	sh->rejoined &= ~me;
	if (sh->seal_wanted == hd)
		sh->seal_wanted = NULL;
	for (op = sh->ops; op; op = next) {
		next = op->next;
		if (op->req == hd)
			op_unlink(sh, op);
	}
	for (op = sh->ops; op; op = next) {
		next = op->next;
		if (op->active && (op->waiting & me) && !(op->waiting &= ~me))
			grant(h, sh, op);
	}
	pump(h, sh);
}

/* s lets go of rg; its SEAL still waiting is answered first if the
 * session goes on (a FREE), not if it is ending. */
static void detach(struct handler_session *s, struct region *rg, bool live)
{
	struct shared *sh = rg->shared;
	struct share_hold *hd = hold_of(sh, s);

	if (live)
		cancel_seal(s->h, sh, hd);

	/* its peer's one-sided access ends before anything else changes */
	if (hd->remote)
		s->hooks->removed(s->hooks_ctx, hd->remote);
	hd->remote = NULL;
	lock_detach(s, rg);
	forget_holder(s->h, sh, hd);
	sh->slot[hd->slot] = NULL;
	sh->nholders--;
	if (hd->sprev)
		hd->sprev->snext = hd->snext;
	else
		s->holds = hd->snext;
	if (hd->snext)
		hd->snext->sprev = hd->sprev;
	s->nholds--;
	free(hd);
	if (!sh->nholders)
		shared_free(s->h, sh);
	else
		promote_check(s->h, sh);
}

void shared_detach(struct handler_session *s, struct region *rg)
{
	detach(s, rg, true);
}

void shared_session_end(struct handler_session *s)
{
	while (s->holds)
		detach(s, s->holds->rg, false);
}

/* A holder that kept an op waiting past its deadline, or a standby's
 * promotion past its own, or NULL. */
static struct handler_session *overdue(const struct handler *h, uint64_t now,
					const char **why)
{
	*why = "invalidation";
	for (const struct shared *sh = h->shared_head; sh; sh = sh->next) {
		if (sh->standby && sh->promote_deadline_ns &&
		    sh->promote_deadline_ns <= now)
			for (unsigned i = 0; i < SHARED_MAX_HOLDERS; i++)
				if (sh->slot[i] && !(sh->rejoined & bit(i))) {
					*why = "failover (PROMOTE)";
					return sh->slot[i]->s;
				}
		for (const struct share_op *op = sh->ops; op; op = op->next)
			if (op->active && op->deadline_ns <= now)
				for (unsigned i = 0; i < SHARED_MAX_HOLDERS; i++)
					if (op->waiting & bit(i))
						return sh->slot[i]->s;
	}
	return NULL;
}

/* Detached here, not when its connection is finally gone: the writers
 * waiting on it are granted now, and nothing it sends later is handled. */
void shared_tick(struct handler *h, uint64_t now_ns)
{
	struct handler_session *s;
	const char *why;

	while ((s = overdue(h, now_ns, &why))) {
		h->inval_timeouts++;
		dsm_warn("a holder of a shared region did not acknowledge an "
			 "%s within %llu ms: closing it, its copies are "
			 "forfeit", why, (unsigned long long)h->inval_timeout_ms);
		shared_session_end(s);
		if (h->out)
			h->out->close(h->out_ctx, s, "no INVAL_ACK in time");
	}
}
