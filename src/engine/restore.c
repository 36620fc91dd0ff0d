/*
 * restore.c - a worker's durable facts put back at start (DESIGN §11): what
 * it has spent, and its circuit. A circuit that was open when agentsupd
 * stopped stays open for the time it had left (the shell converts the
 * stored wall-clock deadline into that remainder): the worker is
 * quarantined and probed when it ends, as if agentsupd had never stopped.
 * One whose time passed meanwhile, or that was probing, is half-open: the
 * worker's first start is its probe, and a failed probe reopens it for
 * twice as long, as always.
 */
#include "circuit.h"
#include "engine.h"

void
tree_restore(struct tree *t, struct node *n, const struct tree_saved *s,
             uint64_t now)
{
	struct circuit *c;

	t->now = now;
	if (!spend_none(&s->spend))
		account_own(n)->spend = s->spend;
	if (s->circuit == CIRCUIT_CLOSED || !n->spec->pol->circuit.enabled)
		return;
	c = circuit_own(n);
	c->open_ms = s->open_ms ? s->open_ms : n->spec->pol->circuit.open_ms;
	if (s->circuit != CIRCUIT_OPEN || s->open_left_ms == 0) {
		c->state = CIRCUIT_HALF_OPEN;
		return;
	}
	/* never longer than the period it was in: a wall clock set back
	 * while agentsupd was down must not quarantine it for longer */
	c->state = CIRCUIT_OPEN;
	c->probe_at = t->now + (s->open_left_ms < c->open_ms ? s->open_left_ms
	                                                     : c->open_ms);
	worker_park(t, n, NODE_QUARANTINED, c->probe_at);
}
