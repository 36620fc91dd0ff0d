/*
 * clone3.h - clone3(2)'s arguments, as linux/sched.h has them (not
 * included: its CLONE_* macros clash with glibc's), for spawn.c and the
 * cgroup probe in contain_setup.c. glibc has no clone3 wrapper.
 */
#ifndef AGENTSUP_CLONE3_H
#define AGENTSUP_CLONE3_H

#include <stdint.h>

struct clone3_args {
	uint64_t flags, pidfd, child_tid, parent_tid, exit_signal;
	uint64_t stack, stack_size, tls, set_tid, set_tid_size, cgroup;
};
#define CLONE3_INTO_CGROUP 0x200000000ULL
#define CLONE3_SYSCALL     435 /* the same number on every architecture */

#endif
