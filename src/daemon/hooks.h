/*
 * hooks.h - `on_event:` commands: one process per matching event, the
 * event's JSON on its stdin, bounded in time and in how many run at once.
 * A leaf: it knows hook specs and the loop, never the tree; the daemon's one
 * ev_child routes the pids it does not know here (hooks_reaped).
 */
#ifndef AGENTSUP_HOOKS_H
#define AGENTSUP_HOOKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <ev.h>

#include "config.h"

#define HOOKS_MAX_RUNNING   4  /* hook processes at once */
#define HOOKS_MAX_QUEUED    64 /* events waiting for a slot; beyond: dropped */
#define HOOKS_MAX_JSON      (64u * 1024u)
#define HOOKS_EXIT_GRACE_MS 10000 /* at exit, for the last events' hooks */

/* What happened to hooks so far, for logs, tests and metrics. */
struct hooks_counts {
	uint64_t started;     /* executed */
	uint64_t failed;      /* of those, a non-zero exit or a signal */
	uint64_t exec_failed; /* not executed (a wrong path): not started */
	uint64_t timed_out;   /* killed after its timeout (failed too) */
	uint64_t dropped;     /* the queue was full */
};

struct hooks;

/* max_running and max_queued bound the work; the specs are copied. */
struct hooks *hooks_new(struct ev_loop *, const struct hook_spec *, size_t n,
                        unsigned max_running, unsigned max_queued);
/* A reload: the new specs apply to events from now on. */
void hooks_set(struct hooks *, const struct hook_spec *, size_t n);
/* One event: every hook listing `kind` runs (or queues) with json on its
 * stdin. Never blocks. */
void hooks_event(struct hooks *, const char *kind, const char *json,
                 size_t len);
/* The reaper's question for a pid it does not know: true if it was a
 * hook's (now accounted for, the next queued hook started). */
bool hooks_reaped(struct hooks *, pid_t, int status);
/* Whether pid is a running hook's (the reaper kills its group first). */
bool hooks_owns(const struct hooks *, pid_t);
/* Whether nothing runs and nothing waits. */
bool hooks_idle(const struct hooks *);
/* At exit: run the loop until every running and queued hook is done, for
 * at most grace_ms; then kill what runs and drop what waits (logged). */
void hooks_flush(struct hooks *, uint64_t grace_ms);
const struct hooks_counts *hooks_counts(const struct hooks *);
/* Kill whatever still runs (its process group) and free everything. */
void hooks_free(struct hooks *);

#endif
