/*
 * spawn_int.h - what spawn.c (a spawn), spawn_env.c (its environment) and
 * spawner.c (set up once) share.
 * Nothing else includes it.
 */
#ifndef AGENTSUP_SPAWN_INT_H
#define AGENTSUP_SPAWN_INT_H

#define AGENTSUP_CHILD_FD 3 /* the channel, in the worker */

struct spawn_args;
struct spawn_env_mem;
struct spawn_ids;
struct spec;

/* spawn_env.c: the worker's own AGENTSUP_* variables into own (room for
 * SPAWN_ENV_OWN_MAX and the NULL after them), their text in m; how many,
 * or -1 (E2BIG) past SPAWN_ENV_OWN_BYTES, which a config's caps keep it
 * far below (a path of 32 names, two socket paths). */
#define SPAWN_ENV_OWN_MAX   8
#define SPAWN_ENV_OWN_BYTES (64u << 10)
void spawn_env_mem_init(struct spawn_env_mem *m);
int spawn_env_own(struct spawn_env_mem *m, const struct spawn_args *,
                  char **own);
/* agentsupd's environment, then the user's (HOME, USER, LOGNAME, SHELL of
 * `user:`, unless set later), then its env_file's (fenv), then the spec's,
 * then own (NULL-terminated): a later one sets a key over an earlier. The
 * strings are borrowed; the array is m's, valid until the next spawn. */
char **spawn_env_build(struct spawn_env_mem *m, const struct spec *,
                       const struct spawn_ids *, char *const *fenv, char **own,
                       size_t nown);
void spawn_env_mem_free(struct spawn_env_mem *m);
/* PATH in envp, or the default search path (in the child: safe). */
const char *spawn_env_path(char **envp);

/* Born sharing our descriptor table (CLONE_FILES: the clone copies none
 * of it), the child takes a copy of the part below the descriptors it
 * needs only: with 1,000 workers the daemon holds thousands, which a whole
 * copy, then exec's close-on-exec, would each touch at every spawn. In the
 * child: 0, or -1 with errno. */
int spawn_unshare_fds(int below);

#endif
