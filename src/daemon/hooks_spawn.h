/*
 * hooks_spawn.h - an `on_event:` hook's process (hooks.c's): the event on
 * its stdin, a process group of its own, dying with agentsupd.
 */
#ifndef AGENTSUP_HOOKS_SPAWN_H
#define AGENTSUP_HOOKS_SPAWN_H

#include <stddef.h>
#include <sys/types.h>

/* argv run with json (and a newline) as its stdin, on *stack (made on
 * first use, NULL before). Its pid, or -1 with errno; *err is exec's errno
 * when the program could not be run (the child then exits at once). */
pid_t hooks_spawn(void **stack, char **argv, const char *json, size_t len,
                  int *err);
/* The stack, once no hook will be spawned again. */
void hooks_spawn_free(void *stack);

#endif
