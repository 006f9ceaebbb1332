/*
 * stats_file.h - each process's far-memory figures for dsm-run
 * (room: preload shim).
 *
 * DSM_STATS_FILE names a file the run's processes share: each appends
 * one block of key=value lines at exit.  A process that ends without
 * running exit handlers (Go's runtime exits with a raw system call, and
 * so does anything killed) would leave nothing, so each also keeps a
 * snapshot of its block in DSM_STATS_FILE.dsm-snapshot.PID (a name no
 * other file beside it has by chance), rewritten every
 * STATS_SNAPSHOT_MS and removed once its block is appended.  dsm-run
 * takes the snapshots of processes that left no block.
 */
#ifndef DSM_PRELOAD_STATS_FILE_H
#define DSM_PRELOAD_STATS_FILE_H

#define STATS_SNAPSHOT_MS 250
#define STATS_SNAPSHOT_TAG ".dsm-snapshot." /* PATH TAG PID */

/* Far memory is on: start the snapshots if DSM_STATS_FILE is set. */
void stats_file_start(void);
/* At exit: stop the snapshots, append this process's block and remove
 * its snapshot.  Also prints the stats to stderr with DSM_STATS=1. */
void stats_file_final(void);

#endif
