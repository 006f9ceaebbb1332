/*
 * harness.h - what every dsm test shares (room: tests): a dsm-server of its
 * own, checks that fail loudly, and raw protocol access for tests that
 * speak to the server without the client library.
 */
#ifndef DSM_TEST_HARNESS_H
#define DSM_TEST_HARNESS_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>

#include "proto.h"

struct th_server {
	pid_t pid;
	uint16_t port;
	char addr[64];  /* "127.0.0.1:PORT" */
	char dir[256];  /* private temporary directory (port file) */
};

/*
 * Start DSM_SERVER_BIN on 127.0.0.1 with an ephemeral port and wait (up to
 * 10 s) until it is listening.  It polls as long as DSM_POLL_US says, if
 * set (so a test and its server poll alike).  0 or -errno.  The server is killed if the
 * thread that started it exits, so a failing test leaves nothing behind:
 * start it from the main thread.
 */
int th_server_start(struct th_server *s, const char *capacity);
/* The same, with --secret-file secret_file (NULL: none). */
int th_server_start_secret(struct th_server *s, const char *capacity,
			   const char *secret_file);
/* What else a test may ask of its server. */
struct th_server_opts {
	const char *secret_file;        /* --secret-file, or NULL */
	const char *const *args;        /* more options, NULL-terminated */
	long nofile;                    /* RLIMIT_NOFILE (soft and hard), or 0 */
};
int th_server_start_opts(struct th_server *s, const char *capacity,
			 const struct th_server_opts *o);
/* SIGTERM, wait up to 10 s, then SIGKILL. */
void th_server_stop(struct th_server *s);
/* SIGKILL and reap. */
void th_server_kill(struct th_server *s);
/* Reap the server within timeout_ms: its wait status, or -ETIMEDOUT. */
int th_server_wait(struct th_server *s, int timeout_ms);

#define TH_CHECK(cond)                                                      \
	do {                                                                \
		if (!(cond)) {                                              \
			fprintf(stderr, "FAIL: %s:%d: check failed: %s\n",  \
				__FILE__, __LINE__, #cond);                 \
			exit(1);                                            \
		}                                                           \
	} while (0)

/* got must be want (a status, -errno, or a count): else print what, both
 * values and their errno names, and exit(1). */
void th_expect(const char *what, long got, long want);

/* vm.nr_hugepages now, or -1 if there is none. */
long th_nr_huge(void);
/* Raise vm.nr_hugepages by n until this process exits (even through a
 * failed check), with n of them free.  NULL, or why not, for a SKIP
 * line. */
const char *th_reserve_huge(long n);

/* --- raw protocol ------------------------------------------------------ */

#define TH_TIMEOUT_MS 5000

/* A blocking TCP connection to 127.0.0.1:port, or -errno. */
int th_raw_connect(uint16_t port);
/* Send all len bytes.  0 or -errno (-EPIPE, -ECONNRESET: the peer left). */
int th_send_all(int fd, const void *buf, size_t len);
/* Send a message: a header (type, flags, id, len) and len body bytes. */
int th_send_msg(int fd, uint8_t type, uint16_t flags, uint64_t id,
		const void *body, uint32_t len);
/*
 * Receive one message within timeout_ms.  Up to cap body bytes land in
 * body (the rest is discarded); *h gets the header.  0, -ETIMEDOUT,
 * -ECONNRESET (EOF or reset), or -EPROTO/-EPROTONOSUPPORT/-EMSGSIZE for a
 * header that does not decode.
 */
int th_recv_msg(int fd, struct dsm_hdr *h, void *body, uint32_t cap,
		int timeout_ms);
/* Wait for the peer to close: 0 on EOF or reset, -ETIMEDOUT, or -EBADMSG
 * if data arrived instead. */
int th_wait_eof(int fd, int timeout_ms);
/*
 * A request and its reply: sends (type, id, body) and receives the reply
 * into reply/cap.  Returns the reply status (0 or -errno from the server),
 * or a transport error as th_recv_msg.  Checks that the reply echoes type
 * and id.  *rlen (may be NULL) gets the reply body length.
 */
int th_call(int fd, uint8_t type, uint64_t id, const void *body, uint32_t len,
	    void *reply, uint32_t cap, uint32_t *rlen);
/* Connect and HELLO: a connected fd, or -errno. */
int th_hello_connect(uint16_t port);
/* Bytes the server holds for its clients, from its STATS (checked). */
uint64_t th_server_used(const struct th_server *srv);

#endif /* DSM_TEST_HARNESS_H */
