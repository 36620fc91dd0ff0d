/*
 * worker.c - a worker's lifecycle as a table, as s6-supervise keeps it:
 * state x input -> one small function. Every transition is a named cell;
 * an empty cell means the input changes nothing in that state.
 */
#include <stddef.h>

#include "engine.h"

enum worker_input {
	WI_START, /* its supervisor starts it */
	WI_READY, /* it said "ready" */
	WI_EXIT,  /* its process is gone (reaped), with a reason */
	WI_STOP,  /* stop it: the shutdown sequence */
	WI_DRAIN, /* drain it: the protocol's drain, then the sequence */
	WI_FORCE, /* a drain cut short: the shutdown sequence now */
	WI__INPUTS
};

typedef void worker_fn(struct tree *, struct node *, struct reason);

/* STOPPED x START: spawn; running at once unless it must say ready. */
static void
w_spawn(struct tree *t, struct node *n, struct reason r)
{
	(void)r;
	n->starts++;
	n->draining = false;
	tree_set_state(
	        t, n, n->spec->start_timeout_ms ? NODE_STARTING : NODE_RUNNING);
	tree_push(t, (struct action){.kind = ACT_START, .node = n});
}

/* STARTING x READY: up; its supervisor's job may go on. */
static void
w_ready(struct tree *t, struct node *n, struct reason r)
{
	(void)r;
	tree_set_state(t, n, NODE_RUNNING);
	sup_child_settled(t, n->parent);
}

/* STARTING|RUNNING x EXIT: down without being asked: a failure. */
static void
w_failed(struct tree *t, struct node *n, struct reason r)
{
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
	sup_child_settled(t, n->parent);
}

/* STARTING|RUNNING x STOP: the shutdown sequence. */
static void
w_stop(struct tree *t, struct node *n, struct reason r)
{
	(void)r;
	tree_set_state(t, n, NODE_STOPPING);
	n->draining = false;
	tree_push(t, (struct action){.kind = ACT_STOP, .node = n});
}

/* STARTING|RUNNING x DRAIN: the worker is told to finish. */
static void
w_drain(struct tree *t, struct node *n, struct reason r)
{
	(void)r;
	tree_set_state(t, n, NODE_STOPPING);
	n->draining = true;
	tree_push(t, (struct action){.kind = ACT_DRAIN, .node = n});
}

/* STOPPING x FORCE: a drain cut short (shutdown during a drain). */
static void
w_cut_drain(struct tree *t, struct node *n, struct reason r)
{
	(void)r;
	if (n->draining)
		tree_push(t, (struct action){.kind = ACT_STOP, .node = n});
}

static worker_fn *const worker_table[NODE__STATES][WI__INPUTS] = {
        [NODE_STOPPED] = {[WI_START] = w_spawn},
        [NODE_STARTING] = {[WI_READY] = w_ready,
                           [WI_EXIT] = w_failed,
                           [WI_STOP] = w_stop,
                           [WI_DRAIN] = w_drain},
        [NODE_RUNNING] = {[WI_EXIT] = w_failed,
                          [WI_STOP] = w_stop,
                          [WI_DRAIN] = w_drain},
        [NODE_STOPPING] = {[WI_EXIT] = w_stopped, [WI_FORCE] = w_cut_drain},
};

static void
worker_input(struct tree *t, struct node *n, enum worker_input in,
             struct reason r)
{
	worker_fn *fn = worker_table[n->state][in];

	if (fn != NULL)
		fn(t, n, r);
}

void
worker_start(struct tree *t, struct node *n)
{
	worker_input(t, n, WI_START, (struct reason){0});
}

void
worker_stop(struct tree *t, struct node *n, bool drain)
{
	worker_input(t, n, drain ? WI_DRAIN : WI_STOP, (struct reason){0});
}

void
worker_exited(struct tree *t, struct node *n, struct reason r)
{
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
