/*
 * wait.c - THE suspension primitive. Everything that waits ends up here.
 *
 * A wait has three parts, in this order:
 *   1. gen = zio__park_prepare(p, flags): arms the caller's parker;
 *   2. the caller publishes (p, gen) where a waker will find it (a waiter
 *      queue under the primitive's lock, an I/O op, a child's join slot);
 *   3. zio__park(p, deadline) suspends until the wait is *claimed*, or
 *      zio__park_abandon(p) withdraws it when the caller found it need not
 *      wait after all (a prepared wait must end in exactly one of the two).
 *
 * A claim is a CAS of the parker word from WAITING to a result, so exactly
 * one of {waker, deadline timer, canceller} wins; the losers learn it from
 * their failed CAS and act accordingly (a sync primitive hands its signal to
 * the next waiter, so no wakeup is lost). The winner makes the waiter
 * runnable. A waiter that wakes up with -ETIMEDOUT or -ECANCELED must
 * unpublish itself (under the primitive's lock) before returning; a waker
 * that pops it afterwards simply loses the CAS.
 *
 * Fibers park by switching away; the executor that continues finishes the
 * park only after the fiber's registers are saved (the landing site in
 * sched.c), so a claim that arrives early, even from another thread, can
 * never resume a half-saved fiber. A fiber that armed a deadline timer is
 * pinned to its executor until it resumes and removes the timer itself,
 * because timer heaps are executor-local.
 *
 * OS threads outside the runtime have a parker in TLS and sleep on a futex.
 * They are never cancelled (they are not tasks), but deadlines apply.
 *
 * Deadlines: the effective deadline is the earlier of the one passed and the
 * task's innermost zio_timeout scope, except inside a shield, where scopes
 * are ignored (cleanup must be able to finish) and only the explicit
 * deadline applies.
 */
#include "internal.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define WAITING_NOCANCEL 0x7ffffffeu

static __thread struct zio__parker thread_parker = { .thread = true };

static inline uint64_t word_of(uint32_t gen, uint32_t status)
{
	return (uint64_t)gen << 32 | status;
}

static inline bool is_waiting(uint32_t status)
{
	return status == ZIO__PARK_WAITING || status == WAITING_NOCANCEL;
}

struct zio__parker *zio__parker_self(void)
{
	struct zio__fiber *f = zio__fiber_current();
	return f ? &f->park : &thread_parker;
}

uint32_t zio__park_prepare(struct zio__parker *p, unsigned flags)
{
	uint32_t gen = ++p->gen;
	struct zio__fiber *f = zio__parker_fiber(p);
	bool cancellable = f && !(flags & ZIO__PARK_NOCANCEL) && f->shield == 0;
	p->flags = flags;
	if (!f)
		atomic_store_explicit(&p->futex, 0, memory_order_relaxed);
	/* seq_cst pairs with zio_task_cancel(): it stores `cancelled` and then
	 * reads this word, we store this word and then read `cancelled`. */
	atomic_store(&p->word, word_of(gen, cancellable ? ZIO__PARK_WAITING : WAITING_NOCANCEL));
	return gen;
}

bool zio__unpark(struct zio__parker *p, uint32_t gen, int value)
{
	uint64_t w = atomic_load_explicit(&p->word, memory_order_relaxed);
	do {
		if ((uint32_t)(w >> 32) != gen || !is_waiting((uint32_t)w))
			return false;
	} while (!atomic_compare_exchange_weak_explicit(&p->word, &w, word_of(gen, (uint32_t)value),
							memory_order_acq_rel, memory_order_relaxed));
	if (zio__parker_fiber(p)) {
		zio__ready(zio__parker_fiber(p));
	} else {
		/* After this store the thread may return and its TLS may go; a
		 * futex wake on a dead address is harmless. */
		atomic_store_explicit(&p->futex, 1, memory_order_release);
		syscall(SYS_futex, &p->futex, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
	}
	return true;
}

/* Cancellation claims only waits that allow it. */
bool zio__unpark_cancel(struct zio__parker *p)
{
	uint64_t w = atomic_load(&p->word);
	if ((uint32_t)w != ZIO__PARK_WAITING)
		return false;
	if (!atomic_compare_exchange_strong(&p->word, &w, word_of((uint32_t)(w >> 32), (uint32_t)-ECANCELED)))
		return false;
	zio__ready(zio__parker_fiber(p));
	return true;
}

/* Claims our own wait without anyone to wake: used when the outcome is
 * known before suspending (deadline passed, already cancelled). */
static bool claim_self(struct zio__parker *p, int value)
{
	uint64_t w = word_of(p->gen, ZIO__PARK_WAITING);
	if (atomic_compare_exchange_strong(&p->word, &w, word_of(p->gen, (uint32_t)value)))
		return true;
	w = word_of(p->gen, WAITING_NOCANCEL);
	return atomic_compare_exchange_strong(&p->word, &w, word_of(p->gen, (uint32_t)value));
}

static inline int claimed_value(struct zio__parker *p)
{
	return (int)(uint32_t)atomic_load_explicit(&p->word, memory_order_acquire);
}

static int thread_park(struct zio__parker *p, int64_t deadline)
{
	for (;;) {
		if (atomic_load_explicit(&p->futex, memory_order_acquire))
			return claimed_value(p);
		struct timespec ts, *tsp = NULL;
		if (deadline != ZIO_FOREVER) {
			if (zio__now() >= deadline) {
				if (claim_self(p, -ETIMEDOUT))
					return -ETIMEDOUT;
				/* Someone claimed it first: their futex store is imminent. */
				deadline = ZIO_FOREVER;
				continue;
			}
			ts.tv_sec = deadline / 1000000000;
			ts.tv_nsec = deadline % 1000000000;
			tsp = &ts;
		}
		/* FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC time. */
		syscall(SYS_futex, &p->futex, FUTEX_WAIT_BITSET_PRIVATE, 0, tsp, NULL,
			FUTEX_BITSET_MATCH_ANY);
	}
}

struct park_timer {
	struct zio__timer timer;
	struct zio__parker *parker;
	uint32_t gen;
};

static void park_timer_fire(struct zio__timer *t)
{
	struct park_timer *pt = zio__container_of(t, struct park_timer, timer);
	zio__unpark(pt->parker, pt->gen, -ETIMEDOUT);
}

int64_t zio__effective_deadline(const struct zio__fiber *f, int64_t deadline)
{
	return f->shield ? deadline : zio__earlier(deadline, f->deadline);
}

int zio__park(struct zio__parker *p, int64_t deadline)
{
	struct zio__fiber *f = zio__parker_fiber(p);
	if (!f)
		return thread_park(p, deadline);

	deadline = zio__effective_deadline(f, deadline);
	if (!(p->flags & ZIO__PARK_NOCANCEL) && f->shield == 0 &&
	    atomic_load(&f->cancelled) && claim_self(p, -ECANCELED))
		return -ECANCELED;

	struct park_timer pt;
	bool timed = deadline != ZIO_FOREVER;
	bool was_pinned = f->flags & ZIO__FIBER_TEMP_PIN; /* an I/O op pins too */
	if (timed) {
		if (deadline <= zio__now() && claim_self(p, -ETIMEDOUT))
			return -ETIMEDOUT;
		pt.timer.deadline = deadline;
		pt.timer.fire = park_timer_fire;
		pt.parker = p;
		pt.gen = p->gen;
		f->flags |= ZIO__FIBER_TEMP_PIN;
		zio__timer_add(&f->exec->timers, &pt.timer);
	}
	zio__switch_out(f, ZIO__LAND_PARK);
	if (timed) {
		/* Still on the executor that owns the heap (TEMP_PIN). */
		zio__timer_remove(&f->exec->timers, &pt.timer);
		if (!was_pinned)
			f->flags &= ~ZIO__FIBER_TEMP_PIN;
	}
	return claimed_value(p);
}

void zio__park_abandon(struct zio__parker *p)
{
	/* If a waker got there first, its wake is on its way to this fiber's
	 * state word and must be consumed, or it would end a later wait. */
	if (!claim_self(p, 0))
		zio__park(p, ZIO_FOREVER);
}

/* ------------------------------------------------------------ waiter queues */

void zio__waitq_push(struct zio__waitq *q, struct zio__waiter *w)
{
	w->next = NULL;
	w->prev = q->tail;
	if (q->tail)
		q->tail->next = w;
	else
		q->head = w;
	q->tail = w;
}

void zio__waitq_remove(struct zio__waitq *q, struct zio__waiter *w)
{
	if (!zio__waiter_queued(w))
		return;
	if (w->prev)
		w->prev->next = w->next;
	else
		q->head = w->next;
	if (w->next)
		w->next->prev = w->prev;
	else
		q->tail = w->prev;
	w->next = w->prev = w;
}

struct zio__waiter *zio__waitq_pop(struct zio__waitq *q)
{
	struct zio__waiter *w = q->head;
	if (w)
		zio__waitq_remove(q, w);
	return w;
}

bool zio__waitq_wake_one(struct zio__waitq *q, int value)
{
	struct zio__waiter *w;
	while ((w = zio__waitq_pop(q)))
		if (zio__unpark(w->parker, w->gen, value))
			return true;
	return false;
}
