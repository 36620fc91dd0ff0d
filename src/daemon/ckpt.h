/*
 * ckpt.h - workers' checkpoints (DESIGN §11): the latest `keep` per worker,
 * acknowledged at once in memory or once committed with a state store, the
 * one handed in welcome, and the poison guard.
 *
 * Kept by worker path, so a checkpoint outlives the sessions, a reload and,
 * with a store, agentsupd itself. In memory lives the newest checkpoint of
 * each worker; with a store the older ones are on disk only.
 */
#ifndef AGENTSUP_CKPT_H
#define AGENTSUP_CKPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "events.h"
#include "tree.h"

struct store;
struct store_part;
struct channel;
struct ckpt_set;

/* The frame overhead of a checkpoint message beyond its data. */
#define CKPT_FRAME_OVERHEAD 1024u

/* SQL of the checkpoints table, for store_open. */
extern const char ckpt_schema[];

/* st may be NULL (memory only); events get checkpoint_discarded and
 * store_error. */
struct ckpt_set *ckpt_new(struct store *st, struct events *ev);
void ckpt_free(struct ckpt_set *);
/* Whether the start reads path's checkpoints into memory (an ended task's
 * stay on disk until it runs again). */
typedef bool ckpt_want_fn(void *arg, const char *path);
/* At start, with a store: read the checkpoints of every path want (NULL:
 * all) says yes to (the newest's data). -1 with why when the store cannot
 * be read. */
int ckpt_load(struct ckpt_set *, ckpt_want_fn *want, void *arg, char *why,
              size_t len);

/* The frame limit of a worker with this spec, given the daemon's. */
size_t ckpt_max_frame(const struct spec *, size_t daemon_max);

/* The worker said hello: its checkpoint to hand in welcome (NULL: none;
 * with a store the newest committed), remembered as handed this run; acks
 * go to chan until ckpt_detach. earlier (NULL-terminated, may be NULL):
 * the paths n had before, a task's whose pool the config moved; with a
 * store, when n's own path has none, the first of them that has some are
 * its own (moved to its path in the store). */
const void *ckpt_hand(struct ckpt_set *, struct node *,
                      const char *const *earlier, struct channel *chan,
                      size_t *len, uint64_t *seq);
/* {t: checkpoint}: keep it (and store it); the ack follows, now or at
 * commit. -1 with why when the worker broke a rule (too large, off). */
int ckpt_put(struct ckpt_set *, struct node *, uint64_t seq, const void *data,
             size_t len, const char **why);
/* The run is over (before the engine hears of the exit): no acks to it
 * any more; `failed` counts toward the poison guard. */
void ckpt_detach(struct ckpt_set *, struct node *, bool failed);
/* A dropped task's checkpoints: the rows of every path ending in suffix
 * ("/SUP/KEY": wherever its pool was) are deleted by *part, a job the
 * caller joins to the deletion of the task's record, so both are stored or
 * neither (store_submit_ledger_joint), or disposes of by calling its done
 * (-1) when that cannot be queued. path's entry (NULL: its pool is gone)
 * is emptied now (nothing of a run attached to it), so a run of it
 * meanwhile starts afresh, and goes once part is done (a failed drop loses
 * nothing: the next run reads the rows back). Without a store all is
 * forgotten now, and part->run is NULL. */
void ckpt_forget_task(struct ckpt_set *, const char *path, const char *suffix,
                      struct store_part *part);
/* A task ended: its entry and data leave memory (kept on disk with a
 * store; read back by ckpt_hand when a run of path says hello again).
 * Nothing while a run of it is attached. */
void ckpt_release(struct ckpt_set *, const char *path);
/* The newest checkpoint's data in memory (NULL: none) and its seq, len:
 * for a task's record before ckpt_release, without a store. */
const void *ckpt_newest(const struct ckpt_set *, const char *path, size_t *len,
                        uint64_t *seq);
/* Without a store: a task run again is handed its record's checkpoint
 * (copied), unless path has one of its own. */
void ckpt_seed(struct ckpt_set *, const char *path, uint64_t seq,
               const void *data, size_t len);
/* Workers with an entry in memory (a checkpoint kept, or a run attached). */
size_t ckpt_count(const struct ckpt_set *);
/* Whether path has an entry in memory (an ended task's has none). */
bool ckpt_known(const struct ckpt_set *, const char *path);
/* The newest checkpoint kept's seq (with a store: committed), 0 when none
 * (status). */
uint64_t ckpt_seq(const struct ckpt_set *, const char *path);
/* The newest received, committed or still queued: a task's record at its
 * end, which its last write commits before. */
uint64_t ckpt_received_seq(const struct ckpt_set *, const char *path);

#endif
