/*
 * ckpt.c - workers' checkpoints: kept by path in a hash table, newest first.
 *
 * Without a store a checkpoint is acknowledged as soon as it is kept, and
 * the `keep` newest live in memory. With a store, the newest lives in
 * memory (welcome needs it at once) and every one is written by the store's
 * writer thread; its checkpoint_ok is sent from the completion, after the
 * commit, to the run that sent it if it is still there. The older kept ones
 * are on disk only, read back when the poison guard discards the newest.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "channel.h"
#include "ckpt.h"
#include "clock.h"
#include "log.h"
#include "store.h"
#include "util.h"

#define CKPT_ERROR_EVERY_MS                                                    \
	1000 /* store_error events: at most one a second                       \
	      */

const char ckpt_schema[] =
        "CREATE TABLE IF NOT EXISTS checkpoints ("
        " path TEXT NOT NULL, seq INTEGER NOT NULL, data BLOB NOT NULL,"
        " PRIMARY KEY (path, seq)) WITHOUT ROWID;";

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
	struct channel *chan; /* the run that acks go to, NULL between runs */
	uint64_t run;         /* which run: acks of an older one are dropped */
	uint64_t handed;      /* the seq handed to this run, 0: none */
	unsigned fails;       /* runs in a row that failed after `handed` */
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
	struct ckpt_worker *w;
	uint64_t run, seq;
	uint64_t oldest; /* the oldest seq kept: older ones go */
	bool discard;    /* delete seq instead of writing it */
	bool forget;     /* delete every one of the path */
	size_t len;
	uint8_t *data; /* a reference to the kept copy (NULL: discard) */
};

/* --- checkpoint data, shared ---------------------------------------------- */

/* A checkpoint's bytes are copied once off the frame and shared by the kept
 * entry and the write in flight (the newest may be replaced before its write
 * commits): a count in front of them. Counted only on the loop; the writer
 * reads the bytes while its job holds a reference. */
struct ckpt_data {
	size_t refs;
	uint8_t bytes[];
};

static uint8_t *
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

static uint8_t *
ckpt_data_ref(uint8_t *p)
{
	ckpt_data_of(p)->refs++;
	return p;
}

static void
ckpt_data_unref(uint8_t *p)
{
	if (p != NULL && --ckpt_data_of(p)->refs == 0)
		free(ckpt_data_of(p));
}

/* --- the table ------------------------------------------------------------ */

static uint64_t
ckpt_hash(const char *s)
{
	uint64_t h = 1469598103934665603ull;

	while (*s)
		h = (h ^ (unsigned char)*s++) * 1099511628211ull;
	return h;
}

static struct ckpt_worker *
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

static struct ckpt_worker *
ckpt_get(struct ckpt_set *cs, const char *path)
{
	struct ckpt_worker *w = ckpt_find(cs, path);
	size_t i;

	if (w != NULL)
		return w;
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

/* Forget kept[i..]: their data, not their slots' array. */
static void
ckpt_truncate(struct ckpt_worker *w, unsigned n)
{
	while (w->nkept > n)
		ckpt_data_unref(w->kept[--w->nkept].data);
}

/* A newer checkpoint in front; the older ones beyond keep dropped, and
 * with a store only the newest's data stays in memory. */
static void
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

/* --- store errors --------------------------------------------------------- */

/* store_error, at most one a second; the others counted in the next. */
static void
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

/* --- the writer's jobs ---------------------------------------------------- */

/* The writer's statements: ?1 path, ?2 seq, ?3 the oldest seq kept (the
 * loop knows which `keep` are newest: a range, no subquery), ?4 data. */
static const char ckpt_sql_discard[] =
        "DELETE FROM checkpoints WHERE path = ?1 AND seq = ?2";
static const char ckpt_sql_newer[] =
        "DELETE FROM checkpoints WHERE path = ?1 AND seq >= ?2";
static const char ckpt_sql_insert[] =
        "INSERT INTO checkpoints (path, seq, data) VALUES (?1, ?2, ?4)";
static const char ckpt_sql_forget[] =
        "DELETE FROM checkpoints WHERE path = ?1 AND seq >= 0 * ?2";
static const char ckpt_sql_older[] =
        "DELETE FROM checkpoints WHERE path = ?1 AND seq < ?3";

static int
ckpt_sql(sqlite3 *db, const char *sql, const struct ckpt_job *j, char *err,
         size_t len)
{
	sqlite3_stmt *st = store_stmt(db, sql, err, len);
	int rc;

	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, j->w->path, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)j->seq);
	if (sqlite3_bind_parameter_count(st) >= 3)
		sqlite3_bind_int64(st, 3, (sqlite3_int64)j->oldest);
	if (sqlite3_bind_parameter_count(st) >= 4)
		sqlite3_bind_blob(st, 4, j->data, (int)j->len, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		snprintf(err, len, "%s", sqlite3_errmsg(db));
	sqlite3_reset(st); /* its bindings point into the job's data */
	return rc == SQLITE_DONE ? 0 : -1;
}

/* In the writer thread: the checkpoint, and the kept ones of its worker
 * (the path is never changed while a job is in flight). */
static int
ckpt_job_run(sqlite3 *db, void *arg, char *err, size_t len)
{
	struct ckpt_job *j = arg;

	if (j->forget)
		return ckpt_sql(db, ckpt_sql_forget, j, err, len);
	if (j->discard)
		return ckpt_sql(db, ckpt_sql_discard, j, err, len);
	if (ckpt_sql(db, ckpt_sql_newer, j, err, len) < 0 ||
	    ckpt_sql(db, ckpt_sql_insert, j, err, len) < 0)
		return -1;
	return ckpt_sql(db, ckpt_sql_older, j, err, len);
}

/* On the loop: committed, so the run that sent it (if still there) hears
 * checkpoint_ok; failed, so it hears nothing and the operator is told. */
static void
ckpt_job_done(void *arg, int rc, const char *why)
{
	struct ckpt_job *j = arg;

	if (rc < 0)
		ckpt_store_error(j->set, j->w->path, why);
	else if (!j->discard && !j->forget && j->w->chan != NULL &&
	         j->w->run == j->run)
		channel_send_checkpoint_ok(j->w->chan, j->seq);
	ckpt_data_unref(j->data);
	free(j);
}

/* A write (data: kept bytes, referenced, not copied) or a discard (NULL). */
static int
ckpt_submit(struct ckpt_set *cs, struct ckpt_worker *w, uint64_t seq,
            uint8_t *data, size_t len, bool discard)
{
	struct ckpt_job *j = xmalloc(sizeof *j);

	*j = (struct ckpt_job){.set = cs,
	                       .w = w,
	                       .run = w->run,
	                       .seq = seq,
	                       .oldest = w->nkept ? w->kept[w->nkept - 1].seq
	                                          : seq,
	                       .discard = discard,
	                       .len = len,
	                       .data = data ? ckpt_data_ref(data) : NULL};
	if (store_submit(cs->store, ckpt_job_run, ckpt_job_done, j) == 0)
		return 0;
	ckpt_data_unref(j->data);
	free(j);
	ckpt_store_error(cs, w->path, "the store's queue is full");
	return -1;
}

/* --- the loop's side ------------------------------------------------------ */

size_t
ckpt_max_frame(const struct spec *sp, size_t daemon_max)
{
	size_t want = (size_t)sp->pol->checkpoint.max + CKPT_FRAME_OVERHEAD;

	return sp->pol->checkpoint.enabled && want > daemon_max ? want
	                                                        : daemon_max;
}

const void *
ckpt_hand(struct ckpt_set *cs, struct node *n, struct channel *chan,
          size_t *len, uint64_t *seq)
{
	struct ckpt_worker *w = ckpt_get(cs, n->path);

	w->chan = chan;
	w->run = ++cs->runs;
	w->handed = 0;
	n->checkpoint_seq = w->nkept ? w->kept[0].seq : 0;
	if (w->nkept == 0 || w->kept[0].data == NULL ||
	    !n->spec->pol->checkpoint.enabled)
		return NULL;
	w->handed = w->kept[0].seq;
	*len = w->kept[0].len;
	*seq = w->kept[0].seq;
	return w->kept[0].data;
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
	if (seq == 0) {
		*why = "checkpoint: seq must be 1 or more";
		return -1;
	}
	k.data = ckpt_data_new(data, len);
	ckpt_push(cs, w, c->keep, k);
	n->checkpoint_seq = seq;
	if (cs->store == NULL) {
		if (w->chan != NULL)
			channel_send_checkpoint_ok(w->chan, seq);
		return 0;
	}
	ckpt_submit(cs, w, seq, k.data, len, false);
	return 0;
}

/* With a store: the data of kept[0], on disk only, read back. */
static int
ckpt_read_back(struct ckpt_set *cs, struct ckpt_worker *w)
{
	sqlite3 *db = store_reader(cs->store);
	sqlite3_stmt *st;
	int rc = -1;

	if (sqlite3_prepare_v2(db,
	                       "SELECT data FROM checkpoints WHERE path = ?1 "
	                       "AND seq = ?2",
	                       -1, &st, NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_text(st, 1, w->path, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)w->kept[0].seq);
	if (sqlite3_step(st) == SQLITE_ROW) {
		size_t len = (size_t)sqlite3_column_bytes(st, 0);

		w->kept[0].data =
		        ckpt_data_new(sqlite3_column_blob(st, 0), len);
		w->kept[0].len = len;
		rc = 0;
	}
	sqlite3_finalize(st);
	return rc;
}

/* The poison guard: the newest is dropped, the one before it is next. */
static void
ckpt_discard(struct ckpt_set *cs, struct ckpt_worker *w, struct node *n)
{
	uint64_t seq = w->kept[0].seq;

	ckpt_data_unref(w->kept[0].data);
	memmove(w->kept, w->kept + 1, (w->nkept - 1) * sizeof *w->kept);
	w->nkept--;
	n->checkpoint_seq = w->nkept ? w->kept[0].seq : 0;
	if (cs->store != NULL) {
		ckpt_submit(cs, w, seq, NULL, 0, true);
		if (w->nkept > 0 && w->kept[0].data == NULL &&
		    ckpt_read_back(cs, w) < 0) {
			ckpt_store_error(
			        cs, w->path,
			        "the previous checkpoint cannot be read");
			ckpt_truncate(w, 0);
		}
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
ckpt_forget(struct ckpt_set *cs, const char *path)
{
	struct ckpt_worker *w = ckpt_find(cs, path);
	struct ckpt_job *j;

	if (w == NULL || w->chan != NULL)
		return; /* none, or a live run's own */
	ckpt_truncate(w, 0);
	w->handed = 0;
	w->fails = 0;
	if (cs->store == NULL)
		return;
	j = xcalloc(1, sizeof *j);
	*j = (struct ckpt_job){
	        .set = cs, .w = w, .run = w->run, .forget = true};
	if (store_submit(cs->store, ckpt_job_run, ckpt_job_done, j) < 0) {
		free(j);
		ckpt_store_error(cs, w->path, "the store's queue is full");
	}
}

size_t
ckpt_count(const struct ckpt_set *cs)
{
	return cs->count;
}

uint64_t
ckpt_seq(const struct ckpt_set *cs, const char *path)
{
	const struct ckpt_worker *w = ckpt_find(cs, path);

	return w != NULL && w->nkept > 0 ? w->kept[0].seq : 0;
}

/* --- start and end -------------------------------------------------------- */

/* One row of the start's read: newest first within a path. */
static void
ckpt_load_row(struct ckpt_set *cs, sqlite3_stmt *st)
{
	const char *path = (const char *)sqlite3_column_text(st, 0);
	struct ckpt_worker *w = ckpt_get(cs, path);
	struct ckpt_kept k = {.seq = (uint64_t)sqlite3_column_int64(st, 1)};

	if (w->nkept == 0) {
		k.len = (size_t)sqlite3_column_bytes(st, 2);
		k.data = ckpt_data_new(sqlite3_column_blob(st, 2), k.len);
	}
	if (w->nkept == w->capkept) {
		w->capkept = w->capkept ? 2 * w->capkept : 2;
		w->kept = xrealloc(w->kept, w->capkept * sizeof *w->kept);
	}
	w->kept[w->nkept++] = k;
}

int
ckpt_load(struct ckpt_set *cs, char *why, size_t len)
{
	sqlite3 *db = store_reader(cs->store);
	sqlite3_stmt *st;
	int rc;

	/* the data column only for each path's newest: older stay on disk */
	if (sqlite3_prepare_v2(
	            db,
	            "SELECT path, seq, CASE WHEN seq = (SELECT max(seq) FROM "
	            "checkpoints c WHERE c.path = checkpoints.path) THEN data "
	            "END FROM checkpoints ORDER BY path, seq DESC",
	            -1, &st, NULL) != SQLITE_OK) {
		snprintf(why, len, "%s", sqlite3_errmsg(db));
		return -1;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		ckpt_load_row(cs, st);
	if (rc != SQLITE_DONE)
		snprintf(why, len, "%s", sqlite3_errmsg(db));
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

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
			free(w->kept);
			free(w->path);
			free(w);
		}
	free(cs->buckets);
	free(cs);
}
