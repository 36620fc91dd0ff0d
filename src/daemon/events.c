/*
 * events.c - every state change is one typed event, written once here: a
 * human line on stderr (through log.c's queue, never blocking), a JSON line
 * appended to the events file, and whatever the follower sink does with it.
 *
 * The events file gets whole lines or nothing: each line is one write(2) to
 * an O_APPEND descriptor; a short write (a full disk) is taken back with
 * ftruncate to where the line began, so no line is ever glued to another.
 * That assumes agentsupd is the file's only writer (a second one appending
 * between our write and our ftruncate would lose its line). Lines that could
 * not be written are counted and said in one events_dropped line as soon as
 * the file takes a line again.
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

/* The whole human line, and the share of it a detail may take. */
#define EVENTS_HUMAN_MAX        LOG_LINE_MAX
#define EVENTS_HUMAN_DETAIL_MAX 4096
/* A printf-formatted detail longer than this is refused, and said. */
#define EVENTS_DETAIL_FORMAT_MAX (256 * 1024)

/* The standard keys with their worst case, then every budgeted field. */
_Static_assert(256 + EVENTS_PATH_MAX + EVENTS_REASON_MAX + EVENTS_DETAIL_MAX +
                               EVENTS_TAIL_MAX +
                               EVENTS_FIELDS_MAX *
                                       (EVENTS_FIELD_KEY_MAX +
                                        EVENTS_FIELD_VALUE_MAX + 8) <
                       EVENTS_LINE_MAX,
               "an event's fields must fit its line");

/* And the human line: its parts with their worst case, then the newline. */
_Static_assert(128 + EVENTS_PATH_MAX / 2 + EVENTS_REASON_MAX +
                               EVENTS_HUMAN_DETAIL_MAX +
                               EVENTS_FIELDS_MAX *
                                       (EVENTS_FIELD_KEY_MAX +
                                        EVENTS_FIELD_VALUE_MAX / 4 + 32) <
                       EVENTS_HUMAN_MAX,
               "an event's human line must fit the log's line");

static const struct {
	const char *name;
	enum event_tone tone;
} events_kinds[EV__COUNT] = {
#define EVENTS_ROW(id, n, t) [EV_##id] = {n, t},
        EVENTS_KINDS(EVENTS_ROW)
#undef EVENTS_ROW
};

const char *
events_kind_name(enum event_kind k)
{
	return events_kinds[k].name;
}

bool
events_kind_failure(enum event_kind k)
{
	switch (k) {
	case EV_EXITED: /* a failing exit's: session.c gives its tail */
	case EV_HANG:
	case EV_START_TIMEOUT:
	case EV_PROTOCOL_ERROR:
	case EV_QUARANTINED:
	case EV_FAILED:
	case EV_EXHAUSTED:
	case EV_MEMORY:
	case EV_STALLED:
	case EV_LOOPING:
	case EV_DEAD_LETTERED:
		return true;
	default:
		return false;
	}
}

static int
events_open_append(const char *path)
{
	return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
}

void
events_init(struct events *ev, const char *file_path)
{
	struct timespec ts;

	memset(ev, 0, sizeof *ev);
	if (clock_gettime(CLOCK_REALTIME, &ts) == 0)
		ev->run_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	ev->fd = -1;
	ev->write_fn = write;
	ev->color = isatty(STDERR_FILENO) && getenv("NO_COLOR") == NULL;
	text_buf_init(&ev->detail, EVENTS_DETAIL_FORMAT_MAX);
	text_buf_init(&ev->json, EVENTS_LINE_MAX);
	text_buf_init(&ev->human, EVENTS_HUMAN_MAX);
	events_set_file(ev, file_path);
}

int
events_reopen(struct events *ev)
{
	int fd;

	if (ev->file_path == NULL)
		return 0;
	if ((fd = events_open_append(ev->file_path)) < 0) {
		log_warn("reopen events file %s (keeping the old one)",
		         ev->file_path);
		return -1;
	}
	if (ev->fd >= 0)
		(void)close(
		        ev->fd); /* written with write(2): nothing pending */
	ev->fd = fd;
	ev->torn = false; /* a new file starts at a line's beginning */
	return 0;
}

void
events_set_file(struct events *ev, const char *file_path)
{
	if (ev->fd >= 0)
		(void)close(ev->fd);
	free(ev->file_path);
	ev->fd = -1;
	ev->torn = false;
	ev->file_path = file_path ? xstrdup(file_path) : NULL;
	if (file_path != NULL && (ev->fd = events_open_append(file_path)) < 0)
		log_warn("events file %s", file_path);
}

void
events_close(struct events *ev)
{
	events_set_file(ev, NULL);
	text_buf_free(&ev->detail);
	text_buf_free(&ev->json);
	text_buf_free(&ev->human);
}

void
events_format_time(int64_t ms, char *buf, size_t len, int full)
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

/* ,"key":"escaped value" within a budget; true if the value was cut. */
static bool
events_json_str(struct text_buf *b, const char *key, const char *s,
                size_t budget)
{
	text_buf_printf(b, ",\"%s\":", key);
	return text_json_escape_cut(b, s, strlen(s), budget) != 0;
}

/* The extra typed fields; true if any was cut or left out. */
static bool
events_json_fields(const struct event *e, struct text_buf *b)
{
	size_t n =
	        e->nfields < EVENTS_FIELDS_MAX ? e->nfields : EVENTS_FIELDS_MAX;
	bool cut = n < e->nfields;

	for (size_t i = 0; i < n; i++) {
		const struct event_field *f = &e->fields[i];

		text_buf_append(b, ",", 1);
		cut |= text_json_escape_cut(b, f->key, strlen(f->key),
		                            EVENTS_FIELD_KEY_MAX) != 0;
		text_buf_append(b, ":", 1);
		if (f->type == EVENT_UINT)
			text_buf_printf(b, "%llu", (unsigned long long)f->u);
		else if (f->type == EVENT_DOUBLE)
			text_json_number(b, f->d);
		else if (f->s == NULL)
			text_buf_append(b, "null", 4);
		else
			cut |= text_json_escape_cut(b, f->s, strlen(f->s),
			                            EVENTS_FIELD_VALUE_MAX) !=
			       0;
	}
	return cut;
}

void
events_json(const struct event *e, struct text_buf *b)
{
	char when[80];
	bool cut;

	text_buf_reset(b);
	events_format_time(e->time_ms, when, sizeof when, 1);
	text_buf_printf(b, "{\"seq\":%llu,", (unsigned long long)e->seq);
	if (e->run_ms != 0) /* which agentsupd: seq starts at 1 in each */
		text_buf_printf(b, "\"run\":%lld,", (long long)e->run_ms);
	text_buf_printf(b, "\"time\":\"%s\",\"time_ms\":%lld,\"kind\":\"%s\"",
	                when, (long long)e->time_ms, events_kind_name(e->kind));
	cut = events_json_str(b, "path", e->path, EVENTS_PATH_MAX);
	text_buf_printf(b, ",\"pid\":%ld,\"restarts\":%lu", (long)e->pid,
	                e->restarts);
	if (e->reason != NULL)
		cut |= events_json_str(b, "reason", e->reason,
		                       EVENTS_REASON_MAX);
	if (e->detail != NULL)
		cut |= events_json_str(b, "detail", e->detail,
		                       EVENTS_DETAIL_MAX);
	if (e->tail != NULL)
		cut |= events_json_str(b, "tail", e->tail, EVENTS_TAIL_MAX);
	cut |= events_json_fields(e, b);
	if (cut)
		text_buf_append(b, ",\"truncated\":true", 17);
	text_buf_append(b, "}", 1);
}

static const char *
events_color(enum event_tone t)
{
	switch (t) {
	case EVENT_GOOD:
		return "\033[32m";
	case EVENT_WARN:
		return "\033[33m";
	case EVENT_BAD:
		return "\033[1;31m";
	case EVENT_RETRY:
		return "\033[36m";
	default:
		return "";
	}
}

/* Append " key=value" for each extra field, escaped for a terminal. */
static void
events_human_fields(const struct event *e, struct text_buf *b)
{
	for (size_t i = 0; i < e->nfields && i < EVENTS_FIELDS_MAX; i++) {
		const struct event_field *f = &e->fields[i];

		text_buf_append(b, " ", 1);
		text_term_escape_cut(b, f->key, strlen(f->key),
		                     EVENTS_FIELD_KEY_MAX);
		text_buf_append(b, "=", 1);
		if (f->type == EVENT_UINT)
			text_buf_printf(b, "%llu", (unsigned long long)f->u);
		else if (f->type == EVENT_DOUBLE)
			text_buf_printf(b, "%g", f->d);
		else if (f->s != NULL)
			text_term_escape_cut(b, f->s, strlen(f->s),
			                     EVENTS_FIELD_VALUE_MAX / 4);
	}
}

/* "12:00:01.234 root/research/fetcher  exited  pid 812 exit:1 ..." */
static void
events_human(struct events *ev, const struct event *e)
{
	struct text_buf *b = &ev->human;
	const char *on =
	        ev->color ? events_color(events_kinds[e->kind].tone) : "";
	const char *off = *on ? "\033[0m" : "";
	size_t at;
	char when[80];

	text_buf_reset(b);
	events_format_time(e->time_ms, when, sizeof when, 0);
	text_buf_printf(b, "%s ", when);
	at = b->len;
	text_term_escape_cut(b, e->path, strlen(e->path), EVENTS_PATH_MAX / 2);
	text_buf_printf(b, "%*s %s%-14s%s",
	                b->len - at < 28 ? (int)(28 - (b->len - at)) : 0, "",
	                on, events_kind_name(e->kind), off);
	if (e->pid > 0)
		text_buf_printf(b, " pid %ld", (long)e->pid);
	if (e->reason != NULL) {
		text_buf_append(b, " ", 1);
		text_term_escape_cut(b, e->reason, strlen(e->reason),
		                     EVENTS_REASON_MAX);
	}
	if (e->detail != NULL) {
		text_buf_append(b, "  ", 2);
		text_term_escape_cut(b, e->detail, strlen(e->detail),
		                     EVENTS_HUMAN_DETAIL_MAX);
	}
	events_human_fields(e, b);
	for (at = b->len; at > 0 && b->data[at - 1] == ' '; at--)
		; /* the padding of a last empty column */
	text_buf_truncate(b, at);
	text_buf_append(b, "\n", 1);
	log_line(b->data, b->len);
}

/* Take back the n bytes of a line the file took only in part. */
static void
events_file_unwrite(struct events *ev, size_t n)
{
	off_t end = lseek(ev->fd, 0, SEEK_CUR);

	if (end >= (off_t)n && ftruncate(ev->fd, end - (off_t)n) == 0)
		return;
	log_warn("events file %s: cannot take back a cut line", ev->file_path);
	ev->torn = true;
}

/* One whole line in one write(2), or nothing: 0, or -1 with errno. */
static int
events_file_put(struct events *ev, const char *line, size_t len)
{
	ssize_t n;

	if (ev->torn) { /* end the fragment left behind: never glue to it */
		if (ev->write_fn(ev->fd, "\n", 1) != 1)
			return -1;
		ev->torn = false;
	}
	do
		n = ev->write_fn(ev->fd, line, len);
	while (n < 0 && errno == EINTR);
	if (n == (ssize_t)len)
		return 0;
	if (n >= 0) {
		if (n > 0)
			events_file_unwrite(ev, (size_t)n);
		errno = n > 0 ? ENOSPC : EIO; /* what a short write means */
	}
	return -1;
}

/* The line that says how many events the file lost, once it works again. */
static int
events_file_say_lost(struct events *ev, int64_t now_ms)
{
	char when[80], line[320];
	int n;

	events_format_time(now_ms, when, sizeof when, 1);
	n = snprintf(
	        line, sizeof line,
	        "{\"time\":\"%s\",\"kind\":\"events_dropped\",\"count\":%llu,"
	        "\"first_seq\":%llu,\"last_seq\":%llu,\"reason\":\"%s\"}\n",
	        when, (unsigned long long)ev->lost,
	        (unsigned long long)ev->lost_first_seq,
	        (unsigned long long)ev->lost_last_seq,
	        strerror(ev->lost_errno));
	if (n < 0 || (size_t)n >= sizeof line) /* strerror is short ASCII */
		return -1;
	if (events_file_put(ev, line, (size_t)n) < 0)
		return -1;
	log_warnx("events file %s: writing again; %llu events were lost",
	          ev->file_path, (unsigned long long)ev->lost);
	ev->lost = 0;
	return 0;
}

/* Count a restart under its reason's kind ("exit:1" counts as "exit"). */
static void
events_count_restart(struct events *ev, const char *reason)
{
	size_t n = strcspn(reason, ":"), i;

	if (n >= sizeof ev->restarts[0].reason)
		n = sizeof ev->restarts[0].reason - 1;
	for (i = 0; i < ev->nrestarts; i++)
		if (strncmp(ev->restarts[i].reason, reason, n) == 0 &&
		    ev->restarts[i].reason[n] == '\0')
			break;
	if (i == ev->nrestarts && i >= EVENTS_MAX_REASONS - 1) {
		reason = "other";
		n = strlen(reason);
		for (i = 0; i < ev->nrestarts; i++)
			if (strcmp(ev->restarts[i].reason, reason) == 0)
				break;
	}
	if (i == ev->nrestarts) {
		memcpy(ev->restarts[i].reason, reason, n);
		ev->restarts[i].reason[n] = '\0';
		ev->nrestarts++;
	}
	ev->restarts[i].n++;
}

/* The event's JSON line (in ev->json, newline added) into the file. */
static void
events_file_write(struct events *ev, const struct event *e)
{
	int err;

	text_buf_append(&ev->json, "\n", 1);
	if ((ev->lost == 0 || events_file_say_lost(ev, e->time_ms) == 0) &&
	    events_file_put(ev, ev->json.data, ev->json.len) == 0)
		goto done;
	err = errno;
	if (ev->lost++ == 0) {
		ev->lost_first_seq = e->seq;
		ev->lost_errno = err;
		errno = err;
		log_warn("events file %s: counting the events it loses",
		         ev->file_path);
	}
	ev->lost_last_seq = e->seq;
done:
	text_buf_truncate(&ev->json, ev->json.len - 1);
}

void
events_emit_ex(struct events *ev, const struct event *in)
{
	struct event e = *in;
	struct timespec ts;
	char *tail = NULL;

	clock_gettime(CLOCK_REALTIME, &ts);
	e.seq = ++ev->seq;
	e.run_ms = ev->run_ms;
	e.time_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	ev->counts[e.kind]++;
	if (e.kind == EV_RESTARTING && e.reason != NULL)
		events_count_restart(ev, e.reason);
	if (e.tail == NULL && ev->tail != NULL && e.kind != EV_EXITED &&
	    events_kind_failure(e.kind) && e.path != NULL) {
		tail = xmalloc(EVENTS_TAIL_TAKEN);
		if (ev->tail(ev->tail_arg, e.path, tail, EVENTS_TAIL_TAKEN) > 0)
			e.tail = tail;
	}
	/* the file first: whoever sees the line on stderr finds it there */
	if (ev->fd >= 0 || ev->sink != NULL)
		events_json(&e, &ev->json);
	if (ev->fd >= 0)
		events_file_write(ev, &e);
	events_human(ev, &e);
	if (ev->sink != NULL)
		ev->sink(ev->sink_arg, &e, ev->json.data);
	free(tail);
}

void
events_emit(struct events *ev, enum event_kind kind, const char *path,
            pid_t pid, const char *reason, unsigned long restarts,
            const char *fmt, ...)
{
	struct event e = {.kind = kind,
	                  .path = path,
	                  .pid = pid,
	                  .reason = reason,
	                  .restarts = restarts};
	va_list ap;

	if (fmt != NULL) {
		text_buf_reset(&ev->detail);
		va_start(ap, fmt);
		if (!text_buf_vprintf(&ev->detail, fmt, ap))
			text_buf_printf(&ev->detail,
			                "(a detail over %d bytes was left out)",
			                EVENTS_DETAIL_FORMAT_MAX);
		va_end(ap);
		e.detail = ev->detail.len > 0 ? ev->detail.data : NULL;
	}
	events_emit_ex(ev, &e);
}
