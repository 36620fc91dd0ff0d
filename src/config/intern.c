/*
 * intern.c - one copy of each distinct policy in a parsed tree. Workers
 * declared alike (or inheriting the same `defaults:`) have equal
 * policies; sharing them keeps a spec to what is its own (name, command,
 * environment, output), which is most of the idle memory a worker costs.
 * Equal commands, environments and directories are kept once too: the
 * first spec that has one owns it, the others borrow it (spec->borrowed).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "parse.h"
#include "util.h"

/* Open addressing, a power of two: policies, then the arrays owned. */
struct intern {
	const struct policy **slots;
	size_t cap;
	struct spec **argv, **env, **dir; /* the spec owning each */
};

static uint64_t
intern_fnv(uint64_t h, const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)s[i];
		h *= 1099511628211ull;
	}
	return h;
}

/* A command or environment's strings, each ended by its NUL. */
static uint64_t
intern_strv_hash(char *const *v)
{
	uint64_t h = 14695981039346656037ull;

	for (; *v != NULL; v++)
		h = intern_fnv(h, *v, strlen(*v) + 1);
	return h;
}

/* The array in spec s that `which` names. */
static void *
intern_field(struct spec *s, unsigned which)
{
	if (which == SPEC_BORROWS_ARGV)
		return &s->argv;
	if (which == SPEC_BORROWS_ENV)
		return &s->env;
	return &s->directory;
}

static uint64_t
intern_value_hash(struct spec *s, unsigned which)
{
	if (which == SPEC_BORROWS_DIR)
		return intern_fnv(14695981039346656037ull, s->directory,
		                  strlen(s->directory));
	return intern_strv_hash(*(char ***)intern_field(s, which));
}

static bool
intern_value_equal(struct spec *a, struct spec *b, unsigned which)
{
	if (which == SPEC_BORROWS_DIR)
		return strcmp(a->directory, b->directory) == 0;
	return util_strv_equal(*(char ***)intern_field(a, which),
	                       *(char ***)intern_field(b, which));
}

/* s borrows the equal array a spec seen before owns, freeing its own; or
 * owns its array, the one later specs borrow. */
static void
intern_array(struct spec **slots, size_t cap, struct spec *s, unsigned which)
{
	void **mine = intern_field(s, which);
	size_t i;

	if (*mine == NULL || (s->borrowed & which))
		return; /* borrowed while parsing: spec_share_argv */
	i = intern_value_hash(s, which) & (cap - 1);
	while (slots[i] != NULL) {
		if (intern_value_equal(slots[i], s, which)) {
			/* others borrow this very array: it stays */
			if (which == SPEC_BORROWS_ARGV &&
			    (s->borrowed & SPEC_LENDS_ARGV))
				return;
			if (which == SPEC_BORROWS_DIR)
				free(*mine);
			else
				config_free_strv(*mine);
			*mine = *(void **)intern_field(slots[i], which);
			s->borrowed |= which;
			return;
		}
		i = (i + 1) & (cap - 1);
	}
	slots[i] = s;
}

/* The bytes of a policy that say what it is (all but its count). Policies
 * are made by calloc and copied whole, so padding compares equal too; a
 * policy whose bytes differ but whose values do not (-0.0 and 0.0) is
 * only left unshared. */
static const unsigned char *
intern_bytes(const struct policy *p, size_t *len)
{
	size_t off = offsetof(struct policy, refs) + sizeof p->refs;

	*len = sizeof *p - off;
	return (const unsigned char *)p + off;
}

/* FNV-1a over those bytes. */
static uint64_t
intern_hash(const struct policy *p)
{
	size_t len;
	const unsigned char *b = intern_bytes(p, &len);
	uint64_t h = 14695981039346656037ull;

	for (size_t i = 0; i < len; i++) {
		h ^= b[i];
		h *= 1099511628211ull;
	}
	return h;
}

static bool
intern_equal(const struct policy *a, const struct policy *b)
{
	size_t len;
	const unsigned char *x = intern_bytes(a, &len);

	return memcmp(x, intern_bytes(b, &len), len) == 0;
}

static size_t
intern_count(const struct spec *s)
{
	size_t n = 1;

	for (size_t i = 0; i < s->nchildren; i++)
		n += intern_count(s->children[i]);
	if (s->defaults != NULL)
		n += intern_count(s->defaults);
	if (s->tmpl != NULL)
		n += intern_count(s->tmpl);
	return n;
}

/* s takes the equal policy already seen, or its own is the one seen. */
static void
intern_one(struct intern *t, struct spec *s)
{
	size_t i = intern_hash(s->pol) & (t->cap - 1);

	while (t->slots[i] != NULL) {
		if (t->slots[i] == s->pol)
			return;
		if (intern_equal(t->slots[i], s->pol)) {
			const struct policy *old = s->pol;

			((struct policy *)t->slots[i])->refs++; /* ours */
			s->pol = t->slots[i];
			spec_pol_unref(old);
			return;
		}
		i = (i + 1) & (t->cap - 1);
	}
	if (s->pol->pooled) { /* kept: to the heap, as the load's pages go */
		const struct policy *old = s->pol;

		s->pol = spec_pol_unpool(old);
		spec_pol_unref(old);
	}
	t->slots[i] = s->pol;
}

static void
intern_walk(struct intern *t, struct spec *s)
{
	intern_one(t, s);
	intern_array(t->argv, t->cap, s, SPEC_BORROWS_ARGV);
	intern_array(t->env, t->cap, s, SPEC_BORROWS_ENV);
	intern_array(t->dir, t->cap, s, SPEC_BORROWS_DIR);
	for (size_t i = 0; i < s->nchildren; i++)
		intern_walk(t, s->children[i]);
	if (s->defaults != NULL)
		intern_walk(t, s->defaults);
	if (s->tmpl != NULL)
		intern_walk(t, s->tmpl);
}

/* Shared at once, not by spec_intern after the whole tree: a copy freed
 * then left a hole between the allocations that came after it, one for
 * each worker of a big tree (111 KiB of heap with 1,000 workers). */
void
spec_share_argv(struct spec *prev, struct spec *s)
{
	if (prev->argv == NULL || s->argv == NULL ||
	    (s->borrowed & SPEC_BORROWS_ARGV) ||
	    !util_strv_equal(prev->argv, s->argv))
		return;
	config_free_strv(s->argv);
	s->argv = prev->argv;
	s->borrowed |= SPEC_BORROWS_ARGV;
	if (!(prev->borrowed & SPEC_BORROWS_ARGV))
		prev->borrowed |= SPEC_LENDS_ARGV;
}

void
spec_intern(struct spec *root)
{
	struct intern t = {0};
	size_t n = intern_count(root);

	t.cap = 16;
	while (t.cap < 2 * n)
		t.cap *= 2;
	t.slots = xcalloc(t.cap, sizeof *t.slots);
	t.argv = xcalloc(t.cap, sizeof *t.argv);
	t.env = xcalloc(t.cap, sizeof *t.env);
	t.dir = xcalloc(t.cap, sizeof *t.dir);
	intern_walk(&t, root);
	free(t.slots);
	free(t.argv);
	free(t.env);
	free(t.dir);
}
