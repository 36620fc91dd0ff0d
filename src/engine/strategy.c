/*
 * strategy.c - what a supervisor does about a child that went down without
 * being asked: OTP's restart types, its three strategies, and intensity.
 * A child that fails while its supervisor is busy is marked pending and
 * handled when the job ends, unless the job was about to stop it anyway.
 */
#include <stddef.h>

#include "engine.h"
#include "intensity.h"

static bool
should_restart(const struct node *c, struct reason r)
{
	switch (c->spec->restart) {
	case RESTART_PERMANENT:
		return true;
	case RESTART_TRANSIENT:
		return reason_abnormal(r);
	case RESTART_TEMPORARY:
		break;
	}
	return false;
}

/* Apply the supervisor's strategy to one failed child (s has no job). */
static void
restart_decision(struct tree *t, struct node *s, struct node *c,
                 struct reason r)
{
	if (!intensity_add(s, t->now)) {
		tree_event(t, EE_GAVE_UP, s, r);
		sup_begin_stop(t, s, OUTCOME_GAVE_UP, false);
		return;
	}
	tree_event(t, EE_RESTARTING, c, r);
	switch (s->spec->strategy) {
	case ONE_FOR_ONE:
		node_start(t, c);
		break;
	case ONE_FOR_ALL:
	case REST_FOR_ONE:
		sup_begin_job(
		        t, s,
		        (struct job){.kind = JOB_RESTART,
		                     .phase = PHASE_STOP,
		                     .select = SELECT_RESTARTABLE,
		                     .lo = s->spec->strategy == ONE_FOR_ALL
		                                   ? 0
		                                   : c->index,
		                     .hi = s->nchildren});
		break;
	}
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
	if (t->shutting_down || t->draining || c->draining || c->removed ||
	    s->state == NODE_STOPPING || s->state == NODE_STOPPED ||
	    !should_restart(c, r)) {
		sup_child_settled(t, s);
		return;
	}
	if (s->job.kind != JOB_NONE || s->in_run) {
		if (!job_covers(&s->job, c)) {
			c->pending = true;
			c->pending_reason = r;
		}
		sup_child_settled(t,
		                  s); /* it may be the child the job waits on */
		return;
	}
	restart_decision(t, s, c, r);
}

/* A failure that waited for the job: handle the first, in start order. */
void
strategy_handle_pending(struct tree *t, struct node *s)
{
	for (size_t i = 0; i < s->nchildren && s->job.kind == JOB_NONE &&
	                   s->state == NODE_RUNNING;
	     i++) {
		struct node *c = s->children[i];
		if (!c->pending)
			continue;
		c->pending = false;
		if (c->state == NODE_STOPPED)
			strategy_child_failed(t, s, c, c->pending_reason);
	}
}
