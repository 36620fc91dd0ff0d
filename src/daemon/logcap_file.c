/*
 * logcap_file.c - a captured worker's log_dir/NAME.log: opened at its first
 * line with O_APPEND, rotated before it would grow beyond max (NAME.log.4 ->
 * .5, ..., NAME.log -> .1), only ever between two lines.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "logcap_file.h"
#include "logcap_reap.h"
#include "util.h"

static char *
file_path(const struct logcap_file_spec *s, unsigned gen)
{
	if (gen == 0)
		return xasprintf("%s/%s.log", s->dir, s->name);
	return xasprintf("%s/%s.log.%u", s->dir, s->name, gen);
}

void
logcap_file_close(struct logcap_file *f)
{
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
	f->error = false;
}

/* No more writes until LOGCAP_FILE_RETRY_MS from now. */
static void
file_failed(struct logcap_file *f)
{
	f->error = true;
	f->retry_ms = clock_now_ms() + LOGCAP_FILE_RETRY_MS;
}

static int
file_open(struct logcap_file *f, const struct logcap_file_spec *s)
{
	char *path = file_path(s, 0);
	struct stat st;

	f->fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	/* a log_dir not made yet (as a state_dir would be: the package and
	 * the examples name /var/log/agentsup, which nothing else makes) */
	if (f->fd < 0 && errno == ENOENT && mkdir(s->dir, 0750) == 0) {
		log_info("made the log_dir %s", s->dir);
		f->fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC,
		             0644);
	}
	if (f->fd < 0 || fstat(f->fd, &st) < 0) {
		log_warn("worker %s: log file %s", s->name, path);
		if (f->fd >= 0)
			close(f->fd);
		f->fd = -1;
		file_failed(f);
		free(path);
		return -1;
	}
	f->size = (uint64_t)st.st_size;
	free(path);
	return 0;
}

/* Unlinked while a descriptor of ours holds it, so that the costly last
 * close (its pages, its blocks) is the reaper's, off the loop. False if
 * there was no such file. */
static bool
file_unlink(const struct logcap_file_spec *s, unsigned gen)
{
	char *path = file_path(s, gen);
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	bool was = true;

	if (unlink(path) < 0) {
		was = false;
		if (errno != ENOENT)
			log_warn("worker %s: rotate %s", s->name, path);
	}
	if (fd >= 0)
		logcap_reap_close(s->reap, fd);
	free(path);
	return was;
}

/* The files a larger keep left (log_keep lowered, agentsupd restarted
 * with less) are removed, as logrotate removes what is beyond its count:
 * from keep + 1 up to the first that is missing, LOGCAP_SWEEP_STEP a
 * rotation, so that each one's last close stays the reaper's (its queue
 * holds a few) and not the loop's. Later rotations pay nothing for it. */
static void
file_sweep(struct logcap_file *f, const struct logcap_file_spec *s)
{
	unsigned n = 0;

	if (f->swept != s->keep + 1) { /* a keep of its own now */
		f->swept = s->keep + 1;
		f->sweep_at = s->keep + 1;
	}
	while (f->sweep_at != 0 && n < LOGCAP_SWEEP_STEP) {
		if (f->sweep_at > s->keep + LOGCAP_SWEEP_MAX ||
		    !file_unlink(s, f->sweep_at)) {
			f->sweep_at = 0; /* done */
			break;
		}
		f->sweep_at++;
		n++;
	}
	if (n > 0)
		log_info("worker %s: removed %u log file%s beyond log_keep %u",
		         s->name, n, n == 1 ? "" : "s", s->keep);
}

/* The oldest goes first, so that no rename replaces a file: on ext4 a
 * rename over an existing file forces the writeback of the one renamed
 * (auto_da_alloc) and frees the one replaced, with a synchronous discard on
 * a disk mounted -o discard, all within the loop's turn. A file deleted
 * before its pages were ever written back costs no disk work at all. */
static void
file_rotate(struct logcap_file *f, const struct logcap_file_spec *s)
{
	char *from, *to;

	close(f->fd);
	f->fd = -1;
	file_sweep(f, s);
	(void)file_unlink(s, s->keep);
	for (unsigned g = s->keep; g > 0; g--) {
		from = file_path(s, g - 1);
		to = file_path(s, g);
		if (rename(from, to) < 0 && errno != ENOENT)
			log_warn("worker %s: rotate %s", s->name, from);
		free(from);
		free(to);
	}
	file_open(f, s);
}

/* Whether the rename budget takes a rotation now (it is spent if so): a
 * flood under a tiny max rotates as fast as the budget refills, its file
 * growing past max meanwhile, said once an episode. */
static bool
file_may_rotate(struct logcap_file *f, const struct logcap_file_spec *s)
{
	uint64_t now = clock_now_ms(), cost = (uint64_t)s->keep + 1;

	if (f->renames_ms == 0)
		f->renames = LOGCAP_RENAME_BURST;
	else
		f->renames += (now - f->renames_ms) * LOGCAP_RENAME_RATE / 1000;
	if (f->renames > LOGCAP_RENAME_BURST)
		f->renames = LOGCAP_RENAME_BURST;
	f->renames_ms = now;
	if (f->renames >= cost) {
		f->renames -= cost;
		if (f->outpaced && f->renames >= LOGCAP_RENAME_BURST / 2) {
			log_info("worker %s: its log file rotates at log_max "
			         "again",
			         s->name);
			f->outpaced = false;
		}
		return true;
	}
	if (!f->outpaced)
		log_warnx("worker %s: its output outpaces rotation (%u files "
		          "kept, each a rename a rotation): %s.log grows past "
		          "log_max until it slows",
		          s->name, s->keep, s->name);
	f->outpaced = true;
	return false;
}

/* Whole lines, or none: a write cut short (the disk filled) is taken back
 * to where these lines began, so that no torn line is left for the next
 * one to be glued to. */
static void
file_write(struct logcap_file *f, const struct logcap_file_spec *s,
           const char *p, size_t n)
{
	size_t all = n, done = 0;
	struct stat st;
	ssize_t w;

	while (n > 0 && !f->error) {
		w = write(f->fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			int err = errno;
			/* back by what this call wrote, from the file's real
			 * end (f->size is stale after a copytruncate: a
			 * truncate to it would pad the file with zeros);
			 * before it is said, so that whoever reads the file
			 * on hearing it never finds the torn line */
			if (done > 0 && fstat(f->fd, &st) == 0 &&
			    (uint64_t)st.st_size >= done &&
			    ftruncate(f->fd, st.st_size - (off_t)done) == 0) {
				f->size = (uint64_t)st.st_size - done;
				done = 0;
			}
			errno = err;
			log_warn(
			        "worker %s: writing its log file (trying again "
			        "in %d s)",
			        s->name, LOGCAP_FILE_RETRY_MS / 1000);
			f->lost += all - done;
			file_failed(f);
			break;
		}
		p += w;
		n -= (size_t)w;
		done += (size_t)w;
		f->size += (uint64_t)w;
	}
}

/* Failed a while ago: try again, on a fresh descriptor. False while it
 * is not time yet. */
static bool
file_retry(struct logcap_file *f)
{
	if (clock_now_ms() < f->retry_ms)
		return false;
	logcap_file_close(f);
	return true;
}

/* A single line longer than max is written whole. The size is checked with
 * fstat before a rotation, in case logrotate's copytruncate emptied the
 * file meanwhile. */
void
logcap_file_put(struct logcap_file *f, const struct logcap_file_spec *s,
                const char *p, size_t n)
{
	bool checked = false;
	struct stat st;

	if (f->error && !file_retry(f)) {
		f->lost += n;
		return;
	}
	if (f->fd < 0 && file_open(f, s) < 0) {
		f->lost += n;
		return;
	}
	while (n > 0 && f->fd >= 0 && !f->error) {
		size_t k = n, room;
		const char *nl;

		if (s->max && f->size + n > s->max) {
			if (!checked) {
				checked = true;
				if (fstat(f->fd, &st) == 0)
					f->size = (uint64_t)st.st_size;
				continue;
			}
			room = f->size < s->max ? (size_t)(s->max - f->size)
			                        : 0;
			nl = room ? memrchr(p, '\n', room < n ? room : n)
			          : NULL;
			if (nl != NULL) {
				k = (size_t)(nl - p) + 1;
			} else if (f->size > 0 && file_may_rotate(f, s)) {
				file_rotate(f, s);
				continue;
			} else if (f->size > 0) {
				k = n; /* no budget: into this file */
			} else {
				nl = memchr(p, '\n', n);
				k = nl ? (size_t)(nl - p) + 1 : n;
			}
		}
		file_write(f, s, p, k);
		p += k;
		n -= k;
	}
	if (f->error) {
		f->lost += n; /* the lines after the failed ones */
	} else if (f->lost > 0) {
		log_warnx("worker %s: its log file is written again (%llu "
		          "bytes of output were lost)",
		          s->name, (unsigned long long)f->lost);
		f->lost = 0;
	}
}
