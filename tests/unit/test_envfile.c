/*
 * test_envfile.c - `env_file:`: the key (one path or a list, inherited
 * through defaults and templates, a change of it a change of the process)
 * and the files' text, KEY=VALUE lines, every rule and every refusal.
 */
#include "config_test.h"

/* text parsed into entries: each of want in order, then NULL. */
static void
parses_to(const char *text, const char *const *want)
{
	char why[256] = "", **got;
	size_t i = 0;

	if (config_envfile_parse(text, strlen(text), &got, why, sizeof why) < 0)
		fprintf(stderr, "refused: %s\nin:\n%s\n", why, text);
	assert_non_null(got);
	for (; want[i] != NULL; i++) {
		assert_non_null(got[i]);
		assert_string_equal(got[i], want[i]);
	}
	assert_null(got[i]);
	config_free_strv(got);
}

static void
refused(const char *text, size_t len, const char *want)
{
	char why[256] = "", **got = (char **)1;

	assert_int_equal(config_envfile_parse(text, len, &got, why, sizeof why),
	                 -1);
	assert_null(got);
	if (strstr(why, want) == NULL)
		fprintf(stderr, "why: %s\nwant: %s\n", why, want);
	assert_non_null(strstr(why, want));
}

static void
test_lines(void **state)
{
	(void)state;
	parses_to("", (const char *[]){NULL});
	parses_to("\n\n# a comment\n   # indented\n", (const char *[]){NULL});
	parses_to("A=1\nB=two words\n",
	          (const char *[]){"A=1", "B=two words", NULL});
	/* blanks around = and at the ends go; inside a value they stay */
	parses_to("  A = x y \t\n", (const char *[]){"A=x y", NULL});
	parses_to("export KEY=v\nexport=1\n",
	          (const char *[]){"KEY=v", "export=1", NULL});
	parses_to("E=\nF= \n", (const char *[]){"E=", "F=", NULL});
	/* CRLF from an editor elsewhere */
	parses_to("A=1\r\nB=2\r\n", (const char *[]){"A=1", "B=2", NULL});
	/* quotes: '...' as it is, "..." with escapes; # after them a comment */
	parses_to("A='a \"b\" $c \\n'\n",
	          (const char *[]){"A=a \"b\" $c \\n", NULL});
	parses_to("A=\"x\\\"y\\\\z\\n\\tw\\$\"  # why\n",
	          (const char *[]){"A=x\"y\\z\n\tw$", NULL});
	/* another backslash is the value's, as in a shell ("C:dir" was
	 * made of it) */
	parses_to("W=\"C:\\dir\\x\\q\"\n",
	          (const char *[]){"W=C:\\dir\\x\\q", NULL});
	/* unquoted: a # is the value's (an API key may hold one) */
	parses_to("K=sk-abc#123 ", (const char *[]){"K=sk-abc#123", NULL});
	parses_to("A=b=c\n", (const char *[]){"A=b=c", NULL});
	/* the last line needs no newline; a key set twice is kept twice (the
	 * spawn takes the last) */
	parses_to("A=1\nA=2", (const char *[]){"A=1", "A=2", NULL});
}

static void
test_refusals(void **state)
{
	char big[CONFIG_ENVFILE_MAX + 2];
	char *many;
	size_t n = 0;

	(void)state;
	refused("A=1\nJUSTAWORD\n", 12, "line 2: no '='");
	refused("1A=x\n", 5, "line 1: bad variable name \"1A\"");
	refused("A-B=x\n", 6, "bad variable name \"A-B\"");
	refused("=x\n", 3, "bad variable name \"\"");
	refused("A B=x\n", 6, "no '='");
	refused("AGENTSUP_FD=9\n", 14, "AGENTSUP_FD is set by agentsupd");
	refused("A=\"open\n", 8, "line 1: no closing \"");
	refused("A='open\nB=1'\n", 13, "no closing '");
	refused("A=\"x\" y\n", 8, "text after the closing quote");
	refused("A=1\0B=2\n", 8, "a NUL byte");
	memset(big, '#', sizeof big);
	refused(big, CONFIG_ENVFILE_MAX + 1, "larger than 65536 bytes");
	many = malloc((CONFIG_ENVFILE_VARS + 1) * 16);
	for (int i = 0; i <= CONFIG_ENVFILE_VARS; i++)
		n += (size_t)sprintf(many + n, "V%d=x\n", i);
	refused(many, n, "more than 1024 variables");
	free(many);
}

static void
test_key(void **state)
{
	struct config *cfg, *other;
	struct spec *w;

	(void)state;
	cfg = parse_ok("worker: w\ncommand: x\nenv_file: /etc/a.env\n");
	w = worker(cfg);
	assert_string_equal(w->env_files[0], "/etc/a.env");
	assert_null(w->env_files[1]);
	other = parse_ok("worker: w\ncommand: x\n"
	                 "env_file: [/etc/a.env, -.env.local]\n");
	assert_string_equal(worker(other)->env_files[1], "-.env.local");
	/* another file: another process, restarted by a reload */
	assert_false(spec_process_equal(w, worker(other)));
	config_free(other);
	other = parse_ok("worker: w\ncommand: x\nenv_file: /etc/a.env\n");
	assert_true(spec_process_equal(w, worker(other)));
	config_free(other);
	config_free(cfg);
	/* through defaults, and a template's to its tasks */
	cfg = parse_ok("supervisor: s\ndefaults: {env_file: /d.env}\n"
	               "children:\n  - {worker: w, command: x}\n"
	               "  - {worker: v, command: x, env_file: /v.env}\n");
	/* a top-level supervisor is the root */
	assert_string_equal(cfg->root->children[0]->env_files[0], "/d.env");
	assert_string_equal(cfg->root->children[1]->env_files[0], "/v.env");
	config_free(cfg);
	cfg = parse_ok("supervisor: p\ntemplate: {command: x, env_file: "
	               "/t.env}\n");
	w = config_task_spec(cfg->root->tmpl, "k", NULL, NULL);
	assert_string_equal(w->env_files[0], "/t.env");
	config_task_spec_free(w);
	config_free(cfg);
	parse_bad("worker: w\ncommand: x\nenv_file: ''\n", "env_file: empty");
	parse_bad("worker: w\ncommand: x\nenv_file: '-'\n", "env_file: empty");
	parse_bad("worker: w\ncommand: x\nenv_file: {a: b}\n",
	          "env_file: want a list");
	parse_bad("worker: w\ncommand: x\nenv_file: [a, [b]]\n", "env_file");
	parse_bad("supervisor: s\nenv_file: /x\n",
	          "unknown key \"env_file\" for a supervisor");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_lines),
	        cmocka_unit_test(test_refusals),
	        cmocka_unit_test(test_key),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
