/* parse.h - what the files of src/config share while a load runs (private). */
#ifndef AGENTSUP_CONFIG_PARSE_H
#define AGENTSUP_CONFIG_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <yaml.h>

#include "config.h"

/* One key: value of a mapping once merge keys are resolved. */
struct pair {
	const char *key;
	yaml_node_t *k;
	yaml_node_t *v;
};

/* One variable of agentsupd's environment, sorted by name for lookups. */
struct envent {
	const char *name; /* "NAME=value" */
	size_t len;       /* of NAME */
	size_t order;     /* the first of two equal names wins, as getenv */
};

/*
 * The policies a load makes (spec.c), apart from the heap: each spec gets
 * its own while it is parsed, and spec_intern keeps one of each distinct
 * policy. Freed copies in the heap left a hole between the specs made after
 * them, one for each worker, which the daemon's allocations filled only in
 * part (90 KiB of 112-byte holes with 1,000 workers, all resident). Here
 * they live in pages of their own; spec_intern gives each kept one a heap
 * copy, made after every spec, and the pages go with the load.
 */
struct spec_pool_block;
struct spec_pool {
	struct spec_pool_block *blocks;
};

/* The state of one load: the config being built and where we are. */
struct parse {
	struct config *cfg;
	struct config_errors *errs;
	const char *file;
	yaml_document_t *doc;
	struct spec **tops; /* top-level documents, declaration order */
	size_t ntops;
	size_t captops;
	bool have_settings;
	unsigned visits;    /* YAML nodes we may still visit: aliases */
	size_t bytes;       /* bytes of strings we may still keep */
	bool exhausted;     /* a budget ran out: stop, the error is said */
	size_t nspecs;      /* workers and supervisors made so far */
	struct envent *env; /* agentsupd's environment, sorted by name */
	size_t nenv;
	size_t errs_before;    /* errs->total when this load began */
	struct spec_pool pool; /* its specs' policies until spec_intern */
};

/* load.c: errors, budgets, mappings */
void load_err(struct parse *, const yaml_mark_t *, const char *, ...)
        __attribute__((format(printf, 3, 4)));
/* s, the value of key, is no duration (rc: config_parse_duration's):
 * said, too long or malformed. */
void load_bad_duration(struct parse *, const yaml_mark_t *, const char *key,
                       const char *s, int rc);
void load_locerr(struct parse *, const struct loc *, const char *, ...)
        __attribute__((format(printf, 3, 4)));
struct loc load_loc(const struct parse *, const yaml_mark_t *);
yaml_node_t *load_node(struct parse *, int id);
bool load_charge(struct parse *, size_t bytes);
void load_exhaust(struct parse *, unsigned limit, const char *what);
const char *load_scalar(struct parse *, const char *key, yaml_node_t *);
struct spec *load_spec(struct parse *, yaml_node_t *map, int depth, bool top);
const char *load_getenv(void *parse, const char *name, size_t len);

/* onevent.c: the settings' on_event list */
void onevent_parse(struct parse *, const char *key, yaml_node_t *,
                   struct settings *);
void onevent_free(struct settings *);

/* map.c: mappings (merge keys resolved, each key once) and lists */
int map_pairs(struct parse *, yaml_node_t *map, const char *what,
              struct pair **pairs, size_t *n);
int map_list(struct parse *, yaml_node_t *list, const char *what,
             yaml_node_item_t **items, size_t *n);

/* keys.c: the key table */
enum key_where {
	KEY_WORKER = 1,     /* a worker's key, inheritable through defaults */
	KEY_SUPERVISOR = 2, /* a supervisor's key */
	KEY_TOP = 4,        /* only in a top-level document */
	KEY_NAME = 8,       /* worker: / supervisor: itself */
};
enum key_storage { STORE_POD, STORE_STR, STORE_STRV, STORE_OUTPUT };

struct key {
	const char *name;
	unsigned where;
	void (*parse)(struct parse *, const struct key *, yaml_node_t *v,
	              struct spec *, int depth);
	size_t off;  /* the field in struct spec, or with KEY_IN_POLICY in
	                struct policy */
	size_t size; /* its size, for inheritance */
	enum key_storage storage;
	const char *type; /* for messages and docs */
	const char *dflt; /* for docs */
};

#define KEY_IN_POLICY ((size_t)1 << (sizeof(size_t) * 8 - 1))

extern const struct key keys_table[];
extern const size_t keys_count;
const struct key *keys_find(const char *name);
void keys_apply(struct parse *, struct spec *, const struct pair *, int depth,
                bool top);
void keys_inherit(struct parse *, struct spec *worker,
                  const struct spec *const *chain, size_t n);
void keys_check_worker(struct parse *, struct spec *);
void policy_check_liveness(struct parse *, struct spec *);

/* policy.c: backoff and circuit, the maps of DESIGN §9 */
void policy_backoff(struct parse *, const struct key *, yaml_node_t *v,
                    struct spec *, int depth);
void policy_circuit(struct parse *, const struct key *, yaml_node_t *v,
                    struct spec *, int depth);

/* stopsig.c: stop_signal, success_exit */
void stop_signal_key(struct parse *, const struct key *, yaml_node_t *v,
                     struct spec *, int depth);
void success_exit_key(struct parse *, const struct key *, yaml_node_t *v,
                      struct spec *, int depth);

/* privs.c: user, group, umask, limits, max_memory, control (DESIGN §13) */
void privs_identity(struct parse *, const struct key *, yaml_node_t *v,
                    struct spec *, int depth);
void privs_umask(struct parse *, const struct key *, yaml_node_t *v,
                 struct spec *, int depth);
void privs_limits(struct parse *, const struct key *, yaml_node_t *v,
                  struct spec *, int depth);
void privs_max_memory(struct parse *, const struct key *, yaml_node_t *v,
                      struct spec *, int depth);
/* settings.c: a worker's own log_max and log_keep */
void settings_worker_log(struct parse *, const struct key *, yaml_node_t *v,
                         struct spec *, int depth);
void privs_control(struct parse *, const struct key *, yaml_node_t *v,
                   struct spec *, int depth);
/* template.c: a supervisor's dynamic children (DESIGN §12) */
void envfile_key(struct parse *, const struct key *, yaml_node_t *v,
                 struct spec *, int depth);
void template_parse(struct parse *, const struct key *, yaml_node_t *v,
                    struct spec *, int depth);
void template_max_children(struct parse *, const struct key *, yaml_node_t *v,
                           struct spec *, int depth);
void template_spawn_from(struct parse *, const struct key *, yaml_node_t *v,
                         struct spec *, int depth);
/* Defaults handed to the template, and what only the linked tree shows. */
void template_link(struct parse *, struct spec *sup,
                   const struct spec *const *chain, size_t n);
/* progress_keys.c: stall, loop, budget, extend, recycle (DESIGN §10) */
void progress_keys_loop(struct parse *, const struct key *, yaml_node_t *v,
                        struct spec *, int depth);
void progress_keys_budget(struct parse *, const struct key *, yaml_node_t *v,
                          struct spec *, int depth);
void progress_keys_check(struct parse *, struct spec *);
bool progress_keys_equal(const struct spec *, const struct spec *);
void progress_keys_print(const struct spec *, FILE *);
void progress_keys_print_budget(const struct budget_spec *, FILE *);

/* ckptkey.c: checkpoint: {max, keep, poison_after} (DESIGN §11) */
void ckptkey_parse(struct parse *, const struct key *, yaml_node_t *v,
                   struct spec *, int depth);

/* settings.c: the agentsupd: document */
void settings_parse(struct parse *, yaml_node_t *v, yaml_node_t *at);

/* spec.c: a spec's life */
/* The loader's writable view of a spec's policy (its own until
 * spec_intern shares it), and where one key's value lives. */
struct policy *spec_pol(const struct spec *);
void *spec_key_addr(const struct spec *, const struct key *);
/* Share one policy among the specs of the tree whose policies are equal
 * (intern.c): each kept one in the heap, none left in a pool. */
void spec_intern(struct spec *root);
/* s, just parsed (or copied), borrows its command from prev, declared (or
 * copied) just before it, if the two are equal. prev must live as long as
 * s (link.c frees a worker its `instances:` copies replace only after all
 * its siblings are copied). */
void spec_share_argv(struct spec *prev, struct spec *s);
void spec_share_policy(struct spec *dst, const struct spec *src);
/* One reference to a policy less; freed with the last (one of a pool's
 * goes with the pool). */
void spec_pol_unref(const struct policy *);
/* A heap copy of a pool's policy, with one reference: spec_intern's. */
struct policy *spec_pol_unpool(const struct policy *);
/* After the load's last spec_free or spec_intern: its policies' pages. */
void spec_pool_free(struct spec_pool *);
/* Its policy in p's pool (p NULL: in the heap, as outside a load). */
struct spec *spec_new(struct parse *p, enum node_kind);
struct spec *spec_clone(const struct spec *, struct spec_pool *);
void spec_free(struct spec *);
size_t spec_bytes(const struct spec *);
size_t spec_key_bytes(const struct spec *, const struct key *);
void spec_copy_key(struct spec *dst, const struct spec *src,
                   const struct key *);
char **spec_strv_dup(char *const *);

/* link.c: the documents into one tree */
void link_tree(struct parse *);

/* scalar.c: strict types */
int scalar_uint(const char *, uint64_t max, uint64_t *);
int scalar_number(const char *, double max, double *);
int scalar_bool(const char *, bool *);
int scalar_enum(const char *const *names, const char *);
bool scalar_name_ok(const char *);
bool scalar_env_key_ok(const char *, size_t len);
/* ${VAR} expanded for the variable whose name is namelen bytes long. */
int scalar_expand(const char *,
                  const char *(*get)(void *, const char *, size_t), void *ctx,
                  size_t namelen, char **out, char *why, size_t whylen);

#endif
