/*
 * intensity.c - restart intensity as OTP's add_restart: the stamps of recent
 * restart decisions live in a ring of intensity + 1 slots, so a check costs
 * O(intensity) at worst and the memory is fixed per supervisor.
 */
#include <stdlib.h>

#include "intensity.h"
#include "util.h"

bool
intensity_add(struct node *s, uint64_t now)
{
	unsigned cap = s->spec->intensity + 1;

	if (s->stamps == NULL)
		s->stamps = xcalloc(cap, sizeof *s->stamps);
	while (s->nstamps > 0 &&
	       s->stamps[s->stamp0] + s->spec->period_ms < now) {
		s->stamp0 = (s->stamp0 + 1) % cap;
		s->nstamps--;
	}
	if (s->nstamps == cap) { /* full: the oldest leaves for the newest */
		s->stamp0 = (s->stamp0 + 1) % cap;
		s->nstamps--;
	}
	s->stamps[(s->stamp0 + s->nstamps) % cap] = now;
	s->nstamps++;
	return s->nstamps <= s->spec->intensity;
}

unsigned
intensity_count(const struct node *s, uint64_t now)
{
	unsigned n = 0, cap = s->spec->intensity + 1;

	for (unsigned i = 0; i < s->nstamps; i++)
		if (s->stamps[(s->stamp0 + i) % cap] + s->spec->period_ms >=
		    now)
			n++;
	return n;
}

void
intensity_forget(struct node *s)
{
	free(s->stamps);
	s->stamps = NULL;
	s->nstamps = s->stamp0 = 0;
}

void
intensity_resize(struct node *s, const struct spec *ns)
{
	unsigned oldcap = s->spec->intensity + 1, cap = ns->intensity + 1, keep;
	uint64_t *v;

	if (s->stamps == NULL || oldcap == cap)
		return;
	keep = s->nstamps < cap ? s->nstamps : cap;
	v = xcalloc(cap, sizeof *v);
	for (unsigned i = 0; i < keep; i++)
		v[i] = s->stamps[(s->stamp0 + s->nstamps - keep + i) % oldcap];
	free(s->stamps);
	s->stamps = v;
	s->stamp0 = 0;
	s->nstamps = keep;
}
