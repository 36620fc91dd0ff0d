/*
 * serve.c - what each control request does, once request.c has checked it:
 * status and the events history as lists sent in bounded chunks, the node
 * commands, reload, drain and shutdown.
 *
 * A list answer is one or more "res" frames: every frame but the last has
 * "more": true, and the client joins their "result" arrays in order. No frame
 * body exceeds SERVE_CHUNK plus one item, so a tree of any size can be shown
 * by a client with the default frame limit (docs/operations.md).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentsup/wire.h"
#include "client.h"
#include "clock.h"
#include "command.h"
#include "control.h"
#include "daemon.h"
#include "engine.h"
#include "log.h"
#include "reloader.h"
#include "logcap.h"
#include "peer.h"
#include "request.h"
#include "serve.h"
#include "statedir.h"
#include "session.h"
#include "status.h"
#include "tasks.h"
#include "util.h"

#define SERVE_CHUNK (32u << 10) /* items per frame, in bytes, about */
/* logs SUP: its workers' text in one answer, shared; each at least */
#define SERVE_LOGS_MAX (8u << 20)
#define SERVE_LOGS_MIN 512

/* The head of a res, with flag (more, again) set to true when not NULL. */
static void
serve_res_head_flag(msgpack_sbuffer *sb, uint64_t id, bool ok, const char *flag)
{
	msgpack_packer pk;

	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	agentsup_wire_begin(sb);
	msgpack_pack_map(&pk, flag != NULL ? 5 : 4);
	agentsup_wire_kv_str(&pk, "t", AGENTSUP_T_RES);
	agentsup_wire_kv_uint(&pk, "id", id);
	agentsup_wire_pack_str(&pk, "ok");
	ok ? msgpack_pack_true(&pk) : msgpack_pack_false(&pk);
	if (flag != NULL) {
		agentsup_wire_pack_str(&pk, flag);
		msgpack_pack_true(&pk);
	}
	agentsup_wire_pack_str(&pk, ok ? "result" : "error");
}

void
serve_res_head(msgpack_sbuffer *sb, uint64_t id, bool ok, bool more)
{
	serve_res_head_flag(sb, id, ok, more ? "more" : NULL);
}

void
serve_frame_send(struct client *cl, msgpack_sbuffer *sb)
{
	if (agentsup_wire_end(sb, UINT32_MAX) < 0) {
		client_drop(cl, "response too large");
		return;
	}
	client_send(cl, sb->data, sb->size);
}

/* {t: res, id, ok: false, [flag: true,] error: why}. */
static void
serve_error_flag(struct client *cl, uint64_t id, const char *flag,
                 const char *why)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;

	msgpack_sbuffer_init(&sb);
	serve_res_head_flag(&sb, id, false, flag);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	agentsup_wire_pack_str(&pk, why);
	serve_frame_send(cl, &sb);
	msgpack_sbuffer_destroy(&sb);
}

static void
serve_ok(struct client *cl, uint64_t id, const char *msg)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;

	msgpack_sbuffer_init(&sb);
	serve_res_head(&sb, id, true, false);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	agentsup_wire_pack_str(&pk, msg);
	serve_frame_send(cl, &sb);
	msgpack_sbuffer_destroy(&sb);
}

void
serve_refuse(struct client *cl, uint64_t id, const char *why)
{
	serve_error_flag(cl, id, NULL, why);
}

void
serve_refusef(struct client *cl, uint64_t id, const char *fmt, ...)
{
	char *msg;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&msg, fmt, ap);
	va_end(ap);
	if (n < 0)
		fatalx("out of memory");
	serve_error_flag(cl, id, NULL, msg);
	free(msg);
}

/* A refusal of what may be taken a moment later (a supervisor busy with
 * a restart, a node still stopping): again: true, so that a client that
 * waits for the command to be carried out (--wait) asks again. */
void
serve_refuse_again(struct client *cl, uint64_t id, const char *why)
{
	serve_error_flag(cl, id, "again", why);
}

struct node *
serve_removed(struct daemon *d, const char *name, bool by_path)
{
	struct node *g = d->tree->graveyard;

	for (size_t i = 0; i < g->nchildren; i++)
		if (strcmp(g->children[i]->path, name) == 0 ||
		    (!by_path && strcmp(g->children[i]->spec->name, name) == 0))
			return g->children[i];
	return NULL;
}

/* The first copy of a worker of `instances:` named NAME, if there is one:
 * `restart web` of web-1 .. web-3 must not read as a typo. */
static const struct node *
serve_instances(struct daemon *d, const char *name)
{
	char first[CONFIG_NAME_MAX + 8];
	const struct node *n;

	if (snprintf(first, sizeof first, "%s-1", name) >= (int)sizeof first)
		return NULL;
	n = tree_find(d->tree, first);
	return n != NULL && n->spec->instance == 1 ? n : NULL;
}

void
serve_no_such(struct client *cl, struct daemon *d, uint64_t id,
              const char *name)
{
	const struct node *n = serve_removed(d, name, false);
	char *msg;

	if (n != NULL) {
		/* removed: true, that `stop --wait` waits for it to be gone */
		msg = xasprintf("%s was removed by a reload and is still "
		                "stopping (agentsupctl signal %s KILL hurries "
		                "it)",
		                n->path, n->path);
		serve_error_flag(cl, id, "removed", msg);
		free(msg);
	} else if ((n = serve_instances(d, name)) != NULL)
		serve_refusef(cl, id,
		              "no such worker or supervisor: %s (a worker of "
		              "`instances: %u`, run as %s-1 .. %s-%u: name a "
		              "copy, restart them one at a time with "
		              "--rolling, or give them a supervisor of their "
		              "own to act on all of them at once)",
		              name, n->spec->instances, name, name,
		              n->spec->instances);
	else
		serve_refusef(cl, id, "no such worker or supervisor: %s", name);
}

void
serve_text(struct client *cl, uint64_t id, const char *msg)
{
	serve_ok(cl, id, msg);
}

/* --- list answers --------------------------------------------------------- */

void
serve_list_init(struct serve_list *l, struct client *cl, uint64_t id)
{
	l->cl = cl;
	l->id = id;
	l->n = 0;
	msgpack_sbuffer_init(&l->items);
	msgpack_packer_init(&l->pk, &l->items, msgpack_sbuffer_write);
}

/* Send the items gathered so far as one frame. */
static void
serve_list_flush(struct serve_list *l, bool more)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;

	msgpack_sbuffer_init(&sb);
	serve_res_head(&sb, l->id, true, more);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, l->n);
	if (l->items.size > 0)
		msgpack_sbuffer_write(&sb, l->items.data, l->items.size);
	serve_frame_send(l->cl, &sb);
	msgpack_sbuffer_destroy(&sb);
	msgpack_sbuffer_clear(&l->items);
	l->n = 0;
}

void
serve_list_added(struct serve_list *l)
{
	l->n++;
	if (l->items.size >= SERVE_CHUNK)
		serve_list_flush(l, true);
}

void
serve_list_end(struct serve_list *l)
{
	serve_list_flush(l, false);
	msgpack_sbuffer_destroy(&l->items);
}

void
serve_list_drop(struct serve_list *l)
{
	msgpack_sbuffer_destroy(&l->items);
}

/* --- requests ------------------------------------------------------------- */

static void
serve_subtree(struct serve_list *l, struct daemon *d, const struct node *n,
              int depth, uint64_t now)
{
	status_pack_node(&l->pk, n, depth, now, d->ckpt,
	                 n->spec->tmpl != NULL ? tasks_waiting(d, n->spec->name)
	                                       : 0);
	serve_list_added(l);
	for (size_t i = 0; i < n->nchildren; i++)
		serve_subtree(l, d, n->children[i], depth + 1, now);
}

static void
serve_status(struct client *cl, struct daemon *d, const struct request *r)
{
	struct node *n =
	        r->name[0] ? tree_find(d->tree, r->name) : d->tree->root;
	struct serve_list l;

	if (n == NULL) {
		serve_no_such(cl, d, r->id, r->name);
		return;
	}
	serve_list_init(&l, cl, r->id);
	serve_subtree(&l, d, n, 0, clock_now_ms());
	/* the whole tree's: then what reloads removed that is still stopping
	 * (its process runs up to its drain_timeout and shutdown: it was gone
	 * from status meanwhile), below the root, removed: true */
	for (size_t i = 0; !r->name[0] && i < d->tree->graveyard->nchildren;
	     i++)
		serve_subtree(&l, d, d->tree->graveyard->children[i], 1,
		              clock_now_ms());
	serve_list_end(&l);
}

/* events [follow [NAME]]: the events kept (of NAME's subtree only), then
 * for a follower every new one (of that subtree). */
static void
serve_events(struct client *cl, struct control *c, struct daemon *d,
             const struct request *r)
{
	const struct node *n = NULL;
	const char *ev, *path;
	struct serve_list l;
	size_t len;

	if (r->name[0] && (n = tree_find(d->tree, r->name)) == NULL) {
		serve_no_such(cl, d, r->id, r->name);
		return;
	}
	serve_list_init(&l, cl, r->id);
	for (size_t i = 0; (ev = control_history(c, i, &len, &path)) != NULL;
	     i++) {
		if (!control_in_subtree(path, n != NULL ? n->path : NULL))
			continue;
		msgpack_sbuffer_write(&l.items, ev, len); /* a packed map */
		serve_list_added(&l);
	}
	serve_list_end(&l);
	cl->follow = r->follow;
	free(cl->events_under);
	cl->events_under = n != NULL && r->follow ? xstrdup(n->path) : NULL;
}

/* One string answer to a logs request, with a note of the streams that
 * are not captured ("uncaptured") if there is one. */
static void
serve_logs_text(struct client *cl, uint64_t id, const char *text, size_t len,
                const char *note)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	agentsup_wire_begin(&sb);
	msgpack_pack_map(&pk, note[0] ? 5 : 4);
	agentsup_wire_kv_str(&pk, "t", AGENTSUP_T_RES);
	agentsup_wire_kv_uint(&pk, "id", id);
	agentsup_wire_pack_str(&pk, "ok");
	msgpack_pack_true(&pk);
	if (note[0])
		agentsup_wire_kv_str(&pk, "uncaptured", note);
	agentsup_wire_pack_str(&pk, "result");
	msgpack_pack_str(&pk, len);
	msgpack_pack_str_body(&pk, text, len);
	serve_frame_send(cl, &sb);
	msgpack_sbuffer_destroy(&sb);
}

/* An ended task (its node swept): the last lines its record keeps; none
 * will follow ("no such worker" left its output only in `wait`). */
static void
serve_logs_ended(struct client *cl, const struct request *r, const char *tail)
{
	if (r->follow)
		serve_refusef(cl, r->id,
		              "task %s has ended: nothing more will come "
		              "(agentsupctl logs %s shows its last lines)",
		              r->name, r->name);
	else
		serve_logs_text(cl, r->id, tail, strlen(tail), "");
}

/* A follower (logs -f) of the capture name, or of the subtree at a
 * supervisor's path (sub): the lines matched from now on. */
static void
serve_logs_follow(struct client *cl, const struct request *r, const char *name,
                  bool sub)
{
	if (!r->follow || cl->dead)
		return;
	free(cl->logs);
	cl->logs = xstrdup(name);
	cl->logs_sub = sub;
}

/* Where a stream that is not captured goes, appended to buf (empty for a
 * captured one): `logs` of such a worker is empty, and says why. */
static void
serve_uncaptured(const struct spec *s, const struct output *o,
                 const char *stream, char *buf, size_t len)
{
	size_t n = strlen(buf);
	const char *sep = n > 0 ? "; " : "";

	if (o->mode == OUTPUT_NULL)
		snprintf(buf + n, len - n,
		         "%s%s is not captured: discarded "
		         "(%s: null)",
		         sep, stream, stream);
	else if (o->mode == OUTPUT_INHERIT)
		snprintf(buf + n, len - n,
		         "%s%s is not captured: it goes to "
		         "agentsupd's own %s (%s: inherit)",
		         sep, stream, stream, stream);
	else if (o->mode == OUTPUT_FILE)
		snprintf(buf + n, len - n,
		         "%s%s is not captured: it goes to "
		         "the file %s%s%s",
		         sep, stream,
		         o->path[0] != '/' && s->directory ? s->directory : "",
		         o->path[0] != '/' && s->directory ? "/" : "", o->path);
}

/* logs SUP: each worker below it that has output kept, in tree order,
 * as a list of {name, text} (its last N lines); a follower then gets the
 * lines of every worker below SUP, even one a reload adds, as {t: log}
 * frames that carry the name. The answer is queued at once: its text is
 * bounded (SERVE_LOGS_MAX shared among the workers, each its newest whole
 * lines that fit), whatever log_tail and the tree's size. */
static void
serve_logs_tree(struct client *cl, struct daemon *d, const struct request *r,
                const struct node *sup)
{
	size_t cap = d->cfg->settings.log_tail + 1, len, nw = 0;
	char nbuf[SESSION_CAPTURE_NAME_MAX], *buf;
	struct serve_list l;
	const char *name;

	for (const struct node *n = sup; n != NULL; n = tree_walk_next(sup, n))
		nw += n->spec->kind == KIND_WORKER;
	if (nw > 0 && cap > SERVE_LOGS_MAX / nw)
		cap = SERVE_LOGS_MAX / nw > SERVE_LOGS_MIN ? SERVE_LOGS_MAX / nw
		                                           : SERVE_LOGS_MIN;
	buf = xmalloc(cap);
	serve_list_init(&l, cl, r->id);
	for (const struct node *n = sup; n != NULL && !cl->dead;
	     n = tree_walk_next(sup, n)) {
		if (n->spec->kind != KIND_WORKER)
			continue;
		name = session_capture_name(n, nbuf);
		len = logcap_tail(logcap_find(d->logcap, name), r->lines, buf,
		                  cap);
		if (len == 0)
			continue;
		msgpack_pack_map(&l.pk, 2);
		agentsup_wire_kv_str(&l.pk, "name", name);
		agentsup_wire_pack_str(&l.pk, "text");
		msgpack_pack_str(&l.pk, len);
		msgpack_pack_str_body(&l.pk, buf, len);
		serve_list_added(&l);
	}
	serve_list_end(&l);
	free(buf);
	/* the whole tree's follower follows "" (every path): a reload may
	 * rename the root, and the tree is still there */
	serve_logs_follow(cl, r, r->name[0] ? sup->path : "", true);
}

/* logs NAME [N] [follow]: the last N lines of the worker's ring as one
 * string; a follower then gets each new line as a {t: log} frame. A stream
 * that is not captured is named in "uncaptured" (text), beside "result".
 * A supervisor's (the root's when NAME is empty): serve_logs_tree. */
static void
serve_logs(struct client *cl, struct daemon *d, const struct request *r)
{
	char key[REQUEST_NAME_MAX];
	struct node *n;
	size_t cap = d->cfg->settings.log_tail + 1;
	char nbuf[SESSION_CAPTURE_NAME_MAX], note[2048] = "";
	const char *tail;
	const char *name;
	char *buf;
	size_t len;

	/* a task's lines are shown under POOL:KEY: that name is its too */
	session_capture_key(r->name, key, sizeof key);
	n = key[0] ? tree_find(d->tree, key) : d->tree->root;
	if (n == NULL && (tail = tasks_tail(d, key)) != NULL) {
		serve_logs_ended(cl, r, tail);
		return;
	}
	if (n == NULL) {
		serve_no_such(cl, d, r->id, r->name);
		return;
	}
	if (n->spec->kind != KIND_WORKER) {
		serve_logs_tree(cl, d, r, n);
		return;
	}
	name = session_capture_name(n, nbuf);
	buf = xmalloc(cap);
	len = logcap_tail(logcap_find(d->logcap, name), r->lines, buf, cap);
	serve_uncaptured(n->spec, &n->spec->out, "stdout", note, sizeof note);
	serve_uncaptured(n->spec, &n->spec->err, "stderr", note, sizeof note);
	serve_logs_text(cl, r->id, buf, len, note);
	free(buf);
	serve_logs_follow(cl, r, name, false);
}

/* A worker's `control:` grants: anything else it asks is refused. */
static bool
serve_granted(struct client *cl, struct daemon *d, const struct request *r)
{
	if (peer_granted(d, cl->worker, request_cmd_name(r->cmd)))
		return true;
	log_warnx("control: refused %s from inside worker %s",
	          request_cmd_name(r->cmd), cl->worker);
	serve_refusef(cl, r->id,
	              "refused: this client runs inside worker %s, which may "
	              "not %s (grant it with `control: [%s]` in its config)",
	              cl->worker, request_cmd_name(r->cmd),
	              request_cmd_name(r->cmd));
	return false;
}

void
serve_reload_answer(struct control *c, const struct reload_waiter *w, bool ok,
                    const char *msg)
{
	struct client *cl = control_client(c, w->client);

	if (cl == NULL)
		return;
	/* silent while it waited (a reload held up to 60 s, as long as the
	 * idle deadline): idle from its answer on */
	if (cl->reloads > 0)
		cl->reloads--;
	cl->last_ms = clock_now_ms();
	if (ok)
		serve_ok(cl, w->id, msg);
	else
		serve_refusef(cl, w->id, "reload refused: %s", msg);
}

void
serve_request(struct client *cl, struct control *c, struct daemon *d,
              const struct request *r)
{
	if (cl->peer_gone) {
		serve_refusef(
		        cl, r->id,
		        "refused: the process that connected had exited "
		        "before agentsupd could tell whether it runs inside "
		        "a worker; connect from the process that asks");
		return;
	}
	if (cl->worker != NULL && !serve_granted(cl, d, r))
		return;

	switch (r->cmd) {
	case REQ_STATUS:
		serve_status(cl, d, r);
		break;
	case REQ_START:
	case REQ_STOP:
	case REQ_RESTART:
	case REQ_RESET:
		serve_node_command(cl, d, r);
		break;
	case REQ_SIGNAL:
		serve_signal(cl, d, r);
		break;
	case REQ_DRAIN:
		if (r->name[0] != '\0') {
			serve_node_command(cl, d, r);
			break;
		}
		if (tree_over(d->tree) || d->tree->shutting_down) {
			serve_refusef(
			        cl, r->id, "cannot drain: %s",
			        tree_over(d->tree)
			                ? "agentsupd is exiting: the tree "
			                  "has ended"
			                : "agentsupd is shutting down");
			break;
		}
		daemon_drain(d);
		serve_ok(cl, r->id, "draining the whole tree");
		break;
	case REQ_RELOAD: /* answered by serve_reload_answer, no idle till */
		cl->reloads++;
		daemon_reload(d, cl->serial, r->id);
		break;
	case REQ_EVENTS:
		serve_events(cl, c, d, r);
		break;
	case REQ_SHUTDOWN:
		serve_ok(cl, r->id, "shutting down");
		daemon_shutdown(d, "agentsupctl shutdown");
		break;
	case REQ_SPAWN:
	case REQ_WAIT:
	case REQ_DEAD:
	case REQ_TASKS:
	case REQ_REPLAY:
	case REQ_DROP:
		tasks_serve(cl, d, r);
		break;
	case REQ_LOGS:
		serve_logs(cl, d, r);
		break;
	}
}
