/*
 * test_agent_hostile.c - libagentsup held to what agent.h and
 * docs/protocol.md promise, against the same fake agentsupd as
 * test_agent.c: what agentsupd would stop the worker for is refused at the
 * call, a mistyped field of welcome is a protocol error, a descriptor that
 * is not the channel is left as it was, the documented loop never spins,
 * and a signal handler's flag is seen without waiting out the wait.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "agentsup/agent.h"
#include "agentsup/wire.h"

struct fake {
	int sv[2]; /* [0] the daemon's end, [1] the worker's */
	struct agentsup *a;
	msgpack_zone zone;
	msgpack_sbuffer sb;
	uint8_t in[1 << 20];
	size_t inlen, used;
};

static int
setup(void **state)
{
	struct fake *fk = calloc(1, sizeof *fk);
	char num[16];

	if (fk == NULL ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fk->sv) < 0 ||
	    !msgpack_zone_init(&fk->zone, 4096))
		return -1;
	/* the worker's end as a worker inherits it: not close-on-exec */
	fcntl(fk->sv[1], F_SETFD, 0);
	msgpack_sbuffer_init(&fk->sb);
	snprintf(num, sizeof num, "%d", fk->sv[1]);
	setenv("AGENTSUP_FD", num, 1);
	setenv("AGENTSUP_NAME", "w1", 1);
	setenv("AGENTSUP_HEARTBEAT_MS", "3000", 1);
	fk->a = agentsup_open("c");
	*state = fk;
	return fk->a == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	struct fake *fk = *state;

	agentsup_close(fk->a); /* closes sv[1] when supervised */
	if (fcntl(fk->sv[1], F_GETFD) >= 0)
		close(fk->sv[1]);
	close(fk->sv[0]);
	msgpack_zone_destroy(&fk->zone);
	msgpack_sbuffer_destroy(&fk->sb);
	free(fk);
	unsetenv("AGENTSUP_FD");
	return 0;
}

/* The next frame the worker sent, within 2 s; its fields must check. */
__attribute__((unused)) static void
next(struct fake *fk, struct agentsup_frame *f, const char *type)
{
	int r;

	memmove(fk->in, fk->in + fk->used, fk->inlen - fk->used);
	fk->inlen -= fk->used;
	fk->used = 0;
	msgpack_zone_clear(&fk->zone);
	while ((r = agentsup_wire_decode(fk->in, fk->inlen, 1u << 20, &fk->zone,
	                                 f)) == AGENTSUP_WIRE_MORE) {
		struct pollfd p = {.fd = fk->sv[0], .events = POLLIN};
		assert_int_equal(poll(&p, 1, 2000), 1);
		ssize_t n = recv(fk->sv[0], fk->in + fk->inlen,
		                 sizeof fk->in - fk->inlen, 0);
		assert_true(n > 0);
		fk->inlen += (size_t)n;
	}
	assert_int_equal(r, AGENTSUP_WIRE_OK);
	fk->used = f->size;
	assert_int_equal(agentsup_wire_check_fields(f, NULL), 0);
	if (!agentsup_wire_is(f, type))
		fail_msg("wanted %s, got %.*s", type, (int)f->type_len,
		         f->type);
}

__attribute__((unused)) static uint64_t
u(const struct agentsup_frame *f, const char *key)
{
	const msgpack_object *v = agentsup_wire_get(&f->map, key);

	assert_non_null(v);
	return v->via.u64;
}

__attribute__((unused)) static int
str_is(const struct agentsup_frame *f, const char *key, const char *want)
{
	const msgpack_object *v = agentsup_wire_get(&f->map, key);

	return v != NULL && v->via.str.size == strlen(want) &&
	       memcmp(v->via.str.ptr, want, v->via.str.size) == 0;
}

/* Send the daemon's frame whose map (npairs, "t" included) is packed by
 * the caller between begin and end. */
static msgpack_packer
to_worker(struct fake *fk, size_t npairs, const char *t)
{
	msgpack_packer pk;

	msgpack_packer_init(&pk, &fk->sb, msgpack_sbuffer_write);
	agentsup_wire_begin(&fk->sb);
	msgpack_pack_map(&pk, npairs);
	agentsup_wire_kv_str(&pk, "t", t);
	return pk;
}

static void
send_it(struct fake *fk)
{
	assert_int_equal(agentsup_wire_end(&fk->sb, 1u << 20), 0);
	assert_int_equal(send(fk->sv[0], fk->sb.data, fk->sb.size, 0),
	                 (ssize_t)fk->sb.size);
}

/* agent.h: "A task's result (at most 64 KiB)"; agentsupd stops a worker
 * that sends more (protocol_error "result: N bytes, more than 65536", the
 * task dead-lettered). Once welcome raised max_frame for a checkpoint.max
 * above 64 KiB, a larger result was queued and sent: it must be refused
 * here, EMSGSIZE, as a checkpoint over checkpoint_max is (and as Python's
 * result() raises ValueError). */
static void
test_result_over_64k_is_refused(void **state)
{
	struct fake *fk = *state;
	static char big[(64u << 10) + 1];
	msgpack_packer pk = to_worker(fk, 3, "welcome");

	agentsup_wire_kv_uint(&pk, "max_frame", (256u << 10) + 1024);
	agentsup_wire_kv_uint(&pk, "checkpoint_max", 256u << 10);
	send_it(fk);
	assert_int_equal(agentsup_await_welcome(fk->a, 2000), 0);
	errno = 0;
	assert_int_equal(agentsup_result(fk->a, big, sizeof big), -1);
	assert_int_equal(errno, EMSGSIZE);
}

/* docs/protocol.md: "the clients refuse a known field of the wrong type
 * from the daemon as a protocol error". checkpoint_max (uint) is a field
 * of welcome, but the table in wire_fields.c does not list it: a string
 * there is read as an integer (via.u64 of a str object). */
static void
test_mistyped_checkpoint_max_is_refused(void **state)
{
	struct fake *fk = *state;
	msgpack_packer pk = to_worker(fk, 2, "welcome");

	agentsup_wire_kv_str(&pk, "checkpoint_max", "256k");
	send_it(fk);
	assert_int_equal(agentsup_wait(fk->a, 2000), -1);
	assert_int_equal(errno, EPROTO);
}

/* heartbeat: 2000h is a valid config (7.2e9 ms): the sensible interval of
 * the documented loop, agentsup_wait(a, agentsup_beat_interval_ms(a)), is
 * then (int)2.4e9, negative, and the wait returns at once: the worker
 * spins beating. It must stay positive (at most INT_MAX). */
static void
test_beat_interval_of_a_long_heartbeat_is_positive(void **state)
{
	struct fake *fk = *state;
	msgpack_packer pk = to_worker(fk, 2, "welcome");

	agentsup_wire_kv_uint(&pk, "heartbeat_ms", 7200000000ull);
	send_it(fk);
	assert_int_equal(agentsup_await_welcome(fk->a, 2000), 0);
	assert_true(agentsup_beat_interval_ms(fk->a) > 0);
}

/* AGENTSUP_FD naming a descriptor that is not a socket (a stale variable,
 * the number reused for stdout): agentsup_open runs unsupervised, but it
 * set FD_CLOEXEC on that descriptor first, so everything the worker runs
 * afterwards loses it (system("echo hi") with AGENTSUP_FD=1 fails: "echo:
 * I/O error"). A descriptor that is not the channel must be left alone. */
static void
test_not_a_socket_is_left_alone(void **state)
{
	struct agentsup *a;
	int p[2];
	char num[16];

	(void)state;
	assert_int_equal(pipe(p), 0);
	snprintf(num, sizeof num, "%d", p[1]);
	setenv("AGENTSUP_FD", num, 1);
	a = agentsup_open("c");
	assert_non_null(a);
	assert_false(agentsup_supervised(a));
	assert_int_equal(fcntl(p[1], F_GETFD) & FD_CLOEXEC, 0);
	agentsup_close(a);
	close(p[0]);
	close(p[1]);
	unsetenv("AGENTSUP_FD");
}

/* agent.h: name and path are "" when unsupervised, heartbeat_ms 0 when
 * not monitored. But a process the worker runs keeps AGENTSUP_NAME,
 * AGENTSUP_PATH, AGENTSUP_HEARTBEAT_MS (protocol.md: "The other
 * AGENTSUP_* variables stay"), and its own agentsup_open(), unsupervised,
 * reports the worker's name, path and heartbeat as its own. */
static void
test_unsupervised_has_no_identity(void **state)
{
	struct agentsup *a;

	(void)state;
	unsetenv("AGENTSUP_FD");
	setenv("AGENTSUP_NAME", "w1", 1);
	setenv("AGENTSUP_PATH", "root/w1", 1);
	setenv("AGENTSUP_HEARTBEAT_MS", "600", 1);
	a = agentsup_open("c");
	assert_non_null(a);
	assert_false(agentsup_supervised(a));
	assert_string_equal(agentsup_name(a), "");
	assert_string_equal(agentsup_path(a), "");
	assert_int_equal(agentsup_heartbeat_ms(a), 0);
	assert_int_equal(agentsup_beat_interval_ms(a), 1000);
	agentsup_close(a);
}

static volatile sig_atomic_t alarmed;

static void
on_alarm(int sig)
{
	(void)sig;
	alarmed = 1;
}

/* ms a wait of 60 s took when SIGALRM (a handler, no SA_RESTART) came
 * after 50 ms. */
static long
wait_under_alarm(struct agentsup *a)
{
	struct sigaction sa = {.sa_handler = on_alarm};
	struct itimerval it = {.it_value = {0, 50000}};
	struct timespec t0, t1;

	alarmed = 0;
	assert_int_equal(sigaction(SIGALRM, &sa, NULL), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(setitimer(ITIMER_REAL, &it, NULL), 0);
	assert_int_equal(agentsup_wait(a, 60000), 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	signal(SIGALRM, SIG_DFL);
	assert_true(alarmed);
	return (t1.tv_sec - t0.tv_sec) * 1000 +
	       (t1.tv_nsec - t0.tv_nsec) / 1000000;
}

/* A worker's SIGINT/SIGALRM handler sets a flag its loop checks after
 * agentsup_wait: the wait went on to its end (EINTR retried), so the flag
 * was seen up to a beat interval late. It returns when a handler ran. */
static void
test_wait_returns_when_a_handler_ran(void **state)
{
	struct fake *fk = *state;
	struct agentsup *a;

	assert_true(wait_under_alarm(fk->a) < 30000); /* not the 60 s */
	unsetenv("AGENTSUP_FD");
	a = agentsup_open("c"); /* unsupervised: the wait is a sleep */
	assert_false(agentsup_supervised(a));
	assert_true(wait_under_alarm(a) < 30000);
	agentsup_close(a);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	        T(test_result_over_64k_is_refused),
	        T(test_mistyped_checkpoint_max_is_refused),
	        T(test_beat_interval_of_a_long_heartbeat_is_positive),
	        T(test_wait_returns_when_a_handler_ran),
	        cmocka_unit_test(test_not_a_socket_is_left_alone),
	        cmocka_unit_test(test_unsupervised_has_no_identity),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
