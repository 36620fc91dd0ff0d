/*
 * outq.h - a bounded queue of whole lines in front of a descriptor that must
 * never block the daemon: our stderr, which may be a pipe nobody reads.
 *
 * How it stays non-blocking without setting O_NONBLOCK on an open file
 * description that our workers and our parent share (that would make their
 * writes fail with EAGAIN):
 * - a pipe, FIFO or terminal is reopened through /proc/self/fd/N with
 *   O_NONBLOCK: a private description of the same object;
 * - a socket (journald's stream) gets send(2) with MSG_DONTWAIT;
 * - a regular file never blocks: plain write(2);
 * - if a reopening is refused (no /proc, permissions), poll(2) with a zero
 *   timeout before each write of at most PIPE_BUF bytes; a writer sharing
 *   the pipe could still fill it between the two calls (documented race).
 * What cannot go out now waits in the queue (at most max bytes, flushed by
 * outq_flush when the descriptor is writable); a line that does not fit is
 * dropped whole and counted, and once the queue is empty again a line
 * "PREFIX: N log lines dropped (stderr not writable)" says how many.
 */
#ifndef AGENTSUP_OUTQ_H
#define AGENTSUP_OUTQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum outq_how { OUTQ_WRITE, OUTQ_SEND, OUTQ_POLL };

struct outq {
	int fd;   /* -1: nowhere (every line is dropped) */
	bool own; /* fd is our private reopening: close it */
	enum outq_how how;
	char *buf; /* queued bytes: buf[head .. head+len) */
	size_t head, len, cap, max;
	uint64_t dropped;
	const char *prefix; /* of the dropped-lines line: "agentsupd" */
};

/* Put a queue in front of fd (not taken over), at most max bytes queued. */
void outq_open(struct outq *, int fd, size_t max, const char *prefix);
void outq_close(struct outq *);
/* One whole line, newline included: out now, queued, or dropped whole. */
void outq_line(struct outq *, const char *, size_t);
/* Write what waits; true while something still does. */
bool outq_flush(struct outq *);

#endif
