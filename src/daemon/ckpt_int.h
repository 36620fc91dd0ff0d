/* ckpt_int.h - what ckpt.c (the table in memory) and ckpt_store.c (the
 * store's jobs and reads) share; private to the two. */
#ifndef AGENTSUP_CKPT_INT_H
#define AGENTSUP_CKPT_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "events.h"
#include "store.h"

struct ckpt_kept {
	uint64_t seq;
	uint8_t *data; /* NULL: on disk only */
	size_t len;
};

struct ckpt_worker {
	struct ckpt_worker *next; /* hash chain */
	char *path;
	struct ckpt_kept *kept; /* newest first */
	unsigned nkept, capkept;
	/* with a store: the newest committed (its data referenced), what
	 * welcome hands; a newer one is handed once its write commits */
	struct ckpt_kept last;
	uint64_t era;         /* bumped by a forget: older writes set no last */
	struct channel *chan; /* the run that acks go to, NULL between runs */
	uint64_t run;         /* which run: acks of an older one are dropped */
	uint64_t handed;      /* the seq handed to this run, 0: none */
	unsigned fails;       /* runs in a row that failed after `handed` */
	unsigned jobs;        /* writes in flight that point here */
	bool released;        /* freed when the last of them is done */
};

struct ckpt_set {
	struct store *store;
	struct events *events;
	struct ckpt_worker **buckets;
	size_t nbuckets, count;
	uint64_t runs;
	uint64_t error_at; /* when the last store_error was said */
	unsigned errors_unsaid;
};

/* A write of one checkpoint, in flight to the writer thread. */
struct ckpt_job {
	struct ckpt_set *set;
	struct ckpt_worker *w; /* NULL: a deletion by path alone */
	const char *path;      /* w's, or own */
	char *own;
	uint64_t run, seq;
	uint64_t era;    /* w's when it was queued */
	uint64_t oldest; /* the oldest seq kept: older ones go */
	bool discard;    /* delete seq instead of writing it */
	bool forget;     /* delete every one of the paths ending in path */
	bool move;       /* own's rows become path's (w's) */
	size_t len;
	uint8_t *data; /* a reference to the kept copy (NULL: discard) */
};

/* Checkpoint bytes, shared by count (ckpt.c). */
uint8_t *ckpt_data_new(const void *src, size_t len);
uint8_t *ckpt_data_ref(uint8_t *p);
void ckpt_data_unref(uint8_t *p);

/* The table (ckpt.c). */
struct ckpt_worker *ckpt_find(const struct ckpt_set *, const char *path);
struct ckpt_worker *ckpt_get(struct ckpt_set *, const char *path);
void ckpt_remove(struct ckpt_set *, struct ckpt_worker *);
void ckpt_truncate(struct ckpt_worker *, unsigned n);
void ckpt_push(struct ckpt_set *, struct ckpt_worker *, unsigned keep,
               struct ckpt_kept k);
void ckpt_store_error(struct ckpt_set *, const char *path, const char *why);
/* With a store: w's newest committed is k (its data referenced; seq 0 and
 * NULL: none). */
void ckpt_last_set(struct ckpt_worker *, const struct ckpt_kept *k);
/* A write of w's is done (ok: committed): it is the newest committed, or
 * it leaves w's kept ones (the store does not have it). */
void ckpt_written(struct ckpt_worker *, const struct ckpt_job *, bool ok);

/* The store (ckpt_store.c): a write (data referenced) or a discard (NULL);
 * the job part of a deletion of every checkpoint of the paths ending in
 * suffix (w, NULL or that of one of them, kept till it is done);
 * kept[0]'s data read back; a path not in memory read as at start (how
 * many rows, -1 when the store cannot be read); the rows of the first of
 * earlier paths that has some taken as w's, and moved to w's path. */
int ckpt_submit(struct ckpt_set *, struct ckpt_worker *, uint64_t seq,
                uint8_t *data, size_t len, bool discard);
void ckpt_delete_part(struct ckpt_set *, struct ckpt_worker *w,
                      const char *suffix, struct store_part *part);
int ckpt_read_back(struct ckpt_set *, struct ckpt_worker *);
int ckpt_read_path(struct ckpt_set *, struct ckpt_worker *);
void ckpt_adopt(struct ckpt_set *, struct ckpt_worker *,
                const char *const *earlier);

#endif
