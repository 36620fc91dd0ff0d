/*
 * logcap_reap.h - the last close of a rotated-out log file, on a thread of
 * its own: freeing a file's page cache and its blocks (with a synchronous
 * discard on a disk mounted -o discard) takes a millisecond to tens of
 * them, which the loop must not wait for.
 */
#ifndef AGENTSUP_LOGCAP_REAP_H
#define AGENTSUP_LOGCAP_REAP_H

#define LOGCAP_REAP_MAX 8 /* descriptors waiting; beyond, closed in place */

struct logcap_reap;

struct logcap_reap *logcap_reap_new(void);
/* Close what still waits, and end the thread. */
void logcap_reap_free(struct logcap_reap *);
/* Close fd on the thread (started at the first call); in place when there
 * is no thread, no reap (NULL), or LOGCAP_REAP_MAX already wait. */
void logcap_reap_close(struct logcap_reap *, int fd);

#endif
