/*
 * test_shared.c - shared regions and the page directory, spoken to a real
 * dsm-server in raw protocol (room: tests).
 *
 * Each case stands in for the clients of a shared region with plain
 * connections and plays their part by hand: creating, attaching and
 * detaching, asking for pages, writing dirty pages back and
 * acknowledging INVALIDATE and RECALL, or failing to.  docs/design.md,
 * "Shared regions", says what the server must do; each case checks one
 * part of it and names what it defeats.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#define REGION_SIZE (64u << 10)
#define QUIET_MS 200       /* "nothing arrives": waited this long */
/* Longer than the quiet waits of one case added up, which a holder that
 * does acknowledge must not be closed for. */
#define INVAL_TIMEOUT "1500"
/* test_move: holders with every ACQUIRE they may have waiting. */
#define PILE_HOLDERS 5
#define PILE_EACH 16
/* test_move's region: more pages than one READ carries. */
#define MOVE_PAGES (2 * DSM_MAX_BATCH_PAGES)
/* Attaches tried past the two holders test_limits starts with: 62 fill
 * the region's 64 holders, the 63rd is one too many. */
#define SHARED_HOLDERS_TRY 63

struct share {
	uint64_t id, pool_off, size;
};

static struct th_server srv;
static uint64_t next_id = 1;

static int conn(void)
{
	int fd = th_hello_connect(srv.port);

	TH_CHECK(fd >= 0);
	return fd;
}

static void key_of(uint8_t *key, uint8_t seed)
{
	for (unsigned i = 0; i < DSM_SHARE_KEY_SIZE; i++)
		key[i] = (uint8_t)(seed * 31 + i);
}

/* SHARE_CREATE (id 0) or SHARE_ATTACH: the status, *out on success. */
static int share(int fd, uint8_t type, uint64_t id, uint64_t size,
		 uint8_t seed, struct share *out)
{
	struct dsm_share_req m = { .region_id = id, .size = size };
	uint8_t body[DSM_SHARE_REQ_SIZE], reply[DSM_ALLOC_REPLY_SIZE];
	struct dsm_alloc_reply a;
	uint32_t rlen;
	int st;

	key_of(m.key, seed);
	dsm_share_req_encode(&m, body);
	st = th_call(fd, type, next_id++, body, sizeof(body), reply,
		     sizeof(reply), &rlen);
	if (st || !out)
		return st;
	TH_CHECK(dsm_alloc_reply_decode(reply, rlen, &a) == 0);
	TH_CHECK(a.size == size && a.addr == 0 && a.rkey == 0);
	*out = (struct share){ a.region_id, a.pool_off, a.size };
	return 0;
}

static struct share create(int fd, uint8_t seed)
{
	struct share s;

	th_expect("SHARE_CREATE", share(fd, DSM_MSG_SHARE_CREATE, 0, REGION_SIZE,
				     seed, &s), 0);
	return s;
}

static void attach(int fd, const struct share *s, uint8_t seed)
{
	struct share got;

	th_expect("SHARE_ATTACH", share(fd, DSM_MSG_SHARE_ATTACH, s->id, s->size,
				     seed, &got), 0);
	TH_CHECK(got.id == s->id && got.pool_off == s->pool_off);
}

static int detach(int fd, uint64_t id)
{
	struct dsm_free_req m = { .region_id = id };
	uint8_t body[DSM_FREE_REQ_SIZE];

	dsm_free_req_encode(&m, body);
	return th_call(fd, DSM_MSG_FREE, next_id++, body, sizeof(body), NULL,
		       0, NULL);
}

/* Send an ACQUIRE of one page; its id, for the reply. */
static uint64_t acquire_send(int fd, const struct share *s, uint32_t page,
			     uint8_t mode, uint8_t flags)
{
	struct dsm_acquire m = { .region_id = s->id, .npages = 1,
				 .pool_off = s->pool_off +
					     (uint64_t)page * DSM_PAGE_SIZE,
				 .mode = mode, .flags = flags };
	uint8_t body[DSM_ACQUIRE_SIZE];
	uint64_t id = next_id++;

	dsm_acquire_encode(&m, body);
	TH_CHECK(th_send_msg(fd, DSM_MSG_ACQUIRE, 0, id, body,
			     sizeof(body)) == 0);
	return id;
}

/* The next message must be this one: its status, body in data. */
static int expect_msg(int fd, uint8_t type, uint16_t flags, uint64_t id,
		      void *data, uint32_t cap, int timeout_ms)
{
	struct dsm_hdr h;
	int err = th_recv_msg(fd, &h, data, cap, timeout_ms);

	if (err)
		return err;
	if (h.type != type || h.flags != flags || (id && h.id != id)) {
		fprintf(stderr, "got %s flags %u id %llu len %u, want %s flags %u "
			"id %llu\n", dsm_msg_name(h.type), h.flags,
			(unsigned long long)h.id, h.len, dsm_msg_name(type), flags,
			(unsigned long long)id);
		exit(1);
	}
	return h.status;
}

/* A granted ACQUIRE; with data, the page lands in page. */
static void expect_grant(int fd, uint64_t id, void *page, int timeout_ms)
{
	th_expect("ACQUIRE reply", expect_msg(fd, DSM_MSG_ACQUIRE, DSM_F_REPLY,
					   id, page, page ? DSM_PAGE_SIZE : 0,
					   timeout_ms), 0);
}

static void expect_quiet(int fd, const char *what)
{
	struct dsm_hdr h;

	th_expect(what, th_recv_msg(fd, &h, NULL, 0, QUIET_MS), -ETIMEDOUT);
}

/* An INVALIDATE or RECALL of pages [page, page + n): its id, to
 * acknowledge. */
static uint64_t expect_inval_run(int fd, uint8_t type, const struct share *s,
				 uint32_t page, uint32_t n)
{
	uint8_t body[DSM_RW_REQ_SIZE];
	struct dsm_rw_req run;
	struct dsm_hdr h;

	th_expect("INVALIDATE/RECALL", th_recv_msg(fd, &h, body, sizeof(body),
						TH_TIMEOUT_MS), 0);
	th_expect("its type", h.type, type);
	TH_CHECK(h.flags == DSM_F_SERVER && h.id != 0);
	TH_CHECK(dsm_rw_req_decode(type, body, h.len, &run) == 0);
	TH_CHECK(run.region_id == s->id && run.npages == n &&
		 run.pool_off == s->pool_off + (uint64_t)page * DSM_PAGE_SIZE);
	return h.id;
}

/* An INVALIDATE or RECALL of page `page`: its id, to acknowledge. */
static uint64_t expect_inval(int fd, uint8_t type, const struct share *s,
			     uint32_t page)
{
	return expect_inval_run(fd, type, s, page, 1);
}

static void ack(int fd, uint64_t inval_id)
{
	struct dsm_inval_ack m = { .inval_id = inval_id };
	uint8_t body[DSM_INVAL_ACK_SIZE];

	dsm_inval_ack_encode(&m, body);
	TH_CHECK(th_send_msg(fd, DSM_MSG_INVAL_ACK, 0, next_id, body,
			     sizeof(body)) == 0);
	th_expect("INVAL_ACK's reply", expect_msg(fd, DSM_MSG_INVAL_ACK,
					       DSM_F_REPLY, next_id++, NULL,
					       0, TH_TIMEOUT_MS), 0);
}

static int write_page(int fd, const struct share *s, uint32_t page,
		      uint8_t fill)
{
	struct dsm_rw_req m = { .region_id = s->id, .npages = 1,
				.pool_off = s->pool_off +
					    (uint64_t)page * DSM_PAGE_SIZE };
	uint8_t body[DSM_RW_REQ_SIZE + DSM_PAGE_SIZE];

	dsm_rw_req_encode(&m, body);
	memset(body + DSM_RW_REQ_SIZE, fill, DSM_PAGE_SIZE);
	return th_call(fd, DSM_MSG_WRITE, next_id++, body, sizeof(body), NULL,
		       0, NULL);
}

static int read_page(int fd, const struct share *s, uint32_t page,
		     uint8_t *out)
{
	struct dsm_rw_req m = { .region_id = s->id, .npages = 1,
				.pool_off = s->pool_off +
					    (uint64_t)page * DSM_PAGE_SIZE };
	uint8_t body[DSM_RW_REQ_SIZE];

	dsm_rw_req_encode(&m, body);
	return th_call(fd, DSM_MSG_READ, next_id++, body, sizeof(body), out,
		       DSM_PAGE_SIZE, NULL);
}

static void expect_filled(const uint8_t *page, uint8_t fill, const char *what)
{
	for (unsigned i = 0; i < DSM_PAGE_SIZE; i++)
		if (page[i] != fill) {
			fprintf(stderr, "%s: byte %u is %u, want %u\n", what, i,
				page[i], fill);
			exit(1);
		}
}

static struct dsm_server_stats stats(void)
{
	uint8_t reply[DSM_SERVER_STATS_SIZE];
	struct dsm_server_stats st;
	uint32_t rlen;
	int fd = conn();

	th_expect("STATS", th_call(fd, DSM_MSG_STATS, next_id++, NULL, 0, reply,
				sizeof(reply), &rlen), 0);
	TH_CHECK(dsm_server_stats_decode(reply, rlen, &st) == 0);
	close(fd);
	return st;
}

/* The server frees a closed connection's holdings when it sees the
 * close: wait (bounded) for its region count to come down to want. */
static void wait_regions(uint64_t want, const char *what)
{
	for (int i = 0; i < 100; i++) {
		if (stats().regions == want)
			return;
		usleep(20000);
	}
	th_expect(what, stats().regions, want);
}

/*
 * Create, attach (by id and by key), detach, lifetime.  Defeats: a key
 * not checked (a wrong key attaches), a key created twice, a size not
 * checked, a region freed with its creator or
 * never freed (by the last FREE, by the last session's end).
 */
static void test_lifetime(void)
{
	uint64_t base = stats().regions, used = stats().used;
	int a = conn(), b = conn(), c = conn();
	uint8_t page[DSM_PAGE_SIZE];
	struct share s = create(a, 1), t;

	th_expect("wrong key", share(b, DSM_MSG_SHARE_ATTACH, s.id, s.size, 2,
				  NULL), -ENOENT);
	th_expect("no such id", share(b, DSM_MSG_SHARE_ATTACH, s.id + 1000,
				   s.size, 1, NULL), -ENOENT);
	th_expect("wrong size", share(b, DSM_MSG_SHARE_ATTACH, s.id,
				   s.size * 2, 1, NULL), -EINVAL);
	th_expect("attach twice", share(a, DSM_MSG_SHARE_ATTACH, s.id, s.size, 1,
				     NULL), -EEXIST);
	th_expect("a stranger reads", read_page(b, &s, 0, page), -ENOENT);
	th_expect("create a key in use", share(b, DSM_MSG_SHARE_CREATE, 0,
					    s.size, 1, NULL), -EEXIST);
	th_expect("wrong key, by key", share(b, DSM_MSG_SHARE_ATTACH, 0, s.size,
					  2, NULL), -ENOENT);
	th_expect("attach by key", share(b, DSM_MSG_SHARE_ATTACH, 0, s.size, 1,
				      &t), 0);
	TH_CHECK(t.id == s.id && t.pool_off == s.pool_off);
	th_expect("detach the one by key", detach(b, s.id), 0);
	attach(b, &s, 1);
	expect_grant(a, acquire_send(a, &s, 0, DSM_ACQ_WRITE, 0), NULL,
		     TH_TIMEOUT_MS);
	th_expect("owner writes", write_page(a, &s, 0, 0x5a), 0);
	th_expect("creator detaches", detach(a, s.id), 0);
	th_expect("detached reads", read_page(a, &s, 0, page), -ENOENT);
	th_expect("holder reads", read_page(b, &s, 0, page), 0);
	expect_filled(page, 0x5a, "after the creator left");
	th_expect("regions while held", stats().regions, base + 1);
	th_expect("last detach", detach(b, s.id), 0);
	th_expect("regions after the last detach", stats().regions, base);
	th_expect("used after the last detach", stats().used, used);
	th_expect("attach a freed region", share(c, DSM_MSG_SHARE_ATTACH, s.id,
					      s.size, 1, NULL), -ENOENT);

	/* Freed by the end of its last holder's session too. */
	t = create(a, 3);
	attach(b, &t, 3);
	close(a);
	wait_regions(base + 1, "regions after the creator's end");
	close(b);
	wait_regions(base, "regions after the last holder's end");
	th_expect("used after the last end", stats().used, used);
	close(c);
}

/*
 * A dirty owner recalled by a reader writes back before its ack, and the
 * reader gets that data; then a write with two sharers: both get
 * INVALIDATE, and the reply waits for both acks.  Defeats: granting
 * without waiting for acknowledgements, a RECALL or INVALIDATE not sent,
 * the reply's data read before the write-back, a stale copy still
 * allowed to write back.
 */
static void test_invalidate(void)
{
	int a = conn(), b = conn(), c = conn();
	uint8_t page[DSM_PAGE_SIZE];
	struct share s = create(a, 4);
	uint64_t rd, wr, inv_b, inv_c, rc;

	attach(b, &s, 4);
	attach(c, &s, 4);
	expect_grant(a, acquire_send(a, &s, 1, DSM_ACQ_WRITE, DSM_ACQ_DATA),
		     page, TH_TIMEOUT_MS);
	expect_filled(page, 0, "a fresh page");
	th_expect("owner writes", write_page(a, &s, 1, 0x11), 0);

	/* B reads: A is recalled, writes its dirty page back, then acks. */
	rd = acquire_send(b, &s, 1, DSM_ACQ_READ, DSM_ACQ_DATA);
	rc = expect_inval(a, DSM_MSG_RECALL, &s, 1);
	expect_quiet(b, "a read before the owner's ack");
	th_expect("write-back before the ack", write_page(a, &s, 1, 0x22), 0);
	ack(a, rc);
	expect_grant(b, rd, page, TH_TIMEOUT_MS);
	expect_filled(page, 0x22, "the recalled owner's write-back");

	/* C reads too: nobody owns the page now, so no RECALL. */
	expect_grant(c, acquire_send(c, &s, 1, DSM_ACQ_READ, DSM_ACQ_DATA),
		     page, TH_TIMEOUT_MS);
	expect_filled(page, 0x22, "a second reader");
	expect_quiet(a, "a sharer's read recalls nobody");

	/* A writes: B and C (sharers) are invalidated; A kept a read-only
	 * copy after the recall and is not. */
	wr = acquire_send(a, &s, 1, DSM_ACQ_WRITE, 0);
	inv_b = expect_inval(b, DSM_MSG_INVALIDATE, &s, 1);
	inv_c = expect_inval(c, DSM_MSG_INVALIDATE, &s, 1);
	TH_CHECK(inv_b == inv_c);
	expect_quiet(a, "a write before any ack");
	ack(b, inv_b);
	expect_quiet(a, "a write after one ack of two");
	ack(c, inv_c);
	expect_grant(a, wr, NULL, TH_TIMEOUT_MS);
	th_expect("an invalidated copy writes back", write_page(b, &s, 1, 0x33),
	       -EPERM);
	th_expect("a sharer writes", write_page(c, &s, 1, 0x33), -EPERM);
	th_expect("the owner writes", write_page(a, &s, 1, 0x44), 0);
	close(a);
	close(b);
	close(c);
}

/*
 * An owner that has acknowledged may no longer write, though another
 * holder of the same op has yet to: X owns page 0, Y shares page 1, R
 * asks to write both.  X writes back and acks; a later WRITE of X's is
 * refused, and R's grant carries the write-back, not what came after.
 * Defeats: ownership kept until the op's last ack (the WRITE is taken).
 */
static void test_ack_disowns(void)
{
	int x = conn(), y = conn(), r = conn();
	struct share s = create(x, 12);
	struct dsm_acquire m = { .region_id = s.id, .pool_off = s.pool_off,
				 .npages = 2, .mode = DSM_ACQ_WRITE,
				 .flags = DSM_ACQ_DATA };
	uint8_t body[DSM_ACQUIRE_SIZE], pages[2 * DSM_PAGE_SIZE];
	uint64_t wr = next_id++, inv_x, inv_y;
	struct dsm_hdr h;

	attach(y, &s, 12);
	attach(r, &s, 12);
	expect_grant(x, acquire_send(x, &s, 0, DSM_ACQ_WRITE, 0), NULL,
		     TH_TIMEOUT_MS);
	expect_grant(y, acquire_send(y, &s, 1, DSM_ACQ_READ, 0), NULL,
		     TH_TIMEOUT_MS);
	dsm_acquire_encode(&m, body);
	TH_CHECK(th_send_msg(r, DSM_MSG_ACQUIRE, 0, wr, body,
			     sizeof(body)) == 0);
	th_expect("X's INVALIDATE", th_recv_msg(x, &h, NULL, 0, TH_TIMEOUT_MS),
	       0);
	TH_CHECK(h.type == DSM_MSG_INVALIDATE);
	inv_x = h.id;
	th_expect("Y's INVALIDATE", th_recv_msg(y, &h, NULL, 0, TH_TIMEOUT_MS),
	       0);
	TH_CHECK(h.type == DSM_MSG_INVALIDATE);
	inv_y = h.id;
	th_expect("X writes back", write_page(x, &s, 0, 0x22), 0);
	ack(x, inv_x);
	th_expect("X writes after its ack", write_page(x, &s, 0, 0x33), -EPERM);
	ack(y, inv_y);
	th_expect("R's grant", expect_msg(r, DSM_MSG_ACQUIRE, DSM_F_REPLY, wr,
				       pages, sizeof(pages), TH_TIMEOUT_MS), 0);
	expect_filled(pages, 0x22, "the write-back before the ack");
	close(x);
	close(y);
	close(r);
}

/*
 * A holder that never acknowledges is closed after --inval-timeout-ms,
 * and the writer granted; its page reads as it was last written back.
 * Defeats: no timeout (the writer waits for ever).
 */
static void test_timeout(void)
{
	int a = conn(), b = conn();
	uint8_t page[DSM_PAGE_SIZE];
	struct share s = create(a, 5);
	uint64_t wr;

	attach(b, &s, 5);
	expect_grant(a, acquire_send(a, &s, 2, DSM_ACQ_WRITE, 0), NULL,
		     TH_TIMEOUT_MS);
	th_expect("owner writes", write_page(a, &s, 2, 0x66), 0);
	wr = acquire_send(b, &s, 2, DSM_ACQ_WRITE, DSM_ACQ_DATA);
	expect_inval(a, DSM_MSG_INVALIDATE, &s, 2);
	/* A never acks (its copy, newer perhaps, is forfeit). */
	expect_quiet(b, "before the timeout");
	expect_grant(b, wr, page, TH_TIMEOUT_MS);
	expect_filled(page, 0x66, "the silent holder's last write-back");
	th_expect("the silent holder is closed", th_wait_eof(a, TH_TIMEOUT_MS), 0);
	close(a);
	close(b);
}

/*
 * Two writers after one owner: granted in turn, each after the one
 * before it acknowledged.  Defeats: no queue at the page (the second
 * writer starts while the first's invalidation is in progress).
 */
static void test_two_writers(void)
{
	int a = conn(), b = conn(), c = conn();
	struct share s = create(a, 6);
	uint64_t wb, wc, inv;

	attach(b, &s, 6);
	attach(c, &s, 6);
	expect_grant(a, acquire_send(a, &s, 3, DSM_ACQ_WRITE, 0), NULL,
		     TH_TIMEOUT_MS);
	wb = acquire_send(b, &s, 3, DSM_ACQ_WRITE, 0);
	inv = expect_inval(a, DSM_MSG_INVALIDATE, &s, 3);
	wc = acquire_send(c, &s, 3, DSM_ACQ_WRITE, 0);
	expect_quiet(b, "first writer before the owner's ack");
	expect_quiet(c, "second writer, queued");
	ack(a, inv);
	expect_grant(b, wb, NULL, TH_TIMEOUT_MS);
	inv = expect_inval(b, DSM_MSG_INVALIDATE, &s, 3);
	expect_quiet(c, "second writer before the first's ack");
	expect_quiet(a, "an invalidated holder is not asked again");
	ack(b, inv);
	expect_grant(c, wc, NULL, TH_TIMEOUT_MS);
	th_expect("the last writer owns it", write_page(c, &s, 3, 0x77), 0);
	th_expect("the first does not", write_page(b, &s, 3, 0x77), -EPERM);
	close(a);
	close(b);
	close(c);
}

/*
 * While an ACQUIRE waits, its connection keeps being served: a PING, a
 * READ and another ACQUIRE sent after it are answered first.  Defeats:
 * a session that stops handling requests behind a deferred reply.
 */
static void test_out_of_order(void)
{
	int a = conn(), b = conn();
	uint8_t page[DSM_PAGE_SIZE];
	struct share s = create(a, 7);
	uint64_t wr, inv, ping;

	attach(b, &s, 7);
	expect_grant(b, acquire_send(b, &s, 4, DSM_ACQ_WRITE, 0), NULL,
		     TH_TIMEOUT_MS);
	wr = acquire_send(a, &s, 4, DSM_ACQ_WRITE, 0);
	inv = expect_inval(b, DSM_MSG_INVALIDATE, &s, 4);
	ping = next_id++;
	TH_CHECK(th_send_msg(a, DSM_MSG_PING, 0, ping, NULL, 0) == 0);
	th_expect("PING behind a deferred reply",
	       expect_msg(a, DSM_MSG_PING, DSM_F_REPLY, ping, NULL, 0,
			  TH_TIMEOUT_MS), 0);
	th_expect("READ behind it", read_page(a, &s, 5, page), 0);
	expect_grant(a, acquire_send(a, &s, 5, DSM_ACQ_READ, 0), NULL,
		     TH_TIMEOUT_MS);
	ack(b, inv);
	expect_grant(a, wr, NULL, TH_TIMEOUT_MS);
	close(a);
	close(b);
}

static uint64_t move_send(int fd, const struct share *s, uint32_t step)
{
	struct dsm_share_move m = { .region_id = s->id, .step = step };
	uint8_t body[DSM_SHARE_MOVE_SIZE];
	uint64_t id = next_id++;

	dsm_share_move_encode(&m, body);
	TH_CHECK(th_send_msg(fd, DSM_MSG_SHARE_MOVE, 0, id, body,
			     sizeof(body)) == 0);
	return id;
}

/* SHARE_MOVE answered at once (or an error): its status. */
static int move(int fd, const struct share *s, uint32_t step)
{
	return expect_msg(fd, DSM_MSG_SHARE_MOVE, DSM_F_REPLY,
			  move_send(fd, s, step), NULL, 0, TH_TIMEOUT_MS);
}

/* A LOCK of token 2 at offset, sent: its id. */
static uint64_t lock_send(int fd, const struct share *s, uint64_t offset)
{
	struct dsm_lock_req m = { .region_id = s->id, .offset = offset,
				  .token = 2 };
	uint8_t body[DSM_LOCK_REQ_SIZE];
	uint64_t id = next_id++;

	dsm_lock_req_encode(&m, body);
	TH_CHECK(th_send_msg(fd, DSM_MSG_LOCK, 0, id, body, sizeof(body)) == 0);
	return id;
}

static int lock(int fd, const struct share *s, uint8_t type, uint64_t offset)
{
	struct dsm_lock_req m = { .region_id = s->id, .offset = offset,
				  .token = 1 };
	uint8_t body[DSM_LOCK_REQ_SIZE], rep[DSM_LOCK_REPLY_SIZE];

	dsm_lock_req_encode(&m, body);
	return th_call(fd, type, next_id++, body, sizeof(body), rep,
		       sizeof(rep), NULL);
}

/* SHARE_PROMOTE of the standby s by fd, under the key of seed, sent:
 * its id. */
static uint64_t promote_send(int fd, const struct share *s, uint8_t seed)
{
	struct dsm_share_req m = { .region_id = s->id, .size = s->size };
	uint8_t body[DSM_SHARE_REQ_SIZE];
	uint64_t id = next_id++;

	key_of(m.key, seed);
	dsm_share_req_encode(&m, body);
	TH_CHECK(th_send_msg(fd, DSM_MSG_SHARE_PROMOTE, 0, id, body,
			     sizeof(body)) == 0);
	return id;
}

static int promote(int fd, const struct share *s, uint8_t seed)
{
	return expect_msg(fd, DSM_MSG_SHARE_PROMOTE, DSM_F_REPLY,
			  promote_send(fd, s, seed), NULL, 0, TH_TIMEOUT_MS);
}

/* A LOCK with DSM_LOCK_RECLAIM at offset, token 1. */
static int reclaim(int fd, const struct share *s, uint64_t offset)
{
	struct dsm_lock_req m = { .region_id = s->id, .offset = offset,
				  .token = 1, .flags = DSM_LOCK_RECLAIM };
	uint8_t body[DSM_LOCK_REQ_SIZE], rep[DSM_LOCK_REPLY_SIZE];

	dsm_lock_req_encode(&m, body);
	return th_call(fd, DSM_MSG_LOCK, next_id++, body, sizeof(body), rep,
		       sizeof(rep), NULL);
}

/*
 * A standby (a replicated region's second copy) and its promotion.
 * Before it: every holder may WRITE, nothing is granted (B's ACQUIRE
 * waits), LOCK gets -EAGAIN and only a reclaim is granted (once: a
 * second holder's reclaim of the same lock is -EBUSY).  A's PROMOTE
 * gives it the name's key (C attaches by it, and counts as promoted);
 * B's ACQUIRE is granted only after B's PROMOTE, with what A and B wrote.
 * After it a reclaim is refused.  A holder that never promotes is closed
 * after the INVAL_ACK timeout and the others are served.  A new standby
 * (STANDBY_SET by the sealer) answers the ACQUIRE waiting behind the
 * seal, and a holder's next one, -ENOLINK until its STANDBY_SEEN.
 * Defeats: a
 * standby that grants before every holder promoted (B's grant comes
 * after A's PROMOTE), a WRITE refused (no owner at a standby).
 */
static void test_standby(void)
{
	int a = conn(), b = conn(), c = conn(), d = conn(), e = conn();
	uint8_t page[DSM_PAGE_SIZE];
	struct share s, t, u, got;
	uint64_t acq, id;

	th_expect("SHARE_CREATE standby", share(a, DSM_MSG_SHARE_CREATE,
		  DSM_SHARE_CREATE_STANDBY, REGION_SIZE, 40, &s), 0);
	attach(b, &s, 40);
	th_expect("A writes", write_page(a, &s, 0, 0x5a), 0);
	th_expect("B writes", write_page(b, &s, 1, 0x5b), 0);
	acq = acquire_send(b, &s, 1, DSM_ACQ_WRITE, DSM_ACQ_DATA);
	expect_quiet(b, "an ACQUIRE at a standby");
	th_expect("LOCK at a standby", lock(a, &s, DSM_MSG_LOCK, 8), -EAGAIN);
	th_expect("a reclaim", reclaim(a, &s, 8), 0);
	th_expect("a second reclaim", reclaim(b, &s, 8), -EBUSY);
	u = create(c, 45);
	th_expect("a PROMOTE under a name in use", promote(a, &s, 45), -EEXIST);
	th_expect("its holder detaches", detach(c, u.id), 0);
	th_expect("A's PROMOTE", promote(a, &s, 41), 0);
	th_expect("a PROMOTE under another name", promote(a, &s, 42), -EINVAL);
	expect_quiet(b, "an ACQUIRE before B's PROMOTE");
	th_expect("attach by the name", share(c, DSM_MSG_SHARE_ATTACH, 0,
					      REGION_SIZE, 41, &got), 0);
	id = promote_send(b, &s, 41);
	expect_grant(b, acq, page, TH_TIMEOUT_MS); /* granted as it promotes */
	th_expect("B's PROMOTE", expect_msg(b, DSM_MSG_SHARE_PROMOTE,
					    DSM_F_REPLY, id, NULL, 0,
					    TH_TIMEOUT_MS), 0);
	expect_filled(page, 0x5b, "B's page as B wrote it");
	th_expect("A's page", read_page(c, &s, 0, page), 0);
	expect_filled(page, 0x5a, "A's page as A wrote it");
	th_expect("a reclaim after", reclaim(b, &s, 16), -EINVAL);
	th_expect("PROMOTE again", promote(a, &s, 41), 0);
	th_expect("A unlocks", lock(a, &s, DSM_MSG_UNLOCK, 8), 0);

	/* a new standby made with the region sealed: an ACQUIRE waiting
	 * then, and any later one of a holder that has not said it holds
	 * it, is -ENOLINK; STANDBY_SEEN lets it be granted */
	id = move_send(a, &s, DSM_MOVE_SEAL); /* B's copies go */
	ack(b, expect_inval_run(b, DSM_MSG_INVALIDATE, &s, 0,
				REGION_SIZE / DSM_PAGE_SIZE));
	th_expect("SEAL", expect_msg(a, DSM_MSG_SHARE_MOVE, DSM_F_REPLY, id,
				     NULL, 0, TH_TIMEOUT_MS), 0);
	acq = acquire_send(b, &s, 4, DSM_ACQ_READ, DSM_ACQ_DATA);
	expect_quiet(b, "an ACQUIRE while sealed");
	th_expect("STANDBY_SET by another than the sealer",
		  move(b, &s, DSM_MOVE_STANDBY_SET), -EPERM);
	th_expect("STANDBY_SET", move(a, &s, DSM_MOVE_STANDBY_SET), 0);
	th_expect("the waiting ACQUIRE", expect_msg(b, DSM_MSG_ACQUIRE,
		  DSM_F_REPLY, acq, NULL, 0, TH_TIMEOUT_MS), -ENOLINK);
	th_expect("UNSEAL", move(a, &s, DSM_MOVE_UNSEAL), 0);
	acq = acquire_send(b, &s, 4, DSM_ACQ_READ, DSM_ACQ_DATA);
	th_expect("an ACQUIRE before STANDBY_SEEN", expect_msg(b,
		  DSM_MSG_ACQUIRE, DSM_F_REPLY, acq, NULL, 0, TH_TIMEOUT_MS),
		  -ENOLINK);
	acq = acquire_send(a, &s, 4, DSM_ACQ_READ, DSM_ACQ_DATA);
	expect_grant(a, acq, page, TH_TIMEOUT_MS); /* the sealer holds it */
	th_expect("STANDBY_SEEN", move(b, &s, DSM_MOVE_STANDBY_SEEN), 0);
	acq = acquire_send(b, &s, 4, DSM_ACQ_READ, DSM_ACQ_DATA);
	expect_grant(b, acq, page, TH_TIMEOUT_MS);

	/* a standby created sealed is being filled: nobody attaches to it
	 * until its creator unseals it */
	th_expect("SHARE_CREATE standby, sealed", share(d, DSM_MSG_SHARE_CREATE,
		  DSM_SHARE_CREATE_STANDBY | DSM_SHARE_CREATE_SEALED,
		  REGION_SIZE, 46, &u), 0);
	th_expect("attach to it while filled", share(e, DSM_MSG_SHARE_ATTACH,
		  u.id, REGION_SIZE, 46, NULL), -EAGAIN);
	th_expect("its creator fills it", write_page(d, &u, 0, 0x46), 0);
	th_expect("UNSEAL", move(d, &u, DSM_MOVE_UNSEAL), 0);
	th_expect("attach once filled", share(e, DSM_MSG_SHARE_ATTACH, u.id,
					      REGION_SIZE, 46, &got), 0);
	th_expect("E detaches", detach(e, u.id), 0);
	th_expect("D detaches", detach(d, u.id), 0);

	th_expect("SHARE_CREATE standby", share(d, DSM_MSG_SHARE_CREATE,
		  DSM_SHARE_CREATE_STANDBY, REGION_SIZE, 43, &t), 0);
	attach(e, &t, 43);
	th_expect("D's PROMOTE", promote(d, &t, 44), 0);
	acq = acquire_send(d, &t, 0, DSM_ACQ_WRITE, DSM_ACQ_DATA);
	th_expect("the holder that never promotes is closed",
		  th_wait_eof(e, TH_TIMEOUT_MS), 0);
	expect_grant(d, acq, page, TH_TIMEOUT_MS);
	close(a), close(b), close(c), close(d), close(e);
}

/*
 * Moving a shared region's home.  A seal waits while a lock is held
 * (LOCKs waiting and new ones get -EAGAIN, but for the holder's, and
 * pages are still granted; UNSEAL cancels it);
 * then it waits for every copy, the sealer's own too (A owns
 * a dirty page and B shares another: both are invalidated, A's
 * write-back lands before its ack, and the seal is answered after the
 * last ack).  Sealed, nothing is granted (B's ACQUIRE waits), no lock is
 * taken (-EAGAIN), and another seal is refused; the sealer can still
 * READ the pool, and WRITE to it (a mover fills the region it seals at
 * the new home), and nobody else may.  Given up (UNSEAL), the waiting ACQUIRE is granted.  Sealed
 * again and MOVED (only by the sealer), every ACQUIRE, waiting or later,
 * and every LOCK and attach is -ESTALE, and nobody may write; a sealer that leaves without MOVED gives
 * the move up.  Five more holders with 16 ACQUIREs each waiting while
 * sealed (80 in one region) are all answered -ESTALE, none refused.
 * A region created sealed waits for its creator to fill it
 * and unseal it.  Defeats: a seal that skips the sealer's copies (A's
 * INVALIDATE never comes), ACQUIREs granted while sealed.
 */
static void test_move(void)
{
	int a = conn(), b = conn();
	uint8_t page[DSM_PAGE_SIZE];
	uint32_t all = MOVE_PAGES;
	uint64_t sid, inv_a, inv_b, acq, lk, pile_id[PILE_HOLDERS][PILE_EACH];
	int pile[PILE_HOLDERS];
	struct share s;

	th_expect("SHARE_CREATE", share(a, DSM_MSG_SHARE_CREATE, 0,
					(uint64_t)all * DSM_PAGE_SIZE, 9, &s), 0);
	attach(b, &s, 9);
	expect_grant(a, acquire_send(a, &s, 0, DSM_ACQ_WRITE, 0), NULL,
		     TH_TIMEOUT_MS);
	expect_grant(b, acquire_send(b, &s, 1, DSM_ACQ_READ, 0), NULL,
		     TH_TIMEOUT_MS);
	/* a seal waits for the lock B holds; A's LOCK waiting behind it is
	 * refused, and so is a new one, while pages are still granted */
	th_expect("LOCK", lock(b, &s, DSM_MSG_LOCK, 0), 0);
	/* a seal waiting for it, given up: answered -ECANCELED, and
	 * locks are taken again */
	sid = move_send(a, &s, DSM_MOVE_SEAL);
	expect_quiet(a, "a seal while a lock is held");
	lk = move_send(a, &s, DSM_MOVE_UNSEAL);
	th_expect("the seal given up", expect_msg(a, DSM_MSG_SHARE_MOVE,
						  DSM_F_REPLY, sid, NULL, 0,
						  TH_TIMEOUT_MS), -ECANCELED);
	th_expect("UNSEAL of a waiting seal", expect_msg(a, DSM_MSG_SHARE_MOVE,
							 DSM_F_REPLY, lk, NULL,
							 0, TH_TIMEOUT_MS), 0);
	th_expect("a LOCK after", lock(b, &s, DSM_MSG_LOCK, 24), 0);
	th_expect("its UNLOCK", lock(b, &s, DSM_MSG_UNLOCK, 24), 0);
	lk = lock_send(a, &s, 0);
	expect_quiet(a, "a LOCK behind a held one");
	sid = move_send(a, &s, DSM_MOVE_SEAL);
	th_expect("the waiting LOCK", expect_msg(a, DSM_MSG_LOCK, DSM_F_REPLY,
						 lk, NULL, 0, TH_TIMEOUT_MS),
		  -EAGAIN);
	expect_quiet(a, "a seal while a lock is held");
	th_expect("a LOCK while a seal waits", lock(a, &s, DSM_MSG_LOCK, 16),
		  -EAGAIN);
	th_expect("a holder's second LOCK while a seal waits",
		  lock(b, &s, DSM_MSG_LOCK, 16), 0);
	expect_grant(b, acquire_send(b, &s, 3, DSM_ACQ_READ, 0), NULL,
		     TH_TIMEOUT_MS);
	th_expect("its UNLOCK", lock(b, &s, DSM_MSG_UNLOCK, 16), 0);
	expect_quiet(a, "a seal while one lock of two is released");
	/* the unlock lets the seal go, over the whole region (more pages
	 * than a READ carries): B's INVALIDATE comes before the UNLOCK's
	 * reply */
	{
		struct dsm_lock_req m = { .region_id = s.id, .token = 1 };
		uint8_t body[DSM_LOCK_REQ_SIZE];
		uint64_t id = next_id++;

		dsm_lock_req_encode(&m, body);
		TH_CHECK(th_send_msg(b, DSM_MSG_UNLOCK, 0, id, body,
				     sizeof(body)) == 0);
		inv_b = expect_inval_run(b, DSM_MSG_INVALIDATE, &s, 0, all);
		th_expect("UNLOCK", expect_msg(b, DSM_MSG_UNLOCK, DSM_F_REPLY,
					       id, NULL, 0, TH_TIMEOUT_MS), 0);
	}
	inv_a = expect_inval_run(a, DSM_MSG_INVALIDATE, &s, 0, all);
	TH_CHECK(inv_a == inv_b);
	th_expect("the sealer writes back first", write_page(a, &s, 0, 0x5e), 0);
	ack(a, inv_a);
	expect_quiet(a, "a seal before B's ack");
	ack(b, inv_b);
	th_expect("the seal", expect_msg(a, DSM_MSG_SHARE_MOVE, DSM_F_REPLY,
					 sid, NULL, 0, TH_TIMEOUT_MS), 0);
	th_expect("a write-back of B's after the seal",
		  write_page(b, &s, 1, 0x66), -EPERM);
	th_expect("the sealer fills the region", write_page(a, &s, 2, 0x77), 0);
	th_expect("a second seal", move(b, &s, DSM_MOVE_SEAL), -EBUSY);
	th_expect("a LOCK while sealed", lock(b, &s, DSM_MSG_LOCK, 8), -EAGAIN);
	th_expect("MOVED from another holder", move(b, &s, DSM_MOVE_MOVED),
		  -EPERM);
	acq = acquire_send(b, &s, 0, DSM_ACQ_READ, DSM_ACQ_DATA);
	expect_quiet(b, "an ACQUIRE while sealed");
	th_expect("the sealer reads the pool", read_page(a, &s, 0, page), 0);
	expect_filled(page, 0x5e, "the page written back before the seal");

	th_expect("UNSEAL", move(a, &s, DSM_MOVE_UNSEAL), 0);
	expect_grant(b, acq, page, TH_TIMEOUT_MS);
	expect_filled(page, 0x5e, "the grant after a move given up");

	/* sealed again (B's copy goes), then MOVED */
	sid = move_send(a, &s, DSM_MOVE_SEAL);
	ack(b, expect_inval_run(b, DSM_MSG_INVALIDATE, &s, 0, all));
	th_expect("the second seal", expect_msg(a, DSM_MSG_SHARE_MOVE,
						DSM_F_REPLY, sid, NULL, 0,
						TH_TIMEOUT_MS), 0);
	acq = acquire_send(b, &s, 1, DSM_ACQ_WRITE, 0);
	expect_quiet(b, "an ACQUIRE while sealed, again");
	/* more holders, each with its whole allowance waiting: more than
	 * 64 in the region, and none refused */
	for (int k = 0; k < PILE_HOLDERS; k++) {
		pile[k] = conn();
		attach(pile[k], &s, 9);
		for (uint32_t p = 0; p < PILE_EACH; p++)
			pile_id[k][p] = acquire_send(pile[k], &s, 8 + p,
						     DSM_ACQ_READ, 0);
	}
	for (int k = 0; k < PILE_HOLDERS; k++)
		expect_quiet(pile[k], "ACQUIREs piled up while sealed");
	th_expect("MOVED", move(a, &s, DSM_MOVE_MOVED), 0);
	for (int k = 0; k < PILE_HOLDERS; k++) {
		for (uint32_t p = 0; p < PILE_EACH; p++)
			th_expect("a piled-up ACQUIRE", expect_msg(pile[k],
					DSM_MSG_ACQUIRE, DSM_F_REPLY,
					pile_id[k][p], NULL, 0, TH_TIMEOUT_MS),
				  -ESTALE);
		close(pile[k]);
	}
	th_expect("the waiting ACQUIRE", expect_msg(b, DSM_MSG_ACQUIRE,
						    DSM_F_REPLY, acq, NULL, 0,
						    TH_TIMEOUT_MS), -ESTALE);
	th_expect("an ACQUIRE after", expect_msg(b, DSM_MSG_ACQUIRE,
			DSM_F_REPLY, acquire_send(b, &s, 1, DSM_ACQ_READ, 0),
			NULL, 0, TH_TIMEOUT_MS), -ESTALE);
	th_expect("a LOCK after", lock(b, &s, DSM_MSG_LOCK, 8), -ESTALE);
	th_expect("a seal after", move(b, &s, DSM_MOVE_SEAL), -ESTALE);
	th_expect("the sealer's write after", write_page(a, &s, 2, 0x78), -EPERM);
	{
		struct share got;

		th_expect("attach by key after", share(b, DSM_MSG_SHARE_ATTACH,
						       0, s.size, 9, &got),
			  -ESTALE);
	}
	th_expect("B leaves", detach(b, s.id), 0);
	th_expect("A leaves", detach(a, s.id), 0);

	/* a sealer that leaves gives the move up */
	s = create(a, 10);
	all = s.size / DSM_PAGE_SIZE;
	attach(b, &s, 10);
	sid = move_send(a, &s, DSM_MOVE_SEAL);
	th_expect("a seal with no copies", expect_msg(a, DSM_MSG_SHARE_MOVE,
			DSM_F_REPLY, sid, NULL, 0, TH_TIMEOUT_MS), 0);
	acq = acquire_send(b, &s, 0, DSM_ACQ_READ, 0);
	expect_quiet(b, "an ACQUIRE while sealed, once more");
	th_expect("the sealer leaves", detach(a, s.id), 0);
	expect_grant(b, acq, NULL, TH_TIMEOUT_MS);
	th_expect("B leaves the last", detach(b, s.id), 0);

	/* created sealed (a move's new home): filled by its creator before
	 * anyone is granted a page of it */
	th_expect("SHARE_CREATE sealed", share(a, DSM_MSG_SHARE_CREATE,
					       DSM_SHARE_CREATE_SEALED,
					       REGION_SIZE, 11, &s), 0);
	attach(b, &s, 11);
	acq = acquire_send(b, &s, 0, DSM_ACQ_READ, DSM_ACQ_DATA);
	expect_quiet(b, "an ACQUIRE of a region created sealed");
	th_expect("its creator fills it", write_page(a, &s, 0, 0x99), 0);
	th_expect("UNSEAL", move(a, &s, DSM_MOVE_UNSEAL), 0);
	expect_grant(b, acq, page, TH_TIMEOUT_MS);
	expect_filled(page, 0x99, "a page filled while sealed");
	th_expect("A leaves", detach(a, s.id), 0);
	th_expect("B leaves", detach(b, s.id), 0);
	close(a);
	close(b);
}

static int raw_call(int fd, uint8_t type, const void *body, uint32_t len)
{
	return th_call(fd, type, next_id++, body, len, NULL, 0, NULL);
}

/* Bodies that do not decode, runs outside the region, regions not held. */
static void test_malformed(int a, const struct share *s)
{
	uint8_t body[64] = { 0 };
	struct dsm_acquire q = { .region_id = s->id, .pool_off = s->pool_off,
				 .npages = 1, .mode = DSM_ACQ_READ };
	struct dsm_share_req m = { .region_id = 5, .size = REGION_SIZE };
	struct dsm_inval_ack k = { 0 };

	dsm_share_req_encode(&m, body);
	th_expect("CREATE with an id", raw_call(a, DSM_MSG_SHARE_CREATE, body,
					     DSM_SHARE_REQ_SIZE), -EINVAL);
	th_expect("CREATE cut short", raw_call(a, DSM_MSG_SHARE_CREATE, body,
					    DSM_SHARE_REQ_SIZE - 1), -EINVAL);
	m = (struct dsm_share_req){ .region_id = 0, .size = 100 };
	dsm_share_req_encode(&m, body);
	th_expect("CREATE of 100 bytes", raw_call(a, DSM_MSG_SHARE_CREATE, body,
					       DSM_SHARE_REQ_SIZE), -EINVAL);
	th_expect("ATTACH of 100 bytes", raw_call(a, DSM_MSG_SHARE_ATTACH, body,
				       DSM_SHARE_REQ_SIZE), -EINVAL);
	for (int i = 0; i < 5; i++) {
		struct dsm_acquire bad = q;

		if (i == 0) bad.mode = 3;
		if (i == 1) bad.npages = 0;
		if (i == 2) bad.npages = DSM_MAX_BATCH_PAGES + 1;
		if (i == 3) bad.flags = 0x80;
		if (i == 4) bad.pool_off += 1;
		dsm_acquire_encode(&bad, body);
		th_expect("bad ACQUIRE", raw_call(a, DSM_MSG_ACQUIRE, body,
					       DSM_ACQUIRE_SIZE), -EINVAL);
	}
	q.pool_off = s->pool_off + s->size - DSM_PAGE_SIZE;
	q.npages = 2;
	dsm_acquire_encode(&q, body);
	th_expect("ACQUIRE past the end", raw_call(a, DSM_MSG_ACQUIRE, body,
						DSM_ACQUIRE_SIZE), -ERANGE);
	q = (struct dsm_acquire){ .region_id = s->id + 999, .npages = 1,
				  .pool_off = s->pool_off, .mode = 1 };
	dsm_acquire_encode(&q, body);
	th_expect("ACQUIRE of no region", raw_call(a, DSM_MSG_ACQUIRE, body,
						DSM_ACQUIRE_SIZE), -ENOENT);
	dsm_inval_ack_encode(&k, body);
	th_expect("INVAL_ACK of id 0", raw_call(a, DSM_MSG_INVAL_ACK, body,
					     DSM_INVAL_ACK_SIZE), -EINVAL);
	th_expect("INVAL_ACK cut short", raw_call(a, DSM_MSG_INVAL_ACK, body, 4),
	       -EINVAL);
	q = (struct dsm_acquire){ .region_id = s->id, .npages = 1,
				  .pool_off = s->pool_off, .mode = 1 };
	dsm_rw_req_encode(&(struct dsm_rw_req){ .region_id = s->id,
		.pool_off = s->pool_off, .npages = 1 }, body);
	th_expect("DISCARD of a shared region", raw_call(a, DSM_MSG_DISCARD, body,
						      DSM_RW_REQ_SIZE),
	       -EOPNOTSUPP);
	/* A well-formed ack of nothing gets its empty reply all the same. */
	ack(a, 987654321);
	th_expect("PING after a stray ack", raw_call(a, DSM_MSG_PING, NULL, 0), 0);
}

/*
 * Malformed bodies and every bound: refused, and nothing changed (the
 * page's data and owner are as before, the server serves).  Defeats: the
 * per-session bound on waiting ACQUIREs, the bound on holders.
 */
static void test_limits(void)
{
	int a = conn(), b = conn(), many[SHARED_HOLDERS_TRY];
	uint8_t page[DSM_PAGE_SIZE];
	struct share s = create(a, 8);
	uint64_t inv[16], ids[16];
	unsigned n = 0;

	attach(b, &s, 8);
	for (uint32_t p = 0; p < 16; p++)
		expect_grant(a, acquire_send(a, &s, p, DSM_ACQ_WRITE, 0), NULL,
			     TH_TIMEOUT_MS);
	th_expect("owner writes", write_page(a, &s, 0, 0x99), 0);
	test_malformed(a, &s);
	/* 16 ACQUIREs of B's wait on A; the 17th is refused. */
	for (uint32_t p = 0; p < 16; p++)
		ids[p] = acquire_send(b, &s, p, DSM_ACQ_WRITE, 0);
	for (uint32_t p = 0; p < 16; p++)
		inv[p] = expect_inval(a, DSM_MSG_INVALIDATE, &s, p);
	th_expect("a 17th waiting ACQUIRE",
	       expect_msg(b, DSM_MSG_ACQUIRE, DSM_F_REPLY,
			  acquire_send(b, &s, 0, DSM_ACQ_READ, 0), NULL, 0,
			  TH_TIMEOUT_MS), -EAGAIN);
	for (uint32_t p = 0; p < 16; p++)
		ack(a, inv[p]);
	for (uint32_t p = 0; p < 16; p++)
		expect_grant(b, ids[p], NULL, TH_TIMEOUT_MS);
	th_expect("B reads", read_page(b, &s, 0, page), 0);
	expect_filled(page, 0x99, "after the refusals");

	/* 64 holders at most: a and b, then 62 more, then one too many. */
	for (n = 0; n < SHARED_HOLDERS_TRY; n++) {
		many[n] = conn();
		th_expect(n < 62 ? "a holder" : "a 65th holder",
		       share(many[n], DSM_MSG_SHARE_ATTACH, s.id, s.size, 8,
			     NULL), n < 62 ? 0 : -EUSERS);
	}
	for (n = 0; n < SHARED_HOLDERS_TRY; n++)
		close(many[n]);
	close(a);
	close(b);
}

/* --max-regions counts shared regions held with those owned. */
static void test_max_regions(void)
{
	struct th_server lim;
	const char *args[] = { "--max-regions", "2", NULL };
	struct th_server_opts o = { .args = args };
	struct th_server keep = srv;
	int a, b;
	struct share s, t;

	TH_CHECK(th_server_start_opts(&lim, "16M", &o) == 0);
	srv = lim;
	a = conn();
	b = conn();
	s = create(a, 9);
	t = create(b, 10);
	th_expect("a second region", share(b, DSM_MSG_SHARE_ATTACH, s.id, s.size,
					9, NULL), 0);
	th_expect("a third", share(b, DSM_MSG_SHARE_CREATE, 0, REGION_SIZE, 11,
				NULL), -EDQUOT);
	/* shared regions held count against private ones too */
	{
		struct dsm_alloc_req m = { .size = REGION_SIZE };
		uint8_t body[DSM_ALLOC_REQ_SIZE];

		dsm_alloc_req_encode(&m, body);
		th_expect("an ALLOC past the limit, shared ones held",
		       th_call(b, DSM_MSG_ALLOC, next_id++, body, sizeof(body),
			       NULL, 0, NULL), -EDQUOT);
	}
	(void)t;
	close(a);
	close(b);
	th_server_stop(&lim);
	srv = keep;
}

int main(void)
{
	const char *args[] = { "--inval-timeout-ms", INVAL_TIMEOUT, NULL };
	struct th_server_opts o = { .args = args };

	TH_CHECK(th_server_start_opts(&srv, "64M", &o) == 0);
	test_lifetime();
	test_invalidate();
	test_timeout();
	test_two_writers();
	test_out_of_order();
	test_ack_disowns();
	test_move();
	test_standby();
	test_limits();
	test_max_regions();
	th_server_stop(&srv);
	printf("shared: ok\n");
	return 0;
}
