/*
 * logcap.c - workers' captured output (DESIGN §13).
 *
 * Each captured stream of a worker is a pipe whose read end is ours,
 * non-blocking. One read of at most LOGCAP_READ_MAX per wake-up, so a flood
 * shares the loop with everything else; lines are split (a line longer than
 * LOGCAP_LINE_MAX is cut), and each goes to three places: agentsupd's stderr
 * as "NAME | line" (a bounded buffer; when stderr cannot take more, lines are
 * dropped and counted, never waited for), the worker's ring of its last
 * `tail` bytes (allocated on its first line), and log_dir/NAME.log (rotated
 * before it would pass `max`). Memory is fixed per worker whatever it prints.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "logcap.h"
#include "logcap_file.h"
#include "logcap_out.h"
#include "text.h"
#include "util.h"

#define LOGCAP_WIDTH_MAX 24 /* names are padded to the widest, to this */
#define LOGCAP_BUCKETS   256
#define LOGCAP_ESC_MAX   (4 * LOGCAP_LINE_MAX) /* \\xNN for each byte */

struct stream {
	struct logcap *lc;
	enum logcap_stream kind;
	ev_io io;
	int fd;       /* our read end, -1 if none */
	int child_fd; /* the child's end until the spawn is done */
	char *part;   /* a partial line (LOGCAP_LINE_MAX) while one waits */
	size_t partlen;
	bool big; /* its pipe was made larger: it floods */
};

struct logcap {
	struct logcap_set *set;
	struct logcap *next; /* in its hash bucket */
	char *name;
	size_t namelen;
	struct stream s[2];
	char *ring; /* the last `tail` bytes of escaped lines, lazily */
	size_t rcap, rhead, rlen;
	bool cut;                /* the oldest line in the ring lost its head */
	struct logcap_file file; /* log_dir/NAME.log */
};

struct logcap_set {
	struct ev_loop *loop;
	struct logcap_limits lim;
	char *dir;
	struct logcap *buckets[LOGCAP_BUCKETS];
	size_t width;          /* the widest name seen, for the prefix */
	struct logcap_out out; /* agentsupd's stderr */
	char *rbuf;            /* one read at a time: LOGCAP_READ_MAX */
	struct text_buf esc;   /* one escaped line */
	char *spare; /* a partial line's buffer, for the next that needs one */
	const char *span; /* whole lines for span_owner's file, unwritten */
	size_t spanlen;
	struct logcap *span_owner;
	logcap_line_fn sink;
	void *sink_arg;
};

static void file_flush(struct logcap_set *);

/* --- the ring ------------------------------------------------------------- */

static char
ring_at(const struct logcap *lc, size_t i) /* i-th oldest byte */
{
	size_t k = lc->rhead + lc->rcap - lc->rlen + i; /* < 2 * rcap */

	return lc->ring[k < lc->rcap ? k : k - lc->rcap];
}

static void
ring_put(struct logcap *lc, const char *p, size_t n)
{
	size_t cap = lc->set->lim.tail, k, over;

	if (cap == 0)
		return;
	if (lc->ring == NULL || lc->rcap != cap) {
		free(lc->ring);
		lc->ring = xmalloc(cap);
		lc->rcap = cap;
		lc->rhead = lc->rlen = 0;
		lc->cut = false;
	}
	/* whether the oldest byte kept still starts a line */
	if (n > cap) {
		lc->cut = p[n - cap - 1] != '\n';
		p += n - cap;
		n = cap;
	} else if ((over = lc->rlen + n > cap ? lc->rlen + n - cap : 0) > 0)
		lc->cut = ring_at(lc, over - 1) != '\n';
	k = cap - lc->rhead < n ? cap - lc->rhead : n;
	memcpy(lc->ring + lc->rhead, p, k);
	memcpy(lc->ring, p + k, n - k);
	lc->rhead = lc->rhead + n < cap ? lc->rhead + n : lc->rhead + n - cap;
	lc->rlen = lc->rlen + n > cap ? cap : lc->rlen + n;
}

size_t
logcap_tail(const struct logcap *lc, unsigned nlines, char *buf, size_t len)
{
	size_t start = 0, i, n;
	unsigned seen = 0;

	if (len == 0)
		return 0;
	buf[0] = '\0';
	if (lc == NULL || lc->rlen == 0)
		return 0;
	/* back from the end to the start of the nlines-th last line */
	for (i = lc->rlen - 1; i > 0; i--)
		if (ring_at(lc, i - 1) == '\n' && nlines && ++seen == nlines) {
			start = i;
			break;
		}
	if (i == 0 && lc->cut) /* the oldest line lost its head */
		while (start < lc->rlen && ring_at(lc, start++) != '\n')
			;
	if (lc->rlen - start > len - 1) { /* whole lines that fit */
		start = lc->rlen - (len - 1);
		while (start < lc->rlen && ring_at(lc, start - 1) != '\n')
			start++;
	}
	for (n = 0; start + n < lc->rlen; n++)
		buf[n] = ring_at(lc, start + n);
	buf[n] = '\0';
	return n;
}

/* --- log_dir/NAME.log ---------------------------------------------------- */

static void
file_put(struct logcap *lc, const char *p, size_t n)
{
	const struct logcap_set *set = lc->set;
	struct logcap_file_spec spec = {set->dir, lc->name, set->lim.max,
	                                set->lim.keep};

	logcap_file_put(&lc->file, &spec, p, n);
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
	if (set->span_owner == lc && set->span + set->spanlen == p) {
		set->spanlen += n;
		return;
	}
	file_flush(set);
	set->span_owner = lc;
	set->span = p;
	set->spanlen = n;
}

static void
file_flush(struct logcap_set *set)
{
	if (set->span_owner != NULL && set->spanlen > 0)
		file_put(set->span_owner, set->span, set->spanlen);
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
	file_flush(lc->set);
	memcpy(buf, line, len);
	buf[len] = '\n';
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

/* One line (without its newline) to stderr, the ring and followers; the
 * file is the caller's (file_span or file_line). */
static void
line_emit(struct stream *st, const char *line, size_t len, bool ring)
{
	struct logcap *lc = st->lc;
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
	logcap_out_line(&set->out, lc->name, lc->namelen, set->width,
	                st->kind == LOGCAP_STDERR ? '!' : '|', line, len);
	if (ring) {
		ring_put(lc, line, len);
		ring_put(lc, "\n", 1);
	} else { /* what follows in this read will fill the ring anyway */
		lc->rlen = 0;
		lc->cut = false;
	}
	if (set->sink != NULL)
		set->sink(set->sink_arg, lc->name, st->kind, line, len);
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
part_put(struct stream *st)
{
	struct logcap_set *set = st->lc->set;

	if (set->spare == NULL)
		set->spare = st->part;
	else
		free(st->part);
	st->part = NULL;
}

/* Split bytes into lines; what is left of a line waits in st->part. */
static void
stream_feed(struct stream *st, const char *p, size_t n)
{
	while (n > 0) {
		if (st->partlen == LOGCAP_LINE_MAX && *p != '\n') {
			line_emit(st, st->part, st->partlen,
			          true); /* cut here */
			file_line(st->lc, st->part, st->partlen);
			st->partlen = 0;
		}
		const char *nl = memchr(p, '\n', n);
		size_t seg = nl ? (size_t)(nl - p) : n, take;
		if (st->partlen == 0 && nl && seg <= LOGCAP_LINE_MAX) {
			/* the common case: no copy; and a line that the
			 * rest of this read will push out of the ring (even
			 * if half of it were \r, and its last line partial)
			 * need not go in */
			line_emit(st, p, seg,
			          n - seg - 1 < 2 * st->lc->set->lim.tail +
			                                LOGCAP_LINE_MAX);
			file_span(st->lc, p, seg + 1);
			p += seg + 1;
			n -= seg + 1;
			continue;
		}
		if (st->partlen == 0 && seg > LOGCAP_LINE_MAX) {
			line_emit(st, p, LOGCAP_LINE_MAX, true);
			file_line(st->lc, p, LOGCAP_LINE_MAX);
			p += LOGCAP_LINE_MAX;
			n -= LOGCAP_LINE_MAX;
			continue;
		}
		if (st->part == NULL)
			st->part = part_get(st->lc->set);
		take = LOGCAP_LINE_MAX - st->partlen;
		take = seg < take ? seg : take;
		memcpy(st->part + st->partlen, p, take);
		st->partlen += take;
		p += take;
		n -= take;
		if (nl && take == seg) {
			line_emit(st, st->part, st->partlen, true);
			file_line(st->lc, st->part, st->partlen);
			st->partlen = 0;
			p++;
			n--;
		}
	}
	file_flush(st->lc->set); /* the span points into p */
	if (st->partlen == 0)    /* an idle worker holds no line buffer */
		part_put(st);
}

void
logcap_feed(struct logcap *lc, enum logcap_stream kind, const char *p, size_t n)
{
	stream_feed(&lc->s[kind], p, n);
	file_flush(lc->set);
	logcap_out_flush(&lc->set->out);
}

void
logcap_flush(struct logcap *lc, enum logcap_stream kind)
{
	struct stream *st = &lc->s[kind];

	if (st->partlen > 0) {
		line_emit(st, st->part, st->partlen, true);
		file_line(lc, st->part, st->partlen);
	}
	st->partlen = 0;
	part_put(st);
	file_flush(lc->set);
	logcap_out_flush(&lc->set->out);
}

/* --- the pipes ------------------------------------------------------------ */

static void
stream_close(struct stream *st)
{
	if (st->fd >= 0) {
		ev_io_stop(st->lc->set->loop, &st->io);
		close(st->fd);
		st->fd = -1;
	}
	if (st->child_fd >= 0)
		close(st->child_fd);
	st->child_fd = -1;
}

/* One read: 0 done for now, 1 more may wait, -1 closed (EOF or error). */
static int
stream_read(struct stream *st)
{
	struct logcap_set *set = st->lc->set;
	ssize_t n;

	if (set->rbuf == NULL)
		set->rbuf = xmalloc(LOGCAP_READ_MAX);
	n = read(st->fd, set->rbuf, LOGCAP_READ_MAX);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n <= 0) {
		if (n < 0)
			log_warn("worker %s: reading its output", st->lc->name);
		logcap_flush(st->lc, st->kind);
		stream_close(st);
		return -1;
	}
	/* half a pipe at once: fewer, larger reads for a worker that floods
	 * (only then: pipe capacity counts against the user's limit) */
	if (!st->big && (size_t)n >= 32768) {
		st->big = true;
		(void)fcntl(st->fd, F_SETPIPE_SZ, LOGCAP_PIPE_BIG);
	}
	stream_feed(st, set->rbuf, (size_t)n);
	return 1;
}

static void
stream_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct stream *st = w->data;

	(void)loop;
	(void)revents;
	if (stream_read(st) > 0) {
		file_flush(st->lc->set);
		logcap_out_flush(&st->lc->set->out);
	}
}

int
logcap_pipes(struct logcap *lc, bool out, bool err, int child_fd[2])
{
	bool want[2] = {out, err};

	child_fd[0] = child_fd[1] = -1;
	for (int i = 0; i < 2; i++) {
		struct stream *st = &lc->s[i];
		int fds[2] = {-1, -1};

		stream_close(st); /* a last process's, if still open */
		if (!want[i])
			continue;
		if (pipe2(fds, O_CLOEXEC) < 0 ||
		    fcntl(fds[0], F_SETFL, O_NONBLOCK) < 0) {
			int e = errno;
			if (fds[0] >= 0) {
				close(fds[0]);
				close(fds[1]);
			}
			stream_close(&lc->s[0]);
			stream_close(&lc->s[1]);
			child_fd[0] = child_fd[1] = -1;
			errno = e;
			return -1;
		}
		st->fd = fds[0];
		st->big = false;
		st->child_fd = child_fd[i] = fds[1];
	}
	return 0;
}

void
logcap_spawned(struct logcap *lc, bool started)
{
	for (int i = 0; i < 2; i++) {
		struct stream *st = &lc->s[i];
		if (st->child_fd >= 0)
			close(st->child_fd);
		st->child_fd = -1;
		if (!started) {
			stream_close(st);
			continue;
		}
		if (st->fd < 0)
			continue;
		ev_io_init(&st->io, stream_cb, st->fd, EV_READ);
		st->io.data = st;
		ev_io_start(lc->set->loop, &st->io);
	}
	if (started) { /* the ring is this process's from now on */
		lc->rhead = lc->rlen = 0;
		lc->cut = false;
	}
}

void
logcap_exited(struct logcap *lc)
{
	for (int i = 0; i < 2; i++) {
		struct stream *st = &lc->s[i];
		size_t got = 0;

		while (st->fd >= 0 && got < LOGCAP_DRAIN_MAX &&
		       stream_read(st) > 0)
			got += LOGCAP_READ_MAX;
		if (st->fd >= 0)
			logcap_flush(lc, st->kind);
		stream_close(st);
	}
	file_flush(lc->set);
	logcap_out_flush(&lc->set->out);
}

/* --- the set ---------------------------------------------------------------
 */

static size_t
bucket_of(const char *name)
{
	uint32_t h = 2166136261u; /* FNV-1a */

	for (; *name != '\0'; name++)
		h = (h ^ (unsigned char)*name) * 16777619u;
	return h % LOGCAP_BUCKETS;
}

struct logcap *
logcap_find(const struct logcap_set *set, const char *name)
{
	struct logcap *lc = set->buckets[bucket_of(name)];

	while (lc != NULL && strcmp(lc->name, name) != 0)
		lc = lc->next;
	return lc;
}

struct logcap *
logcap_get(struct logcap_set *set, const char *name)
{
	struct logcap *lc = logcap_find(set, name);
	size_t b = bucket_of(name), nl = strlen(name);

	if (lc != NULL)
		return lc;
	lc = xcalloc(1, sizeof *lc);
	lc->set = set;
	lc->name = xstrdup(name);
	lc->namelen = nl;
	lc->file = (struct logcap_file)LOGCAP_FILE_INIT;
	for (int i = 0; i < 2; i++)
		lc->s[i] = (struct stream){
		        .lc = lc, .kind = i, .fd = -1, .child_fd = -1};
	lc->next = set->buckets[b];
	set->buckets[b] = lc;
	if (nl > set->width)
		set->width = nl > LOGCAP_WIDTH_MAX ? LOGCAP_WIDTH_MAX : nl;
	return lc;
}

static void
logcap_free(struct logcap *lc)
{
	logcap_exited(lc);
	logcap_file_close(&lc->file);
	free(lc->ring);
	free(lc->name);
	free(lc);
}

void
logcap_remove(struct logcap_set *set, const char *name)
{
	struct logcap **pp = &set->buckets[bucket_of(name)];

	for (; *pp != NULL; pp = &(*pp)->next)
		if (strcmp((*pp)->name, name) == 0) {
			struct logcap *lc = *pp;
			*pp = lc->next;
			logcap_free(lc);
			return;
		}
}

struct logcap_set *
logcap_set_new(struct ev_loop *loop, int err_fd,
               const struct logcap_limits *lim)
{
	struct logcap_set *set = xcalloc(1, sizeof *set);

	set->loop = loop;
	text_buf_init(&set->esc, LOGCAP_ESC_MAX);
	logcap_out_open(&set->out, loop, err_fd, LOGCAP_OUT_MAX);
	logcap_set_limits(set, lim);
	return set;
}

void
logcap_set_free(struct logcap_set *set)
{
	if (set == NULL)
		return;
	for (size_t b = 0; b < LOGCAP_BUCKETS; b++)
		while (set->buckets[b] != NULL) {
			struct logcap *lc = set->buckets[b];
			set->buckets[b] = lc->next;
			logcap_free(lc);
		}
	logcap_out_close(&set->out);
	free(set->dir);
	free(set->rbuf);
	text_buf_free(&set->esc);
	free(set->spare);
	free(set);
}

void
logcap_set_limits(struct logcap_set *set, const struct logcap_limits *lim)
{
	bool moved = (set->dir == NULL) != (lim->dir == NULL) ||
	             (lim->dir != NULL && strcmp(set->dir, lim->dir) != 0);

	free(set->dir);
	set->lim = *lim;
	set->dir = lim->dir ? xstrdup(lim->dir) : NULL;
	set->lim.dir = set->dir;
	if (moved)
		logcap_reopen(set);
}

void
logcap_set_sink(struct logcap_set *set, logcap_line_fn fn, void *arg)
{
	set->sink = fn;
	set->sink_arg = arg;
}

void
logcap_reopen(struct logcap_set *set)
{
	file_flush(set);
	/* each is opened again at its next line */
	for (size_t b = 0; b < LOGCAP_BUCKETS; b++)
		for (struct logcap *lc = set->buckets[b]; lc; lc = lc->next)
			logcap_file_close(&lc->file);
}

unsigned long
logcap_dropped(const struct logcap_set *set)
{
	return logcap_out_dropped(&set->out);
}
