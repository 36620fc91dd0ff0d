/* task.h - agentsupctl's task commands: spawn, wait, dead, replay, drop. */
#ifndef AGENTSUP_CTL_TASK_H
#define AGENTSUP_CTL_TASK_H

#include <stdbool.h>

#include <msgpack.h>

#include "reply.h"

#define TASK_EXIT_DEAD      2
#define TASK_EXIT_CANCELLED 4
#define TASK_EXIT_TIMEOUT   CTL_EXIT_TIMEOUT
#define TASK_EXIT_USAGE     CTL_EXIT_USAGE

/* spawn SUP [--key K] [--env K=V]... [--retry] [-- ARGS...] */
struct task_spawn {
	const char *sup, *key;
	char **args; /* into argv */
	int nargs;
	char **env; /* "K=V", into argv; the array is ours */
	int nenv;
	bool retry;
};

/* argv[0] is "spawn". 0, or the usage exit status having said why. */
int task_parse_spawn(int argc, char **argv, struct task_spawn *, bool *json);
void task_spawn_free(struct task_spawn *);
/* The options map sent after SUP. */
void task_pack_spawn(msgpack_packer *, const struct task_spawn *);
/* --timeout T (a duration) in ms; -1 after saying why. */
int task_parse_timeout(const char *, int *ms);
/* Show a task command's answer; the exit status. */
int task_show(const char *cmd, const msgpack_object *body, bool json);
/* wait's exit status for a record: 0 done, 2 dead, 4 cancelled. */
int task_wait_status(const msgpack_object *rec);

#endif
