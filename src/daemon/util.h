/* util.h - allocation that cannot fail quietly, logging, small helpers. */
#ifndef AGENTSUP_UTIL_H
#define AGENTSUP_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Out of memory is an invariant we cannot keep: these abort with a message. */
void *xmalloc(size_t);
void *xcalloc(size_t, size_t);
void *xrealloc(void *, size_t);
void *xreallocarray(void *, size_t, size_t);
char *xstrdup(const char *);
char *xasprintf(const char *, ...) __attribute__((format(printf, 1, 2)));

/* Log to stderr as "agentsupd: ..."; the _warn forms append strerror(errno). */
void log_warn(const char *, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *, ...) __attribute__((format(printf, 1, 2)));
_Noreturn void fatal(const char *, ...) __attribute__((format(printf, 1, 2)));
_Noreturn void fatalx(const char *, ...) __attribute__((format(printf, 1, 2)));
void log_set_name(const char *);

/* "500ms", "5s", "1.5s", "2m", "1h". */
void util_format_duration(uint64_t ms, char *, size_t);

/* Milliseconds of CLOCK_MONOTONIC: intervals, deadlines, intensity windows. */
uint64_t util_now_ms(void);
uint64_t util_now_us(void);

#endif
