/*
 * agentsup/protocol.h - every name of the agentsup protocol, in one place.
 *
 * The version, the framing constants, the worker environment, every message
 * type ("t"), every field, and every reason a failure or a declaration can
 * carry. No code: docs/protocol.md explains each, and wire.h decodes them.
 * A client in another language can be written from this file and that page.
 */
#ifndef AGENTSUP_PROTOCOL_H
#define AGENTSUP_PROTOCOL_H

/* clang-format off */

#define AGENTSUP_PROTOCOL_VERSION 1
#define AGENTSUP_FRAME_HEADER     4             /* big-endian u32 length */
#define AGENTSUP_MAX_FRAME        (64u * 1024u) /* default limit on a body */
/* The largest task result ({t: result} data) agentsupd takes. */
#define AGENTSUP_RESULT_MAX (64u << 10)
#define AGENTSUP_MAX_DEPTH        16            /* nesting of maps and arrays */
/* A reload asked while a supervisor is busy restarting (or stopping) its
 * children is applied once it settles, and refused "busy" if it has not
 * within this; a client awaits a reload's answer that much longer. */
#define AGENTSUP_RELOAD_HOLD_MS 60000

/* The environment handed to every worker. */
#define AGENTSUP_ENV_FD           "AGENTSUP_FD"
#define AGENTSUP_ENV_NAME         "AGENTSUP_NAME"
#define AGENTSUP_ENV_PATH         "AGENTSUP_PATH"
#define AGENTSUP_ENV_INCARNATION  "AGENTSUP_INCARNATION"
#define AGENTSUP_ENV_HEARTBEAT_MS "AGENTSUP_HEARTBEAT_MS"
#define AGENTSUP_ENV_SOCKET       "AGENTSUP_SOCKET" /* control socket path */

/* Message types: the value of "t".  Part I: */
#define AGENTSUP_T_HELLO         "hello"         /* worker -> daemon */
#define AGENTSUP_T_WELCOME       "welcome"       /* daemon -> worker */
#define AGENTSUP_T_READY         "ready"         /* worker -> daemon */
#define AGENTSUP_T_HB            "hb"            /* worker -> daemon */
#define AGENTSUP_T_DRAIN         "drain"         /* daemon -> worker */
#define AGENTSUP_T_REQ           "req"           /* ctl -> daemon */
#define AGENTSUP_T_RES           "res"           /* daemon -> ctl */
#define AGENTSUP_T_EVENT         "event"         /* daemon -> ctl */
/* Part II (DESIGN §9-§12): */
#define AGENTSUP_T_EXIT          "exit"          /* worker -> daemon */
#define AGENTSUP_T_EXTEND        "extend"        /* worker -> daemon */
#define AGENTSUP_T_NUDGE         "nudge"         /* daemon -> worker */
#define AGENTSUP_T_CHECKPOINT    "checkpoint"    /* worker -> daemon */
#define AGENTSUP_T_CHECKPOINT_OK "checkpoint_ok" /* daemon -> worker */
#define AGENTSUP_T_RESULT        "result"        /* worker -> daemon */
#define AGENTSUP_T_SPAWN         "spawn"         /* worker -> daemon */
#define AGENTSUP_T_SPAWNED       "spawned"       /* daemon -> worker */

/* The error of a res to a command the daemon does not know: a newer
 * agentsupctl tells by it that the daemon it asks is an older build. */
#define AGENTSUP_UNKNOWN_COMMAND "unknown command"
/* ... and to more arguments than it takes: an older build too, as the
 * client checks their count against the command's own (dead -n N, wait
 * KEY --timeout 0 and tasks -n N came after the commands). */
#define AGENTSUP_TOO_MANY_ARGUMENTS "too many arguments"

/* Fields (map keys). Which message carries which, with its type, is the
 * table in wire.c (agentsup_wire_check_fields) and docs/protocol.md. */
#define AGENTSUP_F_T              "t"
#define AGENTSUP_F_V              "v"              /* hello, welcome */
#define AGENTSUP_F_PID            "pid"            /* hello */
#define AGENTSUP_F_LANG           "lang"           /* hello */
#define AGENTSUP_F_NAME           "name"           /* welcome, spawned */
#define AGENTSUP_F_PATH           "path"           /* welcome */
#define AGENTSUP_F_INCARNATION    "incarnation"    /* welcome */
#define AGENTSUP_F_HEARTBEAT_MS   "heartbeat_ms"   /* welcome */
#define AGENTSUP_F_TIMEOUT_MS     "timeout_ms"     /* welcome */
#define AGENTSUP_F_RESTARTS       "restarts"       /* welcome */
#define AGENTSUP_F_LAST_REASON    "last_reason"    /* welcome */
#define AGENTSUP_F_CHECKPOINT     "checkpoint"     /* welcome */
#define AGENTSUP_F_CHECKPOINT_SEQ "checkpoint_seq" /* welcome */
#define AGENTSUP_F_MAX_FRAME      "max_frame"      /* welcome (optional) */
/* welcome (optional): the largest checkpoint taken, 0: checkpoints off */
#define AGENTSUP_F_CHECKPOINT_MAX "checkpoint_max"
#define AGENTSUP_F_SEQ            "seq"            /* hb, checkpoint(_ok) */
#define AGENTSUP_F_PROGRESS       "progress"       /* hb */
#define AGENTSUP_F_STEPS          "steps"          /* hb.progress */
#define AGENTSUP_F_TOKENS         "tokens"         /* hb.progress */
#define AGENTSUP_F_COST           "cost"           /* hb.progress */
#define AGENTSUP_F_STATE          "state"          /* hb.progress, nudge */
#define AGENTSUP_F_STATUS         "status"         /* hb */
#define AGENTSUP_F_DEADLINE_MS    "deadline_ms"    /* drain */
#define AGENTSUP_F_REASON         "reason"         /* exit, nudge */
#define AGENTSUP_F_RETRY_AFTER_MS "retry_after_ms" /* exit */
#define AGENTSUP_F_DETAIL         "detail"         /* exit */
#define AGENTSUP_F_MS             "ms"             /* extend */
#define AGENTSUP_F_IDLE_MS        "idle_ms"        /* nudge */
#define AGENTSUP_F_PERIOD         "period"         /* nudge */
#define AGENTSUP_F_DATA           "data"           /* checkpoint, result */
#define AGENTSUP_F_SUP            "sup"            /* spawn */
#define AGENTSUP_F_KEY            "key"            /* spawn */
#define AGENTSUP_F_ARGS           "args"           /* spawn, req */
#define AGENTSUP_F_ENV            "env"            /* spawn */
#define AGENTSUP_F_OK             "ok"             /* spawned, res */
#define AGENTSUP_F_CREATED        "created"        /* spawned */
#define AGENTSUP_F_ERROR          "error"          /* spawned, res */
#define AGENTSUP_F_COUNT          "count"          /* spawned */
#define AGENTSUP_F_ID             "id"             /* req, res */
#define AGENTSUP_F_CMD            "cmd"            /* req */
#define AGENTSUP_F_RESULT         "result"         /* res */
#define AGENTSUP_F_EVENT          "event"          /* event */

/* Why a worker failed, as events and status show it. "exit" and "signal"
 * carry a suffix: "exit:1", "signal:SIGSEGV"; "spawn" may carry the errno
 * name: "spawn:ENOENT". */
#define AGENTSUP_REASON_EXIT          "exit"
#define AGENTSUP_REASON_SIGNAL        "signal"
#define AGENTSUP_REASON_HANG          "hang"
#define AGENTSUP_REASON_START_TIMEOUT "start_timeout"
#define AGENTSUP_REASON_PROTOCOL      "protocol"
#define AGENTSUP_REASON_SPAWN         "spawn"
#define AGENTSUP_REASON_STALL         "stall"
#define AGENTSUP_REASON_LOOP          "loop"
#define AGENTSUP_REASON_BUDGET        "budget"
#define AGENTSUP_REASON_MEMORY        "memory"
#define AGENTSUP_REASON_GAVE_UP       "gave_up" /* a supervisor, to its parent */

/* X-macro over the failure reasons, for tables: X(ENUM_SUFFIX, "name"). */
#define AGENTSUP_REASONS(X)                                                  \
	X(EXIT, AGENTSUP_REASON_EXIT)                                        \
	X(SIGNAL, AGENTSUP_REASON_SIGNAL)                                    \
	X(HANG, AGENTSUP_REASON_HANG)                                        \
	X(START_TIMEOUT, AGENTSUP_REASON_START_TIMEOUT)                      \
	X(PROTOCOL, AGENTSUP_REASON_PROTOCOL)                                \
	X(SPAWN, AGENTSUP_REASON_SPAWN)                                      \
	X(STALL, AGENTSUP_REASON_STALL)                                      \
	X(LOOP, AGENTSUP_REASON_LOOP)                                        \
	X(BUDGET, AGENTSUP_REASON_BUDGET)                                    \
	X(MEMORY, AGENTSUP_REASON_MEMORY)                                    \
	X(GAVE_UP, AGENTSUP_REASON_GAVE_UP)

/* What a worker may declare in {t: "exit", reason} before exiting (§9). */
#define AGENTSUP_DECLARED_DONE         "done"
#define AGENTSUP_DECLARED_TRANSIENT    "transient"
#define AGENTSUP_DECLARED_RATE_LIMITED "rate_limited"
#define AGENTSUP_DECLARED_PERMANENT    "permanent"
#define AGENTSUP_DECLARED_BUDGET       "budget"

#define AGENTSUP_DECLARED(X)                                                 \
	X(DONE, AGENTSUP_DECLARED_DONE)                                      \
	X(TRANSIENT, AGENTSUP_DECLARED_TRANSIENT)                            \
	X(RATE_LIMITED, AGENTSUP_DECLARED_RATE_LIMITED)                      \
	X(PERMANENT, AGENTSUP_DECLARED_PERMANENT)                            \
	X(BUDGET, AGENTSUP_DECLARED_BUDGET)

/* Why the daemon nudges a worker: the value of "reason" in a nudge. */
#define AGENTSUP_NUDGE_STALL AGENTSUP_REASON_STALL
#define AGENTSUP_NUDGE_LOOP  AGENTSUP_REASON_LOOP

/* The typed refusal of a spawn past a supervisor's max_children (§12). */
#define AGENTSUP_SPAWN_MAX_CHILDREN "max_children"

/* clang-format on */

#endif
