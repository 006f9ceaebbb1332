/*
 * log.c - see log.h (room: common).
 *
 * The level and component name are written once at start-up, before any
 * thread that logs exists, and only read afterwards: no lock is needed.
 * Each line is formatted into one buffer and written with one write(2) so
 * lines from different threads do not interleave.
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static enum dsm_log_level log_level = DSM_LOG_WARN;
static const char *log_component = "dsm";

static const char *const level_names[] = { "error", "warn", "info", "debug" };

void dsm_log_init(const char *component)
{
	const char *env = getenv("DSM_LOG");

	if (component)
		log_component = component;
	if (!env)
		return;
	for (int i = 0; i <= DSM_LOG_DEBUG; i++)
		if (!strcmp(env, level_names[i]))
			log_level = i;
}

void dsm_log_set_level(enum dsm_log_level level)
{
	log_level = level;
}

int dsm_log_enabled(enum dsm_log_level level)
{
	return level <= log_level;
}

void dsm_log(enum dsm_log_level level, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	int n;

	if (level > log_level)
		return;
	n = snprintf(line, sizeof(line), "%s[%d]: %s: ", log_component,
		     (int)getpid(), level_names[level]);
	va_start(ap, fmt);
	n += vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	va_end(ap);
	if (n >= (int)sizeof(line) - 1)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	if (write(STDERR_FILENO, line, n) < 0) {
		/* nowhere left to report it */
	}
}
