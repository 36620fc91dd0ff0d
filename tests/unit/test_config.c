/*
 * test_config.c - supervisor.d/ read from disk and parsed: the example of
 * the design, every error with its file:line:column, what is read and what
 * is refused (FIFOs, directories, links, sizes). The keys one by one are in
 * test_config_keys.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "confdir.h"
#include "config.h"

static char dir[] = "/tmp/agentsup-cfg-XXXXXX";

static int
setup(void **state)
{
	(void)state;
	strcpy(dir, "/tmp/agentsup-cfg-XXXXXX");
	return mkdtemp(dir) == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void
put(const char *name, const char *text)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof path, "%s/%s", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static struct config *
load(struct config_errors *errs)
{
	memset(errs, 0, sizeof *errs);
	return config_load(dir, errs);
}

/* Exactly one error, which contains want (and names the file and line). */
static void
expect_error(const char *file, const char *text, const char *want)
{
	struct config_errors errs;
	struct config *cfg;

	put(file, text);
	cfg = load(&errs);
	assert_null(cfg);
	if (errs.count == 0 || strstr(errs.msgs[0], want) == NULL) {
		for (size_t i = 0; i < errs.count; i++)
			fprintf(stderr, "got: %s\n", errs.msgs[i]);
		fprintf(stderr, "want: %s\n", want);
	}
	assert_true(errs.count >= 1);
	assert_non_null(strstr(errs.msgs[0], want));
	config_errors_clear(&errs);
}

static void
test_full_example(void **state)
{
	struct config_errors errs;
	struct config *cfg;
	struct spec *r, *f, *s, *tools;

	(void)state;
	put("10-research.yaml",
	    "supervisor: research\n"
	    "parent: root\n"
	    "strategy: rest_for_one\n"
	    "intensity: 2\n"
	    "period: 60s\n"
	    "children:\n"
	    "  - worker: fetcher\n"
	    "    command: [python3, -m, agents.fetcher, --queue, research "
	    "jobs]\n"
	    "    directory: /srv/agents\n"
	    "    environment: {MODEL: small, LOG_LEVEL: info}\n"
	    "    restart: permanent\n"
	    "    shutdown: 10s\n"
	    "    heartbeat: 2s\n"
	    "    start_timeout: 30s\n"
	    "    drain_timeout: 30s\n"
	    "    stdout: inherit\n"
	    "    stderr: /var/log/x.log\n"
	    "  - worker: summarizer\n"
	    "    command: python3 -m agents.summarizer 'a b' \"c\\\"d\"\n"
	    "  - supervisor: tools\n"
	    "    strategy: one_for_all\n"
	    "    children:\n"
	    "      - worker: browser\n"
	    "        command: [node, browser-agent.js]\n"
	    "        shutdown: brutal_kill\n");
	put("20-more.yml", "worker: late\nparent: tools\ncommand: x\n"
	                   "---\nagentsupd:\n  events_file: /tmp/ev.jsonl\n"
	                   "  metrics: \"[::1]:9464\"\n"
	                   "  log_max: 1TiB\n");
	cfg = load(&errs);
	for (size_t i = 0; i < errs.count; i++)
		fprintf(stderr, "%s\n", errs.msgs[i]);
	assert_non_null(cfg);
	r = cfg->root;
	assert_string_equal(r->name, "root"); /* implicit */
	assert_int_equal(r->nchildren, 1);
	s = r->children[0];
	assert_string_equal(s->name, "research");
	assert_int_equal(s->pol->strategy, REST_FOR_ONE);
	assert_int_equal(s->pol->intensity, 2);
	assert_int_equal(s->pol->period_ms, 60000);
	f = s->children[0];
	assert_string_equal(f->argv[4], "research jobs");
	assert_null(f->argv[5]);
	assert_string_equal(f->env[0], "MODEL=small");
	assert_string_equal(f->env[1], "LOG_LEVEL=info");
	assert_int_equal(f->pol->heartbeat_ms, 2000);
	assert_int_equal(f->pol->heartbeat_timeout_ms,
	                 6000); /* 3 x heartbeat */
	assert_int_equal(f->pol->shutdown_ms, 10000);
	assert_int_equal(f->err.mode, OUTPUT_FILE);
	assert_string_equal(s->children[1]->argv[3], "a b");
	assert_string_equal(s->children[1]->argv[4], "c\"d");
	tools = s->children[2];
	assert_int_equal(tools->children[0]->pol->shutdown_ms,
	                 SHUTDOWN_BRUTAL_KILL);
	assert_string_equal(tools->children[1]->name, "late");
	assert_string_equal(cfg->settings.events_file, "/tmp/ev.jsonl");
	assert_string_equal(cfg->settings.metrics, "[::1]:9464");
	/* the top of its range (refused: only KiB..GiB were known) */
	assert_true(cfg->settings.log_max == UINT64_C(1) << 40);
	config_free(cfg);
}

static void
test_single_root(void **state)
{
	struct config_errors errs;
	struct config *cfg;

	(void)state;
	put("a.yaml",
	    "supervisor: main\nchildren:\n  - {worker: w, command: x}\n");
	cfg = load(&errs);
	assert_non_null(cfg);
	assert_string_equal(cfg->root->name, "main");
	config_free(cfg);
}

static void
test_lone_workers_get_implicit_root(void **state)
{
	struct config_errors errs;
	struct config *cfg;

	(void)state;
	put("b.yaml", "worker: second\ncommand: x\n");
	put("a.yaml", "worker: first\ncommand: x\n");
	cfg = load(&errs);
	assert_non_null(cfg);
	assert_string_equal(cfg->root->name, "root");
	assert_int_equal(cfg->root->pol->strategy, ONE_FOR_ONE);
	assert_int_equal(cfg->root->pol->intensity, 3);
	assert_int_equal(cfg->root->pol->period_ms, 5000);
	assert_string_equal(cfg->root->children[0]->name, "first");
	assert_string_equal(cfg->root->children[1]->name, "second");
	config_free(cfg);
}

static void
test_no_means_string(void **state)
{
	struct config_errors errs;
	struct config *cfg;

	(void)state;
	put("a.yaml", "worker: w\ncommand: [echo, no, yes, 'off']\n"
	              "environment: {FLAG: no}\n");
	cfg = load(&errs);
	assert_non_null(cfg);
	assert_string_equal(cfg->root->children[0]->argv[1], "no");
	assert_string_equal(cfg->root->children[0]->env[0], "FLAG=no");
	config_free(cfg);
}

static void
test_errors(void **state)
{
	(void)state;
	expect_error("a.yaml", "worker: w\ncommand: x\nbogus: 1\n",
	             "a.yaml:3:1: unknown key \"bogus\" for a worker");
	expect_error("a.yaml", "worker: w\ncommand: x\nshutdown: 10q\n",
	             "a.yaml:3:11: shutdown: bad duration \"10q\"");
	expect_error("a.yaml", "supervisor: s\nstrategy: one_for_some\n",
	             "a.yaml:2:11: strategy: unknown value \"one_for_some\"");
	expect_error("a.yaml", "worker: w\ncommand: []\n",
	             "a.yaml:2:10: command: empty command");
	expect_error("a.yaml", "worker: w\ncommand: \"  \"\n",
	             "command: empty command");
	expect_error("a.yaml", "worker: w\ncommand: \"echo 'x\"\n",
	             "unterminated single quote");
	expect_error("a.yaml", "worker: w\n",
	             "a.yaml:1:1: worker w: no command");
	expect_error("a.yaml", "worker: w\ncommand: x\nparent: nobody\n",
	             "a.yaml:3:9: unknown parent \"nobody\"");
	expect_error("a.yaml", "worker: w\ncommand: x\nintensity: 3\n",
	             "unknown key \"intensity\" for a worker");
	expect_error("a.yaml", "supervisor: s\nintensity: -1\n",
	             "a.yaml:2:12: intensity: want a whole number");
	expect_error("a.yaml", "worker: w\ncommand: x\nrestart: always\n",
	             "restart: unknown value \"always\"");
	expect_error("a.yaml", "worker: w\ncommand: x\ncommand: y\n",
	             "a.yaml:3:1: duplicate key \"command\"");
	/* found by fuzz_config: the second list leaked */
	expect_error("a.yaml",
	             "supervisor: s\nchildren:\n  - {worker: a, command: x}\n"
	             "children:\n  - {worker: b, command: x}\n",
	             "a.yaml:4:1: duplicate key \"children\"");
	expect_error("a.yaml",
	             "worker: w\ncommand: x\nheartbeat: 5s\n"
	             "heartbeat_timeout: 1s\n",
	             "heartbeat_timeout is shorter than heartbeat");
	expect_error("a.yaml",
	             "worker: w\ncommand: x\nenvironment: {AGENTSUP_FD: 3}\n",
	             "AGENTSUP_FD is set by agentsupd");
	expect_error("a.yaml", "worker: bad/name\ncommand: x\n", "bad name");
	expect_error("a.yaml", "worker: w\nsupervisor: s\ncommand: x\n",
	             "either a worker or a supervisor");
	expect_error("a.yaml", "command: x\n", "a.yaml:1:1: a node needs");
	expect_error("a.yaml", "worker: w\ncommand: [x\n", "a.yaml:");
	/* libyaml gives bad UTF-8 as a byte offset, no mark: it said 1:1 */
	expect_error("a.yaml",
	             "worker: w\ncommand: x\nenvironment: {X: \"caf\xff\"}\n",
	             "a.yaml:3:22: invalid UTF-8 (byte 0xFF: ");
	/* columns in characters, as libyaml counts them (\xc3\xa9 is one) */
	expect_error("a.yaml", "worker: w\ncommand: \"\xc3\xa9\xfe\"\n",
	             "a.yaml:2:12: invalid UTF-8 (byte 0xFE: ");
	expect_error("a.yaml", "worker: w\ncommand: \"\xc3(\"\n",
	             "a.yaml:2:12: invalid UTF-8 (byte 0x28: invalid trailing");
	expect_error(
	        "a.yaml", "worker: w\ncommand: \"a\x07\"\n",
	        "a.yaml:2:12: control characters are not allowed (U+0007)");
	expect_error("a.yaml", "worker: w\ncommand: x\nperiod: 5s\n",
	             "unknown key \"period\"");
	expect_error("a.yaml",
	             "supervisor: s\nchildren:\n  - {worker: w, command: x, "
	             "parent: s}\n",
	             "parent: only a top-level document");
	expect_error("a.yaml", "agentsupd:\n  metrics: 9464\n",
	             "a.yaml:2:12: metrics: want HOST:PORT");
	expect_error("a.yaml", "agentsupd:\n  metrics: \"127.0.0.1:70000\"\n",
	             "metrics: want HOST:PORT");
	/* a name: --check passed it, and agentsupd then exited 73 at start */
	expect_error("a.yaml", "agentsupd:\n  metrics: \"localhost:9464\"\n",
	             "metrics: want HOST:PORT with a numeric host");
}

static void
test_duplicate_across_files(void **state)
{
	(void)state;
	put("a.yaml", "worker: w\ncommand: x\n");
	expect_error("b.yaml", "worker: w\ncommand: y\n",
	             "b.yaml:1:1: duplicate name \"w\" (first declared at");
}

static void
test_cyclic_parent(void **state)
{
	(void)state;
	put("a.yaml", "supervisor: x\nparent: y\n");
	expect_error("b.yaml", "supervisor: y\nparent: x\n", "cyclic parent");
}

static void
test_parent_is_worker(void **state)
{
	(void)state;
	put("a.yaml", "worker: w\ncommand: x\n");
	expect_error("b.yaml", "worker: v\ncommand: x\nparent: w\n",
	             "b.yaml:3:9: parent \"w\" is a worker");
}

static void
test_two_roots(void **state)
{
	(void)state;
	put("a.yaml", "supervisor: root\n");
	expect_error("b.yaml", "supervisor: other\n", "two roots");
}

static void
test_empty_dir(void **state)
{
	struct config_errors errs;

	(void)state;
	assert_null(load(&errs));
	assert_non_null(strstr(errs.msgs[0], "no *.yaml"));
	config_errors_clear(&errs);
}

static void
test_durations(void **state)
{
	uint64_t ms;

	(void)state;
	assert_int_equal(config_parse_duration("500ms", &ms), 0);
	assert_int_equal(ms, 500);
	assert_int_equal(config_parse_duration("10", &ms), 0);
	assert_int_equal(ms, 10000);
	assert_int_equal(config_parse_duration("1.5s", &ms), 0);
	assert_int_equal(ms, 1500);
	assert_int_equal(config_parse_duration("2m", &ms), 0);
	assert_int_equal(ms, 120000);
	assert_int_equal(config_parse_duration("1h", &ms), 0);
	assert_int_equal(ms, 3600000);
	assert_int_equal(config_parse_duration("", &ms), -1);
	assert_int_equal(config_parse_duration("s", &ms), -1);
	assert_int_equal(config_parse_duration("-1s", &ms), -1);
	assert_int_equal(config_parse_duration("1.s", &ms), -1);
	assert_int_equal(config_parse_duration("1.5ms", &ms), -1);
	/* a duration, but longer than the longest (Part I took it): said so */
	assert_int_equal(config_parse_duration("99999999999999999999h", &ms),
	                 CONFIG_DURATION_TOO_LONG);
	/* within the digits' bound, but wrapping when multiplied (it gave
	 * 2048384 ms), and a shutdown whose microseconds wrapped */
	assert_int_equal(config_parse_duration("5124095576031h", &ms),
	                 CONFIG_DURATION_TOO_LONG);
	assert_int_equal(config_parse_duration("1844674407371m", &ms),
	                 CONFIG_DURATION_TOO_LONG);
	assert_int_equal(config_parse_duration("876000h", &ms), 0); /* 100 y */
	assert_int_equal(ms, 876000ULL * 3600000);
	assert_int_equal(config_parse_duration("878400h", &ms), 0);
	assert_int_equal(config_parse_duration("878401h", &ms),
	                 CONFIG_DURATION_TOO_LONG);
}

static void
test_split(void **state)
{
	const char *why;
	char **v;

	(void)state;
	assert_int_equal(
	        config_split_command("a  'b c' \"d\\$e\" f\\ g ''", &v, &why),
	        0);
	assert_string_equal(v[0], "a");
	assert_string_equal(v[1], "b c");
	assert_string_equal(v[2], "d$e");
	assert_string_equal(v[3], "f g");
	assert_string_equal(v[4], "");
	assert_null(v[5]);
	config_free_strv(v);
	assert_int_equal(config_split_command("a \"b", &v, &why), -1);
	assert_string_equal(why, "unterminated double quote");
	assert_int_equal(config_split_command("a\\", &v, &why), -1);
}

/* Only regular files are read: never a wait on a FIFO, never a device. */
static void
test_not_regular_files(void **state)
{
	char path[256];

	(void)state;
	put("a.yaml", "worker: w\ncommand: x\n");
	snprintf(path, sizeof path, "%s/x.yaml", dir);
	assert_int_equal(mkfifo(path, 0600), 0);
	expect_error("a.yaml", "worker: w\ncommand: x\n",
	             "x.yaml: a FIFO (agentsupd reads only regular files)");
	unlink(path);
	snprintf(path, sizeof path, "%s/y.yml", dir);
	assert_int_equal(mkdir(path, 0700), 0);
	expect_error("a.yaml", "worker: w\ncommand: x\n", "y.yml: a directory");
	rmdir(path);
	snprintf(path, sizeof path, "%s/z.yaml", dir);
	assert_int_equal(symlink("/dev/zero", path), 0);
	expect_error("a.yaml", "worker: w\ncommand: x\n", "z.yaml: a device");
}

/* A directory that is not there says it is the config directory that is
 * missing (a bare "supervisor.d: No such file or directory" was a new
 * user's first message). */
static void
test_missing_directory(void **state)
{
	struct config_errors errs = {0};
	char path[300];

	(void)state;
	snprintf(path, sizeof path, "%s/nowhere", dir);
	assert_null(config_load(path, &errs));
	assert_int_equal(errs.count, 1);
	assert_non_null(strstr(errs.msgs[0],
	                       "nowhere: cannot read the config directory: "
	                       "No such file or directory (-c DIR names "
	                       "another)"));
	config_errors_clear(&errs);
}

/* A file of one byte too many: refused before it is parsed. */
static void
test_file_caps(void **state)
{
	char path[256], *big;
	FILE *f;

	(void)state;
	big = malloc(CONFIG_MAX_FILE_BYTES + 1);
	assert_non_null(big);
	memset(big, '#', CONFIG_MAX_FILE_BYTES + 1);
	snprintf(path, sizeof path, "%s/big.yaml", dir);
	assert_non_null(f = fopen(path, "w"));
	assert_int_equal(fwrite(big, 1, CONFIG_MAX_FILE_BYTES + 1, f),
	                 CONFIG_MAX_FILE_BYTES + 1);
	fclose(f);
	expect_error("a.yaml", "worker: w\ncommand: x\n",
	             "big.yaml: more than the 1048576 bytes a file may "
	             "hold");
	/* files just under the cap, over the directory's together */
	for (int i = 0; i < 4; i++) {
		snprintf(path, sizeof path, "%s/big%d.yaml", dir, i);
		assert_non_null(f = fopen(path, "w"));
		assert_int_equal(fwrite(big, 1, CONFIG_MAX_FILE_BYTES, f),
		                 CONFIG_MAX_FILE_BYTES);
		fclose(f);
	}
	snprintf(path, sizeof path, "%s/big.yaml", dir);
	unlink(path);
	expect_error("a.yaml", "worker: w\ncommand: x\n",
	             "more than 4194304 bytes together");
	free(big);
}

/* The pure parser with an environment of its own, the files read here. */
static void
test_confdir_then_parse(void **state)
{
	const char *env[] = {"ROOT=/srv", NULL};
	struct config_errors errs = {0};
	struct confdir cd;
	struct config *cfg;

	(void)state;
	put("b.yml", "worker: b\ncommand: x\nenvironment: {D: '${ROOT}/b'}\n");
	put("a.yaml", "worker: a\ncommand: x\n");
	put(".hidden.yaml", "this is not read");
	put("c.txt", "nor this");
	assert_int_equal(confdir_read(dir, &cd, &errs), 0);
	assert_int_equal(cd.n, 2);
	assert_non_null(strstr(cd.files[0].name, "/a.yaml"));
	cfg = config_parse(cd.files, cd.n, env, &errs);
	confdir_free(&cd);
	assert_non_null(cfg);
	assert_string_equal(cfg->root->children[1]->env[0], "D=/srv/b");
	config_free(cfg);
	config_errors_clear(&errs);
}

/* notify: and on_event: (sd_notify workers, hooks). */
static void
test_notify_and_hooks(void **state)
{
	struct config_errors errs;
	struct config *cfg;
	const struct hook_spec *h;

	(void)state;
	put("00-s.yaml", "agentsupd:\n  on_event:\n"
	                 "    - {kinds: [gave_up, exited], run: [a, b]}\n"
	                 "    - {kinds: [started], run: \"c 'd e'\", "
	                 "timeout: 2s}\n");
	put("a.yaml", "worker: w\ncommand: x\nnotify: systemd\n");
	cfg = load(&errs);
	assert_non_null(cfg);
	assert_int_equal(cfg->root->children[0]->pol->notify, NOTIFY_SYSTEMD);
	assert_int_equal(cfg->settings.nhooks, 2);
	h = &cfg->settings.hooks[0];
	assert_string_equal(h->kinds[0], "gave_up");
	assert_string_equal(h->kinds[1], "exited");
	assert_null(h->kinds[2]);
	assert_string_equal(h->argv[1], "b");
	assert_int_equal(h->timeout_ms, CONFIG_HOOK_TIMEOUT_MS);
	h = &cfg->settings.hooks[1];
	assert_string_equal(h->argv[1], "d e");
	assert_int_equal(h->timeout_ms, 2000);
	config_free(cfg);
	config_errors_clear(&errs);
	put("00-s.yaml", "agentsupd: {}\n");
	expect_error("a.yaml", "worker: w\ncommand: x\nnotify: yes\n",
	             "a.yaml:3:9: notify: unknown value \"yes\"");
	put("a.yaml", "worker: w\ncommand: x\n");
	expect_error("00-s.yaml", "agentsupd:\n  on_event: [{run: [a]}]\n",
	             "on_event: an entry needs kinds and run");
	/* a kind misspelt never matched, and the hook never ran */
	expect_error("00-s.yaml",
	             "agentsupd:\n  on_event: [{kinds: [started, give_up], "
	             "run: [a]}]\n",
	             "kinds: no event is of kind \"give_up\"");
	/* deep flow nesting is refused before libyaml's quadratic keys */
	{
		char deep[256] = "worker: w\ncommand: ";
		size_t n = strlen(deep);
		for (int i = 0; i < 70; i++)
			deep[n++] = '[';
		for (int i = 0; i < 70; i++)
			deep[n++] = ']';
		snprintf(deep + n, sizeof deep - n, "\n");
		put("00-s.yaml", "agentsupd: {}\n");
		expect_error("a.yaml", deep,
		             "a.yaml:2:74: nested deeper than 64 levels");
		put("a.yaml", "worker: w\ncommand: x\n");
	}
	/* the dash forgotten, a scalar for a list: said (taken as nothing) */
	expect_error("00-s.yaml",
	             "agentsupd:\n  on_event: {kinds: [started], run: [a]}\n",
	             "on_event: want a list");
	expect_error("00-s.yaml",
	             "agentsupd:\n  on_event: [{kinds: started, run: [a]}]\n",
	             "kinds: want a list");
	expect_error("00-s.yaml",
	             "agentsupd:\n  on_event: [{kinds: [Exited], run: [a]}]\n",
	             "kinds: bad name \"Exited\"");
	expect_error("00-s.yaml",
	             "agentsupd:\n  on_event: [{kinds: [exited], run: [a], "
	             "when: 1}]\n",
	             "on_event: unknown key \"when\"");
	expect_error("00-s.yaml",
	             "agentsupd:\n  on_event: [{kinds: [exited], run: [a], "
	             "timeout: 0s}]\n",
	             "timeout: want a duration above zero");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_full_example, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_single_root, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(
	                test_lone_workers_get_implicit_root, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_no_means_string, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_duplicate_across_files,
	                                        setup, teardown),
	        cmocka_unit_test_setup_teardown(test_cyclic_parent, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_parent_is_worker, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_two_roots, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_empty_dir, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_not_regular_files, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_missing_directory, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_file_caps, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_confdir_then_parse, setup,
	                                        teardown),
	        cmocka_unit_test(test_durations),
	        cmocka_unit_test(test_split),
	        cmocka_unit_test_setup_teardown(test_notify_and_hooks, setup,
	                                        teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
