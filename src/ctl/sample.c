/*
 * sample.c - what agentsupctl top shows, sampled: the `status` of the tree on
 * one control connection, and what the daemon does not measure (CPU % and
 * RSS of each worker from /proc, progress rates) computed against the
 * previous sample.
 */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "conn.h"
#include "sample.h"

#define SAMPLE_REPLY_MS  5000
#define SAMPLE_MAX_FRAME (16u << 20)

double
sample_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* --- the control connection ---------------------------------------------- */

/* Close a connection that could not be made, keeping its errno. */
static int
sample_unconnect(struct sampler *t)
{
	int e = errno;

	close(t->fd);
	t->fd = -1;
	errno = e;
	return -1;
}

/* Reconnect after agentsupd went away: believe only a server of root or of
 * our own uid, as agentsupctl does for its first connection. */
int
sample_connect(struct sampler *t)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct ucred cred;
	socklen_t len = sizeof cred;

	if (strlen(t->sock) >= sizeof sa.sun_path) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(sa.sun_path, t->sock);
	if ((t->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return -1;
	if (connect(t->fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
	    getsockopt(t->fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return sample_unconnect(t);
	if (cred.uid != 0 && cred.uid != geteuid()) {
		errno = EPERM;
		return sample_unconnect(t);
	}
	t->len = t->used = 0;
	return 0;
}

static void
sample_disconnect(struct sampler *t, const char *why)
{
	if (t->fd >= 0)
		close(t->fd);
	t->fd = -1;
	t->lost = true;
	snprintf(t->msg, sizeof t->msg, "agentsupd at %s: %s", t->sock, why);
}

static int
sample_send(struct sampler *t, const char *cmd, const char *arg)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;

	conn_request_begin(&sb, &pk, ++t->id, cmd);
	msgpack_pack_array(&pk, arg ? 1 : 0);
	if (arg != NULL)
		agentsup_wire_pack_str(&pk, arg);
	return conn_request_send(t->fd, &sb);
}

/* Read more bytes within the deadline; -1 on EOF, error or timeout. */
static int
sample_fill(struct sampler *t, double deadline)
{
	struct pollfd p = {.fd = t->fd, .events = POLLIN};
	double left = deadline - sample_now();
	ssize_t n;

	if (left <= 0 || poll(&p, 1, (int)(left * 1000) + 1) <= 0)
		return -1; /* a signal (a resize) costs this refresh only */
	if (t->cap - t->len < 65536) {
		t->cap = t->cap ? t->cap * 2 : 262144;
		if (t->cap > 2 * SAMPLE_MAX_FRAME ||
		    (t->buf = realloc(t->buf, t->cap)) == NULL)
			return -1;
	}
	n = recv(t->fd, t->buf + t->len, t->cap - t->len, MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n <= 0)
		return -1;
	t->len += (size_t)n;
	return 0;
}

/* The next response frame to our request t->id: its "result", *more set
 * when more chunks follow (a list answer), or NULL with t->msg saying why.
 * The objects live until the next call. */
const msgpack_object *
sample_more(struct sampler *t, const char *cmd, bool *more)
{
	double deadline = sample_now() + SAMPLE_REPLY_MS / 1000.0;
	struct agentsup_frame f;
	const msgpack_object *id, *ok, *body, *m;
	int r;

	*more = false;
	for (;;) {
		if (t->used > 0) { /* drop the frame handed out last */
			memmove(t->buf, t->buf + t->used, t->len - t->used);
			t->len -= t->used;
			t->used = 0;
		}
		msgpack_zone_clear(&t->zone);
		r = agentsup_wire_decode(t->buf, t->len, SAMPLE_MAX_FRAME,
		                         &t->zone, &f);
		if (r == AGENTSUP_WIRE_MORE) {
			if (sample_fill(t, deadline) < 0) {
				sample_disconnect(t, "no reply");
				return NULL;
			}
			continue;
		}
		if (r != AGENTSUP_WIRE_OK) {
			sample_disconnect(t, agentsup_wire_strerror(r));
			return NULL;
		}
		t->used = f.size;
		id = agentsup_wire_get(&f.map, "id");
		if (!agentsup_wire_is(&f, AGENTSUP_T_RES) || id == NULL ||
		    id->type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
		    id->via.u64 != t->id)
			continue;
		break;
	}
	ok = agentsup_wire_get(&f.map, "ok");
	if (ok == NULL || ok->type != MSGPACK_OBJECT_BOOLEAN ||
	    !ok->via.boolean) {
		body = agentsup_wire_get(&f.map, "error");
		snprintf(t->msg, sizeof t->msg, "%s: %.*s", cmd,
		         body && body->type == MSGPACK_OBJECT_STR
		                 ? (int)body->via.str.size
		                 : 6,
		         body && body->type == MSGPACK_OBJECT_STR
		                 ? body->via.str.ptr
		                 : "failed");
		return NULL;
	}
	m = agentsup_wire_get(&f.map, "more");
	*more = m != NULL && m->type == MSGPACK_OBJECT_BOOLEAN &&
	        m->via.boolean;
	return agentsup_wire_get(&f.map, "result");
}

const msgpack_object *
sample_request(struct sampler *t, const char *cmd, const char *arg, bool *more)
{
	if (t->fd < 0 && sample_connect(t) < 0) {
		sample_disconnect(t, strerror(errno));
		return NULL;
	}
	if (sample_send(t, cmd, arg) < 0) {
		sample_disconnect(t, "cannot send");
		return NULL;
	}
	return sample_more(t, cmd, more);
}

/* --- the model: status rows ---------------------------------------------- */

/* Room in t->rows for n more (their old contents are not kept: rows are
 * filled afresh each sample). 0, or -1 with t->rows emptied. */
static int
sample_rows_room(struct sampler *t, size_t n)
{
	struct row *v;
	size_t cap;

	if (t->nrows + n <= t->caprows)
		return 0;
	cap = t->caprows * 2 > t->nrows + n ? t->caprows * 2 : t->nrows + n;
	if ((v = realloc(t->rows, cap * sizeof *v)) == NULL) {
		t->nrows = 0;
		return -1;
	}
	memset(v + t->caprows, 0, (cap - t->caprows) * sizeof *v);
	t->rows = v;
	t->caprows = cap;
	return 0;
}

static void
sample_str(const msgpack_object *m, const char *key, char *buf, size_t len)
{
	const msgpack_object *v = agentsup_wire_get(m, key);
	size_t n = 0;

	if (v != NULL && v->type == MSGPACK_OBJECT_STR)
		n = v->via.str.size < len - 1 ? v->via.str.size : len - 1;
	if (n > 0)
		memcpy(buf, v->via.str.ptr, n);
	buf[n] = '\0';
}

static bool
sample_uint(const msgpack_object *m, const char *key, uint64_t *out)
{
	const msgpack_object *v = m ? agentsup_wire_get(m, key) : NULL;

	if (v == NULL || v->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
		return false;
	*out = v->via.u64;
	return true;
}

static bool
sample_num(const msgpack_object *m, const char *key, double *out)
{
	const msgpack_object *v = m ? agentsup_wire_get(m, key) : NULL;

	if (v == NULL)
		return false;
	if (v->type == MSGPACK_OBJECT_FLOAT32 ||
	    v->type == MSGPACK_OBJECT_FLOAT64)
		*out = v->via.f64;
	else if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
		*out = (double)v->via.u64;
	else
		return false;
	return true;
}

/* The fullest budget as a fraction: status carries either
 * {limits: {k: n}, spend: {k: n}} or {k: {limit: n, spend: n}}. */
static double
sample_budget(const msgpack_object *b)
{
	const msgpack_object *lim = agentsup_wire_get(b, "limits");
	const msgpack_object *sp = agentsup_wire_get(b, "spend");
	bool split = lim && sp && lim->type == MSGPACK_OBJECT_MAP &&
	             sp->type == MSGPACK_OBJECT_MAP;
	const msgpack_object *keys = split ? lim : b;
	double best = -1, l, s;
	char key[32];

	for (uint32_t i = 0; i < keys->via.map.size; i++) {
		const msgpack_object_kv *kv = &keys->via.map.ptr[i];
		bool ok;

		if (kv->key.type != MSGPACK_OBJECT_STR ||
		    kv->key.via.str.size >= sizeof key)
			continue;
		memcpy(key, kv->key.via.str.ptr, kv->key.via.str.size);
		key[kv->key.via.str.size] = '\0';
		if (split)
			ok = sample_num(lim, key, &l) &&
			     sample_num(sp, key, &s);
		else
			ok = kv->val.type == MSGPACK_OBJECT_MAP &&
			     sample_num(&kv->val, "limit", &l) &&
			     sample_num(&kv->val, "spend", &s);
		if (ok && l > 0 && s / l > best)
			best = s / l;
	}
	return best;
}

/* The circuit of a worker that has one: every worker's status says
 * "closed", configured or not. A daemon older than circuit_configured:
 * only a circuit that is not closed is surely configured. */
static void
sample_circuit(const msgpack_object *n, struct row *r)
{
	const msgpack_object *on = agentsup_wire_get(n, "circuit_configured");
	bool has;

	sample_str(n, "circuit", r->circuit, sizeof r->circuit);
	if (on != NULL)
		has = on->type == MSGPACK_OBJECT_BOOLEAN && on->via.boolean;
	else
		has = strcmp(r->circuit, "closed") != 0;
	if (!has)
		r->circuit[0] = '\0';
}

static void
sample_parse_row(struct sampler *t, const msgpack_object *n, struct row *r)
{
	const msgpack_object *prog = agentsup_wire_get(n, "progress");
	const msgpack_object *held = agentsup_wire_get(n, "held");
	const msgpack_object *pend = agentsup_wire_get(n, "pending");
	const msgpack_object *bud = agentsup_wire_get(n, "budget");
	uint64_t v = 0;

	memset(r, 0, sizeof *r);
	if (prog != NULL && prog->type != MSGPACK_OBJECT_MAP)
		prog = NULL;
	sample_str(n, "path", r->path, sizeof r->path);
	sample_str(n, "name", r->name, sizeof r->name);
	sample_str(n, "kind", r->kind, sizeof r->kind);
	sample_str(n, "state", r->state, sizeof r->state);
	sample_str(n, "last_reason", r->reason, sizeof r->reason);
	if (r->reason[0] == '\0') /* nil: none */
		snprintf(r->reason, sizeof r->reason, "-");
	sample_circuit(n, r);
	r->depth = sample_uint(n, "depth", &v) && v < 64 ? (int)v : 0;
	r->pid = sample_uint(n, "pid", &v) ? (long)v : 0;
	sample_uint(n, "restarts", &r->restarts);
	r->has_beat = sample_uint(n, "heartbeat_age_ms", &r->beat_ms);
	r->has_steps = sample_uint(prog, "steps", &r->steps);
	r->has_tokens = sample_uint(prog, "tokens", &r->tokens);
	r->has_cost = sample_num(prog, "cost", &r->cost);
	r->held = held && held->type == MSGPACK_OBJECT_BOOLEAN &&
	          held->via.boolean;
	r->pending = pend && pend->type == MSGPACK_OBJECT_BOOLEAN &&
	             pend->via.boolean;
	r->budget = bud && bud->type == MSGPACK_OBJECT_MAP ? sample_budget(bud)
	                                                   : -1;
	t->show_budget |= r->budget >= 0;
	t->show_circuit |= r->circuit[0] != '\0';
	r->cpu = r->steps_rate = r->tokens_rate = -1;
	r->rss_kb = -1;
}

/* CPU ticks and resident size of a worker from /proc. */
static void
sample_proc(struct sampler *t, struct row *r)
{
	char path[64], buf[1024], *p;
	unsigned long ut, st, size, res;
	FILE *f;
	size_t n;

	snprintf(path, sizeof path, "/proc/%ld/stat", r->pid);
	if ((f = fopen(path, "re")) == NULL)
		return;
	n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	if ((p = strrchr(buf, ')')) != NULL &&
	    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
	           &ut, &st) == 2) {
		r->ticks = ut + st;
		r->has_ticks = true;
	}
	snprintf(path, sizeof path, "/proc/%ld/statm", r->pid);
	if ((f = fopen(path, "re")) == NULL)
		return;
	if (fscanf(f, "%lu %lu", &size, &res) == 2)
		r->rss_kb = (long)res * t->page_kb;
	fclose(f);
}

/* The same node, same process, in the previous sample (usually at the same
 * index, so this is O(1) for a tree that did not change). */
static const struct row *
sample_prev(const struct sampler *t, size_t i, const struct row *r)
{
	if (i < t->nprev && strcmp(t->prev[i].path, r->path) == 0)
		return t->prev[i].pid == r->pid ? &t->prev[i] : NULL;
	for (size_t k = 0; k < t->nprev; k++)
		if (strcmp(t->prev[k].path, r->path) == 0)
			return t->prev[k].pid == r->pid ? &t->prev[k] : NULL;
	return NULL;
}

static void
sample_rates(struct sampler *t, size_t i, struct row *r, double dt)
{
	const struct row *p = sample_prev(t, i, r);

	if (p == NULL || dt <= 0)
		return;
	if (r->has_ticks && p->has_ticks && r->ticks >= p->ticks)
		r->cpu = (double)(r->ticks - p->ticks) * 100.0 /
		         ((double)t->ticks_per_s * dt);
	if (r->has_steps && p->has_steps && r->steps >= p->steps)
		r->steps_rate = (double)(r->steps - p->steps) / dt;
	if (r->has_tokens && p->has_tokens && r->tokens >= p->tokens)
		r->tokens_rate = (double)(r->tokens - p->tokens) / dt;
}

/* Ask for the status and turn it into rows; the old rows become prev. */
void
sample_refresh(struct sampler *t)
{
	bool more;
	const msgpack_object *arr = sample_request(t, "status", NULL, &more);
	struct row *swap;
	size_t capswap;

	if (arr == NULL || arr->type != MSGPACK_OBJECT_ARRAY)
		return;
	if (t->lost)
		t->msg[0] = '\0';
	t->lost = false;
	swap = t->prev, capswap = t->capprev;
	t->prev = t->rows, t->capprev = t->caprows, t->nprev = t->nrows;
	t->rows = swap, t->caprows = capswap, t->nrows = 0;
	t->tprev = t->t;
	t->t = sample_now();
	t->show_budget = t->show_circuit = false;
	/* a big tree's answer comes in chunks: every one of them (only the
	 * first was read, and the rest of the tree was never shown) */
	for (;;) {
		if (sample_rows_room(t, arr->via.array.size) < 0)
			return;
		for (uint32_t i = 0; i < arr->via.array.size; i++) {
			struct row *r = &t->rows[t->nrows++];
			sample_parse_row(t, &arr->via.array.ptr[i], r);
			if (r->pid > 0)
				sample_proc(t, r);
			sample_rates(t, t->nrows - 1, r, t->t - t->tprev);
		}
		if (!more)
			return;
		arr = sample_more(t, "status", &more);
		if (arr == NULL || arr->type != MSGPACK_OBJECT_ARRAY)
			return;
	}
}

int
sample_init(struct sampler *t, const char *sock)
{
	memset(t, 0, sizeof *t);
	t->sock = sock;
	t->fd = -1;
	t->ticks_per_s = sysconf(_SC_CLK_TCK);
	t->page_kb = sysconf(_SC_PAGESIZE) / 1024;
	if (!msgpack_zone_init(&t->zone, 4096))
		return -1;
	return 0;
}

void
sample_fini(struct sampler *t)
{
	if (t->fd >= 0)
		close(t->fd);
	msgpack_zone_destroy(&t->zone);
	free(t->buf);
	free(t->rows);
	free(t->prev);
}
