/*
 * policy.c - the restart policy maps of DESIGN §9: `backoff` (on by default)
 * and `circuit` (off unless configured). Each is `none` or a mapping whose
 * sub-keys are a small table of their own; a sub-key left out keeps its
 * default. And the checks between a worker's liveness keys (heartbeat,
 * start_timeout, ready_after), which tell when it is up and when it hangs.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "parse.h"

#define POLICY_MAX_FAILURES   10000u
#define POLICY_MAX_MULTIPLIER 1000.0

enum policy_type {
	SUB_DURATION,
	SUB_DURATION_NZ,
	SUB_NUMBER,
	SUB_JITTER,
	SUB_COUNT
};

struct policy_key {
	const char *name;
	enum policy_type type;
	size_t off;
};

#define B(f) offsetof(struct backoff_spec, f)
static const struct policy_key policy_backoff_keys[] = {
        {"initial", SUB_DURATION_NZ, B(initial_ms)},
        {"max", SUB_DURATION_NZ, B(max_ms)},
        {"multiplier", SUB_NUMBER, B(multiplier)},
        {"jitter", SUB_JITTER, B(jitter)},
        {"reset_after", SUB_DURATION, B(reset_after_ms)},
        {"retry_after_max", SUB_DURATION, B(retry_after_max_ms)},
        {NULL, 0, 0},
};
#undef B

#define C(f) offsetof(struct circuit_spec, f)
static const struct policy_key policy_circuit_keys[] = {
        {"failures", SUB_COUNT, C(failures)},
        {"window", SUB_DURATION_NZ, C(window_ms)},
        {"open", SUB_DURATION_NZ, C(open_ms)},
        {"open_max", SUB_DURATION_NZ, C(open_max_ms)},
        {"probe_stable", SUB_DURATION, C(probe_stable_ms)},
        {NULL, 0, 0},
};
#undef C

static const char *const policy_jitters[] = {"full", "equal", "none", NULL};

/* One sub-key's value into its field; the message names "map.key". */
static int
policy_value(struct parse *p, const char *name, const struct policy_key *pk,
             yaml_node_t *v, void *field)
{
	const char *s = load_scalar(p, name, v);
	uint64_t u;
	double d;
	int i;

	if (s == NULL)
		return -1;
	switch (pk->type) {
	case SUB_DURATION:
	case SUB_DURATION_NZ:
		if ((i = config_parse_duration(s, &u)) < 0) {
			load_bad_duration(p, &v->start_mark, name, s, i);
			return -1;
		}
		if (pk->type == SUB_DURATION_NZ && u == 0) {
			load_err(p, &v->start_mark,
			         "%s: must be more than zero", name);
			return -1;
		}
		memcpy(field, &u, sizeof u);
		return 0;
	case SUB_NUMBER:
		if (scalar_number(s, POLICY_MAX_MULTIPLIER, &d) < 0 || d < 1) {
			load_err(p, &v->start_mark,
			         "%s: want a number from 1 to %g, not \"%s\"",
			         name, POLICY_MAX_MULTIPLIER, s);
			return -1;
		}
		memcpy(field, &d, sizeof d);
		return 0;
	case SUB_JITTER:
		if ((i = scalar_enum(policy_jitters, s)) < 0) {
			load_err(
			        p, &v->start_mark,
			        "%s: unknown value \"%s\" (want full, equal or "
			        "none)",
			        name, s);
			return -1;
		}
		*(enum jitter_kind *)field = (enum jitter_kind)i;
		return 0;
	case SUB_COUNT:
		if (scalar_uint(s, POLICY_MAX_FAILURES, &u) < 0 || u == 0) {
			load_err(p, &v->start_mark,
			         "%s: want a whole number from 1 to %u", name,
			         POLICY_MAX_FAILURES);
			return -1;
		}
		*(unsigned *)field = (unsigned)u;
		return 0;
	}
	return -1;
}

/* A mapping of sub-keys into base; `seen` gets bit i for sub-key i. */
static int
policy_map(struct parse *p, const char *what, yaml_node_t *v,
           const struct policy_key *table, void *base, unsigned *seen)
{
	struct pair *pr;
	size_t n;
	int rc = 0;

	if (map_pairs(p, v, what, &pr, &n) < 0)
		return -1;
	*seen = 0;
	for (size_t i = 0; i < n; i++) {
		const struct policy_key *pk = table;
		char name[64];

		while (pk->name != NULL && strcmp(pk->name, pr[i].key) != 0)
			pk++;
		if (pk->name == NULL) {
			load_err(p, &pr[i].k->start_mark,
			         "%s: unknown key \"%s\"", what, pr[i].key);
			rc = -1;
			continue;
		}
		snprintf(name, sizeof name, "%s.%s", what, pk->name);
		if (policy_value(p, name, pk, pr[i].v, (char *)base + pk->off))
			rc = -1;
		*seen |= 1u << (pk - table);
	}
	free(pr);
	return rc;
}

static bool
policy_is_none(yaml_node_t *v)
{
	return v->type == YAML_SCALAR_NODE &&
	       strcmp((const char *)v->data.scalar.value, "none") == 0;
}

void
policy_backoff(struct parse *p, const struct key *k, yaml_node_t *v,
               struct spec *s, int depth)
{
	struct backoff_spec b = config_policy_default.backoff;
	unsigned seen;

	(void)depth;
	if (policy_is_none(v)) {
		spec_pol(s)->backoff.enabled = false;
		return;
	}
	if (v->type != YAML_MAPPING_NODE) {
		load_err(p, &v->start_mark,
		         "%s: want none or a mapping of initial, max, "
		         "multiplier, jitter, reset_after, retry_after_max",
		         k->name);
		return;
	}
	if (policy_map(p, k->name, v, policy_backoff_keys, &b, &seen) < 0)
		return;
	if (b.initial_ms > b.max_ms)
		load_err(p, &v->start_mark,
		         "backoff: initial is longer than max");
	spec_pol(s)->backoff = b;
}

void
policy_circuit(struct parse *p, const struct key *k, yaml_node_t *v,
               struct spec *s, int depth)
{
	struct circuit_spec c = {
	        .enabled = true,
	        .window_ms = 600000,
	        .open_ms = 60000,
	        .open_max_ms = 1800000,
	        .probe_stable_ms = 10000,
	};
	unsigned seen;

	(void)depth;
	if (policy_is_none(v)) {
		spec_pol(s)->circuit = (struct circuit_spec){0};
		return;
	}
	if (v->type != YAML_MAPPING_NODE) {
		load_err(p, &v->start_mark,
		         "%s: want none or a mapping of failures, window, "
		         "open, open_max, probe_stable",
		         k->name);
		return;
	}
	if (policy_map(p, k->name, v, policy_circuit_keys, &c, &seen) < 0)
		return;
	if (!(seen & 1u))
		load_err(p, &v->start_mark,
		         "circuit: failures is required (how many failures "
		         "within window open it)");
	else if (c.open_ms > c.open_max_ms)
		load_err(p, &v->start_mark,
		         "circuit: open is longer than open_max");
	spec_pol(s)->circuit = c;
}

/* Whether the worker wrote key itself (not from defaults). */
static bool
policy_own(const struct spec *s, const char *key)
{
	const struct key *k = keys_find(key);

	return k != NULL && (s->keys_set >> (k - keys_table) & 1) != 0;
}

/* The liveness keys that depend on each other, once a worker has all its
 * keys (a default of heartbeat_timeout: three beats). */
void
policy_check_liveness(struct parse *p, struct spec *s)
{
	struct policy *pol = spec_pol(s);

	if (pol->heartbeat_ms == 0 && pol->heartbeat_timeout_ms != 0)
		load_locerr(p, &s->loc,
		            "worker %s: heartbeat_timeout without heartbeat",
		            s->name);
	if (pol->heartbeat_ms != 0 && pol->heartbeat_timeout_ms == 0)
		pol->heartbeat_timeout_ms = 3 * pol->heartbeat_ms;
	if (pol->heartbeat_ms != 0 &&
	    pol->heartbeat_timeout_ms < pol->heartbeat_ms)
		load_locerr(p, &s->loc,
		            "worker %s: heartbeat_timeout is shorter than "
		            "heartbeat",
		            s->name);
	if (pol->ready_after_ms == 0 || pol->start_timeout_ms == 0)
		return;
	if (policy_own(s, "ready_after") != policy_own(s, "start_timeout")) {
		/* its own wins over the other from defaults */
		if (policy_own(s, "ready_after"))
			pol->start_timeout_ms = 0;
		else
			pol->ready_after_ms = 0;
	} else {
		load_locerr(
		        p, &s->loc,
		        "worker %s: ready_after and start_timeout%s: a "
		        "worker that says ready has start_timeout, one that "
		        "does not has ready_after",
		        s->name,
		        policy_own(s, "ready_after")
		                ? ""
		                : " (both from defaults: set one on it)");
	}
}
