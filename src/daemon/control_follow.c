/*
 * control_follow.c - workers' output to the control clients that follow
 * it (agentsupctl logs -f): a worker's own followers, matched by name, and
 * those of a subtree, matched by the path of the worker's node.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentsup/wire.h"
#include "control.h"
#include "control_int.h"
#include "daemon.h"
#include "engine.h"
#include "logsub.h"
#include "util.h"

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
	       control_in_subtree(path, cl->logs[0] ? cl->logs : NULL);
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

/* path, of the tree whose root was named from, as it is named now: NULL
 * when path is not of it. */
static char *
control_rerooted(const char *path, const char *from, const char *to)
{
	size_t n = strlen(from);

	if (strncmp(path, from, n) != 0 || (path[n] != '\0' && path[n] != '/'))
		return NULL;
	return xasprintf("%s%s", to, path + n);
}

void
control_root_renamed(struct control *c, const char *from, const char *to)
{
	char *p;

	if (c == NULL)
		return;
	for (struct client *cl = c->clients.head; cl != NULL; cl = cl->next) {
		if (cl->events_under != NULL &&
		    (p = control_rerooted(cl->events_under, from, to))) {
			free(cl->events_under);
			cl->events_under = p;
		}
		if (cl->logs != NULL && cl->logs_sub &&
		    (p = control_rerooted(cl->logs, from, to))) {
			free(cl->logs);
			cl->logs = p;
		}
	}
}

void
control_events_ended(struct control *c, const char *path, const char *why)
{
	if (c == NULL)
		return;
	for (struct client *cl = c->clients.head; cl != NULL; cl = cl->next)
		if (!cl->dead && cl->follow && cl->events_under != NULL &&
		    strcmp(cl->events_under, path) == 0)
			client_end(cl, "removed", why);
}

/* The subtree path cl follows whose node a reload took away (removed,
 * or moved: its path is not the same), or NULL: events NAME --follow's
 * node of any kind, logs SUP -f's supervisor (the whole tree's, "", is
 * always there). */
static const char *
control_follow_gone(const struct control *c, const struct client *cl)
{
	const struct node *n;

	if (cl->follow && cl->events_under != NULL &&
	    tree_find(c->d->tree, cl->events_under) == NULL)
		return cl->events_under;
	if (cl->logs == NULL || !cl->logs_sub || cl->logs[0] == '\0')
		return NULL;
	n = tree_find(c->d->tree, cl->logs);
	return n == NULL || n->spec->kind != KIND_SUPERVISOR ? cl->logs : NULL;
}

void
control_log_subtrees(struct control *c)
{
	const char *gone;
	char why[512];

	if (c == NULL)
		return;
	for (struct client *cl = c->clients.head; cl != NULL; cl = cl->next) {
		if (cl->dead || (gone = control_follow_gone(c, cl)) == NULL)
			continue;
		snprintf(why, sizeof why,
		         "%s was removed or moved by a reload: nothing more "
		         "to follow there",
		         gone);
		client_end(cl, "removed", why);
	}
}
