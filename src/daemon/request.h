/* request.h - a control request ({t: req, id, cmd, args}) checked and typed. */
#ifndef AGENTSUP_REQUEST_H
#define AGENTSUP_REQUEST_H

#include <stdbool.h>
#include <stdint.h>

#include <msgpack.h>

enum request_cmd {
	REQ_STATUS,
	REQ_START,
	REQ_STOP,
	REQ_RESTART,
	REQ_DRAIN,
	REQ_RELOAD,
	REQ_EVENTS,
	REQ_SHUTDOWN,
	REQ_SPAWN, /* dynamic children (tasks.c) */
	REQ_WAIT,
	REQ_DEAD,
	REQ_REPLAY,
	REQ_DROP,
	REQ_LOGS,
	REQ_RESET,  /* circuit, counts, budget spend cleared; started */
	REQ_SIGNAL, /* a signal to the workers of a subtree (serve_signal.c) */
	REQ_TASKS,  /* the ledger's records, of a pool, of a state */
};

#define REQUEST_NAME_MAX 256

struct request {
	uint64_t id;
	enum request_cmd cmd;
	char name[REQUEST_NAME_MAX]; /* "" when not given */
	bool follow;                 /* events: keep streaming */
	const msgpack_object *opts;  /* spawn: its options map, or NULL;
	                                wait: NOW; tasks: STATE */
	uint32_t
	        lines; /* logs: the last N lines; tasks: the newest N; 0: all */
	int signo;     /* signal: the signal */
};

/* 0, or -1 with *why set: a clear reason for the client. Pure. */
int request_parse(const msgpack_object *map, struct request *,
                  const char **why);
const char *request_cmd_name(enum request_cmd);

#endif
