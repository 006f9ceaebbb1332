/*
 * test_replicas.c - DSM_REPLICAS=2 over three servers: one server
 * SIGKILLed under eight threads of checked random reads and writes, and
 * nothing is lost (room: tests).
 *
 * Each thread owns every eighth word of a region eight times the budget,
 * so most of it lives only on the servers; it keeps what each word must
 * hold in local memory and checks every read against it.  Halfway, one of
 * the three servers is stopped, so that threads wait on READs from it,
 * then killed: with two copies of every stripe on distinct servers, every
 * page still has a copy, so no thread may see SIGBUS or a wrong word,
 * during the run or in the full check after it, and the READs that were
 * waiting are answered by the other copy (fetch_failovers).  While the
 * threads run on, the mover makes the lost copies again on the servers
 * left (pages_rereplicated, degraded_stripes back to 0, each survivor
 * holding exactly one copy of every stripe: the copies are on distinct
 * servers, as the client's extent map says too), and then a second server
 * is killed: with every stripe copied again, its last copy is on the
 * third, and still nothing may be lost.  The servers have 64, 256 and 128
 * MiB: the first killed holds the first copy of every stripe (the one
 * read), the second killed the other, and placement by free space alone
 * would make the lost copies again next to it.
 * Then copies must land on distinct servers even when one server has far
 * more room (killed, the other has everything), and the same setup with
 * one server must refuse the region: two copies need two servers.  Without the write-backs to the second copy the kill
 * costs pages (SIGBUS, wrong words); without the failover the waiting
 * READs raise SIGBUS; without re-replication the second kill does.
 */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <unistd.h>

#include "client_util.h"
#include "engine.h"
#include "region.h"
#include "util.h"

#define NSERVERS 3
#define BUDGET (2u << 20)
#define SIZE (16u << 20)
#define WORDS (SIZE / 8)
#define THREADS 8
#define RUN_MS 3000
#define REREPLICATE_MS 20000 /* the most re-replication may take here */

static volatile uint64_t *far;
static uint64_t *want;           /* what each word must hold */
static int stop;                 /* atomic: the workers' signal to end */
static long bad_words, sigbus;   /* atomic */

static __thread sigjmp_buf on_bus;

static void bus_handler(int sig __attribute__((unused)))
{
	siglongjmp(on_bus, 1);
}

/* One checked read-modify-write of word i; false on SIGBUS. */
static bool touch(uint64_t i, uint64_t v)
{
	if (sigsetjmp(on_bus, 1)) {
		__atomic_add_fetch(&sigbus, 1, __ATOMIC_RELAXED);
		return false;
	}
	if (far[i] != want[i])
		__atomic_add_fetch(&bad_words, 1, __ATOMIC_RELAXED);
	far[i] = v;
	want[i] = v;
	return true;
}

static void *worker(void *arg)
{
	uint64_t t = (uintptr_t)arg, n = 0, x = tc_mix(t + 1);

	while (!__atomic_load_n(&stop, __ATOMIC_RELAXED)) {
		uint64_t i;

		x = tc_mix(x);
		i = (x % (WORDS / THREADS)) * THREADS + t;
		if (!touch(i, tc_mix(i ^ ++n << 20)))
			break;
	}
	return NULL;
}

/* The client's own map (engine.h): every extent's copies on distinct
 * servers that are up, none stale. */
static bool copies_distinct(void)
{
	bool ok = true;

	pthread_mutex_lock(&dsm_eng.lock);
	for (uint32_t i = 0; i < dsm_eng.nregions; i++) {
		const struct dsm_placement *pl = &dsm_eng.regions[i]->place;

		for (uint32_t j = 0; j < pl->n; j++) {
			const struct dsm_extent *e = &pl->ext[j];
			uint32_t seen = 0;

			ok &= !e->stale;
			for (uint32_t c = 0; c <= e->nrep; c++) {
				uint32_t s = dsm_extent_copy(e, c).server;

				ok &= !(seen >> s & 1) && !dsm_eng.servers[s].lost;
				seen |= 1u << s;
			}
		}
	}
	pthread_mutex_unlock(&dsm_eng.lock);
	return ok;
}

/* Re-replication is done: no stripe lacks a copy, and each of the two
 * servers left holds one copy of every stripe and nothing else, which it
 * could not if two copies of a stripe shared a server. */
static bool rereplicated(const struct th_server *a, const struct th_server *b)
{
	struct dsm_stats st = tc_stats();

	return st.pages_rereplicated > 0 && st.degraded_stripes == 0 &&
	       th_server_used(a) == SIZE && th_server_used(b) == SIZE;
}

/* Wait (bounded) until the copies lost with a server are made again. */
static void wait_rereplicated(const struct th_server *a,
			      const struct th_server *b)
{
	uint64_t t0 = (dsm_now_ns() / 1000000);
	struct dsm_stats st;

	while (!rereplicated(a, b)) {
		if ((dsm_now_ns() / 1000000) - t0 > REREPLICATE_MS) {
			st = tc_stats();
			fprintf(stderr, "FAIL: not re-replicated in %d ms: %llu "
				"pages copied again, %llu stripes degraded, "
				"servers hold %llu and %llu bytes of %u\n",
				REREPLICATE_MS,
				(unsigned long long)st.pages_rereplicated,
				(unsigned long long)st.degraded_stripes,
				(unsigned long long)th_server_used(a),
				(unsigned long long)th_server_used(b), SIZE);
			exit(1);
		}
		usleep(50 * 1000);
	}
	TH_CHECK(copies_distinct());
	printf("re-replicated in %llu ms: %llu pages copied again\n",
	       (unsigned long long)((dsm_now_ns() / 1000000) - t0),
	       (unsigned long long)tc_stats().pages_rereplicated);
}

static void run_and_kill(struct th_server *srv)
{
	pthread_t th[THREADS];
	struct dsm_stats st;

	for (uint64_t i = 0; i < WORDS; i++)
		far[i] = want[i] = tc_mix(i);
	for (uintptr_t t = 0; t < THREADS; t++)
		TH_CHECK(pthread_create(&th[t], NULL, worker, (void *)t) == 0);
	usleep(RUN_MS / 2 * 1000);
	/* stopped first, so that threads wait on READs from it when it dies:
	 * those must be answered by the other copy (fetch failover) */
	TH_CHECK(kill(srv[1].pid, SIGSTOP) == 0);
	usleep(300 * 1000);
	th_server_kill(&srv[1]);
	printf("killed server %s under %d threads\n", srv[1].addr, THREADS);
	usleep(RUN_MS / 2 * 1000);
	wait_rereplicated(&srv[0], &srv[2]);
	/* the second failure: what the first took is on the third server */
	th_server_kill(&srv[2]);
	printf("killed server %s under %d threads\n", srv[2].addr, THREADS);
	usleep(RUN_MS / 2 * 1000);
	__atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
	for (int t = 0; t < THREADS; t++)
		pthread_join(th[t], NULL);
	for (uint64_t i = 0; i < WORDS; i++)
		if (!touch(i, want[i]))
			break;
	TH_CHECK(dsm_stats(&st) == 0);
	printf("sigbus %ld, wrong words %ld; page copies to replicas %llu, "
	       "fetches failed over %llu\n", sigbus, bad_words,
	       (unsigned long long)st.pages_replicated,
	       (unsigned long long)st.fetch_failovers);
	TH_CHECK(sigbus == 0);
	TH_CHECK(bad_words == 0);
	TH_CHECK(st.pages_replicated > 0);
	TH_CHECK(st.fetch_failovers > 0);
}

/* Copies go on distinct servers even when one server has far more room
 * than the other (placement by free space alone would put both copies
 * of a stripe on it): the larger one killed, everything reads back. */
static void distinct_copies(void)
{
	struct th_server big, small;
	struct dsm_options o = { .local_mem = BUDGET };
	char list[2 * 64];
	volatile uint64_t *p;

	TH_CHECK(th_server_start(&big, "256M") == 0);
	TH_CHECK(th_server_start(&small, "16M") == 0);
	snprintf(list, sizeof(list), "%s,%s", big.addr, small.addr);
	o.servers = list;
	TH_CHECK(dsm_init(&o) == 0);
	p = dsm_alloc(SIZE / 2);
	TH_CHECK(p);
	for (uint64_t i = 0; i < SIZE / 2 / 8; i++)
		p[i] = tc_mix(i);
	th_server_kill(&big);
	for (uint64_t i = 0; i < SIZE / 2 / 8; i++) {
		if (sigsetjmp(on_bus, 1)) {
			fprintf(stderr, "FAIL: SIGBUS at word %llu: its copies "
				"were on one server\n", (unsigned long long)i);
			exit(1);
		}
		TH_CHECK(p[i] == tc_mix(i));
	}
	dsm_free((void *)p);
	dsm_shutdown();
	th_server_stop(&small);
	printf("distinct servers: OK\n");
}

/* Two copies cannot go on one server: the region is refused, clearly. */
static void too_few_servers(struct th_server *one)
{
	struct dsm_options o = { .servers = one->addr, .local_mem = BUDGET };

	TH_CHECK(dsm_init(&o) == 0);
	errno = 0;
	TH_CHECK(dsm_alloc(SIZE) == NULL && errno == ENOMEM);
	dsm_shutdown();
}

static void bad_values(struct th_server *one)
{
	static const char *const bad[] = { "0", "4", "two", "-1" };
	struct dsm_options o = { .servers = one->addr, .local_mem = BUDGET };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		setenv("DSM_REPLICAS", bad[i], 1);
		TH_CHECK(dsm_init(&o) == -EINVAL);
	}
	setenv("DSM_REPLICAS", "2", 1);
}

int main(void)
{
	static const char *const cap[NSERVERS] = { "64M", "256M", "128M" };
	struct th_server srv[NSERVERS];
	struct dsm_options o = { .local_mem = BUDGET };
	char list[3 * 64];
	struct sigaction sa = { .sa_handler = bus_handler };

	setenv("DSM_REPLICAS", "2", 1);
	for (int i = 0; i < NSERVERS; i++)
		TH_CHECK(th_server_start(&srv[i], cap[i]) == 0);
	snprintf(list, sizeof(list), "%s,%s,%s", srv[0].addr, srv[1].addr,
		 srv[2].addr);
	bad_values(&srv[0]);
	too_few_servers(&srv[0]);

	sigemptyset(&sa.sa_mask);
	TH_CHECK(sigaction(SIGBUS, &sa, NULL) == 0);
	want = calloc(WORDS, sizeof(*want));
	TH_CHECK(want);
	o.servers = list;
	TH_CHECK(dsm_init(&o) == 0);
	far = dsm_alloc(SIZE);
	TH_CHECK(far);
	run_and_kill(srv);
	dsm_free((void *)far);
	dsm_shutdown();
	th_server_stop(&srv[0]);
	distinct_copies();
	free(want);
	printf("replicas: OK\n");
	return 0;
}
