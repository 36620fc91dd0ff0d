/* rolling.h - agentsupctl restart NAME --rolling: one at a time. */
#ifndef AGENTSUP_CTL_ROLLING_H
#define AGENTSUP_CTL_ROLLING_H

struct ctl;

/* NAME's children (a supervisor's) or copies (a worker of `instances:`)
 * restarted one at a time, each up before the next; the exit status of
 * the first that is not (the rest untouched), else 0. */
int rolling_run(struct ctl *, const char *name);

#endif
