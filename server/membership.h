/*
 * membership.h - dsm-server's membership in the cluster registry (room:
 * registry).
 *
 * The server registers once, synchronously, before it serves anyone: if
 * Redis cannot be reached it exits with a clear error and leaves nothing
 * behind.  After that it beats on its own libuv loop: every heartbeat
 * rewrites its record (capacity, used, regions, clients, draining, the
 * counters) and renews the record's TTL, so a server that dies or hangs
 * vanishes from the registry by itself.  If Redis goes away the server keeps serving its clients and
 * reconnects on the next beats (logging in again, if Redis wants a
 * password); the first beat that gets through registers
 * it again (after a Redis restart that lost the data, too).  On a clean
 * stop it deletes its record.
 *
 * Each beat also checks the lease of every connected client that sent
 * LEASE: a connection whose lease has been missing for
 * DSM_REG_LEASE_GRACE_MS, and which has sent no LEASE (the client's
 * keepalive, every heartbeat) for as long, is closed, which frees its
 * regions.  So a client that hangs (alive, its connections open, no
 * longer renewing) gives its memory back, not only one that crashes.
 * Only positive evidence counts: a lease found missing on a Redis that
 * refused this beat's write (full) or does not answer says nothing, nor
 * does a lease missing while the client still talks to us.
 *
 * Every DSM_REG_PRUNE_MS it also prunes the indexes of dead members, and
 * it leaves the drain set when it starts and when it stops.
 */
#ifndef DSM_SERVER_MEMBERSHIP_H
#define DSM_SERVER_MEMBERSHIP_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "handler.h"
#include "registry.h"
#include "session.h"

struct redisAsyncContext;

struct membership {
	uv_loop_t *loop;
	uv_timer_t beat;
	struct redisAsyncContext *ac;   /* NULL while disconnected */
	const struct handler *h;        /* counters published each beat */
	struct session_list *sessions;  /* whose leases each beat checks */
	struct dsm_reg_addr addr;
	char cluster[DSM_REG_CLUSTER_MAX + 1];
	struct dsm_reg_server rec;
	uint64_t connecting_since;      /* monotonic ms; 0: not connecting */
	uint64_t pruned_ms;             /* monotonic ms of the last prune */
	/* the drain set said this server drains (on) or not: called on the
	 * loop when that changes (main.c tells the clients) */
	void (*drain_changed)(void *arg, bool on);
	void *drain_arg;
	bool connected;                 /* and logged in */
	bool writable;                  /* the last beat's MULTI was done */
	bool stopping, warned;
	bool auth_warned;               /* said why Redis refused us */
};

/*
 * Register: connect to the registry at addr (synchronously; with its
 * password, if any, which is sent again after every reconnect), write
 * the record, then start beating on loop.  rec gives id, addr, capacity; the rest is filled in.
 * 0, or -errno after logging what went wrong and what to check.
 */
int membership_start(struct membership *r, uv_loop_t *loop,
		       const struct dsm_reg_addr *addr, const char *cluster,
		       const struct dsm_reg_server *rec,
		       const struct handler *h, struct session_list *sessions,
		       void (*drain_changed)(void *arg, bool on),
		       void *drain_arg);

/* Deregister (best effort, asynchronously) and let go of the loop. */
void membership_stop(struct membership *r);

/* Drop the connection at once, deregistered or not (stop took too long). */
void membership_abort(struct membership *r);

#endif /* DSM_SERVER_MEMBERSHIP_H */
