/*
 * event.c - zio_event (manual- and auto-reset) and zio_notify.
 *
 * Event. State word: SET and QLOCK (the spin lock over the waiter FIFO).
 * Manual-reset: set() wakes every waiter and raises SET; waits return at
 * once while it is raised, until reset(). Auto-reset: set() wakes the
 * oldest waiter and leaves SET down, or raises it if nobody waits; a wait
 * that finds it raised lowers it (one CAS), so each set() lets exactly one
 * wait through. A claim that loses to a timeout or cancel passes to the
 * next waiter, and with nobody left SET is raised instead: a set() is
 * never lost.
 *
 * Notify. Like an auto-reset event whose set() is signal() (SET is then
 * the stored permit), plus broadcast(), which wakes the current waiters
 * and leaves no permit.
 *
 * Waiters check SET and queue under QLOCK; set() claims waiters under
 * QLOCK and raises SET in the same atomic step that drops it, its last
 * access to the object: a task that sees SET on the fast path may free
 * the event at once.
 */
#include "sync_impl.h"

#define SET 1u
#define QLOCK ZIO__EVENT_QLOCK

ZIO_API int zio_event_init(zio_event *e, unsigned flags)
{
	if (!e || (flags & ~ZIO_EVENT_AUTO_RESET))
		return -EINVAL;
	memset(e, 0, sizeof(*e));
	e->_flags = flags;
	return 0;
}

/* Drops QLOCK, raising SET if raise; then releases the claimed waiters. */
static void unlock_release(unsigned *state, bool raise, struct zio__waiter *list)
{
	unsigned s = __atomic_load_n(state, __ATOMIC_RELAXED);
	while (!__atomic_compare_exchange_n(state, &s, (s & ~QLOCK) | (raise ? SET : 0), true,
					    __ATOMIC_RELEASE, __ATOMIC_RELAXED))
		;
	waiters_release(list);
}

/* Wakes one waiter or, with none, leaves the flag raised. */
static void set_one(unsigned *state, struct zio__wq *q)
{
	wlock(state, QLOCK);
	struct zio__waiter *w = wq_claim_one(q, 0);
	unlock_release(state, w == NULL, w);
}

ZIO_API void zio_event_set(zio_event *e)
{
	if (e->_flags & ZIO_EVENT_AUTO_RESET) {
		set_one(&e->_state, &e->_q);
		return;
	}
	if (__atomic_load_n(&e->_state, __ATOMIC_ACQUIRE) & SET)
		return; /* already set: nobody can be waiting */
	wlock(&e->_state, QLOCK);
	unlock_release(&e->_state, true, wq_claim_all(&e->_q, 0));
}

ZIO_API void zio_event_reset(zio_event *e)
{
	__atomic_fetch_and(&e->_state, ~SET, __ATOMIC_RELAXED);
}

ZIO_API bool zio_event_is_set(zio_event *e)
{
	return __atomic_load_n(&e->_state, __ATOMIC_ACQUIRE) & SET;
}

/* Takes SET if raised: lowers it when consume (auto-reset, permit). */
static inline bool flag_take(unsigned *state, bool consume)
{
	unsigned s = __atomic_load_n(state, __ATOMIC_ACQUIRE);
	if (!consume)
		return s & SET;
	while (s & SET)
		if (__atomic_compare_exchange_n(state, &s, s & ~SET, true, __ATOMIC_ACQUIRE,
						__ATOMIC_RELAXED))
			return true;
	return false;
}

/* Waits on a flag/queue pair; shared by events and notify. */
static int flag_wait(unsigned *state, struct zio__wq *q, bool consume, int64_t deadline)
{
	if (flag_take(state, consume))
		return 0;
	if (deadline == 0)
		return -EAGAIN;
	struct zio__parker *p = zio__parker_self();
	wlock(state, QLOCK);
	if (flag_take(state, consume)) {
		wunlock(state, QLOCK);
		return 0;
	}
	struct zio__waiter w;
	waiter_prepare(&w, p, 0);
	wq_push(q, &w);
	wunlock(state, QLOCK);
	int r = sync_wait(&w, deadline);
	if (r >= 0)
		return 0;
	wlock(state, QLOCK);
	wq_remove(q, &w);
	wunlock(state, QLOCK);
	return r;
}

ZIO_API int zio_event_wait(zio_event *e)
{
	return flag_wait(&e->_state, &e->_q, e->_flags & ZIO_EVENT_AUTO_RESET, ZIO_FOREVER);
}

ZIO_API int zio_event_wait_until(zio_event *e, int64_t deadline)
{
	return flag_wait(&e->_state, &e->_q, e->_flags & ZIO_EVENT_AUTO_RESET, deadline);
}

/* ------------------------------------------------------------------ notify */

ZIO_API void zio_notify_signal(zio_notify *n)
{
	set_one(&n->_state, &n->_q);
}

ZIO_API void zio_notify_broadcast(zio_notify *n)
{
	wlock(&n->_state, QLOCK);
	unlock_release(&n->_state, false, wq_claim_all(&n->_q, 0));
}

ZIO_API int zio_notify_wait(zio_notify *n)
{
	return flag_wait(&n->_state, &n->_q, true, ZIO_FOREVER);
}

ZIO_API int zio_notify_wait_until(zio_notify *n, int64_t deadline)
{
	return flag_wait(&n->_state, &n->_q, true, deadline);
}
