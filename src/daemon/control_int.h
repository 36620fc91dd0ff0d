/*
 * control_int.h - the control server's state, shared by control.c (the
 * socket, clients, events) and control_follow.c (worker output to its
 * followers). Nothing else includes it.
 */
#ifndef AGENTSUP_CONTROL_INT_H
#define AGENTSUP_CONTROL_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <ev.h>
#include <sys/types.h>
#include <msgpack.h>

#include "client.h"
#include "logsub.h"

#define CONTROL_HISTORY   256        /* events kept for "events" */
#define CONTROL_MAX_EVENT (1u << 20) /* as much as a follower may lag */

struct config;

struct control {
	struct daemon *d;
	char *path;
	int fd;
	dev_t dev; /* the socket file bound at path */
	ino_t ino;
	ev_io accept_w;
	ev_timer backoff;
	struct clients clients;
	const struct config *counted;   /* the config static_fds is of */
	size_t static_fds;              /* its static workers' descriptors */
	bool full;                      /* making room: said once per episode */
	unsigned long evicted;          /* this episode */
	bool refusing;                  /* no room at all: said once */
	bool starved;                   /* accept failed: said once */
	char *history[CONTROL_HISTORY]; /* packed event maps */
	char *hpath[CONTROL_HISTORY];   /* and their paths */
	size_t hlen[CONTROL_HISTORY];
	size_t hhead, hcount;
	msgpack_sbuffer sb;
	struct logsub sub; /* the last capture's path, for subtree followers */
};

#endif
