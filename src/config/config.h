/* config.h - supervisor.d/ parsed into a validated spec tree (pure). */
#ifndef AGENTSUP_CONFIG_H
#define AGENTSUP_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum node_kind { KIND_WORKER, KIND_SUPERVISOR };
enum strategy { ONE_FOR_ONE, ONE_FOR_ALL, REST_FOR_ONE };
enum restart_type { RESTART_PERMANENT, RESTART_TRANSIENT, RESTART_TEMPORARY };
enum output_mode { OUTPUT_INHERIT, OUTPUT_NULL, OUTPUT_FILE, OUTPUT_CAPTURE };
enum jitter_kind { JITTER_FULL, JITTER_EQUAL, JITTER_NONE };
enum notify_mode { NOTIFY_NONE, NOTIFY_SYSTEMD }; /* `notify:` */

#define SHUTDOWN_BRUTAL_KILL (-1)
#define CONFIG_MAX_INTENSITY 100000
#define CONFIG_MAX_DEPTH     32
#define CONFIG_NAME_MAX      64
/* Flow nesting ([ ] and { }) a file may use: far more than a config needs,
 * far less than what makes libyaml slow. */
#define CONFIG_MAX_FLOW_DEPTH 64
/* The longest duration: 100 years, in ms (its µs fit in 64 bits). */
#define CONFIG_MAX_DURATION_MS (100ULL * 366 * 24 * 3600 * 1000)

/*
 * The caps on what a configuration may hold (docs/config.md): reading and
 * checking the largest accepted directory stays well under a second, and a
 * hostile file is refused with a few errors, fast.
 */
#define CONFIG_MAX_FILE_BYTES  (1u << 20)   /* one file */
#define CONFIG_MAX_DIR_BYTES   (4u << 20)   /* all files together */
#define CONFIG_MAX_FILES       1024         /* *.yaml / *.yml files */
#define CONFIG_MAX_MAP_KEYS    1024         /* keys of one mapping, merged */
#define CONFIG_MAX_LIST        4096         /* items of one list */
#define CONFIG_MAX_NODES       10000        /* workers + supervisors */
#define CONFIG_MAX_INSTANCES   1000         /* `instances:` of one worker */
#define CONFIG_MAX_YAML_NODES  1000000u     /* YAML nodes visited, aliases */
#define CONFIG_MAX_BYTES       (32u << 20)  /* strings kept, once expanded */
#define CONFIG_MAX_VALUE_BYTES (128u << 10) /* one expanded ${VAR} value */
#define CONFIG_MAX_ERRORS      20 /* messages kept; the rest counted */

struct output {
	enum output_mode mode;
	char *path; /* OUTPUT_FILE: appended; relative to `directory` */
};

/* Where a node was declared, for messages. `file` points into config.files. */
struct loc {
	const char *file;
	int line;
	int column;
};

/* How long a failed child waits before it is started again (DESIGN §9). */
struct backoff_spec {
	bool enabled; /* false: `backoff: none`, OTP's immediate restarts */
	uint64_t initial_ms;
	uint64_t max_ms;
	uint64_t reset_after_ms;
	uint64_t retry_after_max_ms; /* cap on a declared retry_after_ms */
	double multiplier;           /* >= 1 */
	enum jitter_kind jitter;
};

/* A child's circuit breaker (DESIGN §9); off unless configured. */
struct circuit_spec {
	bool enabled;
	unsigned failures; /* failures within window that open it, >= 1 */
	uint64_t window_ms;
	uint64_t open_ms;
	uint64_t open_max_ms;
	uint64_t probe_stable_ms;
};

/* `limits:` (DESIGN §13): setrlimit in the child, soft = hard. */
enum limit_kind {
	LIMIT_NOFILE,
	LIMIT_NPROC,
	LIMIT_CORE,
	LIMIT_MEMORY,
	LIMIT__COUNT
};
#define LIMIT_INFINITY UINT64_MAX /* `unlimited` */
struct limits_spec {
	unsigned set;             /* bit per enum limit_kind given */
	uint64_t v[LIMIT__COUNT]; /* LIMIT_MEMORY in bytes (RLIMIT_AS) */
};

/* `control:`, what a worker may ask of the control socket: a bit per
 * command name of config_control_names (CONTROL_ALL: every command, also
 * those added later). 0: none, the default. */
#define CONTROL_ALL UINT32_MAX
extern const char *const config_control_names[];
/* The bit of a command name, 0 when the name is not grantable by name. */
uint32_t config_control_bit(const char *cmd);
/* A worker's checkpoints (DESIGN §11); on by default. */
struct checkpoint_spec {
	bool enabled;          /* false: `checkpoint: none` */
	uint32_t max;          /* the largest checkpoint, in bytes */
	unsigned keep;         /* how many are kept, >= 1 */
	unsigned poison_after; /* failures after the same one: discard it */
};

#define CHECKPOINT_MAX_DEFAULT (256u * 1024u)
#define CHECKPOINT_MAX_MAX     (16u << 20)
#define CHECKPOINT_KEEP_MAX    16u

#define PROGRESS_KEYS_GRACE_UNSET UINT64_MAX /* stall_grace: T / 2 */

/* A budget (DESIGN §10) on a worker or a supervisor; a limit of 0 is none. */
struct budget_spec {
	bool enabled;
	uint64_t tokens, steps, wall_ms;
	double cost;
};

/*
 * A node's policy: every key that is plain data (no strings), which
 * workers declared alike or inheriting the same `defaults:` share. The
 * loader gives each spec its own while it parses, in pages of the load's
 * (parse.h), then interns them (spec_intern): one heap copy per distinct
 * policy, shared and counted.
 * Read-only once linked.
 */
/* Whether exit status code is a normal end for pol (0, or success_exit). */
struct policy;
bool config_exit_normal(const struct policy *pol, int code);

/* stop_signal's names, by place (the daemon knows their numbers). */
#define STOP_SIGNALS 9
extern const char *const config_stop_signals[STOP_SIGNALS];

struct policy {
	bool pooled;   /* in a load's pool (parse.h), not the heap */
	unsigned refs; /* specs pointing here (spec.c) */
	enum restart_type restart;
	bool significant;        /* its supervisor is useless without it */
	bool autostart;          /* false: held until an operator starts it */
	bool stall_dump;         /* SIGUSR1 with the stall's nudge */
	enum notify_mode notify; /* systemd: NOTIFY_SOCKET of agentsupd's */

	/* supervisor */
	enum strategy strategy;
	unsigned intensity;
	unsigned max_children; /* live dynamic children at most */
	uint64_t period_ms;
	uint64_t key_ttl_ms; /* an ended task's key answers this long */

	/* worker */
	int64_t shutdown_ms;      /* SHUTDOWN_BRUTAL_KILL or >= 0 */
	int stop_signal;          /* the stop sequence's first: its place in
	                           * config_stop_signals (0: TERM) */
	uint64_t success_exit[4]; /* exit statuses besides 0 that are normal */
	uint64_t heartbeat_ms;    /* 0 = not monitored */
	uint64_t heartbeat_timeout_ms;
	uint64_t start_timeout_ms; /* 0 = running at spawn */
	uint64_t ready_after_ms;   /* ready once it ran this long, 0 = off */
	uint64_t drain_timeout_ms;
	struct backoff_spec backoff;
	struct circuit_spec circuit;
	struct checkpoint_spec checkpoint;

	/* progress (DESIGN §10): 0 / false = off */
	unsigned loop_repeats; /* `loop: {repeats: N}` */
	int umask_mode;        /* -1 = agentsupd's */
	uint64_t stall_timeout_ms;
	uint64_t stall_grace_ms; /* default stall_timeout / 2 */
	uint64_t extend_max_ms;  /* the longest {t: extend}, default 10m */
	uint64_t recycle_after_ms;
	struct budget_spec budget; /* a worker's, or a supervisor's subtree's */

	/* privileges and limits (DESIGN §13) */
	struct limits_spec limits;
	uint64_t max_memory; /* bytes of RSS, 0 = not checked */
	/* its log_dir file's rotation (DESIGN §13): 0 / -1 = agentsupd's */
	uint64_t log_max;
	int log_keep;
	uint32_t control; /* control requests granted (CONTROL_ALL...) */
};

/* Whether a worker starts in `starting` and is up only once ready: it says
 * so (start_timeout), or it ran ready_after. */
static inline bool
config_waits_ready(const struct policy *pol)
{
	return pol->start_timeout_ms != 0 || pol->ready_after_ms != 0;
}

/* One node of the tree as declared: a supervisor or a worker. What is
 * its own (name, command, environment, output...) is here; the rest is
 * its policy, shared with the nodes declared alike. */
struct spec {
	char *name;
	enum node_kind kind;
	unsigned instances; /* `instances: N` as declared, 0 = absent */
	unsigned instance;  /* this copy's number 1..N, 0 = not a copy */
	unsigned borrowed;  /* SPEC_BORROWS_*: arrays another spec owns */
	struct loc loc;
	char *parent; /* `parent` key of a top-level document, or NULL */
	struct loc parent_loc;
	const struct policy *pol; /* never NULL */

	/* supervisor */
	struct spec **children;
	size_t nchildren;
	struct spec *defaults; /* worker keys handed down, or NULL */
	/* dynamic children (DESIGN §12): template.c */
	struct spec *tmpl; /* `template:` a worker without a name, or NULL */
	char **spawn_from; /* workers that may spawn here, or NULL */

	/* worker */
	char **argv; /* NULL-terminated */
	char *directory;
	char **env; /* "KEY=VALUE", NULL-terminated, in declaration order */
	/* `env_file:` paths read at each start ("-" first: may be missing),
	 * NULL-terminated, or NULL */
	char **env_files;
	struct output out;
	struct output err;

	uint64_t keys_set; /* bit i: key i of the key table set here */
	/* privileges (DESIGN §13) */
	char *user;  /* run as this user, NULL = agentsupd's */
	char *group; /* and group, NULL = the user's own */
};

/* A spec's policy made its own (copied if shared) and writable: for
 * tests and tools that change a parsed spec. */
struct policy *spec_policy_own(struct spec *);

/* What a spec's arrays are: equal commands, environments and directories
 * of one config are kept once (intern.c), by the first spec that has
 * them; the others borrow them and do not free them. */
#define SPEC_BORROWS_ARGV 1u
#define SPEC_BORROWS_ENV  2u
#define SPEC_BORROWS_DIR  4u
/* ...and a command lent while parsing, to the next worker declared with an
 * equal one: its owner keeps it (intern.c). */
#define SPEC_LENDS_ARGV 8u

/* The policy every key's default gives (a spec made outside the loader,
 * such as the engine's graveyard, points here). */
extern const struct policy config_policy_default;

/* One `on_event:` entry: run argv per event of one of `kinds`. */
struct hook_spec {
	char **kinds; /* event kind names, NULL-terminated */
	char **argv;  /* NULL-terminated */
	uint64_t timeout_ms;
};

#define CONFIG_MAX_HOOKS       64
#define CONFIG_HOOK_TIMEOUT_MS 10000

/* `contain:` how a worker's descendants are made to end with it. */
enum contain_mode {
	CONTAIN_AUTO,   /* a cgroup per worker where cgroup v2 is writable */
	CONTAIN_CGROUP, /* the same, and refuse to start without it */
	CONTAIN_NONE,   /* the process group and PDEATHSIG only */
	CONTAIN_PIDNS,  /* a PID namespace (no cgroups), or refuse to start */
};

/* The `agentsupd:` settings document. */
struct settings {
	char *socket;       /* control socket path, NULL = default */
	char *events_file;  /* JSON-lines event log, NULL = none */
	char *metrics;      /* "HOST:PORT" serving /metrics, NULL = off */
	uint32_t max_frame; /* largest frame accepted from a peer */
	char *log_dir;      /* captured output files, NULL = none */
	uint64_t log_max;   /* rotate a worker's log file beyond this */
	uint32_t log_keep;  /* rotated files kept: NAME.log.1 ... */
	uint32_t log_tail;  /* bytes of each worker's output in memory */
	bool log_time;      /* log_dir lines begin with when they came */
	bool log_quiet;  /* log_stderr: false: captured lines not on stderr */
	char *state_dir; /* the state store's directory, NULL = none */
	struct hook_spec *hooks; /* on_event: */
	size_t nhooks;
	enum contain_mode contain;
	char *termination_log; /* JSON written on exit, NULL = none */
	struct loc loc;
};

struct config {
	struct spec *root;
	struct settings settings;
	char **files; /* every file read, so struct loc can point at names */
	size_t nfiles;
};

/*
 * Errors found, each "file:line:column: message". At most
 * CONFIG_MAX_ERRORS are kept per load, then one "... and N more errors"
 * line; `total` counts every error found, kept or not.
 */
struct config_errors {
	char **msgs;
	size_t count;
	size_t total;
};

/* One file's bytes, already read: the parser never touches the disk. */
struct config_source {
	const char *name; /* as messages show it, e.g. "supervisor.d/a.yaml" */
	const char *data;
	size_t len;
};

/*
 * The pure parser: files in the order given, `envp` ("NAME=value", NULL
 * terminated, or NULL for none) is the environment ${VAR} expands from.
 * Returns the tree, or NULL with errors added to errs.
 */
struct config *config_parse(const struct config_source *files, size_t n,
                            const char *const *envp,
                            struct config_errors *errs);

/* The same; when it fails, *socket (if not NULL) is the socket setting as
 * far as it was read (NULL: not set, or not readable; the caller frees
 * it), for agentsupctl, which must reach agentsupd to be told why. */
struct config *config_parse_socket(const struct config_source *files, size_t n,
                                   const char *const *envp,
                                   struct config_errors *errs, char **socket);

/* Read a directory, or files by path, then parse them with agentsupd's own
 * environment. Defined in src/daemon/confdir.c: reading is the shell's. */
struct config *config_load(const char *dir, struct config_errors *errs);
struct config *config_load_files(const char *const *paths, size_t n,
                                 struct config_errors *errs);
/* config_load, with config_parse_socket's *socket when it fails. */
struct config *config_load_socket(const char *dir, struct config_errors *errs,
                                  char **socket);

void config_free(struct config *);
void config_errors_clear(struct config_errors *);
/* Append "file:line:column: message" unless the cap is reached. */
void config_errors_add(struct config_errors *, const char *file, int line,
                       int column, const char *fmt, ...)
        __attribute__((format(printf, 5, 6)));
/* Say how many errors were not kept, once, as the last message. */
void config_errors_finish(struct config_errors *);
void config_print(const struct config *, FILE *);

const char *config_strategy_name(enum strategy);
const char *config_restart_name(enum restart_type);
const char *config_jitter_name(enum jitter_kind);
/* "500ms", "10s", "1.5s", "2m", "1h", "10" (seconds): 0, -1 when it is no
 * duration, CONFIG_DURATION_TOO_LONG when it is one longer than
 * CONFIG_MAX_DURATION_MS (which Part I took, so it is said as such). */
#define CONFIG_DURATION_TOO_LONG (-2)
int config_parse_duration(const char *, uint64_t *ms);
/* The message for a key whose duration is too long: "... is longer than
 * 100 years, the longest a duration may be". */
#define CONFIG_DURATION_TOO_LONG_FMT                                           \
	"%s: \"%s\" is longer than 100 years, the longest duration"
/* "4096", "64k", "512M", "2GiB": bytes, binary units. */
int config_parse_bytes(const char *, uint64_t *bytes);
int config_split_command(const char *, char ***argv, const char **why);
void config_free_strv(char **);

#define CONFIG_MAX_CHILDREN_DEFAULT 1000
#define CONFIG_KEY_TTL_DEFAULT_MS   (24ull * 3600 * 1000)

/* A dynamic child's spec (template.c): the template with its name, args
 * appended to its command and env ("K=V", overriding the template's) added.
 * Owned by the caller (config_task_spec_free). */
struct spec *config_task_spec(const struct spec *tmpl, const char *name,
                              char *const *args, char *const *env);
void config_task_spec_free(struct spec *);
/* Whether a worker of this name may spawn under supervisor s. */
bool config_spawn_allowed(const struct spec *s, const char *worker);

/* `env_file:`'s bounds, and its files' text (envfile.c): lines of
 * KEY=VALUE, blank lines and # comments, `export ` allowed before a key, a
 * value '...' as it is or "..." with \" \\ \n \t \$; no expansion. The
 * entries ("KEY=VALUE", NULL-terminated, the caller frees) into *out, or -1
 * with why (its line). */
#define CONFIG_ENVFILE_MAX   (64u << 10)
#define CONFIG_ENVFILE_VARS  1024
#define CONFIG_ENVFILE_FILES 16
int config_envfile_parse(const char *text, size_t len, char ***out, char *why,
                         size_t whylen);

/* Whether a worker's process would differ (command, directory, env, output). */
int spec_process_equal(const struct spec *, const struct spec *);
/* Whether the policy (restart, strategy, intensity, timeouts, backoff,
 * circuit...) is the same. */
int spec_policy_equal(const struct spec *, const struct spec *);

#endif
