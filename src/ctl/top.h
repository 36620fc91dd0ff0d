/* top.h - agentsupctl top: a live full-screen view of the tree. */
#ifndef AGENTSUP_TOP_H
#define AGENTSUP_TOP_H

/* Run on fd, a connection to agentsupd at socket_path that agentsupctl has
 * checked (it is closed at the end), until the user quits (q); the exit
 * status for agentsupctl. */
int top_run(const char *socket_path, int fd);

#endif
