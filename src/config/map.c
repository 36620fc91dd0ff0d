/*
 * map.c - a YAML mapping as a list of key: value pairs, merge keys (`<<`)
 * resolved and each key once; and a list with its length checked. Sorting
 * finds duplicates in n log n, so no mapping costs a quadratic scan.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "config.h"
#include "parse.h"
#include "yamldoc.h"
#include "util.h"

#define MAP_MAX_MERGE 8 /* merge keys inside merged mappings */

/* A mapping's pairs in priority order, before duplicates are settled. */
struct pairvec {
	struct pair *v;
	bool *own; /* a key written in the mapping itself, not merged */
	size_t n;
	size_t cap;
};

static void
map_push(struct pairvec *pv, struct pair pr, bool own)
{
	if (pv->n == pv->cap) {
		pv->cap = pv->cap ? pv->cap * 2 : 16;
		pv->v = xreallocarray(pv->v, pv->cap, sizeof *pv->v);
		pv->own = xreallocarray(pv->own, pv->cap, sizeof *pv->own);
	}
	pv->own[pv->n] = own;
	pv->v[pv->n++] = pr;
}

static bool
map_is_merge(yaml_node_t *k)
{
	return k->type == YAML_SCALAR_NODE &&
	       k->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
	       strcmp((const char *)k->data.scalar.value, "<<") == 0;
}

static int map_collect(struct parse *, yaml_node_t *, const char *, int,
                       struct pairvec *);

/* `<<: *a` or `<<: [*a, *b]`: the sources, first one strongest. */
static int
map_merge(struct parse *p, yaml_node_t *v, const char *what, int depth,
          struct pairvec *pv)
{
	yaml_node_item_t *it;
	size_t n;

	if (depth >= MAP_MAX_MERGE) {
		load_err(p, &v->start_mark, "<<: merges nested deeper than %d",
		         MAP_MAX_MERGE);
		return -1;
	}
	if (v->type == YAML_MAPPING_NODE)
		return map_collect(p, v, what, depth + 1, pv);
	if (v->type != YAML_SEQUENCE_NODE ||
	    map_list(p, v, "<<", &it, &n) < 0) {
		load_err(p, &v->start_mark,
		         "<<: expected a mapping or a list of mappings");
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		yaml_node_t *src = load_node(p, it[i]);
		if (src == NULL)
			return -1;
		if (src->type != YAML_MAPPING_NODE) {
			load_err(
			        p, &src->start_mark,
			        "<<: expected a mapping or a list of mappings");
			return -1;
		}
		if (map_collect(p, src, what, depth + 1, pv) < 0)
			return -1;
	}
	return 0;
}

/*
 * A mapping's own keys first, then its merge sources in order, each
 * resolved the same way: the first occurrence of a key in this order is
 * the one that holds (YAML's merge key rules).
 */
static int
map_collect(struct parse *p, yaml_node_t *map, const char *what, int depth,
            struct pairvec *pv)
{
	yaml_node_pair_t *start = map->data.mapping.pairs.start;
	size_t n = (size_t)(map->data.mapping.pairs.top - start);

	if (n > CONFIG_MAX_MAP_KEYS) {
		load_err(p, &map->start_mark, "%s: %zu keys, more than %d",
		         what, n, CONFIG_MAX_MAP_KEYS);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		yaml_node_t *k = load_node(p, start[i].key);
		yaml_node_t *v = load_node(p, start[i].value);

		if (k == NULL || v == NULL)
			return -1;
		if (map_is_merge(k))
			continue; /* after the own keys, below */
		if (k->type != YAML_SCALAR_NODE) {
			load_err(p, &k->start_mark, "keys must be plain words");
			continue;
		}
		map_push(
		        pv,
		        (struct pair){(const char *)k->data.scalar.value, k, v},
		        depth == 0);
	}
	for (size_t i = 0; i < n; i++) {
		yaml_node_t *k = yamldoc_get(p->doc, start[i].key);
		if (map_is_merge(k) &&
		    map_merge(p, yamldoc_get(p->doc, start[i].value), what,
		              depth, pv) < 0)
			return -1;
	}
	if (pv->n > CONFIG_MAX_MAP_KEYS) {
		load_err(p, &map->start_mark,
		         "%s: more than %d keys once merged", what,
		         CONFIG_MAX_MAP_KEYS);
		return -1;
	}
	return 0;
}

static int
map_pair_cmp(const void *a, const void *b)
{
	const struct pair *const *x = a, *const *y = b;
	int c = strcmp((*x)->key, (*y)->key);

	if (c != 0)
		return c;
	return *x < *y ? -1 : *x > *y; /* priority order: earlier wins */
}

/*
 * The pairs of a mapping, merge keys resolved, each key once: sorting
 * finds duplicates in n log n. A key written twice is an error; a merged
 * key that the mapping (or an earlier source) also has is overridden.
 */
int
map_pairs(struct parse *p, yaml_node_t *map, const char *what,
          struct pair **pairs, size_t *np)
{
	struct pairvec pv = {0};
	const struct pair **sorted;
	bool *drop;
	size_t k = 0;

	if (map->type != YAML_MAPPING_NODE) {
		load_err(p, &map->start_mark, "%s: expected a mapping", what);
		return -1;
	}
	if (map_collect(p, map, what, 0, &pv) < 0) {
		free(pv.v);
		free(pv.own);
		return -1;
	}
	sorted = xcalloc(pv.n + 1, sizeof *sorted);
	drop = xcalloc(pv.n + 1, sizeof *drop);
	for (size_t i = 0; i < pv.n; i++)
		sorted[i] = &pv.v[i];
	qsort(sorted, pv.n, sizeof *sorted, map_pair_cmp);
	for (size_t i = 1; i < pv.n; i++) {
		size_t at = (size_t)(sorted[i] - pv.v);
		if (strcmp(sorted[i]->key, sorted[i - 1]->key) != 0)
			continue;
		drop[at] = true;
		if (pv.own[at])
			load_err(p, &sorted[i]->k->start_mark,
			         "duplicate key \"%s\"", sorted[i]->key);
	}
	for (size_t i = 0; i < pv.n; i++)
		if (!drop[i])
			pv.v[k++] = pv.v[i];
	free(sorted);
	free(drop);
	free(pv.own);
	*pairs = pv.v;
	*np = k;
	return 0;
}

int
map_list(struct parse *p, yaml_node_t *list, const char *what,
         yaml_node_item_t **items, size_t *n)
{
	if (list->type != YAML_SEQUENCE_NODE) {
		/* said here: `on_event: {kinds: ...}` (the dash forgotten) or
		 * `spawn_from: a` was taken silently as no hook, no spawner */
		load_err(p, &list->start_mark, "%s: want a list", what);
		return -1;
	}
	*items = list->data.sequence.items.start;
	*n = (size_t)(list->data.sequence.items.top - *items);
	if (*n > CONFIG_MAX_LIST) {
		load_err(p, &list->start_mark, "%s: %zu items, more than %d",
		         what, *n, CONFIG_MAX_LIST);
		return -1;
	}
	return 0;
}
