/*
 * mutex.c - zio_mutex (normal, recursive, error-checking) and zio_cond.
 *
 * Mutex. One state word: LOCKED, WAITERS (the queue may be non-empty, so
 * unlock must look at it), WOKEN (a waiter has been woken to retry and
 * has not yet done so) and QLOCK, the spin lock over the waiter queue.
 * Uncontended, lock is one CAS 0 -> LOCKED and unlock one CAS LOCKED -> 0;
 * anything else takes the slow paths below. An unlock that wakes someone
 * ends with a single CAS that drops QLOCK and publishes the new state: it
 * does not touch the mutex after the lock can be taken again, so the next
 * owner may destroy it immediately, as POSIX allows.
 *
 * Fairness is barging with a starvation bound (like Go's sync.Mutex): an
 * unlock that finds waiters clears LOCKED and wakes the oldest waiter to
 * *retry*; whoever CASes LOCKED first wins, usually the task that is
 * already running, which is what keeps a contended lock from forcing a
 * context switch per critical section (a lock convoy). A woken waiter that
 * loses goes back to the head of the queue keeping its arrival time, and
 * once the head has waited ZIO_MUTEX_STARVE_NS the unlock hands it the
 * lock directly (LOCKED never clears), so nobody waits much longer than
 * that for a lock that is released regularly. While a woken waiter is on
 * its way (WOKEN), unlocks wake nobody else: one retrying waiter at a time.
 *
 * Waiters queue in mutex->_q under QLOCK and park through wait.c (see
 * sync_impl.h for the wake protocol). A waiter that times out or is
 * cancelled unlinks itself; a claim that lost to it moves on to the next
 * waiter. OS threads outside the runtime are waiters like
 * any other: they sleep on their parker's futex.
 *
 * Recursive and error-checking mutexes record their owner (the owner's
 * parker, which identifies a task or a thread) and take the same paths.
 *
 * Condition. A FIFO of waiters under its own spin word. wait() queues
 * itself *before* it releases the mutex, so a signal sent after that
 * release, with or without the mutex held, finds it. A woken, timed-out or
 * cancelled waiter re-acquires the mutex without being cancellable (like
 * pthread) before it returns. broadcast wakes everyone (no requeueing onto
 * the mutex: woken tasks simply contend for it). Woken waiters never touch
 * the condition again, so it may be destroyed once broadcast returns; a
 * waiter that timed out or was cancelled as a signal or broadcast popped
 * it still takes the condition's lock to leave, and is counted in
 * `_leaving` until it has: destroy() waits for those (as the barrier's).
 */
#include "sync_impl.h"

#include <limits.h>
#include <time.h>

_Static_assert(sizeof(zio_mutex) <= sizeof(pthread_mutex_t), "zio_mutex must fit pthread_mutex_t");
_Static_assert(sizeof(zio_cond) <= sizeof(pthread_cond_t), "zio_cond must fit pthread_cond_t");
_Static_assert(_Alignof(zio_mutex) <= _Alignof(pthread_mutex_t), "zio_mutex alignment");
_Static_assert(_Alignof(zio_cond) <= _Alignof(pthread_cond_t), "zio_cond alignment");
#if defined(__x86_64__)
_Static_assert(sizeof(zio_mutex) <= 40 && sizeof(zio_cond) <= 48, "x86_64 pthread sizes");
/* The shim overlays PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP and friends. */
_Static_assert(offsetof(zio_mutex, _kind) == 16, "glibc __kind offset");
#endif

#define LOCKED 1u
#define WAITERS 2u
#define WOKEN 4u
#define QLOCK ZIO__MUTEX_QLOCK /* guards _q */

/* Claim values a waiter is woken with. */
#define RETRY 0
#define HANDOFF 1

struct mutex_waiter {
	struct zio__waiter w;
	int64_t since; /* first queued: the starvation clock */
};

static inline bool tracks_owner(int kind)
{
	kind &= 3; /* 3 is glibc's ADAPTIVE: a normal mutex */
	return kind == ZIO_MUTEX_RECURSIVE || kind == ZIO_MUTEX_ERRORCHECK;
}

static inline bool cas(unsigned *state, unsigned *s, unsigned n, int order)
{
	return __atomic_compare_exchange_n(state, s, n, true, order, __ATOMIC_RELAXED);
}

ZIO_API int zio_mutex_init(zio_mutex *m, int kind)
{
	if (!m || kind < ZIO_MUTEX_NORMAL || kind > ZIO_MUTEX_ERRORCHECK)
		return -EINVAL;
	memset(m, 0, sizeof(*m));
	m->_kind = kind;
	return 0;
}

ZIO_API int zio_mutex_destroy(zio_mutex *m)
{
	if (!m)
		return -EINVAL;
	/* Taking the queue lock also waits out a waiter still unlinking. A
	 * waiter woken to retry (WOKEN) is in neither the lock nor the queue
	 * but will touch the mutex: it is still a waiter. */
	unsigned s = wlock(&m->_state, QLOCK);
	bool busy = (s & (LOCKED | WOKEN)) || !wq_empty(&m->_q);
	wunlock(&m->_state, QLOCK);
	return busy ? -EBUSY : 0;
}

/* --------------------------------------------------------------- locking */

__attribute__((noinline)) static int lock_slow(zio_mutex *m, int64_t deadline, unsigned flags)
{
	struct zio__parker *p = NULL;
	struct mutex_waiter mw;
	int64_t since = 0;
	bool requeue = false;
	unsigned spins = 0;
	unsigned s = __atomic_load_n(&m->_state, __ATOMIC_RELAXED);
	for (;;) {
		/* Barge: free is free, waiters or not. */
		if (!(s & LOCKED)) {
			if (cas(&m->_state, &s, s | LOCKED, __ATOMIC_ACQUIRE))
				return 0;
			continue;
		}
		if (deadline == 0)
			return -EAGAIN;
		if (s & QLOCK) {
			backoff(&spins);
			s = __atomic_load_n(&m->_state, __ATOMIC_RELAXED);
			continue;
		}
		/* Take the queue lock and announce a waiter in one step, while
		 * LOCKED is seen set: the owner's unlock then has to come
		 * through the queue lock and will find us queued. */
		if (!cas(&m->_state, &s, s | QLOCK | WAITERS, __ATOMIC_ACQUIRE))
			continue;
		if (!p)
			p = zio__parker_self();
		if (!since)
			since = zio__now();
		mw.since = since;
		waiter_prepare(&mw.w, p, flags);
		if (requeue)
			wq_push_front(&m->_q, &mw.w);
		else
			wq_push(&m->_q, &mw.w);
		wunlock(&m->_state, QLOCK);

		int r = sync_wait(&mw.w, deadline);
		if (r == HANDOFF)
			return 0; /* LOCKED never cleared: it is ours */
		if (r == RETRY) {
			s = __atomic_and_fetch(&m->_state, ~WOKEN, __ATOMIC_RELAXED);
			requeue = true;
			continue;
		}
		/* Timed out or cancelled. If an unlock popped us and lost the
		 * claim, it went on to the next waiter itself. */
		wlock(&m->_state, QLOCK);
		wq_remove(&m->_q, &mw.w);
		__atomic_fetch_and(&m->_state, ~(QLOCK | (wq_empty(&m->_q) ? WAITERS : 0)),
				   __ATOMIC_RELEASE);
		return r;
	}
}

static inline int lock_plain(zio_mutex *m, int64_t deadline, unsigned flags)
{
	unsigned s = 0;
	if (zio__likely(__atomic_compare_exchange_n(&m->_state, &s, LOCKED, false, __ATOMIC_ACQUIRE,
						    __ATOMIC_RELAXED)))
		return 0;
	return lock_slow(m, deadline, flags);
}

__attribute__((noinline)) static int lock_owned(zio_mutex *m, int64_t deadline, unsigned flags)
{
	void *me = zio__parker_self();
	if (__atomic_load_n(&m->_owner, __ATOMIC_RELAXED) == me) {
		if ((m->_kind & 3) == ZIO_MUTEX_ERRORCHECK)
			return deadline == 0 ? -EAGAIN : -EDEADLK;
		if (m->_count == UINT_MAX)
			return -EAGAIN;
		m->_count++;
		return 0;
	}
	int r = lock_plain(m, deadline, flags);
	if (r == 0)
		__atomic_store_n(&m->_owner, me, __ATOMIC_RELAXED);
	return r;
}

static inline int lock(zio_mutex *m, int64_t deadline, unsigned flags)
{
	if (zio__unlikely(tracks_owner(m->_kind)))
		return lock_owned(m, deadline, flags);
	return lock_plain(m, deadline, flags);
}

ZIO_API int zio_mutex_lock(zio_mutex *m)
{
	return lock(m, ZIO_FOREVER, 0);
}

ZIO_API int zio_mutex_lock_until(zio_mutex *m, int64_t deadline)
{
	return lock(m, deadline, 0);
}

ZIO_API int zio_mutex_lock_nocancel(zio_mutex *m)
{
	return lock(m, ZIO_FOREVER, ZIO__PARK_NOCANCEL);
}

ZIO_API int zio_mutex_trylock(zio_mutex *m)
{
	return lock(m, 0, 0);
}

/* ------------------------------------------------------------- unlocking */

__attribute__((noinline)) static int unlock_slow(zio_mutex *m, unsigned s)
{
	unsigned spins = 0;
	for (;;) {
		if (!(s & LOCKED))
			return -EPERM;
		/* Nobody queued, or a woken waiter is already coming to retry:
		 * just release. */
		if ((s & (WAITERS | WOKEN)) != WAITERS) {
			if (cas(&m->_state, &s, s & ~LOCKED, __ATOMIC_RELEASE))
				return 0;
			continue;
		}
		if (s & QLOCK) {
			backoff(&spins);
			s = __atomic_load_n(&m->_state, __ATOMIC_RELAXED);
			continue;
		}
		if (cas(&m->_state, &s, s | QLOCK, __ATOMIC_ACQUIRE))
			break;
	}

	struct zio__waiter *w;
	bool handoff = false;
	int64_t now = 0;
	while ((w = wq_pop(&m->_q))) {
		struct mutex_waiter *mw = zio__container_of(w, struct mutex_waiter, w);
		if (!now)
			now = zio__now();
		handoff = now - mw->since >= ZIO_MUTEX_STARVE_NS;
		if (zio__unpark(w->parker, w->gen, handoff ? HANDOFF : RETRY))
			break;
	}
	/* One atomic step publishes the outcome and drops the queue lock: the
	 * mutex is not touched after it (a task that takes the lock next may
	 * free it at once). LOCKED is still set, so nobody barged in. */
	unsigned clear = QLOCK | (wq_empty(&m->_q) ? WAITERS : 0);
	s = __atomic_load_n(&m->_state, __ATOMIC_RELAXED);
	for (;;) {
		unsigned n;
		if (!w)
			n = s & ~(LOCKED | WAITERS | QLOCK); /* nobody left to wake */
		else if (handoff)
			n = s & ~clear;                      /* stays LOCKED: w owns it */
		else
			n = (s & ~(LOCKED | clear)) | WOKEN;  /* w retries */
		if (cas(&m->_state, &s, n, __ATOMIC_RELEASE))
			break;
	}
	if (w)
		waiter_release(w);
	return 0;
}

static inline int unlock_plain(zio_mutex *m)
{
	unsigned s = LOCKED;
	if (zio__likely(__atomic_compare_exchange_n(&m->_state, &s, 0, false, __ATOMIC_RELEASE,
						    __ATOMIC_RELAXED)))
		return 0;
	return unlock_slow(m, s);
}

__attribute__((noinline)) static int unlock_owned(zio_mutex *m)
{
	if (__atomic_load_n(&m->_owner, __ATOMIC_RELAXED) != zio__parker_self())
		return -EPERM;
	if (m->_count > 0) {
		m->_count--;
		return 0;
	}
	__atomic_store_n(&m->_owner, NULL, __ATOMIC_RELAXED);
	return unlock_plain(m);
}

ZIO_API int zio_mutex_unlock(zio_mutex *m)
{
	if (zio__unlikely(tracks_owner(m->_kind)))
		return unlock_owned(m);
	return unlock_plain(m);
}

/* ------------------------------------------------------------- condition */

_Static_assert(CLOCK_REALTIME == 0, "a zeroed zio_cond must mean CLOCK_REALTIME");

static bool clock_ok(clockid_t clock)
{
	return clock == CLOCK_REALTIME || clock == CLOCK_MONOTONIC;
}

ZIO_API int zio_cond_init(zio_cond *c, clockid_t clock)
{
	if (!c || !clock_ok(clock))
		return -EINVAL;
	memset(c, 0, sizeof(*c));
	c->_clock = (int)clock;
	return 0;
}

ZIO_API int zio_cond_destroy(zio_cond *c)
{
	if (!c)
		return -EINVAL;
	return destroy_when_left(&c->_lock, &c->_q, &c->_leaving);
}

static int cond_wait(zio_cond *c, zio_mutex *m, int64_t deadline)
{
	struct zio__parker *p = zio__parker_self();
	bool owned = tracks_owner(m->_kind);
	unsigned count = 0;
	if (owned) {
		if (__atomic_load_n(&m->_owner, __ATOMIC_RELAXED) != p)
			return -EPERM;
		/* Recursive: give up every level, take them all back after. */
		count = m->_count;
		m->_count = 0;
		__atomic_store_n(&m->_owner, NULL, __ATOMIC_RELAXED);
	} else if (!(__atomic_load_n(&m->_state, __ATOMIC_RELAXED) & LOCKED)) {
		return -EPERM; /* checked before the wait is armed: see sync_impl.h */
	}

	struct zio__waiter w;
	slock(&c->_lock);
	waiter_prepare(&w, p, 0);
	wq_push(&c->_q, &w);
	sunlock(&c->_lock);

	int err = unlock_plain(m);
	zio__check(err == 0); /* the caller did not hold m */

	int r = sync_wait(&w, deadline);
	if (r >= 0) {
		r = 0;
	} else {
		slock(&c->_lock);
		if (!wq_remove(&c->_q, &w))
			c->_leaving--; /* a waker popped us and counted us */
		sunlock(&c->_lock);
	}

	lock_plain(m, ZIO_FOREVER, ZIO__PARK_NOCANCEL);
	if (owned) {
		__atomic_store_n(&m->_owner, p, __ATOMIC_RELAXED);
		m->_count = count;
	}
	return r;
}

ZIO_API int zio_cond_wait(zio_cond *c, zio_mutex *m)
{
	return cond_wait(c, m, ZIO_FOREVER);
}

ZIO_API int zio_cond_wait_until(zio_cond *c, zio_mutex *m, int64_t deadline)
{
	return cond_wait(c, m, deadline);
}

ZIO_API int zio_cond_clockwait(zio_cond *c, zio_mutex *m, clockid_t clock, int64_t abs_ns)
{
	if (!clock_ok(clock) || abs_ns < 0)
		return -EINVAL;
	int64_t deadline = abs_ns;
	if (clock != CLOCK_MONOTONIC) {
		struct timespec ts;
		clock_gettime(clock, &ts);
		int64_t left = abs_ns - ((int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec);
		int64_t now = zio__now();
		deadline = left <= 0 ? now : (left > INT64_MAX - now ? INT64_MAX : now + left);
	}
	return cond_wait(c, m, deadline);
}

ZIO_API int zio_cond_timedwait(zio_cond *c, zio_mutex *m, int64_t abs_ns)
{
	return zio_cond_clockwait(c, m, (clockid_t)c->_clock, abs_ns);
}

ZIO_API int zio_cond_signal(zio_cond *c)
{
	slock(&c->_lock);
	struct zio__waiter *w = wq_claim_one_counting(&c->_q, 0, &c->_leaving);
	sunlock(&c->_lock);
	if (w)
		waiter_release(w);
	return 0;
}

ZIO_API int zio_cond_broadcast(zio_cond *c)
{
	slock(&c->_lock);
	struct zio__waiter *list = wq_claim_all_counting(&c->_q, 0, &c->_leaving);
	sunlock(&c->_lock);
	waiters_release(list);
	return 0;
}
