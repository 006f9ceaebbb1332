/*
 * fuzz_proto.c - the wire decoders and the server's whole request path
 * under arbitrary input (room: tests).
 *
 * Input: a stream of [selector byte][message] pairs.  The selector picks
 * one of three connections to a fresh 1 MiB server, so ownership is
 * exercised across connections; a connection the server closed is
 * replaced by a new one, which frees its regions.  The third connection
 * is a one-sided (RDMA) one, with fake region hooks standing in for the
 * memory registration: READ and WRITE as messages must close it, every
 * region it owns must be registered, and a region must be deregistered
 * before its extent returns to the pool.  Every reply is checked against
 * a model of which connection owns which extent, and counted as the
 * server must count it by type and status (its metrics); the pool's free
 * list is checked after every message.  A fake outbox takes what the
 * handler sends other than replies (deferred replies, INVALIDATE and
 * RECALL), and a model of locks and barriers (fuzz_locks.c) checks every
 * LOCK, UNLOCK and BARRIER and what the outbox carried for them.
 *
 * Built two ways: with -DDSM_LIBFUZZER as a libFuzzer target, and without
 * as a replay tool (ctest fuzz_proto_replay) that runs built-in seeds and
 * any files named on the command line.  `--write-seeds DIR` writes the
 * built-in seeds out as a starting corpus.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_locks.h"
#include "handler.h"
#include "log.h"
#include "shared.h"

#define FUZZ_CAPACITY (1u << 20)
#define NCONN 3
#define ONE_SIDED 2 /* the connection with region hooks */
#define MAX_REGIONS (FUZZ_CAPACITY / DSM_PAGE_SIZE)
/* Small limits, so that inputs reach them. */
#define FUZZ_REGIONS_PER_SESSION 24
#define FUZZ_SESSIONS_PER_CLIENT 2

/* Messages one step may send through the outbox: a session's end
 * grants up to 256 locks, a barrier releases up to 3 * 64 arrivals. */
#define FUZZ_MAX_SENT 4096

/* What the outbox was given during one step. */
struct sent {
	int conn;
	struct dsm_hdr hdr;
	uint8_t body[DSM_LOCK_REPLY_SIZE];
};

/* What the server should believe: live regions and who owns them. */
struct model_region {
	uint64_t id, off, size;
	int conn;
};

struct fuzz {
	struct handler h;
	struct handler_session conn[NCONN];
	bool closed[NCONN];
	struct model_region regions[MAX_REGIONS];
	size_t nregions;
	uint64_t registered;     /* regions the fake hooks hold */
	uint32_t hook_calls, last_rkey;
	/* Pool pages ever written.  Only these can fail to read as zeros in
	 * a new region; checking only them keeps the rest untouched (a
	 * touch costs a page fault, and the fuzzer would crawl). */
	bool written[MAX_REGIONS];
	/* Large, so kept apart and never zeroed whole: */
	struct lock_model *lm;
	struct sent *sent;       /* what the outbox took this step */
	size_t nsent;
	uint64_t next_uid;       /* LOCK and BARRIER ids, made unique */
	uint64_t counted[HANDLER_TYPE_SLOTS][HANDLER_STATUS_SLOTS];
};

/* --- decoders alone ----------------------------------------------------- */

/* Whatever decodes must encode back to the same bytes. */
#define ROUND_TRIP(type, size, in, len)                                     \
	do {                                                                \
		struct type m_;                                             \
		uint8_t out_[size];                                         \
		if ((len) >= (size) && type##_decode(in, size, &m_) == 0) { \
			type##_encode(&m_, out_);                           \
			FUZZ_CHECK(memcmp(out_, in, size) == 0);            \
		}                                                           \
	} while (0)

/* What a LOCK or BARRIER body that decodes promises the handler. */
static void check_lock_bodies(const uint8_t *in, size_t len)
{
	struct dsm_barrier_req br;
	struct dsm_lock_reply lp;
	struct dsm_lock_req lr;

	if (dsm_lock_req_decode(in, len, &lr) == 0)
		FUZZ_CHECK(len == DSM_LOCK_REQ_SIZE && lr.token &&
			   lr.offset % DSM_LOCK_ALIGN == 0);
	if (dsm_lock_reply_decode(in, len, &lp) == 0)
		FUZZ_CHECK(!(lp.flags & ~DSM_LOCK_OWNER_DIED) && !lp.reserved);
	if (dsm_barrier_req_decode(in, len, &br) == 0)
		FUZZ_CHECK(len == DSM_BARRIER_REQ_SIZE && br.count >= 1 &&
			   br.count <= DSM_BARRIER_MAX_COUNT && br.token &&
			   !(br.flags & ~DSM_BARRIER_WITHDRAW));
}

static void fuzz_decoders(const uint8_t *in, size_t len)
{
	struct dsm_hello_reply hr;
	struct dsm_rw_req rw;
	struct dsm_hdr h;

	if (len >= DSM_HDR_SIZE && dsm_hdr_decode(in, &h) == 0) {
		uint8_t out[DSM_HDR_SIZE];

		dsm_hdr_encode(&h, out);
		FUZZ_CHECK(memcmp(out, in, DSM_HDR_SIZE) == 0);
		FUZZ_CHECK(h.len <= DSM_MAX_PAYLOAD);
	}
	ROUND_TRIP(dsm_hello, DSM_HELLO_SIZE, in, len);
	ROUND_TRIP(dsm_alloc_req, DSM_ALLOC_REQ_SIZE, in, len);
	ROUND_TRIP(dsm_alloc_reply, DSM_ALLOC_REPLY_SIZE, in, len);
	ROUND_TRIP(dsm_free_req, DSM_FREE_REQ_SIZE, in, len);
	ROUND_TRIP(dsm_server_stats, DSM_SERVER_STATS_SIZE, in, len);
	ROUND_TRIP(dsm_goodbye, DSM_GOODBYE_SIZE, in, len);
	ROUND_TRIP(dsm_auth_msg, DSM_AUTH_MSG_SIZE, in, len);
	ROUND_TRIP(dsm_lease, DSM_LEASE_SIZE, in, len);
	ROUND_TRIP(dsm_draining, DSM_DRAINING_SIZE, in, len);
	ROUND_TRIP(dsm_lock_req, DSM_LOCK_REQ_SIZE, in, len);
	ROUND_TRIP(dsm_lock_reply, DSM_LOCK_REPLY_SIZE, in, len);
	ROUND_TRIP(dsm_barrier_req, DSM_BARRIER_REQ_SIZE, in, len);
	check_lock_bodies(in, len);
	if (dsm_hello_reply_decode(in, len, &hr) == 0)
		FUZZ_CHECK(hr.page_size == DSM_PAGE_SIZE);
	for (uint8_t t = DSM_MSG_READ; t <= DSM_MSG_WRITE; t++) {
		if (dsm_rw_req_decode(t, in, len, &rw) < 0)
			continue;
		FUZZ_CHECK(rw.npages >= 1 && rw.npages <= DSM_MAX_BATCH_PAGES);
		FUZZ_CHECK(rw.pool_off % DSM_PAGE_SIZE == 0);
		FUZZ_CHECK(len == DSM_RW_REQ_SIZE +
		       (t == DSM_MSG_WRITE ? rw.npages * DSM_PAGE_SIZE : 0));
	}
	if (dsm_rw_req_decode(DSM_MSG_DISCARD, in, len, &rw) == 0)
		FUZZ_CHECK(rw.npages >= 1 && rw.pool_off % DSM_PAGE_SIZE == 0 &&
			   len == DSM_RW_REQ_SIZE);
	(void)dsm_msg_name(len ? in[0] : 0);
}

/* --- the model ----------------------------------------------------------- */

static struct model_region *model_find(struct fuzz *f, uint64_t id)
{
	for (size_t i = 0; i < f->nregions; i++)
		if (f->regions[i].id == id)
			return &f->regions[i];
	return NULL;
}

static void model_drop(struct fuzz *f, struct model_region *r)
{
	*r = f->regions[--f->nregions];
}

static void model_drop_conn(struct fuzz *f, int conn)
{
	for (size_t i = 0; i < f->nregions;)
		if (f->regions[i].conn == conn)
			model_drop(f, &f->regions[i]);
		else
			i++;
}

/* What an in-order walk of the pool's free runs found. */
struct walk {
	uint64_t runs, bytes;
	uint64_t end;            /* where the last run seen ended */
	bool any;
};

/* The subtree at t: in order by offset, apart from each other, inside
 * the pool, a heap by priority, each node's maxlen right; its longest
 * run is returned. */
static uint64_t walk_runs(const struct pool *p, const struct pool_run *t,
			  uint64_t prio_above, struct walk *w)
{
	uint64_t longest, l, r;

	if (!t)
		return 0;
	FUZZ_CHECK(t->prio <= prio_above);
	l = walk_runs(p, t->left, t->prio, w);
	FUZZ_CHECK(t->len > 0 && t->off % DSM_PAGE_SIZE == 0);
	FUZZ_CHECK(t->len <= p->capacity && t->off <= p->capacity - t->len);
	FUZZ_CHECK(!w->any || w->end < t->off);
	w->any = true;
	w->end = t->off + t->len;
	w->runs++;
	w->bytes += t->len;
	r = walk_runs(p, t->right, t->prio, w);
	longest = t->len > l ? t->len : l;
	longest = longest > r ? longest : r;
	FUZZ_CHECK(t->maxlen == longest);
	return longest;
}

/* What the server counted for dsm-server --metrics, modelled: each
 * request under its type (0 for a header that does not decode or a
 * type that is no request) and its reply's status. */
static void count_reply(struct fuzz *f, const uint8_t *msg,
			const struct reply *r)
{
	struct dsm_hdr q;
	unsigned slot = 0, st = -r->hdr.status;

	if (dsm_hdr_decode(msg, &q) == 0 && q.type < HANDLER_TYPE_SLOTS)
		slot = q.type;
	FUZZ_CHECK(r->slot == slot);
	FUZZ_CHECK(r->hdr.status <= 0);
	f->counted[slot][st < HANDLER_STATUS_OTHER ? st : HANDLER_STATUS_OTHER]++;
}

/* Free runs sorted, apart, inside the pool; with the regions they tile
 * the pool exactly; and the pool keeps a node for every run a FREE could
 * add (pool_free never allocates). */
static void check_pool(const struct fuzz *f)
{
	const struct pool *p = &f->h.pool;
	struct walk w = { 0 };
	uint64_t free_bytes, used = 0;

	walk_runs(p, p->runs, UINT64_MAX, &w);
	free_bytes = w.bytes;
	FUZZ_CHECK(w.runs == p->nruns);
	FUZZ_CHECK(p->nnodes >= p->nextents + 1 && p->nnodes >= p->nruns);
	for (size_t i = 0; i < f->nregions; i++)
		used += f->regions[i].size;
	/* shared regions (shared.c) are not in the model: counted apart */
	used += f->h.shared_bytes;
	FUZZ_CHECK(used == p->used);
	FUZZ_CHECK(free_bytes + used == p->capacity);
	FUZZ_CHECK(f->h.regions.count == f->nregions + f->h.shared_regions);
}

/* A new extent reads zeros.  Pages are zeroed whole, so the first and
 * last bytes of each written page tell. */
static void check_zeroed(struct fuzz *f, uint64_t off, uint64_t size)
{
	for (uint64_t pg = off / DSM_PAGE_SIZE;
	     pg < (off + size) / DSM_PAGE_SIZE; pg++) {
		const uint8_t *p = pool_at(&f->h.pool, pg * DSM_PAGE_SIZE);

		if (!f->written[pg])
			continue;
		FUZZ_CHECK(p[0] == 0 && p[DSM_PAGE_SIZE - 1] == 0);
		f->written[pg] = false;
	}
}

/* --- the one-sided connection's fake registration ------------------------ */

/* What a fake registration holds: the extent it covers. */
struct fake_reg {
	uint64_t off, size;
};

/* Every fifth registration fails, so the ALLOC's (and a SHARE's) way
 * back is fuzzed. */
static int fake_added(void *ctx, uint8_t *base, uint64_t size, void **reg,
		      uint64_t *addr, uint32_t *rkey)
{
	struct fuzz *f = ctx;
	struct fake_reg *fr;

	FUZZ_CHECK(base >= pool_at(&f->h.pool, 0) && size &&
		   size % DSM_PAGE_SIZE == 0);
	if (++f->hook_calls % 5 == 0)
		return -ENOMEM;
	fr = malloc(sizeof(*fr));
	FUZZ_CHECK(fr);
	fr->off = (uint64_t)(base - pool_at(&f->h.pool, 0));
	fr->size = size;
	FUZZ_CHECK(fr->off + size <= FUZZ_CAPACITY);
	*reg = fr;
	*addr = (uintptr_t)base;
	*rkey = f->last_rkey = f->hook_calls;
	f->registered++;
	return 0;
}

/* No free run in the subtree at t overlaps [off, off+size). */
static void check_apart(const struct pool_run *t, uint64_t off, uint64_t size)
{
	if (!t)
		return;
	FUZZ_CHECK(t->off + t->len <= off || off + size <= t->off);
	check_apart(t->left, off, size);
	check_apart(t->right, off, size);
}

/* Deregistration comes while the extent is still allocated: no free
 * run of the pool overlaps it yet. */
static void fake_removed(void *ctx, void *reg)
{
	struct fuzz *f = ctx;
	struct fake_reg *fr = reg;

	check_apart(f->h.pool.runs, fr->off, fr->size);
	free(fr);
	f->registered--;
}

static const struct region_hooks fake_hooks = { fake_added, fake_removed };

/* --- the fake outbox -------------------------------------------------------- */

static int conn_index(struct fuzz *f, const struct handler_session *s)
{
	FUZZ_CHECK(s >= f->conn && s < f->conn + NCONN);
	return (int)(s - f->conn);
}

/* r->data is only valid during the call: a LOCK reply's body is kept. */
static void fake_send(void *ctx, struct handler_session *to,
		      const struct reply *r)
{
	struct fuzz *f = ctx;
	struct sent *e;

	FUZZ_CHECK(f->nsent < FUZZ_MAX_SENT);
	e = &f->sent[f->nsent++];
	e->conn = conn_index(f, to);
	e->hdr = r->hdr;
	/* an RDMA session sends whole messages of 128 bytes at most: pages
	 * never go that way (an ACQUIRE with DATA is refused there) */
	if (e->conn == ONE_SIDED)
		FUZZ_CHECK(DSM_HDR_SIZE + r->hdr.len <= DSM_RDMA_MSG_MAX);
	memset(e->body, 0, sizeof(e->body));
	if (r->hdr.type == DSM_MSG_LOCK && r->hdr.len)
		memcpy(e->body, r->data,
		       r->hdr.len < sizeof(e->body) ? r->hdr.len :
						      sizeof(e->body));
}

/* Only shared.c's timer closes a session, and the fuzzer runs none. */
static void fake_close(void *ctx, struct handler_session *to, const char *why)
{
	struct fuzz *f = ctx;

	(void)why;
	f->closed[conn_index(f, to)] = true;
}

static const struct handler_out fake_out = { fake_send, fake_close };

/* The step's outbox messages to the model, then the step's end; the
 * model forgets regions the server no longer has. */
static void drain_sent(struct fuzz *f)
{
	for (size_t i = 0; i < f->nsent; i++)
		lm_sent(f->lm, f->sent[i].conn, &f->sent[i].hdr,
			f->sent[i].body);
	f->nsent = 0;
	lm_step_done(f->lm);
	for (size_t i = lm_nregions(f->lm); i-- > 0;) {
		uint64_t id = lm_region_id(f->lm, i);

		if (!region_find(&f->h.regions, id))
			lm_region_gone(f->lm, id);
	}
}

static void conn_init(struct fuzz *f, int conn)
{
	handler_session_init(&f->conn[conn], &f->h);
	if (conn == ONE_SIDED)
		handler_session_hooks(&f->conn[conn], &fake_hooks, f);
}

/* A registration that covers exactly [off, off+size). */
static bool covers(const void *reg, uint64_t off, uint64_t size)
{
	const struct fake_reg *fr = reg;

	return fr && fr->off == off && fr->size == size;
}

/* Every region of the one-sided connection, and every shared region it
 * holds, has a registration of its own extent, and there are no others:
 * a handle given to the wrong holding, or kept after a FREE, fails. */
static void check_registered(const struct fuzz *f)
{
	uint64_t n = 0;

	for (size_t i = 0; i < f->nregions; i++) {
		const struct model_region *m = &f->regions[i];
		const struct region *rg;

		if (m->conn != ONE_SIDED)
			continue;
		rg = region_find(&f->h.regions, m->id);
		FUZZ_CHECK(rg && covers(rg->remote, m->off, m->size));
		n++;
	}
	for (const struct share_hold *hd = f->conn[ONE_SIDED].holds; hd;
	     hd = hd->snext, n++)
		FUZZ_CHECK(covers(hd->remote, hd->rg->pool_off, hd->rg->size));
	FUZZ_CHECK(n == f->registered);
}

/* --- replies --------------------------------------------------------------- */

static void check_alloc(struct fuzz *f, int conn, const struct reply *r)
{
	struct dsm_alloc_reply a;
	struct model_region *m;

	FUZZ_CHECK(dsm_alloc_reply_decode(r->data, r->hdr.len, &a) == 0);
	FUZZ_CHECK(a.size && a.pool_off + a.size <= FUZZ_CAPACITY);
	FUZZ_CHECK(!model_find(f, a.region_id));
	for (size_t i = 0; i < f->nregions; i++) {
		m = &f->regions[i];
		FUZZ_CHECK(a.pool_off + a.size <= m->off ||
			   m->off + m->size <= a.pool_off);
	}
	/* only the one-sided connection learns where the region is */
	if (conn == ONE_SIDED)
		FUZZ_CHECK(a.addr == (uintptr_t)pool_at(&f->h.pool, a.pool_off) &&
			   a.rkey == f->last_rkey);
	else
		FUZZ_CHECK(a.addr == 0 && a.rkey == 0);
	/* a new region reads zeros, whoever used the space before */
	check_zeroed(f, a.pool_off, a.size);
	FUZZ_CHECK(f->nregions < MAX_REGIONS);
	f->regions[f->nregions++] = (struct model_region){
		.id = a.region_id, .off = a.pool_off, .size = a.size,
		.conn = conn };
}

/* A READ, WRITE or DISCARD the server carried out was allowed. */
static void check_rw(struct fuzz *f, int conn, const struct dsm_hdr *q,
		     const uint8_t *body, const struct reply *r)
{
	struct model_region *m;
	struct dsm_rw_req rw;
	uint64_t bytes;

	FUZZ_CHECK(dsm_rw_req_decode(q->type, body, q->len, &rw) == 0);
	m = model_find(f, rw.region_id);
	bytes = (uint64_t)rw.npages * DSM_PAGE_SIZE;
	/* a shared region: the connection must hold it, and only READ and
	 * WRITE reach it */
	if (!m) {
		FUZZ_CHECK(shared_held(&f->conn[conn], rw.region_id) &&
			   q->type != DSM_MSG_DISCARD);
		return;
	}
	FUZZ_CHECK(m->conn == conn);
	FUZZ_CHECK(rw.pool_off >= m->off &&
		   rw.pool_off + bytes <= m->off + m->size);
	if (q->type == DSM_MSG_READ) {
		FUZZ_CHECK(r->hdr.len == bytes);
		FUZZ_CHECK(r->data == pool_at(&f->h.pool, rw.pool_off));
	} else if (q->type == DSM_MSG_DISCARD) {
		/* the pages read as zeros now */
		FUZZ_CHECK(r->hdr.len == 0);
		check_zeroed(f, rw.pool_off, bytes);
	} else {
		FUZZ_CHECK(r->hdr.len == 0);
		FUZZ_CHECK(memcmp(pool_at(&f->h.pool, rw.pool_off),
				  body + DSM_RW_REQ_SIZE, bytes) == 0);
		for (uint64_t i = 0; i < rw.npages; i++)
			f->written[rw.pool_off / DSM_PAGE_SIZE + i] = true;
	}
}

/* Connections that gave this lease id. */
static int same_client(const struct fuzz *f, uint64_t id)
{
	int n = 0;

	for (int c = 0; c < NCONN; c++)
		n += f->conn[c].client_id == id;
	return n;
}

static void check_success(struct fuzz *f, int conn, const struct dsm_hdr *q,
			  const uint8_t *body, const struct reply *r)
{
	struct dsm_barrier_req br;
	struct dsm_share_move mv;
	struct dsm_hello_reply hr;
	struct dsm_server_stats st;
	struct dsm_alloc_reply ar;
	struct dsm_free_req fr;
	struct model_region *m;

	switch (q->type) {
	case DSM_MSG_HELLO:
		FUZZ_CHECK(dsm_hello_reply_decode(r->data, r->hdr.len,
						  &hr) == 0);
		FUZZ_CHECK(hr.capacity == FUZZ_CAPACITY);
		break;
	case DSM_MSG_ALLOC:
		check_alloc(f, conn, r);
		FUZZ_CHECK(f->conn[conn].regions.count +
			   f->conn[conn].nholds <= FUZZ_REGIONS_PER_SESSION);
		break;
	case DSM_MSG_FREE:
		FUZZ_CHECK(dsm_free_req_decode(body, q->len, &fr) == 0);
		m = model_find(f, fr.region_id);
		FUZZ_CHECK(r->hdr.len == 0);
		if (!m) { /* a shared region, detached */
			FUZZ_CHECK(!shared_held(&f->conn[conn], fr.region_id));
			break;
		}
		FUZZ_CHECK(m->conn == conn);
		model_drop(f, m);
		break;
	case DSM_MSG_READ:
	case DSM_MSG_WRITE:
	case DSM_MSG_DISCARD:
		check_rw(f, conn, q, body, r);
		break;
	case DSM_MSG_STATS:
		FUZZ_CHECK(dsm_server_stats_decode(r->data, r->hdr.len,
						   &st) == 0);
		FUZZ_CHECK(st.regions == f->nregions + f->h.shared_regions &&
			   st.clients == NCONN);
		break;
	case DSM_MSG_PING:
		FUZZ_CHECK(r->hdr.len == 0);
		break;
	case DSM_MSG_SHARE_CREATE:
	case DSM_MSG_SHARE_ATTACH: /* registered for a one-sided holder */
		FUZZ_CHECK(dsm_alloc_reply_decode(r->data, r->hdr.len,
						  &ar) == 0);
		FUZZ_CHECK(shared_held(&f->conn[conn], ar.region_id));
		if (conn == ONE_SIDED)
			FUZZ_CHECK(ar.addr == (uintptr_t)pool_at(&f->h.pool,
								 ar.pool_off) &&
				   ar.rkey == f->last_rkey);
		else
			FUZZ_CHECK(ar.addr == 0 && ar.rkey == 0);
		break;
	case DSM_MSG_ACQUIRE: /* answered through the outbox */
		FUZZ_CHECK(r->none);
		break;
	case DSM_MSG_SHARE_MOVE: /* a seal through the outbox, the rest now */
		FUZZ_CHECK(dsm_share_move_decode(body, q->len, &mv) == 0);
		if (mv.step == DSM_MOVE_SEAL)
			FUZZ_CHECK(r->none);
		else
			FUZZ_CHECK(!r->none && !r->hdr.len);
		break;
	case DSM_MSG_INVAL_ACK: /* an empty reply, on either transport */
		FUZZ_CHECK(!r->none && !r->hdr.len);
		break;
	case DSM_MSG_LOCK:    /* granted through the outbox (fuzz_locks.c) */
		FUZZ_CHECK(r->none);
		break;
	case DSM_MSG_BARRIER: /* released through it; a WITHDRAW at once */
		FUZZ_CHECK(dsm_barrier_req_decode(body, q->len, &br) == 0);
		if (br.flags & DSM_BARRIER_WITHDRAW)
			FUZZ_CHECK(!r->none && !r->hdr.len);
		else
			FUZZ_CHECK(r->none);
		break;
	case DSM_MSG_UNLOCK:
		FUZZ_CHECK(!r->none && !r->hdr.len);
		break;
	case DSM_MSG_LEASE: /* accepted only well-formed, for a real id */
		FUZZ_CHECK(r->hdr.len == 0 && q->len == DSM_LEASE_SIZE);
		FUZZ_CHECK(f->conn[conn].client_id != 0);
		FUZZ_CHECK(same_client(f, f->conn[conn].client_id) <=
			   FUZZ_SESSIONS_PER_CLIENT);
		break;
	default:
		FUZZ_CHECK(!"success for a request the server does not know");
	}
}

/* The reply answers the request at `msg` and is well formed.  authed:
 * whether the connection had completed its handshake before it. */
static void check_reply(struct fuzz *f, int conn, const uint8_t *msg,
			size_t used, const struct reply *r, bool authed)
{
	uint8_t raw[DSM_HDR_SIZE];
	struct dsm_hdr q, back;
	int qerr = dsm_hdr_decode(msg, &q);

	FUZZ_CHECK(r->hdr.flags == DSM_F_REPLY);
	FUZZ_CHECK(r->hdr.type == q.type && r->hdr.id == q.id);
	dsm_hdr_encode(&r->hdr, raw);
	FUZZ_CHECK(dsm_hdr_decode(raw, &back) == 0);
	FUZZ_CHECK(r->hdr.status <= 0 && r->hdr.status > -4096);
	if (qerr) {
		FUZZ_CHECK(r->hdr.status == qerr && r->close);
		FUZZ_CHECK(used == DSM_HDR_SIZE);
		return;
	}
	/* before the handshake a body is never waited for past its size */
	if (!authed && q.len > HANDLER_HANDSHAKE_BODY_MAX) {
		FUZZ_CHECK(r->hdr.status == -EMSGSIZE && r->close);
		FUZZ_CHECK(used == DSM_HDR_SIZE);
		return;
	}
	FUZZ_CHECK(used == DSM_HDR_SIZE + q.len);
	if (conn == ONE_SIDED && !q.flags &&
	    (q.type == DSM_MSG_READ || q.type == DSM_MSG_WRITE))
		FUZZ_CHECK(r->hdr.status == -EPROTO && r->close);
	if (r->hdr.status) {
		FUZZ_CHECK(r->hdr.len == 0);
		return;
	}
	FUZZ_CHECK(!r->close);
	check_success(f, conn, &q, msg + DSM_HDR_SIZE, r);
}

/* --- the stream --------------------------------------------------------- */

/* The session ends: the model first, then the handler, whose outbox
 * may grant what it held to the others. */
static void end_session(struct fuzz *f, int conn)
{
	lm_session_end(f->lm, conn);
	handler_session_end(&f->conn[conn]);
	drain_sent(f);
}

static void reconnect(struct fuzz *f, int conn)
{
	end_session(f, conn);
	model_drop_conn(f, conn);
	conn_init(f, conn);
	f->closed[conn] = false;
}

/* LOCK and BARRIER get ids of their own, unique: the model tells
 * deferred replies apart by id, and the server never looks at one. */
static void unique_id(struct fuzz *f, uint8_t *msg, size_t len)
{
	uint64_t id = ++f->next_uid;

	if (len < DSM_HDR_SIZE ||
	    (msg[5] != DSM_MSG_LOCK && msg[5] != DSM_MSG_BARRIER))
		return;
	for (int i = 0; i < 8; i++)
		msg[16 + i] = (uint8_t)(id >> (8 * i));
}

/* The shared region a whole FREE at msg would detach its sender from,
 * asked before the handler acts on it; 0 if none. */
static uint64_t shared_freed(struct fuzz *f, int c, const uint8_t *msg,
			     size_t len)
{
	struct dsm_free_req fr;
	struct dsm_hdr q;

	if (len < DSM_HDR_SIZE || dsm_hdr_decode(msg, &q) ||
	    q.type != DSM_MSG_FREE || len - DSM_HDR_SIZE < q.len ||
	    dsm_free_req_decode(msg + DSM_HDR_SIZE, q.len, &fr))
		return 0;
	return shared_held(&f->conn[c], fr.region_id) ? fr.region_id : 0;
}

/* The model's part of one step: the request, a detach, the outbox. */
static void model_step(struct fuzz *f, int c, const uint8_t *msg,
		       size_t used, const struct reply *r, uint64_t detached)
{
	struct dsm_hdr q;

	if (dsm_hdr_decode(msg, &q) || used != DSM_HDR_SIZE + q.len) {
		FUZZ_CHECK(f->nsent == 0);
		return;
	}
	lm_request(f->lm, c, &q, msg + DSM_HDR_SIZE,
		   r->hdr.status, r->none);
	if (detached && !r->hdr.status)
		lm_detach(f->lm, c, detached);
	drain_sent(f);
}

static void fuzz_stream(const uint8_t *data, size_t len)
{
	static struct fuzz f; /* large; one input at a time */
	static struct lock_model lm;
	static struct sent log[FUZZ_MAX_SENT];
	size_t pos = 0, used, need;
	uint8_t *in = malloc(len ? len : 1);
	uint64_t detached;
	struct reply r;
	bool authed;

	FUZZ_CHECK(in);
	memcpy(in, data, len);
	memset(&f, 0, sizeof(f));
	lm_init(&lm);
	f.lm = &lm;
	f.sent = log;
	FUZZ_CHECK(handler_init(&f.h, FUZZ_CAPACITY, POOL_PAGES_SMALL, 1, NULL, 0) == 0);
	f.h.out = &fake_out;
	f.h.out_ctx = &f;
	f.h.limits = (struct handler_limits){
		.regions_per_session = FUZZ_REGIONS_PER_SESSION,
		.sessions_per_client = FUZZ_SESSIONS_PER_CLIENT };
	for (int c = 0; c < NCONN; c++)
		conn_init(&f, c);

	while (pos < len) {
		int c = in[pos++] % NCONN;

		if (f.closed[c])
			reconnect(&f, c);
		authed = f.conn[c].authed;
		unique_id(&f, in + pos, len - pos);
		detached = shared_freed(&f, c, in + pos, len - pos);
		used = handler_next(&f.conn[c], in + pos, len - pos, &r, &need);
		if (!used) {
			FUZZ_CHECK(need > len - pos);
			FUZZ_CHECK(authed || need <= DSM_HDR_SIZE +
						    HANDLER_HANDSHAKE_BODY_MAX);
			break;
		}
		check_reply(&f, c, in + pos, used, &r, authed);
		count_reply(&f, in + pos, &r);
		model_step(&f, c, in + pos, used, &r, detached);
		f.closed[c] = f.closed[c] || r.close;
		pos += used;
		check_pool(&f);
		check_registered(&f);
	}

	for (int c = 0; c < NCONN; c++)
		end_session(&f, c);
	lm_check_idle(&lm);
	FUZZ_CHECK(!memcmp(f.counted, f.h.requests_by, sizeof(f.counted)));
	FUZZ_CHECK(f.h.barriers.count == 0);
	FUZZ_CHECK(f.registered == 0);
	FUZZ_CHECK(f.h.pool.used == 0 && f.h.regions.count == 0);
	FUZZ_CHECK(f.h.pool.nruns == 1);
	handler_destroy(&f.h);
	free(in);
}

/*
 * The same bytes against a server with a cluster secret.  They cannot
 * forge an AUTH (the server's nonce is random), so whatever they are,
 * nothing but HELLO may ever succeed and the pool stays empty: no way
 * around the handshake.
 */
static void fuzz_keyed(const uint8_t *in, size_t len)
{
	static const struct dsm_auth_key key = { { 1, 2, 3 } };
	struct handler h;
	struct handler_session conn[NCONN];
	size_t pos = 0, used, need;
	struct reply r;

	FUZZ_CHECK(handler_init(&h, FUZZ_CAPACITY, POOL_PAGES_SMALL, 1, NULL, 0) == 0);
	h.key = &key;
	for (int c = 0; c < NCONN; c++)
		handler_session_init(&conn[c], &h);
	while (pos < len) {
		int c = in[pos++] % NCONN;

		used = handler_next(&conn[c], in + pos, len - pos, &r, &need);
		if (!used)
			break;
		FUZZ_CHECK(r.hdr.status != 0 || r.hdr.type == DSM_MSG_HELLO);
		FUZZ_CHECK(h.pool.used == 0);
		if (r.close) { /* the peer reconnects */
			handler_session_end(&conn[c]);
			handler_session_init(&conn[c], &h);
		}
		pos += used;
	}
	for (int c = 0; c < NCONN; c++)
		handler_session_end(&conn[c]);
	handler_destroy(&h);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	dsm_log_set_level(DSM_LOG_ERROR); /* refusals are expected here */
	fuzz_decoders(data, size);
	fuzz_stream(data, size);
	fuzz_keyed(data, size);
	return 0;
}

#ifndef DSM_LIBFUZZER
/* --- replay: built-in seeds and files ------------------------------------ */

#include <sys/stat.h>

struct seed {
	uint8_t buf[4 * DSM_PAGE_SIZE]; /* run-fuzz.sh's -max_len */
	size_t len;
};

static void put(struct seed *s, int conn, uint8_t type, uint16_t flags,
		const void *body, uint32_t len)
{
	struct dsm_hdr h;

	FUZZ_CHECK(s->len + 1 + DSM_HDR_SIZE + len <= sizeof(s->buf));
	s->buf[s->len++] = (uint8_t)conn;
	dsm_hdr_init(&h, type, flags, len, s->len);
	dsm_hdr_encode(&h, s->buf + s->len);
	s->len += DSM_HDR_SIZE;
	if (len)
		memcpy(s->buf + s->len, body, len);
	s->len += len;
}

static void put_hello(struct seed *s, int conn, uint32_t page_size)
{
	struct dsm_hello m = { DSM_PROTO_VERSION, DSM_PROTO_VERSION, page_size,
			       0 };
	uint8_t b[DSM_HELLO_SIZE];

	dsm_hello_encode(&m, b);
	put(s, conn, DSM_MSG_HELLO, 0, b, sizeof(b));
}

static void put_alloc(struct seed *s, int conn, uint64_t size)
{
	struct dsm_alloc_req m = { size };
	uint8_t b[DSM_ALLOC_REQ_SIZE];

	dsm_alloc_req_encode(&m, b);
	put(s, conn, DSM_MSG_ALLOC, 0, b, sizeof(b));
}

static void put_free(struct seed *s, int conn, uint64_t id)
{
	struct dsm_free_req m = { id };
	uint8_t b[DSM_FREE_REQ_SIZE];

	dsm_free_req_encode(&m, b);
	put(s, conn, DSM_MSG_FREE, 0, b, sizeof(b));
}

/* Region ids start at 1 and the first region sits at pool offset 0. */
static void put_rw(struct seed *s, int conn, uint8_t type, uint64_t id,
		   uint64_t off, uint32_t npages)
{
	struct dsm_rw_req m = { .region_id = id, .pool_off = off,
				.npages = npages };
	uint8_t b[DSM_RW_REQ_SIZE + DSM_PAGE_SIZE] = { 0 };
	uint32_t len = DSM_RW_REQ_SIZE;

	dsm_rw_req_encode(&m, b);
	if (type == DSM_MSG_WRITE && npages == 1) {
		memset(b + DSM_RW_REQ_SIZE, 0x5a, DSM_PAGE_SIZE);
		len += DSM_PAGE_SIZE;
	}
	put(s, conn, type, 0, b, len);
}

/* SHARE_CREATE (id 0) or SHARE_ATTACH of a region of npages pages. */
static void put_share(struct seed *s, int conn, uint64_t id, uint32_t npages)
{
	struct dsm_share_req m = { .region_id = id,
				   .size = (uint64_t)npages * DSM_PAGE_SIZE };
	uint8_t b[DSM_SHARE_REQ_SIZE];

	memset(m.key, 0x42, sizeof(m.key));
	dsm_share_req_encode(&m, b);
	put(s, conn, id ? DSM_MSG_SHARE_ATTACH : DSM_MSG_SHARE_CREATE, 0, b,
	    sizeof(b));
}

static void put_lock(struct seed *s, int conn, uint8_t type, uint64_t id,
		     uint64_t offset, uint64_t token)
{
	struct dsm_lock_req m = { .region_id = id, .offset = offset,
				  .token = token };
	uint8_t b[DSM_LOCK_REQ_SIZE];

	dsm_lock_req_encode(&m, b);
	put(s, conn, type, 0, b, sizeof(b));
}

static void put_move(struct seed *s, int conn, uint64_t id, uint32_t step)
{
	struct dsm_share_move m = { .region_id = id, .step = step };
	uint8_t b[DSM_SHARE_MOVE_SIZE];

	dsm_share_move_encode(&m, b);
	put(s, conn, DSM_MSG_SHARE_MOVE, 0, b, sizeof(b));
}

static void put_barrier_as(struct seed *s, int conn, uint8_t name,
			   uint32_t count, uint32_t flags, uint64_t token)
{
	struct dsm_barrier_req m = { .count = count, .flags = flags,
				     .token = token };
	uint8_t b[DSM_BARRIER_REQ_SIZE];

	memset(m.key, name, sizeof(m.key));
	dsm_barrier_req_encode(&m, b);
	put(s, conn, DSM_MSG_BARRIER, 0, b, sizeof(b));
}

/* An arrival of thread `token`. */
static void put_barrier(struct seed *s, int conn, uint8_t name,
			uint32_t count, uint64_t token)
{
	put_barrier_as(s, conn, name, count, 0, token);
}

static void put_withdraw(struct seed *s, int conn, uint8_t name,
			 uint32_t count, uint64_t token)
{
	put_barrier_as(s, conn, name, count, DSM_BARRIER_WITHDRAW, token);
}

/* 24 bytes that are no header: the server closes the connection, and
 * the seed's next message on it reconnects (ending the session). */
static void put_garbage(struct seed *s, int conn)
{
	FUZZ_CHECK(s->len + 1 + DSM_HDR_SIZE <= sizeof(s->buf));
	s->buf[s->len++] = (uint8_t)conn;
	memcpy(s->buf + s->len, "not a dsm header at all!", DSM_HDR_SIZE);
	s->len += DSM_HDR_SIZE;
}

/* Locks of shared region 1 across connections 0 and 1: a wait, a
 * -EDEADLK, a cancel, a grant at release, a detach while holding (a
 * mark: OWNER_DIED) and one while waiting (-ENOENT), a holder's session
 * closed with a waiter; the one-sided connection refused. */
static void seed_locks(struct seed *s)
{
	put_hello(s, 0, DSM_PAGE_SIZE);
	put_hello(s, 1, DSM_PAGE_SIZE);
	put_share(s, 0, 0, 2);
	put_share(s, 1, 1, 2);
	put_lock(s, 0, DSM_MSG_LOCK, 1, 0, 1);
	put_lock(s, 1, DSM_MSG_LOCK, 1, 0, 1);
	put_lock(s, 1, DSM_MSG_LOCK, 1, 0, 2);
	put_lock(s, 0, DSM_MSG_LOCK, 1, 0, 1);
	put_lock(s, 1, DSM_MSG_UNLOCK, 1, 0, 2);
	put_lock(s, 0, DSM_MSG_UNLOCK, 1, 0, 1);
	put_lock(s, 0, DSM_MSG_UNLOCK, 1, 8, 1);
	put_lock(s, 0, DSM_MSG_LOCK, 1, 8, 3);
	put_free(s, 1, 1);
	put_lock(s, 0, DSM_MSG_LOCK, 1, 0, 1);
	put_share(s, 1, 1, 2);
	put_lock(s, 1, DSM_MSG_LOCK, 1, 8, 1);
	put_free(s, 1, 1);                    /* a waiter detaches */
	put_share(s, 1, 1, 2);
	put_lock(s, 1, DSM_MSG_LOCK, 1, 8, 1);
	put_lock(s, 1, DSM_MSG_LOCK, 1, 2 * DSM_PAGE_SIZE, 1);
	put_lock(s, 1, DSM_MSG_LOCK, 1, 4, 1);
	put_garbage(s, 0);
	put_hello(s, 0, DSM_PAGE_SIZE);
	put_lock(s, 1, DSM_MSG_UNLOCK, 1, 8, 1);
	put_hello(s, ONE_SIDED, DSM_PAGE_SIZE);
	put_lock(s, ONE_SIDED, DSM_MSG_LOCK, 1, 0, 1);
	put_barrier(s, ONE_SIDED, 1, 2, 1);
}

/* A shared region's move: a seal waiting for a lock held, refusing
 * the LOCK that waited, then granted at the unlock; a LOCK refused while sealed; MOVED from another holder
 * refused, from the sealer taken; a seal after it refused; a move given
 * up by unsealing, and one by the sealer's leaving. */
static void seed_move(struct seed *s)
{
	put_hello(s, 0, DSM_PAGE_SIZE);
	put_hello(s, 1, DSM_PAGE_SIZE);
	put_share(s, 0, 0, 2);
	put_share(s, 1, 1, 2);
	put_lock(s, 1, DSM_MSG_LOCK, 1, 0, 1);
	put_lock(s, 0, DSM_MSG_LOCK, 1, 0, 1); /* waits */
	put_move(s, 0, 1, DSM_MOVE_SEAL);     /* waits; the LOCK -EAGAIN */
	put_move(s, 1, 1, DSM_MOVE_SEAL);     /* -EBUSY: a seal waits */
	put_move(s, 0, 1, DSM_MOVE_UNSEAL);   /* cancels it: -ECANCELED */
	put_move(s, 0, 1, DSM_MOVE_SEAL);     /* waits again */
	put_lock(s, 1, DSM_MSG_UNLOCK, 1, 0, 1); /* the seal goes */
	put_move(s, 1, 1, DSM_MOVE_SEAL);     /* -EBUSY: sealed */
	put_lock(s, 1, DSM_MSG_LOCK, 1, 0, 1); /* -EAGAIN */
	put_move(s, 0, 1, DSM_MOVE_UNSEAL);
	put_move(s, 1, 1, DSM_MOVE_SEAL);
	put_free(s, 1, 1);                    /* the sealer leaves */
	put_share(s, 1, 1, 2);
	put_move(s, 0, 1, DSM_MOVE_SEAL);
	put_move(s, 1, 1, DSM_MOVE_MOVED);    /* -EPERM */
	put_move(s, 0, 1, DSM_MOVE_MOVED);
	put_move(s, 1, 1, DSM_MOVE_SEAL);     /* -ESTALE */
	put_lock(s, 1, DSM_MSG_LOCK, 1, 8, 1); /* -ESTALE */
	put_move(s, 0, 7, DSM_MOVE_SEAL);     /* -ENOENT */
	put_free(s, 0, 1);
	put_free(s, 1, 1);
}

/* Barriers: a round of 3 over two connections (one arrives with two
 * tokens), a count that differs, the same token twice (also where it
 * would complete), a count of 1, a waiter whose session is closed. */
static void seed_barriers(struct seed *s)
{
	put_hello(s, 0, DSM_PAGE_SIZE);
	put_hello(s, 1, DSM_PAGE_SIZE);
	put_barrier(s, 0, 1, 3, 1);
	put_barrier(s, 1, 1, 4, 1);
	put_barrier(s, 0, 1, 3, 1);           /* -EDEADLK */
	put_barrier(s, 0, 1, 3, 2);
	put_barrier(s, 1, 1, 3, 1);
	put_barrier(s, 1, 2, 1, 1);
	put_barrier(s, 0, 3, 2, 1);
	put_barrier(s, 0, 3, 2, 1);           /* would complete: -EDEADLK */
	put_barrier(s, 1, 3, 2, 1);
	put_barrier(s, 0, 4, 2, 1);
	put_garbage(s, 0);
	put_hello(s, 0, DSM_PAGE_SIZE);
	put_barrier(s, 0, 4, 2, 1);
	put_barrier(s, 1, 4, 2, 1);
}

/* Withdraws: the head of three taken back (-ECANCELED) and a later one
 * needed; withdraws that find nothing (another token, another session,
 * after release); a barrier emptied by its only arrival's withdraw, then
 * a new count there; an unknown flag and token 0; the one-sided
 * connection refused. */
static void seed_withdraw(struct seed *s)
{
	put_hello(s, 0, DSM_PAGE_SIZE);
	put_hello(s, 1, DSM_PAGE_SIZE);
	put_barrier(s, 0, 1, 3, 1);
	put_barrier(s, 1, 1, 3, 1);
	put_withdraw(s, 0, 1, 3, 2);          /* another token: -ENOENT */
	put_withdraw(s, 0, 1, 3, 1);
	put_barrier(s, 0, 1, 3, 2);
	put_barrier(s, 0, 1, 3, 1);           /* releases */
	put_withdraw(s, 0, 1, 3, 1);          /* too late: -ENOENT */
	put_barrier(s, 1, 2, 2, 1);
	put_withdraw(s, 0, 2, 2, 1);          /* another session's */
	put_withdraw(s, 1, 2, 7, 1);          /* the count is not compared */
	put_barrier(s, 0, 2, 3, 1);           /* a new round, a new count */
	put_barrier_as(s, 0, 2, 3, 2, 1);     /* an unknown flag */
	put_barrier_as(s, 0, 2, 3, DSM_BARRIER_WITHDRAW | 2, 1);
	put_withdraw(s, 0, 2, 3, 0);          /* token 0 */
	put_barrier(s, 1, 2, 3, 0);
	put_hello(s, ONE_SIDED, DSM_PAGE_SIZE);
	put_withdraw(s, ONE_SIDED, 2, 3, 1);
}

/* One connection past its 256 locks, then its end with all of them
 * held: 256 marks in one region; a second death holding two more
 * overflows them. */
static void seed_lock_bound(struct seed *s)
{
	put_hello(s, 0, DSM_PAGE_SIZE);
	put_hello(s, 1, DSM_PAGE_SIZE);
	put_share(s, 0, 0, 1);
	put_share(s, 1, 1, 1);
	for (uint64_t i = 0; i <= 256; i++)
		put_lock(s, 0, DSM_MSG_LOCK, 1, 8 * i, 1);
	put_garbage(s, 0);
	put_hello(s, 0, DSM_PAGE_SIZE);
	put_share(s, 0, 1, 1);
	put_lock(s, 1, DSM_MSG_LOCK, 1, 0, 1);
	put_lock(s, 1, DSM_MSG_LOCK, 1, 8 * 300, 1);
	put_garbage(s, 1);
	put_hello(s, 1, DSM_PAGE_SIZE);
	put_lock(s, 0, DSM_MSG_LOCK, 1, 8 * 400, 1);
}

static size_t build_seeds(struct seed *seeds)
{
	struct seed *s = seeds;

	/* one client, every request */
	put_hello(s, 0, DSM_PAGE_SIZE);
	put_alloc(s, 0, 16 * DSM_PAGE_SIZE);
	put_rw(s, 0, DSM_MSG_WRITE, 1, DSM_PAGE_SIZE, 1);
	put_rw(s, 0, DSM_MSG_READ, 1, 0, 2);
	put_rw(s, 0, DSM_MSG_DISCARD, 1, 0, 16);
	put_rw(s, 0, DSM_MSG_DISCARD, 1, DSM_PAGE_SIZE, 16);
	put(s, 0, DSM_MSG_STATS, 0, NULL, 0);
	put(s, 0, DSM_MSG_PING, 0, NULL, 0);
	put_free(s, 0, 1);
	put_alloc(s, 0, 8 * DSM_PAGE_SIZE);
	put_rw(s, 0, DSM_MSG_READ, 2, DSM_PAGE_SIZE, 1);
	s++;
	/* two clients: one reaches for the other's region */
	put_hello(s, 0, DSM_PAGE_SIZE);
	put_hello(s, 1, DSM_PAGE_SIZE);
	put_alloc(s, 0, 4 * DSM_PAGE_SIZE);
	put_rw(s, 1, DSM_MSG_WRITE, 1, 0, 1);
	put_rw(s, 1, DSM_MSG_READ, 1, 0, 1);
	put_free(s, 1, 1);
	put_alloc(s, 1, 4 * DSM_PAGE_SIZE);
	put_rw(s, 0, DSM_MSG_READ, 2, 4 * DSM_PAGE_SIZE, 1);
	put_rw(s, 0, DSM_MSG_READ, 1, 0, 4);
	s++;
	/* refusals that keep the connection */
	put_hello(s, 0, DSM_PAGE_SIZE);
	put_alloc(s, 0, 2 * FUZZ_CAPACITY);
	put_alloc(s, 0, 0);
	put_alloc(s, 0, FUZZ_CAPACITY);
	put_rw(s, 0, DSM_MSG_READ, 1, FUZZ_CAPACITY, 1);
	put_rw(s, 0, DSM_MSG_READ, 1, 0, 0);
	put(s, 0, 99, 0, NULL, 0);
	put(s, 0, DSM_MSG_PING, DSM_F_REPLY, NULL, 0);
	put_hello(s, 0, DSM_PAGE_SIZE);
	s++;
	/* refusals that close it, then a new connection */
	put_hello(s, 1, 8192);
	put_hello(s, 1, DSM_PAGE_SIZE);
	put(s, 0, DSM_MSG_PING, 0, NULL, 0);
	put_hello(s, 0, DSM_PAGE_SIZE);
	put_alloc(s, 0, DSM_PAGE_SIZE);
	s->buf[s->len++] = 0;
	memcpy(s->buf + s->len, "not a dsm header at all!", DSM_HDR_SIZE);
	s->len += DSM_HDR_SIZE;
	put_hello(s, 0, DSM_PAGE_SIZE);
	s++;
	/* the one-sided connection: regions registered and deregistered
	 * (the fifth registration fails), DISCARD zeroing a registered
	 * region, pages as messages refused */
	put_hello(s, ONE_SIDED, DSM_PAGE_SIZE);
	put_hello(s, 0, DSM_PAGE_SIZE);
	for (int i = 0; i < 6; i++)
		put_alloc(s, ONE_SIDED, DSM_PAGE_SIZE);
	put_rw(s, 0, DSM_MSG_WRITE, 1, 0, 1);
	put_rw(s, ONE_SIDED, DSM_MSG_DISCARD, 1, 0, 1);
	put_free(s, ONE_SIDED, 2);
	put_rw(s, ONE_SIDED, DSM_MSG_READ, 1, 0, 1);
	put_hello(s, ONE_SIDED, DSM_PAGE_SIZE);
	put_alloc(s, ONE_SIDED, 2 * DSM_PAGE_SIZE);
	put_rw(s, ONE_SIDED, DSM_MSG_WRITE, 7, 0, 1);
	s++;
	seed_locks(s++);
	seed_barriers(s++);
	seed_withdraw(s++);
	seed_lock_bound(s++);
	seed_move(s++);
	return s - seeds;
}

static int write_seeds(const char *dir, const struct seed *seeds, size_t n)
{
	char path[4096];

	mkdir(dir, 0777);
	for (size_t i = 0; i < n; i++) {
		FILE *f;

		snprintf(path, sizeof(path), "%s/seed-%zu", dir, i);
		f = fopen(path, "wb");
		if (!f || fwrite(seeds[i].buf, 1, seeds[i].len, f) !=
			      seeds[i].len || fclose(f)) {
			perror(path);
			return 1;
		}
	}
	return 0;
}

static int replay_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL;
	long len;
	int rc = 1;

	if (!f) {
		perror(path);
		return 1;
	}
	if (fseek(f, 0, SEEK_END) || (len = ftell(f)) < 0 ||
	    fseek(f, 0, SEEK_SET))
		goto out;
	buf = malloc(len ? len : 1);
	if (!buf || fread(buf, 1, len, f) != (size_t)len)
		goto out;
	LLVMFuzzerTestOneInput(buf, len);
	rc = 0;
out:
	if (rc)
		fprintf(stderr, "cannot read %s\n", path);
	free(buf);
	fclose(f);
	return rc;
}

int main(int argc, char **argv)
{
	static struct seed seeds[12];
	size_t n = build_seeds(seeds);
	int rc = 0;

	if (argc == 3 && !strcmp(argv[1], "--write-seeds"))
		return write_seeds(argv[2], seeds, n);
	for (size_t i = 0; i < n; i++) {
		LLVMFuzzerTestOneInput(seeds[i].buf, seeds[i].len);
		/* every prefix too: messages cut short anywhere */
		for (size_t cut = 0; cut < seeds[i].len; cut += 7)
			LLVMFuzzerTestOneInput(seeds[i].buf, cut);
	}
	for (int i = 1; i < argc; i++)
		rc |= replay_file(argv[i]);
	printf("fuzz_proto: replayed %zu seeds and %d files\n", n, argc - 1);
	return rc;
}
#endif /* DSM_LIBFUZZER */
