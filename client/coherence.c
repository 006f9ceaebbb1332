/*
 * coherence.c - the engine's side of shared regions: ownership requests
 * on faults, and giving copies up when the home asks (room: coherence).
 *
 * A read fault sends ACQUIRE READ and installs the grant write-protected;
 * a write fault, on a missing page or on a read-only copy, sends ACQUIRE
 * WRITE and installs (or unprotects) the page writable once granted.  The
 * home grants only after every conflicting copy elsewhere is gone, so a
 * write here never meets a stale copy there.  Every ACQUIRE asks for the
 * data: an upgrade's copy may be dropped while it waits (INVALIDATE,
 * eviction), and the grant then brings what to install.
 *
 * INVALIDATE and RECALL are answered on this thread at once, never after
 * one of our own ACQUIREs (which may wait behind the very op that sent
 * them): dirty pages of the run are write-protected and their write-backs
 * queued, then the INVAL_ACK is queued behind them.  The send queue keeps
 * that order on the wire and the server handles a connection in order,
 * so the data is in the pool before the ack is seen.  INVALIDATE then
 * drops the copies; RECALL keeps them read-only.  A page we do not hold,
 * or hold only an ACQUIRE for, is acknowledged all the same: the grant
 * that comes later is the truth.
 *
 * The server queues at most DSM_COH_MAX_INFLIGHT ACQUIREs per session;
 * more wait here (struct dsm_server's acq list) and go as grants come in.
 *
 * Over RDMA pages never travel as messages: the grant is empty, and the
 * pages it names are then read one-sidedly from the home's pool (the
 * region is registered for each holder's connection).  Between the grant
 * and the end of that READ the pages are READING, and an INVALIDATE or
 * RECALL that names one of them waits here (struct coh_deferred) until
 * the READ is done and its pages installed: acknowledged earlier, the
 * READ could land a copy the directory no longer knows of, older than
 * the next owner's writes.  A write-back is an RDMA WRITE and the ack a
 * SEND behind it on the same queue pair, which the server sees only once
 * the WRITE's data is in its pool.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "engine.h"
#include "evict.h"
#include "log.h"
#include "migrate.h"
#include "outbox.h"
#include "region.h"
#include "shared.h"
#include "stats.h"
#include "transport.h"
#include "util.h"

struct dsm_acq {
	struct dsm_acq *next;  /* waiting for a slot to its server */
	struct dsm_region *r;  /* held (refs) until done */
	uint64_t idx;
	uint32_t n;            /* pages from idx: a read run, else 1 */
	uint8_t mode;          /* DSM_ACQ_READ or DSM_ACQ_WRITE */
	bool upgrade;          /* the page had a read-only copy */
	bool data;             /* the grant brings the pages (TCP) */
	uint32_t server;       /* where it was sent */
	uint64_t t0;           /* when the fault was read */
};

/* An INVALIDATE or RECALL that names a READING page: answered once no
 * page of its run is READING any more. */
struct coh_deferred {
	struct coh_deferred *next;
	uint32_t server;
	uint64_t inval_id;
	uint8_t type;
	struct dsm_region *r;  /* held (refs) until answered */
	uint64_t first, n;
};

/* Waiting INVALIDATEs and RECALLs, oldest first; dsm_eng.lock. */
static struct coh_deferred *deferred;

static void acq_done(void *arg, int status, const uint8_t *payload,
		     uint32_t len);

/* ---- sending --------------------------------------------------------- */

static struct dsm_server *home_of(const struct dsm_region *r)
{
	return &dsm_eng.servers[r->shared->server];
}

/* Do pages reach us from s as messages (TCP), or one-sidedly (RDMA)? */
static bool by_message(const struct dsm_server *s)
{
	return s->ops != &dsm_rdma_transport;
}

/* Queue a's ACQUIRE in ob.  0 or -ENOMEM. */
static int acq_send(struct dsm_acq *a, struct dsm_outbox *ob)
{
	const struct dsm_shared *sh = a->r->shared;
	struct dsm_acquire m = {
		.region_id = sh->region_id, .npages = a->n, .mode = a->mode,
		.pool_off = sh->pool_off + a->idx * DSM_PAGE_SIZE,
		.flags = a->data ? DSM_ACQ_DATA : 0,
	};
	struct dsm_io *io = dsm_outbox_push(ob);

	if (!io)
		return -ENOMEM;
	*io = (struct dsm_io){ .type = DSM_MSG_ACQUIRE, .server = sh->server,
			       .blen = DSM_ACQUIRE_SIZE, .done = acq_done,
			       .arg = a };
	a->server = sh->server;
	dsm_acquire_encode(&m, io->body);
	home_of(a->r)->acq_inflight++;
	return 0;
}

/* Send server s's waiting requests, oldest first, while it has room.
 * One the send queue has no memory for stays at the head, to go at the
 * next fault or grant: a request is delayed, never failed. */
static void acq_pump(struct dsm_server *s, struct dsm_outbox *ob)
{
	uint32_t max = by_message(s) ? DSM_COH_MAX_INFLIGHT :
				       DSM_COH_MAX_INFLIGHT_RDMA;
	struct dsm_acq *a;

	while ((a = s->acq_head) && s->acq_inflight < max) {
		if (acq_send(a, ob))
			return;
		s->acq_head = a->next;
		if (!s->acq_head)
			s->acq_tail = NULL;
	}
}

/* Queue a behind the ones waiting for its server, and send what may go. */
static void acq_submit(struct dsm_acq *a, struct dsm_outbox *ob)
{
	struct dsm_server *s = home_of(a->r);

	a->next = NULL;
	if (s->acq_tail)
		s->acq_tail->next = a;
	else
		s->acq_head = a;
	s->acq_tail = a;
	acq_pump(s, ob);
}

/* An ACQUIRE for pages [idx, idx+n) of r.  0, or -ENOMEM with nothing
 * changed. */
static int acquire(struct dsm_region *r, uint64_t idx, uint32_t n,
		   uint8_t mode, bool upgrade, uint64_t t0,
		   struct dsm_outbox *ob)
{
	struct dsm_acq *a = calloc(1, sizeof(*a));

	if (!a)
		return -ENOMEM;
	*a = (struct dsm_acq){ .r = r, .idx = idx, .n = n, .mode = mode,
			       .upgrade = upgrade, .t0 = t0,
			       .data = by_message(home_of(r)) };
	r->refs++;
	acq_submit(a, ob);
	return 0;
}

/* ---- faults ---------------------------------------------------------- */

/* Out of memory for the request: the thread tries again, and faults
 * again (said once; the fault is retried, never lost). */
static void retry_later(uint64_t addr)
{
	static bool said; /* engine lock */

	if (!said) {
		said = true;
		dsm_err("out of memory for an ownership request: the faulting "
			"thread retries");
	}
	dsm_uffd_wake(&dsm_eng.uffd, addr, DSM_PAGE_SIZE);
}

/* No copy here and none on its way: an ACQUIRE may take it. */
static bool acquirable(const struct dsm_region *r, uint64_t i)
{
	return r->pages[i].state == DSM_PG_INVALID &&
	       !(r->shared->pg[i] & DSM_SH_UPGRADING);
}

/* A read-only copy here that this process may ask to write. */
static bool upgradable(const struct dsm_region *r, uint64_t i)
{
	return r->pages[i].state == DSM_PG_CLEAN &&
	       !(r->shared->pg[i] & (DSM_SH_OWNED | DSM_SH_UPGRADING));
}

/*
 * How many pages a fault at idx takes: a program going through a shared
 * region in order gets runs that double, up to DSM_COH_RUN, as a private
 * region's prefetch windows do; any other fault takes its page.  A run
 * makes this process a sharer (or the owner) of pages it may not touch,
 * which costs an INVALIDATE to acknowledge (or a recall) when someone
 * else uses one: faults out of order, where that is likely waste, take
 * one page.  Reads and writes keep a stream each; the run holds pages
 * in the same state as idx's (take(): acquirable or upgradable).
 */
static uint32_t run_from(struct dsm_region *r, uint64_t idx,
			 struct dsm_coh_stream *s,
			 bool (*take)(const struct dsm_region *, uint64_t))
{
	uint32_t n = 1;

	s->win = idx == s->next && s->win ? s->win * 2 : 1;
	if (s->win > DSM_COH_RUN)
		s->win = DSM_COH_RUN;
	while (n < s->win && idx + n < r->npages && take(r, idx + n))
		n++;
	s->next = idx + n;
	return n;
}

void dsm_coh_fault_missing(struct dsm_region *r, uint64_t idx, bool write,
			   uint64_t t0, struct dsm_outbox *ob)
{
	uint32_t n;

	/* FETCHING, or a dropped copy waiting for its upgrade: the grant's
	 * UFFDIO_COPY wakes every thread blocked on the page */
	if (!acquirable(r, idx))
		return;
	n = run_from(r, idx, write ? &r->shared->writes : &r->shared->reads,
		     acquirable);
	dsm_make_room(n, ob);
	if (acquire(r, idx, n, write ? DSM_ACQ_WRITE : DSM_ACQ_READ, false,
		    t0, ob)) {
		retry_later(dsm_page_addr(&r->pages[idx]));
		return;
	}
	for (uint32_t i = 0; i < n; i++) {
		r->pages[idx + i].state = DSM_PG_FETCHING;
		r->pages[idx + i].fetch = NULL;
	}
	dsm_eng.inflight += n;
}

bool dsm_coh_fault_wp(struct dsm_page *p, uint64_t t0, struct dsm_outbox *ob)
{
	struct dsm_region *r = p->region;
	uint64_t idx = p - r->pages;
	uint8_t *pg = &r->shared->pg[idx];

	uint32_t n;

	if (*pg & DSM_SH_OWNED)
		return false;
	if (*pg & DSM_SH_UPGRADING)
		return true; /* asked already; the grant unprotects it */
	/* DIRTY and not owned (a write-back failed) asks for itself alone */
	n = upgradable(r, idx) ? run_from(r, idx, &r->shared->writes,
					  upgradable) : 1;
	if (acquire(r, idx, n, DSM_ACQ_WRITE, true, t0, ob)) {
		retry_later(dsm_page_addr(p));
		return true;
	}
	for (uint32_t i = 0; i < n; i++)
		pg[i] |= DSM_SH_UPGRADING;
	return true;
}

/* ---- grants ---------------------------------------------------------- */

static void lose(struct dsm_page *p);

/* Map the grant's n pages from p, writable or not, with one ioctl; they
 * become resident.  0 or the ioctl's error (the range or the process is
 * going away). */
static int install(struct dsm_page *p, uint32_t n, const uint8_t *data,
		   bool writable)
{
	unsigned skipped;
	int err = dsm_uffd_copy(&dsm_eng.uffd, dsm_page_addr(p), data,
				(size_t)n * DSM_PAGE_SIZE, !writable, &skipped);

	if (err)
		return err;
	for (uint32_t i = 0; i < n; i++) {
		p[i].state = writable ? DSM_PG_DIRTY : DSM_PG_CLEAN;
		dsm_queue_add(&p[i]);
	}
	dsm_eng.resident += n;
	dsm_eng.c.pages_fetched += n;
	dsm_eng.c.bytes_in += (uint64_t)n * DSM_PAGE_SIZE;
	return 0;
}

/* A write granted on an upgrade: the copy we kept becomes writable, or,
 * dropped meanwhile, the grant's data is installed writable. */
static int grant_upgrade(struct dsm_page *p, const uint8_t *data)
{
	int err;

	if (p->state == DSM_PG_INVALID) {
		dsm_make_room(1, &dsm_eng.sendq);
		return install(p, 1, data, true);
	}
	/* DIRTY but not owned: a write-back that failed made it so
	 * (dsm_server_copy_lost); it is ours to write now */
	if (p->state != DSM_PG_CLEAN && p->state != DSM_PG_DIRTY)
		return -EINVAL; /* cannot happen: UPGRADING is mapped or not */
	/* clearing the protection wakes the writers */
	err = dsm_uffd_wp(&dsm_eng.uffd, dsm_page_addr(p), DSM_PAGE_SIZE,
			  false);
	if (err)
		return err;
	p->state = DSM_PG_DIRTY;
	dsm_queue_touch(p);
	return 0;
}

/* Every page of a fresh ACQUIRE is FETCHING until its grant: nothing
 * else takes a page out of that state. */
static void grant(struct dsm_acq *a, const uint8_t *data)
{
	struct dsm_page *p = &a->r->pages[a->idx];
	uint8_t *pg = &a->r->shared->pg[a->idx];
	int err = 0;

	if (!a->upgrade)
		err = install(p, a->n, data, a->mode == DSM_ACQ_WRITE);
	for (uint32_t i = 0; i < a->n; i++) {
		/* no data: every copy was still here (RDMA, nothing read) */
		if (a->upgrade)
			err = grant_upgrade(&p[i], data ? data + (size_t)i *
						   DSM_PAGE_SIZE : NULL);
		pg[i] &= ~(DSM_SH_UPGRADING | DSM_SH_OWNED);
		if (err && p[i].state == DSM_PG_FETCHING)
			p[i].state = DSM_PG_INVALID;
		else if (!err && a->mode == DSM_ACQ_WRITE)
			pg[i] |= DSM_SH_OWNED;
	}
}

/* No grant will come: the pages raise SIGBUS from now on, as a private
 * page does when its server is lost. */
static void refused(struct dsm_acq *a, int err)
{
	dsm_err("shared region %s: no copy of %u pages at %#llx (%s); "
		"touching them raises SIGBUS", a->r->shared->name, a->n,
		(unsigned long long)dsm_page_addr(&a->r->pages[a->idx]),
		strerror(-err));
	for (uint32_t i = 0; i < a->n; i++)
		lose(&a->r->pages[a->idx + i]);
}

static void lose(struct dsm_page *p)
{
	uint64_t addr = dsm_page_addr(p);

	p->region->shared->pg[p - p->region->pages] &=
		~(DSM_SH_UPGRADING | DSM_SH_OWNED);
	if (p->state == DSM_PG_CLEAN || p->state == DSM_PG_DIRTY) {
		dsm_queue_del(p);
		dsm_eng.resident--;
		madvise((void *)(uintptr_t)addr, DSM_PAGE_SIZE, MADV_DONTNEED);
	}
	p->state = DSM_PG_LOST;
	dsm_poison_or_abort(addr, DSM_PAGE_SIZE);
}

/* Under the lock.  Also for a request that never left (-ENOMEM, or the
 * transport refused it). */
static void acq_complete(struct dsm_acq *a, int status, const uint8_t *data,
			 uint32_t len)
{
	uint64_t ns = dsm_now_ns() - a->t0;

	if (!a->upgrade)
		dsm_eng.inflight -= a->n;
	if (!a->r->dead) {
		if (!status && len != (a->data ? (uint64_t)a->n *
					       DSM_PAGE_SIZE : 0))
			status = -EPROTO;
		if (status)
			refused(a, status);
		else
			grant(a, data);
	}
	dsm_hist_add(&dsm_eng.c, ns);
	dsm_eng.c.blocktime_ns += ns;
	dsm_eng.c.ownership_requests++;
	dsm_region_put(a->r);
	free(a);
}

static void answer_deferred(void);
static void stall(struct dsm_acq *a);
static void resend(struct dsm_acq *a);

/* Completion of the one-sided READ of a grant's pages. */
static void acq_read_done(void *arg, int status, const uint8_t *payload,
			  uint32_t len)
{
	struct dsm_acq *a = arg;

	pthread_mutex_lock(&dsm_eng.lock);
	for (uint32_t i = 0; i < a->n; i++)
		a->r->shared->pg[a->idx + i] &= ~DSM_SH_READING;
	if (dsm_shared_fails_over(a->r, a->server, status)) {
		stall(a); /* granted by a home lost since: ask the next */
	} else if (dsm_shared_left_home(a->r, a->server, status)) {
		resend(a); /* ... which we left already */
	} else {
		a->data = true; /* the payload is the pages */
		acq_complete(a, status, payload, len);
	}
	answer_deferred();
	pthread_mutex_unlock(&dsm_eng.lock);
}

/* An empty grant whose pages are not all here: read them from the
 * home's pool.  True if the READ is queued (acq_read_done completes a);
 * false if nothing needs reading. */
static bool read_grant(struct dsm_acq *a, int *status)
{
	const struct dsm_shared *sh = a->r->shared;
	bool need = !a->upgrade;
	struct dsm_io *io;

	for (uint32_t i = 0; i < a->n && !need; i++)
		need = a->r->pages[a->idx + i].state == DSM_PG_INVALID;
	if (!need)
		return false;
	io = dsm_outbox_push(&dsm_eng.sendq);
	if (!io) {
		*status = -ENOMEM; /* the pages are lost: refused() says so */
		return false;
	}
	*io = (struct dsm_io){ .type = DSM_MSG_READ, .server = sh->server,
			       .region_id = sh->region_id,
			       .pool_off = sh->pool_off + a->idx * DSM_PAGE_SIZE,
			       .npages = a->n, .done = acq_read_done, .arg = a };
	for (uint32_t i = 0; i < a->n; i++)
		a->r->shared->pg[a->idx + i] |= DSM_SH_READING;
	return true;
}

/* The home moved (-ESTALE): a waits, its pages still FETCHING or
 * UPGRADING, until the mover follows it there (shared_move.c). */
static void stall(struct dsm_acq *a)
{
	struct dsm_shared *sh = a->r->shared;
	struct dsm_acq **tail = &sh->stalled;

	while (*tail)
		tail = &(*tail)->next;
	a->next = NULL;
	*tail = a;
	dsm_shared_stale(a->r);
}

/* A new standby was made (-ENOLINK): a waits, as after an -ESTALE,
 * until the mover holds the standby and says so to the home. */
static void hold_for_standby(struct dsm_acq *a)
{
	struct dsm_shared *sh = a->r->shared;
	struct dsm_acq **tail = &sh->stalled;

	while (*tail)
		tail = &(*tail)->next;
	a->next = NULL;
	*tail = a;
	if (!sh->relink) {
		sh->relink = true;
		dsm_migrate_kick();
	}
}

/* a goes again, to its region's home now. */
static void resend(struct dsm_acq *a)
{
	a->data = by_message(home_of(a->r));
	acq_submit(a, &dsm_eng.sendq);
}

/* Completion of an ACQUIRE, on the engine thread, from the server it
 * was sent to: an -ESTALE from a home the region has already left (it
 * was sent just before we followed it) is asked again at the new one. */
static void acq_done(void *arg, int status, const uint8_t *payload,
		     uint32_t len)
{
	struct dsm_acq *a = arg;
	struct dsm_server *s = &dsm_eng.servers[a->server];

	pthread_mutex_lock(&dsm_eng.lock);
	s->acq_inflight--;
	if (status == -ESTALE && !a->r->dead && a->server != a->r->shared->server)
		resend(a); /* sent before we followed the home: ask there */
	else if (dsm_shared_left_home(a->r, a->server, status))
		resend(a); /* sent to a home lost since we failed over */
	else if (status == -ESTALE && !a->r->dead)
		stall(a);
	else if (dsm_shared_fails_over(a->r, a->server, status))
		stall(a); /* asked again at the standby once it is home */
	else if (status == -ENOLINK && !a->r->dead)
		hold_for_standby(a);
	else if (status || a->data || a->r->dead || len ||
		 !read_grant(a, &status))
		acq_complete(a, status, payload, len);
	acq_pump(s, &dsm_eng.sendq);
	pthread_mutex_unlock(&dsm_eng.lock);
}

void dsm_coh_rehomed(struct dsm_region *r, uint32_t old)
{
	struct dsm_server *s = &dsm_eng.servers[old];
	struct dsm_acq **pp = &s->acq_head, *a, *moved = NULL, **tail = &moved;

	/* r's requests still waiting for a slot to old join the new home's
	 * queue, and its pacing */
	s->acq_tail = NULL;
	while ((a = *pp)) {
		if (a->r == r) {
			*pp = a->next;
			*tail = a;
			tail = &a->next;
			continue;
		}
		s->acq_tail = a;
		pp = &a->next;
	}
	*tail = NULL;
	/* the stalled ones were sent first: they go first again */
	for (pp = &r->shared->stalled; *pp; pp = &(*pp)->next)
		;
	*pp = moved;
	while ((a = r->shared->stalled)) {
		r->shared->stalled = a->next;
		resend(a);
	}
}

void dsm_coh_resend_stalled(struct dsm_region *r)
{
	struct dsm_acq *a;

	while ((a = r->shared->stalled)) {
		r->shared->stalled = a->next;
		resend(a);
	}
}

void dsm_coh_stalled_fail(struct dsm_region *r, int err)
{
	struct dsm_acq *a;

	while ((a = r->shared->stalled)) {
		r->shared->stalled = a->next;
		acq_complete(a, err, NULL, 0);
	}
}

void dsm_coh_server_lost(uint32_t server)
{
	struct dsm_server *s = &dsm_eng.servers[server];
	struct dsm_acq *a;

	pthread_mutex_lock(&dsm_eng.lock);
	while ((a = s->acq_head)) {
		s->acq_head = a->next;
		if (dsm_shared_fails_over(a->r, server, s->lost))
			stall(a);
		else
			acq_complete(a, s->lost, NULL, 0);
	}
	s->acq_tail = NULL;
	pthread_mutex_unlock(&dsm_eng.lock);
}

/* ---- giving copies up ------------------------------------------------ */

static struct dsm_region *find_shared(uint32_t server, uint64_t region_id)
{
	for (uint32_t i = 0; i < dsm_eng.nregions; i++) {
		struct dsm_region *r = dsm_eng.regions[i];

		if (r->shared && r->shared->server == server &&
		    r->shared->region_id == region_id)
			return r;
	}
	return NULL;
}

/* Drop the read-only copies of [first, first+n): INVALID, their
 * UPGRADING kept (the grant brings the page back writable).  0, or
 * -EBUSY when the kernel kept one (mlocked memory: the copy would go
 * stale, so the INVALIDATE is not acknowledged). */
static int drop_copies(struct dsm_region *r, uint64_t first, uint64_t n)
{
	for (uint64_t i = first; i < first + n; i++) {
		struct dsm_page *p = &r->pages[i];

		if (p->state != DSM_PG_CLEAN)
			continue;
		if (madvise((void *)(uintptr_t)dsm_page_addr(p), DSM_PAGE_SIZE,
			    MADV_DONTNEED))
			return -EBUSY;
		dsm_queue_del(p);
		dsm_eng.resident--;
		p->state = DSM_PG_INVALID;
		p->evicted_at = 0; /* not evicted: no refault to learn from */
	}
	return 0;
}

/* Write back what is dirty in the run, then drop (INVALIDATE) or keep
 * read-only (RECALL).  0, or the write-back's error (nothing dropped). */
static int give_up(struct dsm_region *r, uint64_t first, uint64_t n,
		   bool drop)
{
	int err = dsm_sync_range(r, first, n, &dsm_eng.sendq, NULL);

	if (err)
		return err;
	for (uint64_t i = first; i < first + n; i++)
		r->shared->pg[i] &= ~DSM_SH_OWNED;
	return drop ? drop_copies(r, first, n) : 0;
}

int dsm_coh_give_up_all(struct dsm_region *r, struct dsm_sync_wait *w)
{
	int err = dsm_sync_range(r, 0, r->npages, &dsm_eng.sendq, w);

	if (err)
		return err;
	for (uint64_t i = 0; i < r->npages; i++)
		r->shared->pg[i] &= ~DSM_SH_OWNED;
	return drop_copies(r, 0, r->npages);
}

static void ack_done(void *arg, int status, const uint8_t *payload,
		     uint32_t len)
{
	(void)arg, (void)payload, (void)len;
	if (status)
		dsm_debug("INVAL_ACK: %s", strerror(-status));
}

static int queue_ack(uint32_t server, uint64_t inval_id)
{
	struct dsm_inval_ack m = { .inval_id = inval_id };
	struct dsm_io *io = dsm_outbox_push(&dsm_eng.sendq);

	if (!io)
		return -ENOMEM;
	*io = (struct dsm_io){ .type = DSM_MSG_INVAL_ACK, .server = server,
			       .blen = DSM_INVAL_ACK_SIZE, .done = ack_done };
	dsm_inval_ack_encode(&m, io->body);
	return 0;
}

/* An INVAL_ACK held until the standby has answered a PING. */
struct ack_after {
	uint32_t server;
	uint64_t inval_id;
};

static void standby_pinged(void *arg, int status, const uint8_t *payload,
			   uint32_t len)
{
	struct ack_after *p = arg;

	(void)payload, (void)len;
	if (status) /* lost: a failover will not read it, so ack anyway */
		dsm_debug("PING of a standby: %s", strerror(-status));
	pthread_mutex_lock(&dsm_eng.lock);
	if (queue_ack(p->server, p->inval_id))
		dsm_err("out of memory acknowledging an invalidation");
	pthread_mutex_unlock(&dsm_eng.lock);
	free(p);
}

/*
 * With a standby, the ack waits until the standby has every write-back
 * this process sent it before: a PING behind them on the same
 * connection, answered in order (over RDMA, a SEND behind one-sided
 * WRITEs on one queue pair).  Otherwise a late write-back of ours could
 * land on the standby after the next owner's, and a failover would
 * bring the older page back.  0, or 1 if r has no standby (ack now).
 */
static int ack_after_standby(uint32_t server, uint64_t inval_id,
			     const struct dsm_region *r)
{
	const struct dsm_standby *sb = r ? &r->shared->standby : NULL;
	struct ack_after *p;
	struct dsm_io *io;

	if (!sb || !sb->on || dsm_eng.servers[sb->server].lost)
		return 1;
	p = malloc(sizeof(*p));
	io = p ? dsm_outbox_push(&dsm_eng.sendq) : NULL;
	if (!io) {
		free(p);
		return -ENOMEM;
	}
	*p = (struct ack_after){ server, inval_id };
	*io = (struct dsm_io){ .type = DSM_MSG_PING, .server = sb->server,
			       .done = standby_pinged, .arg = p };
	return 0;
}

/* The run named by an INVALIDATE or RECALL, as pages of r: 0 or
 * -ERANGE for one that is not inside it. */
static int run_pages(const struct dsm_region *r, const struct dsm_rw_req *m,
		     uint64_t *first)
{
	const struct dsm_shared *sh = r->shared;

	if (m->pool_off < sh->pool_off ||
	    (m->pool_off - sh->pool_off) % DSM_PAGE_SIZE)
		return -ERANGE;
	*first = (m->pool_off - sh->pool_off) / DSM_PAGE_SIZE;
	return *first + m->npages <= r->npages ? 0 : -ERANGE;
}

/* Is a page of [first, first+n) of r granted and still being read? */
static bool reading(const struct dsm_region *r, uint64_t first, uint64_t n)
{
	for (uint64_t i = first; i < first + n; i++)
		if (r->shared->pg[i] & DSM_SH_READING)
			return true;
	return false;
}

/* Give up [first, first+n) of r (NULL: a region we unmapped, or never
 * held) and acknowledge.  Unacknowledged, the home closes us after its
 * timeout, and our copies are forfeit: better than a stale one. */
static void answer(uint32_t server, uint8_t type, uint64_t inval_id,
		   struct dsm_region *r, uint64_t first, uint64_t n, int err)
{
	if (!err && r && !r->dead)
		err = give_up(r, first, n, type == DSM_MSG_INVALIDATE);
	if (err) {
		dsm_err("%s from server %s: %s; not acknowledged",
			dsm_msg_name(type), dsm_eng.servers[server].addr,
			strerror(-err));
		return;
	}
	err = ack_after_standby(server, inval_id, r);
	if (err > 0)
		err = queue_ack(server, inval_id);
	if (err)
		dsm_err("out of memory acknowledging %s", dsm_msg_name(type));
	if (r)
		dsm_eng.c.copies_given_up++;
}

/* Hold an INVALIDATE or RECALL until r's READ of its run is done. */
static int defer(uint32_t server, const struct dsm_hdr *h,
		 struct dsm_region *r, uint64_t first, uint64_t n)
{
	struct coh_deferred *d = calloc(1, sizeof(*d)), **tail = &deferred;

	if (!d)
		return -ENOMEM;
	*d = (struct coh_deferred){ .server = server, .inval_id = h->id,
				    .type = h->type, .r = r, .first = first,
				    .n = n };
	r->refs++;
	while (*tail)
		tail = &(*tail)->next;
	*tail = d;
	return 0;
}

/* Answer, oldest first, what waits on READs that are done now. */
static void answer_deferred(void)
{
	struct coh_deferred **pp = &deferred, *d;

	while ((d = *pp)) {
		if (!d->r->dead && reading(d->r, d->first, d->n)) {
			pp = &d->next;
			continue;
		}
		*pp = d->next;
		answer(d->server, d->type, d->inval_id, d->r, d->first, d->n, 0);
		dsm_region_put(d->r);
		free(d);
	}
}

void dsm_coh_server_msg(uint32_t server, const struct dsm_hdr *h,
			const uint8_t *payload)
{
	struct dsm_rw_req m;
	struct dsm_region *r;
	uint64_t first = 0;
	bool wait;
	int err = dsm_rw_req_decode(h->type, payload, h->len, &m);

	pthread_mutex_lock(&dsm_eng.lock);
	r = err ? NULL : find_shared(server, m.region_id);
	if (r)
		err = run_pages(r, &m, &first);
	/* a copy still arriving is given up once it is here */
	wait = !err && r && reading(r, first, m.npages);
	if (wait)
		err = defer(server, h, r, first, m.npages);
	if (!wait || err)
		answer(server, h->type, h->id, r, first, m.npages, err);
	pthread_mutex_unlock(&dsm_eng.lock);
}
