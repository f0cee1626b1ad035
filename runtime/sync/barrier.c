/*
 * barrier.c - zio_barrier, zio_waitgroup and zio_once: primitives where
 * one event releases every waiter at once.
 *
 * Barrier. Rounds of `count` arrivals, counted under the spin word. The
 * last arrival of a round resets the count for the next round, claims every
 * waiter and returns ZIO_BARRIER_SERIAL; the others return 0. A waiter
 * that times out or is cancelled while still queued withdraws its arrival
 * (the round then needs another task, instead of being "broken" for
 * everyone); one that the last arrival popped first belongs to the
 * completed round and returns success, so every round releases exactly
 * `count` tasks. Woken waiters never touch the barrier again; destroy()
 * takes the spin word, which waits out a last arrival still releasing. A
 * waiter the last arrival popped but whose timeout or cancel won the claim
 * still takes the spin word to learn that; the last arrival counts those
 * in `_leaving`, and destroy() waits until they are gone too.
 *
 * Wait group. One 64-bit word: count << 2 | WAITERS | QLOCK. A change
 * that leaves the count non-zero, or brings it to zero with nobody
 * waiting, is one CAS. Bringing it to zero with waiters takes QLOCK in the
 * same CAS, claims every waiter and drops QLOCK (clearing WAITERS) in one
 * last store. Waiters announce themselves (WAITERS, QLOCK) in a CAS that
 * sees the count non-zero, so they either see zero or are queued before
 * the waker looks; and a waiter returns on zero only with QLOCK clear, so
 * a wait group on the waiter's stack is never written after wait returns.
 *
 * Once. State new -> running -> done, plus WAITERS and QLOCK. The first
 * caller runs the function, then publishes done with a release store (its
 * last access) after claiming the callers that queued meanwhile; everyone
 * else returns at once on an acquire load of done.
 */
#include "sync_impl.h"

_Static_assert(sizeof(zio_barrier) <= sizeof(pthread_barrier_t), "zio_barrier must fit pthread_barrier_t");
_Static_assert(_Alignof(zio_barrier) <= _Alignof(pthread_barrier_t), "zio_barrier alignment");
#if defined(__x86_64__)
_Static_assert(sizeof(zio_barrier) <= 32, "x86_64 pthread_barrier_t size");
#endif

/* ----------------------------------------------------------------- barrier */

ZIO_API int zio_barrier_init(zio_barrier *b, unsigned count)
{
	if (!b || count == 0)
		return -EINVAL;
	memset(b, 0, sizeof(*b));
	b->_count = count;
	return 0;
}

ZIO_API int zio_barrier_destroy(zio_barrier *b)
{
	if (!b)
		return -EINVAL;
	/* (Waiters are queued exactly while _arrived is not 0.) */
	return destroy_when_left(&b->_lock, &b->_q, &b->_leaving);
}

static int barrier_wait(zio_barrier *b, int64_t deadline)
{
	slock(&b->_lock);
	if (b->_count == 0) {
		sunlock(&b->_lock);
		return -EINVAL;
	}
	if (b->_arrived + 1 == b->_count) {
		b->_arrived = 0;
		struct zio__waiter *list = wq_claim_all_counting(&b->_q, 0, &b->_leaving);
		sunlock(&b->_lock);
		waiters_release(list);
		return ZIO_BARRIER_SERIAL;
	}
	if (deadline == 0) {
		sunlock(&b->_lock);
		return -EAGAIN;
	}
	b->_arrived++;
	struct zio__waiter w;
	waiter_prepare(&w, zio__parker_self(), 0);
	wq_push(&b->_q, &w);
	sunlock(&b->_lock);
	int r = sync_wait(&w, deadline);
	if (r >= 0)
		return 0;
	slock(&b->_lock);
	if (wq_remove(&b->_q, &w)) {
		b->_arrived--;
	} else {
		r = 0; /* the round completed with us in it */
		b->_leaving--;
	}
	sunlock(&b->_lock);
	return r;
}

ZIO_API int zio_barrier_wait(zio_barrier *b)
{
	return barrier_wait(b, ZIO_FOREVER);
}

ZIO_API int zio_barrier_wait_until(zio_barrier *b, int64_t deadline)
{
	return barrier_wait(b, deadline);
}

/* -------------------------------------------------------------- wait group */

#define WG_QLOCK ((uint64_t)ZIO__WG_QLOCK)
#define WG_WAITERS 2u
#define WG_ONE 4u
#define WG_COUNT(s) ((int64_t)((s) >> 2))
#define WG_MAX (INT64_MAX >> 2)

static inline bool cas64(uint64_t *state, uint64_t *s, uint64_t n, int order)
{
	return __atomic_compare_exchange_n(state, s, n, true, order, __ATOMIC_RELAXED);
}

ZIO_API int zio_waitgroup_add(zio_waitgroup *wg, int64_t delta)
{
	unsigned spins = 0;
	uint64_t s = __atomic_load_n(&wg->_state, __ATOMIC_RELAXED);
	for (;;) {
		int64_t c = WG_COUNT(s);
		if ((delta < 0 && c + delta < 0) || (delta > 0 && c > WG_MAX - delta))
			return -EINVAL;
		uint64_t n = ((uint64_t)(c + delta) << 2) | (s & (WG_WAITERS | WG_QLOCK));
		if (c + delta != 0 || !(s & WG_WAITERS)) {
			/* Nobody to wake: this CAS is our last access. */
			if (cas64(&wg->_state, &s, n, __ATOMIC_ACQ_REL))
				return 0;
			continue;
		}
		/* To zero with waiters: take the queue lock in the same step. */
		if (s & WG_QLOCK) {
			backoff(&spins);
			s = __atomic_load_n(&wg->_state, __ATOMIC_RELAXED);
			continue;
		}
		if (cas64(&wg->_state, &s, n | WG_QLOCK, __ATOMIC_ACQ_REL))
			break;
	}
	struct zio__waiter *list = wq_claim_all(&wg->_q, 0);
	/* Waiters cannot queue while we hold the lock, and the count is 0:
	 * clear everything in the one store that drops the lock. */
	__atomic_fetch_and(&wg->_state, ~(WG_QLOCK | WG_WAITERS), __ATOMIC_RELEASE);
	waiters_release(list);
	return 0;
}

ZIO_API int zio_waitgroup_done(zio_waitgroup *wg)
{
	return zio_waitgroup_add(wg, -1);
}

static int wg_wait(zio_waitgroup *wg, int64_t deadline)
{
	unsigned spins = 0;
	uint64_t s = __atomic_load_n(&wg->_state, __ATOMIC_ACQUIRE);
	for (;;) {
		/* Zero and nobody inside the lock: the last done() has fully
		 * returned from our object, so the caller may free it. */
		if (WG_COUNT(s) == 0 && !(s & WG_QLOCK))
			return 0;
		if (s & WG_QLOCK) {
			backoff(&spins);
			s = __atomic_load_n(&wg->_state, __ATOMIC_ACQUIRE);
			continue;
		}
		if (deadline == 0)
			return -EAGAIN;
		/* Acquire on failure too: the value it loads may be the last
		 * done()'s zero, which the check above returns on. */
		if (__atomic_compare_exchange_n(&wg->_state, &s, s | WG_QLOCK | WG_WAITERS, true,
						__ATOMIC_ACQUIRE, __ATOMIC_ACQUIRE))
			break;
	}
	struct zio__waiter w;
	waiter_prepare(&w, zio__parker_self(), 0);
	wq_push(&wg->_q, &w);
	wunlock64(&wg->_state, WG_QLOCK);
	int r = sync_wait(&w, deadline);
	if (r >= 0)
		return 0;
	wlock64(&wg->_state, WG_QLOCK);
	wq_remove(&wg->_q, &w);
	__atomic_fetch_and(&wg->_state, ~(WG_QLOCK | (wq_empty(&wg->_q) ? WG_WAITERS : 0)),
			   __ATOMIC_RELEASE);
	return r;
}

ZIO_API int zio_waitgroup_wait(zio_waitgroup *wg)
{
	return wg_wait(wg, ZIO_FOREVER);
}

ZIO_API int zio_waitgroup_wait_until(zio_waitgroup *wg, int64_t deadline)
{
	return wg_wait(wg, deadline);
}

/* -------------------------------------------------------------------- once */

#define ONCE_NEW 0u
#define ONCE_RUNNING 1u
#define ONCE_DONE 2u
#define ONCE_PHASE 3u
#define ONCE_WAITERS 4u
#define ONCE_QLOCK ZIO__ONCE_QLOCK

static void once_finish(zio_once *o)
{
	unsigned spins = 0;
	unsigned s = __atomic_load_n(&o->_state, __ATOMIC_RELAXED);
	for (;;) {
		if (!(s & ONCE_WAITERS)) {
			/* Nobody queued: publishing done is our last access. */
			if (__atomic_compare_exchange_n(&o->_state, &s, (s & ONCE_QLOCK) | ONCE_DONE,
							true, __ATOMIC_RELEASE, __ATOMIC_RELAXED))
				return;
			continue;
		}
		if (s & ONCE_QLOCK) {
			backoff(&spins);
			s = __atomic_load_n(&o->_state, __ATOMIC_RELAXED);
			continue;
		}
		if (__atomic_compare_exchange_n(&o->_state, &s, s | ONCE_QLOCK, true, __ATOMIC_ACQUIRE,
						__ATOMIC_RELAXED))
			break;
	}
	struct zio__waiter *list = wq_claim_all(&o->_q, 0);
	__atomic_store_n(&o->_state, ONCE_DONE, __ATOMIC_RELEASE);
	waiters_release(list);
}

ZIO_API int zio_once_call(zio_once *o, void (*fn)(void *), void *arg)
{
	unsigned s = __atomic_load_n(&o->_state, __ATOMIC_ACQUIRE);
	if (zio__likely((s & ONCE_PHASE) == ONCE_DONE))
		return 0;
	unsigned spins = 0;
	for (;;) {
		if ((s & ONCE_PHASE) == ONCE_DONE)
			return 0;
		if ((s & ONCE_PHASE) == ONCE_NEW) {
			if (__atomic_compare_exchange_n(&o->_state, &s, s | ONCE_RUNNING, true,
							__ATOMIC_ACQUIRE, __ATOMIC_ACQUIRE)) {
				fn(arg);
				once_finish(o);
				return 0;
			}
			continue;
		}
		if (s & ONCE_QLOCK) {
			backoff(&spins);
			s = __atomic_load_n(&o->_state, __ATOMIC_ACQUIRE);
			continue;
		}
		if (__atomic_compare_exchange_n(&o->_state, &s, s | ONCE_QLOCK | ONCE_WAITERS, true,
						__ATOMIC_ACQUIRE, __ATOMIC_ACQUIRE))
			break;
	}
	struct zio__waiter w;
	waiter_prepare(&w, zio__parker_self(), 0);
	wq_push(&o->_q, &w);
	wunlock(&o->_state, ONCE_QLOCK);
	int r = sync_wait(&w, ZIO_FOREVER);
	if (r >= 0)
		return 0;
	wlock(&o->_state, ONCE_QLOCK);
	wq_remove(&o->_q, &w);
	__atomic_fetch_and(&o->_state, ~(ONCE_QLOCK | (wq_empty(&o->_q) ? ONCE_WAITERS : 0)),
			   __ATOMIC_RELEASE);
	return r;
}
