/* drainall.h - agentsupctl drain --wait of the whole tree (drainall.c). */
#ifndef AGENTSUP_CTL_DRAINALL_H
#define AGENTSUP_CTL_DRAINALL_H

struct ctl;

/* Drain the tree and wait for agentsupd to say it exits (its tree down):
 * 0 when it exits 0, 1 when it exits otherwise, 124 past c->wait_ms, 130
 * on ^C, 69 when it went without saying how. */
int drainall_run(struct ctl *c, const char *sock);

#endif
