/*
 * channel_int.h - one worker channel's state, shared by channel.c (reading,
 * messages in) and channel_out.c (frames out). Nothing else includes it.
 */
#ifndef AGENTSUP_CHANNEL_INT_H
#define AGENTSUP_CHANNEL_INT_H

#include "agentsup/wire.h"
#include "channel.h"

#define CHANNEL_MAX_OUT 4096 /* we send small frames: bound them */

/* Bytes the worker's socket did not take yet, and the watcher that waits
 * for room: allocated at the first frame that does not go out whole, freed
 * once the queue drains (most workers never need one: 80 bytes each). */
struct channel_out {
	ev_io wio;
	uint8_t *buf;
	size_t len;
	/* a checkpoint_ok still whole in buf (ack_len 0: none): the next one
	 * replaces it, as it says all this one says */
	size_t ack_at, ack_len;
};

struct channel {
	struct ev_loop *loop;
	const struct channel_ops *ops;
	void *arg;
	msgpack_zone *zone;
	ev_io io;                      /* io.fd: the socket, -1 once shut */
	struct agentsup_reader reader; /* a frame split across reads */
	struct channel_out *out;       /* NULL: nothing waits */
	size_t outmax; /* the queue's bound: more while a welcome is queued */
	bool hello;
	bool warned_unknown;
	bool wclosed; /* the worker closed its end: nothing more can be sent */
};

/* The worker broke the protocol: cut it off, then tell the owner why. */
void channel_fail(struct channel *, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));
/* The worker closed its end: sending is over, but what it sent before is
 * still there to read (a last heartbeat). Not a protocol error. */
void channel_wclose(struct channel *);
/* Drop what waits to be sent, and its watcher. */
void channel_out_free(struct channel *);

#endif
