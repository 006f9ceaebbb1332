/*
 * client_util.h - what the client tests share (room: tests): a server of
 * their own and a library initialised against it with a small budget.
 */
#ifndef DSM_TEST_CLIENT_UTIL_H
#define DSM_TEST_CLIENT_UTIL_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dsm.h"
#include "harness.h"

/* Start a server and dsm_init() against it with the given budget. */
static inline void tc_start(struct th_server *srv, const char *capacity,
			    size_t budget, unsigned prefetch)
{
	struct dsm_options o = { 0 };
	int err;

	TH_CHECK(th_server_start(srv, capacity) == 0);
	o.servers = srv->addr;
	o.local_mem = budget;
	o.prefetch_max = prefetch;
	err = dsm_init(&o);
	if (err) {
		fprintf(stderr, "dsm_init: %s\n", dsm_strerror(err));
		exit(1);
	}
}

static inline struct dsm_stats tc_stats(void)
{
	struct dsm_stats s;

	TH_CHECK(dsm_stats(&s) == 0);
	return s;
}

/* splitmix64: cheap, well-mixed values that a missing write would show. */
static inline uint64_t tc_mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

#endif
