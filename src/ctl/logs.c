/*
 * logs.c - agentsupctl logs: a worker's last lines of output, or those of
 * every worker below a supervisor (the whole tree without a NAME), each
 * line then under its worker's name as agentsupd's stderr has them
 * ("NAME | line"; "NAME ! line" from stderr); -f then follows new lines.
 */
#include <stdio.h>
#include <string.h>

#include "agentsup/wire.h"
#include "conn.h"
#include "logs.h"
#include "render.h"
#include "reply.h"

/* Each line of text under name ("NAME | "), the name padded to width so
 * that the lines of several workers line up, as on agentsupd's stderr. */
static void
logs_print_named(const msgpack_object *name, const msgpack_object *text,
                 int width)
{
	const char *p = text->via.str.ptr, *end = p + text->via.str.size, *nl;

	while (p < end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		printf("%-*.*s | %.*s\n", width, (int)name->via.str.size,
		       name->via.str.ptr, (int)((nl ? nl : end) - p), p);
		p = nl ? nl + 1 : end;
	}
}

/* The widest name of a subtree's [{name, text}] (no wider than a line). */
static int
logs_width(const msgpack_object *items)
{
	const msgpack_object *name;
	uint32_t w = 0;

	for (uint32_t i = 0; i < items->via.array.size; i++) {
		name = agentsup_wire_get(&items->via.array.ptr[i], "name");
		if (name != NULL && name->type == MSGPACK_OBJECT_STR &&
		    name->via.str.size > w)
			w = name->via.str.size;
	}
	return w > 64 ? 64 : (int)w;
}

/* A subtree's tails, [{name, text}] joined from its chunks: one JSON
 * array (--json), else every line under its name. */
static int
logs_print_tree(struct ctl *c, struct agentsup_frame *f, int *width)
{
	const msgpack_object *name, *text, *it;
	msgpack_unpacked joined;
	msgpack_sbuffer all;
	int rc = 0;

	msgpack_unpacked_init(&joined);
	msgpack_sbuffer_init(&all);
	if ((rc = reply_join(c, f, &all, &joined)) != 0) {
		rc = rc > 0 ? reply_refused(c, "logs", f) : reply_failed(c);
		goto out;
	}
	if (c->json) {
		render_json(stdout, &joined.data);
		putchar('\n');
		goto out;
	}
	*width = logs_width(&joined.data);
	for (uint32_t i = 0; i < joined.data.via.array.size; i++) {
		it = &joined.data.via.array.ptr[i];
		name = agentsup_wire_get(it, "name");
		text = agentsup_wire_get(it, "text");
		if (name != NULL && name->type == MSGPACK_OBJECT_STR &&
		    text != NULL && text->type == MSGPACK_OBJECT_STR)
			logs_print_named(name, text, *width);
	}
out:
	msgpack_unpacked_destroy(&joined);
	msgpack_sbuffer_destroy(&all);
	return rc;
}

/* One worker's tail, one string: as it is, or one JSON string (--json);
 * a stream not captured is said on stderr. */
static void
logs_print_one(struct ctl *c, const char *name, const struct agentsup_frame *f,
               const msgpack_object *body)
{
	const msgpack_object *note = agentsup_wire_get(&f->map, "uncaptured");

	if (note != NULL && note->type == MSGPACK_OBJECT_STR)
		fprintf(stderr, "agentsupctl: %s: %.*s\n", name,
		        (int)note->via.str.size, note->via.str.ptr);
	if (c->json) {
		render_json(stdout, body);
		putchar('\n');
	} else {
		fwrite(body->via.str.ptr, 1, body->via.str.size, stdout);
	}
}

/* {t: log, name, stream, line} frames until the follow ends or ^C: the
 * line (under its name when a subtree is followed, padded to the widest
 * name yet), or the frame as JSON (--json). */
static int
logs_follow(struct ctl *c, bool named, int width)
{
	const msgpack_object *line, *name, *stream;
	struct agentsup_frame f;

	while (conn_next_frame(c, &f, -1) == 0) {
		if (agentsup_wire_is(&f, "end"))
			return reply_follow_end(&f);
		line = agentsup_wire_get(&f.map, "line");
		name = agentsup_wire_get(&f.map, "name");
		stream = agentsup_wire_get(&f.map, "stream");
		if (!agentsup_wire_is(&f, "log") || line == NULL ||
		    line->type != MSGPACK_OBJECT_STR)
			continue;
		if (c->json) {
			render_json(stdout, &f.map);
			putchar('\n');
		} else if (named && name != NULL &&
		           name->type == MSGPACK_OBJECT_STR) {
			if ((int)name->via.str.size > width)
				width = name->via.str.size > 64
				                ? 64
				                : (int)name->via.str.size;
			printf("%-*.*s %c %.*s\n", width,
			       (int)name->via.str.size, name->via.str.ptr,
			       reply_str_is(stream, "stderr") ? '!' : '|',
			       (int)line->via.str.size, line->via.str.ptr);
		} else {
			printf("%.*s\n", (int)line->via.str.size,
			       line->via.str.ptr);
		}
		fflush(stdout);
	}
	return c->lost ? CTL_EXIT_UNAVAILABLE : 0; /* else ^C */
}

int
logs_run(struct ctl *c, const char *name, int follow)
{
	const msgpack_object *body;
	struct agentsup_frame f;
	msgpack_sbuffer sb;
	msgpack_packer pk;
	bool tree;
	int rc, width = 0;

	conn_request_begin(&sb, &pk, 1, "logs");
	msgpack_pack_array(&pk, 3);
	if (name != NULL)
		agentsup_wire_pack_str(&pk, name);
	else
		msgpack_pack_nil(&pk);
	msgpack_pack_uint64(&pk, c->lines);
	follow ? msgpack_pack_true(&pk) : msgpack_pack_false(&pk);
	if (conn_request_send(c->fd, &sb) < 0) {
		perror("agentsupctl: send");
		return CTL_EXIT_UNAVAILABLE;
	}
	if (reply_next(c, &f) < 0)
		return reply_failed(c);
	body = agentsup_wire_get(&f.map, "result");
	tree = body != NULL && body->type == MSGPACK_OBJECT_ARRAY;
	if (!render_get_flag(&f.map, "ok") || body == NULL ||
	    (body->type != MSGPACK_OBJECT_STR && !tree))
		return reply_refused(c, "logs", &f);
	if (tree && (rc = logs_print_tree(c, &f, &width)) != 0)
		return rc;
	if (!tree)
		logs_print_one(c, name, &f, body);
	fflush(stdout);
	return follow > 0 ? logs_follow(c, tree, width) : 0;
}
