/*
 * backend_epoll.c - epoll: readiness emulating completions.
 *
 * Parking: epoll_wait on the executor's epoll fd, which also watches an
 * eventfd that wake() writes to from any thread.
 */
#include "backend.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct epoll_loop {
	struct zio__loop base;
	int epfd;
	int wakefd;
};

static int ep_probe(void)
{
	int fd = epoll_create1(EPOLL_CLOEXEC);
	if (fd < 0)
		return -errno;
	close(fd);
	return 0;
}

static int ep_create(struct zio__exec *e, struct zio__loop **out)
{
	struct epoll_loop *l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	l->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (l->epfd < 0 || l->wakefd < 0) {
		int err = -errno;
		if (l->epfd >= 0)
			close(l->epfd);
		if (l->wakefd >= 0)
			close(l->wakefd);
		free(l);
		return err;
	}
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->wakefd, &ev) < 0) {
		int err = -errno;
		close(l->epfd);
		close(l->wakefd);
		free(l);
		return err;
	}
	*out = &l->base;
	return 0;
}

static void ep_destroy(struct zio__loop *base)
{
	struct epoll_loop *l = (struct epoll_loop *)base;
	close(l->epfd);
	close(l->wakefd);
	free(l);
}

static int ep_poll(struct zio__loop *base, int64_t timeout_ns)
{
	struct epoll_loop *l = (struct epoll_loop *)base;
	struct epoll_event evs[64];
	int ms = timeout_ns < 0 ? -1 : (int)((timeout_ns + 999999) / 1000000);
	int n = epoll_wait(l->epfd, evs, 64, ms);
	if (n < 0)
		return -errno;
	for (int i = 0; i < n; i++) {
		if (evs[i].data.ptr == NULL) {
			uint64_t v;
			ssize_t r = read(l->wakefd, &v, sizeof(v));
			(void)r;
		}
	}
	return n;
}

static void ep_wake(struct zio__loop *base)
{
	struct epoll_loop *l = (struct epoll_loop *)base;
	uint64_t one = 1;
	ssize_t r = write(l->wakefd, &one, sizeof(one));
	(void)r;
}

const struct zio__backend zio__backend_epoll = {
	.name = "epoll",
	.probe = ep_probe,
	.create = ep_create,
	.destroy = ep_destroy,
	.poll = ep_poll,
	.wake = ep_wake,
};
