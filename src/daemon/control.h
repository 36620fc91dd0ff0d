/* control.h - the control socket served to agentsupctl. */
#ifndef AGENTSUP_CONTROL_H
#define AGENTSUP_CONTROL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "events.h"
#include "logcap.h"

/* Clients at once (fewer when RLIMIT_NOFILE is low): tasks.h gives each
 * its share of waits. */
#define CONTROL_MAX_CLIENTS 128
#define CONTROL_T_LOG       "log" /* daemon -> ctl: name, stream, line */
#define CONTROL_T_END       "end" /* daemon -> ctl: cause, reason */

struct daemon;
struct control;

/* Listen at path (mode 0600); NULL with *why if it cannot, or if a live
 * agentsupd already answers there. A stale socket file is replaced; the
 * private directory of the default path is created and checked. */
struct control *control_open(struct daemon *, const char *path,
                             const char **why);
void control_close(struct control *);
/* At a SIGHUP or reload: a socket file removed from the path (an rm, a
 * cleaner of /run) is made again there, unless another live agentsupd
 * answers there now. */
void control_reopen(struct control *);
/* A reload replaced the config, or a command changed what is held: the
 * workers' descriptors are counted again at the next connection (a
 * pointer compare could meet a new config at a freed one's address). */
void control_reconfigured(struct control *);
/* The events sink: history for "events", frames for followers. */
void control_event(void *arg, const struct event *, const char *json);
/* The logcap sink: each line to the clients following that worker. */
void control_log_line(void *arg, const char *name, enum logcap_stream,
                      const char *line, size_t len);
/* The logcap follow check: whether any client follows that worker. */
bool control_log_followed(void *arg, const char *name);
/* The capture NAME is gone (a worker a reload removed, a task that
 * ended): its followers are told why and let go. */
void control_log_removed(struct control *, const char *name, const char *why);
/* A reload renamed the root (from -> to): the subtrees followed by path
 * (events NAME --follow, logs SUP -f) are where they were. */
void control_root_renamed(struct control *, const char *from, const char *to);
/* The task at path ended: the followers of its events (events POOL/KEY
 * --follow) are told why and let go; nothing more will come there. */
void control_events_ended(struct control *, const char *path, const char *why);
/* After a reload: the followers of a supervisor's subtree (logs SUP -f)
 * or of a node's events (events NAME --follow) that is gone (removed, or
 * moved: its path is not the same) are told and let go. */
void control_log_subtrees(struct control *);

struct client;
/* The live client of this serial (client.h), or NULL when it has gone. */
struct client *control_client(struct control *, uint64_t serial);

/* The i-th oldest event kept, as a packed map (and its path), or NULL past
 * the last. */
const char *control_history(const struct control *, size_t i, size_t *len,
                            const char **path);
/* Whether an event of path is one of the subtree at top (a path; NULL:
 * the whole tree's), for `events NAME`. */
bool control_in_subtree(const char *path, const char *top);

#endif
