/*
 * udp_echo - sends every datagram back to where it came from.
 *
 *   udp_echo [-p PORT] [-h ADDR]
 *
 * One task receives and answers; -p 0 picks a free port (see the banner).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zio.h>

#include "example_args.h"

struct opts {
	const char *host;
	int port;
};

static void *serve(void *arg)
{
	struct opts *o = arg;
	zio_addr addr, from;
	if (zio_addr_ip(&addr, o->host, (uint16_t)o->port)) {
		fprintf(stderr, "udp_echo: bad address %s (a numeric IPv4 or IPv6 address)\n", o->host);
		return (void *)1;
	}
	int fd = zio_udp_bind(&addr);
	if (fd < 0) {
		fprintf(stderr, "udp_echo: bind to %s port %d: %s\n", o->host, o->port, strerror(-fd));
		return (void *)1;
	}
	zio_local_addr(fd, &addr);
	char txt[ZIO_ADDR_STRLEN];
	zio_addr_format(&addr, txt, sizeof(txt));
	fprintf(stderr, "udp_echo: listening on %s (%s backend)\n", txt,
		zio_runtime_backend(zio_runtime_current()));
	char buf[65536];
	for (;;) {
		ssize_t n = zio_recvfrom(fd, buf, sizeof(buf), 0, &from, ZIO_FOREVER);
		if (n == -ECANCELED)
			break;
		if (n == -ENOBUFS || n == -ENOMEM || n == -EINTR || n == -ECONNREFUSED)
			continue; /* a moment's shortage, or an ICMP error for an
				   * earlier reply (with IP_RECVERR): the socket is fine */
		if (n < 0) {
			fprintf(stderr, "udp_echo: receive: %s\n", strerror((int)-n));
			zio_close(fd);
			return (void *)1;
		}
		zio_sendto(fd, buf, (size_t)n, 0, &from, zio_deadline_after(ZIO_SEC(1)));
	}
	zio_close(fd);
	return NULL;
}

int main(int argc, char **argv)
{
	struct opts o = { "127.0.0.1", 8080 };
	int c;
	while ((c = getopt(argc, argv, "p:h:")) != -1) {
		if (c == 'p')
			o.port = port_arg(optarg);
		else if (c == 'h')
			o.host = optarg;
		else {
			fprintf(stderr, "usage: %s [-p PORT] [-h ADDR]\n", argv[0]);
			return 2;
		}
	}
	if (o.port < 0) {
		fprintf(stderr, "udp_echo: PORT must be a number from 0 to 65535\n");
		return 2;
	}
	zio_runtime *rt;
	int err = zio_runtime_create(&rt, NULL);
	if (err) {
		fprintf(stderr, "udp_echo: runtime: %s\n", strerror(-err));
		return 1;
	}
	void *res = NULL;
	zio_runtime_run(rt, serve, &o, &res);
	zio_runtime_destroy(rt);
	return res ? 1 : 0;
}
