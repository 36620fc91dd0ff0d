/*
 * statedir_watch.c - the state store's disk watched from the loop's
 * once-a-second sweep: a disk that stalls (a frozen file system, a hung
 * NFS server, a dying device) fails no write, so no store_error would say
 * anything until the queue of 8,192 writes filled, minutes later at
 * ordinary checkpoint rates, while nothing is acknowledged meanwhile.
 * Writes that wait STATEDIR_STALL_MS with none done are an event, again
 * once a minute while it lasts; its end is logged.
 */
#include "clock.h"
#include "daemon.h"
#include "events.h"
#include "log.h"
#include "statedir.h"
#include "store.h"

#define STATEDIR_STALL_MS     5000  /* writes waiting this long: said */
#define STATEDIR_STALL_SAY_MS 60000 /* ... and again this often */

void
statedir_watch(struct daemon *d)
{
	uint64_t now = clock_now_ms(), waited;
	size_t jobs;

	if (d->store == NULL)
		return;
	waited = store_waiting_ms(d->store, &jobs);
	if (waited < STATEDIR_STALL_MS) {
		if (d->statedir_stall_ms != 0)
			log_info("state store: writes are committed again");
		d->statedir_stall_ms = 0;
		return;
	}
	if (d->statedir_stall_ms != 0 &&
	    now - d->statedir_stall_ms < STATEDIR_STALL_SAY_MS)
		return;
	d->statedir_stall_ms = now;
	events_emit(&d->events, EV_STORE_ERROR, d->tree->root->path, 0, "store",
	            0,
	            "the state store has committed nothing for %llu s: %zu "
	            "write%s wait (its disk does not answer?); nothing is "
	            "acknowledged meanwhile",
	            (unsigned long long)(waited / 1000), jobs,
	            jobs == 1 ? "" : "s");
}
