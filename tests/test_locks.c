/*
 * test_locks.c - locks at words of shared regions, and barriers, spoken
 * to a real dsm-server in raw protocol (room: tests).
 *
 * Each connection stands for a client process, and tokens for its
 * threads.  docs/design.md, "Locks and barriers", says what the server
 * must do; each case checks one part of it and names what it defeats.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#define REGION_SIZE (64u << 10)
#define QUIET_MS 200       /* "nothing arrives": waited this long */
/* Server-side bounds (server/lock.h, server/barrier.h), as documented. */
#define MAX_LOCKS 256u
#define MAX_DEAD_MARKS 256u
#define MAX_BARRIERS 1024u
#define MAX_ARRIVALS 64u

struct share {
	uint64_t id, pool_off, size;
};

static struct th_server srv;
static uint64_t next_id = 1;
static int nopen;          /* connections of ours the server should see */

static int conn(void)
{
	int fd = th_hello_connect(srv.port);

	TH_CHECK(fd >= 0);
	nopen++;
	return fd;
}

static void hangup(int fd)
{
	close(fd);
	nopen--;
}

static void fill_key(uint8_t *key, unsigned seed)
{
	for (unsigned i = 0; i < DSM_SHARE_KEY_SIZE; i++)
		key[i] = (uint8_t)(seed * 31 + i + (seed >> 8));
}

static int share(int fd, uint8_t type, uint64_t id, unsigned seed,
		 struct share *out)
{
	struct dsm_share_req m = { .region_id = id, .size = REGION_SIZE };
	uint8_t body[DSM_SHARE_REQ_SIZE], reply[DSM_ALLOC_REPLY_SIZE];
	struct dsm_alloc_reply a;
	uint32_t rlen;
	int st;

	fill_key(m.key, seed);
	dsm_share_req_encode(&m, body);
	st = th_call(fd, type, next_id++, body, sizeof(body), reply,
		     sizeof(reply), &rlen);
	if (st || !out)
		return st;
	TH_CHECK(dsm_alloc_reply_decode(reply, rlen, &a) == 0);
	*out = (struct share){ a.region_id, a.pool_off, a.size };
	return 0;
}

static struct share create(int fd, unsigned seed)
{
	struct share s;

	th_expect("SHARE_CREATE", share(fd, DSM_MSG_SHARE_CREATE, 0, seed, &s),
	       0);
	return s;
}

static void attach(int fd, const struct share *s, unsigned seed)
{
	th_expect("SHARE_ATTACH", share(fd, DSM_MSG_SHARE_ATTACH, s->id, seed,
				     NULL), 0);
}

static uint64_t detach_send(int fd, uint64_t id)
{
	struct dsm_free_req m = { .region_id = id };
	uint8_t body[DSM_FREE_REQ_SIZE];
	uint64_t rid = next_id++;

	dsm_free_req_encode(&m, body);
	TH_CHECK(th_send_msg(fd, DSM_MSG_FREE, 0, rid, body,
			     sizeof(body)) == 0);
	return rid;
}

/* Send a LOCK or UNLOCK of the word at offset under token: its id. */
static uint64_t lock_send(int fd, uint8_t type, uint64_t region,
			  uint64_t offset, uint64_t token)
{
	struct dsm_lock_req m = { .region_id = region, .offset = offset,
				  .token = token };
	uint8_t body[DSM_LOCK_REQ_SIZE];
	uint64_t id = next_id++;

	dsm_lock_req_encode(&m, body);
	TH_CHECK(th_send_msg(fd, type, 0, id, body, sizeof(body)) == 0);
	return id;
}

/* The next message must answer request (type, id): its status; a LOCK
 * grant's flags in *flags. */
static int expect_reply(int fd, uint8_t type, uint64_t id, uint32_t *flags,
			int timeout_ms)
{
	uint8_t body[64];
	struct dsm_lock_reply a;
	struct dsm_hdr h;
	int err = th_recv_msg(fd, &h, body, sizeof(body), timeout_ms);

	if (err)
		return err;
	if (h.type != type || h.flags != DSM_F_REPLY || h.id != id) {
		fprintf(stderr, "got %s flags %u id %llu, want the reply to "
			"%s id %llu\n", dsm_msg_name(h.type), h.flags,
			(unsigned long long)h.id, dsm_msg_name(type),
			(unsigned long long)id);
		exit(1);
	}
	if (type == DSM_MSG_LOCK && !h.status) {
		TH_CHECK(dsm_lock_reply_decode(body, h.len, &a) == 0);
		*flags = a.flags;
	} else {
		TH_CHECK(h.len == 0);
	}
	return h.status;
}

/* LOCK `id` granted now, saying `flags`. */
static void expect_grant(int fd, uint64_t id, uint32_t want, const char *what)
{
	uint32_t flags = ~0u;

	th_expect(what, expect_reply(fd, DSM_MSG_LOCK, id, &flags,
				  TH_TIMEOUT_MS), 0);
	th_expect(what, flags, want);
}

/* A LOCK granted at once: its id. */
static uint64_t take(int fd, uint64_t region, uint64_t offset,
		     uint64_t token, uint32_t want, const char *what)
{
	uint64_t id = lock_send(fd, DSM_MSG_LOCK, region, offset, token);

	expect_grant(fd, id, want, what);
	return id;
}

/* UNLOCK and its reply, with nothing before it. */
static int unlock(int fd, uint64_t region, uint64_t offset, uint64_t token)
{
	uint64_t id = lock_send(fd, DSM_MSG_UNLOCK, region, offset, token);

	return expect_reply(fd, DSM_MSG_UNLOCK, id, NULL, TH_TIMEOUT_MS);
}

static void expect_quiet(int fd, const char *what)
{
	struct dsm_hdr h;

	th_expect(what, th_recv_msg(fd, &h, NULL, 0, QUIET_MS), -ETIMEDOUT);
}

static struct dsm_server_stats stats(void)
{
	uint8_t reply[DSM_SERVER_STATS_SIZE];
	struct dsm_server_stats st;
	int fd = th_hello_connect(srv.port);
	uint32_t rlen;

	TH_CHECK(fd >= 0);
	th_expect("STATS", th_call(fd, DSM_MSG_STATS, next_id++, NULL, 0, reply,
				sizeof(reply), &rlen), 0);
	TH_CHECK(dsm_server_stats_decode(reply, rlen, &st) == 0);
	close(fd);
	return st;
}

/* The server ends a closed connection's session when it sees the close:
 * wait (bounded) until it has seen every hangup of ours. */
static void wait_settled(void)
{
	for (int i = 0; i < 250; i++) {
		if (stats().clients == (uint64_t)nopen + 1)
			return;
		usleep(20000);
	}
	th_expect("sessions the server sees", stats().clients, nopen + 1);
}

/*
 * One holder at a time, the rest in arrival order (C before B though B's
 * session is older), and a lock per word.  Defeats: a lock granted while
 * held, waiters served in any order but first come first served.
 */
static void test_fifo(void)
{
	int a = conn(), b = conn(), c = conn();
	struct share s = create(a, 1);
	uint64_t lb, lc;

	attach(b, &s, 1);
	attach(c, &s, 1);
	take(a, s.id, 0, 1, 0, "A locks");
	lc = lock_send(c, DSM_MSG_LOCK, s.id, 0, 7);
	expect_quiet(c, "C while A holds");
	lb = lock_send(b, DSM_MSG_LOCK, s.id, 0, 7);
	expect_quiet(b, "B while A holds");
	take(b, s.id, 8, 7, 0, "another word is another lock");
	th_expect("A unlocks", unlock(a, s.id, 0, 1), 0);
	expect_grant(c, lc, 0, "C, first in line");
	expect_quiet(b, "B behind C");
	th_expect("A unlocks again", unlock(a, s.id, 0, 1), -EPERM);
	th_expect("C unlocks", unlock(c, s.id, 0, 7), 0);
	expect_grant(b, lb, 0, "B, next");
	th_expect("B unlocks", unlock(b, s.id, 0, 7), 0);
	th_expect("B unlocks the other word", unlock(b, s.id, 8, 7), 0);
	take(a, s.id, 0, 1, 0, "a free lock again");
	th_expect("A unlocks", unlock(a, s.id, 0, 1), 0);
	hangup(a);
	hangup(b);
	hangup(c);
}

/*
 * Tokens of one session are lockers of their own: T2 waits for T1; T1
 * and T2 each holding one and waiting for the other are not refused (a
 * deadlock across threads is the program's, as with any mutex), and T1
 * taking its wait back ends it; the same token twice is -EDEADLK, a
 * token that is neither holder nor waiter -EPERM.  Defeats: a session
 * taken for one locker (T2 granted, or refused), -EDEADLK missing.
 */
static void test_tokens(void)
{
	int a = conn();
	struct share s = create(a, 2);
	uint32_t flags;
	uint64_t w1, w2, u;

	take(a, s.id, 16, 1, 0, "T1 locks");
	w2 = lock_send(a, DSM_MSG_LOCK, s.id, 16, 2);
	expect_quiet(a, "T2 waits for T1");
	th_expect("T1 again", expect_reply(a, DSM_MSG_LOCK,
					lock_send(a, DSM_MSG_LOCK, s.id, 16, 1),
					&flags, TH_TIMEOUT_MS), -EDEADLK);
	th_expect("T2 again", expect_reply(a, DSM_MSG_LOCK,
					lock_send(a, DSM_MSG_LOCK, s.id, 16, 2),
					&flags, TH_TIMEOUT_MS), -EDEADLK);
	th_expect("T3 unlocks", unlock(a, s.id, 16, 3), -EPERM);
	/* T1's UNLOCK grants T2 first, then is answered itself */
	u = lock_send(a, DSM_MSG_UNLOCK, s.id, 16, 1);
	expect_grant(a, w2, 0, "T2 after T1");
	th_expect("T1's UNLOCK", expect_reply(a, DSM_MSG_UNLOCK, u, NULL,
					   TH_TIMEOUT_MS), 0);
	th_expect("T2 unlocks", unlock(a, s.id, 16, 2), 0);

	/* each holds one and waits for the other's */
	take(a, s.id, 24, 1, 0, "T1 locks X");
	take(a, s.id, 32, 2, 0, "T2 locks Y");
	w1 = lock_send(a, DSM_MSG_LOCK, s.id, 32, 1);
	w2 = lock_send(a, DSM_MSG_LOCK, s.id, 24, 2);
	expect_quiet(a, "T1 and T2 wait for each other");
	u = lock_send(a, DSM_MSG_UNLOCK, s.id, 32, 1);
	th_expect("T1 takes its wait back", expect_reply(a, DSM_MSG_LOCK, w1,
						      &flags, TH_TIMEOUT_MS),
	       -ECANCELED);
	th_expect("its UNLOCK", expect_reply(a, DSM_MSG_UNLOCK, u, NULL,
					  TH_TIMEOUT_MS), 0);
	u = lock_send(a, DSM_MSG_UNLOCK, s.id, 24, 1);
	expect_grant(a, w2, 0, "T2 gets X");
	th_expect("T1 lets X go", expect_reply(a, DSM_MSG_UNLOCK, u, NULL,
					    TH_TIMEOUT_MS), 0);
	th_expect("T2 unlocks X", unlock(a, s.id, 24, 2), 0);
	th_expect("T2 unlocks Y", unlock(a, s.id, 32, 2), 0);
	hangup(a);
}

/*
 * UNLOCK of a waiting LOCK takes it back: the LOCK is answered
 * -ECANCELED, then the UNLOCK 0, and the next release skips it (here C
 * in the middle of B, C, D); UNLOCK by a stranger is -EPERM and changes
 * nothing.  Defeats: a cancel that leaves the wait queued (C granted
 * later), a cancel answered in the wrong order or not at all, UNLOCK
 * allowed to a non-holder.
 */
static void test_cancel(void)
{
	int a = conn(), b = conn(), c = conn(), d = conn();
	struct share s = create(a, 3);
	uint64_t lb, lc, ld, u;
	uint32_t flags;

	attach(b, &s, 3);
	attach(c, &s, 3);
	attach(d, &s, 3);
	take(a, s.id, 40, 1, 0, "A locks");
	lb = lock_send(b, DSM_MSG_LOCK, s.id, 40, 1);
	lc = lock_send(c, DSM_MSG_LOCK, s.id, 40, 1);
	ld = lock_send(d, DSM_MSG_LOCK, s.id, 40, 1);
	expect_quiet(d, "three waiters");
	u = lock_send(c, DSM_MSG_UNLOCK, s.id, 40, 1);
	th_expect("C's LOCK taken back", expect_reply(c, DSM_MSG_LOCK, lc,
						   &flags, TH_TIMEOUT_MS),
	       -ECANCELED);
	th_expect("C's UNLOCK, after", expect_reply(c, DSM_MSG_UNLOCK, u, NULL,
						 TH_TIMEOUT_MS), 0);
	/* D's token 1 waits (its UNLOCK would cancel); token 9 is nobody */
	th_expect("D unlocks what A holds", unlock(d, s.id, 40, 9), -EPERM);
	th_expect("unlock of a word nobody locked", unlock(d, s.id, 48, 1),
	       -EPERM);
	th_expect("A unlocks", unlock(a, s.id, 40, 1), 0);
	expect_grant(b, lb, 0, "B");
	th_expect("B unlocks", unlock(b, s.id, 40, 1), 0);
	expect_grant(d, ld, 0, "D, C skipped");
	expect_quiet(c, "C, cancelled");
	th_expect("D unlocks", unlock(d, s.id, 40, 1), 0);
	take(c, s.id, 40, 1, 0, "a free lock for C");
	th_expect("C unlocks", unlock(c, s.id, 40, 1), 0);
	hangup(a);
	hangup(b);
	hangup(c);
	hangup(d);
}

/*
 * A holder whose connection closes: the next waiter is granted with
 * OWNER_DIED, and only it; with nobody waiting the next LOCK, whenever
 * it comes, says so.  Defeats: a dead holder's locks never released (B
 * waits for ever), OWNER_DIED not said, or said again, or forgotten
 * when nobody waited.
 */
static void test_owner_died_close(void)
{
	int a = conn(), b = conn(), c = conn(), e;
	struct share s = create(a, 4);
	uint64_t lb;

	attach(b, &s, 4);
	attach(c, &s, 4);
	take(a, s.id, 56, 1, 0, "A locks");
	lb = lock_send(b, DSM_MSG_LOCK, s.id, 56, 1);
	expect_quiet(b, "B while A holds");
	hangup(a);
	expect_grant(b, lb, DSM_LOCK_OWNER_DIED, "B after A died holding");
	th_expect("B unlocks", unlock(b, s.id, 56, 1), 0);
	take(c, s.id, 56, 1, 0, "C after B's clean release");
	th_expect("C unlocks", unlock(c, s.id, 56, 1), 0);

	e = conn();
	attach(e, &s, 4);
	take(e, s.id, 64, 1, 0, "E locks");
	hangup(e);
	wait_settled();
	take(b, s.id, 64, 1, DSM_LOCK_OWNER_DIED, "B, after E died alone");
	th_expect("B unlocks", unlock(b, s.id, 64, 1), 0);
	take(c, s.id, 64, 1, 0, "C after that");
	th_expect("C unlocks", unlock(c, s.id, 64, 1), 0);
	hangup(b);
	hangup(c);
}

/*
 * A holder that detaches (FREE) while holding: as a death.  A session
 * that detaches while waiting gets its LOCK answered -ENOENT before the
 * FREE's reply, and is skipped, also when it holds the lock under
 * another token.  Defeats: locks kept by a detached session, a waiting
 * LOCK left unanswered when its session lets go of the region, a
 * session's holds released before its waits (its own waiter granted on
 * its way out).
 */
static void test_owner_died_detach(void)
{
	int a = conn(), b = conn(), c = conn();
	struct share s = create(a, 5);
	uint64_t lb, la, f;
	uint32_t flags;

	attach(b, &s, 5);
	attach(c, &s, 5);
	take(a, s.id, 72, 1, 0, "A locks");
	lb = lock_send(b, DSM_MSG_LOCK, s.id, 72, 1);
	expect_quiet(b, "B while A holds");
	f = detach_send(a, s.id);
	th_expect("A's FREE", expect_reply(a, DSM_MSG_FREE, f, NULL,
					TH_TIMEOUT_MS), 0);
	expect_grant(b, lb, DSM_LOCK_OWNER_DIED, "B after A detached holding");
	th_expect("A unlocks after detaching", unlock(a, s.id, 72, 1), -ENOENT);

	attach(a, &s, 5);
	la = lock_send(a, DSM_MSG_LOCK, s.id, 72, 1);
	expect_quiet(a, "A waits for B");
	f = detach_send(a, s.id);
	th_expect("A's waiting LOCK", expect_reply(a, DSM_MSG_LOCK, la, &flags,
						TH_TIMEOUT_MS), -ENOENT);
	th_expect("then A's FREE", expect_reply(a, DSM_MSG_FREE, f, NULL,
					     TH_TIMEOUT_MS), 0);
	th_expect("B unlocks", unlock(b, s.id, 72, 1), 0);
	take(c, s.id, 72, 1, 0, "C: nobody died, A was only waiting");
	th_expect("C unlocks", unlock(c, s.id, 72, 1), 0);

	/* A holds under T1 and waits under T2 when it detaches: T2 is
	 * answered -ENOENT, never granted on A's way out; C is next. */
	attach(a, &s, 5);
	take(a, s.id, 88, 1, 0, "A's T1 locks");
	la = lock_send(a, DSM_MSG_LOCK, s.id, 88, 2);
	lb = lock_send(c, DSM_MSG_LOCK, s.id, 88, 1);
	expect_quiet(c, "C behind A's two tokens");
	f = detach_send(a, s.id);
	th_expect("A's T2, waiting", expect_reply(a, DSM_MSG_LOCK, la, &flags,
					       TH_TIMEOUT_MS), -ENOENT);
	th_expect("A's FREE", expect_reply(a, DSM_MSG_FREE, f, NULL,
					TH_TIMEOUT_MS), 0);
	expect_grant(c, lb, DSM_LOCK_OWNER_DIED, "C after A left holding");
	th_expect("C unlocks", unlock(c, s.id, 88, 1), 0);
	hangup(a);
	hangup(b);
	hangup(c);
}

/*
 * A waiter whose session ends is dropped: the release skips it and the
 * next one is granted cleanly.  Defeats: a dead session's waits kept (the
 * lock granted to it, then released as its death: C would see
 * OWNER_DIED, or nothing).
 */
static void test_waiter_gone(void)
{
	int a = conn(), b = conn(), c = conn();
	struct share s = create(a, 6);
	uint64_t lc;

	attach(b, &s, 6);
	attach(c, &s, 6);
	take(a, s.id, 80, 1, 0, "A locks");
	lock_send(b, DSM_MSG_LOCK, s.id, 80, 1);
	lock_send(b, DSM_MSG_LOCK, s.id, 80, 2);
	lc = lock_send(c, DSM_MSG_LOCK, s.id, 80, 1);
	expect_quiet(c, "C behind B's two tokens");
	hangup(b);
	wait_settled();
	th_expect("A unlocks", unlock(a, s.id, 80, 1), 0);
	expect_grant(c, lc, 0, "C, B's waits gone with it");
	th_expect("C unlocks", unlock(c, s.id, 80, 1), 0);
	hangup(a);
	hangup(c);
}

/*
 * 256 locks per session, the 257th -ENOLCK (and one freed makes room);
 * a region keeps 256 dead marks, and past them says OWNER_DIED on every
 * grant.  Defeats: no per-session bound, no bound on marks (the 257th
 * mark kept: the fresh word's grant would be clean), a mark still
 * counted once its word was granted (the 256th would overflow).
 */
static void test_lock_bounds(void)
{
	int a = conn(), b = conn(), c = conn(), d;
	struct share s = create(a, 7);
	uint64_t ids[MAX_LOCKS], base = 8192;
	uint32_t flags;

	attach(b, &s, 7);
	attach(c, &s, 7);
	for (unsigned i = 0; i < MAX_LOCKS; i++)
		ids[i] = lock_send(a, DSM_MSG_LOCK, s.id, 8ull * i, 1);
	for (unsigned i = 0; i < MAX_LOCKS; i++)
		expect_grant(a, ids[i], 0, "one of 256 locks");
	th_expect("the 257th lock",
	       expect_reply(a, DSM_MSG_LOCK,
			    lock_send(a, DSM_MSG_LOCK, s.id, 8ull * MAX_LOCKS,
				      1), &flags, TH_TIMEOUT_MS), -ENOLCK);
	th_expect("one released", unlock(a, s.id, 0, 1), 0);
	take(a, s.id, 0, 2, 0, "then one more fits");

	/* A dies holding 256: the region's 256 marks, all kept. */
	hangup(a);
	wait_settled();
	take(b, s.id, base, 1, 0, "a word never locked: no mark");
	th_expect("B unlocks it", unlock(b, s.id, base, 1), 0);
	take(b, s.id, 8 * (MAX_DEAD_MARKS - 1), 1, DSM_LOCK_OWNER_DIED,
	     "a marked word");
	/* 255 marks left (the one taken no longer counts): C dies holding
	 * one more word, which fits ... */
	d = conn();
	attach(d, &s, 7);
	take(c, s.id, base + 8, 1, 0, "C locks");
	hangup(c);
	wait_settled();
	take(b, s.id, base + 16, 1, 0, "a fresh word, 256 marks");
	/* ... and D dies holding one more: one too many. */
	take(d, s.id, base + 24, 1, 0, "D locks");
	hangup(d);
	wait_settled();
	take(b, s.id, base + 32, 1, DSM_LOCK_OWNER_DIED,
	     "a fresh word, past the marks' bound");
	hangup(b);
}

/* A distinct key for every seed (a client would hash a name). */
static void barrier_key(uint8_t *key, unsigned seed)
{
	for (unsigned i = 0; i < DSM_BARRIER_KEY_SIZE; i++)
		key[i] = (uint8_t)(i * 7 + 3);
	key[0] = (uint8_t)seed;
	key[1] = (uint8_t)(seed >> 8);
	key[2] = (uint8_t)(seed >> 16);
}

static uint64_t barrier_send(int fd, unsigned seed, uint32_t count,
			     uint32_t flags, uint64_t token)
{
	struct dsm_barrier_req m = { .count = count, .flags = flags,
				     .token = token };
	uint8_t body[DSM_BARRIER_REQ_SIZE];
	uint64_t id = next_id++;

	barrier_key(m.key, seed);
	dsm_barrier_req_encode(&m, body);
	TH_CHECK(th_send_msg(fd, DSM_MSG_BARRIER, 0, id, body,
			     sizeof(body)) == 0);
	return id;
}

/* Thread `token` of the session arrives: the BARRIER's id. */
static uint64_t arrive(int fd, unsigned seed, uint32_t count, uint64_t token)
{
	return barrier_send(fd, seed, count, 0, token);
}

static void expect_released(int fd, uint64_t id, const char *what)
{
	th_expect(what, expect_reply(fd, DSM_MSG_BARRIER, id, NULL,
				  TH_TIMEOUT_MS), 0);
}

static int arrive_status(int fd, unsigned seed, uint32_t count,
			 uint64_t token)
{
	return expect_reply(fd, DSM_MSG_BARRIER, arrive(fd, seed, count, token),
			    NULL, TH_TIMEOUT_MS);
}

/* WITHDRAW of thread `token`'s arrival, with nothing before its reply:
 * its status. */
static int withdraw_status(int fd, unsigned seed, uint32_t count,
			   uint64_t token)
{
	uint64_t id = barrier_send(fd, seed, count, DSM_BARRIER_WITHDRAW,
				   token);

	return expect_reply(fd, DSM_MSG_BARRIER, id, NULL, TH_TIMEOUT_MS);
}

/* WITHDRAW of the waiting arrival `arrival` of thread `token`: that
 * BARRIER is answered -ECANCELED, then the WITHDRAW 0. */
static void withdraw(int fd, unsigned seed, uint32_t count, uint64_t token,
		     uint64_t arrival, const char *what)
{
	uint64_t id = barrier_send(fd, seed, count, DSM_BARRIER_WITHDRAW,
				   token);

	th_expect(what, expect_reply(fd, DSM_MSG_BARRIER, arrival, NULL,
				  TH_TIMEOUT_MS), -ECANCELED);
	th_expect(what, expect_reply(fd, DSM_MSG_BARRIER, id, NULL,
				  TH_TIMEOUT_MS), 0);
}

/* Three sessions at a barrier of 3, twice under one key: none released
 * before the third arrival. */
static void barrier_rounds(int a, int b, int c)
{
	for (int round = 0; round < 2; round++) {
		uint64_t ia = arrive(a, 1, 3, 1), ib, ic;

		expect_quiet(a, "one arrival of 3");
		ib = arrive(b, 1, 3, 1);
		expect_quiet(a, "two arrivals of 3 (A)");
		expect_quiet(b, "two arrivals of 3 (B)");
		ic = arrive(c, 1, 3, 1);
		expect_released(a, ia, "A at the third arrival");
		expect_released(b, ib, "B at the third arrival");
		expect_released(c, ic, "C, the third");
	}
}

/*
 * Barriers: released at the count-th arrival and not before, reused in
 * a second round, a count of 1 at once, a mismatched count -EINVAL, a
 * dead waiter withdrawn.  Defeats: released early or never, a record
 * kept after release (the second round's first arrival would release
 * it), a mismatch accepted, a dead waiter's arrival still counted.
 */
static void test_barrier(void)
{
	int a = conn(), b = conn(), c = conn(), d = conn();
	uint64_t ia, ib, ic;

	barrier_rounds(a, b, c);
	ia = arrive(a, 2, 3, 1);
	th_expect("a count that differs", arrive_status(b, 2, 4, 1), -EINVAL);
	ib = arrive(b, 2, 3, 1);
	expect_quiet(a, "the mismatch did not count");
	ic = arrive(c, 2, 3, 1);
	expect_released(a, ia, "A");
	expect_released(b, ib, "B");
	expect_released(c, ic, "C");

	th_expect("a barrier of 1", arrive_status(a, 3, 1, 1), 0);

	ia = arrive(a, 5, 3, 1);
	arrive(d, 5, 3, 1);
	expect_quiet(a, "two of 3, one about to go");
	hangup(d);
	wait_settled();
	ib = arrive(b, 5, 3, 1);
	expect_quiet(b, "D withdrawn: two of 3 again");
	ic = arrive(c, 5, 3, 1);
	expect_released(a, ia, "A");
	expect_released(b, ib, "B");
	expect_released(c, ic, "C");
	hangup(a);
	hangup(b);
	hangup(c);
}

/*
 * Tokens: two threads of one session arrive separately and count as
 * two; the same token arriving again while its first arrival waits is
 * -EDEADLK and does not count, also when it would have completed the
 * barrier; once released, the token arrives again.  Defeats: arrivals
 * counted per session, no -EDEADLK (the second arrival counted: a
 * barrier of 2 released by one thread), -EDEADLK for another token of
 * the session or for the same token at another key.
 */
static void test_barrier_tokens(void)
{
	int a = conn(), b = conn(), c = conn();
	uint64_t ia, ia2, ib, ic;

	ia = arrive(a, 4, 3, 1);
	ia2 = arrive(a, 4, 3, 2);
	expect_quiet(a, "two threads of A of 3");
	ib = arrive(b, 4, 3, 1);
	expect_released(a, ia, "A's first thread");
	expect_released(a, ia2, "A's second thread");
	expect_released(b, ib, "B, the third");

	ia = arrive(a, 6, 2, 1);
	th_expect("T1 again, where it would complete",
	       arrive_status(a, 6, 2, 1), -EDEADLK);
	expect_quiet(a, "T1's first arrival still waits");
	ia2 = arrive(a, 7, 2, 1);
	expect_quiet(a, "T1 at another key waits too");
	ib = arrive(b, 6, 2, 1);
	expect_released(a, ia, "A's T1, released by B");
	expect_released(b, ib, "B");
	ib = arrive(b, 7, 2, 1);
	expect_released(a, ia2, "A's T1 at the other key");
	expect_released(b, ib, "B there");

	ia = arrive(a, 6, 3, 1);
	th_expect("T1 again, where it would not complete",
	       arrive_status(a, 6, 3, 1), -EDEADLK);
	ib = arrive(b, 6, 3, 1);
	expect_quiet(b, "two of 3: the refused one did not count");
	ic = arrive(c, 6, 3, 1);
	expect_released(a, ia, "A");
	expect_released(b, ib, "B");
	expect_released(c, ic, "C");
	hangup(a);
	hangup(b);
	hangup(c);
}

/*
 * WITHDRAW takes a waiting arrival back: its BARRIER is answered
 * -ECANCELED, then the WITHDRAW 0, and it no longer counts (a barrier of
 * 3 with one of two withdrawn needs two more); a barrier left with none
 * is freed (a new count is taken); the token may arrive again.  A
 * WITHDRAW that finds no waiting arrival of (this session, this token)
 * at the key is -ENOENT: nothing there, another token, another
 * session's, or one already released (also while a new round waits).
 * Defeats: no -ECANCELED or the replies out of order, a withdrawn
 * arrival still counted or still answered at release, an empty barrier
 * kept, a withdraw matched by key alone (another token's or session's
 * arrival taken), a withdraw of nothing answered 0.
 */
static void test_barrier_withdraw(void)
{
	int a = conn(), b = conn(), c = conn(), d = conn();
	uint64_t ia, ib, ic, id;

	/* the head of the queue withdrawn */
	ia = arrive(a, 10, 3, 1);
	ib = arrive(b, 10, 3, 1);
	expect_quiet(a, "two of 3");
	withdraw(a, 10, 3, 1, ia, "A takes its arrival back");
	ic = arrive(c, 10, 3, 1);
	expect_quiet(c, "two of 3 again: A's no longer counts");
	expect_quiet(b, "B still waits");
	id = arrive(d, 10, 3, 1);
	expect_released(b, ib, "B");
	expect_released(c, ic, "C");
	expect_released(d, id, "D, the third");
	expect_quiet(a, "A, withdrawn, not released");

	/* one in the middle, then the token again */
	ia = arrive(a, 11, 4, 1);
	ib = arrive(b, 11, 4, 1);
	ic = arrive(c, 11, 4, 1);
	withdraw(b, 11, 4, 1, ib, "B in the middle");
	ib = arrive(b, 11, 4, 1);
	expect_quiet(b, "B again: three of 4");
	id = arrive(d, 11, 4, 1);
	expect_released(a, ia, "A");
	expect_released(c, ic, "C");
	expect_released(b, ib, "B's second arrival");
	expect_released(d, id, "D");

	/* withdraws that find nothing */
	th_expect("a withdraw at a key nobody waits at",
	       withdraw_status(a, 12, 2, 1), -ENOENT);
	ia = arrive(a, 12, 3, 1);
	th_expect("another token's withdraw", withdraw_status(a, 12, 3, 2),
	       -ENOENT);
	th_expect("another session's withdraw", withdraw_status(b, 12, 3, 1),
	       -ENOENT);
	expect_quiet(a, "A's arrival untouched");
	withdraw(a, 12, 3, 1, ia, "A, the last arrival there");
	/* the record went with its last arrival: a new count is taken */
	ia = arrive(a, 12, 2, 1);
	ib = arrive(b, 12, 2, 1);
	expect_released(a, ia, "a new round of 2");
	expect_released(b, ib, "B, its second");

	/* released first: the withdraw is too late */
	ia = arrive(a, 13, 2, 1);
	ib = arrive(b, 13, 2, 1);
	expect_released(a, ia, "A");
	expect_released(b, ib, "B");
	th_expect("a withdraw after release", withdraw_status(a, 13, 2, 1),
	       -ENOENT);
	ic = arrive(c, 13, 2, 1);
	th_expect("a withdraw after release, a new round waiting",
	       withdraw_status(a, 13, 2, 1), -ENOENT);
	id = arrive(d, 13, 2, 1);
	expect_released(c, ic, "C's arrival still counted");
	expect_released(d, id, "D");
	hangup(a);
	hangup(b);
	hangup(c);
	hangup(d);
}

/*
 * 64 arrivals waiting per session, the 65th -EAGAIN; 1024 barriers per
 * server, the 1025th -EAGAIN, while an arrival completing a barrier
 * still goes; the sessions' ends give the room back.  Defeats: either
 * bound missing, withdrawn arrivals' barriers never freed.
 */
static void test_barrier_bounds(void)
{
	enum { NS = MAX_BARRIERS / MAX_ARRIVALS };
	int fds[NS], x = conn();
	uint64_t first = 0, ix, iy, iz;

	for (unsigned k = 0; k < NS; k++) {
		fds[k] = conn();
		for (unsigned i = 0; i < MAX_ARRIVALS; i++) {
			uint64_t id = arrive(fds[k], 1000 + k * 100 + i, 2,
					     1);

			if (!k && !i)
				first = id;
		}
		if (!k)
			th_expect("the 65th arrival of a session",
			       arrive_status(fds[0], 999, 2, 1), -EAGAIN);
	}
	expect_quiet(fds[NS - 1], "1024 barriers waiting");
	th_expect("the 1025th barrier", arrive_status(x, 999, 2, 1), -EAGAIN);
	th_expect("an arrival that completes one", arrive_status(x, 1000, 2, 1),
	       0);
	expect_released(fds[0], first, "the barrier it completed");
	ix = arrive(x, 999, 2, 1);
	th_expect("the room it left taken, one more",
	       arrive_status(x, 998, 2, 1), -EAGAIN);
	for (unsigned k = 0; k < NS; k++)
		hangup(fds[k]);
	wait_settled();
	iy = arrive(x, 998, 2, 1);
	expect_quiet(x, "room again once the sessions ended");
	/* X completes both itself, as two threads do */
	iz = arrive(x, 999, 2, 2);
	expect_released(x, ix, "X's first arrival at one");
	expect_released(x, iz, "and its second, which released it");
	iz = arrive(x, 998, 2, 2);
	expect_released(x, iy, "X's first arrival at the other");
	expect_released(x, iz, "and its second");
	hangup(x);
}

static int raw_call(int fd, uint8_t type, const void *body, uint32_t len)
{
	return th_call(fd, type, next_id++, body, len, NULL, 0, NULL);
}

/* BARRIER bodies that do not decode, arrivals and withdraws alike: a
 * count out of range, a flag we do not know, token 0.  The largest count
 * is taken (and waits, until the connection goes). */
static void bad_barriers(int fd)
{
	struct dsm_barrier_req m = { .count = 2, .token = 1 }, bad;
	uint8_t body[DSM_BARRIER_REQ_SIZE + 1] = { 0 };

	barrier_key(m.key, 7777);
	dsm_barrier_req_encode(&m, body);
	th_expect("BARRIER cut short", raw_call(fd, DSM_MSG_BARRIER, body,
					     DSM_BARRIER_REQ_SIZE - 1), -EINVAL);
	th_expect("BARRIER too long", raw_call(fd, DSM_MSG_BARRIER, body,
					    DSM_BARRIER_REQ_SIZE + 1), -EINVAL);
	for (int i = 0; i < 12; i++) {
		bad = m;
		bad.flags = i % 2 ? DSM_BARRIER_WITHDRAW : 0;
		switch (i / 2) {
		case 0: bad.count = 0; break;
		case 1: bad.count = DSM_BARRIER_MAX_COUNT + 1; break;
		case 2: bad.token = 0; break;
		case 3: bad.flags |= 1u << 1; break;
		case 4: bad.flags |= 1u << 31; break;
		case 5: bad.flags = ~0u; break;
		}
		dsm_barrier_req_encode(&bad, body);
		th_expect("a bad BARRIER", raw_call(fd, DSM_MSG_BARRIER, body,
						 DSM_BARRIER_REQ_SIZE),
		       -EINVAL);
	}
	arrive(fd, 7777, DSM_BARRIER_MAX_COUNT, 1);
	expect_quiet(fd, "the largest count, waiting");
}

/*
 * Bodies that do not decode, words outside the region, regions not held
 * (a private one, another's shared one): each refused, the connection
 * kept.  Defeats: any of the body's checks.
 */
static void test_malformed(void)
{
	int a = conn(), b = conn();
	struct share s = create(a, 8), t = create(b, 9);
	struct dsm_lock_req m = { .region_id = s.id, .offset = 8, .token = 1 };
	struct dsm_alloc_req al = { .size = REGION_SIZE };
	uint8_t body[64] = { 0 }, reply[DSM_ALLOC_REPLY_SIZE];
	struct dsm_alloc_reply pr;
	uint32_t rlen;

	dsm_alloc_req_encode(&al, body);
	th_expect("ALLOC", th_call(a, DSM_MSG_ALLOC, next_id++, body,
				DSM_ALLOC_REQ_SIZE, reply, sizeof(reply),
				&rlen), 0);
	TH_CHECK(dsm_alloc_reply_decode(reply, rlen, &pr) == 0);
	for (uint8_t type = DSM_MSG_LOCK; type <= DSM_MSG_UNLOCK; type++) {
		struct dsm_lock_req bad;

		dsm_lock_req_encode(&m, body);
		th_expect("cut short", raw_call(a, type, body,
					     DSM_LOCK_REQ_SIZE - 1), -EINVAL);
		th_expect("too long", raw_call(a, type, body,
					    DSM_LOCK_REQ_SIZE + 1), -EINVAL);
		for (int i = 0; i < 6; i++) {
			int want = i < 3 ? -EINVAL : -ENOENT;

			bad = m;
			if (i == 0) bad.offset = 4;
			if (i == 1) bad.offset = REGION_SIZE;
			if (i == 2) bad.token = 0;
			if (i == 3) bad.region_id = pr.region_id;
			if (i == 4) bad.region_id = t.id;
			if (i == 5) bad.region_id = 0;
			dsm_lock_req_encode(&bad, body);
			th_expect("a bad LOCK or UNLOCK",
			       raw_call(a, type, body, DSM_LOCK_REQ_SIZE),
			       want);
		}
	}
	bad_barriers(a);
	th_expect("PING after all that", raw_call(a, DSM_MSG_PING, NULL, 0), 0);
	take(a, s.id, REGION_SIZE - 8, 1, 0, "the region's last word");
	th_expect("unlocked", unlock(a, s.id, REGION_SIZE - 8, 1), 0);
	hangup(a);
	hangup(b);
}

int main(void)
{
	TH_CHECK(th_server_start(&srv, "64M") == 0);
	test_fifo();
	test_tokens();
	test_cancel();
	test_owner_died_close();
	test_owner_died_detach();
	test_waiter_gone();
	test_lock_bounds();
	test_barrier();
	test_barrier_tokens();
	test_barrier_withdraw();
	test_barrier_bounds();
	test_malformed();
	wait_settled();
	th_server_stop(&srv);
	printf("locks: ok\n");
	return 0;
}
