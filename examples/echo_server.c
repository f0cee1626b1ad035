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
 * environment.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <zio.h>

#include "example_args.h"

static bool line_mode;

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

struct opts {
	const char *host;
	int port;
};

static void *serve(void *arg)
{
	struct opts *o = arg;
	zio_addr addr;
	if (zio_addr_ip(&addr, o->host, (uint16_t)o->port)) {
		fprintf(stderr, "echo_server: bad address %s (a numeric IPv4 or IPv6 address)\n", o->host);
		return (void *)1;
	}
	int lfd = zio_tcp_listen(&addr, NULL);
	if (lfd < 0) {
		fprintf(stderr, "echo_server: listen on %s port %d: %s\n", o->host, o->port,
			strerror(-lfd));
		return (void *)1;
	}
	zio_local_addr(lfd, &addr);
	char txt[ZIO_ADDR_STRLEN];
	zio_addr_format(&addr, txt, sizeof(txt));
	zio_runtime *rt = zio_runtime_current();
	fprintf(stderr, "echo_server: listening on %s (%s backend, %u executor%s, %s mode)\n", txt,
		zio_runtime_backend(rt), zio_runtime_executors(rt),
		zio_runtime_executors(rt) == 1 ? "" : "s", line_mode ? "line" : "raw");
	/* A 4 KiB buffer and shallow calls: 64 KiB of stack is plenty, so
	 * 10,000 connections reserve 640 MiB of address space, not 80 GiB. */
	struct zio_spawn_options so = { .stack_size = 64 << 10 };
	for (;;) {
		int fd = zio_tcp_accept(lfd, NULL, ZIO_FOREVER);
		if (fd < 0) {
			if (accept_goes_on(fd))
				continue;
			fprintf(stderr, "echo_server: accept: %s\n", strerror(-fd));
			zio_close(lfd);
			return (void *)1;
		}
		zio_socket_set_nodelay(fd, true);
		if (zio_spawn(NULL, NULL, handle_client, (void *)(intptr_t)fd, &so) < 0)
			zio_close(fd);
	}
}

int main(int argc, char **argv)
{
	struct opts o = { "127.0.0.1", 8080 };
	int c;
	while ((c = getopt(argc, argv, "p:h:l")) != -1) {
		switch (c) {
		case 'p':
			o.port = port_arg(optarg);
			break;
		case 'h':
			o.host = optarg;
			break;
		case 'l':
			line_mode = true;
			break;
		default:
			fprintf(stderr, "usage: %s [-p PORT] [-h ADDR] [-l]\n", argv[0]);
			return 2;
		}
	}
	if (o.port < 0) {
		fprintf(stderr, "echo_server: PORT must be a number from 0 to 65535\n");
		return 2;
	}
	zio_runtime *rt;
	int err = zio_runtime_create(&rt, NULL);
	if (err) {
		fprintf(stderr, "echo_server: runtime: %s\n", strerror(-err));
		return 1;
	}
	void *res = NULL;
	zio_runtime_run(rt, serve, &o, &res);
	zio_runtime_destroy(rt);
	return res ? 1 : 0;
}
