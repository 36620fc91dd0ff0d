/*
 * command.c - operator commands. Each checks, in one place, whether the
 * tree can take it now, and returns a typed refusal naming the node whose
 * state stands in the way, so the operator is told the truth.
 */
#include <stdio.h>

#include "command.h"
#include "engine.h"
#include "circuit.h"
#include "intensity.h"
#include "progress.h"

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
	if (t->exited)
		return refuse(REFUSED_EXITED, t->root);
	return ok;
}

/* Whether supervisor s can run a restart job now. */
static struct refusal
sup_open(const struct node *s)
{
	if (s->state == NODE_STOPPED || s->state == NODE_STOPPING)
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

/* Operator stop or drain: either way the node then stays stopped. */
static struct refusal
command_hold(struct tree *t, struct node *n, uint64_t now, enum stop_how how)
{
	struct refusal r = tree_open(t);

	t->now = now;
	if (r.kind != REFUSED_NONE)
		return r;
	n->held = true;
	n->pending = false;
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

struct refusal
command_start(struct tree *t, struct node *n, uint64_t now)
{
	struct refusal r = tree_open(t);

	t->now = now;
	if (r.kind == REFUSED_NONE && n->state == NODE_STOPPED)
		r = parent_open(n);
	if (r.kind != REFUSED_NONE)
		return r;
	n->held = false;
	if (n->state == NODE_STOPPED) {
		n->last = (struct reason){0};
		node_start(t, n);
	}
	return ok;
}

/* A supervisor restarts all its children, a worker just itself: stop then
 * start, settled in order, never counted toward intensity, and temporary or
 * held children included since an operator asked. A stopped supervisor is
 * simply started (as systemctl restart starts a stopped unit). */
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
	if (r.kind != REFUSED_NONE)
		return r;
	if (sup) {
		intensity_forget(s);
		for (size_t i = 0; i < s->nchildren; i++)
			s->children[i]->held = false;
	}
	n->held = false;
	sup_begin_job(t, s,
	              (struct job){.kind = JOB_RESTART,
	                           .phase = PHASE_STOP,
	                           .select = SELECT_ALL,
	                           .how = STOP_GRACEFUL,
	                           .lo = sup ? 0 : n->index,
	                           .hi = sup ? s->nchildren : n->index + 1});
	return ok;
}

/* A worker back to a clean slate; true when it is down for good and
 * should be started again. */
static bool
reset_worker(struct tree *t, struct node *w)
{
	bool parked = w->state == NODE_QUARANTINED || w->state == NODE_FAILED ||
	              w->state == NODE_EXHAUSTED;

	circuit_reset(w);
	w->failures = 0;
	if (parked) {
		wake_set(t, w, 0);
		tree_set_state(t, w, NODE_STOPPED);
	}
	return parked;
}

struct refusal
command_reset(struct tree *t, struct node *n, uint64_t now)
{
	struct refusal r = tree_open(t);

	t->now = now;
	if (r.kind != REFUSED_NONE)
		return r;
	budget_reset(t, n); /* spend cleared; exhausted supervisors back */
	if (!node_is_worker(n)) {
		for (struct node *d = n; d != NULL; d = tree_walk_next(n, d))
			if (node_is_worker(d) && reset_worker(t, d) &&
			    d->parent->state == NODE_RUNNING &&
			    d->parent->super->job.kind == JOB_NONE && !d->held)
				node_start(t, d);
		intensity_forget(n);
		if (n->state == NODE_STOPPED)
			return command_start(t, n, now);
		return ok;
	}
	if (reset_worker(t, n) || n->state == NODE_STOPPED)
		return command_start(t, n, now);
	return ok;
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
		         r.node->held             ? " (by command)"
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
