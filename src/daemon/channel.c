/*
 * channel.c - the daemon's end of one worker's socketpair.
 *
 * Frames are decoded straight out of the daemon's shared read buffer; only a
 * frame split across reads is copied into a per-channel buffer, which is freed
 * again once empty, so an idle worker costs no buffer at all. A heartbeat is
 * O(1): it stores the time and the progress; the deadline timer re-arms
 * itself lazily (libev's "many timeouts" advice), never per beat.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agentsup/wire.h"
#include "channel.h"
#include "daemon.h"
#include "clock.h"
#include "log.h"
#include "util.h"

#define CHANNEL_MAX_OUT 4096 /* we send two small frames: bound the queue */

struct channel {
	struct worker *w;
	int fd;
	ev_io io;
	uint8_t *part; /* a frame split across reads */
	size_t partlen;
	uint8_t *out; /* unsent bytes (the worker is not reading) */
	size_t outlen;
	ev_io wio;
	bool hello;
	bool warned_unknown;
	uint64_t beats;
	uint64_t last_seq;
	struct progress *progress; /* allocated at the first progress seen */
};

static void channel_fail(struct channel *, const char *, ...)
        __attribute__((format(printf, 2, 3)));

bool
channel_said_hello(const struct channel *c)
{
	return c->hello;
}

uint64_t
channel_beats(const struct channel *c)
{
	return c->beats;
}

const struct progress *
channel_progress(const struct channel *c)
{
	return c->progress;
}

/* Stop reading and writing; the struct stays for status until the reap. */
static void
channel_shut(struct channel *c)
{
	struct ev_loop *loop = c->w->d->loop;

	if (c->fd < 0)
		return;
	ev_io_stop(loop, &c->io);
	ev_io_stop(loop, &c->wio);
	close(c->fd);
	c->fd = -1;
	free(c->part);
	free(c->out);
	c->part = c->out = NULL;
	c->partlen = c->outlen = 0;
}

void
channel_close(struct channel *c)
{
	channel_shut(c);
	free(c->progress);
	free(c);
}

/* The worker broke the protocol: record why, cut it off, stop it. */
static void
channel_fail(struct channel *c, const char *fmt, ...)
{
	struct worker *w = c->w;
	char why[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	events_emit(&w->d->events, EV_PROTOCOL_ERROR, w->node->path, w->pid,
	            "protocol", w->node->starts - 1, "%s", why);
	channel_shut(c);
	proc_hang(w, (struct reason){REASON_PROTOCOL, 0});
}

static void
write_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	struct channel *c = io->data;
	ssize_t n;

	(void)revents;
	n = send(c->fd, c->out, c->outlen, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n < 0) {
		/* the worker closed its end: the reap will tell the rest */
		channel_shut(c);
		return;
	}
	memmove(c->out, c->out + n, c->outlen - (size_t)n);
	c->outlen -= (size_t)n;
	if (c->outlen == 0) {
		ev_io_stop(loop, &c->wio);
		free(c->out);
		c->out = NULL;
	}
}

/* Send one encoded frame, queueing what the socket does not take now. */
static int
channel_send(struct channel *c, const msgpack_sbuffer *sb)
{
	ssize_t n = 0;

	if (c->fd < 0)
		return -1;
	if (c->outlen == 0) {
		n = send(c->fd, sb->data, sb->size,
		         MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			return -1;
		if (n < 0)
			n = 0;
		if ((size_t)n == sb->size)
			return 0;
	}
	if (c->outlen + sb->size - (size_t)n > CHANNEL_MAX_OUT) {
		channel_fail(c, "not reading its socket");
		return -1;
	}
	c->out = xrealloc(c->out, c->outlen + sb->size - (size_t)n);
	memcpy(c->out + c->outlen, sb->data + n, sb->size - (size_t)n);
	c->outlen += sb->size - (size_t)n;
	ev_io_start(c->w->d->loop, &c->wio);
	return 0;
}

static int
send_welcome(struct channel *c)
{
	struct daemon *d = c->w->d;
	const struct node *n = c->w->node;
	msgpack_packer pk;

	msgpack_packer_init(&pk, &d->sbuf, msgpack_sbuffer_write);
	agentsup_wire_begin(&d->sbuf);
	msgpack_pack_map(&pk, 7);
	agentsup_wire_kv_str(&pk, "t", AGENTSUP_T_WELCOME);
	agentsup_wire_kv_uint(&pk, "v", AGENTSUP_PROTOCOL_VERSION);
	agentsup_wire_kv_str(&pk, "name", n->spec->name);
	agentsup_wire_kv_str(&pk, "path", n->path);
	agentsup_wire_kv_uint(&pk, "incarnation", n->starts - 1);
	agentsup_wire_kv_uint(&pk, "heartbeat_ms", n->spec->heartbeat_ms);
	agentsup_wire_kv_uint(&pk, "timeout_ms", n->spec->heartbeat_timeout_ms);
	if (agentsup_wire_end(&d->sbuf, d->cfg->settings.max_frame) < 0)
		return -1;
	return channel_send(c, &d->sbuf);
}

int
channel_send_drain(struct channel *c, uint64_t deadline_ms)
{
	struct daemon *d = c->w->d;
	msgpack_packer pk;

	if (!c->hello || c->fd < 0)
		return -1;
	msgpack_packer_init(&pk, &d->sbuf, msgpack_sbuffer_write);
	agentsup_wire_begin(&d->sbuf);
	msgpack_pack_map(&pk, 2);
	agentsup_wire_kv_str(&pk, "t", AGENTSUP_T_DRAIN);
	agentsup_wire_kv_uint(&pk, "deadline_ms", deadline_ms);
	if (agentsup_wire_end(&d->sbuf, d->cfg->settings.max_frame) < 0)
		return -1;
	return channel_send(c, &d->sbuf);
}

static bool
is_uint(const msgpack_object *o)
{
	return o->type == MSGPACK_OBJECT_POSITIVE_INTEGER;
}

static void
copy_str(char *dst, size_t len, const msgpack_object *o)
{
	size_t n = o->via.str.size < len - 1 ? o->via.str.size : len - 1;

	if (n > 0) /* an empty msgpack string may carry a NULL pointer */
		memcpy(dst, o->via.str.ptr, n);
	dst[n] = '\0';
}

/* hb's optional progress {steps, tokens, cost, state}; false if mistyped. */
static bool
take_progress(struct channel *c, const msgpack_object *p)
{
	const msgpack_object *steps = agentsup_wire_get(p, "steps");
	const msgpack_object *tokens = agentsup_wire_get(p, "tokens");
	const msgpack_object *cost = agentsup_wire_get(p, "cost");
	const msgpack_object *state = agentsup_wire_get(p, "state");
	struct progress *pr;

	if (p->type != MSGPACK_OBJECT_MAP || (steps && !is_uint(steps)) ||
	    (tokens && !is_uint(tokens)) ||
	    (cost && cost->type != MSGPACK_OBJECT_FLOAT64 &&
	     cost->type != MSGPACK_OBJECT_FLOAT32 && !is_uint(cost)) ||
	    (state && state->type != MSGPACK_OBJECT_STR))
		return false;
	if (c->progress == NULL)
		c->progress = xcalloc(1, sizeof *c->progress);
	pr = c->progress;
	if (steps) {
		pr->steps = steps->via.u64;
		pr->has_steps = true;
	}
	if (tokens) {
		pr->tokens = tokens->via.u64;
		pr->has_tokens = true;
	}
	if (cost) {
		pr->cost =
		        is_uint(cost) ? (double)cost->via.u64 : cost->via.f64;
		pr->has_cost = true;
	}
	if (state)
		copy_str(pr->state, sizeof pr->state, state);
	return true;
}

static void
on_hello(struct channel *c, const msgpack_object *m)
{
	const msgpack_object *v = agentsup_wire_get(m, "v");

	if (c->hello) {
		channel_fail(c, "a second hello");
		return;
	}
	if (v == NULL || !is_uint(v)) {
		channel_fail(c, "hello without a version \"v\"");
		return;
	}
	if (v->via.u64 != AGENTSUP_PROTOCOL_VERSION) {
		channel_fail(c,
		             "protocol version %llu (this agentsupd speaks %d)",
		             (unsigned long long)v->via.u64,
		             AGENTSUP_PROTOCOL_VERSION);
		return;
	}
	c->hello = true;
	if (send_welcome(c) < 0 && c->fd >= 0)
		channel_fail(c, "cannot send welcome");
}

static void
on_ready(struct channel *c)
{
	struct worker *w = c->w;
	struct node *n = w->node;
	struct daemon *d = w->d;

	if (n->state != NODE_STARTING)
		return; /* running at spawn already, or a repeat: harmless */
	events_emit(&d->events, EV_READY, n->path, w->pid, NULL, n->starts - 1,
	            "after %llums",
	            (unsigned long long)(clock_now_ms() - w->spawned_ms));
	w->last_beat_us = clock_now_us();
	proc_set_deadline(
	        w, n->spec->heartbeat_ms ? DEADLINE_HEARTBEAT : DEADLINE_NONE,
	        n->spec->heartbeat_timeout_ms);
	tree_ready(d->tree, n, w->last_beat_us / 1000);
}

static void
on_hb(struct channel *c, const msgpack_object *m)
{
	const msgpack_object *seq = agentsup_wire_get(m, "seq");
	const msgpack_object *prog = agentsup_wire_get(m, "progress");
	const msgpack_object *status = agentsup_wire_get(m, "status");

	if ((seq && !is_uint(seq)) ||
	    (status && status->type != MSGPACK_OBJECT_STR)) {
		channel_fail(c,
		             "hb: seq must be an unsigned integer and status "
		             "a string");
		return;
	}
	if (prog && !take_progress(c, prog)) {
		channel_fail(c, "hb: progress must be a map of steps, tokens "
		                "(integers), cost (number), state (string)");
		return;
	}
	if (status) {
		if (c->progress == NULL)
			c->progress = xcalloc(1, sizeof *c->progress);
		copy_str(c->progress->status, sizeof c->progress->status,
		         status);
	}
	c->beats++;
	if (seq)
		c->last_seq = seq->via.u64;
	/* a worker still waiting for ready is judged by start_timeout */
	if (c->w->node->state != NODE_STARTING)
		c->w->last_beat_us = clock_now_us();
}

static void
dispatch(struct channel *c, const struct agentsup_frame *f)
{
	if (!c->hello && !agentsup_wire_is(f, AGENTSUP_T_HELLO)) {
		channel_fail(c, "\"%.*s\" before hello", (int)f->type_len,
		             f->type);
		return;
	}
	if (agentsup_wire_is(f, AGENTSUP_T_HB))
		on_hb(c, &f->map);
	else if (agentsup_wire_is(f, AGENTSUP_T_HELLO))
		on_hello(c, &f->map);
	else if (agentsup_wire_is(f, AGENTSUP_T_READY))
		on_ready(c);
	else if (!c->warned_unknown) {
		/* once per channel: a chatty worker cannot flood the log */
		c->warned_unknown = true;
		log_warnx("worker %s: ignoring message \"%.*s\"",
		          c->w->node->path,
		          (int)(f->type_len > 32 ? 32 : f->type_len), f->type);
	}
}

/* Decode every whole frame in buf; return the bytes used, or -1 if cut. */
static ssize_t
decode_all(struct channel *c, const uint8_t *buf, size_t len)
{
	struct daemon *d = c->w->d;
	struct agentsup_frame f;
	size_t used = 0;
	int r;

	while (c->fd >= 0) {
		r = agentsup_wire_decode(buf + used, len - used,
		                         d->cfg->settings.max_frame, &d->zone,
		                         &f);
		if (r == AGENTSUP_WIRE_MORE)
			break;
		if (r != AGENTSUP_WIRE_OK) {
			msgpack_zone_clear(&d->zone);
			channel_fail(c, "%s", agentsup_wire_strerror(r));
			return -1;
		}
		dispatch(c, &f);
		msgpack_zone_clear(&d->zone);
		used += f.size;
	}
	return c->fd >= 0 ? (ssize_t)used : -1;
}

/* Read once; decode what arrived. false when the channel is gone. */
static bool
channel_read_once(struct channel *c)
{
	struct daemon *d = c->w->d;
	size_t max = AGENTSUP_FRAME_HEADER + d->cfg->settings.max_frame;
	uint8_t *buf = d->rbuf;
	ssize_t n, used;
	size_t len;

	if (c->partlen > 0) {
		/* complete the split frame first, never beyond one frame */
		memcpy(d->rbuf, c->part, c->partlen);
	}
	n = recv(c->fd, d->rbuf + c->partlen, d->rbuf_size - c->partlen,
	         MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return false;
	if (n <= 0) {
		/* EOF or a reset: the worker closed its end; the reap or
		 * its heartbeat deadline decides what that means */
		channel_shut(c);
		return false;
	}
	len = c->partlen + (size_t)n;
	if ((used = decode_all(c, buf, len)) < 0)
		return false;
	free(c->part);
	c->part = NULL;
	c->partlen = len - (size_t)used;
	if (c->partlen > 0) {
		if (c->partlen > max) { /* cannot happen: decode refuses */
			channel_fail(c, "frame too long");
			return false;
		}
		c->part = xmalloc(c->partlen);
		memcpy(c->part, buf + used, c->partlen);
	}
	return true;
}

static void
read_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	struct channel *c = io->data;
	struct daemon *d = c->w->d;

	(void)loop;
	(void)revents;
	channel_read_once(c);
	daemon_run_actions(d);
}

/* Read what already waits, before a deadline is judged. Bounded. */
void
channel_read_pending(struct channel *c)
{
	for (int i = 0; i < 16 && c->fd >= 0; i++)
		if (!channel_read_once(c))
			break;
}

struct channel *
channel_open(struct worker *w, int fd)
{
	struct channel *c = xcalloc(1, sizeof *c);

	/* every read and write says MSG_DONTWAIT: no O_NONBLOCK needed */
	c->w = w;
	c->fd = fd;
	ev_io_init(&c->io, read_cb, fd, EV_READ);
	c->io.data = c;
	ev_io_init(&c->wio, write_cb, fd, EV_WRITE);
	c->wio.data = c;
	ev_io_start(w->d->loop, &c->io);
	return c;
}
