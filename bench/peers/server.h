/*
 * server.h - what the hand-written echo servers share: argument parsing,
 * the listening socket and the fd limit, so that the three servers differ
 * only in their I/O loop.
 */
#ifndef ZIO_BENCH_SERVER_H
#define ZIO_BENCH_SERVER_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

struct server_opts {
	const char *addr; /* numeric IPv4 or IPv6 address to bind */
	int port;
	const char *mode; /* server-specific variant (-m), or NULL */
	int edge;	  /* -e: edge-triggered (epoll_echo only) */
};

static inline void server_usage(const char *prog)
{
	fprintf(stderr, "usage: %s [-p port] [-a bind-address] [-m mode] [-e]\n", prog);
	exit(2);
}

static inline struct server_opts server_parse(int argc, char **argv)
{
	struct server_opts o = { "127.0.0.1", 7000, NULL, 0 };

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-p") && i + 1 < argc)
			o.port = atoi(argv[++i]);
		else if (!strcmp(argv[i], "-a") && i + 1 < argc)
			o.addr = argv[++i];
		else if (!strcmp(argv[i], "-m") && i + 1 < argc)
			o.mode = argv[++i];
		else if (!strcmp(argv[i], "-e"))
			o.edge = 1;
		else
			server_usage(argv[0]);
	}
	if (o.port <= 0 || o.port > 65535)
		server_usage(argv[0]);
	return o;
}

/*
 * Lift the soft fd limit to the hard one: a 1000-connection run needs more
 * than the usual 1024. Returns the limit now in force.
 */
static inline long server_raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return 1024;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		getrlimit(RLIMIT_NOFILE, &rl);
	}
	return (long)rl.rlim_cur;
}

/* A bound, listening TCP socket (blocking unless flags has SOCK_NONBLOCK). */
static inline int server_listen(const struct server_opts *o, int flags)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int one = 1, fd;

	memset(&ss, 0, sizeof(ss));
	if (strchr(o->addr, ':')) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)o->port);
		if (inet_pton(AF_INET6, o->addr, &s6->sin6_addr) != 1)
			goto bad;
		len = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)o->port);
		if (inet_pton(AF_INET, o->addr, &s4->sin_addr) != 1)
			goto bad;
		len = sizeof(*s4);
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | flags, 0);
	if (fd < 0) {
		perror("socket");
		exit(1);
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, len) != 0 || listen(fd, SOMAXCONN) != 0) {
		fprintf(stderr, "bind/listen %s:%d: %s\n", o->addr, o->port, strerror(errno));
		exit(1);
	}
	return fd;
bad:
	fprintf(stderr, "bad address '%s'\n", o->addr);
	exit(2);
}

/* Go's net package sets TCP_NODELAY on every connection; so do we, so the
 * servers differ only in their loop. */
static inline void server_nodelay(int fd)
{
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

#endif
