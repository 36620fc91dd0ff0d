/* rng.c - splitmix64: small, fast, and good enough for jitter. */
#include "rng.h"

void
rng_seed(struct rng *r, uint64_t seed)
{
	r->state = seed;
}

uint64_t
rng_next(struct rng *r)
{
	uint64_t z = (r->state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

uint64_t
rng_upto(struct rng *r, uint64_t max)
{
	if (max == UINT64_MAX)
		return rng_next(r);
	return rng_next(r) % (max + 1); /* the bias is far below a jitter's */
}
