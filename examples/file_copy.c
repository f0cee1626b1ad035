/*
 * file_copy - copies SRC to DST with zio's file calls.
 *
 *   file_copy [-b] SRC DST
 *
 * By default the kernel copies (zio_sendfile: copy_file_range/sendfile);
 * with -b the data goes through a buffer with zio_file_read/zio_file_write,
 * which io_uring does natively and the other backends on the blocking pool.
 * DST is written to a temporary name, synced, then renamed into place, so
 * it is either the old file or the complete new one. Prints the byte count.
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

static void *copy(void *arg)
{
	struct opts *o = arg;
	char tmp[4096];
	if (snprintf(tmp, sizeof(tmp), "%s.tmp-%d", o->dst, getpid()) >= (int)sizeof(tmp))
		return (void *)1;
	int in = zio_file_open(o->src, O_RDONLY, 0, ZIO_FOREVER);
	if (in < 0) {
		fprintf(stderr, "file_copy: %s: %s\n", o->src, strerror(-in));
		return (void *)1;
	}
	struct stat st;
	int err = zio_file_fstat(in, &st, ZIO_FOREVER);
	int out = err ? err : zio_file_open(tmp, O_WRONLY | O_CREAT | O_TRUNC, st.st_mode & 0777, ZIO_FOREVER);
	if (out < 0) {
		fprintf(stderr, "file_copy: %s: %s\n", tmp, strerror(-out));
		zio_close(in);
		return (void *)1;
	}
	ssize_t total = 0;
	if (o->buffered) {
		static char buf[1 << 16];
		for (;;) {
			ssize_t n = zio_file_read(in, buf, sizeof(buf), ZIO_FOREVER);
			if (n <= 0) {
				if (n < 0)
					total = n;
				break;
			}
			ssize_t w = zio_file_write_all(out, buf, (size_t)n, -1, ZIO_FOREVER);
			if (w < 0) {
				total = w;
				break;
			}
			total += n;
		}
	} else {
		/* Until the end of input, not st_size bytes: /proc files and
		 * pipes say 0, a growing file more. */
		off_t off = 0;
		for (;;) {
			ssize_t n = zio_sendfile(out, in, S_ISREG(st.st_mode) ? &off : NULL, 1 << 30,
						 ZIO_FOREVER);
			if (n <= 0) {
				if (n < 0)
					total = n; /* the error that stopped it */
				break;
			}
			total += n;
		}
	}
	if (total >= 0)
		err = zio_file_sync(out, ZIO_FOREVER);
	zio_close(out);
	zio_close(in);
	if (total < 0 || err) {
		fprintf(stderr, "file_copy: %s\n", strerror(total < 0 ? (int)-total : -err));
		zio_file_unlink(tmp, ZIO_FOREVER);
		return (void *)1;
	}
	err = zio_file_rename(tmp, o->dst, ZIO_FOREVER);
	if (err) {
		fprintf(stderr, "file_copy: rename: %s\n", strerror(-err));
		zio_file_unlink(tmp, ZIO_FOREVER);
		return (void *)1;
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
	if (zio_runtime_create(&rt, NULL))
		return 1;
	void *res = NULL;
	zio_runtime_run(rt, copy, &o, &res);
	zio_runtime_destroy(rt);
	return res ? 1 : 0;
}
