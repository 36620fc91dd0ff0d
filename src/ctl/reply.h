/* reply.h - agentsupctl reads agentsupd's answers (reply.c). */
#ifndef AGENTSUP_CTL_REPLY_H
#define AGENTSUP_CTL_REPLY_H

#include <stdbool.h>
#include <msgpack.h>

#include "agentsup/wire.h"

#define CTL_EXIT_REFUSED     1  /* agentsupd said no */
#define CTL_EXIT_UNHEALTHY   3  /* a node not in the state it should be */
#define CTL_EXIT_UNAVAILABLE 69 /* it could not be reached, or went */
#define CTL_EXIT_NO_ANSWER   75 /* connected, but no answer in time */
#define CTL_EXIT_USAGE       64
#define CTL_EXIT_TIMEOUT     124   /* wait, --wait: it took longer */
#define CTL_REPLY_MS         30000 /* how long an answer may take */

/* One request's answer: body points into f or, for an answer sent in
 * chunks, into joined (whose strings are in all). quiet (set by the
 * caller): a refusal is returned, its frame in f, not said. */
struct reply_answer {
	bool quiet;
	struct agentsup_frame f;
	msgpack_sbuffer all;
	msgpack_unpacked joined;
	const msgpack_object *body;
};

struct ctl;

/* The next "res" frame (events that arrive before it are skipped). */
int reply_next(struct ctl *, struct agentsup_frame *);
/* A list answer sent in chunks ("more": true on all but the last): their
 * results joined into one array, packed into all (which the caller frees
 * after *out, whose strings point into it). f holds the first chunk. 0,
 * -1 (said), or 1 when a later chunk is a refusal (agentsupd's store
 * failed in the middle of a listing): f then holds it, for the caller
 * to say. */
int reply_join(struct ctl *, struct agentsup_frame *f, msgpack_sbuffer *all,
               msgpack_unpacked *out);
/* Whether o is the string s. */
bool reply_str_is(const msgpack_object *o, const char *s);
/* A refusal said on stderr (and, --json, on stdout): CTL_EXIT_REFUSED. */
int reply_refused(struct ctl *, const char *cmd, const struct agentsup_frame *);
/* The same, on stdout only when json (a caller that says it otherwise). */
int reply_say_refused(const char *cmd, const struct agentsup_frame *,
                      bool json);
/* A follow's last frame, {t: end, cause, reason}: the reason on stderr,
 * and 69 when agentsupd exits (as a connection it closed), 1 when it ended
 * the follow itself (the worker was removed, the follower fell behind). */
int reply_follow_end(const struct agentsup_frame *);
/* Why an answer did not come (said already): CTL_EXIT_NO_ANSWER when
 * agentsupd took longer than the connection's reply_ms, else
 * CTL_EXIT_UNAVAILABLE. */
int reply_failed(const struct ctl *);
int reply_ask(struct ctl *, const char *cmd, const char *arg, int follow,
              struct reply_answer *);
void reply_answer_free(struct reply_answer *);

#endif
