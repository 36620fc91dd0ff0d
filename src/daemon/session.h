/*
 * session.h - one running instance of a worker: its process, its channel,
 * its one deadline timer and its stop sequence. Created by a start action,
 * ended by the reap, which first reads what the worker still had to say.
 */
#ifndef AGENTSUP_SESSION_H
#define AGENTSUP_SESSION_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <ev.h>

#include "tree.h"

struct daemon;
struct channel;

/* What the session's one timer currently measures. */
enum deadline {
	DEADLINE_NONE,
	DEADLINE_START,     /* ready within start_timeout */
	DEADLINE_READY,     /* ready once it ran ready_after */
	DEADLINE_HEARTBEAT, /* next beat within heartbeat_timeout (lazy) */
	DEADLINE_HANG,      /* SIGUSR1 sent: grace before the stop sequence */
	DEADLINE_DRAIN,     /* drain sent: exit within drain_timeout */
	DEADLINE_KILL,      /* SIGTERM sent: SIGKILL after shutdown */
};

struct session {
	struct node *node;
	struct daemon *d;
	ev_timer timer;
	struct reason cause; /* a failure we saw before the exit (hang...) */
	pid_t pid;
	int pidfd; /* in reap.c's epoll, or -1 */
	/* the heartbeat timeout it was started, then welcomed, with (0:
	 * none): a reload reaches it at its next start, as the interval it
	 * beats at does */
	uint32_t beat_timeout_ms;
	unsigned char deadline; /* enum deadline */
	bool killed;            /* SIGKILL sent */
	unsigned char fds;      /* a dynamic child's, in d->dynamic_fds; or 0 */
	uid_t uid;              /* the user it runs as */
	uint64_t spawned_ms;
	uint64_t last_beat_us; /* the heartbeat deadline counts from here */
	uint64_t drain_ms;     /* when the drain began, 0 if none */
	char *exec_error;      /* why exec failed, from the child */
	unsigned long cgroup;  /* its cgroup in contain.c, 0 for none */
	uint64_t stopping_ms;  /* sd_notify STOPPING=1 came then, 0 if not */
	/* {t: extend}: the heartbeat deadline is at least this until the
	 * next beat (0: none) */
	uint64_t extend_until_us;
	struct channel *chan;
};

/* The name a worker's output is kept under (logcap, log_dir/NAME.log,
 * `logs`): a configured worker's own, unique in the tree; a task's
 * SUP:KEY, since its key alone may be another pool's task's or a
 * configured worker's name. buf holds at least SESSION_CAPTURE_NAME_MAX. */
#define SESSION_CAPTURE_NAME_MAX 160
const char *session_capture_name(const struct node *, char *buf);
/* A capture name as tree_find takes it: a task's POOL:KEY is POOL/KEY
 * (names hold no ':'). false when it does not fit in buf (len bytes). */
bool session_capture_key(const char *name, char *buf, size_t len);
/* An events tail function (arg: the daemon): the last lines of output of
 * the worker at path. */
size_t session_event_tail(void *d, const char *path, char *buf, size_t len);
/* The descriptors agentsupd holds for a running worker of spec s: its
 * channel, a pipe per captured stream, and (files: log_dir) their file. */
unsigned session_fds(const struct spec *s, bool files);
/* Start the node's process (an ACT_START). -1 with errno when no process
 * could be made, and why (empty: errno says it; else its env_file): the
 * caller reports it as a failure. */
int session_start(struct daemon *, struct node *, char *why, size_t whylen);
void session_stop(struct session *, enum stop_how);
void session_drain(struct session *);
/* The engine saw it fail (stall, loop, budget: ACT_FAIL): record why and
 * take it down, by a drain first when asked; its exit carries the cause. */
void session_fail_for(struct session *, struct reason cause, bool drain);
/* A reload changed its spec: what applies to it while it runs (its
 * max_memory) follows. */
void session_reloaded(struct session *);
/* SIGUSR1 to its process group: a stack dump (stall_dump). */
void session_dump(struct session *);
struct notify_msg;
/* A notify_fn (arg: the daemon): an sd_notify datagram from pid, or from
 * a process of its uid in pgid's group; false when it is no `notify:
 * systemd` worker's. */
bool session_notified(void *arg, pid_t pid, pid_t pgid, uid_t uid,
                      const struct notify_msg *);
/* Over its max_memory (contain.c's check): rss bytes; stopped as a
 * failure of reason `memory`. */
void session_over_memory(struct session *, uint64_t rss);
/* The process was reaped: read its last frames, report the exit to the
 * engine, free the session. */
void session_reaped(struct session *, int status);

#endif
