/* events.h - typed events: a log line on stderr, a JSON-lines file, followers.
 */
#ifndef AGENTSUP_EVENTS_H
#define AGENTSUP_EVENTS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

enum event_kind {
	EV_STARTED,
	EV_READY,
	EV_EXITED,
	EV_RESTARTING,
	EV_STOPPING,
	EV_STOPPED,
	EV_HANG,
	EV_START_TIMEOUT,
	EV_PROTOCOL_ERROR,
	EV_GAVE_UP,
	EV_ESCALATED,
	EV_DRAIN_STARTED,
	EV_DRAINED,
	EV_DRAIN_DONE,
	EV_RELOAD_APPLIED,
	EV_RELOAD_REFUSED,
	EV_SHUTDOWN,
	EV_COMMAND,
	EV_BACKOFF,
	EV_QUARANTINED,
	EV_PROBING,
	EV_CIRCUIT_CLOSED,
	EV_DECLARED,
	EV_FAILED,
	EV_EXHAUSTED,
	EV_MEMORY, /* over max_memory: stopped, reason "memory" */
	EV__COUNT
};

/* One state change, as written everywhere. Strings are borrowed. */
struct event {
	uint64_t seq;
	int64_t time_ms; /* wall clock, ms since the epoch */
	enum event_kind kind;
	const char *path;
	pid_t pid; /* 0 when none */
	const char
	        *reason; /* "exit:1", "signal:SIGKILL", "hang", ... or NULL */
	unsigned long restarts;
	const char *detail; /* free text or NULL */
};

typedef void (*events_sink_fn)(void *arg, const struct event *,
                               const char *json);

struct events {
	uint64_t seq;
	char *file_path;
	FILE *file;          /* JSON lines, NULL when not configured */
	bool color;          /* colour the stderr line (a terminal) */
	events_sink_fn sink; /* followers: control.c */
	void *sink_arg;
};

void events_init(struct events *, const char *file_path);
int events_reopen(struct events *); /* after logrotate: SIGHUP */
void events_set_file(struct events *, const char *file_path); /* or NULL */
void events_close(struct events *);
void events_emit(struct events *, enum event_kind, const char *path, pid_t pid,
                 const char *reason, unsigned long restarts,
                 const char *detail_fmt, ...)
        __attribute__((format(printf, 7, 8)));
const char *events_kind_name(enum event_kind);
/* JSON for one event into buf; returns its length (truncated at len-1). */
size_t events_json(const struct event *, char *buf, size_t len);

#endif
