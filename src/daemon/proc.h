/* proc.h - running worker instances: fork/exec, signals, reaping. */
#ifndef AGENTSUP_PROC_H
#define AGENTSUP_PROC_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <ev.h>

#include "tree.h"

struct daemon;
struct channel;

/* What the worker's one timer currently measures. */
enum deadline {
	DEADLINE_NONE,
	DEADLINE_START,     /* ready within start_timeout */
	DEADLINE_HEARTBEAT, /* next beat within heartbeat_timeout (lazy) */
	DEADLINE_HANG,      /* SIGUSR1 sent: grace before the stop sequence */
	DEADLINE_DRAIN,     /* drain sent: exit within drain_timeout */
	DEADLINE_KILL,      /* SIGTERM sent: SIGKILL after shutdown */
};

/* One running instance of a worker node; freed once reaped. */
struct worker {
	struct node *node;
	struct daemon *d;
	pid_t pid;
	ev_timer timer;
	enum deadline deadline;
	struct reason cause; /* a failure we saw before the exit (hang...) */
	uint64_t spawned_ms;
	uint64_t last_beat_us; /* monotonic: the heartbeat deadline counts from
	                          here */
	uint64_t drain_ms;     /* when the drain began, 0 if none */
	bool killed;           /* SIGKILL sent: a drain was forced */
	char *exec_error;      /* why exec failed, from the child */
	struct channel *chan;  /* the worker's socket, NULL once closed */
};

/* pid -> worker, open addressing: an exit costs O(1), never a tree scan. */
struct pidmap {
	pid_t *keys;
	struct worker **vals;
	size_t cap, count;
};

struct worker *pidmap_get(const struct pidmap *, pid_t);
void pidmap_free(struct pidmap *);

void proc_init(struct daemon *); /* after the daemon's signal handlers */
void proc_fini(struct daemon *);
int proc_spawn(struct daemon *, struct node *);
void proc_stop(struct worker *);
void proc_drain(struct worker *);
void proc_hang(struct worker *, struct reason cause);
void proc_set_deadline(struct worker *, enum deadline, uint64_t after_ms);
void proc_set_deadline_us(struct worker *, enum deadline, uint64_t after_us);
void proc_child_cb(struct ev_loop *, ev_child *, int);

#endif
