/*
 * agent_msg.c - libagentsup's messages: what a worker sends (hello, ready,
 * hb, exit, extend, checkpoint, result, spawn) and what it handles from
 * agentsupd (welcome, drain, nudge, checkpoint_ok, spawned). Unsupervised,
 * every sending call does nothing and succeeds.
 */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent_int.h"

/* Start a frame of type t with fields pairs (t included) in a->sb. */
static void
msg_begin(struct agentsup *a, msgpack_packer *pk, size_t fields, const char *t)
{
	msgpack_packer_init(pk, &a->sb, msgpack_sbuffer_write);
	agentsup_wire_begin(&a->sb);
	msgpack_pack_map(pk, fields);
	agentsup_wire_kv_str(pk, AGENTSUP_F_T, t);
}

static void
msg_kv_bin(msgpack_packer *pk, const char *key, const void *data, size_t len)
{
	agentsup_wire_pack_str(pk, key);
	msgpack_pack_bin(pk, len);
	msgpack_pack_bin_body(pk, data, len);
}

int
agentsup_msg_hello(struct agentsup *a, const char *lang)
{
	msgpack_packer pk;

	msg_begin(a, &pk, lang ? 4 : 3, AGENTSUP_T_HELLO);
	agentsup_wire_kv_uint(&pk, AGENTSUP_F_V, AGENTSUP_PROTOCOL_VERSION);
	agentsup_wire_kv_uint(&pk, AGENTSUP_F_PID, (uint64_t)getpid());
	if (lang != NULL)
		agentsup_wire_kv_str(&pk, AGENTSUP_F_LANG, lang);
	return agentsup_agent_send(a);
}

int
agentsup_ready(struct agentsup *a)
{
	msgpack_packer pk;

	if (a->fd < 0)
		return 0;
	msg_begin(a, &pk, 1, AGENTSUP_T_READY);
	return agentsup_agent_send(a);
}

static void
msg_progress(msgpack_packer *pk, const struct agentsup_progress *p, size_t n)
{
	agentsup_wire_pack_str(pk, AGENTSUP_F_PROGRESS);
	msgpack_pack_map(pk, n);
	if (p->set & AGENTSUP_STEPS)
		agentsup_wire_kv_uint(pk, AGENTSUP_F_STEPS, p->steps);
	if (p->set & AGENTSUP_TOKENS)
		agentsup_wire_kv_uint(pk, AGENTSUP_F_TOKENS, p->tokens);
	if (p->set & AGENTSUP_COST) {
		agentsup_wire_pack_str(pk, AGENTSUP_F_COST);
		msgpack_pack_double(pk, p->cost);
	}
	if ((p->set & AGENTSUP_STATE) && p->state)
		agentsup_wire_kv_str(pk, AGENTSUP_F_STATE, p->state);
}

int
agentsup_beat(struct agentsup *a, const struct agentsup_progress *p,
              const char *status)
{
	msgpack_packer pk;
	size_t n = 0;

	/* what agentsupd refuses (and stops the worker for) fails here,
	 * supervised or not, as the Python client raises */
	if (p != NULL && (p->set & AGENTSUP_COST) &&
	    !(isfinite(p->cost) && p->cost >= 0)) {
		errno = EINVAL;
		return -1;
	}
	if (a->fd < 0)
		return 0;
	if (p != NULL)
		n = !!(p->set & AGENTSUP_STEPS) + !!(p->set & AGENTSUP_TOKENS) +
		    !!(p->set & AGENTSUP_COST) +
		    !!((p->set & AGENTSUP_STATE) && p->state);
	msg_begin(a, &pk, 2 + (n > 0) + (status != NULL), AGENTSUP_T_HB);
	agentsup_wire_kv_uint(&pk, AGENTSUP_F_SEQ, ++a->seq);
	if (n > 0)
		msg_progress(&pk, p, n);
	if (status != NULL)
		agentsup_wire_kv_str(&pk, AGENTSUP_F_STATUS, status);
	return agentsup_agent_send(a);
}

/* One of AGENTSUP_DECLARED_*: agentsupd stops a worker for any other. */
static bool
msg_declared(const char *reason)
{
#define MSG_IS(name, str) || strcmp(reason, str) == 0
	return reason != NULL && (false AGENTSUP_DECLARED(MSG_IS));
#undef MSG_IS
}

int
agentsup_exit_reason(struct agentsup *a, const char *reason,
                     uint64_t retry_after_ms, const char *detail)
{
	msgpack_packer pk;

	if (!msg_declared(reason)) {
		errno = EINVAL;
		return -1;
	}
	if (a->fd < 0)
		return 0;
	msg_begin(a, &pk, 2 + (retry_after_ms > 0) + (detail != NULL),
	          AGENTSUP_T_EXIT);
	agentsup_wire_kv_str(&pk, AGENTSUP_F_REASON, reason);
	if (retry_after_ms > 0)
		agentsup_wire_kv_uint(&pk, AGENTSUP_F_RETRY_AFTER_MS,
		                      retry_after_ms);
	if (detail != NULL)
		agentsup_wire_kv_str(&pk, AGENTSUP_F_DETAIL, detail);
	return agentsup_agent_send(a);
}

int
agentsup_busy(struct agentsup *a, uint64_t ms)
{
	msgpack_packer pk;

	if (a->fd < 0)
		return 0;
	msg_begin(a, &pk, 2, AGENTSUP_T_EXTEND);
	agentsup_wire_kv_uint(&pk, AGENTSUP_F_MS, ms);
	return agentsup_agent_send(a);
}

int64_t
agentsup_checkpoint(struct agentsup *a, const void *data, size_t len)
{
	msgpack_packer pk;
	uint64_t seq = a->ckpt_seq + 1;

	if (data == NULL && len > 0) {
		errno = EINVAL;
		return -1;
	}
	if (a->fd >= 0 && !a->welcomed) {
		errno = EAGAIN; /* its number would not go on from the restored
		                 */
		return -1;
	}
	if (a->fd >= 0 && len > a->ckpt_max) {
		/* agentsupd would stop the worker for it (a protocol error) */
		errno = a->ckpt_max == 0 ? ENOTSUP : EMSGSIZE;
		return -1;
	}
	if (a->fd >= 0) {
		msg_begin(a, &pk, 3, AGENTSUP_T_CHECKPOINT);
		agentsup_wire_kv_uint(&pk, AGENTSUP_F_SEQ, seq);
		msg_kv_bin(&pk, AGENTSUP_F_DATA, data, len);
		if (agentsup_agent_send(a) < 0)
			return -1;
	}
	a->ckpt_seq = seq; /* only once queued: numbers have no gaps */
	return (int64_t)seq;
}

int
agentsup_result(struct agentsup *a, const void *data, size_t len)
{
	msgpack_packer pk;

	if (data == NULL && len > 0) {
		errno = EINVAL;
		return -1;
	}
	if (len > AGENTSUP_RESULT_MAX) { /* agentsupd would stop the task */
		errno = EMSGSIZE;
		return -1;
	}
	if (a->fd < 0)
		return 0;
	msg_begin(a, &pk, 2, AGENTSUP_T_RESULT);
	msg_kv_bin(&pk, AGENTSUP_F_DATA, data, len);
	if (agentsup_agent_send(a) < 0) {
		if (errno == EMSGSIZE && !a->welcomed)
			errno = EAGAIN; /* welcome raises the limit to fit it */
		return -1;
	}
	return 0;
}

static size_t
msg_count(const char *const *v)
{
	size_t n = 0;

	while (v != NULL && v[n] != NULL)
		n++;
	return n;
}

/* env as a map; every entry must be K=V. */
static int
msg_env(msgpack_packer *pk, const char *const *env, size_t n)
{
	agentsup_wire_pack_str(pk, AGENTSUP_F_ENV);
	msgpack_pack_map(pk, n);
	for (size_t i = 0; i < n; i++) {
		const char *eq = strchr(env[i], '=');
		if (eq == NULL || eq == env[i])
			return -1;
		msgpack_pack_str(pk, (size_t)(eq - env[i]));
		msgpack_pack_str_body(pk, env[i], (size_t)(eq - env[i]));
		agentsup_wire_pack_str(pk, eq + 1);
	}
	return 0;
}

int
agentsup_spawn(struct agentsup *a, const char *sup, const char *key,
               const char *const *argv, const char *const *env)
{
	size_t nargs = msg_count(argv), nenv = msg_count(env);
	msgpack_packer pk;

	if (sup == NULL) {
		errno = EINVAL;
		return -1;
	}
	if (a->fd < 0)
		return 0;
	msg_begin(a, &pk, 2 + (key != NULL) + (nargs > 0) + (nenv > 0),
	          AGENTSUP_T_SPAWN);
	agentsup_wire_kv_str(&pk, AGENTSUP_F_SUP, sup);
	if (key != NULL)
		agentsup_wire_kv_str(&pk, AGENTSUP_F_KEY, key);
	if (nargs > 0) {
		agentsup_wire_pack_str(&pk, AGENTSUP_F_ARGS);
		msgpack_pack_array(&pk, nargs);
		for (size_t i = 0; i < nargs; i++)
			agentsup_wire_pack_str(&pk, argv[i]);
	}
	if (nenv > 0 && msg_env(&pk, env, nenv) < 0) {
		errno = EINVAL;
		return -1;
	}
	return agentsup_agent_send(a);
}

/* --- from agentsupd: fields were checked by agentsup_wire_check_fields ---- */

static uint64_t
msg_uint(const msgpack_object *m, const char *key, uint64_t dflt)
{
	const msgpack_object *v = agentsup_wire_get(m, key);

	return v != NULL ? v->via.u64 : dflt;
}

/* A string field into dst, NUL-terminated and cut to fit; "" if absent. */
static void
msg_str(const msgpack_object *m, const char *key, char *dst, size_t len)
{
	const msgpack_object *v = agentsup_wire_get(m, key);
	size_t n = 0;

	if (v != NULL) {
		n = v->via.str.size < len - 1 ? v->via.str.size : len - 1;
		memcpy(dst, v->via.str.ptr, n);
	}
	dst[n] = '\0';
}

static int
msg_welcome(struct agentsup *a, const msgpack_object *m)
{
	const msgpack_object *ck = agentsup_wire_get(m, AGENTSUP_F_CHECKPOINT);

	if (agentsup_wire_get(m, AGENTSUP_F_NAME) != NULL)
		msg_str(m, AGENTSUP_F_NAME, a->name, sizeof a->name);
	if (agentsup_wire_get(m, AGENTSUP_F_PATH) != NULL)
		msg_str(m, AGENTSUP_F_PATH, a->path, sizeof a->path);
	a->incarnation = (unsigned long)msg_uint(m, AGENTSUP_F_INCARNATION,
	                                         a->incarnation);
	a->heartbeat_ms = msg_uint(m, AGENTSUP_F_HEARTBEAT_MS, a->heartbeat_ms);
	a->timeout_ms = msg_uint(m, AGENTSUP_F_TIMEOUT_MS, 0);
	a->max_send = msg_uint(m, AGENTSUP_F_MAX_FRAME, a->max_send);
	a->ckpt_max = msg_uint(m, AGENTSUP_F_CHECKPOINT_MAX, UINT64_MAX);
	a->restarts = (unsigned long)msg_uint(m, AGENTSUP_F_RESTARTS, 0);
	msg_str(m, AGENTSUP_F_LAST_REASON, a->last_reason,
	        sizeof a->last_reason);
	free(a->restored);
	a->restored = NULL;
	a->restored_len = 0;
	a->restored_seq = msg_uint(m, AGENTSUP_F_CHECKPOINT_SEQ, 0);
	if (ck != NULL) {
		/* +1: a valid pointer for an empty checkpoint too */
		if ((a->restored = malloc(ck->via.bin.size + 1)) == NULL)
			return -1;
		memcpy(a->restored, ck->via.bin.ptr, ck->via.bin.size);
		a->restored_len = ck->via.bin.size;
	}
	if (a->ckpt_seq < a->restored_seq)
		a->ckpt_seq = a->restored_seq;
	a->welcomed = 1;
	return 0;
}

static int
msg_drain(struct agentsup *a, const msgpack_object *m)
{
	a->draining = 1;
	a->drain_deadline_ms = msg_uint(m, AGENTSUP_F_DEADLINE_MS, 0);
	return 0;
}

static int
msg_nudge(struct agentsup *a, const msgpack_object *m)
{
	char reason[32], state[256];
	struct agentsup_nudge n = {reason, 0, state, 0};

	msg_str(m, AGENTSUP_F_REASON, reason, sizeof reason);
	msg_str(m, AGENTSUP_F_STATE, state, sizeof state);
	n.idle_ms = msg_uint(m, AGENTSUP_F_IDLE_MS, 0);
	n.period = msg_uint(m, AGENTSUP_F_PERIOD, 0);
	if (a->on_nudge != NULL)
		a->on_nudge(a->nudge_arg, &n);
	return 0;
}

static int
msg_checkpoint_ok(struct agentsup *a, const msgpack_object *m)
{
	uint64_t seq = msg_uint(m, AGENTSUP_F_SEQ, 0);

	if (seq > a->ckpt_acked)
		a->ckpt_acked = seq;
	return 0;
}

static int
msg_spawned(struct agentsup *a, const msgpack_object *m)
{
	char name[512], error[256];
	const msgpack_object *ok = agentsup_wire_get(m, AGENTSUP_F_OK);
	const msgpack_object *created =
	        agentsup_wire_get(m, AGENTSUP_F_CREATED);
	struct agentsup_spawned s = {ok->via.boolean, 0, name, error, 0};

	s.created = created != NULL && created->via.boolean;
	s.count = msg_uint(m, AGENTSUP_F_COUNT, 0);
	msg_str(m, AGENTSUP_F_NAME, name, sizeof name);
	msg_str(m, AGENTSUP_F_ERROR, error, sizeof error);
	if (a->on_spawned != NULL)
		a->on_spawned(a->spawned_arg, &s);
	return 0;
}

static const struct {
	const char *type;
	int (*handle)(struct agentsup *, const msgpack_object *);
} msg_handlers[] = {
        {AGENTSUP_T_WELCOME, msg_welcome},
        {AGENTSUP_T_DRAIN, msg_drain},
        {AGENTSUP_T_NUDGE, msg_nudge},
        {AGENTSUP_T_CHECKPOINT_OK, msg_checkpoint_ok},
        {AGENTSUP_T_SPAWNED, msg_spawned},
};

/* The reader's callback: nonzero (a bad field, no memory) stops it. */
int
agentsup_msg_on_frame(void *arg, const struct agentsup_frame *f)
{
	struct agentsup *a = arg;

	if (agentsup_wire_check_fields(f, NULL) != AGENTSUP_WIRE_OK) {
		errno = EPROTO;
		return 1;
	}
	for (size_t i = 0; i < sizeof msg_handlers / sizeof msg_handlers[0];
	     i++)
		if (agentsup_wire_is(f, msg_handlers[i].type))
			return msg_handlers[i].handle(a, &f->map) < 0;
	return 0; /* anything else: a newer daemon; ignored */
}
