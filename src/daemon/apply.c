/*
 * apply.c - a parsed config applied to the running daemon: the tree's diff
 * (reload.c decides it), the settings that change at run time, and the one
 * line, bounded, that says what happened to whoever asked. The parse itself
 * ran off the loop (reloader.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentsup/protocol.h"
#include "ckpt.h"
#include "clock.h"
#include "contain.h"
#include "control.h"
#include "daemon.h"
#include "dynamic.h"
#include "events.h"
#include "hooks.h"
#include "log.h"
#include "logcap.h"
#include "notify.h"
#include "reload.h"
#include "reloader.h"
#include "scrape.h"
#include "serve.h"
#include "session.h"
#include "spawn.h"
#include "tasks.h"
#include "tree.h"
#include "util.h"

#define RELOAD_MSG_LIMIT (32u * 1024u) /* then "... and N more" */

static bool
apply_changed(const char *a, const char *b)
{
	return (a == NULL) != (b == NULL) || (a != NULL && strcmp(a, b) != 0);
}

/* warn (NULL: none yet) with "; more" added; both are taken. */
static char *
apply_warn(char *warn, char *more)
{
	char *both = xasprintf("%s; %s", warn ? warn : "", more);

	free(more);
	free(warn);
	return both;
}

/* Settings read at start only: a new value of one is said in the answer,
 * not taken silently (a state_dir moved to a larger disk stayed put). */
static char *
apply_next_start(struct daemon *d, const struct settings *old, char *warn)
{
	const struct settings *s = &d->cfg->settings;

	if (apply_changed(old->socket, s->socket))
		warn = apply_warn(warn, xasprintf("the control socket stays at "
		                                  "%s until a restart",
		                                  d->socket_path));
	if (apply_changed(d->state_dir, s->state_dir))
		warn = apply_warn(
		        warn, xasprintf("the state store stays %s%s until a "
		                        "restart",
		                        d->state_dir ? "at " : "off",
		                        d->state_dir ? d->state_dir : ""));
	if (d->contain_mode != s->contain)
		warn = apply_warn(warn,
		                  xstrdup("contain: stays as it was until "
		                          "a restart"));
	return warn;
}

/* Settings that can change at run time: the events file, metrics, hooks,
 * capture limits. What could not be applied, for the reload's answer (a
 * metrics address that cannot be served went dark behind an "ok"; a
 * setting read at start only), or NULL. */
static char *
apply_settings(struct daemon *d, const struct settings *old)
{
	const struct settings *s = &d->cfg->settings;
	const char *why = NULL;
	char *warn = apply_next_start(d, old, NULL);

	if (apply_changed(old->events_file, s->events_file))
		events_set_file(&d->events, s->events_file);
	if (scrape_configure(d, s->metrics, &why) < 0)
		warn = apply_warn(warn,
		                  xasprintf("but metrics at %s are off: %s",
		                            s->metrics, why));
	hooks_set(d->hooks, s->hooks, s->nhooks);
	logcap_set_limits(d->logcap,
	                  &(struct logcap_limits){s->log_dir, s->log_max,
	                                          s->log_keep, s->log_tail,
	                                          s->log_time, s->log_quiet});
	return warn;
}

/* Append "name [a, b]" to a growing message, bounded: past the limit the
 * rest is counted, never silently cut. */
static void
msg_list(char **msg, size_t *len, const char *name, const struct reload_list *l)
{
	size_t shown = 0;

	*msg = xrealloc(*msg, *len + strlen(name) + 4);
	*len += (size_t)sprintf(*msg + *len, "%s%s [", *len ? " " : "", name);
	for (; shown < l->count && *len < RELOAD_MSG_LIMIT; shown++) {
		size_t pl = strlen(l->paths[shown]);
		*msg = xrealloc(*msg, *len + pl + 3);
		*len += (size_t)sprintf(*msg + *len, "%s%s", shown ? ", " : "",
		                        l->paths[shown]);
	}
	*msg = xrealloc(*msg, *len + 48);
	if (shown < l->count)
		*len += (size_t)sprintf(*msg + *len, ", ... and %zu more",
		                        l->count - shown);
	*len += (size_t)sprintf(*msg + *len, "]");
}

static char *
reload_message(const struct reload_report *r)
{
	char *msg = NULL;
	size_t len = 0;

	msg_list(&msg, &len, "added", &r->added);
	msg_list(&msg, &len, "removed", &r->removed);
	msg_list(&msg, &len, "restarted", &r->restarted);
	msg_list(&msg, &len, "updated", &r->updated);
	return msg;
}

static char *
errors_message(const struct config_errors *errs)
{
	char *msg = xasprintf("%zu error%s", errs->total,
	                      errs->total == 1 ? "" : "s");
	size_t len = strlen(msg);

	for (size_t i = 0; i < errs->count && len < RELOAD_MSG_LIMIT; i++) {
		size_t ml = strlen(errs->msgs[i]);
		msg = xrealloc(msg, len + ml + 3);
		len += (size_t)sprintf(msg + len, "%s%s", i ? "; " : ": ",
		                       errs->msgs[i]);
	}
	return msg;
}

/* Every running worker's session learns of its new spec. */
static void
apply_sessions(struct node *n)
{
	if (n->session != NULL)
		session_reloaded(n->session);
	for (size_t i = 0; i < n->nchildren; i++)
		apply_sessions(n->children[i]);
}

/* A parse is done (on its thread): apply it as a diff, or refuse it whole;
 * the line saying what happened goes to *msgp. -1 when refused. */
static int
daemon_reload_apply(struct daemon *d, struct config *cfg,
                    struct config_errors *errs, char **msgp)
{
	struct reload_report r;
	struct config *old;
	const char *why;
	char *warn, *root;
	size_t buried;

	/* READY=1 again once the tree has settled, whatever the outcome */
	d->up_ready = false;
	if (cfg == NULL) {
		*msgp = errors_message(errs);
		events_emit(&d->events, EV_RELOAD_REFUSED, d->tree->root->path,
		            0, "config", 0, "%s", *msgp);
		return -1;
	}
	if (tree_over(d->tree)) { /* it gave up: the last hooks run */
		*msgp = xstrdup("agentsupd is exiting: the tree has ended");
		config_free(cfg);
		return -1;
	}
	if (spawn_check_ids(cfg->root, msgp) < 0) {
		events_emit(&d->events, EV_RELOAD_REFUSED, d->tree->root->path,
		            0, "config", 0, "%s", *msgp);
		config_free(cfg);
		return -1;
	}
	buried = d->tree->graveyard->nchildren;
	root = xstrdup(d->tree->root->path);
	if (reload_apply(d->tree, cfg->root, clock_now_ms(), &r, &why) < 0) {
		*msgp = xstrdup(why);
		events_emit(&d->events, EV_RELOAD_REFUSED, d->tree->root->path,
		            0, "busy", 0, "%s", why);
		config_free(cfg);
		free(root);
		return -1;
	}
	if (strcmp(root, d->tree->root->path) != 0)
		control_root_renamed(d->control, root, d->tree->root->path);
	free(root);
	daemon_note_gone(d, buried);
	old = d->cfg;
	d->cfg = cfg;
	warn = apply_settings(d, &old->settings);
	apply_sessions(d->tree->root);
	control_reconfigured(d->control);
	*msgp = reload_message(&r);
	if (warn != NULL) {
		char *both = xasprintf("%s%s", *msgp, warn);
		free(*msgp);
		free(warn);
		*msgp = both;
	}
	reload_report_free(&r);
	events_emit(&d->events, EV_RELOAD_APPLIED, d->tree->root->path, 0, NULL,
	            0, "%s", *msgp);
	d->retired =
	        xreallocarray(d->retired, d->nretired + 1, sizeof *d->retired);
	d->retired[d->nretired++] = old;
	return 0;
}

/* A reload parsed while a supervisor was carrying out a restart or stop of
 * its children (a one_for_all group waiting out a sibling's shutdown, a
 * start waiting for ready): refused at once, it was refused again and again
 * while one worker crash-looped, the reload that would fix it among them.
 * It waits for the tree to settle (the pump looks each turn), as systemd
 * queues a job behind the one running, and is refused only past
 * AGENTSUP_RELOAD_HOLD_MS. */
struct reload_hold {
	struct config *cfg; /* the newest parse's: the files as they are now */
	struct reload_waiter *w;
	size_t nw;
	ev_timer deadline;
};

/* Apply cfg (or refuse it with errs), then answer whoever asked. */
static void
apply_answer(struct daemon *d, struct config *cfg, struct config_errors *errs,
             const struct reload_waiter *w, size_t nw)
{
	char *msg = NULL;
	bool ok = daemon_reload_apply(d, cfg, errs, &msg) == 0;

	for (size_t i = 0; i < nw; i++)
		serve_reload_answer(d->control, &w[i], ok, msg);
	free(msg);
}

/* Whether a parsed config must wait: a tree shutting down, draining or
 * over refuses it at once instead. */
static bool
apply_must_wait(const struct daemon *d)
{
	const struct tree *t = d->tree;

	return !t->shutting_down && !t->draining && !tree_over(t) &&
	       reload_busy(t->root) != NULL;
}

static void
apply_hold_free(struct daemon *d, struct reload_hold *h)
{
	ev_timer_stop(d->loop, &h->deadline);
	free(h->w);
	free(h);
}

static void
apply_hold_expired(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct daemon *d = t->data;
	struct reload_hold *h = d->hold;
	char *msg;

	(void)loop;
	(void)revents;
	if (!apply_must_wait(d)) { /* settled earlier in this turn */
		daemon_reload_settled(d);
		return;
	}
	d->hold = NULL;
	d->up_ready = false; /* READY=1 again once the tree has settled */
	msg = xasprintf("%s, for %d s now; reload again once it settles",
	                reload_busy(d->tree->root),
	                AGENTSUP_RELOAD_HOLD_MS / 1000);
	events_emit(&d->events, EV_RELOAD_REFUSED, d->tree->root->path, 0,
	            "busy", 0, "%s", msg);
	for (size_t i = 0; i < h->nw; i++)
		serve_reload_answer(d->control, &h->w[i], false, msg);
	free(msg);
	config_free(h->cfg);
	apply_hold_free(d, h);
}

static struct reload_hold *
apply_hold_new(struct daemon *d)
{
	struct reload_hold *h = xcalloc(1, sizeof *h);

	ev_timer_init(&h->deadline, apply_hold_expired,
	              AGENTSUP_RELOAD_HOLD_MS / 1000.0, 0);
	h->deadline.data = d;
	ev_timer_start(d->loop, &h->deadline);
	log_info("reload waits: %s (applied once it settles, refused after "
	         "%d s)",
	         reload_busy(d->tree->root), AGENTSUP_RELOAD_HOLD_MS / 1000);
	return h;
}

/* The reloader's callback: apply, or hold while the tree is busy. The
 * newest parse replaces a held one (the files as they are now), whose
 * waiters get its outcome: its errors at once, if it has them. */
void
daemon_reload_done(void *arg, struct config *cfg, struct config_errors *errs,
                   const struct reload_waiter *w, size_t nw)
{
	struct daemon *d = arg;
	struct reload_hold *h = d->hold;
	bool wait = cfg != NULL && apply_must_wait(d);

	if (h == NULL && !wait) {
		apply_answer(d, cfg, errs, w, nw);
		return;
	}
	if (h == NULL)
		h = apply_hold_new(d);
	config_free(h->cfg);
	h->cfg = cfg;
	h->w = xreallocarray(h->w, h->nw + nw + 1, sizeof *h->w);
	if (nw > 0) /* a SIGHUP has none: w is NULL, memcpy's UB */
		memcpy(h->w + h->nw, w, nw * sizeof *w);
	h->nw += nw;
	d->hold = wait ? h : NULL;
	if (!wait) {
		apply_answer(d, cfg, errs, h->w, h->nw);
		apply_hold_free(d, h);
	}
}

void
daemon_reload_settled(struct daemon *d)
{
	struct reload_hold *h = d->hold;

	if (h == NULL || apply_must_wait(d))
		return;
	d->hold = NULL;
	apply_answer(d, h->cfg, NULL, h->w, h->nw);
	apply_hold_free(d, h);
}

void
daemon_reload_hold_free(struct daemon *d)
{
	if (d->hold == NULL)
		return;
	config_free(d->hold->cfg);
	apply_hold_free(d, d->hold);
	d->hold = NULL;
}

/* SIGHUP or `agentsupctl reload` alike: logrotate's reopen of the events
 * file and the log_dir files, then the config read off the loop. */
void
daemon_reload(struct daemon *d, uint64_t client, uint64_t id)
{
	struct reload_waiter w = {client, id};

	events_reopen(&d->events);
	logcap_reopen(d->logcap);
	control_reopen(d->control);
	notify_up_reloading(d->up, "reloading");
	reloader_request(d->reloader, client != 0 ? &w : NULL);
}

/* A buried subtree's configured workers, into d->gone; its pools' places
 * remembered (moved, a pool's tasks take their checkpoints along). */
static void
note_gone(struct daemon *d, const struct node *n)
{
	const char *slash = strrchr(n->path, '/');

	if (n->spec->kind == KIND_WORKER && n->task == NULL) {
		d->gone = xreallocarray(d->gone, d->ngone + 1, sizeof *d->gone);
		d->gone[d->ngone++] = xstrdup(n->path);
	} /* a task's end releases its own */
	if (n->spec->kind == KIND_SUPERVISOR && n->spec->tmpl != NULL)
		tasks_pool_was(d, n->spec->name, n->path);
	/* a task buried alone, its pool kept without a template: the root
	 * that a new root above it took the place of, its pool now below */
	if (n->task != NULL && n->parent == d->tree->graveyard && slash) {
		char *pool = xasprintf("%.*s", (int)(slash - n->path), n->path);
		tasks_pool_was(d, n->task->sup, pool);
		free(pool);
	}
	for (size_t i = 0; i < n->nchildren; i++)
		note_gone(d, n->children[i]);
}

void
daemon_note_gone(struct daemon *d, size_t from)
{
	const struct node *g = d->tree->graveyard;

	for (size_t i = from; i < g->nchildren; i++)
		note_gone(d, g->children[i]);
}

void
daemon_release_gone(struct daemon *d)
{
	for (size_t i = 0; i < d->ngone; i++) {
		const char *path = d->gone[i], *slash = strrchr(path, '/');
		const char *name = slash != NULL ? slash + 1 : path;
		if (tree_find(d->tree, path) == NULL) {
			ckpt_release(d->ckpt, path);
			contain_forget(d->contain, path);
		}
		if (tree_find(d->tree, name) == NULL) {
			char why[512];
			snprintf(why, sizeof why,
			         "%s was removed by a reload: nothing more "
			         "to follow",
			         name);
			logcap_remove(d->logcap, name);
			control_log_removed(d->control, name, why);
		}
		free(d->gone[i]);
	}
	free(d->gone);
	d->gone = NULL;
	d->ngone = 0;
	control_log_subtrees(d->control);
}
