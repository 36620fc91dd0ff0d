/* logcap_file.h - a worker's log file: appended, rotated by size. */
#ifndef AGENTSUP_LOGCAP_FILE_H
#define AGENTSUP_LOGCAP_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct logcap_reap;

/* Where the file is and how it rotates: dir/name.log, name.log.1 ... */
struct logcap_file_spec {
	const char *dir;
	const char *name;
	uint64_t max;  /* rotate before it would grow beyond this; 0: never */
	unsigned keep; /* rotated files kept */
	struct logcap_reap *reap; /* closes the oldest's last descriptor */
};

/* After a failed write (a full disk), the next try is this much later. */
#define LOGCAP_FILE_RETRY_MS 5000
/* A rotation renames each kept file: renames a second on the loop, and at
 * once, a file's rotations may spend (beyond, it grows past max until
 * there is budget again: a flood under a tiny max and a large keep froze
 * the loop for seconds, a million renames in one turn). */
#define LOGCAP_RENAME_RATE  10000
#define LOGCAP_RENAME_BURST 10000
/* Files beyond keep a sweep removes: at most this many past keep (log_keep's
 * own bound), this many a rotation (the reaper's queue is LOGCAP_REAP_MAX). */
#define LOGCAP_SWEEP_MAX  1000
#define LOGCAP_SWEEP_STEP 4

struct logcap_file {
	int fd;         /* -1 until the first write, or after a close */
	unsigned swept; /* keep + 1 of the sweep beyond keep begun (0: none) */
	uint64_t size;  /* as far as we know */
	uint64_t retry_ms;   /* monotonic */
	uint64_t lost;       /* bytes not written since the error */
	uint64_t renames;    /* the rename budget left (LOGCAP_RENAME_*) ... */
	uint64_t renames_ms; /* ... as of then (0: full) */
	unsigned sweep_at;   /* the next file of it to remove (0: done) */
	bool error;    /* logged once; no writes until retry_ms or a close */
	bool outpaced; /* said that rotations are put off */
};

#define LOGCAP_FILE_INIT                                                       \
	{                                                                      \
		-1, 0, 0, 0, 0, 0, 0, 0, false, false                          \
	}

/* Whole lines (the bytes end in '\n'), rotated only between lines. */
void logcap_file_put(struct logcap_file *, const struct logcap_file_spec *,
                     const char *, size_t);
/* Close it; the next put opens it again (SIGHUP, a new log_dir). */
void logcap_file_close(struct logcap_file *);

#endif
