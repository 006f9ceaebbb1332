/*
 * test_api.c - the public API's error contract (include/dsm.h) (room:
 * tests): every bad call gets the documented error and changes nothing.
 */
#include <unistd.h>

#include "client_util.h"

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

static void bad_options(const char *addr)
{
	struct dsm_options o = { .servers = addr };

	unsetenv("DSM_SERVERS");
	TH_CHECK(dsm_init(NULL) == -EINVAL);          /* no server given */
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
	for (int i = 0; i < 4; i++) {  /* microseconds, 0..10000 */
		static const char *bad[] = { "x", "-1", "10001", "5K" };

		setenv("DSM_POLL_US", bad[i], 1);
		TH_CHECK(dsm_init(&o) == -EINVAL);
	}
	unsetenv("DSM_POLL_US");
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

static void bad_calls(void)
{
	char *p, *q;
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
	/* freed capacity is reusable, and reads as zeros again */
	q = dsm_alloc(60u << 20);
	TH_CHECK(q);
	TH_CHECK(q[0] == 0 && q[(60u << 20) - 1] == 0);
	dsm_free(q);
}

int main(void)
{
	struct th_server srv;
	struct dsm_options o = { 0 };

	TH_CHECK(th_server_start(&srv, "64M") == 0);
	before_init();
	bad_options(srv.addr);
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
	TH_CHECK(strcmp(dsm_strerror(-ENOMEM), strerror(ENOMEM)) == 0);
	printf("api: ok\n");
	return 0;
}
