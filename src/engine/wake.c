/*
 * wake.c - the engine asks for time. Each node wants at most one wake-up
 * (the earliest of its backoff, probe, or job deadlines); a binary heap of
 * nodes keyed by that time lets the shell keep a single timer for the
 * earliest and costs O(log n) per change.
 */
#include <stdlib.h>

#include "engine.h"
#include "progress.h"
#include "util.h"

static bool
earlier(const struct node *a, const struct node *b)
{
	return a->wake_at < b->wake_at;
}

static void
heap_put(struct tree *t, size_t i, struct node *n)
{
	t->heap[i] = n;
	n->heap_slot = i + 1;
}

static void
heap_up(struct tree *t, size_t i)
{
	struct node *n = t->heap[i];

	while (i > 0 && earlier(n, t->heap[(i - 1) / 2])) {
		heap_put(t, i, t->heap[(i - 1) / 2]);
		i = (i - 1) / 2;
	}
	heap_put(t, i, n);
}

static void
heap_down(struct tree *t, size_t i)
{
	struct node *n = t->heap[i];

	for (;;) {
		size_t l = 2 * i + 1, m = i;
		const struct node *best = n;
		if (l < t->nheap && earlier(t->heap[l], best)) {
			m = l;
			best = t->heap[l];
		}
		if (l + 1 < t->nheap && earlier(t->heap[l + 1], best))
			m = l + 1;
		if (m == i)
			break;
		heap_put(t, i, t->heap[m]);
		i = m;
	}
	heap_put(t, i, n);
}

static void
heap_remove(struct tree *t, struct node *n)
{
	size_t i = n->heap_slot - 1;
	struct node *last = t->heap[--t->nheap];

	n->heap_slot = 0;
	if (i == t->nheap)
		return;
	heap_put(t, i, last);
	heap_up(t, i);
	heap_down(t, last->heap_slot - 1);
}

void
wake_set(struct tree *t, struct node *n, uint64_t at)
{
	if (n->heap_slot != 0)
		heap_remove(t, n);
	n->wake_at = at;
	if (at == 0)
		return;
	if (t->nheap == t->capheap) {
		t->capheap = t->capheap ? 2 * t->capheap : 16;
		t->heap = xreallocarray(t->heap, t->capheap, sizeof *t->heap);
	}
	t->heap[t->nheap] = n;
	n->heap_slot = ++t->nheap;
	heap_up(t, t->nheap - 1);
}

uint64_t
tree_next_wake(const struct tree *t)
{
	return t->nheap ? t->heap[0]->wake_at : 0;
}

void
tree_tick(struct tree *t, uint64_t now)
{
	t->now = now;
	while (t->nheap > 0 && t->heap[0]->wake_at <= now) {
		struct node *n = t->heap[0];
		wake_set(t, n, 0);
		if (node_is_worker(n))
			worker_woken(t, n);
		else {
			sup_woken(t, n);
			budget_sup_woken(t, n);
		}
	}
}
