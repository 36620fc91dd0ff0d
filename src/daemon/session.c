/*
 * session.c - a worker's running instance: the process, its channel, its one
 * deadline timer (start, heartbeat, hang grace, drain, kill) and the reap.
 *
 * Callbacks here only report into the engine (tree_ready, tree_exited...);
 * the engine's actions are carried out by the pump in daemon.c. The session
 * is freed only at the reap, after the worker's last frames have been read,
 * so a final heartbeat or declaration is never lost to the order in which
 * the exit and the socket's end of file arrive. What the worker says (its
 * channel, its sd_notify datagrams) is handled in session_in.c.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "channel.h"
#include "ckpt.h"
#include "clock.h"
#include "contain.h"
#include "dynamic.h"
#include "daemon.h"
#include "envload.h"
#include "log.h"
#include "logcap.h"
#include "notify.h"
#include "reap.h"
#include "session_int.h"
#include "signals.h"
#include "tasks.h"
#include "timer.h"
#include "util.h"

#define HANG_GRACE_MS 1000 /* after SIGUSR1, time to dump stacks */
static void session_timer_cb(struct ev_loop *, ev_timer *, int);

/* --- signals and deadlines ----------------------------------------------- */

/* Signal the worker's process group, so its own children go with it. */
static void
session_signal(struct session *s, int sig)
{
	if (kill(-s->pid, sig) == 0 || errno == ESRCH)
		return;
	/* the worker may have left its group (setsid): reach it at least */
	if (kill(s->pid, sig) < 0 && errno != ESRCH)
		log_warn("kill %ld %s", (long)s->pid, sigabbrev_np(sig));
}

void
session_deadline_us(struct session *s, enum deadline kind, uint64_t after_us)
{
	ev_timer_stop(s->d->loop, &s->timer);
	s->deadline = kind;
	if (kind != DEADLINE_NONE)
		timer_after_us(s->d->loop, &s->timer, after_us);
}

void
session_deadline(struct session *s, enum deadline kind, uint64_t after_ms)
{
	session_deadline_us(s, kind, after_ms * 1000);
}

/* The stop sequence: its stop_signal, SIGTERM unless set (and SIGCONT, so
 * a stopped process sees it), SIGKILL after `shutdown`; or SIGKILL at once
 * for brutal_kill. */
static void
session_terminate(struct session *s)
{
	int64_t grace = s->node->spec->pol->shutdown_ms;

	if (s->deadline == DEADLINE_KILL || s->killed)
		return; /* already on its way */
	if (grace == SHUTDOWN_BRUTAL_KILL) {
		session_signal(s, SIGKILL);
		s->killed = true;
		session_deadline(s, DEADLINE_NONE, 0);
		return;
	}
	session_signal(s, signals_stop(s->node->spec->pol->stop_signal));
	session_signal(s, SIGCONT);
	session_deadline(s, DEADLINE_KILL, (uint64_t)grace);
}

/* Whether the worker speaks the protocol and can still be told to drain:
 * a failed one (hang, protocol) gets signals only. */
static bool
session_listens(const struct session *s)
{
	return s->chan != NULL && channel_said_hello(s->chan) &&
	       channel_is_open(s->chan) && s->cause.kind == REASON_NONE;
}

void
session_stop(struct session *s, enum stop_how how)
{
	const struct spec *sp = s->node->spec;

	if (s->deadline == DEADLINE_KILL || s->killed)
		return; /* already on its way */
	if (how == STOP_GRACEFUL && s->drain_ms == 0 && session_listens(s)) {
		/* an operator's stop or a reload's restart: finish first */
		s->drain_ms = clock_now_ms();
		if (channel_send_drain(s->chan, sp->pol->drain_timeout_ms,
		                       daemon_max_frame(s->d)) == 0) {
			session_deadline(s, DEADLINE_DRAIN,
			                 sp->pol->drain_timeout_ms);
			return;
		}
	}
	if (sp->pol->shutdown_ms != SHUTDOWN_BRUTAL_KILL && s->drain_ms == 0 &&
	    session_listens(s) &&
	    channel_send_drain(s->chan, (uint64_t)sp->pol->shutdown_ms,
	                       daemon_max_frame(s->d)) == 0) {
		/* instead of a bare SIGTERM: drain within `shutdown`; one
		 * already told to drain and still here gets SIGTERM */
		session_deadline(s, DEADLINE_KILL,
		                 (uint64_t)sp->pol->shutdown_ms);
		return;
	}
	session_terminate(s);
}

/* A drain: the protocol's drain message to a worker that said hello,
 * SIGTERM to one that did not; the stop sequence after drain_timeout. */
void
session_drain(struct session *s)
{
	const struct spec *sp = s->node->spec;

	/* a failure already on its way (a hang's grace) keeps its sequence */
	if (s->drain_ms != 0 || !session_failable(s))
		return;
	s->drain_ms = clock_now_ms();
	if (s->chan == NULL ||
	    channel_send_drain(s->chan, sp->pol->drain_timeout_ms,
	                       daemon_max_frame(s->d)) < 0) {
		session_signal(s, signals_stop(sp->pol->stop_signal));
		session_signal(s, SIGCONT);
	}
	session_deadline(s, DEADLINE_DRAIN, sp->pol->drain_timeout_ms);
}

bool
session_failable(const struct session *s)
{
	return s->cause.kind == REASON_NONE && s->deadline != DEADLINE_KILL &&
	       !s->killed;
}

/* A failure seen while the process still runs (hang, start_timeout,
 * protocol): record why, then take it down. A hang first gets SIGUSR1 so
 * it can dump its stacks. */
void
session_fail(struct session *s, struct reason cause)
{
	if (!session_failable(s))
		return;
	s->cause = cause;
	if (cause.kind == REASON_HANG) {
		session_signal(s, SIGUSR1);
		session_deadline(s, DEADLINE_HANG, HANG_GRACE_MS);
		return;
	}
	session_terminate(s);
}

void
session_over_memory(struct session *s, uint64_t rss)
{
	events_emit(&s->d->events, EV_MEMORY, s->node->path, s->pid, "memory",
	            s->node->starts - 1,
	            "%llu bytes, more than max_memory %llu",
	            (unsigned long long)rss,
	            (unsigned long long)s->node->spec->pol->max_memory);
	session_fail(s, (struct reason){.kind = REASON_MEMORY});
}

void
session_reloaded(struct session *s)
{
	char name[SESSION_CAPTURE_NAME_MAX];
	struct logcap *lc =
	        logcap_find(s->d->logcap, session_capture_name(s->node, name));

	if (lc != NULL) /* a reload may change its own log_max, log_keep */
		logcap_file_limits(lc, s->node->spec->pol->log_max,
		                   s->node->spec->pol->log_keep);
	if (s->d->contain != NULL)
		contain_rewatch(s->d->contain, s->pid, s->node->path, s->cgroup,
		                s->node->spec->pol->max_memory);
}

void
session_fail_for(struct session *s, struct reason cause, bool drain)
{
	if (drain && s->cause.kind == REASON_NONE && s->drain_ms == 0 &&
	    s->deadline != DEADLINE_KILL && !s->killed) {
		session_drain(s);
		s->cause = cause;
		return;
	}
	session_fail(s, cause);
}

/* The worker alone: it goes on after a stall's nudge, and SIGUSR1 kills
 * a helper of its group that has no handler (a hang's goes to all: they
 * are stopped next anyway). */
void
session_dump(struct session *s)
{
	if (kill(s->pid, SIGUSR1) < 0 && errno != ESRCH)
		log_warn("kill %ld SIGUSR1", (long)s->pid);
}

/* The heartbeat deadline is lazy: beats only move last_beat_us; the timer
 * judges when it fires, after reading what already waits on the socket. */
uint32_t
session_beat_timeout(const struct spec *s)
{
	uint64_t ms = s->pol->heartbeat_ms ? s->pol->heartbeat_timeout_ms : 0;

	return ms < UINT32_MAX ? (uint32_t)ms : UINT32_MAX;
}

static void
session_timer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct session *s = t->data;

	(void)loop;
	(void)revents;
	switch ((enum deadline)s->deadline) {
	case DEADLINE_NONE:
		break;
	case DEADLINE_START:
		session_judge_start(s);
		break;
	case DEADLINE_READY:
		session_ready(s); /* it ran ready_after */
		break;
	case DEADLINE_HEARTBEAT:
		session_judge_beat(s);
		break;
	case DEADLINE_HANG:
	case DEADLINE_DRAIN:
		s->deadline = DEADLINE_NONE;
		session_terminate(s);
		break;
	case DEADLINE_KILL:
		s->deadline = DEADLINE_NONE;
		session_signal(s, SIGKILL);
		s->killed = true;
		break;
	}
}

/* --- start and end -------------------------------------------------------- */

const char *
session_capture_name(const struct node *n, char *buf)
{
	if (n->task == NULL)
		return n->spec->name;
	snprintf(buf, SESSION_CAPTURE_NAME_MAX, "%s:%s", n->task->sup,
	         n->spec->name);
	return buf;
}

bool
session_capture_key(const char *name, char *buf, size_t len)
{
	size_t n = strlen(name);
	char *colon;

	if (n >= len)
		return false;
	memcpy(buf, name, n + 1);
	if ((colon = strchr(buf, ':')) != NULL)
		*colon = '/';
	return true;
}

size_t
session_event_tail(void *arg, const char *path, char *buf, size_t len)
{
	struct daemon *d = arg;
	struct node *n = tree_find(d->tree, path);
	char name[SESSION_CAPTURE_NAME_MAX];

	if (len > 0)
		buf[0] = '\0';
	if (n == NULL || n->spec->kind != KIND_WORKER)
		return 0;
	return logcap_tail(
	        logcap_find(d->logcap, session_capture_name(n, name)),
	        LOGCAP_TAIL_LINES, buf, len);
}

unsigned
session_fds(const struct spec *s, bool files)
{
	unsigned streams = (unsigned)(s->out.mode == OUTPUT_CAPTURE) +
	                   (unsigned)(s->err.mode == OUTPUT_CAPTURE);

	/* + 1: its pidfd (reap.c) */
	return 2 + streams + (unsigned)(files && streams > 0);
}

int
session_start(struct daemon *d, struct node *n, char *why, size_t whylen)
{
	const struct spec *sp = n->spec;
	struct spawn_args a = {.spec = sp,
	                       .path = n->path,
	                       .incarnation = n->starts - 1,
	                       .output = {-1, -1},
	                       .cgroup_fd = -1,
	                       .last = !tree_starts_queued(d->tree)};
	bool out = sp->out.mode == OUTPUT_CAPTURE,
	     err = sp->err.mode == OUTPUT_CAPTURE;
	struct logcap *lc = NULL;
	char capname[SESSION_CAPTURE_NAME_MAX];
	struct spawn_result r;
	struct session *s;
	unsigned long cgroup;
	char **fenv;
	int rc, saved;

	if (sp->pol->notify == NOTIFY_SYSTEMD && d->notify != NULL)
		a.notify_socket = notify_server_address(d->notify);
	if (sp->pol->control != 0) /* its agentsupctl finds us */
		a.control_socket = d->socket_path;
	why[0] = '\0';
	if (envload_read(sp, &fenv, why, whylen) < 0)
		return -1;
	a.file_env = fenv;
	if ((out || err) &&
	    logcap_pipes(lc = logcap_get(d->logcap,
	                                 session_capture_name(n, capname)),
	                 out, err, a.output) < 0) {
		saved = errno;
		config_free_strv(fenv);
		errno = saved;
		return -1;
	}
	if (lc != NULL)
		logcap_file_limits(lc, sp->pol->log_max, sp->pol->log_keep);
	a.cgroup_fd = contain_enter_fd(d->contain, n->path, &cgroup);
	if (a.cgroup_fd < 0 && contain_cgroups(d->contain)) {
		saved = errno;
		if (lc != NULL)
			logcap_spawned(lc, false, a.output);
		config_free_strv(fenv);
		errno = saved;
		return -1; /* contained, or not at all */
	}
	rc = contain_ns_enter(d->contain) < 0 ? -1
	                                      : spawn_worker(&d->spawn, &a, &r);
	saved = errno;
	config_free_strv(fenv);
	contain_ns_leave(d->contain);
	if (a.cgroup_fd >= 0)
		close(a.cgroup_fd);
	if (lc != NULL)
		logcap_spawned(lc, rc == 0, a.output);
	if (rc < 0) {
		contain_kill(d->contain, n->path, cgroup); /* removes it */
		errno = saved;
		return -1;
	}
	if (sp->pol->max_memory)
		contain_watch(d->contain, r.pid, n->path, cgroup,
		              sp->pol->max_memory);
	s = xcalloc(1, sizeof *s);
	s->node = n;
	s->d = d;
	s->pid = r.pid;
	s->pidfd = r.pidfd;
	s->uid = r.uid;
	reap_watch(d, s);
	s->exec_error = r.exec_error;
	s->cgroup = cgroup;
	s->spawned_ms = clock_now_ms();
	s->last_beat_us = clock_now_us();
	s->beat_timeout_ms = session_beat_timeout(sp);
	ev_init(&s->timer, session_timer_cb);
	s->timer.data = s;
	n->session = s;
	pidmap_put(&d->pids, r.pid, s);
	if (n->parent != NULL && n->parent->spec->tmpl != NULL) {
		s->fds = (unsigned char)session_fds(
		        sp, d->cfg->settings.log_dir != NULL);
		d->dynamic_fds += s->fds; /* the control server's bound */
	}
	s->chan = channel_open(d->loop, r.chan, &session_channel_ops, s,
	                       &d->zone);
	if (s->exec_error == NULL) {
		if (sp->pol->start_timeout_ms)
			session_deadline(s, DEADLINE_START,
			                 sp->pol->start_timeout_ms);
		else if (sp->pol->ready_after_ms)
			session_deadline(s, DEADLINE_READY,
			                 sp->pol->ready_after_ms);
		else if (s->beat_timeout_ms)
			session_deadline(s, DEADLINE_HEARTBEAT,
			                 s->beat_timeout_ms);
	}
	return 0;
}

static struct reason
status_reason(int status)
{
	if (WIFSIGNALED(status))
		return (struct reason){.kind = REASON_SIGNAL,
		                       .code = WTERMSIG(status)};
	return (struct reason){.kind = REASON_EXIT,
	                       .code = WEXITSTATUS(status)};
}

/* "(declared permanent: bad API key)" when the worker said why within the
 * last 5 s: the event shows the real status and the declaration. */
static void
session_declared_text(const struct session *s, uint64_t now, char *buf,
                      size_t len)
{
	const struct declaration *d = tree_declaration(s->node);

	buf[0] = '\0';
	if (tree_declared(s->node, now) != DECLARED_NONE)
		snprintf(buf, len, " (declared %s%s%s)", declared_name(d->kind),
		         d->detail[0] ? ": " : "", d->detail);
}

/* Whether this exit counts for the checkpoint's poison guard: a failure,
 * unless the worker named a cause other than the checkpoint it was handed
 * (done, rate_limited, budget; a permanent one may well be the
 * checkpoint's); an operator's stop is no failure. */
static bool
session_poisoned(const struct session *s, struct reason r)
{
	enum declared_kind k = tree_declared(s->node, clock_now_ms());

	return s->node->state != NODE_STOPPING && reason_abnormal(r) &&
	       k != DECLARED_DONE && k != DECLARED_RATE_LIMITED &&
	       k != DECLARED_BUDGET;
}

/* A failure's last LOGCAP_TAIL_LINES lines of output (malloc'd), or NULL:
 * none captured, or no failure (a clean exit, a stop of ours). */
static char *
session_tail(const struct session *s, struct reason r)
{
	char name[SESSION_CAPTURE_NAME_MAX];
	struct logcap *lc =
	        logcap_find(s->d->logcap, session_capture_name(s->node, name));
	char *buf;

	if (lc == NULL || s->node->state == NODE_STOPPING ||
	    (r.kind == REASON_EXIT && r.code == 0))
		return NULL;
	buf = xmalloc(EVENTS_TAIL_TAKEN);
	if (logcap_tail(lc, LOGCAP_TAIL_LINES, buf, EVENTS_TAIL_TAKEN) == 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

/* The exit as an event: a drained worker's own status, or the reason; a
 * failure's with the worker's last lines of output. */
static void
session_report_exit(struct session *s, struct reason r, int status)
{
	struct node *n = s->node;
	uint64_t now = clock_now_ms();
	char why[64], said[192], *detail, *tail;
	struct event e = {.kind = EV_EXITED,
	                  .path = n->path,
	                  .pid = s->pid,
	                  .restarts = n->starts - 1};

	if (s->drain_ms != 0 && n->draining) {
		reason_format(status_reason(status), why, sizeof why);
		events_emit(&s->d->events, EV_DRAINED, n->path, s->pid, why,
		            n->starts - 1, "after %llums%s",
		            (unsigned long long)(now - s->drain_ms),
		            s->killed ? ", forced" : "");
		return;
	}
	reason_format(r, why, sizeof why);
	session_declared_text(s, now, said, sizeof said);
	e.reason = why;
	e.detail = detail = xasprintf(
	        "%s%s%s%s", n->state == NODE_STOPPING ? "stopped" : "",
	        s->exec_error && n->state == NODE_STOPPING ? ", " : "",
	        s->exec_error ? s->exec_error : "", said);
	if (*detail == '\0')
		e.detail = NULL;
	e.tail = tail = session_tail(s, r);
	events_emit_ex(&s->d->events, &e);
	free(detail);
	free(tail);
}

void
session_reaped(struct session *s, int status)
{
	struct daemon *d = s->d;
	struct node *n = s->node;
	char name[SESSION_CAPTURE_NAME_MAX];
	struct logcap *lc;
	struct reason r;

	/* its last words first: everything it wrote before exiting waits on
	 * the socket, whichever of the exit and the EOF came first */
	if (s->chan != NULL)
		channel_read_pending(s->chan, SESSION_LAST_WORDS);
	/* and its last sd_notify datagrams (STOPPING=1 changes how its exit
	 * counts): SIGCHLD may come in the same loop turn, and first */
	if (n->spec->pol->notify == NOTIFY_SYSTEMD && d->notify != NULL)
		notify_server_read_pending(d->notify);
	/* whatever the worker left in its cgroup goes too (its group went
	 * before the reap: reap.c) */
	/* and what it printed (tail: logcap_tail, once events carry it) */
	if ((lc = logcap_find(d->logcap, session_capture_name(n, name))) !=
	    NULL)
		logcap_exited(lc);
	contain_kill(d->contain, n->path, s->cgroup);
	contain_unwatch(d->contain, s->pid);
	r = s->cause.kind != REASON_NONE ? s->cause : status_reason(status);
	session_report_exit(s, r, status);
	r = session_normal_end(s, r);
	/* before the channel goes: the poison guard counts this run */
	ckpt_detach(d->ckpt, n, session_poisoned(s, r));
	pidmap_del(&d->pids, s->pid);
	reap_unwatch(d, s);
	d->dynamic_fds -= s->fds;
	ev_timer_stop(d->loop, &s->timer);
	channel_close(s->chan);
	n->session = NULL;
	free(s->exec_error);
	free(s);
	/* a task that ended while its process ran (a reload cancelled it):
	 * what its end left until now, its capture, cgroup and checkpoints */
	if (n->task != NULL && n->task->end != TASK_END_NONE) {
		tasks_capture_gone(d, n, session_capture_name(n, name));
		contain_forget(d->contain, n->path);
		tasks_reaped(d, n);
	}
	tree_exited(d->tree, n, r, clock_now_ms());
}
