/*
 * test_termlog.c - the termination record: never over 4 KiB, only whole
 * events (the newest, oldest first), the node that failed and the
 * supervisor that gave up, and strings escaped.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "termlog.h"

static void
feed(struct termlog *t, enum event_kind k, const char *path, const char *reason,
     const char *detail, int seq, size_t pad)
{
	struct event e = {.seq = (uint64_t)seq,
	                  .kind = k,
	                  .path = path,
	                  .reason = reason,
	                  .detail = detail};
	char json[8192];

	snprintf(json, sizeof json, "{\"seq\":%d,\"pad\":\"%*s\"}", seq,
	         (int)pad, "");
	termlog_event(t, &e, json);
}

static void
test_bounded_newest_whole(void **state)
{
	struct termlog *t = termlog_new();
	char buf[TERMLOG_MAX + 1], want[32];
	size_t n;

	(void)state;
	for (int i = 1; i <= 40; i++)
		feed(t, EV_EXITED, "top/flaky", "exit:3", NULL, i, 400);
	feed(t, EV_GAVE_UP, "top", "exit:3", NULL, 41, 10);
	feed(t, EV_STOPPED, "top", NULL, NULL, 42,
	     5000); /* longer than a record: left out */
	n = termlog_format(t, 75, buf, sizeof buf);
	assert_true(n <= TERMLOG_MAX);
	assert_int_equal(strlen(buf), n);
	assert_non_null(strstr(buf, "\"status\":75,\"reason\":\"gave_up\""));
	assert_non_null(strstr(buf, "\"node\":\"top/flaky\""));
	assert_non_null(strstr(buf, "\"supervisor\":\"top\""));
	assert_null(strstr(buf, "\"seq\":42"));
	/* the newest that fit, in order, ending with the last kept */
	assert_non_null(strstr(buf, "{\"seq\":41,"));
	snprintf(want, sizeof want, "{\"seq\":40,");
	assert_true(strstr(buf, want) < strstr(buf, "{\"seq\":41,"));
	assert_null(strstr(buf, "{\"seq\":1,"));
	assert_string_equal(buf + n - 2, "]}");
	termlog_free(t);
}

/* An event of a little over 1 KiB (an exit with its tail) was left out
 * although it fit; one that does not fit what is left is passed over,
 * and the older ones that do still come. */
static void
test_a_big_event_that_fits_is_kept(void **state)
{
	struct termlog *t = termlog_new();
	char buf[TERMLOG_MAX + 1];

	(void)state;
	feed(t, EV_STARTED, "top/w", NULL, NULL, 1, 50);
	feed(t, EV_EXITED, "top/w", "exit:3", NULL, 2, 3500);
	feed(t, EV_EXITED, "top/w", "exit:3", NULL, 3, 1200);
	feed(t, EV_GAVE_UP, "top", "exit:3", NULL, 4, 10);
	termlog_format(t, 75, buf, sizeof buf);
	assert_non_null(strstr(buf, "{\"seq\":3,"));
	assert_non_null(strstr(buf, "{\"seq\":4,"));
	assert_null(strstr(buf, "{\"seq\":2,"));      /* no room left for it */
	assert_non_null(strstr(buf, "[{\"seq\":1,")); /* older, small */
	assert_true(strstr(buf, "{\"seq\":3,") < strstr(buf, "{\"seq\":4,"));
	termlog_free(t);
}

static void
test_clean_exit_and_escaping(void **state)
{
	struct termlog *t = termlog_new();
	char buf[TERMLOG_MAX + 1];

	(void)state;
	feed(t, EV_EXITED, "a\"b\\c\n", "signal:SIGKILL", NULL, 1, 0);
	feed(t, EV_SHUTDOWN, "root", NULL, NULL, 2, 0);
	/* a stopped worker is no failure */
	feed(t, EV_EXITED, "root/ok", "signal:SIGTERM", "stopped", 3, 0);
	termlog_format(t, 0, buf, sizeof buf);
	assert_non_null(strstr(buf, "\"reason\":\"shutdown\""));
	assert_non_null(strstr(buf, "\"node\":\"a\\\"b\\\\c\\u000a\""));
	assert_non_null(strstr(buf, "\"supervisor\":\"\""));
	termlog_free(t);
	t = termlog_new();
	termlog_format(t, 0, buf, sizeof buf);
	assert_string_equal(buf, "{\"status\":0,\"reason\":\"exited\",\"node\":"
	                         "\"\",\"supervisor\":\"\",\"events\":[]}");
	termlog_free(t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_bounded_newest_whole),
	        cmocka_unit_test(test_a_big_event_that_fits_is_kept),
	        cmocka_unit_test(test_clean_exit_and_escaping),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
