/*
 * example_util.h - what the examples share that is not zio's API: reading
 * numbers and a listen address from the command line, making sure fds 0-2
 * are open, stopping on SIGINT/SIGTERM, and which accept() failures a
 * server rides out.
 *
 * Usage errors (a bad option, a stray argument, a PORT or ADDR that is
 * not one) exit with status 2, as getopt-based tools do; failures at run
 * time with 1. --help prints the usage and what each option does on
 * stdout and exits 0.
 */
#ifndef EXAMPLE_UTIL_H
#define EXAMPLE_UTIL_H

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>
#include <zio.h>

/* The runtime's environment, for every example's --help. */
#define EXAMPLE_ENV_HELP                                                              \
	"ZIO_EXECUTORS (1 to 256, or auto: one per CPU; default 1) and ZIO_BACKEND\n" \
	"(uring, epoll or poll; default: the best that works) choose the runtime.\n"

/* Prints "usage: PROG SYNOPSIS" and help on stdout and exits 0 if "--help"
 * comes before any "--" among the arguments, as GNU programs do. Call it
 * before getopt(), which would take "--help" for bad options. */
static inline void help_exits(int argc, char **argv, const char *synopsis, const char *help)
{
	for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
		if (strcmp(argv[i], "--help") == 0) {
			printf("usage: %s %s\n\n%s", argv[0], synopsis, help);
			exit(fflush(stdout) == 0 ? 0 : 1);
		}
}

/* Says how the program is called and where to learn more; returns 2, the
 * exit status of a usage error. */
static inline int usage_error(const char *argv0, const char *synopsis)
{
	fprintf(stderr, "usage: %s %s\n(%s --help says more)\n", argv0, synopsis, argv0);
	return 2;
}

/* A whole number from text, min to max, or -1 for anything else. */
static inline long num_arg(const char *s, long min, long max)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	return *s && !*end && !errno && v >= min && v <= max ? v : -1;
}

/* A port number from text: 0 to 65535, or -1 for anything else. */
static inline int port_arg(const char *s)
{
	return (int)num_arg(s, 0, 65535);
}

/* The address a server listens on, from -h ADDR and -p PORT (port is
 * port_arg()'s result): 0, or 2 (a usage error) once it has said what is
 * wrong. Checked in main(), before the runtime exists, like every other
 * argument. */
static inline int listen_addr(zio_addr *out, const char *prog, const char *host, int port)
{
	if (port < 0) {
		fprintf(stderr, "%s: PORT must be a number from 0 to 65535\n", prog);
		return 2;
	}
	if (zio_addr_ip(out, host, (uint16_t)port)) {
		fprintf(stderr, "%s: -h takes a numeric IPv4 or IPv6 address, such as 127.0.0.1, "
				"0.0.0.0 or ::1 (not \"%s\")\n", prog, host);
		return 2;
	}
	return 0;
}

/* Opens /dev/null on each of fds 0, 1 and 2 the program was started
 * without (`prog <&-`). Otherwise the next files opened take those
 * numbers, the runtime's io_uring ring or epoll fd, a socket, and code
 * that means stdin or stderr reads or writes them instead. Call it first
 * thing in main(); false if /dev/null would not open (open() takes the
 * lowest free number, so each one lands where it is missing). */
static inline bool std_fds_open(void)
{
	for (int fd = 0; fd <= 2; fd++)
		if (fcntl(fd, F_GETFD) < 0 && open("/dev/null", O_RDWR) != fd)
			return false;
	return true;
}

/*
 * Stopping on SIGINT or SIGTERM, as a cancellation. main() calls
 * stop_signals_block() before zio_runtime_create(), so the executor
 * threads inherit the blocked mask and the signals wait in a signalfd
 * instead of killing the process. It then runs run_stoppable() as the
 * runtime's main task, which runs the program's own task function and a
 * watcher that cancels it when a signal comes: its calls return
 * -ECANCELED and it cleans up as after any cancellation. That matters:
 * a server killed outright on io_uring keeps its port bound for a moment
 * after it exits, while the kernel tears its ring down (a restart fails
 * with EADDRINUSE), and a killed copy leaves its temporary file.
 * Cancelling, rather than closing a server's listener under it, works the
 * same for every program (a copy in the middle of a write too), and each
 * task closes its own fds, so no fd is closed while another task may
 * still be using its number.
 */
struct stoppable {
	const char *prog;  /* names the "stopped by" line */
	zio_task_fn fn;    /* the program's task function... */
	void *arg;         /* ...and its argument */
	int sigfd;         /* from stop_signals_block() */
	zio_task *task;    /* what the watcher cancels */
	int signo;         /* the signal that came, or 0 */
};

/* Blocks SIGINT and SIGTERM in the calling thread and returns a signalfd
 * that reads them, or -errno. */
static inline int stop_signals_block(void)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	int err = pthread_sigmask(SIG_BLOCK, &set, NULL);
	if (err)
		return -err;
	int fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

/* Waits for SIGINT or SIGTERM, then cancels s->task. */
static inline void *stop_watcher(void *arg)
{
	struct stoppable *s = arg;
	struct signalfd_siginfo si;
	if (zio_read(s->sigfd, &si, sizeof(si), ZIO_FOREVER) == (ssize_t)sizeof(si)) {
		s->signo = (int)si.ssi_signo;
		zio_task_cancel(s->task);
	}
	return NULL;
}

/* The runtime's main task: s->fn(s->arg), returning what it returns,
 * cancelled by SIGINT or SIGTERM; then it prints "PROG: stopped by SIG...". */
static inline void *run_stoppable(void *arg)
{
	struct stoppable *s = arg;
	zio_task *watcher;
	s->task = zio_task_self();
	int err = zio_spawn(NULL, &watcher, stop_watcher, s, NULL);
	if (err) {
		fprintf(stderr, "%s: %s\n", s->prog, strerror(-err));
		return (void *)1;
	}
	void *res = s->fn(s->arg);
	zio_task_cancel(watcher);
	zio_shield_begin(); /* this task may be cancelled: wait all the same */
	zio_task_join(watcher, NULL);
	zio_shield_end();
	zio_close(s->sigfd);
	if (s->signo)
		fprintf(stderr, "%s: stopped by %s\n", s->prog, s->signo == SIGINT ? "SIGINT" : "SIGTERM");
	return res;
}

/* Whether a failed zio_tcp_accept() leaves the listener serving. Out of
 * descriptors or memory: yes, after a moment for some to be freed, said
 * on stderr at most once a minute (the operator should know connections
 * wait). A connection that failed before it was taken (aborted, or one of
 * the network errors accept(2) passes on from the new socket and says to
 * retry, or EPERM from a firewall rule): yes. Anything else, -ECANCELED
 * included, ends the server. */
static inline bool accept_goes_on(int err)
{
	static _Atomic int64_t said_at = -ZIO_SEC(60);
	switch (err) {
	case -EMFILE:
	case -ENFILE:
	case -ENOBUFS:
	case -ENOMEM: {
		int64_t now = zio_now(), last = said_at;
		if (now - last >= ZIO_SEC(60) && atomic_compare_exchange_strong(&said_at, &last, now))
			fprintf(stderr, "%s: accept: %s (new connections wait until some close)\n",
				program_invocation_short_name, strerror(-err));
		zio_sleep(ZIO_MSEC(10));
		return true;
	}
	case -ECONNABORTED:
	case -EINTR:
	case -ENETDOWN:
	case -EPROTO:
	case -ENOPROTOOPT:
	case -EHOSTDOWN:
	case -ENONET:
	case -EHOSTUNREACH:
	case -EOPNOTSUPP:
	case -ENETUNREACH:
	case -EPERM:
		return true;
	default:
		return false;
	}
}

#endif
