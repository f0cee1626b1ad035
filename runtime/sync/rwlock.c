/*
 * rwlock.c - zio_rwlock: shared/exclusive lock, writer preference.
 *
 * State word: WRITER (held exclusively), W_WAITING (the writer queue may be
 * non-empty), R_WAITING (the reader queue may be non-empty), QLOCK (the
 * spin lock over both queues) and the number of readers in the bits above.
 * Uncontended, rdlock is one CAS adding a reader, wrlock one CAS
 * 0 -> WRITER, and the unlocks one atomic each.
 *
 * Writer preference: a reader does not enter while a writer holds the lock
 * or waits for it (W_WAITING), so a stream of readers cannot starve a
 * writer. With ZIO_RWLOCK_PREFER_READER only a held write lock stops a
 * reader (glibc's default: recursive read locking cannot deadlock, writers
 * can starve).
 *
 * Waiters are handed the lock directly: whoever releases it last (the
 * writer, the last reader, or a waiting writer that gives up) runs
 * dispatch() under QLOCK, which gives it to the oldest waiting writer if
 * there are no readers, else to every waiting reader at once (unless
 * writers wait and readers are not preferred). The handed-over state is
 * written before the claim and undone if the claim loses to a timeout or
 * cancel, so a woken waiter already owns what it was given. Both queues are
 * FIFO, and a writer never takes the lock ahead of a queued one.
 *
 * While QLOCK is held no fast path can take the lock (readers treat QLOCK
 * as blocking, writers need the word to be 0), so dropping QLOCK is the
 * dispatcher's last access: whoever takes the lock next may destroy it.
 */
#include "sync_impl.h"

_Static_assert(sizeof(zio_rwlock) <= sizeof(pthread_rwlock_t), "zio_rwlock must fit pthread_rwlock_t");
_Static_assert(_Alignof(zio_rwlock) <= _Alignof(pthread_rwlock_t), "zio_rwlock alignment");
#if defined(__x86_64__)
_Static_assert(sizeof(zio_rwlock) <= 56, "x86_64 pthread_rwlock_t size");
#endif

#define WRITER 1u
#define W_WAITING 2u
#define R_WAITING 4u
#define QLOCK ZIO__RWLOCK_QLOCK
#define READER 16u
#define READERS(s) ((s) >> 4)
#define MAX_READERS (UINT32_MAX >> 4)

static inline bool cas(unsigned *state, unsigned *s, unsigned n, int order)
{
	return __atomic_compare_exchange_n(state, s, n, true, order, __ATOMIC_RELAXED);
}

ZIO_API int zio_rwlock_init(zio_rwlock *rw, unsigned flags)
{
	if (!rw || (flags & ~ZIO_RWLOCK_PREFER_READER))
		return -EINVAL;
	memset(rw, 0, sizeof(*rw));
	rw->_flags = flags;
	return 0;
}

ZIO_API int zio_rwlock_destroy(zio_rwlock *rw)
{
	if (!rw)
		return -EINVAL;
	unsigned s = wlock(&rw->_state, QLOCK);
	bool busy = (s & ~QLOCK) != 0 || !wq_empty(&rw->_rq) || !wq_empty(&rw->_wq);
	wunlock(&rw->_state, QLOCK);
	return busy ? -EBUSY : 0;
}

/* What keeps a reader out. */
static inline unsigned reader_block(const zio_rwlock *rw)
{
	return (rw->_flags & ZIO_RWLOCK_PREFER_READER) ? WRITER | QLOCK : WRITER | W_WAITING | QLOCK;
}

/*
 * The lock may have become available: hand it to waiters. Called with
 * QLOCK held; returns the claimed waiters, to be released after QLOCK is
 * dropped.
 */
static struct zio__waiter *dispatch(zio_rwlock *rw)
{
	struct zio__waiter *list = NULL, *w;
	bool prefer_reader = rw->_flags & ZIO_RWLOCK_PREFER_READER;
	for (;;) {
		unsigned s = __atomic_load_n(&rw->_state, __ATOMIC_RELAXED);
		if (s & WRITER)
			return list;
		if (!wq_empty(&rw->_wq) && READERS(s) == 0) {
			/* Taken for the writer before its claim; readers cannot
			 * enter meanwhile (QLOCK). */
			if (!cas(&rw->_state, &s, s | WRITER, __ATOMIC_ACQUIRE))
				continue;
			while ((w = wq_pop(&rw->_wq))) {
				if (zio__unpark(w->parker, w->gen, 1)) {
					if (wq_empty(&rw->_wq))
						__atomic_fetch_and(&rw->_state, ~W_WAITING, __ATOMIC_RELAXED);
					w->next = list;
					return w;
				}
			}
			/* Every writer had given up. */
			__atomic_fetch_and(&rw->_state, ~(WRITER | W_WAITING), __ATOMIC_RELEASE);
			continue;
		}
		if (!wq_empty(&rw->_wq) && !prefer_reader)
			return list; /* readers hold it; the last one dispatches */
		if (wq_empty(&rw->_rq)) {
			if (s & R_WAITING)
				__atomic_fetch_and(&rw->_state, ~R_WAITING, __ATOMIC_RELAXED);
			return list;
		}
		/* Every waiting reader gets in. Count each before its claim. */
		while ((w = wq_pop(&rw->_rq))) {
			__atomic_fetch_add(&rw->_state, READER, __ATOMIC_ACQUIRE);
			if (zio__unpark(w->parker, w->gen, 1)) {
				w->next = list;
				list = w;
			} else {
				__atomic_fetch_sub(&rw->_state, READER, __ATOMIC_RELEASE);
			}
		}
		__atomic_fetch_and(&rw->_state, ~R_WAITING, __ATOMIC_RELAXED);
		/* Claims that all lost may have left it free for a writer. */
	}
}

/* Drops QLOCK, then releases the waiters dispatch() claimed. */
static void unlock_and_release(zio_rwlock *rw, struct zio__waiter *list)
{
	wunlock(&rw->_state, QLOCK);
	waiters_release(list);
}

/*
 * Queues the caller (QLOCK held) on q and waits. On failure unlinks it,
 * clears the queue's waiting bit if it emptied and, for a writer, lets
 * whoever it was holding back in.
 */
static int wait_on(zio_rwlock *rw, struct zio__wq *q, unsigned bit, struct zio__parker *p,
		   int64_t deadline)
{
	struct zio__waiter w;
	waiter_prepare(&w, p, 0);
	wq_push(q, &w);
	wunlock(&rw->_state, QLOCK);
	int r = sync_wait(&w, deadline);
	if (r >= 0)
		return 0; /* counted in, or WRITER set, by the dispatcher */
	wlock(&rw->_state, QLOCK);
	wq_remove(q, &w);
	if (wq_empty(q))
		__atomic_fetch_and(&rw->_state, ~bit, __ATOMIC_RELAXED);
	unlock_and_release(rw, bit == W_WAITING ? dispatch(rw) : NULL);
	return r;
}

/* ---------------------------------------------------------------- readers */

__attribute__((noinline)) static int rdlock_slow(zio_rwlock *rw, int64_t deadline)
{
	unsigned block = reader_block(rw);
	unsigned spins = 0;
	struct zio__parker *p = NULL;
	unsigned s = __atomic_load_n(&rw->_state, __ATOMIC_RELAXED);
	for (;;) {
		if (!(s & block)) {
			if (READERS(s) == MAX_READERS)
				return -EAGAIN;
			if (cas(&rw->_state, &s, s + READER, __ATOMIC_ACQUIRE))
				return 0;
			continue;
		}
		if (s & QLOCK) {
			backoff(&spins);
			s = __atomic_load_n(&rw->_state, __ATOMIC_RELAXED);
			continue;
		}
		if (deadline == 0)
			return -EAGAIN;
		if (cas(&rw->_state, &s, s | QLOCK | R_WAITING, __ATOMIC_ACQUIRE))
			break;
	}
	if (!p)
		p = zio__parker_self();
	return wait_on(rw, &rw->_rq, R_WAITING, p, deadline);
}

static inline int rdlock(zio_rwlock *rw, int64_t deadline)
{
	unsigned s = __atomic_load_n(&rw->_state, __ATOMIC_RELAXED);
	if (zio__likely(!(s & reader_block(rw)) && READERS(s) < MAX_READERS) &&
	    cas(&rw->_state, &s, s + READER, __ATOMIC_ACQUIRE))
		return 0;
	return rdlock_slow(rw, deadline);
}

ZIO_API int zio_rwlock_rdlock(zio_rwlock *rw)
{
	return rdlock(rw, ZIO_FOREVER);
}

ZIO_API int zio_rwlock_rdlock_until(zio_rwlock *rw, int64_t deadline)
{
	return rdlock(rw, deadline);
}

ZIO_API int zio_rwlock_tryrdlock(zio_rwlock *rw)
{
	return rdlock(rw, 0);
}

/* ---------------------------------------------------------------- writers */

__attribute__((noinline)) static int wrlock_slow(zio_rwlock *rw, int64_t deadline)
{
	unsigned spins = 0;
	unsigned s = __atomic_load_n(&rw->_state, __ATOMIC_RELAXED);
	for (;;) {
		/* Never ahead of a queued writer: whoever freed the lock is
		 * about to dispatch it to the head of the queue. */
		if (!(s & (WRITER | W_WAITING | QLOCK)) && READERS(s) == 0) {
			if (cas(&rw->_state, &s, s | WRITER, __ATOMIC_ACQUIRE))
				return 0;
			continue;
		}
		if (s & QLOCK) {
			backoff(&spins);
			s = __atomic_load_n(&rw->_state, __ATOMIC_RELAXED);
			continue;
		}
		if (deadline == 0)
			return -EAGAIN;
		if (cas(&rw->_state, &s, s | QLOCK | W_WAITING, __ATOMIC_ACQUIRE))
			break;
	}
	return wait_on(rw, &rw->_wq, W_WAITING, zio__parker_self(), deadline);
}

static inline int wrlock(zio_rwlock *rw, int64_t deadline)
{
	unsigned s = 0;
	if (zio__likely(__atomic_compare_exchange_n(&rw->_state, &s, WRITER, false, __ATOMIC_ACQUIRE,
						    __ATOMIC_RELAXED)))
		return 0;
	return wrlock_slow(rw, deadline);
}

ZIO_API int zio_rwlock_wrlock(zio_rwlock *rw)
{
	return wrlock(rw, ZIO_FOREVER);
}

ZIO_API int zio_rwlock_wrlock_until(zio_rwlock *rw, int64_t deadline)
{
	return wrlock(rw, deadline);
}

ZIO_API int zio_rwlock_trywrlock(zio_rwlock *rw)
{
	return wrlock(rw, 0);
}

/* ---------------------------------------------------------------- unlock */

__attribute__((noinline)) static void writer_unlock_slow(zio_rwlock *rw)
{
	wlock(&rw->_state, QLOCK);
	/* The writer lets go under QLOCK: nobody can take the lock before
	 * dispatch has given it to the queue. */
	__atomic_fetch_and(&rw->_state, ~WRITER, __ATOMIC_RELEASE);
	unlock_and_release(rw, dispatch(rw));
}

ZIO_API int zio_rwlock_unlock(zio_rwlock *rw)
{
	unsigned s = __atomic_load_n(&rw->_state, __ATOMIC_RELAXED);
	if (s & WRITER) {
		/* Only the writer clears WRITER; others may add bits, and
		 * then the slow path must look at them. */
		s = WRITER;
		if (zio__likely(__atomic_compare_exchange_n(&rw->_state, &s, 0, false,
							    __ATOMIC_RELEASE, __ATOMIC_RELAXED)))
			return 0;
		writer_unlock_slow(rw);
		return 0;
	}
	/* A reader: one CAS, which refuses at zero readers (a second unlock
	 * must not wrap the count). The last reader with waiters takes QLOCK
	 * in the same step as it lets go: were the two apart, a waiting
	 * writer could give up, another task take the lock, unlock and free
	 * it, all before this unlock touched the word again. */
	unsigned spins = 0;
	for (;;) {
		if (READERS(s) == 0)
			return -EPERM;
		unsigned n = s - READER;
		bool dispatching = READERS(n) == 0 && (n & (W_WAITING | R_WAITING));
		if (dispatching) {
			if (s & QLOCK) {
				backoff(&spins);
				s = __atomic_load_n(&rw->_state, __ATOMIC_RELAXED);
				continue;
			}
			n |= QLOCK;
		}
		if (cas(&rw->_state, &s, n, __ATOMIC_ACQ_REL)) {
			if (dispatching)
				unlock_and_release(rw, dispatch(rw));
			return 0;
		}
	}
}
