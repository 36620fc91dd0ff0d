/*
 * statedir.h - the state store brought up at start and down at exit: the
 * checkpoints (ckpt.c), and each worker's spend and circuit in the `nodes`
 * table, written when they change and put back at start.
 */
#ifndef AGENTSUP_STATEDIR_H
#define AGENTSUP_STATEDIR_H

struct daemon;

/* Open settings.state_dir (if set), read it back into the tree (spend,
 * circuits, checkpoints) and start its writer; d->ckpt is made either way.
 * -1 after saying why: the store is unusable (exit 73). */
int statedir_open(struct daemon *);
/* Write what changed since the last write (also every second). */
void statedir_sweep(struct daemon *);
/* The last writes, then close. */
void statedir_close(struct daemon *);

#endif
