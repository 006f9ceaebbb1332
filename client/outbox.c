/*
 * outbox.c - see outbox.h (room: fault engine).
 */
#include "outbox.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "fault.h"
#include "huge.h"
#include "log.h"
#include "migrate.h"
#include "stage.h"
#include "util.h"

static struct dsm_io *push(struct dsm_outbox *ob)
{
	if (ob->n == ob->cap) {
		uint32_t cap = ob->cap ? ob->cap * 2 : 16;
		struct dsm_io *io = realloc(ob->io, cap * sizeof(*io));

		if (!io)
			return NULL;
		ob->io = io;
		ob->cap = cap;
	}
	return &ob->io[ob->n++];
}

/* Where page idx of e lives in copy h of e. */
static uint64_t copy_pool_off(const struct dsm_extent *e,
			      const struct dsm_home *h, uint64_t idx)
{
	return h->pool_off + (idx * DSM_PAGE_SIZE - e->off);
}

int dsm_outbox_read(struct dsm_outbox *ob, const struct dsm_extent *e,
		    uint64_t idx, uint32_t n, dsm_done_fn done, void *arg)
{
	int c = dsm_extent_live_copy(e);
	/* no live copy: the primary's failure says why */
	struct dsm_home h = dsm_extent_copy(e, c < 0 ? 0 : c);
	struct dsm_io *io = push(ob);

	if (!io)
		return -ENOMEM;
	*io = (struct dsm_io){
		.type = DSM_MSG_READ, .server = h.server,
		.region_id = h.region_id, .pool_off = copy_pool_off(e, &h, idx),
		.npages = n, .done = done, .arg = arg,
	};
	return 0;
}

/* Nobody waits for a DISCARD: a page it names is never read from its
 * server again, so a failure costs the server memory, not data. */
static void discard_done(void *arg, int status, const uint8_t *payload,
			 uint32_t len)
{
	if (status)
		dsm_debug("DISCARD: %s", strerror(-status));
}

int dsm_outbox_discard(struct dsm_outbox *ob, const struct dsm_extent *e,
		       uint64_t idx, uint32_t n)
{
	for (uint32_t c = 0; c <= e->nrep; c++) {
		struct dsm_home h = dsm_extent_copy(e, c);
		struct dsm_rw_req m = { .region_id = h.region_id,
					.pool_off = copy_pool_off(e, &h, idx),
					.npages = n };
		struct dsm_io *io = push(ob);

		if (!io)
			return -ENOMEM;
		*io = (struct dsm_io){ .type = DSM_MSG_DISCARD,
				       .server = h.server,
				       .blen = DSM_RW_REQ_SIZE,
				       .done = discard_done };
		dsm_rw_req_encode(&m, io->body);
	}
	return 0;
}

static void wb_done(void *arg, int status, const uint8_t *payload,
		    uint32_t len);

/* Can page idx of r extend the last staged WRITE? */
static struct dsm_io *joinable(struct dsm_outbox *ob, struct dsm_region *r,
			       uint64_t idx, struct dsm_sync_wait *sync)
{
	struct dsm_io *io = ob->n ? &ob->io[ob->n - 1] : NULL;
	struct dsm_wb *wb;

	if (!io || io->type != DSM_MSG_WRITE || io->done != wb_done ||
	    io->npages >= DSM_MAX_BATCH_PAGES)
		return NULL;
	wb = io->arg;
	if (wb->r != r || wb->first + wb->n != idx || wb->sync != sync)
		return NULL;
	if (dsm_region_extent(r, idx) != dsm_region_extent(r, wb->first))
		return NULL;
	return io;
}

static struct dsm_io *new_write(struct dsm_outbox *ob, struct dsm_page *p,
				struct dsm_sync_wait *sync)
{
	struct dsm_region *r = p->region;
	uint64_t idx = p - r->pages;
	const struct dsm_extent *e = dsm_region_extent(r, idx);
	struct dsm_wb *wb = malloc(sizeof(*wb));
	struct dsm_io *io = wb ? push(ob) : NULL;

	if (!io) {
		free(wb);
		return NULL;
	}
	wb->r = r;
	wb->first = idx;
	wb->n = 0;
	wb->sync = sync;
	for (uint32_t c = 0; c <= e->nrep; c++)
		wb->srv[c] = dsm_extent_copy(e, c).server;
	r->refs++;
	if (sync)
		sync->pending++;
	*io = (struct dsm_io){
		.type = DSM_MSG_WRITE, .server = e->server,
		.region_id = e->region_id, .pool_off = dsm_extent_pool_off(e, idx),
		.pages = wb->page, .done = wb_done, .arg = wb, .nrep = e->nrep,
	};
	for (uint32_t c = 0; c < e->nrep; c++) {
		io->rep[c] = e->rep[c];
		io->rep[c].pool_off = copy_pool_off(e, &e->rep[c], idx);
	}
	return io;
}

uint8_t *dsm_outbox_write_page(struct dsm_outbox *ob, struct dsm_page *p,
			       struct dsm_sync_wait *sync)
{
	struct dsm_region *r = p->region;
	uint64_t idx = p - r->pages;
	uint8_t *slot = dsm_stage_get(&dsm_eng.stage);
	struct dsm_io *io;
	struct dsm_wb *wb;

	if (!slot)
		return NULL;
	/* a page of an extent in the middle of a move waits for the copy:
	 * sent before it, the copy would overwrite it */
	ob = dsm_move_outbox(dsm_region_extent(r, idx), ob);
	io = joinable(ob, r, idx, sync);
	if (!io)
		io = new_write(ob, p, sync);
	if (!io) {
		dsm_stage_put(&dsm_eng.stage, &slot, 1);
		return NULL;
	}
	wb = io->arg;
	wb->page[wb->n++] = slot;
	io->npages++;
	return slot;
}

static bool run_bit(const uint64_t *bits, uint64_t i)
{
	return bits && (bits[i / 64] >> (i % 64) & 1);
}

uint64_t dsm_server_copy_lost(struct dsm_region *r, uint64_t first,
			      uint64_t n, const uint64_t *kept)
{
	uint64_t lost = 0;

	/* a page held back by a stream is data too: map it, clean, so that
	 * it turns dirty below */
	dsm_streams_unpark(r, first, first + n);
	if (r->huge)
		dsm_huge_unpark(r, first, first + n);
	for (uint64_t i = first; i < first + n; i++) {
		struct dsm_page *p = &r->pages[i];

		if (p->state == DSM_PG_CLEAN) {
			p->state = DSM_PG_DIRTY;
		} else if (p->state == DSM_PG_INVALID &&
			   (p->flags & DSM_PGF_ON_SERVER) &&
			   !run_bit(kept, i - first)) {
			p->state = DSM_PG_LOST;
			/* a group on a huge page is poisoned whole when
			 * next touched (huge.c) */
			if (!r->huge)
				dsm_uffd_poison(&dsm_eng.uffd, dsm_page_addr(p),
						DSM_PAGE_SIZE);
			lost++;
		}
	}
	return lost;
}

/* Whether every copy of wb went to a server that is lost now: none
 * refused it while up. */
static bool wb_all_lost(const struct dsm_wb *wb, uint32_t ncopies)
{
	for (uint32_t c = 0; c < ncopies; c++)
		if (!dsm_eng.servers[wb->srv[c]].lost)
			return false;
	return true;
}

/* Whether some copy of e is no longer where wb sent it: a move took it
 * off its server. */
static bool wb_copy_moved(const struct dsm_wb *wb, const struct dsm_extent *e)
{
	for (uint32_t c = 0; c <= e->nrep; c++)
		if (dsm_extent_copy(e, c).server != wb->srv[c])
			return true;
	return false;
}

/*
 * The pages of a failed write-back that a move has taken off its lost
 * server: another home holds them by now, and the move decides what is
 * lost.  The server died before answering this write, so it never
 * answered the move's READ, which went after it on the wire (the READ of
 * a copy made again from another copy went to that copy's server, which
 * this write-back failed on too, lost as well): the move fails too, and
 * its stripe_lost (migrate.c) spares the pages whose newest data it
 * holds, and poisons the others - whichever of the two failures the
 * transport completes first (it completes the requests of a lost
 * connection in slot order, not wire order).  Poisoned here, a page whose
 * newer write-back was held in the move, and went to the new home, would
 * be lost for nothing.  If a server that is up refused the write, the
 * move's READ, answered after it, copied the page without it: the new
 * home's copy is stale, and nothing is spared.
 */
static void wb_moved_away(const struct dsm_wb *wb, uint64_t *moved)
{
	const struct dsm_extent *e = dsm_region_extent(wb->r, wb->first);

	memset(moved, 0, DSM_RUN_WORDS * sizeof(*moved));
	if (!wb_all_lost(wb, e->nrep + 1))
		return;
	for (uint32_t i = 0; i < wb->n; i++)
		if (wb_copy_moved(wb, dsm_region_extent(wb->r, wb->first + i)))
			moved[i / 64] |= 1ULL << (i % 64);
}

/* A write-back the server did not confirm: its pages' server copy. */
static void wb_failed(struct dsm_wb *wb, int status)
{
	struct dsm_region *r = wb->r;
	uint64_t moved[DSM_RUN_WORDS], lost;
	/* a lost server was logged once, and fails every write-back in
	 * flight to it: hundreds of lines would hide that one */
	enum dsm_log_level level = dsm_eng.servers[wb->srv[0]].lost ?
				   DSM_LOG_DEBUG : DSM_LOG_ERROR;

	wb_moved_away(wb, moved);
	lost = dsm_server_copy_lost(r, wb->first, wb->n, moved);
	dsm_log(level, "write-back of %u pages at %#llx failed: %s; %llu "
		"evicted pages lost (they raise SIGBUS when touched)", wb->n,
		(unsigned long long)(r->base + wb->first * DSM_PAGE_SIZE),
		strerror(-status), (unsigned long long)lost);
}

/*
 * Under the lock: some copies of wb took it and others did not.  The
 * data is safe on those that did; a copy that missed it on a server
 * that is still up is stale from now on and never read, and the mover
 * makes it again from a good copy.  A copy sent to a server now lost is
 * never read anyway - nor is it marked, since the extent's copy may have
 * been made again elsewhere meanwhile (migrate.c), from a copy that took
 * this write-back: judged by the server the extent names now, a
 * write-back to the dead server would mark the fresh copy stale.
 */
static void copies_missed(const struct dsm_wb *wb)
{
	struct dsm_extent *e = (struct dsm_extent *)dsm_region_extent(
		wb->r, wb->first);

	for (uint32_t c = 0; c <= e->nrep; c++) {
		if (!(wb->failed >> c & 1) || dsm_eng.servers[wb->srv[c]].lost)
			continue;
		e->stale |= 1u << c;
		dsm_err("server %s refused a write-back of %u pages at %#llx "
			"(%s): its copy of them is stale and no longer read",
			dsm_eng.servers[wb->srv[c]].addr, wb->n,
			(unsigned long long)(wb->r->base +
			wb->first * DSM_PAGE_SIZE), strerror(-wb->err));
	}
	dsm_migrate_kick();
}

/* Under the lock: what a finished write-back means for its pages, and
 * its staged pages and region given back. */
static void wb_settle(struct dsm_wb *wb, int status)
{
	if (status && !wb->r->dead)
		wb_failed(wb, status);
	else if (wb->failed && !wb->r->dead)
		copies_missed(wb);
	dsm_region_put(wb->r);
	dsm_stage_put(&dsm_eng.stage, wb->page, wb->n);
}

/* Without the lock, after wb_settle: wb freed, its dsm_sync told. */
static void wb_release(struct dsm_wb *wb, int status)
{
	struct dsm_sync_wait *sync = wb->sync;
	bool orphan;

	free(wb);
	if (!sync)
		return;
	pthread_mutex_lock(&sync->lock);
	if (status && !sync->err)
		sync->err = status;
	if (--sync->pending == 0)
		pthread_cond_broadcast(&sync->cond);
	orphan = !sync->pending && sync->abandoned;
	pthread_mutex_unlock(&sync->lock);
	if (orphan)
		free(sync);
}

static void wb_done(void *arg, int status, const uint8_t *payload,
		    uint32_t len)
{
	struct dsm_wb *wb = arg;

	pthread_mutex_lock(&dsm_eng.lock);
	wb_settle(wb, status);
	pthread_mutex_unlock(&dsm_eng.lock);
	wb_release(wb, status);
}

struct dsm_sync_wait *dsm_sync_wait_new(void)
{
	struct dsm_sync_wait *w = calloc(1, sizeof(*w));

	if (!w)
		return NULL;
	pthread_mutex_init(&w->lock, NULL);
	if (dsm_cond_init_monotonic(&w->cond)) {
		free(w);
		return NULL;
	}
	return w;
}

int dsm_sync_wait_end(struct dsm_sync_wait *w)
{
	uint64_t deadline = dsm_now_ns() + dsm_eng.reply_ns;
	int err;

	pthread_mutex_lock(&w->lock);
	while (w->pending && !dsm_cond_wait_until(&w->cond, &w->lock, deadline))
		;
	if (w->pending) {
		/* the write-backs still hold w: the last one frees it */
		w->abandoned = true;
		pthread_mutex_unlock(&w->lock);
		dsm_err("%u write-backs not answered within %llu ms: giving "
			"up waiting (they stay in flight)", w->pending,
			(unsigned long long)(dsm_eng.reply_ns / 1000000));
		return -ETIMEDOUT;
	}
	err = w->err;
	pthread_mutex_unlock(&w->lock);
	pthread_cond_destroy(&w->cond);
	free(w);
	return err;
}

/* One copy of a write-back answered: the write-back is done when all
 * are, and failed only if none took it. */
static void wb_copy_done(void *arg, int status, const uint8_t *payload,
			 uint32_t len)
{
	struct dsm_wb_copy *cp = arg;
	struct dsm_wb *wb = cp->wb;
	int result = 0;
	bool last;

	pthread_mutex_lock(&dsm_eng.lock);
	if (status) {
		wb->failed |= 1u << cp->c;
		if (!wb->err)
			wb->err = status;
	} else {
		wb->ok++;
		if (cp->c)
			dsm_eng.c.pages_replicated += wb->n;
	}
	last = --wb->left == 0;
	if (last) { /* settled under the same lock, not taken again */
		result = wb->ok ? 0 : wb->err;
		wb_settle(wb, result);
	}
	pthread_mutex_unlock(&dsm_eng.lock);
	if (last)
		wb_release(wb, result);
}

/* A write-back goes to every copy of its pages (the same staged pages):
 * the primary, then the replicas. */
static void submit_write(const struct dsm_io *io)
{
	struct dsm_wb *wb = io->arg;
	uint32_t n = 1 + io->nrep;

	wb->left = n;
	wb->ok = wb->failed = 0;
	wb->err = 0;
	for (uint32_t c = 0; c < n; c++) {
		struct dsm_home h = c ? io->rep[c - 1] : (struct dsm_home){
			io->server, io->region_id, io->pool_off };
		struct dsm_server *s = &dsm_eng.servers[h.server];
		int err;

		wb->copy[c] = (struct dsm_wb_copy){ wb, c };
		err = s->ops->write_pages(s->t, h.region_id, h.pool_off,
					  io->npages, io->pages, wb_copy_done,
					  &wb->copy[c]);
		if (err)
			wb_copy_done(&wb->copy[c], err, NULL, 0);
	}
}

static int submit(const struct dsm_io *io)
{
	struct dsm_server *s = &dsm_eng.servers[io->server];

	switch (io->type) {
	case DSM_MSG_READ:
		return s->ops->read_pages(s->t, io->region_id, io->pool_off,
					  io->npages, io->done, io->arg);
	case DSM_MSG_WRITE:
		if (io->done == wb_done) {
			submit_write(io);
			return 0;
		}
		return s->ops->write_pages(s->t, io->region_id, io->pool_off,
					   io->npages, io->pages, io->done,
					   io->arg);
	default:
		return s->ops->call(s->t, io->type, io->body, io->blen,
				    io->done, io->arg);
	}
}

int dsm_outbox_splice(struct dsm_outbox *dst, struct dsm_outbox *src)
{
	if (!src->n)
		return 0;
	if (dst->n + src->n > dst->cap) {
		uint32_t cap = dst->n + src->n;
		struct dsm_io *io = realloc(dst->io, cap * sizeof(*io));

		if (!io)
			return -ENOMEM;
		dst->io = io;
		dst->cap = cap;
	}
	memcpy(dst->io + dst->n, src->io, src->n * sizeof(*src->io));
	dst->n += src->n;
	src->n = 0;
	return 0;
}

struct dsm_io *dsm_outbox_push(struct dsm_outbox *ob)
{
	return push(ob);
}

void dsm_outbox_send(struct dsm_outbox *ob)
{
	for (uint32_t i = 0; i < ob->n; i++) {
		struct dsm_io *io = &ob->io[i];
		int err = submit(io);

		/* A refused request never reached the transport, so its
		 * completion runs here, with the reason. */
		if (err)
			io->done(io->arg, err, NULL, 0);
	}
	/* the transports may have held the requests back, to send each
	 * server's batch in one go */
	if (ob->n)
		for (uint32_t s = 0; s < dsm_eng.nservers; s++)
			if (dsm_eng.servers[s].t)
				dsm_eng.servers[s].ops->flush(
					dsm_eng.servers[s].t);
	ob->n = 0;
}

/* ---- control calls from application threads -------------------------- */

/* On the heap, shared by the caller and the completion: a caller that
 * gives up (abandoned) leaves it to the completion to free. */
struct call_wait {
	pthread_mutex_t lock;
	pthread_cond_t cond; /* CLOCK_MONOTONIC */
	bool done, abandoned;
	int status;
	void *reply;
	uint32_t cap, len;
	uint8_t **pages;     /* a WRITE's, from dsm_eng.stage: given back
	                      * when it completes */
	uint32_t npages;
};

/* Called without the engine lock, as completions are. */
static void call_wait_free(struct call_wait *w)
{
	if (w->npages) {
		pthread_mutex_lock(&dsm_eng.lock);
		dsm_stage_put(&dsm_eng.stage, w->pages, w->npages);
		pthread_mutex_unlock(&dsm_eng.lock);
	}
	free(w->pages);
	free(w->reply);
	free(w);
}

static void call_done(void *arg, int status, const uint8_t *payload,
		      uint32_t len)
{
	struct call_wait *w = arg;
	bool orphan;

	pthread_mutex_lock(&w->lock);
	orphan = w->abandoned;
	w->status = status;
	w->len = len;
	if (!orphan && !status && payload && w->reply)
		memcpy(w->reply, payload, len < w->cap ? len : w->cap);
	w->done = true;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
	if (orphan)
		call_wait_free(w);
}

/* Wait for w's answer for timeout_ns.  0 when it came; else -ETIMEDOUT,
 * and w belongs to the completion. */
static int call_wait_end(struct call_wait *w, uint64_t timeout_ns)
{
	uint64_t deadline = dsm_now_ns() + timeout_ns;

	pthread_mutex_lock(&w->lock);
	while (!w->done && !dsm_cond_wait_until(&w->cond, &w->lock, deadline))
		;
	if (w->done) {
		pthread_mutex_unlock(&w->lock);
		return 0;
	}
	w->abandoned = true;
	pthread_mutex_unlock(&w->lock);
	return -ETIMEDOUT;
}

int dsm_engine_call(uint32_t server, uint8_t type, const void *body,
		    uint32_t len, void *reply, uint32_t cap, uint32_t *rlen)
{
	int err = dsm_engine_call_ns(server, type, body, len, reply, cap,
				     rlen, dsm_eng.reply_ns);

	if (err == -ETIMEDOUT)
		dsm_err("memory server %s did not answer %s within %llu ms",
			dsm_eng.servers[server].addr, dsm_msg_name(type),
			(unsigned long long)(dsm_eng.reply_ns / 1000000));
	return err;
}

int dsm_engine_call_ns(uint32_t server, uint8_t type, const void *body,
		       uint32_t len, void *reply, uint32_t cap,
		       uint32_t *rlen, uint64_t timeout_ns)
{
	struct dsm_io io = { .type = type, .server = server, .blen = len };

	if (len > sizeof(io.body))
		return -EINVAL;
	if (len) /* STATS has no body: body may be NULL */
		memcpy(io.body, body, len);
	return dsm_engine_io(&io, reply, cap, rlen, timeout_ns);
}

int dsm_engine_io(const struct dsm_io *req, void *reply, uint32_t cap,
		  uint32_t *rlen, uint64_t timeout_ns)
{
	uint32_t npages = req->type == DSM_MSG_WRITE ? req->npages : 0;
	struct call_wait *w;
	struct dsm_io *io = NULL;
	int err = -ENOMEM;

	w = calloc(1, sizeof(*w));
	if (!w || (cap && !(w->reply = malloc(cap))) ||
	    (npages && !(w->pages = malloc(npages * sizeof(*w->pages)))) ||
	    dsm_cond_init_monotonic(&w->cond))
		goto out;
	pthread_mutex_init(&w->lock, NULL);
	w->cap = cap;
	if (npages) /* ours now: kept until the WRITE completes */
		memcpy(w->pages, req->pages, npages * sizeof(*w->pages));
	w->npages = npages;
	pthread_mutex_lock(&dsm_eng.lock);
	io = push(&dsm_eng.sendq);
	if (io) {
		*io = *req;
		io->pages = w->pages;
		io->done = call_done;
		io->arg = w;
	}
	pthread_mutex_unlock(&dsm_eng.lock);
	if (!io)
		goto out;
	dsm_engine_kick();
	if ((err = call_wait_end(w, timeout_ns)))
		return err; /* w is the completion's now */
	if (reply && w->reply)
		memcpy(reply, w->reply, w->len < cap ? w->len : cap);
	if (rlen)
		*rlen = w->len;
	err = w->status;
out:
	if (npages && !(w && w->npages)) { /* never handed over: back now */
		pthread_mutex_lock(&dsm_eng.lock);
		dsm_stage_put(&dsm_eng.stage, req->pages, npages);
		pthread_mutex_unlock(&dsm_eng.lock);
	}
	if (w)
		call_wait_free(w);
	return err;
}
