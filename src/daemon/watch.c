/*
 * watch.c - the shell's side of DESIGN §10. The engine decides (a stall, a
 * loop, a spent budget, a recycle); this file tells the worker
 * ({t: nudge}, SIGUSR1 with stall_dump), has the session stop it with the
 * engine's reason, and writes the events.
 */
#include <stdio.h>

#include "agentsup/wire.h"

#include "channel.h"
#include "daemon.h"
#include "watch.h"
#include "progress.h"
#include "session.h"
#include "util.h"

/* {t: nudge} to the worker (and SIGUSR1 for a stall with stall_dump);
 * event `nudged` says what reached it. */
static void
watch_nudge(struct daemon *d, const struct action *a)
{
	struct node *n = a->node;
	struct session *s = n->session;
	bool stall = a->reason.kind == REASON_STALL;
	struct nudge m = {.reason = stall ? "stall" : "loop"};
	bool sent, dump = stall && n->spec->pol->stall_dump;

	if (s == NULL)
		return;
	if (stall)
		m.idle_ms = a->value;
	else {
		m.period = (unsigned)a->value;
		m.state = n->progress ? n->progress->state : "";
	}
	sent = s->chan != NULL &&
	       channel_send_nudge(s->chan, &m, daemon_max_frame(d)) == 0;
	if (dump)
		session_dump(s);
	events_emit(&d->events, EV_NUDGED, n->path, s->pid, m.reason,
	            n->starts - 1, "%s%s%s",
	            sent ? "told by {t: nudge}" : "it cannot be told",
	            dump ? ", SIGUSR1 sent" : "", stall ? "" : " (loop)");
}

void
watch_act(struct daemon *d, const struct action *a)
{
	struct session *s = a->node->session;

	if (a->kind == ACT_NUDGE) {
		watch_nudge(d, a);
		return;
	}
	if (s != NULL) /* ACT_FAIL */
		session_fail_for(s, a->reason, a->code == STOP_DRAIN);
}

/* "tokens 812 of 1000 (81%)" for the limit that reached 80 %. */
static void
watch_budget_warning(struct daemon *d, const struct action *a)
{
	struct node *n = a->node;
	enum budget_limit l = (enum budget_limit)a->code;
	double lim = budget_limit_of(&n->spec->pol->budget, l);
	struct spend sp;
	double got;
	struct event_field f[3];

	budget_spend(n, d->tree->now, &sp);
	got = budget_spend_of(&sp, l);
	f[0] = (struct event_field){
	        .key = "limit", .type = EVENT_STR, .s = budget_limit_name(l)};
	f[1] = (struct event_field){
	        .key = "spend", .type = EVENT_DOUBLE, .d = got};
	f[2] = (struct event_field){
	        .key = "allowed", .type = EVENT_DOUBLE, .d = lim};
	char detail[128];
	double pct = lim > 0 ? 100.0 * got / lim : 0.0;
	/* a spend of 1e300 is not a percentage of 300 digits */
	snprintf(detail, sizeof detail,
	         pct < 1e6 ? "%s %.6g of %.6g (%.0f%%)"
	                   : "%s %.6g of %.6g (%.3g%%)",
	         budget_limit_name(l), got, lim, pct);
	events_emit_ex(
	        &d->events,
	        &(struct event){.kind = EV_BUDGET_WARNING,
	                        .path = n->path,
	                        .pid = n->session ? n->session->pid : 0,
	                        .reason = "budget",
	                        .restarts = n->starts ? n->starts - 1 : 0,
	                        .detail = detail,
	                        .fields = f,
	                        .nfields = 3});
}

void
watch_event(struct daemon *d, const struct action *a)
{
	struct node *n = a->node;
	pid_t pid = n->session ? n->session->pid : 0;
	char dur[32];

	switch (a->event) {
	case EE_STALLED:
		util_format_duration(a->value, dur, sizeof dur);
		events_emit(&d->events, EV_STALLED, n->path, pid, "stall",
		            n->starts - 1,
		            "beats but no progress for %s; stopped unless it "
		            "moves within %llums",
		            dur,
		            (unsigned long long)n->spec->pol->stall_grace_ms);
		break;
	case EE_LOOPING:
		events_emit(&d->events, EV_LOOPING, n->path, pid, "loop",
		            n->starts - 1,
		            "state \"%s\" repeats with period %llu; stopped "
		            "after %u more such steps",
		            n->progress ? n->progress->state : "",
		            (unsigned long long)a->value,
		            n->spec->pol->loop_repeats);
		break;
	case EE_BUDGET_WARNING:
		watch_budget_warning(d, a);
		break;
	case EE_RECYCLED:
		util_format_duration(n->spec->pol->recycle_after_ms, dur,
		                     sizeof dur);
		events_emit(&d->events, EV_RECYCLED, n->path, pid, NULL,
		            n->starts - 1, "ran %s: drained and started again",
		            dur);
		break;
	default:
		break;
	}
}

/* One spend (or limits: 0 is nil) as {tokens, cost, steps, wall_ms}. */
static void
watch_pack_amounts(msgpack_packer *pk, const struct spend *s, bool nil_zero)
{
	msgpack_pack_map(pk, 4);
	agentsup_wire_pack_str(pk, "tokens");
	nil_zero && s->tokens == 0 ? msgpack_pack_nil(pk)
	                           : msgpack_pack_uint64(pk, s->tokens);
	agentsup_wire_pack_str(pk, "cost");
	nil_zero && s->cost <= 0 ? msgpack_pack_nil(pk)
	                         : msgpack_pack_double(pk, s->cost);
	agentsup_wire_pack_str(pk, "steps");
	nil_zero && s->steps == 0 ? msgpack_pack_nil(pk)
	                          : msgpack_pack_uint64(pk, s->steps);
	agentsup_wire_pack_str(pk, "wall_ms");
	nil_zero && s->wall_ms == 0 ? msgpack_pack_nil(pk)
	                            : msgpack_pack_uint64(pk, s->wall_ms);
}

void
watch_status(msgpack_packer *pk, const struct node *n, uint64_t now)
{
	const struct budget_spec *b = &n->spec->pol->budget;
	const struct pwatch *w = progress_pwatch(n);
	uint64_t stalled = progress_stalled_ms(n, now);
	struct spend sp;

	agentsup_wire_pack_str(pk, "stalled_ms");
	stalled ? msgpack_pack_uint64(pk, stalled) : msgpack_pack_nil(pk);
	agentsup_wire_pack_str(pk, "loop");
	if (w->loop_period != 0 && n->state == NODE_RUNNING) {
		msgpack_pack_map(pk, 2);
		agentsup_wire_kv_uint(pk, "period", w->loop_period);
		agentsup_wire_kv_str(pk, "state",
		                     n->progress ? n->progress->state : "");
	} else {
		msgpack_pack_nil(pk);
	}
	agentsup_wire_pack_str(pk, "budget");
	msgpack_pack_map(pk, 2);
	agentsup_wire_pack_str(pk, "limits");
	if (b->enabled)
		watch_pack_amounts(pk,
		                   &(struct spend){.tokens = b->tokens,
		                                   .cost = b->cost,
		                                   .steps = b->steps,
		                                   .wall_ms = b->wall_ms},
		                   true);
	else
		msgpack_pack_nil(pk);
	agentsup_wire_pack_str(pk, "spend");
	budget_spend(n, now, &sp);
	watch_pack_amounts(pk, &sp, false);
}
