/* daemon.h - the shell's context: the loop, the tree, and what serves them. */
#ifndef AGENTSUP_DAEMON_H
#define AGENTSUP_DAEMON_H

#include <stdbool.h>
#include <ev.h>
#include <msgpack.h>
#include <signal.h>
#include <stdint.h>

#include "batch.h"
#include "config.h"
#include "events.h"
#include "pidmap.h"
#include "spawn.h"
#include "tree.h"

struct control;
struct metrics;
struct hooks;
struct logcap_set;
struct store;
struct statedir_holds;
struct ckpt_set;
struct notify_server;
struct notify_up;
struct tasks;
struct reloader;

struct daemon {
	struct ev_loop *loop;
	const char *config_dir;
	char *socket_path;
	/* read at start only (a reload's new ones wait for the next) */
	char *state_dir; /* the store's, NULL when none */
	enum contain_mode contain_mode;
	struct config *cfg;
	struct tree *tree;
	struct events events;
	struct pidmap pids;   /* pid -> running session */
	struct spawner spawn; /* the child's stack, the signals it resets */
	int reap_fd;          /* SIGCHLD's signalfd (reap.c), or -1 */
	ev_io reap_w;
	int reap_epfd; /* the workers' pidfds (reap.c), or -1 */
	ev_io pidfd_w;
	ev_timer sweep_w;      /* a sweep put off (reap.c) */
	size_t reap_unwatched; /* running sessions without a pidfd */
	int sig_fd; /* SIGTERM, SIGINT, SIGHUP, SIGUSR1 (signals.c) */
	ev_io sig_w;
	ev_prepare pump;   /* carries out the engine's actions, once a turn */
	msgpack_zone zone; /* decoded frames live here until handled */
	ev_timer wake;     /* the engine's earliest wake-up */
	uint64_t wake_at;
	/* starts that failed before a process existed (a bad env_file,
	 * EAGAIN): told to the engine on the next loop turn, as an exec
	 * failure's exit is, so `backoff: none` cannot retry them inside one
	 * pump for ever */
	struct daemon_unstarted {
		struct node *node;
		unsigned long starts; /* the start that failed */
		int err;
	} * unstarted;
	size_t nunstarted;
	ev_timer unstarted_w;
	uint64_t seed; /* the jitter generator's, printed at start-up */
	struct control *control;
	struct metrics *metrics; /* NULL when not configured */
	struct config *
	        *retired; /* replaced by reloads; removed nodes use them */
	size_t nretired;
	/* configured workers reloads removed: their checkpoints, capture and
	 * idle cgroup go once they are swept (daemon_retire_sweep) */
	char **gone;
	size_t ngone;
	int exit_code;
	uint64_t drain_started_ms;
	struct notify_server *notify; /* workers' sd_notify, NULL if none */
	struct notify_up *up;         /* to the systemd above, NULL if none */
	bool up_ready;                /* READY=1 sent for the first start */
	bool trimmed;                 /* the first start's free heap returned */
	size_t up_live;               /* workers in the last STATUS= */
	size_t up_waiting, up_given_up; /* ... down, in it */
	uint64_t up_changes;            /* tree->changes when last counted */
	size_t dynamic_fds;  /* running dynamic children's (session_fds) */
	struct hooks *hooks; /* on_event: */
	struct tasks *tasks; /* dynamic children's ledger (tasks.c) */
	struct reloader *reloader; /* reads and parses off the loop */
	struct logcap_set *logcap; /* workers' captured output */
	struct contain *contain;   /* a cgroup per worker, or nothing */
	struct termlog *termlog;   /* termination_log: */
	struct store *store;       /* state_dir's, NULL when none */
	struct ckpt_set *ckpt;     /* workers' checkpoints */
	ev_timer statedir_timer;   /* writes spend and circuits */
	uint64_t statedir_sum;     /* what they were when last written */
	uint64_t statedir_holds;   /* the operator's holds, as last written */
	struct statedir_holds *statedir_holds_job; /* ... and being written */
	uint64_t statedir_failed_ms; /* a streak of failed writes: said then */
	unsigned statedir_failures;  /* ... and failed since, unsaid */
	uint64_t statedir_stall_ms;  /* writes waiting with none done: said */
	struct batch batch;          /* gathers I/O while the loop is busy */
	struct reload_hold *hold;    /* a reload waiting for a busy tree */
};

/* Read the config again off the loop, then apply it as a diff or refuse it
 * whole; control client `client` (0: nobody) gets the answer to request
 * `id` then. Asked while a parse runs: one more parse after it. */
void daemon_reload(struct daemon *, uint64_t client, uint64_t id);
struct reload_waiter;
struct config_errors;
/* apply.c: the reloader's callback (apply cfg, or refuse it with errs;
 * then answer the waiters). */
void daemon_reload_done(void *arg, struct config *cfg,
                        struct config_errors *errs,
                        const struct reload_waiter *w, size_t nw);
/* Each pump: a reload held while a supervisor was busy, applied once it
 * has settled (apply.c). */
void daemon_reload_settled(struct daemon *);
void daemon_reload_hold_free(struct daemon *);
/* After a reload: the configured workers it buried in the graveyard from
 * its child `from` on, whose memory goes once they are swept. */
void daemon_note_gone(struct daemon *, size_t from);
/* Once the graveyard is empty: what they left (checkpoints, capture, an
 * idle cgroup), unless a worker of the same path or name holds it now. */
void daemon_release_gone(struct daemon *);
/* SIGUSR1 and "agentsupctl drain": drain the whole tree, then exit 0. */
void daemon_drain(struct daemon *);
/* The pump's actions (not its sweeps), now rather than at the end of the
 * loop turn: a reap's restart starts before the turn's other callbacks,
 * which under load are dozens, each of which may be preempted by the
 * worker its checkpoint_ok wakes. */
void daemon_pump_actions(struct daemon *);
/* SIGTERM, SIGINT and "agentsupctl shutdown": orderly stop, then exit 0. */
void daemon_shutdown(struct daemon *, const char *why);
/* daemon_notify.c: sd_notify both ways, opened at start (systemd's
 * variables then leave the environment); and what the systemd above is
 * told after each pump (READY=1 once, STATUS= as the numbers change). */
void daemon_notify_init(struct daemon *);
void daemon_notify_up(struct daemon *);
/* The largest frame a peer may send, as the config says now. */
size_t daemon_max_frame(const struct daemon *);

int daemon_init(struct daemon *, const char *socket_opt);
/* Start the tree and run the loop until the tree is down; the exit code. */
int daemon_run(struct daemon *);
void daemon_free(struct daemon *);

#endif
