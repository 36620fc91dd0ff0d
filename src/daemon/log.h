/* log.h - the daemon's own log lines on stderr. */
#ifndef AGENTSUP_LOG_H
#define AGENTSUP_LOG_H

/* Log to stderr as "agentsupd: ..."; the _warn forms append strerror(errno). */
void log_warn(const char *, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *, ...) __attribute__((format(printf, 1, 2)));
/* An invariant of our own broke: log and exit 70 (EX_SOFTWARE). */
_Noreturn void fatal(const char *, ...) __attribute__((format(printf, 1, 2)));
_Noreturn void fatalx(const char *, ...) __attribute__((format(printf, 1, 2)));
void log_set_name(const char *);

#endif
