/*
 * membership.c - dsm-server's membership in the cluster registry (room:
 * registry).  See membership.h for the life cycle.
 *
 * Why asynchronous: a blocking Redis call on the server's one loop would
 * stall every client's page faults for as long as Redis takes to answer
 * (or to time out).  hiredis's libuv adapter puts the Redis connection on
 * the same loop instead, so a slow or dead Redis costs the clients nothing.
 *
 * Every interval here is on the monotonic clock (dsm_mono_ms): a wall
 * clock stepped back made "now - since" wrap, and a grace period of 10 s
 * end at once.  Not CLOCK_BOOTTIME: time this machine spent suspended is
 * time the clients could not reach us, not time they were silent.
 */
#include "membership.h"

#include <errno.h>
#include <hiredis/adapters/libuv.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

static void beat_now(struct membership *r);

/* ---- connection --------------------------------------------------------- */

/* Connected and logged in: beat at once, which registers us again if
 * Redis lost everything. */
static void ready(struct membership *r)
{
	r->connecting_since = 0;
	r->connected = true;
	if (r->warned)
		dsm_info("registry %s is back: registering again", r->addr.url);
	r->warned = false;
	r->auth_warned = false;
	beat_now(r);
}

/* A Redis that refuses our password (or now wants one) after a restart
 * is a configuration error to name once, not a network hiccup: we keep
 * serving and retrying, as when Redis is away. */
static void on_auth_reply(redisAsyncContext *ac, void *reply, void *arg)
{
	struct membership *r = ac->data;
	redisReply *rep = reply;
	char msg[512];

	if (!rep)
		return; /* the connection went: on_disconnect says so */
	if (rep->type != REDIS_REPLY_ERROR) {
		ready(r);
		return;
	}
	if (!r->auth_warned) {
		dsm_reg_auth_error(&r->addr, rep->str, msg, sizeof(msg));
		dsm_warn("%s; serving on and retrying every %d ms", msg,
			 DSM_REG_HEARTBEAT_MS);
	}
	r->auth_warned = r->warned = true;
	redisAsyncDisconnect(ac);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
	struct membership *r = ac->data;
	const char *argv[3];
	size_t len[3];
	int argc;

	if (status != REDIS_OK) {
		/* hiredis frees the context after this callback */
		r->connecting_since = 0;
		r->ac = NULL;
		return;
	}
	/* AUTH first: until it is answered the connection counts as
	 * connecting, and on_beat's timeout covers it too */
	argc = dsm_reg_auth_argv(&r->addr, argv, len);
	if (!argc)
		ready(r);
	else
		redisAsyncCommandArgv(r->ac, on_auth_reply, NULL, argc, argv,
				      len);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
	struct membership *r = ac->data;

	r->ac = NULL;
	r->connected = false;
	r->writable = false;
	if (status != REDIS_OK && !r->stopping && !r->warned) {
		dsm_warn("lost the registry at %s (%s); serving on and "
			 "reconnecting", r->addr.url, ac->errstr);
		r->warned = true;
	}
}

/* Start connecting; the next beats see how it went. */
static void reconnect(struct membership *r)
{
	redisAsyncContext *ac = redisAsyncConnect(r->addr.host, r->addr.port);

	if (!ac)
		return;
	if (ac->err || redisLibuvAttach(ac, r->loop) != REDIS_OK) {
		if (!r->warned)
			dsm_warn("cannot reach the registry at %s: %s; "
				 "retrying every %d ms", r->addr.url,
				 ac->err ? ac->errstr : "event loop",
				 DSM_REG_HEARTBEAT_MS);
		r->warned = true;
		redisAsyncFree(ac);
		return;
	}
	ac->data = r;
	redisAsyncSetConnectCallback(ac, on_connect);
	redisAsyncSetDisconnectCallback(ac, on_disconnect);
	r->ac = ac;
	r->connecting_since = dsm_mono_ms();
}

/* ---- heartbeat ---------------------------------------------------------- */

/* Whether an EXEC's reply says every command of it was carried out. */
static bool exec_done(const redisReply *rep)
{
	if (!rep || rep->type != REDIS_REPLY_ARRAY)
		return false; /* EXECABORT (a full Redis refuses HSET), or nil */
	for (size_t i = 0; i < rep->elements; i++)
		if (rep->element[i]->type == REDIS_REPLY_ERROR)
			return false;
	return true;
}

/* The beat's EXEC.  Whether it got through decides whether the lease
 * checks queued behind it on this connection count (on_lease_reply). */
static void on_beat_reply(redisAsyncContext *ac, void *reply, void *arg)
{
	struct membership *r = ac->data;
	redisReply *rep = reply;

	r->writable = exec_done(rep);
	if (rep && rep->type == REDIS_REPLY_ERROR && !r->warned) {
		dsm_warn("registry %s refused the heartbeat: %s; clients' "
			 "leases are not checked until it takes writes again",
			 r->addr.url, rep->str);
		r->warned = true;
	}
}

static void fill_record(struct membership *r)
{
	r->rec.used = r->h->pool.used;
	r->rec.regions = r->h->regions.count;
	r->rec.clients = r->h->sessions;
	r->rec.heartbeat_ms = dsm_reg_now_ms();
	r->rec.draining = r->h->draining;
	r->rec.counters[DSM_RS_READS] = r->h->reads;
	r->rec.counters[DSM_RS_WRITES] = r->h->writes;
	r->rec.counters[DSM_RS_PAGES_READ] = r->h->pages_read;
	r->rec.counters[DSM_RS_PAGES_WRITTEN] = r->h->pages_written;
	r->rec.counters[DSM_RS_PAGES_DISCARDED] = r->h->pages_discarded;
	r->rec.counters[DSM_RS_BYTES_IN] = r->h->bytes_in;
	r->rec.counters[DSM_RS_BYTES_OUT] = r->h->bytes_out;
	r->rec.counters[DSM_RS_ERRORS] = r->h->errors;
	r->rec.counters[DSM_RS_AUTH_REFUSED] = r->h->auth_refused;
	r->rec.counters[DSM_RS_CONN_REFUSED] = r->h->conn_refused;
	r->rec.counters[DSM_RS_OVER_LIMIT] = r->h->over_limit;
}

/* HSET, PEXPIRE and SADD in one MULTI: the record, its TTL and its index
 * entry (and the index's TTL, as for every index) are rewritten whole, so
 * a beat after Redis lost everything registers the server again. */
static void beat_now(struct membership *r)
{
	struct dsm_reg_argv a;
	char key[160], set[160], id[16], ttl[24];
	const char *expire[3] = { "PEXPIRE", key, ttl };
	const char *sadd[3] = { "SADD", set, id };
	const char *expire_set[3] = { "PEXPIRE", set, ttl };

	fill_record(r);
	snprintf(id, sizeof(id), "%u", r->rec.id);
	snprintf(ttl, sizeof(ttl), "%d", DSM_REG_TTL_MS);
	dsm_reg_key(key, sizeof(key), r->cluster, "server:%s", id);
	dsm_reg_key(set, sizeof(set), r->cluster, "servers");
	dsm_reg_server_argv(&r->rec, key, &a);
	redisAsyncCommand(r->ac, NULL, NULL, "MULTI");
	redisAsyncCommandArgv(r->ac, NULL, NULL, a.argc, a.argv, a.len);
	redisAsyncCommandArgv(r->ac, NULL, NULL, 3, expire, NULL);
	redisAsyncCommandArgv(r->ac, NULL, NULL, 3, sadd, NULL);
	redisAsyncCommandArgv(r->ac, NULL, NULL, 3, expire_set, NULL);
	redisAsyncCommand(r->ac, on_beat_reply, NULL, "EXEC");
}

/* ---- clients' leases ----------------------------------------------------- */

/* LEASEs that arrived since the last look mean the client is alive. */
static void note_heard(struct handler_session *hs, uint64_t now)
{
	if (hs->leases != hs->leases_seen) {
		hs->leases_seen = hs->leases;
		hs->heard_ms = now;
	}
}

/*
 * Whether s's client is gone, on positive evidence only: its lease has
 * been missing for the grace period from a Redis that took our own
 * writes just before each look (so not a full Redis refusing writes, nor
 * one we cannot reach: those say nothing about the client), AND its
 * connection has carried no LEASE for as long (so not a client merely
 * cut off from Redis: it still sends its LEASE here every heartbeat).
 */
static bool lease_lapsed(struct membership *r, struct handler_session *hs,
			 bool exists, uint64_t now)
{
	note_heard(hs, now);
	if (exists || !r->writable) {
		hs->lease_missing = false; /* the evidence must be unbroken */
		return false;
	}
	if (!hs->lease_missing) {
		hs->lease_missing = true;
		hs->missing_since_ms = now;
	}
	return now - hs->missing_since_ms >= DSM_REG_LEASE_GRACE_MS &&
	       now - hs->heard_ms >= DSM_REG_LEASE_GRACE_MS;
}

static void on_lease_reply(redisAsyncContext *ac, void *reply, void *arg)
{
	struct membership *r = ac->data;
	uint64_t id = (uintptr_t)arg, now = dsm_mono_ms();
	redisReply *rep = reply;
	struct session *s, *next;

	if (!rep || rep->type != REDIS_REPLY_INTEGER)
		return; /* Redis failed: that says nothing about the client */
	for (s = r->sessions->head; s; s = next) {
		next = s->next; /* session_close may unlink s */
		if (s->hs.client_id != id || s->closing ||
		    !lease_lapsed(r, &s->hs, rep->integer != 0, now))
			continue;
		dsm_warn("client %llu (%s): lease expired %llu ms ago and "
			 "nothing heard from it for %llu ms; closing its "
			 "connection and freeing its regions",
			 (unsigned long long)id, s->peer,
			 (unsigned long long)(now - s->hs.missing_since_ms),
			 (unsigned long long)(now - s->hs.heard_ms));
		session_close(s);
	}
}

/* One EXISTS per client with a lease (a client has one connection here,
 * so one per session in practice). */
static void check_leases(struct membership *r)
{
	char key[160];

	for (struct session *s = r->sessions->head; s; s = s->next) {
		if (!s->hs.client_id || s->closing)
			continue;
		dsm_reg_key(key, sizeof(key), r->cluster, "client:%llu",
			    (unsigned long long)s->hs.client_id);
		redisAsyncCommand(r->ac, on_lease_reply,
				  (void *)(uintptr_t)s->hs.client_id,
				  "EXISTS %s", key);
	}
}

/* ---- index pruning -------------------------------------------------------- */

/*
 * Members of the clients, regions, servers and shares indexes whose
 * record has expired, removed every DSM_REG_PRUNE_MS by each server, so
 * that the indexes do not grow with every client that ever crashed
 * between listings.  Likewise the holders of a shared region whose lease
 * is gone (while others keep its record alive), and the record with its
 * last holder, as dsm_reg_list_shares does.  The script reads keys it does
 * not declare, which is fine on one Redis and would not be on Redis
 * Cluster (dsm does not use it).
 */
static const char prune_script[] =
	"local n = 0 "
	"for _, what in ipairs({'client', 'region', 'server', 'share'}) do "
	"  local set = ARGV[1] .. what .. 's' "
	"  for _, id in ipairs(redis.call('SMEMBERS', set)) do "
	"    if redis.call('EXISTS', ARGV[1] .. what .. ':' .. id) == 0 then "
	"      n = n + redis.call('SREM', set, id) "
	"    end "
	"  end "
	"end "
	"for _, id in ipairs(redis.call('SMEMBERS', ARGV[1] .. 'shares')) do "
	"  local rec, left = ARGV[1] .. 'share:' .. id, 0 "
	"  for _, f in ipairs(redis.call('HKEYS', rec)) do "
	"    if string.find(f, '" DSM_REG_HOLDER_PREFIX "', 1, true) == 1 then "
	"      local client = string.sub(f, " DSM_REG_HOLDER_PREFIX_POS ") "
	"      if redis.call('EXISTS', ARGV[1] .. 'client:' .. client) == 0 "
	"      then n = n + redis.call('HDEL', rec, f) "
	"      else left = left + 1 end "
	"    end "
	"  end "
	"  if left == 0 then "
	"    redis.call('DEL', rec) "
	"    n = n + redis.call('SREM', ARGV[1] .. 'shares', id) "
	"  end "
	"end "
	"return n";

static void maybe_prune(struct membership *r)
{
	char prefix[160];
	uint64_t now = dsm_mono_ms();

	if (now - r->pruned_ms < DSM_REG_PRUNE_MS)
		return;
	r->pruned_ms = now;
	dsm_reg_key(prefix, sizeof(prefix), r->cluster, "%s", "");
	redisAsyncCommand(r->ac, NULL, NULL, "EVAL %s 0 %s", prune_script,
			  prefix);
}

/* ---- drain --------------------------------------------------------------- */

/*
 * An operator drains a server by adding its id to the drain set (dsmctl
 * drain), not by talking to the server: the registry is the one place
 * every operator command goes, and needs no cluster secret.  While the
 * server drains it beats every DRAIN_BEAT_MS instead of every second, so
 * dsmctl sees the moment it holds nothing.
 */
#define DRAIN_BEAT_MS 100

static void on_drain_reply(redisAsyncContext *ac, void *reply, void *arg)
{
	struct membership *r = ac->data;
	redisReply *rep = reply;
	bool on;

	if (!rep || rep->type != REDIS_REPLY_INTEGER)
		return; /* Redis failed: that changes nothing */
	on = rep->integer != 0;
	if (on == r->h->draining)
		return;
	dsm_info(on ? "draining: clients are moving their regions off this "
		      "server; it takes no new ones" :
		      "drain cancelled: taking new regions again");
	r->drain_changed(r->drain_arg, on);
	uv_timer_set_repeat(&r->beat, on ? DRAIN_BEAT_MS : DSM_REG_HEARTBEAT_MS);
	beat_now(r); /* let dsmctl see it at once */
}

static void check_drain(struct membership *r)
{
	char key[160];

	dsm_reg_key(key, sizeof(key), r->cluster, "drain");
	redisAsyncCommand(r->ac, on_drain_reply, NULL, "SISMEMBER %s %u", key,
			  r->rec.id);
}

static void on_beat(uv_timer_t *t)
{
	struct membership *r = t->data;

	if (r->connected) {
		beat_now(r);
		check_drain(r);
		check_leases(r);
		maybe_prune(r);
	} else if (!r->ac) {
		reconnect(r);
	} else if (dsm_mono_ms() - r->connecting_since > DSM_REG_TTL_MS) {
		/* hiredis 0.14 has no async connect timeout: give up on
		 * this attempt (on_connect will not run) and try again */
		redisAsyncFree(r->ac);
		r->ac = NULL;
	}
}

/* ---- start and stop ----------------------------------------------------- */

static int register_sync(struct membership *r)
{
	struct dsm_reg *reg;
	char err[512];
	int rc = dsm_reg_open(&r->addr, r->cluster, &reg, err, sizeof(err));

	if (rc) {
		dsm_err("%s", err);
		return rc;
	}
	fill_record(r);
	rc = dsm_reg_put_server(reg, &r->rec, DSM_REG_TTL_MS);
	if (rc)
		dsm_err("cannot register with %s: %s", r->addr.url,
			strerror(-rc));
	/* A drain recorded for an earlier process with this id (one that
	 * stopped without --cancel, or crashed) is over: this process
	 * holds nothing, and must not refuse every ALLOC for it. */
	else if (dsm_reg_set_drain(reg, r->rec.id, false) > 0)
		dsm_info("server %u was being drained before this start; "
			 "that drain is over", r->rec.id);
	dsm_reg_close(reg);
	return rc;
}

int membership_start(struct membership *r, uv_loop_t *loop,
		       const struct dsm_reg_addr *addr, const char *cluster,
		       const struct dsm_reg_server *rec,
		       const struct handler *h, struct session_list *sessions,
		       void (*drain_changed)(void *arg, bool on),
		       void *drain_arg)
{
	int err;

	memset(r, 0, sizeof(*r));
	r->loop = loop;
	r->h = h;
	r->sessions = sessions;
	r->drain_changed = drain_changed;
	r->drain_arg = drain_arg;
	r->rec = *rec;
	r->rec.pid = getpid();
	r->rec.started_ms = dsm_reg_now_ms();
	r->addr = *addr;
	gethostname(r->rec.host, sizeof(r->rec.host) - 1);
	snprintf(r->cluster, sizeof(r->cluster), "%s", cluster);
	err = register_sync(r);
	if (err) {
		dsm_reg_addr_wipe(&r->addr);
		return err;
	}
	dsm_info("registered as server %u of cluster '%s' at %s", r->rec.id,
		 r->cluster, r->addr.url);
	uv_timer_init(loop, &r->beat);
	r->beat.data = r;
	uv_timer_start(&r->beat, on_beat, 0, DSM_REG_HEARTBEAT_MS);
	return 0;
}

static void on_deregistered(redisAsyncContext *ac, void *reply, void *arg)
{
	redisAsyncDisconnect(ac);
}

void membership_stop(struct membership *r)
{
	char key[160], set[160], id[16];

	if (!r->loop || r->stopping)
		return;
	r->stopping = true;
	uv_close((uv_handle_t *)&r->beat, NULL);
	if (!r->connected) {
		membership_abort(r);
		return;
	}
	snprintf(id, sizeof(id), "%u", r->rec.id);
	dsm_reg_key(key, sizeof(key), r->cluster, "server:%s", id);
	dsm_reg_key(set, sizeof(set), r->cluster, "servers");
	redisAsyncCommand(r->ac, NULL, NULL, "DEL %s", key);
	redisAsyncCommand(r->ac, NULL, NULL, "SREM %s %s", set, id);
	/* a stopped server is drained by definition: its entry would
	 * otherwise outlive it (and start its successor draining) */
	dsm_reg_key(set, sizeof(set), r->cluster, "drain");
	redisAsyncCommand(r->ac, on_deregistered, NULL, "SREM %s %s", set, id);
}

void membership_abort(struct membership *r)
{
	dsm_reg_addr_wipe(&r->addr);
	if (r->ac) {
		redisAsyncContext *ac = r->ac;

		r->ac = NULL;
		r->connected = false;
		redisAsyncFree(ac);
	}
}
