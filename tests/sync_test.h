/*
 * sync_test.h - helpers for test_sync.c, test_chan.c and test_select.c:
 * spawning and joining, waiting for a condition without sleeping, looking
 * at a primitive's waiter queue, plain threads, and seeded randomness.
 */
#ifndef ZIO_SYNC_TEST_H
#define ZIO_SYNC_TEST_H

#include "helpers.h"

#include "sync/sync_impl.h"

#include <pthread.h>
#include <sched.h>
#include <string.h>

static inline zio_task *go(zio_task_fn fn, void *arg)
{
	zio_task *t;
	int err = zio_spawn(NULL, &t, fn, arg, NULL);
	cr_assert_eq(err, 0, "zio_spawn: %d", err);
	return t;
}

static inline zio_task *go_pinned(zio_task_fn fn, void *arg)
{
	zio_task *t;
	int err = zio_spawn(NULL, &t, fn, arg, &(struct zio_spawn_options){ .pinned = true });
	cr_assert_eq(err, 0, "zio_spawn: %d", err);
	return t;
}

/* Joins and returns the task's result as an int (tasks return rc). */
static inline int join(zio_task *t)
{
	void *r = NULL;
	int err = zio_task_join(t, &r);
	cr_assert_eq(err, 0, "zio_task_join: %d", err);
	return (int)(intptr_t)r;
}

#define RC(x) ((void *)(intptr_t)(x))

/* Yields (a task) or sched_yields (a thread) until cond holds; fails after
 * 10 s. Never a sleep: the condition is what we wait for. */
#define WAIT_FOR(cond)                                                            \
	do {                                                                      \
		int64_t wf_end_ = zio_now() + ZIO_SEC(10);                        \
		while (!(cond)) {                                                 \
			zio_yield();                                              \
			cr_assert(zio_now() < wf_end_, "gave up waiting for %s", #cond); \
		}                                                                 \
	} while (0)

/* Number of waiters queued, read under the primitive's queue lock. */
static inline int wq_count(const struct zio__wq *q)
{
	int n = 0;
	for (struct zio__waiter *w = q->head; w; w = w->next)
		n++;
	return n;
}

static inline int qlen(unsigned *lock, struct zio__wq *q)
{
	slock(lock);
	int n = wq_count(q);
	sunlock(lock);
	return n;
}

#define QLEN_WORD(name, type, field, bit, wl, wu)                              \
	static inline int name(type *p)                                         \
	{                                                                        \
		wl(&p->_state, bit);                                             \
		int n = wq_count(&p->field);                                     \
		wu(&p->_state, bit);                                             \
		return n;                                                        \
	}
QLEN_WORD(qlen_mutex, zio_mutex, _q, ZIO__MUTEX_QLOCK, wlock, wunlock)
QLEN_WORD(qlen_sem, zio_sem, _q, ZIO__SEM_QLOCK, wlock64, wunlock64)
QLEN_WORD(qlen_event, zio_event, _q, ZIO__EVENT_QLOCK, wlock, wunlock)
QLEN_WORD(qlen_notify, zio_notify, _q, ZIO__EVENT_QLOCK, wlock, wunlock)
QLEN_WORD(qlen_wg, zio_waitgroup, _q, ZIO__WG_QLOCK, wlock64, wunlock64)
QLEN_WORD(qlen_once, zio_once, _q, ZIO__ONCE_QLOCK, wlock, wunlock)
QLEN_WORD(qlen_rw_readers, zio_rwlock, _rq, ZIO__RWLOCK_QLOCK, wlock, wunlock)
QLEN_WORD(qlen_rw_writers, zio_rwlock, _wq, ZIO__RWLOCK_QLOCK, wlock, wunlock)

static inline int qlen_cond(zio_cond *c)
{
	return qlen(&c->_lock, &c->_q);
}

static inline int qlen_barrier(zio_barrier *b)
{
	return qlen(&b->_lock, &b->_q);
}

#define QLEN(p)                                                                  \
	_Generic((p), zio_mutex *: qlen_mutex, zio_sem *: qlen_sem,             \
		 zio_event *: qlen_event, zio_notify *: qlen_notify,            \
		 zio_waitgroup *: qlen_wg, zio_once *: qlen_once,               \
		 zio_cond *: qlen_cond, zio_barrier *: qlen_barrier)(p)

/* Plain threads, outside any runtime. Joining first waits on a zio_event
 * the thread sets as it ends, so that a task joining a thread parks
 * instead of blocking its executor in pthread_join() (other tasks may
 * need that executor to let the thread finish). */
struct test_thread {
	void *(*fn)(void *);
	void *arg;
	void *ret;
	zio_event done;
	pthread_t t;
};
typedef struct test_thread *thread_t;

static inline void *test_thread_main(void *arg)
{
	thread_t th = arg;
	th->ret = th->fn(th->arg);
	zio_event_set(&th->done);
	return NULL;
}

static inline thread_t thread_start(void *(*fn)(void *), void *arg)
{
	thread_t th = calloc(1, sizeof(*th));
	th->fn = fn;
	th->arg = arg;
	int err = pthread_create(&th->t, NULL, test_thread_main, th);
	cr_assert_eq(err, 0, "pthread_create: %d", err);
	return th;
}

static inline int thread_join(thread_t th)
{
	cr_assert_eq(zio_event_wait(&th->done), 0);
	pthread_join(th->t, NULL);
	int r = (int)(intptr_t)th->ret;
	free(th);
	return r;
}

/* Seeded randomness: ZIO_TEST_SEED, else the clock; printed on failure. */
static inline uint64_t test_seed(void)
{
	const char *s = getenv("ZIO_TEST_SEED");
	uint64_t seed = s && *s ? strtoull(s, NULL, 0) : (uint64_t)zio_now();
	return seed ? seed : 1;
}

static inline uint64_t rnd(uint64_t *s)
{
	return zio__rand(s);
}

static inline unsigned rnd_below(uint64_t *s, unsigned n)
{
	return (unsigned)(zio__rand(s) % n);
}

#endif
