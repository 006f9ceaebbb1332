/*
 * progress.c - the progress line of work an operator waits on, such as a
 * drain (room: CLI).
 *
 * On a terminal the line is redrawn in place: a carriage return, the
 * line, and an erase to the end of the line, so a shorter line leaves no
 * tail of the longer one before it.  When stderr is not a terminal (a
 * pipe, a log file, a test capturing it) nothing is drawn at all: a log
 * wants the outcome, not ten redraws a second, and the caller prints the
 * outcome either way.  The line goes to stderr, so `dsmctl drain ID |
 * tee log` still shows it while the log gets only what stdout says.
 */
#include <inttypes.h>
#include <stdio.h>
#include <unistd.h>

#include "ctl.h"
#include "util.h"

#define ERASE_TO_EOL "\033[K"

/* "45 s", "3m05s", "2h10m": an ETA needs no more precision than that. */
static void fmt_secs(uint64_t s, char *buf, size_t len)
{
	if (s < 60)
		snprintf(buf, len, "%" PRIu64 " s", s);
	else if (s < 3600)
		snprintf(buf, len, "%" PRIu64 "m%02" PRIu64 "s", s / 60, s % 60);
	else
		snprintf(buf, len, "%" PRIu64 "h%02" PRIu64 "m", s / 3600,
			 s / 60 % 60);
}

size_t progress_format(char *buf, size_t len, const char *verb, uint64_t done,
		       uint64_t total, uint64_t elapsed_ms)
{
	char d[32], t[32], rate[32], eta[32], el[32];
	uint64_t pct = total ? done * 100 / total : 100;
	double per_s = elapsed_ms ? done * 1000.0 / elapsed_ms : 0;
	int n;

	dsm_fmt_bytes(done, d, sizeof(d));
	dsm_fmt_bytes(total, t, sizeof(t));
	if (!done) {
		/* nothing yet to take a rate from: no ETA rather than a
		 * wild one */
		fmt_secs(elapsed_ms / 1000, el, sizeof(el));
		n = snprintf(buf, len, "%s %s of %s (0%%), %s elapsed", verb, d,
			     t, el);
	} else {
		dsm_fmt_bytes((uint64_t)per_s, rate, sizeof(rate));
		fmt_secs(done >= total ? 0 :
			 (uint64_t)((total - done) / per_s + 0.5),
			 eta, sizeof(eta));
		n = snprintf(buf, len, "%s %s of %s (%" PRIu64 "%%), %s/s, "
			     "ETA %s", verb, d, t, pct, rate, eta);
	}
	return n < 0 ? 0 : (size_t)n;
}

void progress_begin(struct progress *p, const char *verb, uint64_t total,
		    uint64_t now_ms)
{
	*p = (struct progress){
		.tty = isatty(STDERR_FILENO) ? stderr : NULL,
		.verb = verb, .total = total, .t0_ms = now_ms,
	};
}

void progress_update(struct progress *p, uint64_t done, uint64_t now_ms)
{
	char line[160];

	if (!p->tty)
		return;
	progress_format(line, sizeof(line), p->verb,
			done < p->total ? done : p->total, p->total,
			now_ms - p->t0_ms);
	fprintf(p->tty, "\r  %s" ERASE_TO_EOL, line);
	fflush(p->tty);
	p->drawn = true;
}

void progress_end(struct progress *p)
{
	if (p->tty && p->drawn) {
		fputs("\r" ERASE_TO_EOL, p->tty);
		fflush(p->tty);
	}
	p->drawn = false;
}
