/*
 * session_int.h - what session.c (the process, its deadlines, the reap) and
 * session_in.c (what the worker says) share. Nothing else includes it.
 */
#ifndef AGENTSUP_SESSION_INT_H
#define AGENTSUP_SESSION_INT_H

#include "channel.h"
#include "session.h"

/* the channel's callbacks, in session_in.c */
extern const struct channel_ops session_channel_ops;

/* Arm the session's one timer for a deadline after_us (after_ms) from now. */
void session_deadline_us(struct session *, enum deadline, uint64_t after_us);
void session_deadline(struct session *, enum deadline, uint64_t after_ms);
/* What a dead (or judged) worker may still have queued on its socket:
 * read it all, up to this. */
#define SESSION_LAST_WORDS (4u << 20)

/* A deadline of the worker's, judged once what it already sent is read:
 * the start (start_timeout), the next beat (heartbeat_timeout). */
void session_judge_start(struct session *);
void session_judge_beat(struct session *);
/* The worker is up: it said ready, or ran ready_after. */
void session_ready(struct session *);
/* A failure seen while the process still runs: the engine is told, and the
 * process is stopped. */
void session_fail(struct session *, struct reason cause);
/* Whether session_fail would act: no failure recorded yet, not being
 * killed. */
bool session_failable(const struct session *);
/* The end the engine sees: an exit status of success_exit is a normal
 * end (marked `normal`, so that status and a task's record show the real
 * status, as the events do); so is a death by a clean signal (SIGTERM,
 * SIGINT, SIGHUP, SIGPIPE, its stop_signal, as systemd counts them)
 * within SESSION_STOPPING_MS of its STOPPING=1. */
struct reason session_normal_end(const struct session *, struct reason r);
/* The heartbeat timeout a worker of spec s is held to (0: none). */
uint32_t session_beat_timeout(const struct spec *s);

#endif
