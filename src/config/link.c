/*
 * link.c - the documents into one tree: `parent:` attachments, cycles, the
 * implicit root, depth, then `defaults:` handed down, `instances:` expanded
 * and every name checked once. Every step is linear or n log n: names are
 * found by sorting, cycles by one walk over the parent links.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "parse.h"
#include "util.h"

struct named {
	const char *name;
	struct spec *spec;
	size_t order; /* declaration order, for "first declared at" */
	size_t top;   /* the top-level document it is in */
};

struct link {
	struct parse *p;
	struct named *all; /* every node before instances, sorted by name */
	size_t nall;
	size_t cap;
	struct spec **attached; /* per top: the supervisor it went under */
	struct spec *implicit;
};

static void
link_push(struct link *l, struct spec *s, size_t top)
{
	if (l->nall == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 64;
		l->all = xreallocarray(l->all, l->cap, sizeof *l->all);
	}
	l->all[l->nall] = (struct named){s->name, s, l->nall, top};
	l->nall++;
}

/* A document's nodes; its own nesting is at most CONFIG_MAX_DEPTH. */
static void
link_collect(struct link *l, struct spec *s, size_t top)
{
	link_push(l, s, top);
	for (size_t i = 0; i < s->nchildren; i++)
		link_collect(l, s->children[i], top);
}

static int
link_named_cmp(const void *a, const void *b)
{
	const struct named *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	if (c != 0)
		return c;
	return x->order < y->order ? -1 : x->order > y->order;
}

static struct named *
link_lookup(const struct link *l, const char *name)
{
	size_t lo = 0, hi = l->nall;

	while (lo < hi) { /* first entry with this name */
		size_t mid = lo + (hi - lo) / 2;
		if (strcmp(l->all[mid].name, name) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < l->nall && strcmp(l->all[lo].name, name) == 0 ? &l->all[lo]
	                                                          : NULL;
}

/* Sorted by name then declaration: each repeat is one error. */
static void
link_duplicates(struct parse *p, struct named *v, size_t n)
{
	for (size_t i = 1; i < n; i++)
		if (strcmp(v[i].name, v[i - 1].name) == 0)
			load_locerr(p, &v[i].spec->loc,
			            "duplicate name \"%s\" (first declared at "
			            "%s:%d)",
			            v[i].name, v[i - 1].spec->loc.file,
			            v[i - 1].spec->loc.line);
}

/* A document going under a supervisor named by its `parent:`. */
struct attach {
	struct spec *par;
	size_t top;
};

static int
link_attach_cmp(const void *a, const void *b)
{
	const struct attach *x = a, *y = b;
	uintptr_t px = (uintptr_t)x->par, py = (uintptr_t)y->par;

	if (px != py)
		return px < py ? -1 : 1;
	return x->top < y->top ? -1 : x->top > y->top;
}

/* Append the documents, grouped by parent: one realloc per supervisor,
 * so ten thousand documents under one parent cost no n^2 copying. */
static void
link_append(struct link *l, struct attach *v, size_t n)
{
	if (n > 0)
		qsort(v, n, sizeof *v, link_attach_cmp);
	for (size_t i = 0, j; i < n; i = j) {
		struct spec *par = v[i].par;

		for (j = i; j < n && v[j].par == par; j++)
			;
		par->children =
		        xreallocarray(par->children, par->nchildren + (j - i),
		                      sizeof(struct spec *));
		for (size_t k = i; k < j; k++) {
			par->children[par->nchildren++] = l->p->tops[v[k].top];
			l->attached[v[k].top] = par;
		}
	}
}

/* The supervisor each top names as parent, or NULL with an error. */
static struct spec *
link_parent_of(struct link *l, struct spec *s, long *owner)
{
	struct named *par = link_lookup(l, s->parent);

	*owner = -1;
	if (par == NULL && strcmp(s->parent, "root") == 0)
		return NULL; /* the implicit root, made below */
	if (par == NULL)
		load_locerr(l->p, &s->parent_loc, "unknown parent \"%s\"",
		            s->parent);
	else if (par->spec->kind != KIND_SUPERVISOR)
		load_locerr(l->p, &s->parent_loc,
		            "parent \"%s\" is a worker, not a supervisor",
		            s->parent);
	else {
		*owner = (long)par->top;
		return par->spec;
	}
	return NULL;
}

/*
 * Cycles among `parent:` links, found in one walk (each top is visited
 * once): a cycle is broken at its last-declared document, with an error.
 */
static void
link_break_cycles(struct link *l, const long *owner, bool *broken)
{
	size_t n = l->p->ntops, *stack = xcalloc(n + 1, sizeof *stack);
	unsigned char *state = xcalloc(n + 1, 1); /* 0 new, 1 open, 2 done */

	for (size_t i = 0; i < n; i++) {
		size_t depth = 0;
		long j = (long)i;

		while (j >= 0 && state[j] == 0) {
			state[j] = 1;
			stack[depth++] = (size_t)j;
			j = owner[j];
		}
		if (j >= 0 && state[j] == 1) { /* back on our own path */
			size_t last = (size_t)j;
			for (size_t k = depth;
			     k-- > 0 && stack[k] != (size_t)j;)
				if (stack[k] > last)
					last = stack[k];
			broken[last] = true;
			load_locerr(l->p, &l->p->tops[last]->parent_loc,
			            "cyclic parent: \"%s\" is inside \"%s\"",
			            l->p->tops[last]->parent,
			            l->p->tops[last]->name);
		}
		while (depth > 0)
			state[stack[--depth]] = 2;
	}
	free(stack);
	free(state);
}

/* Attach every `parent:` document; count the parentless ones. */
static size_t
link_attach(struct link *l, bool *need_implicit, struct spec *declared_root)
{
	struct parse *p = l->p;
	long *owner = xcalloc(p->ntops, sizeof *owner);
	bool *broken = xcalloc(p->ntops, sizeof *broken);
	struct spec **par = xcalloc(p->ntops, sizeof *par);
	struct attach *v = xcalloc(p->ntops, sizeof *v);
	size_t nroots = 0, n = 0;

	for (size_t i = 0; i < p->ntops; i++) {
		owner[i] = -1;
		if (p->tops[i]->parent == NULL)
			nroots++;
		else
			par[i] = link_parent_of(l, p->tops[i], &owner[i]);
	}
	link_break_cycles(l, owner, broken);
	for (size_t i = 0; i < p->ntops; i++) {
		if (par[i] != NULL && !broken[i])
			v[n++] = (struct attach){par[i], i};
		if (p->tops[i]->parent != NULL && par[i] == NULL &&
		    declared_root == NULL && owner[i] < 0 &&
		    strcmp(p->tops[i]->parent, "root") == 0)
			*need_implicit = true;
	}
	link_append(l, v, n);
	free(v);
	free(owner);
	free(broken);
	free(par);
	return nroots;
}

/* The root: the one parentless supervisor, or an implicit `root`. */
static void
link_root(struct link *l)
{
	struct parse *p = l->p;
	struct named *dr = link_lookup(l, "root");
	struct spec *declared_root = dr ? dr->spec : NULL, *only = NULL;
	bool need_implicit = false;
	size_t nroots = link_attach(l, &need_implicit, declared_root);

	for (size_t i = 0; i < p->ntops; i++)
		if (p->tops[i]->parent == NULL)
			only = p->tops[i];
	if (nroots == 1 && !need_implicit && only->kind == KIND_SUPERVISOR) {
		p->cfg->root = only;
		return;
	}
	if (declared_root != NULL && (nroots > 1 || need_implicit ||
	                              declared_root->kind != KIND_SUPERVISOR ||
	                              declared_root->parent != NULL)) {
		load_locerr(
		        p, &declared_root->loc,
		        "two roots: \"root\" is declared here and the other "
		        "parentless nodes need an implicit root of that "
		        "name; give them \"parent: root\" or rename this "
		        "node");
		return;
	}
	l->implicit = spec_new(NULL, KIND_SUPERVISOR);
	l->implicit->name = xstrdup("root");
	l->implicit->loc =
	        (struct loc){p->ntops ? p->tops[0]->loc.file : "-", 0, 0};
	l->implicit->children = xcalloc(p->ntops, sizeof(struct spec *));
	for (size_t i = 0; i < p->ntops; i++)
		if (p->tops[i]->parent == NULL ||
		    (l->attached[i] == NULL && declared_root == NULL &&
		     strcmp(p->tops[i]->parent, "root") == 0))
			l->implicit->children[l->implicit->nchildren++] =
			        p->tops[i];
	p->cfg->root = l->implicit;
}

/* Whether the tree is deeper than max; never walks below max + 1. */
static bool
link_too_deep(const struct spec *s, int max)
{
	if (max < 0)
		return true;
	for (size_t i = 0; i < s->nchildren; i++)
		if (link_too_deep(s->children[i], max - 1))
			return true;
	return false;
}

/* NAME-1 .. NAME-N in place of a worker with `instances: N`. */
static size_t
link_instances(struct parse *p, struct spec *w, struct spec **out)
{
	size_t made = 0;

	/* the longest made: NAME-N of the last N */
	if (strlen(w->name) + 1 +
	            (size_t)snprintf(NULL, 0, "%u", w->instances) >
	    CONFIG_NAME_MAX) {
		load_locerr(p, &w->loc,
		            "worker %s: with instances, names NAME-N must fit "
		            "in %d characters",
		            w->name, CONFIG_NAME_MAX);
		return 0;
	}
	if (p->nspecs - 1 + w->instances > CONFIG_MAX_NODES) {
		load_exhaust(p, CONFIG_MAX_NODES, "workers and supervisors");
		return 0;
	}
	p->nspecs += w->instances - 1;
	for (unsigned i = 1; i <= w->instances; i++) {
		struct spec *c;

		if (!load_charge(p, spec_bytes(w)))
			break;
		c = spec_clone(w, &p->pool);
		free(c->name);
		c->name = xasprintf("%s-%u", w->name, i);
		c->instance = i;
		if (made > 0) /* one command for all the copies */
			spec_share_argv(out[0], c);
		out[made++] = c;
	}
	return made;
}

/* A supervisor's children after defaults and instances. */
static void
link_children(struct parse *p, struct spec *s, const struct spec **chain,
              size_t depth)
{
	size_t n = 0, cap = s->nchildren, ngone = 0;
	struct spec **v, **gone;

	if (s->defaults != NULL)
		chain[depth++] = s->defaults;
	template_link(p, s, chain, depth);
	for (size_t i = 0; i < s->nchildren; i++) {
		struct spec *c = s->children[i];
		if (c->kind == KIND_WORKER) {
			keys_inherit(p, c, chain, depth);
			keys_check_worker(p, c);
			if (c->instances > 1)
				cap += c->instances - 1;
		}
	}
	v = xcalloc(cap ? cap : 1, sizeof *v);
	gone = xcalloc(s->nchildren ? s->nchildren : 1, sizeof *gone);
	for (size_t i = 0; i < s->nchildren; i++) {
		struct spec *c = s->children[i];
		if (c->kind == KIND_SUPERVISOR)
			link_children(p, c, chain, depth);
		if (c->kind == KIND_WORKER && c->instances > 0 &&
		    !p->exhausted) {
			n += link_instances(p, c, v + n);
			gone[ngone++] = c;
		} else {
			v[n++] = c;
		}
	}
	/* the workers their copies replace, only now: one may have lent its
	 * command, as parsed, to a sibling copied after it (`instances:`
	 * handed down by `defaults:` is known only here) */
	for (size_t i = 0; i < ngone; i++)
		spec_free(gone[i]);
	free(gone);
	free(s->children);
	s->children = v;
	s->nchildren = n;
}

static void
link_collect_final(struct link *l, struct spec *s)
{
	link_push(l, s, 0);
	for (size_t i = 0; i < s->nchildren; i++)
		link_collect_final(l, s->children[i]);
}

static int
link_final_cmp(const void *a, const void *b)
{
	const struct named *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	if (c != 0)
		return c;
	if (x->spec->loc.file != y->spec->loc.file)
		return strcmp(x->spec->loc.file, y->spec->loc.file);
	if (x->spec->loc.line != y->spec->loc.line)
		return x->spec->loc.line - y->spec->loc.line;
	return x->order < y->order ? -1 : x->order > y->order;
}

/* `spawn_from` names configured workers: a typo granted nobody, silently
 * (and a worker of `instances:` is granted by its copies' names). */
static void
link_spawn_from(struct link *l)
{
	char first[CONFIG_NAME_MAX + 16], hint[2 * CONFIG_NAME_MAX + 48];

	for (size_t i = 0; i < l->nall; i++) {
		const struct spec *s = l->all[i].spec;
		for (char **n = s->spawn_from; n != NULL && *n != NULL; n++) {
			const struct named *w = link_lookup(l, *n);
			if (w != NULL && w->spec->kind == KIND_WORKER)
				continue;
			snprintf(first, sizeof first, "%s-1", *n);
			hint[0] = '\0';
			if (w == NULL && link_lookup(l, first) != NULL)
				snprintf(hint, sizeof hint,
				         " (its copies are %s, %s-2...)", first,
				         *n);
			load_locerr(
			        l->p, &s->loc,
			        "spawn_from: \"%s\" is no configured worker%s",
			        *n, hint);
		}
	}
}

/* Defaults, instances, then every final name once. */
static void
link_finish(struct link *l)
{
	struct parse *p = l->p;
	const struct spec *chain[CONFIG_MAX_DEPTH + 2];

	link_children(p, p->cfg->root, chain, 0);
	if (p->exhausted)
		return;
	l->nall = 0;
	link_collect_final(l, p->cfg->root);
	qsort(l->all, l->nall, sizeof *l->all, link_final_cmp);
	link_duplicates(p, l->all, l->nall);
	link_spawn_from(l);
}

/* Take the documents apart so that each is freed once. */
static void
link_teardown(struct link *l, bool whole)
{
	struct parse *p = l->p;

	if (whole) { /* every document hangs from the root */
		spec_free(p->cfg->root);
		p->cfg->root = NULL;
		return;
	}
	for (size_t i = p->ntops; i-- > 0;) /* appended: undo last-first */
		if (l->attached[i] != NULL)
			l->attached[i]->nchildren--;
	if (l->implicit != NULL) {
		l->implicit->nchildren = 0;
		spec_free(l->implicit);
	}
	for (size_t i = 0; i < p->ntops; i++)
		spec_free(p->tops[i]);
	p->cfg->root = NULL;
}

void
link_tree(struct parse *p)
{
	struct link l = {.p = p};
	size_t before = p->errs->total;
	bool linked = false;

	l.attached = xcalloc(p->ntops ? p->ntops : 1, sizeof *l.attached);
	if (!p->exhausted) {
		for (size_t i = 0; i < p->ntops; i++)
			link_collect(&l, p->tops[i], i);
		if (l.nall > 0)
			qsort(l.all, l.nall, sizeof *l.all, link_named_cmp);
		link_root(&l);
	}
	if (p->cfg->root != NULL && p->errs->total == before &&
	    link_too_deep(p->cfg->root, CONFIG_MAX_DEPTH))
		load_locerr(p, &p->cfg->root->loc, "tree deeper than %d levels",
		            CONFIG_MAX_DEPTH);
	if (p->cfg->root != NULL && p->errs->total == before &&
	    !p->cfg->root->pol->autostart)
		load_locerr(p, &p->cfg->root->loc,
		            "autostart: false on the root, which always starts "
		            "(set it on its children)");
	if (p->cfg->root != NULL && p->errs->total == before) {
		linked = true;
		link_finish(&l);
	} else if (!p->exhausted) {
		link_duplicates(p, l.all, l.nall);
	}
	if (p->errs->total > p->errs_before)
		link_teardown(&l, linked);
	free(l.attached);
	free(l.all);
}
