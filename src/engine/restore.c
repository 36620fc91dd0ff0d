/*
 * restore.c - a worker's durable facts put back at start (DESIGN §11): what
 * it has spent, and its circuit. A circuit that was open (or probing) when
 * agentsupd stopped is half-open again: the worker's first start is its
 * probe, and a failed probe reopens it for twice as long, as always.
 */
#include "engine.h"

void
tree_restore(struct node *n, const struct spend *s, enum circuit_state st,
             uint64_t open_ms)
{
	n->spend = *s;
	if (st == CIRCUIT_CLOSED || !n->spec->circuit.enabled)
		return;
	n->circuit.state = CIRCUIT_HALF_OPEN;
	n->circuit.open_ms = open_ms ? open_ms : n->spec->circuit.open_ms;
}
