/*
 * fail_malloc.c - LD_PRELOAD for tests (room: tests): malloc(n) fails
 * (ENOMEM) for the one size n in $FAIL_MALLOC_SIZE, and works for every
 * other size.  Lets a test run out of memory exactly where it wants to
 * (test_dsmctl.sh: while dsmctl builds a table), which no rlimit can aim
 * at.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>

void *malloc(size_t n)
{
	static void *(*real)(size_t);
	static long fail = -2;

	if (fail == -2) {
		const char *s = getenv("FAIL_MALLOC_SIZE");

		fail = s ? atol(s) : -1;
	}
	if (!real)
		real = (void *(*)(size_t))dlsym(RTLD_NEXT, "malloc");
	if ((long)n == fail) {
		errno = ENOMEM;
		return NULL;
	}
	return real(n);
}
