/*
 * spec.c - a spec's life: made with its defaults, copied for `instances`,
 * given keys by `defaults`, freed.
 */
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "parse.h"
#include "util.h"

/* DESIGN §9: on by default, a one-off crash comes back at once. */
const struct backoff_spec spec_backoff_default = {
        .enabled = true,
        .initial_ms = 100,
        .max_ms = 30000,
        .reset_after_ms = 60000,
        .retry_after_max_ms = 600000,
        .multiplier = 2.0,
        .jitter = JITTER_FULL,
};

/* A worker or supervisor with every default of DESIGN §3 and §9; NULL once
 * the load holds CONFIG_MAX_NODES (p may be NULL: the implicit root). */
struct spec *
spec_new(struct parse *p, enum node_kind kind)
{
	struct spec *s;

	if (p != NULL && p->nspecs >= CONFIG_MAX_NODES) {
		load_exhaust(p, CONFIG_MAX_NODES, "workers and supervisors");
		return NULL;
	}
	if (p != NULL)
		p->nspecs++;
	s = xcalloc(1, sizeof *s);
	s->kind = kind;
	s->restart = RESTART_PERMANENT;
	s->strategy = ONE_FOR_ONE;
	s->intensity = 3;
	s->period_ms = 5000;
	s->shutdown_ms = 5000;
	s->drain_timeout_ms = 30000;
	s->out.mode = s->err.mode = OUTPUT_CAPTURE;
	s->backoff = spec_backoff_default;
	s->umask_mode = -1;
	s->extend_max_ms = 600000;
	s->stall_grace_ms = PROGRESS_KEYS_GRACE_UNSET;
	return s;
}

char **
spec_strv_dup(char *const *v)
{
	size_t n = 0;
	char **c;

	if (v == NULL)
		return NULL;
	while (v[n] != NULL)
		n++;
	c = xcalloc(n + 1, sizeof *c);
	for (size_t i = 0; i < n; i++)
		c[i] = xstrdup(v[i]);
	return c;
}

static char *
spec_strdup(const char *s)
{
	return s != NULL ? xstrdup(s) : NULL;
}

/* A deep copy of a worker (an instance of it). */
struct spec *
spec_clone(const struct spec *s)
{
	struct spec *c = xmalloc(sizeof *c);

	*c = *s;
	c->name = spec_strdup(s->name);
	c->parent = spec_strdup(s->parent);
	c->children = NULL;
	c->nchildren = 0;
	c->defaults = NULL;
	c->argv = spec_strv_dup(s->argv);
	c->directory = spec_strdup(s->directory);
	c->env = spec_strv_dup(s->env);
	c->out.path = spec_strdup(s->out.path);
	c->err.path = spec_strdup(s->err.path);
	c->user = spec_strdup(s->user);
	c->group = spec_strdup(s->group);
	return c;
}

static size_t
spec_strv_bytes(char *const *v)
{
	size_t n = 0;

	for (; v != NULL && *v != NULL; v++)
		n += strlen(*v) + 1;
	return n;
}

/* What copying a worker costs, charged against CONFIG_MAX_BYTES. */
size_t
spec_bytes(const struct spec *s)
{
	size_t n = sizeof *s + (s->name ? strlen(s->name) : 0);

	n += s->directory ? strlen(s->directory) : 0;
	n += s->out.path ? strlen(s->out.path) : 0;
	n += s->err.path ? strlen(s->err.path) : 0;
	n += (s->user ? strlen(s->user) : 0) +
	     (s->group ? strlen(s->group) : 0);
	return n + spec_strv_bytes(s->argv) + spec_strv_bytes(s->env);
}

/* What copying one key's value costs. */
size_t
spec_key_bytes(const struct spec *src, const struct key *k)
{
	const char *s = (const char *)src + k->off;
	const char *str;

	switch (k->storage) {
	case STORE_STR:
		str = *(char *const *)s;
		return str ? strlen(str) + 1 : 0;
	case STORE_STRV:
		return spec_strv_bytes(*(char **const *)s);
	case STORE_OUTPUT:
		str = ((const struct output *)s)->path;
		return str ? strlen(str) + 1 : 0;
	case STORE_POD:
		break;
	}
	return k->size;
}

/* Give dst the value src holds for one key (inheritance by `defaults`). */
void
spec_copy_key(struct spec *dst, const struct spec *src, const struct key *k)
{
	char *d = (char *)dst + k->off;
	const char *s = (const char *)src + k->off;

	switch (k->storage) {
	case STORE_POD:
		memcpy(d, s, k->size);
		break;
	case STORE_STR:
		free(*(char **)d);
		*(char **)d = spec_strdup(*(char *const *)s);
		break;
	case STORE_STRV:
		config_free_strv(*(char ***)d);
		*(char ***)d = spec_strv_dup(*(char **const *)s);
		break;
	case STORE_OUTPUT:
		free(((struct output *)d)->path);
		((struct output *)d)->mode = ((const struct output *)s)->mode;
		((struct output *)d)->path =
		        spec_strdup(((const struct output *)s)->path);
		break;
	}
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

void
spec_free(struct spec *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->nchildren; i++)
		spec_free(s->children[i]);
	free(s->children);
	spec_free(s->defaults);
	free(s->name);
	free(s->parent);
	config_free_strv(s->argv);
	free(s->directory);
	config_free_strv(s->env);
	free(s->out.path);
	free(s->err.path);
	free(s->user);
	free(s->group);
	free(s);
}
