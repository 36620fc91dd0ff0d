/*
 * dynamic.c - a supervisor's dynamic children (DESIGN §12).
 *
 * A supervisor with a template has no static children; each spawn appends a
 * node whose spec is the template with the task's inputs (the node owns that
 * spec, so a reload that retires the config never pulls it away). A child
 * whose task ended (done, dead, cancelled) is held, reported by an action,
 * and freed by dynamic_sweep() once no action can point at it and its
 * supervisor runs no job (job ranges are indices into its children).
 */
#include <stdlib.h>
#include <string.h>

#include "dynamic.h"
#include "engine.h"
#include "util.h"

static char **
dynamic_strv_dup(char *const *v)
{
	size_t n = 0;
	char **c;

	while (v != NULL && v[n] != NULL)
		n++;
	c = xcalloc(n + 1, sizeof *c);
	for (size_t i = 0; i < n; i++)
		c[i] = xstrdup(v[i]);
	return c;
}

static void
dynamic_strv_free(char **v)
{
	for (size_t i = 0; v != NULL && v[i] != NULL; i++)
		free(v[i]);
	free(v);
}

const char *
dynamic_refusal_name(enum spawn_refusal r)
{
	static const char *const names[] = {"ok", "not_dynamic", "not_running",
	                                    "shutting_down", "max_children"};

	return names[r];
}

static bool
dynamic_live(const struct node *c)
{
	return c->task != NULL && c->task->end == TASK_END_NONE;
}

/* A live task that has never run: added (its record being stored), or
 * stored and waiting for its pool or its old run. */
static bool
dynamic_unstarted(const struct node *c)
{
	return dynamic_live(c) && !c->removed && c->starts == 0 &&
	       c->state == NODE_STOPPED;
}

size_t
dynamic_count(const struct node *sup)
{
	return sup->nchildren - sup->super->finished;
}

/* Newest first: the child a spawn's answer asks about was appended last. */
struct node *
dynamic_find(const struct node *sup, const char *key)
{
	for (size_t i = sup->nchildren; i-- > 0;) {
		struct node *c = sup->children[i];
		if (dynamic_live(c) && strcmp(c->task->key, key) == 0)
			return c;
	}
	return NULL;
}

unsigned long
dynamic_next_number(struct node *sup)
{
	return ++sup->super->spawned;
}

void
dynamic_number_past(struct node *sup, unsigned long n)
{
	if (sup->super->spawned < n)
		sup->super->spawned = n;
}

static enum spawn_refusal
dynamic_check(const struct tree *t, const struct node *sup)
{
	if (sup->spec->tmpl == NULL)
		return SPAWN_NOT_DYNAMIC;
	if (t->shutting_down || t->draining || tree_over(t))
		return SPAWN_SHUTTING_DOWN;
	if (sup->state != NODE_RUNNING || sup->super->job.kind != JOB_NONE ||
	    sup->removed)
		return SPAWN_NOT_RUNNING;
	if (dynamic_count(sup) >= sup->spec->pol->max_children)
		return SPAWN_MAX_CHILDREN;
	return SPAWN_OK;
}

struct node *
dynamic_add(struct tree *t, struct node *sup, const char *key,
            char *const *args, char *const *env, uint64_t now,
            enum spawn_refusal *why)
{
	struct spec *s;
	struct node *c;

	t->now = now;
	if ((*why = dynamic_check(t, sup)) != SPAWN_OK)
		return NULL;
	s = config_task_spec(sup->spec->tmpl, key, args, env);
	c = tree_node_new(s, sup, sup->nchildren);
	c->task = xcalloc(1, sizeof *c->task);
	c->task->key = xstrdup(key);
	c->task->sup = xstrdup(sup->spec->name);
	c->task->args = dynamic_strv_dup(args);
	c->task->env = dynamic_strv_dup(env);
	c->task->uncommitted = true;
	c->held = true;
	c->held_config = false; /* a task starts when spawned */
	sup->children = xreallocarray(sup->children, sup->nchildren + 1,
	                              sizeof *sup->children);
	sup->children[sup->nchildren++] = c;
	return c;
}

static void dynamic_end(struct tree *, struct node *, enum task_end,
                        enum engine_event);

void
dynamic_start(struct tree *t, struct node *c, uint64_t now)
{
	struct node *s = c->parent;

	t->now = now;
	if (c->task != NULL)
		c->task->uncommitted = false;
	if (!dynamic_unstarted(c))
		return; /* cancelled meanwhile, or an operator started it */
	if (c->task->stopped) { /* as an operator's stop of a running task */
		dynamic_end(t, c, TASK_END_CANCELLED, EE_TASK_CANCELLED);
		return;
	}
	c->held = false;
	if (!t->shutting_down && !t->draining && !tree_over(t) &&
	    s->state == NODE_RUNNING && s->super->job.kind == JOB_NONE &&
	    !reload_namesake_alive(t, c)) /* else once that is down */
		node_start(t, c);
}

bool
dynamic_stop_unstarted(struct tree *t, struct node *c)
{
	if (!dynamic_unstarted(c) || c->task->uncommitted)
		return false;
	dynamic_end(t, c, TASK_END_CANCELLED, EE_TASK_CANCELLED);
	return true;
}

void
dynamic_start_waiting(struct tree *t, struct node *s)
{
	if (s->spec->tmpl == NULL || t->shutting_down || t->draining ||
	    tree_over(t))
		return;
	for (size_t i = 0; i < s->nchildren && s->state == NODE_RUNNING &&
	                   s->super->job.kind == JOB_NONE;
	     i++) {
		struct node *c = s->children[i];
		if (dynamic_unstarted(c) && !c->held &&
		    !reload_namesake_alive(t, c))
			node_start(t, c);
	}
}

struct node *
dynamic_spawn(struct tree *t, struct node *sup, const char *key,
              char *const *args, char *const *env, uint64_t now,
              enum spawn_refusal *why)
{
	struct node *c = dynamic_add(t, sup, key, args, env, now, why);

	if (c != NULL)
		dynamic_start(t, c, now);
	return c;
}

void
dynamic_task_free(struct node *n)
{
	if (n->task == NULL)
		return;
	free(n->task->key);
	free(n->task->sup);
	dynamic_strv_free(n->task->args);
	dynamic_strv_free(n->task->env);
	free(n->task);
	n->task = NULL;
	config_task_spec_free((struct spec *)n->spec);
	n->spec = NULL;
}

void
dynamic_respec(struct node *n)
{
	const struct spec *tmpl;

	if (n->task == NULL || n->starts == 0 || n->parent == NULL ||
	    (tmpl = n->parent->spec->tmpl) == NULL)
		return;
	config_task_spec_free((struct spec *)n->spec);
	n->spec = config_task_spec(tmpl, n->task->key, n->task->args,
	                           n->task->env);
}

/* Remember that sup has ended children to free. */
static void
dynamic_mark(struct tree *t, struct node *sup)
{
	sup->super->finished++;
	if (sup->super->dyn_dirty)
		return;
	sup->super->dyn_dirty = true;
	if (t->ndirty == t->capdirty) {
		t->capdirty = t->capdirty ? t->capdirty * 2 : 8;
		t->dyn_dirty = xreallocarray(t->dyn_dirty, t->capdirty,
		                             sizeof *t->dyn_dirty);
	}
	t->dyn_dirty[t->ndirty++] = sup;
}

static void
dynamic_end(struct tree *t, struct node *c, enum task_end end,
            enum engine_event e)
{
	c->task->end = end;
	c->held = true; /* no job or command starts it again */
	c->pending = false;
	c->restart_asked = false;
	wake_set(t, c, 0);
	tree_event(t, e, c, c->last);
	if (c->parent != t->graveyard) /* else tree_sweep frees it */
		dynamic_mark(t, c->parent);
}

/* Whether the exit that took c down finished its task, whatever stopped
 * it: the task declared `done` (an exit 0 alone is not enough during a
 * stop: a process killed by it may exit 0), in a pool where a normal exit
 * is the task's end (a `permanent` one restarts it). */
bool
dynamic_finished(const struct node *c)
{
	return c->exit_declared == DECLARED_DONE &&
	       c->spec->pol->restart != RESTART_PERMANENT;
}

void
dynamic_child_ended(struct tree *t, struct node *c, bool dead)
{
	if (!dynamic_live(c) || c->removed)
		return;
	if (dead && !dynamic_finished(c)) /* done as its own budget ran out */
		dynamic_end(t, c, TASK_END_DEAD, EE_DEAD_LETTERED);
	else
		dynamic_end(t, c, TASK_END_DONE, EE_TASK_DONE);
}

void
dynamic_child_stopped(struct tree *t, struct node *c)
{
	if (!dynamic_live(c) || c->removed)
		return;
	if (dynamic_finished(c))
		dynamic_end(t, c, TASK_END_DONE, EE_TASK_DONE);
	else if (c->held && !t->shutting_down && !t->draining)
		dynamic_end(t, c, TASK_END_CANCELLED, EE_TASK_CANCELLED);
}

void
dynamic_child_buried(struct tree *t, struct node *c)
{
	if (!dynamic_live(c) || t->shutting_down || t->draining)
		return;
	dynamic_end(t, c, TASK_END_CANCELLED, EE_TASK_CANCELLED);
}

bool
dynamic_unspawn(struct tree *t, struct node *c, uint64_t now)
{
	t->now = now;
	if (!dynamic_live(c))
		return false;
	c->held = true;
	c->pending = false;
	c->restart_asked = false;
	if (c->starts == 0 && c->state == NODE_STOPPED) {
		c->task->end = TASK_END_CANCELLED;
		if (c->parent != t->graveyard)
			dynamic_mark(t, c->parent);
		return true;
	}
	node_stop(t, c, STOP_GRACEFUL);
	if (node_down(c)) /* it waited (backoff): no stop to wait for */
		dynamic_child_stopped(t, c);
	return false;
}

/* Free sup's ended children and close the gaps (no job holds indices). */
static void
dynamic_compact(struct tree *t, struct node *sup)
{
	size_t k = 0;

	for (size_t i = 0; i < sup->nchildren; i++) {
		struct node *c = sup->children[i];
		if (c->task != NULL && c->task->end != TASK_END_NONE &&
		    node_down(c) && c->session == NULL) {
			wake_set(t, c, 0);
			tree_node_free(c);
			sup->super->finished--;
			continue;
		}
		c->index = k;
		sup->children[k++] = c;
	}
	sup->nchildren = k;
}

void
dynamic_sweep(struct tree *t)
{
	size_t k = 0;

	if (t->nacts > 0)
		return; /* an action may still point at an ended child */
	for (size_t i = 0; i < t->ndirty; i++) {
		struct node *s = t->dyn_dirty[i];
		if (!s->removed &&
		    (s->super->job.kind != JOB_NONE || s->in_run)) {
			t->dyn_dirty[k++] = s; /* a job holds indices: later */
			continue;
		}
		s->super->dyn_dirty = false;
		if (!s->removed) /* a removed one is freed whole by reload */
			dynamic_compact(t, s);
	}
	t->ndirty = k;
}

int
dynamic_reload(const struct node *sup, const struct spec *ns)
{
	const struct spec *old = sup->spec->tmpl;

	if (old == NULL || ns->tmpl == NULL)
		return 0;
	return spec_process_equal(old, ns->tmpl) &&
	                       spec_policy_equal(old, ns->tmpl)
	               ? 1
	               : 2;
}
