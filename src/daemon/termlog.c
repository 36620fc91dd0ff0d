/*
 * termlog.c - the termination record: how agentsupd ended, in the 4 KiB a
 * container orchestrator keeps after the process is gone. The newest events
 * that fit are kept whole (never a cut JSON object), oldest first.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "termlog.h"
#include "util.h"

#define TERMLOG_EVENT_MAX TERMLOG_MAX /* a longer one could never fit */
#define TERMLOG_PATH_MAX  512

struct termlog {
	char *ring[TERMLOG_EVENTS]; /* event JSON, oldest at head */
	size_t head, count;
	char failed[TERMLOG_PATH_MAX]; /* the last node that failed */
	char gave_up[TERMLOG_PATH_MAX];
	const char *ended; /* "shutdown", "drained"... as events said */
};

struct termlog *
termlog_new(void)
{
	return xcalloc(1, sizeof(struct termlog));
}

static void
termlog_copy(char *dst, const char *src)
{
	snprintf(dst, TERMLOG_PATH_MAX, "%s", src ? src : "");
}

/* A failure of a node: the one a termination is blamed on. */
static bool
termlog_is_failure(const struct event *e)
{
	switch (e->kind) {
	case EV_EXITED:
		return e->reason != NULL && strcmp(e->reason, "exit:0") != 0 &&
		       (e->detail == NULL ||
		        strncmp(e->detail, "stopped", 7) != 0);
	case EV_HANG:
	case EV_START_TIMEOUT:
	case EV_PROTOCOL_ERROR:
	case EV_FAILED:
	case EV_EXHAUSTED:
	case EV_MEMORY:
		return true;
	default:
		return false;
	}
}

void
termlog_event(struct termlog *t, const struct event *e, const char *json)
{
	size_t len = strlen(json), slot;

	if (termlog_is_failure(e))
		termlog_copy(t->failed, e->path);
	if (e->kind == EV_GAVE_UP && t->gave_up[0] == '\0')
		termlog_copy(t->gave_up, e->path);
	if (e->kind == EV_SHUTDOWN)
		t->ended = "shutdown";
	else if (e->kind == EV_DRAIN_DONE)
		t->ended = "drained";
	if (len > TERMLOG_EVENT_MAX)
		return;
	slot = (t->head + t->count) % TERMLOG_EVENTS;
	if (t->count == TERMLOG_EVENTS) {
		slot = t->head;
		t->head = (t->head + 1) % TERMLOG_EVENTS;
		free(t->ring[slot]);
	} else {
		t->count++;
	}
	t->ring[slot] = xstrdup(json);
}

static const char *
termlog_reason(const struct termlog *t, int status)
{
	switch (status) {
	case 0:
		return t->ended ? t->ended : "exited";
	case 75:
		return "gave_up";
	case 79:
		return "exhausted";
	case 73:
		return "cantcreat";
	default:
		return "error";
	}
}

/* s as a JSON string body: paths hold no quotes or controls, but a path
 * is never trusted to. */
static size_t
termlog_str(char *buf, size_t at, size_t len, const char *s)
{
	for (; *s != '\0' && at + 7 < len; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			at += (size_t)snprintf(buf + at, len - at, "\\%c", c);
		else if (c < 0x20)
			at += (size_t)snprintf(buf + at, len - at, "\\u%04x",
			                       c);
		else
			buf[at++] = (char)c;
	}
	buf[at] = '\0';
	return at;
}

size_t
termlog_format(const struct termlog *t, int status, char *buf, size_t len)
{
	size_t at, need = 0;
	bool take[TERMLOG_EVENTS] = {false}, comma = false;

	if (len > TERMLOG_MAX + 1)
		len = TERMLOG_MAX + 1;
	at = (size_t)snprintf(buf, len, "{\"status\":%d,\"reason\":\"%s\"",
	                      status, termlog_reason(t, status));
	at += (size_t)snprintf(buf + at, len - at, ",\"node\":\"");
	at = termlog_str(buf, at, len - 600, t->failed);
	at += (size_t)snprintf(buf + at, len - at, "\",\"supervisor\":\"");
	at = termlog_str(buf, at, len - 300, t->gave_up);
	at += (size_t)snprintf(buf + at, len - at, "\",\"events\":[");
	/* the newest that fit, with "]}" and commas; one too long for what
	 * is left is passed over, not the end of the older ones */
	for (size_t i = t->count; i-- > 0;) {
		size_t l = strlen(t->ring[(t->head + i) % TERMLOG_EVENTS]) + 1;
		if (at + need + l + 2 < len) {
			take[i] = true;
			need += l;
		}
	}
	for (size_t i = 0; i < t->count; i++) {
		if (!take[i])
			continue;
		at += (size_t)snprintf(buf + at, len - at, "%s%s",
		                       comma ? "," : "",
		                       t->ring[(t->head + i) % TERMLOG_EVENTS]);
		comma = true;
	}
	at += (size_t)snprintf(buf + at, len - at, "]}");
	return at;
}

int
termlog_write(const struct termlog *t, const char *path, int status)
{
	char buf[TERMLOG_MAX + 1];
	size_t n = termlog_format(t, status, buf, sizeof buf), off = 0;
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	ssize_t w;

	if (fd < 0)
		return -1;
	while (off < n) {
		if ((w = write(fd, buf + off, n - off)) < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			int err = errno;
			close(fd);
			errno = err;
			return -1;
		}
		off += (size_t)w;
	}
	return close(fd);
}

void
termlog_free(struct termlog *t)
{
	if (t == NULL)
		return;
	for (size_t i = 0; i < t->count; i++)
		free(t->ring[(t->head + i) % TERMLOG_EVENTS]);
	free(t);
}
