/*
 * logcap_feed.c - a worker's output, split into lines (a line longer than
 * LOGCAP_LINE_MAX is cut), each sent where it is wanted: agentsupd's stderr
 * as "NAME | line", the followers' sink, the worker's ring, log_dir/NAME.log.
 *
 * What costs is kept per read, not per line: the lines of one read that lie
 * in it as they are go to the file as one span (one write); and a line is
 * escaped and formatted only when someone sees it. With stderr on /dev/null
 * and nobody following, only the lines that end up in the ring are, so a
 * flood costs a memrchr per 4 KiB, a copy in and a copy out.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "logcap_impl.h"
#include "util.h"

/* The text of a worker that prints, made at its first byte. */
static struct logcap_text *
feed_text(struct logcap *lc)
{
	if (lc->txt == NULL) {
		lc->txt = xcalloc(1, sizeof *lc->txt);
		lc->txt->file = (struct logcap_file)LOGCAP_FILE_INIT;
		lc->txt->keep = -1;
	}
	return lc->txt;
}

void
logcap_feed_free(struct logcap *lc)
{
	struct logcap_set *set = lc->set;
	struct logcap_text *t = lc->txt;

	if (t == NULL)
		return;
	if (set->span_owner == lc)
		logcap_feed_done(set);
	logcap_file_close(&t->file);
	logcap_ring_free(&t->ring);
	free(t->part[0]);
	free(t->part[1]);
	free(t);
	lc->txt = NULL;
}

/* --- log_dir/NAME.log ---------------------------------------------------- */

static void
file_put(struct logcap *lc, const char *p, size_t n)
{
	const struct logcap_set *set = lc->set;
	const struct logcap_text *t = lc->txt;
	struct logcap_file_spec spec = {
	        set->dir, lc->name, t->max ? t->max : set->lim.max,
	        t->keep >= 0 ? (unsigned)t->keep : set->lim.keep, set->reap};

	logcap_file_put(&lc->txt->file, &spec, p, n);
}

void
logcap_file_limits(struct logcap *lc, uint64_t max, int keep)
{
	if (lc->txt == NULL && max == 0 && keep < 0)
		return; /* the set's: its text stays unmade until it prints */
	feed_text(lc)->max = max;
	lc->txt->keep = keep;
}

/* log_time: the lines of p (each ending in '\n') after the time they were
 * read, gathered for lc's file: one write a read, as a span is. */
static void
file_timed(struct logcap *lc, const char *p, size_t n)
{
	struct logcap_set *set = lc->set;
	uint64_t ms = clock_wall_ms();
	const char *nl;
	struct tm tm;
	time_t sec;
	size_t k;

	if (set->span_owner != lc || set->timed.len > LOGCAP_TIMED_MAX)
		logcap_feed_done(set);
	set->span_owner = lc;
	if (ms != set->ts_ms) {
		sec = (time_t)(ms / 1000);
		gmtime_r(&sec, &tm);
		k = strftime(set->ts, sizeof set->ts, "%Y-%m-%dT%H:%M:%S", &tm);
		snprintf(set->ts + k, sizeof set->ts - k, ".%03uZ ",
		         (unsigned)(ms % 1000));
		set->ts_ms = ms;
	}
	for (; n > 0; n -= k, p += k) {
		nl = memchr(p, '\n', n);
		k = nl != NULL ? (size_t)(nl - p) + 1 : n;
		text_buf_append(&set->timed, set->ts, strlen(set->ts));
		text_buf_append(&set->timed, p, k);
	}
	set->spanlen = set->timed.len;
}

/* Lines that lie in the input as they are (the common case) are not
 * copied: they are gathered as one span of the read buffer, written when
 * the read is done or a line from elsewhere comes in between. */
static void
file_span(struct logcap *lc, const char *p, size_t n)
{
	struct logcap_set *set = lc->set;

	if (set->dir == NULL)
		return;
	if (set->lim.time) {
		file_timed(lc, p, n);
		return;
	}
	if (set->span_owner == lc && set->span + set->spanlen == p) {
		set->spanlen += n;
		return;
	}
	logcap_feed_done(set);
	set->span_owner = lc;
	set->span = p;
	set->spanlen = n;
}

void
logcap_feed_done(struct logcap_set *set)
{
	if (set->span_owner != NULL && set->timed.len > 0)
		file_put(set->span_owner, set->timed.data, set->timed.len);
	else if (set->span_owner != NULL && set->spanlen > 0)
		file_put(set->span_owner, set->span, set->spanlen);
	text_buf_reset(&set->timed);
	set->span_owner = NULL;
	set->spanlen = 0;
}

/* A line that is not in the input as it is: cut, or from a partial. */
static void
file_line(struct logcap *lc, const char *line, size_t len)
{
	char buf[LOGCAP_LINE_MAX + 1];

	if (lc->set->dir == NULL)
		return;
	memcpy(buf, line, len);
	buf[len] = '\n';
	if (lc->set->lim.time) {
		file_timed(lc, buf, len + 1);
		return;
	}
	logcap_feed_done(lc->set);
	file_put(lc, buf, len + 1);
}

/* --- lines -----------------------------------------------------------------
 */

/* Whether a line needs text_term_escape: a byte below 0x20, DEL, '\\' or
 * any non-ASCII one (UTF-8 is checked there, bidirectional overrides made
 * visible). Eight bytes at a time: the common line is plain ASCII. */
static bool
needs_escape(const char *p, size_t n)
{
	const uint64_t ones = 0x0101010101010101u, high = 0x8080808080808080u;
	size_t i = 0;
	uint64_t x, del, bs;

	for (; i + 8 <= n; i += 8) {
		memcpy(&x, p + i, 8);
		del = x ^ (0x7f * ones);
		bs = x ^ ((uint64_t)'\\' * ones);
		if ((x | ((x - 0x20 * ones) & ~x) | ((del - ones) & ~del) |
		     ((bs - ones) & ~bs)) &
		    high)
			return true;
	}
	for (; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c < 0x20 || c == 0x7f || c == '\\' || c >= 0x80)
			return true;
	}
	return false;
}

/* Who sees this read's lines one by one (FEED_* bits): stderr, unless it
 * is /dev/null or log_stderr is false, and the sink, if someone follows
 * the worker. */
#define FEED_ERR  1u
#define FEED_SINK 2u

static unsigned
feed_each(const struct logcap *lc)
{
	const struct logcap_set *set = lc->set;
	unsigned each = set->out.on && !set->lim.quiet ? FEED_ERR : 0;

	if (set->sink != NULL &&
	    (set->follow == NULL || set->follow(set->sink_arg, lc->name)))
		each |= FEED_SINK;
	return each;
}

/* One line (without its newline) to those in each, and to the ring (if
 * ring); the file is the caller's (file_span or file_line). */
static void
line_emit(struct logcap *lc, enum logcap_stream kind, const char *line,
          size_t len, unsigned each, bool ring)
{
	struct logcap_set *set = lc->set;

	if (len > 0 && line[len - 1] == '\r')
		len--;
	if (needs_escape(line, len)) { /* a worker's bytes must not steer
		                          the operator's terminal */
		text_buf_reset(&set->esc);
		text_term_escape_cut(&set->esc, line, len, LOGCAP_ESC_MAX);
		line = set->esc.data != NULL ? set->esc.data : "";
		len = set->esc.len;
	}
	if (each & FEED_ERR)
		logcap_out_line(&set->out, lc->name, strlen(lc->name),
		                set->width, kind == LOGCAP_STDERR ? '!' : '|',
		                line, len);
	if (each & FEED_SINK)
		set->sink(set->sink_arg, lc->name, kind, line, len);
	if (ring) {
		logcap_ring_put(&lc->txt->ring, set->lim.tail, line, len);
		logcap_ring_put(&lc->txt->ring, set->lim.tail, "\n", 1);
	}
}

/* A partial line's buffer; one spare is kept, so that a flood whose reads
 * end now inside a line, now at its end, does not allocate each time. */
static char *
part_get(struct logcap_set *set)
{
	char *p = set->spare;

	set->spare = NULL;
	return p != NULL ? p : xmalloc(LOGCAP_LINE_MAX);
}

static void
part_put(struct logcap *lc, enum logcap_stream kind)
{
	struct logcap_set *set = lc->set;
	struct logcap_text *t = lc->txt;

	if (set->spare == NULL)
		set->spare = t->part[kind];
	else
		free(t->part[kind]);
	t->part[kind] = NULL;
}

/* Where the lines the ring will keep begin in p: walking back from the
 * last newline, line by line, until they fill `tail` bytes of ring (a
 * lower bound: escaping only lengthens a line, a \r before its newline is
 * dropped). p itself when the read's lines would not fill it. */
static const char *
feed_window(const char *p, size_t n, size_t tail)
{
	const char *q = memrchr(p, '\n', n), *prev;
	size_t got = 0, len;

	if (q == NULL)
		return p;
	while (got < tail) {
		prev = q > p ? memrchr(p, '\n', (size_t)(q - p)) : NULL;
		len = (size_t)(q - (prev ? prev + 1 : p));
		if (len > 0 && q[-1] == '\r')
			len--;
		got += len + 1;
		if (prev == NULL)
			return p;
		q = prev;
	}
	return q + 1;
}

/* Whole lines nobody sees one by one and the ring will not keep (those
 * before win): found a memrchr per LOGCAP_LINE_MAX bytes (a line that long
 * would be cut, so it is left to the caller), sent to the file as they
 * are. The bytes used. */
static size_t
feed_skip(struct logcap *lc, const char *p, size_t n, const char *win)
{
	size_t done = 0;

	while (p + done < win) {
		size_t look = n - done < LOGCAP_LINE_MAX + 1
		                      ? n - done
		                      : LOGCAP_LINE_MAX + 1;
		const char *nl = memrchr(p + done, '\n', look);
		size_t k;

		if (nl == NULL)
			break;
		if (nl >= win) /* its last lines go to the ring */
			nl = memrchr(p + done, '\n',
			             (size_t)(win - (p + done)));
		if (nl == NULL)
			break;
		k = (size_t)(nl - (p + done)) + 1;
		file_span(lc, p + done, k);
		done += k;
	}
	if (done > 0) /* what follows in this read fills the ring */
		logcap_ring_clear(&lc->txt->ring);
	return done;
}

/* Where to cut a line longer than max bytes: before a UTF-8 character
 * that straddles max (next: the byte after buf's max), so that each piece
 * stays valid UTF-8 in NAME.log and is not shown as escapes; at max when
 * the bytes are not UTF-8. */
static size_t
feed_cut(const char *buf, size_t max, char next)
{
	unsigned char b = (unsigned char)next;
	size_t k = max;

	while ((b & 0xc0) == 0x80 && k > max - 3)
		b = (unsigned char)buf[--k];
	return (b & 0xc0) == 0x80 ? max : k;
}

/* The partial line: completed by this read's first bytes, or cut. The bytes
 * used. */
static size_t
feed_part(struct logcap *lc, enum logcap_stream kind, const char *p, size_t n,
          unsigned each)
{
	struct logcap_text *t = lc->txt;
	const char *nl = memchr(p, '\n', n);
	size_t seg = nl ? (size_t)(nl - p) : n;
	size_t take = LOGCAP_LINE_MAX - t->partlen[kind];

	if (take == 0 && seg > 0) { /* a full one is cut here */
		size_t cut = feed_cut(t->part[kind], LOGCAP_LINE_MAX, p[0]);
		line_emit(lc, kind, t->part[kind], cut, each, true);
		file_line(lc, t->part[kind], cut);
		t->partlen[kind] = LOGCAP_LINE_MAX - cut;
		memmove(t->part[kind], t->part[kind] + cut, t->partlen[kind]);
		take = cut;
	}
	take = seg < take ? seg : take;
	if (t->part[kind] == NULL)
		t->part[kind] = part_get(lc->set);
	memcpy(t->part[kind] + t->partlen[kind], p, take);
	t->partlen[kind] += take;
	if (nl == NULL || take < seg)
		return take;
	line_emit(lc, kind, t->part[kind], t->partlen[kind], each, true);
	file_line(lc, t->part[kind], t->partlen[kind]);
	t->partlen[kind] = 0;
	return take + 1;
}

void
logcap_feed_bytes(struct logcap *lc, enum logcap_stream kind, const char *p,
                  size_t n)
{
	struct logcap_text *t = feed_text(lc);
	unsigned each = feed_each(lc);
	const char *win = feed_window(p, n, lc->set->lim.tail);
	size_t k;

	while (n > 0) {
		if (t->partlen[kind] > 0) {
			k = feed_part(lc, kind, p, n, each);
		} else if (!each && (k = feed_skip(lc, p, n, win)) > 0) {
			;
		} else {
			size_t look = n < LOGCAP_LINE_MAX + 1
			                      ? n
			                      : LOGCAP_LINE_MAX + 1;
			const char *nl = memchr(p, '\n', look);
			size_t seg = nl ? (size_t)(nl - p) : n;

			if (nl == NULL && n <= LOGCAP_LINE_MAX) {
				k = feed_part(lc, kind, p, n, each);
			} else if (nl == NULL) { /* cut, as it is */
				k = feed_cut(p, LOGCAP_LINE_MAX,
				             p[LOGCAP_LINE_MAX]);
				line_emit(lc, kind, p, k, each, true);
				file_line(lc, p, k);
			} else { /* the common case: no copy */
				bool ring = p >= win;

				if (each || ring)
					line_emit(lc, kind, p, seg, each, ring);
				if (!ring) /* the rest of this read fills it */
					logcap_ring_clear(&t->ring);
				file_span(lc, p, seg + 1);
				k = seg + 1;
			}
		}
		p += k;
		n -= k;
	}
	logcap_feed_done(lc->set); /* the span points into p */
	if (t->partlen[kind] == 0 && t->part[kind] != NULL)
		part_put(lc, kind); /* an idle worker holds no line buffer */
}

void
logcap_feed_end(struct logcap *lc, enum logcap_stream kind)
{
	struct logcap_text *t = lc->txt;

	if (t == NULL)
		return;
	if (t->partlen[kind] > 0) {
		line_emit(lc, kind, t->part[kind], t->partlen[kind],
		          feed_each(lc), true);
		file_line(lc, t->part[kind], t->partlen[kind]);
	}
	t->partlen[kind] = 0;
	if (t->part[kind] != NULL)
		part_put(lc, kind);
	logcap_feed_done(lc->set);
}
