/*
 * chan.c - channels: bounded, unbuffered (rendezvous) and unbounded.
 *
 * Everything happens under the channel's spin word (chan_impl.h has the
 * invariants). A send first hands its item to the oldest waiting receiver
 * (claim it, copy into its buffer), else buffers it, else queues itself;
 * a receive takes the oldest buffered item and refills the freed slot from
 * the oldest waiting sender, else takes a waiting sender's item directly
 * (unbuffered), else queues itself. Either way items leave in the order
 * they arrived: senders that queued because the buffer was full get their
 * turn before anything sent later. All queues are FIFO.
 *
 * Blocked parties are woken already served: the item has been copied to or
 * from their buffer when they resume, so a woken sender or receiver returns
 * without touching the channel again, and the waker never touches the
 * waiter after releasing it. close() claims every waiter with -EPIPE.
 *
 * Bounded and unbuffered channels allocate only in create(). An unbounded
 * channel grows by segments of about 4 KiB, allocated outside the spin word
 * (the send retries), and keeps one spare segment so that a channel that
 * hovers around a segment boundary does not call malloc per item.
 */
#include "chan_impl.h"

#define SEG_BYTES 4096

/* Small fixed sizes become moves instead of a call to memcpy. */
static inline void elem_copy(void *dst, const void *src, size_t n)
{
	switch (n) {
	case 1: memcpy(dst, src, 1); break;
	case 2: memcpy(dst, src, 2); break;
	case 4: memcpy(dst, src, 4); break;
	case 8: memcpy(dst, src, 8); break;
	case 16: memcpy(dst, src, 16); break;
	default: memcpy(dst, src, n); break;
	}
}

ZIO_API int zio_chan_create(zio_chan **out, size_t elem_size, size_t capacity, unsigned flags)
{
	if (!out || elem_size == 0 || (flags & ~ZIO_CHAN_UNBOUNDED))
		return -EINVAL;
	*out = NULL;
	bool unbounded = flags & ZIO_CHAN_UNBOUNDED;
	if (!unbounded && capacity && elem_size > SIZE_MAX / capacity)
		return -EINVAL;
	zio_chan *ch = calloc(1, sizeof(*ch));
	if (!ch)
		return -ENOMEM;
	ch->esize = elem_size;
	ch->unbounded = unbounded;
	if (unbounded) {
		ch->seg_items = elem_size >= SEG_BYTES ? 1 : SEG_BYTES / elem_size;
		if (elem_size > (SIZE_MAX - sizeof(struct chan_seg)) / ch->seg_items ||
		    !(ch->spare = zio__chan_seg_alloc(ch))) {
			free(ch);
			return -ENOMEM;
		}
	} else if (capacity) {
		ch->cap = capacity;
		ch->ring = malloc(elem_size * capacity);
		if (!ch->ring) {
			free(ch);
			return -ENOMEM;
		}
	}
	*out = ch;
	return 0;
}

ZIO_API int zio_chan_destroy(zio_chan *ch)
{
	if (!ch)
		return -EINVAL;
	slock(&ch->lock);
	bool busy = !wq_empty(&ch->sendq) || !wq_empty(&ch->recvq);
	sunlock(&ch->lock);
	if (busy)
		return -EBUSY;
	for (struct chan_seg *s = ch->hseg, *next; s; s = next) {
		next = s->next;
		free(s);
	}
	free(ch->spare);
	free(ch->ring);
	free(ch);
	return 0;
}

/* ----------------------------------------------------------------- buffer */

struct chan_seg *zio__chan_seg_alloc(const zio_chan *ch)
{
	return malloc(sizeof(struct chan_seg) + ch->seg_items * ch->esize);
}

void zio__chan_seg_give(zio_chan *ch, struct chan_seg *s)
{
	if (!ch->spare)
		ch->spare = s;
	else
		free(s);
}

static inline bool buf_push(zio_chan *ch, const void *elem)
{
	if (!ch->unbounded) {
		if (ch->len == ch->cap)
			return false;
		size_t t = ch->head + ch->len;
		if (t >= ch->cap)
			t -= ch->cap;
		elem_copy(ch->ring + t * ch->esize, elem, ch->esize);
		ch->len++;
		return true;
	}
	if (!ch->tseg || ch->tidx == ch->seg_items) {
		struct chan_seg *s = ch->spare;
		if (!s)
			return false;
		ch->spare = NULL;
		s->next = NULL;
		if (ch->tseg)
			ch->tseg->next = s;
		else
			ch->hseg = s, ch->hidx = 0;
		ch->tseg = s;
		ch->tidx = 0;
	}
	elem_copy(ch->tseg->items + ch->tidx * ch->esize, elem, ch->esize);
	ch->tidx++;
	ch->len++;
	return true;
}

/* ch->len > 0 */
static inline void buf_pop(zio_chan *ch, void *elem)
{
	ch->len--;
	if (!ch->unbounded) {
		elem_copy(elem, ch->ring + ch->head * ch->esize, ch->esize);
		if (++ch->head == ch->cap)
			ch->head = 0;
		return;
	}
	elem_copy(elem, ch->hseg->items + ch->hidx * ch->esize, ch->esize);
	ch->hidx++;
	if (ch->len == 0) {
		/* Empty: the head segment is the tail one; start it over. */
		ch->hidx = ch->tidx = 0;
	} else if (ch->hidx == ch->seg_items) {
		struct chan_seg *old = ch->hseg;
		ch->hseg = old->next;
		ch->hidx = 0;
		zio__chan_seg_give(ch, old);
	}
}

/* The oldest waiter on q that accepts the claim, or NULL. */
static inline struct chan_waiter *claim(struct zio__wq *q)
{
	struct zio__waiter *w;
	while ((w = wq_pop(q))) {
		struct chan_waiter *cw = zio__container_of(w, struct chan_waiter, w);
		if (zio__unpark(w->parker, w->gen, (int)cw->idx))
			return cw;
	}
	return NULL;
}

/* ------------------------------------------------------------- operations */

enum chan_op zio__chan_send_locked(zio_chan *ch, const void *elem, int *res,
				   struct chan_waiter **rel)
{
	if (ch->closed) {
		*res = -EPIPE;
		return CHAN_DONE;
	}
	struct chan_waiter *r = claim(&ch->recvq);
	if (r) {
		/* Receivers wait only on an empty buffer: straight to it. */
		elem_copy(r->elem, elem, ch->esize);
		r->res = 0;
		*rel = r;
		*res = 0;
		return CHAN_DONE;
	}
	if (buf_push(ch, elem)) {
		*res = 0;
		return CHAN_DONE;
	}
	return ch->unbounded ? CHAN_NOMEM : CHAN_BLOCK;
}

enum chan_op zio__chan_recv_locked(zio_chan *ch, void *elem, int *res, struct chan_waiter **rel)
{
	struct chan_waiter *s;
	if (ch->len > 0) {
		buf_pop(ch, elem);
		/* A slot is free: the oldest blocked sender's item takes it. */
		if (!wq_empty(&ch->sendq) && (s = claim(&ch->sendq))) {
			buf_push(ch, s->elem);
			s->res = 0;
			*rel = s;
		}
		*res = 0;
		return CHAN_DONE;
	}
	if ((s = claim(&ch->sendq))) {
		elem_copy(elem, s->elem, ch->esize);
		s->res = 0;
		*rel = s;
		*res = 0;
		return CHAN_DONE;
	}
	if (ch->closed) {
		*res = -EPIPE;
		return CHAN_DONE;
	}
	return CHAN_BLOCK;
}

/* Queues the caller on q and waits (ch->lock held on entry, not on exit). */
static int chan_wait(zio_chan *ch, struct zio__wq *q, void *elem, int64_t deadline)
{
	struct chan_waiter cw;
	waiter_prepare(&cw.w, zio__parker_self(), 0);
	cw.elem = elem;
	cw.res = 0;
	cw.idx = 0;
	wq_push(q, &cw.w);
	sunlock(&ch->lock);
	int r = sync_wait(&cw.w, deadline);
	if (r >= 0)
		return cw.res;
	slock(&ch->lock);
	wq_remove(q, &cw.w);
	sunlock(&ch->lock);
	return r;
}

static inline void finish(zio_chan *ch, struct chan_waiter *rel)
{
	sunlock(&ch->lock);
	if (rel)
		waiter_release(&rel->w);
}

ZIO_API int zio_chan_send(zio_chan *ch, const void *elem, int64_t deadline)
{
	if (zio__unlikely(!ch || !elem))
		return -EINVAL;
	struct chan_waiter *rel = NULL;
	int res;
	slock(&ch->lock);
	for (;;) {
		enum chan_op k = zio__chan_send_locked(ch, elem, &res, &rel);
		if (zio__likely(k == CHAN_DONE)) {
			finish(ch, rel);
			return res;
		}
		if (k == CHAN_BLOCK)
			break;
		sunlock(&ch->lock);
		struct chan_seg *seg = zio__chan_seg_alloc(ch);
		if (!seg)
			return -ENOMEM;
		slock(&ch->lock);
		zio__chan_seg_give(ch, seg);
	}
	if (deadline == 0) {
		sunlock(&ch->lock);
		return -EAGAIN;
	}
	return chan_wait(ch, &ch->sendq, (void *)elem, deadline);
}

ZIO_API int zio_chan_recv(zio_chan *ch, void *elem, int64_t deadline)
{
	if (zio__unlikely(!ch || !elem))
		return -EINVAL;
	struct chan_waiter *rel = NULL;
	int res;
	slock(&ch->lock);
	if (zio__likely(zio__chan_recv_locked(ch, elem, &res, &rel) == CHAN_DONE)) {
		finish(ch, rel);
		return res;
	}
	if (deadline == 0) {
		sunlock(&ch->lock);
		return -EAGAIN;
	}
	return chan_wait(ch, &ch->recvq, elem, deadline);
}

ZIO_API int zio_chan_try_send(zio_chan *ch, const void *elem)
{
	return zio_chan_send(ch, elem, 0);
}

ZIO_API int zio_chan_try_recv(zio_chan *ch, void *elem)
{
	return zio_chan_recv(ch, elem, 0);
}

ZIO_API int zio_chan_close(zio_chan *ch)
{
	if (!ch)
		return -EINVAL;
	slock(&ch->lock);
	if (ch->closed) {
		sunlock(&ch->lock);
		return -EPIPE;
	}
	ch->closed = true;
	/* Senders get their items back; receivers wait only on an empty
	 * buffer, so there is nothing left for them to drain. */
	struct zio__waiter *list = NULL;
	struct zio__wq *queues[2] = { &ch->sendq, &ch->recvq };
	for (int i = 0; i < 2; i++) {
		struct chan_waiter *cw;
		while ((cw = claim(queues[i]))) {
			cw->res = -EPIPE;
			cw->w.next = list;
			list = &cw->w;
		}
	}
	sunlock(&ch->lock);
	waiters_release(list);
	return 0;
}

ZIO_API size_t zio_chan_len(zio_chan *ch)
{
	if (!ch)
		return 0;
	slock(&ch->lock);
	size_t n = ch->len;
	sunlock(&ch->lock);
	return n;
}

ZIO_API size_t zio_chan_cap(zio_chan *ch)
{
	if (!ch)
		return 0;
	return ch->unbounded ? SIZE_MAX : ch->cap;
}

ZIO_API bool zio_chan_closed(zio_chan *ch)
{
	if (!ch)
		return false;
	slock(&ch->lock);
	bool c = ch->closed;
	sunlock(&ch->lock);
	return c;
}
