/*
 * pidns.h - the workers' PID namespace (DESIGN §13, contain: pidns, and
 * contain: auto where no cgroup v2 is writable): a tiny init (guard.c's) is
 * PID 1 of a namespace of its own, and each worker is born in it, agentsupd
 * staying its parent. When agentsupd dies, even by SIGKILL, the init dies
 * (PDEATHSIG, and the EOF of a pipe) and the kernel kills every process in
 * the namespace: setsid'd, double-forked and privilege-dropped ones too.
 * contain.c's; a leaf.
 */
#ifndef AGENTSUP_PIDNS_H
#define AGENTSUP_PIDNS_H

#include <stdbool.h>
#include <sys/types.h>

#include <ev.h>

#define PIDNS_RETRY_MS 1000 /* a lost init is made again at most this often */

struct pidns;

/* The init died (killed by hand?): every worker died with it. */
typedef void (*pidns_lost_fn)(void *arg, const char *why);

/* Start the init (exec'ing helper, or NULL: the fork runs it) and prove
 * workers can be born under it: NULL with errno (EPERM: no CAP_SYS_ADMIN). */
struct pidns *pidns_open(struct ev_loop *, const char *helper, pidns_lost_fn,
                         void *arg);
/* The init's pid (as agentsupd sees it), 0 while lost. */
pid_t pidns_init_pid(const struct pidns *);
/* Around a spawn: children made between are born in the namespace. Enter
 * makes a lost init again (at most every PIDNS_RETRY_MS); -1 with EAGAIN
 * when there is none: the spawn fails, into backoff. */
int pidns_enter(struct pidns *);
void pidns_leave(struct pidns *);
/* Whether pid (agentsupd's view) lives in the namespace. */
bool pidns_holds(const struct pidns *, pid_t);
/* End the init, hence every process in the namespace, and wait for it
 * (reaping whatever else ends meanwhile: its end waits for those). */
void pidns_close(struct pidns *);

#endif
