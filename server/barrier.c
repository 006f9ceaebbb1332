/*
 * barrier.c - see barrier.h (room: server protocol).
 *
 * A barrier record exists while arrivals wait at it: the first arrival
 * of a round makes it, with that arrival's count, and the count-th
 * releases and frees it.  An arrival is on its barrier's queue, in
 * arrival order (the order the replies go out in), and on its session's
 * list, so a session's end, a withdraw and the -EDEADLK check walk the
 * session's own arrivals (at most BARRIER_MAX_PER_SESSION), never anyone
 * else's.  A barrier all of whose arrivals were withdrawn is freed: a
 * later arrival starts a new round, with its own count.
 */
#include "barrier.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "handler.h"

struct barrier {
	struct barrier *hnext;          /* the table's hash chain */
	uint8_t key[DSM_BARRIER_KEY_SIZE];
	uint32_t count;                 /* arrivals that release it */
	uint32_t arrived;               /* waiting now (< count) */
	struct barrier_arrival *head, *tail;
};

struct barrier_arrival {
	struct barrier *b;
	struct handler_session *s;
	uint64_t req_id;                /* its BARRIER's, for the reply */
	uint64_t token;                 /* the client's thread */
	struct barrier_arrival *qnext;  /* the barrier's, oldest first */
	struct barrier_arrival *qprev;
	struct barrier_arrival *snext, *sprev; /* the session's */
};

/* The key is a digest, but the client chose it: any of its bytes hash
 * as well as any other, and a client that makes keys collide lengthens
 * its own chain, at most BARRIER_MAX_RECORDS long. */
static struct barrier **bucket_of(struct barrier_table *t, const uint8_t *key)
{
	uint64_t k;

	memcpy(&k, key, sizeof(k));
	return &t->bucket[((k * 0x9e3779b97f4a7c15ULL) >> 32) %
			  BARRIER_BUCKETS];
}

static struct barrier *barrier_find(struct barrier_table *t,
				    const uint8_t *key)
{
	struct barrier *b = *bucket_of(t, key);

	while (b && memcmp(b->key, key, DSM_BARRIER_KEY_SIZE))
		b = b->hnext;
	return b;
}

static struct barrier *barrier_new(struct barrier_table *t,
				   const struct dsm_barrier_req *m)
{
	struct barrier **head = bucket_of(t, m->key);
	struct barrier *b = calloc(1, sizeof(*b));

	if (!b)
		return NULL;
	memcpy(b->key, m->key, sizeof(b->key));
	b->count = m->count;
	b->hnext = *head;
	*head = b;
	t->count++;
	return b;
}

static void barrier_free(struct barrier_table *t, struct barrier *b)
{
	struct barrier **pp = bucket_of(t, b->key);

	while (*pp != b)
		pp = &(*pp)->hnext;
	*pp = b->hnext;
	t->count--;
	free(b);
}

/* (s, token)'s arrival waiting at key, or NULL. */
static struct barrier_arrival *arrival_of(const struct handler_session *s,
					  const uint8_t *key, uint64_t token)
{
	struct barrier_arrival *a;

	for (a = s->arrivals; a; a = a->snext)
		if (a->token == token &&
		    !memcmp(a->b->key, key, DSM_BARRIER_KEY_SIZE))
			return a;
	return NULL;
}

static struct barrier_arrival *arrival_new(struct barrier *b,
					   struct handler_session *s,
					   uint64_t req_id, uint64_t token)
{
	struct barrier_arrival *a = calloc(1, sizeof(*a));

	if (!a)
		return NULL;
	*a = (struct barrier_arrival){ .b = b, .s = s, .req_id = req_id,
				       .token = token, .qprev = b->tail,
				       .snext = s->arrivals };
	if (b->tail)
		b->tail->qnext = a;
	else
		b->head = a;
	b->tail = a;
	b->arrived++;
	if (s->arrivals)
		s->arrivals->sprev = a;
	s->arrivals = a;
	s->narrivals++;
	return a;
}

static void arrival_free(struct barrier_arrival *a)
{
	struct barrier *b = a->b;
	struct handler_session *s = a->s;

	if (a->qprev)
		a->qprev->qnext = a->qnext;
	else
		b->head = a->qnext;
	if (a->qnext)
		a->qnext->qprev = a->qprev;
	else
		b->tail = a->qprev;
	b->arrived--;
	if (a->sprev)
		a->sprev->snext = a->snext;
	else
		s->arrivals = a->snext;
	if (a->snext)
		a->snext->sprev = a->sprev;
	s->narrivals--;
	free(a);
}

/* A BARRIER's reply, always empty: 0 released, or -ECANCELED taken
 * back. */
static void answer(struct handler *h, struct handler_session *to,
		   uint64_t req_id, int status)
{
	struct reply r = { 0 };

	dsm_hdr_init(&r.hdr, DSM_MSG_BARRIER, DSM_F_REPLY, 0, req_id);
	r.hdr.status = status;
	if (status)
		h->errors++;
	handler_emit(h, to, &r);
}

/* The last arrival (s, req_id) came: every waiting one is answered, in
 * arrival order, then the last; the barrier (NULL for a count of 1,
 * which never waits) is gone. */
static void release(struct handler *h, struct barrier *b,
		    struct handler_session *s, uint64_t req_id)
{
	if (b) {
		while (b->head) {
			answer(h, b->head->s, b->head->req_id, 0);
			arrival_free(b->head);
		}
		barrier_free(&h->barriers, b);
	}
	answer(h, s, req_id, 0);
	h->barriers_released++;
}

int barrier_arrive(struct handler_session *s, uint64_t req_id,
		   const struct dsm_barrier_req *m)
{
	struct barrier_table *t = &s->h->barriers;
	struct barrier *b = barrier_find(t, m->key);

	if (b && b->count != m->count)
		return -EINVAL;
	/* A thread waits once: its second arrival, even one that would
	 * complete the barrier, would count it twice. */
	if (b && arrival_of(s, m->key, m->token))
		return -EDEADLK;
	if (b ? b->arrived + 1 == b->count : m->count == 1) {
		release(s->h, b, s, req_id);
		return 0;
	}
	/* Only an arrival that will wait is held to the bounds. */
	if (s->narrivals >= BARRIER_MAX_PER_SESSION)
		return -EAGAIN;
	if (!b && t->count >= BARRIER_MAX_RECORDS)
		return -EAGAIN;
	if (!b && !(b = barrier_new(t, m)))
		return -ENOMEM;
	if (!arrival_new(b, s, req_id, m->token)) {
		if (!b->arrived)
			barrier_free(t, b);
		return -ENOMEM;
	}
	return 0;
}

/* The count is not compared: the arrival is named by (session, token,
 * key), and a withdraw refused for a count would leave it waiting. */
int barrier_withdraw(struct handler_session *s,
		     const struct dsm_barrier_req *m)
{
	struct barrier_arrival *a = arrival_of(s, m->key, m->token);
	struct barrier *b;

	if (!a)
		return -ENOENT;
	b = a->b;
	answer(s->h, s, a->req_id, -ECANCELED);
	arrival_free(a);
	if (!b->arrived)
		barrier_free(&s->h->barriers, b);
	return 0;
}

void barrier_session_end(struct handler_session *s)
{
	while (s->arrivals) {
		struct barrier *b = s->arrivals->b;

		arrival_free(s->arrivals);
		if (!b->arrived)
			barrier_free(&s->h->barriers, b);
	}
}
