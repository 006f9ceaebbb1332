/*
 * dsm.c - the public API of libdsm, include/dsm.h (room: public API).
 *
 * Lifecycle: dsm_init() fills dsm_eng (engine.h) and starts the fault
 * thread; dsm_shutdown() stops it and empties dsm_eng again.  Between the
 * two, dsm_eng.servers != NULL is what "initialised" means.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "auth.h"
#include "cluster.h"
#include "dsm.h"
#include "engine.h"
#include "fault.h"
#include "huge.h"
#include "log.h"
#include "migrate.h"
#include "outbox.h"
#include "placement.h"
#include "region.h"
#include "shared.h"
#include "shim.h"
#include "stage.h"
#include "stats.h"
#include "util.h"

struct dsm_engine dsm_eng = { .lock = PTHREAD_MUTEX_INITIALIZER,
			      .wake_fd = -1, .mem_fd = -1,
			      .capture = { .rd = -1, .wr = -1 },
			      .uffd = { .fd = -1, .lost_fd = -1 } };

__thread unsigned dsm_tl_internal __attribute__((tls_model("initial-exec")));

#define DEFAULT_BUDGET (256ULL << 20)
#define DEFAULT_PREFETCH 256u /* one full READ: see docs/design.md, "Prefetch" */
#define MIN_BUDGET_PAGES 16u
#define MAX_POLL_US 10000u /* busy-poll window (docs/design.md, "Polling") */

/* Set by the shim before dsm_init, on the thread that calls it (under the
 * shim's init lock); read by dsm_init: shim.h. */
static bool unseen_drops;

void dsm_expect_unseen_drops(void)
{
	unseen_drops = true;
}

/* ---- options --------------------------------------------------------- */

/* DSM_TRANSPORT */
enum transport_choice {
	CHOOSE_AUTO,   /* RDMA where both ends can, else TCP */
	CHOOSE_TCP,
	CHOOSE_RDMA,   /* RDMA or nothing: never falls back */
};

struct config {
	enum transport_choice transport;
	bool rdma_here;         /* this machine has an RDMA device */
	struct dsm_listed *listed; /* per server of the registry's list;
	                         * NULL: not known (DSM_SERVERS) */
	bool allow_remote;      /* DSM_ALLOW_REMOTE_WITHOUT_SECRET=1 */
	char *servers;          /* malloc'd; from the registry if it is set */
	const char *registry;   /* DSM_REGISTRY, when no server list is given */
	const char *registry_pass_file; /* DSM_REGISTRY_PASSWORD_FILE */
	const char *cluster;
	struct dsm_auth_key key;  /* DSM_SECRET_FILE's, when has_key */
	bool has_key;
	uint64_t budget;
	uint32_t prefetch;
	uint64_t poll_us;
	uint64_t reply_ms;      /* DSM_REPLY_TIMEOUT_MS */
	uint64_t lock_ms;       /* DSM_LOCK_TIMEOUT_MS */
	enum dsm_evict_policy policy;
	bool predict_writes;    /* DSM_PREDICT_WRITES */
	bool evict_window;      /* DSM_EVICT_WINDOW */
	bool evict_capture;     /* DSM_EVICT_CAPTURE */
	uint64_t replicas;      /* DSM_REPLICAS */
};

static int env_size(const char *name, uint64_t *out)
{
	const char *v = getenv(name);

	if (!v)
		return 0;
	if (dsm_parse_size(v, out)) {
		dsm_err("%s=%s: expected a size such as 256M or 4G", name, v);
		return -EINVAL;
	}
	return 1;
}

/* A 0-or-1 switch: *out keeps its default when name is unset or empty. */
static int env_bool(const char *name, bool *out)
{
	const char *v = getenv(name);

	if (!v || !*v)
		return 0;
	if (strcmp(v, "0") && strcmp(v, "1")) {
		dsm_err("%s=%s: expected 0 or 1", name, v);
		return -EINVAL;
	}
	*out = *v == '1';
	return 0;
}

static int read_transport(struct config *c)
{
	const char *v = getenv("DSM_TRANSPORT");

	if (!v || !*v || !strcmp(v, "auto"))
		c->transport = CHOOSE_AUTO;
	else if (!strcmp(v, "tcp"))
		c->transport = CHOOSE_TCP;
	else if (!strcmp(v, "rdma"))
		c->transport = CHOOSE_RDMA;
	else {
		dsm_err("DSM_TRANSPORT=%s: expected auto, rdma or tcp", v);
		return -EINVAL;
	}
	c->rdma_here = c->transport != CHOOSE_TCP && dsm_rdma_available();
	if (c->transport == CHOOSE_RDMA && !c->rdma_here) {
		dsm_err("DSM_TRANSPORT=rdma, but this machine has no RDMA "
			"device (ibv_devices lists none)");
		return -ENODEV;
	}
	return 0;
}

static int parse_policy(const char *name, enum dsm_evict_policy *out)
{
	if (!name || !strcmp(name, "2q"))
		*out = DSM_EVICT_2Q;
	else if (!strcmp(name, "2q-wp"))
		*out = DSM_EVICT_2Q_WP;
	else if (!strcmp(name, "fifo"))
		*out = DSM_EVICT_FIFO;
	else {
		dsm_err("DSM_EVICT=%s: expected 2q, 2q-wp or fifo", name);
		return -EINVAL;
	}
	return 0;
}

static int read_config(const struct dsm_options *o, struct config *c)
{
	const char *servers = o && o->servers ? o->servers : getenv("DSM_SERVERS");
	const char *registry = getenv("DSM_REGISTRY");
	const char *evict = o && o->evict_policy ? o->evict_policy : getenv("DSM_EVICT");
	const char *p;
	uint64_t v;
	int got;

	c->budget = DEFAULT_BUDGET;
	c->prefetch = DEFAULT_PREFETCH;
	if (servers && !*servers)
		servers = NULL;
	if (!servers && (!registry || !*registry)) {
		dsm_err("no memory server given: set DSM_SERVERS=host:port, or "
			"DSM_REGISTRY=redis://host:port to use a cluster");
		return -EINVAL;
	}
	if (o && o->local_mem)
		c->budget = o->local_mem;
	else if ((got = env_size("DSM_LOCAL_MEM", &c->budget)) < 0)
		return got;
	if (o && o->prefetch_max)
		c->prefetch = o->prefetch_max;
	else if ((got = env_size("DSM_PREFETCH", &v)) < 0)
		return got;
	else if (got)
		c->prefetch = v ? (v > DSM_MAX_BATCH_PAGES ? DSM_MAX_BATCH_PAGES : v) : 1;
	c->poll_us = DSM_DEFAULT_POLL_US;
	if ((p = getenv("DSM_POLL_US")) &&
	    dsm_parse_uint(p, MAX_POLL_US, &c->poll_us)) {
		dsm_err("DSM_POLL_US=%s: expected microseconds, 0 to %u", p,
			MAX_POLL_US);
		return -EINVAL;
	}
	c->reply_ms = DSM_REPLY_TIMEOUT_MS;
	if ((p = getenv("DSM_REPLY_TIMEOUT_MS")) &&
	    (dsm_parse_uint(p, DSM_REPLY_TIMEOUT_MS_MAX, &c->reply_ms) ||
	     !c->reply_ms)) {
		dsm_err("DSM_REPLY_TIMEOUT_MS=%s: expected milliseconds, 1 to "
			"%u", p, DSM_REPLY_TIMEOUT_MS_MAX);
		return -EINVAL;
	}
	c->lock_ms = DSM_LOCK_TIMEOUT_MS;
	if ((p = getenv("DSM_LOCK_TIMEOUT_MS")) &&
	    (dsm_parse_uint(p, DSM_LOCK_TIMEOUT_MS_MAX, &c->lock_ms) ||
	     !c->lock_ms)) {
		dsm_err("DSM_LOCK_TIMEOUT_MS=%s: expected milliseconds, 1 to "
			"%u", p, DSM_LOCK_TIMEOUT_MS_MAX);
		return -EINVAL;
	}
	if ((p = getenv("DSM_TCP_TIMEOUT_MS")) &&
	    (dsm_parse_uint(p, DSM_TCP_TIMEOUT_MS_MAX, &v) ||
	     v < DSM_TCP_TIMEOUT_MS_MIN)) {
		dsm_err("DSM_TCP_TIMEOUT_MS=%s: expected milliseconds, %u to "
			"%u", p, DSM_TCP_TIMEOUT_MS_MIN, DSM_TCP_TIMEOUT_MS_MAX);
		return -EINVAL;
	}
	if ((p = getenv("DSM_CONNECT_TIMEOUT_MS")) &&
	    (dsm_parse_uint(p, DSM_CONNECT_MS_MAX, &v) || !v)) {
		dsm_err("DSM_CONNECT_TIMEOUT_MS=%s: expected milliseconds, 1 "
			"to %u", p, DSM_CONNECT_MS_MAX);
		return -EINVAL;
	}
	if ((got = parse_policy(evict, &c->policy)) < 0)
		return got;
	c->predict_writes = true;
	if ((got = env_bool("DSM_PREDICT_WRITES", &c->predict_writes)) < 0)
		return got;
	c->evict_window = true;
	if ((got = env_bool("DSM_EVICT_WINDOW", &c->evict_window)) < 0)
		return got;
	c->evict_capture = true;
	if ((got = env_bool("DSM_EVICT_CAPTURE", &c->evict_capture)) < 0)
		return got;
	c->replicas = 1;
	if ((p = getenv("DSM_REPLICAS")) && *p &&
	    (dsm_parse_uint(p, DSM_MAX_REPLICAS, &c->replicas) ||
	     !c->replicas)) {
		dsm_err("DSM_REPLICAS=%s: expected copies of each page, 1 to "
			"%u", p, DSM_MAX_REPLICAS);
		return -EINVAL;
	}
	if ((got = read_transport(c)) < 0)
		return got;
	if ((got = env_bool("DSM_ALLOW_REMOTE_WITHOUT_SECRET",
			    &c->allow_remote)) < 0)
		return got;
	if ((p = getenv("DSM_SECRET_FILE")) && *p) {
		char msg[512];
		int err = dsm_auth_load(p, &c->key, msg, sizeof(msg));

		if (err) {
			dsm_err("DSM_SECRET_FILE: %s", msg);
			return err;
		}
		c->has_key = true;
	}
	if (!servers) { /* an explicit list wins over the registry */
		c->registry = registry;
		c->cluster = getenv("DSM_CLUSTER");
		p = getenv("DSM_REGISTRY_PASSWORD_FILE");
		c->registry_pass_file = p && *p ? p : NULL;
		return 0;
	}
	c->servers = strdup(servers);
	return c->servers ? 0 : -ENOMEM;
}

/* ---- servers --------------------------------------------------------- */

static void on_server_msg(void *ctx, const struct dsm_hdr *h,
			  const uint8_t *payload)
{
	uint32_t i = (uintptr_t)ctx;
	struct dsm_server *s = &dsm_eng.servers[i];
	struct dsm_goodbye g;
	struct dsm_draining d;

	if (h->type == DSM_MSG_GOODBYE &&
	    !dsm_goodbye_decode(payload, h->len, &g)) {
		dsm_warn("server %s is shutting down (%s)", s->addr,
			 strerror(-g.reason));
	} else if (h->type == DSM_MSG_DRAINING &&
		   !dsm_draining_decode(payload, h->len, &d)) {
		dsm_info("server %s %s", s->addr, d.on ?
			 "is being drained: moving our regions off it" :
			 "is no longer being drained");
		dsm_migrate_server_draining(i, d.on);
	} else if (h->type == DSM_MSG_INVALIDATE ||
		   h->type == DSM_MSG_RECALL) {
		dsm_coh_server_msg(i, h, payload);
	} else
		dsm_debug("server %s: ignoring %s", s->addr,
			  dsm_msg_name(h->type));
}

static void on_server_lost(void *ctx, int err)
{
	struct dsm_server *s = &dsm_eng.servers[(uintptr_t)ctx];

	pthread_mutex_lock(&dsm_eng.lock);
	s->lost = err ? err : -ECONNRESET;
	pthread_mutex_unlock(&dsm_eng.lock);
	dsm_coh_server_lost((uint32_t)(uintptr_t)ctx);
	if (dsm_eng.replicas > 1) {
		dsm_err("lost connection to memory server %s: %s. Pages with a "
			"copy on another server are read from there, and their "
			"lost copies are made again on the other servers; dirty "
			"pages still in local memory are kept (DSM_REPLICAS=%u)",
			s->addr, strerror(-s->lost), dsm_eng.replicas);
		dsm_migrate_kick();
	} else
		dsm_err("lost connection to memory server %s: %s. Pages held "
			"only there, and those whose write-back to it was in "
			"flight, are unreachable and raise SIGBUS when touched; "
			"dirty pages still in local memory are kept", s->addr,
			strerror(-s->lost));
}

/* Prove we know the cluster secret, and check that the server does. */
static int authenticate(struct dsm_server *s, const struct dsm_auth_key *key,
			uint64_t nonce, const struct dsm_hello_reply *r)
{
	uint8_t body[DSM_AUTH_MSG_SIZE], rep[DSM_AUTH_MSG_SIZE];
	uint8_t want[DSM_AUTH_MAC_SIZE];
	struct dsm_auth_msg m;
	uint32_t len;
	int err;

	dsm_auth_mac(key, 'c', r->server_nonce, nonce, r->server_id, m.mac);
	dsm_auth_msg_encode(&m, body);
	err = dsm_transport_call_sync(s->ops, s->t, DSM_MSG_AUTH, body,
				      sizeof(body), rep, sizeof(rep), &len);
	if (err == -EACCES) {
		dsm_err("server %s refused our cluster secret: is "
			"DSM_SECRET_FILE the cluster's?", s->addr);
		return err;
	}
	if (!err)
		err = dsm_auth_msg_decode(rep, len, &m);
	dsm_auth_mac(key, 's', r->server_nonce, nonce, r->server_id, want);
	if (!err && dsm_auth_verify(m.mac, want)) {
		dsm_err("server %s could not prove it knows the cluster "
			"secret: refusing it", s->addr);
		err = -EACCES;
	}
	return err;
}

static int hello(struct dsm_server *s, const struct dsm_auth_key *key,
		 const struct dsm_listed *rec)
{
	struct dsm_hello h = { DSM_PROTO_VERSION, DSM_PROTO_VERSION,
			       DSM_PAGE_SIZE, 0 };
	uint8_t body[DSM_HELLO_SIZE], rep[DSM_HELLO_REPLY_SIZE];
	struct dsm_hello_reply r;
	uint32_t len;
	int err;

	dsm_auth_random(&h.nonce, sizeof(h.nonce));
	dsm_hello_encode(&h, body);
	err = dsm_transport_call_sync(s->ops, s->t, DSM_MSG_HELLO, body,
				      sizeof(body), rep, sizeof(rep), &len);
	if (!err)
		err = dsm_hello_reply_decode(rep, len, &r);
	if (err) {
		dsm_err("server %s refused the handshake: %s", s->addr,
			strerror(-err));
		return err;
	}
	if ((r.flags & DSM_HELLO_AUTH) && !key) {
		dsm_err("server %s requires the cluster secret: set "
			"DSM_SECRET_FILE to the cluster's secret file", s->addr);
		return -EACCES;
	}
	/* With a secret we only trust servers that prove they share it. */
	if (key && !(r.flags & DSM_HELLO_AUTH)) {
		dsm_err("server %s does not ask for the cluster secret, so it "
			"cannot prove it is a member: refusing it", s->addr);
		return -EACCES;
	}
	/* an RDMA connection is one at both ends, or something is wrong */
	if (!(r.flags & DSM_HELLO_RDMA) != (s->ops != &dsm_rdma_transport)) {
		dsm_err("server %s answered our %s connection as %s one",
			s->addr, s->ops->name, r.flags & DSM_HELLO_RDMA ?
			"an RDMA" : "a TCP");
		return -EPROTO;
	}
	if (key && (err = authenticate(s, key, h.nonce, &r)))
		return err;
	/* A stale or forged record would send our pages to whoever answers
	 * at its address; the id in the server's HELLO (proved with the
	 * secret, when there is one) must be the record's. */
	if (rec && r.server_id != rec->id) {
		dsm_err("memory server at %s says it is server %u, but the "
			"registry lists server %u there: refusing it", s->addr,
			r.server_id, rec->id);
		return -EPROTO;
	}
	s->id = r.server_id;
	s->capacity = r.capacity;
	s->free = r.free;
	s->draining = r.flags & DSM_HELLO_DRAINING;
	return 0;
}

/* RDMA where both ends can (a device here, and the server offers it or
 * we cannot tell), else TCP.  With DSM_TRANSPORT=auto a failed RDMA
 * connect falls back to TCP; with rdma it is the end. */
static int dial(struct dsm_server *s, const struct config *c, int offer,
		const struct dsm_transport_events *ev)
{
	bool rdma = c->transport == CHOOSE_RDMA ||
		    (c->transport == CHOOSE_AUTO && c->rdma_here && offer != 0);
	int err;

	s->ops = rdma ? &dsm_rdma_transport : &dsm_tcp_transport;
	err = s->ops->connect(s->addr, ev, &s->t);
	if (!err || !rdma || c->transport == CHOOSE_RDMA)
		return err;
	dsm_warn("cannot reach memory server %s over RDMA (%s): using TCP",
		 s->addr, strerror(-err));
	s->ops = &dsm_tcp_transport;
	return s->ops->connect(s->addr, ev, &s->t);
}

/* Without the cluster secret nothing proves who a server is, and it
 * reads and writes every page we give it: as the server listens on
 * loopback only without one, we talk to this machine's servers only,
 * unless told otherwise explicitly. */
static int check_exposure(const char *addr, const struct config *c)
{
	/* an address that does not parse or resolve: the dial says so */
	if (c->has_key || c->allow_remote || dsm_addr_is_loopback(addr))
		return 0;
	dsm_err("refusing memory server %s without DSM_SECRET_FILE: nothing "
		"would prove it is a member, and it would get our pages. Give "
		"the client the cluster's secret, use a server on this machine, "
		"or set DSM_ALLOW_REMOTE_WITHOUT_SECRET=1", addr);
	return -EACCES;
}

static int connect_one(uint32_t i, const char *addr, const struct config *c,
		       const struct dsm_listed *rec)
{
	struct dsm_server *s = &dsm_eng.servers[i];
	struct dsm_transport_events ev = { on_server_msg, on_server_lost,
					   (void *)(uintptr_t)i };
	const struct dsm_auth_key *key = c->has_key ? &c->key : NULL;
	int err;

	snprintf(s->addr, sizeof(s->addr), "%s", addr);
	if ((err = check_exposure(addr, c)))
		return err;
	err = dial(s, c, rec ? rec->offers_rdma : -1, &ev);
	if (err) {
		dsm_err("cannot reach memory server %s%s: %s%s", addr,
			s->ops == &dsm_rdma_transport ? " over RDMA" : "",
			strerror(-err), err == -EINVAL ?
			" (expected host:port)" : "; is dsm-server running?");
		return err;
	}
	err = hello(s, key, rec);
	if (err) {
		s->ops->close(s->t);
		s->t = NULL;
	}
	return err;
}

static void disconnect_all(void)
{
	for (uint32_t i = 0; i < dsm_eng.nservers; i++)
		if (dsm_eng.servers[i].t)
			dsm_eng.servers[i].ops->close(dsm_eng.servers[i].t);
	free(dsm_eng.servers);
	dsm_eng.servers = NULL;
	dsm_eng.nservers = 0;
}

/* With DSM_TRANSPORT=rdma, a server whose record offers no RDMA is a
 * reason to stop, not to skip it. */
static int check_offers(const struct config *c, char *list, uint32_t n)
{
	char *p = list;

	for (uint32_t i = 0; c->listed && i < n; i++) {
		size_t len = strcspn(p, ",");

		if (c->transport == CHOOSE_RDMA && !c->listed[i].offers_rdma) {
			dsm_err("DSM_TRANSPORT=rdma, but memory server %.*s "
				"does not offer RDMA (its registry record "
				"says so: is its machine without an RDMA "
				"device, or is it run with --transport tcp?)",
				(int)len, p);
			return -EPROTONOSUPPORT;
		}
		p += len + (p[len] == ',');
	}
	return 0;
}

/* Connect to every server of list.  With tolerant (the list came from the
 * registry, where a server that just died lingers until its record
 * expires), an unreachable server is skipped as long as one answers. */
static int connect_all(char *list, bool tolerant, const struct config *c)
{
	uint32_t n = 1, k = 0;
	char *save, *tok;
	int err = 0;

	for (char *p = list; *p; p++)
		n += *p == ',';
	if ((err = check_offers(c, list, n)))
		return err;
	dsm_eng.servers = calloc(n, sizeof(*dsm_eng.servers));
	if (!dsm_eng.servers)
		return -ENOMEM;
	for (tok = strtok_r(list, ",", &save); tok && (!err || tolerant);
	     tok = strtok_r(NULL, ",", &save), k++) {
		err = connect_one(dsm_eng.nservers, tok, c,
				  c->listed ? &c->listed[k] : NULL);
		if (!err)
			dsm_eng.nservers++;
		else if (tolerant)
			dsm_warn("skipping memory server %s", tok);
	}
	if (tolerant && dsm_eng.nservers)
		err = 0;
	if (err)
		disconnect_all();
	return err;
}

/* ---- init / shutdown ------------------------------------------------- */

/* The engine thread is libdsm's own: the preload shim must never give it
 * far memory (shim.h, dsm_tl_internal). */
static void *engine_main(void *arg)
{
	dsm_tl_internal = 1;
	return dsm_fault_main(arg);
}

static int start_engine(const struct config *c)
{
	int err;

	dsm_eng.budget = c->budget / DSM_PAGE_SIZE;
	if (dsm_eng.budget < MIN_BUDGET_PAGES)
		dsm_eng.budget = MIN_BUDGET_PAGES;
	/* a window may not crowd out the rest of the resident set */
	dsm_eng.prefetch_max = c->prefetch;
	if (dsm_eng.prefetch_max > dsm_eng.budget / 8)
		dsm_eng.prefetch_max = dsm_eng.budget / 8 ? dsm_eng.budget / 8 : 1;
	dsm_eng.policy = c->policy;
	/* under FIFO every resident page is in PROBATION, the hot ones too */
	dsm_eng.evict_window = c->evict_window && c->policy != DSM_EVICT_FIFO;
	dsm_eng.probation_share = dsm_eng.budget / 4; /* adapts: evict.c */
	dsm_eng.poll_ns = c->poll_us * 1000;
	dsm_eng.reply_ns = c->reply_ms * 1000000;
	dsm_eng.lock_ns = c->lock_ms * 1000000;
	dsm_eng.replicas = c->replicas;
	/* 2q-wp's second chances read a WP fault as use: a page installed
	 * writable would look used when it was only read */
	dsm_eng.wpredict = (struct dsm_wpredict){
		.enabled = c->predict_writes && c->policy != DSM_EVICT_2Q_WP };
	/* zeros for the largest zero-fill window */
	dsm_eng.zero_page = calloc(dsm_zero_pages(dsm_eng.prefetch_max), DSM_PAGE_SIZE);
	dsm_eng.wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (!dsm_eng.zero_page || dsm_eng.wake_fd < 0)
		return -ENOMEM;
	if (unseen_drops) {
		dsm_eng.mem_fd = open("/proc/self/mem", O_RDONLY | O_CLOEXEC);
		if (dsm_eng.mem_fd < 0) {
			err = -errno;
			dsm_err("cannot open /proc/self/mem, which a program "
				"that drops pages unseen needs: %s",
				strerror(-err));
			return err;
		}
	}
	/* a program that drops pages unseen cannot have its victims taken
	 * by reference (capture.h); without the pipe, each dirty victim is
	 * write-protected before its copy, as before */
	if (c->evict_capture && dsm_eng.mem_fd < 0 &&
	    (err = dsm_capture_open(&dsm_eng.capture, DSM_EVICT_BATCH)))
		dsm_warn("no pipe to take dirty victims with (%s): each is "
			 "write-protected instead", strerror(-err));
	err = -pthread_create(&dsm_eng.fault_thread, NULL, engine_main, NULL);
	if (err)
		dsm_err("cannot start the fault thread: %s", strerror(-err));
	return err;
}

static void stop_engine(void)
{
	__atomic_store_n(&dsm_eng.quit, true, __ATOMIC_RELEASE);
	dsm_engine_kick();
	pthread_join(dsm_eng.fault_thread, NULL);
}

static void reset_engine(void)
{
	free(dsm_eng.zero_page);
	free(dsm_eng.regions);
	if (dsm_eng.wake_fd >= 0)
		close(dsm_eng.wake_fd);
	free(dsm_eng.sendq.io);
	dsm_uffd_close(&dsm_eng.uffd);
	disconnect_all(); /* completes what was in flight: pages come back */
	dsm_stage_destroy(&dsm_eng.stage);
	if (dsm_eng.mem_fd >= 0)
		close(dsm_eng.mem_fd);
	dsm_capture_close(&dsm_eng.capture);
	dsm_eng = (struct dsm_engine){ .lock = dsm_eng.lock, .wake_fd = -1,
				       .mem_fd = -1, .capture = DSM_CAPTURE_NONE,
				       .uffd = DSM_UFFD_NONE };
}

int dsm_check_config(void)
{
	struct config c = { 0 };
	int err;

	dsm_log_init("dsm");
	err = read_config(NULL, &c);
	free(c.servers);
	explicit_bzero(&c.key, sizeof(c.key));
	return err;
}

int dsm_init(const struct dsm_options *opts)
{
	struct config c = { 0 };
	int err;

	dsm_log_init("dsm");
	if (dsm_eng.servers)
		return -EALREADY;
	err = read_config(opts, &c);
	if (!err)
		err = dsm_uffd_open(&dsm_eng.uffd);
	if (!err && c.registry)
		err = dsm_cluster_open(c.registry, c.registry_pass_file,
				       c.cluster, &c.servers, &c.listed);
	if (!err)
		err = connect_all(c.servers, c.registry != NULL, &c);
	if (!err)
		err = start_engine(&c);
	if (!err && (err = dsm_migrate_start()))
		stop_engine();
	if (!err && c.registry && (err = dsm_cluster_join())) {
		dsm_migrate_stop();
		stop_engine();
	}
	if (err) {
		dsm_cluster_leave();
		reset_engine();
	}
	free(c.servers);
	free(c.listed);
	explicit_bzero(&c.key, sizeof(c.key)); /* the secret's key, used up */
	return err;
}

void dsm_shutdown(void)
{
	if (!dsm_eng.servers)
		return;
	/* Regions first, while the engine thread can still tell servers. */
	while (dsm_eng.nregions) {
		struct dsm_region *r = dsm_eng.regions[0];

		if (r->shared)
			dsm_unmap_shared((void *)(uintptr_t)r->base);
		else
			dsm_free((void *)(uintptr_t)r->base);
	}
	dsm_migrate_stop(); /* waits for its moves: the engine still runs */
	dsm_cluster_leave();
	stop_engine();
	reset_engine();
}

/* ---- regions --------------------------------------------------------- */

/* Give [at, at+size) back to the program as it was: a reservation. */
static void unmap_region(uint64_t at, uint64_t base, uint64_t size)
{
	if (at)
		mmap((void *)(uintptr_t)at, size, PROT_NONE, MAP_PRIVATE |
		     MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
	else
		munmap((void *)(uintptr_t)base, size);
}

struct dsm_region *dsm_region_new(uint64_t size)
{
	return dsm_region_new_at(0, size);
}

/* The region's range: 4 KiB pages, or reserved 2 MiB ones (huge: size is
 * a multiple of DSM_HUGE_SIZE; at 0).  Huge pages are taken only as
 * groups are installed (MAP_NORESERVE), at most the budget's worth. */
static void *map_range(uint64_t at, uint64_t size, bool huge)
{
	int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE |
		    (at ? MAP_FIXED : 0);

	if (huge)
		flags |= DSM_MAP_HUGE_2MB;
	return mmap((void *)(uintptr_t)at, size, PROT_READ | PROT_WRITE, flags,
		    -1, 0);
}

static struct dsm_region *region_new(uint64_t at, uint64_t size, bool huge)
{
	struct dsm_region *r = calloc(1, sizeof(*r));
	void *base = MAP_FAILED;

	if (!r)
		return NULL;
	r->size = size;
	r->npages = size / DSM_PAGE_SIZE;
	r->huge = huge;
	r->pages = calloc(r->npages, sizeof(*r->pages));
	if (r->pages)
		base = map_range(at, size, huge);
	if (!r->pages || base == MAP_FAILED)
		goto fail;
	r->base = (uintptr_t)base;
	for (uint64_t i = 0; i < r->npages; i++)
		r->pages[i].region = r;
	/* Faults of our page size only; and a forked child must not see a
	 * region whose faults nobody serves (it would read zeros): it gets
	 * none. */
	if (huge)
		dsm_huge_init(r);
	else
		madvise(base, size, MADV_NOHUGEPAGE);
	madvise(base, size, MADV_DONTFORK);
	return r;
fail:
	if (base != MAP_FAILED)
		unmap_region(at, (uintptr_t)base, size);
	free(r->pages);
	free(r);
	return NULL;
}

struct dsm_region *dsm_region_new_at(uint64_t at, uint64_t size)
{
	return region_new(at, size, false);
}

static void *alloc_at(uint64_t at, size_t size, bool huge);

void *dsm_alloc(size_t size)
{
	return alloc_at(0, size, false);
}

void *dsm_alloc_flags(size_t size, int flags)
{
	if (flags & ~DSM_ALLOC_HUGE) {
		errno = EINVAL;
		return NULL;
	}
	return alloc_at(0, size, flags & DSM_ALLOC_HUGE);
}

void *dsm_alloc_at(void *addr, size_t size)
{
	if (!addr || (uintptr_t)addr % DSM_PAGE_SIZE) {
		errno = EINVAL;
		return NULL;
	}
	return alloc_at((uintptr_t)addr, size, false);
}

/* dsm_alloc, at address at (0: anywhere), on huge pages or not. */
static void *alloc_at(uint64_t at, size_t size, bool huge)
{
	uint64_t unit = huge ? DSM_HUGE_SIZE : DSM_PAGE_SIZE;
	struct dsm_region *r;
	uint64_t bytes;
	int err;

	if (!dsm_eng.servers) {
		errno = ENOTCONN;
		return NULL;
	}
	if (size == 0 || size > (1ULL << 46)) {
		errno = size ? ENOMEM : EINVAL;
		return NULL;
	}
	bytes = (size + (unit - 1)) & ~(unit - 1);
	if (huge && (err = dsm_huge_check(bytes))) {
		errno = -err;
		return NULL;
	}
	r = region_new(at, bytes, huge);
	if (!r) {
		errno = ENOMEM;
		return NULL;
	}
	err = dsm_place(bytes, &r->place);
	if (err)
		goto fail;
	/* Named and recorded before the region table shows it, so the lease
	 * thread, which walks that table, never sees a region without id. */
	dsm_cluster_region_added(r);
	err = dsm_uffd_register(&dsm_eng.uffd, (void *)(uintptr_t)r->base, bytes);
	if (!err) {
		pthread_mutex_lock(&dsm_eng.lock);
		err = dsm_region_insert(r);
		pthread_mutex_unlock(&dsm_eng.lock);
	}
	if (!err)
		return (void *)(uintptr_t)r->base;
	dsm_cluster_region_removed(r->id);
	dsm_unplace(&r->place);
fail:
	unmap_region(at, r->base, bytes);
	r->refs = 1;
	dsm_region_put(r);
	errno = -err;
	return NULL;
}

void dsm_region_unmap(struct dsm_region *r, struct dsm_placement *parts)
{
	void *ptr = (void *)(uintptr_t)r->base;

	for (uint64_t i = 0; i < r->npages; i++) {
		if (r->pages[i].queue != DSM_Q_NONE) {
			dsm_queue_del(&r->pages[i]);
			dsm_eng.resident--;
		}
	}
	dsm_streams_forget(r);
	if (r->huge)
		dsm_huge_forget(r);
	/* Unmapped under the lock, so no completion can install into the
	 * range after it is gone (it checks r->dead under the same lock). */
	dsm_uffd_unregister(&dsm_eng.uffd, ptr, r->size);
	munmap(ptr, r->size);
	/* the parts leave with us; the extent map goes with the region */
	parts->part = r->place.part;
	parts->nparts = r->place.nparts;
	r->place.part = NULL;
	r->place.nparts = 0;
	dsm_region_remove(r);
}

void dsm_free(void *ptr)
{
	struct dsm_placement parts = { 0 };
	struct dsm_region *r;
	uint64_t id;

	if (!ptr || !dsm_eng.servers)
		return;
	pthread_mutex_lock(&dsm_eng.lock);
	r = dsm_region_find((uintptr_t)ptr);
	if (!r || r->base != (uintptr_t)ptr || r->shared) {
		pthread_mutex_unlock(&dsm_eng.lock);
		dsm_warn("dsm_free(%p): not a pointer from dsm_alloc%s", ptr,
			 r && r->shared ? " (a shared region: use "
			 "dsm_unmap_shared)" : "");
		return;
	}
	id = r->id;
	dsm_region_unmap(r, &parts);
	pthread_mutex_unlock(&dsm_eng.lock);
	dsm_cluster_region_removed(id);
	dsm_unplace(&parts);
	dsm_placement_clear(&parts);
}

/* ---- sync ------------------------------------------------------------ */

int dsm_sync(void *ptr, size_t len)
{
	uint64_t a = (uintptr_t)ptr & ~(uint64_t)(DSM_PAGE_SIZE - 1), first, n;
	struct dsm_sync_wait *w;
	struct dsm_region *r;
	int err, werr;

	if (!dsm_eng.servers)
		return -ENOTCONN;
	if (!len)
		return 0;
	if (!(w = dsm_sync_wait_new()))
		return -ENOMEM;
	pthread_mutex_lock(&dsm_eng.lock);
	r = dsm_region_find(a);
	if (!r || (uintptr_t)ptr + len > r->base + r->size ||
	    (uintptr_t)ptr + len < (uintptr_t)ptr) {
		pthread_mutex_unlock(&dsm_eng.lock);
		dsm_sync_wait_end(w); /* nothing counted in it: frees it */
		return -EINVAL;
	}
	first = (a - r->base) / DSM_PAGE_SIZE;
	n = ((uintptr_t)ptr + len - a + (DSM_PAGE_SIZE - 1)) / DSM_PAGE_SIZE;
	err = dsm_sync_range(r, first, n, &dsm_eng.sendq, w);
	pthread_mutex_unlock(&dsm_eng.lock);
	dsm_engine_kick();
	/* staged write-backs point at w: wait for them even after an error */
	werr = dsm_sync_wait_end(w);
	return err ? err : werr;
}

/* ---- errors ---------------------------------------------------------- */

const char *dsm_strerror(int err)
{
	return strerror(err < 0 ? -err : err);
}
