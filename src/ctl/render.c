/*
 * render.c - agentsupctl's output: the tree drawn as text, events as lines,
 * anything as JSON; and the health check that status's exit status is.
 */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agentsup/wire.h"
#include "render.h"
#include "text.h"

#define RENDER_MAX_DEPTH 64 /* deeper nodes are drawn at this depth */

/* Worker text as a JSON string: valid UTF-8 whatever it was sent as
 * (text.h), so `--json` output always parses. */
void
render_json_str(FILE *f, const char *s, size_t n)
{
	struct text_buf b;

	text_buf_init(&b, n * 6 + 8); /* \u00XX per byte at worst, quotes */
	if (text_json_escape(&b, s, n))
		fwrite(b.data, 1, b.len, f);
	else
		fputs("null", f); /* out of memory */
	text_buf_free(&b);
}

/* A number as JSON: NaN and infinities, which JSON has not, are null. */
static void
render_json_double(FILE *f, double v)
{
	struct text_buf b;

	text_buf_init(&b, 64);
	if (text_json_number(&b, v))
		fwrite(b.data, 1, b.len, f);
	else
		fputs("null", f);
	text_buf_free(&b);
}

void
render_json(FILE *f, const msgpack_object *o)
{
	switch (o->type) {
	case MSGPACK_OBJECT_NIL:
		fputs("null", f);
		break;
	case MSGPACK_OBJECT_BOOLEAN:
		fputs(o->via.boolean ? "true" : "false", f);
		break;
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		fprintf(f, "%llu", (unsigned long long)o->via.u64);
		break;
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		fprintf(f, "%lld", (long long)o->via.i64);
		break;
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		render_json_double(f, o->via.f64);
		break;
	case MSGPACK_OBJECT_STR:
		render_json_str(f, o->via.str.ptr, o->via.str.size);
		break;
	case MSGPACK_OBJECT_ARRAY:
		fputc('[', f);
		for (uint32_t i = 0; i < o->via.array.size; i++) {
			if (i)
				fputc(',', f);
			render_json(f, &o->via.array.ptr[i]);
		}
		fputc(']', f);
		break;
	case MSGPACK_OBJECT_MAP:
		fputc('{', f);
		for (uint32_t i = 0; i < o->via.map.size; i++) {
			const msgpack_object_kv *kv = &o->via.map.ptr[i];
			if (i)
				fputc(',', f);
			if (kv->key.type == MSGPACK_OBJECT_STR)
				render_json_str(f, kv->key.via.str.ptr,
				                kv->key.via.str.size);
			else
				fputs("\"?\"", f);
			fputc(':', f);
			render_json(f, &kv->val);
		}
		fputc('}', f);
		break;
	case MSGPACK_OBJECT_BIN: /* a task's result: as a string */
		render_json_str(f, o->via.bin.ptr, o->via.bin.size);
		break;
	default:
		fputs("null", f); /* ext: not in our protocol */
		break;
	}
}

const char *
render_str(const msgpack_object *v, char *buf, size_t len)
{
	struct text_buf b;
	const char *s;
	size_t n;

	buf[0] = '\0';
	if (v == NULL || v->type != MSGPACK_OBJECT_STR)
		return buf;
	s = v->via.str.ptr;
	n = v->via.str.size;
	text_buf_init(&b, len - 1);
	if (!text_term_escape(&b, s, n)) {
		text_buf_reset(&b);
		if (len - 1 >= TEXT_CUT_MIN)
			text_term_escape_cut(&b, s, n, len - 1);
	}
	if (b.len > 0)
		memcpy(buf, b.data, b.len + 1);
	else if (n > 0)
		snprintf(buf, len, "?");
	text_buf_free(&b);
	return buf;
}

const char *
render_get_s(const msgpack_object *m, const char *key, char *buf, size_t len)
{
	return render_str(agentsup_wire_get(m, key), buf, len);
}

bool
render_get_flag(const msgpack_object *m, const char *key)
{
	const msgpack_object *v = agentsup_wire_get(m, key);

	return v != NULL && v->type == MSGPACK_OBJECT_BOOLEAN && v->via.boolean;
}

bool
render_get_u(const msgpack_object *m, const char *key, uint64_t *out)
{
	const msgpack_object *v = agentsup_wire_get(m, key);

	if (v == NULL || (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER &&
	                  v->type != MSGPACK_OBJECT_NEGATIVE_INTEGER))
		return false;
	*out = v->via.u64;
	return true;
}

static void
render_age(uint64_t ms, char *buf, size_t len)
{
	uint64_t s = ms / 1000;

	if (ms < 10000)
		snprintf(buf, len, "%.1fs", (double)ms / 1000.0);
	else if (s < 60)
		snprintf(buf, len, "%llus", (unsigned long long)s);
	else if (s < 3600)
		snprintf(buf, len, "%llum%02llus", (unsigned long long)(s / 60),
		         (unsigned long long)(s % 60));
	else if (s < 86400)
		snprintf(buf, len, "%lluh%02llum",
		         (unsigned long long)(s / 3600),
		         (unsigned long long)(s / 60 % 60));
	else
		snprintf(buf, len, "%llud%02lluh",
		         (unsigned long long)(s / 86400),
		         (unsigned long long)(s / 3600 % 24));
}

/* A node's last_reason, "-" when it has none (nil; "-" from older
 * daemons). */
static void
render_reason(const msgpack_object *n, char *buf, size_t len)
{
	if (render_get_s(n, "last_reason", buf, len)[0] == '\0')
		snprintf(buf, len, "-");
}

static const char *
render_color(const char *state, const char *reason, bool held)
{
	if (strcmp(state, "running") == 0)
		return "\033[32m";
	if (strcmp(state, "stopped") == 0)
		return (!held && strcmp(reason, "-") != 0 &&
		        strcmp(reason, "exit:0") != 0)
		               ? "\033[31m"
		               : "\033[2m";
	return "\033[33m";
}

/* How long until a wall-clock time (ms since the epoch) in a status map:
 * false when the key is nil or absent. */
static bool
render_until(const msgpack_object *n, const char *key, char *buf, size_t len)
{
	const msgpack_object *v = agentsup_wire_get(n, key);
	struct timespec ts;
	int64_t at, now;

	if (v == NULL || (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER &&
	                  v->type != MSGPACK_OBJECT_NEGATIVE_INTEGER))
		return false;
	at = v->via.i64;
	clock_gettime(CLOCK_REALTIME, &ts);
	now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	render_age(at > now ? (uint64_t)(at - now) : 0, buf, len);
	return true;
}

/* The restart policy at a glance (§9): the next retry of a child backing
 * off, its circuit when not closed and when it is probed, its failures in
 * a row, and what it declared. */
static void
render_policy(const msgpack_object *n)
{
	char tmp[32], circuit[16], declared[96];
	uint64_t v = 0;

	if (render_until(n, "backoff_until_ms", tmp, sizeof tmp))
		printf("  retry in %s", tmp);
	if (*render_get_s(n, "circuit", circuit, sizeof circuit) &&
	    strcmp(circuit, "closed") != 0) {
		printf("  circuit %s", circuit);
		if (render_until(n, "probe_at_ms", tmp, sizeof tmp))
			printf(", probe in %s", tmp);
	}
	if (render_get_u(n, "consecutive_failures", &v) && v > 1)
		printf("  %llu failures in a row", (unsigned long long)v);
	if (*render_get_s(n, "declared", declared, sizeof declared))
		printf("  declared %s", declared);
}

static bool
render_get_d(const msgpack_object *m, const char *key, double *out)
{
	const msgpack_object *v = agentsup_wire_get(m, key);

	if (v != NULL && (v->type == MSGPACK_OBJECT_FLOAT64 ||
	                  v->type == MSGPACK_OBJECT_FLOAT32)) {
		*out = v->via.f64;
		return true;
	}
	if (v != NULL && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
		*out = (double)v->via.u64;
		return true;
	}
	return false;
}

/* DESIGN §10 in a line: spend against each limit, stall age, a loop. */
static void
render_watch(const msgpack_object *n)
{
	static const char *const keys[] = {"tokens", "cost", "steps",
	                                   "wall_ms"};
	const msgpack_object *b = agentsup_wire_get(n, "budget");
	const msgpack_object *lim = b ? agentsup_wire_get(b, "limits") : NULL;
	const msgpack_object *sp = b ? agentsup_wire_get(b, "spend") : NULL;
	const msgpack_object *loop = agentsup_wire_get(n, "loop");
	char tmp[32], tmp2[32], st[64];
	double l, s;
	uint64_t v;

	for (size_t i = 0; lim && lim->type == MSGPACK_OBJECT_MAP && sp &&
	                   sp->type == MSGPACK_OBJECT_MAP && i < 4;
	     i++) {
		if (!render_get_d(lim, keys[i], &l) ||
		    !render_get_d(sp, keys[i], &s))
			continue;
		if (i == 3) {
			render_age((uint64_t)s, tmp, sizeof tmp);
			render_age((uint64_t)l, tmp2, sizeof tmp2);
			printf("  wall %s/%s", tmp, tmp2);
		} else if (i == 1) {
			printf("  spent $%.4g/$%.4g", s, l);
		} else {
			printf("  %s %.0f/%.0f", i == 0 ? "tok" : "steps", s,
			       l);
		}
	}
	if (render_get_u(n, "stalled_ms", &v)) {
		render_age(v, tmp, sizeof tmp);
		printf("  STALLED %s", tmp);
	}
	if (loop != NULL && loop->type == MSGPACK_OBJECT_MAP &&
	    render_get_u(loop, "period", &v))
		printf("  LOOPING period %llu \"%s\"", (unsigned long long)v,
		       render_get_s(loop, "state", st, sizeof st));
}

/* One node as a line of the tree. */
static void
render_node(const msgpack_object *n, const char *prefix, bool color)
{
	char name[128], kind[16], state[16], reason[64], strat[16], tmp[32],
	        st[64], label[4 * RENDER_MAX_DEPTH + 129], status[256];
	const msgpack_object *prog = agentsup_wire_get(n, "progress");
	bool is_held = render_get_flag(n, "held");
	char by[16];
	uint64_t v = 0, w = 0;

	render_get_s(n, "name", name, sizeof name);
	render_get_s(n, "kind", kind, sizeof kind);
	render_get_s(n, "state", state, sizeof state);
	render_reason(n, reason, sizeof reason);
	snprintf(label, sizeof label, "%s%s", prefix, name);
	printf("%-32s %-10s %s%-8s%s", label, kind,
	       color ? render_color(state, reason, is_held) : "", state,
	       color ? "\033[0m" : "");
	if (is_held)
		printf(" (%s)",
		       strcmp(render_get_s(n, "held_by", by, sizeof by),
		              "autostart") == 0
		               ? "autostart: false"
		               : "by command");
	if (render_get_flag(n, "removed"))
		printf(" (removed by a reload)");
	if (render_get_flag(n, "pending"))
		printf(" (waits for its supervisor)");
	if (strcmp(kind, "supervisor") == 0) {
		render_get_s(n, "strategy", strat, sizeof strat);
		render_get_u(n, "window_restarts", &v);
		render_get_u(n, "intensity", &w);
		printf("  %s, %llu/%llu restarts", strat, (unsigned long long)v,
		       (unsigned long long)w);
		if (render_get_u(n, "period_ms", &v)) {
			render_age(v, tmp, sizeof tmp);
			printf(" in %s", tmp);
		}
		if (render_get_u(n, "resume_waiting", &v) && v > 0)
			printf("  %llu task%s waiting to resume",
			       (unsigned long long)v, v == 1 ? "" : "s");
	} else if (render_get_u(n, "pid", &v)) {
		printf("  pid %llu", (unsigned long long)v);
	}
	if (strcmp(state, "running") == 0 && render_get_u(n, "uptime_ms", &v)) {
		render_age(v, tmp, sizeof tmp);
		printf("  up %s", tmp);
	}
	if (render_get_u(n, "restarts", &v) && v > 0)
		printf("  restarted %llu", (unsigned long long)v);
	if (strcmp(reason, "-") != 0)
		printf("  last %s", reason);
	if (render_get_u(n, "heartbeat_age_ms", &v)) {
		render_age(v, tmp, sizeof tmp);
		printf("  beat %s ago", tmp);
	}
	if (prog != NULL && prog->type == MSGPACK_OBJECT_MAP) {
		const msgpack_object *cost = agentsup_wire_get(prog, "cost");
		if (render_get_u(prog, "steps", &v))
			printf("  %llu steps", (unsigned long long)v);
		if (render_get_u(prog, "tokens", &v))
			printf("  %llu tok", (unsigned long long)v);
		if (cost != NULL &&
		    (cost->type == MSGPACK_OBJECT_FLOAT64 ||
		     cost->type == MSGPACK_OBJECT_FLOAT32) &&
		    isfinite(cost->via.f64))
			/* a worker's 1e300 in a few characters, not 300 */
			printf(cost->via.f64 < 1e9 ? "  $%.4f" : "  $%.4g",
			       cost->via.f64);
		if (*render_get_s(prog, "state", st, sizeof st))
			printf("  %s", st);
	}
	if (render_get_u(n, "checkpoint_seq", &v))
		printf("  checkpoint %llu", (unsigned long long)v);
	render_policy(n);
	if (*render_get_s(n, "status", status, sizeof status))
		printf("  \"%s\"", status);
	render_watch(n);
	putchar('\n');
}

/* Whether each node has a later sibling: one pass from the end, keeping
 * for each depth whether a node of that depth follows before a shallower
 * one (a parent's end). Depths beyond RENDER_MAX_DEPTH draw as the last. */
static void
render_later_siblings(const msgpack_object *arr, bool *more)
{
	bool seen[RENDER_MAX_DEPTH + 2] = {false};
	uint32_t n = arr->via.array.size;

	for (uint32_t i = n; i-- > 0;) {
		uint64_t depth = 0;

		render_get_u(&arr->via.array.ptr[i], "depth", &depth);
		if (depth > RENDER_MAX_DEPTH)
			depth = RENDER_MAX_DEPTH + 1;
		more[i] = depth <= RENDER_MAX_DEPTH && seen[depth];
		seen[depth] = true;
		for (uint64_t k = depth + 1; k < RENDER_MAX_DEPTH + 2; k++)
			seen[k] = false;
	}
}

/* The nodes come depth-first with a depth each: draw the branches. */
int
render_tree(const msgpack_object *arr, bool color)
{
	uint32_t n = arr->via.array.size;
	bool open[RENDER_MAX_DEPTH + 1] = {false}; /* a later sibling at lvl */
	bool *more = calloc(n ? n : 1, sizeof *more);
	char prefix[4 * RENDER_MAX_DEPTH + 1];

	if (more == NULL)
		return -1;
	render_later_siblings(arr, more);
	for (uint32_t i = 0; i < n; i++) {
		const msgpack_object *node = &arr->via.array.ptr[i];
		uint64_t depth = 0;
		size_t at = 0;

		render_get_u(node, "depth", &depth);
		if (depth > RENDER_MAX_DEPTH)
			depth = RENDER_MAX_DEPTH;
		open[depth] = more[i];
		for (uint64_t lvl = 1; lvl <= depth; lvl++, at += 4)
			memcpy(prefix + at,
			       lvl < depth ? (open[lvl] ? "|   " : "    ")
			                   : (open[lvl] ? "|-- " : "`-- "),
			       4);
		prefix[at] = '\0';
		render_node(node, prefix, color);
	}
	free(more);
	return 0;
}

/* Whether a node is not in the state it should be: as agentsupd says in
 * "healthy"; from an agentsupd that does not say, a supervisor that gave up
 * and was left stopped (nobody held it), or a state that says so. */
static bool
render_unhealthy(const msgpack_object *n)
{
	static const char *const bad[] = {"quarantined", "exhausted", "failed",
	                                  NULL};
	const msgpack_object *healthy = agentsup_wire_get(n, "healthy");
	char state[32], reason[64];

	if (healthy != NULL && healthy->type == MSGPACK_OBJECT_BOOLEAN)
		return !healthy->via.boolean;
	render_get_s(n, "state", state, sizeof state);
	render_reason(n, reason, sizeof reason);
	for (int i = 0; bad[i] != NULL; i++)
		if (strcmp(state, bad[i]) == 0)
			return true;
	return strcmp(state, "stopped") == 0 &&
	       strcmp(reason, "gave_up") == 0 && !render_get_flag(n, "held");
}

size_t
render_count_unhealthy(const msgpack_object *arr)
{
	size_t k = 0;

	for (uint32_t i = 0; i < arr->via.array.size; i++)
		k += render_unhealthy(&arr->via.array.ptr[i]);
	return k;
}

void
render_event(const msgpack_object *e, bool json)
{
	char kind[32], path[256], reason[64], detail[512], when[32];
	uint64_t pid = 0, ms = 0;
	time_t secs;
	struct tm tm;

	if (json) {
		render_json(stdout, e);
		putchar('\n');
		fflush(stdout);
		return;
	}
	render_get_u(e, "time_ms", &ms);
	secs = (time_t)(ms / 1000);
	localtime_r(&secs, &tm);
	strftime(when, sizeof when, "%H:%M:%S", &tm);
	render_get_s(e, "kind", kind, sizeof kind);
	render_get_s(e, "path", path, sizeof path);
	render_get_s(e, "reason", reason, sizeof reason);
	render_get_s(e, "detail", detail, sizeof detail);
	render_get_u(e, "pid", &pid);
	printf("%s.%03llu %-28s %s", when, (unsigned long long)(ms % 1000),
	       path, kind);
	if (pid || *reason || *detail)
		printf("%*s",
		       (int)(kind[0] && strlen(kind) < 14 ? 14 - strlen(kind)
		                                          : 0),
		       "");
	if (pid)
		printf(" pid %llu", (unsigned long long)pid);
	if (*reason)
		printf(" %s", reason);
	if (*detail)
		printf("  %s", detail);
	putchar('\n');
	fflush(stdout);
}
