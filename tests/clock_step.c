/*
 * clock_step.c - LD_PRELOAD for tests (room: tests): the wall clock of
 * the process it is loaded into runs $DSM_TEST_CLOCK_FILE's number of
 * seconds (signed) off the machine's, read afresh at every call, so a
 * test can step one process's wall clock back or forward while it runs
 * without touching the machine's (date -s would move every process's,
 * and a time namespace moves only the monotonic clocks).
 *
 * It replaces clock_gettime(CLOCK_REALTIME) and gettimeofday, which is
 * how dsm reads the wall clock.  What it cannot fake is the kernel's own
 * view: a pthread_cond_timedwait on CLOCK_REALTIME still ends at the
 * machine's time.  A deadline computed from a clock running 15 s ahead
 * is exactly what a 15 s step back after computing it does, which is
 * what test_lease.sh needs.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static long offset_s(void)
{
	const char *path = getenv("DSM_TEST_CLOCK_FILE");
	char buf[32];
	ssize_t n;
	int fd;

	if (!path || (fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	return atol(buf);
}

/* The real clock, by system call: no lookup of the next definition, so
 * nothing here allocates or takes a lock. */
static int real_clock(clockid_t id, struct timespec *ts)
{
	return (int)syscall(SYS_clock_gettime, id, ts);
}

int clock_gettime(clockid_t id, struct timespec *ts)
{
	int rc = real_clock(id, ts);

	if (!rc && (id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE))
		ts->tv_sec += offset_s();
	return rc;
}

int gettimeofday(struct timeval *restrict tv, void *restrict tz)
{
	struct timespec ts;

	(void)tz;
	if (clock_gettime(CLOCK_REALTIME, &ts))
		return -1;
	tv->tv_sec = ts.tv_sec;
	tv->tv_usec = ts.tv_nsec / 1000;
	return 0;
}
