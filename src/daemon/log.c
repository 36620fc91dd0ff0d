/* log.c - the daemon's own lines on stderr: "agentsupd: ...". */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

static const char *log_name = "agentsupd";

void
log_set_name(const char *name)
{
	log_name = name;
}

static void
vlog(const char *fmt, va_list ap, int err)
{
	char buf[1024];

	vsnprintf(buf, sizeof buf, fmt, ap);
	if (err >= 0)
		fprintf(stderr, "%s: %s: %s\n", log_name, buf, strerror(err));
	else
		fprintf(stderr, "%s: %s\n", log_name, buf);
}

void
log_warn(const char *fmt, ...)
{
	int err = errno;
	va_list ap;

	va_start(ap, fmt);
	vlog(fmt, ap, err);
	va_end(ap);
	errno = err;
}

void
log_warnx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(fmt, ap, -1);
	va_end(ap);
}

void
log_info(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(fmt, ap, -1);
	va_end(ap);
}

void
fatal(const char *fmt, ...)
{
	int err = errno;
	va_list ap;

	va_start(ap, fmt);
	vlog(fmt, ap, err);
	va_end(ap);
	exit(70); /* EX_SOFTWARE: an invariant of our own broke */
}

void
fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(fmt, ap, -1);
	va_end(ap);
	exit(70);
}
