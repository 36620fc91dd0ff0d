/*
 * stopsig.c - `stop_signal`: the signal a worker's stop sequence begins
 * with, for programs that stop cleanly on another than SIGTERM (nginx's
 * QUIT, a Node.js app's INT), as supervisord's `stopsignal` and systemd's
 * `KillSignal=`. The config is pure: it keeps the name's place in this
 * list, and the daemon its number (signals.c).
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "parse.h"

const char *const config_stop_signals[STOP_SIGNALS] = {
        "TERM", "INT", "QUIT", "HUP", "USR1", "USR2", "WINCH", "PWR", "KILL",
};

/* stop_signal: TERM, SIGINT, quit...: one of config_stop_signals. */
void
stop_signal_key(struct parse *p, const struct key *k, yaml_node_t *v,
                struct spec *s, int depth)
{
	const char *str = load_scalar(p, k->name, v), *name;

	(void)depth;
	if (str == NULL)
		return;
	name = strncasecmp(str, "SIG", 3) == 0 ? str + 3 : str;
	for (int i = 0; i < STOP_SIGNALS; i++)
		if (strcasecmp(name, config_stop_signals[i]) == 0) {
			spec_pol(s)->stop_signal = i;
			return;
		}
	load_err(p, &v->start_mark,
	         "%s: want TERM, INT, QUIT, HUP, USR1, USR2, WINCH, PWR or "
	         "KILL, not \"%s\"",
	         k->name, str);
}
