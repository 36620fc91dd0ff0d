/*
 * worker.c - a worker's lifecycle as a table, as s6-supervise keeps it:
 * state x input -> one small function. Every transition is a named cell;
 * an empty cell means the input changes nothing in that state.
 */
#include <stddef.h>

#include "circuit.h"
#include "dynamic.h"
#include "engine.h"
#include "progress.h"

enum worker_input {
	WI_START, /* its supervisor (or an operator) starts it */
	WI_READY, /* it said "ready" */
	WI_EXIT,  /* its process is gone (reaped), with a reason */
	WI_STOP,  /* stop it: the shutdown sequence */
	WI_DRAIN, /* drain it: the protocol's drain, then the sequence */
	WI_FORCE, /* a drain cut short: the shutdown sequence now */
	WI_WAKE,  /* the time it asked for has come */
	WI__INPUTS
};

typedef void worker_fn(struct tree *, struct node *, struct reason);

/* Up: running, or starting until it says ready. */
static void
w_up(struct tree *t, struct node *n, enum node_state s)
{
	tree_set_state(t, n, s);
	if (s == NODE_RUNNING) {
		n->running_since = t->now;
		circuit_probe_running(t, n);
		progress_running(t, n);
		budget_judge_soon(t, n);
	}
}

/* Down-and-waiting states x START: spawn; running at once unless it must
 * say ready. */
static void
w_spawn(struct tree *t, struct node *n, struct reason r)
{
	(void)r;
	wake_set(t, n, 0);
	n->waiting = WAIT_NONE;
	dynamic_respec(n); /* a task's restart takes the template of now */
	if (n->declared != NULL) /* what the last process said dies with it */
		n->declared->kind = DECLARED_NONE;
	n->starts++;
	n->running_since = 0; /* up again only once ready (came_up) */
	n->draining = false;
	tree_progress_forget(n);
	budget_spawned(t, n);
	tree_push(t, (struct action){.kind = ACT_START, .node = n});
	w_up(t, n,
	     config_waits_ready(n->spec->pol) ? NODE_STARTING : NODE_RUNNING);
}

/* STARTING x READY: up; its supervisor's job may go on. */
static void
w_ready(struct tree *t, struct node *n, struct reason r)
{
	(void)r;
	w_up(t, n, NODE_RUNNING);
	sup_child_settled(t, n->parent);
}

/* STARTING|RUNNING x EXIT: down without being asked: a failure. */
static void
w_failed(struct tree *t, struct node *n, struct reason r)
{
	wake_set(t, n, 0);
	tree_set_state(t, n, NODE_STOPPED);
	n->last = r;
	strategy_child_failed(t, n->parent, n, r);
}

/* STOPPING x EXIT: down as asked. */
static void
w_stopped(struct tree *t, struct node *n, struct reason r)
{
	tree_set_state(t, n, NODE_STOPPED);
	n->last = r;
	n->running_since = 0;
	tree_declared_take(t, n);    /* a task's `done` survives its stop */
	dynamic_child_stopped(t, n); /* else an operator's stop cancels it */
	sup_child_settled(t, n->parent);
}

/* STARTING|RUNNING x STOP: the shutdown sequence (r.code: how). */
static void
w_stop(struct tree *t, struct node *n, struct reason r)
{
	wake_set(t, n, 0);
	tree_set_state(t, n, NODE_STOPPING);
	n->draining = false;
	tree_push(t,
	          (struct action){.kind = ACT_STOP, .node = n, .code = r.code});
}

/* STARTING|RUNNING x DRAIN: the worker is told to finish. */
static void
w_drain(struct tree *t, struct node *n, struct reason r)
{
	(void)r;
	wake_set(t, n, 0);
	tree_set_state(t, n, NODE_STOPPING);
	n->draining = true;
	tree_push(t, (struct action){.kind = ACT_DRAIN, .node = n});
}

/* STOPPING x FORCE: the shutdown sequence now, whatever drain it is in
 * (SIGTERM during a drain, an operator's stop, a reload's restart): the
 * shell's stop is a no-op for one already on its way. */
static void
w_cut_drain(struct tree *t, struct node *n, struct reason r)
{
	(void)r;
	tree_push(t, (struct action){.kind = ACT_STOP, .node = n});
}

/* BACKOFF x STOP|DRAIN: its pending restart is called off (a task's, by
 * an operator: the task is cancelled, as one stopped while running). */
static void
w_call_off(struct tree *t, struct node *n, struct reason r)
{
	(void)r;
	wake_set(t, n, 0);
	tree_set_state(t, n, NODE_STOPPED);
	dynamic_child_stopped(t, n);
	sup_child_settled(t, n->parent);
}

/* QUARANTINED x STOP|DRAIN: stays quarantined, but no probe comes. */
static void
w_hold_quarantine(struct tree *t, struct node *n, struct reason r)
{
	(void)r;
	wake_set(t, n, 0);
}

/* BACKOFF x WAKE: the delay is over: restart it when its supervisor is
 * free to own the start (else when its job ends, as a pending failure). */
static void
w_backoff_over(struct tree *t, struct node *n, struct reason r)
{
	struct node *s = n->parent;

	if (s->state == NODE_RUNNING && s->super->job.kind == JOB_NONE &&
	    !n->held)
		w_spawn(t, n, r);
	else
		n->pending = true;
}

/* QUARANTINED x WAKE|START: the circuit goes half-open: one probe. */
static void
w_probe(struct tree *t, struct node *n, struct reason r)
{
	circuit_own(n)->state = CIRCUIT_HALF_OPEN;
	/* value: the restart the probe is, fixed before its spawn counts */
	tree_event_value(t, EE_PROBING, n, n->last, n->starts);
	w_spawn(t, n, r);
}

/* QUARANTINED x WAKE: the probe is due, but only a running supervisor
 * starts a child; a busy one does when its job ends, a stopped one rearms
 * the probe when it starts again (sup.c). */
static void
w_probe_due(struct tree *t, struct node *n, struct reason r)
{
	struct node *s = n->parent;

	if (n->held)
		return;
	/* after a waiting group's starts too (its order: one_for_all) */
	if (s->state == NODE_RUNNING && s->super->job.kind == JOB_NONE &&
	    s->super->group_at == 0)
		w_probe(t, n, r);
	else if (s->state == NODE_RUNNING || s->state == NODE_STARTING)
		n->pending = true;
}

/* RUNNING x WAKE: a half-open probe that may have run long enough. */
static void
w_running_wake(struct tree *t, struct node *n, struct reason r)
{
	(void)r;
	if (circuit_try_close(t, n))
		tree_event(t, EE_CIRCUIT_CLOSED, n, n->last);
	progress_woken(t, n);
}

static worker_fn *const worker_table[NODE__STATES][WI__INPUTS] = {
        [NODE_STOPPED] = {[WI_START] = w_spawn},
        [NODE_STARTING] = {[WI_READY] = w_ready,
                           [WI_EXIT] = w_failed,
                           [WI_STOP] = w_stop,
                           [WI_DRAIN] = w_drain},
        [NODE_RUNNING] = {[WI_EXIT] = w_failed,
                          [WI_STOP] = w_stop,
                          [WI_DRAIN] = w_drain,
                          [WI_WAKE] = w_running_wake},
        [NODE_STOPPING] = {[WI_EXIT] = w_stopped, [WI_FORCE] = w_cut_drain},
        [NODE_BACKOFF] = {[WI_START] = w_spawn,
                          [WI_STOP] = w_call_off,
                          [WI_DRAIN] = w_call_off,
                          [WI_WAKE] = w_backoff_over},
        [NODE_QUARANTINED] = {[WI_START] = w_probe,
                              [WI_STOP] = w_hold_quarantine,
                              [WI_DRAIN] = w_hold_quarantine,
                              [WI_WAKE] = w_probe_due},
        [NODE_FAILED] = {[WI_START] = w_spawn},
        [NODE_EXHAUSTED] = {[WI_START] = w_spawn},
};

static void
worker_input(struct tree *t, struct node *n, enum worker_input in,
             struct reason r)
{
	worker_fn *fn = worker_table[n->state][in];

	if (fn == NULL)
		return;
	fn(t, n, r);
	/* a removed worker down by any way (stopped, or its own exit before
	 * its stop came): the job waiting to start its namesake goes on */
	if (n->removed && node_down(n))
		reload_buried_down(t, n);
}

void
worker_start(struct tree *t, struct node *n)
{
	worker_input(t, n, WI_START, (struct reason){0});
}

void
worker_stop(struct tree *t, struct node *n, enum stop_how how)
{
	worker_input(t, n, how == STOP_DRAIN ? WI_DRAIN : WI_STOP,
	             (struct reason){.code = (int)how});
}

void
worker_exited(struct tree *t, struct node *n, struct reason r)
{
	budget_ended(t, n);
	worker_input(t, n, WI_EXIT, r);
}

void
worker_ready(struct tree *t, struct node *n)
{
	worker_input(t, n, WI_READY, (struct reason){0});
}

void
worker_force(struct tree *t, struct node *n)
{
	worker_input(t, n, WI_FORCE, (struct reason){0});
}

void
worker_woken(struct tree *t, struct node *n)
{
	worker_input(t, n, WI_WAKE, (struct reason){0});
}

void
worker_park(struct tree *t, struct node *n, enum node_state s, uint64_t wake_at)
{
	tree_set_state(t, n, s);
	wake_set(t, n, wake_at);
}
