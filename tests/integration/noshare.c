/*
 * noshare.c - run a program where unshare(2) and close_range(2) fail with
 * EPERM, as under Docker's default seccomp profile on kernels before 5.9:
 * agentsupd must still spawn its workers there (test_spawn_env.py).
 *
 *     noshare PROGRAM [ARGS...]
 */
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef __NR_close_range
#define __NR_close_range 436
#endif

#define REFUSE(nr)                                                             \
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (nr), 0, 1),                       \
	        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM)

int
main(int argc, char **argv)
{
	struct sock_filter filter[] = {
	        BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
	                 offsetof(struct seccomp_data, nr)),
	        REFUSE(__NR_unshare),
	        REFUSE(__NR_close_range),
	        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = {
	        .len = sizeof filter / sizeof filter[0],
	        .filter = filter,
	};

	if (argc < 2) {
		fprintf(stderr, "usage: noshare PROGRAM [ARGS...]\n");
		return 64;
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
	    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0) {
		perror("noshare: seccomp");
		return 71;
	}
	execvp(argv[1], argv + 1);
	perror("noshare: exec");
	return 127;
}
