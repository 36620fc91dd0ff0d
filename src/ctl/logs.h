/* logs.h - agentsupctl logs: a worker's or a subtree's output. */
#ifndef AGENTSUP_CTL_LOGS_H
#define AGENTSUP_CTL_LOGS_H

struct ctl;

/* logs [NAME] [-n N] [-f]: NAME NULL is the whole tree. Exit status. */
int logs_run(struct ctl *, const char *name, int follow);

#endif
