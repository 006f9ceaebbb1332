/*
 * record.c - the registry's key names and record encodings (room:
 * registry): one place for each, shared by the blocking client (redis.c)
 * and the server's asynchronous heartbeat (server/membership.c).
 */
#include "record.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "util.h"

int dsm_reg_check_cluster(const char *name)
{
	size_t n = name ? strlen(name) : 0;

	if (!n || n > DSM_REG_CLUSTER_MAX)
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)name[i]) &&
		    !strchr("_.-", name[i]))
			return -EINVAL;
	return 0;
}

const char *dsm_reg_key(char *buf, size_t len, const char *cluster,
			const char *what, ...)
{
	int n = snprintf(buf, len, "dsm:%s:", cluster);
	va_list ap;

	va_start(ap, what);
	if (n >= 0 && (size_t)n < len)
		vsnprintf(buf + n, len - n, what, ap);
	va_end(ap);
	return buf;
}

uint64_t dsm_reg_now_ms(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return (uint64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

bool dsm_reg_server_offers(const struct dsm_reg_server *s, const char *name)
{
	size_t n = strlen(name);

	for (const char *p = s->transports; *p; p += strcspn(p, ",")) {
		p += *p == ',';
		if (!strncmp(p, name, n) && (p[n] == ',' || !p[n]))
			return true;
	}
	return false;
}

int dsm_reg_one_sided_for(const char *text, uint32_t server,
			  struct dsm_reg_one_sided *out)
{
	for (const char *p = text; *p; p += strcspn(p, ",")) {
		unsigned long long id, r, w, pr, pw;
		int used = 0;

		p += *p == ',';
		if (sscanf(p, "%llu:%llu:%llu:%llu:%llu%n", &id, &r, &w, &pr,
			   &pw, &used) != 5 || (p[used] && p[used] != ','))
			return -EINVAL;
		if (id != server)
			continue;
		out->reads += r;
		out->writes += w;
		out->pages_read += pr;
		out->pages_written += pw;
	}
	return 0;
}

const char *dsm_reg_transport_for(const char *text, uint32_t server,
				  char *buf, size_t len)
{
	for (const char *p = text; *p; p += strcspn(p, ",")) {
		unsigned long long id;
		int used = 0;

		p += *p == ',';
		if (sscanf(p, "%llu=%n", &id, &used) != 1 || !used)
			return NULL;
		if (id == server) {
			snprintf(buf, len, "%.*s", (int)strcspn(p + used, ","),
				 p + used);
			return buf;
		}
	}
	return NULL;
}

/* ---- record encodings ------------------------------------------------- */

const char *const dsm_reg_server_counters[DSM_RS_NCOUNTERS] = {
	"reads", "writes", "pages_read", "pages_written", "pages_discarded",
	"bytes_in", "bytes_out", "errors", "auth_refused", "conn_refused",
	"over_limit",
};
const char *const dsm_reg_client_counters[DSM_RC_NCOUNTERS] = {
	"missing_faults", "wp_faults", "pages_fetched", "pages_evicted",
	"pages_written_back", "bytes_in", "bytes_out", "resident_pages",
	"fault_p50_ns", "fault_p99_ns", "blocktime_ns", "pages_moved",
};

static void argv_add(struct dsm_reg_argv *a, const char *s)
{
	a->argv[a->argc] = s;
	a->len[a->argc] = strlen(s);
	a->argc++;
}

static void argv_str(struct dsm_reg_argv *a, const char *name,
		     const char *value)
{
	argv_add(a, name);
	argv_add(a, value);
}

static void argv_num(struct dsm_reg_argv *a, const char *name, uint64_t v)
{
	char *buf = a->vals[a->argc / 2];

	snprintf(buf, sizeof(a->vals[0]), "%llu", (unsigned long long)v);
	argv_str(a, name, buf);
}

/* "HSET key", then the record's fields follow. */
static void argv_start(struct dsm_reg_argv *a, const char *key)
{
	a->argc = 0;
	argv_add(a, "HSET");
	argv_add(a, key);
}

void dsm_reg_server_argv(const struct dsm_reg_server *s, const char *key,
			 struct dsm_reg_argv *a)
{
	argv_start(a, key);
	argv_num(a, "id", s->id);
	argv_str(a, "addr", s->addr);
	argv_str(a, "host", s->host);
	argv_num(a, "pid", s->pid);
	argv_num(a, "capacity", s->capacity);
	argv_num(a, "used", s->used);
	argv_num(a, "regions", s->regions);
	argv_num(a, "clients", s->clients);
	argv_num(a, "started_ms", s->started_ms);
	argv_num(a, "heartbeat_ms", s->heartbeat_ms);
	argv_num(a, "draining", s->draining);
	argv_str(a, "transports", s->transports[0] ? s->transports : "tcp");
	for (int i = 0; i < DSM_RS_NCOUNTERS; i++)
		argv_num(a, dsm_reg_server_counters[i], s->counters[i]);
}

void dsm_reg_client_argv(const struct dsm_reg_client *c, const char *key,
			 struct dsm_reg_argv *a)
{
	argv_start(a, key);
	argv_num(a, "id", c->id);
	argv_str(a, "host", c->host);
	argv_num(a, "pid", c->pid);
	argv_num(a, "started_ms", c->started_ms);
	argv_num(a, "heartbeat_ms", c->heartbeat_ms);
	argv_str(a, "transports", c->transports);
	argv_str(a, "one_sided", c->one_sided);
	for (int i = 0; i < DSM_RC_NCOUNTERS; i++)
		argv_num(a, dsm_reg_client_counters[i], c->counters[i]);
}

void dsm_reg_region_argv(const struct dsm_reg_region *rg, const char *key,
			 const char *extents, struct dsm_reg_argv *a)
{
	argv_start(a, key);
	argv_num(a, "id", rg->id);
	argv_str(a, "name", rg->name);
	argv_num(a, "size", rg->size);
	argv_num(a, "owner", rg->owner);
	argv_num(a, "created_ms", rg->created_ms);
	argv_str(a, "extents", extents);
}

void dsm_reg_share_argv(const struct dsm_reg_share *sh, const char *key,
			struct dsm_reg_argv *a)
{
	argv_start(a, key);
	argv_str(a, "key", sh->key);
	argv_str(a, "name", sh->name);
	argv_num(a, "size", sh->size);
	argv_num(a, "home", sh->home);
	argv_num(a, "region_id", sh->region_id);
	argv_num(a, "pool_off", sh->pool_off);
}

/* The value of field name in kv, or NULL. */
static const char *field(char **kv, size_t n, const char *name)
{
	for (size_t i = 0; i + 1 < n; i += 2)
		if (!strcmp(kv[i], name))
			return kv[i + 1];
	return NULL;
}

static int num(char **kv, size_t n, const char *name, uint64_t max,
	       uint64_t *out)
{
	const char *v = field(kv, n, name);

	return v ? dsm_parse_uint(v, max, out) : -EINVAL;
}

/* Counters are optional: a record written before they existed, or by
 * hand, still decodes (as zeros); a malformed one does not. */
static int counters(char **kv, size_t n, const char *const *names,
		    int count, uint64_t *out)
{
	for (int i = 0; i < count; i++) {
		const char *v = field(kv, n, names[i]);

		out[i] = 0;
		if (v && dsm_parse_uint(v, UINT64_MAX, &out[i]))
			return -EINVAL;
	}
	return 0;
}

static int text(char **kv, size_t n, const char *name, char *out,
		size_t len)
{
	const char *v = field(kv, n, name);

	if (!v || strlen(v) >= len)
		return -EINVAL;
	memcpy(out, v, strlen(v) + 1);
	return 0;
}

int dsm_reg_server_decode(char **kv, size_t n, struct dsm_reg_server *s)
{
	uint64_t id, pid, draining = 0;

	memset(s, 0, sizeof(*s));
	if (num(kv, n, "id", UINT32_MAX, &id) ||
	    num(kv, n, "pid", UINT32_MAX, &pid) ||
	    text(kv, n, "addr", s->addr, sizeof(s->addr)) ||
	    text(kv, n, "host", s->host, sizeof(s->host)) ||
	    num(kv, n, "capacity", UINT64_MAX, &s->capacity) ||
	    num(kv, n, "used", UINT64_MAX, &s->used) ||
	    num(kv, n, "regions", UINT64_MAX, &s->regions) ||
	    num(kv, n, "clients", UINT64_MAX, &s->clients) ||
	    num(kv, n, "started_ms", UINT64_MAX, &s->started_ms) ||
	    num(kv, n, "heartbeat_ms", UINT64_MAX, &s->heartbeat_ms) ||
	    counters(kv, n, dsm_reg_server_counters, DSM_RS_NCOUNTERS,
		     s->counters) ||
	    /* optional: records from before drains existed serve */
	    (field(kv, n, "draining") && num(kv, n, "draining", 1, &draining)) ||
	    /* and those from before RDMA served TCP */
	    (field(kv, n, "transports") && text(kv, n, "transports",
						s->transports,
						sizeof(s->transports))))
		return -EINVAL;
	if (!s->transports[0])
		strcpy(s->transports, "tcp");
	s->id = id;
	s->pid = pid;
	s->draining = draining;
	return 0;
}

int dsm_reg_client_decode(char **kv, size_t n, struct dsm_reg_client *c)
{
	uint64_t pid;

	memset(c, 0, sizeof(*c));
	if (num(kv, n, "id", UINT64_MAX, &c->id) ||
	    num(kv, n, "pid", UINT32_MAX, &pid) ||
	    text(kv, n, "host", c->host, sizeof(c->host)) ||
	    num(kv, n, "started_ms", UINT64_MAX, &c->started_ms) ||
	    num(kv, n, "heartbeat_ms", UINT64_MAX, &c->heartbeat_ms) ||
	    counters(kv, n, dsm_reg_client_counters, DSM_RC_NCOUNTERS,
		     c->counters) ||
	    /* optional: records from before RDMA have none */
	    (field(kv, n, "transports") && text(kv, n, "transports",
						c->transports,
						sizeof(c->transports))) ||
	    (field(kv, n, "one_sided") && text(kv, n, "one_sided",
					       c->one_sided,
					       sizeof(c->one_sided))))
		return -EINVAL;
	c->pid = pid;
	return 0;
}

/* One decimal number of an extent, ending at sep; *s moves past sep. */
static int ext_num(const char **s, char sep, uint64_t max, uint64_t *out)
{
	char buf[24];
	size_t n = strcspn(*s, ",+@/;");

	if (!n || n >= sizeof(buf) || (*s)[n] != sep)
		return -EINVAL;
	memcpy(buf, *s, n);
	buf[n] = '\0';
	*s += n + (sep ? 1 : 0);
	return dsm_parse_uint(buf, max, out);
}

/* "S/R/P" of one copy, ending where the copy does (';' before another
 * copy, ',' before another extent, or the end). */
static int copy_decode(const char **s, struct dsm_reg_copy *c)
{
	size_t n = strcspn(*s, ",;");
	char end = (*s)[n];
	uint64_t server;

	if (ext_num(s, '/', UINT32_MAX, &server) ||
	    ext_num(s, '/', UINT64_MAX, &c->region_id) ||
	    ext_num(s, end, UINT64_MAX, &c->pool_off))
		return -EINVAL;
	c->server = server;
	return 0;
}

/* One "OFF+LEN@S/R/P[;S/R/P...]", strict like every other field; a
 * replica on the server of another copy is refused. */
static int extent_decode(const char **s, struct dsm_reg_extent *e)
{
	struct dsm_reg_copy c;
	bool more;

	if (ext_num(s, '+', UINT64_MAX, &e->off) ||
	    ext_num(s, '@', UINT64_MAX, &e->len))
		return -EINVAL;
	more = (*s)[strcspn(*s, ",;")] == ';';
	if (copy_decode(s, &c))
		return -EINVAL;
	e->server = c.server;
	e->region_id = c.region_id;
	e->pool_off = c.pool_off;
	for (e->nrep = 0; more; e->nrep++) {
		struct dsm_reg_copy *r = &e->rep[e->nrep];

		if (e->nrep == DSM_REG_MAX_REPLICAS)
			return -EINVAL;
		more = (*s)[strcspn(*s, ",;")] == ';';
		if (copy_decode(s, r) || r->server == e->server ||
		    (e->nrep && r->server == e->rep[0].server))
			return -EINVAL;
	}
	return 0;
}

/* Extents must be sorted, disjoint and inside the region: the placement
 * map's invariants. */
static int extents_decode(const char *s, struct dsm_reg_region *r)
{
	uint32_t n = *s ? 1 : 0;
	uint64_t end = 0;

	for (const char *p = s; *p; p++)
		n += *p == ',';
	r->ext = calloc(n ? n : 1, sizeof(*r->ext));
	if (!r->ext)
		return -ENOMEM;
	for (r->n = 0; r->n < n; r->n++) {
		struct dsm_reg_extent *e = &r->ext[r->n];

		if (extent_decode(&s, e) || !e->len || e->off < end ||
		    e->len > r->size || e->off > r->size - e->len)
			return -EINVAL;
		end = e->off + e->len;
	}
	return 0;
}

int dsm_reg_region_decode(char **kv, size_t n, struct dsm_reg_region *r)
{
	const char *ext = field(kv, n, "extents");
	int err;

	memset(r, 0, sizeof(*r));
	if (num(kv, n, "id", UINT64_MAX, &r->id) ||
	    text(kv, n, "name", r->name, sizeof(r->name)) ||
	    num(kv, n, "size", UINT64_MAX, &r->size) ||
	    num(kv, n, "owner", UINT64_MAX, &r->owner) ||
	    num(kv, n, "created_ms", UINT64_MAX, &r->created_ms) || !ext)
		return -EINVAL;
	err = extents_decode(ext, r);
	if (err)
		dsm_reg_region_clear(r);
	return err;
}

void dsm_reg_region_clear(struct dsm_reg_region *r)
{
	free(r->ext);
	r->ext = NULL;
	r->n = 0;
}

char *dsm_reg_extents_encode(const struct dsm_reg_region *r)
{
	size_t cap = (size_t)r->n * 110 * (1 + DSM_REG_MAX_REPLICAS) + 1, used = 0;
	char *s = malloc(cap);

	if (!s)
		return NULL;
	s[0] = '\0';
	for (uint32_t i = 0; i < r->n; i++) {
		const struct dsm_reg_extent *e = &r->ext[i];

		used += snprintf(s + used, cap - used, "%s%llu+%llu@%u/%llu/%llu",
				 i ? "," : "", (unsigned long long)e->off,
				 (unsigned long long)e->len, e->server,
				 (unsigned long long)e->region_id,
				 (unsigned long long)e->pool_off);
		for (uint32_t c = 0; c < e->nrep; c++)
			used += snprintf(s + used, cap - used, ";%u/%llu/%llu",
					 e->rep[c].server,
					 (unsigned long long)e->rep[c].region_id,
					 (unsigned long long)e->rep[c].pool_off);
	}
	return s;
}

void dsm_reg_hex(const uint8_t *key, size_t len, char *out)
{
	static const char digit[] = "0123456789abcdef";

	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digit[key[i] >> 4];
		out[2 * i + 1] = digit[key[i] & 15];
	}
	out[2 * len] = '\0';
}

/* DSM_REG_SHARE_KEY_HEX lowercase hex digits, as dsm_reg_hex writes them:
 * the key is part of a Redis key name and of what dsmctl prints. */
static bool share_key_ok(const char *k)
{
	return strlen(k) == DSM_REG_SHARE_KEY_HEX &&
	       strspn(k, "0123456789abcdef") == DSM_REG_SHARE_KEY_HEX;
}

static int cmp_holder(const void *a, const void *b)
{
	const struct dsm_reg_holder *x = a, *y = b;

	return x->client < y->client ? -1 : x->client > y->client;
}

_Static_assert(sizeof(DSM_REG_HOLDER_PREFIX) == 8,
	       "DSM_REG_HOLDER_PREFIX_POS counts its 7 characters");

/* Every "holder:CLIENT" = attached_ms field of kv, at most
 * DSM_REG_SHARE_HOLDERS_MAX of them. */
static int holders_decode(char **kv, size_t n, struct dsm_reg_share *s)
{
	size_t plen = strlen(DSM_REG_HOLDER_PREFIX), count = 0;

	for (size_t i = 0; i + 1 < n; i += 2)
		count += !strncmp(kv[i], DSM_REG_HOLDER_PREFIX, plen);
	if (count > DSM_REG_SHARE_HOLDERS_MAX)
		return -EINVAL;
	s->holder = calloc(count ? count : 1, sizeof(*s->holder));
	if (!s->holder)
		return -ENOMEM;
	for (size_t i = 0; i + 1 < n; i += 2) {
		struct dsm_reg_holder *h = &s->holder[s->nholders];

		if (strncmp(kv[i], DSM_REG_HOLDER_PREFIX, plen))
			continue;
		if (dsm_parse_uint(kv[i] + plen, UINT64_MAX, &h->client) ||
		    !h->client ||
		    dsm_parse_uint(kv[i + 1], UINT64_MAX, &h->attached_ms))
			return -EINVAL;
		s->nholders++;
	}
	qsort(s->holder, s->nholders, sizeof(*s->holder), cmp_holder);
	return 0;
}

int dsm_reg_share_decode(char **kv, size_t n, struct dsm_reg_share *s)
{
	uint64_t home;
	int err;

	memset(s, 0, sizeof(*s));
	if (text(kv, n, "key", s->key, sizeof(s->key)) ||
	    !share_key_ok(s->key) ||
	    text(kv, n, "name", s->name, sizeof(s->name)) || !s->name[0] ||
	    num(kv, n, "size", UINT64_MAX, &s->size) || !s->size ||
	    num(kv, n, "home", UINT32_MAX, &home) ||
	    num(kv, n, "region_id", UINT64_MAX, &s->region_id) ||
	    num(kv, n, "pool_off", UINT64_MAX, &s->pool_off))
		return -EINVAL;
	s->home = home;
	err = holders_decode(kv, n, s);
	if (err)
		dsm_reg_share_clear(s);
	return err;
}

void dsm_reg_share_clear(struct dsm_reg_share *s)
{
	free(s->holder);
	s->holder = NULL;
	s->nholders = 0;
}
