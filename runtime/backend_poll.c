/*
 * backend_poll.c - poll(2): the portable backend.
 *
 * Each executor keeps a list of the readiness waits its own fibers armed
 * (owner-only) and hands them all to ppoll(), with an eventfd that wake()
 * writes to from any thread, rebuilding the pollfd array at every poll:
 * one pollfd per fd, with the events of all its waits (the kernel refuses
 * more pollfds than RLIMIT_NOFILE, and a thousand tasks may wait on one
 * pipe). A wait is woken by the events it asked for, or an error or
 * hangup. That is O(waiters) per poll, which is the price of portability.
 * Should RLIMIT_NOFILE be lowered below the fds waited on (ppoll says
 * EINVAL), they are polled in turns, as many at a time as it allows, each
 * turn for at most 10 ms; with room for none, every wait is woken every
 * 10 ms to try its call again.
 *
 * Each wait is also on its fd's wait list in the fd table, under the
 * entry's lock, so that zio_close() from any thread can claim it with
 * -EBADF before the number is reused; ppoll() results for a wait that is
 * no longer on its fd's list are ignored, and such a wait is left out of
 * the next ppoll(). ppoll() holds the files it polls until it returns, so
 * zio_close() from another thread waits for that (pl_release_files(), up
 * to ZIO__CLOSE_WAIT_MAX, with `polling` and `polls`).
 */
#include "backend.h"

#include <limits.h>
#include <poll.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

struct poll_loop {
	struct zio__loop base;
	int wakefd;
	struct zio__op *head; /* waits armed on this executor (lnext/lprev) */
	unsigned count;
	unsigned cap;
	struct pollfd *pfd;   /* [0] the eventfd, then one per fd waited on */
	struct zio__op **pop; /* the waits, in list order */
	unsigned *at;         /* pfd index of pop[i] */
	unsigned *hash;       /* fd -> pfd index + 1, open addressing, 2 x cap */
	bool in_turns;        /* RLIMIT_NOFILE was lowered below the fds waited on */
	unsigned room;        /* then: the pollfds ppoll() takes */
	/* Set from before the pollfds are made until ppoll() has returned,
	 * which holds the files polled until then; polls counts the ends. */
	atomic_bool polling;
	atomic_uint polls;
};

#define TURN_NS ZIO_MSEC(10) /* a turn of the waits polled in turns */

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
	free(l->pfd);
	free(l->pop);
	free(l->at);
	free(l->hash);
	free(l);
}

static void loop_remove(struct poll_loop *l, struct zio__op *op)
{
	if (!op->in_loop)
		return;
	if (op->lprev)
		op->lprev->lnext = op->lnext;
	else
		l->head = op->lnext;
	if (op->lnext)
		op->lnext->lprev = op->lprev;
	op->in_loop = 0;
	l->count--;
}

static int grow(struct poll_loop *l, unsigned need)
{
	if (need <= l->cap)
		return 0;
	unsigned cap = l->cap ? l->cap : 64;
	while (cap < need)
		cap *= 2;
	struct pollfd *p = realloc(l->pfd, cap * sizeof(*p));
	if (!p)
		return -ENOMEM;
	l->pfd = p;
	struct zio__op **o = realloc(l->pop, cap * sizeof(*o));
	if (!o)
		return -ENOMEM;
	l->pop = o;
	unsigned *at = realloc(l->at, cap * sizeof(*at));
	if (!at)
		return -ENOMEM;
	l->at = at;
	unsigned *h = realloc(l->hash, 2 * cap * sizeof(*h));
	if (!h)
		return -ENOMEM;
	l->hash = h;
	l->cap = cap;
	return 0;
}

static short wanted(const struct zio__op *op)
{
	if (op->opcode == ZIO__OP_POLL)
		return op->u.poll.events;
	return op->dir == ZIO__DIR_READ ? POLLIN : POLLOUT;
}

/* The pfd entry for fd, added (n grows) if it is the first wait on it;
 * UINT_MAX if that would take n past max. */
static unsigned pfd_slot(struct poll_loop *l, int fd, unsigned *n, unsigned max)
{
	unsigned mask = 2 * l->cap - 1;
	unsigned h = ((unsigned)fd * 2654435761u) & mask;
	while (l->hash[h]) {
		unsigned i = l->hash[h] - 1;
		if (l->pfd[i].fd == fd)
			return i;
		h = (h + 1) & mask;
	}
	if (*n >= max)
		return UINT_MAX;
	unsigned i = (*n)++;
	l->pfd[i] = (struct pollfd){ .fd = fd };
	l->hash[h] = i + 1;
	return i;
}

/* The waits polled in turns: the list turns so that the first wait left
 * out this turn leads the next (the ones before it go to the end). */
static void next_turn(struct poll_loop *l, struct zio__op *first_left_out)
{
	struct zio__op *first = l->head;
	if (first == first_left_out)
		return;
	struct zio__op *tail = first_left_out;
	while (tail->lnext)
		tail = tail->lnext;
	first_left_out->lprev->lnext = NULL;
	first_left_out->lprev = NULL;
	l->head = first_left_out;
	tail->lnext = first;
	first->lprev = tail;
}

/* Ends a wait of this loop with value, unless zio_close() has claimed it
 * (it is no longer on its fd's list). Only the owner thread touches the
 * loop list, and the op's fiber cannot run before this: op stays valid. */
static void end_wait(struct poll_loop *l, struct zio__op *op, int value)
{
	struct zio__fd *ent = zio__fd_peek(op->fd);
	loop_remove(l, op);
	if (!ent)
		return;
	zio__spin_lock(&ent->lock);
	if (op->linked) {
		zio__fd_unlink(ent, op);
		zio__unpark(op->parker, op->gen, value);
	}
	zio__spin_unlock(&ent->lock);
}

/* With no room for even one fd to poll: every wait is woken to try its
 * call again (a ready fd's succeeds; the others wait anew). */
static void wake_all(struct poll_loop *l)
{
	while (l->head)
		end_wait(l, l->head, 0);
}

static int pl_poll(struct zio__loop *base, int64_t timeout_ns)
{
	struct poll_loop *l = (struct poll_loop *)base;
	int err = grow(l, l->count + 1);
	if (err)
		return err;
	if (l->in_turns) {
		/* As the limit is now: it may be back up. */
		struct rlimit rl;
		if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
			l->in_turns = rl.rlim_cur <= l->count;
			l->room = rl.rlim_cur < UINT_MAX ? (unsigned)rl.rlim_cur : UINT_MAX;
		}
	}
	/* Before the waits are read: a zio_close() that ends one after sees
	 * it, and waits for this poll (pl_release_files). */
	atomic_store(&l->polling, true);
	atomic_thread_fence(memory_order_seq_cst);
	memset(l->hash, 0, 2 * l->cap * sizeof(*l->hash));
	unsigned n = 0, waits = 0, max = l->in_turns ? l->room : UINT_MAX;
	struct zio__op *left_out = NULL; /* the first wait not polled */
	bool eventfd_in = max >= 1;       /* pfd[0] is the eventfd */
	if (eventfd_in)
		l->pfd[n++] = (struct pollfd){ .fd = l->wakefd, .events = POLLIN };
	for (struct zio__op *op = l->head; op; op = op->lnext) {
		/* Ended by a zio_close() (its task has yet to run): not its
		 * file, which poll would hold past the close. */
		if (!__atomic_load_n(&op->linked, __ATOMIC_ACQUIRE))
			continue;
		unsigned i = pfd_slot(l, op->fd, &n, max);
		if (i == UINT_MAX) {
			if (!left_out)
				left_out = op;
			continue;
		}
		l->pfd[i].events |= wanted(op);
		l->pop[waits] = op;
		l->at[waits++] = i;
	}
	if (left_out && (timeout_ns < 0 || timeout_ns > TURN_NS))
		timeout_ns = TURN_NS;
	struct timespec ts, *tsp = NULL;
	if (timeout_ns >= 0) {
		ts.tv_sec = timeout_ns / 1000000000;
		ts.tv_nsec = timeout_ns % 1000000000;
		tsp = &ts;
	}
	int r = ppoll(l->pfd, n, tsp, NULL);
	int poll_errno = errno;
	atomic_fetch_add_explicit(&l->polls, 1, memory_order_release);
	atomic_store_explicit(&l->polling, false, memory_order_release);
	errno = poll_errno;
	if (r < 0 && errno == EINVAL) {
		/* More pollfds than RLIMIT_NOFILE allows: it was lowered below
		 * the fds waited on. In turns from the next poll on. */
		struct rlimit rl;
		if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= n)
			return -EINVAL;
		l->in_turns = true;
		l->room = (unsigned)rl.rlim_cur;
		return 0;
	}
	if (r < 0)
		return -errno;
	if (r > 0 && eventfd_in && (l->pfd[0].revents & POLLIN)) {
		uint64_t v;
		ssize_t rr = read(l->wakefd, &v, sizeof(v));
		(void)rr;
	}
	if (left_out && waits == 0) {
		wake_all(l); /* room for none of them */
		return 0;
	}
	if (left_out)
		next_turn(l, left_out);
	if (r == 0)
		return 0;
	for (unsigned k = 0; k < waits; k++) {
		struct zio__op *op = l->pop[k];
		short rev = l->pfd[l->at[k]].revents;
		if (rev & (wanted(op) | POLLERR | POLLHUP | POLLNVAL))
			end_wait(l, op, op->opcode == ZIO__OP_POLL ? (int)(unsigned short)rev : 0);
	}
	return r;
}

static void pl_wake(struct zio__loop *base)
{
	struct poll_loop *l = (struct poll_loop *)base;
	uint64_t one = 1;
	ssize_t r = write(l->wakefd, &one, sizeof(one));
	(void)r;
}

/* The closer's thread, after it ended the waits it found here. Bounded:
 * an executor that computes without yielding polls late (and may be
 * waiting for what the closer does next); its poll then holds the file
 * until it returns. */
static void pl_release_files(struct zio__loop *base)
{
	struct poll_loop *l = (struct poll_loop *)base;
	atomic_thread_fence(memory_order_seq_cst);
	/* The count first: a poll that ends between the two loads is then
	 * seen to end, not taken for the one to wait for (whose wake the
	 * next turn's drain of the eventfd would swallow). */
	unsigned seen = atomic_load_explicit(&l->polls, memory_order_acquire);
	if (!atomic_load(&l->polling))
		return;
	pl_wake(base);
	int64_t give_up = zio__now() + ZIO__CLOSE_WAIT_MAX;
	for (unsigned i = 0; atomic_load(&l->polling) &&
			     atomic_load_explicit(&l->polls, memory_order_acquire) == seen &&
			     zio__now() < give_up;
	     i++)
		zio__pause(i);
}

static void pl_submit(struct zio__loop *base, struct zio__op *op)
{
	struct poll_loop *l = (struct poll_loop *)base;
	struct zio__fd *ent = zio__fd_get(op->fd);
	if (!ent) {
		zio__unpark(op->parker, op->gen, zio__fd_get_error(op->fd));
		return;
	}
	zio__spin_lock(&ent->lock);
	if (zio__epfd_closing(ent->owner_epfd)) {
		/* zio_close() is under way: it has woken the waiters it
		 * found, and its close() wakes no poll. */
		zio__spin_unlock(&ent->lock);
		zio__unpark(op->parker, op->gen, -EBADF);
		return;
	}
	zio__fd_link(ent, op);
	zio__spin_unlock(&ent->lock);
	op->lprev = NULL;
	op->lnext = l->head;
	if (l->head)
		l->head->lprev = op;
	l->head = op;
	op->in_loop = 1;
	l->count++;
}

static void pl_cancel(struct zio__loop *base, struct zio__op *op)
{
	struct poll_loop *l = (struct poll_loop *)base;
	loop_remove(l, op);
	struct zio__fd *ent = zio__fd_peek(op->fd);
	if (!ent)
		return;
	/* Locked even when unlinked: orders us after a closer's last touch. */
	zio__spin_lock(&ent->lock);
	zio__fd_unlink(ent, op);
	zio__spin_unlock(&ent->lock);
}

const struct zio__backend zio__backend_poll = {
	.name = "poll",
	.probe = pl_probe,
	.create = pl_create,
	.destroy = pl_destroy,
	.poll = pl_poll,
	.wake = pl_wake,
	.submit = pl_submit,
	.cancel = pl_cancel,
	.release_files = pl_release_files,
};
