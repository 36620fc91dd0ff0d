/*
 * logcap_out.c - workers' lines on agentsupd's stderr, never blocking: a
 * bounded buffer written as far as stderr takes it; when it is full, lines
 * are dropped and counted, and once stderr drains a line says how many.
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
#include "logcap_out.h"
#include "util.h"

static void
out_writable_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop;
	(void)revents;
	logcap_out_flush(w->data);
}

/* A descriptor of our own for stderr that never blocks us: a pipe or a
 * terminal is opened again (a new open file description, so O_NONBLOCK does
 * not reach whoever shares ours); a socket is sent to with MSG_DONTWAIT; a
 * regular file never blocks. None at all for /dev/null. */
void
logcap_out_open(struct logcap_out *o, struct ev_loop *loop, int fd, size_t max)
{
	struct stat st;
	char path[64];

	memset(o, 0, sizeof *o);
	o->loop = loop;
	o->max = max;
	o->fd = -1;
	ev_init(&o->w, out_writable_cb);
	o->w.data = o;
	if (fstat(fd, &st) < 0)
		return;
	if (S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 3))
		return; /* /dev/null: the echo would cost for nothing */
	o->socket = S_ISSOCK(st.st_mode);
	if (S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode)) {
		snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
		o->fd = open(path,
		             O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	}
	if (o->fd < 0)
		o->fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	if (o->fd < 0) {
		log_warn("cannot duplicate stderr; worker output will not be "
		         "shown there");
		return;
	}
	ev_io_set(&o->w, o->fd, EV_WRITE);
}

void
logcap_out_close(struct logcap_out *o)
{
	if (o->fd >= 0) {
		logcap_out_flush(o);
		ev_io_stop(o->loop, &o->w);
		close(o->fd);
	}
	free(o->buf);
	o->buf = NULL;
	o->fd = -1;
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
void
logcap_out_flush(struct logcap_out *o)
{
	ssize_t n;

	while (o->len > 0) {
		if (o->socket)
			n = send(o->fd, o->buf, o->len,
			         MSG_DONTWAIT | MSG_NOSIGNAL);
		else
			n = write(o->fd, o->buf, o->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			ev_io_start(o->loop, &o->w);
			return;
		}
		if (n <= 0) {
			o->dropped += count_lines(o->buf, o->len);
			o->unreported = o->dropped; /* nobody to tell */
			o->len = 0;
			break;
		}
		memmove(o->buf, o->buf + n, o->len - (size_t)n);
		o->len -= (size_t)n;
		if (o->len == 0 && o->dropped > o->unreported) {
			o->len = (size_t)snprintf(
			        o->buf, o->max,
			        "agentsupd: %lu lines of worker output were "
			        "not shown: stderr was not writable\n",
			        o->dropped - o->unreported);
			o->unreported = o->dropped;
		}
	}
	ev_io_stop(o->loop, &o->w);
}

void
logcap_out_line(struct logcap_out *o, const char *name, size_t namelen,
                size_t width, char mark, const char *line, size_t len)
{
	size_t pad = width > namelen ? width - namelen : 0;
	size_t need = namelen + pad + 3 + len + 1;
	char *p;

	if (o->fd < 0)
		return;
	if (o->len + need > o->max) {
		logcap_out_flush(o);
		if (o->len + need > o->max) {
			o->dropped++;
			return;
		}
	}
	if (o->buf == NULL)
		o->buf = xmalloc(o->max);
	p = o->buf + o->len;
	memcpy(p, name, namelen);
	memset(p + namelen, ' ', pad);
	p += namelen + pad;
	p[0] = ' ';
	p[1] = mark;
	p[2] = ' ';
	memcpy(p + 3, line, len);
	p[3 + len] = '\n';
	o->len += need;
}
