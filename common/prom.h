/*
 * prom.h - the Prometheus text exposition format, version 0.0.4, written
 * into a buffer that grows (room: metrics).
 *
 * dsm-server's /metrics (server/metrics.c) and `dsmctl stats
 * --prometheus` (ctl/prom.c) write it through these, so both speak the
 * same dialect: a family's HELP and TYPE lines come first, then its
 * samples, one per line, "name{label="value",...} value".  The writer
 * does not reorder: callers write each family's samples right after it.
 * No sample carries a timestamp (node_exporter's textfile collector
 * refuses them).
 */
#ifndef DSM_PROM_H
#define DSM_PROM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PROM_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

struct prom_buf {
	char *text;          /* NUL-terminated; malloc'd */
	size_t len, cap;
	bool failed;         /* memory ran out: text is incomplete, and
	                      * must not be shown as if it were whole */
};

/* Empty; nothing allocated until the first write. */
void prom_init(struct prom_buf *b);
void prom_free(struct prom_buf *b);

void prom_printf(struct prom_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* "# HELP name help" and "# TYPE name type" (counter, gauge,
 * histogram); help is a constant of ours, with no newline or backslash. */
void prom_family(struct prom_buf *b, const char *name, const char *type,
		 const char *help);

/* A sample: labels is "" or what prom_label wrote. */
void prom_u64(struct prom_buf *b, const char *name, const char *labels,
	      uint64_t v);
/* A sample whose value is v / 10^decimals, written exactly (ns as
 * seconds: decimals 9; ms as seconds: 3). */
void prom_fixed(struct prom_buf *b, const char *name, const char *labels,
		uint64_t v, unsigned decimals);

/*
 * Append name="value" to the label set in out[0..len) (a NUL-terminated
 * string, "" or "{...}"), escaping value as the format wants (backslash,
 * double quote, newline).  value must be UTF-8.  0, or -ENOSPC if it
 * does not fit (out is then left as it was).
 */
int prom_label(char *out, size_t len, const char *name, const char *value);

#endif /* DSM_PROM_H */
