/*
 * backend_poll.c - poll(2): the portable backend.
 *
 * Parking: poll() on an eventfd that wake() writes to from any thread.
 */
#include "backend.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

struct poll_loop {
	struct zio__loop base;
	int wakefd;
};

static int pl_probe(void)
{
	return 0;
}

static int pl_create(struct zio__exec *e, struct zio__loop **out)
{
	struct poll_loop *l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (l->wakefd < 0) {
		int err = -errno;
		free(l);
		return err;
	}
	*out = &l->base;
	return 0;
}

static void pl_destroy(struct zio__loop *base)
{
	struct poll_loop *l = (struct poll_loop *)base;
	close(l->wakefd);
	free(l);
}

static int pl_poll(struct zio__loop *base, int64_t timeout_ns)
{
	struct poll_loop *l = (struct poll_loop *)base;
	struct pollfd pfd = { .fd = l->wakefd, .events = POLLIN };
	struct timespec ts, *tsp = NULL;
	if (timeout_ns >= 0) {
		ts.tv_sec = timeout_ns / 1000000000;
		ts.tv_nsec = timeout_ns % 1000000000;
		tsp = &ts;
	}
	int n = ppoll(&pfd, 1, tsp, NULL);
	if (n < 0)
		return -errno;
	if (n > 0 && (pfd.revents & POLLIN)) {
		uint64_t v;
		ssize_t r = read(l->wakefd, &v, sizeof(v));
		(void)r;
	}
	return n;
}

static void pl_wake(struct zio__loop *base)
{
	struct poll_loop *l = (struct poll_loop *)base;
	uint64_t one = 1;
	ssize_t r = write(l->wakefd, &one, sizeof(one));
	(void)r;
}

const struct zio__backend zio__backend_poll = {
	.name = "poll",
	.probe = pl_probe,
	.create = pl_create,
	.destroy = pl_destroy,
	.poll = pl_poll,
	.wake = pl_wake,
};
