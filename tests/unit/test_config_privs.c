/*
 * test_config_privs.c - the keys of DESIGN §13: user, group, umask, limits,
 * max_memory, control (a worker's) and contain, termination_log (settings):
 * typed values, refusals, inheritance through defaults, and comparisons.
 */
#include "config_test.h"

#define W "worker: w\ncommand: x\n"

static void
test_identity_and_umask(void **state)
{
	struct config *cfg = parse_ok(W "user: nobody\ngroup: '65534'\n"
	                                "umask: '027'\n");

	(void)state;
	assert_string_equal(worker(cfg)->user, "nobody");
	assert_string_equal(worker(cfg)->group, "65534");
	assert_int_equal(worker(cfg)->pol->umask_mode, 027);
	config_free(cfg);
	cfg = parse_ok(W);
	assert_null(worker(cfg)->user);
	assert_int_equal(worker(cfg)->pol->umask_mode, -1);
	config_free(cfg);
	parse_bad(W "user: ''\n", "user: want a name or a numeric id");
	parse_bad(W "user: -rf\n", "user: want a name");
	/* numeric ids a cast wraps: 4294967296 ran the worker as root */
	parse_bad(W "user: 4294967296\n", "user: 4294967296 is no id");
	parse_bad(W "group: '4294967296'\n", "group: 4294967296 is no id");
	parse_bad(W "user: 4294967295\n", "is no id"); /* (uid_t)-1 */
	parse_bad(W "user: 99999999999999999999999\n", "is no id");
	config_free(parse_ok(W "user: 4294967294\ngroup: 0\n"));
	parse_bad(W "umask: 8\n", "umask: want an octal mode");
	parse_bad(W "umask: '1000'\n", "umask: want an octal mode");
}

static void
test_limits_and_memory(void **state)
{
	struct config *cfg =
	        parse_ok(W "limits: {nofile: 4096, core: unlimited, "
	                   "memory: 1G}\nmax_memory: 512MiB\n");
	const struct spec *s = worker(cfg);

	(void)state;
	assert_int_equal(s->pol->limits.set, (1u << LIMIT_NOFILE) |
	                                             (1u << LIMIT_CORE) |
	                                             (1u << LIMIT_MEMORY));
	assert_int_equal(s->pol->limits.v[LIMIT_NOFILE], 4096);
	assert_true(s->pol->limits.v[LIMIT_CORE] == LIMIT_INFINITY);
	assert_int_equal(s->pol->limits.v[LIMIT_MEMORY], 1ull << 30);
	assert_int_equal(s->pol->max_memory, 512ull << 20);
	config_free(cfg);
	parse_bad(W "limits: {stack: 1}\n", "limits: unknown limit \"stack\"");
	parse_bad(W "limits: {nproc: 2k}\n", "limits: nproc: want a count");
	parse_bad(W "limits: {memory: 2X}\n", "limits: memory: want a size");
	parse_bad(W "limits: 5\n", "limits: expected a mapping");
	parse_bad(W "max_memory: 0\n", "max_memory: want a size");
	parse_bad(W "max_memory: 99999999999999999999\n",
	          "max_memory: want a size");
	parse_bad(W "max_memory: 17179869184T\n", "max_memory: want a size");
}

/* A worker's own log rotation, inherited through defaults; absent, the
 * settings' (0 and -1). */
static void
test_log_rotation_of_a_worker(void **state)
{
	struct config *cfg =
	        parse_ok("supervisor: root\ndefaults: {log_keep: 0}\n"
	                 "children:\n"
	                 "  - {worker: a, command: x, log_max: 1MiB}\n"
	                 "  - {worker: b, command: x, log_keep: 9}\n");
	const struct spec *a = cfg->root->children[0],
	                  *b = cfg->root->children[1];

	(void)state;
	assert_int_equal(a->pol->log_max, 1u << 20);
	assert_int_equal(a->pol->log_keep, 0);
	assert_int_equal(b->pol->log_max, 0);
	assert_int_equal(b->pol->log_keep, 9);
	config_free(cfg);
	cfg = parse_ok(W);
	assert_int_equal(worker(cfg)->pol->log_max, 0);
	assert_int_equal(worker(cfg)->pol->log_keep, -1);
	config_free(cfg);
	parse_bad(W "log_max: 1000\n", "log_max: want a size from 1024");
	parse_bad(W "log_max: 2TiB\n", "log_max: want a size from 1024");
	parse_bad(W "log_keep: 1001\n", "log_keep: want a count");
	parse_bad(W "log_keep: -1\n", "log_keep: want a count");
}

/* start_timeout and ready_after exclude each other, but a worker's own
 * one wins over the other inherited from defaults (a subtree whose
 * defaults have one could not use the other: neither can be set off). */
static void
test_readiness_own_key_wins_over_defaults(void **state)
{
	struct config *cfg =
	        parse_ok("supervisor: root\ndefaults: {start_timeout: 30s}\n"
	                 "children:\n"
	                 "  - {worker: a, command: x, ready_after: 2s}\n"
	                 "  - {worker: b, command: x}\n"
	                 "  - supervisor: s\n"
	                 "    defaults: {ready_after: 1s}\n"
	                 "    children:\n"
	                 "      - {worker: c, command: x, start_timeout: 5s}\n"
	                 "      - {worker: d, command: x, instances: 2,"
	                 " ready_after: 3s}\n");
	const struct spec *r = cfg->root, *s = r->children[2];

	(void)state;
	assert_int_equal(r->children[0]->pol->ready_after_ms, 2000);
	assert_int_equal(r->children[0]->pol->start_timeout_ms, 0);
	assert_int_equal(r->children[1]->pol->start_timeout_ms, 30000);
	assert_int_equal(s->children[0]->pol->start_timeout_ms, 5000);
	assert_int_equal(s->children[0]->pol->ready_after_ms, 0);
	/* copies keep what their worker wrote */
	assert_int_equal(s->children[1]->pol->ready_after_ms, 3000);
	assert_int_equal(s->children[2]->pol->start_timeout_ms, 0);
	config_free(cfg);
	/* one from each of two defaults: which is meant, the worker says */
	parse_bad("supervisor: root\ndefaults: {start_timeout: 30s}\n"
	          "children:\n"
	          "  - supervisor: s\n"
	          "    defaults: {ready_after: 1s}\n"
	          "    children: [{worker: d, command: x}]\n",
	          "worker d: ready_after and start_timeout (both from "
	          "defaults: set one on it)");
	parse_bad(W "ready_after: 1s\nstart_timeout: 5s\n",
	          "worker w: ready_after and start_timeout");
}

static void
test_bytes(void **state)
{
	uint64_t b;

	(void)state;
	assert_int_equal(config_parse_bytes("4096", &b), 0);
	assert_int_equal(b, 4096);
	assert_int_equal(config_parse_bytes("64k", &b), 0);
	assert_int_equal(b, 65536);
	assert_int_equal(config_parse_bytes("2GB", &b), 0);
	assert_int_equal(b, 2ull << 30);
	assert_int_equal(config_parse_bytes("1TiB", &b), 0);
	assert_int_equal(b, 1ull << 40);
	assert_int_equal(config_parse_bytes("1.5G", &b), -1);
	assert_int_equal(config_parse_bytes("M", &b), -1);
	assert_int_equal(config_parse_bytes("1Mx", &b), -1);
	assert_int_equal(config_parse_bytes("-1", &b), -1);
}

static void
test_control_grants(void **state)
{
	struct config *cfg = parse_ok(W "control: [status, drain]\n");

	(void)state;
	assert_int_equal(worker(cfg)->pol->control,
	                 config_control_bit("status") |
	                         config_control_bit("drain"));
	assert_int_equal(worker(cfg)->pol->control & config_control_bit("stop"),
	                 0);
	config_free(cfg);
	cfg = parse_ok(W "control: all\n");
	assert_true(worker(cfg)->pol->control == CONTROL_ALL);
	config_free(cfg);
	cfg = parse_ok(W "control: none\n");
	assert_int_equal(worker(cfg)->pol->control, 0);
	config_free(cfg);
	cfg = parse_ok(W);
	assert_int_equal(worker(cfg)->pol->control, 0); /* nothing by default */
	config_free(cfg);
	assert_int_equal(config_control_bit("shutdown"), 1u << 7);
	/* every command can be granted (the refusal of `logs` told to grant
	 * `control: [logs]`, which the loader refused) */
	assert_int_equal(config_control_bit("logs"), 1u << 14);
	cfg = parse_ok(W "control: [logs, reset]\n");
	assert_int_equal(worker(cfg)->pol->control,
	                 config_control_bit("logs") |
	                         config_control_bit("reset"));
	config_free(cfg);
	for (const char *const *c =
	             (const char *const[]){"status", "start", "stop", "restart",
	                                   "drain", "reload", "events",
	                                   "shutdown", "reset", "spawn", "wait",
	                                   "dead", "replay", "drop", "logs",
	                                   "signal", "tasks", NULL};
	     *c != NULL; c++)
		assert_int_not_equal(config_control_bit(*c), 0);
	parse_bad(W "control: [status, kill]\n",
	          "control: unknown command \"kill\"");
	/* the refusal names every command the table accepts */
	parse_bad(W "control: [kill]\n",
	          "(want status, start, stop, restart, drain, reload, events, "
	          "shutdown, reset, spawn, wait, dead, replay, drop, logs, "
	          "signal, tasks)");
	parse_bad(W "control: some\n", "control: want none, all or a list");
}

static void
test_defaults_hand_down_and_compare(void **state)
{
	struct config *a = parse_ok(
	        "supervisor: s\ndefaults: {user: nobody, limits: {nofile: 10}, "
	        "control: [status]}\nchildren:\n  - worker: w\n    command: "
	        "x\n");
	struct config *b = parse_ok(
	        "supervisor: s\ndefaults: {user: nobody, limits: {nofile: 11}, "
	        "control: all}\nchildren:\n  - worker: w\n    command: x\n");
	const struct spec *wa = a->root->children[0],
	                  *wb = b->root->children[0];

	(void)state;
	assert_string_equal(wa->user, "nobody");
	assert_int_equal(wa->pol->limits.v[LIMIT_NOFILE], 10);
	assert_int_equal(wa->pol->control, config_control_bit("status"));
	/* another limit: another process; another grant: only policy */
	assert_false(spec_process_equal(wa, wb));
	assert_false(spec_policy_equal(wa, wb));
	config_free(a);
	config_free(b);
}

static void
test_settings(void **state)
{
	struct config *cfg =
	        parse_ok(W "---\nagentsupd:\n  contain: none\n"
	                   "  termination_log: /dev/termination-log\n");

	(void)state;
	assert_int_equal(cfg->settings.contain, CONTAIN_NONE);
	assert_string_equal(cfg->settings.termination_log,
	                    "/dev/termination-log");
	config_free(cfg);
	cfg = parse_ok(W);
	assert_int_equal(cfg->settings.contain, CONTAIN_AUTO);
	assert_null(cfg->settings.termination_log);
	config_free(cfg);
	parse_bad(W "---\nagentsupd:\n  contain: pid\n",
	          "contain: unknown value \"pid\"");
	parse_bad(W "---\nagentsupd:\n  termination_log: ''\n",
	          "termination_log: empty path");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_identity_and_umask),
	        cmocka_unit_test(test_limits_and_memory),
	        cmocka_unit_test(test_log_rotation_of_a_worker),
	        cmocka_unit_test(test_readiness_own_key_wins_over_defaults),
	        cmocka_unit_test(test_bytes),
	        cmocka_unit_test(test_control_grants),
	        cmocka_unit_test(test_defaults_hand_down_and_compare),
	        cmocka_unit_test(test_settings),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
