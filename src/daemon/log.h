/*
 * log.h - the daemon's own lines on stderr, which never block supervision:
 * they pass through a bounded queue (outq.h) flushed from the loop.
 */
#ifndef AGENTSUP_LOG_H
#define AGENTSUP_LOG_H

#include <stddef.h>

struct ev_loop;

/* Log to stderr as "agentsupd: ..."; the _warn forms append strerror(errno).
 * The message is escaped for a terminal (text_term_escape): worker text in
 * it cannot forge lines or send escape codes. */
void log_warn(const char *, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *, ...) __attribute__((format(printf, 1, 2)));
/* An invariant of our own broke: log and exit 70 (EX_SOFTWARE). */
_Noreturn void fatal(const char *, ...) __attribute__((format(printf, 1, 2)));
_Noreturn void fatalx(const char *, ...) __attribute__((format(printf, 1, 2)));
/* A whole line, already escaped, newline included (events' human lines). */
void log_line(const char *, size_t);
/* Flush what stderr could not take from this loop once it is writable. */
void log_attach(struct ev_loop *);
/* Before the loop goes: stop watching, one last try, free the queue. */
void log_detach(void);

/* At most this much waits for stderr; a longer log line is cut, marked. */
#define LOG_QUEUE_MAX 65536
#define LOG_LINE_MAX  16384

#endif
