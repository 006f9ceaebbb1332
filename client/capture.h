/*
 * capture.h - taking the data of dirty victims as they leave the mapping,
 * with no write protection (room: eviction).
 *
 * A dirty victim's data must reach its server as it was when the page left
 * the program's mapping: a store an instant before the drop must not be
 * lost.  Write-protecting each victim before copying it guarantees that,
 * at the price of one ioctl and one TLB flush per victim, which on this
 * project's VMs is most of what a dirty victim costs.  A pipe gives the
 * same guarantee for a whole batch at once: vmsplice() takes a reference
 * to each victim's page (no copy), the batch's drop unmaps them, and only
 * then is the pipe read into the staged pages.  Whatever the program
 * stored before the drop is in the page the pipe holds; a store after it
 * faults and waits for the engine.  docs/design.md, "Eviction", has the
 * figures.
 *
 * Only where every victim is surely mapped: vmsplice() faults in a page
 * that is not, and a fault in a region waits for the engine thread, which
 * is the caller.  So not for a program that drops pages unseen (the
 * preload shim: dsm_expect_unseen_drops), whose victims are read through
 * /proc/self/mem instead.
 */
#ifndef DSM_CAPTURE_H
#define DSM_CAPTURE_H

#include <stdint.h>
#include <sys/uio.h>

struct dsm_capture {
	int rd, wr;       /* the pipe, or -1: capture unused */
	uint32_t pages;   /* what it holds at once */
	uint32_t partial; /* bytes of a page taken only in part (to drop) */
};

#define DSM_CAPTURE_NONE ((struct dsm_capture){ .rd = -1, .wr = -1 })

/* A pipe that holds up to `pages` pages, or as many as the kernel allows.
 * 0 or -errno (and c stays unused). */
int dsm_capture_open(struct dsm_capture *c, uint32_t pages);
void dsm_capture_close(struct dsm_capture *c);

/* Take references to the pages of iov (one page each), in order: how many
 * were taken, from the front (fewer when the pipe is full or a page
 * cannot be taken: those are the caller's to protect and copy). */
uint32_t dsm_capture_take(struct dsm_capture *c, const struct iovec *iov,
			  uint32_t n);

/* The n pages taken, into the n page-sized buffers of dst (which this
 * consumes), in the order taken; the pipe is empty again.  Call after the
 * drop, after every dsm_capture_take (n may be 0).  0, or -errno if the
 * pipe did not give them (never expected: it holds them). */
int dsm_capture_read(struct dsm_capture *c, struct iovec *dst, uint32_t n);

#endif
