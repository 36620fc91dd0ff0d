/* util.h - allocation that cannot fail quietly, and small pure helpers. */
#ifndef AGENTSUP_UTIL_H
#define AGENTSUP_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Out of memory is an invariant we cannot keep: these exit 70 with a message.
 */
void *xmalloc(size_t);
void *xcalloc(size_t, size_t);
void *xrealloc(void *, size_t);
void *xreallocarray(void *, size_t, size_t);
char *xstrdup(const char *);
char *xasprintf(const char *, ...) __attribute__((format(printf, 1, 2)));

/* "500ms", "5s", "1.5s", "2m", "1h". */
/* Memory apart from the heap, for what lives only while a config is parsed
 * (src/config/yamldoc.c): NULL when refused; grown in place or moved. */
void *util_pages(size_t size);
void *util_pages_grow(void *, size_t old, size_t size);
void util_pages_free(void *, size_t size);

void util_format_duration(uint64_t ms, char *, size_t);
/* Whether s is a numeric user or group id: 1 with *id, one a process can
 * have (below (uid_t)-1); 0 when it is a name (not all digits); -1 for
 * digits out of that range, which a cast would wrap (4294967296 was uid 0,
 * root). */
#define UTIL_ID_NONE 4294967295ul /* (uid_t)-1: no id */
int util_parse_id(const char *s, unsigned long *id);
/* "HOST:PORT" with a numeric host ("127.0.0.1:9464", "[::1]:9464"; an empty
 * host or "*" is every IPv4 address) into a socket address of at most
 * sizeof(struct sockaddr_in6); -1 when malformed. */
int util_parse_hostport(const char *addr, void *sockaddr_storage,
                        unsigned *len);

/* FNV-1a: n bytes at p hashed on from h (UTIL_FNV_BASIS to begin), and a
 * string's bytes (not its NUL): the tables' and the sums' hash. */
#define UTIL_FNV_BASIS 14695981039346656037ull /* FNV-1a's 64-bit basis */
uint64_t util_fnv(uint64_t h, const void *p, size_t n);
uint64_t util_fnv_str(uint64_t h, const char *s);
/* Two NULL-ended string arrays (either may be NULL) equal, string by
 * string. */
bool util_strv_equal(char *const *a, char *const *b);

#endif
