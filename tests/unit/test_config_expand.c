/*
 * test_config_expand.c - what expands a configuration: anchors, aliases and
 * merge keys, `defaults:`, `instances:`, ${VAR}; and the caps that keep each
 * bounded (billion laughs, 150,000 keys, long lists, the error cap).
 */
#include "config_test.h"
#include "text.h"
#include "yamldoc.h"

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
	assert_int_equal(s->children[1]->pol->heartbeat_ms, 1000);
	assert_int_equal(s->children[2]->out.mode, OUTPUT_NULL);
	assert_int_equal(s->children[2]->pol->shutdown_ms,
	                 9000); /* first wins */
	/* the later `<<` is merged after the earlier one: first source wins */
	assert_int_equal(s->children[3]->pol->shutdown_ms, 1000);
	assert_int_equal(s->children[4]->pol->shutdown_ms, 5000);
	assert_int_equal(s->children[4]->pol->drain_timeout_ms, 4000);
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

/* The documents are composed by src/config/yamldoc.c, not libyaml's loader:
 * its anchors, aliases and errors as libyaml's were. */
static void
test_anchor_errors(void **state)
{
	(void)state;
	parse_bad("worker: w\ncommand: x\nenvironment: {A: *nope}\n",
	          "a.yaml:3:18: found undefined alias *nope");
	parse_bad("worker: w\ncommand: &c x\nenvironment: &c {A: '1'}\n",
	          "a.yaml:3:14: found duplicate anchor &c (first at line 2, "
	          "column 10)");
	/* an anchor does not reach into the next document */
	parse_bad("worker: v\ncommand: &c x\n---\nworker: w\ncommand: *c\n",
	          "a.yaml:5:10: found undefined alias *c");
	/* a syntax error after a whole document: the document is loaded (its
	 * own error said first), then the syntax error */
	struct config_errors errs;

	assert_null(parse("worker: v\nbogus: 1\ncommand: x\n---\n"
	                  "worker: w\ncommand: [x\n",
	                  &errs));
	if (errs.count != 2)
		dump(&errs);
	assert_int_equal(errs.count, 2);
	assert_non_null(strstr(errs.msgs[0], "a.yaml:2:1: unknown key"));
	assert_non_null(strstr(errs.msgs[1], "a.yaml:7:1: did not find"));
	config_errors_clear(&errs);
}

/* Many anchors: each found by hash (libyaml's loader compared every new
 * anchor with all before it: 60,000 of them took 7.7 s), each still the
 * node a later alias stands for; nodes numbered as libyaml's loader does. */
static void
test_many_anchors(void **state)
{
	size_t n = 20000, cap = n * 16 + 64, len = 0;
	char *y = malloc(cap);
	yaml_parser_t parser;
	struct yamldoc d = {0};
	yaml_node_t *root, *last;

	(void)state;
	assert_non_null(y);
	len += (size_t)snprintf(y + len, cap - len, "[");
	for (size_t i = 0; i < n; i++)
		len += (size_t)snprintf(y + len, cap - len, "&a%zu %zu, ", i,
		                        i);
	len += (size_t)snprintf(y + len, cap - len, "*a0, *a%zu]\n", n - 1);
	assert_true(len < cap);
	assert_true(yaml_parser_initialize(&parser));
	yaml_parser_set_input_string(&parser, (const unsigned char *)y, len);
	assert_true(yamldoc_next(&parser, &d));
	assert_true(d.have);
	root = yamldoc_get(&d.doc, 1);
	assert_int_equal(root->type, YAML_SEQUENCE_NODE);
	assert_int_equal(root->data.sequence.items.top -
	                         root->data.sequence.items.start,
	                 n + 2);
	assert_int_equal(root->data.sequence.items.start[n], 2); /* *a0 */
	last = yamldoc_get(&d.doc, root->data.sequence.items.start[n + 1]);
	assert_string_equal((const char *)last->data.scalar.value, "19999");
	assert_null(yamldoc_get(&d.doc, (int)n + 2));
	assert_true(yamldoc_next(&parser, &d)); /* the stream's end */
	assert_false(d.have);
	yaml_parser_delete(&parser);
	yamldoc_free(&d);
	free(y);
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

/* The file: one worker, 150,000 keys, 1.8 MB. */
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
	assert_non_null(strstr(errs.msgs[0], "a.yaml: "));
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
	assert_non_null(strstr(errs.msgs[0], "longer than 131069 bytes"));
	config_errors_clear(&errs);
	/* V=value and its NUL are what Linux counts: a value of 131,070
	 * bytes passed --check and every exec failed (E2BIG) */
	memset(big + 4, 'x', 65535);
	big[4 + 65535] = '\0';
	assert_null(config_parse(&src, 1, env, &errs));
	config_errors_clear(&errs);
	yaml = "worker: w\ncommand: x\nenvironment: {V: '${BIG}${BIG}x'}\n";
	big[4 + 65534] = '\0'; /* 2 x 65,534 + 1 = 131,069: fits */
	src = (struct config_source){"a.yaml", yaml, strlen(yaml)};
	config_free(config_parse(&src, 1, env, &errs));
	assert_int_equal(errs.count, 0);
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
		assert_int_equal(s->children[i]->pol->heartbeat_timeout_ms,
		                 3000);
	}
	assert_string_equal(s->children[4]->name, "last");
	assert_int_equal(s->children[4]->instance, 0);
	assert_string_equal(s->children[5]->name, "solo-1");
	config_free(cfg);
	parse_bad("supervisor: s\nchildren:\n"
	          "  - {worker: p, command: x, instances: 2}\n"
	          "  - {worker: p-2, command: x}\n",
	          "duplicate name \"p-2\"");
	/* 62 characters with "-2": it fits (4 digits were always reserved) */
	cfg = parse_ok(
	        "worker: "
	        "a23456789012345678901234567890123456789012345678901234567890"
	        "\ncommand: x\ninstances: 2\n");
	config_free(cfg);
	parse_bad("worker: "
	          "a23456789012345678901234567890123456789012345678901234567890"
	          "1234"
	          "\ncommand: x\ninstances: 10\n",
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
	assert_int_equal(s->children[0]->pol->shutdown_ms, 1000);
	assert_int_equal(s->children[0]->pol->heartbeat_ms, 2000);
	assert_int_equal(s->children[0]->pol->heartbeat_timeout_ms, 6000);
	assert_string_equal(s->children[0]->env[0], "A=1");
	assert_false(s->children[0]->pol->backoff.enabled);
	assert_int_equal(s->children[0]->pol->circuit.failures, 3);
	/* the worker's own keys win, whole: no merging of maps */
	assert_int_equal(s->children[1]->pol->shutdown_ms, 3000);
	assert_string_equal(s->children[1]->env[0], "B=2");
	assert_null(s->children[1]->env[1]);
	assert_true(s->children[1]->pol->backoff.enabled);
	assert_int_equal(s->children[1]->pol->backoff.max_ms, 60000);
	assert_int_equal(s->children[1]->pol->backoff.initial_ms, 100);
	/* nested: the nearer supervisor's defaults win */
	inner = s->children[2];
	assert_int_equal(inner->pol->restart,
	                 RESTART_PERMANENT); /* not for sups */
	assert_int_equal(inner->children[0]->pol->shutdown_ms, 7000);
	assert_int_equal(inner->children[0]->pol->heartbeat_ms, 2000);
	assert_int_equal(inner->children[0]->pol->restart, RESTART_TRANSIENT);
	assert_int_equal(inner->children[1]->pol->restart, RESTART_PERMANENT);
	/* attached by parent: from another document, still below */
	late = inner->children[2];
	assert_string_equal(late->name, "late");
	assert_int_equal(late->pol->shutdown_ms, 7000);
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

/* Thousands of documents naming one parent: attached in declaration
 * order after the supervisor's own children, grouped in one pass. */
static void
test_many_parents(void **state)
{
	struct config *cfg;
	char *yaml = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&yaml, &len);

	(void)state;
	assert_non_null(f);
	for (int i = 0; i < 3000; i++)
		fprintf(f, "worker: w%d\nparent: %s\ncommand: x\n---\n", i,
		        i % 2 ? "odd" : "even");
	fputs("supervisor: top\nchildren:\n  - {supervisor: even}\n"
	      "  - {supervisor: odd, children: [{worker: own, command: x}]}\n",
	      f);
	fclose(f);
	cfg = parse_ok(yaml);
	assert_string_equal(cfg->root->name, "top");
	assert_int_equal(cfg->root->children[0]->nchildren, 1500);
	assert_int_equal(cfg->root->children[1]->nchildren, 1501);
	assert_string_equal(cfg->root->children[0]->children[1]->name, "w2");
	assert_string_equal(cfg->root->children[1]->children[0]->name, "own");
	assert_string_equal(cfg->root->children[1]->children[1500]->name,
	                    "w2999");
	config_free(cfg);
	free(yaml);
}

/* Idle memory: workers declared alike, or given the same keys by
 * `defaults:` or copied by `instances:`, share one policy (and equal
 * commands one array); a key of their
 * own gives a worker its own; a dynamic child shares its template's; a
 * spec changed after parsing (spec_policy_own) leaves the others as they
 * were. */
/* Equal commands of consecutive workers are shared as they are parsed (the
 * copy freed at once, before the next worker's allocations: no hole left
 * behind), the rest by spec_intern after the whole tree; a spec that lent
 * its array keeps it, even when an equal one was seen before it. */
static void
test_commands_shared_while_parsing(void **state)
{
	struct config *cfg;
	struct spec **k;

	(void)state;
	cfg = parse_ok("supervisor: s\n"
	               "children:\n"
	               "  - {worker: a, command: [sh, -c, y]}\n"
	               "  - {worker: b, command: [sh, -c, x]}\n"
	               "  - {worker: c, command: [sh, -c, x]}\n"
	               "  - {worker: d, command: [sh, -c, x]}\n"
	               "  - {worker: e, command: [sh, -c, y]}\n"
	               "  - {worker: f, command: [sh, -c, y]}\n"
	               "  - {worker: g, command: [sh, -c, x], instances: 2}\n"
	               "  - {worker: h, command: [sh, -c, x]}\n");
	k = cfg->root->children;
	assert_int_equal(cfg->root->nchildren, 9);
	assert_int_equal(k[0]->borrowed, 0);
	assert_int_equal(k[1]->borrowed, SPEC_LENDS_ARGV);
	assert_ptr_equal(k[2]->argv, k[1]->argv);
	assert_ptr_equal(k[3]->argv, k[1]->argv);
	assert_int_equal(k[3]->borrowed, SPEC_BORROWS_ARGV);
	/* e lent to f, and keeps its own though a's is equal */
	assert_int_equal(k[4]->borrowed, SPEC_LENDS_ARGV);
	assert_ptr_equal(k[5]->argv, k[4]->argv);
	assert_ptr_not_equal(k[4]->argv, k[0]->argv);
	assert_string_equal(k[4]->argv[2], "y");
	/* instances share the first copy's (which keeps it); h shares b's,
	 * after the tree */
	assert_int_equal(k[6]->borrowed, SPEC_LENDS_ARGV);
	assert_ptr_equal(k[7]->argv, k[6]->argv);
	assert_int_equal(k[7]->borrowed, SPEC_BORROWS_ARGV);
	assert_ptr_equal(k[8]->argv, k[1]->argv);
	config_free(cfg); /* each array freed once (ASan) */
	/* `instances:` handed down: the lender is copied (and replaced)
	 * before its borrower is (a use after free, found in review) */
	cfg = parse_ok("supervisor: s\n"
	               "defaults: {instances: 2}\n"
	               "children:\n"
	               "  - {worker: a, command: [sh, -c, x]}\n"
	               "  - {worker: b, command: [sh, -c, x]}\n");
	k = cfg->root->children;
	assert_int_equal(cfg->root->nchildren, 4);
	assert_string_equal(k[3]->name, "b-2");
	assert_string_equal(k[3]->argv[2], "x");
	config_free(cfg);
}

static void
test_policies_shared(void **state)
{
	struct config *cfg;
	struct spec *s, *inner, *task;
	const struct policy *shared;

	(void)state;
	cfg = parse_ok("supervisor: s\n"
	               "defaults: {shutdown: 1s, heartbeat: 2s}\n"
	               "children:\n"
	               "  - {worker: a, command: x}\n"
	               "  - {worker: b, command: y, environment: {A: '1'}}\n"
	               "  - {worker: c, command: x, shutdown: 3s}\n"
	               "  - {worker: d, command: x, instances: 2}\n"
	               "  - supervisor: inner\n"
	               "    defaults: {shutdown: 1s, heartbeat: 2s}\n"
	               "    template: {command: z}\n"
	               "  - supervisor: other\n"
	               "    defaults: {shutdown: 1s, heartbeat: 2s}\n"
	               "    children: [{worker: e, command: x}]\n");
	s = cfg->root;
	assert_int_equal(s->nchildren, 7);
	shared = s->children[0]->pol;
	assert_ptr_equal(s->children[1]->pol, shared); /* own env: same */
	assert_ptr_not_equal(s->children[2]->pol, shared);
	assert_int_equal(s->children[2]->pol->shutdown_ms, 3000);
	assert_ptr_equal(s->children[3]->pol, shared); /* d.1 */
	assert_ptr_equal(s->children[4]->pol, shared); /* d.2 */
	inner = s->children[5];
	assert_ptr_equal(s->children[6]->children[0]->pol, shared);
	assert_int_equal(inner->tmpl->pol->shutdown_ms, 1000); /* its own: */
	assert_int_equal(inner->tmpl->pol->restart, RESTART_TRANSIENT);
	assert_ptr_equal(inner->pol, s->children[6]->pol); /* supervisors */
	/* the same command, kept once (the instances', once for both);
	 * another, its own */
	assert_ptr_equal(s->children[2]->argv, s->children[0]->argv);
	assert_ptr_equal(s->children[4]->argv, s->children[3]->argv);
	assert_ptr_not_equal(s->children[1]->argv, s->children[0]->argv);
	assert_int_equal(s->children[0]->borrowed, 0);
	assert_int_equal(s->children[2]->borrowed, SPEC_BORROWS_ARGV);
	assert_int_equal(shared->shutdown_ms, 1000);
	assert_int_equal(shared->heartbeat_ms, 2000);
	assert_true(shared->refs >= 5);
	task = config_task_spec(inner->tmpl, "t1", NULL, NULL);
	assert_ptr_equal(task->pol, inner->tmpl->pol);
	spec_policy_own(task)->shutdown_ms = 9000;
	assert_ptr_not_equal(task->pol, inner->tmpl->pol);
	assert_int_not_equal(inner->tmpl->pol->shutdown_ms, 9000);
	spec_policy_own(s->children[0])->shutdown_ms = 5000;
	assert_int_equal(s->children[1]->pol->shutdown_ms, 1000);
	assert_true(spec_policy_equal(s->children[1], s->children[3]));
	assert_false(spec_policy_equal(s->children[0], s->children[1]));
	config_task_spec_free(task);
	config_free(cfg);
}

/* Every spec's policy, in the heap: none left in the load's pool. */
static size_t
count_unpooled(const struct spec *s)
{
	size_t n = 1;

	assert_false(s->pol->pooled);
	for (size_t i = 0; i < s->nchildren; i++)
		n += count_unpooled(s->children[i]);
	if (s->defaults != NULL)
		n += count_unpooled(s->defaults);
	if (s->tmpl != NULL)
		n += count_unpooled(s->tmpl);
	return n;
}

/* Idle memory: the policy each spec has while it is parsed lives in the
 * load's own pages, not the heap, so the copies spec_intern drops leave no
 * hole between the specs (one a worker, 384 bytes each: with 1,000
 * workers, 90 KiB of the daemon's heap stayed resident in the holes'
 * remains; tools/bench/idle.py measures it). The kept ones are in the
 * heap once the load is done, shared as before; a load that fails frees
 * its specs before the pool (ASan: no pooled policy reaches free). */
static void
test_policies_leave_the_pool(void **state)
{
	enum { N = 1000 };
	struct text_buf y;
	struct config *cfg;

	(void)state;
	text_buf_init(&y, 1u << 20);
	text_buf_printf(&y, "supervisor: s\n"
	                    "defaults: {heartbeat: 2s}\n"
	                    "children:\n"
	                    "  - {worker: i, command: x, instances: 3}\n"
	                    "  - {supervisor: pool, template: {command: z}}\n");
	for (int i = 0; i < N; i++)
		text_buf_printf(&y,
		                "  - {worker: w%d, command: [x, '%d'],"
		                " shutdown: %ds}\n",
		                i, i, 1 + i % 3);
	cfg = parse_ok(y.data);
	/* root, its defaults, i-1..3, pool, its template, the workers */
	assert_int_equal(count_unpooled(cfg->root), 1 + 1 + 3 + 2 + N);
	assert_true(cfg->root->children[0]->pol->refs >= 3);
	assert_ptr_equal(cfg->root->children[4]->pol,
	                 cfg->root->children[7]->pol); /* w0, w3: 1s */
	config_free(cfg);
	/* the same, and an error after every spec was made */
	text_buf_printf(&y, "  - {worker: w0, command: x}\n");
	parse_bad(y.data, "duplicate name");
	text_buf_free(&y);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_merge_keys),
	        cmocka_unit_test(test_merge_errors),
	        cmocka_unit_test(test_anchor_errors),
	        cmocka_unit_test(test_many_anchors),
	        cmocka_unit_test(test_billion_laughs),
	        cmocka_unit_test(test_error_cap),
	        cmocka_unit_test(test_huge_map),
	        cmocka_unit_test(test_map_at_cap),
	        cmocka_unit_test(test_list_cap),
	        cmocka_unit_test(test_env_expansion_bounded),
	        cmocka_unit_test(test_instances),
	        cmocka_unit_test(test_defaults),
	        cmocka_unit_test(test_policies_shared),
	        cmocka_unit_test(test_commands_shared_while_parsing),
	        cmocka_unit_test(test_policies_leave_the_pool),
	        cmocka_unit_test(test_many_parents),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
