/*
 * echo_server - a TCP echo server, one task per connection.
 *
 *   echo_server [-p PORT] [-h ADDR] [-l]
 *
 * By default it echoes whatever arrives as soon as it arrives (what the
 * benchmark's 64-byte requests need). With -l it is a line-based
 * loop: a buffered reader takes each line (delimiter included) and a
 * buffered writer sends it back and flushes. Either way a line-based client
 * gets its lines back. -p 0 picks a free port; the one-line banner on
 * stderr says which. ZIO_EXECUTORS and ZIO_BACKEND come from the
 * environment. SIGINT or SIGTERM stop it: the listener is closed, open
 * connections are cut, and it exits 0 (example_util.h).
 */
#define _GNU_SOURCE /* the examples use Linux's and glibc's extensions */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <zio.h>

#include "example_util.h"

static bool line_mode;

static const char synopsis[] = "[-p PORT] [-h ADDR] [-l]";
static const char help[] =
	"A TCP echo server, one task per connection: it sends back whatever comes.\n\n"
	"  -p PORT  the port to listen on (default 8080; 0 picks a free one, which\n"
	"           the banner on stderr names)\n"
	"  -h ADDR  the numeric IPv4 or IPv6 address to listen on (default\n"
	"           127.0.0.1; 0.0.0.0 or :: for every interface)\n"
	"  -l       line mode: read each line through a buffered reader and send\n"
	"           it back through a buffered writer\n\n" EXAMPLE_ENV_HELP
	"SIGINT or SIGTERM stop it (exit status 0).\n";

static void *handle_client(void *arg)
{
	int fd = (int)(intptr_t)arg;
	if (line_mode) {
		char rbuf[1024], wbuf[1024];
		zio_reader r;
		zio_writer w;
		zio_reader_init_fd(&r, fd, rbuf, sizeof(rbuf));
		zio_writer_init_fd(&w, fd, wbuf, sizeof(wbuf));
		const char *line;
		ssize_t n;
		while ((n = zio_reader_take_delim_ref(&r, '\n', true, &line)) != 0) {
			/* A line longer than rbuf goes back in rbuf-sized pieces. */
			if (n == -EMSGSIZE && (n = zio_reader_peek(&r, sizeof(rbuf), &line)) > 0)
				zio_reader_discard(&r, (size_t)n);
			if (n < 0 || zio_writer_write(&w, line, (size_t)n) < 0 || zio_writer_flush(&w) < 0)
				break;
		}
	} else {
		char buf[4096];
		ssize_t n;
		while ((n = zio_read(fd, buf, sizeof(buf), ZIO_FOREVER)) > 0)
			if (zio_write_all(fd, buf, (size_t)n, ZIO_FOREVER) < 0)
				break;
	}
	zio_close(fd);
	return NULL;
}

/* Serves on the address arg points to until cancelled. */
static void *serve(void *arg)
{
	zio_addr addr = *(zio_addr *)arg;
	char txt[ZIO_ADDR_STRLEN];
	int lfd = zio_tcp_listen(&addr, NULL);
	if (lfd < 0) {
		zio_addr_format(&addr, txt, sizeof(txt));
		fprintf(stderr, "echo_server: listen on %s: %s\n", txt, strerror(-lfd));
		return (void *)1;
	}
	zio_local_addr(lfd, &addr);
	zio_addr_format(&addr, txt, sizeof(txt));
	zio_runtime *rt = zio_runtime_current();
	fprintf(stderr, "echo_server: listening on %s (%s backend, %u executor%s, %s mode)\n", txt,
		zio_runtime_backend(rt), zio_runtime_executors(rt),
		zio_runtime_executors(rt) == 1 ? "" : "s", line_mode ? "line" : "raw");
	/* A 4 KiB buffer and shallow calls: 64 KiB of stack is plenty, so
	 * 10,000 connections reserve 640 MiB of address space, not 80 GiB. */
	struct zio_spawn_options so = { .stack_size = 64 << 10 };
	int fd;
	for (;;) {
		fd = zio_tcp_accept(lfd, NULL, ZIO_FOREVER);
		if (fd < 0) {
			if (accept_goes_on(fd))
				continue;
			break;
		}
		zio_socket_set_nodelay(fd, true);
		if (zio_spawn(NULL, NULL, handle_client, (void *)(intptr_t)fd, &so) < 0)
			zio_close(fd);
	}
	zio_close(lfd);
	if (fd == -ECANCELED)
		return NULL; /* SIGINT or SIGTERM (run_stoppable) */
	fprintf(stderr, "echo_server: accept: %s\n", strerror(-fd));
	return (void *)1;
}

int main(int argc, char **argv)
{
	if (!std_fds_open())
		return 1;
	const char *host = "127.0.0.1";
	int port = 8080, c;
	bool bad = false;
	help_exits(argc, argv, synopsis, help);
	while ((c = getopt(argc, argv, "p:h:l")) != -1) {
		switch (c) {
		case 'p':
			port = port_arg(optarg);
			break;
		case 'h':
			host = optarg;
			break;
		case 'l':
			line_mode = true;
			break;
		default:
			bad = true;
		}
	}
	if (bad || optind != argc)
		return usage_error(argv[0], synopsis);
	zio_addr addr;
	int err = listen_addr(&addr, "echo_server", host, port);
	if (err)
		return err;
	struct stoppable s = { .prog = "echo_server", .fn = serve, .arg = &addr,
			       .sigfd = stop_signals_block() };
	if (s.sigfd < 0) {
		fprintf(stderr, "echo_server: signals: %s\n", strerror(-s.sigfd));
		return 1;
	}
	zio_runtime *rt;
	err = zio_runtime_create(&rt, NULL);
	if (err) {
		fprintf(stderr, "echo_server: cannot start the zio runtime: %s\n", strerror(-err));
		return 1;
	}
	void *res = NULL;
	zio_runtime_run(rt, run_stoppable, &s, &res);
	zio_runtime_destroy(rt);
	return res ? 1 : 0;
}
