/*
 * prom.c - see prom.h (room: metrics).
 */
#include "prom.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The first allocation: a server's page of metrics is some 20 KiB, so a
 * few doublings at most. */
#define PROM_BUF_MIN 4096

void prom_init(struct prom_buf *b)
{
	memset(b, 0, sizeof(*b));
}

void prom_free(struct prom_buf *b)
{
	free(b->text);
	prom_init(b);
}

/* Room for need more bytes and the NUL; false (and failed set) if
 * memory ran out. */
static bool reserve(struct prom_buf *b, size_t need)
{
	size_t cap = b->cap ? b->cap : PROM_BUF_MIN;
	char *t;

	if (b->failed)
		return false;
	if (b->len + need < b->cap)
		return true;
	while (cap <= b->len + need)
		cap *= 2;
	t = realloc(b->text, cap);
	if (!t) {
		b->failed = true;
		return false;
	}
	b->text = t;
	b->cap = cap;
	return true;
}

void prom_printf(struct prom_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->failed = true;
		return;
	}
	if (!reserve(b, n))
		return;
	va_start(ap, fmt);
	vsnprintf(b->text + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	b->len += n;
}

void prom_family(struct prom_buf *b, const char *name, const char *type,
		 const char *help)
{
	prom_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void prom_u64(struct prom_buf *b, const char *name, const char *labels,
	      uint64_t v)
{
	prom_printf(b, "%s%s %llu\n", name, labels, (unsigned long long)v);
}

void prom_fixed(struct prom_buf *b, const char *name, const char *labels,
		uint64_t v, unsigned decimals)
{
	uint64_t scale = 1;

	if (!decimals) {
		prom_u64(b, name, labels, v);
		return;
	}
	for (unsigned i = 0; i < decimals; i++)
		scale *= 10;
	prom_printf(b, "%s%s %llu.%0*llu\n", name, labels,
		    (unsigned long long)(v / scale), (int)decimals,
		    (unsigned long long)(v % scale));
}

/* value's length once escaped. */
static size_t escaped_len(const char *value)
{
	size_t n = 0;

	for (const char *p = value; *p; p++)
		n += *p == '\\' || *p == '"' || *p == '\n' ? 2 : 1;
	return n;
}

int prom_label(char *out, size_t len, const char *name, const char *value)
{
	size_t at = strlen(out);
	char *p;

	/* "{" or ",", name, '="', the value, '"}', the NUL */
	if (at + 1 + strlen(name) + 2 + escaped_len(value) + 2 + 1 > len)
		return -ENOSPC;
	if (at)
		out[at - 1] = ','; /* the set's closing brace */
	else
		out[at++] = '{';
	p = out + at;
	p += sprintf(p, "%s=\"", name);
	for (const char *v = value; *v; v++) {
		if (*v == '\\' || *v == '"' || *v == '\n')
			*p++ = '\\';
		*p++ = *v == '\n' ? 'n' : *v;
	}
	strcpy(p, "\"}");
	return 0;
}
