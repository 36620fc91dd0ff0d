/* reload.h - applying a new, valid spec tree to the running tree as a diff. */
#ifndef AGENTSUP_RELOAD_H
#define AGENTSUP_RELOAD_H

#include <stddef.h>
#include <stdint.h>

#include "tree.h"

/* One list of node paths. */
struct reload_list {
	char **paths;
	size_t count;
};

/* What a reload did: nodes added, removed, restarted (their process
 * changed), updated (only their policy changed). */
struct reload_report {
	struct reload_list added, removed, restarted, updated;
};

/* Why a reload must wait (a supervisor below top carrying out a start,
 * restart or stop of its children), in a few words, or NULL. */
const char *reload_busy(const struct node *top);
/* Apply root as a diff; -1 with *why (nothing changed) while the tree is
 * shutting down, draining or busy restarting. */
int reload_apply(struct tree *, const struct spec *root, uint64_t now,
                 struct reload_report *, const char **why);
void reload_report_free(struct reload_report *);

#endif
