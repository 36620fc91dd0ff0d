/*
 * logcap_impl.h - what logcap.c (the set, the pipes) and logcap_feed.c (the
 * lines) share; nobody else includes it.
 */
#ifndef AGENTSUP_LOGCAP_IMPL_H
#define AGENTSUP_LOGCAP_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <ev.h>

#include "logcap.h"
#include "logcap_file.h"
#include "logcap_out.h"
#include "logcap_reap.h"
#include "logcap_ring.h"
#include "text.h"

#define LOGCAP_BUCKETS 256
#define LOGCAP_ESC_MAX (4 * LOGCAP_LINE_MAX) /* \\xNN for each byte */

/* One captured stream's pipe; io.data is its logcap. */
struct logcap_pipe {
	ev_io io; /* io.fd: our read end, -1 if none */
};

/* What a worker that printed holds; a silent one has none. */
struct logcap_text {
	char *part[2]; /* a partial line per stream (LOGCAP_LINE_MAX) */
	size_t partlen[2];
	struct logcap_ring ring; /* the last `tail` bytes of escaped lines */
	struct logcap_file file; /* log_dir/NAME.log */
	uint64_t max;            /* the worker's own log_max, 0: the set's */
	int keep;                /* its own log_keep, -1: the set's */
};

struct logcap {
	struct logcap_set *set;
	struct logcap *next;     /* in its hash bucket */
	struct logcap_text *txt; /* at its first byte of output */
	struct logcap_pipe s[2];
	bool big[2]; /* a stream's pipe was made larger: it floods */
	/* NUL-terminated, right after big (allocated by offsetof): with a
	 * name of up to 13 bytes a capture is a 144-byte chunk, not 160 */
	char name[];
};

#define LOGCAP_TIMED_MAX (256u << 10) /* timed lines gathered, then written */

struct logcap_set {
	struct ev_loop *loop;
	struct logcap_limits lim;
	char *dir;
	struct logcap_reap *reap; /* rotated-out files' last close */
	struct logcap *buckets[LOGCAP_BUCKETS];
	size_t width;          /* the widest name seen, for the prefix */
	struct logcap_out out; /* agentsupd's stderr */
	char *rbuf;          /* one read at a time (LOGCAP_READ_MAX), mmap'd */
	size_t rbuf_used;    /* bytes of it touched since it was trimmed */
	unsigned rbuf_small; /* reads under LOGCAP_READ_KEEP in a row */
	bool rbuf_failed;    /* it could not be mapped (said once) */
	struct text_buf esc; /* one escaped line */
	char *spare; /* a partial line's buffer, for the next that needs one */
	const char *span; /* whole lines for span_owner's file, unwritten */
	size_t spanlen;
	struct logcap *span_owner;
	/* log_time: span_owner's lines, each after its time, unwritten */
	struct text_buf timed;
	uint64_t ts_ms; /* the time ts says */
	char ts[32];    /* "2026-11-27T01:02:03.456Z " */
	logcap_line_fn sink;
	logcap_follow_fn follow; /* whether the sink wants a name's lines */
	void *sink_arg;
};

/* Bytes of stream `kind` of lc, as read: split into lines and sent on. */
void logcap_feed_bytes(struct logcap *, enum logcap_stream, const char *,
                       size_t);
/* End the stream's partial line, as at EOF. */
void logcap_feed_end(struct logcap *, enum logcap_stream);
/* Write the lines gathered for a log file (the end of a read). */
void logcap_feed_done(struct logcap_set *);
/* Drop lc's text (its file closed, its buffers freed). */
void logcap_feed_free(struct logcap *);

#endif
