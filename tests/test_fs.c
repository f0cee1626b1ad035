/*
 * test_fs.c - files under every backend (native on io_uring, the blocking
 * pool on epoll/poll): open, read/write at the position and at offsets,
 * sync, stat/fstat, rename, unlink, mkdir/rmdir, errors, sendfile into a
 * socket and into a file, and the executor staying responsive meanwhile.
 */
/* ZIO_TEST_BACKENDS */
/* ZIO_TEST_LABELS: io */
#include "helpers.h"

#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* A file or directory name of this test's own: per process and per
 * backend, as the backends' runs of a test may overlap. */
static void test_path(char *out, size_t n, const char *what)
{
	const char *b = getenv("ZIO_BACKEND");
	snprintf(out, n, "/tmp/zio-%s-%d-%s", what, getpid(), b ? b : "x");
}

static void *files(void *arg)
{
	char dir[128], p1[160], p2[160];
	test_path(dir, sizeof(dir), "fs");
	snprintf(p1, sizeof(p1), "%s/a.txt", dir);
	snprintf(p2, sizeof(p2), "%s/b.txt", dir);
	cr_assert_eq(zio_dir_create(dir, 0700, ZIO_FOREVER), 0);
	cr_assert_eq(zio_dir_create(dir, 0700, ZIO_FOREVER), -EEXIST);

	int fd = zio_file_open(p1, O_CREAT | O_RDWR | O_TRUNC, 0600, ZIO_FOREVER);
	cr_assert_geq(fd, 0, "open: %d", fd);
	cr_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	cr_assert_eq(zio_file_write(fd, "hello ", 6, ZIO_FOREVER), 6);
	cr_assert_eq(zio_file_write_all(fd, "world", 5, -1, ZIO_FOREVER), 5);
	cr_assert_eq(zio_file_pwrite(fd, "W", 1, 6, ZIO_FOREVER), 1);
	cr_assert_eq(zio_file_sync(fd, ZIO_FOREVER), 0);
	cr_assert_eq(zio_file_datasync(fd, ZIO_FOREVER), 0);
	char buf[32] = { 0 };
	cr_assert_eq(zio_file_pread(fd, buf, sizeof(buf), 0, ZIO_FOREVER), 11);
	cr_assert_str_eq(buf, "hello World");
	cr_assert_eq(zio_file_pread(fd, buf, 4, -1, ZIO_FOREVER), -EINVAL);
	lseek(fd, 6, SEEK_SET);
	memset(buf, 0, sizeof(buf));
	cr_assert_eq(zio_file_read(fd, buf, 3, ZIO_FOREVER), 3);
	cr_assert_str_eq(buf, "Wor");
	struct stat st;
	cr_assert_eq(zio_file_fstat(fd, &st, ZIO_FOREVER), 0);
	cr_assert_eq(st.st_size, 11);
	cr_assert(S_ISREG(st.st_mode));
	/* The generic calls work on a regular file too. */
	lseek(fd, 0, SEEK_SET);
	cr_assert_eq(zio_read(fd, buf, 5, ZIO_FOREVER), 5);
	cr_assert_eq(zio_file_close(fd), 0);

	cr_assert_eq(zio_file_stat(p1, &st, ZIO_FOREVER), 0);
	cr_assert_eq(st.st_size, 11);
	cr_assert_eq(zio_file_rename(p1, p2, ZIO_FOREVER), 0);
	cr_assert_eq(zio_file_stat(p1, &st, ZIO_FOREVER), -ENOENT);
	cr_assert_eq(zio_file_open(p1, O_RDONLY, 0, ZIO_FOREVER), -ENOENT);
	cr_assert_eq(zio_dir_remove(dir, ZIO_FOREVER), -ENOTEMPTY);
	cr_assert_eq(zio_file_unlink(p2, ZIO_FOREVER), 0);
	cr_assert_eq(zio_file_unlink(p2, ZIO_FOREVER), -ENOENT);
	cr_assert_eq(zio_dir_remove(dir, ZIO_FOREVER), 0);
	cr_assert_eq(zio_file_stat(NULL, &st, ZIO_FOREVER), -EINVAL);
	cr_assert_eq(zio_file_fstat(-1, &st, ZIO_FOREVER), -EBADF);
	cr_assert_eq(zio_file_read(12345, buf, 1, ZIO_FOREVER), -EBADF);
	return NULL;
}

Test(fs, files, .timeout = 20)
{
	run_in_runtime(1, files, NULL);
	run_in_runtime(2, files, NULL);
}

Test(fs, plain_thread, .timeout = 20)
{
	files(NULL);
}

static void *sink(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char buf[8192];
	ssize_t n, total = 0;
	while ((n = zio_read(fd, buf, sizeof(buf), zio_deadline_after(ZIO_SEC(10)))) > 0)
		total += n;
	return (void *)total;
}

static void *sendfile_task(void *arg)
{
	char path[128], out[160];
	test_path(path, sizeof(path), "sf");
	snprintf(out, sizeof(out), "%s.copy", path);
	int fd = zio_file_open(path, O_CREAT | O_RDWR | O_TRUNC, 0600, ZIO_FOREVER);
	cr_assert_geq(fd, 0);
	size_t len = 3 << 20;
	char *data = malloc(len);
	for (size_t i = 0; i < len; i++)
		data[i] = (char)(i * 13);
	cr_assert_eq(zio_file_write_all(fd, data, len, 0, ZIO_FOREVER), (ssize_t)len);

	/* into a socket, with a small send buffer so it has to wait */
	int sv[2];
	cr_assert_eq(zio_socketpair(AF_UNIX, SOCK_STREAM, sv), 0);
	zio_socket_set_sndbuf(sv[0], 4096);
	zio_task *t;
	zio_spawn(NULL, &t, sink, (void *)(intptr_t)sv[1], NULL);
	off_t off = -1;
	cr_assert_eq(zio_sendfile(sv[0], fd, &off, len, ZIO_FOREVER), -EINVAL);
	off = 0;
	cr_assert_eq(zio_sendfile(sv[0], fd, &off, len, ZIO_FOREVER), (ssize_t)len);
	cr_assert_eq(off, (off_t)len);
	zio_shutdown(sv[0], SHUT_WR);
	void *r;
	zio_task_join(t, &r);
	cr_assert_eq((intptr_t)r, (intptr_t)len);

	/* into a file */
	int o = zio_file_open(out, O_CREAT | O_RDWR | O_TRUNC, 0600, ZIO_FOREVER);
	off = 100;
	cr_assert_eq(zio_sendfile(o, fd, &off, len, ZIO_FOREVER), (ssize_t)(len - 100));
	char *back = malloc(len + 1000);
	cr_assert_eq(zio_file_pread(o, back, len, 0, ZIO_FOREVER), (ssize_t)(len - 100));
	cr_assert_eq(memcmp(back, data + 100, len - 100), 0);
	zio_close(o);

	/* appended to an O_APPEND file, which copy_file_range and sendfile
	 * refuse (EBADF, EINVAL) */
	o = zio_file_open(out, O_WRONLY | O_APPEND, 0, ZIO_FOREVER);
	cr_assert_geq(o, 0);
	off = 0;
	cr_assert_eq(zio_sendfile(o, fd, &off, 1000, ZIO_FOREVER), 1000);
	cr_assert_eq(off, 1000);
	zio_close(o);
	o = zio_file_open(out, O_RDONLY, 0, ZIO_FOREVER);
	cr_assert_eq(zio_file_pread(o, back, len + 1000, 0, ZIO_FOREVER), (ssize_t)(len - 100 + 1000));
	cr_assert_eq(memcmp(back + len - 100, data, 1000), 0);
	free(back);
	free(data);
	zio_close(o);
	zio_close(fd);
	zio_close(sv[0]);
	zio_close(sv[1]);
	zio_file_unlink(path, ZIO_FOREVER);
	zio_file_unlink(out, ZIO_FOREVER);
	return NULL;
}

Test(fs, sendfile, .timeout = 30)
{
	run_in_runtime(1, sendfile_task, NULL);
}

/* A copy cut short by its deadline returns exactly what reached the
 * output: from a pipe (spliced: sendfile refuses it) into a socket nobody
 * reads, whose buffer fills part way. */
static void *sendfile_short_task(void *arg)
{
	(void)arg;
	int p[2], sv[2];
	cr_assert_eq(zio_pipe(p), 0);
	/* (A pipe of 1 MiB: spliced, pages of it go into the socket as they
	 * are, so a 64 KiB pipe could fit whole.) */
	cr_assert_geq(fcntl(p[1], F_SETPIPE_SZ, 1 << 20), 1 << 20);
	cr_assert_eq(zio_socketpair(AF_UNIX, SOCK_STREAM, sv), 0);
	zio_socket_set_sndbuf(sv[0], 4096);
	char chunk[4096];
	memset(chunk, 'x', sizeof(chunk));
	size_t fed = 0;
	while (zio_write(p[1], chunk, sizeof(chunk), 0) == (ssize_t)sizeof(chunk))
		fed += sizeof(chunk);
	cr_assert_gt(fed, 16384u, "the pipe holds more than one copy chunk");
	ssize_t n = zio_sendfile(sv[0], p[0], NULL, fed, zio_deadline_after(ZIO_MSEC(200)));
	cr_assert_gt(n, 0);
	cr_assert_lt((size_t)n, fed, "the socket cannot have taken it all");
	cr_assert_eq(zio_shutdown(sv[0], SHUT_WR), 0);
	void *got;
	zio_task *t;
	zio_spawn(NULL, &t, sink, (void *)(intptr_t)sv[1], NULL);
	zio_task_join(t, &got);
	cr_assert_eq((intptr_t)got, (intptr_t)n, "returned %zd, the reader got %ld", n,
		     (long)(intptr_t)got);
	zio_close(p[0]);
	zio_close(p[1]);
	zio_close(sv[0]);
	zio_close(sv[1]);
	return NULL;
}

Test(fs, sendfile_cut_short_counts_what_was_written, .timeout = 30)
{
	run_in_runtime(1, sendfile_short_task, NULL);
}

/* A copy cut short by its deadline leaves in its input what it did not
 * write, from a socket (peeked at, then taken as far as the write went)
 * and from a pipe (spliced): the buffer copy read 16 KiB from either and
 * lost what the full output would not take. The output is full from the
 * start, so the copy writes nothing or little, and every byte put into the
 * input comes out of the output or the input, in order. */
enum { LEFT_IN_INPUT = 40000 };

static size_t fill_up(int fd)
{
	static char fill[4096];
	memset(fill, 'F', sizeof(fill));
	size_t n = 0;
	ssize_t w;
	while ((w = zio_write(fd, fill, sizeof(fill), 0)) > 0)
		n += (size_t)w;
	return n;
}

static void read_exactly(int fd, char *buf, size_t n)
{
	size_t got = 0;
	while (got < n) {
		ssize_t r = zio_read(fd, buf + got, n - got, zio_deadline_after(ZIO_SEC(5)));
		cr_assert_gt(r, 0, "read %zu of %zu: %zd", got, n, r);
		got += (size_t)r;
	}
}

static void copy_cut_short(int out_w, int out_r, int in_w, int in_r)
{
	static char data[LEFT_IN_INPUT];
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (char)(i % 251);
	size_t filled = fill_up(out_w);
	char *back = malloc(filled + sizeof(data));
	cr_assert_not_null(back);
	cr_assert_eq(zio_write_all(in_w, data, sizeof(data), ZIO_FOREVER), (ssize_t)sizeof(data));
	ssize_t n = zio_sendfile(out_w, in_r, NULL, sizeof(data), zio_deadline_after(ZIO_MSEC(20)));
	cr_assert(n == -ETIMEDOUT || (n >= 0 && n < (ssize_t)sizeof(data)), "%zd", n);
	size_t sent = n > 0 ? (size_t)n : 0;
	/* The output: what filled it, then the first bytes sent. */
	read_exactly(out_r, back, filled + sent);
	cr_assert_eq(memcmp(back + filled, data, sent), 0);
	/* The input: the rest, all of it. */
	read_exactly(in_r, back, sizeof(data) - sent);
	cr_assert_eq(memcmp(back, data + sent, sizeof(data) - sent), 0);
	char c;
	cr_assert_eq(zio_read(in_r, &c, 1, 0), -EAGAIN, "nothing more in the input");
	free(back);
}

static void *sendfile_keeps_what_it_did_not_write(void *arg)
{
	(void)arg;
	int p[2], sv[2];
	/* A socket into a pipe. */
	cr_assert_eq(zio_pipe(p), 0);
	cr_assert_eq(zio_socketpair(AF_UNIX, SOCK_STREAM, sv), 0);
	copy_cut_short(p[1], p[0], sv[0], sv[1]);
	zio_close(p[0]);
	zio_close(p[1]);
	zio_close(sv[0]);
	zio_close(sv[1]);
	/* A pipe into a socket. */
	cr_assert_eq(zio_pipe(p), 0);
	cr_assert_eq(zio_socketpair(AF_UNIX, SOCK_STREAM, sv), 0);
	copy_cut_short(sv[0], sv[1], p[1], p[0]);
	zio_close(p[0]);
	zio_close(p[1]);
	zio_close(sv[0]);
	zio_close(sv[1]);
	/* A socket into a socket. */
	int in[2];
	cr_assert_eq(zio_socketpair(AF_UNIX, SOCK_STREAM, sv), 0);
	cr_assert_eq(zio_socketpair(AF_UNIX, SOCK_STREAM, in), 0);
	copy_cut_short(sv[0], sv[1], in[0], in[1]);
	zio_close(in[0]);
	zio_close(in[1]);
	zio_close(sv[0]);
	zio_close(sv[1]);
	return NULL;
}

Test(fs, sendfile_cut_short_keeps_the_rest_in_its_input, .timeout = 30)
{
	run_in_runtime(1, sendfile_keeps_what_it_did_not_write, NULL);
}

/* A buffer copy whose sides never make it wait (/dev/zero into /dev/null)
 * keeps its deadline and lets the executor's other tasks run: its reads
 * and writes never looked at either, so it copied all it was asked (16
 * GiB here, seconds), holding the executor. (On io_uring the device reads
 * are requests the task parks for: there it held anyway.) */
static void *count_turns(void *arg)
{
	atomic_int *turns = arg;
	for (;;) {
		atomic_fetch_add(turns, 1);
		if (zio_yield() < 0)
			return NULL;
	}
}

static void *sendfile_that_never_waits(void *arg)
{
	(void)arg;
	int zero = open("/dev/zero", O_RDONLY | O_CLOEXEC);
	int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
	cr_assert_geq(zero, 0);
	cr_assert_geq(null, 0);
	atomic_int turns = 0;
	zio_task *ticker;
	cr_assert_eq(zio_spawn(NULL, &ticker, count_turns, &turns, NULL), 0);
	size_t asked = (size_t)16 << 30;
	int64_t t0 = zio_now();
	ssize_t n = zio_sendfile(null, zero, NULL, asked, zio_deadline_after(ZIO_MSEC(50)));
	int64_t took = zio_now() - t0;
	cr_assert_gt(n, 0);
	cr_assert_lt((size_t)n, asked);
	cr_assert_lt(took, ZIO_MSEC(1000), "took %lld ms", (long long)(took / 1000000));
	cr_assert_gt(atomic_load(&turns), 0, "the other task never ran");
	zio_task_cancel(ticker);
	zio_task_join(ticker, NULL);
	close(zero);
	close(null);
	return NULL;
}

Test(fs, sendfile_that_never_waits_keeps_its_deadline, .timeout = 60)
{
	run_in_runtime(1, sendfile_that_never_waits, NULL);
}

/* What sendfile(2) must not be used for. From a socket into a pipe
 * (Linux 5.12+ takes it), its EAGAIN is the empty input's, and waiting for
 * room in the pipe returned at once for ever: the copy spun, starving the
 * executor. Into an output in blocking mode, sendfile(2) would hold the
 * executor while the reader, a task on it, could not run. */
static void *sendfile_odd_ends(void *arg)
{
	(void)arg;
	int p[2], sv[2];
	cr_assert_eq(zio_pipe(p), 0);
	cr_assert_eq(zio_socketpair(AF_UNIX, SOCK_STREAM, sv), 0);
	int64_t t0 = zio_now();
	ssize_t n = zio_sendfile(p[1], sv[0], NULL, 4096, zio_deadline_after(ZIO_MSEC(100)));
	cr_assert_eq(n, -ETIMEDOUT, "%zd", n);
	cr_assert_lt(zio_now() - t0, ZIO_SEC(5));
	cr_assert_eq(zio_write(sv[1], "data", 4, ZIO_FOREVER), 4);
	cr_assert_eq(zio_sendfile(p[1], sv[0], NULL, 4, ZIO_FOREVER), 4);
	char got[8];
	cr_assert_eq(zio_read(p[0], got, sizeof(got), ZIO_FOREVER), 4);
	zio_close(p[0]);
	zio_close(p[1]);
	zio_close(sv[0]);
	zio_close(sv[1]);

	/* A file into a blocking-mode socket, read by a task on this executor. */
	char path[128];
	test_path(path, sizeof(path), "sfb");
	int fd = zio_file_open(path, O_CREAT | O_RDWR | O_TRUNC, 0600, ZIO_FOREVER);
	cr_assert_geq(fd, 0);
	size_t len = 4 << 20;
	char *data = calloc(1, len);
	cr_assert_eq(zio_file_write_all(fd, data, len, 0, ZIO_FOREVER), (ssize_t)len);
	free(data);
	int bs[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, bs), 0); /* blocking */
	zio_task *t;
	zio_spawn(NULL, &t, sink, (void *)(intptr_t)bs[1], NULL);
	off_t off = 0;
	cr_assert_eq(zio_sendfile(bs[0], fd, &off, len, zio_deadline_after(ZIO_SEC(20))),
		     (ssize_t)len);
	cr_assert_eq(zio_shutdown(bs[0], SHUT_WR), 0);
	void *r;
	zio_task_join(t, &r);
	cr_assert_eq((intptr_t)r, (intptr_t)len);
	zio_close(bs[0]);
	zio_close(bs[1]);

	/* Try once (deadline 0) on a FIFO opened as a file: no data is
	 * -EAGAIN at once (on epoll and poll the read ran inline and blocked
	 * the executor), whatever the backend says it with. */
	char fifo[160];
	snprintf(fifo, sizeof(fifo), "%s.fifo", path);
	cr_assert_eq(mkfifo(fifo, 0600), 0);
	int ff = zio_file_open(fifo, O_RDWR, 0, ZIO_FOREVER);
	cr_assert_geq(ff, 0);
	char c;
	n = zio_file_read(ff, &c, 1, 0);
	cr_assert(n == -EAGAIN || n == -ETIMEDOUT, "%zd", n);
	zio_close(ff);
	zio_file_unlink(fifo, ZIO_FOREVER);
	zio_close(fd);
	zio_file_unlink(path, ZIO_FOREVER);
	return NULL;
}

Test(fs, sendfile_from_a_socket_or_to_a_blocking_fd, .timeout = 30)
{
	run_in_runtime(1, sendfile_odd_ends, NULL);
}

/* A file opened on the number of a socket that was closed behind zio's
 * back (a plain close(), say by a library) is a file: the socket's traits
 * made reads of it recv(2)s, -ENOTSOCK on io_uring. */
static void *reopened_number(void *arg)
{
	(void)arg;
	char path[128];
	test_path(path, sizeof(path), "reo");
	int w = zio_file_open(path, O_CREAT | O_WRONLY | O_TRUNC, 0600, ZIO_FOREVER);
	cr_assert_eq(zio_file_write_all(w, "file", 4, 0, ZIO_FOREVER), 4);
	zio_close(w);
	int sv[2];
	cr_assert_eq(zio_socketpair(AF_UNIX, SOCK_STREAM, sv), 0);
	cr_assert_eq(zio_write(sv[1], "x", 1, ZIO_FOREVER), 1);
	char c;
	cr_assert_eq(zio_read(sv[0], &c, 1, ZIO_FOREVER), 1); /* zio knows it as a socket */
	int num = sv[0];
	close(sv[0]); /* not zio_close */
	int fd = zio_file_open(path, O_RDONLY, 0, ZIO_FOREVER);
	cr_assert_eq(fd, num, "the lowest free number");
	char buf[8];
	cr_assert_eq(zio_read(fd, buf, sizeof(buf), ZIO_FOREVER), 4);
	cr_assert_eq(memcmp(buf, "file", 4), 0);
	zio_close(fd);
	zio_close(sv[1]);
	zio_file_unlink(path, ZIO_FOREVER);
	return NULL;
}

Test(fs, file_on_the_number_of_a_socket_closed_behind_zio, .timeout = 20)
{
	run_in_runtime(1, reopened_number, NULL);
}

/* A task doing file I/O in a loop does not starve a task doing timers. */
static void *spinner(void *arg)
{
	int *ticks = arg;
	for (int i = 0; i < 20; i++) {
		zio_sleep(ZIO_MSEC(1));
		(*ticks)++;
	}
	return NULL;
}

static void *responsive(void *arg)
{
	char path[128];
	test_path(path, sizeof(path), "resp");
	int fd = zio_file_open(path, O_CREAT | O_RDWR | O_TRUNC, 0600, ZIO_FOREVER);
	int ticks = 0;
	zio_task *t;
	zio_spawn(NULL, &t, spinner, &ticks, NULL);
	char block[4096] = { 1 };
	for (int i = 0; i < 2000 && ticks < 20; i++)
		zio_file_pwrite(fd, block, sizeof(block), (off_t)i * 4096, ZIO_FOREVER);
	zio_task_join(t, NULL);
	cr_assert_eq(ticks, 20);
	zio_close(fd);
	zio_file_unlink(path, ZIO_FOREVER);
	return NULL;
}

Test(fs, executor_stays_responsive, .timeout = 30)
{
	run_in_runtime(1, responsive, NULL);
}

/* zio_close() while another task's write is in its syscall. Where the
 * write runs on the blocking pool it names the fd by number (a regular
 * file gets no descriptor of its own there: closing one would drop the
 * process's record locks), so the close waits until it is over and the
 * number's next file is never written. That is a file write on epoll and
 * poll, and a copy between files (zio_sendfile) on every backend. On
 * io_uring a file write is the kernel's, which resolved the number when it
 * took the request, and it goes on in the closed file. */
#define BIG_WRITE (64u << 20)

struct big_write {
	int fd, src; /* src >= 0: copy from it (zio_sendfile) */
	const char *buf;
	ssize_t r;
};

static void *write_big(void *arg)
{
	struct big_write *bw = arg;
	if (bw->src >= 0)
		bw->r = zio_sendfile(bw->fd, bw->src, &(off_t){ 0 }, BIG_WRITE, ZIO_FOREVER);
	else
		bw->r = zio_file_pwrite(bw->fd, bw->buf, BIG_WRITE, 0, ZIO_FOREVER);
	return NULL;
}

static int unlinked_temp(const char *what)
{
	char path[64];
	snprintf(path, sizeof(path), "/tmp/zio-fs-%s-XXXXXX", what);
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	unlink(path);
	return fd;
}

static void *close_during_a_write(void *arg)
{
	bool copy = arg != NULL;
	bool pool = copy || strcmp(zio_runtime_backend(zio_runtime_current()), "uring") != 0;
	char path[] = "/tmp/zio-fs-closing-XXXXXX";
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	int watch = open(path, O_RDONLY | O_CLOEXEC);
	cr_assert_geq(watch, 0);
	unlink(path);
	char *buf = malloc(BIG_WRITE);
	cr_assert_not_null(buf);
	memset(buf, 'x', BIG_WRITE);
	struct big_write bw = { .fd = fd, .src = -1, .buf = buf };
	if (copy) {
		bw.src = unlinked_temp("source");
		cr_assert_eq(pwrite(bw.src, buf, BIG_WRITE, 0), (ssize_t)BIG_WRITE);
	}
	zio_task *writer;
	cr_assert_eq(zio_spawn(NULL, &writer, write_big, &bw, NULL), 0);
	struct stat st = { 0 };
	for (int i = 0; i < 50000 && st.st_size == 0; i++) {
		zio_sleep(ZIO_USEC(100));
		cr_assert_eq(fstat(watch, &st), 0);
	}
	cr_assert_gt(st.st_size, 0, "the write never started");
	cr_assert_eq(zio_close(fd), 0);
	cr_assert_eq(fstat(watch, &st), 0);
	off_t at_close = st.st_size;
	int next = unlinked_temp("next");
	cr_assert_eq(dup2(next, fd), fd); /* the number's next file */
	zio_task_join(writer, NULL);
	cr_assert_eq(fstat(watch, &st), 0);
	if (pool) {
		cr_assert_eq(st.st_size, at_close, "zio_close() returned while the pool wrote by its number");
		cr_assert_eq(bw.r, at_close, "write: %zd", bw.r);
	} else {
		cr_assert(bw.r > 0 || bw.r == -ECANCELED, "write: %zd", bw.r);
	}
	cr_assert_eq(fstat(next, &st), 0);
	cr_assert_eq(st.st_size, 0, "the write went to the number's next file");
	close(fd);
	close(next);
	close(watch);
	if (copy)
		close(bw.src);
	free(buf);
	return NULL;
}

Test(fs, close_waits_for_a_write_by_number, .timeout = 30)
{
	run_in_runtime(1, close_during_a_write, NULL);
}

Test(fs, close_waits_for_a_copy_by_number, .timeout = 30)
{
	run_in_runtime(1, close_during_a_write, "copy");
}

/* A file read on a pipe is a stream read: waited for by readiness on epoll
 * and poll (it went to the pool, whose wait held a thread beyond any
 * deadline), natively on io_uring. Its deadline holds, and a zio_close()
 * of the pipe ends it at once with -EBADF. */
struct pipe_read {
	int fd;
	ssize_t r;
};

static void *read_pipe(void *arg)
{
	struct pipe_read *pr = arg;
	char c;
	pr->r = zio_file_read(pr->fd, &c, 1, ZIO_FOREVER);
	return NULL;
}

static void *close_during_a_pipe_read(void *arg)
{
	(void)arg;
	int p[2];
	cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
	char c;
	int64_t t0 = zio_now();
	cr_assert_eq(zio_file_read(p[0], &c, 1, zio_deadline_after(ZIO_MSEC(50))), -ETIMEDOUT);
	cr_assert_lt(zio_now() - t0, ZIO_SEC(2));
	struct pipe_read pr = { .fd = p[0] };
	zio_task *reader;
	cr_assert_eq(zio_spawn(NULL, &reader, read_pipe, &pr, NULL), 0);
	zio_sleep(ZIO_MSEC(20)); /* the read waits */
	t0 = zio_now();
	cr_assert_eq(zio_close(p[0]), 0);
	zio_task_join(reader, NULL);
	cr_assert_lt(zio_now() - t0, ZIO_SEC(2), "zio_close() waited for the read");
	cr_assert_eq(pr.r, -EBADF, "read: %zd", pr.r);
	close(p[1]);
	return NULL;
}

Test(fs, close_does_not_wait_for_a_pipe_read, .timeout = 20)
{
	run_in_runtime(1, close_during_a_pipe_read, NULL);
}

/* A FIFO opened as a file, on every backend as io_uring opens it: at once
 * (a blocking open waited for the other end on a pool thread, past the
 * deadline, and a zio_close() of its directory waited for it), a reader
 * with its fd, a writer with no reader -ENXIO; then reads and writes are
 * a stream's, with deadlines. */
static void *fifo_as_a_file(void *arg)
{
	(void)arg;
	char path[128];
	test_path(path, sizeof(path), "fifo");
	unlink(path);
	cr_assert_eq(mkfifo(path, 0600), 0);
	cr_assert_eq(zio_file_open(path, O_WRONLY, 0, zio_deadline_after(ZIO_SEC(5))), -ENXIO);
	/* With O_CREAT (or an uncached lookup) io_uring's own attempt does
	 * not happen: its worker thread opened blocking and waited. */
	int64_t t0 = zio_now();
	int early = zio_file_open(path, O_RDONLY | O_CREAT, 0600, zio_deadline_after(ZIO_MSEC(500)));
	cr_assert_geq(early, 0, "open with O_CREAT: %d", early);
	cr_assert_lt(zio_now() - t0, ZIO_MSEC(400));
	cr_assert_eq(fcntl(early, F_GETFL) & O_NONBLOCK, 0, "O_NONBLOCK left set");
	cr_assert_eq(zio_close(early), 0);
	t0 = zio_now();
	int rd = zio_file_open(path, O_RDONLY, 0, zio_deadline_after(ZIO_MSEC(200)));
	cr_assert_geq(rd, 0, "open for reading: %d", rd);
	cr_assert_lt(zio_now() - t0, ZIO_SEC(2));
	cr_assert_eq(fcntl(rd, F_GETFL) & O_NONBLOCK, 0, "O_NONBLOCK left set");
	int wr = zio_file_open(path, O_WRONLY, 0, zio_deadline_after(ZIO_SEC(5)));
	cr_assert_geq(wr, 0, "open for writing: %d", wr);
	cr_assert_eq(fcntl(wr, F_GETFL) & O_NONBLOCK, 0, "O_NONBLOCK left set");
	char c;
	t0 = zio_now();
	cr_assert_eq(zio_file_read(rd, &c, 1, zio_deadline_after(ZIO_MSEC(50))), -ETIMEDOUT);
	cr_assert_lt(zio_now() - t0, ZIO_SEC(2));
	cr_assert_eq(zio_file_write(wr, "z", 1, ZIO_FOREVER), 1);
	cr_assert_eq(zio_file_read(rd, &c, 1, zio_deadline_after(ZIO_SEC(5))), 1);
	cr_assert_eq(c, 'z');
	cr_assert_eq(zio_close(wr), 0);
	cr_assert_eq(zio_file_read(rd, &c, 1, zio_deadline_after(ZIO_SEC(5))), 0); /* EOF */
	cr_assert_eq(zio_close(rd), 0);
	unlink(path);
	return NULL;
}

Test(fs, fifo_opened_as_a_file, .timeout = 20)
{
	run_in_runtime(1, fifo_as_a_file, NULL);
}

/* A write at a regular file's position cut short (here by RLIMIT_FSIZE)
 * moves the position by what was written, and the next write goes after
 * it. On io_uring the position stayed behind: the next write went over
 * the first one's bytes and zio_file_write_all said all was written. */
static void *short_write_at_the_position(void *arg)
{
	(void)arg;
	char path[128];
	test_path(path, sizeof(path), "short");
	int fd = zio_file_open(path, O_RDWR | O_CREAT | O_TRUNC, 0600, ZIO_FOREVER);
	cr_assert_geq(fd, 0);
	enum { LIMIT = 64 << 10, LEN = 100000 };
	static char pattern[LEN], back[LEN];
	for (int i = 0; i < LEN; i++)
		pattern[i] = (char)(i * 7 + i / 251);
	signal(SIGXFSZ, SIG_IGN);
	struct rlimit old, lim = { LIMIT, RLIM_INFINITY };
	cr_assert_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim.rlim_max = old.rlim_max;
	cr_assert_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
	ssize_t r = zio_file_write_all(fd, pattern, LEN, -1, ZIO_FOREVER);
	cr_assert_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
	cr_assert_eq(r, -EFBIG, "write_all past the limit: %zd", r);
	cr_assert_eq(lseek(fd, 0, SEEK_CUR), LIMIT, "the position");
	cr_assert_eq(zio_file_pread(fd, back, LEN, 0, ZIO_FOREVER), LIMIT);
	cr_assert_eq(memcmp(back, pattern, LIMIT), 0, "the first bytes were written over");
	zio_close(fd);
	unlink(path);
	return NULL;
}

Test(fs, short_write_at_the_position, .timeout = 20)
{
	run_in_runtime(1, short_write_at_the_position, NULL);
}

/* Tasks on two executors writing at one fd's position lose nothing:
 * write(2) holds the position while it writes; io_uring's rings did not,
 * and two of them wrote at the same place. */
#define SHARED_TASKS 8
#define SHARED_WRITES 200
#define SHARED_LEN 4096

static void *shared_position_writer(void *arg)
{
	int fd = (int)(intptr_t)arg;
	static const char block[SHARED_LEN];
	for (int i = 0; i < SHARED_WRITES; i++)
		cr_assert_eq(zio_file_write(fd, block, SHARED_LEN, ZIO_FOREVER), SHARED_LEN);
	return NULL;
}

static void *writers_at_one_position(void *arg)
{
	(void)arg;
	char path[128];
	test_path(path, sizeof(path), "shared");
	int fd = zio_file_open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600, ZIO_FOREVER);
	cr_assert_geq(fd, 0);
	spawn_join_all(SHARED_TASKS, shared_position_writer, (void *)(intptr_t)fd);
	struct stat st;
	cr_assert_eq(zio_file_fstat(fd, &st, ZIO_FOREVER), 0);
	cr_assert_eq(st.st_size, (off_t)SHARED_TASKS * SHARED_WRITES * SHARED_LEN,
		     "file size %lld", (long long)st.st_size);
	zio_close(fd);
	unlink(path);
	return NULL;
}

Test(fs, writers_on_two_executors_share_the_position, .timeout = 60)
{
	run_in_runtime(2, writers_at_one_position, NULL);
}

/* Deadline 0 is one try on every backend: a regular file's read or write
 * is made (io_uring cancelled its SQE: -ETIMEDOUT and nothing written),
 * a path op says -EAGAIN. pread and pwrite of a pipe are -ESPIPE, as
 * pread(2) says (io_uring read and wrote it as a stream, offset ignored). */
static void *try_once_and_offsets(void *arg)
{
	(void)arg;
	char path[128];
	test_path(path, sizeof(path), "try");
	int fd = zio_file_open(path, O_RDWR | O_CREAT | O_TRUNC, 0600, ZIO_FOREVER);
	cr_assert_geq(fd, 0);
	cr_assert_eq(zio_file_write(fd, "abc", 3, 0), 3);
	cr_assert_eq(zio_file_pwrite(fd, "def", 3, 3, 0), 3);
	char buf[8];
	cr_assert_eq(zio_file_pread(fd, buf, 6, 0, 0), 6);
	cr_assert_eq(memcmp(buf, "abcdef", 6), 0);
	cr_assert_eq(lseek(fd, 0, SEEK_SET), 0);
	cr_assert_eq(zio_file_read(fd, buf, 6, 0), 6);
	struct stat st;
	cr_assert_eq(zio_file_stat(path, &st, 0), -EAGAIN);
	cr_assert_eq(zio_file_open(path, O_RDONLY, 0, 0), -EAGAIN);
	zio_close(fd);
	unlink(path);
	int p[2];
	/* A pipe in blocking mode read and written as a file, one try: a
	 * stream's (io_uring sent it to the pool's try, which said -EAGAIN). */
	cr_assert_eq(pipe(p), 0);
	cr_assert_eq(zio_file_write(p[1], "12345", 5, 0), 5);
	cr_assert_eq(zio_file_read(p[0], buf, sizeof(buf), 0), 5);
	cr_assert_eq(zio_file_read(p[0], buf, sizeof(buf), 0), -EAGAIN);
	zio_close(p[0]);
	zio_close(p[1]);
	cr_assert_eq(zio_pipe(p), 0);
	cr_assert_eq(zio_file_pwrite(p[1], "x", 1, 100, zio_deadline_after(ZIO_SEC(5))), -ESPIPE);
	cr_assert_eq(zio_write(p[1], "y", 1, ZIO_FOREVER), 1);
	cr_assert_eq(zio_file_pread(p[0], buf, 1, 0, zio_deadline_after(ZIO_SEC(5))), -ESPIPE);
	cr_assert_eq(zio_read(p[0], buf, 1, ZIO_FOREVER), 1);
	cr_assert_eq(buf[0], 'y');
	zio_close(p[0]);
	zio_close(p[1]);
	return NULL;
}

Test(fs, try_once_and_offsets_on_every_backend, .timeout = 20)
{
	run_in_runtime(1, try_once_and_offsets, NULL);
}

/* zio_sendfile into a pipe in a cancelled task is -ECANCELED, as every
 * other op's answer (it copied first and looked at the cancel after). */
static void *sendfile_when_cancelled(void *arg)
{
	(void)arg;
	char path[128];
	test_path(path, sizeof(path), "sfc");
	int fd = zio_file_open(path, O_RDWR | O_CREAT | O_TRUNC, 0600, ZIO_FOREVER);
	cr_assert_geq(fd, 0);
	cr_assert_eq(zio_file_write(fd, "0123456789", 10, ZIO_FOREVER), 10);
	int p[2];
	cr_assert_eq(zio_pipe(p), 0);
	zio_task_cancel(zio_task_self());
	off_t off = 0;
	cr_assert_eq(zio_sendfile(p[1], fd, &off, 10, ZIO_FOREVER), -ECANCELED);
	cr_assert_eq(off, 0);
	zio_close(p[0]);
	zio_close(p[1]);
	zio_close(fd);
	unlink(path);
	return NULL;
}

Test(fs, sendfile_sees_a_pending_cancel, .timeout = 20)
{
	run_in_runtime(1, sendfile_when_cancelled, NULL);
}

/* Bytes this thread has had read from storage (task I/O accounting). */
static long long thread_read_bytes(void)
{
	FILE *f = fopen("/proc/thread-self/io", "r");
	cr_assert_not_null(f);
	long long v = -1;
	char line[128];
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "read_bytes: %lld", &v) == 1)
			break;
	fclose(f);
	cr_assert_geq(v, 0);
	return v;
}

/* Pages of fd's first len bytes in the page cache. */
static size_t resident_pages(int fd, size_t len)
{
	long page = sysconf(_SC_PAGESIZE);
	size_t n = (len + (size_t)page - 1) / (size_t)page, in = 0;
	void *m = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
	cr_assert_neq(m, MAP_FAILED);
	unsigned char *vec = malloc(n);
	cr_assert_eq(mincore(m, len, vec), 0);
	for (size_t i = 0; i < n; i++)
		in += vec[i] & 1;
	free(vec);
	munmap(m, len);
	return in;
}

struct received {
	int fd;
	char *buf;
	size_t cap, got;
};

/* Reads rx->fd to its end into rx->buf. */
static void *receive_all(void *arg)
{
	struct received *rx = arg;
	ssize_t n;
	while (rx->got < rx->cap &&
	       (n = zio_read(rx->fd, rx->buf + rx->got, rx->cap - rx->got,
			     zio_deadline_after(ZIO_SEC(10)))) > 0)
		rx->got += (size_t)n;
	return NULL;
}

/* A file not in the page cache is read from the disk by a pool thread,
 * not by the executor on its way into a socket (sendfile(2) in place
 * waited for the disk and every task of the executor with it). The file
 * lives in the working directory: /tmp may be a tmpfs, whose pages cannot
 * be dropped. */
static void *sendfile_of_a_cold_file(void *arg)
{
	(void)arg;
	char path[64];
	snprintf(path, sizeof(path), "zio-cold-%d", getpid());
	size_t len = 4 << 20;
	int fd = zio_file_open(path, O_CREAT | O_RDWR | O_TRUNC, 0600, ZIO_FOREVER);
	cr_assert_geq(fd, 0);
	char *data = malloc(len);
	for (size_t i = 0; i < len; i++)
		data[i] = (char)(i * 7 + i / 4096);
	cr_assert_eq(zio_file_write_all(fd, data, len, 0, ZIO_FOREVER), (ssize_t)len);
	cr_assert_eq(zio_file_sync(fd, ZIO_FOREVER), 0);
	cr_assert_eq(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
	/* No readahead: a read waits for the pages it needs and reads no
	 * others, so the disk reads each thread makes are exactly its. */
	cr_assert_eq(posix_fadvise(fd, 0, 0, POSIX_FADV_RANDOM), 0);
	cr_assert_lt(resident_pages(fd, len), 16, "the file's pages stayed in the page cache");

	int sv[2];
	cr_assert_eq(zio_socketpair(AF_UNIX, SOCK_STREAM, sv), 0);
	struct received rx = { .fd = sv[1], .buf = malloc(len), .cap = len };
	zio_task *t;
	cr_assert_eq(zio_spawn(NULL, &t, receive_all, &rx, NULL), 0);
	long long before = thread_read_bytes();
	off_t off = 0;
	cr_assert_eq(zio_sendfile(sv[0], fd, &off, len, ZIO_FOREVER), (ssize_t)len);
	long long on_executor = thread_read_bytes() - before;
	zio_shutdown(sv[0], SHUT_WR);
	zio_task_join(t, NULL);
	cr_assert_eq(rx.got, len);
	cr_assert_eq(memcmp(rx.buf, data, len), 0);
	cr_assert_eq(on_executor, 0, "the executor read %lld bytes from the disk", on_executor);
	free(rx.buf);
	free(data);
	zio_close(sv[0]);
	zio_close(sv[1]);
	zio_close(fd);
	unlink(path);
	return NULL;
}

Test(fs, sendfile_of_a_cold_file_reads_the_disk_on_the_pool, .timeout = 30)
{
	run_in_runtime(1, sendfile_of_a_cold_file, NULL);
}

/* Many rounds of: a task's pwrite starts, its fd is zio_close()d after a
 * random delay, a new file takes the number. Whichever way each race goes
 * (the write refused, cut short, done), the new file stays empty. Before
 * the pool checked and waited for fds it names by number, 4% of rounds
 * on epoll wrote into the new file. */
#define RACE_LEN (64u << 10)

struct race {
	atomic_long rounds, dirty;
	char buf[RACE_LEN];
};

struct race_write {
	int fd;
	bool started;
	ssize_t r;
	const char *buf;
};

static void *race_writer(void *arg)
{
	struct race_write *w = arg;
	w->started = true; /* one executor: its job is queued before the closer runs */
	w->r = zio_file_pwrite(w->fd, w->buf, RACE_LEN, 0, ZIO_FOREVER);
	return NULL;
}

static void *race_rounds(void *arg)
{
	struct race *rc = arg;
	unsigned seed = (unsigned)zio_task_id(zio_task_self());
	for (int64_t end = zio_now() + ZIO_SEC(1); zio_now() < end;) {
		struct race_write w = { .fd = unlinked_temp("race"), .buf = rc->buf };
		zio_task *t;
		cr_assert_eq(zio_spawn(NULL, &t, race_writer, &w, NULL), 0);
		while (!w.started)
			zio_yield();
		int delay = rand_r(&seed) % 200;
		if (delay)
			zio_sleep(ZIO_USEC(delay));
		cr_assert_eq(zio_close(w.fd), 0);
		int next = unlinked_temp("race-next");
		zio_task_join(t, NULL);
		cr_assert(w.r >= 0 || w.r == -EBADF || w.r == -ECANCELED, "write: %zd", w.r);
		struct stat st;
		cr_assert_eq(fstat(next, &st), 0);
		if (st.st_size)
			atomic_fetch_add(&rc->dirty, 1);
		close(next);
		atomic_fetch_add(&rc->rounds, 1);
	}
	return NULL;
}

static void *close_races_writes(void *arg)
{
	(void)arg;
	static struct race rc;
	memset(&rc, 0, sizeof(rc));
	memset(rc.buf, 'w', sizeof(rc.buf));
	spawn_join_all(8, race_rounds, &rc);
	cr_assert_gt(atomic_load(&rc.rounds), 0);
	cr_assert_eq(atomic_load(&rc.dirty), 0, "%ld of %ld rounds wrote into the number's next file",
		     atomic_load(&rc.dirty), atomic_load(&rc.rounds));
	return NULL;
}

Test(fs, close_racing_writes_never_writes_the_next_file, .timeout = 30)
{
	run_in_runtime(1, close_races_writes, NULL);
}

/* zio_sendfile into a pipe nobody reads is -EPIPE, also as a plain
 * thread's first zio call (sendfile(2) has no MSG_NOSIGNAL: the process
 * died of SIGPIPE). In a child, so the first call is the first. */
Test(fs, sendfile_first_call_into_a_closed_pipe_is_epipe, .timeout = 20)
{
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		char path[128];
		test_path(path, sizeof(path), "sfpipe");
		int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		int p[2];
		if (fd < 0 || write(fd, "0123456789", 10) != 10 || pipe2(p, O_NONBLOCK) != 0)
			_exit(3);
		close(p[0]);
		off_t off = 0;
		ssize_t r = zio_sendfile(p[1], fd, &off, 10, ZIO_FOREVER);
		unlink(path);
		_exit(r == -EPIPE ? 0 : 4);
	}
	int st;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st), "the child died of signal %d", WIFSIGNALED(st) ? WTERMSIG(st) : 0);
	cr_assert_eq(WEXITSTATUS(st), 0);
}

/* Out of time already (a deadline past, or 0): a regular file's read is
 * done, as its data is ready; anything else of the pool is -ETIMEDOUT (or
 * -EAGAIN). On epoll and poll a pool thread and the wait raced for the
 * job: 2% of reads read, the rest timed out; on io_uring an fstat's SQE
 * was mostly cancelled. Between files, zio_sendfile with deadline 0
 * copies (it timed out, copying nothing), and a negative offset is
 * -EINVAL there too (it was copy_file_range's EOVERFLOW). */
static void *out_of_time_file_ops(void *arg)
{
	(void)arg;
	char path[128], copy[128];
	test_path(path, sizeof(path), "late");
	test_path(copy, sizeof(copy), "latecopy");
	int fd = zio_file_open(path, O_RDWR | O_CREAT | O_TRUNC, 0600, ZIO_FOREVER);
	cr_assert_geq(fd, 0);
	cr_assert_eq(zio_file_write(fd, "0123456789", 10, ZIO_FOREVER), 10);
	char buf[16];
	struct stat st;
	for (int i = 0; i < 200; i++) {
		int64_t past = zio_deadline_after(-ZIO_MSEC(1));
		cr_assert_eq(zio_file_pread(fd, buf, sizeof(buf), 0, past), 10, "round %d", i);
		cr_assert_eq(zio_file_pread(fd, buf, sizeof(buf), 0, 0), 10, "round %d", i);
		cr_assert_eq(zio_file_fstat(fd, &st, past), -ETIMEDOUT, "round %d", i);
	}
	/* A timeout scope that has run out is the same. */
	struct zio_timeout scope;
	zio_timeout_begin(&scope, zio_deadline_after(-ZIO_MSEC(1)));
	cr_assert_eq(zio_file_pread(fd, buf, sizeof(buf), 0, ZIO_FOREVER), 10);
	cr_assert_eq(zio_file_fstat(fd, &st, ZIO_FOREVER), -ETIMEDOUT);
	zio_timeout_end(&scope);
	int out = zio_file_open(copy, O_RDWR | O_CREAT | O_TRUNC, 0600, ZIO_FOREVER);
	cr_assert_geq(out, 0);
	off_t off = 0;
	cr_assert_eq(zio_sendfile(out, fd, &off, 10, 0), 10);
	cr_assert_eq(off, 10);
	off = -1;
	cr_assert_eq(zio_sendfile(out, fd, &off, 10, ZIO_FOREVER), -EINVAL);
	/* Out of time, more than one piece (64 MiB, the most a wait for the
	 * pool holds up): one piece in place, not the whole count. */
	cr_assert_eq(ftruncate(fd, (65 << 20)), 0);
	off = 0;
	ssize_t one = zio_sendfile(out, fd, &off, 65 << 20, zio_deadline_after(-ZIO_MSEC(1)));
	cr_assert(one > 0 && one <= (64 << 20), "%zd", one); /* (the kernel may copy less) */
	cr_assert_eq(ftruncate(fd, 10), 0);
	cr_assert_eq(ftruncate(out, 10), 0);
	cr_assert_eq(zio_file_pread(out, buf, sizeof(buf), 0, ZIO_FOREVER), 10);
	cr_assert_eq(memcmp(buf, "0123456789", 10), 0);
	zio_close(out);
	zio_close(fd);
	unlink(copy);
	unlink(path);
	return NULL;
}

Test(fs, out_of_time_file_ops_do_what_is_ready, .timeout = 30)
{
	run_in_runtime(1, out_of_time_file_ops, NULL);
}

/* A plain thread's zio_file_read of a FIFO is a stream read: it waits
 * with the deadline (it blocked in read(2) for good) and, on an
 * O_NONBLOCK FIFO, waits rather than saying -EAGAIN at once. */
Test(fs, plain_thread_file_read_of_a_fifo_keeps_its_deadline, .timeout = 20)
{
	char path[128];
	test_path(path, sizeof(path), "fifo-pt");
	unlink(path);
	cr_assert_eq(mkfifo(path, 0600), 0);
	int flags[] = { O_RDWR, O_RDWR | O_NONBLOCK }; /* RDWR: a writer, no data */
	for (int i = 0; i < 2; i++) {
		int fd = zio_file_open(path, flags[i], 0, ZIO_FOREVER);
		cr_assert_geq(fd, 0);
		char c;
		int64_t t0 = zio_now();
		ssize_t r = zio_file_read(fd, &c, 1, zio_deadline_after(ZIO_MSEC(100)));
		int64_t took = zio_now() - t0;
		cr_assert_eq(r, -ETIMEDOUT, "flags %#x: %zd", flags[i], r);
		cr_assert_geq(took, ZIO_MSEC(90), "flags %#x: after %lld ms", flags[i],
			      (long long)(took / ZIO_MSEC(1)));
		cr_assert_eq(write(fd, "y", 1), 1);
		cr_assert_eq(zio_file_read(fd, &c, 1, zio_deadline_after(ZIO_SEC(1))), 1);
		zio_close(fd);
	}
	unlink(path);
}

/* An open waiting for a lease to break, cut short by its deadline or a
 * cancel: -ETIMEDOUT or -ECANCELED (on io_uring the worker's interrupted
 * open posted ERESTARTSYS, -512, which reached the caller), or, where the
 * open cannot be cut short (the pool), the fd once the lease went. */
/* 0 where leases cannot be taken here (fs.leases-enable=0, a file
 * system without them): the test is skipped. */
static pid_t hold_read_lease(const char *path, int ms)
{
	int p[2];
	cr_assert_eq(pipe(p), 0);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		signal(SIGIO, SIG_IGN); /* the lease-break notice */
		int fd = open(path, O_RDONLY);
		if (fd < 0 || fcntl(fd, F_SETLEASE, F_RDLCK) < 0)
			_exit(1);
		if (write(p[1], "x", 1) != 1)
			_exit(1);
		usleep((useconds_t)ms * 1000);
		_exit(0);
	}
	char c;
	close(p[1]);
	ssize_t got = read(p[0], &c, 1);
	close(p[0]);
	if (got != 1) {
		waitpid(pid, NULL, 0);
		return 0;
	}
	return pid;
}

static void *open_leased(void *arg)
{
	return (void *)(intptr_t)zio_file_open(arg, O_WRONLY, 0, ZIO_FOREVER);
}

static void *open_past_a_lease(void *arg)
{
	(void)arg;
	char path[128];
	test_path(path, sizeof(path), "lease");
	int fd = zio_file_open(path, O_RDWR | O_CREAT | O_TRUNC, 0600, ZIO_FOREVER);
	cr_assert_geq(fd, 0);
	zio_close(fd);
	for (int how = 0; how < 2; how++) {
		pid_t holder = hold_read_lease(path, 600);
		if (!holder) {
			unlink(path);
			cr_skip_test("no file leases here");
		}
		int r;
		if (how == 0) {
			r = zio_file_open(path, O_WRONLY, 0, zio_deadline_after(ZIO_MSEC(100)));
		} else {
			zio_task *t;
			void *res;
			cr_assert_eq(zio_spawn(NULL, &t, open_leased, path, NULL), 0);
			zio_sleep(ZIO_MSEC(100));
			zio_task_cancel(t);
			zio_task_join(t, &res);
			r = (int)(intptr_t)res;
		}
		cr_assert(r == (how == 0 ? -ETIMEDOUT : -ECANCELED) || r >= 0,
			  "%s: %d", how == 0 ? "deadline" : "cancel", r);
		if (r >= 0)
			zio_close(r);
		kill(holder, SIGKILL);
		waitpid(holder, NULL, 0);
	}
	unlink(path);
	return NULL;
}

Test(fs, an_open_waiting_for_a_lease_is_cut_short_cleanly, .timeout = 30)
{
	run_in_runtime(1, open_past_a_lease, NULL);
}
