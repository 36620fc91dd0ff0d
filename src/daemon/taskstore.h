/*
 * taskstore.h - the task ledger in the state store: the `tasks` table,
 * written through (group-committed off the loop), read back at start.
 */
#ifndef AGENTSUP_TASKSTORE_H
#define AGENTSUP_TASKSTORE_H

#include <stddef.h>

struct daemon;
struct ledger;
struct ledger_rec;

/* SQL of the tasks table, for store_schema at open. */
extern const char taskstore_schema[];
/* Queue the record's row (live_attempts: starts of its running child).
 * Nothing without a store. */
void taskstore_save(struct daemon *, const struct ledger_rec *,
                    unsigned live_attempts);
/* Queue the deletion of the record's row. */
void taskstore_forget(struct daemon *, const struct ledger_rec *);
/* At start: every row into the ledger. -1 with why. */
int taskstore_load(struct daemon *, struct ledger *, char *why, size_t len);

#endif
