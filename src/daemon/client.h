/* client.h - one client of the control socket, and the list of them. */
#ifndef AGENTSUP_CLIENT_H
#define AGENTSUP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <ev.h>

#include "agentsup/wire.h"

struct control;
struct daemon;

/* Every client of the control socket. */
struct clients {
	struct ev_loop *loop;
	struct client *head;
	size_t n;         /* dropped ones too, until swept: they hold an fd */
	uint64_t serial;  /* the last given to a client */
	size_t answers;   /* the sum of every client's unread answers */
	ev_prepare sweep; /* frees dropped clients before the loop blocks */
};

struct client {
	struct clients *all;
	struct control *ctl;
	struct daemon *d;
	struct client *prev, *next;
	int fd;
	uid_t uid;
	uint64_t serial; /* names it to an answer given later (reload) */
	ev_io rio, wio;
	ev_timer timer;        /* the deadline, lazily re-armed */
	uint64_t req_start_ms; /* first byte of the partial request */
	uint64_t last_ms;      /* last byte read */
	uint64_t read_ms;      /* output pending since, or last read of it */
	uint64_t armed_ms;     /* when the timer fires */
	struct agentsup_reader reader; /* a partial request, if any */
	char *out; /* unsent bytes: out[outoff .. outoff + outlen) */
	size_t outoff, outlen, outcap;
	size_t answers; /* of outlen, about how much is answers (not lag) */
	char *worker;   /* a peer inside the supervised tree: its worker's path
	                 * (granted only its `control:`), NULL for an operator */
	bool peer_gone; /* the connecting process had exited: refused */
	bool follow;    /* streaming events: may stay silent */
	char *events_under; /* ... of this subtree's path only; NULL: all */
	bool waiting;       /* agentsupctl wait: may stay silent (tasks.c) */
	unsigned reloads;   /* reloads asked, not answered yet: may stay
	                     * silent (a busy tree holds one up to 60 s) */
	char *logs; /* the worker whose output it follows (logs -f), or NULL */
	bool logs_sub;   /* logs is a supervisor's path ("": the whole tree) */
	bool ending;     /* told the end of its follow: goes once it read it */
	bool hungup;     /* closed its side: goes once its answers are read */
	uint64_t end_ms; /* when it was told */
	bool dead;       /* closed: freed after the current callback */
};

void clients_init(struct clients *, struct ev_loop *);
void clients_free(struct clients *);

/* A client on fd, already accepted and allowed in. */
struct client *client_new(struct clients *, struct control *, struct daemon *,
                          int fd, uid_t uid, uint64_t now);
/* The live client of this serial, or NULL: it is gone. */
struct client *clients_find(struct clients *, uint64_t serial);
/* At once: only where nothing up the stack holds the client. */
void client_free(struct client *);
/* Mark for closing, freed once the current callback is done; why (NULL for
 * nothing) goes to the log. */
/* The client to drop so that a new one gets in: the one that has taken the
 * longest over its request, or been idle the longest; one that follows or
 * waits (silent by design) only when every client does. NULL: none. */
struct client *clients_victim(struct clients *, uint64_t now);
void client_drop(struct client *, const char *why);
/* Queue an answer, whole however long: a client that does not read is
 * stopped before its next request. */
void client_send(struct client *, const char *data, size_t len);
/* Queue a frame of a stream it follows (events, a worker's output): a
 * follower whose stream frames fall behind is dropped at once; its own
 * answers queued meanwhile (a big status) do not count. */
void client_push(struct client *, const char *data, size_t len);
/* End a follow with a last frame {t: end, cause, reason}: the client is
 * dropped once it has read what was queued before it. cause is "lag" (it
 * fell behind: output was lost), "removed" (its worker is gone) or "exit"
 * (agentsupd exits). */
void client_end(struct client *, const char *cause, const char *reason);
/* The same with agentsupd's exit status in it (cause "exit"). */
void client_end_exit(struct client *, const char *reason, int status);
/* At exit: wait up to ms, in all, for ending clients to read their last
 * frames and hang up. */
void clients_linger(struct clients *, int ms);
/* Send what it can of its output now, without blocking. */
void client_flush(struct client *);

#endif
