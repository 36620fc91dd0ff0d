/*
 * wire_fields.c - the type of every known field of every known message, as
 * one table, and the check that refuses a frame breaking it.
 *
 * Peers validate a frame's shape here before they dispatch it, so a handler
 * may trust that a field it finds has the type docs/protocol.md gives.
 * Unknown keys and unknown message types pass: newer peers may send them.
 * nil is not "absent": a field is either left out or has its type.
 */
#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "agentsup/wire.h"

enum fields_kind {
	FK_UINT,     /* positive integer */
	FK_STR,      /* string */
	FK_BIN,      /* binary */
	FK_DATA,     /* binary or string */
	FK_BOOL,     /* boolean */
	FK_COST,     /* an unsigned integer or a finite float >= 0 */
	FK_MAP,      /* any map */
	FK_ARGS,     /* an array, a map or nil (req's arguments) */
	FK_STRS,     /* an array of strings */
	FK_ENV,      /* a map of strings to strings */
	FK_PROGRESS, /* a map checked against progress_fields */
};

struct fields_field {
	const char *name;
	enum fields_kind kind;
	bool required;
	const char *why; /* what a peer is told when it is wrong */
};

struct fields_message {
	const char *type;
	const struct fields_field *fields;
	size_t n;
};

/* clang-format off */
#define F(n, k, what)  {n, k, false, "\"" n "\" must be " what}
#define R(n, k, what)  {n, k, true, "\"" n "\" (required) must be " what}
#define UINT           "an unsigned integer"
#define STR            "a string"

static const struct fields_field progress_fields[] = {
	F(AGENTSUP_F_STEPS, FK_UINT, UINT),
	F(AGENTSUP_F_TOKENS, FK_UINT, UINT),
	F(AGENTSUP_F_COST, FK_COST, "a finite number >= 0"),
	F(AGENTSUP_F_STATE, FK_STR, STR),
};
static const struct fields_field hello[] = {
	R(AGENTSUP_F_V, FK_UINT, UINT),
	F(AGENTSUP_F_PID, FK_UINT, UINT),
	F(AGENTSUP_F_LANG, FK_STR, STR),
};
static const struct fields_field welcome[] = {
	F(AGENTSUP_F_V, FK_UINT, UINT),
	F(AGENTSUP_F_NAME, FK_STR, STR),
	F(AGENTSUP_F_PATH, FK_STR, STR),
	F(AGENTSUP_F_INCARNATION, FK_UINT, UINT),
	F(AGENTSUP_F_HEARTBEAT_MS, FK_UINT, UINT),
	F(AGENTSUP_F_TIMEOUT_MS, FK_UINT, UINT),
	F(AGENTSUP_F_RESTARTS, FK_UINT, UINT),
	F(AGENTSUP_F_LAST_REASON, FK_STR, STR),
	F(AGENTSUP_F_CHECKPOINT, FK_BIN, "binary"),
	F(AGENTSUP_F_CHECKPOINT_SEQ, FK_UINT, UINT),
	F(AGENTSUP_F_MAX_FRAME, FK_UINT, UINT),
	F(AGENTSUP_F_CHECKPOINT_MAX, FK_UINT, UINT),
};
static const struct fields_field hb[] = {
	F(AGENTSUP_F_SEQ, FK_UINT, UINT),
	F(AGENTSUP_F_PROGRESS, FK_PROGRESS, "a map"),
	F(AGENTSUP_F_STATUS, FK_STR, STR),
};
static const struct fields_field drain[] = {
	F(AGENTSUP_F_DEADLINE_MS, FK_UINT, UINT),
};
static const struct fields_field exit_[] = {
	R(AGENTSUP_F_REASON, FK_STR, STR),
	F(AGENTSUP_F_RETRY_AFTER_MS, FK_UINT, UINT),
	F(AGENTSUP_F_DETAIL, FK_STR, STR),
};
static const struct fields_field extend[] = {
	R(AGENTSUP_F_MS, FK_UINT, UINT),
};
static const struct fields_field nudge[] = {
	R(AGENTSUP_F_REASON, FK_STR, STR),
	F(AGENTSUP_F_IDLE_MS, FK_UINT, UINT),
	F(AGENTSUP_F_STATE, FK_STR, STR),
	F(AGENTSUP_F_PERIOD, FK_UINT, UINT),
};
static const struct fields_field checkpoint[] = {
	R(AGENTSUP_F_SEQ, FK_UINT, UINT),
	R(AGENTSUP_F_DATA, FK_BIN, "binary"),
};
static const struct fields_field checkpoint_ok[] = {
	R(AGENTSUP_F_SEQ, FK_UINT, UINT),
};
static const struct fields_field result[] = {
	R(AGENTSUP_F_DATA, FK_DATA, "binary or a string"),
};
static const struct fields_field spawn[] = {
	R(AGENTSUP_F_SUP, FK_STR, STR),
	F(AGENTSUP_F_KEY, FK_STR, STR),
	F(AGENTSUP_F_ARGS, FK_STRS, "an array of strings"),
	F(AGENTSUP_F_ENV, FK_ENV, "a map of strings to strings"),
};
static const struct fields_field spawned[] = {
	R(AGENTSUP_F_OK, FK_BOOL, "a boolean"),
	F(AGENTSUP_F_NAME, FK_STR, STR),
	F(AGENTSUP_F_CREATED, FK_BOOL, "a boolean"),
	F(AGENTSUP_F_ERROR, FK_STR, STR),
	F(AGENTSUP_F_COUNT, FK_UINT, UINT),
};
static const struct fields_field req[] = {
	R(AGENTSUP_F_ID, FK_UINT, UINT),
	R(AGENTSUP_F_CMD, FK_STR, STR),
	F(AGENTSUP_F_ARGS, FK_ARGS, "an array or a map"),
};
static const struct fields_field res[] = {
	F(AGENTSUP_F_ID, FK_UINT, UINT),
	F(AGENTSUP_F_OK, FK_BOOL, "a boolean"),
	F(AGENTSUP_F_ERROR, FK_STR, STR),
};
static const struct fields_field event[] = {
	F(AGENTSUP_F_EVENT, FK_MAP, "a map"),
};

#define M(t, a) {t, a, sizeof a / sizeof a[0]}
/* hb first: it is by far the most frequent */
static const struct fields_message fields_messages[] = {
	M(AGENTSUP_T_HB, hb),
	M(AGENTSUP_T_HELLO, hello),
	M(AGENTSUP_T_WELCOME, welcome),
	M(AGENTSUP_T_DRAIN, drain),
	M(AGENTSUP_T_EXIT, exit_),
	M(AGENTSUP_T_EXTEND, extend),
	M(AGENTSUP_T_NUDGE, nudge),
	M(AGENTSUP_T_CHECKPOINT, checkpoint),
	M(AGENTSUP_T_CHECKPOINT_OK, checkpoint_ok),
	M(AGENTSUP_T_RESULT, result),
	M(AGENTSUP_T_SPAWN, spawn),
	M(AGENTSUP_T_SPAWNED, spawned),
	M(AGENTSUP_T_REQ, req),
	M(AGENTSUP_T_RES, res),
	M(AGENTSUP_T_EVENT, event),
};
/* clang-format on */

/* Whether every element of an array, or every key and value of a map, is a
 * string. */
static bool
fields_all_str(const msgpack_object *o)
{
	if (o->type == MSGPACK_OBJECT_ARRAY) {
		for (uint32_t i = 0; i < o->via.array.size; i++)
			if (o->via.array.ptr[i].type != MSGPACK_OBJECT_STR)
				return false;
		return true;
	}
	for (uint32_t i = 0; i < o->via.map.size; i++)
		if (o->via.map.ptr[i].key.type != MSGPACK_OBJECT_STR ||
		    o->via.map.ptr[i].val.type != MSGPACK_OBJECT_STR)
			return false;
	return true;
}

static bool
fields_kind_ok(const msgpack_object *o, enum fields_kind kind)
{
	switch (kind) {
	case FK_UINT:
		return o->type == MSGPACK_OBJECT_POSITIVE_INTEGER;
	case FK_STR:
		return o->type == MSGPACK_OBJECT_STR;
	case FK_BIN:
		return o->type == MSGPACK_OBJECT_BIN;
	case FK_DATA:
		return o->type == MSGPACK_OBJECT_BIN ||
		       o->type == MSGPACK_OBJECT_STR;
	case FK_BOOL:
		return o->type == MSGPACK_OBJECT_BOOLEAN;
	case FK_COST:
		return o->type == MSGPACK_OBJECT_POSITIVE_INTEGER ||
		       ((o->type == MSGPACK_OBJECT_FLOAT32 ||
		         o->type == MSGPACK_OBJECT_FLOAT64) &&
		        isfinite(o->via.f64) && o->via.f64 >= 0);
	case FK_MAP:
	case FK_PROGRESS: /* its fields are checked by fields_check */
		return o->type == MSGPACK_OBJECT_MAP;
	case FK_ARGS:
		return o->type == MSGPACK_OBJECT_ARRAY ||
		       o->type == MSGPACK_OBJECT_MAP ||
		       o->type == MSGPACK_OBJECT_NIL;
	case FK_STRS:
		return o->type == MSGPACK_OBJECT_ARRAY && fields_all_str(o);
	case FK_ENV:
		return o->type == MSGPACK_OBJECT_MAP && fields_all_str(o);
	}
	return false;
}

static int
fields_check(const msgpack_object *map, const struct fields_field *fields,
             size_t n, const char **why)
{
	for (size_t i = 0; i < n; i++) {
		const msgpack_object *v =
		        agentsup_wire_get(map, fields[i].name);

		if (v == NULL && !fields[i].required)
			continue;
		if (v == NULL || !fields_kind_ok(v, fields[i].kind)) {
			*why = fields[i].why;
			return AGENTSUP_WIRE_FIELD;
		}
		if (fields[i].kind == FK_PROGRESS &&
		    fields_check(v, progress_fields,
		                 sizeof progress_fields /
		                         sizeof progress_fields[0],
		                 why) != AGENTSUP_WIRE_OK)
			return AGENTSUP_WIRE_FIELD;
	}
	return AGENTSUP_WIRE_OK;
}

int
agentsup_wire_check_fields(const struct agentsup_frame *f, const char **why)
{
	const char *dummy;
	size_t n = sizeof fields_messages / sizeof fields_messages[0];

	if (why == NULL)
		why = &dummy;
	for (size_t i = 0; i < n; i++)
		if (agentsup_wire_is(f, fields_messages[i].type))
			return fields_check(&f->map, fields_messages[i].fields,
			                    fields_messages[i].n, why);
	return AGENTSUP_WIRE_OK; /* an unknown type: a newer peer */
}
