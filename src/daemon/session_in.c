/*
 * session_in.c - what a running worker says: its channel's messages (hello,
 * ready, beats, extend, exit declarations, checkpoints, spawns, results) and
 * its sd_notify datagrams, each reported into the engine or its owner; and
 * the deadlines that judge its silence, once what it already sent is read.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "channel.h"
#include "ckpt.h"
#include "clock.h"
#include "daemon.h"
#include "log.h"
#include "logcap.h"
#include "notify.h"
#include "session_int.h"
#include "signals.h"
#include "tasks.h"
#include "util.h"

#define SESSION_EXTEND_MAX_US (600ull * 1000000ull)
#define SESSION_STOPPING_MS   5000 /* STOPPING=1 covers the exit within */

static void on_failed(void *, const char *);

/* --- how it ended ----------------------------------------------------------
 */

struct reason
session_normal_end(const struct session *s, struct reason r)
{
	if (r.kind == REASON_EXIT &&
	    config_exit_normal(s->node->spec->pol, r.code))
		return (struct reason){r.kind, r.code, true};
	if (s->stopping_ms == 0 ||
	    clock_now_ms() - s->stopping_ms > SESSION_STOPPING_MS ||
	    r.kind != REASON_SIGNAL)
		return r;
	if (r.code == SIGTERM || r.code == SIGINT || r.code == SIGHUP ||
	    r.code == SIGPIPE ||
	    r.code == signals_stop(s->node->spec->pol->stop_signal))
		return (struct reason){r.kind, r.code, true};
	return r;
}

/* --- what the channel reports --------------------------------------------- */

/* The largest frame the worker may send: a task's also fits a result of
 * CHANNEL_RESULT_MAX (with checkpoints off the daemon's 64 KiB did not). */
static size_t
session_frame_limit(const struct session *s)
{
	size_t max = ckpt_max_frame(s->node->spec, daemon_max_frame(s->d));
	size_t result = (size_t)CHANNEL_RESULT_MAX + CKPT_FRAME_OVERHEAD;

	return s->node->task != NULL && result > max ? result : max;
}

/* welcome's last_reason: the last failure's, "" if none (protocol.md),
 * with what the worker declared of it: a declared transient or rate_limited
 * exit is a failure even with status 0, and the agent wants to know it was
 * rate-limited. */
static void
session_last_failure(const struct node *n, char *buf, size_t len)
{
	enum declared_kind dk = n->exit_declared;
	size_t k;

	buf[0] = '\0';
	if (n->failures == 0 ||
	    !(reason_abnormal(n->last) || dk == DECLARED_TRANSIENT ||
	      dk == DECLARED_RATE_LIMITED))
		return;
	reason_format(n->last, buf, len);
	k = strlen(buf);
	if (dk != DECLARED_NONE && k < len)
		snprintf(buf + k, len - k, " (declared %s)", declared_name(dk));
}

static void
on_hello(void *arg)
{
	struct session *s = arg;
	struct node *n = s->node;
	char last[64], **earlier;
	size_t max = session_frame_limit(s);
	struct welcome w = {.name = n->spec->name,
	                    .path = n->path,
	                    .incarnation = n->starts - 1,
	                    .heartbeat_ms = n->spec->pol->heartbeat_ms,
	                    .timeout_ms = n->spec->pol->heartbeat_timeout_ms,
	                    .restarts = n->failures,
	                    .last_reason = last,
	                    .max_frame = max,
	                    .checkpoint_max =
	                            n->spec->pol->checkpoint.enabled
	                                    ? n->spec->pol->checkpoint.max
	                                    : 0};

	session_last_failure(n, last, sizeof last);
	/* held from now on to what it is told (a reload since its spawn
	 * included) */
	s->beat_timeout_ms = session_beat_timeout(n->spec);
	earlier = tasks_earlier_paths(s->d, n);
	w.checkpoint = ckpt_hand(s->d->ckpt, n, (const char *const *)earlier,
	                         s->chan, &w.checkpoint_len, &w.checkpoint_seq);
	tasks_paths_free(earlier);
	if (w.checkpoint != NULL)
		max += w.checkpoint_len;
	if (channel_send_welcome(s->chan, &w, max) < 0 &&
	    channel_is_open(s->chan))
		on_failed(s, "cannot send welcome");
}

void
session_ready(struct session *s)
{
	struct node *n = s->node;

	if (n->state != NODE_STARTING)
		return; /* running at spawn already, or a repeat: harmless */
	events_emit(&s->d->events, EV_READY, n->path, s->pid, NULL,
	            n->starts - 1, "after %llums",
	            (unsigned long long)(clock_now_ms() - s->spawned_ms));
	s->last_beat_us = clock_now_us();
	session_deadline(
	        s, s->beat_timeout_ms ? DEADLINE_HEARTBEAT : DEADLINE_NONE,
	        s->beat_timeout_ms);
	tree_ready(s->d->tree, n, s->last_beat_us / 1000);
}

static void
on_ready(void *arg)
{
	session_ready(arg);
}

static void
on_beat(void *arg, const struct progress *p, unsigned fields)
{
	struct session *s = arg;
	uint64_t now_us = clock_now_us();

	/* a worker still waiting for ready is judged by start_timeout */
	if (s->node->state != NODE_STARTING) {
		s->last_beat_us = now_us;
		s->extend_until_us = 0; /* a beat ends an extension */
	}
	tree_beat(s->d->tree, s->node, p, fields, now_us / 1000);
}

/* {t: extend, ms}: the current heartbeat deadline moves out to now + ms
 * (at most extend_max), once until the next beat, as systemd's
 * EXTEND_TIMEOUT_USEC does; a worker that never comes back is still hung. */
static void
on_extend(void *arg, uint64_t ms)
{
	struct session *s = arg;
	uint64_t now_us = clock_now_us(), deadline_us;

	if (s->deadline != DEADLINE_HEARTBEAT || s->extend_until_us != 0)
		return; /* not beating yet, being stopped, or extended once */
	if (ms > s->node->spec->pol->extend_max_ms)
		ms = s->node->spec->pol->extend_max_ms;
	s->extend_until_us = now_us + ms * 1000;
	deadline_us = s->last_beat_us + (uint64_t)s->beat_timeout_ms * 1000;
	if (s->extend_until_us > deadline_us)
		session_deadline_us(s, DEADLINE_HEARTBEAT,
		                    s->extend_until_us - now_us);
}

static void
on_failed(void *arg, const char *why)
{
	struct session *s = arg;

	events_emit(&s->d->events, EV_PROTOCOL_ERROR, s->node->path, s->pid,
	            "protocol", s->node->starts - 1, "%s", why);
	session_fail(s, (struct reason){.kind = REASON_PROTOCOL});
}

static void
on_declare(void *arg, const struct declaration *d)
{
	struct session *s = arg;

	char retry[48] = "";

	if (d->retry_after_ms)
		snprintf(retry, sizeof retry, "%sretry after %llums",
		         d->detail[0] ? "; " : "",
		         (unsigned long long)d->retry_after_ms);
	events_emit(&s->d->events, EV_DECLARED, s->node->path, s->pid,
	            declared_name(d->kind), s->node->starts - 1, "%s%s",
	            d->detail, retry);
	tree_declare(s->d->tree, s->node, d, clock_now_ms());
}

/* {t: checkpoint}: kept (and stored); checkpoint_ok follows from ckpt.c. */
static void
on_checkpoint(void *arg, uint64_t seq, const void *data, size_t len)
{
	struct session *s = arg;
	const char *why;

	if (ckpt_put(s->d->ckpt, s->node, seq, data, len, &why) < 0)
		on_failed(s, why);
}

/* The reap (or the heartbeat deadline) tells the rest; a frame cut by the
 * end is said, or the checkpoint or exit reason it carried went unseen. */
static void
on_closed(void *arg, size_t cut)
{
	struct session *s = arg;

	if (cut > 0)
		log_warnx("worker %s: its channel closed %zu bytes into a "
		          "message, which is lost (it ended, or closed its "
		          "end, while sending it)",
		          s->node->path, cut);
}

static void
on_unknown(void *arg, const char *type, size_t len)
{
	struct session *s = arg;

	log_warnx("worker %s: ignoring message \"%.*s\"", s->node->path,
	          (int)(len > 32 ? 32 : len), type);
}

static size_t
on_max_frame(void *arg)
{
	struct session *s = arg;

	return session_frame_limit(s);
}

/* {t: spawn}: a dynamic child, if this worker is in the spawn_from. */
static void
on_spawn(void *arg, const struct spawn_request *r)
{
	struct session *s = arg;
	struct spawn_answer a;

	if (tasks_worker_spawn(s->d, s->node, r, &a) && s->chan != NULL)
		channel_send_spawned(s->chan, &a, daemon_max_frame(s->d));
}

static void
on_result(void *arg, const void *data, size_t len)
{
	struct session *s = arg;

	tasks_result(s->d, s->node, data, len);
}

const struct channel_ops session_channel_ops = {
        .hello = on_hello,
        .ready = on_ready,
        .beat = on_beat,
        .failed = on_failed,
        .declare = on_declare,
        .extend = on_extend,
        .closed = on_closed,
        .unknown = on_unknown,
        .checkpoint = on_checkpoint,
        .max_frame = on_max_frame,
        .spawn = on_spawn,
        .result = on_result,
};

/* --- what sd_notify reports ----------------------------------------------- */

/* EXTEND_TIMEOUT_USEC: the start deadline becomes at least N from now. */
static void
session_extend_start(struct session *s, uint64_t usec)
{
	double left = ev_timer_remaining(s->d->loop, &s->timer);

	if (s->deadline != DEADLINE_START)
		return; /* running, stopping: their deadlines are ours */
	if (usec > SESSION_EXTEND_MAX_US)
		usec = SESSION_EXTEND_MAX_US;
	if ((double)usec > left * 1e6)
		session_deadline_us(s, DEADLINE_START, usec);
}

/* STATUS=: shown in status as an hb's status is; control bytes made '?'. */
static void
session_notify_status(struct session *s, const struct notify_msg *m)
{
	struct progress p = {0};
	size_t n = m->status_len < sizeof p.status - 1 ? m->status_len
	                                               : sizeof p.status - 1;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)m->status[i];
		p.status[i] = c < 0x20 || c == 0x7f ? '?' : (char)c;
	}
	tree_beat(s->d->tree, s->node, &p, PROGRESS_STATUS, clock_now_ms());
}

bool
session_notified(void *arg, pid_t pid, pid_t pgid, uid_t uid,
                 const struct notify_msg *m)
{
	struct daemon *d = arg;
	struct session *s = pidmap_get(&d->pids, pid);

	/* a descendant in the worker's process group speaks for it, if it
	 * runs as the worker's user: any process in agentsupd's session may
	 * join a group there (setpgid), another worker's of another user too
	 */
	if (s == NULL && pgid > 0 && (s = pidmap_get(&d->pids, pgid)) != NULL &&
	    uid != s->uid)
		s = NULL;
	if (s == NULL || s->node->spec->pol->notify != NOTIFY_SYSTEMD)
		return false;
	if (m->has_status)
		session_notify_status(s, m);
	if (m->has_extend)
		session_extend_start(s, m->extend_usec);
	if (m->ready)
		session_ready(s);
	if (m->watchdog)
		on_beat(s, NULL, 0);
	if (m->stopping)
		s->stopping_ms = clock_now_ms();
	/* once: a worker already failing or being killed is told no more */
	if (m->watchdog_trigger && session_failable(s)) {
		events_emit(&d->events, EV_HANG, s->node->path, s->pid, "hang",
		            s->node->starts - 1, "WATCHDOG=trigger");
		session_fail(s, (struct reason){.kind = REASON_HANG});
	}
	return true;
}

/* --- deadlines, judged after what the worker already said --------------- */

/* Bytes waiting on its socket, and sd_notify datagrams, read now: a busy
 * daemon's timer must not judge a worker whose word is already here. */
static void
session_hear_pending(struct session *s)
{
	if (s->chan != NULL)
		channel_read_pending(s->chan, SESSION_LAST_WORDS);
	if (s->node->spec->pol->notify == NOTIFY_SYSTEMD &&
	    s->d->notify != NULL)
		notify_server_read_pending(s->d->notify);
}

/* The start deadline passed: a ready or an EXTEND_TIMEOUT_USEC already
 * sent is heard first (it was not, and a ready sent just before the
 * deadline counted as a start_timeout on a busy daemon). */
void
session_judge_start(struct session *s)
{
	session_hear_pending(s);
	if (s->deadline != DEADLINE_START || ev_is_active(&s->timer))
		return; /* ready, extended, or failed meanwhile */
	events_emit(&s->d->events, EV_START_TIMEOUT, s->node->path, s->pid,
	            "start_timeout", s->node->starts - 1,
	            "no ready within %llums",
	            (unsigned long long)s->node->spec->pol->start_timeout_ms);
	session_fail(s, (struct reason){.kind = REASON_START_TIMEOUT});
}

/* The heartbeat deadline passed: hung, unless a beat (or an extend) came. */
void
session_judge_beat(struct session *s)
{
	uint64_t now_us, deadline_us;

	session_hear_pending(s); /* WATCHDOG=1 too */
	if (s->deadline != DEADLINE_HEARTBEAT)
		return; /* the read changed its fate (protocol error) */
	if (s->beat_timeout_ms == 0) { /* welcomed with none since */
		s->deadline = DEADLINE_NONE;
		return;
	}
	now_us = clock_now_us();
	deadline_us = s->last_beat_us + (uint64_t)s->beat_timeout_ms * 1000;
	if (s->extend_until_us > deadline_us)
		deadline_us = s->extend_until_us; /* a long call */
	if (deadline_us > now_us) {
		session_deadline_us(s, DEADLINE_HEARTBEAT,
		                    deadline_us - now_us);
		return;
	}
	events_emit(&s->d->events, EV_HANG, s->node->path, s->pid, "hang",
	            s->node->starts - 1, "no heartbeat for %llums%s",
	            (unsigned long long)(now_us - s->last_beat_us) / 1000,
	            s->extend_until_us ? " (after an extend)" : "");
	session_fail(s, (struct reason){.kind = REASON_HANG});
}
