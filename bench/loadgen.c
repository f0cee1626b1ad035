/*
 * loadgen - closed-loop TCP echo load generator for bench/run.
 *
 * One thread, one epoll set, C connections to a loopback echo server. Each
 * connection sends an S-byte message (64 by default), waits until all S bytes
 * have come back, records the round-trip time and sends again at once, so
 * there is exactly one request in flight per connection. After all
 * connections are up, a warm-up (-w) lets the server reach steady state;
 * then for D seconds (-d) every completed round trip is counted and its
 * latency put into a log-linear histogram (fixed array, no allocation per
 * request; buckets are 1/32 of an octave wide, so percentiles are within
 * about 1.6%).
 *
 * With -pid PID the server's utime+stime are read from /proc/PID/stat at the
 * start and end of the measured window; the difference divided by the
 * requests completed is the server's CPU cost per request, the figure to
 * compare when this single client thread is the bottleneck (it saturates its
 * CPU before the fastest servers do). The clock-tick resolution (10 ms) is
 * 0.2% of a 5 s window.
 *
 * Only loopback targets are accepted (127.0.0.1, ::1, localhost), and the run
 * is bounded in time: it ends after the window whatever the server does, and
 * an alarm ends it in any case.
 *
 * usage: loadgen -p PORT [-h 127.0.0.1] [-c conns=50] [-d secs=5] [-w secs=1]
 *                [-s bytes=64] [-pid PID] [-t connect-timeout-secs=5]
 * prints: RESULT req_per_s, p50_us, p90_us, p99_us, p999_us, max_us, mean_us,
 *         requests, errors, client_cpu_pct, and with -pid server_cpu_pct,
 *         server_cpu_us_per_req and server_sys_us_per_req.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "bench.h"

#define MAX_MSG 65536

/* Log-linear histogram of nanoseconds: values below 64 get a bucket each;
 * above, each power of two is split into 32 buckets. */
#define SUB_BITS 5
#define SUB (1 << SUB_BITS)
#define LINEAR 64 /* = 2 * SUB */
#define OCTAVES 42
#define NBUCKETS (LINEAR + OCTAVES * SUB)

static uint64_t hist[NBUCKETS];
static uint64_t hist_count, hist_max;
static double hist_sum;

static unsigned bucket_of(uint64_t v)
{
	unsigned e, b;

	if (v < LINEAR)
		return (unsigned)v;
	e = 63u - (unsigned)__builtin_clzll(v); /* >= 6 */
	b = LINEAR + (e - 6) * SUB + (unsigned)((v >> (e - SUB_BITS)) & (SUB - 1));
	return b < NBUCKETS ? b : NBUCKETS - 1;
}

/* The middle of bucket b, in ns. */
static double bucket_mid(unsigned b)
{
	unsigned e, sub;
	double lo, width;

	if (b < LINEAR)
		return b;
	e = (b - LINEAR) / SUB + 6;
	sub = (b - LINEAR) % SUB;
	width = ldexp(1.0, (int)e - SUB_BITS);
	lo = ldexp(1.0, (int)e) + sub * width;
	return lo + width / 2;
}

static inline void hist_add(uint64_t ns)
{
	hist[bucket_of(ns)]++;
	hist_count++;
	hist_sum += (double)ns;
	if (ns > hist_max)
		hist_max = ns;
}

static double hist_pct(double p)
{
	uint64_t want = (uint64_t)ceil(p / 100.0 * (double)hist_count), seen = 0;

	if (want == 0)
		want = 1;
	for (unsigned b = 0; b < NBUCKETS; b++) {
		seen += hist[b];
		if (seen >= want)
			return bucket_mid(b);
	}
	return (double)hist_max;
}

enum { C_CONNECTING, C_RUNNING, C_DEAD };

struct conn {
	int fd;
	int state;
	uint32_t sent;	/* bytes of the current request written */
	uint32_t got;	/* bytes of its echo read */
	int64_t t_send; /* when the request was started */
};

static struct conn *conns;
static int nconns, alive, msg_size, ep;
static char msg[MAX_MSG];
static long errors;

static void usage(void)
{
	fprintf(stderr, "usage: loadgen -p PORT [-h 127.0.0.1|::1] [-c conns] [-d secs] [-w secs]\n"
			"               [-s bytes] [-pid PID] [-t connect-timeout-secs]\n");
	exit(2);
}

static void conn_kill(struct conn *c, const char *why, int err)
{
	if (c->state == C_DEAD)
		return;
	if (errors < 5)
		fprintf(stderr, "loadgen: connection %ld: %s%s%s\n", (long)(c - conns), why,
			err ? ": " : "", err ? strerror(err) : "");
	errors++;
	close(c->fd);
	c->state = C_DEAD;
	alive--;
}

/* Writes the rest of the current request; returns 0, or -1 if the
 * connection died. A short write waits for EPOLLOUT. */
static int conn_send(struct conn *c)
{
	while (c->sent < (uint32_t)msg_size) {
		ssize_t w = send(c->fd, msg + c->sent, (size_t)msg_size - c->sent, MSG_NOSIGNAL);

		if (w < 0) {
			if (errno == EAGAIN) {
				struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT, .data.ptr = c };

				epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
				return 0;
			}
			conn_kill(c, "send", errno);
			return -1;
		}
		c->sent += (uint32_t)w;
	}
	return 0;
}

static void conn_start_request(struct conn *c, int64_t now)
{
	c->sent = 0;
	c->got = 0;
	c->t_send = now;
	conn_send(c);
}

/* Reads what the server echoed; records a round trip when it is complete. */
static void conn_read(struct conn *c, int record)
{
	static char buf[MAX_MSG];

	for (;;) {
		ssize_t n = recv(c->fd, buf, sizeof(buf), 0);

		if (n == 0) {
			conn_kill(c, "closed by server", 0);
			return;
		}
		if (n < 0) {
			if (errno != EAGAIN && errno != EINTR)
				conn_kill(c, "recv", errno);
			return;
		}
		c->got += (uint32_t)n;
		if (c->got > (uint32_t)msg_size || c->got > c->sent) {
			conn_kill(c, "server sent more than the request", 0);
			return;
		}
		if (c->got == (uint32_t)msg_size) {
			int64_t now = bench_now_ns();

			if (record)
				hist_add((uint64_t)(now - c->t_send));
			conn_start_request(c, now);
			return; /* one request in flight: nothing more can be there */
		}
	}
}

static int parse_target(const char *host, int port, struct sockaddr_storage *ss, socklen_t *len)
{
	memset(ss, 0, sizeof(*ss));
	if (!strcmp(host, "localhost"))
		host = "127.0.0.1";
	if (!strcmp(host, "127.0.0.1")) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		*len = sizeof(*s4);
		return 0;
	}
	if (!strcmp(host, "::1")) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		s6->sin6_addr = in6addr_loopback;
		*len = sizeof(*s6);
		return 0;
	}
	return -1;
}

struct proc_cpu {
	double user_us, sys_us; /* utime and stime; negative if unreadable */
};

static struct proc_cpu proc_cpu(long pid)
{
	struct proc_cpu cpu = { -1, -1 };
	char path[64], buf[4096], *p;
	unsigned long long ut = 0, st = 0;
	double tick_us = 1e6 / (double)sysconf(_SC_CLK_TCK);
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return cpu;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return cpu;
	buf[n] = 0;
	/* comm (field 2) may hold spaces and parentheses: skip past the last
	 * ')'. Then field 3 (state) is first, utime and stime are 14 and 15. */
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut,
			 &st) != 2)
		return cpu;
	cpu.user_us = (double)ut * tick_us;
	cpu.sys_us = (double)st * tick_us;
	return cpu;
}

static double self_cpu_us(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6 +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

int main(int argc, char **argv)
{
	const char *host = "127.0.0.1";
	int port = 0;
	double dur = 5, warm = 1, conn_timeout = 5;
	long pid = 0;
	struct sockaddr_storage ss;
	socklen_t sslen;
	struct rlimit rl;
	struct epoll_event evs[512];
	int64_t now, t_conn_end, t_warm_end = 0, t_end = 0, t0 = 0, t1 = 0;
	struct proc_cpu srv0 = { -1, -1 }, srv1 = { -1, -1 };
	double cli0 = 0, cli1 = 0;
	int phase = 0; /* 0 connecting, 1 warm-up, 2 measuring */

	nconns = 50;
	msg_size = 64;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!v)
			usage();
		if (!strcmp(a, "-h"))
			host = v;
		else if (!strcmp(a, "-p"))
			port = atoi(v);
		else if (!strcmp(a, "-c"))
			nconns = atoi(v);
		else if (!strcmp(a, "-d"))
			dur = atof(v);
		else if (!strcmp(a, "-w"))
			warm = atof(v);
		else if (!strcmp(a, "-s"))
			msg_size = atoi(v);
		else if (!strcmp(a, "-pid"))
			pid = atol(v);
		else if (!strcmp(a, "-t"))
			conn_timeout = atof(v);
		else
			usage();
		i++;
	}
	if (port <= 0 || port > 65535 || nconns < 1 || dur <= 0 || warm < 0 || msg_size < 1 ||
	    msg_size > MAX_MSG || conn_timeout <= 0 || dur > 3600 || warm > 3600 || conn_timeout > 600)
		usage();
	if (parse_target(host, port, &ss, &sslen) != 0) {
		fprintf(stderr, "loadgen: only loopback targets (127.0.0.1, ::1, localhost)\n");
		return 2;
	}
	/* The last resort against a wedged run: SIGALRM's default action ends
	 * the process a little after the whole run should have ended. */
	alarm((unsigned)(conn_timeout + warm + dur) + 10);
	signal(SIGPIPE, SIG_IGN);

	/* One fd per connection plus a few; raise the soft limit as far as the
	 * hard one allows, at most 20000. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)nconns + 16) {
		rlim_t want = 20000;

		if (want < (rlim_t)nconns + 16)
			want = (rlim_t)nconns + 16;
		if (rl.rlim_max != RLIM_INFINITY && want > rl.rlim_max)
			want = rl.rlim_max;
		rl.rlim_cur = want;
		setrlimit(RLIMIT_NOFILE, &rl);
		getrlimit(RLIMIT_NOFILE, &rl);
		if (rl.rlim_cur < (rlim_t)nconns + 16) {
			fprintf(stderr, "loadgen: fd limit %ld is too low for %d connections\n",
				(long)rl.rlim_cur, nconns);
			return 1;
		}
	}
	/* A line: line-based echo servers (examples/echo_server -l) answer it. */
	for (int i = 0; i < msg_size; i++)
		msg[i] = (char)('a' + i % 26);
	msg[msg_size - 1] = '\n';
	conns = calloc((size_t)nconns, sizeof(*conns));
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (!conns || ep < 0) {
		perror("loadgen: setup");
		return 1;
	}

	/* Start every connect at once; the server's accept backlog absorbs
	 * them, and the warm-up only starts when all are established. */
	for (int i = 0; i < nconns; i++) {
		struct conn *c = &conns[i];
		struct epoll_event ev = { .events = EPOLLOUT, .data.ptr = c };
		int one = 1;

		c->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (c->fd < 0) {
			perror("loadgen: socket");
			return 1;
		}
		setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		c->state = C_CONNECTING;
		alive++;
		if (connect(c->fd, (struct sockaddr *)&ss, sslen) != 0 && errno != EINPROGRESS) {
			conn_kill(c, "connect", errno);
			continue;
		}
		epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
	}
	now = bench_now_ns();
	t_conn_end = now + (int64_t)(conn_timeout * 1e9);
	{
		int connecting = alive;

		while (connecting > 0 && alive > 0) {
			int n = epoll_wait(ep, evs, 512, 10);

			now = bench_now_ns();
			for (int i = 0; i < n; i++) {
				struct conn *c = evs[i].data.ptr;
				struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
				int err = 0;
				socklen_t el = sizeof(err);

				if (c->state != C_CONNECTING)
					continue;
				getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
				connecting--;
				if (err) {
					conn_kill(c, "connect", err);
					continue;
				}
				c->state = C_RUNNING;
				epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
			}
			if (now > t_conn_end) {
				fprintf(stderr, "loadgen: %d connections still pending after %.1f s\n",
					connecting, conn_timeout);
				for (int i = 0; i < nconns; i++)
					if (conns[i].state == C_CONNECTING)
						conn_kill(&conns[i], "connect timed out", 0);
				break;
			}
		}
	}
	if (alive == 0) {
		fprintf(stderr, "loadgen: no connection to %s:%d\n", host, port);
		return 1;
	}
	if (alive < nconns)
		fprintf(stderr, "loadgen: running with %d of %d connections\n", alive, nconns);

	now = bench_now_ns();
	phase = 1;
	t_warm_end = now + (int64_t)(warm * 1e9);
	t_end = t_warm_end + (int64_t)(dur * 1e9);
	for (int i = 0; i < nconns; i++)
		if (conns[i].state == C_RUNNING)
			conn_start_request(&conns[i], now);

	while (alive > 0) {
		int n = epoll_wait(ep, evs, 512, 10);

		for (int i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;

			if (c->state != C_RUNNING)
				continue;
			if ((evs[i].events & EPOLLOUT) && c->sent < (uint32_t)msg_size) {
				if (conn_send(c) < 0)
					continue;
				if (c->sent == (uint32_t)msg_size) {
					struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };

					epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
				}
			}
			if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
				conn_read(c, phase == 2);
		}
		now = bench_now_ns();
		if (phase == 1 && now >= t_warm_end) {
			phase = 2;
			t0 = now;
			if (pid > 0)
				srv0 = proc_cpu(pid);
			cli0 = self_cpu_us();
		} else if (phase == 2 && now >= t_end) {
			t1 = now;
			if (pid > 0)
				srv1 = proc_cpu(pid);
			cli1 = self_cpu_us();
			break;
		}
	}
	if (phase != 2 || t1 == 0 || hist_count == 0) {
		fprintf(stderr, "loadgen: no request completed in the window (%d of %d connections alive)\n",
			alive, nconns);
		return 1;
	}

	{
		double secs = (double)(t1 - t0) / 1e9;

		bench_result("req_per_s", (double)hist_count / secs, "req/s");
		bench_result("p50_us", hist_pct(50) / 1e3, "us");
		bench_result("p90_us", hist_pct(90) / 1e3, "us");
		bench_result("p99_us", hist_pct(99) / 1e3, "us");
		bench_result("p999_us", hist_pct(99.9) / 1e3, "us");
		bench_result("max_us", (double)hist_max / 1e3, "us");
		bench_result("mean_us", hist_sum / (double)hist_count / 1e3, "us");
		bench_result("requests", (double)hist_count, "req");
		bench_result("errors", (double)errors, "conn");
		bench_result("client_cpu_pct", (cli1 - cli0) / (secs * 1e6) * 100, "%");
		if (pid > 0 && srv0.user_us >= 0 && srv1.user_us >= 0) {
			double user = srv1.user_us - srv0.user_us, sys = srv1.sys_us - srv0.sys_us;

			bench_result("server_cpu_pct", (user + sys) / (secs * 1e6) * 100, "%");
			bench_result("server_cpu_us_per_req", (user + sys) / (double)hist_count, "us");
			bench_result("server_sys_us_per_req", sys / (double)hist_count, "us");
		} else if (pid > 0) {
			fprintf(stderr, "loadgen: could not read /proc/%ld/stat\n", pid);
		}
		fprintf(stderr, "loadgen: %s:%d, %d conns (%d alive), %.2f s window, %d-byte messages\n",
			host, port, nconns, alive, secs, msg_size);
	}
	return 0;
}
