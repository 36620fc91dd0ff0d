/*
 * circuit.c - the circuit breaker of §9. Failures within `window` are
 * stamped in a ring of `failures` slots; the failures-th opens the circuit
 * for `open`, then one probe runs half-open; a failed probe reopens it for
 * twice as long, up to open_max.
 */
#include <stdlib.h>

#include "backoff.h"
#include "circuit.h"
#include "engine.h"
#include "util.h"

const struct circuit circuit_none = {.state = CIRCUIT_CLOSED};

struct circuit *
circuit_own(struct node *c)
{
	if (c->circuit == NULL)
		c->circuit = xcalloc(1, sizeof *c->circuit);
	return c->circuit;
}

static void
circuit_open(struct tree *t, struct node *c, uint64_t open_ms)
{
	const struct circuit_spec *cs = &c->spec->pol->circuit;
	struct circuit *k = circuit_own(c);

	k->state = CIRCUIT_OPEN;
	k->open_ms = open_ms < cs->open_max_ms ? open_ms : cs->open_max_ms;
	k->probe_at = t->now + k->open_ms;
	k->nstamps = k->stamp0 = 0;
}

/* The ring made `cap` slots long (the spec's `failures`, which a reload
 * or a dynamic child's new template may change), the newest stamps kept
 * in order. */
static void
circuit_resize(struct circuit *k, unsigned cap)
{
	unsigned keep = k->nstamps < cap ? k->nstamps : cap;
	uint64_t *v = xcalloc(cap, sizeof *v);

	for (unsigned i = 0; i < keep; i++)
		v[i] = k->stamps[(k->stamp0 + k->nstamps - keep + i) % k->cap];
	free(k->stamps);
	k->stamps = v;
	k->cap = cap;
	k->stamp0 = 0;
	k->nstamps = keep;
}

bool
circuit_record(struct tree *t, struct node *c)
{
	const struct circuit_spec *cs = &c->spec->pol->circuit;
	struct circuit *k;

	if (!cs->enabled)
		return false;
	k = circuit_own(c);
	if (k->state == CIRCUIT_HALF_OPEN) { /* the probe failed */
		circuit_open(t, c, 2 * k->open_ms);
		return true;
	}
	if (k->stamps == NULL || k->cap != cs->failures)
		circuit_resize(k, cs->failures);
	while (k->nstamps > 0 &&
	       k->stamps[k->stamp0] + cs->window_ms < t->now) {
		k->stamp0 = (k->stamp0 + 1) % cs->failures;
		k->nstamps--;
	}
	k->stamps[(k->stamp0 + k->nstamps) % cs->failures] = t->now;
	if (++k->nstamps < cs->failures)
		return false;
	circuit_open(t, c, cs->open_ms);
	return true;
}

void
circuit_probe_running(struct tree *t, struct node *c)
{
	if (node_circuit(c)->state == CIRCUIT_HALF_OPEN)
		wake_set(t, c, t->now + c->spec->pol->circuit.probe_stable_ms);
}

bool
circuit_try_close(struct tree *t, struct node *c)
{
	uint64_t need = c->spec->pol->circuit.probe_stable_ms;

	if (node_circuit(c)->state != CIRCUIT_HALF_OPEN ||
	    c->state != NODE_RUNNING)
		return false;
	if (!backoff_stable(c, t->now, need)) {
		if (t->now >= c->running_since + need)
			return false; /* stable but no progress yet: a beat
			                 that moves it closes the circuit */
		wake_set(t, c, c->running_since + need);
		return false;
	}
	circuit_reset(c);
	return true;
}

void
circuit_reset(struct node *c)
{
	if (c->circuit != NULL)
		free(c->circuit->stamps);
	free(c->circuit);
	c->circuit = NULL;
}
