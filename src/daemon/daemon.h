/* daemon.h - the shell's context: the loop, the tree, and what serves them. */
#ifndef AGENTSUP_DAEMON_H
#define AGENTSUP_DAEMON_H

#include <stdbool.h>
#include <ev.h>
#include <msgpack.h>
#include <signal.h>
#include <stdint.h>

#include "config.h"
#include "events.h"
#include "proc.h"
#include "tree.h"

struct control;
struct logcap_set;

struct daemon {
	struct ev_loop *loop;
	const char *config_dir;
	char *socket_path;
	struct config *cfg;
	struct tree *tree;
	struct events events;
	struct pidmap pids;
	ev_child child_watcher;
	ev_signal sig_term, sig_int, sig_hup, sig_usr1;
	struct control *control;
	/* workers' captured output */
	struct logcap_set *logcap;
	msgpack_zone zone;    /* decoded frames live here until handled */
	msgpack_sbuffer sbuf; /* frames being encoded */
	uint8_t *rbuf;        /* every read lands here first */
	sigset_t child_reset; /* signals a child puts back to default */
	void *spawn_stack;    /* the child's stack until it execs */
	size_t spawn_stack_size;
	size_t rbuf_size;
	struct config *
	        *retired; /* replaced by reloads; removed nodes use them */
	size_t nretired;
	int exit_code;
	bool in_actions;
	uint64_t drain_started_ms;
};

/* Carry out every action the engine has queued. */
void daemon_run_actions(struct daemon *);
/* Read the config again and apply it as a diff, or refuse it whole; what
 * happened, in a line, goes to msg. -1 when refused. */
int daemon_reload(struct daemon *, char *msg, size_t len);
/* SIGUSR1 and "agentsupctl drain": drain the whole tree, then exit 0. */
void daemon_drain(struct daemon *);
/* SIGTERM, SIGINT and "agentsupctl shutdown": orderly stop, then exit 0. */
void daemon_shutdown(struct daemon *, const char *why);

#endif
