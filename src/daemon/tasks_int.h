/* tasks_int.h - what tasks.c (the ledger's life) and tasks_serve.c (the
 * control commands) share; private to the two. */
#ifndef AGENTSUP_TASKS_INT_H
#define AGENTSUP_TASKS_INT_H

#include <stdbool.h>
#include <stdint.h>

#include <ev.h>
#include <msgpack.h>

#include "ledger.h"
#include "request.h"
#include "tasks.h"
#include "taskstore.h"

struct client;
struct daemon;
struct node;

#define TASKS_EARLIER_MAX 16 /* earlier places of pools remembered */

/* A place a pool had before (a reload moved or removed it, or the store
 * has its tasks' checkpoints under a path the config no longer gives
 * it): a task of it run again elsewhere takes its checkpoints from there. */
struct tasks_earlier {
	char *sup;  /* the pool's name */
	char *path; /* its path then */
};

struct tasks_waiter {
	struct client *cl;
	uint64_t id;
	struct ledger_rec *rec;
};

struct tasks {
	struct ev_loop *loop;
	ev_timer retry_w; /* the records whose write failed, written again */
	struct ledger ledger;
	struct ledger_keys keys;       /* with a store: every stored row's */
	struct ledger_numbers numbers; /* with a store: SUP/N stored */
	/* grown as waits come, up to TASKS_MAX_WAITERS (48 KiB that a tree
	 * without waits would carry for nothing) */
	struct tasks_waiter *waiters;
	size_t nwaiters, capwaiters;
	char name[2 * REQUEST_NAME_MAX]; /* the last answer's "SUP/KEY" */
	char sup[REQUEST_NAME_MAX];      /* the last spawn's supervisor */
	size_t nresume;                  /* records still to resume */
	char error[256];                 /* the last answer's error */
	unsigned long serial;            /* the last spawn's (task->serial) */
	/* the store has the listings' indexes (taskstore_read.c) */
	bool indexed;
	/* the places pools left, oldest first */
	struct tasks_earlier earlier[TASKS_EARLIER_MAX];
	size_t nearlier;
};

/* One spawn, from wherever it came. */
struct tasks_spawn {
	const char *sup, *key; /* key NULL: SUP/N */
	char *const *args, *const *env;
	bool retry;
	bool resuming;             /* the start of a task resumed (tasks.c) */
	struct ledger_rec *replay; /* a replay of this record */
	const char *by;            /* "agentsupctl (uid 0)", "worker W" */
	/* with a store: the answer is given by ack once the record is
	 * committed (out->deferred), never before */
	taskstore_ack_fn *ack;
	void *ack_arg;
};

/* Its outcome. */
struct tasks_outcome {
	const char *error; /* NULL: ok */
	bool created, has_count;
	uint64_t count;
	struct ledger_rec *rec;
	struct node *node; /* the live child, if any */
	bool deferred;     /* in->ack will answer, after the commit */
};

void tasks_spawn(struct daemon *d, const struct tasks_spawn *in,
                 struct tasks_outcome *out);
/* The record of SUP/KEY: in memory, or read from the store. */
struct ledger_rec *tasks_get(struct daemon *d, const char *sup,
                             const char *key);
/* The live child of r (NULL: none), without a scan of sup's children
 * when r knows it; sup may be NULL (then only what r knows). */
struct node *tasks_live_node(struct daemon *d, const struct ledger_rec *r,
                             const struct node *sup);
/* The live child of r is n (NULL: it has ended). */
void tasks_set_node(struct daemon *d, struct ledger_rec *r, struct node *n);

/* tasks_held.c: an accepted spawn until its record is stored. */
struct tasks_held;
/* Held for spawn in: what the key's record was before (NULL: none) is
 * kept to put back if the write fails; serial is its child's. */
struct tasks_held *tasks_held_new(const struct tasks_spawn *in,
                                  struct ledger_rec *before,
                                  unsigned long serial);
/* The accepted task's record written, its child started: at once (no
 * store, or a resume, whose record the store has), else once the write
 * is stored; h is the held spawn's, taken. */
void tasks_go(struct daemon *d, const struct tasks_spawn *in,
              struct tasks_held *h, struct tasks_outcome *out);
/* A supervisor by name or path, without a walk over dynamic children. */
struct node *tasks_sup_find(struct daemon *d, const char *name);
/* A record by "SUP/KEY", or by KEY when one supervisor alone has it (in
 * memory or in the store); NULL, with why when the key is ambiguous. */
struct ledger_rec *tasks_lookup(struct daemon *d, const char *name,
                                const char **why);
/* A task's whole record as the answer to request id (created: -1, or
 * whether this request made it). */
void tasks_answer_rec(struct client *cl, struct daemon *d, uint64_t id,
                      const struct ledger_rec *r, int created);
/* qsort's order of ledger records (struct ledger_rec *): by time of
 * acceptance, then pool, then key (tasks_list.c). */
int tasks_by_accepted(const void *a, const void *b);
void tasks_pack_rec(struct daemon *d, msgpack_packer *pk,
                    const struct ledger_rec *r, int created);
void tasks_kv_nil(msgpack_packer *pk, const char *key);
void tasks_pack_reasons(msgpack_packer *pk, const struct ledger_rec *r);
/* What r is now, n its live child (NULL: none): "cancelling" on its way
 * down after an operator's stop or its pool's removal, else its child's
 * running or pending, else its record's state. */
const char *tasks_state_name(const struct ledger_rec *r, const struct node *n);
/* Four keys of r, n its live child (NULL: none): checkpoint_seq (a live
 * task's newest, or its record's; nil: none), accepted_ms, ended_ms (nil
 * while live) and replays. */
void tasks_pack_history(struct daemon *d, msgpack_packer *pk,
                        const struct ledger_rec *r, const struct node *n);
/* The name of the pool that was at path before a reload moved or removed
 * it (the newest such), or NULL. */
const char *tasks_pool_once_at(struct daemon *d, const char *path);
/* tasks_list.c: dead and tasks, the ledger listed. */
void tasks_list(struct client *cl, struct daemon *d, const struct request *q);

/* Answer every `wait` on r (ended): its record, once its end is committed
 * (at once without a store). */
void tasks_wake(struct daemon *, struct ledger_rec *r);
/* Whether what memory has of r is what the store has (always so without
 * a store): no write of it in flight, the last one stored. */
bool tasks_rec_settled(const struct daemon *, const struct ledger_rec *r);
/* Answer every `wait` on r now, stored or not: r leaves memory. */
/* n's record while n is its run (a cancelled run still draining does not
 * speak for a retry of its key), else NULL. */
struct ledger_rec *tasks_rec_of(struct daemon *, const struct node *n);
void tasks_wake_now(struct daemon *, struct ledger_rec *r);
/* A wait on r by cl's request id, answered when r ends: refused past
 * TASKS_CLIENT_WAITERS of one connection. */
void tasks_wait_add(struct daemon *, struct client *cl, struct ledger_rec *r,
                    uint64_t id);
/* Answer every `wait` on r "no such task": r was never accepted after
 * all (a spawn refused), and leaves memory. */
void tasks_wake_gone(struct daemon *, struct ledger_rec *r);
/* The last write of r in flight is done (stored or not: r->unsaved says):
 * the waits on it are answered if what is stored is its end. */
void tasks_rec_stored(struct daemon *, struct ledger_rec *r);

/* A spawn or a drop refused while the state store cannot take its write. */
#define TASKS_STORE_BEHIND                                                     \
	"the state store is not keeping up (its queue is full): try again"

#endif
