/*
 * keys.c - every key a worker or supervisor may have, as one table: its
 * name, where it may appear, the parser that types its value, the field it
 * fills (so `defaults:` can hand any worker key down), and its default as
 * docs/config.md and --check show it.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "parse.h"
#include "util.h"

static const char *const keys_strategies[] = {"one_for_one", "one_for_all",
                                              "rest_for_one", NULL};
static const char *const keys_restarts[] = {"permanent", "transient",
                                            "temporary", NULL};
static const char *const keys_jitters[] = {"full", "equal", "none", NULL};
static const char *const keys_notifies[] = {"none", "systemd", NULL};

const char *
config_strategy_name(enum strategy s)
{
	return keys_strategies[s];
}

const char *
config_restart_name(enum restart_type r)
{
	return keys_restarts[r];
}

const char *
config_jitter_name(enum jitter_kind j)
{
	return keys_jitters[j];
}

/* --- value parsers, one per type ---------------------------------------- */

static void *
keys_field(struct spec *s, const struct key *k)
{
	return spec_key_addr(s, k);
}

static int
keys_enum(struct parse *p, const char *key, yaml_node_t *v,
          const char *const *names, const char *choices)
{
	const char *s = load_scalar(p, key, v);
	int i;

	if (s == NULL)
		return -1;
	if ((i = scalar_enum(names, s)) < 0)
		load_err(p, &v->start_mark,
		         "%s: unknown value \"%s\" (want %s)", key, s, choices);
	return i;
}

static int
keys_duration_of(struct parse *p, const char *key, yaml_node_t *v, uint64_t *ms,
                 bool nonzero)
{
	const char *s = load_scalar(p, key, v);
	uint64_t d;
	int rc;

	if (s == NULL)
		return -1;
	if ((rc = config_parse_duration(s, &d)) < 0) {
		load_bad_duration(p, &v->start_mark, key, s, rc);
		return -1;
	}
	if (nonzero && d == 0) {
		load_err(p, &v->start_mark, "%s: must be more than zero", key);
		return -1;
	}
	*ms = d;
	return 0;
}

static void
keys_duration(struct parse *p, const struct key *k, yaml_node_t *v,
              struct spec *s, int depth)
{
	(void)depth;
	keys_duration_of(p, k->name, v, keys_field(s, k), false);
}

static void
keys_duration_nz(struct parse *p, const struct key *k, yaml_node_t *v,
                 struct spec *s, int depth)
{
	(void)depth;
	keys_duration_of(p, k->name, v, keys_field(s, k), true);
}

static void
keys_restart(struct parse *p, const struct key *k, yaml_node_t *v,
             struct spec *s, int depth)
{
	int i = keys_enum(p, k->name, v, keys_restarts,
	                  "permanent, transient or temporary");

	(void)depth;
	if (i >= 0)
		spec_pol(s)->restart = (enum restart_type)i;
}

static void
keys_notify(struct parse *p, const struct key *k, yaml_node_t *v,
            struct spec *s, int depth)
{
	int i = keys_enum(p, k->name, v, keys_notifies, "none or systemd");

	(void)depth;
	if (i >= 0)
		spec_pol(s)->notify = (enum notify_mode)i;
}

static void
keys_strategy(struct parse *p, const struct key *k, yaml_node_t *v,
              struct spec *s, int depth)
{
	int i = keys_enum(p, k->name, v, keys_strategies,
	                  "one_for_one, one_for_all or rest_for_one");

	(void)depth;
	if (i >= 0)
		spec_pol(s)->strategy = (enum strategy)i;
}

static void
keys_bool(struct parse *p, const struct key *k, yaml_node_t *v, struct spec *s,
          int depth)
{
	const char *str = load_scalar(p, k->name, v);

	(void)depth;
	if (str != NULL && scalar_bool(str, keys_field(s, k)) < 0)
		load_err(p, &v->start_mark,
		         "%s: want true or false, not \"%s\"", k->name, str);
}

static void
keys_intensity(struct parse *p, const struct key *k, yaml_node_t *v,
               struct spec *s, int depth)
{
	const char *str = load_scalar(p, k->name, v);
	uint64_t n;

	(void)depth;
	if (str != NULL && scalar_uint(str, CONFIG_MAX_INTENSITY, &n) < 0)
		load_err(p, &v->start_mark,
		         "intensity: want a whole number from 0 to %d",
		         CONFIG_MAX_INTENSITY);
	else if (str != NULL)
		spec_pol(s)->intensity = (unsigned)n;
}

static void
keys_instances(struct parse *p, const struct key *k, yaml_node_t *v,
               struct spec *s, int depth)
{
	const char *str = load_scalar(p, k->name, v);
	uint64_t n;

	(void)depth;
	if (str != NULL &&
	    (scalar_uint(str, CONFIG_MAX_INSTANCES, &n) < 0 || n == 0))
		load_err(p, &v->start_mark,
		         "instances: want a whole number from 1 to %d",
		         CONFIG_MAX_INSTANCES);
	else if (str != NULL)
		s->instances = (unsigned)n;
}

static void
keys_parent(struct parse *p, const struct key *k, yaml_node_t *v,
            struct spec *s, int depth)
{
	const char *n = load_scalar(p, k->name, v);

	(void)depth;
	if (n == NULL)
		return;
	free(s->parent);
	s->parent = xstrdup(n);
	s->parent_loc = load_loc(p, &v->start_mark);
}

static void
keys_path(struct parse *p, const struct key *k, yaml_node_t *v, struct spec *s,
          int depth)
{
	const char *d = load_scalar(p, k->name, v);
	char **field = keys_field(s, k);

	(void)depth;
	if (d != NULL && *d == '\0')
		load_err(p, &v->start_mark, "%s: empty path", k->name);
	else if (d != NULL) {
		free(*field);
		*field = xstrdup(d);
	}
}

static void
keys_shutdown(struct parse *p, const struct key *k, yaml_node_t *v,
              struct spec *s, int depth)
{
	uint64_t ms;

	(void)depth;
	if (v->type == YAML_SCALAR_NODE &&
	    strcmp((const char *)v->data.scalar.value, "brutal_kill") == 0)
		spec_pol(s)->shutdown_ms = SHUTDOWN_BRUTAL_KILL;
	else if (keys_duration_of(p, k->name, v, &ms, false) == 0)
		spec_pol(s)->shutdown_ms = (int64_t)ms;
}

static void
keys_output(struct parse *p, const struct key *k, yaml_node_t *v,
            struct spec *s, int depth)
{
	const char *str = load_scalar(p, k->name, v);
	struct output *o = keys_field(s, k);

	(void)depth;
	if (str == NULL)
		return;
	free(o->path);
	o->path = NULL;
	if (strcmp(str, "inherit") == 0)
		o->mode = OUTPUT_INHERIT;
	else if (strcmp(str, "null") == 0)
		o->mode = OUTPUT_NULL;
	else if (strcmp(str, "capture") == 0)
		o->mode = OUTPUT_CAPTURE;
	else if (*str == '\0')
		load_err(p, &v->start_mark,
		         "%s: want capture, inherit, null or a file path",
		         k->name);
	else {
		o->mode = OUTPUT_FILE;
		o->path = xstrdup(str);
	}
}

static void
keys_command_list(struct parse *p, yaml_node_t *v, struct spec *s)
{
	yaml_node_item_t *it;
	size_t n, argc = 0;
	const char *str;

	if (map_list(p, v, "command", &it, &n) < 0)
		return;
	if (n == 0) {
		load_err(p, &v->start_mark, "command: empty command");
		return;
	}
	s->argv = xcalloc(n + 1, sizeof(char *));
	for (size_t i = 0; i < n; i++) {
		yaml_node_t *e = load_node(p, it[i]);
		if (e != NULL && (str = load_scalar(p, "command", e)) != NULL)
			s->argv[argc++] = xstrdup(str);
	}
	if (argc > 0 && s->argv[0][0] == '\0')
		load_err(p, &v->start_mark, "command: empty program name");
}

static void
keys_command(struct parse *p, const struct key *k, yaml_node_t *v,
             struct spec *s, int depth)
{
	const char *why, *str;
	size_t argc = 0;

	(void)depth;
	config_free_strv(s->argv);
	s->argv = NULL;
	if (v->type == YAML_SEQUENCE_NODE) {
		keys_command_list(p, v, s);
		return;
	}
	if ((str = load_scalar(p, k->name, v)) == NULL)
		return;
	if (config_split_command(str, &s->argv, &why) < 0) {
		load_err(p, &v->start_mark, "command: %s", why);
		return;
	}
	while (s->argv[argc] != NULL)
		argc++;
	if (argc > CONFIG_MAX_LIST)
		load_err(p, &v->start_mark, "command: %zu words, more than %d",
		         argc, CONFIG_MAX_LIST);
}

/* One NAME: value of `environment`, ${VAR} expanded, as "NAME=value". */
static char *
keys_env_entry(struct parse *p, const struct pair *pr)
{
	const char *val = load_scalar(p, "environment", pr->v);
	char why[256], *x, *entry;

	if (val == NULL || load_scalar(p, "environment", pr->k) == NULL)
		return NULL;
	if (!scalar_env_key_ok(pr->key, strlen(pr->key))) {
		load_err(p, &pr->k->start_mark,
		         "environment: bad variable name \"%s\"", pr->key);
		return NULL;
	}
	if (strncmp(pr->key, "AGENTSUP_", 9) == 0) {
		load_err(p, &pr->k->start_mark,
		         "environment: %s is set by agentsupd", pr->key);
		return NULL;
	}
	if (scalar_expand(val, load_getenv, p, strlen(pr->key), &x, why,
	                  sizeof why) < 0) {
		load_err(p, &pr->v->start_mark, "environment: %s: %s", pr->key,
		         why);
		return NULL;
	}
	entry = load_charge(p, strlen(x)) ? xasprintf("%s=%s", pr->key, x)
	                                  : NULL;
	free(x);
	return entry;
}

static void
keys_environment(struct parse *p, const struct key *k, yaml_node_t *v,
                 struct spec *s, int depth)
{
	struct pair *pr;
	size_t n, e = 0;

	(void)k;
	(void)depth;
	if (v->type != YAML_MAPPING_NODE) {
		load_err(p, &v->start_mark,
		         "environment: expected a mapping of NAME: value");
		return;
	}
	if (map_pairs(p, v, "environment", &pr, &n) < 0)
		return;
	config_free_strv(s->env);
	s->env = xcalloc(n + 1, sizeof(char *));
	for (size_t i = 0; i < n; i++)
		if ((s->env[e] = keys_env_entry(p, &pr[i])) != NULL)
			e++;
	free(pr);
}

static void
keys_children(struct parse *p, const struct key *k, yaml_node_t *v,
              struct spec *s, int depth)
{
	yaml_node_item_t *it;
	size_t n;

	(void)k;
	if (v->type != YAML_SEQUENCE_NODE) {
		load_err(p, &v->start_mark, "children: expected a list");
		return;
	}
	if (map_list(p, v, "children", &it, &n) < 0)
		return;
	s->children = xcalloc(n ? n : 1, sizeof(struct spec *));
	for (size_t i = 0; i < n && !p->exhausted; i++) {
		yaml_node_t *c = load_node(p, it[i]);
		struct spec *cs;

		if (c == NULL ||
		    (cs = load_spec(p, c, depth + 1, false)) == NULL)
			continue;
		/* a worker with `instances:` of its own lends nothing and
		 * borrows nothing: its copies share among themselves */
		if (s->nchildren > 0 && cs->instances == 0 &&
		    s->children[s->nchildren - 1]->instances == 0)
			spec_share_argv(s->children[s->nchildren - 1], cs);
		s->children[s->nchildren++] = cs;
	}
}

static void keys_defaults(struct parse *, const struct key *, yaml_node_t *,
                          struct spec *, int);

#define F(field) offsetof(struct spec, field), sizeof(((struct spec *)0)->field)
#define P(field)                                                               \
	offsetof(struct policy, field) | KEY_IN_POLICY,                        \
	        sizeof(((struct policy *)0)->field)
#define W    KEY_WORKER
#define S    KEY_SUPERVISOR
#define POD  STORE_POD
#define BOTH (KEY_WORKER | KEY_SUPERVISOR)

/* The table: bit i of spec.keys_set says key i was written. */
const struct key keys_table[] = {
        {"worker", KEY_NAME, NULL, 0, 0, POD, "name", "(required)"},
        {"supervisor", KEY_NAME, NULL, 0, 0, POD, "name", "(required)"},
        {"parent", BOTH | KEY_TOP, keys_parent, F(parent), STORE_STR, "name",
         "root"},
        {"restart", BOTH, keys_restart, P(restart), POD,
         "permanent|transient|temporary", "permanent"},
        {"significant", BOTH, keys_bool, P(significant), POD, "bool", "false"},
        {"autostart", BOTH, keys_bool, P(autostart), POD, "bool", "true"},
        {"strategy", S, keys_strategy, P(strategy), POD,
         "one_for_one|one_for_all|rest_for_one", "one_for_one"},
        {"intensity", S, keys_intensity, P(intensity), POD, "uint", "3"},
        {"period", S, keys_duration_nz, P(period_ms), POD, "duration", "5s"},
        {"children", S, keys_children, F(children), POD, "list", "[]"},
        {"defaults", S, keys_defaults, F(defaults), POD, "mapping", "{}"},
        {"command", W, keys_command, F(argv), STORE_STRV, "list|string",
         "(required)"},
        {"directory", W, keys_path, F(directory), STORE_STR, "path",
         "agentsupd's"},
        {"environment", W, keys_environment, F(env), STORE_STRV, "mapping",
         "{}"},
        {"env_file", W, envfile_key, F(env_files), STORE_STRV, "path|list",
         "none"},
        {"shutdown", W, keys_shutdown, P(shutdown_ms), POD,
         "duration|brutal_kill", "5s"},
        {"stop_signal", W, stop_signal_key, P(stop_signal), POD, "signal",
         "TERM"},
        {"success_exit", W, success_exit_key, P(success_exit), POD, "uint|list",
         "[]"},
        {"heartbeat", W, keys_duration_nz, P(heartbeat_ms), POD, "duration",
         "off"},
        {"heartbeat_timeout", W, keys_duration_nz, P(heartbeat_timeout_ms), POD,
         "duration", "3 x heartbeat"},
        {"start_timeout", W, keys_duration_nz, P(start_timeout_ms), POD,
         "duration", "off"},
        {"ready_after", W, keys_duration_nz, P(ready_after_ms), POD, "duration",
         "off"},
        {"drain_timeout", W, keys_duration, P(drain_timeout_ms), POD,
         "duration", "30s"},
        {"stdout", W, keys_output, F(out), STORE_OUTPUT,
         "capture|inherit|null|path", "capture"},
        {"stderr", W, keys_output, F(err), STORE_OUTPUT,
         "capture|inherit|null|path", "capture"},
        {"instances", W, keys_instances, F(instances), POD, "uint", "1"},
        {"backoff", W, policy_backoff, P(backoff), POD, "none|mapping", "on"},
        {"circuit", W, policy_circuit, P(circuit), POD, "none|mapping", "off"},
        {"notify", W, keys_notify, P(notify), POD, "none|systemd", "none"},
        {"user", W, privs_identity, F(user), STORE_STR, "name|uid",
         "agentsupd's"},
        {"group", W, privs_identity, F(group), STORE_STR, "name|gid",
         "the user's"},
        {"umask", W, privs_umask, P(umask_mode), POD, "octal", "agentsupd's"},
        {"limits", W, privs_limits, P(limits), POD, "mapping", "{}"},
        {"max_memory", W, privs_max_memory, P(max_memory), POD, "size", "off"},
        {"log_max", W, settings_worker_log, P(log_max), POD, "size",
         "agentsupd's"},
        {"log_keep", W, settings_worker_log, P(log_keep), POD, "count",
         "agentsupd's"},
        {"control", W, privs_control, P(control), POD, "none|all|list", "none"},
        {"template", S, template_parse, F(tmpl), POD, "mapping", "none"},
        {"max_children", S, template_max_children, P(max_children), POD, "uint",
         "1000"},
        {"spawn_from", S, template_spawn_from, F(spawn_from), STORE_STRV,
         "list", "[]"},
        {"key_ttl", S, keys_duration, P(key_ttl_ms), POD, "duration", "24h"},
        {"stall_timeout", W, keys_duration_nz, P(stall_timeout_ms), POD,
         "duration", "off"},
        {"stall_grace", W, keys_duration, P(stall_grace_ms), POD, "duration",
         "stall_timeout / 2"},
        {"stall_dump", W, keys_bool, P(stall_dump), POD, "bool", "false"},
        {"loop", W, progress_keys_loop, P(loop_repeats), POD, "none|mapping",
         "off"},
        {"budget", BOTH, progress_keys_budget, P(budget), POD, "none|mapping",
         "off"},
        {"extend_max", W, keys_duration, P(extend_max_ms), POD, "duration",
         "10m"},
        {"recycle_after", W, keys_duration_nz, P(recycle_after_ms), POD,
         "duration", "off"},
        {"checkpoint", W, ckptkey_parse, P(checkpoint), POD, "none|mapping",
         "on"},
};
const size_t keys_count = sizeof keys_table / sizeof keys_table[0];

#undef W
#undef S
#undef POD
#undef BOTH
#undef F

_Static_assert(sizeof keys_table / sizeof keys_table[0] <= 64,
               "keys_set has one bit per key");

const struct key *
keys_find(const char *name)
{
	for (size_t i = 0; i < keys_count; i++)
		if (strcmp(keys_table[i].name, name) == 0)
			return &keys_table[i];
	return NULL;
}

/* Apply one key: value of a worker or supervisor document. */
void
keys_apply(struct parse *p, struct spec *s, const struct pair *pr, int depth,
           bool top)
{
	const struct key *k = keys_find(pr->key);
	unsigned want = s->kind == KIND_WORKER ? KEY_WORKER : KEY_SUPERVISOR;

	if (k != NULL && (k->where & KEY_NAME))
		return; /* the name, read first */
	if (k == NULL || !(k->where & want)) {
		load_err(p, &pr->k->start_mark, "unknown key \"%s\" for a %s",
		         pr->key,
		         s->kind == KIND_WORKER ? "worker" : "supervisor");
		return;
	}
	if ((k->where & KEY_TOP) && !top) {
		load_err(p, &pr->k->start_mark,
		         "%s: only a top-level document may name a parent",
		         k->name);
		return;
	}
	k->parse(p, k, pr->v, s, depth);
	s->keys_set |= UINT64_C(1) << (k - keys_table);
}

/* `defaults:` any worker key, parsed as for a worker, handed down later. */
static void
keys_defaults(struct parse *p, const struct key *k, yaml_node_t *v,
              struct spec *s, int depth)
{
	struct pair *pr;
	struct spec *d;
	size_t n;

	(void)k;
	if (map_pairs(p, v, "defaults", &pr, &n) < 0)
		return;
	spec_free(s->defaults);
	s->defaults = d = spec_new(NULL, KIND_WORKER);
	for (size_t i = 0; i < n && !p->exhausted; i++) {
		const struct key *dk = keys_find(pr[i].key);

		if (dk == NULL || !(dk->where & KEY_WORKER) ||
		    (dk->where & KEY_TOP)) {
			load_err(p, &pr[i].k->start_mark,
			         "defaults: \"%s\" is not a worker key",
			         pr[i].key);
			continue;
		}
		dk->parse(p, dk, pr[i].v, d, depth);
		d->keys_set |= UINT64_C(1) << (dk - keys_table);
	}
	free(pr);
}

/* Every worker key the worker did not write, from the nearest defaults. */
void
keys_inherit(struct parse *p, struct spec *w, const struct spec *const *chain,
             size_t n)
{
	for (size_t i = 0; i < keys_count; i++) {
		uint64_t bit = UINT64_C(1) << i;

		if (!(keys_table[i].where & KEY_WORKER) || (w->keys_set & bit))
			continue;
		for (size_t c = n; c-- > 0;) {
			if (!(chain[c]->keys_set & bit))
				continue;
			if (!load_charge(p, spec_key_bytes(chain[c],
			                                   &keys_table[i])))
				return;
			spec_copy_key(w, chain[c], &keys_table[i]);
			break;
		}
	}
}

/* What can only be checked once a worker has all its keys. */
void
keys_check_worker(struct parse *p, struct spec *s)
{
	if (s->argv == NULL || s->argv[0] == NULL) {
		load_locerr(p, &s->loc, "worker %s: no command", s->name);
		return;
	}
	policy_check_liveness(p, s);
	progress_keys_check(p, s);
}
