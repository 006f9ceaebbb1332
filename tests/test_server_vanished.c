/*
 * test_server_vanished.c - a server whose machine is powered off: the
 * client finds out through TCP and fails the server's pages, without
 * hanging (room: tests).
 *
 * The server runs in a network namespace of its own, behind a veth pair;
 * taking its end of the link down models a machine that vanished
 * without a word (no FIN, no RST: nothing answers any more).  No traffic
 * leaves this machine.  DSM_TCP_TIMEOUT_MS is 2 s here, and the reply
 * timeout is set far above the test's alarm, so only TCP can end the
 * waits:
 *   1. with a write-back in flight: dsm_sync returns an error within
 *      the bound (TCP_USER_TIMEOUT: the data is never acknowledged), the
 *      loss is logged, and a page only that server held raises SIGBUS;
 *   2. on an idle connection (nothing in flight): the server is found
 *      lost within the bound all the same (keepalive probes).
 * Without those socket options both wait for the kernel's 15 minutes of
 * retransmissions, or for ever while idle.  Skipped when not root or
 * without ip(8).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#include "client_util.h"
#include "shim.h"
#include "util.h"

#define BUDGET (1u << 20)
#define SIZE (8u << 20)
#define PORT 7411
#define BOUND_S 12.0 /* 2 s of TCP timeout, plus slack for a busy machine */

static char ns[32], veth_out[16], veth_in[16], host_ip[32], srv_ip[32];
static char secret[] = "/tmp/dsm-vanished-secret-XXXXXX";
static pid_t server = -1;
static const char *step = "setup";
static sigjmp_buf on_bus;

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
	char cmd[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	return system(cmd);
}

static void teardown(void)
{
	if (server > 0) {
		kill(server, SIGKILL);
		waitpid(server, NULL, 0);
		server = -1;
	}
	sh("ip link del %s 2>/dev/null; ip netns del %s 2>/dev/null", veth_out, ns);
	unlink(secret);
}

static void on_alarm(int sig)
{
	(void)sig;
	fprintf(stderr, "FAIL: %s: still waiting\n", step);
	teardown();
	_exit(1);
}

static void bus_handler(int sig)
{
	(void)sig;
	siglongjmp(on_bus, 1);
}

static void skip(const char *why)
{
	printf("SKIP: %s\n", why);
	teardown();
	exit(77);
}

/* A namespace with the server's end of a veth pair, /30 between them. */
static void make_net(void)
{
	unsigned n = getpid() % 250;

	snprintf(ns, sizeof(ns), "dsmvan%d", (int)getpid());
	snprintf(veth_out, sizeof(veth_out), "dvo%u", (unsigned)getpid() % 100000);
	snprintf(veth_in, sizeof(veth_in), "dvi%u", (unsigned)getpid() % 100000);
	snprintf(host_ip, sizeof(host_ip), "10.231.%u.1", n);
	snprintf(srv_ip, sizeof(srv_ip), "10.231.%u.2", n);
	if (geteuid() != 0)
		skip("needs root for a network namespace");
	if (sh("ip netns add %s", ns))
		skip("ip netns add failed (no ip(8), or no network namespaces)");
	if (sh("ip link add %s type veth peer name %s netns %s && "
	       "ip addr add %s/30 dev %s && ip link set %s up && "
	       "ip netns exec %s sh -c 'ip addr add %s/30 dev %s && "
	       "ip link set %s up && ip link set lo up'",
	       veth_out, veth_in, ns, host_ip, veth_out, veth_out, ns, srv_ip,
	       veth_in, veth_in))
		skip("cannot make a veth pair into the namespace");
}

/* Until the server answers a connect (it started; the link came back). */
static void wait_reachable(void)
{
	for (int i = 0; i < 100; i++) {
		struct sockaddr_in a = { .sin_family = AF_INET,
					 .sin_port = htons(PORT) };
		int s = socket(AF_INET, SOCK_STREAM, 0);
		int ok;

		inet_pton(AF_INET, srv_ip, &a.sin_addr);
		ok = !connect(s, (struct sockaddr *)&a, sizeof(a));
		close(s);
		if (ok)
			return;
		usleep(100 * 1000);
	}
	fprintf(stderr, "FAIL: the server in the namespace is not reachable\n");
	exit(1);
}

static void start_server(void)
{
	char listen[64];
	int fd = mkstemp(secret);

	TH_CHECK(fd >= 0);
	TH_CHECK(write(fd, "0123456789abcdef0123456789abcdef", 32) == 32);
	close(fd);
	snprintf(listen, sizeof(listen), "%s:%d", srv_ip, PORT);
	server = fork();
	TH_CHECK(server >= 0);
	if (server == 0) {
		execlp("ip", "ip", "netns", "exec", ns, DSM_SERVER_BIN,
		       "--listen", listen, "--capacity", "64M",
		       "--secret-file", secret, "--log", "warn", (char *)NULL);
		_exit(127);
	}
	wait_reachable();
}

static uint64_t *init_client(void)
{
	char addr[64];
	struct dsm_options o = { .servers = addr, .local_mem = BUDGET };
	uint64_t *v;

	snprintf(addr, sizeof(addr), "%s:%d", srv_ip, PORT);
	TH_CHECK(dsm_init(&o) == 0);
	v = dsm_alloc(SIZE);
	TH_CHECK(v);
	for (size_t i = 0; i < SIZE / 8; i++)
		v[i] = tc_mix(i);
	TH_CHECK(dsm_sync(v, SIZE) == 0);
	return v;
}

static void power(bool on)
{
	TH_CHECK(sh("ip netns exec %s ip link set %s %s", ns, veth_in,
		    on ? "up" : "down") == 0);
	if (on) /* the neighbour entry failed while it was down */
		sh("ip neigh flush dev %s", veth_out);
	if (on)
		wait_reachable();
}

static bool server_lost(void)
{
	char buf[256];

	dsm_transports_describe(buf, sizeof(buf), 0);
	return strstr(buf, "+lost") != NULL;
}

/* 1: a write-back in flight when the machine goes. */
static void in_flight(void)
{
	volatile uint64_t *v = init_client();
	uint64_t t0;
	double s;
	int err;

	v[SIZE / 8 - 1] = 7; /* resident and dirty */
	power(false);
	step = "dsm_sync with the server's machine gone";
	t0 = dsm_now_ns();
	err = dsm_sync((void *)(v + SIZE / 8 - 1), 8);
	s = (dsm_now_ns() - t0) / 1e9;
	printf("%s: %s after %.2f s\n", step, dsm_strerror(err), s);
	TH_CHECK(err != 0 && s < BOUND_S);
	TH_CHECK(server_lost());
	TH_CHECK(v[SIZE / 8 - 1] == 7); /* kept: the only copy */
	step = "a fault on a page only the lost server held";
	signal(SIGBUS, bus_handler);
	if (sigsetjmp(on_bus, 1) == 0) {
		printf("read %#lx from a lost page\n", (unsigned long)v[0]);
		TH_CHECK(!"a lost page must raise SIGBUS");
	}
	signal(SIGBUS, SIG_DFL);
	printf("%s: SIGBUS\n", step);
	dsm_shutdown();
	power(true);
}

/* 2: nothing in flight when the machine goes. */
static void idle(void)
{
	uint64_t t0;

	init_client();
	power(false);
	step = "finding an idle connection's server gone";
	t0 = dsm_now_ns();
	while (!server_lost() && (dsm_now_ns() - t0) / 1e9 < BOUND_S)
		usleep(100 * 1000);
	printf("%s: %s after %.2f s\n", step, server_lost() ? "lost" :
	       "not noticed", (dsm_now_ns() - t0) / 1e9);
	TH_CHECK(server_lost());
	dsm_shutdown();
	power(true);
}

int main(void)
{
	atexit(teardown); /* a failed check leaves nothing behind */
	make_net();
	start_server();
	setenv("DSM_SECRET_FILE", secret, 1);
	setenv("DSM_TCP_TIMEOUT_MS", "2000", 1);
	setenv("DSM_REPLY_TIMEOUT_MS", "600000", 1);
	signal(SIGALRM, on_alarm);
	alarm(60);
	in_flight();
	idle();
	alarm(0);
	teardown();
	printf("PASS\n");
	return 0;
}
