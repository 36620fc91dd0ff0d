/*
 * events.h - typed events: a human line on stderr, a JSON line in the events
 * file, and the followers' sink.
 *
 * Every line is whole and valid: a JSON line is at most EVENTS_LINE_MAX
 * bytes (newline included); each text field has a budget of output bytes
 * (below), and a field over its budget is cut at a character boundary,
 * marked "…(+N bytes)", and the line gets "truncated":true. Worker text is
 * escaped for where it goes (text.h). A line the file cannot take whole is
 * not written at all; lost lines are counted and said in one
 * {"kind":"events_dropped",...} line once the file takes lines again.
 */
#ifndef AGENTSUP_EVENTS_H
#define AGENTSUP_EVENTS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "eventkinds.h"
#include "text.h"

#define EVENTS_ENUM(id, name, tone) EV_##id,
enum event_kind { EVENTS_KINDS(EVENTS_ENUM) EV__COUNT };
#undef EVENTS_ENUM

/* How a kind's line is coloured on a terminal. */
enum event_tone { EVENT_PLAIN, EVENT_GOOD, EVENT_WARN, EVENT_BAD, EVENT_RETRY };

/* An extra typed field of one event: "key": value in JSON, key=value in the
 * human line. Keys are our own identifiers, never one of the standard keys
 * (seq, time, kind, path, pid, restarts, reason, detail, tail, truncated). */
enum event_field_type { EVENT_STR, EVENT_UINT, EVENT_DOUBLE };
struct event_field {
	const char *key;
	enum event_field_type type;
	union {
		const char *s; /* borrowed; may be worker text: it is escaped */
		uint64_t u;
		double d; /* NaN and Inf are written as null */
	};
};

#define EVENTS_MAX_REASONS 16 /* restart reasons counted; the rest: "other" */

/* Output budgets, in bytes of escaped JSON, quotes included. */
#define EVENTS_LINE_MAX        65536
#define EVENTS_PATH_MAX        8192
#define EVENTS_REASON_MAX      256
#define EVENTS_DETAIL_MAX      16384
#define EVENTS_TAIL_MAX        24576
#define EVENTS_FIELDS_MAX      8 /* more are left out, "truncated":true */
#define EVENTS_FIELD_KEY_MAX   64
#define EVENTS_FIELD_VALUE_MAX 1024

/* One state change, as written everywhere. Strings are borrowed; every
 * pointer but path may be NULL (nfields 0 with fields NULL). */
struct event {
	uint64_t seq;
	int64_t run_ms; /* the agentsupd run's start: seq is unique within it */
	int64_t time_ms; /* wall clock, ms since the epoch */
	enum event_kind kind;
	const char *path;
	pid_t pid;          /* 0 when none */
	const char *reason; /* "exit:1", "signal:SIGKILL", "hang", ... */
	unsigned long restarts;
	const char *detail; /* free text */
	const char *tail;   /* the last lines of a worker's output */
	const struct event_field *fields;
	size_t nfields;
};

/* ms since the epoch as UTC "2026-11-27T01:02:03.456Z" (full) or
 * "01:02:03.456". */
void events_format_time(int64_t ms, char *buf, size_t len, int full);

typedef void (*events_sink_fn)(void *arg, const struct event *,
                               const char *json);
/* The last lines of output of the worker at path into buf (NUL-terminated,
 * at most len bytes with the NUL); their length, 0 for none. */
typedef size_t (*events_tail_fn)(void *arg, const char *path, char *buf,
                                 size_t len);

/* bytes of output asked of the tail fn: as much as an event carries (the
 * ring holds log_tail, 8 KiB by default) */
#define EVENTS_TAIL_TAKEN EVENTS_TAIL_MAX
/* How the events file is written: write(2), or a test's stand-in. */
typedef ssize_t (*events_write_fn)(int fd, const void *, size_t);

struct events {
	uint64_t seq;
	int64_t run_ms; /* when this agentsupd started (wall clock, ms) */
	char *file_path;
	int fd;              /* the JSON-lines file (O_APPEND), -1 when none */
	bool color;          /* colour the stderr line (a terminal) */
	events_sink_fn sink; /* followers: control.c */
	void *sink_arg;
	events_tail_fn tail; /* output for failure events without a tail */
	void *tail_arg;
	uint64_t counts[EV__COUNT]; /* emitted since start, for /metrics */
	struct events_reason_count {
		char reason[16]; /* "exit", "signal", "hang"...: no code */
		uint64_t n;
	} restarts[EVENTS_MAX_REASONS]; /* restart decisions by reason */
	size_t nrestarts;
	events_write_fn write_fn; /* write(2) unless a test says otherwise */
	/* lines the file could not take, said once it takes lines again */
	uint64_t lost, lost_first_seq, lost_last_seq;
	int lost_errno;
	bool torn; /* a cut line could not be taken back: end it first */
	struct text_buf detail, json, human; /* reused for every event */
};

void events_init(struct events *, const char *file_path);
int events_reopen(struct events *); /* after logrotate: SIGHUP */
void events_set_file(struct events *, const char *file_path); /* or NULL */
void events_close(struct events *);
/* The common case: detail is printf-formatted (NULL fmt: no detail). */
void events_emit(struct events *, enum event_kind, const char *path, pid_t pid,
                 const char *reason, unsigned long restarts,
                 const char *detail_fmt, ...)
        __attribute__((format(printf, 7, 8)));
/* Every field: e is copied; its seq and time_ms are set here. */
void events_emit_ex(struct events *, const struct event *e);
const char *events_kind_name(enum event_kind);
/* Whether a kind reports a worker failing (its event carries a tail). */
bool events_kind_failure(enum event_kind);
/* The JSON line of e (no newline) into b, which must allow at least
 * EVENTS_LINE_MAX - 1 bytes. */
void events_json(const struct event *, struct text_buf *b);

#endif
