/* config.h - supervisor.d/ parsed into a validated spec tree (pure). */
#ifndef AGENTSUP_CONFIG_H
#define AGENTSUP_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum node_kind { KIND_WORKER, KIND_SUPERVISOR };
enum strategy { ONE_FOR_ONE, ONE_FOR_ALL, REST_FOR_ONE };
enum restart_type { RESTART_PERMANENT, RESTART_TRANSIENT, RESTART_TEMPORARY };
enum output_mode { OUTPUT_INHERIT, OUTPUT_NULL, OUTPUT_FILE, OUTPUT_CAPTURE };

#define SHUTDOWN_BRUTAL_KILL (-1)
#define CONFIG_MAX_INTENSITY 100000
#define CONFIG_MAX_DEPTH     32
#define CONFIG_NAME_MAX      64

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

/* One node of the tree as declared: a supervisor or a worker. */
struct spec {
	char *name;
	enum node_kind kind;
	struct loc loc;
	char *parent; /* `parent` key of a top-level document, or NULL */
	struct loc parent_loc;
	enum restart_type restart;

	/* supervisor */
	enum strategy strategy;
	unsigned intensity;
	uint64_t period_ms;
	struct spec **children;
	size_t nchildren;

	/* worker */
	char **argv; /* NULL-terminated */
	char *directory;
	char **env; /* "KEY=VALUE", NULL-terminated, in declaration order */
	int64_t shutdown_ms;   /* SHUTDOWN_BRUTAL_KILL or >= 0 */
	uint64_t heartbeat_ms; /* 0 = not monitored */
	uint64_t heartbeat_timeout_ms;
	uint64_t start_timeout_ms; /* 0 = running at spawn */
	uint64_t drain_timeout_ms;
	struct output out;
	struct output err;
};

/* The `agentsupd:` settings document. */
struct settings {
	char *socket;       /* control socket path, NULL = default */
	char *events_file;  /* JSON-lines event log, NULL = none */
	uint32_t max_frame; /* largest frame accepted from a peer */
	char *log_dir;      /* captured output files, NULL = none */
	uint64_t log_max;   /* rotate a worker's log file beyond this size */
	uint32_t log_keep;  /* rotated files kept: NAME.log.1 ... */
	uint32_t log_tail;  /* bytes of each worker's output kept in memory */
	struct loc loc;
};

struct config {
	struct spec *root;
	struct settings settings;
	char **files; /* every file read, so struct loc can point at names */
	size_t nfiles;
};

/* Every error found, each "file:line:column: message". */
struct config_errors {
	char **msgs;
	size_t count;
};

struct config *config_load(const char *dir, struct config_errors *errs);
struct config *config_load_files(const char *const *paths, size_t n,
                                 struct config_errors *errs);
void config_free(struct config *);
void config_errors_clear(struct config_errors *);
void config_print(const struct config *, FILE *);

const char *config_strategy_name(enum strategy);
const char *config_restart_name(enum restart_type);
int config_parse_duration(const char *, uint64_t *ms);
int config_split_command(const char *, char ***argv, const char **why);
void config_free_strv(char **);

/* Whether a worker's process would differ (command, directory, env, output). */
int spec_process_equal(const struct spec *, const struct spec *);
/* Whether the policy (restart, strategy, intensity, timeouts...) is the same.
 */
int spec_policy_equal(const struct spec *, const struct spec *);

#endif
