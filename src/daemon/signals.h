/* signals.h - SIGTERM, SIGINT, SIGHUP and SIGUSR1: stop, reload, drain. */
#ifndef AGENTSUP_SIGNALS_H
#define AGENTSUP_SIGNALS_H

struct daemon;

/* Blocked and read from a signalfd watched by the loop (before any child
 * is made, before any thread starts). 0, or -1 with errno. */
int signals_open(struct daemon *);
void signals_close(struct daemon *);
/* The number of a stop_signal (its place in config_stop_signals). */
int signals_stop(int place);

#endif
