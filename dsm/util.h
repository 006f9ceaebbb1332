/*
 * util.h - parsing and clock helpers shared by library, server and tools.
 */
#ifndef DSM_UTIL_H
#define DSM_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* "256M", "4G", "4096", "1k": bytes in *out.  0 or -EINVAL (junk, overflow). */
int dsm_parse_size(const char *s, uint64_t *out);

/* A plain decimal integer no larger than max ("50", not "-1" or "5x").
 * 0 or -EINVAL. */
int dsm_parse_uint(const char *s, uint64_t max, uint64_t *out);

/* "host:port" into host (NUL-terminated, at most hostlen) and port.
 * "[::1]:7000" is accepted for IPv6.  0 or -EINVAL. */
int dsm_parse_hostport(const char *s, char *host, size_t hostlen,
		       uint16_t *port);

/* "1.5 GiB": human-readable bytes into buf. */
const char *dsm_fmt_bytes(uint64_t bytes, char *buf, size_t len);

static inline uint64_t dsm_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + ts.tv_nsec;
}

#endif
