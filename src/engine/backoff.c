/*
 * backoff.c - one flaky child must not take the fleet down: a child that
 * fails again and again waits longer and longer (capped, jittered so a
 * fleet does not retry in step), while a one-off crash comes back at once.
 */
#include "backoff.h"

bool
backoff_stable(const struct node *c, uint64_t now, uint64_t need_ms)
{
	if (c->running_since == 0 || now < c->running_since + need_ms)
		return false;
	return c->progress == NULL || c->progress_moved > c->running_since;
}

unsigned
backoff_count(struct node *c, uint64_t now)
{
	if (backoff_stable(c, now, c->spec->pol->backoff.reset_after_ms))
		c->failures = 0;
	c->running_since = 0; /* the next run counts afresh */
	return ++c->failures;
}

uint64_t
backoff_delay(struct tree *t, const struct backoff_spec *b, unsigned n)
{
	double cap = (double)b->initial_ms;

	if (!b->enabled || n <= 1)
		return 0;
	for (unsigned i = 2; i < n && cap < (double)b->max_ms; i++)
		cap *= b->multiplier;
	if (cap > (double)b->max_ms)
		cap = (double)b->max_ms;
	switch (b->jitter) {
	case JITTER_FULL:
		return rng_upto(&t->rng, (uint64_t)cap);
	case JITTER_EQUAL:
		return (uint64_t)cap / 2 + rng_upto(&t->rng, (uint64_t)cap / 2);
	case JITTER_NONE:
		break;
	}
	return (uint64_t)cap;
}
