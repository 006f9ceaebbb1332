/*
 * test_server_stopped.c - a server that is alive but does not answer
 * (SIGSTOP): every wait of the client's is bounded (room: tests).
 *
 * A stopped server's kernel still acknowledges what we send, so TCP sees
 * nothing wrong; only the client's own deadline (DSM_REPLY_TIMEOUT_MS,
 * 1 s here) ends its waits.  Each step checks one of them, under an
 * alarm that names it if it hangs:
 *   - dsm_sync of dirty pages: the wait for the write-backs;
 *   - dsm_alloc: the wait for the ALLOC reply (dsm_engine_call);
 *   - the preload shim's discard of a page being fetched: the wait for
 *     the fetch to land (lock_range), which holds the arena lock.
 * Each returns ETIMEDOUT within the bound.  Then the server resumes:
 * the late replies land on waits that were given up (freed by their
 * completions: ASan checks), the faulting thread gets its page, and
 * every word is right.
 */
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include "client_util.h"
#include "shim.h"
#include "util.h"

#define BUDGET (1u << 20)
#define SIZE (8u << 20)
#define PAGE 4096u
#define REPLY_MS 1000

static const char *step = "start";

static void on_alarm(int sig)
{
	(void)sig;
	fprintf(stderr, "FAIL: %s did not return within the bound\n", step);
	_exit(1);
}

static double since(uint64_t t0)
{
	return (dsm_now_ns() - t0) / 1e9;
}

/* The wait took the reply timeout, give or take scheduling. */
static void check_bounded(const char *what, int err, uint64_t t0)
{
	double s = since(t0);

	printf("%s: %s after %.2f s\n", what, dsm_strerror(err), s);
	TH_CHECK(err == -ETIMEDOUT);
	TH_CHECK(s >= REPLY_MS / 1000.0 * 0.9 && s < 10);
}

static void *touch(void *arg)
{
	volatile uint64_t *v = arg;

	return (void *)(uintptr_t)v[0]; /* evicted: a fetch the server holds */
}

int main(void)
{
	struct th_server srv;
	pthread_t reader;
	uint64_t *v, t0;
	void *got;
	int err;

	setenv("DSM_REPLY_TIMEOUT_MS", "1000", 1);
	tc_start(&srv, "64M", BUDGET, 1);
	v = dsm_alloc(SIZE);
	TH_CHECK(v);
	for (size_t i = 0; i < SIZE / 8; i++)
		v[i] = tc_mix(i);
	TH_CHECK(dsm_sync(v, SIZE) == 0);
	v[SIZE / 8 - 1] = 7; /* resident and dirty */
	signal(SIGALRM, on_alarm);
	TH_CHECK(kill(srv.pid, SIGSTOP) == 0);

	step = "dsm_sync";
	alarm(20);
	t0 = dsm_now_ns();
	err = dsm_sync(v + SIZE / 8 - 1, 8);
	check_bounded(step, err, t0);

	step = "dsm_alloc";
	t0 = dsm_now_ns();
	err = dsm_alloc(1 << 20) ? 0 : -errno;
	check_bounded(step, err, t0);

	step = "dsm_discard of a page being fetched";
	TH_CHECK(pthread_create(&reader, NULL, touch, v) == 0);
	usleep(200 * 1000); /* its READ is on the wire */
	t0 = dsm_now_ns();
	err = dsm_discard((uintptr_t)v, PAGE);
	check_bounded(step, err, t0);

	step = "resuming";
	TH_CHECK(kill(srv.pid, SIGCONT) == 0);
	TH_CHECK(pthread_join(reader, &got) == 0);
	TH_CHECK((uint64_t)(uintptr_t)got == tc_mix(0));
	TH_CHECK(dsm_sync(v, SIZE) == 0);
	for (size_t i = 0; i < SIZE / 8 - 1; i++)
		TH_CHECK(v[i] == tc_mix(i));
	TH_CHECK(v[SIZE / 8 - 1] == 7);
	alarm(0);
	dsm_free(v);
	dsm_shutdown();
	th_server_stop(&srv);
	printf("PASS\n");
	return 0;
}
