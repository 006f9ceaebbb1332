/*
 * shim.h - what the engine offers the preload shim, and all the shim may
 * use of it (room: preload shim).  The calls live in
 * discard.c and protect.c, which are linked into libdsm-preload.so only.
 *
 * Every call takes a page-aligned range inside one region, takes the
 * engine lock itself, and must not run on the engine thread.
 */
#ifndef DSM_SHIM_H
#define DSM_SHIM_H

#include <stdint.h>

/* Forget [addr, addr+len): its pages are dropped locally and read as
 * zeros at their next touch; the servers' copies are never fetched or
 * written again (for calloc, mmap, MADV_DONTNEED).  0, or -EINVAL if the
 * range is not inside one region. */
int dsm_discard(uint64_t addr, uint64_t len);
/* The program freed [addr, addr+len) and may soon reuse it: the servers'
 * copies are discarded, resident pages stay mapped, flagged FREED, first
 * for eviction, which drops them without a write-back.  Their contents
 * are garbage until dsm_reuse.  Same errors. */
int dsm_release(uint64_t addr, uint64_t len);
/* [addr, addr+len) is handed out again: its FREED pages are live memory
 * from now on (written back when dirty).  Never for a range that has to
 * read as zeros: dsm_discard that.  0 or -EINVAL. */
int dsm_reuse(uint64_t addr, uint64_t len);

/* The caller has just made [addr, addr+len) read-only, and is about to
 * make it unreadable: write its dirty pages back, wait until the servers
 * have them, and mark the pages so that none becomes dirty again while
 * the mark stays.  0; -EINVAL (not inside one region); -ENOMEM or the
 * transport's error, with the range left unmarked. */
int dsm_mark_unreadable(uint64_t addr, uint64_t len);
/* The range is readable again: drop the mark.  0 or -EINVAL. */
int dsm_mark_readable(uint64_t addr, uint64_t len);
/* dsm_alloc at addr (page-aligned), over a PROT_NONE reservation of the
 * program's that covers [addr, addr+size): a commit becoming far memory.
 * On failure (NULL, errno) the range is a PROT_NONE reservation still.
 * Lives in dsm.c. */
void *dsm_alloc_at(void *addr, size_t size);

/* The transport to each server, "KEY=NAME,KEY=NAME..." into buf (KEY
 * the server's address, or with ids its registry id; NAME "tcp" or
 * "rdma", "+lost" after it once the connection is gone).  Lives in
 * stats.c: dsm_stats_print and the client's registry record use it too.
 * Returns buf. */
const char *dsm_transports_describe(char *buf, size_t len, int ids);

/* The program drops far pages with a system call the shim never sees (a
 * raw madvise(MADV_DONTNEED): Go's runtime gives freed heap back so).
 * Called before dsm_init, which then has the engine read dirty pages for
 * write-back where a dropped page cannot make it wait for itself
 * (evict.c, copy_out).  A dropped page reads as zeros at its next touch
 * (fault.c, fault_resident).  Lives in dsm.c. */
void dsm_expect_unseen_drops(void);

/* Read the DSM_* environment as dsm_init(NULL) would, and say what is
 * wrong with it (logged at error level), without connecting anywhere:
 * 0, -EINVAL or -ENOMEM.  The shim runs it before dsm_init, whose
 * messages it silences, so that a bad setting is named, not mistaken for
 * an unreachable server.  Lives in dsm.c. */
int dsm_check_config(void);

/* At exit: leave the cluster registry now (the client's record and its
 * regions'), rather than when the lease runs out, while the memory stays
 * usable until the process is gone.  No-op without a registry.  Lives in
 * cluster.c. */
void dsm_cluster_exit(void);

/* Nonzero on libdsm's own threads (engine, lease, mover) and while a
 * thread is inside libdsm on behalf of the shim: the shim then hands
 * every allocation to the C library, so libdsm never allocates far
 * memory for itself (the engine thread faulting on it would wait for
 * itself).  Each thread's own; defined in dsm.c. */
extern __thread unsigned dsm_tl_internal
	__attribute__((tls_model("initial-exec")));

#endif /* DSM_SHIM_H */
