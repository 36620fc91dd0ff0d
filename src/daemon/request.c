/*
 * request.c - validate a control request before anything acts on it: the
 * shape first (id, cmd, args), then which arguments each command takes.
 */
#include <ctype.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "agentsup/wire.h"
#include "request.h"
#include "text.h"

static const struct {
	const char *name;
	enum request_cmd cmd;
	int min_args, max_args;
} commands[] = {
        {"status", REQ_STATUS, 0, 1}, {"start", REQ_START, 1, 1},
        {"stop", REQ_STOP, 1, 1},     {"restart", REQ_RESTART, 1, 1},
        {"drain", REQ_DRAIN, 0, 1},   {"reload", REQ_RELOAD, 0, 0},
        {"events", REQ_EVENTS, 0, 2}, {"shutdown", REQ_SHUTDOWN, 0, 0},
        {"spawn", REQ_SPAWN, 1, 2},   {"wait", REQ_WAIT, 1, 2},
        {"dead", REQ_DEAD, 0, 1},     {"replay", REQ_REPLAY, 1, 1},
        {"drop", REQ_DROP, 1, 1},     {"logs", REQ_LOGS, 1, 3},
        {"reset", REQ_RESET, 1, 1},   {"signal", REQ_SIGNAL, 2, 2},
        {"tasks", REQ_TASKS, 0, 3},
};

const char *
request_cmd_name(enum request_cmd c)
{
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		if (commands[i].cmd == c)
			return commands[i].name;
	return "?";
}

static bool
str_is(const msgpack_object *o, const char *s)
{
	size_t l = strlen(s);

	return o->type == MSGPACK_OBJECT_STR && o->via.str.size == l &&
	       memcmp(o->via.str.ptr, s, l) == 0;
}

/* logs NAME [LINES [FOLLOW]]: an unsigned count (0 = all), a boolean. */
static int
request_logs_args(const msgpack_object *args, struct request *r,
                  const char **why)
{
	const msgpack_object *n =
	        args->via.array.size > 1 ? &args->via.array.ptr[1] : NULL;
	const msgpack_object *f =
	        args->via.array.size > 2 ? &args->via.array.ptr[2] : NULL;

	r->lines = 20;
	if (n != NULL && (n->type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
	                  n->via.u64 > UINT32_MAX)) {
		*why = "logs: LINES must be an unsigned integer";
		return -1;
	}
	if (f != NULL && f->type != MSGPACK_OBJECT_BOOLEAN) {
		*why = "logs: FOLLOW must be a boolean";
		return -1;
	}
	if (n != NULL)
		r->lines = (uint32_t)n->via.u64;
	r->follow = f != NULL && f->via.boolean;
	return 0;
}

/* N of tasks and dead, the newest N only (lines), at least 1; all
 * without it (0). */
static int
request_newest(const msgpack_object *n, struct request *r, const char **why)
{
	if (n != NULL && (n->type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
	                  n->via.u64 == 0 || n->via.u64 > UINT32_MAX)) {
		*why = r->cmd == REQ_DEAD
		               ? "dead: N must be an integer from 1"
		               : "tasks: N must be an integer from 1";
		return -1;
	}
	r->lines = n != NULL ? (uint32_t)n->via.u64 : 0;
	return 0;
}

/* tasks [SUP|nil [STATE|nil [N]]]: STATE a string (which names a state is
 * the ledger's to say). */
static int
request_tasks_args(const msgpack_object *args, struct request *r,
                   const char **why)
{
	r->opts = args->via.array.size > 1 ? &args->via.array.ptr[1] : NULL;
	if (r->opts != NULL && r->opts->type == MSGPACK_OBJECT_NIL)
		r->opts = NULL;
	if (r->opts != NULL && r->opts->type != MSGPACK_OBJECT_STR) {
		*why = "tasks: STATE must be a string";
		return -1;
	}
	return request_newest(args->via.array.size > 2 ? &args->via.array.ptr[2]
	                                               : NULL,
	                      r, why);
}

/* A signal's number if it is one with a name below SIGRTMIN, else 0: not
 * 32 and 33, which glibc keeps for itself and which have no name. */
static int
request_signo(uint64_t sig)
{
	return sig >= 1 && sig < (uint64_t)SIGRTMIN &&
	                       sigabbrev_np((int)sig) != NULL
	               ? (int)sig
	               : 0;
}

/* signal NAME SIG: "HUP", "SIGHUP", "hup" or 1; 0 when it is none. */
static int
request_signal(const msgpack_object *o)
{
	char name[16];
	const char *s, *abbrev;
	size_t n;

	if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
		return request_signo(o->via.u64);
	if (o->type != MSGPACK_OBJECT_STR || o->via.str.size >= sizeof name)
		return 0;
	for (n = 0; n < o->via.str.size; n++)
		name[n] = (char)toupper((unsigned char)o->via.str.ptr[n]);
	name[n] = '\0';
	if (n > 0 && strspn(name, "0123456789") == n) /* "9", as kill takes */
		return n <= 2 ? request_signo((uint64_t)atoi(name)) : 0;
	s = strncmp(name, "SIG", 3) == 0 ? name + 3 : name;
	for (int sig = 1; sig < SIGRTMIN; sig++)
		if ((abbrev = sigabbrev_np(sig)) != NULL &&
		    strcmp(abbrev, s) == 0)
			return sig;
	return 0;
}

int
request_parse(const msgpack_object *map, struct request *r, const char **why)
{
	const msgpack_object *id = agentsup_wire_get(map, "id");
	const msgpack_object *cmd = agentsup_wire_get(map, "cmd");
	const msgpack_object *args = agentsup_wire_get(map, "args");
	uint32_t nargs = 0;
	size_t i;

	memset(r, 0, sizeof *r);
	if (id == NULL || id->type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
		*why = "req needs an unsigned integer \"id\"";
		return -1;
	}
	r->id = id->via.u64;
	if (cmd == NULL || cmd->type != MSGPACK_OBJECT_STR) {
		*why = "req needs a string \"cmd\"";
		return -1;
	}
	for (i = 0; i < sizeof commands / sizeof commands[0]; i++)
		if (str_is(cmd, commands[i].name))
			break;
	if (i == sizeof commands / sizeof commands[0]) {
		*why = AGENTSUP_UNKNOWN_COMMAND;
		return -1;
	}
	r->cmd = commands[i].cmd;
	if (args != NULL && args->type != MSGPACK_OBJECT_ARRAY &&
	    args->type != MSGPACK_OBJECT_NIL) {
		*why = "\"args\" must be a list";
		return -1;
	}
	if (args != NULL && args->type == MSGPACK_OBJECT_ARRAY)
		nargs = args->via.array.size;
	if ((int)nargs < commands[i].min_args ||
	    nargs > (uint32_t)commands[i].max_args) {
		*why = (int)nargs < commands[i].min_args
		               ? "this command needs a NAME"
		               : AGENTSUP_TOO_MANY_ARGUMENTS;
		return -1;
	}
	if (nargs == 0)
		return 0;
	const msgpack_object *a = &args->via.array.ptr[0];
	if (r->cmd == REQ_DEAD) /* dead [N] */
		return request_newest(a, r, why);
	if (r->cmd == REQ_EVENTS) {
		if (a->type != MSGPACK_OBJECT_BOOLEAN) {
			*why = "events takes a boolean, follow, and a NAME";
			return -1;
		}
		r->follow = a->via.boolean;
		if (nargs == 1)
			return 0;
		a = &args->via.array.ptr[1]; /* the subtree: its NAME */
	}
	/* logs of the whole tree: a nil NAME (the root's name is not fixed) */
	if (r->cmd == REQ_LOGS && a->type == MSGPACK_OBJECT_NIL)
		return request_logs_args(args, r, why);
	/* tasks of every pool: a nil SUP, its STATE then checked below */
	if (r->cmd == REQ_TASKS && a->type == MSGPACK_OBJECT_NIL)
		return request_tasks_args(args, r, why);
	if (a->type != MSGPACK_OBJECT_STR || a->via.str.size == 0 ||
	    memchr(a->via.str.ptr, '\0', a->via.str.size) != NULL) {
		*why = "NAME must be a non-empty string";
		return -1;
	}
	/* echoed in answers ("no such worker: NAME"), which are UTF-8 */
	if (!text_utf8_valid(a->via.str.ptr, a->via.str.size)) {
		*why = "NAME must be valid UTF-8";
		return -1;
	}
	if (a->via.str.size >= sizeof r->name) {
		*why = "NAME is too long (255 bytes at most)";
		return -1;
	}
	memcpy(r->name, a->via.str.ptr, a->via.str.size);
	r->name[a->via.str.size] = '\0';
	if (nargs > 1)
		r->opts = &args->via.array.ptr[1];
	if (r->cmd == REQ_LOGS)
		return request_logs_args(args, r, why);
	if (r->cmd == REQ_TASKS)
		return request_tasks_args(args, r, why);
	if (r->cmd == REQ_WAIT && r->opts != NULL &&
	    r->opts->type != MSGPACK_OBJECT_BOOLEAN) {
		*why = "wait: NOW must be a boolean";
		return -1;
	}
	if (r->cmd == REQ_SIGNAL &&
	    (r->signo = request_signal(&args->via.array.ptr[1])) == 0) {
		*why = "signal: SIG must be a signal's name (HUP, SIGUSR1...) "
		       "or number, one with a name below the real-time ones "
		       "(1..31)";
		return -1;
	}
	return 0;
}
