/*
 * udp_echo - sends every datagram back to where it came from.
 *
 *   udp_echo [-p PORT] [-h ADDR]
 *
 * One task receives and answers; -p 0 picks a free port (see the banner).
 * SIGINT or SIGTERM stop it (the socket is closed; exit status 0).
 */
#define _GNU_SOURCE /* the examples use Linux's and glibc's extensions */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zio.h>

#include "example_util.h"

/* Serves on the address arg points to until cancelled. */
static void *serve(void *arg)
{
	zio_addr addr = *(zio_addr *)arg, from;
	char txt[ZIO_ADDR_STRLEN];
	int fd = zio_udp_bind(&addr);
	if (fd < 0) {
		zio_addr_format(&addr, txt, sizeof(txt));
		fprintf(stderr, "udp_echo: bind to %s: %s\n", txt, strerror(-fd));
		return (void *)1;
	}
	zio_local_addr(fd, &addr);
	zio_addr_format(&addr, txt, sizeof(txt));
	fprintf(stderr, "udp_echo: listening on %s (%s backend)\n", txt,
		zio_runtime_backend(zio_runtime_current()));
	char buf[65536];
	ssize_t n;
	for (;;) {
		n = zio_recvfrom(fd, buf, sizeof(buf), 0, &from, ZIO_FOREVER);
		if (n == -ENOBUFS || n == -ENOMEM || n == -EINTR || n == -ECONNREFUSED)
			continue; /* a moment's shortage, or an ICMP error for an
				   * earlier reply (with IP_RECVERR): the socket is fine */
		if (n < 0)
			break;
		zio_sendto(fd, buf, (size_t)n, 0, &from, zio_deadline_after(ZIO_SEC(1)));
	}
	zio_close(fd);
	if (n == -ECANCELED)
		return NULL; /* SIGINT or SIGTERM (run_stoppable) */
	fprintf(stderr, "udp_echo: receive: %s\n", strerror((int)-n));
	return (void *)1;
}

static const char synopsis[] = "[-p PORT] [-h ADDR]";
static const char help[] =
	"Sends every UDP datagram back to where it came from.\n\n"
	"  -p PORT  the port to listen on (default 8080; 0 picks a free one, which\n"
	"           the banner on stderr names)\n"
	"  -h ADDR  the numeric IPv4 or IPv6 address to listen on (default\n"
	"           127.0.0.1; 0.0.0.0 or :: for every interface)\n"
	"\n" EXAMPLE_ENV_HELP "SIGINT or SIGTERM stop it (exit status 0).\n";

int main(int argc, char **argv)
{
	if (!std_fds_open())
		return 1;
	const char *host = "127.0.0.1";
	int port = 8080, c;
	bool bad = false;
	help_exits(argc, argv, synopsis, help);
	while ((c = getopt(argc, argv, "p:h:")) != -1) {
		if (c == 'p')
			port = port_arg(optarg);
		else if (c == 'h')
			host = optarg;
		else
			bad = true;
	}
	if (bad || optind != argc)
		return usage_error(argv[0], synopsis);
	zio_addr addr;
	int err = listen_addr(&addr, "udp_echo", host, port);
	if (err)
		return err;
	struct stoppable s = { .prog = "udp_echo", .fn = serve, .arg = &addr,
			       .sigfd = stop_signals_block() };
	if (s.sigfd < 0) {
		fprintf(stderr, "udp_echo: signals: %s\n", strerror(-s.sigfd));
		return 1;
	}
	zio_runtime *rt;
	err = zio_runtime_create(&rt, NULL);
	if (err) {
		fprintf(stderr, "udp_echo: cannot start the zio runtime: %s\n", strerror(-err));
		return 1;
	}
	void *res = NULL;
	zio_runtime_run(rt, run_stoppable, &s, &res);
	zio_runtime_destroy(rt);
	return res ? 1 : 0;
}
