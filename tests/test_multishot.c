/*
 * test_multishot.c - reads and accepts whose results arrive before anyone
 * asks for them. On io_uring these go through multishot recv (provided
 * buffers) and multishot accept, whose results queue up per fd; on epoll
 * and poll the same calls are plain syscalls. Either way the semantics are
 * those of read(2) and accept(2), and that is what is checked: order, EOF
 * after the data, MSG_PEEK / MSG_WAITALL / readv, readiness while bytes
 * are queued, timeouts and cancellation that lose nothing, zio_close of a
 * socket or listener with a task waiting in it (and no fd leaked) from a
 * task, from beside a busy executor and from plain threads after
 * zio_runtime_run() has returned, reads
 * from another executor, more data than the provided buffers hold, and a
 * backlog of connections nobody accepts for a while.
 */
/* ZIO_TEST_BACKENDS */
/* ZIO_TEST_LABELS: io */
#include "helpers.h"

#include "backend.h"
#ifdef ZIO_HAVE_URING
#include "backend_uring.h"
#endif

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <poll.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#define SOON zio_deadline_after(ZIO_SEC(5))

struct pair {
	int client, server;
};

static int listen_any(zio_addr *bound)
{
	zio_addr a;
	cr_assert_eq(zio_addr_parse(&a, "127.0.0.1:0"), 0);
	int lfd = zio_tcp_listen(&a, NULL);
	cr_assert_geq(lfd, 0, "listen: %d", lfd);
	cr_assert_eq(zio_local_addr(lfd, bound), 0);
	return lfd;
}

static void tcp_pair(struct pair *p)
{
	zio_addr a;
	int lfd = listen_any(&a);
	p->client = zio_tcp_connect(&a, SOON);
	cr_assert_geq(p->client, 0);
	p->server = zio_tcp_accept(lfd, NULL, SOON);
	cr_assert_geq(p->server, 0);
	zio_close(lfd);
}

static void close_pair(struct pair *p)
{
	zio_close(p->client);
	zio_close(p->server);
}

/* Is a multishot request serving fd? Only where the backend has them. */
static bool multishot_on(int fd)
{
	struct zio__fd *ent = zio__fd_peek(fd);
	return ent && atomic_load(&ent->ms) != NULL;
}

/* On io_uring, unless turned off or the kernel lacks them (the probe). */
static bool expect_multishot(void)
{
#ifdef ZIO_HAVE_URING
	return strcmp(zio_runtime_backend(zio_runtime_current()), "uring") == 0 &&
	       zio__uring_multishot_on();
#else
	return false;
#endif
}

static int open_fds(void)
{
	int n = 0;
	DIR *d = opendir("/proc/self/fd");
	cr_assert_not_null(d);
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

static void read_exact(int fd, char *buf, size_t len)
{
	size_t got = 0;
	while (got < len) {
		ssize_t r = zio_read(fd, buf + got, len - got, SOON);
		cr_assert_gt(r, 0, "read: %zd after %zu of %zu", r, got, len);
		got += (size_t)r;
	}
}

/* ------------------------------------------------------ order, EOF, flags */

static void *queued_then_eof(void *arg)
{
	(void)arg;
	struct pair p;
	tcp_pair(&p);
	char buf[64];
	/* The first read arms whatever the backend arms; then bytes arrive
	 * while nobody reads, and come out in order, a few at a time. */
	cr_assert_eq(zio_write_all(p.client, "abc", 3, SOON), 3);
	read_exact(p.server, buf, 3);
	cr_assert_eq(memcmp(buf, "abc", 3), 0);
	if (expect_multishot())
		cr_assert(multishot_on(p.server), "io_uring read went without multishot recv");
	for (int i = 0; i < 5; i++)
		cr_assert_eq(zio_write_all(p.client, "0123456789", 10, SOON), 10);
	zio_sleep(ZIO_MSEC(20));
	cr_assert_eq(zio_shutdown(p.client, SHUT_WR), 0);
	zio_sleep(ZIO_MSEC(20));
	char all[50];
	size_t got = 0;
	while (got < sizeof(all)) {
		ssize_t r = zio_read(p.server, all + got, 7, SOON);
		cr_assert(r > 0 && r <= 7, "read: %zd", r);
		got += (size_t)r;
	}
	for (size_t i = 0; i < sizeof(all); i++)
		cr_assert_eq(all[i], '0' + (char)(i % 10), "byte %zu", i);
	/* EOF after the data, and again. */
	cr_assert_eq(zio_read(p.server, buf, sizeof(buf), SOON), 0);
	cr_assert_eq(zio_read(p.server, buf, sizeof(buf), SOON), 0);
	close_pair(&p);
	return NULL;
}

Test(multishot, queued_bytes_then_eof, .timeout = 20)
{
	run_in_runtime(1, queued_then_eof, NULL);
}

/* zio_file_read of a socket is a read like zio_read's: the bytes a
 * multishot request queued come first (the ring's own read waited for
 * new ones, behind the queue). */
static void *file_read_of_a_socket(void *arg)
{
	(void)arg;
	struct pair p;
	tcp_pair(&p);
	char buf[16];
	cr_assert_eq(zio_write_all(p.client, "ABCD", 4, SOON), 4);
	read_exact(p.server, buf, 1);
	cr_assert_eq(buf[0], 'A');
	zio_sleep(ZIO_MSEC(20)); /* the rest is queued by now, or in the socket */
	ssize_t n = zio_file_read(p.server, buf, sizeof(buf), zio_deadline_after(ZIO_SEC(2)));
	cr_assert_eq(n, 3, "zio_file_read: %zd", n);
	cr_assert_eq(memcmp(buf, "BCD", 3), 0);
	close_pair(&p);
	return NULL;
}

Test(multishot, file_read_of_a_socket_takes_the_queue_first, .timeout = 20)
{
	run_in_runtime(1, file_read_of_a_socket, NULL);
}

struct waitall {
	int fd;
	ssize_t r;
	char buf[12];
};

static void *recv_waitall(void *arg)
{
	struct waitall *w = arg;
	w->r = zio_recv(w->fd, w->buf, sizeof(w->buf), MSG_WAITALL, SOON);
	return NULL;
}

static void *flags_and_vectors(void *arg)
{
	(void)arg;
	struct pair p;
	tcp_pair(&p);
	char buf[32];
	cr_assert_eq(zio_write_all(p.client, "x", 1, SOON), 1);
	cr_assert_eq(zio_recv(p.server, buf, sizeof(buf), 0, SOON), 1);

	cr_assert_eq(zio_write_all(p.client, "peekaboo", 8, SOON), 8);
	/* MSG_PEEK leaves the bytes for the next read. */
	ssize_t r = zio_recv(p.server, buf, 4, MSG_PEEK, SOON);
	cr_assert_eq(r, 4);
	cr_assert_eq(memcmp(buf, "peek", 4), 0);
	zio_sleep(ZIO_MSEC(10));
	/* readv across two vectors. */
	char a[3], b[5];
	struct iovec iov[2] = { { a, sizeof(a) }, { b, sizeof(b) } };
	size_t got = 0;
	while (got < 8) {
		struct iovec rest[2];
		int n = 0;
		size_t skip = got;
		for (int i = 0; i < 2; i++) {
			if (skip >= iov[i].iov_len) {
				skip -= iov[i].iov_len;
				continue;
			}
			rest[n].iov_base = (char *)iov[i].iov_base + skip;
			rest[n++].iov_len = iov[i].iov_len - skip;
			skip = 0;
		}
		r = zio_readv(p.server, rest, n, SOON);
		cr_assert_gt(r, 0, "readv: %zd", r);
		got += (size_t)r;
	}
	cr_assert_eq(memcmp(a, "pee", 3), 0);
	cr_assert_eq(memcmp(b, "kaboo", 5), 0);

	/* MSG_DONTWAIT with nothing there, and a try-once read. */
	cr_assert_eq(zio_recv(p.server, buf, sizeof(buf), MSG_DONTWAIT, SOON), -EAGAIN);
	cr_assert_eq(zio_read(p.server, buf, sizeof(buf), 0), -EAGAIN);

	/* MSG_WAITALL waits for all 12 bytes, sent in three pieces. */
	struct waitall w = { .fd = p.server };
	zio_task *t;
	cr_assert_eq(zio_spawn(NULL, &t, recv_waitall, &w, NULL), 0);
	for (int i = 0; i < 3; i++) {
		zio_sleep(ZIO_MSEC(10));
		cr_assert_eq(zio_write_all(p.client, "abcd", 4, SOON), 4);
	}
	zio_task_join(t, NULL);
	cr_assert_eq(w.r, 12);
	cr_assert_eq(memcmp(w.buf, "abcdabcdabcd", 12), 0);
	close_pair(&p);
	return NULL;
}

Test(multishot, peek_readv_dontwait_waitall, .timeout = 20)
{
	run_in_runtime(1, flags_and_vectors, NULL);
}

static void *ready_while_queued(void *arg)
{
	(void)arg;
	struct pair p;
	tcp_pair(&p);
	char buf[8];
	cr_assert_eq(zio_write_all(p.client, "1", 1, SOON), 1);
	cr_assert_eq(zio_read(p.server, buf, sizeof(buf), SOON), 1);
	cr_assert_eq(zio_wait_fd(p.server, POLLIN, zio_deadline_after(ZIO_MSEC(30))), -ETIMEDOUT);
	cr_assert_eq(zio_write_all(p.client, "23", 2, SOON), 2);
	zio_sleep(ZIO_MSEC(20));
	/* The bytes may be in a provided buffer, not in the socket: still
	 * readable, and still readable until read. */
	int ev = zio_wait_fd(p.server, POLLIN, SOON);
	cr_assert(ev > 0 && (ev & POLLIN), "wait_fd: %d", ev);
	cr_assert(zio_wait_fd(p.server, POLLIN, SOON) & POLLIN);
	cr_assert(zio_wait_fd(p.server, POLLIN | POLLOUT, SOON) & POLLIN);
	/* A NULL buffer is -EFAULT, and takes nothing. */
	cr_assert_eq(zio_read(p.server, NULL, sizeof(buf), SOON), -EFAULT);
	cr_assert_eq(zio_read(p.server, buf, sizeof(buf), SOON), 2);
	cr_assert_eq(memcmp(buf, "23", 2), 0);
	close_pair(&p);
	return NULL;
}

Test(multishot, readable_while_queued, .timeout = 20)
{
	run_in_runtime(1, ready_while_queued, NULL);
}

/* Code that waits with zio_wait_fd() and reads with recv(2) itself, on a
 * socket zio_read() was used on: what arrives is in the socket for it (on
 * io_uring the multishot request took it into zio's queue, and the wait
 * said POLLIN for bytes recv(2) never saw: a loop of them spun). And a
 * listener read by mistake is not readable until a connection comes (the
 * wait armed a recv on it, whose ENOTCONN it said was POLLERR|POLLHUP). */
static void *wait_then_recv_myself(void *arg)
{
	(void)arg;
	struct pair p;
	tcp_pair(&p);
	char buf[8];
	cr_assert_eq(zio_write_all(p.client, "1", 1, SOON), 1);
	cr_assert_eq(zio_read(p.server, buf, sizeof(buf), SOON), 1);
	for (int round = 0; round < 3; round++) {
		cr_assert_eq(zio_write_all(p.client, "abc", 3, SOON), 3);
		int ev = zio_wait_fd(p.server, POLLIN, SOON);
		cr_assert(ev > 0 && (ev & POLLIN), "wait_fd: %d", ev);
		ssize_t r = recv(p.server, buf, sizeof(buf), MSG_DONTWAIT);
		cr_assert_eq(r, 3, "round %d: recv(2) after POLLIN: %zd", round, r);
	}
	close_pair(&p);

	zio_addr a;
	int lfd = listen_any(&a);
	cr_assert_eq(zio_read(lfd, buf, sizeof(buf), SOON), -ENOTCONN);
	cr_assert_eq(zio_wait_fd(lfd, POLLIN, zio_deadline_after(ZIO_MSEC(50))), -ETIMEDOUT);
	int c = zio_tcp_connect(&a, SOON);
	cr_assert_geq(c, 0);
	cr_assert_eq(zio_wait_fd(lfd, POLLIN, SOON), POLLIN);
	int s = zio_tcp_accept(lfd, NULL, SOON);
	cr_assert_geq(s, 0);
	zio_close(s);
	zio_close(c);
	zio_close(lfd);
	return NULL;
}

Test(multishot, wait_then_read_it_myself, .timeout = 20)
{
	run_in_runtime(1, wait_then_recv_myself, NULL);
}

/* ------------------------------------------- timeouts, cancel, close */

struct reader {
	int fd;
	size_t len; /* 0: the whole buffer */
	ssize_t r;
	char buf[16];
};

static void *read_once(void *arg)
{
	struct reader *rd = arg;
	rd->r = zio_read(rd->fd, rd->buf, rd->len ? rd->len : sizeof(rd->buf), ZIO_FOREVER);
	return NULL;
}

static void *nothing_lost(void *arg)
{
	(void)arg;
	struct pair p;
	tcp_pair(&p);
	char buf[16];
	/* Timed out, then the bytes that come later are read next. */
	cr_assert_eq(zio_read(p.server, buf, sizeof(buf), zio_deadline_after(ZIO_MSEC(20))),
		     -ETIMEDOUT);
	cr_assert_eq(zio_write_all(p.client, "late", 4, SOON), 4);
	read_exact(p.server, buf, 4);
	cr_assert_eq(memcmp(buf, "late", 4), 0);

	/* Cancelled mid-read; bytes sent after are not lost. */
	struct reader rd = { .fd = p.server };
	zio_task *t;
	cr_assert_eq(zio_spawn(NULL, &t, read_once, &rd, NULL), 0);
	zio_sleep(ZIO_MSEC(10));
	zio_task_cancel(t);
	zio_task_join(t, NULL);
	cr_assert_eq(rd.r, -ECANCELED);
	cr_assert_eq(zio_write_all(p.client, "kept", 4, SOON), 4);
	read_exact(p.server, buf, 4);
	cr_assert_eq(memcmp(buf, "kept", 4), 0);

	/* Two one-byte readers of one socket, two bytes: each gets one,
	 * none the same, whoever waits first. */
	struct reader r1 = { .fd = p.server, .len = 1 }, r2 = { .fd = p.server, .len = 1 };
	zio_task *t1, *t2;
	zio_spawn(NULL, &t1, read_once, &r1, NULL);
	zio_spawn(NULL, &t2, read_once, &r2, NULL);
	zio_yield();
	cr_assert_eq(zio_write_all(p.client, "AB", 2, SOON), 2);
	zio_task_join(t1, NULL);
	zio_task_join(t2, NULL);
	cr_assert_eq(r1.r, 1);
	cr_assert_eq(r2.r, 1);
	cr_assert_neq(r1.buf[0], r2.buf[0]);

	/* zio_close with a reader waiting: it gets -EBADF. */
	struct reader rc = { .fd = p.server };
	zio_spawn(NULL, &t, read_once, &rc, NULL);
	zio_sleep(ZIO_MSEC(10));
	zio_close(p.server);
	zio_task_join(t, NULL);
	cr_assert_eq(rc.r, -EBADF);
	zio_close(p.client);
	return NULL;
}

Test(multishot, timeout_cancel_close_lose_nothing, .timeout = 20)
{
	run_in_runtime(1, nothing_lost, NULL);
	run_in_runtime(2, nothing_lost, NULL);
}

/* Bytes left queued when the socket is closed go back; the fd number's
 * next socket starts clean. */
static void *close_with_bytes_queued(void *arg)
{
	(void)arg;
	int before = open_fds();
	for (int round = 0; round < 50; round++) {
		struct pair p;
		tcp_pair(&p);
		char buf[8];
		cr_assert_eq(zio_write_all(p.client, "ab", 2, SOON), 2);
		cr_assert_eq(zio_read(p.server, buf, 1, SOON), 1);
		cr_assert_eq(zio_write_all(p.client, "cdefgh", 6, SOON), 6);
		zio_sleep(ZIO_MSEC(1));
		close_pair(&p);
	}
	struct pair p;
	tcp_pair(&p);
	char buf[8];
	cr_assert_eq(zio_read(p.server, buf, sizeof(buf), zio_deadline_after(ZIO_MSEC(20))),
		     -ETIMEDOUT);
	close_pair(&p);
	cr_assert_eq(open_fds(), before);
	return NULL;
}

Test(multishot, close_with_bytes_queued, .timeout = 30)
{
	run_in_runtime(1, close_with_bytes_queued, NULL);
}

/* --------------------------------------------------------- volume */

struct stream_check {
	int fd;
	size_t total;
	uint32_t sum;
	unsigned seed;
};

static void *slow_reader(void *arg)
{
	struct stream_check *s = arg;
	unsigned char buf[9000];
	for (;;) {
		/* Odd read sizes, so buffers are left half read. */
		size_t want = 1 + (size_t)(rand_r(&s->seed) % sizeof(buf));
		ssize_t n = zio_read(s->fd, buf, want, zio_deadline_after(ZIO_SEC(10)));
		cr_assert_geq(n, 0, "read: %zd", n);
		if (n == 0)
			return NULL;
		for (ssize_t i = 0; i < n; i++)
			s->sum = s->sum * 31 + buf[i];
		s->total += (size_t)n;
		if (rand_r(&s->seed) % 8 == 0)
			zio_sleep(ZIO_MSEC(1)); /* let data pile up */
	}
}

/* Several streams at once, more than the provided buffers hold, read at
 * a crawl: backpressure and the plain-read fallback, no byte out of order. */
static void *many_megabytes(void *arg)
{
	(void)arg;
	enum { STREAMS = 4 };
	size_t len = 3 << 20;
	unsigned char *data = malloc(len);
	uint32_t sum = 0;
	for (size_t i = 0; i < len; i++) {
		data[i] = (unsigned char)(i * 13 + (i >> 9));
		sum = sum * 31 + data[i];
	}
	struct pair p[STREAMS];
	struct stream_check s[STREAMS];
	zio_task *t[STREAMS];
	for (int i = 0; i < STREAMS; i++) {
		tcp_pair(&p[i]);
		s[i] = (struct stream_check){ .fd = p[i].server, .seed = (unsigned)i + 1 };
		cr_assert_eq(zio_spawn(NULL, &t[i], slow_reader, &s[i], NULL), 0);
	}
	for (size_t off = 0; off < len; off += 100000) {
		size_t n = len - off < 100000 ? len - off : 100000;
		for (int i = 0; i < STREAMS; i++)
			cr_assert_eq(zio_write_all(p[i].client, data + off, n, ZIO_FOREVER), (ssize_t)n);
	}
	for (int i = 0; i < STREAMS; i++) {
		zio_shutdown(p[i].client, SHUT_WR);
		zio_task_join(t[i], NULL);
		cr_assert_eq(s[i].total, len);
		cr_assert_eq(s[i].sum, sum, "stream %d out of order", i);
		close_pair(&p[i]);
	}
	free(data);
	return NULL;
}

Test(multishot, many_megabytes_slow_readers, .timeout = 120)
{
	run_in_runtime(1, many_megabytes, NULL);
	run_in_runtime(2, many_megabytes, NULL);
}

/* ------------------------------------------------------ other executor */

static void *read_from_elsewhere(void *arg)
{
	(void)arg;
	struct pair p;
	tcp_pair(&p);
	char buf[8];
	cr_assert_eq(zio_write_all(p.client, "12", 2, SOON), 2);
	cr_assert_eq(zio_read(p.server, buf, 1, SOON), 1);
	cr_assert_eq(buf[0], '1');
	/* Go to the other executor; the byte left may sit in this one's
	 * ring, and it must still come out first. */
	struct zio__exec *here = zio__exec_current();
	struct zio__fiber *me = zio__fiber_current();
	me->flags |= ZIO__FIBER_TEMP_PIN; /* not stolen back on arrival */
	zio__move_to(here->rt->exec[here == here->rt->exec[0] ? 1 : 0]);
	cr_assert_neq(zio__exec_current(), here);
	me->flags &= ~ZIO__FIBER_TEMP_PIN;
	cr_assert_eq(zio_write_all(p.client, "34", 2, SOON), 2);
	zio_sleep(ZIO_MSEC(10));
	char all[3];
	read_exact(p.server, all, 3);
	cr_assert_eq(memcmp(all, "234", 3), 0);
	close_pair(&p);
	return NULL;
}

Test(multishot, read_from_another_executor, .timeout = 20)
{
	run_in_runtime(2, read_from_elsewhere, NULL);
}

/* ------------------------------------------------------------ accept */

static void *accept_backlog(void *arg)
{
	(void)arg;
	int before = open_fds();
	zio_addr a;
	int lfd = listen_any(&a);
	int c0 = zio_tcp_connect(&a, SOON);
	int s0 = zio_tcp_accept(lfd, NULL, SOON);
	cr_assert_geq(s0, 0);
	if (expect_multishot())
		cr_assert(multishot_on(lfd), "io_uring accept went without multishot accept");
	/* More connections than the accept queue keeps: some wait in the
	 * kernel's backlog. All are accepted, in order, with their peer. */
	enum { N = 100 };
	int c[N];
	zio_addr local[N];
	for (int i = 0; i < N; i++) {
		c[i] = zio_tcp_connect(&a, SOON);
		cr_assert_geq(c[i], 0, "connect %d: %d", i, c[i]);
		cr_assert_eq(zio_local_addr(c[i], &local[i]), 0);
	}
	zio_sleep(ZIO_MSEC(20));
	for (int i = 0; i < N; i++) {
		zio_addr peer;
		int s = zio_tcp_accept(lfd, &peer, SOON);
		cr_assert_geq(s, 0, "accept %d: %d", i, s);
		cr_assert_eq(zio_addr_port(&peer), zio_addr_port(&local[i]), "connection %d", i);
		cr_assert_eq(zio_write_all(c[i], "p", 1, SOON), 1);
		char ch;
		cr_assert_eq(zio_read(s, &ch, 1, SOON), 1);
		zio_close(s);
	}
	/* Connections queued when the listener closes are closed too. */
	int late[5];
	for (int i = 0; i < 5; i++)
		late[i] = zio_tcp_connect(&a, SOON);
	zio_sleep(ZIO_MSEC(20));
	zio_close(lfd);
	for (int i = 0; i < 5; i++) {
		char ch;
		ssize_t r = zio_read(late[i], &ch, 1, SOON);
		cr_assert(r == 0 || r == -ECONNRESET, "late %d: %zd", i, r);
		zio_close(late[i]);
	}
	for (int i = 0; i < N; i++)
		zio_close(c[i]);
	zio_close(c0);
	zio_close(s0);
	cr_assert_eq(open_fds(), before);
	return NULL;
}

Test(multishot, accept_backlog_in_order_no_leak, .timeout = 30)
{
	run_in_runtime(1, accept_backlog, NULL);
	run_in_runtime(2, accept_backlog, NULL);
}

/* A connection reset while it waited in the backlog is still accepted,
 * with its peer's address, as accept4() does (io_uring's multishot accept
 * asked getpeername(), which refuses a reset connection, and said
 * -ECONNABORTED). */
static void *accept_a_reset_connection(void *arg)
{
	(void)arg;
	zio_addr a, peer;
	int lfd = listen_any(&a);
	/* a wait first: on io_uring the multishot accept is then armed and
	 * takes the connection as it arrives, before the reset */
	cr_assert_eq(zio_tcp_accept(lfd, NULL, zio_deadline_after(ZIO_MSEC(20))), -ETIMEDOUT);
	int c = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert_eq(connect(c, &a.sa, a.len), 0);
	zio_addr mine;
	mine.len = sizeof(mine.ss);
	cr_assert_eq(getsockname(c, &mine.sa, &mine.len), 0);
	struct linger abort_on_close = { 1, 0 };
	cr_assert_eq(setsockopt(c, SOL_SOCKET, SO_LINGER, &abort_on_close, sizeof(abort_on_close)), 0);
	zio_sleep(ZIO_MSEC(20));
	close(c); /* RST */
	int s = zio_tcp_accept(lfd, &peer, SOON);
	cr_assert_geq(s, 0, "accept of a reset connection: %d", s);
	char want[ZIO_ADDR_STRLEN], got[ZIO_ADDR_STRLEN];
	cr_assert_gt(zio_addr_format(&mine, want, sizeof(want)), 0);
	cr_assert_gt(zio_addr_format(&peer, got, sizeof(got)), 0);
	cr_assert_str_eq(got, want);
	char b;
	cr_assert_eq(zio_read(s, &b, 1, SOON), -ECONNRESET);
	zio_close(s);
	zio_close(lfd);
	return NULL;
}

Test(multishot, accept_a_connection_reset_in_the_backlog, .timeout = 20)
{
	run_in_runtime(1, accept_a_reset_connection, NULL);
}

/* --------------------------------------------------------- try once */

/* A caller that only ever tries once (deadline 0) and naps in between,
 * on a socket and a listener that never had a blocking call: it must see
 * what is there, not wait for a request nobody armed. */
static void *try_once_only(void *arg)
{
	(void)arg;
	zio_addr a;
	int lfd = listen_any(&a);
	cr_assert_eq(zio_tcp_accept(lfd, NULL, 0), -EAGAIN);
	int c = zio_tcp_connect(&a, SOON);
	cr_assert_geq(c, 0);
	int s = -EAGAIN;
	for (int i = 0; i < 2000 && s == -EAGAIN; i++) {
		s = zio_tcp_accept(lfd, NULL, 0);
		if (s == -EAGAIN)
			zio_sleep(ZIO_MSEC(1));
	}
	cr_assert_geq(s, 0, "try-once accept: %d", s);
	char buf[8];
	cr_assert_eq(zio_read(s, buf, sizeof(buf), 0), -EAGAIN);
	cr_assert_eq(zio_write_all(c, "now", 3, SOON), 3);
	ssize_t r = -EAGAIN;
	for (int i = 0; i < 2000 && r == -EAGAIN; i++) {
		r = zio_read(s, buf, sizeof(buf), 0);
		if (r == -EAGAIN)
			zio_sleep(ZIO_MSEC(1));
	}
	cr_assert_eq(r, 3, "try-once read: %zd", r);
	zio_close(s);
	zio_close(c);
	zio_close(lfd);
	return NULL;
}

Test(multishot, try_once_sees_what_is_there, .timeout = 20)
{
	run_in_runtime(1, try_once_only, NULL);
}

/* A deadline already past is a try, as deadline 0 is: what is queued is
 * returned (on io_uring the call parked and timed out at once, every
 * time, with bytes and connections waiting). */
static void *past_deadlines(void *arg)
{
	(void)arg;
	int64_t past[] = { 1, zio_deadline_after(-ZIO_MSEC(1)) };
	for (int i = 0; i < 2; i++) {
		zio_addr a;
		int lfd = listen_any(&a);
		cr_assert_eq(zio_tcp_accept(lfd, NULL, past[i]), -ETIMEDOUT);
		int c = zio_tcp_connect(&a, SOON);
		cr_assert_geq(c, 0);
		/* in the backlog, or (io_uring) taken by the armed accept and
		 * not yet reaped: this executor does not look meanwhile */
		usleep(10000);
		int s = zio_tcp_accept(lfd, NULL, past[i]);
		cr_assert_geq(s, 0, "accept with a connection waiting, deadline %lld: %d",
			      (long long)past[i], s);
		char buf[8];
		cr_assert_eq(zio_write_all(c, "1", 1, SOON), 1);
		cr_assert_eq(zio_read(s, buf, sizeof(buf), SOON), 1); /* a request armed */
		cr_assert_eq(zio_read(s, buf, sizeof(buf), past[i]), -ETIMEDOUT);
		cr_assert_eq(zio_write_all(c, "abcd", 4, SOON), 4);
		usleep(10000);
		ssize_t r = zio_read(s, buf, sizeof(buf), past[i]);
		cr_assert_eq(r, 4, "read with bytes waiting, deadline %lld: %zd", (long long)past[i], r);
		zio_close(s);
		zio_close(c);
		zio_close(lfd);
	}
	return NULL;
}

Test(multishot, a_past_deadline_sees_what_is_there, .timeout = 20)
{
	run_in_runtime(1, past_deadlines, NULL);
}

/* Bytes written on loopback are in the peer's socket when the write
 * returns, so a try-once read sees them at once, as with epoll: also
 * where a multishot request already took them and has yet to post them
 * (the try looks at the ring). Likewise a connection a listener holds. */
static void *try_once_right_after_the_write(void *arg)
{
	(void)arg;
	zio_addr a;
	int lfd = listen_any(&a);
	struct pair p;
	p.client = zio_tcp_connect(&a, SOON);
	p.server = zio_tcp_accept(lfd, NULL, SOON); /* arms the accept request */
	cr_assert_geq(p.server, 0);
	char buf[8];
	for (int round = 0; round < 100; round++) {
		/* A blocking read first: it leaves the recv request armed. */
		cr_assert_eq(zio_write_all(p.client, "x", 1, SOON), 1);
		cr_assert_eq(zio_read(p.server, buf, 1, SOON), 1);
		cr_assert_eq(zio_write_all(p.client, "now", 3, SOON), 3);
		cr_assert_eq(zio_read(p.server, buf, sizeof(buf), 0), 3, "round %d", round);
	}
	int c2 = zio_tcp_connect(&a, SOON);
	cr_assert_geq(c2, 0);
	int s2 = zio_tcp_accept(lfd, NULL, 0);
	cr_assert_geq(s2, 0, "try-once accept of a connected peer: %d", s2);
	zio_close(s2);
	zio_close(c2);
	close_pair(&p);
	zio_close(lfd);
	return NULL;
}

Test(multishot, try_once_right_after_the_write, .timeout = 20)
{
	run_in_runtime(1, try_once_right_after_the_write, NULL);
}

/* ------------------------------------------------- closes and races */

struct closer {
	int wait_fd;   /* waits for a byte here first */
	int close_fd;  /* then closes this */
};

static void *close_after_byte(void *arg)
{
	struct closer *c = arg;
	char ch;
	cr_assert_eq(zio_read(c->wait_fd, &ch, 1, SOON), 1);
	zio_close(c->close_fd);
	return NULL;
}

/* A reader woken by data, and a task woken in the same pass that closes
 * the reader's socket before the reader runs: the reader must not arm a
 * new request for the closed fd (which would keep the socket open). */
static void *close_between_wake_and_run(void *arg)
{
	(void)arg;
	struct pair a, b;
	tcp_pair(&a);
	tcp_pair(&b);
	char buf[8];
	/* Arm both reads with a first byte each. */
	cr_assert_eq(zio_write_all(a.client, "1", 1, SOON), 1);
	cr_assert_eq(zio_read(a.server, buf, 1, SOON), 1);
	cr_assert_eq(zio_write_all(b.client, "1", 1, SOON), 1);
	cr_assert_eq(zio_read(b.server, buf, 1, SOON), 1);
	struct reader r = { .fd = a.server };
	struct closer c = { .wait_fd = b.server, .close_fd = a.server };
	zio_task *tr, *tc;
	zio_spawn(NULL, &tr, read_once, &r, NULL);
	zio_spawn(NULL, &tc, close_after_byte, &c, NULL);
	zio_sleep(ZIO_MSEC(10));
	/* Both wake in one pass; the closer, woken last, runs first. */
	cr_assert_eq(zio_write_all(a.client, "data", 4, SOON), 4);
	cr_assert_eq(zio_write_all(b.client, "x", 1, SOON), 1);
	zio_task_join(tc, NULL);
	zio_task_join(tr, NULL);
	cr_assert(r.r == -EBADF || r.r == 4, "reader: %zd", r.r);
	/* The socket really closed: its peer sees the end. */
	ssize_t e = zio_read(a.client, buf, sizeof(buf), SOON);
	cr_assert(e == 0 || e == -ECONNRESET, "peer of the closed socket: %zd", e);
	zio_close(a.client);
	close_pair(&b);
	return NULL;
}

Test(multishot, close_between_wake_and_run, .timeout = 20)
{
	run_in_runtime(1, close_between_wake_and_run, NULL);
}

static long close_from_thread(void *arg)
{
	return zio_close((int)(intptr_t)arg);
}

/* zio_close from a plain thread (here the blocking pool's): the request
 * ends, the reader gets -EBADF and the peer sees the end. (On io_uring
 * without multishot the reader's single-shot recv sits in its executor's
 * ring, which a plain thread cannot reach: zio_close's documented limit.) */
static void *close_on_plain_thread(void *arg)
{
	(void)arg;
	if (strcmp(zio_runtime_backend(zio_runtime_current()), "uring") == 0 && !expect_multishot())
		return (void *)1;
	struct pair p;
	tcp_pair(&p);
	char buf[8];
	cr_assert_eq(zio_write_all(p.client, "1", 1, SOON), 1);
	cr_assert_eq(zio_read(p.server, buf, 1, SOON), 1);
	struct reader r = { .fd = p.server };
	zio_task *t;
	zio_spawn(NULL, &t, read_once, &r, NULL);
	zio_sleep(ZIO_MSEC(10));
	cr_assert_eq(zio_blocking_call(close_from_thread, (void *)(intptr_t)p.server, SOON), 0);
	zio_task_join(t, NULL);
	cr_assert_eq(r.r, -EBADF);
	ssize_t e = zio_read(p.client, buf, sizeof(buf), SOON);
	cr_assert(e == 0 || e == -ECONNRESET, "peer: %zd", e);
	zio_close(p.client);
	return NULL;
}

Test(multishot, close_from_a_plain_thread, .timeout = 20)
{
	if (run_in_runtime(1, close_on_plain_thread, NULL))
		cr_skip_test("io_uring without multishot: a plain thread cannot reach the ring");
}

/* A connection with a task parked in a read of it (on io_uring: a
 * multishot request armed), left behind when zio_runtime_run() returns. */
struct left_behind {
	struct pair p;
	struct reader r;
};

static void *leave_a_reader(void *arg)
{
	struct left_behind *lb = arg;
	tcp_pair(&lb->p);
	char buf[1];
	cr_assert_eq(zio_write_all(lb->p.client, "1", 1, SOON), 1);
	cr_assert_eq(zio_read(lb->p.server, buf, 1, SOON), 1);
	lb->r.fd = lb->p.server;
	cr_assert_eq(zio_spawn(NULL, NULL, read_once, &lb->r, NULL), 0);
	zio_sleep(ZIO_MSEC(10));
	return NULL;
}

static void *do_nothing(void *arg)
{
	return arg;
}

/* The peer of a closed connection sees its end within 5 s. */
static void peer_sees_the_end(int client)
{
	struct pollfd pfd = { .fd = client, .events = POLLIN };
	cr_assert_eq(poll(&pfd, 1, 5000), 1, "the peer never saw the close");
	char b;
	ssize_t e = recv(client, &b, 1, MSG_DONTWAIT);
	cr_assert(e == 0 || (e < 0 && errno == ECONNRESET), "peer: %zd", e);
}

static zio_runtime *runtime_with(unsigned executors)
{
	zio_runtime *rt;
	cr_assert_eq(zio_runtime_create(&rt, &(struct zio_runtime_options){ .executors = executors }), 0);
	return rt;
}

/* zio_close() on the thread that ran the runtime, after zio_runtime_run()
 * has returned, of a socket its executor 0 still reads (it hung: it waited
 * for a cancel only a running executor submits). The socket is closed at
 * once; the reader gets -EBADF when the runtime next runs. */
static void close_after_run(unsigned executors)
{
	int fds_before = open_fds();
	zio_runtime *rt = runtime_with(executors);
	struct left_behind lb = { 0 };
	cr_assert_eq(zio_runtime_run(rt, leave_a_reader, &lb, NULL), 0);
	cr_assert_eq(zio_close(lb.p.server), 0);
	peer_sees_the_end(lb.p.client);
	cr_assert_eq(zio_close(lb.p.client), 0);
	zio_runtime_destroy(rt);
	cr_assert_eq(lb.r.r, -EBADF, "reader: %zd", lb.r.r);
	cr_assert_eq(open_fds(), fds_before);
}

Test(multishot, close_after_run_returned, .timeout = 20)
{
	close_after_run(1);
}

Test(multishot, close_after_run_returned_two_executors, .timeout = 20)
{
	close_after_run(2);
}

/* zio_runtime_run() returns while executor 1 goes on. Fds that tasks of
 * executor 0 waited on (a TCP socket whose bytes io_uring's multishot recv
 * took in, a pipe registered with its epoll, a listener) serve tasks of
 * executor 1 at once, and tasks spawned from this thread start at once.
 * They waited for the next run: the reads moved to executor 0's ring, the
 * edges went to its epoll, new tasks to its inbox. */
struct used_by_exec0 {
	struct pair p;
	int pipe[2];
	int high; /* the pipe's read end again, past the fd table's first chunk */
	int lfd;
	zio_addr addr;
};

static void *wait_on_three_fds(void *arg)
{
	struct used_by_exec0 *u = arg;
	char c;
	tcp_pair(&u->p);
	cr_assert_eq(zio_write_all(u->p.client, "1", 1, SOON), 1);
	cr_assert_eq(zio_read(u->p.server, &c, 1, SOON), 1);
	cr_assert_eq(zio_read(u->p.server, &c, 1, zio_deadline_after(ZIO_MSEC(1))), -ETIMEDOUT);
	cr_assert_eq(zio_pipe(u->pipe), 0);
	cr_assert_eq(zio_read(u->pipe[0], &c, 1, zio_deadline_after(ZIO_MSEC(1))), -ETIMEDOUT);
	u->high = fcntl(u->pipe[0], F_DUPFD_CLOEXEC, 1500);
	cr_assert_geq(u->high, 1500);
	cr_assert_eq(zio_read(u->high, &c, 1, zio_deadline_after(ZIO_MSEC(1))), -ETIMEDOUT);
	u->lfd = listen_any(&u->addr);
	cr_assert_eq(zio_tcp_accept(u->lfd, NULL, zio_deadline_after(ZIO_MSEC(1))), -ETIMEDOUT);
	return NULL;
}

struct exec1_wait {
	int fd;
	bool accept;
	atomic_long result; /* LONG_MIN until it returns */
};

static void *wait_on_exec1(void *arg)
{
	struct exec1_wait *w = arg;
	char c;
	long r = w->accept ? zio_tcp_accept(w->fd, NULL, SOON) : zio_read(w->fd, &c, 1, SOON);
	atomic_store(&w->result, r);
	return NULL;
}

/* Spawns wait_on_exec1 from this plain thread, makes fd ready with
 * make_ready, and returns what the task got, which must come soon. */
static long served_soon(zio_runtime *rt, struct exec1_wait *w, void (*make_ready)(void *), void *arg)
{
	atomic_store(&w->result, LONG_MIN);
	zio_task *t;
	cr_assert_eq(zio_spawn(rt, &t, wait_on_exec1, w, NULL), 0);
	usleep(50000); /* it waits (or, before, never started) */
	make_ready(arg);
	int64_t t0 = zio_now();
	while (atomic_load(&w->result) == LONG_MIN && zio_now() - t0 < ZIO_SEC(3))
		usleep(1000);
	cr_assert_neq(atomic_load(&w->result), LONG_MIN, "the task on executor 1 was not served");
	zio_task_join(t, NULL);
	return atomic_load(&w->result);
}

static void write_a_byte(void *fd)
{
	cr_assert_eq(write((int)(intptr_t)fd, "x", 1), 1);
}

static void connect_to(void *addr)
{
	int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(c, 0);
	cr_assert_eq(connect(c, (const struct sockaddr *)&((zio_addr *)addr)->sa,
			     ((zio_addr *)addr)->len), 0);
	close(c);
}

Test(multishot, fds_of_a_stopped_executor_0_serve_the_others, .timeout = 30)
{
	zio_runtime *rt = runtime_with(2);
	struct used_by_exec0 u;
	cr_assert_eq(zio_runtime_run(rt, wait_on_three_fds, &u, NULL), 0);
	struct exec1_wait w = { .fd = u.p.server };
	cr_assert_eq(served_soon(rt, &w, write_a_byte, (void *)(intptr_t)u.p.client), 1);
	w = (struct exec1_wait){ .fd = u.pipe[0] };
	cr_assert_eq(served_soon(rt, &w, write_a_byte, (void *)(intptr_t)u.pipe[1]), 1);
	/* (epoll hands off only below the highest number it registered.) */
	w = (struct exec1_wait){ .fd = u.high };
	cr_assert_eq(served_soon(rt, &w, write_a_byte, (void *)(intptr_t)u.pipe[1]), 1);
	w = (struct exec1_wait){ .fd = u.lfd, .accept = true };
	long fd = served_soon(rt, &w, connect_to, &u.addr);
	cr_assert_geq(fd, 0, "accept: %ld", fd);
	zio_close((int)fd);
	/* Tasks asked to be pinned start too: where they start is theirs. */
	for (int i = 0; i < 4; i++) {
		w = (struct exec1_wait){ .fd = u.pipe[0] };
		zio_task *t;
		atomic_store(&w.result, LONG_MIN);
		cr_assert_eq(zio_spawn(rt, &t, wait_on_exec1, &w, &(struct zio_spawn_options){ .pinned = true }), 0);
		write_a_byte((void *)(intptr_t)u.pipe[1]);
		zio_task_join(t, NULL);
		cr_assert_eq(atomic_load(&w.result), 1, "pinned task %d", i);
	}
	int all[] = { u.p.client, u.p.server, u.pipe[0], u.pipe[1], u.high, u.lfd };
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		cr_assert_eq(zio_close(all[i]), 0);
	zio_runtime_destroy(rt);
}

/* A plain thread reads a socket whose earlier bytes a task's multishot recv
 * took in: it gets them first (its read(2) went past them, to the later
 * bytes). With one executor, stopped, the thread that ran it runs it again
 * for the read; with two, the read runs on the executor that holds the
 * bytes, which is running. */
static void move_to_exec(unsigned i)
{
	struct zio__fiber *me = zio__fiber_current();
	me->flags |= ZIO__FIBER_TEMP_PIN;
	zio__move_to(zio__exec_current()->rt->exec[i]);
	me->flags &= ~ZIO__FIBER_TEMP_PIN;
	zio_task_pin();
}

static void *read_one_on_last_exec_then_wait(void *arg)
{
	struct pair *p = arg;
	move_to_exec(zio_runtime_executors(zio_runtime_current()) - 1);
	char c;
	cr_assert_eq(zio_read(p->server, &c, 1, SOON), 1);
	zio_sleep(ZIO_SEC(60)); /* until destroy cancels it */
	return NULL;
}

static void *bytes_queued_then_return(void *arg)
{
	struct pair *p = arg;
	tcp_pair(p);
	cr_assert_eq(zio_spawn(NULL, NULL, read_one_on_last_exec_then_wait, p, NULL), 0);
	cr_assert_eq(zio_write_all(p->client, "1", 1, SOON), 1);
	zio_sleep(ZIO_MSEC(20)); /* read: the multishot recv stays armed */
	cr_assert_eq(zio_write_all(p->client, "AAAA", 4, SOON), 4);
	zio_sleep(ZIO_MSEC(20)); /* taken in, queued */
	return NULL;
}

static void plain_thread_reads_in_order(unsigned executors)
{
	zio_runtime *rt = runtime_with(executors);
	struct pair p;
	cr_assert_eq(zio_runtime_run(rt, bytes_queued_then_return, &p, NULL), 0);
	cr_assert_eq(write(p.client, "BBBB", 4), 4);
	char buf[16] = "";
	ssize_t r = zio_read(p.server, buf, sizeof(buf), SOON);
	cr_assert(r == 4 || r == 8, "read: %zd", r);
	cr_assert_eq(memcmp(buf, "AAAA", 4), 0, "read '%.*s' first", (int)r, buf);
	close_pair(&p);
	zio_runtime_destroy(rt);
}

Test(multishot, plain_thread_reads_in_order, .timeout = 20)
{
	plain_thread_reads_in_order(1);
}

Test(multishot, plain_thread_reads_in_order_two_executors, .timeout = 20)
{
	plain_thread_reads_in_order(2);
}

/* A plain thread that starts its read while the runtime runs, on a socket
 * executor 0's ring serves, and waits on after zio_runtime_run() returns:
 * the data that comes then is its (a task waiting for it on executor 0
 * kept the request there, and the thread waited for the next run). */
struct late_reader {
	int fd;
	atomic_long r;
};

static void *plain_read(void *arg)
{
	struct late_reader *lr = arg;
	char buf[16];
	atomic_store(&lr->r, zio_read(lr->fd, buf, sizeof(buf), zio_deadline_after(ZIO_SEC(10))));
	return NULL;
}

struct left_reading {
	struct pair p;
	struct late_reader lr;
	pthread_t thread;
};

static void *start_a_plain_reader(void *arg)
{
	struct left_reading *lr = arg;
	move_to_exec(0);
	tcp_pair(&lr->p);
	char c;
	cr_assert_eq(zio_write_all(lr->p.client, "1", 1, SOON), 1);
	cr_assert_eq(zio_read(lr->p.server, &c, 1, SOON), 1);
	lr->lr.fd = lr->p.server;
	atomic_store(&lr->lr.r, LONG_MIN);
	cr_assert_eq(pthread_create(&lr->thread, NULL, plain_read, &lr->lr), 0);
	zio_sleep(ZIO_MSEC(50)); /* it waits */
	return NULL;
}

Test(multishot, plain_read_outlives_the_run, .timeout = 20)
{
	zio_runtime *rt = runtime_with(2);
	struct left_reading lr;
	cr_assert_eq(zio_runtime_run(rt, start_a_plain_reader, &lr, NULL), 0);
	cr_assert_eq(write(lr.p.client, "x", 1), 1);
	int64_t t0 = zio_now();
	while (atomic_load(&lr.lr.r) == LONG_MIN && zio_now() - t0 < ZIO_SEC(3))
		usleep(1000);
	cr_assert_eq(atomic_load(&lr.lr.r), 1, "the plain thread's read: %ld", atomic_load(&lr.lr.r));
	pthread_join(lr.thread, NULL);
	close_pair(&lr.p);
	zio_runtime_destroy(rt);
}

/* A task of runtime B (any backend) reads, byte by byte, a socket whose
 * input runtime A's ring takes in, while A runs; B's reader is cancelled at
 * random moments and replaced. No byte is lost or reordered: what a try
 * took for a reader cancelled meanwhile is still that reader's (it was
 * dropped), and an epoll or poll runtime asks A too (it read the socket
 * past A's queue, or waited for bytes A had taken). */
struct cross_stream {
	struct pair p;
	atomic_int ready, stop;
	int sent, got, gaps;
	unsigned char expect;
};

static void *serve_from_a(void *arg)
{
	struct cross_stream *cs = arg;
	tcp_pair(&cs->p);
	unsigned char c = 0xff;
	cr_assert_eq(zio_write_all(cs->p.client, &c, 1, SOON), 1);
	cr_assert_eq(zio_read(cs->p.server, &c, 1, SOON), 1); /* A's request */
	atomic_store(&cs->ready, 1);
	while (!atomic_load(&cs->stop))
		zio_sleep(ZIO_MSEC(5));
	return NULL;
}

static void *runtime_a(void *arg)
{
	struct cross_stream *cs = arg;
	run_with(&(struct zio_runtime_options){ .executors = 2, .backend = "uring" }, serve_from_a, cs);
	return NULL;
}

static void *send_bytes(void *arg)
{
	struct cross_stream *cs = arg;
	for (; cs->sent < 3000; cs->sent++) {
		unsigned char c = (unsigned char)cs->sent;
		cr_assert_eq(write(cs->p.client, &c, 1), 1);
		usleep(100);
	}
	return NULL;
}

static void *read_bytes(void *arg)
{
	struct cross_stream *cs = arg;
	unsigned char c;
	while (zio_read(cs->p.server, &c, 1, zio_deadline_after(ZIO_SEC(2))) == 1) {
		cs->gaps += c != cs->expect;
		cs->expect = (unsigned char)(c + 1);
		cs->got++;
	}
	return NULL;
}

static void *read_with_cancels(void *arg)
{
	struct cross_stream *cs = arg;
	int64_t end = zio_now() + ZIO_SEC(10);
	while (cs->got < 3000 && zio_now() < end) {
		zio_task *t;
		cr_assert_eq(zio_spawn(NULL, &t, read_bytes, cs, NULL), 0);
		zio_sleep(ZIO_USEC(200 + rand() % 2000));
		zio_task_cancel(t);
		zio_task_join(t, NULL);
	}
	return NULL;
}

Test(multishot, another_runtimes_reader_cancelled_loses_nothing, .timeout = 60)
{
	struct cross_stream cs = { .expect = 0 };
	pthread_t a, sender;
	cr_assert_eq(pthread_create(&a, NULL, runtime_a, &cs), 0);
	while (!atomic_load(&cs.ready))
		usleep(1000);
	cr_assert_eq(pthread_create(&sender, NULL, send_bytes, &cs), 0);
	run_in_runtime(1, read_with_cancels, &cs);
	pthread_join(sender, NULL);
	atomic_store(&cs.stop, 1);
	pthread_join(a, NULL);
	cr_assert_eq(cs.gaps, 0, "%d gaps in %d bytes", cs.gaps, cs.got);
	cr_assert_eq(cs.got, 3000, "got %d of 3000", cs.got);
	close_pair(&cs.p);
}

/* A task of one runtime reads a socket another runtime's ring serves, whose
 * executor 0 has stopped with input queued there: it waits for that
 * runtime to run again, which serves it (it stopped zio on a check that a
 * task moves only within its runtime). */
static void *read_first_byte(void *arg)
{
	struct pair *p = arg;
	tcp_pair(p);
	char c;
	cr_assert_eq(zio_write_all(p->client, "1", 1, SOON), 1);
	cr_assert_eq(zio_read(p->server, &c, 1, SOON), 1);
	return NULL;
}

/* The same, leaving "x" behind (on io_uring, in the multishot queue). */
static void *read_first_of_two(void *arg)
{
	struct pair *p = arg;
	tcp_pair(p);
	char c;
	cr_assert_eq(zio_write_all(p->client, "1x", 2, SOON), 2);
	cr_assert_eq(zio_read(p->server, &c, 1, SOON), 1);
	return NULL;
}

struct b_reads {
	struct pair p;
	atomic_int done;
};

static void *read_the_rest(void *arg)
{
	struct b_reads *br = arg;
	char buf[8];
	ssize_t r = zio_read(br->p.server, buf, sizeof(buf), SOON);
	atomic_store(&br->done, 1);
	cr_assert(r >= 1 && buf[0] == 'x', "read: %zd", r);
	return NULL;
}

static void *runtime_b_reads(void *arg)
{
	run_in_runtime(1, read_the_rest, arg);
	return NULL;
}

static void *run_until_read(void *arg)
{
	struct b_reads *br = arg;
	for (int i = 0; i < 1000 && !atomic_load(&br->done); i++)
		zio_sleep(ZIO_MSEC(5));
	return NULL;
}

Test(multishot, a_task_of_another_runtime_reads, .timeout = 20)
{
	zio_runtime *a = runtime_with(1);
	struct b_reads br = { 0 };
	cr_assert_eq(zio_runtime_run(a, read_first_of_two, &br.p, NULL), 0);
	pthread_t b;
	cr_assert_eq(pthread_create(&b, NULL, runtime_b_reads, &br), 0);
	usleep(50000);
	cr_assert_eq(zio_runtime_run(a, run_until_read, &br, NULL), 0); /* serves it */
	pthread_join(b, NULL);
	cr_assert(atomic_load(&br.done));
	close_pair(&br.p);
	zio_runtime_destroy(a);
}

/* Once a one-executor runtime's zio_runtime_run() has returned, a socket
 * its task read is the rest of the program's: a plain thread's read and
 * another runtime's task's read see what arrives next, with the runtime
 * never run again (io_uring kept its idle multishot request armed, epoll
 * its registration, so both waited for a run that never came). */
static void *plain_read_of_the_pair(void *arg)
{
	struct b_reads *br = arg;
	char buf[8];
	ssize_t r = zio_read(br->p.server, buf, sizeof(buf), SOON);
	cr_assert(r >= 1 && buf[0] == 'x', "plain thread's read: %zd", r);
	atomic_store(&br->done, 1);
	return NULL;
}

Test(multishot, a_socket_outlives_a_one_executor_run, .timeout = 20)
{
	zio_runtime *a = runtime_with(1);
	struct b_reads br = { 0 };
	cr_assert_eq(zio_runtime_run(a, read_first_byte, &br.p, NULL), 0);
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, plain_read_of_the_pair, &br), 0);
	usleep(50000);
	cr_assert_eq(write(br.p.client, "x", 1), 1);
	pthread_join(t, NULL);
	cr_assert(atomic_load(&br.done));

	atomic_store(&br.done, 0);
	cr_assert_eq(pthread_create(&t, NULL, runtime_b_reads, &br), 0);
	usleep(50000);
	cr_assert_eq(write(br.p.client, "x", 1), 1);
	pthread_join(t, NULL);
	cr_assert(atomic_load(&br.done));
	close_pair(&br.p);
	zio_runtime_destroy(a);
}

static void *close_on_this_thread(void *arg)
{
	return (void *)(intptr_t)zio_close((int)(intptr_t)arg);
}

/* The same from another plain thread, which cannot drive executor 0's
 * ring: its zio_close() returns at once, the number is free, and the file
 * ends when the runtime next runs. No descriptor is left over. */
Test(multishot, close_on_another_thread_after_run_returned, .timeout = 20)
{
	int fds_before = open_fds();
	zio_runtime *rt = runtime_with(1);
	struct left_behind lb = { 0 };
	cr_assert_eq(zio_runtime_run(rt, leave_a_reader, &lb, NULL), 0);
	pthread_t t;
	void *r;
	cr_assert_eq(pthread_create(&t, NULL, close_on_this_thread, (void *)(intptr_t)lb.p.server), 0);
	cr_assert_eq(pthread_join(t, &r), 0);
	cr_assert_eq((intptr_t)r, 0);
	/* The number is free, whatever the ring holds. */
	cr_assert(fcntl(lb.p.server, F_GETFD) < 0 && errno == EBADF);
	cr_assert_eq(zio_runtime_run(rt, do_nothing, NULL, NULL), 0);
	/* A single-shot recv in the ring (io_uring without multishot) is out
	 * of a plain thread's reach: the reader's end (destroy) ends it. */
	bool single_shot_stays = strcmp(zio_runtime_backend(rt), "uring") == 0 && !zio__uring_multishot_on();
	if (!single_shot_stays)
		peer_sees_the_end(lb.p.client);
	zio_runtime_destroy(rt);
	peer_sees_the_end(lb.p.client);
	cr_assert_eq(zio_close(lb.p.client), 0);
	cr_assert_eq(lb.r.r, single_shot_stays ? -ECANCELED : -EBADF, "reader: %zd", lb.r.r);
	cr_assert_eq(open_fds(), fds_before);
}

static void *destroy_on_this_thread(void *arg)
{
	zio_runtime_destroy(arg);
	return NULL;
}

/* A thread that ran a runtime remembers it for zio_close(); a runtime
 * destroyed since (by another thread, which epoll and poll allow) is
 * forgotten, not used after it is freed. */
Test(multishot, close_after_another_thread_destroyed_the_runtime, .timeout = 20)
{
	int fds_before = open_fds();
	zio_runtime *rt = runtime_with(1);
	bool uring = strcmp(zio_runtime_backend(rt), "uring") == 0;
	struct left_behind lb = { 0 };
	cr_assert_eq(zio_runtime_run(rt, leave_a_reader, &lb, NULL), 0);
	if (uring) {
		/* Its ring takes submissions from this thread only. */
		zio_runtime_destroy(rt);
	} else {
		pthread_t t;
		cr_assert_eq(pthread_create(&t, NULL, destroy_on_this_thread, rt), 0);
		cr_assert_eq(pthread_join(t, NULL), 0);
	}
	cr_assert_eq(lb.r.r, -ECANCELED, "reader: %zd", lb.r.r);
	cr_assert_eq(zio_close(lb.p.server), 0);
	peer_sees_the_end(lb.p.client);
	cr_assert_eq(zio_close(lb.p.client), 0);
	cr_assert_eq(open_fds(), fds_before);
}

/* Moves the calling task to executor i and pins it there. */
static void settle_on(unsigned i)
{
	struct zio__fiber *me = zio__fiber_current();
	me->flags |= ZIO__FIBER_TEMP_PIN;
	zio__move_to(zio__exec_current()->rt->exec[i]);
	me->flags &= ~ZIO__FIBER_TEMP_PIN;
	zio_task_pin();
}

struct busy_close {
	struct pair p;
	unsigned busy_exec, other_exec;
	atomic_bool closed;
	bool reused_ok;
};

/* On the other executor: closes the socket the busy one reads, then uses
 * its number for a new connection while the busy one still holds the old
 * file's requests. */
static void *close_then_reuse(void *arg)
{
	struct busy_close *bc = arg;
	settle_on(bc->other_exec);
	cr_assert_eq(zio_close(bc->p.server), 0);
	struct pair q;
	tcp_pair(&q);
	int reused = q.client == bc->p.server || q.server == bc->p.server;
	char buf[4];
	bc->reused_ok = reused && zio_write_all(q.client, "abc", 3, SOON) == 3 &&
			zio_read(q.server, buf, sizeof(buf), SOON) == 3 && memcmp(buf, "abc", 3) == 0;
	close_pair(&q);
	atomic_store(&bc->closed, true);
	return NULL;
}

/* zio_close() in a task on one executor of a socket whose requests are in
 * a busy executor's ring does not wait for that executor (it deadlocked
 * when the busy one waited for the close), and the number's next file is
 * not confused with the old one, whose reader gets -EBADF. */
static void *close_beside_a_busy_executor(void *arg)
{
	(void)arg;
	struct busy_close bc = { .busy_exec = 0, .other_exec = 1 };
	settle_on(bc.busy_exec);
	tcp_pair(&bc.p);
	char buf[1];
	cr_assert_eq(zio_write_all(bc.p.client, "1", 1, SOON), 1);
	cr_assert_eq(zio_read(bc.p.server, buf, 1, SOON), 1);
	struct reader r = { .fd = bc.p.server };
	zio_task *reader, *closer;
	cr_assert_eq(zio_spawn(NULL, &reader, read_once, &r, &(struct zio_spawn_options){ .pinned = true }), 0);
	zio_sleep(ZIO_MSEC(10));
	cr_assert_eq(zio_spawn(NULL, &closer, close_then_reuse, &bc, NULL), 0);
	/* Busy: no yield, so this executor polls nothing until it stops. */
	int64_t give_up = zio_deadline_after(ZIO_SEC(5));
	while (!atomic_load(&bc.closed) && zio_now() < give_up)
		;
	cr_assert(atomic_load(&bc.closed), "zio_close waited for the busy executor");
	zio_task_join(closer, NULL);
	cr_assert(bc.reused_ok, "the number's new connection did not work");
	zio_task_join(reader, NULL);
	cr_assert_eq(r.r, -EBADF, "reader: %zd", r.r);
	ssize_t e = zio_read(bc.p.client, buf, 1, SOON);
	cr_assert(e == 0 || e == -ECONNRESET, "peer: %zd", e);
	zio_close(bc.p.client);
	return NULL;
}

Test(multishot, close_beside_a_busy_executor, .timeout = 30)
{
	int fds_before = open_fds();
	run_in_runtime(2, close_beside_a_busy_executor, NULL);
	cr_assert_eq(open_fds(), fds_before);
}

struct relisten {
	int lfd;
	unsigned exec;
	atomic_bool accepting;
};

static void *accept_on_exec(void *arg)
{
	struct relisten *rl = arg;
	settle_on(rl->exec);
	atomic_store(&rl->accepting, true);
	return (void *)(intptr_t)zio_accept(rl->lfd, NULL, SOON);
}

/* zio_close() of a listener a task of another executor waits to accept
 * on frees its address, as close(2) would: a listen on it right after
 * works (unless that executor did not poll within the close's wait). On io_uring the accept is in the other executor's ring, which
 * closed the file at its next poll, after zio_close() had returned (the
 * listen then failed with EADDRINUSE, a few times in a hundred). Both
 * ways round: executor 0 closing what executor 1 accepts on, and back. */
static void *close_then_listen_again(void *arg)
{
	bool no_spare = arg != NULL;
	for (unsigned i = 0; i < (no_spare ? 50u : 200u); i++) {
		unsigned closer = i % 2;
		settle_on(closer);
		zio_addr a;
		struct relisten rl = { .lfd = listen_any(&a), .exec = !closer };
		zio_task *t;
		cr_assert_eq(zio_spawn(NULL, &t, accept_on_exec, &rl, NULL), 0);
		while (!atomic_load(&rl.accepting))
			zio_yield();
		zio_sleep(ZIO_MSEC(1)); /* into its wait */
		struct rlimit old, none_above;
		if (no_spare) {
			/* No number free at or above the listener's: the close
			 * cannot keep the file under a spare one and hands the
			 * cancel to the other ring by the listener's number. */
			cr_assert_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
			none_above = (struct rlimit){ .rlim_cur = (rlim_t)rl.lfd + 1, .rlim_max = old.rlim_max };
			cr_assert_eq(setrlimit(RLIMIT_NOFILE, &none_above), 0);
		}
		int64_t t0 = zio_now();
		cr_assert_eq(zio_close(rl.lfd), 0);
		int64_t took = zio_now() - t0;
		if (no_spare)
			cr_assert_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
		int again = zio_tcp_listen(&a, NULL);
		if (again < 0) {
			/* Only if the other executor did not poll within the
			 * close's wait (a loaded machine, a sanitizer). */
			cr_assert(again == -EADDRINUSE && took >= ZIO__CLOSE_WAIT_MAX,
				  "round %u (closed on executor %u in %lld us): listen again: %d", i,
				  closer, (long long)took / 1000, again);
			while ((again = zio_tcp_listen(&a, NULL)) == -EADDRINUSE)
				zio_sleep(ZIO_MSEC(1));
			cr_assert_geq(again, 0, "round %u: listen again: %d", i, again);
		}
		/* Closed before the join: an acceptor slow to start its wait
		 * (under a sanitizer, an emulator) accepts on the new listener,
		 * which took the closed one's number. */
		cr_assert_eq(zio_close(again), 0);
		void *r;
		zio_task_join(t, &r);
		/* (At the limit, an accept the ring issues during the close
		 * (a slow acceptor, or single-shot accepts, which are issued
		 * again after each wake) fails with EMFILE: io_uring takes a
		 * number for the connection first.) */
		cr_assert((intptr_t)r == -EBADF || (no_spare && (intptr_t)r == -EMFILE),
			  "round %u: accept: %d", i, (int)(intptr_t)r);
		struct zio__fiber *me = zio__fiber_current();
		me->flags &= ~ZIO__FIBER_PINNED;
	}
	return NULL;
}

Test(multishot, close_frees_a_listeners_address_for_the_next_listen, .timeout = 60)
{
	run_in_runtime(2, close_then_listen_again, NULL);
}

/* The same at the descriptor limit, where a close has no spare number to
 * keep the file under (it is when servers close descriptors): the close
 * went on once the other ring's cancel completed, before the requests it
 * ended let the file go. */
Test(multishot, close_at_the_descriptor_limit_frees_a_listeners_address, .timeout = 60)
{
	run_in_runtime(2, close_then_listen_again, (void *)1);
}

/* A read queued for the kernel but not yet submitted (io_uring: the
 * executor has not polled since) when another executor closes the fd and
 * the number goes to a new pipe: the read must end with -EBADF, not be
 * submitted on the new file and take its bytes. */
struct unsubmitted {
	int old_rd, old_wr;
	atomic_bool reader_parked, closed;
	ssize_t r;
	char c;
};

static void *spin_a_while(void *arg)
{
	struct unsubmitted *u = arg;
	atomic_store(&u->reader_parked, true);
	/* No yield: this executor submits nothing until the spin ends. */
	int64_t until = zio_deadline_after(ZIO_MSEC(300));
	while (!atomic_load(&u->closed) && zio_now() < until)
		;
	return NULL;
}

static void *read_after_spawning_a_spinner(void *arg)
{
	struct unsubmitted *u = arg;
	zio_task_pin();
	cr_assert_eq(zio_spawn(NULL, NULL, spin_a_while, u, &(struct zio_spawn_options){ .pinned = true }), 0);
	u->r = zio_read(u->old_rd, &u->c, 1, SOON);
	return NULL;
}

static void *close_and_reuse_the_number(void *arg)
{
	struct unsubmitted *u = arg;
	settle_on(1);
	int q[2];
	cr_assert_eq(zio_pipe(q), 0);
	while (!atomic_load(&u->reader_parked))
		zio_sleep(ZIO_MSEC(1));
	cr_assert_eq(zio_close(u->old_rd), 0);
	cr_assert_eq(dup2(q[0], u->old_rd), u->old_rd);
	close(q[0]);
	cr_assert_eq(zio_write_all(q[1], "x", 1, SOON), 1);
	zio_close(q[1]);
	atomic_store(&u->closed, true);
	return NULL;
}

static void *close_while_a_read_is_unsubmitted(void *arg)
{
	(void)arg;
	settle_on(0);
	struct unsubmitted u = { 0 };
	int p[2];
	cr_assert_eq(zio_pipe(p), 0);
	u.old_rd = p[0];
	u.old_wr = p[1];
	zio_task *reader, *closer;
	cr_assert_eq(zio_spawn(NULL, &closer, close_and_reuse_the_number, &u, NULL), 0);
	cr_assert_eq(zio_spawn(NULL, &reader, read_after_spawning_a_spinner, &u,
			       &(struct zio_spawn_options){ .pinned = true }), 0);
	zio_task_join(reader, NULL);
	zio_task_join(closer, NULL);
	cr_assert_eq(u.r, -EBADF, "the closed pipe's read returned %zd", u.r);
	/* The number's new pipe kept its byte. */
	char c = 0;
	cr_assert_eq(zio_read(u.old_rd, &c, 1, SOON), 1);
	cr_assert_eq(c, 'x');
	zio_close(u.old_rd);
	zio_close(u.old_wr);
	return NULL;
}

Test(multishot, close_while_a_read_is_unsubmitted, .timeout = 20)
{
	run_in_runtime(2, close_while_a_read_is_unsubmitted, NULL);
}

/* The same with a file write queued by a task on the other executor
 * (file ops name their fd by number too): it must land in the closed file
 * or fail, never in the file that next gets the number. On io_uring,
 * where the write is the ring's; on epoll and poll a pool thread does it,
 * and only checks the fd's incarnation just before its pwrite (a pool
 * thread preempted in between can still miss the close: not tested). */
struct unsubmitted_write {
	struct unsubmitted u;
	ssize_t w;
};

static void *write_after_spawning_a_spinner(void *arg)
{
	struct unsubmitted_write *uw = arg;
	settle_on(1);
	cr_assert_eq(zio_spawn(NULL, NULL, spin_a_while, &uw->u,
			       &(struct zio_spawn_options){ .pinned = true }), 0);
	uw->w = zio_file_pwrite(uw->u.old_rd, "old", 3, 0, SOON);
	return NULL;
}

static void *close_while_a_file_write_is_unsubmitted(void *arg)
{
	(void)arg;
	if (strcmp(zio_runtime_backend(zio_runtime_current()), "uring") != 0)
		return NULL;
	settle_on(0);
	char old_path[] = "/tmp/zio_unsubmitted_old_XXXXXX", new_path[] = "/tmp/zio_unsubmitted_new_XXXXXX";
	int old_fd = mkstemp(old_path), new_fd = mkstemp(new_path);
	cr_assert(old_fd >= 0 && new_fd >= 0);
	unlink(old_path);
	unlink(new_path);
	struct unsubmitted_write uw = { .u = { .old_rd = old_fd } };
	zio_task *writer;
	cr_assert_eq(zio_spawn(NULL, &writer, write_after_spawning_a_spinner, &uw, NULL), 0);
	while (!atomic_load(&uw.u.reader_parked))
		zio_sleep(ZIO_MSEC(1));
	cr_assert_eq(zio_close(old_fd), 0);
	cr_assert_eq(dup2(new_fd, old_fd), old_fd);
	atomic_store(&uw.u.closed, true);
	zio_task_join(writer, NULL);
	cr_assert(uw.w == 3 || uw.w == -EBADF, "write: %zd", uw.w);
	struct stat st;
	cr_assert_eq(fstat(new_fd, &st), 0);
	cr_assert_eq(st.st_size, 0, "the write went to the number's next file");
	close(old_fd);
	close(new_fd);
	return NULL;
}

Test(multishot, close_while_a_file_write_is_unsubmitted, .timeout = 20)
{
	run_in_runtime(2, close_while_a_file_write_is_unsubmitted, NULL);
}

/* A socket closed behind zio's back (plain close) while a task reads it,
 * then zio_close()d from another executor, which has no number left to
 * name the file by: a multishot request, zio's own, must still end (the
 * connection with it), and the reader gets -EBADF. */
struct behind_back {
	int fd;
	int close_r;
};

static void *close_behind_then_zio_close(void *arg)
{
	struct behind_back *bb = arg;
	settle_on(1);
	close(bb->fd);
	bb->close_r = zio_close(bb->fd);
	return NULL;
}

static void *closed_behind_zios_back(void *arg)
{
	(void)arg;
	settle_on(0);
	struct pair p;
	tcp_pair(&p);
	char buf[1];
	cr_assert_eq(zio_write_all(p.client, "1", 1, SOON), 1);
	cr_assert_eq(zio_read(p.server, buf, 1, SOON), 1);
	struct reader r = { .fd = p.server };
	zio_task *reader, *closer;
	cr_assert_eq(zio_spawn(NULL, &reader, read_once, &r, &(struct zio_spawn_options){ .pinned = true }), 0);
	zio_sleep(ZIO_MSEC(10));
	struct behind_back bb = { .fd = p.server };
	cr_assert_eq(zio_spawn(NULL, &closer, close_behind_then_zio_close, &bb, NULL), 0);
	zio_task_join(closer, NULL);
	cr_assert_eq(bb.close_r, -EBADF);
	if (strcmp(zio_runtime_backend(zio_runtime_current()), "uring") == 0 && !expect_multishot()) {
		/* A single recv in the ring holds the file, which no number
		 * names any more, as a read(2) blocked in another thread
		 * does after close(2): it ends with the next bytes. */
		cr_assert_eq(zio_write_all(p.client, "z", 1, SOON), 1);
		zio_task_join(reader, NULL);
		cr_assert_eq(r.r, 1, "reader: %zd", r.r);
	} else {
		zio_task_join(reader, NULL);
		cr_assert_eq(r.r, -EBADF, "reader: %zd", r.r);
	}
	ssize_t e = zio_read(p.client, buf, 1, SOON);
	cr_assert(e == 0 || e == -ECONNRESET, "the peer never saw the end: %zd", e);
	zio_close(p.client);
	return NULL;
}

Test(multishot, closed_behind_zios_back_then_zio_close, .timeout = 20)
{
	run_in_runtime(2, closed_behind_zios_back, NULL);
}

/* A listener whose queued connections are taken by nobody yet is
 * readable; a zero-length read returns 0 at once; MSG_TRUNC discards. */
static void *listener_readable_and_odd_reads(void *arg)
{
	(void)arg;
	zio_addr a;
	int lfd = listen_any(&a);
	int c0 = zio_tcp_connect(&a, SOON);
	int s0 = zio_tcp_accept(lfd, NULL, SOON);
	cr_assert_geq(s0, 0);
	int c1 = zio_tcp_connect(&a, SOON);
	int ev = zio_wait_fd(lfd, POLLIN, SOON);
	cr_assert(ev > 0 && (ev & POLLIN), "listener wait: %d", ev);
	int s1 = zio_tcp_accept(lfd, NULL, SOON);
	cr_assert_geq(s1, 0);

	char buf[8];
	cr_assert_eq(zio_write_all(c0, "x", 1, SOON), 1);
	cr_assert_eq(zio_read(s0, buf, 1, SOON), 1);
	/* A zero-length read returns 0 at once, as read(2) does (it waited
	 * for data, as recv(2) does: zio_readv() did not); a zero-length
	 * recv waits for data, and then returns 0 leaving the data. */
	int64_t t0 = zio_now();
	cr_assert_eq(zio_read(s0, buf, 0, zio_deadline_after(ZIO_SEC(5))), 0);
	cr_assert_lt(zio_now() - t0, ZIO_SEC(1));
	cr_assert_eq(zio_recv(s0, buf, 0, 0, zio_deadline_after(ZIO_MSEC(20))), -ETIMEDOUT);
	cr_assert_eq(zio_write_all(c0, "abcdef", 6, SOON), 6);
	zio_sleep(ZIO_MSEC(10));
	cr_assert_eq(zio_recv(s0, buf, 0, 0, SOON), 0);
	cr_assert_eq(zio_read(s0, buf, 0, SOON), 0);
	cr_assert_eq(zio_recv(s0, NULL, 3, MSG_TRUNC, SOON), 3);
	read_exact(s0, buf, 3);
	cr_assert_eq(memcmp(buf, "def", 3), 0);
	zio_close(s0);
	zio_close(s1);
	zio_close(c0);
	zio_close(c1);
	zio_close(lfd);
	return NULL;
}

Test(multishot, listener_readable_zero_reads_trunc, .timeout = 20)
{
	run_in_runtime(1, listener_readable_and_odd_reads, NULL);
}

/* Calls that read the stream in other shapes once bytes are queued: a
 * recvmsg with a control buffer gets them in order, with no ancillary data
 * (it went to the kernel past the queue: it waited, then took later bytes
 * first); a zero-length readv returns 0 at once, as readv(2) does; a
 * readiness wait for input and output says both, and after a reset,
 * POLLERR and POLLHUP with the queued input, as poll(2) does. */
static void *other_shapes_of_reads(void *arg)
{
	(void)arg;
	struct pair p;
	tcp_pair(&p);
	char buf[16];
	cr_assert_eq(zio_write_all(p.client, "0", 1, SOON), 1);
	read_exact(p.server, buf, 1); /* arms multishot recv, where there is one */
	cr_assert_eq(zio_write_all(p.client, "AAAA", 4, SOON), 4);
	cr_assert_eq(zio_write_all(p.client, "BBBB", 4, SOON), 4);
	zio_sleep(ZIO_MSEC(20));
	union {
		struct cmsghdr align;
		char bytes[256];
	} control;
	struct iovec iov = { buf, sizeof(buf) };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.bytes,
			    .msg_controllen = sizeof(control.bytes) };
	int64_t t0 = zio_now();
	cr_assert_eq(zio_recvmsg(p.server, &m, 0, zio_deadline_after(ZIO_SEC(2))), 8);
	cr_assert_lt(zio_now() - t0, ZIO_SEC(1));
	cr_assert_eq(memcmp(buf, "AAAABBBB", 8), 0);
	cr_assert_eq(m.msg_controllen, 0u);

	struct iovec none = { buf, 0 };
	t0 = zio_now();
	cr_assert_eq(zio_readv(p.server, &none, 1, zio_deadline_after(ZIO_SEC(2))), 0);
	cr_assert_lt(zio_now() - t0, ZIO_SEC(1));

	cr_assert_eq(zio_write_all(p.client, "C", 1, SOON), 1);
	zio_sleep(ZIO_MSEC(20));
	/* More buffers than the kernel takes: its answer, and nothing taken
	 * (the queue's reads said 1). */
	static struct iovec too_many[IOV_MAX + 1];
	for (size_t i = 0; i < IOV_MAX + 1; i++)
		too_many[i] = (struct iovec){ buf, 1 };
	cr_assert_eq(zio_readv(p.server, too_many, IOV_MAX + 1, SOON), -EINVAL);
	struct msghdr big = { .msg_iov = too_many, .msg_iovlen = IOV_MAX + 1 };
	cr_assert_eq(zio_recvmsg(p.server, &big, 0, SOON), -EMSGSIZE);
	int ev = zio_wait_fd(p.server, POLLIN | POLLOUT, SOON);
	cr_assert_eq(ev & (POLLIN | POLLOUT), POLLIN | POLLOUT, "events %#x", ev);
	struct linger reset = { 1, 0 };
	cr_assert_eq(setsockopt(p.client, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset)), 0);
	cr_assert_eq(zio_close(p.client), 0);
	zio_sleep(ZIO_MSEC(20));
	ev = zio_wait_fd(p.server, POLLIN, SOON);
	cr_assert_eq(ev & (POLLIN | POLLERR | POLLHUP), POLLIN | POLLERR | POLLHUP, "events %#x", ev);
	cr_assert_eq(zio_read(p.server, buf, sizeof(buf), SOON), 1);
	cr_assert_eq(zio_read(p.server, buf, sizeof(buf), SOON), -ECONNRESET);
	cr_assert_eq(zio_close(p.server), 0);
	return NULL;
}

Test(multishot, other_shapes_of_reads, .timeout = 20)
{
	run_in_runtime(1, other_shapes_of_reads, NULL);
}

/* A recvmsg with a control buffer says "no ancillary data" however it
 * ends: MSG_WAITALL cut short by EOF, then EOF itself (the caller's
 * msg_controllen was left, and CMSG_FIRSTHDR() read its buffer). */
static void *recvmsg_control_at_eof(void *arg)
{
	(void)arg;
	struct pair p;
	tcp_pair(&p);
	char buf[16];
	cr_assert_eq(zio_write_all(p.client, "0", 1, SOON), 1);
	read_exact(p.server, buf, 1);
	cr_assert_eq(zio_write_all(p.client, "WXYZ", 4, SOON), 4);
	cr_assert_eq(zio_shutdown(p.client, SHUT_WR), 0);
	union {
		struct cmsghdr align;
		char bytes[256];
	} control;
	for (int i = 0; i < 2; i++) {
		memset(&control, 0x5a, sizeof(control));
		struct iovec iov = { buf, 8 };
		struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.bytes,
				    .msg_controllen = sizeof(control.bytes), .msg_flags = 0x5a5a };
		ssize_t r = zio_recvmsg(p.server, &m, MSG_WAITALL, SOON);
		cr_assert_eq(r, i == 0 ? 4 : 0, "recvmsg %d: %zd", i, r);
		cr_assert_eq(m.msg_controllen, 0u, "recvmsg %d", i);
		cr_assert_null(CMSG_FIRSTHDR(&m));
		cr_assert_eq(m.msg_flags & ~MSG_CMSG_CLOEXEC, 0, "flags %#x", m.msg_flags);
	}
	close_pair(&p);
	return NULL;
}

Test(multishot, recvmsg_control_at_eof, .timeout = 20)
{
	run_in_runtime(1, recvmsg_control_at_eof, NULL);
}

/* A listener that cannot accept for want of fds is readable, as poll(2)
 * says, not in error: the EMFILE is the accepting caller's. */
static void *listener_out_of_fds(void *arg)
{
	(void)arg;
	zio_addr a;
	int lfd = listen_any(&a);
	cr_assert_eq(zio_tcp_accept(lfd, NULL, zio_deadline_after(ZIO_MSEC(10))), -ETIMEDOUT);
	int spare[1024], n = 0;
	while (n < 1024 && (spare[n] = dup(0)) >= 0)
		n++;
	close(spare[--n]); /* one for the client: none for the accept */
	int c = zio_tcp_connect(&a, SOON);
	cr_assert_geq(c, 0);
	int r = zio_tcp_accept(lfd, NULL, SOON);
	cr_assert_eq(r, -EMFILE, "accept: %d", r);
	int ev = zio_wait_fd(lfd, POLLIN, SOON);
	struct pollfd pf = { .fd = lfd, .events = POLLIN };
	cr_assert_eq(poll(&pf, 1, 0), 1);
	cr_assert_eq(ev, pf.revents, "zio_wait_fd %#x, poll(2) %#x", ev, pf.revents);
	while (n > 0)
		close(spare[--n]);
	int s = zio_tcp_accept(lfd, NULL, SOON);
	cr_assert_geq(s, 0, "accept after: %d", s);
	zio_close(s);
	zio_close(c);
	zio_close(lfd);
	return NULL;
}

Test(multishot, listener_readable_while_out_of_fds, .timeout = 20)
{
	/* Before the runtime: io_uring's accept went by the limit its ring
	 * was made under. */
	struct rlimit low = { .rlim_cur = 64, .rlim_max = 64 };
	struct rlimit old;
	cr_assert_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
	low.rlim_max = old.rlim_max;
	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
	run_in_runtime(1, listener_out_of_fds, NULL);
}

/* Two executors' tasks accepting on one listener: every connection is
 * accepted exactly once and stays open. Then a task pinned to one
 * executor reads a socket whose request the other owns, and is back on
 * its own executor after. */
struct acceptor {
	int lfd;
	unsigned exec;
	int fds[64];
	int n;
};

static void *accept_on(void *arg)
{
	struct acceptor *ac = arg;
	struct zio__exec *here = zio__exec_current();
	struct zio__fiber *me = zio__fiber_current();
	me->flags |= ZIO__FIBER_TEMP_PIN;
	zio__move_to(here->rt->exec[ac->exec]);
	me->flags &= ~ZIO__FIBER_TEMP_PIN;
	zio_task_pin();
	for (;;) {
		int fd = zio_tcp_accept(ac->lfd, NULL, zio_deadline_after(ZIO_MSEC(300)));
		if (fd < 0)
			return NULL;
		ac->fds[ac->n++] = fd;
	}
}

static void *two_acceptors(void *arg)
{
	(void)arg;
	zio_addr a;
	int lfd = listen_any(&a);
	struct acceptor ac[2] = { { .lfd = lfd, .exec = 0 }, { .lfd = lfd, .exec = 1 } };
	zio_task *t[2];
	for (int i = 0; i < 2; i++)
		cr_assert_eq(zio_spawn(NULL, &t[i], accept_on, &ac[i], NULL), 0);
	zio_sleep(ZIO_MSEC(20));
	enum { N = 40 };
	int c[N];
	for (int i = 0; i < N; i++) {
		c[i] = zio_tcp_connect(&a, SOON);
		cr_assert_geq(c[i], 0);
	}
	for (int i = 0; i < 2; i++)
		zio_task_join(t[i], NULL);
	cr_assert_eq(ac[0].n + ac[1].n, N, "accepted %d + %d", ac[0].n, ac[1].n);
	for (int i = 0; i < N; i++) {
		char ch;
		cr_assert_eq(zio_write_all(c[i], "q", 1, SOON), 1);
		cr_assert_eq(zio_read(c[i], &ch, 1, zio_deadline_after(ZIO_MSEC(1))), -ETIMEDOUT,
			     "connection %d was closed", i);
	}
	for (int k = 0; k < 2; k++)
		for (int i = 0; i < ac[k].n; i++)
			zio_close(ac[k].fds[i]);
	for (int i = 0; i < N; i++)
		zio_close(c[i]);
	zio_close(lfd);
	return NULL;
}

Test(multishot, two_executors_accept_one_listener, .timeout = 30)
{
	run_in_runtime(2, two_acceptors, NULL);
}

struct pinned_reader {
	int fd;
	unsigned exec;
	bool back_home;
	ssize_t r;
};

static void *pinned_read(void *arg)
{
	struct pinned_reader *pr = arg;
	struct zio__exec *here = zio__exec_current();
	struct zio__fiber *me = zio__fiber_current();
	me->flags |= ZIO__FIBER_TEMP_PIN;
	zio__move_to(here->rt->exec[pr->exec]);
	me->flags &= ~ZIO__FIBER_TEMP_PIN;
	zio_task_pin();
	struct zio__exec *home = zio__exec_current();
	char buf[8];
	pr->r = zio_read(pr->fd, buf, sizeof(buf), SOON);
	pr->back_home = zio__exec_current() == home;
	return NULL;
}

static void *pinned_reader_comes_back(void *arg)
{
	(void)arg;
	struct pair p;
	tcp_pair(&p);
	char buf[4];
	cr_assert_eq(zio_write_all(p.client, "1", 1, SOON), 1);
	cr_assert_eq(zio_read(p.server, buf, 1, SOON), 1); /* armed here */
	struct zio__exec *here = zio__exec_current();
	struct pinned_reader pr = { .fd = p.server, .exec = here == here->rt->exec[0] ? 1 : 0 };
	zio_task *t;
	zio_spawn(NULL, &t, pinned_read, &pr, NULL);
	zio_sleep(ZIO_MSEC(20));
	cr_assert_eq(zio_write_all(p.client, "23", 2, SOON), 2);
	zio_task_join(t, NULL);
	cr_assert_eq(pr.r, 2);
	cr_assert(pr.back_home, "a pinned task was left on another executor");
	close_pair(&p);
	return NULL;
}

Test(multishot, pinned_reader_returns_home, .timeout = 20)
{
	run_in_runtime(2, pinned_reader_comes_back, NULL);
}

/* A task of one runtime zio_close()s a socket a task of another runtime
 * is reading: the reader gets -EBADF and the peer sees the end at once
 * (io_uring's multishot request, in the other runtime's ring, was left
 * armed: the reader waited for its deadline and the connection stayed
 * open). On io_uring without multishot the reader's single recv in the
 * other ring is out of the closer's reach (io.h): it ends at its deadline,
 * and the connection with it. */
struct cross_close {
	struct pair p;
	atomic_int waiting;
	bool reachable;
	ssize_t r;
	int64_t took;
};

static void *read_until_closed(void *arg)
{
	struct cross_close *cc = arg;
	char buf[8];
	cr_assert_eq(zio_write_all(cc->p.client, "1", 1, SOON), 1);
	cr_assert_eq(zio_read(cc->p.server, buf, 1, SOON), 1);
	cc->reachable = strcmp(zio_runtime_backend(zio_runtime_current()), "uring") != 0 ||
			expect_multishot();
	atomic_store(&cc->waiting, 1);
	int64_t t0 = zio_now();
	cc->r = zio_read(cc->p.server, buf, sizeof(buf), zio_deadline_after(ZIO_SEC(3)));
	cc->took = zio_now() - t0;
	return NULL;
}

static void *runtime_a_reads(void *arg)
{
	run_in_runtime(1, read_until_closed, arg);
	return NULL;
}

static void *close_from_runtime_b(void *arg)
{
	struct cross_close *cc = arg;
	while (!atomic_load(&cc->waiting))
		zio_sleep(ZIO_MSEC(1));
	zio_sleep(ZIO_MSEC(20)); /* it waits */
	cr_assert_eq(zio_close(cc->p.server), 0);
	char c;
	ssize_t e = zio_read(cc->p.client, &c, 1, zio_deadline_after(ZIO_SEC(cc->reachable ? 1 : 6)));
	cr_assert(e == 0 || e == -ECONNRESET, "the peer after the close: %zd", e);
	return NULL;
}

Test(multishot, a_task_of_another_runtime_closes, .timeout = 20)
{
	struct cross_close cc = { .r = LONG_MIN };
	tcp_pair(&cc.p); /* (from this plain thread) */
	pthread_t a;
	cr_assert_eq(pthread_create(&a, NULL, runtime_a_reads, &cc), 0);
	run_in_runtime(1, close_from_runtime_b, &cc);
	pthread_join(a, NULL);
	if (cc.reachable) {
		cr_assert_eq(cc.r, -EBADF, "the reader: %zd", cc.r);
		cr_assert_lt(cc.took, ZIO_SEC(1), "the reader waited %lld ms",
			     (long long)(cc.took / 1000000));
	} else {
		cr_assert_eq(cc.r, -ETIMEDOUT, "the reader: %zd", cc.r);
	}
	zio_close(cc.p.client);
}

/* The same with the reader's runtime on poll and the closer's on this
 * test's backend, two executors: the close asked the closer's executor 0
 * to let go of the reader's poll (one runtime's executor numbers taken
 * for another's: a call through NULL on epoll and io_uring). */
static void *runtime_a_reads_on_poll(void *arg)
{
	run_with(&(struct zio_runtime_options){ .executors = 1, .backend = "poll" }, read_until_closed,
		 arg);
	return NULL;
}

static void *close_from_executor_1(void *arg)
{
	settle_on(1);
	return close_from_runtime_b(arg);
}

Test(multishot, a_task_of_another_runtime_closes_what_poll_waits_on, .timeout = 20)
{
	struct cross_close cc = { .r = LONG_MIN };
	tcp_pair(&cc.p);
	pthread_t a;
	cr_assert_eq(pthread_create(&a, NULL, runtime_a_reads_on_poll, &cc), 0);
	run_in_runtime(2, close_from_executor_1, &cc);
	pthread_join(a, NULL);
	cr_assert_eq(cc.r, -EBADF, "the reader: %zd", cc.r);
	cr_assert_lt(cc.took, ZIO_SEC(1), "the reader waited %lld ms", (long long)(cc.took / 1000000));
	zio_close(cc.p.client);
}

/* -------------------------------------------------------------- fork */

static int child_status(pid_t pid)
{
	int st;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st), "the child was killed by signal %d", WTERMSIG(st));
	return WEXITSTATUS(st);
}

/* A task forks while another waits on a socket; the child closes its copy
 * with zio_close() and exits. The parent's wait is untouched: on epoll the
 * child deleted the registration from the instance both share (the wait
 * never woke), on io_uring it cancelled on the parent's ring. */
struct forked_close {
	struct pair p;
	ssize_t r;
	char c;
};

static void *wait_for_a_byte(void *arg)
{
	struct forked_close *fc = arg;
	fc->r = zio_read(fc->p.server, &fc->c, 1, SOON);
	return NULL;
}

static void *fork_beside_a_waiter(void *arg)
{
	(void)arg;
	struct forked_close fc = { .r = LONG_MIN };
	tcp_pair(&fc.p);
	zio_task *t;
	cr_assert_eq(zio_spawn(NULL, &t, wait_for_a_byte, &fc, NULL), 0);
	zio_sleep(ZIO_MSEC(20)); /* it waits */
	pid_t pid = fork();
	if (pid == 0)
		_exit(zio_close(fc.p.server) == 0 && zio_close(fc.p.client) == 0 ? 0 : 1);
	cr_assert_geq(pid, 0);
	cr_assert_eq(child_status(pid), 0, "the child's zio_close failed");
	cr_assert_eq(zio_write_all(fc.p.client, "x", 1, SOON), 1);
	zio_task_join(t, NULL);
	cr_assert_eq(fc.r, 1, "the parent's read: %zd", fc.r);
	cr_assert_eq(fc.c, 'x');
	close_pair(&fc.p);
	return NULL;
}

Test(multishot, a_forked_child_closes_what_the_parent_waits_on, .timeout = 20)
{
	run_in_runtime(1, fork_beside_a_waiter, NULL);
}

/* The child of a program whose idle runtime's ring still holds input on a
 * socket (io_uring: "x" in its multishot queue; epoll: "x" in the socket)
 * makes a runtime of its own and reads the socket: it gets what arrives
 * after the parent let go (it waited for the parent's executor, which the
 * child does not have). */
static void *read_up_to_y(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char c = 0;
	while (zio_read(fd, &c, 1, zio_deadline_after(ZIO_SEC(3))) == 1)
		if (c == 'y')
			return (void *)0;
	return (void *)1;
}

Test(multishot, a_forked_childs_runtime_reads_an_inherited_socket, .timeout = 20)
{
	zio_runtime *a = runtime_with(1);
	struct pair p;
	cr_assert_eq(zio_runtime_run(a, read_first_of_two, &p, NULL), 0);
	int sv[2]; /* the parent's go-ahead: it has let go of the socket */
	cr_assert_eq(pipe(sv), 0);
	pid_t pid = fork();
	if (pid == 0) {
		/* this thread ran the parent's runtime: its zio_close() is a
		 * plain thread's in the child (it polled the parent's ring) */
		if (zio_close(p.client) != 0)
			_exit(4);
		char go;
		zio_runtime *rt;
		void *res = (void *)3;
		if (read(sv[0], &go, 1) == 1 && zio_runtime_create(&rt, NULL) == 0)
			zio_runtime_run(rt, read_up_to_y, (void *)(intptr_t)p.server, &res);
		_exit((int)(intptr_t)res);
	}
	cr_assert_geq(pid, 0);
	cr_assert_eq(zio_close(p.server), 0); /* the child's copy stays open */
	cr_assert_eq(write(sv[1], "g", 1), 1);
	cr_assert_eq(write(p.client, "y", 1), 1);
	int st = child_status(pid);
	cr_assert_eq(st, 0, "the child's %s failed", st == 4 ? "zio_close" : "read");
	close(sv[0]);
	close(sv[1]);
	zio_close(p.client);
	zio_runtime_destroy(a);
}
