/*
 * test_notify.c - sd_notify: the datagram parser on every shape of input,
 * the workers' socket (credentials, bounds, passed descriptors) and the
 * messages agentsupd sends up, each over a real socket in this process.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "notify.h"

#define P(s, m) notify_parse((s), sizeof(s) - 1, (m))

static void
test_parse_ready(void **state)
{
	struct notify_msg m;

	(void)state;
	assert_int_equal(P("READY=1", &m), 1);
	assert_true(m.ready);
	assert_false(m.watchdog || m.stopping || m.reloading || m.has_status);
	assert_int_equal(P("READY=1\n", &m), 1);
	assert_true(m.ready);
	assert_int_equal(P("READY=0", &m), 0);
	assert_false(m.ready);
	assert_int_equal(m.ignored, 1);
}

static void
test_parse_many(void **state)
{
	struct notify_msg m;

	(void)state;
	assert_int_equal(P("READY=1\nSTATUS=serving 3 clients\nMAINPID=42\n"
	                   "WATCHDOG=1\nSTOPPING=1\nRELOADING=1",
	                   &m),
	                 5);
	assert_true(m.ready && m.watchdog && m.stopping && m.reloading);
	assert_true(m.has_status);
	assert_int_equal(m.status_len, strlen("serving 3 clients"));
	assert_memory_equal(m.status, "serving 3 clients", m.status_len);
	assert_int_equal(m.ignored, 1); /* MAINPID */
}

static void
test_parse_watchdog_trigger(void **state)
{
	struct notify_msg m;

	(void)state;
	assert_int_equal(P("WATCHDOG=trigger", &m), 1);
	assert_true(m.watchdog_trigger);
	assert_false(m.watchdog);
	assert_int_equal(P("WATCHDOG=2", &m), 0);
	assert_false(m.watchdog || m.watchdog_trigger);
}

static void
test_parse_extend(void **state)
{
	struct notify_msg m;

	(void)state;
	assert_int_equal(P("EXTEND_TIMEOUT_USEC=5000000", &m), 1);
	assert_true(m.has_extend);
	assert_int_equal(m.extend_usec, 5000000);
	assert_int_equal(P("EXTEND_TIMEOUT_USEC=18446744073709551615", &m), 1);
	assert_true(m.extend_usec == UINT64_MAX);
	/* overflow, signs, blanks, empty: not understood */
	assert_int_equal(P("EXTEND_TIMEOUT_USEC=18446744073709551616", &m), 0);
	assert_false(m.has_extend);
	assert_int_equal(P("EXTEND_TIMEOUT_USEC=-1", &m), 0);
	assert_int_equal(P("EXTEND_TIMEOUT_USEC= 5", &m), 0);
	assert_int_equal(P("EXTEND_TIMEOUT_USEC=", &m), 0);
	assert_int_equal(P("EXTEND_TIMEOUT_USEC=123456789012345678901", &m), 0);
}

static void
test_parse_status_edges(void **state)
{
	struct notify_msg m;

	(void)state;
	assert_int_equal(P("STATUS=", &m), 1);
	assert_true(m.has_status);
	assert_int_equal(m.status_len, 0);
	assert_int_equal(P("STATUS=a=b", &m), 1);
	assert_memory_equal(m.status, "a=b", 3);
	/* the last STATUS wins */
	assert_int_equal(P("STATUS=one\nSTATUS=two", &m), 2);
	assert_memory_equal(m.status, "two", 3);
}

static void
test_parse_garbage(void **state)
{
	struct notify_msg m;

	(void)state;
	assert_int_equal(notify_parse("", 0, &m), 0);
	assert_int_equal(P("\n\n\n", &m), 0);
	assert_int_equal(m.ignored, 0);
	assert_int_equal(P("READY", &m), 0);
	assert_int_equal(m.ignored, 1);
	assert_int_equal(P("=1", &m), 0);
	assert_int_equal(P("ready=1", &m), 0); /* keys are case-sensitive */
	assert_int_equal(P("READY=1 ", &m), 0);
	assert_int_equal(P("READY=1\0", &m), -1); /* NUL: not text */
	assert_int_equal(P("\0READY=1", &m), -1);
}

/* --- the workers' socket ------------------------------------------------- */

struct seen {
	int calls;
	pid_t pid, pgid;
	bool ready;
	char status[64];
	bool accept;
};

static bool
on_msg(void *arg, pid_t pid, pid_t pgid, uid_t uid, const struct notify_msg *m)
{
	struct seen *s = arg;

	assert_int_equal(uid, geteuid());
	s->calls++;
	s->pid = pid;
	s->pgid = pgid;
	s->ready = m->ready;
	snprintf(s->status, sizeof s->status, "%.*s", (int)m->status_len,
	         m->has_status ? m->status : "");
	return s->accept;
}

static int
dgram_to(const char *address)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	size_t n = strlen(address);
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_int_equal(address[0], '@');
	memcpy(sa.sun_path, address, n);
	sa.sun_path[0] = '\0';
	assert_int_equal(
	        connect(fd, (struct sockaddr *)&sa,
	                (socklen_t)(offsetof(struct sockaddr_un, sun_path) +
	                            n)),
	        0);
	return fd;
}

static void
run_once(struct ev_loop *loop)
{
	ev_run(loop, EVRUN_NOWAIT);
	ev_run(loop, EVRUN_NOWAIT);
}

static void
test_server_credentials(void **state)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct seen seen = {.accept = true};
	const char *why = NULL;
	struct notify_server *s = notify_server_open(loop, on_msg, &seen, &why);
	int fd;

	(void)state;
	assert_non_null(s);
	assert_int_equal(notify_server_address(s)[0], '@');
	fd = dgram_to(notify_server_address(s));
	assert_int_equal(send(fd, "READY=1\nSTATUS=up", 17, 0), 17);
	run_once(loop);
	assert_int_equal(seen.calls, 1);
	assert_int_equal(seen.pid, getpid());
	assert_int_equal(seen.pgid, getpgid(0));
	assert_true(seen.ready);
	assert_string_equal(seen.status, "up");
	assert_int_equal(notify_server_counts(s)->received, 1);

	/* a sender the callback does not know is counted */
	seen.accept = false;
	assert_int_equal(send(fd, "WATCHDOG=1", 10, 0), 10);
	run_once(loop);
	assert_int_equal(seen.calls, 2);
	assert_int_equal(notify_server_counts(s)->unknown, 1);
	close(fd);
	notify_server_close(s);
	ev_loop_destroy(loop);
}

static void
test_server_bounds(void **state)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct seen seen = {.accept = true};
	const char *why = NULL;
	struct notify_server *s = notify_server_open(loop, on_msg, &seen, &why);
	char big[NOTIFY_MAX_DATAGRAM + 100];
	int fd;

	(void)state;
	assert_non_null(s);
	fd = dgram_to(notify_server_address(s));
	memset(big, 'A', sizeof big);
	memcpy(big, "READY=1\nSTATUS=", 15);
	/* exactly at the bound: accepted */
	assert_int_equal(send(fd, big, NOTIFY_MAX_DATAGRAM, 0),
	                 NOTIFY_MAX_DATAGRAM);
	/* one byte over: dropped, whatever it says */
	assert_int_equal(send(fd, big, NOTIFY_MAX_DATAGRAM + 1, 0),
	                 NOTIFY_MAX_DATAGRAM + 1);
	assert_int_equal(send(fd, "READY=1\0", 8, 0), 8);
	run_once(loop);
	assert_int_equal(seen.calls, 1);
	assert_int_equal(notify_server_counts(s)->received, 1);
	assert_int_equal(notify_server_counts(s)->oversized, 1);
	assert_int_equal(notify_server_counts(s)->invalid, 1);
	close(fd);
	notify_server_close(s);
	ev_loop_destroy(loop);
}

/* A sender passing a descriptor (FDSTORE=1) does not leak it into us. */
static void
test_server_closes_passed_fds(void **state)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct seen seen = {.accept = true};
	const char *why = NULL;
	struct notify_server *s = notify_server_open(loop, on_msg, &seen, &why);
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int))];
	} ctl;
	struct iovec iov = {"FDSTORE=1", 9};
	struct msghdr mh = {.msg_iov = &iov,
	                    .msg_iovlen = 1,
	                    .msg_control = ctl.buf,
	                    .msg_controllen = sizeof ctl.buf};
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	int fd, passed, probe;

	(void)state;
	assert_non_null(s);
	fd = dgram_to(notify_server_address(s));
	passed = open("/dev/null", O_RDONLY | O_CLOEXEC);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &passed, sizeof passed);
	assert_int_equal(sendmsg(fd, &mh, 0), 9);
	close(passed);
	run_once(loop);
	assert_int_equal(seen.calls, 1);
	/* the lowest free descriptor is the one we closed: nothing leaked */
	probe = open("/dev/null", O_RDONLY | O_CLOEXEC);
	assert_int_equal(probe, passed);
	close(probe);
	close(fd);
	notify_server_close(s);
	ev_loop_destroy(loop);
}

/* --- up: agentsupd -> systemd -------------------------------------------- */

static int
bound_dgram(char *path, size_t len)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	snprintf(path, len, "/tmp/test_notify.%ld.sock", (long)getpid());
	unlink(path);
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	return fd;
}

static void
test_up_messages(void **state)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	char path[108], buf[256];
	int fd = bound_dgram(path, sizeof path);
	const char *why = NULL;
	struct notify_up *u;
	ssize_t n;

	(void)state;
	u = notify_up_open(loop, path, NULL, NULL, &why);
	assert_non_null(u);
	assert_int_equal(notify_up_watchdog_usec(u), 0);
	notify_up_send(u, "READY=1\nSTATUS=supervising %d workers", 3);
	n = recv(fd, buf, sizeof buf - 1, 0);
	assert_true(n > 0);
	buf[n] = '\0';
	assert_string_equal(buf, "READY=1\nSTATUS=supervising 3 workers");
	notify_up_reloading(u, "reloading");
	n = recv(fd, buf, sizeof buf - 1, 0);
	buf[n] = '\0';
	assert_non_null(strstr(buf, "RELOADING=1\nMONOTONIC_USEC="));
	notify_up_close(u);
	close(fd);
	unlink(path);
	ev_loop_destroy(loop);
}

static void
test_up_watchdog(void **state)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	char path[108], buf[64], pid[32], other[32];
	int fd = bound_dgram(path, sizeof path);
	const char *why = NULL;
	struct notify_up *u;
	ssize_t n;

	(void)state;
	snprintf(pid, sizeof pid, "%ld", (long)getpid());
	snprintf(other, sizeof other, "%ld", (long)getpid() + 1);
	/* meant for another process: no watchdog here */
	u = notify_up_open(loop, path, "20000", other, &why);
	assert_int_equal(notify_up_watchdog_usec(u), 0);
	notify_up_close(u);
	u = notify_up_open(loop, path, "junk", NULL, &why);
	assert_int_equal(notify_up_watchdog_usec(u), 0);
	notify_up_close(u);
	u = notify_up_open(loop, path, "20000", pid, &why);
	assert_int_equal(notify_up_watchdog_usec(u), 20000);
	ev_run(loop, EVRUN_ONCE); /* the timer, after 10 ms */
	n = recv(fd, buf, sizeof buf - 1, MSG_DONTWAIT);
	assert_int_equal(n, 10);
	buf[n] = '\0';
	assert_string_equal(buf, "WATCHDOG=1");
	notify_up_close(u);
	close(fd);
	unlink(path);
	ev_loop_destroy(loop);
}

static void
test_up_bad_address(void **state)
{
	const char *why = NULL;

	(void)state;
	assert_null(notify_up_open(NULL, NULL, NULL, NULL, &why));
	assert_null(why);
	assert_null(notify_up_open(NULL, "", NULL, NULL, &why));
	assert_null(why);
	assert_null(notify_up_open(NULL, "relative/path", NULL, NULL, &why));
	assert_non_null(why);
	assert_null(notify_up_open(NULL, "@", NULL, NULL, &why));
	assert_non_null(why);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_parse_ready),
	        cmocka_unit_test(test_parse_many),
	        cmocka_unit_test(test_parse_watchdog_trigger),
	        cmocka_unit_test(test_parse_extend),
	        cmocka_unit_test(test_parse_status_edges),
	        cmocka_unit_test(test_parse_garbage),
	        cmocka_unit_test(test_server_credentials),
	        cmocka_unit_test(test_server_bounds),
	        cmocka_unit_test(test_server_closes_passed_fds),
	        cmocka_unit_test(test_up_messages),
	        cmocka_unit_test(test_up_watchdog),
	        cmocka_unit_test(test_up_bad_address),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
