/* reason.c - naming the reasons a node stops, one spelling everywhere. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "reason.h"

bool
reason_abnormal(struct reason r)
{
	return !r.normal && !(r.kind == REASON_EXIT && r.code == 0) &&
	       r.kind != REASON_NONE;
}

bool
reason_spawn_exhausted(struct reason r)
{
	return r.kind == REASON_SPAWN &&
	       (r.code == EAGAIN || r.code == EMFILE || r.code == ENFILE ||
	        r.code == ENOMEM || r.code == ENOBUFS);
}

void
reason_format(struct reason r, char *buf, size_t len)
{
	static const char *const plain[] = {
	        [REASON_NONE] = "-",
	        [REASON_HANG] = "hang",
	        [REASON_START_TIMEOUT] = "start_timeout",
	        [REASON_PROTOCOL] = "protocol",
	        [REASON_GAVE_UP] = "gave_up",
	        [REASON_MEMORY] = "memory",
	        [REASON_STALL] = "stall",
	        [REASON_LOOP] = "loop",
	        [REASON_BUDGET] = "budget",
	};
	const char *name;

	switch (r.kind) {
	case REASON_EXIT:
		snprintf(buf, len, "exit:%d", r.code);
		return;
	case REASON_SIGNAL:
		name = sigabbrev_np(r.code);
		if (name != NULL)
			snprintf(buf, len, "signal:SIG%s", name);
		else
			snprintf(buf, len, "signal:%d", r.code);
		return;
	case REASON_SPAWN:
		name = strerrorname_np(r.code);
		snprintf(buf, len, "spawn:%s", name ? name : "?");
		return;
	default:
		snprintf(buf, len, "%s", plain[r.kind]);
		return;
	}
}

static const char *const declared_names[] = {
        [DECLARED_NONE] = "",
        [DECLARED_DONE] = "done",
        [DECLARED_TRANSIENT] = "transient",
        [DECLARED_RATE_LIMITED] = "rate_limited",
        [DECLARED_PERMANENT] = "permanent",
        [DECLARED_BUDGET] = "budget",
};

const char *
declared_name(enum declared_kind k)
{
	return declared_names[k];
}

enum declared_kind
declared_parse(const char *s, size_t len)
{
	for (size_t k = DECLARED_DONE; k <= DECLARED_BUDGET; k++)
		if (strlen(declared_names[k]) == len &&
		    memcmp(declared_names[k], s, len) == 0)
			return (enum declared_kind)k;
	return DECLARED_NONE;
}
