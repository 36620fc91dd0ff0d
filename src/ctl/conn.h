/* conn.h - agentsupctl's connection to agentsupd: connect and check the
 * server's uid, send requests, and read whole frames through the one frame
 * reader. */
#ifndef AGENTSUP_CTL_CONN_H
#define AGENTSUP_CTL_CONN_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "agentsup/wire.h"

struct task_spawn;

/* A whole frame kept as bytes until the caller asks for it. */
struct ctl_frame {
	struct ctl_frame *next;
	size_t len;
	char *data;
};

#define CTL_MAX_FRAME (16u << 20) /* what agentsupd may answer in one */

struct ctl {
	int fd;
	bool json;
	bool color;
	struct agentsup_reader reader; /* the one frame reader */
	struct ctl_frame *head, *tail; /* frames read, not yet handed out */
	struct ctl_frame *current;     /* the frame handed out last */
	unsigned long lines;           /* logs -n */
	unsigned long newest;          /* tasks -n: the newest N, 0: all */
	sigset_t waitmask;             /* the signal mask while waiting */
	msgpack_zone zone;
	const struct task_spawn *spawn; /* spawn's options, or NULL */
	int reply_ms;                   /* how long an answer may take */
	bool timed_out;                 /* it took longer */
	bool lost;                      /* agentsupd closed it, or it broke */
	const char *late;       /* what a timeout says (NULL: no reply) */
	const char *late_whole; /* ... all it says, if set (a wait's end) */
	const char *arg2;   /* a second argument (signal's SIG, tasks' --state),
	                       or NULL */
	bool look;          /* wait --timeout 0: the record at once */
	int wait_ms;        /* --wait: for how long at most; 0: no wait */
	bool timeout_given; /* --timeout T: wait_ms is T */
	bool rolling;       /* restart --rolling: one at a time */
	bool interrupted;   /* SIGINT (^C) ended a wait */
};

int conn_send_all(int fd, const char *p, size_t n);
/* A request frame's head, {t: req, id, cmd, args: ...}: the caller packs
 * args, then conn_request_send ends it, sends it on fd and frees the buffer
 * (0, or -1; errno EMSGSIZE when it is more than a frame). */
void conn_request_begin(msgpack_sbuffer *sb, msgpack_packer *pk, uint64_t id,
                        const char *cmd);
int conn_request_send(int fd, msgpack_sbuffer *sb);
int conn_send_request(struct ctl *c, const char *cmd, const char *arg,
                      int follow);
void conn_frame_free(struct ctl_frame *fr);
int conn_next_frame(struct ctl *c, struct agentsup_frame *f, int timeout_ms);
int conn_open(struct ctl *c, const char *path);
/* What a connection holds in memory (its zone, reader, frames); its
 * descriptor is the caller's to close. */
void conn_free(struct ctl *c);
/* CLOCK_MONOTONIC in ms: the waits' deadlines. */
uint64_t conn_now_ms(void);

#endif
