/*
 * handler.c - see handler.h (room: server protocol).
 *
 * Every request gets exactly one reply, in order, except on shared
 * regions (shared.c, lock.c) and barriers (barrier.c): an ACQUIRE's, a
 * LOCK's and a BARRIER's reply may come later, through the outbox.
 * Errors are split by
 * what they say about the stream: a header we cannot trust (bad magic,
 * version or size) or a failed handshake closes the connection, because
 * nothing after it can be framed or served; anything else (bad body,
 * someone else's region, a range outside the region) is answered with
 * -errno and the connection goes on.
 */
#include "handler.h"

#include <errno.h>
#include <string.h>

#include "barrier.h"
#include "lock.h"
#include "log.h"
#include "shared.h"
#include "util.h"

/* How long a holder may take to acknowledge an INVALIDATE or RECALL
 * before it is closed (--inval-timeout-ms): a few round trips and a
 * write-back of 256 pages take milliseconds; seconds leave room for a
 * loaded machine without holding a writer up for long. */
#define INVAL_TIMEOUT_MS_DEFAULT 3000

int handler_init(struct handler *h, uint64_t capacity, enum pool_pages pages,
		 uint32_t server_id, char *why, size_t whylen)
{
	int err;

	memset(h, 0, sizeof(*h));
	err = pool_init(&h->pool, capacity, pages, why, whylen);
	if (err)
		return err;
	err = region_table_init(&h->regions);
	if (err) {
		pool_destroy(&h->pool);
		return err;
	}
	h->server_id = server_id;
	h->start_ns = dsm_now_ns();
	h->inval_timeout_ms = INVAL_TIMEOUT_MS_DEFAULT;
	h->next_inval_id = 1;
	return 0;
}

void handler_destroy(struct handler *h)
{
	region_table_destroy(&h->regions);
	pool_destroy(&h->pool);
}

void handler_session_init(struct handler_session *s, struct handler *h)
{
	memset(s, 0, sizeof(*s));
	s->h = h;
	s->next = h->all;
	if (h->all)
		h->all->prev = s;
	h->all = s;
	h->sessions++;
}

void handler_session_hooks(struct handler_session *s,
			   const struct region_hooks *hooks, void *ctx)
{
	s->hooks = hooks;
	s->hooks_ctx = ctx;
}

/* The region's one-sided access ends before its extent returns to the
 * pool: a stale rkey must never reach the next owner's bytes. */
static void free_region(struct handler_session *s, struct region *rg)
{
	if (rg->remote)
		s->hooks->removed(s->hooks_ctx, rg->remote);
	rg->remote = NULL;
	pool_free(&s->h->pool, rg->pool_off, rg->size);
	region_del(&s->h->regions, rg);
}

/* Its waits go before its holdings, unanswered: nothing is granted to a
 * session that is gone. */
void handler_session_end(struct handler_session *s)
{
	barrier_session_end(s);
	lock_session_end(s);
	shared_session_end(s);
	while (s->regions.head)
		free_region(s, s->regions.head);
	if (s->prev)
		s->prev->next = s->next;
	else
		s->h->all = s->next;
	if (s->next)
		s->next->prev = s->prev;
	s->h->sessions--;
}

void handler_stats(const struct handler *h, struct dsm_server_stats *st)
{
	memset(st, 0, sizeof(*st));
	st->capacity = h->pool.capacity;
	st->used = h->pool.used;
	st->regions = h->regions.count;
	st->clients = h->sessions;
	st->reads = h->reads;
	st->writes = h->writes;
	st->pages_read = h->pages_read;
	st->pages_written = h->pages_written;
	st->bytes_in = h->bytes_in;
	st->bytes_out = h->bytes_out;
	st->errors = h->errors;
	st->conn_refused = h->conn_refused;
	st->uptime_ms = (dsm_now_ns() - h->start_ns) / 1000000;
}

static void set_body(struct reply *r, const uint8_t *data, uint32_t len)
{
	r->data = data;
	r->hdr.len = len;
}

static int do_hello(struct handler_session *s, const struct dsm_hdr *q,
		    const uint8_t *body, struct reply *r)
{
	struct handler *h = s->h;
	struct dsm_hello_reply a = { 0 };
	struct dsm_hello m;

	if (s->hello_done)
		return -EPROTO;
	/* Until the handshake succeeds the connection can do nothing else,
	 * so every way of failing it ends the connection. */
	r->close = true;
	if (dsm_hello_decode(body, q->len, &m) < 0)
		return -EINVAL;
	if (m.min_version > DSM_PROTO_VERSION ||
	    m.max_version < DSM_PROTO_VERSION) {
		dsm_info("refused a client that speaks protocols %u to %u: "
			 "this server speaks %u", m.min_version,
			 m.max_version, DSM_PROTO_VERSION);
		return -EPROTONOSUPPORT;
	}
	if (m.page_size != DSM_PAGE_SIZE)
		return -EINVAL;
	r->close = false;
	s->hello_done = true;
	s->authed = !h->key;
	if (h->key) {
		a.flags = DSM_HELLO_AUTH;
		s->client_nonce = m.nonce;
		dsm_auth_random(s->server_nonce, sizeof(s->server_nonce));
		memcpy(a.server_nonce, s->server_nonce, sizeof(a.server_nonce));
	}
	if (h->draining)
		a.flags |= DSM_HELLO_DRAINING;
	if (s->hooks)
		a.flags |= DSM_HELLO_RDMA;

	a.version = DSM_PROTO_VERSION;
	a.page_size = DSM_PAGE_SIZE;
	a.server_id = h->server_id;
	a.max_batch_pages = DSM_MAX_BATCH_PAGES;
	a.capacity = h->pool.capacity;
	a.free = pool_free_bytes(&h->pool);
	dsm_hello_reply_encode(&a, r->body);
	set_body(r, r->body, DSM_HELLO_REPLY_SIZE);
	return 0;
}

/* The client's proof that it knows the secret; ours goes back in the
 * reply.  Any failure ends the connection. */
static int do_auth(struct handler_session *s, const struct dsm_hdr *q,
		   const uint8_t *body, struct reply *r)
{
	struct handler *h = s->h;
	struct dsm_auth_msg m, a;
	uint8_t want[DSM_AUTH_MAC_SIZE];

	r->close = true;
	if (s->authed)
		return -EPROTO; /* no secret here, or a second AUTH */
	if (dsm_auth_msg_decode(body, q->len, &m) < 0)
		return -EINVAL;
	dsm_auth_mac(h->key, 'c', s->server_nonce, s->client_nonce,
		     h->server_id, want);
	if (dsm_auth_verify(m.mac, want)) {
		h->auth_refused++;
		dsm_info("refused a connection that does not know the "
			 "cluster secret");
		return -EACCES;
	}
	r->close = false;
	s->authed = true;
	dsm_auth_mac(h->key, 's', s->server_nonce, s->client_nonce,
		     h->server_id, a.mac);
	dsm_auth_msg_encode(&a, r->body);
	set_body(r, r->body, DSM_AUTH_MSG_SIZE);
	return 0;
}

/* Other connections that gave the same lease id.  A walk over every
 * session, once per LEASE (once per connection), bounded by
 * --max-connections. */
static uint64_t sessions_of(const struct handler_session *s, uint64_t id)
{
	uint64_t n = 0;

	for (const struct handler_session *o = s->h->all; o; o = o->next)
		n += o != s && o->client_id == id;
	return n;
}

/*
 * The client's lease, which the server's membership watches.  One
 * client has one connection per server; more under one id means a
 * client leaking connections, and each would hold its own regions, so
 * past the limit the LEASE is refused and the connection closed.  A
 * client that sends no LEASE is bounded by --max-connections alone.
 */
static int do_lease(struct handler_session *s, const struct dsm_hdr *q,
		    const uint8_t *body, struct reply *r)
{
	uint64_t most = s->h->limits.sessions_per_client;
	struct dsm_lease m;

	if (dsm_lease_decode(body, q->len, &m) < 0)
		return -EINVAL;
	if (most && sessions_of(s, m.client_id) >= most) {
		s->h->over_limit++;
		dsm_warn("client %llu already has %llu connections here, the "
			 "most --max-client-sessions allows: closing this one",
			 (unsigned long long)m.client_id,
			 (unsigned long long)most);
		r->close = true;
		return -EUSERS;
	}
	s->client_id = m.client_id;
	s->leases++;
	return 0;
}

/* rg's extent registered for this one-sided session's peer alone; *reg
 * is what the hooks hand back.  The peer's writes bypass
 * pool_note_write, so the whole extent counts as written: whatever
 * zeroes it later must not skip any of it.  0 or the hook's error (it
 * said why). */
static int register_extent(struct handler_session *s, struct region *rg,
			   void **reg, struct dsm_alloc_reply *a)
{
	int err = s->hooks->added(s->hooks_ctx,
				  pool_at(&s->h->pool, rg->pool_off), rg->size,
				  reg, &a->addr, &a->rkey);

	if (!err)
		pool_note_write(&s->h->pool, rg->pool_off, rg->size);
	return err;
}

/* A one-sided session's new region; a failure frees it. */
static int expose(struct handler_session *s, struct region *rg,
		  struct dsm_alloc_reply *a)
{
	int err = register_extent(s, rg, &rg->remote, a);

	if (err)
		free_region(s, rg);
	return err;
}

static int do_alloc(struct handler_session *s, const struct dsm_hdr *q,
		    const uint8_t *body, struct reply *r)
{
	struct handler *h = s->h;
	struct dsm_alloc_reply a;
	struct dsm_alloc_req m;
	struct region *rg;
	uint64_t off;
	int err;

	if (dsm_alloc_req_decode(body, q->len, &m) < 0)
		return -EINVAL;
	/* Busy, not full: the client places the region elsewhere. */
	if (h->draining)
		return -EBUSY;
	/* A quota of this connection's, not a full pool: the client says
	 * so rather than "out of memory". */
	/* shared regions held count too (shared.c checks the same sum) */
	if (h->limits.regions_per_session &&
	    s->regions.count + s->nholds >= h->limits.regions_per_session) {
		h->over_limit++;
		return -EDQUOT;
	}
	err = pool_alloc(&h->pool, m.size, &off);
	if (err == -ENOSPC) {
		char want[32], have[32];

		dsm_warn("ALLOC of %s refused: %s free, no free run that large",
			 dsm_fmt_bytes(m.size, want, sizeof(want)),
			 dsm_fmt_bytes(pool_free_bytes(&h->pool), have,
				       sizeof(have)));
	}
	if (err)
		return err;
	rg = region_add(&h->regions, &s->regions, off, m.size);
	if (!rg) {
		pool_free(&h->pool, off, m.size);
		return -ENOMEM;
	}
	a = (struct dsm_alloc_reply){ .region_id = rg->id,
				      .pool_off = rg->pool_off,
				      .size = rg->size };
	if (s->hooks && (err = expose(s, rg, &a)) < 0)
		return err;
	dsm_alloc_reply_encode(&a, r->body);
	set_body(r, r->body, DSM_ALLOC_REPLY_SIZE);
	return 0;
}

static int do_free(struct handler_session *s, const struct dsm_hdr *q,
		   const uint8_t *body)
{
	struct dsm_free_req m;
	struct region *rg;

	if (dsm_free_req_decode(body, q->len, &m) < 0)
		return -EINVAL;
	rg = region_lookup(&s->h->regions, &s->regions, m.region_id);
	if (rg) {
		free_region(s, rg);
		return 0;
	}
	/* A shared region: the caller lets go of it, and the last to let
	 * go frees it. */
	rg = shared_held(s, m.region_id);
	if (!rg)
		return -ENOENT;
	shared_detach(s, rg);
	return 0;
}

/* Where a READ, WRITE or DISCARD lands: the run must lie wholly inside a region the
 * session owns.  Written without sums that could wrap: pool_off comes from
 * the peer and may be anything. */
static int rw_target(struct handler_session *s, const struct dsm_rw_req *m,
		     uint8_t **at, struct region **out)
{
	uint64_t bytes = (uint64_t)m->npages * DSM_PAGE_SIZE, rel;
	struct region *rg;

	rg = region_lookup(&s->h->regions, &s->regions, m->region_id);
	if (!rg)
		rg = shared_held(s, m->region_id);
	if (!rg)
		return -ENOENT;
	if (m->pool_off < rg->pool_off)
		return -ERANGE;
	rel = m->pool_off - rg->pool_off;
	if (rel > rg->size || bytes > rg->size - rel)
		return -ERANGE;
	*at = pool_at(&s->h->pool, m->pool_off);
	*out = rg;
	return 0;
}

static int do_read(struct handler_session *s, const struct dsm_hdr *q,
		   const uint8_t *body, struct reply *r)
{
	struct dsm_rw_req m;
	struct region *rg;
	uint8_t *at;
	int err;

	if (dsm_rw_req_decode(DSM_MSG_READ, body, q->len, &m) < 0)
		return -EINVAL;
	err = rw_target(s, &m, &at, &rg);
	if (err)
		return err;
	set_body(r, at, m.npages * DSM_PAGE_SIZE);
	s->h->reads++;
	s->h->pages_read += m.npages;
	return 0;
}

static int do_write(struct handler_session *s, const struct dsm_hdr *q,
		    const uint8_t *body)
{
	struct dsm_rw_req m;
	struct region *rg;
	uint8_t *at;
	int err;

	if (dsm_rw_req_decode(DSM_MSG_WRITE, body, q->len, &m) < 0)
		return -EINVAL;
	err = rw_target(s, &m, &at, &rg);
	if (!err && rg->shared)
		err = shared_may_write(s, rg, (m.pool_off - rg->pool_off) /
					      DSM_PAGE_SIZE, m.npages);
	if (err)
		return err;
	pool_note_write(&s->h->pool, m.pool_off,
			(uint64_t)m.npages * DSM_PAGE_SIZE);
	memcpy(at, body + DSM_RW_REQ_SIZE, (size_t)m.npages * DSM_PAGE_SIZE);
	s->h->writes++;
	s->h->pages_written += m.npages;
	return 0;
}

/* Pages the client freed inside a region it keeps: back to the OS.  The
 * region's extent stays allocated, so its capacity is still reserved.
 * A registered region's pages are pinned: dropping them would leave the
 * NIC on the old pages and the CPU on new ones, so they are zeroed in
 * place and stay resident until the region is freed. */
static int do_discard(struct handler_session *s, const struct dsm_hdr *q,
		      const uint8_t *body)
{
	uint64_t bytes;
	struct dsm_rw_req m;
	struct region *rg;
	uint8_t *at;
	int err;

	if (dsm_rw_req_decode(DSM_MSG_DISCARD, body, q->len, &m) < 0)
		return -EINVAL;
	err = rw_target(s, &m, &at, &rg);
	if (err)
		return err;
	/* Other holders' copies would silently disagree with the pool. */
	if (rg->shared)
		return -EOPNOTSUPP;
	bytes = (uint64_t)m.npages * DSM_PAGE_SIZE;
	if (rg->remote)
		pool_zero(&s->h->pool, m.pool_off, bytes);
	else
		pool_drop(&s->h->pool, m.pool_off, bytes);
	s->h->pages_discarded += m.npages;
	return 0;
}

static int do_stats(struct handler_session *s, const struct dsm_hdr *q,
		    struct reply *r)
{
	struct dsm_server_stats st;

	if (q->len)
		return -EINVAL;
	handler_stats(s->h, &st);
	dsm_server_stats_encode(&st, r->body);
	set_body(r, r->body, DSM_SERVER_STATS_SIZE);
	return 0;
}

/* A shared region this one-sided session now holds: one registration
 * per holder, since each connection has its own protection domain.  A
 * failure lets go of the holding. */
static int expose_shared(struct handler_session *s, struct region *rg,
			 struct dsm_alloc_reply *a)
{
	void *reg;
	int err = register_extent(s, rg, &reg, a);

	if (err)
		shared_detach(s, rg);
	else
		shared_set_remote(s, rg, reg);
	return err;
}

/* SHARE_CREATE and SHARE_ATTACH, answered as ALLOC is. */
static int do_share(struct handler_session *s, const struct dsm_hdr *q,
		    const uint8_t *body, struct reply *r)
{
	struct dsm_alloc_reply a;
	struct dsm_share_req m;
	struct region *rg;
	int err;

	if (dsm_share_req_decode(q->type, body, q->len, &m) < 0)
		return -EINVAL;
	if (q->type == DSM_MSG_SHARE_CREATE && s->h->draining)
		return -EBUSY;
	err = q->type == DSM_MSG_SHARE_CREATE ? shared_create(s, &m, &rg) :
						 shared_attach(s, &m, &rg);
	if (err)
		return err;
	a = (struct dsm_alloc_reply){ .region_id = rg->id,
				      .pool_off = rg->pool_off,
				      .size = rg->size };
	if (s->hooks && (err = expose_shared(s, rg, &a)) < 0)
		return err;
	dsm_alloc_reply_encode(&a, r->body);
	set_body(r, r->body, DSM_ALLOC_REPLY_SIZE);
	return 0;
}

/* The reply goes through the outbox once the pages are granted. */
static int do_acquire(struct handler_session *s, const struct dsm_hdr *q,
		      const uint8_t *body, struct reply *r)
{
	struct dsm_acquire m;
	int err;

	if (dsm_acquire_decode(body, q->len, &m) < 0)
		return -EINVAL;
	err = shared_acquire(s, q->id, &m);
	if (!err)
		r->none = true;
	return err;
}

/* SHARE_MOVE: a seal is answered once every copy is gone. */
static int do_share_move(struct handler_session *s, const struct dsm_hdr *q,
			 const uint8_t *body, struct reply *r)
{
	struct dsm_share_move m;
	bool later;
	int err;

	if (dsm_share_move_decode(body, q->len, &m) < 0)
		return -EINVAL;
	err = shared_move(s, q->id, &m, &later);
	if (!err && later)
		r->none = true;
	return err;
}

static int do_share_promote(struct handler_session *s, const struct dsm_hdr *q,
			    const uint8_t *body)
{
	struct dsm_share_req m;

	if (dsm_share_req_decode(q->type, body, q->len, &m) < 0)
		return -EINVAL;
	return shared_promote(s, &m);
}

/* LOCK and UNLOCK of a word of a shared region (lock.c). */
static int do_lock(struct handler_session *s, const struct dsm_hdr *q,
		   const uint8_t *body, struct reply *r)
{
	struct dsm_lock_req m;
	int err;

	if (dsm_lock_req_decode(body, q->len, &m) < 0)
		return -EINVAL;
	if (q->type == DSM_MSG_UNLOCK)
		return m.flags ? -EINVAL : lock_unlock(s, &m);
	err = lock_request(s, q->id, &m);
	if (!err)
		r->none = true; /* the grant goes through the outbox */
	return err;
}

static int do_barrier(struct handler_session *s, const struct dsm_hdr *q,
		      const uint8_t *body, struct reply *r)
{
	struct dsm_barrier_req m;
	int err;

	if (dsm_barrier_req_decode(body, q->len, &m) < 0)
		return -EINVAL;
	if (m.flags & DSM_BARRIER_WITHDRAW)
		return barrier_withdraw(s, &m); /* its arrival answered first */
	err = barrier_arrive(s, q->id, &m);
	if (!err)
		r->none = true; /* answered through the outbox on release */
	return err;
}

/* An empty reply: the client completes every request it makes the same
 * way, and over RDMA a reply is how it gets its credit back. */
static int do_inval_ack(struct handler_session *s, const struct dsm_hdr *q,
			const uint8_t *body, struct reply *r)
{
	struct dsm_inval_ack m;

	if (dsm_inval_ack_decode(body, q->len, &m) < 0)
		return -EINVAL;
	shared_ack(s, m.inval_id);
	return 0;
}

static int dispatch(struct handler_session *s, const struct dsm_hdr *q,
		    const uint8_t *body, struct reply *r)
{
	if (!s->hello_done && (q->type != DSM_MSG_HELLO || q->flags)) {
		r->close = true;
		return -EPROTO;
	}
	/* A connection that has not proved it knows the secret can do
	 * nothing else: not read, not write, not even learn a stat. */
	if (s->hello_done && !s->authed && q->type != DSM_MSG_AUTH) {
		r->close = true;
		return -EACCES;
	}
	/* Replies and server messages only ever travel to a client. */
	if (q->flags)
		return -EINVAL;
	/* On a one-sided connection pages never travel as messages: a
	 * peer that sends them does not speak this connection's protocol. */
	if (s->hooks && (q->type == DSM_MSG_READ || q->type == DSM_MSG_WRITE)) {
		r->close = true;
		return -EPROTO;
	}
	switch (q->type) {
	case DSM_MSG_HELLO: return do_hello(s, q, body, r);
	case DSM_MSG_AUTH: return do_auth(s, q, body, r);
	case DSM_MSG_LEASE: return do_lease(s, q, body, r);
	case DSM_MSG_ALLOC: return do_alloc(s, q, body, r);
	case DSM_MSG_FREE: return do_free(s, q, body);
	case DSM_MSG_READ: return do_read(s, q, body, r);
	case DSM_MSG_WRITE: return do_write(s, q, body);
	case DSM_MSG_DISCARD: return do_discard(s, q, body);
	case DSM_MSG_STATS: return do_stats(s, q, r);
	case DSM_MSG_PING: return q->len ? -EINVAL : 0;
	case DSM_MSG_SHARE_CREATE:
	case DSM_MSG_SHARE_ATTACH: return do_share(s, q, body, r);
	case DSM_MSG_ACQUIRE: return do_acquire(s, q, body, r);
	case DSM_MSG_INVAL_ACK: return do_inval_ack(s, q, body, r);
	case DSM_MSG_LOCK:
	case DSM_MSG_UNLOCK: return do_lock(s, q, body, r);
	case DSM_MSG_BARRIER: return do_barrier(s, q, body, r);
	case DSM_MSG_SHARE_MOVE: return do_share_move(s, q, body, r);
	case DSM_MSG_SHARE_PROMOTE: return do_share_promote(s, q, body);
	}
	return -EOPNOTSUPP;
}

static void reply_init(struct reply *r, const struct dsm_hdr *q)
{
	dsm_hdr_init(&r->hdr, q->type, DSM_F_REPLY, 0, q->id);
	r->data = NULL;
	r->close = false;
	r->none = false;
}

const uint64_t handler_time_bounds_ns[HANDLER_TIME_BUCKETS] = {
	1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000,
	1000000, 2500000, 5000000, 10000000, 25000000, 50000000, 100000000,
};

unsigned handler_type_slot(uint8_t type)
{
	return type >= 1 && type < HANDLER_TYPE_SLOTS ? type : 0;
}

static unsigned status_slot(int status)
{
	if (status == 0)
		return 0;
	if (status < 0 && -status < HANDLER_STATUS_OTHER)
		return -status;
	return HANDLER_STATUS_OTHER;
}

void handler_note_time(struct handler *h, unsigned slot, uint64_t ns)
{
	struct handler_times *t = &h->times[slot < HANDLER_TYPE_SLOTS ? slot : 0];
	unsigned i = 0;

	while (i < HANDLER_TIME_BUCKETS && ns > handler_time_bounds_ns[i])
		i++;
	t->bucket[i]++;
	t->sum_ns += ns;
	t->count++;
}

/* slot: the request's type slot (handler_type_slot), 0 for a header that
 * could not be decoded, whatever its type byte said. */
static void finish(struct handler *h, struct reply *r, unsigned slot,
		   int status, size_t consumed)
{
	r->slot = slot;
	h->requests_by[slot][status_slot(status)]++;
	if (status) {
		r->hdr.status = status;
		set_body(r, NULL, 0);
		r->none = false; /* an error is always answered, at once */
		h->errors++;
	}
	h->requests++;
	h->bytes_in += consumed;
	if (!r->none)
		h->bytes_out += DSM_HDR_SIZE + r->hdr.len;
}

size_t handler_next(struct handler_session *s, const uint8_t *buf, size_t len,
		    struct reply *r, size_t *need)
{
	struct dsm_hdr q;
	int err;

	*need = DSM_HDR_SIZE;
	if (len < DSM_HDR_SIZE)
		return 0;
	err = dsm_hdr_decode(buf, &q);
	if (err == -EPROTONOSUPPORT && q.magic == DSM_PROTO_MAGIC)
		dsm_info("refused a client that speaks protocol %u: this "
			 "server speaks %u", q.version, DSM_PROTO_VERSION);
	else if (err)
		dsm_debug("bad header (%s), closing", strerror(-err));
	if (err) {
		reply_init(r, &q);
		r->close = true;
		finish(s->h, r, 0, err, DSM_HDR_SIZE);
		return DSM_HDR_SIZE;
	}
	/* Checked on the header alone: the body is never waited for. */
	if (!s->authed && q.len > HANDLER_HANDSHAKE_BODY_MAX) {
		dsm_debug("%s of %u bytes before the handshake completed, "
			  "closing", dsm_msg_name(q.type), q.len);
		s->h->conn_refused++;
		reply_init(r, &q);
		r->close = true;
		finish(s->h, r, handler_type_slot(q.type), -EMSGSIZE,
		       DSM_HDR_SIZE);
		return DSM_HDR_SIZE;
	}
	*need = DSM_HDR_SIZE + (size_t)q.len;
	if (len < *need)
		return 0;
	reply_init(r, &q);
	err = dispatch(s, &q, buf + DSM_HDR_SIZE, r);
	if (err)
		dsm_debug("%s id %llu: %s", dsm_msg_name(q.type),
			  (unsigned long long)q.id, strerror(-err));
	finish(s->h, r, handler_type_slot(q.type), err, *need);
	return *need;
}

void handler_emit(struct handler *h, struct handler_session *to,
		  const struct reply *r)
{
	h->bytes_out += DSM_HDR_SIZE + r->hdr.len;
	if (h->out)
		h->out->send(h->out_ctx, to, r);
}

void handler_tick(struct handler *h)
{
	shared_tick(h, dsm_now_ns());
}

void handler_draining(struct reply *r, uint64_t id, bool on)
{
	struct dsm_draining d = { .on = on };

	dsm_hdr_init(&r->hdr, DSM_MSG_DRAINING, DSM_F_SERVER, 0, id);
	dsm_draining_encode(&d, r->body);
	set_body(r, r->body, DSM_DRAINING_SIZE);
	r->close = false;
	r->none = false;
}

void handler_goodbye(struct reply *r, uint64_t id, int32_t reason)
{
	struct dsm_goodbye g = { .reason = reason };

	dsm_hdr_init(&r->hdr, DSM_MSG_GOODBYE, DSM_F_SERVER, 0, id);
	dsm_goodbye_encode(&g, r->body);
	set_body(r, r->body, DSM_GOODBYE_SIZE);
	r->close = true;
	r->none = false;
}
