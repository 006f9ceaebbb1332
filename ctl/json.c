/*
 * json.c - dsmctl's output for programs: a snapshot as one JSON document
 * (room: CLI).
 *
 * The fields are those of registry/record.h's structs, under the same names (state is derived
 * from draining); the
 * help texts in dsmctl.c show each command's shape, and change with it.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "ctl.h"

/* ---- the writer ---------------------------------------------------------- */

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
		else if (*s < 0x20 || *s == 0x7f)
			printf("\\u%04x", *s);
		else if (*s == 0xc2 && s[1] < 0xa0) /* C1, as text.c does */
			printf("\\u%04x", s[1]);
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

/* ---- records ------------------------------------------------------------- */

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
	json_str(j, "state", v->draining ? "draining" : "serving");
	json_str(j, "transports", v->transports);
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

static void json_extent(struct json *j, const struct dsm_reg_extent *e,
			const struct snapshot *servers)
{
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
	if (e->nrep) { /* only then: older readers see the shape they knew */
		json_open(j, "replicas", '[');
		for (uint32_t c = 0; c < e->nrep; c++) {
			json_open(j, NULL, '{');
			json_uint(j, "server", e->rep[c].server);
			json_uint(j, "region_id", e->rep[c].region_id);
			json_uint(j, "pool_off", e->rep[c].pool_off);
			if (servers) {
				const struct dsm_reg_server *v = find_server(
					servers, e->rep[c].server);

				json_str(j, "server_addr", v ? v->addr : NULL);
			}
			json_close(j, '}');
		}
		json_close(j, ']');
	}
	json_close(j, '}');
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
	for (uint32_t i = 0; i < r->n; i++)
		json_extent(j, &r->ext[i], servers);
	json_close(j, ']');
	json_close(j, '}');
}

/* A shared region: marked "shared", so that a reader of 'dsmctl --json
 * regions' tells it from the private ones (which have an id and an owner
 * instead of holders).  With servers, its home's address too. */
static void json_share(struct json *j, const struct dsm_reg_share *sh,
		       const struct snapshot *servers)
{
	json_open(j, NULL, '{');
	json_key(j, "shared");
	fputs("true", stdout);
	json_str(j, "key", sh->key);
	json_str(j, "name", sh->name);
	json_uint(j, "size", sh->size);
	json_uint(j, "home", sh->home);
	if (servers) {
		const struct dsm_reg_server *v = find_server(servers, sh->home);

		json_str(j, "home_addr", v ? v->addr : NULL);
	}
	json_uint(j, "region_id", sh->region_id);
	json_uint(j, "pool_off", sh->pool_off);
	json_open(j, "holders", '[');
	for (uint32_t i = 0; i < sh->nholders; i++) {
		json_open(j, NULL, '{');
		json_uint(j, "client", sh->holder[i].client);
		json_str(j, "host", sh->holder[i].host);
		json_uint(j, "pid", sh->holder[i].pid);
		json_uint(j, "attached_ms", sh->holder[i].attached_ms);
		json_close(j, '}');
	}
	json_close(j, ']');
	json_close(j, '}');
}

/* "transports": {"SERVERID": "rdma", ...}: how the client reaches each
 * server (empty for a client whose record does not say). */
static void json_transports(struct json *j, const char *text)
{
	json_open(j, "transports", '{');
	for (const char *p = text; *p; p += strcspn(p, ",")) {
		char id[24], name[32];
		size_t n;

		p += *p == ',';
		n = strcspn(p, "=,");
		if (p[n] != '=' || n >= sizeof(id))
			break;
		snprintf(id, sizeof(id), "%.*s", (int)n, p);
		snprintf(name, sizeof(name), "%.*s",
			 (int)strcspn(p + n + 1, ","), p + n + 1);
		json_str(j, id, name);
	}
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
	json_transports(j, v->transports);
	json_close(j, '}');
}

/* A record that does not decode: named, so that a program sees it as
 * well as the person reading stderr. */
static void json_bad_record(struct json *j, const struct ctl *c,
			    const char *what, const char *id)
{
	char key[256];

	snprintf(key, sizeof(key), "dsm:%s:%s:%s", c->cluster, what, id);
	json_open(j, NULL, '{');
	json_str(j, "key", key);
	json_str(j, "error", "malformed record");
	json_close(j, '}');
}

/* ---- commands ------------------------------------------------------------ */

int json_servers(const struct ctl *c, const struct snapshot *s)
{
	struct json j = { true };

	json_server_array(&j, NULL, s);
	putchar('\n');
	return 0;
}

int json_regions(const struct ctl *c, const struct snapshot *s)
{
	struct json j = { true };

	json_open(&j, NULL, '[');
	for (size_t i = 0; i < s->nrgn; i++)
		json_region(&j, &s->rgn[i], NULL);
	for (size_t i = 0; i < s->nshr; i++)
		json_share(&j, &s->shr[i], NULL);
	for (size_t i = 0; i < s->nbad_rgn; i++)
		json_bad_record(&j, c, "region", s->bad_rgn[i]);
	for (size_t i = 0; i < s->nbad_shr; i++)
		json_bad_record(&j, c, "share", s->bad_shr[i]);
	json_close(&j, ']');
	putchar('\n');
	return 0;
}

int json_clients(const struct ctl *c, const struct snapshot *s)
{
	struct json j = { true };

	json_open(&j, NULL, '[');
	for (size_t i = 0; i < s->ncli; i++)
		json_client(&j, &s->cli[i]);
	json_close(&j, ']');
	putchar('\n');
	return 0;
}

int json_region_show(const struct ctl *c, const struct snapshot *s)
{
	struct json j = { true };

	json_region(&j, &s->one, s);
	putchar('\n');
	return 0;
}

int json_share_show(const struct ctl *c, const struct snapshot *s)
{
	struct json j = { true };

	json_share(&j, find_share(s, c->share_name), s);
	putchar('\n');
	return 0;
}

int json_status(const struct ctl *c, const struct snapshot *s)
{
	struct json j = { true };
	uint64_t cap, used;

	snapshot_totals(s, &cap, &used);
	json_open(&j, NULL, '{');
	json_str(&j, "cluster", c->cluster);
	json_str(&j, "registry", c->url);
	json_uint(&j, "now_ms", s->now_ms);
	json_uint(&j, "capacity", cap);
	json_uint(&j, "used", used);
	json_uint(&j, "free", used < cap ? cap - used : 0);
	json_uint(&j, "regions", s->nrgn);
	json_uint(&j, "degraded_regions", snapshot_degraded(s));
	json_uint(&j, "shared_regions", s->nshr);
	json_uint(&j, "shared_holders", snapshot_holders(s));
	json_uint(&j, "clients", s->ncli);
	json_server_array(&j, "servers", s);
	json_close(&j, '}');
	putchar('\n');
	return 0;
}

/* What the server's clients read and wrote on it one-sidedly (RDMA),
 * which its own counters cannot include. */
static void json_one_sided(struct json *j, const struct snapshot *s,
			   uint32_t server)
{
	struct dsm_reg_one_sided o;

	snapshot_one_sided(s, server, &o);
	json_open(j, "one_sided", '{');
	json_uint(j, "reads", o.reads);
	json_uint(j, "writes", o.writes);
	json_uint(j, "pages_read", o.pages_read);
	json_uint(j, "pages_written", o.pages_written);
	json_close(j, '}');
}

/* Cumulative counters, under their registry names; rates are the
 * reader's to compute from two documents' now_ms.  A server's own
 * counters miss what its clients did one-sidedly: that is in its
 * one_sided object, as the clients report it. */
int json_stats(const struct ctl *c, const struct snapshot *s)
{
	struct json j = { true };

	json_open(&j, NULL, '{');
	json_str(&j, "cluster", c->cluster);
	json_uint(&j, "now_ms", s->now_ms);
	json_open(&j, "servers", '[');
	for (size_t i = 0; i < s->nsrv; i++) {
		json_open(&j, NULL, '{');
		json_uint(&j, "id", s->srv[i].id);
		json_str(&j, "addr", s->srv[i].addr);
		for (int k = 0; k < DSM_RS_NCOUNTERS; k++)
			json_uint(&j, dsm_reg_server_counters[k],
				  s->srv[i].counters[k]);
		json_one_sided(&j, s, s->srv[i].id);
		json_close(&j, '}');
	}
	json_close(&j, ']');
	json_open(&j, "clients", '[');
	for (size_t i = 0; i < s->ncli; i++) {
		json_open(&j, NULL, '{');
		json_uint(&j, "id", s->cli[i].id);
		json_uint(&j, "pid", s->cli[i].pid);
		for (int k = 0; k < DSM_RC_NCOUNTERS; k++)
			json_uint(&j, dsm_reg_client_counters[k],
				  s->cli[i].counters[k]);
		json_close(&j, '}');
	}
	json_close(&j, ']');
	json_close(&j, '}');
	putchar('\n');
	return 0;
}
