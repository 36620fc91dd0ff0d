/*
 * load.c - files already in memory, through libyaml, into specs.
 *
 * Pure: bytes and an environment in, a validated tree or a list of errors
 * out; it starts nothing and reads no disk (src/daemon/confdir.c does).
 * Every walk is bounded: a file's size, keys per mapping, items per list,
 * YAML nodes visited (aliases included) and bytes kept once expanded, so a
 * hostile file costs a few errors and milliseconds.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "config.h"
#include "parse.h"
#include "util.h"
#include "yamldoc.h"

#define DEFAULT_MAX_FRAME (64u * 1024u)

/* --- errors ------------------------------------------------------------- */

static void
load_verr(struct config_errors *errs, const char *file, int line, int col,
          const char *fmt, va_list ap)
{
	char body[512];

	errs->total++;
	if (errs->count >= CONFIG_MAX_ERRORS)
		return; /* counted, said once by config_errors_finish */
	vsnprintf(body, sizeof body, fmt, ap);
	errs->msgs = xreallocarray(errs->msgs, errs->count + 1, sizeof(char *));
	errs->msgs[errs->count++] =
	        line > 0 ? xasprintf("%s:%d:%d: %s", file, line, col, body)
	                 : xasprintf("%s: %s", file, body); /* a whole file's */
}

void
config_errors_add(struct config_errors *errs, const char *file, int line,
                  int col, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	load_verr(errs, file, line, col, fmt, ap);
	va_end(ap);
}

void
config_errors_finish(struct config_errors *errs)
{
	size_t more = errs->total - errs->count;

	if (errs->total <= errs->count || errs->count > CONFIG_MAX_ERRORS)
		return;
	errs->msgs = xreallocarray(errs->msgs, errs->count + 1, sizeof(char *));
	errs->msgs[errs->count++] = xasprintf("... and %zu more error%s", more,
	                                      more == 1 ? "" : "s");
}

void
config_errors_clear(struct config_errors *errs)
{
	for (size_t i = 0; i < errs->count; i++)
		free(errs->msgs[i]);
	free(errs->msgs);
	errs->msgs = NULL;
	errs->count = 0;
	errs->total = 0;
}

void
load_err(struct parse *p, const yaml_mark_t *m, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	load_verr(p->errs, p->file, (int)m->line + 1, (int)m->column + 1, fmt,
	          ap);
	va_end(ap);
}

void
load_bad_duration(struct parse *p, const yaml_mark_t *m, const char *key,
                  const char *s, int rc)
{
	if (rc == CONFIG_DURATION_TOO_LONG)
		load_err(p, m, CONFIG_DURATION_TOO_LONG_FMT, key, s);
	else
		load_err(p, m,
		         "%s: bad duration \"%s\" (want e.g. 500ms, 10s, 2m, "
		         "1h)",
		         key, s);
}

void
load_locerr(struct parse *p, const struct loc *l, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	load_verr(p->errs, l->file, l->line, l->column, fmt, ap);
	va_end(ap);
}

struct loc
load_loc(const struct parse *p, const yaml_mark_t *m)
{
	return (struct loc){p->file, (int)m->line + 1, (int)m->column + 1};
}

/* --- budgets ------------------------------------------------------------ */

/* Stop the whole load once, with one error that names the budget. */
void
load_exhaust(struct parse *p, unsigned limit, const char *what)
{
	if (!p->exhausted)
		config_errors_add(p->errs, p->file ? p->file : "-", 0, 0,
		                  "more than %u %s: the configuration is too "
		                  "large once aliases, merges, defaults and "
		                  "instances are expanded",
		                  limit, what);
	p->exhausted = true;
}

bool
load_charge(struct parse *p, size_t bytes)
{
	if (p->exhausted)
		return false;
	if (bytes > p->bytes) {
		load_exhaust(p, CONFIG_MAX_BYTES, "bytes of text");
		return false;
	}
	p->bytes -= bytes;
	return true;
}

/* Every visit of a YAML node goes through here: aliases cannot explode. */
yaml_node_t *
load_node(struct parse *p, int id)
{
	yaml_node_t *n;

	if (p->exhausted)
		return NULL;
	if (p->visits == 0) {
		load_exhaust(p, CONFIG_MAX_YAML_NODES, "YAML nodes");
		return NULL;
	}
	p->visits--;
	n = yamldoc_get(p->doc, id);
	if (n != NULL && n->type == YAML_SCALAR_NODE &&
	    !load_charge(p, n->data.scalar.length))
		return NULL;
	return n;
}

/* A scalar value or an error that names the key. */
const char *
load_scalar(struct parse *p, const char *key, yaml_node_t *v)
{
	const char *s;

	if (v->type != YAML_SCALAR_NODE) {
		load_err(p, &v->start_mark, "%s: expected a single value", key);
		return NULL;
	}
	s = (const char *)v->data.scalar.value;
	if (strlen(s) != v->data.scalar.length) {
		load_err(p, &v->start_mark, "%s: NUL byte in value", key);
		return NULL;
	}
	return s;
}

/* --- nodes and documents ------------------------------------------------ */

/* Which of worker/supervisor names this mapping, or -1 with an error. */
static int
load_kind(struct parse *p, yaml_node_t *map, const struct pair *pr, size_t n,
          yaml_node_t **namev)
{
	int kind = -1;

	for (size_t i = 0; i < n; i++) {
		int this;

		if (strcmp(pr[i].key, "worker") == 0)
			this = KIND_WORKER;
		else if (strcmp(pr[i].key, "supervisor") == 0)
			this = KIND_SUPERVISOR;
		else
			continue;
		if (kind >= 0) {
			load_err(p, &pr[i].k->start_mark,
			         "a node is either a worker or a supervisor");
			return -1;
		}
		kind = this;
		*namev = pr[i].v;
	}
	if (kind < 0)
		load_err(p, &map->start_mark,
		         "a node needs a \"worker: NAME\" or \"supervisor: "
		         "NAME\" key");
	return kind;
}

/* One worker or supervisor mapping, with its nested children. */
struct spec *
load_spec(struct parse *p, yaml_node_t *map, int depth, bool top)
{
	yaml_node_t *namev = NULL;
	struct pair *pr = NULL;
	struct spec *s = NULL;
	const char *name;
	size_t n;
	int kind;

	if (map->type != YAML_MAPPING_NODE) {
		load_err(p, &map->start_mark,
		         "expected a worker or supervisor mapping");
		return NULL;
	}
	if (depth > CONFIG_MAX_DEPTH) {
		load_err(p, &map->start_mark, "tree deeper than %d levels",
		         CONFIG_MAX_DEPTH);
		return NULL;
	}
	if (map_pairs(p, map, "a node", &pr, &n) < 0)
		return NULL;
	if ((kind = load_kind(p, map, pr, n, &namev)) < 0 ||
	    (name = load_scalar(p, "name", namev)) == NULL)
		goto out;
	if (!scalar_name_ok(name)) {
		load_err(p, &namev->start_mark,
		         "bad name \"%s\" (letters, digits, '_', '-', '.'; at "
		         "most %d; starts with a letter or digit)",
		         name, CONFIG_NAME_MAX);
		goto out;
	}
	if ((s = spec_new(p, (enum node_kind)kind)) == NULL)
		goto out;
	s->name = xstrdup(name);
	s->loc = load_loc(p, &map->start_mark);
	for (size_t i = 0; i < n && !p->exhausted; i++)
		keys_apply(p, s, &pr[i], depth, top);
out:
	free(pr);
	return s;
}

static void
load_document(struct parse *p, yaml_node_t *root)
{
	struct spec *s;

	if (root->type == YAML_MAPPING_NODE &&
	    root->data.mapping.pairs.top > root->data.mapping.pairs.start) {
		yaml_node_pair_t *pr = root->data.mapping.pairs.start;
		yaml_node_t *k = load_node(p, pr->key);

		if (k != NULL && k->type == YAML_SCALAR_NODE &&
		    strcmp((const char *)k->data.scalar.value, "agentsupd") ==
		            0) {
			if (root->data.mapping.pairs.top - pr != 1)
				load_err(p, &root->start_mark,
				         "the agentsupd document holds only "
				         "settings");
			settings_parse(p, load_node(p, pr->value), k);
			return;
		}
	}
	if ((s = load_spec(p, root, 0, true)) == NULL)
		return;
	if (p->ntops == p->captops) {
		p->captops = p->captops ? p->captops * 2 : 8;
		p->tops = xreallocarray(p->tops, p->captops, sizeof *p->tops);
	}
	p->tops[p->ntops++] = s;
}

/* libyaml's simple keys cost time quadratic in the depth of flow nesting
 * ([[[...]]]: 100,000 levels, 200 KB, took 34 s). Counted in the bytes
 * first, outside quoted scalars and comments: deeper than any config
 * needs is refused at once. */
static bool
load_flow_too_deep(struct parse *p, const char *name,
                   const struct config_source *src)
{
	unsigned depth = 0, line = 1;
	size_t bol = 0; /* where the line began */
	char quote = 0;

	for (size_t i = 0; i < src->len; i++) {
		char c = src->data[i];
		if (c == '\n') {
			line++;
			bol = i + 1;
		}
		if (quote != 0) {
			if (c == '\\' && quote == '"' && i + 1 < src->len)
				i++;
			else if (c == quote)
				quote = 0;
			continue;
		}
		/* a quote opens a scalar only where one may begin (an
		 * apostrophe inside a plain word opens nothing) */
		if ((c == '"' || c == '\'') &&
		    (i == 0 || strchr(" \t\n[{,:-", src->data[i - 1]) != NULL))
			quote = c;
		else if (c == '#')
			while (i + 1 < src->len && src->data[i + 1] != '\n')
				i++;
		else if (c == '[' || c == '{')
			depth++;
		else if ((c == ']' || c == '}') && depth > 0)
			depth--;
		if (depth > CONFIG_MAX_FLOW_DEPTH) {
			config_errors_add(p->errs, name, (int)line,
			                  (int)(i - bol + 1),
			                  "nested deeper than %d levels of [ ] "
			                  "and { }",
			                  CONFIG_MAX_FLOW_DEPTH);
			return true;
		}
	}
	return false;
}

/* The line and column (1-based, in characters as libyaml counts them) of
 * byte off of src: where a reader error, which libyaml gives as an offset,
 * is. */
static void
load_offset_mark(const struct config_source *src, size_t off, int *line,
                 int *col)
{
	const unsigned char *b = (const unsigned char *)src->data;

	*line = 1;
	*col = 1;
	for (size_t i = 0; i < off && i < src->len; i++) {
		if (b[i] == '\n') {
			++*line;
			*col = 1;
		} else if ((b[i] & 0xC0) != 0x80) { /* not a continuation */
			++*col;
		}
	}
}

/* libyaml's error, where it is: bad UTF-8 with the byte it is. */
static void
load_yaml_error(struct parse *p, const struct config_source *src,
                const char *name, const struct yamldoc *d)
{
	int line = (int)d->mark.line + 1, col = (int)d->mark.column + 1;

	if (d->at_offset)
		load_offset_mark(src, d->offset, &line, &col);
	if (d->at_offset && d->offset < src->len &&
	    strstr(d->msg, "UTF-8") != NULL)
		config_errors_add(p->errs, name, line, col,
		                  "invalid UTF-8 (byte 0x%02X: %s)",
		                  (unsigned char)src->data[d->offset], d->msg);
	else
		config_errors_add(p->errs, name, line, col, "%s", d->msg);
}

static void
load_file(struct parse *p, const struct config_source *src, const char *name)
{
	yaml_parser_t parser;
	struct yamldoc d = {0};

	p->file = name;
	if (src->len > CONFIG_MAX_FILE_BYTES) {
		config_errors_add(
		        p->errs, name, 0, 0,
		        "%zu bytes, more than the %u bytes a file may hold",
		        src->len, CONFIG_MAX_FILE_BYTES);
		return;
	}
	if (load_flow_too_deep(p, name, src)) /* before libyaml sees it */
		return;
	errno = 0;
	if (!yaml_parser_initialize(&parser)) {
		config_errors_add(p->errs, name, 0, 0,
		                  "cannot start the YAML parser: %s",
		                  strerror(errno != 0 ? errno : ENOMEM));
		return;
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)src->data,
	                             src->len);
	while (!p->exhausted) {
		yaml_node_t *root;

		if (!yamldoc_next(&parser, &d)) {
			load_yaml_error(p, src, name, &d);
			break;
		}
		if (!d.have)
			break; /* the end of the stream */
		root = yamldoc_get(&d.doc, 1);
		p->doc = &d.doc;
		if (root != NULL && (root->type != YAML_SCALAR_NODE ||
		                     root->data.scalar.length != 0))
			load_document(p, root); /* "---" alone is harmless */
		p->doc = NULL;
	}
	yaml_parser_delete(&parser);
	yamldoc_free(&d);
}

/* --- the environment ${VAR} expands from -------------------------------- */

static int
load_env_cmp(const void *a, const void *b)
{
	const struct envent *x = a, *y = b;
	size_t n = x->len < y->len ? x->len : y->len;
	int c = memcmp(x->name, y->name, n);

	if (c != 0)
		return c;
	if (x->len != y->len)
		return x->len < y->len ? -1 : 1;
	return x->order < y->order ? -1 : x->order > y->order;
}

static void
load_env_init(struct parse *p, const char *const *envp)
{
	for (size_t i = 0; envp != NULL && envp[i] != NULL; i++) {
		const char *eq = strchr(envp[i], '=');
		if (eq == NULL)
			continue;
		p->env = xreallocarray(p->env, p->nenv + 1, sizeof *p->env);
		p->env[p->nenv] =
		        (struct envent){envp[i], (size_t)(eq - envp[i]), i};
		p->nenv++;
	}
	if (p->nenv > 0)
		qsort(p->env, p->nenv, sizeof *p->env, load_env_cmp);
}

/* getenv over the environment given to config_parse: a binary search. */
const char *
load_getenv(void *ctx, const char *name, size_t len)
{
	struct parse *p = ctx;
	struct envent key = {name, len, 0};
	size_t lo = 0, hi = p->nenv;

	while (lo < hi) { /* the first entry not below NAME */
		size_t mid = lo + (hi - lo) / 2;
		if (load_env_cmp(&p->env[mid], &key) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < p->nenv && p->env[lo].len == len &&
	    memcmp(p->env[lo].name, name, len) == 0)
		return p->env[lo].name + len + 1;
	return NULL;
}

/* --- the whole load ----------------------------------------------------- */

void
config_free(struct config *cfg)
{
	if (cfg == NULL)
		return;
	spec_free(cfg->root);
	free(cfg->settings.socket);
	free(cfg->settings.events_file);
	free(cfg->settings.termination_log);
	free(cfg->settings.metrics);
	free(cfg->settings.log_dir);
	free(cfg->settings.state_dir);
	onevent_free(&cfg->settings);
	for (size_t i = 0; i < cfg->nfiles; i++)
		free(cfg->files[i]);
	free(cfg->files);
	free(cfg);
}

/* The caps on what was read, before anything is parsed. */
static bool
load_sizes_ok(struct parse *p, const struct config_source *files, size_t n)
{
	size_t total = 0;

	for (size_t i = 0; i < n; i++)
		total += files[i].len;
	if (n > CONFIG_MAX_FILES)
		config_errors_add(p->errs, files[0].name, 0, 0,
		                  "%zu files, more than %d", n,
		                  CONFIG_MAX_FILES);
	else if (total > CONFIG_MAX_DIR_BYTES)
		config_errors_add(p->errs, files[0].name, 0, 0,
		                  "the files hold %zu bytes together, more "
		                  "than %u",
		                  total, CONFIG_MAX_DIR_BYTES);
	else
		return true;
	return false;
}

struct config *
config_parse(const struct config_source *files, size_t n,
             const char *const *envp, struct config_errors *errs)
{
	return config_parse_socket(files, n, envp, errs, NULL);
}

struct config *
config_parse_socket(const struct config_source *files, size_t n,
                    const char *const *envp, struct config_errors *errs,
                    char **socket)
{
	struct parse p = {0};
	size_t before = errs->total;

	p.cfg = xcalloc(1, sizeof *p.cfg);
	p.cfg->settings.max_frame = DEFAULT_MAX_FRAME;
	p.cfg->settings.log_max = 10u << 20;
	p.cfg->settings.log_keep = 5;
	p.cfg->settings.log_tail = 8192;
	p.errs = errs;
	p.errs_before = before;
	p.visits = CONFIG_MAX_YAML_NODES;
	p.bytes = CONFIG_MAX_BYTES;
	if (n > 0 && load_sizes_ok(&p, files, n)) {
		load_env_init(&p, envp);
		p.cfg->files = xcalloc(n, sizeof(char *));
		for (size_t i = 0; i < n; i++)
			p.cfg->files[p.cfg->nfiles++] = xstrdup(files[i].name);
		for (size_t i = 0; i < n && !p.exhausted; i++)
			load_file(&p, &files[i], p.cfg->files[i]);
	}
	if (p.ntops == 0 && errs->total == before)
		config_errors_add(errs, n ? files[0].name : "supervisor.d", 0,
		                  0, "no worker or supervisor is declared");
	else
		link_tree(&p);
	free(p.tops);
	free(p.env);
	config_errors_finish(errs);
	if (errs->total > before && socket != NULL) {
		*socket = p.cfg->settings.socket; /* as far as it was read */
		p.cfg->settings.socket = NULL;
	}
	if (errs->total > before) {
		config_free(p.cfg);
		spec_pool_free(&p.pool);
		return NULL;
	}
	spec_intern(p.cfg->root);
	spec_pool_free(&p.pool);
	return p.cfg;
}
