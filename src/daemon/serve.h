/* serve.h - what each checked control request does. */
#ifndef AGENTSUP_SERVE_H
#define AGENTSUP_SERVE_H

#include <stdbool.h>
#include <stdint.h>

#include <msgpack.h>

struct client;
struct control;
struct daemon;
struct node;
struct request;

/* Carry out r for a client: the answer is queued on the client. */
void serve_request(struct client *, struct control *, struct daemon *,
                   const struct request *r);
struct reload_waiter;
/* The answer to a reload request, once applied or refused; nothing when
 * its client has gone meanwhile. */
void serve_reload_answer(struct control *, const struct reload_waiter *,
                         bool ok, const char *msg);
/* An error answer: {t: res, id, ok: false, error: why}. */
void serve_refuse(struct client *, uint64_t id, const char *why);
void serve_refusef(struct client *, uint64_t id, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
/* A refusal of what may be taken a moment later: again: true too. */
void serve_refuse_again(struct client *, uint64_t id, const char *why);
/* A node a reload removed that is still stopping, by its path (its name
 * may be a new node's), or by_path false, by its name too; NULL if none. */
struct node *serve_removed(struct daemon *, const char *name, bool by_path);
/* "no such worker or supervisor: NAME", with what NAME may have meant. */
void serve_no_such(struct client *, struct daemon *, uint64_t id,
                   const char *name);
/* An answer of one line of text: {t: res, id, ok: true, result: msg}. */
void serve_text(struct client *, uint64_t id, const char *msg);
/* {t: res, id, ok, [more: true,] result|error: ...} begun in sb (a frame's
 * header reserved); the value follows. For an answer that has no client
 * yet (control.c's refusal of one there is no room for). */
void serve_res_head(msgpack_sbuffer *, uint64_t id, bool ok, bool more);
/* sb, a whole res frame (header reserved), queued on the client; a
 * client whose answer is over the frame limit is dropped, said. */
void serve_frame_send(struct client *, msgpack_sbuffer *sb);

/* A list answer being built: items packed but not yet sent. It goes in
 * frames of about SERVE_CHUNK bytes of items, each but the last with
 * "more": true; the client joins their "result" arrays in order. */
struct serve_list {
	struct client *cl;
	uint64_t id;
	msgpack_sbuffer items;
	msgpack_packer pk; /* packs into items */
	size_t n;
};
void serve_list_init(struct serve_list *, struct client *, uint64_t id);
/* One item has been packed into pk: a frame sent when it is big enough. */
void serve_list_added(struct serve_list *);
/* The last frame sent (an empty list if nothing was added), l freed. */
void serve_list_end(struct serve_list *);
/* l freed, its last frame not sent: the answer is a refusal instead
 * (frames already sent had "more"; the refusal ends the answer). */
void serve_list_drop(struct serve_list *);

/* start, stop, restart, drain or reset of a node (serve_node.c). */
void serve_node_command(struct client *, struct daemon *,
                        const struct request *);
/* signal NAME SIG (serve_signal.c). */
void serve_signal(struct client *, struct daemon *, const struct request *);

#endif
