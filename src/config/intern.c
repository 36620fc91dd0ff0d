/*
 * intern.c - one copy of each distinct policy in a parsed tree. Workers
 * declared alike (or inheriting the same `defaults:`) have equal
 * policies; sharing them keeps a spec to what is its own (name, command,
 * environment, output), which is most of the idle memory a worker costs.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "parse.h"
#include "util.h"

struct intern {
	const struct policy **slots; /* open addressing, a power of two */
	size_t cap;
};

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
	t->slots[i] = s->pol;
}

static void
intern_walk(struct intern *t, struct spec *s)
{
	intern_one(t, s);
	for (size_t i = 0; i < s->nchildren; i++)
		intern_walk(t, s->children[i]);
	if (s->defaults != NULL)
		intern_walk(t, s->defaults);
	if (s->tmpl != NULL)
		intern_walk(t, s->tmpl);
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
	intern_walk(&t, root);
	free(t.slots);
}
