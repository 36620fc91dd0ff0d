/*
 * strategy.c - what a supervisor does about a child that went down without
 * being asked, in the order of DESIGN §9:
 *   1. the worker's declared reason (done, rate_limited, permanent, budget);
 *   2. the child's circuit, which may quarantine it (no intensity stamp);
 *   3. the supervisor's intensity (give up and escalate);
 *   4. the strategy picks the children to restart, and the restart waits
 *      the failed child's backoff (the stops happen at once).
 * A child that fails while its supervisor is busy is marked pending and
 * handled when the job ends, unless the job was about to stop it anyway.
 */
#include <errno.h>
#include <stddef.h>

#include "backoff.h"
#include "circuit.h"
#include "dynamic.h"
#include "engine.h"
#include "intensity.h"

/* OTP: a supervisor past its intensity ends `shutdown`, a normal end to
 * the parent of a transient one: not restarted, not counted. */
static bool
gave_up_normally(const struct node *c)
{
	return c->spec->pol->restart == RESTART_TRANSIENT;
}

bool
strategy_left_stopped(const struct node *c)
{
	return gave_up_normally(c) && !c->spec->pol->significant;
}

static bool
should_restart(const struct node *c, bool abnormal)
{
	switch (c->spec->pol->restart) {
	case RESTART_PERMANENT:
		return true;
	case RESTART_TRANSIENT:
		return abnormal;
	case RESTART_TEMPORARY:
		break;
	}
	return false;
}

/* Whether the exit was abnormal, as the worker declared it: `done` is a
 * normal end whatever the status, `transient` and `rate_limited` are
 * failures even with status 0 (it could not finish its work). */
static bool
declared_abnormal(enum declared_kind dk, struct reason r)
{
	if (dk == DECLARED_DONE)
		return false;
	if (dk == DECLARED_TRANSIENT || dk == DECLARED_RATE_LIMITED)
		return true;
	return reason_abnormal(r);
}

/* The supervisor gives up: it stops its children and fails upward. */
static void
give_up(struct tree *t, struct node *s, struct reason r, bool significant)
{
	tree_push(t, (struct action){.kind = ACT_EVENT,
	                             .node = s,
	                             .event = EE_GAVE_UP,
	                             .reason = r,
	                             .code = significant});
	sup_begin_stop(t, s, OUTCOME_GAVE_UP, STOP_PLAIN);
}

/* Down for good (failed, exhausted, quarantined): the supervisor and the
 * siblings go on, unless the child is significant. */
static void
park(struct tree *t, struct node *s, struct node *c, enum node_state st,
     enum engine_event e, uint64_t wake_at)
{
	worker_park(t, c, st, wake_at);
	tree_event_value(t, e, c, c->last, wake_at);
	dynamic_child_ended(t, c, true); /* a task: a dead letter */
	/* a task that declared done as its budget ran out finished its work:
	 * a clean end, even of a significant one */
	if (c->spec->pol->significant &&
	    !(c->task != NULL && dynamic_finished(c)))
		give_up(t, s, c->last, true);
	else
		sup_child_settled(t, s);
}

/* How long the restart waits: the backoff, at least a rate limit's
 * retry_after (capped), and at least `initial` after a spawn failure so
 * an exhausted machine is not hammered. */
static uint64_t
restart_delay(struct tree *t, struct node *c, struct reason r, unsigned n)
{
	const struct backoff_spec *b = &c->spec->pol->backoff;
	uint64_t delay = backoff_delay(t, b, n), floor = 0;

	if (c->exit_declared == DECLARED_RATE_LIMITED) {
		floor = tree_declaration(c)->retry_after_ms;
		if (floor > b->retry_after_max_ms)
			floor = b->retry_after_max_ms;
	} else if (reason_spawn_exhausted(r)) {
		floor = b->initial_ms ? b->initial_ms : 100;
	}
	return delay > floor ? delay : floor;
}

/* Steps 3 and 4 for one failed child (s has no job). */
static void
restart_decision(struct tree *t, struct node *s, struct node *c,
                 struct reason r, bool counts, unsigned n)
{
	uint64_t delay = node_is_worker(c) ? restart_delay(t, c, r, n) : 0;

	if (counts && !intensity_add(s, t->now)) {
		dynamic_child_ended(t, c, true); /* spent the intensity */
		give_up(t, s, r, false);
		return;
	}
	/* value: the restart this is, fixed now (an immediate one's spawn
	 * counts before the shell reads the node) */
	tree_event_value(t, EE_RESTARTING, c, r, c->starts);
	if (delay > 0) {
		c->backoff_until = t->now + delay;
		tree_event_value(t, EE_BACKOFF, c, r, delay);
	}
	switch (s->spec->pol->strategy) {
	case ONE_FOR_ONE:
		if (delay == 0)
			node_start(t, c);
		else
			worker_park(t, c, NODE_BACKOFF, c->backoff_until);
		break;
	case ONE_FOR_ALL:
	case REST_FOR_ONE:
		if (delay > 0)
			worker_park(t, c, NODE_BACKOFF,
			            0); /* the job starts it */
		sup_begin_job(
		        t, s,
		        (struct job){.kind = JOB_RESTART,
		                     .phase = PHASE_STOP,
		                     .select = SELECT_RESTARTABLE,
		                     .lo = s->spec->pol->strategy == ONE_FOR_ALL
		                                   ? 0
		                                   : c->index,
		                     .hi = s->nchildren,
		                     .not_before = t->now + delay,
		                     .cause = c->index});
		break;
	}
}

/* Whether the worker was ready before it ended: one that ends cleanly
 * before (exit 0, or done) never came up, and its restarts back off as a
 * failed start's, else a permanent one loops at once (supervisord's
 * startsecs rule: ready_after is ours). */
static bool
came_up(const struct node *c)
{
	return c->running_since != 0 || !config_waits_ready(c->spec->pol);
}

/* The whole decision for a child whose supervisor is free to act: what
 * it declared first (§9 step 1), then its restart type. */
static void
strategy_decide(struct tree *t, struct node *s, struct node *c, struct reason r)
{
	enum declared_kind dk = c->exit_declared;
	bool failure = declared_abnormal(dk, r);
	bool counts = dk != DECLARED_RATE_LIMITED && !reason_spawn_exhausted(r);
	bool gave_up = !node_is_worker(c) && r.kind == REASON_GAVE_UP;
	unsigned n = 0;

	if (gave_up && gave_up_normally(c))
		failure = false;

	if (r.kind == REASON_BUDGET || dk == DECLARED_BUDGET) {
		/* §10: never counted, never retried */
		park(t, s, c, NODE_EXHAUSTED, EE_EXHAUSTED, 0);
		return;
	}
	if (dk == DECLARED_PERMANENT) {
		park(t, s, c, NODE_FAILED, EE_FAILED, 0);
		return;
	}
	/* a start that found the machine exhausted: the child never ran,
	 * so a temporary one is retried too (its own end is not this) */
	if (!should_restart(c, failure) && !reason_spawn_exhausted(r)) {
		if (!failure)
			c->failures = 0; /* a clean end: none in a row */
		dynamic_child_ended(t, c, failure);
		if ((failure || gave_up) && c->spec->pol->significant)
			give_up(t, s, c->last, true); /* failed for good */
		else
			sup_child_settled(t, s);
		return;
	}
	if (node_is_worker(c)) {
		/* a clean end before ready is a failed start: in a row too,
		 * for the backoff and the circuit */
		bool in_a_row = failure || !came_up(c);

		n = in_a_row ? backoff_count(c, t->now) : (c->failures = 0);
		if (in_a_row && counts && circuit_record(t, c)) {
			park(t, s, c, NODE_QUARANTINED, EE_QUARANTINED,
			     node_circuit(c)->probe_at);
			return;
		}
	}
	restart_decision(t, s, c, r, counts, n);
}

void
strategy_decide_pending(struct tree *t, struct node *s, struct node *c)
{
	c->pending = false;
	strategy_decide(t, s, c, c->pending_reason);
}

void
strategy_exhausted(struct tree *t, struct node *c)
{
	park(t, c->parent, c, NODE_EXHAUSTED, EE_EXHAUSTED, 0);
}

/* Whether the supervisor's current job stops this child anyway. */
static bool
job_covers(const struct job *j, const struct node *c)
{
	return j->phase == PHASE_STOP && c->index >= j->lo &&
	       c->index < j->hi && (j->select != SELECT_MARKED || c->marked);
}

void
strategy_child_failed(struct tree *t, struct node *s, struct node *c,
                      struct reason r)
{
	c->last = r;
	if (node_is_worker(c))
		tree_declared_take(t, c);
	if (t->shutting_down || t->draining || c->draining || c->removed ||
	    s->state == NODE_STOPPING || s->state == NODE_STOPPED) {
		/* a task that declared done ends */
		dynamic_child_stopped(t, c);
		sup_child_settled(t, s);
		return;
	}
	if (s->super->job.kind != JOB_NONE || s->in_run) {
		if (!job_covers(&s->super->job, c)) {
			c->pending = true;
			c->pending_reason = r;
		} else { /* stopped by the job: ended if it declared done */
			dynamic_child_stopped(t, c);
		}
		sup_child_settled(t,
		                  s); /* it may be the child the job waits on */
		return;
	}
	strategy_decide(t, s, c, r);
}

/* What waited for the job: failures and operators' restarts in start
 * order, and children whose backoff ended meanwhile. */
void
strategy_handle_pending(struct tree *t, struct node *s)
{
	for (size_t i = 0; i < s->nchildren && s->super->job.kind == JOB_NONE &&
	                   s->state == NODE_RUNNING;
	     i++) {
		struct node *c = s->children[i];
		if (c->restart_asked && !c->pending) {
			c->restart_asked = false; /* an operator's, queued */
			sup_restart_child(t, c);
			continue;
		}
		c->restart_asked = false; /* its failure restarts it anyway */
		if (!c->pending)
			continue;
		c->pending = false;
		if (c->state == NODE_STOPPED)
			strategy_decide(t, s, c, c->pending_reason);
		else if (c->state == NODE_BACKOFF &&
		         c->backoff_until <= t->now && !c->held)
			node_start(t, c);
		else if (c->state == NODE_QUARANTINED && !c->held &&
		         s->super->group_at == 0)
			node_start(t, c); /* its probe came during the job */
	}
}
