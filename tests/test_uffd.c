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

static void on_bus(int sig)
{
	siglongjmp(jb, 1);
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
	wp_target[0] = 9; /* blocks in a WP fault until cleared */
	return NULL;
}

/* ThreadSanitizer records a store before the store faults, so it would
 * report the writer's blocked store as racing with the check below that
 * it has not happened: a property of userfaultfd, not a race. */
__attribute__((no_sanitize("thread")))
static void test_wp_fault(void)
{
	uint8_t *p = fresh(1), src[PG] = { 0 };
	struct pollfd pfd = { u.fd, POLLIN, 0 };
	struct uffd_msg m;
	unsigned skipped;
	pthread_t th;

	TH_CHECK(dsm_uffd_copy(&u, (uintptr_t)p, src, PG, true, &skipped) == 0);
	wp_target = p;
	TH_CHECK(pthread_create(&th, NULL, writer, NULL) == 0);
	TH_CHECK(poll(&pfd, 1, 5000) == 1);
	TH_CHECK(read(u.fd, &m, sizeof(m)) == sizeof(m));
	TH_CHECK(m.event == UFFD_EVENT_PAGEFAULT);
	TH_CHECK(m.arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP);
	TH_CHECK((m.arg.pagefault.address & ~4095ULL) == (uintptr_t)p);
	TH_CHECK(p[0] == 0); /* the store has not happened */
	TH_CHECK(dsm_uffd_wp(&u, (uintptr_t)p, PG, false) == 0);
	pthread_join(th, NULL);
	TH_CHECK(p[0] == 9);
	/* protection back on: reads still work, the store faults again */
	TH_CHECK(dsm_uffd_wp(&u, (uintptr_t)p, PG, true) == 0);
	TH_CHECK(p[0] == 9);
	munmap(p, PG);
}

static void test_poison(void)
{
	uint8_t *p = fresh(2), src[PG];
	unsigned skipped;

	if (!u.can_poison) {
		printf("skip: poison: kernel lacks UFFD_FEATURE_POISON (6.6+)\n");
		return;
	}
	memset(src, 5, PG);
	TH_CHECK(dsm_uffd_copy(&u, (uintptr_t)p, src, PG, true, &skipped) == 0);
	/* a present page keeps its data; the missing one is poisoned */
	TH_CHECK(dsm_uffd_poison(&u, (uintptr_t)p, 2 * PG) == 0);
	TH_CHECK(p[0] == 5);
	signal(SIGBUS, on_bus);
	if (sigsetjmp(jb, 1) == 0) {
		volatile uint8_t v = p[PG];

		(void)v;
		TH_CHECK(!"poisoned page was readable");
	}
	signal(SIGBUS, SIG_DFL);
	munmap(p, 2 * PG);
}

int main(void)
{
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
	printf("skip: EAGAIN and ESRCH need a concurrently changing or exiting "
	       "address space; see uffd.c for their handling\n");
	dsm_uffd_close(&u);
	printf("uffd: ok\n");
	return 0;
}
