/*
 * sockpath.c - where the control socket lives by default, and the checks
 * that keep another local user from squatting it.
 *
 * A socket in a shared, sticky /tmp can be created first by anyone: the
 * daemon would then find its path taken, and agentsupctl would believe the
 * impostor. So a user without XDG_RUNTIME_DIR gets a directory of their own,
 * created 0700 and checked before use, as tmux does with /tmp/tmux-UID.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agentsup/wire.h"

#define SOCKPATH_NAME "agentsupd.sock"

/* The private directory of this user: ${TMPDIR:-/tmp}/agentsupd-UID. */
static int
sockpath_private_dir(char *buf, size_t len)
{
	const char *tmp = getenv("TMPDIR");
	int n;

	if (tmp == NULL || *tmp != '/')
		tmp = "/tmp";
	n = snprintf(buf, len, "%s/agentsupd-%lu", tmp,
	             (unsigned long)geteuid());
	return n < 0 || (size_t)n >= len ? -1 : 0;
}

int
agentsup_wire_default_socket(char *buf, size_t len)
{
	const char *rt = getenv("XDG_RUNTIME_DIR");
	char dir[256];
	int n;

	if (geteuid() == 0)
		n = snprintf(buf, len, "/run/" SOCKPATH_NAME);
	else if (rt != NULL && *rt == '/')
		n = snprintf(buf, len, "%s/" SOCKPATH_NAME, rt);
	else if (sockpath_private_dir(dir, sizeof dir) == 0)
		n = snprintf(buf, len, "%s/" SOCKPATH_NAME, dir);
	else
		n = -1;
	return n < 0 || (size_t)n >= len ? -1 : 0;
}

/* Whether path is directly inside dir. */
static int
sockpath_inside(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	return strncmp(path, dir, n) == 0 && path[n] == '/' &&
	       strchr(path + n + 1, '/') == NULL;
}

static int
sockpath_refuse(const char **why, const char *sentence)
{
	*why = sentence;
	errno = EACCES;
	return -1;
}

int
agentsup_wire_socket_dir(const char *path, int create, const char **why)
{
	char dir[256];
	struct stat st;

	*why = NULL;
	if (sockpath_private_dir(dir, sizeof dir) < 0 ||
	    !sockpath_inside(path, dir))
		return 0;
	if (create && mkdir(dir, 0700) < 0 && errno != EEXIST) {
		*why = strerror(errno);
		return -1;
	}
	if (lstat(dir, &st) < 0) {
		if (errno == ENOENT && !create)
			return 0; /* nothing listens there: connect says so */
		*why = strerror(errno);
		return -1;
	}
	if (!S_ISDIR(st.st_mode))
		return sockpath_refuse(why, "the socket's directory is not a "
		                            "directory (a link or a file)");
	if (st.st_uid != geteuid())
		return sockpath_refuse(why, "the socket's directory belongs to "
		                            "another user");
	if ((st.st_mode & 077) != 0)
		return sockpath_refuse(why, "the socket's directory can be "
		                            "reached by other users (its mode "
		                            "must be 0700)");
	return 0;
}
