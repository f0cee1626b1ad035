/*
 * sem.c - zio_sem: counting semaphore.
 *
 * State word (64 bits, so the value can reach INT_MAX like glibc's):
 * value << 2 | WAITERS | QLOCK, the spin lock over the waiter queue.
 * Uncontended, wait is one CAS taking a unit and post one CAS adding one. When tasks wait, post hands its unit
 * straight to the oldest waiter instead of adding it to the value: the
 * value only grows when nobody waits, so an arriving task can never take a
 * unit that a waiter is owed (strict FIFO, no barging). A claim that loses
 * to a timeout or cancel goes to the next waiter, and with none left the
 * unit is added to the value: posts are never lost.
 *
 * A post's last access to the semaphore is the CAS that makes its unit
 * visible (or drops QLOCK after handing it over), so the semaphore may be
 * destroyed as soon as any waiter returns, which is what sem_destroy()
 * promises (glibc bug 12674).
 */
#include "sync_impl.h"

#include <semaphore.h>

_Static_assert(sizeof(zio_sem) <= sizeof(sem_t), "zio_sem must fit sem_t");
_Static_assert(_Alignof(zio_sem) <= _Alignof(sem_t), "zio_sem alignment");
#if defined(__x86_64__)
_Static_assert(sizeof(zio_sem) <= 32, "x86_64 sem_t size");
#endif

#define QLOCK ((uint64_t)ZIO__SEM_QLOCK)
#define WAITERS 2u
#define UNIT 4u
#define VALUE(s) ((s) >> 2)

static inline bool cas(uint64_t *state, uint64_t *s, uint64_t n, int order)
{
	return __atomic_compare_exchange_n(state, s, n, true, order, __ATOMIC_RELAXED);
}

ZIO_API int zio_sem_init(zio_sem *s, unsigned value)
{
	if (!s || value > ZIO_SEM_VALUE_MAX)
		return -EINVAL;
	memset(s, 0, sizeof(*s));
	s->_state = (uint64_t)value << 2;
	return 0;
}

ZIO_API int zio_sem_destroy(zio_sem *s)
{
	if (!s)
		return -EINVAL;
	wlock64(&s->_state, QLOCK);
	bool busy = !wq_empty(&s->_q);
	wunlock64(&s->_state, QLOCK);
	return busy ? -EBUSY : 0;
}

__attribute__((noinline)) static int wait_slow(zio_sem *sem, int64_t deadline)
{
	unsigned spins = 0;
	uint64_t s = __atomic_load_n(&sem->_state, __ATOMIC_RELAXED);
	for (;;) {
		if (VALUE(s) > 0) {
			if (cas(&sem->_state, &s, s - UNIT, __ATOMIC_ACQUIRE))
				return 0;
			continue;
		}
		if (deadline == 0)
			return -EAGAIN;
		if (s & QLOCK) {
			backoff(&spins);
			s = __atomic_load_n(&sem->_state, __ATOMIC_RELAXED);
			continue;
		}
		/* Queue lock and WAITERS together, seen at value 0: from now
		 * on posts come through the queue. */
		if (cas(&sem->_state, &s, s | QLOCK | WAITERS, __ATOMIC_ACQUIRE))
			break;
	}
	struct zio__waiter w;
	waiter_prepare(&w, zio__parker_self(), 0);
	wq_push(&sem->_q, &w);
	wunlock64(&sem->_state, QLOCK);
	int r = sync_wait(&w, deadline);
	if (r >= 0)
		return 0; /* the poster's unit is ours */
	wlock64(&sem->_state, QLOCK);
	wq_remove(&sem->_q, &w);
	__atomic_fetch_and(&sem->_state, ~(QLOCK | (wq_empty(&sem->_q) ? WAITERS : 0)),
			   __ATOMIC_RELEASE);
	return r;
}

static inline int sem_wait_(zio_sem *sem, int64_t deadline)
{
	uint64_t s = __atomic_load_n(&sem->_state, __ATOMIC_RELAXED);
	if (zio__likely(VALUE(s) > 0) && cas(&sem->_state, &s, s - UNIT, __ATOMIC_ACQUIRE))
		return 0;
	return wait_slow(sem, deadline);
}

ZIO_API int zio_sem_wait(zio_sem *s)
{
	return sem_wait_(s, ZIO_FOREVER);
}

ZIO_API int zio_sem_wait_until(zio_sem *s, int64_t deadline)
{
	return sem_wait_(s, deadline);
}

ZIO_API int zio_sem_trywait(zio_sem *s)
{
	return sem_wait_(s, 0);
}

ZIO_API int zio_sem_post(zio_sem *sem)
{
	unsigned spins = 0;
	uint64_t s = __atomic_load_n(&sem->_state, __ATOMIC_RELAXED);
	for (;;) {
		if (!(s & WAITERS)) {
			if (zio__unlikely(VALUE(s) >= ZIO_SEM_VALUE_MAX))
				return -EOVERFLOW;
			if (cas(&sem->_state, &s, s + UNIT, __ATOMIC_RELEASE))
				return 0;
			continue;
		}
		if (s & QLOCK) {
			backoff(&spins);
			s = __atomic_load_n(&sem->_state, __ATOMIC_RELAXED);
			continue;
		}
		if (cas(&sem->_state, &s, s | QLOCK, __ATOMIC_ACQUIRE))
			break;
	}
	/* Hand the unit to the oldest waiter that takes it; with none left,
	 * add it to the value. Either way one CAS publishes the result and
	 * drops the queue lock, after which the semaphore is not touched. */
	struct zio__waiter *w = wq_claim_one(&sem->_q, 0);
	s = __atomic_load_n(&sem->_state, __ATOMIC_RELAXED);
	for (;;) {
		uint64_t n = s & ~QLOCK;
		if (wq_empty(&sem->_q))
			n &= ~(uint64_t)WAITERS;
		if (!w)
			n += UNIT; /* value was 0: waiters were queued */
		if (cas(&sem->_state, &s, n, __ATOMIC_RELEASE))
			break;
	}
	if (w)
		waiter_release(w);
	return 0;
}

ZIO_API int zio_sem_value(zio_sem *s)
{
	return (int)VALUE(__atomic_load_n(&s->_state, __ATOMIC_RELAXED));
}
