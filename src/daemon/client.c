/*
 * client.c - one client of the control socket: its bytes in and out and its
 * deadlines. Who gets in is control.c's; what a request does is serve.c's.
 *
 * Every client is bounded: its partial input (one frame), its unsent output,
 * and the time from a request's first byte to its last (a byte now and then
 * does not extend it, so a dribbling client cannot hold its place).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agentsup/wire.h"
#include "client.h"
#include "clock.h"
#include "control.h"
#include "daemon.h"
#include "log.h"
#include "peer.h"
#include "request.h"
#include "serve.h"
#include "session.h"
#include "tasks.h"
#include "util.h"

#define CLIENT_MAX_OUT    (8u << 20)  /* unread answers before a request */
#define CLIENTS_MAX_OUT   (32u << 20) /* all clients' together */
#define CLIENT_KEEP_OUT   (64u << 10) /* a buffer kept once all is sent */
#define CLIENT_MAX_LAG    (1u << 20)  /* a follower this far behind goes */
#define CLIENT_REQUEST_MS 10000 /* from a request's first byte to its last */
#define CLIENT_IDLE_MS    60000 /* a silent, non-following client */
#define CLIENT_END_MS     10000 /* to read what preceded its end frame */
#define CLIENT_UNREAD_MS  10000 /* output pending, none of it read */

static void sweep_cb(struct ev_loop *, ev_prepare *, int);
static void client_arm(struct client *, uint64_t now);

void
clients_init(struct clients *all, struct ev_loop *loop)
{
	memset(all, 0, sizeof *all);
	all->loop = loop;
	ev_prepare_init(&all->sweep, sweep_cb);
	all->sweep.data = all;
}

void
clients_free(struct clients *all)
{
	while (all->head != NULL)
		client_free(all->head);
	ev_prepare_stop(all->loop, &all->sweep);
}

void
client_free(struct client *cl)
{
	struct clients *all = cl->all;
	struct ev_loop *loop = all->loop;

	ev_io_stop(loop, &cl->rio);
	ev_io_stop(loop, &cl->wio);
	ev_timer_stop(loop, &cl->timer);
	tasks_client_gone(cl->d, cl);
	close(cl->fd);
	if (cl->prev != NULL)
		cl->prev->next = cl->next;
	else
		all->head = cl->next;
	if (cl->next != NULL)
		cl->next->prev = cl->prev;
	all->n--;
	all->answers -= cl->answers;
	agentsup_reader_free(&cl->reader);
	free(cl->out);
	free(cl->logs);
	free(cl->events_under);
	free(cl->worker);
	free(cl);
}

/* n bytes of answers were read (or will never be) */
static void
client_answered(struct client *cl, size_t n)
{
	cl->answers -= n;
	cl->all->answers -= n;
}

/* Mark for closing; freed by the sweep once the current callback is done,
 * since the caller (or an event sink deeper in its stack) may still hold it. */
void
client_drop(struct client *cl, const char *why)
{
	struct ev_loop *loop = cl->all->loop;

	if (cl->dead)
		return;
	if (why != NULL)
		log_warnx("control client (uid %lu): %s; disconnected",
		          (unsigned long)cl->uid, why);
	cl->dead = true;
	/* its answers will never be read: out of the bound now (counted
	 * until the sweep, they had it shed a client asking in this turn) */
	client_answered(cl, cl->answers);
	ev_io_stop(loop, &cl->rio);
	ev_io_stop(loop, &cl->wio);
	ev_timer_stop(loop, &cl->timer);
	ev_prepare_start(loop, &cl->all->sweep);
}

static void
sweep_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
	struct clients *all = w->data;

	(void)revents;
	for (struct client *cl = all->head, *next; cl != NULL; cl = next) {
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

/* All sent: a large buffer goes, or a client that once read a ledger's
 * dead letters and stayed (a monitor asking now and then) held twice
 * their size for as long as it stayed. */
static void
client_out_sent(struct client *cl)
{
	cl->outoff = 0;
	if (cl->outcap > CLIENT_KEEP_OUT) {
		free(cl->out);
		cl->out = NULL;
		cl->outcap = 0;
	}
}

/* Its unsent output freed now, not at the sweep: eight askers shed one
 * after another in one turn each held a whole answer until the turn
 * ended (37.5 MiB each: 350 MiB). Nothing is sent to it any more. */
static void
client_forget_output(struct client *cl)
{
	free(cl->out);
	cl->out = NULL;
	cl->outlen = cl->outoff = cl->outcap = 0;
}

void
client_flush(struct client *cl)
{
	ssize_t n;

	while (cl->outlen > 0 && !cl->dead) {
		n = send(cl->fd, cl->out + cl->outoff, cl->outlen,
		         MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			ev_io_start(cl->all->loop, &cl->wio);
			return;
		}
		if (n < 0) {
			client_forget_output(cl);
			client_drop(cl, NULL); /* it went away */
			return;
		}
		cl->outoff += (size_t)n;
		cl->outlen -= (size_t)n;
		cl->read_ms = clock_now_ms(); /* it reads */
		client_answered(cl, (size_t)n < cl->answers ? (size_t)n
		                                            : cl->answers);
	}
	if (cl->outlen == 0)
		client_out_sent(cl);
	ev_io_stop(cl->all->loop, &cl->wio);
	if (cl->outlen == 0 && (cl->ending || cl->hungup))
		client_drop(cl, NULL); /* it has read its end, or its answers */
}

static void
client_queue(struct client *cl, const char *data, size_t len)
{
	bool owes = cl->outlen == 0; /* from now it owes reading this */

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
	if (owes) { /* armed once counted: a follower has no other deadline */
		cl->read_ms = clock_now_ms();
		client_arm(cl, cl->read_ms);
	}
	client_flush(cl);
}

void
client_send(struct client *cl, const char *data, size_t len)
{
	if (cl->dead)
		return;
	cl->answers += len;
	cl->all->answers += len;
	client_queue(cl, data, len);
}

void
client_push(struct client *cl, const char *data, size_t len)
{
	if (cl->dead || cl->ending)
		return;
	if (cl->outlen - cl->answers + len > CLIENT_MAX_LAG) {
		log_warnx("control client (uid %lu): a slow follower, too far "
		          "behind; disconnected",
		          (unsigned long)cl->uid);
		client_end(cl, "lag",
		           "agentsupd stopped this follow: it fell too far "
		           "behind (1 MiB unread); what came meanwhile was not "
		           "sent");
		return;
	}
	client_queue(cl, data, len);
}

/* {t: end, cause, reason[, status]}; status < 0: none. */
static void
client_end_with(struct client *cl, const char *cause, const char *reason,
                int status)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;

	if (cl->dead || cl->ending)
		return;
	cl->ending = true;
	cl->end_ms = clock_now_ms();
	ev_io_stop(cl->all->loop, &cl->rio); /* no request after its end */
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	agentsup_wire_begin(&sb);
	msgpack_pack_map(&pk, status >= 0 ? 4 : 3);
	agentsup_wire_kv_str(&pk, "t", CONTROL_T_END);
	agentsup_wire_kv_str(&pk, "cause", cause);
	agentsup_wire_kv_str(&pk, "reason", reason);
	if (status >= 0)
		agentsup_wire_kv_uint(&pk, "status", (uint64_t)status);
	if (agentsup_wire_end(&sb, CLIENT_MAX_LAG) == 0)
		client_queue(cl, sb.data, sb.size); /* dropped once read */
	else
		client_drop(cl, NULL);
	msgpack_sbuffer_destroy(&sb);
	if (!cl->dead)
		client_arm(cl, cl->end_ms);
}

void
client_end(struct client *cl, const char *cause, const char *reason)
{
	client_end_with(cl, cause, reason, -1);
}

void
client_end_exit(struct client *cl, const char *reason, int status)
{
	client_end_with(cl, "exit", reason, status);
}

static void
write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct client *cl = w->data;

	(void)loop;
	(void)revents;
	client_flush(cl);
}

/* --- deadlines ------------------------------------------------------------ */

/* Whether it is silent by design, not idle: it follows events or output,
 * waits on a task, or waits for a reload's answer. */
static bool
client_holds(const struct client *cl)
{
	return cl->follow || cl->waiting || cl->logs != NULL || cl->reloads > 0;
}

struct client *
clients_victim(struct clients *all, uint64_t now)
{
	struct client *best = NULL;
	uint64_t best_age = 0, age;
	bool best_holds = false, holds;

	for (struct client *cl = all->head; cl != NULL; cl = cl->next) {
		if (cl->dead)
			continue;
		age = now - (agentsup_reader_pending(&cl->reader)
		                     ? cl->req_start_ms
		                     : cl->last_ms);
		holds = client_holds(cl);
		if (best == NULL || (best_holds && !holds) ||
		    (best_holds == holds && age >= best_age)) {
			best = cl;
			best_age = age;
			best_holds = holds;
		}
	}
	return best;
}

/* A request must be whole CLIENT_REQUEST_MS after its first byte, however
 * the bytes dribble in; a silent client may stay CLIENT_IDLE_MS. */
static uint64_t
client_deadline_in(const struct client *cl)
{
	if (cl->hungup)
		return UINT64_MAX; /* only that it reads its answers */
	if (cl->ending)
		return cl->end_ms + CLIENT_END_MS;
	if (agentsup_reader_pending(&cl->reader) > 0)
		return cl->req_start_ms + CLIENT_REQUEST_MS;
	if (client_holds(cl))
		return UINT64_MAX; /* a follower may stay silent for ever */
	return cl->last_ms + CLIENT_IDLE_MS;
}

/* ... and whatever it was sent must be read: a follower that never reads
 * its first answer (a tree's logs, up to 8 MiB) held it for ever. */
static uint64_t
client_deadline(const struct client *cl)
{
	uint64_t at = client_deadline_in(cl);

	if (cl->outlen > 0 && cl->read_ms + CLIENT_UNREAD_MS < at)
		at = cl->read_ms + CLIENT_UNREAD_MS;
	return at;
}

/* Whether the client stopped reading what it was sent. */
static bool
client_unread(const struct client *cl, uint64_t now)
{
	return cl->outlen > 0 && now >= cl->read_ms + CLIENT_UNREAD_MS;
}

static void
client_arm(struct client *cl, uint64_t now)
{
	uint64_t at = client_deadline(cl);

	if (at == UINT64_MAX)
		return;
	if (ev_is_active(&cl->timer) && cl->armed_ms <= at)
		return; /* a running timer re-arms itself when it fires */
	ev_timer_stop(cl->all->loop, &cl->timer);
	cl->armed_ms = at;
	ev_timer_set(&cl->timer, at > now ? (double)(at - now) / 1000.0 : 0.0,
	             0.0);
	ev_timer_start(cl->all->loop, &cl->timer);
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
	if (client_unread(cl, now)) {
		client_drop(cl, "read nothing of its answers for 10 s");
		return;
	}
	if (!cl->ending && !agentsup_reader_pending(&cl->reader)) {
		/* a library's connection left open (agentsup.control
		 * reconnects): nothing wrong, no warning */
		log_info("control client (uid %lu): idle for %u s; "
		         "disconnected",
		         (unsigned long)cl->uid, CLIENT_IDLE_MS / 1000);
		client_drop(cl, NULL);
		return;
	}
	client_drop(cl, cl->ending ? "did not read the end of its follow"
	                           : "too slow to finish a request");
}

/* --- reading -------------------------------------------------------------- */

/* While all clients together owe more than CLIENTS_MAX_OUT, the one
 * that owes most goes, its answer freed now: each client that asked once
 * and then read a byte now and then held a whole answer, and 128 of them
 * (a large tree's status, a ledger's dead letters) were gigabytes. */
static void
clients_shed(struct clients *all)
{
	while (all->answers > CLIENTS_MAX_OUT) {
		struct client *most = NULL;

		for (struct client *c = all->head; c != NULL; c = c->next)
			if (!c->dead && c->answers > 0 &&
			    (most == NULL || c->answers > most->answers))
				most = c;
		if (most == NULL)
			return;
		client_forget_output(most);
		client_drop(most, "owed the most of 32 MiB of answers "
		                  "unread when another client asked");
	}
}

static void
client_dispatch(struct client *cl, const struct agentsup_frame *f)
{
	struct request r;
	const char *why;

	if (!agentsup_wire_is(f, AGENTSUP_T_REQ)) {
		serve_refuse(cl, 0, "expected a \"req\" message");
		client_drop(cl, "sent a message that is not a request");
		return;
	}
	/* a follower's too; and when all clients together hold too much,
	 * any that asks again without reading (the rest, reading, are not
	 * held up: theirs is 0 when they ask) */
	if (cl->answers > CLIENT_MAX_OUT ||
	    (cl->answers > 0 && cl->all->answers > CLIENTS_MAX_OUT)) {
		client_forget_output(cl);
		client_drop(cl, "not reading its responses");
		return;
	}
	if (request_parse(&f->map, &r, &why) < 0) {
		serve_refuse(cl, r.id, why);
		return;
	}
	clients_shed(cl->all);
	serve_request(cl, cl->ctl, cl->d, &r);
}

/* One whole request: served, unless the client is gone meanwhile. */
static int
client_on_frame(void *arg, const struct agentsup_frame *f)
{
	struct client *cl = arg;

	client_dispatch(cl, f);
	return cl->dead;
}

/* It closed its side with answers queued (shutdown(SHUT_WR) after its
 * request): they are sent, then it goes. Dropped at its EOF, it was sent
 * what fitted, part of a frame, and closed. */
static void
client_hangup(struct client *cl, uint64_t now)
{
	cl->hungup = true;
	ev_io_stop(cl->all->loop, &cl->rio);
	agentsup_reader_free(&cl->reader); /* a partial request: never whole */
	client_arm(cl, now);
}

static void
read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct client *cl = w->data;
	uint64_t now = clock_now_ms();
	bool fresh = agentsup_reader_pending(&cl->reader) == 0;
	int r;

	(void)loop;
	(void)revents;
	/* the one frame reader: the limit in force now, at every read */
	r = agentsup_reader_read(&cl->reader, cl->fd, daemon_max_frame(cl->d),
	                         &cl->d->zone, client_on_frame, cl);
	if (r == AGENTSUP_READ_AGAIN ||
	    (r == AGENTSUP_READ_ERRNO && errno == EINTR))
		return;
	if (r == 0 && cl->outlen > 0) {
		client_hangup(cl, now);
		return;
	}
	if (r == 0 || r == AGENTSUP_READ_ERRNO) {
		client_drop(cl, NULL);
		return;
	}
	if (r < 0 && r != AGENTSUP_READ_STOPPED) {
		serve_refuse(cl, 0, agentsup_wire_strerror(r));
		client_drop(cl, agentsup_wire_strerror(r));
		return;
	}
	if (fresh || agentsup_reader_pending(&cl->reader) == 0)
		cl->req_start_ms = now; /* a request's first byte */
	cl->last_ms = now;
	if (!cl->dead)
		client_arm(cl, now);
}

/* Workers do not steer the supervisor: a peer in a worker's process tree
 * (an ancestor, its process group or its cgroup is the worker's) is that
 * worker, whatever its uid. Told once, at connect: the kernel's credentials
 * are those of the connecting process. */
static char *
client_worker(struct daemon *d, int fd, bool *gone)
{
	struct ucred cred;
	socklen_t len = sizeof cred;
	char path[PEER_PATH_MAX];

	/* pid 0: a peer in a PID namespace we cannot see, never one of our
	 * workers' (theirs are ours or below) */
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 ||
	    cred.pid <= 0)
		return NULL;
	switch (peer_worker(d, cred.pid, path, sizeof path)) {
	case PEER_OUTSIDE:
		return NULL;
	case PEER_GONE:
		*gone = true;
		return NULL;
	case PEER_WORKER:
		break;
	}
	return xstrdup(path);
}

struct client *
clients_find(struct clients *all, uint64_t serial)
{
	for (struct client *cl = all->head; cl != NULL; cl = cl->next)
		if (cl->serial == serial)
			return cl->dead ? NULL : cl;
	return NULL;
}

struct client *
client_new(struct clients *all, struct control *c, struct daemon *d, int fd,
           uid_t uid, uint64_t now)
{
	struct client *cl = xcalloc(1, sizeof *cl);

	cl->all = all;
	cl->ctl = c;
	cl->d = d;
	cl->fd = fd;
	cl->uid = uid;
	cl->serial = ++all->serial;
	cl->worker = client_worker(d, fd, &cl->peer_gone);
	cl->last_ms = now;
	agentsup_reader_init(&cl->reader);
	ev_io_init(&cl->rio, read_cb, fd, EV_READ);
	ev_io_init(&cl->wio, write_cb, fd, EV_WRITE);
	ev_init(&cl->timer, timer_cb);
	cl->rio.data = cl->wio.data = cl->timer.data = cl;
	ev_io_start(all->loop, &cl->rio);
	cl->next = all->head;
	if (all->head != NULL)
		all->head->prev = cl;
	all->head = cl;
	all->n++;
	client_arm(cl, now);
	return cl;
}
