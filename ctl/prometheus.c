/*
 * prometheus.c - `dsmctl stats --prometheus`: the clients' counters, as
 * the registry holds them, in the Prometheus text format (room: CLI).
 *
 * Clients publish their counters to the registry with every lease
 * renewal (registry/record.h), so one dsmctl run written to a file for
 * node_exporter's textfile collector exports the whole cluster's clients
 * and no client process has to listen on a port.  Servers serve their
 * own (dsm-server --metrics).  Each sample is labelled with the cluster,
 * the client's id, host and pid; its counters are cumulative since the
 * client started, so a restarted client is a new series.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "page.h"
#include "prom.h"

/* The labels of one client: its cluster (64 bytes), id, pid, and a host
 * of 63 bytes, each byte at most 12 once made printable and escaped. */
#define LABELS_MAX 2048

/* A counter of a client's record as one family: its value is the
 * record's times mul, over 10^decimals. */
static const struct family {
	const char *name, *type, *help;
	enum dsm_reg_client_counter counter;
	uint64_t mul;
	unsigned decimals;
} families[] = {
	{ "dsm_client_missing_faults_total", "counter",
	  "Faults on far pages not resident", DSM_RC_MISSING_FAULTS, 1, 0 },
	{ "dsm_client_wp_faults_total", "counter",
	  "Write faults on write-protected resident pages", DSM_RC_WP_FAULTS,
	  1, 0 },
	{ "dsm_client_pages_fetched_total", "counter",
	  "Pages read from servers, prefetched ones included",
	  DSM_RC_PAGES_FETCHED, 1, 0 },
	{ "dsm_client_pages_evicted_total", "counter",
	  "Pages dropped from local memory to stay within the budget",
	  DSM_RC_PAGES_EVICTED, 1, 0 },
	{ "dsm_client_pages_written_back_total", "counter",
	  "Dirty pages sent to servers", DSM_RC_PAGES_WRITTEN_BACK, 1, 0 },
	{ "dsm_client_received_bytes_total", "counter",
	  "Payload bytes received from servers", DSM_RC_BYTES_IN, 1, 0 },
	{ "dsm_client_sent_bytes_total", "counter",
	  "Payload bytes sent to servers", DSM_RC_BYTES_OUT, 1, 0 },
	{ "dsm_client_resident_bytes", "gauge",
	  "Far memory resident in the client", DSM_RC_RESIDENT_PAGES,
	  DSM_PAGE_SIZE, 0 },
	{ "dsm_client_blocked_seconds_total", "counter",
	  "Time threads spent blocked in faults", DSM_RC_BLOCKTIME_NS, 1, 9 },
	{ "dsm_client_pages_moved_total", "counter",
	  "Pages copied off servers being drained", DSM_RC_PAGES_MOVED, 1, 0 },
	/* gauges of their own, not a "quantile" label: that label belongs
	 * to summaries, which these are not (no _sum, no _count) */
	{ "dsm_client_fault_latency_p50_seconds", "gauge",
	  "Median fault service latency over the client's recent faults",
	  DSM_RC_FAULT_P50_NS, 1, 9 },
	{ "dsm_client_fault_latency_p99_seconds", "gauge",
	  "99th percentile of fault service latency over the client's "
	  "recent faults", DSM_RC_FAULT_P99_NS, 1, 9 },
};

/* cluster, client, host, pid into out; the host as text.c shows it
 * (control characters escaped, what is not UTF-8 as '?').  0, or -1
 * without memory or room. */
static int client_labels(const char *cluster, const struct dsm_reg_client *v,
			 char *out, size_t len)
{
	char id[24], pid[16], *host = printable_dup(v->host);
	int err;

	if (!host)
		return -1;
	snprintf(id, sizeof(id), "%llu", (unsigned long long)v->id);
	snprintf(pid, sizeof(pid), "%u", v->pid);
	out[0] = 0;
	err = prom_label(out, len, "cluster", cluster);
	if (!err)
		err = prom_label(out, len, "client", id);
	if (!err)
		err = prom_label(out, len, "host", host);
	if (!err)
		err = prom_label(out, len, "pid", pid);
	free(host);
	return err ? -1 : 0;
}

static void family(struct prom_buf *b, const struct family *f,
		   const struct snapshot *s, char (*labels)[LABELS_MAX])
{
	prom_family(b, f->name, f->type, f->help);
	for (size_t i = 0; i < s->ncli; i++)
		prom_fixed(b, f->name, labels[i],
			   s->cli[i].counters[f->counter] * f->mul,
			   f->decimals);
}

static void render(struct prom_buf *b, const char *cluster,
		   const struct snapshot *s, char (*labels)[LABELS_MAX])
{
	char l[LABELS_MAX] = "";

	prom_label(l, sizeof(l), "cluster", cluster);
	prom_family(b, "dsm_clients", "gauge",
		    "Clients holding a lease in the cluster");
	prom_u64(b, "dsm_clients", l, s->ncli);
	for (size_t k = 0; k < sizeof(families) / sizeof(families[0]); k++)
		family(b, &families[k], s, labels);
	prom_family(b, "dsm_client_start_time_seconds", "gauge",
		    "When the client started, in seconds since the epoch");
	for (size_t i = 0; i < s->ncli; i++)
		prom_fixed(b, "dsm_client_start_time_seconds", labels[i],
			   s->cli[i].started_ms, 3);
}

int prometheus_stats(const struct ctl *c, const struct snapshot *s)
{
	char (*labels)[LABELS_MAX] = calloc(s->ncli ? s->ncli : 1,
					    sizeof(*labels));
	struct prom_buf b;
	int rc = EXIT_RUNTIME;

	prom_init(&b);
	if (!labels)
		goto out;
	for (size_t i = 0; i < s->ncli; i++)
		if (client_labels(c->cluster, &s->cli[i], labels[i],
				  sizeof(labels[i])))
			goto out;
	render(&b, c->cluster, s, labels);
	if (!b.failed) {
		fwrite(b.text, 1, b.len, stdout);
		rc = 0;
	}
out:
	if (rc)
		fprintf(stderr, "dsmctl: out of memory\n");
	prom_free(&b);
	free(labels);
	return rc;
}
