/*
 * dsm.h - far memory for Linux processes (room: public API).
 *
 * Memory returned by dsm_alloc() lives on one or more memory servers
 * (dsm-server).  The process keeps at most a resident budget of it in
 * local RAM; touching a page that is not resident fetches it from its
 * server (userfaultfd), and pages over the budget are written back (only
 * if dirty) and dropped.  To the program it is ordinary memory: loads,
 * stores, atomics, and system calls like read(2)/write(2) all work.
 *
 * Typical use:
 *
 *     if (dsm_init(NULL) < 0)          // DSM_SERVERS, DSM_LOCAL_MEM
 *         ...
 *     uint64_t *v = dsm_alloc(8UL << 30);
 *     v[12345] = 42;                   // faults, fetches, marks dirty
 *     dsm_sync(v, 8UL << 30);          // optional: push dirty pages now
 *     dsm_free(v);
 *     dsm_shutdown();
 *
 * Thread safety: every function may be called from any thread once
 * dsm_init() has returned 0.  dsm_init() and dsm_shutdown() must not race
 * with each other or with the other calls.
 *
 * Errors: functions returning int return 0 on success or a negative errno
 * value (-ECONNREFUSED, -ENOMEM, ...); dsm_strerror() turns it into text.
 * dsm_alloc() returns NULL and sets errno.  Details go to the log (stderr,
 * level set by DSM_LOG=error|warn|info|debug).
 *
 * If a server becomes unreachable, pages that must be fetched from it can
 * no longer be provided: an access to such a page raises SIGBUS in the
 * accessing thread (never silently wrong data), and the log says which
 * server was lost.  See docs/design.md, "Failures".
 */
#ifndef DSM_H
#define DSM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DSM_VERSION_MAJOR 0
#define DSM_VERSION_MINOR 2

/* Options for dsm_init().  Zero-initialise, then set what you need; a
 * field left 0/NULL takes its environment variable, then its default. */
struct dsm_options {
	const char *servers;   /* "host:port[,host:port...]"; env DSM_SERVERS */
	size_t local_mem;      /* resident budget in bytes; env DSM_LOCAL_MEM
	                        * ("256M"; K/M/G suffixes); default 256 MiB */
	unsigned prefetch_max; /* max pages fetched ahead of a sequential run;
	                        * env DSM_PREFETCH; default 256; 1 disables */
	const char *evict_policy; /* "2q" (default), "2q-wp" or "fifo";
	                           * env DSM_EVICT */
};

/* Connect to the servers and start the fault engine.  NULL: use the
 * environment only.  Returns 0, or a negative errno:
 *   -EINVAL       malformed option or environment value (the log says which)
 *   -ENOSYS, -EPERM, -EOPNOTSUPP  userfaultfd unusable (the log says why
 *                 and what to change)
 *   -EPERM, -ENOENT, ...  DSM_SECRET_FILE unusable (others may read it,
 *                 it is missing or too short: the log says which)
 *   -EACCES       a server refused our secret, or asks for none while we
 *                 have one, or is not on this machine while we have none
 *                 (unless DSM_ALLOW_REMOTE_WITHOUT_SECRET=1)
 *   -EPROTO       a server from the registry answered with another id
 *                 than its record's
 *   -ECONNREFUSED, -EHOSTUNREACH, ...  a server could not be reached
 *   -EALREADY     already initialised */
int dsm_init(const struct dsm_options *opts);

/* Allocate size bytes of far memory, rounded up to whole pages and
 * page-aligned, reading as zeros.  NULL with errno set on failure: ENOMEM
 * when the live servers lack capacity, also when every server is lost
 * (the log gives the reason), EINVAL for size 0, ENOTCONN before
 * dsm_init() or after dsm_shutdown(), ETIMEDOUT when a server did not
 * answer within DSM_REPLY_TIMEOUT_MS (default 30 s). */
void *dsm_alloc(size_t size);

/* dsm_alloc() with flags, 0 or:
 *   DSM_ALLOC_HUGE  the region lives on 2 MiB pages, and moves 2 MiB at a
 *                   time: fetched, made dirty by a write, written back and
 *                   evicted whole.  For memory read or written densely
 *                   (a random 4 KiB access fetches 2 MiB).  Its size is
 *                   rounded up to 2 MiB.  It needs the kernel's reserved
 *                   huge pages (vm.nr_hugepages): as many free as the
 *                   region or the local budget holds, whichever is less.
 * errno as dsm_alloc(), and EINVAL for an unknown flag or a local budget
 * below 2 MiB, ENOMEM when too few huge pages are free, EOPNOTSUPP when
 * the kernel cannot write-protect them (Linux 5.19+); the log says which. */
#define DSM_ALLOC_HUGE 0x1
void *dsm_alloc_flags(size_t size, int flags);

/* Release memory from dsm_alloc().  NULL is a no-op; any other pointer
 * not returned by dsm_alloc() is logged and ignored. */
void dsm_free(void *p);

/* Write the dirty pages of [p, p+len) back to their servers and wait until
 * the servers have them.  Returns 0, -EINVAL if the range is not inside
 * one dsm_alloc() block, -ENOTCONN before dsm_init(), -ENOMEM, the
 * transport's error (-EPIPE, -ECONNRESET; -ETIMEDOUT when a server's
 * machine stopped acknowledging for DSM_TCP_TIMEOUT_MS), or -ETIMEDOUT
 * when the servers did not answer within DSM_REPLY_TIMEOUT_MS (default
 * 30 s; the write-backs stay in flight). */
int dsm_sync(void *p, size_t len);

/*
 * Shared memory: processes on any nodes of the cluster map one region by
 * name and see one memory.  Each 4 KiB page has one writer or many
 * readers at a time (its home server keeps the directory); a write to a
 * page others hold waits until their copies are gone.  Loads, stores and
 * atomics behave as they do between threads of one process on this CPU
 * (x86-64: TSO), across processes and nodes alike; docs/design.md,
 * "Shared regions", has the model and its costs.
 *
 * dsm_map_shared() maps the region called name (1 to 255 bytes), of size
 * bytes (rounded up to whole pages): the first caller anywhere creates
 * it, reading as zeros; later callers attach.  flags must be 0.  NULL
 * with errno: EINVAL (bad name, size or flags, or the region exists with
 * another size), ENOMEM, ENOTCONN before dsm_init(), EHOSTUNREACH when
 * the registry says the region lives on a server this process does not
 * reach, or the servers' error.  The region lives while anyone has it mapped: when the last
 * holder unmaps it or its process ends, its contents are gone.  A holder
 * killed with pages it wrote and had not written back loses those
 * writes; the others see what it wrote back last.
 *
 * dsm_unmap_shared() writes this process's dirty pages back, then
 * detaches.  0, -EINVAL for a pointer not from dsm_map_shared(), or the
 * write-back's error (the region is unmapped all the same).
 */
void *dsm_map_shared(const char *name, size_t size, int flags);
int dsm_unmap_shared(void *p);

/* Atomically add delta to the aligned 64-bit word at addr of a shared
 * region, across every process and node that maps it, and return the
 * value before.  An address that is not an aligned word of a shared
 * region: returns 0 and sets errno to EINVAL, adding nothing. */
uint64_t dsm_fetch_add(uint64_t *addr, uint64_t delta);

/*
 * A mutex named by an aligned 64-bit word of a shared region (the word
 * itself is not touched: any word names a lock), kept by the region's
 * home server: waiters are served first come, first served, across
 * processes and nodes, and a holder whose process dies lets go.  What a
 * holder wrote before dsm_unlock is seen by the next holder after its
 * dsm_lock (shared memory is coherent whatever the lock does).  Threads
 * of one process exclude each other too; a thread locking twice gets
 * -EDEADLK.
 *
 * dsm_lock: 0; -EOWNERDEAD when the lock was held by a process that died
 * (or unmapped the region) holding it, which the caller now holds, as a
 * robust mutex's EOWNERDEAD says: what it guards may be half updated;
 * -EINVAL for an address that is not an aligned word of a shared region;
 * -ETIMEDOUT when not granted within DSM_LOCK_TIMEOUT_MS (default 60 s;
 * the request is taken back); -ENOLCK past 256 locks held or awaited.
 * dsm_unlock: 0, -EPERM when this thread does not hold it, -EINVAL.
 */
int dsm_lock(void *addr);
int dsm_unlock(void *addr);

/* Wait until count threads, in any processes on any nodes, have called
 * dsm_barrier with this name (1 to 255 bytes) and count; then all
 * return 0 and the next round starts.  -EINVAL for a bad name or count
 * (1 to 65536) or a count other than the waiting ones', -ETIMEDOUT after
 * DSM_LOCK_TIMEOUT_MS (the arrival is taken back), -EDEADLK if this
 * thread already waits there. */
int dsm_barrier(const char *name, int count);

/* Counters since dsm_init().  Latencies are measured inside the fault
 * engine, from reading a fault to installing its page. */
struct dsm_stats {
	uint64_t missing_faults;    /* faults on non-resident pages */
	uint64_t wp_faults;         /* writes to write-protected resident
	                             * pages: first writes to clean ones, and
	                             * writes on a second chance (design.md) */
	uint64_t pages_fetched;     /* pages read from servers, prefetch incl. */
	uint64_t pages_zero_filled; /* never-written pages made locally */
	uint64_t pages_written_back;/* dirty pages sent to servers */
	uint64_t pages_evicted;     /* pages dropped to stay within budget */
	uint64_t pages_prefetched;  /* fetched ahead of any fault */
	uint64_t prefetch_used;     /* of those, later touched (see design.md) */
	uint64_t bytes_in;          /* payload bytes received from servers */
	uint64_t bytes_out;         /* payload bytes sent to servers */
	uint64_t resident_pages;    /* pages in local memory now */
	uint64_t budget_pages;      /* resident budget, in pages */
	uint64_t fault_p50_ns;      /* fault service latency, median */
	uint64_t fault_p99_ns;      /* ... and 99th percentile */
	uint64_t blocktime_ns;      /* total time threads spent blocked in faults */
	uint64_t pages_moved;       /* copied off servers being drained */
	uint64_t pages_replicated;  /* page copies written to replicas, besides
	                             * the first copy (DSM_REPLICAS) */
	uint64_t fetch_failovers;   /* READs sent again to another copy after
	                             * one's server was lost */
	uint64_t pages_rereplicated;/* pages copied from one copy to a new
	                             * home of another, lost with its server
	                             * or stale (DSM_REPLICAS) */
	uint64_t degraded_stripes;  /* stripes (1 MiB) now with fewer live,
	                             * fresh copies than DSM_REPLICAS; 0 once
	                             * re-replication has finished */
	uint64_t ownership_requests;/* shared regions: pages asked of their
	                             * home to read or write (ACQUIRE) */
	uint64_t copies_given_up;   /* shared regions: INVALIDATEs and
	                             * RECALLs answered */
};

/* Fill *st.  Returns 0, or -ENOTCONN before dsm_init(). */
int dsm_stats(struct dsm_stats *st);

/* Print the counters in one human-readable block to stderr-like stream f
 * (a FILE *; void * so this header needs no <stdio.h>). */
void dsm_stats_print(void *f);

/* Stop the fault engine and disconnect.  Regions still allocated are
 * released on their servers; touching them afterwards is undefined. */
void dsm_shutdown(void);

/* Text for a negative errno returned by this library (or a positive one). */
const char *dsm_strerror(int err);

#ifdef __cplusplus
}
#endif
#endif /* DSM_H */
