/*
 * outq.c - whole lines to a descriptor that must never block us, through a
 * bounded queue; what the queue cannot hold is counted and said later.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "outq.h"
#include "util.h"

/* A private non-blocking description of the same pipe, FIFO or terminal,
 * or -1 (then the caller polls before writing). */
static int
outq_reopen(int fd, const struct stat *st)
{
	char proc[64];
	struct stat st2;
	int nfd;

	snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
	nfd = open(proc, O_WRONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (nfd < 0)
		return -1;
	if (fstat(nfd, &st2) < 0 || st2.st_dev != st->st_dev ||
	    st2.st_ino != st->st_ino) {
		close(nfd); /* not the same object after all */
		return -1;
	}
	return nfd;
}

void
outq_open(struct outq *q, int fd, size_t max, const char *prefix)
{
	struct stat st;
	int fl, nfd;

	memset(q, 0, sizeof *q);
	q->max = max;
	q->prefix = prefix;
	q->fd = -1;
	if (fd < 0 || fstat(fd, &st) < 0)
		return; /* no stderr: lines go nowhere, counted */
	q->fd = fd;
	if (S_ISREG(st.st_mode) || S_ISBLK(st.st_mode))
		q->how = OUTQ_WRITE;
	else if (S_ISSOCK(st.st_mode))
		q->how = OUTQ_SEND;
	else if ((fl = fcntl(fd, F_GETFL)) >= 0 && (fl & O_NONBLOCK))
		q->how = OUTQ_WRITE; /* already non-blocking: someone chose */
	else if ((nfd = outq_reopen(fd, &st)) >= 0)
		q->fd = nfd, q->own = true, q->how = OUTQ_WRITE;
	else
		q->how = OUTQ_POLL;
}

void
outq_close(struct outq *q)
{
	if (q->own)
		(void)close(
		        q->fd); /* an error has nowhere to go: it was the log */
	free(q->buf);
	q->buf = NULL;
	q->len = q->head = q->cap = 0;
	q->fd = -1;
	q->own = false;
}

/* Write some of p without blocking: bytes written, or -1 with errno. */
static ssize_t
outq_write(struct outq *q, const char *p, size_t n)
{
	struct pollfd pfd = {.fd = q->fd, .events = POLLOUT};
	ssize_t r;

	if (q->fd < 0) {
		errno = EBADF;
		return -1;
	}
	do {
		switch (q->how) {
		case OUTQ_SEND:
			r = send(q->fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL);
			break;
		case OUTQ_POLL: /* an error or a hang-up: write to learn it */
			if ((r = poll(&pfd, 1, 0)) == 0)
				errno = EAGAIN;
			if (r > 0 && (pfd.revents & POLLNVAL))
				errno = EBADF;
			if (r <= 0 || (pfd.revents & POLLNVAL)) {
				r = -1;
				break;
			}
			r = write(q->fd, p, n < PIPE_BUF ? n : PIPE_BUF);
			break;
		default:
			r = write(q->fd, p, n);
			break;
		}
	} while (r < 0 && errno == EINTR);
	return r;
}

static bool
outq_would_block(void)
{
	return errno == EAGAIN || errno == EWOULDBLOCK;
}

static size_t
outq_count_lines(const char *p, size_t n)
{
	size_t lines = 0;

	for (const char *e = p + n; (p = memchr(p, '\n', e - p)) != NULL; p++)
		lines++;
	return lines;
}

/* Append to the queue (the caller checked the room). */
static void
outq_push(struct outq *q, const char *p, size_t n)
{
	if (q->head > 0) {
		memmove(q->buf, q->buf + q->head, q->len);
		q->head = 0;
	}
	if (q->len + n > q->cap) {
		size_t cap = q->cap ? q->cap : 4096;
		while (cap < q->len + n)
			cap *= 2;
		if (cap > q->max && q->len + n <= q->max)
			cap = q->max;
		q->cap = cap;
		q->buf = xrealloc(q->buf, q->cap);
	}
	memcpy(q->buf + q->len, p, n);
	q->len += n;
}

/*
 * Say how many lines were dropped, now that all else is out: true while it
 * could not be said for now (it stays counted). A part written is a line
 * begun: the rest is queued.
 */
static bool
outq_say_dropped(struct outq *q)
{
	char line[160];
	ssize_t w;
	int n;

	n = snprintf(line, sizeof line,
	             "%s: %llu log lines dropped (stderr not writable)\n",
	             q->prefix, (unsigned long long)q->dropped);
	if (n < 0 || (size_t)n >= sizeof line)
		n = snprintf(line, sizeof line, "%llu log lines dropped\n",
		             (unsigned long long)q->dropped);
	if ((w = outq_write(q, line, (size_t)n)) < 0)
		return outq_would_block();
	q->dropped = 0;
	if (w < n)
		outq_push(q, line + w, (size_t)(n - w));
	return q->len > 0;
}

bool
outq_flush(struct outq *q)
{
	while (q->len > 0) {
		ssize_t n = outq_write(q, q->buf + q->head, q->len);

		if (n < 0 && outq_would_block())
			return true;
		if (n < 0) { /* broken for good: what waits is lost */
			q->dropped +=
			        outq_count_lines(q->buf + q->head, q->len);
			q->len = q->head = 0;
			return false;
		}
		q->head += (size_t)n;
		q->len -= (size_t)n;
	}
	q->head = 0;
	if (q->cap > 4096) { /* a burst is over: give its memory back */
		free(q->buf);
		q->buf = NULL;
		q->cap = 0;
	}
	return q->dropped > 0 && outq_say_dropped(q);
}

void
outq_line(struct outq *q, const char *p, size_t n)
{
	ssize_t w = 0;

	if (!outq_flush(q)) {
		if ((w = outq_write(q, p, n)) < 0 && !outq_would_block()) {
			q->dropped++;
			return;
		}
		w = w < 0 ? 0 : w;
	}
	p += w, n -= (size_t)w;
	if (n == 0)
		return;
	if (w == 0 && n > q->max - q->len) {
		q->dropped++; /* only whole lines are dropped */
		return;
	}
	outq_push(q, p, n); /* a line begun must end: it goes in */
}
