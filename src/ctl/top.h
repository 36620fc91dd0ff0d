/* top.h - agentsupctl top: a live full-screen view of the tree. */
#ifndef AGENTSUP_TOP_H
#define AGENTSUP_TOP_H

/* Run until the user quits (q) or the terminal goes away; the exit status
 * for agentsupctl (0, or 69 when agentsupd cannot be reached at start). */
int top_run(const char *socket_path);

#endif
