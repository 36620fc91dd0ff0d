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
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "log.h"
#include "logcap.h"
#include "util.h"

#define LOGCAP_WIDTH_MAX 24 /* names are padded to the widest, to this */
#define LOGCAP_BUCKETS   256

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
	bool cut;        /* the oldest line in the ring lost its head */
	int file;        /* log_dir/NAME.log, -1 until the first line */
	uint64_t fsize;  /* its size as far as we know */
	bool file_error; /* logged once; retried at the next reopen */
};

enum out_kind { OUT_PLAIN, OUT_SOCKET };

struct logcap_set {
	struct ev_loop *loop;
	struct logcap_limits lim;
	char *dir;
	struct logcap *buckets[LOGCAP_BUCKETS];
	size_t width; /* the widest name seen, for the prefix */
	int err_fd;   /* ours: non-blocking where it matters */
	enum out_kind err_kind;
	ev_io err_w;
	char *out; /* LOGCAP_OUT_MAX, lazily */
	size_t outlen;
	unsigned long dropped, unreported;
	char *rbuf;  /* one read at a time: LOGCAP_READ_MAX */
	char *ebuf;  /* one escaped line: 4 * LOGCAP_LINE_MAX */
	char *spare; /* a partial line's buffer, for the next that needs one */
	const char *span; /* whole lines for span_owner's file, unwritten */
	size_t spanlen;
	struct logcap *span_owner;
	logcap_line_fn sink;
	void *sink_arg;
};

static void out_flush(struct logcap_set *);
static void file_flush(struct logcap_set *);

/* --- agentsupd's stderr, never blocking ----------------------------------- */

/* A descriptor of our own for stderr that never blocks us: a pipe or a
 * terminal is opened again (a new open file description, so O_NONBLOCK does
 * not reach whoever shares ours); a socket is sent to with MSG_DONTWAIT; a
 * regular file never blocks. None at all for /dev/null. */
static void
out_open(struct logcap_set *set, int fd)
{
	struct stat st;
	char path[64];

	set->err_kind = OUT_PLAIN;
	set->err_fd = -1;
	if (fstat(fd, &st) < 0)
		return;
	if (S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 3))
		return; /* /dev/null: the echo would cost for nothing */
	if (S_ISSOCK(st.st_mode))
		set->err_kind = OUT_SOCKET;
	if (S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode)) {
		snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
		set->err_fd = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC |
		                                 O_NOCTTY);
	}
	if (set->err_fd < 0)
		set->err_fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	if (set->err_fd < 0)
		log_warn("logcap: cannot duplicate stderr; worker output "
		         "will not be shown there");
}

static void
out_writable_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop;
	(void)revents;
	out_flush(w->data);
}

static size_t
count_lines(const char *p, size_t n)
{
	size_t k = 0;

	for (const char *e = p + n; (p = memchr(p, '\n', (size_t)(e - p))); p++)
		k++;
	return k;
}

/* Write what is buffered; on EAGAIN wait for stderr to drain; on an error
 * (it was closed) drop it all, counted. Once it is all out, say how many
 * lines were dropped, through the same buffer. */
static void
out_flush(struct logcap_set *set)
{
	ssize_t n;

	while (set->outlen > 0) {
		if (set->err_kind == OUT_SOCKET)
			n = send(set->err_fd, set->out, set->outlen,
			         MSG_DONTWAIT | MSG_NOSIGNAL);
		else
			n = write(set->err_fd, set->out, set->outlen);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			ev_io_start(set->loop, &set->err_w);
			return;
		}
		if (n <= 0) {
			set->dropped += count_lines(set->out, set->outlen);
			set->unreported = set->dropped; /* nobody to tell */
			set->outlen = 0;
			break;
		}
		memmove(set->out, set->out + n, set->outlen - (size_t)n);
		set->outlen -= (size_t)n;
		if (set->outlen == 0 && set->dropped > set->unreported) {
			set->outlen = (size_t)snprintf(
			        set->out, LOGCAP_OUT_MAX,
			        "agentsupd: %lu lines of worker output were "
			        "not shown: stderr was not writable\n",
			        set->dropped - set->unreported);
			set->unreported = set->dropped;
		}
	}
	ev_io_stop(set->loop, &set->err_w);
}

/* "NAME   | line\n" (stdout) or "NAME   ! line\n" (stderr), or dropped. */
static void
out_line(struct logcap_set *set, const struct logcap *lc,
         enum logcap_stream kind, const char *line, size_t len)
{
	size_t nl = lc->namelen, pad = set->width > nl ? set->width - nl : 0;
	size_t need = nl + pad + 3 + len + 1;
	char *p;

	if (set->err_fd < 0)
		return;
	if (set->outlen + need > LOGCAP_OUT_MAX) {
		out_flush(set);
		if (set->outlen + need > LOGCAP_OUT_MAX) {
			set->dropped++;
			return;
		}
	}
	if (set->out == NULL)
		set->out = xmalloc(LOGCAP_OUT_MAX);
	p = set->out + set->outlen;
	memcpy(p, lc->name, nl);
	memset(p + nl, ' ', pad);
	p += nl + pad;
	memcpy(p, kind == LOGCAP_STDERR ? " ! " : " | ", 3);
	memcpy(p + 3, line, len);
	p[3 + len] = '\n';
	set->outlen += need;
}

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

/* --- log_dir/NAME.log ------------------------------------------------------
 */

static char *
file_path(const struct logcap *lc, unsigned gen)
{
	if (gen == 0)
		return xasprintf("%s/%s.log", lc->set->dir, lc->name);
	return xasprintf("%s/%s.log.%u", lc->set->dir, lc->name, gen);
}

static void
file_close(struct logcap *lc)
{
	if (lc->file >= 0)
		close(lc->file);
	lc->file = -1;
}

static int
file_open(struct logcap *lc)
{
	char *path = file_path(lc, 0);
	struct stat st;

	lc->file = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (lc->file < 0 || fstat(lc->file, &st) < 0) {
		if (!lc->file_error)
			log_warn("worker %s: log file %s", lc->name, path);
		lc->file_error = true;
		file_close(lc);
		free(path);
		return -1;
	}
	lc->fsize = (uint64_t)st.st_size;
	free(path);
	return 0;
}

/* NAME.log.(keep-1) -> .keep, ..., NAME.log -> .1, a new NAME.log. */
static void
file_rotate(struct logcap *lc)
{
	unsigned keep = lc->set->lim.keep;
	char *from, *to;

	file_close(lc);
	for (unsigned g = keep; g > 0; g--) {
		from = file_path(lc, g - 1);
		to = file_path(lc, g);
		if (rename(from, to) < 0 && errno != ENOENT)
			log_warn("worker %s: rotate %s", lc->name, from);
		free(from);
		free(to);
	}
	if (keep == 0) {
		from = file_path(lc, 0);
		if (unlink(from) < 0 && errno != ENOENT)
			log_warn("worker %s: rotate %s", lc->name, from);
		free(from);
	}
	file_open(lc);
}

static void
file_write(struct logcap *lc, const char *p, size_t n)
{
	ssize_t w;

	while (n > 0 && !lc->file_error) {
		w = write(lc->file, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			log_warn("worker %s: writing its log file", lc->name);
			lc->file_error = true; /* until the next reopen */
			break;
		}
		p += w;
		n -= (size_t)w;
		lc->fsize += (uint64_t)w;
	}
}

/* Whole lines to the file, rotated before it would grow beyond max (only
 * between lines; a single line longer than max is written whole). The size
 * is checked with fstat first, in case logrotate's copytruncate emptied the
 * file meanwhile. */
static void
file_put(struct logcap *lc, const char *p, size_t n)
{
	uint64_t max = lc->set->lim.max;
	bool checked = false;
	struct stat st;

	if (lc->file < 0 && (lc->file_error || file_open(lc) < 0))
		return;
	while (n > 0 && lc->file >= 0 && !lc->file_error) {
		size_t k = n, room;
		const char *nl;

		if (max && lc->fsize + n > max) {
			if (!checked) {
				checked = true;
				if (fstat(lc->file, &st) == 0)
					lc->fsize = (uint64_t)st.st_size;
				continue;
			}
			room = lc->fsize < max ? (size_t)(max - lc->fsize) : 0;
			nl = room ? memrchr(p, '\n', room < n ? room : n)
			          : NULL;
			if (nl != NULL) {
				k = (size_t)(nl - p) + 1;
			} else if (lc->fsize > 0) {
				file_rotate(lc);
				continue;
			} else {
				nl = memchr(p, '\n', n);
				k = nl ? (size_t)(nl - p) + 1 : n;
			}
		}
		file_write(lc, p, k);
		p += k;
		n -= k;
	}
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

/* Control characters (but tab) and DEL as \xHH: a worker's bytes must not
 * steer the operator's terminal. */
static size_t
escape(char *dst, const char *src, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t k = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)src[i];
		if ((c >= 0x20 && c != 0x7f) || c == '\t') {
			dst[k++] = (char)c;
			continue;
		}
		dst[k++] = '\\';
		dst[k++] = 'x';
		dst[k++] = hex[c >> 4];
		dst[k++] = hex[c & 15];
	}
	return k;
}

/* Whether a line holds a control character (tab aside). Eight bytes at a
 * time: any byte below 0x20 or equal to 0x7f sends the word to the exact
 * test (a tab does too, and passes there). */
static bool
needs_escape(const char *p, size_t n)
{
	const uint64_t ones = 0x0101010101010101u, high = 0x8080808080808080u;
	size_t i = 0;
	uint64_t x, del;

	for (; i + 8 <= n; i += 8) {
		memcpy(&x, p + i, 8);
		del = x ^ (0x7f * ones);
		if ((((x - 0x20 * ones) & ~x) | ((del - ones) & ~del)) & high)
			break; /* look closer from here */
	}
	for (; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		if ((c < 0x20 && c != '\t') || c == 0x7f)
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
	if (needs_escape(line, len)) {
		if (set->ebuf == NULL)
			set->ebuf = xmalloc(4 * LOGCAP_LINE_MAX);
		len = escape(set->ebuf, line, len);
		line = set->ebuf;
	}
	out_line(set, lc, st->kind, line, len);
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
	out_flush(lc->set);
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
	out_flush(lc->set);
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
		out_flush(st->lc->set);
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
	out_flush(lc->set);
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
	lc->file = -1;
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
	file_close(lc);
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
	out_open(set, err_fd);
	ev_io_init(&set->err_w, out_writable_cb, set->err_fd, EV_WRITE);
	set->err_w.data = set;
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
	out_flush(set);
	ev_io_stop(set->loop, &set->err_w);
	if (set->err_fd >= 0)
		close(set->err_fd);
	free(set->dir);
	free(set->out);
	free(set->rbuf);
	free(set->ebuf);
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
	for (size_t b = 0; b < LOGCAP_BUCKETS; b++)
		for (struct logcap *lc = set->buckets[b]; lc; lc = lc->next) {
			file_flush(lc->set);
			file_close(lc);
			lc->file_error =
			        false; /* opened again at its next line */
		}
}

unsigned long
logcap_dropped(const struct logcap_set *set)
{
	return set->dropped;
}
