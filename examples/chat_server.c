/*
 * chat_server - a line-based chat room: every line a client sends goes to
 * every other client as "[#id] line"; joins and leaves are announced.
 *
 *   chat_server [-p PORT] [-h ADDR]
 *
 * Each client has two tasks: a reader (its connection task) that
 * broadcasts, and a writer that drains the client's outbox. Broadcasting
 * only appends to outboxes under a short mutex (nothing suspends while it
 * is held) and pokes each recipient's eventfd, which its writer waits on
 * with zio_read. A slow recipient never holds up the sender; one whose
 * outbox passes 1 MiB is disconnected at once (beside the outbox, its
 * writer holds at most the 1 MiB it took last).
 *
 * A line is at most MAX_LINE (1024) bytes, its newline included; a last
 * line without one gets one, so a line carries up to 1023 bytes of text.
 * A longer line is dropped whole, nobody hears it, and its sender gets
 * "* line too long (max 1023 bytes), not sent". A client that closes
 * its sending side has left: what is still queued for it is dropped.
 * SIGINT or SIGTERM stop the server (the listener is closed, clients are
 * cut off; exit status 0).
 */
#define _GNU_SOURCE /* the examples use Linux's and glibc's extensions */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <zio.h>

#include "example_util.h"

#define OUTBOX_MAX (1 << 20)
#define MAX_LINE 1024 /* newline included */

static const char synopsis[] = "[-p PORT] [-h ADDR]";
static const char help[] =
	"A line-based chat room: each line a client sends goes to every other\n"
	"client as \"[#id] line\"; joins and leaves are announced. Lines are at\n"
	"most 1023 bytes; a client more than 1 MiB behind is disconnected.\n\n"
	"  -p PORT  the port to listen on (default 8080; 0 picks a free one, which\n"
	"           the banner on stderr names)\n"
	"  -h ADDR  the numeric IPv4 or IPv6 address to listen on (default\n"
	"           127.0.0.1; 0.0.0.0 or :: for every interface)\n"
	"\n" EXAMPLE_ENV_HELP "SIGINT or SIGTERM stop it (exit status 0).\n";

static const char too_long[] = "* line too long (max 1023 bytes), not sent\n";

struct msg {
	struct msg *next;
	size_t len;
	char text[];
};

struct client {
	struct client *next, *prev;
	int fd, efd;
	unsigned id;
	struct msg *head, *tail; /* outbox, under lock */
	size_t queued;
	bool overflow;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct client *clients;
static unsigned next_id = 1, online;

static void poke(struct client *c)
{
	uint64_t one = 1;
	ssize_t r = write(c->efd, &one, sizeof(one)); /* never blocks: counter */
	(void)r;
}

/* Under lock. */
static void enqueue(struct client *c, const char *text, size_t len)
{
	if (c->overflow)
		return;
	if (c->queued + len > OUTBOX_MAX) {
		/* Too slow: hang up now, not when the send its writer is in
		 * times out (a client that reads nothing would hold its queue
		 * for that long). The send fails, the reader sees the end and
		 * cleans up; shutdown(2) does not wait, so it may be called
		 * under the lock. */
		c->overflow = true;
		zio_shutdown(c->fd, SHUT_RDWR);
		poke(c);
		return;
	}
	struct msg *m = malloc(sizeof(*m) + len);
	if (!m)
		return;
	m->next = NULL;
	m->len = len;
	memcpy(m->text, text, len);
	if (c->tail)
		c->tail->next = m;
	else
		c->head = m;
	c->tail = m;
	c->queued += len;
	poke(c);
}

static void broadcast(struct client *from, const char *text, size_t len)
{
	pthread_mutex_lock(&lock);
	for (struct client *c = clients; c; c = c->next)
		if (c != from)
			enqueue(c, text, len);
	pthread_mutex_unlock(&lock);
}

static void *writer(void *arg)
{
	struct client *c = arg;
	for (;;) {
		uint64_t v;
		ssize_t r = zio_read(c->efd, &v, sizeof(v), ZIO_FOREVER);
		if (r < 0 && r != -EAGAIN)
			break;
		pthread_mutex_lock(&lock);
		struct msg *m = c->head;
		bool overflow = c->overflow;
		c->head = c->tail = NULL;
		c->queued = 0;
		pthread_mutex_unlock(&lock);
		bool failed = overflow;
		while (m) {
			struct msg *next = m->next;
			if (!failed && zio_write_all(c->fd, m->text, m->len, zio_deadline_after(ZIO_SEC(10))) < 0)
				failed = true;
			free(m);
			m = next;
		}
		if (failed) {
			/* Wake the reader: it owns the cleanup. */
			zio_shutdown(c->fd, SHUT_RDWR);
			break;
		}
	}
	return NULL;
}

/* Reads past the rest of a line, its newline included; returns what the
 * last read returned (> 0, or 0 at EOF, or -errno). */
static ssize_t drop_line(zio_reader *r)
{
	const char *p;
	ssize_t n;
	while ((n = zio_reader_take_delim_ref(r, '\n', true, &p)) == -EMSGSIZE)
		if ((n = zio_reader_discard(r, r->cap)) <= 0)
			return n;
	return n;
}

static void *session(void *arg)
{
	struct client *c = arg;
	/* rb is larger than a line: a line too long for `line` is then
	 * refused before any of it is consumed, and can be dropped whole. */
	char line[MAX_LINE], out[MAX_LINE + 32], rb[2 * MAX_LINE];
	zio_task *w;
	if (zio_spawn(NULL, &w, writer, c, NULL)) {
		zio_close(c->fd);
		zio_close(c->efd);
		free(c);
		return NULL;
	}
	pthread_mutex_lock(&lock);
	c->id = next_id++;
	c->next = clients;
	if (clients)
		clients->prev = c;
	clients = c;
	unsigned n = ++online;
	int k = snprintf(out, sizeof(out), "* you are #%u, %u online\n", c->id, n);
	enqueue(c, out, (size_t)k);
	pthread_mutex_unlock(&lock);
	k = snprintf(out, sizeof(out), "* #%u joined\n", c->id);
	broadcast(c, out, (size_t)k);

	zio_reader r;
	zio_reader_init_fd(&r, c->fd, rb, sizeof(rb));
	ssize_t len;
	while ((len = zio_reader_take_delim(&r, '\n', true, line, sizeof(line))) != 0) {
		if (len > 0 && line[len - 1] != '\n') {
			/* The last line, cut by EOF: it gets a newline if it fits. */
			if (len == sizeof(line))
				len = -EMSGSIZE;
			else
				line[len++] = '\n';
		}
		if (len == -EMSGSIZE) {
			pthread_mutex_lock(&lock);
			enqueue(c, too_long, sizeof(too_long) - 1);
			pthread_mutex_unlock(&lock);
			if (drop_line(&r) <= 0)
				break;
			continue;
		}
		if (len < 0)
			break;
		/* By length, not %s: a line may hold NUL bytes. */
		k = snprintf(out, sizeof(out), "[#%u] ", c->id);
		memcpy(out + k, line, (size_t)len);
		broadcast(c, out, (size_t)k + (size_t)len);
	}

	pthread_mutex_lock(&lock);
	if (c->prev)
		c->prev->next = c->next;
	else
		clients = c->next;
	if (c->next)
		c->next->prev = c->prev;
	online--;
	pthread_mutex_unlock(&lock);
	k = snprintf(out, sizeof(out), "* #%u left\n", c->id);
	broadcast(c, out, (size_t)k);
	zio_task_cancel(w);
	zio_task_join(w, NULL);
	for (struct msg *m = c->head; m;) {
		struct msg *next = m->next;
		free(m);
		m = next;
	}
	zio_close(c->fd);
	zio_close(c->efd);
	free(c);
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
		fprintf(stderr, "chat_server: listen on %s: %s\n", txt, strerror(-lfd));
		return (void *)1;
	}
	zio_local_addr(lfd, &addr);
	zio_addr_format(&addr, txt, sizeof(txt));
	zio_runtime *rt = zio_runtime_current();
	fprintf(stderr, "chat_server: listening on %s (%s backend, %u executor%s)\n", txt,
		zio_runtime_backend(rt), zio_runtime_executors(rt),
		zio_runtime_executors(rt) == 1 ? "" : "s");
	int fd;
	for (;;) {
		fd = zio_tcp_accept(lfd, NULL, ZIO_FOREVER);
		if (fd < 0) {
			if (accept_goes_on(fd))
				continue;
			break;
		}
		struct client *c = calloc(1, sizeof(*c));
		int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (!c || efd < 0) {
			free(c);
			if (efd >= 0)
				close(efd);
			zio_close(fd);
			continue;
		}
		c->fd = fd;
		c->efd = efd;
		if (zio_spawn(NULL, NULL, session, c, NULL)) {
			zio_close(fd);
			zio_close(efd);
			free(c);
		}
	}
	zio_close(lfd);
	if (fd == -ECANCELED)
		return NULL; /* SIGINT or SIGTERM (run_stoppable) */
	fprintf(stderr, "chat_server: accept: %s\n", strerror(-fd));
	return (void *)1;
}

int main(int argc, char **argv)
{
	if (!std_fds_open())
		return 1;
	const char *host = "127.0.0.1";
	int port = 8080, ch;
	bool bad = false;
	help_exits(argc, argv, synopsis, help);
	while ((ch = getopt(argc, argv, "p:h:")) != -1) {
		if (ch == 'p')
			port = port_arg(optarg);
		else if (ch == 'h')
			host = optarg;
		else
			bad = true;
	}
	if (bad || optind != argc)
		return usage_error(argv[0], synopsis);
	zio_addr addr;
	int err = listen_addr(&addr, "chat_server", host, port);
	if (err)
		return err;
	struct stoppable s = { .prog = "chat_server", .fn = serve, .arg = &addr,
			       .sigfd = stop_signals_block() };
	if (s.sigfd < 0) {
		fprintf(stderr, "chat_server: signals: %s\n", strerror(-s.sigfd));
		return 1;
	}
	zio_runtime *rt;
	err = zio_runtime_create(&rt, NULL);
	if (err) {
		fprintf(stderr, "chat_server: cannot start the zio runtime: %s\n", strerror(-err));
		return 1;
	}
	void *res = NULL;
	zio_runtime_run(rt, run_stoppable, &s, &res);
	zio_runtime_destroy(rt);
	return res ? 1 : 0;
}
