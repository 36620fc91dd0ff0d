/*
 * agent.c - libagentsup, the worker's client of the agentsup protocol.
 *
 * All state is in the handle; all I/O says MSG_DONTWAIT, so the descriptor
 * can stay blocking for whoever else looks at it. A frame that the socket
 * does not take at once is kept (bounded) and flushed on the next call.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "agentsup/agent.h"
#include "agentsup/wire.h"

#define AGENT_MAX_OUT 8192
#define AGENT_MAX_IN  (AGENTSUP_FRAME_HEADER + AGENTSUP_MAX_FRAME)

struct agentsup {
	int fd; /* -1 when unsupervised or closed */
	char name[128];
	char path[512];
	unsigned long incarnation;
	uint64_t heartbeat_ms;
	uint64_t timeout_ms;
	int welcomed;
	int draining;
	uint64_t drain_deadline_ms;
	uint64_t seq;
	msgpack_sbuffer sb;
	msgpack_zone zone;
	char out[AGENT_MAX_OUT]; /* unsent bytes */
	size_t outlen;
	uint8_t *in; /* partial frame */
	size_t inlen;
};

static void
copy_env(char *dst, size_t len, const char *var)
{
	const char *v = getenv(var);

	dst[0] = '\0';
	if (v != NULL) {
		strncpy(dst, v, len - 1);
		dst[len - 1] = '\0';
	}
}

static int
parse_fd(const char *s)
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

static int
flush_out(struct agentsup *a)
{
	while (a->outlen > 0) {
		ssize_t n = send(a->fd, a->out, a->outlen,
		                 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		memmove(a->out, a->out + n, a->outlen - (size_t)n);
		a->outlen -= (size_t)n;
	}
	return 0;
}

/* Send the frame in a->sb, keeping what the socket does not take now. */
static int
send_frame(struct agentsup *a)
{
	if (agentsup_wire_end(&a->sb, AGENTSUP_MAX_FRAME) < 0) {
		errno = EMSGSIZE;
		return -1;
	}
	if (flush_out(a) < 0 && errno != EAGAIN)
		return -1;
	if (a->outlen + a->sb.size > sizeof a->out) {
		errno = EAGAIN; /* agentsupd is not reading: drop this one */
		return -1;
	}
	memcpy(a->out + a->outlen, a->sb.data, a->sb.size);
	a->outlen += a->sb.size;
	if (flush_out(a) < 0 && errno != EAGAIN)
		return -1;
	return 0;
}

static void
begin(struct agentsup *a, msgpack_packer *pk, size_t fields, const char *t)
{
	msgpack_packer_init(pk, &a->sb, msgpack_sbuffer_write);
	agentsup_wire_begin(&a->sb);
	msgpack_pack_map(pk, fields);
	agentsup_wire_kv_str(pk, "t", t);
}

struct agentsup *
agentsup_open(const char *lang)
{
	struct agentsup *a = calloc(1, sizeof *a);
	const char *hb;
	msgpack_packer pk;

	if (a == NULL)
		return NULL;
	a->fd = parse_fd(getenv(AGENTSUP_ENV_FD));
	copy_env(a->name, sizeof a->name, AGENTSUP_ENV_NAME);
	copy_env(a->path, sizeof a->path, AGENTSUP_ENV_PATH);
	if (getenv(AGENTSUP_ENV_INCARNATION) != NULL)
		a->incarnation =
		        strtoul(getenv(AGENTSUP_ENV_INCARNATION), NULL, 10);
	if ((hb = getenv(AGENTSUP_ENV_HEARTBEAT_MS)) != NULL)
		a->heartbeat_ms = strtoull(hb, NULL, 10);
	msgpack_sbuffer_init(&a->sb);
	if (!msgpack_zone_init(&a->zone, 1024)) {
		free(a);
		return NULL;
	}
	if (a->fd < 0)
		return a;
	begin(a, &pk, lang ? 4 : 3, AGENTSUP_T_HELLO);
	agentsup_wire_kv_uint(&pk, "v", AGENTSUP_PROTOCOL_VERSION);
	agentsup_wire_kv_int(&pk, "pid", getpid());
	if (lang != NULL)
		agentsup_wire_kv_str(&pk, "lang", lang);
	if (send_frame(a) < 0) {
		/* not a socket we can use: run as if unsupervised */
		a->fd = -1;
	}
	return a;
}

void
agentsup_close(struct agentsup *a)
{
	if (a == NULL)
		return;
	if (a->fd >= 0) {
		flush_out(a);
		close(a->fd);
	}
	msgpack_sbuffer_destroy(&a->sb);
	msgpack_zone_destroy(&a->zone);
	free(a->in);
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
agentsup_ready(struct agentsup *a)
{
	msgpack_packer pk;

	if (a->fd < 0)
		return 0;
	begin(a, &pk, 1, AGENTSUP_T_READY);
	return send_frame(a);
}

int
agentsup_beat(struct agentsup *a, const struct agentsup_progress *p,
              const char *status)
{
	msgpack_packer pk;
	size_t nprog = 0;

	if (a->fd < 0)
		return 0;
	if (p != NULL)
		nprog = !!(p->set & AGENTSUP_STEPS) +
		        !!(p->set & AGENTSUP_TOKENS) +
		        !!(p->set & AGENTSUP_COST) +
		        !!((p->set & AGENTSUP_STATE) && p->state);
	begin(a, &pk, 2 + (nprog > 0) + (status != NULL), AGENTSUP_T_HB);
	agentsup_wire_kv_uint(&pk, "seq", ++a->seq);
	if (nprog > 0) {
		agentsup_wire_pack_str(&pk, "progress");
		msgpack_pack_map(&pk, nprog);
		if (p->set & AGENTSUP_STEPS)
			agentsup_wire_kv_uint(&pk, "steps", p->steps);
		if (p->set & AGENTSUP_TOKENS)
			agentsup_wire_kv_uint(&pk, "tokens", p->tokens);
		if (p->set & AGENTSUP_COST) {
			agentsup_wire_pack_str(&pk, "cost");
			msgpack_pack_double(&pk, p->cost);
		}
		if ((p->set & AGENTSUP_STATE) && p->state)
			agentsup_wire_kv_str(&pk, "state", p->state);
	}
	if (status != NULL)
		agentsup_wire_kv_str(&pk, "status", status);
	return send_frame(a);
}

static uint64_t
get_uint(const msgpack_object *m, const char *key)
{
	const msgpack_object *v = agentsup_wire_get(m, key);

	return v && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? v->via.u64 : 0;
}

static void
get_str(const msgpack_object *m, const char *key, char *dst, size_t len)
{
	const msgpack_object *v = agentsup_wire_get(m, key);
	size_t n;

	if (v == NULL || v->type != MSGPACK_OBJECT_STR)
		return;
	n = v->via.str.size < len - 1 ? v->via.str.size : len - 1;
	if (n > 0)
		memcpy(dst, v->via.str.ptr, n);
	dst[n] = '\0';
}

static void
handle(struct agentsup *a, const struct agentsup_frame *f)
{
	if (agentsup_wire_is(f, AGENTSUP_T_WELCOME)) {
		a->welcomed = 1;
		get_str(&f->map, "name", a->name, sizeof a->name);
		get_str(&f->map, "path", a->path, sizeof a->path);
		a->incarnation =
		        (unsigned long)get_uint(&f->map, "incarnation");
		a->heartbeat_ms = get_uint(&f->map, "heartbeat_ms");
		a->timeout_ms = get_uint(&f->map, "timeout_ms");
	} else if (agentsup_wire_is(f, AGENTSUP_T_DRAIN)) {
		a->draining = 1;
		a->drain_deadline_ms = get_uint(&f->map, "deadline_ms");
	}
	/* anything else: a newer daemon; ignored, as the protocol says */
}

int
agentsup_process(struct agentsup *a)
{
	uint8_t buf[4096];
	struct agentsup_frame f;
	size_t used = 0;
	ssize_t n;
	int r;

	if (a->fd < 0)
		return 0;
	if (a->outlen > 0 && flush_out(a) < 0 && errno != EAGAIN)
		return -1;
	for (;;) {
		n = recv(a->fd, buf, sizeof buf, MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (n <= 0) {
			errno = n == 0 ? EPIPE : errno;
			return -1;
		}
		if (a->inlen + (size_t)n > AGENT_MAX_IN) {
			errno = EPROTO;
			return -1;
		}
		uint8_t *in = realloc(a->in, a->inlen + (size_t)n);
		if (in == NULL)
			return -1;
		a->in = in;
		memcpy(a->in + a->inlen, buf, (size_t)n);
		a->inlen += (size_t)n;
		used = 0;
		while ((r = agentsup_wire_decode(a->in + used, a->inlen - used,
		                                 AGENTSUP_MAX_FRAME, &a->zone,
		                                 &f)) == AGENTSUP_WIRE_OK) {
			handle(a, &f);
			msgpack_zone_clear(&a->zone);
			used += f.size;
		}
		if (r != AGENTSUP_WIRE_MORE) {
			errno = EPROTO;
			return -1;
		}
		memmove(a->in, a->in + used, a->inlen - used);
		a->inlen -= used;
	}
}

int
agentsup_wait(struct agentsup *a, int timeout_ms)
{
	struct timespec end, now;
	struct pollfd p;

	if (a->fd < 0) {
		struct timespec ts = {timeout_ms / 1000,
		                      (long)(timeout_ms % 1000) * 1000000};
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
		return 0;
	}
	clock_gettime(CLOCK_MONOTONIC, &end);
	end.tv_sec += timeout_ms / 1000;
	end.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
	if (end.tv_nsec >= 1000000000) {
		end.tv_sec++;
		end.tv_nsec -= 1000000000;
	}
	while (!a->draining) {
		long left;
		clock_gettime(CLOCK_MONOTONIC, &now);
		left = (end.tv_sec - now.tv_sec) * 1000 +
		       (end.tv_nsec - now.tv_nsec) / 1000000;
		if (left <= 0)
			break;
		p = (struct pollfd){.fd = a->fd, .events = POLLIN};
		if (poll(&p, 1, (int)left) < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (p.revents != 0 && agentsup_process(a) < 0)
			return -1;
	}
	return 0;
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
