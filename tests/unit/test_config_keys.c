/*
 * test_config_keys.c - the pure parser from memory: every key's good and bad
 * values (table-driven), ${VAR}, and the new keys in comparisons and in
 * --check's output. Expansion (merge keys, defaults, instances) and the caps
 * are in test_config_expand.c.
 */
#include "config_test.h"

/* --- every key, good values ------------------------------------------- */

struct good {
	const char *keys; /* appended to "worker: w\ncommand: x\n" */
	void (*check)(const struct spec *);
};

static void
chk_restart(const struct spec *s)
{
	assert_int_equal(s->pol->restart, RESTART_TEMPORARY);
}
static void
chk_shutdown(const struct spec *s)
{
	assert_int_equal(s->pol->shutdown_ms, 2500);
}
static void
chk_brutal(const struct spec *s)
{
	assert_int_equal(s->pol->shutdown_ms, SHUTDOWN_BRUTAL_KILL);
}
static void
chk_heartbeat(const struct spec *s)
{
	assert_int_equal(s->pol->heartbeat_ms, 500);
	assert_int_equal(s->pol->heartbeat_timeout_ms, 1500);
}
static void
chk_hb_timeout(const struct spec *s)
{
	assert_int_equal(s->pol->heartbeat_timeout_ms, 60000);
}
static void
chk_start(const struct spec *s)
{
	assert_int_equal(s->pol->start_timeout_ms, 3600000);
}
static void
chk_drain(const struct spec *s)
{
	assert_int_equal(s->pol->drain_timeout_ms, 0);
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
	assert_true(s->pol->significant);
}
static void
chk_backoff_default(const struct spec *s)
{
	assert_true(s->pol->backoff.enabled);
	assert_int_equal(s->pol->backoff.initial_ms, 100);
	assert_int_equal(s->pol->backoff.max_ms, 30000);
	assert_true(s->pol->backoff.multiplier == 2.0);
	assert_int_equal(s->pol->backoff.jitter, JITTER_FULL);
	assert_int_equal(s->pol->backoff.reset_after_ms, 60000);
	assert_int_equal(s->pol->backoff.retry_after_max_ms, 600000);
	assert_false(s->pol->circuit.enabled);
	assert_false(s->pol->significant);
}
static void
chk_backoff_none(const struct spec *s)
{
	assert_false(s->pol->backoff.enabled);
}
static void
chk_backoff_map(const struct spec *s)
{
	assert_true(s->pol->backoff.enabled);
	assert_int_equal(s->pol->backoff.initial_ms, 1000);
	assert_int_equal(s->pol->backoff.max_ms, 60000);
	assert_true(s->pol->backoff.multiplier == 1.5);
	assert_int_equal(s->pol->backoff.jitter, JITTER_EQUAL);
	assert_int_equal(s->pol->backoff.reset_after_ms, 0);
	assert_int_equal(s->pol->backoff.retry_after_max_ms, 120000);
}
static void
chk_circuit(const struct spec *s)
{
	assert_true(s->pol->circuit.enabled);
	assert_int_equal(s->pol->circuit.failures, 5);
	assert_int_equal(s->pol->circuit.window_ms, 600000);
	assert_int_equal(s->pol->circuit.open_ms, 60000);
	assert_int_equal(s->pol->circuit.open_max_ms, 1800000);
	assert_int_equal(s->pol->circuit.probe_stable_ms, 10000);
}
static void
chk_circuit_map(const struct spec *s)
{
	assert_int_equal(s->pol->circuit.failures, 2);
	assert_int_equal(s->pol->circuit.window_ms, 1000);
	assert_int_equal(s->pol->circuit.open_ms, 2000);
	assert_int_equal(s->pol->circuit.open_max_ms, 4000);
	assert_int_equal(s->pol->circuit.probe_stable_ms, 0);
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
        {W "ready_after: 0\n", "ready_after: must be more than zero"},
        {W "ready_after: 1s\nstart_timeout: 5s\n",
         "worker w: ready_after and start_timeout"},
        {W "drain_timeout: 1.5ms\n", "drain_timeout: bad duration"},
        /* Part I took any duration: one over the cap says so, not "bad" */
        {W "heartbeat: 1000000h\n",
         "a.yaml:3:12: heartbeat: \"1000000h\" is longer than 100 years, "
         "the longest duration"},
        {W "backoff: {max: 900000h}\n",
         "backoff.max: \"900000h\" is longer than 100 years"},
        {W "directory: ''\n", "directory: empty path"},
        {W "stdout: ''\n",
         "stdout: want capture, inherit, null or a file path"},
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
        /* relative: agentsupd's working directory, not agentsupctl -c's */
        {"agentsupd: {socket: ctl.sock}\n", "socket: want an absolute path"},
        {"agentsupd: {log_max: 100}\n", "log_max: want a size"},
        {"agentsupd: {log_max: 10XB}\n", "log_max: want a size"},
        {"agentsupd: {log_max: 2TiB}\n", "log_max: want a size"},
        {"agentsupd: {log_tail: 5MiB}\n", "log_tail: want a size up to 4MiB"},
        {"agentsupd: {log_keep: -1}\n", "log_keep: want a count"},
        {"agentsupd: {log_dir: ''}\n", "log_dir: empty path"},
        {"agentsupd: {log_time: yes}\n", "log_time: want true or false"},
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
        /* the default is expanded too, to its own closing brace (it was
         * cut at the first '}': "${HOME/logs}") */
        {"${NOPE:-${HOME}/logs}", "/home/a/logs", NULL},
        {"${NOPE:-${NADA:-deep}/x}y", "deep/xy", NULL},
        {"${NOPE:-a$$b}", "a$b", NULL},
        {"${NOPE:-x}y}", "xy}", NULL},
        /* a default not taken: checked, its variables not looked up */
        {"${HOME:-${NOPE}}", "/home/a", NULL},
        {"${HOME:-$x}", NULL, "a lone '$'"},
        {"${NOPE:-${NADA}}", NULL, "${NADA} is not set"},
        {"${NOPE:-${HOME}", NULL, "unterminated ${"},
        {"${NOPE:-${HOME:-x}", NULL, "unterminated ${"},
        {"${NOPE:-${1X}}", NULL, "bad variable name in \"${1X}\""},
        /* eight levels, and one too many */
        {"${A:-${B:-${C:-${D:-${E:-${F:-${G:-${H:-8}}}}}}}}", "8", NULL},
        {"${A:-${B:-${C:-${D:-${E:-${F:-${G:-${H:-${I:-9}}}}}}}}}", NULL,
         "${NAME:-word} nested deeper than 8 levels"},
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
	/* the same environment reordered is the same process (a reload of
	 * it restarted the worker); another value is not */
	config_free(a);
	a = parse_ok("worker: w\ncommand: x\nenvironment: {A: '1', B: '2'}\n");
	b = parse_ok("worker: w\ncommand: x\nenvironment: {B: '2', A: '1'}\n");
	assert_true(spec_process_equal(worker(a), worker(b)));
	config_free(b);
	b = parse_ok("worker: w\ncommand: x\nenvironment: {B: '2', A: '3'}\n");
	assert_false(spec_process_equal(worker(a), worker(b)));
	config_free(b);
	b = parse_ok("worker: w\ncommand: x\nenvironment: {A: '1'}\n");
	assert_false(spec_process_equal(worker(a), worker(b)));
	config_free(b);
	config_free(a);
	a = parse_ok("worker: w\ncommand: x\n");
	b = parse_ok("worker: w\ncommand: x\ncircuit: {failures: 1}\n");
	assert_false(spec_policy_equal(worker(a), worker(b)));
	config_free(b);
	b = parse_ok("worker: w\ncommand: x\nsignificant: true\n");
	assert_false(spec_policy_equal(worker(a), worker(b)));
	config_free(b);
	b = parse_ok("worker: w\ncommand: x\nautostart: false\n");
	assert_false(spec_policy_equal(worker(a), worker(b)));
	config_free(b);
	b = parse_ok("worker: w\ncommand: x\nbackoff: {initial: 100ms}\n");
	assert_true(spec_policy_equal(worker(a), worker(b)));
	config_free(b);
	config_free(a);

	a = parse_ok("supervisor: s\nchildren:\n"
	             "  - {worker: a, command: x, backoff: none,"
	             " significant: true, autostart: false}\n"
	             "  - {worker: b, command: x, circuit: {failures: 5},"
	             " backoff: {initial: 1s, max: 1m, multiplier: 1.5}}\n");
	f = open_memstream(&out, &len);
	config_print(a, f);
	fclose(f);
	assert_non_null(strstr(out, "[backoff none]"));
	assert_non_null(strstr(out, "[significant]"));
	assert_non_null(strstr(out, "[autostart: false]"));
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

/* autostart: a bool for workers and supervisors, not for a template
 * (a task starts when spawned) nor the root (it always starts). */
static void
test_autostart(void **state)
{
	struct config *cfg;

	(void)state;
	cfg = parse_ok("worker: w\ncommand: x\n");
	assert_true(worker(cfg)->pol->autostart);
	config_free(cfg);
	cfg = parse_ok("supervisor: root\nchildren:\n"
	               "  - {worker: w, command: x, autostart: false}\n");
	assert_false(worker(cfg)->pol->autostart);
	config_free(cfg);
	parse_bad("worker: w\ncommand: x\nautostart: later\n", "autostart");
	parse_bad("supervisor: root\nautostart: false\nchildren:\n"
	          "  - {worker: w, command: x}\n",
	          "autostart: false on the root");
	parse_bad("supervisor: root\nchildren:\n  - supervisor: pool\n"
	          "    template: {command: x, autostart: false}\n",
	          "\"autostart\" is not a key a template may have");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_good_values),
	        cmocka_unit_test(test_bad_values),
	        cmocka_unit_test(test_env_expansion),
	        cmocka_unit_test(test_policy_equal_and_print),
	        cmocka_unit_test(test_several_sources),
	        cmocka_unit_test(test_autostart),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
