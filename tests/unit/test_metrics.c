/*
 * test_metrics.c - the exposition format as metrics.c writes it (escaping,
 * numbers, the body bound) and the HOST:PORT parser.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <cmocka.h>
#include <math.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "metrics.h"

/* The body as a C string (it is not terminated). */
static char *
body(struct metrics_out *o)
{
	static char buf[4096];

	assert_true(o->len < sizeof buf);
	memcpy(buf, o->buf, o->len);
	buf[o->len] = '\0';
	return buf;
}

static void
test_family_and_escaping(void **state)
{
	struct metrics_out o;

	(void)state;
	metrics_out_init(&o, 1 << 20);
	metrics_family(&o, "agentsup_x_total", "counter",
	               "a \\ back\nslash and a \"quote\"");
	metrics_sample(&o, "agentsup_x_total", 3, "path", "a\\b\"c\nd", "k", "",
	               (char *)NULL);
	metrics_sample(&o, "agentsup_x_total", 0.5, (char *)NULL);
	assert_string_equal(
	        body(&o),
	        "# HELP agentsup_x_total a \\\\ back\\nslash and a "
	        "\"quote\"\n"
	        "# TYPE agentsup_x_total counter\n"
	        "agentsup_x_total{path=\"a\\\\b\\\"c\\nd\",k=\"\"} 3\n"
	        "agentsup_x_total 0.5\n");
	assert_false(o.overflow);
	metrics_out_free(&o);
}

static void
test_numbers(void **state)
{
	struct metrics_out o;

	(void)state;
	metrics_out_init(&o, 1 << 20);
	metrics_sample(&o, "a", NAN, (char *)NULL);
	metrics_sample(&o, "a", INFINITY, (char *)NULL);
	metrics_sample(&o, "a", -INFINITY, (char *)NULL);
	metrics_sample(&o, "a", 123456789012.0, (char *)NULL);
	metrics_sample(&o, "a", 0.1, (char *)NULL);
	metrics_sample(&o, "a", 1e300, (char *)NULL);
	metrics_sample(&o, "a", -2, (char *)NULL);
	assert_string_equal(body(&o), "a NaN\na +Inf\na -Inf\na 123456789012\n"
	                              "a 0.1\na 1e+300\na -2\n");
	metrics_out_free(&o);
}

/* Past the bound nothing more is written and the body is marked. */
static void
test_bound(void **state)
{
	struct metrics_out o;

	(void)state;
	metrics_out_init(&o, 64);
	for (int i = 0; i < 100; i++)
		metrics_sample(&o, "agentsup_long_metric_name", i, "path",
		               "some/path", (char *)NULL);
	assert_true(o.overflow);
	assert_true(o.len <= 64);
	assert_true(o.cap <= 64);
	metrics_out_free(&o);
}

static void
test_addresses(void **state)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
	unsigned len;

	(void)state;
	assert_int_equal(metrics_parse_addr("127.0.0.1:9464", &ss, &len), 0);
	assert_int_equal(v4->sin_family, AF_INET);
	assert_int_equal(ntohs(v4->sin_port), 9464);
	assert_int_equal(ntohl(v4->sin_addr.s_addr), INADDR_LOOPBACK);
	assert_int_equal(metrics_parse_addr("[::1]:80", &ss, &len), 0);
	assert_int_equal(v6->sin6_family, AF_INET6);
	assert_int_equal(len, sizeof *v6);
	assert_int_equal(metrics_parse_addr(":9464", &ss, &len), 0);
	assert_int_equal(v4->sin_addr.s_addr, htonl(INADDR_ANY));
	assert_int_equal(metrics_parse_addr("*:9464", &ss, &len), 0);
	assert_int_equal(metrics_parse_addr("[::]:1", &ss, &len), 0);
	assert_int_equal(metrics_parse_addr("::1:9464", &ss, &len), -1);
	assert_int_equal(metrics_parse_addr("127.0.0.1", &ss, &len), -1);
	assert_int_equal(metrics_parse_addr("127.0.0.1:", &ss, &len), -1);
	assert_int_equal(metrics_parse_addr("127.0.0.1:0", &ss, &len), -1);
	assert_int_equal(metrics_parse_addr("127.0.0.1:65536", &ss, &len), -1);
	assert_int_equal(metrics_parse_addr("127.0.0.1:+80", &ss, &len), -1);
	assert_int_equal(metrics_parse_addr("localhost:80", &ss, &len), -1);
	assert_int_equal(metrics_parse_addr("[1.2.3.4]:80", &ss, &len), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_family_and_escaping),
	        cmocka_unit_test(test_numbers),
	        cmocka_unit_test(test_bound),
	        cmocka_unit_test(test_addresses),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
