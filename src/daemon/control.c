/*
 * control.c - the control socket: who gets in, and the bytes to and from
 * each client. What a request does is serve.c's.
 *
 * Every client is bounded: its partial input (one frame), its unsent output,
 * the time from a request's first byte to its last, and how many clients
 * there may be at once, which RLIMIT_NOFILE lowers so that restarts always
 * find descriptors. A full table makes room by dropping the client slowest
 * to finish its request or idle longest, so a crowd of dribbling clients
 * never locks the operator out. A client that breaks a bound is told why
 * (when it can still hear) and dropped; nothing it does reaches the tree
 * except through a validated request.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "agentsup/wire.h"
#include "clock.h"
#include "control.h"
#include "daemon.h"
#include "log.h"
#include "request.h"
#include "serve.h"
#include "util.h"

#define CONTROL_MAX_CLIENTS 128
#define CONTROL_MAX_OUT     (8u << 20) /* unread answers before a request */
#define CONTROL_MAX_LAG     (1u << 20) /* a follower this far behind goes */
#define CONTROL_REQUEST_MS  10000 /* from a request's first byte to its last */
#define CONTROL_IDLE_MS     60000 /* a silent, non-following client */
#define CONTROL_HISTORY     256   /* events kept for "events" */
#define CONTROL_BACKOFF_S   1.0   /* stop accepting after EMFILE */
#define CONTROL_FD_RESERVE  32 /* stdio, loop, events file, one spawn's fds */

struct client {
	struct control *ctl;
	struct client *prev, *next;
	int fd;
	uid_t uid;
	ev_io rio, wio;
	ev_timer timer;        /* the deadline below, lazily re-armed */
	uint64_t req_start_ms; /* first byte of the partial request */
	uint64_t last_ms;      /* last byte read */
	uint64_t armed_ms;     /* when the timer fires */
	uint8_t *in;           /* a partial frame */
	size_t inlen, incap;
	char *out; /* unsent bytes: out[outoff .. outoff + outlen) */
	size_t outoff, outlen, outcap;
	bool follow;
	bool dead; /* closed: freed after the current callback */
};

struct control {
	struct daemon *d;
	char *path;
	int fd;
	ev_io accept_w;
	ev_timer backoff;
	ev_prepare sweep; /* frees dropped clients before the loop blocks */
	struct client *clients;
	size_t nclients;
	const struct config *counted;   /* the config nworkers was counted in */
	size_t nworkers;                /* each may hold a descriptor */
	bool full;                      /* making room: said once per episode */
	unsigned long evicted;          /* this episode */
	bool refusing;                  /* no room at all: said once */
	char *history[CONTROL_HISTORY]; /* packed event maps */
	size_t hlen[CONTROL_HISTORY];
	size_t hhead, hcount;
	msgpack_sbuffer sb;
};

static void client_free(struct client *);

/* --- path and listening -------------------------------------------------- */

static int
fill_addr(struct sockaddr_un *sa, const char *path)
{
	memset(sa, 0, sizeof *sa);
	sa->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof sa->sun_path) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(sa->sun_path, path);
	return 0;
}

/* 1 if a daemon answers at path, 0 if not (a stale file is removed). */
static int
socket_in_use(const char *path)
{
	struct sockaddr_un sa;
	int fd, r;

	if (fill_addr(&sa, path) < 0)
		return -1;
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return -1;
	r = connect(fd, (struct sockaddr *)&sa, sizeof sa);
	close(fd);
	if (r == 0)
		return 1;
	if (errno == ECONNREFUSED) {
		if (unlink(path) < 0 && errno != ENOENT)
			return -1;
		log_info("removed the stale socket %s", path);
	}
	return 0;
}

static void accept_cb(struct ev_loop *, ev_io *, int);
static void backoff_cb(struct ev_loop *, ev_timer *, int);
static void sweep_cb(struct ev_loop *, ev_prepare *, int);

struct control *
control_open(struct daemon *d, const char *path, const char **why)
{
	struct control *c;
	struct sockaddr_un sa;
	mode_t old;
	int fd, r;

	if (fill_addr(&sa, path) < 0) {
		*why = "socket path too long";
		return NULL;
	}
	if (agentsup_wire_socket_dir(path, 1, why) < 0)
		return NULL;
	if ((r = socket_in_use(path)) != 0) {
		*why = r > 0 ? "another agentsupd is running on this socket"
		             : strerror(errno);
		return NULL;
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
	                 0)) < 0) {
		*why = strerror(errno);
		return NULL;
	}
	old = umask(0177); /* the socket is born 0600 */
	r = bind(fd, (struct sockaddr *)&sa, sizeof sa);
	umask(old);
	if (r < 0 || chmod(path, 0600) < 0 || listen(fd, 64) < 0) {
		*why = strerror(errno);
		close(fd);
		return NULL;
	}
	c = xcalloc(1, sizeof *c);
	c->d = d;
	c->fd = fd;
	c->path = xstrdup(path);
	msgpack_sbuffer_init(&c->sb);
	ev_io_init(&c->accept_w, accept_cb, fd, EV_READ);
	c->accept_w.data = c;
	ev_io_start(d->loop, &c->accept_w);
	ev_init(&c->backoff, backoff_cb);
	c->backoff.data = c;
	ev_prepare_init(&c->sweep, sweep_cb);
	c->sweep.data = c;
	return c;
}

void
control_close(struct control *c)
{
	if (c == NULL)
		return;
	while (c->clients != NULL)
		client_free(c->clients);
	ev_io_stop(c->d->loop, &c->accept_w);
	ev_timer_stop(c->d->loop, &c->backoff);
	ev_prepare_stop(c->d->loop, &c->sweep);
	close(c->fd);
	if (unlink(c->path) < 0 && errno != ENOENT)
		log_warn("unlink %s", c->path);
	for (size_t i = 0; i < CONTROL_HISTORY; i++)
		free(c->history[i]);
	msgpack_sbuffer_destroy(&c->sb);
	free(c->path);
	free(c);
}

const char *
control_path(const struct control *c)
{
	return c->path;
}

/* --- clients -------------------------------------------------------------- */

static void
client_free(struct client *cl)
{
	struct control *c = cl->ctl;
	struct ev_loop *loop = c->d->loop;

	ev_io_stop(loop, &cl->rio);
	ev_io_stop(loop, &cl->wio);
	ev_timer_stop(loop, &cl->timer);
	close(cl->fd);
	if (cl->prev != NULL)
		cl->prev->next = cl->next;
	else
		c->clients = cl->next;
	if (cl->next != NULL)
		cl->next->prev = cl->prev;
	c->nclients--;
	free(cl->in);
	free(cl->out);
	free(cl);
}

/* Mark for closing; freed by the sweep once the current callback is done,
 * since the caller (or an event sink deeper in its stack) may still hold it. */
void
control_drop(struct client *cl, const char *why)
{
	struct ev_loop *loop = cl->ctl->d->loop;

	if (cl->dead)
		return;
	if (why != NULL)
		log_warnx("control client (uid %lu): %s; disconnected",
		          (unsigned long)cl->uid, why);
	cl->dead = true;
	ev_io_stop(loop, &cl->rio);
	ev_io_stop(loop, &cl->wio);
	ev_timer_stop(loop, &cl->timer);
	ev_prepare_start(loop, &cl->ctl->sweep);
}

static void
sweep_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
	struct control *c = w->data;

	(void)revents;
	for (struct client *cl = c->clients, *next; cl != NULL; cl = next) {
		next = cl->next;
		if (!cl->dead)
			continue;
		if (cl->outlen > 0) /* a last word (an error) if it fits now */
			(void)send(cl->fd, cl->out + cl->outoff, cl->outlen,
			           MSG_NOSIGNAL | MSG_DONTWAIT);
		client_free(cl);
	}
	ev_prepare_stop(loop, w);
}

static void
client_flush(struct client *cl)
{
	ssize_t n;

	while (cl->outlen > 0 && !cl->dead) {
		n = send(cl->fd, cl->out + cl->outoff, cl->outlen,
		         MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			ev_io_start(cl->ctl->d->loop, &cl->wio);
			return;
		}
		if (n < 0) {
			cl->outlen = 0;
			control_drop(cl, NULL); /* it went away */
			return;
		}
		cl->outoff += (size_t)n;
		cl->outlen -= (size_t)n;
	}
	cl->outoff = 0;
	ev_io_stop(cl->ctl->d->loop, &cl->wio);
}

/* Queue bytes for a client. An answer is queued whole, however long (a
 * status of a big tree): a client that does not read is stopped before its
 * next request instead. A follower that falls behind is dropped here. */
void
control_send(struct client *cl, const char *data, size_t len)
{
	if (cl->dead)
		return;
	if (cl->follow && cl->outlen + len > CONTROL_MAX_LAG) {
		control_drop(cl, "a slow follower, too far behind");
		return;
	}
	if (cl->outoff > 0 && cl->outoff + cl->outlen + len > cl->outcap) {
		memmove(cl->out, cl->out + cl->outoff, cl->outlen);
		cl->outoff = 0;
	}
	if (cl->outlen + len > cl->outcap) {
		cl->outcap = (cl->outlen + len) * 2;
		cl->out = xrealloc(cl->out, cl->outcap);
	}
	memcpy(cl->out + cl->outoff + cl->outlen, data, len);
	cl->outlen += len;
	client_flush(cl);
}

static void
write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct client *cl = w->data;

	(void)loop;
	(void)revents;
	client_flush(cl);
}

uid_t
control_client_uid(const struct client *cl)
{
	return cl->uid;
}

void
control_follow(struct client *cl, bool follow)
{
	cl->follow = follow;
}

/* --- deadlines ------------------------------------------------------------ */

/* A request must be whole CONTROL_REQUEST_MS after its first byte, however
 * the bytes dribble in; a silent client may stay CONTROL_IDLE_MS. */
static uint64_t
client_deadline(const struct client *cl)
{
	if (cl->inlen > 0)
		return cl->req_start_ms + CONTROL_REQUEST_MS;
	if (cl->follow)
		return UINT64_MAX; /* a follower may stay silent for ever */
	return cl->last_ms + CONTROL_IDLE_MS;
}

static void
client_arm(struct client *cl, uint64_t now)
{
	uint64_t at = client_deadline(cl);

	if (at == UINT64_MAX)
		return;
	if (ev_is_active(&cl->timer) && cl->armed_ms <= at)
		return; /* a running timer re-arms itself when it fires */
	ev_timer_stop(cl->ctl->d->loop, &cl->timer);
	cl->armed_ms = at;
	ev_timer_set(&cl->timer, at > now ? (double)(at - now) / 1000.0 : 0.0,
	             0.0);
	ev_timer_start(cl->ctl->d->loop, &cl->timer);
}

static void
timer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct client *cl = t->data;
	uint64_t now = clock_now_ms();
	uint64_t at = client_deadline(cl);

	(void)loop;
	(void)revents;
	if (now < at) {
		client_arm(cl, now);
		return;
	}
	control_drop(cl, cl->inlen ? "too slow to finish a request"
	                           : "idle too long");
}

/* --- reading -------------------------------------------------------------- */

static void
client_dispatch(struct client *cl, const struct agentsup_frame *f)
{
	struct request r;
	const char *why;

	if (!agentsup_wire_is(f, AGENTSUP_T_REQ)) {
		serve_refuse(cl, 0, "expected a \"req\" message");
		control_drop(cl, "sent a message that is not a request");
		return;
	}
	if (!cl->follow && cl->outlen > CONTROL_MAX_OUT) {
		control_drop(cl, "not reading its responses");
		return;
	}
	if (request_parse(&f->map, &r, &why) < 0) {
		serve_refuse(cl, r.id, why);
		return;
	}
	serve_request(cl, cl->ctl, cl->ctl->d, &r);
}

static void
read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct client *cl = w->data;
	struct daemon *d = cl->ctl->d;
	size_t max = AGENTSUP_FRAME_HEADER + d->cfg->settings.max_frame;
	uint64_t now = clock_now_ms();
	struct agentsup_frame f;
	size_t used = 0;
	ssize_t n;
	int r;

	(void)loop;
	(void)revents;
	/* the limit may have changed since the buffer was made (a reload):
	 * size it for the limit in force now, never trust the old size */
	if (cl->incap < max) {
		cl->in = xrealloc(cl->in, max);
		cl->incap = max;
	}
	if (cl->inlen >= max) { /* a lowered limit: what is held is too long */
		serve_refuse(cl, 0,
		             agentsup_wire_strerror(AGENTSUP_WIRE_TOO_LONG));
		control_drop(cl,
		             agentsup_wire_strerror(AGENTSUP_WIRE_TOO_LONG));
		return;
	}
	n = recv(cl->fd, cl->in + cl->inlen, max - cl->inlen, MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		control_drop(cl, NULL);
		return;
	}
	if (cl->inlen == 0)
		cl->req_start_ms = now; /* a request's first byte */
	cl->inlen += (size_t)n;
	cl->last_ms = now;
	while (!cl->dead &&
	       (r = agentsup_wire_decode(cl->in + used, cl->inlen - used,
	                                 d->cfg->settings.max_frame, &d->zone,
	                                 &f)) == AGENTSUP_WIRE_OK) {
		client_dispatch(cl, &f);
		msgpack_zone_clear(&d->zone);
		used += f.size;
	}
	if (!cl->dead && r != AGENTSUP_WIRE_MORE) {
		serve_refuse(cl, 0, agentsup_wire_strerror(r));
		control_drop(cl, agentsup_wire_strerror(r));
		return;
	}
	memmove(cl->in, cl->in + used, cl->inlen - used);
	cl->inlen -= used;
	if (used > 0)
		cl->req_start_ms = now; /* what is left began in this read */
	if (cl->inlen == 0) {
		free(cl->in); /* an idle client holds no buffer */
		cl->in = NULL;
		cl->incap = 0;
	}
	if (!cl->dead)
		client_arm(cl, now);
}

/* --- admission ------------------------------------------------------------ */

static bool
peer_allowed(int fd, uid_t *uid)
{
	struct ucred cred;
	socklen_t len = sizeof cred;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
		log_warn("control: SO_PEERCRED");
		return false;
	}
	*uid = cred.uid;
	return cred.uid == 0 || cred.uid == geteuid();
}

static size_t
count_workers(const struct node *n)
{
	size_t k = n->spec->kind == KIND_WORKER;

	for (size_t i = 0; i < n->nchildren; i++)
		k += count_workers(n->children[i]);
	return k;
}

/* How many clients there may be: CONTROL_MAX_CLIENTS, or fewer when
 * RLIMIT_NOFILE leaves too few descriptors beside those that the daemon
 * and its workers (one each) need. */
static size_t
control_capacity(struct control *c, rlim_t *nofile)
{
	struct rlimit rl;
	size_t need;

	if (c->counted != c->d->cfg) { /* counted again after a reload */
		c->counted = c->d->cfg;
		c->nworkers = count_workers(c->d->tree->root);
	}
	need = CONTROL_FD_RESERVE + c->nworkers;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY)
		return CONTROL_MAX_CLIENTS;
	*nofile = rl.rlim_cur;
	if (rl.rlim_cur <= need)
		return 0;
	return rl.rlim_cur - need < CONTROL_MAX_CLIENTS ? rl.rlim_cur - need
	                                                : CONTROL_MAX_CLIENTS;
}

/* The client to drop so that a new one gets in: the one that has taken the
 * longest over its request, or been idle the longest; a follower only when
 * every client follows. */
static struct client *
control_victim(struct control *c, uint64_t now)
{
	struct client *best = NULL;
	uint64_t best_age = 0, age;

	for (struct client *cl = c->clients; cl != NULL; cl = cl->next) {
		if (cl->dead)
			continue;
		age = now - (cl->inlen ? cl->req_start_ms : cl->last_ms);
		if (best == NULL || (best->follow && !cl->follow) ||
		    (best->follow == cl->follow && age >= best_age)) {
			best = cl;
			best_age = age;
		}
	}
	return best;
}

/* Make room for one more client; false if there can be none at all. */
static bool
control_make_room(struct control *c, uint64_t now)
{
	rlim_t nofile = 0;
	size_t cap = control_capacity(c, &nofile);
	struct client *victim;

	if (c->nclients < cap) {
		if (c->full && c->evicted > 1)
			log_info("control: %lu clients were dropped to make "
			         "room",
			         c->evicted);
		c->full = c->refusing = false;
		c->evicted = 0;
		return true;
	}
	if (cap == 0 || (victim = control_victim(c, now)) == NULL) {
		if (!c->refusing)
			log_warnx("control: refusing clients: RLIMIT_NOFILE "
			          "%lu leaves no descriptor to spare beside "
			          "the %zu workers' (raise it: ulimit -n)",
			          (unsigned long)nofile, c->nworkers);
		c->refusing = true;
		return false;
	}
	if (!c->full) {
		if (cap < CONTROL_MAX_CLIENTS)
			log_warnx(
			        "control: %zu clients, all that RLIMIT_NOFILE "
			        "%lu leaves room for beside the workers' "
			        "descriptors; dropping the slowest or longest "
			        "idle to let new ones in",
			        cap, (unsigned long)nofile);
		else
			log_warnx(
			        "control: %zu clients, the most there may be; "
			        "dropping the slowest or longest idle to let "
			        "new ones in",
			        cap);
	}
	c->full = true;
	c->evicted++;
	client_free(victim); /* nothing holds it in an accept callback */
	return true;
}

static void
client_new(struct control *c, int fd, uid_t uid, uint64_t now)
{
	struct client *cl = xcalloc(1, sizeof *cl);

	cl->ctl = c;
	cl->fd = fd;
	cl->uid = uid;
	cl->last_ms = now;
	ev_io_init(&cl->rio, read_cb, fd, EV_READ);
	ev_io_init(&cl->wio, write_cb, fd, EV_WRITE);
	ev_init(&cl->timer, timer_cb);
	cl->rio.data = cl->wio.data = cl->timer.data = cl;
	ev_io_start(c->d->loop, &cl->rio);
	cl->next = c->clients;
	if (c->clients != NULL)
		c->clients->prev = cl;
	c->clients = cl;
	c->nclients++;
	client_arm(cl, now);
}

static void
backoff_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct control *c = t->data;

	(void)revents;
	ev_io_start(loop, &c->accept_w);
}

/* Out of descriptors or memory: hold off instead of spinning on accept. */
static void
control_pause(struct control *c, struct ev_loop *loop)
{
	log_warn("control: cannot accept a client, out of descriptors or "
	         "memory (pausing for %gs)",
	         CONTROL_BACKOFF_S);
	ev_io_stop(loop, &c->accept_w);
	ev_timer_set(&c->backoff, CONTROL_BACKOFF_S, 0.0);
	ev_timer_start(loop, &c->backoff);
}

static void
accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct control *c = w->data;
	uid_t uid = (uid_t)-1;
	uint64_t now = clock_now_ms();
	int fd;

	(void)revents;
	for (int i = 0; i < 16; i++) { /* bounded work per wake-up */
		fd = accept4(c->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0 && (errno == EAGAIN || errno == EINTR ||
		               errno == ECONNABORTED))
			return;
		if (fd < 0 && (errno == EMFILE || errno == ENFILE ||
		               errno == ENOBUFS || errno == ENOMEM)) {
			control_pause(c, loop);
			return;
		}
		if (fd < 0) {
			log_warn("control: accept");
			return;
		}
		if (!peer_allowed(fd, &uid)) {
			log_warnx("control: refused a client of uid %lu",
			          (unsigned long)uid);
			close(fd);
			continue;
		}
		if (!control_make_room(c, now)) {
			close(fd);
			continue;
		}
		client_new(c, fd, uid, now);
	}
}

/* --- events to followers -------------------------------------------------- */

const char *
control_history(const struct control *c, size_t i, size_t *len)
{
	size_t k;

	if (i >= c->hcount)
		return NULL;
	k = (c->hhead + CONTROL_HISTORY - c->hcount + i) % CONTROL_HISTORY;
	*len = c->hlen[k];
	return c->history[k];
}

/* The events sink: keep the event in the history, send it to followers. */
void
control_event(void *arg, const struct event *e, const char *json)
{
	struct control *c = arg;
	msgpack_sbuffer sb;
	msgpack_packer pk;

	(void)json;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 8);
	agentsup_wire_kv_uint(&pk, "seq", e->seq);
	agentsup_wire_kv_int(&pk, "time_ms", e->time_ms);
	agentsup_wire_kv_str(&pk, "kind", events_kind_name(e->kind));
	agentsup_wire_kv_str(&pk, "path", e->path);
	agentsup_wire_kv_int(&pk, "pid", e->pid);
	agentsup_wire_kv_uint(&pk, "restarts", e->restarts);
	agentsup_wire_pack_str(&pk, "reason");
	e->reason ? agentsup_wire_pack_str(&pk, e->reason)
	          : msgpack_pack_nil(&pk);
	agentsup_wire_pack_str(&pk, "detail");
	e->detail ? agentsup_wire_pack_str(&pk, e->detail)
	          : msgpack_pack_nil(&pk);
	/* history: the bare event map */
	free(c->history[c->hhead]);
	c->history[c->hhead] = xmalloc(sb.size);
	memcpy(c->history[c->hhead], sb.data, sb.size);
	c->hlen[c->hhead] = sb.size;
	c->hhead = (c->hhead + 1) % CONTROL_HISTORY;
	if (c->hcount < CONTROL_HISTORY)
		c->hcount++;
	/* followers: {t: event, event: {...}} */
	msgpack_packer_init(&pk, &c->sb, msgpack_sbuffer_write);
	agentsup_wire_begin(&c->sb);
	msgpack_pack_map(&pk, 2);
	agentsup_wire_kv_str(&pk, "t", AGENTSUP_T_EVENT);
	agentsup_wire_pack_str(&pk, "event");
	msgpack_sbuffer_write(&c->sb, sb.data, sb.size);
	msgpack_sbuffer_destroy(&sb);
	if (agentsup_wire_end(&c->sb, CONTROL_MAX_OUT) < 0)
		return;
	for (struct client *cl = c->clients; cl != NULL; cl = cl->next)
		if (cl->follow && !cl->dead)
			control_send(cl, c->sb.data, c->sb.size);
}
