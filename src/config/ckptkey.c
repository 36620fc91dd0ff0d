/*
 * ckptkey.c - the worker key `checkpoint: none | {max, keep, poison_after}`
 * of DESIGN §11: how large a checkpoint may be, how many the daemon keeps,
 * and after how many failures in a row the same one is discarded.
 */
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "parse.h"

/* One sub-key: a count from lo to hi. */
static int
ckptkey_uint(struct parse *p, const struct pair *pr, uint64_t lo, uint64_t hi,
             uint64_t *out)
{
	const char *s = load_scalar(p, pr->key, pr->v);

	if (s == NULL)
		return -1;
	if (scalar_uint(s, hi, out) < 0 || *out < lo) {
		load_err(p, &pr->v->start_mark,
		         "checkpoint.%s: want a whole number from %llu to %llu",
		         pr->key, (unsigned long long)lo,
		         (unsigned long long)hi);
		return -1;
	}
	return 0;
}

static int
ckptkey_pair(struct parse *p, const struct pair *pr, struct checkpoint_spec *c)
{
	uint64_t u;

	if (strcmp(pr->key, "max") == 0) {
		if (ckptkey_uint(p, pr, 1, CHECKPOINT_MAX_MAX, &u) < 0)
			return -1;
		c->max = (uint32_t)u;
	} else if (strcmp(pr->key, "keep") == 0) {
		if (ckptkey_uint(p, pr, 1, CHECKPOINT_KEEP_MAX, &u) < 0)
			return -1;
		c->keep = (unsigned)u;
	} else if (strcmp(pr->key, "poison_after") == 0) {
		if (ckptkey_uint(p, pr, 1, 1000, &u) < 0)
			return -1;
		c->poison_after = (unsigned)u;
	} else {
		load_err(p, &pr->k->start_mark,
		         "checkpoint: unknown key \"%s\" (want max, keep, "
		         "poison_after)",
		         pr->key);
		return -1;
	}
	return 0;
}

void
ckptkey_parse(struct parse *p, const struct key *k, yaml_node_t *v,
              struct spec *s, int depth)
{
	struct checkpoint_spec c = config_policy_default.checkpoint;
	struct pair *pr;
	size_t n;
	int rc = 0;

	(void)depth;
	if (v->type == YAML_SCALAR_NODE &&
	    strcmp((const char *)v->data.scalar.value, "none") == 0) {
		spec_pol(s)->checkpoint.enabled = false;
		return;
	}
	if (v->type != YAML_MAPPING_NODE) {
		load_err(p, &v->start_mark,
		         "%s: want none or a mapping of max, keep, "
		         "poison_after",
		         k->name);
		return;
	}
	if (map_pairs(p, v, k->name, &pr, &n) < 0)
		return;
	for (size_t i = 0; i < n; i++)
		if (ckptkey_pair(p, &pr[i], &c) < 0)
			rc = -1;
	free(pr);
	if (rc == 0)
		spec_pol(s)->checkpoint = c;
}
