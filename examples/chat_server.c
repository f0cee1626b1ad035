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
 * outbox passes 1 MiB is disconnected.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <zio.h>

#include "example_args.h"

#define OUTBOX_MAX (1 << 20)

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
		c->overflow = true; /* too slow: its writer will hang up */
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
	char line[1024], out[1100], rb[2048];
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
	/* One byte short of line: room for the newline a last line may lack. */
	while ((len = zio_reader_take_delim(&r, '\n', true, line, sizeof(line) - 1)) != 0) {
		if (len == -EMSGSIZE) {
			if (drop_line(&r) <= 0) /* overlong: nobody hears it */
				break;
			continue;
		}
		if (len < 0)
			break;
		if (line[len - 1] != '\n')
			line[len++] = '\n';
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

struct opts {
	const char *host;
	int port;
};

static void *serve(void *arg)
{
	struct opts *o = arg;
	zio_addr addr;
	if (zio_addr_ip(&addr, o->host, (uint16_t)o->port)) {
		fprintf(stderr, "chat_server: bad address %s (a numeric IPv4 or IPv6 address)\n", o->host);
		return (void *)1;
	}
	int lfd = zio_tcp_listen(&addr, NULL);
	if (lfd < 0) {
		fprintf(stderr, "chat_server: listen on %s port %d: %s\n", o->host, o->port,
			strerror(-lfd));
		return (void *)1;
	}
	zio_local_addr(lfd, &addr);
	char txt[ZIO_ADDR_STRLEN];
	zio_addr_format(&addr, txt, sizeof(txt));
	fprintf(stderr, "chat_server: listening on %s (%s backend, %u executor%s)\n", txt,
		zio_runtime_backend(zio_runtime_current()),
		zio_runtime_executors(zio_runtime_current()),
		zio_runtime_executors(zio_runtime_current()) == 1 ? "" : "s");
	for (;;) {
		int fd = zio_tcp_accept(lfd, NULL, ZIO_FOREVER);
		if (fd < 0) {
			if (accept_goes_on(fd))
				continue;
			fprintf(stderr, "chat_server: accept: %s\n", strerror(-fd));
			zio_close(lfd);
			return (void *)1;
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
}

int main(int argc, char **argv)
{
	struct opts o = { "127.0.0.1", 8080 };
	int ch;
	while ((ch = getopt(argc, argv, "p:h:")) != -1) {
		if (ch == 'p')
			o.port = port_arg(optarg);
		else if (ch == 'h')
			o.host = optarg;
		else {
			fprintf(stderr, "usage: %s [-p PORT] [-h ADDR]\n", argv[0]);
			return 2;
		}
	}
	if (o.port < 0) {
		fprintf(stderr, "chat_server: PORT must be a number from 0 to 65535\n");
		return 2;
	}
	zio_runtime *rt;
	int err = zio_runtime_create(&rt, NULL);
	if (err) {
		fprintf(stderr, "chat_server: runtime: %s\n", strerror(-err));
		return 1;
	}
	void *res = NULL;
	zio_runtime_run(rt, serve, &o, &res);
	zio_runtime_destroy(rt);
	return res ? 1 : 0;
}
