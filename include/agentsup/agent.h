/*
 * agentsup/agent.h - libagentsup: the worker's side of the agentsup protocol.
 *
 * A worker started by agentsupd finds its channel at AGENTSUP_FD. This
 * library says hello, reports readiness and heartbeats with progress, tells
 * the worker when it is asked to drain or nudged, stores checkpoints and
 * hands back the last one after a restart. It starts no threads and keeps
 * no global state: embed agentsup_fd() in your own poll/epoll/libev loop
 * (POLLIN, and POLLOUT while agentsup_want_write() says so) and call
 * agentsup_process() when it is ready. Only calls that say so block, and
 * each takes a deadline. A handle is for one thread at a time.
 *
 * Once connected, the channel is close-on-exec and AGENTSUP_FD is removed
 * from the environment, so nothing the worker runs can speak for it. (The
 * other AGENTSUP_* variables stay: they only describe the worker.) Call
 * agentsup_open() before starting threads: it changes the environment.
 *
 * Unsupervised (no AGENTSUP_FD, or one that names no unnamed Unix stream
 * socket as agentsupd's socketpair is: a number inherited without its
 * descriptor and reused), agentsup_open() still returns a handle and
 * every call succeeds doing nothing, so the same binary runs standalone.
 *
 * Every int-returning call gives 0 on success and -1 with errno set on
 * failure. EPIPE means agentsupd has gone away; EAGAIN that agentsupd is not
 * reading and the output buffer is full (the frame was not queued: nothing
 * is ever sent in part); EMSGSIZE a frame over what agentsupd accepts.
 */
// clang-format off
/*
 * Usage:
 *
 *	struct agentsup *a = agentsup_open("c");
 *	struct agentsup_progress p = {.set = AGENTSUP_STEPS};
 *	size_t len;
 *	const void *saved;
 *
 *	agentsup_await_welcome(a, 5000);
 *	if ((saved = agentsup_restored_checkpoint(a, &len)) != NULL)
 *		resume_from(saved, len);
 *	agentsup_ready(a);
 *	while (!agentsup_draining(a, NULL)) {
 *		do_some_work();
 *		p.steps++;
 *		agentsup_beat(a, &p, "working");
 *		agentsup_checkpoint(a, state, state_len);
 *		agentsup_wait(a, agentsup_beat_interval_ms(a));
 *	}
 *	agentsup_exit_reason(a, AGENTSUP_DECLARED_DONE, 0, NULL);
 *	agentsup_flush(a, 1000);
 *	agentsup_close(a);
 */
// clang-format on
#ifndef AGENTSUP_AGENT_H
#define AGENTSUP_AGENT_H

#include <stddef.h>
#include <stdint.h>

#include "agentsup/protocol.h"

#ifdef __cplusplus
extern "C" {
#endif

struct agentsup;

/* Which fields of struct agentsup_progress are set. */
enum {
	AGENTSUP_STEPS = 1 << 0,
	AGENTSUP_TOKENS = 1 << 1,
	AGENTSUP_COST = 1 << 2,
	AGENTSUP_STATE = 1 << 3,
};

/* What the agent has done so far in this incarnation, sent with a beat. */
struct agentsup_progress {
	uint64_t steps;
	uint64_t tokens;
	double cost;       /* finite and >= 0, or agentsupd refuses it */
	const char *state; /* a short word or a hash of the current step */
	unsigned set;      /* AGENTSUP_STEPS | ... */
};

/* A nudge from agentsupd: progress has stalled, or the agent loops. Strings
 * are NUL-terminated and valid only during the callback. */
struct agentsup_nudge {
	const char *reason; /* AGENTSUP_NUDGE_STALL or AGENTSUP_NUDGE_LOOP */
	uint64_t idle_ms;   /* stall: how long progress has not moved */
	const char *state;  /* loop: the repeated state ("" if none) */
	uint64_t period;    /* loop: 1, 2 or 3 */
};

/* The answer to agentsup_spawn(), in the order the spawns were sent. */
struct agentsup_spawned {
	int ok;
	int created;       /* 0: the key was pending or running already */
	const char *name;  /* the child, e.g. "pool/job-7" ("" if none) */
	const char *error; /* when !ok, e.g. AGENTSUP_SPAWN_MAX_CHILDREN */
	uint64_t count;    /* with max_children: the current count */
};

typedef void (*agentsup_nudge_fn)(void *arg, const struct agentsup_nudge *);
typedef void (*agentsup_spawned_fn)(void *arg, const struct agentsup_spawned *);

/* Connect from the environment and send hello (lang may be NULL). Never
 * blocks. NULL only when out of memory. */
struct agentsup *agentsup_open(const char *lang);

/* Close the channel and free the handle; NULL is fine. Whatever is still
 * queued is sent if the socket takes it now: agentsup_flush() first to wait. */
void agentsup_close(struct agentsup *);

/* 1 when running under agentsupd, 0 standalone. */
int agentsup_supervised(const struct agentsup *);

/* The descriptor to poll for input, or -1 when unsupervised. */
int agentsup_fd(const struct agentsup *);

/* 1 while output waits for the socket: poll for POLLOUT too. */
int agentsup_want_write(const struct agentsup *);

/* Read and handle whatever agentsupd has sent (welcome, drain, nudge,
 * checkpoint_ok, spawned) and send what is queued. Never blocks. -1 with
 * EPIPE once agentsupd is gone, EPROTO on a bad frame (also one a send
 * read before). */
int agentsup_process(struct agentsup *);

/* Wait up to timeout_ms for input and process it; returns early (0) on a
 * drain, and when a signal handler ran (EINTR), so that a flag it set is
 * seen at once. Unsupervised, this just sleeps (as long, or until a
 * handler runs). */
int agentsup_wait(struct agentsup *, int timeout_ms);

/* Wait up to timeout_ms until everything queued is sent (ETIMEDOUT). */
int agentsup_flush(struct agentsup *, int timeout_ms);

/* Wait up to timeout_ms for welcome, which carries the restored facts
 * below (ETIMEDOUT). Unsupervised: returns 0 at once. */
int agentsup_await_welcome(struct agentsup *, int timeout_ms);

/* Tell agentsupd the worker is ready (needed when it has start_timeout). */
int agentsup_ready(struct agentsup *);

/* One heartbeat, with optional progress and a status line (both may be
 * NULL). Never blocks. -1 EINVAL for a cost that is not finite and >= 0
 * (agentsupd stops a worker that sends one). */
int agentsup_beat(struct agentsup *, const struct agentsup_progress *,
                  const char *status);

/* Declare why the worker is about to exit (AGENTSUP_DECLARED_*; -1 EINVAL
 * for any other), with a retry delay for rate_limited (0: none) and a
 * detail (NULL: none). Holds for an exit within 5 s; agentsup_flush()
 * before exiting. */
int agentsup_exit_reason(struct agentsup *, const char *reason,
                         uint64_t retry_after_ms, const char *detail);

/* A long call ahead: push the heartbeat deadline out by ms, once, at most
 * the worker's extend_max (say it again for the next long call). */
int agentsup_busy(struct agentsup *, uint64_t ms);

/* Store a checkpoint: sent with the next sequence number, which it returns
 * (> 0), or -1. The numbers go on from the restored one, which welcome
 * says: before welcome, -1 with EAGAIN (agentsup_await_welcome first, or
 * agentsup_process until agentsup_welcomed). agentsupd acknowledges it once
 * stored (durable, with a state store). Larger than the worker's
 * checkpoint.max (welcome says it), -1 with EMSGSIZE; with `checkpoint:
 * none`, ENOTSUP: nothing is sent (agentsupd would stop the worker). */
int64_t agentsup_checkpoint(struct agentsup *, const void *data, size_t len);

/* The highest checkpoint sequence number agentsupd has acknowledged. */
uint64_t agentsup_checkpoint_acked(const struct agentsup *);

/* A task's result (at most AGENTSUP_RESULT_MAX, 64 KiB: larger is -1 with
 * EMSGSIZE, nothing sent), sent before exiting 0. Before welcome
 * one too big for the default frame limit is refused with EAGAIN (welcome
 * raises the limit to fit it: agentsup_await_welcome first). */
int agentsup_result(struct agentsup *, const void *data, size_t len);

/* Ask for a dynamic child of supervisor sup (this worker must be in its
 * spawn_from). key may be NULL; argv and env (strings "K=V") are
 * NULL-terminated and may be NULL. The answer comes to the spawned
 * callback. */
int agentsup_spawn(struct agentsup *, const char *sup, const char *key,
                   const char *const *argv, const char *const *env);

/* Callbacks, run from agentsup_process() and from any call that sends (it
 * handles what has already come, so that checkpoint_acked follows without
 * a process); NULL removes one. A callback's own sends read nothing. */
void agentsup_on_nudge(struct agentsup *, agentsup_nudge_fn, void *arg);
void agentsup_on_spawned(struct agentsup *, agentsup_spawned_fn, void *arg);

/* 1 when asked to drain; *deadline_ms (if not NULL) is how long it has. */
int agentsup_draining(const struct agentsup *, uint64_t *deadline_ms);

/* The expected heartbeat interval (0 when not monitored), and a sensible
 * interval to beat at: a third of it, or 1000 ms when not monitored. */
uint64_t agentsup_heartbeat_ms(const struct agentsup *);
int agentsup_beat_interval_ms(const struct agentsup *);

/* Who we are: AGENTSUP_NAME / AGENTSUP_PATH; "" when unsupervised, as in
 * a process the worker runs (it inherits those variables, not the
 * channel). A child the worker forks after agentsup_open shares the
 * worker's channel: only the worker itself may use its handle. */
const char *agentsup_name(const struct agentsup *);
const char *agentsup_path(const struct agentsup *);
unsigned long agentsup_incarnation(const struct agentsup *);

/* What welcome restored: 1 once it has come. */
int agentsup_welcomed(const struct agentsup *);
/* Consecutive failures before this start, and the last one's reason. */
unsigned long agentsup_restarts(const struct agentsup *);
const char *agentsup_last_reason(const struct agentsup *);
/* The last stored checkpoint (NULL when none) and its sequence number. */
const void *agentsup_restored_checkpoint(const struct agentsup *, size_t *len);
uint64_t agentsup_restored_seq(const struct agentsup *);

#ifdef __cplusplus
}
#endif
#endif
