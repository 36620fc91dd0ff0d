/*
 * metrics.c - the /metrics endpoint and the exposition format.
 *
 * Every client is bounded like a hostile one: at most max_clients at once
 * (a new one pushes the oldest out, so a crowd of silent or slow clients
 * cannot lock Prometheus out), one deadline counted from accept (a slowloris
 * gains nothing by trickling bytes), a fixed 8 KiB for the request head, a
 * bounded body. One response, then the connection is closed: after the last
 * byte we shut down our side and read what the client still sends until it
 * closes (or the deadline), so a refused client hears its status instead of
 * a reset.
 *
 * Clients sit in a list in accept order and share one deadline, so the head
 * is always the first to expire: one timer, armed only while a client is
 * connected.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http.h"
#include "log.h"
#include "metrics.h"
#include "util.h"

#define METRICS_ACCEPT_BURST 64  /* accepts per wake-up, then others run */
#define METRICS_BACKOFF_S    1.0 /* after EMFILE: stop accepting a moment */
#define METRICS_LINGER_MAX   (1u << 20) /* read and dropped after a reply */
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

enum mphase { MC_READ, MC_WRITE, MC_LINGER };

struct mclient {
	struct metrics *m;
	struct mclient *prev, *next; /* accept order: the head is oldest */
	int fd;
	enum mphase phase;
	ev_io io;
	ev_tstamp deadline;
	size_t inlen, lingered;
	char *out; /* the whole response */
	size_t outlen, outoff;
	char in[HTTP_MAX_HEAD];
};

struct metrics {
	struct ev_loop *loop;
	char *addr;
	int fd;
	ev_io accept_w;
	ev_timer backoff; /* only after EMFILE */
	ev_timer timer;   /* the oldest client's deadline, only with clients */
	struct mclient *head, *tail;
	size_t nclients;
	struct metrics_limits lim;
	metrics_render_fn render;
	void *render_arg;
};

/* A non-blocking, close-on-exec listener on addr; -1 with *why. */
static int
metrics_listen(const char *addr, const char **why)
{
	struct sockaddr_storage ss;
	unsigned len;
	int fd, one = 1;

	if (util_parse_hostport(addr, &ss, &len) < 0) {
		*why = "want HOST:PORT with a numeric host, e.g. "
		       "127.0.0.1:9464 "
		       "or [::1]:9464";
		return -1;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
	            0);
	if (fd < 0) {
		*why = strerror(errno);
		return -1;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
	    bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 64) < 0) {
		*why = strerror(errno);
		close(fd);
		return -1;
	}
	return fd;
}

/* --- clients -------------------------------------------------------------- */

static void metrics_client_cb(struct ev_loop *, ev_io *, int);

/* Keep the one timer on the oldest client's deadline, or off. */
static void
metrics_rearm(struct metrics *m)
{
	ev_timer_stop(m->loop, &m->timer);
	if (m->head == NULL)
		return;
	ev_timer_set(&m->timer, m->head->deadline - ev_now(m->loop) + 0.001,
	             0.);
	ev_timer_start(m->loop, &m->timer);
}

static void
metrics_client_free(struct mclient *c)
{
	struct metrics *m = c->m;

	ev_io_stop(m->loop, &c->io);
	if (close(c->fd) < 0 && errno != EINTR)
		log_warn("metrics: close");
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		m->head = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	else
		m->tail = c->prev;
	m->nclients--;
	free(c->out);
	free(c);
}

static void
metrics_client_add(struct metrics *m, int fd)
{
	struct mclient *c;

	if (m->nclients >= m->lim.max_clients)
		metrics_client_free(m->head); /* the oldest gives way */
	c = xcalloc(1, sizeof *c);
	c->m = m;
	c->fd = fd;
	c->deadline = ev_now(m->loop) + m->lim.client_timeout;
	ev_io_init(&c->io, metrics_client_cb, fd, EV_READ);
	c->io.data = c;
	ev_io_start(m->loop, &c->io);
	c->prev = m->tail;
	if (m->tail != NULL)
		m->tail->next = c;
	else
		m->head = c;
	m->tail = c;
	m->nclients++;
}

static void
metrics_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct metrics *m = w->data;

	(void)revents;
	while (m->head != NULL && m->head->deadline <= ev_now(loop))
		metrics_client_free(m->head);
	metrics_rearm(m);
}

static void
metrics_accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct metrics *m = w->data;
	int fd;

	(void)revents;
	for (int i = 0; i < METRICS_ACCEPT_BURST; i++) {
		fd = accept4(m->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd >= 0) {
			metrics_client_add(m, fd);
			continue;
		}
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
		    errno == ENOMEM) {
			log_warn("metrics: accept (pausing for %.0fs)",
			         METRICS_BACKOFF_S);
			ev_io_stop(loop, w);
			ev_timer_set(&m->backoff, METRICS_BACKOFF_S, 0.);
			ev_timer_start(loop, &m->backoff);
		}
		break; /* EAGAIN, or a connection reset before we took it */
	}
	metrics_rearm(m);
}

static void
metrics_backoff_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct metrics *m = w->data;

	(void)revents;
	ev_io_start(loop, &m->accept_w);
}

/* --- responses ------------------------------------------------------------ */

/* The status line, our headers and body (NULL: none) as one buffer. */
static void
metrics_respond(struct mclient *c, int status, const char *ctype,
                const char *body, size_t blen, bool head_only)
{
	char hdr[512];
	int n;

	n = snprintf(hdr, sizeof hdr,
	             "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
	             "Content-Length: %zu\r\n%sConnection: close\r\n\r\n",
	             status, http_status_text(status), ctype, blen,
	             status == 405 ? "Allow: GET, HEAD\r\n" : "");
	if (head_only)
		blen = 0;
	c->out = xmalloc((size_t)n + blen);
	memcpy(c->out, hdr, (size_t)n);
	if (blen > 0)
		memcpy(c->out + n, body, blen);
	c->outlen = (size_t)n + blen;
	c->outoff = 0;
	c->phase = MC_WRITE;
	ev_io_stop(c->m->loop, &c->io);
	ev_io_set(&c->io, c->fd, EV_WRITE);
	ev_io_start(c->m->loop, &c->io);
}

/* An error answer; to a HEAD without its body (RFC 9110 9.3.2), its
 * Content-Length still the body's. */
static void
metrics_respond_error(struct mclient *c, int status, enum http_method m)
{
	char body[128];
	int n = snprintf(body, sizeof body, "%d %s\n", status,
	                 http_status_text(status));

	metrics_respond(c, status, "text/plain; charset=utf-8", body, (size_t)n,
	                m == HTTP_HEAD);
}

/* A valid head: render the body, or refuse the path. */
static void
metrics_serve(struct mclient *c, const struct http_request *r)
{
	struct metrics *m = c->m;
	struct metrics_out out;

	if (!http_path_is(r, "/metrics")) {
		metrics_respond_error(c, 404, r->method);
		return;
	}
	metrics_out_init(&out, m->lim.max_body);
	m->render(m->render_arg, &out);
	if (out.overflow) {
		log_warnx("metrics: the body exceeds %zu bytes; answering 500",
		          m->lim.max_body);
		metrics_respond_error(c, 500, r->method);
	} else
		metrics_respond(c, 200, METRICS_CONTENT_TYPE, out.buf, out.len,
		                r->method == HTTP_HEAD);
	metrics_out_free(&out);
}

static void
metrics_read(struct mclient *c)
{
	struct http_request r;
	ssize_t n;

	n = recv(c->fd, c->in + c->inlen, sizeof c->in - c->inlen, 0);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		metrics_client_free(c); /* gone before asking anything */
		return;
	}
	c->inlen += (size_t)n;
	switch (http_parse(c->in, c->inlen, &r)) {
	case HTTP_MORE:
		return; /* http_parse never says MORE for a full buffer */
	case HTTP_ERROR:
		metrics_respond_error(c, r.status, r.method);
		return;
	case HTTP_OK:
		metrics_serve(c, &r);
		return;
	}
}

static void
metrics_write(struct mclient *c)
{
	ssize_t n = send(c->fd, c->out + c->outoff, c->outlen - c->outoff,
	                 MSG_NOSIGNAL);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n < 0) {
		metrics_client_free(c);
		return;
	}
	c->outoff += (size_t)n;
	if (c->outoff < c->outlen)
		return;
	if (shutdown(c->fd, SHUT_WR) < 0) {
		metrics_client_free(c);
		return;
	}
	c->phase = MC_LINGER;
	ev_io_stop(c->m->loop, &c->io);
	ev_io_set(&c->io, c->fd, EV_READ);
	ev_io_start(c->m->loop, &c->io);
}

/* After the reply: drop what the client still sends until it closes. */
static void
metrics_linger(struct mclient *c)
{
	char sink[4096];
	ssize_t n = recv(c->fd, sink, sizeof sink, 0);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n > 0 && (c->lingered += (size_t)n) <= METRICS_LINGER_MAX)
		return;
	metrics_client_free(c);
}

static void
metrics_client_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct mclient *c = w->data;
	struct metrics *m = c->m;

	(void)loop;
	(void)revents;
	switch (c->phase) {
	case MC_READ:
		metrics_read(c);
		break;
	case MC_WRITE:
		metrics_write(c);
		break;
	case MC_LINGER:
		metrics_linger(c);
		break;
	}
	if (m->head == NULL)
		ev_timer_stop(m->loop, &m->timer);
}

/* --- the server ----------------------------------------------------------- */

struct metrics *
metrics_open(struct ev_loop *loop, const char *addr,
             const struct metrics_limits *lim, metrics_render_fn render,
             void *arg, const char **why)
{
	struct metrics *m;
	int fd;

	if ((fd = metrics_listen(addr, why)) < 0)
		return NULL;
	m = xcalloc(1, sizeof *m);
	m->loop = loop;
	m->addr = xstrdup(addr);
	m->fd = fd;
	m->lim = *lim;
	if (m->lim.max_clients == 0)
		m->lim.max_clients = 1;
	m->render = render;
	m->render_arg = arg;
	ev_io_init(&m->accept_w, metrics_accept_cb, fd, EV_READ);
	m->accept_w.data = m;
	ev_io_start(loop, &m->accept_w);
	ev_init(&m->backoff, metrics_backoff_cb);
	m->backoff.data = m;
	ev_init(&m->timer, metrics_timer_cb);
	m->timer.data = m;
	return m;
}

void
metrics_close(struct metrics *m)
{
	if (m == NULL)
		return;
	while (m->head != NULL)
		metrics_client_free(m->head);
	ev_io_stop(m->loop, &m->accept_w);
	ev_timer_stop(m->loop, &m->backoff);
	ev_timer_stop(m->loop, &m->timer);
	if (close(m->fd) < 0 && errno != EINTR)
		log_warn("metrics: close %s", m->addr);
	free(m->addr);
	free(m);
}

const char *
metrics_addr(const struct metrics *m)
{
	return m->addr;
}

/* --- the exposition format ------------------------------------------------ */

void
metrics_out_init(struct metrics_out *o, size_t max)
{
	memset(o, 0, sizeof *o);
	o->max = max;
}

void
metrics_out_free(struct metrics_out *o)
{
	free(o->buf);
	memset(o, 0, sizeof *o);
}

/* Room for n more bytes, or overflow (and every later write is dropped). */
static bool
metrics_room(struct metrics_out *o, size_t n)
{
	size_t cap;

	if (o->overflow || n > o->max - o->len) {
		o->overflow = true;
		return false;
	}
	if (o->len + n <= o->cap)
		return true;
	cap = o->cap ? o->cap : 16384;
	while (cap < o->len + n)
		cap *= 2;
	if (cap > o->max)
		cap = o->max;
	o->buf = xrealloc(o->buf, cap);
	o->cap = cap;
	return true;
}

static void
metrics_put(struct metrics_out *o, const char *s, size_t n)
{
	if (metrics_room(o, n)) {
		memcpy(o->buf + o->len, s, n);
		o->len += n;
	}
}

static void
metrics_puts(struct metrics_out *o, const char *s)
{
	metrics_put(o, s, strlen(s));
}

/* s with backslash and newline escaped, and the quote too in a label. */
static void
metrics_escaped(struct metrics_out *o, const char *s, bool quote)
{
	const char *run = s;

	for (; *s != '\0'; s++) {
		const char *esc = *s == '\\'           ? "\\\\"
		                  : *s == '\n'         ? "\\n"
		                  : quote && *s == '"' ? "\\\""
		                                       : NULL;
		if (esc == NULL)
			continue;
		metrics_put(o, run, (size_t)(s - run));
		metrics_puts(o, esc);
		run = s + 1;
	}
	metrics_put(o, run, (size_t)(s - run));
}

void
metrics_family(struct metrics_out *o, const char *name, const char *type,
               const char *help)
{
	metrics_puts(o, "# HELP ");
	metrics_puts(o, name);
	metrics_puts(o, " ");
	metrics_escaped(o, help, false);
	metrics_puts(o, "\n# TYPE ");
	metrics_puts(o, name);
	metrics_puts(o, " ");
	metrics_puts(o, type);
	metrics_puts(o, "\n");
}

/* Go's ParseFloat reads all of these; whole numbers print without ".0". */
static void
metrics_value(struct metrics_out *o, double v)
{
	char num[40];

	if (isnan(v))
		strcpy(num, "NaN");
	else if (isinf(v))
		strcpy(num, v > 0 ? "+Inf" : "-Inf");
	else if (v > -1e15 && v < 1e15 && v == (double)(long long)v)
		snprintf(num, sizeof num, "%.0f", v);
	else {
		snprintf(num, sizeof num, "%.15g", v);
		if (strtod(num, NULL) != v)
			snprintf(num, sizeof num, "%.17g", v);
	}
	metrics_puts(o, num);
}

void
metrics_sample_labels(struct metrics_out *o, const char *name, double value,
                      const char *const *kv, size_t npairs)
{
	metrics_puts(o, name);
	for (size_t i = 0; i < npairs; i++) {
		metrics_puts(o, i == 0 ? "{" : ",");
		metrics_puts(o, kv[2 * i]);
		metrics_puts(o, "=\"");
		metrics_escaped(o, kv[2 * i + 1], true);
		metrics_puts(o, "\"");
	}
	metrics_puts(o, npairs > 0 ? "} " : " ");
	metrics_value(o, value);
	metrics_puts(o, "\n");
}

void
metrics_sample(struct metrics_out *o, const char *name, double value, ...)
{
	const char *kv[16];
	size_t n = 0;
	va_list ap;

	va_start(ap, value);
	while (n < 16 && (kv[n] = va_arg(ap, const char *)) != NULL) {
		if ((kv[n + 1] = va_arg(ap, const char *)) == NULL)
			break; /* a key without a value: dropped */
		n += 2;
	}
	va_end(ap);
	metrics_sample_labels(o, name, value, kv, n / 2);
}
