/*
 * engine.h - the client's one engine, internal to libdsm (room: fault
 * engine).  Its parts have headers of their own: region.h (regions and
 * their pages), placement.h, evict.h, outbox.h, fault.h (the engine
 * thread and prefetch streams), shared.h (coherence of shared regions),
 * migrate.h, stats.h, uffd.h, and shim.h
 * (what the preload shim may call).
 *
 * Who owns what:
 *   - `dsm_eng` (dsm.c) is the one engine of the process.  Everything in
 *     it below `lock` is guarded by that mutex: the region table, every
 *     page's state, the eviction queues, the send queue and the counters.
 *     The lock is held across the userfaultfd ioctls that change a page,
 *     so a page's state and its mapping never disagree (all ioctls are
 *     local and take microseconds; no network I/O happens under it).
 *   - the engine thread (fault.c) is the only thread that reads the
 *     userfaultfd or touches a transport: it reads faults, sends the send
 *     queue, and runs completions as replies arrive;
 *   - application threads enter through dsm.c (alloc, free, sync),
 *     shared.c (shared regions) and
 *     stats.c (dsm_stats), the preload shim through shim.h, and hand
 *     requests to the engine thread through the send queue.
 */
#ifndef DSM_ENGINE_H
#define DSM_ENGINE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "capture.h"
#include "evict.h"
#include "fault.h"
#include "outbox.h"
#include "stage.h"
#include "stats.h"
#include "transport.h"
#include "uffd.h"

/* One memory server this process is connected to. */
struct dsm_acq;

struct dsm_server {
	char addr[128];
	const struct dsm_transport_ops *ops;
	struct dsm_transport *t;
	uint32_t id;    /* the server's id (HELLO), as the registry knows it */
	uint64_t capacity, free;
	int lost;       /* 0, or the error that ended the connection */
	bool draining;  /* being drained: place nothing here, move off it */
	/* ownership requests to it (coherence.c), under dsm_eng.lock: in
	 * flight, and waiting for one of DSM_COH_MAX_INFLIGHT, oldest
	 * first */
	uint32_t acq_inflight;
	struct dsm_acq *acq_head, *acq_tail;
	/* LOCKs and barrier arrivals waiting at it, under locks.c's gate */
	uint32_t lock_waits;
};

struct dsm_engine {
	pthread_mutex_t lock;

	/* set at init, read-only afterwards */
	struct dsm_uffd uffd;
	uint64_t budget;        /* pages */
	uint32_t prefetch_max;  /* pages */
	enum dsm_evict_policy policy; /* DSM_EVICT (evict.h) */
	bool evict_window;      /* DSM_EVICT_WINDOW: take a victim's cold
	                         * neighbours with it (evict.c) */
	uint64_t poll_ns;       /* busy-poll this long after an event */
	uint64_t reply_ns;      /* how long a thread waits for servers'
	                         * answers (DSM_REPLY_TIMEOUT_MS, outbox.h) */
	uint64_t lock_ns;       /* ... for a lock or a barrier
	                         * (DSM_LOCK_TIMEOUT_MS, shared.h) */
	uint32_t replicas;      /* copies of each stripe (DSM_REPLICAS,
	                         * placement.h) */
	struct dsm_server *servers;
	uint32_t nservers;
	pthread_t fault_thread;
	int wake_fd;            /* eventfd: wakes the engine thread */
	uint8_t *zero_page;     /* dsm_zero_pages() pages of zeros */
	int mem_fd;             /* /proc/self/mem, or -1: where dirty pages
	                         * are read from when the program may drop
	                         * them unseen (dsm_expect_unseen_drops) */

	/* guarded by lock */
	struct dsm_region **regions; /* sorted by base */
	uint32_t nregions, cap_regions;
	struct dsm_queue probation, protected;
	uint64_t probation_share;      /* pages PROBATION may hold before
	                                * PROTECTED gives victims (evict.c) */
	uint64_t resident, inflight;   /* pages installed / being fetched */
	uint32_t evict_clock;
	uint32_t probation_seq;        /* pages that joined PROBATION */
	struct dsm_outbox sendq;       /* for the engine thread to send */
	struct dsm_stage stage;        /* pages staged for the servers */
	struct dsm_capture capture;    /* takes dirty victims' data as they
	                                * are dropped (capture.h); rd -1:
	                                * write-protected one by one */
	bool quit;                     /* engine thread: stop */
	struct dsm_stream streams[DSM_STREAMS];
	uint64_t stream_clock;
	struct dsm_around around;      /* sizes fetch-around (fault.c) */
	struct dsm_wpredict wpredict;  /* install fetched pages writable? */
	struct dsm_counters c;
};

extern struct dsm_engine dsm_eng;

#endif /* DSM_ENGINE_H */
