/*
 * reload.c - a new config applied as a diff: nodes matched by name and kind
 * keep their state; removed ones are stopped and wait in the graveyard until
 * tree_sweep() frees them; new and changed ones start in a job of their
 * supervisor ("marked"), parents first.
 */
#include <stdlib.h>
#include <string.h>

#include "circuit.h"
#include "dynamic.h"
#include "engine.h"
#include "intensity.h"
#include "progress.h"
#include "reload.h"
#include "util.h"

static void
list_add(struct reload_list *l, const char *path)
{
	l->paths = xreallocarray(l->paths, l->count + 1, sizeof *l->paths);
	l->paths[l->count++] = xstrdup(path);
}

void
reload_report_free(struct reload_report *r)
{
	struct reload_list *all[] = {&r->added, &r->removed, &r->restarted,
	                             &r->updated};

	for (size_t i = 0; i < 4; i++) {
		for (size_t k = 0; k < all[i]->count; k++)
			free(all[i]->paths[k]);
		free(all[i]->paths);
		all[i]->paths = NULL;
		all[i]->count = 0;
	}
}

const char *
reload_busy(const struct node *top)
{
	for (const struct node *n = top; n != NULL; n = tree_walk_next(top, n))
		if (n->super != NULL && n->super->job.kind != JOB_NONE)
			return n->super->job.kind == JOB_STOP
			               ? "a supervisor is stopping its children"
			               : "a restart is in progress";
	return NULL;
}

/* A removed node: stopped (it is held, so nothing restarts it) and kept in
 * the graveyard until it has stopped and no action points at it. */
static void
bury(struct tree *t, struct node *n)
{
	struct node *g = t->graveyard;

	g->children = xreallocarray(g->children, g->nchildren + 1,
	                            sizeof *g->children);
	n->parent = g;
	n->index = g->nchildren;
	g->children[g->nchildren++] = n;
	/* its tasks, or the task itself when its template went */
	for (struct node *d = n; d != NULL; d = tree_walk_next(n, d)) {
		dynamic_child_buried(t, d);
		d->removed = true;
	}
	n->pending = false;
	n->restart_asked = false;
	n->held = true;
	node_stop(t, n, STOP_GRACEFUL);
}

/* A path past its root's name ("root/pool/K" -> "pool/K"). */
static const char *
below_root(const char *path)
{
	const char *slash = strchr(path, '/');

	return slash != NULL ? slash + 1 : "";
}

/* Whether n is a worker of the live tree or the graveyard named as c: a
 * configured worker's name, a task's pool and key (a pool removed and
 * added back, its task spawned again), or the same path (its checkpoints',
 * a task's place taken by a configured worker). */
static bool
namesake(const struct node *n, const struct node *c)
{
	if (n == c || !node_is_worker(n))
		return false;
	if (strcmp(below_root(n->path), below_root(c->path)) == 0)
		return true; /* the root renamed meanwhile: the graveyard's
		                paths keep its old name */
	if ((n->task == NULL) != (c->task == NULL))
		return false;
	if (n->task != NULL)
		return strcmp(n->task->sup, c->task->sup) == 0 &&
		       strcmp(n->task->key, c->task->key) == 0;
	return strcmp(n->spec->name, c->spec->name) == 0;
}

bool
reload_namesake_alive(const struct tree *t, const struct node *c)
{
	const struct node *g = t->graveyard;

	if (g->nchildren == 0)
		return false;
	for (const struct node *n = g; n != NULL; n = tree_walk_next(g, n))
		if (namesake(n, c) && !node_down(n))
			return true;
	return false;
}

void
reload_buried_down(struct tree *t, const struct node *n)
{
	struct node **sups = NULL;
	size_t k = 0;

	/* every one waiting (a worker moved away by its name, a task put in
	 * its place by its path), gathered first: starts change the tree */
	for (struct node *h = t->root; h != NULL;
	     h = tree_walk_next(t->root, h))
		if (h->parent != NULL && namesake(h, n)) {
			sups = xreallocarray(sups, k + 1, sizeof *sups);
			sups[k++] = h->parent;
		}
	for (size_t i = 0; i < k; i++) {
		sup_run(t, sups[i]);
		dynamic_start_waiting(t, sups[i]); /* a task */
	}
	free(sups);
}

static void reload_node(struct tree *, struct node *, const struct spec *,
                        struct reload_report *);

/* The old children of a supervisor, sorted by name and kind, so matching
 * the new ones costs O(n log n) whatever their number. */
struct match {
	struct node *node;
	bool taken;
};

static int
match_cmp(const void *a, const void *b)
{
	const struct node *x = ((const struct match *)a)->node;
	const struct node *y = ((const struct match *)b)->node;
	int c = strcmp(x->spec->name, y->spec->name);

	return c ? c : (int)x->spec->kind - (int)y->spec->kind;
}

static struct node *
match_take(struct match *m, size_t n, const struct spec *cs)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct spec *ms = m[mid].node->spec;
		int c = strcmp(ms->name, cs->name);
		if (c == 0)
			c = (int)ms->kind - (int)cs->kind;
		if (c == 0) {
			/* a task's node (its template gone) is never a
			 * configured child's: it owns its spec */
			if (m[mid].taken || m[mid].node->task != NULL)
				return NULL;
			m[mid].taken = true;
			return m[mid].node;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* Match a supervisor's new children to its old ones by name and kind. A
 * new order of the children it keeps (its start and stop order) lists it
 * updated, unless listed is true (it is already). */
static void
reload_children(struct tree *t, struct node *s, const struct spec *ns,
                struct reload_report *r, bool listed)
{
	size_t n = s->nchildren, last = 0;
	struct match *m = xcalloc(n ? n : 1, sizeof *m);
	struct node **v = xcalloc(ns->nchildren ? ns->nchildren : 1, sizeof *v);
	struct node **old = s->children;
	bool reordered = false;

	for (size_t k = 0; k < n; k++)
		m[k].node = old[k];
	qsort(m, n, sizeof *m, match_cmp);
	for (size_t i = 0; i < ns->nchildren; i++) {
		v[i] = match_take(m, n, ns->children[i]);
		if (v[i] != NULL) {
			reordered |= v[i]->index < last;
			last = v[i]->index;
		}
	}
	if (reordered && !listed) /* before its children, as a policy's */
		list_add(&r->updated, s->path);
	for (size_t i = 0; i < ns->nchildren; i++) {
		if (v[i] != NULL) {
			reload_node(t, v[i], ns->children[i], r);
		} else {
			v[i] = tree_node_new(ns->children[i], s, i);
			v[i]->marked = true;
			list_add(&r->added, v[i]->path);
		}
		v[i]->index = i;
	}
	for (size_t k = 0; k < n; k++)
		if (!m[k].taken)
			m[k].node->removed = true; /* for the pass below */
	s->children = v;
	s->nchildren = ns->nchildren;
	for (size_t k = n; k-- > 0;) /* stopped last-first */
		if (old[k]->removed) {
			list_add(&r->removed, old[k]->path);
			bury(t, old[k]);
		}
	free(m);
	free(old);
}

/* A worker waiting by a policy the reload changed waits by the new one
 * (it was listed updated and waited on): a restart now temporary calls its
 * restart off; a backoff now none ends at once, for its group too; a
 * circuit now off lets it go. The reload's job starts what it marks. */
static void
reload_waiting(struct tree *t, struct node *n, const struct spec *was)
{
	const struct spec *s = n->spec;
	bool quarantined = n->state == NODE_QUARANTINED;

	if (n->held || (n->state != NODE_BACKOFF && !quarantined))
		return;
	if (s->pol->restart == RESTART_TEMPORARY &&
	    was->pol->restart != RESTART_TEMPORARY) {
		wake_set(t, n, 0);
		n->waiting = WAIT_NONE;
		n->marked = false; /* a group ended by this reload leaves it */
		tree_set_state(t, n, NODE_STOPPED);
		return;
	}
	if (quarantined
	            ? s->pol->circuit.enabled || !was->pol->circuit.enabled
	            : s->pol->backoff.enabled || !was->pol->backoff.enabled ||
	                      n->waiting == WAIT_GROUP) /* not its wait */
		return;
	if (quarantined) {
		circuit_reset(n);
		wake_set(t, n, 0);
		tree_set_state(t, n, NODE_STOPPED);
		/* a group of its supervisor waits: it starts after them */
		if (n->parent->super->group_at != 0) {
			n->waiting = WAIT_GROUP;
			n->backoff_until = n->parent->super->group_at;
			return;
		}
	}
	n->marked = true;
	for (size_t i = 0; n->waiting && i < n->parent->nchildren; i++) {
		struct node *c = n->parent->children[i];
		if (c->waiting && c->backoff_until == n->backoff_until &&
		    c->spec->pol->restart != RESTART_TEMPORARY)
			c->marked = true; /* its group, not another's */
	}
}

static void
reload_node(struct tree *t, struct node *n, const struct spec *ns,
            struct reload_report *r)
{
	bool policy = !spec_policy_equal(n->spec, ns);

	/* `autostart` turned on: what only it held starts, as if added (a
	 * reload that turns it off stops nothing: it is about starting) */
	if (n->held_config && ns->pol->autostart) {
		n->held = n->held_config = false;
		n->marked = true;
	}

	if (node_is_worker(n)) {
		bool proc = !spec_process_equal(n->spec, ns);
		const struct spec *was = n->spec;
		n->spec = ns;
		if (policy && budget_reloaded(t, n)) /* a limit was raised */
			n->marked = true;
		if (policy)
			reload_waiting(t, n, was);
		/* one waiting for its group starts with it, as it is now; a
		 * failed one with a new command is tried (the fix of a bad
		 * key), but not one whose budget is spent: it was started and
		 * killed at once, a restart counted (a raised limit, or
		 * reset, brings it back) */
		if (proc && n->state != NODE_STOPPED &&
		    n->state != NODE_EXHAUSTED && !n->held && !n->waiting) {
			n->marked = true;
			list_add(&r->restarted, n->path);
		} else if (proc || policy) {
			list_add(&r->updated, n->path);
		}
		return;
	}
	if (policy) {
		intensity_resize(n, ns);
		list_add(&r->updated, n->path);
	}
	int dyn = dynamic_reload(n, ns);
	if (dyn > 0) { /* its spawned children stay */
		if (dyn == 2 && !policy)
			list_add(&r->updated, n->path);
		n->spec = ns;
		if (policy && budget_reloaded(t, n)) /* as a static one's */
			n->marked = true;
		return;
	}
	n->spec = ns;
	if (policy && budget_reloaded(t, n))
		n->marked = true;
	reload_children(t, n, ns, r, policy);
}

/* The marks below a marked supervisor: its (re)start by its parent's job
 * starts each of its children (but the held), so a mark of theirs would
 * restart them once started (a reload that releases a supervisor and a
 * child of it, or adds one under it). */
static void
reload_unmark_below(struct node *top)
{
	for (struct node *n = tree_walk_next(top, top); n != NULL;
	     n = tree_walk_next(top, n))
		n->marked = false;
}

/* Start each supervisor's reload job, parents first. */
static void
reload_jobs(struct tree *t, struct node *s)
{
	bool any = false;

	for (size_t i = 0; i < s->nchildren; i++) {
		struct node *c = s->children[i];
		if (c->marked && !node_is_worker(c))
			reload_unmark_below(c);
		any |= c->marked;
	}
	if (any && s->state == NODE_RUNNING) {
		sup_begin_job(t, s,
		              (struct job){.kind = JOB_RESTART,
		                           .phase = PHASE_STOP,
		                           .select = SELECT_MARKED,
		                           .how = STOP_GRACEFUL,
		                           .hi = s->nchildren});
	} else if (any) {
		for (size_t i = 0; i < s->nchildren; i++)
			s->children[i]->marked = false;
	}
	for (size_t i = 0; i < s->nchildren; i++)
		if (!node_is_worker(s->children[i]) &&
		    s->children[i]->super->job.kind == JOB_NONE)
			reload_jobs(t, s->children[i]);
}

static void
repath(struct node *top)
{
	for (struct node *n = top; n != NULL; n = tree_walk_next(top, n)) {
		free(n->path);
		n->path = n->parent ? xasprintf("%s/%s", n->parent->path,
		                                n->spec->name)
		                    : xstrdup(n->spec->name);
	}
}

/* The report's paths of the live tree under its new root's name (they were
 * made under the old one's); the removed keep the old, as their events do. */
static void
reroot_list(struct reload_list *l, const char *from, const char *to)
{
	size_t k = strlen(from);

	for (size_t i = 0; i < l->count; i++) {
		char *p = l->paths[i];
		if (strncmp(p, from, k) != 0 || (p[k] != '/' && p[k] != '\0'))
			continue;
		l->paths[i] = xasprintf("%s%s", to, p + k);
		free(p);
	}
}

int
reload_apply(struct tree *t, const struct spec *root, uint64_t now,
             struct reload_report *r, const char **why)
{
	bool renamed;

	t->now = now;
	memset(r, 0, sizeof *r);
	if (t->shutting_down || t->draining) {
		*why = "the tree is shutting down or draining";
		return -1;
	}
	if (reload_busy(t->root) != NULL) { /* the shell holds it till then */
		*why = "a supervisor is busy with its children";
		return -1;
	}
	renamed = strcmp(t->root->spec->name, root->name) != 0;
	reload_node(t, t->root, root, r);
	/* every path changes: said, though its policy did not (updated []);
	 * it is first when listed (a policy's, an order's) */
	if (renamed && (r->updated.count == 0 ||
	                strcmp(r->updated.paths[0], t->root->path) != 0))
		list_add(&r->updated, t->root->path);
	if (renamed) {
		struct reload_list *live[] = {&r->added, &r->restarted,
		                              &r->updated};
		for (size_t i = 0; i < sizeof live / sizeof *live; i++)
			reroot_list(live[i], t->root->path, root->name);
		repath(t->root);
	}
	reload_jobs(t, t->root);
	return 0;
}
