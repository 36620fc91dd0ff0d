/*
 * spec.c - a spec's life: made with its defaults, copied for `instances`,
 * given keys by `defaults`, freed.
 */
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "parse.h"
#include "util.h"

/* Every key's default (DESIGN §3, §9, §10, §11). */
const struct policy config_policy_default = {
        .refs = 1,
        .restart = RESTART_PERMANENT,
        .autostart = true,
        .strategy = ONE_FOR_ONE,
        .intensity = 3,
        .period_ms = 5000,
        .shutdown_ms = 5000,
        .drain_timeout_ms = 30000,
        .backoff = /* DESIGN §9: a one-off crash comes back at once */
        {
                .enabled = true,
                .initial_ms = 100,
                .max_ms = 30000,
                .reset_after_ms = 60000,
                .retry_after_max_ms = 600000,
                .multiplier = 2.0,
                .jitter = JITTER_FULL,
        },
        .umask_mode = -1,
        .log_keep = -1,
        .max_children = CONFIG_MAX_CHILDREN_DEFAULT,
        .key_ttl_ms = CONFIG_KEY_TTL_DEFAULT_MS,
        .extend_max_ms = 600000,
        .stall_grace_ms = PROGRESS_KEYS_GRACE_UNSET,
        .checkpoint = {.enabled = true,
                       .max = CHECKPOINT_MAX_DEFAULT,
                       .keep = 2,
                       .poison_after = 3},
};

struct policy *
spec_pol(const struct spec *s)
{
	return (struct policy *)s->pol; /* the loader's own until linked */
}

/* A pool's pages: policies one after another, never freed one by one. */
#define SPEC_POOL_BLOCK (64u << 10)
struct spec_pool_block {
	struct spec_pool_block *next;
	size_t used; /* bytes of the block, this header's included */
};

/* Room for a policy in the pool, or NULL (no pages: the heap then). */
static struct policy *
spec_pool_get(struct spec_pool *pool)
{
	struct spec_pool_block *b = pool->blocks;
	size_t at, size = sizeof(struct policy);
	const size_t align = _Alignof(struct policy);

	at = b != NULL ? (b->used + align - 1) / align * align : 0;
	if (b == NULL || at + size > SPEC_POOL_BLOCK) {
		if ((b = util_pages(SPEC_POOL_BLOCK)) == NULL)
			return NULL;
		b->next = pool->blocks;
		pool->blocks = b;
		at = (sizeof *b + align - 1) / align * align;
	}
	b->used = at + size;
	return (struct policy *)((char *)b + at);
}

void
spec_pool_free(struct spec_pool *pool)
{
	struct spec_pool_block *b, *next;

	for (b = pool->blocks; b != NULL; b = next) {
		next = b->next;
		util_pages_free(b, SPEC_POOL_BLOCK);
	}
	pool->blocks = NULL;
}

/* A private copy of a policy, counted once: in pool if one is given. */
static struct policy *
spec_pol_dup(const struct policy *from, struct spec_pool *pool)
{
	struct policy *c = pool != NULL ? spec_pool_get(pool) : NULL;
	bool pooled = c != NULL;

	if (c == NULL)
		c = xcalloc(1, sizeof *c);
	memcpy(c, from, sizeof *c);
	c->pooled = pooled;
	c->refs = 1;
	return c;
}

struct policy *
spec_pol_unpool(const struct policy *from)
{
	return spec_pol_dup(from, NULL);
}

void
spec_pol_unref(const struct policy *pol)
{
	struct policy *p = (struct policy *)pol;

	if (p != NULL && --p->refs == 0 && !p->pooled)
		free(p);
}

void
spec_share_policy(struct spec *dst, const struct spec *src)
{
	if (dst->pol == src->pol)
		return;
	spec_pol(src)->refs++;
	spec_pol_unref(dst->pol);
	dst->pol = src->pol;
}

struct policy *
spec_policy_own(struct spec *s)
{
	if (s->pol->refs > 1) {
		const struct policy *shared = s->pol;

		s->pol = spec_pol_dup(shared, NULL);
		spec_pol_unref(shared);
	}
	return (struct policy *)s->pol;
}

void *
spec_key_addr(const struct spec *s, const struct key *k)
{
	if (k->off & KEY_IN_POLICY)
		return (char *)s->pol + (k->off & ~KEY_IN_POLICY);
	return (char *)s + k->off;
}

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
	s->out.mode = s->err.mode = OUTPUT_CAPTURE;
	s->pol = spec_pol_dup(&config_policy_default,
	                      p != NULL ? &p->pool : NULL);
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

/* A deep copy of a worker (an instance of it); its policy in pool (NULL:
 * the heap). */
struct spec *
spec_clone(const struct spec *s, struct spec_pool *pool)
{
	struct spec *c = xmalloc(sizeof *c);

	*c = *s;
	c->borrowed = 0; /* its arrays are copies, its own */
	c->pol = spec_pol_dup(s->pol, pool);
	c->name = spec_strdup(s->name);
	c->parent = spec_strdup(s->parent);
	c->children = NULL;
	c->nchildren = 0;
	c->defaults = NULL;
	c->tmpl = NULL;
	c->spawn_from = NULL;
	c->argv = spec_strv_dup(s->argv);
	c->directory = spec_strdup(s->directory);
	c->env = spec_strv_dup(s->env);
	c->env_files = spec_strv_dup(s->env_files);
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
	size_t n = sizeof *s + sizeof *s->pol + (s->name ? strlen(s->name) : 0);

	n += s->directory ? strlen(s->directory) : 0;
	n += s->out.path ? strlen(s->out.path) : 0;
	n += s->err.path ? strlen(s->err.path) : 0;
	n += (s->user ? strlen(s->user) : 0) +
	     (s->group ? strlen(s->group) : 0);
	return n + spec_strv_bytes(s->argv) + spec_strv_bytes(s->env) +
	       spec_strv_bytes(s->env_files);
}

/* What copying one key's value costs. */
size_t
spec_key_bytes(const struct spec *src, const struct key *k)
{
	const char *s = spec_key_addr(src, k);
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
	char *d = spec_key_addr(dst, k);
	const char *s = spec_key_addr(src, k);

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
	spec_free(s->tmpl);
	config_free_strv(s->spawn_from);
	free(s->name);
	free(s->parent);
	if (!(s->borrowed & SPEC_BORROWS_ARGV))
		config_free_strv(s->argv);
	if (!(s->borrowed & SPEC_BORROWS_DIR))
		free(s->directory);
	if (!(s->borrowed & SPEC_BORROWS_ENV))
		config_free_strv(s->env);
	config_free_strv(s->env_files);
	free(s->out.path);
	free(s->err.path);
	free(s->user);
	free(s->group);
	spec_pol_unref(s->pol);
	free(s);
}
