/*
 * util.h - parsing, clocks, busy polling, secret files, the count of free
 * huge pages and partial vectored I/O, shared by library, server and tools
 * (room: common).
 */
#ifndef DSM_UTIL_H
#define DSM_UTIL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>
#include <time.h>

/* "256M", "4G", "4096", "1k": bytes in *out.  0 or -EINVAL (junk, overflow). */
int dsm_parse_size(const char *s, uint64_t *out);

/* A plain decimal integer no larger than max ("50", not "-1" or "5x").
 * 0 or -EINVAL. */
int dsm_parse_uint(const char *s, uint64_t max, uint64_t *out);

/* "host:port" into host (NUL-terminated, at most hostlen) and port.
 * "[::1]:7000" is accepted for IPv6.  0 or -EINVAL. */
/* Whether host:port names this machine's loopback only: 1 if every
 * address the host resolves to is 127.0.0.0/8 or ::1 (or v4-mapped
 * loopback), 0 if not; -EINVAL if it does not parse, -EHOSTUNREACH if it
 * does not resolve. */
int dsm_addr_is_loopback(const char *hostport);
int dsm_parse_hostport(const char *s, char *host, size_t hostlen,
		       uint16_t *port);

/* "1.5 GiB": human-readable bytes into buf. */
const char *dsm_fmt_bytes(uint64_t bytes, char *buf, size_t len);

struct pollfd;

/* Default busy-poll window of the engine thread and dsm-server, in µs. */
#define DSM_DEFAULT_POLL_US 100u

/*
 * poll(2), but spinning (zero timeouts, yielding the CPU between them)
 * until *busy_until before it sleeps; an event moves *busy_until to
 * window_ns from now.  window_ns 0 is plain poll(fds, n, -1).  Why: on a
 * virtual machine waking a halted vCPU costs more than a loopback round
 * trip (docs/design.md, "Polling").  Returns poll()'s result; 0 means
 * nothing yet (spinning), call again.
 */
int dsm_poll_busy(struct pollfd *fds, unsigned long n, uint64_t *busy_until,
		  uint64_t window_ns);

static inline uint64_t dsm_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + ts.tv_nsec;
}

/* Milliseconds on CLOCK_MONOTONIC.  Every interval that decides something
 * (a lease's grace, a timeout, how long a peer has been silent) is
 * measured on it: the wall clock can be stepped either way by an operator
 * or NTP, and a step must never look like time passing. */
static inline uint64_t dsm_mono_ms(void)
{
	return dsm_now_ns() / 1000000;
}

/* A condition variable whose timed waits (dsm_cond_wait_ms) run on
 * CLOCK_MONOTONIC; PTHREAD_COND_INITIALIZER's run on the wall clock,
 * which a step back by a minute turns into a minute's wait.  0 or
 * -errno. */
int dsm_cond_init_monotonic(pthread_cond_t *c);
/* Wait on c, with m held, until signalled or ms milliseconds have
 * passed; c must come from dsm_cond_init_monotonic.  Spurious wake-ups
 * return early, as for any condition variable: callers recheck. */
void dsm_cond_wait_ms(pthread_cond_t *c, pthread_mutex_t *m, uint64_t ms);

/*
 * Make a TCP socket fail (ETIMEDOUT) when its peer's machine is gone:
 * TCP_USER_TIMEOUT ends the connection once data sent has gone
 * unacknowledged for ms, and keepalive probes (from ms/2 of silence on,
 * every ms/10) find a peer that vanished while the connection was idle,
 * within about ms too.  Without them a powered-off peer holds the
 * connection for the kernel's 15 minutes of retransmissions, or for ever
 * while idle.  0 or -errno.
 */
int dsm_tcp_set_timeouts(int fd, unsigned ms);

/* pthread_cond_wait until deadline_ns (dsm_now_ns's clock), for a
 * condition from dsm_cond_init_monotonic: 0, or -ETIMEDOUT once it has
 * passed (the caller checks its condition again either way). */
int dsm_cond_wait_until(pthread_cond_t *c, pthread_mutex_t *m,
			uint64_t deadline_ns);

/*
 * Read at most cap bytes of a file that holds a secret (what names it in
 * messages: "secret file", "registry password file") into buf, *len of
 * them.  The one check of such files, shared by everything that reads
 * one: a file that others may read (any group or other permission bit)
 * is refused with -EPERM, since whoever else can read it holds the
 * secret too; -errno if it cannot be read.  err names the file and the
 * fix.
 */
int dsm_private_file_read(const char *path, const char *what, void *buf,
			  size_t cap, size_t *len, char *err, size_t errlen);

/* Free 2 MiB huge pages the system has reserved (vm.nr_hugepages), or 0. */
uint64_t dsm_huge_pages_free(void);

/* A vectored read or write moved done bytes of the *cnt iovecs at *iov:
 * step past them, leaving *iov at what is still to move. */
void dsm_iov_advance(struct iovec **iov, int *cnt, size_t done);

#endif
