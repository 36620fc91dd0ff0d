/* serve.h - what each checked control request does. */
#ifndef AGENTSUP_SERVE_H
#define AGENTSUP_SERVE_H

#include <stdint.h>

struct client;
struct control;
struct daemon;
struct request;

/* Carry out r for a client: the answer is queued on the client. */
void serve_request(struct client *, struct control *, struct daemon *,
                   const struct request *r);
/* An error answer: {t: res, id, ok: false, error: why}. */
void serve_refuse(struct client *, uint64_t id, const char *why);

#endif
