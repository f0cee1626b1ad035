/*
 * file_copy - copies SRC to DST with zio's file calls.
 *
 *   file_copy [-b] SRC DST
 *
 * By default the kernel copies (zio_sendfile: copy_file_range/sendfile);
 * with -b the data goes through a buffer with zio_file_pread and
 * zio_file_write_all at explicit offsets, which io_uring does natively and
 * the other backends on the blocking pool (reads and writes at a file's
 * own position go to the pool on io_uring too: the ring does not keep it).
 *
 * A DST that is a regular file, or does not exist, is replaced whole: the
 * copy goes to a new file in DST's directory, is synced, and is renamed
 * over DST, so DST is either the old file or the complete new one, with
 * SRC's permission bits (not the old DST's mode or owner). The new file
 * has no name while it is written (O_TMPFILE), so a copy cut short by
 * anything, a crash included, leaves nothing behind; just before the
 * rename it is linked under a short temporary name (".fc" and 6 hex
 * digits, so a DST name near NAME_MAX works too). On a filesystem without
 * O_TMPFILE that name is made at the start instead, and removed if the
 * copy fails or is stopped.
 *
 * A DST that exists and is not a regular file (a device, a FIFO) or is a
 * symlink is written in place, as cp does: opened with O_TRUNC, through
 * the link (a FIFO needs its reader there already). Copying a file onto
 * itself that way is refused, and so is a dangling symlink, as cp does.
 *
 * SIGINT or SIGTERM stop the copy (exit status 1); bad arguments, an empty
 * SRC or DST among them, are a usage error (2). Prints the byte count.
 * Errors name SRC or DST, as given, and what failed.
 *
 *   file_copy big.iso /tmp/copy.iso
 */
#define _GNU_SOURCE /* the examples use Linux's and glibc's extensions */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zio.h>

#include "example_util.h"

struct opts {
	const char *src, *dst;
	bool buffered;
};

/* What a copy holds, for the cleanup. */
struct job {
	int in, out;
	char tmp[PATH_MAX]; /* DST's temporary name while it exists, else "" */
};

/* Prints "file_copy: WHAT PATH: error" (not for a cancellation: that was
 * a signal, which run_stoppable() reports) and returns err. */
static ssize_t fail(const char *what, const char *path, ssize_t err)
{
	if (err != -ECANCELED)
		fprintf(stderr, "file_copy: %s %s: %s\n", what, path, strerror((int)-err));
	return err;
}

/* Copies o->src's fd in to out until the end of in. Pipes, FIFOs and
 * devices have no offsets: they are read and written at their position.
 * Returns bytes copied, or -errno once it has said what failed. */
static ssize_t copy_data(const struct opts *o, int in, bool in_seekable, int out, bool out_seekable)
{
	ssize_t total = 0;
	if (o->buffered) {
		char buf[1 << 16];
		for (;;) {
			ssize_t n = in_seekable
					    ? zio_file_pread(in, buf, sizeof(buf), (off_t)total, ZIO_FOREVER)
					    : zio_file_read(in, buf, sizeof(buf), ZIO_FOREVER);
			if (n == 0)
				return total;
			if (n < 0)
				return fail("read", o->src, n);
			ssize_t w = zio_file_write_all(out, buf, (size_t)n,
						       out_seekable ? (off_t)total : -1, ZIO_FOREVER);
			if (w < 0)
				return fail("write", o->dst, w);
			total += n;
		}
	}
	/* Until the end of input, not st_size bytes: /proc files and pipes
	 * say 0, a growing file more. At most 1 GiB a call, so the loop
	 * (and a cancel) gets a look in now and then. Either side may be
	 * what failed: the message names both. */
	off_t off = 0;
	for (;;) {
		ssize_t n = zio_sendfile(out, in, in_seekable ? &off : NULL, 1 << 30, ZIO_FOREVER);
		if (n == 0)
			return total;
		if (n < 0) {
			if (n != -ECANCELED)
				fprintf(stderr, "file_copy: copy %s to %s: %s\n", o->src, o->dst,
					strerror((int)-n));
			return n;
		}
		total += n;
	}
}

/* Writes into buf (size PATH_MAX) DST's directory (its first dir_len
 * bytes), then ".fc" and 6 random hex digits: a name beside DST that is
 * short, so a DST name near NAME_MAX leaves room for it. */
static void temp_name(char *buf, const char *dst, size_t dir_len)
{
	static unsigned seed; /* one copy task: no locking */
	if (!seed)
		seed = (unsigned)getpid() ^ (unsigned)zio_now();
	seed = seed * 1103515245u + 12345u;
	snprintf(buf, PATH_MAX, "%.*s.fc%06x", (int)dir_len, dst, (seed >> 8) & 0xffffff);
}

/* A new file for the copy in DST's directory, mode as given: unnamed
 * (O_TMPFILE) where the filesystem has them, else under a temporary name
 * kept in j->tmp for the cleanup. Returns the fd or -errno. */
static int create_beside(const char *dst, size_t dir_len, mode_t mode, struct job *j)
{
	char dir[PATH_MAX];
	memcpy(dir, dst, dir_len);
	dir[dir_len] = 0;
	int fd = zio_file_open(dir_len ? dir : ".", O_TMPFILE | O_WRONLY, mode, ZIO_FOREVER);
	/* EOPNOTSUPP: not on this filesystem; EISDIR: a kernel before 3.11,
	 * which reads O_TMPFILE as opening the directory. */
	if (fd != -EOPNOTSUPP && fd != -EISDIR)
		return fd;
	for (int tries = 0; tries < 100; tries++) {
		temp_name(j->tmp, dst, dir_len);
		/* Only a file of our own: never an existing one, nor where a
		 * symlink planted under that name points. */
		fd = zio_file_open(j->tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, mode, ZIO_FOREVER);
		if (fd != -EEXIST)
			break;
	}
	if (fd < 0)
		j->tmp[0] = 0;
	return fd;
}

/* linkat(2), which zio has no call for, run on the blocking pool as zio
 * runs its own file calls, so a slow disk does not stall the executor.
 * Through /proc/self/fd: linking the fd itself (AT_EMPTY_PATH) needs
 * CAP_DAC_READ_SEARCH. */
struct link_args {
	int fd;
	const char *to;
};

static long link_fd(void *arg)
{
	const struct link_args *a = arg;
	char from[32];
	snprintf(from, sizeof(from), "/proc/self/fd/%d", a->fd);
	return linkat(AT_FDCWD, from, AT_FDCWD, a->to, AT_SYMLINK_FOLLOW) < 0 ? -errno : 0;
}

/* Gives the unnamed file j->out a temporary name beside DST, in j->tmp. */
static int name_unnamed(const char *dst, size_t dir_len, struct job *j)
{
	long err = -EEXIST;
	for (int tries = 0; tries < 100 && err == -EEXIST; tries++) {
		temp_name(j->tmp, dst, dir_len);
		err = zio_blocking_call(link_fd, &(struct link_args){ j->out, j->tmp }, ZIO_FOREVER);
	}
	if (err)
		j->tmp[0] = 0;
	return (int)err;
}

/* Does the copy: bytes copied, or -errno once it has said what failed.
 * What it opened or named is left in j, for the caller to close or remove
 * (also after a cancellation). */
static ssize_t copy_file(const struct opts *o, struct job *j)
{
	struct stat st, dst;
	j->in = zio_file_open(o->src, O_RDONLY, 0, ZIO_FOREVER);
	if (j->in < 0)
		return fail("open", o->src, j->in);
	int err = zio_file_fstat(j->in, &st, ZIO_FOREVER);
	if (err)
		return fail("stat", o->src, err);
	if (S_ISDIR(st.st_mode))
		return fail("read", o->src, -EISDIR);

	/* What DST is: O_PATH | O_NOFOLLOW opens a symlink itself. */
	int probe = zio_file_open(o->dst, O_PATH | O_NOFOLLOW, 0, ZIO_FOREVER);
	if (probe < 0 && probe != -ENOENT)
		return fail("open", o->dst, probe);
	if (probe >= 0) {
		err = zio_file_fstat(probe, &dst, ZIO_FOREVER);
		zio_close(probe);
		if (err)
			return fail("stat", o->dst, err);
	}
	bool in_place = probe >= 0 && !S_ISREG(dst.st_mode);
	bool out_regular = true;
	const char *slash = strrchr(o->dst, '/');
	size_t dir_len = slash ? (size_t)(slash - o->dst) + 1 : 0;
	if (in_place) {
		/* What the link leads to; O_TRUNC on SRC itself would lose it. */
		if (zio_file_stat(o->dst, &dst, ZIO_FOREVER) == 0) {
			out_regular = S_ISREG(dst.st_mode);
			if (out_regular && dst.st_dev == st.st_dev && dst.st_ino == st.st_ino) {
				fprintf(stderr, "file_copy: %s and %s are the same file\n", o->src, o->dst);
				return -EINVAL;
			}
		}
		j->out = zio_file_open(o->dst, O_WRONLY | O_TRUNC, 0, ZIO_FOREVER);
		if (j->out == -ENOENT && S_ISLNK(dst.st_mode)) {
			/* dst is still the link's own stat: what it names is not there. */
			fprintf(stderr, "file_copy: not writing through dangling symlink %s\n", o->dst);
			return -ENOENT;
		}
		if (j->out == -ENXIO && S_ISFIFO(dst.st_mode)) {
			/* zio opens without waiting, so a FIFO's reader must come first. */
			fprintf(stderr, "file_copy: open %s: a FIFO with no reader (start the reader first)\n",
				o->dst);
			return -ENXIO;
		}
		if (j->out < 0)
			return fail("open", o->dst, j->out);
	} else {
		if (dir_len + sizeof(".fc123456") > PATH_MAX)
			return fail("create", o->dst, -ENAMETOOLONG);
		j->out = create_beside(o->dst, dir_len, st.st_mode & 0777, j);
		if (j->out < 0)
			return fail("create", o->dst, j->out);
	}

	ssize_t total = copy_data(o, j->in, S_ISREG(st.st_mode), j->out, out_regular);
	if (total < 0)
		return total;
	if (out_regular && (err = zio_file_sync(j->out, ZIO_FOREVER)) < 0)
		return fail("sync", o->dst, err);
	if (in_place)
		return total;
	if (!j->tmp[0] && (err = name_unnamed(o->dst, dir_len, j)) < 0)
		return fail("create", o->dst, err);
	if ((err = zio_file_rename(j->tmp, o->dst, ZIO_FOREVER)) < 0)
		return fail("rename to", o->dst, err);
	j->tmp[0] = 0;
	return total;
}

static void *copy(void *arg)
{
	struct job j = { .in = -1, .out = -1 };
	ssize_t total = copy_file(arg, &j);
	zio_shield_begin(); /* a stopped copy cleans up too */
	if (j.out >= 0)
		zio_close(j.out);
	if (j.in >= 0)
		zio_close(j.in);
	if (j.tmp[0])
		zio_file_unlink(j.tmp, ZIO_FOREVER);
	zio_shield_end();
	if (total < 0)
		return (void *)1;
	if (printf("%zd\n", total) < 0 || fflush(stdout) == EOF) {
		fprintf(stderr, "file_copy: stdout: %s\n", strerror(errno));
		return (void *)1;
	}
	return NULL;
}

static const char synopsis[] = "[-b] SRC DST";
static const char help[] =
	"Copies SRC to DST. A regular DST, or a new one, is replaced whole: the\n"
	"copy is synced and renamed over it, so DST is the old file or the whole\n"
	"new one, never a part. Another kind of DST (a device, a FIFO, a symlink)\n"
	"is written in place, as cp does.\n\n"
	"  -b  copy through a buffer (pread and write) instead of letting the\n"
	"      kernel copy (sendfile, copy_file_range)\n\n" EXAMPLE_ENV_HELP
	"Exit status: 0 after a whole copy, 1 on a failure or on SIGINT or\n"
	"SIGTERM, 2 for a usage error.\n";

int main(int argc, char **argv)
{
	if (!std_fds_open())
		return 1;
	struct opts o = { 0 };
	int c;
	bool bad = false;
	help_exits(argc, argv, synopsis, help);
	while ((c = getopt(argc, argv, "b")) != -1) {
		if (c == 'b')
			o.buffered = true;
		else
			bad = true;
	}
	if (bad || argc - optind != 2)
		return usage_error(argv[0], synopsis);
	o.src = argv[optind];
	o.dst = argv[optind + 1];
	if (!*o.src || !*o.dst) {
		fprintf(stderr, "file_copy: %s is empty (a path is needed)\n", *o.src ? "DST" : "SRC");
		return 2;
	}
	struct stoppable s = { .prog = "file_copy", .fn = copy, .arg = &o,
			       .sigfd = stop_signals_block() };
	if (s.sigfd < 0) {
		fprintf(stderr, "file_copy: signals: %s\n", strerror(-s.sigfd));
		return 1;
	}
	zio_runtime *rt;
	int err = zio_runtime_create(&rt, NULL);
	if (err) {
		fprintf(stderr, "file_copy: cannot start the zio runtime: %s\n", strerror(-err));
		return 1;
	}
	void *res = NULL;
	zio_runtime_run(rt, run_stoppable, &s, &res);
	zio_runtime_destroy(rt);
	return res ? 1 : 0;
}
