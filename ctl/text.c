/*
 * text.c - dsmctl's output for people: a snapshot as aligned tables (room:
 * CLI).
 *
 * Every string from the registry is made printable on the way into a
 * table (printable_dup()), since a record may hold any bytes.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "util.h"

/* ---- UTF-8 --------------------------------------------------------------- */

/* The length of the valid UTF-8 sequence at s, or 0.  json.c uses it too:
 * JSON must be UTF-8, and what a registry record holds may be any bytes. */
size_t utf8_len(const unsigned char *s)
{
	uint32_t c;
	size_t n;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2, c = s[0] & 0x1f;
	else if ((s[0] & 0xf0) == 0xe0)
		n = 3, c = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		n = 4, c = s[0] & 0x07;
	else
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80) /* the NUL at the end, too */
			return 0;
		c = c << 6 | (s[i] & 0x3f);
	}
	/* overlong, beyond U+10FFFF, a surrogate */
	if ((n == 3 && c < 0x800) || (n == 4 && c < 0x10000) ||
	    c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	return n;
}

/* The code point of a control character at s (C0, DEL, or C1: U+0080 to
 * U+009F, two bytes in UTF-8), or -1. */
static int control_at(const unsigned char *s)
{
	if (s[0] < 0x20 || s[0] == 0x7f)
		return s[0];
	if (s[0] == 0xc2 && s[1] >= 0x80 && s[1] < 0xa0)
		return s[1];
	return -1;
}

/* What the registry holds can be any bytes: a control character in a
 * name must not move the cursor of the operator's terminal (escaped, as
 * JSON writes it, so that it can be told from others), and what is not
 * UTF-8 becomes '?' rather than whatever the terminal makes of it. */
char *printable_dup(const char *str)
{
	const unsigned char *p = (const unsigned char *)str;
	char *out = malloc(strlen(str) * 6 + 1), *o = out;

	while (out && *p) {
		size_t n = utf8_len(p);
		int ctl = control_at(p);

		if (ctl >= 0) {
			o += sprintf(o, "\\u%04x", ctl);
			p += ctl < 0x80 ? 1 : 2;
		} else if (!n) {
			*o++ = '?';
			p++;
		} else {
			memcpy(o, p, n);
			o += n;
			p += n;
		}
	}
	if (out)
		*o = '\0';
	return out;
}

/* Columns on screen, not bytes: UTF-8 continuation bytes take none. */
static int text_width(const char *s)
{
	int w = 0;

	for (; *s; s++)
		w += ((unsigned char)*s & 0xc0) != 0x80;
	return w;
}

/* ---- tables -------------------------------------------------------------- */

#define TABLE_COLS 16

/*
 * Rows are kept until the end so that every column is as wide as its
 * widest cell.  A header starting with '>' is right-aligned (numbers).
 */
struct table {
	int ncols;
	size_t nrows, cap;
	char **cell;            /* row-major, malloc'd */
	bool right[TABLE_COLS];
	bool oom;
};


static void table_row(struct table *t, const char *const *cells)
{
	char **row;

	if (t->nrows == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 16;
		char **v = realloc(t->cell, cap * t->ncols * sizeof(*v));

		if (!v) {
			t->oom = true;
			return;
		}
		t->cell = v;
		t->cap = cap;
	}
	row = t->cell + t->nrows++ * t->ncols;
	for (int i = 0; i < t->ncols; i++) {
		row[i] = printable_dup(cells[i]);
		if (!row[i])
			t->oom = true;
	}
}

static void table_init(struct table *t, int ncols, const char *const *header)
{
	const char *h[TABLE_COLS];

	memset(t, 0, sizeof(*t));
	t->ncols = ncols;
	for (int i = 0; i < ncols; i++) {
		t->right[i] = header[i][0] == '>';
		h[i] = header[i] + t->right[i];
	}
	table_row(t, h);
}

static void table_print(const struct table *t)
{
	int width[TABLE_COLS] = { 0 };

	for (size_t r = 0; r < t->nrows; r++)
		for (int i = 0; i < t->ncols; i++) {
			int w = text_width(t->cell[r * t->ncols + i]);

			width[i] = w > width[i] ? w : width[i];
		}
	for (size_t r = 0; r < t->nrows; r++) {
		for (int i = 0; i < t->ncols; i++) {
			const char *s = t->cell[r * t->ncols + i];
			int pad = width[i] - text_width(s);
			bool last = i == t->ncols - 1;

			printf("%*s%s%*s", t->right[i] ? pad : 0, "", s,
			       t->right[i] || last ? 0 : pad, "");
			fputs(last ? "\n" : "  ", stdout);
		}
	}
}

static void table_free(struct table *t)
{
	for (size_t i = 0; i < t->nrows * t->ncols; i++)
		free(t->cell[i]);
	free(t->cell);
}

/* Print and free; a table we could not build whole is not printed, and
 * that is a failure, not an empty answer. */
static int table_done(struct table *t)
{
	bool oom = t->oom;

	if (oom)
		fprintf(stderr, "dsmctl: out of memory building a table\n");
	else
		table_print(t);
	table_free(t);
	return oom ? EXIT_RUNTIME : 0;
}

/* ---- cells --------------------------------------------------------------- */

/* "0.4s", "3m07s", "5h02m", "12d03h" */
static const char *fmt_age(uint64_t then_ms, uint64_t now_ms, char *buf,
			   size_t len)
{
	/* another machine's clock may run a little ahead of ours: a time
	 * in our future is "just now" */
	unsigned long long ms = now_ms > then_ms ? now_ms - then_ms : 0;
	unsigned long long s = ms / 1000;

	if (s < 60)
		snprintf(buf, len, "%llu.%llus", s, ms % 1000 / 100);
	else if (s < 3600)
		snprintf(buf, len, "%llum%02llus", s / 60, s % 60);
	else if (s < 86400)
		snprintf(buf, len, "%lluh%02llum", s / 3600, s % 3600 / 60);
	else
		snprintf(buf, len, "%llud%02lluh", s / 86400, s % 86400 / 3600);
	return buf;
}

static const char *fmt_u64(uint64_t v, char *buf, size_t len)
{
	snprintf(buf, len, "%llu", (unsigned long long)v);
	return buf;
}

/* The server of copy c of e (0: the first). */
static uint32_t copy_server(const struct dsm_reg_extent *e, uint32_t c)
{
	return c ? e->rep[c - 1].server : e->server;
}

/* Is server id among those of r's copies before copy c of extent i? */
static bool seen_before(const struct dsm_reg_region *r, uint32_t i,
			uint32_t c, uint32_t id)
{
	for (uint32_t j = 0; j <= i; j++)
		for (uint32_t k = 0; k <= r->ext[j].nrep; k++) {
			if (j == i && k == c)
				return false;
			if (copy_server(&r->ext[j], k) == id)
				return true;
		}
	return false;
}

/* "17,42": the servers r's extents (and their replicas) live on, each
 * once, in extent order; returns how many. */
static uint32_t fmt_spanned(const struct dsm_reg_region *r, char *buf,
			    size_t len)
{
	uint32_t count = 0;
	size_t used = 0;

	buf[0] = '\0';
	for (uint32_t i = 0; i < r->n; i++)
		for (uint32_t c = 0; c <= r->ext[i].nrep; c++) {
			uint32_t id = copy_server(&r->ext[i], c);

			if (seen_before(r, i, c, id))
				continue;
			count++;
			if (used < len)
				used += snprintf(buf + used, len - used, "%s%u",
						 count > 1 ? "," : "", id);
		}
	if (used >= len && len > 4)
		strcpy(buf + len - 4, "...");
	return count;
}

/* ---- commands ------------------------------------------------------------ */

static int print_servers_table(const struct snapshot *s)
{
	static const char *const head[] = { ">ID", "ADDRESS", ">CAPACITY",
					    ">USED", ">REGIONS", ">CLIENTS",
					    ">HEARTBEAT", "STATE",
					    "TRANSPORTS" };
	struct table t;

	table_init(&t, 9, head);
	for (size_t i = 0; i < s->nsrv; i++) {
		const struct dsm_reg_server *v = &s->srv[i];
		char id[24], cap[32], used[32], rg[24], cl[24], beat[32];

		table_row(&t, (const char *const[]){
			fmt_u64(v->id, id, sizeof(id)), v->addr,
			dsm_fmt_bytes(v->capacity, cap, sizeof(cap)),
			dsm_fmt_bytes(v->used, used, sizeof(used)),
			fmt_u64(v->regions, rg, sizeof(rg)),
			fmt_u64(v->clients, cl, sizeof(cl)),
			fmt_age(v->heartbeat_ms, s->now_ms, beat,
				sizeof(beat)),
			v->draining ? "draining" : "serving", v->transports });
	}
	return table_done(&t);
}

/* How a client reaches its servers: one word when it is the same for
 * all ("rdma"), else server by server ("7=rdma,9=tcp"); "-" if its
 * record does not say (a client from before RDMA). */
static const char *fmt_transports(const char *text, char *buf, size_t len)
{
	const char *first = NULL;
	size_t flen = 0;

	for (const char *p = text; *p; p += strcspn(p, ",")) {
		const char *name;
		size_t n;

		p += *p == ',';
		name = strchr(p, '=');
		if (!name || name > p + strcspn(p, ","))
			break;
		name++;
		n = strcspn(name, ",");
		if (first && (n != flen || strncmp(name, first, n))) {
			snprintf(buf, len, "%s", text);
			return buf;
		}
		first = name;
		flen = n;
	}
	if (!first)
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, "%.*s", (int)flen, first);
	return buf;
}

static int print_clients_table(const struct snapshot *s)
{
	static const char *const head[] = { ">ID", "HOST", ">PID", ">AGE",
					    ">HEARTBEAT", "TRANSPORT" };
	struct table t;

	table_init(&t, 6, head);
	for (size_t i = 0; i < s->ncli; i++) {
		const struct dsm_reg_client *v = &s->cli[i];
		char id[24], pid[16], age[32], beat[32], tr[256];

		table_row(&t, (const char *const[]){
			fmt_u64(v->id, id, sizeof(id)), v->host,
			fmt_u64(v->pid, pid, sizeof(pid)),
			fmt_age(v->started_ms, s->now_ms, age, sizeof(age)),
			fmt_age(v->heartbeat_ms, s->now_ms, beat,
				sizeof(beat)),
			fmt_transports(v->transports, tr, sizeof(tr)) });
	}
	return table_done(&t);
}

int text_servers(const struct ctl *c, const struct snapshot *s)
{
	if (!s->nsrv) {
		printf("no live servers in cluster %s\n", c->cluster);
		return 0;
	}
	return print_servers_table(s);
}

int text_status(const struct ctl *c, const struct snapshot *s)
{
	uint64_t cap, used;
	char b1[32], b2[32], b3[32];

	snapshot_totals(s, &cap, &used);
	printf("cluster   %s\n", c->cluster);
	printf("registry  %s\n", c->url);
	printf("servers   %zu live\n", s->nsrv);
	printf("capacity  %s, %s used, %s free\n",
	       dsm_fmt_bytes(cap, b1, sizeof(b1)),
	       dsm_fmt_bytes(used, b2, sizeof(b2)),
	       dsm_fmt_bytes(used < cap ? cap - used : 0, b3, sizeof(b3)));
	printf("regions   %zu", s->nrgn);
	if (snapshot_degraded(s))
		printf(", %zu degraded (a copy on a server no longer live)",
		       snapshot_degraded(s));
	printf("\nshared    %zu", s->nshr);
	if (s->nshr)
		printf(" held by %zu", snapshot_holders(s));
	printf("\nclients   %zu\n", s->ncli);
	if (s->nsrv) {
		putchar('\n');
		if (print_servers_table(s))
			return EXIT_RUNTIME;
	}
	if (!s->ncli)
		return 0;
	putchar('\n');
	return print_clients_table(s);
}

/* "7@node1,12@node2": a shared region's holders, each client id at its
 * host, cut short with "..." (HOLDERS has the count). */
static const char *fmt_holders(const struct dsm_reg_share *sh, char *buf,
			       size_t len)
{
	size_t used = 0;

	buf[0] = '\0';
	for (uint32_t i = 0; i < sh->nholders && used < len; i++)
		used += snprintf(buf + used, len - used, "%s%llu@%s",
				 i ? "," : "",
				 (unsigned long long)sh->holder[i].client,
				 sh->holder[i].host);
	if (used >= len && len > 4)
		strcpy(buf + len - 4, "...");
	return buf;
}

static int print_shares_table(const struct snapshot *s)
{
	static const char *const head[] = { "NAME", ">SIZE", ">HOME",
					    ">SERVER_REGION", ">HOLDERS",
					    "CLIENTS" };
	struct table t;

	table_init(&t, 6, head);
	for (size_t i = 0; i < s->nshr; i++) {
		const struct dsm_reg_share *sh = &s->shr[i];
		char size[32], home[16], rid[24], n[16], holders[256];

		table_row(&t, (const char *const[]){
			sh->name, dsm_fmt_bytes(sh->size, size, sizeof(size)),
			fmt_u64(sh->home, home, sizeof(home)),
			fmt_u64(sh->region_id, rid, sizeof(rid)),
			fmt_u64(sh->nholders, n, sizeof(n)),
			fmt_holders(sh, holders, sizeof(holders)) });
	}
	return table_done(&t);
}

/* Private regions, then the shared ones under a heading of their own:
 * their columns differ (a shared region has no owner and no id of the
 * registry's, but holders). */
int text_regions(const struct ctl *c, const struct snapshot *s)
{
	static const char *const head[] = { ">ID", "NAME", ">SIZE", ">OWNER",
					    ">EXTENTS", "SERVERS" };
	struct table t;

	if (!s->nrgn && !s->nshr) {
		printf("no regions in cluster %s\n", c->cluster);
		return 0;
	}
	if (!s->nrgn)
		goto shared;
	table_init(&t, 6, head);
	for (size_t i = 0; i < s->nrgn; i++) {
		const struct dsm_reg_region *r = &s->rgn[i];
		char id[24], size[32], owner[24], n[16], spanned[256];

		fmt_spanned(r, spanned, sizeof(spanned));
		table_row(&t, (const char *const[]){
			fmt_u64(r->id, id, sizeof(id)),
			*r->name ? r->name : "-",
			dsm_fmt_bytes(r->size, size, sizeof(size)),
			fmt_u64(r->owner, owner, sizeof(owner)),
			fmt_u64(r->n, n, sizeof(n)),
			*spanned ? spanned : "-" });
	}
	if (table_done(&t))
		return EXIT_RUNTIME;
	if (!s->nshr)
		return 0;
	putchar('\n');
shared:
	printf("shared regions\n");
	return print_shares_table(s);
}

int text_clients(const struct ctl *c, const struct snapshot *s)
{
	if (!s->ncli) {
		printf("no clients in cluster %s\n", c->cluster);
		return 0;
	}
	return print_clients_table(s);
}

static int print_extents_table(const struct snapshot *s)
{
	static const char *const head[] = { ">OFFSET", ">LENGTH", ">SERVER",
					    "ADDRESS", ">SERVER_REGION",
					    ">POOL_OFFSET" };
	const struct dsm_reg_region *r = &s->one;
	struct table t;

	table_init(&t, 6, head);
	for (uint32_t i = 0; i < r->n; i++) {
		const struct dsm_reg_extent *e = &r->ext[i];

		/* one row per copy: the extent's own, then its replicas' */
		for (uint32_t c = 0; c <= e->nrep; c++) {
			struct dsm_reg_copy h = c ? e->rep[c - 1] :
				(struct dsm_reg_copy){ e->server, e->region_id,
						       e->pool_off };
			const struct dsm_reg_server *v = find_server(s, h.server);
			char off[24], len[24], srv[16], rid[24], pool[24];

			table_row(&t, (const char *const[]){
				fmt_u64(e->off, off, sizeof(off)),
				fmt_u64(e->len, len, sizeof(len)),
				fmt_u64(h.server, srv, sizeof(srv)),
				v ? v->addr : "(gone)",
				fmt_u64(h.region_id, rid, sizeof(rid)),
				fmt_u64(h.pool_off, pool, sizeof(pool)) });
		}
	}
	return table_done(&t);
}

int text_region(const struct ctl *c, const struct snapshot *s)
{
	const struct dsm_reg_region *r = &s->one;
	char size[32], age[32];
	char *name = printable_dup(*r->name ? r->name : "-");
	uint32_t gone = 0;

	if (!name) {
		fprintf(stderr, "dsmctl: out of memory\n");
		return EXIT_RUNTIME;
	}
	for (uint32_t i = 0; i < r->n; i++)
		for (uint32_t k = 0; k <= r->ext[i].nrep; k++)
			gone += !find_server(s, copy_server(&r->ext[i], k));
	printf("region   %llu in cluster %s\n", (unsigned long long)r->id,
	       c->cluster);
	printf("name     %s\n", name);
	free(name);
	printf("size     %s (%llu bytes)\n",
	       dsm_fmt_bytes(r->size, size, sizeof(size)),
	       (unsigned long long)r->size);
	printf("owner    client %llu\n", (unsigned long long)r->owner);
	printf("created  %s ago\n",
	       fmt_age(r->created_ms, s->now_ms, age, sizeof(age)));
	printf("extents  %u", r->n);
	if (r->n && r->ext[0].nrep)
		printf(", %u copies of each on distinct servers (replicas)",
		       r->ext[0].nrep + 1);
	if (gone)
		printf(", %u %s on servers no longer live", gone,
		       r->n && r->ext[0].nrep ? "copies" : "");
	printf("\n\n");
	return print_extents_table(s);
}

static int print_holders_table(const struct snapshot *s,
				const struct dsm_reg_share *sh)
{
	static const char *const head[] = { ">CLIENT", "HOST", ">PID",
					    ">ATTACHED" };
	struct table t;

	table_init(&t, 4, head);
	for (uint32_t i = 0; i < sh->nholders; i++) {
		const struct dsm_reg_holder *h = &sh->holder[i];
		char id[24], pid[16], age[32];

		table_row(&t, (const char *const[]){
			fmt_u64(h->client, id, sizeof(id)), h->host,
			fmt_u64(h->pid, pid, sizeof(pid)),
			fmt_age(h->attached_ms, s->now_ms, age, sizeof(age)) });
	}
	return table_done(&t);
}

int text_share(const struct ctl *c, const struct snapshot *s)
{
	const struct dsm_reg_share *sh = find_share(s, c->share_name);
	const struct dsm_reg_server *home = find_server(s, sh->home);
	char *name = printable_dup(sh->name), size[32];
	char *addr = printable_dup(home ? home->addr : "(gone)");

	if (!name || !addr) {
		free(name);
		free(addr);
		fprintf(stderr, "dsmctl: out of memory\n");
		return EXIT_RUNTIME;
	}
	printf("shared   %s in cluster %s\n", name, c->cluster);
	free(name);
	printf("key      %s\n", sh->key);
	printf("size     %s (%llu bytes)\n",
	       dsm_fmt_bytes(sh->size, size, sizeof(size)),
	       (unsigned long long)sh->size);
	printf("home     server %u at %s, its region %llu at pool offset "
	       "%llu\n", sh->home, addr, (unsigned long long)sh->region_id,
	       (unsigned long long)sh->pool_off);
	free(addr);
	printf("holders  %u\n\n", sh->nholders);
	return print_holders_table(s, sh);
}

/* ---- stats --------------------------------------------------------------- */

/* A counter: the total since the process started, or, when --watch has the
 * same record from the previous round (was != NULL), its rate per second
 * since then. */
static const char *fmt_counter(uint64_t now, const uint64_t *was,
			       uint64_t dt_ms, bool bytes, char *buf,
			       size_t len)
{
	uint64_t v = now;
	char num[24];

	if (was && dt_ms)
		v = (now > *was ? now - *was : 0) * 1000 / dt_ms;
	if (bytes)
		dsm_fmt_bytes(v, num, sizeof(num));
	else
		snprintf(num, sizeof(num), "%llu", (unsigned long long)v);
	snprintf(buf, len, "%s%s", num, was ? "/s" : "");
	return buf;
}

static const char *fmt_ns(uint64_t ns, char *buf, size_t len)
{
	snprintf(buf, len, "%.1fus", ns / 1000.0);
	return buf;
}

static const struct dsm_reg_server *prev_server(const struct ctl *c,
						uint32_t id)
{
	return c->prev ? find_server(c->prev, id) : NULL;
}

static const struct dsm_reg_client *prev_client(const struct ctl *c,
						uint64_t id)
{
	for (size_t i = 0; c->prev && i < c->prev->ncli; i++)
		if (c->prev->cli[i].id == id)
			return &c->prev->cli[i];
	return NULL;
}

static int stats_servers(const struct ctl *c, const struct snapshot *s,
			  uint64_t dt)
{
	static const char *const head[] = {
		">ID", "ADDRESS", ">READS", ">WRITES", ">PAGES OUT",
		">PAGES IN", ">DISCARDED", ">BYTES IN", ">BYTES OUT", ">ERRORS",
		">REFUSED", ">SHED", ">OVER LIMIT" };
	static const bool bytes[DSM_RS_NCOUNTERS] = {
		[DSM_RS_BYTES_IN] = true, [DSM_RS_BYTES_OUT] = true };
	struct table t;

	table_init(&t, 2 + DSM_RS_NCOUNTERS, head);
	for (size_t i = 0; i < s->nsrv; i++) {
		const struct dsm_reg_server *v = &s->srv[i];
		const struct dsm_reg_server *p = prev_server(c, v->id);
		uint64_t now[DSM_RS_NCOUNTERS], was[DSM_RS_NCOUNTERS];
		char id[16], cell[DSM_RS_NCOUNTERS][32];
		const char *row[2 + DSM_RS_NCOUNTERS] = { id, v->addr };

		/* with what its clients read and wrote one-sidedly */
		server_counters(s, v, now);
		if (p)
			server_counters(c->prev, p, was);
		snprintf(id, sizeof(id), "%u", v->id);
		for (int k = 0; k < DSM_RS_NCOUNTERS; k++)
			row[2 + k] = fmt_counter(now[k], p ? &was[k] : NULL,
						 dt, bytes[k], cell[k],
						 sizeof(cell[k]));
		table_row(&t, row);
	}
	return table_done(&t);
}

static int stats_clients(const struct ctl *c, const struct snapshot *s,
			  uint64_t dt)
{
	static const char *const head[] = {
		">ID", ">PID", ">FAULTS", ">WP FAULTS", ">FETCHED", ">EVICTED",
		">WRITTEN BACK", ">BYTES IN", ">BYTES OUT", ">RESIDENT",
		">P50", ">P99", ">BLOCKED" };
	struct table t;

	table_init(&t, 13, head);
	for (size_t i = 0; i < s->ncli; i++) {
		const struct dsm_reg_client *v = &s->cli[i];
		const struct dsm_reg_client *p = prev_client(c, v->id);
		char id[24], pid[16], cell[DSM_RC_NCOUNTERS][32];
		const uint64_t *n = v->counters;
		const char *row[13] = { fmt_u64(v->id, id, sizeof(id)),
					fmt_u64(v->pid, pid, sizeof(pid)) };

		for (int k = 0; k <= DSM_RC_BYTES_OUT; k++)
			row[2 + k] = fmt_counter(n[k], p ? &p->counters[k] : NULL,
						 dt, k >= DSM_RC_BYTES_IN,
						 cell[k], sizeof(cell[k]));
		row[9] = dsm_fmt_bytes(n[DSM_RC_RESIDENT_PAGES] * 4096,
				       cell[DSM_RC_RESIDENT_PAGES], 32);
		row[10] = fmt_ns(n[DSM_RC_FAULT_P50_NS],
				 cell[DSM_RC_FAULT_P50_NS], 32);
		row[11] = fmt_ns(n[DSM_RC_FAULT_P99_NS],
				 cell[DSM_RC_FAULT_P99_NS], 32);
		snprintf(cell[DSM_RC_BLOCKTIME_NS], 32, "%.2fs",
			 n[DSM_RC_BLOCKTIME_NS] / 1e9);
		row[12] = cell[DSM_RC_BLOCKTIME_NS];
		table_row(&t, row);
	}
	return table_done(&t);
}

int text_stats(const struct ctl *c, const struct snapshot *s)
{
	uint64_t dt = c->prev ? s->now_ms - c->prev->now_ms : 0;
	int rc = 0;

	if (c->watch_ms)
		printf("--- cluster %s, %s\n", c->cluster, c->prev ?
		       "per second since the last round" :
		       "totals since each process started");
	printf("servers\n");
	if (s->nsrv)
		rc = stats_servers(c, s, dt);
	else
		printf("  none\n");
	printf("\nclients (resident, latency and blocked time: now)\n");
	if (s->ncli)
		rc |= stats_clients(c, s, dt);
	else
		printf("  none\n");
	return rc;
}
