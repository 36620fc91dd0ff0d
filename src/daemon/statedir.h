/*
 * statedir.h - the state store brought up at start and down at exit: the
 * checkpoints (ckpt.c), each worker's spend and circuit in the `nodes`
 * table, and the nodes an operator stopped in the `holds` table, written
 * when they change and put back at start.
 */
#ifndef AGENTSUP_STATEDIR_H
#define AGENTSUP_STATEDIR_H

#include <stdbool.h>

struct daemon;

/* Open settings.state_dir (if set), read it back into the tree (spend,
 * circuits, checkpoints) and start its writer; d->ckpt is made either way.
 * -1 after saying why: the store is unusable (exit 73). */
int statedir_open(struct daemon *);
/* Write what changed since the last write (also every second). */
void statedir_sweep(struct daemon *);
/* Once the operator's holds as they are now are committed (rc 0) or their
 * write failed (rc -1, why): fn is called on the loop, then. False when
 * none is being written: they are stored already (or there is no store). */
typedef void statedir_then_fn(struct daemon *, void *arg, int rc,
                              const char *why);
bool statedir_holds_then(struct daemon *, statedir_then_fn *, void *arg);
/* Once a second: writes that wait for seconds with none done (a disk that
 * stalls) said as a store_error (statedir_watch.c). */
void statedir_watch(struct daemon *);
/* The last writes, then close. */
void statedir_close(struct daemon *);

#endif
