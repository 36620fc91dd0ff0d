/*
 * logcap_ring.c - a worker's last lines of output: a ring of escaped lines,
 * each ending in '\n', allocated at the first byte and doubled as it fills
 * until it holds max bytes; from then on the oldest bytes are overwritten,
 * and `cut` says whether the oldest line kept lost its head.
 */
#include <stdlib.h>
#include <string.h>

#include "logcap_ring.h"
#include "util.h"

static char
ring_at(const struct logcap_ring *r, size_t i) /* i-th oldest byte */
{
	size_t k = r->head + r->cap - r->len + i; /* < 2 * cap */

	return r->buf[k < r->cap ? k : k - r->cap];
}

/* A larger buffer for at least `need` bytes (at most max), the bytes kept
 * in order from its start. */
static void
ring_grow(struct logcap_ring *r, size_t need, size_t max)
{
	size_t cap = r->cap ? r->cap : LOGCAP_RING_MIN;
	char *buf;

	while (cap < need && cap < max)
		cap *= 2;
	cap = cap < max ? cap : max;
	buf = xmalloc(cap);
	for (size_t i = 0; i < r->len; i++)
		buf[i] = ring_at(r, i);
	free(r->buf);
	r->buf = buf;
	r->cap = cap;
	r->head = r->len == cap ? 0 : r->len;
}

void
logcap_ring_put(struct logcap_ring *r, size_t max, const char *p, size_t n)
{
	size_t cap, k, over;

	if (max == 0 || n == 0)
		return;
	if (r->cap > max) { /* a smaller limit: start afresh */
		logcap_ring_free(r);
	}
	if (r->len + n > r->cap && r->cap < max)
		ring_grow(r, r->len + n, max);
	cap = r->cap;
	/* whether the oldest byte kept still starts a line */
	if (n > cap) {
		r->cut = p[n - cap - 1] != '\n';
		p += n - cap;
		n = cap;
	} else if ((over = r->len + n > cap ? r->len + n - cap : 0) > 0)
		r->cut = ring_at(r, over - 1) != '\n';
	k = cap - r->head < n ? cap - r->head : n;
	memcpy(r->buf + r->head, p, k);
	memcpy(r->buf, p + k, n - k);
	r->head = r->head + n < cap ? r->head + n : r->head + n - cap;
	r->len = r->len + n > cap ? cap : r->len + n;
}

void
logcap_ring_clear(struct logcap_ring *r)
{
	r->head = r->len = 0;
	r->cut = false;
}

void
logcap_ring_free(struct logcap_ring *r)
{
	free(r->buf);
	*r = (struct logcap_ring){0};
}

#define RING_HEADLESS "\xe2\x80\xa6" /* "…": a line shown without its head */

/* Whether a line starts at the i-th oldest byte. */
static bool
ring_line_start(const struct logcap_ring *r, size_t i)
{
	return i == 0 ? !r->cut : ring_at(r, i - 1) == '\n';
}

/* Where line text may start at or after i: not inside a UTF-8 character
 * (the ring's text is valid UTF-8 from each line's start). */
static size_t
ring_char_start(const struct logcap_ring *r, size_t i)
{
	while (i < r->len && ((unsigned char)ring_at(r, i) & 0xc0) == 0x80)
		i++;
	return i;
}

/* The last nlines lines, whole where they fit. A line that lost its head
 * (longer than the ring, or than buf) is shown by its end after "…" when
 * nothing else would be: a worker's last words were dropped with it. */
size_t
logcap_ring_tail(const struct logcap_ring *r, unsigned nlines, char *buf,
                 size_t len)
{
	const size_t mark = sizeof RING_HEADLESS - 1;
	size_t start = 0, i, n = 0;
	unsigned seen = 0;
	bool headless = false;

	if (len == 0)
		return 0;
	buf[0] = '\0';
	if (r == NULL || r->len == 0 || len <= mark + 1)
		return 0;
	/* back from the end to the start of the nlines-th last line */
	for (i = r->len - 1; i > 0; i--)
		if (ring_at(r, i - 1) == '\n' && nlines && ++seen == nlines) {
			start = i;
			break;
		}
	if (i == 0 && r->cut) { /* the oldest line lost its head */
		size_t next = start;
		while (next < r->len && ring_at(r, next++) != '\n')
			;
		if (next < r->len)
			start = next; /* whole lines follow it */
		else
			headless = true; /* it is all there is */
	}
	if (r->len - start > len - 1 - (headless ? mark : 0)) {
		/* whole lines that fit (none when only the mark made it
		 * too long: ring and buffer of about one size) */
		size_t s = r->len > len - 1 ? r->len - (len - 1) : 0;
		while (s < r->len && !ring_line_start(r, s))
			s++;
		headless = s == r->len; /* none: the last one's end */
		start = headless ? r->len - (len - 1 - mark) : s;
	}
	if (headless) {
		start = ring_char_start(r, start);
		memcpy(buf, RING_HEADLESS, mark);
		n = mark;
	}
	for (; start < r->len; start++)
		buf[n++] = ring_at(r, start);
	buf[n] = '\0';
	return n;
}
