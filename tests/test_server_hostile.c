/*
 * test_server_hostile.c - dsm-server against clients that lie, stall and
 * send garbage (room: tests).
 *
 * One well-behaved client keeps a region full of a known pattern for the
 * whole run.  Every hostile connection must get exactly the documented
 * answer (docs/design.md, "Protocol": an error reply, and a close when the
 * stream cannot be trusted) within a timeout, and afterwards the good
 * client's data must still be bit-exact and the server still serving.
 * Connections that never complete a handshake (oversized, idle, more of
 * them than the server has descriptors) and one client's limits
 * (regions, connections) are checked against servers of their own too.
 */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "util.h"

#define CAPACITY (64ull << 20)
#define GOOD_SIZE (1u << 20)
#define GOOD_PAGES (GOOD_SIZE / DSM_PAGE_SIZE)
#define HOSTILE_SIZE (64u << 10)
#define HOG_READS 160

struct peer {
	int fd;
	uint64_t region, pool_off, size;
};

/* The test runs on one thread; these are set up by main() and read by
 * every case. */
static struct th_server srv;
static uint64_t next_id = 1000;   /* request ids */
static uint8_t pattern[GOOD_SIZE];
static struct peer good;

static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static void fill_random(void *buf, size_t len, uint64_t seed)
{
	uint8_t *p = buf;

	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(mix(seed + i / 8) >> (8 * (i % 8)));
}

/* --- requests ------------------------------------------------------------ */

static int do_alloc(int fd, uint64_t size, struct peer *out)
{
	struct dsm_alloc_req m = { .size = size };
	struct dsm_alloc_reply a;
	uint8_t body[DSM_ALLOC_REQ_SIZE], reply[DSM_ALLOC_REPLY_SIZE];
	uint32_t rlen;
	int st;

	dsm_alloc_req_encode(&m, body);
	st = th_call(fd, DSM_MSG_ALLOC, next_id++, body, sizeof(body), reply,
		     sizeof(reply), &rlen);
	if (st || !out)
		return st;
	TH_CHECK(rlen == DSM_ALLOC_REPLY_SIZE);
	TH_CHECK(dsm_alloc_reply_decode(reply, rlen, &a) == 0);
	TH_CHECK(a.size == size);
	/* no one-sided access over TCP */
	TH_CHECK(a.addr == 0 && a.rkey == 0);
	out->fd = fd;
	out->region = a.region_id;
	out->pool_off = a.pool_off;
	out->size = a.size;
	return 0;
}

static int do_free(int fd, uint64_t region)
{
	struct dsm_free_req m = { .region_id = region };
	uint8_t body[DSM_FREE_REQ_SIZE];

	dsm_free_req_encode(&m, body);
	return th_call(fd, DSM_MSG_FREE, next_id++, body, sizeof(body), NULL,
		       0, NULL);
}

/* READ or WRITE of npages at pool_off; a WRITE sends data_pages pages of
 * data, which a well-formed request makes equal to npages. */
static int do_rw(int fd, uint8_t type, uint64_t region, uint64_t pool_off,
		 uint32_t npages, const void *data, uint32_t data_pages,
		 void *out)
{
	struct dsm_rw_req m = { .region_id = region, .pool_off = pool_off,
				.npages = npages };
	uint32_t dlen = type == DSM_MSG_WRITE ? data_pages * DSM_PAGE_SIZE : 0;
	uint8_t *body = malloc(DSM_RW_REQ_SIZE + (size_t)dlen);
	uint32_t rlen = 0;
	int st;

	TH_CHECK(body);
	dsm_rw_req_encode(&m, body);
	if (dlen)
		memcpy(body + DSM_RW_REQ_SIZE, data, dlen);
	st = th_call(fd, type, next_id++, body, DSM_RW_REQ_SIZE + dlen, out,
		     out ? npages * DSM_PAGE_SIZE : 0, &rlen);
	free(body);
	if (st == 0 && type == DSM_MSG_READ)
		th_expect("READ reply length", rlen, (long)npages * DSM_PAGE_SIZE);
	if (st == 0 && type == DSM_MSG_WRITE)
		th_expect("WRITE reply length", rlen, 0);
	return st;
}

static int do_ping(int fd)
{
	return th_call(fd, DSM_MSG_PING, next_id++, NULL, 0, NULL, 0, NULL);
}

static struct dsm_server_stats do_stats(int fd)
{
	uint8_t reply[DSM_SERVER_STATS_SIZE];
	struct dsm_server_stats st;
	uint32_t rlen;

	th_expect("STATS", th_call(fd, DSM_MSG_STATS, next_id++, NULL, 0, reply,
				sizeof(reply), &rlen), 0);
	TH_CHECK(dsm_server_stats_decode(reply, rlen, &st) == 0);
	return st;
}

static void hello_body(uint8_t *body, uint16_t minv, uint16_t maxv,
		       uint32_t page_size)
{
	struct dsm_hello m = { .min_version = minv, .max_version = maxv,
			       .page_size = page_size };

	dsm_hello_encode(&m, body);
}

static int hello_connect(void)
{
	int fd = th_hello_connect(srv.port);

	TH_CHECK(fd >= 0);
	return fd;
}

/* The server answers with status `want`, then closes the connection. */
static void expect_error_then_close(int fd, const char *what, int want)
{
	struct dsm_hdr h;

	th_expect(what, th_recv_msg(fd, &h, NULL, 0, TH_TIMEOUT_MS), 0);
	th_expect(what, h.status, want);
	TH_CHECK(h.flags == DSM_F_REPLY && h.len == 0);
	th_expect(what, th_wait_eof(fd, TH_TIMEOUT_MS), 0);
	close(fd);
}

static void check_good(const char *after)
{
	static uint8_t back[GOOD_SIZE];

	memset(back, 0, sizeof(back));
	th_expect(after, do_rw(good.fd, DSM_MSG_READ, good.region, good.pool_off,
			    GOOD_PAGES, NULL, 0, back), 0);
	if (memcmp(back, pattern, GOOD_SIZE)) {
		fprintf(stderr, "good client's data changed after %s\n", after);
		exit(1);
	}
}

/* --- connections that break the framing ------------------------------- */

/* The raw header of the reply: th_recv_msg would refuse another version,
 * and this one must be ours. */
static void expect_old_version(int fd)
{
	uint8_t raw[DSM_HDR_SIZE];
	struct dsm_hdr h;
	size_t got = 0;

	while (got < sizeof(raw)) {
		ssize_t n = recv(fd, raw + got, sizeof(raw) - got, 0);

		TH_CHECK(n > 0);
		got += n;
	}
	th_expect("version 1 header: reply decodes", dsm_hdr_decode(raw, &h), 0);
	th_expect("version 1 header: reply version", h.version, DSM_PROTO_VERSION);
	th_expect("version 1 header: status", h.status, -EPROTONOSUPPORT);
	th_expect("version 1 header: close", th_wait_eof(fd, TH_TIMEOUT_MS), 0);
	close(fd);
}

static void send_raw_header(int fd, uint32_t magic, uint8_t version,
			    uint16_t flags, uint32_t len)
{
	struct dsm_hdr h;
	uint8_t raw[DSM_HDR_SIZE];

	dsm_hdr_init(&h, DSM_MSG_PING, flags, len, 77);
	h.magic = magic;
	h.version = version;
	dsm_hdr_encode(&h, raw);
	th_expect("send header", th_send_all(fd, raw, sizeof(raw)), 0);
}

static void test_bad_headers(void)
{
	uint8_t raw[DSM_HDR_SIZE];
	struct dsm_hdr h;
	int fd;

	/* a truncated header, then the client finishes: no reply, a close */
	fd = th_raw_connect(srv.port);
	dsm_hdr_init(&h, DSM_MSG_PING, 0, 0, 1);
	dsm_hdr_encode(&h, raw);
	th_expect("send", th_send_all(fd, raw, 10), 0);
	shutdown(fd, SHUT_WR);
	th_expect("truncated header", th_wait_eof(fd, TH_TIMEOUT_MS), 0);
	close(fd);

	fd = th_raw_connect(srv.port);
	send_raw_header(fd, 0xdeadbeef, DSM_PROTO_VERSION, 0, 0);
	expect_error_then_close(fd, "bad magic", -EPROTO);

	fd = th_raw_connect(srv.port);
	send_raw_header(fd, DSM_PROTO_MAGIC, DSM_PROTO_VERSION + 1, 0, 0);
	expect_error_then_close(fd, "wrong version", -EPROTONOSUPPORT);

	/* a version 1 client: refused in a header that says which version
	 * the server speaks, so the client can say so */
	fd = th_raw_connect(srv.port);
	send_raw_header(fd, DSM_PROTO_MAGIC, 1, 0, 0);
	expect_old_version(fd);

	fd = th_raw_connect(srv.port);
	send_raw_header(fd, DSM_PROTO_MAGIC, DSM_PROTO_VERSION, 0,
			DSM_MAX_PAYLOAD + 1);
	expect_error_then_close(fd, "oversized len", -EMSGSIZE);

	fd = th_raw_connect(srv.port);
	send_raw_header(fd, DSM_PROTO_MAGIC, DSM_PROTO_VERSION, 0x80, 0);
	expect_error_then_close(fd, "unknown flag", -EPROTO);

	/* the same after a successful HELLO */
	fd = hello_connect();
	send_raw_header(fd, DSM_PROTO_MAGIC, DSM_PROTO_VERSION, 0, UINT32_MAX);
	expect_error_then_close(fd, "oversized len after HELLO", -EMSGSIZE);
	check_good("bad headers");
}

static void test_handshake(void)
{
	uint8_t body[DSM_HELLO_SIZE];
	int fd;

	fd = th_raw_connect(srv.port);
	th_expect("send", th_send_msg(fd, DSM_MSG_PING, 0, 5, NULL, 0), 0);
	expect_error_then_close(fd, "request before HELLO", -EPROTO);

	fd = th_raw_connect(srv.port);
	hello_body(body, DSM_PROTO_VERSION, DSM_PROTO_VERSION, 8192);
	th_expect("send", th_send_msg(fd, DSM_MSG_HELLO, 0, 5, body, 16), 0);
	expect_error_then_close(fd, "HELLO page size", -EINVAL);

	fd = th_raw_connect(srv.port);
	hello_body(body, DSM_PROTO_VERSION + 1, DSM_PROTO_VERSION + 2,
		   DSM_PAGE_SIZE);
	th_expect("send", th_send_msg(fd, DSM_MSG_HELLO, 0, 5, body, 16), 0);
	expect_error_then_close(fd, "HELLO versions", -EPROTONOSUPPORT);

	/* a client that speaks only version 1 in a version 2 header */
	fd = th_raw_connect(srv.port);
	hello_body(body, 1, 1, DSM_PAGE_SIZE);
	th_expect("send", th_send_msg(fd, DSM_MSG_HELLO, 0, 5, body, 16), 0);
	expect_error_then_close(fd, "HELLO of version 1 only",
				-EPROTONOSUPPORT);

	/* one that speaks 1 to 2 gets 2 */
	fd = th_raw_connect(srv.port);
	hello_body(body, 1, DSM_PROTO_VERSION, DSM_PAGE_SIZE);
	th_expect("HELLO of versions 1 to 2", th_call(fd, DSM_MSG_HELLO, 5, body,
						     16, NULL, 0, NULL), 0);
	close(fd);

	fd = th_raw_connect(srv.port);
	th_expect("send", th_send_msg(fd, DSM_MSG_HELLO, 0, 5, body, 8), 0);
	expect_error_then_close(fd, "short HELLO", -EINVAL);

	fd = th_raw_connect(srv.port);
	hello_body(body, DSM_PROTO_VERSION, DSM_PROTO_VERSION, DSM_PAGE_SIZE);
	th_expect("send", th_send_msg(fd, DSM_MSG_HELLO, DSM_F_REPLY, 5, body,
				   16), 0);
	expect_error_then_close(fd, "HELLO flagged as a reply", -EPROTO);

	/* a second HELLO is refused, but the connection stays usable */
	fd = hello_connect();
	th_expect("second HELLO", th_call(fd, DSM_MSG_HELLO, next_id++, body, 16,
				       NULL, 0, NULL), -EPROTO);
	th_expect("PING after second HELLO", do_ping(fd), 0);
	close(fd);
}

/* --- well-framed requests that must be refused -------------------------- */

static void test_bad_rw(int fd, const struct peer *own)
{
	uint8_t body[DSM_RW_REQ_SIZE], *pages = calloc(3, DSM_PAGE_SIZE);
	struct dsm_rw_req m = { .region_id = own->region,
				.pool_off = own->pool_off, .npages = 1 };
	uint64_t end = own->pool_off + own->size;

	TH_CHECK(pages);
	th_expect("READ 0 pages", do_rw(fd, DSM_MSG_READ, own->region,
				     own->pool_off, 0, NULL, 0, NULL), -EINVAL);
	th_expect("READ 257 pages", do_rw(fd, DSM_MSG_READ, own->region,
				       own->pool_off, DSM_MAX_BATCH_PAGES + 1,
				       NULL, 0, NULL), -EINVAL);
	th_expect("READ unaligned", do_rw(fd, DSM_MSG_READ, own->region,
				       own->pool_off + 1, 1, NULL, 0, NULL),
	       -EINVAL);
	dsm_rw_req_encode(&m, body);
	body[20] = 1; /* reserved */
	th_expect("READ reserved", th_call(fd, DSM_MSG_READ, next_id++, body,
					sizeof(body), NULL, 0, NULL), -EINVAL);
	th_expect("READ straddling the end", do_rw(fd, DSM_MSG_READ, own->region,
						end - DSM_PAGE_SIZE, 2, NULL,
						0, NULL), -ERANGE);
	th_expect("READ at the end", do_rw(fd, DSM_MSG_READ, own->region, end, 1,
					NULL, 0, NULL), -ERANGE);
	th_expect("READ below the region", do_rw(fd, DSM_MSG_READ, own->region,
					      good.pool_off, 1, NULL, 0, NULL),
	       -ERANGE);
	th_expect("READ wrapping u64", do_rw(fd, DSM_MSG_READ, own->region,
					  UINT64_MAX & ~4095ull,
					  DSM_MAX_BATCH_PAGES, NULL, 0, NULL),
	       -ERANGE);
	th_expect("WRITE wrapping u64", do_rw(fd, DSM_MSG_WRITE, own->region,
					   UINT64_MAX & ~4095ull, 1, pages, 1,
					   NULL), -ERANGE);
	th_expect("WRITE short", do_rw(fd, DSM_MSG_WRITE, own->region,
				    own->pool_off, 2, pages, 1, NULL), -EINVAL);
	th_expect("WRITE long", do_rw(fd, DSM_MSG_WRITE, own->region,
				   own->pool_off, 2, pages, 3, NULL), -EINVAL);
	dsm_rw_req_encode(&m, pages);
	th_expect("READ with pages", th_call(fd, DSM_MSG_READ, next_id++, pages,
					  DSM_RW_REQ_SIZE + DSM_PAGE_SIZE,
					  NULL, 0, NULL), -EINVAL);
	free(pages);
}

/* DISCARD: the pages it names read as zeros, the rest of the region
 * keeps its data, and a bad one is refused like a bad READ. */
static void test_discard(int fd)
{
	uint8_t body[DSM_RW_REQ_SIZE], *pages = malloc(3 * DSM_PAGE_SIZE);
	uint8_t *back = malloc(3 * DSM_PAGE_SIZE);
	struct peer big;
	struct dsm_rw_req m;
	uint64_t end;

	TH_CHECK(pages && back);
	/* larger than a READ's batch: a DISCARD carries no data */
	th_expect("ALLOC 2 MiB", do_alloc(fd, 2u << 20, &big), 0);
	end = big.pool_off + big.size;
	fill_random(pages, 3 * DSM_PAGE_SIZE, 77);
	th_expect("WRITE 3 pages", do_rw(fd, DSM_MSG_WRITE, big.region,
				      big.pool_off, 3, pages, 3, NULL), 0);
	th_expect("DISCARD the middle page",
	       do_rw(fd, DSM_MSG_DISCARD, big.region,
		     big.pool_off + DSM_PAGE_SIZE, 1, NULL, 0, NULL), 0);
	th_expect("READ after DISCARD", do_rw(fd, DSM_MSG_READ, big.region,
					   big.pool_off, 3, NULL, 0, back), 0);
	TH_CHECK(!memcmp(back, pages, DSM_PAGE_SIZE));
	TH_CHECK(!memcmp(back + 2 * DSM_PAGE_SIZE, pages + 2 * DSM_PAGE_SIZE,
			 DSM_PAGE_SIZE));
	for (size_t i = DSM_PAGE_SIZE; i < 2 * DSM_PAGE_SIZE; i++)
		TH_CHECK(back[i] == 0);
	th_expect("DISCARD 512 pages", do_rw(fd, DSM_MSG_DISCARD, big.region,
					  big.pool_off, 512, NULL, 0, NULL), 0);
	th_expect("READ after DISCARD of all", do_rw(fd, DSM_MSG_READ, big.region,
						  big.pool_off, 3, NULL, 0,
						  back), 0);
	for (size_t i = 0; i < 3 * DSM_PAGE_SIZE; i++)
		TH_CHECK(back[i] == 0);

	th_expect("DISCARD 0 pages", do_rw(fd, DSM_MSG_DISCARD, big.region,
					big.pool_off, 0, NULL, 0, NULL), -EINVAL);
	th_expect("DISCARD unaligned", do_rw(fd, DSM_MSG_DISCARD, big.region,
					  big.pool_off + 8, 1, NULL, 0, NULL),
	       -EINVAL);
	m = (struct dsm_rw_req){ .region_id = big.region,
				 .pool_off = big.pool_off, .npages = 1 };
	dsm_rw_req_encode(&m, body);
	body[20] = 1; /* reserved */
	th_expect("DISCARD reserved", th_call(fd, DSM_MSG_DISCARD, next_id++,
					   body, sizeof(body), NULL, 0, NULL),
	       -EINVAL);
	dsm_rw_req_encode(&m, pages);
	th_expect("DISCARD with pages", th_call(fd, DSM_MSG_DISCARD, next_id++,
					     pages,
					     DSM_RW_REQ_SIZE + DSM_PAGE_SIZE,
					     NULL, 0, NULL), -EINVAL);
	th_expect("DISCARD short body", th_call(fd, DSM_MSG_DISCARD, next_id++,
					     body, 16, NULL, 0, NULL), -EINVAL);
	th_expect("DISCARD straddling the end",
	       do_rw(fd, DSM_MSG_DISCARD, big.region, end - DSM_PAGE_SIZE, 2,
		     NULL, 0, NULL), -ERANGE);
	th_expect("DISCARD wrapping u64",
	       do_rw(fd, DSM_MSG_DISCARD, big.region, UINT64_MAX & ~4095ull,
		     UINT32_MAX, NULL, 0, NULL), -ERANGE);
	th_expect("DISCARD foreign", do_rw(fd, DSM_MSG_DISCARD, good.region,
					good.pool_off, GOOD_PAGES, NULL, 0,
					NULL), -ENOENT);
	th_expect("FREE", do_free(fd, big.region), 0);
	th_expect("DISCARD freed", do_rw(fd, DSM_MSG_DISCARD, big.region,
				      big.pool_off, 1, NULL, 0, NULL), -ENOENT);
	free(pages);
	free(back);
	check_good("DISCARD");
}

/* Another session's region is indistinguishable from a missing one. */
static void test_foreign_regions(int fd)
{
	uint8_t *junk = malloc(GOOD_SIZE);

	TH_CHECK(junk);
	memset(junk, 0xa5, GOOD_SIZE);
	th_expect("READ foreign", do_rw(fd, DSM_MSG_READ, good.region,
				     good.pool_off, 1, NULL, 0, NULL), -ENOENT);
	th_expect("WRITE foreign", do_rw(fd, DSM_MSG_WRITE, good.region,
				      good.pool_off, GOOD_PAGES, junk,
				      GOOD_PAGES, NULL), -ENOENT);
	th_expect("FREE foreign", do_free(fd, good.region), -ENOENT);
	th_expect("READ unknown", do_rw(fd, DSM_MSG_READ, 987654321,
				     good.pool_off, 1, NULL, 0, NULL), -ENOENT);
	th_expect("FREE unknown", do_free(fd, 987654321), -ENOENT);
	free(junk);
	check_good("foreign READ/WRITE/FREE");
}

static void test_bad_requests(void)
{
	uint8_t body[16] = { 0 };
	struct peer own, gone;
	int fd = hello_connect();

	th_expect("ALLOC", do_alloc(fd, HOSTILE_SIZE, &own), 0);
	TH_CHECK(own.pool_off > good.pool_off); /* first fit */
	test_bad_rw(fd, &own);
	test_foreign_regions(fd);
	test_discard(fd);

	th_expect("ALLOC > capacity", do_alloc(fd, 2 * CAPACITY, NULL), -ENOSPC);
	th_expect("ALLOC huge", do_alloc(fd, UINT64_MAX & ~4095ull, NULL),
	       -ENOSPC);
	th_expect("ALLOC 0", do_alloc(fd, 0, NULL), -EINVAL);
	th_expect("ALLOC unaligned", do_alloc(fd, 4097, NULL), -EINVAL);
	th_expect("ALLOC short body", th_call(fd, DSM_MSG_ALLOC, next_id++, body,
					   4, NULL, 0, NULL), -EINVAL);
	th_expect("FREE long body", th_call(fd, DSM_MSG_FREE, next_id++, body, 16,
					 NULL, 0, NULL), -EINVAL);
	th_expect("STATS with body", th_call(fd, DSM_MSG_STATS, next_id++, body,
					  8, NULL, 0, NULL), -EINVAL);
	th_expect("PING with body", th_call(fd, DSM_MSG_PING, next_id++, body, 8,
					 NULL, 0, NULL), -EINVAL);
	th_expect("LEASE short body", th_call(fd, DSM_MSG_LEASE, next_id++, body,
					   4, NULL, 0, NULL), -EINVAL);
	th_expect("LEASE of client 0", th_call(fd, DSM_MSG_LEASE, next_id++, body,
					    DSM_LEASE_SIZE, NULL, 0, NULL),
	       -EINVAL);
	th_expect("AUTH without a secret", th_call(fd, DSM_MSG_AUTH, next_id++,
						body, 16, NULL, 0, NULL),
	       -EPROTO); /* and the connection closes: reconnect */
	close(fd);
	fd = hello_connect();
	th_expect("unknown type", th_call(fd, 99, next_id++, NULL, 0, NULL, 0,
				       NULL), -EOPNOTSUPP);
	th_expect("GOODBYE from a client", th_call(fd, DSM_MSG_GOODBYE,
						next_id++, body, 4, NULL, 0,
						NULL), -EOPNOTSUPP);
	th_expect("DRAINING from a client", th_call(fd, DSM_MSG_DRAINING,
						 next_id++, body, 4, NULL, 0,
						 NULL), -EOPNOTSUPP);

	/* a freed region's id stays dead */
	th_expect("ALLOC", do_alloc(fd, HOSTILE_SIZE, &gone), 0);
	th_expect("FREE", do_free(fd, gone.region), 0);
	th_expect("READ freed", do_rw(fd, DSM_MSG_READ, gone.region,
				   gone.pool_off, 1, NULL, 0, NULL), -ENOENT);
	th_expect("FREE twice", do_free(fd, gone.region), -ENOENT);

	th_expect("PING after all that", do_ping(fd), 0);
	close(fd);
	check_good("bad requests");
}

static void test_flagged_messages(void)
{
	struct dsm_hdr h;
	int fd = hello_connect();

	th_expect("send", th_send_msg(fd, DSM_MSG_PING, DSM_F_REPLY, 9, NULL, 0),
	       0);
	th_expect("recv", th_recv_msg(fd, &h, NULL, 0, TH_TIMEOUT_MS), 0);
	th_expect("PING flagged REPLY", h.status, -EINVAL);
	TH_CHECK(h.id == 9 && h.flags == DSM_F_REPLY);
	th_expect("send", th_send_msg(fd, DSM_MSG_READ, DSM_F_SERVER, 10, NULL,
				   0), 0);
	th_expect("recv", th_recv_msg(fd, &h, NULL, 0, TH_TIMEOUT_MS), 0);
	th_expect("READ flagged SERVER", h.status, -EINVAL);
	th_expect("PING after flagged", do_ping(fd), 0);
	close(fd);
}

/* --- junk and stalls ------------------------------------------------------ */

static void test_garbage(void)
{
	static uint8_t junk[10 << 10];
	struct dsm_hdr h;
	int fd = th_raw_connect(srv.port);

	fill_random(junk, sizeof(junk), 42);
	TH_CHECK(memcmp(junk, "DSM1", 4) != 0); /* true for this seed */
	/* the server may close before taking it all: errors are expected */
	(void)th_send_all(fd, junk, sizeof(junk));
	th_expect("garbage reply", th_recv_msg(fd, &h, NULL, 0, TH_TIMEOUT_MS), 0);
	th_expect("garbage status", h.status, -EPROTO);
	th_expect("garbage close", th_wait_eof(fd, TH_TIMEOUT_MS), 0);
	close(fd);
	check_good("garbage");
}

static void test_slow_clients(void)
{
	uint8_t raw[DSM_HDR_SIZE + DSM_RW_REQ_SIZE + 100] = { 0 };
	struct dsm_hdr h;
	int fd = hello_connect();

	/* half a WRITE, then silence: the loop must keep serving others */
	dsm_hdr_init(&h, DSM_MSG_WRITE, 0, DSM_MAX_PAYLOAD, 1);
	dsm_hdr_encode(&h, raw);
	th_expect("send", th_send_all(fd, raw, sizeof(raw)), 0);
	usleep(200 * 1000);
	check_good("half a message");
	close(fd);

	/* a PING one byte at a time is still one PING */
	fd = hello_connect();
	dsm_hdr_init(&h, DSM_MSG_PING, 0, 0, 4242);
	dsm_hdr_encode(&h, raw);
	for (unsigned i = 0; i < DSM_HDR_SIZE; i++) {
		th_expect("send", th_send_all(fd, raw + i, 1), 0);
		usleep(2000);
	}
	th_expect("slow PING", th_recv_msg(fd, &h, NULL, 0, TH_TIMEOUT_MS), 0);
	TH_CHECK(h.id == 4242 && h.status == 0 && h.type == DSM_MSG_PING);
	close(fd);
}

/* Many messages in one segment, and a WRITE in ragged pieces followed at
 * once by a READ of the same pages: answered in order, with the new data. */
static void test_pipelining(void)
{
	enum { NPING = 100, NPAGES = 4 };
	size_t wlen = DSM_HDR_SIZE + DSM_RW_REQ_SIZE + NPAGES * DSM_PAGE_SIZE;
	size_t total = NPING * DSM_HDR_SIZE + wlen + 2 * DSM_HDR_SIZE
		       + DSM_RW_REQ_SIZE;
	uint8_t *buf = calloc(1, total), *p = buf, data[NPAGES * DSM_PAGE_SIZE];
	uint8_t back[sizeof(data)];
	struct dsm_rw_req m;
	struct dsm_hdr h;
	struct peer own;
	int fd = hello_connect();

	TH_CHECK(buf);
	th_expect("ALLOC", do_alloc(fd, HOSTILE_SIZE, &own), 0);
	for (int i = 0; i < NPING; i++, p += DSM_HDR_SIZE) {
		dsm_hdr_init(&h, DSM_MSG_PING, 0, 0, i);
		dsm_hdr_encode(&h, p);
	}
	fill_random(data, sizeof(data), 7);
	m = (struct dsm_rw_req){ .region_id = own.region,
				 .pool_off = own.pool_off, .npages = NPAGES };
	dsm_hdr_init(&h, DSM_MSG_WRITE, 0, wlen - DSM_HDR_SIZE, NPING);
	dsm_hdr_encode(&h, p);
	dsm_rw_req_encode(&m, p + DSM_HDR_SIZE);
	memcpy(p + DSM_HDR_SIZE + DSM_RW_REQ_SIZE, data, sizeof(data));
	p += wlen;
	dsm_hdr_init(&h, DSM_MSG_READ, 0, DSM_RW_REQ_SIZE, NPING + 1);
	dsm_hdr_encode(&h, p);
	dsm_rw_req_encode(&m, p + DSM_HDR_SIZE);

	for (size_t off = 0, step = 1; off < total; off += step, step *= 3) {
		if (step > total - off)
			step = total - off;
		th_expect("send", th_send_all(fd, buf + off, step), 0);
		usleep(1000);
	}
	for (int i = 0; i < NPING + 2; i++) {
		th_expect("pipelined reply", th_recv_msg(fd, &h, back,
						      sizeof(back),
						      TH_TIMEOUT_MS), 0);
		th_expect("reply order", (long)h.id, i);
		th_expect("reply status", h.status, 0);
	}
	TH_CHECK(h.type == DSM_MSG_READ && h.len == sizeof(back));
	TH_CHECK(memcmp(back, data, sizeof(data)) == 0);
	free(buf);
	close(fd);
}

/* Put one READ or WRITE of page 0 of own's region at p; returns the end. */
static uint8_t *put_rw(uint8_t *p, uint8_t type, uint64_t id,
		       const struct peer *own, const uint8_t *page)
{
	struct dsm_rw_req m = { .region_id = own->region,
				.pool_off = own->pool_off, .npages = 1 };
	uint32_t len = DSM_RW_REQ_SIZE + (page ? DSM_PAGE_SIZE : 0);
	struct dsm_hdr h;

	dsm_hdr_init(&h, type, 0, len, id);
	dsm_hdr_encode(&h, p);
	dsm_rw_req_encode(&m, p + DSM_HDR_SIZE);
	if (page)
		memcpy(p + DSM_HDR_SIZE + DSM_RW_REQ_SIZE, page, DSM_PAGE_SIZE);
	return p + DSM_HDR_SIZE + len;
}

/* The server holds the replies to a burst of requests and sends them
 * together (session_tcp.c, "the cork"); a READ's reply points into the
 * pool meanwhile.  A WRITE of the same page later in the burst must not
 * change what that READ answers: each READ sees the WRITE before it. */
static void test_burst_read_then_write(void)
{
	enum { ROUNDS = 8 };
	uint8_t *buf = malloc(ROUNDS * 2 * (DSM_HDR_SIZE + DSM_RW_REQ_SIZE +
					    DSM_PAGE_SIZE));
	static uint8_t data[ROUNDS + 1][DSM_PAGE_SIZE], back[DSM_PAGE_SIZE];
	uint8_t *p = buf;
	struct dsm_hdr h;
	struct peer own;
	int fd = hello_connect();

	TH_CHECK(buf);
	th_expect("ALLOC", do_alloc(fd, HOSTILE_SIZE, &own), 0);
	for (int i = 0; i <= ROUNDS; i++)
		fill_random(data[i], DSM_PAGE_SIZE, 100 + i);
	th_expect("first WRITE", do_rw(fd, DSM_MSG_WRITE, own.region,
				    own.pool_off, 1, data[0], 1, NULL), 0);
	for (int i = 0; i < ROUNDS; i++) {
		p = put_rw(p, DSM_MSG_READ, 2 * i, &own, NULL);
		p = put_rw(p, DSM_MSG_WRITE, 2 * i + 1, &own, data[i + 1]);
	}
	th_expect("send burst", th_send_all(fd, buf, p - buf), 0);
	for (int i = 0; i < 2 * ROUNDS; i++) {
		th_expect("burst reply", th_recv_msg(fd, &h, back, sizeof(back),
						  TH_TIMEOUT_MS), 0);
		th_expect("burst reply order", (long)h.id, i);
		th_expect("burst reply status", h.status, 0);
		if (i % 2)
			continue;
		th_expect("READ reply length", h.len, DSM_PAGE_SIZE);
		th_expect("READ sees the WRITE before it, not after",
		       memcmp(back, data[i / 2], DSM_PAGE_SIZE), 0);
	}
	free(buf);
	close(fd);
}

/* --- flow control ---------------------------------------------------------- */

static long server_rss_kib(void)
{
	char path[64], line[256];
	long kib = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)srv.pid);
	f = fopen(path, "r");
	TH_CHECK(f);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

/* A client that asks for far more than the reply queue's limit and does
 * not read: the server stops reading it instead of buffering it all, goes
 * on serving others, and delivers everything once the client reads. */
/* HOG_READS READs of all of own's region (ids 0, 1, ...), sent at once:
 * HOG_READS MiB of replies for a client that reads none of them yet. */
static void send_unread_reads(int fd, const struct peer *own)
{
	uint8_t req[HOG_READS][DSM_HDR_SIZE + DSM_RW_REQ_SIZE];
	struct dsm_rw_req m = { .region_id = own->region,
				.pool_off = own->pool_off,
				.npages = GOOD_PAGES };
	struct dsm_hdr h;

	for (int i = 0; i < HOG_READS; i++) {
		dsm_hdr_init(&h, DSM_MSG_READ, 0, DSM_RW_REQ_SIZE, i);
		dsm_hdr_encode(&h, req[i]);
		dsm_rw_req_encode(&m, req[i] + DSM_HDR_SIZE);
	}
	th_expect("send", th_send_all(fd, req, sizeof(req)), 0);
}

static void test_reader_that_never_reads(void)
{
	static uint8_t page[GOOD_SIZE];
	struct dsm_hdr h;
	struct peer own;
	int fd = hello_connect();
	long rss;

	th_expect("ALLOC", do_alloc(fd, GOOD_SIZE, &own), 0);
	th_expect("WRITE", do_rw(fd, DSM_MSG_WRITE, own.region, own.pool_off,
			      GOOD_PAGES, pattern, GOOD_PAGES, NULL), 0);
	send_unread_reads(fd, &own);
	usleep(300 * 1000);
	check_good("a client that does not read");
	rss = server_rss_kib();
	printf("server RSS with %d MiB of READs unread: %ld KiB\n", HOG_READS,
	       rss);
#ifndef TH_SANITIZED /* ASan's quarantine holds freed buffers: no bound */
	TH_CHECK(rss > 0 && rss < 120 * 1024);
#endif
	for (int i = 0; i < HOG_READS; i++) {
		th_expect("queued READ", th_recv_msg(fd, &h, page, sizeof(page),
						  TH_TIMEOUT_MS), 0);
		th_expect("queued READ order", (long)h.id, i);
		TH_CHECK(h.status == 0 && h.len == GOOD_SIZE);
		/* partly sent at once, partly queued: the seam must not show */
		TH_CHECK(memcmp(page, pattern, GOOD_SIZE) == 0);
		memset(page, 0, sizeof(page));
	}
	th_expect("PING after draining", do_ping(fd), 0);
	close(fd);
}


/* --- connections that never complete a handshake (issue 14, defect 2) --- */

#define FLOOD_CONNS 300
#define FLOOD_BODY (320u << 10)

/*
 * 300 connections, each announcing a HELLO of DSM_MAX_PAYLOAD bytes and
 * sending 320 KiB of it, all held open.  The server must refuse each on
 * its header (-EMSGSIZE, close) without buffering the body: its RSS may
 * grow by a few MiB, not by the ~94 MiB it took when it waited for the
 * whole message.  The first sends its header alone and reads its reply
 * at once: a clean close (unread data would make it a reset), before
 * the others could make it the oldest handshake, closed to make room.
 */
static void test_preauth_flood(void)
{
	static uint8_t junk[FLOOD_BODY];
	int fd[FLOOD_CONNS];
	struct dsm_server_stats st;
	long before = server_rss_kib(), after;
	uint64_t refused = do_stats(good.fd).conn_refused;

	struct timeval patience = { .tv_sec = 2 };

	for (int i = 0; i < FLOOD_CONNS; i++) {
		fd[i] = th_raw_connect(srv.port);
		TH_CHECK(fd[i] >= 0);
		send_raw_header(fd[i], DSM_PROTO_MAGIC, DSM_PROTO_VERSION, 0,
				DSM_MAX_PAYLOAD);
		if (!i) { /* before the others can crowd it out */
			expect_error_then_close(fd[0], "oversized HELLO",
						-EMSGSIZE);
			continue;
		}
		/* the server that buffers takes it all; the one that refuses
		 * resets the connection (errors expected) */
		setsockopt(fd[i], SOL_SOCKET, SO_SNDTIMEO, &patience,
			   sizeof(patience));
		(void)th_send_all(fd[i], junk, sizeof(junk));
	}
	usleep(300 * 1000);
	after = server_rss_kib();
	printf("server RSS with %d connections each announcing a 1 MiB HELLO: "
	       "%ld KiB -> %ld KiB\n", FLOOD_CONNS, before, after);
	check_good("a flood of oversized HELLOs");
	for (int i = 1; i < FLOOD_CONNS; i++)
		close(fd[i]);
	st = do_stats(good.fd);
	th_expect("conn_refused counts them", (long)(st.conn_refused - refused),
	       FLOOD_CONNS);
#ifndef TH_SANITIZED
	TH_CHECK(after - before < 8 * 1024);
#endif
}

/* A server with small limits: its own, so the main one's are untouched. */
static struct th_server lim;
#define LIM_NOFILE 100 /* descriptors the limits server may have */
#define LIM_HANDSHAKE_MS 600

static void start_limits_server(void)
{
	static const char *const args[] = {
		"--transport", "tcp", "--max-connections", "30",
		"--max-handshakes", "8", "--handshake-timeout-ms", "600",
		"--max-regions", "4", "--max-client-sessions", "2",
		"--tcp-timeout-ms", "1000", NULL };
	struct th_server_opts o = { .args = args, .nofile = LIM_NOFILE };

	TH_CHECK(th_server_start_opts(&lim, "16M", &o) == 0);
}

/*
 * More idle connections than the server has descriptors for: it must
 * keep at most --max-handshakes of them (each new one closes the oldest)
 * so that a member still gets in.  Without the caps the idle ones held
 * every descriptor and the member was shed at accept.
 */
static void test_idle_lockout(void)
{
	enum { IDLE = 120 };
	int idle[IDLE], fd;
	struct dsm_server_stats st;

	for (int i = 0; i < IDLE; i++) {
		idle[i] = th_raw_connect(lim.port);
		TH_CHECK(idle[i] >= 0);
		usleep(1000); /* in order: the oldest are the first */
	}
	fd = th_hello_connect(lim.port);
	th_expect("HELLO past 120 idle connections", fd >= 0, 1);
	th_expect("PING past 120 idle connections", do_ping(fd), 0);
	/* the oldest squatter was closed to make room */
	th_expect("oldest idle connection closed",
	       th_wait_eof(idle[0], TH_TIMEOUT_MS), 0);
	st = do_stats(fd);
	printf("limits server: %llu connections shed\n",
	       (unsigned long long)st.conn_refused);
	TH_CHECK(st.conn_refused >= IDLE - 8);
	for (int i = 0; i < IDLE; i++)
		close(idle[i]);
	close(fd);
}

/* A connection that completes no handshake is closed when its time is
 * up; one that completed its handshake is not. */
static void test_handshake_timeout(void)
{
	uint64_t t0 = dsm_now_ns(), ms;
	int idle = th_raw_connect(lim.port), member = th_hello_connect(lim.port);

	TH_CHECK(idle >= 0 && member >= 0);
	th_expect("idle connection closed", th_wait_eof(idle, 4 * LIM_HANDSHAKE_MS),
	       0);
	ms = (dsm_now_ns() - t0) / 1000000;
	printf("idle connection closed after %llu ms (timeout %d ms)\n",
	       (unsigned long long)ms, LIM_HANDSHAKE_MS);
	TH_CHECK(ms >= LIM_HANDSHAKE_MS - 50);
	usleep(LIM_HANDSHAKE_MS * 1000);
	th_expect("PING from a member past the timeout", do_ping(member), 0);
	close(idle);
	close(member);
}

/* --- one client's limits (issue 14, defect 8) ----------------------------- */

static void test_region_limit(void)
{
	struct peer r[5];
	int fd = th_hello_connect(lim.port);

	TH_CHECK(fd >= 0);
	for (int i = 0; i < 4; i++)
		th_expect("ALLOC within --max-regions",
		       do_alloc(fd, DSM_PAGE_SIZE, &r[i]), 0);
	th_expect("ALLOC past --max-regions", do_alloc(fd, DSM_PAGE_SIZE, NULL),
	       -EDQUOT);
	th_expect("FREE", do_free(fd, r[0].region), 0);
	th_expect("ALLOC after a FREE", do_alloc(fd, DSM_PAGE_SIZE, &r[4]), 0);
	th_expect("PING after the limit", do_ping(fd), 0);
	close(fd);
}

static int lease(int fd, uint64_t id)
{
	struct dsm_lease m = { .client_id = id };
	uint8_t body[DSM_LEASE_SIZE];

	dsm_lease_encode(&m, body);
	return th_call(fd, DSM_MSG_LEASE, next_id++, body, sizeof(body), NULL,
		       0, NULL);
}

static void test_client_sessions(void)
{
	int fd[4];

	for (int i = 0; i < 4; i++) {
		fd[i] = th_hello_connect(lim.port);
		TH_CHECK(fd[i] >= 0);
	}
	th_expect("first LEASE of client 77", lease(fd[0], 77), 0);
	th_expect("second LEASE of client 77", lease(fd[1], 77), 0);
	th_expect("third LEASE of client 77", lease(fd[2], 77), -EUSERS);
	th_expect("closed past --max-client-sessions",
	       th_wait_eof(fd[2], TH_TIMEOUT_MS), 0);
	th_expect("LEASE of another client", lease(fd[3], 78), 0);
	/* the same connection renewing its own lease is not another one */
	th_expect("LEASE again on the same connection", lease(fd[0], 77), 0);
	for (int i = 0; i < 4; i++)
		close(fd[i]);
}

/* A client that asks for more than it reads and never reads again (its
 * process hung, say): its receive window closes while the server still
 * has replies for it.  Its machine acknowledges everything, so only
 * --tcp-timeout-ms (1 s here; the kernel applies TCP_USER_TIMEOUT to a
 * closed window too) ends the session and frees its regions; without it
 * they would be held for the default 20 s. */
static void test_window_closed(void)
{
	struct peer own;
	int fd = th_hello_connect(lim.port), probe;
	uint64_t t0, base;

	TH_CHECK(fd >= 0);
	probe = th_hello_connect(lim.port);
	TH_CHECK(probe >= 0);
	base = do_stats(probe).regions;
	th_expect("ALLOC", do_alloc(fd, GOOD_SIZE, &own), 0);
	th_expect("regions with the hung client's", do_stats(probe).regions,
	       base + 1);
	send_unread_reads(fd, &own);
	t0 = dsm_now_ns();
	while (do_stats(probe).regions != base &&
	       dsm_now_ns() - t0 < 10000000000ull)
		usleep(100 * 1000);
	printf("hung client's session ended after %.1f s\n",
	       (dsm_now_ns() - t0) / 1e9);
	th_expect("regions after --tcp-timeout-ms", do_stats(probe).regions, base);
	close(probe);
	close(fd);
}

static void test_limits(void)
{
	start_limits_server();
	test_region_limit();
	test_client_sessions();
	test_handshake_timeout();
	test_idle_lockout();
	test_window_closed();
	th_server_stop(&lim);
}

/* --- the end ------------------------------------------------------------- */

/* Only the good client is left, with only its region. */
static void wait_for_others_to_go(void)
{
	struct dsm_server_stats st;

	for (int i = 0; i < 500; i++) {
		st = do_stats(good.fd);
		if (st.used == GOOD_SIZE && st.clients == 1)
			return;
		usleep(10 * 1000);
	}
	th_expect("pool bytes used once the others left", (long)st.used,
	       GOOD_SIZE);
	th_expect("clients once the others left", (long)st.clients, 1);
}

static void test_still_serving(void)
{
	struct dsm_server_stats st;
	struct peer fresh;
	uint8_t zero[DSM_PAGE_SIZE] = { 0 }, back[DSM_PAGE_SIZE];
	int fd;

	check_good("everything");
	/* every hostile connection is gone, and its regions with it */
	wait_for_others_to_go();
	fd = hello_connect();
	th_expect("fresh ALLOC", do_alloc(fd, GOOD_SIZE, &fresh), 0);
	/* pool space other clients wrote to comes back zeroed */
	for (uint32_t pg = 0; pg < GOOD_PAGES; pg += 17) {
		th_expect("fresh READ", do_rw(fd, DSM_MSG_READ, fresh.region,
					   fresh.pool_off + pg * DSM_PAGE_SIZE,
					   1, NULL, 0, back), 0);
		TH_CHECK(memcmp(back, zero, sizeof(zero)) == 0);
	}
	st = do_stats(good.fd);
	TH_CHECK(st.capacity == CAPACITY && st.regions == 2 &&
		 st.clients == 2 && st.errors >= 40 && st.reads > 0 &&
		 st.writes > 0);
	close(fd);
	TH_CHECK(kill(srv.pid, 0) == 0);
}

static void test_signals(void)
{
	struct dsm_goodbye g;
	uint8_t body[DSM_GOODBYE_SIZE];
	struct dsm_hdr h;
	int idle = hello_connect(), status;

	TH_CHECK(kill(srv.pid, SIGUSR1) == 0);
	usleep(100 * 1000);
	th_expect("PING after SIGUSR1", do_ping(good.fd), 0);
	TH_CHECK(kill(srv.pid, 0) == 0);

	TH_CHECK(kill(srv.pid, SIGTERM) == 0);
	for (int i = 0; i < 2; i++) {
		int fd = i ? idle : good.fd;

		th_expect("GOODBYE", th_recv_msg(fd, &h, body, sizeof(body),
					      TH_TIMEOUT_MS), 0);
		TH_CHECK(h.type == DSM_MSG_GOODBYE && h.flags == DSM_F_SERVER);
		TH_CHECK(dsm_goodbye_decode(body, h.len, &g) == 0);
		th_expect("GOODBYE reason", g.reason, -ESHUTDOWN);
		th_expect("close after GOODBYE", th_wait_eof(fd, TH_TIMEOUT_MS),
		       0);
		close(fd);
	}
	status = th_server_wait(&srv, 10000);
	TH_CHECK(status >= 0 && WIFEXITED(status));
	th_expect("server exit status", WEXITSTATUS(status), 0);
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	TH_CHECK(th_server_start(&srv, "64M") == 0);
	printf("server on %s\n", srv.addr);

	good.fd = hello_connect();
	th_expect("good ALLOC", do_alloc(good.fd, GOOD_SIZE, &good), 0);
	fill_random(pattern, sizeof(pattern), 1);
	th_expect("good WRITE", do_rw(good.fd, DSM_MSG_WRITE, good.region,
				   good.pool_off, GOOD_PAGES, pattern,
				   GOOD_PAGES, NULL), 0);
	check_good("the first WRITE");

	test_bad_headers();
	test_handshake();
	test_bad_requests();
	test_flagged_messages();
	test_garbage();
	test_slow_clients();
	test_pipelining();
	test_burst_read_then_write();
	test_reader_that_never_reads();
	test_preauth_flood();
	test_limits();
	test_still_serving();
	test_signals();
	printf("server_hostile: all checks passed\n");
	return 0;
}
