/*
 * harness.c - see harness.h (room: tests).
 */
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

#ifndef DSM_SERVER_BIN
#error "DSM_SERVER_BIN must name the dsm-server binary (tests/CMakeLists.txt)"
#endif

#define START_TIMEOUT_MS 10000
#define STOP_TIMEOUT_MS 10000
#define POLL_STEP_US 10000

static int ms_left(uint64_t deadline_ns)
{
	uint64_t now = dsm_now_ns();

	return now >= deadline_ns ? 0 : (int)((deadline_ns - now) / 1000000);
}

static uint64_t deadline_after(int timeout_ms)
{
	return dsm_now_ns() + (uint64_t)timeout_ms * 1000000;
}

/* In the child: never returns. */
static void exec_server(const char *capacity, const char *port_file,
			const struct th_server_opts *o, pid_t parent)
{
	const char *poll_us = getenv("DSM_POLL_US") ? getenv("DSM_POLL_US")
						    : "100";
	const char *argv[40] = { "dsm-server", "--listen", "127.0.0.1:0",
				 "--capacity", capacity, "--port-file",
				 port_file, "--poll-us", poll_us };
	int argc = 9;
	sigset_t none;

	/* Die with the test, even if it dies by exit(1) in a TH_CHECK. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(127);
	/* The test may block signals; the server must see SIGTERM. */
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	/* A test run with DSM_POLL_US (the client's busy-poll window) gets
	 * a server polling the same way: DSM_POLL_US=0 tests the paths where
	 * both sides sleep between messages. */
	if (o->secret_file) {
		argv[argc++] = "--secret-file";
		argv[argc++] = o->secret_file;
	}
	for (int i = 0; o->args && o->args[i] && argc < 39; i++)
		argv[argc++] = o->args[i];
	if (o->nofile) {
		struct rlimit rl = { o->nofile, o->nofile };

		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			_exit(127);
	}
	execv(DSM_SERVER_BIN, (char *const *)argv);
	fprintf(stderr, "harness: exec %s: %s\n", DSM_SERVER_BIN,
		strerror(errno));
	_exit(127);
}

/* The port file appears atomically (written, then renamed). */
static int read_port(const char *path, uint16_t *port)
{
	FILE *f = fopen(path, "r");
	unsigned p;
	int n;

	if (!f)
		return -errno;
	n = fscanf(f, "%u", &p);
	fclose(f);
	if (n != 1 || p == 0 || p > 65535)
		return -EINVAL;
	*port = (uint16_t)p;
	return 0;
}

static int wait_port(struct th_server *s, const char *path)
{
	uint64_t deadline = deadline_after(START_TIMEOUT_MS);
	int status;

	do {
		if (read_port(path, &s->port) == 0)
			return 0;
		if (waitpid(s->pid, &status, WNOHANG) == s->pid) {
			fprintf(stderr, "harness: dsm-server exited at start "
				"(status %#x)\n", status);
			s->pid = 0;
			return -ECHILD;
		}
		usleep(POLL_STEP_US);
	} while (ms_left(deadline) > 0);
	fprintf(stderr, "harness: dsm-server did not listen within %d ms\n",
		START_TIMEOUT_MS);
	return -ETIMEDOUT;
}

static void remove_dir(struct th_server *s)
{
	char path[300];

	if (!s->dir[0])
		return;
	snprintf(path, sizeof(path), "%s/port", s->dir);
	unlink(path);
	rmdir(s->dir);
	s->dir[0] = '\0';
}

int th_server_start(struct th_server *s, const char *capacity)
{
	return th_server_start_secret(s, capacity, NULL);
}

int th_server_start_secret(struct th_server *s, const char *capacity,
			   const char *secret_file)
{
	struct th_server_opts o = { .secret_file = secret_file };

	return th_server_start_opts(s, capacity, &o);
}

int th_server_start_opts(struct th_server *s, const char *capacity,
			 const struct th_server_opts *o)
{
	char port_file[300];
	pid_t parent = getpid();
	int err;

	memset(s, 0, sizeof(*s));
	snprintf(s->dir, sizeof(s->dir), "/tmp/dsm-test-XXXXXX");
	if (!mkdtemp(s->dir)) {
		s->dir[0] = '\0';
		return -errno;
	}
	snprintf(port_file, sizeof(port_file), "%s/port", s->dir);
	fflush(NULL); /* or the child's exit could repeat buffered output */
	s->pid = fork();
	if (s->pid < 0) {
		err = -errno;
		goto fail;
	}
	if (s->pid == 0)
		exec_server(capacity, port_file, o, parent);
	err = wait_port(s, port_file);
	if (err)
		goto fail;
	snprintf(s->addr, sizeof(s->addr), "127.0.0.1:%u", s->port);
	return 0;
fail:
	th_server_kill(s);
	remove_dir(s);
	return err;
}

int th_server_wait(struct th_server *s, int timeout_ms)
{
	uint64_t deadline = deadline_after(timeout_ms);
	int status;

	if (s->pid <= 0)
		return -ECHILD;
	for (;;) {
		pid_t r = waitpid(s->pid, &status, WNOHANG);

		if (r == s->pid)
			break;
		if (r < 0 && errno != EINTR) {
			status = -errno;
			break;
		}
		if (ms_left(deadline) == 0)
			return -ETIMEDOUT;
		usleep(POLL_STEP_US);
	}
	s->pid = 0;
	remove_dir(s);
	return status;
}

void th_server_kill(struct th_server *s)
{
	if (s->pid > 0) {
		kill(s->pid, SIGKILL);
		waitpid(s->pid, NULL, 0);
		s->pid = 0;
	}
	remove_dir(s);
}

void th_server_stop(struct th_server *s)
{
	int status;

	if (s->pid <= 0)
		return;
	kill(s->pid, SIGTERM);
	status = th_server_wait(s, STOP_TIMEOUT_MS);
	if (status == -ETIMEDOUT) {
		fprintf(stderr, "harness: dsm-server ignored SIGTERM for %d ms\n",
			STOP_TIMEOUT_MS);
		th_server_kill(s);
		exit(1);
	}
	/* A clean exit is part of the contract: a sanitizer report or a
	 * crash while shutting down fails the test that stopped it. */
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "harness: dsm-server exited with status %#x\n",
			status);
		exit(1);
	}
}

/* --- raw protocol ------------------------------------------------------ */

int th_raw_connect(uint16_t port)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons(port) };
	int fd, one = 1;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		int err = -errno;

		close(fd);
		return err;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

int th_send_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= n;
	}
	return 0;
}

int th_send_msg(int fd, uint8_t type, uint16_t flags, uint64_t id,
		const void *body, uint32_t len)
{
	uint8_t *msg = malloc(DSM_HDR_SIZE + (size_t)len);
	struct dsm_hdr h;
	int err;

	if (!msg)
		return -ENOMEM;
	dsm_hdr_init(&h, type, flags, len, id);
	dsm_hdr_encode(&h, msg);
	if (len)
		memcpy(msg + DSM_HDR_SIZE, body, len);
	err = th_send_all(fd, msg, DSM_HDR_SIZE + (size_t)len);
	free(msg);
	return err;
}

/* Read exactly len bytes (into buf, or nowhere if buf is NULL). */
static int recv_full(int fd, void *buf, size_t len, uint64_t deadline)
{
	uint8_t scratch[4096], *p = buf;

	while (len) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		size_t want = len;
		ssize_t n;

		if (!p && want > sizeof(scratch))
			want = sizeof(scratch);
		if (poll(&pfd, 1, ms_left(deadline)) == 0)
			return -ETIMEDOUT;
		n = recv(fd, p ? p : scratch, want, 0);
		if (n == 0)
			return -ECONNRESET;
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return errno == ECONNRESET ? -ECONNRESET : -errno;
		}
		if (p)
			p += n;
		len -= n;
	}
	return 0;
}

int th_recv_msg(int fd, struct dsm_hdr *h, void *body, uint32_t cap,
		int timeout_ms)
{
	uint64_t deadline = deadline_after(timeout_ms);
	uint8_t raw[DSM_HDR_SIZE];
	uint32_t keep;
	int err;

	err = recv_full(fd, raw, sizeof(raw), deadline);
	if (err)
		return err;
	err = dsm_hdr_decode(raw, h);
	if (err)
		return err;
	keep = h->len < cap ? h->len : cap;
	err = recv_full(fd, body, keep, deadline);
	if (!err)
		err = recv_full(fd, NULL, h->len - keep, deadline);
	return err;
}

int th_wait_eof(int fd, int timeout_ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	uint8_t c;
	ssize_t n;

	if (poll(&pfd, 1, timeout_ms) == 0)
		return -ETIMEDOUT;
	n = recv(fd, &c, 1, 0);
	if (n == 0 || (n < 0 && errno == ECONNRESET))
		return 0;
	return n > 0 ? -EBADMSG : -errno;
}

int th_call(int fd, uint8_t type, uint64_t id, const void *body, uint32_t len,
	    void *reply, uint32_t cap, uint32_t *rlen)
{
	struct dsm_hdr h;
	int err;

	err = th_send_msg(fd, type, 0, id, body, len);
	if (!err)
		err = th_recv_msg(fd, &h, reply, cap, TH_TIMEOUT_MS);
	if (err)
		return err;
	if (h.type != type || h.id != id || h.flags != DSM_F_REPLY) {
		fprintf(stderr, "harness: reply %s id %llu flags %#x does not "
			"answer %s id %llu\n", dsm_msg_name(h.type),
			(unsigned long long)h.id, h.flags, dsm_msg_name(type),
			(unsigned long long)id);
		return -EBADMSG;
	}
	if (rlen)
		*rlen = h.len;
	return h.status;
}

int th_hello_connect(uint16_t port)
{
	struct dsm_hello m = { .min_version = DSM_PROTO_VERSION,
			       .max_version = DSM_PROTO_VERSION,
			       .page_size = DSM_PAGE_SIZE };
	uint8_t body[DSM_HELLO_SIZE], reply[DSM_HELLO_REPLY_SIZE];
	int fd = th_raw_connect(port), err;

	if (fd < 0)
		return fd;
	dsm_hello_encode(&m, body);
	err = th_call(fd, DSM_MSG_HELLO, 1, body, sizeof(body), reply,
		      sizeof(reply), NULL);
	if (err) {
		close(fd);
		return err;
	}
	return fd;
}

void th_expect(const char *what, long got, long want)
{
	if (got == want)
		return;
	fprintf(stderr, "FAIL: %s: got %ld (%s), want %ld (%s)\n", what, got,
		got < 0 ? strerror((int)-got) : "-", want,
		want < 0 ? strerror((int)-want) : "-");
	exit(1);
}

uint64_t th_server_used(const struct th_server *srv)
{
	uint8_t rep[DSM_SERVER_STATS_SIZE];
	struct dsm_server_stats st;
	int fd = th_hello_connect(srv->port);

	TH_CHECK(fd >= 0);
	TH_CHECK(th_call(fd, DSM_MSG_STATS, 1, NULL, 0, rep, sizeof(rep),
			 NULL) == 0);
	TH_CHECK(dsm_server_stats_decode(rep, sizeof(rep), &st) == 0);
	close(fd);
	return st.used;
}

#define NR_HUGE "/proc/sys/vm/nr_hugepages"

long th_nr_huge(void)
{
	FILE *f = fopen(NR_HUGE, "r");
	long n = -1;

	if (f) {
		if (fscanf(f, "%ld", &n) != 1)
			n = -1;
		fclose(f);
	}
	return n;
}

static bool write_nr_huge(long n)
{
	FILE *f = fopen(NR_HUGE, "w");
	bool ok;

	if (!f)
		return false;
	ok = fprintf(f, "%ld\n", n) > 0;
	return fclose(f) == 0 && ok;
}

static long nr_huge_before = -1; /* the main thread's, set once */

/* exit(), also a failed check's: give the huge pages back */
static void restore_nr_huge(void)
{
	if (nr_huge_before >= 0)
		write_nr_huge(nr_huge_before);
}

const char *th_reserve_huge(long n)
{
	long before = th_nr_huge();

	if (before < 0)
		return "no " NR_HUGE;
	if (nr_huge_before < 0) {
		nr_huge_before = before;
		atexit(restore_nr_huge);
	}
	if (!write_nr_huge(before + n))
		return "cannot raise vm.nr_hugepages (not root?)";
	if (th_nr_huge() < before + n || dsm_huge_pages_free() < (uint64_t)n)
		return "the kernel could not find that many free 2 MiB pages";
	return NULL;
}
