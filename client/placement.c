/*
 * placement.c - where a region's pages live (room: placement).
 *
 * A region is cut into stripes of DSM_STRIPE_BYTES (1 MiB, the most one
 * READ or WRITE moves) and the stripes are dealt out one by one, each to
 * the server with the most free space left after the stripes before it.
 * Equal servers therefore take turns (round robin), and a server with more
 * room takes more stripes until the others catch up: placement by free
 * capacity.  Each server gets one ALLOC for all its stripes (a "part"),
 * and the stripes become extents of the placement map (placement.h), merged
 * where neighbours are contiguous on one server - a region on a single
 * server is one extent.
 *
 * Why stripes and not whole regions: a region larger than any one server
 * still fits, and the faults of one region spread over every server.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "log.h"
#include "outbox.h"
#include "placement.h"
#include "region.h"

static bool among(uint32_t i, const uint32_t *set, uint32_t n)
{
	for (uint32_t j = 0; j < n; j++)
		if (set[j] == i)
			return true;
	return false;
}

/* The server with the most free space that can take len more bytes, given
 * what this placement already took from each (taken[]), other than the
 * nx servers in excl[] (those holding the stripe's other copies); -1 if
 * none.  Lost servers and servers being drained take nothing. */
static int best_server(const uint64_t *taken, uint64_t len,
		       const uint32_t *excl, uint32_t nx)
{
	int best = -1;
	uint64_t best_free = 0;

	for (uint32_t i = 0; i < dsm_eng.nservers; i++) {
		const struct dsm_server *s = &dsm_eng.servers[i];
		uint64_t left = s->free - taken[i];

		if (s->lost || s->draining || s->free < taken[i] || left < len ||
		    among(i, excl, nx))
			continue;
		if (best < 0 || left > best_free) {
			best = i;
			best_free = left;
		}
	}
	return best;
}

/*
 * How the copies of n stripes are dealt: row k of owner (`width` slots)
 * holds first the `pre` servers stripe k must avoid (those holding its
 * copies that stay where they are, when a copy is made again or moved;
 * UINT32_MAX, which is no server, pads), then the server of each copy
 * dealt.
 */
struct deal {
	uint64_t n;
	uint32_t copies, pre, width;
	uint32_t *owner;
};

/* Deal the copies of the stripes out (copy c of stripe k never on a
 * server that row k of d->owner already names), reserving the servers'
 * space.  Under the engine lock, so concurrent dsm_alloc calls never
 * promise the same space twice.  0 or -ENOMEM. */
static int deal(const uint64_t *len, struct deal *d, uint64_t *taken)
{
	int err = 0;

	pthread_mutex_lock(&dsm_eng.lock);
	for (uint64_t x = 0; x < d->n * d->copies && !err; x++) {
		uint64_t k = x / d->copies;
		uint32_t *row = d->owner + k * d->width;
		uint32_t c = d->pre + x % d->copies;
		int i = best_server(taken, len[k], row, c);

		if (i < 0) {
			err = -ENOMEM;
			break;
		}
		row[c] = i;
		taken[i] += len[k];
	}
	for (uint32_t i = 0; i < dsm_eng.nservers && !err; i++)
		dsm_eng.servers[i].free -= taken[i];
	pthread_mutex_unlock(&dsm_eng.lock);
	return err;
}

static void give_back(uint32_t server, uint64_t bytes)
{
	pthread_mutex_lock(&dsm_eng.lock);
	dsm_eng.servers[server].free += bytes;
	pthread_mutex_unlock(&dsm_eng.lock);
}

static int alloc_part(struct dsm_part *p)
{
	struct dsm_server *s = &dsm_eng.servers[p->server];
	struct dsm_alloc_req req = { p->len };
	uint8_t body[DSM_ALLOC_REQ_SIZE], rep[DSM_ALLOC_REPLY_SIZE];
	struct dsm_alloc_reply r;
	uint32_t len;
	int err;

	dsm_alloc_req_encode(&req, body);
	err = dsm_engine_call(p->server, DSM_MSG_ALLOC, body, sizeof(body),
			      rep, sizeof(rep), &len);
	if (!err)
		err = dsm_alloc_reply_decode(rep, len, &r);
	if (err == -EBUSY) {
		/* it began draining after we last heard: deal again */
		dsm_info("server %s is being drained: placing elsewhere",
			 s->addr);
		pthread_mutex_lock(&dsm_eng.lock);
		s->draining = true;
		pthread_mutex_unlock(&dsm_eng.lock);
		return -EAGAIN;
	}
	if (err == -ENOSPC) {
		/* other clients filled it since we last heard (the caller
		 * learns how much is left): deal again */
		dsm_info("server %s has no room for %llu bytes: placing "
			 "elsewhere", s->addr, (unsigned long long)p->len);
		return -ENOSPC;
	}
	if (err == -EDQUOT) {
		dsm_err("server %s refused another region: this process holds "
			"as many there as it allows one client (dsm-server "
			"--max-regions)", s->addr);
		return -ENOMEM;
	}
	if (err) {
		dsm_err("server %s could not allocate %llu bytes: %s", s->addr,
			(unsigned long long)p->len, strerror(-err));
		return err;
	}
	p->region_id = r.region_id;
	p->pool_off = r.pool_off;
	return 0;
}

static void free_part(const struct dsm_part *p)
{
	struct dsm_free_req req = { p->region_id };
	uint8_t body[DSM_FREE_REQ_SIZE];

	dsm_free_req_encode(&req, body);
	/* a lost server's space is gone with it: nothing to give back */
	if (!dsm_engine_call(p->server, DSM_MSG_FREE, body, sizeof(body), NULL,
			     0, NULL))
		give_back(p->server, p->len);
}

/*
 * Server i could not grant len bytes (-ENOSPC): the free space its HELLO
 * reported has since gone to other clients.  What it has left is what its
 * STATS say now, and in any case less than len (its free space may be in
 * pieces), so the next deal gives it less or nothing.  Without this, the
 * same full server came first in every deal and dsm_alloc failed while
 * other servers had room.
 */
static void learn_full(uint32_t i, uint64_t len)
{
	uint8_t rep[DSM_SERVER_STATS_SIZE];
	struct dsm_server_stats st;
	uint64_t left = len - 1;
	uint32_t n;

	if (!dsm_engine_call(i, DSM_MSG_STATS, NULL, 0, rep, sizeof(rep), &n) &&
	    !dsm_server_stats_decode(rep, n, &st) && st.used <= st.capacity &&
	    st.capacity - st.used < left)
		left = st.capacity - st.used;
	pthread_mutex_lock(&dsm_eng.lock);
	if (dsm_eng.servers[i].free > left)
		dsm_eng.servers[i].free = left;
	pthread_mutex_unlock(&dsm_eng.lock);
}

/* One ALLOC per server that was dealt stripes, appended to part[]
 * (part_of[server] says which).  On failure, what was granted is freed
 * and every reservation given back; -EAGAIN (a server began draining,
 * or was full) means a new deal may succeed. */
static int alloc_parts(struct dsm_part *part, uint32_t *nparts,
		       const uint64_t *taken, int *part_of)
{
	struct dsm_placement granted = { .part = part, .nparts = 0 };
	int err = 0, full = -1;

	for (uint32_t i = 0; i < dsm_eng.nservers; i++) {
		part_of[i] = -1;
		if (!taken[i])
			continue;
		if (!err) {
			part[granted.nparts] = (struct dsm_part){
				.server = i, .len = taken[i] };
			err = alloc_part(&part[granted.nparts]);
			if (!err) {
				part_of[i] = granted.nparts++;
				continue;
			}
			if (err == -ENOSPC)
				full = i;
		}
		give_back(i, taken[i]);
	}
	if (err)
		dsm_unplace(&granted);
	if (full >= 0) {
		learn_full(full, taken[full]);
		err = -EAGAIN;
	}
	*nparts = granted.nparts;
	return err;
}

/* Where each copy went, from the deal and the parts granted. */
static void homes(const uint64_t *len, const struct deal *d,
		  const struct dsm_part *part, const int *part_of,
		  uint64_t *cursor, struct dsm_home *home)
{
	for (uint64_t x = 0; x < d->n * d->copies; x++) {
		uint64_t k = x / d->copies;
		uint32_t s = d->owner[k * d->width + d->pre + x % d->copies];
		const struct dsm_part *p = &part[part_of[s]];
		uint64_t *c = &cursor[part_of[s]];

		home[x] = (struct dsm_home){ .server = p->server,
					     .region_id = p->region_id,
					     .pool_off = p->pool_off + *c };
		*c += len[k];
	}
}

/* The rows of d, each starting with its stripe's servers to avoid
 * (excl: DSM_MAX_REPLICAS per stripe, or NULL for none).  0 or -ENOMEM. */
static int deal_init(struct deal *d, uint64_t n, uint32_t copies,
		     const uint32_t *excl)
{
	*d = (struct deal){ .n = n, .copies = copies,
			    .pre = excl ? DSM_MAX_REPLICAS : 0 };
	d->width = d->pre + copies;
	d->owner = calloc(n ? n * d->width : 1, sizeof(*d->owner));
	if (!d->owner)
		return -ENOMEM;
	for (uint64_t k = 0; k < n && excl; k++)
		memcpy(d->owner + k * d->width, excl + k * DSM_MAX_REPLICAS,
		       DSM_MAX_REPLICAS * sizeof(*excl));
	return 0;
}

/* Place copies of each of n stripes: home[k * copies + c] is copy c of
 * stripe k, all of a stripe's copies on distinct servers, none on the
 * servers excl names for it (see dsm_place_stripes). */
static int place_copies(const uint64_t *len, uint64_t n, uint32_t copies,
			const uint32_t *excl, struct dsm_part *part,
			uint32_t *nparts, struct dsm_home *home)
{
	uint32_t ns = dsm_eng.nservers;
	struct deal d;
	uint64_t *taken = calloc(ns, sizeof(*taken));
	uint64_t *cursor = calloc(ns, sizeof(*cursor));
	int *part_of = calloc(ns, sizeof(*part_of));
	int err = deal_init(&d, n, copies, excl);

	*nparts = 0;
	if (err || !taken || !cursor || !part_of) {
		err = -ENOMEM;
		goto out;
	}
	/* A server that turns out to be draining or full is marked so by
	 * alloc_part(s), and the next deal leaves it out or gives it less.
	 * Each retry has learned something about one server; a server
	 * learned full can be dealt a smaller part once more, hence 2 * ns. */
	for (uint32_t tries = 0; tries <= 2 * ns; tries++) {
		memset(taken, 0, ns * sizeof(*taken));
		err = deal(len, &d, taken);
		if (!err)
			err = alloc_parts(part, nparts, taken, part_of);
		if (err != -EAGAIN)
			break;
	}
	if (err == -EAGAIN || err == -ENOSPC)
		err = -ENOMEM;
	if (!err)
		homes(len, &d, part, part_of, cursor, home);
out:
	free(d.owner);
	free(taken);
	free(cursor);
	free(part_of);
	return err;
}

int dsm_place_stripes(const uint64_t *len, uint64_t n, const uint32_t *excl,
		      struct dsm_part *part, uint32_t *nparts,
		      struct dsm_home *home)
{
	return place_copies(len, n, 1, excl, part, nparts, home);
}

/* Copy h[c] of the stripe at off continues copy c of extent e. */
static bool continues(const struct dsm_extent *e, uint64_t off,
		      const struct dsm_home *h, uint32_t c)
{
	const struct dsm_home *eh = c ? &e->rep[c - 1] : &(struct dsm_home){
		.server = e->server, .region_id = e->region_id,
		.pool_off = e->pool_off };

	return eh->server == h[c].server && eh->region_id == h[c].region_id &&
	       e->off + e->len == off && eh->pool_off + e->len == h[c].pool_off;
}

/* A stripe (its copies h[0..copies)) becomes an extent, or grows the
 * previous one when every copy continues it. */
static void add_stripe(struct dsm_placement *pl, uint64_t off, uint64_t len,
		       const struct dsm_home *h, uint32_t copies)
{
	struct dsm_extent *last = pl->n ? &pl->ext[pl->n - 1] : NULL;
	struct dsm_extent *e;
	uint32_t c;

	for (c = 0; last && c < copies && continues(last, off, h, c); c++)
		;
	if (last && c == copies) {
		last->len += len;
		return;
	}
	e = &pl->ext[pl->n++];
	*e = (struct dsm_extent){ .off = off, .len = len, .server = h[0].server,
				  .region_id = h[0].region_id,
				  .pool_off = h[0].pool_off, .nrep = copies - 1 };
	for (c = 1; c < copies; c++)
		e->rep[c - 1] = h[c];
}

/* Servers a stripe's copies may go to: up and not being drained. */
static uint32_t usable_servers(void)
{
	uint32_t n = 0;

	pthread_mutex_lock(&dsm_eng.lock);
	for (uint32_t i = 0; i < dsm_eng.nservers; i++)
		n += !dsm_eng.servers[i].lost && !dsm_eng.servers[i].draining;
	pthread_mutex_unlock(&dsm_eng.lock);
	return n;
}

int dsm_place(uint64_t size, struct dsm_placement *pl)
{
	uint32_t copies = dsm_eng.replicas, up = usable_servers();
	uint64_t nstripes = dsm_stripes(size);
	uint64_t *len = calloc(nstripes, sizeof(*len));
	struct dsm_home *home = calloc(nstripes * copies, sizeof(*home));
	int err = -ENOMEM;

	memset(pl, 0, sizeof(*pl));
	if (up < copies) {
		dsm_err("DSM_REPLICAS=%u puts each page on %u distinct servers, "
			"but %u of the %u servers are up and not being drained",
			copies, copies, up, dsm_eng.nservers);
		goto out;
	}
	pl->part = calloc(dsm_eng.nservers, sizeof(*pl->part));
	pl->ext = calloc(nstripes, sizeof(*pl->ext));
	if (!len || !home || !pl->part || !pl->ext)
		goto out;
	for (uint64_t k = 0; k < nstripes; k++)
		len[k] = dsm_stripe_len(size, k);
	err = place_copies(len, nstripes, copies, NULL, pl->part, &pl->nparts,
			   home);
	if (err) {
		if (err == -ENOMEM)
			dsm_err("the servers lack %llu bytes of free capacity "
				"for this region", (unsigned long long)size);
		goto out;
	}
	for (uint64_t k = 0; k < nstripes; k++)
		add_stripe(pl, k * DSM_STRIPE_BYTES, len[k], &home[k * copies],
			   copies);
out:
	if (err)
		dsm_placement_clear(pl);
	free(len);
	free(home);
	return err;
}

void dsm_unplace(struct dsm_placement *pl)
{
	for (uint32_t i = 0; i < pl->nparts; i++)
		free_part(&pl->part[i]);
	pl->nparts = 0;
}

void dsm_placement_clear(struct dsm_placement *pl)
{
	free(pl->ext);
	free(pl->part);
	memset(pl, 0, sizeof(*pl));
}

/* Binary search: extents are sorted by offset and cover the region. */
const struct dsm_extent *dsm_region_extent(const struct dsm_region *r,
					   uint64_t idx)
{
	uint64_t off = idx * DSM_PAGE_SIZE;
	uint32_t lo = 0, hi = r->place.n;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		const struct dsm_extent *e = &r->place.ext[mid];

		if (off < e->off)
			hi = mid;
		else if (off - e->off >= e->len)
			lo = mid + 1;
		else
			return e;
	}
	return NULL;
}

bool dsm_extent_keeps_writes(const struct dsm_extent *e)
{
	for (uint32_t c = 0; c <= e->nrep; c++)
		if (!(e->stale >> c & 1) &&
		    !dsm_eng.servers[dsm_extent_copy(e, c).server].lost)
			return true;
	return false;
}

int dsm_extent_live_copy(const struct dsm_extent *e)
{
	for (uint32_t c = 0; c <= e->nrep; c++)
		if (!((e->stale | e->filling) >> c & 1) &&
		    !dsm_eng.servers[dsm_extent_copy(e, c).server].lost)
			return c;
	return -1;
}
