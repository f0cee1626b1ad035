/*
 * zio/chan.h - channels, select and broadcast channels. Included by zio.h.
 *
 * A channel carries fixed-size items (elem_size bytes, copied in and out):
 *  - bounded: capacity n > 0; send waits while n items are buffered;
 *  - unbuffered: capacity 0; send waits for a receiver and hands the item
 *    over directly (a rendezvous);
 *  - unbounded: ZIO_CHAN_UNBOUNDED; send never waits (it allocates buffer
 *    segments as needed; the other two kinds never allocate after create).
 * Items come out in the order they went in. Tasks on any executor and OS
 * threads outside the runtime may use the same channel.
 *
 * Deadlines are absolute (zio_now() ns), ZIO_FOREVER, or 0 to try once
 * (-EAGAIN where it would have waited); the try_ functions are deadline 0.
 * Every wait is a cancellation point (-ECANCELED).
 *
 * Nothing is lost or duplicated: an item is either received exactly once or
 * still in the channel, whatever times out or is cancelled. A send that
 * fails did not send (the caller still owns the item); a receive that
 * fails took nothing and left the caller's buffer untouched.
 *
 * close() refuses further sends (-EPIPE) and wakes every waiting sender
 * with -EPIPE; receivers first drain what is buffered, then get -EPIPE.
 *
 * A channel may be destroyed once no call on it is in progress; items
 * still buffered are dropped.
 */
#ifndef ZIO_CHAN_H
#define ZIO_CHAN_H

#include "../zio.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct zio_chan zio_chan;

#define ZIO_CHAN_UNBOUNDED 1u

/* elem_size > 0. -EINVAL for bad arguments, -ENOMEM. */
ZIO_API int zio_chan_create(zio_chan **out, size_t elem_size, size_t capacity, unsigned flags);
/* -EBUSY (and nothing freed) while tasks wait on it. */
ZIO_API int zio_chan_destroy(zio_chan *ch);
/* 0; -EPIPE closed; -ETIMEDOUT, -ECANCELED; -EAGAIN (deadline 0);
 * -ENOMEM (unbounded only). */
ZIO_API int zio_chan_send(zio_chan *ch, const void *elem, int64_t deadline);
/* 0 with the item in *elem; -EPIPE closed and drained; -ETIMEDOUT,
 * -ECANCELED, -EAGAIN. */
ZIO_API int zio_chan_recv(zio_chan *ch, void *elem, int64_t deadline);
ZIO_API int zio_chan_try_send(zio_chan *ch, const void *elem);
ZIO_API int zio_chan_try_recv(zio_chan *ch, void *elem);
/* -EPIPE if already closed. */
ZIO_API int zio_chan_close(zio_chan *ch);
/* Items buffered now (always 0 for unbuffered channels). */
ZIO_API size_t zio_chan_len(zio_chan *ch);
/* The capacity: 0 unbuffered, SIZE_MAX unbounded. */
ZIO_API size_t zio_chan_cap(zio_chan *ch);
ZIO_API bool zio_chan_closed(zio_chan *ch);

/* ------------------------------------------------------------------ select */

#define ZIO_SELECT_SEND 1
#define ZIO_SELECT_RECV 2
#define ZIO_SELECT_MAX 64 /* cases per select: their waiters live on the stack */

struct zio_select_case {
	zio_chan *chan; /* NULL: a case that is never ready (disabled) */
	int op;         /* ZIO_SELECT_SEND or ZIO_SELECT_RECV */
	void *elem;     /* send: the item; receive: where it goes */
	int res;        /* out, in the chosen case: 0, or -EPIPE (closed) */
};

/*
 * Waits until one case can proceed, performs it and returns its index;
 * that case's res tells how it went (a receive on a closed, drained channel
 * and a send on a closed channel complete with -EPIPE). Exactly one case
 * completes; the others have no effect (their receive buffers are not
 * written). Among cases ready at once the choice is uniformly random.
 * deadline 0 is the non-blocking "default" case: -EAGAIN if none is ready.
 * Otherwise -ETIMEDOUT, -ECANCELED (and then no case took effect: an item is
 * never consumed by a select that did not return it), -EINVAL.
 */
ZIO_API int zio_select(struct zio_select_case *cases, size_t n, int64_t deadline);

/* -------------------------------------------------------- broadcast channel */

/*
 * Every subscriber receives every item sent after it subscribed, in order.
 * The channel keeps the last `capacity` items; send never waits and
 * overwrites the oldest. A subscriber that fell behind by more than that
 * skips ahead to the oldest item still kept, and learns how many it missed.
 */
typedef struct zio_bcast zio_bcast;

/* A subscriber's cursor; embeddable, needs no cleanup. One task at a time
 * may receive through a given cursor. */
struct zio_bcast_rx {
	/* private */
	zio_bcast *_b;
	uint64_t _next; /* sequence number of the next item to receive */
};

ZIO_API int zio_bcast_create(zio_bcast **out, size_t elem_size, size_t capacity);
/* -EBUSY while tasks wait on it. */
ZIO_API int zio_bcast_destroy(zio_bcast *b);
/* Never waits. -EPIPE once closed. */
ZIO_API int zio_bcast_send(zio_bcast *b, const void *elem);
/* Receivers drain what they have not seen, then get -EPIPE. */
ZIO_API int zio_bcast_close(zio_bcast *b);
/* rx will receive the items sent from now on. */
ZIO_API int zio_bcast_subscribe(zio_bcast *b, struct zio_bcast_rx *rx);
/* 0 with the next item in *elem and, in *missed (may be NULL), how many
 * items before it were overwritten before rx could receive them (0 when it
 * kept up). -EPIPE closed and drained; -ETIMEDOUT, -ECANCELED, -EAGAIN. */
ZIO_API int zio_bcast_recv(struct zio_bcast_rx *rx, void *elem, uint64_t *missed, int64_t deadline);
ZIO_API int zio_bcast_try_recv(struct zio_bcast_rx *rx, void *elem, uint64_t *missed);

#ifdef __cplusplus
}
#endif
#endif
