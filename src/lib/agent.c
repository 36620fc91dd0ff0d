/*
 * agent.c - libagentsup, the worker's client of the agentsup protocol.
 *
 * All state is in the handle; all I/O says MSG_DONTWAIT, so the descriptor
 * can stay blocking for whoever else looks at it. Input goes through the one
 * frame reader (wire.c); output is queued whole, frame by frame, and sent as
 * the socket takes it: a full socket delays frames, it never cuts one.
 * The messages themselves (encoding and handling) are in agent_msg.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "agent_int.h"

/* A variable of the environment into dst, cut to fit. */
static void
agent_copy_env(char *dst, size_t len, const char *var)
{
	const char *v = getenv(var);

	dst[0] = '\0';
	if (v != NULL) {
		strncpy(dst, v, len - 1);
		dst[len - 1] = '\0';
	}
}

static int
agent_parse_fd(const char *s)
{
	char *end;
	long v;

	if (s == NULL || *s == '\0')
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < 0 || v > 1 << 20)
		return -1;
	return (int)v;
}

/* Send what is queued, as far as the socket takes it now. */
int
agentsup_agent_flush(struct agentsup *a)
{
	while (a->outlen > a->outoff) {
		ssize_t n =
		        send(a->fd, a->out + a->outoff, a->outlen - a->outoff,
		             MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
		a->outoff += (size_t)n;
	}
	a->outoff = a->outlen = 0;
	if (a->outcap > AGENT_KEEP_OUT) { /* a big checkpoint went out */
		free(a->out);
		a->out = NULL;
		a->outcap = 0;
	}
	return 0;
}

/* Room for n more bytes of output; EAGAIN past the bound. */
static int
agent_out_room(struct agentsup *a, size_t n)
{
	size_t cap;
	uint8_t *p;

	if (a->outoff > 0) {
		memmove(a->out, a->out + a->outoff, a->outlen - a->outoff);
		a->outlen -= a->outoff;
		a->outoff = 0;
	}
	if (a->outlen > 0 && a->outlen + n > AGENT_MAX_OUT) {
		errno = EAGAIN; /* agentsupd is not reading */
		return -1;
	}
	if (a->outlen + n <= a->outcap)
		return 0;
	cap = a->outcap ? a->outcap : 4096;
	while (cap < a->outlen + n)
		cap *= 2;
	if ((p = realloc(a->out, cap)) == NULL)
		return -1;
	a->out = p;
	a->outcap = cap;
	return 0;
}

/* Read and handle every frame that already came; -1 with errno (EPIPE
 * once agentsupd is gone, EPROTO on a bad frame). Not reentrant: a
 * callback that sends reads nothing more. */
static int
agent_read_all(struct agentsup *a)
{
	int r;

	if (a->reading)
		return 0;
	a->reading = 1;
	do
		r = agentsup_reader_read(&a->reader, a->fd, AGENT_MAX_IN,
		                         &a->zone, agentsup_msg_on_frame, a);
	while (r > 0);
	a->reading = 0;
	if (r == AGENTSUP_READ_AGAIN)
		return 0;
	if (r == 0 || (r == AGENTSUP_READ_ERRNO && errno == ECONNRESET))
		errno = EPIPE; /* gone, with our frames unread or not */
	else if (r != AGENTSUP_READ_ERRNO && r != AGENTSUP_READ_STOPPED)
		errno = EPROTO; /* a bad frame; the callback sets its own */
	return -1;
}

/* After a send, what came meanwhile (acks, a drain, a nudge): a worker
 * that only sends sees checkpoint_acked move, and agentsupd's frames never
 * fill its socket. An end of the channel is seen again by the next
 * agentsup_process; a frame's error (read, so gone) is kept for it. */
static void
agent_read_sent(struct agentsup *a)
{
	if (agent_read_all(a) < 0 && errno != EPIPE && a->in_errno == 0)
		a->in_errno = errno;
}

int
agentsup_agent_send(struct agentsup *a)
{
	if (agentsup_wire_end(&a->sb, a->max_send) < 0) {
		errno = EMSGSIZE;
		return -1;
	}
	if (agentsup_agent_flush(a) < 0 || agent_out_room(a, a->sb.size) < 0)
		return -1;
	memcpy(a->out + a->outlen, a->sb.data, a->sb.size);
	a->outlen += a->sb.size;
	if (a->sb.alloc > AGENT_KEEP_OUT) { /* do not keep a big encoder */
		msgpack_sbuffer_destroy(&a->sb);
		msgpack_sbuffer_init(&a->sb);
	}
	if (agentsup_agent_flush(a) < 0)
		return -1;
	agent_read_sent(a);
	return 0;
}

/* agentsupd's end of a socketpair: an unnamed Unix stream socket. A
 * stale AGENTSUP_FD whose number is now another socket's (a program the
 * worker ran, with its own connection there) is not the channel: hello
 * went to that peer. */
static int
agent_is_channel(int fd)
{
	struct stat st;
	struct sockaddr_un peer;
	socklen_t len = sizeof peer;
	int type;
	socklen_t tlen = sizeof type;

	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISSOCK(st.st_mode))
		return 0;
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tlen) < 0 ||
	    type != SOCK_STREAM)
		return 0;
	return getpeername(fd, (struct sockaddr *)&peer, &len) == 0 &&
	       peer.sun_family == AF_UNIX && len == sizeof(sa_family_t);
}

/* Not supervised: no name, path or heartbeat, though a process a worker
 * runs keeps its AGENTSUP_NAME, AGENTSUP_PATH and AGENTSUP_HEARTBEAT_MS. */
static struct agentsup *
agent_unsupervised(struct agentsup *a)
{
	a->fd = -1;
	a->name[0] = a->path[0] = '\0';
	a->heartbeat_ms = 0;
	a->incarnation = 0;
	return a;
}

struct agentsup *
agentsup_open(const char *lang)
{
	struct agentsup *a = calloc(1, sizeof *a);
	const char *v;

	if (a == NULL)
		return NULL;
	if (!msgpack_zone_init(&a->zone, 1024)) {
		free(a);
		return NULL;
	}
	msgpack_sbuffer_init(&a->sb);
	agentsup_reader_init(&a->reader);
	a->max_send = AGENTSUP_MAX_FRAME;
	a->ckpt_max = UINT64_MAX; /* until welcome says */
	a->fd = agent_parse_fd(getenv(AGENTSUP_ENV_FD));
	agent_copy_env(a->name, sizeof a->name, AGENTSUP_ENV_NAME);
	agent_copy_env(a->path, sizeof a->path, AGENTSUP_ENV_PATH);
	if ((v = getenv(AGENTSUP_ENV_INCARNATION)) != NULL)
		a->incarnation = strtoul(v, NULL, 10);
	if ((v = getenv(AGENTSUP_ENV_HEARTBEAT_MS)) != NULL)
		a->heartbeat_ms = strtoull(v, NULL, 10);
	/* not the channel (a stale AGENTSUP_FD whose number is now another
	 * file's or socket's: left as it is) or one we cannot use: run
	 * unsupervised; the hello reads nothing (no callback is set yet) */
	a->reading = 1;
	if (!agent_is_channel(a->fd) || fcntl(a->fd, F_SETFD, FD_CLOEXEC) < 0 ||
	    agentsup_msg_hello(a, lang) < 0)
		return agent_unsupervised(a);
	a->reading = 0;
	/* connected: nothing this process runs may speak for it */
	unsetenv(AGENTSUP_ENV_FD);
	return a;
}

void
agentsup_close(struct agentsup *a)
{
	if (a == NULL)
		return;
	if (a->fd >= 0) {
		agentsup_agent_flush(a);
		close(a->fd);
	}
	msgpack_sbuffer_destroy(&a->sb);
	msgpack_zone_destroy(&a->zone);
	agentsup_reader_free(&a->reader);
	free(a->out);
	free(a->restored);
	free(a);
}

int
agentsup_supervised(const struct agentsup *a)
{
	return a->fd >= 0;
}

int
agentsup_fd(const struct agentsup *a)
{
	return a->fd;
}

int
agentsup_want_write(const struct agentsup *a)
{
	return a->fd >= 0 && a->outlen > a->outoff;
}

int
agentsup_process(struct agentsup *a)
{
	if (a->fd < 0)
		return 0;
	if (a->in_errno != 0) {
		errno = a->in_errno;
		a->in_errno = 0;
		return -1;
	}
	if (agentsup_agent_flush(a) < 0)
		return -1;
	return agent_read_all(a);
}

static uint64_t
agent_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Process input (and output) until done(a) or timeout_ms has passed:
 * 0 when done, 1 at the deadline, -1 on error. */
static int
agent_wait_until(struct agentsup *a, int timeout_ms,
                 int (*done)(const struct agentsup *), int intr)
{
	uint64_t end =
	        agent_now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
	struct pollfd p;

	for (;;) {
		uint64_t now = agent_now_ms();
		/* a bad frame a send already read: said now, not after the
		 * whole wait (the socket stays quiet) */
		if (a->in_errno != 0 && agentsup_process(a) < 0)
			return -1;
		if (done(a))
			return 0;
		if (now >= end)
			return 1;
		p = (struct pollfd){.fd = a->fd, .events = POLLIN};
		if (agentsup_want_write(a))
			p.events |= POLLOUT;
		if (poll(&p, 1, (int)(end - now)) < 0) {
			if (errno == EINTR && intr)
				return 1; /* a handler ran: seen at once */
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (p.revents != 0 && agentsup_process(a) < 0)
			return -1;
	}
}

static int
agent_is_draining(const struct agentsup *a)
{
	return a->draining;
}

static int
agent_is_flushed(const struct agentsup *a)
{
	return a->outlen == a->outoff;
}

static int
agent_is_welcomed(const struct agentsup *a)
{
	return a->welcomed;
}

int
agentsup_wait(struct agentsup *a, int timeout_ms)
{
	if (a->fd < 0) {
		struct timespec ts = {timeout_ms / 1000,
		                      (long)(timeout_ms % 1000) * 1000000};
		(void)nanosleep(&ts, NULL); /* EINTR: a handler ran */
		return 0;
	}
	return agent_wait_until(a, timeout_ms, agent_is_draining, 1) < 0 ? -1
	                                                                 : 0;
}

/* A wait that must end in its condition: ETIMEDOUT otherwise. */
static int
agent_wait_for(struct agentsup *a, int timeout_ms,
               int (*done)(const struct agentsup *))
{
	int r;

	if (a->fd < 0)
		return 0;
	if ((r = agent_wait_until(a, timeout_ms, done, 0)) > 0)
		errno = ETIMEDOUT;
	return r == 0 ? 0 : -1;
}

int
agentsup_flush(struct agentsup *a, int timeout_ms)
{
	return agent_wait_for(a, timeout_ms, agent_is_flushed);
}

int
agentsup_await_welcome(struct agentsup *a, int timeout_ms)
{
	return agent_wait_for(a, timeout_ms, agent_is_welcomed);
}

void
agentsup_on_nudge(struct agentsup *a, agentsup_nudge_fn fn, void *arg)
{
	a->on_nudge = fn;
	a->nudge_arg = arg;
}

void
agentsup_on_spawned(struct agentsup *a, agentsup_spawned_fn fn, void *arg)
{
	a->on_spawned = fn;
	a->spawned_arg = arg;
}

int
agentsup_draining(const struct agentsup *a, uint64_t *deadline_ms)
{
	if (deadline_ms != NULL)
		*deadline_ms = a->drain_deadline_ms;
	return a->draining;
}

uint64_t
agentsup_heartbeat_ms(const struct agentsup *a)
{
	return a->heartbeat_ms;
}

int
agentsup_beat_interval_ms(const struct agentsup *a)
{
	if (a->heartbeat_ms == 0)
		return 1000;
	if (a->heartbeat_ms / 3 > INT_MAX) /* heartbeat: 2000h: not negative */
		return INT_MAX;
	return a->heartbeat_ms / 3 > 0 ? (int)(a->heartbeat_ms / 3) : 1;
}

const char *
agentsup_name(const struct agentsup *a)
{
	return a->name;
}

const char *
agentsup_path(const struct agentsup *a)
{
	return a->path;
}

unsigned long
agentsup_incarnation(const struct agentsup *a)
{
	return a->incarnation;
}

int
agentsup_welcomed(const struct agentsup *a)
{
	return a->welcomed;
}

unsigned long
agentsup_restarts(const struct agentsup *a)
{
	return a->restarts;
}

const char *
agentsup_last_reason(const struct agentsup *a)
{
	return a->last_reason;
}

const void *
agentsup_restored_checkpoint(const struct agentsup *a, size_t *len)
{
	if (len != NULL)
		*len = a->restored_len;
	return a->restored;
}

uint64_t
agentsup_restored_seq(const struct agentsup *a)
{
	return a->restored_seq;
}

uint64_t
agentsup_checkpoint_acked(const struct agentsup *a)
{
	return a->ckpt_acked;
}
