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
	unsigned cap = s->spec->pol->intensity + 1;

	if (s->super->stamps == NULL)
		s->super->stamps = xcalloc(cap, sizeof *s->super->stamps);
	while (s->super->nstamps > 0 &&
	       s->super->stamps[s->super->stamp0] + s->spec->pol->period_ms <
	               now) {
		s->super->stamp0 = (s->super->stamp0 + 1) % cap;
		s->super->nstamps--;
	}
	if (s->super->nstamps ==
	    cap) { /* full: the oldest leaves for the newest */
		s->super->stamp0 = (s->super->stamp0 + 1) % cap;
		s->super->nstamps--;
	}
	s->super->stamps[(s->super->stamp0 + s->super->nstamps) % cap] = now;
	s->super->nstamps++;
	return s->super->nstamps <= s->spec->pol->intensity;
}

unsigned
intensity_count(const struct node *s, uint64_t now)
{
	unsigned n = 0, cap = s->spec->pol->intensity + 1;

	for (unsigned i = 0; i < s->super->nstamps; i++)
		if (s->super->stamps[(s->super->stamp0 + i) % cap] +
		            s->spec->pol->period_ms >=
		    now)
			n++;
	return n;
}

void
intensity_forget(struct node *s)
{
	free(s->super->stamps);
	s->super->stamps = NULL;
	s->super->nstamps = s->super->stamp0 = 0;
}

void
intensity_resize(struct node *s, const struct spec *ns)
{
	unsigned oldcap = s->spec->pol->intensity + 1,
	         cap = ns->pol->intensity + 1, keep;
	uint64_t *v;

	if (s->super->stamps == NULL || oldcap == cap)
		return;
	keep = s->super->nstamps < cap ? s->super->nstamps : cap;
	v = xcalloc(cap, sizeof *v);
	for (unsigned i = 0; i < keep; i++)
		v[i] = s->super->stamps[(s->super->stamp0 + s->super->nstamps -
		                         keep + i) %
		                        oldcap];
	free(s->super->stamps);
	s->super->stamps = v;
	s->super->stamp0 = 0;
	s->super->nstamps = keep;
}
