/*
 * thread_echo - TCP echo server, one kernel thread per connection with a
 * 64 KiB stack, blocking read() and write(). This is the program shape the
 * LD_PRELOAD shim turns into fibers, so it is the baseline for both zio's
 * echo_server and the shim. Each connection costs a thread; every request a
 * blocking read, i.e. a futex-free but kernel-scheduled wake-up.
 *
 * usage: thread_echo [-p port=7000] [-a 127.0.0.1]
 * prints nothing on stdout; runs until killed.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>

#include "server.h"

static void *serve(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char buf[4096];

	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf)), off = 0;

		if (n <= 0)
			break;
		while (off < n) {
			ssize_t w = write(fd, buf + off, (size_t)(n - off));

			if (w <= 0)
				goto out;
			off += w;
		}
	}
out:
	close(fd);
	return NULL;
}

int main(int argc, char **argv)
{
	struct server_opts o = server_parse(argc, argv);
	pthread_attr_t attr;
	int lfd;

	signal(SIGPIPE, SIG_IGN);
	server_raise_nofile();
	lfd = server_listen(&o, 0);
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 64 * 1024);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	fprintf(stderr, "thread_echo: listening on %s:%d\n", o.addr, o.port);
	for (;;) {
		pthread_t t;
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE)
				usleep(1000); /* let connections close */
			continue;
		}
		server_nodelay(fd);
		if (pthread_create(&t, &attr, serve, (void *)(intptr_t)fd) != 0)
			close(fd);
	}
}
