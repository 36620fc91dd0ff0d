/*
 * agentsup/agent.h - libagentsup: the worker's side of the agentsup protocol.
 *
 * A worker started by agentsupd finds its channel at AGENTSUP_FD. This
 * library says hello, reports readiness and heartbeats with progress, and
 * tells the worker when it is asked to drain. It never blocks unless a call
 * says so (and then takes a deadline), starts no threads and keeps no global
 * state: embed agentsup_fd() in your own poll/epoll/libev loop and call
 * agentsup_process() when it is readable.
 *
 * Unsupervised (no AGENTSUP_FD), agentsup_open() still returns a handle and
 * every call succeeds doing nothing, so the same binary runs standalone.
 *
 *	struct agentsup *a = agentsup_open("c");
 *	agentsup_ready(a);
 *	while (!agentsup_draining(a, NULL)) {
 *		do_some_work();
 *		struct agentsup_progress p = {.steps = ++n, .set =
 *AGENTSUP_STEPS}; agentsup_beat(a, &p, "working"); agentsup_wait(a,
 *agentsup_beat_interval_ms(a));
 *	}
 *	agentsup_close(a);
 *
 * Every int-returning call gives 0 on success and -1 with errno set on
 * failure. EPIPE means agentsupd has gone away.
 */
#ifndef AGENTSUP_AGENT_H
#define AGENTSUP_AGENT_H

#include <stdint.h>

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

/* What the agent has done so far, sent with a heartbeat. */
struct agentsup_progress {
	uint64_t steps;
	uint64_t tokens;
	double cost;
	const char *state; /* a short word: "thinking", "calling tool"... */
	unsigned set;      /* AGENTSUP_STEPS | ... */
};

/* Connect from the environment and send hello (lang may be NULL).
 * NULL only when out of memory. */
struct agentsup *agentsup_open(const char *lang);

/* Close the channel and free the handle; NULL is fine. */
void agentsup_close(struct agentsup *);

/* 1 when running under agentsupd, 0 standalone. */
int agentsup_supervised(const struct agentsup *);

/* The descriptor to poll for input, or -1 when unsupervised. */
int agentsup_fd(const struct agentsup *);

/* Tell agentsupd the worker is ready (needed when it has start_timeout). */
int agentsup_ready(struct agentsup *);

/* One heartbeat, with optional progress and a status line (both may be
 * NULL). Never blocks: -1 with EAGAIN if agentsupd is not reading. */
int agentsup_beat(struct agentsup *, const struct agentsup_progress *,
                  const char *status);

/* Read and handle whatever agentsupd has sent (welcome, drain). Never
 * blocks. -1 with EPIPE once agentsupd is gone, EPROTO on a bad frame. */
int agentsup_process(struct agentsup *);

/* Wait up to timeout_ms for input and process it; returns early on a
 * drain. Unsupervised, this just sleeps. */
int agentsup_wait(struct agentsup *, int timeout_ms);

/* 1 when asked to drain; *deadline_ms (if not NULL) is how long it has. */
int agentsup_draining(const struct agentsup *, uint64_t *deadline_ms);

/* The expected heartbeat interval (0 when not monitored), and a sensible
 * interval to beat at: a third of it, or 1000 ms when not monitored. */
uint64_t agentsup_heartbeat_ms(const struct agentsup *);
int agentsup_beat_interval_ms(const struct agentsup *);

/* Who we are: AGENTSUP_NAME / AGENTSUP_PATH, "" when unsupervised. */
const char *agentsup_name(const struct agentsup *);
const char *agentsup_path(const struct agentsup *);
unsigned long agentsup_incarnation(const struct agentsup *);

#ifdef __cplusplus
}
#endif
#endif
