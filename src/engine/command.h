/*
 * command.h - an operator's commands on a node (agentsupctl start, stop,
 * restart, drain): each either acts or says exactly why it will not.
 */
#ifndef AGENTSUP_COMMAND_H
#define AGENTSUP_COMMAND_H

#include <stddef.h>
#include <stdint.h>

#include "tree.h"

enum refusal_kind {
	REFUSED_NONE,          /* done (or under way) */
	REFUSED_SHUTTING_DOWN, /* agentsupd is stopping the tree */
	REFUSED_DRAINING,      /* agentsupd is draining the tree */
	REFUSED_PARENT_DOWN,   /* its supervisor (node) is not running */
	REFUSED_BUSY,     /* a supervisor (node) is (re)starting children */
	REFUSED_STOPPING, /* the node itself is still stopping */
	REFUSED_EXITED,   /* the tree is done: agentsupd is exiting */
};

/* A refusal names its kind and the node whose state is the reason. */
struct refusal {
	enum refusal_kind kind;
	const struct node *node;
};

struct refusal command_start(struct tree *, struct node *, uint64_t now);
struct refusal command_stop(struct tree *, struct node *, uint64_t now);
struct refusal command_restart(struct tree *, struct node *, uint64_t now);
struct refusal command_drain(struct tree *, struct node *, uint64_t now);
/* Close the circuits and clear the failure counts of n (or of every worker
 * below it), and start what is down for good: quarantined, failed,
 * exhausted, or a supervisor that gave up. */
struct refusal command_reset(struct tree *, struct node *, uint64_t now);

/* The refusal as a sentence for the operator ("" when none). */
void command_refusal_format(struct refusal, char *, size_t);

#endif
