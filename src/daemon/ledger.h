/*
 * ledger.h - the task ledger (DESIGN §12): one record per accepted task of
 * a dynamic supervisor, from the moment it is accepted. This is the memory
 * implementation: bounded, the oldest ended records dropped first (and
 * counted) once more than `max_ended` have ended or their data (checkpoint,
 * result, tail) is more than `max_ended_bytes`. With a state store it is
 * a cache in front of the store's `tasks` table: live records, the ended
 * ones whose row is not committed yet (pinned), and a few more. A leaf: it
 * knows nothing of the tree, the loop or the clock (times are passed in).
 */
#ifndef AGENTSUP_LEDGER_H
#define AGENTSUP_LEDGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum ledger_state {
	LEDGER_PENDING, /* accepted, no process up now (backoff, starting) */
	LEDGER_RUNNING,
	LEDGER_DONE,
	LEDGER_DEAD, /* will not be retried: a dead letter */
	LEDGER_CANCELLED,
};

#define LEDGER_REASONS    8           /* the last reasons kept per task */
#define LEDGER_REASON_MAX 192         /* bytes of one reason */
#define LEDGER_RESULT_MAX (64u << 10) /* a task's result */
#define LEDGER_TAIL_MAX   4096        /* the tail of its output */
#define LEDGER_MAX_ENDED  20000       /* ended records kept in memory */
/* the checkpoints, results and tails of the ended records in memory: past
 * it the oldest are dropped (20,000 records of a 256 KiB checkpoint and a
 * 64 KiB result were 6 GB) */
#define LEDGER_MAX_ENDED_BYTES (64u << 20)
#define LEDGER_CACHE           64 /* with a store: ended records kept in memory */
#define LEDGER_KEY_MAX         64 /* as a worker's name */

struct node;

struct ledger_rec {
	char *sup;   /* the dynamic supervisor's name */
	char *key;   /* the child's name under it */
	char **args; /* the inputs, NULL-terminated, NULL when none */
	char **env;
	unsigned attempts; /* starts of its process, over every spawn */
	enum ledger_state state;
	char *reasons[LEDGER_REASONS]; /* a ring, oldest first from r0 */
	unsigned nreasons, r0;
	uint8_t *result; /* NULL: none */
	size_t result_len;
	uint64_t checkpoint_seq; /* 0: none */
	uint8_t *checkpoint;
	size_t checkpoint_len;
	char *tail;          /* the last output lines, or NULL */
	int64_t accepted_ms; /* wall clock */
	int64_t ended_ms;    /* wall clock, 0 while live */
	uint64_t ended_mono; /* monotonic: key_ttl counts from it; 0 when
	                        it ended before this start (read from the
	                        store): key_ttl counts from ended_ms */
	unsigned replays;    /* times replayed */
	size_t ended_bytes;  /* its data, as the ledger counted it ended */
	bool resume;         /* live when agentsupd stopped: start again */
	/* an operator stopped it: stored as cancelled (at cancel_ms, wall
	 * clock) before the answer, while its process is still going down,
	 * so that a restart of agentsupd meanwhile does not resume it */
	bool cancelling;
	int64_t cancel_ms;
	unsigned pins; /* writes of it in flight: kept in memory */
	bool dropped;  /* out of the ledger: freed when unpinned */
	unsigned wseq; /* writes of it made (queued or refused): the newest's
	                  outcome is whether it is saved */
	bool unsaved;  /* its last write was not stored: written again (with
	                  the answer after it) when its key is asked for, and
	                  by taskstore's retry; never dropped for room */
	/* the live child (tasks.c), valid while the reloads applied are
	 * node_gen (only a reload frees a live task's node): no scan */
	struct node *node;
	uint64_t node_gen;
	/* the node of its last run, kept after it ends: only that run's
	 * frames (a result, its end) are the record's */
	const struct node *run;
	struct ledger_rec *hnext;         /* hash chain */
	struct ledger_rec *older, *newer; /* the ended list */
};

struct ledger {
	struct ledger_rec **buckets;
	size_t nbuckets;
	size_t count;                        /* records */
	size_t nended, max_ended;            /* ended records, and their cap */
	size_t ended_bytes, max_ended_bytes; /* their data, and its cap */
	uint64_t dropped;                   /* ended records dropped for room */
	struct ledger_rec *oldest, *newest; /* ended, in order of ending */
};

void ledger_init(struct ledger *, size_t max_ended);
void ledger_free(struct ledger *);
struct ledger_rec *ledger_get(const struct ledger *, const char *sup,
                              const char *key);
/* A record for a task accepted now: new, or an ended one started afresh
 * (a --retry or a replay: attempts and reasons kept, result cleared). */
struct ledger_rec *ledger_accept(struct ledger *, const char *sup,
                                 const char *key, char *const *args,
                                 char *const *env, int64_t wall_ms);
/* The task ended: done, dead or cancelled. May drop the oldest ended
 * record (never rec) to stay within max_ended. */
void ledger_end(struct ledger *, struct ledger_rec *, enum ledger_state,
                int64_t wall_ms, uint64_t mono_ms);
void ledger_reason(struct ledger_rec *, const char *reason);
void ledger_result(struct ledger *, struct ledger_rec *, const void *data,
                   size_t len);
/* The task runs again: the result is the one of the run that ends it. */
void ledger_result_clear(struct ledger_rec *);
/* Its last checkpoint: seq (0: none), and its data, or NULL when only
 * the seq is kept (the checkpoint set holds the data by path). */
void ledger_checkpoint(struct ledger_rec *, uint64_t seq, const void *data,
                       size_t len);
void ledger_tail(struct ledger_rec *, const char *text, size_t len);
/* What a retry or a replay (ledger_accept of an ended record) changes,
 * and what its end meanwhile changes (a reload cancelled it: a reason, a
 * checkpoint seq), kept until the spawn's write is stored: a spawn refused
 * for the store leaves the record as it was. */
struct ledger_prior {
	char **args, **env;
	uint8_t *result;
	size_t result_len;
	char *tail;
	char *reasons[LEDGER_REASONS]; /* copies: the record keeps its own */
	unsigned nreasons, r0;
	enum ledger_state state;
	unsigned attempts;
	uint64_t checkpoint_seq;
	int64_t accepted_ms, ended_ms;
	uint64_t ended_mono;
	unsigned replays;
	const struct node *run;
};
/* Before ledger_accept of the ended r: what it changes, moved into p. */
void ledger_prior_take(struct ledger_rec *r, struct ledger_prior *p);
/* r as p says, ended again (what r had since is freed); p is emptied. */
void ledger_prior_put(struct ledger *, struct ledger_rec *r,
                      struct ledger_prior *p);
void ledger_prior_free(struct ledger_prior *p);
/* Forget a record (a pinned one is freed when its last pin goes). */
void ledger_drop(struct ledger *, struct ledger_rec *);
/* A record dropped while pinned back in the ledger, as it was (its key
 * has no other record): a drop whose deletion was not stored. */
void ledger_put_back(struct ledger *, struct ledger_rec *);
/* A write of r is in flight / has finished: a pinned record is never
 * dropped for room. Unpinning may drop it or older ones beyond max_ended. */
void ledger_pin(struct ledger_rec *);
void ledger_unpin(struct ledger *, struct ledger_rec *);
bool ledger_ended(const struct ledger_rec *);
const char *ledger_state_name(enum ledger_state);
/* With a store: the (sup, key) of every stored row, as 64-bit hashes, so
 * a spawn of a new key asks SQLite nothing (8-16 bytes a row, not a
 * record). A hash present may be a collision: the store has the answer. */
struct ledger_keys {
	uint64_t *v; /* open addressing, 0: empty */
	size_t cap, n;
};
uint64_t ledger_key_hash(const char *sup, const char *key);
void ledger_keys_add(struct ledger_keys *, uint64_t h);
bool ledger_keys_has(const struct ledger_keys *, uint64_t h);
void ledger_keys_del(struct ledger_keys *, uint64_t h);
void ledger_keys_free(struct ledger_keys *);

/* With a store: per supervisor, the highest number of its SUP/N keys
 * stored, so the first keyless spawn after a restart goes on from it (it
 * probed N = 1, 2, ... one SQLite read each, on the loop). */
struct ledger_numbers {
	struct ledger_number {
		char *sup;
		unsigned long max;
	} * v;
	size_t n;
};
void ledger_numbers_see(struct ledger_numbers *, const char *sup,
                        const char *key);
unsigned long ledger_numbers_max(const struct ledger_numbers *,
                                 const char *sup);
void ledger_numbers_free(struct ledger_numbers *);

/* Every record, in no order: start with a zeroed iterator, call until
 * NULL. No record may be added or dropped meanwhile. */
struct ledger_iter {
	size_t bucket;
	struct ledger_rec *next;
};
struct ledger_rec *ledger_next(const struct ledger *, struct ledger_iter *);

#endif
