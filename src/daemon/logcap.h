/*
 * logcap.h - workers' captured output: each stream a pipe read without
 * blocking, every line prefixed on agentsupd's stderr, kept in a per-worker
 * ring for "agentsupctl logs" and failure events, and appended to
 * log_dir/NAME.log, rotated by size.
 */
#ifndef AGENTSUP_LOGCAP_H
#define AGENTSUP_LOGCAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <ev.h>

#define LOGCAP_LINE_MAX   4096    /* a longer line is split */
#define LOGCAP_READ_MAX   1048576 /* read per stream per loop wake-up */
#define LOGCAP_PIPE_BIG   1048576 /* a flooding worker's pipe grows to this */
#define LOGCAP_OUT_MAX    65536   /* prefixed lines waiting for stderr */
#define LOGCAP_DRAIN_MAX  1048576 /* read at an exit before giving up */
#define LOGCAP_TAIL_LINES 20      /* lines of output on a failure event */

struct logcap_limits {
	const char *dir; /* log_dir: NAME.log files; NULL = none */
	uint64_t max;    /* rotate NAME.log before it grows beyond this */
	unsigned keep;   /* rotated files kept: NAME.log.1 ... .keep */
	size_t tail;     /* bytes of output kept in memory per worker */
	bool time;       /* NAME.log lines begin with when they were read */
	bool quiet;      /* no line on agentsupd's stderr (log_stderr: false) */
};

enum logcap_stream { LOGCAP_STDOUT, LOGCAP_STDERR };

/* Every line, for followers ("agentsupctl logs -f"); line is escaped. */
typedef void (*logcap_line_fn)(void *arg, const char *name, enum logcap_stream,
                               const char *line, size_t len);
/* Whether anyone follows NAME: only then are its lines made for the sink. */
typedef bool (*logcap_follow_fn)(void *arg, const char *name);

struct logcap_set; /* every worker's capture, by name */
struct logcap;     /* one worker node's, across its restarts */

/* Lines for stderr go to err_fd (agentsupd's 2), never blocking on it. */
struct logcap_set *logcap_set_new(struct ev_loop *, int err_fd,
                                  const struct logcap_limits *);
void logcap_set_free(struct logcap_set *);
/* New limits (a reload): files are reopened in the new directory. */
void logcap_set_limits(struct logcap_set *, const struct logcap_limits *);
void logcap_set_sink(struct logcap_set *, logcap_line_fn, void *arg);
/* Asked once per read, with the sink's arg; without it, every line of
 * every worker goes to the sink. */
void logcap_set_follow(struct logcap_set *, logcap_follow_fn);
/* SIGHUP: reopen every NAME.log (after logrotate moved it away). */
void logcap_reopen(struct logcap_set *);
/* Lines that could not be written to stderr (it was full), ever. */
unsigned long logcap_dropped(const struct logcap_set *);

/* A worker's own log_max and log_keep (0 and -1: the set's), for what its
 * file gets from now on. */
void logcap_file_limits(struct logcap *, uint64_t max, int keep);
/* The worker's capture, made on first use. */
struct logcap *logcap_get(struct logcap_set *, const char *name);
struct logcap *logcap_find(const struct logcap_set *, const char *name);
/* Forget a worker (removed by a reload); its files stay. */
void logcap_remove(struct logcap_set *, const char *name);

/* Before a spawn: a pipe per captured stream; child_fd[i] is the end the
 * child dups to fd 1 (i = LOGCAP_STDOUT) or 2, -1 when not captured, the
 * caller's until logcap_spawned. -1 with errno if a pipe cannot be made
 * (nothing is left open). */
int logcap_pipes(struct logcap *, bool out, bool err, int child_fd[2]);
/* After the spawn: close the child's ends (child_fd, set to -1); started:
 * a new process, whose output replaces the last one's in the ring, is
 * read from now on. */
void logcap_spawned(struct logcap *, bool started, int child_fd[2]);
/* The process was reaped: read what it left in its pipes (bounded), end
 * its last partial lines, and close them. */
void logcap_exited(struct logcap *);
/* Feed bytes as if read from a stream (the pipes use it; so do tests). */
void logcap_feed(struct logcap *, enum logcap_stream, const char *, size_t);
/* End a stream's partial line, as at EOF. */
void logcap_flush(struct logcap *, enum logcap_stream);

/* The last nlines lines of the ring (all if 0) into buf, NUL-terminated,
 * each ending in '\n', the lines a running worker has begun and not ended
 * last (a prompt it waits on); its length. Whole lines where they fit: if
 * buf is too small, the oldest are left out. */
size_t logcap_tail(const struct logcap *, unsigned nlines, char *buf,
                   size_t len);

#endif
