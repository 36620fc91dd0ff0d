/*
 * termlog.h - the termination record (`termination_log: PATH`, DESIGN §13):
 * on exit, at most TERMLOG_MAX bytes of JSON saying how agentsupd ended,
 * as Kubernetes' terminationMessagePath expects. A leaf fed with events.
 */
#ifndef AGENTSUP_TERMLOG_H
#define AGENTSUP_TERMLOG_H

#include "events.h"

#define TERMLOG_MAX    4096 /* Kubernetes reads at most 4 KiB */
#define TERMLOG_EVENTS 16   /* the last events kept */

struct termlog;

struct termlog *termlog_new(void);
/* Every event (an events sink): the last few, and which node failed. */
void termlog_event(struct termlog *, const struct event *, const char *json);
/* {"status":N,"reason":"...","node":"...","supervisor":"...",
 *  "events":[...]} to path, at most TERMLOG_MAX bytes; -1 with errno. */
int termlog_write(const struct termlog *, const char *path, int status);
/* The same record into buf (len >= TERMLOG_MAX + 1): its length. */
size_t termlog_format(const struct termlog *, int status, char *buf,
                      size_t len);
void termlog_free(struct termlog *);

#endif
