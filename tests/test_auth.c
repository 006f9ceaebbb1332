/*
 * test_auth.c - only members of a cluster get in (proto/auth.h) (room:
 * tests).
 *
 * A server started with a secret file is spoken to raw and through the
 * library.  A connection that skips AUTH, proves a wrong secret, replays a
 * proof recorded on another connection, or authenticates twice is refused
 * with -EACCES (or -EPROTO) and closed, and reads nothing; one that knows
 * the secret gets the server's own proof back and works.  The library
 * gets in with the right DSM_SECRET_FILE, and is refused - with the error
 * its header promises - with a wrong, missing, world-readable or short
 * one, and when it has a secret but the server asks for none.
 */
#include <sys/stat.h>
#include <unistd.h>

#include "auth.h"
#include "client_util.h"

static char dir[] = "/tmp/dsm-auth-test.XXXXXX";
static char good[300], wrong[300], open_perm[300], tiny[300];

static void write_secret(char *path, const char *name, const char *text,
			 mode_t mode)
{
	FILE *f;

	snprintf(path, 300, "%s/%s", dir, name);
	f = fopen(path, "w");
	TH_CHECK(f && fputs(text, f) >= 0 && fclose(f) == 0);
	TH_CHECK(chmod(path, mode) == 0);
}

static struct dsm_auth_key key_of(const char *path)
{
	struct dsm_auth_key k;
	char err[256];

	TH_CHECK(dsm_auth_load(path, &k, err, sizeof(err)) == 0);
	return k;
}

/* HELLO with client nonce cn; the reply must ask for AUTH. */
static int hello(uint16_t port, uint64_t cn, struct dsm_hello_reply *r)
{
	struct dsm_hello m = { DSM_PROTO_VERSION, DSM_PROTO_VERSION,
			       DSM_PAGE_SIZE, cn };
	uint8_t body[DSM_HELLO_SIZE], rep[DSM_HELLO_REPLY_SIZE];
	int fd = th_raw_connect(port);

	TH_CHECK(fd >= 0);
	dsm_hello_encode(&m, body);
	TH_CHECK(th_call(fd, DSM_MSG_HELLO, 1, body, sizeof(body), rep,
			 sizeof(rep), NULL) == 0);
	TH_CHECK(dsm_hello_reply_decode(rep, sizeof(rep), r) == 0);
	TH_CHECK(r->flags & DSM_HELLO_AUTH);
	return fd;
}

/* AUTH with mac; returns the reply status, the server's proof in *proof. */
static int auth(int fd, const uint8_t *mac, uint8_t *proof)
{
	uint8_t rep[DSM_AUTH_MSG_SIZE];

	return th_call(fd, DSM_MSG_AUTH, 2, mac, DSM_AUTH_MAC_SIZE, rep,
		       sizeof(rep), NULL) ?: (memcpy(proof, rep, sizeof(rep)), 0);
}

/* A request that would read the pool must be refused and the
 * connection closed. */
static void refused_then_closed(int fd, int want)
{
	uint8_t body[DSM_ALLOC_REQ_SIZE], rep[DSM_ALLOC_REPLY_SIZE];
	struct dsm_alloc_req a = { 4096 };

	dsm_alloc_req_encode(&a, body);
	TH_CHECK(th_call(fd, DSM_MSG_ALLOC, 3, body, sizeof(body), rep,
			 sizeof(rep), NULL) == want);
	TH_CHECK(th_wait_eof(fd, TH_TIMEOUT_MS) == 0);
	close(fd);
}

static void test_raw(uint16_t port)
{
	struct dsm_auth_key k = key_of(good), bad = key_of(wrong);
	struct dsm_hello_reply r, r2;
	uint8_t mac[DSM_AUTH_MAC_SIZE], proof[DSM_AUTH_MAC_SIZE],
		want[DSM_AUTH_MAC_SIZE];
	int fd;

	/* skipping AUTH */
	refused_then_closed(hello(port, 1, &r), -EACCES);

	/* a wrong secret */
	fd = hello(port, 2, &r);
	dsm_auth_mac(&bad, 'c', r.server_nonce, 2, r.server_id, mac);
	TH_CHECK(auth(fd, mac, proof) == -EACCES);
	TH_CHECK(th_wait_eof(fd, TH_TIMEOUT_MS) == 0);
	close(fd);

	/* the right one: the server proves it too, and the connection works */
	fd = hello(port, 3, &r);
	dsm_auth_mac(&k, 'c', r.server_nonce, 3, r.server_id, mac);
	TH_CHECK(auth(fd, mac, proof) == 0);
	dsm_auth_mac(&k, 's', r.server_nonce, 3, r.server_id, want);
	TH_CHECK(dsm_auth_verify(proof, want) == 0);
	TH_CHECK(th_call(fd, DSM_MSG_PING, 4, NULL, 0, NULL, 0, NULL) == 0);
	/* a second AUTH is a protocol error */
	TH_CHECK(auth(fd, mac, proof) == -EPROTO);
	TH_CHECK(th_wait_eof(fd, TH_TIMEOUT_MS) == 0);
	close(fd);

	/* replay: the proof above, same client nonce, on a new connection,
	 * which gets a fresh server nonce */
	fd = hello(port, 3, &r2);
	TH_CHECK(memcmp(r.server_nonce, r2.server_nonce, 16) != 0);
	TH_CHECK(auth(fd, mac, proof) == -EACCES);
	TH_CHECK(th_wait_eof(fd, TH_TIMEOUT_MS) == 0);
	close(fd);
}

/* dsm_init against addr with DSM_SECRET_FILE=secret (NULL: unset). */
static int init_with(const char *addr, const char *secret)
{
	struct dsm_options o = { .servers = addr, .local_mem = 1 << 20 };

	if (secret)
		setenv("DSM_SECRET_FILE", secret, 1);
	else
		unsetenv("DSM_SECRET_FILE");
	return dsm_init(&o);
}

static void test_library(const char *addr, const char *open_addr)
{
	uint64_t *p;

	TH_CHECK(init_with(addr, NULL) == -EACCES);
	TH_CHECK(init_with(addr, wrong) == -EACCES);
	TH_CHECK(init_with(addr, open_perm) == -EPERM);
	TH_CHECK(init_with(addr, tiny) == -EINVAL);
	/* a secret, but the server asks for none: it cannot prove itself */
	TH_CHECK(init_with(open_addr, good) == -EACCES);

	TH_CHECK(init_with(addr, good) == 0);
	p = dsm_alloc(4 << 20);
	TH_CHECK(p);
	for (uint64_t i = 0; i < (4 << 20) / 8; i += 512)
		p[i] = tc_mix(i);
	for (uint64_t i = 0; i < (4 << 20) / 8; i += 512)
		TH_CHECK(p[i] == tc_mix(i)); /* through eviction: 1 MiB budget */
	TH_CHECK(tc_stats().pages_fetched > 0);
	dsm_free(p);
	dsm_shutdown();
	unsetenv("DSM_SECRET_FILE");
}

int main(void)
{
	struct th_server srv, open_srv;

	TH_CHECK(mkdtemp(dir));
	write_secret(good, "good", "the cluster's long random secret\n", 0600);
	write_secret(wrong, "wrong", "some other long random secret..\n", 0600);
	write_secret(open_perm, "open", "the cluster's long random secret\n",
		     0644);
	write_secret(tiny, "tiny", "short\n", 0600);

	TH_CHECK(th_server_start_secret(&srv, "64M", good) == 0);
	TH_CHECK(th_server_start(&open_srv, "64M") == 0);
	test_raw(srv.port);
	test_library(srv.addr, open_srv.addr);
	th_server_stop(&srv);
	th_server_stop(&open_srv);

	unlink(good);
	unlink(wrong);
	unlink(open_perm);
	unlink(tiny);
	rmdir(dir);
	printf("auth: ok\n");
	return 0;
}
