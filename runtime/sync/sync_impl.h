/*
 * sync_impl.h - what every primitive in runtime/sync/ and the channels
 * share: spin locks, a waiter queue, and the wake protocol. Private to
 * those files; only static inline helpers, no symbols.
 *
 * Each primitive keeps its waiters in a struct zio__wq (nodes on the
 * waiters' stacks) guarded by a spin lock: a word of its own, or a bit of
 * its state word (see "lock bits" below for which and why). The lock is
 * held only for O(1) bookkeeping (plus the claims of a broadcast) and
 * never across a park, so spinning is bounded; holders are never
 * descheduled by zio, only by the OS, which is why spinning falls back to
 * sched_yield().
 *
 * A wait, in the order wait.c requires:
 *	lock; decide to wait; w = prepared waiter (zio__park_prepare); push;
 *	unlock; zio__park; ...
 * Preparing only once the decision to wait is final matters: a prepared
 * wait that is abandoned can still be claimed by a canceller, which would
 * leave the fiber marked as woken.
 *
 * The wake protocol ("claim, finish, release"):
 *  1. under the lock, the waker pops a waiter and claims it with
 *     zio__unpark(); a failed claim means the waiter timed out or was
 *     cancelled, so the waker pops the next one: no wakeup is lost;
 *  2. still under the lock, it finishes whatever the claim stands for
 *     (copies a channel item in or out of the waiter's buffer, updates
 *     the state word);
 *  3. it releases the lock (for a lock bit: in the same atomic step that
 *     publishes the primitive's new state), then *releases* the waiter: a
 *     store to w->value that is its very last access to anything of the
 *     waiter's.
 * A woken waiter spins (briefly: the waker is between 1 and 3) until it is
 * released before it returns. So the waiter's frame and buffer outlive the
 * waker's use of them, and the primitive's memory is not touched by the
 * waker once the waiter can return: the waiter may free the primitive right
 * away, and so may the waker (a condition can be destroyed as soon as
 * broadcast returns, a semaphore as soon as the woken waiter returns).
 * A waiter whose park failed (-ETIMEDOUT, -ECANCELED) takes the lock to
 * unlink itself, which also waits out a waker that popped it and lost.
 */
#ifndef ZIO_SYNC_IMPL_H
#define ZIO_SYNC_IMPL_H

#include "internal.h"

#include <sched.h>

/* ------------------------------------------------------------ lock bits
 * Two kinds of lock, both spin locks held for O(1) work:
 *  - a word of its own (slock/sunlock), for objects whose every operation
 *    takes the lock anyway (condition, barrier, channels);
 *  - a bit inside the primitive's state word (wlock/wunlock, 32 or 64
 *    bits), for primitives with lock-free fast paths (mutex, rwlock,
 *    semaphore, event, notify, wait group, once). There, the waker's last
 *    step must be one atomic update that both publishes the new state and
 *    drops the lock: otherwise a fast-path task could see the new state,
 *    return, and free the object while the waker still had to store to it
 *    (glibc bug 12674 for sem_post; POSIX lets a mutex be destroyed as soon
 *    as it is unlocked). */

static inline void backoff(unsigned *spins)
{
	if (++*spins < 256) {
		zio__cpu_relax();
	} else {
		/* The holder is an OS thread the kernel preempted. */
		sched_yield();
		*spins = 0;
	}
}

static __attribute__((noinline, unused)) void slock_contended(unsigned *l)
{
	unsigned spins = 0;
	do {
		while (__atomic_load_n(l, __ATOMIC_RELAXED))
			backoff(&spins);
	} while (__atomic_exchange_n(l, 1, __ATOMIC_ACQUIRE));
}

static inline void slock(unsigned *l)
{
	if (zio__unlikely(__atomic_exchange_n(l, 1, __ATOMIC_ACQUIRE)))
		slock_contended(l);
}

static inline void sunlock(unsigned *l)
{
	__atomic_store_n(l, 0, __ATOMIC_RELEASE);
}

/* Sets bit in *w once it is clear; returns the word with it set. */
static __attribute__((noinline, unused)) unsigned wlock_contended(unsigned *w, unsigned bit)
{
	unsigned spins = 0;
	for (;;) {
		unsigned s = __atomic_load_n(w, __ATOMIC_RELAXED);
		if (s & bit)
			backoff(&spins);
		else if (__atomic_compare_exchange_n(w, &s, s | bit, true, __ATOMIC_ACQUIRE,
						     __ATOMIC_RELAXED))
			return s | bit;
	}
}

static inline unsigned wlock(unsigned *w, unsigned bit)
{
	unsigned s = __atomic_fetch_or(w, bit, __ATOMIC_ACQUIRE);
	if (zio__likely(!(s & bit)))
		return s | bit;
	return wlock_contended(w, bit);
}

static inline void wunlock(unsigned *w, unsigned bit)
{
	__atomic_fetch_and(w, ~bit, __ATOMIC_RELEASE);
}

static __attribute__((noinline, unused)) uint64_t wlock64_contended(uint64_t *w, uint64_t bit)
{
	unsigned spins = 0;
	for (;;) {
		uint64_t s = __atomic_load_n(w, __ATOMIC_RELAXED);
		if (s & bit)
			backoff(&spins);
		else if (__atomic_compare_exchange_n(w, &s, s | bit, true, __ATOMIC_ACQUIRE,
						     __ATOMIC_RELAXED))
			return s | bit;
	}
}

static inline uint64_t wlock64(uint64_t *w, uint64_t bit)
{
	uint64_t s = __atomic_fetch_or(w, bit, __ATOMIC_ACQUIRE);
	if (zio__likely(!(s & bit)))
		return s | bit;
	return wlock64_contended(w, bit);
}

static inline void wunlock64(uint64_t *w, uint64_t bit)
{
	__atomic_fetch_and(w, ~bit, __ATOMIC_RELEASE);
}

/* Where the queue lock of each primitive lives (tests look at queues). */
#define ZIO__MUTEX_QLOCK 8u  /* in zio_mutex._state */
#define ZIO__RWLOCK_QLOCK 8u /* in zio_rwlock._state */
#define ZIO__SEM_QLOCK 1u    /* in zio_sem._state (64-bit) */
#define ZIO__EVENT_QLOCK 2u  /* in zio_event._state and zio_notify._state */
#define ZIO__WG_QLOCK 1u     /* in zio_waitgroup._state (64-bit) */
#define ZIO__ONCE_QLOCK 8u   /* in zio_once._state */

/* --------------------------------------------------------- waiter queue
 * Same link convention as the core's zio__waitq: an unlinked node points
 * at itself (zio__waiter_queued), the head's prev and the tail's next are
 * NULL. Push-front is for a woken mutex waiter that lost the race and goes
 * back to the head of the line. */

static inline bool wq_empty(const struct zio__wq *q)
{
	return q->head == NULL;
}

static inline void wq_push(struct zio__wq *q, struct zio__waiter *w)
{
	w->next = NULL;
	w->prev = q->tail;
	if (q->tail)
		q->tail->next = w;
	else
		q->head = w;
	q->tail = w;
}

static inline void wq_push_front(struct zio__wq *q, struct zio__waiter *w)
{
	w->prev = NULL;
	w->next = q->head;
	if (q->head)
		q->head->prev = w;
	else
		q->tail = w;
	q->head = w;
}

/* Unlinks w if it is queued; tells whether it was. */
static inline bool wq_remove(struct zio__wq *q, struct zio__waiter *w)
{
	if (!zio__waiter_queued(w))
		return false;
	if (w->prev)
		w->prev->next = w->next;
	else
		q->head = w->next;
	if (w->next)
		w->next->prev = w->prev;
	else
		q->tail = w->prev;
	w->next = w->prev = w;
	return true;
}

static inline struct zio__waiter *wq_pop(struct zio__wq *q)
{
	struct zio__waiter *w = q->head;
	if (w)
		wq_remove(q, w);
	return w;
}

/* -------------------------------------------------------- wake protocol */

/* Pops waiters until one accepts the claim; NULL if none did. The waiter
 * comes back as a list of one (next NULL, prev still marking it unqueued). */
static inline struct zio__waiter *wq_claim_one_counting(struct zio__wq *q, int value,
							unsigned *lost)
{
	struct zio__waiter *w;
	while ((w = wq_pop(q))) {
		if (zio__unpark(w->parker, w->gen, value)) {
			w->next = NULL;
			return w;
		}
		++*lost; /* it timed out or was cancelled, and is on its way out */
	}
	return NULL;
}

static inline struct zio__waiter *wq_claim_one(struct zio__wq *q, int value)
{
	unsigned lost = 0;
	return wq_claim_one_counting(q, value, &lost);
}

/* As wq_claim_all, and counts in *lost the waiters popped whose claim lost:
 * they timed out or were cancelled, and will still take the object's lock
 * to leave. */
static inline struct zio__waiter *wq_claim_all_counting(struct zio__wq *q, int value,
							unsigned *lost)
{
	struct zio__waiter *list = NULL, *w;
	while ((w = wq_pop(q))) {
		if (zio__unpark(w->parker, w->gen, value)) {
			w->next = list;
			list = w;
		} else {
			++*lost;
		}
	}
	return list;
}

/* Claims every waiter; returns them as a list linked by ->next (prev keeps
 * pointing at the node itself, so they still read as unqueued). */
static inline struct zio__waiter *wq_claim_all(struct zio__wq *q, int value)
{
	unsigned lost = 0;
	return wq_claim_all_counting(q, value, &lost);
}

/* For destroy(): -EBUSY while waiters are queued on q; else 0 once the
 * *leaving waiters (popped by a waker, their wait ended: each still takes
 * *lock to leave and then decrements it) are gone. Shielded: a cancelled
 * caller's yields would return at once, and a leaver on this executor
 * would never get to run. */
static inline int destroy_when_left(unsigned *lock, struct zio__wq *q, const unsigned *leaving)
{
	zio_shield_begin();
	int r = 0;
	for (unsigned n = 0;; n++) {
		slock(lock);
		bool busy = !wq_empty(q), left = *leaving == 0;
		sunlock(lock);
		if (busy)
			r = -EBUSY;
		if (busy || left)
			break;
		zio__pause(n); /* it is runnable: its wait ended */
	}
	zio_shield_end();
	return r;
}

/* Step 3 of the protocol: the last access to w. Call after unlocking. */
static inline void waiter_release(struct zio__waiter *w)
{
	__atomic_store_n(&w->value, 1, __ATOMIC_RELEASE);
}

static inline void waiters_release(struct zio__waiter *list)
{
	while (list) {
		struct zio__waiter *next = list->next; /* before the release */
		waiter_release(list);
		list = next;
	}
}

static inline void waiter_await_release(struct zio__waiter *w)
{
	unsigned spins = 0;
	while (!__atomic_load_n(&w->value, __ATOMIC_ACQUIRE))
		backoff(&spins);
}

/* Arms the caller's parker for a wait and points w at it. */
static inline void waiter_prepare(struct zio__waiter *w, struct zio__parker *p, unsigned flags)
{
	zio__waiter_init(w, p, zio__park_prepare(p, flags));
}

/*
 * Parks on a wait whose waiter w is queued and whose lock the caller has
 * just dropped. r >= 0: woken with claim value r and released. r < 0:
 * -ETIMEDOUT or -ECANCELED; the caller retakes the lock and unlinks w
 * (wq_remove tells whether a waker got to it first). A ZIO__PARK_NOCANCEL
 * wait is shielded as well, so that deadline scopes do not end it either.
 */
static inline int sync_wait(struct zio__waiter *w, int64_t deadline)
{
	struct zio__parker *p = w->parker;
	struct zio__fiber *f = (p->flags & ZIO__PARK_NOCANCEL) ? zio__parker_fiber(p) : NULL;
	if (f)
		f->shield++;
	int r = zio__park(p, deadline);
	if (f)
		f->shield--;
	if (r >= 0)
		waiter_await_release(w);
	return r;
}

#endif
