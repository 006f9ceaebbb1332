/*
 * redis.c - the blocking registry client (room: registry): connect with a
 * timeout, log in, and read and write records (registry.h).  libdsm and
 * dsmctl use nothing else; dsm-server registers through it once at start,
 * then beats asynchronously on its own loop (server/membership.c).
 */
#include "registry.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "util.h"

struct dsm_reg {
	redisContext *c;
	char cluster[DSM_REG_CLUSTER_MAX + 1];
	struct dsm_reg_addr addr;
};

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
		char **kv;
		size_t m;

		if (redisGetReply(r->c, (void **)&h) != REDIS_OK) {
			err = -ECONNRESET;
			goto out;
		}
		m = h->type == REDIS_REPLY_ARRAY ? h->elements : 0;
		/* every field: a shared region's record has one per holder */
		kv = calloc(m ? m : 1, sizeof(*kv));
		for (size_t j = 0; kv && j < m; j++)
			kv[j] = h->element[j]->str;
		if (!kv)
			err = err ? err : -ENOMEM;
		else if (m == 0) /* expired: drop it from the index, later */
			expired[nexp++] = i;
		else if (!decode(kv, m, v + *n * elt))
			(*n)++;
		else if (!err)
			err = add_bad(bad, nbad, ids->element[i]->str);
		free(kv);
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

/*
 * Client ids are random and claimed, not counted.  A counter in Redis
 * (INCR next_id, as before) starts again at 1 when Redis restarts empty,
 * while the clients that took 1, 2, ... still live: the next to join
 * shared an id with one of them, and each overwrote the other's records.
 * A random id needs nothing Redis remembers.  Claiming it (the record is
 * created only if no record has that id) settles a collision with any
 * live client whose record exists; what is left is a collision with a
 * client in the second after an empty restart before its lease thread
 * writes again: 1 in DSM_REG_CLIENT_ID_MAX per such client.  Why not
 * 64 random bits: region ids are id * 10^9 + n (client/cluster.h), and
 * the range keeps them below 2^53, exact wherever JSON is read as
 * doubles.
 */
int dsm_reg_new_id(struct dsm_reg *r, uint64_t ttl_ms, uint64_t *id)
{
	static const char claim[] =
		"if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end "
		"redis.call('HSET', KEYS[1], 'id', ARGV[1]) "
		"redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1";
	char key[160];
	int err = 0;

	for (int tries = 0; tries < 16; tries++) {
		uint64_t v;
		redisReply *rep;

		if (getrandom(&v, sizeof(v), 0) != sizeof(v))
			return -EIO;
		v = 1 + v % DSM_REG_CLIENT_ID_MAX;
		dsm_reg_key(key, sizeof(key), r->cluster, "client:%llu",
			    (unsigned long long)v);
		rep = redisCommand(r->c, "EVAL %s 1 %s %llu %llu", claim, key,
				   (unsigned long long)v,
				   (unsigned long long)ttl_ms);
		err = check(r, rep);
		if (!err && rep->type != REDIS_REPLY_INTEGER)
			err = -EPROTO;
		if (!err && rep->integer == 1)
			*id = v;
		freeReplyObject(rep);
		if (err || *id == v)
			return err;
	}
	return -EEXIST; /* 16 taken in a row: the range is full */
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
	redisAppendCommand(r->c, "SADD %s %s", skey, id);
	if (ttl_ms)
		redisAppendCommand(r->c, "PEXPIRE %s %llu", key,
				   (unsigned long long)ttl_ms);
	/* the index outlives its newest member's record by nothing: when
	 * the last member stops renewing, the index goes too */
	if (ttl_ms)
		redisAppendCommand(r->c, "PEXPIRE %s %llu", skey,
				   (unsigned long long)ttl_ms);
	redisAppendCommand(r->c, "EXEC");
	return replies(r, ttl_ms ? 6 : 4);
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
	dsm_reg_client_argv(c, key, &a);
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
	dsm_reg_region_argv(rg, key, ext, &a);
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
	/* and their index's, as put_indexed does */
	if (n)
		redisAppendCommand(r->c, "PEXPIRE %s %llu",
				   dsm_reg_key(key, sizeof(key), r->cluster,
					       "regions"),
				   (unsigned long long)ttl_ms);
	return replies(r, n ? n + 1 : 0);
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

	if (!err)
		err = rep->type == REDIS_REPLY_INTEGER ? rep->integer > 0
						       : -EPROTO;
	freeReplyObject(rep);
	return err;
}

/* ---- shared regions ---------------------------------------------------- */

/*
 * A holder leaves a shared region's record: its field goes, and if no
 * holder field is left, the record and its index entry go too, in one
 * script, so that a holder writing its field at the same moment finds
 * either the record with others in it or none (and writes it whole).
 * KEYS: the record, the index, and (to drop a dead holder only) its
 * client's record, which must still be missing.  ARGV: the field, the
 * share's key.  Returns 0 if the client lived, 1 if the record has
 * holders left, 2 if it went.
 */
static const char share_leave_script[] =
	"if KEYS[3] and redis.call('EXISTS', KEYS[3]) == 1 then return 0 end "
	"redis.call('HDEL', KEYS[1], ARGV[1]) "
	"for _, f in ipairs(redis.call('HKEYS', KEYS[1])) do "
	"  if string.find(f, '" DSM_REG_HOLDER_PREFIX "', 1, true) == 1 "
	"  then return 1 end "
	"end "
	"redis.call('DEL', KEYS[1]) "
	"redis.call('SREM', KEYS[2], ARGV[2]) "
	"return 2";

/* Client holder leaves the record of key; if dead_only, only if its
 * lease is gone. */
static int share_leave(struct dsm_reg *r, const char *key, uint64_t holder,
		       bool dead_only)
{
	char rkey[160], skey[160], ckey[160], field[48];
	redisReply *rep;
	int err;

	dsm_reg_key(rkey, sizeof(rkey), r->cluster, "share:%s", key);
	dsm_reg_key(skey, sizeof(skey), r->cluster, "shares");
	dsm_reg_key(ckey, sizeof(ckey), r->cluster, "client:%llu",
		    (unsigned long long)holder);
	snprintf(field, sizeof(field), DSM_REG_HOLDER_PREFIX "%llu",
		 (unsigned long long)holder);
	if (!dead_only)
		rep = redisCommand(r->c, "EVAL %s 2 %s %s %s %s",
				   share_leave_script, rkey, skey, field, key);
	else
		rep = redisCommand(r->c, "EVAL %s 3 %s %s %s %s %s",
				   share_leave_script, rkey, skey, ckey, field,
				   key);
	err = check(r, rep);
	freeReplyObject(rep);
	return err;
}

/*
 * Write a holder's part of a shared region's record, unless the record
 * names another home: a compare-and-set, so that two processes that
 * created one name on two servers (each seeing other servers) learn it
 * before either returns, and the first to record its home wins.  A record
 * that names `stale` (a home found without the region) is taken over:
 * its holders were holders of what is gone, and their fields go with it.
 * KEYS: the record, the index.  ARGV: our holder field, when we attached,
 * the TTL, the share's key, our home and region id, the stale ones ("" if
 * none), then the record's field/value pairs.  Returns 0 when written,
 * else the home and region id the record names.
 */
static const char share_put_script[] =
	"local h = redis.call('HMGET', KEYS[1], 'home', 'region_id') "
	"if h[1] and (h[1] ~= ARGV[5] or h[2] ~= ARGV[6]) then "
	"  if h[1] ~= ARGV[7] or h[2] ~= ARGV[8] then "
	"    return {h[1], h[2] or ''} end "
	"  for _, f in ipairs(redis.call('HKEYS', KEYS[1])) do "
	"    if string.find(f, '" DSM_REG_HOLDER_PREFIX "', 1, true) == 1 "
	"    then redis.call('HDEL', KEYS[1], f) end "
	"  end "
	"end "
	"redis.call('HSET', KEYS[1], unpack(ARGV, 9)) "
	"redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) "
	"redis.call('SADD', KEYS[2], ARGV[4]) "
	"redis.call('PEXPIRE', KEYS[1], ARGV[3]) "
	"redis.call('PEXPIRE', KEYS[2], ARGV[3]) "
	"return 0";

/* The script's reply: 0 written, -EEXIST with *found, or -EPROTO. */
static int share_put_reply(redisReply *rep, struct dsm_reg_home *found)
{
	uint64_t home, region;

	if (rep->type == REDIS_REPLY_INTEGER && rep->integer == 0)
		return 0;
	if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
	    rep->element[0]->type != REDIS_REPLY_STRING ||
	    rep->element[1]->type != REDIS_REPLY_STRING ||
	    dsm_parse_uint(rep->element[0]->str, UINT32_MAX, &home) ||
	    dsm_parse_uint(rep->element[1]->str, UINT64_MAX, &region))
		return -EPROTO;
	*found = (struct dsm_reg_home){ .server = (uint32_t)home,
					.region_id = region };
	return -EEXIST;
}

int dsm_reg_put_share(struct dsm_reg *r, const struct dsm_reg_share *sh,
		      uint64_t client, uint64_t attached_ms, uint64_t ttl_ms,
		      const struct dsm_reg_home *stale,
		      struct dsm_reg_home *found)
{
	char key[160], skey[160], fixed[8][DSM_REG_SHARE_KEY_HEX + 8];
	struct dsm_reg_argv a = { .argc = 0 };
	const char *argv[5 + 8 + DSM_REG_ARGV_MAX];
	size_t len[5 + 8 + DSM_REG_ARGV_MAX];
	redisReply *rep;
	int argc = 0, err;

	dsm_reg_key(key, sizeof(key), r->cluster, "share:%s", sh->key);
	dsm_reg_key(skey, sizeof(skey), r->cluster, "shares");
	dsm_reg_share_argv(sh, key, &a);
	snprintf(fixed[0], sizeof(fixed[0]), DSM_REG_HOLDER_PREFIX "%llu",
		 (unsigned long long)client);
	snprintf(fixed[1], sizeof(fixed[1]), "%llu", (unsigned long long)attached_ms);
	snprintf(fixed[2], sizeof(fixed[2]), "%llu", (unsigned long long)ttl_ms);
	snprintf(fixed[3], sizeof(fixed[3]), "%s", sh->key);
	snprintf(fixed[4], sizeof(fixed[4]), "%u", sh->home);
	snprintf(fixed[5], sizeof(fixed[5]), "%llu", (unsigned long long)sh->region_id);
	fixed[6][0] = fixed[7][0] = '\0';
	if (stale) {
		snprintf(fixed[6], sizeof(fixed[6]), "%u", stale->server);
		snprintf(fixed[7], sizeof(fixed[7]), "%llu",
			 (unsigned long long)stale->region_id);
	}
	argv[argc++] = "EVAL";
	argv[argc++] = share_put_script;
	argv[argc++] = "2";
	argv[argc++] = key;
	argv[argc++] = skey;
	for (int i = 0; i < 8; i++)
		argv[argc++] = fixed[i];
	for (int i = 2; i < a.argc; i++) /* the pairs, after HSET and key */
		argv[argc++] = a.argv[i];
	for (int i = 0; i < argc; i++)
		len[i] = i >= 13 ? a.len[i - 11] : strlen(argv[i]);
	rep = redisCommandArgv(r->c, argc, argv, len);
	err = check(r, rep);
	if (!err)
		err = share_put_reply(rep, found);
	freeReplyObject(rep);
	return err;
}

int dsm_reg_del_share_holder(struct dsm_reg *r, const char *key,
			     uint64_t client)
{
	return share_leave(r, key, client, false);
}

static int cmp_share(const void *a, const void *b)
{
	const struct dsm_reg_share *x = a, *y = b;

	return strcmp(x->name, y->name);
}

/* Whether holder h of a listed share is gone: the reply to HMGET of its
 * client's id, host and pid says its record is missing (every client
 * record has an id, from the moment it is claimed).  Otherwise host and
 * pid are filled in, if the record has them; an error reply is no
 * evidence either way, and the holder stays. */
static bool holder_gone(redisReply *rep, struct dsm_reg_holder *h)
{
	uint64_t pid;

	if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 3)
		return false;
	if (rep->element[0]->type != REDIS_REPLY_STRING)
		return true;
	if (rep->element[1]->type == REDIS_REPLY_STRING)
		snprintf(h->host, sizeof(h->host), "%s", rep->element[1]->str);
	if (rep->element[2]->type == REDIS_REPLY_STRING &&
	    !dsm_parse_uint(rep->element[2]->str, UINT32_MAX, &pid))
		h->pid = pid;
	return false;
}

/* Keep the live holders of v[0..n) (pipelined HMGETs of their clients'
 * records), and the shares left with one; the dead ones are dropped from
 * Redis afterwards, each only if its lease is still missing then. */
static int live_holders(struct dsm_reg *r, struct dsm_reg_share *v,
			size_t *n)
{
	struct dead_holder {
		size_t share;
		uint64_t client;
	} *dead;
	size_t ndead = 0, total = 0, kept = 0;
	char key[160];

	for (size_t i = 0; i < *n; i++)
		total += v[i].nholders;
	dead = calloc(total ? total : 1, sizeof(*dead));
	if (!dead)
		return -ENOMEM;
	for (size_t i = 0; i < *n; i++)
		for (uint32_t k = 0; k < v[i].nholders; k++)
			redisAppendCommand(r->c, "HMGET %s id host pid",
					   dsm_reg_key(key, sizeof(key),
						       r->cluster, "client:%llu",
						       (unsigned long long)
						       v[i].holder[k].client));
	for (size_t i = 0; i < *n; i++) {
		uint32_t live = 0;

		for (uint32_t k = 0; k < v[i].nholders; k++) {
			redisReply *rep = NULL;

			if (redisGetReply(r->c, (void **)&rep) != REDIS_OK) {
				free(dead);
				return -ECONNRESET;
			}
			if (!holder_gone(rep, &v[i].holder[k]))
				v[i].holder[live++] = v[i].holder[k];
			else
				dead[ndead++] = (struct dead_holder){
					i, v[i].holder[k].client };
			freeReplyObject(rep);
		}
		v[i].nholders = live;
	}
	/* only now that every reply is read (see list()) */
	for (size_t d = 0; d < ndead; d++)
		share_leave(r, v[dead[d].share].key, dead[d].client, true);
	free(dead);
	for (size_t i = 0; i < *n; i++) {
		if (v[i].nholders)
			v[kept++] = v[i];
		else
			dsm_reg_share_clear(&v[i]);
	}
	*n = kept;
	return 0;
}

int dsm_reg_list_shares(struct dsm_reg *r, struct dsm_reg_share **out,
			size_t *n, char ***bad, size_t *nbad)
{
	int err;

	if (bad) {
		*bad = NULL;
		*nbad = 0;
	}
	err = list(r, "shares", "share", (decode_fn)dsm_reg_share_decode,
		   sizeof(**out), cmp_share, (void **)out, n, bad, nbad);
	if (!err)
		err = live_holders(r, *out, n);
	if (err) {
		dsm_reg_shares_free(*out, *n);
		*out = NULL;
		*n = 0;
		if (bad) {
			dsm_reg_ids_free(*bad, *nbad);
			*bad = NULL;
			*nbad = 0;
		}
	}
	return err;
}

void dsm_reg_shares_free(struct dsm_reg_share *v, size_t n)
{
	for (size_t i = 0; i < n && v; i++)
		dsm_reg_share_clear(&v[i]);
	free(v);
}
