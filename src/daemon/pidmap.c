/* pidmap.c - the reaper's index from pid to running session. */
#include <stdlib.h>
#include <string.h>

#include "pidmap.h"
#include "util.h"

static size_t
pid_slot(const struct pidmap *m, pid_t pid)
{
	return ((size_t)pid * 2654435761u) & (m->cap - 1);
}

struct session *
pidmap_get(const struct pidmap *m, pid_t pid)
{
	if (m->cap == 0)
		return NULL;
	for (size_t i = pid_slot(m, pid);; i = (i + 1) & (m->cap - 1)) {
		if (m->keys[i] == 0)
			return NULL;
		if (m->keys[i] == pid)
			return m->vals[i];
	}
}

static void
pidmap_grow(struct pidmap *m)
{
	struct pidmap old = *m;

	m->cap = old.cap ? old.cap * 2 : 64;
	m->keys = xcalloc(m->cap, sizeof *m->keys);
	m->vals = xcalloc(m->cap, sizeof *m->vals);
	m->count = 0;
	for (size_t i = 0; i < old.cap; i++)
		if (old.keys[i] != 0)
			pidmap_put(m, old.keys[i], old.vals[i]);
	free(old.keys);
	free(old.vals);
}

void
pidmap_put(struct pidmap *m, pid_t pid, struct session *w)
{
	size_t i;

	if ((m->count + 1) * 2 > m->cap)
		pidmap_grow(m);
	for (i = pid_slot(m, pid); m->keys[i] != 0; i = (i + 1) & (m->cap - 1))
		;
	m->keys[i] = pid;
	m->vals[i] = w;
	m->count++;
}

/* Linear probing: delete by shifting later entries back (no tombstones). */
void
pidmap_del(struct pidmap *m, pid_t pid)
{
	size_t i, j, mask = m->cap - 1;

	if (m->cap == 0)
		return;
	for (i = pid_slot(m, pid); m->keys[i] != pid; i = (i + 1) & mask)
		if (m->keys[i] == 0)
			return;
	m->keys[i] = 0;
	m->count--;
	for (j = (i + 1) & mask; m->keys[j] != 0; j = (j + 1) & mask) {
		size_t home = pid_slot(m, m->keys[j]);
		/* move j back to i unless its home lies in (i, j] */
		if (i <= j ? (home <= i || home > j)
		           : (home <= i && home > j)) {
			m->keys[i] = m->keys[j];
			m->vals[i] = m->vals[j];
			m->keys[j] = 0;
			i = j;
		}
	}
}

void
pidmap_free(struct pidmap *m)
{
	free(m->keys);
	free(m->vals);
	memset(m, 0, sizeof *m);
}
