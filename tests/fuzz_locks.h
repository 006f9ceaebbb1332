/*
 * fuzz_locks.h - the protocol fuzzer's model of locks and barriers
 * (room: tests).
 *
 * What the server should answer to LOCK, UNLOCK and BARRIER, now and
 * through its outbox, given every request and session end before: who
 * holds each lock, who waits for it and in what order, which locks a
 * dead holder left marked (and whether a region's marks overflowed),
 * which arrivals wait at which barrier, under which (session, token).
 * fuzz_proto.c tells it each request with its reply, then every message
 * the handler sent through its outbox meanwhile, then that the step is
 * done; every disagreement is a FUZZ_CHECK.  It knows nothing of the
 * handler's insides.
 */
#ifndef DSM_FUZZ_LOCKS_H
#define DSM_FUZZ_LOCKS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "proto.h"

#define FUZZ_CHECK(cond)                                                    \
	do {                                                                \
		if (!(cond)) {                                              \
			fprintf(stderr, "%s:%d: check failed: %s\n",        \
				__FILE__, __LINE__, #cond);                 \
			abort();                                            \
		}                                                           \
	} while (0)

/* The server's bounds the model holds it to (server/lock.h, barrier.h). */
#define LM_MAX_CLAIMS 256u
#define LM_MAX_DEAD 256u
#define LM_MAX_ARRIVALS 64u
#define LM_MAX_BARRIERS 1024u

#define LM_WAITS 1024     /* three sessions' claims and arrivals */
#define LM_LOCKS 65536
#define LM_REGIONS 256

/* A LOCK or BARRIER not answered yet, in arrival order. */
struct lm_wait {
	int conn;
	uint8_t type;
	uint64_t id;
	uint64_t region, offset;                 /* LOCK */
	uint64_t token;                          /* LOCK and BARRIER */
	uint8_t key[DSM_BARRIER_KEY_SIZE];       /* BARRIER */
	uint32_t count;
	bool dropping;   /* its session detached the region: -ENOENT due */
};

/* A lock the server keeps a record of: held, or a dead holder's mark. */
struct lm_lock {
	uint64_t region, offset, token;
	int conn;
	bool held;
	bool died;       /* the next grant says OWNER_DIED */
	bool mark;       /* died with nobody waiting: counted in the region */
	bool due;        /* free with waiters: granted before the step ends */
};

struct lm_region {
	uint64_t id;
	unsigned ndead;
	bool overflow;
};

/* The step being checked: the request, or a session's end. */
struct lm_step {
	int conn;
	uint8_t type;            /* the request's, or 0 for a session end */
	uint64_t id;             /* the request's */
	uint64_t region;         /* FREE: the region detached */
	/* UNLOCK of a waiter, BARRIER WITHDRAW: the LOCK or BARRIER
	 * answered -ECANCELED, and whether it was */
	uint64_t cancel_id;
	bool cancelled;
	bool withdraw;           /* BARRIER: a WITHDRAW, not an arrival */
	bool releases;           /* BARRIER: this arrival completes it */
	uint8_t key[DSM_BARRIER_KEY_SIZE];
	uint32_t count, released;
};

struct lock_model {
	struct lm_wait waits[LM_WAITS];
	size_t nwaits;
	struct lm_lock locks[LM_LOCKS];
	size_t nlocks;
	struct lm_region regions[LM_REGIONS];
	size_t nregions;
	unsigned due;            /* locks with `due` set */
	struct lm_step step;
};

void lm_init(struct lock_model *m);
/* conn's request q (body as sent) got status; none: its reply comes
 * through the outbox. */
void lm_request(struct lock_model *m, int conn,
		const struct dsm_hdr *q, const uint8_t *body, int status,
		bool none);
/* conn's FREE detached it from shared region `region`. */
void lm_detach(struct lock_model *m, int conn, uint64_t region);
/* conn's session is about to end. */
void lm_session_end(struct lock_model *m, int conn);
/* A message the handler sent conn `to` through its outbox: header and
 * (up to DSM_LOCK_REPLY_SIZE bytes of) body. */
void lm_sent(struct lock_model *m, int to, const struct dsm_hdr *h,
	     const uint8_t *body);
/* Every message of the step has been told. */
void lm_step_done(struct lock_model *m);
/* Region `id` is gone: so are its locks' records and marks. */
void lm_region_gone(struct lock_model *m, uint64_t id);
/* Regions the model knows of, for the caller to ask which are gone. */
size_t lm_nregions(const struct lock_model *m);
uint64_t lm_region_id(const struct lock_model *m, size_t i);
/* Nothing waits: every session has ended. */
void lm_check_idle(const struct lock_model *m);

#endif /* DSM_FUZZ_LOCKS_H */
