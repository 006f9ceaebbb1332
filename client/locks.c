/*
 * locks.c - dsm_lock, dsm_unlock and dsm_barrier (room: coherence).
 *
 * Both live on a server, not in shared memory: a lock is kept by the home
 * of its shared region (server/lock.c), a barrier by the server that
 * rendezvous hashing of its name picks (server/barrier.c).  Waiting
 * costs nothing but the request: no page ping-pongs between waiters,
 * waiters are served first come, first served, and a holder that dies
 * lets go with its session.  The calling thread's id is the token that
 * tells the server one thread from another (one connection carries
 * every thread of a process).
 *
 * Memory: the data a lock guards is kept coherent by its pages' homes,
 * whatever the lock does, so dsm_unlock needs no write-back: the next
 * holder's first touch of a page this thread wrote recalls it.  Every
 * wait is bounded by DSM_LOCK_TIMEOUT_MS; a wait that times out is taken
 * back (UNLOCK of a waiting LOCK, WITHDRAW of a barrier arrival), so
 * nothing is left holding or counted on the server.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "dsm.h"
#include "engine.h"
#include "log.h"
#include "outbox.h"
#include "region.h"
#include "shared.h"
#include "transport.h"
#include "util.h"

/*
 * Over RDMA a LOCK or a barrier arrival waiting at the server holds one
 * of the connection's credits (proto.h) until it is answered, and a
 * connection whose credits all wait stalls the page traffic queued
 * behind them, which a holder may need on its way to dsm_unlock.  So at
 * most GATE_RDMA of them wait at one server; more threads wait here,
 * within their own deadline.  TCP has no credits and no gate.
 */
#define GATE_RDMA (DSM_RDMA_CREDITS / 4)

/* The gate: its lock guards every server's lock_waits (engine.h). */
static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cond;
static pthread_once_t gate_once = PTHREAD_ONCE_INIT;

static void gate_init(void)
{
	if (dsm_cond_init_monotonic(&gate_cond))
		abort(); /* no condition variable: nothing could wait */
}

static bool gated(uint32_t server)
{
	return dsm_eng.servers[server].ops == &dsm_rdma_transport;
}

/* Wait for room at server until deadline (CLOCK_MONOTONIC ns): 0, or
 * -ETIMEDOUT. */
static int gate_enter(uint32_t server, uint64_t deadline)
{
	int err = 0;

	if (!gated(server))
		return 0;
	pthread_once(&gate_once, gate_init);
	pthread_mutex_lock(&gate_lock);
	while (!err && dsm_eng.servers[server].lock_waits >= GATE_RDMA)
		err = dsm_cond_wait_until(&gate_cond, &gate_lock, deadline);
	if (!err)
		dsm_eng.servers[server].lock_waits++;
	pthread_mutex_unlock(&gate_lock);
	return err ? -ETIMEDOUT : 0;
}

static void gate_leave(uint32_t server)
{
	if (!gated(server))
		return;
	pthread_mutex_lock(&gate_lock);
	dsm_eng.servers[server].lock_waits--;
	pthread_cond_broadcast(&gate_cond);
	pthread_mutex_unlock(&gate_lock);
}

/* A LOCK or an arrival, through the gate: the call's answer, or
 * -ETIMEDOUT.  *sent: the request went, and timed out waiting; it still
 * waits at the server, holding a credit, so its place in the gate is
 * kept until the caller has taken it back (gate_leave after take_back). */
static int gated_call(uint32_t server, uint8_t type, const uint8_t *body,
		      uint32_t len, void *rep, uint32_t cap, uint32_t *rlen,
		      bool *sent, uint64_t deadline)
{
	uint64_t now;
	int err = gate_enter(server, deadline);

	*sent = false;
	if (err)
		return err;
	now = dsm_now_ns();
	if (now >= deadline) {
		gate_leave(server);
		return -ETIMEDOUT;
	}
	*sent = true;
	err = dsm_engine_call_ns(server, type, body, len, rep, cap, rlen,
				 deadline - now);
	if (err != -ETIMEDOUT)
		gate_leave(server);
	return err;
}

static uint64_t my_token(void)
{
	return (uint64_t)syscall(SYS_gettid);
}

/* The LOCK/UNLOCK body for addr, and the server that keeps that lock:
 * 0, or -EINVAL for an address that is not an aligned word of a shared
 * region. */
static int lock_of(void *addr, uint32_t *server, uint8_t *body)
{
	struct dsm_lock_req m = { .token = my_token() };
	struct dsm_region *r;

	if (!dsm_eng.servers)
		return -ENOTCONN;
	if ((uintptr_t)addr % DSM_LOCK_ALIGN)
		return -EINVAL;
	bool ok;

	pthread_mutex_lock(&dsm_eng.lock);
	r = dsm_region_find((uintptr_t)addr);
	ok = r && r->shared; /* r may go once the lock is dropped */
	if (ok) {
		m.region_id = r->shared->region_id;
		m.offset = (uintptr_t)addr - r->base;
		*server = r->shared->server;
	}
	pthread_mutex_unlock(&dsm_eng.lock);
	if (!ok)
		return -EINVAL;
	dsm_lock_req_encode(&m, body);
	return 0;
}

/* Send a take-back (UNLOCK of a waiting LOCK, WITHDRAW of an arrival)
 * until the server answers it: a few tries, for an answer that did not
 * come or memory that was short.  The server's answer (0, -ENOENT, ...),
 * or the last error. */
static int take_back(uint32_t server, uint8_t type, const uint8_t *body,
		     uint32_t len)
{
	int err = -ETIMEDOUT;

	for (int i = 0; i < 3 && (err == -ETIMEDOUT || err == -ENOMEM); i++)
		err = dsm_engine_call(server, type, body, len, NULL, 0, NULL);
	return err;
}

/* The home a LOCK (body) went to for addr said -ESTALE: the region
 * moved, and the mover follows it there (shared_move.c), unless this
 * process has followed it already. */
static void home_moved(void *addr, uint32_t server, const uint8_t *body)
{
	struct dsm_lock_req m;
	struct dsm_region *r;

	if (dsm_lock_req_decode(body, DSM_LOCK_REQ_SIZE, &m))
		return;
	pthread_mutex_lock(&dsm_eng.lock);
	r = dsm_region_find((uintptr_t)addr);
	if (r && r->shared && r->shared->server == server &&
	    r->shared->region_id == m.region_id)
		dsm_shared_stale(r);
	pthread_mutex_unlock(&dsm_eng.lock);
}

/* Did a call to server about addr's region fail with err because its
 * home is lost, and will a standby take its place, or has it already
 * (shared_move.c)?  Then it is asked again. */
static bool failing_over(void *addr, uint32_t server, int err)
{
	struct dsm_region *r;
	bool yes;

	pthread_mutex_lock(&dsm_eng.lock);
	r = dsm_region_find((uintptr_t)addr);
	yes = r && r->shared && (dsm_shared_fails_over(r, server, err) ||
				 dsm_shared_left_home(r, server, err));
	pthread_mutex_unlock(&dsm_eng.lock);
	return yes;
}

/* This thread's entry for the lock at addr in its region's list of
 * holds, or NULL; *sh is that region's (NULL: not a shared region) and
 * *off the lock's offset in it.  Under dsm_eng.lock. */
static struct dsm_held_lock *held_find(void *addr, struct dsm_shared **sh,
				       uint64_t *off)
{
	struct dsm_region *r = dsm_region_find((uintptr_t)addr);
	uint64_t token = my_token();

	*sh = r ? r->shared : NULL;
	if (!*sh)
		return NULL;
	*off = (uintptr_t)addr - r->base;
	for (uint32_t i = 0; i < (*sh)->nheld; i++)
		if ((*sh)->held[i].offset == *off &&
		    (*sh)->held[i].token == token)
			return &(*sh)->held[i];
	return NULL;
}

/* The lock at addr is this thread's now (held), or no longer: kept for
 * a failover to take again at the standby (shared_move.c). */
static void track(void *addr, bool held)
{
	struct dsm_held_lock *l;
	struct dsm_shared *sh;
	uint64_t off;

	pthread_mutex_lock(&dsm_eng.lock);
	l = held_find(addr, &sh, &off);
	if (l && !held)
		*l = sh->held[--sh->nheld];
	if (l || !held || !sh)
		goto out;
	if (sh->nheld == sh->held_cap) {
		uint32_t cap = sh->held_cap ? 2 * sh->held_cap : 8;
		struct dsm_held_lock *v = realloc(sh->held, cap * sizeof(*v));

		if (!v) {
			dsm_err("dsm_lock(%p): out of memory: a failover of its "
				"home would not keep this lock", addr);
			goto out;
		}
		sh->held = v;
		sh->held_cap = cap;
	}
	sh->held[sh->nheld++] = (struct dsm_held_lock){ off, my_token(),
							false };
out:
	pthread_mutex_unlock(&dsm_eng.lock);
}

/* This thread's hold on the lock at addr is being let go (on), or is
 * not after all (off).  Whether this thread held it. */
static bool releasing(void *addr, bool on)
{
	struct dsm_held_lock *l;
	struct dsm_shared *sh;
	uint64_t off;

	pthread_mutex_lock(&dsm_eng.lock);
	l = held_find(addr, &sh, &off);
	if (l)
		l->releasing = on;
	pthread_mutex_unlock(&dsm_eng.lock);
	return l;
}

/* Tests widen the moment between an UNLOCK's answer and the lock leaving
 * the held list, in which a failover finds it there
 * (DSM_TEST_UNLOCK_STALL_MS). */
static void test_stall(void)
{
	static int stall_ms = -1; /* -1: not read yet; every reader agrees */
	int ms = __atomic_load_n(&stall_ms, __ATOMIC_RELAXED);
	const char *v;

	if (ms < 0) {
		v = getenv("DSM_TEST_UNLOCK_STALL_MS");
		ms = v ? atoi(v) : 0;
		__atomic_store_n(&stall_ms, ms, __ATOMIC_RELAXED);
	}
	if (ms > 0)
		usleep((useconds_t)ms * 1000);
}

/* LOCK, asked again while the region's home is moving: -EAGAIN while
 * it is sealed there, -ESTALE once it has moved (asked again at the new
 * home, once this process follows it).  All within the lock's deadline:
 * past it, -ETIMEDOUT. */
static int lock_call(void *addr, uint32_t *server, uint8_t *body, void *rep,
		     uint32_t *len, bool *sent)
{
	uint64_t deadline = dsm_now_ns() + dsm_eng.lock_ns;
	int err;

	for (;;) {
		err = lock_of(addr, server, body);
		if (err)
			return err;
		err = gated_call(*server, DSM_MSG_LOCK, body, DSM_LOCK_REQ_SIZE,
				 rep, DSM_LOCK_REPLY_SIZE, len, sent, deadline);
		if (err != -ETIMEDOUT && failing_over(addr, *server, err))
			err = -EAGAIN; /* asked again at the standby */
		if (err != -EAGAIN && err != -ESTALE)
			return err;
		if (dsm_now_ns() >= deadline) {
			*sent = false; /* answered: nothing to take back */
			return -ETIMEDOUT;
		}
		if (err == -ESTALE)
			home_moved(addr, *server, body);
		usleep(20 * 1000);
	}
}

int dsm_lock(void *addr)
{
	uint8_t body[DSM_LOCK_REQ_SIZE], rep[DSM_LOCK_REPLY_SIZE];
	struct dsm_lock_reply g;
	uint32_t server = 0, len = 0;
	bool sent = false;
	int err = lock_call(addr, &server, body, rep, &len, &sent);

	if (err == -ETIMEDOUT && !sent)
		goto timed_out;
	if (err == -ETIMEDOUT) {
		/* Taken back: a LOCK still waiting is cancelled, one granted
		 * meanwhile released.  Either way this thread holds nothing,
		 * unless the server never answered the UNLOCK either. */
		err = take_back(server, DSM_MSG_UNLOCK, body, sizeof(body));
		gate_leave(server);
		if (err)
			dsm_err("dsm_lock(%p): could not take the request back "
				"(%s): the lock may be granted to this thread "
				"and held until its process ends", addr,
				strerror(-err));
		goto timed_out;
	}
	if (!err)
		err = dsm_lock_reply_decode(rep, len, &g);
	if (err)
		return err;
	track(addr, true);
	return g.flags & DSM_LOCK_OWNER_DIED ? -EOWNERDEAD : 0;

timed_out:
	dsm_warn("dsm_lock(%p): not granted within %llu ms "
		 "(DSM_LOCK_TIMEOUT_MS)", addr,
		 (unsigned long long)(dsm_eng.lock_ns / 1000000));
	return -ETIMEDOUT;
}

/*
 * UNLOCK, asked again at the standby while the home fails over.  The
 * lock is marked as being let go before its UNLOCK leaves: should the
 * home die after granting it to the next waiter but before our answer
 * came, the failover must not take it again for this thread (the waiter
 * takes it again, as its holder; reclaim_locks).  So an UNLOCK asked
 * again at the standby finds no claim there, and that is the release
 * done.
 */
int dsm_unlock(void *addr)
{
	uint64_t deadline = dsm_now_ns() + dsm_eng.lock_ns;
	uint8_t body[DSM_LOCK_REQ_SIZE];
	uint32_t server = 0;
	bool held = releasing(addr, true), again = false;
	int err;

	for (;;) {
		err = lock_of(addr, &server, body);
		if (err)
			break;
		err = dsm_engine_call(server, DSM_MSG_UNLOCK, body,
				      sizeof(body), NULL, 0, NULL);
		if (!err || !failing_over(addr, server, err) ||
		    dsm_now_ns() >= deadline)
			break;
		again = true;
		usleep(20 * 1000);
	}
	if (again && held && (err == -EPERM || err == -ENOENT))
		err = 0; /* it went with the lost home */
	if (!err)
		test_stall();
	if (!err || err == -EPERM || err == -ENOENT)
		track(addr, false); /* released, or not ours to release */
	else if (held)
		releasing(addr, false); /* still ours */
	return err;
}

_Static_assert(DSM_BARRIER_KEY_SIZE == DSM_SHARE_KEY_SIZE,
	       "a barrier's key is a name's digest, as a shared region's");

static int check_barrier(const char *name, int count)
{
	size_t len = name ? strnlen(name, DSM_SHARED_NAME_MAX + 1) : 0;

	if (!dsm_eng.servers)
		return -ENOTCONN;
	if (!len || len > DSM_SHARED_NAME_MAX || count < 1 ||
	    (unsigned)count > DSM_BARRIER_MAX_COUNT) {
		dsm_err("dsm_barrier: a name of 1 to %d bytes and a count of "
			"1 to %u, please", DSM_SHARED_NAME_MAX,
			DSM_BARRIER_MAX_COUNT);
		return -EINVAL;
	}
	return 0;
}

int dsm_barrier(const char *name, int count)
{
	struct dsm_barrier_req m = { .count = (uint32_t)count,
				     .token = my_token() };
	uint8_t body[DSM_BARRIER_REQ_SIZE];
	bool sent;
	int server, err = check_barrier(name, count);

	if (err)
		return err;
	dsm_name_digest("dsm barrier", name, m.key);
	server = dsm_shared_pick(m.key, -1);
	if (server < 0)
		return -ENOTCONN;
	dsm_barrier_req_encode(&m, body);
	err = gated_call((uint32_t)server, DSM_MSG_BARRIER, body,
			 sizeof(body), NULL, 0, NULL, &sent,
			 dsm_now_ns() + dsm_eng.lock_ns);
	if (err != -ETIMEDOUT)
		return err;
	if (!sent)
		goto timed_out;
	/* Take the arrival back, or the next round would count it.  If
	 * there is none to take, it was released meanwhile: passed. */
	m.flags = DSM_BARRIER_WITHDRAW;
	dsm_barrier_req_encode(&m, body);
	err = take_back((uint32_t)server, DSM_MSG_BARRIER, body, sizeof(body));
	gate_leave((uint32_t)server);
	if (err == -ENOENT)
		return 0;
	if (err)
		dsm_err("dsm_barrier(%s): could not take the arrival back (%s): "
			"it may count in the next round until this process "
			"ends", name, strerror(-err));
timed_out:
	dsm_warn("dsm_barrier(%s): %d arrivals did not come within %llu ms "
		 "(DSM_LOCK_TIMEOUT_MS)", name, count,
		 (unsigned long long)(dsm_eng.lock_ns / 1000000));
	return -ETIMEDOUT;
}
