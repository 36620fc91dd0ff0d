/*
 * control.c - the control socket: agentsupctl's requests and event followers.
 *
 * Every client is bounded: its partial input (one frame), its unsent output,
 * the time it may take to finish a request, and how many clients there may
 * be at once. A client that breaks a bound is told why (when it can still
 * hear) and dropped; nothing it does reaches the tree except through a
 * validated request.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "agentsup/wire.h"
#include "channel.h"
#include "control.h"
#include "daemon.h"
#include "request.h"
#include "clock.h"
#include "log.h"
#include "logcap.h"
#include "util.h"

#define CONTROL_MAX_CLIENTS 128
#define CONTROL_MAX_OUT     (8u << 20) /* a status of a very large tree */
#define CONTROL_MAX_LAG     (1u << 20) /* a follower this far behind goes */
#define CONTROL_REQUEST_MS  10000      /* to finish a request once begun */
#define CONTROL_IDLE_MS     60000      /* a silent, non-following client */
#define CONTROL_HISTORY     256        /* events kept for "events" */
#define CONTROL_BACKOFF_S   1.0        /* stop accepting after EMFILE */

struct client {
	struct control *ctl;
	struct client *prev, *next;
	int fd;
	uid_t uid;
	ev_io rio, wio;
	ev_timer timer; /* request or idle deadline, lazily re-armed */
	uint64_t deadline_ms;
	uint8_t *in; /* a partial frame */
	size_t inlen;
	char *out; /* unsent bytes */
	size_t outlen, outcap;
	bool follow;
	char *logs; /* the worker whose output it follows, or NULL */
	bool dead;  /* closed: freed after the current callback */
};

struct control {
	struct daemon *d;
	char *path;
	int fd;
	ev_io accept_w;
	ev_timer backoff;
	ev_prepare
	        sweep; /* frees dropped clients before the loop blocks again */
	struct client *clients;
	size_t nclients;
	unsigned long refused; /* over the client limit, since the last log */
	char *history[CONTROL_HISTORY]; /* packed event frames */
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
	free(cl->logs);
	free(cl);
}

/* Mark for closing; freed by the sweep once the current callback is done,
 * since the caller (or an event sink deeper in its stack) may still hold it. */
static void
client_drop(struct client *cl, const char *why)
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
			(void)send(cl->fd, cl->out, cl->outlen,
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
		n = send(cl->fd, cl->out, cl->outlen,
		         MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			ev_io_start(cl->ctl->d->loop, &cl->wio);
			return;
		}
		if (n < 0) {
			cl->outlen = 0;
			client_drop(cl, NULL); /* it went away */
			return;
		}
		memmove(cl->out, cl->out + n, cl->outlen - (size_t)n);
		cl->outlen -= (size_t)n;
	}
	ev_io_stop(cl->ctl->d->loop, &cl->wio);
}

/* Queue bytes for a client; one that does not read is dropped. */
static void
client_write(struct client *cl, const char *data, size_t len)
{
	bool follows = cl->follow || cl->logs != NULL;
	size_t limit = follows ? CONTROL_MAX_LAG : CONTROL_MAX_OUT;

	if (cl->dead)
		return;
	if (cl->outlen + len > limit) {
		client_drop(cl, follows ? "a slow follower, too far behind"
		                        : "not reading its responses");
		return;
	}
	if (cl->outlen + len > cl->outcap) {
		cl->outcap = (cl->outlen + len) * 2;
		cl->out = xrealloc(cl->out, cl->outcap);
	}
	memcpy(cl->out + cl->outlen, data, len);
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

/* --- responses ------------------------------------------------------------ */

static void
res_begin(struct control *c, msgpack_packer *pk, uint64_t id, bool ok)
{
	msgpack_packer_init(pk, &c->sb, msgpack_sbuffer_write);
	agentsup_wire_begin(&c->sb);
	msgpack_pack_map(pk, 4);
	agentsup_wire_kv_str(pk, "t", AGENTSUP_T_RES);
	agentsup_wire_kv_uint(pk, "id", id);
	agentsup_wire_pack_str(pk, "ok");
	if (ok)
		msgpack_pack_true(pk);
	else
		msgpack_pack_false(pk);
	agentsup_wire_pack_str(pk, ok ? "result" : "error");
}

static void
res_send(struct client *cl)
{
	struct control *c = cl->ctl;

	if (agentsup_wire_end(&c->sb, CONTROL_MAX_OUT) < 0) {
		client_drop(cl, "response too large");
		return;
	}
	client_write(cl, c->sb.data, c->sb.size);
}

static void res_error(struct client *cl, uint64_t id, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static void
res_error(struct client *cl, uint64_t id, const char *fmt, ...)
{
	msgpack_packer pk;
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	res_begin(cl->ctl, &pk, id, false);
	agentsup_wire_pack_str(&pk, msg);
	res_send(cl);
}

static void
res_ok(struct client *cl, uint64_t id, const char *msg)
{
	msgpack_packer pk;

	res_begin(cl->ctl, &pk, id, true);
	agentsup_wire_pack_str(&pk, msg);
	res_send(cl);
}

/* --- status --------------------------------------------------------------- */

static void
pack_kv_nil(msgpack_packer *pk, const char *key)
{
	agentsup_wire_pack_str(pk, key);
	msgpack_pack_nil(pk);
}

static void
pack_progress(msgpack_packer *pk, const struct progress *p)
{
	agentsup_wire_pack_str(pk, "progress");
	if (p == NULL) {
		msgpack_pack_nil(pk);
		return;
	}
	msgpack_pack_map(pk, 4);
	agentsup_wire_pack_str(pk, "steps");
	p->has_steps ? msgpack_pack_uint64(pk, p->steps) : msgpack_pack_nil(pk);
	agentsup_wire_pack_str(pk, "tokens");
	p->has_tokens ? msgpack_pack_uint64(pk, p->tokens)
	              : msgpack_pack_nil(pk);
	agentsup_wire_pack_str(pk, "cost");
	p->has_cost ? msgpack_pack_double(pk, p->cost) : msgpack_pack_nil(pk);
	agentsup_wire_pack_str(pk, "state");
	p->state[0] ? agentsup_wire_pack_str(pk, p->state)
	            : msgpack_pack_nil(pk);
}

/* One node as a map: the same keys for every node, nil where not known. */
static void
pack_node(msgpack_packer *pk, const struct node *n, int depth, uint64_t now)
{
	const struct spec *s = n->spec;
	const struct worker *w = n->worker;
	const struct progress *prog =
	        w && w->chan ? channel_progress(w->chan) : NULL;
	bool sup = s->kind == KIND_SUPERVISOR;
	char why[64];

	msgpack_pack_map(pk, 20);
	agentsup_wire_kv_str(pk, "name", s->name);
	agentsup_wire_kv_str(pk, "path", n->path);
	agentsup_wire_kv_str(pk, "kind", sup ? "supervisor" : "worker");
	agentsup_wire_kv_str(pk, "state", node_state_name(n->state));
	agentsup_wire_kv_uint(pk, "depth", (uint64_t)depth);
	if (w != NULL)
		agentsup_wire_kv_int(pk, "pid", w->pid);
	else
		pack_kv_nil(pk, "pid");
	agentsup_wire_kv_uint(pk, "uptime_ms",
	                      n->state == NODE_RUNNING ? now - n->since_ms : 0);
	agentsup_wire_kv_uint(pk, "restarts", n->starts ? n->starts - 1 : 0);
	reason_format(n->last, why, sizeof why);
	agentsup_wire_kv_str(pk, "last_reason", why);
	agentsup_wire_pack_str(pk, "held");
	n->held ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
	agentsup_wire_kv_str(pk, "restart", config_restart_name(s->restart));
	if (sup) {
		agentsup_wire_kv_str(pk, "strategy",
		                     config_strategy_name(s->strategy));
		agentsup_wire_kv_uint(pk, "intensity", s->intensity);
		agentsup_wire_kv_uint(pk, "period_ms", s->period_ms);
		agentsup_wire_kv_uint(pk, "window_restarts",
		                      tree_window_restarts(n, now));
	} else {
		pack_kv_nil(pk, "strategy");
		pack_kv_nil(pk, "intensity");
		pack_kv_nil(pk, "period_ms");
		pack_kv_nil(pk, "window_restarts");
	}
	agentsup_wire_kv_uint(pk, "heartbeat_ms", sup ? 0 : s->heartbeat_ms);
	if (w != NULL && s->heartbeat_ms)
		agentsup_wire_kv_uint(pk, "heartbeat_age_ms",
		                      now - w->last_beat_us / 1000);
	else
		pack_kv_nil(pk, "heartbeat_age_ms");
	agentsup_wire_kv_uint(pk, "beats",
	                      w && w->chan ? channel_beats(w->chan) : 0);
	pack_progress(pk, prog);
	if (prog != NULL && prog->status[0])
		agentsup_wire_kv_str(pk, "status", prog->status);
	else
		pack_kv_nil(pk, "status");
}

static size_t
count_nodes(const struct node *n)
{
	size_t k = 1;

	for (size_t i = 0; i < n->nchildren; i++)
		k += count_nodes(n->children[i]);
	return k;
}

static void
pack_subtree(msgpack_packer *pk, const struct node *n, int depth, uint64_t now)
{
	pack_node(pk, n, depth, now);
	for (size_t i = 0; i < n->nchildren; i++)
		pack_subtree(pk, n->children[i], depth + 1, now);
}

static void
do_status(struct client *cl, const struct request *r)
{
	struct daemon *d = cl->ctl->d;
	struct node *n =
	        r->name[0] ? tree_find(d->tree, r->name) : d->tree->root;
	msgpack_packer pk;

	if (n == NULL) {
		res_error(cl, r->id, "no such worker or supervisor: %s",
		          r->name);
		return;
	}
	res_begin(cl->ctl, &pk, r->id, true);
	msgpack_pack_array(&pk, count_nodes(n));
	pack_subtree(&pk, n, 0, clock_now_ms());
	res_send(cl);
}

/* --- commands ------------------------------------------------------------- */

static const char *
refusal(const struct daemon *d, const struct node *n)
{
	if (d->tree->shutting_down || d->tree->draining)
		return "the tree is shutting down or draining";
	if (n->parent != NULL && n->parent->state != NODE_RUNNING)
		return "its supervisor is not running";
	return "its supervisor is busy restarting; try again";
}

static void
do_node_command(struct client *cl, const struct request *r)
{
	struct daemon *d = cl->ctl->d;
	struct node *n = tree_find(d->tree, r->name);
	uint64_t now = clock_now_ms();
	int rc = -1;

	if (n == NULL) {
		res_error(cl, r->id, "no such worker or supervisor: %s",
		          r->name);
		return;
	}
	events_emit(&d->events, EV_COMMAND, n->path, 0, NULL, 0,
	            "%s by agentsupctl (uid %lu)", request_cmd_name(r->cmd),
	            (unsigned long)cl->uid);
	switch (r->cmd) {
	case REQ_START:
		rc = tree_command_start(d->tree, n, now);
		break;
	case REQ_STOP:
		rc = tree_command_stop(d->tree, n, now);
		break;
	case REQ_RESTART:
		rc = tree_command_restart(d->tree, n, now);
		break;
	case REQ_DRAIN:
		rc = tree_command_drain(d->tree, n, now);
		break;
	default:
		break;
	}
	if (rc < 0)
		res_error(cl, r->id, "cannot %s %s: %s",
		          request_cmd_name(r->cmd), n->path, refusal(d, n));
	else
		res_ok(cl, r->id, n->path);
}

static void
do_events(struct client *cl, const struct request *r)
{
	struct control *c = cl->ctl;
	msgpack_packer pk;

	/* the history as an array of event maps (each stored as a frame) */
	res_begin(c, &pk, r->id, true);
	msgpack_pack_array(&pk, c->hcount);
	for (size_t i = 0; i < c->hcount; i++) {
		size_t k = (c->hhead + CONTROL_HISTORY - c->hcount + i) %
		           CONTROL_HISTORY;
		msgpack_sbuffer_write(&c->sb, c->history[k], c->hlen[k]);
	}
	res_send(cl);
	cl->follow = r->follow;
}

/* logs NAME [N] [follow]: the last N lines of the worker's ring as one
 * string; a follower then gets each new line as a {t: log} frame. */
static void
do_logs(struct client *cl, const struct request *r)
{
	struct daemon *d = cl->ctl->d;
	struct node *n = tree_find(d->tree, r->name);
	size_t cap = d->cfg->settings.log_tail + 1;
	msgpack_packer pk;
	char *buf;
	size_t len;

	if (n == NULL || n->spec->kind != KIND_WORKER) {
		res_error(cl, r->id, "no such worker: %s", r->name);
		return;
	}
	buf = xmalloc(cap);
	len = logcap_tail(logcap_find(d->logcap, n->spec->name), r->lines, buf,
	                  cap);
	res_begin(cl->ctl, &pk, r->id, true);
	msgpack_pack_str(&pk, len);
	msgpack_pack_str_body(&pk, buf, len);
	free(buf);
	res_send(cl);
	if (r->follow && !cl->dead) {
		free(cl->logs);
		cl->logs = xstrdup(n->spec->name);
	}
}

static void
dispatch(struct client *cl, const struct agentsup_frame *f)
{
	struct daemon *d = cl->ctl->d;
	struct request r;
	const char *why;
	char msg[512];

	if (!agentsup_wire_is(f, AGENTSUP_T_REQ)) {
		res_error(cl, 0, "expected a \"req\" message");
		client_drop(cl, "sent a message that is not a request");
		return;
	}
	if (request_parse(&f->map, &r, &why) < 0) {
		res_error(cl, r.id, "%s", why);
		return;
	}
	switch (r.cmd) {
	case REQ_STATUS:
		do_status(cl, &r);
		break;
	case REQ_START:
	case REQ_STOP:
	case REQ_RESTART:
		do_node_command(cl, &r);
		break;
	case REQ_DRAIN:
		if (r.name[0] != '\0') {
			do_node_command(cl, &r);
			break;
		}
		daemon_drain(d);
		res_ok(cl, r.id, "draining the whole tree");
		break;
	case REQ_RELOAD:
		if (daemon_reload(d, msg, sizeof msg) < 0)
			res_error(cl, r.id, "reload refused: %s", msg);
		else
			res_ok(cl, r.id, msg);
		break;
	case REQ_EVENTS:
		do_events(cl, &r);
		break;
	case REQ_SHUTDOWN:
		res_ok(cl, r.id, "shutting down");
		daemon_shutdown(d, "agentsupctl shutdown");
		break;
	case REQ_LOGS:
		do_logs(cl, &r);
		break;
	}
}

/* --- reading -------------------------------------------------------------- */

static void
client_deadline(struct client *cl, uint64_t ms)
{
	cl->deadline_ms = clock_now_ms() + ms;
	if (!ev_is_active(&cl->timer)) {
		ev_timer_set(&cl->timer, (double)ms / 1000.0, 0.0);
		ev_timer_start(cl->ctl->d->loop, &cl->timer);
	}
}

static void
timer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct client *cl = t->data;
	uint64_t now = clock_now_ms();

	(void)revents;
	if ((cl->follow || cl->logs) && cl->inlen == 0)
		return;              /* a follower may stay silent for ever */
	if (now < cl->deadline_ms) { /* lazily moved: re-arm the rest */
		ev_timer_set(t, (double)(cl->deadline_ms - now) / 1000.0, 0.0);
		ev_timer_start(loop, t);
		return;
	}
	client_drop(cl, cl->inlen ? "too slow to finish a request"
	                          : "idle too long");
}

static void
read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct client *cl = w->data;
	struct daemon *d = cl->ctl->d;
	size_t max = AGENTSUP_FRAME_HEADER + d->cfg->settings.max_frame;
	struct agentsup_frame f;
	size_t used = 0;
	ssize_t n;
	int r;

	(void)loop;
	(void)revents;
	if (cl->in == NULL)
		cl->in = xmalloc(max);
	n = recv(cl->fd, cl->in + cl->inlen, max - cl->inlen, MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		client_drop(cl, NULL);
		goto out;
	}
	cl->inlen += (size_t)n;
	while (!cl->dead &&
	       (r = agentsup_wire_decode(cl->in + used, cl->inlen - used,
	                                 d->cfg->settings.max_frame, &d->zone,
	                                 &f)) == AGENTSUP_WIRE_OK) {
		dispatch(cl, &f);
		msgpack_zone_clear(&d->zone);
		used += f.size;
	}
	if (!cl->dead && r != AGENTSUP_WIRE_MORE) {
		res_error(cl, 0, "bad frame: %s", agentsup_wire_strerror(r));
		client_drop(cl, agentsup_wire_strerror(r));
		goto out;
	}
	memmove(cl->in, cl->in + used, cl->inlen - used);
	cl->inlen -= used;
	if (cl->inlen == 0) {
		free(cl->in); /* an idle client holds no buffer */
		cl->in = NULL;
	}
	if (!cl->dead)
		client_deadline(cl, cl->inlen ? CONTROL_REQUEST_MS
		                              : CONTROL_IDLE_MS);
out:
	daemon_run_actions(d);
}

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

static void
client_new(struct control *c, int fd, uid_t uid)
{
	struct client *cl = xcalloc(1, sizeof *cl);

	cl->ctl = c;
	cl->fd = fd;
	cl->uid = uid;
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
	client_deadline(cl, CONTROL_IDLE_MS);
}

static void
backoff_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct control *c = t->data;

	(void)revents;
	ev_io_start(loop, &c->accept_w);
}

static void
accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct control *c = w->data;
	uid_t uid = (uid_t)-1;
	int fd;

	(void)revents;
	for (int i = 0; i < 16; i++) { /* bounded work per wake-up */
		fd = accept4(c->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0 && (errno == EAGAIN || errno == EINTR ||
		               errno == ECONNABORTED))
			return;
		if (fd < 0 && (errno == EMFILE || errno == ENFILE ||
		               errno == ENOBUFS || errno == ENOMEM)) {
			/* hold off instead of spinning on a full table */
			log_warn("control: accept (pausing for %gs)",
			         CONTROL_BACKOFF_S);
			ev_io_stop(loop, &c->accept_w);
			ev_timer_set(&c->backoff, CONTROL_BACKOFF_S, 0.0);
			ev_timer_start(loop, &c->backoff);
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
		if (c->nclients >= CONTROL_MAX_CLIENTS) {
			if (c->refused++ == 0)
				log_warnx(
				        "control: %d clients already; refusing "
				        "more",
				        CONTROL_MAX_CLIENTS);
			close(fd);
			continue;
		}
		c->refused = 0;
		client_new(c, fd, uid);
	}
}

/* --- events to followers -------------------------------------------------- */

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
			client_write(cl, c->sb.data, c->sb.size);
}

/* --- worker output to followers ------------------------------------------- */

/* The logcap sink: {t: log, name, stream, line} to whoever follows name. */
void
control_log_line(void *arg, const char *name, enum logcap_stream stream,
                 const char *line, size_t len)
{
	struct control *c = arg;
	msgpack_packer pk;
	bool packed = false;

	for (struct client *cl = c->clients; cl != NULL; cl = cl->next) {
		if (cl->logs == NULL || cl->dead || strcmp(cl->logs, name) != 0)
			continue;
		if (!packed) {
			msgpack_packer_init(&pk, &c->sb, msgpack_sbuffer_write);
			agentsup_wire_begin(&c->sb);
			msgpack_pack_map(&pk, 4);
			agentsup_wire_kv_str(&pk, "t", CONTROL_T_LOG);
			agentsup_wire_kv_str(&pk, "name", name);
			agentsup_wire_kv_str(
			        &pk, "stream",
			        stream == LOGCAP_STDERR ? "stderr" : "stdout");
			agentsup_wire_pack_str(&pk, "line");
			msgpack_pack_str(&pk, len);
			msgpack_pack_str_body(&pk, line, len);
			if (agentsup_wire_end(&c->sb, CONTROL_MAX_OUT) < 0)
				return;
			packed = true;
		}
		client_write(cl, c->sb.data, c->sb.size);
	}
}
