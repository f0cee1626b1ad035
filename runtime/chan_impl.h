/*
 * chan_impl.h - the channel object, shared by chan.c (send, receive,
 * close) and select.c. Private.
 *
 * A channel is a buffer and two FIFOs of waiters (blocked senders, blocked
 * receivers) under one spin word. Invariants, under the spin word:
 *  - receivers wait only while the buffer is empty, senders only while it
 *    is full (always, for an unbuffered channel), so at most one queue
 *    holds live waiters;
 *  - an item moves only after the waiter on the other side has been
 *    claimed (zio__unpark won): claim first, then copy, then release the
 *    waiter (sync_impl.h). A waiter that timed out or was cancelled cannot
 *    be claimed, so nothing is ever copied to or from a party that is
 *    going to report failure. That is what makes a cancelled receive or
 *    select never lose an item, and a cancelled send never deliver one.
 * A select's waiters sit in several queues at once and share one parker:
 * the first claim wins (its value is the case index) and later claims of
 * its other waiters simply fail.
 */
#ifndef ZIO_CHAN_IMPL_H
#define ZIO_CHAN_IMPL_H

#include "sync/sync_impl.h"

struct chan_waiter {
	struct zio__waiter w; /* w.value: released (sync_impl.h) */
	void *elem;           /* send: the item; receive: where it goes */
	int res;              /* filled in by the claimer: 0 or -EPIPE */
	unsigned idx;         /* claim value: the case index in a select */
};

/* An unbounded channel's buffer: a list of fixed-size segments. */
struct chan_seg {
	struct chan_seg *next;
	char items[];
};

struct zio_chan {
	unsigned lock;
	bool closed;
	bool unbounded;
	size_t esize;
	size_t cap;           /* bounded: slots in ring; 0: unbuffered */
	size_t len;           /* items buffered */
	/* bounded */
	size_t head;          /* ring index of the oldest item */
	char *ring;
	/* unbounded: items from hseg[hidx] to tseg[tidx - 1] */
	struct chan_seg *hseg, *tseg;
	struct chan_seg *spare; /* one segment kept for reuse */
	size_t hidx, tidx, seg_items;
	struct zio__wq sendq, recvq;
};

/* A broadcast channel (broadcast.c): the last cap items, item k in slot
 * k % cap, and the subscribers waiting for item `tail`. */
struct zio_bcast {
	unsigned lock;
	bool closed;
	unsigned waking;  /* receivers a send or close popped, not back yet */
	size_t esize, cap;
	uint64_t tail;    /* items sent so far: the next item's number */
	char *ring;
	struct zio__wq q;
};

/* What an operation attempted under the lock came to. */
enum chan_op {
	CHAN_DONE,  /* completed; *res is 0 or -EPIPE */
	CHAN_BLOCK, /* would have to wait */
	CHAN_NOMEM, /* unbounded send needs a segment: unlock, allocate, retry */
};

/* Both with ch->lock held. *rel receives a claimed waiter that must be
 * released (waiter_release) once the lock is dropped. */
enum chan_op zio__chan_send_locked(zio_chan *ch, const void *elem, int *res,
				   struct chan_waiter **rel);
enum chan_op zio__chan_recv_locked(zio_chan *ch, void *elem, int *res, struct chan_waiter **rel);
/* Readiness as the lock holder sees it (may be stale waiters: then the
 * operation itself says CHAN_BLOCK). */
static inline bool chan_recv_ready(const zio_chan *ch)
{
	return ch->len > 0 || ch->closed || !wq_empty(&ch->sendq);
}
static inline bool chan_send_ready(const zio_chan *ch)
{
	return ch->closed || !wq_empty(&ch->recvq) || ch->unbounded || ch->len < ch->cap;
}
/* Allocates a segment for ch (no lock needed) / gives one to ch (locked):
 * kept as the spare, or freed if there is one already. */
struct chan_seg *zio__chan_seg_alloc(const zio_chan *ch);
void zio__chan_seg_give(zio_chan *ch, struct chan_seg *s);

#endif
