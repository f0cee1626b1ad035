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
 * DST is written to a new file beside it (DST.tmp-PID), synced, then
 * renamed into place, so it is either the old file or the complete new
 * one; the new file has SRC's permission bits, not the old DST's mode or
 * owner. Prints the byte count. Errors name the file and what failed.
 *
 *   file_copy big.iso /tmp/copy.iso
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zio.h>

struct opts {
	const char *src, *dst;
	bool buffered;
};

/* Prints "file_copy: WHAT PATH: error" and returns the task's failure. */
static void *fail(const char *what, const char *path, int err)
{
	fprintf(stderr, "file_copy: %s %s: %s\n", what, path, strerror(-err));
	return (void *)1;
}

/* Copies in to out until the end of in: bytes copied, or -errno, with
 * *what saying which side failed. */
static ssize_t copy_data(int in, int out, const struct stat *st, bool buffered, const char **what)
{
	ssize_t total = 0;
	if (buffered) {
		char buf[1 << 16];
		for (;;) {
			/* (SRC may be a pipe or /dev/stdin: no offsets there.) */
			ssize_t n = S_ISREG(st->st_mode)
					    ? zio_file_pread(in, buf, sizeof(buf), (off_t)total, ZIO_FOREVER)
					    : zio_file_read(in, buf, sizeof(buf), ZIO_FOREVER);
			if (n <= 0) {
				*what = "read";
				return n < 0 ? n : total;
			}
			ssize_t w = zio_file_write_all(out, buf, (size_t)n, (off_t)total, ZIO_FOREVER);
			if (w < 0) {
				*what = "write";
				return w;
			}
			total += n;
		}
	}
	/* Until the end of input, not st_size bytes: /proc files and pipes
	 * say 0, a growing file more. At most 1 GiB a call, so the loop
	 * (and a cancel) gets a look in now and then. */
	off_t off = 0;
	for (;;) {
		ssize_t n = zio_sendfile(out, in, S_ISREG(st->st_mode) ? &off : NULL, 1 << 30,
					 ZIO_FOREVER);
		if (n <= 0) {
			*what = "copy";
			return n < 0 ? n : total;
		}
		total += n;
	}
}

static void *copy(void *arg)
{
	struct opts *o = arg;
	char tmp[4096];
	if (snprintf(tmp, sizeof(tmp), "%s.tmp-%d", o->dst, getpid()) >= (int)sizeof(tmp))
		return fail("create", o->dst, -ENAMETOOLONG);
	int in = zio_file_open(o->src, O_RDONLY, 0, ZIO_FOREVER);
	if (in < 0)
		return fail("open", o->src, in);
	struct stat st;
	int err = zio_file_fstat(in, &st, ZIO_FOREVER);
	if (err) {
		zio_close(in);
		return fail("stat", o->src, err);
	}
	/* A new file of our own: never an existing one, nor where a symlink
	 * planted under that name points. */
	int out = zio_file_open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, st.st_mode & 0777,
				ZIO_FOREVER);
	if (out < 0) {
		zio_close(in);
		return fail("create", tmp, out);
	}
	const char *what = NULL;
	ssize_t total = copy_data(in, out, &st, o->buffered, &what);
	if (total >= 0 && (err = zio_file_sync(out, ZIO_FOREVER)) < 0) {
		total = err;
		what = "sync";
	}
	zio_close(out);
	zio_close(in);
	if (total < 0) {
		zio_file_unlink(tmp, ZIO_FOREVER);
		return fail(what, strcmp(what, "read") == 0 ? o->src : tmp, (int)total);
	}
	err = zio_file_rename(tmp, o->dst, ZIO_FOREVER);
	if (err) {
		zio_file_unlink(tmp, ZIO_FOREVER);
		return fail("rename to", o->dst, err);
	}
	printf("%zd\n", total);
	return NULL;
}

int main(int argc, char **argv)
{
	struct opts o = { 0 };
	int c;
	while ((c = getopt(argc, argv, "b")) != -1) {
		if (c == 'b') {
			o.buffered = true;
		} else {
			fprintf(stderr, "usage: %s [-b] SRC DST\n", argv[0]);
			return 2;
		}
	}
	if (argc - optind != 2) {
		fprintf(stderr, "usage: %s [-b] SRC DST\n", argv[0]);
		return 2;
	}
	o.src = argv[optind];
	o.dst = argv[optind + 1];
	zio_runtime *rt;
	int err = zio_runtime_create(&rt, NULL);
	if (err) {
		fprintf(stderr, "file_copy: runtime: %s\n", strerror(-err));
		return 1;
	}
	void *res = NULL;
	zio_runtime_run(rt, copy, &o, &res);
	zio_runtime_destroy(rt);
	return res ? 1 : 0;
}
