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

/* {t: spawn} decoded: copies valid during the callback. */
struct spawn_request {
	const char *sup;
	const char *key; /* NULL: none given */
	char **args;     /* NULL-terminated, maybe empty */
	char **env;      /* "K=V", NULL-terminated, maybe empty */
	const char *bad; /* set: why it cannot be taken (a NUL byte...) */
};

/* {t: spawned}: the answer to one spawn, in the order of the spawns. */
struct spawn_answer {
	bool ok, created;
	const char *name;  /* "SUP/KEY", or NULL */
	const char *error; /* when !ok */
	bool has_count;
	uint64_t count; /* with max_children: the live children */
};

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
	/* end of file; cut: bytes of a frame begun and never ended */
	void (*closed)(void *arg, size_t cut);
	/* a message type we do not know: ignored, reported once a channel */
	void (*unknown)(void *arg, const char *type, size_t len);
	/* {t: extend, ms}: a long call ahead (DESIGN §10) */
	void (*extend)(void *arg, uint64_t ms);
	/* {t: checkpoint}: data (len bytes) lives until the callback returns */
	void (*checkpoint)(void *arg, uint64_t seq, const void *data,
	                   size_t len);
	/* the largest frame the worker may send, asked at every read */
	size_t (*max_frame)(void *arg);
	/* {t: spawn}: answer with channel_send_spawned (NULL: refused) */
	void (*spawn)(void *arg, const struct spawn_request *);
	/* {t: result}: a task's result, at most CHANNEL_RESULT_MAX bytes */
	void (*result)(void *arg, const void *data, size_t len);
};

#define CHANNEL_RESULT_MAX (64u << 10)

/* What welcome tells the worker. */
struct welcome {
	const char *name, *path;
	unsigned long incarnation;
	uint64_t heartbeat_ms, timeout_ms;
	unsigned restarts;       /* consecutive failures before this start */
	const char *last_reason; /* why it last stopped ("-" if never) */
	uint64_t max_frame;      /* the largest frame it may send */
	uint64_t checkpoint_max; /* its largest checkpoint, 0: off */
	const void *checkpoint;  /* its checkpoint, NULL when none */
	size_t checkpoint_len;
	uint64_t checkpoint_seq;
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
int channel_send_spawned(struct channel *, const struct spawn_answer *,
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
/* {t: checkpoint_ok, seq}: that checkpoint is stored. */
int channel_send_checkpoint_ok(struct channel *, uint64_t seq);
bool channel_said_hello(const struct channel *);
bool channel_is_open(const struct channel *);

#endif
