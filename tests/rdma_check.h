/*
 * rdma_check.h - what rdma_check's files share (room: tests): one
 * connection made as libdsm makes it, and the verdict.
 */
#ifndef DSM_TESTS_RDMA_CHECK_H
#define DSM_TESTS_RDMA_CHECK_H

#include <stdbool.h>

#include "rdma.h"

extern const struct dsm_transport_ops *rc_ops;

/* Connect to addr and do HELLO and AUTH, with events ev (NULL: none);
 * exits 2 if it cannot. */
struct dsm_transport *rc_open(const char *addr,
			      const struct dsm_transport_events *ev);
/* Print "ok: what" or "FAIL: what"; a failure sets the exit status. */
void rc_check(bool ok, const char *what);
int rc_failed(void);

/* rdma_check_shared.c: rdma_check inval-flow HOST:PORT */
int rc_inval_flow(const char *addr);

#endif /* DSM_TESTS_RDMA_CHECK_H */
