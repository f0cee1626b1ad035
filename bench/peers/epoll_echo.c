/*
 * epoll_echo - single-threaded epoll TCP echo server, the hand-written
 * event-loop baseline for zio's echo_server on its epoll backend. Level-
 * triggered by default (the simplest correct loop: one read per readiness
 * event, echoed at once); -e switches to edge-triggered, which must drain
 * each socket until EAGAIN.
 *
 * Replies are written immediately from a shared buffer. Only when the kernel
 * takes less than all of it (never, with 64-byte closed-loop requests, but a
 * server must not lose data) is the rest kept per connection, and the socket
 * waits for EPOLLOUT without reading more, which is the backpressure.
 *
 * usage: epoll_echo [-p port=7000] [-a 127.0.0.1] [-e]
 * prints nothing on stdout; runs until killed.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <sys/epoll.h>

#include "server.h"

#define BUF_SIZE 4096

/* Unsent bytes of one connection; exists only while a write was short. */
struct pending {
	size_t off, len;
	char data[BUF_SIZE];
};

static int ep;
static int edge;
static struct pending **pend; /* indexed by fd */
static long max_fd;

static void conn_close(int fd)
{
	free(pend[fd]);
	pend[fd] = NULL;
	close(fd); /* also drops it from the epoll set */
}

static void watch(int fd, uint32_t events, int op)
{
	struct epoll_event ev = { .events = events | (edge ? EPOLLET : 0), .data.fd = fd };

	epoll_ctl(ep, op, fd, &ev);
}

/* Sends what is pending; returns 1 when all is out, 0 to wait, -1 on error. */
static int flush(int fd)
{
	struct pending *p = pend[fd];

	while (p->off < p->len) {
		ssize_t w = send(fd, p->data + p->off, p->len - p->off, MSG_NOSIGNAL);

		if (w < 0)
			return errno == EAGAIN ? 0 : -1;
		p->off += (size_t)w;
	}
	free(p);
	pend[fd] = NULL;
	return 1;
}

static void on_readable(int fd)
{
	static char buf[BUF_SIZE];

	do {
		ssize_t n = recv(fd, buf, sizeof(buf), 0), w;

		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
			conn_close(fd);
			return;
		}
		if (n < 0)
			return;
		w = send(fd, buf, (size_t)n, MSG_NOSIGNAL);
		if (w < 0 && errno != EAGAIN) {
			conn_close(fd);
			return;
		}
		if (w < 0)
			w = 0;
		if (w < n) {
			struct pending *p = malloc(sizeof(*p));

			if (!p) {
				conn_close(fd);
				return;
			}
			p->off = 0;
			p->len = (size_t)(n - w);
			memcpy(p->data, buf + w, p->len);
			pend[fd] = p;
			watch(fd, EPOLLOUT, EPOLL_CTL_MOD);
			return;
		}
	} while (edge); /* edge-triggered: drain until EAGAIN */
}

static void on_writable(int fd)
{
	int r = flush(fd);

	if (r < 0)
		conn_close(fd);
	else if (r > 0) {
		watch(fd, EPOLLIN, EPOLL_CTL_MOD);
		if (edge)
			on_readable(fd); /* data may have arrived while we waited */
	}
}

int main(int argc, char **argv)
{
	struct server_opts o = server_parse(argc, argv);
	struct epoll_event evs[256];
	int lfd;

	signal(SIGPIPE, SIG_IGN);
	edge = o.edge;
	max_fd = server_raise_nofile();
	pend = calloc((size_t)max_fd, sizeof(*pend));
	lfd = server_listen(&o, SOCK_NONBLOCK);
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (!pend || ep < 0) {
		perror("epoll_echo: setup");
		return 1;
	}
	/* The listener stays level-triggered: accept one batch per wake-up. */
	{
		struct epoll_event ev = { .events = EPOLLIN, .data.fd = lfd };

		epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
	}
	fprintf(stderr, "epoll_echo: listening on %s:%d (%s-triggered)\n", o.addr, o.port,
		edge ? "edge" : "level");
	for (;;) {
		int n = epoll_wait(ep, evs, 256, -1);

		for (int i = 0; i < n; i++) {
			int fd = evs[i].data.fd;

			if (fd == lfd) {
				for (;;) {
					int c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

					if (c < 0)
						break;
					if (c >= max_fd) {
						close(c);
						continue;
					}
					server_nodelay(c);
					watch(c, EPOLLIN, EPOLL_CTL_ADD);
				}
			} else if (pend[fd]) {
				if (evs[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
					on_writable(fd);
			} else if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
				on_readable(fd);
			}
		}
	}
}
