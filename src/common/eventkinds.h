/* eventkinds.h - every kind of event, one row each: shared by the daemon's
 * events (events.h) and the config, which refuses a hook for a kind that
 * does not exist (`on_event: [{kinds: [give_up]}]` never ran). */
#ifndef AGENTSUP_EVENTKINDS_H
#define AGENTSUP_EVENTKINDS_H

/*
 * Every kind, one row each: X(enum suffix, name in JSON, tone of its line on
 * a terminal). A new kind is one new row, emitted by some code (a kind nobody
 * emits is dead code: remove its row).
 */
#define EVENTS_KINDS(X)                                                        \
	X(STARTED, "started", EVENT_GOOD)                                      \
	X(READY, "ready", EVENT_GOOD)                                          \
	X(EXITED, "exited", EVENT_WARN)                                        \
	X(RESTARTING, "restarting", EVENT_RETRY)                               \
	X(STOPPED, "stopped", EVENT_PLAIN)                                     \
	X(HANG, "hang", EVENT_WARN)                                            \
	X(START_TIMEOUT, "start_timeout", EVENT_WARN)                          \
	X(PROTOCOL_ERROR, "protocol_error", EVENT_WARN)                        \
	X(GAVE_UP, "gave_up", EVENT_BAD)                                       \
	X(ESCALATED, "escalated", EVENT_BAD)                                   \
	X(DRAIN_STARTED, "drain_started", EVENT_PLAIN)                         \
	X(DRAINED, "drained", EVENT_PLAIN)                                     \
	X(DRAIN_DONE, "drain_done", EVENT_PLAIN)                               \
	X(RELOAD_APPLIED, "reload_applied", EVENT_PLAIN)                       \
	X(RELOAD_REFUSED, "reload_refused", EVENT_BAD)                         \
	X(SHUTDOWN, "shutdown", EVENT_PLAIN)                                   \
	X(COMMAND, "command", EVENT_PLAIN)                                     \
	X(BACKOFF, "backoff", EVENT_RETRY)                                     \
	X(QUARANTINED, "quarantined", EVENT_BAD)                               \
	X(PROBING, "probing", EVENT_RETRY)                                     \
	X(CIRCUIT_CLOSED, "circuit_closed", EVENT_RETRY)                       \
	X(CONTROL_LIMITED, "control_limited", EVENT_WARN)                      \
	X(DECLARED, "declared", EVENT_PLAIN)                                   \
	X(FAILED, "failed", EVENT_BAD)                                         \
	X(EXHAUSTED, "exhausted", EVENT_BAD)                                   \
	X(MEMORY, "memory", EVENT_WARN)                                        \
	X(STALLED, "stalled", EVENT_WARN)                                      \
	X(NUDGED, "nudged", EVENT_PLAIN)                                       \
	X(LOOPING, "looping", EVENT_WARN)                                      \
	X(BUDGET_WARNING, "budget_warning", EVENT_WARN)                        \
	X(RECYCLED, "recycled", EVENT_PLAIN)                                   \
	X(CHECKPOINT_DISCARDED, "checkpoint_discarded", EVENT_WARN)            \
	X(STORE_ERROR, "store_error", EVENT_BAD)                               \
	X(SPAWNED, "spawned", EVENT_GOOD)                                      \
	X(TASK_DONE, "task_done", EVENT_PLAIN)                                 \
	X(DEAD_LETTERED, "dead_lettered", EVENT_BAD)                           \
	X(REPLAYED, "replayed", EVENT_RETRY)                                   \
	X(CONTAINMENT_LOST, "containment_lost", EVENT_BAD)

#endif
