/*
 * logcap_ring.h - a worker's last lines of output, for "agentsupctl logs"
 * and failure events: a ring of bytes that grows as it fills, up to its
 * limit (log_tail), so a worker that printed a few lines holds a few
 * hundred bytes, not the whole limit.
 */
#ifndef AGENTSUP_LOGCAP_RING_H
#define AGENTSUP_LOGCAP_RING_H

#include <stdbool.h>
#include <stddef.h>

#define LOGCAP_RING_MIN 512 /* the first allocation, unless max is less */

struct logcap_ring {
	char *buf; /* NULL until the first byte */
	size_t cap, head, len;
	bool cut; /* the oldest line kept lost its head */
};

/* Append n bytes, keeping at most max (0: nothing); a new max (a reload)
 * that is smaller than the ring starts it afresh. */
void logcap_ring_put(struct logcap_ring *, size_t max, const char *, size_t);
/* Empty it (a new process), keeping its memory. */
void logcap_ring_clear(struct logcap_ring *);
void logcap_ring_free(struct logcap_ring *);
/* The last nlines lines (all if 0) into buf, NUL-terminated: whole lines,
 * the oldest left out if buf is too small; a last line that lost its head
 * (longer than the ring or buf) as its end after "…". Its length. */
size_t logcap_ring_tail(const struct logcap_ring *, unsigned nlines, char *buf,
                        size_t len);

#endif
