/*
 * client_linger.c - agentsupd's last words to its control clients: at
 * shutdown, what followers and clients that hung up are still owed is
 * sent (bounded in time), and a follower told the end waits for it to go.
 */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <sys/socket.h>

#include "client.h"
#include "clock.h"

/* Until an ended client has hung up (read its end, and gone), or until.
 * What it still sends is read and dropped. */
static void
client_await_hangup(struct client *cl, uint64_t until)
{
	struct pollfd p = {.fd = cl->fd, .events = POLLIN};
	char buf[4096];
	uint64_t now;
	ssize_t n;

	while ((now = clock_now_ms()) < until) {
		if (poll(&p, 1, (int)(until - now)) <= 0)
			return;
		n = recv(cl->fd, buf, sizeof buf, MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			return; /* gone */
	}
}

void
clients_linger(struct clients *all, int ms)
{
	uint64_t until = clock_now_ms() + (uint64_t)ms, now;
	struct pollfd p = {.events = POLLOUT};

	for (struct client *cl = all->head; cl != NULL; cl = cl->next) {
		while ((cl->ending || cl->hungup) && !cl->dead &&
		       cl->outlen > 0 && (now = clock_now_ms()) < until) {
			p.fd = cl->fd;
			if (poll(&p, 1, (int)(until - now)) <= 0)
				break;
			client_flush(cl);
		}
		/* a follower that waits for agentsupd's end (agentsupctl
		 * drain --wait, in a pod's preStop hook) exits before it:
		 * as PID 1, its exit kills every process of the pod */
		if (cl->ending && cl->outlen == 0) /* dropped: not yet freed */
			client_await_hangup(cl, until);
	}
}
