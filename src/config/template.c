/*
 * template.c - a supervisor's dynamic children (DESIGN §12): `template:`
 * (a worker without a name), `max_children`, `spawn_from`, and the spec of
 * one dynamic child built from the template and a task's inputs.
 */
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "parse.h"
#include "util.h"

#define TEMPLATE_MAX_CHILDREN 10000 /* CONFIG_MAX_NODES: one tree's worth */

/* `template:` every worker key but a name, `parent` and `instances`. */
void
template_parse(struct parse *p, const struct key *k, yaml_node_t *v,
               struct spec *s, int depth)
{
	struct pair *pr;
	struct spec *t;
	size_t n;

	(void)k;
	if (v->type != YAML_MAPPING_NODE) {
		load_err(
		        p, &v->start_mark,
		        "template: expected a worker mapping (without a name)");
		return;
	}
	if (map_pairs(p, v, "template", &pr, &n) < 0)
		return;
	if ((t = spec_new(p, KIND_WORKER)) == NULL) {
		free(pr);
		return;
	}
	spec_free(s->tmpl);
	s->tmpl = t;
	t->name = xstrdup(s->name ? s->name : "template");
	t->loc = load_loc(p, &v->start_mark);
	/* a task ends; unless it says so */
	spec_pol(t)->restart = RESTART_TRANSIENT;
	for (size_t i = 0; i < n && !p->exhausted; i++) {
		const struct key *tk = keys_find(pr[i].key);

		if (tk == NULL || !(tk->where & KEY_WORKER) ||
		    (tk->where & KEY_TOP) ||
		    strcmp(tk->name, "instances") == 0 ||
		    strcmp(tk->name, "autostart") == 0) {
			load_err(p, &pr[i].k->start_mark,
			         "template: \"%s\" is not a key a template may "
			         "have",
			         pr[i].key);
			continue;
		}
		tk->parse(p, tk, pr[i].v, t, depth);
		t->keys_set |= UINT64_C(1) << (tk - keys_table);
	}
	free(pr);
}

void
template_max_children(struct parse *p, const struct key *k, yaml_node_t *v,
                      struct spec *s, int depth)
{
	const char *str = load_scalar(p, k->name, v);
	uint64_t n;

	(void)depth;
	if (str != NULL &&
	    (scalar_uint(str, TEMPLATE_MAX_CHILDREN, &n) < 0 || n == 0))
		load_err(p, &v->start_mark,
		         "max_children: want a whole number from 1 to %d",
		         TEMPLATE_MAX_CHILDREN);
	else if (str != NULL)
		spec_pol(s)->max_children = (unsigned)n;
}

/* `spawn_from: [worker, ...]`: names as a worker's name is written. */
void
template_spawn_from(struct parse *p, const struct key *k, yaml_node_t *v,
                    struct spec *s, int depth)
{
	yaml_node_item_t *it;
	size_t n, m = 0;

	(void)depth;
	if (map_list(p, v, k->name, &it, &n) < 0)
		return;
	config_free_strv(s->spawn_from);
	s->spawn_from = xcalloc(n + 1, sizeof(char *));
	for (size_t i = 0; i < n; i++) {
		yaml_node_t *e = load_node(p, it[i]);
		const char *name;

		if (e == NULL || (name = load_scalar(p, k->name, e)) == NULL)
			continue;
		if (!scalar_name_ok(name)) {
			load_err(p, &e->start_mark,
			         "spawn_from: bad worker name \"%s\"", name);
			continue;
		}
		s->spawn_from[m++] = xstrdup(name);
	}
}

void
template_link(struct parse *p, struct spec *s, const struct spec *const *chain,
              size_t n)
{
	if (s->tmpl == NULL) {
		if (s->spawn_from != NULL)
			load_locerr(
			        p, &s->loc,
			        "supervisor %s: spawn_from without template",
			        s->name);
		return;
	}
	if (s->nchildren > 0)
		load_locerr(p, &s->loc,
		            "supervisor %s: a supervisor with template: has no "
		            "children (they are spawned)",
		            s->name);
	if (s->pol->strategy != ONE_FOR_ONE)
		load_locerr(p, &s->loc,
		            "supervisor %s: a supervisor with template: is "
		            "one_for_one",
		            s->name);
	free(s->tmpl->name);
	s->tmpl->name = xstrdup(s->name);
	keys_inherit(p, s->tmpl, chain, n);
	keys_check_worker(p, s->tmpl);
}

bool
config_spawn_allowed(const struct spec *s, const char *worker)
{
	for (char **w = s->spawn_from; w != NULL && *w != NULL; w++)
		if (strcmp(*w, worker) == 0)
			return true;
	return false;
}

static size_t
template_strv_len(char *const *v)
{
	size_t n = 0;

	while (v != NULL && v[n] != NULL)
		n++;
	return n;
}

/* Whether env (K=V entries) sets the variable of entry e. */
static bool
template_env_sets(char *const *env, const char *e)
{
	size_t klen = strcspn(e, "=");

	for (; env != NULL && *env != NULL; env++)
		if (strncmp(*env, e, klen) == 0 && (*env)[klen] == '=')
			return true;
	return false;
}

struct spec *
config_task_spec(const struct spec *tmpl, const char *name, char *const *args,
                 char *const *env)
{
	struct spec *c = spec_clone(tmpl, NULL);
	size_t na = template_strv_len(tmpl->argv), nb = template_strv_len(args);
	size_t ne = template_strv_len(tmpl->env), nf = template_strv_len(env);
	size_t m = 0;

	spec_share_policy(c, tmpl);
	free(c->name);
	c->name = xstrdup(name);
	c->instances = 0;
	c->argv = xreallocarray(c->argv, na + nb + 1, sizeof(char *));
	for (size_t i = 0; i < nb; i++)
		c->argv[na + i] = xstrdup(args[i]);
	c->argv[na + nb] = NULL;
	config_free_strv(c->env);
	c->env = xcalloc(ne + nf + 1, sizeof(char *));
	for (size_t i = 0; i < ne; i++)
		if (!template_env_sets(env, tmpl->env[i]))
			c->env[m++] = xstrdup(tmpl->env[i]);
	for (size_t i = 0; i < nf; i++)
		c->env[m++] = xstrdup(env[i]);
	return c;
}

void
config_task_spec_free(struct spec *s)
{
	spec_free(s);
}
