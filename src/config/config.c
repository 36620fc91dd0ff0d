/*
 * config.c - read supervisor.d/ into a validated tree of specs.
 *
 * Pure: it reads files and returns a tree or a list of errors; it starts
 * nothing. libyaml leaves every scalar untyped, so each value is typed here,
 * strictly: "no" is a string, never false, and "10" is not a duration unit.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <yaml.h>

#include "config.h"
#include "util.h"

#define CONFIG_MAX_FILE_BYTES (4u << 20)
#define CONFIG_MAX_FILES      4096
#define CONFIG_NODE_BUDGET    1000000u
#define DEFAULT_MAX_FRAME     (64u * 1024u)

/* The state of one load: the config being built and where we are. */
struct parse {
	struct config *cfg;
	struct config_errors *errs;
	const char *file;
	yaml_document_t *doc;
	struct spec **tops; /* top-level documents, declaration order */
	size_t ntops;
	size_t captops;
	bool have_settings;
	unsigned budget; /* nodes we may still visit: aliases cannot explode */
};

static void perr(struct parse *, const yaml_mark_t *, const char *, ...)
        __attribute__((format(printf, 3, 4)));

static void
errs_add(struct config_errors *errs, char *msg)
{
	errs->msgs = xreallocarray(errs->msgs, errs->count + 1, sizeof(char *));
	errs->msgs[errs->count++] = msg;
}

static void
errs_vadd(struct config_errors *errs, const char *file, int line, int col,
          const char *fmt, va_list ap)
{
	char body[512];

	vsnprintf(body, sizeof body, fmt, ap);
	errs_add(errs, xasprintf("%s:%d:%d: %s", file, line, col, body));
}

static void
perr(struct parse *p, const yaml_mark_t *m, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	errs_vadd(p->errs, p->file, (int)m->line + 1, (int)m->column + 1, fmt,
	          ap);
	va_end(ap);
}

static void locerr(struct config_errors *errs, const struct loc *l,
                   const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void
locerr(struct config_errors *errs, const struct loc *l, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	errs_vadd(errs, l->file, l->line, l->column, fmt, ap);
	va_end(ap);
}

void
config_errors_clear(struct config_errors *errs)
{
	for (size_t i = 0; i < errs->count; i++)
		free(errs->msgs[i]);
	free(errs->msgs);
	errs->msgs = NULL;
	errs->count = 0;
}

void
config_free_strv(char **v)
{
	if (v == NULL)
		return;
	for (char **s = v; *s != NULL; s++)
		free(*s);
	free(v);
}

static void
spec_free(struct spec *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->nchildren; i++)
		spec_free(s->children[i]);
	free(s->children);
	free(s->name);
	free(s->parent);
	config_free_strv(s->argv);
	free(s->directory);
	config_free_strv(s->env);
	free(s->out.path);
	free(s->err.path);
	free(s);
}

void
config_free(struct config *cfg)
{
	if (cfg == NULL)
		return;
	spec_free(cfg->root);
	free(cfg->settings.socket);
	free(cfg->settings.events_file);
	free(cfg->settings.log_dir);
	for (size_t i = 0; i < cfg->nfiles; i++)
		free(cfg->files[i]);
	free(cfg->files);
	free(cfg);
}

/* --- typed scalars ------------------------------------------------------ */

int
config_parse_duration(const char *s, uint64_t *ms)
{
	uint64_t whole = 0, frac = 0, fracdiv = 1, mult;
	const char *p = s;

	if (!isdigit((unsigned char)*p))
		return -1;
	for (; isdigit((unsigned char)*p); p++) {
		if (whole > UINT64_MAX / 10 / 3600000)
			return -1;
		whole = whole * 10 + (uint64_t)(*p - '0');
	}
	if (*p == '.') {
		p++;
		if (!isdigit((unsigned char)*p))
			return -1;
		for (; isdigit((unsigned char)*p); p++) {
			if (fracdiv >= 1000000)
				return -1; /* more precision than a ms */
			frac = frac * 10 + (uint64_t)(*p - '0');
			fracdiv *= 10;
		}
	}
	if (strcmp(p, "ms") == 0)
		mult = 1;
	else if (*p == '\0' || strcmp(p, "s") == 0)
		mult = 1000;
	else if (strcmp(p, "m") == 0)
		mult = 60000;
	else if (strcmp(p, "h") == 0)
		mult = 3600000;
	else
		return -1;
	if (mult == 1 && fracdiv != 1)
		return -1; /* "1.5ms": below our resolution */
	*ms = whole * mult + frac * mult / fracdiv;
	return 0;
}

static int
parse_uint(const char *s, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;

	if (*s == '\0')
		return -1;
	for (; *s != '\0'; s++) {
		if (!isdigit((unsigned char)*s))
			return -1;
		v = v * 10 + (uint64_t)(*s - '0');
		if (v > max)
			return -1;
	}
	*out = v;
	return 0;
}

static bool
valid_name(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > CONFIG_NAME_MAX || !isalnum((unsigned char)s[0]))
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!isalnum(c) && c != '_' && c != '-' && c != '.')
			return false;
	}
	return true;
}

static bool
valid_env_key(const char *s)
{
	if (!isalpha((unsigned char)*s) && *s != '_')
		return false;
	for (; *s != '\0'; s++)
		if (!isalnum((unsigned char)*s) && *s != '_')
			return false;
	return true;
}

/* Append one byte to a growing word; words are bounded by the input. */
static void
word_put(char **w, size_t *len, size_t *cap, char c)
{
	if (*len + 2 > *cap) {
		*cap = *cap ? *cap * 2 : 32;
		*w = xrealloc(*w, *cap);
	}
	(*w)[(*len)++] = c;
	(*w)[*len] = '\0';
}

/*
 * Split a command string as a POSIX shell would split words, without any
 * expansion: blanks separate, '...' is literal, "..." allows \" \\ \$ \`,
 * a backslash outside quotes escapes the next byte.
 */
int
config_split_command(const char *s, char ***argvp, const char **why)
{
	char **argv = NULL, *w = NULL;
	size_t argc = 0, len = 0, cap = 0;
	bool inword = false;

	for (const char *p = s;; p++) {
		if (*p == '\0' || *p == ' ' || *p == '\t' || *p == '\n') {
			if (inword) {
				argv = xreallocarray(argv, argc + 2,
				                     sizeof *argv);
				argv[argc++] = w ? w : xstrdup("");
				argv[argc] = NULL;
				w = NULL;
				len = cap = 0;
				inword = false;
			}
			if (*p == '\0')
				break;
			continue;
		}
		inword = true;
		if (*p == '\'') {
			const char *end = strchr(p + 1, '\'');
			if (end == NULL) {
				*why = "unterminated single quote";
				goto fail;
			}
			word_put(&w, &len, &cap, '\0');
			len--; /* an empty '' still makes a word */
			for (p++; p < end; p++)
				word_put(&w, &len, &cap, *p);
		} else if (*p == '"') {
			word_put(&w, &len, &cap, '\0');
			len--;
			for (p++; *p != '"'; p++) {
				if (*p == '\0') {
					*why = "unterminated double quote";
					goto fail;
				}
				if (*p == '\\' && p[1] != '\0' &&
				    strchr("\"\\$`", p[1]) != NULL)
					p++;
				word_put(&w, &len, &cap, *p);
			}
		} else if (*p == '\\') {
			if (p[1] == '\0') {
				*why = "trailing backslash";
				goto fail;
			}
			word_put(&w, &len, &cap, *++p);
		} else {
			word_put(&w, &len, &cap, *p);
		}
	}
	if (argc == 0) {
		*why = "empty command";
		goto fail;
	}
	*argvp = argv;
	return 0;
fail:
	free(w);
	if (argv != NULL)
		config_free_strv(argv);
	return -1;
}

/* --- YAML walking ------------------------------------------------------- */

static yaml_node_t *
node_at(struct parse *p, int id)
{
	if (p->budget == 0)
		return NULL;
	p->budget--;
	return yaml_document_get_node(p->doc, id);
}

static const char *
scalar(yaml_node_t *n)
{
	return n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value
	                                   : NULL;
}

/* A scalar value or an error that names the key. */
static const char *
want_scalar(struct parse *p, const char *key, yaml_node_t *v)
{
	const char *s = scalar(v);

	if (s == NULL)
		perr(p, &v->start_mark, "%s: expected a single value", key);
	else if (strlen(s) != v->data.scalar.length)
		perr(p, &v->start_mark, "%s: NUL byte in value", key);
	else
		return s;
	return NULL;
}

static void
want_duration(struct parse *p, const char *key, yaml_node_t *v, uint64_t *ms,
              bool nonzero)
{
	const char *s = want_scalar(p, key, v);

	if (s == NULL)
		return;
	if (config_parse_duration(s, ms) < 0)
		perr(p, &v->start_mark,
		     "%s: bad duration \"%s\" (want e.g. 500ms, 10s, 2m, 1h)",
		     key, s);
	else if (nonzero && *ms == 0)
		perr(p, &v->start_mark, "%s: must be more than zero", key);
}

static void
want_output(struct parse *p, const char *key, yaml_node_t *v, struct output *o)
{
	const char *s = want_scalar(p, key, v);

	if (s == NULL)
		return;
	free(o->path);
	o->path = NULL;
	if (strcmp(s, "inherit") == 0)
		o->mode = OUTPUT_INHERIT;
	else if (strcmp(s, "null") == 0)
		o->mode = OUTPUT_NULL;
	else if (strcmp(s, "capture") == 0)
		o->mode = OUTPUT_CAPTURE;
	else if (*s == '\0')
		perr(p, &v->start_mark,
		     "%s: want capture, inherit, null or a file path", key);
	else {
		o->mode = OUTPUT_FILE;
		o->path = xstrdup(s);
	}
}

static void
want_command(struct parse *p, yaml_node_t *v, struct spec *s)
{
	const char *why, *str;

	config_free_strv(s->argv);
	s->argv = NULL;
	if (v->type == YAML_SEQUENCE_NODE) {
		yaml_node_item_t *it = v->data.sequence.items.start;
		size_t n = (size_t)(v->data.sequence.items.top - it), argc = 0;

		if (n == 0) {
			perr(p, &v->start_mark, "command: empty command");
			return;
		}
		s->argv = xcalloc(n + 1, sizeof(char *));
		for (size_t i = 0; i < n; i++) {
			yaml_node_t *e = node_at(p, it[i]);
			if (e == NULL ||
			    (str = want_scalar(p, "command", e)) == NULL)
				continue;
			s->argv[argc++] = xstrdup(str);
		}
		if (argc > 0 && s->argv[0][0] == '\0')
			perr(p, &v->start_mark, "command: empty program name");
		return;
	}
	if ((str = want_scalar(p, "command", v)) == NULL)
		return;
	if (config_split_command(str, &s->argv, &why) < 0)
		perr(p, &v->start_mark, "command: %s", why);
}

static void
want_environment(struct parse *p, yaml_node_t *v, struct spec *s)
{
	yaml_node_pair_t *pr;
	size_t n = 0;

	if (v->type != YAML_MAPPING_NODE) {
		perr(p, &v->start_mark,
		     "environment: expected a mapping of NAME: value");
		return;
	}
	pr = v->data.mapping.pairs.start;
	n = (size_t)(v->data.mapping.pairs.top - pr);
	config_free_strv(s->env);
	s->env = xcalloc(n + 1, sizeof(char *));
	for (size_t i = 0, k = 0; i < n; i++) {
		yaml_node_t *kn = node_at(p, pr[i].key);
		yaml_node_t *vn = node_at(p, pr[i].value);
		const char *key, *val;

		if (kn == NULL || vn == NULL)
			continue;
		if ((key = want_scalar(p, "environment", kn)) == NULL ||
		    (val = want_scalar(p, "environment", vn)) == NULL)
			continue;
		if (!valid_env_key(key)) {
			perr(p, &kn->start_mark,
			     "environment: bad variable name \"%s\"", key);
			continue;
		}
		if (strncmp(key, "AGENTSUP_", 9) == 0) {
			perr(p, &kn->start_mark,
			     "environment: %s is set by agentsupd", key);
			continue;
		}
		for (size_t j = 0; j < k; j++) {
			size_t kl = strlen(key);
			if (strncmp(s->env[j], key, kl) == 0 &&
			    s->env[j][kl] == '=')
				perr(p, &kn->start_mark,
				     "environment: duplicate variable %s", key);
		}
		s->env[k++] = xasprintf("%s=%s", key, val);
	}
}

static int
enum_lookup(const char *const *names, const char *s)
{
	for (int i = 0; names[i] != NULL; i++)
		if (strcmp(names[i], s) == 0)
			return i;
	return -1;
}

static const char *const strategy_names[] = {"one_for_one", "one_for_all",
                                             "rest_for_one", NULL};
static const char *const restart_names[] = {"permanent", "transient",
                                            "temporary", NULL};

const char *
config_strategy_name(enum strategy s)
{
	return strategy_names[s];
}

const char *
config_restart_name(enum restart_type r)
{
	return restart_names[r];
}

static void
want_enum(struct parse *p, const char *key, yaml_node_t *v,
          const char *const *names, const char *choices, int *out)
{
	const char *s = want_scalar(p, key, v);
	int i;

	if (s == NULL)
		return;
	if ((i = enum_lookup(names, s)) < 0)
		perr(p, &v->start_mark, "%s: unknown value \"%s\" (want %s)",
		     key, s, choices);
	else
		*out = i;
}

static struct spec *parse_node(struct parse *, yaml_node_t *, int, bool);

static void
parse_children(struct parse *p, yaml_node_t *v, struct spec *s, int depth)
{
	yaml_node_item_t *it;
	size_t n;

	if (v->type != YAML_SEQUENCE_NODE) {
		perr(p, &v->start_mark, "children: expected a list");
		return;
	}
	it = v->data.sequence.items.start;
	n = (size_t)(v->data.sequence.items.top - it);
	s->children = xcalloc(n ? n : 1, sizeof(struct spec *));
	for (size_t i = 0; i < n; i++) {
		yaml_node_t *c = node_at(p, it[i]);
		struct spec *cs;

		if (c == NULL)
			continue;
		if ((cs = parse_node(p, c, depth + 1, false)) != NULL)
			s->children[s->nchildren++] = cs;
	}
}

/* Apply one key: value of a worker or supervisor document. */
static void
parse_key(struct parse *p, struct spec *s, const char *key, yaml_node_t *kn,
          yaml_node_t *v, int depth, bool top)
{
	bool w = s->kind == KIND_WORKER;
	int e;

	if (strcmp(key, "worker") == 0 || strcmp(key, "supervisor") == 0)
		return; /* the name, read first */
	if (strcmp(key, "parent") == 0 && top) {
		const char *n = want_scalar(p, key, v);
		if (n != NULL) {
			free(s->parent);
			s->parent = xstrdup(n);
			s->parent_loc = (struct loc){
			        p->file, (int)v->start_mark.line + 1,
			        (int)v->start_mark.column + 1};
		}
	} else if (strcmp(key, "parent") == 0) {
		perr(p, &kn->start_mark,
		     "parent: only a top-level document may name a parent");
	} else if (strcmp(key, "restart") == 0) {
		e = (int)s->restart;
		want_enum(p, key, v, restart_names,
		          "permanent, transient or temporary", &e);
		s->restart = (enum restart_type)e;
	} else if (!w && strcmp(key, "strategy") == 0) {
		e = (int)s->strategy;
		want_enum(p, key, v, strategy_names,
		          "one_for_one, one_for_all or rest_for_one", &e);
		s->strategy = (enum strategy)e;
	} else if (!w && strcmp(key, "intensity") == 0) {
		const char *str = want_scalar(p, key, v);
		uint64_t n;
		if (str != NULL &&
		    parse_uint(str, CONFIG_MAX_INTENSITY, &n) < 0)
			perr(p, &v->start_mark,
			     "intensity: want a whole number from 0 to %d",
			     CONFIG_MAX_INTENSITY);
		else if (str != NULL)
			s->intensity = (unsigned)n;
	} else if (!w && strcmp(key, "period") == 0) {
		want_duration(p, key, v, &s->period_ms, true);
	} else if (!w && strcmp(key, "children") == 0) {
		parse_children(p, v, s, depth);
	} else if (w && strcmp(key, "command") == 0) {
		want_command(p, v, s);
	} else if (w && strcmp(key, "directory") == 0) {
		const char *d = want_scalar(p, key, v);
		if (d != NULL && *d == '\0')
			perr(p, &v->start_mark, "directory: empty path");
		else if (d != NULL) {
			free(s->directory);
			s->directory = xstrdup(d);
		}
	} else if (w && strcmp(key, "environment") == 0) {
		want_environment(p, v, s);
	} else if (w && strcmp(key, "shutdown") == 0) {
		const char *str = scalar(v);
		uint64_t ms = 0;
		if (str != NULL && strcmp(str, "brutal_kill") == 0)
			s->shutdown_ms = SHUTDOWN_BRUTAL_KILL;
		else {
			want_duration(p, key, v, &ms, false);
			s->shutdown_ms = (int64_t)ms;
		}
	} else if (w && strcmp(key, "heartbeat") == 0) {
		want_duration(p, key, v, &s->heartbeat_ms, true);
	} else if (w && strcmp(key, "heartbeat_timeout") == 0) {
		want_duration(p, key, v, &s->heartbeat_timeout_ms, true);
	} else if (w && strcmp(key, "start_timeout") == 0) {
		want_duration(p, key, v, &s->start_timeout_ms, true);
	} else if (w && strcmp(key, "drain_timeout") == 0) {
		want_duration(p, key, v, &s->drain_timeout_ms, false);
	} else if (w && strcmp(key, "stdout") == 0) {
		want_output(p, key, v, &s->out);
	} else if (w && strcmp(key, "stderr") == 0) {
		want_output(p, key, v, &s->err);
	} else {
		perr(p, &kn->start_mark, "unknown key \"%s\" for a %s", key,
		     w ? "worker" : "supervisor");
	}
}

static struct spec *
spec_new(enum node_kind kind)
{
	struct spec *s = xcalloc(1, sizeof *s);

	s->kind = kind;
	s->restart = RESTART_PERMANENT;
	s->strategy = ONE_FOR_ONE;
	s->intensity = 3;
	s->period_ms = 5000;
	s->shutdown_ms = 5000;
	s->drain_timeout_ms = 30000;
	s->out.mode = s->err.mode = OUTPUT_CAPTURE;
	return s;
}

/* Which of worker/supervisor names this mapping, or -1 with an error. */
static int
node_kind_of(struct parse *p, yaml_node_t *map, yaml_node_t **namev)
{
	int kind = -1;

	for (yaml_node_pair_t *pr = map->data.mapping.pairs.start;
	     pr < map->data.mapping.pairs.top; pr++) {
		yaml_node_t *k = node_at(p, pr->key);
		const char *ks = k ? scalar(k) : NULL;
		int this;

		if (ks == NULL)
			continue;
		if (strcmp(ks, "worker") == 0)
			this = KIND_WORKER;
		else if (strcmp(ks, "supervisor") == 0)
			this = KIND_SUPERVISOR;
		else
			continue;
		if (kind >= 0) {
			perr(p, &k->start_mark,
			     "a node is either a worker or a supervisor");
			return -1;
		}
		kind = this;
		*namev = node_at(p, pr->value);
	}
	if (kind < 0)
		perr(p, &map->start_mark,
		     "a node needs a \"worker: NAME\" or \"supervisor: NAME\" "
		     "key");
	return kind;
}

static void
check_worker(struct parse *p, yaml_node_t *map, struct spec *s)
{
	if (s->argv == NULL || s->argv[0] == NULL) {
		perr(p, &map->start_mark, "worker %s: no command", s->name);
		return;
	}
	if (s->heartbeat_ms == 0 && s->heartbeat_timeout_ms != 0)
		perr(p, &map->start_mark,
		     "worker %s: heartbeat_timeout without heartbeat", s->name);
	if (s->heartbeat_ms != 0 && s->heartbeat_timeout_ms == 0)
		s->heartbeat_timeout_ms = 3 * s->heartbeat_ms;
	if (s->heartbeat_ms != 0 && s->heartbeat_timeout_ms < s->heartbeat_ms)
		perr(p, &map->start_mark,
		     "worker %s: heartbeat_timeout is shorter than heartbeat",
		     s->name);
}

static bool
duplicate_key(struct parse *p, yaml_node_t *map, yaml_node_pair_t *upto,
              const char *key)
{
	for (yaml_node_pair_t *q = map->data.mapping.pairs.start; q < upto;
	     q++) {
		const char *qs = scalar(yaml_document_get_node(p->doc, q->key));
		if (qs != NULL && strcmp(qs, key) == 0)
			return true;
	}
	return false;
}

/* One worker or supervisor mapping, with its nested children. */
static struct spec *
parse_node(struct parse *p, yaml_node_t *map, int depth, bool top)
{
	yaml_node_t *namev = NULL;
	const char *name;
	struct spec *s;
	int kind;

	if (map->type != YAML_MAPPING_NODE) {
		perr(p, &map->start_mark,
		     "expected a worker or supervisor "
		     "mapping");
		return NULL;
	}
	if (depth > CONFIG_MAX_DEPTH) {
		perr(p, &map->start_mark, "tree deeper than %d levels",
		     CONFIG_MAX_DEPTH);
		return NULL;
	}
	if ((kind = node_kind_of(p, map, &namev)) < 0 || namev == NULL)
		return NULL;
	if ((name = want_scalar(p, "name", namev)) == NULL)
		return NULL;
	if (!valid_name(name)) {
		perr(p, &namev->start_mark,
		     "bad name \"%s\" (letters, digits, '_', '-', '.'; at most "
		     "%d; starts with a letter or digit)",
		     name, CONFIG_NAME_MAX);
		return NULL;
	}
	s = spec_new((enum node_kind)kind);
	s->name = xstrdup(name);
	s->loc = (struct loc){p->file, (int)map->start_mark.line + 1,
	                      (int)map->start_mark.column + 1};
	for (yaml_node_pair_t *pr = map->data.mapping.pairs.start;
	     pr < map->data.mapping.pairs.top; pr++) {
		yaml_node_t *k = node_at(p, pr->key),
		            *v = node_at(p, pr->value);
		const char *ks;

		if (k == NULL || v == NULL)
			break;
		if ((ks = scalar(k)) == NULL) {
			perr(p, &k->start_mark, "keys must be plain words");
			continue;
		}
		if (duplicate_key(p, map, pr, ks)) {
			perr(p, &k->start_mark, "duplicate key \"%s\"", ks);
			continue; /* the first one stands; the error is enough
			           */
		}
		parse_key(p, s, ks, k, v, depth, top);
	}
	if (s->kind == KIND_WORKER)
		check_worker(p, map, s);
	return s;
}

/* A byte count with an optional KiB, MiB or GiB suffix. */
static int
parse_size(const char *s, uint64_t max, uint64_t *out)
{
	static const struct {
		const char *suffix;
		unsigned shift;
	} units[] = {{"KiB", 10}, {"MiB", 20}, {"GiB", 30}};
	char num[32];
	size_t n = strspn(s, "0123456789");

	if (n == 0 || n >= sizeof num)
		return -1;
	memcpy(num, s, n);
	num[n] = '\0';
	if (parse_uint(num, max, out) < 0)
		return -1;
	if (s[n] == '\0')
		return 0;
	for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
		if (strcmp(s + n, units[i].suffix) == 0) {
			if (*out > (max >> units[i].shift))
				return -1;
			*out <<= units[i].shift;
			return 0;
		}
	return -1;
}

/* log_max, log_keep, log_tail: output capture's bounds. */
static void
parse_log_setting(struct parse *p, struct settings *st, const char *ks,
                  yaml_node_t *val)
{
	const char *s = want_scalar(p, ks, val);
	uint64_t n;

	if (s == NULL)
		return;
	if (strcmp(ks, "log_max") == 0) {
		if (parse_size(s, UINT64_C(1) << 40, &n) < 0 || n < 1024)
			perr(p, &val->start_mark,
			     "log_max: want a size from 1024 to 1TiB "
			     "(e.g. 10MiB)");
		else
			st->log_max = n;
	} else if (strcmp(ks, "log_keep") == 0) {
		if (parse_uint(s, 1000, &n) < 0)
			perr(p, &val->start_mark,
			     "log_keep: want a count from 0 to 1000");
		else
			st->log_keep = (uint32_t)n;
	} else if (strcmp(ks, "log_tail") == 0) {
		if (parse_size(s, 4u << 20, &n) < 0)
			perr(p, &val->start_mark,
			     "log_tail: want a size up to 4MiB (e.g. 8KiB)");
		else
			st->log_tail = (uint32_t)n;
	} else {
		perr(p, &val->start_mark,
		     "unknown key \"%s\" in agentsupd settings", ks);
	}
}

static void
parse_settings(struct parse *p, yaml_node_t *v, yaml_node_t *at)
{
	struct settings *st = &p->cfg->settings;

	if (p->have_settings) {
		perr(p, &at->start_mark,
		     "a second agentsupd settings document");
		return;
	}
	p->have_settings = true;
	st->loc = (struct loc){p->file, (int)at->start_mark.line + 1,
	                       (int)at->start_mark.column + 1};
	if (v->type != YAML_MAPPING_NODE) {
		perr(p, &v->start_mark, "agentsupd: expected a mapping");
		return;
	}
	for (yaml_node_pair_t *pr = v->data.mapping.pairs.start;
	     pr < v->data.mapping.pairs.top; pr++) {
		yaml_node_t *k = node_at(p, pr->key),
		            *val = node_at(p, pr->value);
		const char *ks, *s;
		uint64_t n;

		if (k == NULL || val == NULL)
			break;
		if ((ks = want_scalar(p, "agentsupd", k)) == NULL)
			continue;
		if (duplicate_key(p, v, pr, ks)) {
			perr(p, &k->start_mark, "duplicate key \"%s\"", ks);
			continue;
		}
		if (strcmp(ks, "socket") == 0 ||
		    strcmp(ks, "events_file") == 0 ||
		    strcmp(ks, "log_dir") == 0) {
			char **dst = ks[0] == 's'   ? &st->socket
			             : ks[0] == 'e' ? &st->events_file
			                            : &st->log_dir;
			if ((s = want_scalar(p, ks, val)) == NULL)
				continue;
			if (*s == '\0') {
				perr(p, &val->start_mark, "%s: empty path", ks);
				continue;
			}
			free(*dst);
			*dst = xstrdup(s);
		} else if (strcmp(ks, "max_frame") == 0) {
			if ((s = want_scalar(p, ks, val)) == NULL)
				continue;
			if (parse_uint(s, 16u << 20, &n) < 0 || n < 1024)
				perr(p, &val->start_mark,
				     "max_frame: want a byte count from 1024 "
				     "to 16777216");
			else
				st->max_frame = (uint32_t)n;
		} else if (strncmp(ks, "log_", 4) == 0) {
			parse_log_setting(p, st, ks, val);
		} else {
			perr(p, &k->start_mark,
			     "unknown key \"%s\" in agentsupd settings", ks);
		}
	}
}

static void
parse_document(struct parse *p, yaml_node_t *root)
{
	struct spec *s;

	if (root->type == YAML_MAPPING_NODE &&
	    root->data.mapping.pairs.top - root->data.mapping.pairs.start >=
	            1) {
		yaml_node_pair_t *pr = root->data.mapping.pairs.start;
		yaml_node_t *k = node_at(p, pr->key);
		const char *ks = k ? scalar(k) : NULL;

		if (ks != NULL && strcmp(ks, "agentsupd") == 0) {
			if (root->data.mapping.pairs.top - pr != 1)
				perr(p, &root->start_mark,
				     "the agentsupd document holds only "
				     "settings");
			parse_settings(p, node_at(p, pr->value), k);
			return;
		}
	}
	if ((s = parse_node(p, root, 0, true)) == NULL)
		return;
	if (p->ntops == p->captops) {
		p->captops = p->captops ? p->captops * 2 : 8;
		p->tops = xreallocarray(p->tops, p->captops, sizeof *p->tops);
	}
	p->tops[p->ntops++] = s;
}

static void
parse_file(struct parse *p, const char *path)
{
	yaml_parser_t parser;
	yaml_document_t doc;
	struct stat st;
	FILE *f;

	p->file = path;
	if ((f = fopen(path, "rbe")) == NULL) {
		errs_add(p->errs,
		         xasprintf("%s:0:0: %s", path, strerror(errno)));
		return;
	}
	if (fstat(fileno(f), &st) == 0 && st.st_size > CONFIG_MAX_FILE_BYTES) {
		errs_add(p->errs, xasprintf("%s:0:0: larger than %u bytes",
		                            path, CONFIG_MAX_FILE_BYTES));
		fclose(f);
		return;
	}
	if (!yaml_parser_initialize(&parser)) {
		errs_add(p->errs, xasprintf("%s:0:0: out of memory", path));
		fclose(f);
		return;
	}
	yaml_parser_set_input_file(&parser, f);
	for (;;) {
		yaml_node_t *root;

		if (!yaml_parser_load(&parser, &doc)) {
			errs_add(p->errs,
			         xasprintf("%s:%zu:%zu: %s%s%s", path,
			                   parser.problem_mark.line + 1,
			                   parser.problem_mark.column + 1,
			                   parser.problem ? parser.problem
			                                  : "YAML error",
			                   parser.context ? " " : "",
			                   parser.context ? parser.context
			                                  : ""));
			break;
		}
		if ((root = yaml_document_get_root_node(&doc)) == NULL) {
			yaml_document_delete(&doc);
			break; /* end of stream */
		}
		p->doc = &doc;
		if (root->type == YAML_SCALAR_NODE &&
		    root->data.scalar.length == 0)
			; /* an empty document ("---" alone) is harmless */
		else
			parse_document(p, root);
		yaml_document_delete(&doc);
		if (p->budget == 0) {
			errs_add(p->errs,
			         xasprintf("%s:0:0: too many YAML nodes "
			                   "(aliases?)",
			                   path));
			break;
		}
	}
	yaml_parser_delete(&parser);
	fclose(f);
}

/* --- linking the documents into one tree -------------------------------- */

struct named {
	const char *name;
	struct spec *spec;
};

static int
named_cmp(const void *a, const void *b)
{
	const struct named *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	if (c != 0)
		return c;
	/* same name: keep declaration order so the error points at the 2nd */
	return (x->spec->loc.file != y->spec->loc.file)
	               ? strcmp(x->spec->loc.file, y->spec->loc.file)
	               : x->spec->loc.line - y->spec->loc.line;
}

static void
collect(struct spec *s, struct named **v, size_t *n, size_t *cap)
{
	if (*n == *cap) {
		*cap = *cap ? *cap * 2 : 64;
		*v = xreallocarray(*v, *cap, sizeof **v);
	}
	(*v)[(*n)++] = (struct named){s->name, s};
	for (size_t i = 0; i < s->nchildren; i++)
		collect(s->children[i], v, n, cap);
}

static struct spec *
lookup(struct named *v, size_t n, const char *name)
{
	struct named *r;
	size_t lo = 0, hi = n;

	while (lo < hi) { /* first entry with this name */
		size_t mid = lo + (hi - lo) / 2;
		if (strcmp(v[mid].name, name) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	r = lo < n && strcmp(v[lo].name, name) == 0 ? &v[lo] : NULL;
	return r ? r->spec : NULL;
}

static void
add_child(struct spec *parent, struct spec *child)
{
	parent->children = xreallocarray(
	        parent->children, parent->nchildren + 1, sizeof(struct spec *));
	parent->children[parent->nchildren++] = child;
}

static bool
reaches(const struct spec *from, const struct spec *target)
{
	if (from == target)
		return true;
	for (size_t i = 0; i < from->nchildren; i++)
		if (reaches(from->children[i], target))
			return true;
	return false;
}

static int
depth_of(const struct spec *s)
{
	int d = 0;

	for (size_t i = 0; i < s->nchildren; i++) {
		int c = depth_of(s->children[i]) + 1;
		if (c > d)
			d = c;
	}
	return d;
}

/* Attach `parent:` documents, find or make the root, check names. */
static void
link_tree(struct parse *p)
{
	struct named *all = NULL;
	size_t nall = 0, cap = 0, nroots = 0;
	struct spec *declared_root = NULL, *implicit = NULL, **attached;
	bool need_implicit;

	for (size_t i = 0; i < p->ntops; i++)
		collect(p->tops[i], &all, &nall, &cap);
	if (nall > 0)
		qsort(all, nall, sizeof *all, named_cmp);
	for (size_t i = 1; i < nall; i++)
		if (strcmp(all[i].name, all[i - 1].name) == 0)
			locerr(p->errs, &all[i].spec->loc,
			       "duplicate name \"%s\" (first declared at "
			       "%s:%d)",
			       all[i].name, all[i - 1].spec->loc.file,
			       all[i - 1].spec->loc.line);
	attached = xcalloc(p->ntops ? p->ntops : 1, sizeof *attached);
	declared_root = lookup(all, nall, "root");
	for (size_t i = 0; i < p->ntops; i++) {
		struct spec *s = p->tops[i], *par;

		if (s->parent == NULL) {
			nroots++;
			continue;
		}
		par = lookup(all, nall, s->parent);
		if (par == NULL && strcmp(s->parent, "root") == 0)
			continue; /* the implicit root, made below */
		if (par == NULL)
			locerr(p->errs, &s->parent_loc, "unknown parent \"%s\"",
			       s->parent);
		else if (par->kind != KIND_SUPERVISOR)
			locerr(p->errs, &s->parent_loc,
			       "parent \"%s\" is a worker, not a supervisor",
			       s->parent);
		else if (reaches(s, par))
			locerr(p->errs, &s->parent_loc,
			       "cyclic parent: \"%s\" is inside \"%s\"",
			       s->parent, s->name);
		else {
			add_child(par, s);
			attached[i] = par;
		}
	}
	need_implicit = false;
	for (size_t i = 0; i < p->ntops; i++)
		if (p->tops[i]->parent != NULL && attached[i] == NULL &&
		    declared_root == NULL &&
		    strcmp(p->tops[i]->parent, "root") == 0)
			need_implicit = true;
	if (nroots == 1 && !need_implicit) {
		struct spec *only = NULL;
		for (size_t i = 0; i < p->ntops; i++)
			if (p->tops[i]->parent == NULL)
				only = p->tops[i];
		if (only->kind == KIND_SUPERVISOR) {
			p->cfg->root = only;
			goto done;
		}
	}
	if (declared_root != NULL && (nroots > 1 || need_implicit ||
	                              declared_root->kind != KIND_SUPERVISOR ||
	                              declared_root->parent != NULL)) {
		locerr(p->errs, &declared_root->loc,
		       "two roots: \"root\" is declared here and the other "
		       "parentless nodes need an implicit root of that name; "
		       "give them \"parent: root\" or rename this node");
		goto done;
	}
	implicit = spec_new(KIND_SUPERVISOR);
	implicit->name = xstrdup("root");
	implicit->loc =
	        (struct loc){p->ntops ? p->tops[0]->loc.file : "-", 0, 0};
	for (size_t i = 0; i < p->ntops; i++)
		if (p->tops[i]->parent == NULL ||
		    (attached[i] == NULL && declared_root == NULL &&
		     strcmp(p->tops[i]->parent, "root") == 0))
			add_child(implicit, p->tops[i]);
	p->cfg->root = implicit;
done:
	if (p->cfg->root != NULL && depth_of(p->cfg->root) > CONFIG_MAX_DEPTH)
		locerr(p->errs, &p->cfg->root->loc,
		       "tree deeper than %d levels", CONFIG_MAX_DEPTH);
	if (p->errs->count > 0) {
		/* Take the tree apart so that each document is freed once:
		 * attachments were appended, so undo them last-first. */
		for (size_t i = p->ntops; i-- > 0;)
			if (attached[i] != NULL)
				attached[i]->nchildren--;
		if (implicit != NULL) {
			implicit->nchildren = 0;
			spec_free(implicit);
		}
		for (size_t i = 0; i < p->ntops; i++)
			spec_free(p->tops[i]);
		p->cfg->root = NULL;
	}
	free(attached);
	free(all);
}

struct config *
config_load_files(const char *const *paths, size_t n,
                  struct config_errors *errs)
{
	struct parse p = {0};
	size_t before = errs->count;

	p.cfg = xcalloc(1, sizeof *p.cfg);
	p.cfg->settings.max_frame = DEFAULT_MAX_FRAME;
	p.cfg->settings.log_max = 10u << 20;
	p.cfg->settings.log_keep = 5;
	p.cfg->settings.log_tail = 8192;
	p.errs = errs;
	p.budget = CONFIG_NODE_BUDGET;
	p.cfg->files = xcalloc(n ? n : 1, sizeof(char *));
	for (size_t i = 0; i < n; i++)
		p.cfg->files[p.cfg->nfiles++] = xstrdup(paths[i]);
	for (size_t i = 0; i < n; i++)
		parse_file(&p, p.cfg->files[i]);
	if (p.ntops == 0 && errs->count == before)
		errs_add(errs, xasprintf("%s:0:0: no worker or supervisor is "
		                         "declared",
		                         n ? paths[0] : "supervisor.d"));
	else
		link_tree(&p);
	free(p.tops);
	if (errs->count > before) {
		config_free(p.cfg);
		return NULL;
	}
	return p.cfg;
}

static int
strp_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool
is_yaml_name(const char *n)
{
	size_t l = strlen(n);

	if (n[0] == '.')
		return false;
	return (l > 5 && strcmp(n + l - 5, ".yaml") == 0) ||
	       (l > 4 && strcmp(n + l - 4, ".yml") == 0);
}

/* Every *.yaml / *.yml in dir, in byte order of name. */
struct config *
config_load(const char *dir, struct config_errors *errs)
{
	struct config *cfg = NULL;
	struct dirent *de;
	char **paths = NULL;
	size_t n = 0;
	DIR *d;

	if ((d = opendir(dir)) == NULL) {
		errs_add(errs, xasprintf("%s:0:0: %s", dir, strerror(errno)));
		return NULL;
	}
	while ((de = readdir(d)) != NULL) {
		if (!is_yaml_name(de->d_name))
			continue;
		if (n == CONFIG_MAX_FILES) {
			errs_add(errs, xasprintf("%s:0:0: more than %d files",
			                         dir, CONFIG_MAX_FILES));
			break;
		}
		paths = xreallocarray(paths, n + 1, sizeof(char *));
		paths[n++] = xasprintf("%s/%s", dir, de->d_name);
	}
	closedir(d);
	if (n == 0 && errs->count == 0)
		errs_add(errs,
		         xasprintf("%s:0:0: no *.yaml or *.yml files", dir));
	if (errs->count == 0) {
		qsort(paths, n, sizeof(char *), strp_cmp);
		cfg = config_load_files((const char *const *)paths, n, errs);
	}
	for (size_t i = 0; i < n; i++)
		free(paths[i]);
	free(paths);
	return cfg;
}

/* --- comparing and printing --------------------------------------------- */

static bool
strv_equal(char **a, char **b)
{
	if (a == NULL || b == NULL)
		return a == b;
	for (; *a != NULL && *b != NULL; a++, b++)
		if (strcmp(*a, *b) != 0)
			return false;
	return *a == NULL && *b == NULL;
}

static bool
str_equal(const char *a, const char *b)
{
	return (a == NULL || b == NULL) ? a == b : strcmp(a, b) == 0;
}

static bool
output_equal(const struct output *a, const struct output *b)
{
	return a->mode == b->mode && str_equal(a->path, b->path);
}

int
spec_process_equal(const struct spec *a, const struct spec *b)
{
	return a->kind == b->kind && strv_equal(a->argv, b->argv) &&
	       str_equal(a->directory, b->directory) &&
	       strv_equal(a->env, b->env) && output_equal(&a->out, &b->out) &&
	       output_equal(&a->err, &b->err);
}

int
spec_policy_equal(const struct spec *a, const struct spec *b)
{
	return a->kind == b->kind && a->restart == b->restart &&
	       a->strategy == b->strategy && a->intensity == b->intensity &&
	       a->period_ms == b->period_ms &&
	       a->shutdown_ms == b->shutdown_ms &&
	       a->heartbeat_ms == b->heartbeat_ms &&
	       a->heartbeat_timeout_ms == b->heartbeat_timeout_ms &&
	       a->start_timeout_ms == b->start_timeout_ms &&
	       a->drain_timeout_ms == b->drain_timeout_ms;
}

static void
print_argv(char **argv, FILE *f)
{
	for (char **a = argv; *a != NULL; a++) {
		bool plain = **a != '\0' && strpbrk(*a, " \t\n'\"\\$`") == NULL;
		fprintf(f, a == argv ? "" : " ");
		if (plain)
			fputs(*a, f);
		else {
			fputc('\'', f);
			for (const char *c = *a; *c; c++)
				if (*c == '\'')
					fputs("'\\''", f);
				else
					fputc(*c, f);
			fputc('\'', f);
		}
	}
}

static void
print_spec(const struct spec *s, const char *prefix, bool last, bool top,
           FILE *f)
{
	char dur[32], buf[256];

	fprintf(f, "%s%s%s", prefix, top ? "" : (last ? "`-- " : "|-- "),
	        s->name);
	if (s->kind == KIND_SUPERVISOR) {
		util_format_duration(s->period_ms, dur, sizeof dur);
		fprintf(f, "  supervisor %s, intensity %u in %s",
		        config_strategy_name(s->strategy), s->intensity, dur);
		if (!top && s->restart != RESTART_PERMANENT)
			fprintf(f, ", %s", config_restart_name(s->restart));
		fputc('\n', f);
	} else {
		fprintf(f, "  worker %s: ", config_restart_name(s->restart));
		print_argv(s->argv, f);
		if (s->heartbeat_ms) {
			util_format_duration(s->heartbeat_ms, dur, sizeof dur);
			fprintf(f, "  [heartbeat %s]", dur);
		}
		if (s->start_timeout_ms) {
			util_format_duration(s->start_timeout_ms, dur,
			                     sizeof dur);
			fprintf(f, "  [ready within %s]", dur);
		}
		fputc('\n', f);
	}
	snprintf(buf, sizeof buf, "%s%s", prefix,
	         top ? "" : (last ? "    " : "|   "));
	for (size_t i = 0; i < s->nchildren; i++)
		print_spec(s->children[i], buf, i + 1 == s->nchildren, false,
		           f);
}

void
config_print(const struct config *cfg, FILE *f)
{
	print_spec(cfg->root, "", true, true, f);
}
