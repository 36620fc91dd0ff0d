/*
 * test_config_keys.c - the pure parser from memory: every key's good and bad
 * values (table-driven), merge keys and aliases, the bounds (billion laughs,
 * 150,000 keys, the error cap), ${VAR}, instances and defaults.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"

static const char *const test_env[] = {
        "PATH=/usr/bin:/bin", "HOME=/home/a", "EMPTY=",
        "HOME=/second",       "WEIRD",        NULL};

static struct config *
parse(const char *yaml, struct config_errors *errs)
{
	struct config_source src = {"a.yaml", yaml, strlen(yaml)};

	memset(errs, 0, sizeof *errs);
	return config_parse(&src, 1, test_env, errs);
}

static void
dump(const struct config_errors *errs)
{
	for (size_t i = 0; i < errs->count; i++)
		fprintf(stderr, "got: %s\n", errs->msgs[i]);
}

/* Parses without error; the caller frees. */
static struct config *
parse_ok(const char *yaml)
{
	struct config_errors errs;
	struct config *cfg = parse(yaml, &errs);

	dump(&errs);
	assert_non_null(cfg);
	assert_int_equal(errs.total, 0);
	return cfg;
}

/* Refused, and the first error contains want. */
static void
parse_bad(const char *yaml, const char *want)
{
	struct config_errors errs;
	struct config *cfg = parse(yaml, &errs);

	if (errs.count == 0 || strstr(errs.msgs[0], want) == NULL) {
		dump(&errs);
		fprintf(stderr, "want: %s\nin:\n%s\n", want, yaml);
	}
	assert_null(cfg);
	assert_true(errs.count >= 1);
	assert_non_null(strstr(errs.msgs[0], want));
	config_errors_clear(&errs);
}

/* The only worker of a one-worker document. */
static struct spec *
worker(struct config *cfg)
{
	return cfg->root->children[0];
}

/* --- every key, good values ------------------------------------------- */

struct good {
	const char *keys; /* appended to "worker: w\ncommand: x\n" */
	void (*check)(const struct spec *);
};

static void
chk_restart(const struct spec *s)
{
	assert_int_equal(s->restart, RESTART_TEMPORARY);
}
static void
chk_shutdown(const struct spec *s)
{
	assert_int_equal(s->shutdown_ms, 2500);
}
static void
chk_brutal(const struct spec *s)
{
	assert_int_equal(s->shutdown_ms, SHUTDOWN_BRUTAL_KILL);
}
static void
chk_heartbeat(const struct spec *s)
{
	assert_int_equal(s->heartbeat_ms, 500);
	assert_int_equal(s->heartbeat_timeout_ms, 1500);
}
static void
chk_hb_timeout(const struct spec *s)
{
	assert_int_equal(s->heartbeat_timeout_ms, 60000);
}
static void
chk_start(const struct spec *s)
{
	assert_int_equal(s->start_timeout_ms, 3600000);
}
static void
chk_drain(const struct spec *s)
{
	assert_int_equal(s->drain_timeout_ms, 0);
}
static void
chk_dir(const struct spec *s)
{
	assert_string_equal(s->directory, "/srv");
}
static void
chk_out(const struct spec *s)
{
	assert_int_equal(s->out.mode, OUTPUT_NULL);
	assert_int_equal(s->err.mode, OUTPUT_FILE);
	assert_string_equal(s->err.path, "e.log");
}
static void
chk_env(const struct spec *s)
{
	assert_string_equal(s->env[0], "A=no");
	assert_string_equal(s->env[1], "B=");
	assert_null(s->env[2]);
}
static void
chk_significant(const struct spec *s)
{
	assert_true(s->significant);
}
static void
chk_backoff_default(const struct spec *s)
{
	assert_true(s->backoff.enabled);
	assert_int_equal(s->backoff.initial_ms, 100);
	assert_int_equal(s->backoff.max_ms, 30000);
	assert_true(s->backoff.multiplier == 2.0);
	assert_int_equal(s->backoff.jitter, JITTER_FULL);
	assert_int_equal(s->backoff.reset_after_ms, 60000);
	assert_int_equal(s->backoff.retry_after_max_ms, 600000);
	assert_false(s->circuit.enabled);
	assert_false(s->significant);
}
static void
chk_backoff_none(const struct spec *s)
{
	assert_false(s->backoff.enabled);
}
static void
chk_backoff_map(const struct spec *s)
{
	assert_true(s->backoff.enabled);
	assert_int_equal(s->backoff.initial_ms, 1000);
	assert_int_equal(s->backoff.max_ms, 60000);
	assert_true(s->backoff.multiplier == 1.5);
	assert_int_equal(s->backoff.jitter, JITTER_EQUAL);
	assert_int_equal(s->backoff.reset_after_ms, 0);
	assert_int_equal(s->backoff.retry_after_max_ms, 120000);
}
static void
chk_circuit(const struct spec *s)
{
	assert_true(s->circuit.enabled);
	assert_int_equal(s->circuit.failures, 5);
	assert_int_equal(s->circuit.window_ms, 600000);
	assert_int_equal(s->circuit.open_ms, 60000);
	assert_int_equal(s->circuit.open_max_ms, 1800000);
	assert_int_equal(s->circuit.probe_stable_ms, 10000);
}
static void
chk_circuit_map(const struct spec *s)
{
	assert_int_equal(s->circuit.failures, 2);
	assert_int_equal(s->circuit.window_ms, 1000);
	assert_int_equal(s->circuit.open_ms, 2000);
	assert_int_equal(s->circuit.open_max_ms, 4000);
	assert_int_equal(s->circuit.probe_stable_ms, 0);
}
static void
chk_command_list(const struct spec *s)
{
	assert_string_equal(s->argv[0], "a b");
	assert_string_equal(s->argv[1], "no");
	assert_null(s->argv[2]);
}

static const struct good goods[] = {
        {"", chk_backoff_default},
        {"restart: temporary\n", chk_restart},
        {"shutdown: 2.5s\n", chk_shutdown},
        {"shutdown: brutal_kill\n", chk_brutal},
        {"heartbeat: 500ms\n", chk_heartbeat},
        {"heartbeat: 1s\nheartbeat_timeout: 1m\n", chk_hb_timeout},
        {"start_timeout: 1h\n", chk_start},
        {"drain_timeout: 0\n", chk_drain},
        {"directory: /srv\n", chk_dir},
        {"stdout: 'null'\nstderr: e.log\n", chk_out},
        {"environment: {A: no, B: ''}\n", chk_env},
        {"significant: true\n", chk_significant},
        {"backoff: none\n", chk_backoff_none},
        {"backoff: {initial: 1s, max: 1m, multiplier: 1.5, jitter: equal,"
         " reset_after: 0, retry_after_max: 2m}\n",
         chk_backoff_map},
        {"circuit: {failures: 5}\n", chk_circuit},
        {"circuit: {failures: 2, window: 1s, open: 2s, open_max: 4s, "
         "probe_stable: 0}\n",
         chk_circuit_map},
};

static void
test_good_values(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof goods / sizeof *goods; i++) {
		char *yaml;
		struct config *cfg;

		assert_true(asprintf(&yaml, "worker: w\ncommand: x\n%s",
		                     goods[i].keys) > 0);
		cfg = parse_ok(yaml);
		goods[i].check(worker(cfg));
		config_free(cfg);
		free(yaml);
	}
	struct config *cfg =
	        parse_ok("worker: w\ncommand: ['a b', no]\n"); /* a list */
	chk_command_list(worker(cfg));
	config_free(cfg);
}

/* --- every key, bad values -------------------------------------------- */

struct bad {
	const char *yaml;
	const char *want;
};

#define W "worker: w\ncommand: x\n"
static const struct bad bads[] = {
        {W "restart: always\n", "a.yaml:3:10: restart: unknown value"},
        {W "shutdown: soon\n", "a.yaml:3:11: shutdown: bad duration"},
        {W "shutdown: -1s\n", "shutdown: bad duration"},
        {W "heartbeat: 0\n", "heartbeat: must be more than zero"},
        {W "heartbeat: 0.0s\n", "heartbeat: must be more than zero"},
        {W "heartbeat_timeout: 1s\n", "heartbeat_timeout without heartbeat"},
        {W "start_timeout: [1s]\n", "start_timeout: expected a single value"},
        {W "drain_timeout: 1.5ms\n", "drain_timeout: bad duration"},
        {W "directory: ''\n", "directory: empty path"},
        {W "stdout: ''\n", "stdout: want inherit, null or a file path"},
        {W "environment: [A]\n", "environment: expected a mapping"},
        {W "environment: {1A: x}\n", "bad variable name \"1A\""},
        {W "environment: {A: [x]}\n", "environment: expected a single"},
        {W "environment: {AGENTSUP_NAME: x}\n", "is set by agentsupd"},
        {W "significant: yes\n", "significant: want true or false"},
        {W "significant: 1\n", "significant: want true or false"},
        {W "backoff: off\n", "backoff: want none or a mapping"},
        {W "backoff: {initial: 0}\n", "backoff.initial: must be more"},
        {W "backoff: {multiplier: 0.5}\n", "backoff.multiplier: want a "
                                           "number from 1"},
        {W "backoff: {multiplier: 1e3}\n", "backoff.multiplier"},
        {W "backoff: {multiplier: .nan}\n", "backoff.multiplier"},
        {W "backoff: {jitter: half}\n", "backoff.jitter: unknown value"},
        {W "backoff: {initial: 1m, max: 1s}\n", "initial is longer than max"},
        {W "backoff: {maximum: 1s}\n", "backoff: unknown key \"maximum\""},
        {W "circuit: {window: 1m}\n", "circuit: failures is required"},
        {W "circuit: {failures: 0}\n", "circuit.failures: want a whole"},
        {W "circuit: {failures: 3, open: 1h}\n", "open is longer than"},
        {W "circuit: 3\n", "circuit: want none or a mapping"},
        {W "instances: 0\n", "instances: want a whole number from 1"},
        {W "instances: 1001\n", "instances: want a whole number from 1"},
        {W "instances: two\n", "instances: want a whole number"},
        {W "strategy: one_for_all\n", "unknown key \"strategy\" for a worker"},
        {W "defaults: {}\n", "unknown key \"defaults\" for a worker"},
        {"supervisor: s\nstrategy: one_for_some\n", "a.yaml:2:11: strategy"},
        {"supervisor: s\nintensity: 100001\n", "intensity: want a whole"},
        {"supervisor: s\nperiod: 0s\n", "period: must be more than zero"},
        {"supervisor: s\nchildren: {a: 1}\n", "children: expected a list"},
        {"supervisor: s\ncommand: x\n", "unknown key \"command\" for a "
                                        "supervisor"},
        {"supervisor: s\nsignificant: maybe\n", "significant: want true"},
        {"supervisor: s\ndefaults: {strategy: one_for_all}\n",
         "defaults: \"strategy\" is not a worker key"},
        {"supervisor: s\ndefaults: {worker: x}\n",
         "defaults: \"worker\" is not a worker key"},
        {"supervisor: s\ndefaults: {parent: x}\n",
         "defaults: \"parent\" is not a worker key"},
        {"supervisor: s\ndefaults: {colour: red}\n",
         "defaults: \"colour\" is not a worker key"},
        {"supervisor: s\ndefaults: {shutdown: x}\n", "shutdown: bad duration"},
        {"supervisor: s\ndefaults: [a]\n", "defaults: expected a mapping"},
        {"agentsupd: {max_frame: 10}\n", "max_frame: want a byte count"},
        {"agentsupd: {socket: ''}\n", "socket: empty path"},
        {"agentsupd: {colour: red}\n", "unknown key \"colour\" in agentsupd"},
        {"agentsupd: {socket: a, socket: b}\n", "duplicate key \"socket\""},
};
#undef W

static void
test_bad_values(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof bads / sizeof *bads; i++)
		parse_bad(bads[i].yaml, bads[i].want);
}

/* --- anchors, aliases, merge keys --------------------------------------- */

static void
test_merge_keys(void **state)
{
	struct config *cfg;
	struct spec *s;

	(void)state;
	cfg = parse_ok("supervisor: s\n"
	               "children:\n"
	               "  - &base {worker: a, command: [run, it], "
	               "heartbeat: 1s, shutdown: 9s}\n"
	               "  - {<<: *base, worker: b}\n"
	               "  - <<: [*base, {stdout: 'null', shutdown: 1s}]\n"
	               "    worker: c\n"
	               "  - <<: [{shutdown: 1s}, {shutdown: 2s}]\n"
	               "    <<: *base\n"
	               "    worker: d\n"
	               "  - <<: {<<: {shutdown: 3s, drain_timeout: 4s},"
	               " shutdown: 5s}\n"
	               "    worker: e\n"
	               "    command: x\n"
	               "  - worker: f\n"
	               "    command: [y]\n"
	               "    environment: &env {A: '1'}\n"
	               "  - {worker: g, command: x, environment: *env}\n"
	               "  - {worker: h, command: x, environment: {<<: *env, "
	               "B: '2', A: '3'}}\n");
	s = cfg->root;
	assert_int_equal(s->nchildren, 8);
	assert_string_equal(s->children[1]->name, "b");
	assert_string_equal(s->children[1]->argv[1], "it");
	assert_int_equal(s->children[1]->heartbeat_ms, 1000);
	assert_int_equal(s->children[2]->out.mode, OUTPUT_NULL);
	assert_int_equal(s->children[2]->shutdown_ms, 9000); /* first wins */
	/* the later `<<` is merged after the earlier one: first source wins */
	assert_int_equal(s->children[3]->shutdown_ms, 1000);
	assert_int_equal(s->children[4]->shutdown_ms, 5000);
	assert_int_equal(s->children[4]->drain_timeout_ms, 4000);
	assert_string_equal(s->children[5]->argv[0], "y");
	assert_string_equal(s->children[6]->env[0], "A=1");
	assert_string_equal(s->children[7]->env[0], "B=2");
	assert_string_equal(s->children[7]->env[1], "A=3"); /* own key wins */
	assert_null(s->children[7]->env[2]);
	config_free(cfg);
}

static void
test_merge_errors(void **state)
{
	(void)state;
	parse_bad("worker: w\ncommand: x\n<<: 3\n",
	          "a.yaml:3:5: <<: expected a mapping or a list of mappings");
	parse_bad("worker: w\ncommand: x\n<<: [{a: 1}, 2]\n",
	          "<<: expected a mapping or a list of mappings");
	parse_bad("worker: w\ncommand: x\n'<<': {heartbeat: 1s}\n",
	          "unknown key \"<<\" for a worker"); /* quoted: a plain key */
	parse_bad("worker: w\ncommand: x\n<<: {bogus: 1}\n",
	          "unknown key \"bogus\"");
	parse_bad("worker: w\n<<: {command: y}\ncommand: x\ncommand: z\n",
	          "a.yaml:4:1: duplicate key \"command\"");
	parse_bad("supervisor: s\nchildren:\n  - &a {worker: a, command: x}\n"
	          "  - *a\n",
	          "duplicate name \"a\"");
	/* a mapping merged into itself: the nesting is bounded */
	parse_bad("worker: w\ncommand: x\nenvironment: &e {<<: *e}\n", "");
}

/* --- bounds ------------------------------------------------------------- */

static void
assert_few_errors(const char *yaml, const char *want)
{
	struct config_errors errs;
	struct config *cfg = parse(yaml, &errs);

	assert_null(cfg);
	if (errs.count > CONFIG_MAX_ERRORS + 1 || errs.count == 0)
		dump(&errs);
	assert_true(errs.count >= 1 && errs.count <= CONFIG_MAX_ERRORS + 1);
	if (want != NULL) {
		bool found = false;
		for (size_t i = 0; i < errs.count; i++)
			found |= strstr(errs.msgs[i], want) != NULL;
		if (!found)
			dump(&errs);
		assert_true(found);
	}
	config_errors_clear(&errs);
}

/* Nested anchors, each level 10 aliases of the one below, defined inline
 * at its first use: 10^levels nodes if each alias were walked. */
static void
laughs_level(FILE *f, int lvl, const char *open, const char *close,
             const char *leaf)
{
	if (lvl == 0) {
		fprintf(f, "&x0 %s", leaf);
		return;
	}
	fprintf(f, "&x%d ", lvl);
	fprintf(f, open, lvl);
	laughs_level(f, lvl - 1, open, close, leaf);
	for (int i = 1; i < 10; i++)
		fprintf(f, ", *x%d", lvl - 1);
	fputs(close, f);
}

static char *
laughs_n(int levels, const char *head, const char *open, const char *close,
         const char *leaf, const char *tail)
{
	char *yaml = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&yaml, &len);

	assert_non_null(f);
	fputs(head, f);
	laughs_level(f, levels, open, close, leaf);
	fputs(tail, f);
	fclose(f);
	return yaml;
}

static char *
laughs(const char *head, const char *open, const char *close, const char *leaf,
       const char *tail)
{
	return laughs_n(9, head, open, close, leaf, tail);
}

static void
test_billion_laughs(void **state)
{
	char *yaml;

	(void)state;
	/* supervisors of supervisors through aliases: the node cap */
	yaml = laughs("supervisor: top\nchildren:\n  - ",
	              "{supervisor: s%d, children: [", "]}",
	              "{worker: w, command: x}", "\n");
	assert_few_errors(yaml, "more than 10000 workers and supervisors");
	free(yaml);
	/* merge keys of merge keys: the cap on keys once merged */
	yaml = laughs("worker: w\ncommand: x\nenvironment: ",
	              "{A%d: '1', <<: [", "]}", "{B: '1', C: '2'}", "\n");
	assert_few_errors(yaml, NULL);
	free(yaml);
	/* the classic: lists of lists, as a command */
	yaml = laughs("worker: w\ncommand: ", "[", "]", "lol", "\n");
	assert_few_errors(yaml, "command: expected a single value");
	free(yaml);
	/* as a command in a merged worker, repeated through children */
	yaml = laughs("supervisor: top\nchildren: ", "[", "]",
	              "{worker: w, command: [[]]}", "\n");
	assert_few_errors(yaml, NULL);
	free(yaml);
}

/* Thousands of errors: the first CONFIG_MAX_ERRORS, then a count. */
static void
test_error_cap(void **state)
{
	struct config_errors errs;
	char *yaml = NULL, *last;
	size_t len = 0;
	FILE *f = open_memstream(&yaml, &len);

	(void)state;
	assert_non_null(f);
	fputs("worker: w\ncommand: [", f);
	for (int i = 0; i < 3000; i++)
		fputs(i ? ", []" : "[]", f);
	fputs("]\n", f);
	fclose(f);
	assert_null(parse(yaml, &errs));
	assert_int_equal(errs.total, 3001); /* + "worker w: no command" */
	assert_int_equal(errs.count, CONFIG_MAX_ERRORS + 1);
	last = errs.msgs[errs.count - 1];
	assert_string_equal(last, "... and 2981 more errors");
	assert_non_null(strstr(errs.msgs[0], "a.yaml:2:11: command: expected"));
	config_errors_clear(&errs);
	free(yaml);
}

/* The issue's file: one worker, 150,000 keys, 1.8 MB. */
static void
test_huge_map(void **state)
{
	struct config_errors errs;
	char *yaml = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&yaml, &len);

	(void)state;
	assert_non_null(f);
	fputs("worker: w\ncommand: x\nenvironment:\n", f);
	for (int i = 0; i < 150000; i++)
		fprintf(f, "  K%06d: v\n", i);
	fclose(f);
	assert_true(len > 1800000);
	assert_null(parse(yaml, &errs));
	assert_int_equal(errs.count, 1);
	assert_non_null(strstr(errs.msgs[0], "a.yaml:0:0: "));
	assert_non_null(strstr(errs.msgs[0], "more than the 1048576 bytes"));
	config_errors_clear(&errs);
	/* under the file cap, over the keys cap: one error, no n^2 scan */
	yaml[60000] = '\0';
	assert_null(parse(yaml, &errs));
	assert_int_equal(errs.count, 1);
	assert_non_null(strstr(errs.msgs[0], "a.yaml:4:3: environment: "));
	assert_non_null(strstr(errs.msgs[0], "keys, more than 1024"));
	config_errors_clear(&errs);
	free(yaml);
}

/* The most keys a mapping may hold, all distinct: accepted. */
static void
test_map_at_cap(void **state)
{
	struct config *cfg;
	char *yaml = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&yaml, &len);

	(void)state;
	assert_non_null(f);
	fputs("worker: w\ncommand: x\nenvironment:\n", f);
	for (int i = 0; i < CONFIG_MAX_MAP_KEYS; i++)
		fprintf(f, "  K%d: v\n", i);
	fclose(f);
	cfg = parse_ok(yaml);
	assert_string_equal(worker(cfg)->env[CONFIG_MAX_MAP_KEYS - 1],
	                    "K1023=v");
	config_free(cfg);
	free(yaml);
}

static void
test_list_cap(void **state)
{
	char *yaml = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&yaml, &len);

	(void)state;
	assert_non_null(f);
	fputs("supervisor: s\nchildren:\n", f);
	for (int i = 0; i <= CONFIG_MAX_LIST; i++)
		fprintf(f, "  - {worker: w%d, command: x}\n", i);
	fclose(f);
	parse_bad(yaml, "a.yaml:3:3: children: 4097 items, more than 4096");
	free(yaml);
}

/* --- ${VAR} ------------------------------------------------------------- */

struct expansion {
	const char *value;
	const char *want; /* the value, or NULL: an error containing err */
	const char *err;
};

static const struct expansion expansions[] = {
        {"/opt/bin:${PATH}", "/opt/bin:/usr/bin:/bin", NULL},
        {"${HOME}/x", "/home/a/x", NULL}, /* the first of two wins */
        {"$${HOME}", "${HOME}", NULL},
        {"a$$b$$", "a$b$", NULL},
        {"${EMPTY}", "", NULL},
        {"${NOPE:-fallback}", "fallback", NULL},
        {"${NOPE:-}", "", NULL},
        {"${HOME:-x}", "/home/a", NULL},
        {"${NOPE}", NULL, "${NOPE} is not set in agentsupd's environment"},
        {"${WEIRD}", NULL, "${WEIRD} is not set"},
        {"cost: 5$", NULL, "a lone '$'"},
        {"$HOME", NULL, "a lone '$'"},
        {"${PATH", NULL, "unterminated ${"},
        {"${1X}", NULL, "bad variable name in \"${1X}\""},
        {"${}", NULL, "bad variable name"},
};

static void
test_env_expansion(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof expansions / sizeof *expansions; i++) {
		const struct expansion *e = &expansions[i];
		char *yaml, *want;
		struct config *cfg;

		assert_true(asprintf(&yaml,
		                     "worker: w\ncommand: x\nenvironment:\n"
		                     "  V: '%s'\n",
		                     e->value) > 0);
		if (e->want == NULL) {
			parse_bad(yaml, e->err);
			assert_non_null(
			        strstr(e->err, "")); /* keep the table */
		} else {
			cfg = parse_ok(yaml);
			assert_true(asprintf(&want, "V=%s", e->want) > 0);
			assert_string_equal(worker(cfg)->env[0], want);
			free(want);
			config_free(cfg);
		}
		free(yaml);
	}
}

/* A ${VAR} that would expand past what Linux takes for one variable. */
static void
test_env_expansion_bounded(void **state)
{
	const char *env[] = {NULL, NULL};
	char *big = malloc(70000 + 5), *yaml;
	struct config_errors errs;
	struct config_source src;

	(void)state;
	memcpy(big, "BIG=", 4);
	memset(big + 4, 'x', 70000);
	big[70004] = '\0';
	env[0] = big;
	yaml = "worker: w\ncommand: x\nenvironment: {V: '${BIG}${BIG}'}\n";
	src = (struct config_source){"a.yaml", yaml, strlen(yaml)};
	memset(&errs, 0, sizeof errs);
	assert_null(config_parse(&src, 1, env, &errs));
	assert_non_null(strstr(errs.msgs[0], "longer than 131072 bytes"));
	config_errors_clear(&errs);
	free(big);
}

/* --- instances ---------------------------------------------------------- */

static void
test_instances(void **state)
{
	struct config *cfg;
	struct spec *s;

	(void)state;
	cfg = parse_ok("supervisor: s\nchildren:\n"
	               "  - {worker: first, command: x}\n"
	               "  - {worker: pool, command: [run], instances: 3,"
	               " heartbeat: 1s}\n"
	               "  - {worker: last, command: x}\n"
	               "---\nworker: solo\ncommand: x\ninstances: 1\n"
	               "parent: s\n");
	s = cfg->root;
	assert_int_equal(s->nchildren, 6);
	assert_string_equal(s->children[0]->name, "first");
	for (unsigned i = 1; i <= 3; i++) {
		char name[16];
		snprintf(name, sizeof name, "pool-%u", i);
		assert_string_equal(s->children[i]->name, name);
		assert_int_equal(s->children[i]->instance, i);
		assert_int_equal(s->children[i]->instances, 3);
		assert_string_equal(s->children[i]->argv[0], "run");
		assert_int_equal(s->children[i]->heartbeat_timeout_ms, 3000);
	}
	assert_string_equal(s->children[4]->name, "last");
	assert_int_equal(s->children[4]->instance, 0);
	assert_string_equal(s->children[5]->name, "solo-1");
	config_free(cfg);
	parse_bad("supervisor: s\nchildren:\n"
	          "  - {worker: p, command: x, instances: 2}\n"
	          "  - {worker: p-2, command: x}\n",
	          "duplicate name \"p-2\"");
	parse_bad(
	        "worker: "
	        "a23456789012345678901234567890123456789012345678901234567890\n"
	        "command: x\ninstances: 2\n",
	        "names NAME-N must fit in 64 characters");
	parse_bad(
	        "supervisor: s\nchildren:\n"
	        "  - {worker: a, command: x, instances: 1000}\n"
	        "  - {worker: b, command: x, instances: 1000}\n"
	        "  - &c {supervisor: c, defaults: {instances: 1000}, children:"
	        " [{worker: c, command: x}]}\n"
	        "  - {<<: *c, supervisor: d}\n"
	        "  - {<<: *c, supervisor: e}\n"
	        "  - {<<: *c, supervisor: f}\n"
	        "  - {<<: *c, supervisor: g}\n"
	        "  - {<<: *c, supervisor: h}\n"
	        "  - {<<: *c, supervisor: i}\n"
	        "  - {<<: *c, supervisor: j}\n"
	        "  - {<<: *c, supervisor: k}\n",
	        "more than 10000 workers and supervisors");
}

/* --- defaults ----------------------------------------------------------- */

static void
test_defaults(void **state)
{
	struct config *cfg;
	struct spec *s, *inner, *late;

	(void)state;
	cfg = parse_ok("supervisor: s\n"
	               "defaults:\n"
	               "  shutdown: 1s\n"
	               "  heartbeat: 2s\n"
	               "  environment: {A: '1'}\n"
	               "  backoff: none\n"
	               "  circuit: {failures: 3}\n"
	               "  command: [default-cmd]\n"
	               "children:\n"
	               "  - {worker: plain}\n"
	               "  - {worker: own, command: x, shutdown: 3s,"
	               " environment: {B: '2'}, backoff: {max: 1m}}\n"
	               "  - supervisor: inner\n"
	               "    defaults: {shutdown: 7s, restart: transient}\n"
	               "    children:\n"
	               "      - {worker: deep}\n"
	               "      - {worker: deeper, restart: permanent}\n"
	               "---\n"
	               "worker: late\nparent: inner\ncommand: y\n");
	s = cfg->root;
	assert_string_equal(s->children[0]->argv[0], "default-cmd");
	assert_int_equal(s->children[0]->shutdown_ms, 1000);
	assert_int_equal(s->children[0]->heartbeat_ms, 2000);
	assert_int_equal(s->children[0]->heartbeat_timeout_ms, 6000);
	assert_string_equal(s->children[0]->env[0], "A=1");
	assert_false(s->children[0]->backoff.enabled);
	assert_int_equal(s->children[0]->circuit.failures, 3);
	/* the worker's own keys win, whole: no merging of maps */
	assert_int_equal(s->children[1]->shutdown_ms, 3000);
	assert_string_equal(s->children[1]->env[0], "B=2");
	assert_null(s->children[1]->env[1]);
	assert_true(s->children[1]->backoff.enabled);
	assert_int_equal(s->children[1]->backoff.max_ms, 60000);
	assert_int_equal(s->children[1]->backoff.initial_ms, 100);
	/* nested: the nearer supervisor's defaults win */
	inner = s->children[2];
	assert_int_equal(inner->restart, RESTART_PERMANENT); /* not for sups */
	assert_int_equal(inner->children[0]->shutdown_ms, 7000);
	assert_int_equal(inner->children[0]->heartbeat_ms, 2000);
	assert_int_equal(inner->children[0]->restart, RESTART_TRANSIENT);
	assert_int_equal(inner->children[1]->restart, RESTART_PERMANENT);
	/* attached by parent: from another document, still below */
	late = inner->children[2];
	assert_string_equal(late->name, "late");
	assert_int_equal(late->shutdown_ms, 7000);
	assert_string_equal(late->argv[0], "y");
	config_free(cfg);
	/* a worker that gets its command from nowhere */
	parse_bad("supervisor: s\ndefaults: {shutdown: 1s}\n"
	          "children: [{worker: w}]\n",
	          "a.yaml:3:12: worker w: no command");
	/* inherited heartbeat_timeout shorter than the worker's heartbeat */
	parse_bad("supervisor: s\ndefaults: {heartbeat: 1s, heartbeat_timeout: "
	          "2s}\nchildren: [{worker: w, command: x, heartbeat: 5s}]\n",
	          "heartbeat_timeout is shorter than heartbeat");
}

/* --- the new keys in comparisons and --check ---------------------------- */

static void
test_policy_equal_and_print(void **state)
{
	struct config *a, *b;
	char *out = NULL;
	size_t len = 0;
	FILE *f;

	(void)state;
	a = parse_ok("worker: w\ncommand: x\n");
	b = parse_ok("worker: w\ncommand: x\nbackoff: {jitter: none}\n");
	assert_false(spec_policy_equal(worker(a), worker(b)));
	assert_true(spec_process_equal(worker(a), worker(b)));
	config_free(b);
	b = parse_ok("worker: w\ncommand: x\ncircuit: {failures: 1}\n");
	assert_false(spec_policy_equal(worker(a), worker(b)));
	config_free(b);
	b = parse_ok("worker: w\ncommand: x\nsignificant: true\n");
	assert_false(spec_policy_equal(worker(a), worker(b)));
	config_free(b);
	b = parse_ok("worker: w\ncommand: x\nbackoff: {initial: 100ms}\n");
	assert_true(spec_policy_equal(worker(a), worker(b)));
	config_free(b);
	config_free(a);

	a = parse_ok("supervisor: s\nchildren:\n"
	             "  - {worker: a, command: x, backoff: none,"
	             " significant: true}\n"
	             "  - {worker: b, command: x, circuit: {failures: 5},"
	             " backoff: {initial: 1s, max: 1m, multiplier: 1.5}}\n");
	f = open_memstream(&out, &len);
	config_print(a, f);
	fclose(f);
	assert_non_null(strstr(out, "[backoff none]"));
	assert_non_null(strstr(out, "[significant]"));
	assert_non_null(strstr(out,
	                       "[circuit 5 in 10m, open 1m..30m, probe stable "
	                       "10s]"));
	assert_non_null(strstr(out, "[backoff 1s..1m x1.5 jitter full"));
	free(out);
	config_free(a);
}

/* Files given together: the first is the first in messages. */
static void
test_several_sources(void **state)
{
	struct config_source src[2] = {
	        {"d/a.yaml", "worker: a\ncommand: x\n", 21},
	        {"d/b.yaml", "worker: a\ncommand: x\n", 21},
	};
	struct config_errors errs = {0};

	(void)state;
	assert_null(config_parse(src, 2, NULL, &errs));
	assert_string_equal(errs.msgs[0], "d/b.yaml:1:1: duplicate name \"a\" "
	                                  "(first declared at d/a.yaml:1)");
	config_errors_clear(&errs);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_good_values),
	        cmocka_unit_test(test_bad_values),
	        cmocka_unit_test(test_merge_keys),
	        cmocka_unit_test(test_merge_errors),
	        cmocka_unit_test(test_billion_laughs),
	        cmocka_unit_test(test_error_cap),
	        cmocka_unit_test(test_huge_map),
	        cmocka_unit_test(test_map_at_cap),
	        cmocka_unit_test(test_list_cap),
	        cmocka_unit_test(test_env_expansion),
	        cmocka_unit_test(test_env_expansion_bounded),
	        cmocka_unit_test(test_instances),
	        cmocka_unit_test(test_defaults),
	        cmocka_unit_test(test_policy_equal_and_print),
	        cmocka_unit_test(test_several_sources),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
