/*
 * onevent.c - the settings' `on_event:` list: a command per matching event
 * (DESIGN §13), typed here; src/daemon/hooks.c runs them.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "eventkinds.h"
#include "parse.h"
#include "util.h"

#define ONEVENT_NAME(id, name, tone) name,
static const char *const onevent_kinds[] = {EVENTS_KINDS(ONEVENT_NAME) NULL};
#undef ONEVENT_NAME

static bool
onevent_kind(const char *s)
{
	for (size_t i = 0; onevent_kinds[i] != NULL; i++)
		if (strcmp(onevent_kinds[i], s) == 0)
			return true;
	return false;
}

/* A list of non-empty scalars as a NULL-terminated vector (or NULL);
 * names: event kinds, each one agentsupd has (a misspelt one, which
 * would never match, is refused at --check). */
static char **
onevent_strv(struct parse *p, const char *key, yaml_node_t *v, bool names)
{
	yaml_node_item_t *it;
	char **out;
	size_t n, k = 0;

	if (map_list(p, v, key, &it, &n) < 0)
		return NULL;
	out = xcalloc(n + 1, sizeof *out);
	for (size_t i = 0; i < n; i++) {
		yaml_node_t *e = load_node(p, it[i]);
		const char *s = e ? load_scalar(p, key, e) : NULL;
		if (s == NULL)
			continue;
		if (*s == '\0' ||
		    (names && strspn(s, "abcdefghijklmnopqrs"
		                        "tuvwxyz_") != strlen(s))) {
			load_err(p, &e->start_mark, "%s: bad name \"%s\"", key,
			         s);
			continue;
		}
		if (names && !onevent_kind(s)) {
			load_err(p, &e->start_mark,
			         "%s: no event is of kind \"%s\" (the kinds: "
			         "docs/operations.md, Events)",
			         key, s);
			continue;
		}
		out[k++] = xstrdup(s);
	}
	if (k == 0) {
		load_err(p, &v->start_mark, "%s: empty list", key);
		config_free_strv(out);
		return NULL;
	}
	return out;
}

/* `run`: a list exec'd as is, or a string split like `command`. */
static void
onevent_run(struct parse *p, yaml_node_t *v, struct hook_spec *h)
{
	const char *s, *why;

	if (v->type == YAML_SEQUENCE_NODE) {
		h->argv = onevent_strv(p, "run", v, false);
		return;
	}
	if ((s = load_scalar(p, "run", v)) != NULL &&
	    config_split_command(s, &h->argv, &why) < 0)
		load_err(p, &v->start_mark, "run: %s", why);
}

/* One entry: {kinds: [...], run: ..., timeout: duration}. */
static void
onevent_entry(struct parse *p, yaml_node_t *v, struct hook_spec *h)
{
	struct pair *pr;
	size_t n;

	h->timeout_ms = CONFIG_HOOK_TIMEOUT_MS;
	if (map_pairs(p, v, "on_event", &pr, &n) < 0)
		return;
	for (size_t i = 0; i < n; i++) {
		const char *s;
		if (strcmp(pr[i].key, "kinds") == 0)
			h->kinds = onevent_strv(p, "kinds", pr[i].v, true);
		else if (strcmp(pr[i].key, "run") == 0)
			onevent_run(p, pr[i].v, h);
		else if (strcmp(pr[i].key, "timeout") == 0) {
			if ((s = load_scalar(p, "timeout", pr[i].v)) != NULL &&
			    (config_parse_duration(s, &h->timeout_ms) < 0 ||
			     h->timeout_ms == 0))
				load_err(p, &pr[i].v->start_mark,
				         "timeout: want a duration above zero");
		} else
			load_err(p, &pr[i].k->start_mark,
			         "on_event: unknown key \"%s\"", pr[i].key);
	}
	free(pr);
	if (h->kinds == NULL || h->argv == NULL || h->argv[0] == NULL)
		load_err(p, &v->start_mark,
		         "on_event: an entry needs kinds and run");
}

void
onevent_parse(struct parse *p, const char *key, yaml_node_t *v,
              struct settings *st)
{
	yaml_node_item_t *it;
	size_t n;

	if (map_list(p, v, key, &it, &n) < 0)
		return;
	if (n > CONFIG_MAX_HOOKS) {
		load_err(p, &v->start_mark, "on_event: at most %d entries",
		         CONFIG_MAX_HOOKS);
		return;
	}
	onevent_free(st);
	st->hooks = xcalloc(n ? n : 1, sizeof *st->hooks);
	for (size_t i = 0; i < n; i++) {
		yaml_node_t *e = load_node(p, it[i]);
		if (e != NULL)
			onevent_entry(p, e, &st->hooks[st->nhooks++]);
	}
}

void
onevent_free(struct settings *st)
{
	for (size_t i = 0; i < st->nhooks; i++) {
		config_free_strv(st->hooks[i].kinds);
		config_free_strv(st->hooks[i].argv);
	}
	free(st->hooks);
	st->hooks = NULL;
	st->nhooks = 0;
}
