/*
 * cluster.c - the client's side of the cluster registry (room: registry).
 *
 * With DSM_REGISTRY set, dsm_init() asks Redis for the live servers
 * instead of reading DSM_SERVERS, and the process joins the cluster as a
 * client: a record with a lease that a small thread renews every
 * DSM_REG_HEARTBEAT_MS, so a crashed or hung process drops out by itself.
 * Each region is recorded with its placement (who holds which stripes) on
 * dsm_alloc() and removed on dsm_free() and at a clean exit.  Region
 * records live as long as the lease and are renewed with it, so a crashed
 * client's regions leave the registry with it (the servers already freed
 * its memory when its connections closed).  A shared region is not ours
 * alone: its record is everyone's who maps it, and ours is a holder field
 * in it, written at dsm_map_shared, renewed with the lease, and removed
 * at dsm_unmap_shared (registry/record.h).
 *
 * Why a thread of its own: the registry is a blocking hiredis connection,
 * and Redis may be slow or gone.  The engine thread must never wait for
 * it (faults would stall), and application threads only touch it in
 * dsm_alloc/dsm_free, which are not on the fault path.
 *
 * Redis going away costs nothing but visibility: allocation and paging go
 * on, the lease thread reconnects, and when it finds its record gone
 * (Redis restarted and lost its data) it writes the client and every live
 * region again.
 *
 * The lease in Redis is not the only sign of life: a second thread sends
 * LEASE on every server connection each DSM_REG_HEARTBEAT_MS, and a
 * server frees our memory only when our lease is gone from a Redis that
 * takes its writes AND our connection has been silent for the grace
 * period (server/membership.c).  So a full or unreachable Redis, or a cut
 * between us and it, costs us our record, never our memory.  It is a
 * thread of its own because the lease thread may spend seconds in Redis
 * timeouts; the keepalive must not wait for them.  Both threads wait on
 * the monotonic clock: a wall clock stepped back must not stop them.
 *
 * Lock order: cl.lock, then dsm_eng.lock (the lease thread snapshots the
 * region table when it republishes and renews); ka.lock, then
 * dsm_eng.lock.  Because the snapshot is taken under cl.lock, a shared
 * region unmapped meanwhile has its holder field removed after the
 * renewal wrote it, never before.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cluster.h"
#include "dsm.h"
#include "engine.h"
#include "log.h"
#include "outbox.h"
#include "registry.h"
#include "shared.h"
#include "shim.h"
#include "util.h"

/* The process's membership; everything guarded by lock.  Owned by the
 * library between dsm_cluster_open() and dsm_cluster_leave(). */
static struct {
	pthread_mutex_t lock;
	pthread_cond_t wake;         /* monotonic: dsm_cluster_join sets it */
	struct dsm_reg *reg;         /* NULL while Redis is unreachable */
	struct dsm_reg_addr addr;    /* with the password, to reconnect */
	const char *url;             /* addr.url: password redacted */
	char name[DSM_REG_CLUSTER_MAX + 1];
	struct dsm_reg_client me;
	uint64_t next_region;        /* regions named so far */
	pthread_t lease_thread;
	bool joined;                 /* also read unlocked: atomic */
	bool quit, warned;
	bool auth_warned;            /* said why Redis refused us */
} cl = { .lock = PTHREAD_MUTEX_INITIALIZER,
	 .wake = PTHREAD_COND_INITIALIZER };

/* The keepalive thread: it only queues LEASE messages, so it never takes
 * cl.lock, which the lease thread holds through Redis's timeouts.
 * Everything guarded by lock; owned like cl. */
static struct {
	pthread_mutex_t lock;
	pthread_cond_t wake;         /* monotonic, like cl.wake */
	pthread_t thread;
	bool running, quit;
} ka = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* Something failed talking to Redis: drop the connection (the lease
 * thread reconnects) and say so once until it works again. */
static void lost(const char *what, int err)
{
	if (!cl.warned)
		dsm_warn("registry %s: %s failed (%s); far memory keeps "
			 "working, the registry is updated when it is back",
			 cl.url, what, strerror(-err));
	cl.warned = true;
	dsm_reg_close(cl.reg);
	cl.reg = NULL;
}

_Static_assert(DSM_MAX_REPLICAS - 1 <= DSM_REG_MAX_REPLICAS,
	       "the registry record holds every copy");

static void to_reg_region(const struct dsm_region *r,
			  struct dsm_reg_region *out)
{
	*out = (struct dsm_reg_region){ .id = r->id, .size = r->size,
					.owner = cl.me.id,
					.created_ms = r->created_ms,
					.n = r->place.n };
	out->ext = calloc(r->place.n, sizeof(*out->ext));
	if (!out->ext) {
		out->n = 0;
		return;
	}
	for (uint32_t i = 0; i < r->place.n; i++) {
		const struct dsm_extent *e = &r->place.ext[i];

		out->ext[i] = (struct dsm_reg_extent){
			.off = e->off, .len = e->len,
			.server = dsm_eng.servers[e->server].id,
			.region_id = e->region_id, .pool_off = e->pool_off,
			.nrep = e->nrep };
		for (uint32_t c = 0; c < e->nrep; c++)
			out->ext[i].rep[c] = (struct dsm_reg_copy){
				.server = dsm_eng.servers[e->rep[c].server].id,
				.region_id = e->rep[c].region_id,
				.pool_off = e->rep[c].pool_off };
	}
}

/* Called with cl.lock held; consumes rec. */
static void put_region(struct dsm_reg_region *rec)
{
	int err = rec->ext ? 0 : -ENOMEM;

	if (cl.reg && !err)
		err = dsm_reg_put_region(cl.reg, rec, DSM_REG_TTL_MS);
	dsm_reg_region_clear(rec);
	if (err)
		lost("recording a region", err);
}

_Static_assert(2 * DSM_SHARE_KEY_SIZE == DSM_REG_SHARE_KEY_HEX,
	       "a shared region's record is keyed by the hex of its key");
_Static_assert(DSM_SHARED_NAME_MAX == DSM_REG_SHARE_NAME_MAX,
	       "the record holds every name dsm_map_shared takes");

/* A shared region's record as this holder writes it; its fields are
 * fixed once dsm_map_shared has mapped it. */
struct held_share {
	struct dsm_reg_share rec;
	uint64_t attached_ms;
};

static void to_held_share(const struct dsm_region *r, struct held_share *out)
{
	const struct dsm_shared *sh = r->shared;

	*out = (struct held_share){
		.rec = { .size = r->size,
			 .home = dsm_eng.servers[sh->server].id,
			 .region_id = sh->region_id,
			 .pool_off = sh->pool_off },
		.attached_ms = r->created_ms };
	dsm_reg_hex(sh->key, sizeof(sh->key), out->rec.key);
	snprintf(out->rec.name, sizeof(out->rec.name), "%s", sh->name);
}

/* Called with cl.lock held.  0, -EEXIST with *found (the record names
 * another home: dsm_reg_put_share), or -errno. */
static int put_share(const struct held_share *h,
		     const struct dsm_reg_home *stale,
		     struct dsm_reg_home *found)
{
	return cl.reg ? dsm_reg_put_share(cl.reg, &h->rec, cl.me.id,
					  h->attached_ms, DSM_REG_TTL_MS,
					  stale, found)
		      : -EPIPE;
}

/* A renewal found the record naming another home.  Most often the
 * region is moving off a drained home and its mover recorded the new
 * one first (we follow it within a pass: shared_move.c); else the
 * record expired (Redis was out longer than a lease) and a process that
 * could not see our home created the name anew elsewhere.  Our holding
 * works either way; not the registry's failure, so not lost(). */
static void disputed(const struct held_share *h, const struct dsm_reg_home *f)
{
	bool moving = false;

	pthread_mutex_lock(&dsm_eng.lock);
	for (uint32_t i = 0; i < dsm_eng.nservers; i++)
		if (dsm_eng.servers[i].id == h->rec.home)
			moving = dsm_eng.servers[i].draining;
	pthread_mutex_unlock(&dsm_eng.lock);
	if (moving) {
		dsm_debug("shared region %s: recorded at server %u, which it "
			  "is moving to", h->rec.name, f->server);
		return;
	}
	dsm_warn("shared region %s: the registry names server %u as its home, "
		 "not server %u where this process holds it: it was created "
		 "again elsewhere while its record was gone", h->rec.name,
		 f->server, h->rec.home);
}

/*
 * Our holder field in every shared region we map, written whole again
 * with each renewal, not only its TTL renewed.  Others change these
 * records: a reader drops a holder whose lease it finds missing, and the
 * last holder to leave deletes the record.  Writing it again makes our
 * membership come back within a heartbeat whatever removed it, without
 * having to notice.  Called with cl.lock held; copied under the engine
 * lock, written after it.  A region whose dsm_map_shared has not recorded
 * it yet (created_ms 0) is left to dsm_cluster_shared_claim.
 */
static int put_shares(void)
{
	struct held_share *v;
	uint32_t n = 0;
	int err = 0;

	pthread_mutex_lock(&dsm_eng.lock);
	v = calloc(dsm_eng.nregions ? dsm_eng.nregions : 1, sizeof(*v));
	for (uint32_t i = 0; v && i < dsm_eng.nregions; i++) {
		const struct dsm_region *r = dsm_eng.regions[i];

		if (r->shared && r->created_ms)
			to_held_share(r, &v[n++]);
	}
	pthread_mutex_unlock(&dsm_eng.lock);
	if (!v)
		return -ENOMEM;
	for (uint32_t i = 0; !err && i < n; i++) {
		struct dsm_reg_home found;

		err = put_share(&v[i], NULL, &found);
		if (err == -EEXIST) {
			disputed(&v[i], &found);
			err = 0;
		}
	}
	free(v);
	return err;
}

/* Every live region, recorded again.  Called with cl.lock held.  The
 * records are copied under the engine lock and written after it is
 * released: Redis must never hold up a fault. */
static int republish(void)
{
	struct dsm_reg_region *v;
	uint32_t n;

	pthread_mutex_lock(&dsm_eng.lock);
	v = calloc(dsm_eng.nregions ? dsm_eng.nregions : 1, sizeof(*v));
	n = 0;
	/* shared regions are not one client's: put_shares writes our part
	 * of their records, every renewal */
	for (uint32_t i = 0; v && i < dsm_eng.nregions; i++)
		if (!dsm_eng.regions[i]->shared)
			to_reg_region(dsm_eng.regions[i], &v[n++]);
	pthread_mutex_unlock(&dsm_eng.lock);
	if (!v)
		return -ENOMEM;
	for (uint32_t i = 0; i < n; i++)
		put_region(&v[i]);
	free(v);
	return cl.reg ? 0 : -EPIPE;
}

int dsm_cluster_open(const char *url, const char *pass_file,
		     const char *name, char **servers,
		     struct dsm_listed **listed)
{
	struct dsm_reg_server *v = NULL;
	char err[512];
	size_t n = 0, len = 1;
	int rc;

	rc = dsm_reg_addr_init(&cl.addr, url, pass_file,
			       "DSM_REGISTRY_PASSWORD_FILE", err, sizeof(err));
	if (!rc)
		rc = dsm_reg_open(&cl.addr, name, &cl.reg, err, sizeof(err));
	if (rc) {
		dsm_err("%s", err);
		dsm_reg_addr_wipe(&cl.addr);
		return rc;
	}
	cl.url = cl.addr.url;
	snprintf(cl.name, sizeof(cl.name), "%s", dsm_reg_cluster(cl.reg));
	rc = dsm_reg_list_servers(cl.reg, &v, &n);
	if (!rc && !n) {
		dsm_err("cluster '%s' at %s has no live memory server; start "
			"dsm-server --registry %s --cluster %s", cl.name,
			cl.url, cl.url, cl.name);
		rc = -EHOSTUNREACH;
	}
	for (size_t i = 0; !rc && i < n; i++)
		len += strlen(v[i].addr) + 1;
	if (!rc && !(*servers = calloc(1, len)))
		rc = -ENOMEM;
	if (!rc && !(*listed = calloc(n, sizeof(**listed))))
		rc = -ENOMEM;
	for (size_t i = 0; !rc && i < n; i++) {
		strcat(strcat(*servers, i ? "," : ""), v[i].addr);
		(*listed)[i].id = v[i].id;
		(*listed)[i].offers_rdma = dsm_reg_server_offers(&v[i], "rdma");
	}
	free(v);
	if (rc) {
		dsm_reg_close(cl.reg);
		cl.reg = NULL;
		dsm_reg_addr_wipe(&cl.addr);
	}
	return rc;
}

/* Renew the TTL of every live region's record.  Called with cl.lock. */
static int touch_regions(void)
{
	uint64_t *ids;
	uint32_t n;
	int err;

	pthread_mutex_lock(&dsm_eng.lock);
	ids = calloc(dsm_eng.nregions ? dsm_eng.nregions : 1, sizeof(*ids));
	n = 0;
	for (uint32_t i = 0; ids && i < dsm_eng.nregions; i++)
		if (dsm_eng.regions[i]->id)
			ids[n++] = dsm_eng.regions[i]->id;
	pthread_mutex_unlock(&dsm_eng.lock);
	if (!ids)
		return -ENOMEM;
	err = dsm_reg_touch_regions(cl.reg, ids, n, DSM_REG_TTL_MS);
	free(ids);
	return err;
}

/* What `dsmctl stats` shows of this client, renewed with the lease. */
static void fill_counters(uint64_t *c)
{
	struct dsm_stats st;

	if (dsm_stats(&st))
		return;
	c[DSM_RC_MISSING_FAULTS] = st.missing_faults;
	c[DSM_RC_WP_FAULTS] = st.wp_faults;
	c[DSM_RC_PAGES_FETCHED] = st.pages_fetched;
	c[DSM_RC_PAGES_EVICTED] = st.pages_evicted;
	c[DSM_RC_PAGES_WRITTEN_BACK] = st.pages_written_back;
	c[DSM_RC_BYTES_IN] = st.bytes_in;
	c[DSM_RC_BYTES_OUT] = st.bytes_out;
	c[DSM_RC_RESIDENT_PAGES] = st.resident_pages;
	c[DSM_RC_FAULT_P50_NS] = st.fault_p50_ns;
	c[DSM_RC_FAULT_P99_NS] = st.fault_p99_ns;
	c[DSM_RC_BLOCKTIME_NS] = st.blocktime_ns;
	c[DSM_RC_PAGES_MOVED] = st.pages_moved;
}

/* What this client read and wrote one-sidedly on each server: the
 * servers cannot count it, so dsmctl stats adds it up from here.  The
 * servers are fixed after dsm_init and a transport stays open until
 * after the lease thread stops, so no engine lock is needed. */
static void fill_one_sided(char *buf, size_t len)
{
	size_t used = 0;

	buf[0] = '\0';
	for (uint32_t i = 0; i < dsm_eng.nservers && used < len; i++) {
		const struct dsm_server *s = &dsm_eng.servers[i];
		struct dsm_one_sided o;
		int n;

		if (!s->ops->one_sided)
			continue;
		s->ops->one_sided(s->t, &o);
		n = snprintf(buf + used, len - used, "%s%u:%llu:%llu:%llu:%llu",
			     used ? "," : "", s->id,
			     (unsigned long long)o.reads,
			     (unsigned long long)o.writes,
			     (unsigned long long)o.pages_read,
			     (unsigned long long)o.pages_written);
		if (n < 0 || (size_t)n >= len - used) {
			buf[used] = '\0'; /* whole entries only */
			break;
		}
		used += n;
	}
}

/* One renewal: the lease, and everything again if Redis forgot us. */
static void renew(void)
{
	int had, err;

	if (!cl.reg) {
		char msg[512];
		int rc = dsm_reg_open(&cl.addr, cl.name, &cl.reg, msg,
				      sizeof(msg));

		/* Redis back but refusing us (restarted with another
		 * password?) is worth saying, once */
		if (rc == -EACCES && !cl.auth_warned)
			dsm_warn("%s", msg);
		cl.auth_warned = rc == -EACCES;
		if (rc)
			return;
	}
	had = dsm_reg_client_exists(cl.reg, cl.me.id);
	cl.me.heartbeat_ms = dsm_reg_now_ms();
	fill_counters(cl.me.counters);
	dsm_transports_describe(cl.me.transports, sizeof(cl.me.transports), 1);
	fill_one_sided(cl.me.one_sided, sizeof(cl.me.one_sided));
	err = had < 0 ? had : dsm_reg_put_client(cl.reg, &cl.me, DSM_REG_TTL_MS);
	if (!err && had)
		err = touch_regions();
	if (!err)
		err = put_shares();
	if (err) {
		lost("renewing the lease", err);
		return;
	}
	if (cl.warned)
		dsm_info("registry %s is back", cl.url);
	cl.warned = false;
	if (!had && republish() == 0)
		dsm_info("registry %s had lost this client: its regions are "
			 "recorded again", cl.url);
}

static void *lease_main(void *arg)
{
	dsm_tl_internal = 1; /* libdsm's own thread: no far memory for it */
	pthread_mutex_lock(&cl.lock);
	while (!cl.quit) {
		dsm_cond_wait_ms(&cl.wake, &cl.lock, DSM_REG_HEARTBEAT_MS);
		if (!cl.quit)
			renew();
	}
	pthread_mutex_unlock(&cl.lock);
	return NULL;
}

static void lease_sent(void *arg, int status, const uint8_t *payload,
		       uint32_t len)
{
	/* nothing to do: a server that did not take it is lost, and the
	 * transport has said so */
}

/* Queue a LEASE to every server, not waiting for the replies: a server
 * that hangs must not silence us on the others. */
static void post_leases(uint64_t id)
{
	struct dsm_lease m = { id };
	struct dsm_io *io;

	pthread_mutex_lock(&dsm_eng.lock);
	for (uint32_t i = 0; i < dsm_eng.nservers; i++) {
		if (dsm_eng.servers[i].lost || !(io = dsm_outbox_push(&dsm_eng.sendq)))
			continue;
		*io = (struct dsm_io){ .type = DSM_MSG_LEASE, .server = i,
				       .blen = DSM_LEASE_SIZE,
				       .done = lease_sent };
		dsm_lease_encode(&m, io->body);
	}
	pthread_mutex_unlock(&dsm_eng.lock);
	dsm_engine_kick();
}

static void *keepalive_main(void *arg)
{
	uint64_t id = (uintptr_t)arg;

	dsm_tl_internal = 1;
	pthread_mutex_lock(&ka.lock);
	while (!ka.quit) {
		dsm_cond_wait_ms(&ka.wake, &ka.lock, DSM_REG_HEARTBEAT_MS);
		if (ka.quit)
			break;
		pthread_mutex_unlock(&ka.lock);
		post_leases(id);
		pthread_mutex_lock(&ka.lock);
	}
	pthread_mutex_unlock(&ka.lock);
	return NULL;
}

static int keepalive_start(uint64_t id)
{
	int err;

	pthread_mutex_lock(&ka.lock);
	ka.quit = false;
	err = dsm_cond_init_monotonic(&ka.wake);
	if (!err)
		err = -pthread_create(&ka.thread, NULL, keepalive_main,
				      (void *)(uintptr_t)id);
	ka.running = !err;
	pthread_mutex_unlock(&ka.lock);
	return err;
}

static void keepalive_stop(void)
{
	pthread_mutex_lock(&ka.lock);
	if (!ka.running) {
		pthread_mutex_unlock(&ka.lock);
		return;
	}
	ka.quit = true;
	ka.running = false;
	pthread_cond_signal(&ka.wake);
	pthread_mutex_unlock(&ka.lock);
	pthread_join(ka.thread, NULL);
	pthread_cond_destroy(&ka.wake);
}

/* Tell every server which lease to watch, so that it can free our
 * memory if we hang.  Only once the lease exists: a server that looked
 * before would find it missing.  A server that fails to take it is
 * logged; it then frees our memory only when our connection closes. */
static void announce_lease(uint64_t id)
{
	struct dsm_lease m = { id };
	uint8_t body[DSM_LEASE_SIZE];

	dsm_lease_encode(&m, body);
	for (uint32_t i = 0; i < dsm_eng.nservers; i++) {
		int err = dsm_engine_call(i, DSM_MSG_LEASE, body, sizeof(body),
					  NULL, 0, NULL);

		if (err == -EUSERS)
			dsm_warn("server %s refused our lease: this client "
				 "already has as many connections there as it "
				 "allows one (dsm-server --max-client-sessions)",
				 dsm_eng.servers[i].addr);
		else if (err)
			dsm_warn("server %s did not take our lease: %s",
				 dsm_eng.servers[i].addr, strerror(-err));
	}
}

int dsm_cluster_join(void)
{
	int err;

	pthread_mutex_lock(&cl.lock);
	cl.me = (struct dsm_reg_client){ .pid = getpid(),
					 .started_ms = dsm_reg_now_ms() };
	cl.me.heartbeat_ms = cl.me.started_ms;
	gethostname(cl.me.host, sizeof(cl.me.host) - 1);
	dsm_transports_describe(cl.me.transports, sizeof(cl.me.transports), 1);
	err = dsm_reg_new_id(cl.reg, DSM_REG_TTL_MS, &cl.me.id);
	if (!err)
		err = dsm_reg_put_client(cl.reg, &cl.me, DSM_REG_TTL_MS);
	if (!err) {
		cl.quit = false;
		pthread_cond_destroy(&cl.wake);
		err = dsm_cond_init_monotonic(&cl.wake);
	}
	if (!err)
		err = -pthread_create(&cl.lease_thread, NULL, lease_main, NULL);
	__atomic_store_n(&cl.joined, !err, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&cl.lock);
	if (err) {
		dsm_err("cannot join cluster '%s' at %s: %s", cl.name, cl.url,
			strerror(-err));
		return err;
	}
	announce_lease(cl.me.id);
	/* without it, servers free our memory only when we disconnect */
	if ((err = keepalive_start(cl.me.id)))
		dsm_warn("no keepalive thread (%s): a server may free our "
			 "memory while Redis cannot be written",
			 strerror(-err));
	return 0;
}


void dsm_cluster_region_added(struct dsm_region *r)
{
	struct dsm_reg_region rec;

	if (!__atomic_load_n(&cl.joined, __ATOMIC_ACQUIRE))
		return;
	pthread_mutex_lock(&cl.lock);
	/* Named here, not by Redis, so a region made while Redis is away
	 * has its name too: unique because the client id is, and readable
	 * as "client 7's 3rd region" (7000000003). */
	r->id = cl.me.id * DSM_REGION_IDS_PER_CLIENT + ++cl.next_region;
	r->created_ms = dsm_reg_now_ms();
	to_reg_region(r, &rec);
	put_region(&rec);
	pthread_mutex_unlock(&cl.lock);
}

void dsm_cluster_region_moved(struct dsm_region *r)
{
	struct dsm_reg_region rec;
	bool dead;

	if (!__atomic_load_n(&cl.joined, __ATOMIC_ACQUIRE))
		return;
	pthread_mutex_lock(&cl.lock);
	pthread_mutex_lock(&dsm_eng.lock);
	dead = r->dead;
	if (!dead)
		to_reg_region(r, &rec);
	pthread_mutex_unlock(&dsm_eng.lock);
	if (!dead)
		put_region(&rec);
	pthread_mutex_unlock(&cl.lock);
}

int dsm_cluster_shared_claim(struct dsm_region *r,
			     const struct dsm_reg_home *stale,
			     struct dsm_reg_home *found)
{
	struct held_share h;
	int err = 0;

	if (!__atomic_load_n(&cl.joined, __ATOMIC_ACQUIRE))
		return 0;
	pthread_mutex_lock(&cl.lock);
	/* under the engine lock: the lease thread reads created_ms there */
	pthread_mutex_lock(&dsm_eng.lock);
	r->created_ms = dsm_reg_now_ms();
	to_held_share(r, &h);
	pthread_mutex_unlock(&dsm_eng.lock);
	if (cl.reg && (err = put_share(&h, stale, found)) && err != -EEXIST) {
		lost("recording a shared region", err);
		err = 0;
	}
	pthread_mutex_unlock(&cl.lock);
	return err;
}

void dsm_cluster_shared_removed(const uint8_t *key)
{
	char hex[DSM_REG_SHARE_KEY_HEX + 1];
	int err;

	if (!__atomic_load_n(&cl.joined, __ATOMIC_ACQUIRE))
		return;
	dsm_reg_hex(key, DSM_SHARE_KEY_SIZE, hex);
	pthread_mutex_lock(&cl.lock);
	if (cl.reg && (err = dsm_reg_del_share_holder(cl.reg, hex, cl.me.id)))
		lost("removing a shared region's holder", err);
	pthread_mutex_unlock(&cl.lock);
}

void dsm_cluster_region_removed(uint64_t id)
{
	int err;

	if (!id || !__atomic_load_n(&cl.joined, __ATOMIC_ACQUIRE))
		return;
	pthread_mutex_lock(&cl.lock);
	if (cl.reg && (err = dsm_reg_del_region(cl.reg, id)))
		lost("removing a region", err);
	pthread_mutex_unlock(&cl.lock);
}

/* Stop renewing and remove our records: the client's, and with regions
 * every live region's too, and our holder field in every shared region
 * (the preload shim leaves with its regions still mapped).  Called with
 * nothing held. */
static void leave_records(bool regions)
{
	char (*keys)[DSM_REG_SHARE_KEY_HEX + 1] = NULL;
	uint64_t *ids = NULL;
	uint32_t n = 0, nkeys = 0;

	pthread_mutex_lock(&cl.lock);
	cl.quit = true;
	pthread_cond_signal(&cl.wake);
	pthread_mutex_unlock(&cl.lock);
	pthread_join(cl.lease_thread, NULL);
	if (regions) {
		pthread_mutex_lock(&dsm_eng.lock);
		ids = calloc(dsm_eng.nregions ? dsm_eng.nregions : 1,
			     sizeof(*ids));
		keys = calloc(dsm_eng.nregions ? dsm_eng.nregions : 1,
			      sizeof(*keys));
		for (uint32_t i = 0; ids && keys && i < dsm_eng.nregions; i++) {
			const struct dsm_region *r = dsm_eng.regions[i];

			if (r->id)
				ids[n++] = r->id;
			else if (r->shared)
				dsm_reg_hex(r->shared->key, DSM_SHARE_KEY_SIZE,
					    keys[nkeys++]);
		}
		pthread_mutex_unlock(&dsm_eng.lock);
	}
	pthread_mutex_lock(&cl.lock);
	for (uint32_t i = 0; cl.reg && i < n; i++)
		dsm_reg_del_region(cl.reg, ids[i]);
	for (uint32_t i = 0; cl.reg && i < nkeys; i++)
		dsm_reg_del_share_holder(cl.reg, keys[i], cl.me.id);
	if (cl.reg)
		dsm_reg_del_client(cl.reg, cl.me.id);
	pthread_mutex_unlock(&cl.lock);
	free(ids);
	free(keys);
}

void dsm_cluster_leave(void)
{
	keepalive_stop(); /* also after dsm_cluster_exit */
	if (!__atomic_load_n(&cl.joined, __ATOMIC_ACQUIRE))
		goto close;
	leave_records(false);
	__atomic_store_n(&cl.joined, false, __ATOMIC_RELEASE);
close:
	dsm_reg_close(cl.reg);
	cl.reg = NULL;
	dsm_reg_addr_wipe(&cl.addr);
}

/*
 * The preload shim at exit (shim.h): it never shuts libdsm down, since
 * later destructors may still touch far memory, so this is its way out
 * of the registry.  The records go now instead of lingering for a lease;
 * the keepalive goes on, so the servers keep our memory until our
 * connections close at exit.  A region freed after this is not recorded
 * any more (joined is false).
 */
void dsm_cluster_exit(void)
{
	if (!__atomic_exchange_n(&cl.joined, false, __ATOMIC_ACQ_REL))
		return;
	leave_records(true);
}
