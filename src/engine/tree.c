/*
 * tree.c - the supervision engine: Erlang/OTP's supervisor semantics for a
 * tree of OS processes, as a pure state machine.
 *
 * Each supervisor runs at most one job at a time (struct job): stop a range
 * of children last-first, then start them first-last, waiting for each to
 * settle (exit, or become ready) before the next, as OTP's supervisor does
 * synchronously. A child that fails while its supervisor is busy is marked
 * pending and handled when the job ends, unless the job was about to stop
 * it anyway. Workers that start "running at spawn" settle at once, so a tree
 * of plain workers comes up in one pass with no waiting.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tree.h"
#include "util.h"

static void sup_run(struct tree *, struct node *);
static void node_start(struct tree *, struct node *);
static void node_stop(struct tree *, struct node *, bool drain);
static void child_settled(struct tree *, struct node *);
static void child_failed(struct tree *, struct node *, struct node *,
                         struct reason);

static const char *const state_names[] = {"stopped", "starting", "running",
                                          "stopping"};

const char *
node_state_name(enum node_state s)
{
	return state_names[s];
}

bool
reason_abnormal(struct reason r)
{
	return !(r.kind == REASON_EXIT && r.code == 0) && r.kind != REASON_NONE;
}

void
reason_format(struct reason r, char *buf, size_t len)
{
	const char *sig;

	switch (r.kind) {
	case REASON_NONE:
		snprintf(buf, len, "-");
		break;
	case REASON_EXIT:
		snprintf(buf, len, "exit:%d", r.code);
		break;
	case REASON_SIGNAL:
		sig = sigabbrev_np(r.code);
		if (sig != NULL)
			snprintf(buf, len, "signal:SIG%s", sig);
		else
			snprintf(buf, len, "signal:%d", r.code);
		break;
	case REASON_HANG:
		snprintf(buf, len, "hang");
		break;
	case REASON_START_TIMEOUT:
		snprintf(buf, len, "start_timeout");
		break;
	case REASON_PROTOCOL:
		snprintf(buf, len, "protocol");
		break;
	case REASON_SPAWN:
		snprintf(buf, len, "spawn:%s",
		         strerrorname_np(r.code) ? strerrorname_np(r.code)
		                                 : "?");
		break;
	case REASON_GAVE_UP:
		snprintf(buf, len, "gave_up");
		break;
	}
}

/* --- building ------------------------------------------------------------ */

static struct node *
node_new(const struct spec *s, struct node *parent, size_t index)
{
	struct node *n = xcalloc(1, sizeof *n);

	n->spec = s;
	n->parent = parent;
	n->index = index;
	n->path = parent ? xasprintf("%s/%s", parent->path, s->name)
	                 : xstrdup(s->name);
	if (s->nchildren > 0) {
		n->children = xcalloc(s->nchildren, sizeof *n->children);
		n->nchildren = s->nchildren;
		for (size_t i = 0; i < s->nchildren; i++)
			n->children[i] = node_new(s->children[i], n, i);
	}
	return n;
}

static void
node_free(struct node *n)
{
	for (size_t i = 0; i < n->nchildren; i++)
		node_free(n->children[i]);
	free(n->children);
	free(n->stamps);
	free(n->path);
	free(n);
}

/* Where nodes removed by a reload wait, stopping, until they can be freed. */
static const struct spec graveyard_spec = {.name = "(removed)",
                                           .kind = KIND_SUPERVISOR};

struct tree *
tree_new(const struct spec *root)
{
	struct tree *t = xcalloc(1, sizeof *t);

	t->root = node_new(root, NULL, 0);
	t->graveyard = node_new(&graveyard_spec, NULL, 0);
	return t;
}

void
tree_free(struct tree *t)
{
	if (t == NULL)
		return;
	node_free(t->root);
	node_free(t->graveyard);
	free(t->acts);
	free(t);
}

/* --- actions ------------------------------------------------------------- */

static void
push(struct tree *t, struct action a)
{
	if (t->exited)
		return;
	if (t->nacts == t->capacts) {
		size_t cap = t->capacts ? t->capacts * 2 : 16;
		struct action *v = xcalloc(cap, sizeof *v);
		for (size_t i = 0; i < t->nacts; i++)
			v[i] = t->acts[(t->act0 + i) % t->capacts];
		free(t->acts);
		t->acts = v;
		t->capacts = cap;
		t->act0 = 0;
	}
	t->acts[(t->act0 + t->nacts++) % t->capacts] = a;
	if (a.kind == ACT_EXIT)
		t->exited = true;
}

bool
tree_next_action(struct tree *t, struct action *a)
{
	if (t->nacts == 0)
		return false;
	*a = t->acts[t->act0];
	t->act0 = (t->act0 + 1) % t->capacts;
	t->nacts--;
	return true;
}

static void
event(struct tree *t, enum engine_event e, struct node *n, struct reason r)
{
	push(t, (struct action){
	                .kind = ACT_EVENT, .node = n, .event = e, .reason = r});
}

static void
set_state(struct tree *t, struct node *n, enum node_state s)
{
	if (n->spec->kind == KIND_WORKER) {
		if (n->state == NODE_STOPPED && s != NODE_STOPPED)
			t->live++;
		else if (n->state != NODE_STOPPED && s == NODE_STOPPED)
			t->live--;
	}
	n->state = s;
	n->since_ms = t->now;
}

/* --- restart intensity (OTP's add_restart) ------------------------------- */

/* Keep stamps within [now - period, now], add now; false means give up. */
static bool
add_restart(struct node *s, uint64_t now)
{
	unsigned cap = s->spec->intensity + 1;

	if (s->stamps == NULL)
		s->stamps = xcalloc(cap, sizeof *s->stamps);
	while (s->nstamps > 0 &&
	       s->stamps[s->stamp0] + s->spec->period_ms < now) {
		s->stamp0 = (s->stamp0 + 1) % cap;
		s->nstamps--;
	}
	s->stamps[(s->stamp0 + s->nstamps) % cap] = now;
	s->nstamps++;
	return s->nstamps <= s->spec->intensity;
}

unsigned
tree_window_restarts(const struct node *s, uint64_t now)
{
	unsigned n = 0, cap = s->spec->intensity + 1;

	for (unsigned i = 0; i < s->nstamps; i++)
		if (s->stamps[(s->stamp0 + i) % cap] + s->spec->period_ms >=
		    now)
			n++;
	return n;
}

static void
forget_restarts(struct node *s)
{
	free(s->stamps);
	s->stamps = NULL;
	s->nstamps = s->stamp0 = 0;
}

/* --- starting and stopping one node -------------------------------------- */

/* Start a stopped node. A worker without start_timeout, or a supervisor whose
 * children all came up at once, is RUNNING when this returns. */
static void
node_start(struct tree *t, struct node *n)
{
	if (n->state != NODE_STOPPED)
		return;
	n->starts++;
	n->draining = false;
	if (n->spec->kind == KIND_WORKER) {
		set_state(t, n,
		          n->spec->start_timeout_ms ? NODE_STARTING
		                                    : NODE_RUNNING);
		push(t, (struct action){.kind = ACT_START, .node = n});
		return;
	}
	forget_restarts(n); /* a restarted subtree starts with fresh history */
	set_state(t, n, NODE_STARTING);
	n->job = (struct job){.kind = JOB_START,
	                      .starting = true,
	                      .lo = 0,
	                      .hi = n->nchildren,
	                      .cursor = 0};
	sup_run(t, n);
}

static void
clear_pending(struct node *s)
{
	for (size_t i = 0; i < s->nchildren; i++)
		s->children[i]->pending = false;
}

/* Begin stopping a supervisor's children: in turn last-first, or a drain. */
static void
sup_begin_stop(struct tree *t, struct node *s, enum stop_outcome outcome,
               bool drain)
{
	clear_pending(s);
	set_state(t, s, NODE_STOPPING);
	s->draining = drain;
	s->job = (struct job){.kind = JOB_STOP,
	                      .parallel = drain,
	                      .outcome = outcome,
	                      .lo = 0,
	                      .hi = s->nchildren,
	                      .cursor = s->nchildren};
	sup_run(t, s);
}

/* Ask a node to stop (or drain); it settles to STOPPED now or later. */
static void
node_stop(struct tree *t, struct node *n, bool drain)
{
	if (n->spec->kind == KIND_WORKER) {
		if (n->state == NODE_STARTING || n->state == NODE_RUNNING) {
			set_state(t, n, NODE_STOPPING);
			n->draining = drain;
			push(t, (struct action){.kind = drain ? ACT_DRAIN
			                                      : ACT_STOP,
			                        .node = n});
		}
		return;
	}
	if (n->state == NODE_STOPPED)
		return;
	if (n->state == NODE_STOPPING) {
		/* the parent wants it down: it no longer escalates when done */
		n->job.outcome = OUTCOME_STOPPED;
		return;
	}
	sup_begin_stop(t, n, OUTCOME_STOPPED, drain);
}

static bool
job_should_start(const struct job *j, const struct node *c)
{
	if (j->marked)
		return c->marked;
	if (c->held)
		return false;
	/* OTP: a temporary child is never restarted, not even when a
	 * sibling's failure took it down. */
	return j->kind == JOB_START || j->forced ||
	       c->spec->restart != RESTART_TEMPORARY;
}

/* Stop phase: true when every child in range is stopped. */
static bool
job_stop_step(struct tree *t, struct node *s)
{
	struct job *j = &s->job;

	if (j->parallel) {
		bool all = true;
		for (size_t i = j->hi; i-- > j->lo;) { /* told last-first too */
			struct node *c = s->children[i];
			if (c->state == NODE_STARTING ||
			    c->state == NODE_RUNNING)
				node_stop(t, c, true);
			if (c->state != NODE_STOPPED)
				all = false;
		}
		return all;
	}
	while (j->cursor > j->lo) {
		struct node *c = s->children[j->cursor - 1];
		bool mine = !j->marked || c->marked;
		if (mine && c->state != NODE_STOPPED)
			node_stop(t, c, false);
		if (mine && c->state != NODE_STOPPED)
			return false;
		j->cursor--;
	}
	return true;
}

/* Start phase: true when every child in range has settled. */
static bool
job_start_step(struct tree *t, struct node *s)
{
	struct job *j = &s->job;

	while (j->cursor < j->hi) {
		struct node *c = s->children[j->cursor];
		if (j->marked && !c->marked) {
			j->cursor++;
			continue;
		}
		if (c->state == NODE_STARTING)
			return false; /* wait for its ready (or its failure) */
		if (c->state == NODE_STOPPED && !j->launched &&
		    job_should_start(j, c)) {
			j->launched = true;
			node_start(t, c);
			continue;
		}
		j->cursor++;
		j->launched = false;
	}
	return true;
}

/* A failure that waited for the job: handle the first, in start order. */
static void
handle_pending(struct tree *t, struct node *s)
{
	for (size_t i = 0; i < s->nchildren && s->job.kind == JOB_NONE &&
	                   s->state == NODE_RUNNING;
	     i++) {
		struct node *c = s->children[i];
		if (!c->pending)
			continue;
		c->pending = false;
		if (c->state == NODE_STOPPED)
			child_failed(t, s, c, c->pending_reason);
	}
}

/* The supervisor's job is done: settle it and tell whoever waits. */
static void
job_finish(struct tree *t, struct node *s)
{
	enum job_kind kind = s->job.kind;
	enum stop_outcome outcome = s->job.outcome;

	if (s->job.marked)
		for (size_t i = 0; i < s->nchildren; i++)
			s->children[i]->marked = false;
	s->job = (struct job){.kind = JOB_NONE};
	if (kind != JOB_STOP) {
		bool was_starting = s->state == NODE_STARTING;
		set_state(t, s, NODE_RUNNING);
		handle_pending(t, s);
		if (was_starting && s->parent != NULL)
			child_settled(t, s->parent);
		return;
	}
	set_state(t, s, NODE_STOPPED);
	if (outcome == OUTCOME_GAVE_UP) {
		forget_restarts(s);
		s->last = (struct reason){REASON_GAVE_UP, 0};
		if (s->parent == NULL) {
			push(t, (struct action){.kind = ACT_EXIT, .code = 75});
			return;
		}
		event(t, EE_ESCALATED, s, s->last);
		child_failed(t, s->parent, s, s->last);
		return;
	}
	event(t, EE_STOPPED, s, s->last);
	if (s->parent != NULL)
		child_settled(t, s->parent);
	else if (t->shutting_down || t->draining)
		push(t, (struct action){.kind = ACT_EXIT, .code = 0});
}

/* Drive a supervisor's job as far as it goes without waiting. */
static void
sup_run(struct tree *t, struct node *s)
{
	struct job *j = &s->job;

	if (s->in_run || j->kind == JOB_NONE)
		return;
	s->in_run = true;
	if (!j->starting) {
		if (!job_stop_step(t, s))
			goto wait;
		if (j->kind != JOB_STOP) {
			j->starting = true;
			j->launched = false;
			j->cursor = j->lo;
		}
	}
	if (j->starting && !job_start_step(t, s))
		goto wait;
	s->in_run = false;
	job_finish(t, s);
	return;
wait:
	s->in_run = false;
}

/* A child reached the state its supervisor asked for (or stopped). */
static void
child_settled(struct tree *t, struct node *s)
{
	sup_run(t, s);
}

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
	if (!add_restart(s, t->now)) {
		event(t, EE_GAVE_UP, s, r);
		sup_begin_stop(t, s, OUTCOME_GAVE_UP, false);
		return;
	}
	event(t, EE_RESTARTING, c, r);
	switch (s->spec->strategy) {
	case ONE_FOR_ONE:
		node_start(t, c);
		break;
	case ONE_FOR_ALL:
	case REST_FOR_ONE:
		s->job = (struct job){
		        .kind = JOB_RESTART,
		        .lo = s->spec->strategy == ONE_FOR_ALL ? 0 : c->index,
		        .hi = s->nchildren,
		        .cursor = s->nchildren};
		sup_run(t, s);
		break;
	}
}

/* Child c of s is down without being asked to stop. */
static void
child_failed(struct tree *t, struct node *s, struct node *c, struct reason r)
{
	struct job *j = &s->job;

	c->last = r;
	if (t->shutting_down || t->draining || c->draining ||
	    s->state == NODE_STOPPING || s->state == NODE_STOPPED ||
	    !should_restart(c, r)) {
		child_settled(t, s);
		return;
	}
	if (j->kind != JOB_NONE || s->in_run) {
		/* the job stops this child anyway: nothing more to do */
		if (!j->starting && c->index >= j->lo && c->index < j->hi &&
		    (!j->marked || c->marked)) {
			child_settled(t, s);
			return;
		}
		c->pending = true;
		c->pending_reason = r;
		child_settled(t, s); /* it may be the child the job waits on */
		return;
	}
	restart_decision(t, s, c, r);
}

/* --- events in ----------------------------------------------------------- */

void
tree_start(struct tree *t, uint64_t now)
{
	t->now = now;
	node_start(t, t->root);
}

void
tree_exited(struct tree *t, struct node *n, struct reason r, uint64_t now)
{
	enum node_state was = n->state;

	t->now = now;
	if (was == NODE_STOPPED)
		return;
	set_state(t, n, NODE_STOPPED);
	n->last = r;
	if (was == NODE_STOPPING)
		child_settled(t, n->parent);
	else
		child_failed(t, n->parent, n, r);
}

void
tree_ready(struct tree *t, struct node *n, uint64_t now)
{
	t->now = now;
	if (n->state != NODE_STARTING)
		return;
	set_state(t, n, NODE_RUNNING);
	child_settled(t, n->parent);
}

void
tree_shutdown(struct tree *t, uint64_t now)
{
	t->now = now;
	if (t->shutting_down)
		return;
	t->shutting_down = true;
	if (t->root->state == NODE_STOPPED) {
		push(t, (struct action){.kind = ACT_EXIT, .code = 0});
		return;
	}
	if (t->root->state == NODE_STOPPING && !t->draining)
		return; /* already going down; a give-up keeps its 75 */
	if (t->draining) {
		/* cut the drain short: every worker still draining is stopped
		 * now, by its ordinary shutdown sequence */
		t->draining = false;
		for (struct node *n = t->root; n != NULL;) {
			if (n->spec->kind == KIND_WORKER &&
			    n->state == NODE_STOPPING && n->draining)
				push(t, (struct action){.kind = ACT_STOP,
				                        .node = n});
			/* preorder walk without recursion */
			if (n->nchildren > 0) {
				n = n->children[0];
				continue;
			}
			while (n->parent != NULL &&
			       n->index + 1 == n->parent->nchildren)
				n = n->parent;
			n = n->parent ? n->parent->children[n->index + 1]
			              : NULL;
		}
		return;
	}
	node_stop(t, t->root, false);
}

void
tree_drain(struct tree *t, uint64_t now)
{
	t->now = now;
	if (t->draining || t->shutting_down)
		return;
	t->draining = true;
	if (t->root->state == NODE_STOPPED) {
		push(t, (struct action){.kind = ACT_EXIT, .code = 0});
		return;
	}
	if (t->root->state == NODE_STOPPING) {
		/* already going down (giving up): let it finish */
		return;
	}
	node_stop(t, t->root, true);
}

/* Operator stop or drain: either way the node then stays stopped. */
static int
command_hold(struct tree *t, struct node *n, uint64_t now, bool drain)
{
	t->now = now;
	if (t->shutting_down || t->draining)
		return -1;
	n->held = true;
	n->pending = false;
	node_stop(t, n, drain);
	return 0;
}

int
tree_command_stop(struct tree *t, struct node *n, uint64_t now)
{
	return command_hold(t, n, now, false);
}

/* Drain one subtree: its workers finish and exit. */
int
tree_command_drain(struct tree *t, struct node *n, uint64_t now)
{
	return command_hold(t, n, now, true);
}

int
tree_command_start(struct tree *t, struct node *n, uint64_t now)
{
	t->now = now;
	if (t->shutting_down || t->draining)
		return -1;
	if (n->parent != NULL && n->parent->state != NODE_RUNNING)
		return -1; /* its supervisor is not up to own it */
	n->held = false;
	if (n->state == NODE_STOPPED)
		node_start(t, n);
	return 0;
}

int
tree_command_restart(struct tree *t, struct node *n, uint64_t now)
{
	struct node *s = n->spec->kind == KIND_SUPERVISOR ? n : n->parent;

	t->now = now;
	if (t->shutting_down || t->draining || s->state != NODE_RUNNING ||
	    s->job.kind != JOB_NONE)
		return -1;
	/* A supervisor restarts all its children, a worker just itself:
	 * stop then start, settled in order, never counted toward intensity,
	 * and temporary or held children included since an operator asked. */
	if (s == n) {
		forget_restarts(s);
		for (size_t i = 0; i < s->nchildren; i++)
			s->children[i]->held = false;
	}
	n->held = false;
	s->job = (struct job){.kind = JOB_RESTART,
	                      .forced = true,
	                      .lo = s == n ? 0 : n->index,
	                      .hi = s == n ? s->nchildren : n->index + 1};
	s->job.cursor = s->job.hi;
	sup_run(t, s);
	return 0;
}

/* --- reload ------------------------------------------------------------- */

static bool
busy(const struct node *n)
{
	if (n->job.kind != JOB_NONE)
		return true;
	for (size_t i = 0; i < n->nchildren; i++)
		if (busy(n->children[i]))
			return true;
	return false;
}

/* Free what past reloads removed and has since stopped; true when none is
 * left, so the specs they pointed into may go too. */
bool
tree_graveyard_sweep(struct tree *t)
{
	struct node *g = t->graveyard;
	size_t k = 0;

	for (size_t i = 0; i < g->nchildren; i++) {
		struct node *n = g->children[i];
		if (n->state == NODE_STOPPED) {
			node_free(n);
			continue;
		}
		n->index = k;
		g->children[k++] = n;
	}
	g->nchildren = k;
	return k == 0;
}

static void
report(char *buf, size_t len, unsigned *count, const char *name)
{
	size_t at = strlen(buf);

	(*count)++;
	if (at + strlen(name) + 6 >= len) {
		if (at + 4 < len && strcmp(buf + at - 3, "...") != 0)
			strcat(buf, "...");
		return;
	}
	snprintf(buf + at, len - at, "%s%s", at ? ", " : "", name);
}

/* Keep the newest stamps when the intensity (the ring's size) changes. */
static void
restamp(struct node *s, const struct spec *ns)
{
	unsigned oldcap = s->spec->intensity + 1, cap = ns->intensity + 1, keep;
	uint64_t *v;

	if (s->stamps == NULL || oldcap == cap)
		return;
	keep = s->nstamps < cap ? s->nstamps : cap;
	v = xcalloc(cap, sizeof *v);
	for (unsigned i = 0; i < keep; i++)
		v[i] = s->stamps[(s->stamp0 + s->nstamps - keep + i) % oldcap];
	free(s->stamps);
	s->stamps = v;
	s->stamp0 = 0;
	s->nstamps = keep;
}

static void
bury(struct tree *t, struct node *n)
{
	struct node *g = t->graveyard;

	g->children = xreallocarray(g->children, g->nchildren + 1,
	                            sizeof *g->children);
	n->parent = g;
	n->index = g->nchildren;
	g->children[g->nchildren++] = n;
	n->pending = false;
	n->held = true;
	node_stop(t, n, false);
}

static void reload_node(struct tree *, struct node *, const struct spec *,
                        struct reload_report *);

/* Match a supervisor's new children to its old ones by name and kind. */
static void
reload_children(struct tree *t, struct node *s, const struct spec *ns,
                struct reload_report *r)
{
	struct node **v = xcalloc(ns->nchildren ? ns->nchildren : 1, sizeof *v);
	bool *taken = xcalloc(s->nchildren ? s->nchildren : 1, sizeof *taken);

	for (size_t i = 0; i < ns->nchildren; i++) {
		const struct spec *cs = ns->children[i];
		for (size_t k = 0; k < s->nchildren && v[i] == NULL; k++) {
			struct node *oc = s->children[k];
			if (!taken[k] && oc->spec->kind == cs->kind &&
			    strcmp(oc->spec->name, cs->name) == 0) {
				taken[k] = true;
				v[i] = oc;
				reload_node(t, oc, cs, r);
			}
		}
		if (v[i] == NULL) {
			v[i] = node_new(cs, s, i);
			v[i]->marked = true;
			report(r->added, sizeof r->added, &r->nadded,
			       v[i]->path);
		}
		v[i]->index = i;
	}
	for (size_t k = s->nchildren; k-- > 0;) /* stopped last-first */
		if (!taken[k]) {
			report(r->removed, sizeof r->removed, &r->nremoved,
			       s->children[k]->path);
			bury(t, s->children[k]);
		}
	free(taken);
	free(s->children);
	s->children = v;
	s->nchildren = ns->nchildren;
}

static void
reload_node(struct tree *t, struct node *n, const struct spec *ns,
            struct reload_report *r)
{
	bool policy = !spec_policy_equal(n->spec, ns);

	if (n->spec->kind == KIND_WORKER) {
		bool proc = !spec_process_equal(n->spec, ns);
		n->spec = ns;
		if (proc && n->state != NODE_STOPPED) {
			n->marked = true;
			report(r->restarted, sizeof r->restarted,
			       &r->nrestarted, n->path);
		} else if (proc || policy)
			report(r->updated, sizeof r->updated, &r->nupdated,
			       n->path);
		return;
	}
	if (policy) {
		restamp(n, ns);
		report(r->updated, sizeof r->updated, &r->nupdated, n->path);
	}
	n->spec = ns;
	reload_children(t, n, ns, r);
}

/* Start each supervisor's reload job, parents first. */
static void
reload_jobs(struct tree *t, struct node *s)
{
	bool any = false;

	for (size_t i = 0; i < s->nchildren; i++)
		any |= s->children[i]->marked;
	if (any && s->state == NODE_RUNNING) {
		s->job = (struct job){.kind = JOB_RESTART,
		                      .marked = true,
		                      .lo = 0,
		                      .hi = s->nchildren,
		                      .cursor = s->nchildren};
		sup_run(t, s);
	} else if (any) {
		for (size_t i = 0; i < s->nchildren; i++)
			s->children[i]->marked = false;
	}
	for (size_t i = 0; i < s->nchildren; i++)
		if (s->children[i]->spec->kind == KIND_SUPERVISOR &&
		    s->children[i]->job.kind == JOB_NONE)
			reload_jobs(t, s->children[i]);
}

static void
repath(struct node *n)
{
	free(n->path);
	n->path = n->parent ? xasprintf("%s/%s", n->parent->path, n->spec->name)
	                    : xstrdup(n->spec->name);
	for (size_t i = 0; i < n->nchildren; i++)
		repath(n->children[i]);
}

int
tree_reload(struct tree *t, const struct spec *root, uint64_t now,
            struct reload_report *r, const char **why)
{
	bool renamed;

	t->now = now;
	memset(r, 0, sizeof *r);
	if (t->shutting_down || t->draining) {
		*why = "the tree is shutting down or draining";
		return -1;
	}
	if (busy(t->root)) {
		*why = "a restart is in progress; reload again once it settles";
		return -1;
	}
	tree_graveyard_sweep(t);
	renamed = strcmp(t->root->spec->name, root->name) != 0;
	reload_node(t, t->root, root, r);
	if (renamed)
		repath(t->root);
	reload_jobs(t, t->root);
	return 0;
}

/* --- lookup -------------------------------------------------------------- */

static struct node *
find_in(struct node *n, const char *name)
{
	if (strcmp(n->spec->name, name) == 0 || strcmp(n->path, name) == 0)
		return n;
	for (size_t i = 0; i < n->nchildren; i++) {
		struct node *r = find_in(n->children[i], name);
		if (r != NULL)
			return r;
	}
	return NULL;
}

struct node *
tree_find(struct tree *t, const char *name)
{
	return find_in(t->root, name);
}
