/*
 * backend_epoll.c - epoll: readiness emulating completions.
 *
 * An fd is registered once, edge-triggered, with the epoll instance of the
 * executor that first waits on it (its owner), and stays registered until
 * zio_close() removes it. It is watched for input always and for output
 * only while a writer waits (EPOLL_CTL_MOD either way, which re-checks
 * readiness, so no edge is lost), because a busy connection's every ACK
 * would otherwise be an event for nobody. Waiters from any executor
 * queue on the fd's entry in the process-wide fd table (backend.h), under
 * the entry's lock; the owner's epoll_wait() bumps the entry's per-direction
 * sequence number and wakes every waiter of that direction, wherever it
 * runs (zio__unpark is cross-thread). A fiber whose executor is not the
 * owner is therefore served by the owner's poll: correct, at the price of a
 * cross-thread wake, and the common case (accept and serve on one executor)
 * never pays it.
 *
 * The lost-edge race: a fiber tries its syscall (EAGAIN), then an edge
 * arrives before it is on the list. It remembers the sequence number before
 * the syscall and submit() compares under the lock: if it moved, the fiber
 * retries at once instead of sleeping.
 *
 * Events carry fd | incarnation << 32; zio_close() bumps the incarnation,
 * so an event still queued for a closed fd is never taken for a new file
 * that reuses the number.
 *
 * Parking: epoll_pwait2 (ns timeout; epoll_wait on kernels without it), on
 * the executor's epoll fd, which also watches an eventfd for wake().
 */
#include "backend.h"

#include <limits.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define WAKE_TAG (~(uint64_t)0)
#define MAX_EVENTS 256

struct epoll_loop {
	struct zio__loop base;
	int epfd;
	int wakefd;
	atomic_int fd_end; /* above every fd ever registered here: what disown() walks */
	struct epoll_event evs[MAX_EVENTS];
};

static atomic_bool no_pwait2;

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
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = WAKE_TAG };
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

/* An fd this loop owned registers again with whoever waits next, and its
 * waiters are woken to do so: a task of another executor, or of another
 * runtime, would otherwise wait for edges nobody reaps. (The sequence
 * numbers move, so a wait being armed meanwhile retries as well.) */
static void disown(int fd, struct zio__fd *ent, void *arg)
{
	int epfd = ((struct epoll_loop *)arg)->epfd;
	if (__atomic_load_n(&ent->owner_epfd, __ATOMIC_RELAXED) != epfd)
		return;
	zio__spin_lock(&ent->lock);
	if (ent->owner_epfd == epfd) {
		epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL);
		__atomic_store_n(&ent->owner_epfd, ZIO__EPFD_NONE, __ATOMIC_RELAXED);
		ent->ep_out = 0;
		for (int dir = ZIO__DIR_READ; dir <= ZIO__DIR_WRITE; dir++) {
			zio__fd_seq_bump(ent, dir);
			zio__fd_wake(ent, dir, 0);
		}
	}
	zio__spin_unlock(&ent->lock);
}

static void ep_destroy(struct zio__loop *base)
{
	struct epoll_loop *l = (struct epoll_loop *)base;
	zio__fd_foreach(atomic_load(&l->fd_end), disown, l);
	close(l->epfd);
	close(l->wakefd);
	free(l);
}

/* Executor 0 stops being run: nobody would reap the edges of the fds it
 * owns, which tasks of the other executors may be waiting for. */
static void ep_stop(struct zio__loop *base)
{
	struct epoll_loop *l = (struct epoll_loop *)base;
	zio__fd_foreach(atomic_load(&l->fd_end), disown, l);
}

/* What an fd is registered for. Writability only while someone waits for
 * it: on a busy connection every ACK that frees send-buffer space would
 * otherwise be an event to reap (and a wakeup in the kernel), for nobody. */
static inline uint32_t watch_events(bool out)
{
	return EPOLLIN | EPOLLRDHUP | EPOLLPRI | EPOLLET | (out ? EPOLLOUT : 0);
}

static inline uint64_t ep_data(const struct zio__fd *ent, int fd)
{
	return (uint64_t)ent->incarnation << 32 | (uint32_t)fd;
}

static void dispatch(struct epoll_loop *l, struct epoll_event *ev)
{
	uint64_t data = ev->data.u64;
	if (data == WAKE_TAG) {
		uint64_t v;
		ssize_t r = read(l->wakefd, &v, sizeof(v));
		(void)r;
		return;
	}
	int fd = (int)(uint32_t)data;
	struct zio__fd *ent = zio__fd_peek(fd);
	if (!ent)
		return;
	uint32_t ev_mask = ev->events;
	zio__spin_lock(&ent->lock);
	if (ent->incarnation == (uint32_t)(data >> 32) && ent->owner_epfd == l->epfd) {
		if (ev_mask & (EPOLLRDHUP | EPOLLHUP | EPOLLERR | EPOLLPRI))
			__atomic_store_n(&ent->no_hint, 1, __ATOMIC_RELAXED);
		if (ev_mask & (EPOLLIN | EPOLLPRI | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
			zio__fd_seq_bump(ent, ZIO__DIR_READ);
			zio__fd_ready(ent, ZIO__DIR_READ, ev_mask);
		}
		if (ev_mask & (EPOLLOUT | EPOLLHUP | EPOLLERR)) {
			zio__fd_seq_bump(ent, ZIO__DIR_WRITE);
			if (!ent->waiters[ZIO__DIR_WRITE] && ent->ep_out && !(ev_mask & (EPOLLHUP | EPOLLERR))) {
				/* Nobody waits to write any more: stop watching
				 * (a writer that comes later asks again). */
				struct epoll_event mod = { .events = watch_events(false),
							   .data.u64 = ep_data(ent, fd) };
				if (epoll_ctl(l->epfd, EPOLL_CTL_MOD, fd, &mod) == 0)
					ent->ep_out = 0;
			}
			zio__fd_ready(ent, ZIO__DIR_WRITE, ev_mask);
		}
	}
	zio__spin_unlock(&ent->lock);
}

static int ep_poll(struct zio__loop *base, int64_t timeout_ns)
{
	struct epoll_loop *l = (struct epoll_loop *)base;
	int n;
	if (!atomic_load_explicit(&no_pwait2, memory_order_relaxed)) {
		struct timespec ts, *tsp = NULL;
		if (timeout_ns >= 0) {
			ts.tv_sec = timeout_ns / 1000000000;
			ts.tv_nsec = timeout_ns % 1000000000;
			tsp = &ts;
		}
		n = epoll_pwait2(l->epfd, l->evs, MAX_EVENTS, tsp, NULL);
		/* ENOSYS before Linux 5.11; EPERM under seccomp profiles that
		 * predate the call (older Docker): epoll_wait from then on. */
		if (n < 0 && (errno == ENOSYS || errno == EPERM)) {
			atomic_store(&no_pwait2, true);
			return 0;
		}
	} else {
		/* In ms, rounded up, and at most INT_MAX (24.8 days): a cast
		 * of more would wrap to a negative "forever". */
		int64_t ms64 = timeout_ns < 0 ? -1
					      : timeout_ns / 1000000 + (timeout_ns % 1000000 != 0);
		int ms = ms64 > INT_MAX ? INT_MAX : (int)ms64;
		n = epoll_wait(l->epfd, l->evs, MAX_EVENTS, ms);
	}
	if (n < 0)
		return -errno;
	for (int i = 0; i < n; i++)
		dispatch(l, &l->evs[i]);
	return n;
}

static void ep_wake(struct zio__loop *base)
{
	struct epoll_loop *l = (struct epoll_loop *)base;
	uint64_t one = 1;
	ssize_t r = write(l->wakefd, &one, sizeof(one));
	(void)r;
}

static void ep_submit(struct zio__loop *base, struct zio__op *op)
{
	struct epoll_loop *l = (struct epoll_loop *)base;
	struct zio__fd *ent = zio__fd_get(op->fd);
	int err = 0;
	if (!ent) {
		zio__unpark(op->parker, op->gen, zio__fd_get_error(op->fd));
		return;
	}
	zio__spin_lock(&ent->lock);
	if (ent->seq[op->dir] != op->seq) {
		/* An edge came after the syscall: retry instead of sleeping. */
		zio__spin_unlock(&ent->lock);
		zio__unpark(op->parker, op->gen, 0);
		return;
	}
	bool out = op->dir == ZIO__DIR_WRITE;
	if (zio__epfd_closing(ent->owner_epfd)) {
		/* Registering now would outlive the close() that follows, and
		 * nobody would ever wake us. */
		err = -EBADF;
	} else if (ent->owner_epfd == ZIO__EPFD_NONE) {
		struct epoll_event ev = { .events = watch_events(out), .data.u64 = ep_data(ent, op->fd) };
		int r = epoll_ctl(l->epfd, EPOLL_CTL_ADD, op->fd, &ev);
		if (r < 0 && errno == EEXIST) /* left over from a dup'ed description */
			r = epoll_ctl(l->epfd, EPOLL_CTL_MOD, op->fd, &ev);
		if (r < 0) {
			err = -errno;
		} else {
			__atomic_store_n(&ent->owner_epfd, l->epfd, __ATOMIC_RELAXED);
			ent->ep_out = out;
			int end = atomic_load_explicit(&l->fd_end, memory_order_relaxed);
			while (op->fd >= end && !atomic_compare_exchange_weak(&l->fd_end, &end, op->fd + 1))
				;
		}
	} else if (out && !ent->ep_out) {
		/* MOD re-checks readiness: writable by now means an event. */
		struct epoll_event ev = { .events = watch_events(true), .data.u64 = ep_data(ent, op->fd) };
		if (epoll_ctl(ent->owner_epfd, EPOLL_CTL_MOD, op->fd, &ev) < 0)
			err = -errno;
		else
			ent->ep_out = 1;
	}
	if (!err)
		zio__fd_link(ent, op);
	zio__spin_unlock(&ent->lock);
	if (err)
		zio__unpark(op->parker, op->gen, err);
}

static void ep_cancel(struct zio__loop *base, struct zio__op *op)
{
	(void)base;
	struct zio__fd *ent = zio__fd_peek(op->fd);
	if (!ent || !__atomic_load_n(&op->linked, __ATOMIC_RELAXED))
		goto check;
	zio__spin_lock(&ent->lock);
	zio__fd_unlink(ent, op);
	zio__spin_unlock(&ent->lock);
	return;
check:
	/* Not linked: a waker unlinked it under the lock; taking the lock
	 * once orders us after that waker's last touch of op. */
	if (ent) {
		zio__spin_lock(&ent->lock);
		zio__spin_unlock(&ent->lock);
	}
}

const struct zio__backend zio__backend_epoll = {
	.name = "epoll",
	.probe = ep_probe,
	.create = ep_create,
	.destroy = ep_destroy,
	.stop = ep_stop,
	.poll = ep_poll,
	.wake = ep_wake,
	.submit = ep_submit,
	.cancel = ep_cancel,
};
