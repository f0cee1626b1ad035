/*
 * select.c - zio_select(): wait on any mix of channel sends and receives.
 *
 * Like Go's selectgo, in two passes over the cases with every channel
 * involved locked at once (in address order, each once, so two selects
 * over the same channels cannot deadlock and plain operations, which hold
 * one lock, cannot either):
 *
 *  1. Poll. Among the cases that look ready, pick one uniformly at random
 *     (reservoir sampling, one random number per ready case) and perform
 *     it with the same code as a plain send/receive. A case that only
 *     looked ready (its waiters had all timed out) is dropped and the pick
 *     is made again. deadline 0 stops here with -EAGAIN.
 *  2. Wait. Queue one waiter per case, all on the caller's one parker, and
 *     park. The first party to claim the parker decides: a channel peer
 *     (the claim value is the case index; it performed the case before
 *     releasing us), the deadline, or a cancel. Then every other waiter is
 *     unlinked, each under its channel's lock.
 *
 * Because a peer moves an item only after winning the claim, a select
 * that times out or is cancelled has consumed nothing and delivered
 * nothing: the claim that ended it excludes every transfer (zio issue #700
 * was an item taken first and dropped on cancel).
 *
 * Its own waiters never match each other: transfers happen only between a
 * caller holding the locks and waiters already queued, and this select
 * queues only after its poll, under the same locks.
 */
#include "chan_impl.h"

static __thread uint64_t rng_state;

static inline uint64_t select_rand(void)
{
	if (zio__unlikely(rng_state == 0)) {
		/* Any per-thread, non-zero seed will do. */
		rng_state = (uint64_t)(uintptr_t)&rng_state ^ (uint64_t)zio__now();
		rng_state |= 1;
	}
	return zio__rand(&rng_state);
}

/* Sorts the distinct channels into locks[]; returns how many. */
static size_t lock_order(const struct zio_select_case *cases, size_t n, zio_chan **locks)
{
	size_t nl = 0;
	for (size_t i = 0; i < n; i++) {
		zio_chan *ch = cases[i].chan;
		if (!ch)
			continue;
		size_t j = nl;
		while (j > 0 && (uintptr_t)locks[j - 1] > (uintptr_t)ch)
			j--;
		if (j > 0 && locks[j - 1] == ch)
			continue;
		memmove(&locks[j + 1], &locks[j], (nl - j) * sizeof(*locks));
		locks[j] = ch;
		nl++;
	}
	return nl;
}

static void lock_all(zio_chan **locks, size_t nl)
{
	for (size_t i = 0; i < nl; i++)
		slock(&locks[i]->lock);
}

static void unlock_all(zio_chan **locks, size_t nl)
{
	for (size_t i = nl; i-- > 0;)
		sunlock(&locks[i]->lock);
}

ZIO_API int zio_select(struct zio_select_case *cases, size_t n, int64_t deadline)
{
	if (n > ZIO_SELECT_MAX || (n && !cases))
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (!cases[i].chan)
			continue; /* disabled, whatever else it says (a zeroed case) */
		if (cases[i].op != ZIO_SELECT_SEND && cases[i].op != ZIO_SELECT_RECV)
			return -EINVAL;
		if (!cases[i].elem)
			return -EINVAL;
	}
	zio_chan *locks[ZIO_SELECT_MAX];
	size_t nl = lock_order(cases, n, locks);

	/* Pass 1: poll. */
	uint64_t tried = 0; /* cases found not ready after all */
	struct chan_waiter *rel;
	int res;
	lock_all(locks, nl);
	for (;;) {
		size_t pick = n, ready = 0;
		for (size_t i = 0; i < n; i++) {
			zio_chan *ch = cases[i].chan;
			if (!ch || (tried >> i & 1))
				continue;
			bool ok = cases[i].op == ZIO_SELECT_RECV ? chan_recv_ready(ch) : chan_send_ready(ch);
			if (ok && select_rand() % ++ready == 0)
				pick = i;
		}
		if (pick == n)
			break;
		struct zio_select_case *c = &cases[pick];
		rel = NULL;
		enum chan_op k = c->op == ZIO_SELECT_RECV
				 ? zio__chan_recv_locked(c->chan, c->elem, &res, &rel)
				 : zio__chan_send_locked(c->chan, c->elem, &res, &rel);
		if (k == CHAN_DONE) {
			unlock_all(locks, nl);
			if (rel)
				waiter_release(&rel->w);
			c->res = res;
			return (int)pick;
		}
		if (k == CHAN_NOMEM) {
			/* An unbounded channel needs a segment: get one without
			 * holding the locks, then poll again from scratch. */
			unlock_all(locks, nl);
			struct chan_seg *seg = zio__chan_seg_alloc(c->chan);
			if (!seg)
				return -ENOMEM;
			lock_all(locks, nl);
			zio__chan_seg_give(c->chan, seg);
			continue;
		}
		tried |= (uint64_t)1 << pick;
	}
	if (deadline == 0) {
		unlock_all(locks, nl);
		return -EAGAIN;
	}

	/* Pass 2: queue everywhere, park once. */
	struct chan_waiter cw[ZIO_SELECT_MAX];
	struct zio__parker *p = zio__parker_self();
	uint32_t gen = zio__park_prepare(p, 0);
	for (size_t i = 0; i < n; i++) {
		zio_chan *ch = cases[i].chan;
		if (!ch)
			continue;
		zio__waiter_init(&cw[i].w, p, gen);
		cw[i].elem = cases[i].elem;
		cw[i].res = 0;
		cw[i].idx = (unsigned)i;
		wq_push(cases[i].op == ZIO_SELECT_RECV ? &ch->recvq : &ch->sendq, &cw[i].w);
	}
	unlock_all(locks, nl);

	int r = zio__park(p, deadline);
	if (r >= 0)
		waiter_await_release(&cw[r].w);
	/* Unlink the rest. A peer that popped one of them and lost the claim
	 * did so under that channel's lock, which we take here. */
	for (size_t i = 0; i < n; i++) {
		zio_chan *ch = cases[i].chan;
		if (!ch || (int)i == r)
			continue;
		slock(&ch->lock);
		wq_remove(cases[i].op == ZIO_SELECT_RECV ? &ch->recvq : &ch->sendq, &cw[i].w);
		sunlock(&ch->lock);
	}
	if (r < 0)
		return r;
	cases[r].res = cw[r].res;
	return r;
}
