/*
 * channel_out.c - what the daemon sends a worker over its channel: welcome,
 * checkpoint_ok, drain, nudge and spawn answers, each one frame, queued
 * (bounded) when the worker is not reading. A checkpoint_ok replaces one
 * still queued (the newest acknowledges the older ones); the others are
 * answers or orders that cannot be merged, and are few: one welcome and at
 * most one drain a run, a nudge per stall or loop, a spawned per spawn.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "agentsup/wire.h"
#include "channel_int.h"
#include "util.h"

/* The worker closed its end: sending is over, but what it sent before is
 * still there to read (a last heartbeat). Not a protocol error. */
void
channel_wclose(struct channel *c)
{
	c->wclosed = true;
	channel_out_free(c);
}

void
channel_out_free(struct channel *c)
{
	if (c->out == NULL)
		return;
	ev_io_stop(c->loop, &c->out->wio);
	free(c->out->buf);
	free(c->out);
	c->out = NULL;
}

/* Take the n bytes at off out of the queue (sent, or an ack replaced);
 * the queue goes once empty. An ack the cut reaches has begun to go out:
 * it can no longer be replaced. */
static void
channel_out_cut(struct channel *c, size_t off, size_t n)
{
	struct channel_out *o = c->out;

	memmove(o->buf + off, o->buf + off + n, o->len - off - n);
	o->len -= n;
	if (o->ack_len != 0 && o->ack_at >= off + n)
		o->ack_at -= n;
	else if (o->ack_len != 0 && o->ack_at + o->ack_len > off)
		o->ack_len = 0;
	if (o->len == 0) {
		channel_out_free(c);
		c->outmax = 0;
	}
}

/* The socket takes more: send what was queued. */
static void
channel_write_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	struct channel *c = io->data;
	struct channel_out *o = c->out;
	ssize_t n;

	(void)loop;
	(void)revents;
	n = send(c->io.fd, o->buf, o->len, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n < 0) {
		/* the worker closed its end: what it sent is still read, and
		 * the reap tells the rest */
		channel_wclose(c);
		return;
	}
	channel_out_cut(c, 0, (size_t)n);
}

/* Queue the n bytes at p the socket did not take, and wait for room. */
static void
channel_queue(struct channel *c, const void *p, size_t n)
{
	struct channel_out *o = c->out;

	if (o == NULL) {
		o = c->out = xcalloc(1, sizeof *o);
		ev_io_init(&o->wio, channel_write_cb, c->io.fd, EV_WRITE);
		o->wio.data = c;
		ev_io_start(c->loop, &o->wio);
	}
	o->buf = xrealloc(o->buf, o->len + n);
	memcpy(o->buf + o->len, p, n);
	o->len += n;
}

/* Send one encoded frame, queueing what the socket does not take now. */
static int
channel_send(struct channel *c, const msgpack_sbuffer *sb)
{
	size_t queued = c->out != NULL ? c->out->len : 0;
	ssize_t n = 0;

	if (c->io.fd < 0 || c->wclosed)
		return -1;
	if (queued == 0) {
		n = send(c->io.fd, sb->data, sb->size,
		         MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno != EAGAIN && errno != EINTR) {
			channel_wclose(c);
			return -1;
		}
		if (n < 0)
			n = 0;
		if ((size_t)n == sb->size)
			return 0;
	}
	if (queued + sb->size - (size_t)n > CHANNEL_MAX_OUT + c->outmax) {
		channel_fail(c, "not reading its socket");
		return -1;
	}
	channel_queue(c, sb->data + n, sb->size - (size_t)n);
	return 0;
}

/* Send a checkpoint_ok. An ack of seq N acknowledges every seq up to N,
 * so one still waiting whole in the queue is taken out for it, and the
 * queue holds at most one: acks alone never cut off a worker that does not
 * read (a synchronous agent between two LLM calls). */
static int
channel_send_ack(struct channel *c, const msgpack_sbuffer *sb)
{
	size_t at;

	if (c->out != NULL && c->out->ack_len != 0)
		channel_out_cut(c, c->out->ack_at, c->out->ack_len);
	at = c->out != NULL ? c->out->len : 0;
	if (channel_send(c, sb) < 0)
		return -1;
	if (c->out != NULL && c->out->len - at == sb->size) {
		c->out->ack_at = at; /* queued whole: none of it went out */
		c->out->ack_len = sb->size;
	}
	return 0;
}

/* Begin a frame to the worker: a map of nkeys whose first is {t: type}. */
static void
channel_begin(msgpack_sbuffer *sb, msgpack_packer *pk, size_t nkeys,
              const char *type)
{
	msgpack_sbuffer_init(sb);
	msgpack_packer_init(pk, sb, msgpack_sbuffer_write);
	agentsup_wire_begin(sb);
	msgpack_pack_map(pk, nkeys);
	agentsup_wire_kv_str(pk, AGENTSUP_F_T, type);
}

/* End the frame being packed in sb and send it (with send, for an ack). */
static int
channel_finish(struct channel *c, msgpack_sbuffer *sb, size_t max_frame,
               int (*send)(struct channel *, const msgpack_sbuffer *))
{
	int rc = -1;

	if (agentsup_wire_end(sb, max_frame) == 0)
		rc = send(c, sb);
	msgpack_sbuffer_destroy(sb);
	return rc;
}

int
channel_send_welcome(struct channel *c, const struct welcome *w,
                     size_t max_frame)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;

	channel_begin(&sb, &pk, w->checkpoint != NULL ? 13 : 11,
	              AGENTSUP_T_WELCOME);
	agentsup_wire_kv_uint(&pk, "v", AGENTSUP_PROTOCOL_VERSION);
	agentsup_wire_kv_str(&pk, "name", w->name);
	agentsup_wire_kv_str(&pk, "path", w->path);
	agentsup_wire_kv_uint(&pk, "incarnation", w->incarnation);
	agentsup_wire_kv_uint(&pk, "heartbeat_ms", w->heartbeat_ms);
	agentsup_wire_kv_uint(&pk, "timeout_ms", w->timeout_ms);
	agentsup_wire_kv_uint(&pk, "restarts", w->restarts);
	agentsup_wire_kv_str(&pk, "last_reason", w->last_reason);
	agentsup_wire_kv_uint(&pk, "max_frame", w->max_frame);
	agentsup_wire_kv_uint(&pk, AGENTSUP_F_CHECKPOINT_MAX,
	                      w->checkpoint_max);
	if (w->checkpoint != NULL) {
		/* a big checkpoint may wait in the queue: allow it there */
		c->outmax = w->checkpoint_len;
		agentsup_wire_kv_uint(&pk, AGENTSUP_F_CHECKPOINT_SEQ,
		                      w->checkpoint_seq);
		msgpack_pack_str(&pk, strlen(AGENTSUP_F_CHECKPOINT));
		msgpack_pack_str_body(&pk, AGENTSUP_F_CHECKPOINT,
		                      strlen(AGENTSUP_F_CHECKPOINT));
		msgpack_pack_bin(&pk, w->checkpoint_len);
		msgpack_pack_bin_body(&pk, w->checkpoint, w->checkpoint_len);
	}
	return channel_finish(c, &sb, max_frame, channel_send);
}

int
channel_send_checkpoint_ok(struct channel *c, uint64_t seq)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;

	if (!c->hello || c->io.fd < 0)
		return -1;
	channel_begin(&sb, &pk, 2, AGENTSUP_T_CHECKPOINT_OK);
	agentsup_wire_kv_uint(&pk, AGENTSUP_F_SEQ, seq);
	return channel_finish(c, &sb, CHANNEL_MAX_OUT, channel_send_ack);
}

int
channel_send_drain(struct channel *c, uint64_t deadline_ms, size_t max_frame)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;

	if (!c->hello || c->io.fd < 0)
		return -1;
	channel_begin(&sb, &pk, 2, AGENTSUP_T_DRAIN);
	agentsup_wire_kv_uint(&pk, "deadline_ms", deadline_ms);
	return channel_finish(c, &sb, max_frame, channel_send);
}

int
channel_send_nudge(struct channel *c, const struct nudge *n, size_t max_frame)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;

	if (!c->hello || c->io.fd < 0)
		return -1;
	channel_begin(&sb, &pk,
	              2 + (n->idle_ms != 0) + (n->state != NULL) +
	                      (n->period != 0),
	              AGENTSUP_T_NUDGE);
	agentsup_wire_kv_str(&pk, AGENTSUP_F_REASON, n->reason);
	if (n->idle_ms != 0)
		agentsup_wire_kv_uint(&pk, AGENTSUP_F_IDLE_MS, n->idle_ms);
	if (n->state != NULL)
		agentsup_wire_kv_str(&pk, AGENTSUP_F_STATE, n->state);
	if (n->period != 0)
		agentsup_wire_kv_uint(&pk, AGENTSUP_F_PERIOD, n->period);
	return channel_finish(c, &sb, max_frame, channel_send);
}

int
channel_send_spawned(struct channel *c, const struct spawn_answer *a,
                     size_t max_frame)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;

	channel_begin(&sb, &pk,
	              2 + (a->name != NULL) + (a->error != NULL) +
	                      a->has_count + (a->name != NULL),
	              AGENTSUP_T_SPAWNED);
	agentsup_wire_pack_str(&pk, AGENTSUP_F_OK);
	a->ok ? msgpack_pack_true(&pk) : msgpack_pack_false(&pk);
	if (a->name != NULL) {
		agentsup_wire_kv_str(&pk, AGENTSUP_F_NAME, a->name);
		agentsup_wire_pack_str(&pk, AGENTSUP_F_CREATED);
		a->created ? msgpack_pack_true(&pk) : msgpack_pack_false(&pk);
	}
	if (a->error != NULL)
		agentsup_wire_kv_str(&pk, AGENTSUP_F_ERROR, a->error);
	if (a->has_count)
		agentsup_wire_kv_uint(&pk, AGENTSUP_F_COUNT, a->count);
	return channel_finish(c, &sb, max_frame, channel_send);
}
