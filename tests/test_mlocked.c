/*
 * test_mlocked.c - far memory the program mlocks cannot be evicted, and
 * must keep working (room: tests).
 *
 * Eviction drops pages with MADV_DONTNEED, which the kernel refuses on
 * mlocked memory (EINVAL).  A refused page is still mapped, and a dirty
 * one has just been write-protected for its write-back: marked INVALID
 * anyway, every later store to it took a WP fault that was never
 * resolved, and the program spun forever.  Here a locked run of dirty
 * pages is pushed through eviction many times while the rest of the
 * region pages in and out; then every locked page is written again (the
 * store that used to hang, bounded by an alarm), and every word of the
 * region is checked.
 */
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include "client_util.h"

#define BUDGET (1u << 20)
#define SIZE (8u << 20)
#define LOCKED (256u << 10) /* a quarter of the budget */
#define WORDS_PER_PAGE (4096 / 8)

static void on_alarm(int sig)
{
	static const char msg[] = "FAIL: a store to an mlocked far page "
				  "never completed\n";

	(void)sig;
	if (write(2, msg, sizeof(msg) - 1) < 0)
		_exit(1);
	_exit(1);
}

/* Write round r's value into the first word of every page of [off, end). */
static void stamp(uint64_t *v, size_t off, size_t end, uint64_t r)
{
	for (size_t i = off / 8; i < end / 8; i += WORDS_PER_PAGE)
		v[i] = tc_mix(i + r);
}

static void check(const uint64_t *v, size_t off, size_t end, uint64_t r)
{
	for (size_t i = off / 8; i < end / 8; i += WORDS_PER_PAGE)
		TH_CHECK(v[i] == tc_mix(i + r));
}

int main(void)
{
	struct th_server srv;
	struct dsm_stats s;
	uint64_t *v;

	tc_start(&srv, "64M", BUDGET, 0);
	v = dsm_alloc(SIZE);
	TH_CHECK(v);
	stamp(v, 0, LOCKED, 1);
	if (mlock(v, LOCKED)) {
		printf("SKIP: mlock: %s\n", strerror(errno));
		dsm_shutdown();
		th_server_stop(&srv);
		return 77;
	}
	signal(SIGALRM, on_alarm);
	for (uint64_t r = 2; r < 6; r++) {
		alarm(30);
		/* sweeps the unlocked rest through the budget: the locked,
		 * dirty pages come up as victims every lap */
		stamp(v, LOCKED, SIZE, r);
		check(v, LOCKED, SIZE, r);
		stamp(v, 0, LOCKED, r); /* the stores that used to hang */
		check(v, 0, LOCKED, r);
	}
	alarm(0);
	s = tc_stats();
	printf("evicted %lu resident %lu budget %lu\n",
	       (unsigned long)s.pages_evicted, (unsigned long)s.resident_pages,
	       (unsigned long)s.budget_pages);
	TH_CHECK(s.pages_evicted > 0);
	TH_CHECK(munlock(v, LOCKED) == 0);
	/* unlocked, they page out and back like any other */
	stamp(v, LOCKED, SIZE, 7);
	check(v, 0, LOCKED, 5);
	dsm_free(v);
	dsm_shutdown();
	th_server_stop(&srv);
	printf("PASS\n");
	return 0;
}
