/*
 * test_examples.c - runs every program in examples/ under each backend and
 * drives it as a user would: servers are started on port 0 and the port is
 * read from their one-line banner on stderr, clients are fed on stdin. The
 * driver side is plain POSIX with socket timeouts, independent of zio;
 * only accept_goes_on() from examples/example_util.h, which no test can
 * make the kernel return errors to, is called directly. Every child dies
 * with the test (PR_SET_PDEATHSIG) and is killed at the end.
 */
/* ZIO_TEST_BACKENDS */
/* ZIO_TEST_LABELS: io examples */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "examples/example_util.h"

#define EX ZIO_BINARY_DIR "/examples/"

struct child {
	pid_t pid;
	int err_fd; /* its stderr */
	int in_fd;  /* its stdin, or -1 */
	int out_fd; /* its stdout, or -1 */
	int port;
};

/* What a child's fd 0 or 1 is: the test's own, a pipe to the test
 * (c->in_fd, c->out_fd), none, or (>= 0) that fd of the test's. */
enum { STDIO_KEEP = -1, STDIO_PIPE = -2, STDIO_CLOSED = -3 };

static void child_stdio(int fd, int how, int pipe_end)
{
	if (how == STDIO_PIPE)
		dup2(pipe_end, fd);
	else if (how == STDIO_CLOSED)
		close(fd);
	else if (how >= 0)
		dup2(how, fd);
}

static void spawn_io(struct child *c, char *const argv[], const char *env_extra, int in, int out)
{
	int e[2], i[2] = { -1, -1 }, o[2] = { -1, -1 };
	cr_assert_eq(pipe2(e, O_CLOEXEC), 0);
	if (in == STDIO_PIPE)
		cr_assert_eq(pipe2(i, O_CLOEXEC), 0);
	if (out == STDIO_PIPE)
		cr_assert_eq(pipe2(o, O_CLOEXEC), 0);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(e[1], 2);
		child_stdio(0, in, i[0]);
		child_stdio(1, out, o[1]);
		if (env_extra)
			putenv((char *)env_extra);
		execv(argv[0], argv);
		_exit(127);
	}
	close(e[1]);
	c->pid = pid;
	c->err_fd = e[0];
	c->in_fd = i[1];
	c->out_fd = o[0];
	if (i[0] >= 0)
		close(i[0]);
	if (o[1] >= 0)
		close(o[1]);
	c->port = 0;
}

/* pipes: stdin and stdout are pipes to the test, else the test's own. */
static void spawn(struct child *c, char *const argv[], const char *env_extra, bool pipes)
{
	int how = pipes ? STDIO_PIPE : STDIO_KEEP;
	spawn_io(c, argv, env_extra, how, how);
}

/* Reads stderr until the banner line and takes the port after the last ':'. */
static void read_banner(struct child *c)
{
	char buf[512];
	size_t n = 0;
	for (;;) {
		struct pollfd p = { c->err_fd, POLLIN, 0 };
		cr_assert_gt(poll(&p, 1, 10000), 0, "no banner from the server");
		ssize_t r = read(c->err_fd, buf + n, sizeof(buf) - 1 - n);
		cr_assert_gt(r, 0, "server exited before its banner");
		n += (size_t)r;
		buf[n] = 0;
		char *nl = strchr(buf, '\n');
		if (!nl)
			continue;
		char *at = strstr(buf, "listening on ");
		cr_assert_not_null(at, "banner: %s", buf);
		char *colon = strrchr(at, ':');
		cr_assert_not_null(colon);
		c->port = atoi(colon + 1);
		cr_assert_gt(c->port, 0, "banner: %s", buf);
		return;
	}
}

/* Kills the child, unless exit_status() has already reaped it (pid -1:
 * kill(-1) would signal every process we may). */
static void stop(struct child *c)
{
	if (c->pid > 0) {
		kill(c->pid, SIGKILL);
		waitpid(c->pid, NULL, 0);
	}
	close(c->err_fd);
	if (c->in_fd >= 0)
		close(c->in_fd);
	if (c->out_fd >= 0)
		close(c->out_fd);
}

static int exit_status(struct child *c)
{
	int st;
	cr_assert_eq(waitpid(c->pid, &st, 0), c->pid);
	c->pid = -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* exit_status(), for a child that should be on its way out: one still
 * running after secs seconds is killed and fails the test. */
static int exit_status_within(struct child *c, double secs)
{
	for (int ms = 0; ms < secs * 1000; ms += 5) {
		int st;
		pid_t r = waitpid(c->pid, &st, WNOHANG);
		cr_assert_geq(r, 0);
		if (r == c->pid) {
			c->pid = -1;
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		}
		usleep(5000);
	}
	kill(c->pid, SIGKILL);
	waitpid(c->pid, NULL, 0);
	cr_assert_fail("still running after %.1f s", secs);
	return -1;
}

/* Everything the child wrote to stderr until it closed it. */
static void read_stderr(struct child *c, char *buf, size_t size)
{
	size_t n = 0;
	ssize_t r;
	while (n + 1 < size && (r = read(c->err_fd, buf + n, size - 1 - n)) > 0)
		n += (size_t)r;
	buf[n] = 0;
}

static int dial(int port, int type)
{
	int fd = socket(AF_INET, type, 0);
	cr_assert_geq(fd, 0);
	struct timeval tv = { 10, 0 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0, "connect: %s", strerror(errno));
	return fd;
}

static void send_all(int fd, const char *s, size_t n)
{
	while (n) {
		ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
		cr_assert_gt(w, 0);
		s += w;
		n -= (size_t)w;
	}
}

/* Reads exactly n bytes (socket timeouts bound it). */
static void recv_exact(int fd, char *buf, size_t n)
{
	size_t got = 0;
	while (got < n) {
		ssize_t r = read(fd, buf + got, n - got);
		cr_assert_gt(r, 0, "read: %zd (%s) after %zu of %zu bytes", r, strerror(errno), got, n);
		got += (size_t)r;
	}
}

/* Reads one line (up to '\n'). */
static void recv_line(int fd, char *buf, size_t max)
{
	size_t n = 0;
	while (n + 1 < max) {
		ssize_t r = read(fd, buf + n, 1);
		cr_assert_eq(r, 1, "read: %s", strerror(errno));
		if (buf[n++] == '\n')
			break;
	}
	buf[n] = 0;
}

/* ------------------------------------------------------------ echo */

static void echo_check(const char *env)
{
	struct child s;
	spawn(&s, (char *[]){ EX "echo_server", "-p", "0", NULL }, env, false);
	read_banner(&s);
	for (int k = 0; k < 4; k++) {
		int fd = dial(s.port, SOCK_STREAM);
		char msg[64], back[64];
		for (int i = 0; i < 100; i++) {
			int n = snprintf(msg, sizeof(msg), "line %d of conn %d\n", i, k);
			send_all(fd, msg, (size_t)n);
			recv_exact(fd, back, (size_t)n);
			cr_assert_eq(memcmp(msg, back, (size_t)n), 0);
		}
		/* 64-byte requests without newlines, as the benchmark sends. */
		memset(msg, 'a', 64);
		send_all(fd, msg, 64);
		recv_exact(fd, back, 64);
		close(fd);
	}
	stop(&s);
}

Test(examples, echo_server, .timeout = 30)
{
	echo_check(NULL);
	echo_check("ZIO_EXECUTORS=2");
}

Test(examples, echo_server_line_mode, .timeout = 30)
{
	struct child s;
	spawn(&s, (char *[]){ EX "echo_server", "-p", "0", "-l", NULL }, NULL, false);
	read_banner(&s);
	int fd = dial(s.port, SOCK_STREAM);
	send_all(fd, "a\nb", 3);
	char buf[8];
	recv_exact(fd, buf, 2);
	cr_assert_eq(memcmp(buf, "a\n", 2), 0);
	send_all(fd, "c\n", 2);
	recv_exact(fd, buf, 3);
	cr_assert_eq(memcmp(buf, "bc\n", 3), 0);
	/* Lines longer than its 1 KiB buffer come back too, and so does
	 * the next one. */
	static char big[3001], back[3001];
	memset(big, 'x', 3000);
	big[3000] = '\n';
	send_all(fd, big, sizeof(big));
	recv_exact(fd, back, sizeof(back));
	cr_assert_eq(memcmp(back, big, sizeof(big)), 0);
	send_all(fd, "after\n", 6);
	recv_exact(fd, buf, 6);
	cr_assert_eq(memcmp(buf, "after\n", 6), 0);
	close(fd);
	stop(&s);
}

/* ------------------------------------------------------------ http */

static const char ok_reply[] = "HTTP/1.1 200 OK\r\nServer: zio\r\nContent-Type: text/plain\r\n"
			       "Content-Length: 13\r\n\r\nHello, World!";

/* Reads fd to its EOF (not an error) into buf, NUL-terminated. */
static void read_to_eof(int fd, char *buf, size_t size)
{
	size_t total = 0;
	ssize_t n;
	while ((n = read(fd, buf + total, size - 1 - total)) > 0)
		total += (size_t)n;
	cr_assert_eq(n, 0, "read: %s", strerror(errno));
	buf[total] = 0;
}

/* One connection sends req; the first answer has status (3 digits). */
static void expect_status(int port, const char *req, const char *status)
{
	int fd = dial(port, SOCK_STREAM);
	send_all(fd, req, strlen(req));
	char buf[256];
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	cr_assert_gt(n, 12, "%s", req);
	cr_assert_eq(memcmp(buf, "HTTP/1.1 ", 9), 0, "%s", req);
	cr_assert_eq(memcmp(buf + 9, status, 3), 0, "%s", req);
	close(fd);
}

static void expect_400(int port, const char *req)
{
	expect_status(port, req, "400");
}

Test(examples, http_server, .timeout = 60)
{
	struct child s;
	spawn(&s, (char *[]){ EX "http_server", "-p", "0", NULL }, NULL, false);
	read_banner(&s);
	int fd = dial(s.port, SOCK_STREAM);
	char buf[1024];
	/* keep-alive: several requests on one connection, two pipelined */
	for (int i = 0; i < 3; i++) {
		const char *req = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
		send_all(fd, req, strlen(req));
		recv_exact(fd, buf, sizeof(ok_reply) - 1);
		cr_assert_eq(memcmp(buf, ok_reply, sizeof(ok_reply) - 1), 0);
	}
	const char *two = "GET /a HTTP/1.1\r\nHost: x\r\n\r\nPOST /b HTTP/1.1\r\nHost: x\r\n"
			  "Content-Length: 5\r\n\r\nhello";
	send_all(fd, two, strlen(two));
	recv_exact(fd, buf, 2 * (sizeof(ok_reply) - 1));
	cr_assert_eq(memcmp(buf + sizeof(ok_reply) - 1, ok_reply, sizeof(ok_reply) - 1), 0);
	/* Connection: close ends it */
	const char *cl = "GET / HTTP/1.1\r\nConnection: close\r\n\r\n";
	send_all(fd, cl, strlen(cl));
	read_to_eof(fd, buf, sizeof(buf));
	cr_assert(strstr(buf, "Connection: close") && strstr(buf, "Hello, World!"), "%s", buf);
	close(fd);
	/* garbage gets a 400, and so do lines ended by a bare "\n" (typed
	 * by hand), rather than silence */
	expect_400(s.port, "BLAH\r\n\r\n");
	expect_400(s.port, "GET / HTTP/1.1\nHost: x\n\n");
	expect_400(s.port, "a\n\n");
	/* a header ended by a bare "\n" is taken (RFC 9112 2.2), and so is
	 * the "\r\n" blank line after it (this got no answer for 10 s) */
	expect_status(s.port, "GET / HTTP/1.1\r\nHost: x\n\r\n", "200");
	/* after the answers to the good requests before it, in order */
	fd = dial(s.port, SOCK_STREAM);
	const char *gb = "GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n"
			 "BLAH\r\n\r\n";
	send_all(fd, gb, strlen(gb));
	read_to_eof(fd, buf, sizeof(buf));
	cr_assert_eq(memcmp(buf, ok_reply, sizeof(ok_reply) - 1), 0, "%s", buf);
	cr_assert_eq(memcmp(buf + sizeof(ok_reply) - 1, ok_reply, sizeof(ok_reply) - 1), 0, "%s", buf);
	cr_assert_eq(memcmp(buf + 2 * (sizeof(ok_reply) - 1), "HTTP/1.1 400", 12), 0, "%s", buf);
	close(fd);
	/* wrk, if installed, for a second: no errors */
	if (access("/usr/bin/wrk", X_OK) == 0) {
		char cmd[256];
		snprintf(cmd, sizeof(cmd),
			 "/usr/bin/wrk -t1 -c20 -d1 http://127.0.0.1:%d/ 2>&1", s.port);
		FILE *p = popen(cmd, "r");
		char line[256];
		bool saw = false, errors = false;
		while (fgets(line, sizeof(line), p)) {
			if (strstr(line, "Requests/sec"))
				saw = true;
			if (strstr(line, "Non-2xx") || strstr(line, "Socket errors"))
				errors = true;
		}
		pclose(p);
		cr_assert(saw && !errors, "wrk reported errors");
	}
	stop(&s);
}

/* What a browser, curl, ab or a slow client sends that a hello server must
 * still get right. */
Test(examples, http_server_edges, .timeout = 60)
{
	struct child s;
	spawn(&s, (char *[]){ EX "http_server", "-p", "0", "-t", "1", NULL }, NULL, false);
	read_banner(&s);
	char buf[1024];
	const size_t body = sizeof("Hello, World!") - 1, ok = sizeof(ok_reply) - 1;
	/* HEAD: the headers alone, so the next answer on the connection is
	 * not read as this one's body. */
	int fd = dial(s.port, SOCK_STREAM);
	const char *head = "HEAD / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n";
	send_all(fd, head, strlen(head));
	recv_exact(fd, buf, ok - body + ok);
	cr_assert_eq(memcmp(buf, ok_reply, ok - body), 0);
	cr_assert_eq(memcmp(buf + ok - body, ok_reply, ok), 0, "%.*s", (int)(2 * ok - body), buf);
	/* A token list, not a substring: "notclose" keeps it open. */
	const char *nc = "GET / HTTP/1.1\r\nConnection: notclose, Upgrade\r\n\r\n";
	send_all(fd, nc, strlen(nc));
	recv_exact(fd, buf, ok);
	cr_assert_eq(memcmp(buf, ok_reply, ok), 0);
	close(fd);
	/* HTTP/1.0 keep-alive is confirmed (ab -k waits for it), and kept. */
	fd = dial(s.port, SOCK_STREAM);
	const char *k10 = "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n";
	for (int i = 0; i < 2; i++) {
		send_all(fd, k10, strlen(k10));
		ssize_t n = read(fd, buf, sizeof(buf) - 1);
		cr_assert_gt(n, 0);
		buf[n] = 0;
		cr_assert(strstr(buf, "\r\nConnection: keep-alive\r\n") && strstr(buf, "Hello, World!"),
			  "%s", buf);
	}
	close(fd);
	/* Expect: 100-continue gets its go-ahead before the body is sent. */
	fd = dial(s.port, SOCK_STREAM);
	const char *ex = "POST / HTTP/1.1\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n";
	send_all(fd, ex, strlen(ex));
	const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
	recv_exact(fd, buf, sizeof(cont) - 1);
	cr_assert_eq(memcmp(buf, cont, sizeof(cont) - 1), 0);
	send_all(fd, "hello", 5);
	recv_exact(fd, buf, ok);
	cr_assert_eq(memcmp(buf, ok_reply, ok), 0);
	close(fd);
	/* Framing it cannot trust, or will not take. */
	expect_400(s.port, "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello");
	expect_400(s.port, "POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\nhello");
	expect_400(s.port, "GET / HTTP/1.1\r\nno colon here\r\n\r\n");
	expect_400(s.port, "GET / HTTP/1.1X\r\n\r\n");
	expect_400(s.port, "GET / HTTP/1.1\r\n  \r\nContent-Length: 5\r\n\r\nhello"); /* spaces as blank */
	expect_400(s.port, "GET / HTTP/1.1\r\nX-A: a\r\n b\r\n\r\n");                  /* folded */
	fd = dial(s.port, SOCK_STREAM);
	const char *big = "POST / HTTP/1.1\r\nContent-Length: 2000000\r\n\r\n";
	send_all(fd, big, strlen(big));
	read_to_eof(fd, buf, sizeof(buf));
	cr_assert(strncmp(buf, "HTTP/1.1 413", 12) == 0, "%s", buf);
	close(fd);
	/* A client trickling a request is cut off after -t (1 s), however
	 * often a byte comes. */
	fd = dial(s.port, SOCK_STREAM);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	const char *slow = "GET / HTTP/1.1\r\nX-Slow: ";
	send_all(fd, slow, strlen(slow));
	bool closed = false;
	for (int i = 0; i < 50 && !closed; i++) {
		usleep(100000);
		closed = send(fd, "a", 1, MSG_NOSIGNAL) < 0 ||
			 (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) == 0);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double took = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	cr_assert(closed, "a trickling client was still connected after 5 s");
	cr_assert(took > 0.8 && took < 3, "cut off after %.2f s (-t 1)", took);
	close(fd);
	stop(&s);
}

/* Each pipelined request has its own -t: B's head came in the read that
 * completed A, 1.3 s into A's 2 s; B's body, 1.3 s later, is past A's
 * time but within B's (B was cut off when A's time ran out). Margins of
 * 0.6 s or more either way, for a loaded machine. */
Test(examples, http_server_pipelined_deadline, .timeout = 30)
{
	struct child s;
	spawn(&s, (char *[]){ EX "http_server", "-p", "0", "-t", "2", NULL }, NULL, false);
	read_banner(&s);
	int fd = dial(s.port, SOCK_STREAM);
	const char *a = "GET /a HTTP/1.1\r\nHost: x\r\n";
	const char *a_end_b = "\r\nPOST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n";
	send_all(fd, a, strlen(a));
	usleep(1300000);
	send_all(fd, a_end_b, strlen(a_end_b));
	usleep(1300000);
	send_all(fd, "hello", 5);
	const size_t ok = sizeof(ok_reply) - 1;
	char buf[2 * sizeof(ok_reply)];
	recv_exact(fd, buf, 2 * ok);
	cr_assert_eq(memcmp(buf + ok, ok_reply, ok), 0);
	close(fd);
	stop(&s);
}

/* Empty lines before a request line are skipped (RFC 9112 2.2), CRLF or
 * a bare LF, also one split over two reads, or sent after a body. */
Test(examples, http_server_empty_lines, .timeout = 30)
{
	struct child s;
	spawn(&s, (char *[]){ EX "http_server", "-p", "0", NULL }, NULL, false);
	read_banner(&s);
	int fd = dial(s.port, SOCK_STREAM);
	const size_t ok = sizeof(ok_reply) - 1;
	char buf[2 * sizeof(ok_reply)];
	const char *reqs[] = { "\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
			       "\n\r\n\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
			       "POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi\r\n" };
	for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
		send_all(fd, reqs[i], strlen(reqs[i]));
		recv_exact(fd, buf, ok);
		cr_assert_eq(memcmp(buf, ok_reply, ok), 0, "request %zu: %.*s", i, (int)ok, buf);
	}
	/* a CRLF split over two reads */
	send_all(fd, "\r", 1);
	usleep(20000);
	const char *get = "\nGET / HTTP/1.1\r\n\r\n";
	send_all(fd, get, strlen(get));
	recv_exact(fd, buf, ok);
	cr_assert_eq(memcmp(buf, ok_reply, ok), 0, "%.*s", (int)ok, buf);
	close(fd);
	stop(&s);
}

/* When the server ends a connection with input unread (an error answer,
 * or "Connection: close" with more behind it), the client gets the
 * answer and then EOF, not a reset, which could destroy the answer. */
Test(examples, http_server_closes_without_reset, .timeout = 30)
{
	struct child s;
	spawn(&s, (char *[]){ EX "http_server", "-p", "0", NULL }, NULL, false);
	read_banner(&s);
	static char body[64 << 10];
	memset(body, 'x', sizeof(body));
	const char *heads[] = { "POST / HTTP/1.1\r\nContent-Length: 2000000\r\n\r\n",
				"GET / HTTP/1.1\r\nConnection: close\r\n\r\n" };
	const char *answers[] = { "HTTP/1.1 413", "HTTP/1.1 200" };
	for (int i = 0; i < 2; i++) {
		int fd = dial(s.port, SOCK_STREAM);
		send_all(fd, heads[i], strlen(heads[i]));
		send_all(fd, body, sizeof(body));
		char buf[1024];
		read_to_eof(fd, buf, sizeof(buf));
		cr_assert(strncmp(buf, answers[i], 12) == 0, "%s", buf);
		close(fd);
	}
	stop(&s);
}

/* ------------------------------------------------------------ tcp_client */

/* An echo server, and a tcp_client to it with stdin piped. */
static void client_of_echo_server(struct child *s, struct child *c)
{
	spawn(s, (char *[]){ EX "echo_server", "-p", "0", NULL }, NULL, false);
	read_banner(s);
	char port[16];
	snprintf(port, sizeof(port), "%d", s->port);
	spawn(c, (char *[]){ EX "tcp_client", "-t", "5000", "127.0.0.1", port, NULL }, NULL, true);
}

Test(examples, tcp_client, .timeout = 30)
{
	struct child s, c;
	client_of_echo_server(&s, &c);
	const char *in = "first\nsecond\nno newline";
	cr_assert_eq(write(c.in_fd, in, strlen(in)), (ssize_t)strlen(in));
	close(c.in_fd);
	c.in_fd = -1;
	char out[256];
	size_t n = 0;
	ssize_t r;
	while ((r = read(c.out_fd, out + n, sizeof(out) - 1 - n)) > 0)
		n += (size_t)r;
	out[n] = 0;
	cr_assert_str_eq(out, "first\nsecond\nno newline\n");
	cr_assert_eq(exit_status(&c), 0);
	stop(&s);
	close(c.err_fd);
	close(c.out_fd);
}

/* A last line without newline that fills the client's 4 KiB line buffer
 * (it wrote the newline it adds one byte past the buffer). */
Test(examples, tcp_client_full_last_line, .timeout = 30)
{
	struct child s, c;
	client_of_echo_server(&s, &c);
	static char in[4096];
	memset(in, 'A', sizeof(in));
	cr_assert_eq(write(c.in_fd, in, sizeof(in)), (ssize_t)sizeof(in));
	close(c.in_fd);
	c.in_fd = -1;
	char out[64];
	while (read(c.out_fd, out, sizeof(out)) > 0)
		;
	char err[256] = "";
	ssize_t k = read(c.err_fd, err, sizeof(err) - 1);
	err[k > 0 ? k : 0] = 0;
	/* Longer than a line may be: said so, nothing else (under the
	 * sanitizers the overflow was reported here). */
	cr_assert_eq(exit_status(&c), 1, "%s", err);
	cr_assert(strncmp(err, "tcp_client: stdin: a line longer than 4094 bytes", 48) == 0, "%s", err);
	stop(&s);
	close(c.err_fd);
	close(c.out_fd);
}

Test(examples, tcp_client_errors, .timeout = 30)
{
	/* refused */
	int l = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	bind(l, (struct sockaddr *)&a, sizeof(a));
	socklen_t al = sizeof(a);
	getsockname(l, (struct sockaddr *)&a, &al);
	char port[16];
	snprintf(port, sizeof(port), "%d", ntohs(a.sin_port));
	struct child c;
	spawn(&c, (char *[]){ EX "tcp_client", "-t", "2000", "127.0.0.1", port, NULL }, NULL, true);
	close(c.in_fd);
	c.in_fd = -1;
	cr_assert_eq(exit_status(&c), 1);
	char err[256] = { 0 };
	ssize_t n = read(c.err_fd, err, sizeof(err) - 1);
	cr_assert(n > 0 && strstr(err, "refused"), "stderr: %s", err);
	close(c.err_fd);
	close(c.out_fd);

	/* a server that never answers: the reply times out */
	listen(l, 8);
	spawn(&c, (char *[]){ EX "tcp_client", "-t", "200", "127.0.0.1", port, NULL }, NULL, true);
	cr_assert_eq(write(c.in_fd, "ping\n", 5), 5);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	cr_assert_eq(exit_status(&c), 1);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	cr_assert_lt(secs, 5.0);
	memset(err, 0, sizeof(err));
	n = read(c.err_fd, err, sizeof(err) - 1);
	cr_assert(n > 0 && strstr(err, "no reply within 200 ms"), "stderr: %s", err);
	close(c.in_fd);
	close(c.err_fd);
	close(c.out_fd);
	close(l);
}

/* A test's own TCP listener on a free loopback port, written to port. */
static int listener(char port[16])
{
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = { .sin_family = AF_INET };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(bind(l, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(listen(l, 8), 0);
	socklen_t al = sizeof(a);
	getsockname(l, (struct sockaddr *)&a, &al);
	snprintf(port, 16, "%d", ntohs(a.sin_port));
	return l;
}

/* stdout cannot take the replies (a full disk here, a reader gone
 * elsewhere): said so, exit status 1, and nothing more is sent. */
Test(examples, tcp_client_stdout_error, .timeout = 30)
{
	char port[16];
	int l = listener(port);
	int full = open("/dev/full", O_WRONLY | O_CLOEXEC);
	cr_assert_geq(full, 0);
	struct child c;
	spawn_io(&c, (char *[]){ EX "tcp_client", "-t", "5000", "127.0.0.1", port, NULL }, NULL,
		 STDIO_PIPE, full);
	close(full);
	cr_assert_eq(write(c.in_fd, "a\nb\nc\n", 6), 6);
	close(c.in_fd);
	c.in_fd = -1;
	/* An echo server of our own, which sees everything that is sent. */
	int fd = accept(l, NULL, NULL);
	cr_assert_geq(fd, 0);
	struct timeval tv = { 10, 0 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	char got[64];
	size_t n = 0;
	ssize_t r;
	while (n < sizeof(got) - 1 && (r = read(fd, got + n, sizeof(got) - 1 - n)) > 0) {
		send_all(fd, got + n, (size_t)r);
		n += (size_t)r;
	}
	got[n] = 0;
	cr_assert_str_eq(got, "a\n");
	cr_assert_eq(exit_status_within(&c, 10), 1);
	char err[256];
	read_stderr(&c, err, sizeof(err));
	cr_assert_str_eq(err, "tcp_client: stdout: No space left on device\n");
	close(fd);
	close(l);
	stop(&c);
}

/* Started with stdin closed: it reads nothing (the io_uring ring took
 * fd 0 and the client read it as stdin, for ever). */
Test(examples, tcp_client_stdin_closed, .timeout = 30)
{
	struct child s, c;
	spawn(&s, (char *[]){ EX "echo_server", "-p", "0", NULL }, NULL, false);
	read_banner(&s);
	char port[16];
	snprintf(port, sizeof(port), "%d", s.port);
	spawn_io(&c, (char *[]){ EX "tcp_client", "127.0.0.1", port, NULL }, NULL, STDIO_CLOSED,
		 STDIO_PIPE);
	cr_assert_eq(exit_status_within(&c, 10), 0);
	char out[64];
	cr_assert_eq(read(c.out_fd, out, sizeof(out)), 0);
	stop(&c);
	stop(&s);
}

/* Bad arguments: said so, exit status 2 (a port of 70000 listened on 4464). */
Test(examples, bad_arguments, .timeout = 30)
{
	static const char *const progs[] = { "echo_server", "http_server", "chat_server", "udp_echo" };
	for (size_t i = 0; i < sizeof(progs) / sizeof(progs[0]); i++) {
		char path[256];
		snprintf(path, sizeof(path), EX "%s", progs[i]);
		for (int k = 0; k < 3; k++) {
			char *bad = (char *[]){ "70000", "-1", "abc" }[k];
			struct child c;
			spawn(&c, (char *[]){ path, "-p", bad, NULL }, NULL, true);
			close(c.in_fd);
			c.in_fd = -1;
			cr_assert_eq(exit_status(&c), 2, "%s -p %s", progs[i], bad);
			char err[256] = { 0 };
			cr_assert_gt(read(c.err_fd, err, sizeof(err) - 1), 0, "%s -p %s: no message", progs[i], bad);
			cr_assert(strstr(err, "PORT"), "%s: %s", progs[i], err);
			close(c.err_fd);
			close(c.out_fd);
		}
	}
	struct child c;
	spawn(&c, (char *[]){ EX "tcp_client", "127.0.0.1", "70000", NULL }, NULL, true);
	close(c.in_fd);
	c.in_fd = -1;
	cr_assert_eq(exit_status(&c), 2);
	close(c.err_fd);
	close(c.out_fd);
	/* Timeouts that are not a number of milliseconds, or overflow. */
	for (int k = 0; k < 4; k++) {
		char *bad = (char *[]){ "abc", "0", "-5", "10000000000000" }[k];
		spawn(&c, (char *[]){ EX "tcp_client", "-t", bad, "127.0.0.1", "80", NULL }, NULL, true);
		close(c.in_fd);
		c.in_fd = -1;
		cr_assert_eq(exit_status(&c), 2, "-t %s", bad);
		char err[256] = { 0 };
		cr_assert_gt(read(c.err_fd, err, sizeof(err) - 1), 0);
		cr_assert(strstr(err, "-t takes milliseconds"), "%s", err);
		close(c.err_fd);
		close(c.out_fd);
	}
	spawn(&c, (char *[]){ EX "http_server", "-t", "0", NULL }, NULL, true);
	close(c.in_fd);
	c.in_fd = -1;
	cr_assert_eq(exit_status(&c), 2);
	close(c.err_fd);
	close(c.out_fd);
	/* -h takes a numeric address: a name is a usage error too. */
	spawn(&c, (char *[]){ EX "chat_server", "-p", "0", "-h", "nosuchhost", NULL }, NULL, true);
	close(c.in_fd);
	c.in_fd = -1;
	cr_assert_eq(exit_status(&c), 2);
	char err[256] = { 0 };
	cr_assert_gt(read(c.err_fd, err, sizeof(err) - 1), 0);
	cr_assert(strstr(err, "-h takes a numeric IPv4 or IPv6 address"), "%s", err);
	cr_assert(strstr(err, "(not \"nosuchhost\")"), "%s", err);
	close(c.err_fd);
	close(c.out_fd);
}

/* --help prints the usage and what the options do on stdout and exits 0
 * (getopt took it for bad options, or echo_server's -h with "elp"); a bad
 * option's message says where to look. */
Test(examples, help, .timeout = 30)
{
	static const struct {
		const char *prog, *synopsis, *option;
	} progs[] = {
		{ "echo_server", "[-p PORT] [-h ADDR] [-l]", "  -l " },
		{ "http_server", "[-p PORT] [-h ADDR] [-t SECONDS]", "  -t SECONDS " },
		{ "chat_server", "[-p PORT] [-h ADDR]", "  -h ADDR " },
		{ "udp_echo", "[-p PORT] [-h ADDR]", "  -p PORT " },
		{ "tcp_client", "[-t TIMEOUT_MS] HOST PORT", "  -t TIMEOUT_MS " },
		{ "file_copy", "[-b] SRC DST", "  -b " },
	};
	for (size_t i = 0; i < sizeof(progs) / sizeof(progs[0]); i++) {
		char path[256], want[640], out[2048] = { 0 };
		snprintf(path, sizeof(path), EX "%s", progs[i].prog);
		struct child c;
		/* After other arguments too, and before a bad one. */
		spawn(&c, (char *[]){ path, "-p", "1", "--help", "-z", NULL }, NULL, true);
		close(c.in_fd);
		c.in_fd = -1;
		cr_assert_eq(exit_status_within(&c, 10), 0, "%s --help", progs[i].prog);
		read_to_eof(c.out_fd, out, sizeof(out));
		snprintf(want, sizeof(want), "usage: %s %s\n\n", path, progs[i].synopsis);
		cr_assert_eq(strncmp(out, want, strlen(want)), 0, "%s", out);
		cr_assert(strstr(out, progs[i].option), "%s", out);
		cr_assert(strstr(out, "ZIO_EXECUTORS"), "%s", out);
		char err[256] = { 0 };
		cr_assert_eq(read(c.err_fd, err, sizeof(err) - 1), 0, "%s", err);
		stop(&c);

		spawn(&c, (char *[]){ path, "-z", NULL }, NULL, true);
		close(c.in_fd);
		c.in_fd = -1;
		cr_assert_eq(exit_status_within(&c, 10), 2, "%s -z", progs[i].prog);
		read_stderr(&c, err, sizeof(err));
		snprintf(want, sizeof(want), "usage: %s %s\n(%s --help says more)\n", path,
			 progs[i].synopsis, path);
		cr_assert(strstr(err, want), "%s", err);
		stop(&c);
	}
}

/* ------------------------------------------------------------ udp_echo */

Test(examples, udp_echo, .timeout = 30)
{
	struct child s;
	spawn(&s, (char *[]){ EX "udp_echo", "-p", "0", NULL }, NULL, false);
	read_banner(&s);
	int fd = dial(s.port, SOCK_DGRAM);
	for (int i = 0; i < 50; i++) {
		char msg[32], back[64];
		int n = snprintf(msg, sizeof(msg), "datagram %d", i);
		cr_assert_eq(send(fd, msg, (size_t)n, 0), n);
		cr_assert_eq(recv(fd, back, sizeof(back), 0), n);
		cr_assert_eq(memcmp(msg, back, (size_t)n), 0);
	}
	close(fd);
	stop(&s);
}

/* ------------------------------------------------------------ every server */

static const char *const servers[] = { "echo_server", "http_server", "chat_server", "udp_echo" };

/* Starts server prog on port (0: any), with a client connected (TCP)
 * or answered once (UDP), then stops it with sig: it says so and exits
 * 0. Returns the port it served on. */
static int start_and_signal(const char *prog, int port, int sig)
{
	char path[256], port_text[16];
	snprintf(path, sizeof(path), EX "%s", prog);
	snprintf(port_text, sizeof(port_text), "%d", port);
	struct child s;
	spawn(&s, (char *[]){ path, "-p", port_text, NULL }, NULL, false);
	read_banner(&s);
	cr_assert(port == 0 || s.port == port, "%s on %d, not %d", prog, s.port, port);
	bool udp = strcmp(prog, "udp_echo") == 0;
	int client = dial(s.port, udp ? SOCK_DGRAM : SOCK_STREAM);
	if (udp) {
		char back[8];
		cr_assert_eq(send(client, "ping", 4, 0), 4);
		cr_assert_eq(recv(client, back, sizeof(back), 0), 4);
	}
	cr_assert_eq(kill(s.pid, sig), 0);
	int st = exit_status_within(&s, 10);
	cr_assert_eq(st, 0, "%s: exit status %d after %s", prog, st, strsignal(sig));
	char err[512], want[64];
	read_stderr(&s, err, sizeof(err));
	snprintf(want, sizeof(want), "%s: stopped by %s\n", prog, sig == SIGINT ? "SIGINT" : "SIGTERM");
	cr_assert_str_eq(err, want);
	close(client);
	stop(&s);
	return s.port;
}

/* SIGTERM and SIGINT stop a server cleanly, and its port is free at once:
 * a restart on it works (on io_uring a killed server's ring held the port
 * for a moment after the process was gone: EADDRINUSE). */
Test(examples, servers_stop_on_signal, .timeout = 60)
{
	for (size_t i = 0; i < sizeof(servers) / sizeof(servers[0]); i++) {
		int port = start_and_signal(servers[i], 0, SIGTERM);
		start_and_signal(servers[i], port, SIGINT);
		start_and_signal(servers[i], port, SIGTERM);
	}
}

/* A server takes no arguments beyond its options (`echo_server 9000`
 * served on 8080). */
Test(examples, servers_reject_extra_arguments, .timeout = 60)
{
	for (size_t i = 0; i < sizeof(servers) / sizeof(servers[0]); i++) {
		char path[256];
		snprintf(path, sizeof(path), EX "%s", servers[i]);
		struct child c;
		spawn(&c, (char *[]){ path, "-p", "0", "extra", NULL }, NULL, false);
		cr_assert_eq(exit_status_within(&c, 5), 2, "%s -p 0 extra", servers[i]);
		char err[256];
		read_stderr(&c, err, sizeof(err));
		cr_assert(strncmp(err, "usage: ", 7) == 0, "%s: %s", servers[i], err);
		stop(&c);
	}
}

/* The errors accept(2) says to retry (network errors of the new
 * connection, a firewall's EPERM) do not end a server. */
Test(examples, accept_goes_on)
{
	static const int retry[] = { ECONNABORTED, EINTR, ENETDOWN, EPROTO, ENOPROTOOPT, EHOSTDOWN,
				     ENONET, EHOSTUNREACH, EOPNOTSUPP, ENETUNREACH, EPERM, EMFILE };
	for (size_t i = 0; i < sizeof(retry) / sizeof(retry[0]); i++)
		cr_assert(accept_goes_on(-retry[i]), "%s", strerror(retry[i]));
	cr_assert_not(accept_goes_on(-ECANCELED));
	cr_assert_not(accept_goes_on(-EBADF));
	cr_assert_not(accept_goes_on(-EINVAL));
}

/* Out of descriptors, a server says so on stderr (once) and goes on
 * serving once connections close. */
Test(examples, echo_server_out_of_descriptors, .timeout = 60)
{
	struct child s;
	spawn(&s, (char *[]){ "/bin/sh", "-c", "ulimit -n 20 && exec " EX "echo_server -p 0", NULL },
	      NULL, false);
	read_banner(&s);
	int fds[30];
	for (int i = 0; i < 30; i++)
		fds[i] = dial(s.port, SOCK_STREAM);
	char err[512] = "";
	size_t n = 0;
	while (!strstr(err, "accept: Too many open files") && n + 1 < sizeof(err)) {
		struct pollfd p = { s.err_fd, POLLIN, 0 };
		cr_assert_gt(poll(&p, 1, 10000), 0, "nothing said: %s", err);
		ssize_t r = read(s.err_fd, err + n, sizeof(err) - 1 - n);
		cr_assert_gt(r, 0, "server exited: %s", err);
		n += (size_t)r;
		err[n] = 0;
	}
	for (int i = 0; i < 30; i++)
		close(fds[i]);
	int fd = dial(s.port, SOCK_STREAM);
	char buf[3];
	send_all(fd, "hi\n", 3);
	recv_exact(fd, buf, 3);
	cr_assert_eq(memcmp(buf, "hi\n", 3), 0);
	close(fd);
	stop(&s);
}

/* ------------------------------------------------------------ file_copy */

static void copy_check(bool buffered)
{
	char src[128], dst[160];
	snprintf(src, sizeof(src), "/tmp/zio-fc-%d-%s", getpid(), getenv("ZIO_BACKEND") ? getenv("ZIO_BACKEND") : "x");
	snprintf(dst, sizeof(dst), "%s.out", src);
	FILE *f = fopen(src, "w");
	for (int i = 0; i < 300000; i++)
		fprintf(f, "%ld,", (long)i * 7919);
	fclose(f);
	struct stat st;
	stat(src, &st);
	struct child c;
	if (buffered)
		spawn(&c, (char *[]){ EX "file_copy", "-b", src, dst, NULL }, NULL, true);
	else
		spawn(&c, (char *[]){ EX "file_copy", src, dst, NULL }, NULL, true);
	close(c.in_fd);
	c.in_fd = -1;
	char out[64] = { 0 };
	ssize_t n = read(c.out_fd, out, sizeof(out) - 1);
	cr_assert_eq(exit_status(&c), 0);
	cr_assert_gt(n, 0);
	cr_assert_eq(atoll(out), (long long)st.st_size);
	char cmd[400];
	snprintf(cmd, sizeof(cmd), "cmp -s %s %s", src, dst);
	cr_assert_eq(system(cmd), 0, "copies differ");
	unlink(src);
	unlink(dst);
	close(c.err_fd);
	close(c.out_fd);
}

Test(examples, file_copy, .timeout = 30)
{
	copy_check(false);
	copy_check(true);
	struct child c;
	spawn(&c, (char *[]){ EX "file_copy", "/nonexistent/zio", "", NULL }, NULL, true);
	close(c.in_fd);
	c.in_fd = -1;
	cr_assert_eq(exit_status(&c), 2); /* refused before any copying */
	char said[128];
	read_stderr(&c, said, sizeof(said));
	cr_assert(strstr(said, "DST is empty"), "%s", said);
	close(c.err_fd);
	close(c.out_fd);
	spawn(&c, (char *[]){ EX "file_copy", "/nonexistent/zio", "/tmp/zio-never", NULL }, NULL, true);
	close(c.in_fd);
	c.in_fd = -1;
	cr_assert_eq(exit_status(&c), 1);
	close(c.err_fd);
	close(c.out_fd);
	/* A file whose size says 0 (/proc) is copied to its end. */
	char dst[64];
	snprintf(dst, sizeof(dst), "/tmp/zio-fc-proc-%d", getpid());
	spawn(&c, (char *[]){ EX "file_copy", "/proc/self/maps", dst, NULL }, NULL, true);
	close(c.in_fd);
	c.in_fd = -1;
	char out[64] = { 0 };
	cr_assert_gt(read(c.out_fd, out, sizeof(out) - 1), 0);
	cr_assert_eq(exit_status(&c), 0);
	struct stat st;
	cr_assert_eq(stat(dst, &st), 0);
	cr_assert_gt(st.st_size, 0);
	cr_assert_eq(atoll(out), (long long)st.st_size);
	unlink(dst);
	close(c.err_fd);
	close(c.out_fd);
}

/* A directory of the test's own, for file_copy's files. */
static void scratch_dir(char dir[64])
{
	snprintf(dir, 64, "/tmp/zio-fc-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
}

static void remove_dir(const char *dir)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_assert_eq(system(cmd), 0);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f, "%s: %s", path, strerror(errno));
	fputs(text, f);
	cr_assert_eq(fclose(f), 0);
}

/* argv for file_copy [-b] src dst. */
static void copy_argv(char *argv[5], bool buffered, const char *src, const char *dst)
{
	int k = 0;
	argv[k++] = EX "file_copy";
	if (buffered)
		argv[k++] = "-b";
	argv[k++] = (char *)src;
	argv[k++] = (char *)dst;
	argv[k] = NULL;
}

/* file_copy [-b] src dst, with stdout to out (STDIO_PIPE: a pipe nobody
 * reads): its exit status, and what it wrote to stderr in err. */
static int run_copy(bool buffered, const char *src, const char *dst, int out, char err[512])
{
	struct child c;
	char *argv[5];
	copy_argv(argv, buffered, src, dst);
	spawn_io(&c, argv, NULL, STDIO_CLOSED, out);
	int st = exit_status_within(&c, 10);
	read_stderr(&c, err, 512);
	stop(&c);
	return st;
}

/* A DST that is not a regular file is written in place, as cp does: a
 * FIFO gets the data (it was replaced by a regular file), so does a
 * symlink's target (the link was replaced), and so does a device (as
 * root, /dev/null became a regular file). A dangling symlink is not
 * written through, as cp refuses it. */
Test(examples, file_copy_in_place, .timeout = 30)
{
	char dir[64], src[128], dst[128], target[128], err[512];
	struct stat st;
	scratch_dir(dir);
	snprintf(src, sizeof(src), "%s/src", dir);
	write_file(src, "new data\n");
	snprintf(dst, sizeof(dst), "%s/fifo", dir);
	for (int buffered = 0; buffered < 2; buffered++) {
		cr_assert_eq(mkfifo(dst, 0600), 0);
		int reader = open(dst, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
		cr_assert_geq(reader, 0);
		cr_assert_eq(run_copy(buffered, src, dst, STDIO_PIPE, err), 0, "%s", err);
		char got[64] = { 0 };
		cr_assert_eq(read(reader, got, sizeof(got) - 1), 9);
		cr_assert_str_eq(got, "new data\n");
		close(reader);
		cr_assert_eq(lstat(dst, &st), 0);
		cr_assert(S_ISFIFO(st.st_mode), "the FIFO was replaced");
		unlink(dst);
	}
	/* (From here on one mode each: what differs between them is
	 * covered above.) */
	snprintf(dst, sizeof(dst), "%s/link", dir);
	snprintf(target, sizeof(target), "%s/target", dir);
	write_file(target, "old\n");
	cr_assert_eq(symlink("target", dst), 0);
	cr_assert_eq(run_copy(true, src, dst, STDIO_PIPE, err), 0, "%s", err);
	cr_assert_eq(lstat(dst, &st), 0);
	cr_assert(S_ISLNK(st.st_mode), "the symlink was replaced");
	char cmd[400];
	snprintf(cmd, sizeof(cmd), "cmp -s %s %s", src, target);
	cr_assert_eq(system(cmd), 0, "the target was not written");
	/* ...but not onto SRC itself through a link: O_TRUNC would empty it
	 * before it is read. */
	unlink(dst);
	cr_assert_eq(symlink("src", dst), 0);
	cr_assert_eq(run_copy(false, src, dst, STDIO_PIPE, err), 1);
	cr_assert(strstr(err, "are the same file"), "%s", err);
	cr_assert_eq(stat(src, &st), 0);
	cr_assert_eq(st.st_size, 9);
	/* A dangling link and a FIFO nobody reads are refused in words that
	 * say so (it said "No such file or directory" of a link that is
	 * there, and "No such device or address"); nothing is created. */
	unlink(dst);
	cr_assert_eq(symlink("nowhere", dst), 0);
	cr_assert_eq(run_copy(false, src, dst, STDIO_PIPE, err), 1);
	cr_assert(strstr(err, "not writing through dangling symlink"), "%s", err);
	snprintf(target, sizeof(target), "%s/nowhere", dir);
	cr_assert_eq(access(target, F_OK), -1);
	unlink(dst);
	cr_assert_eq(mkfifo(dst, 0600), 0);
	cr_assert_eq(run_copy(true, src, dst, STDIO_PIPE, err), 1);
	cr_assert(strstr(err, "a FIFO with no reader (start the reader first)"), "%s", err);
	cr_assert_eq(lstat(dst, &st), 0);
	cr_assert(S_ISFIFO(st.st_mode));
	/* A device node of our own (mknod needs root). */
	snprintf(dst, sizeof(dst), "%s/null", dir);
	if (mknod(dst, S_IFCHR | 0600, makedev(1, 3)) == 0) {
		cr_assert_eq(run_copy(false, src, dst, STDIO_PIPE, err), 0, "%s", err);
		cr_assert_eq(lstat(dst, &st), 0);
		cr_assert(S_ISCHR(st.st_mode), "the device node was replaced");
	}
	remove_dir(dir);
}

/* SIGTERM in the middle of a copy: it stops, says so, and leaves no
 * temporary file behind (DST.tmp-PID was left). */
Test(examples, file_copy_stopped, .timeout = 30)
{
	char dir[64], dst[128];
	scratch_dir(dir);
	snprintf(dst, sizeof(dst), "%s/dst", dir);
	for (int buffered = 0; buffered < 2; buffered++) {
		struct child c;
		char *argv[5];
		copy_argv(argv, buffered, "/dev/stdin", dst);
		spawn_io(&c, argv, NULL, STDIO_PIPE, STDIO_PIPE);
		/* Once the pipe is read empty, the copy is under way. */
		cr_assert_eq(write(c.in_fd, "start\n", 6), 6);
		int left = 6;
		for (int ms = 0; ms < 10000 && left > 0; ms++) {
			usleep(1000);
			cr_assert_eq(ioctl(c.in_fd, FIONREAD, &left), 0);
		}
		cr_assert_eq(left, 0, "file_copy did not read its input");
		kill(c.pid, SIGTERM);
		cr_assert_eq(exit_status_within(&c, 10), 1);
		char err[512];
		read_stderr(&c, err, sizeof(err));
		cr_assert_str_eq(err, "file_copy: stopped by SIGTERM\n");
		stop(&c);
		char cmd[128];
		snprintf(cmd, sizeof(cmd), "test -z \"$(ls -A %s)\"", dir);
		cr_assert_eq(system(cmd), 0, "files left in %s", dir);
	}
	remove_dir(dir);
}

/* Errors name the file the user gave, SRC or DST, never a temporary one;
 * a directory SRC is refused as such; a full stdout is an error too. */
Test(examples, file_copy_messages, .timeout = 30)
{
	char dir[64], src[128], dst[160], want[256], err[512];
	scratch_dir(dir);
	snprintf(src, sizeof(src), "%s/src", dir);
	write_file(src, "data\n");
	snprintf(want, sizeof(want), "file_copy: read %s: Is a directory\n", dir);
	for (int buffered = 0; buffered < 2; buffered++) {
		cr_assert_eq(run_copy(buffered, dir, src, STDIO_PIPE, err), 1);
		cr_assert_str_eq(err, want);
	}
	snprintf(dst, sizeof(dst), "%s/nodir/x", dir);
	cr_assert_eq(run_copy(false, src, dst, STDIO_PIPE, err), 1);
	snprintf(want, sizeof(want), "file_copy: create %s: No such file or directory\n", dst);
	cr_assert_str_eq(err, want);
	int full = open("/dev/full", O_WRONLY | O_CLOEXEC);
	snprintf(dst, sizeof(dst), "%s/dst", dir);
	cr_assert_eq(run_copy(false, src, dst, full, err), 1);
	close(full);
	cr_assert_str_eq(err, "file_copy: stdout: No space left on device\n");
	remove_dir(dir);
}

/* A DST name of 251 bytes, within NAME_MAX (255), but not with
 * ".tmp-PID" after it. */
Test(examples, file_copy_long_name, .timeout = 30)
{
	char dir[64], src[128], dst[512], err[512];
	scratch_dir(dir);
	snprintf(src, sizeof(src), "%s/src", dir);
	write_file(src, "data\n");
	int n = snprintf(dst, sizeof(dst), "%s/x", dir);
	memset(dst + n, 'n', 250);
	dst[n + 250] = 0;
	cr_assert_eq(run_copy(false, src, dst, STDIO_PIPE, err), 0, "%s", err);
	struct stat st;
	cr_assert_eq(stat(dst, &st), 0);
	cr_assert_eq(st.st_size, 5);
	remove_dir(dir);
}

/* ------------------------------------------------------------ chat */

/* What the chat server tells the sender of a line it drops. */
static const char too_long[] = "* line too long (max 1023 bytes), not sent\n";

/* Reads lines until one contains want. */
static void expect_line(int fd, const char *want)
{
	char line[256];
	for (int i = 0; i < 20; i++) {
		recv_line(fd, line, sizeof(line));
		if (strstr(line, want))
			return;
	}
	cr_assert_fail("never saw \"%s\"", want);
}

static void chat_check(const char *env)
{
	struct child s;
	spawn(&s, (char *[]){ EX "chat_server", "-p", "0", NULL }, env, false);
	read_banner(&s);
	int a = dial(s.port, SOCK_STREAM);
	expect_line(a, "you are #1");
	int b = dial(s.port, SOCK_STREAM);
	expect_line(b, "you are #2");
	expect_line(a, "#2 joined");
	int c = dial(s.port, SOCK_STREAM);
	expect_line(c, "you are #3, 3 online");
	expect_line(a, "#3 joined");
	expect_line(b, "#3 joined");
	send_all(a, "hello all\n", 10);
	expect_line(b, "[#1] hello all");
	expect_line(c, "[#1] hello all");
	send_all(c, "from c\n", 7);
	expect_line(a, "[#3] from c");
	expect_line(b, "[#3] from c");
	close(b);
	expect_line(a, "#2 left");
	expect_line(c, "#2 left");
	/* many messages in a row arrive in order */
	for (int i = 0; i < 200; i++) {
		char m[32];
		int n = snprintf(m, sizeof(m), "n%d\n", i);
		send_all(a, m, (size_t)n);
	}
	for (int i = 0; i < 200; i++) {
		char want[32], line[64];
		snprintf(want, sizeof(want), "[#1] n%d\n", i);
		recv_line(c, line, sizeof(line));
		cr_assert_str_eq(line, want);
	}
	/* A line with a NUL byte arrives whole, with its newline. */
	send_all(a, "one\0two\nnext\n", 13);
	char line[64];
	recv_exact(c, line, 13);
	cr_assert_eq(memcmp(line, "[#1] one\0two\n", 13), 0);
	expect_line(c, "[#1] next");
	/* An overlong line is dropped whole, its sender told; the next
	 * one arrives. */
	static char big[3001];
	memset(big, 'X', 3000);
	big[3000] = '\n';
	send_all(a, big, sizeof(big));
	send_all(a, "short\n", 6);
	recv_line(c, line, sizeof(line));
	cr_assert_str_eq(line, "[#1] short\n");
	recv_line(a, line, sizeof(line));
	cr_assert_str_eq(line, too_long);
	/* A last line without newline filling the server's line buffer,
	 * then EOF: the server stays up (it wrote one byte past the
	 * buffer), drops the line and says the client left. */
	static char full[1024];
	memset(full, 'B', sizeof(full));
	send_all(a, full, sizeof(full));
	shutdown(a, SHUT_WR);
	recv_line(c, line, sizeof(line));
	cr_assert_str_eq(line, "* #1 left\n");
	send_all(c, "still here\n", 11);
	close(a);
	int d = dial(s.port, SOCK_STREAM);
	expect_line(d, "you are #4");
	close(d);
	close(c);
	stop(&s);
}

Test(examples, chat_server, .timeout = 30)
{
	chat_check(NULL);
	chat_check("ZIO_EXECUTORS=2");
}

/* A client that reads nothing is cut off as soon as its outbox passes 1
 * MiB: the others hear it left at once, and the room goes on. (The cut
 * used to wait for the send the server was in to time out, 10 s.) */
Test(examples, chat_server_cuts_off_a_client_that_reads_nothing, .timeout = 30)
{
	struct child s;
	spawn(&s, (char *[]){ EX "chat_server", "-p", "0", NULL }, NULL, false);
	read_banner(&s);
	int slow = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert_geq(slow, 0);
	int small = 4096; /* its window stays small: the server's sends block soon */
	cr_assert_eq(setsockopt(slow, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)), 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)s.port) };
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	struct timeval tv = { 10, 0 };
	setsockopt(slow, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	cr_assert_eq(connect(slow, (struct sockaddr *)&sa, sizeof(sa)), 0);
	/* Greeted before the next client comes: the ids go by the order in
	 * which the server's connection tasks start. */
	expect_line(slow, "you are #1, 1 online");
	int a = dial(s.port, SOCK_STREAM);
	expect_line(a, "you are #2, 2 online");
	/* 16 MiB of lines: more than the outbox and every kernel buffer on
	 * the way (the server's send buffer grows to 4 MiB at most). */
	static char line[1000];
	memset(line, 'L', sizeof(line) - 1);
	line[sizeof(line) - 1] = '\n';
	for (int i = 0; i < 16 * 1024 * 1024 / (int)sizeof(line); i++)
		send_all(a, line, sizeof(line));
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	expect_line(a, "* #1 left");
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double waited = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	cr_assert_lt(waited, 5.0, "the slow client was cut off after %.1f s", waited);
	int c = dial(s.port, SOCK_STREAM);
	expect_line(c, "you are #3, 2 online");
	send_all(c, "still on\n", 9);
	expect_line(a, "[#3] still on");
	close(c);
	close(a);
	close(slow);
	stop(&s);
}

/* Lines at the limit, 1024 bytes with the newline: exactly what the
 * others receive next. One byte more and the line is dropped, and its
 * sender told; a last line without newline counts the newline it gets. */
Test(examples, chat_server_line_limit, .timeout = 30)
{
	struct child s;
	spawn(&s, (char *[]){ EX "chat_server", "-p", "0", NULL }, NULL, false);
	read_banner(&s);
	static char text[1100], line[1200], want[1200];
	int a = dial(s.port, SOCK_STREAM);
	recv_line(a, line, sizeof(line));
	cr_assert_str_eq(line, "* you are #1, 1 online\n");
	int c = dial(s.port, SOCK_STREAM);
	recv_line(c, line, sizeof(line));
	cr_assert_str_eq(line, "* you are #2, 2 online\n");
	recv_line(a, line, sizeof(line));
	cr_assert_str_eq(line, "* #2 joined\n");

	/* 1023 bytes and a newline: forwarded whole. */
	memset(text, 'X', 1023);
	text[1023] = '\n';
	send_all(a, text, 1024);
	snprintf(want, sizeof(want), "[#1] %.1024s", text);
	recv_line(c, line, sizeof(line));
	cr_assert_str_eq(line, want);
	/* 1024 and a newline: dropped, the sender told, the next line heard. */
	memset(text, 'Y', 1024);
	text[1024] = '\n';
	send_all(a, text, 1025);
	send_all(a, "short\n", 6);
	recv_line(a, line, sizeof(line));
	cr_assert_str_eq(line, too_long);
	recv_line(c, line, sizeof(line));
	cr_assert_str_eq(line, "[#1] short\n");

	/* A last line of 1023 bytes without newline, then EOF: forwarded
	 * with a newline, then its sender has left. */
	int b = dial(s.port, SOCK_STREAM);
	recv_line(c, line, sizeof(line));
	cr_assert_str_eq(line, "* #3 joined\n");
	memset(text, 'Z', 1023);
	send_all(b, text, 1023);
	shutdown(b, SHUT_WR);
	text[1023] = '\n';
	snprintf(want, sizeof(want), "[#3] %.1024s", text);
	recv_line(c, line, sizeof(line));
	cr_assert_str_eq(line, want);
	recv_line(c, line, sizeof(line));
	cr_assert_str_eq(line, "* #3 left\n");
	/* 1024 bytes without newline, then EOF: too long once it has its
	 * newline, so dropped; the next thing heard is that the sender left. */
	memset(text, 'B', 1024);
	send_all(a, text, 1024);
	shutdown(a, SHUT_WR);
	recv_line(c, line, sizeof(line));
	cr_assert_str_eq(line, "* #1 left\n");
	close(a);
	close(b);
	close(c);
	stop(&s);
}
