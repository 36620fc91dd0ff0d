/*
 * log.c - the daemon's own lines on stderr: "agentsupd: ...". They pass
 * through one bounded queue (outq.c) so that a reader who stops reading our
 * stderr never blocks supervision; an ev_io flushes it when stderr is
 * writable again. The log is one per process, hence the statics.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ev.h>

#include "log.h"
#include "outq.h"
#include "text.h"

static const char *log_name = "agentsupd";
static struct outq log_q;
static bool log_open;
static struct ev_loop *log_loop;
static ev_io log_w;

static void
log_ensure_open(void)
{
	if (!log_open) {
		outq_open(&log_q, STDERR_FILENO, LOG_QUEUE_MAX, log_name);
		log_open = true;
	}
}

/* Watch stderr for room while something waits, and only then. */
static void
log_watch(bool pending)
{
	if (log_loop == NULL || log_q.fd < 0)
		return;
	if (pending && !ev_is_active(&log_w)) {
		ev_io_set(&log_w, log_q.fd, EV_WRITE);
		ev_io_start(log_loop, &log_w);
	} else if (!pending && ev_is_active(&log_w)) {
		ev_io_stop(log_loop, &log_w);
	}
}

static void
log_writable_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop;
	(void)w;
	(void)revents;
	log_watch(outq_flush(&log_q));
}

void
log_line(const char *line, size_t len)
{
	log_ensure_open();
	outq_line(&log_q, line, len);
	log_watch(log_q.len > 0 || log_q.dropped > 0);
}

void
log_attach(struct ev_loop *loop)
{
	log_ensure_open();
	log_loop = loop;
	ev_init(&log_w, log_writable_cb);
	log_watch(outq_flush(&log_q));
}

void
log_detach(void)
{
	if (log_loop != NULL && ev_is_active(&log_w))
		ev_io_stop(log_loop, &log_w);
	log_loop = NULL;
	if (log_open) {
		outq_flush(&log_q); /* a last try; what stays is lost */
		outq_close(&log_q);
		log_open = false;
	}
}

/* "NAME: message[: strerror]\n", the message escaped, cut if huge. */
static void
log_vlog(const char *fmt, va_list ap, int err)
{
	struct text_buf msg, line;

	text_buf_init(&msg, LOG_LINE_MAX);
	text_buf_init(&line, LOG_LINE_MAX);
	if (!text_buf_vprintf(&msg, fmt, ap))
		text_buf_printf(&msg, "(a message longer than %d bytes)",
		                LOG_LINE_MAX);
	text_buf_printf(&line, "%s: ", log_name);
	text_term_escape_cut(&line, msg.data, msg.len, LOG_LINE_MAX - 256);
	if (err >= 0)
		text_buf_printf(&line, ": %s", strerror(err));
	text_buf_append(&line, "\n", 1);
	log_line(line.data, line.len);
	text_buf_free(&msg);
	text_buf_free(&line);
}

void
log_warn(const char *fmt, ...)
{
	int err = errno;
	va_list ap;

	va_start(ap, fmt);
	log_vlog(fmt, ap, err);
	va_end(ap);
	errno = err;
}

void
log_warnx(const char *fmt, ...)
{
	int err = errno;
	va_list ap;

	va_start(ap, fmt);
	log_vlog(fmt, ap, -1);
	va_end(ap);
	errno = err;
}

void
log_info(const char *fmt, ...)
{
	int err = errno;
	va_list ap;

	va_start(ap, fmt);
	log_vlog(fmt, ap, -1);
	va_end(ap);
	errno = err;
}

void
fatal(const char *fmt, ...)
{
	int err = errno;
	va_list ap;

	va_start(ap, fmt);
	log_vlog(fmt, ap, err);
	va_end(ap);
	log_detach();
	exit(70); /* EX_SOFTWARE: an invariant of our own broke */
}

void
fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vlog(fmt, ap, -1);
	va_end(ap);
	log_detach();
	exit(70);
}
