/* util.c - allocation that cannot fail quietly and small pure helpers,
 * shared by the engine, the config loader and the shell. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "util.h"

/* Out of memory is an invariant we cannot keep: say so and stop (70). */
static _Noreturn void
oom(const char *what, size_t n, size_t size)
{
	fprintf(stderr, "agentsup: out of memory (%s: %zu x %zu bytes)\n", what,
	        n, size);
	exit(70);
}

void *
xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (p == NULL)
		oom("malloc", n, 1);
	return p;
}

void *
xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);

	if (p == NULL)
		oom("calloc", n, size);
	return p;
}

void *
xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);

	if (q == NULL)
		oom("malloc", n, 1);
	return q;
}

void *
xreallocarray(void *p, size_t n, size_t size)
{
	if (size != 0 && n > SIZE_MAX / size)
		oom("overflow", n, size);
	return xrealloc(p, n * size);
}

char *
xstrdup(const char *s)
{
	char *p = strdup(s);

	if (p == NULL)
		oom("string", 0, 0);
	return p;
}

char *
xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *s;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		oom("string", 0, 0);
	return s;
}

void
util_format_duration(uint64_t ms, char *buf, size_t len)
{
	if (ms % 3600000 == 0 && ms != 0)
		snprintf(buf, len, "%lluh", (unsigned long long)(ms / 3600000));
	else if (ms % 60000 == 0 && ms != 0)
		snprintf(buf, len, "%llum", (unsigned long long)(ms / 60000));
	else if (ms % 1000 == 0)
		snprintf(buf, len, "%llus", (unsigned long long)(ms / 1000));
	else if (ms > 1000) { /* "1.5s", "1234.567s": exact, never 1.23e+03s */
		int n = snprintf(buf, len, "%llu.%03llu",
		                 (unsigned long long)(ms / 1000),
		                 (unsigned long long)(ms % 1000));
		while (n > 0 && (size_t)n < len && buf[n - 1] == '0')
			buf[--n] = '\0';
		if (n > 0 && (size_t)n + 1 < len) {
			buf[n] = 's';
			buf[n + 1] = '\0';
		}
	} else
		snprintf(buf, len, "%llums", (unsigned long long)ms);
}

void *
util_pages(size_t size)
{
	void *m = mmap(NULL, size, PROT_READ | PROT_WRITE,
	               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return m == MAP_FAILED ? NULL : m;
}

void *
util_pages_grow(void *p, size_t old, size_t size)
{
	void *m = mremap(p, old, size, MREMAP_MAYMOVE);

	return m == MAP_FAILED ? NULL : m;
}

void
util_pages_free(void *p, size_t size)
{
	(void)munmap(p, size); /* fails only for a range never mapped */
}

uint64_t
util_fnv(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 1099511628211ull;
	return h;
}

uint64_t
util_fnv_str(uint64_t h, const char *s)
{
	while (*s)
		h = (h ^ (unsigned char)*s++) * 1099511628211ull;
	return h;
}

int
util_parse_hostport(const char *addr, void *ss, unsigned *len)
{
	struct sockaddr_in *v4 = ss;
	struct sockaddr_in6 *v6 = ss;
	const char *colon = strrchr(addr, ':');
	char host[64], *end;
	size_t hlen;
	unsigned long port;
	bool bracketed;

	if (colon == NULL || colon[1] == '\0')
		return -1;
	errno = 0;
	port = strtoul(colon + 1, &end, 10);
	if (*end != '\0' || errno != 0 || port == 0 || port > 65535 ||
	    colon[1] < '0' || colon[1] > '9')
		return -1;
	hlen = (size_t)(colon - addr);
	bracketed = hlen >= 2 && addr[0] == '[' && addr[hlen - 1] == ']';
	if (bracketed) {
		addr++;
		hlen -= 2; /* "[::1]:9464" */
	} else if (memchr(addr, ':', hlen) != NULL) {
		return -1; /* a bare IPv6 address needs its brackets */
	}
	if (hlen >= sizeof host)
		return -1;
	memcpy(host, addr, hlen);
	host[hlen] = '\0';
	memset(ss, 0, sizeof(struct sockaddr_in6));
	if (hlen == 0 || strcmp(host, "*") == 0)
		strcpy(host, "0.0.0.0");
	if (!bracketed && inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
		v4->sin_family = AF_INET;
		v4->sin_port = htons((uint16_t)port);
		*len = sizeof *v4;
		return 0;
	}
	if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
		v6->sin6_family = AF_INET6;
		v6->sin6_port = htons((uint16_t)port);
		*len = sizeof *v6;
		return 0;
	}
	return -1;
}

int
util_parse_id(const char *s, unsigned long *id)
{
	char *end;

	if (*s < '0' || *s > '9')
		return 0;
	errno = 0;
	*id = strtoul(s, &end, 10);
	if (*end != '\0')
		return 0;
	return errno == 0 && *id < UTIL_ID_NONE ? 1 : -1;
}

bool
util_strv_equal(char *const *a, char *const *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	for (; *a != NULL && *b != NULL; a++, b++)
		if (strcmp(*a, *b) != 0)
			return false;
	return *a == NULL && *b == NULL;
}
