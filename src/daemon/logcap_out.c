/*
 * logcap_out.c - workers' lines on agentsupd's stderr: formatted into a
 * batch per read, handed to an outq (the daemon's non-blocking, bounded,
 * drop-counting queue for stderr) and flushed from the loop when stderr is
 * writable again.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "logcap_out.h"
#include "util.h"

static void
out_writable_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop;
	(void)revents;
	logcap_out_flush(w->data);
}

/* Nothing at all is formatted for /dev/null: the echo would cost for
 * nothing. */
void
logcap_out_open(struct logcap_out *o, struct ev_loop *loop, int fd, size_t max)
{
	struct stat st;

	memset(o, 0, sizeof *o);
	o->loop = loop;
	o->max = max;
	o->on = !(fstat(fd, &st) == 0 && S_ISCHR(st.st_mode) &&
	          st.st_rdev == makedev(1, 3));
	outq_open(&o->q, o->on ? fd : -1, 4 * max, "agentsupd: worker output");
	ev_io_init(&o->w, out_writable_cb, o->q.fd, EV_WRITE);
	o->w.data = o;
}

void
logcap_out_close(struct logcap_out *o)
{
	logcap_out_flush(o);
	ev_io_stop(o->loop, &o->w);
	outq_close(&o->q);
	free(o->batch);
	o->batch = NULL;
}

void
logcap_out_flush(struct logcap_out *o)
{
	uint64_t before = o->q.dropped;
	bool more;

	if (o->len > 0)
		outq_line(&o->q, o->batch, o->len); /* whole lines */
	o->len = 0;
	o->dropped += (unsigned long)(o->q.dropped - before);
	before = o->q.dropped;
	more = o->q.fd >= 0 && outq_flush(&o->q);
	if (o->q.dropped > before) /* a write error dropped what waited */
		o->dropped += (unsigned long)(o->q.dropped - before);
	if (more)
		ev_io_start(o->loop, &o->w);
	else
		ev_io_stop(o->loop, &o->w);
}

void
logcap_out_line(struct logcap_out *o, const char *name, size_t namelen,
                size_t width, char mark, const char *line, size_t len)
{
	size_t pad = width > namelen ? width - namelen : 0;
	size_t need = namelen + pad + 3 + len + 1;
	char *p;

	if (!o->on)
		return;
	if (o->len + need > o->max)
		logcap_out_flush(o);
	if (o->batch == NULL)
		o->batch = xmalloc(o->max);
	p = o->batch + o->len;
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

unsigned long
logcap_out_dropped(const struct logcap_out *o)
{
	return o->dropped;
}
