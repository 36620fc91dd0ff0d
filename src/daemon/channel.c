/*
 * channel.c - the daemon's end of one worker's socketpair.
 *
 * Frames are read into a buffer on this file's stack and decoded there; only
 * a frame split across reads is kept, in a buffer sized from its header and
 * checked against the limit in force at every read, and freed once used, so
 * an idle worker costs no buffer at all and a limit changed by a reload can
 * never overflow anything. A heartbeat is O(1) and allocates nothing. What
 * the daemon sends to the worker is in channel_out.c.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agentsup/wire.h"
#include "channel_int.h"
#include "chanread.h"
#include "progress.h"
#include "util.h"

bool
channel_said_hello(const struct channel *c)
{
	return c->hello;
}

bool
channel_is_open(const struct channel *c)
{
	return c->io.fd >= 0 && !c->wclosed;
}

/* Stop reading and writing; the struct stays until its owner closes it. */
static void
channel_shut(struct channel *c)
{
	if (c->io.fd < 0)
		return;
	ev_io_stop(c->loop, &c->io);
	channel_out_free(c);
	close(c->io.fd);
	ev_io_set(&c->io, -1, EV_READ);
	agentsup_reader_free(&c->reader);
}

void
channel_close(struct channel *c)
{
	size_t cut;

	if (c == NULL)
		return;
	/* a frame begun and never ended, closed by the reap before any end of
	 * file (a descendant holds the socket too): said as at the end */
	if (c->io.fd >= 0 && (cut = agentsup_reader_pending(&c->reader)) > 0)
		c->ops->closed(c->arg, cut);
	channel_shut(c);
	free(c);
}

void
channel_fail(struct channel *c, const char *fmt, ...)
{
	char why[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	channel_shut(c);
	c->ops->failed(c->arg, why);
}

/* --- messages in ---------------------------------------------------------- */

/* A msgpack string as a C string; NULL when it holds a NUL byte. */
static char *
dup_str(const msgpack_object *o)
{
	char *s;

	if (o->via.str.size > 0 &&
	    memchr(o->via.str.ptr, '\0', o->via.str.size) != NULL)
		return NULL;
	s = xmalloc(o->via.str.size + 1);
	if (o->via.str.size > 0)
		memcpy(s, o->via.str.ptr, o->via.str.size);
	s[o->via.str.size] = '\0';
	return s;
}

static void
free_strv(char **v)
{
	for (size_t i = 0; v != NULL && v[i] != NULL; i++)
		free(v[i]);
	free(v);
}

/* spawn's args (array of str) and env (map str -> str), typed already by
 * agentsup_wire_check_fields; bounded by the frame. */
static const char *
take_inputs(const msgpack_object *args, const msgpack_object *env,
            struct spawn_request *r)
{
	uint32_t na = args ? args->via.array.size : 0;
	uint32_t ne = env ? env->via.map.size : 0;

	r->args = xcalloc(na + 1, sizeof(char *));
	r->env = xcalloc(ne + 1, sizeof(char *));
	for (uint32_t i = 0; i < na; i++)
		if ((r->args[i] = dup_str(&args->via.array.ptr[i])) == NULL)
			return "args: a NUL byte in an argument";
	for (uint32_t i = 0; i < ne; i++) {
		char *k = dup_str(&env->via.map.ptr[i].key);
		char *v = dup_str(&env->via.map.ptr[i].val);
		if (k != NULL && v != NULL && strchr(k, '=') == NULL)
			r->env[i] = xasprintf("%s=%s", k, v);
		free(k);
		free(v);
		if (r->env[i] == NULL)
			return "env: a NUL byte or '=' in a name or value";
	}
	return NULL;
}

/* {t: spawn, sup, key?, args?, env?}: reported up, answered by the owner. */
static void
on_spawn_msg(struct channel *c, const msgpack_object *m)
{
	const msgpack_object *sup = agentsup_wire_get(m, AGENTSUP_F_SUP);
	const msgpack_object *key = agentsup_wire_get(m, AGENTSUP_F_KEY);
	struct spawn_request r = {0};
	char *s = NULL, *k = NULL;

	if (sup == NULL || (s = dup_str(sup)) == NULL)
		r.bad = "sup: a NUL byte in the name";
	else if (key != NULL && (k = dup_str(key)) == NULL)
		r.bad = "key: a NUL byte in the key";
	else
		r.bad = take_inputs(agentsup_wire_get(m, AGENTSUP_F_ARGS),
		                    agentsup_wire_get(m, AGENTSUP_F_ENV), &r);
	r.sup = s ? s : "";
	r.key = k;
	if (c->ops->spawn != NULL)
		c->ops->spawn(c->arg, &r);
	free(s);
	free(k);
	free_strv(r.args);
	free_strv(r.env);
}

/* {t: result, data}: at most CHANNEL_RESULT_MAX bytes. */
static void
on_result_msg(struct channel *c, const msgpack_object *m)
{
	const msgpack_object *d = agentsup_wire_get(m, AGENTSUP_F_DATA);
	const void *p = d->type == MSGPACK_OBJECT_BIN
	                        ? d->via.bin.ptr
	                        : (const void *)d->via.str.ptr;
	size_t n = d->type == MSGPACK_OBJECT_BIN ? d->via.bin.size
	                                         : d->via.str.size;

	if (n > CHANNEL_RESULT_MAX) {
		channel_fail(c, "result: %zu bytes, more than %u", n,
		             CHANNEL_RESULT_MAX);
		return;
	}
	if (c->ops->result != NULL)
		c->ops->result(c->arg, p, n);
}

static bool
is_uint(const msgpack_object *o)
{
	return o->type == MSGPACK_OBJECT_POSITIVE_INTEGER;
}

/* A worker's string kept in len - 1 bytes; one cut short is cut before a
 * UTF-8 character, never inside it: it goes back to workers (the loop
 * nudge's state) whose clients decode strictly. */
static void
copy_str(char *dst, size_t len, const msgpack_object *o)
{
	const unsigned char *s = (const unsigned char *)o->via.str.ptr;
	size_t n = o->via.str.size < len - 1 ? o->via.str.size : len - 1;

	if (n < o->via.str.size)
		while (n > 0 && (s[n] & 0xC0) == 0x80)
			n--; /* s[n] continues the character before it */
	if (n > 0) /* an empty msgpack string may carry a NULL pointer */
		memcpy(dst, s, n);
	dst[n] = '\0';
}

/* hb's optional progress {steps, tokens, cost, state}; false if mistyped. */
static bool
take_progress(const msgpack_object *p, struct progress *pr, unsigned *fields)
{
	const msgpack_object *steps = agentsup_wire_get(p, "steps");
	const msgpack_object *tokens = agentsup_wire_get(p, "tokens");
	const msgpack_object *cost = agentsup_wire_get(p, "cost");
	const msgpack_object *state = agentsup_wire_get(p, "state");

	if (p->type != MSGPACK_OBJECT_MAP || (steps && !is_uint(steps)) ||
	    (tokens && !is_uint(tokens)) ||
	    (cost && cost->type != MSGPACK_OBJECT_FLOAT64 &&
	     cost->type != MSGPACK_OBJECT_FLOAT32 && !is_uint(cost)) ||
	    (state && state->type != MSGPACK_OBJECT_STR))
		return false;
	if (steps) {
		pr->steps = steps->via.u64;
		*fields |= PROGRESS_STEPS;
	}
	if (tokens) {
		pr->tokens = tokens->via.u64;
		*fields |= PROGRESS_TOKENS;
	}
	if (cost) {
		pr->cost =
		        is_uint(cost) ? (double)cost->via.u64 : cost->via.f64;
		*fields |= PROGRESS_COST;
	}
	if (state) {
		copy_str(pr->state, sizeof pr->state, state);
		pr->state_hash = progress_state_hash(state->via.str.ptr,
		                                     state->via.str.size);
		*fields |= PROGRESS_STATE;
	}
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
	c->ops->hello(c->arg);
}

static void
on_hb(struct channel *c, const msgpack_object *m)
{
	const msgpack_object *seq = agentsup_wire_get(m, "seq");
	const msgpack_object *prog = agentsup_wire_get(m, "progress");
	const msgpack_object *status = agentsup_wire_get(m, "status");
	struct progress upd;
	unsigned fields = 0;

	if ((seq && !is_uint(seq)) ||
	    (status && status->type != MSGPACK_OBJECT_STR)) {
		channel_fail(c,
		             "hb: seq must be an unsigned integer and status "
		             "a string");
		return;
	}
	if (prog && !take_progress(prog, &upd, &fields)) {
		channel_fail(c, "hb: progress must be a map of steps, tokens "
		                "(integers), cost (number), state (string)");
		return;
	}
	if (status) {
		copy_str(upd.status, sizeof upd.status, status);
		fields |= PROGRESS_STATUS;
	}
	c->ops->beat(c->arg, &upd, fields);
}

/* {t: exit, reason, retry_after_ms?, detail?}: why the coming exit. */
static void
on_exit_msg(struct channel *c, const msgpack_object *m)
{
	const msgpack_object *reason = agentsup_wire_get(m, AGENTSUP_F_REASON);
	const msgpack_object *retry =
	        agentsup_wire_get(m, AGENTSUP_F_RETRY_AFTER_MS);
	const msgpack_object *detail = agentsup_wire_get(m, AGENTSUP_F_DETAIL);
	struct declaration d = {0};

	if (reason == NULL ||
	    (d.kind = declared_parse(reason->via.str.ptr,
	                             reason->via.str.size)) == DECLARED_NONE) {
		channel_fail(c, "exit: reason must be done, transient, "
		                "rate_limited, permanent or budget");
		return;
	}
	if (retry != NULL)
		d.retry_after_ms = retry->via.u64;
	if (detail != NULL)
		copy_str(d.detail, sizeof d.detail, detail);
	c->ops->declare(c->arg, &d);
}

/* {t: checkpoint, seq, data}: fields already checked (both required). */
static void
on_checkpoint(struct channel *c, const msgpack_object *m)
{
	const msgpack_object *seq = agentsup_wire_get(m, AGENTSUP_F_SEQ);
	const msgpack_object *data = agentsup_wire_get(m, AGENTSUP_F_DATA);

	c->ops->checkpoint(c->arg, seq->via.u64, data->via.bin.ptr,
	                   data->via.bin.size);
}

static void
dispatch(struct channel *c, const struct agentsup_frame *f)
{
	if (!c->hello && !agentsup_wire_is(f, AGENTSUP_T_HELLO)) {
		channel_fail(c, "\"%.*s\" before hello",
		             (int)(f->type_len > 32 ? 32 : f->type_len),
		             f->type);
		return;
	}
	if (agentsup_wire_is(f, AGENTSUP_T_HB))
		on_hb(c, &f->map);
	else if (agentsup_wire_is(f, AGENTSUP_T_HELLO))
		on_hello(c, &f->map);
	else if (agentsup_wire_is(f, AGENTSUP_T_READY))
		c->ops->ready(c->arg);
	else if (agentsup_wire_is(f, AGENTSUP_T_EXIT))
		on_exit_msg(c, &f->map);
	else if (agentsup_wire_is(f, AGENTSUP_T_SPAWN))
		on_spawn_msg(c, &f->map);
	else if (agentsup_wire_is(f, AGENTSUP_T_RESULT))
		on_result_msg(c, &f->map);
	else if (agentsup_wire_is(f, AGENTSUP_T_EXTEND) && c->ops->extend)
		c->ops->extend(
		        c->arg,
		        agentsup_wire_get(&f->map, AGENTSUP_F_MS)->via.u64);
	else if (agentsup_wire_is(f, AGENTSUP_T_CHECKPOINT))
		on_checkpoint(c, &f->map);
	else if (!c->warned_unknown) {
		/* once per channel: a chatty worker cannot flood the log */
		c->warned_unknown = true;
		c->ops->unknown(c->arg, f->type, f->type_len);
	}
}

/* --- reading -------------------------------------------------------------- */

/* One whole frame from the reader: its fields checked, then handled. */
static int
channel_on_frame(void *arg, const struct agentsup_frame *f)
{
	struct channel *c = arg;
	const char *why;

	if (agentsup_wire_check_fields(f, &why) != 0) {
		channel_fail(c, "%s", why);
		return 1;
	}
	dispatch(c, f);
	return c->io.fd < 0;
}

/* A bare heartbeat, told by its bytes (chanread.c): what on_hb does with
 * {t: hb, seq}. */
static int
channel_on_bare_hb(void *arg)
{
	struct channel *c = arg;

	c->ops->beat(c->arg, NULL, 0); /* no fields: nothing to read */
	return c->io.fd < 0;
}

/* Read once; false when nothing more can be read now. */
static bool
channel_read_once(struct channel *c)
{
	int r;

	if (c->io.fd < 0)
		return false;
	r = chanread_recv(&c->reader, c->io.fd, c->ops->max_frame(c->arg),
	                  c->zone, c->hello, channel_on_bare_hb,
	                  channel_on_frame, c);
	if (c->io.fd < 0 || r == AGENTSUP_READ_AGAIN ||
	    (r == AGENTSUP_READ_ERRNO && errno == EINTR))
		return false;
	if (r == 0 || r == AGENTSUP_READ_ERRNO) {
		/* EOF or a reset: the worker closed its end; the reap or its
		 * heartbeat deadline decides what that means */
		size_t cut = agentsup_reader_pending(&c->reader);
		channel_shut(c);
		c->ops->closed(c->arg, cut);
		return false;
	}
	if (r < 0) {
		channel_fail(c, "%s", agentsup_wire_strerror(r));
		return false;
	}
	return true;
}

static void
read_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	(void)loop;
	(void)revents;
	channel_read_once(io->data);
}

void
channel_read_pending(struct channel *c, size_t max_bytes)
{
	/* each read takes at most one chunk: bound the reads, not a guess */
	for (size_t i = 0; i <= max_bytes / AGENTSUP_READ_CHUNK; i++)
		if (!channel_read_once(c))
			break;
}

struct channel *
channel_open(struct ev_loop *loop, int fd, const struct channel_ops *ops,
             void *arg, msgpack_zone *zone)
{
	struct channel *c = xcalloc(1, sizeof *c);

	/* every read and write says MSG_DONTWAIT: no O_NONBLOCK needed */
	c->loop = loop;
	c->ops = ops;
	c->arg = arg;
	c->zone = zone;
	agentsup_reader_init(&c->reader);
	ev_io_init(&c->io, read_cb, fd, EV_READ);
	c->io.data = c;
	ev_io_start(loop, &c->io);
	return c;
}
