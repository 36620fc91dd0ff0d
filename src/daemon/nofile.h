/*
 * nofile.h - agentsupd's descriptor limit: raised at start, given back to
 * every process it starts.
 *
 * A daemon of thousands of workers holds four descriptors for each (the
 * channel, its pidfd and two capture pipes), far beyond the soft
 * RLIMIT_NOFILE of 1024 most systems start services with; the hard limit
 * is usually far higher.
 * agentsupd raises its own soft limit to the hard one, as Go's runtime does
 * for its programs, and every worker and hook gets the soft limit agentsupd
 * was started with (the guard and the PID namespace's init, ours, keep
 * the raised one): a program that uses select(2) must not meet
 * descriptors above 1024 it did not ask for. A worker's `limits: {nofile}`
 * still wins.
 */
#ifndef AGENTSUP_NOFILE_H
#define AGENTSUP_NOFILE_H

/* Raise the soft limit to the hard one (once, at start; a failure keeps the
 * limit as it was, silently: the control server's bound follows it). */
void nofile_raise(void);
/* In a child before exec: the soft limit agentsupd was started with. 0, or
 * -1 with errno. Async-signal-safe. */
int nofile_restore(void);

#endif
