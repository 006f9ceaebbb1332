/*
 * test_uffd.c - the userfaultfd layer (client/uffd.c), ioctl by ioctl, and
 * what each error becomes (room: tests).  Modelled on the kernel's uffd
 * selftests: each feature is probed, and what cannot be provoked here says
 * so.
 */
#include <poll.h>
#include <pthread.h>
#include <errno.h>
#include <setjmp.h>
#include <stdbool.h>
#include <string.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>
#include <linux/userfaultfd.h>

#include "harness.h"
#include "uffd.h"
#include "uffd_compat.h"

#define PG 4096

static struct dsm_uffd u;
static sigjmp_buf jb;
static void *volatile bus_addr;

static void on_bus(int sig, siginfo_t *si, void *uc)
{
	bus_addr = si->si_addr;
	siglongjmp(jb, 1);
}

/* An access that blocks in a missing fault nobody serves would hang the
 * test until ctest's timeout; say what happened instead. */
static void on_alarm(int sig)
{
	static const char msg[] = "uffd: an access blocked in a page fault "
				  "(the page was not poisoned)\n";

	(void)!write(2, msg, sizeof(msg) - 1);
	_exit(1);
}

/* Whether a read (or a store) at addr raises SIGBUS, and for addr. */
static bool raises_sigbus(volatile uint8_t *addr, bool store)
{
	struct sigaction sa = { .sa_sigaction = on_bus,
				.sa_flags = SA_SIGINFO }, old;

	TH_CHECK(sigaction(SIGBUS, &sa, &old) == 0);
	signal(SIGALRM, on_alarm);
	bus_addr = NULL;
	alarm(5);
	if (sigsetjmp(jb, 1) == 0) {
		if (store)
			*addr = 1;
		else
			(void)*addr;
	}
	alarm(0);
	TH_CHECK(sigaction(SIGBUS, &old, NULL) == 0);
	return bus_addr == (void *)addr;
}

static uint8_t *fresh(size_t pages)
{
	uint8_t *p = mmap(NULL, pages * PG, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	TH_CHECK(p != MAP_FAILED);
	TH_CHECK(dsm_uffd_register(&u, p, pages * PG) == 0);
	return p;
}

static void test_copy_eexist_partial(void)
{
	uint8_t *p = fresh(4), src[4 * PG];
	unsigned skipped;

	memset(src, 1, PG);
	TH_CHECK(dsm_uffd_copy(&u, (uintptr_t)p, src, PG, true, &skipped) == 0);
	TH_CHECK(skipped == 0 && p[0] == 1);
	/* again over a present page: EEXIST is the normal race, not an error */
	memset(src, 2, sizeof(src));
	TH_CHECK(dsm_uffd_copy(&u, (uintptr_t)p, src, PG, true, &skipped) == 0);
	TH_CHECK(skipped == 1 && p[0] == 1);
	/* a run whose first page is present: the rest still goes in */
	TH_CHECK(dsm_uffd_copy(&u, (uintptr_t)p, src, 4 * PG, true,
			       &skipped) == 0);
	TH_CHECK(skipped == 1);
	TH_CHECK(p[0] == 1 && p[PG] == 2 && p[3 * PG + PG - 1] == 2);
	munmap(p, 4 * PG);
}

static void test_copy_enoent(void)
{
	uint8_t *p = fresh(2), src[PG] = { 0 };
	unsigned skipped;

	/* unregistered: the range no longer belongs to this userfaultfd */
	TH_CHECK(dsm_uffd_unregister(&u, p, 2 * PG) == 0);
	TH_CHECK(dsm_uffd_copy(&u, (uintptr_t)p, src, PG, false,
			       &skipped) == -ENOENT);
	/* unmapped: the region was freed while a fetch was in flight */
	munmap(p, 2 * PG);
	TH_CHECK(dsm_uffd_copy(&u, (uintptr_t)p, src, PG, false,
			       &skipped) == -ENOENT);
}

static volatile uint8_t *wp_target;

static void *writer(void *arg)
{
	wp_target[0] = (uint8_t)(uintptr_t)arg; /* blocks in a WP fault */
	return NULL;
}

/*
 * A store of v to write-protected p from another thread stops in a WP
 * fault: the fault arrives on the userfaultfd, the page still holds
 * before, and clearing the protection lets the store finish.
 *
 * ThreadSanitizer records a store before the store faults, so it would
 * report the writer's blocked store as racing with the check below that
 * it has not happened: a property of userfaultfd, not a race.
 */
__attribute__((no_sanitize("thread")))
static void expect_wp_fault(uint8_t *p, uint8_t v, uint8_t before)
{
	struct pollfd pfd = { u.fd, POLLIN, 0 };
	struct uffd_msg m;
	pthread_t th;

	wp_target = p;
	TH_CHECK(pthread_create(&th, NULL, writer, (void *)(uintptr_t)v) == 0);
	TH_CHECK(poll(&pfd, 1, 5000) == 1); /* no fault: the store went in */
	TH_CHECK(read(u.fd, &m, sizeof(m)) == sizeof(m));
	TH_CHECK(m.event == UFFD_EVENT_PAGEFAULT);
	TH_CHECK(m.arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP);
	TH_CHECK((m.arg.pagefault.address & ~(PG - 1ULL)) == (uintptr_t)p);
	TH_CHECK(p[0] == before); /* the store has not happened */
	TH_CHECK(dsm_uffd_wp(&u, (uintptr_t)p, PG, false) == 0);
	pthread_join(th, NULL);
	TH_CHECK(p[0] == v);
}

__attribute__((no_sanitize("thread")))
static void test_wp_fault(void)
{
	uint8_t *p = fresh(1), src[PG] = { 0 };
	unsigned skipped;

	TH_CHECK(dsm_uffd_copy(&u, (uintptr_t)p, src, PG, true, &skipped) == 0);
	expect_wp_fault(p, 9, 0);
	/* protection back on: reads still work, the store faults again */
	TH_CHECK(dsm_uffd_wp(&u, (uintptr_t)p, PG, true) == 0);
	TH_CHECK(p[0] == 9);
	expect_wp_fault(p, 10, 9);
	munmap(p, PG);
}

/* A case this kernel cannot run is reported as skipped, not passed: the
 * line is collected into tests/run.sh's summary (tests/CMakeLists.txt). */
static void test_poison(void)
{
	uint8_t *p, src[PG];
	unsigned skipped;

	if (!u.can_poison) {
		printf("SKIP: uffd poison: kernel lacks UFFD_FEATURE_POISON "
		       "(6.6+); a lost page's SIGBUS is untested here\n");
		return;
	}
	p = fresh(2);
	memset(src, 5, PG);
	TH_CHECK(dsm_uffd_copy(&u, (uintptr_t)p, src, PG, true, &skipped) == 0);
	/* a present page keeps its data; the missing one is poisoned:
	 * reading or writing it raises SIGBUS at its address, every time */
	TH_CHECK(dsm_uffd_poison(&u, (uintptr_t)p, 2 * PG) == 0);
	TH_CHECK(p[0] == 5);
	TH_CHECK(raises_sigbus(p + PG, false));
	TH_CHECK(raises_sigbus(p + PG, true));
	TH_CHECK(raises_sigbus(p + 2 * PG - 1, false));
	TH_CHECK(p[0] == 5);
	munmap(p, 2 * PG);
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0); /* lines survive an _exit */
	TH_CHECK(dsm_uffd_open(&u) == 0);
	printf("features %#llx kernel_faults %d poison %d thread_id %d\n",
	       (unsigned long long)u.features, u.kernel_faults, u.can_poison,
	       u.thread_id);
	TH_CHECK(u.features & UFFD_FEATURE_PAGEFAULT_FLAG_WP);
	test_copy_eexist_partial();
	test_copy_enoent();
	test_wp_fault();
	test_poison();
	/* Not provokable from a test, and handled by the same code path:
	 * EAGAIN (address space changing during the copy, retried) and
	 * ESRCH/ENOSPC (the faulting process is exiting). */
	printf("untested: EAGAIN and ESRCH need a concurrently changing or "
	       "exiting address space; see uffd.c for their handling\n");
	dsm_uffd_close(&u);
	printf("uffd: ok\n");
	return 0;
}
