/*
 * util.c - see util.h (room: common).
 */
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

int dsm_poll_busy(struct pollfd *fds, unsigned long n, uint64_t *busy_until,
		  uint64_t window_ns)
{
	int ready;

	if (window_ns && dsm_now_ns() < *busy_until) {
		ready = poll(fds, n, 0);
		/* a peer (the server, a faulting thread) may be runnable on
		 * this CPU: let it run now, not after our time slice */
		if (!ready)
			sched_yield();
	} else {
		ready = poll(fds, n, -1);
	}
	if (ready > 0)
		*busy_until = dsm_now_ns() + window_ns;
	return ready;
}

static bool sockaddr_is_loopback(const struct sockaddr *sa)
{
	const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)sa;

	if (sa->sa_family == AF_INET)
		return ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr)
		       >> 24 == 127;
	if (sa->sa_family != AF_INET6)
		return false;
	return IN6_IS_ADDR_LOOPBACK(&v6->sin6_addr) ||
	       (IN6_IS_ADDR_V4MAPPED(&v6->sin6_addr) &&
		v6->sin6_addr.s6_addr[12] == 127);
}

int dsm_addr_is_loopback(const char *hostport)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res, *ai;
	char host[256];
	uint16_t port;
	bool all = true;

	if (dsm_parse_hostport(hostport, host, sizeof(host), &port))
		return -EINVAL;
	if (getaddrinfo(host, NULL, &hints, &res))
		return -EHOSTUNREACH;
	for (ai = res; ai; ai = ai->ai_next)
		all = all && sockaddr_is_loopback(ai->ai_addr);
	freeaddrinfo(res);
	return all;
}

int dsm_tcp_set_timeouts(int fd, unsigned ms)
{
	int one = 1, idle = ms / 2000, intvl = ms / 10000, cnt = 10;
	unsigned user = ms;

	if (idle < 1)
		idle = 1;
	if (intvl < 1)
		intvl = 1;
	if (setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one)) ||
	    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle)) ||
	    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl)) ||
	    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt)) ||
	    setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user, sizeof(user)))
		return -errno;
	return 0;
}

int dsm_cond_init_monotonic(pthread_cond_t *c)
{
	pthread_condattr_t a;
	int err = pthread_condattr_init(&a);

	if (err)
		return -err;
	err = pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	if (!err)
		err = pthread_cond_init(c, &a);
	pthread_condattr_destroy(&a);
	return -err;
}

int dsm_cond_wait_until(pthread_cond_t *c, pthread_mutex_t *m,
			uint64_t deadline_ns)
{
	struct timespec ts = { deadline_ns / 1000000000u,
			       deadline_ns % 1000000000u };

	if (dsm_now_ns() >= deadline_ns)
		return -ETIMEDOUT;
	return -pthread_cond_timedwait(c, m, &ts);
}

void dsm_cond_wait_ms(pthread_cond_t *c, pthread_mutex_t *m, uint64_t ms)
{
	struct timespec until;

	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += ms / 1000;
	until.tv_nsec += (long)(ms % 1000) * 1000000;
	until.tv_sec += until.tv_nsec / 1000000000;
	until.tv_nsec %= 1000000000;
	pthread_cond_timedwait(c, m, &until);
}

int dsm_parse_uint(const char *s, uint64_t max, uint64_t *out)
{
	unsigned long long v;
	char *end;

	if (!s || !isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

int dsm_parse_size(const char *s, uint64_t *out)
{
	unsigned long long v;
	unsigned shift = 0;
	char *end;

	if (!s || !isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -EINVAL;
	switch (toupper((unsigned char)*end)) {
	case 'K': shift = 10; end++; break;
	case 'M': shift = 20; end++; break;
	case 'G': shift = 30; end++; break;
	case 'T': shift = 40; end++; break;
	case '\0': break;
	default: return -EINVAL;
	}
	/* accept "256M", "256MB" and "256MiB" alike */
	if (shift && (!strcasecmp(end, "B") || !strcasecmp(end, "iB")))
		end += strlen(end);
	if (*end || (shift && v > (UINT64_MAX >> shift)))
		return -EINVAL;
	*out = (uint64_t)v << shift;
	return 0;
}

int dsm_parse_hostport(const char *s, char *host, size_t hostlen,
		       uint16_t *port)
{
	const char *colon, *hs = s;
	size_t hl;
	unsigned long p;
	char *end;

	if (!s)
		return -EINVAL;
	if (*s == '[') {
		const char *rb = strchr(s, ']');

		if (!rb || rb[1] != ':')
			return -EINVAL;
		hs = s + 1;
		hl = rb - hs;
		colon = rb + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			return -EINVAL;
		hl = colon - s;
	}
	if (hl == 0 || hl >= hostlen)
		return -EINVAL;
	errno = 0;
	p = strtoul(colon + 1, &end, 10);
	if (errno || *end || end == colon + 1 || p > 65535)
		return -EINVAL;
	memcpy(host, hs, hl);
	host[hl] = '\0';
	*port = (uint16_t)p;
	return 0;
}

const char *dsm_fmt_bytes(uint64_t bytes, char *buf, size_t len)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double v = (double)bytes;
	int u = 0;

	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%llu B", (unsigned long long)bytes);
	else
		snprintf(buf, len, "%.1f %s", v, units[u]);
	return buf;
}

static int read_all(int fd, void *buf, size_t cap, size_t *len)
{
	ssize_t n;

	*len = 0;
	while (*len < cap && (n = read(fd, (char *)buf + *len, cap - *len)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		*len += n;
	}
	return 0;
}

int dsm_private_file_read(const char *path, const char *what, void *buf,
			  size_t cap, size_t *len, char *err, size_t errlen)
{
	struct stat st;
	int fd, rc = 0;

	*len = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		rc = -errno;
		snprintf(err, errlen, "cannot read %s %s: %s", what, path,
			 strerror(-rc));
		goto out;
	}
	if (st.st_mode & 077) {
		rc = -EPERM;
		snprintf(err, errlen, "%s %s may be read by others (mode %04o): "
			 "chmod 600 %s", what, path,
			 (unsigned)(st.st_mode & 07777), path);
		goto out;
	}
	rc = read_all(fd, buf, cap, len);
	if (rc)
		snprintf(err, errlen, "%s %s: %s", what, path, strerror(-rc));
out:
	if (fd >= 0)
		close(fd);
	return rc;
}

uint64_t dsm_huge_pages_free(void)
{
	FILE *f = fopen("/sys/kernel/mm/hugepages/hugepages-2048kB/"
			"free_hugepages", "r");
	unsigned long long n = 0;

	if (f) {
		if (fscanf(f, "%llu", &n) != 1)
			n = 0;
		fclose(f);
	}
	return n;
}

void dsm_iov_advance(struct iovec **iov, int *cnt, size_t done)
{
	while (*cnt && done >= (*iov)->iov_len) {
		done -= (*iov)->iov_len;
		(*iov)++;
		(*cnt)--;
	}
	if (*cnt) {
		(*iov)->iov_base = (uint8_t *)(*iov)->iov_base + done;
		(*iov)->iov_len -= done;
	}
}
