/*
 * rdma_check.c - what the RDMA transport promises about rkeys and order,
 * shown against a live dsm-server (room: tests).  Run in a guest with
 * soft-RoCE by tests/multinode/rdma.sh; DSM_SECRET_FILE as for any
 * client.
 *
 *   rdma_check stale-rkey HOST:PORT
 *     A region's rkey reaches that region over its own connection only:
 *     a READ through another connection with it fails, and so does a
 *     READ with it after the region was freed and its extent given to
 *     another connection (whose data must read as zeros, not ours).
 *   rdma_check inval-flow HOST:PORT
 *     A holder of a shared region has at most DSM_RDMA_INVALS INVALIDATEs
 *     unacknowledged (more wait at the server, in its queue), and acks
 *     them while every call credit it has waits on a LOCK
 *     (rdma_check_shared.c).
 *   rdma_check discard-order HOST:PORT
 *     WRITE a pattern, DISCARD the pages, WRITE a second pattern, let the
 *     server catch up, READ: the second pattern must be there.  The
 *     server zeroes a DISCARD's pages with its CPU after the NIC has
 *     placed what follows it, so the transport holds WRITEs while a
 *     DISCARD is unanswered.  With DSM_TEST_RDMA_UNORDERED=1 it does not,
 *     and this check should see zeros: that shows it can fail.
 *
 * Exit 0 if every check passed, 1 if one failed, 2 if it could not run.
 */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"
#include "rdma_check.h"

#define PAGES 4
#define ROUNDS 20
#define SETTLE_US 20000 /* time for the server to act on a DISCARD */

const struct dsm_transport_ops *rc_ops = &dsm_rdma_transport;
static struct dsm_auth_key key;
static bool has_key;
static int failed;

/* One request's outcome. */
struct result {
	bool done;
	int status;
	uint8_t data[PAGES * DSM_PAGE_SIZE];
	uint32_t len;
};

static void on_done(void *arg, int status, const uint8_t *payload,
		    uint32_t len)
{
	struct result *r = arg;

	r->done = true;
	r->status = status;
	r->len = len;
	if (payload && len <= sizeof(r->data))
		memcpy(r->data, payload, len);
}

/* Drive t until every result in rs[0..n) is done. */
static void wait_all(struct dsm_transport *t, struct result **rs, int n)
{
	rc_ops->flush(t);
	for (;;) {
		struct pollfd p = { rc_ops->fd(t), POLLIN, 0 };
		int left = 0;

		for (int i = 0; i < n; i++)
			left += !rs[i]->done;
		if (!left)
			return;
		poll(&p, 1, 100);
		rc_ops->progress(t);
	}
}

void rc_check(bool ok, const char *what)
{
	printf("%s: %s\n", ok ? "ok" : "FAIL", what);
	failed |= !ok;
}

int rc_failed(void)
{
	return failed;
}


/* ---- a connection, as libdsm makes one ---------------------------------- */

static int handshake(struct dsm_transport *t, const char *addr)
{
	struct dsm_hello h = { DSM_PROTO_VERSION, DSM_PROTO_VERSION,
			       DSM_PAGE_SIZE, 0 };
	uint8_t body[DSM_HELLO_SIZE], rep[DSM_HELLO_REPLY_SIZE];
	uint8_t proof[DSM_AUTH_MSG_SIZE];
	struct dsm_hello_reply r;
	struct dsm_auth_msg m;
	uint32_t len;
	int err;

	dsm_auth_random(&h.nonce, sizeof(h.nonce));
	dsm_hello_encode(&h, body);
	err = dsm_transport_call_sync(rc_ops, t, DSM_MSG_HELLO, body, sizeof(body),
				      rep, sizeof(rep), &len);
	if (!err)
		err = dsm_hello_reply_decode(rep, len, &r);
	if (err || !(r.flags & DSM_HELLO_RDMA)) {
		fprintf(stderr, "rdma_check: HELLO to %s: %s\n", addr,
			err ? strerror(-err) : "not an RDMA connection");
		return err ? err : -EPROTO;
	}
	if (!(r.flags & DSM_HELLO_AUTH))
		return 0;
	if (!has_key) {
		fprintf(stderr, "rdma_check: %s wants DSM_SECRET_FILE\n", addr);
		return -EACCES;
	}
	dsm_auth_mac(&key, 'c', r.server_nonce, h.nonce, r.server_id, m.mac);
	dsm_auth_msg_encode(&m, proof);
	return dsm_transport_call_sync(rc_ops, t, DSM_MSG_AUTH, proof,
				       sizeof(proof), rep, sizeof(rep), &len);
}

struct dsm_transport *rc_open(const char *addr,
			      const struct dsm_transport_events *ev)
{
	struct dsm_transport *t;
	int err = rc_ops->connect(addr, ev, &t);

	if (!err && (err = handshake(t, addr)))
		rc_ops->close(t);
	if (err) {
		fprintf(stderr, "rdma_check: cannot connect to %s: %s\n", addr,
			strerror(-err));
		exit(2);
	}
	return t;
}

static struct dsm_alloc_reply alloc(struct dsm_transport *t)
{
	struct dsm_alloc_req q = { PAGES * DSM_PAGE_SIZE };
	uint8_t body[DSM_ALLOC_REQ_SIZE], rep[DSM_ALLOC_REPLY_SIZE];
	struct dsm_alloc_reply a;
	uint32_t len;

	dsm_alloc_req_encode(&q, body);
	if (dsm_transport_call_sync(rc_ops, t, DSM_MSG_ALLOC, body, sizeof(body),
				    rep, sizeof(rep), &len) ||
	    dsm_alloc_reply_decode(rep, len, &a) || !a.rkey) {
		fprintf(stderr, "rdma_check: ALLOC failed\n");
		exit(2);
	}
	return a;
}

static int free_region(struct dsm_transport *t, uint64_t id)
{
	struct dsm_free_req q = { id };
	uint8_t body[DSM_FREE_REQ_SIZE];

	dsm_free_req_encode(&q, body);
	return dsm_transport_call_sync(rc_ops, t, DSM_MSG_FREE, body, sizeof(body),
				       NULL, 0, NULL);
}

/* Staging pages for WRITEs, announced like the engine's stage pool. */
static uint8_t *stage_pages(uint8_t *page[PAGES])
{
	uint8_t *m = aligned_alloc(DSM_PAGE_SIZE, PAGES * DSM_PAGE_SIZE);

	if (!m)
		exit(2);
	dsm_transport_mem_add(m, PAGES * DSM_PAGE_SIZE);
	for (int i = 0; i < PAGES; i++)
		page[i] = m + (size_t)i * DSM_PAGE_SIZE;
	return m;
}

static bool all_bytes(const uint8_t *p, size_t len, uint8_t v)
{
	for (size_t i = 0; i < len; i++)
		if (p[i] != v)
			return false;
	return true;
}

/* ---- stale-rkey ----------------------------------------------------------- */

static int raw_read(struct dsm_transport *t, uint64_t addr, uint32_t rkey)
{
	struct result r = { 0 }, *rs[] = { &r };
	int err = dsm_rdma_read_raw(t, addr, rkey, 1, on_done, &r);

	if (err)
		return err;
	wait_all(t, rs, 1);
	return r.status;
}

static int stale_rkey(const char *addr)
{
	struct dsm_transport *a = rc_open(addr, NULL), *b = rc_open(addr, NULL), *c;
	struct dsm_alloc_reply ra = alloc(a), rc;
	struct result w = { 0 }, rd = { 0 }, *ws[] = { &w }, *rds[] = { &rd };
	uint8_t *page[PAGES], *m = stage_pages(page);
	int err;

	memset(m, 0xab, PAGES * DSM_PAGE_SIZE);
	rc_ops->write_pages(a, ra.region_id, ra.pool_off, PAGES, page, on_done, &w);
	wait_all(a, ws, 1);
	err = raw_read(a, ra.addr, ra.rkey);
	rc_check(!w.status && !err, "a region's own connection reads it");

	err = raw_read(b, ra.addr, ra.rkey);
	printf("  READ through another connection: %s\n", strerror(-err));
	rc_check(err == -EACCES, "its rkey does nothing on another connection");

	rc_check(!free_region(a, ra.region_id), "FREE");
	c = rc_open(addr, NULL);
	rc = alloc(c);
	printf("  freed region at pool offset %#llx, the new one at %#llx\n",
	       (unsigned long long)ra.pool_off, (unsigned long long)rc.pool_off);
	rc_ops->read_pages(c, rc.region_id, rc.pool_off, PAGES, on_done, &rd);
	wait_all(c, rds, 1);
	rc_check(!rd.status && all_bytes(rd.data, sizeof(rd.data), 0),
	      "the extent's next owner reads zeros");
	err = raw_read(a, ra.addr, ra.rkey);
	printf("  READ with the freed region's rkey: %s\n", strerror(-err));
	rc_check(err == -EACCES, "a freed region's rkey reads nothing, "
	      "even where another region now lives");
	rc_ops->close(a);
	rc_ops->close(b);
	rc_ops->close(c);
	return failed;
}

/* ---- discard-order --------------------------------------------------------- */

static bool one_round(struct dsm_transport *t, const struct dsm_alloc_reply *ra,
		      uint8_t *m, uint8_t *const *page, int round)
{
	struct dsm_rw_req q = { ra->region_id, ra->pool_off, PAGES, 0 };
	struct result w1 = { 0 }, d = { 0 }, w2 = { 0 }, rd = { 0 };
	struct result *first[] = { &w1, &d, &w2 }, *last[] = { &rd };
	uint8_t body[DSM_RW_REQ_SIZE];
	uint8_t v = 1 + round % 250;

	dsm_rw_req_encode(&q, body);
	memset(m, v, PAGES * DSM_PAGE_SIZE);
	rc_ops->write_pages(t, ra->region_id, ra->pool_off, PAGES, page, on_done,
			 &w1);
	wait_all(t, first, 1);
	rc_ops->call(t, DSM_MSG_DISCARD, body, sizeof(body), on_done, &d);
	/* the pages are free again: the caller may change them now */
	memset(m, v + 1, PAGES * DSM_PAGE_SIZE);
	rc_ops->write_pages(t, ra->region_id, ra->pool_off, PAGES, page, on_done,
			 &w2);
	wait_all(t, first, 3);
	usleep(SETTLE_US);
	rc_ops->read_pages(t, ra->region_id, ra->pool_off, PAGES, on_done, &rd);
	wait_all(t, last, 1);
	return !w1.status && !d.status && !w2.status && !rd.status &&
	       all_bytes(rd.data, sizeof(rd.data), v + 1);
}

static int discard_order(const char *addr)
{
	struct dsm_transport *t = rc_open(addr, NULL);
	struct dsm_alloc_reply ra = alloc(t);
	uint8_t *page[PAGES], *m = stage_pages(page);
	bool unordered = getenv("DSM_TEST_RDMA_UNORDERED") != NULL;
	int wrong = 0;

	for (int i = 0; i < ROUNDS; i++)
		wrong += !one_round(t, &ra, m, page, i);
	printf("  %d of %d rounds lost the WRITE after a DISCARD%s\n", wrong,
	       ROUNDS, unordered ? " (WRITEs not held: DSM_TEST_RDMA_UNORDERED)"
				  : "");
	if (unordered)
		rc_check(wrong > 0, "without the hold, a DISCARD zeroes a later "
		      "WRITE (the hazard the hold prevents)");
	else
		rc_check(wrong == 0, "a WRITE after a DISCARD survives it");
	rc_ops->close(t);
	return failed;
}

int main(int argc, char **argv)
{
	const char *secret = getenv("DSM_SECRET_FILE");
	char msg[512];

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc != 3) {
		fprintf(stderr, "usage: rdma_check stale-rkey|discard-order|"
			"inval-flow HOST:PORT\n");
		return 2;
	}
	if (!dsm_rdma_available()) {
		printf("SKIP: no RDMA device here\n");
		return 77;
	}
	if (secret && *secret) {
		if (dsm_auth_load(secret, &key, msg, sizeof(msg))) {
			fprintf(stderr, "rdma_check: %s\n", msg);
			return 2;
		}
		has_key = true;
	}
	if (!strcmp(argv[1], "stale-rkey"))
		return stale_rkey(argv[2]);
	if (!strcmp(argv[1], "discard-order"))
		return discard_order(argv[2]);
	if (!strcmp(argv[1], "inval-flow"))
		return rc_inval_flow(argv[2]);
	fprintf(stderr, "rdma_check: unknown check '%s'\n", argv[1]);
	return 2;
}
