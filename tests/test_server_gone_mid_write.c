/*
 * test_server_gone_mid_write.c - a server that goes away while the client
 * is writing to it costs the client that server's pages, never the
 * process: no SIGPIPE (room: tests).
 *
 * A send on a connection its peer has reset raises SIGPIPE, whose default
 * action kills the whole program before the client can report the server
 * lost; transport/tcp.c therefore sends with MSG_NOSIGNAL.  In the field
 * the client dies only if it sends after the server's FIN and RST have
 * arrived but before it has read the end of the stream, a narrow race
 * (test_replicas lost it once).  Here that order is made certain, with a
 * fake server in this process and the client in a child:
 *   1. the fake answers HELLO and ALLOC, then reads nothing more, so the
 *      client's write-backs fill the socket and its engine thread waits
 *      for room in full_writev (seen in /proc: a poll on one descriptor
 *      for POLLOUT);
 *   2. the client is stopped, and the fake sends the first byte of a
 *      reply, ends its stream (FIN) and closes with the write-backs
 *      unread, so its kernel resets the connection (RST): the client's
 *      socket is reset in CLOSE_WAIT, where a send fails with EPIPE;
 *   3. the client is continued: its engine reads that byte, which is not
 *      yet the end of the stream behind it, and goes back to sending.
 * The client must then live and see what docs/design.md ("Failures")
 * documents for a lost server: the loss logged, dsm_sync failing, the
 * page it wrote last still resident, and a page whose write-back was in
 * flight raising SIGBUS.  Without MSG_NOSIGNAL it dies of SIGPIPE.
 */
#include <dirent.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "client_util.h"
#include "util.h"

#define BUDGET (1u << 20)
/* Far more than the two sockets can buffer (a few MiB), so the engine
 * must wait for room before the region is written. */
#define SIZE (64u << 20)
#define WORDS_PER_PAGE (DSM_PAGE_SIZE / 8)

static sigjmp_buf on_bus;

static void bus_handler(int sig)
{
	(void)sig;
	siglongjmp(on_bus, 1);
}

/* SIGPIPE at its default action, and not blocked: an ignored SIGPIPE is
 * inherited across exec (from a shell or a CI runner) and would hide the
 * very death this test is about. */
static void default_sigpipe(void)
{
	sigset_t s;

	sigemptyset(&s);
	sigaddset(&s, SIGPIPE);
	TH_CHECK(signal(SIGPIPE, SIG_DFL) != SIG_ERR);
	TH_CHECK(sigprocmask(SIG_UNBLOCK, &s, NULL) == 0);
}

/* ---- the client (the child) -------------------------------------------- */

/* What the user is promised once the server is gone: an error, the
 * resident data, SIGBUS on what was lost.  42 if all of it holds. */
static int check_loss(volatile uint64_t *far)
{
	size_t last = SIZE / 8 - WORDS_PER_PAGE;
	int err = dsm_sync((void *)far, SIZE);

	printf("client: dsm_sync after the server went: %s\n",
	       dsm_strerror(err));
	if (err == 0)
		return 2;
	if (far[last] != tc_mix(last)) /* dirty, resident: kept */
		return 3;
	signal(SIGBUS, bus_handler);
	if (sigsetjmp(on_bus, 1) == 0) {
		uint64_t v = far[0]; /* evicted first: its write-back never
				      * got an answer */

		printf("client: read %#llx from a page lost in flight\n",
		       (unsigned long long)v);
		return 4;
	}
	printf("client: SIGBUS on a page lost in flight, as documented\n");
	dsm_shutdown(); /* must not hang with the server gone either */
	return 42;
}

static int client(const char *addr, int go_fd)
{
	struct dsm_options o = { .servers = addr, .local_mem = BUDGET };
	volatile uint64_t *far;
	char c;

	/* The full socket is an unacknowledged window to TCP: keep the
	 * user timeout from failing it while the test sets up (2 minutes,
	 * not 20 s), or the loss would come from there, not from a send. */
	setenv("DSM_TCP_TIMEOUT_MS", "120000", 1);
	TH_CHECK(dsm_init(&o) == 0);
	far = dsm_alloc(SIZE);
	TH_CHECK(far);
	/* every page dirtied once: the early ones are written back to make
	 * room for the later ones, to a server that stops reading */
	for (size_t i = 0; i < SIZE / 8; i += WORDS_PER_PAGE)
		far[i] = tc_mix(i);
	TH_CHECK(read(go_fd, &c, 1) == 1); /* the server is gone */
	return check_loss(far);
}

/* ---- the fake server (this process) ------------------------------------ */

static int listen_loopback(uint16_t *port)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int rcvbuf = 64 << 10; /* a small window: the client fills it soon */

	TH_CHECK(fd >= 0);
	TH_CHECK(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf,
			    sizeof(rcvbuf)) == 0);
	TH_CHECK(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
	TH_CHECK(listen(fd, 1) == 0);
	TH_CHECK(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
	*port = ntohs(a.sin_port);
	return fd;
}

static void reply(int fd, const struct dsm_hdr *h, const void *body,
		  uint32_t len)
{
	th_expect("sending a reply",
		  th_send_msg(fd, h->type, DSM_F_REPLY, h->id, body, len), 0);
}

/* Accept the client and serve its HELLO and its ALLOC: a region at pool
 * offset 0.  Nothing after that is read. */
static int serve_handshake(int lfd)
{
	struct dsm_hello_reply hr = { .version = DSM_PROTO_VERSION,
				      .page_size = DSM_PAGE_SIZE,
				      .server_id = 1,
				      .max_batch_pages = DSM_MAX_BATCH_PAGES,
				      .capacity = 2ull * SIZE,
				      .free = 2ull * SIZE };
	struct dsm_alloc_reply ar = { .region_id = 1 };
	struct pollfd p = { lfd, POLLIN, 0 };
	uint8_t req[64], body[DSM_ALLOC_REPLY_SIZE > DSM_HELLO_REPLY_SIZE ?
			       DSM_ALLOC_REPLY_SIZE : DSM_HELLO_REPLY_SIZE];
	struct dsm_alloc_req a;
	struct dsm_hdr h;
	int fd;

	TH_CHECK(poll(&p, 1, 10000) == 1);
	fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	TH_CHECK(fd >= 0);
	th_expect("the client's HELLO",
		  th_recv_msg(fd, &h, req, sizeof(req), TH_TIMEOUT_MS), 0);
	TH_CHECK(h.type == DSM_MSG_HELLO);
	dsm_hello_reply_encode(&hr, body);
	reply(fd, &h, body, DSM_HELLO_REPLY_SIZE);
	th_expect("the client's ALLOC",
		  th_recv_msg(fd, &h, req, sizeof(req), TH_TIMEOUT_MS), 0);
	TH_CHECK(h.type == DSM_MSG_ALLOC);
	TH_CHECK(dsm_alloc_req_decode(req, h.len, &a) == 0);
	ar.size = a.size;
	dsm_alloc_reply_encode(&ar, body);
	reply(fd, &h, body, DSM_ALLOC_REPLY_SIZE);
	return fd;
}

static bool is_poll(long nr)
{
#ifdef SYS_poll
	if (nr == SYS_poll)
		return true;
#endif
	return nr == SYS_ppoll;
}

/* Is thread tid of pid in poll() on one descriptor for POLLOUT (tcp.c's
 * wait_room, from full_writev)?  1 or 0; -errno if /proc or the child's
 * memory cannot be read. */
static int task_waits_for_room(pid_t pid, pid_t tid)
{
	unsigned long fds, nfds;
	struct pollfd p;
	struct iovec mine = { &p, sizeof(p) }, theirs = { NULL, sizeof(p) };
	char path[96];
	long nr;
	FILE *f;
	int n, err;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/syscall", pid, tid);
	f = fopen(path, "r");
	if (!f) /* ENOENT, ESRCH: a thread that has ended */
		return errno == ENOENT || errno == ESRCH ? 0 : -errno;
	/* "NR ARG0 ARG1 ...", "running", or "-1 SP PC" outside a call */
	n = fscanf(f, "%ld %lx %lx", &nr, &fds, &nfds);
	err = ferror(f) ? -errno : 0;
	fclose(f);
	if (err)
		return err == -ESRCH ? 0 : err;
	if (n != 3 || !is_poll(nr) || nfds != 1)
		return 0;
	theirs.iov_base = (void *)fds;
	if (process_vm_readv(pid, &mine, 1, &theirs, 1, 0) != sizeof(p))
		return -errno;
	return !!(p.events & POLLOUT);
}

/* Is some thread of pid waiting for room to send?  1, 0 or -errno. */
static int writer_waits(pid_t pid)
{
	char path[32];
	struct dirent *e;
	int found = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/task", pid);
	d = opendir(path);
	if (!d)
		return -errno;
	while (!found && (e = readdir(d)))
		if (e->d_name[0] != '.')
			found = task_waits_for_room(pid, atoi(e->d_name));
	closedir(d);
	return found;
}

static void skip_unless_readable(int err)
{
	if (err >= 0)
		return;
	printf("SKIP: cannot see where the client waits (/proc/PID/task/"
	       "TID/syscall, process_vm_readv): %s\n", strerror(-err));
	exit(77); /* the child dies with us (PR_SET_PDEATHSIG) */
}

/* Wait for pid to change state as options say (WUNTRACED: stopped; 0:
 * ended) within timeout_ms: its status, or -ETIMEDOUT. */
static int wait_child(pid_t pid, int options, int timeout_ms)
{
	uint64_t end = dsm_now_ns() + (uint64_t)timeout_ms * 1000000;
	int status;

	do {
		pid_t r = waitpid(pid, &status, options | WNOHANG);

		if (r == pid)
			return status;
		TH_CHECK(r == 0 || errno == EINTR);
		usleep(10000);
	} while (dsm_now_ns() < end);
	return -ETIMEDOUT;
}

/* Wait (up to 30 s) until the client's engine waits for room to send:
 * the socket is full, and stays full since nothing reads it. */
static void wait_writer(pid_t pid)
{
	uint64_t end = dsm_now_ns() + 30000000000ull;
	int found;

	while (!(found = writer_waits(pid))) {
		if (wait_child(pid, 0, 0) != -ETIMEDOUT) {
			fprintf(stderr, "FAIL: the client ended before its "
				"write-backs filled the socket\n");
			exit(1);
		}
		if (dsm_now_ns() > end) {
			fprintf(stderr, "FAIL: the client's engine never "
				"waited for room to send in 30 s\n");
			exit(1);
		}
		usleep(10000);
	}
	skip_unless_readable(found);
}

/* Does the client's end of our connection still exist (not yet reset)?
 * /proc/net/tcp lists sockets in the connection table; a reset one has
 * left it. */
static bool client_socket_open(uint16_t cport, uint16_t sport)
{
	unsigned int lp, rp, st;
	char line[256];
	bool open = false;
	FILE *f = fopen("/proc/net/tcp", "r");

	TH_CHECK(f);
	while (!open && fgets(line, sizeof(line), f))
		open = sscanf(line, " %*d: %*x:%x %*x:%x %x", &lp, &rp,
			      &st) == 3 && lp == cport && rp == sport &&
		       st != 7 /* TCP_CLOSE */;
	fclose(f);
	return open;
}

/* Go away as a server killed mid-reply does, in an order the client
 * cannot race: the first byte of a reply, the end of our stream (FIN),
 * then close with the client's write-backs unread, so the kernel resets
 * the connection (RST).  Then wait (up to 5 s) for the RST to reach the
 * client's socket. */
static void vanish(int fd, uint16_t sport)
{
	uint8_t first = DSM_PROTO_MAGIC & 0xff; /* a header's first byte */
	struct sockaddr_in peer;
	socklen_t len = sizeof(peer);
	uint16_t cport;
	int i;

	TH_CHECK(getpeername(fd, (struct sockaddr *)&peer, &len) == 0);
	cport = ntohs(peer.sin_port);
	TH_CHECK(send(fd, &first, 1, MSG_NOSIGNAL) == 1);
	TH_CHECK(shutdown(fd, SHUT_WR) == 0);
	TH_CHECK(close(fd) == 0);
	for (i = 0; i < 500 && client_socket_open(cport, sport); i++)
		usleep(10000);
	TH_CHECK(i < 500);
}

/* The child's end, read as the user would want to: 0 if it lived and
 * saw the documented outcome. */
static int judge(int status, const char *log)
{
	fprintf(stderr, "--- client log ---\n%s------------------\n", log);
	if (WIFSIGNALED(status) && WTERMSIG(status) == SIGPIPE) {
		fprintf(stderr, "FAIL: the client died of SIGPIPE when its "
			"server went away mid-write (does transport/tcp.c "
			"still send with MSG_NOSIGNAL?)\n");
		return 1;
	}
	if (WIFSIGNALED(status)) {
		fprintf(stderr, "FAIL: the client died of signal %d (%s)\n",
			WTERMSIG(status), strsignal(WTERMSIG(status)));
		return 1;
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 42) {
		fprintf(stderr, "FAIL: the client exited with status %d\n",
			WEXITSTATUS(status));
		return 1;
	}
	/* the send found the loss, not a read of the end of the stream:
	 * else this test did not test the send */
	TH_CHECK(strstr(log, "send failed: Broken pipe") != NULL);
	TH_CHECK(strstr(log, "lost connection to memory server") != NULL);
	return 0;
}

int main(void)
{
	static char log[1 << 16];
	char addr[64], logpath[] = "/tmp/dsm-gone-log-XXXXXX", c = 0;
	pid_t parent = getpid(), pid;
	int lfd, fd, logfd, go[2], status;
	uint16_t port;

	default_sigpipe(); /* here, and so in the client forked below */
	lfd = listen_loopback(&port);
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", port);
	TH_CHECK(pipe(go) == 0);
	logfd = mkstemp(logpath);
	TH_CHECK(logfd >= 0);
	fflush(stdout);
	pid = fork();
	TH_CHECK(pid >= 0);
	if (pid == 0) {
		/* a failing test must leave no client behind */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(1);
		dup2(logfd, STDERR_FILENO);
		close(lfd);
		close(go[1]);
		status = client(addr, go[0]);
		fflush(stdout); /* _exit does not */
		_exit(status);
	}
	fd = serve_handshake(lfd);
	wait_writer(pid);
	TH_CHECK(kill(pid, SIGSTOP) == 0);
	status = wait_child(pid, WUNTRACED, 10000);
	TH_CHECK(status >= 0 && WIFSTOPPED(status));
	/* stopped in that wait: it cannot read what comes next */
	TH_CHECK(writer_waits(pid) == 1);
	vanish(fd, port);
	printf("server gone while the client waited to send; continuing it\n");
	fflush(stdout);
	TH_CHECK(write(go[1], &c, 1) == 1);
	TH_CHECK(kill(pid, SIGCONT) == 0);
	status = wait_child(pid, 0, 60000);
	if (status == -ETIMEDOUT) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		fprintf(stderr, "FAIL: the client hung after its server went\n");
		return 1;
	}
	TH_CHECK(pread(logfd, log, sizeof(log) - 1, 0) >= 0);
	unlink(logpath);
	if (judge(status, log))
		return 1;
	printf("server_gone_mid_write: ok\n");
	return 0;
}
