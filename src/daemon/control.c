/*
 * control.c - the control socket: where it lives (made again when removed),
 * who gets in, and the events kept for clients. A client's bytes are
 * client.c's; workers' output to followers control_follow.c's; what a
 * request does is serve.c's.
 *
 * How many clients there may be at once is bounded, and RLIMIT_NOFILE
 * lowers the bound so that restarts always find descriptors. A full table
 * makes room by dropping the client slowest to finish its request or idle
 * longest (not one that follows or waits, while any other can go), so a
 * crowd of dribbling clients never locks the operator out.
 * Nothing a client does reaches the tree except through a validated one.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
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
#include "client.h"
#include "control.h"
#include "daemon.h"
#include "log.h"
#include "logsub.h"
#include "control_int.h"
#include "serve.h"
#include "session.h"
#include "util.h"

#define CONTROL_BACKOFF_S  1.0  /* stop accepting after EMFILE */
#define CONTROL_GOODBYE_MS 1000 /* at exit, for followers to read the end */
/* agentsupd's own: stdio, the loop, two signalfds, the pidfds' epoll,
 * events file, control and notify sockets, cgroup root, guard pipe, spawn
 * slots (20 at start), one spawn's 8, the store's 3, metrics, hooks and a
 * config read */
#define CONTROL_FD_RESERVE 40

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

/* A socket listening at path (0600), its file in *st; -1 and *why if not. */
static int
control_listen(const char *path, struct stat *st, const char **why)
{
	struct sockaddr_un sa;
	mode_t old;
	int fd, r;

	if (fill_addr(&sa, path) < 0) {
		*why = "socket path too long";
		return -1;
	}
	if (agentsup_wire_socket_dir(path, 1, why) < 0)
		return -1;
	if ((r = socket_in_use(path)) != 0) {
		*why = r > 0 ? "another agentsupd is running on this socket"
		             : strerror(errno);
		return -1;
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
	                 0)) < 0) {
		*why = strerror(errno);
		return -1;
	}
	old = umask(0177); /* the socket is born 0600 */
	r = bind(fd, (struct sockaddr *)&sa, sizeof sa);
	umask(old);
	if (r < 0 || chmod(path, 0600) < 0 || listen(fd, 64) < 0 ||
	    stat(path, st) < 0) {
		*why = strerror(errno);
		close(fd);
		return -1;
	}
	return fd;
}

struct control *
control_open(struct daemon *d, const char *path, const char **why)
{
	struct control *c;
	struct stat st;
	int fd;

	if ((fd = control_listen(path, &st, why)) < 0)
		return NULL;
	c = xcalloc(1, sizeof *c);
	c->d = d;
	c->fd = fd;
	c->path = xstrdup(path);
	c->dev = st.st_dev;
	c->ino = st.st_ino;
	msgpack_sbuffer_init(&c->sb);
	ev_io_init(&c->accept_w, accept_cb, fd, EV_READ);
	c->accept_w.data = c;
	ev_io_start(d->loop, &c->accept_w);
	ev_init(&c->backoff, backoff_cb);
	c->backoff.data = c;
	clients_init(&c->clients, d->loop);
	return c;
}

/* Whether the path still holds our socket (not removed, nor rebound). */
static bool
control_owns_path(const struct control *c)
{
	struct stat st;

	return stat(c->path, &st) == 0 && st.st_dev == c->dev &&
	       st.st_ino == c->ino;
}

void
control_reopen(struct control *c)
{
	const char *why;
	struct stat st;
	int fd;

	if (c == NULL || control_owns_path(c))
		return;
	if ((fd = control_listen(c->path, &st, &why)) < 0) {
		log_warnx("control socket %s: not made again: %s", c->path,
		          why);
		return;
	}
	ev_io_stop(c->d->loop, &c->accept_w);
	close(c->fd);
	c->fd = fd;
	c->dev = st.st_dev;
	c->ino = st.st_ino;
	ev_io_set(&c->accept_w, fd, EV_READ);
	if (!ev_is_active(&c->backoff))
		ev_io_start(c->d->loop, &c->accept_w);
	log_info("control socket %s was gone: listening there again", c->path);
}

/* Followers are told that agentsupd exits: a closed connection alone reads
 * as a daemon that could not be reached. */
static void
control_goodbye(struct control *c)
{
	char why[128];

	snprintf(why, sizeof why,
	         "agentsupd exited (status %d): nothing more to follow",
	         c->d->exit_code);
	for (struct client *cl = c->clients.head; cl != NULL; cl = cl->next)
		if (cl->follow || cl->logs != NULL)
			client_end_exit(cl, why, c->d->exit_code);
	clients_linger(&c->clients, CONTROL_GOODBYE_MS);
}

void
control_close(struct control *c)
{
	if (c == NULL)
		return;
	control_goodbye(c);
	clients_free(&c->clients);
	ev_io_stop(c->d->loop, &c->accept_w);
	ev_timer_stop(c->d->loop, &c->backoff);
	close(c->fd);
	/* ours only: another agentsupd may have bound the path since */
	if (control_owns_path(c) && unlink(c->path) < 0 && errno != ENOENT)
		log_warn("unlink %s", c->path);
	for (size_t i = 0; i < CONTROL_HISTORY; i++) {
		free(c->history[i]);
		free(c->hpath[i]);
	}
	msgpack_sbuffer_destroy(&c->sb);
	logsub_free(&c->sub);
	free(c->path);
	free(c);
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

/* What the static workers below n hold when all run; a dynamic
 * supervisor's children, which come and go, are counted as they start
 * (session.c). Not a node held stopped (`autostart: false`, an operator's
 * stop): it starts only by a command, which needs a client to get in (9,000
 * workers held on demand left no descriptor for the one that starts them). */
static size_t
count_fds(const struct node *n, bool files)
{
	size_t k = 0;

	if (n->held && n->state == NODE_STOPPED)
		return 0;
	if (n->spec->kind == KIND_WORKER)
		return session_fds(n->spec, files);
	if (n->spec->tmpl != NULL)
		return 0;
	for (size_t i = 0; i < n->nchildren; i++)
		k += count_fds(n->children[i], files);
	return k;
}

/* The descriptors the tree's workers hold: the static ones counted once per
 * config and after each command (a walk: nodes and holds change only with
 * them), the running dynamic children's as they are. */
static size_t
control_worker_fds(struct control *c)
{
	if (c->counted != c->d->cfg) {
		c->counted = c->d->cfg;
		c->static_fds = count_fds(c->d->tree->root,
		                          c->d->cfg->settings.log_dir != NULL);
	}
	return c->static_fds + c->d->dynamic_fds;
}

void
control_reconfigured(struct control *c)
{
	if (c != NULL)
		c->counted = NULL;
}

static rlim_t
control_nofile(void)
{
	struct rlimit rl;

	return getrlimit(RLIMIT_NOFILE, &rl) == 0 ? rl.rlim_cur : 0;
}

/* How many clients there may be: CONTROL_MAX_CLIENTS, or fewer when
 * RLIMIT_NOFILE leaves too few descriptors beside those that the daemon
 * and its workers need (*held: the workers'). */
static size_t
control_capacity(struct control *c, rlim_t *nofile, size_t *held)
{
	struct rlimit rl;
	size_t need;

	*held = control_worker_fds(c);
	need = CONTROL_FD_RESERVE + *held;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY)
		return CONTROL_MAX_CLIENTS;
	*nofile = rl.rlim_cur;
	if (rl.rlim_cur <= need)
		return 0;
	return rl.rlim_cur - need < CONTROL_MAX_CLIENTS ? rl.rlim_cur - need
	                                                : CONTROL_MAX_CLIENTS;
}

/* Running short of descriptors for clients is an event, so an operator
 * can alert on it, not only a log line. */
static void __attribute__((format(printf, 2, 3)))
control_short(struct control *c, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	events_emit(&c->d->events, EV_CONTROL_LIMITED, c->d->tree->root->path,
	            0, "descriptors", 0, "%s", msg);
}

/* A client there is no room for at all is told why before it goes (it
 * saw only "connection reset"): an answer to any request, id 0. */
static void
control_refuse_fd(int fd, rlim_t nofile)
{
	char msg[256];
	msgpack_sbuffer sb;
	msgpack_packer pk;

	snprintf(msg, sizeof msg,
	         "agentsupd is refusing control clients: RLIMIT_NOFILE %lu "
	         "leaves no descriptor to spare beside its workers' (its "
	         "event control_limited; raise it: ulimit -n, LimitNOFILE=)",
	         (unsigned long)nofile);
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	serve_res_head(&sb, 0, false, false);
	agentsup_wire_pack_str(&pk, msg);
	if (agentsup_wire_end(&sb, AGENTSUP_MAX_FRAME) == 0)
		(void)send(fd, sb.data, sb.size, MSG_NOSIGNAL | MSG_DONTWAIT);
	msgpack_sbuffer_destroy(&sb);
}

/* Make room for one more client; false if there can be none at all. The
 * bound falls as dynamic children start: as many clients go as it takes. */
static bool
control_make_room(struct control *c, uint64_t now)
{
	rlim_t nofile = 0;
	size_t held, cap = control_capacity(c, &nofile, &held);
	struct client *victim;

	if (c->clients.n < cap) {
		if (c->full && c->evicted > 1)
			log_info("control: %lu clients were dropped to make "
			         "room",
			         c->evicted);
		c->full = c->refusing = false;
		c->evicted = 0;
		return true;
	}
	if (cap == 0 || (victim = clients_victim(&c->clients, now)) == NULL) {
		if (!c->refusing)
			control_short(
			        c,
			        "refusing control clients: RLIMIT_NOFILE "
			        "%lu leaves no descriptor to spare beside "
			        "the %zu the workers hold (raise it: ulimit "
			        "-n)",
			        (unsigned long)nofile, held);
		c->refusing = true;
		return false;
	}
	if (!c->full) {
		if (cap < CONTROL_MAX_CLIENTS)
			control_short(
			        c,
			        "%zu control clients, all that RLIMIT_NOFILE "
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
	do { /* nothing holds a client in an accept callback */
		c->evicted++;
		client_free(victim);
	} while (c->clients.n >= cap &&
	         (victim = clients_victim(&c->clients, now)) != NULL);
	return true;
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
	if (!c->starved) /* once per episode: it may last */
		control_short(c,
		              "cannot accept control clients: %s (trying "
		              "again every %gs)",
		              strerror(errno), CONTROL_BACKOFF_S);
	c->starved = true;
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
		if (c->starved)
			log_info("control: accepting clients again");
		c->starved = false;
		if (!peer_allowed(fd, &uid)) {
			log_warnx("control: refused a client of uid %lu",
			          (unsigned long)uid);
			close(fd);
			continue;
		}
		if (!control_make_room(c, now)) {
			control_refuse_fd(fd, control_nofile());
			close(fd);
			continue;
		}
		(void)client_new(&c->clients, c, c->d, fd, uid, now);
	}
}

/* --- events to followers -------------------------------------------------- */

struct client *
control_client(struct control *c, uint64_t serial)
{
	return c != NULL ? clients_find(&c->clients, serial) : NULL;
}

const char *
control_history(const struct control *c, size_t i, size_t *len,
                const char **path)
{
	size_t k;

	if (i >= c->hcount)
		return NULL;
	k = (c->hhead + CONTROL_HISTORY - c->hcount + i) % CONTROL_HISTORY;
	*len = c->hlen[k];
	*path = c->hpath[k];
	return c->history[k];
}

bool
control_in_subtree(const char *path, const char *top)
{
	return top == NULL || strcmp(path, top) == 0 || logsub_under(path, top);
}

/* An event's typed fields (a spent budget's limit, spend and allowed), as
 * the events file has them (NaN and Inf as nil); past EVENTS_FIELDS_MAX
 * none, as there. */
static void
control_event_fields(msgpack_packer *pk, const struct event *e, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const struct event_field *f = &e->fields[i];

		agentsup_wire_pack_str(pk, f->key);
		if (f->type == EVENT_UINT)
			msgpack_pack_uint64(pk, f->u);
		else if (f->type == EVENT_DOUBLE && isfinite(f->d))
			msgpack_pack_double(pk, f->d);
		else if (f->type == EVENT_STR && f->s != NULL)
			agentsup_wire_pack_str(pk, f->s);
		else
			msgpack_pack_nil(pk);
	}
}

/* The events sink: keep the event in the history, send it to followers.
 * The map has the events file's keys (reason and detail nil when absent),
 * so that one jq filter reads both. */
void
control_event(void *arg, const struct event *e, const char *json)
{
	struct control *c = arg;
	size_t nf =
	        e->nfields < EVENTS_FIELDS_MAX ? e->nfields : EVENTS_FIELDS_MAX;
	msgpack_sbuffer sb;
	msgpack_packer pk;
	char when[32];

	(void)json;
	events_format_time(e->time_ms, when, sizeof when, 1);
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(
	        &pk, (uint32_t)(9 + (e->run_ms != 0) + (e->tail != NULL) + nf));
	agentsup_wire_kv_uint(&pk, "seq", e->seq);
	if (e->run_ms != 0)
		agentsup_wire_kv_int(&pk, "run", e->run_ms);
	agentsup_wire_kv_str(&pk, "time", when);
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
	if (e->tail != NULL) /* a failure's last lines of output */
		agentsup_wire_kv_str(&pk, "tail", e->tail);
	control_event_fields(&pk, e, nf);
	/* history: the bare event map */
	free(c->history[c->hhead]);
	free(c->hpath[c->hhead]);
	c->history[c->hhead] = xmalloc(sb.size);
	memcpy(c->history[c->hhead], sb.data, sb.size);
	c->hpath[c->hhead] = xstrdup(e->path);
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
	if (agentsup_wire_end(&c->sb, CONTROL_MAX_EVENT) < 0)
		return;
	for (struct client *cl = c->clients.head; cl != NULL; cl = cl->next)
		if (cl->follow && !cl->dead &&
		    control_in_subtree(e->path, cl->events_under))
			client_push(cl, c->sb.data, c->sb.size);
}
