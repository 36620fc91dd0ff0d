/*
 * logcap.c - workers' captured output (DESIGN §13): the set of captures by
 * name, and their pipes.
 *
 * Each captured stream of a worker is a pipe whose read end is ours,
 * non-blocking. One read of at most LOGCAP_READ_MAX per wake-up, so a flood
 * shares the loop with everything else; logcap_feed.c sends its lines on
 * (agentsupd's stderr, the followers, the ring, log_dir/NAME.log). A
 * worker's capture is its two pipes' watchers and its name; what it prints
 * (partial lines, the ring, its open log file) is allocated when it first
 * prints. Memory is fixed per worker whatever it prints.
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "log.h"
#include "logcap_impl.h"
#include "util.h"

#define LOGCAP_WIDTH_MAX  24    /* names are padded to the widest, to this */
#define LOGCAP_READ_KEEP  16384 /* of the read buffer, kept after a flood */
#define LOGCAP_TRIM_AFTER 64    /* small reads in a row: the flood is over */

void
logcap_feed(struct logcap *lc, enum logcap_stream kind, const char *p, size_t n)
{
	logcap_feed_bytes(lc, kind, p, n);
	logcap_out_flush(&lc->set->out);
}

void
logcap_flush(struct logcap *lc, enum logcap_stream kind)
{
	logcap_feed_end(lc, kind);
	logcap_out_flush(&lc->set->out);
}

/* The lines a running worker has begun and not ended, escaped as the
 * ring's are, one per stream: a prompt ("Password: ") that it waits on is
 * the line a hang's tail most needs. Their count. */
static unsigned
logcap_partials(const struct logcap *lc, struct text_buf *out)
{
	unsigned n = 0;

	for (int k = 0; k < 2; k++) {
		if (lc->txt->partlen[k] == 0)
			continue;
		text_term_escape_cut(out, lc->txt->part[k], lc->txt->partlen[k],
		                     LOGCAP_ESC_MAX);
		text_buf_append(out, "\n", 1);
		n++;
	}
	return n;
}

size_t
logcap_tail(const struct logcap *lc, unsigned nlines, char *buf, size_t len)
{
	struct text_buf part;
	unsigned np;
	size_t n;

	if (len > 0)
		buf[0] = '\0';
	if (lc == NULL || lc->txt == NULL)
		return 0;
	text_buf_init(&part, 2 * LOGCAP_ESC_MAX + 2);
	np = logcap_partials(lc, &part);
	if (np == 0 || part.len >= len / 2) { /* the ring's lines first */
		text_buf_free(&part);
		return logcap_ring_tail(&lc->txt->ring, nlines, buf, len);
	}
	if (nlines != 0)
		nlines = nlines > np ? nlines - np : 1;
	n = logcap_ring_tail(&lc->txt->ring, nlines, buf, len - part.len);
	memcpy(buf + n, part.data, part.len + 1);
	n += part.len;
	text_buf_free(&part);
	return n;
}

/* --- the pipes ------------------------------------------------------------ */

static enum logcap_stream
stream_kind(const struct logcap *lc, const struct logcap_pipe *st)
{
	return st == &lc->s[LOGCAP_STDERR] ? LOGCAP_STDERR : LOGCAP_STDOUT;
}

static void
stream_close(struct logcap *lc, struct logcap_pipe *st)
{
	if (st->io.fd >= 0) {
		ev_io_stop(lc->set->loop, &st->io);
		close(st->io.fd);
		ev_io_set(&st->io, -1, EV_READ);
	}
}

/* The shared read buffer, mapped at the first read; NULL (said once) if it
 * cannot be: reads then go through a small buffer of the caller's. */
static char *
read_buf(struct logcap_set *set)
{
	void *p;

	if (set->rbuf != NULL || set->rbuf_failed)
		return set->rbuf;
	p = mmap(NULL, LOGCAP_READ_MAX, PROT_READ | PROT_WRITE,
	         MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		log_warn(
		        "worker output: read buffer (reading in small pieces)");
		set->rbuf_failed = true;
		return NULL;
	}
	set->rbuf = p;
	return p;
}

/* A flood's pages of the read buffer are handed back once it is over: after
 * LOGCAP_TRIM_AFTER small reads in a row (a flood and a chatty worker side
 * by side do not make it fault the pages in every turn), or when a
 * flooding stream ends. */
static void
read_buf_trim(struct logcap_set *set, size_t n, bool ended)
{
	if (n >= LOGCAP_READ_KEEP) {
		set->rbuf_used = n > set->rbuf_used ? n : set->rbuf_used;
		set->rbuf_small = 0;
		return;
	}
	if (set->rbuf == NULL || set->rbuf_used <= LOGCAP_READ_KEEP ||
	    (++set->rbuf_small < LOGCAP_TRIM_AFTER && !ended))
		return;
	(void)madvise(set->rbuf + LOGCAP_READ_KEEP,
	              LOGCAP_READ_MAX - LOGCAP_READ_KEEP, MADV_DONTNEED);
	set->rbuf_used = LOGCAP_READ_KEEP;
}

/* One read: 0 done for now, 1 more may wait, -1 closed (EOF or error). */
static int
stream_read(struct logcap *lc, struct logcap_pipe *st)
{
	struct logcap_set *set = lc->set;
	enum logcap_stream k = stream_kind(lc, st);
	char small[4096], *buf = read_buf(set);
	size_t max = buf != NULL ? LOGCAP_READ_MAX : sizeof small;
	ssize_t n;

	if (buf == NULL)
		buf = small;
	n = read(st->io.fd, buf, max);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n <= 0) {
		if (n < 0)
			log_warn("worker %s: reading its output", lc->name);
		logcap_feed_end(lc, k);
		read_buf_trim(set, 0, lc->big[k]);
		stream_close(lc, st);
		return -1;
	}
	/* half a pipe at once: fewer, larger reads for a worker that floods
	 * (only then: pipe capacity counts against the user's limit) */
	if (!lc->big[k] && (size_t)n >= 32768) {
		lc->big[k] = true;
		(void)fcntl(st->io.fd, F_SETPIPE_SZ, LOGCAP_PIPE_BIG);
	}
	logcap_feed_bytes(lc, k, buf, (size_t)n);
	if (buf != small)
		read_buf_trim(set, (size_t)n, false);
	return 1;
}

static void
stream_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct logcap *lc = w->data;

	(void)loop;
	(void)revents;
	(void)stream_read(lc, (struct logcap_pipe *)w);
	logcap_out_flush(&lc->set->out);
}

int
logcap_pipes(struct logcap *lc, bool out, bool err, int child_fd[2])
{
	bool want[2] = {out, err};

	child_fd[0] = child_fd[1] = -1;
	for (int i = 0; i < 2; i++) {
		struct logcap_pipe *st = &lc->s[i];
		int fds[2] = {-1, -1};

		stream_close(lc, st); /* a last process's, if still open */
		if (!want[i])
			continue;
		if (pipe2(fds, O_CLOEXEC) < 0 ||
		    fcntl(fds[0], F_SETFL, O_NONBLOCK) < 0) {
			int e = errno;
			if (fds[0] >= 0) {
				close(fds[0]);
				close(fds[1]);
			}
			logcap_spawned(lc, false, child_fd);
			errno = e;
			return -1;
		}
		ev_io_init(&st->io, stream_cb, fds[0], EV_READ);
		lc->big[i] = false;
		child_fd[i] = fds[1];
	}
	return 0;
}

void
logcap_spawned(struct logcap *lc, bool started, int child_fd[2])
{
	for (int i = 0; i < 2; i++) {
		struct logcap_pipe *st = &lc->s[i];
		if (child_fd[i] >= 0)
			close(child_fd[i]);
		child_fd[i] = -1;
		if (!started) {
			stream_close(lc, st);
			continue;
		}
		if (st->io.fd < 0)
			continue;
		st->io.data = lc;
		ev_io_start(lc->set->loop, &st->io);
	}
	if (started && lc->txt != NULL) /* the ring is this process's now */
		logcap_ring_clear(&lc->txt->ring);
}

void
logcap_exited(struct logcap *lc)
{
	for (int i = 0; i < 2; i++) {
		struct logcap_pipe *st = &lc->s[i];
		size_t got = 0;

		while (st->io.fd >= 0 && got < LOGCAP_DRAIN_MAX &&
		       stream_read(lc, st) > 0)
			got += LOGCAP_READ_MAX;
		if (st->io.fd >= 0)
			logcap_feed_end(lc, (enum logcap_stream)i);
		stream_close(lc, st);
	}
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
	lc = xcalloc(1, offsetof(struct logcap, name) + nl + 1);
	lc->set = set;
	memcpy(lc->name, name, nl + 1);
	for (int i = 0; i < 2; i++) {
		ev_io_init(&lc->s[i].io, stream_cb, -1, EV_READ);
	}
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
	logcap_feed_free(lc);
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
	set->reap = logcap_reap_new();
	text_buf_init(&set->esc, LOGCAP_ESC_MAX);
	/* a read's lines, each after 25 bytes of time */
	text_buf_init(&set->timed, 2 * LOGCAP_TIMED_MAX + 4 * LOGCAP_LINE_MAX);
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
	logcap_reap_free(set->reap);
	free(set->dir);
	if (set->rbuf != NULL)
		munmap(set->rbuf, LOGCAP_READ_MAX);
	text_buf_free(&set->esc);
	text_buf_free(&set->timed);
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
logcap_set_follow(struct logcap_set *set, logcap_follow_fn fn)
{
	set->follow = fn;
}

void
logcap_reopen(struct logcap_set *set)
{
	logcap_feed_done(set);
	/* each is opened again at its next line */
	for (size_t b = 0; b < LOGCAP_BUCKETS; b++)
		for (struct logcap *lc = set->buckets[b]; lc; lc = lc->next)
			if (lc->txt != NULL)
				logcap_file_close(&lc->txt->file);
}

unsigned long
logcap_dropped(const struct logcap_set *set)
{
	return logcap_out_dropped(&set->out);
}
