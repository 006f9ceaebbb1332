/*
 * rdma_check_shared.c - rdma_check inval-flow: INVALIDATEs over RDMA are
 * flow-controlled and acknowledged outside the call credits (room: tests).
 *
 * Connection A creates a shared region of NP pages and takes a read-only
 * copy of each page (one ACQUIRE each: an INVALIDATE each later).  B
 * attaches and takes the lock at word 0; A then sends CREDITS - 1 LOCKs
 * of its own there, which wait.  B and C attach and ask to write every
 * page, one page per ACQUIRE: NP INVALIDATEs for A.  A does not
 * acknowledge for a while:
 *   - it must have received exactly DSM_RDMA_INVALS of them (the server
 *     holds the rest in the session's queue; without the bound it would
 *     send them all, without the queue it would close A);
 *   - no writer is granted;
 *   - a PING of A's is answered all the same (a reply must not wait
 *     behind INVALIDATEs the client has not acknowledged yet); then A's
 *     last credit goes to one more LOCK, so every call credit it has is
 *     held.
 * Then A acknowledges each INVALIDATE as it comes, its credits still all
 * waiting on LOCKs: an INVAL_ACK that needed a call credit would never
 * go, and the writers would wait until the home closed A.  Every writer
 * must be granted, and A must have seen NP INVALIDATEs and lost nothing.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "rdma_check.h"
#include "util.h"

#define NP 24                     /* pages: one INVALIDATE each */
#define QUIET_MS 1000             /* A's silence, for the server to send */
#define FLOW_MS 60000             /* every writer granted within this */

struct done {
	bool done;
	int status;
};

/* What A receives: INVALIDATE ids to acknowledge. */
struct inbox {
	uint64_t ids[NP * 2];
	struct done acks[NP * 2];     /* their INVAL_ACKs' replies */
	unsigned n, acked;
	bool other;                   /* anything else from the server */
	bool lost;
};

static void on_done(void *arg, int status, const uint8_t *payload,
		    uint32_t len)
{
	struct done *d = arg;

	(void)payload, (void)len;
	d->done = true;
	d->status = status;
}

static void on_msg(void *ctx, const struct dsm_hdr *h, const uint8_t *payload)
{
	struct inbox *in = ctx;

	(void)payload;
	if (h->type == DSM_MSG_INVALIDATE && in->n < NP * 2)
		in->ids[in->n++] = h->id;
	else
		in->other = true;
}

static void on_lost(void *ctx, int err)
{
	struct inbox *in = ctx;

	(void)err;
	in->lost = true;
}

/* One round of progress on every connection, after flushing them. */
static void drive(struct dsm_transport **t, int n)
{
	struct pollfd p[3];

	for (int i = 0; i < n; i++) {
		rc_ops->flush(t[i]);
		p[i] = (struct pollfd){ rc_ops->fd(t[i]), POLLIN, 0 };
	}
	poll(p, (nfds_t)n, 10);
	for (int i = 0; i < n; i++)
		rc_ops->progress(t[i]);
}

static int count_done(const struct done *d, int n, int *bad)
{
	int k = 0;

	for (int i = 0; i < n; i++) {
		k += d[i].done;
		*bad += d[i].done && d[i].status;
	}
	return k;
}

static struct dsm_alloc_reply share(struct dsm_transport *t, uint8_t type,
				    uint64_t id, const uint8_t *key)
{
	struct dsm_share_req q = { .region_id = id,
				   .size = NP * DSM_PAGE_SIZE };
	uint8_t body[DSM_SHARE_REQ_SIZE], rep[DSM_ALLOC_REPLY_SIZE];
	struct dsm_alloc_reply a = { 0 };
	uint32_t len;

	memcpy(q.key, key, DSM_SHARE_KEY_SIZE);
	dsm_share_req_encode(&q, body);
	if (dsm_transport_call_sync(rc_ops, t, type, body, sizeof(body), rep,
				    sizeof(rep), &len) ||
	    dsm_alloc_reply_decode(rep, len, &a) || !a.rkey) {
		fprintf(stderr, "rdma_check: %s failed\n", dsm_msg_name(type));
		exit(2);
	}
	return a;
}

static int acquire(struct dsm_transport *t, const struct dsm_alloc_reply *a,
		   uint32_t page, uint8_t mode, struct done *d)
{
	struct dsm_acquire m = { .region_id = a->region_id, .npages = 1,
				 .pool_off = a->pool_off + page * DSM_PAGE_SIZE,
				 .mode = mode };
	uint8_t body[DSM_ACQUIRE_SIZE];

	dsm_acquire_encode(&m, body);
	return rc_ops->call(t, DSM_MSG_ACQUIRE, body, sizeof(body), on_done, d);
}

static int lock(struct dsm_transport *t, uint64_t region, uint64_t token,
		struct done *d)
{
	struct dsm_lock_req m = { .region_id = region, .token = token };
	uint8_t body[DSM_LOCK_REQ_SIZE];

	dsm_lock_req_encode(&m, body);
	return rc_ops->call(t, DSM_MSG_LOCK, body, sizeof(body), on_done, d);
}

static void ack_all(struct dsm_transport *a, struct inbox *in)
{
	for (; in->acked < in->n; in->acked++) {
		struct dsm_inval_ack m = { .inval_id = in->ids[in->acked] };
		uint8_t body[DSM_INVAL_ACK_SIZE];

		dsm_inval_ack_encode(&m, body);
		if (rc_ops->call(a, DSM_MSG_INVAL_ACK, body, sizeof(body),
				 on_done, &in->acks[in->acked]))
			in->lost = true;
	}
}

/* A: the region, a copy of every page.  B: the lock.  A: CREDITS LOCKs. */
static void setup(struct dsm_transport **t, struct dsm_alloc_reply *ra,
		  struct dsm_alloc_reply *rw, struct done *reads,
		  struct done *locks, const uint8_t *key)
{
	struct done held = { 0 };
	int bad = 0;

	*ra = share(t[0], DSM_MSG_SHARE_CREATE, 0, key);
	for (uint32_t i = 0; i < NP; i++)
		if (acquire(t[0], ra, i, DSM_ACQ_READ, &reads[i]))
			exit(2);
	for (uint64_t end = dsm_mono_ms() + FLOW_MS;
	     count_done(reads, NP, &bad) < NP && dsm_mono_ms() < end;)
		drive(t, 1);
	rc_check(count_done(reads, NP, &bad) == NP && !bad,
		 "the holder has a read-only copy of every page");
	rw[0] = share(t[1], DSM_MSG_SHARE_ATTACH, ra->region_id, key);
	rw[1] = share(t[2], DSM_MSG_SHARE_ATTACH, ra->region_id, key);
	if (lock(t[1], rw[0].region_id, 1, &held))
		exit(2);
	for (uint64_t end = dsm_mono_ms() + FLOW_MS; !held.done && dsm_mono_ms() < end;)
		drive(t + 1, 1);
	rc_check(held.done && !held.status, "another holder takes the lock");
	/* the last credit is for a PING, then one more LOCK */
	for (uint32_t i = 0; i + 1 < DSM_RDMA_CREDITS; i++)
		if (lock(t[0], ra->region_id, 100 + i, &locks[i]))
			exit(2);
}

/* While INVALIDATEs wait at the server for A's acks, a reply to A must
 * not wait behind them: A's acks can be stuck behind a request of its
 * own that needs that reply (a DISCARD holding WRITEs, a call waiting
 * for a credit).  Then A's last credit goes to a LOCK too. */
static void ping_then_lock(struct dsm_transport **t,
			   const struct dsm_alloc_reply *ra, struct done *last)
{
	struct done ping = { 0 };

	if (rc_ops->call(t[0], DSM_MSG_PING, NULL, 0, on_done, &ping))
		exit(2);
	for (uint64_t end = dsm_mono_ms() + QUIET_MS; !ping.done && dsm_mono_ms() < end;)
		drive(t, 3);
	rc_check(ping.done && !ping.status,
		 "a PING is answered while INVALIDATEs wait for acks");
	if (lock(t[0], ra->region_id, 100 + DSM_RDMA_CREDITS - 1, last))
		exit(2);
}

int rc_inval_flow(const char *addr)
{
	struct inbox in = { 0 };
	struct dsm_transport_events ev = { on_msg, on_lost, &in };
	struct dsm_transport *t[3] = { rc_open(addr, &ev), rc_open(addr, NULL),
				       rc_open(addr, NULL) };
	struct done reads[NP] = { 0 }, writes[NP] = { 0 };
	struct done locks[DSM_RDMA_CREDITS] = { 0 };
	struct dsm_alloc_reply ra, rw[2];
	uint8_t key[DSM_SHARE_KEY_SIZE];
	int bad = 0, granted;

	dsm_auth_random(key, sizeof(key));
	setup(t, &ra, rw, reads, locks, key);
	for (uint32_t i = 0; i < NP; i++)
		if (acquire(t[1 + i % 2], &rw[i % 2], i, DSM_ACQ_WRITE,
			    &writes[i]))
			exit(2);
	for (uint64_t end = dsm_mono_ms() + QUIET_MS; dsm_mono_ms() < end;)
		drive(t, 3);
	printf("unacknowledged: %u INVALIDATEs received\n", in.n);
	rc_check(in.n == DSM_RDMA_INVALS && !in.lost,
		 "a holder gets DSM_RDMA_INVALS INVALIDATEs, no more, "
		 "until it acknowledges");
	rc_check(count_done(writes, NP, &bad) == 0, "no writer granted yet");
	ping_then_lock(t, &ra, &locks[DSM_RDMA_CREDITS - 1]);
	for (uint64_t end = dsm_mono_ms() + FLOW_MS;
	     count_done(writes, NP, &bad) < NP && !in.lost && dsm_mono_ms() < end;) {
		ack_all(t[0], &in);
		drive(t, 3);
	}
	granted = count_done(writes, NP, &bad);
	printf("granted %d of %d writers, %d refused; %u INVALIDATEs\n",
	       granted, NP, bad, in.n);
	rc_check(granted == NP && !bad && in.n == NP && !in.lost && !in.other,
		 "acknowledged with every call credit waiting on a LOCK, "
		 "every writer granted");
	rc_check(count_done(locks, DSM_RDMA_CREDITS, &bad) == 0,
		 "the LOCKs still wait");
	for (int i = 0; i < 3; i++)
		rc_ops->close(t[i]);
	return rc_failed();
}
