/*
 * migrate.c - moving a region's extents off a server being drained (room:
 * placement).
 *
 * An operator drains a server (dsmctl drain); the server tells each client
 * (DRAINING) and takes no new regions.  Here a mover thread finds the
 * stripes this process keeps there, finds them new homes on the other
 * servers (placement.c, by free capacity), copies them while the program
 * keeps running, then frees what the drained server held.
 *
 * Moving one stripe, without ever losing a write:
 *
 *   1. Under the engine lock, the extent is pointed at its new home and
 *      marked moving, and a READ of the whole stripe from the old server is
 *      queued.  Requests to one server go on the wire in the order they
 *      were decided (outbox.h) and are answered in order, so every
 *      write-back to the old server decided before this moment is in what
 *      the READ returns.
 *   2. While the stripe moves, nothing is fetched from it (fault.c leaves a
 *      faulting thread blocked), and write-backs to it, which now address
 *      the new home, are held in the move: sent before the copy, they would
 *      be overwritten by it.  Pages stay usable locally all along.
 *   3. When the READ arrives, the copy is queued as a WRITE to the new home,
 *      the held write-backs after it, the mark comes off, and the threads
 *      blocked on the stripe are woken: their retry fetches from the new
 *      home, queued after the copy, so it sees it.
 *   4. When every stripe on the old server is copied (the WRITEs
 *      acknowledged), its part is freed there and the registry record of
 *      the region is written again.
 *
 * If the READ fails while the old server is still up (a local error), the
 * move is undone: the extent and its held write-backs go back to the old
 * home, and the stripe is tried again on the next pass.  If the old server
 * is gone, the move goes on without the copy (stripe_lost): the extent
 * stays at the new home, the held write-backs go there, and only the pages
 * whose newest data was on the old server alone are poisoned (SIGBUS, as
 * for any lost server).  What this process holds is kept: a page whose
 * write-back was held is not poisoned (its data is on its way to the new
 * home, and a fault there fetches it after it on the wire), and resident
 * clean pages, and pages a stream held back, become dirty so that their
 * data reaches the new home.
 *
 * The races when the old server dies mid-move, all on the engine thread:
 *   - dead before the READ is sent: the READ fails at once, the server
 *     already marked lost: stripe_lost.
 *   - dead with the READ in flight: the transport reports the loss before
 *     it fails the requests in flight (transport.h), so the READ's failure
 *     also finds the server lost: stripe_lost, never the undo, which would
 *     send the held write-backs to the dead server.
 *   - write-backs to the old server decided before the move and in flight
 *     when it dies fail too, before or after the READ (a lost connection's
 *     requests fail in slot order, not wire order).  Their pages now have
 *     another home, and stripe_lost decides for them, knowing what was
 *     held; the write-back's own failure leaves them alone (wb_moved_away,
 *     outbox.c).  Otherwise it would poison a page whose newer data was
 *     held and sent to the new home.
 *   - dead after the READ's reply: the copy is taken, nothing is lost.
 *   - the READ failed on a live server (undone), and the server dies
 *     later: the held write-backs went to it; as for any lost server, the
 *     pages whose write-back it did not confirm are lost.
 *
 * Tests can widen step 2 with DSM_TEST_MOVE_STALL_MS: the mover then
 * waits that long between marking a stripe moving and queueing its READ,
 * as if the old server were slow to answer, so that write-backs and faults
 * meet moving stripes often (tests/test_drain.sh).  Nothing else changes.
 *
 * One mover thread per process, idle until a server drains; it never
 * touches a transport (the engine thread sends what it queues).  Lock
 * order: dsm_eng.lock, then mv.lock.
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
	struct dsm_extent from;   /* where the data was */
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
 * The stripe's old home is lost and its data with it (or, from copy_done,
 * the new home lost the copy).  What this process holds is not: resident
 * pages become dirty, so their data reaches the new home, and pages whose
 * newest data is in a write-back held by the move stay as they are - the
 * held write-backs go to the new home right after (read_arrived), and a
 * fault there fetches them back after them on the wire.  Only the pages
 * whose newest data was on the old server alone are poisoned.
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

/* Undo a move whose READ failed while the old server is still there. */
static void move_undo(struct dsm_move *m, struct dsm_extent *e)
{
	for (uint32_t i = 0; i < m->held.n; i++) {
		struct dsm_io *io = &m->held.io[i];

		io->server = m->from.server;
		io->region_id = m->from.region_id;
		io->pool_off = m->from.pool_off + (io->pool_off - e->pool_off);
		/* a held request is a write-back (held_pages) */
		((struct dsm_wb *)io->arg)->server = m->from.server;
	}
	e->server = m->from.server;
	e->region_id = m->from.region_id;
	e->pool_off = m->from.pool_off;
}

static void copy_done(void *arg, int status, const uint8_t *payload,
		      uint32_t len)
{
	struct dsm_move *m = arg;

	pthread_mutex_lock(&dsm_eng.lock);
	if (status && !m->r->dead)
		stripe_lost(m, status);
	else if (!status)
		dsm_eng.c.pages_moved += m->n;
	move_done(m);
	pthread_mutex_unlock(&dsm_eng.lock);
}

/* Queue the copy of the stripe to its new home.  0 or -ENOMEM. */
static int queue_copy(struct dsm_move *m, const struct dsm_extent *e,
		      const uint8_t *payload)
{
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
	*io = (struct dsm_io){ .type = DSM_MSG_WRITE, .server = e->server,
			       .region_id = e->region_id,
			       .pool_off = e->pool_off, .npages = m->n,
			       .pages = m->page, .done = copy_done, .arg = m };
	return 0;
}

/* The stripe's data arrived from its old home (or did not).  Returns true
 * when the move is over (no copy to wait for). */
static bool read_arrived(struct dsm_move *m, int status,
			 const uint8_t *payload, uint32_t len)
{
	struct dsm_region *r = m->r;
	struct dsm_extent *e = &r->place.ext[m->ext];
	bool over = true;

	if (!status && len != m->n * DSM_PAGE_SIZE)
		status = -EPROTO;
	e->move = NULL;
	if (r->dead)
		return true; /* held write-backs go, and fail or not: moot */
	if (!status)
		status = queue_copy(m, e, payload);
	if (!status)
		over = false;
	else if (!dsm_eng.servers[m->from.server].lost)
		move_undo(m, e);
	else
		stripe_lost(m, status);
	/* the held write-backs follow the copy on the wire */
	if (dsm_outbox_splice(&dsm_eng.sendq, &m->held))
		dsm_err("cannot queue write-backs held by a move");
	dsm_uffd_wake(&dsm_eng.uffd, r->base + m->first * DSM_PAGE_SIZE,
		      (size_t)m->n * DSM_PAGE_SIZE);
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

/* Point stripe k at its new home.  Returns the move, whose READ the
 * caller queues (move_read), or NULL if there is nothing to copy. */
static struct dsm_move *move_start(struct dsm_region *r, uint32_t k,
				   const struct dsm_home *to)
{
	struct dsm_extent *e = &r->place.ext[k];
	struct dsm_move *m = calloc(1, sizeof(*m));
	struct dsm_extent from = *e;

	if (!m)
		return NULL; /* stays where it is; the next pass tries again */
	*m = (struct dsm_move){ .r = r, .ext = k, .first = e->off / DSM_PAGE_SIZE,
				.n = e->len / DSM_PAGE_SIZE, .from = from };
	e->server = to->server;
	e->region_id = to->region_id;
	e->pool_off = to->pool_off;
	if (!stripe_has_data(r, m->first, m->n)) {
		free(m); /* never written back: nothing to copy */
		return NULL;
	}
	e->move = m;
	r->refs++;
	dsm_debug("moving %u pages at %#llx from server %s to %s", m->n,
		  (unsigned long long)(r->base + m->first * DSM_PAGE_SIZE),
		  dsm_eng.servers[from.server].addr,
		  dsm_eng.servers[to->server].addr);
	pthread_mutex_lock(&mv.lock);
	mv.inflight++;
	pthread_mutex_unlock(&mv.lock);
	return m;
}

/* Queue the READ of the stripe's data from its old home. */
static void move_read(struct dsm_move *m)
{
	if (dsm_outbox_read(&dsm_eng.sendq, &m->from, m->first, m->n,
			    read_done, m) && read_arrived(m, -ENOMEM, NULL, 0))
		move_done(m);
}

/* ---- one region ------------------------------------------------------ */

/* One extent per stripe, so a stripe can move alone.  The array was made
 * with room for one per stripe (placement.c). */
static void split_stripes(struct dsm_placement *pl, uint64_t size)
{
	uint32_t nst = dsm_stripes(size);
	uint32_t k = nst;

	/* from the back, so no extent is overwritten before it is read */
	for (uint32_t i = pl->n; i-- > 0;) {
		struct dsm_extent e = pl->ext[i];
		uint64_t last = (e.off + e.len - 1) / DSM_STRIPE_BYTES;

		for (uint64_t s = last + 1; s-- > e.off / DSM_STRIPE_BYTES;) {
			uint64_t off = s * DSM_STRIPE_BYTES;

			pl->ext[--k] = (struct dsm_extent){
				.off = off, .len = dsm_stripe_len(size, s),
				.server = e.server,
				.region_id = e.region_id,
				.pool_off = e.pool_off + (off - e.off) };
		}
	}
	pl->n = nst;
}

/* Neighbours contiguous on one server become one extent again. */
static void merge_extents(struct dsm_placement *pl)
{
	uint32_t w = 0;

	for (uint32_t i = 0; i < pl->n; i++) {
		struct dsm_extent *last = w ? &pl->ext[w - 1] : NULL;
		const struct dsm_extent *e = &pl->ext[i];

		if (last && last->server == e->server &&
		    last->region_id == e->region_id &&
		    last->pool_off + last->len == e->pool_off)
			last->len += e->len;
		else
			pl->ext[w++] = *e;
	}
	pl->n = w;
}

/* The stripes of r on draining servers: their indexes and lengths. */
static uint32_t stripes_to_move(const struct dsm_region *r, uint32_t *idx,
				uint64_t *len)
{
	uint32_t nst = dsm_stripes(r->size);
	uint32_t n = 0;

	for (uint32_t k = 0; k < nst; k++) {
		const struct dsm_extent *e =
			dsm_region_extent(r, k * (DSM_STRIPE_BYTES / DSM_PAGE_SIZE));

		if (!dsm_eng.servers[e->server].draining)
			continue;
		idx[n] = k;
		len[n++] = dsm_stripe_len(r->size, k);
	}
	return n;
}

/* Take the parts no extent uses any more out of r (into gone). */
static void unused_parts(struct dsm_region *r, struct dsm_placement *gone)
{
	struct dsm_placement *pl = &r->place;
	uint32_t w = 0;

	for (uint32_t i = 0; i < pl->nparts; i++) {
		const struct dsm_part *p = &pl->part[i];
		bool used = false;

		for (uint32_t j = 0; j < pl->n && !used; j++)
			used = pl->ext[j].server == p->server &&
			       pl->ext[j].region_id == p->region_id;
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
static void copy_stripes(struct dsm_region *r, const uint32_t *idx,
			 const struct dsm_home *home, uint32_t n)
{
	for (uint32_t j = 0; j < n; j++) {
		struct dsm_move *m = NULL;

		wait_inflight(MOVES_IN_FLIGHT - 1);
		pthread_mutex_lock(&dsm_eng.lock);
		if (!r->dead)
			m = move_start(r, idx[j], &home[j]);
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

/* Under the lock: does r keep replicas?  Such a region is not moved yet:
 * a move would have to carry every copy and keep them on distinct
 * servers (issue 14), so its copies stay on a drained server, which
 * therefore does not finish draining while the region lives.  Said once. */
static bool has_replicas(const struct dsm_region *r)
{
	static bool said; /* the mover thread's own */

	if (!r->place.n || !r->place.ext[0].nrep)
		return false;
	if (!said) {
		dsm_warn("a drain does not move regions with replicas yet "
			 "(DSM_REPLICAS): their copies stay where they are");
		said = true;
	}
	return true;
}

/* Move r's stripes off draining servers.  Returns the pages moved... in
 * bytes, for the log. */
static uint64_t migrate_region(struct dsm_region *r)
{
	uint32_t nst = dsm_stripes(r->size);
	uint32_t *idx = calloc(nst, sizeof(*idx));
	uint64_t *len = calloc(nst, sizeof(*len)), bytes = 0;
	struct dsm_home *home = calloc(nst, sizeof(*home));
	struct dsm_placement granted = { 0 };
	uint32_t n = 0;
	int err = -ENOMEM;

	granted.part = calloc(dsm_eng.nservers, sizeof(*granted.part));
	if (!idx || !len || !home || !granted.part)
		goto out;
	pthread_mutex_lock(&dsm_eng.lock);
	if (!r->dead && !has_replicas(r))
		n = stripes_to_move(r, idx, len);
	pthread_mutex_unlock(&dsm_eng.lock);
	if (!n)
		goto out;
	err = dsm_place_stripes(len, n, granted.part, &granted.nparts, home);
	if (err) {
		/* said once a minute: it is retried every RETRY_MS */
		if (dsm_now_ns() - mv.warned_ns > 60000000000ULL) {
			dsm_err("cannot move region %#llx off the servers being "
				"drained: %s; it stays there, trying again "
				"every %d ms", (unsigned long long)r->base,
				err == -ENOMEM ? "the other servers lack room" :
						 strerror(-err), RETRY_MS);
			mv.warned_ns = dsm_now_ns();
		}
		goto out;
	}
	pthread_mutex_lock(&dsm_eng.lock);
	if (!attach_parts(r, granted.part, granted.nparts))
		err = -ECANCELED;
	pthread_mutex_unlock(&dsm_eng.lock);
	if (err) {
		dsm_unplace(&granted);
		goto out;
	}
	copy_stripes(r, idx, home, n);
	finish_region(r);
	for (uint32_t j = 0; j < n; j++)
		bytes += len[j];
out:
	free(idx);
	free(len);
	free(home);
	free(granted.part);
	return bytes;
}

/* ---- the mover thread ------------------------------------------------ */

/* Every live region, held (refs) so that dsm_free cannot pull it away
 * while it moves; NULL (n = 0) if no server drains. */
static struct dsm_region **snapshot(uint32_t *n)
{
	struct dsm_region **v = NULL;
	bool draining = false;

	*n = 0;
	pthread_mutex_lock(&dsm_eng.lock);
	for (uint32_t i = 0; i < dsm_eng.nservers; i++)
		draining |= dsm_eng.servers[i].draining;
	if (draining && dsm_eng.nregions &&
	    (v = malloc(dsm_eng.nregions * sizeof(*v)))) {
		*n = dsm_eng.nregions;
		for (uint32_t i = 0; i < *n; i++) {
			v[i] = dsm_eng.regions[i];
			v[i]->refs++;
		}
	}
	pthread_mutex_unlock(&dsm_eng.lock);
	return v;
}

static void migrate_all(void)
{
	uint64_t t0 = dsm_now_ns(), bytes = 0;
	uint32_t n;
	struct dsm_region **v = snapshot(&n);

	for (uint32_t i = 0; i < n; i++)
		bytes += migrate_region(v[i]);
	pthread_mutex_lock(&dsm_eng.lock);
	for (uint32_t i = 0; i < n; i++)
		dsm_region_put(v[i]);
	pthread_mutex_unlock(&dsm_eng.lock);
	free(v);
	if (bytes)
		dsm_info("moved %llu MiB off the servers being drained in "
			 "%llu ms", (unsigned long long)(bytes >> 20),
			 (unsigned long long)((dsm_now_ns() - t0) / 1000000));
}

static void *mover_main(void *arg)
{
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
		migrate_all();
		pthread_mutex_lock(&mv.lock);
	}
	pthread_mutex_unlock(&mv.lock);
	return NULL;
}

void dsm_migrate_server_draining(uint32_t server, bool on)
{
	pthread_mutex_lock(&dsm_eng.lock);
	dsm_eng.servers[server].draining = on;
	pthread_mutex_unlock(&dsm_eng.lock);
	pthread_mutex_lock(&mv.lock);
	mv.kicked = true;
	pthread_cond_broadcast(&mv.cond);
	pthread_mutex_unlock(&mv.lock);
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
