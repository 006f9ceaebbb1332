/*
 * test_remote_nosecret.c - a client without the cluster secret talks to
 * this machine's servers only (room: tests).
 *
 * Without a secret nothing proves who a server is, and a server that
 * asks for no AUTH gets every page the client writes.  So, as a server
 * without a secret listens on loopback only, a client without one
 * refuses a server at any other address, before connecting, unless
 * DSM_ALLOW_REMOTE_WITHOUT_SECRET=1.  The "remote" server here is a fake
 * that answers HELLO asking for no AUTH, listening on one of this
 * machine's own non-loopback addresses (no traffic leaves it).  Without
 * the check dsm_init connects and succeeds.
 */
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include "client_util.h"

static int lfd = -1;
static int accepted; /* fake's thread; read after join */

/* A non-loopback IPv4 address of an interface that is up, or skip. */
static struct in_addr local_addr(void)
{
	struct ifaddrs *ifs, *i;
	struct in_addr a = { 0 };

	TH_CHECK(getifaddrs(&ifs) == 0);
	for (i = ifs; i && !a.s_addr; i = i->ifa_next)
		if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET &&
		    (i->ifa_flags & IFF_UP) && !(i->ifa_flags & IFF_LOOPBACK))
			a = ((struct sockaddr_in *)i->ifa_addr)->sin_addr;
	freeifaddrs(ifs);
	if (!a.s_addr) {
		printf("SKIP: this machine has no non-loopback IPv4 address\n");
		exit(77);
	}
	return a;
}

/* Accept one connection within 3 s and answer its HELLO as a server
 * without a secret would; keep it open until the client leaves. */
static void *fake_server(void *arg)
{
	struct dsm_hello_reply r = { .version = DSM_PROTO_VERSION,
				     .page_size = DSM_PAGE_SIZE,
				     .server_id = 77,
				     .max_batch_pages = DSM_MAX_BATCH_PAGES,
				     .capacity = 64 << 20, .free = 64 << 20 };
	uint8_t body[DSM_HELLO_REPLY_SIZE], req[64];
	struct pollfd p = { lfd, POLLIN, 0 };
	struct dsm_hdr h;
	int fd;

	(void)arg;
	if (poll(&p, 1, 3000) != 1 || (fd = accept(lfd, NULL, NULL)) < 0)
		return NULL;
	accepted++;
	if (th_recv_msg(fd, &h, req, sizeof(req), TH_TIMEOUT_MS) == 0 &&
	    h.type == DSM_MSG_HELLO) {
		dsm_hello_reply_encode(&r, body);
		th_send_msg(fd, DSM_MSG_HELLO, DSM_F_REPLY, h.id, body,
			    sizeof(body));
		th_wait_eof(fd, 10000);
	}
	close(fd);
	return NULL;
}

static int try_init(const char *addr)
{
	struct dsm_options o = { .servers = addr, .local_mem = 1 << 20 };
	pthread_t t;
	int err;

	accepted = 0;
	TH_CHECK(pthread_create(&t, NULL, fake_server, NULL) == 0);
	err = dsm_init(&o);
	if (!err)
		dsm_shutdown();
	TH_CHECK(pthread_join(t, NULL) == 0);
	return err;
}

int main(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_addr = local_addr() };
	socklen_t len = sizeof(a);
	char addr[64];
	int err;

	lfd = socket(AF_INET, SOCK_STREAM, 0);
	TH_CHECK(lfd >= 0);
	TH_CHECK(bind(lfd, (struct sockaddr *)&a, sizeof(a)) == 0);
	TH_CHECK(listen(lfd, 4) == 0);
	TH_CHECK(getsockname(lfd, (struct sockaddr *)&a, &len) == 0);
	snprintf(addr, sizeof(addr), "%s:%u", inet_ntoa(a.sin_addr),
		 ntohs(a.sin_port));
	unsetenv("DSM_SECRET_FILE");
	unsetenv("DSM_ALLOW_REMOTE_WITHOUT_SECRET");

	err = try_init(addr);
	printf("no secret, server at %s: %s, %d connections\n", addr,
	       dsm_strerror(err), accepted);
	TH_CHECK(err == -EACCES && accepted == 0);

	setenv("DSM_ALLOW_REMOTE_WITHOUT_SECRET", "1", 1);
	err = try_init(addr);
	printf("with DSM_ALLOW_REMOTE_WITHOUT_SECRET=1: %s\n",
	       dsm_strerror(err));
	TH_CHECK(err == 0 && accepted == 1);

	setenv("DSM_ALLOW_REMOTE_WITHOUT_SECRET", "yes", 1);
	TH_CHECK(try_init(addr) == -EINVAL); /* 0 or 1 only */
	close(lfd);
	printf("PASS\n");
	return 0;
}
