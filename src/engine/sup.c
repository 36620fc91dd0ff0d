/*
 * sup.c - a supervisor's job runner.
 *
 * Each supervisor runs at most one job at a time (struct job): stop a range
 * of children last-first, then start them first-last, waiting for each to
 * settle (exit, or become ready) before the next, as OTP's supervisor does
 * synchronously. Workers that start "running at spawn" settle at once, so a
 * tree of plain workers comes up in one pass with no waiting.
 */
#include <stddef.h>

#include "dynamic.h"
#include "engine.h"
#include "intensity.h"
#include "progress.h"

void
sup_begin_job(struct tree *t, struct node *s, struct job j)
{
	/* a reload's job cut short (a stop, a give-up, a group restart) takes
	 * its marks with it: a later reload would restart what it marked */
	if (s->super->job.kind != JOB_NONE &&
	    s->super->job.select == SELECT_MARKED && j.select != SELECT_MARKED)
		for (size_t i = 0; i < s->nchildren; i++)
			s->children[i]->marked = false;
	s->super->job = j;
	s->super->job.cursor = j.phase == PHASE_STOP ? j.hi : j.lo;
	s->super->jobs++;
	sup_run(t, s);
}

void
sup_restart_child(struct tree *t, struct node *c)
{
	sup_begin_job(t, c->parent,
	              (struct job){.kind = JOB_RESTART,
	                           .phase = PHASE_STOP,
	                           .select = SELECT_ALL,
	                           .how = STOP_GRACEFUL,
	                           .lo = c->index,
	                           .hi = c->index + 1});
}

/* Start a stopped supervisor: its children, in order. */
void
sup_start(struct tree *t, struct node *s)
{
	if (s->state != NODE_STOPPED)
		return;
	s->starts++;
	s->draining = false;
	intensity_forget(s); /* a restarted subtree starts with fresh history */
	tree_set_state(t, s, NODE_STARTING);
	sup_begin_job(t, s,
	              (struct job){.kind = JOB_START,
	                           .phase = PHASE_START,
	                           .select = SELECT_ALL,
	                           .hi = s->nchildren});
}

/* The stop calls off what waited for the job; a task's exit still to be
 * decided that declared `done` ends the task all the same. */
static void
clear_pending(struct tree *t, struct node *s)
{
	s->super->group_at = 0;
	for (size_t i = 0; i < s->nchildren; i++) {
		struct node *c = s->children[i];
		if (c->pending && c->state == NODE_STOPPED)
			dynamic_child_stopped(t, c);
		c->pending = false;
		c->restart_asked = false;
		c->waiting = WAIT_NONE;
	}
}

/* Begin stopping a supervisor's children: in turn last-first, or a drain
 * (every child told at once). */
void
sup_begin_stop(struct tree *t, struct node *s, enum stop_outcome outcome,
               enum stop_how how)
{
	bool drain = how == STOP_DRAIN;

	clear_pending(t, s);
	tree_set_state(t, s, NODE_STOPPING);
	s->draining = drain;
	/* one_for_one children are independent: stopped together, so a tree
	 * stops within its largest shutdown, not the sum (§9) */
	bool together = drain || s->spec->pol->strategy == ONE_FOR_ONE;

	sup_begin_job(t, s,
	              (struct job){.kind = JOB_STOP,
	                           .phase = PHASE_STOP,
	                           .order = together ? ORDER_TOGETHER
	                                             : ORDER_SEQUENTIAL,
	                           .select = SELECT_ALL,
	                           .how = how,
	                           .outcome = outcome,
	                           .hi = s->nchildren});
}

/* Ask a supervisor to stop (or drain); it settles to STOPPED now or later. */
void
sup_stop(struct tree *t, struct node *s, enum stop_how how)
{
	if (s->state == NODE_STOPPED || s->state == NODE_EXHAUSTED)
		return;
	if (s->state == NODE_STOPPING) {
		/* the parent wants it down: it no longer escalates when done */
		s->super->job.outcome = OUTCOME_STOPPED;
		return;
	}
	sup_begin_stop(t, s, OUTCOME_STOPPED, how);
}

static bool
job_selects(const struct job *j, const struct node *c)
{
	return j->select != SELECT_MARKED || c->marked;
}

/* A temporary child is never restarted (OTP), but one that never ran
 * starts: one a sibling's failed start kept from its first start, one
 * whose spawn found the machine exhausted. */
static bool
startable(const struct node *c)
{
	return c->spec->pol->restart != RESTART_TEMPORARY || c->starts == 0 ||
	       reason_spawn_exhausted(c->last);
}

/* Whether c waits for its group's starts: held and temporary ones never
 * start with it (but startable ones). */
static bool
group_waiter(const struct node *c)
{
	return c->waiting && !c->held && startable(c);
}

bool
sup_group_waits(const struct node *s)
{
	for (size_t i = 0; i < s->nchildren; i++)
		if (group_waiter(s->children[i]))
			return true;
	return false;
}

static bool
job_should_start(const struct job *j, const struct node *c)
{
	switch (j->select) {
	case SELECT_MARKED: /* not what an operator is stopping */
		return c->marked && !c->held;
	case SELECT_ALL:
		return !c->held;
	case SELECT_RESTARTABLE:
		/* OTP: a temporary child is never restarted, not even when a
		 * sibling's failure took it down */
		return !c->held && startable(c);
	case SELECT_WAITING: /* its group's time came (not_before: now) */
		return group_waiter(c) && c->backoff_until <= j->not_before;
	}
	return false;
}

static bool
active(const struct node *c)
{
	return c->state == NODE_STARTING || c->state == NODE_RUNNING;
}

/* A child waiting out its backoff or its probe: a stop job calls its
 * restart off (a quarantined child stays quarantined, with no probe until
 * its supervisor starts again); a restart job leaves it waiting. */
static bool
call_off(const struct job *j, const struct node *c)
{
	return (c->state == NODE_BACKOFF || c->state == NODE_QUARANTINED) &&
	       j->kind == JOB_STOP;
}

/* Whether the start phase starts c: what is stopped or waiting out a
 * backoff; and, for an operator's restart or a reload that changed it,
 * what is down for good too (a probe at once, a failed or exhausted worker
 * tried again): they asked for it. */
static bool
job_starts(const struct job *j, const struct node *c)
{
	if (c->state == NODE_STOPPED || c->state == NODE_BACKOFF)
		return true;
	return node_down(c) &&
	       (j->select == SELECT_MARKED ||
	        (j->kind == JOB_RESTART && j->select == SELECT_ALL));
}

/* A supervisor starting again rearms the probe its stop called off. */
static void
job_rearm_probe(struct tree *t, const struct job *j, struct node *c)
{
	uint64_t at;

	if (j->kind != JOB_START || c->state != NODE_QUARANTINED ||
	    c->wake_at != 0 || c->held)
		return;
	at = node_circuit(c)->probe_at;
	wake_set(t, c, at > t->now ? at : t->now);
}

/* Stop phase: true when every selected child in range is stopped. */
static bool
job_stop_step(struct tree *t, struct node *s)
{
	struct job *j = &s->super->job;

	if (j->order == ORDER_TOGETHER) {
		bool all = true;
		for (size_t i = j->hi; i-- > j->lo;) { /* told last-first too */
			struct node *c = s->children[i];
			if (!job_selects(j, c))
				continue;
			if (active(c) || call_off(j, c) ||
			    (!node_is_worker(c) && c->state != NODE_STOPPED))
				node_stop(t, c, j->how);
			if (!node_down(c))
				all = false;
		}
		return all;
	}
	while (j->cursor > j->lo) {
		struct node *c = s->children[j->cursor - 1];
		if (job_selects(j, c) && !node_down(c)) {
			if (active(c) || !node_is_worker(c))
				node_stop(t, c, j->how);
			if (!node_down(c))
				return false;
		}
		if (job_selects(j, c) && call_off(j, c))
			node_stop(t, c, j->how);
		j->cursor--;
	}
	return true;
}

/* A child this start phase started failed before it was ready: under
 * one_for_all and rest_for_one its later siblings depend on it, so what
 * its supervisor does about it comes before any of them starts (OTP stops
 * a start at the first child that fails); a restart starts them after
 * it. True when that began another job, which replaces this one. */
static bool
job_start_failed(struct tree *t, struct node *s, struct node *c)
{
	struct job was = s->super->job;
	unsigned long jobs = s->super->jobs;

	if (!was.launched || !c->pending ||
	    s->spec->pol->strategy == ONE_FOR_ONE)
		return false;
	s->super->job = (struct job){.kind = JOB_NONE};
	s->in_run = false; /* a job it begins runs now */
	strategy_decide_pending(t, s, c);
	if (s->super->jobs != jobs) {
		/* a reload's marks go with its job, as sup_begin_job's and
		 * job_finish's: a later reload would restart what it marked */
		for (size_t i = 0;
		     was.select == SELECT_MARKED && i < s->nchildren; i++)
			s->children[i]->marked = false;
		return true;
	}
	s->in_run = true; /* not restarted: the later siblings start */
	s->super->job = was;
	return false;
}

static void sup_group_rearm(struct tree *, struct node *);
static void sup_parent_waits(struct tree *, struct node *);

/* Under one_for_all and rest_for_one a child a reload starts (added, or
 * changed) after one that waits out its group's backoff joins that wait:
 * it never runs without what comes before it; the group's start starts
 * it, in order. (An operator's start skips every wait, as asked.) */
static bool
job_join_wait(struct tree *t, struct node *s, const struct job *j,
              struct node *c)
{
	const struct node *w = NULL;

	if (j->select != SELECT_MARKED || s->spec->pol->strategy == ONE_FOR_ONE)
		return false;
	for (size_t i = 0; i < c->index && w == NULL; i++)
		if (group_waiter(s->children[i]))
			w = s->children[i];
	if (w == NULL)
		return false;
	c->waiting = WAIT_GROUP;
	c->backoff_until = w->backoff_until; /* its group's time */
	if (node_is_worker(c))
		worker_park(t, c, NODE_BACKOFF, 0);
	sup_group_rearm(t, s);
	return true;
}

/* A child supervisor is up once its children are: one whose start left a
 * group waiting out a backoff (its first child failed to start) holds its
 * later siblings under one_for_all and rest_for_one, as a worker that is
 * not ready yet does. */
static bool
job_not_up(const struct node *s, const struct node *c)
{
	return c->state == NODE_STARTING ||
	       (!node_is_worker(c) && c->state == NODE_RUNNING &&
	        s->spec->pol->strategy != ONE_FOR_ONE && sup_group_waits(c));
}

/* Start phase: true when every child in range has settled. */
static bool
job_start_step(struct tree *t, struct node *s)
{
	struct job *j = &s->super->job;

	while (j->cursor < j->hi) {
		struct node *c = s->children[j->cursor];
		if (job_not_up(s, c) && job_selects(j, c))
			return false; /* wait for its ready (or its failure) */
		if (job_start_failed(t, s, c))
			return false; /* the new job went as far as it goes */
		job_rearm_probe(t, j, c);
		if (job_starts(j, c) && !j->launched &&
		    job_should_start(j, c)) {
			if (job_join_wait(t, s, j, c)) {
				j->cursor++; /* it starts with its group */
				continue;
			}
			if (node_is_worker(c) && reload_namesake_alive(t, c))
				return false; /* reload_buried_down goes on */
			j->launched = true;
			node_start(t, c);
			continue;
		}
		j->cursor++;
		j->launched = false;
	}
	return true;
}

/* The supervisor's wake-up for the earliest of its waiting groups (each
 * waiting child carries its group's time in backoff_until: two groups of
 * a rest_for_one wait apart), or none. */
static void
sup_group_rearm(struct tree *t, struct node *s)
{
	uint64_t at = 0;

	for (size_t i = 0; i < s->nchildren; i++) {
		const struct node *c = s->children[i];
		if (group_waiter(c) && (at == 0 || c->backoff_until < at))
			at = c->backoff_until;
	}
	s->super->group_at = at;
	if (at != 0)
		progress_wake_by(t, s, at > t->now ? at : t->now);
}

/* The stops of a group restart happened at once; its starts wait for the
 * failed child's backoff (§9). They wait outside the job, so that the
 * supervisor meanwhile takes an operator's command, a reload or another
 * child's failure (a job held for the wait refused them all): the children
 * to start are marked waiting (a worker shown in backoff), and the
 * supervisor's wake-up starts them in order (sup_woken). */
static void
job_defer_starts(struct tree *t, struct node *s)
{
	const struct job *j = &s->super->job;

	for (size_t i = j->lo; i < j->hi; i++) {
		struct node *c = s->children[i];
		if (!job_starts(j, c) || !job_should_start(j, c))
			continue;
		c->waiting = i == j->cause ? WAIT_CAUSE : WAIT_GROUP;
		c->backoff_until = j->not_before; /* its group's time */
		if (node_is_worker(c)) /* its own wake-up is the group's */
			worker_park(t, c, NODE_BACKOFF, 0);
	}
	sup_group_rearm(t, s);
}

/* A supervisor that gave up: stopped, and its parent sees one failure. */
static void
sup_gave_up(struct tree *t, struct node *s)
{
	intensity_forget(s);
	s->last = (struct reason){.kind = REASON_GAVE_UP};
	if (s->parent == NULL) {
		tree_exit(t, 75);
		return;
	}
	tree_push(t, (struct action){.kind = ACT_EVENT,
	                             .node = s,
	                             .event = EE_ESCALATED,
	                             .reason = s->last,
	                             .code = strategy_left_stopped(s)});
	strategy_child_failed(t, s->parent, s, s->last);
}

/* The supervisor's job is done: settle it and tell whoever waits. */
static void
job_finish(struct tree *t, struct node *s)
{
	struct job done = s->super->job;

	if (done.select == SELECT_MARKED)
		for (size_t i = 0; i < s->nchildren; i++)
			s->children[i]->marked = false;
	/* what a group's start did not start waits no more (held, temporary,
	 * or not startable by it); a later group waits on */
	for (size_t i = 0; done.select == SELECT_WAITING && i < s->nchildren;
	     i++) {
		struct node *c = s->children[i];
		if (!group_waiter(c) || c->backoff_until <= done.not_before)
			c->waiting = WAIT_NONE;
	}
	s->super->job = (struct job){.kind = JOB_NONE};
	if (done.kind != JOB_STOP) {
		bool was_starting = s->state == NODE_STARTING;
		tree_set_state(t, s, NODE_RUNNING);
		sup_group_rearm(t, s); /* before the pending: a probe waits */
		strategy_handle_pending(t, s);
		if (s->super->group_at != 0 && s->super->group_at <= t->now)
			sup_start_waiting(t, s); /* due while the job ran */
		dynamic_start_waiting(t, s);
		if (was_starting && s->parent != NULL)
			sup_child_settled(t, s->parent);
		else
			sup_parent_waits(t, s); /* its group's start is done */
		return;
	}
	tree_set_state(t, s, NODE_STOPPED);
	if (done.outcome == OUTCOME_GAVE_UP) {
		sup_gave_up(t, s);
		return;
	}
	if (done.outcome == OUTCOME_EXHAUSTED) {
		budget_sup_exhausted(t, s);
		return;
	}
	tree_event(t, EE_STOPPED, s, s->last);
	if (s->parent != NULL)
		sup_child_settled(t, s->parent);
	else if (t->shutting_down || t->draining)
		tree_exit(t, 0);
}

/* Drive a supervisor's job as far as it goes without waiting. */
void
sup_run(struct tree *t, struct node *s)
{
	struct job *j = &s->super->job;

	if (s->in_run || j->kind == JOB_NONE)
		return;
	s->in_run = true;
	if (j->phase == PHASE_STOP) {
		if (!job_stop_step(t, s))
			goto wait;
		if (j->kind != JOB_STOP) {
			j->phase = PHASE_START;
			j->launched = false;
			j->cursor = j->lo;
		}
	}
	if (j->phase == PHASE_START && j->cursor == j->lo && !j->launched &&
	    j->not_before > t->now)
		job_defer_starts(t, s); /* the job is done; they wait */
	else if (j->phase == PHASE_START && !job_start_step(t, s))
		goto wait;
	s->in_run = false;
	job_finish(t, s);
	return;
wait:
	s->in_run = false;
}

void
sup_start_waiting(struct tree *t, struct node *s)
{
	bool any = false;

	if (s->state != NODE_RUNNING || s->super->job.kind != JOB_NONE)
		return; /* job_finish comes back here */
	for (size_t i = 0; i < s->nchildren && !any; i++) {
		const struct node *c = s->children[i];
		any = group_waiter(c) && c->backoff_until <= t->now;
	}
	if (any) {
		sup_begin_job(t, s,
		              (struct job){.kind = JOB_RESTART,
		                           .phase = PHASE_START,
		                           .select = SELECT_WAITING,
		                           .hi = s->nchildren,
		                           .not_before = t->now});
		return;
	}
	sup_group_rearm(t, s);
	strategy_handle_pending(t, s); /* a probe the wait held back */
}

void
sup_woken(struct tree *t, struct node *s)
{
	uint64_t at = s->super->group_at;

	if (at == 0)
		return;
	if (at > t->now)
		progress_wake_by(t, s, at); /* woken for another reason */
	else
		sup_start_waiting(t, s);
}

/* A parent whose start waits on s (job_not_up) goes on once s's children
 * are up: s's group started, or no longer waiting (stopped, released). */
static void
sup_parent_waits(struct tree *t, struct node *s)
{
	struct node *p = s->parent;
	const struct job *j;

	if (p == NULL || p == t->graveyard)
		return;
	j = &p->super->job;
	if (j->kind != JOB_NONE && j->phase == PHASE_START &&
	    j->cursor == s->index && !job_not_up(p, s))
		sup_run(t, p);
}

void
sup_child_settled(struct tree *t, struct node *s)
{
	if (s == t->graveyard) { /* removed by a reload: freed once down */
		tree_exit_when_buried(t);
		return;
	}
	sup_run(t, s);
	sup_parent_waits(t, s);
}
