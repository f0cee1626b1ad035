/*
 * zio/sync.h - synchronization primitives that suspend the calling task
 * instead of its thread: mutex, condition, rwlock, semaphore, event,
 * notify, barrier, wait group, once. Included by zio.h.
 *
 * Every primitive is a plain struct that users embed anywhere (globals,
 * heap objects, stack frames). Fields marked private are not an API. All of
 * them:
 *  - are valid when zero-initialised (the ZIO_*_INIT macros spell that out),
 *    except the barrier, which needs a count; zio_barrier_init() or
 *    ZIO_BARRIER_INIT(n) gives it one;
 *  - never allocate: a waiter's queue node lives on the waiter's own stack;
 *  - work from tasks on any executor of any runtime and from plain OS
 *    threads outside the runtime (which block the thread on a futex); a task
 *    and a thread may contend on the same primitive;
 *  - take an absolute deadline (CLOCK_MONOTONIC ns, ZIO_FOREVER, or 0 to try
 *    once, which returns -EAGAIN where it would have waited) in their
 *    *_until variants, and are cancellation points: a waiter that times out
 *    or is cancelled leaves the queue, and a wakeup that raced with it goes
 *    to another waiter, never nowhere.
 *  - may be destroyed (or their memory reused) as soon as the last user's
 *    call has returned, including a waiter that has just been woken while
 *    its waker is still finishing its call.
 * Sizes fit the pthread object each one can stand in for (x86_64 glibc:
 * mutex 40, cond 48, rwlock 56, sem 32, barrier 32 bytes), so the preload
 * shim can overlay them; PTHREAD_*_INITIALIZER (all zeros) is a valid state.
 *
 * Fairness, per primitive:
 *  - mutex: barging. An unlock with waiters releases the lock and wakes the
 *    oldest waiter, which competes with tasks that arrive meanwhile (so a
 *    running task can re-lock without a switch: throughput, like glibc and
 *    Go). A waiter that has waited ZIO_MUTEX_STARVE_NS (1 ms) or more gets
 *    the lock handed over directly instead, so no one starves.
 *  - rwlock: writer preference with direct handoff: a waiting writer blocks
 *    new readers; unlocks hand the lock to the oldest writer, else to every
 *    waiting reader at once. (Recursive read locks can deadlock while a
 *    writer waits; ZIO_RWLOCK_PREFER_READER lets readers in regardless.)
 *  - semaphore, barrier wake order, notify, auto-reset event, condition
 *    signal: strict FIFO; a post/signal goes to the oldest waiter, and new
 *    arrivals cannot take a permit that a waiter is owed.
 *  - manual-reset event, wait group, once, condition broadcast: wake all.
 */
#ifndef ZIO_SYNC_H
#define ZIO_SYNC_H

#include "../zio.h"

#ifdef __cplusplus
extern "C" {
#endif

/* private: a waiter queue; nodes live on the waiters' stacks. */
struct zio__waiter;
struct zio__wq {
	struct zio__waiter *head, *tail;
};

/* ------------------------------------------------------------------- mutex */

/* Kinds: the values (and the field's offset in the struct) are glibc's
 * PTHREAD_MUTEX_NORMAL / RECURSIVE / ERRORCHECK, so a statically
 * initialised recursive pthread mutex overlays a recursive zio_mutex. */
#define ZIO_MUTEX_NORMAL 0
#define ZIO_MUTEX_RECURSIVE 1
#define ZIO_MUTEX_ERRORCHECK 2

/* A waiter that has waited this long gets the lock handed over. */
#define ZIO_MUTEX_STARVE_NS 1000000

typedef struct zio_mutex {
	/* private */
	unsigned _state;     /* LOCKED | WAITERS | WOKEN | queue lock */
	unsigned _pad;
	void *_owner;        /* recursive, errorcheck: the owner's parker */
	int _kind;           /* ZIO_MUTEX_* */
	unsigned _count;     /* recursive: locks held beyond the first */
	struct zio__wq _q;
} zio_mutex;

#define ZIO_MUTEX_INIT { 0, 0, 0, ZIO_MUTEX_NORMAL, 0, { 0, 0 } }
#define ZIO_MUTEX_RECURSIVE_INIT { 0, 0, 0, ZIO_MUTEX_RECURSIVE, 0, { 0, 0 } }
#define ZIO_MUTEX_ERRORCHECK_INIT { 0, 0, 0, ZIO_MUTEX_ERRORCHECK, 0, { 0, 0 } }

ZIO_API int zio_mutex_init(zio_mutex *m, int kind);
/* -EBUSY if it is locked or has waiters. */
ZIO_API int zio_mutex_destroy(zio_mutex *m);
/* 0; -ECANCELED, -ETIMEDOUT; -EDEADLK when an error-checking mutex is
 * already held by the caller; -EAGAIN when a recursive one would overflow. */
ZIO_API int zio_mutex_lock(zio_mutex *m);
ZIO_API int zio_mutex_lock_until(zio_mutex *m, int64_t deadline);
/* Neither cancellation nor deadline scopes interrupt this one
 * (pthread_mutex_lock semantics). */
ZIO_API int zio_mutex_lock_nocancel(zio_mutex *m);
/* -EAGAIN if held by someone else (pthread says EBUSY); a recursive mutex
 * held by the caller is locked once more. */
ZIO_API int zio_mutex_trylock(zio_mutex *m);
/* -EPERM if not locked, or (recursive, errorcheck) not held by the caller. */
ZIO_API int zio_mutex_unlock(zio_mutex *m);

/* --------------------------------------------------------------- condition */

typedef struct zio_cond {
	/* private */
	unsigned _lock;
	int _clock;          /* clockid_t for zio_cond_timedwait() */
	struct zio__wq _q;
	unsigned _leaving;   /* popped waiters that lost their claim, not yet gone */
} zio_cond;

/* Zero is CLOCK_REALTIME for zio_cond_timedwait(), as for pthread. */
#define ZIO_COND_INIT { 0, 0, { 0, 0 }, 0 }

/* clock: CLOCK_REALTIME or CLOCK_MONOTONIC (as pthread allows; others are
 * -EINVAL): the clock zio_cond_timedwait() reads its deadline on. */
ZIO_API int zio_cond_init(zio_cond *c, clockid_t clock);
ZIO_API int zio_cond_destroy(zio_cond *c);
/* Atomically releases m and waits; m is held again on return, whatever the
 * result (0, -ETIMEDOUT, -ECANCELED, or -EPERM if an error-checking m is
 * not held). Spurious wakeups do not happen, but callers should loop on
 * their predicate anyway. A signal or broadcast may be sent with or without
 * m held; the condition may be destroyed as soon as broadcast returns. */
ZIO_API int zio_cond_wait(zio_cond *c, zio_mutex *m);
/* A deadline of 0 or in the past still releases and re-takes m, then
 * returns -ETIMEDOUT. */
ZIO_API int zio_cond_wait_until(zio_cond *c, zio_mutex *m, int64_t deadline);
/* Deadline abs_ns on the condition's clock (zio_cond_init), or on the
 * clock given. It is converted to a monotonic deadline once, when the wait
 * starts: a later jump of CLOCK_REALTIME does not move it. */
ZIO_API int zio_cond_timedwait(zio_cond *c, zio_mutex *m, int64_t abs_ns);
ZIO_API int zio_cond_clockwait(zio_cond *c, zio_mutex *m, clockid_t clock, int64_t abs_ns);
ZIO_API int zio_cond_signal(zio_cond *c);
ZIO_API int zio_cond_broadcast(zio_cond *c);

/* ------------------------------------------------------------------ rwlock */

#define ZIO_RWLOCK_PREFER_READER 1u /* readers never wait for a waiting writer */

typedef struct zio_rwlock {
	/* private */
	unsigned _state;     /* WRITER | W_WAITING | R_WAITING | queue lock | readers << 4 */
	unsigned _flags;
	struct zio__wq _rq, _wq;
} zio_rwlock;

#define ZIO_RWLOCK_INIT { 0, 0, { 0, 0 }, { 0, 0 } }

ZIO_API int zio_rwlock_init(zio_rwlock *rw, unsigned flags);
ZIO_API int zio_rwlock_destroy(zio_rwlock *rw);
/* Shared. -EAGAIN also when the reader count would overflow. */
ZIO_API int zio_rwlock_rdlock(zio_rwlock *rw);
ZIO_API int zio_rwlock_rdlock_until(zio_rwlock *rw, int64_t deadline);
ZIO_API int zio_rwlock_tryrdlock(zio_rwlock *rw);
/* Exclusive. */
ZIO_API int zio_rwlock_wrlock(zio_rwlock *rw);
ZIO_API int zio_rwlock_wrlock_until(zio_rwlock *rw, int64_t deadline);
ZIO_API int zio_rwlock_trywrlock(zio_rwlock *rw);
/* Releases whichever kind the caller holds; -EPERM if it is not locked. */
ZIO_API int zio_rwlock_unlock(zio_rwlock *rw);

/* --------------------------------------------------------------- semaphore */

#define ZIO_SEM_VALUE_MAX 0x7fffffff

typedef struct zio_sem {
	/* private */
	uint64_t _state;     /* value << 2 | WAITERS | queue lock */
	struct zio__wq _q;
} zio_sem;

#define ZIO_SEM_INIT(value) { (uint64_t)(value) << 2, { 0, 0 } }

ZIO_API int zio_sem_init(zio_sem *s, unsigned value);
ZIO_API int zio_sem_destroy(zio_sem *s);
ZIO_API int zio_sem_wait(zio_sem *s);
ZIO_API int zio_sem_wait_until(zio_sem *s, int64_t deadline);
ZIO_API int zio_sem_trywait(zio_sem *s);
/* -EOVERFLOW past ZIO_SEM_VALUE_MAX. */
ZIO_API int zio_sem_post(zio_sem *s);
/* The current count (never negative). */
ZIO_API int zio_sem_value(zio_sem *s);

/* ------------------------------------------------------------------- event */

/* A set auto-reset event lets exactly one wait through and resets itself;
 * set() with waiters wakes only the oldest. A manual-reset event stays set
 * (waking everyone) until reset(). */
#define ZIO_EVENT_AUTO_RESET 1u

typedef struct zio_event {
	/* private */
	unsigned _state;     /* SET | queue lock */
	unsigned _flags;
	struct zio__wq _q;
} zio_event;

#define ZIO_EVENT_INIT { 0, 0, { 0, 0 } }
#define ZIO_EVENT_AUTO_RESET_INIT { 0, ZIO_EVENT_AUTO_RESET, { 0, 0 } }

ZIO_API int zio_event_init(zio_event *e, unsigned flags);
ZIO_API void zio_event_set(zio_event *e);
ZIO_API void zio_event_reset(zio_event *e);
ZIO_API bool zio_event_is_set(zio_event *e);
ZIO_API int zio_event_wait(zio_event *e);
ZIO_API int zio_event_wait_until(zio_event *e, int64_t deadline);

/* ------------------------------------------------------------------ notify */

/* signal() wakes the oldest waiter; with nobody waiting it leaves one
 * permit (not a count) that the next wait() consumes, so a signal sent
 * between checking a predicate and waiting is not lost. broadcast() wakes
 * every current waiter and leaves nothing behind. */
typedef struct zio_notify {
	/* private */
	unsigned _state;     /* PERMIT | queue lock */
	unsigned _pad;
	struct zio__wq _q;
} zio_notify;

#define ZIO_NOTIFY_INIT { 0, 0, { 0, 0 } }

ZIO_API void zio_notify_signal(zio_notify *n);
ZIO_API void zio_notify_broadcast(zio_notify *n);
ZIO_API int zio_notify_wait(zio_notify *n);
ZIO_API int zio_notify_wait_until(zio_notify *n, int64_t deadline);

/* ----------------------------------------------------------------- barrier */

/* Returned by exactly one of the tasks that complete a barrier round. */
#define ZIO_BARRIER_SERIAL 1

typedef struct zio_barrier {
	/* private */
	unsigned _lock;
	unsigned _count;     /* tasks per round; 0: not initialised */
	unsigned _arrived;
	unsigned _leaving;   /* popped waiters that lost their claim, not yet gone */
	struct zio__wq _q;
} zio_barrier;

#define ZIO_BARRIER_INIT(count) { 0, (unsigned)(count), 0, 0, { 0, 0 } }

ZIO_API int zio_barrier_init(zio_barrier *b, unsigned count);
/* -EBUSY while tasks wait on it. Waits for the round's last task to leave
 * the barrier's memory, so any task may destroy it once its wait returned. */
ZIO_API int zio_barrier_destroy(zio_barrier *b);
/* ZIO_BARRIER_SERIAL for one task of the round, 0 for the others. A waiter
 * that times out or is cancelled before the round completes withdraws its
 * arrival (the round still needs count tasks); if the round completed first,
 * it returns success. -EINVAL if not initialised. */
ZIO_API int zio_barrier_wait(zio_barrier *b);
ZIO_API int zio_barrier_wait_until(zio_barrier *b, int64_t deadline);

/* -------------------------------------------------------------- wait group */

typedef struct zio_waitgroup {
	/* private */
	uint64_t _state;     /* count << 2 | WAITERS | queue lock */
	struct zio__wq _q;
} zio_waitgroup;

#define ZIO_WAITGROUP_INIT { 0, { 0, 0 } }

/* -EINVAL (and no change) if the count would go negative. */
ZIO_API int zio_waitgroup_add(zio_waitgroup *wg, int64_t delta);
ZIO_API int zio_waitgroup_done(zio_waitgroup *wg);
/* Returns once the count is zero. */
ZIO_API int zio_waitgroup_wait(zio_waitgroup *wg);
ZIO_API int zio_waitgroup_wait_until(zio_waitgroup *wg, int64_t deadline);

/* -------------------------------------------------------------------- once */

typedef struct zio_once {
	/* private */
	unsigned _state;     /* new, running, done | WAITERS | queue lock */
	unsigned _pad;
	struct zio__wq _q;
} zio_once;

#define ZIO_ONCE_INIT { 0, 0, { 0, 0 } }

/* Runs fn(arg) exactly once per zio_once; concurrent callers wait until it
 * has returned, and everything it wrote is visible to them. 0, or
 * -ECANCELED / -ETIMEDOUT if a waiting caller was cancelled or its
 * deadline scope ran out (fn still runs to the end in the first caller). */
ZIO_API int zio_once_call(zio_once *o, void (*fn)(void *), void *arg);

#ifdef __cplusplus
}
#endif
#endif
