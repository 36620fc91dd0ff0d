/* logcap_out.h - captured lines on agentsupd's stderr, never blocking. */
#ifndef AGENTSUP_LOGCAP_OUT_H
#define AGENTSUP_LOGCAP_OUT_H

#include <stdbool.h>
#include <stddef.h>
#include <ev.h>

#include "outq.h"

struct logcap_out {
	struct ev_loop *loop;
	bool on;       /* false for /dev/null: nothing is formatted */
	struct outq q; /* the non-blocking queue in front of stderr */
	ev_io w;       /* waits for stderr to drain */
	char *batch;   /* lines formatted since the last flush, lazily */
	size_t len, max;
	unsigned long dropped; /* ever (the queue's count restarts once said) */
};

/* Lines for fd (agentsupd's 2), batched by max bytes; the queue in front
 * of it holds 4 * max. */
void logcap_out_open(struct logcap_out *, struct ev_loop *, int fd, size_t max);
void logcap_out_close(struct logcap_out *);
/* "NAME<pad> | line\n", the mark "|" or "!" given. */
void logcap_out_line(struct logcap_out *, const char *name, size_t namelen,
                     size_t width, char mark, const char *line, size_t len);
/* Hand the batch to the queue and write as far as stderr takes it. */
void logcap_out_flush(struct logcap_out *);
/* Lines dropped because stderr could not take them, ever. */
unsigned long logcap_out_dropped(const struct logcap_out *);

#endif
