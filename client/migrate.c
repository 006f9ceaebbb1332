/*
 * migrate.c - moving copies of stripes off servers being drained, and
 * making the copies lost with a server again elsewhere (room: placement).
 *
 * Two reasons to move a copy of a stripe, one mechanism:
 *   - a drain: an operator drains a server (dsmctl drain); the server
 *     tells each client (DRAINING) and takes no new regions.  Every copy
 *     this process keeps there moves to another server, read from itself.
 *   - re-replication: with DSM_REPLICAS > 1, a copy on a server that was
 *     lost, or marked stale (its server refused a write-back while up,
 *     outbox.c), is made again on another server, read from a live, fresh
 *     copy of the same stripe.  So a second failure later finds every
 *     stripe with its copies again.  A stripe with one copy on a lost
 *     server is not re-homed: its data went with the server.
 * Either way the new home is a server that is up, not draining, and holds
 * no other copy of the stripe (placement.c, by free capacity), so a
 * stripe's copies stay on distinct servers.  A mover thread does it while
 * the program keeps running, then frees what the old homes held.  It runs
 * while a server drains, and with replicas once a server is lost
 * (on_server_lost kicks it) or a copy is stale.
 *
 * Moving copy c of one stripe, without ever losing a write:
 *
 *   1. Under the engine lock, copy c of the extent is pointed at its new
 *      home, the extent is marked moving (and copy c filling), and a READ
 *      of the whole stripe from the copy it is made from is queued.
 *      Requests to one server go on the wire in the order they were
 *      decided (outbox.h) and are answered in order, so every write-back
 *      decided before this moment is in what the READ returns.
 *   2. While the stripe moves, nothing is fetched from it (fault.c leaves a
 *      faulting thread blocked), and write-backs to it, which now address
 *      the new home as copy c (and the other copies as before), are held
 *      in the move: sent before the copy, they would be overwritten by it.
 *      The whole write-back is held, every copy of it, which keeps each
 *      copy's writes in decision order.  Pages stay usable locally.
 *   3. When the READ arrives, the copy is queued as a WRITE to the new home,
 *      the held write-backs after it, the mark comes off, and the threads
 *      blocked on the stripe are woken: their retry fetches from a live
 *      copy, queued after the copy if it is the new one, so it sees it.
 *   4. When every stripe of the pass is copied (the WRITEs acknowledged),
 *      neighbours that continue each other in every copy are merged, the
 *      parts no copy uses are freed on their servers, and the registry
 *      record of the region is written again.
 * A stripe moves one copy at a time; a pass moves at most one copy of
 * each, and a pass that copied anything is followed by another at once.
 *
 * If the READ fails while a copy of the stripe is still there - the
 * server read from is up (a local error), or it died but another copy is
 * live - the move is undone: copy c and its held write-backs go back to
 * the old home (lost or not), and the next pass tries again, from the
 * copy left.  If no copy is left (a stripe with one copy, or every other
 * copy lost), the move goes on without the copy (stripe_lost): copy c
 * stays at the new home, the held write-backs go there, and only the
 * pages whose newest data was on the lost servers alone are poisoned
 * (SIGBUS, as for any lost server).  What this process holds is kept: a
 * page whose write-back was held is not poisoned (its data is on its way
 * to the new home, and a fault there fetches it after it on the wire),
 * and resident clean pages, and pages a stream held back, become dirty so
 * that their data reaches the new home.  If the copy's WRITE fails (the
 * new home refused it or died) and another copy is live, copy c is marked
 * stale and made again on the next pass; with none, stripe_lost.
 *
 * The races, all on the engine thread unless said:
 *   - the server read from dies before the READ is sent: the READ fails at
 *     once, the server already marked lost: undo if another copy is live,
 *     else stripe_lost.
 *   - it dies with the READ in flight: the transport reports the loss
 *     before it fails the requests in flight (transport.h), so the READ's
 *     failure also finds the server lost: never an undo that would send
 *     the held write-backs to it as the only copy.
 *   - write-backs decided before the move and in flight when a server
 *     dies fail too, before or after the READ (a lost connection's
 *     requests fail in slot order, not wire order).  Their pages may now
 *     have another home, and the move decides for them, knowing what was
 *     held; the write-back's own failure leaves them alone (wb_moved_away,
 *     outbox.c).  Otherwise it would poison a page whose newer data was
 *     held and sent to the new home.
 *   - a write-back sent to copy c's old, lost home before the move fails
 *     after copy c was made again elsewhere: it is judged by the server it
 *     was sent to (dsm_wb.srv), not the one the extent names now, or it
 *     would mark the fresh copy stale (copies_missed, outbox.c).
 *   - a READ of another stripe's page that fails on the lost server is
 *     sent to another copy (fetch_again, fault.c), never to one being
 *     filled (dsm_extent_live_copy skips it), which may not hold the data
 *     yet.  The mover (its own thread) may start a move between two such
 *     failures; the engine lock orders them.
 *   - the copy read refused a write-back decided before the READ (a stale
 *     mark, set when that write-back settled): the copy lacks it, and the
 *     move is undone and tried again from another copy.  If the refusal
 *     settles only after the READ's reply (another copy of the write-back
 *     answered late), the new copy lacks it unmarked: the one window left,
 *     and only for a server that refuses a write while up.
 *   - the server read from dies after the READ's reply: the copy is
 *     taken, nothing is lost.
 *   - the READ failed on a live server (undone), and the server dies
 *     later: the held write-backs went to it; as for any lost server,
 *     what no other copy took is lost.
 *   - the new home is lost while its copy is in flight: copy_done marks
 *     it stale (another copy is live) and the next pass makes it again.
 *
 * Tests can widen step 2 with DSM_TEST_MOVE_STALL_MS: the mover then
 * waits that long between marking a stripe moving and queueing its READ,
 * as if the old server were slow to answer, so that write-backs and faults
 * meet moving stripes often (tests/test_drain.sh).  Nothing else changes.
 *
 * One mover thread per process, idle until there is something to move; it
 * never touches a transport (the engine thread sends what it queues).
 * Lock order: dsm_eng.lock, then mv.lock.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cluster.h"
#include "engine.h"
#include "fault.h"
#include "log.h"
#include "migrate.h"
#include "outbox.h"
#include "placement.h"
#include "region.h"
#include "shared.h"
#include "shim.h"
#include "stage.h"
#include "util.h"

/* Stripes being copied at once.  More drains faster but queues more
 * megabyte READs ahead of the faults on the old server: bench/drain.sh
 * measured 1/2/4/8 at 4.1/2.6/2.3/2.2 s per GiB with the clients' access
 * p99 at 3.8/5.3/8.9/17x its level before the drain. */
#define MOVES_IN_FLIGHT 2
#define RETRY_MS 2000      /* look again this often while a server drains */

struct dsm_move {
	struct dsm_region *r;
	uint32_t ext;             /* its extent: one stripe, index == stripe */
	uint64_t first;           /* first page */
	uint32_t n;               /* pages */
	uint32_t c;               /* the copy of the stripe that moves */
	struct dsm_home from;     /* where copy c was */
	uint8_t from_stale;       /* copy c's stale bit there */
	uint32_t src;             /* the copy read: c itself (a drain), or
	                           * another (c is made again) */
	struct dsm_home read;     /* where the READ goes: copy src */
	struct dsm_outbox held;   /* write-backs decided during the copy */
	uint8_t *page[DSM_MAX_BATCH_PAGES]; /* the copy, staged (stage.h) */
	uint32_t staged;          /* pages of page[] taken */
};

/* The mover thread and its moves in flight; guarded by lock.  Owned by the
 * library between dsm_migrate_start() and dsm_migrate_stop(). */
static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	pthread_t thread;
	bool started, quit, kicked;
	unsigned inflight;        /* moves whose copy is not acknowledged */
	unsigned stall_ms;        /* DSM_TEST_MOVE_STALL_MS; set at start */
	uint64_t warned_ns;       /* mover thread only: last "no room" */
} mv = { .lock = PTHREAD_MUTEX_INITIALIZER,
	 .cond = PTHREAD_COND_INITIALIZER };

/* ---- which copies move (under dsm_eng.lock) -------------------------- */

static bool copy_lost(const struct dsm_extent *e, uint32_t c)
{
	return dsm_eng.servers[dsm_extent_copy(e, c).server].lost;
}

/* Must copy c of e go elsewhere?  Off a draining server, always; off a
 * lost server, or stale, when e has other copies to make it from (the
 * one copy of a stripe on a lost server was all its data: gone). */
static bool copy_must_move(const struct dsm_extent *e, uint32_t c)
{
	const struct dsm_server *s =
		&dsm_eng.servers[dsm_extent_copy(e, c).server];

	if (s->draining)
		return true;
	return e->nrep && (s->lost || (e->stale >> c & 1));
}

/* A copy of e other than c that can be read (live, fresh); -1 if none. */
static int other_live_copy(const struct dsm_extent *e, uint32_t c)
{
	for (uint32_t d = 0; d <= e->nrep; d++)
		if (d != c && !((e->stale | e->filling) >> d & 1) &&
		    !copy_lost(e, d))
			return d;
	return -1;
}

/* The copy to read copy c's data from: c itself while it is live and
 * fresh (a drain), else another that is; -1 if there is none.  A stripe
 * with one copy reads it even off a lost server: the READ fails, and the
 * move keeps what this process holds (stripe_lost). */
static int move_source(const struct dsm_extent *e, uint32_t c)
{
	if (!(e->stale >> c & 1) && !copy_lost(e, c))
		return c;
	return e->nrep ? other_live_copy(e, c) : (int)c;
}

/* The copy of e that moves next: the first that must and can; -1. */
static int copy_to_move(const struct dsm_extent *e)
{
	for (uint32_t c = 0; c <= e->nrep; c++)
		if (copy_must_move(e, c) && move_source(e, c) >= 0)
			return c;
	return -1;
}

/* Stripes with fewer fresh copies on live servers than they keep. */
static bool degraded(const struct dsm_extent *e)
{
	for (uint32_t c = 0; c <= e->nrep; c++)
		if (((e->stale | e->filling) >> c & 1) || copy_lost(e, c))
			return true;
	return false;
}

uint64_t dsm_degraded_stripes(void)
{
	uint64_t n = 0;

	for (uint32_t i = 0; i < dsm_eng.nregions; i++) {
		const struct dsm_placement *pl = &dsm_eng.regions[i]->place;

		for (uint32_t j = 0; j < pl->n; j++)
			if (degraded(&pl->ext[j]))
				n += dsm_stripes(pl->ext[j].len);
	}
	return n;
}

/* ---- one stripe (under dsm_eng.lock) --------------------------------- */

struct dsm_outbox *dsm_move_outbox(const struct dsm_extent *e,
				   struct dsm_outbox *ob)
{
	return e && e->move ? &e->move->held : ob;
}

static void move_done(struct dsm_move *m)
{
	dsm_stage_put(&dsm_eng.stage, m->page, m->staged);
	dsm_region_put(m->r);
	free(m->held.io);
	free(m);
	pthread_mutex_lock(&mv.lock);
	mv.inflight--;
	pthread_cond_broadcast(&mv.cond);
	pthread_mutex_unlock(&mv.lock);
}

/* The pages of m whose newest data is in a write-back held by the move:
 * bit i for page m->first + i.  Every held request is a write-back of
 * pages of this stripe (dsm_outbox_write_page). */
static uint32_t held_pages(const struct dsm_move *m, uint64_t *kept)
{
	uint32_t n = 0;

	memset(kept, 0, DSM_RUN_WORDS * sizeof(*kept));
	for (uint32_t i = 0; i < m->held.n; i++) {
		const struct dsm_wb *wb = m->held.io[i].arg;

		for (uint32_t j = 0; j < wb->n; j++) {
			uint64_t k = wb->first + j - m->first;

			if (k < m->n && !(kept[k / 64] >> (k % 64) & 1)) {
				kept[k / 64] |= 1ULL << (k % 64);
				n++;
			}
		}
	}
	return n;
}

/*
 * The stripe's data is lost with the server the move read it from, and
 * no other copy is left (or, from copy_done, the new home lost the copy
 * and no other copy is left).  What this process holds is not: resident
 * pages become dirty, so their data reaches the new home, and pages whose
 * newest data is in a write-back held by the move stay as they are - the
 * held write-backs go to the new home right after (read_arrived), and a
 * fault there fetches them back after them on the wire.  Only the pages
 * whose newest data was on the lost server alone are poisoned.
 */
static void stripe_lost(struct dsm_move *m, int err)
{
	struct dsm_region *r = m->r;
	uint64_t kept[DSM_RUN_WORDS], lost;
	uint32_t held = held_pages(m, kept);

	lost = dsm_server_copy_lost(r, m->first, m->n, kept);
	dsm_err("moving %u pages at %#llx failed: %s; %llu pages lost "
		"(they raise SIGBUS when touched), %u pages kept from "
		"write-backs held by the move", m->n,
		(unsigned long long)(r->base + m->first * DSM_PAGE_SIZE),
		strerror(-err), (unsigned long long)lost, held);
}

/* Where copy c of a write-back goes (io: a WRITE, outbox.h), and
 * pointing it elsewhere. */
static struct dsm_home io_copy(const struct dsm_io *io, uint32_t c)
{
	if (c)
		return io->rep[c - 1];
	return (struct dsm_home){ io->server, io->region_id, io->pool_off };
}

static void io_set_copy(struct dsm_io *io, uint32_t c,
			const struct dsm_home *h)
{
	if (c) {
		io->rep[c - 1] = *h;
		return;
	}
	io->server = h->server;
	io->region_id = h->region_id;
	io->pool_off = h->pool_off;
}

/*
 * Undo a move whose READ failed while a copy of the stripe is still
 * there to be read: the server read from is up (a local error), or it
 * died but another copy is live.  Copy c and the held write-backs go
 * back to its old home (lost or not: a lost one is made again on the
 * next pass, from the copy still there).  A stale mark that copy c got
 * during the move stays: it was earned by a write-back to the old home.
 */
static void move_undo(struct dsm_move *m, struct dsm_extent *e)
{
	struct dsm_home to = dsm_extent_copy(e, m->c);

	for (uint32_t i = 0; i < m->held.n; i++) {
		struct dsm_io *io = &m->held.io[i];
		struct dsm_home h = m->from;

		h.pool_off += io_copy(io, m->c).pool_off - to.pool_off;
		io_set_copy(io, m->c, &h);
		/* a held request is a write-back (held_pages) */
		((struct dsm_wb *)io->arg)->srv[m->c] = m->from.server;
	}
	dsm_extent_set_copy(e, m->c, &m->from);
	e->stale |= m->from_stale << m->c;
	dsm_debug("moving %u pages at %#llx undone: the READ from server %s "
		  "failed; tried again on the next pass", m->n,
		  (unsigned long long)(m->r->base + m->first * DSM_PAGE_SIZE),
		  dsm_eng.servers[m->read.server].addr);
}

/* The copy reached its new home, or did not.  Without it the new home
 * is stale when another copy is left to make it again from (on the
 * mover's next pass); with none left, the stripe is lost but for what
 * this process holds. */
static void copy_done(void *arg, int status, const uint8_t *payload,
		      uint32_t len)
{
	struct dsm_move *m = arg;
	struct dsm_extent *e;

	pthread_mutex_lock(&dsm_eng.lock);
	e = &m->r->place.ext[m->ext]; /* looked at only while r lives */
	if (status && !m->r->dead && other_live_copy(e, m->c) >= 0) {
		e->stale |= 1u << m->c;
		dsm_warn("copying %u pages at %#llx to server %s failed: %s; "
			 "it is made again from another copy", m->n,
			 (unsigned long long)(m->r->base +
			 m->first * DSM_PAGE_SIZE),
			 dsm_eng.servers[dsm_extent_copy(e, m->c).server].addr,
			 strerror(-status));
	} else if (status && !m->r->dead) {
		stripe_lost(m, status);
	} else if (!status && m->src == m->c) {
		dsm_eng.c.pages_moved += m->n;
	} else if (!status) {
		dsm_eng.c.pages_rereplicated += m->n;
	}
	move_done(m);
	pthread_mutex_unlock(&dsm_eng.lock);
}

/* Queue the copy of the stripe to its new home (copy c of e).  0 or
 * -ENOMEM. */
static int queue_copy(struct dsm_move *m, const struct dsm_extent *e,
		      const uint8_t *payload)
{
	struct dsm_home to = dsm_extent_copy(e, m->c);
	struct dsm_io *io;

	while (m->staged < m->n &&
	       (m->page[m->staged] = dsm_stage_get(&dsm_eng.stage)))
		m->staged++;
	io = m->staged == m->n ? dsm_outbox_push(&dsm_eng.sendq) : NULL;
	if (!io)
		return -ENOMEM; /* move_done gives back what was staged */
	for (uint32_t i = 0; i < m->n; i++)
		memcpy(m->page[i], payload + (size_t)i * DSM_PAGE_SIZE,
		       DSM_PAGE_SIZE);
	*io = (struct dsm_io){ .type = DSM_MSG_WRITE, .server = to.server,
			       .region_id = to.region_id,
			       .pool_off = to.pool_off, .npages = m->n,
			       .pages = m->page, .done = copy_done, .arg = m };
	return 0;
}

/* Wake the threads that faulted on pages [first, first+n) while they
 * moved (fault.c and huge.c left them blocked); in a region on huge
 * pages, the whole groups: the kernel reports a fault there at its huge
 * page's start. */
static void wake_moved(struct dsm_region *r, uint64_t first, uint64_t n)
{
	if (r->huge) {
		uint64_t end = first + n;

		first &= ~(DSM_HUGE_PAGES - 1);
		n = ((end + DSM_HUGE_PAGES - 1) & ~(DSM_HUGE_PAGES - 1)) - first;
	}
	dsm_uffd_wake(&dsm_eng.uffd, r->base + first * DSM_PAGE_SIZE,
		      (size_t)n * DSM_PAGE_SIZE);
}

/* The stripe's data arrived from the copy read (or did not).  Returns
 * true when the move is over (no copy to wait for). */
static bool read_arrived(struct dsm_move *m, int status,
			 const uint8_t *payload, uint32_t len)
{
	struct dsm_region *r = m->r;
	struct dsm_extent *e = &r->place.ext[m->ext];
	bool over = true;

	if (!status && len != m->n * DSM_PAGE_SIZE)
		status = -EPROTO;
	/* the copy read refused a write-back decided before the READ: what
	 * it sent lacks that write (outbox.c, copies_missed) */
	if (!status && (e->stale >> m->src & 1))
		status = -ESTALE;
	e->move = NULL;
	e->filling = 0;
	if (r->dead)
		return true; /* held write-backs go, and fail or not: moot */
	if (!status)
		status = queue_copy(m, e, payload);
	if (!status)
		over = false;
	else if (!dsm_eng.servers[m->read.server].lost ||
		 other_live_copy(e, m->c) >= 0)
		move_undo(m, e);
	else
		stripe_lost(m, status);
	/* the held write-backs follow the copy on the wire */
	if (dsm_outbox_splice(&dsm_eng.sendq, &m->held))
		dsm_err("cannot queue write-backs held by a move");
	wake_moved(r, m->first, m->n);
	return over;
}

/* Write-backs a failed splice left in the move: fail them, no lock held
 * (their completions take it). */
static void fail_held(struct dsm_outbox *held)
{
	for (uint32_t i = 0; i < held->n; i++)
		held->io[i].done(held->io[i].arg, -ENOMEM, NULL, 0);
	held->n = 0;
}

static void read_done(void *arg, int status, const uint8_t *payload,
		      uint32_t len)
{
	struct dsm_move *m = arg;
	struct dsm_outbox held;
	bool over;

	pthread_mutex_lock(&dsm_eng.lock);
	over = read_arrived(m, status, payload, len);
	held = m->held;
	m->held = (struct dsm_outbox){ 0 };
	if (over)
		move_done(m);
	pthread_mutex_unlock(&dsm_eng.lock);
	fail_held(&held);
	free(held.io);
}

static bool stripe_has_data(const struct dsm_region *r, uint64_t first,
			    uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		if (r->pages[first + i].flags & DSM_PGF_ON_SERVER)
			return true;
	return false;
}

/* Point copy c of stripe k at its new home, if it still must move (the
 * plan was made without the lock).  Returns the move, whose READ the
 * caller queues (move_read), or NULL if there is nothing to copy. */
static struct dsm_move *move_start(struct dsm_region *r, uint32_t k,
				   uint32_t c, const struct dsm_home *to)
{
	struct dsm_extent *e = &r->place.ext[k];
	struct dsm_move *m;
	int src;

	if (e->move || !copy_must_move(e, c) || (src = move_source(e, c)) < 0)
		return NULL; /* its granted space is freed with the unused */
	if (!(m = calloc(1, sizeof(*m))))
		return NULL; /* stays where it is; the next pass tries again */
	*m = (struct dsm_move){ .r = r, .ext = k, .first = e->off / DSM_PAGE_SIZE,
				.n = e->len / DSM_PAGE_SIZE, .c = c,
				.from = dsm_extent_copy(e, c),
				.from_stale = e->stale >> c & 1, .src = src,
				.read = dsm_extent_copy(e, src) };
	dsm_extent_set_copy(e, c, to);
	e->stale &= ~(1u << c);
	if (!stripe_has_data(r, m->first, m->n)) {
		free(m); /* never written back: nothing to copy */
		return NULL;
	}
	e->move = m;
	e->filling = 1u << c;
	r->refs++;
	dsm_debug("moving %u pages at %#llx from server %s to %s (copy %u, "
		  "read from %s)", m->n,
		  (unsigned long long)(r->base + m->first * DSM_PAGE_SIZE),
		  dsm_eng.servers[m->from.server].addr,
		  dsm_eng.servers[to->server].addr, c,
		  dsm_eng.servers[m->read.server].addr);
	pthread_mutex_lock(&mv.lock);
	mv.inflight++;
	pthread_mutex_unlock(&mv.lock);
	return m;
}

/* Queue the READ of the stripe's data from the copy it is made from. */
static void move_read(struct dsm_move *m)
{
	const struct dsm_extent *e = &m->r->place.ext[m->ext];
	struct dsm_extent src = { .off = e->off, .len = e->len,
				  .server = m->read.server,
				  .region_id = m->read.region_id,
				  .pool_off = m->read.pool_off };

	if (dsm_outbox_read(&dsm_eng.sendq, &src, m->first, m->n, read_done,
			    m) && read_arrived(m, -ENOMEM, NULL, 0))
		move_done(m);
}

/* ---- one region ------------------------------------------------------ */

/* Extent e cut at byte off of the region (inside it, at a stripe): the
 * piece from there on, every copy with it. */
static struct dsm_extent extent_from(const struct dsm_extent *e, uint64_t off,
				     uint64_t len)
{
	struct dsm_extent p = *e;

	p.off = off;
	p.len = len;
	p.pool_off += off - e->off;
	for (uint32_t c = 0; c < e->nrep; c++)
		p.rep[c].pool_off += off - e->off;
	return p;
}

/* One extent per stripe, so a stripe can move alone.  The array was made
 * with room for one per stripe (placement.c).  No move is in flight. */
static void split_stripes(struct dsm_placement *pl, uint64_t size)
{
	uint32_t nst = dsm_stripes(size);
	uint32_t k = nst;

	/* from the back, so no extent is overwritten before it is read */
	for (uint32_t i = pl->n; i-- > 0;) {
		struct dsm_extent e = pl->ext[i];
		uint64_t last = (e.off + e.len - 1) / DSM_STRIPE_BYTES;

		for (uint64_t s = last + 1; s-- > e.off / DSM_STRIPE_BYTES;)
			pl->ext[--k] = extent_from(&e, s * DSM_STRIPE_BYTES,
						   dsm_stripe_len(size, s));
	}
	pl->n = nst;
}

/* Does b continue a, in every copy, with the same stale marks? */
static bool extent_continues(const struct dsm_extent *a,
			     const struct dsm_extent *b)
{
	if (a->nrep != b->nrep || a->stale != b->stale ||
	    a->off + a->len != b->off)
		return false;
	for (uint32_t c = 0; c <= a->nrep; c++) {
		struct dsm_home x = dsm_extent_copy(a, c);
		struct dsm_home y = dsm_extent_copy(b, c);

		if (x.server != y.server || x.region_id != y.region_id ||
		    x.pool_off + a->len != y.pool_off)
			return false;
	}
	return true;
}

/* Neighbours contiguous in every copy become one extent again. */
static void merge_extents(struct dsm_placement *pl)
{
	uint32_t w = 0;

	for (uint32_t i = 0; i < pl->n; i++) {
		struct dsm_extent *last = w ? &pl->ext[w - 1] : NULL;
		const struct dsm_extent *e = &pl->ext[i];

		if (last && extent_continues(last, e))
			last->len += e->len;
		else
			pl->ext[w++] = *e;
	}
	pl->n = w;
}

/* What one pass does to a region: copy copy[j] of stripe idx[j] (len[j]
 * bytes) goes to home[j], on none of the servers that row j of excl
 * names (DSM_MAX_REPLICAS a row: its copies' servers, placement.h). */
struct plan {
	uint32_t n;
	uint32_t *idx, *copy, *excl;
	uint64_t *len;
	struct dsm_home *home;
	struct dsm_placement granted;
};

static int plan_init(struct plan *p, uint32_t nst)
{
	*p = (struct plan){ 0 };
	p->idx = calloc(nst, sizeof(*p->idx));
	p->copy = calloc(nst, sizeof(*p->copy));
	p->excl = calloc((size_t)nst * DSM_MAX_REPLICAS, sizeof(*p->excl));
	p->len = calloc(nst, sizeof(*p->len));
	p->home = calloc(nst, sizeof(*p->home));
	p->granted.part = calloc(dsm_eng.nservers, sizeof(*p->granted.part));
	if (!p->idx || !p->copy || !p->excl || !p->len || !p->home ||
	    !p->granted.part)
		return -ENOMEM;
	return 0;
}

static void plan_free(struct plan *p)
{
	free(p->idx);
	free(p->copy);
	free(p->excl);
	free(p->len);
	free(p->home);
	free(p->granted.part);
}

/* Under the lock: the copies of r's stripes that move in this pass (one
 * per stripe at most, since a stripe moves one copy at a time): those on
 * draining servers, and with replicas those on lost servers or stale. */
static void stripes_to_move(const struct dsm_region *r, struct plan *p)
{
	uint32_t nst = dsm_stripes(r->size);

	p->n = 0;
	for (uint32_t k = 0; k < nst; k++) {
		const struct dsm_extent *e =
			dsm_region_extent(r, k * DSM_STRIPE_PAGES);
		int c = copy_to_move(e);
		uint32_t *row = p->excl + (size_t)p->n * DSM_MAX_REPLICAS;

		if (c < 0)
			continue;
		for (uint32_t d = 0; d < DSM_MAX_REPLICAS; d++)
			row[d] = d <= e->nrep ? dsm_extent_copy(e, d).server :
						UINT32_MAX;
		p->idx[p->n] = k;
		p->copy[p->n] = c;
		p->len[p->n++] = dsm_stripe_len(r->size, k);
	}
}

/* Take the parts no copy of an extent uses any more out of r (into
 * gone). */
static void unused_parts(struct dsm_region *r, struct dsm_placement *gone)
{
	struct dsm_placement *pl = &r->place;
	uint32_t w = 0;

	for (uint32_t i = 0; i < pl->nparts; i++) {
		const struct dsm_part *p = &pl->part[i];
		bool used = false;

		for (uint32_t j = 0; j < pl->n && !used; j++)
			for (uint32_t c = 0; c <= pl->ext[j].nrep && !used; c++) {
				struct dsm_home h = dsm_extent_copy(&pl->ext[j], c);

				used = h.server == p->server &&
				       h.region_id == p->region_id;
			}
		if (used)
			pl->part[w++] = *p;
		else
			gone->part[gone->nparts++] = *p;
	}
	pl->nparts = w;
}

/* Until no more than most moves are in flight. */
static void wait_inflight(unsigned most)
{
	pthread_mutex_lock(&mv.lock);
	while (mv.inflight > most)
		pthread_cond_wait(&mv.cond, &mv.lock);
	pthread_mutex_unlock(&mv.lock);
}

/* Add the parts granted for the move to r.  false: r is gone (or memory
 * is short), and the caller frees them. */
static bool attach_parts(struct dsm_region *r, const struct dsm_part *part,
			 uint32_t n)
{
	struct dsm_placement *pl = &r->place;
	struct dsm_part *v;

	if (r->dead)
		return false;
	v = realloc(pl->part, (pl->nparts + n) * sizeof(*v));
	if (!v)
		return false;
	memcpy(v + pl->nparts, part, n * sizeof(*v));
	pl->part = v;
	pl->nparts += n;
	split_stripes(pl, r->size);
	return true;
}

/* Copy the stripes, MOVES_IN_FLIGHT at a time, and wait for the last. */
static void copy_stripes(struct dsm_region *r, const struct plan *p)
{
	for (uint32_t j = 0; j < p->n; j++) {
		struct dsm_move *m = NULL;

		wait_inflight(MOVES_IN_FLIGHT - 1);
		pthread_mutex_lock(&dsm_eng.lock);
		if (!r->dead)
			m = move_start(r, p->idx[j], p->copy[j], &p->home[j]);
		if (m && mv.stall_ms) { /* a test's slow server: see above */
			pthread_mutex_unlock(&dsm_eng.lock);
			usleep(mv.stall_ms * 1000);
			pthread_mutex_lock(&dsm_eng.lock);
		}
		if (m)
			move_read(m);
		pthread_mutex_unlock(&dsm_eng.lock);
		dsm_engine_kick();
	}
	wait_inflight(0);
}

/* Free what r no longer uses on its old servers; record where it is. */
static void finish_region(struct dsm_region *r)
{
	struct dsm_placement gone = { 0 };

	pthread_mutex_lock(&dsm_eng.lock);
	gone.part = calloc(r->place.nparts ? r->place.nparts : 1,
			   sizeof(*gone.part));
	if (!r->dead && gone.part) {
		merge_extents(&r->place);
		unused_parts(r, &gone);
	}
	pthread_mutex_unlock(&dsm_eng.lock);
	dsm_unplace(&gone);
	free(gone.part);
	dsm_cluster_region_moved(r);
}

/* Said once a minute, since it is retried every RETRY_MS. */
static void no_room(const struct dsm_region *r, int err)
{
	if (dsm_now_ns() - mv.warned_ns <= 60000000000ULL)
		return;
	dsm_err("cannot move or copy region %#llx's stripes off lost or "
		"draining servers: %s; they stay where they are (with fewer "
		"copies, if they keep replicas), trying again every %d ms",
		(unsigned long long)r->base,
		err == -ENOMEM ? "no other server has room, or holds no other "
				 "copy of them" : strerror(-err), RETRY_MS);
	mv.warned_ns = dsm_now_ns();
}

/* Under the lock: pages moved off draining servers and copied again
 * from another copy, so far. */
static void pages_copied(uint64_t *moved, uint64_t *remade)
{
	*moved = dsm_eng.c.pages_moved;
	*remade = dsm_eng.c.pages_rereplicated;
}

/* The pass over r is over: its re-replication, if any, is logged. */
static void region_done(const struct dsm_region *r, uint64_t remade,
			uint64_t t0)
{
	uint64_t left = 0;

	if (!remade)
		return;
	pthread_mutex_lock(&dsm_eng.lock);
	for (uint32_t j = 0; j < r->place.n; j++)
		if (degraded(&r->place.ext[j]))
			left += dsm_stripes(r->place.ext[j].len);
	pthread_mutex_unlock(&dsm_eng.lock);
	dsm_info("region %#llx: %llu pages copied again from their other "
		 "copies in %llu ms; %llu stripes still lack a copy",
		 (unsigned long long)r->base, (unsigned long long)remade,
		 (unsigned long long)((dsm_now_ns() - t0) / 1000000),
		 (unsigned long long)left);
}

/* Move r's copies off draining servers, and make its lost and stale
 * copies again.  Returns the pages copied (*remade: of those, made
 * again from another copy). */
static uint64_t migrate_region(struct dsm_region *r, uint64_t *remade)
{
	struct plan p;
	uint64_t t0 = dsm_now_ns(), moved0, remade0, moved = 0;
	int err = plan_init(&p, dsm_stripes(r->size));

	*remade = 0;
	if (err)
		goto out;
	pthread_mutex_lock(&dsm_eng.lock);
	if (!r->dead)
		stripes_to_move(r, &p);
	pthread_mutex_unlock(&dsm_eng.lock);
	if (!p.n)
		goto out;
	err = dsm_place_stripes(p.len, p.n, p.excl, p.granted.part,
				&p.granted.nparts, p.home);
	if (err) {
		no_room(r, err);
		goto out;
	}
	pthread_mutex_lock(&dsm_eng.lock);
	pages_copied(&moved0, &remade0);
	if (!attach_parts(r, p.granted.part, p.granted.nparts))
		err = -ECANCELED;
	pthread_mutex_unlock(&dsm_eng.lock);
	if (err) {
		dsm_unplace(&p.granted);
		goto out;
	}
	copy_stripes(r, &p);
	finish_region(r);
	pthread_mutex_lock(&dsm_eng.lock);
	pages_copied(&moved, remade);
	pthread_mutex_unlock(&dsm_eng.lock);
	moved -= moved0;
	*remade -= remade0;
	region_done(r, *remade, t0);
out:
	plan_free(&p);
	return moved + *remade;
}

/* ---- the mover thread ------------------------------------------------ */

/* Under the lock: is there anything to move?  A server draining; with
 * replicas, a lost server or a stale copy somewhere.  Once a server is
 * lost it stays lost, so with replicas the mover then looks every
 * RETRY_MS: a copy that found no room is tried again. */
static bool work_to_do(void)
{
	bool more = false;

	if (dsm_shared_move_work())
		return true;
	for (uint32_t i = 0; i < dsm_eng.nservers; i++) {
		if (dsm_eng.servers[i].draining)
			return true;
		more |= dsm_eng.servers[i].lost != 0;
	}
	if (dsm_eng.replicas < 2)
		return false;
	for (uint32_t i = 0; i < dsm_eng.nregions && !more; i++)
		for (uint32_t j = 0; j < dsm_eng.regions[i]->place.n; j++)
			more |= dsm_eng.regions[i]->place.ext[j].stale != 0;
	return more;
}

/* Every live region, held (refs) so that dsm_free cannot pull it away
 * while it moves; NULL (n = 0) if there is nothing to move. */
static struct dsm_region **snapshot(uint32_t *n)
{
	struct dsm_region **v = NULL;

	*n = 0;
	pthread_mutex_lock(&dsm_eng.lock);
	if (work_to_do() && dsm_eng.nregions &&
	    (v = malloc(dsm_eng.nregions * sizeof(*v)))) {
		/* A shared region has many holders and one home, which no
		 * one of them may move alone: shared_move.c moves it with
		 * its home's help (dsm_shared_move_pass, below). */
		for (uint32_t i = 0; i < dsm_eng.nregions; i++) {
			if (dsm_eng.regions[i]->shared)
				continue;
			v[*n] = dsm_eng.regions[i];
			v[(*n)++]->refs++;
		}
	}
	pthread_mutex_unlock(&dsm_eng.lock);
	return v;
}

/* One pass over every region.  Returns whether it copied anything: a
 * stripe moves one copy per pass, so another pass may find more. */
static bool migrate_all(void)
{
	uint64_t t0 = dsm_now_ns(), pages = 0, remade = 0, r1;
	uint32_t n;
	struct dsm_region **v = snapshot(&n);
	bool moved_shared;

	for (uint32_t i = 0; i < n; i++) {
		pages += migrate_region(v[i], &r1);
		remade += r1;
	}
	moved_shared = dsm_shared_move_pass();
	pthread_mutex_lock(&dsm_eng.lock);
	for (uint32_t i = 0; i < n; i++)
		dsm_region_put(v[i]);
	pthread_mutex_unlock(&dsm_eng.lock);
	free(v);
	if (pages > remade)
		dsm_info("moved %llu MiB off the servers being drained in "
			 "%llu ms", (unsigned long long)
			 ((pages - remade) * DSM_PAGE_SIZE >> 20),
			 (unsigned long long)((dsm_now_ns() - t0) / 1000000));
	return pages > 0 || moved_shared;
}

static void *mover_main(void *arg)
{
	bool progress;

	dsm_tl_internal = 1; /* libdsm's own thread: no far memory for it */

	pthread_mutex_lock(&mv.lock);
	while (!mv.quit) {
		if (!mv.kicked) /* monotonic: a clock step neither stalls
				 * nor hurries the retry */
			dsm_cond_wait_ms(&mv.cond, &mv.lock, RETRY_MS);
		if (mv.quit)
			break;
		mv.kicked = false;
		pthread_mutex_unlock(&mv.lock);
		progress = migrate_all();
		pthread_mutex_lock(&mv.lock);
		mv.kicked |= progress;
	}
	pthread_mutex_unlock(&mv.lock);
	return NULL;
}

void dsm_migrate_kick(void)
{
	pthread_mutex_lock(&mv.lock);
	mv.kicked = true;
	pthread_cond_broadcast(&mv.cond);
	pthread_mutex_unlock(&mv.lock);
}

void dsm_migrate_server_draining(uint32_t server, bool on)
{
	pthread_mutex_lock(&dsm_eng.lock);
	dsm_eng.servers[server].draining = on;
	pthread_mutex_unlock(&dsm_eng.lock);
	dsm_migrate_kick();
}

int dsm_migrate_start(void)
{
	int err;

	mv.quit = false;
	mv.kicked = false;
	mv.stall_ms = 0;
	if (getenv("DSM_TEST_MOVE_STALL_MS"))
		mv.stall_ms = atoi(getenv("DSM_TEST_MOVE_STALL_MS"));
	/* nobody waits on it before the mover starts */
	pthread_cond_destroy(&mv.cond);
	err = dsm_cond_init_monotonic(&mv.cond);
	if (err)
		return err;
	err = -pthread_create(&mv.thread, NULL, mover_main, NULL);
	if (err)
		dsm_err("cannot start the mover thread: %s", strerror(-err));
	mv.started = !err;
	return err;
}

void dsm_migrate_stop(void)
{
	if (!mv.started)
		return;
	pthread_mutex_lock(&mv.lock);
	mv.quit = true;
	pthread_cond_broadcast(&mv.cond);
	pthread_mutex_unlock(&mv.lock);
	pthread_join(mv.thread, NULL);
	mv.started = false;
}
