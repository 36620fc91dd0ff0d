/*
 * settings.c - the `agentsupd:` document: the daemon's own settings, a key
 * table of their own.
 */
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "parse.h"
#include "util.h"

#define SETTINGS_MIN_FRAME 1024u
#define SETTINGS_MAX_FRAME (16u << 20)

static void
settings_path(struct parse *p, const char *key, yaml_node_t *v, char **dst)
{
	const char *s = load_scalar(p, key, v);

	if (s == NULL)
		return;
	if (*s == '\0') {
		load_err(p, &v->start_mark, "%s: empty path", key);
		return;
	}
	free(*dst);
	*dst = xstrdup(s);
}

/* Absolute: a relative path would be agentsupd's working directory's, and
 * `agentsupctl -c DIR`, which reads it from DIR, would look in its own. */
static void
settings_socket(struct parse *p, const char *key, yaml_node_t *v,
                struct settings *st)
{
	settings_path(p, key, v, &st->socket);
	if (st->socket != NULL && st->socket[0] != '/') {
		load_err(p, &v->start_mark,
		         "%s: want an absolute path, not \"%s\" (relative to "
		         "agentsupd's working directory, where agentsupctl "
		         "-c does not look)",
		         key, st->socket);
		free(st->socket);
		st->socket = NULL;
	}
}

static void
settings_events_file(struct parse *p, const char *key, yaml_node_t *v,
                     struct settings *st)
{
	settings_path(p, key, v, &st->events_file);
}

static void
settings_state_dir(struct parse *p, const char *key, yaml_node_t *v,
                   struct settings *st)
{
	settings_path(p, key, v, &st->state_dir);
}

static void
settings_max_frame(struct parse *p, const char *key, yaml_node_t *v,
                   struct settings *st)
{
	const char *s = load_scalar(p, key, v);
	uint64_t n;

	if (s == NULL)
		return;
	if (scalar_uint(s, SETTINGS_MAX_FRAME, &n) < 0 ||
	    n < SETTINGS_MIN_FRAME)
		load_err(p, &v->start_mark,
		         "max_frame: want a byte count from %u to %u",
		         SETTINGS_MIN_FRAME, SETTINGS_MAX_FRAME);
	else
		st->max_frame = (uint32_t)n;
}

static void
settings_termination_log(struct parse *p, const char *key, yaml_node_t *v,
                         struct settings *st)
{
	settings_path(p, key, v, &st->termination_log);
}

/* `contain:` auto, cgroup, none or pidns (docs/operations.md, containment). */
static void
settings_contain(struct parse *p, const char *key, yaml_node_t *v,
                 struct settings *st)
{
	static const char *const modes[] = {"auto", "cgroup", "none", "pidns",
	                                    NULL};
	const char *s = load_scalar(p, key, v);
	int i;

	if (s == NULL)
		return;
	if ((i = scalar_enum(modes, s)) < 0)
		load_err(p, &v->start_mark,
		         "contain: unknown value \"%s\" (want auto, cgroup, "
		         "none or pidns)",
		         s);
	else
		st->contain = (enum contain_mode)i;
}

/* "HOST:PORT" as the daemon will bind it (a numeric host): refused here,
 * --check's 78, not at start (73, a service manager retrying it). */
static void
settings_metrics(struct parse *p, const char *key, yaml_node_t *v,
                 struct settings *st)
{
	const char *s = load_scalar(p, key, v);
	struct sockaddr_in6 ss; /* the largest it makes */
	unsigned len;

	if (s == NULL)
		return;
	if (util_parse_hostport(s, &ss, &len) < 0) {
		load_err(p, &v->start_mark,
		         "metrics: want HOST:PORT with a numeric host, e.g. "
		         "127.0.0.1:9464 or [::1]:9464");
		return;
	}
	free(st->metrics);
	st->metrics = xstrdup(s);
}

static void
settings_log_dir(struct parse *p, const char *key, yaml_node_t *v,
                 struct settings *st)
{
	settings_path(p, key, v, &st->log_dir);
}

/* A byte count ("10MiB", "1TiB", "4096": config_parse_bytes' units), at
 * most max. */
static int
settings_size(const char *s, uint64_t max, uint64_t *out)
{
	return config_parse_bytes(s, out) < 0 || *out > max ? -1 : 0;
}

/* log_max or log_keep, agentsupd's or a worker's: the value, or -1 said. */
static int
settings_rotation(struct parse *p, const char *key, const char *s,
                  yaml_node_t *v, uint64_t *n)
{
	if (strcmp(key, "log_max") == 0) {
		if (settings_size(s, UINT64_C(1) << 40, n) == 0 && *n >= 1024)
			return 0;
		load_err(p, &v->start_mark,
		         "log_max: want a size from 1024 to 1TiB (e.g. 10MiB)");
	} else if (scalar_uint(s, 1000, n) == 0) {
		return 0;
	} else {
		load_err(p, &v->start_mark,
		         "log_keep: want a count from 0 to 1000");
	}
	return -1;
}

void
settings_worker_log(struct parse *p, const struct key *k, yaml_node_t *v,
                    struct spec *sp, int depth)
{
	const char *s = load_scalar(p, k->name, v);
	uint64_t n;

	(void)depth;
	if (s == NULL || settings_rotation(p, k->name, s, v, &n) < 0)
		return;
	if (strcmp(k->name, "log_max") == 0)
		spec_pol(sp)->log_max = n;
	else
		spec_pol(sp)->log_keep = (int)n;
}

/* log_max, log_keep, log_tail: output capture's bounds; log_time,
 * log_stderr. */
static void
settings_log_bound(struct parse *p, const char *key, yaml_node_t *v,
                   struct settings *st)
{
	const char *s = load_scalar(p, key, v);
	uint64_t n;

	if (s == NULL)
		return;
	if (strcmp(key, "log_max") == 0 || strcmp(key, "log_keep") == 0) {
		if (settings_rotation(p, key, s, v, &n) < 0)
			return;
		if (strcmp(key, "log_max") == 0)
			st->log_max = n;
		else
			st->log_keep = (uint32_t)n;
	} else if (strcmp(key, "log_time") == 0) {
		if (scalar_bool(s, &st->log_time) < 0)
			load_err(p, &v->start_mark,
			         "log_time: want true or false");
	} else if (strcmp(key, "log_stderr") == 0) {
		bool on;
		if (scalar_bool(s, &on) < 0)
			load_err(p, &v->start_mark,
			         "log_stderr: want true or false");
		else
			st->log_quiet = !on;
	} else if (settings_size(s, 4u << 20, &n) < 0) {
		load_err(p, &v->start_mark,
		         "log_tail: want a size up to 4MiB (e.g. 8KiB)");
	} else {
		st->log_tail = (uint32_t)n;
	}
}

static const struct {
	const char *name;
	void (*parse)(struct parse *, const char *, yaml_node_t *,
	              struct settings *);
} settings_keys[] = {
        {"socket", settings_socket},
        {"events_file", settings_events_file},
        {"max_frame", settings_max_frame},
        {"metrics", settings_metrics},
        {"on_event", onevent_parse},
        {"log_dir", settings_log_dir},
        {"log_max", settings_log_bound},
        {"log_keep", settings_log_bound},
        {"log_tail", settings_log_bound},
        {"log_time", settings_log_bound},
        {"log_stderr", settings_log_bound},
        {"contain", settings_contain},
        {"termination_log", settings_termination_log},
        {"state_dir", settings_state_dir},
};

void
settings_parse(struct parse *p, yaml_node_t *v, yaml_node_t *at)
{
	struct settings *st = &p->cfg->settings;
	struct pair *pr;
	size_t n;

	if (v == NULL)
		return;
	if (p->have_settings) {
		load_err(p, &at->start_mark,
		         "a second agentsupd settings document");
		return;
	}
	p->have_settings = true;
	st->loc = load_loc(p, &at->start_mark);
	if (v->type != YAML_MAPPING_NODE) {
		load_err(p, &v->start_mark, "agentsupd: expected a mapping");
		return;
	}
	if (map_pairs(p, v, "agentsupd", &pr, &n) < 0)
		return;
	for (size_t i = 0; i < n; i++) {
		size_t k = 0, nk = sizeof settings_keys / sizeof *settings_keys;

		while (k < nk && strcmp(settings_keys[k].name, pr[i].key) != 0)
			k++;
		if (k == nk)
			load_err(p, &pr[i].k->start_mark,
			         "unknown key \"%s\" in agentsupd settings",
			         pr[i].key);
		else
			settings_keys[k].parse(p, pr[i].key, pr[i].v, st);
	}
	free(pr);
}
