/* reloader.h - supervisor.d/ read and parsed off the event loop. */
#ifndef AGENTSUP_RELOADER_H
#define AGENTSUP_RELOADER_H

#include <stddef.h>
#include <stdint.h>

#include <ev.h>

#include "config.h"

/* Who asked for a reload and waits for its answer: a control client (by
 * serial, it may be gone by then) and its request id; client 0 is nobody
 * (SIGHUP). */
struct reload_waiter {
	uint64_t client;
	uint64_t id;
};

/* The outcome of one parse, on the loop: cfg (the callee owns it) or NULL
 * with errs; then every waiter that asked before the parse began. */
typedef void reloader_done_fn(void *arg, struct config *cfg,
                              struct config_errors *errs,
                              const struct reload_waiter *w, size_t nw);

struct reloader;

struct reloader *reloader_new(struct ev_loop *, const char *dir,
                              reloader_done_fn *, void *arg);
/* Read and parse dir on a thread of its own; w (NULL for none) waits for
 * the outcome. While a parse runs, requests coalesce into one more parse
 * after it, which reads the files as they are then. */
void reloader_request(struct reloader *, const struct reload_waiter *w);
/* Waits for a parse still running, drops its outcome. */
void reloader_free(struct reloader *);

#endif
