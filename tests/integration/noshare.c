/*
 * noshare.c - run a program where unshare(2) and close_range(2) fail with
 * EPERM, as under Docker's default seccomp profile on kernels before 5.9:
 * agentsupd must still spawn its workers there (test_seccomp.py). With
 * --no-pidfd, also clone3(2) fails with ENOSYS (as older Docker profiles
 * have it) and clone(2) with CLONE_PIDFD with EPERM: no worker has a pidfd.
 * With --clone3-eperm, only clone3(2) fails, with EPERM (as Docker's
 * profiles before 20.10.10 and filters whose default is EPERM have it).
 *
 *     noshare [--no-pidfd | --clone3-eperm] PROGRAM [ARGS...]
 */
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef __NR_close_range
#define __NR_close_range 436
#endif
#ifndef __NR_clone3
#define __NR_clone3 435
#endif
#define NOSHARE_CLONE_PIDFD 0x00001000

#define REFUSE(nr)                                                             \
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (nr), 0, 1),                       \
	        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM)

int
main(int argc, char **argv)
{
	struct sock_filter plain[] = {
	        BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
	                 offsetof(struct seccomp_data, nr)),
	        REFUSE(__NR_unshare),
	        REFUSE(__NR_close_range),
	        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_filter nopidfd[] = {
	        BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
	                 offsetof(struct seccomp_data, nr)),
	        REFUSE(__NR_unshare),
	        REFUSE(__NR_close_range),
	        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_clone3, 0, 1),
	        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
	        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_clone, 1, 0),
	        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	        /* clone: its flags, the low word of the first argument */
	        BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
	                 offsetof(struct seccomp_data, args[0])),
	        BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, NOSHARE_CLONE_PIDFD, 0, 1),
	        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
	        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_filter eperm[] = {
	        BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
	                 offsetof(struct seccomp_data, nr)),
	        REFUSE(__NR_clone3),
	        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	int no_pidfd = argc > 1 && strcmp(argv[1], "--no-pidfd") == 0;
	int clone3_eperm = argc > 1 && strcmp(argv[1], "--clone3-eperm") == 0;
	struct sock_fprog prog = {
	        .len = no_pidfd       ? sizeof nopidfd / sizeof nopidfd[0]
	               : clone3_eperm ? sizeof eperm / sizeof eperm[0]
	                              : sizeof plain / sizeof plain[0],
	        .filter = no_pidfd       ? nopidfd
	                  : clone3_eperm ? eperm
	                                 : plain,
	};

	argv += no_pidfd + clone3_eperm;
	argc -= no_pidfd + clone3_eperm;
	if (argc < 2) {
		fprintf(stderr, "usage: noshare [--no-pidfd | --clone3-eperm] "
		                "PROGRAM [ARGS...]\n");
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
