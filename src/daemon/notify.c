/*
 * notify.c - sd_notify both ways: the datagram parser, the socket workers
 * notify, and agentsupd's own messages to the systemd above it.
 *
 * The socket workers notify is one per daemon, bound to an abstract name the
 * kernel picks (autobind), so two daemons never collide and nothing is left
 * on disk. SO_PASSCRED makes the kernel attach the sender's credentials to
 * every datagram: a sender cannot claim to be someone else.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "notify.h"
#include "util.h"

/* --- the parser (pure) --------------------------------------------------- */

static bool
notify_is(const char *key, size_t klen, const char *want)
{
	return klen == strlen(want) && memcmp(key, want, klen) == 0;
}

static bool
notify_value_is(const char *v, size_t vlen, const char *want)
{
	return notify_is(v, vlen, want);
}

/* A decimal microsecond count; false when not one (or it overflows). */
static bool
notify_parse_usec(const char *v, size_t vlen, uint64_t *out)
{
	uint64_t n = 0;

	if (vlen == 0 || vlen > 20)
		return false;
	for (size_t i = 0; i < vlen; i++) {
		unsigned d = (unsigned)(v[i] - '0');
		if (d > 9 || n > (UINT64_MAX - d) / 10)
			return false;
		n = n * 10 + d;
	}
	*out = n;
	return true;
}

/* One KEY=VALUE line; true when it was understood. */
static bool
notify_assign(const char *k, size_t klen, const char *v, size_t vlen,
              struct notify_msg *m)
{
	if (notify_is(k, klen, "READY") && notify_value_is(v, vlen, "1"))
		return (m->ready = true);
	if (notify_is(k, klen, "RELOADING") && notify_value_is(v, vlen, "1"))
		return (m->reloading = true);
	if (notify_is(k, klen, "STOPPING") && notify_value_is(v, vlen, "1"))
		return (m->stopping = true);
	if (notify_is(k, klen, "WATCHDOG") && notify_value_is(v, vlen, "1"))
		return (m->watchdog = true);
	if (notify_is(k, klen, "WATCHDOG") &&
	    notify_value_is(v, vlen, "trigger"))
		return (m->watchdog_trigger = true);
	if (notify_is(k, klen, "STATUS")) {
		m->has_status = true;
		m->status = v;
		m->status_len = vlen;
		return true;
	}
	if (notify_is(k, klen, "EXTEND_TIMEOUT_USEC") &&
	    notify_parse_usec(v, vlen, &m->extend_usec))
		return (m->has_extend = true);
	return false;
}

int
notify_parse(const char *buf, size_t len, struct notify_msg *m)
{
	size_t at = 0;
	int understood = 0;

	memset(m, 0, sizeof *m);
	if (len > 0 && memchr(buf, '\0', len) != NULL)
		return -1;
	while (at < len) {
		const char *line = buf + at, *nl, *eq;
		size_t llen;

		nl = memchr(line, '\n', len - at);
		llen = nl ? (size_t)(nl - line) : len - at;
		at += llen + (nl != NULL);
		if (llen == 0)
			continue;
		eq = memchr(line, '=', llen);
		if (eq != NULL && eq != line &&
		    notify_assign(line, (size_t)(eq - line), eq + 1,
		                  llen - (size_t)(eq - line) - 1, m))
			understood++;
		else
			m->ignored++;
	}
	return understood;
}

/* --- down: the socket workers notify ------------------------------------- */

struct notify_server {
	struct ev_loop *loop;
	int fd;
	ev_io io;
	notify_fn cb;
	void *arg;
	char address[sizeof(((struct sockaddr_un *)0)->sun_path) + 1];
	struct notify_counts counts;
	bool warned_read, warned_oversized, warned_invalid, warned_unknown;
};

/* Close any descriptor a sender passed (FDSTORE=1 and the like): we keep
 * none, and each would otherwise leak into the daemon. */
static const struct ucred *
notify_take_cmsgs(struct msghdr *mh)
{
	const struct ucred *cred = NULL;

	for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c != NULL;
	     c = CMSG_NXTHDR(mh, c)) {
		if (c->cmsg_level != SOL_SOCKET)
			continue;
		if (c->cmsg_type == SCM_CREDENTIALS &&
		    c->cmsg_len == CMSG_LEN(sizeof(struct ucred)))
			cred = (const struct ucred *)(void *)CMSG_DATA(c);
		else if (c->cmsg_type == SCM_RIGHTS) {
			size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			int fds[64];
			memcpy(fds, CMSG_DATA(c),
			       (n < 64 ? n : 64) * sizeof(int));
			for (size_t i = 0; i < n && i < 64; i++)
				close(fds[i]);
		}
	}
	return cred;
}

/* Log the first drop of each kind; the counts say how many followed. */
static void
notify_drop(bool *warned, const char *what, pid_t pid)
{
	if (*warned)
		return;
	*warned = true;
	log_warnx("notify socket: dropped a datagram from pid %ld: %s (further "
	          "ones are counted, not logged)",
	          (long)pid, what);
}

/* Handle one datagram in buf; len is its real size (MSG_TRUNC). */
static void
notify_server_handle(struct notify_server *s, const char *buf, size_t len,
                     const struct ucred *cred)
{
	struct notify_msg m;
	pid_t pgid;

	if (cred == NULL) {
		s->counts.nocred++;
		return;
	}
	if (len > NOTIFY_MAX_DATAGRAM) {
		s->counts.oversized++;
		notify_drop(&s->warned_oversized, "over 4096 bytes", cred->pid);
		return;
	}
	if (notify_parse(buf, len, &m) < 0) {
		s->counts.invalid++;
		notify_drop(&s->warned_invalid, "not text", cred->pid);
		return;
	}
	pgid = getpgid(cred->pid); /* -1 when the sender is already gone */
	if (!s->cb(s->arg, cred->pid, pgid, cred->uid, &m)) {
		s->counts.unknown++;
		notify_drop(&s->warned_unknown, "not a notify worker's",
		            cred->pid);
		return;
	}
	s->counts.received++;
}

/* Read one datagram; false when none is left (or reading failed). */
static bool
notify_server_read_one(struct notify_server *s)
{
	char buf[NOTIFY_MAX_DATAGRAM + 1];
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(struct ucred)) +
		         CMSG_SPACE(sizeof(int) * 64)];
	} ctl;
	struct iovec iov = {buf, sizeof buf};
	struct msghdr mh = {.msg_iov = &iov,
	                    .msg_iovlen = 1,
	                    .msg_control = ctl.buf,
	                    .msg_controllen = sizeof ctl.buf};
	ssize_t n;

	n = recvmsg(s->fd, &mh, MSG_DONTWAIT | MSG_TRUNC | MSG_CMSG_CLOEXEC);
	if (n < 0) {
		if (errno != EAGAIN && errno != EINTR && !s->warned_read) {
			s->warned_read = true;
			log_warn("notify socket: recvmsg");
		}
		return false;
	}
	notify_server_handle(s, buf, (size_t)n, notify_take_cmsgs(&mh));
	return true;
}

void
notify_server_read_pending(struct notify_server *s)
{
	/* bounded: a flood cannot hold the loop; the rest waits a turn */
	for (int i = 0; i < NOTIFY_BATCH; i++)
		if (!notify_server_read_one(s))
			break;
}

static void
notify_server_read_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	(void)loop;
	(void)revents;
	notify_server_read_pending(io->data);
}

/* Bind to a kernel-chosen abstract name and remember it as "@name". */
static int
notify_server_bind(struct notify_server *s, const char **why)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	socklen_t salen = sizeof(sa_family_t);
	int on = 1;
	size_t n;

	if (setsockopt(s->fd, SOL_SOCKET, SO_PASSCRED, &on, sizeof on) < 0) {
		*why = "setsockopt SO_PASSCRED";
		return -1;
	}
	if (bind(s->fd, (struct sockaddr *)&sa, salen) < 0) {
		*why = "bind (autobind)";
		return -1;
	}
	salen = sizeof sa;
	if (getsockname(s->fd, (struct sockaddr *)&sa, &salen) < 0) {
		*why = "getsockname";
		return -1;
	}
	n = salen - offsetof(struct sockaddr_un, sun_path);
	if (n < 2 || n > sizeof sa.sun_path || sa.sun_path[0] != '\0' ||
	    memchr(sa.sun_path + 1, '\0', n - 1) != NULL) {
		*why = "the kernel gave an unexpected name";
		return -1;
	}
	s->address[0] = '@';
	memcpy(s->address + 1, sa.sun_path + 1, n - 1);
	s->address[n] = '\0';
	return 0;
}

struct notify_server *
notify_server_open(struct ev_loop *loop, notify_fn cb, void *arg,
                   const char **why)
{
	struct notify_server *s = xcalloc(1, sizeof *s);

	s->loop = loop;
	s->cb = cb;
	s->arg = arg;
	s->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (s->fd < 0) {
		*why = strerror(errno);
		free(s);
		return NULL;
	}
	if (notify_server_bind(s, why) < 0) {
		close(s->fd);
		free(s);
		return NULL;
	}
	ev_io_init(&s->io, notify_server_read_cb, s->fd, EV_READ);
	s->io.data = s;
	ev_io_start(loop, &s->io);
	return s;
}

const char *
notify_server_address(const struct notify_server *s)
{
	return s->address;
}

const struct notify_counts *
notify_server_counts(const struct notify_server *s)
{
	return &s->counts;
}

void
notify_server_close(struct notify_server *s)
{
	if (s == NULL)
		return;
	ev_io_stop(s->loop, &s->io);
	close(s->fd);
	free(s);
}

/* --- up: agentsupd -> systemd -------------------------------------------- */

struct notify_up {
	struct ev_loop *loop;
	int fd;
	struct sockaddr_un addr;
	socklen_t addrlen;
	uint64_t watchdog_usec;
	ev_timer watchdog;
	bool warned;
};

/* "/path" or "@abstract" into a sockaddr; -1 if neither fits. */
static int
notify_up_address(struct notify_up *u, const char *where, const char **why)
{
	size_t n = strlen(where);

	if ((where[0] != '/' && where[0] != '@') || n < 2) {
		*why = "NOTIFY_SOCKET is neither an absolute path nor "
		       "@abstract";
		return -1;
	}
	if (n >= sizeof u->addr.sun_path) {
		*why = "NOTIFY_SOCKET is too long";
		return -1;
	}
	u->addr.sun_family = AF_UNIX;
	memcpy(u->addr.sun_path, where, n);
	if (where[0] == '@') {
		u->addr.sun_path[0] = '\0';
		u->addrlen =
		        (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
	} else {
		u->addrlen =
		        (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n +
		                    1);
	}
	return 0;
}

/* The watchdog interval, when it is meant for this process. */
static uint64_t
notify_up_watchdog_of(const char *usec, const char *pid)
{
	uint64_t v = 0, p = 0;

	if (usec == NULL || !notify_parse_usec(usec, strlen(usec), &v))
		return 0;
	if (pid != NULL && *pid != '\0' &&
	    (!notify_parse_usec(pid, strlen(pid), &p) ||
	     p != (uint64_t)getpid()))
		return 0;
	return v;
}

static void
notify_up_watchdog_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)loop;
	(void)revents;
	notify_up_send(t->data, "WATCHDOG=1");
}

struct notify_up *
notify_up_open(struct ev_loop *loop, const char *where,
               const char *watchdog_usec, const char *watchdog_pid,
               const char **why)
{
	struct notify_up *u;

	*why = NULL;
	if (where == NULL || *where == '\0')
		return NULL;
	u = xcalloc(1, sizeof *u);
	u->loop = loop;
	if (notify_up_address(u, where, why) < 0) {
		free(u);
		return NULL;
	}
	u->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (u->fd < 0) {
		*why = strerror(errno);
		free(u);
		return NULL;
	}
	u->watchdog_usec = notify_up_watchdog_of(watchdog_usec, watchdog_pid);
	if (u->watchdog_usec > 0) {
		/* the one periodic wake-up, and only when systemd asks */
		double half = (double)u->watchdog_usec / 2e6;
		ev_timer_init(&u->watchdog, notify_up_watchdog_cb, half, half);
		u->watchdog.data = u;
		ev_timer_start(loop, &u->watchdog);
	}
	return u;
}

void
notify_up_send(struct notify_up *u, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	int n;

	if (u == NULL)
		return;
	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof buf)
		n = sizeof buf - 1; /* a long STATUS= is cut, never dropped */
	if (sendto(u->fd, buf, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL,
	           (struct sockaddr *)&u->addr, u->addrlen) < 0 &&
	    !u->warned) {
		u->warned = true;
		log_warn("NOTIFY_SOCKET: sending to systemd (further failures "
		         "not logged)");
	}
}

void
notify_up_reloading(struct notify_up *u, const char *status)
{
	notify_up_send(u, "RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=%s",
	               (unsigned long long)clock_now_us(), status);
}

uint64_t
notify_up_watchdog_usec(const struct notify_up *u)
{
	return u ? u->watchdog_usec : 0;
}

void
notify_up_close(struct notify_up *u)
{
	if (u == NULL)
		return;
	if (u->watchdog_usec > 0)
		ev_timer_stop(u->loop, &u->watchdog);
	close(u->fd);
	free(u);
}
