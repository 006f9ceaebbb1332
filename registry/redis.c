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
