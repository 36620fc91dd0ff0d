/*
 * test_events.c - the lines events write: valid and whole however long or
 * hostile their fields, and an events file that loses lines only whole,
 * counted and said (a full disk played by a stand-in for write(2)).
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "events.h"
#include "log.h"

static char tmpdir[] = "/tmp/test_events.XXXXXX";
static char file[256], errfile[256];

static int
setup(void **state)
{
	int fd;

	(void)state;
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	snprintf(file, sizeof file, "%s/events.jsonl", tmpdir);
	snprintf(errfile, sizeof errfile, "%s/stderr", tmpdir);
	/* the human lines go to stderr: a file of ours, read back below */
	fd = open(errfile, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0600);
	if (fd < 0 || dup2(fd, STDERR_FILENO) < 0)
		return -1;
	close(fd);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	log_detach();
	unlink(file);
	unlink(errfile);
	rmdir(tmpdir);
	return 0;
}

static char *
slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "r");
	char *s = NULL;
	size_t n = 0, cap = 0;
	int c;

	assert_non_null(f);
	while ((c = fgetc(f)) != EOF) {
		if (n + 2 > cap)
			s = realloc(s, cap = cap * 2 + 4096);
		s[n++] = (char)c;
	}
	fclose(f);
	if (s == NULL)
		s = calloc(1, 1);
	s[n] = '\0';
	if (len)
		*len = n;
	return s;
}

/* A fresh events file and stderr for each test. */
static void
fresh(struct events *ev)
{
	unlink(file);
	assert_int_equal(truncate(errfile, 0), 0);
	events_init(ev, file);
	ev->color = false;
}

/* The deepest legal path: 32 levels of 64-character names. */
static char *
long_path(void)
{
	char *p = malloc(33 * 65 + 8);
	size_t at = 0;

	at += (size_t)sprintf(p, "root");
	for (int i = 0; i < 32; i++) {
		p[at++] = '/';
		memset(p + at, 'a' + i % 26, 64);
		at += 64;
	}
	p[at] = '\0';
	return p;
}

static void
test_every_kind_has_one_name(void **state)
{
	(void)state;
	for (int i = 0; i < EV__COUNT; i++) {
		assert_non_null(events_kind_name(i));
		for (int j = 0; j < i; j++)
			assert_string_not_equal(events_kind_name(i),
			                        events_kind_name(j));
	}
	assert_string_equal(events_kind_name(EV_GAVE_UP), "gave_up");
}

/* A 2 KiB path and a 600-byte reload report: whole, and the line ends. */
static void
test_long_fields_stay_whole(void **state)
{
	struct events ev;
	char *path = long_path(), report[601], *got;
	size_t len;

	(void)state;
	memset(report, 'r', 600);
	report[600] = '\0';
	fresh(&ev);
	events_emit(&ev, EV_RELOAD_APPLIED, path, 0, NULL, 0, "added [%s]",
	            report);
	events_close(&ev);
	got = slurp(file, &len);
	assert_true(len > 2700);
	assert_non_null(strstr(got, path));
	assert_non_null(strstr(got, report));
	assert_null(strstr(got, "truncated"));
	assert_memory_equal(got + len - 4, "]\"}\n", 4);
	free(got);
	/* and the human line has both too, on one line */
	got = slurp(errfile, &len);
	assert_non_null(strstr(got, path));
	assert_non_null(strstr(got, report));
	assert_ptr_equal(strchr(got, '\n'), got + len - 1);
	free(got);
	free(path);
}

/* A detail past its budget is cut, marked, and the line still closes. */
static void
test_huge_detail_is_cut_and_marked(void **state)
{
	struct events ev;
	size_t n = 100000, len;
	char *big = malloc(n + 1), *got, *mark;

	(void)state;
	memset(big, 'x', n);
	big[n] = '\0';
	big[5000] = '\n'; /* escaped as two bytes */
	fresh(&ev);
	events_emit(&ev, EV_COMMAND, "root", 0, NULL, 0, "%s", big);
	events_close(&ev);
	got = slurp(file, &len);
	assert_true(len <= EVENTS_LINE_MAX);
	assert_memory_equal(got + len - 2, "}\n", 2);
	assert_non_null(strstr(got, ",\"truncated\":true}"));
	mark = strstr(got, "\xE2\x80\xA6(+");
	assert_non_null(mark);
	/* the count says exactly how much of the detail is missing */
	size_t kept = (size_t)(mark - strstr(got, "xxx")) - 1; /* one \n */
	assert_int_equal(strtoull(mark + 5, NULL, 10), n - kept);
	free(got);
	got = slurp(errfile, &len);
	assert_true(len <= LOG_LINE_MAX);
	assert_non_null(strstr(got, "\xE2\x80\xA6(+"));
	assert_ptr_equal(strchr(got, '\n'), got + len - 1);
	free(got);
	free(big);
}

/* Worker text cannot forge a line, colour a terminal, or break JSON. */
static void
test_hostile_text_is_escaped(void **state)
{
	struct events ev;
	char *got;
	size_t len;

	(void)state;
	fresh(&ev);
	events_emit(&ev, EV_PROTOCOL_ERROR, "root/w", 42, "protocol", 0,
	            "unknown type \"%s\"",
	            "x\n12:00:00.000 root/w gave_up\x1b[31m\xff\xc0");
	events_close(&ev);
	got = slurp(file, &len);
	assert_non_null(strstr(got, "unknown type \\\"x\\n12:00:00.000 root/w "
	                            "gave_up\\u001b[31m\xEF\xBF\xBD\xEF\xBF"
	                            "\xBD\\\"\"}\n"));
	assert_ptr_equal(strchr(got, '\n'), got + len - 1);
	free(got);
	got = slurp(errfile, &len);
	assert_non_null(strstr(got, "\"x\\n12:00:00.000 root/w "
	                            "gave_up\\x1b[31m\\xff\\xc0\""));
	assert_ptr_equal(strchr(got, '\n'), got + len - 1);
	free(got);
}

/* A tail and typed fields; NaN is null; too many fields are marked. */
static void
test_tail_and_fields(void **state)
{
	struct event_field f[EVENTS_FIELDS_MAX + 1] = {
	        {.key = "delay_ms", .type = EVENT_UINT, .u = 1500},
	        {.key = "cost", .type = EVENT_DOUBLE, .d = NAN},
	        {.key = "rate", .type = EVENT_DOUBLE, .d = 0.25},
	        {.key = "why", .type = EVENT_STR, .s = "a\tb"},
	};
	struct event e = {.kind = EV_EXITED,
	                  .path = "root/w",
	                  .reason = "exit:1",
	                  .tail = "Traceback:\n  boom\n",
	                  .fields = f,
	                  .nfields = 4};
	struct events ev;
	char *got;

	(void)state;
	fresh(&ev);
	events_emit_ex(&ev, &e);
	for (size_t i = 4; i < EVENTS_FIELDS_MAX + 1; i++)
		f[i] = (struct event_field){.key = "n", .type = EVENT_UINT};
	e.nfields = EVENTS_FIELDS_MAX + 1;
	events_emit_ex(&ev, &e);
	events_close(&ev);
	got = slurp(file, NULL);
	assert_non_null(strstr(got, "\"seq\":1,"));
	assert_non_null(strstr(got, ",\"reason\":\"exit:1\",\"tail\":"
	                            "\"Traceback:\\n  boom\\n\",\"delay_ms\":"
	                            "1500,\"cost\":null,\"rate\":0.25,\"why\":"
	                            "\"a\\tb\"}\n"));
	/* the second: all but the last field, and said */
	assert_non_null(strstr(got, "\"seq\":2,"));
	assert_non_null(strstr(got, ",\"n\":0,\"truncated\":true}\n"));
	free(got);
	got = slurp(errfile, NULL);
	assert_non_null(strstr(got, "exit:1 delay_ms=1500 cost=nan rate=0.25 "
	                            "why=a\\tb\n"));
	free(got);
}

/* The stand-in disk: takes `room` more bytes, then says ENOSPC. */
static long room = -1;

static ssize_t
full_disk_write(int fd, const void *p, size_t n)
{
	if (room < 0)
		return write(fd, p, n);
	if (room == 0) {
		errno = ENOSPC;
		return -1;
	}
	if ((long)n > room)
		n = (size_t)room;
	ssize_t w = write(fd, p, n);
	if (w > 0)
		room -= w;
	return w;
}

/* A disk fills mid-line and frees up later: every line in the file is
 * whole, the lost ones are counted exactly, and said once. */
static void
test_full_disk_loses_whole_lines_and_says_so(void **state)
{
	struct events ev;
	char *got, *line, *save;
	unsigned long long seqs[64], nseq = 0, count = 0, first = 0, last = 0;

	(void)state;
	fresh(&ev);
	ev.write_fn = full_disk_write;
	room = -1;
	for (int i = 0; i < 3; i++)
		events_emit(&ev, EV_STARTED, "root/w", 100 + i, NULL, 0, NULL);
	room = 40; /* the 4th line is cut at 40 bytes: taken back */
	for (int i = 0; i < 5; i++)
		events_emit(&ev, EV_EXITED, "root/w", 200 + i, "exit:1", 0,
		            "detail %d", i);
	room = -1; /* space is back */
	events_emit(&ev, EV_STARTED, "root/w", 300, NULL, 0, NULL);
	events_emit(&ev, EV_STARTED, "root/w", 301, NULL, 0, NULL);
	events_close(&ev);

	got = slurp(file, NULL);
	for (line = strtok_r(got, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save)) {
		assert_int_equal(line[0], '{');
		assert_int_equal(line[strlen(line) - 1], '}');
		if (strstr(line, "\"kind\":\"events_dropped\"") != NULL) {
			assert_int_equal(
			        sscanf(strstr(line, "\"count\""),
			               "\"count\":%llu,\"first_seq\":%llu,"
			               "\"last_seq\":%llu",
			               &count, &first, &last),
			        3);
			assert_non_null(
			        strstr(line, "No space left on device"));
			continue;
		}
		assert_int_equal(sscanf(line, "{\"seq\":%llu", &seqs[nseq]), 1);
		nseq++;
	}
	free(got);
	assert_int_equal(nseq, 5); /* 1 2 3, then 9 10 */
	assert_int_equal(seqs[2], 3);
	assert_int_equal(seqs[3], 9);
	assert_int_equal(count, 5);
	assert_int_equal(first, 4);
	assert_int_equal(last, 8);
	/* and the log said it once when it began and once when it ended */
	got = slurp(errfile, NULL);
	assert_non_null(strstr(got, "counting the events it loses: No space"));
	assert_non_null(strstr(got, "writing again; 5 events were lost"));
	free(got);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_every_kind_has_one_name),
	        cmocka_unit_test(test_long_fields_stay_whole),
	        cmocka_unit_test(test_huge_detail_is_cut_and_marked),
	        cmocka_unit_test(test_hostile_text_is_escaped),
	        cmocka_unit_test(test_tail_and_fields),
	        cmocka_unit_test(test_full_disk_loses_whole_lines_and_says_so),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
