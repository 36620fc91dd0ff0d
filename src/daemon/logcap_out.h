/* logcap_out.h - captured lines on agentsupd's stderr, never blocking. */
#ifndef AGENTSUP_LOGCAP_OUT_H
#define AGENTSUP_LOGCAP_OUT_H

#include <stdbool.h>
#include <stddef.h>
#include <ev.h>

struct logcap_out {
	struct ev_loop *loop;
	int fd;      /* ours, -1: nowhere (/dev/null, or no descriptor) */
	bool socket; /* sent to with MSG_DONTWAIT */
	ev_io w;     /* waits for it to drain */
	char *buf;   /* max bytes, lazily */
	size_t len, max;
	unsigned long dropped, unreported;
};

/* Our own descriptor for fd (agentsupd's 2); lines wait in max bytes. */
void logcap_out_open(struct logcap_out *, struct ev_loop *, int fd, size_t max);
void logcap_out_close(struct logcap_out *);
/* "NAME<pad> | line\n", the mark "|" or "!" given; dropped and counted
 * when the buffer is full. */
void logcap_out_line(struct logcap_out *, const char *name, size_t namelen,
                     size_t width, char mark, const char *line, size_t len);
/* Write what waits, as far as stderr takes it now. */
void logcap_out_flush(struct logcap_out *);

#endif
