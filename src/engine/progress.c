/*
 * progress.c - stalls, loops and recycling (DESIGN §10), pure.
 *
 * Everything lives in the worker's struct pwatch, allocated for workers
 * watched for stalls or loops when they come up, for others at their
 * first beat that carries progress: a beat costs O(1) and allocates
 * nothing after that. The stall window is lazy, as the shell's heartbeat
 * deadline is: a beat that moves progress only moves `moved_at`; the one
 * wake-up the worker asked for judges, when it comes, whether the window
 * really passed, and asks again if not (one heap operation per window, not
 * per beat). Loops are found with three run counters over the last three
 * states: the steps in a row whose state equals the one 1, 2 or 3 steps
 * back.
 */
#include <string.h>

#include "engine.h"
#include "progress.h"
#include "util.h"

#define PROGRESS_RETRY_MS 1000 /* a recycle waits this for a busy parent */

static const struct pwatch progress_none;

const struct pwatch *
progress_pwatch(const struct node *n)
{
	return n->pwatch != NULL ? n->pwatch : &progress_none;
}

struct pwatch *
progress_watch(struct node *n)
{
	if (n->pwatch == NULL) {
		n->pwatch = xcalloc(1, sizeof *n->pwatch);
		n->pwatch->moved_at = n->running_since;
	}
	return n->pwatch;
}

/* Whether its spec asks for stall or loop judging. */
static bool
progress_watched(const struct node *n)
{
	return n->spec->pol->stall_timeout_ms != 0 ||
	       n->spec->pol->loop_repeats != 0;
}

void
progress_wake_by(struct tree *t, struct node *n, uint64_t at)
{
	if (at != 0 && (n->wake_at == 0 || at < n->wake_at))
		wake_set(t, n, at);
}

uint64_t
progress_stalled_ms(const struct node *n, uint64_t now)
{
	const struct pwatch *w = progress_pwatch(n);

	if (w->stalled_at == 0 || n->state != NODE_RUNNING)
		return 0;
	return now > w->moved_at ? now - w->moved_at : 0;
}

/* FNV-1a over the state as reported, all of it: states that differ only
 * after the 64 bytes kept are different steps, not a loop. */
uint64_t
progress_state_hash(const char *s, size_t len)
{
	return util_fnv(UTIL_FNV_BASIS, s, len);
}

/* The engine saw it fail: the shell stops it and reports this reason. */
static void
progress_fail(struct tree *t, struct node *n, enum reason_kind why)
{
	n->ending = true;
	wake_set(t, n, 0);
	tree_push(t, (struct action){.kind = ACT_FAIL,
	                             .node = n,
	                             .reason = {.kind = why},
	                             .code = STOP_PLAIN});
}

/* Beats came, progress did not move for stall_timeout: nudge it. */
static void
progress_stalled(struct tree *t, struct node *n)
{
	struct pwatch *w = progress_watch(n);
	uint64_t idle = t->now - w->moved_at;

	w->stalled_at = t->now;
	tree_event_value(t, EE_STALLED, n,
	                 (struct reason){.kind = REASON_STALL}, idle);
	tree_push(t, (struct action){.kind = ACT_NUDGE,
	                             .node = n,
	                             .reason = {.kind = REASON_STALL},
	                             .value = idle});
}

static uint64_t
progress_earliest(uint64_t a, uint64_t b)
{
	if (a == 0 || b == 0)
		return a ? a : b;
	return a < b ? a : b;
}

/* When the worker wants judging next, from its stall window, its wall
 * budget and its recycling; never a time already past, which would wake
 * it again within the same tick (an overdue wall limit: the next tick). */
static uint64_t
progress_due(const struct node *n, uint64_t now)
{
	const struct spec *s = n->spec;
	const struct pwatch *w = progress_pwatch(n);
	uint64_t due = budget_wall_due(n), at = 0;

	if (due != 0 && due <= now)
		due = now + 1;
	if (s->pol->stall_timeout_ms && w->stalled_at)
		at = w->stalled_at + s->pol->stall_grace_ms;
	else if (s->pol->stall_timeout_ms &&
	         w->moved_at + s->pol->stall_timeout_ms > now)
		at = w->moved_at + s->pol->stall_timeout_ms;
	due = progress_earliest(due, at);
	at = s->pol->recycle_after_ms
	             ? n->running_since + s->pol->recycle_after_ms
	             : 0;
	return progress_earliest(due, at > now ? at : 0);
}

void
progress_rearm(struct tree *t, struct node *n)
{
	if (n->state != NODE_RUNNING || n->ending)
		return;
	if (n->pwatch == NULL && progress_watched(n))
		progress_watch(n); /* a reload asked for stalls or loops */
	progress_wake_by(t, n, progress_due(n, t->now));
}

/* What settings a reload took away decided nothing more: a loop watch
 * turned off forgets its suspicion (status said LOOPING for ever), a stall
 * no longer overdue under a longer stall_timeout is no stall (it was
 * stopped at the old one's grace). */
static void
progress_reconsider(struct tree *t, struct node *n)
{
	const struct spec *s = n->spec;
	struct pwatch *w = n->pwatch;

	if (w == NULL)
		return;
	if (s->pol->loop_repeats == 0)
		w->loop_period = w->loop_steps = 0;
	if (w->stalled_at != 0 &&
	    (s->pol->stall_timeout_ms == 0 ||
	     t->now < w->moved_at + s->pol->stall_timeout_ms))
		w->stalled_at = 0;
}

void
progress_reloaded(struct tree *t, struct node *n)
{
	uint64_t every = n->spec->pol->recycle_after_ms;

	progress_reconsider(t, n);
	progress_rearm(t, n);
	/* progress_due asks for no time already past (the retry of a
	 * recycle a busy parent put off depends on it): overdue, next tick */
	if (every != 0 && n->state == NODE_RUNNING && !n->ending &&
	    t->now >= n->running_since + every)
		progress_wake_by(t, n, t->now + 1);
}

void
progress_running(struct tree *t, struct node *n)
{
	struct pwatch *w = n->pwatch;

	if (w == NULL && progress_watched(n))
		w = progress_watch(n);
	if (w != NULL) {
		w->moved_at = t->now;
		w->beat_at = 0;
		w->stalled_at = 0;
	}
	progress_rearm(t, n);
}

/* Drained and started again after recycle_after: not a failure. */
static bool
progress_recycle(struct tree *t, struct node *n)
{
	struct node *s = n->parent;

	if (t->shutting_down || t->draining || n->held)
		return false;
	if (s->state != NODE_RUNNING || s->super->job.kind != JOB_NONE ||
	    s->in_run) {
		progress_wake_by(t, n, t->now + PROGRESS_RETRY_MS);
		return false;
	}
	tree_event(t, EE_RECYCLED, n, (struct reason){0});
	sup_restart_child(t, n);
	return true;
}

/* The stall window: nudge once it passed with beats in it, stop once the
 * grace passed too. False when the worker is being stopped. */
static bool
progress_judge_stall(struct tree *t, struct node *n)
{
	const struct spec *s = n->spec;
	struct pwatch *w;

	if (s->pol->stall_timeout_ms == 0)
		return true;
	w = progress_watch(n);
	if (w->stalled_at != 0) {
		if (t->now < w->stalled_at + s->pol->stall_grace_ms)
			return true;
		progress_fail(t, n, REASON_STALL);
		return false;
	}
	/* no beat since it last moved: a long call or a hang, which the
	 * heartbeat deadline judges; the next beat judges the stall */
	if (t->now >= w->moved_at + s->pol->stall_timeout_ms &&
	    w->beat_at > w->moved_at)
		progress_stalled(t, n);
	return true;
}

void
progress_woken(struct tree *t, struct node *n)
{
	if (n->ending)
		return;
	if (!progress_judge_stall(t, n) || !budget_woken_judge(t, n))
		return;
	if (n->spec->pol->recycle_after_ms &&
	    t->now >= n->running_since + n->spec->pol->recycle_after_ms &&
	    progress_recycle(t, n))
		return;
	progress_rearm(t, n);
}

/* A loop is suspected: nudge it (once) and count the steps that follow. */
static void
progress_looping(struct tree *t, struct node *n, unsigned period)
{
	struct pwatch *w = progress_watch(n);

	w->loop_period = period;
	w->loop_steps = 0;
	tree_event_value(t, EE_LOOPING, n, (struct reason){.kind = REASON_LOOP},
	                 period);
	tree_push(t, (struct action){.kind = ACT_NUDGE,
	                             .node = n,
	                             .reason = {.kind = REASON_LOOP},
	                             .value = period});
}

/* One step whose state hashes to h: the run counters, then the verdict. */
static void
progress_step(struct tree *t, struct node *n, uint64_t h)
{
	struct pwatch *w = progress_watch(n);
	unsigned reps = n->spec->pol->loop_repeats;

	for (unsigned p = 1; p <= 3; p++)
		w->run[p - 1] = w->nring >= p && w->ring[p - 1] == h
		                        ? w->run[p - 1] + 1
		                        : 0;
	w->ring[2] = w->ring[1];
	w->ring[1] = w->ring[0];
	w->ring[0] = h;
	if (w->nring < 3)
		w->nring++;
	if (w->loop_period != 0) {
		if (w->run[w->loop_period - 1] == 0) {
			w->loop_period = 0; /* it broke out */
		} else if (++w->loop_steps >= reps) {
			progress_fail(t, n, REASON_LOOP);
		}
		return;
	}
	/* the same state N times: N - 1 repeats of period 1; a cycle of
	 * period p repeated N times: p (N - 1) states equal p steps back */
	for (unsigned p = 1; p <= 3; p++)
		if (w->run[p - 1] >= p * (reps - 1)) {
			progress_looping(t, n, p);
			return;
		}
}

void
progress_beat(struct tree *t, struct node *n, const struct progress *u,
              unsigned fields, bool moved)
{
	struct pwatch *w;
	const struct spec *s = n->spec;

	if (fields & (PROGRESS_TOKENS | PROGRESS_STEPS | PROGRESS_COST))
		budget_beat(t, n, u, fields);
	if (n->state != NODE_RUNNING || n->ending)
		return;
	if (fields == 0 && n->pwatch == NULL && !progress_watched(n))
		return; /* a bare beat of an unwatched worker: nothing kept */
	w = progress_watch(n);
	w->beat_at = t->now;
	if (node_circuit(n)->state == CIRCUIT_HALF_OPEN)
		progress_rearm(t,
		               n); /* the probe's wake may have replaced ours */
	if (moved) {
		w->moved_at = t->now;
		w->stalled_at = 0;
	} else if (s->pol->stall_timeout_ms && w->stalled_at == 0 &&
	           t->now >= w->moved_at + s->pol->stall_timeout_ms) {
		progress_stalled(t, n); /* overdue, and this beat proves it */
		progress_wake_by(t, n, t->now + s->pol->stall_grace_ms);
	}
	if ((fields & PROGRESS_STEPS) && u->steps > w->steps) {
		/* this incarnation's state only: a carried one was never
		 * reported by it, and would repeat on every step */
		if (s->pol->loop_repeats && n->progress->state[0] != '\0' &&
		    !(n->progress->carried & PROGRESS_STATE))
			progress_step(t, n, n->progress->state_hash);
	}
	if (fields & PROGRESS_STEPS)
		w->steps = u->steps;
}
