/*
 * registry.c - see registry.h (room: registry).
 */
#include "registry.h"

#include <ctype.h>
#include <errno.h>
#include <hiredis/hiredis.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "auth.h"
#include "util.h"

struct dsm_reg {
	redisContext *c;
	char cluster[DSM_REG_CLUSTER_MAX + 1];
	struct dsm_reg_addr addr;
};

/* ---- names ------------------------------------------------------------ */

/* USER or PASSWORD of a url: '%XX' is the byte XX, so that a password
 * may hold '@' or ':'.  A NUL byte is refused. */
static int unescape(const char *s, size_t n, char *out, size_t cap)
{
	size_t j = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned int c = (unsigned char)s[i];

		if (c == '%') {
			if (n - i < 3 || !isxdigit((unsigned char)s[i + 1]) ||
			    !isxdigit((unsigned char)s[i + 2]) ||
			    sscanf(s + i + 1, "%2x", &c) != 1 || !c)
				return -EINVAL;
			i += 2;
		}
		if (j + 1 >= cap)
			return -EINVAL;
		out[j++] = c;
	}
	out[j] = '\0';
	return 0;
}

/* "USER:PASSWORD" (USER may be empty, PASSWORD may not), or "USER"
 * alone, whose password comes from a file.  Messages show a lone word as
 * "***" (dsm_reg_redact): someone may have put a password there. */
static int parse_userinfo(const char *s, size_t n, struct dsm_reg_addr *a)
{
	const char *colon = memchr(s, ':', n);

	if (!n || (colon && colon == s + n - 1))
		return -EINVAL;
	if (!colon)
		return unescape(s, n, a->user, sizeof(a->user));
	if (unescape(s, colon - s, a->user, sizeof(a->user)) ||
	    unescape(colon + 1, s + n - colon - 1, a->pass, sizeof(a->pass)))
		return -EINVAL;
	a->pass_in_url = true;
	return 0;
}

int dsm_reg_parse_url(const char *url, struct dsm_reg_addr *a)
{
	const char *p = url, *at;
	char hostport[300];
	size_t n;

	memset(a, 0, sizeof(*a));
	if (!url || !*url || strlen(url) >= sizeof(a->url) - 3)
		return -EINVAL;
	dsm_reg_redact(url, a->url, sizeof(a->url));
	if (!strncmp(p, "redis://", 8)) {
		p += 8;
		/* the last '@': a password might hold an unescaped one */
		at = strrchr(p, '@');
		if (at && parse_userinfo(p, at - p, a))
			goto inval;
		if (at)
			p = at + 1;
	}
	n = strcspn(p, "/");
	if (!n || n >= sizeof(hostport) || (p[n] && strcmp(p + n, "/")))
		goto inval; /* no path or database */
	memcpy(hostport, p, n);
	hostport[n] = '\0';
	/* "host:port" and "[v6]:port"; a bare IPv6 address needs its port */
	if (hostport[0] == '[' || strchr(hostport, ':')) {
		if (dsm_parse_hostport(hostport, a->host, sizeof(a->host),
				       &a->port))
			goto inval;
		return 0;
	}
	if (n >= sizeof(a->host) || strchr(hostport, '@'))
		goto inval;
	memcpy(a->host, hostport, n + 1);
	a->port = DSM_REG_DEFAULT_PORT;
	return 0;
inval:
	dsm_reg_addr_wipe(a);
	return -EINVAL;
}

const char *dsm_reg_redact(const char *url, char *buf, size_t len)
{
	const char *p = url ? url : "", *at = strrchr(p, '@');
	size_t scheme = strncmp(p, "redis://", 8) ? 0 : 8;
	const char *colon;

	if (!at || at < p + scheme) {
		snprintf(buf, len, "%s", p);
		return buf;
	}
	/* keep the scheme and a user name; anything else before the '@'
	 * may be (part of) a password */
	colon = memchr(p + scheme, ':', at - p - scheme);
	if (colon)
		snprintf(buf, len, "%.*s:***%s", (int)(colon - p), p, at);
	else
		snprintf(buf, len, "%.*s***%s", (int)scheme, p, at);
	return buf;
}

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

/* ---- record encodings ------------------------------------------------- */

const char *const dsm_reg_server_counters[DSM_RS_NCOUNTERS] = {
	"reads", "writes", "pages_read", "pages_written", "pages_discarded",
	"bytes_in", "bytes_out", "errors", "auth_refused",
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

static void argv_num(struct dsm_reg_argv *a, const char *name, uint64_t v)
{
	char *buf = a->vals[a->argc / 2];

	snprintf(buf, sizeof(a->vals[0]), "%llu", (unsigned long long)v);
	argv_add(a, name);
	argv_add(a, buf);
}

void dsm_reg_server_argv(const struct dsm_reg_server *s, const char *key,
			 struct dsm_reg_argv *a)
{
	a->argc = 0;
	argv_add(a, "HSET");
	argv_add(a, key);
	argv_num(a, "id", s->id);
	argv_add(a, "addr");
	argv_add(a, s->addr);
	argv_add(a, "host");
	argv_add(a, s->host);
	argv_num(a, "pid", s->pid);
	argv_num(a, "capacity", s->capacity);
	argv_num(a, "used", s->used);
	argv_num(a, "regions", s->regions);
	argv_num(a, "clients", s->clients);
	argv_num(a, "started_ms", s->started_ms);
	argv_num(a, "heartbeat_ms", s->heartbeat_ms);
	argv_num(a, "draining", s->draining);
	for (int i = 0; i < DSM_RS_NCOUNTERS; i++)
		argv_num(a, dsm_reg_server_counters[i], s->counters[i]);
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
	    (field(kv, n, "draining") && num(kv, n, "draining", 1, &draining)))
		return -EINVAL;
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
		     c->counters))
		return -EINVAL;
	c->pid = pid;
	return 0;
}

/* One decimal number of an extent, ending at sep; *s moves past sep. */
static int ext_num(const char **s, char sep, uint64_t max, uint64_t *out)
{
	char buf[24];
	size_t n = strcspn(*s, ",+@/");

	if (!n || n >= sizeof(buf) || (*s)[n] != sep)
		return -EINVAL;
	memcpy(buf, *s, n);
	buf[n] = '\0';
	*s += n + (sep ? 1 : 0);
	return dsm_parse_uint(buf, max, out);
}

/* One "OFF+LEN@S/R/P", strict like every other field. */
static int extent_decode(const char **s, struct dsm_reg_extent *e)
{
	uint64_t server;
	char end = strchr(*s, ',') ? ',' : '\0';

	if (ext_num(s, '+', UINT64_MAX, &e->off) ||
	    ext_num(s, '@', UINT64_MAX, &e->len) ||
	    ext_num(s, '/', UINT32_MAX, &server) ||
	    ext_num(s, '/', UINT64_MAX, &e->region_id) ||
	    ext_num(s, end, UINT64_MAX, &e->pool_off))
		return -EINVAL;
	e->server = server;
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
	size_t cap = (size_t)r->n * 110 + 1, used = 0;
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
	}
	return s;
}

/* ---- logging in -------------------------------------------------------- */

void dsm_reg_addr_wipe(struct dsm_reg_addr *a)
{
	explicit_bzero(a->pass, sizeof(a->pass));
}

/* The password is the file's one line: an editor's final newline is
 * not part of it, but a second line is a mistake worth naming. */
static int read_password(struct dsm_reg_addr *a, const char *path,
			 char *err, size_t errlen)
{
	char buf[DSM_REG_PASS_MAX];
	size_t len;
	int rc = dsm_private_file_read(path, "registry password file", buf,
				       sizeof(buf), &len, err, errlen);

	if (rc)
		goto out;
	if (len && buf[len - 1] == '\n')
		len--;
	if (len && buf[len - 1] == '\r')
		len--;
	rc = -EINVAL;
	if (len == sizeof(buf))
		snprintf(err, errlen, "registry password file %s: longer than "
			 "%d bytes", path, DSM_REG_PASS_MAX - 1);
	else if (!len)
		snprintf(err, errlen, "registry password file %s is empty",
			 path);
	else if (memchr(buf, '\n', len) || memchr(buf, '\0', len))
		snprintf(err, errlen, "registry password file %s: want the "
			 "password alone on one line", path);
	else
		rc = 0;
	if (!rc) {
		memcpy(a->pass, buf, len);
		a->pass[len] = '\0';
	}
out:
	explicit_bzero(buf, sizeof(buf));
	return rc;
}

int dsm_reg_addr_init(struct dsm_reg_addr *a, const char *url,
		      const char *pass_file, const char *pass_opt,
		      char *err, size_t errlen)
{
	char shown[320];
	int rc;

	if (dsm_reg_parse_url(url, a)) {
		snprintf(err, errlen, "registry '%s': expected "
			 "redis://[[USER]:PASSWORD@]HOST[:PORT]",
			 dsm_reg_redact(url, shown, sizeof(shown)));
		return -EINVAL;
	}
	snprintf(a->pass_opt, sizeof(a->pass_opt), "%s", pass_opt);
	if (!pass_file && a->user[0] && !a->pass_in_url) {
		snprintf(err, errlen, "registry %s names a user but no "
			 "password: give the password with %s", a->url,
			 pass_opt);
		return -EINVAL;
	}
	if (!pass_file)
		return 0;
	if (a->pass_in_url) {
		snprintf(err, errlen, "registry %s: a password in the URL and "
			 "another in %s: give one (the file: a URL shows in "
			 "ps)", a->url, pass_opt);
		dsm_reg_addr_wipe(a);
		return -EINVAL;
	}
	rc = read_password(a, pass_file, err, errlen);
	if (rc)
		dsm_reg_addr_wipe(a);
	return rc;
}

int dsm_reg_auth_argv(const struct dsm_reg_addr *a, const char *argv[3],
		      size_t len[3])
{
	int n = 0;

	if (!a->pass[0])
		return 0;
	argv[n++] = "AUTH";
	if (a->user[0])
		argv[n++] = a->user;
	argv[n++] = a->pass;
	for (int i = 0; i < n; i++)
		len[i] = strlen(argv[i]);
	return n;
}

bool dsm_reg_noauth(const char *reply)
{
	return reply && !strncmp(reply, "NOAUTH", 6);
}

static bool starts(const char *s, const char *prefix)
{
	return !strncmp(s, prefix, strlen(prefix));
}

void dsm_reg_auth_error(const struct dsm_reg_addr *a, const char *reply,
			char *err, size_t errlen)
{
	const char *from = a->pass_in_url ? "the password in the URL"
					  : a->pass_opt;

	reply = reply ? reply : "";
	if (dsm_reg_noauth(reply))
		snprintf(err, errlen, "registry %s requires a password: put "
			 "it in a file (mode 0600) and give that with %s",
			 a->url, a->pass_opt);
	/* Redis 6+ and older Redis say these two differently */
	else if (starts(reply, "WRONGPASS") ||
		 starts(reply, "ERR invalid password"))
		snprintf(err, errlen, "registry %s: password refused; check %s",
			 a->url, from);
	else if (starts(reply, "ERR AUTH <password> called without") ||
		 starts(reply, "ERR Client sent AUTH, but no password"))
		snprintf(err, errlen, "registry %s has no password set, but "
			 "%s gives one: drop it, or set requirepass on that "
			 "Redis", a->url, from);
	else if (a->pass[0] && strstr(reply, a->pass))
		snprintf(err, errlen, "registry %s refused AUTH (its reply "
			 "quotes the password, so it is not shown)", a->url);
	else
		snprintf(err, errlen, "registry %s refused AUTH: %s", a->url,
			 reply);
}

/* ---- connection -------------------------------------------------------- */

/* AUTH if a has a password, then PING: either may say we are not let in.
 * 0, or -errno with a message in err. */
static int log_in(struct dsm_reg *r, char *err, size_t errlen)
{
	const char *argv[3];
	size_t len[3];
	int argc = dsm_reg_auth_argv(&r->addr, argv, len);
	redisReply *rep = NULL;
	int rc = 0;

	if (argc) {
		rep = redisCommandArgv(r->c, argc, argv, len);
		if (rep && rep->type == REDIS_REPLY_ERROR) {
			dsm_reg_auth_error(&r->addr, rep->str, err, errlen);
			rc = -EACCES;
			goto out;
		}
		freeReplyObject(rep);
		rep = NULL;
	}
	if (r->c->err == 0)
		rep = redisCommand(r->c, "PING");
	if (rep && rep->type == REDIS_REPLY_ERROR && dsm_reg_noauth(rep->str)) {
		dsm_reg_auth_error(&r->addr, rep->str, err, errlen);
		rc = -EACCES;
	} else if (!rep || rep->type == REDIS_REPLY_ERROR) {
		snprintf(err, errlen, "registry at %s does not answer PING: %s",
			 r->addr.url, rep ? rep->str : r->c->errstr);
		rc = -EPROTO;
	}
out:
	freeReplyObject(rep);
	return rc;
}

int dsm_reg_open(const struct dsm_reg_addr *a, const char *cluster,
		 struct dsm_reg **out, char *err, size_t errlen)
{
	struct timeval tv = { DSM_REG_TIMEOUT_MS / 1000,
			      DSM_REG_TIMEOUT_MS % 1000 * 1000 };
	struct dsm_reg *r = calloc(1, sizeof(*r));
	int rc;

	if (!r) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	r->addr = *a;
	cluster = cluster && *cluster ? cluster : DSM_REG_DEFAULT_CLUSTER;
	if (dsm_reg_check_cluster(cluster)) {
		snprintf(err, errlen, "cluster name '%s': expected 1-%d of "
			 "letters, digits, '_', '.', '-'", cluster,
			 DSM_REG_CLUSTER_MAX);
		rc = -EINVAL;
		goto fail;
	}
	snprintf(r->cluster, sizeof(r->cluster), "%s", cluster);
	r->c = redisConnectWithTimeout(r->addr.host, r->addr.port, tv);
	if (!r->c || r->c->err) {
		snprintf(err, errlen, "cannot reach the registry at %s (%s:%u): "
			 "%s; is redis-server running there, and is the "
			 "address right?", r->addr.url, r->addr.host,
			 r->addr.port, r->c ? r->c->errstr : "out of memory");
		rc = -ECONNREFUSED;
		goto fail;
	}
	redisSetTimeout(r->c, tv);
	rc = log_in(r, err, errlen);
	if (rc)
		goto fail;
	*out = r;
	return 0;
fail:
	dsm_reg_close(r);
	return rc;
}

void dsm_reg_close(struct dsm_reg *r)
{
	if (!r)
		return;
	if (r->c)
		redisFree(r->c);
	dsm_reg_addr_wipe(&r->addr);
	free(r);
}

const char *dsm_reg_cluster(const struct dsm_reg *r)
{
	return r->cluster;
}

const char *dsm_reg_url(const struct dsm_reg *r)
{
	return r->addr.url;
}

/* ---- commands ----------------------------------------------------------- */

/* A reply, or NULL after a transport error; an error reply is -EPROTO. */
static int check(struct dsm_reg *r, redisReply *rep)
{
	if (!rep)
		return r->c->err == REDIS_ERR_IO && r->c->errstr[0] ?
			       -ECONNRESET : -EPIPE;
	return rep->type == REDIS_REPLY_ERROR ? -EPROTO : 0;
}

/* Drop an expired member from its index - atomically, and only if its
 * record is still missing: a server that registered again since we
 * looked must not lose its index entry. */
static void forget_expired(struct dsm_reg *r, const char *set,
			   const char *what, const char *id)
{
	static const char script[] =
		"if redis.call('EXISTS', KEYS[1]) == 0 then "
		"return redis.call('SREM', KEYS[2], ARGV[1]) end return 0";
	char key[160], skey[160];

	freeReplyObject(redisCommand(
		r->c, "EVAL %s 2 %s %s %s", script,
		dsm_reg_key(key, sizeof(key), r->cluster, "%s:%s", what, id),
		dsm_reg_key(skey, sizeof(skey), r->cluster, "%s", set), id));
}

/* SMEMBERS of the index set, then HGETALL of each member, pipelined.
 * decode() fills element i of out (size elt); members whose hash is gone
 * (expired) are removed from the index; the rest are sorted by cmp.
 * *out is malloc'd. */
typedef int (*decode_fn)(char **kv, size_t n, void *out);

/* A malformed record's id (a strdup of it) into *bad, if the caller
 * wants them: a record no reader can show should at least be named. */
static int add_bad(char ***bad, size_t *nbad, const char *id)
{
	char **v;

	if (!bad)
		return 0;
	v = realloc(*bad, (*nbad + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	*bad = v;
	if (!(v[*nbad] = strdup(id)))
		return -ENOMEM;
	(*nbad)++;
	return 0;
}

void dsm_reg_ids_free(char **ids, size_t n)
{
	for (size_t i = 0; i < n && ids; i++)
		free(ids[i]);
	free(ids);
}

static int list(struct dsm_reg *r, const char *set, const char *what,
		decode_fn decode, size_t elt,
		int (*cmp)(const void *, const void *), void **out, size_t *n,
		char ***bad, size_t *nbad)
{
	char key[160];
	redisReply *ids = redisCommand(r->c, "SMEMBERS %s",
				       dsm_reg_key(key, sizeof(key), r->cluster,
						   "%s", set));
	char *v = NULL;
	size_t *expired = NULL, nexp = 0;
	int err = check(r, ids);

	*n = 0;
	if (err || ids->type != REDIS_REPLY_ARRAY)
		goto out;
	v = calloc(ids->elements ? ids->elements : 1, elt);
	expired = calloc(ids->elements ? ids->elements : 1, sizeof(*expired));
	if (!v || !expired) {
		err = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < ids->elements; i++)
		redisAppendCommand(r->c, "HGETALL %s",
				   dsm_reg_key(key, sizeof(key), r->cluster,
					       "%s:%s", what,
					       ids->element[i]->str));
	for (size_t i = 0; i < ids->elements; i++) {
		redisReply *h = NULL;
		char *kv[64];
		size_t m;

		if (redisGetReply(r->c, (void **)&h) != REDIS_OK) {
			err = -ECONNRESET;
			goto out;
		}
		m = h->type == REDIS_REPLY_ARRAY ? h->elements : 0;
		for (size_t j = 0; j < m && j < 64; j++)
			kv[j] = h->element[j]->str;
		if (m == 0) /* expired: drop it from the index, later */
			expired[nexp++] = i;
		else if (!decode(kv, m < 64 ? m : 64, v + *n * elt))
			(*n)++;
		else if (!err)
			err = add_bad(bad, nbad, ids->element[i]->str);
		freeReplyObject(h);
	}
	/* only now: a command sent while pipelined replies are pending
	 * would read one of those as its own reply */
	for (size_t k = 0; k < nexp; k++)
		forget_expired(r, set, what, ids->element[expired[k]]->str);
out:
	free(expired);
	freeReplyObject(ids);
	if (err) {
		free(v);
		v = NULL;
		*n = 0;
		if (bad) {
			dsm_reg_ids_free(*bad, *nbad);
			*bad = NULL;
			*nbad = 0;
		}
	}
	if (v)
		qsort(v, *n, elt, cmp);
	*out = v;
	return err;
}

static int cmp_server(const void *a, const void *b)
{
	const struct dsm_reg_server *x = a, *y = b;

	return x->id < y->id ? -1 : x->id > y->id;
}

int dsm_reg_list_servers(struct dsm_reg *r, struct dsm_reg_server **out,
			 size_t *n)
{
	return list(r, "servers", "server", (decode_fn)dsm_reg_server_decode,
		    sizeof(**out), cmp_server, (void **)out, n, NULL, NULL);
}

static int cmp_client(const void *a, const void *b)
{
	const struct dsm_reg_client *x = a, *y = b;

	return x->id < y->id ? -1 : x->id > y->id;
}

int dsm_reg_list_clients(struct dsm_reg *r, struct dsm_reg_client **out,
			 size_t *n)
{
	return list(r, "clients", "client", (decode_fn)dsm_reg_client_decode,
		    sizeof(**out), cmp_client, (void **)out, n, NULL, NULL);
}

static int cmp_region(const void *a, const void *b)
{
	const struct dsm_reg_region *x = a, *y = b;

	return x->id < y->id ? -1 : x->id > y->id;
}

int dsm_reg_list_regions(struct dsm_reg *r, struct dsm_reg_region **out,
			 size_t *n, char ***bad, size_t *nbad)
{
	if (bad) {
		*bad = NULL;
		*nbad = 0;
	}
	return list(r, "regions", "region", (decode_fn)dsm_reg_region_decode,
		    sizeof(**out), cmp_region, (void **)out, n, bad, nbad);
}

void dsm_reg_regions_free(struct dsm_reg_region *v, size_t n)
{
	for (size_t i = 0; i < n && v; i++)
		dsm_reg_region_clear(&v[i]);
	free(v);
}

int dsm_reg_get_region(struct dsm_reg *r, uint64_t id,
		       struct dsm_reg_region *out)
{
	char key[160], *kv[64];
	redisReply *h = redisCommand(r->c, "HGETALL %s",
				     dsm_reg_key(key, sizeof(key), r->cluster,
						 "region:%llu",
						 (unsigned long long)id));
	int err = check(r, h);
	size_t m;

	if (err)
		goto out;
	m = h->type == REDIS_REPLY_ARRAY ? h->elements : 0;
	if (!m) {
		err = -ENOENT;
		goto out;
	}
	for (size_t j = 0; j < m && j < 64; j++)
		kv[j] = h->element[j]->str;
	err = dsm_reg_region_decode(kv, m < 64 ? m : 64, out);
out:
	freeReplyObject(h);
	return err;
}

int dsm_reg_new_id(struct dsm_reg *r, uint64_t *id)
{
	char key[160];
	redisReply *rep = redisCommand(r->c, "INCR %s",
				       dsm_reg_key(key, sizeof(key), r->cluster,
						   "next_id"));
	int err = check(r, rep);

	if (!err && rep->type == REDIS_REPLY_INTEGER && rep->integer > 0)
		*id = rep->integer;
	else if (!err)
		err = -EPROTO;
	freeReplyObject(rep);
	return err;
}

/* The replies to n pipelined commands, all read (the connection stays
 * in step); 0, or the first error among them. */
static int replies(struct dsm_reg *r, size_t n)
{
	int err = 0;

	for (size_t i = 0; i < n; i++) {
		redisReply *rep = NULL;

		if (redisGetReply(r->c, (void **)&rep) != REDIS_OK)
			return -ECONNRESET;
		if (!err)
			err = check(r, rep);
		freeReplyObject(rep);
	}
	return err;
}

/* MULTI/EXEC around a record write and its index entry, so a reader never
 * finds one without the other. */
static int put_indexed(struct dsm_reg *r, const char *set, const char *key,
		       const char *id, struct dsm_reg_argv *a, uint64_t ttl_ms)
{
	char skey[160];

	dsm_reg_key(skey, sizeof(skey), r->cluster, "%s", set);
	redisAppendCommand(r->c, "MULTI");
	redisAppendCommandArgv(r->c, a->argc, a->argv, a->len);
	if (ttl_ms)
		redisAppendCommand(r->c, "PEXPIRE %s %llu", key,
				   (unsigned long long)ttl_ms);
	redisAppendCommand(r->c, "SADD %s %s", skey, id);
	redisAppendCommand(r->c, "EXEC");
	return replies(r, ttl_ms ? 5 : 4);
}

int dsm_reg_put_server(struct dsm_reg *r, const struct dsm_reg_server *s,
		       uint64_t ttl_ms)
{
	struct dsm_reg_argv a;
	char key[160], id[16];

	snprintf(id, sizeof(id), "%u", s->id);
	dsm_reg_key(key, sizeof(key), r->cluster, "server:%s", id);
	dsm_reg_server_argv(s, key, &a);
	return put_indexed(r, "servers", key, id, &a, ttl_ms);
}

int dsm_reg_put_client(struct dsm_reg *r, const struct dsm_reg_client *c,
		       uint64_t ttl_ms)
{
	struct dsm_reg_argv a = { .argc = 0 };
	char key[160], id[24];

	snprintf(id, sizeof(id), "%llu", (unsigned long long)c->id);
	dsm_reg_key(key, sizeof(key), r->cluster, "client:%s", id);
	argv_add(&a, "HSET");
	argv_add(&a, key);
	argv_num(&a, "id", c->id);
	argv_add(&a, "host");
	argv_add(&a, c->host);
	argv_num(&a, "pid", c->pid);
	argv_num(&a, "started_ms", c->started_ms);
	argv_num(&a, "heartbeat_ms", c->heartbeat_ms);
	for (int i = 0; i < DSM_RC_NCOUNTERS; i++)
		argv_num(&a, dsm_reg_client_counters[i], c->counters[i]);
	return put_indexed(r, "clients", key, id, &a, ttl_ms);
}

/* The record and its index entry go together (MULTI), like put_indexed. */
static int del_indexed(struct dsm_reg *r, const char *set, const char *what,
		       uint64_t id)
{
	char key[160], skey[160];

	dsm_reg_key(key, sizeof(key), r->cluster, "%s:%llu", what,
		    (unsigned long long)id);
	dsm_reg_key(skey, sizeof(skey), r->cluster, "%s", set);
	redisAppendCommand(r->c, "MULTI");
	redisAppendCommand(r->c, "DEL %s", key);
	redisAppendCommand(r->c, "SREM %s %llu", skey, (unsigned long long)id);
	redisAppendCommand(r->c, "EXEC");
	return replies(r, 4);
}

int dsm_reg_del_client(struct dsm_reg *r, uint64_t id)
{
	return del_indexed(r, "clients", "client", id);
}

int dsm_reg_client_exists(struct dsm_reg *r, uint64_t id)
{
	char key[160];
	redisReply *rep = redisCommand(r->c, "EXISTS %s",
				       dsm_reg_key(key, sizeof(key), r->cluster,
						   "client:%llu",
						   (unsigned long long)id));
	int err = check(r, rep);

	if (!err)
		err = rep->type == REDIS_REPLY_INTEGER ? rep->integer > 0
						       : -EPROTO;
	freeReplyObject(rep);
	return err;
}

int dsm_reg_put_region(struct dsm_reg *r, const struct dsm_reg_region *rg,
		       uint64_t ttl_ms)
{
	struct dsm_reg_argv a = { .argc = 0 };
	char key[160], id[24];
	char *ext = dsm_reg_extents_encode(rg);
	int err;

	if (!ext)
		return -ENOMEM;
	snprintf(id, sizeof(id), "%llu", (unsigned long long)rg->id);
	dsm_reg_key(key, sizeof(key), r->cluster, "region:%s", id);
	argv_add(&a, "HSET");
	argv_add(&a, key);
	argv_num(&a, "id", rg->id);
	argv_add(&a, "name");
	argv_add(&a, rg->name);
	argv_num(&a, "size", rg->size);
	argv_num(&a, "owner", rg->owner);
	argv_num(&a, "created_ms", rg->created_ms);
	argv_add(&a, "extents");
	argv_add(&a, ext);
	err = put_indexed(r, "regions", key, id, &a, ttl_ms);
	free(ext);
	return err;
}

int dsm_reg_touch_regions(struct dsm_reg *r, const uint64_t *ids, size_t n,
			  uint64_t ttl_ms)
{
	char key[160];

	for (size_t i = 0; i < n; i++)
		redisAppendCommand(r->c, "PEXPIRE %s %llu",
				   dsm_reg_key(key, sizeof(key), r->cluster,
					       "region:%llu",
					       (unsigned long long)ids[i]),
				   (unsigned long long)ttl_ms);
	return replies(r, n);
}

int dsm_reg_del_region(struct dsm_reg *r, uint64_t id)
{
	return del_indexed(r, "regions", "region", id);
}

int dsm_reg_set_drain(struct dsm_reg *r, uint32_t server, bool on)
{
	char key[160];
	redisReply *rep = redisCommand(r->c, "%s %s %u", on ? "SADD" : "SREM",
				       dsm_reg_key(key, sizeof(key), r->cluster,
						   "drain"), server);
	int err = check(r, rep);

	freeReplyObject(rep);
	return err;
}
