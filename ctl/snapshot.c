/*
 * snapshot.c - what dsmctl shows, read from the registry in one go (room:
 * CLI).
 *
 * A command says what it needs (NEED_*); it is all read before anything
 * is printed, so that a registry that fails halfway leaves an error
 * message and exit status 1, not half a table.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "page.h"

/* The password file is read here, not while parsing: a file we cannot
 * use is a runtime error (exit 1), as a registry we cannot reach is. */
int open_registry(struct ctl *c, struct dsm_reg **reg)
{
	char err[512];
	int rc = dsm_reg_addr_init(&c->addr, c->given_url, c->pass_file,
				   c->pass_opt, err, sizeof(err));

	if (!rc)
		rc = dsm_reg_open(&c->addr, c->cluster, reg, err, sizeof(err));
	dsm_reg_addr_wipe(&c->addr);
	if (rc) {
		fprintf(stderr, "dsmctl: %s\n", err);
		return EXIT_RUNTIME;
	}
	return 0;
}

static int fetch_region(struct dsm_reg *reg, const struct ctl *c,
			struct snapshot *s)
{
	int err = dsm_reg_get_region(reg, c->region_id, &s->one);

	if (err == -ENOENT)
		fprintf(stderr, "dsmctl: no region %llu in cluster %s\n",
			(unsigned long long)c->region_id, c->cluster);
	else if (err == -EINVAL)
		fprintf(stderr, "dsmctl: region %llu in cluster %s has a "
			"malformed record (see redis-cli HGETALL "
			"dsm:%s:region:%llu)\n",
			(unsigned long long)c->region_id, c->cluster,
			c->cluster, (unsigned long long)c->region_id);
	else if (err)
		fprintf(stderr, "dsmctl: cannot read region %llu from %s: %s\n",
			(unsigned long long)c->region_id, c->url,
			strerror(-err));
	return err ? EXIT_RUNTIME : 0;
}

/* Regions left out of the listing, named with their keys: the rest is
 * still shown, and the exit status says something is wrong. */
static void warn_bad(const struct ctl *c, const char *what, char **bad,
		     size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char *id = printable_dup(bad[i]);

		fprintf(stderr, "dsmctl: warning: dsm:%s:%s:%s is a "
			"malformed record, not listed (see redis-cli HGETALL "
			"on that key)\n", c->cluster, what, id ? id : "?");
		free(id);
	}
}

/* Everything cmd needs, read as close together in time as we can. */
int snapshot_fetch(struct dsm_reg *reg, const struct ctl *c, unsigned need,
		   struct snapshot *s)
{
	const char *what = NULL;
	int err = 0;

	if (need & NEED_REGION && fetch_region(reg, c, s))
		return EXIT_RUNTIME;
	if (need & NEED_SERVERS) {
		what = "servers";
		err = dsm_reg_list_servers(reg, &s->srv, &s->nsrv);
	}
	if (!err && need & NEED_CLIENTS) {
		what = "clients";
		err = dsm_reg_list_clients(reg, &s->cli, &s->ncli);
	}
	if (!err && need & NEED_REGIONS) {
		what = "regions";
		err = dsm_reg_list_regions(reg, &s->rgn, &s->nrgn,
					   &s->bad_rgn, &s->nbad_rgn);
	}
	if (!err && need & NEED_SHARES) {
		what = "shared regions";
		err = dsm_reg_list_shares(reg, &s->shr, &s->nshr,
					  &s->bad_shr, &s->nbad_shr);
	}
	if (!err && need & NEED_SHARE && !find_share(s, c->share_name)) {
		char *name = printable_dup(c->share_name);

		fprintf(stderr, "dsmctl: no shared region '%s' with a live "
			"holder in cluster %s\n", name ? name : "?",
			c->cluster);
		free(name);
		return EXIT_RUNTIME;
	}
	if (!err) {
		warn_bad(c, "region", s->bad_rgn, s->nbad_rgn);
		warn_bad(c, "share", s->bad_shr, s->nbad_shr);
	}
	s->now_ms = dsm_reg_now_ms();
	if (err)
		fprintf(stderr, "dsmctl: cannot list the %s of cluster %s at "
			"%s: %s\n", what, c->cluster, c->url, strerror(-err));
	return err ? EXIT_RUNTIME : 0;
}

void snapshot_free(struct snapshot *s)
{
	free(s->srv);
	free(s->cli);
	dsm_reg_regions_free(s->rgn, s->nrgn);
	dsm_reg_ids_free(s->bad_rgn, s->nbad_rgn);
	dsm_reg_shares_free(s->shr, s->nshr);
	dsm_reg_ids_free(s->bad_shr, s->nbad_shr);
	dsm_reg_region_clear(&s->one);
}

const struct dsm_reg_server *find_server(const struct snapshot *s,
					 uint32_t id)
{
	for (size_t i = 0; i < s->nsrv; i++)
		if (s->srv[i].id == id)
			return &s->srv[i];
	return NULL;
}

const struct dsm_reg_share *find_share(const struct snapshot *s,
				       const char *name)
{
	for (size_t i = 0; i < s->nshr; i++)
		if (!strcmp(s->shr[i].name, name))
			return &s->shr[i];
	return NULL;
}

size_t snapshot_holders(const struct snapshot *s)
{
	size_t n = 0;

	for (size_t i = 0; i < s->nshr; i++)
		n += s->shr[i].nholders;
	return n;
}

void snapshot_one_sided(const struct snapshot *s, uint32_t server,
			struct dsm_reg_one_sided *out)
{
	*out = (struct dsm_reg_one_sided){ 0 };
	/* a malformed field counts as nothing: the rest still adds up */
	for (size_t i = 0; i < s->ncli; i++)
		dsm_reg_one_sided_for(s->cli[i].one_sided, server, out);
}

void server_counters(const struct snapshot *s,
		     const struct dsm_reg_server *v,
		     uint64_t out[DSM_RS_NCOUNTERS])
{
	struct dsm_reg_one_sided o;

	memcpy(out, v->counters, sizeof(v->counters));
	snapshot_one_sided(s, v->id, &o);
	out[DSM_RS_READS] += o.reads;
	out[DSM_RS_WRITES] += o.writes;
	out[DSM_RS_PAGES_READ] += o.pages_read;
	out[DSM_RS_PAGES_WRITTEN] += o.pages_written;
	out[DSM_RS_BYTES_IN] += o.pages_written * DSM_PAGE_SIZE;
	out[DSM_RS_BYTES_OUT] += o.pages_read * DSM_PAGE_SIZE;
}

static bool region_degraded(const struct snapshot *s,
			    const struct dsm_reg_region *r)
{
	for (uint32_t i = 0; i < r->n; i++) {
		const struct dsm_reg_extent *e = &r->ext[i];

		if (!find_server(s, e->server))
			return true;
		for (uint32_t c = 0; c < e->nrep; c++)
			if (!find_server(s, e->rep[c].server))
				return true;
	}
	return false;
}

size_t snapshot_degraded(const struct snapshot *s)
{
	size_t n = 0;

	for (size_t i = 0; i < s->nrgn; i++)
		n += region_degraded(s, &s->rgn[i]);
	return n;
}

void snapshot_totals(const struct snapshot *s, uint64_t *capacity,
		     uint64_t *used)
{
	*capacity = *used = 0;
	for (size_t i = 0; i < s->nsrv; i++) {
		*capacity += s->srv[i].capacity;
		*used += s->srv[i].used;
	}
}
