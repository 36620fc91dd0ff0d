/*
 * events.c - every state change is one typed event, written once here: a
 * human line on stderr, a JSON line appended (and flushed) to the events file,
 * and whatever the follower sink does with it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "events.h"
#include "log.h"
#include "util.h"

static const char *const kind_names[EV__COUNT] = {
        [EV_STARTED] = "started",
        [EV_READY] = "ready",
        [EV_EXITED] = "exited",
        [EV_RESTARTING] = "restarting",
        [EV_STOPPING] = "stopping",
        [EV_STOPPED] = "stopped",
        [EV_HANG] = "hang",
        [EV_START_TIMEOUT] = "start_timeout",
        [EV_PROTOCOL_ERROR] = "protocol_error",
        [EV_GAVE_UP] = "gave_up",
        [EV_ESCALATED] = "escalated",
        [EV_DRAIN_STARTED] = "drain_started",
        [EV_DRAINED] = "drained",
        [EV_DRAIN_DONE] = "drain_done",
        [EV_RELOAD_APPLIED] = "reload_applied",
        [EV_RELOAD_REFUSED] = "reload_refused",
        [EV_SHUTDOWN] = "shutdown",
        [EV_COMMAND] = "command",
        [EV_BACKOFF] = "backoff",
        [EV_QUARANTINED] = "quarantined",
        [EV_PROBING] = "probing",
        [EV_CIRCUIT_CLOSED] = "circuit_closed",
        [EV_DECLARED] = "declared",
        [EV_FAILED] = "failed",
        [EV_EXHAUSTED] = "exhausted",
        [EV_MEMORY] = "memory",
};

const char *
events_kind_name(enum event_kind k)
{
	return kind_names[k];
}

static FILE *
open_append(const char *path)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	FILE *f;

	if (fd < 0)
		return NULL;
	if ((f = fdopen(fd, "a")) == NULL)
		close(fd);
	return f;
}

void
events_init(struct events *ev, const char *file_path)
{
	memset(ev, 0, sizeof *ev);
	ev->color = isatty(STDERR_FILENO) && getenv("NO_COLOR") == NULL;
	events_set_file(ev, file_path);
}

int
events_reopen(struct events *ev)
{
	FILE *f;

	if (ev->file_path == NULL)
		return 0;
	if ((f = open_append(ev->file_path)) == NULL) {
		log_warn("reopen events file %s (keeping the old one)",
		         ev->file_path);
		return -1;
	}
	if (ev->file != NULL)
		fclose(ev->file);
	ev->file = f;
	return 0;
}

void
events_set_file(struct events *ev, const char *file_path)
{
	if (ev->file != NULL)
		fclose(ev->file);
	free(ev->file_path);
	ev->file = NULL;
	ev->file_path = file_path ? xstrdup(file_path) : NULL;
	if (file_path != NULL && (ev->file = open_append(file_path)) == NULL)
		log_warn("events file %s", file_path);
}

void
events_close(struct events *ev)
{
	if (ev->file != NULL)
		fclose(ev->file);
	free(ev->file_path);
	ev->file = NULL;
	ev->file_path = NULL;
}

/* Append s as a JSON string body; stops at the buffer's end. */
static size_t
json_str(char *buf, size_t at, size_t len, const char *s)
{
	static const char hex[] = "0123456789abcdef";

	for (; *s != '\0' && at + 7 < len; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\') {
			buf[at++] = '\\';
			buf[at++] = (char)c;
		} else if (c < 0x20) {
			buf[at++] = '\\';
			buf[at++] = 'u';
			buf[at++] = '0';
			buf[at++] = '0';
			buf[at++] = hex[c >> 4];
			buf[at++] = hex[c & 15];
		} else
			buf[at++] = (char)c;
	}
	buf[at] = '\0';
	return at;
}

static size_t json_add(char *buf, size_t at, size_t len, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

static size_t
json_add(char *buf, size_t at, size_t len, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (at >= len)
		return at;
	va_start(ap, fmt);
	n = vsnprintf(buf + at, len - at, fmt, ap);
	va_end(ap);
	if (n < 0)
		return at;
	return at + (size_t)n < len ? at + (size_t)n : len - 1;
}

static void
format_time(int64_t ms, char *buf, size_t len, int full)
{
	time_t secs = (time_t)(ms / 1000);
	struct tm tm;

	gmtime_r(&secs, &tm);
	if (full)
		snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
		         tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
		         tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
	else
		snprintf(buf, len, "%02d:%02d:%02d.%03d", tm.tm_hour, tm.tm_min,
		         tm.tm_sec, (int)(ms % 1000));
}

size_t
events_json(const struct event *e, char *buf, size_t len)
{
	char when[80];
	size_t at;

	format_time(e->time_ms, when, sizeof when, 1);
	at = json_add(
	        buf, 0, len,
	        "{\"seq\":%llu,\"time\":\"%s\",\"kind\":\"%s\",\"path\":\"",
	        (unsigned long long)e->seq, when, events_kind_name(e->kind));
	at = json_str(buf, at, len, e->path);
	at = json_add(buf, at, len, "\",\"pid\":%ld,\"restarts\":%lu",
	              (long)e->pid, e->restarts);
	if (e->reason != NULL) {
		at = json_add(buf, at, len, ",\"reason\":\"");
		at = json_str(buf, at, len, e->reason);
		at = json_add(buf, at, len, "\"");
	}
	if (e->detail != NULL) {
		at = json_add(buf, at, len, ",\"detail\":\"");
		at = json_str(buf, at, len, e->detail);
		at = json_add(buf, at, len, "\"");
	}
	return json_add(buf, at, len, "}");
}

static const char *
kind_color(enum event_kind k)
{
	switch (k) {
	case EV_EXITED:
	case EV_HANG:
	case EV_START_TIMEOUT:
	case EV_PROTOCOL_ERROR:
	case EV_MEMORY:
		return "\033[33m";
	case EV_GAVE_UP:
	case EV_ESCALATED:
	case EV_RELOAD_REFUSED:
	case EV_QUARANTINED:
	case EV_FAILED:
	case EV_EXHAUSTED:
		return "\033[1;31m";
	case EV_STARTED:
	case EV_READY:
		return "\033[32m";
	case EV_RESTARTING:
	case EV_BACKOFF:
	case EV_PROBING:
	case EV_CIRCUIT_CLOSED:
		return "\033[36m";
	default:
		return "";
	}
}

/* "12:00:01.234 root/research/fetcher  exited  pid 812 exit:1 ..." */
static void
write_line(struct events *ev, const struct event *e)
{
	char when[80], pid[32] = "";
	const char *on = ev->color ? kind_color(e->kind) : "";
	const char *off = ev->color && *on ? "\033[0m" : "";

	format_time(e->time_ms, when, sizeof when, 0);
	if (e->pid > 0)
		snprintf(pid, sizeof pid, " pid %ld", (long)e->pid);
	char line[1024];
	int n = snprintf(line, sizeof line, "%s %-28s %s%-14s%s%s%s%s%s%s",
	                 when, e->path, on, events_kind_name(e->kind), off, pid,
	                 e->reason ? " " : "", e->reason ? e->reason : "",
	                 e->detail ? "  " : "", e->detail ? e->detail : "");

	if (n < 0)
		return;
	if ((size_t)n >= sizeof line)
		n = (int)sizeof line - 1;
	while (n > 0 && line[n - 1] == ' ')
		n--; /* the padding of a last empty column */
	fprintf(stderr, "%.*s\n", n, line);
}

void
events_emit(struct events *ev, enum event_kind kind, const char *path,
            pid_t pid, const char *reason, unsigned long restarts,
            const char *fmt, ...)
{
	struct event e = {0};
	struct timespec ts;
	char detail[512], json[1024];
	va_list ap;

	if (fmt != NULL) {
		va_start(ap, fmt);
		vsnprintf(detail, sizeof detail, fmt, ap);
		va_end(ap);
		e.detail = detail[0] != '\0' ? detail : NULL;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	e.seq = ++ev->seq;
	e.time_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	e.kind = kind;
	e.path = path;
	e.pid = pid;
	e.reason = reason;
	e.restarts = restarts;
	/* the file first: whoever sees the line on stderr finds it there */
	if (ev->file != NULL || ev->sink != NULL)
		events_json(&e, json, sizeof json);
	if (ev->file != NULL) {
		if (fprintf(ev->file, "%s\n", json) < 0 ||
		    fflush(ev->file) != 0) {
			log_warn("events file %s", ev->file_path);
			clearerr(ev->file);
		}
	}
	write_line(ev, &e);
	if (ev->sink != NULL)
		ev->sink(ev->sink_arg, &e, json);
}
