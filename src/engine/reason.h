/* reason.h - why a node stopped: a typed reason, named as events show it. */
#ifndef AGENTSUP_REASON_H
#define AGENTSUP_REASON_H

#include <stdbool.h>
#include <stddef.h>

enum reason_kind {
	REASON_NONE,
	REASON_EXIT,          /* code = exit status */
	REASON_SIGNAL,        /* code = signal number */
	REASON_HANG,          /* missed its heartbeat deadline */
	REASON_START_TIMEOUT, /* no "ready" within start_timeout */
	REASON_PROTOCOL,      /* broke the wire protocol */
	REASON_SPAWN,         /* could not be forked: code = errno */
	REASON_GAVE_UP,       /* a supervisor exceeded its intensity */
	REASON_MEMORY,        /* over its max_memory */
	REASON_STALL,         /* beats without progress (§10) */
	REASON_LOOP,          /* the same steps over and over */
	REASON_BUDGET,        /* a budget is spent */
};

/* What a worker may declare of its coming exit (DESIGN §9). */
enum declared_kind {
	DECLARED_NONE,
	DECLARED_DONE,         /* a normal exit, whatever its status */
	DECLARED_TRANSIENT,    /* an ordinary failure (the default) */
	DECLARED_RATE_LIMITED, /* retry after retry_after_ms */
	DECLARED_PERMANENT,    /* never restart it */
	DECLARED_BUDGET,       /* as a budget exhausted */
};

struct reason {
	enum reason_kind kind;
	int code;
	/* an end the worker's policy takes as normal (a status of its
	 * success_exit, the signal after its STOPPING=1), shown as it was */
	bool normal;
};

/* Anything but a clean exit 0, an end taken as normal, "no reason". */
bool reason_abnormal(struct reason);
/* Out of processes or descriptors at the spawn: the supervisor's trouble,
 * not the child's (it never ran). Retried after a backoff, never counted
 * against anyone. */
bool reason_spawn_exhausted(struct reason);
/* "exit:1", "signal:SIGKILL", "hang", "spawn:EMFILE"... */
void reason_format(struct reason, char *, size_t);
const char *declared_name(enum declared_kind);
/* "rate_limited" -> DECLARED_RATE_LIMITED; DECLARED_NONE if unknown. */
enum declared_kind declared_parse(const char *, size_t len);

#endif
