/*
 * test_api.c - the public API's error contract (include/dsm.h) (room:
 * tests): every bad call gets the documented error and changes nothing.
 * And freed capacity reads as zeros when it is handed out again, which
 * takes two promises: the server zeroes what it frees, and the client
 * never fetches a page it has not written.  Each is checked on its own.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <unistd.h>

#include "client_util.h"
#include <fcntl.h>
#include "util.h"

/* The server's capacity: regions of exactly this size must lie on the same
 * pool pages as every region before them. */
#define POOL (64u << 20)
#define POOL_STR "64M"
#define BATCH (DSM_MAX_BATCH_PAGES * DSM_PAGE_SIZE)

static const uint8_t zero_page[DSM_PAGE_SIZE];

/* --- the server's half, over the raw protocol ------------------------- */

static uint64_t raw_id = 1;

/* ALLOC the whole pool: its reply, or -errno. */
static int raw_alloc_pool(int fd, struct dsm_alloc_reply *a)
{
	uint8_t body[DSM_ALLOC_REQ_SIZE], reply[DSM_ALLOC_REPLY_SIZE];
	uint32_t rlen;
	int st;

	dsm_alloc_req_encode(&(struct dsm_alloc_req){ .size = POOL }, body);
	st = th_call(fd, DSM_MSG_ALLOC, raw_id++, body, sizeof(body), reply,
		     sizeof(reply), &rlen);
	if (st == 0)
		TH_CHECK(dsm_alloc_reply_decode(reply, rlen, a) == 0);
	return st;
}

static void raw_free(int fd, const struct dsm_alloc_reply *a)
{
	uint8_t body[DSM_FREE_REQ_SIZE];

	dsm_free_req_encode(&(struct dsm_free_req){ .region_id = a->region_id },
			    body);
	TH_CHECK(th_call(fd, DSM_MSG_FREE, raw_id++, body, sizeof(body), NULL,
			 0, NULL) == 0);
}

/* Every page of region a gets data no page of zeros matches. */
static void raw_fill(int fd, const struct dsm_alloc_reply *a)
{
	static uint8_t body[DSM_RW_REQ_SIZE + BATCH];

	for (uint64_t off = 0; off < a->size; off += BATCH) {
		struct dsm_rw_req m = { .region_id = a->region_id,
					.pool_off = a->pool_off + off,
					.npages = DSM_MAX_BATCH_PAGES };

		dsm_rw_req_encode(&m, body);
		for (size_t i = 0; i < BATCH; i += sizeof(uint64_t)) {
			uint64_t x = tc_mix(off + i) | 1;

			memcpy(body + DSM_RW_REQ_SIZE + i, &x, sizeof(x));
		}
		TH_CHECK(th_call(fd, DSM_MSG_WRITE, raw_id++, body,
				 sizeof(body), NULL, 0, NULL) == 0);
	}
}

/* Whether every page of region a reads back as zeros. */
static bool raw_reads_zeros(int fd, const struct dsm_alloc_reply *a)
{
	static uint8_t data[BATCH];
	uint8_t req[DSM_RW_REQ_SIZE];
	uint32_t rlen;

	for (uint64_t off = 0; off < a->size; off += BATCH) {
		struct dsm_rw_req m = { .region_id = a->region_id,
					.pool_off = a->pool_off + off,
					.npages = DSM_MAX_BATCH_PAGES };

		dsm_rw_req_encode(&m, req);
		TH_CHECK(th_call(fd, DSM_MSG_READ, raw_id++, req, sizeof(req),
				 data, sizeof(data), &rlen) == 0);
		TH_CHECK(rlen == BATCH);
		for (size_t pg = 0; pg < BATCH; pg += DSM_PAGE_SIZE)
			if (memcmp(data + pg, zero_page, DSM_PAGE_SIZE)) {
				fprintf(stderr, "pool page at %llu is not zero\n",
					(unsigned long long)(m.pool_off + pg));
				return false;
			}
	}
	return true;
}

/*
 * The server's half: pool pages a client wrote and then gave up, by FREE
 * or by going away, read as zeros in the next region placed on them.  The
 * regions span the whole pool, so the next one can only lie there.
 */
static void server_zeroes_freed_pages(const struct th_server *srv)
{
	struct dsm_alloc_reply a, b;
	int fd = th_hello_connect(srv->port), err;

	TH_CHECK(fd >= 0);
	TH_CHECK(raw_alloc_pool(fd, &a) == 0);
	raw_fill(fd, &a);
	raw_free(fd, &a);
	TH_CHECK(raw_alloc_pool(fd, &b) == 0);
	TH_CHECK(b.pool_off == a.pool_off);
	TH_CHECK(raw_reads_zeros(fd, &b));
	/* the owner disconnects without a FREE */
	raw_fill(fd, &b);
	close(fd);
	fd = th_hello_connect(srv->port);
	TH_CHECK(fd >= 0);
	/* the server frees the region once it has seen the close */
	for (int i = 0; (err = raw_alloc_pool(fd, &a)) == -ENOSPC && i < 500;
	     i++)
		usleep(10 * 1000);
	TH_CHECK(err == 0 && a.pool_off == b.pool_off);
	TH_CHECK(raw_reads_zeros(fd, &a));
	raw_free(fd, &a);
	close(fd);
}

/* --- the client's half, through the library ------------------------- */

/*
 * The client's half: the whole pool is filled and written back, freed, and
 * allocated again, so the new region lies on exactly the server pages that
 * held the old data.  It reads as zeros, made here: a never-written page is
 * zero-filled, never fetched (fault.c), so not one page may come from the
 * server, which could hand back anything.  (That the server's copy is zeros
 * too is server_zeroes_freed_pages' business.)
 */
static void freed_capacity_reads_zeros(void)
{
	struct dsm_stats before = tc_stats(), after;
	uint8_t *p = dsm_alloc(POOL), *q;

	TH_CHECK(p);
	memset(p, 0xcd, POOL);
	TH_CHECK(dsm_sync(p, POOL) == 0);
	/* every page's data is on the server */
	after = tc_stats();
	TH_CHECK(after.pages_written_back - before.pages_written_back >=
		 POOL / DSM_PAGE_SIZE);
	dsm_free(p);
	before = after;
	q = dsm_alloc(POOL); /* only if all of p's capacity came back */
	TH_CHECK(q);
	for (size_t off = 0; off < POOL; off += DSM_PAGE_SIZE)
		TH_CHECK(memcmp(q + off, zero_page, DSM_PAGE_SIZE) == 0);
	after = tc_stats();
	TH_CHECK(after.pages_fetched == before.pages_fetched);
	TH_CHECK(after.pages_zero_filled - before.pages_zero_filled >=
		 POOL / DSM_PAGE_SIZE);
	dsm_free(q);
}

/* --- the error contract ---------------------------------------------- */

static void before_init(void)
{
	struct dsm_stats s;

	errno = 0;
	TH_CHECK(dsm_alloc(4096) == NULL && errno == ENOTCONN);
	TH_CHECK(dsm_sync((void *)4096, 1) == -ENOTCONN);
	TH_CHECK(dsm_stats(&s) == -ENOTCONN);
	dsm_free((void *)4096); /* ignored */
	dsm_shutdown();         /* no-op */
}

/* Each of bad[] (NULL-terminated) as the value of variable name makes
 * dsm_init fail with -EINVAL; name is unset afterwards. */
static void refused(const struct dsm_options *o, const char *name,
		    const char *const *bad)
{
	for (; *bad; bad++) {
		setenv(name, *bad, 1);
		TH_CHECK(dsm_init(o) == -EINVAL);
	}
	unsetenv(name);
}

static void bad_options(const char *addr)
{
	struct dsm_options o = { .servers = addr };

	/* A failed dsm_init must close nothing of the program's: once it
	 * closed descriptor 0 (a zeroed engine's "memfd"), the program's
	 * stdin, and the next open took its place. */
	if (fcntl(0, F_GETFD) < 0)
		TH_CHECK(open("/dev/null", O_RDONLY) == 0);

	unsetenv("DSM_SERVERS");
	TH_CHECK(dsm_init(NULL) == -EINVAL);          /* no server given */
	TH_CHECK(fcntl(0, F_GETFD) >= 0);
	setenv("DSM_REGISTRY", "redis://127.0.0.1:1", 1); /* nobody there */
	TH_CHECK(dsm_init(NULL) == -ECONNREFUSED);
	setenv("DSM_REGISTRY", "redis://host:port:x/0", 1);
	TH_CHECK(dsm_init(NULL) == -EINVAL);
	setenv("DSM_REGISTRY", "redis://127.0.0.1:1", 1);
	setenv("DSM_CLUSTER", "no spaces", 1);
	TH_CHECK(dsm_init(NULL) == -EINVAL);
	unsetenv("DSM_CLUSTER");
	unsetenv("DSM_REGISTRY");
	setenv("DSM_LOCAL_MEM", "lots", 1);
	TH_CHECK(dsm_init(&o) == -EINVAL);
	setenv("DSM_LOCAL_MEM", "64M", 1);
	setenv("DSM_EVICT", "lru", 1);
	TH_CHECK(dsm_init(&o) == -EINVAL);
	unsetenv("DSM_EVICT");
	/* microseconds, 0..10000 */
	refused(&o, "DSM_POLL_US",
		(const char *[]){ "x", "-1", "10001", "5K", NULL });
	/* milliseconds, 1..600000 */
	refused(&o, "DSM_CONNECT_TIMEOUT_MS",
		(const char *[]){ "0", "5s", "600001", NULL });
	/* milliseconds, 1..3600000 */
	refused(&o, "DSM_REPLY_TIMEOUT_MS",
		(const char *[]){ "0", "30s", "3600001", NULL });
	/* milliseconds, 1000..3600000 */
	refused(&o, "DSM_TCP_TIMEOUT_MS",
		(const char *[]){ "999", "20s", "3600001", NULL });
	refused(&o, "DSM_PREDICT_WRITES",
		(const char *[]){ "2", "yes", NULL });
	refused(&o, "DSM_EVICT_WINDOW",
		(const char *[]){ "2", "on", NULL });
	refused(&o, "DSM_EVICT_CAPTURE",
		(const char *[]){ "2", "on", NULL });
	refused(&o, "DSM_ALLOW_REMOTE_WITHOUT_SECRET",
		(const char *[]){ "2", "on", NULL });
	o.servers = "localhost";                        /* no port */
	TH_CHECK(dsm_init(&o) == -EINVAL);
	o.servers = "127.0.0.1:1";                      /* nobody there */
	TH_CHECK(dsm_init(&o) == -ECONNREFUSED);
	/* environment only, as a user would */
	setenv("DSM_SERVERS", addr, 1);
	TH_CHECK(dsm_init(NULL) == 0);
	TH_CHECK(dsm_init(NULL) == -EALREADY);
	dsm_shutdown();
	unsetenv("DSM_LOCAL_MEM");
}

/*
 * A server that never answers the connect: a listener whose accept queue
 * one connection fills (backlog 0, never accepted) drops the SYNs that
 * follow, as a host that is down or firewalled would.  dsm_init must give
 * up with -ETIMEDOUT after its connect deadline, not wait for the
 * kernel's two minutes of retries.
 */
static void connect_times_out(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int l = socket(AF_INET, SOCK_STREAM, 0), fill = -1;
	struct dsm_options o = { 0 };
	char addr[64];
	uint64_t t0;
	int err;

	TH_CHECK(l >= 0 && bind(l, (struct sockaddr *)&a, sizeof(a)) == 0 &&
		 listen(l, 0) == 0 &&
		 getsockname(l, (struct sockaddr *)&a, &len) == 0);
	fill = socket(AF_INET, SOCK_STREAM, 0);
	TH_CHECK(fill >= 0 &&
		 connect(fill, (struct sockaddr *)&a, sizeof(a)) == 0);
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", ntohs(a.sin_port));
	o.servers = addr;
	setenv("DSM_CONNECT_TIMEOUT_MS", "3000", 1); /* the knob is heeded */
	t0 = dsm_now_ns();
	err = dsm_init(&o);
	unsetenv("DSM_CONNECT_TIMEOUT_MS");
	t0 = (dsm_now_ns() - t0) / 1000000;
	printf("dsm_init against a silent listener: %s after %llu ms\n",
	       strerror(-err), (unsigned long long)t0);
	TH_CHECK(err == -ETIMEDOUT);
	TH_CHECK(t0 >= 2500 && t0 < 10000);
	close(fill);
	close(l);
}

static void bad_calls(void)
{
	char *p;
	int local;

	errno = 0;
	TH_CHECK(dsm_alloc(0) == NULL && errno == EINVAL);
	errno = 0;
	TH_CHECK(dsm_alloc(1ULL << 30) == NULL && errno == ENOMEM); /* > 64M */
	p = dsm_alloc(10000);        /* rounded up to 3 pages */
	TH_CHECK(p && ((uintptr_t)p & 4095) == 0);
	for (int i = 0; i < 3 * 4096; i++)
		TH_CHECK(p[i] == 0);
	memset(p, 0xab, 3 * 4096);
	TH_CHECK(dsm_sync(p, 3 * 4096) == 0);
	TH_CHECK(dsm_sync(p, 3 * 4096 + 1) == -EINVAL); /* past the end */
	TH_CHECK(dsm_sync(&local, 4) == -EINVAL);       /* not far memory */
	TH_CHECK(dsm_sync(p, 0) == 0);
	dsm_free(p + 4096);          /* not the start: logged, ignored */
	dsm_free(&local);
	TH_CHECK(p[4096] == (char)0xab);
	dsm_free(p);
	freed_capacity_reads_zeros();
}

/*
 * A server filled by another client after this one connected answers
 * ALLOC with -ENOSPC.  dsm_alloc learns that (the server's STATS) and
 * places the region on a server with room, instead of failing or choosing
 * the full server again: the first server looks emptier from HELLO, so
 * every deal would give it the region.
 */
static void full_server_avoided(void)
{
	struct th_server big, small;
	struct dsm_options o = { .local_mem = 1u << 20 };
	struct dsm_alloc_reply a;
	char list[128];
	uint64_t *p;
	int fd;

	TH_CHECK(th_server_start(&big, POOL_STR) == 0);
	TH_CHECK(th_server_start(&small, "32M") == 0);
	snprintf(list, sizeof(list), "%s,%s", big.addr, small.addr);
	o.servers = list;
	TH_CHECK(dsm_init(&o) == 0);
	fd = th_hello_connect(big.port);
	TH_CHECK(fd >= 0 && raw_alloc_pool(fd, &a) == 0); /* big is full */
	for (int round = 0; round < 2; round++) {
		size_t n = (8u << 20) / sizeof(*p);

		p = dsm_alloc(n * sizeof(*p));
		TH_CHECK(p);
		for (size_t i = 0; i < n; i += 97)
			p[i] = i * 31 + round;
		for (size_t i = 0; i < n; i += 97)
			TH_CHECK(p[i] == i * 31 + round);
		dsm_free(p);
	}
	dsm_shutdown();
	close(fd);
	th_server_stop(&small);
	th_server_stop(&big);
}

int main(void)
{
	struct th_server srv;
	struct dsm_options o = { 0 };

	TH_CHECK(th_server_start(&srv, POOL_STR) == 0);
	server_zeroes_freed_pages(&srv);
	before_init();
	bad_options(srv.addr);
	connect_times_out();
	o.servers = srv.addr;
	o.local_mem = 1u << 20;
	TH_CHECK(dsm_init(&o) == 0);
	bad_calls();
	dsm_shutdown();
	/* init again after shutdown */
	TH_CHECK(dsm_init(&o) == 0);
	bad_calls();
	dsm_shutdown();
	th_server_stop(&srv);
	full_server_avoided();
	TH_CHECK(strcmp(dsm_strerror(-ENOMEM), strerror(ENOMEM)) == 0);
	printf("api: ok\n");
	return 0;
}
