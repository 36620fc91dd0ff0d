/*
 * test_http.c - the request head parser: what Prometheus and curl send, every
 * split of it, and each way a hostile or broken client can be wrong.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "http.h"

#define PROM                                                                   \
	"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:9100\r\n"                    \
	"User-Agent: Prometheus/2.42.0\r\nAccept: "                            \
	"application/openmetrics-text;version=1.0.0,text/plain;q=0.5\r\n"      \
	"Accept-Encoding: gzip\r\nX-Prometheus-Scrape-Timeout-Seconds: "       \
	"10\r\n\r\n"

static enum http_verdict
parse_str(const char *s, struct http_request *r)
{
	return http_parse(s, strlen(s), r);
}

static void
expect_status(const char *s, int status)
{
	struct http_request r;

	assert_int_equal(parse_str(s, &r), HTTP_ERROR);
	assert_int_equal(r.status, status);
	assert_non_null(r.reason);
}

static void
test_prometheus_request(void **state)
{
	struct http_request r;

	(void)state;
	assert_int_equal(parse_str(PROM, &r), HTTP_OK);
	assert_int_equal(r.method, HTTP_GET);
	assert_int_equal(r.minor, 1);
	assert_int_equal(r.nheaders, 5);
	assert_int_equal(r.head_len, strlen(PROM));
	assert_true(http_path_is(&r, "/metrics"));
	assert_false(http_path_is(&r, "/metric"));
	assert_false(http_path_is(&r, "/metricsx"));
}

/* Every prefix of a valid head is "more", never a verdict. */
static void
test_every_split_is_more(void **state)
{
	struct http_request r;

	(void)state;
	for (size_t n = 0; n < strlen(PROM); n++)
		assert_int_equal(http_parse(PROM, n, &r), HTTP_MORE);
}

static void
test_lf_only_and_mixed(void **state)
{
	struct http_request r;

	(void)state;
	assert_int_equal(parse_str("GET /metrics HTTP/1.1\nHost: x\n\n", &r),
	                 HTTP_OK);
	assert_int_equal(r.head_len, 31);
	assert_int_equal(
	        parse_str("GET /metrics HTTP/1.1\r\nHost: x\n\r\n", &r),
	        HTTP_OK);
	assert_int_equal(r.nheaders, 1);
}

static void
test_http10_without_headers(void **state)
{
	struct http_request r;

	(void)state;
	assert_int_equal(parse_str("GET /metrics HTTP/1.0\r\n\r\n", &r),
	                 HTTP_OK);
	assert_int_equal(r.minor, 0);
	assert_int_equal(r.nheaders, 0);
	assert_int_equal(parse_str("HEAD /metrics HTTP/1.0\r\n\r\n", &r),
	                 HTTP_OK);
	assert_int_equal(r.method, HTTP_HEAD);
}

static void
test_host_rules(void **state)
{
	(void)state;
	expect_status("GET /metrics HTTP/1.1\r\n\r\n", 400);
	expect_status("GET /metrics HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n",
	              400);
}

static void
test_query_and_pipelined_bytes(void **state)
{
	const char *s = "GET /metrics?name[]=up HTTP/1.0\r\n\r\nGET /other "
	                "HTTP/1.0\r\n\r\n\x00\xff garbage";
	struct http_request r;

	(void)state;
	assert_int_equal(http_parse(s, 60, &r), HTTP_OK);
	assert_true(http_path_is(&r, "/metrics"));
	assert_int_equal(r.head_len, 35);
}

/* The absolute-form a server must accept (RFC 9112 3.2.2), and the method
 * known on an error (a HEAD's error answer has no body). */
static void
test_absolute_form_and_method_on_error(void **state)
{
	struct http_request r;

	(void)state;
	assert_int_equal(parse_str("GET http://x:9/metrics?a=1 "
	                           "HTTP/1.1\r\nHost: x\r\n\r\n",
	                           &r),
	                 HTTP_OK);
	assert_true(http_path_is(&r, "/metrics"));
	assert_int_equal(
	        parse_str("GET HTTPS://x HTTP/1.1\r\nHost: x\r\n\r\n", &r),
	        HTTP_OK);
	assert_true(http_path_is(&r, "/"));
	assert_int_equal(parse_str("HEAD /x HTTP/2.0\r\n\r\n", &r), HTTP_ERROR);
	assert_int_equal(r.status, 505);
	assert_int_equal(r.method, HTTP_HEAD);
	assert_int_equal(parse_str("PUT /x HTTP/1.1\r\n\r\n", &r), HTTP_ERROR);
	assert_int_equal(r.method, HTTP_OTHER);
}

static void
test_methods_and_versions(void **state)
{
	(void)state;
	expect_status("POST /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 405);
	expect_status("get /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 405);
	expect_status("GET /metrics HTTP/2.0\r\n\r\n", 505);
	expect_status("GET /metrics HTTP/1.2\r\n\r\n", 505);
	expect_status("GET /metrics HTTP/1.1x\r\n\r\n", 400);
	expect_status("GET /metrics http/1.1\r\n\r\n", 400);
	expect_status("GET /metrics\r\n\r\n", 400);
	expect_status("GET  /metrics HTTP/1.0\r\n\r\n", 400);
	expect_status("GET metrics HTTP/1.0\r\n\r\n", 400);
	expect_status("GET http:///metrics HTTP/1.0\r\n\r\n", 400);
	expect_status("GET http://x?q HTTP/1.0\r\n\r\n", 400);
	expect_status("OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", 405);
	expect_status("\r\nGET /metrics HTTP/1.0\r\n\r\n", 400);
}

static void
test_bad_bytes(void **state)
{
	struct http_request r;
	const char nul[] = "GET /metrics HTTP/1.0\r\nA: b\0c\r\n\r\n";
	const char nul_line[] = "GET /met\0rics HTTP/1.0\r\n\r\n";

	(void)state;
	assert_int_equal(http_parse(nul, sizeof nul - 1, &r), HTTP_ERROR);
	assert_int_equal(r.status, 400);
	assert_int_equal(http_parse(nul_line, sizeof nul_line - 1, &r),
	                 HTTP_ERROR);
	assert_int_equal(r.status, 400);
	expect_status("GET /metrics HTTP/1.0\r\nA: b\rc\r\n\r\n", 400);
	expect_status("GET /metrics HTTP/1.0\r\nA: b\x01\r\n\r\n", 400);
	expect_status("GET /metrics HTTP/1.0\r\nA: b\r\n c\r\n\r\n", 400);
	expect_status("GET /metrics HTTP/1.0\r\nA : b\r\n\r\n", 400);
	expect_status("GET /metrics HTTP/1.0\r\nno colon\r\n\r\n", 400);
	expect_status("GET /metrics HTTP/1.0\r\n: empty\r\n\r\n", 400);
	expect_status("GET /m\xc3\xa9trics HTTP/1.0\r\n\r\n", 400);
	/* junk is refused before any line ends: a TLS hello */
	expect_status("\x16\x03\x01\x02\x00\x01", 400);
}

static void
test_long_target(void **state)
{
	char *s = malloc(HTTP_MAX_HEAD + 64);
	struct http_request r;
	size_t n;

	(void)state;
	n = (size_t)sprintf(s, "GET /");
	memset(s + n, 'a', HTTP_MAX_TARGET);
	n += HTTP_MAX_TARGET;
	/* refused before the line ends, and when it does */
	assert_int_equal(http_parse(s, n, &r), HTTP_ERROR);
	assert_int_equal(r.status, 414);
	n += (size_t)sprintf(s + n, " HTTP/1.0\r\n\r\n");
	assert_int_equal(http_parse(s, n, &r), HTTP_ERROR);
	assert_int_equal(r.status, 414);
	/* one byte less is fine */
	n = (size_t)sprintf(s, "GET /");
	memset(s + n, 'a', HTTP_MAX_TARGET - 1);
	n += HTTP_MAX_TARGET - 1;
	n += (size_t)sprintf(s + n, " HTTP/1.0\r\n\r\n");
	assert_int_equal(http_parse(s, n, &r), HTTP_OK);
	/* a line of 8 KiB without a space: not a target */
	memset(s, 'A', HTTP_MAX_HEAD);
	assert_int_equal(http_parse(s, HTTP_MAX_HEAD, &r), HTTP_ERROR);
	assert_int_equal(r.status, 400);
	free(s);
}

/* A head of exactly the limit is served; one byte more is 431, and so is a
 * 100 KB header, of which only the limit is ever read. */
static void
test_head_limit(void **state)
{
	size_t big = 100 * 1024;
	char *s = malloc(big + 16);
	const char *start = "GET /metrics HTTP/1.0\r\nX: ";
	struct http_request r;
	size_t n = strlen(start);

	(void)state;
	memcpy(s, start, n);
	memset(s + n, 'v', HTTP_MAX_HEAD - n - 4);
	memcpy(s + HTTP_MAX_HEAD - 4, "\r\n\r\n", 4);
	assert_int_equal(http_parse(s, HTTP_MAX_HEAD, &r), HTTP_OK);
	assert_int_equal(r.head_len, HTTP_MAX_HEAD);
	memset(s + n, 'v', HTTP_MAX_HEAD - n - 3);
	memcpy(s + HTTP_MAX_HEAD - 3, "\r\n\r\n", 4);
	assert_int_equal(http_parse(s, HTTP_MAX_HEAD + 1, &r), HTTP_ERROR);
	assert_int_equal(r.status, 431);
	memset(s + n, 'v', big - n);
	assert_int_equal(http_parse(s, big, &r), HTTP_ERROR);
	assert_int_equal(r.status, 431);
	/* below the limit it is only incomplete */
	assert_int_equal(http_parse(s, HTTP_MAX_HEAD - 1, &r), HTTP_MORE);
	free(s);
}

static void
test_header_count(void **state)
{
	char s[2048];
	struct http_request r;
	size_t n;

	(void)state;
	n = (size_t)sprintf(s, "GET /metrics HTTP/1.0\r\n");
	for (int i = 0; i < HTTP_MAX_HEADERS; i++)
		n += (size_t)sprintf(s + n, "a:%d\r\n", i % 10);
	n += (size_t)sprintf(s + n, "\r\n");
	assert_int_equal(http_parse(s, n, &r), HTTP_OK);
	assert_int_equal(r.nheaders, HTTP_MAX_HEADERS);
	n -= 2;
	n += (size_t)sprintf(s + n, "b:1\r\n\r\n");
	assert_int_equal(http_parse(s, n, &r), HTTP_ERROR);
	assert_int_equal(r.status, 431);
}

static void
test_status_texts(void **state)
{
	(void)state;
	assert_string_equal(http_status_text(431),
	                    "Request Header Fields Too Large");
	assert_string_equal(http_status_text(404), "Not Found");
	assert_string_equal(http_status_text(599), "Error");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_prometheus_request),
	        cmocka_unit_test(test_every_split_is_more),
	        cmocka_unit_test(test_lf_only_and_mixed),
	        cmocka_unit_test(test_http10_without_headers),
	        cmocka_unit_test(test_host_rules),
	        cmocka_unit_test(test_query_and_pipelined_bytes),
	        cmocka_unit_test(test_methods_and_versions),
	        cmocka_unit_test(test_absolute_form_and_method_on_error),
	        cmocka_unit_test(test_bad_bytes),
	        cmocka_unit_test(test_long_target),
	        cmocka_unit_test(test_head_limit),
	        cmocka_unit_test(test_header_count),
	        cmocka_unit_test(test_status_texts),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
