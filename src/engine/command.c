/*
 * command.c - operator commands. Each checks, in one place, whether the
 * tree can take it now, and returns a typed refusal naming the node whose
 * state stands in the way, so the operator is told the truth.
 */
#include <stdio.h>
#include <stdlib.h>

#include "command.h"
#include "engine.h"
#include "circuit.h"
#include "dynamic.h"
#include "intensity.h"
#include "progress.h"
#include "util.h"

static struct refusal
refuse(enum refusal_kind kind, const struct node *n)
{
	return (struct refusal){kind, n};
}

static const struct refusal ok = {REFUSED_NONE, NULL};

/* Whether the whole tree takes commands at all. */
static struct refusal
tree_open(const struct tree *t)
{
	if (t->shutting_down)
		return refuse(REFUSED_SHUTTING_DOWN, t->root);
	if (t->draining)
		return refuse(REFUSED_DRAINING, t->root);
	/* it gave up and its exit is queued: what a command changed would
	 * never be acted on (status would show it) while the last hooks run */
	if (tree_over(t))
		return refuse(REFUSED_EXITED, t->root);
	return ok;
}

/* Whether supervisor s can run a restart job now: not while down (one
 * that gave up, or spent its budget, is no busier a moment later: a start
 * below it was refused as busy, and --wait asked again until its timeout;
 * a restart below it queued for a job that would never come). */
static struct refusal
sup_open(const struct node *s)
{
	if (s->state == NODE_STOPPING || node_down(s))
		return refuse(REFUSED_PARENT_DOWN, s);
	if (s->state != NODE_RUNNING || s->super->job.kind != JOB_NONE)
		return refuse(REFUSED_BUSY, s);
	return ok;
}

/* Whether n's supervisor can own a start of n now. */
static struct refusal
parent_open(const struct node *n)
{
	return n->parent != NULL ? sup_open(n->parent) : ok;
}

/* Whether n's supervisor is running with no job: free to start n. */
static bool
parent_idle(const struct node *n)
{
	return n->parent->state == NODE_RUNNING &&
	       n->parent->super->job.kind == JOB_NONE;
}

/* Operator stop or drain: either way the node then stays stopped. */
static struct refusal
command_hold(struct tree *t, struct node *n, uint64_t now, enum stop_how how)
{
	struct refusal r = tree_open(t);

	t->now = now;
	if (r.kind != REFUSED_NONE)
		return r;
	n->held = true;
	n->held_config = false; /* an operator's now: stored */
	n->pending = false;
	n->restart_asked = false; /* the stop is the later word */
	n->waiting = WAIT_NONE;   /* its group's starts leave it stopped */
	if (n->task != NULL && n->task->uncommitted)
		n->task->stopped = true; /* its commit cancels it */
	else if (n->task != NULL && dynamic_stop_unstarted(t, n))
		return ok;
	node_stop(t, n, how);
	return ok;
}

struct refusal
command_stop(struct tree *t, struct node *n, uint64_t now)
{
	return command_hold(t, n, now, STOP_GRACEFUL);
}

struct refusal
command_drain(struct tree *t, struct node *n, uint64_t now)
{
	return command_hold(t, n, now, STOP_DRAIN);
}

/* Whether a start starts n: a stopped node, or a worker down and waiting
 * (its backoff, its probe) or down for good (failed, exhausted): an
 * operator's start skips every wait (§9). */
static bool
startable(const struct node *n)
{
	return n->state == NODE_STOPPED || (node_is_worker(n) && node_down(n));
}

/* The children of s waiting for their group due now, for
 * sup_start_waiting: the group of those waiting till at, or every group. */
static void
groups_due_now(struct tree *t, struct node *s, bool every, uint64_t at)
{
	for (size_t i = 0; i < s->nchildren; i++) {
		struct node *c = s->children[i];
		if (c->waiting && (every || c->backoff_until == at))
			c->backoff_until = t->now;
	}
}

/* Start a down node now; one a group restart left waiting starts with the
 * rest of its group, in order (§9: an operator's start skips the wait). */
static void
start_now(struct tree *t, struct node *n)
{
	if (!n->waiting) {
		node_start(t, n);
		return;
	}
	groups_due_now(t, n->parent, false, n->backoff_until); /* its group */
	sup_start_waiting(t, n->parent);
}

/* An operator's start or restart lets n be started again; not a task
 * whose record is not stored yet: only its commit starts it (a spawn
 * refused for the store never runs). */
static void
unhold(struct node *n)
{
	if (n->task == NULL || !n->task->uncommitted)
		n->held = n->held_config = false;
	else
		n->task->stopped = false; /* its commit starts it after all */
}

/* Stopping by an operator's stop or drain: a start or reset undoes that. */
static bool
operator_stopping(const struct node *n)
{
	return n->state == NODE_STOPPING && n->held;
}

/* Whether a start of n can be carried out now. One of a node an operator is
 * stopping brings it back once the stop is done, as systemctl start queues
 * behind a stop (an ack that did nothing left it stopped for good, and no
 * longer held); stopping for any other reason (its supervisor's job, a
 * budget) is not the operator's to undo. */
static struct refusal
start_check(const struct node *n)
{
	struct refusal r;

	if (n->state != NODE_STOPPING)
		return startable(n) ? parent_open(n) : ok;
	r = parent_open(n);
	if (r.kind == REFUSED_NONE &&
	    (!n->held || n->parent == NULL || n->removed))
		r = refuse(REFUSED_STOPPING, n);
	return r;
}

struct refusal
command_start(struct tree *t, struct node *n, uint64_t now)
{
	struct refusal r = tree_open(t);

	t->now = now;
	if (r.kind == REFUSED_NONE)
		r = start_check(n);
	if (r.kind != REFUSED_NONE)
		return r;
	unhold(n);
	if (n->held) /* uncommitted: it starts once stored */
		return ok;
	if (n->state == NODE_STOPPING) {
		sup_restart_child(t, n);
		return ok;
	}
	if (n->state == NODE_STOPPED)
		n->last = (struct reason){0};
	if (startable(n))
		start_now(t, n);
	return ok;
}

/* A supervisor restarts all its children, a worker just itself: stop then
 * start, settled in order, never counted toward intensity, and temporary
 * children included since an operator asked; not those held (stopped by
 * command, or `autostart: false`): a node stopped by command stays stopped
 * whatever restarts around it, until started, so that a deploy's restart
 * of the fleet does not bring back what an operator stopped in an
 * incident. A stopped supervisor is simply started (as systemctl restart
 * starts a stopped unit). */
struct refusal
command_restart(struct tree *t, struct node *n, uint64_t now)
{
	bool sup = !node_is_worker(n);
	struct node *s = sup ? n : n->parent;
	struct refusal r = tree_open(t);

	t->now = now;
	if (r.kind == REFUSED_NONE && sup && n->state == NODE_STOPPED)
		return command_start(t, n, now);
	if (r.kind == REFUSED_NONE && sup && n->state == NODE_STOPPING)
		r = refuse(REFUSED_STOPPING, n);
	if (r.kind == REFUSED_NONE)
		r = sup_open(s);
	if (r.kind == REFUSED_BUSY && !sup) { /* after the job under way */
		unhold(n);
		n->restart_asked = true;
		return ok;
	}
	if (r.kind != REFUSED_NONE)
		return r;
	if (sup)
		intensity_forget(s);
	unhold(n);
	if (!sup) {
		if (n->waiting)
			start_now(t, n);
		else
			sup_restart_child(t, n);
		return ok;
	}
	sup_begin_job(t, s,
	              (struct job){.kind = JOB_RESTART,
	                           .phase = PHASE_STOP,
	                           .select = SELECT_ALL,
	                           .how = STOP_GRACEFUL,
	                           .hi = s->nchildren});
	return ok;
}

/* Whether a reset starts node d of the subtree: a worker waiting (its
 * backoff) or down for good, or a supervisor that gave up; not what an
 * operator stopped, nor a temporary worker that ended. */
static bool
reset_starts(const struct node *d)
{
	if (d->held)
		return false;
	if (node_is_worker(d))
		return d->state >= NODE_BACKOFF;
	return node_unhealthy(d);
}

/* A refusal for the first node of n's subtree a reset would start whose
 * supervisor is busy: a refused reset changes nothing. */
static struct refusal
reset_check(const struct node *n)
{
	for (const struct node *d = n; d != NULL; d = tree_walk_next(n, d)) {
		const struct node *s = d->parent;
		if (s == NULL || !reset_starts(d) || node_down(s))
			continue; /* under one down, the reset starts it or not
			           */
		if (s->state != NODE_RUNNING || s->super->job.kind != JOB_NONE)
			return refuse(REFUSED_BUSY, s);
	}
	return ok;
}

/* A worker back to a clean slate: circuit closed, failures forgotten, and
 * out of a parked state (quarantined, failed, exhausted) into stopped. */
static void
reset_worker(struct tree *t, struct node *w)
{
	circuit_reset(w);
	w->failures = 0;
	if (w->state == NODE_QUARANTINED || w->state == NODE_FAILED ||
	    w->state == NODE_EXHAUSTED) {
		wake_set(t, w, 0);
		tree_set_state(t, w, NODE_STOPPED);
	}
}

/* A supervisor's reset: every worker below to a clean slate, then the
 * starts, parents first: a supervisor started here starts its own stopped
 * children; the rest, under a running supervisor, are started here. */
static struct refusal
reset_subtree(struct tree *t, struct node *n, uint64_t now)
{
	struct node **again = NULL;
	size_t k = 0, cap = 0;

	for (struct node *d = n; d != NULL; d = tree_walk_next(n, d)) {
		if (!node_is_worker(d))
			continue;
		if (reset_starts(d)) {
			if (k == cap) {
				cap = cap ? 2 * cap : 16;
				again = xreallocarray(again, cap,
				                      sizeof *again);
			}
			again[k++] = d;
		}
		reset_worker(t, d);
	}
	/* then the spend: exhausted supervisors back, started where their
	 * parent runs, and their jobs find the workers below reset */
	budget_reset(t, n);
	intensity_forget(n);
	if (n->state == NODE_STOPPED || operator_stopping(n)) {
		free(again);
		return command_start(t, n, now);
	}
	for (struct node *d = n; d != NULL; d = tree_walk_next(n, d))
		if (d != n && !node_is_worker(d) && reset_starts(d) &&
		    parent_idle(d)) {
			d->last = (struct reason){0};
			start_now(t, d); /* with its group if it waits */
		}
	/* under a group that waits, its start is one job: the others the reset
	 * starts join it (else that job kept them from starting at all) */
	for (size_t i = 0; i < k; i++)
		if (parent_idle(again[i]) && startable(again[i]) &&
		    sup_group_waits(again[i]->parent)) {
			if (!again[i]->waiting)
				again[i]->waiting = WAIT_GROUP;
			groups_due_now(t, again[i]->parent, true, 0);
		}
	for (size_t i = 0; i < k; i++)
		if (parent_idle(again[i]) && startable(again[i]))
			start_now(t, again[i]);
	free(again);
	return ok;
}

struct refusal
command_reset(struct tree *t, struct node *n, uint64_t now)
{
	struct refusal r = tree_open(t);

	t->now = now;
	if (r.kind == REFUSED_NONE)
		r = reset_check(n);
	if (r.kind == REFUSED_NONE && node_down(n))
		r = parent_open(n);
	else if (r.kind == REFUSED_NONE && operator_stopping(n))
		r = start_check(n);
	if (r.kind != REFUSED_NONE)
		return r;
	if (node_is_worker(n)) {
		budget_reset(t, n); /* spend cleared */
		reset_worker(t, n);
		return startable(n) || operator_stopping(n)
		               ? command_start(t, n, now)
		               : ok;
	}
	return reset_subtree(t, n, now);
}

void
command_refusal_format(struct refusal r, char *buf, size_t len)
{
	const char *path = r.node ? r.node->path : "?";

	switch (r.kind) {
	case REFUSED_NONE:
		snprintf(buf, len, "%s", "");
		break;
	case REFUSED_SHUTTING_DOWN:
		snprintf(buf, len, "agentsupd is shutting down");
		break;
	case REFUSED_EXITED:
		snprintf(buf, len, "agentsupd is exiting: the tree has ended");
		break;
	case REFUSED_DRAINING:
		snprintf(buf, len, "agentsupd is draining");
		break;
	case REFUSED_PARENT_DOWN:
		snprintf(buf, len, "its supervisor %s is %s%s; start it first",
		         path, node_state_name(r.node->state),
		         r.node->held_config      ? " (autostart: false)"
		         : r.node->held           ? " (by command)"
		         : node_unhealthy(r.node) ? " (it gave up)"
		                                  : "");
		break;
	case REFUSED_BUSY:
		snprintf(buf, len,
		         "%s is busy starting or restarting its children; try "
		         "again once it settles",
		         path);
		break;
	case REFUSED_STOPPING:
		snprintf(buf, len,
		         "%s is still stopping; try again once it "
		         "has stopped",
		         path);
		break;
	}
}
