/*
 * broadcast.c - zio_bcast: one sender side, many subscribers, each of
 * which receives every item (unless it falls too far behind).
 *
 * The channel is a ring of the last `capacity` items, numbered by a
 * 64-bit sequence that never wraps in practice: item k lives in slot
 * k % capacity, and items [tail - capacity, tail) are kept. send() writes
 * slot tail % capacity, overwriting the oldest item, and wakes every
 * waiting subscriber; it never waits, so a slow subscriber cannot hold up
 * the sender or anyone else. A subscriber is only a cursor (the number of
 * the next item it wants), so subscribing costs nothing and the channel
 * keeps no list of subscribers. A cursor that has fallen behind the oldest
 * kept item skips ahead to it and is told how many items it missed.
 *
 * Receivers copy out under the spin word; a woken receiver just tries
 * again, so a receive that times out or is cancelled has taken nothing:
 * its cursor moves only when an item is copied out. Every receiver a send
 * or close pops comes back for the lock (woken, or leaving after its wait
 * ended): `waking` counts them until they have, and destroy() waits for
 * them, so the channel may be destroyed once close() returns and its
 * receivers' calls have.
 */
#include "chan_impl.h"

ZIO_API int zio_bcast_create(zio_bcast **out, size_t elem_size, size_t capacity)
{
	if (!out || elem_size == 0 || capacity == 0 || elem_size > SIZE_MAX / capacity)
		return -EINVAL;
	*out = NULL;
	zio_bcast *b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->ring = malloc(elem_size * capacity);
	if (!b->ring) {
		free(b);
		return -ENOMEM;
	}
	b->esize = elem_size;
	b->cap = capacity;
	*out = b;
	return 0;
}

ZIO_API int zio_bcast_destroy(zio_bcast *b)
{
	if (!b)
		return -EINVAL;
	int r = destroy_when_left(&b->lock, &b->q, &b->waking);
	if (r)
		return r;
	free(b->ring);
	free(b);
	return 0;
}

/* Under the lock: pops every waiting receiver, counting each in `waking`
 * (each comes back for the lock), and claims those it can. */
static struct zio__waiter *wake_receivers(zio_bcast *b)
{
	unsigned lost = 0;
	struct zio__waiter *list = wq_claim_all_counting(&b->q, 0, &lost);
	b->waking += lost;
	for (struct zio__waiter *w = list; w; w = w->next)
		b->waking++;
	return list;
}

ZIO_API int zio_bcast_send(zio_bcast *b, const void *elem)
{
	if (!b || !elem)
		return -EINVAL;
	slock(&b->lock);
	if (b->closed) {
		sunlock(&b->lock);
		return -EPIPE;
	}
	memcpy(b->ring + (b->tail % b->cap) * b->esize, elem, b->esize);
	b->tail++;
	struct zio__waiter *list = wake_receivers(b);
	sunlock(&b->lock);
	waiters_release(list);
	return 0;
}

ZIO_API int zio_bcast_close(zio_bcast *b)
{
	if (!b)
		return -EINVAL;
	slock(&b->lock);
	if (b->closed) {
		sunlock(&b->lock);
		return -EPIPE;
	}
	b->closed = true;
	struct zio__waiter *list = wake_receivers(b);
	sunlock(&b->lock);
	waiters_release(list);
	return 0;
}

ZIO_API int zio_bcast_subscribe(zio_bcast *b, struct zio_bcast_rx *rx)
{
	if (!b || !rx)
		return -EINVAL;
	slock(&b->lock);
	rx->_b = b;
	rx->_next = b->tail;
	sunlock(&b->lock);
	return 0;
}

ZIO_API int zio_bcast_recv(struct zio_bcast_rx *rx, void *elem, uint64_t *missed, int64_t deadline)
{
	if (!rx || !rx->_b || !elem)
		return -EINVAL;
	zio_bcast *b = rx->_b;
	struct zio__parker *p = NULL;
	slock(&b->lock);
	for (;;) {
		uint64_t oldest = b->tail > b->cap ? b->tail - b->cap : 0;
		uint64_t lost = 0;
		if (rx->_next < oldest) {
			lost = oldest - rx->_next;
			rx->_next = oldest;
		}
		if (rx->_next < b->tail) {
			memcpy(elem, b->ring + (rx->_next % b->cap) * b->esize, b->esize);
			rx->_next++;
			sunlock(&b->lock);
			if (missed)
				*missed = lost;
			return 0;
		}
		int r = b->closed ? -EPIPE : deadline == 0 ? -EAGAIN : 0;
		if (r) {
			sunlock(&b->lock);
			return r;
		}
		if (!p)
			p = zio__parker_self();
		struct zio__waiter w;
		waiter_prepare(&w, p, 0);
		wq_push(&b->q, &w);
		sunlock(&b->lock);
		r = sync_wait(&w, deadline);
		slock(&b->lock);
		if (r >= 0 || !wq_remove(&b->q, &w))
			b->waking--; /* popped by a send or close: back now */
		if (r < 0) {
			sunlock(&b->lock);
			return r;
		}
	}
}

ZIO_API int zio_bcast_try_recv(struct zio_bcast_rx *rx, void *elem, uint64_t *missed)
{
	return zio_bcast_recv(rx, elem, missed, 0);
}
