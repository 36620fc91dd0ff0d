/*
 * control_follow.c - workers' output to the control clients that follow
 * it (agentsupctl logs -f): a worker's own followers, matched by name, and
 * those of a subtree, matched by the path of the worker's node.
 */
#include <stdio.h>
#include <string.h>

#include "agentsup/wire.h"
#include "control.h"
#include "control_int.h"
#include "daemon.h"
#include "engine.h"
#include "logsub.h"

/* --- worker output to followers ------------------------------------------- */

/* Whether cl follows the output kept under name: a worker's own
 * follower, or one of a supervisor's subtree that holds it. */
static bool
control_follows(struct control *c, const struct client *cl, const char *name)
{
	const char *path;

	if (cl->logs == NULL || cl->dead)
		return false;
	if (!cl->logs_sub)
		return strcmp(cl->logs, name) == 0;
	path = logsub_path(&c->sub, c->d, name);
	return path != NULL &&
	       (cl->logs[0] == '\0' || logsub_under(path, cl->logs));
}

bool
control_log_followed(void *arg, const char *name)
{
	struct control *c = arg;

	for (const struct client *cl = c->clients.head; cl != NULL;
	     cl = cl->next)
		if (control_follows(c, cl, name))
			return true;
	return false;
}

/* The logcap sink: {t: log, name, stream, line} to whoever follows name. */
void
control_log_line(void *arg, const char *name, enum logcap_stream stream,
                 const char *line, size_t len)
{
	struct control *c = arg;
	msgpack_packer pk;
	bool packed = false;

	for (struct client *cl = c->clients.head; cl != NULL; cl = cl->next) {
		if (!control_follows(c, cl, name))
			continue;
		if (!packed) {
			msgpack_packer_init(&pk, &c->sb, msgpack_sbuffer_write);
			agentsup_wire_begin(&c->sb);
			msgpack_pack_map(&pk, 4);
			agentsup_wire_kv_str(&pk, "t", CONTROL_T_LOG);
			agentsup_wire_kv_str(&pk, "name", name);
			agentsup_wire_kv_str(
			        &pk, "stream",
			        stream == LOGCAP_STDERR ? "stderr" : "stdout");
			agentsup_wire_pack_str(&pk, "line");
			msgpack_pack_str(&pk, len);
			msgpack_pack_str_body(&pk, line, len);
			if (agentsup_wire_end(&c->sb, CONTROL_MAX_EVENT) < 0)
				return;
			packed = true;
		}
		client_push(cl, c->sb.data, c->sb.size);
	}
}

/* Followers of a capture that is gone are told so: they are matched by
 * name, and would wait for ever for lines that no longer come. */
void
control_log_removed(struct control *c, const char *name, const char *why)
{
	if (c == NULL)
		return;
	for (struct client *cl = c->clients.head; cl != NULL; cl = cl->next)
		if (cl->logs != NULL && !cl->logs_sub &&
		    strcmp(cl->logs, name) == 0)
			client_end(cl, "removed", why);
}

void
control_log_subtrees(struct control *c)
{
	const struct node *n;
	char why[512];

	if (c == NULL)
		return;
	for (struct client *cl = c->clients.head; cl != NULL; cl = cl->next) {
		if (cl->dead)
			continue;
		/* events NAME --follow: matched by path, as logs SUP -f */
		if (cl->follow && cl->events_under != NULL &&
		    tree_find(c->d->tree, cl->events_under) == NULL) {
			snprintf(why, sizeof why,
			         "%s was removed or moved by a reload: nothing "
			         "more to follow there",
			         cl->events_under);
			client_end(cl, "removed", why);
			continue;
		}
		if (cl->logs == NULL || !cl->logs_sub ||
		    cl->logs[0] == '\0') /* the whole tree: always there */
			continue;
		n = tree_find(c->d->tree, cl->logs);
		if (n != NULL && n->spec->kind == KIND_SUPERVISOR)
			continue;
		snprintf(why, sizeof why,
		         "%s was removed or moved by a reload: nothing more "
		         "to follow there",
		         cl->logs);
		client_end(cl, "removed", why);
	}
}
