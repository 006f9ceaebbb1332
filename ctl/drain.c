/*
 * drain.c - `dsmctl drain SERVER`: empty a server while its clients run
 * (room: CLI).
 *
 * dsmctl only states the intent, in the registry's drain set; the work is
 * done by the others.  The server sees it with its next heartbeat, stops
 * taking regions and tells its clients; each client moves its stripes to
 * other servers and frees them on the drained one (client/migrate.c).
 * dsmctl then watches the server's record until it holds nothing, with a
 * progress line on a terminal (progress.c) and only the outcome
 * otherwise.  Its figures are the registry's, from the server's
 * heartbeat once a second (copied_estimate says which).
 *
 * Before anything changes, the drain is checked: the server must be live,
 * and the servers that stay must have room for what it holds.  A drain
 * refused changes nothing.  Shared regions do not move (their holders
 * would have to agree on a new home): a server that is the home of one
 * empties only when its holders unmap it, and dsmctl names them.  A cancel needs no live server: the entry of
 * one that is gone can be cancelled too.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ctl.h"
#include "page.h"
#include "util.h"

#define POLL_MS 100        /* how often the registry is read */

/* Bytes of region r that the registry places on server id, replicas
 * included. */
static uint64_t region_on(const struct dsm_reg_region *r, uint32_t id)
{
	uint64_t bytes = 0;

	for (uint32_t j = 0; j < r->n; j++) {
		const struct dsm_reg_extent *e = &r->ext[j];

		bytes += e->server == id ? e->len : 0;
		for (uint32_t c = 0; c < e->nrep; c++)
			bytes += e->rep[c].server == id ? e->len : 0;
	}
	return bytes;
}

/* Bytes of region extents the registry still places on server id, and in
 * how many regions. */
static uint64_t placed_on(const struct snapshot *s, uint32_t id,
			  size_t *nregions)
{
	uint64_t bytes = 0;

	*nregions = 0;
	for (size_t i = 0; i < s->nrgn; i++) {
		uint64_t b = region_on(&s->rgn[i], id);

		*nregions += b != 0;
		bytes += b;
	}
	return bytes;
}

/* Free space on the live servers other than id that are not draining. */
static uint64_t room_elsewhere(const struct snapshot *s, uint32_t id,
			       size_t *nservers)
{
	uint64_t room = 0;

	*nservers = 0;
	for (size_t i = 0; i < s->nsrv; i++) {
		const struct dsm_reg_server *v = &s->srv[i];

		if (v->id == id || v->draining)
			continue;
		(*nservers)++;
		room += v->capacity > v->used ? v->capacity - v->used : 0;
	}
	return room;
}

/* Can the others take what server v holds?  Prints why not. */
static int check_room(const struct ctl *c, const struct snapshot *s,
		      const struct dsm_reg_server *v)
{
	char have[32], need[32];
	size_t n;
	uint64_t room = room_elsewhere(s, v->id, &n);

	if (!n) {
		fprintf(stderr, "dsmctl: cannot drain server %u: no other "
			"server in cluster %s takes regions; start one "
			"first\n", v->id, c->cluster);
		return EXIT_RUNTIME;
	}
	if (room < v->used) {
		fprintf(stderr, "dsmctl: cannot drain server %u: it holds %s "
			"and the other servers have %s free; add capacity "
			"first\n", v->id,
			dsm_fmt_bytes(v->used, need, sizeof(need)),
			dsm_fmt_bytes(room, have, sizeof(have)));
		return EXIT_RUNTIME;
	}
	return 0;
}

static int set_drain_error(struct dsm_reg *reg, const struct ctl *c, bool on,
			   int err)
{
	fprintf(stderr, "dsmctl: cannot %s the drain of server %u at %s: "
		"%s\n", on ? "record" : "cancel", c->server_id,
		dsm_reg_url(reg), strerror(-err));
	return EXIT_RUNTIME;
}

static int set_drain(struct dsm_reg *reg, const struct ctl *c, bool on)
{
	int err = dsm_reg_set_drain(reg, c->server_id, on);

	return err < 0 ? set_drain_error(reg, c, on, err) : 0;
}

/* Out of the drain set, live or not: a server that stopped while it was
 * drained (or that crashed) must not be out of reach of --cancel.  Only
 * an id that is neither live nor in the set is an error. */
static int cancel_drain(struct dsm_reg *reg, const struct ctl *c,
			const struct dsm_reg_server *v)
{
	int err = dsm_reg_set_drain(reg, c->server_id, false);

	if (err < 0)
		return set_drain_error(reg, c, false, err);
	if (!err && !v) {
		fprintf(stderr, "dsmctl: no live server %u in cluster %s, "
			"and no drain of it to cancel ('dsmctl servers' lists "
			"them)\n", c->server_id, c->cluster);
		return EXIT_RUNTIME;
	}
	if (!c->json)
		printf(v ? "server %u: drain cancelled; it takes new regions "
			   "again\n" :
			   "server %u: drain cancelled (the server is not "
			   "live)\n", c->server_id);
	return 0;
}

/* Shared regions whose home is server id: how many, and their bytes. */
static size_t shared_on(const struct snapshot *s, uint32_t id,
			uint64_t *bytes)
{
	size_t n = 0;

	*bytes = 0;
	for (size_t i = 0; i < s->nshr; i++)
		if (s->shr[i].home == id) {
			n++;
			*bytes += s->shr[i].size;
		}
	return n;
}

static void report_shared(const struct snapshot *s, uint32_t id)
{
	for (size_t i = 0; i < s->nshr; i++) {
		const struct dsm_reg_share *sh = &s->shr[i];
		char size[32];

		if (sh->home == id)
			fprintf(stderr, "  shared region '%s': %s there, held "
				"by %u clients; it moves once no lock is held "
				"in it and every holder answers\n", sh->name,
				dsm_fmt_bytes(sh->size, size, sizeof(size)),
				sh->nholders);
	}
}

/* Who still has extents on the server, for a drain that did not end. */
static void report_left(const struct snapshot *s, uint32_t id)
{
	report_shared(s, id);
	for (size_t i = 0; i < s->nrgn; i++) {
		const struct dsm_reg_region *r = &s->rgn[i];
		uint64_t b = region_on(r, id);
		char size[32];

		if (b)
			fprintf(stderr, "  region %" PRIu64 " of client %"
				PRIu64 ": %s there\n", r->id, r->owner,
				dsm_fmt_bytes(b, size, sizeof(size)));
	}
}

static void print_result(const struct ctl *c, bool drained, double secs,
			 uint64_t left)
{
	if (c->json)
		printf("{\"server\": %u, \"drained\": %s, \"seconds\": %.3f, "
		       "\"bytes_left\": %" PRIu64 "}\n", c->server_id,
		       drained ? "true" : "false", secs, left);
	else if (drained)
		printf("server %u drained in %.1f s: it holds nothing and can "
		       "be stopped ('dsmctl drain --cancel %u' puts it back in "
		       "service)\n", c->server_id, secs, c->server_id);
}

/* One look at the registry: 1 drained, 0 not yet, or an exit status.
 * left: what the server holds; read: the pages it has read so far. */
static int look(struct dsm_reg *reg, const struct ctl *c, struct snapshot *s,
		struct progress *p, uint64_t *left, uint64_t *read)
{
	const struct dsm_reg_server *v;
	int rc;

	snapshot_free(s);
	memset(s, 0, sizeof(*s));
	rc = snapshot_fetch(reg, c, NEED_SERVERS | NEED_REGIONS | NEED_SHARES,
			    s);
	if (rc)
		return -rc;
	v = find_server(s, c->server_id);
	if (!v) {
		progress_end(p);
		fprintf(stderr, "dsmctl: server %u left the registry while "
			"draining (stopped or crashed?)\n", c->server_id);
		return -EXIT_RUNTIME;
	}
	*left = v->used;
	*read = v->counters[DSM_RS_PAGES_READ];
	return v->draining && v->used == 0;
}

/* How much of total has been copied off the server, for the progress
 * line.  What it no longer holds is sure, but a client frees a region's
 * stripes there only once it has copied them all: with one big region
 * that figure waits at 0 until the end.  The copies are READs the server
 * serves, so the pages it has read since the drain began (read - read0)
 * move meanwhile; its clients' own faults there add to them, and
 * one-sided RDMA READs are not among them, so that is an estimate, kept
 * below the total until the server holds nothing. */
static uint64_t copied_estimate(uint64_t total, uint64_t left, uint64_t read0,
				uint64_t read)
{
	uint64_t freed = total > left ? total - left : 0;
	uint64_t copied = read > read0 ? (read - read0) * DSM_PAGE_SIZE : 0;
	uint64_t most = total / 100 * 99;

	copied = copied < most ? copied : most;
	return freed > copied ? freed : copied;
}

/* The line before the result, for people: how much moved, how fast. */
static void print_moved(const struct ctl *c, uint64_t total, double secs)
{
	char b[32], r[32];

	if (c->json || !total)
		return;
	printf("  moved %s off server %u in %.1f s (%s/s)\n",
	       dsm_fmt_bytes(total, b, sizeof(b)), c->server_id, secs,
	       dsm_fmt_bytes(secs > 0 ? (uint64_t)(total / secs) : total, r,
			     sizeof(r)));
}

/* Watch until the server is empty or the time is up; total is what it
 * held when the drain began, read0 the pages it had read then. */
static int wait_drained(struct dsm_reg *reg, const struct ctl *c,
			uint64_t total, uint64_t read0)
{
	uint64_t timeout = c->timeout_ms ? c->timeout_ms :
					   DRAIN_DEFAULT_TIMEOUT_S * 1000ULL;
	uint64_t t0 = dsm_reg_now_ms(), left = 0, read = 0, now;
	struct snapshot s = { 0 };
	struct progress p;
	int rc;

	progress_begin(&p, "copied", total, t0);
	while ((rc = look(reg, c, &s, &p, &left, &read)) == 0) {
		now = dsm_reg_now_ms();
		if (now - t0 >= timeout)
			break;
		if (!c->json)
			progress_update(&p, copied_estimate(total, left, read0,
							    read), now);
		usleep(POLL_MS * 1000);
	}
	progress_end(&p);
	if (rc == 1) {
		double secs = (dsm_reg_now_ms() - t0) / 1e3;

		print_moved(c, total, secs);
		print_result(c, true, secs, 0);
		rc = 0;
	} else if (rc == 0) {
		char b[32];

		fprintf(stderr, "dsmctl: server %u still holds %s after %" PRIu64
			" s; the drain stays in effect and clients keep "
			"trying ('dsmctl drain --cancel %u' ends it).  Regions "
			"the registry still places there:\n", c->server_id,
			dsm_fmt_bytes(left, b, sizeof(b)), timeout / 1000,
			c->server_id);
		report_left(&s, c->server_id);
		print_result(c, false, (dsm_reg_now_ms() - t0) / 1e3, left);
		rc = EXIT_RUNTIME;
	} else {
		rc = -rc;
	}
	snapshot_free(&s);
	return rc;
}

int drain_run(struct dsm_reg *reg, const struct ctl *c)
{
	struct snapshot s = { 0 };
	const struct dsm_reg_server *v;
	char used[32];
	size_t n;
	uint64_t sbytes;
	int rc = snapshot_fetch(reg, c, NEED_SERVERS | NEED_REGIONS |
				NEED_SHARES, &s);

	if (rc)
		goto out;
	v = find_server(&s, c->server_id);
	if (c->cancel) {
		rc = cancel_drain(reg, c, v);
		goto out;
	}
	if (!v) {
		fprintf(stderr, "dsmctl: no live server %u in cluster %s "
			"('dsmctl servers' lists them)\n", c->server_id,
			c->cluster);
		rc = EXIT_RUNTIME;
		goto out;
	}
	if ((rc = check_room(c, &s, v)) || (rc = set_drain(reg, c, true)))
		goto out;
	if (!c->json)
		printf("draining server %u (%s): %s in %zu regions to move\n",
		       v->id, v->addr, dsm_fmt_bytes(v->used, used, sizeof(used)),
		       (placed_on(&s, v->id, &n), n));
	if (!c->json && (n = shared_on(&s, v->id, &sbytes)))
		printf("  %s of it in %zu shared regions, moved by their "
		       "holders (one seals and copies each, the others "
		       "follow)\n",
		       dsm_fmt_bytes(sbytes, used, sizeof(used)), n);
	fflush(stdout);
	if (!c->no_wait)
		rc = wait_drained(reg, c, v->used,
				  v->counters[DSM_RS_PAGES_READ]);
out:
	snapshot_free(&s);
	return rc;
}
