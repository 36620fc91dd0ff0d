/*
 * channel.h - the daemon's end of one worker's socketpair: frames in and
 * out. A leaf: it validates what the worker says and reports it up through
 * callbacks; it never touches the tree, the session or the clock.
 */
#ifndef AGENTSUP_CHANNEL_H
#define AGENTSUP_CHANNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ev.h>
#include <msgpack.h>

#include "tree.h"

/* What the channel reports up. Each is called from within a read; after
 * `failed` or `closed` the channel reads no more (the struct stays). */
struct channel_ops {
	void (*hello)(void *arg);
	void (*ready)(void *arg);
	/* fields: PROGRESS_* bits of what this beat carried */
	void (*beat)(void *arg, const struct progress *, unsigned fields);
	void (*failed)(void *arg, const char *why); /* broke the protocol */
	/* {t: exit}: what the worker says of its coming exit */
	void (*declare)(void *arg, const struct declaration *);
	void (*closed)(void *arg); /* end of file */
	/* a message type we do not know: ignored, reported once a channel */
	void (*unknown)(void *arg, const char *type, size_t len);
	/* {t: extend, ms}: a long call ahead (DESIGN §10) */
	void (*extend)(void *arg, uint64_t ms);
	/* the largest frame the worker may send, asked at every read */
	size_t (*max_frame)(void *arg);
};

/* What welcome tells the worker. */
struct welcome {
	const char *name, *path;
	unsigned long incarnation;
	uint64_t heartbeat_ms, timeout_ms;
	unsigned restarts;       /* consecutive failures before this start */
	const char *last_reason; /* why it last stopped ("-" if never) */
	uint64_t max_frame;      /* the largest frame it may send */
};

struct channel;

/* zone: scratch for decoded frames, cleared after each (may be shared). */
struct channel *channel_open(struct ev_loop *, int fd,
                             const struct channel_ops *, void *arg,
                             msgpack_zone *zone);
void channel_close(struct channel *);
/* Read everything that already waits, up to max_bytes: before a deadline
 * is judged, and once the worker has exited (its last words). */
void channel_read_pending(struct channel *, size_t max_bytes);
int channel_send_welcome(struct channel *, const struct welcome *,
                         size_t max_frame);
int channel_send_drain(struct channel *, uint64_t deadline_ms,
                       size_t max_frame);
/* {t: nudge}: reason "stall" (idle_ms) or "loop" (state, period). */
struct nudge {
	const char *reason;
	uint64_t idle_ms;  /* 0: not sent */
	const char *state; /* NULL: not sent */
	unsigned period;   /* 0: not sent */
};
int channel_send_nudge(struct channel *, const struct nudge *,
                       size_t max_frame);
bool channel_said_hello(const struct channel *);
bool channel_is_open(const struct channel *);

#endif
