/*
 * test_sync.c - zio/sync.h: mutex (normal, recursive, error-checking),
 * condition, rwlock, semaphore, event, notify, barrier, wait group, once.
 *
 * Per primitive: the basics, a waiter that times out, a waiter that is
 * cancelled, a wakeup that races with a cancel (it must reach another
 * waiter), the documented fairness, tasks and plain threads contending on
 * the same object, and memory reuse right after a wakeup (ASan catches a
 * waker that still touches it). Then randomized tests: many tasks on two
 * executors plus plain threads doing random operations with random
 * deadlines and cancellations, checked against the primitive's invariants.
 * Single-executor tests are deterministic: a spawned task runs when the
 * spawner yields or parks, so "the child is queued" is known exactly.
 *
 * ZIO_TEST_LABELS: sync
 */
#include "sync_test.h"

/* ==================================================================== mutex */

struct mx {
	zio_mutex m;
	int64_t deadline;
	int log[16];
	atomic_int nlog;
	atomic_int holding;
};

static void *mx_lock_once(void *arg)
{
	struct mx *x = arg;
	int r = zio_mutex_lock_until(&x->m, x->deadline);
	if (r == 0) {
		x->log[atomic_fetch_add(&x->nlog, 1)] = (int)zio_task_id(zio_task_self());
		zio_mutex_unlock(&x->m);
	}
	return RC(r);
}

static void *mutex_basic_main(void *arg)
{
	zio_mutex m = ZIO_MUTEX_INIT;
	cr_assert_eq(zio_mutex_lock(&m), 0);
	cr_assert_eq(zio_mutex_trylock(&m), -EAGAIN);
	cr_assert_eq(zio_mutex_lock_until(&m, 0), -EAGAIN);
	cr_assert_eq(zio_mutex_destroy(&m), -EBUSY);
	cr_assert_eq(zio_mutex_unlock(&m), 0);
	cr_assert_eq(zio_mutex_unlock(&m), -EPERM);
	cr_assert_eq(zio_mutex_trylock(&m), 0);
	cr_assert_eq(zio_mutex_unlock(&m), 0);
	cr_assert_eq(zio_mutex_destroy(&m), 0);

	/* All-zero storage, like PTHREAD_MUTEX_INITIALIZER. */
	zio_mutex z;
	memset(&z, 0, sizeof(z));
	cr_assert_eq(zio_mutex_lock(&z), 0);
	cr_assert_eq(zio_mutex_unlock(&z), 0);
	cr_assert_eq(zio_mutex_init(&z, 7), -EINVAL);
	return NULL;
}

/* A waiter woken to retry is neither holding the lock nor queued, but it
 * will still touch the mutex: destroy says -EBUSY until it is done. One
 * executor: the waiter runs only when we yield. */
static void *mutex_destroy_woken_main(void *arg)
{
	(void)arg;
	static struct mx x;
	memset(&x, 0, sizeof(x));
	x.deadline = ZIO_FOREVER;
	cr_assert_eq(zio_mutex_lock(&x.m), 0);
	zio_task *t = go(mx_lock_once, &x);
	WAIT_FOR(QLEN(&x.m) == 1);
	cr_assert_eq(zio_mutex_unlock(&x.m), 0);
	cr_assert_eq(zio_mutex_destroy(&x.m), -EBUSY, "destroyed under a woken waiter");
	cr_assert_eq(join(t), 0);
	cr_assert_eq(zio_mutex_destroy(&x.m), 0);
	return NULL;
}

Test(mutex, destroy_while_a_woken_waiter_retries, .timeout = 10)
{
	run_in_runtime(1, mutex_destroy_woken_main, NULL);
}

Test(mutex, basic, .timeout = 10)
{
	run_in_runtime(1, mutex_basic_main, NULL);
	/* And from a plain thread, outside any runtime. */
	mutex_basic_main(NULL);
}

static void *try_from_child(void *arg)
{
	return RC(zio_mutex_trylock(arg));
}

static void *unlock_from_child(void *arg)
{
	return RC(zio_mutex_unlock(arg));
}

static void *mutex_recursive_main(void *arg)
{
	zio_mutex m = ZIO_MUTEX_RECURSIVE_INIT;
	cr_assert_eq(zio_mutex_lock(&m), 0);
	cr_assert_eq(zio_mutex_lock(&m), 0);
	cr_assert_eq(zio_mutex_trylock(&m), 0);
	cr_assert_eq(join(go(try_from_child, &m)), -EAGAIN);
	cr_assert_eq(join(go(unlock_from_child, &m)), -EPERM);
	cr_assert_eq(zio_mutex_unlock(&m), 0);
	cr_assert_eq(zio_mutex_unlock(&m), 0);
	cr_assert_eq(join(go(try_from_child, &m)), -EAGAIN);
	cr_assert_eq(zio_mutex_unlock(&m), 0);
	cr_assert_eq(zio_mutex_unlock(&m), -EPERM);
	int r = join(go(try_from_child, &m)); /* the child exits holding it */
	cr_assert_eq(r, 0);
	cr_assert_eq(zio_mutex_trylock(&m), -EAGAIN);
	return NULL;
}

Test(mutex, recursive, .timeout = 10)
{
	run_in_runtime(1, mutex_recursive_main, NULL);
}

static void *mutex_errorcheck_main(void *arg)
{
	zio_mutex m;
	cr_assert_eq(zio_mutex_init(&m, ZIO_MUTEX_ERRORCHECK), 0);
	cr_assert_eq(zio_mutex_unlock(&m), -EPERM);
	cr_assert_eq(zio_mutex_lock(&m), 0);
	cr_assert_eq(zio_mutex_lock(&m), -EDEADLK);
	cr_assert_eq(zio_mutex_trylock(&m), -EAGAIN);
	cr_assert_eq(join(go(unlock_from_child, &m)), -EPERM);
	cr_assert_eq(join(go(try_from_child, &m)), -EAGAIN);
	cr_assert_eq(zio_mutex_unlock(&m), 0);
	cr_assert_eq(zio_mutex_unlock(&m), -EPERM);
	return NULL;
}

Test(mutex, errorcheck, .timeout = 10)
{
	run_in_runtime(1, mutex_errorcheck_main, NULL);
}

/* A waiter whose deadline passes leaves the queue and clears WAITERS. */
static void *mutex_timeout_main(void *arg)
{
	static struct mx x;
	memset(&x, 0, sizeof(x));
	x.deadline = zio_deadline_after(ZIO_MSEC(5));
	zio_mutex_lock(&x.m);
	int64_t t0 = zio_now();
	cr_assert_eq(join(go(mx_lock_once, &x)), -ETIMEDOUT);
	cr_assert_geq(zio_now() - t0, ZIO_MSEC(4));
	cr_assert_eq(QLEN(&x.m), 0);
	cr_assert_eq(x.m._state, 1u, "state %#x: only LOCKED should be left", x.m._state);
	cr_assert_eq(zio_mutex_unlock(&x.m), 0);
	cr_assert_eq(x.m._state, 0u);
	/* A deadline already in the past: tried once, then -ETIMEDOUT. */
	zio_mutex_lock(&x.m);
	x.deadline = 1;
	cr_assert_eq(join(go(mx_lock_once, &x)), -ETIMEDOUT);
	zio_mutex_unlock(&x.m);
	return NULL;
}

Test(mutex, timeout, .timeout = 10)
{
	run_in_runtime(1, mutex_timeout_main, NULL);
	run_in_runtime(2, mutex_timeout_main, NULL);
}

/* A cancelled waiter leaves the queue; a cancelled waiter that an unlock
 * raced with passes the wakeup on to the next waiter. */
static void *mutex_cancel_main(void *arg)
{
	static struct mx x;
	memset(&x, 0, sizeof(x));
	x.deadline = ZIO_FOREVER;
	zio_mutex_lock(&x.m);
	zio_task *a = go(mx_lock_once, &x);
	WAIT_FOR(QLEN(&x.m) == 1);
	zio_task_cancel(a);
	cr_assert_eq(join(a), -ECANCELED);
	cr_assert_eq(QLEN(&x.m), 0);
	cr_assert_eq(x.m._state, 1u);

	/* a, then b queued; cancel a (claimed, not yet run), then unlock:
	 * the wakeup must reach b. */
	a = go(mx_lock_once, &x);
	WAIT_FOR(QLEN(&x.m) == 1);
	zio_task *b = go(mx_lock_once, &x);
	WAIT_FOR(QLEN(&x.m) == 2);
	zio_task_cancel(a);
	zio_mutex_unlock(&x.m);
	cr_assert_eq(join(a), -ECANCELED);
	cr_assert_eq(join(b), 0);
	cr_assert_eq(atomic_load(&x.nlog), 1);
	cr_assert_eq(x.m._state, 0u);
	return NULL;
}

Test(mutex, cancel, .timeout = 10)
{
	run_in_runtime(1, mutex_cancel_main, NULL);
}

/* Deadline scopes end a wait like a deadline; lock_nocancel ignores both
 * scopes and cancellation (pthread_mutex_lock semantics). */
static void *scoped_lock(void *arg)
{
	struct mx *x = arg;
	struct zio_timeout to;
	zio_timeout_begin(&to, zio_deadline_after(ZIO_MSEC(2)));
	int r = zio_mutex_lock(&x->m);
	bool expired = zio_timeout_end(&to);
	cr_assert(expired);
	return RC(r);
}

static void *nocancel_lock(void *arg)
{
	struct mx *x = arg;
	struct zio_timeout to;
	zio_timeout_begin(&to, zio_deadline_after(ZIO_MSEC(1)));
	int r = zio_mutex_lock_nocancel(&x->m);
	zio_timeout_end(&to);
	if (r == 0) {
		atomic_store(&x->holding, 1);
		zio_mutex_unlock(&x->m);
	}
	return RC(r);
}

static void *mutex_nocancel_main(void *arg)
{
	static struct mx x;
	memset(&x, 0, sizeof(x));
	zio_mutex_lock(&x.m);
	cr_assert_eq(join(go(scoped_lock, &x)), -ETIMEDOUT);
	zio_task *t = go(nocancel_lock, &x);
	WAIT_FOR(QLEN(&x.m) == 1);
	zio_task_cancel(t);
	int64_t until = zio_now() + ZIO_MSEC(3); /* past its scope's deadline */
	while (zio_now() < until)
		zio_yield();
	cr_assert_eq(QLEN(&x.m), 1, "still waiting");
	zio_mutex_unlock(&x.m);
	cr_assert_eq(join(t), 0);
	cr_assert(atomic_load(&x.holding));
	return NULL;
}

Test(mutex, scope_deadline_and_nocancel, .timeout = 10)
{
	run_in_runtime(1, mutex_nocancel_main, NULL);
}

/* Barging: an unlock wakes the oldest waiter, but the running task can take
 * the lock again before the waiter runs. */
static void *mutex_barging_main(void *arg)
{
	static struct mx x;
	memset(&x, 0, sizeof(x));
	x.deadline = ZIO_FOREVER;
	zio_mutex_lock(&x.m);
	zio_task *w = go(mx_lock_once, &x);
	WAIT_FOR(QLEN(&x.m) == 1);
	zio_mutex_unlock(&x.m);
	cr_assert_eq(zio_mutex_trylock(&x.m), 0, "a running task may barge");
	cr_assert_eq(atomic_load(&x.nlog), 0);
	zio_mutex_unlock(&x.m);
	cr_assert_eq(join(w), 0);
	cr_assert_eq(atomic_load(&x.nlog), 1);
	return NULL;
}

Test(mutex, fairness_barging, .timeout = 10)
{
	run_in_runtime(1, mutex_barging_main, NULL);
}

/* Starvation bound: once the head waiter has waited ZIO_MUTEX_STARVE_NS,
 * unlock hands it the lock and barging fails. */
static void *mutex_starve_main(void *arg)
{
	static struct mx x;
	memset(&x, 0, sizeof(x));
	x.deadline = ZIO_FOREVER;
	zio_mutex_lock(&x.m);
	zio_task *w = go(mx_lock_once, &x);
	WAIT_FOR(QLEN(&x.m) == 1);
	/* Hold the lock past the bound; the waiter is parked meanwhile. */
	int64_t until = zio_now() + 2 * ZIO_MUTEX_STARVE_NS;
	while (zio_now() < until)
		zio__cpu_relax();
	zio_mutex_unlock(&x.m);
	cr_assert_eq(zio_mutex_trylock(&x.m), -EAGAIN, "a starving waiter must get the lock");
	cr_assert_eq(join(w), 0);
	cr_assert_eq(zio_mutex_trylock(&x.m), 0);
	zio_mutex_unlock(&x.m);
	return NULL;
}

Test(mutex, fairness_starvation_handoff, .timeout = 10)
{
	run_in_runtime(1, mutex_starve_main, NULL);
}

/* Waiters are woken oldest first. */
static void *mutex_fifo_main(void *arg)
{
	static struct mx x;
	memset(&x, 0, sizeof(x));
	x.deadline = ZIO_FOREVER;
	zio_task *t[5];
	int id[5];
	zio_mutex_lock(&x.m);
	for (int i = 0; i < 5; i++) {
		t[i] = go(mx_lock_once, &x);
		id[i] = (int)zio_task_id(t[i]);
		WAIT_FOR(QLEN(&x.m) == i + 1);
	}
	zio_mutex_unlock(&x.m);
	for (int i = 0; i < 5; i++)
		cr_assert_eq(join(t[i]), 0);
	for (int i = 0; i < 5; i++)
		cr_assert_eq(x.log[i], id[i], "wake order: position %d", i);
	return NULL;
}

Test(mutex, fairness_fifo_wake_order, .timeout = 10)
{
	run_in_runtime(1, mutex_fifo_main, NULL);
}

/* A plain thread and a task on the same mutex, each waiting for the other. */
struct both {
	zio_mutex m;
	atomic_int step;
	long counter;
};

static void *both_thread(void *arg)
{
	struct both *b = arg;
	/* 1: the task holds it; we block on the futex until it unlocks. */
	WAIT_FOR(atomic_load(&b->step) == 1);
	cr_assert_eq(zio_mutex_lock(&b->m), 0);
	atomic_store(&b->step, 2);
	/* 3: the task is now queued behind us. */
	WAIT_FOR(QLEN(&b->m) == 1);
	zio_mutex_unlock(&b->m);
	return NULL;
}

static void *both_main(void *arg)
{
	struct both *b = arg;
	memset(b, 0, sizeof(*b));
	thread_t th = thread_start(both_thread, b);
	zio_mutex_lock(&b->m);
	atomic_store(&b->step, 1);
	WAIT_FOR(QLEN(&b->m) == 1); /* the thread is asleep on it */
	zio_mutex_unlock(&b->m);
	WAIT_FOR(atomic_load(&b->step) == 2);
	cr_assert_eq(zio_mutex_lock(&b->m), 0); /* parks until the thread unlocks */
	zio_mutex_unlock(&b->m);
	thread_join(th);
	return NULL;
}

Test(mutex, task_and_thread_both_ways, .timeout = 20)
{
	static struct both b;
	run_in_runtime(1, both_main, &b);
	run_in_runtime(2, both_main, &b);
}

/* Counter under contention: tasks on two executors and two threads. */
enum { CONTEND_N = 20000 };

static void *contend_body(void *arg)
{
	struct both *b = arg;
	for (int i = 0; i < CONTEND_N; i++) {
		cr_assert_eq(zio_mutex_lock(&b->m), 0);
		b->counter++;
		if (i % 64 == 0)
			zio_yield(); /* hold it across a switch now and then */
		zio_mutex_unlock(&b->m);
	}
	return NULL;
}

static void *contend_main(void *arg)
{
	struct both *b = arg;
	thread_t th[2];
	zio_task *t[4];
	for (int i = 0; i < 2; i++)
		th[i] = thread_start(contend_body, b);
	for (int i = 0; i < 4; i++)
		t[i] = go(contend_body, b);
	for (int i = 0; i < 4; i++)
		join(t[i]);
	for (int i = 0; i < 2; i++)
		thread_join(th[i]);
	return NULL;
}

Test(mutex, contention_tasks_and_threads, .timeout = 60)
{
	static struct both b;
	memset(&b, 0, sizeof(b));
	run_in_runtime(2, contend_main, &b);
	cr_assert_eq(b.counter, 6L * CONTEND_N);
	cr_assert_eq(b.m._state, 0u);
}

/* The woken waiter frees the mutex as soon as it is done with it, while
 * the unlock that woke it may still be returning (ASan checks this). */
struct reuse {
	zio_mutex *_Atomic m;
	atomic_int phase;
};

static void *reuse_waiter(void *arg)
{
	struct reuse *r = arg;
	for (int i = 0; i < 2000; i++) {
		WAIT_FOR(atomic_load(&r->phase) == 2 * i + 1);
		zio_mutex *m = atomic_load(&r->m);
		cr_assert_eq(zio_mutex_lock(m), 0);
		zio_mutex_unlock(m);
		zio_mutex_destroy(m);
		free(m);
		atomic_store(&r->phase, 2 * i + 2);
	}
	return NULL;
}

static void *reuse_main(void *arg)
{
	struct reuse r;
	memset(&r, 0, sizeof(r));
	zio_task *t = go(reuse_waiter, &r);
	for (int i = 0; i < 2000; i++) {
		zio_mutex *m = calloc(1, sizeof(*m));
		zio_mutex_lock(m);
		atomic_store(&r.m, m);
		atomic_store(&r.phase, 2 * i + 1);
		/* Let it queue most of the time (sometimes it will not yet). */
		for (int k = 0; k < 50 && QLEN(m) == 0; k++)
			zio_yield();
		zio_mutex_unlock(m);
		WAIT_FOR(atomic_load(&r.phase) == 2 * i + 2);
	}
	join(t);
	return NULL;
}

Test(mutex, freed_by_woken_waiter, .timeout = 60)
{
	run_in_runtime(2, reuse_main, NULL);
}

/* ---------------------------------------------------- randomized: locks
 * Workers (tasks on 2 executors, and plain threads) repeatedly lock with a
 * random method: forever, with a short deadline, try, or forever in a child
 * task that the worker may cancel at a random moment. Inside: the
 * exclusion invariants are checked and a plain counter is bumped, with a
 * random yield to make others queue. At the end the counter must equal the
 * number of successful acquisitions, and the lock must be free and empty. */

struct lockmodel {
	zio_mutex m;
	zio_rwlock rw;
	atomic_int in_cs, readers;
	long counter;
	atomic_long acquired;
	atomic_long timeouts, cancels;
	int64_t end;
	uint64_t seed;
	atomic_uint next_seed;
};

static void lm_cs(struct lockmodel *lm, uint64_t *rs)
{
	int was = atomic_exchange(&lm->in_cs, 1);
	cr_assert_eq(was, 0, "two holders at once (seed %llu)", (unsigned long long)lm->seed);
	lm->counter++;
	if (rnd_below(rs, 4) == 0)
		zio_yield();
	atomic_store(&lm->in_cs, 0);
	atomic_fetch_add(&lm->acquired, 1);
}

struct lm_child {
	struct lockmodel *lm;
	uint64_t rs;
};

static void *lm_child_body(void *arg)
{
	struct lm_child *c = arg;
	int r = zio_mutex_lock(&c->lm->m);
	if (r == 0) {
		lm_cs(c->lm, &c->rs);
		zio_mutex_unlock(&c->lm->m);
	}
	return RC(r);
}

static void lm_result(struct lockmodel *lm, int r)
{
	if (r == -ETIMEDOUT)
		atomic_fetch_add(&lm->timeouts, 1);
	else if (r == -ECANCELED)
		atomic_fetch_add(&lm->cancels, 1);
	else
		cr_assert(r == 0 || r == -EAGAIN, "unexpected %d (seed %llu)", r,
			  (unsigned long long)lm->seed);
}

static void *lm_worker(void *arg)
{
	struct lockmodel *lm = arg;
	uint64_t rs = lm->seed * 0x9E3779B97F4A7C15ULL + atomic_fetch_add(&lm->next_seed, 1);
	bool task = zio_task_self() != NULL;
	while (zio_now() < lm->end) {
		int r;
		switch (rnd_below(&rs, task ? 4 : 3)) {
		case 0:
			r = zio_mutex_lock(&lm->m);
			break;
		case 1:
			r = zio_mutex_lock_until(&lm->m, zio_deadline_after(rnd_below(&rs, 50000)));
			break;
		case 2:
			r = zio_mutex_trylock(&lm->m);
			break;
		default: {
			struct lm_child c = { lm, rnd(&rs) };
			zio_task *t = go(lm_child_body, &c);
			for (unsigned k = rnd_below(&rs, 4); k; k--)
				zio_yield();
			if (rnd_below(&rs, 2))
				zio_task_cancel(t);
			lm_result(lm, join(t));
			continue;
		}
		}
		lm_result(lm, r);
		if (r == 0) {
			lm_cs(lm, &rs);
			zio_mutex_unlock(&lm->m);
		}
	}
	return NULL;
}

static void *lm_main(void *arg)
{
	struct lockmodel *lm = arg;
	thread_t th[2];
	zio_task *t[8];
	for (int i = 0; i < 2; i++)
		th[i] = thread_start(lm_worker, lm);
	for (int i = 0; i < 8; i++)
		t[i] = go(lm_worker, lm);
	for (int i = 0; i < 8; i++)
		join(t[i]);
	for (int i = 0; i < 2; i++)
		thread_join(th[i]);
	return NULL;
}

Test(mutex, randomized_invariants, .timeout = 30)
{
	static struct lockmodel lm;
	memset(&lm, 0, sizeof(lm));
	lm.seed = test_seed();
	lm.end = zio_now() + ZIO_MSEC(1500);
	run_in_runtime(2, lm_main, &lm);
	cr_assert_eq(lm.counter, atomic_load(&lm.acquired), "seed %llu", (unsigned long long)lm.seed);
	cr_assert_eq(lm.m._state, 0u, "state %#x (seed %llu)", lm.m._state,
		     (unsigned long long)lm.seed);
	cr_assert_eq(QLEN(&lm.m), 0);
	cr_log_info("mutex model: %ld acquisitions, %ld timeouts, %ld cancels (seed %llu)",
		    lm.counter, atomic_load(&lm.timeouts), atomic_load(&lm.cancels),
		    (unsigned long long)lm.seed);
}

/* ================================================================ condition */

struct cv {
	zio_mutex m;
	zio_cond c;
	int ready;
	int woken;
	int64_t deadline;
	bool held_after;
};

static void *cv_wait_once(void *arg)
{
	struct cv *v = arg;
	zio_mutex_lock(&v->m);
	int r = zio_cond_wait_until(&v->c, &v->m, v->deadline);
	/* The mutex is held again whatever happened. */
	v->held_after = zio_mutex_trylock(&v->m) == -EAGAIN;
	if (r == 0)
		v->woken++;
	zio_mutex_unlock(&v->m);
	return RC(r);
}

static void *cv_wait_pred(void *arg)
{
	struct cv *v = arg;
	zio_mutex_lock(&v->m);
	while (!v->ready)
		cr_assert_eq(zio_cond_wait(&v->c, &v->m), 0);
	v->woken++;
	zio_mutex_unlock(&v->m);
	return NULL;
}

static void *cond_basic_main(void *arg)
{
	static struct cv v;
	memset(&v, 0, sizeof(v));
	zio_task *t[3];
	for (int i = 0; i < 3; i++)
		t[i] = go(cv_wait_pred, &v);
	WAIT_FOR(QLEN(&v.c) == 3);
	zio_mutex_lock(&v.m);
	v.ready = 1;
	zio_cond_signal(&v.c);
	zio_mutex_unlock(&v.m);
	WAIT_FOR(QLEN(&v.c) == 2);
	zio_cond_broadcast(&v.c);
	for (int i = 0; i < 3; i++)
		join(t[i]);
	cr_assert_eq(v.woken, 3);
	cr_assert_eq(zio_cond_destroy(&v.c), 0);
	/* Signals with nobody waiting are no-ops. */
	cr_assert_eq(zio_cond_signal(&v.c), 0);
	cr_assert_eq(zio_cond_broadcast(&v.c), 0);
	return NULL;
}

Test(cond, signal_and_broadcast, .timeout = 10)
{
	run_in_runtime(1, cond_basic_main, NULL);
	run_in_runtime(2, cond_basic_main, NULL);
}

static void *cond_timeout_main(void *arg)
{
	static struct cv v;
	memset(&v, 0, sizeof(v));
	v.deadline = zio_deadline_after(ZIO_MSEC(5));
	cr_assert_eq(join(go(cv_wait_once, &v)), -ETIMEDOUT);
	cr_assert(v.held_after);
	cr_assert_eq(QLEN(&v.c), 0);

	/* Clock-based waits: realtime and monotonic, and the condition's own
	 * clock. */
	zio_mutex_lock(&v.m);
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	int64_t rt = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec + ZIO_MSEC(3);
	cr_assert_eq(zio_cond_clockwait(&v.c, &v.m, CLOCK_REALTIME, rt), -ETIMEDOUT);
	cr_assert_eq(zio_cond_timedwait(&v.c, &v.m, rt), -ETIMEDOUT); /* zeroed: realtime */
	cr_assert_eq(zio_cond_clockwait(&v.c, &v.m, CLOCK_MONOTONIC, zio_now() + ZIO_MSEC(3)),
		     -ETIMEDOUT);
	cr_assert_eq(zio_cond_init(&v.c, CLOCK_MONOTONIC), 0);
	cr_assert_eq(zio_cond_timedwait(&v.c, &v.m, zio_now() + ZIO_MSEC(3)), -ETIMEDOUT);
	cr_assert_eq(zio_cond_clockwait(&v.c, &v.m, CLOCK_PROCESS_CPUTIME_ID, 0), -EINVAL);
	cr_assert_eq(zio_cond_init(&v.c, CLOCK_THREAD_CPUTIME_ID), -EINVAL);
	cr_assert_eq(zio_mutex_unlock(&v.m), 0);
	return NULL;
}

Test(cond, timeout_and_clocks, .timeout = 10)
{
	run_in_runtime(1, cond_timeout_main, NULL);
}

static void *cond_cancel_main(void *arg)
{
	static struct cv v;
	memset(&v, 0, sizeof(v));
	v.deadline = ZIO_FOREVER;
	zio_task *a = go(cv_wait_once, &v);
	WAIT_FOR(QLEN(&v.c) == 1);
	zio_task_cancel(a);
	cr_assert_eq(join(a), -ECANCELED);
	cr_assert(v.held_after);
	cr_assert_eq(QLEN(&v.c), 0);

	/* The signal raced with a's cancel: b gets it. */
	a = go(cv_wait_once, &v);
	WAIT_FOR(QLEN(&v.c) == 1);
	zio_task *b = go(cv_wait_once, &v);
	WAIT_FOR(QLEN(&v.c) == 2);
	zio_task_cancel(a);
	zio_cond_signal(&v.c);
	cr_assert_eq(join(a), -ECANCELED);
	cr_assert_eq(join(b), 0);
	cr_assert_eq(v.woken, 1);

	/* Cancelled while the mutex is held by someone else: it still
	 * returns holding it. */
	a = go(cv_wait_once, &v);
	WAIT_FOR(QLEN(&v.c) == 1);
	zio_mutex_lock(&v.m);
	zio_task_cancel(a);
	for (int i = 0; i < 10; i++)
		zio_yield();
	zio_mutex_unlock(&v.m);
	cr_assert_eq(join(a), -ECANCELED);
	cr_assert(v.held_after);
	return NULL;
}

Test(cond, cancel, .timeout = 10)
{
	run_in_runtime(1, cond_cancel_main, NULL);
}

/* Waiters are signalled oldest first. */
struct cv_order {
	struct cv v;
	int log[8];
	atomic_int n;
	int id;
};

static void *cv_order_waiter(void *arg)
{
	struct cv_order *o = arg;
	zio_mutex_lock(&o->v.m);
	int me = o->id++;
	zio_cond_wait(&o->v.c, &o->v.m);
	o->log[atomic_load(&o->n)] = me;
	atomic_fetch_add(&o->n, 1); /* after the log entry: main reads it then */
	zio_mutex_unlock(&o->v.m);
	return NULL;
}

static void *cond_fifo_main(void *arg)
{
	static struct cv_order o;
	memset(&o, 0, sizeof(o));
	zio_task *t[5];
	for (int i = 0; i < 5; i++) {
		t[i] = go(cv_order_waiter, &o);
		WAIT_FOR(QLEN(&o.v.c) == i + 1);
	}
	for (int i = 0; i < 5; i++) {
		zio_cond_signal(&o.v.c);
		WAIT_FOR(atomic_load(&o.n) == i + 1);
	}
	for (int i = 0; i < 5; i++) {
		join(t[i]);
		cr_assert_eq(o.log[i], i);
	}
	return NULL;
}

Test(cond, fairness_fifo_signal, .timeout = 10)
{
	run_in_runtime(1, cond_fifo_main, NULL);
	run_in_runtime(2, cond_fifo_main, NULL);
}

/* A recursive mutex held twice is fully released by the wait and held
 * twice again after it. */
static void *cv_rec_other(void *arg)
{
	struct cv *v = arg;
	zio_mutex_lock(&v->m);
	v->ready = 1;
	zio_cond_signal(&v->c);
	zio_mutex_unlock(&v->m);
	return NULL;
}

static void *cond_recursive_main(void *arg)
{
	static struct cv v;
	memset(&v, 0, sizeof(v));
	zio_mutex_init(&v.m, ZIO_MUTEX_RECURSIVE);
	zio_mutex_lock(&v.m);
	zio_mutex_lock(&v.m);
	zio_task *t = go(cv_rec_other, &v);
	while (!v.ready)
		cr_assert_eq(zio_cond_wait(&v.c, &v.m), 0);
	cr_assert_eq(zio_mutex_unlock(&v.m), 0);
	cr_assert_eq(zio_mutex_unlock(&v.m), 0);
	cr_assert_eq(zio_mutex_unlock(&v.m), -EPERM);
	join(t);
	/* Error-checking: waiting without holding it. */
	zio_mutex_init(&v.m, ZIO_MUTEX_ERRORCHECK);
	cr_assert_eq(zio_cond_wait(&v.c, &v.m), -EPERM);
	zio_mutex_init(&v.m, ZIO_MUTEX_NORMAL);
	cr_assert_eq(zio_cond_wait(&v.c, &v.m), -EPERM); /* not locked at all */
	return NULL;
}

Test(cond, recursive_and_errorcheck_mutex, .timeout = 10)
{
	run_in_runtime(1, cond_recursive_main, NULL);
}

/* Threads and tasks wait on and signal the same condition. */
struct cv_mix {
	struct cv v;
	int turn;
	int rounds;
};

static void *cv_mix_side(void *arg, int me)
{
	struct cv_mix *x = arg;
	zio_mutex_lock(&x->v.m);
	for (int i = 0; i < x->rounds; i++) {
		while (x->turn != me)
			zio_cond_wait(&x->v.c, &x->v.m);
		x->turn = 1 - me;
		zio_cond_broadcast(&x->v.c);
	}
	zio_mutex_unlock(&x->v.m);
	return NULL;
}

static void *cv_mix_thread(void *arg)
{
	return cv_mix_side(arg, 1);
}

static void *cv_mix_main(void *arg)
{
	struct cv_mix *x = arg;
	thread_t th = thread_start(cv_mix_thread, x);
	cv_mix_side(x, 0);
	thread_join(th);
	return NULL;
}

Test(cond, task_and_thread_ping_pong, .timeout = 20)
{
	static struct cv_mix x;
	memset(&x, 0, sizeof(x));
	x.rounds = 2000;
	run_in_runtime(1, cv_mix_main, &x);
	memset(&x, 0, sizeof(x));
	x.rounds = 2000;
	run_in_runtime(2, cv_mix_main, &x);
}

/* POSIX: a condition may be destroyed right after a broadcast that woke
 * every waiter, before they have returned (ASan checks nothing touches it). */
struct cv_free {
	zio_mutex m;
	zio_cond *_Atomic c;
	int waiting;
};

static void *cv_free_waiter(void *arg)
{
	struct cv_free *f = arg;
	zio_mutex_lock(&f->m);
	f->waiting++;
	zio_cond_wait(atomic_load(&f->c), &f->m);
	f->waiting--;
	zio_mutex_unlock(&f->m);
	return NULL;
}

static void *cond_free_main(void *arg)
{
	static struct cv_free f;
	memset(&f, 0, sizeof(f));
	for (int round = 0; round < 300; round++) {
		zio_cond *c = calloc(1, sizeof(*c));
		atomic_store(&f.c, c);
		zio_task *t[3];
		for (int i = 0; i < 3; i++)
			t[i] = go(cv_free_waiter, &f);
		WAIT_FOR(QLEN(c) == 3);
		zio_cond_broadcast(c);
		cr_assert_eq(zio_cond_destroy(c), 0);
		free(c);
		for (int i = 0; i < 3; i++)
			join(t[i]);
	}
	return NULL;
}

Test(cond, destroyed_after_broadcast, .timeout = 30)
{
	run_in_runtime(2, cond_free_main, NULL);
}

/* The same with a waiter whose deadline fires as the broadcast comes: the
 * broadcast pops it but loses the claim, and the waiter still takes the
 * condition's lock to leave. Destroy waits for it, so the memory may be
 * reused at once (it returned 0 at once and the waiter locked freed
 * memory: a hang on the 0xff "lock" here, a use after free under ASan). */
struct cv_late {
	zio_cond c;
	zio_mutex m;
	int64_t deadline;
	atomic_bool left;
};

static void *cv_late_waiter(void *arg)
{
	struct cv_late *o = arg;
	zio_mutex_lock(&o->m);
	zio_cond_wait_until(&o->c, &o->m, o->deadline);
	atomic_store(&o->left, true);
	zio_mutex_unlock(&o->m);
	return NULL;
}

static void *cond_destroyed_under_a_late_waiter(void *arg)
{
	(void)arg;
	int64_t end = zio_now() + ZIO_SEC(3);
	for (int i = 0; i < 2000 && zio_now() < end; i++) {
		struct cv_late *o = calloc(1, sizeof(*o));
		cr_assert_eq(zio_cond_init(&o->c, CLOCK_MONOTONIC), 0);
		cr_assert_eq(zio_mutex_init(&o->m, ZIO_MUTEX_NORMAL), 0);
		o->deadline = zio_now() + ZIO_USEC(300);
		zio_task *t = go(cv_late_waiter, o);
		/* It waits (or has already timed out: a slow machine) before
		 * the broadcast; a condition destroyed before a wait begins is
		 * the caller's mistake, not this test's subject. */
		int64_t give_up = zio_now() + ZIO_SEC(1);
		while (QLEN(&o->c) == 0 && !o->left && zio_now() < give_up)
			zio_yield();
		zio_sleep_until(o->deadline + (i % 7) * 1000); /* at its deadline, give or take */
		zio_mutex_lock(&o->m);
		zio_cond_broadcast(&o->c);
		zio_mutex_unlock(&o->m);
		int d = zio_cond_destroy(&o->c);
		cr_assert(d == 0 || d == -EBUSY, "destroy: %d", d);
		if (d == 0)
			memset(&o->c, 0xff, sizeof(o->c)); /* reused at once */
		join(t);
		free(o);
	}
	return NULL;
}

Test(cond, destroyed_while_a_timed_out_waiter_leaves, .timeout = 30)
{
	run_in_runtime(1, cond_destroyed_under_a_late_waiter, NULL);
	run_in_runtime(2, cond_destroyed_under_a_late_waiter, NULL);
}

/* =================================================================== rwlock */

struct rwx {
	zio_rwlock rw;
	int64_t deadline;
	atomic_int readers, writers;
	atomic_int log[16];
	atomic_int n;
};

static void *rw_reader(void *arg)
{
	struct rwx *x = arg;
	int r = zio_rwlock_rdlock_until(&x->rw, x->deadline);
	if (r == 0) {
		atomic_fetch_add(&x->readers, 1);
		x->log[atomic_fetch_add(&x->n, 1)] = 'r';
		zio_yield();
		atomic_fetch_sub(&x->readers, 1);
		zio_rwlock_unlock(&x->rw);
	}
	return RC(r);
}

static void *rw_writer(void *arg)
{
	struct rwx *x = arg;
	int r = zio_rwlock_wrlock_until(&x->rw, x->deadline);
	if (r == 0) {
		cr_assert_eq(atomic_fetch_add(&x->writers, 1), 0);
		cr_assert_eq(atomic_load(&x->readers), 0);
		x->log[atomic_fetch_add(&x->n, 1)] = 'w';
		zio_yield();
		atomic_fetch_sub(&x->writers, 1);
		zio_rwlock_unlock(&x->rw);
	}
	return RC(r);
}


static void *rwlock_basic_main(void *arg)
{
	zio_rwlock rw = ZIO_RWLOCK_INIT;
	cr_assert_eq(zio_rwlock_unlock(&rw), -EPERM);
	cr_assert_eq(zio_rwlock_rdlock(&rw), 0);
	cr_assert_eq(zio_rwlock_unlock(&rw), 0);
	cr_assert_eq(zio_rwlock_unlock(&rw), -EPERM); /* the count does not wrap */
	cr_assert_eq(rw._state, 0u);
	cr_assert_eq(zio_rwlock_rdlock(&rw), 0);
	cr_assert_eq(zio_rwlock_tryrdlock(&rw), 0);
	cr_assert_eq(zio_rwlock_trywrlock(&rw), -EAGAIN);
	cr_assert_eq(zio_rwlock_destroy(&rw), -EBUSY);
	cr_assert_eq(zio_rwlock_unlock(&rw), 0);
	cr_assert_eq(zio_rwlock_unlock(&rw), 0);
	cr_assert_eq(zio_rwlock_wrlock(&rw), 0);
	cr_assert_eq(zio_rwlock_tryrdlock(&rw), -EAGAIN);
	cr_assert_eq(zio_rwlock_trywrlock(&rw), -EAGAIN);
	cr_assert_eq(zio_rwlock_wrlock_until(&rw, zio_now() + ZIO_MSEC(1)), -ETIMEDOUT);
	cr_assert_eq(zio_rwlock_rdlock_until(&rw, zio_now() + ZIO_MSEC(1)), -ETIMEDOUT);
	cr_assert_eq(zio_rwlock_unlock(&rw), 0);
	cr_assert_eq(rw._state, 0u);
	cr_assert_eq(zio_rwlock_destroy(&rw), 0);
	cr_assert_eq(zio_rwlock_init(&rw, 99), -EINVAL);
	return NULL;
}

Test(rwlock, basic, .timeout = 10)
{
	run_in_runtime(1, rwlock_basic_main, NULL);
	rwlock_basic_main(NULL);
}

/* A waiting writer keeps new readers out (unless readers are preferred),
 * and gets the lock before them when the last reader leaves. */
static void *rwlock_writer_pref_main(void *arg)
{
	static struct rwx x;
	for (int prefer_reader = 0; prefer_reader < 2; prefer_reader++) {
		memset(&x, 0, sizeof(x));
		zio_rwlock_init(&x.rw, prefer_reader ? ZIO_RWLOCK_PREFER_READER : 0);
		x.deadline = ZIO_FOREVER;
		cr_assert_eq(zio_rwlock_rdlock(&x.rw), 0);
		zio_task *w = go(rw_writer, &x);
		WAIT_FOR(qlen_rw_writers(&x.rw) == 1);
		if (!prefer_reader) {
			cr_assert_eq(zio_rwlock_tryrdlock(&x.rw), -EAGAIN);
			zio_task *r = go(rw_reader, &x);
			WAIT_FOR(qlen_rw_readers(&x.rw) == 1);
			zio_rwlock_unlock(&x.rw);
			cr_assert_eq(join(w), 0);
			cr_assert_eq(join(r), 0);
			cr_assert_eq(x.log[0], 'w');
			cr_assert_eq(x.log[1], 'r');
		} else {
			cr_assert_eq(zio_rwlock_tryrdlock(&x.rw), 0);
			zio_rwlock_unlock(&x.rw);
			zio_rwlock_unlock(&x.rw);
			cr_assert_eq(join(w), 0);
		}
		cr_assert_eq(x.rw._state, 0u);
	}
	return NULL;
}

Test(rwlock, fairness_writer_preference, .timeout = 10)
{
	run_in_runtime(1, rwlock_writer_pref_main, NULL);
}

/* A writer that gives up lets in the readers it was holding back. */
static void *rwlock_timeout_main(void *arg)
{
	static struct rwx x;
	memset(&x, 0, sizeof(x));
	cr_assert_eq(zio_rwlock_rdlock(&x.rw), 0);
	x.deadline = zio_deadline_after(ZIO_MSEC(20));
	zio_task *w = go(rw_writer, &x);
	WAIT_FOR(qlen_rw_writers(&x.rw) == 1);
	x.deadline = ZIO_FOREVER;
	zio_task *r = go(rw_reader, &x);
	WAIT_FOR(qlen_rw_readers(&x.rw) == 1);
	cr_assert_eq(join(w), -ETIMEDOUT);
	cr_assert_eq(join(r), 0); /* admitted once the writer left */
	zio_rwlock_unlock(&x.rw);
	cr_assert_eq(x.rw._state, 0u);

	/* Same with a cancel, and a cancelled reader too. */
	zio_rwlock_wrlock(&x.rw);
	zio_task *r1 = go(rw_reader, &x);
	zio_task *w1 = go(rw_writer, &x);
	WAIT_FOR(qlen_rw_readers(&x.rw) == 1 && qlen_rw_writers(&x.rw) == 1);
	zio_task_cancel(r1);
	zio_task_cancel(w1);
	cr_assert_eq(join(r1), -ECANCELED);
	cr_assert_eq(join(w1), -ECANCELED);
	cr_assert_eq(qlen_rw_readers(&x.rw) + qlen_rw_writers(&x.rw), 0);
	zio_rwlock_unlock(&x.rw);
	cr_assert_eq(x.rw._state, 0u);

	/* The last reader's unlock raced with the writer's cancel: the next
	 * writer gets the lock. */
	zio_rwlock_rdlock(&x.rw);
	zio_task *wa = go(rw_writer, &x);
	WAIT_FOR(qlen_rw_writers(&x.rw) == 1);
	zio_task *wb = go(rw_writer, &x);
	WAIT_FOR(qlen_rw_writers(&x.rw) == 2);
	zio_task_cancel(wa);
	zio_rwlock_unlock(&x.rw);
	cr_assert_eq(join(wa), -ECANCELED);
	cr_assert_eq(join(wb), 0);
	cr_assert_eq(x.rw._state, 0u);
	return NULL;
}

Test(rwlock, timeout_and_cancel, .timeout = 10)
{
	run_in_runtime(1, rwlock_timeout_main, NULL);
}

/* A write unlock with readers and writers queued: writers first, then all
 * readers together. */
static void *rwlock_order_main(void *arg)
{
	static struct rwx x;
	memset(&x, 0, sizeof(x));
	x.deadline = ZIO_FOREVER;
	zio_rwlock_wrlock(&x.rw);
	zio_task *t[5];
	t[0] = go(rw_reader, &x);
	t[1] = go(rw_writer, &x);
	t[2] = go(rw_reader, &x);
	t[3] = go(rw_writer, &x);
	t[4] = go(rw_reader, &x);
	WAIT_FOR(qlen_rw_readers(&x.rw) == 3 && qlen_rw_writers(&x.rw) == 2);
	zio_rwlock_unlock(&x.rw);
	for (int i = 0; i < 5; i++)
		cr_assert_eq(join(t[i]), 0);
	cr_assert_eq(x.log[0], 'w');
	cr_assert_eq(x.log[1], 'w');
	cr_assert_eq(x.log[2], 'r');
	cr_assert_eq(x.log[3], 'r');
	cr_assert_eq(x.log[4], 'r');
	cr_assert_eq(x.rw._state, 0u);
	return NULL;
}

Test(rwlock, fairness_handoff_order, .timeout = 10)
{
	run_in_runtime(1, rwlock_order_main, NULL);
}

/* Randomized: readers and writers, tasks on 2 executors and threads, with
 * random deadlines and cancels; the exclusion invariants hold throughout. */
struct rwmodel {
	zio_rwlock rw;
	atomic_int readers, writers;
	atomic_long reads, writes;
	int64_t end;
	uint64_t seed;
	atomic_uint next_seed;
	bool prefer_reader;
};

static void rwm_check(struct rwmodel *m, bool writer)
{
	if (writer)
		cr_assert(atomic_load(&m->writers) == 1 && atomic_load(&m->readers) == 0,
			  "writer with company (seed %llu)", (unsigned long long)m->seed);
	else
		cr_assert(atomic_load(&m->writers) == 0, "reader beside a writer (seed %llu)",
			  (unsigned long long)m->seed);
}

static void rwm_hold(struct rwmodel *m, bool writer, uint64_t *rs)
{
	atomic_fetch_add(writer ? &m->writers : &m->readers, 1);
	rwm_check(m, writer);
	if (rnd_below(rs, 3) == 0)
		zio_yield();
	rwm_check(m, writer);
	atomic_fetch_sub(writer ? &m->writers : &m->readers, 1);
	atomic_fetch_add(writer ? &m->writes : &m->reads, 1);
}

struct rwm_child {
	struct rwmodel *m;
	bool writer;
	uint64_t rs;
};

static void *rwm_child_body(void *arg)
{
	struct rwm_child *c = arg;
	int r = c->writer ? zio_rwlock_wrlock(&c->m->rw) : zio_rwlock_rdlock(&c->m->rw);
	if (r == 0) {
		rwm_hold(c->m, c->writer, &c->rs);
		zio_rwlock_unlock(&c->m->rw);
	}
	return RC(r);
}

static void *rwm_worker(void *arg)
{
	struct rwmodel *m = arg;
	uint64_t rs = m->seed * 0x9E3779B97F4A7C15ULL + atomic_fetch_add(&m->next_seed, 1);
	bool task = zio_task_self() != NULL;
	while (zio_now() < m->end) {
		bool writer = rnd_below(&rs, 4) == 0;
		int r;
		switch (rnd_below(&rs, task ? 4 : 3)) {
		case 0:
			r = writer ? zio_rwlock_wrlock(&m->rw) : zio_rwlock_rdlock(&m->rw);
			break;
		case 1: {
			int64_t d = zio_deadline_after(rnd_below(&rs, 50000));
			r = writer ? zio_rwlock_wrlock_until(&m->rw, d) : zio_rwlock_rdlock_until(&m->rw, d);
			break;
		}
		case 2:
			r = writer ? zio_rwlock_trywrlock(&m->rw) : zio_rwlock_tryrdlock(&m->rw);
			break;
		default: {
			struct rwm_child c = { m, writer, rnd(&rs) };
			zio_task *t = go(rwm_child_body, &c);
			for (unsigned k = rnd_below(&rs, 4); k; k--)
				zio_yield();
			if (rnd_below(&rs, 2))
				zio_task_cancel(t);
			r = join(t);
			cr_assert(r == 0 || r == -ECANCELED, "child: %d (seed %llu)", r,
				  (unsigned long long)m->seed);
			continue;
		}
		}
		cr_assert(r == 0 || r == -EAGAIN || r == -ETIMEDOUT, "%d (seed %llu)", r,
			  (unsigned long long)m->seed);
		if (r == 0) {
			rwm_hold(m, writer, &rs);
			cr_assert_eq(zio_rwlock_unlock(&m->rw), 0);
		}
	}
	return NULL;
}

static void *rwm_main(void *arg)
{
	struct rwmodel *m = arg;
	thread_t th[2];
	zio_task *t[8];
	for (int i = 0; i < 2; i++)
		th[i] = thread_start(rwm_worker, m);
	for (int i = 0; i < 8; i++)
		t[i] = go(rwm_worker, m);
	for (int i = 0; i < 8; i++)
		join(t[i]);
	for (int i = 0; i < 2; i++)
		thread_join(th[i]);
	return NULL;
}

Test(rwlock, randomized_invariants, .timeout = 30)
{
	static struct rwmodel m;
	for (int pref = 0; pref < 2; pref++) {
		memset(&m, 0, sizeof(m));
		zio_rwlock_init(&m.rw, pref ? ZIO_RWLOCK_PREFER_READER : 0);
		m.seed = test_seed();
		m.end = zio_now() + ZIO_MSEC(800);
		run_in_runtime(2, rwm_main, &m);
		cr_assert_eq(m.rw._state, 0u, "state %#x (seed %llu)", m.rw._state,
			     (unsigned long long)m.seed);
		cr_assert_eq(qlen_rw_readers(&m.rw) + qlen_rw_writers(&m.rw), 0);
		cr_assert_gt(atomic_load(&m.writes), 0);
		cr_assert_gt(atomic_load(&m.reads), 0);
	}
}

/* ================================================================ semaphore */

struct smx {
	zio_sem s;
	int64_t deadline;
	int log[16];
	atomic_int n;
	int id;
};

static void *sem_waiter(void *arg)
{
	struct smx *x = arg;
	int me = x->id++;
	int r = zio_sem_wait_until(&x->s, x->deadline);
	if (r == 0) {
		/* Waiters that got a unit run one at a time in these tests
		 * that read the log: publish the entry before the count. */
		int i = atomic_load(&x->n);
		x->log[i] = me;
		atomic_store(&x->n, i + 1);
	}
	return RC(r);
}

static void *sem_basic_main(void *arg)
{
	zio_sem s = ZIO_SEM_INIT(2);
	cr_assert_eq(zio_sem_value(&s), 2);
	cr_assert_eq(zio_sem_wait(&s), 0);
	cr_assert_eq(zio_sem_trywait(&s), 0);
	cr_assert_eq(zio_sem_trywait(&s), -EAGAIN);
	cr_assert_eq(zio_sem_wait_until(&s, zio_now() + ZIO_MSEC(2)), -ETIMEDOUT);
	cr_assert_eq(zio_sem_post(&s), 0);
	cr_assert_eq(zio_sem_value(&s), 1);
	cr_assert_eq(zio_sem_init(&s, ZIO_SEM_VALUE_MAX), 0);
	cr_assert_eq(zio_sem_post(&s), -EOVERFLOW);
	cr_assert_eq(zio_sem_value(&s), ZIO_SEM_VALUE_MAX);
	cr_assert_eq(zio_sem_init(&s, (unsigned)ZIO_SEM_VALUE_MAX + 1), -EINVAL);
	zio_sem z;
	memset(&z, 0, sizeof(z));
	cr_assert_eq(zio_sem_trywait(&z), -EAGAIN);
	cr_assert_eq(zio_sem_post(&z), 0);
	cr_assert_eq(zio_sem_wait(&z), 0);
	cr_assert_eq(zio_sem_destroy(&z), 0);
	return NULL;
}

Test(sem, basic, .timeout = 10)
{
	run_in_runtime(1, sem_basic_main, NULL);
	sem_basic_main(NULL);
}

/* Posts go to waiters in arrival order, and newcomers cannot take a unit a
 * waiter is owed. */
static void *sem_fifo_main(void *arg)
{
	static struct smx x;
	memset(&x, 0, sizeof(x));
	x.deadline = ZIO_FOREVER;
	zio_task *t[5];
	for (int i = 0; i < 5; i++) {
		t[i] = go(sem_waiter, &x);
		WAIT_FOR(QLEN(&x.s) == i + 1);
	}
	for (int i = 0; i < 5; i++) {
		zio_sem_post(&x.s);
		cr_assert_eq(zio_sem_trywait(&x.s), -EAGAIN, "the unit belongs to a waiter");
		WAIT_FOR(atomic_load(&x.n) == i + 1);
		cr_assert_eq(x.log[i], i, "unit %d went to waiter %d", i, x.log[i]);
	}
	for (int i = 0; i < 5; i++)
		cr_assert_eq(join(t[i]), 0);
	cr_assert_eq(zio_sem_value(&x.s), 0);
	return NULL;
}

Test(sem, fairness_fifo, .timeout = 10)
{
	run_in_runtime(1, sem_fifo_main, NULL);
	run_in_runtime(2, sem_fifo_main, NULL);
}

static void *sem_cancel_main(void *arg)
{
	static struct smx x;
	memset(&x, 0, sizeof(x));
	x.deadline = zio_deadline_after(ZIO_MSEC(5));
	cr_assert_eq(join(go(sem_waiter, &x)), -ETIMEDOUT);
	cr_assert_eq(QLEN(&x.s), 0);
	cr_assert_eq(x.s._state, 0u);

	x.deadline = ZIO_FOREVER;
	zio_task *a = go(sem_waiter, &x);
	WAIT_FOR(QLEN(&x.s) == 1);
	zio_task_cancel(a);
	cr_assert_eq(join(a), -ECANCELED);
	cr_assert_eq(x.s._state, 0u);

	/* Post raced with a's cancel: b gets the unit. */
	a = go(sem_waiter, &x);
	WAIT_FOR(QLEN(&x.s) == 1);
	zio_task *b = go(sem_waiter, &x);
	WAIT_FOR(QLEN(&x.s) == 2);
	zio_task_cancel(a);
	zio_sem_post(&x.s);
	cr_assert_eq(join(a), -ECANCELED);
	cr_assert_eq(join(b), 0);
	cr_assert_eq(zio_sem_value(&x.s), 0);

	/* Post raced with the only waiter's cancel: the unit stays. */
	a = go(sem_waiter, &x);
	WAIT_FOR(QLEN(&x.s) == 1);
	zio_task_cancel(a);
	zio_sem_post(&x.s);
	cr_assert_eq(join(a), -ECANCELED);
	cr_assert_eq(zio_sem_value(&x.s), 1);
	cr_assert_eq(x.s._state, 4u); /* value 1, no waiters */
	return NULL;
}

Test(sem, timeout_and_cancel, .timeout = 10)
{
	run_in_runtime(1, sem_cancel_main, NULL);
}

/* sem_destroy() right after the woken waiter returns (ASan). Threads and
 * tasks on both sides. */
struct sem_free {
	zio_sem *_Atomic s;
	atomic_int phase;
	int rounds;
};

static void *sem_free_waiter(void *arg)
{
	struct sem_free *f = arg;
	for (int i = 0; i < f->rounds; i++) {
		WAIT_FOR(atomic_load(&f->phase) == 2 * i + 1);
		zio_sem *s = atomic_load(&f->s);
		cr_assert_eq(zio_sem_wait(s), 0);
		zio_sem_destroy(s);
		free(s);
		atomic_store(&f->phase, 2 * i + 2);
	}
	return NULL;
}

static void *sem_free_poster(void *arg)
{
	struct sem_free *f = arg;
	for (int i = 0; i < f->rounds; i++) {
		zio_sem *s = calloc(1, sizeof(*s));
		atomic_store(&f->s, s);
		atomic_store(&f->phase, 2 * i + 1);
		for (int k = 0; k < 50 && QLEN(s) == 0; k++)
			zio_yield();
		zio_sem_post(s);
		WAIT_FOR(atomic_load(&f->phase) == 2 * i + 2);
	}
	return NULL;
}

static void *sem_free_main(void *arg)
{
	struct sem_free f = { .rounds = 1000 };
	zio_task *t = go(sem_free_waiter, &f);
	sem_free_poster(&f);
	join(t);
	memset(&f, 0, sizeof(f));
	f.rounds = 300;
	thread_t th = thread_start(sem_free_waiter, &f);
	sem_free_poster(&f);
	thread_join(th);
	return NULL;
}

Test(sem, freed_by_woken_waiter, .timeout = 60)
{
	run_in_runtime(2, sem_free_main, NULL);
}

/* Randomized: units are conserved and never over-granted. */
struct semmodel {
	zio_sem s;
	int permits;
	atomic_int inside;
	atomic_long taken;
	int64_t end;
	uint64_t seed;
	atomic_uint next_seed;
};

static void *semm_child(void *arg)
{
	struct semmodel *m = arg;
	int r = zio_sem_wait(&m->s);
	if (r == 0) {
		int in = atomic_fetch_add(&m->inside, 1) + 1;
		cr_assert_leq(in, m->permits, "seed %llu", (unsigned long long)m->seed);
		zio_yield();
		atomic_fetch_sub(&m->inside, 1);
		atomic_fetch_add(&m->taken, 1);
		zio_sem_post(&m->s);
	}
	return RC(r);
}

static void *semm_worker(void *arg)
{
	struct semmodel *m = arg;
	uint64_t rs = m->seed * 0x9E3779B97F4A7C15ULL + atomic_fetch_add(&m->next_seed, 1);
	bool task = zio_task_self() != NULL;
	while (zio_now() < m->end) {
		int r;
		unsigned op = rnd_below(&rs, task ? 3 : 2);
		if (op == 2) {
			zio_task *t = go(semm_child, m);
			for (unsigned k = rnd_below(&rs, 4); k; k--)
				zio_yield();
			if (rnd_below(&rs, 2))
				zio_task_cancel(t);
			r = join(t);
			cr_assert(r == 0 || r == -ECANCELED, "%d", r);
			continue;
		}
		r = op == 0 ? zio_sem_wait_until(&m->s, zio_deadline_after(rnd_below(&rs, 50000)))
			    : zio_sem_trywait(&m->s);
		cr_assert(r == 0 || r == -ETIMEDOUT || r == -EAGAIN, "%d", r);
		if (r == 0) {
			int in = atomic_fetch_add(&m->inside, 1) + 1;
			cr_assert_leq(in, m->permits, "seed %llu", (unsigned long long)m->seed);
			if (rnd_below(&rs, 2))
				zio_yield();
			atomic_fetch_sub(&m->inside, 1);
			atomic_fetch_add(&m->taken, 1);
			zio_sem_post(&m->s);
		}
	}
	return NULL;
}

static void *semm_main(void *arg)
{
	struct semmodel *m = arg;
	thread_t th[2];
	zio_task *t[8];
	for (int i = 0; i < 2; i++)
		th[i] = thread_start(semm_worker, m);
	for (int i = 0; i < 8; i++)
		t[i] = go(semm_worker, m);
	for (int i = 0; i < 8; i++)
		join(t[i]);
	for (int i = 0; i < 2; i++)
		thread_join(th[i]);
	return NULL;
}

Test(sem, randomized_conservation, .timeout = 30)
{
	static struct semmodel m;
	memset(&m, 0, sizeof(m));
	m.permits = 3;
	zio_sem_init(&m.s, 3);
	m.seed = test_seed();
	m.end = zio_now() + ZIO_MSEC(1000);
	run_in_runtime(2, semm_main, &m);
	cr_assert_eq(zio_sem_value(&m.s), 3, "units lost or made up (seed %llu)",
		     (unsigned long long)m.seed);
	cr_assert_eq(QLEN(&m.s), 0);
	cr_assert_gt(atomic_load(&m.taken), 0);
}

/* ==================================================================== event */

struct evx {
	zio_event e;
	int64_t deadline;
	atomic_int passed;
};

static void *ev_waiter(void *arg)
{
	struct evx *x = arg;
	int r = zio_event_wait_until(&x->e, x->deadline);
	if (r == 0)
		atomic_fetch_add(&x->passed, 1);
	return RC(r);
}

static void *event_manual_main(void *arg)
{
	static struct evx x;
	memset(&x, 0, sizeof(x));
	x.deadline = ZIO_FOREVER;
	cr_assert(!zio_event_is_set(&x.e));
	cr_assert_eq(zio_event_wait_until(&x.e, 0), -EAGAIN);
	zio_task *t[3];
	for (int i = 0; i < 3; i++)
		t[i] = go(ev_waiter, &x);
	WAIT_FOR(QLEN(&x.e) == 3);
	zio_event_set(&x.e);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(join(t[i]), 0);
	cr_assert(zio_event_is_set(&x.e));
	cr_assert_eq(zio_event_wait(&x.e), 0); /* stays set */
	zio_event_set(&x.e);
	zio_event_reset(&x.e);
	cr_assert(!zio_event_is_set(&x.e));
	x.deadline = zio_deadline_after(ZIO_MSEC(3));
	cr_assert_eq(join(go(ev_waiter, &x)), -ETIMEDOUT);
	cr_assert_eq(QLEN(&x.e), 0);
	x.deadline = ZIO_FOREVER;
	zio_task *a = go(ev_waiter, &x);
	WAIT_FOR(QLEN(&x.e) == 1);
	zio_task_cancel(a);
	cr_assert_eq(join(a), -ECANCELED);
	cr_assert_eq(QLEN(&x.e), 0);
	return NULL;
}

Test(event, manual_reset, .timeout = 10)
{
	run_in_runtime(1, event_manual_main, NULL);
	run_in_runtime(2, event_manual_main, NULL);
}

static void *event_auto_main(void *arg)
{
	static struct evx x;
	memset(&x, 0, sizeof(x));
	zio_event_init(&x.e, ZIO_EVENT_AUTO_RESET);
	x.deadline = ZIO_FOREVER;
	/* Set with nobody waiting: one wait passes, the next does not. */
	zio_event_set(&x.e);
	zio_event_set(&x.e);
	cr_assert(zio_event_is_set(&x.e));
	cr_assert_eq(zio_event_wait(&x.e), 0);
	cr_assert_eq(zio_event_wait_until(&x.e, 0), -EAGAIN);
	/* Set with two waiters wakes exactly one, the oldest. */
	zio_task *a = go(ev_waiter, &x);
	WAIT_FOR(QLEN(&x.e) == 1);
	zio_task *b = go(ev_waiter, &x);
	WAIT_FOR(QLEN(&x.e) == 2);
	zio_event_set(&x.e);
	cr_assert_eq(join(a), 0);
	cr_assert_eq(QLEN(&x.e), 1);
	cr_assert(!zio_event_is_set(&x.e));
	/* A set that raced with the cancel of the waiter it picked goes on
	 * to the next one... */
	zio_task *c = go(ev_waiter, &x);
	WAIT_FOR(QLEN(&x.e) == 2);
	zio_task_cancel(b);
	zio_event_set(&x.e);
	cr_assert_eq(join(b), -ECANCELED);
	cr_assert_eq(join(c), 0);
	/* ...or stays set when nobody else waits. */
	a = go(ev_waiter, &x);
	WAIT_FOR(QLEN(&x.e) == 1);
	zio_task_cancel(a);
	zio_event_set(&x.e);
	cr_assert_eq(join(a), -ECANCELED);
	cr_assert(zio_event_is_set(&x.e));
	return NULL;
}

Test(event, auto_reset, .timeout = 10)
{
	run_in_runtime(1, event_auto_main, NULL);
}

/* A thread waits for a task's set, and a task for a thread's. */
static void *ev_thread(void *arg)
{
	zio_event *e = arg;
	cr_assert_eq(zio_event_wait(&e[0]), 0);
	zio_event_set(&e[1]);
	return NULL;
}

static void *event_thread_main(void *arg)
{
	static zio_event e[2];
	memset(e, 0, sizeof(e));
	thread_t th = thread_start(ev_thread, e);
	WAIT_FOR(QLEN(&e[0]) == 1);
	zio_event_set(&e[0]);
	cr_assert_eq(zio_event_wait(&e[1]), 0);
	thread_join(th);
	return NULL;
}

Test(event, task_and_thread, .timeout = 10)
{
	run_in_runtime(1, event_thread_main, NULL);
}

/* =================================================================== notify */

struct ntx {
	zio_notify n;
	int64_t deadline;
	atomic_int passed;
};

static void *nt_waiter(void *arg)
{
	struct ntx *x = arg;
	int r = zio_notify_wait_until(&x->n, x->deadline);
	if (r == 0)
		atomic_fetch_add(&x->passed, 1);
	return RC(r);
}

static void *notify_main(void *arg)
{
	static struct ntx x;
	memset(&x, 0, sizeof(x));
	x.deadline = ZIO_FOREVER;
	/* A signal with nobody waiting leaves one permit, not a count. */
	zio_notify_signal(&x.n);
	zio_notify_signal(&x.n);
	cr_assert_eq(zio_notify_wait(&x.n), 0);
	cr_assert_eq(zio_notify_wait_until(&x.n, 0), -EAGAIN);
	/* Broadcast wakes all current waiters and leaves nothing. */
	zio_task *t[3];
	for (int i = 0; i < 3; i++)
		t[i] = go(nt_waiter, &x);
	WAIT_FOR(QLEN(&x.n) == 3);
	zio_notify_broadcast(&x.n);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(join(t[i]), 0);
	cr_assert_eq(zio_notify_wait_until(&x.n, 0), -EAGAIN);
	/* Signal raced with a cancel: next waiter. */
	zio_task *a = go(nt_waiter, &x);
	WAIT_FOR(QLEN(&x.n) == 1);
	zio_task *b = go(nt_waiter, &x);
	WAIT_FOR(QLEN(&x.n) == 2);
	zio_task_cancel(a);
	zio_notify_signal(&x.n);
	cr_assert_eq(join(a), -ECANCELED);
	cr_assert_eq(join(b), 0);
	cr_assert_eq(zio_notify_wait_until(&x.n, 0), -EAGAIN);
	x.deadline = zio_deadline_after(ZIO_MSEC(3));
	cr_assert_eq(join(go(nt_waiter, &x)), -ETIMEDOUT);
	cr_assert_eq(QLEN(&x.n), 0);
	return NULL;
}

Test(notify, signal_broadcast_cancel, .timeout = 10)
{
	run_in_runtime(1, notify_main, NULL);
	run_in_runtime(2, notify_main, NULL);
}

/* ================================================================== barrier */

struct bx {
	zio_barrier b;
	int64_t deadline;
	atomic_int serial, passed;
	int rounds;
};

static void *bar_waiter(void *arg)
{
	struct bx *x = arg;
	for (int i = 0; i < x->rounds; i++) {
		int r = zio_barrier_wait_until(&x->b, x->deadline);
		if (r < 0)
			return RC(r);
		if (r == ZIO_BARRIER_SERIAL)
			atomic_fetch_add(&x->serial, 1);
		atomic_fetch_add(&x->passed, 1);
	}
	return NULL;
}

static void *barrier_main(void *arg)
{
	static struct bx x;
	memset(&x, 0, sizeof(x));
	zio_barrier z;
	memset(&z, 0, sizeof(z));
	cr_assert_eq(zio_barrier_wait(&z), -EINVAL);
	cr_assert_eq(zio_barrier_init(&z, 0), -EINVAL);

	zio_barrier_init(&x.b, 4);
	x.deadline = ZIO_FOREVER;
	x.rounds = 50;
	zio_task *t[3];
	for (int i = 0; i < 3; i++)
		t[i] = go(bar_waiter, &x);
	thread_t th = thread_start(bar_waiter, &x);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(join(t[i]), 0);
	thread_join(th);
	cr_assert_eq(atomic_load(&x.serial), 50);
	cr_assert_eq(atomic_load(&x.passed), 200);
	cr_assert_eq(zio_barrier_destroy(&x.b), 0);

	/* A waiter that times out withdraws: the round needs another. */
	x.rounds = 1;
	x.deadline = zio_deadline_after(ZIO_MSEC(3));
	zio_barrier_init(&x.b, 2);
	cr_assert_eq(join(go(bar_waiter, &x)), -ETIMEDOUT);
	cr_assert_eq(x.b._arrived, 0u);
	x.deadline = ZIO_FOREVER;
	zio_task *a = go(bar_waiter, &x);
	WAIT_FOR(QLEN(&x.b) == 1);
	cr_assert_eq(zio_barrier_destroy(&x.b), -EBUSY);
	zio_task_cancel(a);
	cr_assert_eq(join(a), -ECANCELED);
	cr_assert_eq(x.b._arrived, 0u);
	a = go(bar_waiter, &x);
	WAIT_FOR(QLEN(&x.b) == 1);
	cr_assert_eq(zio_barrier_wait_until(&x.b, 0), ZIO_BARRIER_SERIAL);
	cr_assert_eq(join(a), 0);
	/* The round completed while the waiter's cancel was racing: it
	 * belongs to the round and succeeds. Both tasks on one executor, so
	 * that the waiter cannot see its cancel before we arrive (on
	 * another executor it could withdraw first, and we would wait for
	 * a second party forever). */
	zio_task_pin();
	a = go_pinned(bar_waiter, &x);
	WAIT_FOR(QLEN(&x.b) == 1);
	zio_task_cancel(a);
	cr_assert_eq(zio_barrier_wait(&x.b), ZIO_BARRIER_SERIAL);
	/* It still has to take the barrier's lock to learn that it made the
	 * round: destroy (and so freeing it) waits until it has left. */
	int passed = atomic_load(&x.passed);
	cr_assert_eq(zio_barrier_destroy(&x.b), 0);
	cr_assert_eq(atomic_load(&x.passed), passed + 1, "destroyed before the waiter left");
	cr_assert_eq(join(a), 0);
	cr_assert_eq(x.b._arrived, 0u);
	return NULL;
}

/* A destroyer that is itself cancelled still waits for the leaver (its
 * yields must switch, or the leaver, on this executor, never runs). */
static void *destroy_cancelled(void *arg)
{
	struct bx *x = arg;
	zio_task *a = go(bar_waiter, x);
	WAIT_FOR(QLEN(&x->b) == 1);
	zio_task_cancel(a);
	cr_assert_eq(zio_barrier_wait(&x->b), ZIO_BARRIER_SERIAL);
	zio_task_cancel(zio_task_self());
	int r = zio_barrier_destroy(&x->b);
	cr_assert_eq(atomic_load(&x->passed), 1, "destroyed before the waiter left");
	zio_task_detach(a);
	return RC(r);
}

static void *barrier_destroy_cancelled_main(void *arg)
{
	(void)arg;
	static struct bx x;
	memset(&x, 0, sizeof(x));
	zio_barrier_init(&x.b, 2);
	x.rounds = 1;
	x.deadline = ZIO_FOREVER;
	cr_assert_eq(join(go(destroy_cancelled, &x)), 0);
	return NULL;
}

Test(barrier, destroyed_by_a_cancelled_task, .timeout = 20)
{
	run_in_runtime(1, barrier_destroy_cancelled_main, NULL);
}

Test(barrier, rounds_timeout_cancel, .timeout = 20)
{
	run_in_runtime(1, barrier_main, NULL);
	run_in_runtime(2, barrier_main, NULL);
}

/* ================================================================ waitgroup */

struct wgx {
	zio_waitgroup wg;
	int64_t deadline;
	atomic_int done_work;
};

static void *wg_worker(void *arg)
{
	struct wgx *x = arg;
	zio_yield();
	atomic_fetch_add(&x->done_work, 1);
	zio_waitgroup_done(&x->wg);
	return NULL;
}

static void *wg_waiter(void *arg)
{
	struct wgx *x = arg;
	return RC(zio_waitgroup_wait_until(&x->wg, x->deadline));
}

static void *waitgroup_main(void *arg)
{
	static struct wgx x;
	memset(&x, 0, sizeof(x));
	x.deadline = ZIO_FOREVER;
	cr_assert_eq(zio_waitgroup_wait(&x.wg), 0);
	cr_assert_eq(zio_waitgroup_done(&x.wg), -EINVAL);
	zio_waitgroup_add(&x.wg, 10);
	zio_task *w = go(wg_waiter, &x);
	for (int i = 0; i < 10; i++)
		zio_task_detach(go(wg_worker, &x));
	cr_assert_eq(zio_waitgroup_wait(&x.wg), 0);
	cr_assert_eq(atomic_load(&x.done_work), 10);
	cr_assert_eq(join(w), 0);

	zio_waitgroup_add(&x.wg, 1);
	cr_assert_eq(zio_waitgroup_wait_until(&x.wg, 0), -EAGAIN);
	x.deadline = zio_deadline_after(ZIO_MSEC(3));
	cr_assert_eq(join(go(wg_waiter, &x)), -ETIMEDOUT);
	x.deadline = ZIO_FOREVER;
	w = go(wg_waiter, &x);
	WAIT_FOR(QLEN(&x.wg) == 1);
	zio_task_cancel(w);
	cr_assert_eq(join(w), -ECANCELED);
	cr_assert_eq(QLEN(&x.wg), 0);
	zio_waitgroup_done(&x.wg);
	return NULL;
}

Test(waitgroup, basic_timeout_cancel, .timeout = 10)
{
	run_in_runtime(1, waitgroup_main, NULL);
	run_in_runtime(2, waitgroup_main, NULL);
}

/* A wait group on the waiter's stack: it returns (and the frame goes) as
 * soon as it is woken, while the last done() is still returning. */
static void *wg_stack_done(void *arg)
{
	zio_waitgroup_done(arg);
	return NULL;
}

static void *wg_stack_main(void *arg)
{
	for (int i = 0; i < 2000; i++) {
		zio_waitgroup wg = ZIO_WAITGROUP_INIT;
		zio_waitgroup_add(&wg, 1);
		thread_t th = NULL;
		if (i % 4 == 0)
			th = thread_start(wg_stack_done, &wg);
		else
			zio_task_detach(go(wg_stack_done, &wg));
		cr_assert_eq(zio_waitgroup_wait(&wg), 0);
		if (i % 4 == 0)
			thread_join(th);
	}
	return NULL;
}

Test(waitgroup, on_waiter_stack, .timeout = 30)
{
	run_in_runtime(2, wg_stack_main, NULL);
}

/* ===================================================================== once */

struct ox {
	zio_once once;
	atomic_int runs;
	int value;
	zio_event gate;
};

static void once_fn(void *arg)
{
	struct ox *x = arg;
	atomic_fetch_add(&x->runs, 1);
	zio_event_wait(&x->gate); /* keeps the others waiting */
	x->value = 42;
}

static void *once_caller(void *arg)
{
	struct ox *x = arg;
	int r = zio_once_call(&x->once, once_fn, x);
	if (r == 0)
		cr_assert_eq(x->value, 42);
	return RC(r);
}

static void *once_main(void *arg)
{
	static struct ox x;
	memset(&x, 0, sizeof(x));
	zio_task *t[4];
	for (int i = 0; i < 4; i++)
		t[i] = go(once_caller, &x);
	WAIT_FOR(QLEN(&x.once) == 3);
	thread_t th = thread_start(once_caller, &x);
	WAIT_FOR(QLEN(&x.once) == 4);
	zio_task_cancel(t[3]); /* a waiting caller (t[0] runs fn) */
	cr_assert_eq(join(t[3]), -ECANCELED);
	zio_event_set(&x.gate);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(join(t[i]), 0);
	cr_assert_eq(thread_join(th), 0);
	cr_assert_eq(atomic_load(&x.runs), 1);
	cr_assert_eq(zio_once_call(&x.once, once_fn, &x), 0);
	cr_assert_eq(atomic_load(&x.runs), 1);
	return NULL;
}

Test(once, runs_once, .timeout = 10)
{
	run_in_runtime(1, once_main, NULL);
	run_in_runtime(2, once_main, NULL);
}

/* ==================================================================== sizes */

Test(sync, pthread_sizes, .timeout = 5)
{
	cr_assert_leq(sizeof(zio_mutex), sizeof(pthread_mutex_t));
	cr_assert_leq(sizeof(zio_cond), sizeof(pthread_cond_t));
	cr_assert_leq(sizeof(zio_rwlock), sizeof(pthread_rwlock_t));
	cr_assert_leq(sizeof(zio_barrier), sizeof(pthread_barrier_t));
	cr_assert_leq(sizeof(zio_sem), 32);
	/* PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP overlays a recursive mutex. */
	pthread_mutex_t pm = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;
	zio_mutex *m = (zio_mutex *)&pm;
	cr_assert_eq(zio_mutex_lock(m), 0);
	cr_assert_eq(zio_mutex_lock(m), 0);
	cr_assert_eq(zio_mutex_unlock(m), 0);
	cr_assert_eq(zio_mutex_unlock(m), 0);
	cr_assert_eq(zio_mutex_unlock(m), -EPERM);
}
