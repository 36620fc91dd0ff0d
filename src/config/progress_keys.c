/*
 * progress_keys.c - the keys of DESIGN §10: `loop` and `budget` (maps of
 * their own), the checks that need a worker's every key (stall needs a
 * heartbeat, stall_grace defaults to half the timeout), and how --check
 * prints them and a reload compares them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "parse.h"
#include "util.h"

#define PROGRESS_KEYS_MAX_REPEATS 10000u
#define PROGRESS_KEYS_MAX_AMOUNT  1000000000000000000ull /* 1e18 */
#define PROGRESS_KEYS_MAX_COST    1e15

static bool
progress_keys_none(yaml_node_t *v)
{
	return v->type == YAML_SCALAR_NODE &&
	       strcmp((const char *)v->data.scalar.value, "none") == 0;
}

/* `loop: {repeats: N}` (N from 2, default 5) or `loop: none`. */
void
progress_keys_loop(struct parse *p, const struct key *k, yaml_node_t *v,
                   struct spec *s, int depth)
{
	struct pair *pr;
	size_t n;
	uint64_t u = 5;

	(void)depth;
	if (progress_keys_none(v)) {
		spec_pol(s)->loop_repeats = 0;
		return;
	}
	if (v->type != YAML_MAPPING_NODE) {
		load_err(p, &v->start_mark,
		         "%s: want none or a mapping of repeats", k->name);
		return;
	}
	if (map_pairs(p, v, k->name, &pr, &n) < 0)
		return;
	for (size_t i = 0; i < n; i++) {
		const char *str;

		if (strcmp(pr[i].key, "repeats") != 0) {
			load_err(p, &pr[i].k->start_mark,
			         "loop: unknown key \"%s\"", pr[i].key);
			continue;
		}
		if ((str = load_scalar(p, "loop.repeats", pr[i].v)) == NULL)
			continue;
		if (scalar_uint(str, PROGRESS_KEYS_MAX_REPEATS, &u) < 0 ||
		    u < 2)
			load_err(p, &pr[i].v->start_mark,
			         "loop.repeats: want a whole number from 2 to "
			         "%u",
			         PROGRESS_KEYS_MAX_REPEATS);
	}
	free(pr);
	spec_pol(s)->loop_repeats = (unsigned)u;
}

/* One limit of a budget into b; -1 with the error said. */
static int
progress_keys_limit(struct parse *p, const struct pair *pr,
                    struct budget_spec *b)
{
	const char *str = load_scalar(p, "budget", pr->v);
	uint64_t *field = NULL;

	if (str == NULL)
		return -1;
	if (strcmp(pr->key, "cost") == 0) {
		if (scalar_number(str, PROGRESS_KEYS_MAX_COST, &b->cost) < 0 ||
		    b->cost <= 0) {
			load_err(p, &pr->v->start_mark,
			         "budget.cost: want a number above 0 and at "
			         "most 1e15, written out with at most 6 "
			         "decimals (e.g. 12.50), not \"%s\"",
			         str);
			return -1;
		}
		return 0;
	}
	if (strcmp(pr->key, "wall") == 0) {
		if (config_parse_duration(str, &b->wall_ms) < 0 ||
		    b->wall_ms == 0) {
			load_err(p, &pr->v->start_mark,
			         "budget.wall: want a duration above zero "
			         "(e.g. 30m), not \"%s\"",
			         str);
			return -1;
		}
		return 0;
	}
	if (strcmp(pr->key, "tokens") == 0)
		field = &b->tokens;
	else if (strcmp(pr->key, "steps") == 0)
		field = &b->steps;
	if (field == NULL) {
		load_err(
		        p, &pr->k->start_mark,
		        "budget: unknown key \"%s\" (want tokens, cost, steps, "
		        "wall)",
		        pr->key);
		return -1;
	}
	if (scalar_uint(str, PROGRESS_KEYS_MAX_AMOUNT, field) < 0 ||
	    *field == 0) {
		load_err(p, &pr->v->start_mark,
		         "budget.%s: want a whole number above 0, not \"%s\"",
		         pr->key, str);
		return -1;
	}
	return 0;
}

/* `budget: {tokens, cost, steps, wall}` (at least one) or `budget: none`. */
void
progress_keys_budget(struct parse *p, const struct key *k, yaml_node_t *v,
                     struct spec *s, int depth)
{
	struct budget_spec b = {.enabled = true};
	struct pair *pr;
	size_t n;
	int rc = 0;

	(void)depth;
	if (progress_keys_none(v)) {
		spec_pol(s)->budget = (struct budget_spec){0};
		return;
	}
	if (v->type != YAML_MAPPING_NODE) {
		load_err(p, &v->start_mark,
		         "%s: want none or a mapping of tokens, cost, steps, "
		         "wall",
		         k->name);
		return;
	}
	if (map_pairs(p, v, k->name, &pr, &n) < 0)
		return;
	for (size_t i = 0; i < n; i++)
		rc |= progress_keys_limit(p, &pr[i], &b);
	free(pr);
	if (rc == 0 && n == 0)
		load_err(p, &v->start_mark,
		         "budget: name at least one of tokens, cost, steps, "
		         "wall");
	if (rc == 0 && n > 0)
		spec_pol(s)->budget = b;
}

/* What a worker's §10 keys need of its other keys. */
void
progress_keys_check(struct parse *p, struct spec *s)
{
	if (s->pol->stall_timeout_ms != 0 && s->pol->heartbeat_ms == 0)
		load_locerr(p, &s->loc,
		            "worker %s: stall_timeout needs heartbeat (a stall "
		            "is beats without progress)",
		            s->name);
	if (s->pol->stall_grace_ms == PROGRESS_KEYS_GRACE_UNSET)
		spec_pol(s)->stall_grace_ms = spec_pol(s)->stall_timeout_ms / 2;
	else if (s->pol->stall_timeout_ms == 0)
		load_locerr(p, &s->loc,
		            "worker %s: stall_grace without stall_timeout",
		            s->name);
	if (s->pol->stall_dump && s->pol->stall_timeout_ms == 0)
		load_locerr(p, &s->loc,
		            "worker %s: stall_dump without stall_timeout",
		            s->name);
}

static bool
progress_keys_budget_equal(const struct budget_spec *a,
                           const struct budget_spec *b)
{
	if (!a->enabled || !b->enabled)
		return a->enabled == b->enabled;
	return a->tokens == b->tokens && a->steps == b->steps &&
	       a->wall_ms == b->wall_ms && a->cost == b->cost;
}

bool
progress_keys_equal(const struct spec *a, const struct spec *b)
{
	return a->pol->stall_timeout_ms == b->pol->stall_timeout_ms &&
	       a->pol->stall_grace_ms == b->pol->stall_grace_ms &&
	       a->pol->stall_dump == b->pol->stall_dump &&
	       a->pol->loop_repeats == b->pol->loop_repeats &&
	       a->pol->extend_max_ms == b->pol->extend_max_ms &&
	       a->pol->recycle_after_ms == b->pol->recycle_after_ms &&
	       progress_keys_budget_equal(&a->pol->budget, &b->pol->budget);
}

/* "[budget tokens 1000, cost 2.5, wall 1h]" for --check. */
void
progress_keys_print_budget(const struct budget_spec *b, FILE *f)
{
	char d[32];
	const char *sep = "";

	if (!b->enabled)
		return;
	fputs("  [budget", f);
	if (b->tokens) {
		fprintf(f, " tokens %llu", (unsigned long long)b->tokens);
		sep = ",";
	}
	if (b->cost > 0) {
		fprintf(f, "%s cost %g", sep, b->cost);
		sep = ",";
	}
	if (b->steps) {
		fprintf(f, "%s steps %llu", sep, (unsigned long long)b->steps);
		sep = ",";
	}
	if (b->wall_ms) {
		util_format_duration(b->wall_ms, d, sizeof d);
		fprintf(f, "%s wall %s", sep, d);
	}
	fputc(']', f);
}

/* A worker's §10 keys for --check: only those that are on or changed. */
void
progress_keys_print(const struct spec *s, FILE *f)
{
	char d1[32], d2[32];

	if (s->pol->stall_timeout_ms) {
		util_format_duration(s->pol->stall_timeout_ms, d1, sizeof d1);
		util_format_duration(s->pol->stall_grace_ms, d2, sizeof d2);
		fprintf(f, "  [stall %s, grace %s%s]", d1, d2,
		        s->pol->stall_dump ? ", dump" : "");
	}
	if (s->pol->loop_repeats)
		fprintf(f, "  [loop %u repeats]", s->pol->loop_repeats);
	progress_keys_print_budget(&s->pol->budget, f);
	if (s->pol->extend_max_ms != 600000) {
		util_format_duration(s->pol->extend_max_ms, d1, sizeof d1);
		fprintf(f, "  [extend at most %s]", d1);
	}
	if (s->pol->recycle_after_ms) {
		util_format_duration(s->pol->recycle_after_ms, d1, sizeof d1);
		fprintf(f, "  [recycle after %s]", d1);
	}
}
