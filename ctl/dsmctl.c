/*
 * dsmctl.c - the operator's view of a dsm cluster, as its registry sees it.
 *
 * Every command runs the same three steps, each in functions of its own:
 * parse the command line (usage errors exit 2 before anything is
 * contacted), fetch a snapshot from the registry (dsm/registry.h:
 * blocking, with a timeout), then print the snapshot as tables for people
 * or as one JSON document for programs.  A command is a row of commands[]
 * saying what it fetches and how it prints.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registry.h"
#include "util.h"

#define EXIT_RUNTIME 1
#define EXIT_USAGE 2

/* What the command line asked for. */
struct ctl {
	const char *url;
	const char *cluster;
	bool json;
	uint64_t region_id;     /* region show */
};

/* What a command fetches before it prints anything. */
enum {
	NEED_SERVERS = 1,
	NEED_CLIENTS = 2,
	NEED_REGIONS = 4,
	NEED_REGION = 8,        /* the one region ctl.region_id */
};

struct snapshot {
	struct dsm_reg_server *srv;
	size_t nsrv;
	struct dsm_reg_client *cli;
	size_t ncli;
	struct dsm_reg_region *rgn;
	size_t nrgn;
	struct dsm_reg_region one;
	uint64_t now_ms;        /* our clock when the snapshot was taken */
};

struct command {
	const char *name;       /* one or two words: "region show" */
	const char *args;       /* positional arguments, for usage lines */
	int nargs;
	unsigned need;          /* NEED_* */
	const char *summary;
	const char *help;
	void (*parse)(struct ctl *c, char **args);
	void (*text)(const struct ctl *c, const struct snapshot *s);
	void (*json)(const struct ctl *c, const struct snapshot *s);
};

static void parse_region_id(struct ctl *c, char **args);

/* ---- fetching ------------------------------------------------------------ */

static int open_registry(const struct ctl *c, struct dsm_reg **reg)
{
	char err[512];

	if (dsm_reg_open(c->url, c->cluster, reg, err, sizeof(err))) {
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

/* Everything cmd needs, read as close together in time as we can. */
static int fetch(struct dsm_reg *reg, const struct ctl *c, unsigned need,
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
		err = dsm_reg_list_regions(reg, &s->rgn, &s->nrgn);
	}
	s->now_ms = dsm_reg_now_ms();
	if (err)
		fprintf(stderr, "dsmctl: cannot list the %s of cluster %s at "
			"%s: %s\n", what, c->cluster, c->url, strerror(-err));
	return err ? EXIT_RUNTIME : 0;
}

static void snapshot_free(struct snapshot *s)
{
	free(s->srv);
	free(s->cli);
	dsm_reg_regions_free(s->rgn, s->nrgn);
	dsm_reg_region_clear(&s->one);
}

static const struct dsm_reg_server *find_server(const struct snapshot *s,
						uint32_t id)
{
	for (size_t i = 0; i < s->nsrv; i++)
		if (s->srv[i].id == id)
			return &s->srv[i];
	return NULL;
}

/* ---- text ---------------------------------------------------------------- */

/* The length of the valid UTF-8 sequence at s, or 0.  JSON must be UTF-8,
 * and what a registry record holds may be any bytes. */
static size_t utf8_len(const unsigned char *s)
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

/* ---- tables -------------------------------------------------------------- */

#define TABLE_COLS 8

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

/* What the registry holds can be any bytes: a control character in a
 * name must not move the cursor of the operator's terminal, and what is
 * not UTF-8 becomes '?' rather than whatever the terminal makes of it. */
static char *printable(char *s)
{
	unsigned char *p = (unsigned char *)s;

	while (p && *p) {
		size_t n = utf8_len(p);

		/* C0 and C1 controls, DEL, and what is not UTF-8 */
		if (!n || *p < 0x20 || *p == 0x7f ||
		    (*p == 0xc2 && p[1] < 0xa0)) {
			*p++ = '?';
			continue;
		}
		p += n;
	}
	return s;
}

static char *cell_dup(const char *s)
{
	return printable(strdup(s));
}

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
		row[i] = cell_dup(cells[i]);
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

/* Columns on screen, not bytes: UTF-8 continuation bytes take none. */
static int text_width(const char *s)
{
	int w = 0;

	for (; *s; s++)
		w += ((unsigned char)*s & 0xc0) != 0x80;
	return w;
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

/* Print and free; a table we could not build whole is not printed. */
static void table_done(struct table *t)
{
	if (t->oom)
		fprintf(stderr, "dsmctl: out of memory\n");
	else
		table_print(t);
	table_free(t);
}

/* ---- human output -------------------------------------------------------- */

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

static void print_servers_table(const struct snapshot *s)
{
	static const char *const head[] = { ">ID", "ADDRESS", ">CAPACITY",
					    ">USED", ">REGIONS", ">CLIENTS",
					    ">HEARTBEAT" };
	struct table t;

	table_init(&t, 7, head);
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
				sizeof(beat)) });
	}
	table_done(&t);
}

static void text_servers(const struct ctl *c, const struct snapshot *s)
{
	if (!s->nsrv) {
		printf("no live servers in cluster %s\n", c->cluster);
		return;
	}
	print_servers_table(s);
}

static void text_status(const struct ctl *c, const struct snapshot *s)
{
	uint64_t cap = 0, used = 0;
	char b1[32], b2[32], b3[32];

	for (size_t i = 0; i < s->nsrv; i++) {
		cap += s->srv[i].capacity;
		used += s->srv[i].used;
	}
	printf("cluster   %s\n", c->cluster);
	printf("registry  %s\n", c->url);
	printf("servers   %zu live\n", s->nsrv);
	printf("capacity  %s, %s used, %s free\n",
	       dsm_fmt_bytes(cap, b1, sizeof(b1)),
	       dsm_fmt_bytes(used, b2, sizeof(b2)),
	       dsm_fmt_bytes(used < cap ? cap - used : 0, b3, sizeof(b3)));
	printf("regions   %zu\n", s->nrgn);
	printf("clients   %zu\n", s->ncli);
	if (s->nsrv) {
		putchar('\n');
		print_servers_table(s);
	}
}

/* "17,42": the servers r's extents live on, each once, in extent order;
 * returns how many. */
static uint32_t fmt_spanned(const struct dsm_reg_region *r, char *buf,
			    size_t len)
{
	uint32_t count = 0;
	size_t used = 0;

	buf[0] = '\0';
	for (uint32_t i = 0; i < r->n; i++) {
		uint32_t j = 0;

		while (j < i && r->ext[j].server != r->ext[i].server)
			j++;
		if (j < i)
			continue;
		count++;
		if (used < len)
			used += snprintf(buf + used, len - used, "%s%u",
					 count > 1 ? "," : "",
					 r->ext[i].server);
	}
	if (used >= len && len > 4)
		strcpy(buf + len - 4, "...");
	return count;
}

static void text_regions(const struct ctl *c, const struct snapshot *s)
{
	static const char *const head[] = { ">ID", "NAME", ">SIZE", ">OWNER",
					    ">EXTENTS", "SERVERS" };
	struct table t;

	if (!s->nrgn) {
		printf("no regions in cluster %s\n", c->cluster);
		return;
	}
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
	table_done(&t);
}

static void text_clients(const struct ctl *c, const struct snapshot *s)
{
	static const char *const head[] = { ">ID", "HOST", ">PID", ">AGE",
					    ">HEARTBEAT" };
	struct table t;

	if (!s->ncli) {
		printf("no clients in cluster %s\n", c->cluster);
		return;
	}
	table_init(&t, 5, head);
	for (size_t i = 0; i < s->ncli; i++) {
		const struct dsm_reg_client *v = &s->cli[i];
		char id[24], pid[16], age[32], beat[32];

		table_row(&t, (const char *const[]){
			fmt_u64(v->id, id, sizeof(id)), v->host,
			fmt_u64(v->pid, pid, sizeof(pid)),
			fmt_age(v->started_ms, s->now_ms, age, sizeof(age)),
			fmt_age(v->heartbeat_ms, s->now_ms, beat,
				sizeof(beat)) });
	}
	table_done(&t);
}

static void print_extents_table(const struct snapshot *s)
{
	static const char *const head[] = { ">OFFSET", ">LENGTH", ">SERVER",
					    "ADDRESS", ">SERVER_REGION",
					    ">POOL_OFFSET" };
	const struct dsm_reg_region *r = &s->one;
	struct table t;

	table_init(&t, 6, head);
	for (uint32_t i = 0; i < r->n; i++) {
		const struct dsm_reg_extent *e = &r->ext[i];
		const struct dsm_reg_server *v = find_server(s, e->server);
		char off[24], len[24], srv[16], rid[24], pool[24];

		table_row(&t, (const char *const[]){
			fmt_u64(e->off, off, sizeof(off)),
			fmt_u64(e->len, len, sizeof(len)),
			fmt_u64(e->server, srv, sizeof(srv)),
			v ? v->addr : "(gone)",
			fmt_u64(e->region_id, rid, sizeof(rid)),
			fmt_u64(e->pool_off, pool, sizeof(pool)) });
	}
	table_done(&t);
}

static void text_region(const struct ctl *c, const struct snapshot *s)
{
	const struct dsm_reg_region *r = &s->one;
	char size[32], age[32], name[sizeof(r->name)];
	uint32_t gone = 0;

	for (uint32_t i = 0; i < r->n; i++)
		gone += !find_server(s, r->ext[i].server);
	snprintf(name, sizeof(name), "%s", *r->name ? r->name : "-");
	printf("region   %llu in cluster %s\n", (unsigned long long)r->id,
	       c->cluster);
	printf("name     %s\n", printable(name));
	printf("size     %s (%llu bytes)\n",
	       dsm_fmt_bytes(r->size, size, sizeof(size)),
	       (unsigned long long)r->size);
	printf("owner    client %llu\n", (unsigned long long)r->owner);
	printf("created  %s ago\n",
	       fmt_age(r->created_ms, s->now_ms, age, sizeof(age)));
	printf("extents  %u", r->n);
	if (gone)
		printf(", %u on servers no longer live", gone);
	printf("\n\n");
	print_extents_table(s);
}

/* ---- JSON output --------------------------------------------------------- */

/* Writes one document; "first" is true until something is written at the
 * current nesting level, which is all the comma placement needs. */
struct json {
	bool first;
};

/* Invalid bytes become U+FFFD, as a UTF-8 decoder would show them. */
static void json_string(const char *str)
{
	const unsigned char *s = (const unsigned char *)str;

	putchar('"');
	while (*s) {
		size_t n = utf8_len(s);

		if (!n)
			fputs("\\ufffd", stdout);
		else if (*s == '"' || *s == '\\')
			printf("\\%c", *s);
		else if (*s < 0x20)
			printf("\\u%04x", *s);
		else
			fwrite(s, 1, n, stdout);
		s += n ? n : 1;
	}
	putchar('"');
}

static void json_key(struct json *j, const char *key)
{
	if (!j->first)
		putchar(',');
	j->first = false;
	if (key) {
		json_string(key);
		putchar(':');
	}
}

static void json_open(struct json *j, const char *key, char brace)
{
	json_key(j, key);
	putchar(brace);
	j->first = true;
}

static void json_close(struct json *j, char brace)
{
	putchar(brace);
	j->first = false;
}

static void json_uint(struct json *j, const char *key, uint64_t v)
{
	json_key(j, key);
	printf("%llu", (unsigned long long)v);
}

static void json_str(struct json *j, const char *key, const char *s)
{
	json_key(j, key);
	if (s)
		json_string(s);
	else
		fputs("null", stdout);
}

static void json_server(struct json *j, const struct dsm_reg_server *v)
{
	json_open(j, NULL, '{');
	json_uint(j, "id", v->id);
	json_str(j, "addr", v->addr);
	json_str(j, "host", v->host);
	json_uint(j, "pid", v->pid);
	json_uint(j, "capacity", v->capacity);
	json_uint(j, "used", v->used);
	json_uint(j, "regions", v->regions);
	json_uint(j, "clients", v->clients);
	json_uint(j, "started_ms", v->started_ms);
	json_uint(j, "heartbeat_ms", v->heartbeat_ms);
	json_close(j, '}');
}

static void json_server_array(struct json *j, const char *key,
			      const struct snapshot *s)
{
	json_open(j, key, '[');
	for (size_t i = 0; i < s->nsrv; i++)
		json_server(j, &s->srv[i]);
	json_close(j, ']');
}

/* With servers, each extent also says where its server is ("server_addr",
 * null once the server is gone). */
static void json_region(struct json *j, const struct dsm_reg_region *r,
			const struct snapshot *servers)
{
	json_open(j, NULL, '{');
	json_uint(j, "id", r->id);
	json_str(j, "name", r->name);
	json_uint(j, "size", r->size);
	json_uint(j, "owner", r->owner);
	json_uint(j, "created_ms", r->created_ms);
	json_open(j, "extents", '[');
	for (uint32_t i = 0; i < r->n; i++) {
		const struct dsm_reg_extent *e = &r->ext[i];

		json_open(j, NULL, '{');
		json_uint(j, "off", e->off);
		json_uint(j, "len", e->len);
		json_uint(j, "server", e->server);
		json_uint(j, "region_id", e->region_id);
		json_uint(j, "pool_off", e->pool_off);
		if (servers) {
			const struct dsm_reg_server *v =
				find_server(servers, e->server);

			json_str(j, "server_addr", v ? v->addr : NULL);
		}
		json_close(j, '}');
	}
	json_close(j, ']');
	json_close(j, '}');
}

static void json_client(struct json *j, const struct dsm_reg_client *v)
{
	json_open(j, NULL, '{');
	json_uint(j, "id", v->id);
	json_str(j, "host", v->host);
	json_uint(j, "pid", v->pid);
	json_uint(j, "started_ms", v->started_ms);
	json_uint(j, "heartbeat_ms", v->heartbeat_ms);
	json_close(j, '}');
}

static void json_servers(const struct ctl *c, const struct snapshot *s)
{
	struct json j = { true };

	json_server_array(&j, NULL, s);
	putchar('\n');
}

static void json_regions(const struct ctl *c, const struct snapshot *s)
{
	struct json j = { true };

	json_open(&j, NULL, '[');
	for (size_t i = 0; i < s->nrgn; i++)
		json_region(&j, &s->rgn[i], NULL);
	json_close(&j, ']');
	putchar('\n');
}

static void json_clients(const struct ctl *c, const struct snapshot *s)
{
	struct json j = { true };

	json_open(&j, NULL, '[');
	for (size_t i = 0; i < s->ncli; i++)
		json_client(&j, &s->cli[i]);
	json_close(&j, ']');
	putchar('\n');
}

static void json_region_show(const struct ctl *c, const struct snapshot *s)
{
	struct json j = { true };

	json_region(&j, &s->one, s);
	putchar('\n');
}

static void json_status(const struct ctl *c, const struct snapshot *s)
{
	struct json j = { true };
	uint64_t cap = 0, used = 0;

	for (size_t i = 0; i < s->nsrv; i++) {
		cap += s->srv[i].capacity;
		used += s->srv[i].used;
	}
	json_open(&j, NULL, '{');
	json_str(&j, "cluster", c->cluster);
	json_str(&j, "registry", c->url);
	json_uint(&j, "now_ms", s->now_ms);
	json_uint(&j, "capacity", cap);
	json_uint(&j, "used", used);
	json_uint(&j, "free", used < cap ? cap - used : 0);
	json_uint(&j, "regions", s->nrgn);
	json_uint(&j, "clients", s->ncli);
	json_server_array(&j, "servers", s);
	json_close(&j, '}');
	putchar('\n');
}

/* ---- commands ------------------------------------------------------------ */

/* The JSON shapes, for the help texts: the fields of registry.h's
 * structs under the same names (times are ms since the epoch). */
#define SERVER_JSON \
	"{id, addr, host, pid, capacity, used, regions, clients,\n" \
	"    started_ms, heartbeat_ms}"
#define REGION_JSON "{id, name, size, owner, created_ms,\n" \
	"    extents: [{off, len, server, region_id, pool_off}, ...]}"

static const struct command commands[] = {
	{ "status", "", 0, NEED_SERVERS | NEED_CLIENTS | NEED_REGIONS,
	  "the cluster at a glance: totals, then its servers",
	  "The cluster at a glance: its live servers, their total capacity,\n"
	  "bytes used and free, how many regions and clients it holds, then\n"
	  "the table of 'dsmctl servers'.\n\n"
	  "--json prints\n"
	  "  {cluster, registry, now_ms, capacity, used, free, regions,\n"
	  "   clients, servers: [...]}\n"
	  "with servers as 'dsmctl --json servers' prints them.\n",
	  NULL, text_status, json_status },
	{ "servers", "", 0, NEED_SERVERS, "live memory servers",
	  "Live memory servers by id: the address clients use, capacity,\n"
	  "bytes in use, the regions and clients each holds, and how long\n"
	  "ago its last heartbeat reached the registry.  A server silent for\n"
	  "5 s has vanished from the registry and is not listed.\n\n"
	  "--json prints\n"
	  "  [" SERVER_JSON ", ...]\n",
	  NULL, text_servers, json_servers },
	{ "regions", "", 0, NEED_REGIONS,
	  "regions: size, owner, the servers holding them",
	  "Regions by id: name ('-' if none), size, the owning client, how\n"
	  "many extents the region is cut into and the servers they are on.\n\n"
	  "--json prints\n"
	  "  [" REGION_JSON ", ...]\n",
	  NULL, text_regions, json_regions },
	{ "clients", "", 0, NEED_CLIENTS, "clients holding a lease",
	  "Clients by id: host, pid, how long ago each started, and how\n"
	  "long ago it last renewed its lease.\n\n"
	  "--json prints\n"
	  "  [{id, host, pid, started_ms, heartbeat_ms}, ...]\n",
	  NULL, text_clients, json_clients },
	{ "region show", "ID", 1, NEED_REGION | NEED_SERVERS,
	  "one region and where each of its extents lives",
	  "Region ID and each of its extents: the byte range of the region,\n"
	  "the server holding it and that server's address ('(gone)' if the\n"
	  "server is no longer live), the server's own id for the region and\n"
	  "the offset in the server's pool.  Exit status 1 if there is no\n"
	  "region ID.\n\n"
	  "--json prints\n"
	  "  " REGION_JSON "\n"
	  "where each extent also has server_addr (null: the server is gone).\n",
	  parse_region_id, text_region, json_region_show },
	{ 0 },
};

static void list_commands(FILE *f, const char *prefix)
{
	for (const struct command *cmd = commands; cmd->name; cmd++) {
		char synopsis[64];

		if (prefix && strncmp(cmd->name, prefix, strlen(prefix)))
			continue;
		snprintf(synopsis, sizeof(synopsis), "%s%s%s", cmd->name,
			 *cmd->args ? " " : "", cmd->args);
		fprintf(f, "  %-16s %s\n", synopsis, cmd->summary);
	}
}

/* ---- usage --------------------------------------------------------------- */

static const char *const exit_help =
	"Exit status:\n"
	"  0  ok\n"
	"  1  runtime error: the registry cannot be reached or fails a\n"
	"     command, the region does not exist, output cannot be written\n"
	"  2  usage error: unknown command or option, missing or malformed\n"
	"     argument, no registry given (--registry or DSM_REGISTRY)\n";

static void usage(FILE *f)
{
	fprintf(f,
		"usage: dsmctl [--registry URL] [--cluster NAME] [--json] COMMAND [ARGS]\n"
		"\n"
		"Shows a dsm cluster as its registry (Redis) sees it.\n"
		"\n"
		"  --registry URL  the registry, redis://HOST[:PORT] (default:\n"
		"                  $DSM_REGISTRY; one of the two is required)\n"
		"  --cluster NAME  cluster to show (default: $DSM_CLUSTER, else\n"
		"                  '" DSM_REG_DEFAULT_CLUSTER "')\n"
		"  --json          print one JSON document instead of tables\n"
		"  --help          this text; 'dsmctl COMMAND --help' describes a\n"
		"                  command\n"
		"\n"
		"Commands:\n");
	list_commands(f, NULL);
	fprintf(f, "\n%s", exit_help);
}

static void command_usage(FILE *f, const struct command *cmd)
{
	fprintf(f, "usage: dsmctl [--registry URL] [--cluster NAME] [--json] "
		"%s%s%s\n\n%s", cmd->name, *cmd->args ? " " : "", cmd->args,
		cmd->help);
}

/* topic: the command whose help to suggest ("region show"), or NULL. */
__attribute__((noreturn, format(printf, 2, 3)))
static void die_usage(const char *topic, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "dsmctl: ");
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'dsmctl %s%s--help'.\n", topic ? topic : "",
		topic ? " " : "");
	exit(EXIT_USAGE);
}

/* ---- parsing ------------------------------------------------------------- */

/* An empty variable counts as unset, as `DSM_CLUSTER= dsmctl ...` means. */
static const char *env(const char *name)
{
	const char *v = getenv(name);

	return v && *v ? v : NULL;
}

/* Options before the command; returns the index of the command. */
static int parse_globals(int argc, char **argv, struct ctl *c)
{
	static const struct option longs[] = {
		{ "registry", required_argument, NULL, 'r' },
		{ "cluster", required_argument, NULL, 'C' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int o;

	opterr = 0; /* our own messages, with the exit code we promise */
	/* '+': stop at the command, whose options are its own */
	while ((o = getopt_long(argc, argv, "+:h", longs, NULL)) != -1) {
		switch (o) {
		case 'r': c->url = optarg; break;
		case 'C': c->cluster = optarg; break;
		case 'j': c->json = true; break;
		case 'h': usage(stdout); exit(0);
		case ':': die_usage(NULL, "%s needs a value", argv[optind - 1]);
		default: die_usage(NULL, "unknown option '%s'", argv[optind - 1]);
		}
	}
	return optind;
}

/* How many words of argv spell name ("region show"), or 0. */
static int match(const char *name, int argc, char **argv)
{
	const char *p = name;

	for (int i = 0; i < argc; i++) {
		size_t n = strcspn(p, " ");

		if (strlen(argv[i]) != n || strncmp(argv[i], p, n))
			return 0;
		if (!p[n])
			return i + 1;
		p += n + 1;
	}
	return 0;
}

static bool is_help(const char *arg)
{
	return !strcmp(arg, "--help") || !strcmp(arg, "-h");
}

/* "region" alone is a group of commands: say which ones it has. */
static void group_usage(int argc, char **argv)
{
	char prefix[64];

	snprintf(prefix, sizeof(prefix), "%s ", argv[0]);
	if (argc > 1 && is_help(argv[1])) {
		printf("usage: dsmctl [GLOBAL OPTIONS] %sCOMMAND\n\n", prefix);
		list_commands(stdout, prefix);
		exit(0);
	}
	if (argc == 1)
		die_usage(argv[0], "'%s' needs a subcommand", argv[0]);
	die_usage(argv[0], "unknown command '%s%s'", prefix, argv[1]);
}

static const struct command *find_command(int argc, char **argv, int *words)
{
	size_t n = strlen(argv[0]);

	for (const struct command *cmd = commands; cmd->name; cmd++) {
		*words = match(cmd->name, argc, argv);
		if (*words)
			return cmd;
	}
	for (const struct command *cmd = commands; cmd->name; cmd++)
		if (!strncmp(cmd->name, argv[0], n) && cmd->name[n] == ' ')
			group_usage(argc, argv);
	die_usage(NULL, "unknown command '%s'", argv[0]);
}

/* The command's own arguments: --help, then exactly nargs positionals. */
static void parse_command(const struct command *cmd, int argc, char **argv,
			  struct ctl *c)
{
	char *pos[2];
	int n = 0;

	for (int i = 0; i < argc; i++) {
		if (is_help(argv[i])) {
			command_usage(stdout, cmd);
			exit(0);
		}
	}
	for (int i = 0; i < argc; i++) {
		if (argv[i][0] == '-' && argv[i][1])
			die_usage(cmd->name, "unknown option '%s' (options of "
				  "dsmctl itself go before the command)",
				  argv[i]);
		if (n == cmd->nargs)
			die_usage(cmd->name, "unexpected argument '%s'",
				  argv[i]);
		pos[n++] = argv[i];
	}
	if (n < cmd->nargs)
		die_usage(cmd->name, "missing %s", cmd->args);
	if (cmd->parse)
		cmd->parse(c, pos);
}

static void parse_region_id(struct ctl *c, char **args)
{
	if (dsm_parse_uint(args[0], UINT64_MAX, &c->region_id))
		die_usage("region show", "bad region id '%s': want a decimal "
			  "number", args[0]);
}

/* Where the registry is: option, else environment, checked before any
 * connection so that a typo is a usage error and not a timeout. */
static void resolve_registry(struct ctl *c)
{
	struct dsm_reg_addr a;
	const char *url_from = c->url ? "--registry" : "DSM_REGISTRY";
	const char *cluster_from = c->cluster ? "--cluster" : "DSM_CLUSTER";

	if (!c->url)
		c->url = env("DSM_REGISTRY");
	if (!c->url)
		die_usage(NULL, "no registry given: pass --registry "
			  "redis://HOST:PORT or set DSM_REGISTRY");
	if (dsm_reg_parse_url(c->url, &a))
		die_usage(NULL, "bad %s '%s': want redis://HOST[:PORT]",
			  url_from, c->url);
	if (!c->cluster)
		c->cluster = env("DSM_CLUSTER");
	if (!c->cluster)
		c->cluster = DSM_REG_DEFAULT_CLUSTER;
	if (dsm_reg_check_cluster(c->cluster))
		die_usage(NULL, "bad %s '%s': want 1-%d of letters, digits, "
			  "'_', '.', '-'", cluster_from, c->cluster,
			  DSM_REG_CLUSTER_MAX);
}

static const struct command *parse_args(int argc, char **argv, struct ctl *c)
{
	const struct command *cmd;
	int first = parse_globals(argc, argv, c), words;

	if (first == argc)
		die_usage(NULL, "no command given");
	cmd = find_command(argc - first, argv + first, &words);
	parse_command(cmd, argc - first - words, argv + first + words, c);
	resolve_registry(c);
	return cmd;
}

/* ---- main ---------------------------------------------------------------- */

/* Output that did not reach its reader is a failure, not a success. */
static int finish_output(void)
{
	if (fflush(stdout) == 0 && !ferror(stdout))
		return 0;
	fprintf(stderr, "dsmctl: cannot write the output: %s\n",
		strerror(errno));
	return EXIT_RUNTIME;
}

int main(int argc, char **argv)
{
	struct ctl c = { 0 };
	const struct command *cmd = parse_args(argc, argv, &c);
	struct snapshot s = { 0 };
	struct dsm_reg *reg = NULL;
	int rc;

	rc = open_registry(&c, &reg);
	if (rc)
		goto out;
	rc = fetch(reg, &c, cmd->need, &s);
	if (rc)
		goto out;
	(c.json ? cmd->json : cmd->text)(&c, &s);
	rc = finish_output();
out:
	snapshot_free(&s);
	dsm_reg_close(reg);
	return rc;
}
