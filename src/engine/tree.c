/*
 * tree.c - the engine's tree: nodes, lookup, the action queue, and the
 * events that come in from the shell.
 *
 * Actions point at nodes. A node removed by a reload is therefore freed only
 * by tree_sweep(), which the shell calls once the queue is empty (DESIGN §2:
 * one pump, removed nodes freed there, after the queue).
 */
#include <stdlib.h>
#include <string.h>

#include "circuit.h"
#include "dynamic.h"
#include "engine.h"
#include "intensity.h"
#include "progress.h"
#include "util.h"

static const char *const state_names[NODE__STATES] = {
        "stopped", "starting",    "running", "stopping",
        "backoff", "quarantined", "failed",  "exhausted"};

const char *
node_state_name(enum node_state s)
{
	return state_names[s];
}

const char *
circuit_state_name(enum circuit_state s)
{
	static const char *const names[] = {"closed", "open", "half_open"};

	return names[s];
}

bool
node_down(const struct node *n)
{
	return n->state == NODE_STOPPED || n->state >= NODE_BACKOFF;
}

bool
node_unhealthy(const struct node *n)
{
	if (n->state == NODE_QUARANTINED || n->state == NODE_FAILED ||
	    n->state == NODE_EXHAUSTED)
		return !n->held;
	/* one stopped by its group's restart, waiting, is not (it gave up
	 * once, was restarted since) */
	return n->state == NODE_STOPPED && !n->held && !n->waiting &&
	       n->last.kind == REASON_GAVE_UP;
}

/* A worker holds a process in these states (and counts as live). */
static bool
state_live(enum node_state s)
{
	return s == NODE_STARTING || s == NODE_RUNNING || s == NODE_STOPPING;
}

/* --- building ------------------------------------------------------------ */

struct node *
tree_node_new(const struct spec *s, struct node *parent, size_t index)
{
	struct node *n = xcalloc(1, sizeof *n);

	n->spec = s;
	if (s->kind == KIND_SUPERVISOR)
		n->super = xcalloc(1, sizeof *n->super);
	n->parent = parent;
	n->index = index;
	n->path = parent ? xasprintf("%s/%s", parent->path, s->name)
	                 : xstrdup(s->name);
	/* `autostart: false`: not started with its supervisor (nor by its
	 * group's restarts) until an operator starts it */
	if (parent != NULL && !s->pol->autostart)
		n->held = n->held_config = true;
	if (s->nchildren > 0) {
		n->children = xcalloc(s->nchildren, sizeof *n->children);
		n->nchildren = s->nchildren;
		for (size_t i = 0; i < s->nchildren; i++)
			n->children[i] = tree_node_new(s->children[i], n, i);
	}
	return n;
}

static void
node_free(struct node *n)
{
	for (size_t i = 0; i < n->nchildren; i++)
		node_free(n->children[i]);
	free(n->children);
	if (n->super != NULL)
		free(n->super->stamps);
	free(n->super);
	if (n->circuit != NULL)
		free(n->circuit->stamps);
	free(n->circuit);
	free(n->acct);
	free(n->progress);
	free(n->pwatch);
	free(n->declared);
	free(n->path);
	dynamic_task_free(n);
	free(n);
}

void
tree_node_free(struct node *n)
{
	node_free(n);
}

/* Where nodes removed by a reload wait, stopping, until they can be freed. */
static const struct spec graveyard_spec = {.name = "(removed)",
                                           .pol = &config_policy_default,
                                           .kind = KIND_SUPERVISOR};

struct tree *
tree_new(const struct spec *root)
{
	struct tree *t = xcalloc(1, sizeof *t);

	t->root = tree_node_new(root, NULL, 0);
	t->graveyard = tree_node_new(&graveyard_spec, NULL, 0);
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
	free(t->heap);
	free(t->dyn_dirty);
	free(t);
}

struct node *
tree_walk_next(const struct node *top, const struct node *n)
{
	if (n->nchildren > 0)
		return n->children[0];
	while (n != top && n->parent != NULL &&
	       n->index + 1 == n->parent->nchildren)
		n = n->parent;
	if (n == top || n->parent == NULL)
		return NULL;
	return n->parent->children[n->index + 1];
}

/* --- actions ------------------------------------------------------------- */

void
tree_push(struct tree *t, struct action a)
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
	if (a.kind == ACT_START)
		t->starts++;
	if (a.kind == ACT_EXIT)
		t->exited = true;
}

/* A queue a burst grew (a start of 1,000 workers: 40 KiB) is given back
 * once drained; the usual few actions a turn keep theirs. */
#define TREE_ACTS_KEEP 64

bool
tree_next_action(struct tree *t, struct action *a)
{
	if (t->nacts == 0) {
		if (t->capacts > TREE_ACTS_KEEP) {
			free(t->acts);
			t->acts = NULL;
			t->capacts = t->act0 = 0;
		}
		return false;
	}
	*a = t->acts[t->act0];
	t->act0 = (t->act0 + 1) % t->capacts;
	t->nacts--;
	if (a->kind == ACT_START)
		t->starts--;
	return true;
}

void
tree_event_value(struct tree *t, enum engine_event e, struct node *n,
                 struct reason r, uint64_t value)
{
	tree_push(t, (struct action){.kind = ACT_EVENT,
	                             .node = n,
	                             .event = e,
	                             .reason = r,
	                             .value = value});
}

void
tree_event(struct tree *t, enum engine_event e, struct node *n, struct reason r)
{
	tree_event_value(t, e, n, r, 0);
}

void
tree_set_state(struct tree *t, struct node *n, enum node_state s)
{
	if (node_is_worker(n)) {
		t->changes += n->state != s;
		if (!state_live(n->state) && state_live(s))
			t->live++;
		else if (state_live(n->state) && !state_live(s))
			t->live--;
	}
	if (n->state != s) /* a supervisor's job ending leaves its uptime */
		n->since_ms = t->now;
	n->state = s;
}

bool
tree_sweep(struct tree *t)
{
	struct node *g = t->graveyard;
	size_t k = 0;

	if (t->nacts > 0)
		return false; /* an action may still point at a removed node */
	for (size_t i = 0; i < g->nchildren; i++) {
		struct node *n = g->children[i];
		if (node_down(n) && n->session == NULL) {
			for (struct node *d = n; d != NULL;
			     d = tree_walk_next(n, d))
				wake_set(t, d, 0);
			node_free(n);
			continue;
		}
		n->index = k;
		g->children[k++] = n;
	}
	g->nchildren = k;
	return k == 0;
}

/* --- either kind of node ------------------------------------------------- */

void
node_start(struct tree *t, struct node *n)
{
	n->waiting = WAIT_NONE;
	if (node_is_worker(n))
		worker_start(t, n);
	else
		sup_start(t, n);
}

void
node_stop(struct tree *t, struct node *n, enum stop_how how)
{
	if (node_is_worker(n))
		worker_stop(t, n, how);
	else
		sup_stop(t, n, how);
}

/* --- events in ----------------------------------------------------------- */

void
tree_start(struct tree *t, uint64_t now)
{
	t->now = now;
	budget_recount(t); /* spend the state store put back counts */
	node_start(t, t->root);
}

void
tree_exited(struct tree *t, struct node *n, struct reason r, uint64_t now)
{
	t->now = now;
	worker_exited(t, n, r);
}

void
tree_ready(struct tree *t, struct node *n, uint64_t now)
{
	t->now = now;
	worker_ready(t, n);
}

/* Progress moves when any of steps, tokens, cost or state changes. */
static bool
progress_moves(const struct progress *p, const struct progress *u,
               unsigned fields)
{
	return ((fields & PROGRESS_STEPS) &&
	        (!p->has_steps || p->steps != u->steps)) ||
	       ((fields & PROGRESS_TOKENS) &&
	        (!p->has_tokens || p->tokens != u->tokens)) ||
	       ((fields & PROGRESS_COST) &&
	        (!p->has_cost || p->cost != u->cost)) ||
	       ((fields & PROGRESS_STATE) &&
	        (strncmp(p->state, u->state, sizeof p->state) != 0 ||
	         p->state_hash != u->state_hash));
}

void
tree_progress_forget(struct node *n)
{
	struct progress *p = n->progress;

	if (p == NULL)
		return;
	p->carried = (unsigned char)((p->has_steps ? PROGRESS_STEPS : 0) |
	                             (p->has_tokens ? PROGRESS_TOKENS : 0) |
	                             (p->has_cost ? PROGRESS_COST : 0) |
	                             (p->state[0] ? PROGRESS_STATE : 0));
	p->status[0] = '\0';
}

void
tree_declare(struct tree *t, struct node *n, const struct declaration *d,
             uint64_t now)
{
	t->now = now;
	if (n->declared == NULL)
		n->declared = xmalloc(sizeof *n->declared);
	*n->declared = *d;
	n->declared->at = now;
}

const struct declaration *
tree_declaration(const struct node *n)
{
	static const struct declaration none = {.kind = DECLARED_NONE};

	return n->declared != NULL ? n->declared : &none;
}

enum declared_kind
tree_declared(const struct node *n, uint64_t now)
{
	const struct declaration *d = tree_declaration(n);

	return now <= d->at + DECLARATION_TTL_MS ? d->kind : DECLARED_NONE;
}

enum declared_kind
tree_declared_take(struct tree *t, struct node *n)
{
	enum declared_kind k = tree_declared(n, t->now);

	n->exit_declared = k;
	if (n->declared != NULL)
		n->declared->kind = DECLARED_NONE;
	return k;
}

void
tree_beat(struct tree *t, struct node *n, const struct progress *u,
          unsigned fields, uint64_t now)
{
	struct progress *p;
	bool moved;

	t->now = now;
	n->beats++;
	if (n->pwatch != NULL)
		n->pwatch->beat_at = now;
	if (fields == 0) {
		progress_beat(t, n, u, 0, false);
		return; /* a bare beat costs no memory */
	}
	if (n->progress == NULL)
		n->progress = xcalloc(1, sizeof *n->progress);
	p = n->progress;
	moved = progress_moves(p, u, fields);
	if (moved) {
		n->progress_moved = now;
		if (node_circuit(n)->state == CIRCUIT_HALF_OPEN &&
		    circuit_try_close(t, n))
			tree_event(t, EE_CIRCUIT_CLOSED, n, n->last);
	}
	if (fields & PROGRESS_STEPS) {
		p->steps = u->steps;
		p->has_steps = true;
	}
	if (fields & PROGRESS_TOKENS) {
		p->tokens = u->tokens;
		p->has_tokens = true;
	}
	if (fields & PROGRESS_COST) {
		p->cost = u->cost;
		p->has_cost = true;
	}
	if (fields & PROGRESS_STATE) {
		memcpy(p->state, u->state, sizeof p->state);
		p->state_hash = u->state_hash;
	}
	if (fields & PROGRESS_STATUS)
		memcpy(p->status, u->status, sizeof p->status);
	p->carried &= (unsigned char)~fields; /* this incarnation's now */
	progress_beat(t, n, u, fields, moved);
}

void
tree_exit(struct tree *t, int code)
{
	if (tree_over(t))
		return;
	t->ending = true;
	t->exit_code = code;
	tree_exit_when_buried(t);
}

void
tree_exit_when_buried(struct tree *t)
{
	const struct node *g = t->graveyard;

	if (!t->ending || t->exited)
		return;
	for (size_t i = 0; i < g->nchildren; i++)
		if (!node_down(g->children[i]))
			return; /* a supervisor is down once its children are */
	tree_push(t, (struct action){.kind = ACT_EXIT, .code = t->exit_code});
}

/* Every stop under way under top goes by the shutdown sequence from now
 * on: a worker stopping is stopped now, a drain of its (SIGUSR1's, an
 * operator's stop or restart, a reload's restart or removal, a spent
 * budget's) cut short; a supervisor's stop job stops the children it has
 * not reached yet plainly. So a tree stops within its largest `shutdown`
 * (§9). */
static void
cut_stops_short(struct tree *t, struct node *top)
{
	for (struct node *n = top; n != NULL; n = tree_walk_next(top, n)) {
		if (node_is_worker(n) && n->state == NODE_STOPPING)
			worker_force(t, n);
		else if (!node_is_worker(n) && n->super->job.kind != JOB_NONE &&
		         n->super->job.phase == PHASE_STOP)
			n->super->job.how = STOP_PLAIN;
	}
}

void
tree_shutdown(struct tree *t, uint64_t now)
{
	bool drained = t->draining;

	t->now = now;
	if (t->shutting_down)
		return;
	t->shutting_down = true;
	t->draining = false;
	cut_stops_short(t, t->root);
	cut_stops_short(t, t->graveyard);
	if (t->root->state == NODE_STOPPED) {
		/* a give-up's 75 waiting for the graveyard stays */
		tree_exit(t, 0);
		return;
	}
	if (drained || t->root->state == NODE_STOPPING)
		return; /* already going down; a give-up keeps its 75 */
	node_stop(t, t->root, STOP_PLAIN);
}

void
tree_drain(struct tree *t, uint64_t now)
{
	t->now = now;
	if (t->draining || t->shutting_down)
		return;
	t->draining = true;
	if (t->root->state == NODE_STOPPED) {
		tree_exit(t, 0);
		return;
	}
	if (t->root->state == NODE_STOPPING)
		return; /* already going down (giving up): let it finish */
	node_stop(t, t->root, STOP_DRAIN);
}

/* --- lookup -------------------------------------------------------------- */

/* A dynamic child answers to its path and to "SUP/KEY", never to its bare
 * key: a spawned key cannot shadow a configured node's name. */
static bool
tree_task_named(const struct node *n, const char *name)
{
	size_t sl = strlen(n->parent->spec->name);

	return strncmp(name, n->parent->spec->name, sl) == 0 &&
	       name[sl] == '/' && strcmp(name + sl + 1, n->spec->name) == 0;
}

struct node *
tree_find(struct tree *t, const char *name)
{
	for (struct node *n = t->root; n != NULL;
	     n = tree_walk_next(t->root, n))
		if (n->task != NULL ? tree_task_named(n, name) ||
		                              strcmp(n->path, name) == 0
		                    : strcmp(n->spec->name, name) == 0 ||
		                              strcmp(n->path, name) == 0)
			return n;
	return NULL;
}
