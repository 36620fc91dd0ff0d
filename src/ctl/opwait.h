/* opwait.h - agentsupctl start|stop|restart|drain NAME --wait. */
#ifndef AGENTSUP_CTL_OPWAIT_H
#define AGENTSUP_CTL_OPWAIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ctl;

/* A worker below NAME before the command. */
struct opwait_node {
	char *path;
	uint64_t starts, failures, pid;
};

#define OPWAIT_DEFAULT_MS 90000 /* as systemd's stop and start timeouts */

struct opwait {
	const char *cmd, *name;
	int timeout_ms;
	uint64_t starts;  /* NAME's, before the command */
	bool was_running; /* NAME, before the command */
	bool worker;      /* NAME is a worker */
	bool removed; /* the last look: a reload removed NAME, still stopping */
	uint64_t deadline;         /* CLOCK_MONOTONIC ms: the wait's end */
	struct opwait_node *nodes; /* NAME's workers before it, by path */
	size_t nnodes;
	char *result;   /* the command's answer (--json says it at the end) */
	char *error;    /* a refusal for a moment, while it lasts */
	char state[48]; /* NAME's state at the last look ("" before one) */
	char late[320]; /* what the wait's end says, cutting a look short */
};

/* Whether cmd takes --wait. */
bool opwait_command(const char *cmd);
struct reply_answer;
/* The command (after a look at NAME, its state and processes before it),
 * asked again while refused with again (busy for a moment). */
int opwait_ask(struct ctl *, struct opwait *, struct reply_answer *);
int opwait_run(struct ctl *, struct opwait *);
void opwait_free(struct opwait *);

#endif
