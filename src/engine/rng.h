/* rng.h - the engine's randomness: a seeded generator state, so a run (and
 * every test) can be replayed. */
#ifndef AGENTSUP_RNG_H
#define AGENTSUP_RNG_H

#include <stdint.h>

struct rng {
	uint64_t state;
};

void rng_seed(struct rng *, uint64_t seed);
uint64_t rng_next(struct rng *);
/* Uniform in [0, max]. */
uint64_t rng_upto(struct rng *, uint64_t max);

#endif
