/*
 * conn.c - agentsupctl's side of the control socket: connect, check that
 * the server is root or ourselves (SO_PEERCRED) before believing it, send
 * requests, and hand out whole frames read through the one frame reader.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "agentsup/wire.h"
#include "conn.h"
#include "task.h"

static int
conn_connect(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd;

	if (strlen(path) >= sizeof sa.sun_path) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(sa.sun_path, path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

int
conn_send_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

void
conn_request_begin(msgpack_sbuffer *sb, msgpack_packer *pk, uint64_t id,
                   const char *cmd)
{
	msgpack_sbuffer_init(sb);
	msgpack_packer_init(pk, sb, msgpack_sbuffer_write);
	agentsup_wire_begin(sb);
	msgpack_pack_map(pk, 4);
	agentsup_wire_kv_str(pk, "t", AGENTSUP_T_REQ);
	agentsup_wire_kv_uint(pk, "id", id);
	agentsup_wire_kv_str(pk, "cmd", cmd);
	agentsup_wire_pack_str(pk, "args");
}

int
conn_request_send(int fd, msgpack_sbuffer *sb)
{
	int r = agentsup_wire_end(sb, AGENTSUP_MAX_FRAME);

	if (r == 0)
		r = conn_send_all(fd, sb->data, sb->size);
	else
		errno = EMSGSIZE; /* more than a frame: spawn's arguments */
	msgpack_sbuffer_destroy(sb);
	return r;
}

int
conn_send_request(struct ctl *c, const char *cmd, const char *arg, int follow)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;

	conn_request_begin(&sb, &pk, 1, cmd);
	if (c->newest > 0 && strcmp(cmd, "dead") == 0) { /* dead [N] */
		msgpack_pack_array(&pk, 1);
		msgpack_pack_unsigned_long(&pk, c->newest);
	} else if (c->newest > 0) { /* tasks [SUP|nil, STATE|nil, N] */
		msgpack_pack_array(&pk, 3);
		arg != NULL ? agentsup_wire_pack_str(&pk, arg)
		            : msgpack_pack_nil(&pk);
		c->arg2 != NULL ? agentsup_wire_pack_str(&pk, c->arg2)
		                : msgpack_pack_nil(&pk);
		msgpack_pack_unsigned_long(&pk, c->newest);
	} else if (c->spawn != NULL) {
		msgpack_pack_array(&pk, 2);
		agentsup_wire_pack_str(&pk, c->spawn->sup);
		task_pack_spawn(&pk, c->spawn);
	} else if (follow >= 0) { /* events [follow [NAME]] */
		msgpack_pack_array(&pk, arg != NULL ? 2 : 1);
		follow ? msgpack_pack_true(&pk) : msgpack_pack_false(&pk);
		if (arg != NULL)
			agentsup_wire_pack_str(&pk, arg);
	} else if (arg != NULL && c->look) { /* wait KEY NOW */
		msgpack_pack_array(&pk, 2);
		agentsup_wire_pack_str(&pk, arg);
		msgpack_pack_true(&pk);
	} else if (arg != NULL) {
		msgpack_pack_array(&pk, c->arg2 != NULL ? 2 : 1);
		agentsup_wire_pack_str(&pk, arg);
		if (c->arg2 != NULL)
			agentsup_wire_pack_str(&pk, c->arg2);
	} else if (c->arg2 != NULL) { /* tasks --state S: of every pool */
		msgpack_pack_array(&pk, 2);
		msgpack_pack_nil(&pk);
		agentsup_wire_pack_str(&pk, c->arg2);
	} else
		msgpack_pack_array(&pk, 0);
	return conn_request_send(c->fd, &sb);
}

/* The next frame, waiting up to timeout_ms (-1: for ever). 0, or -1. */
void
conn_frame_free(struct ctl_frame *fr)
{
	if (fr != NULL)
		free(fr->data);
	free(fr);
}

/* The reader's callback: keep the frame, packed again, for the caller. */
static int
conn_keep_frame(void *arg, const struct agentsup_frame *f)
{
	struct ctl *c = arg;
	struct ctl_frame *fr = calloc(1, sizeof *fr);
	msgpack_sbuffer sb;
	msgpack_packer pk;

	if (fr == NULL)
		return 1;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	agentsup_wire_begin(&sb);
	msgpack_pack_object(&pk, f->map);
	if (agentsup_wire_end(&sb, CTL_MAX_FRAME) < 0) {
		msgpack_sbuffer_destroy(&sb);
		free(fr);
		return 1;
	}
	fr->len = sb.size;
	fr->data = msgpack_sbuffer_release(&sb);
	if (c->tail != NULL)
		c->tail->next = fr;
	else
		c->head = fr;
	c->tail = fr;
	return 0;
}

/* Wait for the socket and read once through the one frame reader. */
static int
conn_wait_read(struct ctl *c, int timeout_ms)
{
	struct pollfd p = {.fd = c->fd, .events = POLLIN};
	struct timespec ts = {timeout_ms / 1000,
	                      (long)(timeout_ms % 1000) * 1000000};
	int r;

	/* SIGINT is blocked except inside ppoll, so it cannot slip in
	 * between a check and the wait: a follow ends here, cleanly */
	r = ppoll(&p, 1, timeout_ms < 0 ? NULL : &ts, &c->waitmask);
	if (r < 0 && errno == EINTR) {
		c->interrupted = true;
		return -1;
	}
	if (r < 0) {
		perror("agentsupctl: poll");
		return -1;
	}
	if (r == 0) {
		c->timed_out = true;
		if (c->late_whole != NULL)
			fprintf(stderr, "agentsupctl: %s\n", c->late_whole);
		else
			fprintf(stderr, "agentsupctl: %s within %g s\n",
			        c->late != NULL ? c->late
			                        : "agentsupd did not answer",
			        timeout_ms / 1000.0);
		return -1;
	}
	r = agentsup_reader_read(&c->reader, c->fd, CTL_MAX_FRAME, &c->zone,
	                         conn_keep_frame, c);
	if (r > 0 || r == AGENTSUP_READ_AGAIN)
		return 0;
	if (r == AGENTSUP_READ_ERRNO && errno == EINTR)
		return -1;
	c->lost = true;
	if (r == 0) {
		fprintf(stderr,
		        "agentsupctl: agentsupd closed the connection\n");
		return -1;
	}
	if (r == AGENTSUP_READ_ERRNO || r == AGENTSUP_READ_STOPPED)
		perror("agentsupctl: read");
	else
		fprintf(stderr, "agentsupctl: bad reply: %s\n",
		        agentsup_wire_strerror(r));
	return -1;
}

int
conn_next_frame(struct ctl *c, struct agentsup_frame *f, int timeout_ms)
{
	conn_frame_free(c->current); /* its objects point into its bytes */
	c->current = NULL;
	msgpack_zone_clear(&c->zone);
	while (c->head == NULL)
		if (conn_wait_read(c, timeout_ms) < 0)
			return -1;
	c->current = c->head;
	if ((c->head = c->head->next) == NULL)
		c->tail = NULL;
	return agentsup_wire_decode((const uint8_t *)c->current->data,
	                            c->current->len, CTL_MAX_FRAME, &c->zone,
	                            f) == AGENTSUP_WIRE_OK
	               ? 0
	               : -1;
}

/* Believe only a server of root or of our own uid: anyone else may have
 * created the socket first (docs/operations.md, "the control socket"). */
static int
conn_check_peer(int fd, const char *path)
{
	struct ucred cred;
	socklen_t len = sizeof cred;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
		fprintf(stderr, "agentsupctl: SO_PEERCRED on %s: %s\n", path,
		        strerror(errno));
		return -1;
	}
	if (cred.uid != 0 && cred.uid != geteuid()) {
		fprintf(stderr,
		        "agentsupctl: %s is served by uid %lu, neither root "
		        "nor you: not trusting it\n",
		        path, (unsigned long)cred.uid);
		return -1;
	}
	return 0;
}

int
conn_open(struct ctl *c, const char *path)
{
	const char *why;

	if (agentsup_wire_socket_dir(path, 0, &why) < 0) {
		fprintf(stderr, "agentsupctl: not trusting %s: %s\n", path,
		        why);
		return -1;
	}
	if ((c->fd = conn_connect(path)) < 0) {
		fprintf(stderr,
		        "agentsupctl: cannot reach agentsupd at %s: %s\n", path,
		        strerror(errno));
		return -1;
	}
	return conn_check_peer(c->fd, path);
}

void
conn_free(struct ctl *c)
{
	msgpack_zone_destroy(&c->zone);
	agentsup_reader_free(&c->reader);
	conn_frame_free(c->current);
	while (c->head != NULL) {
		struct ctl_frame *next = c->head->next;
		conn_frame_free(c->head);
		c->head = next;
	}
}

uint64_t
conn_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}
