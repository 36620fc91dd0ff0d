/*
 * dynamic.h - a supervisor's dynamic children (DESIGN §12): spawned at run
 * time from its `template:`, bounded by `max_children`, named SUP/KEY, and
 * taken out of the tree once their task has ended (the record of it lives
 * in the shell's ledger). The shell calls dynamic_spawn, dynamic_find and
 * dynamic_sweep; the engine's files call the hooks.
 */
#ifndef AGENTSUP_DYNAMIC_H
#define AGENTSUP_DYNAMIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tree.h"

enum task_end {
	TASK_END_NONE,      /* pending or running */
	TASK_END_DONE,      /* exited normally (or declared done) */
	TASK_END_DEAD,      /* will not be retried: a dead letter */
	TASK_END_CANCELLED, /* stopped by an operator */
};

/* What a dynamic child was spawned with; owned by its node. */
struct task {
	char *key;
	char *sup;   /* its supervisor's name: its record's, even once a
	                reload buried the task alone (its template removed) */
	char **args; /* appended to the template's command, NULL-terminated */
	char **env;  /* "K=V", over the template's, NULL-terminated */
	enum task_end end;
	bool uncommitted; /* added, its record not stored yet: held, and only
	                     dynamic_start (the commit) starts it */
	bool stopped;     /* an operator stopped it meanwhile: the commit
	                     cancels it instead */
	unsigned long serial; /* which spawn made it (the shell's number) */
};

enum spawn_refusal {
	SPAWN_OK,
	SPAWN_NOT_DYNAMIC,   /* the supervisor has no template */
	SPAWN_NOT_RUNNING,   /* the supervisor is not running */
	SPAWN_SHUTTING_DOWN, /* the tree is stopping or draining */
	SPAWN_MAX_CHILDREN,  /* max_children live children already */
};

/* An operator's stop of a task stored but not started yet (waiting for
 * its pool's job, or for its namesake a reload removed): cancelled now, as
 * a running one is once down (it waited for good, its wait unanswered);
 * false when c is no such task. */
bool dynamic_stop_unstarted(struct tree *, struct node *c);
/* Tasks stored while their pool ran a job that did not take them in (a
 * restart of one child): started once it is free, as dynamic_start would
 * have (they waited for ever). */
void dynamic_start_waiting(struct tree *, struct node *sup);
/* A new child KEY of sup, started now; NULL with *why when refused. The
 * caller has checked that no live child has this key. */
struct node *dynamic_spawn(struct tree *, struct node *sup, const char *key,
                           char *const *args, char *const *env, uint64_t now,
                           enum spawn_refusal *why);
/* The same, not started: held (no job starts it, it counts toward
 * max_children) until dynamic_start, or dynamic_unspawn takes it out. A
 * task whose record must be stored before it runs. */
struct node *dynamic_add(struct tree *, struct node *sup, const char *key,
                         char *const *args, char *const *env, uint64_t now,
                         enum spawn_refusal *why);
/* An added child may run: started now if its supervisor is free to, else
 * by its supervisor's job (or, stopping, at the next start, resumed). */
void dynamic_start(struct tree *, struct node *c, uint64_t now);
/* An added child that must not run: taken out, true, if it never started
 * (no event: its spawn is refused); false if it was started meanwhile (an
 * operator's start): stopped, and so cancelled. */
bool dynamic_unspawn(struct tree *, struct node *c, uint64_t now);
/* The live (not ended) child of sup with this key, or NULL. */
struct node *dynamic_find(const struct node *sup, const char *key);
/* sup's live children, as max_children counts them. */
size_t dynamic_count(const struct node *sup);
/* The next number for a child spawned without a key (SUP/N). */
unsigned long dynamic_next_number(struct node *sup);
/* The next numbers are past n (the highest a store holds). */
void dynamic_number_past(struct node *sup, unsigned long n);
const char *dynamic_refusal_name(enum spawn_refusal);
/* Free the children whose task ended, once no action is queued and their
 * supervisor runs no job: memory stays flat however many tasks end. */
void dynamic_sweep(struct tree *);

/* Hooks for the engine's own files. */
void dynamic_task_free(struct node *);
/* A task restarting takes the template in force now. */
void dynamic_respec(struct node *);
/* Whether the exit that took task c down finished it: it declared `done`
 * (in a pool that is not `permanent`), whatever stopped it. */
bool dynamic_finished(const struct node *c);
/* A task's child ended for good: done, or (dead) a dead letter, unless it
 * declared `done` (drained as its own budget ran out). */
void dynamic_child_ended(struct tree *, struct node *, bool dead);
/* A task's child down during a stop (an operator's, its pool's, the
 * tree's), its exit's declaration taken: done if it declared `done`, else
 * cancelled if an operator stopped it (held), else left to run again. */
void dynamic_child_stopped(struct tree *, struct node *);
/* A reload removed the task's supervisor, or its template (the task is
 * buried alone): cancelled (nothing would ever start or end it again; its
 * record waited for ever). */
void dynamic_child_buried(struct tree *, struct node *);
/* A reload of a supervisor: 0 not dynamic (match children as usual), 1
 * dynamic and the template unchanged, 2 the template changed (new children
 * take it; running ones keep theirs until they restart). */
int dynamic_reload(const struct node *sup, const struct spec *ns);

#endif
