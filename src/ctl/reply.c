/*
 * reply.c - agentsupctl reads agentsupd's answers: the next "res" frame, a
 * list answer's chunks joined, a refusal said, a follow's end.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "agentsup/wire.h"
#include "conn.h"
#include "render.h"
#include "reply.h"
#include "text.h"

/* The next "res" frame (events that arrive before it are skipped). */
int
reply_next(struct ctl *c, struct agentsup_frame *f)
{
	do {
		if (conn_next_frame(c, f, c->reply_ms) < 0)
			return -1;
	} while (!agentsup_wire_is(f, AGENTSUP_T_RES));
	return 0;
}

/* The chunks of a list answer joined (reply.h). */
int
reply_join(struct ctl *c, struct agentsup_frame *f, msgpack_sbuffer *all,
           msgpack_unpacked *out)
{
	msgpack_sbuffer items;
	msgpack_packer pk;
	size_t n = 0, off = 0;
	bool more;
	int rc = -1;

	msgpack_sbuffer_init(&items);
	msgpack_packer_init(&pk, &items, msgpack_sbuffer_write);
	do {
		const msgpack_object *r = agentsup_wire_get(&f->map, "result");
		if (!render_get_flag(&f->map, "ok")) {
			rc = 1;
			goto out;
		}
		if (r == NULL || r->type != MSGPACK_OBJECT_ARRAY) {
			fprintf(stderr, "agentsupctl: bad chunk in a reply\n");
			goto out;
		}
		for (uint32_t i = 0; i < r->via.array.size; i++, n++)
			msgpack_pack_object(&pk, r->via.array.ptr[i]);
		more = render_get_flag(&f->map, "more");
		if (more && reply_next(c, f) < 0)
			goto out;
	} while (more);
	msgpack_packer_init(&pk, all, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, n);
	msgpack_sbuffer_write(all, items.data, items.size);
	if (msgpack_unpack_next(out, all->data, all->size, &off) ==
	    MSGPACK_UNPACK_SUCCESS)
		rc = 0;
	else
		fprintf(stderr, "agentsupctl: cannot join a reply\n");
out:
	msgpack_sbuffer_destroy(&items);
	return rc;
}

/* Whether o is the string s. */
bool
reply_str_is(const msgpack_object *o, const char *s)
{
	size_t l = strlen(s);

	return o != NULL && o->type == MSGPACK_OBJECT_STR &&
	       o->via.str.size == l && memcmp(o->via.str.ptr, s, l) == 0;
}

int
reply_refused(struct ctl *c, const char *cmd, const struct agentsup_frame *f)
{
	return reply_say_refused(cmd, f, c->json);
}

int
reply_say_refused(const char *cmd, const struct agentsup_frame *f, bool json)
{
	const msgpack_object *e = agentsup_wire_get(&f->map, "error");

	/* --json: {"ok": false, "error"} on stdout too (not the protocol's
	 * frame, its t and id) */
	if (json && e != NULL) {
		fputs("{\"ok\":false,\"error\":", stdout);
		render_json(stdout, e);
		puts("}");
	}
	/* what every agentsupd answers a command it does not know: this
	 * agentsupctl knows it, so the daemon is an older build (a package
	 * upgraded under a running agentsupd, which it does not restart) */
	if (reply_str_is(e, AGENTSUP_UNKNOWN_COMMAND) ||
	    reply_str_is(e, AGENTSUP_TOO_MANY_ARGUMENTS))
		fprintf(stderr,
		        "agentsupctl: %s: this agentsupd does not know the "
		        "%s: it runs an older build than this agentsupctl; "
		        "restart agentsupd to run the one installed\n",
		        cmd,
		        reply_str_is(e, AGENTSUP_UNKNOWN_COMMAND)
		                ? "command"
		                : "command's arguments as this agentsupctl "
		                  "sends them (an option added since)");
	else if (e != NULL && e->type == MSGPACK_OBJECT_STR)
		text_term_line(stderr, "agentsupctl: ", e->via.str.ptr,
		               e->via.str.size);
	else
		fprintf(stderr, "agentsupctl: failed\n");
	return CTL_EXIT_REFUSED;
}

/* A follow's last frame, {t: end, cause, reason}: the reason on stderr,
 * and 69 when agentsupd exits (as a connection it closed), 1 when it ended
 * the follow itself (the worker was removed, the follower fell behind). */
int
reply_follow_end(const struct agentsup_frame *f)
{
	const msgpack_object *why = agentsup_wire_get(&f->map, "reason");
	const msgpack_object *cause = agentsup_wire_get(&f->map, "cause");

	if (why != NULL && why->type == MSGPACK_OBJECT_STR)
		text_term_line(stderr, "agentsupctl: ", why->via.str.ptr,
		               why->via.str.size);
	if (reply_str_is(cause, "exit"))
		return CTL_EXIT_UNAVAILABLE;
	return CTL_EXIT_REFUSED;
}

/* A probe must tell a hung agentsupd (accepted by the kernel, never
 * answered: 75, EX_TEMPFAIL) from one that is gone (69). */
int
reply_failed(const struct ctl *c)
{
	return c->timed_out && !c->lost ? CTL_EXIT_NO_ANSWER
	                                : CTL_EXIT_UNAVAILABLE;
}

/* Send one request and read its answer: 0 with a->body (joined when it
 * came in chunks; the caller frees a), or the exit status, said (but a
 * refusal when a->quiet). */
int
reply_ask(struct ctl *c, const char *cmd, const char *arg, int follow,
          struct reply_answer *a)
{
	int rc;

	a->body = NULL;
	msgpack_unpacked_init(&a->joined);
	msgpack_sbuffer_init(&a->all);
	if (conn_send_request(c, cmd, arg, follow) < 0) {
		/* closed on us: it may have said why first (no room) */
		if ((errno == EPIPE || errno == ECONNRESET) &&
		    reply_next(c, &a->f) == 0 &&
		    !render_get_flag(&a->f.map, "ok"))
			return reply_refused(c, cmd, &a->f);
		if (c->lost)
			return CTL_EXIT_UNAVAILABLE; /* said */
		if (errno != EMSGSIZE) {
			perror("agentsupctl: send");
			return CTL_EXIT_UNAVAILABLE;
		}
		fprintf(stderr,
		        "agentsupctl: %s: the request is larger than a frame "
		        "(%u bytes): fewer or shorter arguments\n",
		        cmd, AGENTSUP_MAX_FRAME);
		return CTL_EXIT_USAGE;
	}
	if (reply_next(c, &a->f) < 0)
		return c->timed_out && strcmp(cmd, "wait") == 0
		               ? CTL_EXIT_TIMEOUT
		               : reply_failed(c);
	if (!render_get_flag(&a->f.map, "ok"))
		return a->quiet ? CTL_EXIT_REFUSED
		                : reply_refused(c, cmd, &a->f);
	if (render_get_flag(&a->f.map, "more")) {
		if ((rc = reply_join(c, &a->f, &a->all, &a->joined)) > 0)
			return a->quiet ? CTL_EXIT_REFUSED
			                : reply_refused(c, cmd, &a->f);
		if (rc < 0)
			return reply_failed(c);
		a->body = &a->joined.data;
	} else if ((a->body = agentsup_wire_get(&a->f.map, "result")) == NULL) {
		a->body = &a->f.map;
	}
	return 0;
}

void
reply_answer_free(struct reply_answer *a)
{
	msgpack_unpacked_destroy(&a->joined);
	msgpack_sbuffer_destroy(&a->all);
}
