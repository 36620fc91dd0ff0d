/*
 * status.c - a node of the tree as the map "agentsupctl status" shows: the
 * same keys for every node (docs/operations.md), nil where not known.
 */
#include <stdio.h>
#include <string.h>

#include "agentsup/wire.h"
#include "daemon.h"
#include "intensity.h"
#include "session.h"
#include "ckpt.h"
#include "clock.h"
#include "status.h"
#include "dynamic.h"
#include "watch.h"

static void
status_kv_nil(msgpack_packer *pk, const char *key)
{
	agentsup_wire_pack_str(pk, key);
	msgpack_pack_nil(pk);
}

static void
status_progress(msgpack_packer *pk, const struct progress *p)
{
	agentsup_wire_pack_str(pk, "progress");
	if (p == NULL) {
		msgpack_pack_nil(pk);
		return;
	}
	msgpack_pack_map(pk, 4);
	agentsup_wire_pack_str(pk, "steps");
	progress_shown(p, PROGRESS_STEPS) ? msgpack_pack_uint64(pk, p->steps)
	                                  : msgpack_pack_nil(pk);
	agentsup_wire_pack_str(pk, "tokens");
	progress_shown(p, PROGRESS_TOKENS) ? msgpack_pack_uint64(pk, p->tokens)
	                                   : msgpack_pack_nil(pk);
	agentsup_wire_pack_str(pk, "cost");
	progress_shown(p, PROGRESS_COST) ? msgpack_pack_double(pk, p->cost)
	                                 : msgpack_pack_nil(pk);
	agentsup_wire_pack_str(pk, "state");
	progress_shown(p, PROGRESS_STATE) ? agentsup_wire_pack_str(pk, p->state)
	                                  : msgpack_pack_nil(pk);
}

/* A monotonic time as the wall clock's ms since the epoch, or nil. */
static void
status_kv_when(msgpack_packer *pk, const char *key, uint64_t mono, uint64_t now)
{
	if (mono == 0) {
		status_kv_nil(pk, key);
		return;
	}
	agentsup_wire_kv_int(pk, key,
	                     clock_wall_ms() + (int64_t)mono - (int64_t)now);
}

/* The restart policy's state (§14): 7 keys, nil where they do not apply.
 * circuit_configured tells a worker without a circuit (always "closed")
 * from one whose circuit is closed, as /metrics does. */
static void
status_policy(msgpack_packer *pk, const struct node *n, uint64_t now)
{
	bool w = n->spec->kind == KIND_WORKER;
	const struct declaration *d = tree_declaration(n);
	char said[160];

	agentsup_wire_kv_uint(pk, "consecutive_failures", n->failures);
	status_kv_when(pk, "backoff_until_ms",
	               n->state == NODE_BACKOFF ? n->backoff_until : 0, now);
	if (w) {
		agentsup_wire_kv_str(
		        pk, "circuit",
		        circuit_state_name(node_circuit(n)->state));
		agentsup_wire_pack_str(pk, "circuit_configured");
		n->spec->pol->circuit.enabled ? msgpack_pack_true(pk)
		                              : msgpack_pack_false(pk);
	} else {
		status_kv_nil(pk, "circuit");
		status_kv_nil(pk, "circuit_configured");
	}
	/* none once called off (an operator's stop, its supervisor's): it
	 * said "probe in 0.0s" for ever */
	status_kv_when(pk, "probe_at_ms",
	               n->state == NODE_QUARANTINED &&
	                               (n->wake_at != 0 || n->pending)
	                       ? node_circuit(n)->probe_at
	                       : 0,
	               now);
	if (n->exit_declared != DECLARED_NONE || d->kind != DECLARED_NONE) {
		enum declared_kind k =
		        d->kind != DECLARED_NONE ? d->kind : n->exit_declared;
		snprintf(said, sizeof said, "%s%s%s", declared_name(k),
		         d->kind != DECLARED_NONE && d->detail[0] ? ": " : "",
		         d->kind != DECLARED_NONE ? d->detail : "");
		agentsup_wire_kv_str(pk, "declared", said);
	} else {
		status_kv_nil(pk, "declared");
	}
	agentsup_wire_kv_uint(pk, "incarnation", n->starts ? n->starts - 1 : 0);
}

/* A copy of a worker of `instances: N` names what it is a copy of (WEB of
 * web-3): `agentsupctl restart web --rolling` finds its copies so. */
static void
status_instance_of(msgpack_packer *pk, const struct spec *s)
{
	char suffix[16];
	size_t len = strlen(s->name), k;

	k = (size_t)snprintf(suffix, sizeof suffix, "-%u", s->instance);
	if (s->instance == 0 || k >= len ||
	    strcmp(s->name + len - k, suffix) != 0) {
		status_kv_nil(pk, "instance_of");
		return;
	}
	agentsup_wire_pack_str(pk, "instance_of");
	msgpack_pack_str(pk, len - k);
	msgpack_pack_str_body(pk, s->name, len - k);
}

void
status_pack_node(msgpack_packer *pk, const struct node *n, int depth,
                 uint64_t now, const struct ckpt_set *cs,
                 uint64_t resume_waiting)
{
	uint64_t seq = cs != NULL ? ckpt_seq(cs, n->path) : 0;
	const struct spec *s = n->spec;
	const struct session *w = n->session;
	const struct progress *prog = n->progress;
	bool sup = s->kind == KIND_SUPERVISOR;
	char why[64];

	msgpack_pack_map(pk, 39);
	agentsup_wire_kv_str(pk, "name", s->name);
	agentsup_wire_kv_str(pk, "path", n->path);
	agentsup_wire_kv_str(pk, "kind", sup ? "supervisor" : "worker");
	agentsup_wire_kv_str(pk, "state", node_state_name(n->state));
	agentsup_wire_kv_uint(pk, "depth", (uint64_t)depth);
	if (w != NULL)
		agentsup_wire_kv_int(pk, "pid", w->pid);
	else
		status_kv_nil(pk, "pid");
	agentsup_wire_kv_uint(pk, "uptime_ms",
	                      n->state == NODE_RUNNING ? now - n->since_ms : 0);
	agentsup_wire_kv_uint(pk, "restarts", n->starts ? n->starts - 1 : 0);
	agentsup_wire_kv_uint(pk, "starts", n->starts); /* 0: never started */
	reason_format(n->last, why, sizeof why);
	if (n->last.kind == REASON_NONE) /* absent facts are nil */
		status_kv_nil(pk, "last_reason");
	else
		agentsup_wire_kv_str(pk, "last_reason", why);
	agentsup_wire_pack_str(pk, "held");
	n->held ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
	if (n->held) /* an operator's command, or its config */
		agentsup_wire_kv_str(pk, "held_by",
		                     n->held_config ? "autostart" : "command");
	else
		status_kv_nil(pk, "held_by");
	agentsup_wire_pack_str(pk, "removed"); /* by a reload, still stopping */
	n->removed ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
	/* failed while its supervisor carried out a start, restart or stop
	 * of its children: its policy takes it once that is done (it read as
	 * plain "stopped" meanwhile, as if an operator had stopped it) */
	agentsup_wire_pack_str(pk, "pending");
	n->pending ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
	agentsup_wire_pack_str(pk, "healthy"); /* agentsupctl status's exit */
	node_unhealthy(n) ? msgpack_pack_false(pk) : msgpack_pack_true(pk);
	agentsup_wire_kv_str(pk, "restart",
	                     config_restart_name(s->pol->restart));
	if (sup) {
		agentsup_wire_kv_str(pk, "strategy",
		                     config_strategy_name(s->pol->strategy));
		agentsup_wire_kv_uint(pk, "intensity", s->pol->intensity);
		agentsup_wire_kv_uint(pk, "period_ms", s->pol->period_ms);
		agentsup_wire_kv_uint(pk, "window_restarts",
		                      intensity_count(n, now));
	} else {
		status_kv_nil(pk, "strategy");
		status_kv_nil(pk, "intensity");
		status_kv_nil(pk, "period_ms");
		status_kv_nil(pk, "window_restarts");
	}
	agentsup_wire_kv_uint(pk, "heartbeat_ms",
	                      sup ? 0 : s->pol->heartbeat_ms);
	if (w != NULL && w->beat_timeout_ms != 0) /* as the run is held */
		agentsup_wire_kv_uint(pk, "heartbeat_age_ms",
		                      now - w->last_beat_us / 1000);
	else
		status_kv_nil(pk, "heartbeat_age_ms");
	agentsup_wire_kv_uint(pk, "beats", n->beats);
	status_progress(pk, prog);
	if (prog != NULL && prog->status[0])
		agentsup_wire_kv_str(pk, "status", prog->status);
	else
		status_kv_nil(pk, "status");
	status_policy(pk, n, now);
	watch_status(pk, n, now);
	if (!sup && seq != 0) /* §11: its newest checkpoint */
		agentsup_wire_kv_uint(pk, "checkpoint_seq", seq);
	else
		status_kv_nil(pk, "checkpoint_seq");
	if (n->task != NULL) /* a dynamic child's key (DESIGN §12) */
		agentsup_wire_kv_str(pk, "key", n->task->key);
	else
		status_kv_nil(pk, "key");
	if (sup && s->tmpl != NULL) /* tasks not shown as its children */
		agentsup_wire_kv_uint(pk, "resume_waiting", resume_waiting);
	else
		status_kv_nil(pk, "resume_waiting");
	status_instance_of(pk, s);
}
