/*
 * test_io.c - the op layer on plain fds (pipes, socketpairs), under every
 * backend: transfers, try-once, deadlines, cancellation mid-read and
 * mid-write, closing an fd another task waits on, readiness waits, blocking
 * fds zio did not create, plain threads outside the runtime, two executors,
 * the blocking pool, and the io_uring fallback.
 */
/* ZIO_TEST_BACKENDS */
/* ZIO_TEST_LABELS: io */
#include "helpers.h"
#include "backend.h" /* zio__exec_current(), zio__blocking_call_on_files() */

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <setjmp.h>
#include <signal.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <termios.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *backend_env(void)
{
	const char *b = getenv("ZIO_BACKEND");
	return b ? b : "auto";
}

/* ------------------------------------------------------------- basics */

static void *pipe_roundtrip(void *arg)
{
	int p[2];
	cr_assert_eq(zio_pipe(p), 0);
	cr_assert_eq(zio_write(p[1], "hello", 5, ZIO_FOREVER), 5);
	char buf[16];
	cr_assert_eq(zio_read(p[0], buf, sizeof(buf), ZIO_FOREVER), 5);
	cr_assert_eq(memcmp(buf, "hello", 5), 0);
	/* vectors */
	struct iovec w[2] = { { "ab", 2 }, { "cde", 3 } };
	cr_assert_eq(zio_writev(p[1], w, 2, ZIO_FOREVER), 5);
	char x[2], y[8];
	struct iovec r[2] = { { x, 2 }, { y, 8 } };
	cr_assert_eq(zio_readv(p[0], r, 2, ZIO_FOREVER), 5);
	cr_assert_eq(memcmp(x, "ab", 2), 0);
	cr_assert_eq(memcmp(y, "cde", 3), 0);
	/* EOF */
	cr_assert_eq(zio_close(p[1]), 0);
	cr_assert_eq(zio_read(p[0], buf, sizeof(buf), ZIO_FOREVER), 0);
	cr_assert_eq(zio_close(p[0]), 0);
	cr_assert_eq(zio_close(-1), -EBADF);
	return NULL;
}

Test(io, pipe_roundtrip, .timeout = 10)
{
	zio_runtime *rt;
	cr_assert_eq(zio_runtime_create(&rt, NULL), 0);
	const char *want = backend_env();
	if (strcmp(want, "auto") != 0)
		cr_assert_str_eq(zio_runtime_backend(rt), want);
	cr_assert_eq(zio_runtime_run(rt, pipe_roundtrip, NULL, NULL), 0);
	zio_runtime_destroy(rt);
}

static void *try_once(void *arg)
{
	int p[2];
	cr_assert_eq(zio_pipe(p), 0);
	char buf[4];
	cr_assert_eq(zio_read(p[0], buf, 4, 0), -EAGAIN);
	int64_t t0 = zio_now();
	cr_assert_eq(zio_read(p[0], buf, 4, zio_deadline_after(ZIO_MSEC(30))), -ETIMEDOUT);
	cr_assert_geq(zio_now() - t0, ZIO_MSEC(29));
	/* A deadline scope applies too. */
	struct zio_timeout sc;
	zio_timeout_begin(&sc, zio_deadline_after(ZIO_MSEC(20)));
	cr_assert_eq(zio_read(p[0], buf, 4, ZIO_FOREVER), -ETIMEDOUT);
	cr_assert(zio_timeout_end(&sc));
	cr_assert_eq(zio_write(p[1], "x", 1, 0), 1);
	cr_assert_eq(zio_read(p[0], buf, 4, 0), 1);
	zio_close(p[0]);
	zio_close(p[1]);
	return NULL;
}

Test(io, try_once_and_timeouts, .timeout = 10)
{
	run_in_runtime(1, try_once, NULL);
}

/* ------------------------------------------------------ ping-pong tasks */

struct pp {
	int fd;
	int rounds;
};

static void *pong(void *arg)
{
	struct pp *p = arg;
	char c;
	for (int i = 0; i < p->rounds; i++) {
		if (zio_read(p->fd, &c, 1, ZIO_FOREVER) != 1)
			return (void *)1;
		if (zio_write(p->fd, &c, 1, ZIO_FOREVER) != 1)
			return (void *)2;
	}
	return NULL;
}

static void *ping_pong(void *arg)
{
	int sv[2];
	cr_assert_eq(zio_socketpair(AF_UNIX, SOCK_STREAM, sv), 0);
	struct pp p = { sv[1], 2000 };
	zio_task *t;
	cr_assert_eq(zio_spawn(NULL, &t, pong, &p, NULL), 0);
	for (int i = 0; i < p.rounds; i++) {
		char c = (char)i, d;
		cr_assert_eq(zio_write(sv[0], &c, 1, ZIO_FOREVER), 1);
		cr_assert_eq(zio_read(sv[0], &d, 1, ZIO_FOREVER), 1);
		cr_assert_eq(c, d);
	}
	void *r;
	cr_assert_eq(zio_task_join(t, &r), 0);
	cr_assert_null(r);
	zio_close(sv[0]);
	zio_close(sv[1]);
	return NULL;
}

Test(io, ping_pong_one_executor, .timeout = 20)
{
	run_in_runtime(1, ping_pong, NULL);
}

Test(io, ping_pong_two_executors, .timeout = 20)
{
	run_in_runtime(2, ping_pong, NULL);
}

/* Many tasks, each with its own pair, across two executors. */
static void *many_pairs_task(void *arg)
{
	int sv[2];
	if (zio_socketpair(AF_UNIX, SOCK_STREAM, sv))
		return (void *)1;
	struct pp p = { sv[1], 200 };
	zio_task *t;
	zio_spawn(NULL, &t, pong, &p, NULL);
	intptr_t bad = 0;
	for (int i = 0; i < p.rounds; i++) {
		char c = (char)i, d = 0;
		if (zio_write(sv[0], &c, 1, ZIO_FOREVER) != 1 ||
		    zio_read(sv[0], &d, 1, ZIO_FOREVER) != 1 || c != d)
			bad = 1;
	}
	void *r;
	zio_task_join(t, &r);
	zio_close(sv[0]);
	zio_close(sv[1]);
	return (void *)(bad | (intptr_t)r);
}

static void *many_pairs(void *arg)
{
	zio_task *t[64];
	for (int i = 0; i < 64; i++)
		cr_assert_eq(zio_spawn(NULL, &t[i], many_pairs_task, NULL, NULL), 0);
	for (int i = 0; i < 64; i++) {
		void *r;
		zio_task_join(t[i], &r);
		cr_assert_null(r, "task %d failed", i);
	}
	return NULL;
}

Test(io, many_pairs_two_executors, .timeout = 60)
{
	run_in_runtime(2, many_pairs, NULL);
}

/* ---------------------------------------------------------- cancellation */

static void *read_forever(void *arg)
{
	char buf[8];
	return (void *)(intptr_t)zio_read(*(int *)arg, buf, sizeof(buf), ZIO_FOREVER);
}

static void *cancel_mid_read(void *arg)
{
	int p[2];
	cr_assert_eq(zio_pipe(p), 0);
	zio_task *t;
	cr_assert_eq(zio_spawn(NULL, &t, read_forever, &p[0], NULL), 0);
	zio_sleep(ZIO_MSEC(5)); /* not synchronisation: the result is the same either way */
	zio_task_cancel(t);
	void *r;
	cr_assert_eq(zio_task_join(t, &r), 0);
	cr_assert_eq((intptr_t)r, -ECANCELED);
	/* The pipe still works: nothing was left registered. */
	cr_assert_eq(zio_write(p[1], "z", 1, ZIO_FOREVER), 1);
	char c;
	cr_assert_eq(zio_read(p[0], &c, 1, ZIO_FOREVER), 1);
	zio_close(p[0]);
	zio_close(p[1]);
	return NULL;
}

Test(io, cancel_mid_read, .timeout = 10)
{
	run_in_runtime(1, cancel_mid_read, NULL);
	run_in_runtime(2, cancel_mid_read, NULL);
}

struct wr {
	int fd;
	ssize_t total;
	ssize_t last;
};

static void *write_until_stopped(void *arg)
{
	struct wr *w = arg;
	static char blob[65536];
	for (;;) {
		ssize_t r = zio_write(w->fd, blob, sizeof(blob), ZIO_FOREVER);
		if (r < 0) {
			w->last = r;
			return NULL;
		}
		w->total += r;
	}
}

static void *cancel_mid_write(void *arg)
{
	int sv[2];
	cr_assert_eq(zio_socketpair(AF_UNIX, SOCK_STREAM, sv), 0);
	struct wr w = { .fd = sv[0] };
	zio_task *t;
	cr_assert_eq(zio_spawn(NULL, &t, write_until_stopped, &w, NULL), 0);
	/* Wait until the writer is blocked: the peer's buffer is full. */
	while (zio_wait_fd(sv[0], POLLOUT, 0) > 0 || w.total == 0)
		zio_sleep(ZIO_MSEC(1));
	zio_sleep(ZIO_MSEC(5));
	zio_task_cancel(t);
	cr_assert_eq(zio_task_join(t, NULL), 0);
	cr_assert_eq(w.last, -ECANCELED);
	/* Everything the writer counted arrives, and nothing more. */
	zio_shutdown(sv[0], SHUT_WR);
	ssize_t got = 0, n;
	char buf[65536];
	while ((n = zio_read(sv[1], buf, sizeof(buf), ZIO_FOREVER)) > 0)
		got += n;
	cr_assert_eq(n, 0);
	cr_assert_eq(got, w.total);
	zio_close(sv[0]);
	zio_close(sv[1]);
	return NULL;
}

Test(io, cancel_mid_write, .timeout = 20)
{
	run_in_runtime(1, cancel_mid_write, NULL);
}

/* If the op completes before the cancellation lands, its result is kept
 * and the cancellation is reported by the next suspension point. */
struct late {
	int fd;
	ssize_t r1, r2;
};

static void *read_then_sleep(void *arg)
{
	struct late *l = arg;
	char buf[8];
	l->r1 = zio_read(l->fd, buf, sizeof(buf), ZIO_FOREVER);
	l->r2 = zio_sleep(ZIO_SEC(10));
	return NULL;
}

static void *result_survives_cancel(void *arg)
{
	int p[2];
	cr_assert_eq(zio_pipe(p), 0);
	struct late l = { .fd = p[0] };
	zio_task *t;
	cr_assert_eq(zio_spawn(NULL, &t, read_then_sleep, &l, NULL), 0);
	zio_yield();
	/* Data and cancellation arrive together: either the read wins (and
	 * the sleep is cancelled) or the cancel does (and the read says so). */
	zio_write(p[1], "abc", 3, ZIO_FOREVER);
	zio_task_cancel(t);
	zio_task_join(t, NULL);
	cr_assert(l.r1 == 3 || l.r1 == -ECANCELED, "r1 = %zd", l.r1);
	cr_assert_eq(l.r2, -ECANCELED);
	if (l.r1 == -ECANCELED) {
		char buf[8];
		cr_assert_eq(zio_read(p[0], buf, 8, 0), 3); /* not lost */
	}
	zio_close(p[0]);
	zio_close(p[1]);
	return NULL;
}

Test(io, result_survives_cancel, .timeout = 10)
{
	for (int i = 0; i < 20; i++)
		run_in_runtime(1, result_survives_cancel, NULL);
}

/* ------------------------------------------------ close while waiting */

static void *close_while_waiting(void *arg)
{
	int p[2];
	cr_assert_eq(zio_pipe(p), 0);
	int rfd = p[0];
	zio_task *t;
	cr_assert_eq(zio_spawn(NULL, &t, read_forever, &rfd, NULL), 0);
	zio_sleep(ZIO_MSEC(5));
	cr_assert_eq(zio_close(rfd), 0);
	/* Reuse the number at once: the old waiter must not read from it. */
	int q[2];
	cr_assert_eq(zio_pipe(q), 0);
	void *r;
	cr_assert_eq(zio_task_join(t, &r), 0);
	cr_assert_eq((intptr_t)r, -EBADF, "waiter got %d", (int)(intptr_t)r);
	if (q[0] == rfd || q[1] == rfd) {
		/* The new pipe on the reused number works normally. */
		cr_assert_eq(zio_write(q[1], "k", 1, ZIO_FOREVER), 1);
		char c;
		cr_assert_eq(zio_read(q[0], &c, 1, ZIO_FOREVER), 1);
	}
	zio_close(p[1]);
	zio_close(q[0]);
	zio_close(q[1]);
	return NULL;
}

Test(io, close_while_waiting, .timeout = 10)
{
	run_in_runtime(1, close_while_waiting, NULL);
	run_in_runtime(2, close_while_waiting, NULL);
}

/* The waiter runs on another executor than the closer: its op sits in the
 * other executor's ring (io_uring) or wait list, and close must still
 * reach it before the number is reused. */
struct xwait {
	int fd;
	atomic_int exec;
	atomic_int ready;
	ssize_t r;
};

static void *pinned_reader(void *arg)
{
	struct xwait *x = arg;
	zio_task_pin();
	atomic_store(&x->exec, (int)zio__exec_current()->id);
	atomic_store(&x->ready, 1);
	char buf[4];
	x->r = zio_read(x->fd, buf, sizeof(buf), ZIO_FOREVER);
	return NULL;
}

static void *close_cross_executor(void *arg)
{
	zio_task_pin();
	int me = (int)zio__exec_current()->id;
	for (int attempt = 0; attempt < 200; attempt++) {
		int p[2];
		cr_assert_eq(zio_pipe(p), 0);
		struct xwait x = { .fd = p[0], .exec = -1 };
		zio_task *t;
		zio_spawn(NULL, &t, pinned_reader, &x, NULL);
		while (!atomic_load(&x.ready))
			zio_sleep(ZIO_MSEC(1));
		if (atomic_load(&x.exec) == me) {
			/* Same executor: let it go and try again. */
			zio_write(p[1], "x", 1, ZIO_FOREVER);
			zio_task_join(t, NULL);
			zio_close(p[0]);
			zio_close(p[1]);
			continue;
		}
		zio_sleep(ZIO_MSEC(5)); /* the read is in flight over there */
		cr_assert_eq(zio_close(p[0]), 0);
		int q[2];
		cr_assert_eq(zio_pipe(q), 0); /* likely reuses p[0]'s number */
		zio_write(q[1], "new", 3, ZIO_FOREVER);
		zio_task_join(t, NULL);
		cr_assert_eq(x.r, -EBADF, "cross-executor waiter got %zd", x.r);
		char buf[4];
		cr_assert_eq(zio_read(q[0], buf, 4, ZIO_FOREVER), 3); /* not stolen */
		zio_close(p[1]);
		zio_close(q[0]);
		zio_close(q[1]);
		return NULL;
	}
	cr_skip_test("no task ever ran on the other executor");
	return NULL;
}

Test(io, close_while_waiting_cross_executor, .timeout = 20)
{
	run_in_runtime(2, close_cross_executor, NULL);
}

/* Rounds of: a task waits to read a pipe (zio_read, or zio_wait_fd for
 * POLLIN or POLLIN|POLLOUT and a plain read); sometimes a byte arrives, which ends its wait "ready", and
 * before it runs again (one executor) the pipe is zio_close()d and a new
 * pipe with a byte of its own takes the number. The reader gets the old
 * byte or -EBADF, never the new pipe's. Before the readiness loop checked
 * the fd's incarnation after a wait, about 4% of rounds on epoll and poll
 * read the new pipe. */
struct ready_race {
	atomic_long rounds, wrong;
};

struct race_reader {
	int fd;
	bool started, poll_first, poll_both;
	char c;
	ssize_t r;
};

static void *race_read(void *arg)
{
	struct race_reader *rr = arg;
	rr->started = true;
	int64_t deadline = zio_now() + ZIO_SEC(5);
	if (!rr->poll_first) {
		rr->r = zio_read(rr->fd, &rr->c, 1, deadline);
		return NULL;
	}
	/* Code that owns its fd: a wait, then its own read. */
	int w = zio_wait_fd(rr->fd, rr->poll_both ? POLLIN | POLLOUT : POLLIN, deadline);
	rr->r = w > 0 ? read(rr->fd, &rr->c, 1) : w;
	return NULL;
}

static void *ready_race_rounds(void *arg)
{
	struct ready_race *rc = arg;
	unsigned seed = (unsigned)zio_task_id(zio_task_self());
	for (int64_t end = zio_now() + ZIO_MSEC(700); zio_now() < end;) {
		int p[2], q[2];
		cr_assert_eq(zio_pipe(p), 0);
		unsigned how = (unsigned)rand_r(&seed) % 3;
		struct race_reader rr = { .fd = p[0], .poll_first = how > 0, .poll_both = how == 2 };
		zio_task *t;
		cr_assert_eq(zio_spawn(NULL, &t, race_read, &rr, NULL), 0);
		while (!rr.started)
			zio_yield();
		int delay = rand_r(&seed) % 64;
		if (delay & 1)
			cr_assert_eq(write(p[1], "o", 1), 1);
		if (delay)
			zio_sleep(ZIO_USEC(delay));
		cr_assert_eq(zio_close(p[0]), 0);
		cr_assert_eq(zio_pipe(q), 0);
		cr_assert_eq(write(q[1], "n", 1), 1);
		zio_task_join(t, NULL);
		cr_assert(rr.r == -EBADF || (rr.r == 1 && (rr.c == 'o' || rr.c == 'n')), "read: %zd",
			  rr.r);
		if (rr.r == 1 && rr.c == 'n')
			atomic_fetch_add(&rc->wrong, 1);
		atomic_fetch_add(&rc->rounds, 1);
		zio_close(p[1]);
		zio_close(q[0]);
		zio_close(q[1]);
	}
	return NULL;
}

static void *ready_then_closed(void *arg)
{
	(void)arg;
	struct ready_race rc = { 0 };
	spawn_join_all(8, ready_race_rounds, &rc);
	cr_assert_gt(atomic_load(&rc.rounds), 0);
	cr_assert_eq(atomic_load(&rc.wrong), 0, "%ld of %ld readers read the number's next pipe",
		     atomic_load(&rc.wrong), atomic_load(&rc.rounds));
	return NULL;
}

Test(io, woken_ready_then_closed_reads_nothing_new, .timeout = 20)
{
	run_in_runtime(1, ready_then_closed, NULL);
}

/* ------------------------------------------------------------ wait_fd */

static void *wait_fd_task(void *arg)
{
	int p[2];
	cr_assert_eq(zio_pipe(p), 0);
	cr_assert_eq(zio_wait_fd(p[0], POLLIN, zio_deadline_after(ZIO_MSEC(10))), -ETIMEDOUT);
	int w = zio_wait_fd(p[1], POLLOUT, ZIO_FOREVER);
	cr_assert(w > 0 && (w & POLLOUT));
	zio_write(p[1], "a", 1, ZIO_FOREVER);
	w = zio_wait_fd(p[0], POLLIN, ZIO_FOREVER);
	cr_assert(w & POLLIN);
	int sv[2];
	cr_assert_eq(zio_socketpair(AF_UNIX, SOCK_STREAM, sv), 0);
	w = zio_wait_fd(sv[0], POLLIN | POLLOUT, ZIO_FOREVER);
	cr_assert(w & POLLOUT, "revents %#x", w);
	cr_assert_eq(zio_wait_fd(sv[0], 0, 0), -EINVAL);
	zio_close(p[0]);
	zio_close(p[1]);
	zio_close(sv[0]);
	zio_close(sv[1]);
	return NULL;
}

Test(io, wait_fd, .timeout = 10)
{
	run_in_runtime(1, wait_fd_task, NULL);
}

/* zio_wait_fd() says what poll(2) would: the events asked for, and
 * POLLERR, POLLHUP, POLLNVAL, nothing else (io_uring's poll said
 * POLLRDHUP unasked), whether it waited or found the fd ready. On the one
 * executor the writer runs once the first wait has parked. */
static void *write_then_close(void *arg)
{
	int fd = *(int *)arg;
	cr_assert_eq(zio_write(fd, "x", 1, ZIO_FOREVER), 1);
	zio_close(fd);
	return NULL;
}

static void *wait_fd_says_what_poll_says(void *arg)
{
	(void)arg;
	int sv[2];
	cr_assert_eq(zio_socketpair(AF_UNIX, SOCK_STREAM, sv), 0);
	zio_task *t;
	cr_assert_eq(zio_spawn(NULL, &t, write_then_close, &sv[1], NULL), 0);
	int w = zio_wait_fd(sv[0], POLLIN, ZIO_FOREVER);
	cr_assert(w > 0 && (w & POLLIN) && !(w & ~(POLLIN | POLLHUP)), "a wait said %#x", w);
	zio_task_join(t, NULL);
	struct pollfd pfd = { .fd = sv[0], .events = POLLIN };
	cr_assert_eq(poll(&pfd, 1, 0), 1);
	cr_assert_eq(zio_wait_fd(sv[0], POLLIN, ZIO_FOREVER), pfd.revents);
	pfd.events = POLLIN | POLLRDHUP;
	cr_assert_eq(poll(&pfd, 1, 0), 1);
	cr_assert_eq(zio_wait_fd(sv[0], POLLIN | POLLRDHUP, ZIO_FOREVER), pfd.revents);
	zio_close(sv[0]);
	return NULL;
}

Test(io, wait_fd_says_what_poll_says, .timeout = 10)
{
	run_in_runtime(1, wait_fd_says_what_poll_says, NULL);
}

/* A regular file is always readable and writable; POLLPRI is how some
 * (/proc/self/mounts, cgroup.events, sysfs) announce a change, and is
 * waited for: until the deadline here, where nothing changes. It was
 * answered 0 at once, which a caller's loop spun on. */
static void *wait_fd_regular_task(void *arg)
{
	(void)arg;
	char path[64];
	snprintf(path, sizeof(path), "/tmp/zio-waitfd-%d", getpid());
	int fd = zio_file_open(path, O_CREAT | O_RDWR | O_TRUNC, 0600, ZIO_FOREVER);
	cr_assert_geq(fd, 0);
	cr_assert_eq(zio_wait_fd(fd, POLLIN, ZIO_FOREVER) & POLLIN, POLLIN);
	cr_assert_eq(zio_wait_fd(fd, POLLOUT, ZIO_FOREVER) & POLLOUT, POLLOUT);
	int64_t t0 = zio_now();
	cr_assert_eq(zio_wait_fd(fd, POLLPRI, zio_deadline_after(ZIO_MSEC(50))), -ETIMEDOUT);
	cr_assert_geq(zio_now() - t0, ZIO_MSEC(45));
	zio_close(fd);
	zio_file_unlink(path, ZIO_FOREVER);
	int m = zio_file_open("/proc/self/mounts", O_RDONLY, 0, ZIO_FOREVER);
	cr_assert_geq(m, 0);
	t0 = zio_now();
	cr_assert_eq(zio_wait_fd(m, POLLPRI, zio_deadline_after(ZIO_MSEC(50))), -ETIMEDOUT);
	cr_assert_geq(zio_now() - t0, ZIO_MSEC(45));
	/* With POLLOUT too (which a file with a poll method need not
	 * report): waited for as well (it said -EAGAIN at once). */
	t0 = zio_now();
	cr_assert_eq(zio_wait_fd(m, POLLPRI | POLLOUT, zio_deadline_after(ZIO_MSEC(50))), -ETIMEDOUT);
	cr_assert_geq(zio_now() - t0, ZIO_MSEC(45));
	zio_close(m);
	return NULL;
}

Test(io, wait_fd_regular_file, .timeout = 10)
{
	run_in_runtime(1, wait_fd_regular_task, NULL);
	/* The same from a plain thread. */
	int m = open("/proc/self/mounts", O_RDONLY | O_CLOEXEC);
	cr_assert_geq(m, 0);
	int64_t t0 = zio_now();
	cr_assert_eq(zio_wait_fd(m, POLLPRI, zio_deadline_after(ZIO_MSEC(50))), -ETIMEDOUT);
	cr_assert_geq(zio_now() - t0, ZIO_MSEC(45));
	close(m);
}

static void *drain_later(void *arg)
{
	int fd = *(int *)arg; /* runs once the waiter has parked (one executor) */
	static char sink[65536];
	while (zio_read(fd, sink, sizeof(sink), 0) > 0)
		;
	return NULL;
}

/* Waits for events on one end of a socket pair whose send buffer is full,
 * while a task does peer_action(&other end): runs once the waiter has
 * parked (one executor). Returns what the wait returned. */
static int wait_with_buffer_full(short events, zio_task_fn peer_action)
{
	int sv[2];
	cr_assert_eq(zio_socketpair(AF_UNIX, SOCK_STREAM, sv), 0);
	static char chunk[65536];
	while (zio_write(sv[0], chunk, sizeof(chunk), 0) > 0)
		;
	zio_task *t;
	cr_assert_eq(zio_spawn(NULL, &t, peer_action, &sv[1], NULL), 0);
	int r = zio_wait_fd(sv[0], events, zio_deadline_after(ZIO_SEC(2)));
	zio_task_join(t, NULL);
	zio_close(sv[0]);
	zio_close(sv[1]);
	return r;
}

/* Writability and urgent data at once: the wait is on both sides. */
static void *wait_out_or_pri_task(void *arg)
{
	(void)arg;
	int r = wait_with_buffer_full(POLLOUT | POLLPRI, drain_later);
	cr_assert_gt(r, 0, "wait_fd: %d", r);
	cr_assert(r & POLLOUT);
	return NULL;
}

Test(io, wait_fd_out_or_pri, .timeout = 10)
{
	run_in_runtime(1, wait_out_or_pri_task, NULL);
}

/* Writability or the peer's shutdown: the shutdown ends the wait (on epoll
 * the wait was on the write side only, and it never came). */
static void *shut_peer_later(void *arg)
{
	zio_shutdown(*(int *)arg, SHUT_WR);
	return NULL;
}

static void *wait_out_or_rdhup_task(void *arg)
{
	(void)arg;
	int r = wait_with_buffer_full(POLLOUT | POLLRDHUP, shut_peer_later);
	cr_assert_gt(r, 0, "wait_fd: %d", r);
	cr_assert(r & POLLRDHUP, "revents %#x", r);
	return NULL;
}

Test(io, wait_fd_out_or_rdhup, .timeout = 10)
{
	run_in_runtime(1, wait_out_or_rdhup_task, NULL);
}

/* And when the change comes: /proc/sys/kernel/hostname reports POLLPRI to
 * one poll only, the backend's, so the wait must return what the backend
 * saw rather than poll again (it used to wait on until the deadline). */
static void *rename_host(void *arg)
{
	(void)arg; /* runs once the waiter has parked (one executor) */
	cr_assert_eq(sethostname("zio-test-host", 13), 0);
	return NULL;
}

static void *rename_host_later(void *arg)
{
	usleep(50000); /* the plain thread is in its wait by then */
	return rename_host(arg);
}

static void *wait_fd_pri_task(void *arg)
{
	(void)arg;
	int fd = zio_file_open("/proc/sys/kernel/hostname", O_RDONLY, 0, ZIO_FOREVER);
	cr_assert_geq(fd, 0);
	char b[64];
	cr_assert_gt(zio_file_pread(fd, b, sizeof(b), 0, ZIO_FOREVER), 0); /* arms it */
	zio_task *t;
	zio_spawn(NULL, &t, rename_host, NULL, NULL);
	int r = zio_wait_fd(fd, POLLPRI, zio_deadline_after(ZIO_SEC(5)));
	cr_assert_gt(r, 0, "wait_fd: %d", r);
	cr_assert(r & POLLPRI);
	zio_task_join(t, NULL);
	zio_close(fd);
	return NULL;
}

Test(io, wait_fd_pri_reported_once, .timeout = 10)
{
	/* A UTS namespace of its own (this test's process only) to rename. */
	if (unshare(CLONE_NEWUTS) != 0)
		cr_skip_test("no CAP_SYS_ADMIN for a UTS namespace: %s", strerror(errno));
	run_in_runtime(1, wait_fd_pri_task, NULL);
	/* The same from a plain thread: its ppoll saw the change, and it
	 * polled again and waited on. */
	int fd = open("/proc/sys/kernel/hostname", O_RDONLY | O_CLOEXEC);
	cr_assert_geq(fd, 0);
	char b[64];
	cr_assert_gt(pread(fd, b, sizeof(b), 0), 0);
	pthread_t th;
	cr_assert_eq(pthread_create(&th, NULL, rename_host_later, NULL), 0);
	int r = zio_wait_fd(fd, POLLPRI, zio_deadline_after(ZIO_SEC(5)));
	pthread_join(th, NULL);
	cr_assert_gt(r, 0, "plain thread's wait_fd: %d", r);
	cr_assert(r & POLLPRI);
	close(fd);
}

/* ------------------------------------- fds zio did not make: blocking */

static void *blocking_fds(void *arg)
{
	int p[2];
	cr_assert_eq(pipe(p), 0); /* blocking pipe: must not block the executor */
	int sv[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0); /* blocking sockets */
	zio_task *t1, *t2;
	cr_assert_eq(zio_spawn(NULL, &t1, read_forever, &p[0], NULL), 0);
	cr_assert_eq(zio_spawn(NULL, &t2, read_forever, &sv[1], NULL), 0);
	zio_sleep(ZIO_MSEC(5)); /* both readers are parked, the executor is free */
	cr_assert_eq(zio_write(p[1], "12", 2, ZIO_FOREVER), 2);
	cr_assert_eq(zio_write(sv[0], "345", 3, ZIO_FOREVER), 3);
	void *r;
	zio_task_join(t1, &r);
	cr_assert_eq((intptr_t)r, 2);
	zio_task_join(t2, &r);
	cr_assert_eq((intptr_t)r, 3);
	/* Their flags were never touched. */
	cr_assert_eq(fcntl(p[0], F_GETFL) & O_NONBLOCK, 0);
	cr_assert_eq(fcntl(sv[1], F_GETFL) & O_NONBLOCK, 0);
	char c;
	cr_assert_eq(zio_read(p[0], &c, 1, zio_deadline_after(ZIO_MSEC(5))), -ETIMEDOUT);
	zio_close(p[0]);
	zio_close(p[1]);
	zio_close(sv[0]);
	zio_close(sv[1]);
	return NULL;
}

Test(io, blocking_fds_not_ours, .timeout = 10)
{
	run_in_runtime(1, blocking_fds, NULL);
}

/* A write bigger than a blocking pipe can take: POLLOUT promised only some
 * room, and the rest must not block the executor (there is no reader at
 * all here). A short write, as on a non-blocking pipe. */
static void *big_write_blocking_pipe(void *arg)
{
	(void)arg;
	int p[2];
	cr_assert_eq(pipe(p), 0);
	size_t len = 1 << 20;
	char *big = calloc(1, len);
	struct iovec iov[2] = { { big, len / 2 }, { big + len / 2, len / 2 } };
	ssize_t n = zio_write(p[1], big, len, zio_deadline_after(ZIO_SEC(2)));
	cr_assert_gt(n, 0);
	cr_assert_lt((size_t)n, len);
	char *sink = malloc(len);
	cr_assert_eq(zio_read(p[0], sink, len, ZIO_FOREVER), n);
	n = zio_writev(p[1], iov, 2, zio_deadline_after(ZIO_SEC(2)));
	cr_assert_gt(n, 0);
	cr_assert_lt((size_t)n, len);
	free(big);
	free(sink);
	zio_close(p[0]);
	zio_close(p[1]);
	return NULL;
}

Test(io, big_write_to_blocking_pipe, .timeout = 10)
{
	run_in_runtime(1, big_write_blocking_pipe, NULL);
}

/* More waits than the process may have fds (the poll backend once passed
 * ppoll() one entry per wait, which the kernel refuses past
 * RLIMIT_NOFILE): many readers of one pipe. */
static int readers_started;

static void *read_one_byte(void *arg)
{
	char c;
	readers_started++; /* one executor: it parks in the read below before
			    * anyone else runs */
	return (void *)(intptr_t)zio_read(*(int *)arg, &c, 1, zio_deadline_after(ZIO_SEC(10)));
}

static void *many_waits_one_fd(void *arg)
{
	(void)arg;
	enum { READERS = 600 };
	struct rlimit rl;
	cr_assert_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	struct rlimit low = { .rlim_cur = 256, .rlim_max = rl.rlim_max };
	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
	int p[2];
	cr_assert_eq(zio_pipe(p), 0);
	static zio_task *t[READERS];
	for (int i = 0; i < READERS; i++)
		cr_assert_eq(zio_spawn(NULL, &t[i], read_one_byte, &p[0], NULL), 0);
	while (readers_started < READERS) /* until all are parked on the pipe */
		zio_sleep(ZIO_MSEC(1));
	static char bytes[READERS];
	cr_assert_eq(zio_write_all(p[1], bytes, READERS, ZIO_FOREVER), READERS);
	for (int i = 0; i < READERS; i++) {
		void *r;
		zio_task_join(t[i], &r);
		cr_assert_eq((intptr_t)r, 1, "reader %d: %ld", i, (long)(intptr_t)r);
	}
	zio_close(p[0]);
	zio_close(p[1]);
	setrlimit(RLIMIT_NOFILE, &rl);
	return NULL;
}

Test(io, more_waits_than_rlimit_nofile, .timeout = 30)
{
	run_in_runtime(1, many_waits_one_fd, NULL);
}

/* zio_close of one fd leaves a dup of it working, with a read in flight
 * on the dup (io_uring cancels by file, so the dup's read was cancelled
 * too and reported EBADF). */
static void *read_dup(void *arg)
{
	char b[8];
	ssize_t n = zio_read(*(int *)arg, b, sizeof(b), zio_deadline_after(ZIO_SEC(5)));
	return (void *)(intptr_t)(n == 5 && memcmp(b, "hello", 5) == 0 ? 5 : n);
}

static void *close_leaves_dup_task(void *arg)
{
	bool tcp = arg != NULL;
	int fds[2];
	if (tcp) {
		zio_addr a;
		cr_assert_eq(zio_addr_parse(&a, "127.0.0.1:0"), 0);
		int l = zio_tcp_listen(&a, NULL);
		cr_assert_geq(l, 0);
		zio_local_addr(l, &a);
		fds[1] = zio_tcp_connect(&a, zio_deadline_after(ZIO_SEC(5)));
		fds[0] = zio_accept(l, NULL, zio_deadline_after(ZIO_SEC(5)));
		cr_assert_geq(fds[0], 0);
		cr_assert_geq(fds[1], 0);
		zio_close(l);
	} else {
		cr_assert_eq(zio_pipe(fds), 0);
	}
	/* The original is read from first, so its ring or epoll knows it. */
	char b[8];
	cr_assert_eq(zio_read(fds[0], b, sizeof(b), zio_deadline_after(ZIO_MSEC(10))), -ETIMEDOUT);
	int d = dup(fds[0]);
	cr_assert_geq(d, 0);
	zio_task *t;
	cr_assert_eq(zio_spawn(NULL, &t, read_dup, &d, NULL), 0);
	zio_yield(); /* one executor: the dup's read is submitted, then parks */
	cr_assert_eq(zio_close(fds[0]), 0);
	cr_assert_eq(zio_write(fds[1], "hello", 5, ZIO_FOREVER), 5);
	void *r;
	zio_task_join(t, &r);
	cr_assert_eq((intptr_t)r, 5, "read on the dup: %ld", (long)(intptr_t)r);
	zio_close(d);
	zio_close(fds[1]);
	return NULL;
}

Test(io, close_leaves_a_dup_working, .timeout = 20)
{
	run_in_runtime(1, close_leaves_dup_task, NULL);
	run_in_runtime(1, close_leaves_dup_task, (void *)1);
}

/* Writes on blocking fds zio did not make that have room: io_uring writes
 * them whole (for a while they were cut to PIPE_BUF, as if they had had to
 * wait); the readiness backends poll first, and POLLOUT promises PIPE_BUF
 * bytes, so they may write that much (a short write, as documented). */
static void *whole_writes_to_foreign_fds(void *arg)
{
	(void)arg;
	bool ring = strcmp(zio_runtime_backend(zio_runtime_current()), "uring") == 0;
	int p[2];
	cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
	static char buf[1 << 20];
	ssize_t r = zio_write(p[1], buf, 8192, zio_deadline_after(ZIO_SEC(5)));
	cr_assert(r == 8192 || (!ring && r == PIPE_BUF), "pipe: %zd", r);
	int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
	cr_assert_geq(null, 0);
	r = zio_write(null, buf, sizeof(buf), zio_deadline_after(ZIO_SEC(5)));
	cr_assert(r == (ssize_t)sizeof(buf) || (!ring && r == PIPE_BUF), "/dev/null: %zd", r);
	zio_close(null);
	zio_close(p[0]);
	zio_close(p[1]);
	return NULL;
}

Test(io, writes_with_room_go_whole, .timeout = 20)
{
	run_in_runtime(1, whole_writes_to_foreign_fds, NULL);
}

/* Two runtimes of different backends in one process reading one pipe: an
 * edge the epoll runtime reaps wakes every waiter of the fd, the poll
 * runtime's too, whose wait then stayed on its loop's list: resubmitted,
 * the list became a cycle and its poll() wrote past its arrays. */
struct shared_pipe {
	int fd;
	const char *backend;
	atomic_int stop, got;
};

static void *read_shared_pipe(void *arg)
{
	struct shared_pipe *sp = arg;
	char c;
	while (!atomic_load(&sp->stop))
		if (zio_read(sp->fd, &c, 1, zio_deadline_after(ZIO_MSEC(20))) == 1)
			atomic_fetch_add(&sp->got, 1);
	return NULL;
}

static void *runtime_reading_shared_pipe(void *arg)
{
	struct shared_pipe *sp = arg;
	run_with(&(struct zio_runtime_options){ .executors = 1, .backend = sp->backend },
		 read_shared_pipe, sp);
	return NULL;
}

Test(io, two_backends_read_one_pipe, .timeout = 30)
{
	int p[2];
	cr_assert_eq(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
	struct shared_pipe readers[2] = { { .fd = p[0], .backend = "epoll" },
					  { .fd = p[0], .backend = "poll" } };
	pthread_t t[2];
	for (int i = 0; i < 2; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, runtime_reading_shared_pipe, &readers[i]), 0);
	enum { BYTES = 1000 };
	for (int i = 0; i < BYTES; i++) {
		cr_assert_eq(write(p[1], "x", 1), 1);
		usleep(200);
	}
	while (atomic_load(&readers[0].got) + atomic_load(&readers[1].got) < BYTES)
		usleep(1000);
	for (int i = 0; i < 2; i++)
		atomic_store(&readers[i].stop, 1);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	cr_assert_eq(atomic_load(&readers[0].got) + atomic_load(&readers[1].got), BYTES);
	close(p[0]);
	close(p[1]);
}

/* A wait that starts while zio_close() of its fd is under way (here held
 * up by a pool job on the file, which a close waits for) fails with -EBADF
 * at once on every backend. epoll did; poll linked it and polled the
 * number on after the close (the deadline, then POLLNVAL), and io_uring
 * submitted it, holding the file open past the close. */
struct closing_window {
	int fd;
	struct pool_hold hold;
};

static void *job_on_the_file(void *arg)
{
	struct closing_window *cw = arg;
	return (void *)zio__blocking_call_on_files(hold_pool_thread, &cw->hold, ZIO_FOREVER, cw->fd,
						   cw->fd);
}

static void *close_the_file(void *arg)
{
	return (void *)(intptr_t)zio_close(((struct closing_window *)arg)->fd);
}

static void *wait_during_close(void *arg)
{
	(void)arg;
	char path[] = "/tmp/zio-test-closing-XXXXXX";
	struct closing_window cw = { .fd = mkstemp(path) };
	cr_assert_geq(cw.fd, 0);
	unlink(path);
	zio_task *job, *closer;
	cr_assert_eq(zio_spawn(NULL, &job, job_on_the_file, &cw, NULL), 0);
	while (!atomic_load(&cw.hold.started))
		zio_sleep(ZIO_MSEC(1));
	cr_assert_eq(zio_spawn(NULL, &closer, close_the_file, &cw, NULL), 0);
	zio_sleep(ZIO_MSEC(20)); /* the close waits for the job */
	cr_assert(!zio_task_done(closer));
	int64_t t0 = zio_now();
	int r = zio_wait_fd(cw.fd, POLLPRI, zio_deadline_after(ZIO_SEC(2)));
	cr_assert_eq(r, -EBADF, "wait: %d", r);
	cr_assert_lt(zio_now() - t0, ZIO_SEC(1));
	/* A try-once call does not wait for the close (it waited 50 ms for
	 * the mark to be lifted, as a call that may wait does). */
	t0 = zio_now();
	char c;
	cr_assert_eq(zio_read(cw.fd, &c, 1, 0), -EBADF);
	cr_assert_lt(zio_now() - t0, ZIO_MSEC(40));
	atomic_store(&cw.hold.release, 1);
	void *res;
	zio_task_join(closer, &res);
	cr_assert_eq((intptr_t)res, 0);
	zio_task_join(job, NULL);
	return NULL;
}

Test(io, wait_during_close_is_ebadf, .timeout = 20)
{
	run_in_runtime(1, wait_during_close, NULL);
}

/* A task whose reads never wait (/dev/zero) lets the other tasks of its
 * executor run, and its timers fire: it held the executor for as long as
 * it read, as no op ever switched. (On io_uring every read of a device is
 * a request the task parks for, so there this holds anyway.) */
struct always_ready {
	atomic_int turns;
	atomic_bool slept;
};

static void *take_turns(void *arg)
{
	struct always_ready *a = arg;
	for (;;) {
		atomic_fetch_add(&a->turns, 1);
		if (zio_yield() < 0)
			return NULL;
	}
}

static void *sleep_a_little(void *arg)
{
	zio_sleep(ZIO_MSEC(5));
	atomic_store(&((struct always_ready *)arg)->slept, true);
	return NULL;
}

/* arg: non-NULL to read inside a deadline scope already spent, where
 * such reads still succeed and a yield says -ETIMEDOUT (the budget's
 * yield went through that check, and never switched). */
static void *read_what_is_always_there(void *arg)
{
	int zero = open("/dev/zero", O_RDONLY | O_CLOEXEC);
	cr_assert_geq(zero, 0);
	struct always_ready a = { 0 };
	zio_task *turner, *sleeper;
	cr_assert_eq(zio_spawn(NULL, &turner, take_turns, &a, NULL), 0);
	cr_assert_eq(zio_spawn(NULL, &sleeper, sleep_a_little, &a, NULL), 0);
	char buf[512];
	int64_t give_up = zio_deadline_after(ZIO_SEC(3));
	struct zio_timeout spent;
	if (arg)
		zio_timeout_begin(&spent, 0);
	while ((atomic_load(&a.turns) < 100 || !atomic_load(&a.slept)) && zio_now() < give_up)
		cr_assert_eq(zio_read(zero, buf, sizeof(buf), ZIO_FOREVER), (ssize_t)sizeof(buf));
	if (arg)
		zio_timeout_end(&spent);
	cr_assert_geq(atomic_load(&a.turns), 100, "the other task ran %d times",
		      atomic_load(&a.turns));
	cr_assert(atomic_load(&a.slept), "the sleeper's timer never fired");
	zio_task_cancel(turner);
	zio_task_join(turner, NULL);
	zio_task_join(sleeper, NULL);
	close(zero);
	return NULL;
}

Test(io, reads_that_never_wait_let_others_run, .timeout = 20)
{
	run_in_runtime(1, read_what_is_always_there, NULL);
}

Test(io, reads_that_never_wait_in_a_spent_scope_let_others_run, .timeout = 20)
{
	run_in_runtime(1, read_what_is_always_there, "spent");
}

/* The same with work between the reads (0.2 ms each): the executor's I/O
 * poll still comes often enough that a task waiting on a pipe another
 * thread writes to is woken soon after (it came every 64 switches, which
 * such a task made once per 128 reads: 1.6 s apart). */
struct late_wake {
	int fds[2];
	atomic_bool computing;
	atomic_llong written_at, woken_at;
};

static void *write_one_soon(void *arg)
{
	struct late_wake *w = arg;
	while (!atomic_load(&w->computing))
		usleep(1000);
	atomic_store(&w->written_at, zio_now());
	cr_assert_eq(write(w->fds[1], "x", 1), 1);
	return NULL;
}

static void *wait_for_the_byte(void *arg)
{
	struct late_wake *w = arg;
	char c;
	ssize_t r = zio_read(w->fds[0], &c, 1, zio_deadline_after(ZIO_SEC(10)));
	atomic_store(&w->woken_at, zio_now());
	return (void *)(intptr_t)r;
}

static void *read_and_compute(void *arg)
{
	(void)arg;
	int zero = open("/dev/zero", O_RDONLY | O_CLOEXEC);
	cr_assert_geq(zero, 0);
	struct late_wake w = { 0 };
	cr_assert_eq(zio_pipe(w.fds), 0);
	zio_task *waiter;
	cr_assert_eq(zio_spawn(NULL, &waiter, wait_for_the_byte, &w, NULL), 0);
	zio_yield(); /* it waits */
	pthread_t writer;
	cr_assert_eq(pthread_create(&writer, NULL, write_one_soon, &w), 0);
	char buf[512];
	int64_t give_up = zio_deadline_after(ZIO_SEC(10));
	while (!atomic_load(&w.woken_at) && zio_now() < give_up) {
		cr_assert_eq(zio_read(zero, buf, sizeof(buf), ZIO_FOREVER), (ssize_t)sizeof(buf));
		int64_t until = zio_now() + ZIO_USEC(200);
		while (zio_now() < until)
			;
		atomic_store(&w.computing, true); /* the write comes while we are at it */
	}
	void *r;
	zio_task_join(waiter, &r);
	cr_assert_eq((intptr_t)r, 1);
	int64_t late = atomic_load(&w.woken_at) - atomic_load(&w.written_at);
	cr_assert_lt(late, ZIO_MSEC(500), "woken %lld ms after the write", (long long)(late / 1000000));
	pthread_join(writer, NULL);
	zio_close(w.fds[0]);
	zio_close(w.fds[1]);
	close(zero);
	return NULL;
}

Test(io, reads_that_never_wait_let_the_poll_run, .timeout = 30)
{
	run_in_runtime(1, read_and_compute, NULL);
}

/* The two phases of a zio_close() as an op sees them, set by hand on the
 * entry of an open eventfd (as a closer leaves them while it waits for the
 * rings, and when preempted just after its close(2)). Before the close(2)
 * the number is the closing file: -EBADF at once (the op waited for 50 ms
 * first). After it, the number may be a new file: the op waits for the
 * lift, and if its own time runs out first it says so, -EAGAIN or
 * -ETIMEDOUT (it said -EBADF, for a file that was open and fine: a stress
 * test's try-once reads of eventfds on io_uring without multishot). */
static void *lift_after_10ms(void *arg)
{
	zio_sleep(ZIO_MSEC(10));
	__atomic_store_n(&((struct zio__fd *)arg)->owner_epfd, ZIO__EPFD_NONE, __ATOMIC_RELEASE);
	return NULL;
}

static void *close_phases(void *arg)
{
	(void)arg;
	int e = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	cr_assert_geq(e, 0);
	uint64_t one = 1;
	cr_assert_eq(zio_write(e, &one, sizeof(one), ZIO_FOREVER), 8);
	struct zio__fd *ent = zio__fd_get(e);
	cr_assert_not_null(ent);
	int registered = __atomic_load_n(&ent->owner_epfd, __ATOMIC_ACQUIRE);

	/* (Lifted 10 ms on, the write would work had it waited.) */
	__atomic_store_n(&ent->owner_epfd, ZIO__EPFD_CLOSING, __ATOMIC_RELEASE);
	zio_task *lifter;
	cr_assert_eq(zio_spawn(NULL, &lifter, lift_after_10ms, ent, NULL), 0);
	cr_assert_eq(zio_write(e, &one, sizeof(one), zio_deadline_after(ZIO_SEC(1))), -EBADF);
	zio_task_join(lifter, NULL);
	cr_assert_eq(__atomic_load_n(&ent->owner_epfd, __ATOMIC_ACQUIRE), ZIO__EPFD_NONE);

	__atomic_store_n(&ent->owner_epfd, ZIO__EPFD_CLOSED, __ATOMIC_RELEASE);
	int64_t t0 = zio_now();
	cr_assert_eq(zio_write(e, &one, sizeof(one), 0), -EAGAIN);
	cr_assert_eq(zio_wait_fd(e, POLLIN | POLLOUT, 0), -EAGAIN); /* (epoll, poll: its own path) */
	cr_assert_lt(zio_now() - t0, ZIO_MSEC(40));
	t0 = zio_now();
	cr_assert_eq(zio_write(e, &one, sizeof(one), zio_deadline_after(ZIO_MSEC(20))), -ETIMEDOUT);
	cr_assert_geq(zio_now() - t0, ZIO_MSEC(20));
	cr_assert_eq(zio_spawn(NULL, &lifter, lift_after_10ms, ent, NULL), 0);
	cr_assert_eq(zio_write(e, &one, sizeof(one), zio_deadline_after(ZIO_SEC(5))), 8);
	zio_task_join(lifter, NULL);

	uint64_t v = 0;
	cr_assert_eq(zio_read(e, &v, sizeof(v), ZIO_FOREVER), 8);
	cr_assert_eq(v, 2u);
	__atomic_store_n(&ent->owner_epfd, registered, __ATOMIC_RELEASE);
	cr_assert_eq(zio_close(e), 0);
	return NULL;
}

Test(io, an_op_during_each_phase_of_a_close, .timeout = 20)
{
	run_in_runtime(1, close_phases, NULL);
}

/* Calls that learn a file's kind (fstat) before they look at the closing
 * mark, made while a zio_close() of a regular file is under way (its
 * entry cleared, the mark set, by hand here as in the test above): they
 * must not write the closing file's kind back into the entry, where the
 * number's next file, made by plain pipe(2) say, would inherit it (a
 * zio_read() of that pipe went to the pool as a file read, and kept no
 * deadline). zio_sendfile() from the closing file fails like an op,
 * -EBADF, or -EAGAIN once the close(2) is past and the lift is not. */
static void *kind_learnt_during_a_close(void *arg)
{
	(void)arg;
	char path[] = "/tmp/zio-kind-during-close-XXXXXX";
	int tmp = mkstemp(path);
	cr_assert_geq(tmp, 0);
	cr_assert_eq(write(tmp, "hello", 5), 5);
	close(tmp);
	int fd = zio_file_open(path, O_RDONLY, 0, ZIO_FOREVER);
	cr_assert_geq(fd, 0);
	unlink(path);
	int out[2];
	cr_assert_eq(zio_pipe(out), 0);
	struct zio__fd *ent = zio__fd_get(fd);
	cr_assert_not_null(ent);
	int registered = __atomic_load_n(&ent->owner_epfd, __ATOMIC_ACQUIRE);
	__atomic_store_n(&ent->kind, (uint8_t)ZIO__FD_UNKNOWN, __ATOMIC_RELAXED);
	__atomic_store_n(&ent->owner_epfd, ZIO__EPFD_CLOSING, __ATOMIC_RELEASE);
	char c;
	cr_assert_eq(zio_sendfile(out[1], fd, NULL, 1, ZIO_FOREVER), -EBADF);
	(void)zio_file_read(fd, &c, 1, 0);
	(void)zio_file_pread(fd, &c, 1, 0, zio_deadline_after(ZIO_SEC(1)));
	(void)zio_wait_fd(fd, POLLPRI, 0);
	cr_assert_eq(__atomic_load_n(&ent->kind, __ATOMIC_RELAXED), ZIO__FD_UNKNOWN,
		     "a call during the close wrote the closing file's kind back");
	__atomic_store_n(&ent->owner_epfd, ZIO__EPFD_CLOSED, __ATOMIC_RELEASE);
	cr_assert_eq(zio_sendfile(out[1], fd, NULL, 1, 0), -EAGAIN);
	(void)zio_file_read(fd, &c, 1, 0);
	cr_assert_eq(__atomic_load_n(&ent->kind, __ATOMIC_RELAXED), ZIO__FD_UNKNOWN,
		     "a call after the close(2) wrote the closing file's kind back");
	__atomic_store_n(&ent->owner_epfd, registered, __ATOMIC_RELEASE);
	cr_assert_eq(zio_sendfile(out[1], fd, NULL, 5, ZIO_FOREVER), 5);
	cr_assert_eq(zio_close(fd), 0);
	zio_close(out[0]);
	zio_close(out[1]);
	return NULL;
}

Test(io, a_kind_learnt_during_a_close_is_not_kept, .timeout = 20)
{
	run_in_runtime(1, kind_learnt_during_a_close, NULL);
}

/* A file zio did not make (eventfd(2)) that takes the number of a file
 * zio_close() has just closed, before the close lifts its mark from the
 * fd's entry: its first op works (it said -EBADF, the close being under
 * way: on io_uring thousands of times a second, with sockets made and
 * closed beside it on the other executor). Not under ThreadSanitizer:
 * there zio_close() closes by syscall (io.c), out of sight of TSan's
 * descriptor model, which then takes every number made again on another
 * thread for a race with its last file. */
#if !defined(__SANITIZE_THREAD__)
static atomic_bool fresh_stop;
static atomic_int fresh_ebadf, fresh_writes;

static void *make_and_close_sockets(void *arg)
{
	(void)arg;
	while (!atomic_load(&fresh_stop)) {
		int sv[2];
		if (zio_socketpair(AF_UNIX, SOCK_STREAM, sv) == 0) {
			zio_wait_fd(sv[0], POLLOUT, 0);
			zio_close(sv[0]);
			zio_close(sv[1]);
		}
		zio_yield();
	}
	return NULL;
}

static void *write_fresh_eventfds(void *arg)
{
	(void)arg;
	while (!atomic_load(&fresh_stop)) {
		int e = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		cr_assert_geq(e, 0);
		uint64_t one = 1;
		if (zio_write(e, &one, sizeof(one), zio_deadline_after(ZIO_SEC(1))) == -EBADF)
			atomic_fetch_add(&fresh_ebadf, 1);
		atomic_fetch_add(&fresh_writes, 1);
		zio_close(e);
		zio_yield();
	}
	return NULL;
}

static void *raw_files_beside_closes(void *arg)
{
	(void)arg;
	zio_task *t[8];
	for (int i = 0; i < 8; i++)
		cr_assert_eq(zio_spawn(NULL, &t[i], i % 2 ? write_fresh_eventfds : make_and_close_sockets,
				       NULL, NULL), 0);
	zio_sleep(ZIO_MSEC(700));
	atomic_store(&fresh_stop, true);
	for (int i = 0; i < 8; i++)
		zio_task_join(t[i], NULL);
	cr_assert_gt(atomic_load(&fresh_writes), 1000);
	cr_assert_eq(atomic_load(&fresh_ebadf), 0, "-EBADF in %d of %d writes to a fresh eventfd",
		     atomic_load(&fresh_ebadf), atomic_load(&fresh_writes));
	return NULL;
}

Test(io, a_raw_file_under_a_number_being_closed_works, .timeout = 30)
{
	run_in_runtime(2, raw_files_beside_closes, NULL);
}
#endif

/* ECANCELED as a result of the call itself, not of a zio_close(): a timerfd
 * armed with TFD_TIMER_CANCEL_ON_SET says so once the realtime clock is
 * set. On io_uring it was taken for a close of a dup and the read was
 * submitted again, so the answer was lost and the read waited on. The clock
 * is set to what it reads (a few microseconds back). */
static void *set_clock_soon(void *arg)
{
	(void)arg;
	zio_sleep(ZIO_MSEC(50));
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	cr_assert_eq(clock_settime(CLOCK_REALTIME, &now), 0,
		     "clock_settime: %s (this test needs CAP_SYS_TIME)", strerror(errno));
	return NULL;
}

static void *timerfd_cancel_task(void *arg)
{
	(void)arg;
	int t = timerfd_create(CLOCK_REALTIME, TFD_CLOEXEC);
	cr_assert_geq(t, 0);
	struct itimerspec its = { 0 };
	clock_gettime(CLOCK_REALTIME, &its.it_value);
	its.it_value.tv_sec += 3600;
	cr_assert_eq(timerfd_settime(t, TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET, &its, NULL), 0);
	zio_task *setter;
	cr_assert_eq(zio_spawn(NULL, &setter, set_clock_soon, NULL, NULL), 0);
	uint64_t ticks;
	ssize_t r = zio_read(t, &ticks, sizeof(ticks), zio_deadline_after(ZIO_SEC(5)));
	cr_assert_eq(r, -ECANCELED, "read: %zd", r);
	zio_task_join(setter, NULL);
	cr_assert_eq(zio_close(t), 0);
	return NULL;
}

Test(io, timerfd_cancel_on_set_is_a_result, .timeout = 20)
{
	run_in_runtime(1, timerfd_cancel_task, NULL);
}

/* A runtime run from one thread and then another: fine on the readiness
 * backends; on io_uring, whose executor-0 ring takes submissions from one
 * thread, a clear message and an abort (it was "poll failed: Invalid
 * argument", or a bad fd). */
static void *wait_a_little(void *arg)
{
	(void)arg;
	int p[2];
	cr_assert_eq(zio_pipe(p), 0);
	char c;
	zio_read(p[0], &c, 1, zio_deadline_after(ZIO_MSEC(1)));
	zio_close(p[0]);
	zio_close(p[1]);
	return NULL;
}

static void *run_once(void *rt)
{
	zio_runtime_run(rt, wait_a_little, NULL, NULL);
	return NULL;
}

/* Forks a child whose stderr is a pipe to the test: 0 in the child, else
 * its pid, with *err the pipe's read end. */
static pid_t fork_with_stderr(int *err)
{
	int p[2];
	cr_assert_eq(pipe(p), 0);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		dup2(p[1], 2);
		close(p[0]);
		close(p[1]);
		return 0;
	}
	close(p[1]);
	*err = p[0];
	return pid;
}

/* What the child of fork_with_stderr() wrote on stderr until its end, in
 * text; then it is reaped: its wait status. */
static int reap_with_stderr(pid_t pid, int err, char *text, size_t size)
{
	size_t n = 0;
	ssize_t r;
	while (n + 1 < size && (r = read(err, text + n, size - 1 - n)) > 0)
		n += (size_t)r;
	text[n] = 0;
	close(err);
	int st;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	return st;
}

Test(io, runtime_driven_from_two_threads, .timeout = 20)
{
	int err;
	pid_t pid = fork_with_stderr(&err);
	if (pid == 0) {
		zio_runtime *rt;
		if (zio_runtime_create(&rt, &(struct zio_runtime_options){ .executors = 1 }))
			_exit(3);
		pthread_t t;
		pthread_create(&t, NULL, run_once, rt);
		pthread_join(t, NULL);
		run_once(rt); /* another thread */
		zio_runtime_destroy(rt);
		_exit(0); /* also io_uring on a kernel without SINGLE_ISSUER */
	}
	char msg[4096];
	int st = reap_with_stderr(pid, err, msg, sizeof(msg));
	if (WIFEXITED(st)) {
		cr_assert_eq(WEXITSTATUS(st), 0, "exit %d: %s", WEXITSTATUS(st), msg);
	} else {
		cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT, "status %#x: %s", st, msg);
		cr_assert(strstr(msg, "executor 0 is driven by one thread"), "message: %s", msg);
	}
}

/* Bad input, the edges of the op layer. */
static void *bad_input(void *arg)
{
	(void)arg;
	char b[4];
	/* Past the fd table: a number no file can have. */
	cr_assert_eq(zio_read(100000000, b, 1, 0), -EBADF);
	cr_assert_eq(zio_write(100000000, b, 1, ZIO_FOREVER), -EBADF);
	cr_assert_eq(zio_wait_fd(100000000, POLLIN, ZIO_FOREVER), -EBADF);
	cr_assert_eq(zio_wait_fd(100000000, POLLIN | POLLOUT, ZIO_FOREVER), -EBADF);
	int p[2];
	cr_assert_eq(zio_pipe(p), 0);
	struct iovec iov = { b, 1 };
	cr_assert_eq(zio_writev_all(p[1], NULL, 1, ZIO_FOREVER), -EFAULT);
	cr_assert_eq(zio_writev_all(p[1], &iov, -1, ZIO_FOREVER), -EINVAL);
	cr_assert_eq(zio_writev_all(p[1], &iov, 0, ZIO_FOREVER), 0);
	zio_close(p[0]);
	zio_close(p[1]);
	return NULL;
}

Test(io, bad_input, .timeout = 10)
{
	run_in_runtime(1, bad_input, NULL);
}

/* Try-once on a regular file: it never has to wait, so it reads. */
static void *regular_try_once(void *arg)
{
	(void)arg;
	int fd = zio_file_open("/proc/self/exe", O_RDONLY, 0, ZIO_FOREVER);
	cr_assert_geq(fd, 0);
	char b[16];
	/* Opening a FIFO with no writer would wait for one, which try-once
	 * does not: -EAGAIN (io_uring's open does not wait and gives the fd). */
	char fifo[64];
	snprintf(fifo, sizeof(fifo), "/tmp/zio-fifo-%d", getpid());
	unlink(fifo);
	cr_assert_eq(mkfifo(fifo, 0600), 0);
	int ff = zio_file_open(fifo, O_RDONLY, 0, 0);
	cr_assert(ff == -EAGAIN || ff >= 0, "open: %d", ff);
	if (ff >= 0)
		zio_close(ff);
	unlink(fifo);
	for (int i = 0; i < 50; i++) {
		cr_assert_eq(zio_read(fd, b, sizeof(b), 0), (ssize_t)sizeof(b), "round %d", i);
		cr_assert_eq(zio_file_pread(fd, b, 4, 0, 0), 4);
		cr_assert_eq(memcmp(b, "\177ELF", 4), 0);
	}
	zio_close(fd);
	return NULL;
}

Test(io, try_once_regular_file, .timeout = 10)
{
	run_in_runtime(1, regular_try_once, NULL);
}

/* ------------------------------------------------ outside the runtime */

static void *thread_writer(void *arg)
{
	int fd = *(int *)arg;
	zio_sleep(ZIO_MSEC(10)); /* a plain thread: really sleeps */
	zio_write(fd, "hey", 3, ZIO_FOREVER);
	return NULL;
}

Test(io, plain_thread, .timeout = 10)
{
	int p[2];
	cr_assert_eq(zio_pipe(p), 0);
	char buf[8];
	cr_assert_eq(zio_read(p[0], buf, 8, 0), -EAGAIN);
	cr_assert_eq(zio_read(p[0], buf, 8, zio_deadline_after(ZIO_MSEC(10))), -ETIMEDOUT);
	pthread_t th;
	pthread_create(&th, NULL, thread_writer, &p[1]);
	cr_assert_eq(zio_read(p[0], buf, 8, ZIO_FOREVER), 3);
	pthread_join(th, NULL);
	cr_assert_eq(zio_wait_fd(p[1], POLLOUT, ZIO_FOREVER) & POLLOUT, POLLOUT);
	zio_close(p[0]);
	zio_close(p[1]);
}

/* ------------------------------------------------------- blocking pool */

static long slow_add(void *arg)
{
	usleep(20000);
	return (long)(intptr_t)arg + 1;
}

static void *ticker(void *arg)
{
	int *ticks = arg;
	for (int i = 0; i < 5; i++) {
		zio_sleep(ZIO_MSEC(1));
		(*ticks)++;
	}
	return NULL;
}

static void *blocking_call_task(void *arg)
{
	int ticks = 0;
	zio_task *t;
	zio_spawn(NULL, &t, ticker, &ticks, NULL);
	/* The executor keeps running the ticker while the call blocks. */
	cr_assert_eq(zio_blocking_call(slow_add, (void *)41, ZIO_FOREVER), 42);
	cr_assert_geq(ticks, 3);
	zio_task_join(t, NULL);
	cr_assert_eq(zio_blocking_call(NULL, NULL, ZIO_FOREVER), -EINVAL);
	return NULL;
}

Test(io, blocking_call, .timeout = 10)
{
	run_in_runtime(1, blocking_call_task, NULL);
	cr_assert_eq(zio_blocking_call(slow_add, (void *)1, ZIO_FOREVER), 2); /* plain thread */
}

/* A fault in a job goes to the application's handler, as on any thread of
 * its own: pool threads blocked SIGBUS with the rest, and a blocked fault
 * kills the process. The job reads a mapped file past its end, as
 * mmap-based readers may, and the handler turns that into -EIO. */
static __thread sigjmp_buf fault_jump;

static void on_sigbus(int sig)
{
	(void)sig;
	siglongjmp(fault_jump, 1);
}

static long read_past_mapped_end(void *arg)
{
	volatile const char *p = arg;
	if (sigsetjmp(fault_jump, 1))
		return -EIO;
	return p[0];
}

static void *fault_in_job_task(void *arg)
{
	(void)arg;
	char path[] = "/tmp/zio-test-sigbus-XXXXXX";
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	unlink(path);
	void *map = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0); /* an empty file */
	cr_assert_neq(map, MAP_FAILED);
	close(fd);
	struct sigaction sa = { .sa_handler = on_sigbus }, old;
	cr_assert_eq(sigaction(SIGBUS, &sa, &old), 0);
	cr_assert_eq(zio_blocking_call(read_past_mapped_end, map, ZIO_FOREVER), -EIO);
	sigaction(SIGBUS, &old, NULL);
	munmap(map, 4096);
	return NULL;
}

Test(io, blocking_call_fault_reaches_the_handler, .timeout = 10)
{
	run_in_runtime(1, fault_in_job_task, NULL);
}

/* A job queued while the pool's only thread is idle but already signalled
 * for another job must get a thread of its own: here the first job waits
 * for the second, which deadlocked (until the first gave up) when both went
 * to the one idle thread. */
static sem_t handoff;

static long wait_for_post(void *arg)
{
	(void)arg;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 5;
	return sem_timedwait(&handoff, &ts) == 0 ? 1 : -errno;
}

static long post(void *arg)
{
	(void)arg;
	sem_post(&handoff);
	return 0;
}

static long nothing(void *arg)
{
	(void)arg;
	return 0;
}

static void *call_task(void *fn)
{
	return (void *)(intptr_t)zio_blocking_call((long (*)(void *))fn, NULL, ZIO_FOREVER);
}

static void *pool_no_queueing_task(void *arg)
{
	(void)arg;
	for (int round = 0; round < 5; round++) {
		sem_init(&handoff, 0, 0);
		/* One pool thread, idle and asleep: the others have timed out
		 * (ZIO_BLOCKING_IDLE_MS below), this one just ran a job. */
		zio_sleep(ZIO_MSEC(300));
		cr_assert_eq(zio_blocking_call(nothing, NULL, ZIO_FOREVER), 0);
		zio_sleep(ZIO_MSEC(20));
		zio_task *a, *b;
		cr_assert_eq(zio_spawn(NULL, &a, call_task, (void *)wait_for_post, NULL), 0);
		cr_assert_eq(zio_spawn(NULL, &b, call_task, (void *)post, NULL), 0);
		void *ra, *rb;
		cr_assert_eq(zio_task_join(a, &ra), 0);
		cr_assert_eq(zio_task_join(b, &rb), 0);
		cr_assert_eq((intptr_t)ra, 1, "round %d: the waiting job never saw the post (%ld)", round,
			     (long)(intptr_t)ra);
		cr_assert_eq((intptr_t)rb, 0);
		sem_destroy(&handoff);
	}
	return NULL;
}

Test(io, blocking_pool_starts_a_thread_per_queued_job, .timeout = 30)
{
	setenv("ZIO_BLOCKING_IDLE_MS", "100", 1);
	run_in_runtime(1, pool_no_queueing_task, NULL);
}

/* A detached job (a DNS lookup) whose waiter timed out keeps its thread
 * until it finishes, for nobody: it no longer counts against the pool's
 * limit. With lookups the resolver never answered, every pool thread was
 * taken and file work and zio_blocking_call() waited for the resolver's
 * timeouts. */
static atomic_int hung_release;

static void hung_run(struct zio__job *j)
{
	(void)j;
	while (!atomic_load(&hung_release))
		usleep(1000);
}

static atomic_int hung_freed;

static void hung_free(struct zio__job *j)
{
	free(j);
	atomic_fetch_add(&hung_freed, 1);
}

static atomic_int jobs_running, jobs_running_max;

static long counted_job(void *arg)
{
	(void)arg;
	int now = atomic_fetch_add(&jobs_running, 1) + 1;
	int max = atomic_load(&jobs_running_max);
	while (now > max && !atomic_compare_exchange_weak(&jobs_running_max, &max, now))
		;
	usleep(30000);
	atomic_fetch_sub(&jobs_running, 1);
	return 0;
}

static void *counted_call_task(void *arg)
{
	return (void *)zio_blocking_call(counted_job, arg, ZIO_FOREVER);
}

static long answer(void *arg)
{
	(void)arg;
	return 42;
}

static void *abandoned_jobs_task(void *arg)
{
	(void)arg;
	for (int i = 0; i < 2; i++) {
		struct zio__job *j = calloc(1, sizeof(*j));
		cr_assert_not_null(j);
		j->run = hung_run;
		j->release = hung_free;
		cr_assert_eq(zio__blocking_wait_detached(j, zio_deadline_after(ZIO_MSEC(100))), -ETIMEDOUT);
		zio__job_unref(j); /* the waiter's reference, as dns.c drops it */
	}
	int64_t t0 = zio_now();
	cr_assert_eq(zio_blocking_call(answer, NULL, zio_deadline_after(ZIO_SEC(3))), 42);
	cr_assert_lt(zio_now() - t0, ZIO_SEC(1));
	/* Once they have ended, the limit is the limit again: the threads
	 * started beside them went on taking jobs. */
	atomic_store(&hung_release, 1);
	while (atomic_load(&hung_freed) < 2)
		zio_sleep(ZIO_MSEC(1));
	spawn_join_all(6, counted_call_task, NULL);
	cr_assert_leq(atomic_load(&jobs_running_max), 2, "%d jobs ran at once",
		      atomic_load(&jobs_running_max));
	return NULL;
}

Test(io, abandoned_lookups_leave_the_pool_room, .timeout = 20)
{
	setenv("ZIO_BLOCKING_THREADS", "2", 1);
	run_in_runtime(1, abandoned_jobs_task, NULL);
}

/* Tasks in the run queue (spawned, yielding) run while hundreds of tasks
 * keep waking each other through I/O: each I/O wake queues its task on
 * the executor's pinned list, which was always served first and, with
 * that many tasks, never emptied. */
#define CHURNERS 200
static int churn_sv[2];
static atomic_int churn_stop, churn_started;
static atomic_long churn_yields;

static void *churner(void *arg)
{
	intptr_t i = (intptr_t)arg;
	char buf[512];
	while (!atomic_load(&churn_stop)) {
		if (i & 1)
			zio_write(churn_sv[0], buf, 1 + (size_t)i % 500, zio_deadline_after(ZIO_SEC(5)));
		else
			zio_read(churn_sv[1], buf, 1 + (size_t)i % 500, zio_deadline_after(ZIO_SEC(5)));
	}
	return NULL;
}

static void *churn_yielder(void *arg)
{
	(void)arg;
	while (!atomic_load(&churn_stop)) {
		zio_yield();
		atomic_fetch_add(&churn_yields, 1);
	}
	return NULL;
}

static void *churn_late(void *arg)
{
	(void)arg;
	atomic_store(&churn_started, 1);
	return NULL;
}

static void *run_queue_under_io_churn(void *arg)
{
	(void)arg;
	cr_assert_eq(zio_socketpair(AF_UNIX, SOCK_STREAM, churn_sv), 0);
	static zio_task *t[CHURNERS];
	for (int i = 0; i < CHURNERS; i++)
		cr_assert_eq(zio_spawn(NULL, &t[i], churner, (void *)(intptr_t)i, NULL), 0);
	zio_task *y, *late;
	cr_assert_eq(zio_spawn(NULL, &y, churn_yielder, NULL, NULL), 0);
	zio_sleep(ZIO_MSEC(100));
	cr_assert_eq(zio_spawn(NULL, &late, churn_late, NULL, NULL), 0);
	int64_t until = zio_deadline_after(ZIO_SEC(1));
	/* (Both: the yielder's count moves only once it is back from its
	 * first yield, which may come after the late task has run.) */
	while ((!atomic_load(&churn_started) || atomic_load(&churn_yields) == 0) && zio_now() < until)
		zio_sleep(ZIO_MSEC(10));
	bool started = atomic_load(&churn_started);
	long yields = atomic_load(&churn_yields);
	atomic_store(&churn_stop, 1);
	zio_shutdown(churn_sv[0], SHUT_RDWR);
	for (int i = 0; i < CHURNERS; i++)
		zio_task_join(t[i], NULL);
	zio_task_join(y, NULL);
	zio_task_join(late, NULL);
	zio_close(churn_sv[0]);
	zio_close(churn_sv[1]);
	cr_assert(started, "a task spawned during the churn never started");
	cr_assert_gt(yields, 0, "the yielding task never ran");
	return NULL;
}

Test(io, run_queue_is_served_under_io_churn, .timeout = 30)
{
	run_in_runtime(1, run_queue_under_io_churn, NULL);
}

/* ---------------------------------------------------- backend fallback */

static void *backend_name(void *arg)
{
	return (void *)zio_runtime_backend(zio_runtime_current());
}

Test(io, uring_probe_failure_falls_back, .timeout = 10)
{
	/* The probe is forced to fail: the automatic choice must fall back to
	 * epoll, and asking for io_uring by name must fail cleanly. */
	setenv("ZIO_URING_PROBE_FAIL", "1", 1);
	unsetenv("ZIO_BACKEND");
	zio_runtime *rt;
	cr_assert_eq(zio_runtime_create(&rt, NULL), 0);
	const char *name = zio_runtime_run(rt, backend_name, NULL, NULL) == 0
				   ? zio_runtime_backend(rt) : NULL;
	cr_assert_str_eq(name, "epoll");
	cr_assert_eq(zio_runtime_run(rt, pipe_roundtrip, NULL, NULL), 0);
	zio_runtime_destroy(rt);
	struct zio_runtime_options o = { .backend = "uring" };
	int err = zio_runtime_create(&rt, &o);
	cr_assert_neq(err, 0);
}

/* The backend a fresh process's automatic choice gets (io_uring here,
 * epoll under qemu), learnt in a child: the caller's own first runtime
 * would make the choice for its process. */
static void fresh_backend(char *out, size_t size)
{
	int name[2];
	cr_assert_eq(pipe(name), 0);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		struct zio_runtime_options automatic = { .backend = "auto" };
		zio_runtime *rt;
		unsetenv("ZIO_URING_PROBE_FAIL");
		if (zio_runtime_create(&rt, &automatic) != 0)
			_exit(1);
		const char *b = zio_runtime_backend(rt);
		_exit(write(name[1], b, strlen(b)) == (ssize_t)strlen(b) ? 0 : 1);
	}
	int st;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	memset(out, 0, size);
	cr_assert_gt(read(name[0], out, size - 1), 0);
	close(name[0]);
	close(name[1]);
}

/* io_uring refused for want of memory (a memlock limit), which may pass:
 * every runtime asks again, and gets io_uring once it works, but the
 * refusal is said once, not once per runtime. In a child, whose stderr
 * the test reads. */
Test(io, uring_refusal_that_may_pass_is_said_once, .timeout = 20)
{
	char expected[16];
	fresh_backend(expected, sizeof(expected));
	int err;
	pid_t pid = fork_with_stderr(&err);
	if (pid == 0) {
		setenv("ZIO_URING_PROBE_FAIL", "ENOMEM", 1);
		unsetenv("ZIO_BACKEND");
		zio_runtime *rt;
		for (int i = 0; i < 3; i++) {
			if (zio_runtime_create(&rt, NULL) != 0)
				_exit(2);
			bool epoll = strcmp(zio_runtime_backend(rt), "epoll") == 0;
			zio_runtime_destroy(rt);
			if (!epoll)
				_exit(3);
		}
		setenv("ZIO_URING_PROBE_FAIL", "0", 1);
		if (zio_runtime_create(&rt, NULL) != 0)
			_exit(4);
		bool fresh = strcmp(zio_runtime_backend(rt), expected) == 0;
		zio_runtime_destroy(rt);
		_exit(fresh ? 0 : 5);
	}
	char text[4096];
	int st = reap_with_stderr(pid, err, text, sizeof(text));
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x: %s", st, text);
	const char *said = "backend uring unavailable (Cannot allocate memory, asked again for "
			   "each runtime), trying epoll";
	const char *first = strstr(text, said);
	cr_assert_not_null(first, "%s", text);
	/* (Under qemu, without io_uring, the last runtime's refusal is
	 * another one, and said.) */
	cr_assert_null(strstr(first + strlen(said), "Cannot allocate"), "said more than once: %s", text);
}

Test(io, unknown_backend_is_an_error, .timeout = 10)
{
	zio_runtime *rt;
	struct zio_runtime_options o = { .backend = "kqueue9" };
	cr_assert_eq(zio_runtime_create(&rt, &o), -EINVAL);
}

/* A child of fork() that runs a runtime of its own gets a blocking pool of
 * its own: the parent's threads, counted in the inherited pool, are gone.
 * (Not under ThreadSanitizer, which does not support a child of a
 * multi-threaded process starting threads: it kills it.) */
#if !defined(__SANITIZE_THREAD__)
static long add_one(void *arg)
{
	return (long)(intptr_t)arg + 1;
}

static void *use_the_pool(void *arg)
{
	(void)arg;
	long r = zio_blocking_call(add_one, (void *)41, zio_deadline_after(ZIO_SEC(5)));
	return (void *)(intptr_t)r;
}

Test(io, blocking_pool_after_fork, .timeout = 30)
{
	/* The parent's pool has threads (idle ones stay for seconds). */
	zio_runtime *rt;
	cr_assert_eq(zio_runtime_create(&rt, NULL), 0);
	void *r;
	cr_assert_eq(zio_runtime_run(rt, use_the_pool, NULL, &r), 0);
	cr_assert_eq((intptr_t)r, 42);
	zio_runtime_destroy(rt);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		if (zio_runtime_create(&rt, NULL) || zio_runtime_run(rt, use_the_pool, NULL, &r))
			_exit(2);
		zio_runtime_destroy(rt);
		_exit((intptr_t)r == 42 ? 0 : 1);
	}
	int st;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the child's pool call failed (status %d)", st);
}

/* A task that forks: in the child it is a plain thread, whose zio calls
 * block the thread and leave the parent's loops alone (it suspended on the
 * parent's runtime: io_uring refused, and zio stopped). */
static void *fork_and_sleep_in_the_child(void *arg)
{
	int *err = arg;
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		bool slept = zio_sleep(ZIO_MSEC(1)) == 0;
		_exit(slept && zio_write_all(err[1], "ok", 2, ZIO_FOREVER) == 2 ? 0 : 1);
	}
	int st;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	return (void *)(intptr_t)st;
}

static void *nap(void *arg)
{
	(void)arg;
	zio_sleep(ZIO_MSEC(1));
	return NULL;
}

/* The child of a program that ran a runtime runs that runtime: io_uring
 * refuses the child's use of the parent's ring, and zio stops saying why
 * (it said "poll failed: Invalid argument"). epoll and poll may carry on
 * there by chance; the child's exit is then its own. (Not under
 * ThreadSanitizer either: it reports the child's fiber switches.) */
Test(io, runtime_used_in_a_child_of_fork, .timeout = 30)
{
	int err[2];
	cr_assert_eq(pipe(err), 0);
	zio_runtime *rt;
	cr_assert_eq(zio_runtime_create(&rt, NULL), 0);
	bool uring = strcmp(zio_runtime_backend(rt), "uring") == 0;
	void *res;
	cr_assert_eq(zio_runtime_run(rt, fork_and_sleep_in_the_child, err, &res), 0);
	int st = (int)(intptr_t)res;
	char said[512] = "";
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the forked task's child: status %d", st);
	cr_assert_eq(read(err[0], said, 2), 2);
	cr_assert_eq(memcmp(said, "ok", 2), 0);

	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		dup2(err[1], STDERR_FILENO);
		zio_runtime_run(rt, nap, NULL, NULL);
		_exit(0);
	}
	close(err[1]);
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	zio_runtime_destroy(rt);
	ssize_t n = read(err[0], said, sizeof(said) - 1);
	said[n > 0 ? n : 0] = 0;
	close(err[0]);
	if (uring) {
		cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT, "child status %d", st);
		cr_assert_not_null(strstr(said, "child of fork()"), "the child said: %s", said);
	} else {
		cr_assert(WIFEXITED(st) || strstr(said, "child of fork()"), "child status %d: %s", st,
			  said);
	}
}
#endif

/* ------------------------------------------- syscalls a sandbox refuses */

#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

/* In this (child) process, syscall nr fails with EPERM from now on, as
 * under a container's seccomp profile that predates it. */
static bool deny_syscall(long nr)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)nr, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = sizeof(f) / sizeof(f[0]), .filter = f };
	return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 &&
	       prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) == 0;
}

static void *sleep_and_pipe(void *arg)
{
	(void)arg;
	int p[2];
	char c;
	if (zio_sleep(ZIO_MSEC(2)) || zio_pipe(p) || zio_write(p[1], "x", 1, ZIO_FOREVER) != 1 ||
	    zio_read(p[0], &c, 1, zio_deadline_after(ZIO_SEC(5))) != 1)
		return (void *)1;
	zio_close(p[0]);
	zio_close(p[1]);
	return NULL;
}

/* Runs sleep_and_pipe in a child with nr refused and backend asked for
 * (NULL: the default probe); the exit status, and the backend it got. */
static int run_denied(long nr, const char *backend, char *got, size_t got_size)
{
	int pfd[2];
	cr_assert_eq(pipe(pfd), 0);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		close(pfd[0]);
		if (backend)
			setenv("ZIO_BACKEND", backend, 1);
		else
			unsetenv("ZIO_BACKEND");
		if (!deny_syscall(nr))
			_exit(3);
		zio_runtime *rt;
		void *r = (void *)1;
		if (zio_runtime_create(&rt, NULL))
			_exit(2);
		const char *name = zio_runtime_backend(rt);
		(void)!write(pfd[1], name, strlen(name));
		zio_runtime_run(rt, sleep_and_pipe, NULL, &r);
		zio_runtime_destroy(rt);
		_exit(r ? 1 : 0);
	}
	close(pfd[1]);
	ssize_t n = read(pfd[0], got, got_size - 1);
	got[n > 0 ? n : 0] = 0;
	close(pfd[0]);
	int st;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

Test(io, sandbox_refusing_new_syscalls, .timeout = 30)
{
	char got[32];
	int st;
#ifdef __NR_epoll_pwait2
	/* epoll_pwait2 refused: epoll_wait instead (it panicked). */
	st = run_denied(__NR_epoll_pwait2, "epoll", got, sizeof(got));
	cr_assert_eq(st, 0, "status %d on epoll without epoll_pwait2", st);
	cr_assert_str_eq(got, "epoll");
#endif
	/* io_uring refused: the probe falls back to epoll. */
	st = run_denied(__NR_io_uring_setup, NULL, got, sizeof(got));
	cr_assert_eq(st, 0, "status %d without io_uring", st);
	cr_assert_str_eq(got, "epoll");
}

/* Out of descriptors when the process makes its first runtime: that
 * creation fails with -EMFILE, and once descriptors are free the next one
 * gets the backend a fresh process gets (io_uring's probe took the
 * shortage for the kernel's answer, for good: the process stayed on
 * epoll or poll, with a warning that said "Function not implemented"). */
Test(io, out_of_descriptors_at_the_first_runtime_is_not_for_good, .timeout = 20)
{
	struct zio_runtime_options automatic = { .backend = "auto" };
	char fresh[16];
	fresh_backend(fresh, sizeof(fresh));

	/* No runtime yet in this process (each test runs in its own). */
	struct rlimit old = no_descriptor_free();
	zio_runtime *rt;
	int r = zio_runtime_create(&rt, &automatic);
	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
	cr_assert_eq(r, -EMFILE, "with no descriptor free: %d", r);
	cr_assert_eq(zio_runtime_create(&rt, &automatic), 0);
	cr_assert_str_eq(zio_runtime_backend(rt), fresh);
	zio_runtime_destroy(rt);
}

/* No pool thread can be started (RLIMIT_NPROC for an unprivileged user):
 * a plain thread's pool work (a DNS lookup) runs on the thread (it said
 * -EAGAIN); a task's fails with -EAGAIN at once, without running fn on
 * its executor (where it could wait for good). In a child that becomes
 * nobody, whom RLIMIT_NPROC binds (root it does not). */
static long doubled(void *arg)
{
	return 2 * (long)(intptr_t)arg;
}

static void *blocking_call_without_threads(void *arg)
{
	(void)arg;
	long r = zio_blocking_call(doubled, (void *)21, ZIO_FOREVER);
	return (void *)(intptr_t)(r == -EAGAIN ? 0 : 3);
}

Test(io, blocking_pool_without_threads, .timeout = 20)
{
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		zio_runtime *rt;
		if (zio_runtime_create(&rt, &(struct zio_runtime_options){ .executors = 1 }) != 0)
			_exit(4);
		struct rlimit one = { 1, 1 };
		if (setgid(65534) != 0 || setuid(65534) != 0 || setrlimit(RLIMIT_NPROC, &one) != 0)
			_exit(5);
		zio_addr a;
		if (zio_dns_resolve("localhost", 80, AF_UNSPEC, &a, 1, ZIO_FOREVER) < 1)
			_exit(2);
		void *res;
		if (zio_runtime_run(rt, blocking_call_without_threads, NULL, &res) != 0)
			_exit(6);
		_exit((int)(intptr_t)res);
	}
	int st;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st), "the child was killed by signal %d", WTERMSIG(st));
	cr_assert_eq(WEXITSTATUS(st), 0, "child exit %d (2: the lookup failed; 3: the task's call did "
		     "not fail; 5: could not become nobody)",
		     WEXITSTATUS(st));
}

/* A huge $ZIO_BLOCKING_IDLE_MS is refused with a warning: the idle
 * threads' wake-up time overflowed, their timed wait failed at once, and
 * they spun holding the pool's lock (every later pool call hung). */
static void *pool_calls_go_on(void *arg)
{
	(void)arg;
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(zio_blocking_call(nothing, NULL, zio_deadline_after(ZIO_SEC(5))), 0);
		zio_sleep(ZIO_MSEC(20)); /* the thread goes back to its idle wait */
	}
	return NULL;
}

Test(io, a_huge_pool_idle_time_is_refused, .timeout = 20)
{
	setenv("ZIO_BLOCKING_IDLE_MS", "9300000000000", 1);
	run_in_runtime(1, pool_calls_go_on, NULL);
}

/* A child forked by a pool job is no pool thread: its runtime's lookups
 * go to a pool of its own (a thread starts for one), not inline on its
 * executor, where no deadline could cut them short. (Not under
 * ThreadSanitizer, which kills a child of a multi-threaded process that
 * starts threads.) */
#if !defined(__SANITIZE_THREAD__)
static int threads_now(void)
{
	int n = 0;
	DIR *d = opendir("/proc/self/task");
	cr_assert_not_null(d);
	struct dirent *e;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

static void *lookup_in_the_child(void *arg)
{
	int *started = arg;
	int before = threads_now();
	zio_addr a;
	int r = zio_dns_resolve("localhost", 80, AF_UNSPEC, &a, 1, zio_deadline_after(ZIO_SEC(10)));
	*started = r >= 1 ? threads_now() - before : -1;
	return NULL;
}

static long fork_in_a_job(void *arg)
{
	(void)arg;
	pid_t pid = fork();
	if (pid == 0) {
		int started = -2;
		zio_runtime *rt;
		if (zio_runtime_create(&rt, &(struct zio_runtime_options){ .executors = 1 }) != 0 ||
		    zio_runtime_run(rt, lookup_in_the_child, &started, NULL) != 0)
			_exit(3);
		zio_runtime_destroy(rt);
		_exit(started == 1 ? 0 : 10 + started);
	}
	int st;
	if (pid < 0 || waitpid(pid, &st, 0) != pid)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 100 + WTERMSIG(st);
}

static void *fork_from_a_pool_job(void *arg)
{
	(void)arg;
	long r = zio_blocking_call(fork_in_a_job, NULL, ZIO_FOREVER);
	cr_assert_eq(r, 0, "the child's lookup: %ld (10: ran inline, no pool thread)", r);
	return NULL;
}

Test(io, a_child_of_a_pool_job_has_a_pool_of_its_own, .timeout = 30)
{
	run_in_runtime(1, fork_from_a_pool_job, NULL);
}
#endif

/* A pipe zio did not create is never read or written in a way that can
 * block, whatever its O_NONBLOCK says now: its sharers may clear the flag
 * after zio has seen it set (a child sharing the pipe or tty), and a read
 * then held the executor past the deadline, until a byte came. A tty,
 * which has no RWF_NOWAIT, is polled first. */
static void *foreign_flags_change(void *arg)
{
	(void)arg;
	int p[2];
	cr_assert_eq(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
	char c;
	cr_assert_eq(zio_read(p[0], &c, 1, zio_deadline_after(ZIO_MSEC(20))), -ETIMEDOUT);
	cr_assert_eq(fcntl(p[0], F_SETFL, 0), 0); /* a sharer makes it blocking */
	cr_assert_eq(fcntl(p[1], F_SETFL, 0), 0);
	int64_t t0 = zio_now();
	cr_assert_eq(zio_read(p[0], &c, 1, zio_deadline_after(ZIO_MSEC(100))), -ETIMEDOUT);
	cr_assert_lt(zio_now() - t0, ZIO_SEC(2));
	/* A big write takes what fits and comes back; the next waits for
	 * room with its deadline. */
	static char big[1 << 20];
	ssize_t w = zio_write(p[1], big, sizeof(big), zio_deadline_after(ZIO_SEC(2)));
	cr_assert(w > 0 && w < (ssize_t)sizeof(big), "write: %zd", w);
	t0 = zio_now();
	cr_assert_eq(zio_write(p[1], big, sizeof(big), zio_deadline_after(ZIO_MSEC(100))), -ETIMEDOUT);
	cr_assert_lt(zio_now() - t0, ZIO_SEC(2));
	cr_assert_eq(zio_read(p[0], big, sizeof(big), zio_deadline_after(ZIO_SEC(1))), w);
	zio_close(p[0]);
	zio_close(p[1]);

	int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	cr_assert_geq(m, 0);
	cr_assert_eq(grantpt(m), 0);
	cr_assert_eq(unlockpt(m), 0);
	int s = open(ptsname(m), O_RDWR | O_NOCTTY | O_CLOEXEC); /* blocking */
	cr_assert_geq(s, 0);
	struct termios raw;
	cr_assert_eq(tcgetattr(s, &raw), 0);
	cfmakeraw(&raw);
	cr_assert_eq(tcsetattr(s, TCSANOW, &raw), 0);
	t0 = zio_now();
	cr_assert_eq(zio_read(s, &c, 1, zio_deadline_after(ZIO_MSEC(100))), -ETIMEDOUT);
	cr_assert_lt(zio_now() - t0, ZIO_SEC(2));
	cr_assert_eq(write(m, "t", 1), 1);
	cr_assert_eq(zio_read(s, &c, 1, zio_deadline_after(ZIO_SEC(2))), 1);
	cr_assert_eq(c, 't');
	zio_close(s);
	zio_close(m);

	/* A socket likewise (MSG_DONTWAIT); and a connect of one still
	 * non-blocking is waited for here, not on the pool. */
	int sp[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sp), 0);
	cr_assert_eq(zio_read(sp[0], &c, 1, zio_deadline_after(ZIO_MSEC(20))), -ETIMEDOUT);
	cr_assert_eq(fcntl(sp[0], F_SETFL, 0), 0);
	t0 = zio_now();
	cr_assert_eq(zio_read(sp[0], &c, 1, zio_deadline_after(ZIO_MSEC(100))), -ETIMEDOUT);
	cr_assert_lt(zio_now() - t0, ZIO_SEC(2));
	zio_close(sp[0]);
	zio_close(sp[1]);
	zio_addr a;
	cr_assert_eq(zio_addr_parse(&a, "127.0.0.1:0"), 0);
	int lfd = zio_tcp_listen(&a, NULL);
	cr_assert_geq(lfd, 0);
	cr_assert_eq(zio_local_addr(lfd, &a), 0);
	int c2 = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	cr_assert_geq(c2, 0);
	cr_assert_eq(zio_connect(c2, &a, zio_deadline_after(ZIO_SEC(5))), 0);
	zio_close(c2);
	zio_close(lfd);
	return NULL;
}

Test(io, a_foreign_pipe_made_blocking_later_never_blocks, .timeout = 20)
{
	run_in_runtime(1, foreign_flags_change, NULL);
}

/* RLIMIT_NOFILE lowered below the fds waited on (the descriptors stay
 * open): every wait still ends when its byte comes. The poll backend's
 * ppoll() refuses more pollfds than the limit, and zio aborted; it now
 * polls them in turns (and with room for none, every wait tries again
 * every 10 ms). */
#define LOW_LIMIT_PIPES 64
static void *read_a_byte_of(void *arg)
{
	char c;
	return (void *)(intptr_t)zio_read((int)(intptr_t)arg, &c, 1, zio_deadline_after(ZIO_SEC(5)));
}

static void *waits_past_a_lowered_fd_limit(void *arg)
{
	(void)arg;
	static int p[LOW_LIMIT_PIPES][2];
	for (int i = 0; i < LOW_LIMIT_PIPES; i++)
		cr_assert_eq(zio_pipe(p[i]), 0);
	struct rlimit old;
	cr_assert_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
	rlim_t limits[] = { 32, 1, 0 };
	for (int k = 0; k < 3; k++) {
		zio_task *t[LOW_LIMIT_PIPES];
		for (int i = 0; i < LOW_LIMIT_PIPES; i++)
			cr_assert_eq(zio_spawn(NULL, &t[i], read_a_byte_of, (void *)(intptr_t)p[i][0], NULL), 0);
		zio_sleep(ZIO_MSEC(20)); /* all of them waiting */
		struct rlimit low = { limits[k], old.rlim_max };
		cr_assert_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
		zio_sleep(ZIO_MSEC(20));
		for (int i = 0; i < LOW_LIMIT_PIPES; i++)
			cr_assert_eq(write(p[i][1], "x", 1), 1);
		int got = 0;
		for (int i = 0; i < LOW_LIMIT_PIPES; i++) {
			void *r;
			cr_assert_eq(zio_task_join(t[i], &r), 0);
			got += (intptr_t)r == 1;
		}
		cr_assert_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
		cr_assert_eq(got, LOW_LIMIT_PIPES, "limit %d: %d readers got their byte", (int)limits[k],
			     got);
	}
	for (int i = 0; i < LOW_LIMIT_PIPES; i++) {
		zio_close(p[i][0]);
		zio_close(p[i][1]);
	}
	return NULL;
}

Test(io, waits_go_on_past_a_lowered_fd_limit, .timeout = 30)
{
	run_in_runtime(1, waits_past_a_lowered_fd_limit, NULL);
}

/* Polled in turns, every wait gets its turn, also among several waits on
 * one fd (a turn that took an fd's second wait skipped the waits between,
 * which never came up again: their bytes stayed unread). */
static void *turns_with_two_waits_on_one_fd(void *arg)
{
	(void)arg;
	int a[2], b[2], c[2];
	cr_assert_eq(zio_pipe(a), 0);
	cr_assert_eq(zio_pipe(b), 0);
	cr_assert_eq(zio_pipe(c), 0);
	int order[4] = { c[0], a[0], b[0], a[0] }; /* the list: A, B, A, C */
	zio_task *t[4];
	for (int i = 0; i < 4; i++) {
		cr_assert_eq(zio_spawn(NULL, &t[i], read_a_byte_of, (void *)(intptr_t)order[i], NULL), 0);
		zio_sleep(ZIO_MSEC(5));
	}
	struct rlimit old;
	cr_assert_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
	struct rlimit low = { 2, old.rlim_max }; /* the eventfd and one fd */
	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
	zio_sleep(ZIO_MSEC(30));
	cr_assert_eq(write(b[1], "b", 1), 1);
	cr_assert_eq(write(c[1], "c", 1), 1);
	void *r;
	cr_assert_eq(zio_task_join(t[0], &r), 0); /* C's reader */
	cr_assert_eq((intptr_t)r, 1, "the reader of C: %ld", (long)(intptr_t)r);
	cr_assert_eq(zio_task_join(t[2], &r), 0); /* B's reader */
	cr_assert_eq((intptr_t)r, 1, "the reader of B: %ld", (long)(intptr_t)r);
	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
	cr_assert_eq(write(a[1], "aa", 2), 2);
	cr_assert_eq(zio_task_join(t[1], NULL), 0);
	cr_assert_eq(zio_task_join(t[3], NULL), 0);
	int *fds[] = { a, b, c };
	for (int i = 0; i < 3; i++) {
		zio_close(fds[i][0]);
		zio_close(fds[i][1]);
	}
	return NULL;
}

Test(io, waits_polled_in_turns_all_get_a_turn, .timeout = 30)
{
	run_in_runtime(1, turns_with_two_waits_on_one_fd, NULL);
}
