/*
 * test_channel.c - what the daemon sends a worker that does not read
 * (channel_out.c): checkpoint_ok frames replace the one still queued, so
 * acks alone never cut the worker off and the newest one always arrives;
 * frames that cannot be merged are still bounded, and order is kept. And
 * what it reads: an end of file inside a frame says how much was cut.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "channel_int.h"

#define MAX_FRAME 65536
#define ACKS      5000 /* far more than a socket's buffer holds */

struct fx {
	int sv[2]; /* sv[0] the daemon's end, sv[1] the worker's */
	struct ev_loop *loop;
	msgpack_zone zone;
	struct channel *c;
	char failed[256]; /* why the channel failed, "" if it did not */
	/* what the worker read */
	uint64_t seqs[ACKS];
	size_t nacks;
	char order[ACKS + 8]; /* 'c' checkpoint_ok, 'n' nudge */
	size_t n;
	bool closed; /* the worker's end was closed ... */
	size_t cut;  /* ... this many bytes into a frame */
};

static void
on_hello(void *arg)
{
	(void)arg;
}

static void
on_failed(void *arg, const char *why)
{
	struct fx *f = arg;

	snprintf(f->failed, sizeof f->failed, "%s", why);
}

static void
on_closed(void *arg, size_t cut)
{
	struct fx *f = arg;

	f->closed = true;
	f->cut = cut;
}

static size_t
on_max_frame(void *arg)
{
	(void)arg;
	return MAX_FRAME;
}

static const struct channel_ops ops = {
        .hello = on_hello,
        .failed = on_failed,
        .closed = on_closed,
        .max_frame = on_max_frame,
};

/* The worker's reader: each frame's type in order, each ack's seq. */
static int
on_frame(void *arg, const struct agentsup_frame *fr)
{
	struct fx *f = arg;
	const msgpack_object *seq = agentsup_wire_get(&fr->map, "seq");

	assert_true(f->n < sizeof f->order);
	f->order[f->n++] = fr->type[0];
	if (agentsup_wire_is(fr, AGENTSUP_T_CHECKPOINT_OK)) {
		assert_non_null(seq);
		f->seqs[f->nacks++] = seq->via.u64;
	}
	return 0;
}

/* The worker says hello (the daemon sends nothing before it), unread. */
static int
setup(void **state)
{
	static const uint8_t hello[] = {0,   0,    0,   12,  0x82, 0xa1,
	                                't', 0xa5, 'h', 'e', 'l',  'l',
	                                'o', 0xa1, 'v', 1};
	static struct fx f;

	memset(&f, 0, sizeof f);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, f.sv) < 0 ||
	    !msgpack_zone_init(&f.zone, 1024))
		return -1;
	f.loop = ev_loop_new(EVFLAG_AUTO);
	f.c = channel_open(f.loop, f.sv[0], &ops, &f, &f.zone);
	if (write(f.sv[1], hello, sizeof hello) != sizeof hello)
		return -1;
	ev_run(f.loop, EVRUN_NOWAIT);
	if (!channel_said_hello(f.c))
		return -1;
	*state = &f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	channel_close(f->c);
	ev_loop_destroy(f->loop);
	msgpack_zone_destroy(&f->zone);
	if (f->sv[1] >= 0)
		close(f->sv[1]);
	return 0;
}

/* The worker reads at last: everything the socket and the queue hold. */
static void
read_everything(struct fx *f)
{
	struct agentsup_reader r;
	int rc;

	agentsup_reader_init(&r);
	for (int rounds = 0; rounds < 100000; rounds++) {
		ev_run(f->loop, EVRUN_NOWAIT); /* the queue, as room comes */
		rc = agentsup_reader_read(&r, f->sv[1], MAX_FRAME, &f->zone,
		                          on_frame, f);
		if (rc == AGENTSUP_READ_AGAIN && f->c->out == NULL)
			break;
		assert_true(rc > 0 || rc == AGENTSUP_READ_AGAIN);
	}
	assert_null(f->c->out);
	agentsup_reader_free(&r);
}

static void
send_nudge(struct fx *f, int expect)
{
	struct nudge n = {.reason = "stall", .idle_ms = 1000};

	assert_int_equal(channel_send_nudge(f->c, &n, MAX_FRAME), expect);
}

/* Thousands of acks to a worker that does not read: never cut off, one
 * ack at most waits in the queue, and every ack that arrives is newer
 * than the one before, the last one the newest. */
static void
test_acks_coalesce(void **state)
{
	struct fx *f = *state;

	for (uint64_t seq = 1; seq <= ACKS; seq++) {
		assert_int_equal(channel_send_checkpoint_ok(f->c, seq), 0);
		assert_true(f->c->out == NULL || f->c->out->len <= 64);
	}
	assert_string_equal(f->failed, "");
	assert_non_null(f->c->out); /* the socket was full */
	read_everything(f);
	assert_true(f->nacks < ACKS);
	for (size_t i = 1; i < f->nacks; i++)
		assert_true(f->seqs[i] > f->seqs[i - 1]);
	assert_int_equal(f->seqs[f->nacks - 1], ACKS);
}

/* A frame that cannot be merged keeps its place: an ack queued before it
 * is replaced by the next one after it, never moved in front of it. */
static void
test_order_kept(void **state)
{
	struct fx *f = *state;

	for (uint64_t seq = 1; seq <= ACKS / 2; seq++)
		channel_send_checkpoint_ok(f->c, seq);
	send_nudge(f, 0);
	for (uint64_t seq = ACKS / 2 + 1; seq <= ACKS; seq++)
		channel_send_checkpoint_ok(f->c, seq);
	assert_string_equal(f->failed, "");
	read_everything(f);
	assert_int_equal(f->n, f->nacks + 1);
	/* the nudge, then the newest ack: the one queued before it is gone */
	assert_int_equal(f->order[f->n - 2], 'n');
	assert_int_equal(f->order[f->n - 1], 'c');
	assert_int_equal(f->seqs[f->nacks - 1], ACKS);
	assert_true(f->seqs[f->nacks - 2] < ACKS / 2);
}

/* What cannot be merged still fills the queue: a worker that never reads
 * them is a protocol error, as before. */
static void
test_unmergeable_frames_still_bounded(void **state)
{
	struct fx *f = *state;
	int i;

	for (i = 0; i < ACKS && f->failed[0] == '\0'; i++) {
		struct nudge n = {.reason = "stall", .idle_ms = 1000};
		channel_send_nudge(f->c, &n, MAX_FRAME);
	}
	assert_string_equal(f->failed, "not reading its socket");
	assert_false(channel_is_open(f->c));
}

/* The worker's end closed, then the loop reads what is left. */
static void
close_worker_end(struct fx *f)
{
	assert_int_equal(close(f->sv[1]), 0);
	f->sv[1] = -1;
	for (int i = 0; i < 10 && !f->closed; i++)
		ev_run(f->loop, EVRUN_NOWAIT);
	assert_true(f->closed);
}

/* A worker that ends while sending a frame (a checkpoint's header and part
 * of its body): the end says how much was cut, not silence. */
static void
test_a_frame_cut_by_the_end_is_counted(void **state)
{
	struct fx *f = *state;
	static const uint8_t part[] = {0,    0,   0,   100, 0x82, 0xa1, 't',
	                               0xaa, 'c', 'h', 'e', 'c',  'k',  'p'};

	assert_int_equal(write(f->sv[1], part, sizeof part), sizeof part);
	close_worker_end(f);
	assert_int_equal(f->cut, sizeof part);
	assert_string_equal(f->failed, "");
}

/* The worker's process reaped while a descendant still holds its end:
 * the channel closed on a frame begun says the cut as an end of file
 * would. */
static void
test_a_frame_cut_by_the_close_is_counted(void **state)
{
	struct fx *f = *state;
	static const uint8_t part[] = {0, 0, 0, 100, 0x82, 0xa1};

	assert_int_equal(write(f->sv[1], part, sizeof part), sizeof part);
	for (int i = 0; i < 10; i++)
		ev_run(f->loop, EVRUN_NOWAIT);
	assert_false(f->closed);
	channel_close(f->c);
	f->c = NULL;
	assert_true(f->closed);
	assert_int_equal(f->cut, sizeof part);
}

/* An end between frames cuts nothing. */
static void
test_an_end_between_frames_cuts_nothing(void **state)
{
	struct fx *f = *state;

	close_worker_end(f);
	assert_int_equal(f->cut, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_acks_coalesce, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_order_kept, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(
	                test_unmergeable_frames_still_bounded, setup, teardown),
	        cmocka_unit_test_setup_teardown(
	                test_a_frame_cut_by_the_end_is_counted, setup,
	                teardown),
	        cmocka_unit_test_setup_teardown(
	                test_an_end_between_frames_cuts_nothing, setup,
	                teardown),
	        cmocka_unit_test_setup_teardown(
	                test_a_frame_cut_by_the_close_is_counted, setup,
	                teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
