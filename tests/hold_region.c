/*
 * hold_region.c - a client for tests/test_cluster.sh to kill (room: tests):
 * joins the cluster named by DSM_REGISTRY/DSM_CLUSTER, allocates 8 MiB of
 * far memory, writes all of it (so the servers hold its pages), then waits
 * to be killed.  Not a test on its own.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "dsm.h"

int main(void)
{
	struct dsm_options o = { .local_mem = 1 << 20 };
	size_t len = 8 << 20;
	char *p;
	int err = dsm_init(&o);

	if (err) {
		fprintf(stderr, "hold_region: dsm_init: %s\n", dsm_strerror(err));
		return 1;
	}
	p = dsm_alloc(len);
	if (!p) {
		perror("hold_region: dsm_alloc");
		return 1;
	}
	memset(p, 0x5a, len);
	printf("holding %zu bytes\n", len);
	fflush(stdout);
	for (;;)
		pause();
}
