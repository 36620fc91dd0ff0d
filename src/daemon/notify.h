/*
 * notify.h - sd_notify both ways.
 *
 * Up: agentsupd tells the systemd above it (NOTIFY_SOCKET) that it is ready,
 * reloading, stopping, alive (WATCHDOG=1). Down: workers written for systemd
 * speak the same datagrams to a socket of agentsupd's; every datagram carries
 * its sender's credentials, and a callback maps the sender to a worker.
 */
#ifndef AGENTSUP_NOTIFY_H
#define AGENTSUP_NOTIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <ev.h>

#define NOTIFY_MAX_DATAGRAM 4096 /* larger datagrams are dropped, counted */
#define NOTIFY_BATCH        64   /* datagrams read per wake-up at most */

/* One datagram, parsed. `status` points into the parsed buffer. */
struct notify_msg {
	bool ready;            /* READY=1 */
	bool reloading;        /* RELOADING=1 */
	bool stopping;         /* STOPPING=1 */
	bool watchdog;         /* WATCHDOG=1 */
	bool watchdog_trigger; /* WATCHDOG=trigger */
	bool has_status;       /* STATUS=... (may be empty) */
	bool has_extend;       /* EXTEND_TIMEOUT_USEC=N */
	const char *status;
	size_t status_len;
	uint64_t extend_usec;
	unsigned ignored; /* assignments not understood (or mistyped) */
};

/* Parse newline-separated KEY=VALUE assignments (pure). Unknown keys and
 * lines without '=' are ignored and counted; a NUL byte makes the datagram
 * invalid. Returns the number of assignments understood, or -1. */
int notify_parse(const char *buf, size_t len, struct notify_msg *);

/* --- down: workers -> agentsupd ------------------------------------------ */

/* A datagram from (pid, its process group or -1 when gone, its uid), as
 * the kernel says (SCM_CREDENTIALS). Return false when the sender is
 * nobody's: the datagram is counted as unknown. */
typedef bool (*notify_fn)(void *arg, pid_t pid, pid_t pgid, uid_t uid,
                          const struct notify_msg *);

/* Why datagrams were dropped, for logs and metrics. */
struct notify_counts {
	uint64_t received; /* handed to the callback and accepted */
	uint64_t oversized;
	uint64_t invalid; /* not text */
	uint64_t unknown; /* from a pid that is no worker's */
	uint64_t nocred;
};

struct notify_server;

/* A datagram socket with an abstract name unique to this daemon (kernel
 * autobind), SO_PASSCRED on. NULL and *why when it cannot be made. */
struct notify_server *notify_server_open(struct ev_loop *, notify_fn cb,
                                         void *arg, const char **why);
/* The value for a worker's NOTIFY_SOCKET ("@xxxxx"). */
const char *notify_server_address(const struct notify_server *);
/* Read what already waits (bounded), before a heartbeat is judged. */
void notify_server_read_pending(struct notify_server *);
const struct notify_counts *notify_server_counts(const struct notify_server *);
void notify_server_close(struct notify_server *);

/* --- up: agentsupd -> systemd -------------------------------------------- */

struct notify_up;

/* From NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID (any may be NULL):
 * NULL when there is nothing to talk to (*why NULL) or when the address is
 * unusable (*why says why). With a watchdog for this pid, WATCHDOG=1 goes
 * out from the loop every half interval. */
struct notify_up *notify_up_open(struct ev_loop *, const char *where,
                                 const char *watchdog_usec,
                                 const char *watchdog_pid, const char **why);
/* Send one message (newline-separated assignments); NULL-safe, never
 * blocks; a failure is logged once. */
void notify_up_send(struct notify_up *, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));
/* RELOADING=1 with the MONOTONIC_USEC systemd wants alongside it. */
void notify_up_reloading(struct notify_up *, const char *status);
uint64_t notify_up_watchdog_usec(const struct notify_up *); /* 0 = off */
void notify_up_close(struct notify_up *);

#endif
