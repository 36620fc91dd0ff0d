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
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include "events.h"
#include "metrics.h"
#include "util.h"

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
	assert_int_equal(util_parse_hostport("127.0.0.1:9464", &ss, &len), 0);
	assert_int_equal(v4->sin_family, AF_INET);
	assert_int_equal(ntohs(v4->sin_port), 9464);
	assert_int_equal(ntohl(v4->sin_addr.s_addr), INADDR_LOOPBACK);
	assert_int_equal(util_parse_hostport("[::1]:80", &ss, &len), 0);
	assert_int_equal(v6->sin6_family, AF_INET6);
	assert_int_equal(len, sizeof *v6);
	assert_int_equal(util_parse_hostport(":9464", &ss, &len), 0);
	assert_int_equal(v4->sin_addr.s_addr, htonl(INADDR_ANY));
	assert_int_equal(util_parse_hostport("*:9464", &ss, &len), 0);
	assert_int_equal(util_parse_hostport("[::]:1", &ss, &len), 0);
	assert_int_equal(util_parse_hostport("::1:9464", &ss, &len), -1);
	assert_int_equal(util_parse_hostport("127.0.0.1", &ss, &len), -1);
	assert_int_equal(util_parse_hostport("127.0.0.1:", &ss, &len), -1);
	assert_int_equal(util_parse_hostport("127.0.0.1:0", &ss, &len), -1);
	assert_int_equal(util_parse_hostport("127.0.0.1:65536", &ss, &len), -1);
	assert_int_equal(util_parse_hostport("127.0.0.1:+80", &ss, &len), -1);
	assert_int_equal(util_parse_hostport("localhost:80", &ss, &len), -1);
	assert_int_equal(util_parse_hostport("[1.2.3.4]:80", &ss, &len), -1);
}

/* Restarts are counted by the kind of their reason, in a bounded table whose
 * last slot takes every kind that does not fit. */
static void
test_restart_reasons(void **state)
{
	struct events ev;
	char why[32];

	(void)state;
	events_init(&ev, NULL);
	events_emit(&ev, EV_RESTARTING, "a", 0, "exit:1", 1, NULL);
	events_emit(&ev, EV_RESTARTING, "a", 0, "exit:2", 2, NULL);
	events_emit(&ev, EV_RESTARTING, "a", 0, "hang", 3, NULL);
	events_emit(&ev, EV_EXITED, "a", 0, "signal:SIGKILL", 3, NULL);
	assert_int_equal(ev.nrestarts, 2);
	assert_string_equal(ev.restarts[0].reason, "exit");
	assert_int_equal(ev.restarts[0].n, 2);
	assert_string_equal(ev.restarts[1].reason, "hang");
	assert_int_equal(ev.counts[EV_RESTARTING], 3);
	assert_int_equal(ev.counts[EV_EXITED], 1);
	for (int i = 0; i < 40; i++) {
		snprintf(why, sizeof why, "kind%d:1", i);
		events_emit(&ev, EV_RESTARTING, "a", 0, why, 1, NULL);
	}
	assert_int_equal(ev.nrestarts, EVENTS_MAX_REASONS);
	assert_string_equal(ev.restarts[EVENTS_MAX_REASONS - 1].reason,
	                    "other");
	assert_int_equal(ev.restarts[EVENTS_MAX_REASONS - 1].n,
	                 40 - (EVENTS_MAX_REASONS - 3));
	events_emit(&ev, EV_RESTARTING, "a", 0, "exit:9", 1, NULL);
	assert_int_equal(ev.restarts[0].n, 3);
	events_close(&ev);
}

/* --- the server, on a private loop -------------------------------------- */

static void
render_one(void *arg, struct metrics_out *o)
{
	(*(int *)arg)++;
	metrics_family(o, "agentsup_up", "gauge", "Up.");
	metrics_sample(o, "agentsup_up", 1, (char *)NULL);
}

/* A loopback port nobody listens on right now. */
static void
free_addr(char *buf, size_t len)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t sl = sizeof sa;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
	snprintf(buf, len, "127.0.0.1:%u", ntohs(sa.sin_port));
	close(fd);
}

static int
client(const char *addr)
{
	struct sockaddr_storage ss;
	unsigned len;
	int fd;

	assert_int_equal(util_parse_hostport(addr, &ss, &len), 0);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&ss, len), 0);
	return fd;
}

/* Run the loop until fd has been closed by the server (EOF or reset) or
 * the time runs out; what it read (up to len) goes to buf. */
static bool
run_until_closed(struct ev_loop *loop, int fd, double secs, char *buf,
                 size_t len)
{
	double end = ev_time() + secs;
	size_t got = 0;

	while (ev_time() < end) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		ev_run(loop, EVRUN_NOWAIT);
		if (poll(&p, 1, 5) == 1) {
			ssize_t n = recv(fd, buf + got, len - 1 - got, 0);
			if (n <= 0) {
				buf[got] = '\0';
				return n == 0 || errno == ECONNRESET;
			}
			got += (size_t)n;
		}
	}
	buf[got] = '\0';
	return false;
}

static void
count_turn(struct ev_loop *loop, ev_check *w, int revents)
{
	(void)loop;
	(void)revents;
	(*(int *)w->data)++;
}

static void
guard_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)w;
	(void)revents;
	ev_break(loop, EVBREAK_ONE);
}

/* How many times the loop woke up in secs. */
static int
loop_turns_in(struct ev_loop *loop, double secs)
{
	ev_check check;
	ev_timer guard;
	int turns = 0;

	ev_check_init(&check, count_turn);
	check.data = &turns;
	ev_check_start(loop, &check);
	ev_timer_init(&guard, guard_cb, secs, 0.);
	ev_timer_start(loop, &guard);
	ev_run(loop, 0);
	ev_check_stop(loop, &check);
	ev_timer_stop(loop, &guard);
	return turns;
}

static void
test_serve_deadline_eviction_and_idle(void **state)
{
	struct metrics_limits lim = {2, 0.3, 1 << 16};
	struct ev_loop *loop = ev_loop_new(0);
	struct metrics *m;
	const char *why;
	char addr[64], buf[4096];
	int renders = 0, a, b, c;
	double t0;

	(void)state;
	free_addr(addr, sizeof addr);
	m = metrics_open(loop, addr, &lim, render_one, &renders, &why);
	assert_non_null(m);
	/* one request, one answer, then the server closes */
	a = client(addr);
	assert_int_equal(send(a, "GET /metrics HTTP/1.0\r\n\r\n", 25, 0), 25);
	assert_true(run_until_closed(loop, a, 2, buf, sizeof buf));
	assert_non_null(strstr(buf, "HTTP/1.1 200 OK\r\n"));
	assert_non_null(strstr(buf, "\r\n\r\n# HELP agentsup_up Up.\n"));
	assert_int_equal(renders, 1);
	close(a);
	/* a slow client is cut at its deadline, counted from accept */
	a = client(addr);
	assert_int_equal(send(a, "GET /me", 7, 0), 7);
	t0 = ev_time();
	assert_true(run_until_closed(loop, a, 3, buf, sizeof buf));
	assert_true(ev_time() - t0 >= 0.25);
	close(a);
	/* a third client pushes the oldest of two out */
	a = client(addr);
	b = client(addr);
	ev_run(loop, EVRUN_NOWAIT);
	c = client(addr);
	assert_true(run_until_closed(loop, a, 0.2, buf, sizeof buf));
	close(a);
	close(b);
	close(c);
	/* once every client is gone the loop sleeps: in a second, the only
	 * wake-up is the guard's own */
	t0 = ev_time();
	while (ev_time() - t0 < 0.1)
		ev_run(loop, EVRUN_NOWAIT);
	assert_int_equal(loop_turns_in(loop, 1.0), 1);
	metrics_close(m);
	assert_false(ev_run(loop, EVRUN_NOWAIT)); /* nothing left active */
	ev_loop_destroy(loop);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_family_and_escaping),
	        cmocka_unit_test(test_numbers),
	        cmocka_unit_test(test_bound),
	        cmocka_unit_test(test_addresses),
	        cmocka_unit_test(test_restart_reasons),
	        cmocka_unit_test(test_serve_deadline_eviction_and_idle),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
