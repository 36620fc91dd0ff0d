/*
 * ckpt.c - workers' checkpoints: kept by path in a hash table, newest first.
 *
 * Without a store a checkpoint is acknowledged as soon as it is kept, and
 * the `keep` newest live in memory. With a store, every one is written by
 * the store's writer thread; its checkpoint_ok is sent from the completion,
 * after the commit, to the run that sent it if it is still there. Welcome
 * hands the newest committed, whose data stays in memory until a newer one
 * commits (one whose write failed is never handed: the store has the one
 * before); the newest sent lives in memory too (its write holds it). The
 * older kept ones are on disk only, read back when the poison guard
 * discards the newest.
 *
 * A dynamic task's entry goes when the task ends (ckpt_release), so memory
 * does not grow with the tasks ever run: with a store its checkpoints are
 * on disk, read back by ckpt_hand when it runs again (replay, retry,
 * resume); without one the task's record keeps the newest (ckpt_seed hands
 * it back). An entry with writes in flight goes once they are done.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "channel.h"
#include "ckpt.h"
#include "ckpt_int.h"
#include "clock.h"
#include "log.h"
#include "store.h"
#include "util.h"

#define CKPT_ERROR_EVERY_MS                                                    \
	1000 /* store_error events: at most one a second                       \
	      */

/* --- checkpoint data, shared ---------------------------------------------- */

/* A checkpoint's bytes are copied once off the frame and shared by the kept
 * entry and the write in flight (the newest may be replaced before its write
 * commits): a count in front of them. Counted only on the loop; the writer
 * reads the bytes while its job holds a reference. */
struct ckpt_data {
	size_t refs;
	uint8_t bytes[];
};

uint8_t *
ckpt_data_new(const void *src, size_t len)
{
	struct ckpt_data *d = xmalloc(sizeof *d + len + 1); /* +1: never 0 */

	d->refs = 1;
	if (len > 0)
		memcpy(d->bytes, src, len);
	return d->bytes;
}

static struct ckpt_data *
ckpt_data_of(uint8_t *p)
{
	return (struct ckpt_data *)(void *)(p -
	                                    offsetof(struct ckpt_data, bytes));
}

uint8_t *
ckpt_data_ref(uint8_t *p)
{
	ckpt_data_of(p)->refs++;
	return p;
}

void
ckpt_data_unref(uint8_t *p)
{
	if (p != NULL && --ckpt_data_of(p)->refs == 0)
		free(ckpt_data_of(p));
}

/* --- the table ------------------------------------------------------------ */

static uint64_t
ckpt_hash(const char *s)
{
	return util_fnv_str(UTIL_FNV_BASIS, s);
}

struct ckpt_worker *
ckpt_find(const struct ckpt_set *cs, const char *path)
{
	struct ckpt_worker *w;

	if (cs->nbuckets == 0)
		return NULL;
	w = cs->buckets[ckpt_hash(path) & (cs->nbuckets - 1)];
	while (w != NULL && strcmp(w->path, path) != 0)
		w = w->next;
	return w;
}

static void
ckpt_grow(struct ckpt_set *cs)
{
	size_t nb = cs->nbuckets ? cs->nbuckets * 2 : 64;
	struct ckpt_worker **b = xcalloc(nb, sizeof *b);

	for (size_t i = 0; i < cs->nbuckets; i++)
		while (cs->buckets[i] != NULL) {
			struct ckpt_worker *w = cs->buckets[i];

			cs->buckets[i] = w->next;
			w->next = b[ckpt_hash(w->path) & (nb - 1)];
			b[ckpt_hash(w->path) & (nb - 1)] = w;
		}
	free(cs->buckets);
	cs->buckets = b;
	cs->nbuckets = nb;
}

struct ckpt_worker *
ckpt_get(struct ckpt_set *cs, const char *path)
{
	struct ckpt_worker *w = ckpt_find(cs, path);
	size_t i;

	if (w != NULL) {
		w->released = false; /* in use again before its writes ended */
		return w;
	}
	if (cs->count >= cs->nbuckets)
		ckpt_grow(cs);
	w = xcalloc(1, sizeof *w);
	w->path = xstrdup(path);
	i = ckpt_hash(path) & (cs->nbuckets - 1);
	w->next = cs->buckets[i];
	cs->buckets[i] = w;
	cs->count++;
	return w;
}

/* Out of the table and freed (no write in flight points at it). */
void
ckpt_remove(struct ckpt_set *cs, struct ckpt_worker *w)
{
	struct ckpt_worker **p =
	        &cs->buckets[ckpt_hash(w->path) & (cs->nbuckets - 1)];

	while (*p != w)
		p = &(*p)->next;
	*p = w->next;
	cs->count--;
	ckpt_truncate(w, 0);
	ckpt_data_unref(w->last.data);
	free(w->kept);
	free(w->path);
	free(w);
}

/* Forget kept[i..]: their data, not their slots' array. */
void
ckpt_truncate(struct ckpt_worker *w, unsigned n)
{
	while (w->nkept > n)
		ckpt_data_unref(w->kept[--w->nkept].data);
}

/* A newer checkpoint in front; the older ones beyond keep dropped, and
 * with a store only the newest's data stays in memory. */
void
ckpt_push(struct ckpt_set *cs, struct ckpt_worker *w, unsigned keep,
          struct ckpt_kept k)
{
	unsigned drop = 0;

	while (drop < w->nkept && w->kept[drop].seq >= k.seq)
		drop++; /* a worker numbering again from a discarded one */
	if (drop > 0) {
		for (unsigned i = 0; i < drop; i++)
			ckpt_data_unref(w->kept[i].data);
		memmove(w->kept, w->kept + drop,
		        (w->nkept - drop) * sizeof *w->kept);
		w->nkept -= drop;
	}
	ckpt_truncate(w, keep - 1);
	if (w->capkept < keep) {
		w->kept = xrealloc(w->kept, keep * sizeof *w->kept);
		w->capkept = keep;
	}
	memmove(w->kept + 1, w->kept, w->nkept * sizeof *w->kept);
	w->kept[0] = k;
	w->nkept++;
	if (cs->store != NULL && w->nkept > 1) {
		ckpt_data_unref(w->kept[1].data);
		w->kept[1].data = NULL;
	}
}

void
ckpt_last_set(struct ckpt_worker *w, const struct ckpt_kept *k)
{
	ckpt_data_unref(w->last.data);
	w->last = *k;
	if (k->data != NULL)
		w->last.data = ckpt_data_ref(k->data);
}

/* kept[i] out (its data unreferenced). */
static void
ckpt_unkeep(struct ckpt_worker *w, unsigned i)
{
	ckpt_data_unref(w->kept[i].data);
	memmove(w->kept + i, w->kept + i + 1,
	        (w->nkept - i - 1) * sizeof *w->kept);
	w->nkept--;
}

void
ckpt_written(struct ckpt_worker *w, const struct ckpt_job *j, bool ok)
{
	/* writes commit in the order they were queued: the last one
	 * committed is what the store has, whatever its seq */
	if (ok && j->era == w->era) {
		ckpt_last_set(w, &(struct ckpt_kept){.seq = j->seq,
		                                     .data = j->data,
		                                     .len = j->len});
		return;
	}
	for (unsigned i = 0; !ok && i < w->nkept; i++)
		if (w->kept[i].data == j->data) {
			ckpt_unkeep(w, i);
			return;
		}
}

/* --- store errors --------------------------------------------------------- */

/* store_error, at most one a second; the others counted in the next. */
void
ckpt_store_error(struct ckpt_set *cs, const char *path, const char *why)
{
	uint64_t now = clock_now_ms();

	if (cs->error_at != 0 && now - cs->error_at < CKPT_ERROR_EVERY_MS) {
		cs->errors_unsaid++;
		return;
	}
	events_emit(cs->events, EV_STORE_ERROR, path, 0, "store", 0,
	            "%s%s (%u more since)", why, cs->store ? "" : " (no store)",
	            cs->errors_unsaid);
	cs->error_at = now;
	cs->errors_unsaid = 0;
}

/* --- the loop's side ------------------------------------------------------ */

size_t
ckpt_max_frame(const struct spec *sp, size_t daemon_max)
{
	size_t want = (size_t)sp->pol->checkpoint.max + CKPT_FRAME_OVERHEAD;

	return sp->pol->checkpoint.enabled && want > daemon_max ? want
	                                                        : daemon_max;
}

/* What welcome hands: the newest kept without a store; with one, the
 * newest committed (one whose write is in flight may yet fail). */
static const struct ckpt_kept *
ckpt_handable(const struct ckpt_set *cs, const struct ckpt_worker *w)
{
	if (cs->store != NULL)
		return w->last.seq != 0 ? &w->last : NULL;
	return w->nkept > 0 ? &w->kept[0] : NULL;
}

const void *
ckpt_hand(struct ckpt_set *cs, struct node *n, const char *const *earlier,
          struct channel *chan, size_t *len, uint64_t *seq)
{
	struct ckpt_worker *w = ckpt_find(cs, n->path);
	const struct ckpt_kept *k;

	if (w == NULL) { /* a task run again: its checkpoints on disk */
		w = ckpt_get(cs, n->path);
		/* none under its path: its pool moved since they were
		 * stored? */
		if (cs->store != NULL && ckpt_read_path(cs, w) == 0 &&
		    earlier != NULL)
			ckpt_adopt(cs, w, earlier);
	}
	w->released = false;

	w->chan = chan;
	w->run = ++cs->runs;
	w->handed = 0;
	k = ckpt_handable(cs, w);
	if (k == NULL || k->data == NULL || !n->spec->pol->checkpoint.enabled)
		return NULL;
	w->handed = k->seq;
	*len = k->len;
	*seq = k->seq;
	return k->data;
}

int
ckpt_put(struct ckpt_set *cs, struct node *n, uint64_t seq, const void *data,
         size_t len, const char **why)
{
	const struct checkpoint_spec *c = &n->spec->pol->checkpoint;
	struct ckpt_worker *w = ckpt_get(cs, n->path);
	struct ckpt_kept k = {.seq = seq, .len = len};

	if (!c->enabled) {
		*why = "checkpoint: this worker's checkpoints are off";
		return -1;
	}
	if (len > c->max) {
		*why = "checkpoint: data is larger than checkpoint.max";
		return -1;
	}
	if (seq == 0 || seq > INT64_MAX) { /* the store's INTEGER is signed */
		*why = "checkpoint: seq must be from 1 to 2^63 - 1";
		return -1;
	}
	k.data = ckpt_data_new(data, len);
	ckpt_push(cs, w, c->keep, k);
	if (cs->store == NULL) {
		if (w->chan != NULL)
			channel_send_checkpoint_ok(w->chan, seq);
		return 0;
	}
	if (ckpt_submit(cs, w, seq, k.data, len, false) < 0)
		ckpt_unkeep(w, 0); /* never stored: never handed */
	return 0;
}

/* The poison guard: the newest is dropped, the one before it is next. */
static void
ckpt_discard(struct ckpt_set *cs, struct ckpt_worker *w, struct node *n)
{
	uint64_t seq = w->kept[0].seq;

	ckpt_unkeep(w, 0);
	if (cs->store != NULL) {
		ckpt_submit(cs, w, seq, NULL, 0, true);
		if (w->nkept > 0 && w->kept[0].data == NULL &&
		    ckpt_read_back(cs, w) < 0) {
			ckpt_store_error(
			        cs, w->path,
			        "the previous checkpoint cannot be read");
			ckpt_truncate(w, 0);
		}
		/* committed: every write before the handed one is done */
		ckpt_last_set(w,
		              w->nkept ? &w->kept[0] : &(struct ckpt_kept){0});
	}
	events_emit(cs->events, EV_CHECKPOINT_DISCARDED, n->path, 0, NULL,
	            n->failures,
	            "checkpoint %llu after %u failures in a row; %s",
	            (unsigned long long)seq, w->fails,
	            w->nkept ? "the previous one is next" : "none is next");
}

void
ckpt_detach(struct ckpt_set *cs, struct node *n, bool failed)
{
	struct ckpt_worker *w = ckpt_find(cs, n->path);

	if (w == NULL || w->chan == NULL)
		return; /* never said hello: nothing was handed */
	w->chan = NULL;
	if (w->handed == 0 || !failed || w->nkept == 0 ||
	    w->kept[0].seq != w->handed) {
		w->fails = 0; /* it did well, or stored a newer one */
		return;
	}
	if (++w->fails < n->spec->pol->checkpoint.poison_after)
		return;
	ckpt_discard(cs, w, n);
	w->fails = 0;
}

void
ckpt_release(struct ckpt_set *cs, const char *path)
{
	struct ckpt_worker *w = ckpt_find(cs, path);

	if (w == NULL || w->chan != NULL)
		return; /* none, or a live run's own */
	if (w->jobs > 0)
		w->released = true; /* the last write's completion frees it */
	else
		ckpt_remove(cs, w);
}

const void *
ckpt_newest(const struct ckpt_set *cs, const char *path, size_t *len,
            uint64_t *seq)
{
	const struct ckpt_worker *w = ckpt_find(cs, path);

	if (w == NULL || w->nkept == 0 || w->kept[0].data == NULL)
		return NULL;
	*len = w->kept[0].len;
	*seq = w->kept[0].seq;
	return w->kept[0].data;
}

void
ckpt_seed(struct ckpt_set *cs, const char *path, uint64_t seq, const void *data,
          size_t len)
{
	struct ckpt_worker *w = ckpt_get(cs, path);

	if (w->nkept > 0 || seq == 0)
		return; /* it has its own, newer */
	ckpt_push(cs, w, 1,
	          (struct ckpt_kept){.seq = seq,
	                             .data = ckpt_data_new(data, len),
	                             .len = len});
}

/* w's checkpoints out of memory: not handed again, even before it goes,
 * nor by a write in flight committing. */
static void
ckpt_empty(struct ckpt_worker *w)
{
	ckpt_truncate(w, 0);
	ckpt_last_set(w, &(struct ckpt_kept){0});
	w->era++;
	w->handed = 0;
	w->fails = 0;
}

void
ckpt_forget_task(struct ckpt_set *cs, const char *path, const char *suffix,
                 struct store_part *part)
{
	struct ckpt_worker *w = path != NULL ? ckpt_find(cs, path) : NULL;
	bool attached = w != NULL && w->chan != NULL; /* a live run's own */

	*part = (struct store_part){0};
	if (w != NULL && !attached)
		ckpt_empty(w);
	if (cs->store == NULL) {
		if (w != NULL && !attached)
			ckpt_release(cs, path);
		return;
	}
	/* after the writes in flight their rows go; until then an empty
	 * entry stands for the path */
	ckpt_delete_part(cs,
	                 path != NULL && !attached ? ckpt_get(cs, path) : NULL,
	                 suffix, part);
}

size_t
ckpt_count(const struct ckpt_set *cs)
{
	return cs->count;
}

bool
ckpt_known(const struct ckpt_set *cs, const char *path)
{
	return ckpt_find(cs, path) != NULL;
}

uint64_t
ckpt_seq(const struct ckpt_set *cs, const char *path)
{
	const struct ckpt_worker *w = ckpt_find(cs, path);

	if (w == NULL)
		return 0;
	/* with a store, kept is committed: one still queued for a disk that
	 * stalls is not (its ack has not been sent either) */
	return cs->store != NULL ? w->last.seq
	       : w->nkept > 0    ? w->kept[0].seq
	                         : 0;
}

uint64_t
ckpt_received_seq(const struct ckpt_set *cs, const char *path)
{
	const struct ckpt_worker *w = ckpt_find(cs, path);

	return w != NULL && w->nkept > 0 ? w->kept[0].seq : 0;
}

/* --- start and end -------------------------------------------------------- */

struct ckpt_set *
ckpt_new(struct store *st, struct events *ev)
{
	struct ckpt_set *cs = xcalloc(1, sizeof *cs);

	cs->store = st;
	cs->events = ev;
	return cs;
}

void
ckpt_free(struct ckpt_set *cs)
{
	if (cs == NULL)
		return;
	for (size_t i = 0; i < cs->nbuckets; i++)
		while (cs->buckets[i] != NULL) {
			struct ckpt_worker *w = cs->buckets[i];

			cs->buckets[i] = w->next;
			ckpt_truncate(w, 0);
			ckpt_data_unref(w->last.data);
			free(w->kept);
			free(w->path);
			free(w);
		}
	free(cs->buckets);
	free(cs);
}
